package xenbus

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/govscsi/govscsi/backend/datapath"
	"github.com/govscsi/govscsi/libxlgo/xenif"
)

var (
	a0 = datapath.Addr{Channel: 0, Target: 0, LUN: 0}
	a1 = datapath.Addr{Channel: 0, Target: 1, LUN: 0}
	a2 = datapath.Addr{Channel: 0, Target: 2, LUN: 0}
)

// connectGuest attaches a vhost with a file LUN (dev-0) and a RAM LUN
// (dev-1), runs the frontend and waits for everything to be connected.
func connectGuest(t *testing.T, r *rig, domid uint32) *guest {
	img := r.image(fmt.Sprintf("d%d.img", domid), 1<<20)
	g := r.newGuest(domid)
	r.attach(domid, 0, map[int]devSpec{0: {"file:" + img, "0:0:0:0"}, 1: {"ram:4M", "0:0:1:0"}})
	be := r.bePath(domid, 0)
	r.waitValue(be+"/state", "2")
	want := r.cfg.MaxSegments
	if want == 0 {
		want = 128
	}
	if v := r.read(be + "/feature-sg-grant"); v != fmt.Sprint(want) {
		t.Errorf("feature-sg-grant = %q, want %d", v, want)
	}
	g.runFrontend(nil)
	r.waitValue(fePath(domid, 0)+"/state", "4")
	r.waitValue(be+"/state", "4")
	r.waitValue(be+"/vscsi-devs/dev-0/state", "4")
	r.waitValue(be+"/vscsi-devs/dev-1/state", "4")
	return g
}

func TestConnectFileAndRAMLUNs(t *testing.T) {
	r := newRig(t)
	r.start()
	g := connectGuest(t, r, 5)
	for _, a := range []datapath.Addr{a0, a1} {
		rslt, periph := g.inquiry(a)
		if rslt != 0 || periph != 0 {
			t.Errorf("INQUIRY %v: rslt %#x peripheral %#x", a, rslt, periph)
		}
		g.writeRead(a, 16, 0x3c)
	}
	// An address without a device: DID_NO_CONNECT, as Linux answers.
	if rslt, _ := g.inquiry(a2); rslt != 0x00010000 {
		t.Errorf("INQUIRY of an unassigned address: rslt %#x, want DID_NO_CONNECT", rslt)
	}
	if n := r.grants.Mapped(); n != 1 {
		t.Errorf("%d grants mapped while connected, want 1 (the ring)", n)
	}
	vs := r.b.Vhosts()
	if len(vs) != 1 || !vs[0].Connected || len(vs[0].Devices) != 2 || vs[0].Requests == 0 {
		t.Errorf("Vhosts() = %+v", vs)
	}
	// The explicit disconnect of every guest (xl-vscsi backend-stop
	// --disconnect): Closing, the frontend closes, Closed.
	r.b.SetStopMode(StopDisconnect)
	r.stop()
	if v := r.read(r.bePath(5, 0) + "/state"); v != "6" {
		t.Errorf("BE state after shutdown = %q, want 6", v)
	}
	if v := r.read(fePath(5, 0) + "/state"); v != "6" {
		t.Errorf("FE state after shutdown = %q, want 6 (the frontend saw BE=5)", v)
	}
}

func TestUnresolvablePdev(t *testing.T) {
	r := newRig(t)
	r.start()
	g := r.newGuest(5)
	r.attach(5, 0, map[int]devSpec{
		0: {"ram:1M", "0:0:0:0"},
		1: {"file:" + r.dir + "/missing.img", "0:0:1:0"},
		2: {"file:/etc/passwd", "0:0:2:0"},
		3: {"0:0:3:0", "0:0:3:0"},
		4: {"ram:1M", "0:0:0:0"}, // duplicate virtual address
		5: {"ram:1M", "0:x:5:0"},
	})
	g.runFrontend(nil)
	be := r.bePath(5, 0)
	r.waitValue(be+"/state", "4")
	r.waitValue(be+"/vscsi-devs/dev-0/state", "4")
	for n, want := range map[int]string{1: "no such file", 2: "not allowed", 3: "kernel", 4: "already used", 5: "v-dev"} {
		dp := fmt.Sprintf("%s/vscsi-devs/dev-%d", be, n)
		r.waitValue(dp+"/state", "6")
		if e := r.read(dp + "/error"); !strings.Contains(e, want) {
			t.Errorf("dev-%d/error = %q, want it to mention %q", n, e, want)
		}
	}
	if _, err := r.ts.Read(xenif.NoTx, be+"/vscsi-devs/dev-0/error"); err == nil {
		t.Errorf("the good dev-0 has an error node")
	}
	if rslt, _ := g.inquiry(a1); rslt != 0x00010000 {
		t.Errorf("refused device answers: rslt %#x", rslt)
	}
	g.writeRead(a0, 0, 1)
}

