package xenbus

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govscsi/govscsi/backend/vscsiif"
	"github.com/govscsi/govscsi/libxlgo/xenif"
)

func TestReleaseDomainMidIO(t *testing.T) {
	before := goroutines()
	// Registered first, so it runs after every other cleanup (frontend,
	// connections, server).
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for goroutines() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := goroutines(); n > before {
			buf := make([]byte, 1<<20)
			t.Errorf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
	})
	stuck := &stuckLUN{started: make(chan struct{}), release: make(chan struct{})}
	r := newRig(t, withStuck(stuck))
	r.start()
	g := r.newGuest(5)
	img := r.image("d.img", 1<<20)
	r.attach(5, 0, map[int]devSpec{0: {"file:" + img, "0:0:0:0"}, 1: {"stuck", "0:0:1:0"}})
	g.runFrontend(nil)
	be := r.bePath(5, 0)
	r.waitValue(be+"/state", "4")
	r.waitValue(be+"/vscsi-devs/dev-1/state", "4")
	g.writeRead(a0, 0, 7)
	g.submit(a1, 3, []byte{0x00, 0, 0, 0, 0, 0}) // TEST UNIT READY that never ends
	select {
	case <-stuck.started:
	case <-time.After(5 * time.Second):
		t.Fatal("stuck command never reached the LUN")
	}
	// The guest dies: xl destroy releases the domain and removes its home.
	must(t, r.ts.Write(xenif.NoTx, "/local/domain/0/error/backend/"+r.typ()+"/5/0/error", "1 stale"))
	r.destroyDomain(5)
	r.waitFor(r.bePath(5, 0), func(_ string, ok bool) bool { return !ok }, "backend tree removed")
	r.waitFor("/local/domain/0/error/backend/"+r.typ()+"/5", func(_ string, ok bool) bool { return !ok }, "error tree removed")
	eventually(t, "ring unmapped", func() bool { return r.grants.Mapped() == 0 })
	eventually(t, "file LUN closed", func() bool { return r.open.Load() == 0 })
	eventually(t, "no vhosts after release", func() bool { return len(r.b.Vhosts()) == 0 })
	// The tree does not come back.
	time.Sleep(100 * time.Millisecond)
	if _, err := r.ts.Read(xenif.NoTx, be); err == nil {
		t.Errorf("backend tree re-created after release")
	}
	close(stuck.release)
	r.stop()
}

// TestReleaseKeepsLiveDomains: @releaseDomain for one guest leaves the
// other alone.
func TestTwoGuestsAndRelease(t *testing.T) {
	r := newRig(t)
	r.start()
	g5 := connectGuest(t, r, 5)
	g6 := connectGuest(t, r, 6)
	var wg sync.WaitGroup
	for i, g := range []*guest{g5, g6} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				g.writeRead(a0, uint32(j*8), byte(i*50+j))
				g.writeRead(a1, uint32(j*8), byte(i*50+j+1))
			}
		}()
	}
	wg.Wait()
	r.destroyDomain(6)
	r.waitFor(r.bePath(6, 0), func(_ string, ok bool) bool { return !ok }, "dom6 tree removed")
	if v := r.read(r.bePath(5, 0) + "/state"); v != "4" {
		t.Errorf("dom5 vhost state %q after dom6 was released", v)
	}
	g5.writeRead(a0, 0, 0x77)
	if n := r.grants.Mapped(); n != 1 {
		t.Errorf("%d grants mapped, want dom5's ring only", n)
	}
}

