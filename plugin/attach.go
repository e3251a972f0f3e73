package plugin

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/govscsi/govscsi/cfgparse"
	"github.com/govscsi/govscsi/hotplug"
	"github.com/govscsi/govscsi/libxlgo/xenif"
)

// Result describes what a writing operation did (or, with
// Options.DryRun, would do).
type Result struct {
	Domid uint32
	// Created lists the vhost devids this operation created.
	Created []int `json:",omitempty"`
	// Added lists the devices added to vhosts (new or existing).
	Added []AddedDev `json:",omitempty"`
	// Already lists the entries Apply skipped because the domain already
	// has them (same vdev, same p-dev): Apply is idempotent.
	Already []AddedDev `json:",omitempty"`
	// Pending is set when devices were written to a vhost whose backend
	// is still in InitWait (no frontend yet): they connect together with
	// the vhost, so the operation did not wait for them.
	Pending bool `json:",omitempty"`
	// Waits lists, with Options.DeferConnect, the vhosts and devices that
	// were written but not yet waited for; see WaitConnected.
	Waits []PendingVHost `json:",omitempty"`
	// Writes and Removes are the xenstore changes in order (Writes first).
	Writes  []cfgparse.Write `json:"-"`
	Removes []string         `json:",omitempty"`
	// Warnings from parsing and resolving specs.
	Warnings []string `json:",omitempty"`
}

// PendingVHost is a vhost (and devices of it) an operation wrote without
// waiting for them to connect (Options.DeferConnect).
type PendingVHost struct {
	VHost int
	Devs  []cfgparse.VHostDev
}

// AddedDev is one device written by an operation.
type AddedDev struct {
	VHost int
	Dev   int
	VDev  string
	PDev  string
}

// DeviceError is a device that one of the peers refused: the backend set
// its dev state to 6 (p-dev not found, v-dev already used, ...), or the
// guest did (scsi_add_device failed, scsi_mod.scan=none, ...).
type DeviceError struct {
	Domid  uint32
	VHost  int
	Dev    int
	PDev   string
	VDev   string
	Side   string // "backend" or "frontend"
	Detail string // what the peer wrote (error node), or a hint
}

func (e *DeviceError) Error() string {
	return fmt.Sprintf("domain %d vhost %d dev-%d (p-dev %q, v-dev %s): the %s refused the device (state 6): %s",
		e.Domid, e.VHost, e.Dev, e.PDev, e.VDev, e.Side, e.Detail)
}

// VHostError is a vhost that closed instead of connecting.
type VHostError struct {
	Domid        uint32
	VHost        int
	BackendState int
	FrontState   int
	Detail       string
}

