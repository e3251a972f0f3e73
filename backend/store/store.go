// Package store holds the backing stores behind emulated SCSI disks: a regular
// file, a block device and a sparse RAM store. Each one is an io.ReaderAt and
// io.WriterAt with a size and block sizes; the optional interfaces below add
// discard (thin provisioning) and forced-unit-access writes.
//
// Offsets and lengths handed to a store by the SCSI layer are always whole
// logical blocks inside Size(); the stores still check bounds themselves so a
// bug upstream cannot write past the end of a device.
package store

import (
	"errors"
	"fmt"
	"io"
)

// Store is what an emulated disk needs from its backing.
type Store interface {
	io.ReaderAt
	io.WriterAt
	// Sync makes every completed write durable (fdatasync).
	Sync() error
	// Size is the usable size in bytes.
	Size() int64
	// LogicalBlockSize is the smallest unit the store can address (512 or
	// 4096 for block devices, 512 for files and RAM).
	LogicalBlockSize() int
	// PhysicalBlockSize is the store's preferred I/O unit (>= logical).
	PhysicalBlockSize() int
	Close() error
}

// Discarder is implemented by stores that can deallocate ranges.
type Discarder interface {
	// Discard deallocates [off, off+n). Whether the range then reads back as
	// zeros is told by DiscardZeroes.
	Discard(off, n int64) error
	// DiscardZeroes reports whether discarded ranges always read back as zeros
	// (the SCSI LBPRZ bit). Only then may WRITE SAME of zeros be turned into a
	// discard.
	DiscardZeroes() bool
}

// Zeroer is implemented by stores that can zero a range without moving the
// zeros from user space (FALLOC_FL_ZERO_RANGE, BLKZEROOUT). Afterwards the
// range reads as zeros, whether or not it stays allocated.
type Zeroer interface {
	ZeroRange(off, n int64) error
}

// Refresher is implemented by stores whose size can change underneath
// (a grown file, a resized block device): Refresh re-reads it.
type Refresher interface {
	Refresh() (int64, error)
}

// FUAWriter is implemented by stores with a cheaper forced-unit-access path
// than WriteAt followed by Sync (for example a pwritev2 RWF_DSYNC write).
type FUAWriter interface {
	// WriteAtFUA writes p at off and returns only once the data is durable.
	WriteAtFUA(p []byte, off int64) (int, error)
}

// Errors shared by the stores. Backend errno values (EIO, ENOSPC, ...) are
// wrapped with context and stay reachable through errors.Is.
var (
	ErrOutOfRange  = errors.New("store: access beyond the end of the store")
	ErrReadOnly    = errors.New("store: read-only")
	ErrNoSpace     = errors.New("store: no space left (RAM store limit)")
	ErrUnsupported = errors.New("store: operation not supported by this store")
	ErrClosed      = errors.New("store: closed")
)

// checkRange validates an access of n bytes at off against size.
func checkRange(off int64, n int, size int64) error {
	if off < 0 || n < 0 || off > size || int64(n) > size-off {
		return fmt.Errorf("%w: offset %d length %d size %d", ErrOutOfRange, off, n, size)
	}
	return nil
}

// WriteFUA writes p at off durably: through s's FUAWriter if it has one,
// otherwise WriteAt followed by Sync.
func WriteFUA(s Store, p []byte, off int64) (int, error) {
	if f, ok := s.(FUAWriter); ok {
		return f.WriteAtFUA(p, off)
	}
	n, err := s.WriteAt(p, off)
	if err != nil {
		return n, err
	}
	return n, s.Sync()
}

// Mapper is implemented by stores that know which ranges are allocated
// (sparse files, the RAM store): GET LBA STATUS reports it.
type Mapper interface {
	// Extent reports whether the byte at off is allocated (mapped) and the
	// length of the run from off that has the same state, at most up to
	// Size. A store that cannot tell for a range reports it mapped.
	Extent(off int64) (mapped bool, n int64, err error)
}

// Identity is what makes two opens of a backing the same backing: the
// device and inode of a file, or the device number of a block device.
// Two stores with equal identities read and write the same bytes.
type Identity struct {
	Dev, Ino uint64 // a regular file (st_dev, st_ino)
	Rdev     uint64 // a block device (st_rdev); Dev and Ino are zero then
}

// Identifier is implemented by stores whose backing can be opened more
// than once (files and block devices; a RAM store is its own backing).
type Identifier interface {
	Identity() (Identity, error)
}
