package scsi

// SAM status codes.
const (
	StatusGood                = 0x00
	StatusCheckCondition      = 0x02
	StatusConditionMet        = 0x04
	StatusBusy                = 0x08
	StatusReservationConflict = 0x18
	StatusTaskSetFull         = 0x28
	StatusACAActive           = 0x30
	StatusTaskAborted         = 0x40
)

// Sense keys (SPC-4 table 45).
const (
	KeyNoSense        = 0x0
	KeyRecoveredError = 0x1
	KeyNotReady       = 0x2
	KeyMediumError    = 0x3
	KeyHardwareError  = 0x4
	KeyIllegalRequest = 0x5
	KeyUnitAttention  = 0x6
	KeyDataProtect    = 0x7
	KeyAbortedCommand = 0xB
	KeyMiscompare     = 0xE
)

// FixedSenseLen is the length of the fixed-format sense we build: 8 header
// bytes plus an additional length of 10 (P21).
const FixedSenseLen = 18

// check is the outcome of a handler: the zero value means GOOD, anything
// else is a CHECK CONDITION with fixed-format sense. It is a value type so
// the good path allocates nothing.
type check struct {
	failed    bool
	conflict  bool // RESERVATION CONFLICT status instead of CHECK CONDITION
	key       uint8
	asc, ascq uint8
	infoValid bool
	info      uint64
	// Sense-key specific field pointer (SPC-4 4.5.2.4.2): which CDB byte (cd)
	// or parameter byte (!cd) was wrong, and optionally which bit.
	fpValid  bool
	cd       bool
	bitValid bool
	bit      uint8
	field    uint16
}

var good check

func senseCheck(key, asc, ascq uint8) check {
	return check{failed: true, key: key, asc: asc, ascq: ascq}
}

// withInfo sets the INFORMATION field (only when it fits in fixed format).
func (c check) withInfo(v uint64) check {
	if v <= 0xFFFFFFFF {
		c.infoValid, c.info = true, v
	}
	return c
}

// invalidOpcode: 05/20/00 INVALID COMMAND OPERATION CODE.
func invalidOpcode() check {
	c := senseCheck(KeyIllegalRequest, 0x20, 0x00)
	c.fpValid, c.cd, c.field = true, true, 0
	return c
}

// invalidCDB: 05/24/00 INVALID FIELD IN CDB, pointing at byte (and bit if >= 0).
func invalidCDB(byteIdx int, bit int) check {
	c := senseCheck(KeyIllegalRequest, 0x24, 0x00)
	c.fpValid, c.cd, c.field = true, true, uint16(byteIdx)
	if bit >= 0 && bit < 8 {
		c.bitValid, c.bit = true, uint8(bit)
	}
	return c
}

// invalidParam: 05/26/00 INVALID FIELD IN PARAMETER LIST, pointing at a byte
// of the data-out buffer.
func invalidParam(byteIdx int) check {
	c := senseCheck(KeyIllegalRequest, 0x26, 0x00)
	if byteIdx >= 0 && byteIdx <= 0xFFFF {
		c.fpValid, c.field = true, uint16(byteIdx)
	}
	return c
}

// Named checks, by meaning.
var (
	lbaOutOfRange      = senseCheck(KeyIllegalRequest, 0x21, 0x00) // LOGICAL BLOCK ADDRESS OUT OF RANGE
	paramListLenError  = senseCheck(KeyIllegalRequest, 0x1A, 0x00) // PARAMETER LIST LENGTH ERROR
	savingNotSupported = senseCheck(KeyIllegalRequest, 0x39, 0x00) // SAVING PARAMETERS NOT SUPPORTED
	writeProtected     = senseCheck(KeyDataProtect, 0x27, 0x00)    // WRITE PROTECTED
	spaceAllocFailed   = senseCheck(KeyDataProtect, 0x27, 0x07)    // SPACE ALLOCATION FAILED WRITE PROTECT
	unrecoveredRead    = senseCheck(KeyMediumError, 0x11, 0x00)    // UNRECOVERED READ ERROR
	writeError         = senseCheck(KeyMediumError, 0x0C, 0x00)    // WRITE ERROR
	miscompareOnVerify = senseCheck(KeyMiscompare, 0x1D, 0x00)     // MISCOMPARE DURING VERIFY OPERATION
	invalidFieldInCIU  = senseCheck(KeyIllegalRequest, 0x0E, 0x03) // INVALID FIELD IN COMMAND INFORMATION UNIT
	shortDataIn        = senseCheck(KeyIllegalRequest, 0x24, 0x00) // INVALID FIELD IN CDB without a field: the buffer is short
	mediumNotPresent   = senseCheck(KeyNotReady, 0x3A, 0x00)       // MEDIUM NOT PRESENT (a zero-sized store)
	uaReset            = senseCheck(KeyUnitAttention, 0x29, 0x03)  // BUS DEVICE RESET FUNCTION OCCURRED
	uaCapacityChanged  = senseCheck(KeyUnitAttention, 0x2A, 0x09)  // CAPACITY DATA HAS CHANGED
)

// fill writes c as fixed-format sense into b (len >= FixedSenseLen).
func (c check) fill(b []byte) {
	clear(b[:FixedSenseLen])
	b[0] = 0x70 // current error, fixed format
	if c.infoValid {
		b[0] |= 0x80
		b[3], b[4], b[5], b[6] = byte(c.info>>24), byte(c.info>>16), byte(c.info>>8), byte(c.info)
	}
	b[2] = c.key & 0x0F
	b[7] = FixedSenseLen - 8
	b[12], b[13] = c.asc, c.ascq
	if c.fpValid {
		b[15] = 0x80 // SKSV
		if c.cd {
			b[15] |= 0x40
		}
		if c.bitValid {
			b[15] |= 0x08 | c.bit&7
		}
		b[16], b[17] = byte(c.field>>8), byte(c.field)
	}
}

// sense returns c as a freshly allocated fixed-format sense buffer.
func (c check) sense() []byte {
	b := make([]byte, FixedSenseLen)
	c.fill(b)
	return b
}

// apply sets res from c: GOOD leaves res alone, a failure sets CHECK
// CONDITION with sense and drops any data count.
func (c check) apply(res *Result) {
	if !c.failed {
		return
	}
	if c.conflict {
		res.Status, res.Sense, res.DataLen = StatusReservationConflict, nil, 0
		return
	}
	res.Status = StatusCheckCondition
	res.Sense = c.sense()
	res.DataLen = 0
}

// ValidFixedSense reports whether b is well-formed fixed-format sense as
// this package builds it (response code 0x70/0x71, additional length that
// fits). Exported for the tests of the packages that pass sense along.
func ValidFixedSense(b []byte) bool {
	if len(b) < 8 {
		return false
	}
	rc := b[0] & 0x7F
	if rc != 0x70 && rc != 0x71 {
		return false
	}
	return 8+int(b[7]) <= len(b) && b[7] >= 10
}

// SetCheckCondition makes res a CHECK CONDITION with fixed-format sense
// key/asc/ascq (for LUN implementations outside this package).
func SetCheckCondition(res *Result, key, asc, ascq uint8) {
	*res = Result{}
	senseCheck(key, asc, ascq).apply(res)
}
