package vscsiif

import "errors"

// Validation errors. They are preallocated values so the data path can
// reject a request without allocating; each one means "answer DID_ERROR".
var (
	ErrUnknownAct      = errors.New("vscsiif: unknown request act")
	ErrCmdLen          = errors.New("vscsiif: cmd_len out of 1..16")
	ErrDirection       = errors.New("vscsiif: sc_data_direction out of 0..3")
	ErrTooManySegs     = errors.New("vscsiif: more than 26 seg[] entries")
	ErrNoIndirectPages = errors.New("vscsiif: SG_GRANT request with no indirect pages")
	ErrIndirectLength  = errors.New("vscsiif: indirect SG piece length not a positive multiple of 8")
	ErrSegmentBounds   = errors.New("vscsiif: segment crosses the end of its page")
	ErrTooManyDataSegs = errors.New("vscsiif: more data segments than feature-sg-grant")
)

// Validate checks the fixed part of a request that was already copied into
// private memory. maxSegs is the data-segment limit this backend advertised
// as feature-sg-grant (at least SGTableSize).
//
// For ACT_SCSI_CDB it checks cmd_len, the direction and seg[]: direct
// segments must lie inside their page; indirect pieces must lie inside their
// page, be a positive multiple of 8 long and together describe at most
// maxSegs data segments. The data segments inside indirect pages are checked
// by ValidateSegment after they have been copied out. ABORT and RESET carry
// no CDB or data, so only the act is checked for them.
func (r *Request) Validate(maxSegs int) error {
	switch r.Act {
	case ActSCSICDB:
	case ActSCSIAbort, ActSCSIReset:
		return nil
	default:
		return ErrUnknownAct
	}
	if r.CmdLen == 0 || r.CmdLen > MaxCommandSize {
		return ErrCmdLen
	}
	if r.Direction > DMANone {
		return ErrDirection
	}
	n := r.SegCount()
	if n > SGTableSize {
		return ErrTooManySegs
	}
	if !r.Indirect() {
		for i := 0; i < n; i++ {
			if err := ValidateSegment(r.Seg[i]); err != nil {
				return err
			}
		}
		return nil
	}
	if n == 0 {
		return ErrNoIndirectPages
	}
	total := 0
	for i := 0; i < n; i++ {
		s := r.Seg[i]
		if s.Length == 0 || s.Length%SegmentSize != 0 {
			return ErrIndirectLength
		}
		if err := ValidateSegment(s); err != nil {
			return err
		}
		total += int(s.Length) / SegmentSize
	}
	if total > maxSegs {
		return ErrTooManyDataSegs
	}
	return nil
}

// IndirectDataSegs is the number of data segments the indirect pieces of a
// validated SG_GRANT request describe.
func (r *Request) IndirectDataSegs() int {
	total := 0
	for i := 0; i < r.SegCount(); i++ {
		total += int(r.Seg[i].Length) / SegmentSize
	}
	return total
}

// ValidateSegment checks that a data (or indirect) segment lies inside one
// page: offset + length <= 4096. Zero-length segments are allowed and carry
// no data.
func ValidateSegment(s Segment) error {
	if int(s.Offset)+int(s.Length) > PageSize {
		return ErrSegmentBounds
	}
	return nil
}
