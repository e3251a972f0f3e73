package datapath

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/govscsi/govscsi/backend/vscsiif"
	"github.com/govscsi/govscsi/libxlgo/xenif"
)

// BenchmarkRingNullLUN measures the data path without Xen and without the
// event loop: requests written into the ring page by a fake frontend, the
// backend's service pass (ring -> copy -> decode -> validate -> lookup ->
// grant copy (xenfake) -> null LUN -> response -> push), and the frontend
// reading the responses. Batches of 16 (a full ring). One op = one request.
// The frontend polls (never re-arms rsp_event), as a busy guest does.
func BenchmarkRingNullLUN(b *testing.B) { benchRingNullLUN(b, false) }

// BenchmarkRingNullLUNJournal is BenchmarkRingNullLUN with the in-flight
// journal (a file in the test's temporary directory, mapped shared): the
// cost of crash recovery per request.
func BenchmarkRingNullLUNJournal(b *testing.B) { benchRingNullLUN(b, true) }

func benchRingNullLUN(b *testing.B, withJournal bool) {
	for _, bc := range []struct {
		name string
		dir  uint8
		len  uint16
	}{
		{"nodata", vscsiif.DMANone, 0},
		{"read512", vscsiif.DMAFromDevice, 512},
		{"read4k", vscsiif.DMAFromDevice, 4096},
		{"write4k", vscsiif.DMAToDevice, 4096},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := newTestFront(b)
			f.table.Set(lun0, Entry{LUN: nullLUN{}, Inline: true})
			cfg := f.config(1)
			if withJournal {
				cfg.JournalPath = f.journalPath()
			}
			c, err := newConn(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Stop(context.Background()) //nolint:errcheck // benchmark teardown
			var enc [16][vscsiif.RequestSize]byte
			for i := range enc {
				_, ref := f.dataPage(0, false)
				r := rw(uint16(i), opRead10, bc.dir, 0, 1, seg(ref, 0, bc.len))
				if bc.len == 0 {
					r.NrSegments = 0
				}
				r.Encode(enc[i][:])
			}
			rsp := make([]byte, vscsiif.ResponseSize)
			round := func(k int) int {
				for i := 0; i < k; i++ {
					copy(f.front.RequestSlot(), enc[i][:])
					f.front.CommitRequest()
				}
				f.front.PushRequests()
				if !c.service() {
					b.Fatal(c.Err())
				}
				n := 0
				for f.front.UnconsumedResponses() > 0 {
					f.front.CopyResponse(rsp)
					if rsp[vscsiif.RspOffRslt] != 0 || rsp[vscsiif.RspOffRslt+2] != 0 {
						b.Fatalf("rslt % x", rsp[vscsiif.RspOffRslt:vscsiif.RspOffRslt+4])
					}
					n++
				}
				return n
			}
			round(16) // every slot allocates its data buffer once
			b.ReportAllocs()
			b.SetBytes(int64(bc.len))
			b.ResetTimer()
			for done := 0; done < b.N; {
				done += round(min(16, b.N-done))
			}
		})
	}
}

