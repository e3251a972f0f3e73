package scsi

// Version descriptors reported by standard INQUIRY (SPC-4 table 149).
const (
	verSAM5 = 0x00A0
	verSPC4 = 0x0460
	verSBC3 = 0x04C0
)

// Standard INQUIRY data length: 36 mandatory bytes, 20 vendor-specific,
// 2 reserved and 8 version descriptors.
const stdInquiryLen = 74

func spcTestUnitReady(d *Disk, cdb []byte, cmd *Command, res *Result) check { return good }

// spcStartStop accepts every power condition: a virtual disk is always spun up.
func spcStartStop(d *Disk, cdb []byte, cmd *Command, res *Result) check { return good }

// spcRequestSense returns a pending unit attention (and clears it) or NO SENSE.
func spcRequestSense(d *Disk, cdb []byte, cmd *Command, res *Result) check {
	if cdb[1]&0x01 != 0 {
		return invalidCDB(1, 0) // DESC: we only build fixed-format sense
	}
	var b [FixedSenseLen]byte
	if ua, ok := d.takeUA(); ok {
		ua.fill(b[:])
	} else {
		check{}.fill(b[:]) // 70 00 00 ... NO SENSE, 00/00
	}
	dataIn(cmd, res, b[:], int(cdb[4]))
	return good
}

// spcInquiry serves INQUIRY. The obsolete CMDDT bit is ignored, as LIO
// does (EVPD decides between standard data and a VPD page).
func spcInquiry(d *Disk, cdb []byte, cmd *Command, res *Result) check {
	alloc := int(be.Uint16(cdb[3:]))
	if cdb[1]&0x01 == 0 {
		if cdb[2] != 0 {
			return invalidCDB(2, -1)
		}
		var b [stdInquiryLen]byte
		b[0] = 0x00 // peripheral qualifier 0, direct-access block device
		b[2] = 0x06 // SPC-4
		b[3] = 0x12 // HISUP, response data format 2
		b[4] = stdInquiryLen - 5
		b[5] = 0x10 // TPGS 01b: implicit ALUA, one target port group (REPORT TARGET PORT GROUPS)
		b[7] = 0x02 // CMDQUE
		copy(b[8:16], d.vendor[:])
		copy(b[16:32], d.product[:])
		copy(b[32:36], d.revision[:])
		be.PutUint16(b[58:], verSAM5)
		be.PutUint16(b[60:], verSPC4)
		be.PutUint16(b[62:], verSBC3)
		dataIn(cmd, res, b[:], alloc)
		return good
	}
	page := d.vpdPage(cdb[2])
	if page == nil {
		return invalidCDB(2, -1)
	}
	dataIn(cmd, res, page, alloc)
	return good
}

// vpdPages lists the pages vpdPage can build, ascending.
var vpdPages = []byte{0x00, 0x80, 0x83, 0x86, 0xB0, 0xB1, 0xB2}

// vpdPage builds one VPD page (header included), or nil if unsupported.
func (d *Disk) vpdPage(code byte) []byte {
	var body []byte
	switch code {
	case 0x00: // supported VPD pages
		body = vpdPages
	case 0x80: // unit serial number
		body = []byte(d.serial)
	case 0x83: // device identification
		body = d.deviceIDs()
	case 0x86: // extended INQUIRY data
		body = make([]byte, 0x3C)
		body[1] = 0x07 // HEADSUP, ORDSUP, SIMPSUP: every task attribute is accepted
		if !d.ro {
			body[2] = 0x01 // V_SUP: a volatile write cache (WCE, SYNCHRONIZE CACHE)
		}
		body[3] = 0x01          // LUICLR: a unit attention is cleared for its own I_T nexus only
		body[9] = FixedSenseLen // MAXIMUM SUPPORTED SENSE DATA LENGTH
	case 0xB0:
		body = d.blockLimits()
	case 0xB1: // block device characteristics
		body = make([]byte, 0x3C)
		if d.rotating {
			be.PutUint16(body[0:], 7200)
		} else {
			be.PutUint16(body[0:], 1) // non-rotating medium
		}
		body[3] = 0x00 // nominal form factor not reported
	case 0xB2: // logical block provisioning
		body = make([]byte, 4)
		if d.disc != nil {
			body[1] = 0x80 | 0x40 | 0x20 // LBPU, LBPWS, LBPWS10
			if d.disc.DiscardZeroes() {
				body[1] |= 0x04 // LBPRZ
			}
			body[2] = 0x02 // provisioning type: thin
		}
	default:
		return nil
	}
	b := make([]byte, 4+len(body))
	b[0] = 0x00
	b[1] = code
	be.PutUint16(b[2:], uint16(len(body)))
	copy(b[4:], body)
	return b
}

