package plugin_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/govscsi/govscsi/backend/server"
	"github.com/govscsi/govscsi/cfgparse"
	"github.com/govscsi/govscsi/hotplug"
	"github.com/govscsi/govscsi/libxlgo/xenfake"
	"github.com/govscsi/govscsi/libxlgo/xs"
	"github.com/govscsi/govscsi/plugin"
	"github.com/govscsi/govscsi/plugin/internal/rigtest"
	"github.com/govscsi/govscsi/tests/simpeer"
)

// userspaceRig is the plugin rig plus the REAL userspace backend
// (backend/server: xenbus state machine, lunconf, store, datapath) in
// this process on its own libxenstore connection, with xenfake grants and
// event channels; the guest is the simpeer frontend with a real ring page
// granted in xenfake. The scripted kernel backend (simpeer, type vscsi)
// runs too, so one guest can have vhosts on both backends.
type userspaceRig struct {
	*rig
	srvBE  *server.Server
	grants *xenfake.Grants
	img    string
	user   *plugin.Toolstack // flavour userspace
}

func newUserspaceRig(t testing.TB) *userspaceRig {
	t.Helper()
	r := newRig(t, rigOpt{noFrontend: true})
	r.Mkdir("/local/domain/0/backend/vscsiu", rigtest.N0)
	b := rigtest.StartBackend(t, "stats_socket: none\nmax_ram: 128M\ntimeouts: {shutdown: 2s, remove: 2s}\n",
		hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: tlogWriter{t}}))
	u := &userspaceRig{rig: r, srvBE: b.Server, grants: b.Grants, img: b.Img}

	// The guest: one ring page and one unbound port (every vhost of the
	// simpeer frontend writes the same ones: one userspace vhost at a time).
	ref, port := b.GuestRing(t, guest)
	fs, err := r.Srv.Connect(guest)
	if err != nil {
		t.Fatal(err)
	}
	r.fe = &simpeer.Frontend{Store: fs, Domid: guest, RingRef: ref, EventChannel: port, Log: r.logf}
	stopFE := simpeer.Start(r.fe.Run)
	t.Cleanup(func() { stopFE(); fs.Close() })
	// Cleanups run last first: the backend stops while the frontend still
	// answers, so its vhosts close at once.
	t.Cleanup(b.Stop)

	ustore, err := xs.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	u.user = plugin.New(ustore, plugin.Options{Flavour: cfgparse.FlavourUserspace, InitTimeout: 10 * time.Second, DestroyTimeout: 10 * time.Second})
	t.Cleanup(func() { u.user.Close(); ustore.Close() })
	return u
}

