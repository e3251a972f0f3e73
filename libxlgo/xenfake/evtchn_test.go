package xenfake

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// readable reports whether fd polls readable right now.
func readable(t *testing.T, fd int) bool {
	t.Helper()
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(pfd, 0)
	for err == unix.EINTR { // the Go runtime's preemption signal
		n, err = unix.Poll(pfd, 0)
	}
	if err != nil {
		t.Fatalf("poll: %v", err)
	}
	return n == 1 && pfd[0].Revents&unix.POLLIN != 0
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// connect sets up a frontend-style channel: the guest allocates an unbound
// port for dom0, the backend binds it and consumes the bind event.
func connect(t *testing.T) (*EventChannel, *Guest, uint32, uint32) {
	t.Helper()
	hub := NewEventHub()
	dev, err := hub.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	g := hub.Guest(guest)
	gport := g.AllocUnbound(0)
	lport, err := dev.BindInterdomain(guest, gport)
	if err != nil {
		t.Fatal(err)
	}
	// Xen leaves a freshly bound interdomain port pending.
	if !readable(t, dev.Fd()) {
		t.Fatalf("no event pending after BindInterdomain")
	}
	if p, err := dev.WaitPending(ctxFor(t, time.Second)); err != nil || p != lport {
		t.Fatalf("Pending after bind = %d, %v; want %d", p, err, lport)
	}
	if err := dev.Unmask(lport); err != nil {
		t.Fatal(err)
	}
	return dev, g, lport, gport
}

func TestEventDeliveryAndLateEOIMasking(t *testing.T) {
	dev, g, lport, gport := connect(t)
	if readable(t, dev.Fd()) {
		t.Fatalf("fd readable with nothing pending")
	}
	if err := g.Notify(gport); err != nil {
		t.Fatal(err)
	}
	if !readable(t, dev.Fd()) {
		t.Fatalf("fd not readable after guest notify")
	}
	if p, err := dev.Pending(); err != nil || p != lport {
		t.Fatalf("Pending = %d, %v; want %d", p, err, lport)
	}
	// Delivered, so masked: new events latch but are not delivered.
	if !dev.Masked(lport) {
		t.Fatalf("delivered port not reported masked")
	}
	g.Notify(gport)
	g.Notify(gport)
	if readable(t, dev.Fd()) {
		t.Fatalf("masked port delivered an event")
	}
	if _, err := dev.WaitPending(ctxFor(t, 20*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitPending on a masked port: %v, want deadline exceeded", err)
	}
	// Unmask delivers the latched events, coalesced into one.
	dev.Unmask(lport)
	if !readable(t, dev.Fd()) {
		t.Fatalf("latched event not delivered at Unmask")
	}
	if p, _ := dev.Pending(); p != lport {
		t.Fatalf("Pending = %d", p)
	}
	dev.Unmask(lport)
	if readable(t, dev.Fd()) {
		t.Fatalf("two latched events were delivered twice")
	}
	if dev.Masked(lport) || dev.Masked(4242) {
		t.Fatalf("unmasked or unknown port reported masked")
	}
	// Unmasking an unmasked or unknown port does nothing, as in Linux.
	if err := dev.Unmask(lport); err != nil || readable(t, dev.Fd()) {
		t.Errorf("extra Unmask: %v", err)
	}
	if err := dev.Unmask(4242); err != nil {
		t.Errorf("Unmask of an unknown port: %v", err)
	}
}

func TestBackendNotifiesGuest(t *testing.T) {
	dev, g, lport, gport := connect(t)
	if n := g.Notifications(gport); n != 0 {
		t.Fatalf("guest saw %d events before any notify", n)
	}
	dev.Notify(lport)
	dev.Notify(lport)
	if err := g.Wait(ctxFor(t, time.Second), gport); err != nil {
		t.Fatal(err)
	}
	if n := g.Notifications(gport); n != 2 {
		t.Errorf("Notifications = %d, want 2", n)
	}
	// The two notifications coalesced into one pending bit.
	if err := g.Wait(ctxFor(t, 20*time.Millisecond), gport); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second Wait: %v, want deadline exceeded", err)
	}
	// A waiter blocked before the event is woken.
	done := make(chan error)
	go func() { done <- g.Wait(ctxFor(t, 5*time.Second), gport) }()
	time.Sleep(5 * time.Millisecond)
	dev.Notify(lport)
	if err := <-done; err != nil {
		t.Errorf("blocked Wait: %v", err)
	}
}

func TestBindChecks(t *testing.T) {
	hub := NewEventHub()
	dev, _ := hub.Open(0)
	defer dev.Close()
	g := hub.Guest(guest)
	other := hub.Guest(guest + 1)
	forOther := g.AllocUnbound(guest + 1) // allocated for dom 6, not us
	mine := g.AllocUnbound(0)
	cases := []struct {
		name        string
		domid, port uint32
		want        error
	}{
		{"unknown domain", 99, 1, syscall.ESRCH},
		{"no such port", guest, 999, syscall.EINVAL},
		{"port for another domain", guest, forOther, syscall.EINVAL},
	}
	for _, c := range cases {
		if _, err := dev.BindInterdomain(c.domid, c.port); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := dev.BindInterdomain(guest, mine); err != nil {
		t.Fatal(err)
	}
	if _, err := dev.BindInterdomain(guest, mine); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("second bind of the same port: %v, want EINVAL", err)
	}
	if _, err := other.BindInterdomain(guest, forOther); err != nil {
		t.Errorf("dom 6 binding the port dom 5 made for it: %v", err)
	}
	if err := dev.Notify(999); !errors.Is(err, syscall.ENOTCONN) {
		t.Errorf("Notify of an unbound port: %v, want ENOTCONN", err)
	}
	if err := dev.Unbind(999); !errors.Is(err, syscall.ENOTCONN) {
		t.Errorf("Unbind of an unknown port: %v, want ENOTCONN", err)
	}
	if err := g.Notify(999); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("guest Notify of an unknown port: %v", err)
	}
}

