package datapath

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/govscsi/govscsi/backend/journal"
	"github.com/govscsi/govscsi/backend/scsi"
	"github.com/govscsi/govscsi/backend/vscsiif"
	"github.com/govscsi/govscsi/libxlgo/xenfake"
)

// A restarted or crashed backend process, played by a second Conn over the
// same ring page, grant ref and guest port, with a new event-channel device.

func (f *testFront) journalPath() string { return filepath.Join(f.t.TempDir(), "ring.journal") }

// startNext starts the "next process": a new event-channel device, the same
// ring, Resume with the journal at path.
func (f *testFront) startNext(workers int, path string) (*Conn, *xenfake.EventChannel) {
	f.t.Helper()
	ev, err := f.hub.Open(0)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { ev.Close() })
	cfg := f.config(workers)
	cfg.Events, cfg.JournalPath, cfg.Resume = ev, path, true
	c, err := Start(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c.Stop(ctx) //nolint:errcheck // checked by the tests that care
	})
	return c, ev
}

// responses collects the responses that arrive within d, failing on a
// duplicate rqid (xen-scsifront disables the host on one: "illegal rqid").
func (f *testFront) responses(seen map[uint16]vscsiif.Response, want int, d time.Duration) {
	f.t.Helper()
	deadline := time.Now().Add(d)
	for len(seen) < want && time.Now().Before(deadline) {
		for f.front.UnconsumedResponses() > 0 {
			f.front.CopyResponse(f.rspBuf)
			var r vscsiif.Response
			vscsiif.DecodeResponse(f.rspBuf, &r)
			if old, dup := seen[r.Rqid]; dup {
				f.t.Fatalf("rqid %d answered twice (%#x, then %#x)", r.Rqid, old.Rslt, r.Rslt)
			}
			seen[r.Rqid] = r
		}
		f.front.FinalCheckForResponses()
		time.Sleep(time.Millisecond)
	}
}

// blockLUN is a RAM disk whose commands wait while it is held (hold/let);
// it counts executions per tag.
type blockLUN struct {
	inner   *memLUN
	mu      sync.Mutex
	held    bool
	cond    *sync.Cond
	started chan uint64
	runs    sync.Map // tag -> *atomic.Int32
}

func newBlockLUN(blocks int) *blockLUN {
	l := &blockLUN{inner: newMemLUN(blocks), started: make(chan uint64, 64)}
	l.cond = sync.NewCond(&l.mu)
	return l
}

func (l *blockLUN) hold() { l.mu.Lock(); l.held = true; l.mu.Unlock() }
func (l *blockLUN) let()  { l.mu.Lock(); l.held = false; l.cond.Broadcast(); l.mu.Unlock() }

func (l *blockLUN) Execute(cmd *scsi.Command, res *scsi.Result) {
	n, _ := l.runs.LoadOrStore(cmd.Tag, new(atomic.Int32))
	n.(*atomic.Int32).Add(1)
	select {
	case l.started <- cmd.Tag:
	default:
	}
	l.mu.Lock()
	for l.held {
		l.cond.Wait()
	}
	l.mu.Unlock()
	l.inner.Execute(cmd, res)
}

func (l *blockLUN) Close() error { return nil }

func (l *blockLUN) ran(tag uint64) int32 {
	if n, ok := l.runs.Load(tag); ok {
		return n.(*atomic.Int32).Load()
	}
	return 0
}

// writeReq writes 512 bytes of fill at lba from a fresh read-only page.
func (f *testFront) writeReq(rqid uint16, lba uint32, fill byte) vscsiif.Request {
	_, ref := f.dataPage(fill, true)
	return rw(rqid, opWrite10, vscsiif.DMAToDevice, lba, 1, seg(ref, 0, 512))
}

