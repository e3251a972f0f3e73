// Package hold keeps a new domain from running until its vscsi devices are
// connected on the backend side, on a stock xl that knows nothing about
// vscsi.
//
// Xen counts controller pause references: a domain runs only when every
// pause has been matched by an unpause. xl creates (and restores, and
// receives) a domain paused and unpauses it once its own devices are set
// up. A Holder takes one more reference as soon as the domain appears
// (@introduceDomain, which libxl fires before it adds devices), so xl's
// unpause leaves the domain paused until the Holder drops its reference:
// the guest's first instruction, or its resume after a restore, then finds
// its vscsi devices in xenstore (docs/host-integration.md, "Holding a new
// domain").
//
// A hold is bounded: it is released when the caller is done, after
// Config.MaxHold at the latest (the guest then runs without waiting any
// longer; its devices arrive by hot-plug), and by ReleaseAll when the
// daemon exits. Each hold is recorded in xenstore at
// /libxl/<domid>/vscsi-hold (owner, pid and process start time), written
// before the pause, so that when a holder dies without releasing (SIGKILL,
// a crash) the next holder's Recover finds the reference and drops it. A
// domain destroyed meanwhile takes its record with it (libxl removes
// /libxl/<domid>).
package hold

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/govscsi/govscsi/libxlgo/xenif"
)

// DefaultMaxHold bounds a hold when Config.MaxHold is zero. A userspace
// backend probes a vhost in milliseconds and the kernel backend's hotplug
// script takes about a second on real hardware; 30 s leaves room for a
// slow host without keeping a guest from booting for long when a backend
// is down.
const DefaultMaxHold = 30 * time.Second

// Config configures a Holder.
type Config struct {
	Control xenif.DomainControl
	// Store records the holds (/libxl/<domid>/vscsi-hold).
	Store xenif.Store
	// Owner names the holder in records and logs ("vscsi-autoattach").
	Owner string
	// MaxHold bounds every hold (default DefaultMaxHold).
	MaxHold time.Duration
	Logger  hclog.Logger
}

// Holder takes and releases holds. It is safe for concurrent use.
type Holder struct {
	cfg  Config
	log  hclog.Logger
	self procID

	mu    sync.Mutex
	holds map[uint32]*Hold
}

// Hold is one pause reference on one domain.
type Hold struct {
	h     *Holder
	Domid uint32
	Since time.Time
	// Late is set when the domain's vCPUs had already run when the
	// reference was taken (CPUTime > 0): it still stops the guest from
	// going further, but the guest may already have looked for devices.
	Late bool

	parentExisted bool // /libxl/<domid> was there before the record
	once          sync.Once
	timerMu       sync.Mutex
	timer         *time.Timer
	released      chan struct{}
	held          time.Duration
	err           error
}

