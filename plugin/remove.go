package plugin

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"syscall"

	"github.com/govscsi/govscsi/cfgparse"
	"github.com/govscsi/govscsi/libxlgo/xenif"
)

// ErrNoDevice is returned when a detach or destroy names nothing that exists.
var ErrNoDevice = errors.New("no such device")

// Detach removes the device with virtual address vdev ("h:c:t:l", matched
// in full like `xl scsi-detach`) from a running domain.
//
// The vhost stays even when its last device goes (P13): the protocol
// allows a vhost without devices, the guest keeps its SCSI host, and a
// later attach with the same vdev host number reuses it. DestroyVHost
// removes a vhost explicitly.
func (t *Toolstack) Detach(ctx context.Context, domain, vdev string) (Result, error) {
	h, err := cfgparse.ParseHCTL(vdev)
	if err != nil {
		return Result{}, invalidArgument(fmt.Errorf("virtual device %q: %v", vdev, err))
	}
	domid, err := t.DomainID(domain)
	if err != nil {
		return Result{}, err
	}
	res := Result{Domid: domid}
	unlock, err := t.lockVHosts(ctx, domid, []uint32{h.Host})
	if err != nil {
		return res, err
	}
	defer unlock()
	vs, err := t.List(domid)
	if err != nil {
		return res, err
	}
	for _, v := range vs {
		for _, dv := range v.Devs {
			if got, err := cfgparse.ParseHCTL(dv.VDev); err == nil && got == h {
				err := t.detachDev(ctx, domid, v.VHost, dv.ID, &res)
				return res, err
			}
		}
	}
	return res, fmt.Errorf("%s does not exist in domain %d: %w", h, domid, ErrNoDevice)
}

// detachDev removes dev-N of a vhost. On a connected vhost holding the
// device (dev state 3 or 4) it follows the protocol: dev state 5 and
// backend state 7 in one transaction, wait (destroy timeout) for backend 4
// and dev 6, then delete the dev's backend and frontend nodes. Otherwise
// (InitWait, device refused, vhost closed, domain gone) nobody holds the
// device and its nodes are deleted at once.
//
// Timeout: if the dev reached 6 the removal is completed anyway; else the
// dev state and a backend state 7 nobody answered are set back to what
// they were, and the error says so.
func (t *Toolstack) detachDev(ctx context.Context, domid uint32, vhost, id int, res *Result) error {
	d := t.vhostDomains(xenif.NoTx, domid, vhost)
	be, fe := cfgparse.BackendPath(d, vhost), cfgparse.FrontendPath(d, vhost)
	dp := cfgparse.DevPath(d, vhost, id)
	fdp := fe + "/vscsi-devs/dev-" + strconv.Itoa(id)
	removes := []string{dp, fdp}
	var oldDev int
	for attempt := 0; ; attempt++ {
		if attempt == maxBusyRetries {
			return fmt.Errorf("vhost %d of domain %d: %w: kept being reconfigured by someone else", vhost, domid, ErrBusyVHost)
		}
		var graceful, busy bool
		err := xenif.Transact(t.s, 20, func(tx xenif.Tx) error {
			graceful, busy = false, false
			st, _, err := readInt(t.s, tx, be+"/state")
			if err != nil {
				return err
			}
			ds, _, err := readInt(t.s, tx, dp+"/state")
			if err != nil {
				return err
			}
			oldDev = ds
			alive, err := t.domainAlive(domid)
			if err != nil {
				return err
			}
			switch {
			case alive && busyState(st):
				busy = true
				return errDry
			case alive && st == xenif.StateConnected && (ds == xenif.StateInitialised || ds == xenif.StateConnected):
				graceful = true
				ws := cfgparse.RenderHotRemove(d, vhost, []int{id})
				res.Writes = append(res.Writes, ws...)
				if t.opt.DryRun {
					res.Removes = append(res.Removes, removes...)
					return errDry
				}
				return t.applyWrites(tx, ws)
			default:
				res.Removes = append(res.Removes, removes...)
				if t.opt.DryRun {
					return errDry
				}
				return rmAll(t.s, tx, removes...)
			}
		})
		if busy {
			if err := t.waitNotBusy(ctx, domid, vhost); err != nil {
				return err
			}
			continue
		}
		if errors.Is(err, errDry) {
			return nil
		}
		if err != nil || !graceful {
			return err
		}
		break
	}
	c, cancel := context.WithTimeout(ctx, t.opt.DestroyTimeout)
	defer cancel()
	werr := t.waitUntil(c, fmt.Sprintf("vhost %d of domain %d to release dev-%d", vhost, domid, id), []string{be, fe}, func() (bool, string, error) {
		if ok, err := t.domainAlive(domid); err != nil || !ok {
			return true, "", err // the domain is gone: nothing holds the device any more
		}
		st, _, err := readInt(t.s, xenif.NoTx, be+"/state")
		if err != nil {
			return false, "", err
		}
		ds, ok, err := readInt(t.s, xenif.NoTx, dp+"/state")
		if err != nil {
			return false, "", err
		}
		if st == xenif.StateClosing || st == xenif.StateClosed {
			return true, "", nil
		}
		return (st == xenif.StateConnected && ds == xenif.StateClosed) || !ok,
			fmt.Sprintf("backend state %d %s, dev-%d state %d", st, xenif.StateName(st), id, ds), nil
	})
	if werr != nil && errors.Is(werr, ErrTimeout) {
		ds, _, _ := readInt(t.s, xenif.NoTx, dp+"/state")
		if ds != xenif.StateClosed {
			rerr := xenif.Transact(t.s, 20, func(tx xenif.Tx) error {
				if err := t.s.Write(tx, dp+"/state", strconv.Itoa(oldDev)); err != nil {
					return err
				}
				if st, _, err := readInt(t.s, tx, be+"/state"); err == nil && st == xenif.StateReconfiguring {
					return t.s.Write(tx, be+"/state", strconv.Itoa(xenif.StateConnected))
				}
				return nil
			})
			if rerr != nil {
				return fmt.Errorf("%w (restoring dev-%d failed: %v)", werr, id, rerr)
			}
			return fmt.Errorf("%w; dev-%d left attached (state set back to %d)", werr, id, oldDev)
		}
	} else if werr != nil {
		return werr
	}
	res.Removes = append(res.Removes, removes...)
	return xenif.Transact(t.s, 20, func(tx xenif.Tx) error { return rmAll(t.s, tx, removes...) })
}

