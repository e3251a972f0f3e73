package lunconf

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govscsi/govscsi/backend/scsi"
)

func TestParse(t *testing.T) {
	good := []struct {
		in   string
		want Spec
	}{
		{"/dev/sdb", Spec{Kind: KindDevice, Path: "/dev/sdb"}},
		{"/dev/disk/by-id/wwn-0x5000c500a1b2c3d4", Spec{Kind: KindDevice, Path: "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"}},
		{"/dev/sg3", Spec{Kind: KindDevice, Path: "/dev/sg3"}},
		{"/dev/sdb,ro", Spec{Kind: KindDevice, Path: "/dev/sdb", ReadOnly: true}},
		{"/dev/sdb,direct,ro", Spec{Kind: KindDevice, Path: "/dev/sdb", ReadOnly: true, Direct: true}},
		{"block:/dev/vg/lv", Spec{Kind: KindBlock, Path: "/dev/vg/lv"}},
		{"block:/dev/vg/lv,direct", Spec{Kind: KindBlock, Path: "/dev/vg/lv", Direct: true}},
		{"sg:/dev/sdc", Spec{Kind: KindSG, Path: "/dev/sdc"}},
		{"sg:/dev/sg1,raw", Spec{Kind: KindSG, Path: "/dev/sg1", Raw: true}},
		{"file:/var/lib/img/a.img", Spec{Kind: KindFile, Path: "/var/lib/img/a.img"}},
		{"file:/var/lib/img/a b.img,ro", Spec{Kind: KindFile, Path: "/var/lib/img/a b.img", ReadOnly: true}},
		{"ram:64M", Spec{Kind: KindRAM, Size: 64 << 20}},
		{"ram:64MiB", Spec{Kind: KindRAM, Size: 64 << 20}},
		{"ram:64mb", Spec{Kind: KindRAM, Size: 64 << 20}},
		{"ram:1g,ro", Spec{Kind: KindRAM, Size: 1 << 30, ReadOnly: true}},
		{"ram:4096", Spec{Kind: KindRAM, Size: 4096}},
		{"ram:1K", Spec{Kind: KindRAM, Size: 1024}},
		{"ram:1T", Spec{Kind: KindRAM, Size: 1 << 40}},
	}
	for _, c := range good {
		got, err := Parse(c.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("Parse(%q) = %+v, want %+v", c.in, got, c.want)
		}
		// The canonical form parses back to the same spec.
		again, err := Parse(got.String())
		if err != nil || again != got {
			t.Errorf("Parse(%q).String() = %q reparses to %+v, %v", c.in, got.String(), again, err)
		}
	}
	bad := []struct{ in, word string }{
		{"", "empty"},
		{"0:0:1:0", "kernel"},
		{"naa.5001405abcdef:0", "kernel"},
		{"sdb", "unknown form"},
		{"dev/sdb", "unknown form"},
		{"file:img", "not absolute"},
		{"file:", "empty path"},
		{"file:/a/../etc/shadow", "not clean"},
		{"file:/a//b", "not clean"},
		{"/dev/sdb/", "not clean"},
		{"/etc/shadow", "not under /dev/"},
		{"block:/tmp/x", "not under /dev/"},
		{"/dev", "directory"},
		{"ram:", "missing size"},
		{"ram:M", "no number"},
		{"ram:-1M", "not a decimal"},
		{"ram:0", "zero"},
		{"ram:1000", "multiple of 512"},
		{"ram:2T", "limit"},
		{"ram:99999999999999999999", "limit"},
		{"ram:0x10", "not a decimal"},
		{"ram:64M,direct", "direct"},
		{"file:/x,raw", "raw"},
		{"/dev/sdb,rw", "unknown option \"rw\""},
		{"/dev/sdb,ro,ro", "twice"},
		{"/dev/sdb,", "unknown option \"\""},
		{"/dev/sdb,raw,direct", "exclude"},
		{"/dev/sd\nb", "control character"},
		{"/dev/sd\x00b", "control character"},
		{"/" + strings.Repeat("a", MaxPdevLen), "longer"},
	}
	for _, c := range bad {
		_, err := Parse(c.in)
		if err == nil {
			t.Errorf("Parse(%q) succeeded", c.in)
			continue
		}
		if !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), c.word) {
			t.Errorf("Parse(%q) = %v; want ErrSyntax mentioning %q", c.in, err, c.word)
		}
	}
}

