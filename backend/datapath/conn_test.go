package datapath

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/govscsi/govscsi/backend/scsi"
	"github.com/govscsi/govscsi/backend/vscsiif"
)

var (
	rsltGood    = vscsiif.Rslt(vscsiif.HostOK, 0)
	rsltError   = vscsiif.Rslt(vscsiif.HostError, 0)
	rsltNoConn  = vscsiif.Rslt(vscsiif.HostNoConnect, 0)
	lun0        = Addr{0, 0, 0}
	inlineModes = []bool{true, false}
)

func modeName(inline bool) string {
	if inline {
		return "inline"
	}
	return "workers"
}

// TestReadWriteRoundTrip writes 8 KiB through two direct segments (one at a
// page offset) and reads it back through three differently split segments.
func TestReadWriteRoundTrip(t *testing.T) {
	for _, inline := range inlineModes {
		t.Run(modeName(inline), func(t *testing.T) {
			f := newTestFront(t)
			lun := newMemLUN(64)
			f.table.Set(lun0, Entry{LUN: lun, Inline: inline})
			f.start(4)

			src1, r1 := f.dataPage(0, true)
			src2, r2 := f.dataPage(0, true)
			for i := range src1 {
				src1[i], src2[i] = byte(i*7), byte(i*13+1)
			}
			// 3584 + 4096 + 512 bytes: the last segment reuses page 1's start.
			f.send(rw(1, opWrite10, vscsiif.DMAToDevice, 2, 16, seg(r1, 512, 3584), seg(r2, 0, 4096), seg(r1, 0, 512)))
			expectRslt(t, f.recv(1)[0], 1, rsltGood)
			want := append(append(append([]byte{}, src1[512:]...), src2...), src1[:512]...)
			if !bytes.Equal(lun.data[2*blockSize:2*blockSize+8192], want) {
				t.Fatal("LUN does not hold the written data")
			}

			d1, q1 := f.dataPage(0xee, false)
			d2, q2 := f.dataPage(0xee, false)
			d3, q3 := f.dataPage(0xee, false)
			f.send(rw(2, opRead10, vscsiif.DMAFromDevice, 2, 16, seg(q1, 100, 1000), seg(q2, 0, 4096), seg(q3, 8, 8192-5096)))
			r := f.recv(1)[0]
			expectRslt(t, r, 2, rsltGood)
			if r.Residual != 0 || r.SenseLen != 0 {
				t.Fatalf("residual %d sense %d", r.Residual, r.SenseLen)
			}
			got := append(append(append([]byte{}, d1[100:1100]...), d2...), d3[8:8+8192-5096]...)
			if !bytes.Equal(got, want) {
				t.Fatal("read data differs from written data")
			}
			if d1[99] != 0xee || d1[1100] != 0xee || d3[7] != 0xee || d3[8+8192-5096] != 0xee {
				t.Fatal("bytes outside the segments were written")
			}
		})
	}
}

// TestResidualAndSense: a short read reports the residual and copies only
// DataLen bytes; a CHECK CONDITION carries its sense.
func TestResidualAndSense(t *testing.T) {
	f := newTestFront(t)
	f.table.Set(lun0, Entry{LUN: newMemLUN(8), Inline: true})
	f.start(1)
	p, ref := f.dataPage(0xee, false)
	inq := vscsiif.Request{Rqid: 3, Act: vscsiif.ActSCSICDB, CmdLen: 6, Direction: vscsiif.DMAFromDevice, NrSegments: 1}
	inq.CDB[0], inq.CDB[4] = opInquiry, 255
	inq.Seg[0] = seg(ref, 0, 255)
	f.send(inq)
	r := f.recv(1)[0]
	expectRslt(t, r, 3, rsltGood)
	if r.Residual != 255-36 {
		t.Fatalf("residual %d, want %d", r.Residual, 255-36)
	}
	if string(p[8:15]) != "govscsi" || p[36] != 0xee {
		t.Fatalf("INQUIRY data wrong or too long: %q", p[:40])
	}
	bad := vscsiif.Request{Rqid: 4, Act: vscsiif.ActSCSICDB, CmdLen: 6, Direction: vscsiif.DMANone}
	bad.CDB[0] = 0xff
	f.send(bad)
	r = f.recv(1)[0]
	expectRslt(t, r, 4, vscsiif.Rslt(0, scsi.StatusCheckCondition))
	if r.SenseLen != 18 || r.Sense[0] != 0x70 || r.Sense[2] != 5 || r.Sense[12] != 0x20 {
		t.Fatalf("sense %d % x", r.SenseLen, r.Sense[:18])
	}
}

