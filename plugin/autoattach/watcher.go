// Package autoattach gives domains started with plain `xl create` their
// vscsi devices. Upstream xl ignores vscsi= silently and keeps no copy of
// the config text (P1), so a watcher in dom0 does what SUSE's libxl did at
// domain creation: on every @introduceDomain it finds each new domain's
// xl config among a list of directories (by name=, and uuid= where set),
// and applies its vscsi= entries with plugin.Toolstack.Apply, the code
// behind `xl-vscsi apply`. On every @releaseDomain it removes the trees
// of domains that are gone (plugin.Toolstack.Cleanup, P26).
//
// The watcher is idempotent across restarts: a domain that already has
// vscsi vhosts (in its frontend or backend tree) is left alone, so a
// restarted daemon writes nothing for domains it (or xl-vscsi) set up
// before.
//
// With a Config.Holder, a new domain whose config has vscsi= entries is
// held (package hold: a pause reference of the watcher's own) from the
// moment it is seen until its vhosts are probed by the backend, so xl's
// unpause at the end of create, restore or migrate-receive does not start
// the guest before its devices are there: the guest boots (or resumes)
// with them, as with SUSE's libxl. A domain without vscsi= entries is
// never held. Once released, the watcher waits in the background for the
// guest's frontend to connect and only logs if it does not (a guest that
// never loads xen-scsifront keeps its vhosts in InitWait, as libxl leaves
// a disk nobody opens).
//
// Everything here is pure Go over xenif.Store; nothing starts before Run.
package autoattach

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/govscsi/govscsi/cfgparse"
	"github.com/govscsi/govscsi/libxlgo/xenif"
	"github.com/govscsi/govscsi/libxlgo/xsutil"
	"github.com/govscsi/govscsi/plugin"
	"github.com/govscsi/govscsi/plugin/hold"
	"github.com/hashicorp/go-hclog"
)

// Action is what the watcher did about one domain.
type Action string

// Actions reported through Config.Report (and logged).
const (
	Attached     Action = "attached"      // vscsi= entries applied, peers connected
	NoVSCSI      Action = "no-vscsi"      // the matching config has no vscsi= entries
	HasVHosts    Action = "has-vhosts"    // the domain already has vhosts: left alone
	NoConfig     Action = "no-config"     // no config in the directories names the domain
	Ambiguous    Action = "ambiguous"     // several configs name the domain: nothing written
	BadConfig    Action = "bad-config"    // the config or a vscsi= entry is wrong: nothing written
	Failed       Action = "failed"        // apply failed (and rolled back its writes)
	Gone         Action = "gone"          // the domain vanished while being set up
	Renamed      Action = "renamed"       // the domain kept changing its name: nothing written
	Stopped      Action = "stopped"       // the daemon stopped while waiting for the peers: what was written stays
	Connected    Action = "connected"     // after a hold: the guest's frontend connected every device
	NotConnected Action = "not-connected" // after a hold: the frontend did not connect in time (nothing removed)
	Unnamed      Action = "unnamed"       // no name node yet: retried on the next event
	Inaccessible Action = "inaccessible"  // reading the domain's nodes failed
)

// Outcome is one domain's handling, for Config.Report.
type Outcome struct {
	Domid  uint32
	Name   string
	Config string // the config applied (or "" )
	Action Action
	Added  int      // devices written (Attached)
	Others []string // the competing configs (Ambiguous)
	// Held is how long the domain was held (0: it was not); HeldLate is
	// set when it had already run when the hold was taken.
	Held     time.Duration
	HeldLate bool
	Err      error
}

// Config configures a Watcher.
type Config struct {
	// ConfigDirs are searched (non-recursively) for xl configs; default
	// DefaultConfigDirs.
	ConfigDirs []string
	// Logger gets one line per domain handled and per cleanup (default: a
	// null logger).
	Logger hclog.Logger
	// Report, if set, is called after each domain is handled (tests and
	// monitoring); it must not block for long.
	Report func(Outcome)
	// Cleaned, if set, is called after a cleanup pass removed something.
	Cleaned func(domids []uint32, err error)
	// Holder, if set, holds every new domain whose config has vscsi=
	// entries until its vhosts are probed (see the package doc); nil: no
	// holds, the devices are hot-plugged while the guest boots.
	Holder *hold.Holder
}