// BenchmarkConnRoundTrip measures the full loop with goroutines and the
// fake event channel: the frontend pushes depth requests, notifies, and
// sleeps on its port until all responses arrived (re-arming rsp_event each
// time). inline runs the null LUN on the ring goroutine, workers hands each
// command to the pool. One op = one request.
func BenchmarkConnRoundTrip(b *testing.B) {
	for _, inline := range inlineModes {
		for _, depth := range []int{1, 16} {
			b.Run(modeName(inline)+"/qd"+itoa(depth), func(b *testing.B) {
				f := newTestFront(b)
				f.table.Set(lun0, Entry{LUN: nullLUN{}, Inline: inline})
				c, err := Start(f.config(4))
				if err != nil {
					b.Fatal(err)
				}
				defer c.Stop(context.Background()) //nolint:errcheck // benchmark teardown
				reqs := make([]vscsiif.Request, depth)
				for i := range reqs {
					_, ref := f.dataPage(0, false)
					reqs[i] = rw(uint16(i), opRead10, vscsiif.DMAFromDevice, 0, 1, seg(ref, 0, 512))
				}
				b.ReportAllocs()
				b.ResetTimer()
				for done := 0; done < b.N; done += depth {
					f.send(reqs...)
					f.drainN(depth)
				}
			})
		}
	}
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

// countingGrants counts GrantCopy calls (one ioctl, hence at least one
// hypercall, each on real Xen) and the ops they carried.
type countingGrants struct {
	GrantDevice
	calls, ops atomic.Uint64
}

func (g *countingGrants) GrantCopy(ops []xenif.GrantCopyOp) error {
	g.calls.Add(1)
	g.ops.Add(uint64(len(ops)))
	return g.GrantDevice.GrantCopy(ops)
}

// countingEvents counts the event-channel calls of the data path: events
// taken (WaitPending/Pending returns), unmasks (an ioctl each on real Xen)
// and notifies (an ioctl and a hypercall each).
type countingEvents struct {
	xenif.EventChannel
	waits, unmasks, notifies atomic.Uint64
}

func (e *countingEvents) WaitPending(ctx context.Context) (uint32, error) {
	p, err := e.EventChannel.WaitPending(ctx)
	if err == nil {
		e.waits.Add(1)
	}
	return p, err
}

func (e *countingEvents) Pending() (uint32, error) {
	p, err := e.EventChannel.Pending()
	if err == nil {
		e.waits.Add(1)
	}
	return p, err
}

func (e *countingEvents) Unmask(port uint32) error {
	e.unmasks.Add(1)
	return e.EventChannel.Unmask(port)
}

func (e *countingEvents) Notify(port uint32) error {
	e.notifies.Add(1)
	return e.EventChannel.Notify(port)
}

// BenchmarkQD16 is the queue-depth-16 case of a busy guest: the frontend
// posts 16 requests, kicks once, and waits (re-arming rsp_event) for all 16
// responses, through the running loop. Besides ns/op it reports, per
// request, what costs a syscall or hypercall on real Xen: grant-copy calls
// (ioctls), notifies sent, events taken and unmasks. One op = one request.
// The read1m case is fio's 1 MiB read as Linux's frontend sends it with
// feature-sg-grant 128: two 512 KiB requests of 128 segments behind one
// indirect page each, in one kick.
func BenchmarkQD16(b *testing.B) {
	for _, bc := range []struct {
		name   string
		dir    uint8
		op     byte
		inline bool
		depth  int
		pages  int // data pages per request; > 1 means one indirect piece
	}{
		{"read4k/inline", vscsiif.DMAFromDevice, opRead10, true, 16, 1},
		{"write4k/inline", vscsiif.DMAToDevice, opWrite10, true, 16, 1},
		{"read4k/workers", vscsiif.DMAFromDevice, opRead10, false, 16, 1},
		{"write4k/workers", vscsiif.DMAToDevice, opWrite10, false, 16, 1},
		{"read1m/inline", vscsiif.DMAFromDevice, opRead10, true, 2, 128},
		{"read1m/workers", vscsiif.DMAFromDevice, opRead10, false, 2, 128},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := newTestFront(b)
			f.table.Set(lun0, Entry{LUN: newMemLUN(bc.depth * bc.pages * 8), Inline: bc.inline})
			g := &countingGrants{GrantDevice: f.grants}
			ev := &countingEvents{EventChannel: f.events}
			cfg := f.config(0)
			cfg.Grants, cfg.Events = g, ev
			c, err := Start(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Stop(context.Background()) //nolint:errcheck // benchmark teardown
			reqs := make([]vscsiif.Request, bc.depth)
			for i := range reqs {
				lba, blocks := uint32(i*bc.pages*8), uint16(bc.pages*8)
				if bc.pages == 1 {
					_, ref := f.dataPage(byte(i), bc.dir == vscsiif.DMAToDevice)
					reqs[i] = rw(uint16(i), bc.op, bc.dir, lba, blocks, seg(ref, 0, 4096))
					continue
				}
				list, lref := f.dataPage(0, true)
				for k := 0; k < bc.pages; k++ {
					_, ref := f.dataPage(byte(i), bc.dir == vscsiif.DMAToDevice)
					seg(ref, 0, 4096).Encode(list[k*8:])
				}
				reqs[i] = rw(uint16(i), bc.op, bc.dir, lba, blocks, seg(lref, 0, uint16(bc.pages*8)))
				reqs[i].NrSegments = vscsiif.SGGrant | 1
			}
			round := func() {
				f.send(reqs...)
				f.drainN(len(reqs))
			}
			round() // every slot allocates its data buffer once
			g.calls.Store(0)
			ev.waits.Store(0)
			ev.unmasks.Store(0)
			ev.notifies.Store(0)
			b.ReportAllocs()
			b.SetBytes(int64(bc.pages) * 4096)
			b.ResetTimer()
			n := 0
			for ; n < b.N; n += len(reqs) {
				round()
			}
			b.StopTimer()
			per := func(v uint64) float64 { return float64(v) / float64(n) }
			b.ReportMetric(per(g.calls.Load()), "gcopy/req")
			b.ReportMetric(per(ev.notifies.Load()), "notify/req")
			b.ReportMetric(per(ev.waits.Load()), "events/req")
			b.ReportMetric(per(ev.unmasks.Load()), "unmask/req")
		})
	}
}
