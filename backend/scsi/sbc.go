package scsi

import (
	"encoding/binary"
	"errors"
	"sync"
	"syscall"

	"github.com/govscsi/govscsi/backend/store"
)

var be = binary.BigEndian

// rangeCheck is the one LBA/length choke point: lba+n must not wrap and must
// stay within the capacity. n == 0 is legal for any lba <= capacity.
func (d *Disk) rangeCheck(lba, n uint64) check {
	c := d.capacity.Load()
	end := lba + n
	if end < lba || lba > c || end > c {
		return lbaOutOfRange
	}
	return good
}

// storeError maps a store error to sense. Choices (documented in doc.go):
// ENOSPC/EDQUOT (or the RAM limit) -> 07/27/07 SPACE ALLOCATION FAILED WRITE
// PROTECT, which Linux turns into -ENOSPC; EROFS -> 07/27/00; everything
// else -> MEDIUM ERROR 03/11/00 (read) or 03/0C/00 (write) with the
// command's first LBA in INFORMATION.
func storeError(err error, write bool, lba uint64) check {
	switch {
	case errors.Is(err, store.ErrNoSpace), errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return spaceAllocFailed
	case errors.Is(err, store.ErrReadOnly), errors.Is(err, syscall.EROFS):
		return writeProtected
	case write:
		return writeError.withInfo(lba)
	default:
		return unrecoveredRead.withInfo(lba)
	}
}

// rwFields decodes LBA, transfer length and the position of the length field.
func rwFields(cdb []byte) (lba, n uint64, lenField int) {
	switch cdb[0] {
	case OpRead6, OpWrite6:
		lba = uint64(cdb[1]&0x1F)<<16 | uint64(cdb[2])<<8 | uint64(cdb[3])
		n = uint64(cdb[4])
		if n == 0 {
			n = 256 // SBC: a 6-byte transfer length of 0 means 256 blocks
		}
		return lba, n, 4
	case OpRead10, OpWrite10, OpVerify10, OpPreFetch10, OpSyncCache10, OpWriteSame10, OpWriteVerify10:
		return uint64(be.Uint32(cdb[2:])), uint64(be.Uint16(cdb[7:])), 7
	case OpRead12, OpWrite12:
		return uint64(be.Uint32(cdb[2:])), uint64(be.Uint32(cdb[6:])), 6
	default: // 16-byte forms
		return be.Uint64(cdb[2:]), uint64(be.Uint32(cdb[10:])), 10
	}
}

func isWrite(op byte) bool {
	return op == OpWrite6 || op == OpWrite10 || op == OpWrite12 || op == OpWrite16
}

// sbcReadWrite serves READ/WRITE 6/10/12/16.
func sbcReadWrite(d *Disk, cdb []byte, cmd *Command, res *Result) check {
	lba, n, lenField := rwFields(cdb)
	write := isWrite(cdb[0])
	fua := false
	if cdb[0] != OpRead6 && cdb[0] != OpWrite6 {
		if cdb[1]&0xE0 != 0 { // RDPROTECT/WRPROTECT: we have no protection information
			return invalidCDB(1, 7)
		}
		fua = cdb[1]&0x08 != 0
	}
	if c := d.rangeCheck(lba, n); c.failed {
		return c
	}
	if n == 0 {
		return good
	}
	if n > uint64(d.maxXfer) {
		return invalidCDB(lenField, -1)
	}
	bytes := int(n) << d.lbShift
	off := int64(lba) << d.lbShift
	if write {
		p, c := dataOutIU(cmd, bytes)
		if c.failed {
			return c
		}
		var err error
		if fua || !d.wce.Load() {
			_, err = store.WriteFUA(d.st, p, off)
		} else {
			_, err = d.st.WriteAt(p, off)
		}
		if err != nil {
			return storeError(err, true, lba)
		}
		return good
	}
	if (cmd.Dir != DirFromDevice && cmd.Dir != DirBidirectional) || len(cmd.Data) < bytes {
		return invalidCDB(lenField, -1)
	}
	if _, err := d.st.ReadAt(cmd.Data[:bytes], off); err != nil {
		return storeError(err, false, lba)
	}
	// FUA on a read asks for the medium, not a cache; our stores read
	// through the page cache, which is coherent with the medium, so
	// there is nothing extra to do.
	res.DataLen = bytes
	return good
}

func sbcWriteProtected(d *Disk, cdb []byte, cmd *Command, res *Result) check {
	return writeProtected
}

