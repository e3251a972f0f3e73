package xenbus

import (
	"strconv"
	"strings"
	"testing"

	"github.com/govscsi/govscsi/backend/datapath"
)

func TestParseValues(t *testing.T) {
	for _, c := range []struct {
		v   string
		ok  bool
		num uint32
	}{
		{"0", true, 0}, {"8", true, 8}, {"4294967295", true, 1<<32 - 1}, {"007", true, 7},
		{"", false, 0}, {"-1", false, 0}, {"+1", false, 0}, {" 1", false, 0}, {"1 ", false, 0},
		{"0x10", false, 0}, {"4294967296", false, 0}, {"99999999999", false, 0}, {"1\x00", false, 0}, {"abc", false, 0},
	} {
		n, err := ParseRingRef(c.v)
		if (err == nil) != c.ok || (c.ok && n != c.num) {
			t.Errorf("ParseRingRef(%q) = %d, %v", c.v, n, err)
		}
	}
	if _, err := ParseEventChannel("0"); err == nil {
		t.Error("port 0 accepted")
	}
	if _, err := ParseEventChannel("131072"); err == nil {
		t.Error("port 2^17 accepted")
	}
	if n, err := ParseEventChannel("131071"); err != nil || n != 131071 {
		t.Errorf("port 2^17-1: %d, %v", n, err)
	}
	for s := 0; s <= 8; s++ {
		if n, err := ParseState(strconv.Itoa(s)); err != nil || n != s {
			t.Errorf("ParseState(%d) = %d, %v", s, n, err)
		}
	}
	for _, bad := range []string{"9", "-1", "", "4 ", "1e0"} {
		if _, err := ParseState(bad); err == nil {
			t.Errorf("ParseState(%q) accepted", bad)
		}
	}
	a, err := ParseVdev("3:1:2:65535")
	if err != nil || a != (datapath.Addr{Channel: 1, Target: 2, LUN: 65535}) {
		t.Errorf("ParseVdev: %+v, %v", a, err)
	}
	for _, bad := range []string{"0:0:0", "0:0:0:0:0", "0:65536:0:0", "0:0:0:x", "0::0:0", "a:0:0:0"} {
		if _, err := ParseVdev(bad); err == nil {
			t.Errorf("ParseVdev(%q) accepted", bad)
		}
	}
	for _, c := range []struct {
		fe string
		ok bool
	}{
		{"/local/domain/5/device/vscsi/0", true},
		{"/local/domain/5/device/vscsi/0/", false},
		{"/local/domain/55/device/vscsi/0", false},
		{"/local/domain/5/../6/device/vscsi/0", false},
		{"/local/domain/5", false},
		{"/local/domain/5/", false},
		{"local/domain/5/device/vscsi/0", false},
		{"/local/domain/5/device/vs csi/0", false},
		{"/local/domain/5/" + strings.Repeat("a", 2000), false},
	} {
		if err := CheckFrontendPath(c.fe, 5); (err == nil) != c.ok {
			t.Errorf("CheckFrontendPath(%q) = %v", c.fe, err)
		}
	}
	// Messages never carry more than 40 bytes of a hostile value.
	_, err = ParseRingRef(strings.Repeat("x", 4000))
	if err == nil || len(err.Error()) > 100 {
		t.Errorf("long value error: %v", err)
	}
}

// FuzzXenstoreValues: every parser of guest- or toolstack-written values
// either refuses or returns a value whose canonical form reads back the
// same; none panics.
func FuzzXenstoreValues(f *testing.F) {
	for _, s := range []string{"0", "8", "4294967295", "4294967296", "-1", "abc", "0:0:1:0", "1:65535:65535:65535",
		"/local/domain/5/device/vscsi/0", "/local/domain/5/../0", "00000000001", "dev-3", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if n, err := ParseRingRef(v); err == nil {
			if m, _ := strconv.ParseUint(v, 10, 64); uint64(n) != m {
				t.Fatalf("ParseRingRef(%q) = %d", v, n)
			}
		} else if len(err.Error()) > 250 { // at most 40 bytes of the value, escaped
			t.Fatalf("error too long: %d bytes", len(err.Error()))
		}
		if n, err := ParseEventChannel(v); err == nil && (n == 0 || n > maxPort) {
			t.Fatalf("ParseEventChannel(%q) = %d", v, n)
		}
		if n, err := ParseState(v); err == nil && (n < 0 || n > 8 || strconv.Itoa(n) != strings.TrimLeft(v, "0") && n != 0) {
			t.Fatalf("ParseState(%q) = %d", v, n)
		}
		if a, err := ParseVdev(v); err == nil {
			f := strings.Split(v, ":")
			for i, want := range []uint16{a.Channel, a.Target, a.LUN} {
				if m, _ := strconv.ParseUint(f[i+1], 10, 64); m != uint64(want) {
					t.Fatalf("ParseVdev(%q) = %+v", v, a)
				}
			}
		}
		if err := CheckFrontendPath(v, 5); err == nil && !strings.HasPrefix(v, "/local/domain/5/") {
			t.Fatalf("CheckFrontendPath accepted %q", v)
		}
		if n, ok := devIndex(v); ok && "dev-"+strconv.FormatUint(n, 10) != "dev-"+strings.TrimLeft(v[4:], "0") && n != 0 {
			t.Fatalf("devIndex(%q) = %d", v, n)
		}
	})
}
