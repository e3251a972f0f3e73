//go:build linux && cgo

package xs

/*
#cgo pkg-config: xenstore
#include <stdlib.h>
#include <errno.h>
#include <poll.h>
#include <xenstore.h>

// Wait until the watch pipe or the stop pipe is readable. Returns the
// poll() result; errno is captured by cgo in the same call.
static int xsgo_wait(int watchfd, int stopfd) {
	struct pollfd p[2] = {{.fd = watchfd, .events = POLLIN}, {.fd = stopfd, .events = POLLIN}};
	int r = poll(p, 2, -1);
	if (r > 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR)))
		return 2;
	return r;
}

// xs_check_watch wrapper that tells "no event" (NULL + EAGAIN) apart from
// a failure without the caller reading errno from another call.
static char **xsgo_check_watch(struct xs_handle *h, int *eagain) {
	char **r;
	errno = 0;
	r = xs_check_watch(h);
	*eagain = (r == NULL && errno == EAGAIN);
	return r;
}

static char *xsgo_index(char **v, unsigned int i) { return v[i]; }
*/
import "C"

import (
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/govscsi/govscsi/libxlgo/internal/cerr"
	"github.com/govscsi/govscsi/libxlgo/xenif"
)

// OpenFlag selects xs_open options.
type OpenFlag uint

const (
	// ReadOnly is XS_OPEN_READONLY (ignored by 4.17's xs_open).
	ReadOnly OpenFlag = C.XS_OPEN_READONLY
	// SocketOnly is XS_OPEN_SOCKETONLY (ignored by 4.17's xs_open).
	SocketOnly OpenFlag = C.XS_OPEN_SOCKETONLY
	// UnwatchFilter is XS_UNWATCH_FILTER: after Unwatch, no event of that
	// watch is delivered any more, even one already queued.
	UnwatchFilter OpenFlag = C.XS_UNWATCH_FILTER
)

// Handle is an open libxenstore connection. It implements xenif.Store.
type Handle struct {
	mu     sync.RWMutex // read-held by calls, write-held by Close
	h      *C.struct_xs_handle
	events chan xenif.WatchEvent

	wmu      sync.Mutex // guards the watch goroutine's start
	started  bool
	stopR    *os.File
	stopW    *os.File
	stop     chan struct{}
	loopDone chan struct{}
}

var _ xenif.Store = (*Handle)(nil)

func errFor(op, path string, err error) error { return cerr.FromErr("xs", op, path, err) }

// Open connects to xenstore.
//
// Implements: struct xs_handle *xs_open(unsigned long flags);
func Open(flags OpenFlag) (*Handle, error) {
	h, err := C.xs_open(C.ulong(flags))
	if h == nil {
		return nil, errFor("open", os.Getenv("XENSTORED_PATH"), err)
	}
	return &Handle{h: h, events: make(chan xenif.WatchEvent, 64)}, nil
}

// lock read-locks the handle for one call and reports whether it is open.
func (x *Handle) lock() bool {
	x.mu.RLock()
	if x.h == nil {
		x.mu.RUnlock()
		return false
	}
	return true
}

func (x *Handle) unlock() { x.mu.RUnlock() }

// Read implements xenif.Store.
//
// Implements: void *xs_read(struct xs_handle *h, xs_transaction_t t, const char *path, unsigned int *len);
func (x *Handle) Read(tx xenif.Tx, path string) (string, error) {
	if !x.lock() {
		return "", xenif.ErrStoreClosed
	}
	defer x.unlock()
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	var n C.uint
	v, err := C.xs_read(x.h, C.xs_transaction_t(tx), cp, &n)
	if v == nil {
		return "", errFor("read", path, err)
	}
	defer C.free(v)
	return C.GoStringN((*C.char)(v), C.int(n)), nil
}

