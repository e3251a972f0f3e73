package datapath

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/govscsi/govscsi/backend/scsi"
	"github.com/govscsi/govscsi/backend/vscsiif"
	"github.com/govscsi/govscsi/libxlgo/xenif"
)

// batchRig drives a connection synchronously: requests go into the ring,
// one service pass handles them as one drain batch, and the grant-copy
// calls it made are counted.
type batchRig struct {
	f *testFront
	c *Conn
	g *countingGrants
}

func newBatchRig(t *testing.T, wrap func(GrantDevice) GrantDevice) *batchRig {
	f := newTestFront(t)
	var dev GrantDevice = f.grants
	if wrap != nil {
		dev = wrap(dev)
	}
	r := &batchRig{f: f, g: &countingGrants{GrantDevice: dev}}
	cfg := f.config(1)
	cfg.Grants = r.g
	c, err := newConn(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.c = c
	t.Cleanup(func() { f.stop(c) })
	return r
}

// run puts reqs into the ring at once, services the ring and returns the
// responses by rqid (failing on a missing or duplicate one) and the number
// of grant-copy calls.
func (r *batchRig) run(t *testing.T, reqs ...vscsiif.Request) (map[uint16]vscsiif.Response, uint64) {
	t.Helper()
	for i := range reqs {
		reqs[i].Encode(r.f.front.RequestSlot())
		r.f.front.CommitRequest()
	}
	r.f.front.PushRequests()
	before := r.g.calls.Load()
	if !r.c.service() {
		t.Fatal(r.c.Err())
	}
	calls := r.g.calls.Load() - before
	out := map[uint16]vscsiif.Response{}
	for r.f.front.UnconsumedResponses() > 0 {
		r.f.front.CopyResponse(r.f.rspBuf)
		var rsp vscsiif.Response
		vscsiif.DecodeResponse(r.f.rspBuf, &rsp)
		if _, dup := out[rsp.Rqid]; dup {
			t.Fatalf("rqid %d answered twice", rsp.Rqid)
		}
		out[rsp.Rqid] = rsp
	}
	if len(out) != len(reqs) {
		t.Fatalf("%d responses for %d requests: %v", len(out), len(reqs), out)
	}
	return out, calls
}

func fill(p []byte, seed int) {
	for i := range p {
		p[i] = byte(seed*31 + i*7 + i/4096)
	}
}

// TestBatchMixedOneCallPerPhase: one drain batch of reads and writes, direct
// and indirect, to an inline LUN moves all its data with one grant-copy
// call per phase (SG lists in, write data in, read data out), and every
// byte lands where it belongs.
func TestBatchMixedOneCallPerPhase(t *testing.T) {
	r := newBatchRig(t, nil)
	lun := newMemLUN(256)
	r.f.table.Set(lun0, Entry{LUN: lun, Inline: true})
	var reqs []vscsiif.Request
	src := map[uint32][]byte{} // lba -> data written there
	var readPages [][]byte
	var readLBAs []uint32
	for i := 0; i < 16; i++ {
		lba := uint32(i * 16)
		indirect := i%4 >= 2
		write := i%2 == 0
		var pages [][]byte
		var segs []vscsiif.Segment
		for k := 0; k < 2; k++ {
			p, ref := r.f.dataPage(0xee, write)
			if write {
				fill(p, i*2+k)
			}
			pages = append(pages, p)
			segs = append(segs, seg(ref, 0, 4096))
		}
		dir, op := uint8(vscsiif.DMAFromDevice), byte(opRead10)
		if write {
			dir, op = vscsiif.DMAToDevice, opWrite10
			src[lba] = append(append([]byte{}, pages[0]...), pages[1]...)
		} else {
			readPages = append(readPages, pages...)
			readLBAs = append(readLBAs, lba-16) // the previous request's write
		}
		req := rw(uint16(i), op, dir, lba, 16, segs...)
		if !write {
			req.CDB = cdb10(opRead10, lba-16, 16)
		}
		if indirect {
			sgl, sref := r.f.dataPage(0, true)
			for k, s := range segs {
				s.Encode(sgl[64+k*8:])
			}
			req = rw(uint16(i), req.CDB[0], dir, 0, 0, seg(sref, 64, 16))
			req.CDB = cdb10(req.CDB[0], lba, 16)
			if !write {
				req.CDB = cdb10(opRead10, lba-16, 16)
			}
			req.NrSegments = vscsiif.SGGrant | 1
		}
		reqs = append(reqs, req)
	}
	got, calls := r.run(t, reqs...)
	for id, rsp := range got {
		expectRslt(t, rsp, id, rsltGood)
	}
	if calls != 3 {
		t.Errorf("%d grant-copy calls for one batch, want 3 (SG lists, write data, read data)", calls)
	}
	for lba, want := range src {
		if !bytes.Equal(lun.data[lba*blockSize:lba*blockSize+8192], want) {
			t.Errorf("LBA %d does not hold what was written", lba)
		}
	}
	for k, lba := range readLBAs {
		want := src[lba]
		if !bytes.Equal(append(append([]byte{}, readPages[2*k]...), readPages[2*k+1]...), want) {
			t.Errorf("read %d of LBA %d differs from the data written there in the same batch", k, lba)
		}
	}
}

// TestBatchBadRequestFailsAlone: in one batch of good reads and writes,
// each way a request's grant copies can fail (bad data gref on a read and
// on a write, a read into a read-only grant, a bad indirect gref, an
// indirect entry crossing its page) fails only that request with
// DID_ERROR; its neighbours complete with their data. Worker mode runs the
// loop; the batch still arrives with one kick.
func TestBatchBadRequestFailsAlone(t *testing.T) {
	for _, inline := range inlineModes {
		t.Run(modeName(inline), func(t *testing.T) {
			var f *testFront
			var exchange func(reqs []vscsiif.Request) map[uint16]vscsiif.Response
			if inline {
				r := newBatchRig(t, nil)
				f = r.f
				exchange = func(reqs []vscsiif.Request) map[uint16]vscsiif.Response {
					got, _ := r.run(t, reqs...)
					return got
				}
			} else {
				f = newTestFront(t)
				f.start(0)
				exchange = func(reqs []vscsiif.Request) map[uint16]vscsiif.Response {
					f.send(reqs...)
					got := map[uint16]vscsiif.Response{}
					for _, rsp := range f.recv(len(reqs)) {
						if _, dup := got[rsp.Rqid]; dup {
							t.Fatalf("rqid %d answered twice", rsp.Rqid)
						}
						got[rsp.Rqid] = rsp
					}
					return got
				}
			}
			lun := newMemLUN(64)
			f.table.Set(lun0, Entry{LUN: lun, Inline: inline})
			const badRef = 100000
			_, roRef := f.dataPage(0, true)
			indCross, indCrossRef := f.dataPage(0, true)
			_, good := f.dataPage(0, false)
			seg(good, 4000, 512).Encode(indCross)

			bad := []struct {
				name string
				mod  func(q *vscsiif.Request)
			}{
				{"bad gref read", func(q *vscsiif.Request) { q.Seg[0].Gref = badRef }},
				{"bad gref write", func(q *vscsiif.Request) {
					q.CDB, q.Direction = cdb10(opWrite10, 60, 1), vscsiif.DMAToDevice
					q.Seg[0].Gref = badRef
				}},
				{"read into read-only grant", func(q *vscsiif.Request) { q.Seg[0].Gref = roRef }},
				{"bad indirect gref", func(q *vscsiif.Request) {
					q.NrSegments = vscsiif.SGGrant | 1
					q.Seg[0] = seg(badRef, 0, 8)
				}},
				{"indirect entry crosses page", func(q *vscsiif.Request) {
					q.NrSegments = vscsiif.SGGrant | 1
					q.Seg[0] = seg(indCrossRef, 0, 8)
				}},
			}
			for bi, b := range bad {
				t.Run(b.name, func(t *testing.T) {
					// The LUN holds known data where the reads look.
					lun.mu.Lock()
					for i := 0; i < 7; i += 2 {
						fill(lun.data[i*8*blockSize:(i+1)*8*blockSize], bi*100+i)
					}
					lun.mu.Unlock()
					var reqs []vscsiif.Request
					pages := map[int][]byte{}
					for i := 0; i < 7; i++ {
						write := i%2 == 1
						p, ref := f.dataPage(0xee, write)
						pages[i] = p
						if write {
							fill(p, bi*100+i)
							reqs = append(reqs, rw(uint16(i), opWrite10, vscsiif.DMAToDevice, uint32(i*8), 8, seg(ref, 0, 4096)))
						} else {
							reqs = append(reqs, rw(uint16(i), opRead10, vscsiif.DMAFromDevice, uint32(i*8), 8, seg(ref, 0, 4096)))
						}
					}
					_, vref := f.dataPage(0xee, false)
					badReq := rw(7, opRead10, vscsiif.DMAFromDevice, 0, 1, seg(vref, 0, 512))
					b.mod(&badReq)
					// In the middle of the batch.
					reqs = append(reqs[:3], append([]vscsiif.Request{badReq}, reqs[3:]...)...)
					got := exchange(reqs)
					expectRslt(t, got[7], 7, rsltError)
					lun.mu.Lock()
					defer lun.mu.Unlock()
					for i := 0; i < 7; i++ {
						expectRslt(t, got[uint16(i)], uint16(i), rsltGood)
						want := make([]byte, 4096)
						fill(want, bi*100+i)
						if !bytes.Equal(pages[i], want) {
							t.Errorf("rqid %d: guest page differs", i)
						}
						if !bytes.Equal(lun.data[i*8*blockSize:(i+1)*8*blockSize], want) {
							t.Errorf("rqid %d: LUN data differs", i)
						}
					}
				})
			}
		})
	}
}

// wholeCallFails fails every GrantCopy of more than one op as a whole (as
// the real device does when the ioctl itself fails: every op gets
// GNTST_general_error and an error comes back).
type wholeCallFails struct{ GrantDevice }

func (w wholeCallFails) GrantCopy(ops []xenif.GrantCopyOp) error {
	if len(ops) > 1 {
		for i := range ops {
			ops[i].Status = xenif.GNTSTGeneralError
		}
		return fmt.Errorf("grant copy of %d segments: %w", len(ops), syscall.ENOMEM)
	}
	return w.GrantDevice.GrantCopy(ops)
}

// TestBatchWholeCallFailure: when a batched call fails as a whole, each
// request's copies are retried on their own, so good requests still
// complete and only the bad one fails.
func TestBatchWholeCallFailure(t *testing.T) {
	r := newBatchRig(t, func(g GrantDevice) GrantDevice { return wholeCallFails{g} })
	lun := newMemLUN(64)
	r.f.table.Set(lun0, Entry{LUN: lun, Inline: true})
	var reqs []vscsiif.Request
	var pages [][]byte
	for i := 0; i < 6; i++ {
		p, ref := r.f.dataPage(0xee, i < 3)
		fill(p, i)
		pages = append(pages, p)
		if i < 3 {
			reqs = append(reqs, rw(uint16(i), opWrite10, vscsiif.DMAToDevice, uint32(i*8), 8, seg(ref, 0, 4096)))
		} else {
			reqs = append(reqs, rw(uint16(i), opRead10, vscsiif.DMAFromDevice, uint32((i-3)*8), 8, seg(ref, 0, 4096)))
		}
	}
	reqs = append(reqs, rw(6, opRead10, vscsiif.DMAFromDevice, 0, 1, seg(100000, 0, 512)))
	got, _ := r.run(t, reqs...)
	for i := uint16(0); i < 6; i++ {
		expectRslt(t, got[i], i, rsltGood)
	}
	expectRslt(t, got[6], 6, rsltError)
	for i := 3; i < 6; i++ {
		if !bytes.Equal(pages[i], pages[i-3]) {
			t.Errorf("read rqid %d does not return what rqid %d wrote", i, i-3)
		}
	}
}

// TestBatchAbortWithVictim: an ABORT in the same drain batch as its victim.
// An inline victim completes first (good, data delivered) and the ABORT
// then finds nothing to abort; a worker-mode victim stuck in its LUN is
// answered DID_ABORT before the ABORT succeeds, its read data never reaches
// the guest, and its write never lands after the guest re-issued newer data.
func TestBatchAbortWithVictim(t *testing.T) {
	t.Run("inline", func(t *testing.T) {
		f := newTestFront(t)
		lun := newMemLUN(8)
		fill(lun.data, 5)
		f.table.Set(lun0, Entry{LUN: lun, Inline: true})
		f.start(1)
		page, ref := f.dataPage(0xee, false)
		f.send(rw(1, opRead10, vscsiif.DMAFromDevice, 0, 8, seg(ref, 0, 4096)),
			vscsiif.Request{Rqid: 2, Act: vscsiif.ActSCSIAbort, RefRqid: 1},
			rw(3, opTUR, vscsiif.DMANone, 0, 0))
		got := f.recv(3)
		expectRslt(t, got[0], 1, rsltGood)
		expectRslt(t, got[1], 2, vscsiif.RsltResetSuccess)
		expectRslt(t, got[2], 3, rsltGood)
		if !bytes.Equal(page, lun.data[:4096]) {
			t.Fatal("inline victim's read data not delivered")
		}
	})
	t.Run("workers/read", func(t *testing.T) {
		f := newTestFront(t)
		lun := &abortableGateLUN{gateLUN: gateLUN{mem: newMemLUN(8), started: make(chan struct{}, 1),
			release: make(chan struct{})}, aborted: make(chan uint64, 1)}
		fill(lun.mem.data, 5)
		f.table.Set(lun0, Entry{LUN: lun})
		f.table.Set(Addr{0, 1, 0}, Entry{LUN: newMemLUN(8), Inline: true})
		c := f.start(4)
		page, ref := f.dataPage(0xee, false)
		other := rw(3, opTUR, vscsiif.DMANone, 0, 0)
		other.ID = 1
		f.send(rw(1, opRead10, vscsiif.DMAFromDevice, 0, 8, seg(ref, 0, 4096)),
			vscsiif.Request{Rqid: 2, Act: vscsiif.ActSCSIAbort, RefRqid: 1}, other)
		// Either a worker took the victim before the ABORT (then the ABORT
		// tells the LUN, and waits until the LUN returns), or the ABORT
		// dropped it while queued (both answered at once). Release the LUN
		// only once the ABORT has claimed the victim.
		var order []uint16
		byID := map[uint16]vscsiif.Response{}
		released := false
		for deadline := time.Now().Add(10 * time.Second); len(byID) < 3; {
			if time.Now().After(deadline) {
				t.Fatalf("responses so far: %v", byID)
			}
			select {
			case <-lun.aborted:
				close(lun.release)
				released = true
			default:
			}
			for _, rsp := range f.pollResponses(time.Millisecond) {
				byID[rsp.Rqid] = rsp
				if rsp.Rqid != 3 {
					order = append(order, rsp.Rqid)
				}
			}
		}
		if !released {
			close(lun.release)
		}
		if len(order) != 2 || order[0] != 1 || order[1] != 2 {
			t.Fatalf("victim and ABORT answered in order %v, want [1 2]", order)
		}
		expectRslt(t, byID[1], 1, vscsiif.Rslt(vscsiif.HostAbort, 0))
		expectRslt(t, byID[2], 2, vscsiif.RsltResetSuccess)
		expectRslt(t, byID[3], 3, rsltGood)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.WaitIdle(ctx, lun0); err != nil {
			t.Fatal(err)
		}
		f.quiet(10 * time.Millisecond)
		if !bytes.Equal(page, bytes.Repeat([]byte{0xee}, 4096)) {
			t.Fatal("aborted read's data was copied to the guest")
		}
	})
	t.Run("workers/write", func(t *testing.T) {
		f := newTestFront(t)
		lun := &abortableGateLUN{gateLUN: gateLUN{mem: newMemLUN(8), started: make(chan struct{}, 1),
			release: make(chan struct{})}, aborted: make(chan uint64, 1)}
		f.table.Set(lun0, Entry{LUN: lun})
		c := f.start(4)
		_, oldRef := f.dataPage(0xaa, true)
		_, newRef := f.dataPage(0xbb, true)
		f.send(rw(1, opWrite10, vscsiif.DMAToDevice, 2, 1, seg(oldRef, 0, 512)),
			vscsiif.Request{Rqid: 2, Act: vscsiif.ActSCSIAbort, RefRqid: 1})
		// As the guest does: re-issue only once the ABORT succeeded. If the
		// old write is in the LUN, the ABORT claims it and must wait for it:
		// let the LUN go only then.
		var got []vscsiif.Response
		released := false
		for deadline := time.Now().Add(10 * time.Second); len(got) < 2; {
			if time.Now().After(deadline) {
				t.Fatalf("responses so far: %v", got)
			}
			select {
			case <-lun.aborted:
				if len(got) != 0 {
					t.Fatalf("answered %v before the aborted write left the LUN", got)
				}
				close(lun.release)
				released = true
			default:
			}
			got = append(got, f.pollResponses(time.Millisecond)...)
		}
		expectNewerWriteWins(t, f, c, &lun.gateLUN, got, newRef, released)
	})
}

// abortableGateLUN is a gateLUN that reports ABORTs of its running
// commands.
type abortableGateLUN struct {
	gateLUN
	aborted chan uint64
}

func (l *abortableGateLUN) Abort(tag uint64) bool { l.aborted <- tag; return false }
func (l *abortableGateLUN) Reset() error          { return nil }

// batchSpec describes one request of a random batch, independent of the
// refs a particular rig hands out, so one batch can be replayed on two rigs.
type batchSpec struct {
	kind     int // see buildSpec
	rqid     uint16
	ref      uint16 // ABORT's ref_rqid
	lba      uint32
	blocks   uint16
	layout   [][2]int // (offset, length) per data segment
	indirect bool
	listOff  int
	fill     int
}

const (
	specRead = iota
	specWrite
	specTUR
	specBadGref
	specBadIndirect
	specReadOnly
	specBadAct
	specAbort
	specReset
	specResetUnknown
	specPanic
	specUnknownLUN
	specKinds
)

func randomSpec(rng *rand.Rand, rqid uint16) batchSpec {
	s := batchSpec{kind: rng.Intn(specKinds), rqid: rqid, fill: rng.Intn(1 << 20)}
	if rng.Intn(3) != 0 { // mostly plain reads and writes
		s.kind = rng.Intn(2)
	}
	s.ref = uint16(rng.Intn(16))
	s.lba = uint32(rng.Intn(56))
	s.indirect = rng.Intn(3) == 0
	s.listOff = 8 * rng.Intn(64)
	nseg := 1 + rng.Intn(4)
	total := 0
	for i := 0; i < nseg; i++ {
		off := 512 * rng.Intn(8)
		l := 512 * (1 + rng.Intn((4096-off)/512))
		if rng.Intn(8) == 0 {
			off, l = rng.Intn(4000), 1+rng.Intn(96) // odd pieces
		}
		s.layout = append(s.layout, [2]int{off, l})
		total += l
	}
	// Usually the CDB matches the buffer; sometimes it is shorter (a
	// residual) or longer (CHECK CONDITION from the LUN).
	s.blocks = uint16((total + blockSize - 1) / blockSize)
	switch rng.Intn(6) {
	case 0:
		s.blocks = uint16(rng.Intn(int(s.blocks) + 1))
	case 1:
		s.blocks++
	}
	return s
}

// buildSpec grants the pages of s on f and encodes the request. It returns
// the guest pages the request's data touches (to compare afterwards).
func (f *testFront) buildSpec(s batchSpec) (vscsiif.Request, [][]byte) {
	const badRef = 100000
	write := s.kind == specWrite
	dir, op := uint8(vscsiif.DMAFromDevice), byte(opRead10)
	if write {
		dir, op = vscsiif.DMAToDevice, opWrite10
	}
	var pages [][]byte
	var segs []vscsiif.Segment
	for i, l := range s.layout {
		p, ref := f.dataPage(0xee, write || s.kind == specReadOnly)
		fill(p, s.fill+i)
		pages = append(pages, p)
		segs = append(segs, seg(ref, uint16(l[0]), uint16(l[1])))
	}
	if s.kind == specBadGref {
		segs[len(segs)-1].Gref = badRef
	}
	r := rw(s.rqid, op, dir, s.lba, s.blocks, segs...)
	if s.indirect || s.kind == specBadIndirect {
		list, lref := f.dataPage(0, true)
		for i, sg := range segs {
			sg.Encode(list[s.listOff+i*8:])
		}
		if s.kind == specBadIndirect {
			lref = badRef
		}
		r = rw(s.rqid, op, dir, s.lba, s.blocks, seg(lref, uint16(s.listOff), uint16(len(segs)*8)))
		r.NrSegments = vscsiif.SGGrant | 1
	}
	switch s.kind {
	case specTUR:
		r = rw(s.rqid, opTUR, vscsiif.DMANone, 0, 0)
	case specBadAct:
		r.Act = 99
	case specAbort:
		r = vscsiif.Request{Rqid: s.rqid, Act: vscsiif.ActSCSIAbort, RefRqid: s.ref}
	case specReset:
		r = vscsiif.Request{Rqid: s.rqid, Act: vscsiif.ActSCSIReset}
	case specResetUnknown:
		r = vscsiif.Request{Rqid: s.rqid, Act: vscsiif.ActSCSIReset, ID: 9}
	case specPanic:
		r.ID = 1
	case specUnknownLUN:
		r.LUN = 7
	}
	return r, pages
}

// TestBatchMatchesOneByOne replays random batches (reads and writes with
// random segment layouts, direct and indirect, residuals, CHECK CONDITIONs,
// bad grefs, read-only grants, bad acts, ABORTs, RESETs, a panicking LUN,
// unknown LUNs) on two rigs: one gets each batch in one drain, the other one
// request at a time. Every request must get the same response on both, and
// the LUN and every guest page must end up the same: batching changes the
// number of grant-copy calls, nothing else.
func TestBatchMatchesOneByOne(t *testing.T) {
	rounds := 40
	if testing.Short() {
		rounds = 10
	}
	batched := newBatchRig(t, nil)
	single := newBatchRig(t, nil)
	luns := [2]*memLUN{newMemLUN(64), newMemLUN(64)}
	for i, r := range []*batchRig{batched, single} {
		r.f.table.Set(lun0, Entry{LUN: luns[i], Inline: true})
		r.f.table.Set(Addr{0, 1, 0}, Entry{LUN: panicLUN{}, Inline: true})
	}
	rng := rand.New(rand.NewSource(7))
	var calls, requests uint64
	for round := 0; round < rounds; round++ {
		n := 1 + rng.Intn(16)
		specs := make([]batchSpec, n)
		for i := range specs {
			specs[i] = randomSpec(rng, uint16(i))
		}
		var reqs []vscsiif.Request
		var bPages, sPages [][][]byte
		for _, s := range specs {
			q, p := batched.f.buildSpec(s)
			reqs = append(reqs, q)
			bPages = append(bPages, p)
		}
		gotB, c := batched.run(t, reqs...)
		calls += c
		requests += uint64(n)
		tmfs := uint64(0)
		for _, s := range specs {
			if s.kind == specAbort || s.kind == specReset || s.kind == specResetUnknown {
				tmfs++
			}
		}
		if max := 3 * (tmfs + 1); c > max {
			t.Errorf("round %d: %d grant-copy calls for %d requests with %d TMFs, want at most %d", round, c, n, tmfs, max)
		}
		gotS := map[uint16]vscsiif.Response{}
		for _, s := range specs {
			q, p := single.f.buildSpec(s)
			sPages = append(sPages, p)
			got, _ := single.run(t, q)
			gotS[s.rqid] = got[s.rqid]
		}
		for i, s := range specs {
			if gotB[s.rqid] != gotS[s.rqid] {
				t.Fatalf("round %d request %d (%+v): batched %+v, one by one %+v", round, i, s, gotB[s.rqid], gotS[s.rqid])
			}
			for k := range bPages[i] {
				if !bytes.Equal(bPages[i][k], sPages[i][k]) {
					t.Fatalf("round %d request %d (%+v): guest page %d differs", round, i, s, k)
				}
			}
		}
		if !bytes.Equal(luns[0].data, luns[1].data) {
			t.Fatalf("round %d: LUN contents differ", round)
		}
	}
	t.Logf("%d grant-copy calls for %d requests in %d batches", calls, requests, rounds)
}

// TestBatchReadIntoRingPage: a batch whose read data overwrites the ring
// indices (the guest granted its own ring page as a data page) is answered
// once per request, then the bogus indices stop the ring; nothing panics.
func TestBatchReadIntoRingPage(t *testing.T) {
	r := newBatchRig(t, nil)
	r.f.table.Set(lun0, Entry{LUN: nullLUN{}, Inline: true})
	var reqs []vscsiif.Request
	for i := 0; i < 4; i++ {
		_, ref := r.f.dataPage(0, false)
		reqs = append(reqs, rw(uint16(i), opRead10, vscsiif.DMAFromDevice, 0, 1, seg(ref, 0, 512)))
	}
	reqs = append(reqs, rw(4, opRead10, vscsiif.DMAFromDevice, 0, 1, seg(r.f.ringRef, 0, 512)))
	for i := range reqs {
		reqs[i].Encode(r.f.front.RequestSlot())
		r.f.front.CommitRequest()
	}
	r.f.front.PushRequests()
	if r.c.service() || !errors.Is(r.c.Err(), ErrRing) {
		t.Fatalf("service went on after the indices were zeroed: %v", r.c.Err())
	}
	if got := r.c.Stats().Responses.Load(); got != uint64(len(reqs)) {
		t.Fatalf("%d responses for %d requests", got, len(reqs))
	}
}

// TestWorkerResponsesCoalesce: a worker whose command finished while
// another one is copying its read data out leaves the push to that one, so
// nothing may be lost: once the copy-out ends both responses are there,
// once each, with the right data.
func TestWorkerResponsesCoalesce(t *testing.T) {
	f := newTestFront(t)
	lun := newMemLUN(8)
	fill(lun.data, 3)
	f.table.Set(lun0, Entry{LUN: lun})
	g := &gatedGrants{GrantDevice: f.grants, entered: make(chan struct{}, 1), gate: make(chan struct{})}
	cfg := f.config(4)
	cfg.Grants = g
	c, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.stop(c) })
	page, ref := f.dataPage(0xee, false)
	f.send(rw(1, opRead10, vscsiif.DMAFromDevice, 0, 8, seg(ref, 0, 4096)))
	<-g.entered // rqid 1 is copying its data out
	f.send(rw(2, opTUR, vscsiif.DMANone, 0, 0))
	for deadline := time.Now().Add(10 * time.Second); c.Stats().Responses.Load() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("rqid 2 not answered while rqid 1 copies out")
		}
		time.Sleep(time.Millisecond)
	}
	close(g.gate)
	got := f.recv(2)
	byID := map[uint16]vscsiif.Response{}
	for _, r := range got {
		byID[r.Rqid] = r
	}
	expectRslt(t, byID[1], 1, rsltGood)
	expectRslt(t, byID[2], 2, rsltGood)
	if !bytes.Equal(page, lun.data[:4096]) {
		t.Fatal("read data differs")
	}
	f.quiet(10 * time.Millisecond)
}

