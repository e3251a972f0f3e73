package main

import (
	"path"
	"slices"
)

// Intended is a difference from LIO that govscsi keeps on purpose. Every
// entry has a line in docs/backend.md ("Differences from LIO"), which
// TestIntendedDocumented checks. An entry matches a case by its ID
// pattern (path.Match syntax) and only when our answer is one of those
// listed, so a later change of our answer shows up as a new difference.
type Intended struct {
	Pattern string
	Ours    []string // our outcomes as Outcome.String prints them
	Reason  string   // the short reason; docs/backend.md has the long one
}

const (
	good    = "GOOD"
	invCDB  = "CHECK 5/24/00"
	invOp   = "CHECK 5/20/00"
	lbaOOR  = "CHECK 5/21/00"
	invCIU  = "CHECK 5/0E/03"
	invPar  = "CHECK 5/26/00"
	plenErr = "CHECK 5/1A/00"
	miscmp  = "CHECK E/1D/00"
	resConf = "RESERVATION-CONFLICT"
)

var intended = []Intended{
	{"*.naca", []string{invCDB}, "NACA=1 without ACA support is INVALID FIELD IN CDB (SAM-5); LIO ignores NACA"},
	{"write*.long-data", []string{good}, "data-out beyond the transfer is ignored; LIO refuses it"},
	{"write*.no-data", []string{invCIU}, "a WRITE without data is refused; LIO completes it GOOD without writing"},
	{"scan.0a", []string{invCIU}, "WRITE(6) of 256 blocks without data: refused; LIO completes it without writing"},
	{"scan.08", []string{invCDB}, "READ(6) of 256 blocks without a buffer: refused; LIO completes it"},
	{"read*.len0-at-capacity", []string{good}, "LBA = capacity with length 0 is in range (SBC-3); LIO's rd_mcp fails it 02/08/00"},
	{"read*.fua-dpo", []string{good}, "FUA and DPO are supported (DPOFUA=1); LIO's rd_mcp refuses FUA"},
	{"write*.fua", []string{good}, "FUA is supported; LIO's rd_mcp refuses it"},
	{"caw.fua", []string{good}, "FUA is supported; LIO's rd_mcp refuses it"},
	{"get-lba-status.*", []string{good, lbaOOR}, "GET LBA STATUS is served; LIO's rd_mcp does not have it"},
	{"synccache*.capacity", []string{lbaOOR}, "SYNCHRONIZE CACHE checks its range (SBC-3); LIO's rd_mcp does not"},
	{"synccache*.crosses-end", []string{lbaOOR}, "SYNCHRONIZE CACHE checks its range (SBC-3); LIO's rd_mcp does not"},
	{"prefetch*", []string{good, lbaOOR}, "PRE-FETCH is served (a range check); LIO does not have it"},
	{"scan.34", []string{good}, "PRE-FETCH(10) is served; LIO does not have it"},
	{"scan.90", []string{good}, "PRE-FETCH(16) is served; LIO does not have it"},
	{"verify*.bytchk1-miscompare", []string{miscmp}, "VERIFY with BYTCHK compares; LIO's rd_mcp does not look at the data"},
	{"verify*.bytchk3-same", []string{good}, "VERIFY BYTCHK 11b (one block for the range) is served; LIO refuses it"},
	{"verify*.bytchk2", []string{invCDB}, "BYTCHK 10b is reserved; LIO ignores the field"},
	{"verify*.vrprotect", []string{invCDB}, "VRPROTECT without protection information is INVALID FIELD IN CDB (SBC-3); LIO ignores it"},
	{"caw.wrprotect", []string{invCDB}, "WRPROTECT without protection information is INVALID FIELD IN CDB; LIO ignores it"},
	{"caw.no-data", []string{invCIU}, "COMPARE AND WRITE without data: the data length is wrong; LIO says INVALID COMMAND OPERATION CODE"},
	{"writesame*", []string{good, lbaOOR, invCDB}, "WRITE SAME (with UNMAP, NDOB) is served; LIO's rd_mcp refuses it"},
	{"unmap.*", []string{good, lbaOOR, plenErr, invPar, invCDB}, "UNMAP is served; LIO's rd_mcp does not have it"},
	{"scan.42", []string{good}, "UNMAP is served; LIO's rd_mcp does not have it"},
	{"inquiry.vpd-b3", []string{invCDB}, "no referrals, so no Referrals VPD page (SBC-3); LIO serves an empty one"},
	{"modesense6.caching-all-subpages", []string{good}, "subpage FFh of a page is valid (SPC-4); LIO refuses it"},
	{"modeselect*.header-only", []string{good}, "a parameter list of only the header changes nothing and is valid; LIO wants a page"},
	{"modeselect6.pf0", []string{good}, "a parameter list of only the header is valid; LIO wants a page"},
	{"modeselect6.sp", []string{invCDB}, "SP=1 is refused first (nothing can be saved); LIO first complains about the missing page"},
	{"modeselect6.unknown-page", []string{invPar}, "a bad page in the parameter list is INVALID FIELD IN PARAMETER LIST; LIO says IN CDB"},
	{"modeselect6.block-size-change", []string{invPar}, "a bad block descriptor is INVALID FIELD IN PARAMETER LIST; LIO says IN CDB"},
	{"request-sense.alloc0", []string{good}, "allocation length 0 is not an error (SPC-4 4.2.5.6); LIO fails it 02/08/00"},
	{"scan.03", []string{good}, "REQUEST SENSE with allocation length 0 is not an error; LIO fails it 02/08/00"},
	{"start-stop.*", []string{good}, "START STOP UNIT is accepted (a virtual disk is always started); LIO's rd_mcp refuses it"},
	{"scan.1b", []string{good}, "START STOP UNIT is accepted; LIO's rd_mcp refuses it"},
	{"report-luns.select-03", []string{invCDB}, "SELECT REPORT 03h is reserved; LIO ignores the field"},
	{"report-luns.select-ff", []string{invCDB}, "SELECT REPORT FFh is reserved; LIO ignores the field"},
	{"rsoc.*", []string{good, invCDB}, "REPORT SUPPORTED OPERATION CODES is served; LIO does not have it"},
	{"rtpg.bad-format", []string{invCDB}, "PARAMETER DATA FORMAT 111b is reserved; LIO ignores the field"},
	{"report-tmf", []string{invCDB}, "an unsupported service action is INVALID FIELD IN CDB (SPC-4); LIO says INVALID COMMAND OPERATION CODE"},
	{"maintenance-in.bad-sa", []string{invCDB}, "an unsupported service action is INVALID FIELD IN CDB (SPC-4); LIO says INVALID COMMAND OPERATION CODE"},
	{"scan.a3", []string{invCDB}, "an unsupported service action is INVALID FIELD IN CDB (SPC-4); LIO says INVALID COMMAND OPERATION CODE"},
	{"log-sense.*", []string{good, invCDB}, "LOG SENSE is served (supported pages, informational exceptions); LIO does not have it"},
	{"scan.4d", []string{good}, "LOG SENSE is served; LIO does not have it"},
	{"scan.83", []string{invOp}, "no EXTENDED COPY (copy offload reaches beyond the LUN); LIO completes an empty one"},
	{"scan.84", []string{invOp}, "no RECEIVE COPY RESULTS (no EXTENDED COPY); LIO serves its OPERATING PARAMETERS form"},
	{"pr-in.read-keys-alloc4", []string{good}, "PERSISTENT RESERVE IN truncates to any allocation length (SPC-4 4.2.5.6); LIO wants at least 8"},
	{"pr-in.alloc0", []string{good}, "allocation length 0 is not an error (SPC-4 4.2.5.6); LIO refuses it"},
	{"scan.5e", []string{good}, "PERSISTENT RESERVE IN with allocation length 0 is not an error; LIO refuses it"},
	{"pr-out.release-wrong-type", []string{"CHECK 5/26/04"}, "RELEASE of another type is INVALID RELEASE OF PERSISTENT RESERVATION (SPC-4 5.13.11.2.2); LIO answers RESERVATION CONFLICT"},
	{"pr-out.reserve-scope1", []string{invCDB}, "a SCOPE other than LU_SCOPE is an invalid field of the CDB; LIO says of the parameter list"},
	{"pr-out.register-and-move", []string{invCDB}, "REGISTER AND MOVE is not supported (docs/backend.md 9.2); LIO supports it"},
}

func intendedFor(id string, lio, ours Outcome) *Intended {
	for i := range intended {
		e := &intended[i]
		if ok, _ := path.Match(e.Pattern, id); ok && slices.Contains(e.Ours, ours.String()) {
			return e
		}
	}
	return nil
}
