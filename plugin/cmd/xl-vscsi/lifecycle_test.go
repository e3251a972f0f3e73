package main

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// saveImage writes the head of an xl save image whose configuration is
// cfg (libxl JSON when json, else text), then some stream bytes.
func saveImage(t *testing.T, path, cfg string, json bool) {
	t.Helper()
	var b bytes.Buffer
	b.WriteString(saveMagic)
	flags := uint32(2) // STREAMv2
	if json {
		flags |= saveFlagJSON
	}
	data := append([]byte(cfg), 0)
	for _, v := range []uint32{saveByteOrder, flags, 0, uint32(4 + len(data))} {
		binary.Write(&b, binary.LittleEndian, v) //nolint:errcheck // bytes.Buffer
	}
	binary.Write(&b, binary.LittleEndian, uint32(len(data))) //nolint:errcheck // bytes.Buffer
	b.Write(data)
	b.WriteString("libxl stream follows")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestParseSaveHeader(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "g.save")
	saveImage(t, p, `{"c_info": {"type": "pv", "name": "fresh", "uuid": "5d3b3c1f-0000-4000-8000-000000000001"}, "b_info": {}}`, true)
	id, err := readSaveIdentity(p)
	if err != nil || id.Name != "fresh" || id.UUID != "5d3b3c1f-0000-4000-8000-000000000001" {
		t.Fatalf("identity %+v, %v", id, err)
	}
	for name, c := range map[string]struct {
		data string
		want string
	}{
		"short":    {"Xen saved", "header"},
		"magic":    {strings.Repeat("x", 60), "wrong magic"},
		"no json":  {"", "not libxl JSON"},
		"no name":  {"", "names no domain"},
		"big size": {"", "limit"},
	} {
		q := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		switch name {
		case "no json":
			saveImage(t, q, `name = "fresh"`, false)
		case "no name":
			saveImage(t, q, `{"c_info": {}}`, true)
		case "big size":
			var b bytes.Buffer
			b.WriteString(saveMagic)
			for _, v := range []uint32{saveByteOrder, 3, 0, 1 << 30, 1<<30 - 4} {
				binary.Write(&b, binary.LittleEndian, v) //nolint:errcheck // bytes.Buffer
			}
			os.WriteFile(q, b.Bytes(), 0o644)
		default:
			os.WriteFile(q, []byte(c.data), 0o644)
		}
		if _, err := readSaveIdentity(q); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
	if _, err := readSaveIdentity(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory as image: %v", err)
	}
}

// restore: the image names domain "fresh"; its config is found in the
// config directory; xl restores it paused, its devices are attached, then
// it is unpaused. A config given on the command line wins, and goes to xl.
func TestCLIRestore(t *testing.T) {
	r := newCLIRig(t, nil)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "fresh.cfg")
	os.WriteFile(cfg, []byte("name = 'fresh'\nvscsi = [ '"+pdevA+",0:0:0:0' ]\n"), 0o644)
	img := filepath.Join(t.TempDir(), "fresh.save")
	saveImage(t, img, `{"c_info": {"name": "fresh"}}`, true)

	r.ok("restore", "--config-dir", dir, img)
	log, _ := os.ReadFile(r.xlLog)
	if string(log) != "restore -p "+img+"\nunpause 6\n" {
		t.Errorf("xl calls:\n%s", log)
	}
	for _, p := range []string{"/local/domain/0/backend/vscsi/6/0/vscsi-devs/dev-0/state", "/local/domain/6/device/vscsi/0/vscsi-devs/dev-0/state"} {
		if got := r.read(p); got != "4" {
			t.Errorf("%s = %q", p, got)
		}
	}

	// -p: left paused; an explicit config goes to xl too.
	r.Admin.Rm(0, "/local/domain/6")
	r.ok("cleanup")
	os.Remove(r.xlLog)
	r.ok("restore", "--", "-p", cfg, img)
	log, _ = os.ReadFile(r.xlLog)
	if string(log) != "restore -p "+cfg+" "+img+"\n" {
		t.Errorf("xl calls with -p:\n%s", log)
	}

	// A domain without a config in the directories: restored without
	// vscsi devices, and said so.
	r.Admin.Rm(0, "/local/domain/6")
	r.ok("cleanup")
	_, errs, code := r.run("restore", "--config-dir", t.TempDir(), img)
	if code != 0 || !strings.Contains(errs, `names domain "fresh": it gets no vscsi devices`) {
		t.Errorf("no config: exit %d, %q", code, errs)
	}
	// A bad vscsi= entry: nothing is restored.
	bad := filepath.Join(t.TempDir(), "fresh.cfg")
	os.WriteFile(bad, []byte("name = 'fresh'\nvscsi = [ 'nonsense' ]\n"), 0o644)
	os.Remove(r.xlLog)
	if _, errs, code := r.run("restore", bad, img); code != 1 || !strings.Contains(errs, "nonsense") {
		t.Errorf("bad config: exit %d, %q", code, errs)
	}
	if _, err := os.Stat(r.xlLog); err == nil {
		t.Error("xl ran for a bad config")
	}
	if _, errs, code := r.run("restore", "--", "-c", img); code != 1 || !strings.Contains(errs, "console") {
		t.Errorf("-c: exit %d, %q", code, errs)
	}
}

