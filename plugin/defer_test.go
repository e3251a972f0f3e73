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
