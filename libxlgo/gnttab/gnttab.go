//go:build linux && cgo

package gnttab

/*
#cgo pkg-config: xengnttab
#include <stdarg.h>
#include <sys/mman.h>
#include <xentoollog.h>
#include <xengnttab.h>

// A logger that drops everything: failures reach Go as errno, and a library
// loaded into a toolstack must not write to its stderr. With a NULL logger,
// libxengnttab would create one that prints to stderr.
static void gnttab_quiet_vmessage(struct xentoollog_logger *l, xentoollog_level lv,
	int errnoval, const char *ctx, const char *fmt, va_list al) {}
static void gnttab_quiet_progress(struct xentoollog_logger *l, const char *ctx,
	const char *what, int pct, unsigned long done, unsigned long total) {}
static void gnttab_quiet_destroy(struct xentoollog_logger *l) {}
static struct xentoollog_logger gnttab_quiet_logger = {
	gnttab_quiet_vmessage, gnttab_quiet_progress, gnttab_quiet_destroy,
};

static xengnttab_handle *gnttab_open_quiet(void) {
	return xengnttab_open(&gnttab_quiet_logger, 0);
}
*/
import "C"

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	"github.com/govscsi/govscsi/libxlgo/internal/cerr"
	"github.com/govscsi/govscsi/libxlgo/xenif"
)

// Device is the node libxengnttab opens.
const Device = "/dev/xen/gntdev"

const source = "gnttab"

// Handle is an open grant-table device. It is safe for concurrent use:
// GrantCopy calls run in parallel; Map, Unmap and Close serialise.
type Handle struct {
	mu sync.RWMutex
	h  *C.xengnttab_handle
	// maps records every live mapping: base address -> pages. The addresses
	// are mmap'd memory outside the Go heap.
	maps map[unsafe.Pointer]int
	bufs sync.Pool // *copyBuf
}

var _ xenif.Grants = (*Handle)(nil)

// Open opens /dev/xen/gntdev. On a machine without Xen (or without the
// xen_gntdev module) it fails with an error wrapping ENOENT.
//
// Implements: xengnttab_handle *xengnttab_open(xentoollog_logger *logger, unsigned open_flags);
func Open() (*Handle, error) {
	h, err := C.gnttab_open_quiet()
	if h == nil {
		return nil, openError(cerr.FromErr(source, "open", Device, err))
	}
	return &Handle{h: h, maps: make(map[unsafe.Pointer]int)}, nil
}

func openError(err error) error {
	if cerr.Errno(err) == syscall.ENOENT {
		return fmt.Errorf("%w (not a Xen dom0, or the xen_gntdev module is not loaded)", err)
	}
	return err
}

// Close unmaps whatever is still mapped and closes the device. Leftover
// mappings are a leak in the caller; Close reports how many there were. A
// second Close, or Close of a nil Handle, returns nil.
//
// Implements: int xengnttab_close(xengnttab_handle *xgt);
func (g *Handle) Close() error {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.h == nil {
		return nil
	}
	leaked := len(g.maps)
	for base, pages := range g.maps {
		C.xengnttab_unmap(g.h, base, C.uint32_t(pages))
	}
	clear(g.maps)
	rc, err := C.xengnttab_close(g.h)
	g.h = nil
	if rc != 0 {
		return cerr.FromErr(source, "close", "", err)
	}
	if leaked > 0 {
		return fmt.Errorf("%s close: %d mapping(s) still mapped (leaked); unmapped them", source, leaked)
	}
	return nil
}

func (g *Handle) closedErr(op, obj string) error {
	return cerr.New(source, op, obj, syscall.EBADF)
}

// SetMaxGrants sets how many grants this handle may map at once. Call it
// before mapping anything; current Linux kernels ignore it.
//
// Implements: int xengnttab_set_max_grants(xengnttab_handle *xgt, uint32_t nr_grants);
func (g *Handle) SetMaxGrants(n uint32) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.h == nil {
		return g.closedErr("set max grants", "")
	}
	if rc, err := C.xengnttab_set_max_grants(g.h, C.uint32_t(n)); rc != 0 {
		return cerr.FromErr(source, "set max grants", fmt.Sprint(n), err)
	}
	return nil
}

