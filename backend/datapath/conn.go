package datapath

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/govscsi/govscsi/backend/journal"
	"github.com/govscsi/govscsi/backend/ring"
	"github.com/govscsi/govscsi/backend/vscsiif"
	"github.com/govscsi/govscsi/libxlgo/xenif"
)

// DefaultMaxSegments is the feature-sg-grant value a backend should
// advertise (P27): the same 128 data segments (512 KiB) as Linux.
const DefaultMaxSegments = vscsiif.MaxSegmentsLinux

// maxMaxSegments bounds MaxSegments: 26 indirect pages of 512 entries.
const maxMaxSegments = vscsiif.SGTableSize * vscsiif.SGPerPage

// GrantDevice is what a connection needs from the grant-table device: map the
// ring page and copy data and indirect SG lists.
type GrantDevice interface {
	xenif.GrantCopier
	xenif.GrantMapper
}

// Config starts a connection. The first three fields come from the
// frontend's xenstore directory.
type Config struct {
	FrontendDomid uint32 // frontend-id
	RingRef       uint32 // FE/ring-ref
	RemotePort    uint32 // FE/event-channel (the frontend's unbound port)

	Grants GrantDevice
	// Events must be dedicated to this connection: the loop reads every
	// event delivered on it. Stop unbinds the port but does not close it.
	Events   xenif.EventChannel
	Resolver Resolver

	// MaxSegments is the feature-sg-grant value advertised to the frontend
	// (data segments per request). 0 means DefaultMaxSegments; values
	// below 26 are raised to 26 (the protocol minimum).
	MaxSegments int
	// Workers is the number of goroutines running non-inline LUNs. 0 means
	// one per request slot (32: twice the ring size), so every command has
	// a worker and a LUN that hangs can never hold up another LUN's
	// commands; fewer workers save goroutines but allow that head-of-line
	// blocking. Idle workers cost only their stacks.
	Workers int
	// Logger receives protocol errors (rate-limited); nil discards them.
	Logger hclog.Logger

	// JournalPath, when set, is the in-flight journal of this ring
	// (package journal): a file on tmpfs through which the next process
	// answers the requests this one took from the ring and did not
	// answer. Without it a crash loses them (the guest's SCSI error
	// handling has to recover).
	JournalPath string
	// Resume attaches to a ring a previous process served (a daemon
	// restart under a connected guest): requests that process left
	// unanswered in the journal are executed again before any new one,
	// consumption continues where it stopped, and the frontend gets one
	// event (it may have notified while no backend was bound). Without
	// Resume the journal is started afresh.
	Resume bool

	// pollOnly makes the loop wait with poll(2) on Events.Fd() plus an
	// eventfd instead of WaitPending (tests: every xenif.EventChannel has
	// WaitPending, so nothing else reaches the fallback).
	pollOnly bool
	// crashAt, in tests, is called at the journal's ordering points with
	// mu held; returning true makes the connection die there as a killed
	// process would (nothing more reaches the ring or the journal).
	crashAt func(point string) bool
}

// ErrRing wraps every ring protocol violation reported by Err.
var ErrRing = errors.New("datapath: ring protocol violation")

