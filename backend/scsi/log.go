package scsi

// Log pages (SPC-4 7.3).
const (
	logSupportedPages = 0x00
	logInfoExceptions = 0x2F
)

// spcLogSense serves LOG SENSE with the supported-pages page (00h, and its
// subpage FFh listing the supported subpages) and the informational
// exceptions page (2Fh: no failure predicted, temperature not reported),
// which smartctl and sg_logs read. Nothing is logged, so every page
// control (threshold, cumulative, defaults) returns the same values.
// Saving parameters (SP) and the parameter pointer control (PPC) are not
// supported.
func spcLogSense(d *Disk, cdb []byte, cmd *Command, res *Result) check {
	if cdb[1]&0x01 != 0 {
		return invalidCDB(1, 0) // SP
	}
	if cdb[1]&0x02 != 0 {
		return invalidCDB(1, 1) // PPC
	}
	code, sub := cdb[2]&0x3F, cdb[3]
	ptr := be.Uint16(cdb[5:])
	alloc := int(be.Uint16(cdb[7:]))
	var b []byte
	switch {
	case code == logSupportedPages && sub == 0x00:
		b = []byte{logSupportedPages, 0, 0, 2, logSupportedPages, logInfoExceptions}
	case code == logSupportedPages && sub == 0xFF:
		b = []byte{0x40 | logSupportedPages, 0xFF, 0, 6,
			logSupportedPages, 0x00, logSupportedPages, 0xFF, logInfoExceptions, 0x00}
	case code == logInfoExceptions && sub == 0x00:
		if ptr > 0 {
			return invalidCDB(5, -1) // the page's only parameter is 0000h
		}
		b = []byte{logInfoExceptions, 0, 0, 8,
			0, 0, 0x03, 4, // parameter 0000h, binary list, 4 bytes
			0x00, 0x00, 0xFF, 0} // IE ASC/ASCQ 00/00, most recent temperature: not available
	default:
		return invalidCDB(2, 5)
	}
	b[0] |= 0x80 // DS: parameters are never saved
	dataIn(cmd, res, b, alloc)
	return good
}
