package xenbus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/govscsi/govscsi/backend/datapath"
	"github.com/govscsi/govscsi/backend/journal"
	"github.com/govscsi/govscsi/backend/vscsiif"
	"github.com/govscsi/govscsi/libxlgo/xenif"
)

// vhost is one backend device. Everything but mu/snap is owned by the
// actor goroutine (run).
type vhost struct {
	b     *Backend
	k     key
	be    string // backend directory
	fe    string // BE/frontend as read at probe
	errp  string // error node path
	log   hclog.Logger
	store xenif.Store

	rel     chan struct{} // closed by release
	relOnce sync.Once
	done    chan struct{} // closed when run returns

	// Actor state.
	state     int // BE state we last wrote
	lastFE    int // FE state last acted on (-1: none)
	lastFERaw string
	failed    bool // a fatal error was raised; wait for the frontend to close
	bad       bool // the frontend details are invalid: never act on that path
	removing  bool // the toolstack wrote BE=5
	removeAt  time.Time
	conn      *datapath.Conn
	events    xenif.EventChannel
	table     *datapath.Table
	devs      map[datapath.Addr]*dev // translations
	lastErr   string
	unregistd bool
	// resumable: at probe the vhost was connected to this frontend's ring
	// (BE 4/7/8, FE 3/4/7): a previous backend process served it, so the
	// first connection resumes that ring (journal) instead of starting
	// one, and its devices are opened before the ring is served.
	resumable bool
	maxSegs   int  // feature-sg-grant this vhost's frontend was told
	forget    bool // the vhost is really removed: its state files go at the end

	mu       sync.Mutex // guards snap and lunsByCT (read by other goroutines)
	snap     VhostInfo
	snapConn *datapath.Conn         // counters are read live from it
	luns     map[[2]uint16][]uint64 // (channel, target) -> LUNs, for REPORT LUNS
}

// dev is one translation: an open LUN at a guest address.
type dev struct {
	name      string // dev-N
	pdev      string
	entry     datapath.Entry
	statePath string // LUNRequest.StatePath
}

func newVhost(b *Backend, k key, be, fe string) *vhost {
	return &vhost{
		b: b, k: k, be: be, fe: fe,
		errp:  b.errs + "/" + k.String() + "/error",
		log:   b.log.With("domid", k.domid, "vhost", k.vhost),
		store: b.cfg.Store,
		rel:   make(chan struct{}),
		done:  make(chan struct{}),
		state: -1, lastFE: -1, maxSegs: b.cfg.MaxSegments,
		table: &datapath.Table{},
		devs:  map[datapath.Addr]*dev{},
		luns:  map[[2]uint16][]uint64{},
	}
}

// release asks the actor to stop because the frontend's domain is gone.
func (v *vhost) release() { v.relOnce.Do(func() { close(v.rel) }) }

func (v *vhost) info() VhostInfo {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := v.snap
	s.Devices = append([]DeviceInfo(nil), s.Devices...)
	if v.snapConn != nil {
		st := v.snapConn.Stats()
		s.Requests, s.Responses, s.Rejected = st.Requests.Load(), st.Responses.Load(), st.Rejected.Load()
		s.Notifies, s.Events, s.Replayed = st.Notifies.Load(), st.Events.Load(), st.Replayed.Load()
	}
	return s
}

// publish refreshes the snapshot other goroutines read.
func (v *vhost) publish() {
	s := VhostInfo{Domid: v.k.domid, Vhost: v.k.vhost, State: v.state, Frontend: v.lastFE,
		Connected: v.conn != nil, Error: v.lastErr}
	luns := map[[2]uint16][]uint64{}
	for a, d := range v.devs {
		s.Devices = append(s.Devices, DeviceInfo{Dev: d.name, Pdev: d.pdev, Addr: a})
		ct := [2]uint16{a.Channel, a.Target}
		luns[ct] = append(luns[ct], uint64(a.LUN))
	}
	v.mu.Lock()
	v.snap = s
	v.snapConn = v.conn
	v.luns = luns
	v.mu.Unlock()
}

func (v *vhost) reportLUNs(a datapath.Addr) func() []uint64 {
	return func() []uint64 {
		v.mu.Lock()
		defer v.mu.Unlock()
		return append([]uint64(nil), v.luns[[2]uint16{a.Channel, a.Target}]...)
	}
}