// Conn is one connected vhost.
type Conn struct {
	cfg      Config
	log      hclog.Logger
	maxSegs  int
	port     uint32 // local event-channel port
	page     []byte
	ring     *ring.Back
	resolver Resolver
	grants   GrantDevice
	events   xenif.EventChannel
	wake     *waker
	netpoll  bool // the loop waits in WaitPending (else poll(2), waker.wait)

	// mu guards the ring's response side and all slot state. The loop
	// goroutine is the only consumer of requests but takes mu for that too,
	// because the overflow check reads rsp_prod_pvt.
	mu       sync.Mutex
	slots    []*slot
	free     []*slot
	unpushed []*slot // released since the last push (recycleLocked)
	jnl      *journal.File
	redo     []*slot // requests from the journal, executed before the ring's
	resumed  bool    // attached to a ring a previous process served
	starved  bool    // the loop stopped consuming for lack of free slots
	batching bool    // the loop is draining: inline responses wait for one push
	batchSeq uint64  // drain batches started (WaitIdle tells them apart)
	ringGone bool    // ring unmapped or dead: never touch it again
	closed   bool

	work      chan *slot
	workers   int
	running   bool // run was called: loop and workers exist
	workersWG sync.WaitGroup
	// finishing: worker commands that left their LUN and are not answered
	// yet; the last one to answer pushes (workerUnlockAndPush).
	finishing atomic.Int32
	stopping  atomic.Bool // the loop must stop consuming (Stop, Handover)
	aborting  atomic.Bool // Stop: commands not started yet are dropped
	left      int         // Handover: requests left unanswered for the next process
	loopDone  chan struct{}
	done      chan struct{}
	doneOnce  sync.Once
	err       error
	stopOnce  sync.Once
	stopErr   error
	limiter   logLimiter
	counters  Counters
	masked    bool // loop-owned: an event was taken and the port awaits unmask
	lastDrain drainResult
	loopCtx   context.Context // cancelled by Stop: ends WaitPending
	cancel    context.CancelFunc
	ringBatch []*slot
	group     []*slot   // loop-owned: CDB requests of the batch (batch.go)
	cb        copyBatch // loop-owned: grant-copy ops of one group phase
}

// Counters are cumulative statistics of a connection.
type Counters struct {
	Requests  atomic.Uint64 // requests consumed from the ring
	Responses atomic.Uint64 // responses written
	Rejected  atomic.Uint64 // requests answered with an error before reaching a LUN
	Notifies  atomic.Uint64 // events sent to the frontend
	Events    atomic.Uint64 // events received from the frontend
	Replayed  atomic.Uint64 // requests executed again from the journal
}

// Start maps the ring, binds the event channel and starts serving.
func Start(cfg Config) (*Conn, error) {
	c, err := newConn(cfg)
	if err != nil {
		return nil, err
	}
	c.run()
	return c, nil
}

// newConn sets a connection up without starting goroutines (tests and
// benchmarks drive service directly).
func newConn(cfg Config) (*Conn, error) {
	if cfg.Grants == nil || cfg.Events == nil || cfg.Resolver == nil {
		return nil, errors.New("datapath: Config needs Grants, Events and Resolver")
	}
	c := &Conn{cfg: cfg, resolver: cfg.Resolver, grants: cfg.Grants, events: cfg.Events,
		log: cfg.Logger, loopDone: make(chan struct{}), done: make(chan struct{})}
	if c.log == nil {
		c.log = hclog.NewNullLogger()
	}
	c.maxSegs = cfg.MaxSegments
	if c.maxSegs == 0 {
		c.maxSegs = DefaultMaxSegments
	}
	c.maxSegs = min(max(c.maxSegs, vscsiif.SGTableSize), maxMaxSegments)
	workers := cfg.Workers

	page, err := c.grants.MapGrantRefs(cfg.FrontendDomid, []uint32{cfg.RingRef}, true)
	if err != nil {
		return nil, fmt.Errorf("datapath: map ring-ref %d of dom %d: %w", cfg.RingRef, cfg.FrontendDomid, err)
	}
	c.page = page
	c.ring, err = ring.NewBack(page, vscsiif.RequestSize)
	if err != nil {
		c.grants.Unmap(page) //nolint:errcheck // already failing
		return nil, err
	}
	_, c.netpoll = c.events.(pendingWaiter)
	c.netpoll = c.netpoll && !cfg.pollOnly
	if c.wake, err = newWaker(!c.netpoll); err != nil {
		c.grants.Unmap(page) //nolint:errcheck // already failing
		return nil, err
	}

	// Twice the ring size: a command whose ABORT was answered keeps its slot
	// (and buffer) until the LUN returns, while the frontend may reuse the
	// ring slot at once.
	n := 2 * c.ring.Size()
	c.slots = make([]*slot, n)
	c.free = make([]*slot, 0, n)
	// The private copies of indirect SG lists live in one allocation, so a
	// batched copy of many requests' lists pins one Go object. Each slot's
	// slice keeps the arena's end as its capacity end: that is how the
	// gnttab wrapper recognises slices of one object (never append to it).
	sglSize := c.maxSegs * vscsiif.SegmentSize
	arena := make([]byte, n*sglSize)
	for i := range c.slots {
		s := newSlot(i, c.maxSegs, arena[i*sglSize:(i+1)*sglSize])
		c.slots[i] = s
		c.free = append(c.free, s)
	}
	c.unpushed = make([]*slot, 0, n)
	c.resumed = cfg.Resume
	if cfg.JournalPath != "" {
		if err := c.openJournal(); err != nil {
			c.wake.close()
			c.grants.Unmap(page) //nolint:errcheck // already failing
			return nil, err
		}
	}
	c.ringBatch = make([]*slot, 0, n)
	c.group = make([]*slot, 0, n)
	// Room for a full ring of requests of up to 32 segments each, and
	// always for one request at the segment limit; bigger groups take more
	// than one call per phase.
	nops := max(c.maxSegs, c.ring.Size()*32)
	c.cb = copyBatch{ops: make([]xenif.GrantCopyOp, 0, nops), slots: make([]*slot, 0, n)}
	c.work = make(chan *slot, n)
	if workers <= 0 {
		workers = n
	}
	c.workers = workers
	// Bound last: from here on the frontend's events reach us.
	c.port, err = c.events.BindInterdomain(cfg.FrontendDomid, cfg.RemotePort)
	if err != nil {
		c.wake.close()
		c.jnl.Close()        //nolint:errcheck // already failing; the file stays
		c.grants.Unmap(page) //nolint:errcheck // already failing
		return nil, fmt.Errorf("datapath: bind event channel %d of dom %d: %w", cfg.RemotePort, cfg.FrontendDomid, err)
	}
	return c, nil
}

