//go:build linux && cgo

package evtchn

/*
#cgo pkg-config: xenevtchn
#include <stdarg.h>
#include <xentoollog.h>
#include <xenevtchn.h>

// A logger that drops everything (see libxlgo/gnttab): failures reach Go as
// errno; a NULL logger would make the library print to stderr.
static void evtchn_quiet_vmessage(struct xentoollog_logger *l, xentoollog_level lv,
	int errnoval, const char *ctx, const char *fmt, va_list al) {}
static void evtchn_quiet_progress(struct xentoollog_logger *l, const char *ctx,
	const char *what, int pct, unsigned long done, unsigned long total) {}
static void evtchn_quiet_destroy(struct xentoollog_logger *l) {}
static struct xentoollog_logger evtchn_quiet_logger = {
	evtchn_quiet_vmessage, evtchn_quiet_progress, evtchn_quiet_destroy,
};

static xenevtchn_handle *evtchn_open_quiet(void) {
	return xenevtchn_open(&evtchn_quiet_logger, 0);
}

static xenevtchn_handle *evtchn_fdopen_quiet(int fd) {
	return xenevtchn_fdopen(&evtchn_quiet_logger, fd, 0);
}
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govscsi/govscsi/libxlgo/internal/cerr"
	"github.com/govscsi/govscsi/libxlgo/xenif"
)

// Device is the node libxenevtchn opens.
const Device = "/dev/xen/evtchn"

const source = "evtchn"

// Handle is an open event-channel device. It is safe for concurrent use,
// but only one goroutine should wait (Pending/WaitPending) at a time: a
// context's deadline is applied to the shared descriptor.
type Handle struct {
	mu sync.RWMutex
	h  *C.xenevtchn_handle
	fd int // the library's descriptor
	// f is a dup of fd (same open file, so the same pending ring) owned by
	// Go's poller; waiting goes through it. Closing f first wakes waiters.
	f  *os.File
	rc syscall.RawConn

	// cancel wakes a waiting read when the ctx of WaitPending ends: one
	// registration per ctx, kept across calls, because a data path waits
	// with the same ctx for every event and a registration per wait (an
	// AfterFunc, a channel, a cancel-tree entry) was ~5% of its CPU.
	cancelMu    sync.Mutex
	cancelCtx   context.Context
	cancelStop  func() bool
	cancelFired chan struct{}
}

var _ xenif.EventChannel = (*Handle)(nil)

// Open opens /dev/xen/evtchn. On a machine without Xen (or without the
// xen_evtchn module) it fails with an error wrapping ENOENT.
//
// Implements: xenevtchn_handle *xenevtchn_open(xentoollog_logger *logger, unsigned open_flags);
func Open() (*Handle, error) {
	h, err := C.evtchn_open_quiet()
	if h == nil {
		err = cerr.FromErr(source, "open", Device, err)
		if cerr.Errno(err) == syscall.ENOENT {
			err = fmt.Errorf("%w (not a Xen domain, or the xen_evtchn module is not loaded)", err)
		}
		return nil, err
	}
	return newHandle(h)
}

// FromFd builds a handle around an already open event-channel descriptor,
// such as one a daemon kept across a self re-exec. The handle owns fd from
// then on (Close closes it), even when FromFd fails.
//
// Implements: xenevtchn_handle *xenevtchn_fdopen(xentoollog_logger *logger, int fd, unsigned open_flags);
func FromFd(fd int) (*Handle, error) {
	h, err := C.evtchn_fdopen_quiet(C.int(fd))
	if h == nil {
		unix.Close(fd)
		return nil, cerr.FromErr(source, "fdopen", fmt.Sprintf("fd %d", fd), err)
	}
	return newHandle(h)
}

func newHandle(h *C.xenevtchn_handle) (*Handle, error) {
	e := &Handle{h: h, fd: int(C.xenevtchn_fd(h))}
	if err := e.attachPoller(); err != nil {
		C.xenevtchn_close(h)
		return nil, err
	}
	return e, nil
}

// attachPoller makes the device non-blocking and hands a dup of it to Go's
// poller. O_NONBLOCK is a property of the open file, so the library's own
// reads (xenevtchn_pending) then return EAGAIN instead of blocking a thread.
func (e *Handle) attachPoller() error {
	dup, err := unix.FcntlInt(uintptr(e.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return cerr.FromErr(source, "open", "dup of the device", err)
	}
	if err := unix.SetNonblock(dup, true); err != nil {
		unix.Close(dup)
		return cerr.FromErr(source, "open", "set non-blocking", err)
	}
	e.f = os.NewFile(uintptr(dup), Device)
	rc, err := e.f.SyscallConn()
	if err != nil {
		e.f.Close()
		return fmt.Errorf("%s open: %w", source, err)
	}
	e.rc = rc
	return nil
}

func closedErr(op string) error { return cerr.New(source, op, "", syscall.EBADF) }

// handle returns the C handle under the read lock, or nil once closed. The
// caller must call e.mu.RUnlock when done with it.
func (e *Handle) handle() *C.xenevtchn_handle {
	e.mu.RLock()
	return e.h
}

// BindInterdomain binds to remotePort of domain domid (the port a frontend
// allocated for us and wrote to xenstore) and returns the local port. The
// new port starts with an event pending.
//
// Implements: xenevtchn_port_or_error_t xenevtchn_bind_interdomain(xenevtchn_handle *xce, uint32_t domid, evtchn_port_t remote_port);
func (e *Handle) BindInterdomain(domid, remotePort uint32) (uint32, error) {
	h := e.handle()
	defer e.mu.RUnlock()
	if h == nil {
		return 0, closedErr("bind interdomain")
	}
	p, err := C.xenevtchn_bind_interdomain(h, C.uint32_t(domid), C.evtchn_port_t(remotePort))
	if p < 0 {
		return 0, cerr.FromErr(source, "bind interdomain", fmt.Sprintf("port %d of dom %d", remotePort, domid), err)
	}
	return uint32(p), nil
}

// BindUnboundPort allocates a local port that domain domid may bind to.
//
// Implements: xenevtchn_port_or_error_t xenevtchn_bind_unbound_port(xenevtchn_handle *xce, uint32_t domid);
func (e *Handle) BindUnboundPort(domid uint32) (uint32, error) {
	h := e.handle()
	defer e.mu.RUnlock()
	if h == nil {
		return 0, closedErr("bind unbound port")
	}
	p, err := C.xenevtchn_bind_unbound_port(h, C.uint32_t(domid))
	if p < 0 {
		return 0, cerr.FromErr(source, "bind unbound port", fmt.Sprintf("for dom %d", domid), err)
	}
	return uint32(p), nil
}

// Notify sends an event to the remote end of port.
//
// Implements: int xenevtchn_notify(xenevtchn_handle *xce, evtchn_port_t port);
func (e *Handle) Notify(port uint32) error {
	h := e.handle()
	defer e.mu.RUnlock()
	if h == nil {
		return closedErr("notify")
	}
	if rc, err := C.xenevtchn_notify(h, C.evtchn_port_t(port)); rc != 0 {
		return cerr.FromErr(source, "notify", fmt.Sprintf("port %d", port), err)
	}
	return nil
}

// Unmask re-enables delivery on port (writes it to the device: the lateeoi
// "EOI"). An event latched while the port was masked is delivered now.
//
// Implements: int xenevtchn_unmask(xenevtchn_handle *xce, evtchn_port_t port);
func (e *Handle) Unmask(port uint32) error {
	h := e.handle()
	defer e.mu.RUnlock()
	if h == nil {
		return closedErr("unmask")
	}
	if rc, err := C.xenevtchn_unmask(h, C.evtchn_port_t(port)); rc != 0 {
		return cerr.FromErr(source, "unmask", fmt.Sprintf("port %d", port), err)
	}
	return nil
}

// Unbind releases port.
//
// Implements: int xenevtchn_unbind(xenevtchn_handle *xce, evtchn_port_t port);
func (e *Handle) Unbind(port uint32) error {
	h := e.handle()
	defer e.mu.RUnlock()
	if h == nil {
		return closedErr("unbind")
	}
	if rc, err := C.xenevtchn_unbind(h, C.evtchn_port_t(port)); rc != 0 {
		return cerr.FromErr(source, "unbind", fmt.Sprintf("port %d", port), err)
	}
	return nil
}

// Pending waits for an event and returns its port, which stays masked until
// Unmask. It parks the goroutine (not a thread) and fails once the handle is
// closed.
//
// Implements: xenevtchn_port_or_error_t xenevtchn_pending(xenevtchn_handle *xce);
func (e *Handle) Pending() (uint32, error) {
	return e.WaitPending(context.Background())
}

// WaitPending is Pending that gives up when ctx is done, returning an error
// wrapping ctx.Err().
func (e *Handle) WaitPending(ctx context.Context) (uint32, error) {
	e.mu.RLock()
	h, f, rc := e.h, e.f, e.rc
	e.mu.RUnlock()
	if h == nil {
		return 0, closedErr("pending")
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("%s pending: %w", source, err)
	}
	e.armCancel(ctx, f)
	var port C.xenevtchn_port_or_error_t
	var cerrno error
	// rc.Read calls the function, and while it reports "not ready" waits
	// for the descriptor to poll readable. Close waits for a running
	// callback to return before it frees h, so h stays valid in here.
	err := rc.Read(func(uintptr) bool {
		port, cerrno = C.xenevtchn_pending(h)
		return port >= 0 || !errors.Is(cerrno, syscall.EAGAIN)
	})
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil:
		return 0, fmt.Errorf("%s pending: %w", source, ctx.Err())
	case err != nil && e.closed():
		return 0, closedErr("pending")
	case err != nil:
		return 0, fmt.Errorf("%s pending: %w", source, err)
	case port < 0:
		return 0, cerr.FromErr(source, "pending", "", cerrno)
	}
	return uint32(port), nil
}

func (e *Handle) closed() bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.h == nil
}

// Fd returns the library's file descriptor; it polls readable when an event
// is pending. It is non-blocking (see the package doc). -1 after Close.
//
// Implements: int xenevtchn_fd(xenevtchn_handle *xce);
func (e *Handle) Fd() int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.h == nil {
		return -1
	}
	return e.fd
}

// Close closes the device, which unbinds every port bound through it, and
// wakes any goroutine blocked in Pending. A second Close, or Close of a nil
// Handle, returns nil.
//
// Implements: int xenevtchn_close(xenevtchn_handle *xce);
// armCancel makes the end of ctx wake a read waiting on f (a read
// deadline in the past). The registration stays for the next call with
// the same ctx; another ctx replaces it, clearing a deadline the old one
// set, so the new wait starts clean. WaitPending has one waiter at a time.
func (e *Handle) armCancel(ctx context.Context, f *os.File) {
	e.cancelMu.Lock()
	defer e.cancelMu.Unlock()
	if ctx == e.cancelCtx {
		return
	}
	if e.cancelStop != nil {
		if !e.cancelStop() { // it fired: let it finish, then undo it
			<-e.cancelFired
			f.SetReadDeadline(time.Time{})
		}
		e.cancelCtx, e.cancelStop, e.cancelFired = nil, nil, nil
	}
	if ctx.Done() == nil {
		return // never ends: nothing to register
	}
	fired := make(chan struct{})
	e.cancelCtx, e.cancelFired = ctx, fired
	e.cancelStop = context.AfterFunc(ctx, func() {
		f.SetReadDeadline(time.Unix(1, 0))
		close(fired)
	})
}

func (e *Handle) Close() error {
	if e == nil {
		return nil
	}
	e.mu.Lock()
	h, f := e.h, e.f
	e.h = nil
	e.mu.Unlock()
	if h == nil {
		return nil
	}
	e.cancelMu.Lock()
	if e.cancelStop != nil {
		e.cancelStop()
		e.cancelCtx, e.cancelStop, e.cancelFired = nil, nil, nil
	}
	e.cancelMu.Unlock()
	// Closing the poller's file wakes waiters and returns only once no
	// rc.Read callback is running, so h is no longer in use below.
	f.Close()
	if rc, err := C.xenevtchn_close(h); rc != 0 {
		return cerr.FromErr(source, "close", "", err)
	}
	return nil
}
