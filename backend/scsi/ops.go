package scsi

// Operation codes this package knows by name (SPC-4, SBC-3).
const (
	OpTestUnitReady      = 0x00
	OpRequestSense       = 0x03
	OpRead6              = 0x08
	OpWrite6             = 0x0A
	OpInquiry            = 0x12
	OpModeSelect6        = 0x15
	OpReserve6           = 0x16
	OpRelease6           = 0x17
	OpModeSense6         = 0x1A
	OpStartStopUnit      = 0x1B
	OpReadCapacity10     = 0x25
	OpRead10             = 0x28
	OpWrite10            = 0x2A
	OpVerify10           = 0x2F
	OpPreFetch10         = 0x34
	OpSyncCache10        = 0x35
	OpWriteBuffer        = 0x3B
	OpWriteSame10        = 0x41
	OpUnmap              = 0x42
	OpModeSelect10       = 0x55
	OpModeSense10        = 0x5A
	OpPersistentResIn    = 0x5E
	OpPersistentResOut   = 0x5F
	OpRead16             = 0x88
	OpWrite16            = 0x8A
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
	SAReportSupportedOps = 0x0C
)

// handler runs one command. cdb is cut to the opcode's CDB length.
type handler func(d *Disk, cdb []byte, cmd *Command, res *Result) check

type saEntry struct {
	sa    uint16
	name  string
	usage []byte // CDB USAGE DATA for REPORT SUPPORTED OPERATION CODES
	fn    handler
}

type opEntry struct {
	name   string
	cdbLen uint8
	fn     handler
	noUA   bool      // INQUIRY, REPORT LUNS, REQUEST SENSE: exempt from unit attentions
	usage  []byte    // CDB USAGE DATA (nil when sas is set)
	sas    []saEntry // service actions, for opcodes that have them
}

// ctl is the control byte usage: we examine NACA only.
const ctl = 0x04

