package hotplug

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/govscsi/govscsi/cfgparse"
	"github.com/govscsi/govscsi/libxlgo/xenif"
	"github.com/hashicorp/go-hclog"
)

// Flavour is the backend whose needs add prepares.
type Flavour string

const (
	// FlavourKernel is Linux xen-scsiback: each p-dev must name an LIO
	// xen-pvscsi LUN; add creates the LUN from p-devname when missing.
	FlavourKernel Flavour = "kernel"
	// FlavourHCTL is the classic xenlinux scsiback: p-dev is a host
	// h:c:t:l, checked against sysfs (and against p-devname, P9).
	FlavourHCTL Flavour = "hctl"
	// FlavourUserspace is govscsi's own backend, which opens p-dev
	// itself: nothing to prepare.
	FlavourUserspace Flavour = "userspace"
)

// ParseFlavour checks a flavour name.
func ParseFlavour(s string) (Flavour, error) {
	switch f := Flavour(s); f {
	case FlavourKernel, FlavourHCTL, FlavourUserspace:
		return f, nil
	}
	return "", fmt.Errorf("unknown flavour %q: want kernel, hctl or userspace", s)
}

// DefaultLockTimeout is below libxl's 40 s hotplug timeout, so a run that
// cannot get the lock reports that instead of being killed.
const DefaultLockTimeout = 30 * time.Second

// Runner runs the hotplug actions.
type Runner struct {
	Store    xenif.Store
	Flavour  Flavour // default kernel
	LIO      *LIO    // flavour kernel
	Resolver *cfgparse.Resolver
	// StateDir holds the records and the lock (DefaultStateDir).
	StateDir    string
	LockTimeout time.Duration
	Logger      hclog.Logger
}

func (r *Runner) stateDir() string {
	if r.StateDir == "" {
		return DefaultStateDir
	}
	return r.StateDir
}

func (r *Runner) log() hclog.Logger {
	if r.Logger == nil {
		return hclog.NewNullLogger()
	}
	return r.Logger
}

// udevGuardKeys: when udev runs the script and one of these nodes exists,
// another program runs it (see docs/hotplug.md). libxl/disable_udev is the
// key Xen's own scripts honoured until Xen 4.6 (libxl no longer writes it,
// commit 2ba368d138); govscsi/disable_udev is ours, for hosts where
// xl-vscsi runs the script and the udev rule is installed as well.
var udevGuardKeys = []string{"libxl/disable_udev", "govscsi/disable_udev"}

// Run performs inv. A nil error means success (or a run the udev guard
// skipped). A failed add has written hotplug-error and hotplug-status =
// error under the backend path when that path exists; remove never fails
// because of teardown problems (they are logged, as libxl ignores a
// failing remove), only for a broken invocation or environment.
func (r *Runner) Run(ctx context.Context, inv Invocation) error {
	lg := r.log().With("action", inv.Action, "XENBUS_PATH", inv.XenbusPath)
	if inv.UdevCall {
		for _, k := range udevGuardKeys {
			if _, err := r.Store.Read(xenif.NoTx, k); err == nil {
				lg.Debug("run by udev but another program runs vscsi hotplug scripts; nothing to do", "key", k)
				return nil
			}
		}
	}
	switch inv.Action {
	case "add":
		err := r.add(ctx, inv.Backend, lg)
		if err != nil {
			lg.Error("add failed", "error", err)
			if werr := r.reportError(inv.Backend, err); werr != nil {
				lg.Error("cannot report the error in xenstore", "error", werr)
			}
			return err
		}
		lg.Info("connected")
		return nil
	case "remove":
		return r.remove(inv.Backend, lg)
	}
	return &UsageError{fmt.Sprintf("unknown command %q", inv.Action)}
}

// ErrNoBackend: XENBUS_PATH names no xenstore node.
var ErrNoBackend = errors.New("backend path does not exist in xenstore")

