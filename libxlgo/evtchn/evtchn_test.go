//go:build linux && cgo

package evtchn

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func captureStderr(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved, err := unix.Dup(2)
	if err != nil {
		t.Fatal(err)
	}
	unix.Dup2(int(w.Fd()), 2)
	f()
	unix.Dup2(saved, 2)
	unix.Close(saved)
	w.Close()
	out, _ := io.ReadAll(r)
	r.Close()
	return string(out)
}

// The real libxenevtchn without /dev/xen: ENOENT, a clear message, silence.
func TestOpenWithoutXen(t *testing.T) {
	if _, err := os.Stat(Device); err == nil {
		t.Skip(Device + " exists; tests/xenlibs covers the real device")
	}
	var h *Handle
	var err error
	stderr := captureStderr(t, func() { h, err = Open() })
	if h != nil || !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("Open without Xen: %v, %v; want ENOENT", h, err)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "evtchn open /dev/xen/evtchn: no such file or directory") ||
		!strings.Contains(msg, "xen_evtchn") {
		t.Errorf("unclear message %q", msg)
	}
	if stderr != "" {
		t.Errorf("libxenevtchn wrote to stderr: %q", stderr)
	}
	if err := h.Close(); err != nil {
		t.Errorf("Close of the nil handle: %v", err)
	}
}

// fakeDevice gives the real libxenevtchn a socket in place of the device
// (xenevtchn_fdopen). The library's read and write paths are the device
// protocol: the test writes a 4-byte port to "raise" it and reads the 4-byte
// port the library writes back at Unmask. Ioctls (bind, notify) fail with
// ENOTTY, which exercises the error path.
func fakeDevice(t *testing.T) (*Handle, *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	h, err := FromFd(fds[0])
	if err != nil {
		unix.Close(fds[1])
		t.Fatal(err)
	}
	peer := os.NewFile(uintptr(fds[1]), "evtchn-peer")
	t.Cleanup(func() { h.Close(); peer.Close() })
	return h, peer
}

func raise(t *testing.T, peer *os.File, port uint32) {
	t.Helper()
	if _, err := peer.Write(binary.NativeEndian.AppendUint32(nil, port)); err != nil {
		t.Fatal(err)
	}
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestPendingAndUnmaskThroughTheLibrary(t *testing.T) {
	h, peer := fakeDevice(t)
	// Nothing pending: the wait must park and give up with the context.
	start := time.Now()
	_, err := h.WaitPending(ctxFor(t, 30*time.Millisecond))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitPending with nothing pending: %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("WaitPending ignored its deadline")
	}
	// The deadline must not stick to the next wait.
	raise(t, peer, 7)
	if p, err := h.WaitPending(ctxFor(t, 5*time.Second)); err != nil || p != 7 {
		t.Fatalf("WaitPending = %d, %v; want 7", p, err)
	}
	// A port raised while a waiter is parked wakes it.
	got := make(chan uint32)
	go func() {
		p, err := h.Pending()
		if err != nil {
			t.Error(err)
		}
		got <- p
	}()
	time.Sleep(10 * time.Millisecond)
	raise(t, peer, 0x01020304)
	select {
	case p := <-got:
		if p != 0x01020304 {
			t.Errorf("Pending = %#x", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("parked Pending was not woken")
	}
	// Unmask is the lateeoi write of the port back to the device.
	if err := h.Unmask(7); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(peer, buf); err != nil || binary.NativeEndian.Uint32(buf) != 7 {
		t.Errorf("device received % x, %v; want port 7", buf, err)
	}
}

func TestFdPollsReadableWhenPending(t *testing.T) {
	h, peer := fakeDevice(t)
	poll := func() bool {
		pfd := []unix.PollFd{{Fd: int32(h.Fd()), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, 0)
		for err == unix.EINTR { // the Go runtime's preemption signal
			n, err = unix.Poll(pfd, 0)
		}
		return err == nil && n == 1
	}
	if poll() {
		t.Fatalf("Fd readable with nothing pending")
	}
	raise(t, peer, 3)
	if !poll() {
		t.Fatalf("Fd not readable with a port pending")
	}
	if p, _ := h.Pending(); p != 3 || poll() {
		t.Errorf("Pending = %d, still readable = %v", p, poll())
	}
}

func TestIoctlErrorsAreWrapped(t *testing.T) {
	h, _ := fakeDevice(t)
	_, err := h.BindInterdomain(5, 9)
	if !errors.Is(err, syscall.ENOTTY) || err.Error() != "evtchn bind interdomain port 9 of dom 5: inappropriate ioctl for device" {
		t.Errorf("BindInterdomain on a non-device: %v", err)
	}
	if _, err := h.BindUnboundPort(5); !errors.Is(err, syscall.ENOTTY) {
		t.Errorf("BindUnboundPort: %v", err)
	}
	if err := h.Notify(3); !errors.Is(err, syscall.ENOTTY) || !strings.Contains(err.Error(), "notify port 3") {
		t.Errorf("Notify: %v", err)
	}
	if err := h.Unbind(3); !errors.Is(err, syscall.ENOTTY) {
		t.Errorf("Unbind: %v", err)
	}
}

func TestCloseWakesWaiterAndIsIdempotent(t *testing.T) {
	h, _ := fakeDevice(t)
	done := make(chan error)
	go func() { _, err := h.Pending(); done <- err }()
	time.Sleep(10 * time.Millisecond)
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, syscall.EBADF) {
			t.Errorf("Pending after Close: %v, want EBADF", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake Pending")
	}
	if err := h.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if h.Fd() != -1 {
		t.Errorf("Fd after Close = %d", h.Fd())
	}
	for name, err := range map[string]error{
		"Notify": h.Notify(1), "Unmask": h.Unmask(1), "Unbind": h.Unbind(1),
	} {
		if !errors.Is(err, syscall.EBADF) {
			t.Errorf("%s after Close: %v", name, err)
		}
	}
	if _, err := h.WaitPending(context.Background()); !errors.Is(err, syscall.EBADF) {
		t.Errorf("WaitPending after Close: %v", err)
	}
}

func TestFromFdBadFd(t *testing.T) {
	h, err := FromFd(-1)
	if h != nil || !errors.Is(err, syscall.EBADF) {
		t.Errorf("FromFd(-1) = %v, %v; want EBADF", h, err)
	}
}

// TestWaitPendingReusedContext: a data path waits with one ctx for every
// event (one cancel registration, kept across calls). Events still arrive
// through it, cancelling it wakes a parked wait, and a later wait with
// another ctx is not hit by the deadline the cancellation left.
func TestWaitPendingReusedContext(t *testing.T) {
	h, peer := fakeDevice(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, port := range []uint32{3, 4, 5} {
		raise(t, peer, port)
		if p, err := h.WaitPending(ctx); err != nil || p != port {
			t.Fatalf("WaitPending = %d, %v; want %d", p, err, port)
		}
	}
	errc := make(chan error, 1)
	go func() {
		_, err := h.WaitPending(ctx)
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled wait: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancelling the reused ctx did not wake the wait")
	}
	if _, err := h.WaitPending(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait on the cancelled ctx: %v", err)
	}
	raise(t, peer, 9)
	if p, err := h.WaitPending(ctxFor(t, 5*time.Second)); err != nil || p != 9 {
		t.Fatalf("wait with a new ctx after the cancellation = %d, %v; want 9", p, err)
	}
}
