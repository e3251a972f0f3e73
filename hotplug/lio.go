package hotplug

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/govscsi/govscsi/cfgparse"
)

// This file prepares LIO (the kernel SCSI target) for xen-scsiback through
// configfs, the same objects and names as scripts/lio-xen-pvscsi.sh makes
// (so that script's `list` and `delete` understand what the hotplug made):
//
//	target/core/<hba>/<backstore>          the backing (fileio, iblock, pscsi)
//	target/xen-pvscsi/<wwn>/tpgt_1          the target port group (+ nexus)
//	target/xen-pvscsi/<wwn>/tpgt_1/lun/lun_<L>/port_<backstore> -> backstore
//
// Every object made is reported as a Step before the next is made, so a
// crash leaves a record that still says what to remove.

// LIO errors (wrapped with the path or token involved).
var (
	ErrNoLUN      = errors.New("no xen-pvscsi LUN in LIO")
	ErrBadPDev    = errors.New("p-dev not usable with xen-scsiback")
	ErrBadBacking = errors.New("backing not usable")
	ErrConflict   = errors.New("LIO already has a different object there")
	ErrNoFabric   = errors.New("LIO's xen-pvscsi fabric is not available")
)

// Step is one configfs object a hotplug run created.
type Step struct {
	// Op is "mkdir" (an item: HBA, backstore, target, TPG, LUN), "symlink"
	// (a LUN's port link) or "nexus" (the TPG's I_T nexus was set).
	Op   string `json:"op"`
	Path string `json:"path"`
}

// LIO manipulates LIO's configfs tree for xen-scsiback.
type LIO struct {
	FS   ConfigFS
	Root string // configfs mount point, default /sys/kernel/config
	// LoadModule loads a kernel module when configfs lacks LIO or its
	// xen-pvscsi fabric (Modprobe on a host; nil on a fixture tree).
	LoadModule func(name string) error
	// Resolver turns a character device (tape, changer, /dev/sgN) into
	// its h:c:t:l for a pscsi backstore.
	Resolver *cfgparse.Resolver
}

// Modprobe is the real LIO.LoadModule.
func Modprobe(name string) error {
	out, err := exec.Command("modprobe", name).CombinedOutput()
	if err != nil {
		return fmt.Errorf("modprobe %s: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (l *LIO) root() string {
	if l.Root == "" {
		return "/sys/kernel/config"
	}
	return l.Root
}

func (l *LIO) fabric() string { return filepath.Join(l.root(), "target", "xen-pvscsi") }
func (l *LIO) core() string   { return filepath.Join(l.root(), "target", "core") }

// md5x9 is the first nine hex digits of md5(s): the naming scheme of
// scripts/lio-xen-pvscsi.sh (naa.5001405 is the LIO vendor prefix).
func md5x9(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])[:9]
}

// PlannedWWN is the target port name the hotplug script creates for a
// backing path that has no LIO LUN yet.
func PlannedWWN(backing string) string { return "naa.5001405" + md5x9(backing) }

// PlannedPDev is the p-dev the hotplug script (flavour kernel) creates for
// a backing path: LUN 0 of PlannedWWN(backing). A toolstack that wants the
// script to set LIO up can write this p-dev (with p-devname = backing)
// before the backend reads it, instead of an empty p-dev the script must
// fill in (which races with xen-scsiback's read).
func PlannedPDev(backing string) string { return PlannedWWN(backing) + ":0" }

// nexusFor is the initiator name of a target's I_T nexus (as
// lio-xen-pvscsi.sh makes it: distinct from the target name).
func nexusFor(wwn string) string { return "naa.5001405" + md5x9("nexus-"+wwn) }

// kernelPDev is a p-dev as xen-scsiback reads it: "<name>:<LIO LUN>",
// name a target port naa.<hex> or a TPG alias h:c:t.
type kernelPDev struct {
	Name    string
	LUN     uint64
	ByAlias bool
}

func (p kernelPDev) String() string { return p.Name + ":" + strconv.FormatUint(p.LUN, 10) }