func (e *VHostError) Error() string {
	s := fmt.Sprintf("domain %d vhost %d closed instead of connecting (backend state %d %s, frontend state %d %s)",
		e.Domid, e.VHost, e.BackendState, xenif.StateName(e.BackendState), e.FrontState, xenif.StateName(e.FrontState))
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// ErrBusyVHost is returned when a vhost stays in a transitional state
// (1, 3, 7, 8) for longer than the init timeout.
var ErrBusyVHost = errors.New("vhost busy")

// maxBusyRetries bounds how often an operation waits for another one's
// reconfiguration of the same vhost before giving up.
const maxBusyRetries = 10

// errDry aborts the transaction of a dry run after the writes were recorded.
var errDry = errors.New("dry run")

// Attach adds one device to a running domain, in the manner of
// `xl scsi-attach <Domain> <PhysDevice> <VirtDevice>[,feature-host]`:
// pdev and vdevAndOpts are joined as "pdev,vdev[,opt...]" and parsed as a
// vscsi spec. A new vhost is created if none serves the vdev host number.
func (t *Toolstack) Attach(ctx context.Context, domain, pdev, vdevAndOpts string) (Result, error) {
	if strings.TrimSpace(pdev) == "" {
		return Result{}, invalidArgument(errors.New("empty physical device"))
	}
	spec := pdev + "," + vdevAndOpts
	s, warns, err := cfgparse.ParseSpec(spec)
	if err != nil {
		return Result{}, err
	}
	entries := []cfgparse.Entry{{Origin: cfgparse.Origin{Entry: cfgparse.EntryNone, Spec: spec}, Parsed: s}}
	domid, err := t.DomainID(domain)
	if err != nil {
		return Result{}, err
	}
	return t.applyEntries(ctx, domid, entries, warns, applyMode{deferConnect: t.opt.DeferConnect})
}

// Apply adds every vscsi= entry of an xl domain config to a running
// domain: entries for vdev host numbers the domain has no vhost for yet
// create vhosts, the others are hot-added.
//
// Apply is idempotent: an entry the domain already has (same vdev on a
// vhost of the same backend type, same p-dev as this toolstack would write
// it) is skipped, so applying a config twice writes nothing, and two
// Applys of one config racing (vscsi-autoattach and `xl-vscsi create`)
// both succeed with one set of devices. An attached vdev with another
// p-dev is refused naming both. Skipped devices are not waited for
// (whoever wrote them waits); Result.Already lists them.
func (t *Toolstack) Apply(ctx context.Context, domain, configPath string) (Result, error) {
	return t.applyConfig(ctx, domain, configPath, applyMode{skipAttached: true, deferConnect: t.opt.DeferConnect})
}

// ApplyBeforeRun is Apply for a domain that has not run yet (created,
// restored or received paused, or held: package hold): it waits only for
// the backend side of each new vhost (probed, hotplug script run), as
// Options.DeferConnect does, because the guest's frontend cannot connect
// before the domain runs. Result.Waits lists what WaitConnected can wait
// for once it runs.
func (t *Toolstack) ApplyBeforeRun(ctx context.Context, domain, configPath string) (Result, error) {
	return t.applyConfig(ctx, domain, configPath, applyMode{skipAttached: true, deferConnect: true})
}

// applyMode is how one operation writes and waits.
type applyMode struct {
	// skipAttached leaves out the devices the domain already has (Apply).
	skipAttached bool
	// deferConnect waits for the backend side only (Options.DeferConnect).
	deferConnect bool
}

func (t *Toolstack) applyConfig(ctx context.Context, domain, configPath string, mode applyMode) (Result, error) {
	entries, warns, err := cfgparse.ConfigSpecs(configPath)
	if err != nil {
		return Result{Warnings: warnStrings(warns)}, err
	}
	domid, err := t.DomainID(domain)
	if err != nil {
		return Result{Warnings: warnStrings(warns)}, err
	}
	if len(entries) == 0 {
		return Result{Domid: domid, Warnings: warnStrings(warns)}, nil
	}
	return t.applyEntries(ctx, domid, entries, warns, mode)
}

func warnStrings(ws []cfgparse.Warning) []string {
	var out []string
	for _, w := range ws {
		out = append(out, w.String())
	}
	return out
}

// applyEntries resolves entries and writes them (applyDevices).
func (t *Toolstack) applyEntries(ctx context.Context, domid uint32, entries []cfgparse.Entry, warns []cfgparse.Warning, mode applyMode) (Result, error) {
	res := Result{Domid: domid, Warnings: warnStrings(warns)}
	if err := cfgparse.ValidBackendType(t.opt.BackendType); err != nil {
		return res, fmt.Errorf("options: %w", err)
	}
	if domid == t.opt.BackendDomid {
		return res, fmt.Errorf("domain %d cannot be its own vscsi backend (backend domid %d)", domid, t.opt.BackendDomid)
	}
	r := &cfgparse.Resolver{SysfsRoot: t.opt.SysfsRoot, ConfigfsRoot: t.opt.ConfigfsRoot, Stat: t.opt.Stat}
	if t.opt.HotplugScript != "" && t.opt.Flavour == cfgparse.FlavourKernel {
		// A /dev path without an LIO LUN yet gets the p-dev the hotplug
		// script will create for it (p-devname = the path), written
		// before the backend reads it.
		r.PlanLIO = hotplug.PlannedPDev
	}
	devs, w2, err := r.Devices(entries, t.opt.Flavour)
	res.Warnings = append(res.Warnings, warnStrings(w2)...)
	if err != nil {
		return res, err
	}
	var idx []uint32
	for _, d := range devs {
		idx = append(idx, d.VDev.Host)
	}
	unlock, err := t.lockVHosts(ctx, domid, idx)
	if err != nil {
		return res, err
	}
	defer unlock()
	return t.applyDevices(ctx, domid, devs, res, mode)
}

// existingForGroup reads a domain's vhosts as cfgparse.Group wants them,
// and the first free vhost devid: numeric max over the backend, frontend
// and toolstack directories, + 1 (P31). The states (VHostStatus) are read
// only for the vhosts that devs' vdev host numbers select, the ones the
// operation may add to: see readVHosts.
func (t *Toolstack) existingForGroup(tx xenif.Tx, domid uint32, devs []cfgparse.Device) ([]cfgparse.VHost, map[int]VHostStatus, int, error) {
	hosts := map[int]bool{}
	for _, d := range devs {
		hosts[int(d.VDev.Host)] = true
	}
	vs, err := t.readVHosts(tx, domid, func(index int) bool { return hosts[index] })
	if err != nil {
		return nil, nil, 0, err
	}
	next := 0
	meta, err := dirOpt(t.s, tx, metaRoot(domid))
	if err != nil {
		return nil, nil, 0, err
	}
	for _, id := range numericNames(meta, "") {
		if id >= next {
			next = id + 1
		}
	}
	byID := map[int]VHostStatus{}
	var out []cfgparse.VHost
	for _, v := range vs {
		byID[v.VHost] = v
		if v.VHost >= next {
			next = v.VHost + 1
		}
		if v.Index < 0 {
			continue // a vhost we cannot place (no idx, no device): never hot-add to it
		}
		cv := cfgparse.VHost{DevID: v.VHost, Index: uint32(v.Index), FeatureHost: v.FeatureHost, NextDev: v.NextDev}
		for _, d := range v.Devs {
			h, err := cfgparse.ParseHCTL(d.VDev)
			if err != nil {
				continue
			}
			cv.Devs = append(cv.Devs, cfgparse.VHostDev{ID: d.ID, Device: cfgparse.Device{VDev: h, PDev: d.PDev, PDevName: d.PDevName, FeatureHost: v.FeatureHost}})
		}
		out = append(out, cv)
	}
	return out, byID, next, nil
}

func busyState(s int) bool {
	return s == xenif.StateInitialising || s == xenif.StateInitialised || s == xenif.StateReconfiguring || s == xenif.StateReconfigured
}

type busyError struct{ vhost int }

func (b busyError) Error() string { return fmt.Sprintf("vhost %d busy", b.vhost) }

// applyDevices writes devs (already resolved) to the domain: new vhosts
// and hot-adds in one transaction, then waits for every vhost and device
// to connect. On failure it rolls back everything it wrote (see rollback).
// With mode.skipAttached, devs the domain already has are left out first
// (skipAttachedDevs), inside the transaction, so a racing writer's devices
// count.
func (t *Toolstack) applyDevices(ctx context.Context, domid uint32, devs []cfgparse.Device, res Result, mode applyMode) (Result, error) {
	d := t.domains(domid)
	if alive, err := t.domainAlive(domid); err != nil || !alive {
		if err == nil {
			err = fmt.Errorf("domain %d: %w", domid, ErrNoDomain)
		}
		return res, err
	}
	var (
		plan   cfgparse.Plan
		states map[int]VHostStatus
		// made: the directories above the written nodes that did not
		// exist before this operation's transaction (xenstore creates
		// missing parents with a write); a rollback removes them again
		// once empty, so the tree is left as found.
		made []string
	)
	for attempt := 0; ; attempt++ {
		if attempt == maxBusyRetries {
			return res, fmt.Errorf("domain %d: %w: its vhosts kept being reconfigured by someone else (%d attempts)", domid, ErrBusyVHost, attempt)
		}
		var busy *busyError
		err := xenif.Transact(t.s, 20, func(tx xenif.Tx) error {
			res.Writes, res.Removes, res.Created, res.Added, res.Already, res.Pending = nil, nil, nil, nil, nil, false
			existing, byID, next, err := t.existingForGroup(tx, domid, devs)
			if err != nil {
				return err
			}
			states = byID
			todo := devs
			if mode.skipAttached {
				if todo, res.Already, err = skipAttachedDevs(devs, existing, byID, d.BackendType()); err != nil {
					return err
				}
			}
			plan, err = cfgparse.Group(todo, existing, next)
			if err != nil {
				return err
			}
			ws := cfgparse.RenderCreate(d, plan.Create)
			for _, v := range plan.Create {
				for _, p := range []string{cfgparse.BackendPath(d, v.DevID), cfgparse.FrontendPath(d, v.DevID)} {
					if _, err := t.s.Read(tx, p); err == nil {
						return fmt.Errorf("vhost %d of domain %d: %s already exists", v.DevID, domid, p)
					}
				}
				res.Created = append(res.Created, v.DevID)
				for _, dv := range v.Devs {
					res.Added = append(res.Added, AddedDev{VHost: v.DevID, Dev: dv.ID, VDev: dv.VDev.String(), PDev: dv.PDev})
				}
				ws = append(ws, metaWrites(domid, v.DevID, int(v.Index), v.NextDev)...)
			}
			for _, a := range plan.Add {
				st := byID[a.VHost].BackendState
				if ty := byID[a.VHost].BackendType; ty != d.BackendType() {
					return fmt.Errorf("vhost %d of domain %d (vdev host %d) is served by backend type %q, but this toolstack writes %q (flavour %s): use the flavour of that backend, or another vdev host number",
						a.VHost, domid, byID[a.VHost].Index, ty, d.BackendType(), t.opt.Flavour)
				}
				hw := cfgparse.RenderHotAdd(d, a.VHost, a.Devs)
				switch {
				case st == xenif.StateConnected && t.opt.HotplugScript != "" && !t.opt.DryRun:
					// Reconfiguring only after the hotplug script has
					// prepared the new devices (hotAddHotplug).
					hw = hw[:len(hw)-1]
				case st == xenif.StateConnected:
				case st == xenif.StateInitWait:
					hw = hw[:len(hw)-1] // no Reconfiguring: picked up when the frontend connects
					res.Pending = true
				case busyState(st):
					busy = &busyError{a.VHost}
					return *busy
				default:
					return fmt.Errorf("vhost %d of domain %d is in state %d (%s): devices can only be added to a vhost in state 2 or 4; destroy-vhost and attach again",
						a.VHost, domid, st, xenif.StateName(st))
				}
				ws = append(ws, hw...)
				for _, dv := range a.Devs {
					res.Added = append(res.Added, AddedDev{VHost: a.VHost, Dev: dv.ID, VDev: dv.VDev.String(), PDev: dv.PDev})
				}
				for _, ex := range plan.Existing {
					if ex.DevID == a.VHost {
						ws = append(ws, metaWrites(domid, a.VHost, int(ex.Index), ex.NextDev)...)
					}
				}
			}
			res.Writes = ws
			if t.opt.DryRun {
				return errDry
			}
			if made, err = missingParents(t.s, tx, ws); err != nil {
				return err
			}
			return t.applyWrites(tx, ws)
		})
		if errors.Is(err, errDry) {
			return res, nil
		}
		if busy != nil && errors.As(err, new(busyError)) {
			if werr := t.waitNotBusy(ctx, domid, busy.vhost); werr != nil {
				return res, werr
			}
			continue
		}
		if err != nil {
			return res, err
		}
		break
	}
	t.opt.Logger.Debug("vscsi devices written", "domid", domid, "created", res.Created, "added", len(res.Added))

	// Wait for every new vhost, then for every hot-add to a connected vhost.
	// With DeferConnect only the backend's side is waited for here.
	var werr error
	for _, v := range plan.Create {
		if mode.deferConnect {
			if werr = t.waitProbed(ctx, domid, v); werr != nil {
				break
			}
			res.Waits = append(res.Waits, PendingVHost{VHost: v.DevID, Devs: v.Devs})
			continue
		}
		if werr = t.waitCreated(ctx, domid, v); werr != nil {
			break
		}
	}
	if werr == nil {
		for _, a := range plan.Add {
			if werr = t.hotAddHotplug(ctx, domid, a.VHost, states[a.VHost].BackendState); werr != nil {
				break
			}
			if states[a.VHost].BackendState != xenif.StateConnected {
				continue
			}
			if mode.deferConnect {
				res.Waits = append(res.Waits, PendingVHost{VHost: a.VHost, Devs: a.Devs})
				continue
			}
			if werr = t.waitDevs(ctx, domid, a.VHost, a.Devs, "the new devices"); werr != nil {
				break
			}
		}
	}
	if werr != nil {
		if t.opt.CancelKeepsDevices && errors.Is(werr, context.Canceled) {
			// A daemon stopping (vscsi-autoattach): what the guest may
			// already be connecting stays; the next run leaves it alone.
			return res, fmt.Errorf("%w: stopped while waiting; the devices written stay", werr)
		}
		if rerr := t.rollback(domid, plan, states, made); rerr != nil {
			werr = fmt.Errorf("%w (and rolling back failed: %v)", werr, rerr)
		}
		return res, werr
	}
	return res, nil
}

// AttachedConflictError is an Apply entry whose vdev the domain already
// has with another p-dev (or in a state that is not a live device).
type AttachedConflictError struct {
	cfgparse.Origin
	VDev         string
	PDev         string // the entry's p-dev, as this toolstack writes it
	VHost        int
	Dev          int
	AttachedPDev string
	Detail       string
}

func (e *AttachedConflictError) Error() string {
	return fmt.Sprintf("%s: vdev %s: p-dev %q, but the domain already has dev-%d of vhost %d at that vdev with p-dev %q%s",
		e.Origin, e.VDev, e.PDev, e.Dev, e.VHost, e.AttachedPDev, e.Detail)
}

// skipAttachedDevs drops from devs those the domain already has: same
// vdev (host number = the vhost's idx, channel, target, LUN) on a vhost of
// backend type typ, same feature-host, and the same p-dev as this
// toolstack would write (Device.PDev, resolved for the flavour in use).
// The same vdev with another p-dev, or the same p-dev on a device that is
// being removed or was refused (dev state 5 or 6) or on a vhost that is
// closing, is an *AttachedConflictError (all of them, joined). Anything
// else (another backend type, another feature-host, a vdev the config
// itself names twice) is left for Group and the hot-add checks to refuse
// with their own messages.
func skipAttachedDevs(devs []cfgparse.Device, existing []cfgparse.VHost, byID map[int]VHostStatus, typ string) ([]cfgparse.Device, []AddedDev, error) {
	byIndex := map[uint32]cfgparse.VHost{}
	for _, v := range existing {
		byIndex[v.Index] = v
	}
	var (
		keep    []cfgparse.Device
		skip    []AddedDev
		errs    []error
		skipped = map[cfgparse.HCTL]bool{}
	)
	for _, dv := range devs {
		v, ok := byIndex[dv.VDev.Host]
		if !ok || byID[v.DevID].BackendType != typ || v.FeatureHost != dv.FeatureHost || skipped[dv.VDev] {
			// skipped: the config names this vdev twice; Group says so,
			// as it would have on the first apply.
			keep = append(keep, dv)
			continue
		}
		var at *cfgparse.VHostDev
		for i := range v.Devs {
			e := &v.Devs[i]
			if e.VDev.Channel == dv.VDev.Channel && e.VDev.Target == dv.VDev.Target && e.VDev.LUN == dv.VDev.LUN {
				at = e
				break
			}
		}
		if at == nil {
			keep = append(keep, dv)
			continue
		}
		ce := &AttachedConflictError{Origin: dv.Origin, VDev: dv.VDev.String(), PDev: dv.PDev, VHost: v.DevID, Dev: at.ID, AttachedPDev: at.PDev}
		if at.PDev != dv.PDev {
			ce.Detail = ": detach it first, or use another vdev"
			errs = append(errs, ce)
			continue
		}
		st := 0
		for _, ds := range byID[v.DevID].Devs {
			if ds.ID == at.ID {
				st = ds.BackendState
			}
		}
		if st == xenif.StateClosing || st == xenif.StateClosed {
			ce.Detail = fmt.Sprintf(" in state %d (%s): it is being removed or was refused; detach it first", st, xenif.StateName(st))
			errs = append(errs, ce)
			continue
		}
		if vs := byID[v.DevID].BackendState; vs == xenif.StateClosing || vs == xenif.StateClosed {
			ce.Detail = fmt.Sprintf(", and the vhost is in state %d (%s): it is being destroyed", vs, xenif.StateName(vs))
			errs = append(errs, ce)
			continue
		}
		skipped[dv.VDev] = true
		skip = append(skip, AddedDev{VHost: v.DevID, Dev: at.ID, VDev: dv.VDev.String(), PDev: dv.PDev})
	}
	return keep, skip, errors.Join(errs...)
}

// metaWrites are the toolstack's own per-vhost nodes (metaPath).
func metaWrites(domid uint32, vhost, index, next int) []cfgparse.Write {
	p := metaPath(domid, vhost)
	n0 := xenif.Perms{{Domid: 0, Bits: xenif.PermNone}}
	return []cfgparse.Write{
		{Path: p + "/idx", Value: strconv.Itoa(index), Perms: n0},
		{Path: p + "/next_vscsidev_id", Value: strconv.Itoa(next), Perms: n0},
	}
}

// applyWrites performs ws inside tx: a dir is created and chmod'ed (so the
// nodes written under it inherit its permissions), a node is written.
func (t *Toolstack) applyWrites(tx xenif.Tx, ws []cfgparse.Write) error {
	for _, w := range ws {
		if w.Kind == cfgparse.KindDir {
			if err := t.s.Mkdir(tx, w.Path); err != nil {
				return err
			}
			if err := t.s.SetPerms(tx, w.Path, w.Perms); err != nil {
				return err
			}
			continue
		}
		if err := t.s.Write(tx, w.Path, w.Value); err != nil {
			return err
		}
	}
	return nil
}

// hotAddHotplug runs the hotplug script's add for devices just written to
// an existing vhost (the script prepares their backing, e.g. creates the
// LIO LUN of a planned p-dev), then, for a connected vhost, writes the
// backend state 7 (Reconfiguring) that applyDevices held back, so the
// backend reads the new p-devs only once they exist. Without a script it
// does nothing.
func (t *Toolstack) hotAddHotplug(ctx context.Context, domid uint32, vhost, prevState int) error {
	if t.opt.HotplugScript == "" {
		return nil
	}
	d := t.vhostDomains(xenif.NoTx, domid, vhost)
	if err := t.runHotplug(ctx, d, vhost, "add"); err != nil {
		return err
	}
	if prevState != xenif.StateConnected {
		return nil
	}
	be := cfgparse.BackendPath(d, vhost)
	return xenif.Transact(t.s, 20, func(tx xenif.Tx) error {
		st, _, err := readInt(t.s, tx, be+"/state")
		if err != nil || st != xenif.StateConnected {
			// The script already asked for a rescan (7), or the vhost
			// is closing: waitDevs reports what happens next.
			return err
		}
		return t.s.Write(tx, be+"/state", strconv.Itoa(xenif.StateReconfiguring))
	})
}

// waitNotBusy waits (init timeout) until a vhost's backend leaves the
// transitional states 1, 3, 7 and 8 (P30: another reconfiguration is in
// flight; retry after it).
func (t *Toolstack) waitNotBusy(ctx context.Context, domid uint32, vhost int) error {
	ctx, cancel := context.WithTimeout(ctx, t.opt.InitTimeout)
	defer cancel()
	d := t.vhostDomains(xenif.NoTx, domid, vhost)
	be := cfgparse.BackendPath(d, vhost)
	err := t.waitUntil(ctx, fmt.Sprintf("vhost %d of domain %d to finish its current reconfiguration", vhost, domid),
		[]string{be, cfgparse.FrontendPath(d, vhost)}, func() (bool, string, error) {
			if ok, err := t.domainAlive(domid); err != nil || !ok {
				return false, "", orGone(err, domid)
			}
			st, _, err := readInt(t.s, xenif.NoTx, be+"/state")
			return !busyState(st), fmt.Sprintf("backend state %d %s", st, xenif.StateName(st)), err
		})
	if errors.Is(err, ErrTimeout) {
		return fmt.Errorf("%w: %w", ErrBusyVHost, err)
	}
	return err
}

func orGone(err error, domid uint32) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("domain %d: %w", domid, errDomainGone)
}

