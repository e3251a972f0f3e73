package cfgparse

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// This file turns a parsed pdev into the p-dev string a given backend
// flavour can use (protocol.md §2.4, §3.4):
//
//	/dev/X  --stat-->  block|char major:minor
//	        --<sysfs>/dev/{block,char}/M:m/device/scsi_device/h:c:t:l-->  h:c:t:l
//	h:c:t:l --<configfs>/target/xen-pvscsi/naa.*/tpgt_*/lun/lun_L/*/udev_path-->  naa.<wwn>:L
//
// The flavour is always the caller's explicit choice: SUSE's libxl guessed
// it from the presence of configfs and silently produced p-devs a pvops
// backend cannot use (P8).

// Flavour is the backend a p-dev is rendered for.
type Flavour int

const (
	// FlavourKernel is Linux pvops xen-scsiback (LIO): p-dev must name an
	// LIO xen-pvscsi target port, naa.<wwn>:<LIO LUN index>, or a TPG
	// alias plus LUN index (which is what an h:c:t:l pdev is taken as).
	FlavourKernel Flavour = iota + 1
	// FlavourHCTL is the classic xenlinux scsiback: p-dev is the host's
	// raw h:c:t:l (32-bit LUN).
	FlavourHCTL
	// FlavourUserspace is govscsi's own backend daemon (vscsi-backend,
	// docs/backend.md): p-dev is written in its syntax (backend/lunconf:
	// /dev/..., block:, sg:, file:, ram:, options ,ro ,direct ,raw) and
	// the vhost lives under backend type "vscsiu", which xen-scsiback
	// never binds (protocol.md P3).
	FlavourUserspace
)

// Backend type directories (/local/domain/<be>/backend/<type>/...).
const (
	// TypeKernel is the type xen-scsiback (and the xenlinux backend) serve.
	TypeKernel = "vscsi"
	// TypeUserspace is the userspace backend's default type.
	TypeUserspace = "vscsiu"
)

// BackendType is the backend type directory a flavour's backend serves by
// default: "vscsiu" for userspace, "vscsi" otherwise.
func (f Flavour) BackendType() string {
	if f == FlavourUserspace {
		return TypeUserspace
	}
	return TypeKernel
}

func (f Flavour) String() string {
	switch f {
	case FlavourKernel:
		return "kernel"
	case FlavourHCTL:
		return "hctl"
	case FlavourUserspace:
		return "userspace"
	}
	return fmt.Sprintf("Flavour(%d)", int(f))
}

// ParseFlavour maps the CLI/config names "kernel", "hctl" and
// "userspace" to a Flavour.
func ParseFlavour(s string) (Flavour, error) {
	switch s {
	case "kernel":
		return FlavourKernel, nil
	case "hctl":
		return FlavourHCTL, nil
	case "userspace":
		return FlavourUserspace, nil
	}
	return 0, fmt.Errorf("unknown backend flavour %q, expected kernel, hctl or userspace", s)
}

// Resolution errors. Each failing step has its own sentinel, wrapped in a
// *ResolveError that names the path involved; test with errors.Is.
var (
	ErrNodeNotFound   = errors.New("device node not found")
	ErrNotDevice      = errors.New("not a block or char device")
	ErrNoMajorMinor   = errors.New("no major:minor entry in sysfs")
	ErrNoHCTL         = errors.New("no h:c:t:l entry in sysfs")
	ErrNoFabric       = errors.New("no xen-pvscsi fabric in configfs")
	ErrNoLIOLUN       = errors.New("no xen-pvscsi LUN in LIO backs the device")
	ErrFlavourPDev    = errors.New("pdev form not usable with this backend flavour")
	ErrUnknownFlavour = errors.New("unknown backend flavour")
)

// ResolveError is one failed resolution step. Kind is one of the Err*
// sentinels above, Path the file or directory that step looked at, Detail
// extra words for the user, Err the underlying system error (if any).
type ResolveError struct {
	PDev   string
	Kind   error
	Path   string
	Detail string
	Err    error
}

