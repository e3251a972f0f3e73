package xenfake

import (
	"context"
	"fmt"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/govscsi/govscsi/libxlgo/internal/cerr"
	"github.com/govscsi/govscsi/libxlgo/xenif"
)

const evSource = "xenfake evtchn"

type portState uint8

const (
	portUnbound     portState = iota + 1 // allocated for remoteDom to bind
	portInterdomain                      // connected to remoteDom:remotePort
)

// evPort is one event-channel port of one domain. Exactly one of dev or
// guest owns it.
type evPort struct {
	num        uint32
	state      portState
	remoteDom  uint32
	remotePort uint32
	dev        *EventChannel
	guest      *Guest

	// Backend (device) side, as Linux's evtchn driver keeps it: a delivered
	// port is masked until Unmask; an event arriving meanwhile is latched
	// (Xen's pending bit) and delivered again at Unmask.
	masked  bool
	latched bool

	// Guest side: a pending flag Wait consumes, and a count of events.
	pending bool
	count   uint64
}

type evDomain struct {
	next  uint32
	ports map[uint32]*evPort
}

// EventHub is a fake hypervisor event-channel switch: domains, their ports,
// and the connections between them. Backend devices (Open) and guests (Guest)
// attached to one hub can reach each other.
type EventHub struct {
	mu   sync.Mutex
	doms map[uint32]*evDomain
}

// NewEventHub returns a hub with no domains.
func NewEventHub() *EventHub {
	return &EventHub{doms: make(map[uint32]*evDomain)}
}

// domain returns (creating) the port table of domid. h.mu is held.
func (h *EventHub) domain(domid uint32) *evDomain {
	d := h.doms[domid]
	if d == nil {
		// Port 0 is never valid in Xen; start at 1.
		d = &evDomain{next: 1, ports: make(map[uint32]*evPort)}
		h.doms[domid] = d
	}
	return d
}

func (h *EventHub) alloc(domid uint32) *evPort {
	d := h.domain(domid)
	p := &evPort{num: d.next}
	d.next++
	d.ports[p.num] = p
	return p
}

// bind connects a new port of domid to remoteDom:remotePort, which must be an
// unbound port allocated for domid (Xen's evtchn_bind_interdomain checks).
// h.mu is held.
func (h *EventHub) bind(domid, remoteDom, remotePort uint32) (*evPort, syscall.Errno) {
	rd := h.doms[remoteDom]
	if rd == nil {
		return nil, syscall.ESRCH
	}
	rp := rd.ports[remotePort]
	if rp == nil || rp.state != portUnbound || rp.remoteDom != domid {
		return nil, syscall.EINVAL
	}
	p := h.alloc(domid)
	p.state = portInterdomain
	p.remoteDom, p.remotePort = remoteDom, remotePort
	rp.state = portInterdomain
	rp.remotePort = p.num
	return p, 0
}

// close releases port p of domid; its peer, if any, goes back to unbound
// (allocated for domid), as in Xen's evtchn_close. h.mu is held.
func (h *EventHub) close(domid uint32, p *evPort) {
	if p.state == portInterdomain {
		if rp := h.doms[p.remoteDom].ports[p.remotePort]; rp != nil {
			rp.state = portUnbound
			rp.remoteDom = domid
			rp.remotePort = 0
		}
	}
	delete(h.doms[domid].ports, p.num)
	if p.dev != nil {
		p.dev.dropQueued(p.num)
	}
}

// send raises an event from port p's end: it reaches the peer, if connected.
// An event on an unbound port is silently dropped, as Xen does. h.mu is held.
func (h *EventHub) send(p *evPort) {
	if p.state != portInterdomain {
		return
	}
	rp := h.doms[p.remoteDom].ports[p.remotePort]
	if rp != nil {
		h.raise(rp)
	}
}

// raise makes port p pending at its owner. h.mu is held.
func (h *EventHub) raise(p *evPort) {
	switch {
	case p.dev != nil:
		if p.masked {
			p.latched = true
			return
		}
		p.masked = true
		p.dev.enqueue(p.num)
	case p.guest != nil:
		p.pending = true
		p.count++
		p.guest.wake()
	}
}