// WaitConnected waits for what an operation run with DeferConnect wrote
// (Result.Waits): each vhost Connected with each of its devices connected
// on both sides, with the init timeout per vhost. Call it once the guest
// runs. On failure nothing is rolled back: the caller (xl-vscsi create)
// destroys the domain, and Cleanup removes its trees.
func (t *Toolstack) WaitConnected(ctx context.Context, domid uint32, waits []PendingVHost) error {
	for _, w := range waits {
		if err := t.waitDevs(ctx, domid, w.VHost, w.Devs, "its devices"); err != nil {
			return err
		}
	}
	return nil
}

// waitProbed waits (init timeout) until a new vhost's backend has probed
// it (state InitWait or later), then runs the hotplug script if any. It
// needs no frontend: a paused guest's vhost gets this far.
func (t *Toolstack) waitProbed(ctx context.Context, domid uint32, v cfgparse.VHost) error {
	d := t.domains(domid)
	be, fe := cfgparse.BackendPath(d, v.DevID), cfgparse.FrontendPath(d, v.DevID)
	c, cancel := context.WithTimeout(ctx, t.opt.InitTimeout)
	err := t.waitUntil(c, fmt.Sprintf("the backend of vhost %d of domain %d to probe it", v.DevID, domid), []string{be, fe}, func() (bool, string, error) {
		if ok, err := t.domainAlive(domid); err != nil || !ok {
			return false, "", orGone(err, domid)
		}
		st, _, err := readInt(t.s, xenif.NoTx, be+"/state")
		if st == xenif.StateClosing || st == xenif.StateClosed {
			return false, "", &VHostError{Domid: domid, VHost: v.DevID, BackendState: st, Detail: t.errorNode(xenif.NoTx, domid, v.DevID)}
		}
		return st >= xenif.StateInitWait, fmt.Sprintf("backend state %d %s: is the vscsi backend running?", st, xenif.StateName(st)), err
	})
	cancel()
	if err != nil {
		return err
	}
	if t.opt.HotplugScript != "" {
		return t.runHotplug(ctx, d, v.DevID, "add")
	}
	return nil
}