// The one target port and target port group every logical unit has (the
// backend is one target port; REPORT TARGET PORT GROUPS, VPD 0x83).
const (
	relativeTargetPort = 1
	targetPortGroup    = 1
)

// deviceIDs is the designator list of VPD 0x83: an NAA name (binary, LU
// association), a T10 vendor ID (ASCII: vendor + serial), and for ALUA the
// relative target port and the target port group of the port the command
// came through (binary, target port association, SPC-4 7.8.6.5 and 7.8.6.6).
func (d *Disk) deviceIDs() []byte {
	var b []byte
	b = append(b, 0x01, 0x03, 0x00, 0x08) // binary, LU, NAA, length 8
	b = be.AppendUint64(b, d.naa)
	t10 := append(append([]byte{}, d.vendor[:]...), d.serial...)
	b = append(b, 0x02, 0x01, 0x00, byte(len(t10))) // ASCII, LU, T10 vendor ID
	b = append(b, t10...)
	b = append(b, 0x01, 0x14, 0x00, 0x04, 0, 0) // binary, target port, relative target port
	b = be.AppendUint16(b, relativeTargetPort)
	b = append(b, 0x01, 0x15, 0x00, 0x04, 0, 0) // binary, target port, target port group
	b = be.AppendUint16(b, targetPortGroup)
	return b
}

// spcReportTargetPortGroups serves REPORT TARGET PORT GROUPS (MAINTENANCE
// IN 0xA3/0x0A, SPC-4 6.37): one implicit ALUA group, active/optimized,
// with our one target port. Parameter data formats 000b (length only) and
// 001b (extended header) are known; the rest are reserved.
func spcReportTargetPortGroups(d *Disk, cdb []byte, cmd *Command, res *Result) check {
	format := cdb[1] >> 5
	if format > 1 {
		return invalidCDB(1, 7)
	}
	alloc := int(be.Uint32(cdb[6:]))
	b := make([]byte, 4, 24)
	if format == 1 {
		b = append(b, 0x10, 0, 0, 0) // FORMAT TYPE 001b, implicit transition time 0
	}
	b = append(b, 0x00, 0x01) // active/optimized; AO_SUP only
	b = be.AppendUint16(b, targetPortGroup)
	b = append(b, 0, 0x00, 0, 1, 0, 0) // status code 0, one target port
	b = be.AppendUint16(b, relativeTargetPort)
	be.PutUint32(b[0:], uint32(len(b)-4))
	dataIn(cmd, res, b, alloc)
	return good
}

// blockLimits is the body of VPD 0xB0 (SBC-3 6.5.3).
func (d *Disk) blockLimits() []byte {
	b := make([]byte, 0x3C)
	b[0] = 0x01 // WSNZ: WRITE SAME with 0 blocks is refused
	gran := uint16(1) << d.physExp
	be.PutUint16(b[2:], gran) // OPTIMAL TRANSFER LENGTH GRANULARITY
	if !d.ro {
		b[1] = maxCompareAndWrite // MAXIMUM COMPARE AND WRITE LENGTH
	}
	be.PutUint32(b[4:], d.advXfer) // MAXIMUM TRANSFER LENGTH
	be.PutUint32(b[8:], d.advXfer) // OPTIMAL TRANSFER LENGTH
	be.PutUint32(b[12:], d.maxXfer)
	if d.disc != nil {
		be.PutUint32(b[16:], d.maxUnmap)          // MAXIMUM UNMAP LBA COUNT
		be.PutUint32(b[20:], maxUnmapDescriptors) // MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT
		be.PutUint32(b[24:], uint32(gran))        // OPTIMAL UNMAP GRANULARITY
		be.PutUint32(b[28:], 0x80000000)          // UGAVALID, alignment 0
	}
	if !d.ro {
		be.PutUint64(b[32:], uint64(d.maxUnmap)) // MAXIMUM WRITE SAME LENGTH
	}
	return b
}

