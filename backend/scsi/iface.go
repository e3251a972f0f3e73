package scsi

type Direction uint8

const (
	DirNone Direction = iota
	DirToDevice
	DirFromDevice
	DirBidirectional
)

type Command struct {
	CDB  []byte // 1..16 bytes, already copied and length-checked
	Dir  Direction
	Data []byte // ToDevice: the guest's data; FromDevice: buffer to fill (len = what the guest offered)
	Tag  uint64 // rqid, for ABORT matching
}
type Result struct {
	Status  uint8  // SAM status (0 GOOD, 2 CHECK CONDITION, 8 BUSY, ...)
	Host    uint8  // host byte (XEN_VSCSIIF_RSLT_HOST_*), 0 normally
	Sense   []byte // fixed-format sense when Status == CHECK CONDITION
	DataLen int    // FromDevice: bytes of Data filled; the residual is len(Data)-DataLen
}
type LUN interface {
	Execute(cmd *Command, res *Result) // must not retain cmd.Data after return; never panics on any CDB
	Close() error
}