// waitCreated waits for a new vhost: backend InitWait (then the hotplug
// script, if any), then backend Connected with every device connected on
// both sides. Each phase has its own init timeout, as in libxl.
func (t *Toolstack) waitCreated(ctx context.Context, domid uint32, v cfgparse.VHost) error {
	// Without a script nothing has to happen at InitWait: waitDevs covers
	// the probe too.
	if t.opt.HotplugScript != "" {
		if err := t.waitProbed(ctx, domid, v); err != nil {
			return err
		}
	}
	return t.waitDevs(ctx, domid, v.DevID, v.Devs, "it")
}

// waitDevs waits (init timeout) until the vhost is Connected and each of
// devs is in state 4 in the backend and in the frontend. A device in state
// 6 on either side, the vhost closing, or the domain vanishing end the
// wait with an error naming the culprit.
func (t *Toolstack) waitDevs(ctx context.Context, domid uint32, vhost int, devs []cfgparse.VHostDev, what string) error {
	ctx, cancel := context.WithTimeout(ctx, t.opt.InitTimeout)
	defer cancel()
	d := t.vhostDomains(xenif.NoTx, domid, vhost)
	be, fe := cfgparse.BackendPath(d, vhost), cfgparse.FrontendPath(d, vhost)
	desc := fmt.Sprintf("vhost %d of domain %d and %s to connect", vhost, domid, what)
	return t.waitUntil(ctx, desc, []string{be, fe}, func() (bool, string, error) {
		if ok, err := t.domainAlive(domid); err != nil || !ok {
			return false, "", orGone(err, domid)
		}
		bs, _, err := readInt(t.s, xenif.NoTx, be+"/state")
		if err != nil {
			return false, "", err
		}
		fs, _, err := readInt(t.s, xenif.NoTx, fe+"/state")
		if err != nil {
			return false, "", err
		}
		if bs == xenif.StateClosing || bs == xenif.StateClosed || fs == xenif.StateClosing || fs == xenif.StateClosed {
			return false, "", &VHostError{Domid: domid, VHost: vhost, BackendState: bs, FrontState: fs, Detail: t.errorNode(xenif.NoTx, domid, vhost)}
		}
		var sb strings.Builder
		fmt.Fprintf(&sb, "backend state %d %s, frontend state %d %s", bs, xenif.StateName(bs), fs, xenif.StateName(fs))
		done := bs == xenif.StateConnected
		for _, dv := range devs {
			dp := be + "/vscsi-devs/dev-" + strconv.Itoa(dv.ID)
			ds, _, err := readInt(t.s, xenif.NoTx, dp+"/state")
			if err != nil {
				return false, "", err
			}
			fds, _, err := readInt(t.s, xenif.NoTx, fe+"/vscsi-devs/dev-"+strconv.Itoa(dv.ID)+"/state")
			if err != nil {
				return false, "", err
			}
			de := &DeviceError{Domid: domid, VHost: vhost, Dev: dv.ID, PDev: dv.PDev, VDev: dv.VDev.String()}
			if ds == xenif.StateClosed {
				de.Side = "backend"
				de.Detail, _ = readOpt(t.s, xenif.NoTx, dp+"/error")
				if de.Detail == "" {
					de.Detail = t.errorNode(xenif.NoTx, domid, vhost)
				}
				if de.Detail == "" {
					de.Detail = "p-dev not found or not usable by the backend, or v-dev already in use"
				}
				return false, "", de
			}
			if fds == xenif.StateClosed {
				de.Side = "frontend"
				de.Detail = "the guest could not add the LUN (is it booted with scsi_mod.scan=none?)"
				return false, "", de
			}
			if fs == xenif.StateConnected && ds == xenif.StateConnected && fds == xenif.StateUnknown {
				// A resumed frontend (restore, migration): it kept the
				// LUN across the save and its READD pass skipped it
				// (docs/host-integration.md, "Resume").
				if err := t.markReadded(fe, dv.ID); err != nil {
					return false, "", err
				}
				fds = xenif.StateConnected
			}
			fmt.Fprintf(&sb, ", dev-%d %d/%d", dv.ID, ds, fds)
			if ds != xenif.StateConnected || fds != xenif.StateConnected {
				done = false
			}
		}
		if bs == xenif.StateInitWait && fs < xenif.StateInitialised {
			sb.WriteString(": the frontend has not connected; is xen-scsifront loaded in the guest?")
		} else if bs < xenif.StateInitWait {
			sb.WriteString(": the backend has not probed the vhost; is the vscsi backend running?")
		}
		return done, sb.String(), nil
	})
}

