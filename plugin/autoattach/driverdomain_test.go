package autoattach_test

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/govscsi/govscsi/cfgparse"
	"github.com/govscsi/govscsi/libxlgo/xenif"
	"github.com/govscsi/govscsi/libxlgo/xs"
	"github.com/govscsi/govscsi/plugin"
	"github.com/govscsi/govscsi/plugin/autoattach"
)

// A driver domain (issue 7 item 3): the backend runs in domain 3 (the
// scripted scsiback on a connection acting as dom3), the guest is domain
// 5, the toolstack and the watcher run in dom0 with backend domid 3. The
// watcher attaches the config's devices; the dom3 peer probes and
// connects the vhost and both devices (it can read and write what it
// must), the guest connects its frontend; then the plugin's hot-add,
// detach, destroy-vhost and cleanup work against the dom3 tree, and the
// permissions keep each side to its own nodes.
func TestDriverDomainBackend3(t *testing.T) {
	const be, guest = 3, 5
	h := newHost(t, be)
	h.cfg(0, "guest5.cfg", guestCfg)
	h.start()
	h.guest(guest, "guest5", "", false)
	if o := h.outcome(guest); o.Action != autoattach.Attached || o.Added != 2 {
		t.Fatalf("outcome %+v; log:\n%s", o, h.logs.String())
	}
	bePath := "/local/domain/3/backend/vscsi/5/0"
	fePath := "/local/domain/5/device/vscsi/0"
	if got, _ := h.Admin.Read(xenif.NoTx, fePath+"/backend"); got != bePath {
		t.Errorf("frontend's backend node %q, want %q", got, bePath)
	}
	if got, _ := h.Admin.Read(xenif.NoTx, fePath+"/backend-id"); got != "3" {
		t.Errorf("backend-id %q", got)
	}
	// The dom3 peer wrote its own nodes (state, feature-sg-grant) and read
	// the guest's ring-ref.
	if got, _ := h.Admin.Read(xenif.NoTx, bePath+"/feature-sg-grant"); got != "128" {
		t.Errorf("dom3 backend did not probe: feature-sg-grant %q", got)
	}
	perms := func(p string) xenif.Perms {
		pp, err := h.Admin.GetPerms(xenif.NoTx, p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		return pp
	}
	if p := perms(bePath); len(p) != 2 || p[0].Domid != be || p[1].Domid != guest || p[1].Bits != xenif.PermRead {
		t.Errorf("backend dir perms %v: want owner 3, read 5", p)
	}
	if p := perms(fePath); len(p) != 2 || p[0].Domid != guest || p[1].Domid != be || p[1].Bits != xenif.PermRead {
		t.Errorf("frontend dir perms %v: want owner 5, read 3", p)
	}
	if p := perms(bePath + "/vscsi-devs/dev-0/p-dev"); p[0].Domid != be {
		t.Errorf("p-dev perms %v: want owner 3", p)
	}

	// Seen from each domain: the guest reads its frontend and the
	// backend's state but cannot write the backend tree; dom3 cannot
	// write the guest's ring-ref.
	g, err := h.Srv.Connect(guest)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if v, err := g.Read(xenif.NoTx, fePath+"/backend"); err != nil || v != bePath {
		t.Errorf("guest reads its FE: %q %v", v, err)
	}
	if v, err := g.Read(xenif.NoTx, fePath+"/vscsi-devs/dev-1/state"); err != nil || v != "4" {
		t.Errorf("guest reads its FE dev state: %q %v", v, err)
	}
	if v, err := g.Read(xenif.NoTx, bePath+"/vscsi-devs/dev-1/v-dev"); err != nil || v != "0:0:1:0" {
		t.Errorf("guest reads the BE v-dev: %q %v", v, err)
	}
	if v, err := g.Read(xenif.NoTx, bePath+"/state"); err != nil || v != "4" {
		t.Errorf("guest reads the BE state: %q %v", v, err)
	}
	if err := g.Write(xenif.NoTx, bePath+"/vscsi-devs/dev-0/p-dev", "naa.0:0"); !errors.Is(err, syscall.EACCES) {
		t.Errorf("guest writing the backend's p-dev: %v, want EACCES", err)
	}
	d3, err := h.Srv.Connect(be)
	if err != nil {
		t.Fatal(err)
	}
	defer d3.Close()
	if err := d3.Write(xenif.NoTx, fePath+"/ring-ref", "1"); !errors.Is(err, syscall.EACCES) {
		t.Errorf("dom3 writing the guest's ring-ref: %v, want EACCES", err)
	}
	if _, err := d3.Read(xenif.NoTx, fePath+"/ring-ref"); err != nil {
		t.Errorf("dom3 reading the guest's ring-ref: %v", err)
	}

	// The plugin's other operations with --backend-domid 3, on the real
	// libxenstore.
	st, err := xs.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ts := plugin.New(st, plugin.Options{BackendDomid: be, Flavour: cfgparse.FlavourKernel, InitTimeout: 10 * time.Second})
	defer ts.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := ts.Attach(ctx, "guest5", "naa.5001405012345678:2", "0:0:2:0"); err != nil {
		t.Fatalf("hot-add: %v", err)
	}
	if vs := h.list(ts, guest); !connected(vs, 3) {
		t.Fatalf("after hot-add: %+v", vs)
	}
	if _, err := ts.Detach(ctx, "guest5", "0:0:0:0"); err != nil {
		t.Fatalf("detach: %v", err)
	}
	if vs := h.list(ts, guest); !connected(vs, 2) {
		t.Fatalf("after detach: %+v", vs)
	}
	if _, err := ts.DestroyVHost(ctx, "guest5", 0); err != nil {
		t.Fatalf("destroy-vhost: %v", err)
	}
	if left := h.vscsiOf(guest); len(left) != 0 {
		t.Errorf("after destroy-vhost: %v", left)
	}
	// The watcher restores nothing by itself (it only acts on new
	// domains); an explicit apply does, and xl destroy + release cleans
	// the dom3 tree.
	if _, err := ts.Apply(ctx, "guest5", h.dirs[0]+"/guest5.cfg"); err != nil {
		t.Fatalf("apply: %v", err)
	}
	h.destroy(guest)
	h.waitCleaned(guest)
	if left := h.vscsiOf(guest); len(left) != 0 {
		t.Errorf("after release: %v", left)
	}
	if !h.Exists("/local/domain/3/backend/vscsi") {
		t.Errorf("the backend type directory went too")
	}
}
