//go:build cgo

package layout

import (
	"context"
	"math/rand"
	"testing"
	"time"

	"github.com/govscsi/govscsi/backend/datapath"
	"github.com/govscsi/govscsi/backend/ring"
	"github.com/govscsi/govscsi/backend/scsi"
	v "github.com/govscsi/govscsi/backend/vscsiif"
	"github.com/govscsi/govscsi/libxlgo/xenfake"
)

// TestGoBackAgainstCFront drives backend/ring's Back against a frontend
// built from Xen's ring.h macros, in random single-threaded interleavings,
// and checks the two properties the hold-off logic exists for: every
// request is answered in order, and neither side can miss a wake-up — once
// a side has done its final check and gone to sleep, the other side's next
// push must report "notify".
func TestGoBackAgainstCFront(t *testing.T) {
	f := NewCFront()
	defer f.Close()
	b, err := ring.NewBack(f.Page(), v.RequestSize)
	if err != nil {
		t.Fatal(err)
	}
	if b.Size() != f.Size() {
		t.Fatalf("Go ring size %d, C RING_SIZE %d", b.Size(), f.Size())
	}
	rng := rand.New(rand.NewSource(7))
	var next, want uint16
	backSleeping, frontSleeping := false, false
	answered, backWakes, frontWakes := 0, 0, 0
	slot := make([]byte, v.RequestSize)
	var req v.Request
	for step := 0; step < 200000; step++ {
		switch rng.Intn(3) {
		case 0: // frontend produces
			k := rng.Intn(f.Free() + 1)
			if k == 0 {
				continue
			}
			for i := 0; i < k; i++ {
				f.Put(next, v.ActSCSICDB, 0)
				next++
			}
			notify := f.Push()
			if backSleeping {
				if !notify {
					t.Fatalf("step %d: backend went to sleep but the frontend's push did not notify", step)
				}
				backWakes++
			}
			if notify {
				backSleeping = false
			}
		case 1: // backend consumes and answers
			n, err := b.Unconsumed()
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < n; i++ {
				b.CopyRequest(slot)
				v.DecodeRequest(slot, &req)
				rsp := v.Response{Rqid: req.Rqid, Rslt: v.Rslt(v.HostOK, 0)}
				rsp.Encode(b.ResponseSlot())
				b.CommitResponse()
			}
			notify := b.PushResponses()
			if frontSleeping && n > 0 {
				if !notify {
					t.Fatalf("step %d: frontend went to sleep but the backend's push did not notify", step)
				}
				frontWakes++
			}
			if notify {
				frontSleeping = false
			}
			if more, err := b.FinalCheckForRequests(); err != nil {
				t.Fatal(err)
			} else if !more {
				backSleeping = true
			}
		case 2: // frontend reaps, sometimes going to sleep
			final := rng.Intn(2) == 0
			for {
				rqid, rslt, ok := f.Take(final)
				if !ok {
					if final {
						frontSleeping = true
					}
					break
				}
				if rqid != want || rslt != 0 {
					t.Fatalf("step %d: response rqid %d rslt %#x, want rqid %d", step, rqid, rslt, want)
				}
				want++
				answered++
			}
		}
	}
	t.Logf("%d responses, %d backend wake-ups, %d frontend wake-ups checked", answered, backWakes, frontWakes)
	if answered < 2000 || backWakes < 100 || frontWakes < 100 {
		t.Fatal("the interleaving did not exercise the ring enough")
	}
}

// TestDatapathAgainstCFront runs the real data path (datapath.Conn over
// xenfake grants and event channels) with the C macro frontend: TEST UNIT
// READY to a present LUN, to an absent one, and an unknown act.
func TestDatapathAgainstCFront(t *testing.T) {
	f := NewCFront()
	defer f.Close()
	grants := xenfake.NewGrants()
	hub := xenfake.NewEventHub()
	const dom = 3
	ref := grants.Grant(dom, f.Page(), false)
	guest := hub.Guest(dom)
	gport := guest.AllocUnbound(0)
	ev, err := hub.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	var table datapath.Table
	table.Set(datapath.Addr{}, datapath.Entry{LUN: scsi.NewNull(), Inline: true})
	c, err := datapath.Start(datapath.Config{FrontendDomid: dom, RingRef: ref, RemotePort: gport,
		Grants: grants, Events: ev, Resolver: &table})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.Stop(context.Background()); err != nil {
			t.Error(err)
		}
		if grants.Mapped() != 0 {
			t.Error("ring still mapped after Stop")
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	want := map[uint16]int32{}
	for round := 0; round < 500; round++ {
		for i := uint16(0); i < 16; i++ {
			switch i % 3 {
			case 0:
				f.Put(i, v.ActSCSICDB, 0)
				want[i] = v.Rslt(v.HostOK, 0)
			case 1:
				f.Put(i, v.ActSCSICDB, 9)
				want[i] = v.Rslt(v.HostNoConnect, 0)
			default:
				f.Put(i, 99, 0)
				want[i] = v.Rslt(v.HostError, 0)
			}
		}
		if f.Push() {
			if err := guest.Notify(gport); err != nil {
				t.Fatal(err)
			}
		}
		for got := 0; got < 16; {
			rqid, rslt, ok := f.Take(true)
			if !ok {
				if err := guest.Wait(ctx, gport); err != nil {
					t.Fatalf("round %d: %d of 16 responses: %v", round, got, err)
				}
				continue
			}
			if w, present := want[rqid]; !present || w != rslt {
				t.Fatalf("round %d: rqid %d rslt %#x, want %#x (present %v)", round, rqid, rslt, w, present)
			}
			delete(want, rqid)
			got++
		}
	}
}
