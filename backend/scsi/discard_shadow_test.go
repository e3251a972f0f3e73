package scsi

import (
	"bytes"
	"encoding/binary"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/govscsi/govscsi/backend/store"
)

// TestDiscardAndWriteSameShadow drives UNMAP and WRITE SAME 10/16 (with and
// without UNMAP, zero and non-zero patterns, NDOB, ranges at the end of the
// device, refused ranges) against a real file store and compares the file's
// bytes with a shadow model after every command: mke2fs discards and ext4's
// lazy inode-table zeroing go through exactly these paths, and any offset
// (LBA vs LBA*blocksize), length or descriptor-parsing slip shows up as a
// byte difference here.
func TestDiscardAndWriteSameShadow(t *testing.T) {
	for _, lbs := range []int{512, 4096} {
		t.Run(map[int]string{512: "lbs512", 4096: "lbs4096"}[lbs], func(t *testing.T) {
			testDiscardShadow(t, lbs)
		})
	}
}

type unmapDesc struct {
	lba uint64
	n   uint32
}

func unmapParams(descs ...unmapDesc) []byte {
	p := make([]byte, 8+16*len(descs))
	binary.BigEndian.PutUint16(p[0:], uint16(6+16*len(descs)))
	binary.BigEndian.PutUint16(p[2:], uint16(16*len(descs)))
	for i, d := range descs {
		binary.BigEndian.PutUint64(p[8+16*i:], d.lba)
		binary.BigEndian.PutUint32(p[8+16*i+8:], d.n)
	}
	return p
}