// TestDaemonRestartReconnects: a vhost left at FE=4/BE=4 by a backend
// that died is connected again when the daemon starts.
func TestDaemonRestartReconnects(t *testing.T) {
	r := newRig(t)
	g := r.newGuest(5)
	img := r.image("d.img", 1<<20)
	r.attach(5, 0, map[int]devSpec{0: {"file:" + img, "0:0:0:0"}, 1: {"ram:1M", "0:0:1:0"}})
	be, fe := r.bePath(5, 0), fePath(5, 0)
	// What the dead daemon left behind: connected, dev-0 in 4, dev-1
	// announced (3) but not yet confirmed.
	for p, v := range map[string]string{be + "/state": "4", be + "/feature-sg-grant": "128",
		be + "/vscsi-devs/dev-0/state": "4", be + "/vscsi-devs/dev-1/state": "3"} {
		must(t, r.ts.Write(xenif.NoTx, p, v))
	}
	for p, v := range map[string]string{fe + "/ring-ref": fmt.Sprint(g.ref), fe + "/event-channel": fmt.Sprint(g.port),
		fe + "/state": "4", fe + "/vscsi-devs/dev-0/state": "4"} {
		must(t, g.store.Write(xenif.NoTx, p, v))
	}
	r.start()
	r.waitValue(be+"/vscsi-devs/dev-1/state", "4")
	g.writeRead(a0, 0, 0x42)
	g.writeRead(a1, 0, 0x43)
	if v := r.read(be + "/state"); v != "4" {
		t.Errorf("BE state %q after restart", v)
	}
}

// TestToolstackRemoval: libxl-style removal (online=0, BE state 5) with a
// cooperating frontend, a hung frontend and a frontend that never came.
func TestToolstackRemoval(t *testing.T) {
	r := newRig(t)
	r.start()
	remove := func(domid uint32) {
		be := r.bePath(domid, 0)
		must(t, xenif.Transact(r.ts, 5, func(tx xenif.Tx) error {
			if err := r.ts.Write(tx, be+"/online", "0"); err != nil {
				return err
			}
			return r.ts.Write(tx, be+"/state", "5")
		}))
	}
	t.Run("cooperating", func(t *testing.T) {
		connectGuest(t, r, 5)
		remove(5)
		r.waitValue(fePath(5, 0)+"/state", "6")
		r.waitValue(r.bePath(5, 0)+"/state", "6")
		eventually(t, "LUNs closed", func() bool { return r.open.Load() == 0 })
		eventually(t, "vhost gone", func() bool { return len(r.b.Vhosts()) == 0 })
	})
	t.Run("hung frontend", func(t *testing.T) {
		g := r.newGuest(6)
		r.attach(6, 0, map[int]devSpec{0: {"ram:1M", "0:0:0:0"}})
		be, fe := r.bePath(6, 0), fePath(6, 0)
		r.waitValue(be+"/state", "2")
		must(t, g.store.Write(xenif.NoTx, fe+"/ring-ref", fmt.Sprint(g.ref)))
		must(t, g.store.Write(xenif.NoTx, fe+"/event-channel", fmt.Sprint(g.port)))
		must(t, g.store.Write(xenif.NoTx, fe+"/state", "3"))
		r.waitValue(be+"/state", "4")
		start := time.Now()
		remove(6)
		r.waitValue(be+"/state", "6")
		if d := time.Since(start); d < r.cfg.RemoveTimeout/2 {
			t.Errorf("closed after %v, before giving the frontend its %v", d, r.cfg.RemoveTimeout)
		}
		eventually(t, "ring unmapped", func() bool { return r.grants.Mapped() == 0 })
		eventually(t, "LUNs closed", func() bool { return r.open.Load() == 0 })
	})
	t.Run("frontend never connected", func(t *testing.T) {
		r.newGuest(7)
		r.attach(7, 0, map[int]devSpec{0: {"ram:1M", "0:0:0:0"}})
		be := r.bePath(7, 0)
		r.waitValue(be+"/state", "2")
		remove(7)
		r.waitValue(be+"/state", "6")
		eventually(t, "LUNs closed", func() bool { return r.open.Load() == 0 })
	})
	t.Run("removed nodes stay removed", func(t *testing.T) {
		for _, d := range []uint32{5, 6, 7} {
			must(t, r.ts.Rm(xenif.NoTx, r.bePath(d, 0)))
		}
		time.Sleep(150 * time.Millisecond)
		for _, d := range []uint32{5, 6, 7} {
			if _, err := r.ts.Read(xenif.NoTx, r.bePath(d, 0)); err == nil {
				t.Errorf("dom%d backend nodes re-created", d)
			}
		}
	})
}

