package plugin_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/govscsi/govscsi/cfgparse"
	"github.com/govscsi/govscsi/libxlgo/xswire"
	"github.com/govscsi/govscsi/plugin"
)

const wwn3 = "naa.5001405012345678:3"

// writeCfg writes an xl config with the given vscsi specs.
func writeCfg(t *testing.T, name string, specs ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	text := "name = \"guest5\"\nvscsi = [ '" + strings.Join(specs, "', '") + "' ]\n"
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// countWrites counts the requests that change the store (write, mkdir,
// rm, set-perms), from any connection, from now on.
func (r *rig) countWrites() *atomic.Int64 {
	var n atomic.Int64
	r.Srv.SetOnRequest(func(_ uint32, m xswire.Msg) {
		switch m.Type {
		case xswire.Write, xswire.Mkdir, xswire.Rm, xswire.SetPerms:
			n.Add(1)
		}
	})
	r.t.Cleanup(func() { r.Srv.SetOnRequest(nil) })
	return &n
}

func (r *rig) devCount() (vhosts, devs, connected int) {
	for _, v := range r.list() {
		vhosts++
		devs += len(v.Devs)
		connected += strings.Count(devStates(v), " 4/4")
	}
	return
}

// Apply is idempotent: the same config again writes nothing; one extra
// entry adds only that device; an attached vdev with another p-dev is
// refused naming both p-devs; Attach (scsi-attach) still refuses a vdev
// used twice even with the same p-dev.
func TestApplyIdempotent(t *testing.T) {
	r := newRig(t, rigOpt{})
	base := []string{wwn0 + ",0:0:0:0", wwn1 + ",0:0:1:0", wwn2 + ",1:0:0:0"}
	cfg := writeCfg(t, "base.cfg", base...)
	res, err := r.ts.Apply(ctx(t), "guest5", cfg)
	if err != nil || len(res.Added) != 3 || len(res.Already) != 0 {
		t.Fatalf("first apply: %+v %v", res, err)
	}
	if v, d, c := r.devCount(); v != 2 || d != 3 || c != 3 {
		t.Fatalf("after the first apply: %d vhosts, %d devs, %d connected", v, d, c)
	}

	before := r.Srv.Dump()
	writes := r.countWrites()
	res, err = r.ts.Apply(ctx(t), "guest5", cfg)
	if err != nil {
		t.Fatalf("second apply: %v", err)
	}
	if n := writes.Load(); n != 0 || len(res.Writes) != 0 || len(res.Added) != 0 || len(res.Created) != 0 {
		t.Errorf("second apply wrote: %d store writes, result %+v", n, res)
	}
	if len(res.Already) != 3 {
		t.Errorf("second apply: Already %+v, want the 3 entries", res.Already)
	}
	if after := r.Srv.Dump(); after != before {
		t.Errorf("second apply changed xenstore:\nbefore\n%s\nafter\n%s", before, after)
	}

	// One extra entry on the existing vdev host 0: only it is written.
	res, err = r.ts.Apply(ctx(t), "guest5", writeCfg(t, "extra.cfg", append(base, wwn3+",0:0:2:0")...))
	if err != nil {
		t.Fatalf("apply with one extra entry: %v", err)
	}
	if len(res.Added) != 1 || res.Added[0].PDev != wwn3 || res.Added[0].VDev != "0:0:2:0" || res.Added[0].Dev != 2 || len(res.Created) != 0 || len(res.Already) != 3 {
		t.Errorf("apply with one extra entry: %+v", res)
	}
	for _, w := range res.Writes {
		if strings.Contains(w.Path, "/dev-0") || strings.Contains(w.Path, "/dev-1") || strings.Contains(w.Path, "/vscsi/5/1") {
			t.Errorf("apply with one extra entry rewrote an attached device: %s", w.Path)
		}
	}
	if v, d, c := r.devCount(); v != 2 || d != 4 || c != 4 {
		t.Errorf("after the extra entry: %d vhosts, %d devs, %d connected", v, d, c)
	}

	// Another p-dev on an attached vdev: refused, nothing written.
	before = r.Srv.Dump()
	_, err = r.ts.Apply(ctx(t), "guest5", writeCfg(t, "conflict.cfg", wwn0+",0:0:0:0", wwn2+",0:0:1:0"))
	var ce *plugin.AttachedConflictError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), wwn1) || !strings.Contains(err.Error(), wwn2) ||
		!strings.Contains(err.Error(), "0:0:1:0") || !strings.Contains(err.Error(), "conflict.cfg") {
		t.Errorf("conflicting p-dev: %v, want an AttachedConflictError naming the vdev, both p-devs and the config", err)
	}
	if after := r.Srv.Dump(); after != before {
		t.Errorf("a refused apply changed xenstore")
	}

	// A config naming an attached vdev twice is refused as on a first apply.
	_, err = r.ts.Apply(ctx(t), "guest5", writeCfg(t, "twice.cfg", wwn0+",0:0:0:0", wwn0+",0:0:0:0"))
	if err == nil || !strings.Contains(err.Error(), "used twice") {
		t.Errorf("a config with one vdev twice: %v", err)
	}
	if after := r.Srv.Dump(); after != before {
		t.Errorf("a refused apply changed xenstore")
	}

	// scsi-attach keeps refusing a vdev that is in use, same p-dev or not.
	if _, err := r.ts.Attach(ctx(t), "guest5", wwn0, "0:0:0:0"); err == nil || !strings.Contains(err.Error(), "used twice") {
		t.Errorf("attach of an attached vdev: %v", err)
	}
}

