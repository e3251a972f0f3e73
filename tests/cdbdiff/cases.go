package main

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Dir is a case's data direction, as sg_raw is told it.
type Dir byte

const (
	DirNone Dir = 'n' // no data buffer
	DirIn   Dir = 'i' // data-in buffer of Len bytes (sg_raw -r)
	DirOut  Dir = 'o' // Data sent (sg_raw -s), Len == len(Data)
)

// Case is one CDB of the differential list, sent alike to both LUNs.
type Case struct {
	ID    string // unique, "<command>.<variant>"
	Class string // opcode class, for the counts (classes below)
	CDB   []byte
	Dir   Dir
	Len   int
	Data  []byte // DirOut only
}

// Opcode classes of the report.
const (
	ClassRW      = "read-write"  // READ/WRITE 6/10/12/16
	ClassSBC     = "sbc-other"   // capacity, cache, verify, write same, unmap, compare and write, ...
	ClassInquiry = "inquiry-vpd" // INQUIRY and VPD pages
	ClassMode    = "mode"        // MODE SENSE/SELECT
	ClassSPC     = "spc-other"   // TUR, REQUEST SENSE, REPORT LUNS, RSOC, RTPG, LOG SENSE, ...
	ClassPR      = "reservations"
	ClassScan    = "opcode-scan" // every opcode with an all-zero CDB
)

// Classes in report order.
var Classes = []string{ClassRW, ClassSBC, ClassInquiry, ClassMode, ClassSPC, ClassPR, ClassScan}

// Geometry is the size both LUNs share.
type Geometry struct {
	Blocks    uint64 // logical blocks
	BlockSize int
}

var be = binary.BigEndian

// cdbLen is the CDB length implied by an opcode's group code (SPC-4 4.2.5.1);
// the reserved and vendor groups get 16.
func cdbLen(op byte) int {
	switch op >> 5 {
	case 0:
		return 6
	case 1, 2:
		return 10
	case 5:
		return 12
	}
	return 16
}

// list accumulates cases; IDs must be unique.
type list struct {
	g     Geometry
	cases []Case
	seen  map[string]bool
}

func (l *list) add(c Case) {
	if l.seen[c.ID] {
		panic("cdbdiff: duplicate case " + c.ID)
	}
	l.seen[c.ID] = true
	if c.Dir == DirOut {
		c.Len = len(c.Data)
	}
	l.cases = append(l.cases, c)
}

func (l *list) none(class, id string, cdb ...byte) {
	l.add(Case{ID: id, Class: class, CDB: cdb, Dir: DirNone})
}

func (l *list) in(class, id string, n int, cdb ...byte) {
	l.add(Case{ID: id, Class: class, CDB: cdb, Dir: DirIn, Len: n})
}

func (l *list) out(class, id string, data []byte, cdb ...byte) {
	l.add(Case{ID: id, Class: class, CDB: cdb, Dir: DirOut, Data: data})
}

// rwCDB builds a READ/WRITE/VERIFY-style CDB with the LBA and length fields
// where the opcode's length puts them.
func rwCDB(op, flags byte, lba uint64, n uint32) []byte {
	c := make([]byte, cdbLen(op))
	c[0] = op
	switch len(c) {
	case 6:
		c[1] = byte(lba>>16) & 0x1F
		c[2], c[3], c[4] = byte(lba>>8), byte(lba), byte(n)
	case 10:
		c[1] = flags
		be.PutUint32(c[2:], uint32(lba))
		be.PutUint16(c[7:], uint16(n))
	case 12:
		c[1] = flags
		be.PutUint32(c[2:], uint32(lba))
		be.PutUint32(c[6:], n)
	case 16:
		c[1] = flags
		be.PutUint64(c[2:], lba)
		be.PutUint32(c[10:], n)
	}
	return c
}

func fill(n int, b byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = b
	}
	return p
}

// Cases is the differential list for LUNs of geometry g. Order matters:
// state-changing cases (writes, MODE SELECT, reservations) come where the
// cases after them expect that state, and every reservation is released
// again before the list goes on.
func Cases(g Geometry) []Case {
	l := &list{g: g, seen: map[string]bool{}}
	l.readWrite()
	l.sbcOther()
	l.inquiry()
	l.mode()
	l.spcOther()
	l.reservations()
	l.scan()
	return l.cases
}

