package xenbus

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/govscsi/govscsi/backend/datapath"
	"github.com/govscsi/govscsi/backend/lunconf"
	"github.com/govscsi/govscsi/backend/ring"
	"github.com/govscsi/govscsi/backend/scsi"
	"github.com/govscsi/govscsi/backend/vscsiif"
	"github.com/govscsi/govscsi/libxlgo/xenfake"
	"github.com/govscsi/govscsi/libxlgo/xenif"
	"github.com/govscsi/govscsi/libxlgo/xsfake"
	"github.com/govscsi/govscsi/libxlgo/xsutil"
	"github.com/govscsi/govscsi/tests/simpeer"
)

// rig is a host: an xsfake xenstore, fake grants and event channels, a
// toolstack connection (dom0) and the Backend under test (dom0).
type rig struct {
	t      testing.TB
	srv    *xsfake.Started
	ts     xenif.Store // the toolstack
	beConn xenif.Store // the backend's own connection
	grants *xenfake.Grants
	hub    *xenfake.EventHub
	dir    string // allowed image directory
	state  string // Config.StateDir
	cfg    Config
	b      *Backend
	cancel context.CancelFunc
	runErr chan error
	open   atomic.Int64 // LUNs open right now
	guests map[uint32]*guest
	// waitMux serves every waitFor (one extra xenstore connection).
	waitMux *xsutil.Mux
	evs     sync.Map // *xenfake.EventChannel -> struct{}
}

type rigOpt func(*Config)

func newRig(t testing.TB, opts ...rigOpt) *rig {
	t.Helper()
	srv, err := xsfake.Start()
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, srv: srv, grants: xenfake.NewGrants(), hub: xenfake.NewEventHub(), dir: t.TempDir(), state: t.TempDir()}
	t.Cleanup(func() { srv.Close() })
	if r.ts, err = srv.Connect(0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.ts.Close() })
	must(t, r.ts.Write(xenif.NoTx, "/local/domain/0/domid", "0"))
	policy := lunconf.Policy{AllowPaths: []string{r.dir}, MaxRAM: 64 << 20}
	r.cfg = Config{
		Domid: 0,
		OpenLUN: func(req LUNRequest) (datapath.Entry, error) {
			o, err := policy.Open(req.Pdev, lunconf.Options{ID: fmt.Sprintf("%d/%s/%s", req.Domid, req.Vhost, req.Dev),
				LUN: uint64(req.Addr.LUN), ReportLUNs: req.ReportLUNs, StatePath: req.StatePath})
			if err != nil {
				return datapath.Entry{}, err
			}
			r.open.Add(1)
			return datapath.Entry{LUN: &countedLUN{LUN: o.LUN, n: &r.open}, Inline: o.Inline}, nil
		},
		Grants: r.grants,
		OpenEvents: func() (xenif.EventChannel, error) {
			ev, err := r.hub.Open(0)
			if err == nil {
				r.evs.Store(ev, struct{}{})
			}
			return ev, err
		},
		StateDir:        r.state,
		TeardownTimeout: 2 * time.Second,
		HandoverTimeout: 2 * time.Second,
		RemoveTimeout:   300 * time.Millisecond,
		ShutdownTimeout: time.Second,
		RescanInterval:  50 * time.Millisecond,
		Logger:          hclog.New(&hclog.LoggerOptions{Name: "be", Level: hclog.Debug, Output: testWriter{t}}),
	}
	for _, o := range opts {
		o(&r.cfg)
	}
	return r
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// countedLUN counts closes so tests can check that no LUN leaks.
type countedLUN struct {
	scsi.LUN
	n    *atomic.Int64
	once sync.Once
}

