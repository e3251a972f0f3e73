package xsutil_test

import (
	"testing"
	"time"

	"github.com/govscsi/govscsi/libxlgo/xenif"
	"github.com/govscsi/govscsi/libxlgo/xsfake"
	"github.com/govscsi/govscsi/libxlgo/xsutil"
)

func recv(t *testing.T, ch <-chan xenif.WatchEvent) xenif.WatchEvent {
	t.Helper()
	select {
	case ev := <-ch:
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no notification")
	}
	return xenif.WatchEvent{}
}

func quiet(t *testing.T, ch <-chan xenif.WatchEvent) {
	t.Helper()
	select {
	case ev := <-ch:
		t.Fatalf("unexpected notification %+v", ev)
	case <-time.After(100 * time.Millisecond):
	}
}

// Two users of one connection each see only their own watch; a burst of
// changes nobody reads collapses into one pending notification; after
// cancel the watch is gone on the server too.
func TestMuxSeparatesAndCoalesces(t *testing.T) {
	srv := xsfake.New()
	defer srv.Close()
	c, err := srv.Connect(0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := xsutil.NewMux(c)
	defer m.Close()
	a, cancelA, err := m.Watch("/a")
	if err != nil {
		t.Fatal(err)
	}
	b, cancelB, err := m.Watch("/b")
	if err != nil {
		t.Fatal(err)
	}
	defer cancelB()
	if ev := recv(t, a); ev.Path != "/a" {
		t.Fatalf("initial a: %+v", ev)
	}
	if ev := recv(t, b); ev.Path != "/b" {
		t.Fatalf("initial b: %+v", ev)
	}
	for i := 0; i < 10; i++ {
		if err := c.Write(xenif.NoTx, "/a/x", "v"); err != nil {
			t.Fatal(err)
		}
	}
	c.DomainPath(0) // round trip: every event is queued by now
	time.Sleep(50 * time.Millisecond)
	recv(t, a)
	quiet(t, a) // ten changes, one notification
	quiet(t, b)
	if err := cancelA(); err != nil {
		t.Fatal(err)
	}
	if err := c.Unwatch("/a", "anything"); err == nil {
		t.Fatal("unwatch of a never-registered token succeeded")
	}
	c.Write(xenif.NoTx, "/a/y", "v")
	quiet(t, a)
}
