package ring

import (
	"encoding/binary"
	"errors"
	"math/rand"
	"runtime"
	"sync"
	"testing"
)

const slot = 252

func newPair(t testing.TB) ([]byte, *Front, *Back) {
	page := make([]byte, 4096)
	f, err := NewFront(page, slot)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewBack(page, slot)
	if err != nil {
		t.Fatal(err)
	}
	return page, f, b
}

func TestSlots(t *testing.T) {
	if got := Slots(4096, 252); got != 16 {
		t.Fatalf("vscsiif ring slots = %d, want 16", got)
	}
	if got := Slots(4096, 112); got != 32 { // blkif: (4096-64)/112 = 36 -> 32
		t.Fatalf("blkif-sized slots = %d, want 32", got)
	}
	if got := Slots(64, 252); got != 0 {
		t.Fatalf("no room: %d", got)
	}
	if _, err := NewBack(make([]byte, 100), slot); err == nil {
		t.Fatal("NewBack accepted a page without room")
	}
}

func TestRoundTripAndNotify(t *testing.T) {
	_, f, b := newPair(t)
	// A fresh ring: req_event = 1, so the first request notifies.
	binary.LittleEndian.PutUint32(f.RequestSlot(), 42)
	f.CommitRequest()
	if !f.PushRequests() {
		t.Fatal("first request did not ask for a notification")
	}
	n, err := b.Unconsumed()
	if err != nil || n != 1 {
		t.Fatalf("Unconsumed = %d, %v", n, err)
	}
	buf := make([]byte, slot)
	b.CopyRequest(buf)
	if binary.LittleEndian.Uint32(buf) != 42 || b.InFlight() != 1 {
		t.Fatal("wrong request or in-flight count")
	}
	// The backend has not re-armed req_event yet: a second request is
	// published without an event (hold-off).
	f.CommitRequest()
	if f.PushRequests() {
		t.Fatal("request notified although req_event was not re-armed")
	}
	b.CopyRequest(buf)
	more, err := b.FinalCheckForRequests()
	if more || err != nil {
		t.Fatalf("final check: %v %v", more, err)
	}
	// Re-armed: the next request notifies again.
	f.CommitRequest()
	if !f.PushRequests() {
		t.Fatal("request after final check did not notify")
	}
	// Responses: rsp_event = 1 initially, so the first push notifies...
	binary.LittleEndian.PutUint32(b.ResponseSlot(), 7)
	b.CommitResponse()
	if !b.PushResponses() {
		t.Fatal("first response did not notify")
	}
	// ...the second does not until the frontend re-arms.
	b.CommitResponse()
	if b.PushResponses() {
		t.Fatal("second response notified without re-arm")
	}
	if b.PushResponses() {
		t.Fatal("empty push notified")
	}
	if f.UnconsumedResponses() != 2 {
		t.Fatal("responses not visible")
	}
	f.CopyResponse(buf)
	if binary.LittleEndian.Uint32(buf) != 7 {
		t.Fatal("wrong response")
	}
	f.CopyResponse(buf)
	if f.FinalCheckForResponses() {
		t.Fatal("phantom response")
	}
	b.CopyRequest(buf)
	b.CommitResponse()
	if !b.PushResponses() {
		t.Fatal("response after frontend re-arm did not notify")
	}
}

func TestHostileIndices(t *testing.T) {
	for _, tc := range []struct {
		name string
		prod func(b *Back) uint32
	}{
		{"jump17", func(b *Back) uint32 { return 17 }},
		{"jumpMax", func(b *Back) uint32 { return 0x80000000 }},
		{"backwards", func(b *Back) uint32 { return 0xffffffff }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, f, b := newPair(t)
			f.SetReqProd(tc.prod(b))
			if _, err := b.Unconsumed(); !errors.Is(err, ErrOverflow) {
				t.Fatalf("got %v, want ErrOverflow", err)
			}
			if !b.Stopped() {
				t.Fatal("ring not stopped")
			}
			f.SetReqProd(0)
			if _, err := b.Unconsumed(); !errors.Is(err, ErrStopped) {
				t.Fatalf("stopped ring answered %v", err)
			}
			if b.PushResponses() {
				t.Fatal("stopped ring notifies")
			}
		})
	}
	// Moving back behind consumed requests is also caught.
	_, f, b := newPair(t)
	f.SetReqProd(4)
	buf := make([]byte, slot)
	for i := 0; i < 4; i++ {
		b.CopyRequest(buf)
	}
	f.SetReqProd(2)
	if _, err := b.Unconsumed(); !errors.Is(err, ErrOverflow) {
		t.Fatalf("req_prod backwards: %v", err)
	}
	// Exactly Size outstanding is legal.
	_, f, b = newPair(t)
	f.SetReqProd(16)
	if n, err := b.Unconsumed(); n != 16 || err != nil {
		t.Fatalf("full ring: %d %v", n, err)
	}
}

