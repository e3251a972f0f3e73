// Package datapath serves one connected vscsi vhost: it maps the guest's
// shared ring page, waits on the event channel, copies each request out of
// the ring once, validates the private copy, moves data with batched grant
// copies, runs the command on a scsi.LUN and pushes exactly one response per
// request.
//
// A Conn is started with what the xenbus layer read from xenstore (ring-ref,
// event-channel port, frontend domid) plus a Resolver from (channel, target,
// lun) to LUNs, and stopped with a bounded teardown. It knows nothing about
// xenstore; a ring protocol violation ends the loop with the port left masked
// (pitfall P18) and is reported through Done/Err so the caller can raise a
// xenbus fatal error.
//
// Hot path design (a 16-slot ring makes latency matter more than bandwidth):
// every request occupies a preallocated slot holding its private request
// copy, segment list, grant-copy ops and data buffer, so the steady state
// allocates nothing. Grant copies are batched across the requests of one
// ring drain (batch.go): one call for all indirect SG lists, one for all
// write data, one for the read data of all inline commands, since on real
// Xen each call is an ioctl and hypercalls (a failed op still fails only its
// own request). A LUN marked Inline (RAM or page-cache backed) runs on
// the ring goroutine and its responses are pushed in one batch per drain;
// other LUNs run on a small worker pool so a slow device never stalls the
// ring, and ABORT / LUN RESET never block the ring (P22): commands not yet
// started are dropped and answered at once, while a command already inside
// its LUN is answered (DID_ABORT/DID_RESET, then the TMF) only when the LUN
// returns, so an aborted write can never land after the guest re-issued
// newer data (SAM: a TMF completes once its tasks left the task set).
//
// Restarts: Stop is a disconnect (commands in flight answered with
// DID_ABORT, the journal removed). Handover instead leaves the guest for the
// next process: no new request is consumed, the ones taken finish normally
// and are published, then the ring is unmapped and the port unbound. With a
// journal (Config.JournalPath, package journal) every consumed request's
// private copy is kept in a tmpfs file until its response is published, so
// a process started with Resume executes again, exactly once and before any
// new request, what a crashed or stuck predecessor left unanswered. A slot
// is reused only after the push that follows its release (recycleLocked),
// so an unpublished response never loses its journal entry.
//
// Waiting: when the event channel offers WaitPending(ctx) (the real
// libxlgo/evtchn handle and xenfake's do), the ring goroutine parks in Go's
// netpoller; otherwise it falls back to poll(2) on the channel's fd plus an
// eventfd. The netpoller path measured ~18x lower round-trip latency in
// BenchmarkConnRoundTrip (a blocking poll holds an OS thread and costs a
// scheduler hand-off per wake-up).
package datapath