// Write implements xenif.Store.
//
// Implements: bool xs_write(struct xs_handle *h, xs_transaction_t t, const char *path, const void *data, unsigned int len);
func (x *Handle) Write(tx xenif.Tx, path, value string) error {
	if !x.lock() {
		return xenif.ErrStoreClosed
	}
	defer x.unlock()
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	cv := C.CString(value) // may hold nul bytes: the length is explicit
	defer C.free(unsafe.Pointer(cv))
	ok, err := C.xs_write(x.h, C.xs_transaction_t(tx), cp, unsafe.Pointer(cv), C.uint(len(value)))
	if !ok {
		return errFor("write", path, err)
	}
	return nil
}

// Mkdir implements xenif.Store.
//
// Implements: bool xs_mkdir(struct xs_handle *h, xs_transaction_t t, const char *path);
func (x *Handle) Mkdir(tx xenif.Tx, path string) error {
	if !x.lock() {
		return xenif.ErrStoreClosed
	}
	defer x.unlock()
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	ok, err := C.xs_mkdir(x.h, C.xs_transaction_t(tx), cp)
	if !ok {
		return errFor("mkdir", path, err)
	}
	return nil
}

// Rm implements xenif.Store.
//
// Implements: bool xs_rm(struct xs_handle *h, xs_transaction_t t, const char *path);
func (x *Handle) Rm(tx xenif.Tx, path string) error {
	if !x.lock() {
		return xenif.ErrStoreClosed
	}
	defer x.unlock()
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	ok, err := C.xs_rm(x.h, C.xs_transaction_t(tx), cp)
	if !ok {
		return errFor("rm", path, err)
	}
	return nil
}

// Directory implements xenif.Store.
//
// Implements: char **xs_directory(struct xs_handle *h, xs_transaction_t t, const char *path, unsigned int *num);
func (x *Handle) Directory(tx xenif.Tx, path string) ([]string, error) {
	if !x.lock() {
		return nil, xenif.ErrStoreClosed
	}
	defer x.unlock()
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	var n C.uint
	v, err := C.xs_directory(x.h, C.xs_transaction_t(tx), cp, &n)
	if v == nil {
		if err == nil || err == syscall.Errno(0) {
			// An empty directory may come back as a NULL from malloc(0).
			return nil, nil
		}
		return nil, errFor("directory", path, err)
	}
	defer C.free(unsafe.Pointer(v))
	names := make([]string, 0, int(n))
	for i := C.uint(0); i < n; i++ {
		names = append(names, C.GoString(C.xsgo_index(v, i)))
	}
	return names, nil
}

// GetPerms implements xenif.Store.
//
// Implements: struct xs_permissions *xs_get_permissions(struct xs_handle *h, xs_transaction_t t, const char *path, unsigned int *num);
func (x *Handle) GetPerms(tx xenif.Tx, path string) (xenif.Perms, error) {
	if !x.lock() {
		return nil, xenif.ErrStoreClosed
	}
	defer x.unlock()
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	var n C.uint
	v, err := C.xs_get_permissions(x.h, C.xs_transaction_t(tx), cp, &n)
	if v == nil {
		return nil, errFor("get_perms", path, err)
	}
	defer C.free(unsafe.Pointer(v))
	ps := unsafe.Slice(v, int(n))
	out := make(xenif.Perms, 0, len(ps))
	for _, p := range ps {
		out = append(out, xenif.Perm{Domid: uint32(p.id), Bits: xenif.PermBits(p.perms & 3)})
	}
	return out, nil
}

// SetPerms implements xenif.Store.
//
// Implements: bool xs_set_permissions(struct xs_handle *h, xs_transaction_t t, const char *path, struct xs_permissions *perms, unsigned int num_perms);
func (x *Handle) SetPerms(tx xenif.Tx, path string, p xenif.Perms) error {
	if len(p) == 0 {
		return cerr.New("xs", "set_perms", path, syscall.EINVAL)
	}
	if !x.lock() {
		return xenif.ErrStoreClosed
	}
	defer x.unlock()
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	arr := (*C.struct_xs_permissions)(C.calloc(C.size_t(len(p)), C.size_t(unsafe.Sizeof(C.struct_xs_permissions{}))))
	if arr == nil {
		return cerr.New("xs", "set_perms", path, syscall.ENOMEM)
	}
	defer C.free(unsafe.Pointer(arr))
	cs := unsafe.Slice(arr, len(p))
	for i, e := range p {
		cs[i].id = C.uint(e.Domid)
		cs[i].perms = C.uint(e.Bits & 3)
	}
	ok, err := C.xs_set_permissions(x.h, C.xs_transaction_t(tx), cp, arr, C.uint(len(p)))
	if !ok {
		return errFor("set_perms", path, err)
	}
	return nil
}

