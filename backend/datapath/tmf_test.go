package datapath

import (
	"context"
	"errors"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/govscsi/govscsi/backend/scsi"
	"github.com/govscsi/govscsi/backend/vscsiif"
	"github.com/govscsi/govscsi/libxlgo/xenif"
)

// gatedGrants holds every copy towards the guest until released, so a test
// can catch a command between its LUN completion and its response.
type gatedGrants struct {
	GrantDevice
	entered chan struct{}
	gate    chan struct{}
}

func (g *gatedGrants) GrantCopy(ops []xenif.GrantCopyOp) error {
	if len(ops) > 0 && ops[0].ToGuest {
		g.entered <- struct{}{}
		<-g.gate
	}
	return g.GrantDevice.GrantCopy(ops)
}

// TestAbortWhileCompleting: when ABORT arrives while the victim's data is
// being copied out, the victim completes normally and the ABORT's response
// follows it (never the other way round).
func TestAbortWhileCompleting(t *testing.T) {
	f := newTestFront(t)
	f.table.Set(lun0, Entry{LUN: newMemLUN(8)})
	g := &gatedGrants{GrantDevice: f.grants, entered: make(chan struct{}, 1), gate: make(chan struct{})}
	cfg := f.config(2)
	cfg.Grants = g
	c, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.stop(c) })
	_, ref := f.dataPage(0, false)
	f.send(rw(1, opRead10, vscsiif.DMAFromDevice, 0, 1, seg(ref, 0, 512)))
	<-g.entered
	f.send(vscsiif.Request{Rqid: 2, Act: vscsiif.ActSCSIAbort, RefRqid: 1})
	f.quiet(20 * time.Millisecond) // the ABORT must wait for its victim
	close(g.gate)
	got := f.recv(2)
	expectRslt(t, got[0], 1, rsltGood)
	expectRslt(t, got[1], 2, vscsiif.RsltResetSuccess)
}

// jitterLUN completes after a random short delay.
type jitterLUN struct {
	mu  sync.Mutex
	rng *rand.Rand
	mem *memLUN
}

func (l *jitterLUN) Execute(cmd *scsi.Command, res *scsi.Result) {
	l.mu.Lock()
	d := time.Duration(l.rng.Intn(300)) * time.Microsecond
	l.mu.Unlock()
	time.Sleep(d)
	l.mem.Execute(cmd, res)
}

func (l *jitterLUN) Close() error { return nil }