// New returns a Holder. Nothing is started.
func New(cfg Config) (*Holder, error) {
	if cfg.Control == nil || cfg.Store == nil {
		return nil, errors.New("hold: Config needs Control and Store")
	}
	if cfg.MaxHold <= 0 {
		cfg.MaxHold = DefaultMaxHold
	}
	if cfg.Owner == "" {
		cfg.Owner = "govscsi"
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	self, err := thisProcess()
	if err != nil {
		return nil, fmt.Errorf("hold: %w", err)
	}
	return &Holder{cfg: cfg, log: cfg.Logger, self: self, holds: map[uint32]*Hold{}}, nil
}

// MaxHold is the bound on every hold.
func (h *Holder) MaxHold() time.Duration { return h.cfg.MaxHold }

// HasRun reports whether domid's vCPUs have run (CPU time > 0): holding
// such a domain would only stall a guest that is already booting. An
// unknown domain has not run.
func (h *Holder) HasRun(domid uint32) bool {
	in, err := h.cfg.Control.DomainInfo(domid)
	return err == nil && in.CPUTime > 0
}

// RecordPath is where the hold of domid is recorded.
func RecordPath(domid uint32) string {
	return "/libxl/" + strconv.FormatUint(uint64(domid), 10) + "/vscsi-hold"
}

// ErrHeld is returned by Take for a domain this Holder already holds.
var ErrHeld = errors.New("domain already held")

// Take pauses domid and records the hold. The hold ends with Release, or
// after MaxHold by itself (logged). A domain that is gone gives an error
// wrapping ESRCH and nothing is recorded.
func (h *Holder) Take(domid uint32) (*Hold, error) {
	h.mu.Lock()
	if h.holds[domid] != nil {
		h.mu.Unlock()
		return nil, fmt.Errorf("hold: domain %d: %w", domid, ErrHeld)
	}
	x := &Hold{h: h, Domid: domid, released: make(chan struct{})}
	h.holds[domid] = x
	h.mu.Unlock()

	parentExisted := h.exists("/libxl/" + strconv.FormatUint(uint64(domid), 10))
	// The record goes first: a holder killed between the two steps leaves
	// a record without a reference, which Recover's unpause then refuses
	// (EINVAL) or, if xl still holds its own, ends early: the guest starts
	// before its devices, as without a hold. The other order could leak a
	// reference no one knows of, and the guest would never run.
	rec := h.self.record(h.cfg.Owner, time.Now())
	if err := h.cfg.Store.Write(xenif.NoTx, RecordPath(domid), rec); err != nil {
		h.forget(x)
		return nil, fmt.Errorf("hold: recording the hold of domain %d: %w", domid, err)
	}
	if err := h.cfg.Control.Pause(domid); err != nil {
		h.removeRecord(domid, parentExisted)
		h.forget(x)
		return nil, fmt.Errorf("hold: pausing domain %d: %w", domid, err)
	}
	x.Since, x.parentExisted = time.Now(), parentExisted
	if in, err := h.cfg.Control.DomainInfo(domid); err == nil {
		x.Late = in.CPUTime > 0
	}
	x.timerMu.Lock()
	x.timer = time.AfterFunc(h.cfg.MaxHold, func() {
		if held, err := x.release(); !errors.Is(err, errAlready) {
			h.log.Warn("hold expired: the domain runs now; its vscsi devices arrive by hot-plug",
				"domid", domid, "held", held.Round(time.Millisecond), "max_hold", h.cfg.MaxHold, "error", err)
		}
	})
	x.timerMu.Unlock()
	h.log.Debug("domain held", "domid", domid, "late", x.Late)
	return x, nil
}

// errAlready is the error of a release that another one beat.
var errAlready = errors.New("hold already released")

// Release drops the hold (once; later calls return what the first did)
// and reports how long the domain was held.
func (x *Hold) Release() (time.Duration, error) {
	if x == nil {
		return 0, nil
	}
	held, err := x.release()
	if errors.Is(err, errAlready) {
		<-x.released
		return x.held, x.err
	}
	return held, err
}

// Released is closed once the hold has been dropped (by Release, the
// MaxHold timer or ReleaseAll).
func (x *Hold) Released() <-chan struct{} { return x.released }

func (x *Hold) release() (time.Duration, error) {
	first := false
	x.once.Do(func() {
		first = true
		x.timerMu.Lock()
		if x.timer != nil {
			x.timer.Stop()
		}
		x.timerMu.Unlock()
		h := x.h
		err := h.cfg.Control.Unpause(x.Domid)
		if errors.Is(err, syscall.ESRCH) {
			err = nil // the domain is gone: nothing is held any more
		}
		h.removeRecord(x.Domid, x.parentExisted)
		h.forget(x)
		x.held = time.Since(x.Since)
		if err != nil {
			x.err = fmt.Errorf("hold: unpausing domain %d: %w", x.Domid, err)
		}
		close(x.released)
	})
	if !first {
		return 0, errAlready
	}
	return x.held, x.err
}

// ReleaseAll drops every hold (the daemon is stopping).
func (h *Holder) ReleaseAll() {
	h.mu.Lock()
	all := make([]*Hold, 0, len(h.holds))
	for _, x := range h.holds {
		all = append(all, x)
	}
	h.mu.Unlock()
	for _, x := range all {
		if held, err := x.Release(); err != nil {
			h.log.Error("releasing a hold at exit failed", "domid", x.Domid, "error", err)
		} else {
			h.log.Info("hold released at exit", "domid", x.Domid, "held", held.Round(time.Millisecond))
		}
	}
}

func (h *Holder) forget(x *Hold) {
	h.mu.Lock()
	if h.holds[x.Domid] == x {
		delete(h.holds, x.Domid)
	}
	h.mu.Unlock()
}

func (h *Holder) exists(p string) bool {
	_, err := h.cfg.Store.Read(xenif.NoTx, p)
	return err == nil
}

// removeRecord deletes the record, and /libxl/<domid> too when the record
// created it (a failed or finished hold leaves xenstore as it found it).
func (h *Holder) removeRecord(domid uint32, parentExisted bool) {
	if err := h.cfg.Store.Rm(xenif.NoTx, RecordPath(domid)); err != nil && !errors.Is(err, syscall.ENOENT) {
		h.log.Warn("removing a hold record failed", "path", RecordPath(domid), "error", err)
	}
	if parentExisted {
		return
	}
	parent := "/libxl/" + strconv.FormatUint(uint64(domid), 10)
	if kids, err := h.cfg.Store.Directory(xenif.NoTx, parent); err == nil && len(kids) == 0 {
		_ = h.cfg.Store.Rm(xenif.NoTx, parent)
	}
}

// Recover drops the holds that holders which no longer run left behind
// (their records name a process that is gone). It returns the domains it
// released. Holds of live processes (another xl-vscsi, this one) stay.
func (h *Holder) Recover() ([]uint32, error) {
	names, err := h.cfg.Store.Directory(xenif.NoTx, "/libxl")
	if err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return nil, nil
		}
		return nil, fmt.Errorf("hold: listing /libxl: %w", err)
	}
	var out []uint32
	var errs []error
	for _, n := range names {
		id, err := strconv.ParseUint(n, 10, 32)
		if err != nil || strconv.FormatUint(id, 10) != n {
			continue
		}
		domid := uint32(id)
		rec, err := h.cfg.Store.Read(xenif.NoTx, RecordPath(domid))
		if err != nil {
			continue
		}
		owner, p, ok := parseRecord(rec)
		if ok && p.alive() {
			continue
		}
		err = h.cfg.Control.Unpause(domid)
		switch {
		case err == nil:
			out = append(out, domid)
			h.log.Warn("released a hold left by a holder that is gone", "domid", domid, "holder", owner, "record", rec)
		case errors.Is(err, syscall.ESRCH), errors.Is(err, syscall.EINVAL):
			// Gone, or no reference left to drop (the holder died between
			// recording and pausing).
		default:
			errs = append(errs, fmt.Errorf("hold: releasing domain %d (record %q): %w", domid, rec, err))
			continue
		}
		h.removeRecord(domid, true)
	}
	return out, errors.Join(errs...)
}