// EventChannel is the fake backend side: one open /dev/xen/evtchn in a domain
// (normally dom0). It implements xenif.EventChannel with the Linux device's
// lateeoi semantics: a port handed out by Pending stays masked until Unmask,
// events in between are latched and handed out again after Unmask. Fd is an
// eventfd that polls readable exactly while an event waits to be read.
type EventChannel struct {
	hub   *EventHub
	domid uint32
	efd   int

	// All fields below are guarded by hub.mu.
	ports  map[uint32]*evPort
	queue  []uint32
	closed bool
	// fdUsed: Fd was called, so the eventfd must mirror the queue. Until
	// then events cost no system calls (the backend benchmark path).
	fdUsed bool
	ready  chan struct{} // a token while the queue may be non-empty
	done   chan struct{} // closed by Close
}

var _ xenif.EventChannel = (*EventChannel)(nil)

// Open opens a backend-side event-channel device in domain domid.
func (h *EventHub) Open(domid uint32) (*EventChannel, error) {
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, cerr.FromErr(evSource, "open", "eventfd", err)
	}
	h.mu.Lock()
	h.domain(domid)
	h.mu.Unlock()
	return &EventChannel{
		hub: h, domid: domid, efd: efd,
		ports: make(map[uint32]*evPort),
		ready: make(chan struct{}, 1),
		done:  make(chan struct{}),
	}, nil
}

func (e *EventChannel) errClosed(op string) error {
	return cerr.New(evSource, op, "", syscall.EBADF)
}

// port is the port this device has bound as num, for op: EBADF after
// Close, ENOTCONN for a port it has not bound (as the Linux device).
// hub.mu is held.
func (e *EventChannel) port(op string, num uint32) (*evPort, error) {
	if e.closed {
		return nil, e.errClosed(op)
	}
	p := e.ports[num]
	if p == nil {
		return nil, cerr.New(evSource, op, fmt.Sprintf("port %d", num), syscall.ENOTCONN)
	}
	return p, nil
}

// enqueue queues port for Pending and makes Fd readable. hub.mu is held.
func (e *EventChannel) enqueue(port uint32) {
	if e.closed {
		return
	}
	if len(e.queue) == 0 && e.fdUsed {
		e.raiseFd()
	}
	e.queue = append(e.queue, port)
	select {
	case e.ready <- struct{}{}:
	default:
	}
}

// dropQueued removes port from the queue (it was unbound). hub.mu is held.
func (e *EventChannel) dropQueued(port uint32) {
	q := e.queue[:0]
	for _, p := range e.queue {
		if p != port {
			q = append(q, p)
		}
	}
	e.queue = q
	if len(q) == 0 {
		e.drainFd()
	}
}

// raiseFd makes Fd readable. hub.mu is held.
func (e *EventChannel) raiseFd() {
	one := [8]byte{1}
	unix.Write(e.efd, one[:]) //nolint:errcheck // cannot fail below 2^64-1
}

// drainFd makes Fd non-readable. hub.mu is held.
func (e *EventChannel) drainFd() {
	if !e.fdUsed {
		return
	}
	var buf [8]byte
	unix.Read(e.efd, buf[:]) //nolint:errcheck // EAGAIN when already drained
}

// BindInterdomain binds to remotePort of domain domid, which must be a port
// that domid allocated for us (Guest.AllocUnbound). As in Xen, the new port
// starts with an event pending, so the first Pending returns it.
func (e *EventChannel) BindInterdomain(domid, remotePort uint32) (uint32, error) {
	h := e.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if e.closed {
		return 0, e.errClosed("bind interdomain")
	}
	p, errno := h.bind(e.domid, domid, remotePort)
	if errno != 0 {
		return 0, cerr.New(evSource, "bind interdomain", fmt.Sprintf("port %d of dom %d", remotePort, domid), errno)
	}
	p.dev = e
	e.ports[p.num] = p
	h.raise(p) // Xen conservatively sets the new local port pending
	return p.num, nil
}