func (l *list) readWrite() {
	bs, n := l.g.BlockSize, l.g.Blocks
	last := n - 1
	type form struct {
		name      string
		rd, wr    byte
		maxLBA    uint64 // the largest LBA the form can carry
		hasFlags  bool
		zeroIs256 bool
	}
	forms := []form{
		{"6", 0x08, 0x0A, 1<<21 - 1, false, true},
		{"10", 0x28, 0x2A, 1<<32 - 1, true, false},
		{"12", 0xA8, 0xAA, 1<<32 - 1, true, false},
		{"16", 0x88, 0x8A, 1<<64 - 1, true, false},
	}
	for _, f := range forms {
		r, w := "read"+f.name, "write"+f.name
		// reads
		l.in(ClassRW, r+".lba0", bs, rwCDB(f.rd, 0, 0, 1)...)
		l.in(ClassRW, r+".last-lba", bs, rwCDB(f.rd, 0, last, 1)...)
		l.in(ClassRW, r+".capacity", bs, rwCDB(f.rd, 0, n, 1)...)
		l.in(ClassRW, r+".crosses-end", 2*bs, rwCDB(f.rd, 0, last, 2)...)
		l.in(ClassRW, r+".max-lba", bs, rwCDB(f.rd, 0, f.maxLBA, 1)...)
		l.in(ClassRW, r+".256k", 256<<10, rwCDB(f.rd, 0, 0, uint32(256<<10/bs))...)
		l.in(ClassRW, r+".short-buffer", bs/2, rwCDB(f.rd, 0, 0, 1)...)
		l.in(ClassRW, r+".long-buffer", 2*bs, rwCDB(f.rd, 0, 0, 1)...)
		if f.zeroIs256 {
			l.in(ClassRW, r+".len0-is-256", 256*bs, rwCDB(f.rd, 0, 0, 0)...)
		} else {
			l.none(ClassRW, r+".len0", rwCDB(f.rd, 0, 0, 0)...)
			l.none(ClassRW, r+".len0-at-capacity", rwCDB(f.rd, 0, n, 0)...)
			l.none(ClassRW, r+".len0-beyond", rwCDB(f.rd, 0, n+1, 0)...)
		}
		if f.hasFlags {
			l.in(ClassRW, r+".fua-dpo", bs, rwCDB(f.rd, 0x18, 0, 1)...)
			l.in(ClassRW, r+".rdprotect", bs, rwCDB(f.rd, 0x20, 0, 1)...)
			l.in(ClassRW, r+".obsolete-bit1", bs, rwCDB(f.rd, 0x02, 0, 1)...)
			c := rwCDB(f.rd, 0, 0, 1)
			c[len(c)-2] = 0x80 // a reserved bit next to GROUP NUMBER
			l.in(ClassRW, r+".reserved-bit", bs, c...)
		}
		c := rwCDB(f.rd, 0, 0, 1)
		c[len(c)-1] = 0x04 // NACA
		l.in(ClassRW, r+".naca", bs, c...)
		if f.name == "16" {
			l.in(ClassRW, r+".lba-wraps", 2*bs, rwCDB(f.rd, 0, 1<<64-1, 2)...)
		}
		// writes (LBAs 8..15 are the write area; the verify cases below rely on it)
		l.out(ClassRW, w+".lba8", fill(bs, 0x5A), rwCDB(f.wr, 0, 8, 1)...)
		l.out(ClassRW, w+".last-lba", fill(bs, 0x5A), rwCDB(f.wr, 0, last, 1)...)
		l.out(ClassRW, w+".capacity", fill(bs, 0x5A), rwCDB(f.wr, 0, n, 1)...)
		l.out(ClassRW, w+".crosses-end", fill(2*bs, 0x5A), rwCDB(f.wr, 0, last, 2)...)
		l.out(ClassRW, w+".short-data", fill(bs/2, 0x5A), rwCDB(f.wr, 0, 8, 1)...)
		l.out(ClassRW, w+".long-data", fill(2*bs, 0x5A), rwCDB(f.wr, 0, 8, 1)...)
		l.none(ClassRW, w+".no-data", rwCDB(f.wr, 0, 8, 1)...)
		if f.hasFlags {
			l.out(ClassRW, w+".fua", fill(bs, 0x5A), rwCDB(f.wr, 0x08, 9, 1)...)
			l.out(ClassRW, w+".wrprotect", fill(bs, 0x5A), rwCDB(f.wr, 0x20, 9, 1)...)
			l.none(ClassRW, w+".len0", rwCDB(f.wr, 0, 8, 0)...)
		}
	}
}

