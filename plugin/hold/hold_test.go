package hold

import (
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/govscsi/govscsi/libxlgo/xenfake"
	"github.com/govscsi/govscsi/plugin/internal/rigtest"
)

type rig struct {
	host *rigtest.Host
	doms *xenfake.Domains
	h    *Holder
}

func newRig(t *testing.T, max time.Duration) *rig {
	t.Helper()
	r := &rig{host: rigtest.NewHost(t), doms: xenfake.NewDomains()}
	var err error
	r.h, err = New(Config{Control: r.doms, Store: r.host.Admin, Owner: "test", MaxHold: max,
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: testWriter{t}})})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// xlGuest makes domain domid as xl create leaves it before unpausing:
// xenstore home and /libxl/<domid>, and one pause reference.
func (r *rig) xlGuest(domid uint32) {
	r.host.Guest(domid, "g"+strconv.Itoa(int(domid)))
	r.doms.Create(domid, 1)
}

func TestTakeKeepsXlsUnpauseFromRunningTheGuest(t *testing.T) {
	r := newRig(t, time.Minute)
	r.xlGuest(5)
	x, err := r.h.Take(5)
	if err != nil {
		t.Fatal(err)
	}
	if x.Late {
		t.Error("a domain that never ran is reported late")
	}
	rec := r.host.Read(RecordPath(5))
	if _, p, ok := parseRecord(rec); !ok || p != r.h.self || !strings.Contains(rec, "owner=test") {
		t.Errorf("record %q does not name this holder (%+v)", rec, r.h.self)
	}
	// xl's own unpause at the end of xl create:
	if err := r.doms.Unpause(5); err != nil {
		t.Fatal(err)
	}
	r.doms.Tick(time.Millisecond)
	if in, _ := r.doms.DomainInfo(5); !in.Paused || in.CPUTime != 0 {
		t.Fatalf("the guest ran while held: %+v", in)
	}
	held, err := x.Release()
	if err != nil {
		t.Fatal(err)
	}
	if held <= 0 {
		t.Errorf("held %v", held)
	}
	if n := r.doms.Pauses(5); n != 0 {
		t.Errorf("%d pause references left after Release", n)
	}
	if r.host.Exists(RecordPath(5)) {
		t.Error("record left after Release")
	}
	if !r.host.Exists("/libxl/5") {
		t.Error("Release removed libxl's /libxl/5")
	}
	// Release is idempotent.
	if held2, err := x.Release(); err != nil || held2 != held {
		t.Errorf("second Release: %v, %v (first %v)", held2, err, held)
	}
	if n := r.doms.Pauses(5); n != 0 {
		t.Errorf("second Release dropped another reference: %d left", n)
	}
	select {
	case <-x.Released():
	default:
		t.Error("Released not closed")
	}
}

func TestTakeLeavesNoParentItCreated(t *testing.T) {
	r := newRig(t, time.Minute)
	r.doms.Create(7, 1) // a domain without /libxl/7 (not made by libxl)
	x, err := r.h.Take(7)
	if err != nil {
		t.Fatal(err)
	}
	if !r.host.Exists(RecordPath(7)) {
		t.Fatal("no record")
	}
	if _, err := x.Release(); err != nil {
		t.Fatal(err)
	}
	if r.host.Exists("/libxl/7") {
		t.Error("/libxl/7, created by the record, is left behind")
	}
}

func TestTakeReportsLate(t *testing.T) {
	r := newRig(t, time.Minute)
	r.xlGuest(5)
	r.doms.Unpause(5) //nolint:errcheck // xl unpaused first
	r.doms.Tick(time.Millisecond)
	x, err := r.h.Take(5)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Release() //nolint:errcheck // test end
	if !x.Late {
		t.Error("a domain that already ran is not reported late")
	}
}

func TestTakeFailures(t *testing.T) {
	r := newRig(t, time.Minute)
	// A domain that is not there: no reference, no record, no parent.
	if _, err := r.h.Take(9); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("Take of a missing domain: %v, want ESRCH", err)
	}
	if r.host.Exists("/libxl/9") {
		t.Error("a failed Take left /libxl/9")
	}
	// Pause refused: the record goes again.
	r.xlGuest(5)
	r.doms.PauseErr = syscall.EPERM
	if _, err := r.h.Take(5); !errors.Is(err, syscall.EPERM) {
		t.Errorf("Take with pause refused: %v, want EPERM", err)
	}
	if r.host.Exists(RecordPath(5)) {
		t.Error("a failed Take left its record")
	}
	r.doms.PauseErr = nil
	x, err := r.h.Take(5)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Release() //nolint:errcheck // test end
	if _, err := r.h.Take(5); !errors.Is(err, ErrHeld) {
		t.Errorf("second Take: %v, want ErrHeld", err)
	}
	if n := r.doms.Pauses(5); n != 2 {
		t.Errorf("%d references, want xl's and ours", n)
	}
}

