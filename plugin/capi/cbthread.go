package main

// The callback thread: every completion and event callback of the process
// runs on one goroutine locked to its own OS thread, one at a time, in the
// order they were posted (govscsi.h, "Asynchronous operations"). It is
// started by the first pending operation or enabled subscription (a
// reference, cbAcquire) and ends when the last reference is gone and the
// queue is empty; its thread ends with it (a goroutine that exits locked
// to its thread takes the thread along). Nothing of it exists at load.
//
// The queue is unbounded on purpose: producers (operation goroutines,
// subscription watchers) never wait for the C toolstack, so vscsi_close
// can wait for them even when it is called from a callback.

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

var cbt struct {
	mu      sync.Mutex
	queue   []func()
	refs    int
	running bool
	wake    chan struct{}
	runMu   sync.Mutex   // held while a callback runs
	tid     atomic.Int32 // the callback thread's id while it runs a callback
}

// cbAcquire takes a reference, starting the callback thread if needed.
func cbAcquire() {
	cbt.mu.Lock()
	defer cbt.mu.Unlock()
	cbt.refs++
	if !cbt.running {
		cbt.running = true
		cbt.wake = make(chan struct{}, 1)
		go cbLoop(cbt.wake)
	}
}

// cbRelease drops a reference; the thread ends once none is left and
// everything posted ran.
func cbRelease() {
	cbt.mu.Lock()
	cbt.refs--
	w := cbt.wake
	cbt.mu.Unlock()
	signal(w)
}

// cbPost queues fn for the callback thread. The caller holds a reference
// until fn has run (fn may drop it).
func cbPost(fn func()) {
	cbt.mu.Lock()
	cbt.queue = append(cbt.queue, fn)
	w := cbt.wake
	cbt.mu.Unlock()
	signal(w)
}

func signal(w chan struct{}) {
	if w == nil {
		return
	}
	select {
	case w <- struct{}{}:
	default:
	}
}

// onCallbackThread reports whether the caller runs inside a callback (on
// the callback thread): then it must not wait for other callbacks.
func onCallbackThread() bool {
	t := cbt.tid.Load()
	return t != 0 && int(t) == unix.Gettid()
}

// cbSync waits until no callback is running (one running now returns).
// Not on the callback thread.
func cbSync() {
	cbt.runMu.Lock()
	defer cbt.runMu.Unlock()
	_ = cbt.tid.Load() // nothing to do inside: having had the lock is the point
}

func cbLoop(wake chan struct{}) {
	runtime.LockOSThread() // never unlocked: the thread ends with the loop
	tid := int32(unix.Gettid())
	for {
		cbt.mu.Lock()
		for len(cbt.queue) == 0 {
			if cbt.refs == 0 {
				cbt.running = false
				cbt.wake = nil
				cbt.mu.Unlock()
				return
			}
			cbt.mu.Unlock()
			<-wake
			cbt.mu.Lock()
		}
		fn := cbt.queue[0]
		cbt.queue[0] = nil
		cbt.queue = cbt.queue[1:]
		if len(cbt.queue) == 0 {
			cbt.queue = nil
		}
		cbt.mu.Unlock()
		cbt.runMu.Lock()
		cbt.tid.Store(tid)
		runGuarded("callback delivery", fn)
		cbt.tid.Store(0)
		cbt.runMu.Unlock()
	}
}

// runGuarded runs fn, turning a panic into a logged error: no Go panic
// crosses into C, and the callback thread goes on.
func runGuarded(what string, fn func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: internal error: %v", what, r)
			logInternal(err.Error(), debug.Stack())
		}
	}()
	fn()
	return nil
}
