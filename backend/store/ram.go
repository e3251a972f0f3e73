package store

import (
	"fmt"
	"sync"
)

// ramPageSize is the allocation unit of the RAM store.
const ramPageSize = 4096

// RAMOptions configures NewRAM.
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

// RAM is a sparse in-memory store: pages are allocated on first write,
// unwritten ranges read as zeros and Discard frees whole pages.
type RAM struct {
	mu     sync.RWMutex
	pages  map[int64]*[ramPageSize]byte
	size   int64
	limit  int64
	lbs    int
	pbs    int
	closed bool
}

// NewRAM returns a RAM store of size bytes (a multiple of the logical block size).
func NewRAM(size int64, opts RAMOptions) (*RAM, error) {
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
	limit := opts.Limit
	if limit <= 0 || limit > size {
		limit = size
	}
	return &RAM{pages: make(map[int64]*[ramPageSize]byte), size: size, limit: limit, lbs: lbs, pbs: pbs}, nil
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
	return int64(len(r.pages)) * ramPageSize
}

// ReadAt implements io.ReaderAt; unwritten ranges read as zeros.
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
		if pg := r.pages[idx]; pg != nil {
			copy(p[done:done+n], pg[in:in+n])
		} else {
			clear(p[done : done+n])
		}
		done += n
	}
	return done, nil
}

// WriteAt implements io.WriterAt. Pages are allocated on demand up to the limit;
// when the limit is hit nothing of p is written (the check is made up front).
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
		if r.pages[i] == nil {
			need++
		}
	}
	if (int64(len(r.pages))+need)*ramPageSize > r.limit {
		return 0, fmt.Errorf("%w: need %d more pages, limit %d bytes", ErrNoSpace, need, r.limit)
	}
	done := 0
	for done < len(p) {
		pos := off + int64(done)
		idx, in := pos/ramPageSize, int(pos%ramPageSize)
		n := min(ramPageSize-in, len(p)-done)
		pg := r.pages[idx]
		if pg == nil {
			pg = new([ramPageSize]byte)
			r.pages[idx] = pg
		}
		copy(pg[in:in+n], p[done:done+n])
		done += n
	}
	return done, nil
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
	for pos := off; pos < end; {
		idx, in := pos/ramPageSize, pos%ramPageSize
		m := min(ramPageSize-in, end-pos)
		if pg := r.pages[idx]; pg != nil {
			if in == 0 && m == ramPageSize {
				delete(r.pages, idx)
			} else {
				clear(pg[in : in+m])
			}
		}
		pos += m
	}
	return nil
}

// ZeroRange implements Zeroer (a discard: RAM zeros by freeing).
func (r *RAM) ZeroRange(off, n int64) error { return r.Discard(off, n) }

// DiscardZeroes implements Discarder: discarded RAM always reads as zeros.
func (r *RAM) DiscardZeroes() bool { return true }

// Sync implements Store (RAM is as durable as it gets).
func (r *RAM) Sync() error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return ErrClosed
	}
	return nil
}

// Close drops every page.
func (r *RAM) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	r.pages = nil
	return nil
}