// TestIndirect moves 40 pages through two indirect pieces, the first at a
// non-zero offset in its page, as Linux's frontend grants a kcalloc'ed list.
func TestIndirect(t *testing.T) {
	for _, inline := range inlineModes {
		t.Run(modeName(inline), func(t *testing.T) {
			f := newTestFront(t)
			lun := newMemLUN(40 * 8)
			f.table.Set(lun0, Entry{LUN: lun, Inline: inline})
			f.start(2)
			build := func(rqid uint16, op, dir byte, fill func(i int, p []byte)) (vscsiif.Request, [][]byte) {
				sgl := make([]byte, 40*8)
				var pages [][]byte
				for i := 0; i < 40; i++ {
					p, ref := f.dataPage(0, dir == vscsiif.DMAToDevice)
					fill(i, p)
					pages = append(pages, p)
					seg(ref, 0, 4096).Encode(sgl[i*8:])
				}
				ind1, i1 := f.dataPage(0, true)
				ind2, i2 := f.dataPage(0, true)
				copy(ind1[4096-30*8:], sgl[:30*8])
				copy(ind2, sgl[30*8:])
				r := rw(rqid, op, dir, 0, 40*8, seg(i1, 4096-30*8, 30*8), seg(i2, 0, 10*8))
				r.NrSegments = vscsiif.SGGrant | 2
				return r, pages
			}
			w, _ := build(1, opWrite10, vscsiif.DMAToDevice, func(i int, p []byte) {
				for j := range p {
					p[j] = byte(i + j)
				}
			})
			f.send(w)
			expectRslt(t, f.recv(1)[0], 1, rsltGood)
			rd, pages := build(2, opRead10, vscsiif.DMAFromDevice, func(int, []byte) {})
			f.send(rd)
			expectRslt(t, f.recv(1)[0], 2, rsltGood)
			for i, p := range pages {
				for j := range p {
					if p[j] != byte(i+j) {
						t.Fatalf("page %d byte %d = %d", i, j, p[j])
					}
				}
			}
		})
	}
}