// TestFrontendVanishes: the FE directory is deleted (libxl's forced
// removal): Unknown -> unregister -> BE state 6.
func TestFrontendVanishes(t *testing.T) {
	r := newRig(t)
	r.start()
	connectGuest(t, r, 5)
	must(t, r.ts.Rm(xenif.NoTx, fePath(5, 0)))
	r.waitValue(r.bePath(5, 0)+"/state", "6")
	eventually(t, "ring unmapped", func() bool { return r.grants.Mapped() == 0 })
	eventually(t, "LUNs closed", func() bool { return r.open.Load() == 0 })
}

// TestRingViolationIsFatal: a frontend publishing a bogus req_prod gets a
// fatal error, not a hang.
func TestRingViolationIsFatal(t *testing.T) {
	r := newRig(t)
	r.start()
	g := connectGuest(t, r, 5)
	g.front.SetReqProd(1000)
	must(t, g.ev.Notify(g.port))
	// Fatal: error node and Closing; the simpeer frontend answers Closing
	// with Closed, so the backend ends at Closed.
	e := r.waitFor("/local/domain/0/error/backend/"+r.typ()+"/5/0/error", func(_ string, ok bool) bool { return ok }, "error node")
	r.waitValue(fePath(5, 0)+"/state", "6")
	r.waitValue(r.bePath(5, 0)+"/state", "6")
	if !strings.HasPrefix(e, "71 ") {
		t.Errorf("error node %q, want EPROTO (71)", e)
	}
	eventually(t, "ring unmapped", func() bool { return r.grants.Mapped() == 0 })
}

func TestCustomTypeName(t *testing.T) {
	r := newRig(t, func(c *Config) { c.Type = "vscsi-test" })
	r.start()
	connectGuest(t, r, 5)
	// Nothing under the kernel backend's type.
	if _, err := r.ts.Read(xenif.NoTx, "/local/domain/0/backend/vscsi"); err == nil {
		t.Errorf("something wrote under backend/vscsi")
	}
	if _, err := New(Config{Store: r.ts, OpenLUN: r.cfg.OpenLUN, Grants: r.grants, OpenEvents: r.cfg.OpenEvents, Type: "../x"}); err == nil {
		t.Errorf("New accepted type ../x")
	}
}

// TestStaleTreeCleanedAtStart: a backend tree left by a domain that died
// while the daemon was down is removed when it starts (P26), a live
// domain's is kept.
func TestStaleTreeCleanedAtStart(t *testing.T) {
	r := newRig(t)
	r.newGuest(5)
	r.attach(5, 0, map[int]devSpec{0: {"ram:1M", "0:0:0:0"}})
	// Domain 9 is not introduced: it is dead.
	stale := r.bePath(9, 0)
	must(t, r.ts.Write(xenif.NoTx, stale+"/frontend", fePath(9, 0)))
	must(t, r.ts.Write(xenif.NoTx, stale+"/frontend-id", "9"))
	must(t, r.ts.Write(xenif.NoTx, "/local/domain/0/error/backend/"+r.typ()+"/9/0/error", "22 old"))
	r.start()
	r.waitFor(r.bePath(9, 0), func(_ string, ok bool) bool { return !ok }, "stale tree removed")
	r.waitFor("/local/domain/0/error/backend/"+r.typ()+"/9", func(_ string, ok bool) bool { return !ok }, "stale error tree removed")
	r.waitValue(r.bePath(5, 0)+"/state", "2")
}

