package hotplug_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/govscsi/govscsi/cfgparse"
	"github.com/govscsi/govscsi/hotplug"
	"github.com/govscsi/govscsi/libxlgo/xenif"
	"github.com/govscsi/govscsi/libxlgo/xs"
	"github.com/govscsi/govscsi/libxlgo/xsfake"
	"github.com/hashicorp/go-hclog"
)

// xsRig: an xsfake server, a dom0 admin client (pure Go) for setting up
// and checking, the Runner's store on the real libxenstore
// (XENSTORED_PATH), a configfs fixture and a state directory.
type xsRig struct {
	t        testing.TB
	srv      *xsfake.Started
	admin    *xsfake.Client
	store    *xs.Handle
	root     string // configfs fixture
	backing  string // a 1 MiB file
	state    string
	fail     func(op, p string) error
	log      *strings.Builder
	logMu    sync.Mutex
	lockTime time.Duration
}

func newXSRig(t testing.TB) *xsRig {
	t.Helper()
	r := &xsRig{t: t, srv: xsfake.StartT(t), log: &strings.Builder{}}
	var err error
	if r.admin, err = r.srv.Connect(0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.admin.Close() })
	n0 := xenif.Perms{{Domid: 0, Bits: xenif.PermNone}}
	for _, p := range []string{"/local/domain/0", "/local/domain/0/backend/vscsi"} {
		if err := r.admin.Mkdir(xenif.NoTx, p); err != nil {
			t.Fatal(err)
		}
		r.admin.SetPerms(xenif.NoTx, p, n0)
	}
	if r.store, err = xs.Open(0); err != nil {
		t.Fatalf("libxenstore against xsfake: %v", err)
	}
	t.Cleanup(func() { r.store.Close() })
	r.root, r.backing = configfsFixture(t)
	r.state = filepath.Join(t.TempDir(), "state")
	return r
}

// vhost writes backend/vscsi/<domid>/<devid> in state 2 with devices
// given as name -> {p-dev, p-devname} ("" = node absent).
func (r *xsRig) vhost(domid, devid int, devs map[string][2]string) string {
	r.t.Helper()
	return r.vhostType("vscsi", domid, devid, devs)
}

// vhostType is vhost under backend/<typ> instead of backend/vscsi.
func (r *xsRig) vhostType(typ string, domid, devid int, devs map[string][2]string) string {
	r.t.Helper()
	be := fmt.Sprintf("/local/domain/0/backend/%s/%d/%d", typ, domid, devid)
	r.write(be+"/state", "2")
	r.write(be+"/frontend-id", fmt.Sprint(domid))
	for n, v := range devs {
		dp := be + "/vscsi-devs/" + n
		r.write(dp+"/state", "1")
		r.write(dp+"/v-dev", "0:0:0:"+strings.TrimPrefix(n, "dev-"))
		if v[0] != "" {
			r.write(dp+"/p-dev", v[0])
		}
		if v[1] != "" {
			r.write(dp+"/p-devname", v[1])
		}
	}
	return be
}

func (r *xsRig) write(p, v string) {
	r.t.Helper()
	if err := r.admin.Write(xenif.NoTx, p, v); err != nil {
		r.t.Fatal(err)
	}
}

func (r *xsRig) read(p string) (string, bool) {
	v, err := r.admin.Read(xenif.NoTx, p)
	return v, err == nil
}

func (r *xsRig) Write(p []byte) (int, error) {
	r.logMu.Lock()
	defer r.logMu.Unlock()
	return r.log.Write(p)
}

func (r *xsRig) runner(f hotplug.Flavour) *hotplug.Runner {
	res := &cfgparse.Resolver{ConfigfsRoot: r.root}
	return &hotplug.Runner{
		Store: r.store, Flavour: f, Resolver: res, StateDir: r.state, LockTimeout: r.lockTime,
		LIO:    &hotplug.LIO{FS: hotplug.FixtureConfigFS{Fail: r.fail}, Root: r.root, Resolver: res},
		Logger: hclog.New(&hclog.LoggerOptions{Output: r, Level: hclog.Debug}),
	}
}