func (e *ResolveError) Error() string {
	var sb strings.Builder
	sb.WriteString(e.Kind.Error())
	if e.Path != "" {
		sb.WriteString(": ")
		sb.WriteString(e.Path)
	}
	if e.Detail != "" {
		sb.WriteString(": ")
		sb.WriteString(e.Detail)
	}
	if e.Err != nil {
		sb.WriteString(": ")
		sb.WriteString(e.Err.Error())
	}
	return sb.String()
}

func (e *ResolveError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// DevNode is what resolution needs from stat(2) of a device node.
type DevNode struct {
	Block, Char  bool
	Major, Minor uint32
}

// StatFunc stats a path, following symlinks (by-id names are links).
type StatFunc func(path string) (DevNode, error)

// OSStat is the real StatFunc.
func OSStat(path string) (DevNode, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return DevNode{}, err
	}
	var n DevNode
	m := fi.Mode()
	n.Char = m&fs.ModeCharDevice != 0
	n.Block = m&fs.ModeDevice != 0 && !n.Char
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && (n.Block || n.Char) {
		n.Major, n.Minor = unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev))
	}
	return n, nil
}

// Resolver resolves pdevs against a host's sysfs and configfs. The roots
// and stat are fields so tests can run on fixture trees.
type Resolver struct {
	SysfsRoot    string   // default "/sys"
	ConfigfsRoot string   // default "/sys/kernel/config"
	Stat         StatFunc // default OSStat
	// PlanLIO, if set, is the p-dev a hotplug script will create for a
	// /dev path that no xen-pvscsi LUN backs yet (flavour kernel only;
	// hotplug.PlannedPDev). Such a path is then rendered as PlanLIO(path)
	// with p-devname = path and a note, instead of failing.
	PlanLIO func(path string) string
}

// planned is the PlanLIO fallback for a /dev path whose LIO resolution
// failed with err: only for failures a hotplug script repairs (no LIO LUN,
// no fabric yet, or a block device that is not SCSI and becomes an iblock
// backstore), never for a path that is not a device at all.
func (r *Resolver) planned(path string, err error) (PDevValue, []string, bool) {
	if r.PlanLIO == nil {
		return PDevValue{}, nil, false
	}
	if !errors.Is(err, ErrNoLIOLUN) && !errors.Is(err, ErrNoFabric) && !errors.Is(err, ErrNoHCTL) {
		return PDevValue{}, nil, false
	}
	v := r.PlanLIO(path)
	return PDevValue{PDev: v, PDevName: path},
		[]string{fmt.Sprintf("no xen-pvscsi LUN backs %s yet; writing p-dev %s for the hotplug script to create", path, v)}, true
}

func (r *Resolver) sysfs() string {
	if r.SysfsRoot == "" {
		return "/sys"
	}
	return r.SysfsRoot
}

func (r *Resolver) configfs() string {
	if r.ConfigfsRoot == "" {
		return "/sys/kernel/config"
	}
	return r.ConfigfsRoot
}

func (r *Resolver) stat(p string) (DevNode, error) {
	if r.Stat == nil {
		return OSStat(p)
	}
	return r.Stat(p)
}

// PDevValue is a resolved pdev: the backend's p-dev string and, when the
// spec named a /dev path, that path for p-devname (toolstack-only key).
type PDevValue struct {
	PDev     string
	PDevName string
}

