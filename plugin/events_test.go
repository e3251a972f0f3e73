package plugin_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/govscsi/govscsi/libxlgo/xenif"
	"github.com/govscsi/govscsi/plugin"
	"github.com/govscsi/govscsi/plugin/internal/rigtest"
)

// eventLog runs WatchStates in the background and collects its events.
type eventLog struct {
	t      *testing.T
	ch     chan plugin.StateEvent
	done   chan error
	cancel context.CancelFunc
	seen   []plugin.StateEvent
}

func watchStates(t *testing.T, ts *plugin.Toolstack, domid uint32, all bool) *eventLog {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &eventLog{t: t, ch: make(chan plugin.StateEvent, 1000), done: make(chan error, 1), cancel: cancel}
	ready := make(chan struct{})
	go func() {
		l.done <- ts.WatchStates(ctx, domid, all, func() { close(ready) }, func(ev plugin.StateEvent) { l.ch <- ev })
	}()
	select {
	case <-ready:
	case err := <-l.done:
		t.Fatalf("WatchStates ended before it was ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("WatchStates not ready after 10 s")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-l.done:
		case <-time.After(10 * time.Second):
			t.Error("WatchStates did not return after its context ended")
		}
	})
	return l
}

func evKey(ev plugin.StateEvent) string {
	return fmt.Sprintf("%d/%d/%d/%d/%d", ev.Kind, ev.Domid, ev.VHost, ev.Dev, ev.Side)
}

func (ev evString) String() string {
	e := plugin.StateEvent(ev)
	side := "be"
	if e.Side == plugin.SideFrontend {
		side = "fe"
	}
	switch e.Kind {
	case plugin.EventDomainGone:
		return fmt.Sprintf("dom%d gone", e.Domid)
	case plugin.EventDeviceState:
		return fmt.Sprintf("dom%d vhost%d dev-%d(%s) %s %d->%d", e.Domid, e.VHost, e.Dev, e.VDev, side, e.OldState, e.State)
	}
	return fmt.Sprintf("dom%d vhost%d(%s) %s %d->%d", e.Domid, e.VHost, e.BackendType, side, e.OldState, e.State)
}

type evString plugin.StateEvent

// until collects events until pred holds for the states reached (by
// evKey), checking that every event continues its node's chain: its
// OldState is the State of that node's previous event (0 for the first),
// and it changes something.
func (l *eventLog) until(what string, pred func(last map[string]int) bool) {
	l.t.Helper()
	last := map[string]int{}
	for _, ev := range l.seen {
		last[evKey(ev)] = ev.State
	}
	deadline := time.After(20 * time.Second)
	for !pred(last) {
		select {
		case ev := <-l.ch:
			k := evKey(ev)
			if ev.Kind != plugin.EventDomainGone {
				if ev.OldState != last[k] || ev.State == ev.OldState {
					l.t.Errorf("event %v does not continue its node's history (last state %d)", evString(ev), last[k])
				}
				if ev.BackendType != "vscsi" {
					l.t.Errorf("event %v: backend type %q", evString(ev), ev.BackendType)
				}
			}
			last[k] = ev.State
			l.seen = append(l.seen, ev)
		case <-deadline:
			l.t.Fatalf("%s: not seen within 20 s; events so far:\n%s", what, l.dump())
		}
	}
}

func (l *eventLog) dump() string {
	var b strings.Builder
	for _, ev := range l.seen {
		fmt.Fprintf(&b, "  %v\n", evString(ev))
	}
	return b.String()
}

func key(kind plugin.EventKind, domid uint32, vhost, dev int, side plugin.Side) string {
	return evKey(plugin.StateEvent{Kind: kind, Domid: domid, VHost: vhost, Dev: dev, Side: side})
}

// A subscription to one domain sees its vhost and device come up on both
// sides, the device go away on detach (state 0), and the domain's end as
// its last event; WatchStates then returns and leaves no goroutine.
func TestWatchStatesOneDomain(t *testing.T) {
	r := newRig(t, rigOpt{})
	// The connection's watch reader starts with its first watch and stays:
	// count goroutines once it runs.
	warm, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.ts.WatchStates(warm, guest, false, nil, nil); err != nil {
		t.Fatal(err)
	}
	g0 := runtime.NumGoroutine()
	l := watchStates(t, r.ts, guest, false)

	if _, err := r.ts.Attach(ctx(t), "guest5", wwn0, "0:0:0:0"); err != nil {
		t.Fatal(err)
	}
	vbe := key(plugin.EventVHostState, guest, 0, -1, plugin.SideBackend)
	vfe := key(plugin.EventVHostState, guest, 0, -1, plugin.SideFrontend)
	dbe := key(plugin.EventDeviceState, guest, 0, 0, plugin.SideBackend)
	dfe := key(plugin.EventDeviceState, guest, 0, 0, plugin.SideFrontend)
	l.until("vhost and device connected", func(m map[string]int) bool {
		return m[vbe] == 4 && m[vfe] == 4 && m[dbe] == 4 && m[dfe] == 4
	})
	for _, ev := range l.seen {
		if ev.Kind == plugin.EventDeviceState && ev.VDev != "0:0:0:0" {
			t.Errorf("device event %v without its vdev", evString(ev))
		}
	}

	if _, err := r.ts.Detach(ctx(t), "guest5", "0:0:0:0"); err != nil {
		t.Fatal(err)
	}
	l.until("device gone", func(m map[string]int) bool { return m[dbe] == 0 && m[dfe] == 0 })
	n := len(l.seen)
	if ev := l.seen[n-1]; ev.VDev != "0:0:0:0" {
		t.Errorf("the removal event %v lost the device's vdev", evString(ev))
	}

	// The domain goes: its home is removed (xl destroy does) and released.
	if err := r.Admin.Rm(xenif.NoTx, rigtest.Home(guest)); err != nil {
		t.Fatal(err)
	}
	r.Srv.ReleaseDomain(guest)
	gone := key(plugin.EventDomainGone, guest, -1, -1, plugin.SideBackend)
	l.until("domain gone", func(m map[string]int) bool { _, ok := m[gone]; return ok })
	if last := l.seen[len(l.seen)-1]; last.Kind != plugin.EventDomainGone {
		t.Errorf("domain gone is not the last event: %v", evString(last))
	}
	select {
	case err := <-l.done:
		if err != nil {
			t.Errorf("WatchStates after the domain went: %v", err)
		}
		l.done <- nil // for the clean-up
	case <-time.After(10 * time.Second):
		t.Fatal("WatchStates did not return after the domain went")
	}
	waitGoroutines(t, g0)
	t.Logf("events:\n%s", l.dump())
}

