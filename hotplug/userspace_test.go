package hotplug_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/govscsi/govscsi/cfgparse"
	"github.com/govscsi/govscsi/hotplug"
	"github.com/govscsi/govscsi/plugin"
	"github.com/govscsi/govscsi/tests/simpeer"
)

// A vhost under backend/vscsiu (govscsi's userspace backend) on a host
// whose configured flavour is kernel: add prepares nothing (no LIO
// object, p-dev untouched, no record) even for p-dev forms flavour kernel
// would back with a new LIO LUN, and writes hotplug-status=connected;
// remove removes nothing. A device without a p-dev still fails, reported
// under the vscsiu path. The same devices under backend/vscsi do get a LUN.
func TestVscsiuPreparesNothing(t *testing.T) {
	r := newXSRig(t)
	before := tree(t, r.root)
	devs := map[string][2]string{"dev-0": {r.backing}, "dev-1": {"file:" + r.backing}, "dev-2": {"ram:64M"}}
	be := r.vhostType("vscsiu", 5, 1, devs)
	if err := r.run(hotplug.FlavourKernel, "add", "backend/vscsiu/5/1", "XENBUS_TYPE=vscsiu"); err != nil {
		t.Fatalf("add: %v\n%s", err, r.log.String())
	}
	if v, _ := r.read(be + "/hotplug-status"); v != "connected" {
		t.Errorf("hotplug-status %q", v)
	}
	for n, want := range devs {
		if v, _ := r.read(be + "/vscsi-devs/" + n + "/p-dev"); v != want[0] {
			t.Errorf("%s p-dev %q, want %q as written", n, v, want[0])
		}
	}
	if got := tree(t, r.root); strings.Join(got, "\n") != strings.Join(before, "\n") {
		t.Errorf("add for vscsiu touched configfs:\n%s", strings.Join(got, "\n"))
	}
	if f := r.stateFiles(); len(f) != 0 {
		t.Errorf("add for vscsiu left state files %v", f)
	}
	if err := r.run(hotplug.FlavourKernel, "remove", "backend/vscsiu/5/1", "XENBUS_TYPE=vscsiu"); err != nil {
		t.Errorf("remove: %v", err)
	}
	if !strings.Contains(r.log.String(), "nothing to remove") {
		t.Errorf("remove for vscsiu not logged:\n%s", r.log.String())
	}

	// The type comes from the path when XENBUS_TYPE is absent (udev-less
	// callers that set only XENBUS_PATH).
	bad := r.vhostType("vscsiu", 6, 0, map[string][2]string{"dev-0": {}})
	err := r.run(hotplug.FlavourKernel, "add", "backend/vscsiu/6/0", "XENBUS_TYPE=")
	if he, _ := r.read(bad + "/hotplug-error"); err == nil || !strings.Contains(he, "dev-0: no p-dev") {
		t.Errorf("vscsiu device without a p-dev: %v, hotplug-error %q", err, he)
	}
	if v, _ := r.read(bad + "/hotplug-status"); v != "error" {
		t.Errorf("hotplug-status %q after a failed add", v)
	}

	// Contrast: the same backing under backend/vscsi with flavour kernel
	// gets its LIO LUN.
	r.vhost(5, 0, map[string][2]string{"dev-0": {r.backing, ""}})
	if err := r.run(hotplug.FlavourKernel, "add", "backend/vscsi/5/0"); err != nil {
		t.Fatal(err)
	}
	if got := tree(t, r.root); strings.Join(got, "\n") == strings.Join(before, "\n") {
		t.Errorf("flavour kernel under backend/vscsi made no LUN")
	}
	if f := r.stateFiles(); len(f) != 1 || f[0] != "vscsi-5-0.json" {
		t.Errorf("state files %v, want vscsi-5-0.json", f)
	}
	if err := r.run(hotplug.FlavourKernel, "remove", "backend/vscsi/5/0"); err != nil {
		t.Fatal(err)
	}
	if got := tree(t, r.root); strings.Join(got, "\n") != strings.Join(before, "\n") {
		t.Errorf("after remove:\n%s", strings.Join(got, "\n"))
	}
}

