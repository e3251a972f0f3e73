package store

import (
	"fmt"
	"os"
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
func Open(path string, opts Options) (Store, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	switch m := fi.Mode(); {
	case m.IsRegular():
		return OpenFile(path, FileOptions{ReadOnly: opts.ReadOnly, LogicalBlockSize: opts.LogicalBlockSize, PhysicalBlockSize: opts.PhysicalBlockSize})
	case m&os.ModeDevice != 0 && m&os.ModeCharDevice == 0:
		return OpenBlock(path, BlockOptions{ReadOnly: opts.ReadOnly, Direct: opts.Direct})
	default:
		return nil, fmt.Errorf("store: %s is neither a regular file nor a block device (mode %v)", path, m)
	}
}