// Watcher is the daemon's state. Create it with New, start it with Run.
type Watcher struct {
	s   xenif.Store // for the watches and the reads that match domains
	ts  *plugin.Toolstack
	cfg Config
	log hclog.Logger

	mu      sync.Mutex
	handled map[uint32]bool // domains handled (or being handled) this run
	mux     *xsutil.Mux     // Run's, for the name watches; nil outside Run
	wg      sync.WaitGroup
	configs configIndex
}

// New returns a Watcher that watches and reads through s and writes
// through ts. s must be a connection of its own (the Watcher reads its
// Events through an xsutil.Mux); ts may share nothing with it. The
// backend domain is ts.Options().BackendDomid.
func New(s xenif.Store, ts *plugin.Toolstack, cfg Config) *Watcher {
	if len(cfg.ConfigDirs) == 0 {
		cfg.ConfigDirs = DefaultConfigDirs
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	return &Watcher{s: s, ts: ts, cfg: cfg, log: cfg.Logger, handled: map[uint32]bool{}}
}

// Run handles the domains that exist now, then every domain introduced
// later, and cleans up after every released domain, until ctx ends. It
// waits for the domains being set up to finish (their own waits are
// bounded by the Toolstack's timeouts, and cancelled with ctx) before it
// returns.
func (w *Watcher) Run(ctx context.Context) error {
	mux := xsutil.NewMux(w.s)
	defer mux.Close()
	w.mu.Lock()
	w.mux = mux
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.mux = nil
		w.mu.Unlock()
	}()
	intro, cancelIntro, err := mux.Watch(xenif.WatchIntroduceDomain)
	if err != nil {
		return fmt.Errorf("watching %s: %w", xenif.WatchIntroduceDomain, err)
	}
	defer cancelIntro()
	rel, cancelRel, err := mux.Watch(xenif.WatchReleaseDomain)
	if err != nil {
		return fmt.Errorf("watching %s: %w", xenif.WatchReleaseDomain, err)
	}
	defer cancelRel()
	made, cancelMade, err := mux.Watch("/libxl")
	if err != nil {
		return fmt.Errorf("watching /libxl: %w", err)
	}
	defer cancelMade()
	w.log.Info("watching for new domains", "config_dirs", w.cfg.ConfigDirs, "backend_domid", w.ts.Options().BackendDomid,
		"hold", w.cfg.Holder != nil)
	if h := w.cfg.Holder; h != nil {
		if ids, err := h.Recover(); err != nil {
			w.log.Error("releasing the holds a previous holder left failed", "error", err)
		} else if len(ids) > 0 {
			w.log.Warn("released the holds a previous holder left behind", "domids", ids)
		}
		defer h.ReleaseAll()
	}
	defer w.wg.Wait()
	// Runs before the Wait: handlers waiting for a rename end with Run
	// even when the store, not ctx, ended it.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Reconcile what is already there (a restart) before reacting to
	// events: the trees of domains that went while no watcher ran, then
	// every live domain. Both watches also fire once when registered;
	// those passes find nothing new.
	w.cleanup()
	if err := w.scan(ctx); err != nil {
		w.log.Error("listing domains failed", "error", err)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-intro:
			if !ok {
				return xenif.ErrStoreClosed
			}
			if err := w.scan(ctx); err != nil {
				w.log.Error("listing domains failed", "error", err)
			}
		case ev, ok := <-made:
			if !ok {
				return xenif.ErrStoreClosed
			}
			w.created(ctx, ev.Path)
		case _, ok := <-rel:
			if !ok {
				return xenif.ErrStoreClosed
			}
			w.cleanup()
			if err := w.scan(ctx); err != nil { // forget the gone ones
				w.log.Error("listing domains failed", "error", err)
			}
		}
	}
}

