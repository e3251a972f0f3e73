//go:build linux && cgo

package gnttab

import (
	"encoding/binary"
	"errors"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/govscsi/govscsi/libxlgo/xenif"
)

func haveXen() bool {
	_, err := os.Stat(Device)
	return err == nil
}

// captureStderr runs f with file descriptor 2 redirected to a pipe and
// returns what was written there (the C library writes to fd 2 directly).
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
	if err := unix.Dup2(int(w.Fd()), 2); err != nil {
		t.Fatal(err)
	}
	f()
	unix.Dup2(saved, 2)
	unix.Close(saved)
	w.Close()
	out, _ := io.ReadAll(r)
	r.Close()
	return string(out)
}

// The real libxengnttab, on a machine without /dev/xen: Open fails with
// ENOENT, says what is missing, and prints nothing (quiet logger).
func TestOpenWithoutXen(t *testing.T) {
	if haveXen() {
		t.Skip(Device + " exists; tests/xenlibs covers the real device")
	}
	var h *Handle
	var err error
	stderr := captureStderr(t, func() { h, err = Open() })
	if h != nil || err == nil {
		t.Fatalf("Open without Xen: %v, %v", h, err)
	}
	if !errors.Is(err, syscall.ENOENT) {
		t.Errorf("error %v does not wrap ENOENT", err)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "gnttab open /dev/xen/gntdev: no such file or directory") || !strings.Contains(msg, "xen_gntdev") {
		t.Errorf("unclear message %q", msg)
	}
	if stderr != "" {
		t.Errorf("libxengnttab wrote to stderr: %q", stderr)
	}
	if err := h.Close(); err != nil {
		t.Errorf("Close of the nil handle from a failed Open: %v", err)
	}
}

