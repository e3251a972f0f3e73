//go:build linux && cgo

package xs

import (
	"errors"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govscsi/govscsi/libxlgo/xenif"
	"github.com/govscsi/govscsi/libxlgo/xsfake"
	"github.com/govscsi/govscsi/libxlgo/xsfake/storetest"
)

// openAs opens a real libxenstore handle acting as domid: XENSTORED_PATH
// names the server socket bound to that domain while xs_open runs.
func openAs(t *testing.T, srv *xsfake.Started, domid uint32, sockets map[uint32]string) *Handle {
	t.Helper()
	path := srv.Socket
	if domid != 0 {
		if path = sockets[domid]; path == "" {
			var err error
			if path, err = srv.ListenDomain(domid); err != nil {
				t.Fatal(err)
			}
			sockets[domid] = path
		}
	}
	old := os.Getenv("XENSTORED_PATH")
	os.Setenv("XENSTORED_PATH", path)
	h, err := Open(0)
	os.Setenv("XENSTORED_PATH", old)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// The behavioural suite through Debian's libxenstore (cgo) against xsfake.
func TestStoreSuiteLibxenstore(t *testing.T) {
	socks := map[*xsfake.Started]map[uint32]string{}
	storetest.Run(t, func(t *testing.T, srv *xsfake.Started, domid uint32) xenif.Store {
		if socks[srv] == nil {
			socks[srv] = map[uint32]string{}
		}
		return openAs(t, srv, domid, socks[srv])
	})
}

func TestOpenFailsWithoutServer(t *testing.T) {
	t.Setenv("XENSTORED_PATH", t.TempDir()+"/no-such-socket")
	h, err := Open(0)
	if err == nil {
		h.Close()
		t.Fatal("xs_open succeeded with XENSTORED_PATH naming nothing")
	}
	if !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("err = %v, want ENOENT", err)
	}
}

func TestIntroduceReleaseThroughLibxenstore(t *testing.T) {
	srv := xsfake.StartT(t)
	h, err := Open(0)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Watch(xenif.WatchIntroduceDomain, "i"); err != nil {
		t.Fatal(err)
	}
	if ev := storetest.NextEvent(t, h); ev.Path != xenif.WatchIntroduceDomain {
		t.Fatalf("initial event %+v", ev)
	}
	if ok, _ := h.IsDomainIntroduced(4); ok {
		t.Fatal("domain 4 introduced before XS_INTRODUCE")
	}
	if err := h.IntroduceDomain(4, 0x1234, 3); err != nil {
		t.Fatal(err)
	}
	if ev := storetest.NextEvent(t, h); ev != (xenif.WatchEvent{Path: "@introduceDomain", Token: "i"}) {
		t.Fatalf("event %+v", ev)
	}
	if ok, _ := h.IsDomainIntroduced(4); !ok {
		t.Fatal("domain 4 not introduced after XS_INTRODUCE")
	}
	if err := h.ReleaseDomain(4); err != nil {
		t.Fatal(err)
	}
	if err := h.ReleaseDomain(4); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("second release: %v", err)
	}
	_ = srv
}

// watchLoops counts this package's watch goroutines (the in-process
// xsfake server has goroutines of its own, so NumGoroutine is no measure).
func watchLoops() int {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	count := 0
	for _, g := range strings.Split(string(buf[:n]), "\n\n") {
		// A goroutine that has not run yet shows only its go-statement
		// wrapper (startWatchLoop.gowrap1).
		if strings.Contains(g, "xs.(*Handle).watchLoop(") || strings.Contains(g, "xs.(*Handle).startWatchLoop.gowrap") {
			count++
		}
	}
	return count
}

// Goroutines: none at Open, one watch goroutine after Watch, none after
// Close; and no connection is left open on the server.
func TestNoGoroutineLeak(t *testing.T) {
	srv := xsfake.StartT(t)
	if n := watchLoops(); n != 0 {
		t.Fatalf("%d watch goroutines before any Open", n)
	}
	for i := 0; i < 20; i++ {
		h, err := Open(0)
		if err != nil {
			t.Fatal(err)
		}
		if n := watchLoops(); n != 0 {
			t.Fatalf("Open started %d watch goroutines", n)
		}
		if err := h.Watch("/leak", "t"); err != nil {
			t.Fatal(err)
		}
		if n := watchLoops(); n != 1 {
			t.Fatalf("%d watch goroutines after Watch, want 1", n)
		}
		storetest.NextEvent(t, h)
		if i%2 == 0 {
			// An event nobody reads must not keep the goroutine alive.
			if err := h.Write(xenif.NoTx, "/leak/x", "1"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(5 * time.Millisecond)
		}
		h.Close()
		h.Close()
		if n := watchLoops(); n != 0 {
			t.Fatalf("%d watch goroutines after Close", n)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for srv.Conns() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("server still has %d connections after every handle was closed", srv.Conns())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCloseWhileWatchersBusy(t *testing.T) {
	xsfake.StartT(t)
	h, err := Open(0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			if err := h.Write(xenif.NoTx, "/busy/x", "v"); err != nil {
				if !errors.Is(err, xenif.ErrStoreClosed) {
					t.Errorf("write: %v", err)
				}
				return
			}
		}
	}()
	if err := h.Watch("/busy", "b"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	<-done
}

// TestWatchLoopSurvivesPollErrors: a transient poll(2) failure (ENOMEM)
// in the watch goroutine is retried; events keep coming. (The goroutine
// used to return at the first error other than EINTR: no event was ever
// delivered again, silently.)
func TestWatchLoopSurvivesPollErrors(t *testing.T) {
	xsfake.StartT(t)
	fails := 3
	real := waitWatch
	waitWatch = func(w, s int) (int, error) {
		if fails > 0 {
			fails--
			return -1, syscall.ENOMEM
		}
		return real(w, s)
	}
	defer func() { waitWatch = real }()
	h, err := Open(0)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Watch("/w", "t"); err != nil {
		t.Fatal(err)
	}
	if ev := storetest.NextEvent(t, h); ev.Path != "/w" {
		t.Fatalf("initial event %+v", ev)
	}
	if err := h.Write(xenif.NoTx, "/w/x", "1"); err != nil {
		t.Fatal(err)
	}
	if ev := storetest.NextEvent(t, h); ev.Path != "/w/x" {
		t.Fatalf("event %+v", ev)
	}
	if fails != 0 {
		t.Errorf("%d injected failures left: the loop did not poll", fails)
	}
}