// Reconcile does one pass without watching: it removes the trees of gone
// domains, handles every live domain not handled yet, and waits for them
// (`vscsi-autoattach --once`, for hosts that prefer a oneshot unit or a
// cron job to a daemon). Its error names the domains whose devices could
// not be attached (bad config, ambiguous configs, failed apply); a domain
// without a config is not an error.
func (w *Watcher) Reconcile(ctx context.Context) error {
	var (
		mu   sync.Mutex
		errs []error
	)
	report := w.cfg.Report
	w.cfg.Report = func(o Outcome) {
		switch o.Action {
		case BadConfig, Ambiguous, Failed, Inaccessible:
			err := o.Err
			if err == nil {
				err = fmt.Errorf("%s: %v", o.Action, o.Others)
			}
			mu.Lock()
			errs = append(errs, fmt.Errorf("domain %d (%s): %w", o.Domid, o.Name, err))
			mu.Unlock()
		}
		if report != nil {
			report(o)
		}
	}
	defer func() { w.cfg.Report = report }()
	w.cleanup()
	err := w.scan(ctx)
	w.wg.Wait()
	if err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (w *Watcher) cleanup() {
	ids, err := w.ts.Cleanup()
	if err != nil {
		w.log.Error("removing the vscsi trees of gone domains failed", "error", err)
	} else if len(ids) > 0 {
		w.log.Info("removed the vscsi trees of gone domains", "domids", ids)
	}
	if w.cfg.Cleaned != nil && (err != nil || len(ids) > 0) {
		w.cfg.Cleaned(ids, err)
	}
}

// scan starts a handler for every live domain not handled yet and
// forgets the domains that are gone (Xen may reuse a domid much later).
func (w *Watcher) scan(ctx context.Context) error {
	names, err := w.s.Directory(xenif.NoTx, "/local/domain")
	if err != nil {
		if errors.Is(err, syscall.ENOENT) {
			names = nil
		} else {
			return err
		}
	}
	live := map[uint32]bool{}
	var fresh []uint32
	be := w.ts.Options().BackendDomid
	w.mu.Lock()
	for _, n := range names {
		id, err := strconv.ParseUint(n, 10, 32)
		if err != nil || strconv.FormatUint(id, 10) != n || id >= xenif.DomidFirstReserved {
			continue
		}
		d := uint32(id)
		live[d] = true
		if d == 0 || d == be || w.handled[d] {
			continue
		}
		w.handled[d] = true
		fresh = append(fresh, d)
	}
	for d := range w.handled {
		if !live[d] {
			delete(w.handled, d)
		}
	}
	w.mu.Unlock()
	sort.Slice(fresh, func(i, j int) bool { return fresh[i] < fresh[j] })
	for _, d := range fresh {
		w.startHandler(ctx, d)
	}
	return nil
}

// claim marks domid as handled; false if it already was (or is dom0 or the
// backend's domain).
func (w *Watcher) claim(domid uint32) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if domid == 0 || domid == w.ts.Options().BackendDomid || w.handled[domid] {
		return false
	}
	w.handled[domid] = true
	return true
}

// created handles a /libxl event: libxl creates /libxl/<domid> in the
// same transaction as the domain's home and name (libxl__domain_make),
// right after the domain exists and long before it is built and
// introduced, so a domain seen here is held with plenty of time before xl
// unpauses it. @introduceDomain stays the fallback for other toolstacks.
func (w *Watcher) created(ctx context.Context, path string) {
	rest, ok := strings.CutPrefix(path, "/libxl/")
	if !ok {
		return
	}
	n, _, _ := strings.Cut(rest, "/")
	id, err := strconv.ParseUint(n, 10, 32)
	if err != nil || strconv.FormatUint(id, 10) != n || id >= xenif.DomidFirstReserved {
		return
	}
	d := uint32(id)
	w.mu.Lock()
	done := w.handled[d]
	w.mu.Unlock()
	if done || !w.alive(d) {
		return // most /libxl events: devices of known domains, or a removal
	}
	if w.claim(d) {
		w.startHandler(ctx, d)
	}
}

