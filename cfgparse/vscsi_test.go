package cfgparse

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestParseSpecOK(t *testing.T) {
	cases := []struct {
		in   string
		want Spec
		str  string // canonical String()
	}{
		{"8:0:2:1,0:0:0:0", Spec{PDev: PDev{Kind: PDevHCTL, HCTL: HCTL{8, 0, 2, 1}}}, "8:0:2:1,0:0:0:0"},
		{" 8:0:2:1 ,\t0:0:1:0 ", Spec{PDev: PDev{Kind: PDevHCTL, HCTL: HCTL{8, 0, 2, 1}}, VDev: HCTL{0, 0, 1, 0}}, "8:0:2:1,0:0:1:0"},
		{"/dev/sdm,3:0:4:5,feature-host", Spec{PDev: PDev{Kind: PDevPath, Path: "/dev/sdm"}, VDev: HCTL{3, 0, 4, 5}, FeatureHost: true}, "/dev/sdm,3:0:4:5,feature-host"},
		{"/dev/disk/by-id/scsi-35000c500a1b2c3d4 , 0:0:0:0 , feature-host ", Spec{PDev: PDev{Kind: PDevPath, Path: "/dev/disk/by-id/scsi-35000c500a1b2c3d4"}, FeatureHost: true}, "/dev/disk/by-id/scsi-35000c500a1b2c3d4,0:0:0:0,feature-host"},
		{"naa.5001405012345678:0,0:0:0:0", Spec{PDev: PDev{Kind: PDevNAA, WWN: "naa.5001405012345678"}}, "naa.5001405012345678:0,0:0:0:0"},
		// Leading zeros are accepted (sscanf does) and dropped.
		{"008:0:2:01,0:0:007:0", Spec{PDev: PDev{Kind: PDevHCTL, HCTL: HCTL{8, 0, 2, 1}}, VDev: HCTL{0, 0, 7, 0}}, "8:0:2:1,0:0:7:0"},
		{"naa.5001405012345678:007,0:0:0:0", Spec{PDev: PDev{Kind: PDevNAA, WWN: "naa.5001405012345678", LUN: 7}}, "naa.5001405012345678:7,0:0:0:0"},
		// P7: more than libxlutil's 16 hex digits, as long as xen-scsiback can
		// match it: 4 + 25 + 2 = 31 bytes.
		{"naa.5001405012345678ABCDEF012:9,0:0:0:0", Spec{PDev: PDev{Kind: PDevNAA, WWN: "naa.5001405012345678ABCDEF012", LUN: 9}}, "naa.5001405012345678ABCDEF012:9,0:0:0:0"},
		// 64-bit physical LUN (libxl's %llu), 32-bit host/channel/target.
		{"4294967295:4294967295:4294967295:18446744073709551615,4294967295:65535:65535:65535",
			Spec{PDev: PDev{Kind: PDevHCTL, HCTL: HCTL{1<<32 - 1, 1<<32 - 1, 1<<32 - 1, 1<<64 - 1}}, VDev: HCTL{1<<32 - 1, 65535, 65535, 65535}},
			"4294967295:4294967295:4294967295:18446744073709551615,4294967295:65535:65535:65535"},
	}
	for _, c := range cases {
		got, _, err := ParseSpec(c.in)
		if err != nil {
			t.Errorf("ParseSpec(%q): %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("ParseSpec(%q) = %+v, want %+v", c.in, got, c.want)
		}
		if got.String() != c.str {
			t.Errorf("ParseSpec(%q).String() = %q, want %q", c.in, got.String(), c.str)
		}
	}
}

// TestParseSpecErrors covers the rules of protocol.md §3.3 plus our
// stricter ones: each error names the bad token and says what is wrong.
func TestParseSpecErrors(t *testing.T) {
	cases := []struct {
		in, token, msg string
	}{
		// §3.3 rule 1: pdev and vdev are required.
		{"", "", "empty spec"},
		{"   ", "", "empty spec"},
		{"8:0:2:1", "8:0:2:1", "missing vdev"},
		{",0:0:0:0", "", "missing pdev"},
		{"8:0:2:1,", "", "missing vdev"},
		{"8:0:2:1, ,feature-host", "", "missing vdev"},
		// Extra tokens: SUSE ignores them, we reject them by name.
		{"8:0:2:1,0:0:0:0,feature-host,extra", "extra", "unknown option"},
		{"8:0:2:1,0:0:0:0,feature-host,feature-host", "feature-host", "option given twice"},
		{"8:0:2:1,0:0:0:0,", "", "empty option"},
		{"8:0:2:1,0:0:0:0,,feature-host", "", "empty option"},
		// §3.3 rule 4: the only option.
		{"8:0:2:1,0:0:0:0,Feature-Host", "Feature-Host", "unknown option, expected one of: direct, feature-host, raw, ro"},
		{"8:0:2:1,0:0:0:0,host", "host", "unknown option"},
		// §3.3 rule 2: pdev forms.
		{"sdb,0:0:0:0", "sdb", "want /dev/<node>, h:c:t:l or naa.<hex>:<lun>"},
		{"/dev/,0:0:0:0", "/dev/", "no device name after /dev/"},
		{"/dev/sd b,0:0:0:0", "/dev/sd b", "white space"},
		{"/srv/disk.img,0:0:0:0", "/srv/disk.img", "want /dev/<node>"},
		{"8:0:2,0:0:0:0", "8:0:2", "got 3 field(s)"},
		{"8:0:2:1:0,0:0:0:0", "8:0:2:1:0", "got 5 field(s)"},
		{"8:0:-2:1,0:0:0:0", "8:0:-2:1", `target "-2": not a decimal number`},
		{"+8:0:2:1,0:0:0:0", "+8:0:2:1", `host "+8": not a decimal number`},
		{"0x8:0:2:1,0:0:0:0", "0x8:0:2:1", "not a decimal number"},
		{"8::2:1,0:0:0:0", "8::2:1", `channel "": empty`},
		{"4294967296:0:0:0,0:0:0:0", "4294967296:0:0:0", "out of range"},
		{"8:0:0:18446744073709551616,0:0:0:0", "8:0:0:18446744073709551616", "lun \"18446744073709551616\": out of range"},
		// NAA rules (P6, P7).
		{"naa.5001405012345678,0:0:0:0", "naa.5001405012345678", "missing ':<lun>'"},
		{"naa.:0,0:0:0:0", "naa.:0", "no hex digits"},
		{"naa.50014050xyz:0,0:0:0:0", "naa.50014050xyz:0", `'x' is not a hex digit`},
		{"naa.5001405012345678:,0:0:0:0", "naa.5001405012345678:", "LIO LUN index \"\": empty"},
		{"naa.5001405012345678:-1,0:0:0:0", "naa.5001405012345678:-1", "not a decimal number"},
		{"naa.5001405012345678ABCDEF0123:9,0:0:0:0", "naa.5001405012345678ABCDEF0123:9", "is 32 bytes; xen-scsiback matches at most 31"},
		{"naa.5001405012345678ABCDEF012:10,0:0:0:0", "naa.5001405012345678ABCDEF012:10", "is 32 bytes"},
		{"NAA.5001405012345678:0,0:0:0:0", "NAA.5001405012345678:0", "want /dev/<node>, h:c:t:l or naa.<hex>:<lun>"},
		// §3.3 rule 3 and P11: vdev.
		{"8:0:2:1,0:0:0", "0:0:0", "vdev: want h:c:t:l"},
		{"8:0:2:1,a:0:0:0", "a:0:0:0", `vdev: host "a": not a decimal number`},
		{"8:0:2:1,0:0:0:0x1", "0:0:0:0x1", "not a decimal number"},
		{"8:0:2:1,0 :0:0:0", "0 :0:0:0", "not a decimal number"},
		{"8:0:2:1,0:65536:0:0", "0:65536:0:0", "channel 65536 does not fit the 16-bit ring field (max 65535)"},
		{"8:0:2:1,0:0:65536:0", "0:0:65536:0", "target 65536 does not fit"},
		{"8:0:2:1,0:0:0:65536", "0:0:0:65536", "lun 65536 does not fit"},
		{"8:0:2:1,0:0:0:18446744073709551615", "0:0:0:18446744073709551615", "lun 18446744073709551615 does not fit"},
		{"8:0:2:1,4294967296:0:0:0", "4294967296:0:0:0", "out of range"},
		// Control characters would end up in xenstore and in messages.
		{"8:0:2:1,0:0:0:0\x00", "", "control character '\\x00'"},
		{"/dev/sd\x1bb,0:0:0:0", "", "control character '\\x1b'"},
	}
	for _, c := range cases {
		_, _, err := ParseSpec(c.in)
		var se *SpecError
		if !errors.As(err, &se) {
			t.Errorf("ParseSpec(%q) = %v, want a *SpecError", c.in, err)
			continue
		}
		if se.Token != c.token || !strings.Contains(se.Msg, c.msg) {
			t.Errorf("ParseSpec(%q): token %q msg %q, want token %q msg containing %q", c.in, se.Token, se.Msg, c.token, c.msg)
		}
		if se.Entry != EntryNone || se.Spec != c.in {
			t.Errorf("ParseSpec(%q): origin %+v", c.in, se.Origin)
		}
		if !strings.Contains(err.Error(), strings.TrimSpace(c.msg)) || (c.token != "" && !strings.Contains(err.Error(), c.token)) {
			t.Errorf("ParseSpec(%q): message %q does not name the token and the problem", c.in, err)
		}
	}
}

// TestParseSpecWarnings: P11, devices Linux xen-scsifront will not scan.
func TestParseSpecWarnings(t *testing.T) {
	cases := []struct {
		in    string
		warns []string
	}{
		{"8:0:2:1,0:0:63:254", nil},
		{"8:0:2:1,7:0:0:0", nil}, // the vdev host only groups
		{"8:0:2:1,0:1:0:0", []string{"channel 1"}},
		{"8:0:2:1,0:0:64:0", []string{"target 64"}},
		{"8:0:2:1,0:0:0:255", []string{"lun 255"}},
		{"8:0:2:1,0:65535:65535:65535", []string{"channel 65535", "target 65535", "lun 65535"}},
	}
	for _, c := range cases {
		_, w, err := ParseSpecAt(Origin{Entry: 3, Spec: c.in, Pos: Pos{File: "g.cfg", Line: 2, Col: 9}})
		if err != nil {
			t.Fatalf("%q: %v", c.in, err)
		}
		if len(w) != len(c.warns) {
			t.Errorf("%q: warnings %v, want %v", c.in, w, c.warns)
			continue
		}
		for i := range w {
			s := w[i].String()
			if !strings.Contains(s, c.warns[i]) || !strings.HasPrefix(s, `g.cfg:2:9: vscsi[3] "`) || !strings.Contains(s, "warning") {
				t.Errorf("%q: warning %q, want one about %q with its origin", c.in, s, c.warns[i])
			}
		}
	}
}

func TestParseSpecsOrigins(t *testing.T) {
	pos := []Pos{{File: "g.cfg", Line: 4, Col: 11}, {File: "g.cfg", Line: 5, Col: 11}, {File: "g.cfg", Line: 6, Col: 11}}
	entries, _, err := ParseSpecs([]string{"8:0:2:1,0:0:0:0", "8:0:2:1,0:0:0:0,x", "sdb,0:0:0:0"}, pos)
	if entries != nil {
		t.Errorf("entries returned despite errors: %v", entries)
	}
	var all []*SpecError
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var se *SpecError
		if !errors.As(e, &se) {
			t.Fatalf("%v is not a *SpecError", e)
		}
		all = append(all, se)
	}
	if len(all) != 2 || all[0].Entry != 1 || all[1].Entry != 2 || all[0].Pos != pos[1] || all[1].Token != "sdb" {
		t.Fatalf("errors %v", err)
	}
	want := `g.cfg:5:11: vscsi[1] "8:0:2:1,0:0:0:0,x": "x": unknown option, expected one of: direct, feature-host, raw, ro`
	if all[0].Error() != want {
		t.Errorf("got  %s\nwant %s", all[0].Error(), want)
	}
	ok, _, err := ParseSpecs([]string{"8:0:2:1,0:0:0:0"}, nil)
	if err != nil || len(ok) != 1 || ok[0].Entry != 0 || ok[0].Pos.Line != 0 {
		t.Errorf("ParseSpecs without positions: %v %v", ok, err)
	}
	if s := ok[0].Origin.String(); s != `vscsi[0] "8:0:2:1,0:0:0:0"` {
		t.Errorf("origin without position renders %q", s)
	}
}