// parseKernelPDev checks a p-dev the way xen-scsiback will use it (split
// at the last ':', at most 31 bytes, protocol.md §2.4, P6).
func parseKernelPDev(s string) (kernelPDev, error) {
	bad := func(why string) (kernelPDev, error) {
		return kernelPDev{}, fmt.Errorf("p-dev %q: %s: %w", s, why, ErrBadPDev)
	}
	if len(s) > cfgparse.MaxNAAPDevLen {
		return bad(fmt.Sprintf("%d bytes; xen-scsiback matches at most %d", len(s), cfgparse.MaxNAAPDevLen))
	}
	if strings.HasPrefix(s, "naa.") {
		i := strings.LastIndexByte(s, ':')
		if i < 0 {
			return bad("want naa.<hex>:<lun>")
		}
		hexPart := s[len("naa."):i]
		if hexPart == "" {
			return bad("no hex digits after \"naa.\"")
		}
		if _, err := hex.DecodeString(hexPart + strings.Repeat("0", len(hexPart)%2)); err != nil {
			return bad("target name is not naa.<hex>")
		}
		lun, err := strconv.ParseUint(s[i+1:], 10, 64)
		if err != nil || s[i+1:] == "" || s[i+1] == '+' {
			return bad("LUN is not a decimal number")
		}
		return kernelPDev{Name: s[:i], LUN: lun}, nil
	}
	h, err := cfgparse.ParseHCTL(s)
	if err != nil {
		return bad("want naa.<hex>:<lun> or a TPG alias h:c:t:<lun>")
	}
	return kernelPDev{Name: fmt.Sprintf("%d:%d:%d", h.Host, h.Channel, h.Target), LUN: h.LUN, ByAlias: true}, nil
}

// CheckBacking rejects backing paths that could not be handed to LIO as
// is: LIO control strings are comma-separated key=value lists, so a comma,
// '=' or newline would smuggle in other parameters.
func CheckBacking(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("empty backing path: %w", ErrBadBacking)
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("backing %q: not an absolute path: %w", p, ErrBadBacking)
	case filepath.Clean(p) != p:
		return fmt.Errorf("backing %q: not a clean path (%q): %w", p, filepath.Clean(p), ErrBadBacking)
	case len(p) > 1024:
		return fmt.Errorf("backing %q: longer than 1024 bytes: %w", p[:32]+"...", ErrBadBacking)
	case strings.ContainsAny(p, ",=\n\t "):
		return fmt.Errorf("backing %q: contains ',', '=' or white space, which LIO control strings cannot carry: %w", p, ErrBadBacking)
	}
	for _, c := range p {
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("backing %q: contains a control character: %w", p, ErrBadBacking)
		}
	}
	return nil
}

// found is an existing LUN for a p-dev.
type found struct {
	tpg, lun string
}

// lookup finds the LUN xen-scsiback would find for p (first TPG in name
// order, as the kernel walks its list, which is creation order; sorted
// here for determinism).
func (l *LIO) lookup(p kernelPDev) (found, bool) {
	var tpgs []string
	if p.ByAlias {
		wwns, _ := l.FS.ReadDir(l.fabric())
		for _, w := range wwns {
			for _, t := range l.tpgsOf(filepath.Join(l.fabric(), w.Name())) {
				if a, err := l.FS.ReadAttr(filepath.Join(t, "param", "alias")); err == nil && a == p.Name {
					tpgs = append(tpgs, t)
				}
			}
		}
	} else {
		tpgs = l.tpgsOf(filepath.Join(l.fabric(), p.Name))
	}
	for _, t := range tpgs {
		lun := filepath.Join(t, "lun", "lun_"+strconv.FormatUint(p.LUN, 10))
		if fi, err := l.FS.Lstat(lun); err == nil && fi.IsDir() {
			return found{tpg: t, lun: lun}, true
		}
	}
	return found{}, false
}

func (l *LIO) tpgsOf(wwnDir string) []string {
	ents, err := l.FS.ReadDir(wwnDir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), "tpgt_") {
			out = append(out, filepath.Join(wwnDir, e.Name()))
		}
	}
	sort.Strings(out)
	return out
}

// lunBackstore returns the backstore directory a LUN links to.
func (l *LIO) lunBackstore(lunDir string) (string, bool) {
	ents, _ := l.FS.ReadDir(lunDir)
	for _, e := range ents {
		if e.Type()&fs.ModeSymlink == 0 {
			continue
		}
		t, err := l.FS.Readlink(filepath.Join(lunDir, e.Name()))
		if err != nil {
			continue
		}
		if !filepath.IsAbs(t) {
			t = filepath.Join(lunDir, t)
		}
		return filepath.Clean(t), true
	}
	return "", false
}

