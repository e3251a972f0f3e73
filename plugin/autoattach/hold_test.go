package autoattach_test

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/govscsi/govscsi/plugin/autoattach"
	"github.com/govscsi/govscsi/plugin/hold"
	"github.com/govscsi/govscsi/plugin/internal/rigtest"
	"github.com/govscsi/govscsi/tests/simpeer"
)

// firstRun is what a guest finds in xenstore at its first instruction.
type firstRun struct {
	backendState string        // vhost 0's backend state ("" if missing)
	frontend     bool          // device/vscsi/0/backend exists (what xenbus reads at boot and at resume)
	after        time.Duration // since xl's unpause
	sinceHold    time.Duration // since the hold was first seen (0: never held)
}

// xlCreate plays xl create (or restore, resumed) of domid as libxl does
// it: libxl__domain_make's transaction (the domain exists, paused by its
// creation), then the build, then @introduceDomain, then xl's unpause
// straight away. The build takes as long as the watcher needs to take its
// hold, up to 10 s (libxl's takes hundreds of milliseconds at least: the
// guest's memory is populated and its kernel loaded), or 200 ms when no
// hold is expected. The guest runs as soon as no pause reference is left:
// at that moment it looks at its xenstore (reported on the returned
// channel) and its scsifront starts.
func (h *host) xlCreate(domid uint32, name string, resumed, expectHold bool) <-chan firstRun {
	h.t.Helper()
	h.doms.Create(domid, 1)
	h.makeDomain(domid, name, "")
	build := time.Now().Add(200 * time.Millisecond)
	if expectHold {
		build = time.Now().Add(10 * time.Second)
	}
	var heldAt time.Time
	for time.Now().Before(build) && heldAt.IsZero() {
		if h.doms.Pauses(domid) > 1 {
			heldAt = time.Now()
		} else {
			time.Sleep(time.Millisecond)
		}
		if !expectHold && !heldAt.IsZero() {
			break
		}
	}
	h.Srv.IntroduceDomain(domid)
	t0 := time.Now()
	if err := h.doms.Unpause(domid); err != nil { // xl's own unpause
		h.t.Fatal(err)
	}
	ch := make(chan firstRun, 1)
	stop := make(chan struct{})
	done := make(chan struct{})
	h.t.Cleanup(func() { close(stop); <-done })
	go func() {
		defer close(done)
		for h.doms.Pauses(domid) != 0 {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
		h.doms.Tick(time.Millisecond)
		d := strconv.FormatUint(uint64(domid), 10)
		st, _ := h.Admin.Read(0, "/local/domain/"+strconv.FormatUint(uint64(h.beDomid), 10)+"/backend/vscsi/"+d+"/0/state")
		_, err := h.Admin.Read(0, rigtest.Home(domid)+"/device/vscsi/0/backend")
		r := firstRun{backendState: st, frontend: err == nil, after: time.Since(t0)}
		if !heldAt.IsZero() {
			r.sinceHold = time.Since(heldAt)
		}
		ch <- r
		fs, err := h.Srv.Connect(domid)
		if err != nil {
			return
		}
		defer fs.Close()
		fe := &simpeer.Frontend{Store: fs, Domid: domid, RingRef: "43", EventChannel: "20", Resumed: resumed}
		stopFE := simpeer.Start(fe.Run)
		<-stop
		stopFE()
	}()
	return ch
}

func (h *host) firstRun(ch <-chan firstRun) firstRun {
	h.t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(30 * time.Second):
		h.t.Fatalf("the guest never ran; log:\n%s", h.logs.String())
		return firstRun{}
	}
}

// A domain started by plain xl create is held from @introduceDomain until
// its vhost is probed: xl's unpause comes at once, yet the guest's first
// instruction finds device/vscsi/0 and the backend in InitWait (without a
// hold it would find nothing and get its disk by hot-plug, later). Then its
// frontend connects every device; the hold is gone, no record is left.
func TestHoldUntilProbed(t *testing.T) {
	h := newHost(t, 0)
	h.hold = true
	h.cfg(0, "guest5.cfg", guestCfg)
	h.start()
	run := h.xlCreate(5, "guest5", false, true)
	r := h.firstRun(run)
	if r.backendState != "2" || !r.frontend {
		t.Fatalf("at its first instruction the guest found backend state %q, frontend tree %v; log:\n%s", r.backendState, r.frontend, h.logs.String())
	}
	o := h.outcome(5)
	if o.Action != autoattach.Attached || o.Held <= 0 || o.HeldLate {
		t.Fatalf("outcome %+v", o)
	}
	if o := h.outcome(5); o.Action != autoattach.Connected || o.Err != nil {
		t.Fatalf("after the release: %+v; log:\n%s", o, h.logs.String())
	}
	if vs := h.list(h.adminTS(), 5); !connected(vs, 2) {
		t.Fatalf("vhosts: %+v", vs)
	}
	if n := h.doms.MostPauses(5); n != 2 {
		t.Errorf("at most %d pause references, want xl's and the hold's", n)
	}
	if h.Exists(hold.RecordPath(5)) {
		t.Error("hold record left")
	}
	t.Logf("held %v; the guest ran %v after xl's unpause", o.Held, r.after)
}