// openJournal creates the connection's journal, or with Resume takes over
// the previous process's: the requests it left unanswered go to c.redo (in
// ring order, in the slots they had) and consumption continues at its
// req_cons. A journal that does not fit the ring is discarded with a log
// line, and the connection starts at rsp_prod.
func (c *Conn) openJournal() error {
	id := journal.Identity{Domid: c.cfg.FrontendDomid, RingRef: c.cfg.RingRef, Port: c.cfg.RemotePort,
		Slots: len(c.slots), RingSize: c.ring.Size()}
	path := c.cfg.JournalPath
	if c.cfg.Resume {
		f, snap, err := journal.Open(path, id)
		var redo []journal.Entry
		if err == nil {
			redo, err = snap.Redo(c.ring.RspProd(), c.ring.ReqProd())
		}
		if err == nil {
			err = c.ring.ResumeAt(snap.ReqCons)
		}
		if err == nil {
			c.takeOver(f, snap, redo)
			return nil
		}
		if f != nil {
			f.Close() //nolint:errcheck // replaced below
		}
		if errors.Is(err, os.ErrNotExist) {
			c.log.Info("no in-flight journal: attaching at rsp_prod", "journal", path, "rsp_prod", c.ring.RspProd())
		} else {
			c.log.Warn("discarding the in-flight journal: attaching at rsp_prod", "journal", path, "reason", err,
				"rsp_prod", c.ring.RspProd(), "req_prod", c.ring.ReqProd())
		}
	}
	f, err := journal.Create(path, id, c.ring.ReqCons())
	if err != nil {
		return fmt.Errorf("datapath: %w", err)
	}
	c.jnl = f
	return nil
}

// takeOver adopts a journal that fits the ring: entries already published
// are freed, the ones to execute again become consumed (an answer the old
// process wrote but never published is void) and their slots are claimed.
// Each step keeps the file valid for yet another restart.
func (c *Conn) takeOver(f *journal.File, snap journal.Snapshot, redo []journal.Entry) {
	again := make(map[int]bool, len(redo))
	for _, e := range redo {
		again[e.Slot] = true
	}
	for _, e := range snap.Entries {
		if !again[e.Slot] {
			f.Free(e.Slot)
		}
	}
	c.free = c.free[:0]
	for _, s := range c.slots {
		if !again[s.idx] {
			c.free = append(c.free, s)
		}
	}
	for _, e := range redo {
		f.Consumed(e.Slot, e.Index, e.Request[:])
		s := c.slots[e.Slot]
		copy(s.raw[:], e.Request[:]) // the one copy: decoded and validated as a fresh request
		s.state = stateClaimed
		c.redo = append(c.redo, s)
	}
	c.jnl = f
	c.log.Info("resuming the ring of a previous process", "journal", f.Path(), "req_cons", snap.ReqCons,
		"rsp_prod", c.ring.RspProd(), "req_prod", c.ring.ReqProd(), "executed_again", len(redo))
}