// reusedSenseLUN fails every command with CHECK CONDITION, returning sense
// from one buffer it reuses for the next command, with the ASC taken from
// CDB byte 2 (as a LUN may: the Result contract does not hand the sense
// over).
type reusedSenseLUN struct{ buf []byte }

func (l *reusedSenseLUN) Execute(cmd *scsi.Command, res *scsi.Result) {
	copy(l.buf, illegalRequest)
	l.buf[12] = cmd.CDB[2]
	res.Status, res.Sense = scsi.StatusCheckCondition, l.buf
}

func (l *reusedSenseLUN) Close() error { return nil }

// TestBatchSenseNotShared: inline commands of one batch run before any of
// them is answered; each response still carries its own command's sense.
func TestBatchSenseNotShared(t *testing.T) {
	r := newBatchRig(t, nil)
	r.f.table.Set(lun0, Entry{LUN: &reusedSenseLUN{buf: make([]byte, len(illegalRequest))}, Inline: true})
	var reqs []vscsiif.Request
	for i := 0; i < 8; i++ {
		q := rw(uint16(i), opTUR, vscsiif.DMANone, 0, 0)
		q.CDB[2] = byte(0x40 + i)
		reqs = append(reqs, q)
	}
	got, _ := r.run(t, reqs...)
	for i := 0; i < 8; i++ {
		rsp := got[uint16(i)]
		expectRslt(t, rsp, uint16(i), vscsiif.Rslt(0, scsi.StatusCheckCondition))
		if rsp.SenseLen != uint8(len(illegalRequest)) || rsp.Sense[12] != byte(0x40+i) {
			t.Errorf("rqid %d: sense % x, want ASC %#x", i, rsp.Sense[:rsp.SenseLen], 0x40+i)
		}
	}
}