// run is the actor. It returns true if the vhost was unregistered (so the
// Backend does not probe it again while its nodes exist).
func (v *vhost) run(ctx context.Context) (unregistered bool) {
	defer close(v.done)
	defer v.closeAll()
	mux := v.b.mux
	feCh, cancelFE, err := mux.Watch(v.fe)
	if err != nil {
		v.log.Error("cannot watch the frontend", "path", v.fe, "error", err)
		return false
	}
	defer cancelFE() //nolint:errcheck // best effort
	beCh, cancelBE, err := mux.Watch(v.be)
	if err != nil {
		v.log.Error("cannot watch the backend", "path", v.be, "error", err)
		return false
	}
	defer cancelBE() //nolint:errcheck // best effort

	v.b.checkDomainState(v.k.domid)
	if !v.probe() {
		return v.unregistd
	}
	var timer *time.Timer
	var timerC <-chan time.Time
	for {
		if gone := v.step(); gone {
			return v.unregistd
		}
		v.publish()
		if v.removing && !v.removeAt.IsZero() {
			if timer != nil {
				timer.Stop()
			}
			timer = time.NewTimer(time.Until(v.removeAt))
			timerC = timer.C
		}
		var connDone <-chan struct{}
		if v.conn != nil {
			connDone = v.conn.Done()
		}
		select {
		case <-feCh:
		case <-beCh:
		case <-timerC:
			timerC = nil
			v.removeTimeout()
		case <-connDone:
			err := v.conn.Err()
			v.fatal(syscall.EPROTO, fmt.Sprintf("ring of %s stopped: %v", v.fe, err))
		case <-v.rel:
			v.log.Info("frontend domain gone: disconnecting")
			v.forget = true
			v.disconnect()
			return false
		case <-ctx.Done():
			switch {
			case v.b.killed.Load():
				v.kill()
			case v.b.StopMode() == StopDisconnect:
				v.shutdown(feCh)
			default:
				v.handover()
			}
			return false
		}
	}
}

// ---- xenstore helpers ----

func (v *vhost) read(p string) (string, bool) {
	val, err := v.store.Read(xenif.NoTx, p)
	return val, err == nil
}

// writeIn writes dir/name only if dir still exists, in one transaction,
// like xenbus_switch_state: a removed device must not be re-created by a
// late write.
func (v *vhost) writeIn(dir, name, value string) error {
	return xenif.Transact(v.store, 8, func(tx xenif.Tx) error {
		if _, err := v.store.Read(tx, dir); err != nil {
			return err
		}
		return v.store.Write(tx, dir+"/"+name, value)
	})
}

// setState writes BE/state.
func (v *vhost) setState(s int) {
	if err := v.writeIn(v.be, "state", strconv.Itoa(s)); err != nil {
		if !errors.Is(err, syscall.ENOENT) {
			v.log.Warn("writing backend state", "state", s, "error", err)
		}
		return
	}
	if v.state != s {
		v.log.Debug("backend state", "from", v.state, "to", s)
	}
	v.state = s
}

// fatal is xenbus_dev_fatal: error node "<errno> <message>", disconnect,
// BE state Closing.
func (v *vhost) fatal(errno syscall.Errno, msg string) {
	v.log.Error("fatal error", "errno", int(errno), "error", msg)
	v.lastErr = msg
	if err := v.store.Write(xenif.NoTx, v.errp, strconv.Itoa(int(errno))+" "+msg); err != nil {
		v.log.Warn("writing error node", "path", v.errp, "error", err)
	}
	v.failed = true
	v.disconnect()
	v.setState(xenif.StateClosing)
}

// ---- lifecycle ----