// procID identifies a process across pid reuse: its pid and its start time
// (clock ticks since boot, /proc/<pid>/stat field 22).
type procID struct {
	pid   int
	start uint64
}

func thisProcess() (procID, error) {
	p := procID{pid: os.Getpid()}
	st, err := startTime(p.pid)
	if err != nil {
		return p, err
	}
	p.start = st
	return p, nil
}

func (p procID) record(owner string, since time.Time) string {
	return fmt.Sprintf("owner=%s pid=%d start=%d since=%d", owner, p.pid, p.start, since.Unix())
}

func parseRecord(s string) (owner string, p procID, ok bool) {
	var havePid, haveStart bool
	for _, f := range strings.Fields(s) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "owner":
			owner = v
		case "pid":
			n, err := strconv.Atoi(v)
			p.pid, havePid = n, err == nil && n > 0
		case "start":
			n, err := strconv.ParseUint(v, 10, 64)
			p.start, haveStart = n, err == nil
		}
	}
	return owner, p, havePid && haveStart
}

func (p procID) alive() bool {
	st, err := startTime(p.pid)
	return err == nil && st == p.start
}

// startTime reads field 22 of /proc/<pid>/stat. The command name (field 2)
// may hold spaces and parentheses, so fields are counted after its last ')'.
func startTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	st, err := parseStartTime(string(b))
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return st, nil
}

func parseStartTime(stat string) (uint64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("no command name")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state), so field 22 is f[19].
	if len(f) < 20 {
		return 0, fmt.Errorf("%d fields, want at least 22", len(f)+2)
	}
	return strconv.ParseUint(f[19], 10, 64)
}
