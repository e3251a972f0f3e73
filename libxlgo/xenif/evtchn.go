package xenif

import "context"

// EventChannel is an open event-channel device (/dev/xen/evtchn or a fake).
//
// Linux user event channels follow the lateeoi model (XSA-332): after an event
// is delivered its port stays masked until Unmask is called, so a backend keeps
// the port masked while it works and unmasks only when done.
type EventChannel interface {
	// BindInterdomain binds to remotePort of domain domid; returns the local port.
	BindInterdomain(domid, remotePort uint32) (uint32, error)
	// BindUnboundPort allocates a port that domain domid may bind to.
	BindUnboundPort(domid uint32) (uint32, error)
	// Notify sends an event on local port.
	Notify(port uint32) error
	// Pending blocks until an event arrives and returns its local port.
	Pending() (uint32, error)
	// WaitPending is Pending that gives up when ctx is done (the error
	// then wraps ctx.Err()), so a backend can shut down cleanly.
	WaitPending(ctx context.Context) (uint32, error)
	// Unmask re-enables delivery on port.
	Unmask(port uint32) error
	// Unbind releases port.
	Unbind(port uint32) error
	// Fd is a file descriptor that polls readable when an event is pending.
	Fd() int
	Close() error
}
