package vscsiif

import "encoding/binary"

var le = binary.LittleEndian

// Segment is one scsiif_request_segment: Length bytes at Offset in the page
// granted as Gref. In indirect mode a request's segments point at pages that
// hold arrays of further Segments.
type Segment struct {
	Gref   uint32
	Offset uint16
	Length uint16
}

// DecodeSegment reads a segment from b[0:8].
func DecodeSegment(b []byte) Segment {
	_ = b[SegmentSize-1]
	return Segment{
		Gref:   le.Uint32(b[SegOffGref:]),
		Offset: le.Uint16(b[SegOffOffset:]),
		Length: le.Uint16(b[SegOffLength:]),
	}
}

// Encode writes s into b[0:8].
func (s Segment) Encode(b []byte) {
	_ = b[SegmentSize-1]
	le.PutUint32(b[SegOffGref:], s.Gref)
	le.PutUint16(b[SegOffOffset:], s.Offset)
	le.PutUint16(b[SegOffLength:], s.Length)
}

// Request is a decoded struct vscsiif_request. It is a plain value: decode it
// from a private copy of the ring slot and validate it afterwards.
type Request struct {
	Rqid       uint16
	Act        uint8
	CmdLen     uint8
	CDB        [MaxCommandSize]byte
	Timeout    uint16 // deprecated timeout_per_command; ignored by backends
	Channel    uint16
	ID         uint16
	LUN        uint16
	RefRqid    uint16
	Direction  uint8
	NrSegments uint8 // raw byte including the SGGrant flag
	Seg        [SGTableSize]Segment
}

// Indirect reports whether seg[] holds indirect SG pages (VSCSIIF_SG_GRANT).
func (r *Request) Indirect() bool { return r.NrSegments&SGGrant != 0 }

// SegCount is the number of seg[] entries in use (without the SGGrant flag).
func (r *Request) SegCount() int { return int(r.NrSegments & SGCountMask) }

// DecodeRequest decodes b[0:RequestSize] into r. Each byte of b is read at
// most once.
func DecodeRequest(b []byte, r *Request) {
	_ = b[RequestSize-1]
	r.Rqid = le.Uint16(b[ReqOffRqid:])
	r.Act = b[ReqOffAct]
	r.CmdLen = b[ReqOffCmdLen]
	copy(r.CDB[:], b[ReqOffCmnd:ReqOffCmnd+MaxCommandSize])
	r.Timeout = le.Uint16(b[ReqOffTimeout:])
	r.Channel = le.Uint16(b[ReqOffChannel:])
	r.ID = le.Uint16(b[ReqOffID:])
	r.LUN = le.Uint16(b[ReqOffLUN:])
	r.RefRqid = le.Uint16(b[ReqOffRefRqid:])
	r.Direction = b[ReqOffDirection]
	r.NrSegments = b[ReqOffNrSegs]
	// Only the entries in use are decoded (the rest are zeroed): decoding
	// all 26 on every request was a sixth of the hot path's CPU. A count
	// above SGTableSize fails Validate; up to it, nothing reads further.
	n := min(r.SegCount(), SGTableSize)
	for i := 0; i < n; i++ {
		r.Seg[i] = DecodeSegment(b[ReqOffSeg+i*SegmentSize:])
	}
	clear(r.Seg[n:])
}

// Encode writes r into b[0:RequestSize] (a frontend's view; used by tests
// and tools). The reserved words are zeroed.
func (r *Request) Encode(b []byte) {
	_ = b[RequestSize-1]
	le.PutUint16(b[ReqOffRqid:], r.Rqid)
	b[ReqOffAct] = r.Act
	b[ReqOffCmdLen] = r.CmdLen
	copy(b[ReqOffCmnd:ReqOffCmnd+MaxCommandSize], r.CDB[:])
	le.PutUint16(b[ReqOffTimeout:], r.Timeout)
	le.PutUint16(b[ReqOffChannel:], r.Channel)
	le.PutUint16(b[ReqOffID:], r.ID)
	le.PutUint16(b[ReqOffLUN:], r.LUN)
	le.PutUint16(b[ReqOffRefRqid:], r.RefRqid)
	b[ReqOffDirection] = r.Direction
	b[ReqOffNrSegs] = r.NrSegments
	for i := range r.Seg {
		r.Seg[i].Encode(b[ReqOffSeg+i*SegmentSize:])
	}
	clear(b[ReqOffReserved:RequestSize])
}

// Response is a decoded struct vscsiif_response.
type Response struct {
	Rqid     uint16
	Act      uint8 // deprecated; backends write 0
	SenseLen uint8
	Sense    [SenseBufferSize]byte
	Rslt     int32
	Residual uint32
}

// Encode writes r into b[0:ResponseSize], zeroing the reserved words so no
// stale request bytes are left in the slot.
func (r *Response) Encode(b []byte) {
	_ = b[ResponseSize-1]
	le.PutUint16(b[RspOffRqid:], r.Rqid)
	b[RspOffAct] = r.Act
	b[RspOffSenseLen] = r.SenseLen
	copy(b[RspOffSense:RspOffSense+SenseBufferSize], r.Sense[:])
	le.PutUint32(b[RspOffRslt:], uint32(r.Rslt))
	le.PutUint32(b[RspOffResidual:], r.Residual)
	clear(b[RspOffReserved:ResponseSize])
}

// DecodeResponse decodes b[0:ResponseSize] into r (a frontend's view).
func DecodeResponse(b []byte, r *Response) {
	_ = b[ResponseSize-1]
	r.Rqid = le.Uint16(b[RspOffRqid:])
	r.Act = b[RspOffAct]
	r.SenseLen = b[RspOffSenseLen]
	copy(r.Sense[:], b[RspOffSense:RspOffSense+SenseBufferSize])
	r.Rslt = int32(le.Uint32(b[RspOffRslt:]))
	r.Residual = le.Uint32(b[RspOffResidual:])
}
