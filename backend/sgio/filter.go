package sgio

// Filter classes for the CDB allow-list.
const (
	deny        = iota
	allow       // any CDB with this opcode
	allowWrite  // allowed, but it modifies the medium (refused when read-only)
	allowSA     // allowed for the service actions listed in allowedSA
	allowNoSave // MODE SELECT: allowed unless SP (save pages) is set
	// allowNoSaveRO: MODE SELECT of a tape or changer, allowed read-only
	// too (a restore sets the block size; no data changes)
	allowNoSaveRO
)

// allowedSA lists the service actions allowed under opcodes of class allowSA.
var allowedSA = map[[2]byte]bool{
	{0x9E, 0x10}: true, // READ CAPACITY(16)
	{0x9E, 0x12}: true, // GET LBA STATUS
	{0xA3, 0x0A}: true, // REPORT TARGET PORT GROUPS
	{0xA3, 0x0C}: true, // REPORT SUPPORTED OPERATION CODES
	{0xA3, 0x0D}: true, // REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS
	{0xA3, 0x0F}: true, // REPORT TIMESTAMP
}

// Peripheral device types (SPC-4 table 133) with a policy of their own.
const (
	TypeDisk    = 0x00
	TypeTape    = 0x01
	TypeCDROM   = 0x05
	TypeOptical = 0x07
	TypeChanger = 0x08
	TypeRBC     = 0x0E
)

// TypeName names a peripheral device type for messages.
func TypeName(t byte) string {
	switch t {
	case TypeDisk, TypeRBC:
		return "disk"
	case TypeTape:
		return "tape"
	case TypeCDROM:
		return "cd/dvd"
	case TypeOptical:
		return "optical"
	case TypeChanger:
		return "medium changer"
	}
	return "other"
}

// The allow-lists (not in raw mode) are per peripheral device type, so an
// opcode means what the device's command set says (0x2B is SEEK on a
// disk, LOCATE on a tape, POSITION TO ELEMENT on a changer). Each lets a
// guest use the device it was given the way its software does (backup
// software on tapes and changers included) and keeps out what could damage
// the device or reach beyond it: FORMAT UNIT of a disk, REASSIGN BLOCKS,
// WRITE/READ BUFFER (firmware download), SEND DIAGNOSTIC, SANITIZE,
// persistent reservations and RESERVE/RELEASE (visible to other hosts on
// shared storage), SECURITY PROTOCOL (self-encrypting drives: a guest
// could lock or crypto-erase the device; tape encryption needs ,raw),
// ATA PASS-THROUGH, READ/WRITE LONG, EXTENDED COPY, MAINTENANCE OUT,
// variable-length CDBs and every vendor-specific opcode (0xC0-0xFF).
// docs/backend.md §2 and vscsi-backend(8) list them.

// spcCommon is what every device type gets (SPC-4).
func spcCommon(t *[256]uint8) {
	for _, op := range []byte{
		0x00, // TEST UNIT READY
		0x03, // REQUEST SENSE
		0x12, // INQUIRY
		0x1A, // MODE SENSE(6)
		0x1E, // PREVENT ALLOW MEDIUM REMOVAL
		0x4D, // LOG SENSE (TapeAlert, informational exceptions)
		0x5A, // MODE SENSE(10)
		0x8C, // READ ATTRIBUTE (medium auxiliary memory)
		0xA0, // REPORT LUNS
	} {
		t[op] = allow
	}
	t[0xA3] = allowSA
	t[0x15] = allowNoSave // MODE SELECT(6): tapes set block size and compression this way
	t[0x55] = allowNoSave // MODE SELECT(10)
}

// diskPolicy: SBC (direct access, optical memory, RBC).
func diskPolicy() *[256]uint8 {
	var t [256]uint8
	spcCommon(&t)
	for _, op := range []byte{
		0x01, // REZERO UNIT (obsolete)
		0x08, // READ(6)
		0x1B, // START STOP UNIT
		0x25, // READ CAPACITY(10)
		0x28, // READ(10)
		0x2B, // SEEK(10) (obsolete)
		0x2F, // VERIFY(10)
		0x34, // PRE-FETCH(10)
		0x35, // SYNCHRONIZE CACHE(10)
		0x88, // READ(16)
		0x8F, // VERIFY(16)
		0x90, // PRE-FETCH(16)
		0x91, // SYNCHRONIZE CACHE(16)
		0xA8, // READ(12)
	} {
		t[op] = allow
	}
	for _, op := range []byte{
		0x0A, // WRITE(6)
		0x2A, // WRITE(10)
		0x2E, // WRITE AND VERIFY(10)
		0x41, // WRITE SAME(10)
		0x42, // UNMAP
		0x89, // COMPARE AND WRITE
		0x8A, // WRITE(16)
		0x8E, // WRITE AND VERIFY(16)
		0x93, // WRITE SAME(16)
		0xAA, // WRITE(12)
	} {
		t[op] = allowWrite
	}
	t[0x9E] = allowSA
	return &t
}