// Resolve returns the p-dev a backend of flavour f needs for p. Errors are
// *ResolveError.
func (r *Resolver) Resolve(p PDev, f Flavour) (PDevValue, []string, error) {
	bad := func(kind error, detail string) (PDevValue, []string, error) {
		return PDevValue{}, nil, &ResolveError{PDev: p.String(), Kind: kind, Detail: detail}
	}
	switch f {
	case FlavourKernel, FlavourHCTL:
	case FlavourUserspace:
		return resolveUserspace(p, nil)
	default:
		return bad(ErrUnknownFlavour, f.String())
	}
	switch p.Kind {
	case PDevLUN:
		return bad(ErrFlavourPDev, fmt.Sprintf("%q is a p-dev of the userspace backend (use --flavour userspace); xen-scsiback and the xenlinux backend need /dev/..., h:c:t:l or naa.<wwn>:<lun>", p.String()))
	case PDevNAA:
		if f == FlavourHCTL {
			return bad(ErrFlavourPDev, "naa.<wwn>:<lun> names an LIO target port; the xenlinux backend (flavour hctl) needs h:c:t:l or a /dev path")
		}
		return PDevValue{PDev: p.String()}, r.checkLIO(p.WWN, p.LUN, false), nil
	case PDevHCTL:
		if f == FlavourHCTL {
			if p.HCTL.LUN > 1<<32-1 {
				return bad(ErrFlavourPDev, fmt.Sprintf("lun %d: the xenlinux backend reads a 32-bit LUN", p.HCTL.LUN))
			}
			return PDevValue{PDev: p.String()}, nil, nil
		}
		// For xen-scsiback this is "<TPG alias h:c:t>:<LIO LUN index>",
		// the convention of SUSE's target-create script; written as is.
		if l := len(p.String()); l > MaxNAAPDevLen {
			return bad(ErrFlavourPDev, fmt.Sprintf("%q is %d bytes; xen-scsiback matches at most %d (it truncates p-dev), so it could never be found", p.String(), l, MaxNAAPDevLen))
		}
		alias := fmt.Sprintf("%d:%d:%d", p.HCTL.Host, p.HCTL.Channel, p.HCTL.Target)
		return PDevValue{PDev: p.String()}, r.checkLIO(alias, p.HCTL.LUN, true), nil
	case PDevPath:
		h, err := r.HCTLOf(p.Path)
		if err != nil {
			if pv, notes, ok := r.planned(p.Path, err); ok && f == FlavourKernel {
				return pv, notes, nil
			}
			return PDevValue{}, nil, err
		}
		if f == FlavourHCTL {
			return PDevValue{PDev: h.String(), PDevName: p.Path}, nil, nil
		}
		v, notes, err := r.LIOPort(h)
		if err != nil {
			if pv, more, ok := r.planned(p.Path, err); ok {
				return pv, append(notes, more...), nil
			}
			return PDevValue{}, notes, err
		}
		return PDevValue{PDev: v, PDevName: p.Path}, notes, nil
	}
	return bad(ErrFlavourPDev, "empty pdev")
}

// HCTLOf resolves a device node path to its SCSI address via sysfs.
func (r *Resolver) HCTLOf(path string) (HCTL, error) {
	fail := func(kind error, p, detail string, err error) (HCTL, error) {
		return HCTL{}, &ResolveError{PDev: path, Kind: kind, Path: p, Detail: detail, Err: err}
	}
	n, err := r.stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fail(ErrNodeNotFound, path, "", err)
		}
		return fail(ErrNodeNotFound, path, "cannot stat", err)
	}
	var class string
	switch {
	case n.Block:
		class = "block"
	case n.Char:
		class = "char"
	default:
		return fail(ErrNotDevice, path, "", nil)
	}
	return r.hctlOfDevNum(class, n.Major, n.Minor, path)
}

// hctlOfDevNum is HCTLOf for a device number of class "block" or "char";
// path names the device in errors.
func (r *Resolver) hctlOfDevNum(class string, major, minor uint32, path string) (HCTL, error) {
	fail := func(kind error, p, detail string, err error) (HCTL, error) {
		return HCTL{}, &ResolveError{PDev: path, Kind: kind, Path: p, Detail: detail, Err: err}
	}
	mm := filepath.Join(r.sysfs(), "dev", class, fmt.Sprintf("%d:%d", major, minor))
	if _, err := os.Stat(mm); err != nil {
		return fail(ErrNoMajorMinor, mm, "", err)
	}
	dir := filepath.Join(mm, "device", "scsi_device")
	ents, err := os.ReadDir(dir)
	if err != nil {
		detail := "not a SCSI device"
		if class == "block" {
			if _, perr := os.Stat(filepath.Join(mm, "partition")); perr == nil {
				detail = "a partition; pass the whole disk"
			}
		}
		return fail(ErrNoHCTL, dir, detail, err)
	}
	for _, e := range ents { // ReadDir sorts by name
		if h, err := ParseHCTL(e.Name()); err == nil {
			return h, nil
		}
	}
	return fail(ErrNoHCTL, dir, "no entry named h:c:t:l", nil)
}

