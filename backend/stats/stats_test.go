package stats

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govscsi/govscsi/backend/scsi"
)

func TestBuckets(t *testing.T) {
	prev := -1
	for ns := uint64(0); ns < 1<<20; ns += 1 + ns/64 {
		b := bucket(ns)
		if b < prev {
			t.Fatalf("bucket(%d) = %d < previous %d", ns, b, prev)
		}
		prev = b
		if up := bucketUpper(b); up < ns || float64(up) > float64(ns)*1.25+4 {
			t.Fatalf("bucket(%d) = %d, upper bound %d", ns, b, up)
		}
	}
	for b := 0; b < bucket(^uint64(0)); b++ {
		if bucket(bucketUpper(b)) != b || bucket(bucketUpper(b)+1) != b+1 {
			t.Fatalf("bucket %d: upper %d maps to %d, upper+1 to %d", b, bucketUpper(b), bucket(bucketUpper(b)), bucket(bucketUpper(b)+1))
		}
	}
	if bucket(^uint64(0)) >= nBuckets {
		t.Fatal("max latency out of the histogram")
	}
}

func TestPercentiles(t *testing.T) {
	var h [nBuckets]uint64
	// 900 commands at 10 us, 90 at 1 ms, 10 at 100 ms.
	h[bucket(10_000)] = 900
	h[bucket(1_000_000)] = 90
	h[bucket(100_000_000)] = 10
	p := percentiles(&h, 1000)
	near := func(name string, got, want float64) {
		if got < want || got > want*1.25 {
			t.Errorf("%s = %v us, want about %v", name, got, want)
		}
	}
	near("p50", p.P50, 10)
	near("p90", p.P90, 10)
	near("p99", p.P99, 1000)
	near("p99.9", p.P999, 100000)
	near("max", p.Max, 100000)
}

type fakeLUN struct {
	res    scsi.Result
	delay  time.Duration
	resets int
	closed bool
}

func (f *fakeLUN) Execute(cmd *scsi.Command, res *scsi.Result) {
	time.Sleep(f.delay)
	*res = f.res
	if cmd.Dir == scsi.DirFromDevice {
		res.DataLen = len(cmd.Data)
	}
}
func (f *fakeLUN) Close() error { f.closed = true; return nil }

type tmLUN struct{ fakeLUN }

func (t *tmLUN) Abort(uint64) bool { return true }
func (t *tmLUN) Reset() error      { t.resets++; return nil }

func TestWrapCounts(t *testing.T) {
	r := NewRegistry()
	inner := &fakeLUN{delay: 2 * time.Millisecond}
	l := r.Wrap(Meta{Domid: 5, Vhost: "0", Dev: "dev-0", Addr: "0:0:0", Pdev: "ram:1M"}, inner)
	if _, ok := l.(scsi.TaskManagement); ok {
		t.Error("wrapper claims task management the LUN lacks")
	}
	var res scsi.Result
	l.Execute(&scsi.Command{Dir: scsi.DirFromDevice, Data: make([]byte, 4096)}, &res)
	l.Execute(&scsi.Command{Dir: scsi.DirToDevice, Data: make([]byte, 512)}, &res)
	inner.res = scsi.Result{Status: 2}
	l.Execute(&scsi.Command{Dir: scsi.DirNone}, &res)
	s := r.LUNs()
	if len(s) != 1 {
		t.Fatalf("LUNs() = %+v", s)
	}
	g := s[0]
	if g.Commands != 3 || g.Reads != 1 || g.Writes != 1 || g.Others != 1 || g.ReadBytes != 4096 || g.WriteBytes != 512 || g.Errors != 1 || g.Pdev != "ram:1M" {
		t.Errorf("snapshot %+v", g)
	}
	if g.LatencyUS.P50 < 2000 || g.LatencyUS.Max > 1e6 {
		t.Errorf("latency %+v for 2 ms commands", g.LatencyUS)
	}
	if g.IOPS <= 0 {
		t.Errorf("IOPS %v", g.IOPS)
	}
	// Latency is sampled: commands 1, 9, 17, ... are timed.
	inner.delay = 0
	for range 2*LatencySample - 3 {
		l.Execute(&scsi.Command{Dir: scsi.DirNone}, &res)
	}
	var timed uint64
	for i := range w(l).e.c.hist {
		timed += w(l).e.c.hist[i].Load()
	}
	if n := r.LUNs()[0].Commands; n != 2*LatencySample || timed != 2 {
		t.Errorf("%d commands, %d timed; want %d and 2", n, timed, 2*LatencySample)
	}
	l.Close()
	if !inner.closed || len(r.LUNs()) != 0 {
		t.Errorf("Close: inner closed %v, %d LUNs left", inner.closed, len(r.LUNs()))
	}

	tm := &tmLUN{}
	w := r.Wrap(Meta{}, tm)
	m, ok := w.(scsi.TaskManagement)
	if !ok {
		t.Fatal("task management lost by the wrapper")
	}
	m.Reset()
	if tm.resets != 1 {
		t.Error("Reset not forwarded")
	}
}