// removeDevs removes devices a failed hot-add wrote (rollback). A backend
// state 7 left unanswered by the peers (prevState was 4) is set back to 4
// first, so the removal is not stuck behind it.
func (t *Toolstack) removeDevs(ctx context.Context, domid uint32, vhost int, ids []int, prevState int) error {
	d := t.vhostDomains(xenif.NoTx, domid, vhost)
	be := cfgparse.BackendPath(d, vhost)
	if prevState == xenif.StateConnected {
		_ = xenif.Transact(t.s, 20, func(tx xenif.Tx) error {
			if st, _, err := readInt(t.s, tx, be+"/state"); err == nil && st == xenif.StateReconfiguring {
				return t.s.Write(tx, be+"/state", strconv.Itoa(xenif.StateConnected))
			}
			return nil
		})
	}
	var errs []error
	var res Result
	for _, id := range ids {
		if err := t.detachDev(ctx, domid, vhost, id, &res); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// rmAll removes paths (missing ones are fine) inside tx.
func rmAll(s xenif.Store, tx xenif.Tx, paths ...string) error {
	for _, p := range paths {
		if err := s.Rm(tx, p); err != nil && !errors.Is(err, syscall.ENOENT) {
			return err
		}
	}
	return nil
}

// rmIfEmpty removes a directory node that has no children and no value.
func rmIfEmpty(s xenif.Store, tx xenif.Tx, p string) error {
	l, err := s.Directory(tx, p)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return nil
		}
		return err
	}
	if len(l) > 0 {
		return nil
	}
	if v, err := s.Read(tx, p); err != nil || v != "" {
		return nil
	}
	return rmAll(s, tx, p)
}