// TestHandoverCompletesInFlight: a handover lets the commands in flight
// finish normally (no DID_ABORT), publishes their responses, leaves the
// requests not consumed yet in the ring, and the next process serves
// those, then everything else; every rqid is answered exactly once.
func TestHandoverCompletesInFlight(t *testing.T) {
	for _, inline := range inlineModes {
		t.Run(modeName(inline), func(t *testing.T) {
			f := newTestFront(t)
			slow := newBlockLUN(64)
			fast := newMemLUN(64)
			f.table.Set(lun0, Entry{LUN: slow})
			f.table.Set(Addr{0, 0, 1}, Entry{LUN: fast, Inline: inline})
			path := f.journalPath()
			cfg := f.config(4)
			cfg.JournalPath = path
			c1, err := Start(cfg)
			if err != nil {
				t.Fatal(err)
			}
			slow.hold()
			// rqids 0..3 on the slow LUN, in flight in workers.
			for i := uint16(0); i < 4; i++ {
				f.send(f.writeReq(i, uint32(i), byte(0x10+i)))
			}
			for i := 0; i < 4; i++ {
				<-slow.started
			}
			done := make(chan error, 1)
			var left int
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				var err error
				left, err = c1.Handover(ctx)
				done <- err
			}()
			// The handover waits for the slow LUN; meanwhile the guest keeps
			// queueing (rqids 4..9 to the fast LUN).
			time.Sleep(20 * time.Millisecond)
			for i := uint16(4); i < 10; i++ {
				r := f.writeReq(i, uint32(i), byte(0x10+i))
				r.LUN = 1
				f.send(r)
			}
			select {
			case err := <-done:
				t.Fatalf("Handover returned while commands were in flight: %v", err)
			case <-time.After(30 * time.Millisecond):
			}
			slow.let()
			if err := <-done; err != nil || left != 0 {
				t.Fatalf("Handover = %d, %v", left, err)
			}
			if f.grants.Mapped() != 0 || f.events.Bound() != 0 {
				t.Fatal("ring or port not released by the handover")
			}
			seen := map[uint16]vscsiif.Response{}
			f.responses(seen, 4, time.Second)
			for i := uint16(0); i < 4; i++ {
				if r, ok := seen[i]; !ok || r.Rslt != rsltGood {
					t.Fatalf("in-flight rqid %d: %+v (answered %v), want GOOD", i, r, ok)
				}
			}
			if len(seen) != 4 {
				t.Fatalf("%d responses before the next process, want the 4 in flight: %v", len(seen), seen)
			}
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("journal gone after the handover: %v", err)
			}

			// The next process: the 6 queued requests are served.
			before := f.guest.Notifications(f.gport)
			c2, _ := f.startNext(4, path)
			f.responses(seen, 10, 5*time.Second)
			for i := uint16(4); i < 10; i++ {
				if r, ok := seen[i]; !ok || r.Rslt != rsltGood {
					t.Fatalf("queued rqid %d: %+v (answered %v), want GOOD", i, r, ok)
				}
			}
			if f.guest.Notifications(f.gport) == before {
				t.Error("the next process never notified the frontend")
			}
			if n := c2.Stats().Replayed.Load(); n != 0 {
				t.Errorf("%d requests executed again after a clean handover", n)
			}
			for i := uint16(0); i < 10; i++ {
				l := slow.inner
				if i >= 4 {
					l = fast
				}
				if !bytes.Equal(l.data[int(i)*blockSize:int(i+1)*blockSize], bytes.Repeat([]byte{byte(0x10 + i)}, blockSize)) {
					t.Errorf("block %d does not hold rqid %d's data", i, i)
				}
			}
			f.responses(seen, 11, 30*time.Millisecond) // nothing more may come
			if len(seen) != 10 {
				t.Fatalf("%d responses, want 10", len(seen))
			}
			// A clean disconnect removes the journal.
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if err := c2.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("journal still there after Stop: %v", err)
			}
		})
	}
}