// sbcReadCapacity10 answers READ CAPACITY(10): last LBA (0xFFFFFFFF when the
// disk is too big, telling the guest to use the 16-byte form) and block size.
func sbcReadCapacity10(d *Disk, cdb []byte, cmd *Command, res *Result) check {
	if cdb[8]&0x01 == 0 && be.Uint32(cdb[2:]) != 0 {
		return invalidCDB(2, -1) // an LBA without PMI is invalid (SBC-3 5.15)
	}
	if d.capacity.Load() == 0 {
		return mediumNotPresent
	}
	if cmd.Dir == DirFromDevice && len(cmd.Data) < 8 {
		return shortDataIn // the 8 bytes have no allocation length to cut them
	}
	var b [8]byte
	last := d.capacity.Load() - 1
	if last > 0xFFFFFFFE {
		last = 0xFFFFFFFF
	}
	be.PutUint32(b[0:], uint32(last))
	be.PutUint32(b[4:], d.lbs)
	dataIn(cmd, res, b[:], len(b))
	return good
}

// sbcReadCapacity16 answers READ CAPACITY(16) (SERVICE ACTION IN 0x9E/0x10).
// Its LBA field and PMI bit are obsolete (SBC-3) and ignored, as LIO does.
func sbcReadCapacity16(d *Disk, cdb []byte, cmd *Command, res *Result) check {
	if d.capacity.Load() == 0 {
		return mediumNotPresent
	}
	var b [32]byte
	be.PutUint64(b[0:], d.capacity.Load()-1)
	be.PutUint32(b[8:], d.lbs)
	b[13] = d.physExp & 0x0F // LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT
	if d.disc != nil {
		b[14] |= 0x80 // LBPME
		if d.disc.DiscardZeroes() {
			b[14] |= 0x40 // LBPRZ
		}
	}
	dataIn(cmd, res, b[:], int(be.Uint32(cdb[10:])))
	return good
}

// sbcSyncCache serves SYNCHRONIZE CACHE 10/16. IMMED is honoured by doing
// the flush synchronously anyway, which SBC allows.
func sbcSyncCache(d *Disk, cdb []byte, cmd *Command, res *Result) check {
	lba, n, _ := rwFields(cdb)
	if c := d.rangeCheck(lba, n); c.failed {
		return c
	}
	if err := d.st.Sync(); err != nil {
		return storeError(err, true, lba)
	}
	return good
}

// sbcPreFetch serves PRE-FETCH 10/16: a range check; we never cache.
func sbcPreFetch(d *Disk, cdb []byte, cmd *Command, res *Result) check {
	lba, n, _ := rwFields(cdb)
	return d.rangeCheck(lba, n)
}

// sbcSeek serves the obsolete SEEK(6)/(10) (and REZERO UNIT through
// spcTestUnitReady) as LIO does: nothing moves, the LBA must exist.
func sbcSeek(d *Disk, cdb []byte, cmd *Command, res *Result) check {
	var lba uint64
	if cdb[0] == OpSeek6 {
		lba = uint64(cdb[1]&0x1F)<<16 | uint64(cdb[2])<<8 | uint64(cdb[3])
	} else {
		lba = uint64(be.Uint32(cdb[2:]))
	}
	return d.rangeCheck(lba, 1)
}

// sbcWriteVerify serves WRITE AND VERIFY 10/16: a write that is durable
// before it completes (the medium is what gets verified), then with BYTCHK
// 01b the blocks are read back and compared with the data-out buffer
// (MISCOMPARE DURING VERIFY OPERATION with the offset in INFORMATION).
// BYTCHK 10b is reserved and 11b (one block for all) is not supported.
func sbcWriteVerify(d *Disk, cdb []byte, cmd *Command, res *Result) check {
	lba, n, lenField := rwFields(cdb)
	if cdb[1]&0xE0 != 0 {
		return invalidCDB(1, 7) // WRPROTECT: no protection information
	}
	bytchk := (cdb[1] >> 1) & 0x03
	if bytchk > 1 {
		return invalidCDB(1, 2)
	}
	if c := d.rangeCheck(lba, n); c.failed {
		return c
	}
	if n == 0 {
		return good
	}
	if n > uint64(d.maxXfer) {
		return invalidCDB(lenField, -1)
	}
	bytes := int(n) << d.lbShift
	p, c := dataOutIU(cmd, bytes)
	if c.failed {
		return c
	}
	off := int64(lba) << d.lbShift
	if _, err := store.WriteFUA(d.st, p, off); err != nil {
		return storeError(err, true, lba)
	}
	if bytchk == 0 {
		return good
	}
	return d.compare(p, off, lba)
}