// startHandler handles domid on its own goroutine (claimed already).
func (w *Watcher) startHandler(ctx context.Context, d uint32) {
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for {
			o := w.handle(ctx, d)
			if w.cfg.Report != nil {
				w.cfg.Report(o)
			}
			if o.Action != Unnamed && o.Action != NoConfig {
				return
			}
			// No name yet, or a name no config has: look again when the
			// name changes.
			if !w.awaitName(ctx, d, o.Name) {
				if o.Action == Unnamed {
					w.mu.Lock()
					delete(w.handled, d) // --once: the next pass looks again
					w.mu.Unlock()
				}
				return
			}
		}
	}()
}

// awaitName waits until domain domid has a name other than old (a missing
// name counts as ""). It returns false if the domain dies, ctx ends, or
// the watcher does not watch (Reconcile).
func (w *Watcher) awaitName(ctx context.Context, domid uint32, old string) bool {
	w.mu.Lock()
	mux := w.mux
	w.mu.Unlock()
	if mux == nil {
		return false
	}
	p := "/local/domain/" + strconv.FormatUint(uint64(domid), 10) + "/name"
	ch, cancel, err := mux.Watch(p)
	if err != nil {
		w.log.Error("cannot watch the domain's name", "domid", domid, "error", err)
		return false
	}
	defer cancel()
	for {
		name, err := w.s.Read(xenif.NoTx, p)
		switch {
		case err == nil && name != old:
			return true
		case err != nil && !errors.Is(err, syscall.ENOENT):
			w.log.Error("cannot read the domain's name", "domid", domid, "error", err)
			return false
		case err != nil && !w.alive(domid):
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case _, ok := <-ch:
			if !ok {
				return false
			}
		}
	}
}

// identity reads a domain's name and uuid (from its vm node,
// "/vm/<uuid>"); ok is false if the domain has no name (yet).
func (w *Watcher) identity(domid uint32) (name, uuid string, ok bool, err error) {
	home := "/local/domain/" + strconv.FormatUint(uint64(domid), 10)
	name, err = w.s.Read(xenif.NoTx, home+"/name")
	if err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return "", "", false, nil
		}
		return "", "", false, err
	}
	if vm, err := w.s.Read(xenif.NoTx, home+"/vm"); err == nil {
		uuid = normUUID(path.Base(vm))
	}
	return name, uuid, true, nil
}

// checkConfig resolves and groups entries as Apply will (for a domain
// without vhosts), so that a bad or clashing entry is reported before
// anything is written.
func checkConfig(o plugin.Options, entries []cfgparse.Entry) error {
	r := &cfgparse.Resolver{SysfsRoot: o.SysfsRoot, ConfigfsRoot: o.ConfigfsRoot, Stat: o.Stat}
	devs, _, err := r.Devices(entries, o.Flavour)
	if err != nil {
		return err
	}
	_, err = cfgparse.Group(devs, nil, 0)
	return err
}

func (w *Watcher) alive(domid uint32) bool {
	_, err := w.s.Read(xenif.NoTx, "/local/domain/"+strconv.FormatUint(uint64(domid), 10))
	return !errors.Is(err, syscall.ENOENT)
}

