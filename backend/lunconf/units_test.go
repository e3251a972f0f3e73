package lunconf

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/govscsi/govscsi/backend/prstore"
	"github.com/govscsi/govscsi/backend/scsi"
)

func execute(t *testing.T, l scsi.LUN, dir scsi.Direction, data []byte, cdb ...byte) scsi.Result {
	t.Helper()
	var res scsi.Result
	l.Execute(&scsi.Command{CDB: cdb, Dir: dir, Data: data}, &res)
	return res
}

func register(t *testing.T, l scsi.LUN, key uint64, aptpl bool) {
	t.Helper()
	p := make([]byte, 24)
	binary.BigEndian.PutUint64(p[8:], key)
	if aptpl {
		p[20] = 1
	}
	if res := execute(t, l, scsi.DirToDevice, p, 0x5F, 6, 0, 0, 0, 0, 0, 0, 24, 0); res.Status != 0 { // REGISTER AND IGNORE EXISTING KEY
		t.Fatalf("REGISTER %x: %#x % x", key, res.Status, res.Sense)
	}
}

func readKeys(t *testing.T, l scsi.LUN) []uint64 {
	t.Helper()
	buf := make([]byte, 256)
	res := execute(t, l, scsi.DirFromDevice, buf, 0x5E, 0, 0, 0, 0, 0, 0, 1, 0, 0)
	if res.Status != 0 {
		t.Fatalf("READ KEYS: %#x % x", res.Status, res.Sense)
	}
	var keys []uint64
	for i := 0; i < int(binary.BigEndian.Uint32(buf[4:]))/8; i++ {
		keys = append(keys, binary.BigEndian.Uint64(buf[8+8*i:]))
	}
	return keys
}

func naaOf(t *testing.T, l scsi.LUN) []byte {
	t.Helper()
	buf := make([]byte, 255)
	if res := execute(t, l, scsi.DirFromDevice, buf, 0x12, 1, 0x83, 0, 255, 0); res.Status != 0 {
		t.Fatalf("VPD 83h: %#x", res.Status)
	}
	return append([]byte(nil), buf[8:16]...)
}

// TestUnitsShareOneBacking: two attachments of one image through two paths
// (a symlink) are one logical unit: one NAA name, one reservation state,
// each its own nexus. A RAM disk is never shared.
func TestUnitsShareOneBacking(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "shared.img")
	os.WriteFile(img, make([]byte, 1<<20), 0o600)
	link := filepath.Join(dir, "link.img")
	os.Symlink("shared.img", link) // relative: safeopen refuses symlinks that leave the allowed directory
	p := Policy{AllowPaths: []string{dir}}
	units := &Units{}
	a, err := p.Open("file:"+img, Options{ID: "file:" + img, Units: units, Initiator: "vm:a/vhost:0"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Open("file:"+link, Options{ID: "file:" + link, Units: units, Initiator: "vm:b/vhost:0"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := p.Open("ram:1M", Options{ID: "ram:1M@1/0/dev-0", Units: units, Initiator: "vm:a/vhost:0"})
	if err != nil {
		t.Fatal(err)
	}
	if units.Len() != 1 {
		t.Fatalf("%d shared units, want 1", units.Len())
	}
	if !bytes.Equal(naaOf(t, a.LUN), naaOf(t, b.LUN)) {
		t.Fatal("two attachments of one backing report different NAA names")
	}
	register(t, a.LUN, 0xA, false)
	register(t, b.LUN, 0xB, false)
	if k := readKeys(t, a.LUN); len(k) != 2 || k[0] != 0xA || k[1] != 0xB {
		t.Fatalf("keys seen by a: %x", k)
	}
	if k := readKeys(t, other.LUN); len(k) != 0 {
		t.Fatalf("the RAM disk shares the file's reservations: %x", k)
	}
	a.LUN.Close()
	if units.Len() != 1 {
		t.Fatal("the unit went with its first disk")
	}
	b.LUN.Close()
	other.LUN.Close()
	if units.Len() != 0 {
		t.Fatalf("%d units left after every disk closed", units.Len())
	}
}

// TestUnitsKeepReservations: with a PR store the state outlives the unit:
// the next process (or the next attachment after all detached) finds the
// registrations; APTPL ones survive losing the run directory (a reboot).
func TestUnitsKeepReservations(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "shared.img")
	os.WriteFile(img, make([]byte, 1<<20), 0o600)
	dirs := prstore.Dirs{Run: filepath.Join(dir, "run"), APTPL: filepath.Join(dir, "lib")}
	p := Policy{AllowPaths: []string{img}}
	open := func(initiator string) scsi.LUN {
		t.Helper()
		o, err := p.Open("file:"+img, Options{ID: "file:" + img, Units: &Units{PR: dirs.For}, Initiator: initiator})
		if err != nil {
			t.Fatal(err)
		}
		return o.LUN
	}
	a := open("vm:a/vhost:0")
	register(t, a, 0xA, false)
	a.Close()
	a = open("vm:a/vhost:0") // a new Units: the next process
	if k := readKeys(t, a); len(k) != 1 || k[0] != 0xA {
		t.Fatalf("after a restart: keys %x", k)
	}
	register(t, a, 0, false) // unregister: the files go
	register(t, a, 0xC, true)
	a.Close()
	os.RemoveAll(dirs.Run) // a reboot
	a = open("vm:a/vhost:0")
	if k := readKeys(t, a); len(k) != 1 || k[0] != 0xC {
		t.Fatalf("after a reboot with APTPL: keys %x", k)
	}
	a.Close()
	// A state file the unit cannot believe: the attachment fails naming it.
	name := scsi.DiskOptions{ID: "file:" + img}.DeviceName()
	os.MkdirAll(dirs.Run, 0o700)
	os.WriteFile(filepath.Join(dirs.Run, name+".json"), []byte("{"), 0o600)
	if _, err := p.Open("file:"+img, Options{ID: "file:" + img, Units: &Units{PR: dirs.For}}); err == nil ||
		!bytes.Contains([]byte(err.Error()), []byte(name+".json")) {
		t.Fatalf("bad state file: %v", err)
	}
}