// reportError writes hotplug-error and hotplug-status=error, but only
// if the backend directory exists: writing would otherwise create it, and
// a backend/vscsi node makes the kernel probe a device (P3).
func (r *Runner) reportError(b BackendRef, cause error) error {
	msg := cause.Error()
	if len(msg) > 1024 {
		msg = msg[:1021] + "..."
	}
	be := b.Path()
	return xenif.Transact(r.Store, 5, func(tx xenif.Tx) error {
		if _, err := r.Store.Read(tx, be); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := r.Store.Write(tx, be+"/hotplug-error", msg); err != nil {
			return err
		}
		return r.Store.Write(tx, be+"/hotplug-status", "error")
	})
}

// devInfo is one dev-N as add sees it.
type devInfo struct {
	name           string // dev-N
	pdev, pdevname string
	state          int
}

func (r *Runner) readDevs(be string) ([]devInfo, error) {
	names, err := r.Store.Directory(xenif.NoTx, be+"/vscsi-devs")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // a vhost may have no devices
	}
	if err != nil {
		return nil, err
	}
	var out []devInfo
	for _, n := range names {
		id, err := strconv.Atoi(strings.TrimPrefix(n, "dev-"))
		if !strings.HasPrefix(n, "dev-") || err != nil || id < 0 {
			continue // not a device (and not ours to judge)
		}
		dp := be + "/vscsi-devs/" + n
		d := devInfo{name: n}
		if s, err := r.Store.Read(xenif.NoTx, dp+"/state"); err == nil {
			d.state, _ = strconv.Atoi(s)
		}
		d.pdev, err = readOpt(r.Store, dp+"/p-dev")
		if err != nil {
			return nil, err
		}
		if d.pdevname, err = readOpt(r.Store, dp+"/p-devname"); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool {
		a, _ := strconv.Atoi(strings.TrimPrefix(out[i].name, "dev-"))
		b, _ := strconv.Atoi(strings.TrimPrefix(out[j].name, "dev-"))
		return a < b
	})
	return out, nil
}

