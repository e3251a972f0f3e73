package scsi

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/govscsi/govscsi/backend/store"
)

var be16, be32, be64 = binary.BigEndian.Uint16, binary.BigEndian.Uint32, binary.BigEndian.Uint64

func TestUnsupportedOpcodesAreRejectedCleanly(t *testing.T) {
	d, _ := newRAMDisk(t, 1<<20, store.RAMOptions{}, DiskOptions{})
	for _, op := range []byte{0x04 /*FORMAT UNIT*/, OpWriteBuffer, 0x3C, 0x83 /* EXTENDED COPY */, 0xC0, 0xFF, 0x7F,
		OpUnmap /* no discard on this disk */} {
		cdb := make([]byte, 16)
		cdb[0] = op
		res := run(t, d, DirFromDevice, make([]byte, 512), cdb...)
		wantSense(t, res, KeyIllegalRequest, 0x20, 0x00)
		wantField(t, res, 0)
	}
	// Empty and short CDBs never panic.
	wantSense(t, run(t, d, DirNone, nil), KeyIllegalRequest, 0x20, 0)
	wantSense(t, run(t, d, DirNone, nil, OpRead16, 0, 0), KeyIllegalRequest, 0x24, 0)
	// NACA is not supported.
	wantSense(t, run(t, d, DirNone, nil, OpTestUnitReady, 0, 0, 0, 0, 0x04), KeyIllegalRequest, 0x24, 0)
	wantGood(t, run(t, d, DirNone, nil, OpTestUnitReady, 0, 0, 0, 0, 0))
	wantGood(t, run(t, d, DirNone, nil, OpStartStopUnit, 0, 0, 0, 1, 0))
}

func TestInquiryStandard(t *testing.T) {
	d, _ := newRAMDisk(t, 1<<20, store.RAMOptions{}, DiskOptions{Product: "TESTDISK", Revision: "1.2"})
	buf := make([]byte, 255)
	res := run(t, d, DirFromDevice, buf, inquiry(false, 0, 255)...)
	wantGood(t, res)
	b := buf[:res.DataLen]
	if res.DataLen != stdInquiryLen || int(b[4])+5 != res.DataLen {
		t.Fatalf("length %d, additional length %d", res.DataLen, b[4])
	}
	if b[0] != 0 || b[2] != 6 || b[3]&0x0F != 2 || b[7]&0x02 == 0 {
		t.Fatalf("header % x", b[:8])
	}
	if v, p, r := string(b[8:16]), string(b[16:32]), string(b[32:36]); v != "GOVSCSI " || p != "TESTDISK        " || r != "1.2 " {
		t.Fatalf("identity %q %q %q", v, p, r)
	}
	if be16(b[60:]) != verSPC4 || be16(b[62:]) != verSBC3 {
		t.Fatalf("version descriptors % x", b[58:74])
	}
	// Truncation to the allocation length and to the buffer.
	for _, alloc := range []uint16{0, 5, 36, 73} {
		res := run(t, d, DirFromDevice, make([]byte, 255), inquiry(false, 0, alloc)...)
		wantGood(t, res)
		if res.DataLen != int(alloc) {
			t.Fatalf("alloc %d: DataLen %d", alloc, res.DataLen)
		}
	}
	small := make([]byte, 10)
	if res := run(t, d, DirFromDevice, small, inquiry(false, 0, 255)...); res.DataLen != 10 || string(small[8:10]) != "GO" {
		t.Fatalf("short buffer: DataLen %d % x", res.DataLen, small)
	}
	// Direction NONE: nothing is copied.
	if res := run(t, d, DirNone, make([]byte, 64), inquiry(false, 0, 64)...); res.DataLen != 0 {
		t.Fatalf("DirNone got %d bytes", res.DataLen)
	}
	res = run(t, d, DirFromDevice, buf, inquiry(false, 0x80, 255)...)
	wantSense(t, res, KeyIllegalRequest, 0x24, 0)
	wantField(t, res, 2)
	// The obsolete CMDDT bit is ignored (as LIO does): standard data, or
	// with EVPD the VPD page.
	cmddt := inquiry(false, 0, 255)
	cmddt[1] = 2
	if res := run(t, d, DirFromDevice, buf, cmddt...); res.Status != StatusGood || res.DataLen != stdInquiryLen {
		t.Fatalf("CMDDT: status %#x, %d bytes", res.Status, res.DataLen)
	}
	cmddt[1] = 3
	if res := run(t, d, DirFromDevice, buf, cmddt...); res.Status != StatusGood || buf[1] != 0x00 || buf[4] != 0x00 {
		t.Fatalf("CMDDT+EVPD page 0: status %#x, % x", res.Status, buf[:8])
	}
	// TPGS 01b: implicit ALUA (REPORT TARGET PORT GROUPS answers).
	run(t, d, DirFromDevice, buf, inquiry(false, 0, 255)...)
	if buf[5]&0x30 != 0x10 {
		t.Fatalf("TPGS bits %#x", buf[5])
	}
}

func vpd(t *testing.T, d LUN, page byte) []byte {
	t.Helper()
	buf := make([]byte, 512)
	res := run(t, d, DirFromDevice, buf, inquiry(true, page, 512)...)
	wantGood(t, res)
	b := buf[:res.DataLen]
	if len(b) < 4 || b[1] != page || int(be16(b[2:]))+4 != len(b) {
		t.Fatalf("VPD %#x header % x (len %d)", page, b[:min(len(b), 4)], len(b))
	}
	return b
}

func TestInquiryVPD(t *testing.T) {
	for _, lbs := range []int{512, 4096} {
		for _, disc := range []bool{false, true} {
			t.Run(fmt.Sprintf("lbs%d-discard%v", lbs, disc), func(t *testing.T) {
				d, _ := newRAMDisk(t, 8<<20, store.RAMOptions{LogicalBlockSize: lbs, PhysicalBlockSize: 4096}, DiskOptions{ID: "vhost0/0:0:1", Discard: disc})
				pages := vpd(t, d, 0x00)[4:]
				if !bytes.Equal(pages, []byte{0x00, 0x80, 0x83, 0x86, 0xB0, 0xB1, 0xB2}) {
					t.Fatalf("supported pages % x", pages)
				}
				for _, p := range pages {
					vpd(t, d, p)
				}
				serial := string(vpd(t, d, 0x80)[4:])
				if len(serial) != 16 {
					t.Fatalf("serial %q", serial)
				}
				ids := vpd(t, d, 0x83)[4:]
				// NAA designator first: binary, LU association, type 3, length 8, NAA 3.
				if ids[0] != 0x01 || ids[1] != 0x03 || ids[3] != 8 || ids[4]>>4 != 3 {
					t.Fatalf("NAA designator % x", ids[:12])
				}
				t10 := ids[12:]
				if t10[0]&0x0F != 2 || t10[1]&0x0F != 1 || string(t10[4:4+t10[3]]) != "GOVSCSI "+serial {
					t.Fatalf("T10 designator % x", t10)
				}
				// Relative target port 1 and target port group 1 (target port
				// association), which scsi_dh_alua looks for.
				port := t10[4+t10[3]:]
				if !bytes.Equal(port, []byte{0x01, 0x14, 0, 4, 0, 0, 0, 1, 0x01, 0x15, 0, 4, 0, 0, 0, 1}) {
					t.Fatalf("target port designators % x", port)
				}
				ext := vpd(t, d, 0x86)
				if len(ext) != 64 || ext[5] != 0x07 || ext[6]&0x01 == 0 || ext[7]&0x01 == 0 {
					t.Fatalf("extended INQUIRY % x", ext[:16])
				}
				bl := vpd(t, d, 0xB0)
				if len(bl) != 64 || bl[4]&1 == 0 {
					t.Fatalf("block limits len %d WSNZ %v", len(bl), bl[4]&1)
				}
				if got, want := be32(bl[8:]), uint32(AdvertisedTransferBytes/lbs); got != want {
					t.Fatalf("max transfer %d, want %d", got, want)
				}
				if got, want := be32(bl[12:]), uint32(AdvertisedTransferBytes/lbs); got != want {
					t.Fatalf("optimal transfer %d, want %d", got, want)
				}
				if got, want := be16(bl[6:]), uint16(4096/lbs); got != want {
					t.Fatalf("optimal granularity %d, want %d", got, want)
				}
				if disc != (be32(bl[20:]) != 0 && be32(bl[24:]) == maxUnmapDescriptors) {
					t.Fatalf("unmap limits % x with discard=%v", bl[20:28], disc)
				}
				if be64(bl[36:]) != 1<<20 {
					t.Fatalf("max write same %d", be64(bl[36:]))
				}
				b1 := vpd(t, d, 0xB1)
				if be16(b1[4:]) != 1 || len(b1) != 64 {
					t.Fatalf("B1 rotation %d", be16(b1[4:]))
				}
				b2 := vpd(t, d, 0xB2)
				if disc != (b2[5]&0xE0 == 0xE0 && b2[5]&0x04 != 0 && b2[6]&7 == 2) {
					t.Fatalf("B2 % x with discard=%v", b2, disc)
				}
			})
		}
	}
	// Identifiers are stable per ID and differ between IDs.
	a, _ := newRAMDisk(t, 1<<20, store.RAMOptions{}, DiskOptions{ID: "a"})
	a2, _ := newRAMDisk(t, 1<<20, store.RAMOptions{}, DiskOptions{ID: "a"})
	b, _ := newRAMDisk(t, 1<<20, store.RAMOptions{}, DiskOptions{ID: "b"})
	if !bytes.Equal(vpd(t, a, 0x83), vpd(t, a2, 0x83)) || bytes.Equal(vpd(t, a, 0x83), vpd(t, b, 0x83)) {
		t.Fatal("device identifiers must be stable per ID and unique across IDs")
	}
	n, _ := newRAMDisk(t, 1<<20, store.RAMOptions{}, DiskOptions{NAA: 0x5000c50012345678, Serial: "SER1"})
	if ids := vpd(t, n, 0x83); be64(ids[8:]) != 0x5000c50012345678 || string(vpd(t, n, 0x80)[4:]) != "SER1" {
		t.Fatalf("explicit NAA/serial not used: % x", ids)
	}
	res := run(t, a, DirFromDevice, make([]byte, 64), inquiry(true, 0x42, 64)...)
	wantSense(t, res, KeyIllegalRequest, 0x24, 0)
	wantField(t, res, 2)
	// Truncation of a VPD page.
	if res := run(t, a, DirFromDevice, make([]byte, 64), inquiry(true, 0xB0, 8)...); res.DataLen != 8 {
		t.Fatalf("VPD truncation: %d", res.DataLen)
	}
}

