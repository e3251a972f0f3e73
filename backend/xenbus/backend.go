package xenbus

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/govscsi/govscsi/backend/datapath"
	"github.com/govscsi/govscsi/libxlgo/xenif"
	"github.com/govscsi/govscsi/libxlgo/xsutil"
)

// DefaultType is the backend type directory this backend serves.
const DefaultType = "vscsiu"

// Defaults for Config's timeouts.
const (
	DefaultTeardownTimeout = 10 * time.Second
	DefaultRemoveTimeout   = 5 * time.Second
	DefaultShutdownTimeout = 5 * time.Second
	DefaultHandoverTimeout = 10 * time.Second
	DefaultRescanInterval  = 2 * time.Second
	DefaultLockWait        = 30 * time.Second
)

// StopMode says what Run does with connected guests when its context ends.
type StopMode int32

const (
	// StopHandover (the default) leaves every vhost connected for the
	// next backend process: xenstore untouched (no Closing), commands in
	// flight finished and answered, requests not taken left in the ring.
	// The guests see a pause until the next process takes over.
	StopHandover StopMode = iota
	// StopDisconnect closes every connected vhost (BE Closing, the
	// frontend closes, BE Closed): the guests lose their disks until the
	// vhost is set up again. An explicit act, never a side effect.
	StopDisconnect
)

func (m StopMode) String() string {
	if m == StopDisconnect {
		return "disconnect"
	}
	return "handover"
}

// ParseStopMode reads "handover" or "disconnect".
func ParseStopMode(s string) (StopMode, error) {
	switch s {
	case "handover", "":
		return StopHandover, nil
	case "disconnect":
		return StopDisconnect, nil
	}
	return 0, fmt.Errorf("stop mode %q: want handover or disconnect", s)
}

// maxScanFailures consecutive failed scans of the backend tree end Run.
const maxScanFailures = 3

// LUNRequest describes one device to open.
type LUNRequest struct {
	Pdev  string        // BE/vscsi-devs/dev-N/p-dev, as written
	Addr  datapath.Addr // the guest's c:t:l
	Domid uint32        // the frontend domain
	Vhost string        // the vhost directory name
	Dev   string        // "dev-N"
	// ReportLUNs lists the LUNs configured on Addr's (channel, target),
	// for REPORT LUNS.
	ReportLUNs func() []uint64
	// StatePath is a file the LUN may keep state in that must outlive
	// the process (a RAM disk's contents), under Config.StateDir; empty
	// without one. The backend deletes it when the device is really
	// removed (hot-remove, vhost removed, domain gone), never on a
	// handover or a restart.
	StatePath string
}

// LUNOpener opens the LUN a p-dev names. The error text ends up in
// dev-N/error, so it should say what was wrong with the p-dev.
type LUNOpener func(req LUNRequest) (datapath.Entry, error)

// Config configures a Backend.
type Config struct {
	// Store is a connection acting as the backend domain. The Backend
	// owns its Events channel (through an xsutil.Mux) while it runs.
	Store xenif.Store
	// Domid is this backend's domain.
	Domid uint32
	// Type is the backend type directory (default DefaultType).
	Type string
	// OpenLUN opens a p-dev (required).
	OpenLUN LUNOpener
	// Grants maps the ring and copies data (shared by all connections).
	Grants datapath.GrantDevice
	// OpenEvents opens a fresh event-channel device: each connection
	// needs its own (datapath.Config.Events).
	OpenEvents func() (xenif.EventChannel, error)
	// MaxSegments is the feature-sg-grant value (0: datapath's default 128).
	MaxSegments int
	// Workers per connection (0: datapath's default).
	Workers int
	// TeardownTimeout bounds one connection's teardown (P23).
	TeardownTimeout time.Duration
	// RemoveTimeout is how long the frontend gets to close after the
	// toolstack wrote BE state 5 before the backend closes by itself.
	RemoveTimeout time.Duration
	// ShutdownTimeout is how long the frontend gets to close after the
	// backend announced Closing when the Backend stops.
	ShutdownTimeout time.Duration
	// RescanInterval: how often vhosts whose frontend directory does not
	// exist yet are looked at again (creating the FE directory fires no
	// watch on the backend tree).
	RescanInterval time.Duration
	// StateDir keeps what must outlive the process, on tmpfs (it survives
	// a restart, not a reboot, as the guests do not either):
	// <StateDir>/lock (one backend per directory: a restarted backend
	// waits for its predecessor), and per vhost
	// <StateDir>/<domid>/<vhost>/ring.journal (the in-flight journal, so
	// a crash loses no request) and <dev>.lun (LUNRequest.StatePath).
	// Empty: none of it (a crash loses the requests in flight, RAM disks
	// live in the process).
	StateDir string
	// StopMode is what Run does when its context ends (SetStopMode
	// changes it while running).
	StopMode StopMode
	// HandoverTimeout bounds one connection's handover: commands still
	// in their LUN then are left to the next process (journal).
	HandoverTimeout time.Duration
	// LockWait bounds how long Run waits for a previous backend to
	// release StateDir's lock (a handover in progress).
	LockWait time.Duration
	Logger   hclog.Logger
}