// TestHostileRequests sends each malformed request from the brief and P19.
// Every one gets exactly one response with its rqid and the documented
// error, and the connection keeps serving afterwards.
func TestHostileRequests(t *testing.T) {
	f := newTestFront(t)
	f.table.Set(lun0, Entry{LUN: newMemLUN(64), Inline: true})
	f.table.Set(Addr{0, 1, 0}, Entry{LUN: panicLUN{}, Inline: true})
	c := f.start(2)
	_, good := f.dataPage(0, false)
	_, ro := f.dataPage(0, true)
	badRef := uint32(100000)
	indBad, indBadRef := f.dataPage(0, true) // indirect list with an out-of-page entry
	seg(good, 4000, 200).Encode(indBad)
	indGoodRef := func(entries int) uint32 { // list of `entries` valid entries
		p, ref := f.dataPage(0, true)
		for i := 0; i < entries && i < 512; i++ {
			seg(good, 0, 512).Encode(p[i*8:])
		}
		return ref
	}
	type tc struct {
		name string
		req  vscsiif.Request
		want int32
	}
	mk := func(name string, want int32, mod func(r *vscsiif.Request)) tc {
		r := rw(0, opRead10, vscsiif.DMAFromDevice, 0, 1, seg(good, 0, 512))
		mod(&r)
		return tc{name, r, want}
	}
	cases := []tc{
		mk("bad gref", rsltError, func(r *vscsiif.Request) { r.Seg[0].Gref = badRef }),
		mk("bad gref write", rsltError, func(r *vscsiif.Request) {
			r.CDB = cdb10(opWrite10, 0, 1)
			r.Direction = vscsiif.DMAToDevice
			r.Seg[0].Gref = badRef
		}),
		mk("read into read-only grant", rsltError, func(r *vscsiif.Request) { r.Seg[0].Gref = ro }),
		mk("bad length", rsltError, func(r *vscsiif.Request) { r.Seg[0].Length = 4097 }),
		mk("offset+len>4096", rsltError, func(r *vscsiif.Request) { r.Seg[0].Offset = 3800 }),
		mk("nr_segments 27 direct", rsltError, func(r *vscsiif.Request) { r.NrSegments = 27 }),
		mk("indirect 27 pages", rsltError, func(r *vscsiif.Request) { r.NrSegments = vscsiif.SGGrant | 27 }),
		mk("indirect no pages", rsltError, func(r *vscsiif.Request) { r.NrSegments = vscsiif.SGGrant }),
		mk("indirect too many segs", rsltError, func(r *vscsiif.Request) {
			r.NrSegments = vscsiif.SGGrant | 2
			r.Seg[0] = seg(indGoodRef(128), 0, 128*8)
			r.Seg[1] = seg(indGoodRef(1), 0, 8)
		}),
		mk("indirect length 7", rsltError, func(r *vscsiif.Request) {
			r.NrSegments = vscsiif.SGGrant | 1
			r.Seg[0] = seg(indGoodRef(1), 0, 7)
		}),
		mk("indirect bad gref", rsltError, func(r *vscsiif.Request) {
			r.NrSegments = vscsiif.SGGrant | 1
			r.Seg[0] = seg(badRef, 0, 8)
		}),
		mk("indirect entry crosses page", rsltError, func(r *vscsiif.Request) {
			r.NrSegments = vscsiif.SGGrant | 1
			r.Seg[0] = seg(indBadRef, 0, 8)
		}),
		mk("act 4", rsltError, func(r *vscsiif.Request) { r.Act = vscsiif.ActSCSISGPreset }),
		mk("act 99", rsltError, func(r *vscsiif.Request) { r.Act = 99 }),
		mk("act 0", rsltError, func(r *vscsiif.Request) { r.Act = 0 }),
		mk("cmd_len 0", rsltError, func(r *vscsiif.Request) { r.CmdLen = 0 }),
		mk("cmd_len 17", rsltError, func(r *vscsiif.Request) { r.CmdLen = 17 }),
		mk("dir 7", rsltError, func(r *vscsiif.Request) { r.Direction = 7 }),
		mk("unknown lun", rsltNoConn, func(r *vscsiif.Request) { r.LUN = 5 }),
		mk("unknown target", rsltNoConn, func(r *vscsiif.Request) { r.ID = 0xffff }),
		mk("panicking LUN", rsltError, func(r *vscsiif.Request) { r.ID = 1 }),
		mk("LUN rejects oversize transfer", vscsiif.Rslt(0, scsi.StatusCheckCondition), func(r *vscsiif.Request) {
			r.CDB = cdb10(opRead10, 0, 2)
		}),
	}
	for i, tc := range cases {
		tc.req.Rqid = uint16(i)
		f.send(tc.req)
		got := f.recv(1)
		if got[0].Rqid != uint16(i) || got[0].Rslt != tc.want {
			t.Errorf("%s: rqid %d rslt %#x, want rqid %d rslt %#x", tc.name, got[0].Rqid, got[0].Rslt, i, tc.want)
		}
	}
	f.quiet(20 * time.Millisecond)
	// All at once too: 16 hostile requests in one ring batch.
	var batch []vscsiif.Request
	for i := 0; i < 16; i++ {
		r := cases[i%len(cases)].req
		r.Rqid = uint16(100 + i)
		batch = append(batch, r)
	}
	f.send(batch...)
	seen := map[uint16]int{}
	for _, r := range f.recv(16) {
		seen[r.Rqid]++
	}
	for i := 0; i < 16; i++ {
		if seen[uint16(100+i)] != 1 {
			t.Fatalf("rqid %d answered %d times", 100+i, seen[uint16(100+i)])
		}
	}
	f.quiet(20 * time.Millisecond)
	// Still healthy.
	f.send(rw(200, opRead10, vscsiif.DMAFromDevice, 0, 1, seg(good, 0, 512)))
	expectRslt(t, f.recv(1)[0], 200, rsltGood)
	if c.Err() != nil {
		t.Fatal(c.Err())
	}
	// Healthy and idle: the port is unmasked again (lateeoi done).
	deadline := time.Now().Add(2 * time.Second)
	for f.events.Masked(c.Port()) {
		if time.Now().After(deadline) {
			t.Fatal("port still masked on an idle healthy ring")
		}
		time.Sleep(time.Millisecond)
	}
	if got := c.Stats().Rejected.Load(); got < uint64(len(cases)) {
		t.Fatalf("Rejected counter %d", got)
	}
}

