package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govscsi/govscsi/internal/opfile"
	"github.com/govscsi/govscsi/internal/opfile/opfiletest"
	"github.com/govscsi/govscsi/libxlgo/xenif"
	"github.com/govscsi/govscsi/libxlgo/xsfake"
	"github.com/govscsi/govscsi/plugin/hold"
	"github.com/govscsi/govscsi/plugin/internal/rigtest"
	"github.com/govscsi/govscsi/tests/simpeer"
)

func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), prog)
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// host: an xsfake server with dom0, the scripted backend, and guest 5
// ("guest5", introduced) with its scripted frontend.
func host(t *testing.T) (*xsfake.Started, *xsfake.Client) {
	h := rigtest.NewHost(t)
	h.Guest(5, "guest5")
	bs, err := h.Srv.Connect(0)
	if err != nil {
		t.Fatal(err)
	}
	stopBE := simpeer.Start((&simpeer.Backend{Store: bs}).Run)
	fs, err := h.Srv.Connect(5)
	if err != nil {
		t.Fatal(err)
	}
	stopFE := simpeer.Start((&simpeer.Frontend{Store: fs, Domid: 5, RingRef: "8", EventChannel: "9"}).Run)
	t.Cleanup(func() { stopFE(); stopBE(); fs.Close(); bs.Close() })
	return h.Srv, h.Admin
}

func writeFile(t *testing.T, p, body string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The binary with --once on real libxenstore: the running guest without
// devices gets them, a stale tree of a gone domain is removed.
func TestOnce(t *testing.T) {
	bin := build(t)
	_, a := host(t)
	if err := a.Write(xenif.NoTx, "/local/domain/0/backend/vscsi/9/0/state", "6"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "guest5.cfg"), "name = 'guest5'\nvscsi = [ 'naa.5001405012345678:0,0:0:0:0' ]\n")
	cfg := filepath.Join(dir, "autoattach.yaml")
	writeFile(t, cfg, "config_dirs: ["+dir+"]\nlog_level: debug\ntoolstack:\n  backend_domid: 0\n  timeout: 20s\n")
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "--once", "--config", cfg)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	for p, want := range map[string]string{
		"/local/domain/0/backend/vscsi/5/0/state":                  "4",
		"/local/domain/5/device/vscsi/0/state":                     "4",
		"/local/domain/0/backend/vscsi/5/0/vscsi-devs/dev-0/state": "4",
	} {
		if v, err := a.Read(xenif.NoTx, p); err != nil || v != want {
			t.Errorf("%s = %q (%v), want %q", p, v, err, want)
		}
	}
	if _, err := a.Read(xenif.NoTx, "/local/domain/0/backend/vscsi/9"); err == nil {
		t.Errorf("stale tree of domain 9 kept")
	}
	if !strings.Contains(stderr.String(), "vscsi devices attached") {
		t.Errorf("log:\n%s", stderr.String())
	}

	// A second pass with a domain whose config is bad: exit status 1, the
	// error names the domain and the token; domain 5 is left alone.
	if err := a.Mkdir(xenif.NoTx, "/local/domain/6"); err != nil {
		t.Fatal(err)
	}
	if err := a.Write(xenif.NoTx, "/local/domain/6/name", "bad6"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "bad6.cfg"), "name = 'bad6'\nvscsi = [ 'naa.5001405012345678:0,0:0:0:0,nope' ]\n")
	stderr.Reset()
	cmd = exec.Command(bin, "--once", "--config", cfg)
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("--once with a bad config: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{"domain 6 (bad6)", "nope", "unknown option", "already has vscsi vhosts", "not every domain got its vscsi devices"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, stderr.String())
		}
	}
}

// The daemon: a domain introduced while it runs gets its devices; SIGTERM
// stops it cleanly.
func TestDaemonSIGTERM(t *testing.T) {
	bin := build(t)
	_, a := host(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "guest5.cfg"), "name = 'guest5'\nvscsi = [ 'naa.5001405012345678:0,2:0:0:0' ]\n")
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "--config-dir", dir, "--config", filepath.Join(dir, "none.yaml"))
	cmd.Stderr = &stderr
	// An explicit --config that does not exist is an error.
	if err := cmd.Run(); err == nil || !strings.Contains(stderr.String(), "none.yaml") {
		t.Fatalf("missing explicit config: %v\n%s", err, stderr.String())
	}
	stderr.Reset()
	cmd = exec.Command(bin, "--config-dir", dir, "--log-level", "debug")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if v, _ := a.Read(xenif.NoTx, "/local/domain/5/device/vscsi/0/state"); v == "4" {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("never connected:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
	}
}