// The backend allocates the port and the guest binds (the other direction).
func TestBindUnboundPortDirection(t *testing.T) {
	hub := NewEventHub()
	dev, _ := hub.Open(0)
	defer dev.Close()
	g := hub.Guest(guest)
	lport, err := dev.BindUnboundPort(guest)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hub.Guest(guest+1).BindInterdomain(0, lport); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("wrong guest bound the port: %v", err)
	}
	gport, err := g.BindInterdomain(0, lport)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Wait(ctxFor(t, time.Second), gport); err != nil {
		t.Errorf("no initial event on the guest's new port: %v", err)
	}
	g.Notify(gport)
	if p, err := dev.WaitPending(ctxFor(t, time.Second)); err != nil || p != lport {
		t.Errorf("Pending = %d, %v; want %d", p, err, lport)
	}
}

func TestUnbindAndRebind(t *testing.T) {
	dev, g, lport, gport := connect(t)
	g.Notify(gport) // queued, then unbound: must vanish
	if err := dev.Unbind(lport); err != nil {
		t.Fatal(err)
	}
	if readable(t, dev.Fd()) || dev.Bound() != 0 {
		t.Fatalf("unbound port still queued or bound")
	}
	if err := g.Notify(gport); err != nil || readable(t, dev.Fd()) {
		t.Fatalf("notify to an unbound peer: %v, delivered=%v", err, readable(t, dev.Fd()))
	}
	// The guest's port is unbound again (for dom0): a reconnect can bind it.
	lport2, err := dev.BindInterdomain(guest, gport)
	if err != nil {
		t.Fatalf("rebind after unbind: %v", err)
	}
	if p, _ := dev.Pending(); p != lport2 {
		t.Errorf("Pending = %d, want %d", p, lport2)
	}
	// The guest closes its end: our notifications are dropped, not errors.
	if err := g.ClosePort(gport); err != nil {
		t.Fatal(err)
	}
	if err := dev.Notify(lport2); err != nil {
		t.Errorf("notify after the guest closed: %v", err)
	}
	if err := g.Wait(ctxFor(t, time.Second), gport); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("Wait on a closed guest port: %v", err)
	}
}

