package scsi

import (
	"encoding/binary"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/govscsi/govscsi/backend/store"
)

func newRAMDisk(t testing.TB, size int64, sopts store.RAMOptions, opts DiskOptions) (*Disk, *store.RAM) {
	t.Helper()
	r, err := store.NewRAM(size, sopts)
	if err != nil {
		t.Fatal(err)
	}
	if err := opts.Validate(r); err != nil {
		t.Fatal(err)
	}
	d := NewDisk(r, opts).(*Disk)
	t.Cleanup(func() { d.Close() })
	return d, r
}

// run runs one command and checks the invariants every Result must meet.
func run(t testing.TB, l LUN, dir Direction, data []byte, cdb ...byte) Result {
	t.Helper()
	var res Result
	l.Execute(&Command{CDB: cdb, Dir: dir, Data: data}, &res)
	checkInvariants(t, cdb, data, &res)
	return res
}

func checkInvariants(t testing.TB, cdb, data []byte, res *Result) {
	t.Helper()
	if res.DataLen < 0 || res.DataLen > len(data) {
		t.Fatalf("cdb % x: DataLen %d outside 0..%d", cdb, res.DataLen, len(data))
	}
	switch res.Status {
	case StatusGood:
		if res.Sense != nil {
			t.Fatalf("cdb % x: GOOD with sense % x", cdb, res.Sense)
		}
	case StatusCheckCondition:
		if len(res.Sense) != FixedSenseLen || !ValidFixedSense(res.Sense) || res.Sense[7] != 10 {
			t.Fatalf("cdb % x: bad sense % x", cdb, res.Sense)
		}
		if res.Sense[2]&0x0F == KeyNoSense {
			t.Fatalf("cdb % x: CHECK CONDITION with NO SENSE", cdb)
		}
		if res.DataLen != 0 {
			t.Fatalf("cdb % x: CHECK CONDITION with DataLen %d", cdb, res.DataLen)
		}
	case StatusReservationConflict:
		if res.Sense != nil || res.DataLen != 0 {
			t.Fatalf("cdb % x: RESERVATION CONFLICT with sense % x and %d bytes", cdb, res.Sense, res.DataLen)
		}
	default:
		t.Fatalf("cdb % x: unexpected status %#x", cdb, res.Status)
	}
	if res.Host != 0 {
		t.Fatalf("cdb % x: host byte %d from an emulated LUN", cdb, res.Host)
	}
}

func wantGood(t testing.TB, res Result) {
	t.Helper()
	if res.Status != StatusGood {
		t.Fatalf("status %#x sense % x, want GOOD", res.Status, res.Sense)
	}
}

func wantSense(t testing.TB, res Result, key, asc, ascq byte) {
	t.Helper()
	if res.Status != StatusCheckCondition {
		t.Fatalf("status %#x, want CHECK CONDITION %x/%02x/%02x", res.Status, key, asc, ascq)
	}
	if k, a, q := res.Sense[2]&0x0F, res.Sense[12], res.Sense[13]; k != key || a != asc || q != ascq {
		t.Fatalf("sense %x/%02x/%02x, want %x/%02x/%02x", k, a, q, key, asc, ascq)
	}
}

// fieldPointer returns the sense-key specific field pointer (cd, byte) or ok=false.
func fieldPointer(res Result) (cd bool, field int, ok bool) {
	s := res.Sense
	if s[15]&0x80 == 0 {
		return false, 0, false
	}
	return s[15]&0x40 != 0, int(binary.BigEndian.Uint16(s[16:])), true
}

func wantField(t testing.TB, res Result, field int) {
	t.Helper()
	cd, f, ok := fieldPointer(res)
	if !ok || !cd || f != field {
		t.Fatalf("field pointer cd=%v byte=%d ok=%v, want CDB byte %d", cd, f, ok, field)
	}
}

func info(res Result) (uint32, bool) {
	return binary.BigEndian.Uint32(res.Sense[3:]), res.Sense[0]&0x80 != 0
}

// CDB builders.
func cdb6(op byte, lba uint32, n byte) []byte {
	return []byte{op, byte(lba>>16) & 0x1F, byte(lba >> 8), byte(lba), n, 0}
}

func cdb10(op, flags byte, lba uint32, n uint16) []byte {
	b := make([]byte, 10)
	b[0], b[1] = op, flags
	binary.BigEndian.PutUint32(b[2:], lba)
	binary.BigEndian.PutUint16(b[7:], n)
	return b
}

func cdb12(op, flags byte, lba, n uint32) []byte {
	b := make([]byte, 12)
	b[0], b[1] = op, flags
	binary.BigEndian.PutUint32(b[2:], lba)
	binary.BigEndian.PutUint32(b[6:], n)
	return b
}

func cdb16(op, flags byte, lba uint64, n uint32) []byte {
	b := make([]byte, 16)
	b[0], b[1] = op, flags
	binary.BigEndian.PutUint64(b[2:], lba)
	binary.BigEndian.PutUint32(b[10:], n)
	return b
}

func inquiry(evpd bool, page byte, alloc uint16) []byte {
	b := []byte{OpInquiry, 0, page, byte(alloc >> 8), byte(alloc), 0}
	if evpd {
		b[1] = 1
	}
	return b
}

func rc16(alloc uint32) []byte {
	b := make([]byte, 16)
	b[0], b[1] = OpServiceActionIn16, SAReadCapacity16
	binary.BigEndian.PutUint32(b[10:], alloc)
	return b
}

func rsoc(opts byte, op byte, sa uint16, alloc uint32) []byte {
	b := make([]byte, 12)
	b[0], b[1], b[2], b[3] = OpMaintenanceIn, SAReportSupportedOps, opts, op
	binary.BigEndian.PutUint16(b[4:], sa)
	binary.BigEndian.PutUint32(b[6:], alloc)
	return b
}

func reportLUNsCDB(sel byte, alloc uint32) []byte {
	b := make([]byte, 12)
	b[0], b[2] = OpReportLUNs, sel
	binary.BigEndian.PutUint32(b[6:], alloc)
	return b
}

// hookStore wraps a store to count syncs and FUA writes and inject errors.
type hookStore struct {
	store.Store
	syncs, fuas, writes atomic.Int64
	readErr, writeErr   error
	size                atomic.Int64
}

func (h *hookStore) Size() int64 {
	if s := h.size.Load(); s != 0 {
		return s
	}
	return h.Store.Size()
}

func (h *hookStore) ReadAt(p []byte, off int64) (int, error) {
	if h.readErr != nil {
		return 0, h.readErr
	}
	return h.Store.ReadAt(p, off)
}

func (h *hookStore) WriteAt(p []byte, off int64) (int, error) {
	if h.writeErr != nil {
		return 0, h.writeErr
	}
	h.writes.Add(1)
	return h.Store.WriteAt(p, off)
}

func (h *hookStore) WriteAtFUA(p []byte, off int64) (int, error) {
	if h.writeErr != nil {
		return 0, h.writeErr
	}
	h.fuas.Add(1)
	return h.Store.WriteAt(p, off)
}

func (h *hookStore) Sync() error {
	if errors.Is(h.writeErr, errSyncFails) {
		return h.writeErr
	}
	h.syncs.Add(1)
	return h.Store.Sync()
}

var errSyncFails = errors.New("sync fails")

// newUnit is a logical unit without saved state.
func newUnit(t testing.TB) *LogicalUnit {
	t.Helper()
	u, err := NewLogicalUnit(LogicalUnitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return u
}