// Bad configuration is refused naming the bad key or value.
func TestBadConfig(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	for _, c := range []struct{ yaml, want string }{
		{"config_dir: [/etc/xen]\n", "config_dir"},
		{"log_level: loud\n", `"loud"`},
		{"toolstack:\n  flavor: kernel\n", "flavor"},
		{"toolstack:\n  timeout: soon\n", `"soon"`},
		{"toolstack: 3\n", "toolstack"},
		// Strict (issue 14): a key twice, a second document.
		{"log_level: info\nlog_level: debug\n", "given twice"},
		{"toolstack:\n  timeout: 1s\n  timeout: 2s\n", "given twice"},
		{"log_level: info\n---\nconfig_dirs: [/tmp]\n", "second YAML document"},
		{"hold_timeout: forever\n", `hold_timeout "forever"`},
		{"hold_timeout: -1s\n", "hold_timeout"},
		{"hold_timeout: 1h\n", "10m"},
	} {
		p := filepath.Join(dir, "c.yaml")
		writeFile(t, p, c.yaml)
		out, err := exec.Command(bin, "--config", p, "--once").CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("%q: %v, output %q lacks %q", c.yaml, err, out, c.want)
		}
	}
}

// The shipped default configuration parses and says what the defaults are.
func TestShippedConfig(t *testing.T) {
	st, err := load("../../systemd/autoattach.yaml", true)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(st.dirs, " ") != "/etc/xen /etc/xen/auto" || st.opts.InitTimeout != DefaultConnectTimeout ||
		st.opts.DestroyTimeout != 10*time.Second || st.opts.BackendDomid != 0 || !st.timeout || st.hold != 30*time.Second {
		t.Errorf("shipped config: %+v", st)
	}
	p := filepath.Join(t.TempDir(), "nohold.yaml")
	writeFile(t, p, "hold_timeout: 0\n")
	if st, err := load(p, true); err != nil || st.hold != 0 {
		t.Errorf("hold_timeout 0: %+v %v", st, err)
	}
	// A missing default file is fine: the same defaults.
	st, err = load(filepath.Join(t.TempDir(), "absent.yaml"), false)
	if err != nil || strings.Join(st.dirs, " ") != "/etc/xen /etc/xen/auto" || st.timeout || st.hold != hold.DefaultMaxHold {
		t.Errorf("absent default: %+v %v", st, err)
	}
}

// TestLoadHostilePaths: --config naming a FIFO, /dev/zero, a directory or
// an oversize file is an error at once.
func TestLoadHostilePaths(t *testing.T) {
	opfiletest.Check(t, opfile.MaxConfigSize, func(p string) error { _, err := load(p, true); return err })
}

// Stopping the daemon never takes a device from a guest: SIGTERM while it
// waits for a running guest's frontend to connect a hot-plugged vhost
// leaves the vhost as written (the guest may be connecting it right then),
// where an interrupted attach used to roll it back. The restarted daemon
// leaves it alone, and the guest's frontend connects it.
func TestSIGTERMKeepsDevicesBeingConnected(t *testing.T) {
	bin := build(t)
	h := rigtest.NewHost(t)
	h.Guest(6, "slow6") // no frontend yet: its xen-scsifront loads later
	bs, err := h.Srv.Connect(0)
	if err != nil {
		t.Fatal(err)
	}
	stopBE := simpeer.Start((&simpeer.Backend{Store: bs}).Run)
	t.Cleanup(func() { stopBE(); bs.Close() })
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "slow6.cfg"), "name = 'slow6'\nvscsi = [ 'naa.5001405012345678:0,0:0:0:0' ]\n")
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "--config-dir", dir, "--log-level", "debug")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	be := "/local/domain/0/backend/vscsi/6/0"
	deadline := time.Now().Add(20 * time.Second)
	for {
		if v, _ := h.Admin.Read(xenif.NoTx, be+"/state"); v == "2" {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("vhost never probed:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // the daemon waits for the frontend now
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
	}
	for _, p := range []string{be + "/state", "/local/domain/6/device/vscsi/0/backend"} {
		if !h.Exists(p) {
			t.Fatalf("%s removed by the daemon's stop:\n%s", p, stderr.String())
		}
	}
	if !strings.Contains(stderr.String(), "the vscsi devices written stay for the guest") {
		t.Errorf("no log line saying the devices stay:\n%s", stderr.String())
	}
	// The guest's frontend comes: the vhost connects without any daemon.
	fs, err := h.Srv.Connect(6)
	if err != nil {
		t.Fatal(err)
	}
	stopFE := simpeer.Start((&simpeer.Frontend{Store: fs, Domid: 6, RingRef: "8", EventChannel: "9"}).Run)
	t.Cleanup(func() { stopFE(); fs.Close() })
	deadline = time.Now().Add(20 * time.Second)
	for {
		if v, _ := h.Admin.Read(xenif.NoTx, be+"/vscsi-devs/dev-0/state"); v == "4" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the kept vhost never connected")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