// Mode pages.
const (
	pageRWErrorRecovery = 0x01
	pageCaching         = 0x08
	pageControl         = 0x0A
	pageInfoExceptions  = 0x1C
	pageAll             = 0x3F
)

// modePages is what MODE SENSE of page 3Fh returns, in page code order.
var modePages = []byte{pageRWErrorRecovery, pageCaching, pageControl, pageInfoExceptions}

// modePage builds page code in the form asked for by pc (0 current,
// 1 changeable, 2 default, 3 saved). Nothing can be saved, so the saved
// values are the defaults (LIO answers saved values too).
func (d *Disk) modePage(code byte, pc byte) []byte {
	if pc == 3 {
		pc = 2
	}
	switch code {
	case pageRWErrorRecovery:
		// All zeros: no error recovery to tune on a virtual medium
		// (read/write retry counts 0, AWRE/ARRE 0, as LIO reports).
		p := make([]byte, 12)
		p[0], p[1] = pageRWErrorRecovery, 0x0A
		return p
	case pageInfoExceptions:
		// Informational exceptions: none are ever reported (MRIE 0).
		p := make([]byte, 12)
		p[0], p[1] = pageInfoExceptions, 0x0A
		return p
	case pageCaching:
		p := make([]byte, 20)
		p[0], p[1] = pageCaching, 0x12
		switch pc {
		case 0:
			if d.wce.Load() {
				p[2] = 0x04
			}
		case 1:
			p[2] = 0x04 // WCE is the one thing MODE SELECT may change
		case 2:
			if d.wceDef {
				p[2] = 0x04
			}
		}
		return p
	case pageControl:
		p := make([]byte, 12)
		p[0], p[1] = pageControl, 0x0A
		if pc != 1 {
			p[3] = 0x10 // QUEUE ALGORITHM MODIFIER 1: unrestricted reordering
		}
		return p
	}
	return nil
}

func spcModeSense(d *Disk, cdb []byte, cmd *Command, res *Result) check {
	ten := cdb[0] == OpModeSense10
	dbd := cdb[1]&0x08 != 0
	llbaa := ten && cdb[1]&0x10 != 0
	pc, code, sub := cdb[2]>>6, cdb[2]&0x3F, cdb[3]
	alloc := int(cdb[4])
	if ten {
		alloc = int(be.Uint16(cdb[7:]))
	}
	if sub != 0 && sub != 0xFF {
		return invalidCDB(3, -1)
	}
	var pages []byte
	if code == pageAll {
		for _, c := range modePages {
			pages = append(pages, d.modePage(c, pc)...)
		}
	} else if pages = d.modePage(code, pc); pages == nil {
		return invalidCDB(2, 5)
	}
	var bd []byte
	if !dbd {
		capa := d.capacity.Load()
		if llbaa {
			bd = make([]byte, 16)
			if pc != 1 {
				be.PutUint64(bd[0:], capa)
				be.PutUint32(bd[12:], d.lbs)
			}
		} else {
			bd = make([]byte, 8)
			if pc != 1 {
				be.PutUint32(bd[0:], uint32(min(capa, 0xFFFFFFFF)))
				bd[5], bd[6], bd[7] = byte(d.lbs>>16), byte(d.lbs>>8), byte(d.lbs)
			}
		}
	}
	dsp := byte(0x10) // DPOFUA
	if d.ro {
		dsp |= 0x80 // WP
	}
	var b []byte
	if ten {
		b = make([]byte, 8, 8+len(bd)+len(pages))
		b[3] = dsp
		if llbaa && len(bd) > 0 {
			b[4] = 0x01 // LONGLBA
		}
		be.PutUint16(b[6:], uint16(len(bd)))
	} else {
		b = make([]byte, 4, 4+len(bd)+len(pages))
		b[2] = dsp
		b[3] = byte(len(bd))
	}
	b = append(append(b, bd...), pages...)
	if ten {
		be.PutUint16(b[0:], uint16(len(b)-2))
	} else {
		b[0] = byte(len(b) - 1)
	}
	dataIn(cmd, res, b, alloc)
	return good
}