// compare reads len(want) bytes at off and compares them with want:
// MISCOMPARE DURING VERIFY OPERATION with the offset of the first
// difference (in want) in INFORMATION.
func (d *Disk) compare(want []byte, off int64, lba uint64) check {
	bp := scratchPool.Get().(*[]byte)
	defer scratchPool.Put(bp)
	buf := *bp
	for done := 0; done < len(want); {
		chunk := min(len(want)-done, len(buf))
		if _, err := d.st.ReadAt(buf[:chunk], off+int64(done)); err != nil {
			return storeError(err, false, lba+uint64(done)>>d.lbShift)
		}
		for i := 0; i < chunk; i++ {
			if buf[i] != want[done+i] {
				return miscompareOnVerify.withInfo(uint64(done + i))
			}
		}
		done += chunk
	}
	return good
}

// sbcCompareAndWrite serves COMPARE AND WRITE (SBC-3 5.2): the data-out
// buffer holds NUMBER OF LOGICAL BLOCKS blocks to compare with the medium,
// then as many to write. The whole command runs under the logical unit's
// exclusive lock, so no other writer of the unit, from any nexus, lands
// between the compare and the write. A miscompare writes nothing and
// reports MISCOMPARE DURING VERIFY OPERATION with the offset of the first
// differing byte in INFORMATION.
func sbcCompareAndWrite(d *Disk, cdb []byte, cmd *Command, res *Result) check {
	if cdb[1]&0xE0 != 0 {
		return invalidCDB(1, 7) // WRPROTECT
	}
	lba, n := be.Uint64(cdb[2:]), uint64(cdb[13])
	if n > maxCompareAndWrite {
		return invalidCDB(13, -1)
	}
	if c := d.rangeCheck(lba, n); c.failed {
		return c
	}
	if n == 0 {
		return good // SBC-3: not an error, nothing compared or written
	}
	bytes := int(n) << d.lbShift
	p, c := dataOutIU(cmd, 2*bytes)
	if c.failed {
		return c
	}
	off := int64(lba) << d.lbShift
	if c := d.compare(p[:bytes], off, lba); c.failed {
		return c
	}
	var err error
	if cdb[1]&0x08 != 0 || !d.wce.Load() {
		_, err = store.WriteFUA(d.st, p[bytes:], off)
	} else {
		_, err = d.st.WriteAt(p[bytes:], off)
	}
	if err != nil {
		return storeError(err, true, lba)
	}
	return good
}

// LBA status descriptors one GET LBA STATUS returns at most.
const maxLBAStatusDescriptors = 64

// sbcGetLBAStatus serves GET LBA STATUS (SERVICE ACTION IN 0x9E/0x12):
// descriptors from the starting LBA on, each a run of mapped (0h) or
// deallocated (1h) blocks as the store knows them (store.Mapper: sparse
// files, RAM). A store that cannot tell reports everything mapped.
func sbcGetLBAStatus(d *Disk, cdb []byte, cmd *Command, res *Result) check {
	lba, alloc := be.Uint64(cdb[2:]), int(be.Uint32(cdb[10:]))
	capa := d.capacity.Load()
	if lba >= capa {
		return lbaOutOfRange
	}
	if alloc == 0 {
		return good
	}
	want := min(max((alloc-8)/16, 1), maxLBAStatusDescriptors)
	b := make([]byte, 8, 8+16*want)
	mapper, _ := d.st.(store.Mapper)
	for pos := lba; pos < capa && (len(b)-8)/16 < want; {
		mapped, blocks := true, capa-pos
		if mapper != nil {
			m, n, err := mapper.Extent(int64(pos) << d.lbShift)
			if err != nil {
				return storeError(err, false, pos)
			}
			mapped, blocks = m, max(uint64(n)>>d.lbShift, 1)
		}
		blocks = min(blocks, capa-pos, 0xFFFFFFFF)
		status := byte(0x01) // deallocated
		if mapped {
			status = 0x00 // mapped (or unknown)
		}
		if k := len(b); k > 8 && b[k-4] == status && uint64(be.Uint32(b[k-8:]))+blocks <= 0xFFFFFFFF {
			be.PutUint32(b[k-8:], be.Uint32(b[k-8:])+uint32(blocks)) // same state: one run
		} else {
			b = be.AppendUint64(b, pos)
			b = be.AppendUint32(b, uint32(blocks))
			b = append(b, status, 0, 0, 0)
		}
		pos += blocks
	}
	be.PutUint32(b[0:], uint32(len(b)-4))
	dataIn(cmd, res, b, alloc)
	return good
}

