// Package ring is the backend end of a Xen shared I/O ring (xen/io/ring.h)
// laid over one mapped page, written over a plain []byte so it can be tested
// without grant mapping (the gVisor sharedmem/pipe approach).
//
// The page is shared with a guest that may be hostile. The only values read
// from it are the frontend's indices (req_prod, rsp_event) and whole request
// slots, which the caller copies out once and validates afterwards. An index
// that could not come from a correct frontend stops the ring for good
// (ErrOverflow): the caller must then keep the event channel masked and
// report a fatal error (pitfall P18).
//
// Memory ordering: the four shared indices are accessed only with
// sync/atomic (ring_unsafe.go). Go's atomics are sequentially consistent and
// the compiler never moves ordinary loads or stores across them; on amd64 a
// load is a plain MOV (acquire under TSO) and a store is XCHG (a full fence),
// on arm64 LDAR/STLR. That is at least as strong as each barrier ring.h asks
// for: the rmb after reading req_prod (acquire load), the wmb before
// publishing rsp_prod (release store) and the mb between publishing an index
// and reading the peer's event index (the store is a full fence on amd64 and
// STLR+LDAR are not reordered on arm64).
//
// A Back is not safe for concurrent use; the connection serialises request
// consumption and response production itself.
package ring

import (
	"errors"
	"fmt"
)

// Layout of the shared ring header (struct <name>_sring).
const (
	OffReqProd  = 0
	OffReqEvent = 4
	OffRspProd  = 8
	OffRspEvent = 12
	// OffRing is where the slot array starts: after the indices, the pvt
	// union and __pad (64 bytes in total).
	OffRing = 64
)

// ErrOverflow means the frontend published more requests than the ring can
// hold: req_prod ran more than Size ahead of the responses. A correct
// frontend never does this, so the ring is stopped.
var ErrOverflow = errors.New("ring: frontend published more requests than ring slots (bogus req_prod)")

// ErrStopped is returned by every call after the ring has been stopped.
var ErrStopped = errors.New("ring: stopped after a protocol violation")

// Slots computes the number of slots of slotSize bytes in a ring page of
// pageSize bytes exactly like __RING_SIZE: the largest power of two that
// fits after the 64-byte header.
func Slots(pageSize, slotSize int) int {
	if slotSize <= 0 || pageSize <= OffRing {
		return 0
	}
	n := (pageSize - OffRing) / slotSize
	p := 1
	for p*2 <= n {
		p *= 2
	}
	if n == 0 {
		return 0
	}
	return p
}

// Back is the backend's view of a shared ring.
type Back struct {
	page     []byte
	slotSize int
	size     uint32 // slots, a power of two
	mask     uint32

	reqCons    uint32 // next request to consume (private)
	rspProdPvt uint32 // next response slot (private until pushed)
	stopped    bool
}

// NewBack attaches to an initialised shared ring in page (the frontend set it
// up; the backend never writes the initial indices). The private indices
// start from the current rsp_prod, as Linux's BACK_RING_ATTACH does, so a
// reconnect after a backend restart picks up where the frontend is.
func NewBack(page []byte, slotSize int) (*Back, error) {
	n := Slots(len(page), slotSize)
	if n == 0 {
		return nil, fmt.Errorf("ring: page of %d bytes has no room for %d-byte slots", len(page), slotSize)
	}
	if err := checkAlign(page); err != nil {
		return nil, err
	}
	b := &Back{page: page, slotSize: slotSize, size: uint32(n), mask: uint32(n - 1)}
	b.rspProdPvt = b.load(OffRspProd)
	b.reqCons = b.rspProdPvt
	return b, nil
}

// Size is the number of slots.
func (b *Back) Size() int { return int(b.size) }

// ReqProd reads the frontend's req_prod (guest-written: only a hint until
// Unconsumed has checked it).
func (b *Back) ReqProd() uint32 { return b.load(OffReqProd) }

// RspProd reads the published rsp_prod. The page is shared, so a hostile
// frontend can have rewritten it; callers validate what they derive from it.
func (b *Back) RspProd() uint32 { return b.load(OffRspProd) }

// ReqCons is the next request to consume.
func (b *Back) ReqCons() uint32 { return b.reqCons }

