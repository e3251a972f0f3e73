package scsi

// Operation codes this package knows by name (SPC-4, SBC-3).
const (
	OpTestUnitReady      = 0x00
	OpRezeroUnit         = 0x01
	OpRequestSense       = 0x03
	OpRead6              = 0x08
	OpWrite6             = 0x0A
	OpSeek6              = 0x0B
	OpInquiry            = 0x12
	OpModeSelect6        = 0x15
	OpReserve6           = 0x16
	OpRelease6           = 0x17
	OpModeSense6         = 0x1A
	OpStartStopUnit      = 0x1B
	OpReadCapacity10     = 0x25
	OpRead10             = 0x28
	OpWrite10            = 0x2A
	OpSeek10             = 0x2B
	OpWriteVerify10      = 0x2E
	OpVerify10           = 0x2F
	OpPreFetch10         = 0x34
	OpSyncCache10        = 0x35
	OpWriteBuffer        = 0x3B
	OpWriteSame10        = 0x41
	OpUnmap              = 0x42
	OpLogSense           = 0x4D
	OpModeSelect10       = 0x55
	OpReserve10          = 0x56
	OpRelease10          = 0x57
	OpModeSense10        = 0x5A
	OpPersistentResIn    = 0x5E
	OpPersistentResOut   = 0x5F
	OpRead16             = 0x88
	OpCompareAndWrite    = 0x89
	OpWrite16            = 0x8A
	OpWriteVerify16      = 0x8E
	OpVerify16           = 0x8F
	OpPreFetch16         = 0x90
	OpSyncCache16        = 0x91
	OpWriteSame16        = 0x93
	OpServiceActionIn16  = 0x9E
	OpReportLUNs         = 0xA0
	OpMaintenanceIn      = 0xA3
	OpRead12             = 0xA8
	OpWrite12            = 0xAA
	SAReadCapacity16     = 0x10
	SAGetLBAStatus       = 0x12
	SAReportTargetPGs    = 0x0A
	SAReportSupportedOps = 0x0C
)

// handler runs one command. cdb is cut to the opcode's CDB length.
type handler func(d *Disk, cdb []byte, cmd *Command, res *Result) check

// access is how a command meets reservations held by another I_T nexus
// (SPC-4 table 63 "SPC commands that are allowed in the presence of
// various reservations", SBC-3 table 13; docs/backend.md §9).
type access uint8

const (
	// accWrite commands change the medium or the logical unit: they
	// conflict with any reservation held by another nexus, except that
	// registrants pass Registrants Only and All Registrants types.
	accWrite access = iota
	// accRead commands read the medium or the unit's parameters (MODE
	// SENSE, REPORT SUPPORTED OPERATION CODES): they also pass Write
	// Exclusive.
	accRead
	// accAlways commands pass every persistent reservation.
	accAlways
	// accPR: PERSISTENT RESERVE IN/OUT follow their own rules; they only
	// conflict with another nexus's SPC-2 reservation.
	accPR
	// accSPC2: RESERVE/RELEASE(6/10) decide everything themselves.
	accSPC2
)

type saEntry struct {
	sa    uint16
	name  string
	usage []byte // CDB USAGE DATA for REPORT SUPPORTED OPERATION CODES
	fn    handler
	acc   access
}

type opEntry struct {
	name   string
	cdbLen uint8
	fn     handler
	noUA   bool      // INQUIRY, REPORT LUNS, REQUEST SENSE: exempt from unit attentions
	usage  []byte    // CDB USAGE DATA (nil when sas is set)
	sas    []saEntry // service actions, for opcodes that have them
	acc    access
	// spc2OK: allowed while another nexus holds an SPC-2 reservation
	// (INQUIRY, REPORT LUNS, REQUEST SENSE, RELEASE; SPC-2 5.5.1).
	spc2OK bool
	// lock is how the command holds its logical unit's lock (lu.go).
	lock lockMode
}

// lockMode says how a command holds LogicalUnit.mu while it runs.
type lockMode uint8

const (
	lockNone      lockMode = iota // reads: nothing to order against
	lockShared                    // medium writes
	lockExclusive                 // COMPARE AND WRITE, reservation changes
)

// ctl is the control byte usage: we examine NACA only.
const ctl = 0x04