// spcModeSelect accepts a change of the caching page's WCE bit. Every other
// field must equal its current value; anything else is INVALID FIELD IN
// PARAMETER LIST, and nothing changes unless the whole list is valid.
func spcModeSelect(d *Disk, cdb []byte, cmd *Command, res *Result) check {
	ten := cdb[0] == OpModeSelect10
	if cdb[1]&0x01 != 0 {
		return invalidCDB(1, 0) // SP: nothing can be saved
	}
	plen, lenField, hdr := int(cdb[4]), 4, 4
	if ten {
		plen, lenField, hdr = int(be.Uint16(cdb[7:])), 7, 8
	}
	if plen == 0 {
		return good
	}
	if plen < hdr {
		return paramListLenError
	}
	p, c := dataOut(cmd, plen, lenField)
	if c.failed {
		return c
	}
	bdLen, long := int(p[3]), false
	if ten {
		bdLen, long = int(be.Uint16(p[6:])), p[4]&0x01 != 0
	}
	descLen := 8
	if long {
		descLen = 16
	}
	if hdr+bdLen > plen || bdLen%descLen != 0 {
		return paramListLenError
	}
	for off := hdr; off < hdr+bdLen; off += descLen {
		var blen uint32
		if long {
			blen = be.Uint32(p[off+12:])
		} else {
			blen = uint32(p[off+5])<<16 | uint32(p[off+6])<<8 | uint32(p[off+7])
		}
		if blen != d.lbs {
			return invalidParam(off + descLen - 3) // block size changes are not supported
		}
	}
	wce := d.wce.Load()
	for off := hdr + bdLen; off < plen; {
		if plen-off < 2 {
			return paramListLenError
		}
		if p[off]&0x40 != 0 {
			return invalidParam(off) // SPF: we have no subpages
		}
		code, n := p[off]&0x3F, int(p[off+1])
		if off+2+n > plen {
			return paramListLenError
		}
		cur := d.modePage(code, 0)
		if cur == nil || len(cur) != 2+n {
			return invalidParam(off)
		}
		got := p[off : off+2+n]
		for i := 2; i < len(cur); i++ {
			mask := byte(0xFF)
			if code == pageCaching && i == 2 {
				mask = ^byte(0x04)
			}
			if got[i]&mask != cur[i]&mask {
				return invalidParam(off + i)
			}
		}
		if code == pageCaching {
			wce = got[2]&0x04 != 0
		}
		off += 2 + n
	}
	if d.wce.Load() && !wce {
		// Going write-through: flush what the cache already holds.
		if err := d.st.Sync(); err != nil {
			return storeError(err, true, 0)
		}
	}
	d.wce.Store(wce)
	return good
}

func spcReportLUNs(d *Disk, cdb []byte, cmd *Command, res *Result) check {
	luns := []uint64{d.lun}
	if d.peers != nil {
		luns = d.peers()
	}
	return reportLUNs(cdb, cmd, res, luns)
}

// EmulateReportLUNs answers a REPORT LUNS CDB with luns (used by LUNs that
// are not emulated disks, e.g. passthrough with REPORT LUNS emulation).
func EmulateReportLUNs(cmd *Command, res *Result, luns []uint64) {
	*res = Result{}
	if len(cmd.CDB) < 12 || cmd.CDB[0] != OpReportLUNs {
		invalidCDB(0, -1).apply(res)
		return
	}
	reportLUNs(cmd.CDB[:12], cmd, res, luns).apply(res)
}

