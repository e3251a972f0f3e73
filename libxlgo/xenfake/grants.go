package xenfake

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/govscsi/govscsi/libxlgo/internal/cerr"
	"github.com/govscsi/govscsi/libxlgo/xenif"
)

// PageSize is the size of one grantable page.
const PageSize = xenif.PageSize

// firstRef is the first ref Grant hands out. Linux guests reserve refs 0..7
// (GNTTAB_NR_RESERVED_ENTRIES) for the toolstack, so a backend never sees
// them from a real frontend; starting here also makes a zero-valued ref a
// detectable bug.
const firstRef = 8

// refsPerFrame is how many v1 grant entries fit in one grant-table frame.
// Xen reports GNTST_bad_gntref for a ref beyond the (frame-rounded) table and
// GNTST_general_error for an unused entry inside it; the fake does the same.
const refsPerFrame = PageSize / 8

const gntSource = "xenfake gnttab"

type grantEntry struct {
	page     []byte // exactly PageSize bytes, the guest's own memory
	domid    uint32 // the granting (guest) domain
	readonly bool
	inUse    bool
	maps     int // live mappings of this entry; Revoke refuses while > 0
}

// mapKey identifies one mapping by the slice MapGrantRefs returned: the same
// memory can be mapped more than once (or granted under two refs), so each
// key holds a stack of the ref lists mapped there.
type mapKey struct {
	base  *byte
	pages int
}

// Grants is an in-memory grant table that implements xenif.Grants.
//
// Refs are unique across all domains of one Grants (Xen numbers them per
// granting domain; a backend must not rely on either). A domain "exists" once
// something was granted under its domid; ops naming any other domid fail with
// GNTST_bad_domain.
//
// The zero value is not usable; call NewGrants.
type Grants struct {
	mu       sync.RWMutex
	entries  []grantEntry // indexed by ref
	free     []uint32     // revoked refs, reused LIFO like Linux's free list
	doms     map[uint32]bool
	mappings map[mapKey][][]uint32
	nmapped  int
	closed   bool

	copies  atomic.Uint64
	batches atomic.Uint64
}

var _ xenif.Grants = (*Grants)(nil)

// NewGrants returns an empty grant table.
func NewGrants() *Grants {
	return &Grants{
		entries:  make([]grantEntry, firstRef),
		doms:     make(map[uint32]bool),
		mappings: make(map[mapKey][][]uint32),
	}
}

// Grant publishes page (which must be exactly PageSize bytes) as granted by
// guest domain domid, and returns its ref. The grant aliases page: what the
// backend writes through GrantCopy or a mapping lands in page, and what the
// test writes to page is what the backend reads. readonly forbids the backend
// from writing (as GTF_readonly does).
//
// Grant panics if len(page) != PageSize: that is a bug in the test.
func (g *Grants) Grant(domid uint32, page []byte, readonly bool) uint32 {
	if len(page) != PageSize {
		panic(fmt.Sprintf("xenfake: Grant of a %d-byte page, want %d", len(page), PageSize))
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	var ref uint32
	if n := len(g.free); n > 0 {
		ref = g.free[n-1]
		g.free = g.free[:n-1]
	} else {
		ref = uint32(len(g.entries))
		g.entries = append(g.entries, grantEntry{})
	}
	g.entries[ref] = grantEntry{page: page[:PageSize:PageSize], domid: domid, readonly: readonly, inUse: true}
	g.doms[domid] = true
	return ref
}

// Revoke ends the grant ref. Like gnttab_end_foreign_access, it fails while
// the backend still has the grant mapped; ops on a revoked ref fail with
// GNTST_general_error.
func (g *Grants) Revoke(ref uint32) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if int(ref) >= len(g.entries) || !g.entries[ref].inUse {
		return fmt.Errorf("xenfake: revoke of ref %d, which is not granted", ref)
	}
	if n := g.entries[ref].maps; n > 0 {
		return fmt.Errorf("xenfake: revoke of ref %d, which the backend still maps %d time(s)", ref, n)
	}
	g.entries[ref] = grantEntry{}
	g.free = append(g.free, ref)
	return nil
}

// Mapped returns how many mappings made by MapGrantRefs are still live.
func (g *Grants) Mapped() int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.nmapped
}

// Copies returns how many grant-copy ops (segments) were processed.
func (g *Grants) Copies() uint64 { return g.copies.Load() }

// Batches returns how many GrantCopy calls (ioctls, for the real device) were
// made: Copies()/Batches() is the batching factor.
func (g *Grants) Batches() uint64 { return g.batches.Load() }

// GrantCopy performs ops like IOCTL_GNTDEV_GRANT_COPY: each op gets its own
// Status, and the error is non-nil only if the table was closed. It does not
// allocate.
func (g *Grants) GrantCopy(ops []xenif.GrantCopyOp) error {
	g.mu.RLock()
	if g.closed {
		g.mu.RUnlock()
		return cerr.New(gntSource, "grant copy", "", syscall.EBADF)
	}
	for i := range ops {
		ops[i].Status = g.copyOne(&ops[i])
	}
	g.mu.RUnlock()
	g.copies.Add(uint64(len(ops)))
	g.batches.Add(1)
	return nil
}

