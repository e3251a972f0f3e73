package scsi

import (
	"bytes"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/govscsi/govscsi/backend/store"
)

func caw(flags byte, lba uint64, nlb byte) []byte {
	c := make([]byte, 16)
	c[0], c[1] = OpCompareAndWrite, flags
	binary.BigEndian.PutUint64(c[2:], lba)
	c[13] = nlb
	return c
}

func cawData(cmp, wr []byte) []byte { return append(append([]byte(nil), cmp...), wr...) }

func readBlock(t *testing.T, d LUN, lba uint32) []byte {
	t.Helper()
	buf := make([]byte, 512)
	wantGood(t, run(t, d, DirFromDevice, buf, cdb10(OpRead10, 0, lba, 1)...))
	return buf
}

func TestCompareAndWrite(t *testing.T) {
	d, r := newRAMDisk(t, 1<<20, store.RAMOptions{}, DiskOptions{WriteCache: true})
	zero, a, b := make([]byte, 512), bytes.Repeat([]byte{0xA}, 512), bytes.Repeat([]byte{0xB}, 512)
	wantGood(t, run(t, d, DirToDevice, cawData(zero, a), caw(0, 5, 1)...))
	if !bytes.Equal(readBlock(t, d, 5), a) {
		t.Fatal("COMPARE AND WRITE did not write")
	}
	// Miscompare: nothing written, INFORMATION = offset of the first difference.
	cmp := append([]byte(nil), a...)
	cmp[77] = 0
	res := run(t, d, DirToDevice, cawData(cmp, b), caw(0, 5, 1)...)
	wantSense(t, res, KeyMiscompare, 0x1D, 0)
	if res.Sense[0]&0x80 == 0 || be32(res.Sense[3:]) != 77 {
		t.Fatalf("miscompare sense % x: want VALID and INFORMATION 77", res.Sense)
	}
	if !bytes.Equal(readBlock(t, d, 5), a) {
		t.Fatal("a miscompare wrote")
	}
	// FUA goes through the durable path.
	wantGood(t, run(t, d, DirToDevice, cawData(a, b), caw(0x08, 5, 1)...))
	if !bytes.Equal(readBlock(t, d, 5), b) {
		t.Fatal("FUA COMPARE AND WRITE did not write")
	}
	// NUMBER OF LOGICAL BLOCKS 0: nothing, GOOD; above the maximum: refused.
	wantGood(t, run(t, d, DirNone, nil, caw(0, 5, 0)...))
	res = run(t, d, DirToDevice, make([]byte, 2048), caw(0, 5, 2)...)
	wantSense(t, res, KeyIllegalRequest, 0x24, 0)
	wantField(t, res, 13)
	// Short data-out (only the compare half), no data, range, WRPROTECT.
	wantSense(t, run(t, d, DirToDevice, make([]byte, 512), caw(0, 5, 1)...), KeyIllegalRequest, 0x0E, 0x03)
	wantSense(t, run(t, d, DirNone, nil, caw(0, 5, 1)...), KeyIllegalRequest, 0x0E, 0x03)
	wantSense(t, run(t, d, DirToDevice, make([]byte, 1024), caw(0, 2048, 1)...), KeyIllegalRequest, 0x21, 0)
	wantSense(t, run(t, d, DirToDevice, make([]byte, 1024), caw(0x20, 5, 1)...), KeyIllegalRequest, 0x24, 0)
	// Block Limits advertises the maximum.
	if bl := vpd(t, d, 0xB0); bl[5] != maxCompareAndWrite {
		t.Fatalf("MAXIMUM COMPARE AND WRITE LENGTH %d", bl[5])
	}
	// A read-only disk: DATA PROTECT.
	ro := NewDisk(r, DiskOptions{ReadOnly: true})
	wantSense(t, run(t, ro, DirToDevice, cawData(b, a), caw(0, 5, 1)...), KeyDataProtect, 0x27, 0)
}