// TestClosingWithStuckCommand: the frontend closes while a command is stuck
// in its LUN (a hung tape, P23): teardown is bounded, the stuck command is
// answered once with DID_ABORT, the ring is unmapped.
func TestClosingWithStuckCommand(t *testing.T) {
	stuck := &stuckLUN{started: make(chan struct{}), release: make(chan struct{})}
	defer close(stuck.release)
	r := newRig(t, withStuck(stuck), func(c *Config) { c.TeardownTimeout = 300 * time.Millisecond })
	r.start()
	g := r.newGuest(5)
	r.attach(5, 0, map[int]devSpec{0: {"stuck", "0:0:0:0"}})
	be, fe := r.bePath(5, 0), fePath(5, 0)
	r.waitValue(be+"/state", "2")
	must(t, g.store.Write(xenif.NoTx, fe+"/ring-ref", fmt.Sprint(g.ref)))
	must(t, g.store.Write(xenif.NoTx, fe+"/event-channel", fmt.Sprint(g.port)))
	must(t, g.store.Write(xenif.NoTx, fe+"/state", "3"))
	r.waitValue(be+"/state", "4")
	g.submit(a0, 9, []byte{0x00, 0, 0, 0, 0, 0})
	<-stuck.started
	must(t, g.store.Write(xenif.NoTx, fe+"/state", "5"))
	r.waitValue(be+"/state", "5")
	eventually(t, "ring unmapped", func() bool { return r.grants.Mapped() == 0 })
	if n := g.front.UnconsumedResponses(); n != 1 {
		t.Fatalf("%d responses after teardown, want exactly 1", n)
	}
	g.front.CopyResponse(g.rspBuf)
	var rsp vscsiif.Response
	vscsiif.DecodeResponse(g.rspBuf, &rsp)
	if rsp.Rqid != 9 || rsp.Rslt != vscsiif.HostAbort<<16 {
		t.Errorf("response rqid %d rslt %#x, want rqid 9 DID_ABORT", rsp.Rqid, rsp.Rslt)
	}
}

// TestXenstoreGoneEndsRun: when the xenstore connection dies the Backend
// returns an error (so systemd restarts the daemon) instead of waiting
// for events that never come, and releases the guest's resources.
func TestXenstoreGoneEndsRun(t *testing.T) {
	r := newRig(t)
	r.start()
	connectGuest(t, r, 5)
	r.srv.Close()
	select {
	case err := <-r.runErr:
		if err == nil {
			t.Error("Run returned nil after xenstore went away")
		}
		t.Logf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run still running 10 s after xenstore went away")
	}
	r.cancel = nil
	r.checkReleased()
}

// A domain libxl is still making (restoring, receiving a migration) has
// its home but is not introduced yet; vscsi-autoattach writes its vhosts in
// that window. Another domain's @releaseDomain (the sending copy of a
// localhost migration suspends) must leave them: the backend took "not
// introduced" for "gone" once, removed the incoming guest's vhost, and the
// resumed guest found no backend (rig, lifecycle-userspace migrate).
func TestReleaseKeepsDomainsBeingMade(t *testing.T) {
	r := newRig(t)
	r.start()
	g5 := connectGuest(t, r, 5)
	r.makeDomain(7) // libxl__domain_make; not introduced
	img := r.image("d7.img", 1<<20)
	r.attach(7, 0, map[int]devSpec{0: {"file:" + img, "0:0:0:0"}})
	be7 := r.bePath(7, 0)
	r.waitValue(be7+"/state", "2")
	r.destroyDomain(5) // the sender's copy goes
	r.waitFor(r.bePath(5, 0), func(_ string, ok bool) bool { return !ok }, "dom5 tree removed")
	time.Sleep(100 * time.Millisecond)
	if v := r.read(be7 + "/state"); v != "2" {
		t.Fatalf("the vhost of a domain being made: state %q after another domain's release, want 2", v)
	}
	_ = g5
	// libxl introduces it, the guest runs and connects.
	r.srv.IntroduceDomain(7)
	g7 := r.guestOf(7)
	g7.runFrontend(nil)
	r.waitValue(be7+"/state", "4")
	g7.writeRead(a0, 0, 0x5a)
}