// copyOne runs one op with the checks Xen's gnttab_copy makes, in its order.
// The caller holds g.mu for reading.
func (g *Grants) copyOne(op *xenif.GrantCopyOp) int16 {
	n := len(op.Local)
	if n == 0 {
		// gntdev issues no hypercall for an empty segment, so nothing is
		// checked and the status stays okay.
		return xenif.GNTSTOkay
	}
	if st := xenif.CheckCopyOp(op); st != xenif.GNTSTOkay {
		return st
	}
	if int(op.Ref) < len(g.entries) {
		e := &g.entries[op.Ref]
		if e.inUse && e.domid == op.Domid {
			if op.ToGuest {
				if e.readonly {
					return xenif.GNTSTGeneralError // "Attempt to write-pin a r/o grant entry"
				}
				copy(e.page[op.Offset:], op.Local)
			} else {
				copy(op.Local, e.page[op.Offset:int(op.Offset)+n])
			}
			return xenif.GNTSTOkay
		}
	}
	return g.refStatus(op.Domid, op.Ref)
}

// refStatus is the GNTST code for a ref that is not usable by us in domid.
// The caller holds g.mu.
func (g *Grants) refStatus(domid, ref uint32) int16 {
	if !g.doms[domid] {
		return xenif.GNTSTBadDomain
	}
	size := (len(g.entries) + refsPerFrame - 1) / refsPerFrame * refsPerFrame
	if int(ref) >= size {
		return xenif.GNTSTBadGntref
	}
	// Unused, revoked, or granted by another domain: Xen's "Bad flags or dom".
	return xenif.GNTSTGeneralError
}

// MapGrantRefs maps refs of domain domid. The returned slice aliases the
// granted pages themselves, so the backend and the test share the memory as
// they would through a real mapping (the ring page). Several refs can be
// mapped together only if their pages are adjacent in memory (grant
// consecutive PageSize slices of one buffer); otherwise the fake, having no
// MMU, fails with ENOTSUP.
//
// A read-only mapping (writable false) is not write-protected: the fake
// cannot do that on heap memory. Mapping a read-only grant writable fails with
// EINVAL, as on Linux.
func (g *Grants) MapGrantRefs(domid uint32, refs []uint32, writable bool) ([]byte, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	obj := mapObject(domid, refs)
	if g.closed {
		return nil, cerr.New(gntSource, "map", obj, syscall.EBADF)
	}
	if len(refs) == 0 {
		return nil, cerr.New(gntSource, "map", obj, syscall.EINVAL)
	}
	var base *byte
	for i, ref := range refs {
		if int(ref) >= len(g.entries) {
			return nil, cerr.New(gntSource, "map", obj, syscall.EINVAL)
		}
		e := &g.entries[ref]
		if !e.inUse || e.domid != domid || (writable && e.readonly) {
			return nil, cerr.New(gntSource, "map", obj, syscall.EINVAL)
		}
		p := unsafe.SliceData(e.page)
		if i == 0 {
			base = p
		} else if uintptr(unsafe.Pointer(p)) != uintptr(unsafe.Pointer(base))+uintptr(i)*PageSize {
			return nil, cerr.New(gntSource, "map", obj+" (pages not adjacent in the fake)", syscall.ENOTSUP)
		}
	}
	for _, ref := range refs {
		g.entries[ref].maps++
	}
	k := mapKey{base: base, pages: len(refs)}
	g.mappings[k] = append(g.mappings[k], append([]uint32(nil), refs...))
	g.nmapped++
	return unsafe.Slice(base, len(refs)*PageSize), nil
}

// Unmap releases a mapping returned by MapGrantRefs (the whole slice).
func (g *Grants) Unmap(mem []byte) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return cerr.New(gntSource, "unmap", "", syscall.EBADF)
	}
	if len(mem) == 0 || len(mem)%PageSize != 0 {
		return cerr.New(gntSource, "unmap", fmt.Sprintf("of %d bytes", len(mem)), syscall.EINVAL)
	}
	k := mapKey{base: unsafe.SliceData(mem), pages: len(mem) / PageSize}
	stack := g.mappings[k]
	if len(stack) == 0 {
		return cerr.New(gntSource, "unmap", fmt.Sprintf("of %d pages at %p (not mapped)", k.pages, k.base), syscall.EINVAL)
	}
	refs := stack[len(stack)-1]
	if len(stack) == 1 {
		delete(g.mappings, k)
	} else {
		g.mappings[k] = stack[:len(stack)-1]
	}
	for _, ref := range refs {
		g.entries[ref].maps--
	}
	g.nmapped--
	return nil
}

// Close releases every live mapping and reports them as a leak, like the real
// handle. A second Close returns nil.
func (g *Grants) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	g.closed = true
	leaked := g.nmapped
	for _, stack := range g.mappings {
		for _, refs := range stack {
			for _, ref := range refs {
				g.entries[ref].maps--
			}
		}
	}
	clear(g.mappings)
	g.nmapped = 0
	if leaked > 0 {
		return fmt.Errorf("%s close: %d mapping(s) still mapped (leaked); unmapped them", gntSource, leaked)
	}
	return nil
}

func mapObject(domid uint32, refs []uint32) string {
	switch len(refs) {
	case 0:
		return fmt.Sprintf("no refs of dom %d", domid)
	case 1:
		return fmt.Sprintf("ref %d of dom %d", refs[0], domid)
	}
	return fmt.Sprintf("refs %v of dom %d", refs, domid)
}