// blockingStore blocks the first ReadAt at off until release is closed.
type blockingStore struct {
	store.Store
	off     int64
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (s *blockingStore) ReadAt(p []byte, off int64) (int, error) {
	if off == s.off {
		s.once.Do(func() { close(s.entered); <-s.release })
	}
	return s.Store.ReadAt(p, off)
}

// TestCompareAndWriteIsAtomicAcrossNexuses: two disks over one backing and
// one logical unit (two guests). While one nexus's COMPARE AND WRITE sits
// between its compare and its write, a WRITE of the same block from the
// other nexus waits; it lands after, so the block holds its data.
func TestCompareAndWriteIsAtomicAcrossNexuses(t *testing.T) {
	r, _ := store.NewRAM(1<<20, store.RAMOptions{})
	bs := &blockingStore{Store: r, off: 7 * 512, entered: make(chan struct{}), release: make(chan struct{})}
	unit := newUnit(t)
	n1 := NewDisk(bs, DiskOptions{Unit: unit, WriteCache: true})
	n2 := NewDisk(r, DiskOptions{Unit: unit, WriteCache: true})
	a, b := bytes.Repeat([]byte{0xA}, 512), bytes.Repeat([]byte{0xB}, 512)
	cawDone := make(chan Result, 1)
	go func() {
		var res Result
		n1.Execute(&Command{CDB: caw(0, 7, 1), Dir: DirToDevice, Data: cawData(make([]byte, 512), a)}, &res)
		cawDone <- res
	}()
	<-bs.entered // the compare is reading: the unit is held exclusively
	if unit.mu.TryRLock() {
		t.Fatal("COMPARE AND WRITE does not hold the logical unit exclusively")
	}
	writeDone := make(chan Result, 1)
	go func() {
		var res Result
		n2.Execute(&Command{CDB: cdb10(OpWrite10, 0, 7, 1), Dir: DirToDevice, Data: b}, &res)
		writeDone <- res
	}()
	select {
	case <-writeDone:
		t.Fatal("a WRITE from another nexus landed between the compare and the write")
	case <-time.After(50 * time.Millisecond):
	}
	close(bs.release)
	if res := <-cawDone; res.Status != StatusGood {
		t.Fatalf("COMPARE AND WRITE: %#x % x", res.Status, res.Sense)
	}
	if res := <-writeDone; res.Status != StatusGood {
		t.Fatalf("WRITE: %#x", res.Status)
	}
	if !bytes.Equal(readBlock(t, n2, 7), b) {
		t.Fatal("the WRITE did not land after the COMPARE AND WRITE")
	}
}

// TestCompareAndWriteCounter: nexuses increment a counter in one block with
// read + COMPARE AND WRITE, retrying on miscompare; no increment is lost.
func TestCompareAndWriteCounter(t *testing.T) {
	r, _ := store.NewRAM(1<<20, store.RAMOptions{})
	unit := newUnit(t)
	const nexuses, each = 4, 200
	var wg sync.WaitGroup
	for i := 0; i < nexuses; i++ {
		d := NewDisk(r, DiskOptions{Unit: unit, WriteCache: true})
		wg.Add(1)
		go func() {
			defer wg.Done()
			cur, next := make([]byte, 512), make([]byte, 512)
			for done := 0; done < each; {
				var res Result
				d.Execute(&Command{CDB: cdb10(OpRead10, 0, 3, 1), Dir: DirFromDevice, Data: cur}, &res)
				if res.Status != StatusGood {
					t.Errorf("READ: %#x", res.Status)
					return
				}
				binary.BigEndian.PutUint64(next, binary.BigEndian.Uint64(cur)+1)
				d.Execute(&Command{CDB: caw(0, 3, 1), Dir: DirToDevice, Data: cawData(cur, next)}, &res)
				switch {
				case res.Status == StatusGood:
					done++
				case res.Status == StatusCheckCondition && res.Sense[2]&0x0F == KeyMiscompare:
				default:
					t.Errorf("COMPARE AND WRITE: %#x % x", res.Status, res.Sense)
					return
				}
			}
		}()
	}
	wg.Wait()
	d := NewDisk(r, DiskOptions{Unit: unit})
	if got := binary.BigEndian.Uint64(readBlock(t, d, 3)); got != nexuses*each {
		t.Fatalf("counter %d, want %d", got, nexuses*each)
	}
}

func TestWriteAndVerify(t *testing.T) {
	r, _ := store.NewRAM(1<<20, store.RAMOptions{})
	h := &hookStore{Store: r}
	d := NewDisk(h, DiskOptions{WriteCache: true})
	p := bytes.Repeat([]byte{0x3C}, 1024)
	for _, op := range []byte{OpWriteVerify10, OpWriteVerify16} {
		mk := func(flags byte, lba uint32, n uint16) []byte {
			if op == OpWriteVerify10 {
				return cdb10(op, flags, lba, n)
			}
			return cdb16(op, flags, uint64(lba), uint32(n))
		}
		fuas := h.fuas.Load()
		wantGood(t, run(t, d, DirToDevice, p, mk(0, 10, 2)...))
		wantGood(t, run(t, d, DirToDevice, p, mk(0x02, 12, 2)...)) // BYTCHK 01b: compared after writing
		if h.fuas.Load()-fuas != 2 {
			t.Fatalf("%#x: %d durable writes, want 2 (the medium is what gets verified)", op, h.fuas.Load()-fuas)
		}
		if !bytes.Equal(readBlock(t, d, 13), p[512:]) {
			t.Fatalf("%#x did not write", op)
		}
		wantGood(t, run(t, d, DirNone, nil, mk(0, 10, 0)...))
		wantSense(t, run(t, d, DirToDevice, p[:512], mk(0, 10, 2)...), KeyIllegalRequest, 0x0E, 0x03)
		wantSense(t, run(t, d, DirToDevice, p, mk(0, 2047, 2)...), KeyIllegalRequest, 0x21, 0)
		wantSense(t, run(t, d, DirToDevice, p, mk(0x20, 10, 2)...), KeyIllegalRequest, 0x24, 0)
		wantSense(t, run(t, d, DirToDevice, p, mk(0x06, 10, 2)...), KeyIllegalRequest, 0x24, 0) // BYTCHK 11b
	}
	// A medium that reads back something else: MISCOMPARE.
	liar := &lyingStore{Store: r}
	wantSense(t, run(t, NewDisk(liar, DiskOptions{}), DirToDevice, p, cdb10(OpWriteVerify10, 0x02, 20, 2)...), KeyMiscompare, 0x1D, 0)
}

// lyingStore returns a flipped byte on every read.
type lyingStore struct{ store.Store }

func (s *lyingStore) ReadAt(p []byte, off int64) (int, error) {
	n, err := s.Store.ReadAt(p, off)
	if len(p) > 100 {
		p[100] ^= 0xFF
	}
	return n, err
}

func getLBAStatus(lba uint64, alloc uint32) []byte {
	c := make([]byte, 16)
	c[0], c[1] = OpServiceActionIn16, SAGetLBAStatus
	binary.BigEndian.PutUint64(c[2:], lba)
	binary.BigEndian.PutUint32(c[10:], alloc)
	return c
}

type lbaRun struct {
	lba    uint64
	n      uint32
	status byte
}

func parseLBAStatus(t *testing.T, b []byte) []lbaRun {
	t.Helper()
	if len(b) < 8 || int(be32(b))+4 != len(b) || (len(b)-8)%16 != 0 {
		t.Fatalf("GET LBA STATUS data % x", b)
	}
	var out []lbaRun
	for p := b[8:]; len(p) >= 16; p = p[16:] {
		out = append(out, lbaRun{be64(p), be32(p[8:]), p[12] & 0x0F})
	}
	return out
}

func TestGetLBAStatus(t *testing.T) {
	d, r := newRAMDisk(t, 1<<20, store.RAMOptions{}, DiskOptions{Discard: true})
	buf := make([]byte, 4096)
	res := run(t, d, DirFromDevice, buf, getLBAStatus(0, 4096)...)
	wantGood(t, res)
	if got := parseLBAStatus(t, buf[:res.DataLen]); len(got) != 1 || got[0] != (lbaRun{0, 2048, 1}) {
		t.Fatalf("empty disk: %v", got)
	}
	r.WriteAt(make([]byte, 8192), 64*512) // blocks 64..79 mapped
	res = run(t, d, DirFromDevice, buf, getLBAStatus(10, 4096)...)
	want := []lbaRun{{10, 54, 1}, {64, 16, 0}, {80, 2048 - 80, 1}}
	if got := parseLBAStatus(t, buf[:res.DataLen]); len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("after a write: %v, want %v", got, want)
	}
	// Truncation by the allocation length; the parameter data length still
	// says how much there was... of the descriptors built for that length.
	res = run(t, d, DirFromDevice, buf, getLBAStatus(10, 24)...)
	if res.Status != StatusGood || res.DataLen != 24 || buf[8+7] != 10 {
		t.Fatalf("alloc 24: %#x %d bytes % x", res.Status, res.DataLen, buf[:24])
	}
	wantGood(t, run(t, d, DirNone, nil, getLBAStatus(0, 0)...))
	wantSense(t, run(t, d, DirFromDevice, buf, getLBAStatus(2048, 4096)...), KeyIllegalRequest, 0x21, 0)
	// A store that cannot tell: everything mapped (or unknown).
	plain := NewDisk(&hookStore{Store: r}, DiskOptions{})
	res = run(t, plain, DirFromDevice, buf, getLBAStatus(100, 4096)...)
	if got := parseLBAStatus(t, buf[:res.DataLen]); len(got) != 1 || got[0] != (lbaRun{100, 1948, 0}) {
		t.Fatalf("store without Extent: %v", got)
	}
}

