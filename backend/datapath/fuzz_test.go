package datapath

import (
	"context"
	"encoding/binary"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/govscsi/govscsi/backend/ring"
	"github.com/govscsi/govscsi/backend/vscsiif"
)

// fuzzRig is a connection driven synchronously (no goroutines): the fuzz
// input goes into the ring and granted pages, then service runs inline.
// Granted refs are deterministic, so seeds can name them.
type fuzzRig struct {
	f     *testFront
	c     *Conn
	pages [4][]byte // rw data, ro data, indirect 1, indirect 2
	refs  [4]uint32
}

// Refs a fresh rig hands out: the ring page is granted first (ref 8).
const (
	fuzzRefRW   = 9
	fuzzRefRO   = 10
	fuzzRefInd1 = 11
	fuzzRefInd2 = 12
)

func newFuzzRig(t *testing.T) *fuzzRig {
	r := &fuzzRig{f: newTestFront(t)}
	r.f.table.Set(lun0, Entry{LUN: newMemLUN(64), Inline: true})
	r.f.table.Set(Addr{0, 1, 0}, Entry{LUN: nullLUN{}, Inline: true})
	for i := range r.pages {
		r.pages[i], r.refs[i] = r.f.dataPage(byte(i), i != 0)
	}
	if r.refs != [4]uint32{fuzzRefRW, fuzzRefRO, fuzzRefInd1, fuzzRefInd2} {
		t.Fatalf("xenfake handed out refs %v; update the fuzz seeds", r.refs)
	}
	cfg := r.f.config(1)
	cfg.JournalPath = filepath.Join(t.TempDir(), "ring.journal") // hostile streams go through the journal too
	c, err := newConn(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.c = c
	t.Cleanup(func() { r.f.stop(c) })
	return r
}

// restart kills the connection and resumes the ring from its journal in a
// new one (a daemon restart over whatever the hostile stream left).
func (r *fuzzRig) restart(t *testing.T) {
	r.c.Kill()
	cfg := r.f.config(1)
	cfg.JournalPath, cfg.Resume = r.c.cfg.JournalPath, true
	c, err := newConn(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.c = c
	t.Cleanup(func() { r.f.stop(c) })
}

func encodeReq(r vscsiif.Request) []byte {
	b := make([]byte, vscsiif.RequestSize)
	r.Encode(b)
	return b
}

// seedRequests: good direct and indirect requests plus every hostile request
// from the brief (bad gref, bad length, offset+len > 4096, 27 direct
// segments, too many indirect, act 4 and 99, cmd_len 0 and 17, dir 7),
// ABORT and RESET.
func seedRequests() [][]byte {
	good := rw(1, opRead10, vscsiif.DMAFromDevice, 0, 1, seg(fuzzRefRW, 0, 512))
	write := rw(2, opWrite10, vscsiif.DMAToDevice, 1, 1, seg(fuzzRefRO, 512, 512))
	ind := rw(3, opRead10, vscsiif.DMAFromDevice, 0, 2, seg(fuzzRefInd1, 0, 16))
	ind.NrSegments = vscsiif.SGGrant | 1
	out := [][]byte{encodeReq(good), encodeReq(write), encodeReq(ind)}
	mod := func(base vscsiif.Request, f func(r *vscsiif.Request)) {
		r := base
		f(&r)
		out = append(out, encodeReq(r))
	}
	mod(good, func(r *vscsiif.Request) { r.Seg[0].Gref = 99999 })
	mod(good, func(r *vscsiif.Request) { r.Seg[0].Length = 5000 })
	mod(good, func(r *vscsiif.Request) { r.Seg[0].Offset = 4000 })
	mod(good, func(r *vscsiif.Request) { r.Seg[0].Gref = fuzzRefRO })
	mod(good, func(r *vscsiif.Request) { r.NrSegments = 27 })
	mod(ind, func(r *vscsiif.Request) { r.NrSegments = vscsiif.SGGrant | 27 })
	mod(ind, func(r *vscsiif.Request) {
		r.NrSegments = vscsiif.SGGrant | 2
		r.Seg[0] = seg(fuzzRefInd1, 0, 4096)
		r.Seg[1] = seg(fuzzRefInd2, 0, 4096)
	})
	mod(ind, func(r *vscsiif.Request) { r.Seg[0].Length = 7 })
	mod(good, func(r *vscsiif.Request) { r.Act = 4 })
	mod(good, func(r *vscsiif.Request) { r.Act = 99 })
	mod(good, func(r *vscsiif.Request) { r.CmdLen = 0 })
	mod(good, func(r *vscsiif.Request) { r.CmdLen = 17 })
	mod(good, func(r *vscsiif.Request) { r.Direction = 7 })
	mod(good, func(r *vscsiif.Request) { r.LUN = 9 })
	out = append(out, encodeReq(vscsiif.Request{Rqid: 5, Act: vscsiif.ActSCSIAbort, RefRqid: 1}))
	out = append(out, encodeReq(vscsiif.Request{Rqid: 6, Act: vscsiif.ActSCSIReset}))
	return out
}

// indirectSeed is an indirect page: two good entries, one crossing the page
// end, one with a bad ref.
func indirectSeed() []byte {
	p := make([]byte, 64)
	seg(fuzzRefRW, 0, 512).Encode(p[0:])
	seg(fuzzRefRW, 512, 512).Encode(p[8:])
	seg(fuzzRefRW, 4000, 512).Encode(p[16:])
	seg(77777, 0, 512).Encode(p[24:])
	return p
}

// FuzzSegments runs one arbitrary request, with arbitrary contents in the
// two indirect SG pages, through the data path. Whatever the input, the
// request gets exactly one response carrying its rqid, and nothing panics.
func FuzzSegments(f *testing.F) {
	for _, r := range seedRequests() {
		f.Add(r, indirectSeed(), []byte{})
	}
	f.Fuzz(func(t *testing.T, req, ind1, ind2 []byte) {
		rig := newFuzzRig(t)
		copy(rig.pages[2], ind1)
		copy(rig.pages[3], ind2)
		slot := rig.f.front.RequestSlot()
		copy(slot, req)
		rqid := binary.LittleEndian.Uint16(slot)
		rig.f.front.CommitRequest()
		rig.f.front.PushRequests()
		if !rig.c.service() {
			// Only possible if the guest pointed a data segment at its own
			// ring page and the READ data overwrote the indices; stopping
			// the ring is then the right answer.
			if !errors.Is(rig.c.Err(), ErrRing) || rig.c.Stats().Responses.Load() > 1 {
				t.Fatalf("service failed: %v, %d responses", rig.c.Err(), rig.c.Stats().Responses.Load())
			}
			return
		}
		if n := rig.f.front.UnconsumedResponses(); n != 1 {
			t.Fatalf("%d responses for one request", n)
		}
		var r vscsiif.Response
		rig.f.front.CopyResponse(rig.f.rspBuf)
		vscsiif.DecodeResponse(rig.f.rspBuf, &r)
		if r.Rqid != rqid {
			t.Fatalf("response rqid %d for request %d", r.Rqid, rqid)
		}
		if r.SenseLen > vscsiif.SenseBufferSize {
			t.Fatalf("sense_len %d", r.SenseLen)
		}
	})
}

// FuzzRingLoop puts arbitrary bytes into the ring page's request slots and
// arbitrary req_prod values, then services the ring for a bounded number of
// steps. The backend must never panic or hang; while the ring is healthy
// every consumed request is answered exactly once (inline LUNs answer
// synchronously), and once it is declared broken nothing more is written.
func FuzzRingLoop(f *testing.F) {
	seeds := seedRequests()
	all := make([]byte, 0, 16*vscsiif.RequestSize)
	for i := 0; i < 16; i++ {
		all = append(all, seeds[i%len(seeds)]...)
	}
	f.Add(all, uint32(16), uint8(3))
	f.Add(all, uint32(17), uint8(1))         // bad req_prod jump
	f.Add(all, uint32(0xffffffff), uint8(2)) // backwards
	f.Add(seeds[0], uint32(1), uint8(20))
	f.Fuzz(func(t *testing.T, slots []byte, prod uint32, steps uint8) {
		start := time.Now()
		defer func() {
			if d := time.Since(start); d > 500*time.Millisecond {
				t.Fatalf("slow: %v", d)
			}
		}()
		rig := newFuzzRig(t)
		page := rig.f.page
		copy(page[ring.OffRing:], slots)
		rsp := make([]byte, vscsiif.ResponseSize)
		base := uint32(0)
		for step := 0; step < int(steps%32)+1; step++ {
			// Each step publishes up to prod%32 more requests (sometimes
			// more than fit, which must stop the ring), reusing whatever
			// bytes are in the slots, including old responses.
			base += (prod >> (step % 4 * 8)) % 20
			rig.f.front.SetReqProd(base)
			healthy := rig.c.service()
			st := rig.c.Stats()
			if healthy {
				if st.Requests.Load() != st.Responses.Load() {
					t.Fatalf("step %d: %d requests, %d responses", step, st.Requests.Load(), st.Responses.Load())
				}
			} else {
				before := st.Responses.Load()
				if rig.c.service() || st.Responses.Load() != before {
					t.Fatal("a broken ring was serviced again")
				}
				return
			}
			for rig.f.front.UnconsumedResponses() > 0 {
				rig.f.front.CopyResponse(rsp)
			}
		}
		// The next process over what is left: it must not panic, and what
		// it takes from the ring or the journal it answers.
		rig.restart(t)
		if rig.c.service() {
			if st := rig.c.Stats(); st.Requests.Load() != st.Responses.Load() {
				t.Fatalf("after the restart: %d requests, %d responses", st.Requests.Load(), st.Responses.Load())
			}
		}
	})
}

// TestFuzzSeedsExpectations pins what the seed requests must produce, so
// the fuzz corpus is known to reach the interesting paths.
func TestFuzzSeedsExpectations(t *testing.T) {
	want := []int32{rsltGood, vscsiif.Rslt(0, 0), rsltGood,
		rsltError, rsltError, rsltError, rsltError, rsltError, rsltError, rsltError, rsltError,
		rsltError, rsltError, rsltError, rsltError, rsltError, rsltNoConn,
		vscsiif.RsltResetSuccess, vscsiif.RsltResetSuccess}
	seeds := seedRequests()
	if len(seeds) != len(want) {
		t.Fatalf("%d seeds, %d expectations", len(seeds), len(want))
	}
	for i, s := range seeds {
		rig := newFuzzRig(t)
		copy(rig.pages[2], indirectSeed()[:16]) // two good entries
		copy(rig.f.front.RequestSlot(), s)
		rig.f.front.CommitRequest()
		rig.f.front.PushRequests()
		rig.c.service()
		r := rig.f.recv(1)[0]
		if r.Rslt != want[i] {
			t.Errorf("seed %d: rslt %#x, want %#x", i, r.Rslt, want[i])
		}
		rig.c.Stop(context.Background()) //nolint:errcheck
	}
}
