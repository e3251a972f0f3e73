package datapath

import (
	"context"
	"testing"

	"github.com/govscsi/govscsi/backend/vscsiif"
)

// BenchmarkRingNullLUN measures the data path without Xen and without the
// event loop: requests written into the ring page by a fake frontend, the
// backend's service pass (ring -> copy -> decode -> validate -> lookup ->
// grant copy (xenfake) -> null LUN -> response -> push), and the frontend
// reading the responses. Batches of 16 (a full ring). One op = one request.
// The frontend polls (never re-arms rsp_event), as a busy guest does.
func BenchmarkRingNullLUN(b *testing.B) {
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
			c, err := newConn(f.config(1))
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
