package store

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// BlockOptions configures OpenBlock.
type BlockOptions struct {
	ReadOnly bool
	// Direct opens the device with O_DIRECT: no double caching in dom0 and
	// the guest's own cache decides. Aligned buffers (AlignedBuffer) go
	// straight to the device; others are bounced through an aligned pool.
	Direct bool
}

// Block is a store over a block device. Size and block sizes come from the
// kernel (BLKGETSIZE64, BLKSSZGET, BLKPBSZGET); discard is BLKDISCARD, which
// does not promise zeros, so DiscardZeroes is false.
type Block struct {
	fdStore
	direct bool
}

// OpenBlock opens a block device as a store, by path: for trusted paths
// (tests, tools). The backend opens a guest's p-dev through lunconf,
// beneath its allowed directory, and hands the descriptor to NewBlock.
func OpenBlock(path string, opts BlockOptions) (*Block, error) {
	f, err := os.OpenFile(path, BlockOpenFlags(opts)|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("store: open block device: %w", err)
	}
	return NewBlock(f, opts)
}

// BlockOpenFlags are the open(2) flags NewBlock expects its descriptor to
// have been opened with.
func BlockOpenFlags(opts BlockOptions) int {
	flag := unix.O_RDWR
	if opts.ReadOnly {
		flag = unix.O_RDONLY
	}
	if opts.Direct {
		flag |= unix.O_DIRECT
	}
	return flag
}

// NewBlock makes a store of f, an open block device (opened with
// BlockOpenFlags(opts)). The store owns f from here on, also when NewBlock
// fails.
func NewBlock(f *os.File, opts BlockOptions) (*Block, error) {
	path := f.Name()
	fail := func(format string, a ...any) (*Block, error) {
		f.Close()
		return nil, fmt.Errorf(format, a...)
	}
	fi, err := f.Stat()
	if err != nil {
		return fail("store: stat %s: %w", path, err)
	}
	if fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
		return fail("store: %s is not a block device (mode %v)", path, fi.Mode())
	}
	fd := int(f.Fd())
	size, err := unix.IoctlGetUint64(fd, unix.BLKGETSIZE64)
	if err != nil {
		return fail("store: BLKGETSIZE64 %s: %w", path, err)
	}
	lbs, err := unix.IoctlGetInt(fd, unix.BLKSSZGET)
	if err != nil {
		return fail("store: BLKSSZGET %s: %w", path, err)
	}
	pbs, err := unix.IoctlGetUint32(fd, unix.BLKPBSZGET)
	if err != nil {
		return fail("store: BLKPBSZGET %s: %w", path, err)
	}
	if pbs < uint32(lbs) {
		pbs = uint32(lbs)
	}
	if err := validBlockSizes(lbs, int(pbs)); err != nil {
		return fail("store: %s: %w", path, err)
	}
	ro := opts.ReadOnly
	if v, err := unix.IoctlGetInt(fd, unix.BLKROGET); err == nil && v != 0 {
		ro = true // the kernel marks the device read-only: honour it
	}
	s := &Block{fdStore: fdStore{path: path, f: f, lbs: lbs, pbs: int(pbs), ro: ro}, direct: opts.Direct}
	s.sz.Store(int64(size) / int64(lbs) * int64(lbs))
	if s.Size() == 0 {
		return fail("store: %s has size 0", path)
	}
	return s, nil
}

// Direct reports whether the store uses O_DIRECT.
func (s *Block) Direct() bool { return s.direct }

// needsBounce tells whether an O_DIRECT transfer must go through the pool.
func (s *Block) needsBounce(p []byte, off int64) bool {
	return s.direct && (!IsAligned(p) || off%int64(s.lbs) != 0 || len(p)%s.lbs != 0)
}