func (l *list) sbcOther() {
	bs, n := l.g.BlockSize, l.g.Blocks
	last := n - 1
	// READ CAPACITY
	l.in(ClassSBC, "readcap10", 8, 0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	l.in(ClassSBC, "readcap10.short-buffer", 4, 0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	l.in(ClassSBC, "readcap10.lba-without-pmi", 8, 0x25, 0, 0, 0, 0, 5, 0, 0, 0, 0)
	l.in(ClassSBC, "readcap10.pmi", 8, 0x25, 0, 0, 0, 0, 5, 0, 0, 1, 0)
	rc16 := func(alloc uint32, lba uint64, pmi byte) []byte {
		c := []byte{0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, pmi, 0}
		be.PutUint64(c[2:], lba)
		be.PutUint32(c[10:], alloc)
		return c
	}
	l.in(ClassSBC, "readcap16", 32, rc16(32, 0, 0)...)
	l.in(ClassSBC, "readcap16.alloc12", 12, rc16(12, 0, 0)...)
	l.none(ClassSBC, "readcap16.alloc0", rc16(0, 0, 0)...)
	l.in(ClassSBC, "readcap16.lba-without-pmi", 32, rc16(32, 5, 0)...)
	l.in(ClassSBC, "readcap16.pmi", 32, rc16(32, 5, 1)...)
	l.in(ClassSBC, "sai16.bad-sa", 32, 0x9E, 0x1F, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0)

	// GET LBA STATUS (SERVICE ACTION IN 0x12)
	gls := func(lba uint64, alloc uint32) []byte {
		c := []byte{0x9E, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
		be.PutUint64(c[2:], lba)
		be.PutUint32(c[10:], alloc)
		return c
	}
	l.in(ClassSBC, "get-lba-status.lba0", 24, gls(0, 24)...)
	l.in(ClassSBC, "get-lba-status.last-lba", 24, gls(last, 24)...)
	l.in(ClassSBC, "get-lba-status.capacity", 24, gls(n, 24)...)
	l.in(ClassSBC, "get-lba-status.alloc8", 8, gls(0, 8)...)
	l.none(ClassSBC, "get-lba-status.alloc0", gls(0, 0)...)

	// SYNCHRONIZE CACHE, PRE-FETCH
	for _, f := range []struct {
		name string
		op   byte
	}{{"synccache10", 0x35}, {"synccache16", 0x91}, {"prefetch10", 0x34}, {"prefetch16", 0x90}} {
		l.none(ClassSBC, f.name+".all", rwCDB(f.op, 0, 0, 0)...)
		l.none(ClassSBC, f.name+".range", rwCDB(f.op, 0, 8, 8)...)
		l.none(ClassSBC, f.name+".immed", rwCDB(f.op, 0x02, 0, 8)...)
		l.none(ClassSBC, f.name+".last-lba", rwCDB(f.op, 0, last, 1)...)
		l.none(ClassSBC, f.name+".capacity", rwCDB(f.op, 0, n, 1)...)
		l.none(ClassSBC, f.name+".crosses-end", rwCDB(f.op, 0, last, 2)...)
	}

	// VERIFY: LBA 16.. is never written, so it reads zeros on both LUNs
	for _, f := range []struct {
		name string
		op   byte
	}{{"verify10", 0x2F}, {"verify16", 0x8F}} {
		l.none(ClassSBC, f.name+".bytchk0", rwCDB(f.op, 0, 16, 4)...)
		l.none(ClassSBC, f.name+".bytchk0-capacity", rwCDB(f.op, 0, n, 1)...)
		l.out(ClassSBC, f.name+".bytchk1-same", make([]byte, 2*bs), rwCDB(f.op, 0x02, 16, 2)...)
		diff := make([]byte, 2*bs)
		diff[bs+3] = 1
		l.out(ClassSBC, f.name+".bytchk1-miscompare", diff, rwCDB(f.op, 0x02, 16, 2)...)
		l.out(ClassSBC, f.name+".bytchk1-short-data", make([]byte, bs), rwCDB(f.op, 0x02, 16, 2)...)
		l.out(ClassSBC, f.name+".bytchk3-same", make([]byte, bs), rwCDB(f.op, 0x06, 16, 4)...)
		l.out(ClassSBC, f.name+".bytchk2", make([]byte, bs), rwCDB(f.op, 0x04, 16, 1)...)
		l.none(ClassSBC, f.name+".vrprotect", rwCDB(f.op, 0x20, 16, 1)...)
		l.none(ClassSBC, f.name+".len0", rwCDB(f.op, 0, 16, 0)...)
	}

	// WRITE AND VERIFY (LBAs 24..31)
	for _, f := range []struct {
		name string
		op   byte
	}{{"write-verify10", 0x2E}, {"write-verify16", 0x8E}} {
		l.out(ClassSBC, f.name+".lba24", fill(bs, 0x3C), rwCDB(f.op, 0, 24, 1)...)
		l.out(ClassSBC, f.name+".bytchk", fill(bs, 0x3C), rwCDB(f.op, 0x02, 25, 1)...)
		l.out(ClassSBC, f.name+".capacity", fill(bs, 0x3C), rwCDB(f.op, 0, n, 1)...)
		l.out(ClassSBC, f.name+".crosses-end", fill(2*bs, 0x3C), rwCDB(f.op, 0, last, 2)...)
		l.out(ClassSBC, f.name+".short-data", fill(bs/2, 0x3C), rwCDB(f.op, 0, 24, 1)...)
		l.out(ClassSBC, f.name+".wrprotect", fill(bs, 0x3C), rwCDB(f.op, 0x20, 24, 1)...)
		l.none(ClassSBC, f.name+".len0", rwCDB(f.op, 0, 24, 0)...)
	}

	// WRITE SAME (LBAs 32..63)
	ws10 := func(flags byte, lba uint64, n uint16) []byte {
		c := []byte{0x41, flags, 0, 0, 0, 0, 0, 0, 0, 0}
		be.PutUint32(c[2:], uint32(lba))
		be.PutUint16(c[7:], n)
		return c
	}
	ws16 := func(flags byte, lba uint64, n uint32) []byte {
		c := rwCDB(0x93, flags, lba, n)
		return c
	}
	l.out(ClassSBC, "writesame10.pattern", fill(bs, 0xA5), ws10(0, 32, 8)...)
	l.out(ClassSBC, "writesame10.zeros", make([]byte, bs), ws10(0, 40, 8)...)
	l.out(ClassSBC, "writesame10.unmap", make([]byte, bs), ws10(0x08, 40, 8)...)
	l.out(ClassSBC, "writesame10.anchor", make([]byte, bs), ws10(0x10, 40, 8)...)
	l.out(ClassSBC, "writesame10.len0", make([]byte, bs), ws10(0, 40, 0)...)
	l.out(ClassSBC, "writesame10.capacity", make([]byte, bs), ws10(0, n, 1)...)
	l.out(ClassSBC, "writesame10.crosses-end", make([]byte, bs), ws10(0, last, 2)...)
	l.out(ClassSBC, "writesame10.wrprotect", make([]byte, bs), ws10(0x20, 40, 1)...)
	l.none(ClassSBC, "writesame10.no-data", ws10(0, 40, 1)...)
	l.out(ClassSBC, "writesame10.pbdata", make([]byte, bs), ws10(0x04, 40, 1)...)
	l.out(ClassSBC, "writesame16.pattern", fill(bs, 0xA5), ws16(0, 48, 8)...)
	l.out(ClassSBC, "writesame16.unmap", make([]byte, bs), ws16(0x08, 48, 8)...)
	l.none(ClassSBC, "writesame16.ndob", ws16(0x01, 56, 8)...)
	l.none(ClassSBC, "writesame16.ndob-unmap", ws16(0x09, 56, 8)...)
	l.out(ClassSBC, "writesame16.capacity", make([]byte, bs), ws16(0, n, 1)...)
	l.out(ClassSBC, "writesame16.len0", make([]byte, bs), ws16(0, 48, 0)...)

	// UNMAP (LBAs 64..127)
	unmap := func(descs ...[2]uint64) []byte {
		p := make([]byte, 8+16*len(descs))
		be.PutUint16(p[0:], uint16(len(p)-2))
		be.PutUint16(p[2:], uint16(16*len(descs)))
		for i, d := range descs {
			be.PutUint64(p[8+16*i:], d[0])
			be.PutUint32(p[8+16*i+8:], uint32(d[1]))
		}
		return p
	}
	unmapCDB := func(plen int) []byte {
		c := []byte{0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0}
		be.PutUint16(c[7:], uint16(plen))
		return c
	}
	p := unmap([2]uint64{64, 8})
	l.out(ClassSBC, "unmap.one", p, unmapCDB(len(p))...)
	p = unmap([2]uint64{72, 8}, [2]uint64{96, 16})
	l.out(ClassSBC, "unmap.two", p, unmapCDB(len(p))...)
	p = unmap([2]uint64{last, 2})
	l.out(ClassSBC, "unmap.crosses-end", p, unmapCDB(len(p))...)
	l.none(ClassSBC, "unmap.plen0", unmapCDB(0)...)
	l.out(ClassSBC, "unmap.plen4", make([]byte, 4), unmapCDB(4)...)
	p = unmap([2]uint64{64, 8})
	be.PutUint16(p[2:], 15)
	l.out(ClassSBC, "unmap.bad-bd-length", p, unmapCDB(len(p))...)
	p = unmap([2]uint64{64, 8})
	l.out(ClassSBC, "unmap.anchor", p, append([]byte{0x42, 0x01}, unmapCDB(len(p))[2:]...)...)

	// COMPARE AND WRITE (LBAs 128..135: zeros until written here)
	caw := func(flags byte, lba uint64, nlb byte) []byte {
		c := make([]byte, 16)
		c[0], c[1] = 0x89, flags
		be.PutUint64(c[2:], lba)
		c[13] = nlb
		return c
	}
	cw := func(cmp, wr byte, blocks int) []byte {
		return append(fill(blocks*bs, cmp), fill(blocks*bs, wr)...)
	}
	l.out(ClassSBC, "caw.match", cw(0, 0xC1, 1), caw(0, 128, 1)...)
	l.out(ClassSBC, "caw.miscompare", cw(0, 0xC2, 1), caw(0, 128, 1)...)
	mid := cw(0xC1, 0xC3, 1)
	mid[7] = 0 // the first difference is at byte 7
	l.out(ClassSBC, "caw.miscompare-offset7", mid, caw(0, 128, 1)...)
	l.out(ClassSBC, "caw.match-again", cw(0xC1, 0xC4, 1), caw(0, 128, 1)...)
	l.none(ClassSBC, "caw.nlb0", caw(0, 128, 0)...)
	l.out(ClassSBC, "caw.nlb2", cw(0, 0xC5, 2), caw(0, 130, 2)...)
	l.out(ClassSBC, "caw.short-data", fill(bs, 0), caw(0, 129, 1)...)
	l.out(ClassSBC, "caw.capacity", cw(0, 0xC6, 1), caw(0, n, 1)...)
	l.out(ClassSBC, "caw.last-lba", cw(0, 0xC6, 1), caw(0, last, 1)...)
	l.out(ClassSBC, "caw.fua", cw(0, 0xC7, 1), caw(0x08, 133, 1)...)
	l.out(ClassSBC, "caw.wrprotect", cw(0, 0xC8, 1), caw(0x20, 134, 1)...)
	l.none(ClassSBC, "caw.no-data", caw(0, 135, 1)...)

	// FORMAT UNIT is refused by design; one case documents it
	l.none(ClassSBC, "format-unit", 0x04, 0, 0, 0, 0, 0)
}

func (l *list) inquiry() {
	inq := func(b1, page byte, alloc uint16) []byte {
		c := []byte{0x12, b1, page, 0, 0, 0}
		be.PutUint16(c[3:], alloc)
		return c
	}
	for _, a := range []uint16{36, 96, 255, 5, 1} {
		l.in(ClassInquiry, fmt.Sprintf("inquiry.std-alloc%d", a), int(a), inq(0, 0, a)...)
	}
	l.none(ClassInquiry, "inquiry.std-alloc0", inq(0, 0, 0)...)
	l.in(ClassInquiry, "inquiry.std-page-without-evpd", 96, inq(0, 0x80, 96)...)
	l.in(ClassInquiry, "inquiry.cmddt", 96, inq(0x02, 0, 96)...)
	l.in(ClassInquiry, "inquiry.cmddt-evpd", 96, inq(0x03, 0, 96)...)
	l.in(ClassInquiry, "inquiry.naca", 96, append(inq(0, 0, 96)[:5], 0x04)...)
	for _, p := range []byte{0x00, 0x80, 0x83, 0x86, 0x89, 0xB0, 0xB1, 0xB2, 0xB3, 0x01, 0x42, 0x8F, 0xC0, 0xFF} {
		l.in(ClassInquiry, fmt.Sprintf("inquiry.vpd-%02x", p), 255, inq(0x01, p, 255)...)
	}
	l.in(ClassInquiry, "inquiry.vpd-83-alloc4", 4, inq(0x01, 0x83, 4)...)
	l.in(ClassInquiry, "inquiry.vpd-00-alloc2", 2, inq(0x01, 0x00, 2)...)
	l.none(ClassInquiry, "inquiry.vpd-80-alloc0", inq(0x01, 0x80, 0)...)
}

func (l *list) mode() {
	ms6 := func(b1, pcPage, sub, alloc byte) []byte { return []byte{0x1A, b1, pcPage, sub, alloc, 0} }
	ms10 := func(b1, pcPage, sub byte, alloc uint16) []byte {
		c := []byte{0x5A, b1, pcPage, sub, 0, 0, 0, 0, 0, 0}
		be.PutUint16(c[7:], alloc)
		return c
	}
	for _, p := range []byte{0x01, 0x02, 0x08, 0x0A, 0x1C, 0x3F, 0x00, 0x03, 0x05, 0x19, 0x30} {
		l.in(ClassMode, fmt.Sprintf("modesense6.page-%02x", p), 255, ms6(0, p, 0, 255)...)
	}
	for pc := byte(1); pc <= 3; pc++ {
		for _, p := range []byte{0x01, 0x08, 0x0A, 0x3F} {
			l.in(ClassMode, fmt.Sprintf("modesense6.pc%d-page-%02x", pc, p), 255, ms6(0, pc<<6|p, 0, 255)...)
		}
	}
	l.in(ClassMode, "modesense6.dbd", 255, ms6(0x08, 0x3F, 0, 255)...)
	l.in(ClassMode, "modesense6.all-subpages", 255, ms6(0, 0x3F, 0xFF, 255)...)
	l.in(ClassMode, "modesense6.caching-subpage1", 255, ms6(0, 0x08, 0x01, 255)...)
	l.in(ClassMode, "modesense6.caching-all-subpages", 255, ms6(0, 0x08, 0xFF, 255)...)
	l.in(ClassMode, "modesense6.alloc4", 4, ms6(0, 0x3F, 0, 4)...)
	l.in(ClassMode, "modesense6.alloc3", 3, ms6(0, 0x3F, 0, 3)...)
	l.none(ClassMode, "modesense6.alloc0", ms6(0, 0x3F, 0, 0)...)
	l.in(ClassMode, "modesense6.reserved-bit", 255, ms6(0x80, 0x3F, 0, 255)...)
	l.in(ClassMode, "modesense10.page-08", 512, ms10(0, 0x08, 0, 512)...)
	l.in(ClassMode, "modesense10.page-3f", 512, ms10(0, 0x3F, 0, 512)...)
	l.in(ClassMode, "modesense10.llbaa", 512, ms10(0x10, 0x3F, 0, 512)...)
	l.in(ClassMode, "modesense10.llbaa-dbd", 512, ms10(0x18, 0x3F, 0, 512)...)
	l.in(ClassMode, "modesense10.pc3", 512, ms10(0, 0xC0|0x3F, 0, 512)...)
	l.in(ClassMode, "modesense10.pc1-page-08", 512, ms10(0, 0x40|0x08, 0, 512)...)
	l.in(ClassMode, "modesense10.page-01", 512, ms10(0, 0x01, 0, 512)...)
	l.in(ClassMode, "modesense10.bad-page-05", 512, ms10(0, 0x05, 0, 512)...)
	l.in(ClassMode, "modesense10.alloc8", 8, ms10(0, 0x3F, 0, 8)...)
	l.none(ClassMode, "modesense10.alloc0", ms10(0, 0x3F, 0, 0)...)

	// MODE SELECT: only shapes both must judge alike (the current page
	// contents differ between the two LUNs: see the intended list).
	sel6 := func(b1 byte, plen byte) []byte { return []byte{0x15, b1, 0, 0, plen, 0} }
	sel10 := func(b1 byte, plen uint16) []byte {
		c := []byte{0x55, b1, 0, 0, 0, 0, 0, 0, 0, 0}
		be.PutUint16(c[7:], plen)
		return c
	}
	l.none(ClassMode, "modeselect6.plen0", sel6(0x10, 0)...)
	l.none(ClassMode, "modeselect10.plen0", sel10(0x10, 0)...)
	l.out(ClassMode, "modeselect6.header-only", make([]byte, 4), sel6(0x10, 4)...)
	l.out(ClassMode, "modeselect10.header-only", make([]byte, 8), sel10(0x10, 8)...)
	l.out(ClassMode, "modeselect6.short-header", make([]byte, 2), sel6(0x10, 2)...)
	l.out(ClassMode, "modeselect6.sp", make([]byte, 4), sel6(0x11, 4)...)
	l.out(ClassMode, "modeselect6.pf0", make([]byte, 4), sel6(0x00, 4)...)
	bad := []byte{0, 0, 0, 0, 0x05, 0x02, 0, 0} // page 05 (flexible disk): nobody has it
	l.out(ClassMode, "modeselect6.unknown-page", bad, sel6(0x10, byte(len(bad)))...)
	trunc := []byte{0, 0, 0, 0, 0x08, 0x12, 0x04, 0} // caching page cut short
	l.out(ClassMode, "modeselect6.truncated-page", trunc, sel6(0x10, byte(len(trunc)))...)
	bdesc := make([]byte, 12)
	bdesc[3] = 8
	bdesc[4+6] = 0x10 // block length 4096 in the descriptor
	l.out(ClassMode, "modeselect6.block-size-change", bdesc, sel6(0x10, 12)...)
	l.out(ClassMode, "modeselect6.short-data", make([]byte, 4), sel6(0x10, 12)...)
}

func (l *list) spcOther() {
	l.none(ClassSPC, "tur", 0, 0, 0, 0, 0, 0)
	l.none(ClassSPC, "tur.reserved-bytes", 0, 0xFF, 0xFF, 0xFF, 0xFF, 0)
	l.none(ClassSPC, "tur.naca", 0, 0, 0, 0, 0, 0x04)
	l.none(ClassSPC, "tur.vendor-control-bits", 0, 0, 0, 0, 0, 0xC0)
	l.in(ClassSPC, "request-sense.alloc18", 18, 0x03, 0, 0, 0, 18, 0)
	l.in(ClassSPC, "request-sense.alloc252", 252, 0x03, 0, 0, 0, 252, 0)
	l.in(ClassSPC, "request-sense.alloc8", 8, 0x03, 0, 0, 0, 8, 0)
	l.none(ClassSPC, "request-sense.alloc0", 0x03, 0, 0, 0, 0, 0)
	l.in(ClassSPC, "request-sense.desc", 252, 0x03, 0x01, 0, 0, 252, 0)
	l.none(ClassSPC, "start-stop.start", 0x1B, 0, 0, 0, 0x01, 0)
	l.none(ClassSPC, "start-stop.stop", 0x1B, 0, 0, 0, 0x00, 0)
	l.none(ClassSPC, "start-stop.immed-start", 0x1B, 0x01, 0, 0, 0x01, 0)
	l.none(ClassSPC, "start-stop.loej-start", 0x1B, 0, 0, 0, 0x03, 0)
	l.none(ClassSPC, "start-stop.power-active", 0x1B, 0, 0, 0, 0x10, 0)
	l.none(ClassSPC, "start-stop.power-bad", 0x1B, 0, 0, 0, 0x60, 0)
	l.none(ClassSPC, "start-stop.start-again", 0x1B, 0, 0, 0, 0x01, 0)
	l.none(ClassSPC, "prevent-allow.prevent", 0x1E, 0, 0, 0, 0x01, 0)
	l.none(ClassSPC, "prevent-allow.allow", 0x1E, 0, 0, 0, 0x00, 0)
	rl := func(sel byte, alloc uint32) []byte {
		c := []byte{0xA0, 0, sel, 0, 0, 0, 0, 0, 0, 0, 0, 0}
		be.PutUint32(c[6:], alloc)
		return c
	}
	l.in(ClassSPC, "report-luns.alloc16", 16, rl(0, 16)...)
	l.in(ClassSPC, "report-luns.alloc4096", 4096, rl(0, 4096)...)
	l.in(ClassSPC, "report-luns.alloc8", 8, rl(0, 8)...)
	l.none(ClassSPC, "report-luns.alloc0", rl(0, 0)...)
	for _, s := range []byte{1, 2, 0x10, 0x11, 0x12, 0x03, 0xFF} {
		l.in(ClassSPC, fmt.Sprintf("report-luns.select-%02x", s), 4096, rl(s, 4096)...)
	}
	rsoc := func(opts byte, op byte, sa uint16, alloc uint32) []byte {
		c := []byte{0xA3, 0x0C, opts, op, 0, 0, 0, 0, 0, 0, 0, 0}
		be.PutUint16(c[4:], sa)
		be.PutUint32(c[6:], alloc)
		return c
	}
	l.in(ClassSPC, "rsoc.all", 8192, rsoc(0, 0, 0, 8192)...)
	l.in(ClassSPC, "rsoc.all-rctd", 8192, rsoc(0x80, 0, 0, 8192)...)
	l.in(ClassSPC, "rsoc.one-read10", 64, rsoc(1, 0x28, 0, 64)...)
	l.in(ClassSPC, "rsoc.one-unsupported", 64, rsoc(1, 0xC5, 0, 64)...)
	l.in(ClassSPC, "rsoc.one-has-sa", 64, rsoc(1, 0x9E, 0, 64)...)
	l.in(ClassSPC, "rsoc.sa-readcap16", 64, rsoc(2, 0x9E, 0x10, 64)...)
	l.in(ClassSPC, "rsoc.sa-on-plain-op", 64, rsoc(2, 0x28, 0, 64)...)
	l.in(ClassSPC, "rsoc.opts3-read10", 64, rsoc(3, 0x28, 0, 64)...)
	l.in(ClassSPC, "rsoc.opts5", 64, rsoc(5, 0x28, 0, 64)...)
	l.in(ClassSPC, "rsoc.alloc4", 4, rsoc(0, 0, 0, 4)...)
	rtpg := func(b1 byte, alloc uint32) []byte {
		c := []byte{0xA3, b1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
		be.PutUint32(c[6:], alloc)
		return c
	}
	l.in(ClassSPC, "rtpg", 256, rtpg(0x0A, 256)...)
	l.in(ClassSPC, "rtpg.alloc4", 4, rtpg(0x0A, 4)...)
	l.in(ClassSPC, "rtpg.extended", 256, rtpg(0x2A, 256)...)
	l.in(ClassSPC, "rtpg.bad-format", 256, rtpg(0xEA, 256)...)
	l.in(ClassSPC, "report-tmf", 16, rtpg(0x0D, 16)...)
	l.in(ClassSPC, "maintenance-in.bad-sa", 256, rtpg(0x1F, 256)...)
	logs := func(b1, pcPage, sub byte, alloc uint16) []byte {
		c := []byte{0x4D, b1, pcPage, sub, 0, 0, 0, 0, 0, 0}
		be.PutUint16(c[7:], alloc)
		return c
	}
	l.in(ClassSPC, "log-sense.supported-pages", 255, logs(0, 0x40, 0, 255)...)
	l.in(ClassSPC, "log-sense.supported-pages-pc0", 255, logs(0, 0x00, 0, 255)...)
	l.in(ClassSPC, "log-sense.supported-subpages", 255, logs(0, 0x40, 0xFF, 255)...)
	for _, p := range []byte{0x0D, 0x2F, 0x10, 0x15, 0x30} {
		l.in(ClassSPC, fmt.Sprintf("log-sense.page-%02x", p), 255, logs(0, 0x40|p, 0, 255)...)
	}
	l.in(ClassSPC, "log-sense.sp", 255, logs(0x01, 0x40, 0, 255)...)
	l.in(ClassSPC, "log-sense.ppc", 255, logs(0x02, 0x40, 0, 255)...)
	l.in(ClassSPC, "log-sense.alloc2", 2, logs(0, 0x40, 0, 2)...)
	l.none(ClassSPC, "log-sense.alloc0", logs(0, 0x40, 0, 0)...)
	l.none(ClassSPC, "log-select.pcr", 0x4C, 0x02, 0, 0, 0, 0, 0, 0, 0, 0)
	l.in(ClassSPC, "read-buffer.descriptor", 4, 0x3C, 0x03, 0, 0, 0, 0, 0, 0, 4, 0)
	l.none(ClassSPC, "write-buffer.data-len0", 0x3B, 0x02, 0, 0, 0, 0, 0, 0, 0, 0)
}

// PR keys used by the reservation cases.
const (
	keyA = 0x1111111111111111
	keyB = 0x2222222222222222
)

func prOutParams(resKey, saKey uint64, flags byte) []byte {
	p := make([]byte, 24)
	be.PutUint64(p[0:], resKey)
	be.PutUint64(p[8:], saKey)
	p[20] = flags // SPEC_I_PT, ALL_TG_PT, APTPL
	return p
}

func prOutCDB(sa, scopeType byte, plen uint32) []byte {
	c := []byte{0x5F, sa, scopeType, 0, 0, 0, 0, 0, 0, 0}
	be.PutUint32(c[5:], plen)
	return c
}

func prInCDB(sa byte, alloc uint16) []byte {
	c := []byte{0x5E, sa, 0, 0, 0, 0, 0, 0, 0, 0}
	be.PutUint16(c[7:], alloc)
	return c
}

// reservations runs one nexus through the PR and SPC-2 reservation
// commands and leaves the LUN with no registration and no reservation.
func (l *list) reservations() {
	in := func(id string, sa byte, alloc uint16) { l.in(ClassPR, id, int(alloc), prInCDB(sa, alloc)...) }
	out := func(id string, sa, typ byte, p []byte) { l.out(ClassPR, id, p, prOutCDB(sa, typ, uint32(len(p)))...) }
	const (
		register, reserve, release, clear, preempt, preemptAbort, registerIgnore, registerMove = 0, 1, 2, 3, 4, 5, 6, 7
		we, ea, weRO, eaRO, weAR, eaAR                                                         = 1, 3, 5, 6, 7, 8
	)
	in("pr-in.read-keys-empty", 0, 255)
	in("pr-in.read-reservation-empty", 1, 255)
	in("pr-in.report-capabilities", 2, 8)
	in("pr-in.read-full-status-empty", 3, 255)
	in("pr-in.read-keys-alloc4", 0, 4)
	in("pr-in.bad-sa", 0x1F, 255)
	l.none(ClassPR, "pr-in.alloc0", prInCDB(0, 0)...)
	// SPC-2 reservations while no PR exists
	l.none(ClassPR, "reserve6", 0x16, 0, 0, 0, 0, 0)
	l.none(ClassPR, "reserve6.again", 0x16, 0, 0, 0, 0, 0)
	l.in(ClassPR, "reserve6.read-while-reserved", l.g.BlockSize, rwCDB(0x28, 0, 0, 1)...)
	l.none(ClassPR, "release6", 0x17, 0, 0, 0, 0, 0)
	l.none(ClassPR, "release6.again", 0x17, 0, 0, 0, 0, 0)
	l.none(ClassPR, "reserve10", 0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	l.none(ClassPR, "reserve10.3rdpty", 0x56, 0x10, 0, 0, 0, 0, 0, 0, 0, 0)
	l.none(ClassPR, "release10", 0x57, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	// registration
	out("pr-out.register-a", register, 0, prOutParams(0, keyA, 0))
	in("pr-in.read-keys-a", 0, 255)
	out("pr-out.register-wrong-key", register, 0, prOutParams(keyB, keyA, 0))
	out("pr-out.register-ignore-b", registerIgnore, 0, prOutParams(0, keyB, 0))
	out("pr-out.register-plen23", register, 0, prOutParams(keyB, keyA, 0)[:23])
	l.out(ClassPR, "pr-out.register-plen-beyond-data", prOutParams(keyB, keyA, 0), prOutCDB(register, 0, 32)...)
	out("pr-out.register-spec-i-pt", register, 0, prOutParams(keyB, keyA, 0x08))
	out("pr-out.register-all-tg-pt", register, 0, prOutParams(keyB, keyB, 0x04))
	l.none(ClassPR, "reserve6.while-registered", 0x16, 0, 0, 0, 0, 0)
	l.none(ClassPR, "release6.while-registered", 0x17, 0, 0, 0, 0, 0)
	// reservations
	out("pr-out.reserve-we", reserve, we, prOutParams(keyB, 0, 0))
	in("pr-in.read-reservation-we", 1, 255)
	in("pr-in.read-full-status-we", 3, 255)
	out("pr-out.reserve-we-again", reserve, we, prOutParams(keyB, 0, 0))
	out("pr-out.reserve-other-type", reserve, ea, prOutParams(keyB, 0, 0))
	out("pr-out.reserve-wrong-key", reserve, we, prOutParams(keyA, 0, 0))
	l.in(ClassPR, "pr.read-as-holder", l.g.BlockSize, rwCDB(0x28, 0, 0, 1)...)
	l.out(ClassPR, "pr.write-as-holder", fill(l.g.BlockSize, 0x77), rwCDB(0x2A, 0, 10, 1)...)
	out("pr-out.release-wrong-type", release, ea, prOutParams(keyB, 0, 0))
	out("pr-out.release-wrong-key", release, we, prOutParams(keyA, 0, 0))
	out("pr-out.release", release, we, prOutParams(keyB, 0, 0))
	out("pr-out.release-none-held", release, we, prOutParams(keyB, 0, 0))
	out("pr-out.reserve-obsolete-type2", reserve, 2, prOutParams(keyB, 0, 0))
	out("pr-out.reserve-type9", reserve, 9, prOutParams(keyB, 0, 0))
	out("pr-out.reserve-scope1", reserve, 0x10|we, prOutParams(keyB, 0, 0))
	out("pr-out.reserve-ear", reserve, eaAR, prOutParams(keyB, 0, 0))
	in("pr-in.read-reservation-ear", 1, 255)
	out("pr-out.release-ear", release, eaAR, prOutParams(keyB, 0, 0))
	out("pr-out.reserve-wero", reserve, weRO, prOutParams(keyB, 0, 0))
	out("pr-out.preempt-self-to-ea", preempt, ea, prOutParams(keyB, keyB, 0))
	in("pr-in.read-reservation-after-preempt", 1, 255)
	out("pr-out.preempt-missing-key", preempt, ea, prOutParams(keyB, 0x3333333333333333, 0))
	out("pr-out.preempt-sa-key0", preempt, ea, prOutParams(keyB, 0, 0))
	out("pr-out.preempt-abort-self", preemptAbort, we, prOutParams(keyB, keyB, 0))
	out("pr-out.release-after-preempt", release, we, prOutParams(keyB, 0, 0))
	out("pr-out.register-and-move", registerMove, we, make([]byte, 24+24))
	out("pr-out.bad-sa", 0x1F, 0, prOutParams(keyB, 0, 0))
	out("pr-out.clear-wrong-key", clear, 0, prOutParams(keyA, 0, 0))
	out("pr-out.clear", clear, 0, prOutParams(keyB, 0, 0))
	in("pr-in.read-keys-after-clear", 0, 255)
	out("pr-out.register-unregistered-with-key", register, 0, prOutParams(keyA, keyB, 0))
	out("pr-out.register-b-aptpl", register, 0, prOutParams(0, keyB, 0x01))
	out("pr-out.register-b-no-aptpl", register, 0, prOutParams(keyB, keyB, 0))
	out("pr-out.unregister", register, 0, prOutParams(keyB, 0, 0))
	in("pr-in.read-keys-end", 0, 255)
	out("pr-out.unregister-unregistered", register, 0, prOutParams(0, 0, 0))
}

// scan sends every opcode with an otherwise all-zero CDB and no data: it
// shows what each side serves at all.
func (l *list) scan() {
	for op := 0; op < 256; op++ {
		c := make([]byte, cdbLen(byte(op)))
		c[0] = byte(op)
		l.none(ClassScan, fmt.Sprintf("scan.%02x", op), c...)
	}
}

// Format writes one case as a line of the list file the guest runner
// reads: id|class|dir|len|cdb hex bytes|data, where data is a '+'-joined
// run of tokens: zN (N zero bytes), fN:OOO (N bytes of octal value OOO),
// p<printf octal escapes>. The runner turns the tokens into a file with
// head, tr and printf, all of which the guest's busybox has.
func (c Case) Format() string {
	cdb := make([]string, len(c.CDB))
	for i, b := range c.CDB {
		cdb[i] = fmt.Sprintf("%02x", b)
	}
	return strings.Join([]string{c.ID, c.Class, string(c.Dir), fmt.Sprint(c.Len), strings.Join(cdb, " "), dataTokens(c.Data)}, "|")
}

func dataTokens(p []byte) string {
	var toks []string
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			toks = append(toks, "p"+lit.String())
			lit.Reset()
		}
	}
	for i := 0; i < len(p); {
		j := i
		for j < len(p) && p[j] == p[i] {
			j++
		}
		if run := j - i; run >= 8 {
			flush()
			if p[i] == 0 {
				toks = append(toks, fmt.Sprintf("z%d", run))
			} else {
				toks = append(toks, fmt.Sprintf("f%d:%03o", run, p[i]))
			}
		} else {
			for k := i; k < j; k++ {
				fmt.Fprintf(&lit, "\\%03o", p[k])
			}
		}
		i = j
	}
	flush()
	return strings.Join(toks, "+")
}

// parseData is the inverse of dataTokens (for the tests).
func parseData(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	var p []byte
	for _, t := range strings.Split(s, "+") {
		switch {
		case strings.HasPrefix(t, "z"):
			var n int
			if _, err := fmt.Sscanf(t, "z%d", &n); err != nil {
				return nil, fmt.Errorf("token %q: %w", t, err)
			}
			p = append(p, make([]byte, n)...)
		case strings.HasPrefix(t, "f"):
			var n int
			var v byte
			if _, err := fmt.Sscanf(t, "f%d:%o", &n, &v); err != nil {
				return nil, fmt.Errorf("token %q: %w", t, err)
			}
			p = append(p, fill(n, v)...)
		case strings.HasPrefix(t, "p"):
			esc := t[1:]
			for len(esc) >= 4 && esc[0] == '\\' {
				var v byte
				if _, err := fmt.Sscanf(esc[1:4], "%o", &v); err != nil {
					return nil, fmt.Errorf("token %q: %w", t, err)
				}
				p = append(p, v)
				esc = esc[4:]
			}
			if esc != "" {
				return nil, fmt.Errorf("token %q: trailing %q", t, esc)
			}
		default:
			return nil, fmt.Errorf("token %q: unknown kind", t)
		}
	}
	return p, nil
}
