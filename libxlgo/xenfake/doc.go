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
//   - Domains is a domain-control fake (xenif.DomainControl): pause
//     references counted per domain as Xen counts them, and vCPU time that
//     grows only while a domain is unpaused (Tick).
//
// The behaviour the fakes copy was checked against Xen 4.17 on the test
// ground by tests/xenlibs: the GNTST codes (a write to a read-only grant and an
// unused ref give GNTST_general_error, a ref beyond the table
// GNTST_bad_gntref, an unknown domain GNTST_bad_domain), the event left
// pending by an interdomain bind, the lateeoi masking, and that Xen counts
// pause references (two Pauses need two Unpauses).
//
// Nothing here starts goroutines or touches global state; every object is
// safe for concurrent use.
package xenfake