// ResumeAt makes a freshly attached ring consume from reqCons instead of
// rsp_prod: a backend that restarted while requests it had consumed were
// still unanswered (their private copies kept elsewhere) must not read their
// slots again, since the responses it wrote but did not publish may have
// overwritten them. reqCons must lie in [rsp_prod, req_prod] with req_prod
// at most Size ahead of rsp_prod; otherwise nothing changes and the error
// says why. Responses still start at rsp_prod.
func (b *Back) ResumeAt(reqCons uint32) error {
	if b.stopped {
		return ErrStopped
	}
	prod := b.load(OffReqProd)
	if prod-b.rspProdPvt > b.size {
		return fmt.Errorf("ring: cannot resume: req_prod %d is more than %d slots ahead of rsp_prod %d", prod, b.size, b.rspProdPvt)
	}
	if reqCons-b.rspProdPvt > prod-b.rspProdPvt {
		return fmt.Errorf("ring: cannot resume at req_cons %d: outside rsp_prod %d .. req_prod %d", reqCons, b.rspProdPvt, prod)
	}
	b.reqCons = reqCons
	return nil
}

// Stopped reports whether a protocol violation stopped the ring.
func (b *Back) Stopped() bool { return b.stopped }

// Unconsumed returns how many requests the frontend has published that were
// not consumed yet (RING_HAS_UNCONSUMED_REQUESTS), checking req_prod for
// sanity first. It is capped by the free response space, so the backend
// never runs more than Size requests ahead of its responses
// (RING_REQUEST_CONS_OVERFLOW).
func (b *Back) Unconsumed() (int, error) {
	if b.stopped {
		return 0, ErrStopped
	}
	prod := b.load(OffReqProd) // acquire: slot contents read after this are at least this new
	if prod-b.rspProdPvt > b.size {
		b.stopped = true
		return 0, fmt.Errorf("%w: req_prod %d, rsp_prod %d, %d slots", ErrOverflow, prod, b.rspProdPvt, b.size)
	}
	if prod-b.reqCons > prod-b.rspProdPvt {
		// req_prod moved backwards past requests already consumed.
		b.stopped = true
		return 0, fmt.Errorf("%w: req_prod %d went back behind req_cons %d", ErrOverflow, prod, b.reqCons)
	}
	// Now rspProdPvt <= reqCons <= prod <= rspProdPvt+size (mod 2^32), so
	// consuming everything keeps us within Size of the responses.
	return int(prod - b.reqCons), nil
}

// CopyRequest copies the next unconsumed request slot into dst (which must
// hold slotSize bytes) and consumes it. Call it only after Unconsumed
// reported a request. The copy is the one and only read of that slot.
func (b *Back) CopyRequest(dst []byte) {
	off := OffRing + int(b.reqCons&b.mask)*b.slotSize
	copy(dst[:b.slotSize], b.page[off:off+b.slotSize])
	b.reqCons++
}

// InFlight is the number of consumed requests not yet answered.
func (b *Back) InFlight() int { return int(b.reqCons - b.rspProdPvt) }

// ResponseSlot returns the slot for the next response (RING_GET_RESPONSE at
// rsp_prod_pvt). Fill it, then call CommitResponse. It must only be called
// while InFlight() > 0: the slot then belongs to an already consumed request.
func (b *Back) ResponseSlot() []byte {
	off := OffRing + int(b.rspProdPvt&b.mask)*b.slotSize
	return b.page[off : off+b.slotSize : off+b.slotSize]
}

// NextResponse is the index the next ResponseSlot has (rsp_prod_pvt).
func (b *Back) NextResponse() uint32 { return b.rspProdPvt }

// CommitResponse makes the filled ResponseSlot part of the private batch.
func (b *Back) CommitResponse() { b.rspProdPvt++ }

// PushResponses publishes the committed responses and reports whether the
// frontend asked to be notified (RING_PUSH_RESPONSES_AND_CHECK_NOTIFY): the
// frontend wants an event iff rsp_event lies in (old, new].
func (b *Back) PushResponses() (notify bool) {
	if b.stopped {
		return false
	}
	old := b.load(OffRspProd)
	nw := b.rspProdPvt
	if old == nw {
		return false
	}
	b.store(OffRspProd, nw) // release: response bytes are visible before the index; full fence
	ev := b.load(OffRspEvent)
	return nw-ev < nw-old
}

// FinalCheckForRequests is RING_FINAL_CHECK_FOR_REQUESTS: when nothing is
// pending it asks the frontend for an event at the next request (req_event =
// req_cons + 1) and then looks again, closing the race with a request
// published in between. It reports whether requests are pending.
func (b *Back) FinalCheckForRequests() (bool, error) {
	n, err := b.Unconsumed()
	if err != nil || n > 0 {
		return n > 0, err
	}
	b.store(OffReqEvent, b.reqCons+1) // full fence before re-reading req_prod
	n, err = b.Unconsumed()
	return n > 0, err
}

// Stop marks the ring dead; every later call fails with ErrStopped.
func (b *Back) Stop() { b.stopped = true }
