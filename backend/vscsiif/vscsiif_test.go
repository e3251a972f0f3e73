package vscsiif

import (
	"bytes"
	"errors"
	"testing"
)

func sampleRequest() Request {
	r := Request{Rqid: 0x1234, Act: ActSCSICDB, CmdLen: 10, Timeout: 30,
		Channel: 0x0102, ID: 0x0304, LUN: 0x0506, RefRqid: 0x0708,
		Direction: DMAFromDevice, NrSegments: 2}
	copy(r.CDB[:], []byte{0x28, 0, 0, 0, 0, 1, 0, 0, 8, 0})
	r.Seg[0] = Segment{Gref: 0xdeadbeef, Offset: 512, Length: 3584}
	r.Seg[1] = Segment{Gref: 7, Offset: 0, Length: 512}
	return r
}

func TestRequestRoundTripAndOffsets(t *testing.T) {
	r := sampleRequest()
	b := make([]byte, RequestSize)
	for i := range b {
		b[i] = 0xee // reserved must be cleared by Encode
	}
	r.Encode(b)
	// Spot-check the wire bytes at the documented offsets (little-endian).
	want := map[int][]byte{
		0: {0x34, 0x12}, 2: {1}, 3: {10}, 4: {0x28}, 20: {30, 0}, 22: {2, 1}, 24: {4, 3},
		26: {6, 5}, 28: {8, 7}, 30: {2}, 31: {2}, 32: {0xef, 0xbe, 0xad, 0xde, 0, 2, 0, 14},
		40: {7, 0, 0, 0, 0, 0, 0, 2}, 240: make([]byte, 12),
	}
	for off, w := range want {
		if got := b[off : off+len(w)]; !bytes.Equal(got, w) {
			t.Errorf("offset %d: got % x want % x", off, got, w)
		}
	}
	var d Request
	DecodeRequest(b, &d)
	if d != r {
		t.Fatalf("round trip: got %+v want %+v", d, r)
	}
}

func TestResponseRoundTrip(t *testing.T) {
	r := Response{Rqid: 15, SenseLen: 18, Rslt: Rslt(HostOK, 2), Residual: 4096}
	r.Sense[0], r.Sense[2], r.Sense[7] = 0x70, 5, 10
	b := bytes.Repeat([]byte{0xaa}, ResponseSize)
	r.Encode(b)
	if b[100] != 2 || b[101] != 0 || b[104] != 0 || b[105] != 0x10 || b[3] != 18 || b[4] != 0x70 {
		t.Fatalf("wire bytes wrong: % x", b[:110])
	}
	if !bytes.Equal(b[RspOffReserved:], make([]byte, ResponseSize-RspOffReserved)) {
		t.Fatal("reserved not zeroed")
	}
	var d Response
	DecodeResponse(b, &d)
	if d != r {
		t.Fatalf("round trip: got %+v want %+v", d, r)
	}
}

func TestRslt(t *testing.T) {
	if got := Rslt(HostNoConnect, 0); got != 0x00010000 {
		t.Fatalf("DID_NO_CONNECT rslt = %#x", got)
	}
	if got := Rslt(HostError, 0); got != 0x00070000 {
		t.Fatalf("DID_ERROR rslt = %#x", got)
	}
	x := Rslt(HostReset, 0x18)
	if RsltHost(x) != HostReset || RsltStatus(x) != 0x18 {
		t.Fatalf("split %#x", x)
	}
}

// hostileRequests are the requests from the brief and pitfall P19; each must
// fail validation. Shared with the fuzz seed corpus.
func hostileRequests() map[string]Request {
	ok := sampleRequest()
	m := map[string]Request{}
	add := func(name string, f func(r *Request)) {
		r := ok
		f(&r)
		m[name] = r
	}
	add("act4", func(r *Request) { r.Act = ActSCSISGPreset })
	add("act99", func(r *Request) { r.Act = 99 })
	add("act0", func(r *Request) { r.Act = 0 })
	add("cmdlen0", func(r *Request) { r.CmdLen = 0 })
	add("cmdlen17", func(r *Request) { r.CmdLen = 17 })
	add("dir7", func(r *Request) { r.Direction = 7 })
	add("direct27", func(r *Request) { r.NrSegments = 27 })
	add("direct127", func(r *Request) { r.NrSegments = 127 })
	add("offlen4097", func(r *Request) { r.Seg[1] = Segment{Gref: 1, Offset: 4000, Length: 97} })
	add("len65535", func(r *Request) { r.Seg[0].Offset, r.Seg[0].Length = 0, 0xffff })
	add("indirect0", func(r *Request) { r.NrSegments = SGGrant })
	add("indirect27", func(r *Request) { r.NrSegments = SGGrant | 27 })
	add("indirectlen7", func(r *Request) {
		r.NrSegments = SGGrant | 1
		r.Seg[0] = Segment{Gref: 1, Length: 7}
	})
	add("indirectlen0", func(r *Request) {
		r.NrSegments = SGGrant | 1
		r.Seg[0] = Segment{Gref: 1, Length: 0}
	})
	add("indirectcross", func(r *Request) {
		r.NrSegments = SGGrant | 1
		r.Seg[0] = Segment{Gref: 1, Offset: 4092, Length: 8}
	})
	add("indirecttoomany", func(r *Request) { // 129 data segments
		r.NrSegments = SGGrant | 2
		r.Seg[0] = Segment{Gref: 1, Offset: 0, Length: 4096}
		r.Seg[1] = Segment{Gref: 2, Offset: 0, Length: 8}
	})
	return m
}