// migrate-receive: xl migrate-receive -p gets the stream on stdin/stdout;
// once the domain arrived (and was renamed), its devices are attached and
// it is unpaused. Nothing of ours goes to stdout.
func TestCLIMigrateReceive(t *testing.T) {
	r := newCLIRig(t, nil)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "fresh.cfg"), []byte("name = 'fresh'\nvscsi = [ '"+pdevA+",0:0:0:0' ]\n"), 0o644)
	var streamOut bytes.Buffer
	migrateStream = func() (rd io.Reader, w io.Writer) { return strings.NewReader("stream-bytes\n"), &streamOut }
	defer func() { migrateStream = defaultMigrateStream }()
	out := r.ok("migrate-receive", "--config-dir", dir, "--", "-e")
	if out != "" {
		t.Errorf("stdout of migrate-receive (the stream!): %q", out)
	}
	if streamOut.String() != "got stream-bytes\n" {
		t.Errorf("xl's stream answer: %q", streamOut.String())
	}
	log, _ := os.ReadFile(r.xlLog)
	if string(log) != "migrate-receive -p -e\nunpause 6\n" {
		t.Errorf("xl calls:\n%s", log)
	}
	if got := r.read("/local/domain/0/backend/vscsi/6/0/vscsi-devs/dev-0/state"); got != "4" {
		t.Errorf("received domain: dev-0 state %q", got)
	}
}

// migrate: xl migrate runs the receive command itself (-s ”), which is
// ssh to the host running xl-vscsi migrate-receive with this command's
// options, and xl's receive options derived as xl derives them.
func TestCLIMigrateRune(t *testing.T) {
	r := newCLIRig(t, nil)
	r.ok("migrate", "--flavour", "userspace", "--config-dir", "/etc/my xen", "--", "-s", "ssh -p 2222", "-e", "-p", "guest5", "dst")
	log, _ := os.ReadFile(r.xlLog)
	want := "migrate -s  -e -p guest5 exec ssh -p 2222 dst xl-vscsi migrate-receive --config-dir='/etc/my xen' --flavour=userspace -- -e -p\n"
	if string(log) != want {
		t.Errorf("xl calls:\n%s\nwant\n%s", log, want)
	}
	os.Remove(r.xlLog)
	r.ok("migrate", "--", "-s", "", "guest5", "xl-vscsi migrate-receive")
	log, _ = os.ReadFile(r.xlLog)
	if string(log) != "migrate -s  guest5 xl-vscsi migrate-receive\n" {
		t.Errorf("-s '': %s", log)
	}
}
