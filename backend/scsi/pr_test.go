package scsi

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/govscsi/govscsi/backend/store"
)

// blockingWrites blocks the first WriteAt at off until release is closed.
type blockingWrites struct {
	store.Store
	off     int64
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (s *blockingWrites) WriteAt(p []byte, off int64) (int, error) {
	if off == s.off {
		s.once.Do(func() { close(s.entered); <-s.release })
	}
	return s.Store.WriteAt(p, off)
}

func (s *blockingWrites) Close() error { return nil }

func prOut(t *testing.T, d LUN, sa, typ byte, resKey, saKey uint64) Result {
	t.Helper()
	return run(t, d, DirToDevice, prOutParams(resKey, saKey, 0), prOutCDB(sa, typ, 24)...)
}

// TestPreemptAndAbortFences: guest A holds a Write Exclusive reservation
// and has a write inside the store when guest B preempts it. PREEMPT AND
// ABORT completes only after that write finished, and A's next write gets
// RESERVATION CONFLICT: no write of A lands after B was told A is fenced.
func TestPreemptAndAbortFences(t *testing.T) {
	r, _ := store.NewRAM(1<<20, store.RAMOptions{})
	bw := &blockingWrites{Store: r, off: 9 * 512, entered: make(chan struct{}), release: make(chan struct{})}
	unit := newUnit(t)
	a := NewDisk(bw, DiskOptions{Unit: unit, Initiator: "A", WriteCache: true})
	b := NewDisk(keepOpen{r}, DiskOptions{Unit: unit, Initiator: "B", WriteCache: true})
	wantGood(t, prOut(t, a, proRegister, 0, 0, 0xA))
	wantGood(t, prOut(t, b, proRegister, 0, 0, 0xB))
	wantGood(t, prOut(t, a, proReserve, prWriteExclusive, 0xA, 0))
	write := make(chan Result, 1)
	go func() {
		var res Result
		a.Execute(&Command{CDB: cdb10(OpWrite10, 0, 9, 1), Dir: DirToDevice, Data: bytes.Repeat([]byte{0xA}, 512)}, &res)
		write <- res
	}()
	<-bw.entered
	fenced := make(chan Result, 1)
	go func() {
		var res Result
		b.Execute(&Command{CDB: prOutCDB(proPreemptAbort, prWriteExclusive, 24), Dir: DirToDevice, Data: prOutParams(0xB, 0xA, 0)}, &res)
		fenced <- res
	}()
	select {
	case <-fenced:
		t.Fatal("PREEMPT AND ABORT completed while a write of the preempted nexus was in flight")
	case <-time.After(50 * time.Millisecond):
	}
	close(bw.release)
	if res := <-write; res.Status != StatusGood {
		t.Fatalf("the in-flight write: %#x", res.Status)
	}
	if res := <-fenced; res.Status != StatusGood {
		t.Fatalf("PREEMPT AND ABORT: %#x % x", res.Status, res.Sense)
	}
	// A: REGISTRATIONS PREEMPTED first, then its writes conflict; reads
	// pass Write Exclusive.
	wantSense(t, run(t, a, DirToDevice, make([]byte, 512), cdb10(OpWrite10, 0, 9, 1)...), KeyUnitAttention, 0x2A, 0x05)
	if res := run(t, a, DirToDevice, make([]byte, 512), cdb10(OpWrite10, 0, 9, 1)...); res.Status != StatusReservationConflict {
		t.Fatalf("write of the fenced nexus: %#x", res.Status)
	}
	wantGood(t, run(t, a, DirFromDevice, make([]byte, 512), cdb10(OpRead10, 0, 9, 1)...))
	wantGood(t, run(t, b, DirToDevice, make([]byte, 512), cdb10(OpWrite10, 0, 9, 1)...))
	st := unit.State()
	if len(st.Registrations) != 1 || st.Registrations[0].Initiator != "B" || st.Reservation == nil || st.Reservation.Holder != "B" {
		t.Fatalf("state after the preemption: %+v", st)
	}
}

type failingPR struct{ memPR }

func (f *failingPR) Save(PRState) error { return errors.New("disk full") }

// TestSaveFailureChangesNothing: a state that cannot be kept fails the
// command (HARDWARE ERROR / INTERNAL TARGET FAILURE) and is not made.
func TestSaveFailureChangesNothing(t *testing.T) {
	r, _ := store.NewRAM(1<<20, store.RAMOptions{})
	unit, err := NewLogicalUnit(LogicalUnitOptions{PR: &failingPR{}})
	if err != nil {
		t.Fatal(err)
	}
	d := NewDisk(r, DiskOptions{Unit: unit})
	wantSense(t, prOut(t, d, proRegister, 0, 0, 0xA), KeyHardwareError, 0x44, 0)
	if st := unit.State(); len(st.Registrations) != 0 || st.Generation != 0 {
		t.Fatalf("state changed: %+v", st)
	}
}

// TestSavedStateIsChecked: a unit does not start from a state that breaks
// the rules (the operator must look at it).
func TestSavedStateIsChecked(t *testing.T) {
	for _, st := range []PRState{
		{Registrations: []PRRegistration{{Initiator: "A", Key: 0}}},
		{Registrations: []PRRegistration{{Initiator: "A", Key: 1}, {Initiator: "A", Key: 2}}},
		{Registrations: []PRRegistration{{Initiator: "A", Key: 1}}, Reservation: &PRReservation{Holder: "B", Type: 1}},
		{Registrations: []PRRegistration{{Initiator: "A", Key: 1}}, Reservation: &PRReservation{Holder: "A", Type: 2}},
		{Registrations: []PRRegistration{{Initiator: "A", Key: 1}}, Reservation: &PRReservation{Holder: "A", Type: 7}},
		{Reservation: &PRReservation{Type: 8}},
	} {
		if _, err := NewLogicalUnit(LogicalUnitOptions{PR: &memPR{st: st, ok: true}}); err == nil {
			t.Errorf("state %+v accepted", st)
		}
	}
	good := PRState{Generation: 7, APTPL: true, Registrations: []PRRegistration{{Initiator: "A", Key: 1}, {Initiator: "B", Key: 2}},
		Reservation: &PRReservation{Holder: "B", Type: prExclusiveAccess}}
	unit, err := NewLogicalUnit(LogicalUnitOptions{PR: &memPR{st: good, ok: true}})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := store.NewRAM(1<<20, store.RAMOptions{})
	a := NewDisk(r, DiskOptions{Unit: unit, Initiator: "A"})
	// the restored Exclusive Access reservation of B holds against A
	if res := run(t, a, DirFromDevice, make([]byte, 512), cdb10(OpRead10, 0, 0, 1)...); res.Status != StatusReservationConflict {
		t.Fatalf("read under a restored EA reservation: %#x", res.Status)
	}
}

// TestSPC2ReservationEndsWithTheNexus: RESERVE(6) holds against the other
// nexus until its holder closes (I_T nexus loss) or a LUN reset.
func TestSPC2ReservationEndsWithTheNexus(t *testing.T) {
	r, _ := store.NewRAM(1<<20, store.RAMOptions{})
	unit := newUnit(t)
	a := NewDisk(keepOpen{r}, DiskOptions{Unit: unit, Initiator: "A"})
	b := NewDisk(keepOpen{r}, DiskOptions{Unit: unit, Initiator: "B"})
	wantGood(t, run(t, a, DirNone, nil, OpReserve6, 0, 0, 0, 0, 0))
	if res := run(t, b, DirFromDevice, make([]byte, 512), cdb10(OpRead10, 0, 0, 1)...); res.Status != StatusReservationConflict {
		t.Fatalf("read under another's SPC-2 reservation: %#x", res.Status)
	}
	wantGood(t, run(t, b, DirFromDevice, make([]byte, 96), inquiry(false, 0, 96)...))
	a.Close()
	wantGood(t, run(t, b, DirFromDevice, make([]byte, 512), cdb10(OpRead10, 0, 0, 1)...))
	wantGood(t, run(t, b, DirNone, nil, OpReserve6, 0, 0, 0, 0, 0))
	c := NewDisk(keepOpen{r}, DiskOptions{Unit: unit, Initiator: "C"})
	if res := run(t, c, DirNone, nil, OpTestUnitReady, 0, 0, 0, 0, 0); res.Status != StatusReservationConflict {
		t.Fatalf("TUR under another's SPC-2 reservation: %#x", res.Status)
	}
	// A LUN reset (from any nexus) releases it, and every nexus hears of it.
	if err := c.(TaskManagement).Reset(); err != nil {
		t.Fatal(err)
	}
	for _, d := range []LUN{b, c} {
		wantSense(t, run(t, d, DirNone, nil, OpTestUnitReady, 0, 0, 0, 0, 0), KeyUnitAttention, 0x29, 0x03)
	}
	wantGood(t, run(t, c, DirNone, nil, OpTestUnitReady, 0, 0, 0, 0, 0))
}
