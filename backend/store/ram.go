package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// ramPageSize is the allocation unit of the RAM store.
const ramPageSize = 4096

// RAMOptions configures NewRAM and OpenRAMFile.
type RAMOptions struct {
	// LogicalBlockSize and PhysicalBlockSize are reported to the SCSI layer.
	// Zero means 512 and the logical size respectively.
	LogicalBlockSize  int
	PhysicalBlockSize int
	// Limit caps the bytes of pages actually allocated (0: up to Size).
	// A write that needs a page beyond the limit fails with ErrNoSpace,
	// which the SCSI layer reports like a full thin pool.
	Limit int64
}

// RAM is a sparse store in memory: pages are allocated on first write,
// unwritten ranges read as zeros and Discard frees whole pages. NewRAM
// keeps it in an anonymous mapping (gone with the process); OpenRAMFile in
// a file on tmpfs, so that a restarted daemon finds the disk's contents
// again. Reads and writes are copies to and from the mapping: no system
// call and no allocation per I/O, except for the first write to a page of
// a file-backed disk, which allocates the page (fallocate) before it is
// touched, so a full tmpfs fails that write with ErrNoSpace instead of
// faulting (SIGBUS).
type RAM struct {
	mu      sync.RWMutex
	mapping []byte // the whole mapping (header page first for files)
	mem     []byte // the disk: mapping[dataOff:][:size]
	fd      int    // -1 for an anonymous mapping
	path    string
	alloc   []*bitChunk // one bit per page: allocated (chunks made on first use)
	nalloc  int64
	size    int64
	limit   int64
	lbs     int
	pbs     int
	closed  bool
	cleanup runtime.Cleanup
}

// NewRAM returns a RAM store of size bytes (a multiple of the logical block
// size) in an anonymous mapping.
func NewRAM(size int64, opts RAMOptions) (*RAM, error) {
	r, err := newRAM(size, opts)
	if err != nil {
		return nil, err
	}
	m, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("store: RAM of %d bytes: mmap: %w", size, err)
	}
	r.setMapping(m, 0)
	return r, nil
}

func newRAM(size int64, opts RAMOptions) (*RAM, error) {
	lbs, pbs := opts.LogicalBlockSize, opts.PhysicalBlockSize
	if lbs == 0 {
		lbs = 512
	}
	if pbs == 0 {
		pbs = lbs
	}
	if err := validBlockSizes(lbs, pbs); err != nil {
		return nil, err
	}
	if size <= 0 || size%int64(lbs) != 0 {
		return nil, fmt.Errorf("store: RAM size %d must be a positive multiple of %d", size, lbs)
	}
	if size > maxRAM {
		return nil, fmt.Errorf("store: RAM size %d is larger than %d", size, int64(maxRAM))
	}
	pages := (size + ramPageSize - 1) / ramPageSize
	limit := opts.Limit
	if limit <= 0 || limit > size {
		limit = pages * ramPageSize // a short last page still needs a page
	}
	return &RAM{fd: -1, alloc: make([]*bitChunk, (pages+chunkPages-1)/chunkPages), size: size, limit: limit, lbs: lbs, pbs: pbs}, nil
}

// maxRAM bounds a RAM store: address space for the mapping.
const maxRAM = 1 << 46

// bitChunk is the allocation bitmap of chunkPages pages (128 MiB of disk).
type bitChunk [chunkPages / 64]uint64

const chunkPages = 1 << 15

// setMapping installs the mapping; a store nobody closes (tests) is
// unmapped when it is garbage collected.
func (r *RAM) setMapping(m []byte, dataOff int) {
	r.mapping = m
	r.mem = m[dataOff : dataOff+int(r.size) : dataOff+int(r.size)]
	fd := r.fd
	r.cleanup = runtime.AddCleanup(r, func(m []byte) {
		unix.Munmap(m) //nolint:errcheck // nothing to report to
		if fd >= 0 {
			unix.Close(fd) //nolint:errcheck // nothing to report to
		}
	}, m)
}

// The file of a RAM disk: one header page, then the disk.
const (
	ramHeaderSize = 4096
	ramMaxTag     = 1024
)

var ramMagic = [8]byte{'G', 'V', 'S', 'C', 'S', 'R', 'A', 'M'}

