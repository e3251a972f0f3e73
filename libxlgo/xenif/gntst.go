package xenif

import "strconv"

// PageSize is the size of a Xen page, the unit of grants: a grant-copy op
// must not cross the end of its foreign page.
const PageSize = 4096

// DomidFirstReserved is the first domid that names no ordinary domain
// (DOMID_SELF, DOMID_IO, ...). Grant copy carries domids in 16 bits, and
// DOMID_SELF there would mean our own grants, so such ids are refused.
const DomidFirstReserved = 0x7FF0

// GNTST_* status codes of grant-table operations (xen/include/public/grant_table.h),
// as left in GrantCopyOp.Status.
const (
	GNTSTOkay             int16 = 0
	GNTSTGeneralError     int16 = -1
	GNTSTBadDomain        int16 = -2
	GNTSTBadGntref        int16 = -3
	GNTSTBadHandle        int16 = -4
	GNTSTBadVirtAddr      int16 = -5
	GNTSTBadDevAddr       int16 = -6
	GNTSTNoDeviceSpace    int16 = -7
	GNTSTPermissionDenied int16 = -8
	GNTSTBadPage          int16 = -9
	GNTSTBadCopyArg       int16 = -10
	GNTSTAddressTooBig    int16 = -11
	GNTSTEagain           int16 = -12
	GNTSTNoSpace          int16 = -13
)

var gntstText = [...]string{
	"okay", "general error", "bad domain", "bad grant ref", "bad handle",
	"bad virtual address", "bad device address", "no device space",
	"permission denied", "bad page", "bad copy argument", "address too big",
	"try again", "no space",
}

// GrantStatusText names a GNTST_* code for log messages ("bad grant ref").
func GrantStatusText(s int16) string {
	if s <= 0 && int(-s) < len(gntstText) {
		return gntstText[-s]
	}
	return "grant status " + strconv.Itoa(int(s))
}

// CheckCopyOp returns GNTSTBadCopyArg if op's foreign side would cross the end
// of its page (Offset+len(Local) > PageSize), GNTSTBadDomain if Domid is not
// an ordinary domain's, else GNTSTOkay. Linux's gntdev rejects a page-crossing
// segment by failing the whole grant-copy ioctl with EINVAL, so the wrappers
// check each op first and fail only that op, as Xen itself would: one hostile
// segment must not fail a batch of good ones.
func CheckCopyOp(op *GrantCopyOp) int16 {
	if int(op.Offset)+len(op.Local) > PageSize {
		return GNTSTBadCopyArg
	}
	if op.Domid >= DomidFirstReserved {
		return GNTSTBadDomain
	}
	return GNTSTOkay
}
