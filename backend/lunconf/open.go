package lunconf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/govscsi/govscsi/backend/scsi"
	"github.com/govscsi/govscsi/backend/sgio"
	"github.com/govscsi/govscsi/backend/store"
)

// Policy says which p-devs this backend may open. The zero Policy allows
// nothing but RAM disks up to DefaultMaxRAM.
type Policy struct {
	// AllowPaths lists path prefixes (directories, e.g. "/dev/" or
	// "/var/lib/govscsi/images/") under which device and file p-devs may
	// live. A prefix matches whole path components only. Both the path as
	// written and the path after resolving symlinks must match.
	AllowPaths []string
	// MaxRAM caps ram:<size> (0: DefaultMaxRAM; negative: RAM disks off).
	MaxRAM int64
}

// DefaultMaxRAM is the RAM-disk size cap when Policy.MaxRAM is 0.
const DefaultMaxRAM = 4 << 30

// ErrNotAllowed is wrapped by policy refusals.
var ErrNotAllowed = errors.New("p-dev not allowed by policy")

// Check applies the policy to a parsed spec, without touching the file
// system (Open also checks the resolved path).
func (p Policy) Check(s Spec) error {
	if s.Kind == KindRAM {
		max := p.MaxRAM
		if max == 0 {
			max = DefaultMaxRAM
		}
		if max < 0 {
			return fmt.Errorf("%w: RAM disks are disabled", ErrNotAllowed)
		}
		if s.Size > max {
			return fmt.Errorf("%w: ram:%d is larger than the %d-byte limit", ErrNotAllowed, s.Size, max)
		}
		return nil
	}
	if !p.allowed(s.Path) {
		return fmt.Errorf("%w: %s is outside the allowed paths %v", ErrNotAllowed, s.Path, p.AllowPaths)
	}
	return nil
}

func (p Policy) allowed(path string) bool {
	for _, pre := range p.AllowPaths {
		if pre == "" {
			continue
		}
		dir := strings.TrimSuffix(pre, "/")
		if path == dir || strings.HasPrefix(path, dir+"/") {
			return true
		}
	}
	return false
}

// Options are what a LUN needs beyond its p-dev.
type Options struct {
	// ID seeds the disk's stable identifiers (serial, NAA); the backend
	// passes "<domid>/<vhost>/<c:t:l>" or the p-dev.
	ID string
	// LUN is the guest-visible LUN number; ReportLUNs lists the LUNs on
	// the same (channel, target) for REPORT LUNS.
	LUN        uint64
	ReportLUNs func() []uint64
	// SGTimeout bounds each pass-through command (0: sgio.DefaultTimeout).
	SGTimeout time.Duration
	// MaxTransferBytes is the datapath's segment limit * 4096 (0: the
	// scsi package's default).
	MaxTransferBytes int
	// StatePath, when set, is a file the LUN may keep its state in, on
	// tmpfs: a ram: disk lives there (store.OpenRAMFile), so a restarted
	// backend finds its contents again. The caller deletes the file when
	// the device is really removed. Empty: RAM disks live in the process.
	StatePath string
}

// Opened is an open LUN.
type Opened struct {
	LUN scsi.LUN
	// Inline: the LUN answers in microseconds and never blocks (RAM), so
	// the datapath may run it on the ring goroutine.
	Inline bool
	// Kind is the resolved kind (KindDevice never appears here).
	Kind Kind
	// Path is the resolved path (after symlinks) for device and file LUNs.
	Path string
	// Restored: a RAM disk found its contents in StatePath (left by a
	// previous process) instead of starting empty.
	Restored bool
}

// Open parses pdev, applies the policy and opens the LUN.
func (p Policy) Open(pdev string, o Options) (Opened, error) {
	s, err := Parse(pdev)
	if err != nil {
		return Opened{}, err
	}
	return p.OpenSpec(s, o)
}