// TestHandoverTimeoutLeavesToJournal: a command still inside a hung LUN at
// the handover deadline is not answered with an error: the next process
// executes it again, exactly once, and the old process's late result is
// dropped.
func TestHandoverTimeoutLeavesToJournal(t *testing.T) {
	f := newTestFront(t)
	hung := newBlockLUN(64)
	f.table.Set(lun0, Entry{LUN: hung})
	path := f.journalPath()
	cfg := f.config(4)
	cfg.JournalPath = path
	c1, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hung.hold()
	f.send(f.writeReq(7, 3, 0x77))
	<-hung.started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	left, err := c1.Handover(ctx)
	if left != 1 || err == nil {
		t.Fatalf("Handover = %d, %v; want 1 left and an error naming it", left, err)
	}
	seen := map[uint16]vscsiif.Response{}
	f.responses(seen, 1, 20*time.Millisecond)
	if len(seen) != 0 {
		t.Fatalf("the hung command was answered at the handover: %+v", seen)
	}
	// The next process's LUN answers at once (its own instance of the disk).
	next := newMemLUN(64)
	f.table.Set(lun0, Entry{LUN: next})
	c2, _ := f.startNext(4, path)
	f.responses(seen, 1, 5*time.Second)
	if r, ok := seen[7]; !ok || r.Rslt != rsltGood {
		t.Fatalf("rqid 7 after the restart: %+v, %v", r, ok)
	}
	if n := c2.Stats().Replayed.Load(); n != 1 {
		t.Errorf("%d requests executed again, want 1", n)
	}
	if !bytes.Equal(next.data[3*blockSize:4*blockSize], bytes.Repeat([]byte{0x77}, blockSize)) {
		t.Error("the write executed again did not land")
	}
	hung.let() // the old process's command returns late: nothing may reach the ring
	f.responses(seen, 2, 50*time.Millisecond)
	if len(seen) != 1 {
		t.Fatalf("%d responses, want exactly 1", len(seen))
	}
}

// TestCrashAtEachOrderingPoint kills the connection at each point of the
// journal's orderings (package journal) while requests are in flight; the
// next process answers every request exactly once, GOOD, and every write
// lands. The guest sends 4 groups of 3 requests, each group in one push
// once the previous group is answered, so each point is reached several
// times; the groups it has not sent when the backend dies are queued in the
// ring while no backend runs.
func TestCrashAtEachOrderingPoint(t *testing.T) {
	const groups, per = 4, 3
	const n = groups * per
	for _, c := range []struct {
		point string
		nth   []int32
	}{
		{"consumed", []int32{1, 5, 12}}, // a request's entry written, req_cons not yet
		{"journaled", []int32{1, 3}},    // a batch's req_cons written, nothing executed
		{"answered", []int32{1, 5, 12}}, // a response written, not pushed
		{"pushed", []int32{1, 3}},       // responses pushed, entries not freed
	} {
		for _, inline := range inlineModes {
			for _, nth := range c.nth {
				t.Run(fmt.Sprintf("%s/%s/%d", c.point, modeName(inline), nth), func(t *testing.T) {
					f := newTestFront(t)
					lun := newMemLUN(64)
					f.table.Set(lun0, Entry{LUN: lun, Inline: inline})
					path := f.journalPath()
					cfg := f.config(4)
					cfg.JournalPath = path
					var hits atomic.Int32
					crashed := make(chan struct{})
					cfg.crashAt = func(p string) bool {
						if p != c.point || hits.Add(1) != nth {
							return false
						}
						close(crashed)
						return true
					}
					c1, err := Start(cfg)
					if err != nil {
						t.Fatal(err)
					}
					seen := map[uint16]vscsiif.Response{}
					sendGroup := func(g int) {
						reqs := make([]vscsiif.Request, per)
						for i := range reqs {
							k := uint16(g*per + i)
							reqs[i] = f.writeReq(k, uint32(k), byte(0x40+k))
						}
						f.send(reqs...)
					}
					g, dead := 0, false
					for ; g < groups && !dead; g++ {
						sendGroup(g)
						for len(seen) < (g+1)*per && !dead {
							f.responses(seen, (g+1)*per, time.Millisecond)
							select {
							case <-crashed:
								dead = true
							default:
							}
						}
					}
					if !dead {
						select {
						case <-crashed:
						case <-time.After(5 * time.Second):
							t.Fatalf("crash point %s #%d never reached (%d hits)", c.point, nth, hits.Load())
						}
					}
					c1.Kill()                                 // the kernel closes the dead process's devices
					f.responses(seen, n, 20*time.Millisecond) // what it published before dying
					early := len(seen)
					for ; g < groups; g++ {
						sendGroup(g) // queued while no backend runs
					}

					c2, _ := f.startNext(4, path)
					f.responses(seen, n, 5*time.Second)
					for i := uint16(0); i < n; i++ {
						if r, ok := seen[i]; !ok || r.Rslt != rsltGood {
							t.Fatalf("rqid %d: %+v (answered %v); %d answered before the crash, %d executed again",
								i, r, ok, early, c2.Stats().Replayed.Load())
						}
						if !bytes.Equal(lun.data[int(i)*blockSize:int(i+1)*blockSize], bytes.Repeat([]byte{byte(0x40 + i)}, blockSize)) {
							t.Errorf("block %d does not hold rqid %d's data", i, i)
						}
					}
					f.responses(seen, n+1, 20*time.Millisecond)
					if len(seen) != n {
						t.Fatalf("%d responses, want %d", len(seen), n)
					}
					t.Logf("%d answered before the crash, %d executed again", early, c2.Stats().Replayed.Load())
				})
			}
		}
	}
}