func TestClosedHandleFailsCleanly(t *testing.T) {
	g := &Handle{maps: make(map[unsafe.Pointer]int)} // as after Close
	ops := []xenif.GrantCopyOp{{Ref: 8, Domid: 1, Local: make([]byte, 8)}}
	if err := g.GrantCopy(ops); !errors.Is(err, syscall.EBADF) {
		t.Errorf("GrantCopy: %v", err)
	}
	_, err := g.MapGrantRef(1, 8, true)
	if !errors.Is(err, syscall.EBADF) || err.Error() != "gnttab map ref 8 of dom 1: bad file descriptor" {
		t.Errorf("MapGrantRef: %v", err)
	}
	if _, err := g.MapGrantRefs(1, []uint32{8, 9}, true); !errors.Is(err, syscall.EBADF) {
		t.Errorf("MapGrantRefs: %v", err)
	}
	if err := g.Unmap(make([]byte, 4096)); !errors.Is(err, syscall.EBADF) {
		t.Errorf("Unmap: %v", err)
	}
	if err := g.SetMaxGrants(16); !errors.Is(err, syscall.EBADF) {
		t.Errorf("SetMaxGrants: %v", err)
	}
	if err := g.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := g.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// The segments handed to xengnttab_grant_copy: direction flags, the union
// arms byte by byte, which ops are left out, and the statuses coming back.
func TestGrantCopyEncoding(t *testing.T) {
	out := []byte("to the guest")
	in := make([]byte, 512)
	ops := []xenif.GrantCopyOp{
		{Ref: 8, Domid: 3, Offset: 100, ToGuest: true, Local: out},
		{Ref: 9, Domid: 3, Offset: 4000, Local: make([]byte, 200)}, // crosses the page: not submitted
		{Ref: 10, Domid: 0x7ff0, Local: make([]byte, 4)},           // DOMID_SELF: not submitted
		{Ref: 11, Domid: 3, Local: nil},                            // empty: not submitted
		{Ref: 0x01020304, Domid: 0x7fef, Offset: 3584, Local: in},
	}
	for i := range ops {
		ops[i].Status = 99
	}
	var b copyBuf
	n := b.fill(ops)
	b.pin.Unpin()
	if n != 2 || len(b.idx) != 2 || b.idx[0] != 0 || b.idx[1] != 4 {
		t.Fatalf("submitted %d segments for ops %v, want ops 0 and 4", n, b.idx)
	}
	if ops[1].Status != xenif.GNTSTBadCopyArg || ops[2].Status != xenif.GNTSTBadDomain || ops[3].Status != xenif.GNTSTOkay {
		t.Errorf("pre-checked statuses %d %d %d", ops[1].Status, ops[2].Status, ops[3].Status)
	}
	if unsafe.Sizeof(b.segs[0]) != 24 {
		t.Fatalf("segment is %d bytes, want 24 (protocol.md §7)", unsafe.Sizeof(b.segs[0]))
	}
	addr := func(p []byte) uint64 { return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(p)))) }
	ne := binary.NativeEndian

	s := b.segs[0]
	if s.flags != 2 || int(s.len) != len(out) {
		t.Errorf("to-guest seg flags %d len %d, want 2 (dest is a gref) and %d", s.flags, s.len, len(out))
	}
	if ne.Uint64(s.source[:]) != addr(out) {
		t.Errorf("to-guest source is not the local buffer")
	}
	if ne.Uint32(s.dest[0:]) != 8 || ne.Uint16(s.dest[4:]) != 100 || ne.Uint16(s.dest[6:]) != 3 {
		t.Errorf("to-guest dest % x, want ref 8 offset 100 dom 3", s.dest)
	}

	s = b.segs[1]
	if s.flags != 1 || s.len != 512 {
		t.Errorf("from-guest seg flags %d len %d, want 1 (source is a gref) and 512", s.flags, s.len)
	}
	if ne.Uint32(s.source[0:]) != 0x01020304 || ne.Uint16(s.source[4:]) != 3584 || ne.Uint16(s.source[6:]) != 0x7fef {
		t.Errorf("from-guest source % x", s.source)
	}
	if ne.Uint64(s.dest[:]) != addr(in) {
		t.Errorf("from-guest dest is not the local buffer")
	}

	b.segs[0].status = 0  // GNTST_okay
	b.segs[1].status = -3 // GNTST_bad_gntref
	b.finish(ops, true)
	if ops[0].Status != 0 || ops[4].Status != xenif.GNTSTBadGntref || ops[1].Status != xenif.GNTSTBadCopyArg {
		t.Errorf("statuses after the call: %d %d %d", ops[0].Status, ops[4].Status, ops[1].Status)
	}
	b.finish(ops, false)
	if ops[0].Status != xenif.GNTSTGeneralError || ops[4].Status != xenif.GNTSTGeneralError || ops[1].Status != xenif.GNTSTBadCopyArg {
		t.Errorf("statuses after a failed ioctl: %d %d %d", ops[0].Status, ops[4].Status, ops[1].Status)
	}
}

// Building a batch (pinning included) must not allocate once warm: this is
// the backend's hot path.
func TestGrantCopyEncodingDoesNotAllocate(t *testing.T) {
	local := make([]byte, 4096)
	ops := make([]xenif.GrantCopyOp, 16)
	for i := range ops {
		ops[i] = xenif.GrantCopyOp{Ref: uint32(8 + i), Domid: 1, Offset: 0, ToGuest: i%2 == 0, Local: local[i*256 : (i+1)*256]}
	}
	var b copyBuf
	b.fill(ops)
	b.pin.Unpin()
	if n := testing.AllocsPerRun(100, func() { b.fill(ops); b.pin.Unpin(); b.finish(ops, true) }); n != 0 {
		t.Errorf("fill allocates %.1f times per batch", n)
	}
}

func TestPinOncePerBuffer(t *testing.T) {
	big := make([]byte, 8192)
	other := make([]byte, 64)
	ops := []xenif.GrantCopyOp{
		{Ref: 8, Domid: 1, Local: big[:512]},
		{Ref: 9, Domid: 1, Local: big[512:1024]},
		{Ref: 10, Domid: 1, Local: other},
		{Ref: 11, Domid: 1, Local: big[4096:]},
	}
	var b copyBuf
	b.fill(ops)
	defer b.pin.Unpin()
	if b.npin != 2 {
		t.Errorf("pinned %d objects for two buffers", b.npin)
	}
}