func TestHoldExpires(t *testing.T) {
	r := newRig(t, 50*time.Millisecond)
	r.xlGuest(5)
	x, err := r.h.Take(5)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-x.Released():
	case <-time.After(5 * time.Second):
		t.Fatal("the hold did not expire")
	}
	if n := r.doms.Pauses(5); n != 1 {
		t.Errorf("%d references after expiry, want xl's only", n)
	}
	if r.host.Exists(RecordPath(5)) {
		t.Error("record left after expiry")
	}
	if held, err := x.Release(); err != nil || held < 50*time.Millisecond {
		t.Errorf("Release after expiry: %v, %v", held, err)
	}
	if n := r.doms.Pauses(5); n != 1 {
		t.Errorf("Release after expiry dropped another reference: %d", n)
	}
}

func TestReleaseAfterTheDomainWent(t *testing.T) {
	r := newRig(t, time.Minute)
	r.xlGuest(5)
	x, err := r.h.Take(5)
	if err != nil {
		t.Fatal(err)
	}
	r.doms.Destroy(5)
	if _, err := x.Release(); err != nil {
		t.Errorf("Release of a destroyed domain: %v", err)
	}
}

func TestReleaseAll(t *testing.T) {
	r := newRig(t, time.Minute)
	for _, d := range []uint32{5, 6} {
		r.xlGuest(d)
		if _, err := r.h.Take(d); err != nil {
			t.Fatal(err)
		}
	}
	r.h.ReleaseAll()
	for _, d := range []uint32{5, 6} {
		if n := r.doms.Pauses(d); n != 1 {
			t.Errorf("domain %d: %d references after ReleaseAll", d, n)
		}
		if r.host.Exists(RecordPath(d)) {
			t.Errorf("domain %d: record left", d)
		}
	}
}

// deadProcess is a procID of a process that has exited.
func deadProcess(t *testing.T) procID {
	t.Helper()
	c := exec.Command("true")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	pid := c.Process.Pid
	st, err := startTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	c.Wait() //nolint:errcheck // exit status irrelevant
	return procID{pid: pid, start: st}
}

func TestRecover(t *testing.T) {
	r := newRig(t, time.Minute)
	dead := deadProcess(t)
	// 5: a dead holder's hold (record + reference): released.
	r.xlGuest(5)
	r.doms.Unpause(5) //nolint:errcheck // xl unpaused: only the dead holder's reference is left
	r.doms.Pause(5)   //nolint:errcheck
	r.host.Write(RecordPath(5), dead.record("vscsi-autoattach", time.Now()))
	// 6: a dead holder that died before pausing: record only.
	r.xlGuest(6)
	r.doms.Unpause(6) //nolint:errcheck
	r.host.Write(RecordPath(6), dead.record("vscsi-autoattach", time.Now()))
	// 7: a live holder's hold (this process): left alone.
	r.xlGuest(7)
	r.host.Write(RecordPath(7), r.h.self.record("xl-vscsi", time.Now()))
	// 8: a pid reused by another process (same pid, other start time).
	r.xlGuest(8)
	r.doms.Unpause(8) //nolint:errcheck
	r.doms.Pause(8)   //nolint:errcheck
	r.host.Write(RecordPath(8), procID{pid: r.h.self.pid, start: r.h.self.start + 1}.record("x", time.Now()))
	// 9: a garbled record of a held domain: released (no live holder can be named).
	r.xlGuest(9)
	r.doms.Unpause(9) //nolint:errcheck
	r.doms.Pause(9)   //nolint:errcheck
	r.host.Write(RecordPath(9), "garbage")

	got, err := r.h.Recover()
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint32]bool{5: true, 8: true, 9: true}
	if len(got) != len(want) {
		t.Errorf("Recover released %v, want 5, 8, 9", got)
	}
	for _, d := range got {
		if !want[d] {
			t.Errorf("Recover released %d", d)
		}
	}
	for _, d := range []uint32{5, 6, 8, 9} {
		if n := r.doms.Pauses(d); n != 0 {
			t.Errorf("domain %d: %d references after Recover", d, n)
		}
		if r.host.Exists(RecordPath(d)) {
			t.Errorf("domain %d: record left after Recover", d)
		}
	}
	if n := r.doms.Pauses(7); n != 1 || !r.host.Exists(RecordPath(7)) {
		t.Errorf("the live holder's hold was touched: %d references, record %v", n, r.host.Exists(RecordPath(7)))
	}
}

func TestStartTimeParsesOddCommandNames(t *testing.T) {
	// A command called "a) (b 1 2": fields are counted after the last ')'.
	stat := "4242 (a) (b 1 2) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100"
	if st, err := parseStartTime(stat); err != nil || st != 987654 {
		t.Errorf("parseStartTime = %d, %v; want 987654", st, err)
	}
	for _, bad := range []string{"", "4242 a S 1", "4242 (a) S 1 2 3"} {
		if _, err := parseStartTime(bad); err == nil {
			t.Errorf("parseStartTime(%q) accepted", bad)
		}
	}
	if _, err := startTime(1 << 30); err == nil {
		t.Error("start time of a missing pid")
	}
	p, err := thisProcess()
	if err != nil || p.start == 0 {
		t.Fatalf("this process: %+v, %v", p, err)
	}
	if !p.alive() {
		t.Error("this process is not alive")
	}
	if (procID{pid: p.pid, start: p.start + 1}).alive() {
		t.Error("a reused pid counts as the same process")
	}
}