// Begin implements xenif.Store.
//
// Implements: xs_transaction_t xs_transaction_start(struct xs_handle *h);
func (x *Handle) Begin() (xenif.Tx, error) {
	if !x.lock() {
		return 0, xenif.ErrStoreClosed
	}
	defer x.unlock()
	t, err := C.xs_transaction_start(x.h)
	if t == C.XBT_NULL {
		return 0, errFor("transaction_start", "", err)
	}
	return xenif.Tx(t), nil
}

// End implements xenif.Store. A conflicting commit fails with EAGAIN.
//
// Implements: bool xs_transaction_end(struct xs_handle *h, xs_transaction_t t, bool abort);
func (x *Handle) End(tx xenif.Tx, abort bool) error {
	if !x.lock() {
		return xenif.ErrStoreClosed
	}
	defer x.unlock()
	ok, err := C.xs_transaction_end(x.h, C.xs_transaction_t(tx), C.bool(abort))
	if !ok {
		return errFor("transaction_end", strconv.FormatUint(uint64(tx), 10), err)
	}
	return nil
}

// DomainPath implements xenif.Store.
//
// Implements: char *xs_get_domain_path(struct xs_handle *h, unsigned int domid);
func (x *Handle) DomainPath(domid uint32) (string, error) {
	if !x.lock() {
		return "", xenif.ErrStoreClosed
	}
	defer x.unlock()
	v, err := C.xs_get_domain_path(x.h, C.uint(domid))
	if v == nil {
		return "", errFor("get_domain_path", strconv.FormatUint(uint64(domid), 10), err)
	}
	defer C.free(unsafe.Pointer(v))
	return C.GoString(v), nil
}

// IntroduceDomain tells xenstored about a new domain's ring page and event
// channel (dom0 only); it fires @introduceDomain.
//
// Implements: bool xs_introduce_domain(struct xs_handle *h, unsigned int domid, unsigned long mfn, unsigned int eventchn);
func (x *Handle) IntroduceDomain(domid uint32, mfn uint64, port uint32) error {
	if !x.lock() {
		return xenif.ErrStoreClosed
	}
	defer x.unlock()
	ok, err := C.xs_introduce_domain(x.h, C.uint(domid), C.ulong(mfn), C.uint(port))
	if !ok {
		return errFor("introduce", strconv.FormatUint(uint64(domid), 10), err)
	}
	return nil
}

// ReleaseDomain tells xenstored a domain is gone; it fires @releaseDomain.
//
// Implements: bool xs_release_domain(struct xs_handle *h, unsigned int domid);
func (x *Handle) ReleaseDomain(domid uint32) error {
	if !x.lock() {
		return xenif.ErrStoreClosed
	}
	defer x.unlock()
	ok, err := C.xs_release_domain(x.h, C.uint(domid))
	if !ok {
		return errFor("release", strconv.FormatUint(uint64(domid), 10), err)
	}
	return nil
}

// IsDomainIntroduced asks whether xenstored knows domid. libxenstore
// reports a failed request as "not introduced".
//
// Implements: bool xs_is_domain_introduced(struct xs_handle *h, unsigned int domid);
func (x *Handle) IsDomainIntroduced(domid uint32) (bool, error) {
	if !x.lock() {
		return false, xenif.ErrStoreClosed
	}
	defer x.unlock()
	return bool(C.xs_is_domain_introduced(x.h, C.uint(domid))), nil
}