// TestConcurrentFrontBack runs a frontend and a backend goroutine over one
// page for many wraps of the 32-bit-free-running indices' low bits, checking
// every request is answered once and in order. Run under -race: the index
// accesses are atomic and the slot copies are ordered by them.
func TestConcurrentFrontBack(t *testing.T) {
	page := make([]byte, 4096)
	// Start near the 2^32 wrap to exercise it.
	f, _ := NewFront(page, slot)
	start := uint32(0xffffff00)
	f.reqProdPvt, f.rspCons = start, start
	store32(page, OffReqProd, start)
	store32(page, OffRspProd, start)
	b, _ := NewBack(page, slot)
	const total = 50000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // backend: echo the sequence number
		defer wg.Done()
		buf := make([]byte, slot)
		for done := 0; done < total; {
			n, err := b.Unconsumed()
			if err != nil {
				t.Error(err)
				return
			}
			if n == 0 {
				runtime.Gosched() // CPUs are shared: don't spin the frontend out
				continue
			}
			for i := 0; i < n; i++ {
				b.CopyRequest(buf)
				copy(b.ResponseSlot(), buf[:8])
				b.CommitResponse()
				done++
			}
			b.PushResponses()
		}
	}()
	rng := rand.New(rand.NewSource(1))
	buf := make([]byte, slot)
	var sent, got uint64
	for got < total {
		for k := rng.Intn(f.Free() + 1); k > 0 && sent < total; k-- {
			binary.LittleEndian.PutUint64(f.RequestSlot(), sent)
			f.CommitRequest()
			sent++
		}
		f.PushRequests()
		if f.UnconsumedResponses() == 0 {
			runtime.Gosched()
		}
		for f.UnconsumedResponses() > 0 {
			f.CopyResponse(buf)
			if v := binary.LittleEndian.Uint64(buf); v != got {
				t.Fatalf("response %d carries %d", got, v)
			}
			got++
		}
	}
	wg.Wait()
}

// TestResumeAt: a restarted backend consumes from where its predecessor's
// private copies end, never before rsp_prod or beyond req_prod.
func TestResumeAt(t *testing.T) {
	page, f, b := newPair(t)
	buf := make([]byte, slot)
	for i := 0; i < 5; i++ {
		binary.LittleEndian.PutUint32(f.RequestSlot(), uint32(100+i))
		f.CommitRequest()
	}
	f.PushRequests()
	// The old backend consumed 3, answered and published 1.
	for i := 0; i < 3; i++ {
		b.CopyRequest(buf)
	}
	b.CommitResponse()
	b.PushResponses()

	nb, err := NewBack(page, slot)
	if err != nil {
		t.Fatal(err)
	}
	if nb.ReqCons() != 1 || nb.RspProd() != 1 || nb.ReqProd() != 5 {
		t.Fatalf("attached at req_cons %d rsp_prod %d req_prod %d, want 1 1 5", nb.ReqCons(), nb.RspProd(), nb.ReqProd())
	}
	for _, bad := range []uint32{0, 6, 1 << 31, ^uint32(0)} {
		if err := nb.ResumeAt(bad); err == nil {
			t.Errorf("ResumeAt(%d) accepted outside rsp_prod 1 .. req_prod 5", bad)
		}
	}
	if nb.ReqCons() != 1 {
		t.Fatalf("a refused ResumeAt moved req_cons to %d", nb.ReqCons())
	}
	if err := nb.ResumeAt(3); err != nil {
		t.Fatal(err)
	}
	if n, err := nb.Unconsumed(); n != 2 || err != nil {
		t.Fatalf("Unconsumed after ResumeAt(3) = %d, %v; want 2", n, err)
	}
	nb.CopyRequest(buf)
	if v := binary.LittleEndian.Uint32(buf); v != 103 {
		t.Fatalf("first request after resume is %d, want 103", v)
	}
	if nb.InFlight() != 3 {
		t.Fatalf("in flight %d, want 3 (2 of the old backend's, 1 new)", nb.InFlight())
	}
	// A bogus req_prod (hostile frontend) refuses any resume.
	f.SetReqProd(1000)
	if err := nb.ResumeAt(4); err == nil {
		t.Error("ResumeAt accepted with req_prod far beyond the ring")
	}
}