func TestReadCapacity(t *testing.T) {
	d, _ := newRAMDisk(t, 1<<20, store.RAMOptions{PhysicalBlockSize: 4096}, DiskOptions{Discard: true})
	buf := make([]byte, 32)
	res := run(t, d, DirFromDevice, buf, OpReadCapacity10, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	wantGood(t, res)
	if res.DataLen != 8 || be32(buf) != 2047 || be32(buf[4:]) != 512 {
		t.Fatalf("RC10 % x", buf[:8])
	}
	res = run(t, d, DirFromDevice, buf, rc16(32)...)
	wantGood(t, res)
	if res.DataLen != 32 || be64(buf) != 2047 || be32(buf[8:]) != 512 || buf[13]&0x0F != 3 || buf[14]&0xC0 != 0xC0 {
		t.Fatalf("RC16 % x", buf)
	}
	if res := run(t, d, DirFromDevice, buf, rc16(12)...); res.DataLen != 12 {
		t.Fatalf("RC16 truncation %d", res.DataLen)
	}
	res = run(t, d, DirFromDevice, buf, OpReadCapacity10, 0, 0, 0, 0, 1, 0, 0, 0, 0)
	wantSense(t, res, KeyIllegalRequest, 0x24, 0) // LBA without PMI
	bad := rc16(32)
	bad[1] = 0x11 // unknown service action
	res = run(t, d, DirFromDevice, buf, bad...)
	wantSense(t, res, KeyIllegalRequest, 0x24, 0)
	wantField(t, res, 1)

	// A disk beyond 2 TiB at 512 bytes: RC10 says 0xFFFFFFFF, RC16 the truth.
	big, _ := newRAMDisk(t, 3<<40, store.RAMOptions{}, DiskOptions{})
	wantGood(t, run(t, big, DirFromDevice, buf, OpReadCapacity10, 0, 0, 0, 0, 0, 0, 0, 0, 0))
	if be32(buf) != 0xFFFFFFFF {
		t.Fatalf("RC10 on 3 TiB: %#x", be32(buf))
	}
	wantGood(t, run(t, big, DirFromDevice, buf, rc16(32)...))
	if be64(buf) != 3<<40/512-1 || buf[14]&0x80 != 0 {
		t.Fatalf("RC16 on 3 TiB: % x", buf)
	}
}

// rwOp is one READ/WRITE form.
type rwOp struct {
	name        string
	read, write func(lba uint64, n uint32, fua bool) []byte
	maxLBA      uint64
	maxN        uint32
}

var rwOps = []rwOp{
	{"6", func(l uint64, n uint32, _ bool) []byte { return cdb6(OpRead6, uint32(l), byte(n)) },
		func(l uint64, n uint32, _ bool) []byte { return cdb6(OpWrite6, uint32(l), byte(n)) }, 1<<21 - 1, 255},
	{"10", func(l uint64, n uint32, f bool) []byte { return cdb10(OpRead10, fuaBit(f), uint32(l), uint16(n)) },
		func(l uint64, n uint32, f bool) []byte { return cdb10(OpWrite10, fuaBit(f), uint32(l), uint16(n)) }, 1<<32 - 1, 65535},
	{"12", func(l uint64, n uint32, f bool) []byte { return cdb12(OpRead12, fuaBit(f), uint32(l), n) },
		func(l uint64, n uint32, f bool) []byte { return cdb12(OpWrite12, fuaBit(f), uint32(l), n) }, 1<<32 - 1, 1<<32 - 1},
	{"16", func(l uint64, n uint32, f bool) []byte { return cdb16(OpRead16, fuaBit(f), l, n) },
		func(l uint64, n uint32, f bool) []byte { return cdb16(OpWrite16, fuaBit(f), l, n) }, 1<<64 - 1, 1<<32 - 1},
}

func fuaBit(f bool) byte {
	if f {
		return 0x08
	}
	return 0
}

// TestReadWriteProperty: random writes through every CDB form (with and
// without FUA) read back exactly through every other form.
func TestReadWriteProperty(t *testing.T) {
	for _, lbs := range []int{512, 4096} {
		t.Run(fmt.Sprint(lbs), func(t *testing.T) {
			const blocks = 2048
			r, _ := store.NewRAM(int64(blocks*lbs), store.RAMOptions{LogicalBlockSize: lbs})
			h := &hookStore{Store: r}
			d := NewDisk(h, DiskOptions{WriteCache: true}).(*Disk)
			shadow := make([]byte, blocks*lbs)
			rng := rand.New(rand.NewPCG(uint64(lbs), 7))
			maxN := MaxTransferBytes / lbs
			fuaWrites := int64(0)
			for i := 0; i < 400; i++ {
				op := rwOps[rng.IntN(len(rwOps))]
				n := 1 + rng.IntN(min(maxN, int(op.maxN), 64))
				lba := rng.IntN(blocks - n + 1)
				fua := rng.IntN(2) == 0 && op.name != "6"
				data := make([]byte, n*lbs)
				for j := range data {
					data[j] = byte(rng.Uint32())
				}
				wantGood(t, run(t, d, DirToDevice, data, op.write(uint64(lba), uint32(n), fua)...))
				if fua {
					fuaWrites++
				}
				copy(shadow[lba*lbs:], data)
				rop := rwOps[rng.IntN(len(rwOps))]
				rn := 1 + rng.IntN(min(maxN, int(rop.maxN), 64))
				rlba := rng.IntN(blocks - rn + 1)
				got := make([]byte, rn*lbs+100) // larger buffer: residual
				res := run(t, d, DirFromDevice, got, rop.read(uint64(rlba), uint32(rn), rng.IntN(2) == 0)...)
				wantGood(t, res)
				if res.DataLen != rn*lbs || !bytes.Equal(got[:rn*lbs], shadow[rlba*lbs:(rlba+rn)*lbs]) {
					t.Fatalf("iteration %d: READ(%s) lba %d n %d differs from what was written", i, rop.name, rlba, rn)
				}
			}
			if h.fuas.Load() != fuaWrites {
				t.Fatalf("%d FUA writes reached the store's FUA path, want %d", h.fuas.Load(), fuaWrites)
			}
			// READ(6) with transfer length 0 moves 256 blocks.
			got := make([]byte, 256*lbs)
			if lbs == 512 {
				res := run(t, d, DirFromDevice, got, cdb6(OpRead6, 0, 0)...)
				wantGood(t, res)
				if res.DataLen != 256*lbs || !bytes.Equal(got, shadow[:256*lbs]) {
					t.Fatalf("READ(6) len 0: DataLen %d", res.DataLen)
				}
			}
		})
	}
}

func TestWriteCacheOffMakesWritesDurable(t *testing.T) {
	r, _ := store.NewRAM(1<<20, store.RAMOptions{})
	h := &hookStore{Store: r}
	d := NewDisk(h, DiskOptions{WriteCache: false})
	wantGood(t, run(t, d, DirToDevice, make([]byte, 512), cdb10(OpWrite10, 0, 0, 1)...))
	if h.fuas.Load() != 1 || h.writes.Load() != 0 {
		t.Fatalf("WCE=0: fua %d plain %d", h.fuas.Load(), h.writes.Load())
	}
	wantGood(t, run(t, d, DirNone, nil, cdb10(OpSyncCache10, 0, 0, 0)...))
	wantGood(t, run(t, d, DirNone, nil, cdb16(OpSyncCache16, 2, 5, 10)...))
	if h.syncs.Load() != 2 {
		t.Fatalf("syncs %d", h.syncs.Load())
	}
	wantSense(t, run(t, d, DirNone, nil, cdb10(OpSyncCache10, 0, 2040, 9)...), KeyIllegalRequest, 0x21, 0)
}

func TestBoundaries(t *testing.T) {
	d, _ := newRAMDisk(t, 1<<20, store.RAMOptions{}, DiskOptions{}) // 2048 blocks
	buf := make([]byte, 2*512)
	for _, op := range rwOps {
		wantGood(t, run(t, d, DirFromDevice, buf, op.read(2047, 1, false)...))
		wantGood(t, run(t, d, DirToDevice, buf[:512], op.write(2047, 1, false)...))
		wantSense(t, run(t, d, DirFromDevice, buf, op.read(2048, 1, false)...), KeyIllegalRequest, 0x21, 0)
		wantSense(t, run(t, d, DirFromDevice, buf, op.read(2047, 2, false)...), KeyIllegalRequest, 0x21, 0)
		wantSense(t, run(t, d, DirToDevice, buf, op.write(2047, 2, false)...), KeyIllegalRequest, 0x21, 0)
		wantSense(t, run(t, d, DirFromDevice, buf, op.read(op.maxLBA, 1, false)...), KeyIllegalRequest, 0x21, 0)
	}
	// 64-bit wrap: lba+n overflows.
	for _, lba := range []uint64{1<<64 - 1, 1<<64 - 2, 1 << 63} {
		wantSense(t, run(t, d, DirFromDevice, buf, cdb16(OpRead16, 0, lba, 4)...), KeyIllegalRequest, 0x21, 0)
		wantSense(t, run(t, d, DirToDevice, buf, cdb16(OpWrite16, 0, lba, 4)...), KeyIllegalRequest, 0x21, 0)
		wantSense(t, run(t, d, DirNone, nil, cdb16(OpVerify16, 0, lba, 4)...), KeyIllegalRequest, 0x21, 0)
		wantSense(t, run(t, d, DirNone, nil, cdb16(OpSyncCache16, 0, lba, 4)...), KeyIllegalRequest, 0x21, 0)
		wantSense(t, run(t, d, DirToDevice, buf, cdb16(OpWriteSame16, 0, lba, 4)...), KeyIllegalRequest, 0x21, 0)
	}
	// Transfer length 0: no data, no error, as long as the LBA is in range.
	wantGood(t, run(t, d, DirFromDevice, buf, cdb10(OpRead10, 0, 2048, 0)...))
	wantSense(t, run(t, d, DirFromDevice, buf, cdb10(OpRead10, 0, 2049, 0)...), KeyIllegalRequest, 0x21, 0)
}

func TestDataLengthPolicy(t *testing.T) {
	d, r := newRAMDisk(t, 4<<20, store.RAMOptions{}, DiskOptions{})
	// Buffer shorter than the transfer: refused, pointing at the length field.
	res := run(t, d, DirFromDevice, make([]byte, 1000), cdb10(OpRead10, 0, 0, 2)...)
	wantSense(t, res, KeyIllegalRequest, 0x24, 0)
	wantField(t, res, 7)
	// Short data-out of a WRITE: INVALID FIELD IN COMMAND INFORMATION
	// UNIT (the request's data length is wrong, as LIO answers it), and
	// nothing written.
	res = run(t, d, DirToDevice, bytes.Repeat([]byte{9}, 1000), cdb16(OpWrite16, 0, 0, 2)...)
	wantSense(t, res, KeyIllegalRequest, 0x0E, 0x03)
	if r.Allocated() != 0 {
		t.Fatal("a refused short write reached the store")
	}
	// Wrong direction.
	wantSense(t, run(t, d, DirFromDevice, make([]byte, 512), cdb10(OpWrite10, 0, 0, 1)...), KeyIllegalRequest, 0x0E, 0x03)
	wantSense(t, run(t, d, DirToDevice, make([]byte, 512), cdb10(OpRead10, 0, 0, 1)...), KeyIllegalRequest, 0x24, 0)
	wantSense(t, run(t, d, DirNone, nil, cdb10(OpRead10, 0, 0, 1)...), KeyIllegalRequest, 0x24, 0)
	// More data-out than needed: the extra is ignored.
	wantGood(t, run(t, d, DirToDevice, make([]byte, 4096), cdb10(OpWrite10, 0, 0, 1)...))
	// Larger than the advertised maximum transfer.
	max := MaxTransferBytes / 512
	res = run(t, d, DirFromDevice, make([]byte, (max+1)*512), cdb10(OpRead10, 0, 0, uint16(max+1))...)
	wantSense(t, res, KeyIllegalRequest, 0x24, 0)
	wantGood(t, run(t, d, DirFromDevice, make([]byte, max*512), cdb10(OpRead10, 0, 0, uint16(max))...))
	// Protection fields.
	wantSense(t, run(t, d, DirFromDevice, make([]byte, 512), cdb10(OpRead10, 0x20, 0, 1)...), KeyIllegalRequest, 0x24, 0)
}

func TestReadOnlyDisk(t *testing.T) {
	d, _ := newRAMDisk(t, 1<<20, store.RAMOptions{}, DiskOptions{ReadOnly: true, Discard: true})
	buf := make([]byte, 512)
	for _, cdb := range [][]byte{cdb6(OpWrite6, 0, 1), cdb10(OpWrite10, 0, 0, 1), cdb12(OpWrite12, 0, 0, 1), cdb16(OpWrite16, 0, 0, 1),
		cdb10(OpWriteSame10, 0, 0, 1), cdb16(OpWriteSame16, 0, 0, 1), cdb10(OpUnmap, 0, 0, 24)} {
		wantSense(t, run(t, d, DirToDevice, buf, cdb...), KeyDataProtect, 0x27, 0)
	}
	wantGood(t, run(t, d, DirFromDevice, buf, cdb10(OpRead10, 0, 0, 1)...))
	ms := make([]byte, 64)
	wantGood(t, run(t, d, DirFromDevice, ms, OpModeSense6, 0, 0x3F, 0, 64, 0))
	if ms[2]&0x80 == 0 {
		t.Fatal("MODE SENSE does not report WP on a read-only disk")
	}
	if b2 := vpd(t, d, 0xB2); b2[5] != 0 {
		t.Fatal("read-only disk advertises provisioning")
	}
}

func TestWriteSameAndUnmapDiscard(t *testing.T) {
	fileStore := func(t *testing.T) store.Store {
		p := filepath.Join(t.TempDir(), "disk")
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, 4<<20); err != nil {
			t.Fatal(err)
		}
		f, err := store.OpenFile(p, store.FileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	ramStore := func(t *testing.T) store.Store {
		r, _ := store.NewRAM(4<<20, store.RAMOptions{})
		return r
	}
	for name, mk := range map[string]func(*testing.T) store.Store{"ram": ramStore, "file": fileStore} {
		t.Run(name, func(t *testing.T) {
			st := mk(t)
			d := NewDisk(st, DiskOptions{Discard: true, WriteCache: true}).(*Disk)
			defer d.Close()
			pattern := bytes.Repeat([]byte("0123456789abcdef"), 32)
			// WRITE SAME(10) of a pattern over 100 blocks.
			wantGood(t, run(t, d, DirToDevice, pattern, cdb10(OpWriteSame10, 0, 10, 100)...))
			got := make([]byte, 100*512)
			wantGood(t, run(t, d, DirFromDevice, got, cdb10(OpRead10, 0, 10, 100)...))
			if !bytes.Equal(got, bytes.Repeat(pattern, 100)) {
				t.Fatal("WRITE SAME pattern not written")
			}
			// WRITE SAME(16) UNMAP with a zero block: discard, reads back zeros.
			wantGood(t, run(t, d, DirToDevice, make([]byte, 512), cdb16(OpWriteSame16, 0x08, 20, 50)...))
			wantGood(t, run(t, d, DirFromDevice, got, cdb10(OpRead10, 0, 10, 100)...))
			want := bytes.Repeat(pattern, 100)
			clear(want[10*512 : 60*512])
			if !bytes.Equal(got, want) {
				t.Fatal("WRITE SAME UNMAP: range not zero or neighbours damaged")
			}
			// Zeros without UNMAP: zeroed in place (ZeroRange), not written block by block.
			wantGood(t, run(t, d, DirToDevice, pattern, cdb10(OpWriteSame10, 0, 200, 8)...))
			wantGood(t, run(t, d, DirToDevice, make([]byte, 512), cdb10(OpWriteSame10, 0, 200, 8)...))
			z := make([]byte, 8*512)
			wantGood(t, run(t, d, DirFromDevice, z, cdb10(OpRead10, 0, 200, 8)...))
			if !bytes.Equal(z, make([]byte, 8*512)) {
				t.Fatal("WRITE SAME of zeros left data behind")
			}
			// NDOB: no data-out buffer, zeros.
			wantGood(t, run(t, d, DirNone, nil, cdb16(OpWriteSame16, 0x09, 70, 10)...))
			// UNMAP two ranges.
			param := make([]byte, 8+32)
			binary.BigEndian.PutUint16(param[0:], uint16(len(param)-2))
			binary.BigEndian.PutUint16(param[2:], 32)
			binary.BigEndian.PutUint64(param[8:], 10)
			binary.BigEndian.PutUint32(param[16:], 5)
			binary.BigEndian.PutUint64(param[24:], 100)
			binary.BigEndian.PutUint32(param[32:], 10)
			wantGood(t, run(t, d, DirToDevice, param, cdb10(OpUnmap, 0, 0, uint16(len(param)))...))
			wantGood(t, run(t, d, DirFromDevice, got, cdb10(OpRead10, 0, 10, 100)...))
			clear(want[0 : 5*512])       // UNMAP 10+5
			clear(want[60*512 : 70*512]) // NDOB 70+10
			clear(want[90*512:])         // UNMAP 100+10
			if !bytes.Equal(got, want) {
				t.Fatal("UNMAP: ranges not zero or neighbours damaged")
			}
		})
	}
	d, r := newRAMDisk(t, 4<<20, store.RAMOptions{}, DiskOptions{Discard: true})
	blk := bytes.Repeat([]byte{7}, 512)
	wantGood(t, run(t, d, DirToDevice, blk, cdb16(OpWriteSame16, 0, 0, 64)...))
	before := r.Allocated()
	wantGood(t, run(t, d, DirToDevice, make([]byte, 512), cdb10(OpWriteSame10, 0x08, 0, 64)...))
	if r.Allocated() >= before {
		t.Fatalf("WRITE SAME UNMAP did not free RAM pages: %d -> %d", before, r.Allocated())
	}
	// WRITE SAME errors.
	wantSense(t, run(t, d, DirToDevice, blk, cdb10(OpWriteSame10, 0, 0, 0)...), KeyIllegalRequest, 0x24, 0)    // WSNZ
	wantSense(t, run(t, d, DirToDevice, blk, cdb10(OpWriteSame10, 0x10, 0, 1)...), KeyIllegalRequest, 0x24, 0) // ANCHOR
	wantSense(t, run(t, d, DirToDevice, blk[:100], cdb10(OpWriteSame10, 0, 0, 1)...), KeyIllegalRequest, 0x24, 0)
	wantSense(t, run(t, d, DirToDevice, blk, cdb16(OpWriteSame16, 0, 0, 1<<20+1)...), KeyIllegalRequest, 0x24, 0)
	nd, _ := newRAMDisk(t, 1<<20, store.RAMOptions{}, DiskOptions{})
	res := run(t, nd, DirToDevice, make([]byte, 512), cdb10(OpWriteSame10, 0x08, 0, 1)...)
	wantSense(t, res, KeyIllegalRequest, 0x24, 0) // UNMAP without LBPWS
	wantField(t, res, 1)
}

func TestUnmapParameterList(t *testing.T) {
	d, r := newRAMDisk(t, 1<<20, store.RAMOptions{}, DiskOptions{Discard: true})
	fill := bytes.Repeat([]byte{1}, 2048*512)
	wantGood(t, run(t, d, DirToDevice, fill[:1024*512], cdb10(OpWrite10, 0, 0, 1024)...))
	full := r.Allocated()
	mk := func(descs ...[2]uint64) []byte {
		p := make([]byte, 8+16*len(descs))
		binary.BigEndian.PutUint16(p[0:], uint16(len(p)-2))
		binary.BigEndian.PutUint16(p[2:], uint16(16*len(descs)))
		for i, dsc := range descs {
			binary.BigEndian.PutUint64(p[8+16*i:], dsc[0])
			binary.BigEndian.PutUint32(p[16+16*i:], uint32(dsc[1]))
		}
		return p
	}
	unmap := func(p []byte, plen int) Result {
		return run(t, d, DirToDevice, p, cdb10(OpUnmap, 0, 0, uint16(plen))...)
	}
	wantGood(t, unmap(nil, 0))
	wantSense(t, unmap(make([]byte, 4), 4), KeyIllegalRequest, 0x1A, 0)
	p := mk([2]uint64{0, 8}, [2]uint64{2047, 2}) // second runs off the end
	wantSense(t, unmap(p, len(p)), KeyIllegalRequest, 0x21, 0)
	if r.Allocated() != full {
		t.Fatal("a rejected UNMAP list discarded its valid descriptors")
	}
	p = mk([2]uint64{1<<64 - 1, 2})
	wantSense(t, unmap(p, len(p)), KeyIllegalRequest, 0x21, 0)
	p = mk([2]uint64{0, 8})
	binary.BigEndian.PutUint16(p[2:], 15)
	wantSense(t, unmap(p, len(p)), KeyIllegalRequest, 0x26, 0)
	p = mk([2]uint64{0, 8})
	binary.BigEndian.PutUint16(p[2:], 32) // claims more than the list holds
	wantSense(t, unmap(p, len(p)), KeyIllegalRequest, 0x1A, 0)
	wantSense(t, unmap(p[:10], 24), KeyIllegalRequest, 0x24, 0) // buffer shorter than the CDB says
	anchor := cdb10(OpUnmap, 1, 0, 24)
	wantSense(t, run(t, d, DirToDevice, mk([2]uint64{0, 8}), anchor...), KeyIllegalRequest, 0x24, 0)
	many := make([][2]uint64, maxUnmapDescriptors+1)
	p = mk(many...)
	wantSense(t, unmap(p, len(p)), KeyIllegalRequest, 0x26, 0)
	p = mk([2]uint64{0, 512}, [2]uint64{600, 0})
	wantGood(t, unmap(p, len(p)))
	if r.Allocated() != full-512*512 {
		t.Fatalf("UNMAP of 512 blocks: allocated %d -> %d", full, r.Allocated())
	}
}

func TestVerify(t *testing.T) {
	d, _ := newRAMDisk(t, 1<<20, store.RAMOptions{}, DiskOptions{})
	data := make([]byte, 4*512)
	for i := range data {
		data[i] = byte(i * 3)
	}
	wantGood(t, run(t, d, DirToDevice, data, cdb10(OpWrite10, 0, 8, 4)...))
	wantGood(t, run(t, d, DirNone, nil, cdb10(OpVerify10, 0, 0, 100)...))
	wantGood(t, run(t, d, DirToDevice, data, cdb10(OpVerify10, 0x02, 8, 4)...))
	wantGood(t, run(t, d, DirToDevice, data, cdb16(OpVerify16, 0x02, 8, 4)...))
	bad := bytes.Clone(data)
	bad[1000] ^= 1
	res := run(t, d, DirToDevice, bad, cdb10(OpVerify10, 0x02, 8, 4)...)
	wantSense(t, res, KeyMiscompare, 0x1D, 0)
	if off, ok := info(res); !ok || off != 1000 {
		t.Fatalf("miscompare INFORMATION %d valid %v, want 1000", off, ok)
	}
	// BYTCHK 3: one block against each: zeros match unwritten blocks.
	wantGood(t, run(t, d, DirToDevice, make([]byte, 512), cdb10(OpVerify10, 0x06, 100, 50)...))
	wantSense(t, run(t, d, DirToDevice, make([]byte, 512), cdb10(OpVerify10, 0x06, 0, 50)...), KeyMiscompare, 0x1D, 0)
	wantSense(t, run(t, d, DirToDevice, data, cdb10(OpVerify10, 0x04, 8, 4)...), KeyIllegalRequest, 0x24, 0)
	wantSense(t, run(t, d, DirNone, nil, cdb10(OpVerify10, 0, 2047, 2)...), KeyIllegalRequest, 0x21, 0)
	wantGood(t, run(t, d, DirNone, nil, cdb10(OpPreFetch10, 0, 0, 10)...))
	wantSense(t, run(t, d, DirNone, nil, cdb16(OpPreFetch16, 0, 2048, 1)...), KeyIllegalRequest, 0x21, 0)
}

func modeSense(t *testing.T, d LUN, ten bool, flags, pcPage, sub byte, alloc int) ([]byte, Result) {
	t.Helper()
	buf := make([]byte, 512)
	var cdb []byte
	if ten {
		cdb = []byte{OpModeSense10, flags, pcPage, sub, 0, 0, 0, byte(alloc >> 8), byte(alloc), 0}
	} else {
		cdb = []byte{OpModeSense6, flags, pcPage, sub, byte(alloc), 0}
	}
	res := run(t, d, DirFromDevice, buf, cdb...)
	return buf[:res.DataLen], res
}

// parseMode splits mode parameter data into block descriptors and pages.
func parseMode(t *testing.T, b []byte, ten bool) (dsp byte, bd []byte, pages map[byte][]byte) {
	t.Helper()
	hdr, bdl, mdl := 4, int(b[3]), int(b[0])+1
	dsp = b[2]
	if ten {
		hdr, bdl, mdl, dsp = 8, int(be16(b[6:])), int(be16(b[0:]))+2, b[3]
	}
	if mdl != len(b) {
		t.Fatalf("mode data length %d, got %d bytes", mdl, len(b))
	}
	bd = b[hdr : hdr+bdl]
	pages = map[byte][]byte{}
	for p := b[hdr+bdl:]; len(p) > 0; {
		n := 2 + int(p[1])
		if n > len(p) {
			t.Fatalf("page %#x truncated", p[0])
		}
		pages[p[0]&0x3F] = p[:n]
		p = p[n:]
	}
	return dsp, bd, pages
}

func TestModeSense(t *testing.T) {
	d, _ := newRAMDisk(t, 1<<20, store.RAMOptions{}, DiskOptions{WriteCache: true})
	for _, ten := range []bool{false, true} {
		b, res := modeSense(t, d, ten, 0, 0x3F, 0, 255)
		wantGood(t, res)
		dsp, bd, pages := parseMode(t, b, ten)
		if dsp&0x10 == 0 || dsp&0x80 != 0 {
			t.Fatalf("device-specific %#x", dsp)
		}
		if len(bd) != 8 || be32(bd) != 2048 || be32(bd[4:])&0xFFFFFF != 512 {
			t.Fatalf("block descriptor % x", bd)
		}
		if c := pages[0x08]; len(c) != 20 || c[2]&0x04 == 0 {
			t.Fatalf("caching page % x", c)
		}
		if c := pages[0x0A]; len(c) != 12 {
			t.Fatalf("control page % x", c)
		}
		// DBD, single pages, subpage 0xFF.
		b, res = modeSense(t, d, ten, 0x08, 0x08, 0xFF, 255)
		wantGood(t, res)
		_, bd, pages = parseMode(t, b, ten)
		if len(bd) != 0 || len(pages) != 1 || pages[0x08] == nil {
			t.Fatalf("DBD/caching only: bd %d pages %v", len(bd), pages)
		}
		// Changeable: only WCE.
		b, _ = modeSense(t, d, ten, 0x08, 0x40|0x3F, 0, 255)
		_, _, pages = parseMode(t, b, ten)
		if pages[0x08][2] != 0x04 || !bytes.Equal(pages[0x0A][2:], make([]byte, 10)) {
			t.Fatalf("changeable masks % x / % x", pages[0x08], pages[0x0A])
		}
		// Saved values are the defaults (nothing can be saved).
		b, res = modeSense(t, d, ten, 0, 0xC0|0x3F, 0, 255)
		wantGood(t, res)
		_, _, saved := parseMode(t, b, ten)
		b, _ = modeSense(t, d, ten, 0, 0x80|0x3F, 0, 255)
		_, _, defaults := parseMode(t, b, ten)
		if fmt.Sprint(saved) != fmt.Sprint(defaults) || len(saved) != 4 {
			t.Fatalf("saved pages %v, defaults %v", saved, defaults)
		}
		// Read-write error recovery (01h) and informational exceptions
		// control (1Ch): zeros, nothing changeable.
		for _, pg := range []byte{0x01, 0x1C} {
			b, res = modeSense(t, d, ten, 0x08, pg, 0, 255)
			wantGood(t, res)
			_, _, pages = parseMode(t, b, ten)
			if p := pages[pg]; len(p) != 12 || p[1] != 0x0A || !bytes.Equal(p[2:], make([]byte, 10)) {
				t.Fatalf("page %#x: % x", pg, p)
			}
		}
		_, res = modeSense(t, d, ten, 0, 0x05, 0, 255)
		wantSense(t, res, KeyIllegalRequest, 0x24, 0)
		wantField(t, res, 2)
		_, res = modeSense(t, d, ten, 0, 0x08, 0x01, 255)
		wantSense(t, res, KeyIllegalRequest, 0x24, 0)
		// Truncation.
		b, res = modeSense(t, d, ten, 0, 0x3F, 0, 10)
		wantGood(t, res)
		if len(b) != 10 {
			t.Fatalf("alloc 10: %d bytes", len(b))
		}
	}
	b, res := modeSense(t, d, true, 0x10, 0x08, 0, 255) // LLBAA
	wantGood(t, res)
	if b[4]&1 == 0 || be16(b[6:]) != 16 || be64(b[8:]) != 2048 || be32(b[20:]) != 512 {
		t.Fatalf("long LBA descriptor % x", b[:24])
	}
}

func TestModeSelectWriteCache(t *testing.T) {
	r, _ := store.NewRAM(1<<20, store.RAMOptions{})
	h := &hookStore{Store: r}
	d := NewDisk(h, DiskOptions{WriteCache: true}).(*Disk)
	for _, ten := range []bool{false, true} {
		b, _ := modeSense(t, d, ten, 0x08, 0x08, 0, 255)
		param := bytes.Clone(b)
		param[0] = 0 // mode data length is reserved in MODE SELECT
		if ten {
			param[1] = 0
		}
		hdr := 4
		if ten {
			hdr = 8
		}
		param[hdr+2] &^= 0x04 // WCE off
		sel := func(p []byte, plen int, flags byte) Result {
			if ten {
				return run(t, d, DirToDevice, p, OpModeSelect10, flags, 0, 0, 0, 0, 0, byte(plen>>8), byte(plen), 0)
			}
			return run(t, d, DirToDevice, p, OpModeSelect6, flags, 0, 0, byte(plen), 0)
		}
		syncs := h.syncs.Load()
		wantGood(t, sel(param, len(param), 0x10))
		if d.wce.Load() || h.syncs.Load() != syncs+1 {
			t.Fatalf("WCE still %v / no flush when going write-through", d.wce.Load())
		}
		b, _ = modeSense(t, d, ten, 0x08, 0x08, 0, 255)
		if b[hdr+2]&0x04 != 0 {
			t.Fatal("MODE SENSE still reports WCE")
		}
		param[hdr+2] |= 0x04
		wantGood(t, sel(param, len(param), 0x10))
		if !d.wce.Load() {
			t.Fatal("WCE not back on")
		}
		bad := bytes.Clone(param)
		bad[hdr+2] |= 0x01 // RCD: not changeable
		res := sel(bad, len(bad), 0x10)
		wantSense(t, res, KeyIllegalRequest, 0x26, 0)
		if cd, f, ok := fieldPointer(res); !ok || cd || f != hdr+2 {
			t.Fatalf("field pointer cd=%v f=%d", cd, f)
		}
		bad = bytes.Clone(param)
		bad[hdr] = 0x1C
		wantSense(t, sel(bad, len(bad), 0x10), KeyIllegalRequest, 0x26, 0)
		wantSense(t, sel(param, len(param)-3, 0x10), KeyIllegalRequest, 0x1A, 0)
		wantSense(t, sel(param, len(param), 0x11), KeyIllegalRequest, 0x24, 0) // SP
		wantSense(t, sel(param[:3], len(param), 0x10), KeyIllegalRequest, 0x24, 0)
		wantGood(t, sel(nil, 0, 0x10))
		// A block descriptor with another block size is refused.
		full, _ := modeSense(t, d, ten, 0, 0x08, 0, 255)
		full = bytes.Clone(full)
		full[0] = 0
		if ten {
			full[1] = 0
		}
		wantGood(t, sel(full, len(full), 0x10))
		full[hdr+6] = 0x10 // 4096
		wantSense(t, sel(full, len(full), 0x10), KeyIllegalRequest, 0x26, 0)
		if !d.wce.Load() {
			t.Fatal("a rejected MODE SELECT changed WCE")
		}
	}
}

func TestReportLUNs(t *testing.T) {
	peers := []uint64{0, 1, 300, 16383}
	d, _ := newRAMDisk(t, 1<<20, store.RAMOptions{}, DiskOptions{LUN: 1, ReportLUNs: func() []uint64 { return peers }})
	buf := make([]byte, 256)
	res := run(t, d, DirFromDevice, buf, reportLUNsCDB(0, 256)...)
	wantGood(t, res)
	if res.DataLen != 8+8*len(peers) || be32(buf) != uint32(8*len(peers)) {
		t.Fatalf("REPORT LUNS length %d list %d", res.DataLen, be32(buf))
	}
	for i, want := range peers {
		e := buf[8+8*i : 16+8*i]
		// Linux scsilun_to_int.
		var got uint64
		for j := 0; j < 8; j += 2 {
			got |= uint64(e[j])<<(j*8+8) | uint64(e[j+1])<<(j*8)
		}
		if got != want {
			t.Fatalf("entry %d: % x decodes to %d, want %d", i, e, got, want)
		}
	}
	if !bytes.Equal(buf[16:24], []byte{0, 1, 0, 0, 0, 0, 0, 0}) {
		t.Fatalf("LUN 1 encoding % x", buf[16:24])
	}
	wantGood(t, run(t, d, DirFromDevice, buf, reportLUNsCDB(1, 256)...))
	if be32(buf) != 0 {
		t.Fatal("well-known LUN report not empty")
	}
	wantGood(t, run(t, d, DirFromDevice, buf, reportLUNsCDB(2, 256)...))
	// SPC-5's administrative-LU forms: none here, so 10h and 12h are
	// empty and 11h is everything.
	for sel, n := range map[byte]uint32{0x10: 0, 0x11: 32, 0x12: 0} {
		wantGood(t, run(t, d, DirFromDevice, buf, reportLUNsCDB(sel, 256)...))
		if be32(buf) != n {
			t.Fatalf("SELECT REPORT %#x: list length %d, want %d", sel, be32(buf), n)
		}
	}
	for _, sel := range []byte{3, 0x0F, 0x13, 0xFF} {
		res = run(t, d, DirFromDevice, buf, reportLUNsCDB(sel, 256)...)
		wantSense(t, res, KeyIllegalRequest, 0x24, 0)
		wantField(t, res, 2)
	}
	// Any allocation length truncates (SPC-4: it should be >= 16, not must).
	if res := run(t, d, DirFromDevice, buf, reportLUNsCDB(0, 15)...); res.Status != StatusGood || res.DataLen != 15 {
		t.Fatalf("REPORT LUNS alloc 15: %#x, %d bytes", res.Status, res.DataLen)
	}
	if res := run(t, d, DirFromDevice, buf, reportLUNsCDB(0, 0)...); res.Status != StatusGood || res.DataLen != 0 {
		t.Fatalf("REPORT LUNS alloc 0: %#x, %d bytes", res.Status, res.DataLen)
	}
	if res := run(t, d, DirFromDevice, buf, reportLUNsCDB(0, 16)...); res.DataLen != 16 || be32(buf) != 32 {
		t.Fatalf("truncated REPORT LUNS: %d bytes, list length %d", res.DataLen, be32(buf))
	}
	solo, _ := newRAMDisk(t, 1<<20, store.RAMOptions{}, DiskOptions{LUN: 5})
	wantGood(t, run(t, solo, DirFromDevice, buf, reportLUNsCDB(0, 256)...))
	if be32(buf) != 8 || buf[9] != 5 {
		t.Fatalf("default REPORT LUNS % x", buf[:16])
	}
	var r Result
	EmulateReportLUNs(&Command{CDB: reportLUNsCDB(0, 64), Dir: DirFromDevice, Data: buf}, &r, []uint64{2})
	if r.Status != 0 || r.DataLen != 16 || buf[9] != 2 {
		t.Fatalf("EmulateReportLUNs: %+v % x", r, buf[:16])
	}
	EmulateReportLUNs(&Command{CDB: []byte{OpReportLUNs}, Dir: DirFromDevice, Data: buf}, &r, nil)
	if r.Status != StatusCheckCondition {
		t.Fatal("short REPORT LUNS CDB accepted")
	}
}

func TestReportSupportedOpcodes(t *testing.T) {
	for _, opts := range []DiskOptions{{Discard: true}, {ReadOnly: true}, {}} {
		d, _ := newRAMDisk(t, 1<<20, store.RAMOptions{}, opts)
		buf := make([]byte, 8192)
		for _, rctd := range []bool{false, true} {
			flags := byte(0)
			dlen := 8
			if rctd {
				flags, dlen = 0x80, 20
			}
			res := run(t, d, DirFromDevice, buf, rsoc(flags, 0, 0, 8192)...)
			wantGood(t, res)
			if int(be32(buf))+4 != res.DataLen || be32(buf)%uint32(dlen) != 0 {
				t.Fatalf("RSOC all: length %d for %d bytes", be32(buf), res.DataLen)
			}
			listed := map[[2]int]int{}
			for p := buf[4:res.DataLen]; len(p) > 0; p = p[dlen:] {
				op, sa, servactv := int(p[0]), int(be16(p[2:])), p[5]&1 != 0
				if !servactv {
					sa = -1
				}
				if (p[5]&2 != 0) != rctd || (rctd && be16(p[8:]) != 0x0A) {
					t.Fatalf("CTDP/timeouts descriptor wrong for %#x", op)
				}
				listed[[2]int{op, sa}] = int(be16(p[6:]))
			}
			mustList := [][2]int{{OpInquiry, -1}, {OpRead10, -1}, {OpRead16, -1}, {OpServiceActionIn16, SAReadCapacity16},
				{OpMaintenanceIn, SAReportSupportedOps}, {OpModeSense6, -1}, {OpSyncCache10, -1}, {OpReportLUNs, -1}}
			if opts.Discard {
				mustList = append(mustList, [2]int{OpUnmap, -1}, [2]int{OpWriteSame16, -1})
			}
			for _, k := range mustList {
				if listed[k] == 0 {
					t.Fatalf("%v (discard %v) not listed: %v", k, opts.Discard, listed)
				}
			}
			if listed[[2]int{OpRead16, -1}] != 16 || listed[[2]int{OpMaintenanceIn, SAReportSupportedOps}] != 12 {
				t.Fatal("wrong CDB lengths")
			}
			// Listed opcodes are exactly those not answered with 05/20/00.
			for op := 0; op < 256; op++ {
				cdb := make([]byte, 16)
				cdb[0] = byte(op)
				_, plain := listed[[2]int{op, -1}]
				hasSA := false
				for k := range listed {
					if k[0] == op && k[1] >= 0 {
						hasSA = true
					}
				}
				res := run(t, d, DirFromDevice, make([]byte, 512), cdb...)
				invalid := res.Status == StatusCheckCondition && res.Sense[12] == 0x20
				if invalid == (plain || hasSA) {
					t.Fatalf("opcode %#02x: listed=%v but invalid-opcode=%v", op, plain || hasSA, invalid)
				}
			}
		}
		one := func(opts, op byte, sa uint16) ([]byte, Result) {
			res := run(t, d, DirFromDevice, buf, rsoc(opts, op, sa, 512)...)
			return buf[:res.DataLen], res
		}
		b, res := one(1, OpRead10, 0)
		wantGood(t, res)
		if b[1]&7 != 3 || be16(b[2:]) != 10 || b[4] != OpRead10 || len(b) != 14 {
			t.Fatalf("one-command READ(10): % x", b)
		}
		b, _ = one(0x81, OpRead10, 0)
		if b[1]&0x80 == 0 || len(b) != 26 {
			t.Fatalf("one-command with RCTD: % x", b)
		}
		b, res = one(2, OpServiceActionIn16, SAReadCapacity16)
		wantGood(t, res)
		if b[1]&7 != 3 || be16(b[2:]) != 16 || b[4] != OpServiceActionIn16 || b[5] != SAReadCapacity16 {
			t.Fatalf("one-command RC16: % x", b)
		}
		b, _ = one(2, OpServiceActionIn16, SAGetLBAStatus)
		if b[1]&7 != 3 || be16(b[2:]) != 16 || b[5] != SAGetLBAStatus {
			t.Fatalf("GET LBA STATUS not reported as supported: % x", b)
		}
		b, _ = one(2, OpServiceActionIn16, 0x13)
		if b[1]&7 != 1 {
			t.Fatalf("SERVICE ACTION IN 0x13 reported as supported: % x", b)
		}
		b, _ = one(1, OpPersistentResIn, 0)
		if b[1]&7 != 3 || be16(b[2:]) != 10 || b[4] != OpPersistentResIn {
			t.Fatalf("PR IN not reported as supported: % x", b)
		}
		b, _ = one(1, 0x83, 0)
		if b[1]&7 != 1 || len(b) != 4 {
			t.Fatalf("EXTENDED COPY reported as supported: % x", b)
		}
		b, _ = one(3, OpRead10, 0)
		if b[1]&7 != 3 {
			t.Fatal("option 3 READ(10)")
		}
		_, res = one(1, OpServiceActionIn16, 0)
		wantSense(t, res, KeyIllegalRequest, 0x24, 0)
		_, res = one(2, OpRead10, 0)
		wantSense(t, res, KeyIllegalRequest, 0x24, 0)
		_, res = one(5, OpRead10, 0)
		wantSense(t, res, KeyIllegalRequest, 0x24, 0)
		if res := run(t, d, DirFromDevice, buf, rsoc(0, 0, 0, 10)...); res.DataLen != 10 {
			t.Fatalf("RSOC truncation: %d", res.DataLen)
		}
	}
}

func TestUnitAttentionAndRequestSense(t *testing.T) {
	r, _ := store.NewRAM(4<<20, store.RAMOptions{})
	h := &hookStore{Store: r}
	h.size.Store(1 << 20)
	d := NewDisk(h, DiskOptions{WriteCache: true}).(*Disk)
	buf := make([]byte, 64)
	res := run(t, d, DirFromDevice, buf, OpRequestSense, 0, 0, 0, 64, 0)
	wantGood(t, res)
	if res.DataLen != 18 || buf[0] != 0x70 || buf[2] != 0 || buf[7] != 10 || buf[12] != 0 {
		t.Fatalf("no-sense data % x", buf[:res.DataLen])
	}
	wantSense(t, run(t, d, DirFromDevice, buf, OpRequestSense, 1, 0, 0, 64, 0), KeyIllegalRequest, 0x24, 0)

	d.wce.Store(false)
	d.Reset()
	if !d.wce.Load() {
		t.Fatal("reset did not restore the default WCE")
	}
	wantGood(t, run(t, d, DirFromDevice, buf, inquiry(false, 0, 64)...)) // exempt
	wantSense(t, run(t, d, DirNone, nil, OpTestUnitReady, 0, 0, 0, 0, 0), KeyUnitAttention, 0x29, 0x03)
	wantGood(t, run(t, d, DirNone, nil, OpTestUnitReady, 0, 0, 0, 0, 0))

	h.size.Store(2 << 20)
	d.NotifyCapacityChanged()
	res = run(t, d, DirFromDevice, buf, OpRequestSense, 0, 0, 0, 64, 0)
	wantGood(t, res)
	if buf[2] != KeyUnitAttention || buf[12] != 0x2A || buf[13] != 0x09 {
		t.Fatalf("REQUEST SENSE did not return the capacity UA: % x", buf[:18])
	}
	wantGood(t, run(t, d, DirFromDevice, buf, rc16(32)...))
	if be64(buf) != 4095 {
		t.Fatalf("capacity after resize: %d", be64(buf)+1)
	}
	if d.Abort(1) {
		t.Fatal("Abort claims to have cancelled an emulated command")
	}
}

func TestStoreErrorsBecomeSense(t *testing.T) {
	r, _ := store.NewRAM(1<<20, store.RAMOptions{})
	for _, tc := range []struct {
		name           string
		rerr, werr     error
		rk, ra, wk, wa byte
		wq             byte
	}{
		{"EIO", fmt.Errorf("pread: %w", syscall.EIO), fmt.Errorf("pwrite: %w", syscall.EIO), KeyMediumError, 0x11, KeyMediumError, 0x0C, 0},
		{"ENOSPC", syscall.EIO, fmt.Errorf("pwrite: %w", syscall.ENOSPC), KeyMediumError, 0x11, KeyDataProtect, 0x27, 0x07},
		{"EROFS", syscall.EIO, syscall.EROFS, KeyMediumError, 0x11, KeyDataProtect, 0x27, 0},
	} {
		h := &hookStore{Store: r, readErr: tc.rerr, writeErr: tc.werr}
		d := NewDisk(h, DiskOptions{WriteCache: true})
		res := run(t, d, DirFromDevice, make([]byte, 512), cdb10(OpRead10, 0, 77, 1)...)
		wantSense(t, res, tc.rk, tc.ra, 0)
		if v, ok := info(res); !ok || v != 77 {
			t.Fatalf("%s: read INFORMATION %d %v", tc.name, v, ok)
		}
		wantSense(t, run(t, d, DirToDevice, make([]byte, 512), cdb10(OpWrite10, 0, 5, 1)...), tc.wk, tc.wa, tc.wq)
	}
	h := &hookStore{Store: r, writeErr: errSyncFails}
	d := NewDisk(h, DiskOptions{})
	wantSense(t, run(t, d, DirNone, nil, cdb10(OpSyncCache10, 0, 0, 0)...), KeyMediumError, 0x0C, 0)
	// The RAM store's own limit.
	lim, _ := newRAMDisk(t, 1<<20, store.RAMOptions{Limit: 8192}, DiskOptions{})
	wantGood(t, run(t, lim, DirToDevice, make([]byte, 8192), cdb10(OpWrite10, 0, 0, 16)...))
	wantSense(t, run(t, lim, DirToDevice, make([]byte, 512), cdb10(OpWrite10, 0, 100, 1)...), KeyDataProtect, 0x27, 0x07)
}

func TestDiskOptionsValidate(t *testing.T) {
	r, _ := store.NewRAM(1<<20, store.RAMOptions{LogicalBlockSize: 4096})
	for _, tc := range []struct {
		o    DiskOptions
		want string
	}{
		{DiskOptions{LogicalBlockSize: 512}, "multiple"},
		{DiskOptions{LogicalBlockSize: 1024}, "512 or 4096"},
		{DiskOptions{Product: strings.Repeat("x", 17)}, "product"},
		{DiskOptions{Serial: "bad\x01"}, "serial"},
		{DiskOptions{NAA: 0x1000000000000000}, "NAA"},
		{DiskOptions{PhysicalBlockExp: 16}, "exponent"},
	} {
		if err := tc.o.Validate(r); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err %v, want mention of %q", tc.o, err, tc.want)
		}
	}
	if err := (DiskOptions{}).Validate(nil); err == nil {
		t.Error("nil store accepted")
	}
	// NewDisk corrects what Validate refuses.
	d := NewDisk(r, DiskOptions{LogicalBlockSize: 512, Product: "\x00\x01"}).(*Disk)
	if d.BlockSize() != 4096 || d.Capacity() != 256 || string(d.product[:12]) != "VIRTUAL-DISK" {
		t.Fatalf("corrected disk: lbs %d cap %d product %q", d.BlockSize(), d.Capacity(), d.product)
	}
}

func TestNullLUN(t *testing.T) {
	n := NewNull()
	res := run(t, n, DirFromDevice, make([]byte, 4096), cdb10(OpRead10, 0, 0, 8)...)
	if res.Status != 0 || res.DataLen != 0 {
		t.Fatalf("null LUN: %+v", res)
	}
	if n.Close() != nil {
		t.Fatal("close")
	}
}

// TestConcurrentIO runs readers and writers on disjoint ranges (for -race).
func TestConcurrentIO(t *testing.T) {
	d, _ := newRAMDisk(t, 8<<20, store.RAMOptions{}, DiskOptions{WriteCache: true, Discard: true})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			base := uint32(g * 4096)
			data := bytes.Repeat([]byte{byte(g + 1)}, 8*512)
			got := make([]byte, len(data))
			for i := 0; i < 200; i++ {
				lba := base + uint32(i%500)*8
				var res Result
				// Like an initiator, retry a command that got a unit attention.
				do := func(c *Command) {
					for {
						d.Execute(c, &res)
						if res.Status != StatusCheckCondition || res.Sense[2] != KeyUnitAttention {
							return
						}
					}
				}
				do(&Command{CDB: cdb10(OpWrite10, 0, lba, 8), Dir: DirToDevice, Data: data})
				do(&Command{CDB: cdb10(OpRead10, 0, lba, 8), Dir: DirFromDevice, Data: got})
				if res.Status != 0 || !bytes.Equal(got, data) {
					t.Errorf("goroutine %d: mismatch", g)
					return
				}
				if i%50 == 0 {
					d.Reset()
				}
			}
		}(g)
	}
	wg.Wait()
}