// scratch buffers for WRITE SAME and VERIFY (pointers: Get/Put don't allocate).
const scratchSize = 64 << 10

var scratchPool = sync.Pool{New: func() any { b := make([]byte, scratchSize); return &b }}

// sbcVerify serves VERIFY 10/16. BYTCHK 0 checks the range and reads the
// blocks back (a medium error shows up as one); BYTCHK 1 compares the
// data-out buffer with the medium; BYTCHK 3 compares one block with each.
func sbcVerify(d *Disk, cdb []byte, cmd *Command, res *Result) check {
	lba, n, lenField := rwFields(cdb)
	if cdb[1]&0xE0 != 0 {
		return invalidCDB(1, 7) // VRPROTECT
	}
	bytchk := (cdb[1] >> 1) & 0x03
	if bytchk == 2 {
		return invalidCDB(1, 2)
	}
	if c := d.rangeCheck(lba, n); c.failed {
		return c
	}
	if n == 0 {
		return good
	}
	var want []byte
	switch bytchk {
	case 1:
		if n > uint64(d.maxXfer) {
			return invalidCDB(lenField, -1)
		}
		var c check
		if want, c = dataOut(cmd, int(n)<<d.lbShift, lenField); c.failed {
			return c
		}
	case 3:
		if n > uint64(d.maxUnmap) {
			return invalidCDB(lenField, -1)
		}
		var c check
		if want, c = dataOut(cmd, int(d.lbs), lenField); c.failed {
			return c
		}
	default:
		if n > uint64(d.maxUnmap) {
			return invalidCDB(lenField, -1)
		}
	}
	bp := scratchPool.Get().(*[]byte)
	defer scratchPool.Put(bp)
	buf := *bp
	total := n << d.lbShift
	for done := uint64(0); done < total; {
		chunk := min(total-done, uint64(len(buf)))
		if _, err := d.st.ReadAt(buf[:chunk], int64(lba<<d.lbShift+done)); err != nil {
			return storeError(err, false, lba+done>>d.lbShift)
		}
		for i := uint64(0); i < chunk; i++ {
			var w byte
			switch bytchk {
			case 1:
				w = want[done+i]
			case 3:
				w = want[(done+i)&uint64(d.lbs-1)]
			default:
				continue
			}
			if buf[i] != w {
				// INFORMATION: offset of the first miscompare in the data-out buffer.
				off := done + i
				if bytchk == 3 {
					off &= uint64(d.lbs - 1)
				}
				return miscompareOnVerify.withInfo(off)
			}
		}
		done += chunk
	}
	return good
}

// sbcWriteSame serves WRITE SAME 10/16. With UNMAP set (and discard on) a
// block of zeros becomes a discard when the store guarantees zeros;
// otherwise the block is written n times.
func sbcWriteSame(d *Disk, cdb []byte, cmd *Command, res *Result) check {
	lba, n, lenField := rwFields(cdb)
	if cdb[1]&0xE0 != 0 {
		return invalidCDB(1, 7) // WRPROTECT
	}
	if cdb[1]&0x10 != 0 {
		return invalidCDB(1, 4) // ANCHOR: no anchored state
	}
	if cdb[1]&0x04 != 0 {
		return invalidCDB(1, 2) // PBDATA: no protection information
	}
	if cdb[1]&0x02 != 0 {
		return invalidCDB(1, 1) // LBDATA (obsolete): not supported
	}
	unmap := cdb[1]&0x08 != 0
	ndob := cdb[0] == OpWriteSame16 && cdb[1]&0x01 != 0
	if unmap && d.disc == nil {
		return invalidCDB(1, 3) // LBPWS is 0: UNMAP not allowed
	}
	if n == 0 {
		return invalidCDB(lenField, -1) // WSNZ=1 in the block limits page
	}
	if n > uint64(d.maxUnmap) {
		return invalidCDB(lenField, -1)
	}
	if c := d.rangeCheck(lba, n); c.failed {
		return c
	}
	var block []byte
	if !ndob {
		var c check
		if block, c = dataOut(cmd, int(d.lbs), lenField); c.failed {
			return c
		}
	}
	zero := true
	for _, b := range block {
		if b != 0 {
			zero = false
			break
		}
	}
	off, total := int64(lba<<d.lbShift), int64(n<<d.lbShift)
	if unmap && zero && d.disc.DiscardZeroes() {
		err := d.disc.Discard(off, total)
		if err == nil {
			return d.syncIfWriteThrough(lba)
		}
		if !errors.Is(err, store.ErrUnsupported) {
			return storeError(err, true, lba)
		}
		// The backing cannot deallocate after all: write the zeros.
	}
	if zero && d.zeroer != nil {
		// Zeros without moving them: FALLOC_FL_ZERO_RANGE or BLKZEROOUT
		// (which unmaps on devices that can). Fall back to writing on error.
		if err := d.zeroer.ZeroRange(off, total); err == nil {
			return d.syncIfWriteThrough(lba)
		}
	}
	if c := d.writeRepeated(off, total, block, zero, lba); c.failed {
		return c
	}
	return d.syncIfWriteThrough(lba)
}