func TestReportTargetPortGroups(t *testing.T) {
	d, _ := newRAMDisk(t, 1<<20, store.RAMOptions{}, DiskOptions{})
	rtpg := func(b1 byte, alloc uint32) []byte {
		c := make([]byte, 12)
		c[0], c[1] = OpMaintenanceIn, b1
		binary.BigEndian.PutUint32(c[6:], alloc)
		return c
	}
	buf := make([]byte, 256)
	res := run(t, d, DirFromDevice, buf, rtpg(SAReportTargetPGs, 256)...)
	wantGood(t, res)
	want := []byte{0, 0, 0, 12, 0x00, 0x01, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1}
	if !bytes.Equal(buf[:res.DataLen], want) {
		t.Fatalf("RTPG % x, want % x", buf[:res.DataLen], want)
	}
	res = run(t, d, DirFromDevice, buf, rtpg(0x20|SAReportTargetPGs, 256)...)
	if res.DataLen != 20 || buf[4] != 0x10 || be32(buf) != 16 {
		t.Fatalf("extended RTPG % x", buf[:res.DataLen])
	}
	if res := run(t, d, DirFromDevice, buf, rtpg(SAReportTargetPGs, 4)...); res.DataLen != 4 {
		t.Fatalf("alloc 4: %d bytes", res.DataLen)
	}
	wantSense(t, run(t, d, DirFromDevice, buf, rtpg(0x40|SAReportTargetPGs, 256)...), KeyIllegalRequest, 0x24, 0)
}