// DestroyVHost removes a whole vhost (the guest loses its SCSI host and
// every device on it). See destroyVHost for the sequence.
func (t *Toolstack) DestroyVHost(ctx context.Context, domain string, vhost int) (Result, error) {
	domid, err := t.DomainID(domain)
	if err != nil {
		return Result{}, err
	}
	res := Result{Domid: domid}
	vs, err := t.List(domid)
	if err != nil {
		return res, err
	}
	for _, v := range vs {
		if v.VHost != vhost {
			continue
		}
		if v.Index >= 0 {
			unlock, err := t.lockVHosts(ctx, domid, []uint32{uint32(v.Index)})
			if err != nil {
				return res, err
			}
			defer unlock()
		}
		d := t.vhostDomains(xenif.NoTx, domid, vhost)
		err := t.destroyVHost(ctx, domid, vhost, false)
		res.Removes = []string{cfgparse.FrontendPath(d, vhost), cfgparse.BackendPath(d, vhost), metaPath(domid, vhost)}
		if t.opt.DryRun {
			be := cfgparse.BackendPath(d, vhost)
			bp := cfgparse.BackendPerms(d)
			res.Writes = []cfgparse.Write{{Path: be + "/online", Value: "0", Perms: bp}, {Path: be + "/state", Value: "5", Perms: bp}}
		}
		return res, err
	}
	return res, fmt.Errorf("vhost %d does not exist in domain %d: %w", vhost, domid, ErrNoDevice)
}

// destroyVHost follows libxl's generic device removal:
//  1. online=0 and state=5 in one transaction (unless already 6), wait
//     (destroy timeout) for backend state 6: the frontend sees Closing,
//     removes its host and closes, the backend then closes and, online
//     being 0, releases the vhost;
//  2. if that times out, or cannot work because nobody would answer (the
//     frontend never connected, the backend never probed, the domain is
//     gone, or force), the forced path: delete the frontend directory
//     first (the backend reads its peer as gone and tears down), write
//     online=0/state=5 again and wait once more;
//  3. run the hotplug script's remove (errors ignored, as libxl does);
//  4. delete the frontend and backend trees, the toolstack's per-vhost
//     directory, the backend's error node, and the domain-level vscsi
//     directories if they became empty.
func (t *Toolstack) destroyVHost(ctx context.Context, domid uint32, vhost int, force bool) error {
	if t.opt.DryRun {
		return nil
	}
	d := t.vhostDomains(xenif.NoTx, domid, vhost)
	be, fe := cfgparse.BackendPath(d, vhost), cfgparse.FrontendPath(d, vhost)
	st, _, err := readInt(t.s, xenif.NoTx, be+"/state")
	if err != nil {
		return err
	}
	fs, _, err := readInt(t.s, xenif.NoTx, fe+"/state")
	if err != nil {
		return err
	}
	alive, err := t.domainAlive(domid)
	if err != nil {
		return err
	}
	probed := st >= xenif.StateInitWait
	if !alive || fs < xenif.StateInitialised || !probed {
		force = true
	}
	closeBE := func() error {
		return xenif.Transact(t.s, 20, func(tx xenif.Tx) error {
			if _, err := t.s.Read(tx, be); err != nil {
				return nil // gone already
			}
			if err := t.s.Write(tx, be+"/online", "0"); err != nil {
				return err
			}
			if s, _, err := readInt(t.s, tx, be+"/state"); err != nil || s == xenif.StateClosed {
				return err
			}
			return t.s.Write(tx, be+"/state", strconv.Itoa(xenif.StateClosing))
		})
	}
	waitClosed := func() error {
		c, cancel := context.WithTimeout(ctx, t.opt.DestroyTimeout)
		defer cancel()
		return t.waitUntil(c, fmt.Sprintf("the backend to close vhost %d of domain %d", vhost, domid), []string{be}, func() (bool, string, error) {
			s, ok, err := readInt(t.s, xenif.NoTx, be+"/state")
			return !ok || s == xenif.StateClosed, fmt.Sprintf("backend state %d %s", s, xenif.StateName(s)), err
		})
	}
	if !force {
		if err := closeBE(); err != nil {
			return err
		}
		if err := waitClosed(); err != nil {
			if !errors.Is(err, ErrTimeout) {
				return err
			}
			t.opt.Logger.Warn("vhost did not close; removing it by force", "domid", domid, "vhost", vhost, "err", err)
			force = true
		}
	}
	if force {
		if err := xenif.Transact(t.s, 20, func(tx xenif.Tx) error { return rmAll(t.s, tx, fe) }); err != nil {
			return err
		}
		if probed {
			if err := closeBE(); err != nil {
				return err
			}
			if err := waitClosed(); err != nil {
				t.opt.Logger.Warn("backend did not close the vhost; deleting its nodes anyway", "domid", domid, "vhost", vhost, "err", err)
			}
		}
	}
	if probed {
		if err := t.runHotplug(ctx, d, vhost, "remove"); err != nil {
			t.opt.Logger.Warn("hotplug remove failed (ignored)", "err", err)
		}
	}
	errPath := fmt.Sprintf("/local/domain/%d/error/backend/%s/%d/%d", d.Backend, d.BackendType(), domid, vhost)
	return xenif.Transact(t.s, 20, func(tx xenif.Tx) error {
		if err := rmAll(t.s, tx, fe, be, metaPath(domid, vhost), errPath); err != nil {
			return err
		}
		// The domain's directories are removed once empty; with vhosts of
		// another backend type left, device/vscsi stays (it has children).
		// So are the parents of the error node, which a backend creates
		// with it (xenbus_dev_error), domain level first.
		errDom := path.Dir(errPath)
		for _, p := range []string{cfgparse.BackendRoot(d), cfgparse.FrontendRoot(d), metaRoot(domid), errDom, path.Dir(errDom)} {
			if err := rmIfEmpty(t.s, tx, p); err != nil {
				return err
			}
		}
		return nil
	})
}

