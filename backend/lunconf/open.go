package lunconf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govscsi/govscsi/backend/safeopen"
	"github.com/govscsi/govscsi/backend/scsi"
	"github.com/govscsi/govscsi/backend/sgio"
	"github.com/govscsi/govscsi/backend/store"
)

// Policy says which p-devs this backend may open. The zero Policy allows
// nothing but RAM disks up to DefaultMaxRAM.
type Policy struct {
	// AllowPaths lists path prefixes (directories, e.g. "/dev/" or
	// "/var/lib/govscsi/images/") under which device and file p-devs may
	// live. A prefix matches whole path components only. The path as
	// written must match, and it is opened beneath the matching directory
	// with no way out (lookup).
	AllowPaths []string
	// MaxRAM caps ram:<size> (0: DefaultMaxRAM; negative: RAM disks off).
	MaxRAM int64
}

// DefaultMaxRAM is the RAM-disk size cap when Policy.MaxRAM is 0.
const DefaultMaxRAM = 4 << 30

// ErrNotAllowed is wrapped by policy refusals.
var ErrNotAllowed = errors.New("p-dev not allowed by policy")

// Check applies the policy to a parsed spec, without touching the file
// system (Open then keeps the lookup beneath the allowed directory).
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

// lookup finds path beneath the allow_paths entry it lies under and returns
// an O_PATH descriptor of it (see package safeopen): the check that the
// path stays inside and the lookup are one openat2(2), so no rename or
// symlink swap between them can lead elsewhere. The walk starts at the
// shortest matching entry, which holds every other matching one.
// Symlinks are followed while they stay beneath that directory (relative
// ones: /dev/disk/by-id/* -> ../../sdb, /dev/vg/lv -> ../dm-0); ".." out
// of it, absolute symlinks and magic links are refused. An entry naming
// the p-dev itself (allow_paths: [/dev/sdb]) allows that name only, not a
// symlink there.
func (p Policy) lookup(path string) (*os.File, error) {
	entry := ""
	for _, pre := range p.AllowPaths {
		dir := strings.TrimSuffix(pre, "/")
		if pre == "" || !(path == dir || strings.HasPrefix(path, dir+"/")) {
			continue
		}
		if entry == "" || len(dir) < len(entry) {
			entry = dir
		}
	}
	if entry == "" {
		return nil, fmt.Errorf("%w: %s is outside the allowed paths %v", ErrNotAllowed, path, p.AllowPaths)
	}
	dir, rel, symlinks := entry, strings.TrimPrefix(path, entry+"/"), true
	if path == entry {
		dir, rel, symlinks = filepath.Dir(entry), filepath.Base(entry), false
	}
	f, err := safeopen.Beneath(dir, rel, symlinks)
	if errors.Is(err, safeopen.ErrEscape) {
		return nil, fmt.Errorf("%w: %w", ErrNotAllowed, err)
	}
	if err != nil {
		return nil, fmt.Errorf("lunconf: %w", err)
	}
	return f, nil
}

// sgMajor is the character major of the SCSI generic driver (sg).
const sgMajor = 21