func (r *xsRig) run(f hotplug.Flavour, action, xenbusPath string, extraEnv ...string) error {
	env := map[string]string{"XENBUS_TYPE": "vscsi", "XENBUS_PATH": xenbusPath, "XENBUS_BASE_PATH": "backend"}
	for _, kv := range extraEnv {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	inv, err := hotplug.ParseInvocation([]string{action}, func(k string) string { return env[k] })
	if err != nil {
		return err
	}
	return r.runner(f).Run(context.Background(), inv)
}

func (r *xsRig) stateFiles() []string {
	ents, _ := os.ReadDir(r.state)
	var out []string
	for _, e := range ents {
		if e.Name() != "lock" {
			out = append(out, e.Name())
		}
	}
	return out
}

// add with a p-devname and no p-dev (flavour kernel): the LIO LUN is
// created, p-dev filled in with the planned name, hotplug-status =
// connected, the state file records it; a second add changes nothing;
// remove restores configfs exactly and deletes the state file.
func TestAddRemoveCreatesLUN(t *testing.T) {
	r := newXSRig(t)
	before := tree(t, r.root)
	be := r.vhost(5, 0, map[string][2]string{"dev-0": {"", r.backing}})
	if err := r.run(hotplug.FlavourKernel, "add", "backend/vscsi/5/0"); err != nil {
		t.Fatalf("add: %v\n%s", err, r.log)
	}
	if v, _ := r.read(be + "/hotplug-status"); v != "connected" {
		t.Errorf("hotplug-status %q", v)
	}
	pdev, _ := r.read(be + "/vscsi-devs/dev-0/p-dev")
	if pdev != hotplug.PlannedPDev(r.backing) {
		t.Errorf("p-dev %q, want %q", pdev, hotplug.PlannedPDev(r.backing))
	}
	l := &hotplug.LIO{FS: hotplug.FixtureConfigFS{}, Root: r.root}
	if err := l.Check(pdev, r.backing); err != nil {
		t.Errorf("LIO after add: %v", err)
	}
	if got := r.stateFiles(); len(got) != 1 || got[0] != "vscsi-5-0.json" {
		t.Errorf("state files %v", got)
	}
	mid := tree(t, r.root)
	if err := r.run(hotplug.FlavourKernel, "add", "backend/vscsi/5/0"); err != nil {
		t.Fatalf("second add: %v", err)
	}
	if got := tree(t, r.root); strings.Join(got, "\n") != strings.Join(mid, "\n") {
		t.Errorf("second add changed configfs")
	}
	if err := r.run(hotplug.FlavourKernel, "remove", "backend/vscsi/5/0"); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if got := tree(t, r.root); strings.Join(got, "\n") != strings.Join(before, "\n") {
		t.Errorf("after remove:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(before, "\n"))
	}
	if got := r.stateFiles(); len(got) != 0 {
		t.Errorf("state files left: %v", got)
	}
	// remove again, and remove of a vhost add never saw: nothing, exit 0.
	if err := r.run(hotplug.FlavourKernel, "remove", "backend/vscsi/5/0"); err != nil {
		t.Errorf("second remove: %v", err)
	}
	if err := r.run(hotplug.FlavourKernel, "remove", "backend/vscsi/7/3"); err != nil {
		t.Errorf("remove of an unknown vhost: %v", err)
	}
}

// What the toolstack writes today for an existing LIO LUN (p-dev naa, and
// p-devname when the spec named /dev/...): connected, nothing created or
// recorded, and remove leaves the LUN alone.
func TestAddExistingLUN(t *testing.T) {
	r := newXSRig(t)
	l := &hotplug.LIO{FS: hotplug.FixtureConfigFS{}, Root: r.root}
	pdev := "naa.5001405012345678:0"
	if _, err := l.Ensure(pdev, r.backing, func(hotplug.Step) error { return nil }); err != nil {
		t.Fatal(err)
	}
	before := tree(t, r.root)
	be := r.vhost(5, 0, map[string][2]string{"dev-0": {pdev, ""}, "dev-1": {pdev, r.backing}})
	if err := r.run(hotplug.FlavourKernel, "add", "backend/vscsi/5/0"); err != nil {
		t.Fatalf("add: %v", err)
	}
	if v, _ := r.read(be + "/hotplug-status"); v != "connected" {
		t.Errorf("hotplug-status %q", v)
	}
	if got := r.stateFiles(); len(got) != 0 {
		t.Errorf("recorded objects it did not make: %v", got)
	}
	r.run(hotplug.FlavourKernel, "remove", "backend/vscsi/5/0")
	if got := tree(t, r.root); strings.Join(got, "\n") != strings.Join(before, "\n") {
		t.Errorf("remove touched a LUN it did not make")
	}
}

// Every failure of add with an existing backend path: hotplug-error names
// the culprit, hotplug-status = error, Run returns an error (exit 1), and
// configfs and the state directory are as before.
func TestAddFailures(t *testing.T) {
	cases := []struct {
		name string
		dev  [2]string
		fail func(op, p string) error
		want string
	}{
		{"p-dev without LUN or p-devname", [2]string{"naa.5001405099999999:0", ""}, nil, `p-dev "naa.5001405099999999:0": no xen-pvscsi LUN in LIO`},
		{"bad p-dev", [2]string{"naa.zz:0", "/tmp/x"}, nil, `p-dev "naa.zz:0"`},
		{"no p-dev at all", [2]string{"", ""}, nil, "dev-0: no p-dev and no p-devname"},
		{"p-devname missing", [2]string{"", "/nonexistent/disk.img"}, nil, "/nonexistent/disk.img"},
		{"p-devname with a comma", [2]string{"", "/tmp/a,b"}, nil, `"/tmp/a,b"`},
		{"LIO refuses the LUN", [2]string{"", "BACKING"}, func(op, p string) error {
			if op == "symlink" {
				return syscall.EBUSY
			}
			return nil
		}, "linking backstore govscsi-"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newXSRig(t)
			r.fail = c.fail
			if c.dev[1] == "BACKING" {
				c.dev[1] = r.backing
			}
			before := tree(t, r.root)
			be := r.vhost(5, 0, map[string][2]string{"dev-0": c.dev})
			err := r.run(hotplug.FlavourKernel, "add", "backend/vscsi/5/0")
			if err == nil {
				t.Fatal("add succeeded")
			}
			he, _ := r.read(be + "/hotplug-error")
			hs, _ := r.read(be + "/hotplug-status")
			if hs != "error" || !strings.Contains(he, c.want) {
				t.Errorf("hotplug-status %q, hotplug-error %q (want it to contain %q)", hs, he, c.want)
			}
			if got := tree(t, r.root); strings.Join(got, "\n") != strings.Join(before, "\n") {
				t.Errorf("configfs not rolled back:\n%s", strings.Join(got, "\n"))
			}
			if got := r.stateFiles(); len(got) != 0 {
				t.Errorf("state files left: %v", got)
			}
			if !strings.Contains(r.log.String(), "add failed") {
				t.Errorf("not logged: %s", r.log)
			}
		})
	}
}

// A backend path that does not exist (or a bad one) is an error, and
// nothing is written: writing hotplug-error would create a backend/vscsi
// node, which the kernel would probe (P3).
func TestAddNoBackend(t *testing.T) {
	r := newXSRig(t)
	before := r.srv.Dump()
	err := r.run(hotplug.FlavourKernel, "add", "backend/vscsi/5/9")
	if !errors.Is(err, hotplug.ErrNoBackend) || !strings.Contains(err.Error(), "backend/vscsi/5/9") {
		t.Errorf("add: %v", err)
	}
	for _, p := range []string{"", "backend/vbd/5/0", "backend/vscsi/5", "backend/vscsi/x/0", "backend/vscsi/5/-1", "backend/vscsi/99999/0"} {
		err := r.run(hotplug.FlavourKernel, "add", p)
		var ue *hotplug.UsageError
		if !errors.As(err, &ue) {
			t.Errorf("XENBUS_PATH %q: %v, want a usage error", p, err)
		}
		if p != "" && !strings.Contains(err.Error(), fmt.Sprintf("%q", p)) {
			t.Errorf("XENBUS_PATH %q: error does not name it: %v", p, err)
		}
	}
	if after := r.srv.Dump(); after != before {
		t.Errorf("xenstore changed:\n%s", after)
	}
}

// The udev guard: under UDEV_CALL, libxl/disable_udev (Xen's old key) or
// govscsi/disable_udev (ours) makes the run a no-op; without UDEV_CALL the
// keys do not matter.
func TestUdevGuard(t *testing.T) {
	for _, key := range []string{"/local/domain/0/libxl/disable_udev", "/local/domain/0/govscsi/disable_udev"} {
		r := newXSRig(t)
		be := r.vhost(5, 0, map[string][2]string{"dev-0": {"", r.backing}})
		if err := r.run(hotplug.FlavourKernel, "add", "backend/vscsi/5/0", "UDEV_CALL=1"); err != nil {
			t.Fatal(err)
		}
		if v, _ := r.read(be + "/hotplug-status"); v != "connected" {
			t.Fatalf("udev add without a guard key: %q", v)
		}
		r.run(hotplug.FlavourKernel, "remove", "backend/vscsi/5/0", "UDEV_CALL=1")
		r.admin.Rm(xenif.NoTx, be+"/hotplug-status")
		before := tree(t, r.root)
		r.write(key, "1")
		if err := r.run(hotplug.FlavourKernel, "add", "backend/vscsi/5/0", "UDEV_CALL=1"); err != nil {
			t.Fatal(err)
		}
		if _, ok := r.read(be + "/hotplug-status"); ok {
			t.Errorf("%s: udev add was not skipped", key)
		}
		if got := tree(t, r.root); strings.Join(got, "\n") != strings.Join(before, "\n") {
			t.Errorf("%s: udev add changed configfs", key)
		}
		if err := r.run(hotplug.FlavourKernel, "add", "backend/vscsi/5/0"); err != nil {
			t.Fatal(err)
		}
		if v, _ := r.read(be + "/hotplug-status"); v != "connected" {
			t.Errorf("%s: toolstack add (no UDEV_CALL) skipped: %q", key, v)
		}
	}
}

// Two vhosts use one LUN; the one that made it goes first: the LUN stays
// and is handed over, and goes with the second vhost.
func TestRemoveHandsOver(t *testing.T) {
	r := newXSRig(t)
	before := tree(t, r.root)
	r.vhost(5, 0, map[string][2]string{"dev-0": {"", r.backing}})
	if err := r.run(hotplug.FlavourKernel, "add", "backend/vscsi/5/0"); err != nil {
		t.Fatal(err)
	}
	pdev := hotplug.PlannedPDev(r.backing)
	be6 := r.vhost(6, 0, map[string][2]string{"dev-0": {pdev, r.backing}})
	if err := r.run(hotplug.FlavourKernel, "add", "backend/vscsi/6/0"); err != nil {
		t.Fatal(err)
	}
	r.admin.Rm(xenif.NoTx, "/local/domain/0/backend/vscsi/5")
	r.run(hotplug.FlavourKernel, "remove", "backend/vscsi/5/0")
	l := &hotplug.LIO{FS: hotplug.FixtureConfigFS{}, Root: r.root}
	if err := l.Check(pdev, ""); err != nil {
		t.Fatalf("LUN removed while vhost 6/0 uses it: %v\n%s", err, r.log)
	}
	if got := r.stateFiles(); len(got) != 1 || got[0] != "vscsi-6-0.json" {
		t.Errorf("state files %v", got)
	}
	r.admin.Rm(xenif.NoTx, be6)
	r.run(hotplug.FlavourKernel, "remove", "backend/vscsi/6/0")
	if got := tree(t, r.root); strings.Join(got, "\n") != strings.Join(before, "\n") {
		t.Errorf("after both removes:\n%s", strings.Join(got, "\n"))
	}
}

// Concurrent adds of several vhosts of one domain, each with its own
// backing: the lock serialises them, all connect, and removing them all
// leaves configfs as it was.
func TestConcurrentAdds(t *testing.T) {
	r := newXSRig(t)
	before := tree(t, r.root)
	const n = 6
	for i := 0; i < n; i++ {
		b := filepath.Join(filepath.Dir(r.backing), fmt.Sprintf("d%d.img", i))
		os.WriteFile(b, []byte("data"), 0o644)
		r.vhost(5, i, map[string][2]string{"dev-0": {"", b}, "dev-1": {"", r.backing + fmt.Sprint(i)}})
		os.WriteFile(r.backing+fmt.Sprint(i), []byte("more"), 0o644)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs[i] = r.run(hotplug.FlavourKernel, "add", fmt.Sprintf("backend/vscsi/5/%d", i))
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("add %d: %v", i, err)
		}
		if v, _ := r.read(fmt.Sprintf("/local/domain/0/backend/vscsi/5/%d/hotplug-status", i)); v != "connected" {
			t.Errorf("vhost %d: hotplug-status %q", i, v)
		}
	}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r.run(hotplug.FlavourKernel, "remove", fmt.Sprintf("backend/vscsi/5/%d", i))
		}(i)
	}
	wg.Wait()
	if got := tree(t, r.root); strings.Join(got, "\n") != strings.Join(before, "\n") {
		t.Errorf("after removes:\n%s", strings.Join(got, "\n"))
	}
}

