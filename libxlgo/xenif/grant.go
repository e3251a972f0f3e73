package xenif

// GrantCopyOp is one segment of a batched grant copy: Len bytes between
// Local and the page of grant Ref of domain Domid, starting at Offset within
// that page. ToGuest chooses the direction. Len must not cross the page end.
type GrantCopyOp struct {
	Ref     uint32
	Domid   uint32
	Offset  uint16
	ToGuest bool
	// Local is the dom0 side of the copy; len(Local) is the copy length.
	Local []byte
	// Status is filled in by GrantCopy: 0 (GNTST_okay) or a negative GNTST_* code.
	Status int16
}

// GrantCopier copies data between dom0 memory and guest grants in batches.
type GrantCopier interface {
	// GrantCopy performs every op in one batch (one ioctl for the real
	// implementation). The returned error covers the batch as a whole; each
	// op's own outcome is in its Status field.
	GrantCopy(ops []GrantCopyOp) error
}

// GrantMapper maps guest grant references into this process.
type GrantMapper interface {
	// MapGrantRefs maps refs of domain domid as consecutive pages. writable
	// selects PROT_READ|PROT_WRITE over PROT_READ.
	MapGrantRefs(domid uint32, refs []uint32, writable bool) ([]byte, error)
	// Unmap releases a mapping returned by MapGrantRefs.
	Unmap(mem []byte) error
}

// Grants is what a backend needs from the grant-table device.
type Grants interface {
	GrantCopier
	GrantMapper
	Close() error
}