// Mapped returns how many mappings are live (for leak checks).
func (g *Handle) Mapped() int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return len(g.maps)
}

func prot(writable bool) C.int {
	if writable {
		return C.PROT_READ | C.PROT_WRITE
	}
	return C.PROT_READ
}

// MapGrantRef maps one grant of domain domid. Map a read-only grant with
// writable false, or the map fails with EINVAL.
//
// Implements: void *xengnttab_map_grant_ref(xengnttab_handle *xgt, uint32_t domid, uint32_t ref, int prot);
func (g *Handle) MapGrantRef(domid, ref uint32, writable bool) ([]byte, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	obj := fmt.Sprintf("ref %d of dom %d", ref, domid)
	if g.h == nil {
		return nil, g.closedErr("map", obj)
	}
	p, err := C.xengnttab_map_grant_ref(g.h, C.uint32_t(domid), C.uint32_t(ref), prot(writable))
	if p == nil {
		return nil, cerr.FromErr(source, "map", obj, err)
	}
	return g.record(p, 1), nil
}

// MapGrantRefs maps refs of domain domid as consecutive pages.
//
// Implements: void *xengnttab_map_domain_grant_refs(xengnttab_handle *xgt, uint32_t count, uint32_t domid, uint32_t *refs, int prot);
func (g *Handle) MapGrantRefs(domid uint32, refs []uint32, writable bool) ([]byte, error) {
	if len(refs) == 1 {
		return g.MapGrantRef(domid, refs[0], writable)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	obj := fmt.Sprintf("refs %v of dom %d", refs, domid)
	if g.h == nil {
		return nil, g.closedErr("map", obj)
	}
	if len(refs) == 0 {
		return nil, cerr.New(source, "map", obj, syscall.EINVAL)
	}
	// refs is pointer-free Go memory, so C may read it during the call.
	p, err := C.xengnttab_map_domain_grant_refs(g.h, C.uint32_t(len(refs)), C.uint32_t(domid),
		(*C.uint32_t)(unsafe.Pointer(unsafe.SliceData(refs))), prot(writable))
	if p == nil {
		return nil, cerr.FromErr(source, "map", obj, err)
	}
	return g.record(p, len(refs)), nil
}

// record remembers a new mapping and returns it as a slice. g.mu is held.
func (g *Handle) record(p unsafe.Pointer, pages int) []byte {
	g.maps[p] = pages
	return unsafe.Slice((*byte)(p), pages*xenif.PageSize)
}

// Unmap releases a mapping returned by MapGrantRef(s); mem must be that
// whole slice.
//
// Implements: int xengnttab_unmap(xengnttab_handle *xgt, void *start_address, uint32_t count);
func (g *Handle) Unmap(mem []byte) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	base := unsafe.Pointer(unsafe.SliceData(mem))
	obj := fmt.Sprintf("of %d bytes at %p", len(mem), base)
	if g.h == nil {
		return g.closedErr("unmap", obj)
	}
	pages, ok := g.maps[base]
	if !ok || len(mem) != pages*xenif.PageSize {
		return cerr.New(source, "unmap", obj+" (not a mapping of this handle)", syscall.EINVAL)
	}
	if rc, err := C.xengnttab_unmap(g.h, base, C.uint32_t(pages)); rc != 0 {
		return cerr.FromErr(source, "unmap", obj, err)
	}
	delete(g.maps, base)
	return nil
}

// putVirt and putForeign fill one arm of union xengnttab_copy_ptr, which cgo
// presents as [8]byte: a local virtual address, or {u32 ref; u16 offset;
// u16 domid}. Byte-wise stores need no alignment and hide nothing from the
// GC that matters: the buffer behind the address is pinned by the caller.
func putVirt(u *[8]byte, p *byte) {
	binary.NativeEndian.PutUint64(u[:], uint64(uintptr(unsafe.Pointer(p))))
}

func putForeign(u *[8]byte, op *xenif.GrantCopyOp) {
	binary.NativeEndian.PutUint32(u[0:], op.Ref)
	binary.NativeEndian.PutUint16(u[4:], op.Offset)
	binary.NativeEndian.PutUint16(u[6:], uint16(op.Domid)) // < DomidFirstReserved, checked
}