// LIOPort finds the xen-pvscsi target port and LIO LUN index whose
// backstore is the SCSI device h (a pscsi backstore: its udev_path names a
// node that resolves to h). The walk is in sorted order (LUN indexes
// numerically) and the first match wins; notes mention other matches and
// a TPG without a nexus, which xen-scsiback would refuse.
func (r *Resolver) LIOPort(h HCTL) (string, []string, error) {
	fabric := filepath.Join(r.configfs(), "target", "xen-pvscsi")
	if _, err := os.Stat(fabric); err != nil {
		return "", nil, &ResolveError{PDev: h.String(), Kind: ErrNoFabric, Path: fabric,
			Detail: "is xen-scsiback loaded and configfs mounted? (use flavour hctl for a xenlinux backend)", Err: err}
	}
	var found []string
	var notes []string
	ports, _ := filepath.Glob(filepath.Join(fabric, "naa.*"))
	sort.Strings(ports)
	for _, port := range ports {
		tpgs, _ := filepath.Glob(filepath.Join(port, "tpgt_*"))
		sort.Strings(tpgs)
		for _, tpg := range tpgs {
			luns, _ := filepath.Glob(filepath.Join(tpg, "lun", "lun_*"))
			sortLUNDirs(luns)
			for _, lun := range luns {
				idx, err := parseDecimal(strings.TrimPrefix(filepath.Base(lun), "lun_"), 64)
				if err != nil {
					continue
				}
				if !r.lunBacks(lun, h) {
					continue
				}
				v := filepath.Base(port) + ":" + strconv.FormatUint(idx, 10)
				if len(v) > MaxNAAPDevLen {
					notes = append(notes, fmt.Sprintf("%s backs %s but %q is longer than xen-scsiback's %d bytes", lun, h, v, MaxNAAPDevLen))
					continue
				}
				if len(found) == 0 {
					if b, err := os.ReadFile(filepath.Join(tpg, "nexus")); err != nil || strings.TrimSpace(string(b)) == "" {
						notes = append(notes, fmt.Sprintf("%s has no nexus: xen-scsiback will refuse %s", tpg, v))
					}
				}
				found = append(found, v)
			}
		}
	}
	if len(found) == 0 {
		return "", notes, &ResolveError{PDev: h.String(), Kind: ErrNoLIOLUN, Path: fabric,
			Detail: fmt.Sprintf("no naa.*/tpgt_*/lun/lun_*/<backstore> (by its udev_path, or an iblock's Major/Minor) is h:c:t:l %s (export it with scripts/lio-xen-pvscsi.sh create NAME /dev/..., or a pscsi/iblock backstore and a LUN in a xen-pvscsi TPG)", h)}
	}
	if len(found) > 1 {
		notes = append(notes, fmt.Sprintf("%s is exported as %s; using %s", h, strings.Join(found, ", "), found[0]))
	}
	return found[0], notes, nil
}

// lunBacks reports whether any entry of an LIO lun_L directory is a
// backstore that is the SCSI device h. Entries that are not backstores (the
// alua_* and statistics items) and backstores that are not SCSI nodes
// (fileio, iblock on virtio, ...) simply do not match.
func (r *Resolver) lunBacks(lunDir string, h HCTL) bool {
	ents, err := os.ReadDir(lunDir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if got, ok := r.backstoreHCTL(filepath.Join(lunDir, e.Name())); ok && got == h {
			return true
		}
	}
	return false
}