// sameBacking reports whether a backstore's recorded udev_path names the
// same file or device as backing. An empty udev_path (backstores made by
// tools that do not set it) cannot be checked and is accepted.
func (l *LIO) sameBacking(bs, backing string) (bool, string) {
	up, err := l.FS.ReadAttr(filepath.Join(bs, "udev_path"))
	if err != nil || up == "" {
		return true, ""
	}
	if up == backing {
		return true, up
	}
	a, err1 := os.Stat(up)
	b, err2 := os.Stat(backing)
	if err1 == nil && err2 == nil && (os.SameFile(a, b) || sameDevNode(a, b)) {
		return true, up
	}
	return false, up
}

func sameDevNode(a, b fs.FileInfo) bool {
	if a.Mode()&fs.ModeDevice == 0 || b.Mode()&fs.ModeDevice == 0 || a.Mode().Type() != b.Mode().Type() {
		return false
	}
	sa, ok1 := a.Sys().(*syscall.Stat_t)
	sb, ok2 := b.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && sa.Rdev == sb.Rdev
}

// Check reports whether xen-scsiback would find pdev, without changing
// anything: nil if the LUN exists (and, when backing is set, is backed by
// it), else an error naming the p-dev.
func (l *LIO) Check(pdev, backing string) error {
	p, err := parseKernelPDev(pdev)
	if err != nil {
		return err
	}
	f, ok := l.lookup(p)
	if !ok {
		return fmt.Errorf("p-dev %q: %w under %s", pdev, ErrNoLUN, l.fabric())
	}
	if backing != "" {
		if bs, ok := l.lunBackstore(f.lun); ok {
			if same, up := l.sameBacking(bs, backing); !same {
				return fmt.Errorf("p-dev %q is backed by %s, not by p-devname %s: %w", pdev, up, backing, ErrConflict)
			}
		}
	}
	return nil
}

// Ensure makes LIO serve pdev from backing: it checks what exists and
// creates what is missing (backstore, target, TPG, nexus, LUN, port link).
// Each created object is passed to record before the next one is made;
// record failing stops the run. created is false when everything already
// existed. backing "" means the LUN must already exist.
func (l *LIO) Ensure(pdev, backing string, record func(Step) error) (created bool, err error) {
	p, err := parseKernelPDev(pdev)
	if err != nil {
		return false, err
	}
	if f, ok := l.lookup(p); ok {
		if err := l.Check(pdev, backing); err != nil {
			return false, err
		}
		return l.ensureNexus(f.tpg, record)
	}
	if backing == "" {
		return false, fmt.Errorf("p-dev %q: %w under %s, and there is no p-devname to create it from", pdev, ErrNoLUN, l.fabric())
	}
	if err := CheckBacking(backing); err != nil {
		return false, err
	}
	hba, control, err := l.classify(backing)
	if err != nil {
		return false, err
	}
	mk := func(path string) error {
		if err := l.FS.Mkdir(path); err != nil {
			return err
		}
		created = true
		return record(Step{Op: "mkdir", Path: path})
	}
	if err := l.ensureFabric(); err != nil {
		return false, err
	}

	// The backstore.
	name := backstoreName(p)
	bs, ok := l.findBackstore(name)
	if ok {
		if same, up := l.sameBacking(bs, backing); !same {
			return false, fmt.Errorf("backstore %s already exists for %s, not for %s: %w", bs, up, backing, ErrConflict)
		}
	} else {
		// The HBA directory is shared by every backstore of its type and
		// not recorded: Teardown removes it once its last backstore goes
		// (as lio-xen-pvscsi.sh and rtslib do).
		hbaDir := filepath.Join(l.core(), hba)
		madeHBA := false
		if _, err := l.FS.Lstat(hbaDir); errors.Is(err, fs.ErrNotExist) {
			if err := l.FS.Mkdir(hbaDir); err != nil {
				return created, fmt.Errorf("creating LIO HBA %s: %w", hbaDir, err)
			}
			madeHBA = true
		}
		bs = filepath.Join(hbaDir, name)
		if err := mk(bs); err != nil {
			if madeHBA {
				_ = l.FS.Rmdir(hbaDir)
			}
			return created, fmt.Errorf("creating backstore %s: %w", bs, err)
		}
		for _, a := range [][2]string{{"control", control}, {"udev_path", backing}, {"enable", "1"}} {
			if err := l.FS.WriteAttr(filepath.Join(bs, a[0]), a[1]); err != nil {
				return created, fmt.Errorf("LIO refused backstore %s (%s=%s): %w", name, a[0], a[1], err)
			}
		}
	}

	// The target port group.
	var tpg string
	wwn := p.Name
	if p.ByAlias {
		wwn = PlannedWWN("alias " + p.Name)
	}
	wwnDir := filepath.Join(l.fabric(), wwn)
	if _, err := l.FS.Lstat(wwnDir); errors.Is(err, fs.ErrNotExist) {
		if err := mk(wwnDir); err != nil {
			return created, fmt.Errorf("creating xen-pvscsi target %s: %w", wwn, err)
		}
	}
	if tpgs := l.tpgsOf(wwnDir); len(tpgs) > 0 {
		tpg = tpgs[0]
		if p.ByAlias {
			if a, _ := l.FS.ReadAttr(filepath.Join(tpg, "param", "alias")); a != p.Name {
				return created, fmt.Errorf("target %s exists with alias %q, not %q: %w", wwn, a, p.Name, ErrConflict)
			}
		}
	} else {
		tpg = filepath.Join(wwnDir, "tpgt_1")
		if err := mk(tpg); err != nil {
			return created, fmt.Errorf("creating TPG %s: %w", tpg, err)
		}
		if p.ByAlias {
			if err := l.FS.WriteAttr(filepath.Join(tpg, "param", "alias"), p.Name); err != nil {
				return created, fmt.Errorf("setting alias %s on %s: %w", p.Name, tpg, err)
			}
		}
	}
	// The nexus before the LUN: xen-scsiback refuses to drop a nexus while
	// LUNs are linked, so teardown (the reverse order) must unlink first.
	if c, err := l.ensureNexus(tpg, record); err != nil {
		return created || c, err
	} else if c {
		created = true
	}

	// The LUN and its port link.
	lunDir := filepath.Join(tpg, "lun", "lun_"+strconv.FormatUint(p.LUN, 10))
	if err := mk(lunDir); err != nil {
		return created, fmt.Errorf("creating LUN %d in %s: %w", p.LUN, tpg, err)
	}
	link := filepath.Join(lunDir, "port_"+name)
	if err := l.FS.Symlink(bs, link); err != nil {
		return created, fmt.Errorf("linking backstore %s to LUN %d of %s: %w", name, p.LUN, wwn, err)
	}
	return true, record(Step{Op: "symlink", Path: link})
}