// crashed reports whether the crashAt test hook killed the connection at
// point; then the calling goroutine must end (the caller holds mu and
// returns through runtime.Goexit).
func (c *Conn) crashed(point string) bool {
	if c.cfg.crashAt == nil || !c.cfg.crashAt(point) {
		return false
	}
	c.deadLocked()
	c.mu.Unlock()
	runtime.Goexit()
	return true
}

// deadLocked makes the connection write nothing more to the ring or the
// journal, as if its process had died.
func (c *Conn) deadLocked() {
	c.ringGone = true
	c.closed = true
	c.stopping.Store(true)
	if c.jnl != nil {
		c.jnl.Close() //nolint:errcheck // the file stays for the next process
		c.jnl = nil
	}
}

// Kill drops the connection the way the death of its process does: nothing
// more is written to the ring or the journal (which stays for the next
// process), no request is answered, the port is unbound and the ring
// unmapped (what the kernel does when the process's devices close).
// Commands inside a LUN keep running to their end and are then dropped.
// Tests use it to simulate a crash (SIGKILL) of the daemon; the daemon
// never calls it.
func (c *Conn) Kill() {
	c.stopOnce.Do(func() {
		c.mu.Lock()
		c.deadLocked()
		c.mu.Unlock()
		if c.running {
			c.cancel()
			c.wake.signal()
			<-c.loopDone
		}
		c.mu.Lock()
		c.wake.close()
		c.mu.Unlock()
		close(c.work)
		c.events.Unbind(c.port) //nolint:errcheck // as the kernel would
		c.grants.Unmap(c.page)  //nolint:errcheck // as the kernel would
	})
}

// run starts the worker pool and the ring goroutine.
func (c *Conn) run() {
	c.running = true
	c.loopCtx, c.cancel = context.WithCancel(context.Background())
	for i := 0; i < c.workers; i++ {
		c.workersWG.Add(1)
		go c.worker()
	}
	go c.loop()
}

// Port is the local event-channel port.
func (c *Conn) Port() uint32 { return c.port }

// MaxSegments is the feature-sg-grant value this connection enforces.
func (c *Conn) MaxSegments() int { return c.maxSegs }

// Stats returns the connection's counters.
func (c *Conn) Stats() *Counters { return &c.counters }

// Done is closed when the loop ended by itself (a ring protocol violation
// or an event-channel failure); Err then says why. It is not closed by Stop.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is the fatal error that closed Done, or nil.
func (c *Conn) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

func (c *Conn) fail(err error) {
	c.doneOnce.Do(func() {
		c.err = err
		close(c.done)
	})
	c.log.Error("vhost ring stopped; event channel stays masked", "domid", c.cfg.FrontendDomid, "error", err)
}

// Stop tears the connection down within ctx's deadline (P23): it stops the
// loop, answers every command still running with DID_ABORT (so a live
// frontend gets exactly one response per rqid), waits for responses being
// completed, then unbinds the port and unmaps the ring. Commands stuck in a
// LUN keep only their private buffers; they are dropped when the LUN
// returns. Stop returns an error if workers were still busy at the
// deadline, but the guest's resources are released either way.
func (c *Conn) Stop(ctx context.Context) error {
	c.stopOnce.Do(func() { c.stopErr = c.stop(ctx) })
	return c.stopErr
}