// BindUnboundPort allocates a port that domain domid may bind to
// (Guest.BindInterdomain).
func (e *EventChannel) BindUnboundPort(domid uint32) (uint32, error) {
	h := e.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if e.closed {
		return 0, e.errClosed("bind unbound port")
	}
	p := h.alloc(e.domid)
	p.state = portUnbound
	p.remoteDom = domid
	p.dev = e
	e.ports[p.num] = p
	return p.num, nil
}

// Notify sends an event to the peer of port. A port this device has not bound
// fails with ENOTCONN, as the Linux device does.
func (e *EventChannel) Notify(port uint32) error {
	h := e.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	p, err := e.port("notify", port)
	if err != nil {
		return err
	}
	h.send(p)
	return nil
}

// Pending blocks until an event is pending and returns its port, which stays
// masked until Unmask. After Close it fails with EBADF.
func (e *EventChannel) Pending() (uint32, error) {
	return e.WaitPending(context.Background())
}

// WaitPending is Pending that gives up when ctx is done.
func (e *EventChannel) WaitPending(ctx context.Context) (uint32, error) {
	h := e.hub
	for {
		h.mu.Lock()
		if e.closed {
			h.mu.Unlock()
			return 0, e.errClosed("pending")
		}
		if len(e.queue) > 0 {
			port := e.queue[0]
			// Shift rather than reslice, to keep the backing array (the
			// queue holds at most one entry per bound port).
			e.queue = e.queue[:copy(e.queue, e.queue[1:])]
			if len(e.queue) == 0 {
				e.drainFd()
			} else {
				select { // leave a token for the next waiter
				case e.ready <- struct{}{}:
				default:
				}
			}
			h.mu.Unlock()
			return port, nil
		}
		h.mu.Unlock()
		select {
		case <-e.ready:
		case <-e.done:
		case <-ctx.Done():
			return 0, fmt.Errorf("%s pending: %w", evSource, ctx.Err())
		}
	}
}

// Unmask re-enables delivery on port; an event latched while it was masked is
// delivered now. Unmasking a port that is not masked, or not bound here, does
// nothing (the Linux device ignores it too).
func (e *EventChannel) Unmask(port uint32) error {
	h := e.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if e.closed {
		return e.errClosed("unmask")
	}
	p := e.ports[port]
	if p == nil || !p.masked {
		return nil
	}
	p.masked = false
	if p.latched {
		p.latched = false
		h.raise(p)
	}
	return nil
}

// Unbind releases port; the guest's end becomes unbound again.
func (e *EventChannel) Unbind(port uint32) error {
	h := e.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	p, err := e.port("unbind", port)
	if err != nil {
		return err
	}
	delete(e.ports, port)
	h.close(e.domid, p)
	return nil
}

// Fd is an eventfd that polls readable while Pending would not block; -1
// after Close.
func (e *EventChannel) Fd() int {
	e.hub.mu.Lock()
	defer e.hub.mu.Unlock()
	if e.closed {
		return -1
	}
	if !e.fdUsed {
		e.fdUsed = true
		if len(e.queue) > 0 {
			e.raiseFd()
		}
	}
	return e.efd
}

// Masked reports whether port is masked here: delivered by Pending and not
// unmasked since. A test of "never unmask after a ring error" (protocol.md
// P18) checks that it stays true.
func (e *EventChannel) Masked(port uint32) bool {
	e.hub.mu.Lock()
	defer e.hub.mu.Unlock()
	p := e.ports[port]
	return p != nil && p.masked
}

// Bound returns how many ports this device has bound (for leak checks).
func (e *EventChannel) Bound() int {
	e.hub.mu.Lock()
	defer e.hub.mu.Unlock()
	return len(e.ports)
}