// ensureNexus sets a TPG's nexus if it has none (xen-scsiback refuses LUNs
// of a TPG without one). Reading the attribute of a TPG without a nexus
// fails with ENODEV in xen-scsiback, so a read error means "none".
func (l *LIO) ensureNexus(tpg string, record func(Step) error) (bool, error) {
	nx, _ := l.FS.ReadAttr(filepath.Join(tpg, "nexus"))
	if nx != "" && nx != "NULL" {
		return false, nil
	}
	wwn := filepath.Base(filepath.Dir(tpg))
	if err := l.FS.WriteAttr(filepath.Join(tpg, "nexus"), nexusFor(wwn)); err != nil {
		return false, fmt.Errorf("setting the nexus of %s: %w", tpg, err)
	}
	return true, record(Step{Op: "nexus", Path: tpg})
}

// ensureFabric makes sure configfs has LIO's xen-pvscsi fabric, loading
// the modules if needed (target_core_mod, xen-scsiback).
func (l *LIO) ensureFabric() error {
	if _, err := l.FS.Lstat(l.fabric()); err == nil {
		return nil
	}
	target := filepath.Join(l.root(), "target")
	if _, err := l.FS.Lstat(target); err != nil && l.LoadModule != nil {
		if err := l.LoadModule("target_core_mod"); err != nil {
			return fmt.Errorf("%w: %v", ErrNoFabric, err)
		}
	}
	if _, err := l.FS.Lstat(target); err != nil {
		return fmt.Errorf("%w: %s missing (is configfs mounted and target_core_mod loaded?)", ErrNoFabric, target)
	}
	if l.LoadModule != nil {
		if err := l.LoadModule("xen-scsiback"); err != nil {
			return fmt.Errorf("%w: %v", ErrNoFabric, err)
		}
	}
	if _, err := l.FS.Lstat(l.fabric()); err == nil {
		return nil
	}
	// mkdir registers the fabric (the kernel loads xen-scsiback on demand).
	// It is never removed again: other targets may come to use it.
	if err := l.FS.Mkdir(l.fabric()); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w: %v", ErrNoFabric, err)
	}
	return nil
}

