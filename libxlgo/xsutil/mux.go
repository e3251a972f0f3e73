// Package xsutil holds pure-Go helpers over xenif.Store: Mux shares one
// connection's watch events among several users, and WaitFor waits (with a
// context deadline) until a node satisfies a predicate, the building block
// of "wait for the backend to reach state 4" style code.
package xsutil

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"syscall"

	"github.com/govscsi/govscsi/libxlgo/xenif"
)

// Mux owns a Store's Events channel and hands each watch its own channel,
// keyed by a unique token. Notifications are coalesced: a subscriber's
// channel holds at most one pending event, which means "something under the
// watched path changed; look again" (all a xenstore event ever means). So a
// slow subscriber never blocks the others or the connection.
type Mux struct {
	s      xenif.Store
	mu     sync.Mutex
	subs   map[string]chan xenif.WatchEvent
	next   uint64
	prefix string
	done   chan struct{}
	loop   chan struct{}
	once   sync.Once
}

// NewMux starts a goroutine that dispatches s's events; stop it with Close.
// Nothing else may read s.Events() meanwhile.
func NewMux(s xenif.Store) *Mux {
	m := &Mux{s: s, subs: map[string]chan xenif.WatchEvent{}, done: make(chan struct{}), loop: make(chan struct{})}
	m.prefix = fmt.Sprintf("xsutil.%p.", m)
	go m.run()
	return m
}

func (m *Mux) run() {
	defer close(m.loop)
	for {
		select {
		case ev, ok := <-m.s.Events():
			if !ok {
				return
			}
			m.mu.Lock()
			if ch := m.subs[ev.Token]; ch != nil {
				select {
				case ch <- ev:
				default: // one notification is already pending
				}
			}
			m.mu.Unlock()
		case <-m.done:
			return
		}
	}
}

// Store returns the underlying store.
func (m *Mux) Store() xenif.Store { return m.s }

// Watch registers a watch on path and returns its notification channel and
// a cancel function that removes the watch. The first notification (the
// initial firing) arrives straight away.
func (m *Mux) Watch(path string) (<-chan xenif.WatchEvent, func() error, error) {
	m.mu.Lock()
	m.next++
	tok := m.prefix + strconv.FormatUint(m.next, 10)
	ch := make(chan xenif.WatchEvent, 1)
	m.subs[tok] = ch
	m.mu.Unlock()
	if err := m.s.Watch(path, tok); err != nil {
		m.mu.Lock()
		delete(m.subs, tok)
		m.mu.Unlock()
		return nil, nil, err
	}
	var once sync.Once
	cancel := func() error {
		var err error
		once.Do(func() {
			err = m.s.Unwatch(path, tok)
			m.mu.Lock()
			delete(m.subs, tok)
			m.mu.Unlock()
		})
		return err
	}
	return ch, cancel, nil
}

// Close stops the dispatcher (it does not close the Store).
func (m *Mux) Close() error {
	m.once.Do(func() { close(m.done) })
	<-m.loop
	return nil
}

// WaitFor reads path, and again after every change under it, until pred
// accepts the value (exists is false, value "", for a missing node); it
// returns the accepted value. It fails with ctx's error (wrapped, naming
// the path and the last value seen) when ctx ends first, and with the read
// error if reading fails for another reason than ENOENT (EACCES ...).
func WaitFor(ctx context.Context, m *Mux, path string, pred func(value string, exists bool) bool) (string, error) {
	ch, cancel, err := m.Watch(path)
	if err != nil {
		return "", err
	}
	defer cancel()
	last := "(missing)"
	for {
		v, err := m.s.Read(xenif.NoTx, path)
		exists := err == nil
		if err != nil && !errors.Is(err, syscall.ENOENT) {
			return "", err
		}
		if pred(v, exists) {
			return v, nil
		}
		if exists {
			last = strconv.Quote(v)
		} else {
			last = "(missing)"
		}
		select {
		case _, ok := <-ch:
			if !ok {
				return "", xenif.ErrStoreClosed
			}
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for xenstore %s (last value %s): %w", path, last, ctx.Err())
		}
	}
}

// Equals is a WaitFor predicate: the node exists with value want.
func Equals(want string) func(string, bool) bool {
	return func(v string, ok bool) bool { return ok && v == want }
}

// Gone is a WaitFor predicate: the node does not exist.
func Gone(_ string, exists bool) bool { return !exists }