func (c *Conn) stop(ctx context.Context) error {
	c.aborting.Store(true)
	c.stopping.Store(true)
	if c.running {
		c.cancel()
		c.wake.signal()
		<-c.loopDone
	}

	c.mu.Lock()
	for _, s := range c.slots {
		if s.state == stateRunning && !s.aborted {
			s.aborted = true
			c.writeResponseLocked(s, vscsiif.Rslt(vscsiif.HostAbort, 0), nil, 0)
			// TMFs waiting for it are answered too: the ring is going away.
			c.answerWaitersLocked(s)
		}
	}
	notify := c.pushLocked()
	c.mu.Unlock()
	c.notify(notify) // the port is still bound

	// Responses in the middle of their copy-out finish quickly (one grant
	// copy); wait for them so none is cut off.
	var errs []error
	for {
		c.mu.Lock()
		busy := 0
		for _, s := range c.slots {
			if s.state == stateCompleting || s.state == stateTMF {
				busy++
			}
		}
		if busy == 0 || ctx.Err() != nil {
			c.ringGone = true
			c.closed = true
			c.wake.close()
			jnl := c.jnl
			c.jnl = nil
			c.mu.Unlock()
			// Every request was answered: the connection is over and
			// nothing is left for a next process.
			if err := jnl.Remove(); err != nil {
				errs = append(errs, err)
			}
			if busy > 0 {
				errs = append(errs, fmt.Errorf("datapath: %d responses unfinished at teardown: %w", busy, ctx.Err()))
			}
			break
		}
		c.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	close(c.work)
	if err := c.events.Unbind(c.port); err != nil {
		errs = append(errs, fmt.Errorf("datapath: unbind port %d: %w", c.port, err))
	}
	if err := c.grants.Unmap(c.page); err != nil {
		errs = append(errs, fmt.Errorf("datapath: unmap ring: %w", err))
	}
	workersDone := make(chan struct{})
	go func() { c.workersWG.Wait(); close(workersDone) }()
	select {
	case <-workersDone:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("datapath: LUN commands still running at teardown: %w", ctx.Err()))
	}
	return errors.Join(errs...)
}

// Handover ends the connection for the next process, leaving the guest
// connected (a daemon restart or upgrade): the loop stops taking requests
// (those not consumed stay in the ring), the commands already taken finish
// normally and their responses are published and notified, within ctx's
// deadline; then the port is unbound and the ring unmapped. Nothing is
// answered with an error because of the stop. A command still unanswered
// at the deadline (a LUN that hangs) stays in the journal, so the next
// process executes it again; Handover returns how many did. The journal
// file is kept.
func (c *Conn) Handover(ctx context.Context) (left int, err error) {
	c.stopOnce.Do(func() { c.stopErr = c.handover(ctx) })
	return c.left, c.stopErr
}

func (c *Conn) handover(ctx context.Context) error {
	c.stopping.Store(true)
	if c.running {
		c.cancel()
		c.wake.signal()
		<-c.loopDone
	}
	var errs []error
	for {
		c.mu.Lock()
		busy, unanswered := 0, 0
		for _, s := range c.slots {
			if s.state != stateFree {
				busy++
				if !s.aborted {
					unanswered++
				}
			}
		}
		notify := c.pushLocked() // workers push too; this catches the last
		if busy == 0 || ctx.Err() != nil {
			c.left = unanswered
			c.ringGone = true
			c.closed = true
			c.wake.close()
			jnl := c.jnl
			c.jnl = nil
			c.mu.Unlock()
			c.notify(notify)
			if err := jnl.Close(); err != nil {
				errs = append(errs, err)
			}
			if busy > 0 {
				errs = append(errs, fmt.Errorf("datapath: %d commands still in their LUN at handover (%d unanswered, left to the next process): %w",
					busy, unanswered, ctx.Err()))
			}
			break
		}
		c.mu.Unlock()
		c.notify(notify)
		time.Sleep(time.Millisecond)
	}
	close(c.work)
	if err := c.events.Unbind(c.port); err != nil {
		errs = append(errs, fmt.Errorf("datapath: unbind port %d: %w", c.port, err))
	}
	if err := c.grants.Unmap(c.page); err != nil {
		errs = append(errs, fmt.Errorf("datapath: unmap ring: %w", err))
	}
	return errors.Join(errs...)
}

