package plugin_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govscsi/govscsi/plugin"
)

// TestDeferConnectPausedGuest is `xl-vscsi create`'s flow: the guest is
// paused, so its frontend cannot connect yet. With DeferConnect, Apply
// returns once the backend has probed each new vhost (InitWait), listing
// what is left to wait for; the guest is then "unpaused" (its frontend
// starts) and WaitConnected sees every device connected on both sides.
// Without DeferConnect the same Apply would time out on the frontend.
func TestDeferConnectPausedGuest(t *testing.T) {
	r := newRig(t, rigOpt{noFrontend: true, opts: plugin.Options{DeferConnect: true, InitTimeout: 5 * time.Second}})
	cfg := filepath.Join(t.TempDir(), "g.cfg")
	spec := "vscsi = [ '" + wwn0 + ",0:0:0:0', '" + wwn1 + ",1:0:0:0' ]\n"
	if err := os.WriteFile(cfg, []byte("name = \"guest5\"\n"+spec), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := r.ts.Apply(ctx(t), "guest5", cfg)
	if err != nil {
		t.Fatalf("deferred apply of a paused guest: %v", err)
	}
	if len(res.Waits) != 2 || len(res.Waits[0].Devs) != 1 || len(res.Waits[1].Devs) != 1 {
		t.Fatalf("Waits = %+v, want two vhosts with one device each", res.Waits)
	}
	for _, v := range []string{"0", "1"} {
		if st := r.Read("/local/domain/0/backend/vscsi/5/" + v + "/state"); st != "2" {
			t.Errorf("vhost %s: backend state %s before unpause, want 2 (InitWait)", v, st)
		}
	}
	r.startFrontend() // xl unpause: xen-scsifront probes
	if err := r.ts.WaitConnected(ctx(t), res.Domid, res.Waits); err != nil {
		t.Fatalf("WaitConnected after unpause: %v", err)
	}
	for _, v := range r.list() {
		if v.BackendState != 4 || v.FrontendState != 4 {
			t.Errorf("vhost %d: states %d/%d after WaitConnected", v.VHost, v.BackendState, v.FrontendState)
		}
	}
	if got := devStates(r.list()[0]); got != "dev-0 0:0:0:0 "+wwn0+" 4/4" {
		t.Errorf("vhost 0 devices: %s", got)
	}
}

// With DeferConnect a vhost no backend probes still fails, naming the
// backend, and nothing is left behind; a guest whose frontend never comes
// makes WaitConnected time out naming xen-scsifront.
func TestDeferConnectFailures(t *testing.T) {
	short := plugin.Options{DeferConnect: true, InitTimeout: 300 * time.Millisecond, DestroyTimeout: 300 * time.Millisecond}
	r := newRig(t, rigOpt{noBackend: true, noFrontend: true, opts: short})
	before := r.vscsiDump()
	_, err := r.ts.Attach(ctx(t), "guest5", wwn0, "0:0:0:0")
	if !errors.Is(err, plugin.ErrTimeout) || !strings.Contains(err.Error(), "is the vscsi backend running") {
		t.Fatalf("no backend: %v", err)
	}
	if got := r.vscsiDump(); got != before {
		t.Errorf("left behind without a backend:\n%s", got)
	}

	r2 := newRig(t, rigOpt{noFrontend: true, opts: short})
	res, err := r2.ts.Attach(ctx(t), "guest5", wwn0, "0:0:0:0")
	if err != nil || len(res.Waits) != 1 {
		t.Fatalf("deferred attach: %+v %v", res, err)
	}
	err = r2.ts.WaitConnected(ctx(t), res.Domid, res.Waits)
	if !errors.Is(err, plugin.ErrTimeout) || !strings.Contains(err.Error(), "xen-scsifront") {
		t.Fatalf("frontend never connects: %v", err)
	}
}

// A guest restored from a save (or received by migration) resumes with the
// LUNs it had: scsifront's READD pass writes frontend dev state 4 only for
// devices whose backend state is already 4, which it never is when the
// backend connects afresh. ApplyBeforeRun (the domain is held or paused)
// waits for the backend only; once the resumed frontend connects,
// WaitConnected takes the devices as connected and writes the frontend dev
// state READD left out, so the trees look as after a normal attach. Before
// that, every wait for such a guest timed out and rolled its disk back.
func TestApplyBeforeRunResumedGuest(t *testing.T) {
	r := newRig(t, rigOpt{noFrontend: true, opts: plugin.Options{InitTimeout: 5 * time.Second}})
	cfg := filepath.Join(t.TempDir(), "g.cfg")
	if err := os.WriteFile(cfg, []byte("name = \"guest5\"\nvscsi = [ '"+wwn0+",0:0:0:0', '"+wwn1+",0:0:1:0' ]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := r.ts.ApplyBeforeRun(ctx(t), "guest5", cfg)
	if err != nil {
		t.Fatalf("apply before run: %v", err)
	}
	if len(res.Waits) != 1 || len(res.Waits[0].Devs) != 2 {
		t.Fatalf("Waits = %+v, want one vhost with two devices", res.Waits)
	}
	if st := r.Read("/local/domain/0/backend/vscsi/5/0/state"); st != "2" {
		t.Fatalf("backend state %s before the guest runs, want 2", st)
	}
	r.resumed = true
	r.startFrontend() // the hold is released: the guest resumes
	if err := r.ts.WaitConnected(ctx(t), res.Domid, res.Waits); err != nil {
		t.Fatalf("WaitConnected for a resumed frontend: %v", err)
	}
	vs := r.list()
	if got := devStates(vs[0]); got != "dev-0 0:0:0:0 "+wwn0+" 4/4; dev-1 0:0:1:0 "+wwn1+" 4/4" || vs[0].FrontendState != 4 {
		t.Errorf("after the resume: %s (frontend %d)", got, vs[0].FrontendState)
	}
}

// The same resumed guest through plain scsi-attach (the way an admin would
// reattach after `xl restore -p`): the attach succeeds instead of timing
// out and removing the device again.
func TestAttachToResumedGuest(t *testing.T) {
	r := newRig(t, rigOpt{noFrontend: true, opts: plugin.Options{InitTimeout: 5 * time.Second}})
	r.resumed = true
	r.startFrontend()
	if _, err := r.ts.Attach(ctx(t), "guest5", wwn0, "0:0:0:0"); err != nil {
		t.Fatalf("attach to a resumed guest: %v", err)
	}
	if got := devStates(r.list()[0]); got != "dev-0 0:0:0:0 "+wwn0+" 4/4" {
		t.Errorf("after attach: %s", got)
	}
}
