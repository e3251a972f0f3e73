package stats

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func tempSocket(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "st") // short: sun_path is 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "stats.sock")
}

func emptySnap() Snapshot { return Snapshot{Time: time.Now()} }

// serve runs Serve on l until the test ends and returns its result channel.
func serve(t *testing.T, l net.Listener) <-chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, emptySnap, nil) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return after cancel")
		}
	})
	return done
}

func fetchSoon(socket string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := Fetch(ctx, socket)
	return err
}

// TestServeSurvivesEMFILE runs the process out of descriptors while a
// client is waiting: Accept fails with EMFILE. Once descriptors are free
// again, the waiting client and new ones are answered. (The endpoint used
// to die for good, silently, at the first EMFILE: clients timed out.)
func TestServeSurvivesEMFILE(t *testing.T) {
	sock := tempSocket(t)
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	done := serve(t, l)
	if err := fetchSoon(sock); err != nil {
		t.Fatal(err)
	}

	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	restore := lim
	defer unix.Setrlimit(unix.RLIMIT_NOFILE, &restore)
	// Fill every descriptor but one, which the client's socket takes.
	var held []int
	defer func() {
		for _, fd := range held {
			unix.Close(fd)
		}
	}()
	lim.Cur = 4096
	if lim.Cur > restore.Cur {
		lim.Cur = restore.Cur
	}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	for {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			if !errors.Is(err, syscall.EMFILE) {
				t.Fatal(err)
			}
			break
		}
		held = append(held, fd)
	}
	unix.Close(held[len(held)-1])
	held = held[:len(held)-1]
	c, err := net.Dial("unix", sock) // takes the last descriptor
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Accept now fails with EMFILE (nothing left for the server side).
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Serve returned on EMFILE: %v", err)
	default:
	}
	for _, fd := range held {
		unix.Close(fd)
	}
	held = nil
	unix.Setrlimit(unix.RLIMIT_NOFILE, &restore)
	// The waiting client is answered.
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("{\"op\":\"stats\"}\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	if n, err := c.Read(buf); err != nil || n == 0 {
		t.Fatalf("the client waiting through EMFILE got no answer: %v", err)
	}
	if err := fetchSoon(sock); err != nil {
		t.Errorf("after EMFILE: %v", err)
	}
}

// flakyListener fails Accept with each error in errs, then accepts.
type flakyListener struct {
	net.Listener
	errs  []error
	calls atomic.Int32
}

func (f *flakyListener) Accept() (net.Conn, error) {
	if i := int(f.calls.Add(1)) - 1; i < len(f.errs) {
		return nil, f.errs[i]
	}
	return f.Listener.Accept()
}

// TestServeTransientErrors: every transient Accept error (EMFILE, ENFILE,
// ENOBUFS, ENOMEM, ECONNABORTED, EINTR, EPROTO) is retried; the endpoint
// answers afterwards.
func TestServeTransientErrors(t *testing.T) {
	sock := tempSocket(t)
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	var errs []error
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR, syscall.EPROTO} {
		errs = append(errs, &net.OpError{Op: "accept", Net: "unix", Err: os.NewSyscallError("accept4", e)})
	}
	fl := &flakyListener{Listener: l, errs: errs}
	done := serve(t, fl)
	if err := fetchSoon(sock); err != nil {
		t.Fatal(err)
	}
	if n := fl.calls.Load(); n < int32(len(errs))+1 {
		t.Errorf("%d Accept calls, want at least %d", n, len(errs)+1)
	}
	select {
	case err := <-done:
		t.Fatalf("Serve returned: %v", err)
	default:
	}
}

// countingListener counts the accepted connections not yet closed.
type countingListener struct {
	net.Listener
	live, peak atomic.Int32
}

type countedConn struct {
	net.Conn
	l    *countingListener
	once atomic.Bool
}

func (c *countedConn) Close() error {
	if !c.once.Swap(true) {
		c.l.live.Add(-1)
	}
	return c.Conn.Close()
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	n := l.live.Add(1)
	for p := l.peak.Load(); n > p && !l.peak.CompareAndSwap(p, n); p = l.peak.Load() {
	}
	return &countedConn{Conn: c, l: l}, nil
}

// TestServeBoundsConnections: idle clients hold at most maxConns of the
// daemon's descriptors; the rest wait in the backlog and are served when
// a slot frees.
func TestServeBoundsConnections(t *testing.T) {
	sock := tempSocket(t)
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: l}
	serve(t, cl)
	var idle []net.Conn
	for i := 0; i < 2*maxConns; i++ {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	time.Sleep(200 * time.Millisecond)
	if p := cl.peak.Load(); p > maxConns {
		t.Errorf("%d connections served at once, the bound is %d", p, maxConns)
	}
	for _, c := range idle {
		c.Close()
	}
	if err := fetchSoon(sock); err != nil {
		t.Errorf("after the idle clients left: %v", err)
	}
}