func TestLogSense(t *testing.T) {
	d, _ := newRAMDisk(t, 1<<20, store.RAMOptions{}, DiskOptions{})
	logs := func(b1, pcPage, sub byte, ptr, alloc uint16) []byte {
		c := []byte{OpLogSense, b1, pcPage, sub, 0, 0, 0, 0, 0, 0}
		binary.BigEndian.PutUint16(c[5:], ptr)
		binary.BigEndian.PutUint16(c[7:], alloc)
		return c
	}
	buf := make([]byte, 255)
	for _, pc := range []byte{0, 0x40, 0x80, 0xC0} {
		res := run(t, d, DirFromDevice, buf, logs(0, pc, 0, 0, 255)...)
		wantGood(t, res)
		if !bytes.Equal(buf[:res.DataLen], []byte{0x80, 0, 0, 2, 0x00, 0x2F}) {
			t.Fatalf("PC %#x supported pages % x", pc, buf[:res.DataLen])
		}
	}
	res := run(t, d, DirFromDevice, buf, logs(0, 0x40, 0xFF, 0, 255)...)
	if res.DataLen != 10 || buf[0] != 0xC0 || buf[1] != 0xFF || be16(buf[2:]) != 6 {
		t.Fatalf("supported subpages % x", buf[:res.DataLen])
	}
	res = run(t, d, DirFromDevice, buf, logs(0, 0x40|0x2F, 0, 0, 255)...)
	if res.DataLen != 12 || buf[0] != 0x80|0x2F || buf[8] != 0 || buf[9] != 0 {
		t.Fatalf("informational exceptions % x", buf[:res.DataLen])
	}
	if res := run(t, d, DirFromDevice, buf, logs(0, 0x40, 0, 0, 2)...); res.DataLen != 2 {
		t.Fatalf("alloc 2: %d", res.DataLen)
	}
	for _, c := range [][]byte{logs(0x01, 0x40, 0, 0, 255), logs(0x02, 0x40, 0, 0, 255), logs(0, 0x40|0x0D, 0, 0, 255),
		logs(0, 0x40|0x2F, 0x01, 0, 255), logs(0, 0x40|0x2F, 0, 1, 255)} {
		wantSense(t, run(t, d, DirFromDevice, buf, c...), KeyIllegalRequest, 0x24, 0)
	}
}