// TestBatchChunks: a group with more data than groupChunkBytes moves it in
// chunks (one write-in and one read-out call each), every byte in place:
// two 512 KiB indirect reads, then sixteen 64 KiB direct writes read back.
func TestBatchChunks(t *testing.T) {
	r := newBatchRig(t, nil)
	lun := newMemLUN(4096) // 2 MiB
	fill(lun.data, 9)
	r.f.table.Set(lun0, Entry{LUN: lun, Inline: true})

	var reqs []vscsiif.Request
	var pages [][][]byte
	for i := 0; i < 2; i++ {
		list, lref := r.f.dataPage(0, true)
		var ps [][]byte
		for k := 0; k < 128; k++ {
			p, ref := r.f.dataPage(0xee, false)
			ps = append(ps, p)
			seg(ref, 0, 4096).Encode(list[k*8:])
		}
		q := rw(uint16(i), opRead10, vscsiif.DMAFromDevice, uint32(i*1024), 1024, seg(lref, 0, 128*8))
		q.NrSegments = vscsiif.SGGrant | 1
		reqs = append(reqs, q)
		pages = append(pages, ps)
	}
	got, calls := r.run(t, reqs...)
	if want := uint64(1 + 2); calls != want {
		t.Errorf("2 x 512 KiB reads: %d grant-copy calls, want %d (SG lists, one read-out per chunk)", calls, want)
	}
	for i, ps := range pages {
		expectRslt(t, got[uint16(i)], uint16(i), rsltGood)
		if !bytes.Equal(bytes.Join(ps, nil), lun.data[i*512<<10:(i+1)*512<<10]) {
			t.Errorf("read %d: data differs", i)
		}
	}

	const per = 64 << 10
	reqs, pages = nil, nil
	for i := 0; i < 16; i++ {
		var ps [][]byte
		var segs []vscsiif.Segment
		for k := 0; k < per/4096; k++ {
			p, ref := r.f.dataPage(0, true)
			fill(p, i*100+k)
			ps = append(ps, p)
			segs = append(segs, seg(ref, 0, 4096))
		}
		reqs = append(reqs, rw(uint16(i), opWrite10, vscsiif.DMAToDevice, uint32(i*per/blockSize), per/blockSize, segs...))
		pages = append(pages, ps)
	}
	got, calls = r.run(t, reqs...)
	if want := uint64(16 * per / groupChunkBytes); calls != want {
		t.Errorf("16 x 64 KiB writes: %d grant-copy calls, want %d (one write-in per chunk)", calls, want)
	}
	for i, ps := range pages {
		expectRslt(t, got[uint16(i)], uint16(i), rsltGood)
		if !bytes.Equal(bytes.Join(ps, nil), lun.data[i*per:(i+1)*per]) {
			t.Errorf("write %d: data differs", i)
		}
	}
}