// markReadded writes frontend dev-N/state 4 for a device the guest's
// frontend kept across a suspend and resume, as Linux scsifront's READD
// pass does for LUNs whose backend state is already 4 when the backend
// connects. The backend only reaches 4 after the frontend connected (its
// UPDATEDEV pass), so READD never sees 4 and writes nothing: the LUN works
// in the guest, but the trees would say the guest never took it, and every
// wait for it would time out. The write happens only while the frontend
// directory exists and the node is still missing.
func (t *Toolstack) markReadded(fe string, dev int) error {
	p := fe + "/vscsi-devs/dev-" + strconv.Itoa(dev) + "/state"
	return xenif.Transact(t.s, 20, func(tx xenif.Tx) error {
		if _, err := t.s.Read(tx, fe); err != nil {
			return err
		}
		if _, err := t.s.Read(tx, p); err == nil || !errors.Is(err, syscall.ENOENT) {
			return err
		}
		return t.s.Write(tx, p, strconv.Itoa(xenif.StateConnected))
	})
}

// rollback undoes a failed applyDevices, with fresh timeouts (the
// operation's own context may be what ran out):
//   - every vhost the operation created is destroyed (destroyVHost; forced
//     straight away when its frontend never connected or the domain is gone);
//   - every device it added to an existing vhost is removed: gracefully
//     (state 5 + Reconfiguring, as a detach) if the backend holds it
//     (dev state 3 or 4), otherwise its nodes are just deleted; a backend
//     state 7 the peers never reacted to is set back to 4;
//   - the toolstack counters are left as they are: ids are never reused;
//   - the directories the operation's writes created above their nodes
//     (made, from missingParents: /local/domain/0/backend/<type>, /libxl/
//     <domid> ...) are removed again if empty, deepest first, so a failed
//     operation leaves the tree as it found it.
func (t *Toolstack) rollback(domid uint32, plan cfgparse.Plan, states map[int]VHostStatus, made []string) error {
	var errs []error
	for _, v := range plan.Create {
		if err := t.destroyVHost(context.Background(), domid, v.DevID, false); err != nil {
			errs = append(errs, err)
		}
	}
	for _, a := range plan.Add {
		ids := make([]int, 0, len(a.Devs))
		for _, dv := range a.Devs {
			ids = append(ids, dv.ID)
		}
		sort.Ints(ids)
		if err := t.removeDevs(context.Background(), domid, a.VHost, ids, states[a.VHost].BackendState); err != nil {
			errs = append(errs, err)
		}
	}
	if len(made) > 0 {
		if err := xenif.Transact(t.s, 20, func(tx xenif.Tx) error {
			for _, p := range made {
				if err := rmIfEmpty(t.s, tx, p); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			errs = append(errs, fmt.Errorf("removing the directories the attach created: %w", err))
		}
	}
	return errors.Join(errs...)
}

// missingParents lists, deepest first, the directories above the nodes ws
// writes that do not exist in tx yet (each ancestor checked once; the
// root's children such as /local are never counted).
func missingParents(s xenif.Store, tx xenif.Tx, ws []cfgparse.Write) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, w := range ws {
		for p := path.Dir(w.Path); strings.Count(p, "/") > 1 && !seen[p]; p = path.Dir(p) {
			seen[p] = true
			_, err := s.Read(tx, p)
			if err == nil {
				break // its parents exist too
			}
			if !errors.Is(err, syscall.ENOENT) {
				return nil, err
			}
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return strings.Count(out[i], "/") > strings.Count(out[j], "/") })
	return out, nil
}