func ramHeader(size int64, lbs int, tag string) []byte {
	h := make([]byte, ramHeaderSize)
	copy(h, ramMagic[:])
	binary.LittleEndian.PutUint32(h[8:], 1) // version
	binary.LittleEndian.PutUint32(h[12:], uint32(lbs))
	binary.LittleEndian.PutUint64(h[16:], uint64(size))
	binary.LittleEndian.PutUint32(h[24:], uint32(len(tag)))
	copy(h[32:], tag)
	return h
}

// OpenRAMFile opens the RAM disk kept in the file at path (on tmpfs, so it
// lives in memory): the disk's contents as a previous process left them if
// the file describes the same disk (size, block size and tag, which names
// the disk), else a new, empty disk in a new file. kept says which. The
// file stays when the store is closed; remove it (os.Remove) when the disk
// is really deleted.
func OpenRAMFile(path string, size int64, tag string, opts RAMOptions) (r *RAM, kept bool, err error) {
	if len(tag) > ramMaxTag {
		return nil, false, fmt.Errorf("store: RAM disk tag of %d bytes (max %d)", len(tag), ramMaxTag)
	}
	r, err = newRAM(size, opts)
	if err != nil {
		return nil, false, err
	}
	want := ramHeader(size, r.lbs, tag)
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err == nil {
		got := make([]byte, ramHeaderSize)
		var st unix.Stat_t
		n, rerr := unix.Pread(fd, got, 0)
		if rerr == nil && n == ramHeaderSize && bytes.Equal(got, want) &&
			unix.Fstat(fd, &st) == nil && st.Size == ramHeaderSize+size {
			kept = true
		} else {
			unix.Close(fd) //nolint:errcheck // replaced below
		}
	} else if !errors.Is(err, syscall.ENOENT) {
		return nil, false, fmt.Errorf("store: RAM disk %s: %w", path, err)
	}
	if !kept {
		if fd, err = createRAMFile(path, want, size); err != nil {
			return nil, false, err
		}
	}
	r.fd, r.path = fd, path
	m, err := unix.Mmap(fd, 0, ramHeaderSize+int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd) //nolint:errcheck // already failing
		return nil, false, fmt.Errorf("store: RAM disk %s: mmap: %w", path, err)
	}
	r.setMapping(m, ramHeaderSize)
	if kept {
		if err := r.scanAllocated(); err != nil {
			r.Close() //nolint:errcheck // already failing
			return nil, false, err
		}
	}
	return r, kept, nil
}

// createRAMFile makes a new, sparse file (header written, disk a hole) and
// renames it over path, so a crash never leaves a half-made file there.
func createRAMFile(path string, header []byte, size int64) (int, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return -1, fmt.Errorf("store: RAM disk: %w", err)
	}
	tmp := path + ".new"
	fd, err := unix.Open(tmp, unix.O_RDWR|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return -1, fmt.Errorf("store: RAM disk %s: %w", path, err)
	}
	fail := func(err error) (int, error) {
		unix.Close(fd) //nolint:errcheck // already failing
		os.Remove(tmp)
		return -1, fmt.Errorf("store: RAM disk %s: %w", path, err)
	}
	if _, err := unix.Pwrite(fd, header, 0); err != nil {
		return fail(err)
	}
	if err := unix.Ftruncate(fd, ramHeaderSize+size); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	return fd, nil
}

// scanAllocated rebuilds the allocation bitmap of a kept file from its
// data extents (SEEK_DATA/SEEK_HOLE; tmpfs reports whole pages).
func (r *RAM) scanAllocated() error {
	end := int64(ramHeaderSize) + r.size
	for off := int64(ramHeaderSize); off < end; {
		data, err := unix.Seek(r.fd, off, unix.SEEK_DATA)
		if errors.Is(err, syscall.ENXIO) {
			break
		}
		if err != nil {
			return fmt.Errorf("store: RAM disk %s: SEEK_DATA: %w", r.path, err)
		}
		hole, err := unix.Seek(r.fd, data, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("store: RAM disk %s: SEEK_HOLE: %w", r.path, err)
		}
		hole = min(hole, end)
		for p := (data - ramHeaderSize) / ramPageSize; p*ramPageSize < hole-ramHeaderSize; p++ {
			r.setBit(p)
		}
		off = hole
	}
	return nil
}

