//go:build !race

package datapath

// Not under the race detector: the guest's writes to the shared ring page
// race with the backend's reads by design (another domain's memory); the
// backend copies each slot once and validates the copy (XSA-155), which
// is what this test holds it to.

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand"
	"testing"
	"time"

	"github.com/govscsi/govscsi/backend/ring"
	"github.com/govscsi/govscsi/backend/vscsiif"
)

// TestGuestScribblesRing: the guest overwrites every byte of the shared
// ring page (indices, request slots, response slots) with random data,
// over and over, notifying all the while. The backend never panics or
// hangs: it either keeps answering or declares a ring protocol violation,
// and Stop releases the mapping and the port.
func TestGuestScribblesRing(t *testing.T) {
	for _, inline := range inlineModes {
		t.Run(modeName(inline), func(t *testing.T) {
			f := newTestFront(t)
			f.table.Set(lun0, Entry{LUN: newMemLUN(64), Inline: inline})
			f.table.Set(Addr{0, 1, 0}, Entry{LUN: nullLUN{}, Inline: !inline})
			c, err := Start(f.config(2))
			if err != nil {
				t.Fatal(err)
			}
			_, good := f.dataPage(0, false)
			// Some real traffic first, so slots are in every state.
			for i := 0; i < 8; i++ {
				f.send(rw(uint16(i), opRead10, vscsiif.DMAFromDevice, 0, 8, seg(good, 0, 4096)))
			}
			rng := rand.New(rand.NewSource(1))
			end := time.Now().Add(200 * time.Millisecond)
			rounds, reqProd := 0, uint32(8)
			for time.Now().Before(end) {
				// Junk in every slot and in the event indices; req_prod
				// moves on as a frontend's would (at most a ring ahead
				// of the responses), so the junk is consumed as requests
				// and the responses the backend writes are overwritten.
				for i := ring.OffReqEvent; i < len(f.page); i++ {
					if i < ring.OffRspProd || i >= ring.OffRspEvent {
						f.page[i] = byte(rng.Intn(256))
					}
				}
				rsp := binary.LittleEndian.Uint32(f.page[ring.OffRspProd:])
				if d := reqProd - rsp; d < 16 {
					reqProd += uint32(rng.Intn(int(16-d) + 1))
				}
				f.front.SetReqProd(reqProd)
				f.guest.Notify(f.gport) //nolint:errcheck // the port may be closed by now
				rounds++
			}
			alive := c.Err() == nil
			// Then indices too: a bogus req_prod ends the ring (P18).
			for i := 0; i < 100; i++ {
				for j := range f.page {
					f.page[j] = byte(rng.Intn(256))
				}
				f.guest.Notify(f.gport) //nolint:errcheck // the port may be closed by now
			}
			if !alive {
				t.Errorf("the ring died while the indices were plausible: %v", c.Err())
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := c.Stop(ctx); err != nil {
				t.Fatalf("Stop after %d rounds of scribbling: %v", rounds, err)
			}
			if err := c.Err(); err != nil && !errors.Is(err, ErrRing) {
				t.Errorf("Err: %v", err)
			}
			if n := f.grants.Mapped(); n != 0 {
				t.Errorf("%d grant mappings left", n)
			}
			if n := f.events.Bound(); n != 0 {
				t.Errorf("%d ports left bound", n)
			}
			t.Logf("%d rounds; Err %v; %d responses, %d rejected", rounds, c.Err(), c.Stats().Responses.Load(), c.Stats().Rejected.Load())
		})
	}
}
