//go:build cgo && !govscsi_noxen

// Package xlutil drives the real libxlutil (Xen's xl config reader, from
// libxen-dev) so tests can compare cfgparse against it. It is a test helper:
// nothing outside tests/ imports it.
package xlutil

/*
#cgo pkg-config: xlutil
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <libxlutil.h>

typedef struct {
	XLU_Config *cfg;
	FILE *report;
	char *buf;
	size_t size;
} govscsi_xlu;

static govscsi_xlu *govscsi_xlu_new(const char *source) {
	govscsi_xlu *x = calloc(1, sizeof(*x));
	if (!x) return NULL;
	x->report = open_memstream(&x->buf, &x->size);
	if (!x->report) { free(x); return NULL; }
	x->cfg = xlu_cfg_init(x->report, source);
	if (!x->cfg) { fclose(x->report); free(x->buf); free(x); return NULL; }
	return x;
}

// govscsi_xlu_report flushes the report stream and returns what libxlutil
// wrote to it so far (owned by x).
static const char *govscsi_xlu_report(govscsi_xlu *x, size_t *len) {
	fflush(x->report);
	*len = x->size;
	return x->buf;
}

static void govscsi_xlu_free(govscsi_xlu *x) {
	xlu_cfg_destroy(x->cfg);
	fclose(x->report);
	free(x->buf);
	free(x);
}

static int govscsi_list_len(const XLU_ConfigList *l) {
	int n = 0;
	while (xlu_cfg_get_listitem2(l, n)) n++;
	return n;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"syscall"
	"unsafe"
)

// Available reports whether this build talks to the real libxlutil.
const Available = true

// Config is one libxlutil XLU_Config plus the memory stream it reports to.
type Config struct {
	x *C.govscsi_xlu
}

// Read parses data with xlu_cfg_readdata, naming it source in libxlutil's
// messages. It returns the config (also on a parse error: its report holds
// libxlutil's messages) and the errno xlu_cfg_readdata returned (0 = accepted).
// The caller must Close the config.
func Read(source string, data []byte) (*Config, syscall.Errno, error) {
	cs := C.CString(source)
	defer C.free(unsafe.Pointer(cs))
	x := C.govscsi_xlu_new(cs)
	if x == nil {
		return nil, 0, errors.New("xlutil: xlu_cfg_init failed")
	}
	var p *C.char
	if len(data) > 0 {
		p = (*C.char)(C.CBytes(data))
		defer C.free(unsafe.Pointer(p))
	} else {
		p = (*C.char)(C.CBytes([]byte{0}))
		defer C.free(unsafe.Pointer(p))
	}
	rc := C.xlu_cfg_readdata(x.cfg, p, C.int(len(data)))
	return &Config{x: x}, syscall.Errno(rc), nil
}

// Close destroys the XLU_Config.
func (c *Config) Close() {
	if c.x != nil {
		C.govscsi_xlu_free(c.x)
		c.x = nil
	}
}

// Report returns everything libxlutil has written to its report stream.
func (c *Config) Report() string {
	var n C.size_t
	p := C.govscsi_xlu_report(c.x, &n)
	return C.GoStringN(p, C.int(n))
}

func cname(name string) *C.char { return C.CString(name) }

// GetString is xlu_cfg_get_string (warnings on).
func (c *Config) GetString(name string) (string, syscall.Errno) {
	n := cname(name)
	defer C.free(unsafe.Pointer(n))
	var v *C.char
	rc := C.xlu_cfg_get_string(c.x.cfg, n, &v, 0)
	if rc != 0 {
		return "", syscall.Errno(rc)
	}
	return C.GoString(v), 0
}

// GetLong is xlu_cfg_get_long (warnings on).
func (c *Config) GetLong(name string) (int64, syscall.Errno) {
	n := cname(name)
	defer C.free(unsafe.Pointer(n))
	var v C.long
	rc := C.xlu_cfg_get_long(c.x.cfg, n, &v, 0)
	return int64(v), syscall.Errno(rc)
}

// GetBoundedLong is xlu_cfg_get_bounded_long (warnings on).
func (c *Config) GetBoundedLong(name string, min, max int64) (int64, syscall.Errno) {
	n := cname(name)
	defer C.free(unsafe.Pointer(n))
	var v C.long
	rc := C.xlu_cfg_get_bounded_long(c.x.cfg, n, C.long(min), C.long(max), &v, 0)
	return int64(v), syscall.Errno(rc)
}

// Value is a libxlutil value copied into Go: a string or a list.
type Value struct {
	IsList bool
	Str    string
	List   []Value
}

func (v Value) String() string {
	if !v.IsList {
		return fmt.Sprintf("%q", v.Str)
	}
	s := "["
	for i, e := range v.List {
		if i > 0 {
			s += ","
		}
		s += e.String()
	}
	return s + "]"
}

// GetList is xlu_cfg_get_list (warnings on) followed by
// xlu_cfg_get_listitem for every entry; items that are lists themselves
// (xlu_cfg_get_listitem returns NULL for them) are walked with
// xlu_cfg_get_listitem2 and xlu_cfg_value_get_list. ListItemNULL[i] is true
// where xlu_cfg_get_listitem returned NULL.
func (c *Config) GetList(name string) (items []Value, itemNULL []bool, rc syscall.Errno) {
	n := cname(name)
	defer C.free(unsafe.Pointer(n))
	var l *C.XLU_ConfigList
	var entries C.int
	r := C.xlu_cfg_get_list(c.x.cfg, n, &l, &entries, 0)
	if r != 0 {
		return nil, nil, syscall.Errno(r)
	}
	if int(C.govscsi_list_len(l)) != int(entries) {
		panic("xlutil: xlu_cfg_get_list entries disagree with xlu_cfg_get_listitem2")
	}
	for i := C.int(0); i < entries; i++ {
		s := C.xlu_cfg_get_listitem(l, i)
		itemNULL = append(itemNULL, s == nil)
		items = append(items, c.value(C.xlu_cfg_get_listitem2(l, i)))
	}
	if C.xlu_cfg_get_listitem(l, entries) != nil {
		panic("xlutil: xlu_cfg_get_listitem past the end is not NULL")
	}
	return items, itemNULL, 0
}

func (c *Config) value(v *C.XLU_ConfigValue) Value {
	if C.xlu_cfg_value_type(v) == C.XLU_STRING {
		var s *C.char
		if C.xlu_cfg_value_get_string(c.x.cfg, v, &s, 1) != 0 {
			panic("xlutil: string value refused by xlu_cfg_value_get_string")
		}
		return Value{Str: C.GoString(s)}
	}
	var l *C.XLU_ConfigList
	if C.xlu_cfg_value_get_list(c.x.cfg, v, &l, 1) != 0 {
		panic("xlutil: list value refused by xlu_cfg_value_get_list")
	}
	out := Value{IsList: true, List: []Value{}}
	for i := C.int(0); ; i++ {
		e := C.xlu_cfg_get_listitem2(l, i)
		if e == nil {
			break
		}
		out.List = append(out.List, c.value(e))
	}
	return out
}