// A subscription to every domain also follows a domain introduced after
// it started, and reports each domain's end.
func TestWatchStatesAllDomains(t *testing.T) {
	r := newRig(t, rigOpt{})
	l := watchStates(t, r.ts, 0, true)
	if _, err := r.ts.Attach(ctx(t), "guest5", wwn0, "0:0:0:0"); err != nil {
		t.Fatal(err)
	}
	l.until("guest5's device connected", func(m map[string]int) bool {
		return m[key(plugin.EventDeviceState, guest, 0, 0, plugin.SideFrontend)] == 4
	})

	// A new domain 6, with a vhost written by hand (no peers for it).
	r.Guest(6, "guest6")
	r.Write("/local/domain/0/backend/vscsi/6/3/state", "1")
	r.Write("/local/domain/6/device/vscsi/3/state", "1")
	r.Write("/local/domain/0/backend/vscsi/6/3/state", "2")
	l.until("domain 6's vhost", func(m map[string]int) bool {
		return m[key(plugin.EventVHostState, 6, 3, -1, plugin.SideBackend)] == 2 &&
			m[key(plugin.EventVHostState, 6, 3, -1, plugin.SideFrontend)] == 1
	})
	if err := r.Admin.Rm(xenif.NoTx, rigtest.Home(6)); err != nil {
		t.Fatal(err)
	}
	r.Srv.ReleaseDomain(6)
	l.until("domain 6 gone", func(m map[string]int) bool {
		_, ok := m[key(plugin.EventDomainGone, 6, -1, -1, plugin.SideBackend)]
		return ok
	})
	// guest5 is still followed.
	if _, err := r.ts.Detach(ctx(t), "guest5", "0:0:0:0"); err != nil {
		t.Fatal(err)
	}
	l.until("guest5's device gone", func(m map[string]int) bool {
		return m[key(plugin.EventDeviceState, guest, 0, 0, plugin.SideBackend)] == 0
	})
	for _, ev := range l.seen {
		if ev.Kind == plugin.EventDomainGone && ev.Domid != 6 {
			t.Errorf("unexpected %v", evString(ev))
		}
	}
	t.Logf("events:\n%s", l.dump())
}

func TestWatchStatesNoDomain(t *testing.T) {
	r := newRig(t, rigOpt{noBackend: true, noFrontend: true})
	err := r.ts.WatchStates(context.Background(), 77, false, nil, func(plugin.StateEvent) {})
	if !errors.Is(err, plugin.ErrNoDomain) {
		t.Fatalf("WatchStates of a missing domain: %v", err)
	}
}

// waitGoroutines waits until no more than n goroutines run (the test's
// own finish asynchronously).
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	for i := 0; i < 100 && runtime.NumGoroutine() > n; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > n {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines, %d before:\n%s", g, n, buf[:runtime.Stack(buf, true)])
	}
}

// Operations on several vhosts of one domain at once, from several
// goroutines: both kinds of subscription still report a consistent
// history for every node (each event continues the last one of its node),
// ending with nothing.
func TestWatchStatesConcurrentOperations(t *testing.T) {
	r := newRig(t, rigOpt{})
	one := watchStates(t, r.ts, guest, false)
	all := watchStates(t, r.ts, 0, true)
	const workers, rounds = 4, 4
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		go func() {
			vdev := fmt.Sprintf("%d:0:0:0", w+1)
			for i := 0; i < rounds; i++ {
				if _, err := r.ts.Attach(ctx(t), "guest5", fmt.Sprintf("naa.5001405012345678:%d", w), vdev); err != nil {
					errs <- fmt.Errorf("worker %d round %d attach: %w", w, i, err)
					return
				}
				if _, err := r.ts.Detach(ctx(t), "guest5", vdev); err != nil {
					errs <- fmt.Errorf("worker %d round %d detach: %w", w, i, err)
					return
				}
				vs, err := r.ts.List(guest)
				if err != nil {
					errs <- err
					return
				}
				id := -1
				for _, v := range vs {
					if v.Index == w+1 {
						id = v.VHost
					}
				}
				if _, err := r.ts.DestroyVHost(ctx(t), "guest5", id); err != nil {
					errs <- fmt.Errorf("worker %d round %d destroy vhost %d: %w", w, i, id, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for w := 0; w < workers; w++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	empty := func(m map[string]int) bool {
		for k, st := range m {
			if strings.HasPrefix(k, fmt.Sprintf("%d/%d/", plugin.EventVHostState, guest)) && st != 0 {
				return false
			}
		}
		return len(m) > 0
	}
	one.until("every vhost gone (guest5 subscription)", empty)
	all.until("every vhost gone (every-domain subscription)", empty)
	t.Logf("%d events for guest5, %d for every domain", len(one.seen), len(all.seen))
}