// TestCrashWithSlowCommands: requests stuck in a slow LUN when the process
// dies, and others queued behind them, are all answered once by the next
// process, in ring order before new requests.
func TestCrashWithSlowCommands(t *testing.T) {
	f := newTestFront(t)
	slow := newBlockLUN(64)
	f.table.Set(lun0, Entry{LUN: slow})
	path := f.journalPath()
	cfg := f.config(4)
	cfg.JournalPath = path
	c1, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	slow.hold()
	var reqs []vscsiif.Request
	for i := uint16(0); i < 6; i++ {
		reqs = append(reqs, f.writeReq(i, uint32(i), byte(0x60+i)))
	}
	f.send(reqs...)          // one batch: all 6 consumed together
	for i := 0; i < 4; i++ { // 4 workers busy, 2 queued
		<-slow.started
	}
	c1.Kill()
	slow.let() // the dead process's commands return: dropped

	next := newBlockLUN(64)
	f.table.Set(lun0, Entry{LUN: next})
	c2, _ := f.startNext(4, path)
	seen := map[uint16]vscsiif.Response{}
	f.responses(seen, 6, 5*time.Second)
	for i := uint16(0); i < 6; i++ {
		if r, ok := seen[i]; !ok || r.Rslt != rsltGood {
			t.Fatalf("rqid %d: %+v, %v", i, r, ok)
		}
		if next.ran(uint64(i)) != 1 {
			t.Errorf("rqid %d executed %d times by the next process", i, next.ran(uint64(i)))
		}
	}
	if n := c2.Stats().Replayed.Load(); n != 6 {
		t.Errorf("%d executed again, want 6", n)
	}
	f.responses(seen, 7, 30*time.Millisecond)
	if len(seen) != 6 {
		t.Fatalf("%d responses, want 6", len(seen))
	}
}

