package prstore

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/govscsi/govscsi/backend/scsi"
)

func dirs(t *testing.T) Dirs {
	t.Helper()
	base := t.TempDir()
	return Dirs{Run: filepath.Join(base, "run", "pr"), APTPL: filepath.Join(base, "lib", "pr")}
}

var state = scsi.PRState{Generation: 4, Registrations: []scsi.PRRegistration{
	{Initiator: "vm:1111/vhost:0", Key: 0x1a2b0001}, {Initiator: "vm:2222/vhost:0", Key: 0x1a2b0002, AllTargetPorts: true}},
	Reservation: &scsi.PRReservation{Holder: "vm:1111/vhost:0", Type: 5}}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func TestSaveLoad(t *testing.T) {
	d := dirs(t)
	s, err := d.For("naa.3a1b2c3d4e5f6071", "file:/srv/shared.img")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Load(); ok || err != nil {
		t.Fatalf("nothing saved yet: %v %v", ok, err)
	}
	run, lib := filepath.Join(d.Run, "naa.3a1b2c3d4e5f6071.json"), filepath.Join(d.APTPL, "naa.3a1b2c3d4e5f6071.json")
	// Without APTPL: only the run file.
	if err := s.Save(state); err != nil {
		t.Fatal(err)
	}
	if !exists(run) || exists(lib) {
		t.Fatalf("run file %v, APTPL file %v", exists(run), exists(lib))
	}
	got, ok, err := s.Load()
	if err != nil || !ok || !reflect.DeepEqual(got, state) {
		t.Fatalf("Load = %+v %v %v", got, ok, err)
	}
	// The operator's view: readable, keys in hex, the backing named.
	b, _ := os.ReadFile(run)
	for _, w := range []string{`"key": "0x000000001a2b0001"`, `"backing": "file:/srv/shared.img"`, `"type_name": "write exclusive, registrants only"`} {
		if !strings.Contains(string(b), w) {
			t.Fatalf("file lacks %s:\n%s", w, b)
		}
	}
	// With APTPL: both; after a "reboot" (run dir gone) the APTPL file is loaded.
	aptpl := state
	aptpl.APTPL, aptpl.Generation = true, 5
	if err := s.Save(aptpl); err != nil {
		t.Fatal(err)
	}
	if !exists(lib) {
		t.Fatal("no APTPL file")
	}
	os.RemoveAll(d.Run)
	if got, ok, _ := s.Load(); !ok || !reflect.DeepEqual(got, aptpl) {
		t.Fatalf("after a reboot: %+v %v", got, ok)
	}
	// APTPL turned off: the APTPL file goes; an empty state removes everything.
	if err := s.Save(state); err != nil || exists(lib) || !exists(run) {
		t.Fatalf("APTPL off: err %v, APTPL file %v, run file %v", err, exists(lib), exists(run))
	}
	s.Save(aptpl)
	if err := s.Save(scsi.PRState{Generation: 9, APTPL: true}); err != nil || exists(lib) || exists(run) {
		t.Fatalf("empty state: err %v, files %v %v", err, exists(lib), exists(run))
	}
	if _, ok, _ := s.Load(); ok {
		t.Fatal("an empty state loads as a state")
	}
	// The run file (this boot) wins over an older APTPL file.
	s.Save(aptpl)
	newer := aptpl
	newer.APTPL, newer.Generation = false, 6
	os.WriteFile(lib, mustRead(t, lib), 0o600) // keep the old APTPL file around
	s2, _ := Dirs{Run: d.Run}.For("naa.3a1b2c3d4e5f6071", "x")
	s2.Save(newer)
	if got, _, _ := s.Load(); got.Generation != 6 {
		t.Fatalf("loaded generation %d, want the run file's 6", got.Generation)
	}
}

func mustRead(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBadFiles(t *testing.T) {
	d := dirs(t)
	s, _ := d.For("naa.31", "ram:1M")
	os.MkdirAll(d.Run, 0o700)
	p := filepath.Join(d.Run, "naa.31.json")
	for name, content := range map[string]string{
		"garbage":      "{not json",
		"unknown key":  `{"logical_unit": "naa.31", "colour": "red"}`,
		"other unit":   `{"logical_unit": "naa.32"}`,
		"bad key":      `{"logical_unit": "naa.31", "registrations": [{"initiator": "a", "key": "0xZZ"}]}`,
		"trailing ok?": `{"logical_unit": "naa.31", "registrations": [{"initiator": "a", "key": "12"}]}`,
	} {
		os.WriteFile(p, []byte(content), 0o600)
		_, ok, err := s.Load()
		if name == "trailing ok?" {
			if err != nil || !ok {
				t.Fatalf("%s: %v", name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "remove the file") {
			t.Fatalf("%s: error %v, want one naming %s and saying how to clear it", name, err, p)
		}
	}
	if _, err := d.For("../etc/passwd", ""); err == nil {
		t.Fatal("a name with a path accepted")
	}
}

func TestSaveFailures(t *testing.T) {
	// a regular file where a directory should be: even root cannot write there
	ro := filepath.Join(t.TempDir(), "not-a-dir")
	os.WriteFile(ro, nil, 0o600)
	// An unwritable run directory only loses the state for the next process.
	s, _ := Dirs{Run: filepath.Join(ro, "pr")}.For("naa.31", "")
	if err := s.Save(state); err != nil {
		t.Fatalf("run dir failure returned %v", err)
	}
	// An unwritable APTPL directory fails the command that asked for APTPL.
	s, _ = Dirs{APTPL: filepath.Join(ro, "pr")}.For("naa.31", "")
	aptpl := state
	aptpl.APTPL = true
	if err := s.Save(aptpl); err == nil {
		t.Fatal("APTPL state not kept, and no error")
	}
}
