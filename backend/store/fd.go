package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// fdStore is the part shared by the file and block-device stores: one
// descriptor and the geometry. FUA writes go through the same descriptor
// with RWF_DSYNC (pwritev2), the per-write O_DSYNC: a second descriptor
// would have to be opened again, and by path it could be another file
// (issue 14's symlink-swap campaign).
type fdStore struct {
	path   string
	f      *os.File     // all I/O
	sz     atomic.Int64 // bytes, whole logical blocks; Refresh updates it
	lbs    int
	pbs    int
	ro     bool
	closed atomic.Bool
}

func (s *fdStore) Size() int64            { return s.sz.Load() }
func (s *fdStore) LogicalBlockSize() int  { return s.lbs }
func (s *fdStore) PhysicalBlockSize() int { return s.pbs }

// ReadOnly reports whether the store refuses writes.
func (s *fdStore) ReadOnly() bool { return s.ro }

func (s *fdStore) readAt(f *os.File, p []byte, off int64) (int, error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	if err := checkRange(off, len(p), s.Size()); err != nil {
		return 0, err
	}
	n, err := f.ReadAt(p, off)
	if err != nil {
		// A short read inside Size means the backing shrank under us.
		return n, fmt.Errorf("store: read %s at %d: %w", s.path, off, err)
	}
	return n, nil
}

// writeAt writes p at off; fua makes it durable before it returns
// (RWF_DSYNC).
func (s *fdStore) writeAt(p []byte, off int64, fua bool) (int, error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	if s.ro {
		return 0, fmt.Errorf("store: write %s: %w", s.path, ErrReadOnly)
	}
	if err := checkRange(off, len(p), s.Size()); err != nil {
		return 0, err
	}
	if !fua {
		n, err := s.f.WriteAt(p, off)
		if err != nil {
			return n, fmt.Errorf("store: write %s at %d: %w", s.path, off, err)
		}
		return n, nil
	}
	done := 0
	for done < len(p) {
		iov := [1][]byte{p[done:]}
		n, err := unix.Pwritev2(int(s.f.Fd()), iov[:], off+int64(done), unix.RWF_DSYNC)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return done, fmt.Errorf("store: write %s at %d (RWF_DSYNC): %w", s.path, off+int64(done), err)
		}
		if n == 0 {
			return done, fmt.Errorf("store: write %s at %d (RWF_DSYNC): %w", s.path, off+int64(done), io.ErrShortWrite)
		}
		done += n
	}
	return done, nil
}

// Sync implements Store with fdatasync.
func (s *fdStore) Sync() error {
	if s.closed.Load() {
		return ErrClosed
	}
	if s.ro {
		return nil
	}
	if err := unix.Fdatasync(int(s.f.Fd())); err != nil {
		return fmt.Errorf("store: fdatasync %s: %w", s.path, err)
	}
	return nil
}

// Close closes the descriptor.
func (s *fdStore) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("store: close %s: %w", s.path, err)
	}
	return nil
}

// checkSpan validates a discard/zero range of n bytes at off.
func (s *fdStore) checkSpan(what string, off, n int64) error {
	size := s.Size()
	if off < 0 || n < 0 || off > size || n > size-off {
		return fmt.Errorf("%w: %s offset %d length %d size %d", ErrOutOfRange, what, off, n, size)
	}
	return nil
}

// beginRangeOp is the guard every discard/zero operation shares: the store
// must be open and writable and [off, off+n) inside it. skip is true for an
// empty range, which is valid and does nothing.
func (s *fdStore) beginRangeOp(what string, off, n int64) (skip bool, err error) {
	if s.closed.Load() {
		return false, ErrClosed
	}
	if s.ro {
		return false, fmt.Errorf("store: %s %s: %w", what, s.path, ErrReadOnly)
	}
	if err := s.checkSpan(what, off, n); err != nil {
		return false, err
	}
	return n == 0, nil
}

// Identity implements Identifier from fstat of the open descriptor (not the
// path: the path may have been replaced since).
func (s *fdStore) Identity() (Identity, error) {
	if s.closed.Load() {
		return Identity{}, ErrClosed
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(s.f.Fd()), &st); err != nil {
		return Identity{}, fmt.Errorf("store: fstat %s: %w", s.path, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFBLK {
		return Identity{Rdev: uint64(st.Rdev)}, nil
	}
	return Identity{Dev: uint64(st.Dev), Ino: st.Ino}, nil
}