// The wrapper and binary with exactly the environment plugin passes for a
// vscsiu vhost (plugin.HotplugEnvType): exit 0, hotplug-status=connected
// read back with the real xenstore-read through the relative
// backend/vscsiu path, configfs untouched.
func TestScriptVscsiu(t *testing.T) {
	needTools(t)
	r := newXSRig(t)
	before := tree(t, r.root)
	r.vhostType("vscsiu", 5, 1, map[string][2]string{"dev-0": {r.backing}})
	env := plugin.HotplugEnvType(wrapperPath(t), cfgparse.TypeUserspace, 5, 1)
	if code := r.script(t, env, "add"); code != 0 {
		t.Fatalf("add: exit %d\n%s", code, r.readLog(t))
	}
	if v, err := tool(t, "xenstore-read", "backend/vscsiu/5/1/hotplug-status"); v != "connected" {
		t.Errorf("xenstore-read hotplug-status: %q %v", v, err)
	}
	if v, _ := tool(t, "xenstore-read", "backend/vscsiu/5/1/vscsi-devs/dev-0/p-dev"); v != r.backing {
		t.Errorf("p-dev %q rewritten", v)
	}
	if code := r.script(t, env, "remove"); code != 0 {
		t.Fatalf("remove: exit %d", code)
	}
	if got := tree(t, r.root); strings.Join(got, "\n") != strings.Join(before, "\n") {
		t.Errorf("configfs changed:\n%s", strings.Join(got, "\n"))
	}
	if log := r.readLog(t); !strings.Contains(log, "XENBUS_PATH=backend/vscsiu/5/1") || !strings.Contains(log, "connected") {
		t.Errorf("log:\n%s", log)
	}
}

// plugin's hotplug runner with flavour userspace (xl-vscsi --flavour
// userspace --hotplug-script ...) runs the real wrapper and binary for a
// vscsiu vhost: the attach of ram: and file: p-devs connects (simpeer
// serving vscsiu), hotplug-status=connected, configfs untouched, and
// destroy runs remove.
func TestPluginRunsScriptUserspace(t *testing.T) {
	needTools(t)
	r := newXSRig(t)
	before := tree(t, r.root)

	store := r.pluginGuest(t, &simpeer.Backend{Type: cfgparse.TypeUserspace, DevErrors: true, Log: t.Logf})
	var hlog bytes.Buffer
	ts := plugin.New(store, plugin.Options{Flavour: cfgparse.FlavourUserspace, HotplugScript: wrapperPath(t),
		HotplugLog: &hlog, InitTimeout: 5 * time.Second, DestroyTimeout: 5 * time.Second})
	t.Cleanup(func() { ts.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if _, err := ts.Attach(ctx, "guest5", "ram:16M", "0:0:0:0"); err != nil {
		t.Fatalf("attach: %v\nlog:\n%s\n%s", err, r.readLog(t), hlog.String())
	}
	if _, err := ts.Attach(ctx, "guest5", "file:"+r.backing, "0:0:1:0"); err != nil {
		t.Fatalf("hot-add: %v\nlog:\n%s\n%s", err, r.readLog(t), hlog.String())
	}
	if v, err := tool(t, "xenstore-read", "backend/vscsiu/5/0/hotplug-status"); v != "connected" {
		t.Errorf("hotplug-status %q %v", v, err)
	}
	vs, _ := ts.List(5)
	if len(vs) != 1 || vs[0].BackendType != "vscsiu" || len(vs[0].Devs) != 2 || vs[0].Devs[1].BackendState != 4 || vs[0].Devs[1].FrontendState != 4 {
		t.Errorf("after attach: %+v", vs)
	}
	if _, err := ts.DestroyVHost(ctx, "guest5", 0); err != nil {
		t.Fatal(err)
	}
	log := r.readLog(t)
	if strings.Count(log, "action=add") < 2 || !strings.Contains(log, "action=remove") || !strings.Contains(log, "XENBUS_PATH=backend/vscsiu/5/0") {
		t.Errorf("the toolstack did not run add (twice) and remove for backend/vscsiu/5/0:\n%s", log)
	}
	if got := tree(t, r.root); strings.Join(got, "\n") != strings.Join(before, "\n") {
		t.Errorf("configfs changed:\n%s", strings.Join(got, "\n"))
	}
}