// backstoreHCTL finds the SCSI address of the device behind an LIO
// backstore. Its udev_path attribute is the obvious place, but LIO only
// fills it when the tool writes it: targetcli does, a plain
// `echo udev_path=/dev/sdX > control` for iblock does not (that sets the
// iblock's own path, shown in info). So when udev_path is empty, the
// "Major: M Minor: N" that iblock's info prints names the block device.
func (r *Resolver) backstoreHCTL(dir string) (HCTL, bool) {
	if b, err := os.ReadFile(filepath.Join(dir, "udev_path")); err == nil {
		if p := strings.TrimRight(string(b), "\n"); p != "" {
			h, err := r.HCTLOf(p)
			return h, err == nil
		}
	} else {
		return HCTL{}, false // not a backstore
	}
	info, err := os.ReadFile(filepath.Join(dir, "info"))
	if err != nil {
		return HCTL{}, false
	}
	f := strings.Fields(string(info))
	for i := 0; i+3 < len(f); i++ {
		if f[i] == "Major:" && f[i+2] == "Minor:" {
			ma, err1 := strconv.ParseUint(f[i+1], 10, 32)
			mi, err2 := strconv.ParseUint(f[i+3], 10, 32)
			if err1 != nil || err2 != nil {
				return HCTL{}, false
			}
			h, err := r.hctlOfDevNum("block", uint32(ma), uint32(mi), dir)
			return h, err == nil
		}
	}
	return HCTL{}, false
}

func sortLUNDirs(dirs []string) {
	key := func(s string) uint64 {
		n, err := strconv.ParseUint(strings.TrimPrefix(filepath.Base(s), "lun_"), 10, 64)
		if err != nil {
			return 1<<64 - 1
		}
		return n
	}
	sort.SliceStable(dirs, func(i, j int) bool {
		ki, kj := key(dirs[i]), key(dirs[j])
		if ki != kj {
			return ki < kj
		}
		return dirs[i] < dirs[j]
	})
}

// checkLIO looks for what xen-scsiback will look for when it reads a
// p-dev "<name>:<lun>": a xen-pvscsi TPG whose port name (or, if byAlias,
// whose param/alias) is name, with an LIO LUN lun_<lun>. It only advises:
// without the fabric in configfs (a dry run on another host, a backend in
// a driver domain) it says nothing, and a miss is a note, not an error,
// because LIO may be set up after the config is written.
func (r *Resolver) checkLIO(name string, lun uint64, byAlias bool) []string {
	fabric := filepath.Join(r.configfs(), "target", "xen-pvscsi")
	if _, err := os.Stat(fabric); err != nil {
		return nil
	}
	var tpgs []string
	if byAlias {
		all, _ := filepath.Glob(filepath.Join(fabric, "naa.*", "tpgt_*"))
		for _, tpg := range all {
			b, err := os.ReadFile(filepath.Join(tpg, "param", "alias"))
			if err == nil && strings.TrimSpace(string(b)) == name {
				tpgs = append(tpgs, tpg)
			}
		}
	} else {
		tpgs, _ = filepath.Glob(filepath.Join(fabric, name, "tpgt_*"))
	}
	lunDir := "lun_" + strconv.FormatUint(lun, 10)
	for _, tpg := range tpgs {
		if _, err := os.Stat(filepath.Join(tpg, "lun", lunDir)); err == nil {
			return nil
		}
	}
	pdev := name + ":" + strconv.FormatUint(lun, 10)
	switch {
	case len(tpgs) == 0 && byAlias:
		return []string{fmt.Sprintf("no TPG under %s has param/alias %s; xen-scsiback will not find p-dev %s until one does", fabric, name, pdev)}
	case len(tpgs) == 0:
		return []string{fmt.Sprintf("no target port %s; xen-scsiback will not find p-dev %s until it exists", filepath.Join(fabric, name), pdev)}
	}
	return []string{fmt.Sprintf("%s has no %s; xen-scsiback will not find p-dev %s until it exists", filepath.Join(tpgs[0], "lun"), lunDir, pdev)}
}