// WaitIdle returns once no command addressed to a is in flight on this
// connection (for hot remove: Table.Remove, then WaitIdle, then Close the
// LUN), or when ctx ends. Commands already answered by an ABORT but still
// inside the LUN count as in flight: the LUN must not be closed under them.
// So do a LUN RESET of a that is still running, and the drain batch in
// progress when WaitIdle is called: it may have looked a up before the
// Remove and still be copying data in; batches started later cannot find a
// any more.
func (c *Conn) WaitIdle(ctx context.Context, a Addr) error {
	c.mu.Lock()
	inBatch, seq := c.batching, c.batchSeq
	c.mu.Unlock()
	for {
		c.mu.Lock()
		busy := inBatch && c.batching && c.batchSeq == seq
		for _, s := range c.slots {
			if (s.state == stateRunning || s.state == stateCompleting || s.resetting()) && s.addr == a {
				busy = true
				break
			}
		}
		c.mu.Unlock()
		if !busy {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

// pendingWaiter is implemented by event-channel devices that can wait in
// Go's netpoller (libxlgo/evtchn.Handle and xenfake.EventChannel both do):
// the loop then parks without holding an OS thread, and Stop cancels the
// wait through the context.
type pendingWaiter interface {
	WaitPending(ctx context.Context) (uint32, error)
}

// drainResult says why drain returned.
type drainResult uint8

const (
	drainEmpty   drainResult = iota // ring empty after the final check
	drainStarved                    // requests left but no free slot
	drainYield                      // batch limit reached; more may be pending
)

// loop is the ring goroutine: drain the ring, then wait for an event (or,
// when slots ran out, for a worker to free one). The port is unmasked only
// once the ring is fully drained; after a protocol violation the loop
// returns without unmasking.
func (c *Conn) loop() {
	defer close(c.loopDone)
	// A LUN over a mapped file (RAM disks on tmpfs) faults instead of
	// failing a read or write; runLUN turns the panic into DID_ERROR.
	debug.SetPanicOnFault(true)
	wp, _ := c.events.(pendingWaiter)
	netpoll := c.netpoll
	if c.resumed {
		// The frontend's events went nowhere while no backend was bound,
		// and the previous process may have died between publishing
		// responses and notifying: one event makes it look at the ring.
		c.notify(true)
	}
	for {
		// The first pass also picks up requests queued before we bound.
		if !c.service() || c.stopping.Load() {
			return
		}
		switch c.lastDrain {
		case drainYield:
			continue
		case drainStarved:
			if netpoll {
				select {
				case <-c.wake.kick:
				case <-c.loopCtx.Done():
					return
				}
				continue
			}
			// The poll below also returns on the waker's eventfd.
		}
		var port uint32
		var got bool
		var err error
		if netpoll {
			port, err = wp.WaitPending(c.loopCtx)
			got = err == nil
		} else if got, err = c.wake.wait(c.events.Fd()); err == nil && got && !c.stopping.Load() {
			port, err = c.events.Pending()
		}
		if c.stopping.Load() {
			return
		}
		if err != nil {
			c.fail(fmt.Errorf("datapath: wait for event channel: %w", err))
			return
		}
		if got {
			c.counters.Events.Add(1)
			if port == c.port {
				c.masked = true
			} else if err := c.events.Unmask(port); err != nil { // not ours; don't leave it masked
				c.fail(fmt.Errorf("datapath: unmask stray port %d: %w", port, err))
				return
			}
		}
	}
}

// service drains the ring and unmasks the port if nothing is left. It
// reports false after a fatal error.
func (c *Conn) service() bool {
	if c.redo != nil {
		c.replay()
	}
	res, err := c.drain()
	c.lastDrain = res
	if err != nil {
		c.mu.Lock()
		c.ring.Stop()
		c.ringGone = true
		c.mu.Unlock()
		c.fail(fmt.Errorf("%w: %w", ErrRing, err))
		return false
	}
	if res == drainEmpty && c.masked {
		if err := c.events.Unmask(c.port); err != nil {
			c.fail(fmt.Errorf("datapath: unmask port %d: %w", c.port, err))
			return false
		}
		c.masked = false
	}
	return true
}

// maxBatchesPerService bounds one service pass: a frontend that keeps the
// ring full (or rewrites its own indices through a READ into the ring page)
// must not keep the loop from noticing Stop.
const maxBatchesPerService = 64

// drain consumes requests until the ring is empty (after the final check),
// no slot is free, or maxBatchesPerService batches were done.
func (c *Conn) drain() (drainResult, error) {
	for batches := 0; ; batches++ {
		if batches == maxBatchesPerService || c.stopping.Load() {
			return drainYield, nil
		}
		c.mu.Lock()
		n, err := c.ring.Unconsumed()
		if err != nil {
			c.mu.Unlock()
			return drainEmpty, err
		}
		if n == 0 {
			more, err := c.ring.FinalCheckForRequests()
			c.mu.Unlock()
			if err != nil || !more {
				return drainEmpty, err
			}
			continue
		}
		batch := c.ringBatch[:0]
		for ; n > 0 && len(c.free) > 0; n-- {
			s := c.free[len(c.free)-1]
			c.free = c.free[:len(c.free)-1]
			c.ring.CopyRequest(s.raw[:])
			if c.jnl != nil {
				// Request copy, then its entry; req_cons after the batch.
				c.jnl.Consumed(s.idx, c.ring.ReqCons()-1, s.raw[:])
				if c.crashed("consumed") {
					return drainEmpty, nil
				}
			}
			s.state = stateClaimed
			batch = append(batch, s)
		}
		if c.jnl != nil {
			c.jnl.SetReqCons(c.ring.ReqCons())
			if c.crashed("journaled") {
				return drainEmpty, nil
			}
		}
		c.starved = n > 0
		c.mu.Unlock()
		if c.runBatch(batch) {
			return drainStarved, nil // recycleLocked signals the waker
		}
	}
}

// runBatch runs requests claimed from the ring (or the journal): decoded,
// validated, grouped and answered or handed to workers, then one push. It
// reports whether the loop ran out of free slots meanwhile.
func (c *Conn) runBatch(batch []*slot) (starved bool) {
	c.mu.Lock()
	c.batching = true
	c.batchSeq++
	c.mu.Unlock()

	c.counters.Requests.Add(uint64(len(batch)))
	for _, s := range batch {
		c.prepare(s)
	}
	c.runGroup()

	c.mu.Lock()
	c.batching = false
	notify := c.pushLocked()
	starved = c.starved // cleared by a push that freed slots meanwhile
	c.mu.Unlock()
	c.notify(notify)
	return starved
}

// replay executes the requests the previous process left unanswered (from
// the journal, in ring order) before any new request is consumed.
func (c *Conn) replay() {
	redo := c.redo
	c.redo = nil
	c.counters.Replayed.Add(uint64(len(redo)))
	c.runBatch(redo)
}

// worker runs non-inline commands.
func (c *Conn) worker() {
	defer c.workersWG.Done()
	debug.SetPanicOnFault(true) // see loop
	for s := range c.work {
		// A command ABORTed while queued, or queued at teardown, never
		// reaches the LUN.
		c.mu.Lock()
		s.cancelled = s.aborted || c.aborting.Load()
		s.started = !s.cancelled
		c.mu.Unlock()
		c.execute(s)
	}
}

func (c *Conn) notify(yes bool) {
	if !yes {
		return
	}
	c.counters.Notifies.Add(1)
	if err := c.events.Notify(c.port); err != nil {
		c.limiter.log(c.log, "notify frontend", err)
	}
}

// pushLocked publishes written responses; it reports whether the frontend
// wants an event. The slots released before it become free again.
func (c *Conn) pushLocked() bool {
	notify := false
	if !c.ringGone {
		notify = c.ring.PushResponses()
		if c.jnl != nil && len(c.unpushed) > 0 && c.crashed("pushed") {
			return false
		}
	}
	c.recycleLocked()
	return notify
}

// writeResponseLocked fills the next response slot with s's response.
// Nothing is written once the ring is gone (unmapped or stopped after a
// violation).
func (c *Conn) writeResponseLocked(s *slot, rslt int32, sense []byte, residual uint32) {
	if c.ringGone {
		return
	}
	putResponse(c.ring.ResponseSlot(), s.req.Rqid, rslt, sense, residual)
	if c.jnl != nil {
		// Response slot, then the entry's answer index, then rsp_prod_pvt.
		c.jnl.Answered(s.idx, c.ring.NextResponse())
		if c.crashed("answered") {
			return
		}
	}
	c.ring.CommitResponse()
	c.counters.Responses.Add(1)
}

// logLimiter keeps a hostile guest from flooding the log: at most one
// message per second, with a count of what was suppressed.
type logLimiter struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func (l *logLimiter) log(lg hclog.Logger, what string, err error) {
	l.mu.Lock()
	now := time.Now()
	if now.Sub(l.last) < time.Second {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	l.mu.Unlock()
	lg.Warn(what, "error", err, "suppressed", n)
}