// OpenSpec applies the policy to s and opens it.
func (p Policy) OpenSpec(s Spec, o Options) (Opened, error) {
	if err := p.Check(s); err != nil {
		return Opened{}, err
	}
	disk := scsi.DiskOptions{ID: o.ID, LUN: o.LUN, ReportLUNs: o.ReportLUNs, ReadOnly: s.ReadOnly,
		MaxTransferBytes: o.MaxTransferBytes, WriteCache: true}
	if s.Kind == KindRAM {
		var st *store.RAM
		var err error
		restored := false
		if o.StatePath != "" {
			// The tag names the disk: its canonical p-dev and identity, so
			// a file of another disk is never taken for this one.
			st, restored, err = store.OpenRAMFile(o.StatePath, s.Size, s.String()+" "+o.ID, store.RAMOptions{})
		} else {
			st, err = store.NewRAM(s.Size, store.RAMOptions{})
		}
		if err != nil {
			return Opened{}, err
		}
		disk.Discard = true
		return Opened{LUN: scsi.NewDisk(st, disk), Inline: true, Kind: KindRAM, Restored: restored}, nil
	}

	real, err := filepath.EvalSymlinks(s.Path)
	if err != nil {
		return Opened{}, fmt.Errorf("lunconf: %s: %w", s.Path, err)
	}
	if !p.allowed(real) {
		return Opened{}, fmt.Errorf("%w: %s resolves to %s, outside the allowed paths %v", ErrNotAllowed, s.Path, real, p.AllowPaths)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return Opened{}, fmt.Errorf("lunconf: %w", err)
	}
	kind := s.Kind
	mode := fi.Mode()
	if kind == KindDevice {
		switch {
		case mode&fs.ModeDevice != 0 && mode&fs.ModeCharDevice == 0:
			kind = KindBlock
		case mode&fs.ModeCharDevice != 0:
			kind = KindSG
		default:
			return Opened{}, fmt.Errorf("lunconf: %s is neither a block device nor a SCSI generic device (mode %v); use file: for image files", real, mode)
		}
	}
	switch kind {
	case KindFile:
		if !mode.IsRegular() {
			return Opened{}, fmt.Errorf("lunconf: file:%s is not a regular file (mode %v)", s.Path, mode)
		}
		st, err := store.OpenFile(real, store.FileOptions{ReadOnly: s.ReadOnly})
		if err != nil {
			return Opened{}, err
		}
		disk.Discard = !s.ReadOnly
		if err := disk.Validate(st); err != nil {
			st.Close()
			return Opened{}, err
		}
		return Opened{LUN: scsi.NewDisk(st, disk), Kind: KindFile, Path: real}, nil
	case KindBlock:
		if s.Raw {
			return Opened{}, fmt.Errorf("lunconf: option raw needs sg pass-through, not a block disk")
		}
		st, err := store.OpenBlock(real, store.BlockOptions{ReadOnly: s.ReadOnly, Direct: s.Direct})
		if err != nil {
			return Opened{}, err
		}
		disk.Discard = !s.ReadOnly
		if err := disk.Validate(st); err != nil {
			disk.Discard = false
			if err2 := disk.Validate(st); err2 != nil {
				st.Close()
				return Opened{}, err2
			}
		}
		return Opened{LUN: scsi.NewDisk(st, disk), Kind: KindBlock, Path: real}, nil
	case KindSG:
		if s.Direct {
			return Opened{}, fmt.Errorf("lunconf: option direct is for emulated block disks, not pass-through")
		}
		d, err := sgio.Open(real, sgio.Options{Timeout: o.SGTimeout, Raw: s.Raw, ReadOnly: s.ReadOnly, ReportLUNs: o.ReportLUNs})
		if err != nil {
			return Opened{}, err
		}
		return Opened{LUN: d, Kind: KindSG, Path: real}, nil
	}
	return Opened{}, fmt.Errorf("lunconf: cannot open kind %s", kind)
}
