package xenbus

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/govscsi/govscsi/backend/datapath"
	"github.com/govscsi/govscsi/backend/scsi"
	"github.com/govscsi/govscsi/backend/store"
	"github.com/govscsi/govscsi/backend/vscsiif"
	"github.com/govscsi/govscsi/libxlgo/xenif"
	"github.com/govscsi/govscsi/libxlgo/xsutil"
)

// Restarts of the backend process under a connected guest, played by two
// Backends in turn over one rig (xenstore, grants, event channels, state
// directory): a handover (SIGTERM), a crash (kill: what SIGKILL leaves), the
// explicit disconnect.

// gateLUN is a RAM disk whose commands wait while the gate is held.
type gateLUN struct {
	scsi.LUN
	mu      sync.Mutex
	cond    *sync.Cond
	held    bool
	started chan uint64
}

func newGateLUN(t testing.TB) *gateLUN {
	st, err := store.NewRAM(1<<20, store.RAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g := &gateLUN{LUN: scsi.NewDisk(st, scsi.DiskOptions{ID: "gate"}), started: make(chan uint64, 64)}
	g.cond = sync.NewCond(&g.mu)
	return g
}

func (g *gateLUN) Execute(cmd *scsi.Command, res *scsi.Result) {
	g.mu.Lock()
	held := g.held
	g.mu.Unlock()
	if held {
		g.started <- cmd.Tag
	}
	g.mu.Lock()
	for g.held {
		g.cond.Wait()
	}
	g.mu.Unlock()
	g.LUN.Execute(cmd, res)
}

func (g *gateLUN) hold() { g.mu.Lock(); g.held = true; g.mu.Unlock() }
func (g *gateLUN) let()  { g.mu.Lock(); g.held = false; g.cond.Broadcast(); g.mu.Unlock() }
func (g *gateLUN) Close() error {
	return nil // shared by the rig's backend instances
}

// withGate makes p-dev "gate" open *gate (the test swaps it between
// backend instances: each process has its own LUN objects).
func withGate(gate **gateLUN) rigOpt {
	return func(c *Config) {
		inner := c.OpenLUN
		c.OpenLUN = func(req LUNRequest) (datapath.Entry, error) {
			if req.Pdev == "gate" {
				return datapath.Entry{LUN: *gate}, nil
			}
			return inner(req)
		}
	}
}

// kill ends the Backend the way SIGKILL does: no xenstore write, no
// response, the kernel's share (ports, ring mappings, the state lock)
// released.
func (r *rig) kill() {
	r.t.Helper()
	r.b.killed.Store(true)
	r.cancel()
	r.cancel = nil
	select {
	case <-r.runErr:
	case <-time.After(10 * time.Second):
		r.t.Fatal("Backend.Run did not return after kill")
	}
	r.beConn.Close()
	if n := r.grants.Mapped(); n != 0 {
		r.t.Errorf("%d grant mappings left after kill", n)
	}
}

// submitWrite queues a WRITE(10) of 8 blocks of fill at lba without
// waiting; the data page stays granted.
func (g *guest) submitWrite(a datapath.Addr, rqid uint16, lba uint32, fill byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	p := make([]byte, vscsiif.PageSize)
	for i := range p {
		p[i] = fill ^ byte(i)
	}
	ref := g.r.grants.Grant(g.domid, p, true)
	req := vscsiif.Request{Rqid: rqid, Act: vscsiif.ActSCSICDB, CmdLen: 10, Direction: vscsiif.DMAToDevice,
		Channel: a.Channel, ID: a.Target, LUN: a.LUN, NrSegments: 1}
	copy(req.CDB[:], cdb10(0x2a, lba, 8))
	req.Seg[0] = vscsiif.Segment{Gref: ref, Length: vscsiif.PageSize}
	req.Encode(g.front.RequestSlot())
	g.front.CommitRequest()
	if g.front.PushRequests() {
		must(g.r.t, g.ev.Notify(g.port))
	}
}

// collect gathers responses until want rqids were answered or d passed,
// failing on a second response for one rqid (xen-scsifront disables the
// host on it).
func (g *guest) collect(seen map[uint16]vscsiif.Response, want int, d time.Duration) {
	g.r.t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	deadline := time.Now().Add(d)
	for len(seen) < want && time.Now().Before(deadline) {
		for g.front.UnconsumedResponses() > 0 {
			g.front.CopyResponse(g.rspBuf)
			var rsp vscsiif.Response
			vscsiif.DecodeResponse(g.rspBuf, &rsp)
			if old, dup := seen[rsp.Rqid]; dup {
				g.r.t.Fatalf("rqid %d answered twice (%#x, then %#x)", rsp.Rqid, old.Rslt, rsp.Rslt)
			}
			seen[rsp.Rqid] = rsp
		}
		g.front.FinalCheckForResponses()
		time.Sleep(time.Millisecond)
	}
}

// readCheck reads 8 blocks at lba and checks they hold fill's pattern.
func (g *guest) readCheck(a datapath.Addr, lba uint32, fill byte) {
	g.r.t.Helper()
	rsp, back := g.cmd(a, cdb10(0x28, lba, 8), vscsiif.DMAFromDevice, nil, 4096)
	if rsp.Rslt != 0 {
		g.r.t.Fatalf("READ(10) from %v: rslt %#x", a, rsp.Rslt)
	}
	for i := range back {
		if back[i] != fill^byte(i) {
			g.r.t.Fatalf("READ(10) from %v lba %d: byte %d is %#x, want %#x", a, lba, i, back[i], fill^byte(i))
		}
	}
}

// stateLog records every value the vhost's BE and FE state nodes take.
type stateLog struct {
	mu   sync.Mutex
	seen map[string][]string
}

func (r *rig) recordStates(paths ...string) *stateLog {
	l := &stateLog{seen: map[string][]string{}}
	m := xsutil.NewMux(r.waitConn())
	r.t.Cleanup(func() { m.Close() })
	for _, p := range paths {
		ch, cancel, err := m.Watch(p)
		must(r.t, err)
		r.t.Cleanup(func() { cancel() })
		go func() {
			for range ch {
				v, _ := r.ts.Read(xenif.NoTx, p)
				l.mu.Lock()
				if s := l.seen[p]; len(s) == 0 || s[len(s)-1] != v {
					l.seen[p] = append(l.seen[p], v)
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *stateLog) values(p string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.seen[p]...)
}

// connectThree attaches dev-0 file, dev-1 ram:4M, dev-2 gate and connects.
func connectThree(t *testing.T, r *rig, domid uint32) *guest {
	img := r.image(fmt.Sprintf("d%d.img", domid), 1<<20)
	g := r.newGuest(domid)
	r.attach(domid, 0, map[int]devSpec{0: {"file:" + img, "0:0:0:0"}, 1: {"ram:4M", "0:0:1:0"}, 2: {"gate", "0:0:2:0"}})
	g.runFrontend(nil)
	be := r.bePath(domid, 0)
	r.waitValue(be+"/state", "4")
	for n := 0; n < 3; n++ {
		r.waitValue(fmt.Sprintf("%s/vscsi-devs/dev-%d/state", be, n), "4")
	}
	return g
}

// TestHandoverKeepsGuestConnected: SIGTERM (the default stop) leaves the
// vhost connected: xenstore never leaves 4, the command in flight finishes
// GOOD (no DID_ABORT), requests queued while no backend runs are served by
// the next backend, and the RAM disk's contents survive.
func TestHandoverKeepsGuestConnected(t *testing.T) {
	gate := newGateLUN(t)
	r := newRig(t, withGate(&gate))
	r.start()
	g := connectThree(t, r, 5)
	be, fe := r.bePath(5, 0), fePath(5, 0)
	g.writeRead(a0, 0, 0x11)
	g.writeRead(a1, 16, 0x22)
	states := r.recordStates(be+"/state", fe+"/state", be+"/vscsi-devs/dev-1/state", fe+"/vscsi-devs/dev-1/state")

	gate.hold()
	g.submitWrite(a2, 100, 0, 0x33)
	<-gate.started
	stopped := make(chan struct{})
	go func() { r.stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("the handover did not wait for the command in flight")
	case <-time.After(50 * time.Millisecond):
	}
	gate.let()
	<-stopped
	seen := map[uint16]vscsiif.Response{}
	g.collect(seen, 1, 2*time.Second)
	if rsp, ok := seen[100]; !ok || rsp.Rslt != 0 {
		t.Fatalf("the command in flight at the handover: %+v, answered %v; want GOOD", rsp, ok)
	}
	if n := r.b.HandedOver(); n != 1 {
		t.Errorf("HandedOver = %d, want 1", n)
	}
	// Requests queued while no backend runs (the notifications are lost).
	g.submitWrite(a1, 101, 32, 0x44)
	g.submitWrite(a0, 102, 8, 0x55)
	time.Sleep(20 * time.Millisecond)
	if _, err := os.Stat(filepath.Join(r.state, "5", "0", "dev-1.lun")); err != nil {
		t.Errorf("RAM disk file gone after the handover: %v", err)
	}

	r.start()
	g.collect(seen, 3, 5*time.Second)
	for _, q := range []uint16{101, 102} {
		if rsp, ok := seen[q]; !ok || rsp.Rslt != 0 {
			t.Fatalf("rqid %d queued while no backend ran: %+v, answered %v", q, rsp, ok)
		}
	}
	g.readCheck(a1, 16, 0x22) // written before the handover: RAM survived
	g.readCheck(a1, 32, 0x44)
	g.readCheck(a0, 0, 0x11)
	g.readCheck(a0, 8, 0x55)
	g.readCheck(a2, 0, 0x33)
	g.writeRead(a1, 48, 0x66)
	time.Sleep(50 * time.Millisecond)
	for _, p := range []string{be + "/state", fe + "/state", be + "/vscsi-devs/dev-1/state", fe + "/vscsi-devs/dev-1/state"} {
		for _, v := range states.values(p) {
			if v != "4" {
				t.Errorf("%s went through %q during the handover: %v", p, v, states.values(p))
			}
		}
	}
	if len(seen) != 3 {
		t.Errorf("%d responses to the submitted requests, want 3", len(seen))
	}
}

// TestCrashRecoversInFlight: after SIGKILL with commands inside a LUN and
// requests queued behind them, the next backend answers every one of them
// exactly once (the in-flight journal), xenstore untouched throughout.
func TestCrashRecoversInFlight(t *testing.T) {
	gate := newGateLUN(t)
	r := newRig(t, withGate(&gate))
	r.start()
	g := connectThree(t, r, 5)
	be := r.bePath(5, 0)
	g.writeRead(a1, 0, 0x21)
	old := gate
	old.hold()
	defer old.let()
	for i := uint16(0); i < 3; i++ {
		g.submitWrite(a2, 200+i, uint32(8*i), byte(0x70+i))
	}
	for i := 0; i < 3; i++ {
		<-old.started
	}
	g.submitWrite(a1, 203, 64, 0x73) // after the stuck ones, on a fast LUN
	seen := map[uint16]vscsiif.Response{}
	g.collect(seen, 1, 2*time.Second)
	r.kill()
	g.collect(seen, 4, 20*time.Millisecond)
	for q := uint16(200); q < 203; q++ {
		if _, ok := seen[q]; ok {
			t.Fatalf("rqid %d answered although its LUN never returned", q)
		}
	}
	if v := r.read(be + "/state"); v != "4" {
		t.Fatalf("BE state %q after the crash", v)
	}
	g.submitWrite(a0, 204, 0, 0x74) // queued while no backend runs

	gate = newGateLUN(t) // the next process's own LUN
	r.start()
	g.collect(seen, 5, 5*time.Second)
	for q := uint16(200); q <= 204; q++ {
		if rsp, ok := seen[q]; !ok || rsp.Rslt != 0 {
			t.Fatalf("rqid %d after the crash: %+v, answered %v", q, rsp, ok)
		}
	}
	for i := uint32(0); i < 3; i++ {
		g.readCheck(a2, 8*i, byte(0x70+i)) // executed again by the next process
	}
	g.readCheck(a1, 0, 0x21)
	g.readCheck(a1, 64, 0x73)
	g.readCheck(a0, 0, 0x74)
	g.collect(seen, 6, 30*time.Millisecond)
	if len(seen) != 5 {
		t.Errorf("%d responses, want 5", len(seen))
	}
}

// TestCrashLoop: the backend is killed again and again at random moments
// while the guest keeps I/O going; every request is answered exactly once
// and the data reads back.
func TestCrashLoop(t *testing.T) {
	gate := newGateLUN(t)
	r := newRig(t, withGate(&gate))
	r.start()
	g := connectThree(t, r, 5)
	seen := map[uint16]vscsiif.Response{}
	next := uint16(300)
	fills := map[uint32]byte{}
	for round := 0; round < 8; round++ {
		for i := 0; i < 6; i++ {
			lba := uint32((int(next) % 32) * 8)
			fill := byte(next)
			g.submitWrite(a1, next, lba, fill)
			fills[lba] = fill
			next++
		}
		time.Sleep(time.Duration(round%3) * time.Millisecond)
		r.kill()
		r.start()
		g.collect(seen, int(next-300), 5*time.Second)
		if len(seen) != int(next-300) {
			t.Fatalf("round %d: %d of %d requests answered", round, len(seen), next-300)
		}
	}
	for q, rsp := range seen {
		if rsp.Rslt != 0 {
			t.Errorf("rqid %d: rslt %#x", q, rsp.Rslt)
		}
	}
	var lbas []uint32
	for lba := range fills {
		lbas = append(lbas, lba)
	}
	sort.Slice(lbas, func(i, j int) bool { return lbas[i] < lbas[j] })
	for _, lba := range lbas {
		g.readCheck(a1, lba, fills[lba])
	}
}

// TestExplicitDisconnectKeepsRAMDisk: the explicit disconnect closes the
// vhost (the old SIGTERM) but the devices are still configured, so a RAM
// disk's contents stay for the frontend's return; removing the device, the
// vhost or the domain deletes them.
func TestRAMDiskStateLifetime(t *testing.T) {
	r := newRig(t)
	r.start()
	connectGuest(t, r, 5)
	ramFile := filepath.Join(r.state, "5", "0", "dev-1.lun")
	if _, err := os.Stat(ramFile); err != nil {
		t.Fatalf("no RAM disk file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(r.state, "5", "0", journalFile)); err != nil {
		t.Fatalf("no journal while connected: %v", err)
	}
	r.b.SetStopMode(StopDisconnect)
	r.stop()
	if _, err := os.Stat(ramFile); err != nil {
		t.Errorf("the explicit disconnect deleted the RAM disk of a configured device: %v", err)
	}
	if _, err := os.Stat(filepath.Join(r.state, "5", "0", journalFile)); !os.IsNotExist(err) {
		t.Errorf("journal of a disconnected ring still there: %v", err)
	}

	r2 := newRig(t)
	r2.start()
	connectGuest(t, r2, 6)
	connectGuest(t, r2, 7)
	r2.hotRemove(6, 0, 1)
	r2.waitValue(r2.bePath(6, 0)+"/vscsi-devs/dev-1/state", "6")
	r2.waitValue(r2.bePath(6, 0)+"/state", "4")
	r2.waitValue(fePath(6, 0)+"/state", "4")
	eventually(t, "hot-removed RAM disk's file deleted", func() bool {
		_, err := os.Stat(filepath.Join(r2.state, "6", "0", "dev-1.lun"))
		return os.IsNotExist(err)
	})
	// libxl-style removal of the vhost.
	be := r2.bePath(6, 0)
	must(t, xenif.Transact(r2.ts, 5, func(tx xenif.Tx) error {
		if err := r2.ts.Write(tx, be+"/online", "0"); err != nil {
			return err
		}
		return r2.ts.Write(tx, be+"/state", "5")
	}))
	r2.waitValue(be+"/state", "6")
	eventually(t, "removed vhost's state deleted", func() bool {
		_, err := os.Stat(filepath.Join(r2.state, "6", "0"))
		return os.IsNotExist(err)
	})
	// The domain dies.
	r2.destroyDomain(7)
	eventually(t, "dead domain's state deleted", func() bool {
		_, err := os.Stat(filepath.Join(r2.state, "7"))
		return os.IsNotExist(err)
	})
}

// TestStaleStateSwept: state of a domain that died while no backend ran is
// removed at start-up; state under a reused domid whose domain identity
// differs is never shown to the new domain.
func TestStaleStateSwept(t *testing.T) {
	r := newRig(t)
	dead := filepath.Join(r.state, "9", "0")
	must(t, os.MkdirAll(dead, 0o700))
	must(t, os.WriteFile(filepath.Join(dead, "dev-0.lun"), []byte("old"), 0o600))
	// Domain 5 now is another domain than the one the state was kept for.
	g := r.newGuest(5)
	must(t, r.ts.Write(xenif.NoTx, "/local/domain/5/vm", "/vm/new-uuid"))
	reused := filepath.Join(r.state, "5")
	must(t, os.MkdirAll(filepath.Join(reused, "0"), 0o700))
	must(t, os.WriteFile(filepath.Join(reused, domainFile), []byte("vm /vm/old-uuid\n"), 0o600))
	ram, _, err := store.OpenRAMFile(filepath.Join(reused, "0", "dev-0.lun"), 1<<20,
		"ram:1M 5/0/dev-0", store.RAMOptions{})
	must(t, err)
	ram.WriteAt([]byte("secret of the old domain"), 0) //nolint:errcheck // checked below
	ram.Close()
	r.attach(5, 0, map[int]devSpec{0: {"ram:1M", "0:0:0:0"}})
	r.start()
	g.runFrontend(nil)
	r.waitValue(r.bePath(5, 0)+"/vscsi-devs/dev-0/state", "4")
	if _, err := os.Stat(filepath.Join(r.state, "9")); !os.IsNotExist(err) {
		t.Errorf("state of dead domain 9 kept: %v", err)
	}
	rsp, back := g.cmd(a0, cdb10(0x28, 0, 1), vscsiif.DMAFromDevice, nil, 512)
	if rsp.Rslt != 0 || string(back[:6]) == "secret" {
		t.Fatalf("the new domain 5 read %q (rslt %#x)", back[:24], rsp.Rslt)
	}
	tag, _ := os.ReadFile(filepath.Join(reused, domainFile))
	if string(tag) != "vm /vm/new-uuid\n" {
		t.Errorf("domain identity %q", tag)
	}
}

// TestSecondBackendWaitsForTheFirst: a backend started while another one
// still holds the state directory (a restart that does not wait for the
// old process) waits for it instead of serving the same vhosts twice.
func TestSecondBackendWaitsForTheFirst(t *testing.T) {
	r := newRig(t)
	r.start()
	g := connectGuest(t, r, 5)
	first := r.b
	firstCancel, firstDone, firstConn := r.cancel, r.runErr, r.beConn
	r.cancel = nil
	r.start() // the second one
	time.Sleep(200 * time.Millisecond)
	if n := len(r.b.Vhosts()); n != 0 {
		t.Fatalf("the second backend serves %d vhosts while the first runs", n)
	}
	g.writeRead(a1, 0, 0x31) // the first one still serves
	firstCancel()
	if err := <-firstDone; err != nil {
		t.Fatal(err)
	}
	firstConn.Close()
	if first.HandedOver() != 1 {
		t.Errorf("first backend handed over %d vhosts", first.HandedOver())
	}
	eventually(t, "second backend took over", func() bool {
		vs := r.b.Vhosts()
		return len(vs) == 1 && vs[0].Connected
	})
	g.writeRead(a1, 0, 0x32)
	g.writeRead(a0, 0, 0x33)
}

// TestFrontendNewRingWhileDown: the guest reloaded xen-scsifront while no
// backend ran (a new ring at FE=3, BE still 4): the journal shows another
// ring, so the new frontend instance gets its devices offered again
// instead of a resumed connection it knows nothing of.
func TestFrontendNewRingWhileDown(t *testing.T) {
	r := newRig(t)
	r.start()
	img := r.image("d.img", 1<<20)
	g := r.newGuest(5)
	r.attach(5, 0, map[int]devSpec{0: {"file:" + img, "0:0:0:0"}})
	be, fe := r.bePath(5, 0), fePath(5, 0)
	r.waitValue(be+"/state", "2")
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
	g.writeRead(a0, 0, 0x41)
	r.stop() // handover
	// The guest reloads its frontend meanwhile: Closing, Closed (no
	// backend answers), a new ring, Initialised.
	w(fe+"/state", "5")
	w(fe+"/state", "6")
	w(fe+"/state", "1")
	g.newRing()
	w(fe+"/ring-ref", fmt.Sprint(g.ref))
	w(fe+"/event-channel", fmt.Sprint(g.port))
	w(fe+"/state", "3")
	r.start()
	r.waitValue(be+"/vscsi-devs/dev-0/state", "3") // offered to the new instance
	r.waitValue(be+"/state", "4")
	w(fe+"/vscsi-devs/dev-0/state", "4")
	w(fe+"/state", "4")
	r.waitValue(be+"/vscsi-devs/dev-0/state", "4")
	g.writeRead(a0, 0, 0x42)
}

// TestResumeKeepsFeatureSGGrant: a restarted backend whose configuration
// now says fewer segments keeps what the connected frontend was told.
func TestResumeKeepsFeatureSGGrant(t *testing.T) {
	r := newRig(t, func(c *Config) { c.MaxSegments = 256 })
	r.start()
	connectGuest(t, r, 5)
	r.stop()
	r.cfg.MaxSegments = 128
	r.start()
	eventually(t, "reconnected", func() bool {
		vs := r.b.Vhosts()
		return len(vs) == 1 && vs[0].Connected
	})
	if v := r.read(r.bePath(5, 0) + "/feature-sg-grant"); v != "256" {
		t.Errorf("feature-sg-grant %q after the restart, want the 256 the frontend was told", v)
	}
}

var _ = context.Background
