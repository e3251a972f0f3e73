package store

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/govscsi/govscsi/backend/safeopen"
)

// Options is what Open needs to pick and open a store.
type Options struct {
	ReadOnly bool
	// Direct opens block devices with O_DIRECT (ignored for files).
	Direct bool
	// LogicalBlockSize/PhysicalBlockSize apply to files (block devices
	// report their own).
	LogicalBlockSize  int
	PhysicalBlockSize int
}

// Open opens path as a File store or, for a block device, a Block store.
// The path is looked up once (an O_PATH descriptor, whose type picks the
// store); the store's descriptor is that inode reopened, so a rename
// between the two cannot swap the file.
func Open(path string, opts Options) (Store, error) {
	pf, err := os.OpenFile(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer pf.Close()
	fi, err := pf.Stat()
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	switch m := fi.Mode(); {
	case m.IsRegular():
		fo := FileOptions{ReadOnly: opts.ReadOnly, LogicalBlockSize: opts.LogicalBlockSize, PhysicalBlockSize: opts.PhysicalBlockSize}
		f, err := safeopen.Reopen(pf, FileOpenFlags(fo))
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		return NewFile(f, fo)
	case m&os.ModeDevice != 0 && m&os.ModeCharDevice == 0:
		bo := BlockOptions{ReadOnly: opts.ReadOnly, Direct: opts.Direct}
		f, err := safeopen.Reopen(pf, BlockOpenFlags(bo))
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		return NewBlock(f, bo)
	default:
		return nil, fmt.Errorf("store: %s is neither a regular file nor a block device (mode %v)", path, m)
	}
}