// An attached device that is being removed (dev state 5), or sits on a
// vhost being destroyed, is not counted as present: Apply refuses it
// rather than skip it.
func TestApplyAttachedButClosing(t *testing.T) {
	r := newRig(t, rigOpt{noBackend: true, noFrontend: true})
	// A vhost written by hand: idx 0, dev-0 with wwn0 at 0:0:0:0 in state 5.
	be := "/local/domain/0/backend/vscsi/5/0"
	r.Write(be+"/frontend", "/local/domain/5/device/vscsi/0")
	r.Write(be+"/frontend-id", "5")
	r.Write(be+"/online", "1")
	r.Write(be+"/state", "4")
	r.Write(be+"/feature-host", "0")
	r.Write(be+"/vscsi-devs/dev-0/p-dev", wwn0)
	r.Write(be+"/vscsi-devs/dev-0/v-dev", "0:0:0:0")
	r.Write(be+"/vscsi-devs/dev-0/state", "5")
	r.Write("/local/domain/5/device/vscsi/0/backend", "/local/domain/0/backend/vscsi/5/0")
	r.Write("/local/domain/5/device/vscsi/0/backend-id", "0")
	r.Write("/local/domain/5/device/vscsi/0/state", "4")
	r.Write("/libxl/5/vscsi/0/idx", "0")
	r.Write("/libxl/5/vscsi/0/next_vscsidev_id", "1")
	_, err := r.ts.Apply(ctx(t), "guest5", writeCfg(t, "closing.cfg", wwn0+",0:0:0:0"))
	var ce *plugin.AttachedConflictError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "in state 5") {
		t.Errorf("apply over a closing device: %v", err)
	}
	// A connected device on a vhost being destroyed: refused too.
	r.Write(be+"/vscsi-devs/dev-0/state", "4")
	r.Write(be+"/state", "5")
	_, err = r.ts.Apply(ctx(t), "guest5", writeCfg(t, "closing.cfg", wwn0+",0:0:0:0"))
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "the vhost is in state 5") {
		t.Errorf("apply over a closing vhost: %v", err)
	}
	// Sanity: the same tree with everything connected is skipped.
	r.Write(be+"/state", "4")
	if res, err := r.ts.Apply(ctx(t), "guest5", writeCfg(t, "closing.cfg", wwn0+",0:0:0:0")); err != nil || len(res.Already) != 1 || len(res.Writes) != 0 {
		t.Errorf("apply over the connected hand-made device: %+v %v", res, err)
	}
}

// The same config applied concurrently (vscsi-autoattach and `xl-vscsi
// create`; two processes' worth of libxenstore connections, and twice
// from one Toolstack): all succeed, and the domain has one set of devices.
func TestApplyRace(t *testing.T) {
	r := newRig(t, rigOpt{})
	ts2 := r.otherToolstack()
	cfg := writeCfg(t, "race.cfg", wwn0+",0:0:0:0", wwn1+",0:0:1:0", wwn2+",1:0:0:0")

	tss := []*plugin.Toolstack{r.ts, ts2, r.ts, ts2}
	results := make([]plugin.Result, len(tss))
	errs := make([]error, len(tss))
	var wg sync.WaitGroup
	for i, ts := range tss {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = ts.Apply(ctx(t), "guest5", cfg)
		}()
	}
	wg.Wait()
	added := 0
	for i, err := range errs {
		if err != nil {
			t.Errorf("apply %d: %v", i, err)
		}
		added += len(results[i].Added)
		if n := len(results[i].Added) + len(results[i].Already); err == nil && n != 3 {
			t.Errorf("apply %d accounts for %d entries, want 3: %+v", i, n, results[i])
		}
	}
	if added != 3 {
		t.Errorf("the racing applys added %d devices together, want 3", added)
	}
	if v, d, c := r.devCount(); v != 2 || d != 3 || c != 3 {
		t.Errorf("after the race: %d vhosts, %d devs, %d connected: %+v", v, d, c, r.list())
	}
}

// Idempotence compares p-devs as the flavour writes them: flavour hctl
// (seed.cfg's host:channel:target:lun p-devs) applied twice writes nothing.
func TestApplyIdempotentHCTL(t *testing.T) {
	r := newRig(t, rigOpt{opts: plugin.Options{Flavour: cfgparse.FlavourHCTL}})
	const seed = "../cfgparse/testdata/vscsi/seed.cfg"
	if _, err := r.ts.Apply(ctx(t), "guest5", seed); err != nil {
		t.Fatal(err)
	}
	before := r.Srv.Dump()
	writes := r.countWrites()
	res, err := r.ts.Apply(ctx(t), "guest5", seed)
	if err != nil || writes.Load() != 0 || len(res.Already) != 2 || len(res.Added) != 0 {
		t.Errorf("second apply of seed.cfg: %d writes, %+v, %v", writes.Load(), res, err)
	}
	if r.Srv.Dump() != before {
		t.Errorf("second apply of seed.cfg changed xenstore")
	}
}
