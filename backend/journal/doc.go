// Package journal keeps the in-flight requests of one vscsi ring connection
// in a file outside the process, so that the next vscsi-backend answers the
// requests a crashed (SIGKILL, OOM, segfault) or stuck predecessor had taken
// from the ring but not answered, exactly once.
//
// Why: Linux xen-scsifront disables the whole SCSI host when a response
// names an rqid it has not in flight ("illegal rqid returned by backend!"),
// and a request that never gets a response hangs until the guest's SCSI
// error handling gives up on it. So after a crash every consumed request
// needs exactly one response: none lost, none twice. The ring alone cannot
// tell: the old process consumed requests the ring no longer holds (their
// slots may carry responses it wrote but never published), and rsp_prod does
// not say which requests were answered (responses come in any order).
//
// The file lives on tmpfs (/run/govscsi/...): it survives the process, not a
// reboot, as the guests do not either. It is mapped MAP_SHARED and updated
// with plain memory stores only, no system call per I/O: the stores a killed
// process executed are in the page cache, and they are a prefix of each
// thread's program order (signals and faults are precise: every instruction
// before the interrupted one retired, none after it). The commit words are
// written with atomic stores, which the compiler never reorders with the
// stores before them.
//
// Layout (native byte order; the file never leaves the host): one page of
// header (magic, version, slot count, the ring's identity: frontend domid,
// ring-ref, event-channel port; and req_cons, the journal's own consumer
// index), then one entry per datapath slot: a tag word (state and an index),
// the ring index the request was consumed at, and the private request copy.
//
// # Orderings and why every crash point is safe
//
// The connection (backend/datapath) writes, with its lock held:
//
//	consume:  ring slot -> private copy (slot.raw)
//	          -> entry: request copy, consumed-at index i, then tag = consumed(i)
//	          -> after the batch's last entry: header req_cons = i+1
//	answer:   response into ring slot j (j = rsp_prod_pvt)
//	          -> tag = answered(j) -> rsp_prod_pvt = j+1
//	push:     rsp_prod = rsp_prod_pvt (the frontend now sees the responses)
//	          -> tag = free for every slot answered before this push
//	          (a datapath slot is reused only after that)
//
// Recovery, with C = the journal's req_cons and P = the live ring's rsp_prod
// (Snapshot.Redo): a consumed entry with i < C, or an answered one with j in
// [P, C), is executed again, in ring order, before any new request; every
// other entry is dropped. The next process consumes from C and writes
// responses from P. Crash points:
//
//   - Between the ring copy and tag = consumed: the entry is not in the
//     journal and req_cons was not moved, so the request is consumed again
//     from its ring slot at C. The slot is intact: responses are written at
//     indices below the number of requests executed, which is at most C, and
//     req_prod - P <= ring size keeps index C and every index >= C off the
//     slots of indices in [P, C).
//   - Between tag = consumed and req_cons = i+1: i >= C, so the entry is
//     ignored and the request is consumed again from the ring, as above.
//   - After req_cons, before its response is written (or with a response
//     half written into ring slot j): tag consumed, i < C: executed again.
//     Slot j is at or beyond rsp_prod, which the frontend does not read, and
//     the next process writes its own responses there.
//   - After tag = answered(j), before the push: j >= P, executed again (the
//     response in slot j was never published).
//   - After the push, before tag = free: j < P, dropped; the frontend has
//     the response.
//   - After tag = free: dropped.
//
// A datapath slot is not reused until the responses written before it was
// freed are pushed, so an unpublished response never loses its entry to a
// new request. Tags are freed at every push, so no answered tag lingers
// long enough (2^32 responses) for its index to alias into [P, C).
//
// Consistency: the number of entries to execute again must equal C - P
// (every consumed request not yet published has exactly one entry), C must
// lie in [P, req_prod] and req_prod - P within the ring size, every index
// must be below C, and the header must name the same frontend domid,
// ring-ref, port and slot count as the ring being resumed. Anything else
// (another ring, a frontend that rewrote its indices, a torn or foreign
// file) discards the journal, with a log line saying why; the connection
// then starts at rsp_prod as Linux's BACK_RING_ATTACH does.
//
// A request executed again is guest data like a fresh one: it is copied
// from the journal into the slot once and then decoded and validated
// exactly as a request read from the ring (its indirect SG pages are copied
// from the guest again and validated in private memory). Executing it again
// is safe for emulated disks: the guest has not seen it complete, so the
// same READ or WRITE of the same blocks is repeated. A pass-through device
// whose commands are not idempotent (a tape) may see one command twice.
package journal