// TestAdvertisedTransfer: Block Limits reports 256 KiB (so xen-scsifront
// never builds a command touching more pages than it can grant), while a
// command up to what one request carries (512 KiB) is still served, and
// the advertised value never exceeds the accepted one.
func TestAdvertisedTransfer(t *testing.T) {
	d, _ := newRAMDisk(t, 1<<20, store.RAMOptions{}, DiskOptions{})
	if bl := vpd(t, d, 0xB0); be32(bl[8:]) != 512 || be32(bl[12:]) != 512 {
		t.Fatalf("max/optimal transfer %d/%d blocks, want 512/512 (256 KiB)", be32(bl[8:]), be32(bl[12:]))
	}
	wantGood(t, run(t, d, DirFromDevice, make([]byte, MaxTransferBytes), cdb10(OpRead10, 0, 0, MaxTransferBytes/512)...))
	wantSense(t, run(t, d, DirFromDevice, make([]byte, MaxTransferBytes+512), cdb10(OpRead10, 0, 0, MaxTransferBytes/512+1)...), KeyIllegalRequest, 0x24, 0)
	e, _ := newRAMDisk(t, 1<<20, store.RAMOptions{}, DiskOptions{MaxTransferBytes: 128 << 10, AdvertisedTransferBytes: 1 << 20})
	if bl := vpd(t, e, 0xB0); be32(bl[8:]) != 256 {
		t.Fatalf("advertised %d blocks with MaxTransferBytes 128 KiB, want 256", be32(bl[8:]))
	}
	f, _ := newRAMDisk(t, 1<<20, store.RAMOptions{}, DiskOptions{AdvertisedTransferBytes: 64 << 10})
	if bl := vpd(t, f, 0xB0); be32(bl[8:]) != 128 {
		t.Fatalf("advertised %d blocks, want 128 (64 KiB)", be32(bl[8:]))
	}
}