func (s *Block) checkDirect(p []byte, off int64) error {
	if err := checkRange(off, len(p), s.Size()); err != nil {
		return err
	}
	if s.direct && (off%int64(s.lbs) != 0 || len(p)%s.lbs != 0) {
		// The SCSI layer only moves whole blocks; anything else is a bug.
		return fmt.Errorf("store: %s: O_DIRECT access %d+%d not aligned to %d: %w", s.path, off, len(p), s.lbs, unix.EINVAL)
	}
	return nil
}

// ReadAt implements io.ReaderAt.
func (s *Block) ReadAt(p []byte, off int64) (int, error) {
	if !s.needsBounce(p, off) {
		return s.readAt(s.f, p, off)
	}
	if err := s.checkDirect(p, off); err != nil {
		return 0, err
	}
	bp := bouncePool.Get().(*[]byte)
	defer bouncePool.Put(bp)
	done := 0
	for done < len(p) {
		n := min(len(p)-done, MaxBounce)
		m, err := s.readAt(s.f, (*bp)[:n], off+int64(done))
		copy(p[done:], (*bp)[:m])
		done += m
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// WriteAt implements io.WriterAt.
func (s *Block) WriteAt(p []byte, off int64) (int, error) { return s.write(p, off, false) }

// WriteAtFUA implements FUAWriter with RWF_DSYNC.
func (s *Block) WriteAtFUA(p []byte, off int64) (int, error) { return s.write(p, off, true) }

func (s *Block) write(p []byte, off int64, fua bool) (int, error) {
	if !s.needsBounce(p, off) {
		return s.writeAt(p, off, fua)
	}
	if err := s.checkDirect(p, off); err != nil {
		return 0, err
	}
	bp := bouncePool.Get().(*[]byte)
	defer bouncePool.Put(bp)
	done := 0
	for done < len(p) {
		n := min(len(p)-done, MaxBounce)
		copy(*bp, p[done:done+n])
		m, err := s.writeAt((*bp)[:n], off+int64(done), fua)
		done += m
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// Discard issues BLKDISCARD for [off, off+n).
func (s *Block) Discard(off, n int64) error {
	if skip, err := s.beginRangeOp("discard", off, n); skip || err != nil {
		return err
	}
	rng := [2]uint64{uint64(off), uint64(n)}
	_, _, e := unix.Syscall(unix.SYS_IOCTL, s.f.Fd(), unix.BLKDISCARD, uintptr(unsafe.Pointer(&rng)))
	if e == unix.EOPNOTSUPP || e == unix.ENOTTY {
		return fmt.Errorf("store: BLKDISCARD %s: %w (%w)", s.path, ErrUnsupported, e)
	}
	if e != 0 {
		return fmt.Errorf("store: BLKDISCARD %s at %d+%d: %w", s.path, off, n, e)
	}
	return nil
}

// ZeroRange implements Zeroer with BLKZEROOUT: the kernel uses the device's
// WRITE ZEROES / WRITE SAME offload when it has one and writes zeros otherwise.
func (s *Block) ZeroRange(off, n int64) error {
	if skip, err := s.beginRangeOp("zero", off, n); skip || err != nil {
		return err
	}
	rng := [2]uint64{uint64(off), uint64(n)}
	_, _, e := unix.Syscall(unix.SYS_IOCTL, s.f.Fd(), unix.BLKZEROOUT, uintptr(unsafe.Pointer(&rng)))
	if e != 0 {
		return fmt.Errorf("store: BLKZEROOUT %s at %d+%d: %w", s.path, off, n, e)
	}
	return nil
}

// DiscardZeroes implements Discarder: BLKDISCARD gives no zeroing promise.
func (s *Block) DiscardZeroes() bool { return false }

// Refresh implements Refresher with BLKGETSIZE64 (after the device was resized).
func (s *Block) Refresh() (int64, error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	size, err := unix.IoctlGetUint64(int(s.f.Fd()), unix.BLKGETSIZE64)
	if err != nil {
		return s.Size(), fmt.Errorf("store: BLKGETSIZE64 %s: %w", s.path, err)
	}
	n := int64(size) / int64(s.lbs) * int64(s.lbs)
	s.sz.Store(n)
	return n, nil
}
