package main

// Asynchronous operations (govscsi.h, "Asynchronous operations"): the
// _async variant of each operation that waits for peers. With a callback
// the operation runs in a goroutine of its own, on the handle's Toolstack
// (safe for concurrent use: it serialises operations per vhost itself),
// and its result is posted to the callback thread (cbthread.go). The
// handle keeps its pending operations for vscsi_abort and vscsi_close.

import "C"

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"unsafe"
)

// asyncOp is one pending asynchronous operation.
type asyncOp struct {
	callback, user unsafe.Pointer
	cancel         context.CancelFunc
}

// asyncSet is a handle's asynchronous state.
type asyncSet struct {
	mu          sync.Mutex
	closed      bool // vscsi_close began: nothing new starts
	ops         map[*asyncOp]struct{}
	running     sync.WaitGroup // operation goroutines
	undelivered sync.WaitGroup // operations whose callback has not run yet
	subs        map[*subscription]struct{}
}

// asyncResult maps an operation's error to its callback's rc and message.
func asyncResult(err error) (C.int, string) {
	var ee errnoError
	switch {
	case errors.As(err, &ee):
		return ee.rc, ee.msg
	case err == nil:
		return 0, ""
	case errors.Is(err, context.Canceled):
		return -C.int(syscall.ECANCELED), err.Error()
	}
	return errnoOf(err), err.Error()
}

// startAsync runs op for handle h: synchronously through sync (the
// handle's existing call path, which records vscsi_errmsg) when how has
// no callback, otherwise in the background. toolstack tells whether h
// must be a toolstack handle (else a backend handle); abortable whether
// vscsi_abort can stop it.
func startAsync(h C.int, how unsafe.Pointer, toolstack bool, sync func() C.int, op func(ctx context.Context, hd *handle) error) C.int {
	cb, user := readHow(how)
	if cb == nil {
		return sync()
	}
	hd := lookup(h)
	if hd == nil {
		return -C.int(syscall.EBADF)
	}
	hd.mu.Lock()
	ok := (toolstack && hd.ts != nil) || (!toolstack && hd.be != nil)
	if !ok {
		hd.lastErr = "not a handle of this kind (toolstack handles from vscsi_open, backend handles from vscsi_backend_start)"
	}
	hd.mu.Unlock()
	if !ok {
		return -C.int(syscall.EBADF)
	}
	a := &hd.async
	ctx, cancel := context.WithCancel(context.Background())
	o := &asyncOp{callback: cb, user: user, cancel: cancel}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		cancel()
		return -C.int(syscall.EBADF)
	}
	if a.ops == nil {
		a.ops = map[*asyncOp]struct{}{}
	}
	a.ops[o] = struct{}{}
	a.running.Add(1)
	a.undelivered.Add(1)
	a.mu.Unlock()
	cbAcquire()
	go func() {
		defer a.running.Done()
		var err error
		if gerr := runGuarded("asynchronous operation", func() { err = op(ctx, hd) }); gerr != nil {
			err = fmt.Errorf("%w: %w", gerr, syscall.EIO)
		}
		cancel()
		a.mu.Lock()
		delete(a.ops, o)
		a.mu.Unlock()
		rc, msg := asyncResult(err)
		cbPost(func() {
			defer cbRelease()
			defer a.undelivered.Done()
			callDone(o.callback, int(h), int(rc), msg, o.user)
		})
	}()
	return 0
}

// closeAsync stops what a closing handle has running: its operations are
// aborted and waited for (their callbacks have run when it returns, unless
// it is called from a callback), its subscriptions disabled.
func closeAsync(hd *handle) {
	a := &hd.async
	a.mu.Lock()
	a.closed = true
	for o := range a.ops {
		o.cancel()
	}
	subs := make([]*subscription, 0, len(a.subs))
	for s := range a.subs {
		subs = append(subs, s)
	}
	a.subs = nil
	a.mu.Unlock()
	a.running.Wait()
	for _, s := range subs {
		s.stop()
	}
	if !onCallbackThread() {
		a.undelivered.Wait()
	}
}

//export vscsi_abort
func vscsi_abort(h C.int, how unsafe.Pointer) (rc C.int) {
	defer recoverExport(h, &rc, "vscsi_abort")
	hd := lookup(h)
	if hd == nil {
		return -C.int(syscall.EBADF)
	}
	cb, user := readHow(how)
	if cb == nil {
		return badArg(h, invalidArg("vscsi_abort: NULL how or how->callback"))
	}
	a := &hd.async
	a.mu.Lock()
	n := 0
	for o := range a.ops {
		if o.callback == cb && o.user == user {
			o.cancel()
			n++
		}
	}
	a.mu.Unlock()
	if n == 0 {
		return badArg(h, fmt.Errorf("vscsi_abort: no asynchronous operation of this handle has that callback and user: %w", syscall.ENOENT))
	}
	return 0
}

func nullArg(name string) error { return invalidArg(name + ": NULL argument") }