func TestMaxTransferOptionAndEmptyStore(t *testing.T) {
	d, _ := newRAMDisk(t, 1<<20, store.RAMOptions{}, DiskOptions{MaxTransferBytes: 64 << 10})
	if bl := vpd(t, d, 0xB0); be32(bl[8:]) != 128 {
		t.Fatalf("max transfer %d blocks, want 128", be32(bl[8:]))
	}
	wantGood(t, run(t, d, DirFromDevice, make([]byte, 64<<10), cdb10(OpRead10, 0, 0, 128)...))
	wantSense(t, run(t, d, DirFromDevice, make([]byte, 65<<10), cdb10(OpRead10, 0, 0, 130)...), KeyIllegalRequest, 0x24, 0)

	r, _ := store.NewRAM(4096, store.RAMOptions{})
	h := &hookStore{Store: r}
	h.size.Store(100) // smaller than a block
	e := NewDisk(h, DiskOptions{})
	if err := (DiskOptions{}).Validate(h); err == nil {
		t.Fatal("Validate accepts an empty store")
	}
	wantSense(t, run(t, e, DirFromDevice, make([]byte, 32), rc16(32)...), KeyNotReady, 0x3A, 0)
	wantSense(t, run(t, e, DirFromDevice, make([]byte, 8), OpReadCapacity10, 0, 0, 0, 0, 0, 0, 0, 0, 0), KeyNotReady, 0x3A, 0)
	wantSense(t, run(t, e, DirFromDevice, make([]byte, 512), cdb10(OpRead10, 0, 0, 1)...), KeyIllegalRequest, 0x21, 0)
}

func TestCapacityChangeOnGrownFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(p, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := store.OpenFile(p, store.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d := NewDisk(f, DiskOptions{}).(*Disk)
	defer d.Close()
	if err := d.NotifyCapacityChanged(); err != nil {
		t.Fatal(err)
	}
	wantGood(t, run(t, d, DirNone, nil, OpTestUnitReady, 0, 0, 0, 0, 0)) // no change, no attention
	if err := os.Truncate(p, 2<<20); err != nil {
		t.Fatal(err)
	}
	if err := d.NotifyCapacityChanged(); err != nil {
		t.Fatal(err)
	}
	wantSense(t, run(t, d, DirNone, nil, OpTestUnitReady, 0, 0, 0, 0, 0), KeyUnitAttention, 0x2A, 0x09)
	buf := make([]byte, 512)
	wantGood(t, run(t, d, DirToDevice, buf, cdb10(OpWrite10, 0, 4095, 1)...))
	wantGood(t, run(t, d, DirFromDevice, buf[:32], rc16(32)...))
	if be64(buf) != 4095 {
		t.Fatalf("last LBA %d after growing to 2 MiB", be64(buf))
	}
}

func TestValidFixedSenseAndSetCheckCondition(t *testing.T) {
	for _, bad := range [][]byte{nil, {0x70, 0, 5}, {0x72, 0, 5, 0, 0, 0, 0, 10}, {0x70, 0, 5, 0, 0, 0, 0, 10, 0, 0}, {0x70, 0, 5, 0, 0, 0, 0, 2, 0, 0}} {
		if ValidFixedSense(bad) {
			t.Errorf("% x accepted as fixed-format sense", bad)
		}
	}
	res := Result{DataLen: 99, Host: 3}
	SetCheckCondition(&res, KeyAbortedCommand, 0x47, 0x00)
	if res.Status != StatusCheckCondition || res.DataLen != 0 || res.Host != 0 || !ValidFixedSense(res.Sense) ||
		res.Sense[2] != KeyAbortedCommand || res.Sense[12] != 0x47 || res.Sense[0]&0x80 != 0 {
		t.Fatalf("SetCheckCondition: %+v", res)
	}
}