func validBlockSizes(lbs, pbs int) error {
	if lbs < 512 || lbs > 65536 || lbs&(lbs-1) != 0 {
		return fmt.Errorf("store: logical block size %d is not a power of two in 512..65536", lbs)
	}
	if pbs < lbs || pbs > 1<<20 || pbs&(pbs-1) != 0 {
		return fmt.Errorf("store: physical block size %d is not a power of two >= logical %d", pbs, lbs)
	}
	return nil
}

func (r *RAM) isSet(p int64) bool {
	c := r.alloc[p/chunkPages]
	return c != nil && c[p%chunkPages/64]&(1<<(p&63)) != 0
}

func (r *RAM) setBit(p int64) {
	c := r.alloc[p/chunkPages]
	if c == nil {
		c = new(bitChunk)
		r.alloc[p/chunkPages] = c
	}
	if w := &c[p%chunkPages/64]; *w&(1<<(p&63)) == 0 {
		*w |= 1 << (p & 63)
		r.nalloc++
	}
}

func (r *RAM) clearBit(p int64) {
	if c := r.alloc[p/chunkPages]; c != nil {
		if w := &c[p%chunkPages/64]; *w&(1<<(p&63)) != 0 {
			*w &^= 1 << (p & 63)
			r.nalloc--
		}
	}
}

// Size implements Store.
func (r *RAM) Size() int64 { return r.size }

// LogicalBlockSize implements Store.
func (r *RAM) LogicalBlockSize() int { return r.lbs }

// PhysicalBlockSize implements Store.
func (r *RAM) PhysicalBlockSize() int { return r.pbs }

// Allocated reports the bytes of pages currently allocated.
func (r *RAM) Allocated() int64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.nalloc * ramPageSize
}

// ReadAt implements io.ReaderAt; unwritten ranges read as zeros (and are
// never touched through the mapping: a read fault would allocate a tmpfs
// page).
func (r *RAM) ReadAt(p []byte, off int64) (int, error) {
	if err := checkRange(off, len(p), r.size); err != nil {
		return 0, err
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return 0, ErrClosed
	}
	done := 0
	for done < len(p) {
		pos := off + int64(done)
		idx, in := pos/ramPageSize, int(pos%ramPageSize)
		n := min(ramPageSize-in, len(p)-done)
		if r.isSet(idx) {
			copy(p[done:done+n], r.mem[pos:pos+int64(n)])
		} else {
			clear(p[done : done+n])
		}
		done += n
	}
	return done, nil
}

// WriteAt implements io.WriterAt. Pages are allocated on demand up to the
// limit; when the limit (or tmpfs) is full nothing of p is written.
func (r *RAM) WriteAt(p []byte, off int64) (int, error) {
	if err := checkRange(off, len(p), r.size); err != nil {
		return 0, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, ErrClosed
	}
	if len(p) == 0 {
		return 0, nil
	}
	first, last := off/ramPageSize, (off+int64(len(p))-1)/ramPageSize
	need := int64(0)
	for i := first; i <= last; i++ {
		if !r.isSet(i) {
			need++
		}
	}
	if need > 0 {
		if (r.nalloc+need)*ramPageSize > r.limit {
			return 0, fmt.Errorf("%w: need %d more pages, limit %d bytes", ErrNoSpace, need, r.limit)
		}
		if err := r.allocate(first, last); err != nil {
			return 0, err
		}
	}
	copy(r.mem[off:], p)
	return len(p), nil
}

// allocate marks pages first..last allocated; a file-backed store
// allocates each run of new pages in the file first.
func (r *RAM) allocate(first, last int64) error {
	for i := first; i <= last; {
		if r.isSet(i) {
			i++
			continue
		}
		j := i
		for j+1 <= last && !r.isSet(j+1) {
			j++
		}
		if r.fd >= 0 {
			length := min((j+1)*ramPageSize, r.size) - i*ramPageSize
			if err := unix.Fallocate(r.fd, 0, ramHeaderSize+i*ramPageSize, length); err != nil {
				if errors.Is(err, syscall.ENOSPC) {
					return fmt.Errorf("%w: %s: %v", ErrNoSpace, r.path, err)
				}
				return fmt.Errorf("store: RAM disk %s: fallocate: %w", r.path, err)
			}
		}
		for k := i; k <= j; k++ {
			r.setBit(k)
		}
		i = j + 1
	}
	return nil
}