// Backend serves every vhost of one backend type in one domain.
type Backend struct {
	cfg  Config
	log  hclog.Logger
	mux  *xsutil.Mux
	root string // /local/domain/<me>/backend/<type>
	errs string // /local/domain/<me>/error/backend/<type>

	mu     sync.Mutex
	vhosts map[key]*vhost
	dead   map[key]bool // unregistered: not probed again while the nodes exist

	stopMode   atomic.Int32
	handedOver atomic.Int32 // vhosts left connected at the end of Run
	killed     atomic.Bool  // tests: Run's end is a process death (kill)

	stateMu     sync.Mutex
	domTags     map[uint32]bool // domains whose state directory was checked
	unlockState func()          // AcquireState's lock, held
}

// AcquireState takes the StateDir's lock (waiting up to LockWait for a
// previous backend to finish its handover) and removes the state of
// domains that died meanwhile. Run does it itself; a caller that must own
// the directory for longer (the daemon: until its control socket is gone)
// calls it first and ReleaseState after Run.
func (b *Backend) AcquireState(ctx context.Context) error {
	if b.cfg.StateDir == "" || b.unlockState != nil {
		return nil
	}
	unlock, err := b.lockState(ctx)
	if err != nil {
		return err
	}
	b.unlockState = unlock
	b.sweepState()
	return nil
}

// ReleaseState drops AcquireState's lock.
func (b *Backend) ReleaseState() {
	if b.unlockState != nil {
		b.unlockState()
		b.unlockState = nil
	}
}

type key struct {
	domid uint32
	vhost string
}

func (k key) String() string { return strconv.FormatUint(uint64(k.domid), 10) + "/" + k.vhost }