// handle sets up one domain. Every outcome is logged with the domain's
// id and name; only Attached writes anything.
// The result is named: the deferred release of a hold records its time in it.
func (w *Watcher) handle(ctx context.Context, domid uint32) (o Outcome) {
	o = Outcome{Domid: domid}
	log := w.log.With("domid", domid)
	// A name read, the configs matched against it, the domain held, the
	// chosen config checked, then the name read again: if it changed
	// meanwhile (xl rename), start over with the new one, a few times at
	// most (the hold stays).
	const attempts = 3
	var (
		chosen candidate
		held   *hold.Hold
	)
	for i := 0; ; i++ {
		name, uuid, ok, err := w.identity(domid)
		if err != nil {
			if !w.alive(domid) {
				o.Action = Gone
				log.Info("domain vanished before its vscsi devices were set up")
				return o
			}
			o.Action, o.Err = Inaccessible, err
			log.Error("cannot read the domain's name", "error", err)
			return o
		}
		if !ok {
			o.Action = Unnamed
			if !w.alive(domid) {
				o.Action = Gone
			}
			log.Debug("domain has no name yet; waiting for the next event")
			return o
		}
		o.Name = name
		log = w.log.With("domid", domid, "name", name)
		vs, err := w.ts.List(domid)
		if err != nil {
			o.Action, o.Err = Inaccessible, err
			log.Error("cannot list the domain's vscsi vhosts", "error", err)
			return o
		}
		if len(vs) > 0 {
			o.Action = HasVHosts
			log.Info("domain already has vscsi vhosts; leaving it alone", "vhosts", len(vs))
			return o
		}
		cands, err := w.configs.scan(w.cfg.ConfigDirs, func(p string, err error) {
			log.Trace("not an xl config", "file", p, "error", err)
		})
		if err != nil {
			o.Action, o.Err = Inaccessible, err
			log.Error("cannot read the config directories", "error", err)
			return o
		}
		m := match(cands, name, uuid)
		switch len(m) {
		case 0:
			o.Action = NoConfig
			log.Info("no xl config with this name in the config directories; no vscsi devices attached",
				"uuid", uuid, "config_dirs", w.cfg.ConfigDirs)
			return o
		case 1:
		default:
			for _, c := range m {
				o.Others = append(o.Others, c.Path)
			}
			o.Action = Ambiguous
			log.Warn("several xl configs name this domain; attaching nothing (set uuid= in the right one, or remove the others)",
				"configs", o.Others, "uuid", uuid)
			return o
		}
		chosen = m[0]
		o.Config = chosen.Path
		// Check the vscsi= entries before anything is written: a bad one
		// is the user's to fix, and the domain is left as it is.
		entries, warns, err := w.configs.specs(chosen)
		for _, wn := range warns {
			log.Warn("vscsi= entry", "config", chosen.Path, "warning", wn.String())
		}
		if err != nil {
			o.Action, o.Err = BadConfig, err
			log.Error("bad vscsi= entry in the domain's config; nothing attached", "config", chosen.Path, "error", err)
			return o
		}
		if len(entries) == 0 {
			o.Action = NoVSCSI
			log.Debug("the domain's config has no vscsi= entries", "config", chosen.Path)
			return o
		}
		if held == nil {
			held = w.takeHold(domid, log)
			defer func() { w.releaseHold(held, &o, log) }()
		}
		// Resolve and group the entries on their own as well: then an
		// error of Apply's grouping can only come from vhosts someone
		// else created meanwhile (see below), never from the config.
		if err := checkConfig(w.ts.Options(), entries); err != nil {
			o.Action, o.Err = BadConfig, err
			log.Error("bad vscsi= entry in the domain's config; nothing attached", "config", chosen.Path, "error", err)
			return o
		}
		again, _, ok, err := w.identity(domid)
		if err == nil && ok && again == name {
			break
		}
		if err == nil && !ok || !w.alive(domid) {
			o.Action = Gone
			log.Info("domain vanished before its vscsi devices were set up")
			return o
		}
		if i+1 >= attempts {
			o.Action = Renamed
			log.Warn("domain keeps being renamed; no vscsi devices attached", "now", again)
			return o
		}
		log.Info("domain renamed while being set up; matching again", "now", again)
	}

	log = log.With("config", chosen.Path)
	log.Info("attaching the config's vscsi devices", "held", held != nil)
	apply := w.ts.Apply
	if held != nil {
		apply = w.ts.ApplyBeforeRun // the guest cannot connect while held
	}
	res, err := apply(ctx, strconv.FormatUint(uint64(domid), 10), chosen.Path)
	for _, wn := range res.Warnings {
		log.Warn("vscsi", "warning", wn)
	}
	if err != nil {
		o.Err = err
		if !w.alive(domid) || errors.Is(err, plugin.ErrNoDomain) {
			o.Action = Gone
			log.Info("domain vanished while its vscsi devices were being set up; nothing left behind", "error", err)
			return o
		}
		// The config grouped fine on its own (checkConfig), so a clash
		// means another toolstack (xl-vscsi create or apply) attached
		// the devices between our check and our transaction: its vhosts
		// are left alone, as on a restart.
		var ge *cfgparse.GroupError
		if errors.As(err, &ge) || strings.Contains(err.Error(), "already exists") {
			if vs, lerr := w.ts.List(domid); lerr == nil && len(vs) > 0 {
				o.Action, o.Err = HasVHosts, nil
				log.Info("another toolstack attached vscsi vhosts meanwhile; leaving them alone", "vhosts", len(vs), "clash", err)
				return o
			}
		}
		var se *cfgparse.SpecError
		if errors.As(err, &se) || errors.As(err, &ge) {
			o.Action = BadConfig
			log.Error("bad vscsi= entry in the domain's config; nothing attached", "error", err)
			return o
		}
		if ctx.Err() != nil && errors.Is(err, context.Canceled) && w.ts.Options().CancelKeepsDevices {
			o.Action = Stopped
			log.Info("the daemon is stopping: the vscsi devices written stay for the guest", "error", err)
			return o
		}
		o.Action = Failed
		log.Error("attaching vscsi devices failed; what was written is removed again", "error", err)
		return o
	}
	if len(res.Added) == 0 {
		// Every entry was there already: another toolstack attached the
		// same config meanwhile, and Apply (where it skips attached
		// entries) wrote nothing.
		o.Action = HasVHosts
		log.Info("another toolstack attached vscsi vhosts meanwhile; leaving them alone")
		return o
	}
	o.Action, o.Added = Attached, len(res.Added)
	log.Info("vscsi devices attached", "vhosts_created", res.Created, "devices", len(res.Added), "pending_frontend", res.Pending || len(res.Waits) > 0)
	if len(res.Waits) > 0 && w.watching() {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.awaitFrontend(ctx, domid, o.Name, res, log)
		}()
	}
	return o
}