func TestPolicyCheck(t *testing.T) {
	p := Policy{AllowPaths: []string{"/dev/", "/srv/img"}, MaxRAM: 1 << 20}
	for _, c := range []struct {
		pdev string
		ok   bool
	}{
		{"/dev/sdb", true},
		{"file:/srv/img/a", true},
		{"file:/srv/img", true},
		{"file:/srv/imgother/a", false}, // whole components only
		{"file:/etc/passwd", false},
		{"ram:1M", true},
		{"ram:2M", false},
	} {
		s, err := Parse(c.pdev)
		if err != nil {
			t.Fatal(err)
		}
		err = p.Check(s)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrNotAllowed)) {
			t.Errorf("Check(%q) = %v, want ok=%v", c.pdev, err, c.ok)
		}
	}
	if err := (Policy{MaxRAM: -1}).Check(Spec{Kind: KindRAM, Size: 512}); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("RAM disabled: %v", err)
	}
	if err := (Policy{}).Check(Spec{Kind: KindRAM, Size: 1 << 20}); err != nil {
		t.Errorf("zero policy refuses a small RAM disk: %v", err)
	}
}

// rw runs WRITE(10) then READ(10) of one block through the SCSI layer.
func rw(t *testing.T, l scsi.LUN, fill byte) {
	t.Helper()
	data := make([]byte, 512)
	for i := range data {
		data[i] = fill
	}
	var res scsi.Result
	l.Execute(&scsi.Command{CDB: []byte{0x2a, 0, 0, 0, 0, 1, 0, 0, 1, 0}, Dir: scsi.DirToDevice, Data: data}, &res)
	if res.Status != 0 {
		t.Fatalf("WRITE: status %#x sense %x", res.Status, res.Sense)
	}
	back := make([]byte, 512)
	res = scsi.Result{}
	l.Execute(&scsi.Command{CDB: []byte{0x28, 0, 0, 0, 0, 1, 0, 0, 1, 0}, Dir: scsi.DirFromDevice, Data: back}, &res)
	if res.Status != 0 || res.DataLen != 512 || back[0] != fill || back[511] != fill {
		t.Fatalf("READ: status %#x len %d data %x..", res.Status, res.DataLen, back[:4])
	}
}