func TestHotAddAndRemove(t *testing.T) {
	r := newRig(t)
	r.start()
	g := connectGuest(t, r, 5)
	be := r.bePath(5, 0)

	r.hotAdd(5, 0, 2, devSpec{"ram:2M", "0:0:2:0"})
	r.waitValue(be+"/vscsi-devs/dev-2/state", "4")
	r.waitValue(be+"/state", "4")
	r.waitValue(fePath(5, 0)+"/vscsi-devs/dev-2/state", "4")
	g.writeRead(a2, 100, 9)

	// A hot-add the backend cannot open: 6 + error, vhost stays connected.
	r.hotAdd(5, 0, 3, devSpec{"file:" + r.dir + "/nope.img", "0:0:3:0"})
	r.waitValue(be+"/vscsi-devs/dev-3/state", "6")
	r.waitValue(be+"/state", "4")
	if e := r.read(be + "/vscsi-devs/dev-3/error"); !strings.Contains(e, "no such file") {
		t.Errorf("dev-3/error = %q", e)
	}

	r.hotRemove(5, 0, 1)
	r.waitValue(be+"/vscsi-devs/dev-1/state", "6")
	r.waitValue(be+"/state", "4")
	if rslt, _ := g.inquiry(a1); rslt != 0x00010000 {
		t.Errorf("removed device still answers: rslt %#x", rslt)
	}
	eventually(t, "LUN of dev-1 closed", func() bool { return r.open.Load() == 2 })
	g.writeRead(a0, 1, 2)
	g.writeRead(a2, 1, 3)
}

// TestFrontendReload: the guest unloads and reloads xen-scsifront (or
// kexecs): Closing, Closed, Initialising, a new ring, Initialised (P15);
// and a rebind that skips Initialising.
func TestFrontendReload(t *testing.T) {
	r := newRig(t)
	r.start()
	img := r.image("d.img", 1<<20)
	g := r.newGuest(5)
	r.attach(5, 0, map[int]devSpec{0: {"file:" + img, "0:0:0:0"}})
	be, fe := r.bePath(5, 0), fePath(5, 0)
	r.waitValue(be+"/state", "2")
	// Drive the frontend by hand.
	w := func(p, v string) { must(t, g.store.Write(xenif.NoTx, p, v)) }
	connect := func() {
		w(fe+"/ring-ref", fmt.Sprint(g.ref))
		w(fe+"/event-channel", fmt.Sprint(g.port))
		w(fe+"/state", "3")
		r.waitValue(be+"/state", "4")
		r.waitValue(be+"/vscsi-devs/dev-0/state", "3")
		w(fe+"/vscsi-devs/dev-0/state", "4")
		w(fe+"/state", "4")
		r.waitValue(be+"/vscsi-devs/dev-0/state", "4")
	}
	connect()
	g.writeRead(a0, 0, 0x11)
	w(fe+"/state", "5")
	r.waitValue(be+"/state", "5")
	// Closed (online=1, no failure): the backend passes through Closed
	// and waits for the next frontend instance in InitWait, its device
	// offered again (state 3).
	w(fe+"/state", "6")
	r.waitValue(be+"/state", "2")
	r.waitValue(be+"/vscsi-devs/dev-0/state", "3")
	eventually(t, "ring unmapped", func() bool { return r.grants.Mapped() == 0 })
	// kexec's xenbus_reset_frontend: Initialising; the backend stays in
	// InitWait.
	w(fe+"/state", "1")
	r.waitValue(be+"/state", "2")
	r.waitValue(be+"/vscsi-devs/dev-0/state", "3")
	g.newRing()
	connect()
	g.writeRead(a0, 0, 0x22)

	// FE Closed without Closing first: still disconnects.
	w(fe+"/state", "6")
	r.waitValue(be+"/state", "2")
	eventually(t, "ring unmapped after a direct Closed", func() bool { return r.grants.Mapped() == 0 })

	// Linux's xenbus unbind + bind of the device (sysfs), or a module
	// reload, goes from Closed straight to Initialised with a new ring,
	// never writing Initialising.
	g.newRing()
	connect()
	g.writeRead(a0, 0, 0x33)
}