// A restored domain (xl restore, xendomains) is held the same way, and its
// resumed frontend, which re-announces only what READD covers, ends with
// every device connected on both sides.
func TestHoldRestoredDomain(t *testing.T) {
	h := newHost(t, 0)
	h.hold = true
	h.cfg(0, "guest5.cfg", guestCfg)
	h.start()
	r := h.firstRun(h.xlCreate(6, "guest5", true, true))
	if r.backendState != "2" || !r.frontend {
		t.Fatalf("at resume the guest found backend state %q, frontend tree %v", r.backendState, r.frontend)
	}
	if o := h.outcome(6); o.Action != autoattach.Attached {
		t.Fatalf("%+v", o)
	}
	if o := h.outcome(6); o.Action != autoattach.Connected {
		t.Fatalf("resumed frontend: %+v; log:\n%s", o, h.logs.String())
	}
	if vs := h.list(h.adminTS(), 6); !connected(vs, 2) {
		t.Fatalf("vhosts after the resume: %+v", vs)
	}
}

// A migration's incoming domain is held under its "--incoming" name.
func TestHoldIncomingMigration(t *testing.T) {
	h := newHost(t, 0)
	h.hold = true
	h.cfg(0, "mig.cfg", "name = \"mig\"\nvscsi = [ '"+wwn0+",0:0:0:0' ]\n")
	h.start()
	r := h.firstRun(h.xlCreate(7, "mig--incoming", true, true))
	if r.backendState != "2" || !r.frontend {
		t.Fatalf("the incoming guest found backend state %q, frontend tree %v", r.backendState, r.frontend)
	}
	if o := h.outcome(7); o.Action != autoattach.Attached || o.Held <= 0 {
		t.Fatalf("%+v", o)
	}
}

// Domains without vscsi= entries (or without a config) are never held.
func TestNoHoldWithoutVSCSI(t *testing.T) {
	h := newHost(t, 0)
	h.hold = true
	h.cfg(0, "plain.cfg", "name = \"plain\"\nmemory = 128\n")
	h.start()
	h.firstRun(h.xlCreate(8, "plain", false, false))
	if o := h.outcome(8); o.Action != autoattach.NoVSCSI || o.Held != 0 {
		t.Fatalf("%+v", o)
	}
	h.firstRun(h.xlCreate(9, "nocfg", false, false))
	if o := h.outcome(9); o.Action != autoattach.NoConfig || o.Held != 0 {
		t.Fatalf("%+v", o)
	}
	for _, d := range []uint32{8, 9} {
		if n := h.doms.MostPauses(d); n != 1 {
			t.Errorf("domain %d was held: %d references at once", d, n)
		}
	}
}

// A hold is bounded: with no backend to probe the vhost, the guest is let
// go after MaxHold and boots; the vhost stays for the backend to pick up
// (it is not rolled back before the toolstack's own init timeout).
func TestHoldExpiresWithoutBackend(t *testing.T) {
	h := newHostNoBackend(t)
	h.hold = true
	h.maxHold = 200 * time.Millisecond
	h.cfg(0, "guest5.cfg", guestCfg)
	h.start()
	r := h.firstRun(h.xlCreate(5, "guest5", false, true))
	// The hold was seen at most a poll after it was taken.
	if r.sinceHold < h.maxHold-20*time.Millisecond || r.sinceHold > 20*time.Second {
		t.Errorf("the guest ran %v after it was held, want about the hold bound %v", r.sinceHold, h.maxHold)
	}
	if n := h.doms.Pauses(5); n != 0 {
		t.Errorf("%d pause references left after expiry", n)
	}
	deadline := time.Now().Add(5 * time.Second) // logged right after the unpause
	for !strings.Contains(h.logs.String(), "hold expired") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if !strings.Contains(h.logs.String(), "hold expired") {
		t.Errorf("no 'hold expired' log line:\n%s", h.logs.String())
	}
}

// A hold left by a killed daemon (record + pause reference) is released
// when the next one starts; the guest runs.
func TestHoldRecoveredAtStart(t *testing.T) {
	h := newHost(t, 0)
	h.hold = true
	h.doms.Create(5, 0)
	h.guest(5, "guest5", "", true)
	if err := h.doms.Pause(5); err != nil {
		t.Fatal(err)
	}
	c := exec.Command("true")
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	// pid of an exited process, any start time: no such holder runs.
	h.Write(hold.RecordPath(5), "owner=vscsi-autoattach pid="+strconv.Itoa(c.Process.Pid)+" start=1 since=1")
	h.start()
	deadline := time.Now().Add(10 * time.Second)
	for h.doms.Pauses(5) != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := h.doms.Pauses(5); n != 0 || h.Exists(hold.RecordPath(5)) {
		t.Fatalf("the dead holder's hold was not released: %d references, record %v", n, h.Exists(hold.RecordPath(5)))
	}
}

// newHostNoBackend is newHost without the scripted backend peer.
func newHostNoBackend(t *testing.T) *host {
	t.Helper()
	return newHostOpt(t, 0, false)
}

// A domain that is already running when the daemon finds it (the daemon
// started after it) is not paused: its devices are hot-plugged.
func TestNoHoldForRunningDomain(t *testing.T) {
	h := newHost(t, 0)
	h.hold = true
	h.cfg(0, "guest5.cfg", guestCfg)
	h.doms.Create(5, 0)
	h.doms.Tick(time.Second)
	h.guest(5, "guest5", "", false)
	h.start()
	if o := h.outcome(5); o.Action != autoattach.Attached || o.Held != 0 {
		t.Fatalf("%+v", o)
	}
	if n := h.doms.MostPauses(5); n != 0 {
		t.Errorf("a running domain was paused (%d references)", n)
	}
	if vs := h.list(h.adminTS(), 5); !connected(vs, 2) {
		t.Fatalf("vhosts: %+v", vs)
	}
}