// TestStressOneResponsePerRqid plays a Linux-like frontend (rqid = shadow
// index 0..15, reused only after its response) against worker-mode LUNs
// with random delays, mixing good commands, hostile ones, ABORTs of random
// in-flight rqids and LUN RESETs. Any response for an rqid that is not
// outstanding, or a missing one, fails the test: that is exactly what makes
// scsifront disable the host (P16).
func TestStressOneResponsePerRqid(t *testing.T) {
	f := newTestFront(t)
	rng := rand.New(rand.NewSource(42))
	f.table.Set(lun0, Entry{LUN: &jitterLUN{rng: rand.New(rand.NewSource(1)), mem: newMemLUN(64)}})
	f.table.Set(Addr{0, 1, 0}, Entry{LUN: newMemLUN(64), Inline: true})
	c := f.start(4)
	var refs [16]uint32
	for i := range refs {
		_, refs[i] = f.dataPage(0, false)
	}
	// Hot add/remove churn on target 2 while traffic addresses it.
	churnDone := make(chan struct{})
	stopChurn := make(chan struct{})
	go func() {
		defer close(churnDone)
		hot := Addr{0, 2, 0}
		for i := 0; ; i++ {
			select {
			case <-stopChurn:
				return
			default:
			}
			if i%2 == 0 {
				f.table.Set(hot, Entry{LUN: newMemLUN(64), Inline: i%4 == 0})
			} else {
				f.table.Remove(hot)
			}
			time.Sleep(50 * time.Microsecond)
		}
	}()
	defer func() { close(stopChurn); <-churnDone }()
	outstanding := map[uint16]uint8{} // rqid -> act
	free := make([]uint16, 0, 16)
	for i := 15; i >= 0; i-- {
		free = append(free, uint16(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const total = 3000
	sent, answered := 0, 0
	for answered < total {
		var batch []vscsiif.Request
		for len(free) > 0 && sent < total && rng.Intn(4) != 0 {
			id := free[len(free)-1]
			free = free[:len(free)-1]
			var r vscsiif.Request
			switch k := rng.Intn(10); {
			case k < 6:
				r = rw(id, opRead10, vscsiif.DMAFromDevice, uint32(rng.Intn(60)), 1, seg(refs[id], 0, 512))
				r.ID = uint16(rng.Intn(3))
			case k < 7:
				r = rw(id, opRead10, uint8(rng.Intn(256)), 0, 1, seg(uint32(rng.Intn(40)), uint16(rng.Intn(5000)), 512))
				r.CmdLen = uint8(rng.Intn(20))
			case k < 9:
				r = vscsiif.Request{Rqid: id, Act: vscsiif.ActSCSIAbort, RefRqid: uint16(rng.Intn(16))}
			default:
				r = vscsiif.Request{Rqid: id, Act: vscsiif.ActSCSIReset}
			}
			outstanding[id] = r.Act
			batch = append(batch, r)
			sent++
		}
		if len(batch) > 0 {
			f.send(batch...)
		}
		if f.front.UnconsumedResponses() == 0 && !f.front.FinalCheckForResponses() {
			if len(outstanding) == 0 {
				continue
			}
			if err := f.guest.Wait(ctx, f.gport); err != nil {
				t.Fatalf("waiting with %d outstanding: %v", len(outstanding), err)
			}
			continue
		}
		for f.front.UnconsumedResponses() > 0 {
			f.front.CopyResponse(f.rspBuf)
			var r vscsiif.Response
			vscsiif.DecodeResponse(f.rspBuf, &r)
			act, ok := outstanding[r.Rqid]
			if !ok {
				t.Fatalf("response for rqid %d, which is not outstanding", r.Rqid)
			}
			if (act == vscsiif.ActSCSIAbort || act == vscsiif.ActSCSIReset) && r.Rslt != vscsiif.RsltResetSuccess && r.Rslt != vscsiif.RsltResetFailed {
				t.Fatalf("TMF rqid %d got rslt %#x", r.Rqid, r.Rslt)
			}
			delete(outstanding, r.Rqid)
			free = append(free, r.Rqid)
			answered++
		}
	}
	f.quiet(20 * time.Millisecond)
	if c.Err() != nil {
		t.Fatal(c.Err())
	}
}

// tmLUN is a slow LUN that takes part in task management: it records
// Abort calls and blocks Reset until told, and can fail it.
type tmLUN struct {
	*slowLUN
	aborted  chan uint64
	resetIn  chan struct{}
	resetOut chan error
}

func newTMLUN() *tmLUN {
	return &tmLUN{slowLUN: newSlowLUN(), aborted: make(chan uint64, 8),
		resetIn: make(chan struct{}, 8), resetOut: make(chan error)}
}

func (l *tmLUN) Abort(tag uint64) bool { l.aborted <- tag; return false }

func (l *tmLUN) Reset() error {
	l.resetIn <- struct{}{}
	return <-l.resetOut
}

var _ scsi.TaskManagement = (*tmLUN)(nil)

// TestTaskManagementLUN: ABORT tells the LUN which tag to cancel; RESET
// runs the LUN's Reset off the ring goroutine (other LUNs keep being
// served while it blocks), answers victims first and reports Reset's
// outcome: nil -> 0x2002, error -> 0x2003.
func TestTaskManagementLUN(t *testing.T) {
	f := newTestFront(t)
	lun := newTMLUN()
	f.table.Set(lun0, Entry{LUN: lun})
	f.table.Set(Addr{0, 1, 0}, Entry{LUN: newMemLUN(8), Inline: true})
	f.start(4)
	other := rw(9, opTUR, vscsiif.DMANone, 0, 0)
	other.ID = 1

	f.send(rw(1, opTUR, vscsiif.DMANone, 0, 0))
	<-lun.started
	f.send(vscsiif.Request{Rqid: 2, Act: vscsiif.ActSCSIAbort, RefRqid: 1})
	if tag := <-lun.aborted; tag != 1 {
		t.Fatalf("Abort(%d), want tag 1", tag)
	}
	f.quiet(20 * time.Millisecond) // Abort is only a hint: the LUN has not returned
	close(lun.release)
	got := f.recv(2)
	expectRslt(t, got[0], 1, vscsiif.Rslt(vscsiif.HostAbort, 0))
	expectRslt(t, got[1], 2, vscsiif.RsltResetSuccess)

	for i, resetErr := range []error{nil, errors.New("device said no")} {
		f.send(vscsiif.Request{Rqid: 3, Act: vscsiif.ActSCSIReset})
		<-lun.resetIn
		f.send(other) // the ring keeps going while Reset blocks
		expectRslt(t, f.recv(1)[0], 9, rsltGood)
		lun.resetOut <- resetErr
		want := int32(vscsiif.RsltResetSuccess)
		if resetErr != nil {
			want = vscsiif.RsltResetFailed
		}
		r := f.recv(1)[0]
		if r.Rqid != 3 || r.Rslt != want {
			t.Fatalf("reset %d: rqid %d rslt %#x, want %#x", i, r.Rqid, r.Rslt, want)
		}
	}
	f.quiet(20 * time.Millisecond)
}

// gateLUN is a RAM disk whose commands with tag 1 block until released:
// the slow write of TestAbortedWriteNeverLandsLate.
type gateLUN struct {
	mem     *memLUN
	started chan struct{}
	release chan struct{}
}

func (l *gateLUN) Execute(cmd *scsi.Command, res *scsi.Result) {
	if cmd.Tag == 1 {
		l.started <- struct{}{}
		<-l.release
	}
	l.mem.Execute(cmd, res)
}

func (l *gateLUN) Close() error { return nil }

// pollResponses collects the responses that arrive within d.
func (f *testFront) pollResponses(d time.Duration) []vscsiif.Response {
	var out []vscsiif.Response
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		for f.front.UnconsumedResponses() > 0 || f.front.FinalCheckForResponses() {
			f.front.CopyResponse(f.rspBuf)
			var r vscsiif.Response
			vscsiif.DecodeResponse(f.rspBuf, &r)
			out = append(out, r)
		}
		time.Sleep(time.Millisecond)
	}
	return out
}

// TestAbortedWriteNeverLandsLate reproduces the data corruption seen on the
// rig (ext4 on a slow host: SCSI timeout, ABORT, re-issued writeback): a
// WRITE stuck in the LUN is ABORTed; the guest, once the ABORT succeeded,
// writes newer data to the same block; then the old WRITE finally runs.
// The store must hold the newer data, i.e. the ABORT may only succeed
// once the old write can no longer land.
func TestAbortedWriteNeverLandsLate(t *testing.T) {
	f := newTestFront(t)
	lun := &gateLUN{mem: newMemLUN(8), started: make(chan struct{}, 1), release: make(chan struct{})}
	f.table.Set(lun0, Entry{LUN: lun})
	c := f.start(4)
	_, oldRef := f.dataPage(0xaa, false)
	_, newRef := f.dataPage(0xbb, false)

	f.send(rw(1, opWrite10, vscsiif.DMAToDevice, 2, 1, seg(oldRef, 0, 512)))
	<-lun.started
	f.send(vscsiif.Request{Rqid: 2, Act: vscsiif.ActSCSIAbort, RefRqid: 1})
	// The guest acts only on what it is told: it re-issues the block once
	// the ABORT succeeded.
	got := f.pollResponses(30 * time.Millisecond)
	released := false
	if len(got) < 2 {
		close(lun.release) // the LUN returns; only now may the ABORT complete
		released = true
		got = append(got, f.recv(2-len(got))...)
	}
	expectNewerWriteWins(t, f, c, lun, got, newRef, released)
}

// expectNewerWriteWins finishes an aborted-write test: got holds the
// answers to WRITE rqid 1 (block 2) and its ABORT rqid 2, which must be
// DID_ABORT and success; the guest then writes newRef's 0xbb to block 2,
// the gated LUN is let go (unless released already), and block 2 must end
// up holding the newer data.
func expectNewerWriteWins(t *testing.T, f *testFront, c *Conn, lun *gateLUN, got []vscsiif.Response, newRef uint32, released bool) {
	t.Helper()
	expectRslt(t, got[0], 1, vscsiif.Rslt(vscsiif.HostAbort, 0))
	expectRslt(t, got[1], 2, vscsiif.RsltResetSuccess)
	f.send(rw(3, opWrite10, vscsiif.DMAToDevice, 2, 1, seg(newRef, 0, 512)))
	expectRslt(t, f.recv(1)[0], 3, rsltGood)
	if !released {
		close(lun.release)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.WaitIdle(ctx, lun0); err != nil {
		t.Fatal(err)
	}
	lun.mem.mu.Lock()
	defer lun.mem.mu.Unlock()
	for i, b := range lun.mem.data[2*blockSize : 3*blockSize] {
		if b != 0xbb {
			t.Fatalf("block 2 byte %d = %#x after the aborted write, want the newer 0xbb", i, b)
		}
	}
}

// TestResetWaitsForRunningWrite: the same hazard through LUN RESET.
func TestResetWaitsForRunningWrite(t *testing.T) {
	f := newTestFront(t)
	lun := &gateLUN{mem: newMemLUN(8), started: make(chan struct{}, 1), release: make(chan struct{})}
	f.table.Set(lun0, Entry{LUN: lun})
	f.start(4)
	_, oldRef := f.dataPage(0xaa, false)
	f.send(rw(1, opWrite10, vscsiif.DMAToDevice, 2, 1, seg(oldRef, 0, 512)))
	<-lun.started
	f.send(vscsiif.Request{Rqid: 2, Act: vscsiif.ActSCSIReset})
	if got := f.pollResponses(20 * time.Millisecond); len(got) != 0 {
		t.Fatalf("RESET answered %d responses while the write is still in the LUN", len(got))
	}
	close(lun.release)
	got := f.recv(2)
	expectRslt(t, got[0], 1, vscsiif.Rslt(vscsiif.HostReset, 0))
	expectRslt(t, got[1], 2, vscsiif.RsltResetSuccess)
}

// TestAbortQueuedCommand: with one worker busy, a queued command that is
// ABORTed is answered at once and never reaches the LUN.
func TestAbortQueuedCommand(t *testing.T) {
	f := newTestFront(t)
	slow := newSlowLUN()
	f.table.Set(lun0, Entry{LUN: slow})
	f.start(1)
	f.send(rw(1, opTUR, vscsiif.DMANone, 0, 0))
	if tag := <-slow.started; tag != 1 {
		t.Fatalf("tag %d", tag)
	}
	f.send(rw(2, opTUR, vscsiif.DMANone, 0, 0))
	f.send(vscsiif.Request{Rqid: 3, Act: vscsiif.ActSCSIAbort, RefRqid: 2})
	got := f.recv(2)
	expectRslt(t, got[0], 2, vscsiif.Rslt(vscsiif.HostAbort, 0))
	expectRslt(t, got[1], 3, vscsiif.RsltResetSuccess)
	close(slow.release)
	expectRslt(t, f.recv(1)[0], 1, rsltGood)
	f.quiet(20 * time.Millisecond)
	select {
	case tag := <-slow.started:
		t.Fatalf("aborted command %d reached the LUN", tag)
	default:
	}
}

// TestSlotStarvation runs traffic and a slot-starving abort scenario
// through both ways the loop waits: the netpoller (WaitPending) and the
// poll(2)+eventfd fallback used when the event channel cannot park in Go.
func TestSlotStarvation(t *testing.T) {
	for _, pollOnly := range []bool{false, true} {
		t.Run(map[bool]string{false: "netpoller", true: "poll"}[pollOnly], func(t *testing.T) {
			testSlotStarvation(t, pollOnly)
		})
	}
}

func testSlotStarvation(t *testing.T, pollOnly bool) {
	f := newTestFront(t)
	f.pollOnly = pollOnly
	slow := newSlowLUN()
	f.table.Set(lun0, Entry{LUN: newMemLUN(64), Inline: true})
	f.table.Set(Addr{0, 1, 0}, Entry{LUN: slow})
	c := f.start(1) // one worker: the commands queued behind it stay queued
	if c.netpoll == pollOnly || (c.wake.fd >= 0) != pollOnly {
		t.Fatalf("pollOnly %v: loop uses netpoll %v, eventfd %d", pollOnly, c.netpoll, c.wake.fd)
	}
	_, ref := f.dataPage(0, false)
	for i := 0; i < 50; i++ {
		f.send(rw(uint16(i%16), opRead10, vscsiif.DMAFromDevice, 0, 1, seg(ref, 0, 512)))
		expectRslt(t, f.recv(1)[0], uint16(i%16), rsltGood)
	}
	// Hold the only worker with a stuck command, then fill the other slots
	// (2 x ring size) with queued commands, 30 of them already answered by
	// ABORT (each ABORT needs a slot for a moment too): they keep their
	// slots until the worker drops them, so the loop starves; releasing
	// the stuck one must bring the loop back through the waker.
	last := rw(50, opTUR, vscsiif.DMANone, 0, 0)
	last.ID = 1
	f.send(last)
	<-slow.started
	for i := 0; i < 30; i++ {
		r := rw(uint16(i%16), opTUR, vscsiif.DMANone, 0, 0)
		r.ID = 1
		f.send(r)
		f.send(vscsiif.Request{Rqid: 100, Act: vscsiif.ActSCSIAbort, RefRqid: uint16(i % 16)})
		got := f.recv(2)
		expectRslt(t, got[0], uint16(i%16), vscsiif.Rslt(vscsiif.HostAbort, 0))
		expectRslt(t, got[1], 100, vscsiif.RsltResetSuccess)
	}
	queued := rw(40, opTUR, vscsiif.DMANone, 0, 0)
	queued.ID = 1
	f.send(queued)                              // the 32nd slot
	f.send(rw(7, opTUR, vscsiif.DMANone, 0, 0)) // no free slot until the stuck one returns
	f.quiet(20 * time.Millisecond)
	close(slow.release)
	seen := map[uint16]int32{}
	for _, r := range f.recv(3) {
		seen[r.Rqid] = r.Rslt
	}
	if len(seen) != 3 || seen[50] != rsltGood || seen[40] != rsltGood || seen[7] != rsltGood {
		t.Fatalf("after release: %v", seen)
	}
	if tag := <-slow.started; tag != 40 {
		t.Fatalf("aborted queued command %d reached the LUN", tag)
	}
	if c.Err() != nil {
		t.Fatal(c.Err())
	}
}

// TestHungLUNDoesNotBlockOthers: with the default pool (a worker per slot)
// commands to a healthy worker-mode LUN keep completing while another LUN
// holds many workers hostage.
func TestHungLUNDoesNotBlockOthers(t *testing.T) {
	f := newTestFront(t)
	hung := newSlowLUN()
	f.table.Set(lun0, Entry{LUN: hung})
	f.table.Set(Addr{0, 1, 0}, Entry{LUN: newMemLUN(8)})
	f.start(0)
	for i := 0; i < 15; i++ { // 15 stuck commands, the 16th ring slot stays usable
		f.send(rw(uint16(i), opTUR, vscsiif.DMANone, 0, 0))
		<-hung.started
	}
	for i := 0; i < 20; i++ {
		r := rw(15, opTUR, vscsiif.DMANone, 0, 0)
		r.ID = 1
		f.send(r)
		expectRslt(t, f.recv(1)[0], 15, rsltGood)
	}
	close(hung.release)
	if got := len(f.recv(15)); got != 15 {
		t.Fatalf("%d responses from the released LUN", got)
	}
}

// TestStopWithPendingAbort: teardown while an ABORT waits for a victim stuck
// in the LUN answers both (victim first) within the deadline instead of
// waiting for the LUN.
func TestStopWithPendingAbort(t *testing.T) {
	f := newTestFront(t)
	slow := newSlowLUN()
	f.table.Set(lun0, Entry{LUN: slow})
	c := f.start(2)
	f.send(rw(1, opTUR, vscsiif.DMANone, 0, 0))
	<-slow.started
	f.send(vscsiif.Request{Rqid: 2, Act: vscsiif.ActSCSIAbort, RefRqid: 1})
	f.quiet(20 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c.Stop(ctx); err == nil {
		t.Fatal("Stop did not report the hung LUN")
	}
	got := f.recv(2)
	expectRslt(t, got[0], 1, vscsiif.Rslt(vscsiif.HostAbort, 0))
	expectRslt(t, got[1], 2, vscsiif.RsltResetSuccess)
	close(slow.release) // the late completion must not touch the unmapped ring
	time.Sleep(10 * time.Millisecond)
}