func readOpt(s xenif.Store, p string) (string, error) {
	v, err := s.Read(xenif.NoTx, p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return v, err
}

// backingForm recognises a p-dev written in the userspace backend's
// "/dev/..." or "file:/..." form; under flavour kernel such a device is
// backed by that path through a new LIO LUN.
func backingForm(pdev string) (string, bool) {
	switch {
	case strings.HasPrefix(pdev, "/"):
		return pdev, true
	case strings.HasPrefix(pdev, "file:/"):
		return strings.TrimPrefix(pdev, "file:"), true
	case strings.HasPrefix(pdev, "block:/"):
		return strings.TrimPrefix(pdev, "block:"), true
	}
	return "", false
}

func (r *Runner) add(ctx context.Context, b BackendRef, lg hclog.Logger) (err error) {
	be := b.Path()
	if _, err := r.Store.Read(xenif.NoTx, be); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: %w", be, ErrNoBackend)
		}
		return err
	}
	timeout := r.LockTimeout
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	unlock, err := lockFile(r.stateDir(), timeout)
	if err != nil {
		return err
	}
	defer unlock()
	devs, err := r.readDevs(be)
	if err != nil {
		return err
	}
	flavour := r.Flavour
	if flavour == "" {
		flavour = FlavourKernel
	}
	if b.Userspace() {
		// A vscsiu vhost is govscsi's userspace backend's, whatever this
		// host's configured flavour (the kernel backend may serve other
		// guests): it opens p-dev itself.
		flavour = FlavourUserspace
	}

	rec, err := loadRecord(r.stateDir(), b)
	if err != nil {
		return err
	}
	rec.XenbusPath = b.Rel()
	// What this run creates, so a failure removes exactly that again.
	var made []Step
	pdevWrites := map[string]string{}
	prepared := map[string]bool{}
	defer func() {
		if err == nil {
			return
		}
		if len(made) > 0 && r.LIO != nil {
			_, _, terrs := r.LIO.Teardown(made)
			for _, te := range terrs {
				lg.Error("rolling back a failed add", "error", te)
			}
		}
		// Forget the rolled-back steps (the record may hold earlier runs').
		drop := map[Step]bool{}
		for _, s := range made {
			drop[s] = true
		}
		for i := range rec.Devs {
			var keep []Step
			for _, s := range rec.Devs[i].Steps {
				if !drop[s] {
					keep = append(keep, s)
				}
			}
			rec.Devs[i].Steps = keep
		}
		if serr := saveRecord(r.stateDir(), b, rec); serr != nil {
			lg.Error("saving the state file", "error", serr)
		}
	}()

	for _, d := range devs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.state == xenif.StateClosing {
			continue // being removed: nothing to prepare
		}
		// A device in state 6 may be one the backend refused because its
		// LUN did not exist yet (it read p-dev before this run): prepare
		// it all the same, then ask the backend to look again (below).
		switch flavour {
		case FlavourUserspace:
			if d.pdev == "" {
				return fmt.Errorf("%s: no p-dev", d.name)
			}
		case FlavourHCTL:
			pdev, err := r.checkHCTL(d)
			if err != nil {
				return fmt.Errorf("%s: %w", d.name, err)
			}
			if pdev != d.pdev {
				pdevWrites[d.name] = pdev
			}
		case FlavourKernel:
			pdev, backing := d.pdev, d.pdevname
			if bf, ok := backingForm(pdev); ok {
				if backing == "" {
					backing = bf
				}
				pdev = ""
			}
			if pdev == "" {
				if backing == "" {
					return fmt.Errorf("%s: no p-dev and no p-devname to create one from", d.name)
				}
				if err := CheckBacking(backing); err != nil {
					return fmt.Errorf("%s: p-devname: %w", d.name, err)
				}
				pdev = PlannedPDev(backing)
				pdevWrites[d.name] = pdev
			}
			if r.LIO == nil {
				return fmt.Errorf("%s: flavour kernel but no LIO configured", d.name)
			}
			idx := -1
			for i := range rec.Devs {
				if rec.Devs[i].Dev == d.name && rec.Devs[i].PDev == pdev {
					idx = i
				}
			}
			if idx < 0 {
				rec.Devs = append(rec.Devs, DevRecord{Dev: d.name, PDev: pdev, Backing: backing})
				idx = len(rec.Devs) - 1
			}
			created, err := r.LIO.Ensure(pdev, backing, func(s Step) error {
				made = append(made, s)
				rec.Devs[idx].Steps = append(rec.Devs[idx].Steps, s)
				return saveRecord(r.stateDir(), b, rec)
			})
			if err != nil {
				return fmt.Errorf("%s: %w", d.name, err)
			}
			if created || pdevWrites[d.name] != "" {
				prepared[d.name] = true
			}
			if created {
				lg.Info("LIO LUN created", "dev", d.name, "p-dev", pdev, "backing", backing)
			} else {
				lg.Debug("LIO LUN already there", "dev", d.name, "p-dev", pdev)
			}
		default:
			return fmt.Errorf("unknown flavour %q", flavour)
		}
	}

	// p-devs filled in, refused devices re-requested, hotplug-status: one
	// transaction that first checks the vhost is still there (writing
	// would recreate it, P3).
	var retried []string
	err = xenif.Transact(r.Store, 10, func(tx xenif.Tx) error {
		retried = retried[:0]
		if _, err := r.Store.Read(tx, be); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%s vanished during add: %w", be, ErrNoBackend)
			}
			return err
		}
		for dev, v := range pdevWrites {
			if err := r.Store.Write(tx, be+"/vscsi-devs/"+dev+"/p-dev", v); err != nil {
				return err
			}
		}
		// The race this covers: the script runs once the backend is in
		// InitWait, but a running guest's frontend is often Initialised
		// already, so xen-scsiback connects at once and refuses (dev
		// state 6) every p-dev whose LUN this run has only now made. For
		// those, do what a toolstack does for a hot-add (protocol.md
		// §3.7): dev state 1 and backend state 7 (Reconfiguring), so the
		// backend reads p-dev again.
		if bs, _ := r.Store.Read(tx, be+"/state"); bs == strconv.Itoa(xenif.StateConnected) {
			for dev := range prepared {
				dp := be + "/vscsi-devs/" + dev + "/state"
				if ds, _ := r.Store.Read(tx, dp); ds != strconv.Itoa(xenif.StateClosed) {
					continue
				}
				if err := r.Store.Write(tx, dp, strconv.Itoa(xenif.StateInitialising)); err != nil {
					return err
				}
				retried = append(retried, dev)
			}
			if len(retried) > 0 {
				if err := r.Store.Write(tx, be+"/state", strconv.Itoa(xenif.StateReconfiguring)); err != nil {
					return err
				}
			}
		}
		if err := r.Store.Rm(tx, be+"/hotplug-error"); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return r.Store.Write(tx, be+"/hotplug-status", "connected")
	})
	if err == nil && len(retried) > 0 {
		sort.Strings(retried)
		lg.Info("the backend refused devices before their LUNs existed; asked it to look again (Reconfiguring)", "devs", strings.Join(retried, ","))
	}
	return err
}

