// Command capi is libgovscsi.so, the C API of govscsi's toolstack (built
// with `make lib`, -buildmode=c-shared). The public header is the
// hand-written c/include/govscsi.h; the cgo-generated header is not
// installed.
//
// Conventions (after tailscale/libtailscale):
//   - handles are small positive ints from a table; no Go pointer is ever
//     handed to C;
//   - functions return 0 or a negative errno; the message of the last
//     error of a handle is copied by vscsi_errmsg into a caller buffer
//     (handle 0 holds the last vscsi_open error);
//   - strings returned to C (vscsi_list) are malloc'ed and released with
//     vscsi_free;
//   - nothing of ours runs before vscsi_open or vscsi_backend_start: no
//     goroutine, timer or connection at load time (hosts fork). vscsi_open
//     starts one goroutine (the watch dispatcher) and libxenstore's reader
//     thread appears with the first watch; vscsi_close stops both.
//     vscsi_backend_start runs the userspace backend (backend.go) in
//     goroutines of its own until vscsi_backend_stop.
//
// One Go runtime per process: this must be the only Go c-shared library a
// process loads, and it must not be dlclose'd.
package main

/*
#include <stdlib.h>
#include <string.h>
*/
import "C"

import (
	"context"
	"errors"
	"io"
	"math"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	"github.com/govscsi/govscsi/cfgparse"
	"github.com/govscsi/govscsi/internal/opfile"
	"github.com/govscsi/govscsi/internal/version"
	"github.com/govscsi/govscsi/libxlgo/xs"
	"github.com/govscsi/govscsi/plugin"
)

// apiVersion must equal GOVSCSI_API_VERSION in c/include/govscsi.h.
const apiVersion = 4

// handle is a toolstack handle (vscsi_open: store, ts) or an embedded
// backend (vscsi_backend_start: be).
type handle struct {
	mu      sync.Mutex
	store   *xs.Handle
	ts      *plugin.Toolstack
	closer  io.Closer
	be      *backendRun
	lastErr string
	async   asyncSet // asynchronous operations and subscriptions (async.go)
}

var (
	tableMu sync.Mutex
	table   map[C.int]*handle // created by the first vscsi_open
	nextID  C.int             = 1
	openErr string            // the last vscsi_open error (handle 0)
)

func lookup(h C.int) *handle {
	tableMu.Lock()
	defer tableMu.Unlock()
	return table[h]
}

// invalidArg is a bad argument from C (EINVAL).
type invalidArg string

func (e invalidArg) Error() string { return string(e) }

// errnoOf maps an error to a negative errno for C.
func errnoOf(err error) C.int {
	var (
		de *plugin.DeviceError
		ve *plugin.VHostError
		se *cfgparse.SpecError
		ge *cfgparse.GroupError
		en syscall.Errno
	)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, plugin.ErrNoDomain):
		return -C.int(syscall.ESRCH)
	case errors.Is(err, plugin.ErrAmbiguousDomain):
		return -C.int(syscall.EINVAL)
	case errors.Is(err, plugin.ErrNoDevice):
		return -C.int(syscall.ENOENT)
	case errors.Is(err, plugin.ErrBusyVHost):
		return -C.int(syscall.EBUSY)
	case errors.Is(err, plugin.ErrTimeout):
		return -C.int(syscall.ETIMEDOUT)
	case errors.As(err, &de):
		return -C.int(syscall.ENODEV)
	case errors.As(err, &ve):
		return -C.int(syscall.ENOTCONN)
	case errors.As(err, &se), errors.As(err, &ge), errors.As(err, new(invalidArg)),
		errors.Is(err, plugin.ErrInvalidArgument), errors.Is(err, opfile.ErrNotRegular), errors.Is(err, opfile.ErrTooLarge):
		return -C.int(syscall.EINVAL)
	case errors.As(err, &en) && en != 0:
		return -C.int(en)
	}
	return -C.int(syscall.EIO)
}