// Cleanup removes what vscsi left behind for domains that no longer exist
// (P26: xl destroy knows no vscsi device and leaves
// /local/domain/<be>/backend/<type>/<domid>): for every such domid, the
// backend trees of every backend type (vscsi and vscsiu: a guest may have
// vhosts on both backends), the backends' error nodes and the toolstack's
// /libxl/<domid>/vscsi. It returns the domids cleaned.
func (t *Toolstack) Cleanup() ([]uint32, error) {
	types := t.backendTypes()
	root := func(ty string) string { return fmt.Sprintf("/local/domain/%d/backend/%s", t.opt.BackendDomid, ty) }
	var cleaned []uint32
	err := xenif.Transact(t.s, 20, func(tx xenif.Tx) error {
		cleaned = nil
		doms, err := dirOpt(t.s, tx, "/local/domain")
		if err != nil {
			return err
		}
		live := map[int]bool{}
		for _, id := range numericNames(doms, "") {
			live[id] = true
		}
		var ids []int
		for _, ty := range types {
			be, err := dirOpt(t.s, tx, root(ty))
			if err != nil {
				return err
			}
			ids = append(ids, numericNames(be, "")...)
		}
		meta, err := dirOpt(t.s, tx, "/libxl")
		if err != nil {
			return err
		}
		ids = append(ids, numericNames(meta, "")...)
		sort.Ints(ids)
		seen := map[int]bool{}
		for _, id := range ids {
			if live[id] || seen[id] {
				continue
			}
			seen[id] = true
			sid := strconv.Itoa(id)
			var paths []string
			for _, ty := range types {
				if _, err := t.s.Read(tx, root(ty)+"/"+sid); err == nil {
					paths = append(paths, root(ty)+"/"+sid)
				}
				paths = append(paths, fmt.Sprintf("/local/domain/%d/error/backend/%s/%s", t.opt.BackendDomid, ty, sid))
			}
			_, metaErr := t.s.Read(tx, metaRoot(uint32(id)))
			if len(paths) == len(types) && metaErr != nil {
				continue // /libxl/<id> without vscsi: not ours
			}
			if t.opt.DryRun {
				cleaned = append(cleaned, uint32(id))
				continue
			}
			if err := rmAll(t.s, tx, append(paths, metaRoot(uint32(id)))...); err != nil {
				return err
			}
			if err := rmIfEmpty(t.s, tx, fmt.Sprintf("/libxl/%d", id)); err != nil {
				return err
			}
			cleaned = append(cleaned, uint32(id))
		}
		return nil
	})
	return cleaned, err
}

// CleanupOnRelease runs Cleanup now and after every @releaseDomain until
// ctx ends (for a long-running process such as the backend daemon).
// Errors of individual passes go to report (may be nil).
func (t *Toolstack) CleanupOnRelease(ctx context.Context, report func([]uint32, error)) error {
	ch, cancel, err := t.mux.Watch(xenif.WatchReleaseDomain)
	if err != nil {
		return err
	}
	defer cancel()
	for {
		ids, err := t.Cleanup()
		if report != nil && (err != nil || len(ids) > 0) {
			report(ids, err)
		}
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-ch:
			if !ok {
				return xenif.ErrStoreClosed
			}
		}
	}
}