// probe is xenbus probe + scsiback_probe: check the frontend details,
// advertise feature-sg-grant and go to InitWait. A vhost whose frontend
// is already Initialised or Connected (the daemon restarted under a
// running guest) is connected straight away by the first step.
func (v *vhost) probe() bool {
	feid, ok := v.read(v.be + "/frontend-id")
	id, err := ParseDomid(feid)
	switch {
	case !ok:
		return false
	case err != nil || id != v.k.domid:
		v.bad = true
		v.fatal(syscall.EINVAL, fmt.Sprintf("frontend-id %s does not match the backend directory's domain %d", quoteShort(feid), v.k.domid))
		return true
	}
	if err := CheckFrontendPath(v.fe, v.k.domid); err != nil {
		// Reading (or mapping grants announced in) another domain's
		// directory on this vhost's behalf must never happen.
		v.bad = true
		v.fatal(syscall.EINVAL, err.Error())
		return true
	}
	fs, _, present := v.readFE()
	be := -1
	if st, ok := v.read(v.be + "/state"); ok {
		if n, err := ParseState(st); err == nil {
			be = n
		}
	}
	v.resumable = present && (fs == xenif.StateInitialised || fs == xenif.StateConnected || fs == xenif.StateReconfiguring) &&
		(be == xenif.StateConnected || be == xenif.StateReconfiguring || be == xenif.StateReconfigured)
	if v.resumable {
		// The frontend read feature-sg-grant when it connected: keep what
		// it was told (a new config must not refuse its requests).
		if raw, ok := v.read(v.be + "/feature-sg-grant"); ok {
			if n, err := strconv.Atoi(raw); err == nil && n >= vscsiif.MinFeatureSGGrant && n <= vscsiif.SGTableSize*vscsiif.SGPerPage {
				v.maxSegs = n
			}
		}
	}
	if v.maxSegs != v.b.cfg.MaxSegments {
		v.log.Info("keeping the frontend's feature-sg-grant", "feature_sg_grant", v.maxSegs, "configured", v.b.cfg.MaxSegments)
	} else if err := v.writeIn(v.be, "feature-sg-grant", strconv.Itoa(v.maxSegs)); err != nil {
		v.log.Warn("writing feature-sg-grant", "error", err)
		return false
	}
	switch {
	case present && (fs == xenif.StateInitialised || fs == xenif.StateConnected || v.resumable):
		v.log.Info("frontend already connecting: reconnecting", "fe_state", fs, "be_state", be, "resume", v.resumable)
		if be >= 0 {
			v.state = be
		}
	case present && (fs == xenif.StateClosed || fs == xenif.StateInitialising):
		// Nothing to do for these until the frontend moves.
		v.lastFE = fs
		v.setState(xenif.StateInitWait)
	default:
		v.setState(xenif.StateInitWait)
	}
	v.log.Info("vhost probed", "frontend", v.fe)
	return true
}

// readFE reads FE/state: present is false when the node (or the FE
// directory) is missing, which xenbus reads as Unknown.
func (v *vhost) readFE() (state int, raw string, present bool) {
	raw, ok := v.read(v.fe + "/state")
	if !ok {
		return xenif.StateUnknown, "", false
	}
	n, err := ParseState(raw)
	if err != nil {
		return -1, raw, true
	}
	return n, raw, true
}

// step re-reads the nodes and acts. It returns true when the actor must
// stop (unregistered, or the backend directory is gone).
func (v *vhost) step() bool {
	if _, ok := v.read(v.be); !ok {
		v.log.Info("backend directory removed")
		v.forget = true
		return true
	}
	if v.bad {
		// Wait for the toolstack to remove the nodes; libxl's removal
		// (online=0) waits for Closed.
		if online, _ := v.read(v.be + "/online"); online != "1" {
			v.unregister()
			return true
		}
		return false
	}
	fs, raw, present := v.readFE()
	if fs < 0 {
		if raw != v.lastFERaw {
			v.lastFERaw = raw
			v.fatal(syscall.EINVAL, fmt.Sprintf("saw invalid state %s at frontend", quoteShort(raw)))
		}
		// A frontend that leaves garbage in its state node must not
		// block the toolstack's removal: go on to the level-triggered
		// checks below, as for a hung frontend.
	} else {
		v.lastFERaw = raw
		if !present {
			fs = xenif.StateUnknown
		}
	}
	if fs >= 0 && fs != v.lastFE {
		prev := v.lastFE
		v.lastFE = fs
		v.log.Debug("frontend state", "from", prev, "to", fs)
		if v.frontendChanged(fs) {
			return true
		}
	}
	// Level-triggered conditions.
	online, _ := v.read(v.be + "/online")
	if online != "1" && (fs == xenif.StateClosed || fs == xenif.StateUnknown) {
		v.unregister()
		return true
	}
	if !v.removing {
		// libxl's removal writes online=0 and BE state 5; a state 5 we
		// wrote ourselves counts too once online is 0 (a frontend that
		// hung after a fatal error never writes Closed). online=0 alone
		// counts as well: the toolstack's 5 may have been overwritten by
		// a state this backend wrote in the same instant (connecting
		// while the removal came), and online=0 is only ever written
		// for a removal.
		if st, ok := v.read(v.be + "/state"); ok && (st == strconv.Itoa(xenif.StateClosing) && (v.state != xenif.StateClosing || online != "1") || online == "0") {
			v.startRemoval(fs)
			if v.unregistd {
				return true
			}
		}
	}
	return false
}