// reportLUNs encodes luns the way Linux's int_to_scsilun does (two bytes per
// level, first level first), so a Linux guest's scsilun_to_int gives back
// exactly the numbers of the vscsi configuration: 0..255 are plain
// peripheral addresses. SELECT REPORT 00h-02h are SPC-4's, 10h-12h SPC-5's
// administrative-LU forms (we have no administrative LUs); any allocation
// length is accepted and truncates (SPC-4 only says it should be >= 16).
func reportLUNs(cdb []byte, cmd *Command, res *Result, luns []uint64) check {
	sel := cdb[2]
	alloc := int(be.Uint32(cdb[6:]))
	switch sel {
	case 0x00, 0x02, 0x11:
	case 0x01, 0x10, 0x12: // well-known or administrative LUNs only: we have none
		luns = nil
	default:
		return invalidCDB(2, -1)
	}
	b := make([]byte, 8+8*len(luns))
	be.PutUint32(b[0:], uint32(8*len(luns)))
	for i, l := range luns {
		e := b[8+8*i:]
		for j := 0; j < 8; j += 2 {
			e[j], e[j+1] = byte(l>>8), byte(l)
			l >>= 16
		}
	}
	dataIn(cmd, res, b, alloc)
	return good
}

// spcReportSupportedOps serves REPORT SUPPORTED OPERATION CODES (MAINTENANCE
// IN 0xA3/0x0C), all-commands and one-command formats (SPC-4 6.35).
func spcReportSupportedOps(d *Disk, cdb []byte, cmd *Command, res *Result) check {
	rctd := cdb[2]&0x80 != 0
	opts := cdb[2] & 0x07
	reqOp, reqSA := cdb[3], be.Uint16(cdb[4:])
	alloc := int(be.Uint32(cdb[6:]))
	timeouts := func(b []byte) []byte { return append(b, 0x00, 0x0A, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0) }
	switch opts {
	case 0:
		b := make([]byte, 4, 1024)
		for op := 0; op < 256; op++ {
			e := &d.ops[op]
			if e.fn == nil {
				continue
			}
			add := func(sa uint16, hasSA bool) {
				flags := byte(0)
				if hasSA {
					flags |= 0x01 // SERVACTV
				}
				if rctd {
					flags |= 0x02 // CTDP
				}
				b = append(b, byte(op), 0, byte(sa>>8), byte(sa), 0, flags, 0, e.cdbLen)
				if rctd {
					b = timeouts(b)
				}
			}
			if e.sas == nil {
				add(0, false)
			}
			for _, s := range e.sas {
				add(s.sa, true)
			}
		}
		be.PutUint32(b[0:], uint32(len(b)-4))
		dataIn(cmd, res, b, alloc)
		return good
	case 1, 2, 3:
		e := &d.ops[reqOp]
		var usage []byte
		switch {
		case e.fn == nil:
		case e.sas == nil:
			if opts == 2 {
				return invalidCDB(2, 2)
			}
			if opts == 1 || reqSA == 0 {
				usage = e.usage
			}
		default:
			if opts == 1 {
				return invalidCDB(2, 2)
			}
			for _, s := range e.sas {
				if s.sa == reqSA {
					usage = s.usage
				}
			}
		}
		b := make([]byte, 4, 4+16+12)
		if usage == nil {
			b[1] = 0x01 // not supported
		} else {
			b[1] = 0x03 // supported, conforming to the standard
			if rctd {
				b[1] |= 0x80 // CTDP
			}
			be.PutUint16(b[2:], uint16(len(usage)))
			b = append(b, usage...)
			if rctd {
				b = timeouts(b)
			}
		}
		dataIn(cmd, res, b, alloc)
		return good
	}
	return invalidCDB(2, 2)
}
