// Package xenfake holds pure-Go stand-ins for the Xen grant table and event
// channels, so the backend can be tested (and benchmarked) without Xen:
//
//   - Grants implements xenif.Grants over ordinary heap pages. The test plays
//     the guest: Grant publishes one of its pages and returns a grant ref,
//     Revoke takes it back. GrantCopy and MapGrantRefs then behave like
//     Linux's gntdev on top of Xen, including the GNTST_* status codes Xen
//     gives for bad refs, wrong domains and writes to read-only grants.
//   - EventHub is the hypervisor's event-channel switch. Open gives a
//     backend-side xenif.EventChannel whose Fd is a real eventfd (it polls
//     readable while an event is pending) with the lateeoi masking of the
//     Linux evtchn device; Guest gives the guest's end, which allocates
//     unbound ports, notifies and observes the backend's notifications.
//
// Nothing here starts goroutines or touches global state; every object is
// safe for concurrent use.
package xenfake