// frontendChanged is scsiback_frontend_changed plus the userspace
// extras. It returns true if the vhost was unregistered.
func (v *vhost) frontendChanged(fs int) bool {
	switch fs {
	case xenif.StateUnknown:
		v.unregister()
		return true
	case xenif.StateInitialising:
		if v.state == xenif.StateClosed || v.state == xenif.StateClosing || v.state == xenif.StateConnected || v.state == xenif.StateReconfigured {
			v.reprobe("frontend restarted")
		}
	case xenif.StateInitialised:
		if online, _ := v.read(v.be + "/online"); online == "1" && (v.state == xenif.StateClosed || v.state == xenif.StateClosing) {
			// A new frontend instance that skipped Initialising: Linux's
			// xenbus unbind + bind goes Closed -> Initialised. It has no
			// LUNs yet, so offer the devices again as for a reload (P15).
			v.resetForNewFrontend()
		}
		if v.failed {
			return false
		}
		if v.resumable {
			// A backend process connected this ring and died (or handed
			// over) before the frontend went on to Connected.
			if !v.resume() {
				return false
			}
		} else {
			v.disconnect() // a resuming frontend announces a new ring
			if !v.connect(false) {
				return false
			}
		}
		v.addOrDel()
		v.setState(xenif.StateConnected)
	case xenif.StateConnected:
		if v.failed {
			return false
		}
		if v.conn == nil {
			// A daemon restart: the devices first, so that the requests
			// queued in the ring meanwhile find their LUNs.
			if v.resumable {
				if !v.resume() {
					return false
				}
			} else {
				v.restoreDevs()
				if !v.connect(false) {
					return false
				}
			}
		}
		v.restoreDevs() // re-opens devices after a daemon restart
		v.updateDev()
		if v.state != xenif.StateConnected {
			v.setState(xenif.StateConnected)
		}
	case xenif.StateClosing:
		v.disconnect()
		v.setState(xenif.StateClosing)
	case xenif.StateClosed:
		v.disconnect()
		v.setState(xenif.StateClosed)
		v.removing = false
		// Ready for the next frontend instance (P15) unless the toolstack
		// is removing the vhost (online=0: step unregisters it) or it
		// failed (the error node stays for the admin). A Linux frontend
		// re-probed after unbind/bind or a module reload writes
		// Initialised at once and treats a backend it finds Closed as
		// "missed Closing": it closes again. So the backend must already
		// wait in InitWait, which an old frontend ignores.
		if online, _ := v.read(v.be + "/online"); online == "1" && !v.failed {
			v.reprobe("frontend closed, vhost still online")
		}
	case xenif.StateReconfiguring:
		if v.failed {
			return false
		}
		if v.conn == nil && v.resumable && !v.resume() {
			return false
		}
		v.addOrDel()
		v.setState(xenif.StateReconfigured)
	default: // InitWait, Reconfigured: only a backend may be there
		v.fatal(syscall.EINVAL, fmt.Sprintf("saw state %d at frontend", fs))
	}
	return false
}

// reprobe goes back to InitWait for a frontend that starts over (P15):
// devices the old frontend had are offered to the new one again.
func (v *vhost) reprobe(why string) {
	v.log.Info(why + ": back to InitWait")
	v.resetForNewFrontend()
	v.setState(xenif.StateInitWait)
}

// resetForNewFrontend forgets the old frontend instance: the ring, a
// fatal error it caused, and which devices it had (connected devices go
// back to Initialised so the new instance adds them).
func (v *vhost) resetForNewFrontend() {
	v.disconnect()
	v.resumable = false
	v.maxSegs = v.b.cfg.MaxSegments
	v.failed = false
	v.lastErr = ""
	_ = v.store.Rm(xenif.NoTx, v.errp)
	for _, d := range v.devs {
		dp := v.be + "/vscsi-devs/" + d.name
		if st, ok := v.read(dp + "/state"); ok && st == strconv.Itoa(xenif.StateConnected) {
			_ = v.writeIn(dp, "state", "3")
		}
	}
	_ = v.writeIn(v.be, "feature-sg-grant", strconv.Itoa(v.maxSegs))
}