func isSGNode(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && unix.Major(st.Rdev) == sgMajor
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
	// Units shares the logical unit of a backing among its attachments
	// and keeps reservation state (one Units per daemon); nil: every disk
	// is a logical unit of its own with reservations in memory.
	Units *Units
	// Initiator names the attachment's I_T nexus (scsi.DiskOptions.
	// Initiator): stable for the same guest vhost.
	Initiator string
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
	// Path is the resolved path (after symlinks) for device and file LUNs,
	// for messages: the LUN was opened through a descriptor, not by it.
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
		MaxTransferBytes: o.MaxTransferBytes, WriteCache: true, Initiator: o.Initiator}
	// newDisk puts the disk into its logical unit and opens it.
	newDisk := func(st store.Store, backing string) (scsi.LUN, error) {
		if o.Units != nil {
			if err := o.Units.attach(&disk, st, backing); err != nil {
				st.Close()
				return nil, err
			}
		}
		return scsi.NewDisk(st, disk), nil
	}
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
		lun, err := newDisk(st, s.String())
		if err != nil {
			return Opened{}, err
		}
		return Opened{LUN: lun, Inline: true, Kind: KindRAM, Restored: restored}, nil
	}

	pf, err := p.lookup(s.Path)
	if err != nil {
		return Opened{}, err
	}
	defer pf.Close()
	fi, err := pf.Stat()
	if err != nil {
		return Opened{}, fmt.Errorf("lunconf: %w", err)
	}
	real, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(pf.Fd())))
	if err != nil {
		real = s.Path // only for messages and Opened.Path
	}
	kind := s.Kind
	mode := fi.Mode()
	if kind == KindDevice {
		switch {
		case mode&fs.ModeDevice != 0 && mode&fs.ModeCharDevice == 0:
			kind = KindBlock
		case mode&fs.ModeCharDevice != 0 && isSGNode(fi):
			kind = KindSG
		case mode&fs.ModeCharDevice != 0:
			// Not opened: opening a character device can have effects
			// (a tape rewinds, a watchdog starts).
			return Opened{}, fmt.Errorf("lunconf: %s is a character device but not a SCSI generic node (sg, major %d); use sg:%s to pass it through", real, sgMajor, s.Path)
		default:
			return Opened{}, fmt.Errorf("lunconf: %s is neither a block device nor a SCSI generic device (mode %v); use file: for image files", real, mode)
		}
	}
	// reopen opens the inode pf pinned, with the access the LUN needs:
	// the one and only descriptor the LUN uses.
	reopen := func(flag int) (*os.File, error) {
		f, err := safeopen.Reopen(pf, flag)
		if err != nil {
			return nil, fmt.Errorf("lunconf: %w", err)
		}
		return f, nil
	}
	switch kind {
	case KindFile:
		if !mode.IsRegular() {
			return Opened{}, fmt.Errorf("lunconf: file:%s is not a regular file (mode %v)", s.Path, mode)
		}
		fo := store.FileOptions{ReadOnly: s.ReadOnly}
		f, err := reopen(store.FileOpenFlags(fo))
		if err != nil {
			return Opened{}, err
		}
		st, err := store.NewFile(f, fo)
		if err != nil {
			return Opened{}, err
		}
		disk.Discard = !s.ReadOnly
		if err := disk.Validate(st); err != nil {
			st.Close()
			return Opened{}, err
		}
		lun, err := newDisk(st, s.String()+" ("+real+")")
		if err != nil {
			return Opened{}, err
		}
		return Opened{LUN: lun, Kind: KindFile, Path: real}, nil
	case KindBlock:
		if s.Raw {
			return Opened{}, fmt.Errorf("lunconf: option raw needs sg pass-through, not a block disk")
		}
		if mode&fs.ModeDevice == 0 || mode&fs.ModeCharDevice != 0 {
			return Opened{}, fmt.Errorf("lunconf: block:%s is not a block device (mode %v)", s.Path, mode)
		}
		bo := store.BlockOptions{ReadOnly: s.ReadOnly, Direct: s.Direct}
		f, err := reopen(store.BlockOpenFlags(bo))
		if err != nil {
			return Opened{}, err
		}
		st, err := store.NewBlock(f, bo)
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
		lun, err := newDisk(st, s.String()+" ("+real+")")
		if err != nil {
			return Opened{}, err
		}
		return Opened{LUN: lun, Kind: KindBlock, Path: real}, nil
	case KindSG:
		if s.Direct {
			return Opened{}, fmt.Errorf("lunconf: option direct is for emulated block disks, not pass-through")
		}
		if mode&fs.ModeDevice == 0 {
			return Opened{}, fmt.Errorf("lunconf: sg:%s is not a device node (mode %v)", s.Path, mode)
		}
		f, err := reopen(sgio.OpenFlags)
		if err != nil {
			return Opened{}, err
		}
		d, err := sgio.FromFile(f, sgio.Options{Timeout: o.SGTimeout, Raw: s.Raw, ReadOnly: s.ReadOnly, ReportLUNs: o.ReportLUNs})
		if err != nil {
			return Opened{}, err
		}
		return Opened{LUN: d, Kind: KindSG, Path: real}, nil
	}
	return Opened{}, fmt.Errorf("lunconf: cannot open kind %s", kind)
}