// checkHCTL validates a device for the xenlinux backend: p-dev h:c:t:l
// naming an existing SCSI device; p-devname, if set, must resolve to the
// same one (h:c:t:l numbers change across reboots, P9). An empty p-dev is
// filled in from p-devname.
func (r *Runner) checkHCTL(d devInfo) (string, error) {
	res := r.Resolver
	if res == nil {
		res = &cfgparse.Resolver{}
	}
	pdev := d.pdev
	if d.pdevname != "" {
		h, err := res.HCTLOf(d.pdevname)
		if err != nil {
			return "", fmt.Errorf("p-devname %q: %w", d.pdevname, err)
		}
		if pdev == "" {
			pdev = h.String()
		} else if pdev != h.String() {
			return "", fmt.Errorf("p-dev %q but p-devname %s is now %s (stale h:c:t:l, P9)", pdev, d.pdevname, h)
		}
	}
	if pdev == "" {
		return "", fmt.Errorf("no p-dev and no p-devname")
	}
	h, err := cfgparse.ParseHCTL(pdev)
	if err != nil {
		return "", fmt.Errorf("p-dev %q: %v", pdev, err)
	}
	sys := res.SysfsRoot
	if sys == "" {
		sys = "/sys"
	}
	if _, err := os.Stat(filepath.Join(sys, "bus", "scsi", "devices", h.String())); err != nil {
		return "", fmt.Errorf("p-dev %q: no such SCSI device on this host: %w", pdev, err)
	}
	return pdev, nil
}

// remove tears down what add recorded for the vhost. Devices whose p-dev
// another vhost still uses are handed over to that vhost's record instead.
func (r *Runner) remove(b BackendRef, lg hclog.Logger) error {
	timeout := r.LockTimeout
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	unlock, err := lockFile(r.stateDir(), timeout)
	if err != nil {
		lg.Error("remove: cannot take the lock; nothing removed", "error", err)
		return nil
	}
	defer unlock()
	if b.Userspace() {
		lg.Info("nothing to remove: the userspace backend's vhosts get nothing prepared")
		return nil
	}
	rec, err := loadRecord(r.stateDir(), b)
	if err != nil {
		lg.Error("remove: cannot read the state file; nothing removed", "error", err)
		return nil
	}
	if len(rec.Devs) == 0 {
		lg.Info("nothing to remove: add created nothing for this vhost")
		return nil
	}
	users, scanErr := r.pdevUsers(b)
	if scanErr != nil {
		lg.Warn("remove: cannot check whether other vhosts use the same LUNs; removing anyway", "error", scanErr)
	}
	var keep []DevRecord
	for i := len(rec.Devs) - 1; i >= 0; i-- {
		d := rec.Devs[i]
		if other, ok := users[d.PDev]; ok && len(d.Steps) > 0 {
			if err := r.handOver(other, d); err != nil {
				lg.Error("remove: handing a LUN over to the vhost still using it", "p-dev", d.PDev, "to", other.Rel(), "error", err)
				keep = append(keep, d)
			} else {
				lg.Info("LIO LUN still used by another vhost; it now owns it", "p-dev", d.PDev, "to", other.Rel())
			}
			continue
		}
		if r.LIO == nil {
			keep = append(keep, d)
			continue
		}
		inUse, failed, errs := r.LIO.Teardown(d.Steps)
		if len(inUse) > 0 {
			if to, ok := r.adopt(b, inUse); ok {
				lg.Info("target still holds another vhost's LUN; that vhost now owns it", "to", to.Rel(), "objects", len(inUse))
			} else {
				for _, s := range inUse {
					lg.Info("left in place (in use by objects govscsi did not make)", "op", s.Op, "path", s.Path)
				}
			}
		}
		for _, e := range errs {
			lg.Error("remove: teardown step failed", "dev", d.Dev, "error", e)
		}
		if len(failed) > 0 {
			d.Steps = failed
			keep = append(keep, d)
		} else {
			lg.Info("LIO LUN removed", "dev", d.Dev, "p-dev", d.PDev)
		}
	}
	rec.Devs = keep
	if err := saveRecord(r.stateDir(), b, rec); err != nil {
		lg.Error("remove: saving the state file", "error", err)
	}
	return nil
}