//export vscsi_attach_async
func vscsi_attach_async(h C.int, domain, pdev, vdevAndOpts *C.char, how unsafe.Pointer) (rc C.int) {
	defer recoverExport(h, &rc, "vscsi_attach_async")
	d, ok1 := goStr(domain)
	p, ok2 := goStr(pdev)
	v, ok3 := goStr(vdevAndOpts)
	if cb, _ := readHow(how); cb != nil && (!ok1 || !ok2 || !ok3) {
		return badArg(h, nullArg("vscsi_attach_async"))
	}
	return startAsync(h, how, true, func() C.int { return vscsi_attach(h, domain, pdev, vdevAndOpts) },
		func(ctx context.Context, hd *handle) error {
			_, err := hd.ts.Attach(ctx, d, p, v)
			return err
		})
}

//export vscsi_detach_async
func vscsi_detach_async(h C.int, domain, vdev *C.char, how unsafe.Pointer) (rc C.int) {
	defer recoverExport(h, &rc, "vscsi_detach_async")
	d, ok1 := goStr(domain)
	v, ok2 := goStr(vdev)
	if cb, _ := readHow(how); cb != nil && (!ok1 || !ok2) {
		return badArg(h, nullArg("vscsi_detach_async"))
	}
	return startAsync(h, how, true, func() C.int { return vscsi_detach(h, domain, vdev) },
		func(ctx context.Context, hd *handle) error {
			_, err := hd.ts.Detach(ctx, d, v)
			return err
		})
}

//export vscsi_destroy_vhost_async
func vscsi_destroy_vhost_async(h C.int, domain *C.char, vhost C.int, how unsafe.Pointer) (rc C.int) {
	defer recoverExport(h, &rc, "vscsi_destroy_vhost_async")
	d, ok := goStr(domain)
	if cb, _ := readHow(how); cb != nil && (!ok || vhost < 0) {
		return badArg(h, invalidArg("vscsi_destroy_vhost_async: NULL domain or negative vhost"))
	}
	return startAsync(h, how, true, func() C.int { return vscsi_destroy_vhost(h, domain, vhost) },
		func(ctx context.Context, hd *handle) error {
			_, err := hd.ts.DestroyVHost(ctx, d, int(vhost))
			return err
		})
}

//export vscsi_apply_async
func vscsi_apply_async(h C.int, configPath, domain *C.char, how unsafe.Pointer) (rc C.int) {
	defer recoverExport(h, &rc, "vscsi_apply_async")
	c, ok1 := goStr(configPath)
	d, ok2 := goStr(domain)
	if cb, _ := readHow(how); cb != nil && (!ok1 || !ok2) {
		return badArg(h, nullArg("vscsi_apply_async"))
	}
	return startAsync(h, how, true, func() C.int { return vscsi_apply(h, configPath, domain) },
		func(ctx context.Context, hd *handle) error {
			_, err := hd.ts.Apply(ctx, d, c)
			return err
		})
}

//export vscsi_backend_stop_async
func vscsi_backend_stop_async(h C.int, timeoutMS C.int, how unsafe.Pointer) (rc C.int) {
	defer recoverExport(h, &rc, "vscsi_backend_stop_async")
	return startAsync(h, how, false, func() C.int { return vscsi_backend_stop(h, timeoutMS) },
		func(_ context.Context, hd *handle) error {
			if rc := vscsi_backend_stop(h, timeoutMS); rc != 0 {
				return errnoError{rc: rc, msg: lastMessage(h, hd)}
			}
			return nil
		})
}

//export vscsi_backend_stop_disconnect_async
func vscsi_backend_stop_disconnect_async(h C.int, timeoutMS C.int, how unsafe.Pointer) (rc C.int) {
	defer recoverExport(h, &rc, "vscsi_backend_stop_disconnect_async")
	return startAsync(h, how, false, func() C.int { return vscsi_backend_stop_disconnect(h, timeoutMS) },
		func(_ context.Context, hd *handle) error {
			if rc := vscsi_backend_stop_disconnect(h, timeoutMS); rc != 0 {
				return errnoError{rc: rc, msg: lastMessage(h, hd)}
			}
			return nil
		})
}

// errnoError carries an rc and message a synchronous call produced.
type errnoError struct {
	rc  C.int
	msg string
}

func (e errnoError) Error() string { return e.msg }

// lastMessage is the message a failed call on h left: the handle's, or
// handle 0's once the call released h (vscsi_backend_stop does).
func lastMessage(h C.int, hd *handle) string {
	if lookup(h) == hd {
		hd.mu.Lock()
		defer hd.mu.Unlock()
		return hd.lastErr
	}
	tableMu.Lock()
	defer tableMu.Unlock()
	return openErr
}

// badArg records err as h's message (handle 0's if h is unknown) and
// returns its errno.
func badArg(h C.int, err error) C.int {
	if hd := lookup(h); hd != nil {
		hd.mu.Lock()
		hd.lastErr = err.Error()
		hd.mu.Unlock()
	} else {
		setOpenErr(err.Error())
	}
	return errnoOf(err)
}