// call runs fn for handle h with the handle's lock held (one operation at
// a time per handle; use several handles for parallel work) and records
// its error.
func call(h C.int, fn func(hd *handle) error) C.int {
	hd := lookup(h)
	if hd == nil {
		return -C.int(syscall.EBADF)
	}
	hd.mu.Lock()
	defer hd.mu.Unlock()
	if hd.ts == nil {
		return -C.int(syscall.EBADF)
	}
	err := fn(hd)
	if err != nil {
		hd.lastErr = err.Error()
	} else {
		hd.lastErr = ""
	}
	return errnoOf(err)
}

func goStr(s *C.char) (string, bool) {
	if s == nil {
		return "", false
	}
	return C.GoString(s), true
}

//export vscsi_api_version
func vscsi_api_version() C.int { return apiVersion }

// versionString is vscsi_version's answer, made at its first call (not at
// load time) and never freed: the header promises a static string.
var (
	versionOnce   sync.Once
	versionString *C.char
)

//export vscsi_version
func vscsi_version() *C.char {
	versionOnce.Do(func() { versionString = C.CString("govscsi " + version.String()) })
	return versionString
}

//export vscsi_open
func vscsi_open(options *C.char, out *C.int) (rc C.int) {
	defer recoverExport(0, &rc, "vscsi_open")
	fail := func(err error) C.int {
		tableMu.Lock()
		openErr = err.Error()
		tableMu.Unlock()
		return errnoOf(err)
	}
	if out == nil {
		return fail(invalidArg("vscsi_open: handle pointer is NULL"))
	}
	var opt plugin.Options
	var closer io.Closer
	if text, ok := goStr(options); ok {
		o, c, err := plugin.ParseOptionsYAML(text)
		if err != nil {
			return fail(invalidArg(err.Error()))
		}
		opt, closer = o, c
	}
	opt.Logger = withSink(opt.Logger, "govscsi")
	st, err := xs.Open(0)
	if err != nil {
		if closer != nil {
			closer.Close()
		}
		return fail(err)
	}
	hd := &handle{store: st, ts: plugin.New(st, opt), closer: closer}
	tableMu.Lock()
	if table == nil {
		table = map[C.int]*handle{}
	}
	id := nextID
	nextID++
	table[id] = hd
	openErr = ""
	tableMu.Unlock()
	*out = id
	return 0
}

//export vscsi_close
func vscsi_close(h C.int) (rc C.int) {
	defer recoverExport(h, &rc, "vscsi_close")
	tableMu.Lock()
	hd := table[h]
	if hd != nil && hd.be != nil {
		tableMu.Unlock()
		hd.mu.Lock()
		hd.lastErr = "a backend handle: stop it with vscsi_backend_stop"
		hd.mu.Unlock()
		return -C.int(syscall.EBADF)
	}
	delete(table, h)
	tableMu.Unlock()
	if hd == nil {
		return -C.int(syscall.EBADF)
	}
	closeAsync(hd)
	hd.mu.Lock()
	defer hd.mu.Unlock()
	hd.ts.Close()
	err := hd.store.Close()
	if hd.closer != nil {
		hd.closer.Close()
	}
	hd.ts = nil
	return errnoOf(err)
}

//export vscsi_open_handles
func vscsi_open_handles() C.int {
	tableMu.Lock()
	defer tableMu.Unlock()
	return C.int(len(table))
}

//export vscsi_attach
func vscsi_attach(h C.int, domain, pdev, vdevAndOpts *C.char) (rc C.int) {
	defer recoverExport(h, &rc, "vscsi_attach")
	return call(h, func(hd *handle) error {
		d, ok1 := goStr(domain)
		p, ok2 := goStr(pdev)
		v, ok3 := goStr(vdevAndOpts)
		if !ok1 || !ok2 || !ok3 {
			return invalidArg("vscsi_attach: NULL argument")
		}
		_, err := hd.ts.Attach(context.Background(), d, p, v)
		return err
	})
}

//export vscsi_detach
func vscsi_detach(h C.int, domain, vdev *C.char) (rc C.int) {
	defer recoverExport(h, &rc, "vscsi_detach")
	return call(h, func(hd *handle) error {
		d, ok1 := goStr(domain)
		v, ok2 := goStr(vdev)
		if !ok1 || !ok2 {
			return invalidArg("vscsi_detach: NULL argument")
		}
		_, err := hd.ts.Detach(context.Background(), d, v)
		return err
	})
}

