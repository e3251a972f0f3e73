// Package xenstore cross-checks govscsi's xenstore pieces with the real
// ones: Debian's xenstore-* tools (xenstore-utils) and libxenstore (through
// libxlgo/xs), both pointed at an xsfake server with XENSTORED_PATH.
package xenstore

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/govscsi/govscsi/libxlgo/xenif"
	"github.com/govscsi/govscsi/libxlgo/xs"
	"github.com/govscsi/govscsi/libxlgo/xsfake"
	"github.com/govscsi/govscsi/libxlgo/xsfake/storetest"
	"github.com/govscsi/govscsi/libxlgo/xswire"
)

// tool runs a xenstore-* command against socket and returns stdout; it
// fails the test if the command cannot run at all.
func tool(t *testing.T, socket string, name string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = []string{"XENSTORED_PATH=" + socket, "PATH=/usr/bin:/bin"}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v (is xenstore-utils installed? scripts/deps.sh installs it)", name, err)
	}
	return out.String(), errb.String(), code
}

func ok(t *testing.T, socket, name string, args ...string) string {
	t.Helper()
	out, errs, code := tool(t, socket, name, args...)
	if code != 0 {
		t.Fatalf("%s %q: exit %d: %s", name, args, code, errs)
	}
	return out
}

// opLog records the requests the server sees.
type opLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *opLog) log(f string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, strings.TrimPrefix(sprintf(f, a...), "xsfake: "))
}

func (l *opLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.lines
	l.lines = nil
	return r
}

func TestWriteSeveralPairsIsOneTransaction(t *testing.T) {
	srv := xsfake.StartT(t)
	var l opLog
	srv.SetLog(l.log)
	ok(t, srv.Socket, "xenstore-write", "/vm/a", "1", "/vm/b/c", "two words")
	ops := l.take()
	want := []string{
		`dom0 TRANSACTION_START tx=0 "\x00"`,
		`dom0 WRITE tx=1 "/vm/a\x001"`,
		`dom0 WRITE tx=1 "/vm/b/c\x00two words"`,
		`dom0 TRANSACTION_END tx=1 "T\x00"`,
	}
	if strings.Join(ops, "\n") != strings.Join(want, "\n") {
		t.Fatalf("xenstore-write sent:\n%s\nwant:\n%s", strings.Join(ops, "\n"), strings.Join(want, "\n"))
	}
	snap := srv.Snapshot()
	if snap["/vm/a"].Value != "1" || snap["/vm/b/c"].Value != "two words" {
		t.Fatalf("tree after xenstore-write:\n%s", srv.Dump())
	}
}

// A conflicting change between xenstore-write's first transactional write
// and its commit makes the commit fail with EAGAIN; xenstore-write then
// runs the whole transaction again, so its values land.
func TestXenstoreWriteRetriesOnEAGAIN(t *testing.T) {
	srv := xsfake.StartT(t)
	other, err := srv.Connect(0)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	var l opLog
	srv.SetLog(l.log)
	var interfered atomic.Bool
	srv.SetOnRequest(func(domid uint32, m xswire.Msg) {
		if m.Type == xswire.TransactionEnd && interfered.CompareAndSwap(false, true) {
			if err := other.Write(xenif.NoTx, "/r/x", "other"); err != nil {
				t.Error(err)
			}
		}
	})
	ok(t, srv.Socket, "xenstore-write", "/r/x", "mine", "/r/y", "2")
	ops := l.take()
	var ends []string
	for _, op := range ops {
		if strings.Contains(op, "TRANSACTION_END") {
			ends = append(ends, op)
		}
	}
	if len(ends) != 2 {
		t.Fatalf("want a failed and a retried commit, server saw:\n%s", strings.Join(ops, "\n"))
	}
	if v := srv.Snapshot()["/r/x"].Value; v != "mine" {
		t.Fatalf("/r/x = %q after the retried transaction", v)
	}
}

