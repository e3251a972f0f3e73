package xenif

import (
	"fmt"
	"strconv"
	"strings"
)

// PermBits is the access one domain has to a xenstore node.
type PermBits uint8

const (
	PermNone  PermBits = 0 // 'n'
	PermRead  PermBits = 1 // 'r'
	PermWrite PermBits = 2 // 'w'
	PermBoth  PermBits = 3 // 'b'
)

// Letter is the xenstore-chmod/xs_wire letter for b.
func (b PermBits) Letter() byte { return "nrwb"[b&3] }

// Perm is one entry of a node's permission list.
type Perm struct {
	Domid uint32
	Bits  PermBits
}

// Perms is a xenstore permission list. As in xenstored, the first entry names
// the owner (who always has full access) and its bits are the default for
// every domain not listed; later entries grant access to specific domains.
type Perms []Perm

// String renders p the way xenstore-chmod and xs_wire write it: "n0 r5".
func (p Perms) String() string {
	var sb strings.Builder
	for i, e := range p {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteByte(e.Bits.Letter())
		sb.WriteString(strconv.FormatUint(uint64(e.Domid), 10))
	}
	return sb.String()
}

// ParsePerm parses one "<letter><domid>" entry such as "r5".
func ParsePerm(s string) (Perm, error) {
	if len(s) < 2 {
		return Perm{}, fmt.Errorf("xenstore permission %q: want <n|r|w|b><domid>", s)
	}
	var bits PermBits
	switch s[0] {
	case 'n':
		bits = PermNone
	case 'r':
		bits = PermRead
	case 'w':
		bits = PermWrite
	case 'b':
		bits = PermBoth
	default:
		return Perm{}, fmt.Errorf("xenstore permission %q: unknown access letter %q", s, s[0])
	}
	id, err := strconv.ParseUint(s[1:], 10, 16)
	if err != nil {
		return Perm{}, fmt.Errorf("xenstore permission %q: bad domid %q", s, s[1:])
	}
	return Perm{Domid: uint32(id), Bits: bits}, nil
}

// ParsePerms parses a space-separated list such as "n0 r5".
func ParsePerms(s string) (Perms, error) {
	var p Perms
	for _, f := range strings.Fields(s) {
		e, err := ParsePerm(f)
		if err != nil {
			return nil, err
		}
		p = append(p, e)
	}
	if len(p) == 0 {
		return nil, fmt.Errorf("xenstore permissions %q: empty list", s)
	}
	return p, nil
}

// CanRead reports whether domain d may read a node with permissions p.
// Domain 0 and the owner always may.
func (p Perms) CanRead(d uint32) bool { return p.allows(d, PermRead) }

// CanWrite reports whether domain d may write a node with permissions p.
func (p Perms) CanWrite(d uint32) bool { return p.allows(d, PermWrite) }

func (p Perms) allows(d uint32, want PermBits) bool {
	if d == 0 || len(p) == 0 {
		return true
	}
	if p[0].Domid == d {
		return true
	}
	for _, e := range p[1:] {
		if e.Domid == d {
			return e.Bits&want != 0
		}
	}
	return p[0].Bits&want != 0
}
