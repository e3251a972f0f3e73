package simpeer_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govscsi/govscsi/libxlgo/xenif"
	"github.com/govscsi/govscsi/libxlgo/xsfake"
	"github.com/govscsi/govscsi/libxlgo/xswire"
	"github.com/govscsi/govscsi/tests/simpeer"
)

// recorder logs, in the order the server receives them, the state writes
// the peers make outside transactions ("BE 2", "FE dev-1 4", ...). The
// test's own writes are transactions and are not logged.
type recorder struct {
	mu  sync.Mutex
	log []string
}

func record(srv *xsfake.Server, paths map[string]string) *recorder {
	r := &recorder{}
	srv.SetOnRequest(func(_ uint32, m xswire.Msg) {
		if m.Type != xswire.Write || m.TxID != 0 {
			return
		}
		path, val, ok := strings.Cut(string(m.Payload), "\x00")
		if name, mapped := paths[path]; ok && mapped {
			r.mu.Lock()
			r.log = append(r.log, name+" "+val)
			r.mu.Unlock()
		}
	})
	return r
}

func (r *recorder) wait(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		got := strings.Join(r.log, ", ")
		r.mu.Unlock()
		if got == want {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t.Fatalf("state sequence:\n%s\nwant\n%s", strings.Join(r.log, ", "), want)
}

// either waits until the log equals one of a and b.
func (r *recorder) either(t *testing.T, a, b string) bool {
	for i := 0; i < 1000; i++ {
		r.mu.Lock()
		got := strings.Join(r.log, ", ")
		r.mu.Unlock()
		if got == a || got == b {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}

func (r *recorder) reset() {
	r.mu.Lock()
	r.log = nil
	r.mu.Unlock()
}

const (
	be = "/local/domain/0/backend/vscsi/5/0"
	fe = "/local/domain/5/device/vscsi/0"
)

// The peers follow protocol.md §2.3 for the sequences as they were first
// written by hand on real Xen: create, hot-add, hot-remove (with an
// unresolvable p-dev on the way), and removal of the vhost.
func TestSequences(t *testing.T) {
	srv := xsfake.New()
	defer srv.Close()
	ts, _ := srv.Connect(0)
	defer ts.Close()
	w := func(kv ...string) {
		t.Helper()
		err := xenif.Transact(ts, 5, func(tx xenif.Tx) error {
			for i := 0; i < len(kv); i += 2 {
				if err := ts.Write(tx, kv[i], kv[i+1]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	w("/local/domain/5/name", "g")
	ts.SetPerms(xenif.NoTx, "/local/domain/5", xenif.Perms{{Domid: 0}, {Domid: 5, Bits: xenif.PermRead}})
	ts.Mkdir(xenif.NoTx, "/local/domain/5/device/vscsi")
	ts.SetPerms(xenif.NoTx, "/local/domain/5/device/vscsi", xenif.Perms{{Domid: 5}, {Domid: 0, Bits: xenif.PermRead}})
	ts.Mkdir(xenif.NoTx, "/local/domain/0/backend/vscsi/5")
	ts.SetPerms(xenif.NoTx, "/local/domain/0/backend/vscsi/5", xenif.Perms{{Domid: 0}, {Domid: 5, Bits: xenif.PermRead}})

	rec := record(srv, map[string]string{
		be + "/state": "BE", fe + "/state": "FE",
		be + "/vscsi-devs/dev-0/state": "BE dev-0", be + "/vscsi-devs/dev-1/state": "BE dev-1",
		be + "/vscsi-devs/dev-2/state": "BE dev-2",
		fe + "/vscsi-devs/dev-0/state": "FE dev-0", fe + "/vscsi-devs/dev-1/state": "FE dev-1",
	})
	bc, _ := srv.Connect(0)
	defer bc.Close()
	fc, _ := srv.Connect(5)
	defer fc.Close()
	stopBE := simpeer.Start((&simpeer.Backend{Store: bc, Resolvable: func(p string) bool { return p != "bad:0" }, Log: t.Logf}).Run)
	defer stopBE()
	stopFE := simpeer.Start((&simpeer.Frontend{Store: fc, Domid: 5, Log: t.Logf}).Run)
	defer stopFE()

	// Create (one transaction, as the seed's create sequence).
	w(be+"/frontend", fe, be+"/frontend-id", "5", be+"/online", "1", be+"/state", "1", be+"/feature-host", "0",
		be+"/vscsi-devs/dev-0/p-dev", "naa.1:0", be+"/vscsi-devs/dev-0/v-dev", "0:0:0:0", be+"/vscsi-devs/dev-0/state", "1",
		fe+"/backend", be, fe+"/backend-id", "0", fe+"/state", "1")
	// The frontend probes regardless of the backend's state (§2.1), so
	// the first two writes come in either order.
	rest := ", BE dev-0 3, BE 4, FE dev-0 4, FE 4, BE dev-0 4"
	if !rec.either(t, "BE 2, FE 3"+rest, "FE 3, BE 2"+rest) {
		t.Fatalf("create sequence %v", rec.log)
	}
	if v, _ := ts.Read(xenif.NoTx, be+"/feature-sg-grant"); v != "128" {
		t.Errorf("feature-sg-grant %q", v)
	}

	// Hot-add dev-1 and an unresolvable dev-2 in one transaction.
	rec.reset()
	w(be+"/vscsi-devs/dev-1/p-dev", "naa.1:1", be+"/vscsi-devs/dev-1/v-dev", "0:0:1:0", be+"/vscsi-devs/dev-1/state", "1",
		be+"/vscsi-devs/dev-2/p-dev", "bad:0", be+"/vscsi-devs/dev-2/v-dev", "0:0:2:0", be+"/vscsi-devs/dev-2/state", "1",
		be+"/state", "7")
	rec.wait(t, "FE 7, BE dev-1 3, BE dev-2 6, BE 8, FE dev-1 4, FE 4, BE dev-1 4, BE 4")

	// Hot-remove dev-1.
	rec.reset()
	w(be+"/vscsi-devs/dev-1/state", "5", be+"/state", "7")
	rec.wait(t, "FE dev-1 6, FE 7, BE dev-1 6, BE 8, FE 4, BE 4")

	// Remove the vhost: online 0 + Closing.
	rec.reset()
	w(be+"/online", "0", be+"/state", "5")
	rec.wait(t, "FE 6, BE 6")
}

// A frontend that writes InitWait (a protocol slip) makes the backend
// write the xenbus error node and close (§2.1: xenbus_dev_fatal); a
// missing ring-ref at Initialised does the same.
func TestBackendFatal(t *testing.T) {
	srv := xsfake.New()
	defer srv.Close()
	ts, _ := srv.Connect(0)
	defer ts.Close()
	bc, _ := srv.Connect(0)
	defer bc.Close()
	stop := simpeer.Start((&simpeer.Backend{Store: bc}).Run)
	defer stop()
	for _, kv := range [][2]string{{be + "/frontend", fe}, {be + "/frontend-id", "5"}, {be + "/online", "1"}, {be + "/state", "1"}, {fe + "/state", "1"}} {
		ts.Write(xenif.NoTx, kv[0], kv[1])
	}
	waitFor := func(p, want string) {
		t.Helper()
		for i := 0; i < 500; i++ {
			if v, _ := ts.Read(xenif.NoTx, p); v == want {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		v, _ := ts.Read(xenif.NoTx, p)
		t.Fatalf("%s = %q, want %q", p, v, want)
	}
	waitFor(be+"/state", "2")
	ts.Write(xenif.NoTx, fe+"/state", "3") // Initialised without ring-ref
	waitFor(be+"/state", "5")
	waitFor("/local/domain/0/error/backend/vscsi/5/0/error", "reading ring-ref and event-channel")
	// The frontend directory disappearing: the xenbus core writes Closed.
	ts.Rm(xenif.NoTx, "/local/domain/5")
	waitFor(be+"/state", "6")
}