func TestConfigSpecsErrors(t *testing.T) {
	if _, _, err := ConfigSpecs("testdata/vscsi/does-not-exist.cfg"); err == nil || !strings.Contains(err.Error(), "does-not-exist.cfg") {
		t.Errorf("missing file: %v", err)
	}
	dir := t.TempDir()
	write := func(name, body string) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if e, w, err := ConfigSpecs(write("none.cfg", "name = \"g\"\n")); err != nil || e != nil || w != nil {
		t.Errorf("config without vscsi: %v %v %v", e, w, err)
	}
	if _, _, err := ConfigSpecs(write("str.cfg", "vscsi = '8:0:2:1,0:0:0:0'\n")); !errors.Is(err, ErrWrongType) {
		t.Errorf("vscsi as a string: %v, want ErrWrongType", err)
	}
	if _, _, err := ConfigSpecs(write("syn.cfg", "vscsi = [ '8:0:2:1,0:0:0:0' \n")); !errors.Is(err, ErrSyntax) {
		t.Errorf("syntax error: %v, want ErrSyntax", err)
	}
}

// FuzzVscsiSpec: no input panics; whatever parses renders canonically and
// parses back to the same Spec and the same canonical text.
func FuzzVscsiSpec(f *testing.F) {
	for _, s := range []string{
		"8:0:2:1,0:0:0:0", "/dev/sdm,3:0:4:5,feature-host", "naa.5001405012345678:0,0:0:0:0",
		" 8:0:2:1 , 0:0:1:0 ", "naa.5001405012345678ABCDEF012:9,0:0:0:0", "8:0:2:1,0:0:0:65535",
		"8:0:2:1,0:0:0:65536", "8:0:2:1", ",", ",,,", "naa.:", "/dev/,", "8:0:2:1,0:0:0:0,feature-host,x",
		"0008:0:2:1,0:0:0:0", "/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_drive-scsi0-0-0-1,0:0:1:0",
		"ram:64M,0:0:0:0,ro", "file:/srv/a b.img,0:0:0:0", "sg:/dev/sg0,0:0:0:0,raw,direct", "block:/dev/vg/lv,0:0:1:0,direct,ro",
		"ram:1T,0:0:0:0", "ram:0,0:0:0:0", "file:rel,0:0:0:0", "/dev/sdb,0:0:0:0,ro,ro",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, _, err := ParseSpec(in)
		if err != nil {
			var se *SpecError
			if !errors.As(err, &se) || se.Error() == "" {
				t.Fatalf("ParseSpec(%q): error %v is not a *SpecError", in, err)
			}
			return
		}
		out := s.String()
		s2, _, err := ParseSpec(out)
		if err != nil {
			t.Fatalf("ParseSpec(%q) ok, but its String() %q does not parse: %v", in, out, err)
		}
		if s2 != s || s2.String() != out {
			t.Fatalf("round trip of %q: %+v -> %q -> %+v", in, s, out, s2)
		}
	})
}

// The userspace backend's forms and LUN options survive the canonical
// rendering (ParseSpec(String()) gives the same Spec), and the options
// come back in p-dev order whatever order they were written in.
func TestUserspaceSpecRoundTrip(t *testing.T) {
	for _, in := range []string{"ram:64M,0:0:1:0,direct,ro", "file:/srv/a.img,0:0:0:0,ro", "sg:/dev/sg1,1:0:0:0,raw,feature-host", "/dev/sdb,0:0:0:0,raw,ro"} {
		s, _, err := ParseSpec(in)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		again, _, err := ParseSpec(s.String())
		if err != nil || again != s {
			t.Errorf("%q -> %q -> %+v %v", in, s.String(), again, err)
		}
	}
	s, _, _ := ParseSpec("ram:64M,0:0:1:0,raw,direct,ro")
	if got := strings.Join(s.LUNOptions(), ","); got != "ro,direct,raw" {
		t.Errorf("LUNOptions %q", got)
	}
}