// TestRingOverflowStopsRing: a req_prod jump is a protocol violation. The
// connection reports ErrRing, sends nothing, ignores later events, and Stop
// still releases everything.
func TestRingOverflowStopsRing(t *testing.T) {
	for _, prod := range []uint32{17, 1 << 31, 0xffffffff} {
		t.Run(fmt.Sprint(prod), func(t *testing.T) {
			f := newTestFront(t)
			f.table.Set(lun0, Entry{LUN: newMemLUN(8), Inline: true})
			c := f.start(1)
			f.front.SetReqProd(prod)
			f.guest.Notify(f.gport)
			select {
			case <-c.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("connection did not stop on a bogus req_prod")
			}
			if !errors.Is(c.Err(), ErrRing) {
				t.Fatalf("Err = %v", c.Err())
			}
			f.guest.Notify(f.gport)
			f.quiet(30 * time.Millisecond)
			if c.Stats().Responses.Load() != 0 {
				t.Fatal("responses written on a dead ring")
			}
			if !f.events.Masked(c.Port()) {
				t.Fatal("port unmasked after a ring protocol violation (P18)")
			}
			if err := c.Stop(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestAbortSlowCommand: a command stuck in a slow LUN does not stall other
// rqids, not even while an ABORT of it is pending; the ABORT answers the
// victim (DID_ABORT) and then itself (0x2002) only once the LUN returned
// (SAM: the TMF completes when the task left the task set), and the late
// result is dropped without touching the guest's page.
func TestAbortSlowCommand(t *testing.T) {
	f := newTestFront(t)
	slow := newSlowLUN()
	f.table.Set(lun0, Entry{LUN: slow})
	f.table.Set(Addr{0, 0, 1}, Entry{LUN: newMemLUN(8)})
	c := f.start(4)
	page, ref := f.dataPage(0xee, false)
	_, ref2 := f.dataPage(0, false)
	f.send(rw(3, opRead10, vscsiif.DMAFromDevice, 0, 1, seg(ref, 0, 512)))
	if tag := <-slow.started; tag != 3 {
		t.Fatalf("slow LUN got tag %d", tag)
	}
	fast := rw(5, opRead10, vscsiif.DMAFromDevice, 0, 1, seg(ref2, 0, 512))
	fast.LUN = 1
	f.send(fast)
	expectRslt(t, f.recv(1)[0], 5, rsltGood)

	f.send(vscsiif.Request{Rqid: 4, Act: vscsiif.ActSCSIAbort, RefRqid: 3})
	f.quiet(20 * time.Millisecond) // the victim is still in the LUN

	// Other rqids keep flowing while the ABORT waits.
	f.send(fast)
	expectRslt(t, f.recv(1)[0], 5, rsltGood)
	// Aborting something that is not in flight succeeds (SAM).
	f.send(vscsiif.Request{Rqid: 6, Act: vscsiif.ActSCSIAbort, RefRqid: 9})
	expectRslt(t, f.recv(1)[0], 6, vscsiif.RsltResetSuccess)

	close(slow.release)
	got := f.recv(2)
	expectRslt(t, got[0], 3, vscsiif.Rslt(vscsiif.HostAbort, 0))
	expectRslt(t, got[1], 4, vscsiif.RsltResetSuccess)
	f.quiet(30 * time.Millisecond)
	if page[0] != 0xee {
		t.Fatal("aborted command's data was copied to the guest")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := c.WaitIdle(ctx, lun0); err != nil {
		t.Fatal(err)
	}
	if n := c.Stats().Responses.Load(); n != 5 {
		t.Fatalf("%d responses, want 5", n)
	}
}

// TestLUNReset: RESET answers every command outstanding on that LUN with
// DID_RESET once the LUN returned them, then itself; other LUNs' commands
// are untouched and keep flowing meanwhile. RESET of an unknown address
// fails with 0x2003.
func TestLUNReset(t *testing.T) {
	f := newTestFront(t)
	a, b := newSlowLUN(), newSlowLUN()
	addrB := Addr{0, 1, 0}
	f.table.Set(lun0, Entry{LUN: a})
	f.table.Set(addrB, Entry{LUN: b})
	f.start(4)
	_, ref := f.dataPage(0, false)
	onB := rw(12, opRead10, vscsiif.DMAFromDevice, 0, 1, seg(ref, 0, 512))
	onB.ID = 1
	f.send(rw(10, opRead10, vscsiif.DMAFromDevice, 0, 1, seg(ref, 0, 512)),
		rw(11, opTUR, vscsiif.DMANone, 0, 0), onB)
	for i := 0; i < 2; i++ {
		<-a.started
	}
	<-b.started
	f.send(vscsiif.Request{Rqid: 13, Act: vscsiif.ActSCSIReset})
	f.quiet(20 * time.Millisecond) // victims still in the LUN

	f.send(vscsiif.Request{Rqid: 14, Act: vscsiif.ActSCSIReset, ID: 9})
	expectRslt(t, f.recv(1)[0], 14, vscsiif.RsltResetFailed)

	close(b.release)
	expectRslt(t, f.recv(1)[0], 12, rsltGood)
	close(a.release)
	got := f.recv(3)
	victims := map[uint16]bool{got[0].Rqid: true, got[1].Rqid: true}
	if !victims[10] || !victims[11] || got[0].Rslt != vscsiif.Rslt(vscsiif.HostReset, 0) || got[1].Rslt != got[0].Rslt {
		t.Fatalf("victim responses %+v %+v", got[0], got[1])
	}
	expectRslt(t, got[2], 13, vscsiif.RsltResetSuccess)
	f.quiet(20 * time.Millisecond)
}

// TestStopAnswersInFlight: teardown is bounded even with a hung LUN; the
// stuck command is answered, the ring unmapped and the port unbound.
func TestStopAnswersInFlight(t *testing.T) {
	f := newTestFront(t)
	slow := newSlowLUN()
	f.table.Set(lun0, Entry{LUN: slow})
	c := f.start(2)
	f.send(rw(1, opTUR, vscsiif.DMANone, 0, 0))
	<-slow.started
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Stop(ctx)
	if err == nil {
		t.Fatal("Stop did not report the hung LUN")
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("Stop took %v", time.Since(start))
	}
	expectRslt(t, f.recv(1)[0], 1, vscsiif.Rslt(vscsiif.HostAbort, 0))
	if f.grants.Mapped() != 0 || f.events.Bound() != 0 {
		t.Fatal("ring or port not released")
	}
	close(slow.release) // the late completion must not touch the unmapped ring
	time.Sleep(10 * time.Millisecond)
}

// TestHotAddRemove changes the table while the connection runs.
func TestHotAddRemove(t *testing.T) {
	f := newTestFront(t)
	c := f.start(2)
	addr := Addr{0, 2, 3}
	req := rw(1, opTUR, vscsiif.DMANone, 0, 0)
	req.ID, req.LUN = 2, 3
	f.send(req)
	expectRslt(t, f.recv(1)[0], 1, rsltNoConn)
	lun := newMemLUN(1)
	f.table.Set(addr, Entry{LUN: lun})
	f.send(req)
	expectRslt(t, f.recv(1)[0], 1, rsltGood)
	e, ok := f.table.Remove(addr)
	if !ok || e.LUN != lun {
		t.Fatal("Remove lost the entry")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := c.WaitIdle(ctx, addr); err != nil {
		t.Fatal(err)
	}
	f.send(req)
	expectRslt(t, f.recv(1)[0], 1, rsltNoConn)
}

// TestFullRingAndHoldoff keeps the ring full for many rounds in worker
// mode, checking one response per rqid and that the backend does not send
// an event per response when the frontend is busy.
func TestFullRingAndHoldoff(t *testing.T) {
	f := newTestFront(t)
	f.table.Set(lun0, Entry{LUN: newMemLUN(64)})
	c := f.start(4)
	var refs [16]uint32 // one page per rqid: concurrent reads into one page would race
	for i := range refs {
		_, refs[i] = f.dataPage(0, false)
	}
	const rounds = 200
	for round := 0; round < rounds; round++ {
		var reqs []vscsiif.Request
		for i := 0; i < 16; i++ {
			reqs = append(reqs, rw(uint16(i), opRead10, vscsiif.DMAFromDevice, uint32(i), 1, seg(refs[i], 0, 512)))
		}
		f.send(reqs...)
		seen := 0
		for _, r := range f.recv(16) {
			if r.Rslt != rsltGood {
				t.Fatalf("rqid %d rslt %#x", r.Rqid, r.Rslt)
			}
			seen |= 1 << r.Rqid
		}
		if seen != 0xffff {
			t.Fatalf("round %d: rqids seen %#x", round, seen)
		}
	}
	st := c.Stats()
	if st.Responses.Load() != rounds*16 {
		t.Fatalf("responses %d", st.Responses.Load())
	}
	t.Logf("notifications sent: %d for %d responses; events received %d", st.Notifies.Load(), st.Responses.Load(), st.Events.Load())
}

// TestServiceDoesNotAllocate: a full ring of 4 KiB reads and writes through
// an inline LUN allocates nothing once every slot has its buffer.
func TestServiceDoesNotAllocate(t *testing.T) {
	for _, withJournal := range []bool{false, true} {
		t.Run(fmt.Sprintf("journal=%v", withJournal), func(t *testing.T) { testServiceDoesNotAllocate(t, withJournal) })
	}
}

func testServiceDoesNotAllocate(t *testing.T, withJournal bool) {
	f := newTestFront(t)
	f.table.Set(lun0, Entry{LUN: nullLUN{}, Inline: true})
	cfg := f.config(1)
	if withJournal {
		cfg.JournalPath = f.journalPath()
	}
	c, err := newConn(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop(context.Background()) //nolint:errcheck
	var enc [16][vscsiif.RequestSize]byte
	for i := range enc {
		_, ref := f.dataPage(0, false)
		dir := uint8(vscsiif.DMAFromDevice)
		if i%2 == 1 {
			dir = vscsiif.DMAToDevice
		}
		r := rw(uint16(i), opRead10, dir, 0, 8, seg(ref, 0, 4096))
		r.Encode(enc[i][:])
	}
	rsp := make([]byte, vscsiif.ResponseSize)
	round := func() {
		for i := range enc {
			copy(f.front.RequestSlot(), enc[i][:])
			f.front.CommitRequest()
		}
		f.front.PushRequests()
		if !c.service() {
			t.Fatal(c.Err())
		}
		for f.front.UnconsumedResponses() > 0 {
			f.front.CopyResponse(rsp)
		}
	}
	for i := 0; i < 3; i++ { // warm up: every slot gets its buffer
		round()
	}
	if a := testing.AllocsPerRun(100, round); a != 0 {
		t.Fatalf("%.1f allocations per 16 requests", a)
	}
}
