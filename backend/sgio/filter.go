package sgio

// Filter classes for the CDB allow-list.
const (
	deny        = iota
	allow       // any CDB with this opcode
	allowWrite  // allowed, but it modifies the medium (refused when read-only)
	allowSA     // allowed for the service actions listed in allowedSA
	allowNoSave // MODE SELECT: allowed unless SP (save pages) is set
)

// allowedSA lists the service actions allowed under opcodes of class allowSA.
var allowedSA = map[[2]byte]bool{
	{0x9E, 0x10}: true, // READ CAPACITY(16)
	{0x9E, 0x12}: true, // GET LBA STATUS
	{0xA3, 0x0A}: true, // REPORT TARGET PORT GROUPS
	{0xA3, 0x0C}: true, // REPORT SUPPORTED OPERATION CODES
	{0xA3, 0x0D}: true, // REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS
}

// defaultAllow is the allow-list used unless raw (feature-host) mode is on.
// It lets a guest use a disk, CD/DVD or tape drive it was given, and keeps
// out what could damage the device or reach beyond it: FORMAT UNIT,
// REASSIGN BLOCKS, WRITE/READ BUFFER (firmware download), SEND DIAGNOSTIC,
// SANITIZE, persistent reservations and RESERVE/RELEASE (visible to other
// hosts on shared storage), SECURITY PROTOCOL, ATA PASS-THROUGH,
// READ/WRITE LONG, EXTENDED COPY, MAINTENANCE OUT, variable-length CDBs and
// every vendor-specific opcode (0xC0-0xFF).
func defaultAllow() *[256]uint8 {
	var t [256]uint8
	for _, op := range []byte{
		0x00, // TEST UNIT READY
		0x01, // REWIND (SSC) / REZERO UNIT
		0x03, // REQUEST SENSE
		0x05, // READ BLOCK LIMITS (SSC)
		0x08, // READ(6)
		0x12, // INQUIRY
		0x1A, // MODE SENSE(6)
		0x1B, // START STOP UNIT / LOAD UNLOAD
		0x1E, // PREVENT ALLOW MEDIUM REMOVAL
		0x23, // READ FORMAT CAPACITIES (MMC)
		0x25, // READ CAPACITY(10)
		0x28, // READ(10)
		0x2B, // SEEK(10) / LOCATE(10)
		0x2F, // VERIFY(10)
		0x34, // PRE-FETCH(10) / READ POSITION (SSC)
		0x35, // SYNCHRONIZE CACHE(10)
		0x43, // READ TOC/PMA/ATIP (MMC)
		0x46, // GET CONFIGURATION (MMC)
		0x4A, // GET EVENT STATUS NOTIFICATION (MMC)
		0x4D, // LOG SENSE
		0x51, // READ DISC INFORMATION (MMC)
		0x52, // READ TRACK INFORMATION (MMC)
		0x5A, // MODE SENSE(10)
		0x5C, // READ BUFFER CAPACITY (MMC)
		0x88, // READ(16)
		0x8F, // VERIFY(16)
		0x90, // PRE-FETCH(16)
		0x91, // SYNCHRONIZE CACHE(16)
		0x92, // LOCATE(16) (SSC)
		0xA0, // REPORT LUNS
		0xA8, // READ(12)
		0xAD, // READ DISC STRUCTURE (MMC)
		0xB9, // READ CD MSF (MMC)
		0xBB, // SET CD SPEED (MMC)
		0xBE, // READ CD (MMC)
	} {
		t[op] = allow
	}
	for _, op := range []byte{
		0x0A, // WRITE(6)
		0x10, // WRITE FILEMARKS (SSC)
		0x19, // ERASE (SSC)
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
	t[0x11] = allow // SPACE (SSC) positions the tape; it writes nothing
	t[0x9E] = allowSA
	t[0xA3] = allowSA
	t[0x15] = allowNoSave // MODE SELECT(6): tapes set their block size this way
	t[0x55] = allowNoSave // MODE SELECT(10)
	return &t
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
	case allowNoSave:
		if readOnly {
			return refuseReadOnly
		}
		if len(cdb) < 2 || cdb[1]&0x01 != 0 {
			return refuseField
		}
		return pass
	}
	return refuseOpcode
}