// buildOps fills the 256-entry opcode table. Entries left empty answer
// ILLEGAL REQUEST / INVALID COMMAND OPERATION CODE (05/20/00); that is also
// how PERSISTENT RESERVE IN/OUT, RESERVE/RELEASE, WRITE BUFFER, FORMAT UNIT
// and every vendor-specific opcode are rejected.
func (d *Disk) buildOps() {
	set := func(op byte, name string, fn handler, usage ...byte) {
		usage[0] = op
		d.ops[op] = opEntry{name: name, cdbLen: uint8(len(usage)), fn: fn, usage: usage}
	}
	rw := byte(0xF8) // RDPROTECT/WRPROTECT, DPO, FUA
	set(OpTestUnitReady, "TEST UNIT READY", spcTestUnitReady, 0, 0, 0, 0, 0, ctl)
	set(OpRequestSense, "REQUEST SENSE", spcRequestSense, 0, 0x01, 0, 0, 0xFF, ctl)
	set(OpInquiry, "INQUIRY", spcInquiry, 0, 0x03, 0xFF, 0xFF, 0xFF, ctl)
	set(OpModeSense6, "MODE SENSE(6)", spcModeSense, 0, 0x08, 0xFF, 0xFF, 0xFF, ctl)
	set(OpModeSense10, "MODE SENSE(10)", spcModeSense, 0, 0x18, 0xFF, 0xFF, 0, 0, 0, 0xFF, 0xFF, ctl)
	set(OpModeSelect6, "MODE SELECT(6)", spcModeSelect, 0, 0x11, 0, 0, 0xFF, ctl)
	set(OpModeSelect10, "MODE SELECT(10)", spcModeSelect, 0, 0x11, 0, 0, 0, 0, 0, 0xFF, 0xFF, ctl)
	set(OpStartStopUnit, "START STOP UNIT", spcStartStop, 0, 0x01, 0, 0x0F, 0xF7, ctl)
	set(OpReportLUNs, "REPORT LUNS", spcReportLUNs, 0, 0, 0xFF, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, ctl)
	set(OpReadCapacity10, "READ CAPACITY(10)", sbcReadCapacity10, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0x01, ctl)
	set(OpRead6, "READ(6)", sbcReadWrite, 0, 0x1F, 0xFF, 0xFF, 0xFF, ctl)
	set(OpRead10, "READ(10)", sbcReadWrite, 0, rw, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0xFF, 0xFF, ctl)
	set(OpRead12, "READ(12)", sbcReadWrite, 0, rw, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, ctl)
	set(OpRead16, "READ(16)", sbcReadWrite, 0, rw, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, ctl)
	set(OpVerify10, "VERIFY(10)", sbcVerify, 0, 0xF6, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0xFF, 0xFF, ctl)
	set(OpVerify16, "VERIFY(16)", sbcVerify, 0, 0xF6, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, ctl)
	set(OpPreFetch10, "PRE-FETCH(10)", sbcPreFetch, 0, 0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0xFF, 0xFF, ctl)
	set(OpPreFetch16, "PRE-FETCH(16)", sbcPreFetch, 0, 0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, ctl)
	set(OpSyncCache10, "SYNCHRONIZE CACHE(10)", sbcSyncCache, 0, 0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0xFF, 0xFF, ctl)
	set(OpSyncCache16, "SYNCHRONIZE CACHE(16)", sbcSyncCache, 0, 0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, ctl)
	if !d.ro {
		set(OpWrite6, "WRITE(6)", sbcReadWrite, 0, 0x1F, 0xFF, 0xFF, 0xFF, ctl)
		set(OpWrite10, "WRITE(10)", sbcReadWrite, 0, rw, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0xFF, 0xFF, ctl)
		set(OpWrite12, "WRITE(12)", sbcReadWrite, 0, rw, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, ctl)
		set(OpWrite16, "WRITE(16)", sbcReadWrite, 0, rw, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, ctl)
		ws := byte(0xE0 | 0x10) // WRPROTECT, ANCHOR (both must be 0)
		if d.disc != nil {
			ws |= 0x08 // UNMAP
		}
		set(OpWriteSame10, "WRITE SAME(10)", sbcWriteSame, 0, ws, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0xFF, 0xFF, ctl)
		set(OpWriteSame16, "WRITE SAME(16)", sbcWriteSame, 0, ws|0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, ctl)
		if d.disc != nil {
			set(OpUnmap, "UNMAP", sbcUnmap, 0, 0x01, 0, 0, 0, 0, 0, 0xFF, 0xFF, ctl)
		}
	} else {
		// A read-only disk still knows its write commands: they fail with
		// DATA PROTECT / WRITE PROTECTED, which is what guests expect.
		for _, op := range []byte{OpWrite6, OpWrite10, OpWrite12, OpWrite16, OpWriteSame10, OpWriteSame16, OpUnmap} {
			n := cdbLength(op)
			u := make([]byte, n)
			u[n-1] = ctl
			set(op, "WRITE (read-only)", sbcWriteProtected, u...)
		}
	}
	for _, op := range []byte{OpInquiry, OpReportLUNs, OpRequestSense} {
		d.ops[op].noUA = true
	}
	d.ops[OpServiceActionIn16] = opEntry{name: "SERVICE ACTION IN(16)", cdbLen: 16, fn: serviceAction, sas: []saEntry{
		{sa: SAReadCapacity16, name: "READ CAPACITY(16)", fn: sbcReadCapacity16,
			usage: []byte{OpServiceActionIn16, SAReadCapacity16, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, ctl}},
	}}
	d.ops[OpMaintenanceIn] = opEntry{name: "MAINTENANCE IN", cdbLen: 12, fn: serviceAction, sas: []saEntry{
		{sa: SAReportSupportedOps, name: "REPORT SUPPORTED OPERATION CODES", fn: spcReportSupportedOps,
			usage: []byte{OpMaintenanceIn, SAReportSupportedOps, 0x87, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, ctl}},
	}}
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