func TestOpenFileAndRAM(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	p := Policy{AllowPaths: []string{dir}}
	o, err := p.Open("file:"+img, Options{ID: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Kind != KindFile || o.Inline {
		t.Errorf("file LUN: %+v", o)
	}
	rw(t, o.LUN, 0xa5)
	o.LUN.Close()
	raw, _ := os.ReadFile(img)
	if raw[512] != 0xa5 {
		t.Errorf("write did not reach the image file")
	}

	r, err := p.Open("ram:1M", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind != KindRAM || !r.Inline {
		t.Errorf("ram LUN: %+v", r)
	}
	rw(t, r.LUN, 0x5a)
	r.LUN.Close()

	// Read-only: WRITE is refused with DATA PROTECT.
	ro, err := p.Open("file:"+img+",ro", Options{})
	if err != nil {
		t.Fatal(err)
	}
	var res scsi.Result
	ro.LUN.Execute(&scsi.Command{CDB: []byte{0x2a, 0, 0, 0, 0, 1, 0, 0, 1, 0}, Dir: scsi.DirToDevice, Data: make([]byte, 512)}, &res)
	if res.Status != 2 || len(res.Sense) < 3 || res.Sense[2]&0x0f != 7 {
		t.Errorf("write to ro file: status %#x sense %x", res.Status, res.Sense)
	}
	ro.LUN.Close()
}

func TestOpenRefusals(t *testing.T) {
	dir := t.TempDir()
	allowed := filepath.Join(dir, "allowed")
	os.Mkdir(allowed, 0o700)
	secret := filepath.Join(dir, "secret.img")
	os.WriteFile(secret, make([]byte, 4096), 0o600)
	link := filepath.Join(allowed, "link.img")
	if err := os.Symlink(secret, link); err != nil {
		t.Fatal(err)
	}
	p := Policy{AllowPaths: []string{allowed, "/dev/"}}
	if _, err := p.Open("file:"+link, Options{}); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("symlink out of the allow-list: %v", err)
	}
	if _, err := p.Open("file:"+secret, Options{}); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("path out of the allow-list: %v", err)
	}
	if _, err := p.Open("file:"+filepath.Join(allowed, "missing.img"), Options{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := p.Open("file:"+allowed, Options{}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory as file: %v", err)
	}
	// /dev/null is a character device that does not speak SG_IO.
	if _, err := p.Open("/dev/null", Options{}); err == nil {
		t.Errorf("/dev/null opened as a LUN")
	}
	small := filepath.Join(allowed, "small.img")
	os.WriteFile(small, make([]byte, 100), 0o600)
	if _, err := p.Open("file:"+small, Options{}); err == nil {
		t.Errorf("a file smaller than one block opened")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"/dev/sdb", "/dev/sdb,ro,direct", "file:/a/b.img,ro", "ram:64M", "ram:1T",
		"sg:/dev/sg0,raw", "block:/dev/x", "0:0:0:0", "naa.50014:1", "ram:", "file:/a/../b", "ram:99999999999999999999K"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := Parse(in)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("Parse(%q): error %v does not wrap ErrSyntax", in, err)
			}
			return
		}
		if s.Kind == KindRAM {
			if s.Size <= 0 || s.Size%512 != 0 || s.Size > MaxRAMSize {
				t.Fatalf("Parse(%q): bad size %d", in, s.Size)
			}
		} else if filepath.Clean(s.Path) != s.Path || !filepath.IsAbs(s.Path) {
			t.Fatalf("Parse(%q): unclean path %q", in, s.Path)
		}
		again, err := Parse(s.String())
		if err != nil || again != s {
			t.Fatalf("Parse(%q) -> %q -> %+v, %v", in, s.String(), again, err)
		}
	})
}

// TestRAMDiskInStatePath: with a StatePath a RAM disk outlives its LUN (a
// daemon restart), and a different disk there starts empty.
func TestRAMDiskInStatePath(t *testing.T) {
	state := filepath.Join(t.TempDir(), "5", "0", "dev-1.lun")
	p := Policy{}
	o, err := p.Open("ram:1M", Options{ID: "ram:1M@5/0/dev-1", StatePath: state})
	if err != nil || o.Restored {
		t.Fatalf("first open: restored %v, %v", o.Restored, err)
	}
	rw(t, o.LUN, 0x3c)
	o.LUN.Close()
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("no state file after close: %v", err)
	}
	again, err := p.Open("ram:1M", Options{ID: "ram:1M@5/0/dev-1", StatePath: state})
	if err != nil || !again.Restored {
		t.Fatalf("reopen: restored %v, %v", again.Restored, err)
	}
	back := make([]byte, 512)
	var res scsi.Result
	again.LUN.Execute(&scsi.Command{CDB: []byte{0x28, 0, 0, 0, 0, 1, 0, 0, 1, 0}, Dir: scsi.DirFromDevice, Data: back}, &res)
	if res.Status != 0 || back[0] != 0x3c || back[511] != 0x3c {
		t.Fatalf("the restarted RAM disk lost its data: status %#x %x", res.Status, back[:4])
	}
	again.LUN.Close()
	other, err := p.Open("ram:2M", Options{ID: "ram:2M@5/0/dev-1", StatePath: state})
	if err != nil || other.Restored {
		t.Fatalf("another disk at the same path: restored %v, %v", other.Restored, err)
	}
	other.LUN.Close()
}
