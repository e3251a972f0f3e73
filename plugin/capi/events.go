package main

// Device-state events (govscsi.h, vscsi_evenable): each subscription runs
// plugin.Toolstack.WatchStates in a goroutine on its handle's Toolstack;
// every event is posted to the callback thread, where it is dropped if
// the subscription was disabled meanwhile. The vscsi_evsub * handed to C
// is a github.com/mattn/go-pointer key (refs.go) of the subscription.

import "C"

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/govscsi/govscsi/plugin"
)

type subscription struct {
	h        C.int
	hd       *handle
	fn, user unsafe.Pointer
	cancel   context.CancelFunc
	done     chan struct{} // the watcher ended
	disabled atomic.Bool
	token    unsafe.Pointer
}

// post queues ev for the C function, unless the subscription is disabled
// by the time it would run.
func (s *subscription) post(ev cEvent) {
	cbPost(func() {
		if !s.disabled.Load() {
			callEvent(s.fn, int(s.h), ev, s.user)
		}
	})
}

// stop ends the subscription: no event reaches C after it returns (after
// the running callback, when called from one), and its reference goes.
func (s *subscription) stop() {
	s.disabled.Store(true)
	s.cancel()
	<-s.done
	if !onCallbackThread() {
		cbSync()
	}
	unrefRef(s.token)
	cbRelease()
}

func toCEvent(ev plugin.StateEvent) cEvent {
	return cEvent{typ: eventType(ev.Kind), domid: ev.Domid, vhost: ev.VHost, dev: ev.Dev, side: int(ev.Side),
		state: ev.State, oldState: ev.OldState, vdev: ev.VDev, backendType: ev.BackendType}
}

//export vscsi_evenable
func vscsi_evenable(h C.int, domain *C.char, fn, user unsafe.Pointer, out *unsafe.Pointer) (rc C.int) {
	defer recoverExport(h, &rc, "vscsi_evenable")
	if fn == nil || out == nil {
		return badArg(h, invalidArg("vscsi_evenable: NULL fn or sub"))
	}
	*out = nil
	hd := lookup(h)
	if hd == nil {
		return -C.int(syscall.EBADF)
	}
	// The domain is resolved with the handle's lock held, as a synchronous
	// call; the watcher runs without it.
	var domid uint32
	all := true
	if rc := call(h, func(hd *handle) error {
		name, ok := goStr(domain)
		if !ok || name == "" {
			return nil
		}
		all = false
		var err error
		domid, err = hd.ts.DomainID(name)
		return err
	}); rc != 0 {
		return rc
	}
	a := &hd.async
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return -C.int(syscall.EBADF)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &subscription{h: h, hd: hd, fn: fn, user: user, cancel: cancel, done: make(chan struct{})}
	a.running.Add(1) // vscsi_close waits for the watcher's start
	a.mu.Unlock()
	defer a.running.Done()
	cbAcquire()
	ready := make(chan struct{})
	failed := make(chan error, 1)
	go func() {
		defer close(s.done)
		started := false
		var err error
		if gerr := runGuarded("event subscription", func() {
			err = hd.ts.WatchStates(ctx, domid, all, func() { started = true; close(ready) }, func(ev plugin.StateEvent) {
				s.post(toCEvent(ev))
			})
		}); gerr != nil {
			err = fmt.Errorf("%w: %w", gerr, syscall.EIO)
		}
		switch {
		case !started:
			failed <- err
		case err != nil && ctx.Err() == nil:
			r, msg := asyncResult(err)
			s.post(cEvent{typ: eventError, domid: domid, vhost: -1, dev: -1, state: int(r), errmsg: msg})
		}
	}()
	select {
	case <-ready:
	case err := <-failed:
		cancel()
		cbRelease()
		if err == nil {
			err = fmt.Errorf("vscsi_evenable: the subscription ended before it started")
		}
		return badArg(h, err)
	}
	s.token = saveRef(s)
	a.mu.Lock()
	if a.closed { // vscsi_close ran meanwhile and did not see this one
		a.mu.Unlock()
		s.stop()
		return -C.int(syscall.EBADF)
	}
	if a.subs == nil {
		a.subs = map[*subscription]struct{}{}
	}
	a.subs[s] = struct{}{}
	a.mu.Unlock()
	*out = s.token
	return 0
}

//export vscsi_evdisable
func vscsi_evdisable(h C.int, sub unsafe.Pointer) (rc C.int) {
	defer recoverExport(h, &rc, "vscsi_evdisable")
	notEnabled := func() C.int {
		return badArg(h, fmt.Errorf("vscsi_evdisable: %p is not an enabled subscription of handle %d: %w", sub, int(h), syscall.EBADF))
	}
	if lookup(h) == nil {
		return -C.int(syscall.EBADF)
	}
	s, ok := restoreRef(sub).(*subscription)
	if !ok || s.h != h {
		return notEnabled()
	}
	a := &s.hd.async
	a.mu.Lock()
	_, enabled := a.subs[s]
	delete(a.subs, s)
	a.mu.Unlock()
	if !enabled {
		return notEnabled()
	}
	s.stop()
	return 0
}