// Discard frees the whole pages inside [off, off+n) and zeroes the partial
// pages at either end, so the range always reads back as zeros.
func (r *RAM) Discard(off, n int64) error {
	if n < 0 || n > r.size {
		return fmt.Errorf("%w: discard offset %d length %d size %d", ErrOutOfRange, off, n, r.size)
	}
	if err := checkRange(off, 0, r.size); err != nil || n > r.size-off {
		return fmt.Errorf("%w: discard offset %d length %d size %d", ErrOutOfRange, off, n, r.size)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	end := off + n
	run, runEnd := int64(-1), int64(-1) // whole allocated pages [run, runEnd)
	for pos := off; pos < end; {
		idx, in := pos/ramPageSize, pos%ramPageSize
		m := min(ramPageSize-in, end-pos)
		pageEnd := min((idx+1)*ramPageSize, r.size) // the last page may be short
		if r.isSet(idx) {
			if in == 0 && pos+m >= pageEnd {
				if run < 0 {
					run = idx
				}
				runEnd = idx + 1
			} else {
				clear(r.mem[pos : pos+m])
			}
		}
		if run >= 0 && runEnd != idx+1 {
			if err := r.release(run, runEnd); err != nil {
				return err
			}
			run = -1
		}
		pos += m
	}
	if run >= 0 {
		return r.release(run, runEnd)
	}
	return nil
}

// release frees the allocated pages [first, end).
func (r *RAM) release(first, end int64) error {
	lo := first * ramPageSize
	hi := min(end*ramPageSize, r.size)
	if r.fd >= 0 {
		if err := unix.Fallocate(r.fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, ramHeaderSize+lo, hi-lo); err != nil {
			return fmt.Errorf("store: RAM disk %s: punch hole: %w", r.path, err)
		}
	} else if err := unix.Madvise(r.mem[lo:hi], unix.MADV_DONTNEED); err != nil {
		clear(r.mem[lo:hi]) // pages larger than 4 KiB on this host: zero instead
	}
	for p := first; p < end; p++ {
		r.clearBit(p)
	}
	return nil
}

// ZeroRange implements Zeroer (a discard: RAM zeros by freeing).
func (r *RAM) ZeroRange(off, n int64) error { return r.Discard(off, n) }

// DiscardZeroes implements Discarder: discarded RAM always reads as zeros.
func (r *RAM) DiscardZeroes() bool { return true }

// Extent implements Mapper: pages never written (or discarded) are holes.
// The run is cut at 64 MiB so one call stays cheap on a huge sparse store.
func (r *RAM) Extent(off int64) (bool, int64, error) {
	if off < 0 || off >= r.size {
		return false, 0, fmt.Errorf("%w: extent at %d size %d", ErrOutOfRange, off, r.size)
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return false, 0, ErrClosed
	}
	const maxRun = 64 << 20
	mapped := r.isSet(off / ramPageSize)
	end := (off/ramPageSize + 1) * ramPageSize
	for end < r.size && end-off < maxRun && r.isSet(end/ramPageSize) == mapped {
		end += ramPageSize
	}
	return mapped, min(end, r.size) - off, nil
}

// Sync implements Store (RAM is as durable as it gets; a file-backed disk
// is in tmpfs, which a restarted process shares).
func (r *RAM) Sync() error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return ErrClosed
	}
	return nil
}

// Close drops the mapping. An anonymous disk's contents are gone; a
// file-backed one's stay in its file.
func (r *RAM) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	r.cleanup.Stop()
	err := unix.Munmap(r.mapping)
	r.mapping, r.mem = nil, nil
	if r.fd >= 0 {
		if cerr := unix.Close(r.fd); err == nil {
			err = cerr
		}
		r.fd = -1
	}
	if err != nil {
		return fmt.Errorf("store: closing RAM disk: %w", err)
	}
	return nil
}