func TestObsoleteNoOps(t *testing.T) {
	d, _ := newRAMDisk(t, 1<<20, store.RAMOptions{}, DiskOptions{})
	wantGood(t, run(t, d, DirNone, nil, OpRezeroUnit, 0, 0, 0, 0, 0))
	wantGood(t, run(t, d, DirNone, nil, OpSeek6, 0, 0x07, 0xFF, 0, 0))
	wantGood(t, run(t, d, DirNone, nil, cdb10(OpSeek10, 0, 2047, 0)...))
	wantSense(t, run(t, d, DirNone, nil, cdb10(OpSeek10, 0, 2048, 0)...), KeyIllegalRequest, 0x21, 0)
	// READ CAPACITY(16) ignores its obsolete LBA and PMI; (10) keeps the check.
	buf := make([]byte, 32)
	c := rc16(32)
	c[9] = 5
	wantGood(t, run(t, d, DirFromDevice, buf, c...))
	wantSense(t, run(t, d, DirFromDevice, buf, OpReadCapacity10, 0, 0, 0, 0, 5, 0, 0, 0, 0), KeyIllegalRequest, 0x24, 0)
	// READ CAPACITY(10) into a buffer shorter than its 8 bytes: refused.
	wantSense(t, run(t, d, DirFromDevice, make([]byte, 4), OpReadCapacity10, 0, 0, 0, 0, 0, 0, 0, 0, 0), KeyIllegalRequest, 0x24, 0)
	// WRITE SAME with PBDATA or LBDATA: no protection information.
	for _, f := range []byte{0x04, 0x02} {
		res := run(t, d, DirToDevice, make([]byte, 512), cdb10(OpWriteSame10, f, 0, 1)...)
		wantSense(t, res, KeyIllegalRequest, 0x24, 0)
		wantField(t, res, 1)
	}
}