// Close unbinds every port, wakes blocked Pending calls and closes Fd. A
// second Close returns nil.
func (e *EventChannel) Close() error {
	h := e.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if e.closed {
		return nil
	}
	for num, p := range e.ports {
		delete(e.ports, num)
		h.close(e.domid, p)
	}
	e.closed = true
	e.queue = nil
	close(e.done)
	return unix.Close(e.efd)
}

// Guest is a guest domain's end of the fake event channels: what a frontend
// driver does with its event channel.
type Guest struct {
	hub   *EventHub
	domid uint32
	// wakeCh is closed and replaced at an event when Wait calls are
	// blocked (waiters > 0), so any number of them (on any ports) see it.
	// Guarded by hub.mu.
	wakeCh  chan struct{}
	waiters int
}

// Guest returns the guest side of domain domid.
func (h *EventHub) Guest(domid uint32) *Guest {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.domain(domid)
	return &Guest{hub: h, domid: domid, wakeCh: make(chan struct{})}
}

// wake signals every blocked Wait. hub.mu is held.
func (g *Guest) wake() {
	if g.waiters > 0 {
		close(g.wakeCh)
		g.wakeCh = make(chan struct{})
	}
}

// AllocUnbound allocates a port for domain remoteDom to bind to, as a
// frontend does before writing "event-channel" to xenstore.
func (g *Guest) AllocUnbound(remoteDom uint32) uint32 {
	h := g.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.alloc(g.domid)
	p.state = portUnbound
	p.remoteDom = remoteDom
	p.guest = g
	return p.num
}

// BindInterdomain binds to remotePort of remoteDom (a port the backend got
// from BindUnboundPort). The new port starts pending, as in Xen.
func (g *Guest) BindInterdomain(remoteDom, remotePort uint32) (uint32, error) {
	h := g.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	p, errno := h.bind(g.domid, remoteDom, remotePort)
	if errno != 0 {
		return 0, cerr.New(evSource, "guest bind interdomain", fmt.Sprintf("port %d of dom %d", remotePort, remoteDom), errno)
	}
	p.guest = g
	h.raise(p)
	return p.num, nil
}

func (g *Guest) port(op string, port uint32) (*evPort, error) {
	p := g.hub.doms[g.domid].ports[port]
	if p == nil || p.guest != g {
		return nil, cerr.New(evSource, op, fmt.Sprintf("dom %d port %d", g.domid, port), syscall.EINVAL)
	}
	return p, nil
}

// Notify sends an event on the guest's port to its peer (the backend).
func (g *Guest) Notify(port uint32) error {
	h := g.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	p, err := g.port("guest notify", port)
	if err != nil {
		return err
	}
	h.send(p)
	return nil
}

// Wait blocks until port has an event pending, then clears it (events
// coalesce, like a real pending bit). It fails if ctx ends first or the port
// is closed.
func (g *Guest) Wait(ctx context.Context, port uint32) error {
	h := g.hub
	waiting := false // counted in g.waiters
	for {
		h.mu.Lock()
		if waiting {
			g.waiters--
			waiting = false
		}
		p, err := g.port("guest wait", port)
		if err != nil {
			h.mu.Unlock()
			return err
		}
		if p.pending {
			p.pending = false
			h.mu.Unlock()
			return nil
		}
		ch := g.wakeCh
		g.waiters++
		waiting = true
		h.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			h.mu.Lock()
			g.waiters--
			h.mu.Unlock()
			return fmt.Errorf("%s guest wait on port %d: %w", evSource, port, ctx.Err())
		}
	}
}

// Notifications returns how many events have reached the guest's port, the
// initial one from binding included.
func (g *Guest) Notifications(port uint32) uint64 {
	h := g.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if p, err := g.port("", port); err == nil {
		return p.count
	}
	return 0
}

// ClosePort closes the guest's port (EVTCHNOP_close); the backend's end
// becomes unbound and its notifications are dropped.
func (g *Guest) ClosePort(port uint32) error {
	h := g.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	p, err := g.port("guest close", port)
	if err != nil {
		return err
	}
	h.close(g.domid, p)
	g.wake()
	return nil
}