// resume connects to the ring a previous backend process served: the
// devices are opened first (requests queued while no backend ran must find
// their LUNs), then the ring is resumed from the journal.
func (v *vhost) resume() bool {
	v.resumable = false
	if v.lastFE == xenif.StateInitialised && v.newRingSinceJournal() {
		// The guest re-probed its frontend while no backend ran (FE went
		// Closed and came back with a new ring): a new frontend instance,
		// which adds only devices offered in state 3 (P15).
		v.log.Info("the frontend made a new ring while no backend ran: offering the devices again")
		v.offerDevicesAgain()
		return v.connect(false)
	}
	v.restoreDevs()
	return v.connect(true)
}

// newRingSinceJournal: the ring the frontend announces is not the one the
// previous backend process journaled.
func (v *vhost) newRingSinceJournal() bool {
	p := v.journalPath()
	if p == "" {
		return false
	}
	id, err := journal.ReadIdentity(p)
	if err != nil {
		return false
	}
	rawRef, _ := v.read(v.fe + "/ring-ref")
	rawPort, _ := v.read(v.fe + "/event-channel")
	ref, err1 := ParseRingRef(rawRef)
	port, err2 := ParseEventChannel(rawPort)
	return err1 == nil && err2 == nil && (id.Domid != v.k.domid || id.RingRef != ref || id.Port != port)
}

// offerDevicesAgain moves every device in state 4 back to 3, for a new
// frontend instance.
func (v *vhost) offerDevicesAgain() {
	for _, name := range v.devNames() {
		dp := v.be + "/vscsi-devs/" + name
		if st, ok := v.read(dp + "/state"); ok && st == strconv.Itoa(xenif.StateConnected) {
			_ = v.writeIn(dp, "state", strconv.Itoa(xenif.StateInitialised))
		}
	}
}

// connect reads the ring details and starts the data path (resume: the
// ring a previous process served, see datapath.Config.Resume). On failure
// it raises a fatal error and returns false.
func (v *vhost) connect(resume bool) bool {
	rawRef, ok1 := v.read(v.fe + "/ring-ref")
	rawPort, ok2 := v.read(v.fe + "/event-channel")
	if !ok1 || !ok2 {
		v.fatal(syscall.ENOENT, fmt.Sprintf("reading %s/ring-ref and event-channel: missing", v.fe))
		return false
	}
	ref, err := ParseRingRef(rawRef)
	if err != nil {
		v.fatal(syscall.EINVAL, fmt.Sprintf("reading %s: %v", v.fe, err))
		return false
	}
	port, err := ParseEventChannel(rawPort)
	if err != nil {
		v.fatal(syscall.EINVAL, fmt.Sprintf("reading %s: %v", v.fe, err))
		return false
	}
	ev, err := v.b.cfg.OpenEvents()
	if err != nil {
		v.fatal(errnoOf(err), fmt.Sprintf("opening an event channel: %v", err))
		return false
	}
	conn, err := datapath.Start(datapath.Config{
		FrontendDomid: v.k.domid, RingRef: ref, RemotePort: port,
		Grants: v.b.cfg.Grants, Events: ev, Resolver: v.table,
		MaxSegments: v.maxSegs, Workers: v.b.cfg.Workers,
		Logger:      v.log.Named("ring"),
		JournalPath: v.journalPath(), Resume: resume,
	})
	if err != nil {
		ev.Close()
		v.fatal(errnoOf(err), fmt.Sprintf("mapping ring-ref %d, port %d: %v", ref, port, err))
		return false
	}
	v.conn, v.events = conn, ev
	v.log.Info("connected", "ring_ref", ref, "port", port, "local_port", conn.Port(), "resumed", resume)
	return true
}

