package vscsiif

// Byte offsets inside struct vscsiif_request. Exported so the layout test
// (tests/vscsiif-layout) can compare each one with offsetof() in C.
const (
	ReqOffRqid      = 0
	ReqOffAct       = 2
	ReqOffCmdLen    = 3
	ReqOffCmnd      = 4
	ReqOffTimeout   = 20
	ReqOffChannel   = 22
	ReqOffID        = 24
	ReqOffLUN       = 26
	ReqOffRefRqid   = 28
	ReqOffDirection = 30
	ReqOffNrSegs    = 31
	ReqOffSeg       = 32
	ReqOffReserved  = ReqOffSeg + SGTableSize*SegmentSize // 240
)

// Byte offsets inside struct vscsiif_response.
const (
	RspOffRqid     = 0
	RspOffAct      = 2
	RspOffSenseLen = 3
	RspOffSense    = 4
	RspOffRslt     = RspOffSense + SenseBufferSize // 100
	RspOffResidual = 104
	RspOffReserved = 108
)

// Byte offsets inside struct scsiif_request_segment.
const (
	SegOffGref   = 0
	SegOffOffset = 4
	SegOffLength = 6
)
