// Package evtchn wraps libxenevtchn (Debian's libxen-dev, <xenevtchn.h>):
// the /dev/xen/evtchn device through which dom0 userspace binds, signals and
// receives Xen event channels.
//
// # The lateeoi model
//
// Since XSA-332 (2020) Linux delivers user event channels "late EOI": when an
// event on a port is handed to userspace (Pending returns the port), the port
// stays masked. Further events on it are latched by Xen's pending bit but not
// delivered, until the program writes the port back to the device, which is
// what Unmask (xenevtchn_unmask) does; a latched event is then delivered at
// once. A backend therefore runs:
//
//	port, _ := ch.WaitPending(ctx) // port is now masked
//	process the ring until it is empty (re-checking after re-arming the
//	ring's event index, so no request is missed)
//	ch.Unmask(port)                // only now can the next event arrive
//
// A guest that floods the channel costs dom0 at most one wake-up per batch of
// work (protocol.md P18). Never unmask after a ring error: leaving the port
// masked is how a misbehaving frontend is shut off until reconnect.
//
// Two consequences worth knowing: a port freshly bound with BindInterdomain
// starts pending (Xen sets it, so no event sent before the bind is lost), so
// the first WaitPending returns it at once; and Unmask of a port that is not
// masked, or not bound here, is a no-op, not an error.
//
// # Waiting
//
// Open puts the device in non-blocking mode and registers it with Go's
// poller, so Pending and WaitPending park the goroutine, not an OS thread,
// and WaitPending gives up when its context ends. Fd still returns the
// library's descriptor for callers with their own poll loop: it polls
// readable when Pending would not block.
//
// Without cgo (or off Linux) Open returns errors.ErrUnsupported.
package evtchn