// New checks cfg and returns a Backend; Run starts it.
func New(cfg Config) (*Backend, error) {
	if cfg.Store == nil || cfg.OpenLUN == nil || cfg.Grants == nil || cfg.OpenEvents == nil {
		return nil, errors.New("xenbus: Config needs Store, OpenLUN, Grants and OpenEvents")
	}
	if cfg.Type == "" {
		cfg.Type = DefaultType
	}
	if !validName(cfg.Type) {
		return nil, fmt.Errorf("xenbus: backend type %q: want letters, digits, '-' or '_'", cfg.Type)
	}
	if cfg.MaxSegments == 0 {
		cfg.MaxSegments = datapath.DefaultMaxSegments
	}
	if cfg.TeardownTimeout <= 0 {
		cfg.TeardownTimeout = DefaultTeardownTimeout
	}
	if cfg.RemoveTimeout <= 0 {
		cfg.RemoveTimeout = DefaultRemoveTimeout
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	if cfg.RescanInterval <= 0 {
		cfg.RescanInterval = DefaultRescanInterval
	}
	if cfg.HandoverTimeout <= 0 {
		cfg.HandoverTimeout = DefaultHandoverTimeout
	}
	if cfg.LockWait <= 0 {
		cfg.LockWait = DefaultLockWait
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	me := strconv.FormatUint(uint64(cfg.Domid), 10)
	b := &Backend{
		cfg:     cfg,
		log:     cfg.Logger,
		root:    "/local/domain/" + me + "/backend/" + cfg.Type,
		errs:    "/local/domain/" + me + "/error/backend/" + cfg.Type,
		vhosts:  map[key]*vhost{},
		dead:    map[key]bool{},
		domTags: map[uint32]bool{},
	}
	b.stopMode.Store(int32(cfg.StopMode))
	return b, nil
}

// SetStopMode changes what Run does when its context ends; call it before
// cancelling (xl-vscsi backend-stop --disconnect, the C API's disconnect).
func (b *Backend) SetStopMode(m StopMode) { b.stopMode.Store(int32(m)) }

// StopMode is the current stop mode.
func (b *Backend) StopMode() StopMode { return StopMode(b.stopMode.Load()) }

// HandedOver is how many vhosts the last Run left connected.
func (b *Backend) HandedOver() int { return int(b.handedOver.Load()) }

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Root is the backend tree served, /local/domain/<me>/backend/<type>.
func (b *Backend) Root() string { return b.root }

// Run serves until ctx ends, then stops as StopMode says: a handover
// (every vhost left connected for the next backend; bounded by
// HandoverTimeout) or a disconnect (Closing, disconnect, Closed; bounded by
// ShutdownTimeout and TeardownTimeout), and returns. It returns early with
// an error if the xenstore connection fails (after a handover: a restarted
// backend picks the guests up). With a StateDir it first takes the
// directory's lock, waiting up to LockWait for a previous backend.
func (b *Backend) Run(ctx context.Context) error {
	if b.cfg.StateDir != "" && b.unlockState == nil {
		if err := b.AcquireState(ctx); err != nil {
			return err
		}
		defer b.ReleaseState()
	}
	b.handedOver.Store(0)
	b.mux = xsutil.NewMux(b.cfg.Store)
	defer b.mux.Close()
	rootCh, cancelRoot, err := b.mux.Watch(b.root)
	if err != nil {
		return fmt.Errorf("xenbus: watch %s: %w", b.root, err)
	}
	defer cancelRoot() //nolint:errcheck // best effort at exit
	relCh, cancelRel, err := b.mux.Watch(xenif.WatchReleaseDomain)
	if err != nil {
		// Driver domains may not see @releaseDomain; FE removal still
		// tears vhosts down.
		b.log.Warn("cannot watch @releaseDomain; dead domains are noticed only by their frontend vanishing", "error", err)
		relCh = nil
	} else {
		defer cancelRel() //nolint:errcheck // best effort at exit
	}
	b.log.Info("serving vscsi backends", "root", b.root)

	actx, stopActors := context.WithCancel(context.Background())
	defer stopActors()
	var wg sync.WaitGroup
	rescan := time.NewTicker(b.cfg.RescanInterval)
	defer rescan.Stop()
	var runErr error
	failures := 0
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case _, ok := <-rootCh:
			if !ok {
				runErr = xenif.ErrStoreClosed
				break loop
			}
		case <-relCh:
			b.releaseDead(ctx)
		case <-rescan.C:
		}
		if err := b.scan(actx, &wg); err != nil {
			failures++
			// A closed or broken connection (xenstored restarted) sends no
			// more events; the rescan ticker notices and the daemon exits
			// so its supervisor restarts it (and reconnects every vhost).
			if errors.Is(err, xenif.ErrStoreClosed) || failures >= maxScanFailures {
				runErr = fmt.Errorf("xenbus: xenstore unusable: %w", err)
				break loop
			}
			b.log.Warn("scanning backend tree", "error", err)
		} else {
			failures = 0
		}
	}

	// Every actor hands its vhost over or closes it (StopMode).
	if runErr != nil {
		// Lost xenstore: the actors cannot talk to it; leave the guests
		// to the restarted backend.
		b.SetStopMode(StopHandover)
	}
	stopActors()
	wg.Wait()
	if b.killed.Load() {
		return runErr
	}
	if b.StopMode() == StopHandover {
		b.log.Info("backend stopped: vhosts left connected for the next vscsi-backend", "root", b.root,
			"vhosts_left_connected", b.HandedOver())
	} else {
		b.log.Info("backend stopped: every vhost disconnected", "root", b.root)
	}
	return runErr
}

// scan probes new vhosts and forgets ones whose nodes are gone.
func (b *Backend) scan(ctx context.Context, wg *sync.WaitGroup) error {
	s := b.cfg.Store
	doms, err := s.Directory(xenif.NoTx, b.root)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) {
			doms = nil
		} else {
			return err
		}
	}
	seen := map[key]bool{}
	for _, d := range doms {
		domid, err := ParseDomid(d)
		if err != nil || strconv.FormatUint(uint64(domid), 10) != d {
			continue // not a domain directory we understand
		}
		vhs, err := s.Directory(xenif.NoTx, b.root+"/"+d)
		if err != nil {
			continue
		}
		for _, vh := range vhs {
			if !validName(vh) {
				continue
			}
			k := key{domid, vh}
			seen[k] = true
			b.mu.Lock()
			v, dead := b.vhosts[k], b.dead[k]
			b.mu.Unlock()
			if v != nil {
				continue
			}
			be := b.root + "/" + k.String()
			if dead {
				// A fresh device at the same place (the toolstack wrote
				// state 1 again) is probed again.
				if st, err := s.Read(xenif.NoTx, be+"/state"); err != nil || st != strconv.Itoa(xenif.StateInitialising) {
					continue
				}
				b.mu.Lock()
				delete(b.dead, k)
				b.mu.Unlock()
			}
			fe, err1 := s.Read(xenif.NoTx, be+"/frontend")
			_, err2 := s.Read(xenif.NoTx, be+"/frontend-id")
			if err1 != nil || err2 != nil {
				continue
			}
			if _, err := s.Read(xenif.NoTx, fe); err != nil && errors.Is(err, syscall.ENOENT) {
				continue // the xenbus core does not probe until FE exists
			}
			v = newVhost(b, k, be, fe)
			b.mu.Lock()
			b.vhosts[k] = v
			b.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				unregistered := v.run(ctx)
				b.mu.Lock()
				if b.vhosts[k] == v {
					delete(b.vhosts, k)
				}
				if unregistered {
					b.dead[k] = true
				}
				b.mu.Unlock()
			}()
		}
	}
	b.mu.Lock()
	for k := range b.dead {
		if !seen[k] {
			delete(b.dead, k)
		}
	}
	b.mu.Unlock()
	return nil
}

