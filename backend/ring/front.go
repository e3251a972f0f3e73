package ring

// Front is the frontend end of a shared ring. The backend never uses it; it
// exists so tests, fuzzers and benchmarks can play a guest against Back over
// the same page.
type Front struct {
	page     []byte
	slotSize int
	size     uint32
	mask     uint32

	reqProdPvt uint32
	rspCons    uint32
}

// NewFront initialises page as a fresh shared ring (SHARED_RING_INIT plus
// FRONT_RING_INIT): indices 0, event indices 1, header padding zeroed.
func NewFront(page []byte, slotSize int) (*Front, error) {
	b, err := NewBack(page, slotSize) // same geometry and alignment checks
	if err != nil {
		return nil, err
	}
	clear(page[:OffRing])
	f := &Front{page: page, slotSize: slotSize, size: b.size, mask: b.mask}
	f.store(OffReqEvent, 1)
	f.store(OffRspEvent, 1)
	return f, nil
}

// Size is the number of slots.
func (f *Front) Size() int { return int(f.size) }

// Free is how many more requests fit before the ring is full.
func (f *Front) Free() int { return int(f.size - (f.reqProdPvt - f.rspCons)) }

// RequestSlot returns the slot for the next request (at req_prod_pvt).
func (f *Front) RequestSlot() []byte {
	off := OffRing + int(f.reqProdPvt&f.mask)*f.slotSize
	return f.page[off : off+f.slotSize : off+f.slotSize]
}

// CommitRequest adds the filled RequestSlot to the private batch.
func (f *Front) CommitRequest() { f.reqProdPvt++ }

// PushRequests is RING_PUSH_REQUESTS_AND_CHECK_NOTIFY.
func (f *Front) PushRequests() (notify bool) {
	old := f.load(OffReqProd)
	nw := f.reqProdPvt
	f.store(OffReqProd, nw)
	ev := f.load(OffReqEvent)
	return nw-ev < nw-old
}

// SetReqProd writes req_prod directly: hostile-frontend tests use it to
// publish impossible indices.
func (f *Front) SetReqProd(v uint32) { f.store(OffReqProd, v) }

// UnconsumedResponses is RING_HAS_UNCONSUMED_RESPONSES.
func (f *Front) UnconsumedResponses() int { return int(f.load(OffRspProd) - f.rspCons) }

// CopyResponse copies the next response into dst and consumes it.
func (f *Front) CopyResponse(dst []byte) {
	off := OffRing + int(f.rspCons&f.mask)*f.slotSize
	copy(dst[:f.slotSize], f.page[off:off+f.slotSize])
	f.rspCons++
}

// FinalCheckForResponses is RING_FINAL_CHECK_FOR_RESPONSES.
func (f *Front) FinalCheckForResponses() bool {
	if f.UnconsumedResponses() > 0 {
		return true
	}
	f.store(OffRspEvent, f.rspCons+1)
	return f.UnconsumedResponses() > 0
}