func TestXenstoreLsMatchesServer(t *testing.T) {
	srv := xsfake.StartT(t)
	c, err := srv.Connect(0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for p, v := range map[string]string{
		"/local/domain/5/device/vscsi/0/state":    "1",
		"/local/domain/0/backend/vscsi/5/0/state": "2",
		"/odd/value": "q\"\\t\t\n\x01\x7f\xc3\xa4",
	} {
		if err := c.Write(xenif.NoTx, p, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.SetPerms(xenif.NoTx, "/local/domain/5", storetest.P("n0 r5")); err != nil {
		t.Fatal(err)
	}
	if err := c.SetPerms(xenif.NoTx, "/local/domain/5/device/vscsi/0", storetest.P("b5 r0")); err != nil {
		t.Fatal(err)
	}
	got := ok(t, srv.Socket, "xenstore-ls", "-f", "-p", "/")
	if want := srv.Dump(); got != want {
		t.Fatalf("xenstore-ls -f -p:\n%s\nserver Dump:\n%s", got, want)
	}
	// Tree form: indentation by depth, names, values and perms.
	got = ok(t, srv.Socket, "xenstore-ls", "-p", "/local/domain/5")
	for _, want := range []string{"device = \"\"", " vscsi = \"\"", "  0 = \"\"", "   state = \"1\"", "(b5,r0)"} {
		if !strings.Contains(got, want) {
			t.Fatalf("xenstore-ls -p lacks %q:\n%s", want, got)
		}
	}
}

func TestXenstoreChmod(t *testing.T) {
	srv := xsfake.StartT(t)
	ok(t, srv.Socket, "xenstore-write", "/c/a/b", "1", "/c/d", "2")
	ok(t, srv.Socket, "xenstore-chmod", "/c", "n0", "r5")
	snap := srv.Snapshot()
	if got := snap["/c"].Perms.String(); got != "n0 r5" {
		t.Fatalf("/c perms %q", got)
	}
	if got := snap["/c/a"].Perms.String(); got != "n0" {
		t.Fatalf("chmod without -r changed a child: %q", got)
	}
	ok(t, srv.Socket, "xenstore-chmod", "-r", "/c", "b7", "w3")
	for p, n := range srv.Snapshot() {
		if strings.HasPrefix(p, "/c") && n.Perms.String() != "b7 w3" {
			t.Fatalf("after chmod -r, %s has %q", p, n.Perms)
		}
	}
	// xenstore-chmod's result, read back through the real libxenstore.
	h, err := xs.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	p, err := h.GetPerms(xenif.NoTx, "/c/a/b")
	if err != nil || p.String() != "b7 w3" {
		t.Fatalf("libxenstore GetPerms: %v %v", p, err)
	}
}

func TestToolsAsGuestDomain(t *testing.T) {
	srv := xsfake.StartT(t)
	guest, err := srv.ListenDomain(5)
	if err != nil {
		t.Fatal(err)
	}
	ok(t, srv.Socket, "xenstore-write", "/local/domain/5/name", "guest", "/local/domain/5/private", "x")
	ok(t, srv.Socket, "xenstore-chmod", "/local/domain/5", "n0", "r5")
	ok(t, srv.Socket, "xenstore-chmod", "/local/domain/5/name", "n0", "r5")
	ok(t, srv.Socket, "xenstore-chmod", "/local/domain/5/private", "n0")
	if out := ok(t, guest, "xenstore-read", "name"); out != "guest\n" {
		t.Fatalf("guest relative read: %q", out)
	}
	if _, errs, code := tool(t, guest, "xenstore-read", "/local/domain/5/private"); code == 0 {
		t.Fatal("guest read a node without read permission")
	} else if !strings.Contains(errs, "couldn't read path") {
		t.Fatalf("stderr %q", errs)
	}
	if _, _, code := tool(t, guest, "xenstore-write", "/local/domain/5/new", "1"); code == 0 {
		t.Fatal("guest created a node under an r5 directory")
	}
	if out := ok(t, srv.Socket, "xenstore-list", "/local/domain/5"); out != "name\nprivate\n" {
		t.Fatalf("xenstore-list: %q", out)
	}
}

func TestReadRmExists(t *testing.T) {
	srv := xsfake.StartT(t)
	ok(t, srv.Socket, "xenstore-write", "/x/y", "v")
	if out := ok(t, srv.Socket, "xenstore-read", "/x/y"); out != "v\n" {
		t.Fatalf("read %q", out)
	}
	if _, _, code := tool(t, srv.Socket, "xenstore-read", "/x/nope"); code == 0 {
		t.Fatal("reading a missing node succeeded")
	}
	ok(t, srv.Socket, "xenstore-exists", "/x/y")
	ok(t, srv.Socket, "xenstore-rm", "/x")
	if _, _, code := tool(t, srv.Socket, "xenstore-exists", "/x/y"); code == 0 {
		t.Fatal("node exists after xenstore-rm of its parent")
	}
	if _, ok := srv.Snapshot()["/x"]; ok {
		t.Fatal("server still holds /x")
	}
}

// xenstore-watch sees the initial firing and a change made through the
// real libxenstore by another process-side handle.
func TestXenstoreWatch(t *testing.T) {
	srv := xsfake.StartT(t)
	cmd := exec.Command("xenstore-watch", "-n", "3", "/wt")
	cmd.Env = []string{"XENSTORED_PATH=" + srv.Socket}
	var out syncBuffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	h, err := xs.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	// Wait until the watch is registered (its initial firing was sent).
	for i := 0; ; i++ {
		if strings.Contains(out.String(), "/wt") {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("xenstore-watch exited early: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
		if i > 500 {
			t.Fatal("xenstore-watch printed nothing in 5 s")
		}
	}
	if err := h.Write(xenif.NoTx, "/wt/a", "1"); err != nil {
		t.Fatal(err)
	}
	if err := h.Rm(xenif.NoTx, "/wt"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("xenstore-watch: %v", err)
		}
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("xenstore-watch did not see 3 events; printed %q", out.String())
	}
	if got := out.String(); got != "/wt\n/wt/a\n/wt\n" {
		t.Fatalf("xenstore-watch printed %q", got)
	}
}

// Errors through libxenstore carry the errno the server sent.
func TestLibxenstoreErrnoFromTools(t *testing.T) {
	srv := xsfake.StartT(t)
	ok(t, srv.Socket, "xenstore-write", "/e", "1")
	ok(t, srv.Socket, "xenstore-chmod", "/e", "n0")
	guest, err := srv.ListenDomain(9)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("XENSTORED_PATH", guest)
	h, err := xs.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	_, err = h.Read(xenif.NoTx, "/e")
	if !errors.Is(err, syscall.EACCES) || err.Error() != "xs read /e: permission denied" {
		t.Fatalf("guest read: %v", err)
	}
}