// domainGone reports whether domid no longer exists: its home directory
// /local/domain/<domid> is gone (libxl removes it before it destroys the
// domain, so it is gone by the time @releaseDomain fires).
//
// Whether xenstored has the domain introduced does not tell: a domain that
// libxl is building, restoring or receiving exists, with its home, long
// before libxl introduces it at the end, and vscsi-autoattach writes its
// vhosts in that window (it holds the domain from the moment libxl makes
// it, docs/host-integration.md §3). Taking "not introduced" for "gone"
// removed a migrating guest's vhost when the sending copy suspended (its
// @releaseDomain) and the resumed guest found no backend (seen on the rig).
func (b *Backend) domainGone(domid uint32) bool {
	_, err := b.cfg.Store.Read(xenif.NoTx, "/local/domain/"+strconv.FormatUint(uint64(domid), 10))
	return errors.Is(err, syscall.ENOENT)
}

// releaseDead handles @releaseDomain (which does not say which domain):
// every domain with a backend directory is checked; for a dead one the
// actors are stopped without talking to the (gone) frontend and its
// backend and error trees are removed (P26).
func (b *Backend) releaseDead(ctx context.Context) {
	doms, err := b.cfg.Store.Directory(xenif.NoTx, b.root)
	if err != nil {
		return
	}
	for _, d := range doms {
		domid, err := ParseDomid(d)
		if err != nil || strconv.FormatUint(uint64(domid), 10) != d || domid == b.cfg.Domid {
			continue
		}
		if !b.domainGone(domid) {
			continue
		}
		b.log.Info("domain gone: releasing its vhosts", "domid", domid)
		b.mu.Lock()
		var victims []*vhost
		for k, v := range b.vhosts {
			if k.domid == domid {
				victims = append(victims, v)
			}
		}
		b.mu.Unlock()
		for _, v := range victims {
			v.release()
		}
		for _, v := range victims {
			select {
			case <-v.done:
			case <-ctx.Done():
				return
			}
		}
		for _, p := range []string{b.root + "/" + d, b.errs + "/" + d} {
			if err := b.cfg.Store.Rm(xenif.NoTx, p); err != nil && !errors.Is(err, syscall.ENOENT) {
				b.log.Warn("removing tree of a dead domain", "path", p, "error", err)
			}
		}
		b.forgetDomain(domid)
		b.mu.Lock()
		for k := range b.dead {
			if k.domid == domid {
				delete(b.dead, k)
			}
		}
		b.mu.Unlock()
	}
}

// VhostInfo is a snapshot of one vhost, for the stats endpoint and logs.
type VhostInfo struct {
	Domid     uint32
	Vhost     string
	State     int // the BE state last written
	Frontend  int // the FE state last seen (-1: none yet)
	Connected bool
	Error     string // the last fatal error, if any
	Devices   []DeviceInfo
	// Ring counters of the current connection (zero when disconnected):
	// datapath.Counters.
	Requests, Responses, Rejected uint64
	Notifies, Events, Replayed    uint64
}

// DeviceInfo is one translated device.
type DeviceInfo struct {
	Dev  string // dev-N
	Pdev string
	Addr datapath.Addr
}

// Vhosts returns a snapshot of every running vhost, sorted by domid and
// vhost.
func (b *Backend) Vhosts() []VhostInfo {
	b.mu.Lock()
	vs := make([]*vhost, 0, len(b.vhosts))
	for _, v := range b.vhosts {
		vs = append(vs, v)
	}
	b.mu.Unlock()
	out := make([]VhostInfo, 0, len(vs))
	for _, v := range vs {
		out = append(out, v.info())
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Domid != out[j].Domid {
			return out[i].Domid < out[j].Domid
		}
		return out[i].Vhost < out[j].Vhost
	})
	return out
}