// backstoreName names the backstore of a created LUN after the p-dev, so
// two p-devs never share one by accident ([A-Za-z0-9_-], as LIO and
// lio-xen-pvscsi.sh want).
func backstoreName(p kernelPDev) string {
	n := strings.TrimPrefix(p.Name, "naa.")
	if p.ByAlias {
		n = "alias-" + strings.ReplaceAll(p.Name, ":", "-")
	}
	return "govscsi-" + n + "-" + strconv.FormatUint(p.LUN, 10)
}

func (l *LIO) findBackstore(name string) (string, bool) {
	hbas, _ := l.FS.ReadDir(l.core())
	for _, h := range hbas {
		p := filepath.Join(l.core(), h.Name(), name)
		if fi, err := l.FS.Lstat(p); err == nil && fi.IsDir() {
			return p, true
		}
	}
	return "", false
}

// classify picks the backstore type for a backing path: a regular file is
// fileio, a block device iblock, a character device (tape, changer, sg)
// pscsi on its h:c:t:l.
func (l *LIO) classify(backing string) (hba, control string, err error) {
	fi, err := os.Stat(backing)
	if err != nil {
		return "", "", fmt.Errorf("backing %s: %w", backing, err)
	}
	m := fi.Mode()
	switch {
	case m.IsRegular():
		if fi.Size() <= 0 {
			return "", "", fmt.Errorf("backing file %s is empty: %w", backing, ErrBadBacking)
		}
		return "fileio_0", fmt.Sprintf("fd_dev_name=%s,fd_dev_size=%d", backing, fi.Size()), nil
	case m&fs.ModeDevice != 0 && m&fs.ModeCharDevice == 0:
		return "iblock_0", "udev_path=" + backing, nil
	case m&fs.ModeCharDevice != 0:
		r := l.Resolver
		if r == nil {
			r = &cfgparse.Resolver{}
		}
		h, err := r.HCTLOf(backing)
		if err != nil {
			return "", "", fmt.Errorf("backing %s is a character device but not a SCSI one: %w", backing, err)
		}
		if h.LUN > 1<<32-1 {
			return "", "", fmt.Errorf("backing %s: LUN %d too large for pscsi: %w", backing, h.LUN, ErrBadBacking)
		}
		return "pscsi_0", fmt.Sprintf("scsi_host_id=%d,scsi_channel_id=%d,scsi_target_id=%d,scsi_lun_id=%d", h.Host, h.Channel, h.Target, h.LUN), nil
	}
	return "", "", fmt.Errorf("backing %s is neither a regular file nor a device: %w", backing, ErrBadBacking)
}

// Teardown removes what steps created, newest first. Objects already gone
// are fine. An object still in use by something these steps did not make
// (another vhost's LUN in our target) is left alone and returned in inUse.
// Other failures come back in errs, and their steps in failed, so that the
// record can keep them for another try. inUse and failed are in creation
// order.
func (l *LIO) Teardown(steps []Step) (inUse, failed []Step, errs []error) {
	for i := len(steps) - 1; i >= 0; i-- {
		s := steps[i]
		var err error
		switch s.Op {
		case "symlink":
			err = l.FS.Unlink(s.Path)
		case "mkdir":
			err = l.FS.Rmdir(s.Path)
			if err == nil && filepath.Dir(filepath.Dir(s.Path)) == l.core() {
				// A backstore: its HBA goes with the last one.
				_ = l.FS.Rmdir(filepath.Dir(s.Path))
			}
		case "nexus":
			if luns, _ := l.FS.ReadDir(filepath.Join(s.Path, "lun")); len(luns) > 0 {
				inUse = append([]Step{s}, inUse...) // other LUNs still need it
				continue
			}
			if _, serr := l.FS.Lstat(s.Path); serr != nil {
				err = serr
			} else if err = l.FS.WriteAttr(filepath.Join(s.Path, "nexus"), "NULL"); errors.Is(err, syscall.ENODEV) {
				err = nil // xen-scsiback: no nexus any more (dropped already)
			}
		default:
			err = fmt.Errorf("unknown step %q", s.Op)
		}
		switch {
		case err == nil, errors.Is(err, fs.ErrNotExist):
		case errors.Is(err, syscall.ENOTEMPTY), errors.Is(err, syscall.EBUSY):
			inUse = append([]Step{s}, inUse...)
		default:
			failed = append([]Step{s}, failed...)
			errs = append(errs, fmt.Errorf("%s %s: %w", s.Op, s.Path, err))
		}
	}
	return inUse, failed, errs
}
