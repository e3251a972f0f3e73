package hotplug_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govscsi/govscsi/cfgparse"
	"github.com/govscsi/govscsi/hotplug"
	"github.com/govscsi/govscsi/libxlgo/xenif"
	"github.com/govscsi/govscsi/libxlgo/xs"
	"github.com/govscsi/govscsi/plugin"
	"github.com/govscsi/govscsi/tests/simpeer"
)

// These tests run the installed shape: the wrapper hotplug/scripts/
// vscsi-govscsi exec'ing the vscsi-hotplug binary (built from this tree),
// against xsfake through the real libxenstore, checked with Debian's real
// xenstore-* tools, on a configfs fixture (GOVSCSI_CONFIGFS_FIXTURE=1).

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func hotplugBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vscsi-hotplug-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "vscsi-hotplug")
		out, err := exec.Command("go", "build", "-o", binPath, "./cmd/vscsi-hotplug").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func wrapperPath(t testing.TB) string {
	p, err := filepath.Abs("scripts/vscsi-govscsi")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func needTools(t *testing.T) {
	for _, tool := range []string{"xenstore-read", "xenstore-write", "xenstore-ls"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (xenstore-utils)", tool)
		}
	}
}

// scriptEnv is what the wrapper needs besides the libxl/udev variables:
// the binary, a log file, the fixture and state directory.
func (r *xsRig) scriptEnv(t testing.TB) []string {
	return []string{
		"GOVSCSI_HOTPLUG_BIN=" + hotplugBinary(t),
		"GOVSCSI_HOTPLUG_LOG=" + r.logFile(),
		"GOVSCSI_HOTPLUG_CONFIG=/dev/null",
		"GOVSCSI_CONFIGFS=" + r.root,
		"GOVSCSI_CONFIGFS_FIXTURE=1",
		"GOVSCSI_STATE_DIR=" + r.state,
		"GOVSCSI_LOG_LEVEL=debug",
	}
}

func (r *xsRig) logFile() string { return filepath.Join(filepath.Dir(r.state), "xen-hotplug.log") }