// watching reports whether Run is running (Reconcile does not wait for
// frontends: --once exits once the devices are written).
func (w *Watcher) watching() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mux != nil
}

// takeHold holds domid if the watcher has a Holder; nil if it has none or
// the hold failed (logged: the devices are then hot-plugged).
func (w *Watcher) takeHold(domid uint32, log hclog.Logger) *hold.Hold {
	if w.cfg.Holder == nil {
		return nil
	}
	if w.cfg.Holder.HasRun(domid) {
		log.Debug("the domain is already running: its vscsi devices are hot-plugged")
		return nil
	}
	x, err := w.cfg.Holder.Take(domid)
	if err != nil {
		log.Warn("cannot hold the domain until its vscsi devices are connected; they are hot-plugged while it boots", "error", err)
		return nil
	}
	if x.Late {
		log.Warn("the domain had already run when it was held: it may look for its vscsi devices before they are connected")
	}
	return x
}

// releaseHold drops a hold taken by handle, recording how long it lasted.
func (w *Watcher) releaseHold(x *hold.Hold, o *Outcome, log hclog.Logger) {
	if x == nil {
		return
	}
	d, err := x.Release()
	o.Held, o.HeldLate = d, x.Late
	if err != nil {
		log.Error("releasing the hold failed", "error", err)
		return
	}
	log.Info("domain released", "held", d.Round(time.Millisecond), "late", x.Late)
}

// awaitFrontend waits (the toolstack's init timeout per vhost) for the
// frontend of a domain that was held to connect the devices written before
// it ran. Nothing is removed if it does not: the vhosts stay ready.
func (w *Watcher) awaitFrontend(ctx context.Context, domid uint32, name string, res plugin.Result, log hclog.Logger) {
	t0 := time.Now()
	err := w.ts.WaitConnected(ctx, domid, res.Waits)
	o := Outcome{Domid: domid, Name: name, Action: Connected, Added: len(res.Added), Err: err}
	switch {
	case err == nil:
		log.Info("the guest connected its vscsi devices", "after", time.Since(t0).Round(time.Millisecond))
	case ctx.Err() != nil || !w.alive(domid):
		return
	default:
		o.Action = NotConnected
		log.Warn("the guest has not connected its vscsi devices; they stay ready for it", "waited", time.Since(t0).Round(time.Second), "error", err)
	}
	if w.cfg.Report != nil {
		w.cfg.Report(o)
	}
}