// pdevUsers maps each p-dev used by another vhost of the same backend
// domain (in a state other than Closed) to that vhost.
func (r *Runner) pdevUsers(self BackendRef) (map[string]BackendRef, error) {
	root := "backend/" + self.BackendType()
	if self.Home != "" {
		root = self.Home + "/" + root
	}
	users := map[string]BackendRef{}
	doms, err := r.Store.Directory(xenif.NoTx, root)
	if errors.Is(err, fs.ErrNotExist) {
		return users, nil
	}
	if err != nil {
		return users, err
	}
	for _, ds := range doms {
		vs, _ := r.Store.Directory(xenif.NoTx, root+"/"+ds)
		for _, vstr := range vs {
			ref, err := ParseXenbusPath("backend/" + self.BackendType() + "/" + ds + "/" + vstr)
			if err != nil || (ref.Domid == self.Domid && ref.DevID == self.DevID) {
				continue
			}
			ref.Home = self.Home
			devs, err := r.readDevs(ref.Path())
			if err != nil {
				continue
			}
			for _, d := range devs {
				if d.state != xenif.StateClosed && d.pdev != "" {
					users[d.pdev] = ref
				}
			}
		}
	}
	return users, nil
}

// handOver appends d to another vhost's record.
func (r *Runner) handOver(to BackendRef, d DevRecord) error {
	rec, err := loadRecord(r.stateDir(), to)
	if err != nil {
		return err
	}
	rec.XenbusPath = to.Rel()
	rec.Devs = append(rec.Devs, d)
	return saveRecord(r.stateDir(), to, rec)
}

// adopt hands objects still in use (a target and TPG holding another
// vhost's LUN) to the record whose objects live inside them, so they go
// when that vhost does. It reports the adopting vhost.
func (r *Runner) adopt(self BackendRef, steps []Step) (BackendRef, bool) {
	typ := self.BackendType()
	files, _ := filepath.Glob(filepath.Join(r.stateDir(), typ+"-*-*.json"))
	for _, f := range files {
		ref := BackendRef{Type: self.Type}
		if _, err := fmt.Sscanf(strings.TrimPrefix(filepath.Base(f), typ+"-"), "%d-%d.json", &ref.Domid, &ref.DevID); err != nil {
			continue
		}
		if ref.Domid == self.Domid && ref.DevID == self.DevID {
			continue
		}
		ref.Home = self.Home
		rec, err := loadRecord(r.stateDir(), ref)
		if err != nil {
			continue
		}
		for i, d := range rec.Devs {
			inside := false
			for _, s := range d.Steps {
				for _, u := range steps {
					if strings.HasPrefix(s.Path, u.Path+"/") {
						inside = true
					}
				}
			}
			if !inside {
				continue
			}
			rec.Devs[i].Steps = append(append([]Step(nil), steps...), d.Steps...)
			if saveRecord(r.stateDir(), ref, rec) != nil {
				return ref, false
			}
			return ref, true
		}
	}
	return BackendRef{}, false
}
