// Package xenbus is the xenstore side of govscsi's userspace vscsiif
// backend: the backend state machine of Linux xen-scsiback (protocol.md
// §2.1, §2.2, checklist §2.6), driven by xenstore watches through one
// xsutil.Mux, with the userspace extras the checklist asks for.
//
// A Backend serves every vhost under /local/domain/<me>/backend/<type>/
// <domid>/<vhost>. Type defaults to "vscsiu", not "vscsi": Linux's xenbus
// creates backend devices for every type directory, but xen-scsiback only
// binds (and udev only autoloads it) for "vscsi", so the kernel backend and
// this one never fight over a vhost; xen-scsifront finds its backend
// through FE/backend, a full path, so the guest does not care (see
// docs/backend.md).
//
// Goroutines and ownership:
//
//   - Backend.Run (the discovery goroutine) watches the type directory and
//     @releaseDomain. It owns the map of vhosts: it starts one actor per
//     vhost that can be probed (frontend and frontend-id present, FE
//     directory exists), remembers unregistered ones so they are not
//     probed again while their nodes exist, and on @releaseDomain stops
//     the actors of a dead domain and removes its backend and error trees
//     (pitfall P26).
//   - One actor goroutine per vhost owns everything about it: its state,
//     its datapath.Conn (and that connection's event-channel device), its
//     translation table and the open LUNs. It watches FE (the whole
//     directory: state, ring-ref, ...) and BE (state, online, vscsi-devs)
//     and re-reads what it needs on each (coalesced) notification; like
//     xenbus it acts on changes of the frontend state value.
//   - datapath.Conn runs its own ring goroutine and workers; the actor only
//     starts it, watches Done for a ring protocol violation (a fatal
//     error), and stops it with a bounded timeout (P23).
//
// Every value the guest writes (FE/state, ring-ref, event-channel) is
// parsed strictly and a bad one becomes a xenbus fatal error:
// /local/domain/<me>/error/backend/<type>/<domid>/<vhost>/error =
// "<errno> <message>" and BE state 5, as Linux's xenbus_dev_fatal does.
//
// Differences from Linux, all deliberate:
//   - FE Closed always disconnects (Linux only on Closing).
//   - FE Initialising after Closed goes back to InitWait, and devices the
//     old frontend had (state 4) are offered again (state 3), so a guest
//     that reloads xen-scsifront or kexecs reconnects (P15, blkback
//     behaviour).
//   - BE state 5 written by the toolstack (libxl's removal) is acted on:
//     if the frontend does not close within RemoveTimeout the backend
//     disconnects and writes 6 itself, so a hung guest cannot block the
//     removal.
//   - A device whose p-dev cannot be opened gets state 6 and
//     vscsi-devs/dev-N/error with the reason (P5).
//   - Stopping the daemon is a handover by default (StopHandover): xenstore
//     is left as it is, every connection finishes the commands it took
//     (datapath.Conn.Handover) and is left for the next process.
//     Disconnecting every guest (the old stop: Closing, Closed) is the
//     explicit StopDisconnect.
//   - A vhost found with FE at 3, 4 or 7 and BE at 4, 7 or 8 when the
//     daemon starts was served by a previous process: its devices are
//     re-opened first, then the ring is resumed from the in-flight journal
//     (package journal: requests the dead process left unanswered are
//     executed again, exactly once), with one event to the frontend. A
//     frontend that made a new ring meanwhile is a new frontend instance.
//   - Config.StateDir (state.go) keeps, on tmpfs, the journals, the LUNs'
//     state files (RAM disks) and the lock that makes a restarted backend
//     wait for its predecessor; they go when the device, vhost or domain
//     really goes.
//   - A frontend path outside /local/domain/<frontend-id>/ is refused.
package xenbus