// TestJournalDiscarded: a journal that does not fit the ring (another
// ring's, or one whose indices the frontend's contradict) is discarded; the
// connection then works from rsp_prod.
func TestJournalDiscarded(t *testing.T) {
	for _, c := range []struct {
		name   string
		mangle func(t *testing.T, f *testFront, path string)
	}{
		{"another ring's", func(t *testing.T, f *testFront, path string) {
			j, err := journal.Create(path, journal.Identity{Domid: guestDom, RingRef: f.ringRef + 1, Port: f.gport,
				Slots: 32, RingSize: 16}, 0)
			if err != nil {
				t.Fatal(err)
			}
			j.Consumed(0, 0, make([]byte, vscsiif.RequestSize))
			j.SetReqCons(1)
			j.Close()
		}},
		{"req_cons beyond the ring", func(t *testing.T, f *testFront, path string) {
			j, err := journal.Create(path, journal.Identity{Domid: guestDom, RingRef: f.ringRef, Port: f.gport,
				Slots: 32, RingSize: 16}, 0)
			if err != nil {
				t.Fatal(err)
			}
			r := rw(9, opTUR, vscsiif.DMANone, 0, 0)
			r.Encode(make([]byte, vscsiif.RequestSize))
			j.Consumed(0, 40, make([]byte, vscsiif.RequestSize))
			j.SetReqCons(41)
			j.Close()
		}},
		{"garbage", func(t *testing.T, f *testFront, path string) {
			os.WriteFile(path, bytes.Repeat([]byte{0xff}, 20000), 0o600)
		}},
		{"none", func(t *testing.T, f *testFront, path string) {}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newTestFront(t)
			f.table.Set(lun0, Entry{LUN: newMemLUN(64)})
			path := f.journalPath()
			c.mangle(t, f, path)
			cn, _ := f.startNext(2, path)
			f.send(f.writeReq(3, 0, 1))
			seen := map[uint16]vscsiif.Response{}
			f.responses(seen, 1, 5*time.Second)
			if r, ok := seen[3]; !ok || r.Rslt != rsltGood {
				t.Fatalf("rqid 3: %+v %v", r, ok)
			}
			if n := cn.Stats().Replayed.Load(); n != 0 {
				t.Errorf("%d requests executed from a discarded journal", n)
			}
			// The journal was replaced by one of this ring.
			raw, err := os.ReadFile(path)
			if err != nil || len(raw) < 32 || binary.NativeEndian.Uint32(raw[24:]) != f.ringRef {
				t.Errorf("journal not recreated for this ring: %v", err)
			}
		})
	}
}

// TestReplayIsValidatedAgain: a request executed again is decoded and
// validated like a fresh one; a bad one is refused, not trusted because it
// came from the journal.
func TestReplayIsValidatedAgain(t *testing.T) {
	f := newTestFront(t)
	f.table.Set(lun0, Entry{LUN: newMemLUN(64)})
	path := f.journalPath()
	j, err := journal.Create(path, journal.Identity{Domid: guestDom, RingRef: f.ringRef, Port: f.gport, Slots: 32, RingSize: 16}, 0)
	if err != nil {
		t.Fatal(err)
	}
	bad := rw(1, opRead10, vscsiif.DMAFromDevice, 0, 1)
	bad.NrSegments = 27 // more direct segments than seg[] holds
	raw := make([]byte, vscsiif.RequestSize)
	bad.Encode(raw)
	j.Consumed(5, 0, raw)
	good := f.writeReq(2, 1, 0x22)
	good.Encode(raw)
	j.Consumed(6, 1, raw)
	j.SetReqCons(2)
	j.Close()
	// The ring as the dead process left it: two requests consumed.
	f.front.RequestSlot()
	f.front.CommitRequest()
	f.front.CommitRequest()
	f.front.PushRequests()
	c, _ := f.startNext(2, path)
	seen := map[uint16]vscsiif.Response{}
	f.responses(seen, 2, 5*time.Second)
	if seen[1].Rslt != rsltError || seen[2].Rslt != rsltGood {
		t.Fatalf("responses %+v, want rqid 1 DID_ERROR and rqid 2 GOOD", seen)
	}
	if c.Stats().Replayed.Load() != 2 || c.Stats().Rejected.Load() != 1 {
		t.Errorf("replayed %d rejected %d", c.Stats().Replayed.Load(), c.Stats().Rejected.Load())
	}
}