// cdromPolicy: MMC (CD/DVD/BD drives, writers for DVD-RAM-style writes).
func cdromPolicy() *[256]uint8 {
	var t [256]uint8
	spcCommon(&t)
	for _, op := range []byte{
		0x1B, // START STOP UNIT (eject, load)
		0x23, // READ FORMAT CAPACITIES
		0x25, // READ CAPACITY
		0x28, // READ(10)
		0x2B, // SEEK(10)
		0x2F, // VERIFY(10)
		0x35, // SYNCHRONIZE CACHE
		0x43, // READ TOC/PMA/ATIP
		0x46, // GET CONFIGURATION
		0x4A, // GET EVENT STATUS NOTIFICATION
		0x51, // READ DISC INFORMATION
		0x52, // READ TRACK INFORMATION
		0x5C, // READ BUFFER CAPACITY
		0xA4, // REPORT KEY (DVD region/authentication)
		0xA8, // READ(12)
		0xAD, // READ DISC STRUCTURE
		0xB9, // READ CD MSF
		0xBB, // SET CD SPEED
		0xBD, // MECHANISM STATUS
		0xBE, // READ CD
	} {
		t[op] = allow
	}
	for _, op := range []byte{0x2A, 0xAA} { // WRITE(10), WRITE(12)
		t[op] = allowWrite
	}
	return &t
}

// tapePolicy: SSC (sequential access), what backup software sends.
func tapePolicy() *[256]uint8 {
	var t [256]uint8
	spcCommon(&t)
	t[0x15], t[0x55] = allowNoSaveRO, allowNoSaveRO
	for _, op := range []byte{
		0x01, // REWIND
		0x05, // READ BLOCK LIMITS
		0x08, // READ(6)
		0x0F, // READ REVERSE(6)
		0x11, // SPACE(6)
		0x13, // VERIFY(6)
		0x14, // RECOVER BUFFERED DATA
		0x1B, // LOAD UNLOAD
		0x2B, // LOCATE(10)
		0x34, // READ POSITION
		0x44, // REPORT DENSITY SUPPORT
		0x81, // READ REVERSE(16)
		0x88, // READ(16)
		0x8F, // VERIFY(16)
		0x91, // SPACE(16)
		0x92, // LOCATE(16)
	} {
		t[op] = allow
	}
	for _, op := range []byte{
		0x04, // FORMAT MEDIUM (partitions the cartridge: LTFS)
		0x0A, // WRITE(6)
		0x0B, // SET CAPACITY
		0x10, // WRITE FILEMARKS(6)
		0x19, // ERASE(6)
		0x4C, // LOG SELECT (resets the drive's counters)
		0x80, // WRITE FILEMARKS(16)
		0x8A, // WRITE(16)
		0x8D, // WRITE ATTRIBUTE (medium auxiliary memory)
		0x93, // ERASE(16)
	} {
		t[op] = allowWrite
	}
	return &t
}

// changerPolicy: SMC (medium changers, tape libraries). Moving cartridges
// is allowed on a read-only changer too: ,ro protects data, which a
// changer does not hold.
func changerPolicy() *[256]uint8 {
	var t [256]uint8
	spcCommon(&t)
	t[0x15], t[0x55] = allowNoSaveRO, allowNoSaveRO
	for _, op := range []byte{
		0x07, // INITIALIZE ELEMENT STATUS
		0x1B, // OPEN/CLOSE IMPORT/EXPORT ELEMENT
		0x2B, // POSITION TO ELEMENT
		0x37, // INITIALIZE ELEMENT STATUS WITH RANGE
		0xA5, // MOVE MEDIUM
		0xA6, // EXCHANGE MEDIUM
		0xB5, // REQUEST VOLUME ELEMENT ADDRESS
		0xB6, // SEND VOLUME TAG
		0xB8, // READ ELEMENT STATUS
	} {
		t[op] = allow
	}
	return &t
}

// otherPolicy: device types without a command set of their own here
// (processors, enclosures, ...): SPC only.
func otherPolicy() *[256]uint8 {
	var t [256]uint8
	spcCommon(&t)
	return &t
}

// policyFor is the allow-list of a peripheral device type.
func policyFor(ptype byte) *[256]uint8 {
	switch ptype {
	case TypeDisk, TypeOptical, TypeRBC:
		return diskPolicy()
	case TypeTape:
		return tapePolicy()
	case TypeCDROM:
		return cdromPolicy()
	case TypeChanger:
		return changerPolicy()
	}
	return otherPolicy()
}

// verdict is the allow-list's answer for one CDB.
type verdict uint8

const (
	pass verdict = iota
	refuseOpcode
	refuseField
	refuseReadOnly
)

// classify decides about cdb (len >= 1) with table t.
func classify(t *[256]uint8, cdb []byte, readOnly bool) verdict {
	switch t[cdb[0]] {
	case allow:
		return pass
	case allowWrite:
		if readOnly {
			return refuseReadOnly
		}
		return pass
	case allowSA:
		if len(cdb) < 2 || !allowedSA[[2]byte{cdb[0], cdb[1] & 0x1F}] {
			return refuseField
		}
		return pass
	case allowNoSave, allowNoSaveRO:
		if readOnly && t[cdb[0]] == allowNoSave {
			return refuseReadOnly
		}
		if len(cdb) < 2 || cdb[1]&0x01 != 0 {
			return refuseField
		}
		return pass
	}
	return refuseOpcode
}
