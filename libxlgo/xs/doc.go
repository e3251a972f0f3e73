// Package xs is a cgo binding of Debian's libxenstore (Xen 4.17,
// <xenstore.h>, pkg-config "xenstore"). A *Handle implements xenif.Store.
//
// Connection: Open calls xs_open, which connects to the Unix socket named by
// the environment variable XENSTORED_PATH (full socket path) if set, else
// $XENSTORED_RUNDIR/socket or /var/run/xenstored/socket, and falls back to
// the xenbus device (/dev/xen/xenbus; XENSTORED_PATH overrides that path
// too). Tests set XENSTORED_PATH to an xsfake server's socket, and because
// libxenstore then tries only that path, a test can never reach a real
// xenstored by accident: a missing socket makes Open fail.
//
// Errors wrap the errno libxenstore reports (captured in the same cgo call)
// with the operation and path: "xs read /local/domain/5/x: no such file or
// directory", errors.Is(err, syscall.ENOENT) == errors.Is(err,
// fs.ErrNotExist) == true. A transaction commit that conflicts reports
// EAGAIN; xenif.Transact retries it.
//
// Threads and goroutines: libxenstore handles are thread-safe (requests are
// serialised by a mutex inside the library, and once a watch is registered
// the library runs its own reader pthread). Package xs adds one goroutine
// per handle, started by the first Watch (never by Open or at package init)
// and stopped by Close, which polls xs_fileno and moves events to the
// Events channel. Close waits for in-flight calls, stops that goroutine, then
// calls xs_close exactly once; every method called after Close returns
// xenif.ErrStoreClosed. A call blocked inside libxenstore (a server that
// never answers) blocks Close too.
//
// Memory: strings and arrays returned by libxenstore are released with
// free(); arguments are copied to C memory and freed after the call; no Go
// pointer is passed to or kept by C.
//
// Each wrapper's comment names the libxenstore function it implements.
package xs