func TestCloseWakesPendingAndIsIdempotent(t *testing.T) {
	hub := NewEventHub()
	dev, _ := hub.Open(0)
	g := hub.Guest(guest)
	gport := g.AllocUnbound(0)
	dev.BindInterdomain(guest, gport)
	dev.Pending()
	done := make(chan error)
	go func() { _, err := dev.Pending(); done <- err }()
	time.Sleep(5 * time.Millisecond)
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, syscall.EBADF) {
			t.Errorf("Pending after Close: %v, want EBADF", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake a blocked Pending")
	}
	if err := dev.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := dev.Notify(1); !errors.Is(err, syscall.EBADF) {
		t.Errorf("Notify after Close: %v", err)
	}
	// The guest's port went back to unbound, ready for a new backend.
	dev2, _ := hub.Open(0)
	defer dev2.Close()
	if _, err := dev2.BindInterdomain(guest, gport); err != nil {
		t.Errorf("bind after the old backend closed: %v", err)
	}
}

// Events from several guests queue in arrival order, one entry per port.
func TestSeveralPortsQueueInOrder(t *testing.T) {
	hub := NewEventHub()
	dev, _ := hub.Open(0)
	defer dev.Close()
	var lports, gports []uint32
	var guests []*Guest
	for d := uint32(1); d <= 3; d++ {
		g := hub.Guest(d)
		gp := g.AllocUnbound(0)
		lp, err := dev.BindInterdomain(d, gp)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := dev.Pending()
		dev.Unmask(p)
		guests, gports, lports = append(guests, g), append(gports, gp), append(lports, lp)
	}
	for _, i := range []int{2, 0, 1, 0} {
		guests[i].Notify(gports[i])
	}
	for _, i := range []int{2, 0, 1} {
		if p, _ := dev.Pending(); p != lports[i] {
			t.Errorf("Pending = %d, want %d (guest %d)", p, lports[i], i+1)
		}
	}
	if readable(t, dev.Fd()) {
		t.Errorf("a masked port was queued twice")
	}
}

// A producer/consumer loop in the style of a ring: the guest publishes work
// and notifies; the backend takes an event, consumes everything, unmasks.
// With latching, no notification may be lost (the test would time out).
func TestNoLostWakeups(t *testing.T) {
	dev, g, lport, gport := connect(t)
	const n = 2000
	var produced atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			produced.Add(1)
			g.Notify(gport)
		}
	}()
	var consumed int64
	ctx := ctxFor(t, 10*time.Second)
	for consumed < n {
		p, err := dev.WaitPending(ctx)
		if err != nil {
			t.Fatalf("after %d of %d: %v", consumed, n, err)
		}
		if p != lport {
			t.Fatalf("port %d", p)
		}
		consumed = produced.Load()
		dev.Unmask(p)
	}
	wg.Wait()
}

// Events queued before the first Fd call must make it readable at once.
func TestFdAfterEvents(t *testing.T) {
	hub := NewEventHub()
	dev, _ := hub.Open(0)
	defer dev.Close()
	g := hub.Guest(guest)
	dev.BindInterdomain(guest, g.AllocUnbound(0)) // leaves an event queued
	if !readable(t, dev.Fd()) {
		t.Fatalf("Fd not readable for an event queued before Fd was called")
	}
	dev.Pending()
	if readable(t, dev.Fd()) {
		t.Fatalf("Fd readable after the queue emptied")
	}
	dev.Close()
	if dev.Fd() != -1 {
		t.Errorf("Fd after Close = %d", dev.Fd())
	}
}

// One request/response exchange as a backend does it: the guest notifies,
// the backend takes the event, answers, unmasks; the guest sees the answer.
func BenchmarkEventRoundTrip(b *testing.B) {
	hub := NewEventHub()
	dev, _ := hub.Open(0)
	defer dev.Close()
	g := hub.Guest(guest)
	gport := g.AllocUnbound(0)
	lport, _ := dev.BindInterdomain(guest, gport)
	dev.Pending()
	dev.Unmask(lport)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		g.Notify(gport)
		p, _ := dev.WaitPending(ctx)
		dev.Notify(p)
		dev.Unmask(p)
		g.Wait(ctx, gport)
	}
}