// syncIfWriteThrough flushes when the write cache is off (WCE=0).
func (d *Disk) syncIfWriteThrough(lba uint64) check {
	if !d.wce.Load() {
		if err := d.st.Sync(); err != nil {
			return storeError(err, true, lba)
		}
	}
	return good
}

// writeRepeated writes block (or zeros) over [off, off+total).
func (d *Disk) writeRepeated(off, total int64, block []byte, zero bool, lba uint64) check {
	bp := scratchPool.Get().(*[]byte)
	defer scratchPool.Put(bp)
	buf := *bp
	if zero {
		clear(buf)
	} else {
		for i := 0; i < len(buf); i += len(block) {
			copy(buf[i:], block)
		}
	}
	for done := int64(0); done < total; {
		chunk := min(total-done, int64(len(buf)))
		if _, err := d.st.WriteAt(buf[:chunk], off+done); err != nil {
			return storeError(err, true, lba+uint64(done)>>d.lbShift)
		}
		done += chunk
	}
	return good
}

// maxUnmapDescriptors is advertised in the block limits page.
const maxUnmapDescriptors = 256

// sbcUnmap serves UNMAP: the parameter list is validated completely before
// anything is discarded.
func sbcUnmap(d *Disk, cdb []byte, cmd *Command, res *Result) check {
	if cdb[1]&0x01 != 0 {
		return invalidCDB(1, 0) // ANCHOR
	}
	plen := int(be.Uint16(cdb[7:]))
	if plen == 0 {
		return good // SBC: not an error
	}
	if plen < 8 {
		return paramListLenError
	}
	p, c := dataOut(cmd, plen, 7)
	if c.failed {
		return c
	}
	dataLen := int(be.Uint16(p[0:]))
	bdLen := int(be.Uint16(p[2:]))
	if dataLen+2 > plen || bdLen+8 > plen {
		return paramListLenError
	}
	if bdLen%16 != 0 {
		return invalidParam(2)
	}
	count := bdLen / 16
	if count > maxUnmapDescriptors {
		return invalidParam(2)
	}
	for i := 0; i < count; i++ {
		desc := p[8+16*i:]
		lba, n := be.Uint64(desc[0:]), uint64(be.Uint32(desc[8:]))
		if c := d.rangeCheck(lba, n); c.failed {
			return c
		}
		if n > uint64(d.maxUnmap) {
			return invalidParam(8 + 16*i + 8)
		}
	}
	for i := 0; i < count; i++ {
		desc := p[8+16*i:]
		lba, n := be.Uint64(desc[0:]), uint64(be.Uint32(desc[8:]))
		if n == 0 {
			continue
		}
		off, total := int64(lba<<d.lbShift), int64(n<<d.lbShift)
		err := d.disc.Discard(off, total)
		if errors.Is(err, store.ErrUnsupported) && d.disc.DiscardZeroes() {
			// We promised LBPRZ: unmapped blocks must read as zeros.
			if c := d.writeRepeated(off, total, nil, true, lba); c.failed {
				return c
			}
			continue
		}
		if err != nil && !errors.Is(err, store.ErrUnsupported) {
			// UNMAP is advisory, but a broken backing is worth reporting.
			return storeError(err, true, lba)
		}
	}
	return good
}