// Attach with file: and ram: p-devs through the userspace flavour reaches
// state 4 on both sides with the real userspace backend; the vhost is
// written under backend/vscsiu and its devid is allocated across both
// backend types; list shows which backend serves each vhost; a kernel
// flavour toolstack cannot hot-add to the userspace vhost; detach and
// destroy work on the vscsiu vhost from either toolstack.
func TestUserspaceBackendEndToEnd(t *testing.T) {
	u := newUserspaceRig(t)
	// vhost 0 on the (scripted) kernel backend.
	if _, err := u.ts.Attach(ctx(t), "guest5", wwn0, "0:0:0:0"); err != nil {
		t.Fatalf("kernel attach: %v", err)
	}
	res, err := u.user.Attach(ctx(t), "guest5", "file:"+u.img, "1:0:0:0")
	if err != nil {
		t.Fatalf("userspace attach file: %v\n%s", err, u.vscsiDump())
	}
	if fmt.Sprint(res.Created) != "[1]" {
		t.Fatalf("created %v, want [1] (vhost 0 is taken by the vscsi backend)", res.Created)
	}
	be := "/local/domain/0/backend/vscsiu/5/1"
	if got := u.Read("/local/domain/5/device/vscsi/1/backend"); got != be {
		t.Errorf("FE/backend %q, want %q", got, be)
	}
	if got := u.Read(be + "/vscsi-devs/dev-0/p-dev"); got != "file:"+u.img {
		t.Errorf("p-dev %q", got)
	}
	if u.Exists("/local/domain/0/backend/vscsi/5/1") {
		t.Errorf("userspace vhost written under backend/vscsi too")
	}
	if _, err := u.user.Attach(ctx(t), "guest5", "ram:64M", "1:0:1:0,ro"); err != nil {
		t.Fatalf("userspace hot-add ram: %v\n%s", err, u.vscsiDump())
	}
	if got := u.Read(be + "/vscsi-devs/dev-1/p-dev"); got != "ram:64M,ro" {
		t.Errorf("ram p-dev %q", got)
	}

	vs, err := u.user.List(guest)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 || vs[0].BackendType != "vscsi" || vs[1].BackendType != "vscsiu" ||
		vs[1].BackendState != 4 || vs[1].FrontendState != 4 ||
		devStates(vs[1]) != "dev-0 1:0:0:0 file:"+u.img+" 4/4; dev-1 1:0:1:0 ram:64M,ro 4/4" {
		t.Fatalf("list: %+v", vs)
	}
	// The real backend has both LUNs open and the ring connected.
	bv := u.srvBE.Backend().Vhosts()
	if len(bv) != 1 || !bv[0].Connected || len(bv[0].Devices) != 2 {
		t.Fatalf("backend vhosts: %+v", bv)
	}

	// The kernel toolstack must not add to the userspace vhost.
	_, err = u.ts.Attach(ctx(t), "guest5", wwn1, "1:0:2:0")
	if err == nil || !strings.Contains(err.Error(), `"vscsiu"`) {
		t.Fatalf("kernel hot-add to a vscsiu vhost: %v", err)
	}

	if _, err := u.user.Detach(ctx(t), "guest5", "1:0:1:0"); err != nil {
		t.Fatalf("detach ram: %v", err)
	}
	if u.Exists(be+"/vscsi-devs/dev-1") || u.Exists("/local/domain/5/device/vscsi/1/vscsi-devs/dev-1") {
		t.Errorf("dev-1 left after detach:\n%s", u.vscsiDump())
	}
	if bv := u.srvBE.Backend().Vhosts(); len(bv) != 1 || len(bv[0].Devices) != 1 {
		t.Errorf("backend after detach: %+v", bv)
	}
	// The kernel-flavour toolstack destroys the userspace vhost: the type
	// comes from the vhost, not from the flavour.
	if _, err := u.ts.DestroyVHost(ctx(t), "guest5", 1); err != nil {
		t.Fatalf("destroy vscsiu vhost: %v", err)
	}
	if u.Exists(be) || u.Exists("/local/domain/5/device/vscsi/1") {
		t.Errorf("vhost 1 left:\n%s", u.vscsiDump())
	}
	if !u.Exists("/local/domain/0/backend/vscsi/5/0") {
		t.Errorf("the vscsi vhost went too")
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(u.srvBE.Backend().Vhosts()) != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if bv := u.srvBE.Backend().Vhosts(); len(bv) != 0 {
		t.Errorf("backend still serves %+v", bv)
	}
	if n := u.grants.Mapped(); n != 0 {
		t.Errorf("%d grants still mapped", n)
	}
}

// A p-dev the userspace backend's allow-list refuses (valid syntax, but
// outside allow_paths): the real backend sets dev state 6 with
// dev-N/error, the attach fails naming it, and everything is rolled back.
func TestUserspaceBackendRefuses(t *testing.T) {
	u := newUserspaceRig(t)
	before := u.vscsiDump()
	_, err := u.user.Attach(ctx(t), "guest5", "file:/etc/passwd", "0:0:0:0")
	var de *plugin.DeviceError
	if !errors.As(err, &de) || de.Side != "backend" || !strings.Contains(de.Detail, "/etc/passwd") {
		t.Fatalf("attach outside allow_paths: %v", err)
	}
	if got := u.vscsiDump(); got != before {
		t.Errorf("left behind:\n%s", got)
	}
	// Syntax errors never reach xenstore and name the token.
	_, err = u.user.Attach(ctx(t), "guest5", "file:/srv/x.img", "0:0:0:0,direct")
	var se *cfgparse.SpecError
	if !errors.As(err, &se) || se.Token != "direct" {
		t.Fatalf("direct on a file: %v", err)
	}
}

// Cleanup (P26) removes the leftovers of a dead domain under both backend
// types.
func TestCleanupBothTypes(t *testing.T) {
	r := newRig(t, rigOpt{noBackend: true, noFrontend: true})
	for _, p := range []string{"/local/domain/0/backend/vscsi/9/0/state", "/local/domain/0/backend/vscsiu/9/1/state", "/local/domain/0/error/backend/vscsiu/9/1/error", "/libxl/9/vscsi/1/idx"} {
		r.Write(p, "1")
	}
	r.Mkdir("/local/domain/0/backend/vscsiu/5", rigtest.N0) // a live domain's: kept
	ids, err := r.ts.Cleanup()
	if err != nil || fmt.Sprint(ids) != "[9]" {
		t.Fatalf("cleanup: %v %v", ids, err)
	}
	for _, p := range []string{"/local/domain/0/backend/vscsi/9", "/local/domain/0/backend/vscsiu/9", "/local/domain/0/error/backend/vscsiu/9", "/libxl/9"} {
		if r.Exists(p) {
			t.Errorf("%s left", p)
		}
	}
	if !r.Exists("/local/domain/0/backend/vscsiu/5") {
		t.Errorf("live domain's directory removed")
	}
}

// Kernel flavour with a hotplug script: a /dev path no LIO LUN backs yet
// is written as hotplug.PlannedPDev(path) with p-devname = path, and the
// script runs for a hot-add as well as for a new vhost (before the
// backend is asked to reconfigure), with XENBUS_TYPE of the vhost.
func TestHotplugPlannedPDevAndHotAdd(t *testing.T) {
	dir := t.TempDir()
	envFile := filepath.Join(dir, "env")
	script := filepath.Join(dir, "vscsi-hotplug")
	// The script records its run and the backend state it saw: a hot-add
	// must run before the Reconfiguring (state 4, not 7).
	body := fmt.Sprintf("#!/bin/sh\nb=/local/domain/0/$XENBUS_PATH\necho \"$1 $XENBUS_TYPE $XENBUS_PATH $(xenstore-read $b/state) $(xenstore-read $b/vscsi-devs/dev-1/state 2>/dev/null)\" >> %s\n[ -e %s/fail ] && { echo failing >&2; exit 1; }\nexit 0\n", envFile, dir)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	nodes := map[string]cfgparse.DevNode{"/dev/sde": {Block: true, Major: 8, Minor: 64}, "/dev/sdb": {Block: true, Major: 8, Minor: 16}, "/dev/sdc": {Block: true, Major: 8, Minor: 32}}
	stat := func(p string) (cfgparse.DevNode, error) {
		if n, ok := nodes[p]; ok {
			return n, nil
		}
		return cfgparse.DevNode{}, os.ErrNotExist
	}
	r := newRig(t, rigOpt{opts: plugin.Options{HotplugScript: script, SysfsRoot: "../cfgparse/testdata/sysfs",
		ConfigfsRoot: "../cfgparse/testdata/sysfs/kernel/config", Stat: stat}})
	res, err := r.ts.Attach(ctx(t), "guest5", "/dev/sdb", "0:0:0:0")
	if err != nil {
		t.Fatal(err)
	}
	res, err = r.ts.Attach(ctx(t), "guest5", "/dev/sde", "0:0:1:0")
	if err != nil {
		t.Fatalf("hot-add of a planned p-dev: %v", err)
	}
	dp := "/local/domain/0/backend/vscsi/5/0/vscsi-devs/dev-1"
	if got, want := r.Read(dp+"/p-dev"), hotplug.PlannedPDev("/dev/sde"); got != want || res.Added[0].PDev != want {
		t.Errorf("p-dev %q (result %q), want %q", got, res.Added[0].PDev, want)
	}
	if got := r.Read(dp + "/p-devname"); got != "/dev/sde" {
		t.Errorf("p-devname %q", got)
	}
	if len(res.Warnings) == 0 || !strings.Contains(strings.Join(res.Warnings, "\n"), "hotplug script") {
		t.Errorf("no note about the planned p-dev: %q", res.Warnings)
	}
	got, _ := os.ReadFile(envFile)
	// First run: a new vhost, backend in InitWait or already connected
	// (the frontend is quick), no dev-1 yet. Second run: the hot-add,
	// backend still Connected (no Reconfiguring yet) and dev-1 unread (1).
	runs := strings.Split(strings.TrimSpace(string(got)), "\n")
	for i := range runs {
		runs[i] = strings.TrimSpace(runs[i])
	}
	if len(runs) != 2 || (runs[0] != "add vscsi backend/vscsi/5/0 2" && runs[0] != "add vscsi backend/vscsi/5/0 4") ||
		runs[1] != "add vscsi backend/vscsi/5/0 4 1" {
		t.Errorf("script runs:\n%s", got)
	}

	// A failing script on a hot-add: the attach fails naming the script,
	// the new device's nodes go, the vhost stays connected with its others.
	if err := os.WriteFile(filepath.Join(dir, "fail"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	before := r.vscsiDump()
	_, err = r.ts.Attach(ctx(t), "guest5", "/dev/sdc", "0:0:2:0")
	if err == nil || !strings.Contains(err.Error(), "hotplug script") {
		t.Fatalf("hot-add with a failing script: %v", err)
	}
	vs := r.list()
	if len(vs) != 1 || vs[0].BackendState != 4 || len(vs[0].Devs) != 2 {
		t.Errorf("after the failed hot-add: %+v\n%s", vs, r.vscsiDump())
	}
	// Only the toolstack's dev counter moved (ids are never reused).
	if got := strings.ReplaceAll(r.vscsiDump(), `next_vscsidev_id = "3"`, `next_vscsidev_id = "2"`); got != before {
		t.Errorf("left behind:\n%s\nwas\n%s", r.vscsiDump(), before)
	}
}

// tlogWriter sends the backend's log lines to the test log.
type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Options.BackendType overrides the flavour's type (a host that hands
// everything to the userspace backend with backend_type: vscsi): the
// userspace p-dev is written under backend/vscsi, served there by the
// scripted peer; and the YAML option is checked.
func TestBackendTypeOverride(t *testing.T) {
	r := newRig(t, rigOpt{opts: plugin.Options{Flavour: cfgparse.FlavourUserspace, BackendType: "vscsi"}})
	if _, err := r.ts.Attach(ctx(t), "guest5", "ram:64M", "0:0:0:0"); err != nil {
		t.Fatal(err)
	}
	if got := r.Read("/local/domain/0/backend/vscsi/5/0/vscsi-devs/dev-0/p-dev"); got != "ram:64M" {
		t.Errorf("p-dev %q", got)
	}
	if vs := r.list(); len(vs) != 1 || vs[0].BackendType != "vscsi" || devStates(vs[0]) != "dev-0 0:0:0:0 ram:64M 4/4" {
		t.Errorf("list %+v", vs)
	}

	o, _, err := plugin.ParseOptionsYAML("flavour: userspace\n")
	if err != nil || o.Flavour != cfgparse.FlavourUserspace {
		t.Fatalf("flavour userspace: %+v %v", o, err)
	}
	if o, _, err := plugin.ParseOptionsYAML("backend_type: vscsi\nflavour: userspace\n"); err != nil || o.BackendType != "vscsi" {
		t.Errorf("backend_type: %+v %v", o, err)
	}
	if _, _, err := plugin.ParseOptionsYAML("backend_type: ../x\n"); err == nil || !strings.Contains(err.Error(), `"../x"`) {
		t.Errorf("bad backend_type: %v", err)
	}
}

// The scripted peer can serve the userspace type too: a userspace-flavour
// toolstack against simpeer with Type vscsiu.
func TestSimpeerServesVscsiu(t *testing.T) {
	r := newRig(t, rigOpt{noBackend: true, opts: plugin.Options{Flavour: cfgparse.FlavourUserspace}})
	bs, err := r.Srv.Connect(0)
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	stop := simpeer.Start((&simpeer.Backend{Store: bs, Type: "vscsiu", Log: r.logf}).Run)
	defer stop()
	if _, err := r.ts.Attach(ctx(t), "guest5", "/dev/sdq", "0:0:0:0"); err != nil {
		t.Fatal(err)
	}
	if got := r.ts.Options().BackendType; got != "vscsiu" {
		t.Errorf("default backend type for flavour userspace %q", got)
	}
	vs := r.list()
	if len(vs) != 1 || vs[0].BackendType != "vscsiu" || devStates(vs[0]) != "dev-0 0:0:0:0 /dev/sdq 4/4" || vs[0].Devs[0].PDevName != "/dev/sdq" {
		t.Errorf("list %+v", vs)
	}
	if _, err := r.ts.DestroyVHost(ctx(t), "guest5", 0); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkUserspaceHotAddRemove: hot-add and hot-remove of a ram: LUN
// on a connected vhost served by the real userspace backend (the backend
// opens and closes the RAM disk each time): the 7/8 round trip twice,
// through libxenstore and xsfake.
func BenchmarkUserspaceHotAddRemove(b *testing.B) {
	u := newUserspaceRig(b)
	u.logf = nil
	if _, err := u.user.Attach(context.Background(), "guest5", "ram:1M", "0:0:0:0"); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := u.user.Attach(context.Background(), "guest5", "ram:1M", "0:0:1:0"); err != nil {
			b.Fatal(err)
		}
		if _, err := u.user.Detach(context.Background(), "guest5", "0:0:1:0"); err != nil {
			b.Fatal(err)
		}
	}
}
