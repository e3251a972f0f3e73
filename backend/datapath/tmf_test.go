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
	got := f.recv(2)
	expectRslt(t, got[0], 1, vscsiif.Rslt(vscsiif.HostAbort, 0))
	expectRslt(t, got[1], 2, vscsiif.RsltResetSuccess)
	if tag := <-lun.aborted; tag != 1 {
		t.Fatalf("Abort(%d), want tag 1", tag)
	}

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
	close(lun.release)
	f.quiet(20 * time.Millisecond)
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
	c := f.start(40) // more workers than slots: every stuck command runs
	_, ref := f.dataPage(0, false)
	for i := 0; i < 50; i++ {
		f.send(rw(uint16(i%16), opRead10, vscsiif.DMAFromDevice, 0, 1, seg(ref, 0, 512)))
		expectRslt(t, f.recv(1)[0], uint16(i%16), rsltGood)
	}
	// Fill every slot (2 x ring size) with commands stuck in the LUN, 31 of
	// them already answered by ABORT, so the loop starves; releasing them
	// must bring the loop back through the waker.
	for i := 0; i < 31; i++ {
		r := rw(uint16(i%16), opTUR, vscsiif.DMANone, 0, 0)
		r.ID = 1
		f.send(r)
		<-slow.started
		f.send(vscsiif.Request{Rqid: 100, Act: vscsiif.ActSCSIAbort, RefRqid: uint16(i % 16)})
		got := f.recv(2)
		expectRslt(t, got[0], uint16(i%16), vscsiif.Rslt(vscsiif.HostAbort, 0))
		expectRslt(t, got[1], 100, vscsiif.RsltResetSuccess)
	}
	last := rw(50, opTUR, vscsiif.DMANone, 0, 0)
	last.ID = 1
	f.send(last)
	<-slow.started
	f.send(rw(7, opTUR, vscsiif.DMANone, 0, 0)) // no free slot until a stuck one returns
	f.quiet(20 * time.Millisecond)
	close(slow.release)
	seen := map[uint16]int32{}
	for _, r := range f.recv(2) {
		seen[r.Rqid] = r.Rslt
	}
	if len(seen) != 2 || seen[50] != rsltGood || seen[7] != rsltGood {
		t.Fatalf("after release: %v", seen)
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