// inGate holds the first copy from the guest until released: the loop is
// then between looking its requests' LUNs up and running them.
type inGate struct {
	GrantDevice
	entered chan struct{}
	gate    chan struct{}
	once    sync.Once
}

func (g *inGate) GrantCopy(ops []xenif.GrantCopyOp) error {
	if len(ops) > 0 && !ops[0].ToGuest {
		g.once.Do(func() {
			g.entered <- struct{}{}
			<-g.gate
		})
	}
	return g.GrantDevice.GrantCopy(ops)
}

// TestWaitIdleCoversDispatch: hot remove (Table.Remove, WaitIdle, Close)
// while the loop has already resolved a request to the LUN but is still
// copying its data in: WaitIdle must wait for that command too, or the
// LUN would be closed under it.
func TestWaitIdleCoversDispatch(t *testing.T) {
	for _, inline := range inlineModes {
		t.Run(modeName(inline), func(t *testing.T) {
			f := newTestFront(t)
			lun := newMemLUN(8)
			f.table.Set(lun0, Entry{LUN: lun, Inline: inline})
			g := &inGate{GrantDevice: f.grants, entered: make(chan struct{}, 1), gate: make(chan struct{})}
			cfg := f.config(2)
			cfg.Grants = g
			c, err := Start(cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.stop(c) })
			var opened sync.Once
			open := func() { opened.Do(func() { close(g.gate) }) }
			t.Cleanup(open) // runs before the Stop above if the test fails early
			_, ref := f.dataPage(0x5a, true)
			f.send(rw(1, opWrite10, vscsiif.DMAToDevice, 0, 1, seg(ref, 0, 512)))
			<-g.entered
			f.table.Remove(lun0)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
			defer cancel()
			if err := c.WaitIdle(ctx, lun0); err == nil {
				t.Fatal("WaitIdle returned while a command resolved to the LUN was still being dispatched")
			}
			open()
			ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel2()
			if err := c.WaitIdle(ctx2, lun0); err != nil {
				t.Fatal(err)
			}
			lun.mu.Lock()
			landed := lun.data[0] == 0x5a
			lun.mu.Unlock()
			if !landed {
				t.Fatal("WaitIdle returned before the command ran")
			}
			expectRslt(t, f.recv(1)[0], 1, rsltGood)
		})
	}
}

// TestWaitIdleWaitsForReset: a LUN RESET whose Reset is still running
// keeps the LUN in use for hot remove.
func TestWaitIdleWaitsForReset(t *testing.T) {
	f := newTestFront(t)
	lun := newTMLUN()
	f.table.Set(lun0, Entry{LUN: lun})
	c := f.start(2)
	f.send(vscsiif.Request{Rqid: 1, Act: vscsiif.ActSCSIReset})
	<-lun.resetIn
	f.table.Remove(lun0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	err := c.WaitIdle(ctx, lun0)
	lun.resetOut <- nil
	if err == nil {
		t.Fatal("WaitIdle returned while the LUN's Reset was running")
	}
	expectRslt(t, f.recv(1)[0], 1, vscsiif.RsltResetSuccess)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if err := c.WaitIdle(ctx2, lun0); err != nil {
		t.Fatal(err)
	}
}