// Maximum NUMBER OF LOGICAL BLOCKS of one COMPARE AND WRITE (Block Limits
// VPD byte 5; LIO's value too: one block is what VMware's ATS and other
// users of the command send).
const maxCompareAndWrite = 1

// buildOps fills the 256-entry opcode table. Entries left empty answer
// ILLEGAL REQUEST / INVALID COMMAND OPERATION CODE (05/20/00); that is also
// how WRITE BUFFER, FORMAT UNIT, EXTENDED COPY and every vendor-specific
// opcode are rejected (docs/backend.md, "Differences from LIO").
func (d *Disk) buildOps() {
	set := func(op byte, name string, acc access, fn handler, usage ...byte) {
		usage[0] = op
		d.ops[op] = opEntry{name: name, cdbLen: uint8(len(usage)), fn: fn, usage: usage, acc: acc}
	}
	rw := byte(0xF8) // RDPROTECT/WRPROTECT, DPO, FUA
	set(OpTestUnitReady, "TEST UNIT READY", accAlways, spcTestUnitReady, 0, 0, 0, 0, 0, ctl)
	set(OpRezeroUnit, "REZERO UNIT", accRead, spcTestUnitReady, 0, 0, 0, 0, 0, ctl)
	set(OpRequestSense, "REQUEST SENSE", accAlways, spcRequestSense, 0, 0x01, 0, 0, 0xFF, ctl)
	set(OpInquiry, "INQUIRY", accAlways, spcInquiry, 0, 0x03, 0xFF, 0xFF, 0xFF, ctl)
	set(OpModeSense6, "MODE SENSE(6)", accRead, spcModeSense, 0, 0x08, 0xFF, 0xFF, 0xFF, ctl)
	set(OpModeSense10, "MODE SENSE(10)", accRead, spcModeSense, 0, 0x18, 0xFF, 0xFF, 0, 0, 0, 0xFF, 0xFF, ctl)
	set(OpModeSelect6, "MODE SELECT(6)", accWrite, spcModeSelect, 0, 0x11, 0, 0, 0xFF, ctl)
	set(OpModeSelect10, "MODE SELECT(10)", accWrite, spcModeSelect, 0, 0x11, 0, 0, 0, 0, 0, 0xFF, 0xFF, ctl)
	set(OpLogSense, "LOG SENSE", accAlways, spcLogSense, 0, 0x03, 0xFF, 0xFF, 0, 0xFF, 0xFF, 0xFF, 0xFF, ctl)
	set(OpStartStopUnit, "START STOP UNIT", accWrite, spcStartStop, 0, 0x01, 0, 0x0F, 0xF7, ctl)
	set(OpReportLUNs, "REPORT LUNS", accAlways, spcReportLUNs, 0, 0, 0xFF, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, ctl)
	set(OpReadCapacity10, "READ CAPACITY(10)", accAlways, sbcReadCapacity10, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0x01, ctl)
	set(OpRead6, "READ(6)", accRead, sbcReadWrite, 0, 0x1F, 0xFF, 0xFF, 0xFF, ctl)
	set(OpRead10, "READ(10)", accRead, sbcReadWrite, 0, rw, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0xFF, 0xFF, ctl)
	set(OpRead12, "READ(12)", accRead, sbcReadWrite, 0, rw, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, ctl)
	set(OpRead16, "READ(16)", accRead, sbcReadWrite, 0, rw, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, ctl)
	set(OpSeek6, "SEEK(6)", accRead, sbcSeek, 0, 0x1F, 0xFF, 0xFF, 0, ctl)
	set(OpSeek10, "SEEK(10)", accRead, sbcSeek, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, ctl)
	set(OpVerify10, "VERIFY(10)", accRead, sbcVerify, 0, 0xF6, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0xFF, 0xFF, ctl)
	set(OpVerify16, "VERIFY(16)", accRead, sbcVerify, 0, 0xF6, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, ctl)
	set(OpPreFetch10, "PRE-FETCH(10)", accRead, sbcPreFetch, 0, 0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0xFF, 0xFF, ctl)
	set(OpPreFetch16, "PRE-FETCH(16)", accRead, sbcPreFetch, 0, 0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, ctl)
	set(OpSyncCache10, "SYNCHRONIZE CACHE(10)", accWrite, sbcSyncCache, 0, 0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0xFF, 0xFF, ctl)
	set(OpSyncCache16, "SYNCHRONIZE CACHE(16)", accWrite, sbcSyncCache, 0, 0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, ctl)
	set(OpPersistentResIn, "PERSISTENT RESERVE IN", accPR, spcPersistentReserveIn, 0, 0x1F, 0, 0, 0, 0, 0, 0xFF, 0xFF, ctl)
	set(OpPersistentResOut, "PERSISTENT RESERVE OUT", accPR, spcPersistentReserveOut, 0, 0x1F, 0xFF, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, ctl)
	set(OpReserve6, "RESERVE(6)", accSPC2, spcReserve, 0, 0, 0, 0, 0, ctl)
	set(OpRelease6, "RELEASE(6)", accSPC2, spcRelease, 0, 0, 0, 0, 0, ctl)
	set(OpReserve10, "RESERVE(10)", accSPC2, spcReserve, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, ctl)
	set(OpRelease10, "RELEASE(10)", accSPC2, spcRelease, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, ctl)
	if !d.ro {
		set(OpWrite6, "WRITE(6)", accWrite, sbcReadWrite, 0, 0x1F, 0xFF, 0xFF, 0xFF, ctl)
		set(OpWrite10, "WRITE(10)", accWrite, sbcReadWrite, 0, rw, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0xFF, 0xFF, ctl)
		set(OpWrite12, "WRITE(12)", accWrite, sbcReadWrite, 0, rw, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, ctl)
		set(OpWrite16, "WRITE(16)", accWrite, sbcReadWrite, 0, rw, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, ctl)
		set(OpWriteVerify10, "WRITE AND VERIFY(10)", accWrite, sbcWriteVerify, 0, 0xF6, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0xFF, 0xFF, ctl)
		set(OpWriteVerify16, "WRITE AND VERIFY(16)", accWrite, sbcWriteVerify, 0, 0xF6, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, ctl)
		set(OpCompareAndWrite, "COMPARE AND WRITE", accWrite, sbcCompareAndWrite, 0, 0xFA, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0xFF, 0, ctl)
		ws := byte(0xE0 | 0x10) // WRPROTECT, ANCHOR (both must be 0)
		if d.disc != nil {
			ws |= 0x08 // UNMAP
		}
		set(OpWriteSame10, "WRITE SAME(10)", accWrite, sbcWriteSame, 0, ws, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0xFF, 0xFF, ctl)
		set(OpWriteSame16, "WRITE SAME(16)", accWrite, sbcWriteSame, 0, ws|0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, ctl)
		if d.disc != nil {
			set(OpUnmap, "UNMAP", accWrite, sbcUnmap, 0, 0x01, 0, 0, 0, 0, 0, 0xFF, 0xFF, ctl)
		}
		for _, op := range []byte{OpWrite6, OpWrite10, OpWrite12, OpWrite16, OpWriteVerify10, OpWriteVerify16,
			OpWriteSame10, OpWriteSame16, OpUnmap} {
			d.ops[op].lock = lockShared
		}
		d.ops[OpCompareAndWrite].lock = lockExclusive
	} else {
		// A read-only disk still knows its write commands: they fail with
		// DATA PROTECT / WRITE PROTECTED, which is what guests expect.
		for _, op := range []byte{OpWrite6, OpWrite10, OpWrite12, OpWrite16, OpWriteVerify10, OpWriteVerify16,
			OpCompareAndWrite, OpWriteSame10, OpWriteSame16, OpUnmap} {
			n := cdbLength(op)
			u := make([]byte, n)
			u[n-1] = ctl
			set(op, "WRITE (read-only)", accWrite, sbcWriteProtected, u...)
		}
	}
	for _, op := range []byte{OpInquiry, OpReportLUNs, OpRequestSense} {
		d.ops[op].noUA = true
	}
	for _, op := range []byte{OpPersistentResOut, OpReserve6, OpRelease6, OpReserve10, OpRelease10} {
		d.ops[op].lock = lockExclusive
	}
	for _, op := range []byte{OpInquiry, OpReportLUNs, OpRequestSense, OpRelease6, OpRelease10, OpReserve6, OpReserve10} {
		d.ops[op].spc2OK = true // RESERVE answers the conflict itself
	}
	d.ops[OpServiceActionIn16] = opEntry{name: "SERVICE ACTION IN(16)", cdbLen: 16, fn: serviceAction, sas: []saEntry{
		{sa: SAReadCapacity16, name: "READ CAPACITY(16)", fn: sbcReadCapacity16, acc: accAlways,
			usage: []byte{OpServiceActionIn16, SAReadCapacity16, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, ctl}},
		{sa: SAGetLBAStatus, name: "GET LBA STATUS", fn: sbcGetLBAStatus, acc: accRead,
			usage: []byte{OpServiceActionIn16, SAGetLBAStatus, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, ctl}},
	}}
	d.ops[OpMaintenanceIn] = opEntry{name: "MAINTENANCE IN", cdbLen: 12, fn: serviceAction, sas: []saEntry{
		{sa: SAReportTargetPGs, name: "REPORT TARGET PORT GROUPS", fn: spcReportTargetPortGroups, acc: accAlways,
			usage: []byte{OpMaintenanceIn, 0xE0 | SAReportTargetPGs, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, ctl}},
		{sa: SAReportSupportedOps, name: "REPORT SUPPORTED OPERATION CODES", fn: spcReportSupportedOps, acc: accRead,
			usage: []byte{OpMaintenanceIn, SAReportSupportedOps, 0x87, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, ctl}},
	}}
}