func testDiscardShadow(t *testing.T, lbs int) {
	const size = 1 << 20
	blocks := uint64(size / lbs)
	p := filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(p, make([]byte, size), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := store.OpenFile(p, store.FileOptions{LogicalBlockSize: lbs})
	if err != nil {
		t.Fatal(err)
	}
	d := NewDisk(f, DiskOptions{Discard: true, WriteCache: true}).(*Disk)
	defer d.Close()

	shadow := make([]byte, size)
	rand.New(rand.NewSource(int64(lbs))).Read(shadow)
	for off := 0; off < size; off += 64 << 10 {
		wantGood(t, run(t, d, DirToDevice, bytes.Clone(shadow[off:off+64<<10]),
			cdb10(OpWrite10, 0, uint32(off/lbs), uint16((64<<10)/lbs))...))
	}
	compare := func(step string) {
		t.Helper()
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, shadow) {
			for i := range got {
				if got[i] != shadow[i] {
					t.Fatalf("%s: first difference at byte %d (block %d): file %#x, model %#x", step, i, i/lbs, got[i], shadow[i])
				}
			}
		}
		// Reading back through the disk must agree as well.
		buf := make([]byte, 64<<10)
		for off := 0; off < size; off += len(buf) {
			wantGood(t, run(t, d, DirFromDevice, buf, cdb10(OpRead10, 0, uint32(off/lbs), uint16(len(buf)/lbs))...))
			if !bytes.Equal(buf, shadow[off:off+len(buf)]) {
				t.Fatalf("%s: READ at block %d disagrees with the model", step, off/lbs)
			}
		}
	}
	compare("initial")
	fill := func(lba, n uint64, pat []byte) {
		for b := lba; b < lba+n; b++ {
			if pat == nil {
				clear(shadow[int(b)*lbs : int(b+1)*lbs])
			} else {
				copy(shadow[int(b)*lbs:], pat)
			}
		}
	}
	pattern := func(seed byte) []byte {
		b := make([]byte, lbs)
		for i := range b {
			b[i] = seed + byte(i*7)
		}
		return b
	}
	zeroBlock := make([]byte, lbs)
	const ws10UNMAP, ws16UNMAP, ws16NDOB = 0x08, 0x08, 0x01

	steps := []struct {
		name string
		cdb  []byte
		dir  Direction
		data []byte
		lba  uint64
		n    uint64
		pat  []byte // nil: zeros
		fail bool   // refused: the model must not change
	}{
		{name: "WS10 pattern", cdb: cdb10(OpWriteSame10, 0, 3, 5), dir: DirToDevice, data: pattern(1), lba: 3, n: 5, pat: pattern(1)},
		{name: "WS10 zeros no UNMAP", cdb: cdb10(OpWriteSame10, 0, 20, 9), dir: DirToDevice, data: zeroBlock, lba: 20, n: 9},
		{name: "WS10 zeros UNMAP", cdb: cdb10(OpWriteSame10, ws10UNMAP, 40, 17), dir: DirToDevice, data: zeroBlock, lba: 40, n: 17},
		{name: "WS10 pattern UNMAP writes the pattern", cdb: cdb10(OpWriteSame10, ws10UNMAP, 60, 11), dir: DirToDevice, data: pattern(2), lba: 60, n: 11, pat: pattern(2)},
		{name: "WS16 pattern", cdb: cdb16(OpWriteSame16, 0, 80, 33), dir: DirToDevice, data: pattern(3), lba: 80, n: 33, pat: pattern(3)},
		{name: "WS16 zeros UNMAP", cdb: cdb16(OpWriteSame16, ws16UNMAP, 120, 64), dir: DirToDevice, data: zeroBlock, lba: 120, n: 64},
		{name: "WS16 NDOB", cdb: cdb16(OpWriteSame16, ws16NDOB, 190, 7), dir: DirNone, lba: 190, n: 7},
		{name: "WS16 NDOB UNMAP", cdb: cdb16(OpWriteSame16, ws16NDOB|ws16UNMAP, 200, 13), dir: DirNone, lba: 200, n: 13},
		{name: "WS16 pattern at the end", cdb: cdb16(OpWriteSame16, 0, blocks-3, 3), dir: DirToDevice, data: pattern(4), lba: blocks - 3, n: 3, pat: pattern(4)},
		{name: "WS10 UNMAP at the end", cdb: cdb10(OpWriteSame10, ws10UNMAP, uint32(blocks-9), 5), dir: DirToDevice, data: zeroBlock, lba: blocks - 9, n: 5},
		{name: "WS16 past the end", cdb: cdb16(OpWriteSame16, 0, blocks-2, 3), dir: DirToDevice, data: pattern(5), fail: true},
		{name: "WS10 zero blocks (WSNZ=1)", cdb: cdb10(OpWriteSame10, 0, 5, 0), dir: DirToDevice, data: pattern(6), fail: true},
		{name: "UNMAP three descriptors", cdb: unmapCDB(8 + 48), dir: DirToDevice,
			data: unmapParams(unmapDesc{230, 10}, unmapDesc{250, 0}, unmapDesc{blocks - 1, 1})},
		{name: "UNMAP refused when one descriptor is out of range", cdb: unmapCDB(8 + 32), dir: DirToDevice,
			data: unmapParams(unmapDesc{300, 4}, unmapDesc{blocks - 1, 2}), fail: true},
	}
	for _, s := range steps {
		res := run(t, d, s.dir, s.data, s.cdb...)
		if s.fail {
			if res.Status != StatusCheckCondition {
				t.Fatalf("%s: status %#x, want CHECK CONDITION", s.name, res.Status)
			}
		} else {
			wantGood(t, res)
			if s.cdb[0] == OpUnmap {
				// LBPRZ: unmapped blocks read as zeros.
				fill(230, 10, nil)
				fill(blocks-1, 1, nil)
			} else {
				fill(s.lba, s.n, s.pat)
			}
		}
		compare(s.name)
	}
}

// unmapCDB is UNMAP with a PARAMETER LIST LENGTH of plen.
func unmapCDB(plen uint16) []byte {
	c := make([]byte, 10)
	c[0] = OpUnmap
	binary.BigEndian.PutUint16(c[7:], plen)
	return c
}
