package plugin_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govscsi/govscsi/cfgparse"
	"github.com/govscsi/govscsi/libxlgo/xs"
	"github.com/govscsi/govscsi/plugin"
	"github.com/govscsi/govscsi/plugin/internal/rigtest"
	"github.com/govscsi/govscsi/tests/simpeer"
)

const guest = 5

// rig is an xsfake server with a guest domain 5 ("guest5"), the toolstack
// on Debian's libxenstore (XENSTORED_PATH = the server's socket), and the
// scripted backend (dom0) and frontend (domain 5) peers on their own
// connections.
type rig struct {
	*rigtest.Host // the server and its dom0 client for setup and checks
	t             testing.TB
	store         *xs.Handle
	ts            *plugin.Toolstack
	be            *simpeer.Backend
	fe            *simpeer.Frontend
	stopFE        func() error
	failAdd       func(string) bool
	resumed       bool // the next frontend started resumes (simpeer.Frontend.Resumed)
	logf          func(string, ...any)
}

// startFrontend runs the scripted frontend (xen-scsifront loading).
func (r *rig) startFrontend() {
	r.t.Helper()
	fs, err := r.Srv.Connect(guest)
	if err != nil {
		r.t.Fatal(err)
	}
	r.fe = &simpeer.Frontend{Store: fs, Domid: guest, FailAdd: r.failAdd, RingRef: "43", EventChannel: "20", Resumed: r.resumed, Log: r.logf}
	stop := simpeer.Start(r.fe.Run)
	var once sync.Once
	r.stopFE = func() error {
		var err error
		once.Do(func() { err = stop(); fs.Close() })
		return err
	}
	r.t.Cleanup(func() { r.stopFE() })
}

type rigOpt struct {
	noFrontend bool
	noBackend  bool
	resolvable func(string) bool
	failAdd    func(string) bool
	beDelay    time.Duration
	opts       plugin.Options
}

func newRig(t testing.TB, o rigOpt) *rig {
	t.Helper()
	r := &rig{Host: rigtest.NewHost(t), t: t}
	// The backend type directory stays once created (nobody removes it).
	r.Mkdir("/local/domain/0/backend/vscsi", rigtest.N0)
	r.Guest(guest, "guest5")

	// The peers.
	bs, err := r.Srv.Connect(0)
	if err != nil {
		t.Fatal(err)
	}
	r.logf = t.Logf
	if _, bench := t.(*testing.B); bench {
		r.logf = nil // keep peer chatter out of measurements
	}
	r.be = &simpeer.Backend{Store: bs, Resolvable: o.resolvable, Delay: o.beDelay, DevErrors: true, Log: r.logf}
	if !o.noBackend {
		stopBE := simpeer.Start(r.be.Run)
		t.Cleanup(func() { stopBE() })
	}
	t.Cleanup(func() { bs.Close() })
	r.failAdd = o.failAdd
	if !o.noFrontend {
		r.startFrontend()
	}

	// The toolstack, on the real libxenstore.
	if r.store, err = xs.Open(0); err != nil {
		t.Fatalf("libxenstore against xsfake: %v", err)
	}
	opts := o.opts
	if opts.Flavour == 0 {
		opts.Flavour = cfgparse.FlavourKernel
	}
	r.ts = plugin.New(r.store, opts)
	t.Cleanup(func() { r.ts.Close(); r.store.Close() })
	return r
}

// vscsiDump is the part of the tree vscsi operations may touch: every line
// of the server dump that mentions vscsi (backend, frontend, error and
// toolstack nodes).
func (r *rig) vscsiDump() string {
	var out []string
	for _, l := range strings.Split(r.Srv.Dump(), "\n") {
		if strings.Contains(l, "vscsi") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// otherToolstack is a second toolstack on its own libxenstore connection:
// another process's worth, for races.
func (r *rig) otherToolstack() *plugin.Toolstack {
	r.t.Helper()
	other, err := xs.Open(0)
	if err != nil {
		r.t.Fatal(err)
	}
	ts := plugin.New(other, plugin.Options{})
	r.t.Cleanup(func() { ts.Close(); other.Close() })
	return ts
}

func (r *rig) list() []plugin.VHostStatus {
	r.t.Helper()
	vs, err := r.ts.List(guest)
	if err != nil {
		r.t.Fatal(err)
	}
	return vs
}