// script runs the wrapper with a minimal environment (as udev would give
// it: no PATH) plus env; it returns the exit code.
func (r *xsRig) script(t testing.TB, env []string, args ...string) int {
	t.Helper()
	cmd := exec.Command(wrapperPath(t), args...)
	cmd.Env = append([]string{"XENSTORED_PATH=" + os.Getenv("XENSTORED_PATH")}, r.scriptEnv(t)...)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin = nil
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if out.Len() > 0 {
		t.Errorf("the wrapper wrote to its own stdout/stderr instead of the log: %q", out.String())
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

// tool runs a real xenstore-* tool against the fake server.
func tool(t testing.TB, name string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	return strings.TrimSpace(string(out)), err
}

func (r *xsRig) readLog(t testing.TB) string {
	b, _ := os.ReadFile(r.logFile())
	return string(b)
}

// pluginGuest readies r for a plugin.Toolstack that runs the real
// wrapper: the wrapper's environment set in this process (the toolstack's
// runner passes it on), dom0 and guest5 (domid 5) as xl leaves them, be
// (on a dom0 connection made here) and a frontend for guest 5 running on
// simpeer. It returns a dom0 store on the real libxenstore for the
// toolstack; all of it goes at the end of the test.
func (r *xsRig) pluginGuest(t *testing.T, be *simpeer.Backend) *xs.Handle {
	t.Helper()
	for _, kv := range r.scriptEnv(t) {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	n0 := xenif.Perms{{Domid: 0, Bits: xenif.PermNone}}
	r.write("/local/domain/0/name", "Domain-0")
	r.admin.Mkdir(xenif.NoTx, "/local/domain/5")
	r.admin.SetPerms(xenif.NoTx, "/local/domain/5", xenif.Perms{{Domid: 0, Bits: xenif.PermNone}, {Domid: 5, Bits: xenif.PermRead}})
	r.write("/local/domain/5/name", "guest5")
	r.admin.Mkdir(xenif.NoTx, "/local/domain/5/device")
	r.admin.SetPerms(xenif.NoTx, "/local/domain/5/device", xenif.Perms{{Domid: 5, Bits: xenif.PermNone}, {Domid: 0, Bits: xenif.PermRead}})
	r.admin.Mkdir(xenif.NoTx, "/libxl/5")
	r.admin.SetPerms(xenif.NoTx, "/libxl/5", n0)
	r.srv.IntroduceDomain(5)

	bs, err := r.srv.Connect(0)
	if err != nil {
		t.Fatal(err)
	}
	be.Store = bs
	stopBE := simpeer.Start(be.Run)
	t.Cleanup(func() { stopBE(); bs.Close() })
	fs, err := r.srv.Connect(5)
	if err != nil {
		t.Fatal(err)
	}
	fe := &simpeer.Frontend{Store: fs, Domid: 5, RingRef: "43", EventChannel: "20", Log: t.Logf}
	stopFE := simpeer.Start(fe.Run)
	t.Cleanup(func() { stopFE(); fs.Close() })

	store, err := xs.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

// add then remove through the wrapper with exactly the environment
// plugin's runner passes (plugin.HotplugEnv), results read back with the
// real xenstore-read through the same relative path.
func TestScriptAddRemove(t *testing.T) {
	needTools(t)
	r := newXSRig(t)
	before := tree(t, r.root)
	r.vhost(5, 0, map[string][2]string{"dev-0": {"", r.backing}})
	env := plugin.HotplugEnv(wrapperPath(t), 5, 0)
	if code := r.script(t, env, "add"); code != 0 {
		t.Fatalf("add: exit %d\n%s", code, r.readLog(t))
	}
	if v, err := tool(t, "xenstore-read", "backend/vscsi/5/0/hotplug-status"); v != "connected" {
		t.Errorf("xenstore-read hotplug-status: %q %v", v, err)
	}
	if v, _ := tool(t, "xenstore-read", "backend/vscsi/5/0/vscsi-devs/dev-0/p-dev"); v != hotplug.PlannedPDev(r.backing) {
		t.Errorf("p-dev %q", v)
	}
	if log := r.readLog(t); !strings.Contains(log, "LIO LUN created") || !strings.Contains(log, "XENBUS_PATH=backend/vscsi/5/0") {
		t.Errorf("log:\n%s", log)
	}
	if code := r.script(t, env, "remove"); code != 0 {
		t.Fatalf("remove: exit %d", code)
	}
	if got := tree(t, r.root); strings.Join(got, "\n") != strings.Join(before, "\n") {
		t.Errorf("after remove:\n%s", strings.Join(got, "\n"))
	}
	if !strings.Contains(r.readLog(t), "LIO LUN removed") {
		t.Errorf("remove not logged:\n%s", r.readLog(t))
	}
}

// Failures through the wrapper: exit 1; hotplug-error and hotplug-status
// readable with xenstore-read when the backend exists; nothing written
// when XENBUS_PATH is missing or names no node.
func TestScriptFailures(t *testing.T) {
	needTools(t)
	r := newXSRig(t)
	r.vhost(5, 0, map[string][2]string{"dev-0": {"naa.5001405099999999:3", ""}})
	dump := r.srv.Dump()
	if code := r.script(t, []string{"XENBUS_TYPE=vscsi", "XENBUS_BASE_PATH=backend"}, "add"); code != 1 {
		t.Errorf("no XENBUS_PATH: exit %d", code)
	}
	if !strings.Contains(r.readLog(t), "XENBUS_PATH is not set") {
		t.Errorf("log:\n%s", r.readLog(t))
	}
	if code := r.script(t, plugin.HotplugEnv("x", 5, 9), "add"); code != 1 {
		t.Errorf("no such backend: exit %d", code)
	}
	if _, err := tool(t, "xenstore-read", "backend/vscsi/5/9"); err == nil {
		t.Errorf("the failing add created backend/vscsi/5/9")
	}
	if got := r.srv.Dump(); got != dump {
		t.Errorf("xenstore changed by failed invocations:\n%s", got)
	}
	if code := r.script(t, plugin.HotplugEnv("x", 5, 0), "add"); code != 1 {
		t.Errorf("unresolvable p-dev: exit %d", code)
	}
	he, _ := tool(t, "xenstore-read", "backend/vscsi/5/0/hotplug-error")
	hs, _ := tool(t, "xenstore-read", "backend/vscsi/5/0/hotplug-status")
	if hs != "error" || !strings.Contains(he, `dev-0: p-dev "naa.5001405099999999:3"`) {
		t.Errorf("hotplug-status %q, hotplug-error %q", hs, he)
	}
	// remove never fails, even with nothing to do.
	if code := r.script(t, plugin.HotplugEnv("x", 5, 0), "remove"); code != 0 {
		t.Errorf("remove: exit %d", code)
	}
	// A fixed p-dev: the next add clears hotplug-error.
	tool(t, "xenstore-write", "backend/vscsi/5/0/vscsi-devs/dev-0/p-devname", r.backing)
	if code := r.script(t, plugin.HotplugEnv("x", 5, 0), "add"); code != 0 {
		t.Fatalf("add after the fix: exit %d\n%s", code, r.readLog(t))
	}
	if _, err := tool(t, "xenstore-read", "backend/vscsi/5/0/hotplug-error"); err == nil {
		t.Errorf("hotplug-error left after a successful add")
	}
}

// udev's invocation: ACTION and UDEV_CALL=1 (with or without the action as
// the argument); the guard key written with the real xenstore-write makes
// it step aside.
func TestScriptUdev(t *testing.T) {
	needTools(t)
	r := newXSRig(t)
	r.vhost(5, 0, map[string][2]string{"dev-0": {"", r.backing}})
	udev := []string{"ACTION=add", "UDEV_CALL=1", "SUBSYSTEM=xen-backend", "DEVPATH=/devices/vscsi-5-0",
		"XENBUS_TYPE=vscsi", "XENBUS_PATH=backend/vscsi/5/0", "XENBUS_BASE_PATH=backend", "MODALIAS=xen-backend:vscsi"}
	if code := r.script(t, udev); code != 0 {
		t.Fatalf("udev add: exit %d\n%s", code, r.readLog(t))
	}
	if v, _ := tool(t, "xenstore-read", "backend/vscsi/5/0/hotplug-status"); v != "connected" {
		t.Errorf("hotplug-status %q", v)
	}
	rm := append(append([]string(nil), udev...), "ACTION=remove")
	if code := r.script(t, rm, "remove"); code != 0 {
		t.Fatalf("udev remove: exit %d", code)
	}
	if _, err := tool(t, "xenstore-write", "govscsi/disable_udev", "1"); err != nil {
		t.Fatal(err)
	}
	tool(t, "xenstore-rm", "backend/vscsi/5/0/hotplug-status")
	before := tree(t, r.root)
	if code := r.script(t, udev, "add"); code != 0 {
		t.Errorf("guarded udev add: exit %d", code)
	}
	if _, err := tool(t, "xenstore-read", "backend/vscsi/5/0/hotplug-status"); err == nil {
		t.Errorf("guarded udev add ran")
	}
	if got := tree(t, r.root); strings.Join(got, "\n") != strings.Join(before, "\n") {
		t.Errorf("guarded udev add changed configfs")
	}
}

// The wrapper's own job: PATH with the sbin directories (modprobe), POSIX
// locale without LC_*, stdout and stderr into the log, arguments passed
// through; and, when the binary is missing, Xen's fatal(): hotplug-error +
// hotplug-status=error (only under an existing backend path), exit 1.
func TestScriptWrapper(t *testing.T) {
	needTools(t)
	r := newXSRig(t)
	dir := t.TempDir()
	fake := filepath.Join(dir, "fake-bin")
	writeFile(t, fake, "#!/bin/sh\necho \"args: $*\"\nenv | sort\necho to-stderr >&2\nexit 3\n")
	os.Chmod(fake, 0o755)
	env := append(plugin.HotplugEnv("x", 5, 0), "GOVSCSI_HOTPLUG_BIN="+fake, "LC_ALL=de_DE.UTF-8", "LC_CTYPE=C.UTF-8", "LANG=de_DE")
	if code := r.script(t, env, "add", "extra=1"); code != 3 {
		t.Errorf("exit %d, want the binary's 3", code)
	}
	log := r.readLog(t)
	for _, want := range []string{"args: add extra=1", "LANG=POSIX", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "to-stderr", "XENBUS_PATH=backend/vscsi/5/0"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "LC_") {
		t.Errorf("LC_ variables not unset:\n%s", log)
	}

	missing := append(plugin.HotplugEnv("x", 5, 0), "GOVSCSI_HOTPLUG_BIN="+filepath.Join(dir, "nope"))
	dump := r.srv.Dump()
	if code := r.script(t, missing, "add"); code != 1 {
		t.Errorf("missing binary, no backend: exit %d", code)
	}
	if r.srv.Dump() != dump {
		t.Errorf("wrote under a backend path that does not exist")
	}
	r.vhost(5, 0, nil)
	if code := r.script(t, missing, "add"); code != 1 {
		t.Errorf("missing binary: exit %d", code)
	}
	he, _ := tool(t, "xenstore-read", "backend/vscsi/5/0/hotplug-error")
	hs, _ := tool(t, "xenstore-read", "backend/vscsi/5/0/hotplug-status")
	if hs != "error" || !strings.Contains(he, filepath.Join(dir, "nope")) {
		t.Errorf("hotplug-status %q hotplug-error %q", hs, he)
	}
}

// plugin's own hotplug runner (xl-vscsi's code path) runs the real wrapper
// and binary: attach of an LIO LUN that exists connects and leaves
// hotplug-status=connected; destroy runs remove; a p-dev LIO lacks fails
// the attach with the script's hotplug-error in the message, and the
// toolstack's rollback leaves nothing behind.
func TestPluginRunsScript(t *testing.T) {
	needTools(t)
	r := newXSRig(t)

	// The peers: the backend accepts a p-dev only if LIO (the fixture)
	// has it, as xen-scsiback does.
	lio := &hotplug.LIO{FS: hotplug.FixtureConfigFS{}, Root: r.root}
	store := r.pluginGuest(t, &simpeer.Backend{DevErrors: true, Log: t.Logf, Resolvable: func(p string) bool { return lio.Check(p, "") == nil }})
	var hlog bytes.Buffer
	ts := plugin.New(store, plugin.Options{Flavour: cfgparse.FlavourKernel, ConfigfsRoot: r.root, HotplugScript: wrapperPath(t),
		HotplugLog: &hlog, InitTimeout: 5 * time.Second, DestroyTimeout: 5 * time.Second})
	t.Cleanup(func() { ts.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	pdev := "naa.5001405012345678:0"
	if _, err := lio.Ensure(pdev, r.backing, func(hotplug.Step) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Attach(ctx, "guest5", pdev, "0:0:0:0"); err != nil {
		t.Fatalf("attach: %v\nlog:\n%s", err, r.readLog(t))
	}
	if v, _ := tool(t, "xenstore-read", "backend/vscsi/5/0/hotplug-status"); v != "connected" {
		t.Errorf("hotplug-status %q", v)
	}
	if _, err := ts.DestroyVHost(ctx, "guest5", 0); err != nil {
		t.Fatal(err)
	}
	log := r.readLog(t)
	if !strings.Contains(log, "action=add") || !strings.Contains(log, "action=remove") {
		t.Errorf("the toolstack did not run add and remove:\n%s", log)
	}
	if err := lio.Check(pdev, ""); err != nil {
		t.Errorf("remove took away a LUN it did not make: %v", err)
	}

	dump := r.srv.Dump()
	_, err := ts.Attach(ctx, "guest5", "naa.5001405099999999:1", "0:0:0:1")
	if err == nil || !strings.Contains(err.Error(), `p-dev "naa.5001405099999999:1": no xen-pvscsi LUN in LIO`) {
		t.Fatalf("attach of a p-dev LIO lacks: %v", err)
	}
	var left []string
	for _, l := range strings.Split(r.srv.Dump(), "\n") {
		if strings.Contains(l, "vscsi") && !strings.Contains(dump, l) {
			left = append(left, l)
		}
	}
	if len(left) > 0 {
		t.Errorf("left behind:\n%s", strings.Join(left, "\n"))
	}

	// A LUN the script has to create, as a toolstack would ask for it:
	// p-dev = PlannedPDev(backing), p-devname = backing (added here by a
	// shim, since xl-vscsi cannot write that yet). The frontend is running,
	// so the backend may read p-dev before the script made the LUN and
	// refuse it; the script then re-requests it and the attach succeeds
	// either way.
	before := tree(t, r.root)
	other := r.backing + ".new"
	writeFile(t, other, "data")
	shim := filepath.Join(t.TempDir(), "shim")
	writeFile(t, shim, "#!/bin/sh\n[ \"$1\" = add ] && xenstore-write \"$XENBUS_PATH/vscsi-devs/dev-0/p-devname\" "+other+"\nexec "+wrapperPath(t)+" \"$@\"\n")
	os.Chmod(shim, 0o755)
	ts2 := plugin.New(store, plugin.Options{Flavour: cfgparse.FlavourKernel, ConfigfsRoot: r.root, HotplugScript: shim,
		HotplugLog: &hlog, InitTimeout: 5 * time.Second, DestroyTimeout: 5 * time.Second})
	defer ts2.Close()
	planned := hotplug.PlannedPDev(other)
	if _, err := ts2.Attach(ctx, "guest5", planned, "0:0:0:2"); err != nil {
		t.Fatalf("attach of a LUN the script creates: %v\nlog:\n%s\n%s", err, r.readLog(t), hlog.String())
	}
	if err := lio.Check(planned, other); err != nil {
		t.Errorf("LUN after attach: %v", err)
	}
	vs, _ := ts2.List(5)
	if len(vs) != 1 || len(vs[0].Devs) != 1 || vs[0].Devs[0].BackendState != 4 || vs[0].Devs[0].FrontendState != 4 {
		t.Errorf("after attach: %+v", vs)
	}
	t.Logf("race outcome: re-requested=%v", strings.Contains(r.readLog(t), "look again"))
	if _, err := ts2.DestroyVHost(ctx, "guest5", vs[0].VHost); err != nil {
		t.Fatal(err)
	}
	if got := tree(t, r.root); strings.Join(got, "\n") != strings.Join(before, "\n") {
		t.Errorf("after destroy:\n%s", strings.Join(got, "\n"))
	}
}

// NAME=value arguments reach the configuration as well (Xen's findCommand
// exports them): here the state directory.
func TestScriptNameValueArgs(t *testing.T) {
	needTools(t)
	r := newXSRig(t)
	r.vhost(5, 0, map[string][2]string{"dev-0": {"", r.backing}})
	alt := filepath.Join(t.TempDir(), "alt-state")
	if code := r.script(t, plugin.HotplugEnv("x", 5, 0), "add", "GOVSCSI_STATE_DIR="+alt); code != 0 {
		t.Fatalf("add: exit %d\n%s", code, r.readLog(t))
	}
	if _, err := os.Stat(filepath.Join(alt, "vscsi-5-0.json")); err != nil {
		t.Errorf("record not in the state dir given as an argument: %v", err)
	}
	if code := r.script(t, plugin.HotplugEnv("x", 5, 0), "remove", "GOVSCSI_STATE_DIR="+alt); code != 0 {
		t.Fatalf("remove: exit %d", code)
	}
	if _, err := os.Stat(filepath.Join(alt, "vscsi-5-0.json")); err == nil {
		t.Errorf("record left")
	}
}