// Watch implements xenif.Store. The first call starts the goroutine that
// feeds Events.
//
// Implements: bool xs_watch(struct xs_handle *h, const char *path, const char *token);
func (x *Handle) Watch(path, token string) error {
	if !x.lock() {
		return xenif.ErrStoreClosed
	}
	defer x.unlock()
	if err := x.startWatchLoop(); err != nil {
		return errFor("watch", path, err)
	}
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	ct := C.CString(token)
	defer C.free(unsafe.Pointer(ct))
	ok, err := C.xs_watch(x.h, cp, ct)
	if !ok {
		return errFor("watch", path, err)
	}
	return nil
}

// Unwatch implements xenif.Store.
//
// Implements: bool xs_unwatch(struct xs_handle *h, const char *path, const char *token);
func (x *Handle) Unwatch(path, token string) error {
	if !x.lock() {
		return xenif.ErrStoreClosed
	}
	defer x.unlock()
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	ct := C.CString(token)
	defer C.free(unsafe.Pointer(ct))
	ok, err := C.xs_unwatch(x.h, cp, ct)
	if !ok {
		return errFor("unwatch", path, err)
	}
	return nil
}

// Events implements xenif.Store. The channel is closed by Close.
func (x *Handle) Events() <-chan xenif.WatchEvent { return x.events }

// startWatchLoop starts the event goroutine once. Called with mu read-held.
//
// Implements: int xs_fileno(struct xs_handle *h);
func (x *Handle) startWatchLoop() error {
	x.wmu.Lock()
	defer x.wmu.Unlock()
	if x.started {
		return nil
	}
	fd, err := C.xs_fileno(x.h)
	if fd < 0 {
		if err == nil {
			err = syscall.EIO
		}
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	x.stopR, x.stopW = r, w
	x.loopDone = make(chan struct{})
	x.stop = make(chan struct{})
	x.started = true
	go x.watchLoop(C.int(fd), C.int(r.Fd()))
	return nil
}

// watchLoop waits on libxenstore's watch pipe and drains it with
// xs_check_watch. It does not hold mu: the handle stays valid until Close
// has seen this goroutine exit (loopDone).
//
// Implements: char **xs_check_watch(struct xs_handle *h);
func (x *Handle) watchLoop(watchfd, stopfd C.int) {
	defer close(x.loopDone)
	var delay time.Duration
	for {
		r, err := waitWatch(int(watchfd), int(stopfd))
		if r == 2 {
			return
		}
		if r < 0 {
			if err == syscall.EINTR {
				continue
			}
			// poll(2) failed otherwise (ENOMEM): transient. Returning
			// would end every watch of the handle without a word; wait
			// (5 ms doubling to 1 s) and poll again.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-x.stop:
				t.Stop()
				return
			}
			continue
		}
		delay = 0
		for {
			var eagain C.int
			v := C.xsgo_check_watch(x.h, &eagain)
			if v == nil {
				// EAGAIN: drained. Anything else: wait for the pipe again.
				break
			}
			ev := xenif.WatchEvent{
				Path:  C.GoString(C.xsgo_index(v, C.XS_WATCH_PATH)),
				Token: C.GoString(C.xsgo_index(v, C.XS_WATCH_TOKEN)),
			}
			C.free(unsafe.Pointer(v))
			select {
			case x.events <- ev:
			case <-x.stop:
				return
			}
		}
	}
}

// waitWatch is xsgo_wait; tests replace it to make poll(2) fail.
var waitWatch = func(watchfd, stopfd int) (int, error) {
	r, err := C.xsgo_wait(C.int(watchfd), C.int(stopfd))
	return int(r), err
}

// Close implements xenif.Store: it waits for calls in progress, stops the
// event goroutine, closes the libxenstore handle exactly once and closes
// Events. Later calls return nil.
//
// Implements: void xs_close(struct xs_handle *xsh);
func (x *Handle) Close() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.h == nil {
		return nil
	}
	// With mu write-held no Watch can be starting the goroutine now.
	x.wmu.Lock()
	started := x.started
	x.wmu.Unlock()
	if started {
		close(x.stop)
		_, _ = x.stopW.Write([]byte{0})
		<-x.loopDone
		x.stopR.Close()
		x.stopW.Close()
	}
	C.xs_close(x.h)
	x.h = nil
	close(x.events)
	return nil
}