// accessOf is the reservation access class of cdb (len >= 1, an opcode
// of the table). START STOP UNIT with START=1 and no power condition is
// allowed through every reservation (SBC-3 table 13); other forms stop
// the unit for everybody and conflict.
func (d *Disk) accessOf(e *opEntry, cdb []byte) (acc access) {
	if e.sas != nil {
		sa := uint16(cdb[1] & 0x1F)
		for i := range e.sas {
			if e.sas[i].sa == sa {
				return e.sas[i].acc
			}
		}
		return accAlways // an unknown service action fails in its handler
	}
	if cdb[0] == OpStartStopUnit && cdb[4]&0xF3 == 0x01 {
		return accAlways
	}
	return e.acc
}

// cdbLength is the CDB length implied by the opcode's group code.
func cdbLength(op byte) int {
	switch op >> 5 {
	case 0:
		return 6
	case 1, 2:
		return 10
	case 4:
		return 16
	case 5:
		return 12
	}
	return 16
}

// serviceAction dispatches opcodes whose byte 1 holds a service action.
func serviceAction(d *Disk, cdb []byte, cmd *Command, res *Result) check {
	sa := uint16(cdb[1] & 0x1F)
	for i := range d.ops[cdb[0]].sas {
		if e := &d.ops[cdb[0]].sas[i]; e.sa == sa {
			return e.fn(d, cdb, cmd, res)
		}
	}
	return invalidCDB(1, 4)
}