// disconnect stops the data path within TeardownTimeout (P23).
func (v *vhost) disconnect() {
	if v.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), v.b.cfg.TeardownTimeout)
	defer cancel()
	if err := v.conn.Stop(ctx); err != nil {
		v.log.Warn("teardown incomplete", "error", err)
	}
	if err := v.events.Close(); err != nil {
		v.log.Warn("closing event channel", "error", err)
	}
	v.conn, v.events = nil, nil
	v.log.Info("disconnected")
}

// unregister is device removal: disconnect, drop every translation and
// write Closed (the xenbus core does that for Linux).
func (v *vhost) unregister() {
	v.log.Info("unregistering")
	v.forget = true
	v.disconnect()
	v.dropAll(true)
	if v.state != xenif.StateClosed {
		v.setState(xenif.StateClosed)
	}
	v.unregistd = true
}

// startRemoval handles BE state 5 written by the toolstack (libxl's
// device removal). A connected frontend gets RemoveTimeout to close;
// otherwise the backend closes at once.
func (v *vhost) startRemoval(fs int) {
	v.removing = true
	v.state = xenif.StateClosing
	if v.conn != nil && (fs == xenif.StateInitialised || fs == xenif.StateConnected || fs == xenif.StateReconfiguring) {
		v.log.Info("toolstack asked for removal; waiting for the frontend", "timeout", v.b.cfg.RemoveTimeout)
		v.removeAt = time.Now().Add(v.b.cfg.RemoveTimeout)
		return
	}
	v.log.Info("toolstack asked for removal; frontend not connected: closing")
	v.closeForRemoval()
}

func (v *vhost) removeTimeout() {
	if !v.removing || v.state == xenif.StateClosed {
		return
	}
	v.log.Warn("frontend did not close in time: closing without it")
	v.closeForRemoval()
}

func (v *vhost) closeForRemoval() {
	v.removeAt = time.Time{}
	v.disconnect()
	online, _ := v.read(v.be + "/online")
	if online != "1" {
		v.unregister()
		return
	}
	v.setState(xenif.StateClosed)
}

// shutdown is the daemon stopping: Closing, give the frontend
// ShutdownTimeout to close, disconnect, Closed. Translations are dropped
// (LUNs closed) by closeAll.
func (v *vhost) shutdown(feCh <-chan xenif.WatchEvent) {
	if v.conn == nil {
		// Not connected: leave the state as it is, so a frontend that
		// arrives while the daemon is down is served after a restart.
		return
	}
	v.setState(xenif.StateClosing)
	deadline := time.NewTimer(v.b.cfg.ShutdownTimeout)
	defer deadline.Stop()
wait:
	for {
		fs, _, present := v.readFE()
		if !present || fs == xenif.StateClosing || fs == xenif.StateClosed || fs < 0 {
			break
		}
		select {
		case <-feCh:
		case <-deadline.C:
			v.log.Warn("frontend did not close before shutdown timeout")
			break wait
		}
	}
	v.disconnect()
	v.setState(xenif.StateClosed)
}

// handover is the daemon stopping for the next process (StopHandover):
// xenstore stays as it is, the ring is left with every consumed request
// answered (bounded by HandoverTimeout; a command stuck in its LUN stays in
// the journal), the ring unmapped and the port closed. The LUNs are closed
// by closeAll, their state files kept.
func (v *vhost) handover() {
	if v.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), v.b.cfg.HandoverTimeout)
	defer cancel()
	left, err := v.conn.Handover(ctx)
	if err != nil {
		v.log.Warn("handover incomplete: the next backend executes the rest again", "unanswered", left, "error", err)
	}
	if err := v.events.Close(); err != nil {
		v.log.Warn("closing event channel", "error", err)
	}
	v.conn, v.events = nil, nil
	v.b.handedOver.Add(1)
	v.log.Info("left connected for the next backend", "unanswered", left)
}

// kill is the process dying (tests: Backend.kill): no xenstore write, no
// response; what the kernel would release is released.
func (v *vhost) kill() {
	if v.conn == nil {
		return
	}
	v.conn.Kill()
	v.events.Close() //nolint:errcheck // as the kernel would
	v.conn, v.events = nil, nil
}

// closeAll runs when the actor ends: nothing may stay mapped or open. The
// state files go only if the vhost is really removed.
func (v *vhost) closeAll() {
	v.disconnect()
	v.dropAll(v.forget)
	if v.forget {
		v.forgetState()
	}
	v.publish()
}

func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) && e != 0 {
		return e
	}
	return syscall.EIO
}