func (c *countedLUN) Close() error {
	var err error
	c.once.Do(func() { err = c.LUN.Close(); c.n.Add(-1) })
	return err
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// start runs the Backend on its own xenstore connection.
func (r *rig) start() {
	r.t.Helper()
	c, err := r.srv.Connect(0)
	must(r.t, err)
	r.beConn = c
	cfg := r.cfg
	cfg.Store = c
	r.b, err = New(cfg)
	must(r.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	done, b := make(chan error, 1), r.b
	r.runErr = done
	go func() { done <- b.Run(ctx) }()
	r.t.Cleanup(func() { r.stop() })
}

// stop shuts the Backend down (as SIGTERM does) and checks it released
// everything.
func (r *rig) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.runErr:
		if err != nil {
			r.t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		r.t.Fatal("Backend.Run did not return after cancel")
	}
	r.beConn.Close()
	r.checkReleased()
}

// checkReleased: no grant mapped, no port bound, no LUN open.
func (r *rig) checkReleased() {
	r.t.Helper()
	if n := r.grants.Mapped(); n != 0 {
		r.t.Errorf("%d grant mappings left", n)
	}
	r.evs.Range(func(k, _ any) bool {
		if n := k.(*xenfake.EventChannel).Bound(); n != 0 {
			r.t.Errorf("%d event-channel ports left bound", n)
		}
		return true
	})
	if n := r.open.Load(); n != 0 {
		r.t.Errorf("%d LUNs left open", n)
	}
}

func (r *rig) bePath(domid uint32, vhost int) string {
	return fmt.Sprintf("/local/domain/0/backend/%s/%d/%d", r.typ(), domid, vhost)
}

func (r *rig) typ() string {
	if r.cfg.Type == "" {
		return DefaultType
	}
	return r.cfg.Type
}

func fePath(domid uint32, vhost int) string {
	return fmt.Sprintf("/local/domain/%d/device/vscsi/%d", domid, vhost)
}

// image creates a file of size bytes in the allowed directory.
func (r *rig) image(name string, size int) string {
	p := filepath.Join(r.dir, name)
	must(r.t, os.WriteFile(p, make([]byte, size), 0o600))
	return p
}

type devSpec struct {
	pdev, vdev string
}

// newDomain creates a guest's home (owned by the guest) and introduces it.
func (r *rig) newDomain(domid uint32) {
	r.makeDomain(domid)
	r.srv.IntroduceDomain(domid)
}

// makeDomain creates a guest's home as libxl__domain_make does, without
// introducing the domain: libxl introduces it only once it is built (or
// restored, or received).
func (r *rig) makeDomain(domid uint32) {
	home := fmt.Sprintf("/local/domain/%d", domid)
	must(r.t, r.ts.Mkdir(xenif.NoTx, home))
	must(r.t, r.ts.SetPerms(xenif.NoTx, home, xenif.Perms{{Domid: domid, Bits: xenif.PermNone}, {Domid: 0, Bits: xenif.PermRead}}))
	must(r.t, r.ts.Write(xenif.NoTx, home+"/domid", strconv.Itoa(int(domid))))
}

// destroyDomain is xl destroy's part in xenstore: libxl removes the home
// (its device trees with it), then the domain dies and xenstored fires
// @releaseDomain. The vhosts' backend trees stay for the backend (P26).
func (r *rig) destroyDomain(domid uint32) {
	r.t.Helper()
	must(r.t, r.ts.Rm(xenif.NoTx, fmt.Sprintf("/local/domain/%d", domid)))
	r.srv.ReleaseDomain(domid)
}

// attach is the toolstack's vhost creation (§2.3 step 1), in one
// transaction.
func (r *rig) attach(domid uint32, vhost int, devs map[int]devSpec) {
	r.t.Helper()
	be, fe := r.bePath(domid, vhost), fePath(domid, vhost)
	s := r.ts
	err := xenif.Transact(s, 10, func(tx xenif.Tx) error {
		w := func(p, v string) error { return s.Write(tx, p, v) }
		// Perms first: children inherit them at creation.
		for _, d := range []struct {
			p     string
			perms xenif.Perms
		}{
			{fe, xenif.Perms{{Domid: domid, Bits: xenif.PermNone}, {Domid: 0, Bits: xenif.PermRead}}},
			{be, xenif.Perms{{Domid: 0, Bits: xenif.PermNone}, {Domid: domid, Bits: xenif.PermRead}}},
		} {
			if err := s.Mkdir(tx, d.p); err != nil {
				return err
			}
			if err := s.SetPerms(tx, d.p, d.perms); err != nil {
				return err
			}
		}
		for _, kv := range [][2]string{{fe + "/backend", be}, {fe + "/backend-id", "0"}, {fe + "/state", "1"}} {
			if err := w(kv[0], kv[1]); err != nil {
				return err
			}
		}
		for _, kv := range [][2]string{{be + "/frontend", fe}, {be + "/frontend-id", strconv.Itoa(int(domid))},
			{be + "/online", "1"}, {be + "/state", "1"}, {be + "/feature-host", "0"}} {
			if err := w(kv[0], kv[1]); err != nil {
				return err
			}
		}
		for n, d := range devs {
			dp := fmt.Sprintf("%s/vscsi-devs/dev-%d", be, n)
			for _, kv := range [][2]string{{dp + "/p-dev", d.pdev}, {dp + "/v-dev", d.vdev}, {dp + "/state", "1"}} {
				if err := w(kv[0], kv[1]); err != nil {
					return err
				}
			}
		}
		return nil
	})
	must(r.t, err)
}

// hotAdd is the toolstack's hot-add: dev nodes and BE state 7.
func (r *rig) hotAdd(domid uint32, vhost, n int, d devSpec) {
	be := r.bePath(domid, vhost)
	dp := fmt.Sprintf("%s/vscsi-devs/dev-%d", be, n)
	must(r.t, xenif.Transact(r.ts, 10, func(tx xenif.Tx) error {
		for _, kv := range [][2]string{{dp + "/p-dev", d.pdev}, {dp + "/v-dev", d.vdev}, {dp + "/state", "1"}, {be + "/state", "7"}} {
			if err := r.ts.Write(tx, kv[0], kv[1]); err != nil {
				return err
			}
		}
		return nil
	}))
}

// hotRemove is the toolstack's hot-remove: dev state 5 and BE state 7.
func (r *rig) hotRemove(domid uint32, vhost, n int) {
	be := r.bePath(domid, vhost)
	must(r.t, xenif.Transact(r.ts, 10, func(tx xenif.Tx) error {
		if err := r.ts.Write(tx, fmt.Sprintf("%s/vscsi-devs/dev-%d/state", be, n), "5"); err != nil {
			return err
		}
		return r.ts.Write(tx, be+"/state", "7")
	}))
}

// waitNode waits until path has value want ("" with gone=true: missing).
func (r *rig) waitFor(path string, pred func(string, bool) bool, what string) string {
	r.t.Helper()
	if r.waitMux == nil {
		r.waitMux = xsutil.NewMux(r.waitConn())
		r.t.Cleanup(func() { r.waitMux.Close() })
	}
	m := r.waitMux
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := xsutil.WaitFor(ctx, m, path, pred)
	if err != nil {
		r.t.Fatalf("waiting for %s (%s): %v\n%s", path, what, err, r.srv.Dump())
	}
	return v
}

func (r *rig) waitConn() xenif.Store {
	c, err := r.srv.Connect(0)
	must(r.t, err)
	r.t.Cleanup(func() { c.Close() })
	return c
}

func (r *rig) waitValue(path, want string) {
	r.t.Helper()
	r.waitFor(path, xsutil.Equals(want), "= "+want)
}

func (r *rig) read(path string) string {
	v, err := r.ts.Read(xenif.NoTx, path)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return v
}

// guest plays a domU: its own xenstore connection, a shared ring granted to
// the backend, and an unbound event-channel port.
type guest struct {
	r      *rig
	domid  uint32
	store  xenif.Store
	ev     *xenfake.Guest
	page   []byte
	ref    uint32
	port   uint32
	front  *ring.Front
	rspBuf []byte
	rqid   uint16
	mu     sync.Mutex
}

func (r *rig) newGuest(domid uint32) *guest {
	r.t.Helper()
	r.newDomain(domid)
	return r.guestOf(domid)
}

// guestOf is the guest side of a domain whose home exists.
func (r *rig) guestOf(domid uint32) *guest {
	r.t.Helper()
	c, err := r.srv.Connect(domid)
	must(r.t, err)
	r.t.Cleanup(func() { c.Close() })
	g := &guest{r: r, domid: domid, store: c, ev: r.hub.Guest(domid), rspBuf: make([]byte, vscsiif.ResponseSize)}
	g.newRing()
	if r.guests == nil {
		r.guests = map[uint32]*guest{}
	}
	r.guests[domid] = g
	return g
}

// newRing grants a fresh ring page and allocates a fresh port (a frontend
// (re)probing).
func (g *guest) newRing() {
	g.page = make([]byte, vscsiif.PageSize)
	var err error
	g.front, err = ring.NewFront(g.page, vscsiif.RequestSize)
	must(g.r.t, err)
	g.ref = g.r.grants.Grant(g.domid, g.page, false)
	g.port = g.ev.AllocUnbound(0)
}

// runFrontend plays xen-scsifront's xenstore side (tests/simpeer) with
// this guest's ring-ref and port.
func (g *guest) runFrontend(failAdd func(string) bool) {
	f := &simpeer.Frontend{Store: g.store, Domid: g.domid, FailAdd: failAdd,
		RingRef: strconv.FormatUint(uint64(g.ref), 10), EventChannel: strconv.FormatUint(uint64(g.port), 10),
		Log: g.r.t.Logf}
	stop := simpeer.Start(f.Run)
	g.r.t.Cleanup(func() { stop() })
}

// cmd sends one CDB to c:t:l and waits for its response. data is the
// data-out buffer (dir to device) or the size of the data-in buffer.
func (g *guest) cmd(a datapath.Addr, cdb []byte, dir uint8, out []byte, inLen int) (vscsiif.Response, []byte) {
	g.r.t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.rqid = (g.rqid + 1) % 16
	req := vscsiif.Request{Rqid: g.rqid, Act: vscsiif.ActSCSICDB, CmdLen: uint8(len(cdb)), Direction: dir,
		Channel: a.Channel, ID: a.Target, LUN: a.LUN}
	copy(req.CDB[:], cdb)
	var buf []byte
	n := inLen
	if dir == vscsiif.DMAToDevice {
		n = len(out)
	}
	var refs []uint32
	for off := 0; off < n; off += vscsiif.PageSize {
		p := make([]byte, vscsiif.PageSize)
		l := min(vscsiif.PageSize, n-off)
		if dir == vscsiif.DMAToDevice {
			copy(p, out[off:off+l])
		}
		ref := g.r.grants.Grant(g.domid, p, dir == vscsiif.DMAToDevice)
		refs = append(refs, ref)
		req.Seg[req.NrSegments] = vscsiif.Segment{Gref: ref, Length: uint16(l)}
		req.NrSegments++
		buf = append(buf, p[:l]...)
		defer func(p []byte, off, l int) {
			if dir == vscsiif.DMAFromDevice {
				copy(buf[off:off+l], p[:l])
			}
		}(p, off, l)
	}
	defer func() {
		for _, r := range refs {
			g.r.grants.Revoke(r) //nolint:errcheck // test cleanup
		}
	}()
	req.Encode(g.front.RequestSlot())
	g.front.CommitRequest()
	if g.front.PushRequests() {
		must(g.r.t, g.ev.Notify(g.port))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		if g.front.UnconsumedResponses() > 0 {
			g.front.CopyResponse(g.rspBuf)
			var rsp vscsiif.Response
			vscsiif.DecodeResponse(g.rspBuf, &rsp)
			if rsp.Rqid != g.rqid {
				g.r.t.Fatalf("response for rqid %d, want %d", rsp.Rqid, g.rqid)
			}
			return rsp, buf
		}
		if g.front.FinalCheckForResponses() {
			continue
		}
		if err := g.ev.Wait(ctx, g.port); err != nil {
			g.r.t.Fatalf("no response to %x: %v", cdb, err)
		}
	}
}

func cdb10(op byte, lba uint32, blocks uint16) []byte {
	c := make([]byte, 10)
	c[0] = op
	binary.BigEndian.PutUint32(c[2:], lba)
	binary.BigEndian.PutUint16(c[7:], blocks)
	return c
}

// writeRead writes 8 blocks of fill at lba and reads them back.
func (g *guest) writeRead(a datapath.Addr, lba uint32, fill byte) {
	g.r.t.Helper()
	data := make([]byte, 4096)
	for i := range data {
		data[i] = fill ^ byte(i)
	}
	rsp, _ := g.cmd(a, cdb10(0x2a, lba, 8), vscsiif.DMAToDevice, data, 0)
	if rsp.Rslt != 0 {
		g.r.t.Fatalf("WRITE(10) to %v: rslt %#x sense %x", a, rsp.Rslt, rsp.Sense[:rsp.SenseLen])
	}
	rsp, back := g.cmd(a, cdb10(0x28, lba, 8), vscsiif.DMAFromDevice, nil, 4096)
	if rsp.Rslt != 0 {
		g.r.t.Fatalf("READ(10) from %v: rslt %#x", a, rsp.Rslt)
	}
	if string(back) != string(data) {
		g.r.t.Fatalf("READ(10) from %v returned other data than written", a)
	}
}

// inquiry returns the INQUIRY response's rslt and peripheral byte.
func (g *guest) inquiry(a datapath.Addr) (int32, byte) {
	rsp, data := g.cmd(a, []byte{0x12, 0, 0, 0, 36, 0}, vscsiif.DMAFromDevice, nil, 36)
	return rsp.Rslt, data[0]
}

var errTimeout = errors.New("timeout")

// eventually polls cond for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, errTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// goroutines counts goroutines, for leak checks.
func goroutines() int { return runtime.NumGoroutine() }

// submit queues one CDB without data and does not wait for the answer.
func (g *guest) submit(a datapath.Addr, rqid uint16, cdb []byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	req := vscsiif.Request{Rqid: rqid, Act: vscsiif.ActSCSICDB, CmdLen: uint8(len(cdb)), Direction: vscsiif.DMANone,
		Channel: a.Channel, ID: a.Target, LUN: a.LUN}
	copy(req.CDB[:], cdb)
	req.Encode(g.front.RequestSlot())
	g.front.CommitRequest()
	if g.front.PushRequests() {
		must(g.r.t, g.ev.Notify(g.port))
	}
}

// stuckLUN blocks every command until release is closed (a hung tape or
// disk, P23).
type stuckLUN struct {
	started chan struct{}
	release chan struct{}
	once    sync.Once
}

func (s *stuckLUN) Execute(cmd *scsi.Command, res *scsi.Result) {
	s.once.Do(func() { close(s.started) })
	<-s.release
}
func (s *stuckLUN) Close() error { return nil }

// withStuck makes p-dev "stuck" open lun.
func withStuck(lun *stuckLUN) rigOpt {
	return func(c *Config) {
		inner := c.OpenLUN
		c.OpenLUN = func(req LUNRequest) (datapath.Entry, error) {
			if req.Pdev == "stuck" {
				return datapath.Entry{LUN: lun}, nil
			}
			return inner(req)
		}
	}
}