func TestRateWindow(t *testing.T) {
	r := NewRegistry()
	now := time.Unix(1000, 0)
	r.now = func() time.Time { return now }
	l := r.Wrap(Meta{}, &fakeLUN{})
	var res scsi.Result
	for i := 0; i < 100; i++ {
		l.Execute(&scsi.Command{}, &res)
	}
	now = now.Add(2 * time.Second)
	if s := r.LUNs()[0]; s.IOPS != 50 {
		t.Errorf("IOPS over the first window = %v, want 50", s.IOPS)
	}
	for i := 0; i < 30; i++ {
		l.Execute(&scsi.Command{}, &res)
	}
	now = now.Add(3 * time.Second)
	if s := r.LUNs()[0]; s.IOPS != 10 {
		t.Errorf("IOPS over the second window = %v, want 10", s.IOPS)
	}
}

func TestSocketRoundTrip(t *testing.T) {
	dir, err := os.MkdirTemp("", "st")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "s", "stats.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, %v", fi.Mode(), err)
	}
	r := NewRegistry()
	lun := r.Wrap(Meta{Domid: 7, Dev: "dev-0"}, &fakeLUN{})
	var res scsi.Result
	lun.Execute(&scsi.Command{}, &res)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, l, func() Snapshot {
			return Snapshot{Time: time.Now(), LUNs: r.LUNs(), Vhosts: []VhostStatus{{Domid: 7, State: 4}}}
		}, nil)
	}()
	s, err := Fetch(context.Background(), sock)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.LUNs) != 1 || s.LUNs[0].Domid != 7 || s.LUNs[0].Commands != 1 || len(s.Vhosts) != 1 {
		t.Errorf("snapshot %+v", s)
	}
	// A bad request gets an error answer, not a hang.
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("{\"op\":\"reboot\"}\n"))
	buf := make([]byte, 200)
	n, _ := c.Read(buf)
	c.Close()
	if !strings.Contains(string(buf[:n]), "unknown op") {
		t.Errorf("bad op answer %q", buf[:n])
	}
	// A second Listen over the live socket's file replaces it only if it
	// is a socket; a regular file is refused.
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, nil, 0o600)
	if _, err := Listen(plain); err == nil {
		t.Error("Listen replaced a regular file")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if _, err := Fetch(context.Background(), sock); err == nil || !errors.Is(err, os.ErrNotExist) && !strings.Contains(err.Error(), "refused") {
		t.Logf("Fetch after stop: %v", err)
	}
}

// w is the counting wrapper behind a LUN Wrap returned.
func w(l scsi.LUN) *countingLUN {
	if tm, ok := l.(*countingTMLUN); ok {
		return tm.countingLUN
	}
	return l.(*countingLUN)
}

// TestStopRequest: "stop" reaches the daemon's Controls with its mode; a
// bad mode or a daemon without Controls is refused with a message.
func TestStopRequest(t *testing.T) {
	dir, err := os.MkdirTemp("", "st")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	serve := func(name string, ctl Controls) (string, func()) {
		sock := filepath.Join(dir, name)
		l, err := Listen(sock)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- ServeControls(ctx, l, func() Snapshot { return Snapshot{} }, ctl, nil) }()
		return sock, func() { cancel(); <-done }
	}
	var got []string
	sock, stop := serve("c.sock", Controls{Stop: func(mode string) (StopReply, error) {
		got = append(got, mode)
		return StopReply{Stopping: true, Mode: mode, Pid: 42, Vhosts: 3}, nil
	}})
	defer stop()
	r, err := Stop(context.Background(), sock, "disconnect")
	if err != nil || r.Mode != "disconnect" || r.Pid != 42 || r.Vhosts != 3 {
		t.Fatalf("Stop = %+v, %v", r, err)
	}
	if _, err := Stop(context.Background(), sock, "later"); err == nil || !strings.Contains(err.Error(), "later") {
		t.Errorf("bad mode: %v", err)
	}
	if len(got) != 1 || got[0] != "disconnect" {
		t.Errorf("Controls.Stop saw %v", got)
	}
	plain, stop2 := serve("p.sock", Controls{})
	defer stop2()
	if _, err := Stop(context.Background(), plain, "handover"); err == nil || !strings.Contains(err.Error(), "cannot be stopped") {
		t.Errorf("stop without Controls: %v", err)
	}
	if _, err := Stop(context.Background(), filepath.Join(dir, "none.sock"), "handover"); err == nil {
		t.Error("stop of no daemon succeeded")
	}
}