// dataIn copies a response into the guest's buffer, truncated to the
// allocation length and to what the guest offered. Nothing is copied unless
// the command reads (a mis-directed buffer may be a read-only grant).
func dataIn(cmd *Command, res *Result, buf []byte, alloc int) {
	if cmd.Dir != DirFromDevice && cmd.Dir != DirBidirectional {
		return
	}
	n := min(len(buf), alloc, len(cmd.Data))
	copy(cmd.Data[:n], buf)
	res.DataLen = n
}

// dataOutIU is dataOut for the SBC data commands (WRITE, WRITE AND
// VERIFY, COMPARE AND WRITE): a data-out buffer shorter than the transfer
// is INVALID FIELD IN COMMAND INFORMATION UNIT (05/0E/03), the expected
// data length of the request being wrong, as LIO answers it.
func dataOutIU(cmd *Command, n int) ([]byte, check) {
	if (cmd.Dir != DirToDevice && cmd.Dir != DirBidirectional) || len(cmd.Data) < n {
		return nil, invalidFieldInCIU
	}
	return cmd.Data[:n], good
}

// dataOut returns the first n bytes of the guest's data-out buffer. A guest
// that offers less than the CDB says (or no data-out at all) gets INVALID
// FIELD IN CDB pointing at the length field: nothing is written from a
// short buffer. Extra bytes beyond n are ignored.
func dataOut(cmd *Command, n int, lenField int) ([]byte, check) {
	if n == 0 {
		return nil, good
	}
	if (cmd.Dir != DirToDevice && cmd.Dir != DirBidirectional) || len(cmd.Data) < n {
		return nil, invalidCDB(lenField, -1)
	}
	return cmd.Data[:n], good
}