// copyBuf is the reusable state of one GrantCopy call, so the hot path does
// not allocate once the pool is warm.
type copyBuf struct {
	segs []C.xengnttab_grant_copy_segment_t
	idx  []int // segs[j] is ops[idx[j]]
	pin  runtime.Pinner
	// ends of the buffers pinned in this batch (see pinLocal).
	pinned [8]uintptr
	npin   int
}

// pinLocal pins the Go object behind local, once per batch. Two non-empty
// slices whose ends (data+cap) coincide lie in one object: the byte before
// that end belongs to both. The usual batch is the segments of one request
// buffer, so this pins each object once, which keeps Pin cheap (no multi-pin
// counters) and the Pinner within its inline store (no allocation).
func (b *copyBuf) pinLocal(local []byte) {
	end := uintptr(unsafe.Pointer(unsafe.SliceData(local))) + uintptr(cap(local))
	for _, e := range b.pinned[:b.npin] {
		if e == end {
			return
		}
	}
	if b.npin < len(b.pinned) {
		b.pinned[b.npin] = end
		b.npin++
	}
	b.pin.Pin(unsafe.SliceData(local))
}

// GrantCopy copies between local buffers and guest grants in one ioctl.
//
// Each op is checked first (xenif.CheckCopyOp): one that would cross its
// foreign page, or names a reserved domid, gets that status and is left out of
// the batch, so a hostile segment cannot fail the whole ioctl (gntdev would
// return EINVAL for all of it). Empty ops get GNTSTOkay without a copy. The
// returned error is non-nil only when the ioctl itself failed; then every
// submitted op gets GNTSTGeneralError, since the kernel may have stopped
// part-way.
//
// The local buffers are Go memory. The segment array holds their addresses,
// so each is pinned (runtime.Pinner) for the duration of the call and
// unpinned before GrantCopy returns; nothing keeps them afterwards.
//
// Implements: int xengnttab_grant_copy(xengnttab_handle *xgt, uint32_t count, xengnttab_grant_copy_segment_t *segs);
func (g *Handle) GrantCopy(ops []xenif.GrantCopyOp) error {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.h == nil {
		return g.closedErr("grant copy", "")
	}
	b, _ := g.bufs.Get().(*copyBuf)
	if b == nil {
		b = new(copyBuf)
	}
	defer g.bufs.Put(b)
	if b.fill(ops) == 0 {
		return nil
	}
	rc, err := C.xengnttab_grant_copy(g.h, C.uint32_t(len(b.segs)), unsafe.SliceData(b.segs))
	b.pin.Unpin()
	b.finish(ops, rc == 0)
	if rc != 0 {
		return cerr.FromErr(source, "grant copy", fmt.Sprintf("of %d segments", len(b.segs)), err)
	}
	return nil
}

// fill checks ops, settles the ones that need no copy, and encodes the rest
// as segments, pinning their local buffers. It returns how many segments
// there are; if any, the caller must Unpin after the C call.
func (b *copyBuf) fill(ops []xenif.GrantCopyOp) int {
	b.segs, b.idx, b.npin = b.segs[:0], b.idx[:0], 0
	for i := range ops {
		op := &ops[i]
		if st := xenif.CheckCopyOp(op); st != xenif.GNTSTOkay || len(op.Local) == 0 {
			op.Status = st
			continue
		}
		local := unsafe.SliceData(op.Local)
		b.pinLocal(op.Local)
		var seg C.xengnttab_grant_copy_segment_t
		if op.ToGuest {
			putVirt(&seg.source, local)
			putForeign(&seg.dest, op)
			seg.flags = C.GNTCOPY_dest_gref
		} else {
			putForeign(&seg.source, op)
			putVirt(&seg.dest, local)
			seg.flags = C.GNTCOPY_source_gref
		}
		seg.len = C.uint16_t(len(op.Local))
		b.segs = append(b.segs, seg)
		b.idx = append(b.idx, i)
	}
	return len(b.segs)
}

// finish copies the kernel's per-segment statuses back into ops, or marks
// every submitted op failed if the ioctl itself failed.
func (b *copyBuf) finish(ops []xenif.GrantCopyOp, ok bool) {
	for j, i := range b.idx {
		if ok {
			ops[i].Status = int16(b.segs[j].status)
		} else {
			ops[i].Status = xenif.GNTSTGeneralError
		}
	}
}
