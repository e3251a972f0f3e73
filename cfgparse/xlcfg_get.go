package cfgparse

// Getters with the semantics of libxlutil's xlu_cfg_get_* (libxlu_cfg.c).

import (
	"fmt"
	"math"
	"syscall"
)

// Lookup returns the setting xlu_cfg_get_* would use for name: the last
// statement that sets it (a later `name = ...` replaces an earlier one; a
// later `name += ...` already carries the joined value). Nil if absent.
func (c *Config) Lookup(name string) *Setting {
	for i := len(c.Settings) - 1; i >= 0; i-- {
		if c.Settings[i].Name == name {
			return c.Settings[i]
		}
	}
	return nil
}

func (c *Config) notFound(name string) error {
	return &LookupError{File: c.File, Name: name, Errno: syscall.ESRCH, err: ErrNotFound,
		Msg: fmt.Sprintf("%q is not set", name)}
}

// atom is find_atom: the setting, which must be a single value.
func (c *Config) atom(name string) (*Setting, error) {
	s := c.Lookup(name)
	if s == nil {
		return nil, c.notFound(name)
	}
	if s.Value.Kind != ValueString {
		return nil, &LookupError{File: c.File, Name: name, Pos: s.Pos, Errno: syscall.EINVAL, err: ErrWrongType,
			Msg: fmt.Sprintf("%q is a list but should be a single value", name)}
	}
	return s, nil
}

// GetString is xlu_cfg_get_string: the value of name, which must be a
// single value (quoted string or number text). The error wraps ErrNotFound
// (ESRCH) if name is absent, ErrWrongType (EINVAL) if it is a list.
func (c *Config) GetString(name string) (string, Pos, error) {
	s, err := c.atom(name)
	if err != nil {
		return "", Pos{}, err
	}
	return s.Value.Str, s.Value.Pos, nil
}

// GetLong is xlu_cfg_get_long: GetBoundedLong over the whole int64 range.
func (c *Config) GetLong(name string) (int64, Pos, error) {
	return c.GetBoundedLong(name, math.MinInt64, math.MaxInt64)
}

// GetBoundedLong is xlu_cfg_get_bounded_long: the value of name parsed the
// way strtol(s, &end, 0) does (leading C white space, a sign, 0x for hex, a
// leading 0 for octal), which must consume the whole string and lie in
// [min, max]. A setting written with += is refused even if it is numeric.
// Errors wrap ErrNotFound/ESRCH, ErrWrongType/EINVAL, ErrBadNumber/EINVAL,
// ErrBadNumber/ERANGE (out of int64 range) or ErrBadNumber/EINVAL (bounds).
func (c *Config) GetBoundedLong(name string, min, max int64) (int64, Pos, error) {
	s, err := c.atom(name)
	if err != nil {
		return 0, Pos{}, err
	}
	bad := func(errno syscall.Errno, format string, args ...any) error {
		return &LookupError{File: c.File, Name: name, Pos: s.Value.Pos, Errno: errno, err: ErrBadNumber,
			Msg: fmt.Sprintf("%q: ", name) + fmt.Sprintf(format, args...)}
	}
	if s.Append {
		return 0, Pos{}, bad(syscall.EINVAL, "can't use += with numbers")
	}
	v, n, ok := strtol(s.Value.Str)
	if !ok {
		return 0, Pos{}, bad(syscall.ERANGE, "%q is out of range for a number", s.Value.Str)
	}
	if n == 0 || n != len(s.Value.Str) {
		return 0, Pos{}, bad(syscall.EINVAL, "%q is not a valid number", s.Value.Str)
	}
	if v < min {
		return 0, Pos{}, bad(syscall.EINVAL, "value %d is smaller than the minimum %d", v, min)
	}
	if v > max {
		return 0, Pos{}, bad(syscall.EINVAL, "value %d is greater than the maximum %d", v, max)
	}
	return v, s.Value.Pos, nil
}

// GetDefbool is xlu_cfg_get_defbool: GetLong, then any non-zero is true.
func (c *Config) GetDefbool(name string) (bool, Pos, error) {
	v, pos, err := c.GetLong(name)
	if err != nil {
		return false, Pos{}, err
	}
	return v != 0, pos, nil
}

// GetList is xlu_cfg_get_list: the items of name, which must be a list.
func (c *Config) GetList(name string) ([]*Value, Pos, error) {
	s := c.Lookup(name)
	if s == nil {
		return nil, Pos{}, c.notFound(name)
	}
	if s.Value.Kind != ValueList {
		return nil, Pos{}, &LookupError{File: c.File, Name: name, Pos: s.Pos, Errno: syscall.EINVAL, err: ErrWrongType,
			Msg: fmt.Sprintf("%q is a single value but should be a list", name)}
	}
	// Capped: an append by the caller must not write into the array a
	// later += of the name shares.
	return s.Value.List[:len(s.Value.List):len(s.Value.List)], s.Value.Pos, nil
}

// GetStringList is xlu_cfg_get_list plus xlu_cfg_get_listitem for every
// item: the strings of list name. xlu_cfg_get_listitem yields NULL for an
// item that is itself a list; here that is an error naming the item.
func (c *Config) GetStringList(name string) ([]string, []Pos, error) {
	items, _, err := c.GetList(name)
	if err != nil {
		return nil, nil, err
	}
	strs := make([]string, len(items))
	pos := make([]Pos, len(items))
	for i, it := range items {
		if it.Kind != ValueString {
			return nil, nil, &LookupError{File: c.File, Name: name, Pos: it.Pos, Errno: syscall.EINVAL, err: ErrWrongType,
				Msg: fmt.Sprintf("%s[%d] is a list, not a string", name, i)}
		}
		strs[i], pos[i] = it.Str, it.Pos
	}
	return strs, pos, nil
}

// strtol mimics glibc strtol(s, &end, 0) in the C locale: it returns the
// value, how many bytes were consumed (0: no conversion) and false on
// overflow (ERANGE; the span is still reported).
func strtol(s string) (int64, int, bool) {
	i := 0
	for i < len(s) && isCSpace(s[i]) {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	base := uint64(10)
	if i < len(s) && s[i] == '0' {
		if i+2 < len(s) && (s[i+1] == 'x' || s[i+1] == 'X') && hexVal(s[i+2]) < 16 {
			base = 16
			i += 2
		} else {
			base = 8
		}
	}
	start := i
	var acc uint64
	limit := uint64(math.MaxInt64)
	if neg {
		limit++
	}
	over := false
	for i < len(s) {
		d := uint64(hexVal(s[i]))
		if d >= base {
			break
		}
		if !over {
			if acc > (limit-d)/base {
				over = true
			} else {
				acc = acc*base + d
			}
		}
		i++
	}
	if i == start {
		return 0, 0, true
	}
	if over {
		return 0, i, false
	}
	if neg {
		return -int64(acc-1) - 1, i, true
	}
	return int64(acc), i, true
}

func hexVal(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'z':
		return c - 'a' + 10
	case c >= 'A' && c <= 'Z':
		return c - 'A' + 10
	}
	return 255
}