// A run that cannot get the lock in time fails with an error saying so
// (add) or logs and gives up (remove).
func TestLockTimeout(t *testing.T) {
	r := newXSRig(t)
	r.lockTime = 100 * time.Millisecond
	be := r.vhost(5, 0, map[string][2]string{"dev-0": {"", r.backing}})
	os.MkdirAll(r.state, 0o700)
	f, err := os.OpenFile(filepath.Join(r.state, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	err = r.run(hotplug.FlavourKernel, "add", "backend/vscsi/5/0")
	if err == nil || !strings.Contains(err.Error(), "still held") {
		t.Fatalf("add under a held lock: %v", err)
	}
	if he, _ := r.read(be + "/hotplug-error"); !strings.Contains(he, "still held") {
		t.Errorf("hotplug-error %q", he)
	}
	if err := r.run(hotplug.FlavourKernel, "remove", "backend/vscsi/5/0"); err != nil {
		t.Errorf("remove under a held lock: %v", err)
	}
}

// Flavour hctl: p-dev must be an existing SCSI device; p-devname must
// still resolve to it (P9) and fills an empty p-dev. Flavour userspace:
// only a p-dev is needed.
func TestFlavourHCTLAndUserspace(t *testing.T) {
	r := newXSRig(t)
	sys := t.TempDir()
	os.MkdirAll(filepath.Join(sys, "bus/scsi/devices/2:0:1:0"), 0o755)
	os.MkdirAll(filepath.Join(sys, "dev/block/8:16/device/scsi_device/2:0:1:0"), 0o755)
	run := func(devs map[string][2]string) (string, string, error) {
		be := r.vhost(5, 0, devs)
		defer r.admin.Rm(xenif.NoTx, be)
		rn := r.runner(hotplug.FlavourHCTL)
		rn.Resolver = &cfgparse.Resolver{SysfsRoot: sys, Stat: func(p string) (cfgparse.DevNode, error) {
			if p == "/dev/sdb" {
				return cfgparse.DevNode{Block: true, Major: 8, Minor: 16}, nil
			}
			return cfgparse.DevNode{}, fs.ErrNotExist
		}}
		inv, _ := hotplug.ParseInvocation([]string{"add", "XENBUS_PATH=backend/vscsi/5/0"}, func(string) string { return "" })
		err := rn.Run(context.Background(), inv)
		he, _ := r.read(be + "/hotplug-error")
		pdev, _ := r.read(be + "/vscsi-devs/dev-0/p-dev")
		return he, pdev, err
	}
	if _, _, err := run(map[string][2]string{"dev-0": {"2:0:1:0", ""}}); err != nil {
		t.Errorf("existing h:c:t:l: %v", err)
	}
	if _, pdev, err := run(map[string][2]string{"dev-0": {"", "/dev/sdb"}}); err != nil || pdev != "2:0:1:0" {
		t.Errorf("p-devname only: %q %v", pdev, err)
	}
	for _, c := range []struct {
		dev  [2]string
		want string
	}{
		{[2]string{"3:0:0:0", ""}, `p-dev "3:0:0:0": no such SCSI device`},
		{[2]string{"naa.5001405012345678:0", ""}, `p-dev "naa.5001405012345678:0"`},
		{[2]string{"1:0:0:0", "/dev/sdb"}, "p-devname /dev/sdb is now 2:0:1:0"},
		{[2]string{"", "/dev/sdq"}, `p-devname "/dev/sdq"`},
	} {
		he, _, err := run(map[string][2]string{"dev-0": c.dev})
		if err == nil || !strings.Contains(he, c.want) {
			t.Errorf("%v: %v, hotplug-error %q, want %q", c.dev, err, he, c.want)
		}
	}
	be := r.vhost(5, 1, map[string][2]string{"dev-0": {"file:/srv/disk.img", ""}})
	if err := r.run(hotplug.FlavourUserspace, "add", "backend/vscsi/5/1"); err != nil {
		t.Errorf("userspace: %v", err)
	}
	if v, _ := r.read(be + "/hotplug-status"); v != "connected" {
		t.Errorf("userspace: hotplug-status %q", v)
	}
}

// vhost 5/0 made a target; vhost 6/0 got a second LUN in it (the
// toolstack wrote naa.<same wwn>:1). Removing 5/0 first removes its LUN
// and hands the target to 6/0, whose remove then clears everything.
func TestRemoveAdoptsTarget(t *testing.T) {
	r := newXSRig(t)
	before := tree(t, r.root)
	be5 := r.vhost(5, 0, map[string][2]string{"dev-0": {"", r.backing}})
	if err := r.run(hotplug.FlavourKernel, "add", "backend/vscsi/5/0"); err != nil {
		t.Fatal(err)
	}
	wwn := strings.TrimSuffix(hotplug.PlannedPDev(r.backing), ":0")
	other := r.backing + ".2"
	os.WriteFile(other, []byte("x"), 0o644)
	be6 := r.vhost(6, 0, map[string][2]string{"dev-0": {wwn + ":1", other}})
	if err := r.run(hotplug.FlavourKernel, "add", "backend/vscsi/6/0"); err != nil {
		t.Fatal(err)
	}
	r.admin.Rm(xenif.NoTx, be5)
	r.run(hotplug.FlavourKernel, "remove", "backend/vscsi/5/0")
	l := &hotplug.LIO{FS: hotplug.FixtureConfigFS{}, Root: r.root}
	if err := l.Check(wwn+":1", other); err != nil {
		t.Fatalf("6/0's LUN: %v", err)
	}
	if err := l.Check(wwn+":0", ""); err == nil {
		t.Errorf("5/0's LUN still there")
	}
	if !strings.Contains(r.log.String(), "now owns it") {
		t.Errorf("hand-over not logged:\n%s", r.log)
	}
	r.admin.Rm(xenif.NoTx, be6)
	r.run(hotplug.FlavourKernel, "remove", "backend/vscsi/6/0")
	if got := tree(t, r.root); strings.Join(got, "\n") != strings.Join(before, "\n") {
		t.Errorf("after both removes:\n%s", strings.Join(got, "\n"))
	}
	if got := r.stateFiles(); len(got) != 0 {
		t.Errorf("state files left: %v", got)
	}
}

// The re-request: a device the backend refused (state 6) on a Connected
// vhost, whose LUN this run created, gets dev state 1 + backend state 7;
// in InitWait, or when the LUN already existed (the refusal had another
// cause), nothing is changed.
func TestAddReRequestsRefused(t *testing.T) {
	r := newXSRig(t)
	other := r.backing + ".b"
	os.WriteFile(other, []byte("b"), 0o644)
	l := &hotplug.LIO{FS: hotplug.FixtureConfigFS{}, Root: r.root}
	if _, err := l.Ensure(hotplug.PlannedPDev(other), other, func(hotplug.Step) error { return nil }); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		beState string
		devs    map[string][2]string
		want    string // backend state, then dev-0 and dev-1 states afterwards
	}{
		{"4", map[string][2]string{"dev-0": {"", r.backing}, "dev-1": {hotplug.PlannedPDev(other), other}}, "7 1 6"},
		{"2", map[string][2]string{"dev-0": {"", r.backing}, "dev-1": {hotplug.PlannedPDev(other), other}}, "2 6 6"},
		{"4", map[string][2]string{"dev-0": {hotplug.PlannedPDev(other), other}, "dev-1": {hotplug.PlannedPDev(other), other}}, "4 6 6"},
	} {
		be := r.vhost(5, 0, c.devs)
		r.write(be+"/state", c.beState)
		r.write(be+"/vscsi-devs/dev-0/state", "6")
		r.write(be+"/vscsi-devs/dev-1/state", "6")
		if err := r.run(hotplug.FlavourKernel, "add", "backend/vscsi/5/0"); err != nil {
			t.Fatal(err)
		}
		bs, _ := r.read(be + "/state")
		d0, _ := r.read(be + "/vscsi-devs/dev-0/state")
		d1, _ := r.read(be + "/vscsi-devs/dev-1/state")
		if got := bs + " " + d0 + " " + d1; got != c.want {
			t.Errorf("backend %s, %v: states %q, want %q", c.beState, c.devs, got, c.want)
		}
		r.run(hotplug.FlavourKernel, "remove", "backend/vscsi/5/0")
		r.admin.Rm(xenif.NoTx, be)
	}
}