func TestHostileFrontendValues(t *testing.T) {
	cases := []struct {
		name, ref, port, state string
		want                   string
	}{
		{"ring-ref abc", "abc", "5", "3", "22 reading"},
		{"ring-ref negative", "-1", "5", "3", "not a decimal"},
		{"ring-ref huge", "99999999999", "5", "3", "too long"},
		{"ring-ref 2^32", "4294967296", "5", "3", "out of range"},
		{"ring-ref spaces", " 8", "5", "3", "not a decimal"},
		{"event-channel -1", "8", "-1", "3", "not a decimal"},
		{"event-channel 0", "8", "0", "3", "not a valid port"},
		{"event-channel huge", "8", "4294967295", "3", "out of range"},
		{"ring-ref unmapped grant", "77777", "5", "3", "mapping ring-ref"},
		{"state garbage", "8", "5", "banana", "invalid state"},
		{"state 2", "8", "5", "2", "saw state 2 at frontend"},
		{"state 8", "8", "5", "8", "saw state 8 at frontend"},
		{"state 99", "8", "5", "99", "invalid state"},
	}
	r := newRig(t)
	r.start()
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			domid := uint32(10 + i)
			g := r.newGuest(domid)
			r.attach(domid, 0, map[int]devSpec{0: {"ram:1M", "0:0:0:0"}})
			be, fe := r.bePath(domid, 0), fePath(domid, 0)
			r.waitValue(be+"/state", "2")
			must(t, g.store.Write(xenif.NoTx, fe+"/ring-ref", c.ref))
			must(t, g.store.Write(xenif.NoTx, fe+"/event-channel", c.port))
			must(t, g.store.Write(xenif.NoTx, fe+"/state", c.state))
			r.waitValue(be+"/state", "5")
			errp := fmt.Sprintf("/local/domain/0/error/backend/%s/%d/0/error", r.typ(), domid)
			e := r.waitFor(errp, func(_ string, ok bool) bool { return ok }, "error node")
			if !strings.Contains(e, c.want) {
				t.Errorf("error node = %q, want it to contain %q", e, c.want)
			}
			if e[0] < '1' || e[0] > '9' {
				t.Errorf("error node %q does not start with an errno", e)
			}
			if n := r.grants.Mapped(); n != 0 {
				t.Errorf("%d grants mapped after a fatal error", n)
			}
		})
	}
}

func TestMissingFrontendDirAndForeignPath(t *testing.T) {
	r := newRig(t)
	r.start()
	// frontend names a directory that does not exist: never probed.
	r.newDomain(5)
	be := r.bePath(5, 0)
	must(t, r.ts.Write(xenif.NoTx, be+"/frontend", "/local/domain/5/device/vscsi/0"))
	must(t, r.ts.Write(xenif.NoTx, be+"/frontend-id", "5"))
	must(t, r.ts.Write(xenif.NoTx, be+"/state", "1"))
	time.Sleep(200 * time.Millisecond)
	if v := r.read(be + "/state"); v != "1" {
		t.Errorf("vhost without FE dir was probed: state %q", v)
	}
	// Creating the FE directory later is noticed by the rescan.
	must(t, r.ts.Write(xenif.NoTx, "/local/domain/5/device/vscsi/0/state", "1"))
	r.waitValue(be+"/state", "2")

	// frontend pointing at another domain's tree.
	r.newGuest(6)
	r.newGuest(7)
	r.attach(7, 0, nil)
	be6 := r.bePath(6, 0)
	must(t, xenif.Transact(r.ts, 5, func(tx xenif.Tx) error {
		for _, kv := range [][2]string{{be6 + "/frontend", fePath(7, 0)}, {be6 + "/frontend-id", "6"}, {be6 + "/online", "1"}, {be6 + "/state", "1"}} {
			if err := r.ts.Write(tx, kv[0], kv[1]); err != nil {
				return err
			}
		}
		return nil
	}))
	r.waitValue(be6+"/state", "5")
	e := r.read("/local/domain/0/error/backend/" + r.typ() + "/6/0/error")
	if !strings.Contains(e, "not inside /local/domain/6/") {
		t.Errorf("error node = %q", e)
	}
	// Guest 7 connects its own vhost; the bad vhost pointing at the same
	// FE directory must not map anything on dom6's behalf.
	g7 := r.guests[7]
	fe7 := fePath(7, 0)
	must(t, g7.store.Write(xenif.NoTx, fe7+"/ring-ref", fmt.Sprint(g7.ref)))
	must(t, g7.store.Write(xenif.NoTx, fe7+"/event-channel", fmt.Sprint(g7.port)))
	must(t, g7.store.Write(xenif.NoTx, fe7+"/state", "3"))
	r.waitValue(r.bePath(7, 0)+"/state", "4")
	time.Sleep(100 * time.Millisecond)
	if n := r.grants.Mapped(); n != 1 {
		t.Errorf("%d rings mapped, want 1 (dom7's own vhost)", n)
	}
	if v := r.read(be6 + "/state"); v != "5" {
		t.Errorf("bad vhost left Closing: %q", v)
	}
	// libxl's removal of the bad vhost completes.
	must(t, r.ts.Write(xenif.NoTx, be6+"/online", "0"))
	r.waitValue(be6+"/state", "6")
}
