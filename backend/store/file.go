package store

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// FileOptions configures OpenFile.
type FileOptions struct {
	ReadOnly bool
	// LogicalBlockSize (default 512) and PhysicalBlockSize (default 4096,
	// the page size: partial-page writes to a file cost a read-modify-write
	// in the page cache) are what the disk reports.
	LogicalBlockSize  int
	PhysicalBlockSize int
}

// File is a store over a regular file. Its size is the file's size rounded
// down to whole logical blocks; discard punches holes (FALLOC_FL_PUNCH_HOLE |
// FALLOC_FL_KEEP_SIZE), which always read back as zeros.
type File struct {
	fdStore
}

// OpenFile opens an existing regular file as a store, by path: for trusted
// paths (tests, tools). The backend opens a guest's p-dev through lunconf,
// beneath its allowed directory, and hands the descriptor to NewFile.
func OpenFile(path string, opts FileOptions) (*File, error) {
	// O_NONBLOCK: a FIFO in the file's place must not hang the open
	// (NewFile refuses it); it means nothing for a regular file.
	f, err := os.OpenFile(path, FileOpenFlags(opts)|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("store: open file: %w", err)
	}
	return NewFile(f, opts)
}

// FileOpenFlags are the open(2) flags NewFile expects its descriptor to
// have been opened with.
func FileOpenFlags(opts FileOptions) int {
	if opts.ReadOnly {
		return os.O_RDONLY
	}
	return os.O_RDWR
}

// NewFile makes a store of f, an open regular file (read-write unless
// opts.ReadOnly). The store owns f from here on, also when NewFile fails.
func NewFile(f *os.File, opts FileOptions) (*File, error) {
	path := f.Name()
	fail := func(err error) (*File, error) {
		f.Close()
		return nil, err
	}
	lbs, pbs := opts.LogicalBlockSize, opts.PhysicalBlockSize
	if lbs == 0 {
		lbs = 512
	}
	if pbs == 0 {
		pbs = max(4096, lbs)
	}
	if err := validBlockSizes(lbs, pbs); err != nil {
		return fail(err)
	}
	fi, err := f.Stat()
	if err != nil {
		return fail(fmt.Errorf("store: stat %s: %w", path, err))
	}
	if !fi.Mode().IsRegular() {
		return fail(fmt.Errorf("store: %s is not a regular file (mode %v); use OpenBlock for devices", path, fi.Mode()))
	}
	size := fi.Size() / int64(lbs) * int64(lbs)
	if size == 0 {
		return fail(fmt.Errorf("store: %s is smaller than one %d-byte block", path, lbs))
	}
	s := &File{fdStore{path: path, f: f, lbs: lbs, pbs: pbs, ro: opts.ReadOnly}}
	s.sz.Store(size)
	return s, nil
}

// ReadAt implements io.ReaderAt.
func (s *File) ReadAt(p []byte, off int64) (int, error) { return s.readAt(s.f, p, off) }

// WriteAt implements io.WriterAt.
func (s *File) WriteAt(p []byte, off int64) (int, error) { return s.writeAt(p, off, false) }

// WriteAtFUA implements FUAWriter with RWF_DSYNC.
func (s *File) WriteAtFUA(p []byte, off int64) (int, error) { return s.writeAt(p, off, true) }

// Discard punches a hole; the file keeps its size.
func (s *File) Discard(off, n int64) error {
	if skip, err := s.beginRangeOp("discard", off, n); skip || err != nil {
		return err
	}
	err := unix.Fallocate(int(s.f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return fmt.Errorf("store: punch hole in %s: %w (%w)", s.path, ErrUnsupported, err)
	}
	if err != nil {
		return fmt.Errorf("store: punch hole in %s at %d+%d: %w", s.path, off, n, err)
	}
	return nil
}

// ZeroRange implements Zeroer with FALLOC_FL_ZERO_RANGE (falling back to a
// punched hole, which reads as zeros too).
func (s *File) ZeroRange(off, n int64) error {
	if skip, err := s.beginRangeOp("zero", off, n); skip || err != nil {
		return err
	}
	err := unix.Fallocate(int(s.f.Fd()), unix.FALLOC_FL_ZERO_RANGE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return s.Discard(off, n)
	}
	if err != nil {
		return fmt.Errorf("store: zero range in %s at %d+%d: %w", s.path, off, n, err)
	}
	return nil
}

// DiscardZeroes implements Discarder: punched holes read as zeros.
func (s *File) DiscardZeroes() bool { return true }

// Refresh implements Refresher: the file's current size, rounded down to
// whole blocks, becomes the store's size.
func (s *File) Refresh() (int64, error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	fi, err := s.f.Stat()
	if err != nil {
		return s.Size(), fmt.Errorf("store: stat %s: %w", s.path, err)
	}
	size := fi.Size() / int64(s.lbs) * int64(s.lbs)
	s.sz.Store(size)
	return size, nil
}

// Extent implements Mapper with lseek(SEEK_DATA/SEEK_HOLE). A file system
// without them reports everything mapped (lseek then treats the whole file
// as data, which is what it returns anyway).
func (s *File) Extent(off int64) (bool, int64, error) {
	if s.closed.Load() {
		return false, 0, ErrClosed
	}
	size := s.Size()
	if off < 0 || off >= size {
		return false, 0, fmt.Errorf("%w: extent at %d size %d", ErrOutOfRange, off, size)
	}
	fd := int(s.f.Fd())
	data, err := unix.Seek(fd, off, unix.SEEK_DATA)
	if errors.Is(err, unix.ENXIO) { // no data at or after off: a hole to the end
		return false, size - off, nil
	}
	if err != nil {
		return true, size - off, nil
	}
	if data > off {
		return false, min(data, size) - off, nil
	}
	hole, err := unix.Seek(fd, off, unix.SEEK_HOLE)
	if err != nil {
		return true, size - off, nil
	}
	return true, min(hole, size) - off, nil
}