//export vscsi_apply
func vscsi_apply(h C.int, configPath, domain *C.char) (rc C.int) {
	defer recoverExport(h, &rc, "vscsi_apply")
	return call(h, func(hd *handle) error {
		c, ok1 := goStr(configPath)
		d, ok2 := goStr(domain)
		if !ok1 || !ok2 {
			return invalidArg("vscsi_apply: NULL argument")
		}
		_, err := hd.ts.Apply(context.Background(), d, c)
		return err
	})
}

//export vscsi_destroy_vhost
func vscsi_destroy_vhost(h C.int, domain *C.char, vhost C.int) (rc C.int) {
	defer recoverExport(h, &rc, "vscsi_destroy_vhost")
	return call(h, func(hd *handle) error {
		d, ok := goStr(domain)
		if !ok || vhost < 0 {
			return invalidArg("vscsi_destroy_vhost: NULL domain or negative vhost")
		}
		_, err := hd.ts.DestroyVHost(context.Background(), d, int(vhost))
		return err
	})
}

//export vscsi_cleanup
func vscsi_cleanup(h C.int) (rc C.int) {
	defer recoverExport(h, &rc, "vscsi_cleanup")
	return call(h, func(hd *handle) error {
		_, err := hd.ts.Cleanup()
		return err
	})
}

//export vscsi_list
func vscsi_list(h C.int, domain *C.char, jsonOut **C.char) (rc C.int) {
	defer recoverExport(h, &rc, "vscsi_list")
	if jsonOut != nil {
		*jsonOut = nil
	}
	return call(h, func(hd *handle) error {
		if jsonOut == nil {
			return invalidArg("vscsi_list: json_out is NULL")
		}
		d, ok := goStr(domain)
		if !ok {
			return invalidArg("vscsi_list: NULL domain")
		}
		id, err := hd.ts.DomainID(d)
		if err != nil {
			return err
		}
		vs, err := hd.ts.List(id)
		if err != nil {
			return err
		}
		b, err := plugin.FormatListJSON(vs)
		if err != nil {
			return err
		}
		*jsonOut = C.CString(string(b))
		return nil
	})
}

//export vscsi_free
func vscsi_free(p *C.char) { C.free(unsafe.Pointer(p)) }

//export vscsi_errmsg
func vscsi_errmsg(h C.int, buf *C.char, n C.size_t) (rc C.int) {
	// Its own failures leave the message alone: it is what the caller
	// wants to read.
	defer func() {
		if recover() != nil {
			rc = -C.int(syscall.EIO)
		}
	}()
	var msg string
	if h == 0 {
		tableMu.Lock()
		msg = openErr
		tableMu.Unlock()
	} else {
		hd := lookup(h)
		if hd == nil {
			return -C.int(syscall.EBADF)
		}
		hd.mu.Lock()
		msg = hd.lastErr
		hd.mu.Unlock()
	}
	// No object is larger than PTRDIFF_MAX bytes: a larger len is a bug
	// such as (size_t)-1, not a buffer (unsafe.Slice panicked on it).
	if buf == nil || n == 0 || uint64(n) > math.MaxInt {
		return -C.int(syscall.EINVAL)
	}
	// Only the bytes written are touched: the message and its NUL.
	dst := unsafe.Slice((*byte)(unsafe.Pointer(buf)), min(uint64(n), uint64(len(msg))+1))
	k := copy(dst[:len(dst)-1], msg)
	dst[k] = 0
	if k < len(msg) {
		return -C.int(syscall.ERANGE)
	}
	return 0
}

// vscsi_debug_goroutines reports how many goroutines run (the runtime's
// own system goroutines not counted), for tests that check the library
// starts nothing of its own before vscsi_open and leaves nothing after
// vscsi_close.
//
//export vscsi_debug_goroutines
func vscsi_debug_goroutines() C.int { return C.int(runtime.NumGoroutine()) }

func main() {}