func TestValidateHostile(t *testing.T) {
	want := map[string]error{
		"act4": ErrUnknownAct, "act99": ErrUnknownAct, "act0": ErrUnknownAct,
		"cmdlen0": ErrCmdLen, "cmdlen17": ErrCmdLen, "dir7": ErrDirection,
		"direct27": ErrTooManySegs, "direct127": ErrTooManySegs, "offlen4097": ErrSegmentBounds,
		"len65535": ErrSegmentBounds, "indirect0": ErrNoIndirectPages, "indirect27": ErrTooManySegs,
		"indirectlen7": ErrIndirectLength, "indirectlen0": ErrIndirectLength,
		"indirectcross": ErrSegmentBounds, "indirecttoomany": ErrTooManyDataSegs,
	}
	for name, r := range hostileRequests() {
		err := r.Validate(MaxSegmentsLinux)
		if !errors.Is(err, want[name]) {
			t.Errorf("%s: got %v want %v", name, err, want[name])
		}
	}
}

func TestValidateGood(t *testing.T) {
	r := sampleRequest()
	if err := r.Validate(MaxSegmentsLinux); err != nil {
		t.Fatal(err)
	}
	// A piece list split across two pages (511 + 1 entries) is counted
	// exactly, and the limit is inclusive.
	r.NrSegments = SGGrant | 2
	r.Seg[0] = Segment{Gref: 1, Offset: 8, Length: 4088}
	r.Seg[1] = Segment{Gref: 2, Offset: 0, Length: 8}
	if got := r.IndirectDataSegs(); got != 512 {
		t.Fatalf("IndirectDataSegs = %d", got)
	}
	if err := r.Validate(512); err != nil {
		t.Fatalf("512 segs with limit 512: %v", err)
	}
	if err := r.Validate(511); !errors.Is(err, ErrTooManyDataSegs) {
		t.Fatalf("512 segs with limit 511: %v", err)
	}
	// ... and ABORT/RESET ignore the CDB fields entirely.
	for _, act := range []uint8{ActSCSIAbort, ActSCSIReset} {
		a := Request{Act: act, CmdLen: 200, Direction: 9, NrSegments: 0xff}
		if err := a.Validate(MaxSegmentsLinux); err != nil {
			t.Fatalf("act %d: %v", act, err)
		}
	}
	// Direct with 26 segments and zero-length ones is fine.
	d := Request{Act: ActSCSICDB, CmdLen: 6, Direction: DMANone, NrSegments: 26}
	if err := d.Validate(MaxSegmentsLinux); err != nil {
		t.Fatal(err)
	}
}

// FuzzDecodeRequest decodes and validates arbitrary slot contents: it must
// never panic, re-encoding must reproduce the header and the seg[] entries
// in use, and an accepted request must satisfy every invariant the data
// path relies on.
func FuzzDecodeRequest(f *testing.F) {
	b := make([]byte, RequestSize)
	r := sampleRequest()
	r.Encode(b)
	f.Add(append([]byte(nil), b...))
	for _, h := range hostileRequests() {
		h.Encode(b)
		f.Add(append([]byte(nil), b...))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		slot := make([]byte, RequestSize)
		copy(slot, in)
		var r Request
		DecodeRequest(slot, &r)
		out := make([]byte, RequestSize)
		r.Encode(out)
		// every header byte and every seg[] entry in use comes back; the
		// entries past nr_segments are not decoded (they come back zero)
		used := ReqOffSeg + min(r.SegCount(), SGTableSize)*SegmentSize
		if !bytes.Equal(out[:used], slot[:used]) {
			t.Fatalf("re-encode differs")
		}
		if !bytes.Equal(out[used:ReqOffReserved], make([]byte, ReqOffReserved-used)) {
			t.Fatalf("unused seg[] entries decoded")
		}
		if r.Validate(MaxSegmentsLinux) != nil || r.Act != ActSCSICDB {
			return
		}
		if r.CmdLen < 1 || r.CmdLen > MaxCommandSize || r.Direction > DMANone || r.SegCount() > SGTableSize {
			t.Fatalf("accepted bad header %+v", r)
		}
		for i := 0; i < r.SegCount(); i++ {
			if int(r.Seg[i].Offset)+int(r.Seg[i].Length) > PageSize {
				t.Fatalf("accepted segment %d %+v", i, r.Seg[i])
			}
		}
		if r.Indirect() && (r.SegCount() == 0 || r.IndirectDataSegs() > MaxSegmentsLinux) {
			t.Fatalf("accepted indirect %+v", r)
		}
	})
}
