package xenbus

import (
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/govscsi/govscsi/libxlgo/xenif"
)

// FuzzHostileXenstore drives one vhost with an arbitrary sequence of
// frontend (guest) and toolstack writes: states in and out of range,
// garbage ring-refs and ports, the FE directory vanishing and coming back,
// BE state 5/7/1 and online flips, device nodes changing, requests on the
// ring. Whatever happens, the backend must not panic or hang, and once
// the toolstack removes the device (online=0, FE directory gone) every
// grant mapping, event-channel port and LUN must be released.
func FuzzHostileXenstore(f *testing.F) {
	f.Add([]byte{0x03 << 4, 0x2e, 0x0e, 0x8d, 0x9d})              // connect, submit, close
	f.Add([]byte{0x12, 0x13, 0x20, 0x30, 0x0e, 0x04, 0x05, 0x0e}) // garbage values, FE dir gone and back
	f.Add([]byte{0x0e, 0x39, 0x07, 0x70, 0x0d, 0x06, 0x0b, 0x0f}) // hot-add via FE=7, toolstack 5, restart
	f.Add([]byte{0x0e, 0x0c, 0x0e, 0x40, 0x60, 0x10, 0x0e, 0x08, 0x18})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 40 {
			ops = ops[:40]
		}
		r := newRig(t, func(c *Config) {
			c.Logger = hclog.NewNullLogger()
			c.TeardownTimeout = 200 * time.Millisecond
			c.RemoveTimeout = 20 * time.Millisecond
			c.ShutdownTimeout = 20 * time.Millisecond
		})
		r.start()
		g := r.newGuest(5)
		r.attach(5, 0, map[int]devSpec{0: {"ram:1M", "0:0:0:0"}})
		be, fe := r.bePath(5, 0), fePath(5, 0)
		gw := func(p, v string) { _ = g.store.Write(xenif.NoTx, p, v) }
		tw := func(p, v string) { _ = r.ts.Write(xenif.NoTx, p, v) }
		feDir := func() {
			// The toolstack re-creates the FE directory owned by the guest.
			_ = r.ts.Mkdir(xenif.NoTx, fe)
			_ = r.ts.SetPerms(xenif.NoTx, fe, xenif.Perms{{Domid: 5}, {Domid: 0, Bits: xenif.PermRead}})
		}
		for _, b := range ops {
			arg := int(b >> 4)
			switch b & 0x0f {
			case 0:
				gw(fe+"/state", fmt.Sprint(arg%10))
			case 1:
				gw(fe+"/state", []string{"x", "", "-1", "4 ", "04", "1e1"}[arg%6])
			case 2:
				gw(fe+"/ring-ref", []string{fmt.Sprint(g.ref), "abc", "99999999999", "0", "4294967295"}[arg%5])
			case 3:
				gw(fe+"/event-channel", []string{fmt.Sprint(g.port), "0", "-1", "131072", fmt.Sprint(g.port + 1)}[arg%5])
			case 4:
				_ = r.ts.Rm(xenif.NoTx, fe)
			case 5:
				feDir()
				gw(fe+"/state", "1")
			case 6:
				tw(be+"/state", "5")
			case 7:
				tw(be+"/state", "7")
			case 8:
				tw(be+"/online", fmt.Sprint(arg%2))
			case 9:
				tw(be+"/vscsi-devs/dev-1/p-dev", []string{"ram:1M", "file:/nope", "0:0:0:1"}[arg%3])
				tw(be+"/vscsi-devs/dev-1/v-dev", []string{"0:0:1:0", "0:0:0:0", "x"}[arg%3])
				tw(be+"/vscsi-devs/dev-1/state", fmt.Sprint(arg%7))
			case 10:
				tw(be+"/vscsi-devs/dev-0/p-dev", "garbage")
			case 11:
				time.Sleep(time.Millisecond)
			case 12:
				g.newRing()
				gw(fe+"/ring-ref", fmt.Sprint(g.ref))
				gw(fe+"/event-channel", fmt.Sprint(g.port))
			case 13:
				if g.front.Free() > 0 {
					g.submit(a0, uint16(arg), []byte{0x00, 0, 0, 0, 0, 0})
				}
			case 14:
				gw(fe+"/ring-ref", fmt.Sprint(g.ref))
				gw(fe+"/event-channel", fmt.Sprint(g.port))
				gw(fe+"/state", "3")
				time.Sleep(time.Millisecond)
				gw(fe+"/state", "4")
			case 15:
				tw(be+"/state", "1")
			}
		}
		// The toolstack removes the device the forced way.
		tw(be+"/online", "0")
		_ = r.ts.Rm(xenif.NoTx, fe)
		deadline := time.Now().Add(10 * time.Second)
		for r.grants.Mapped() != 0 || r.open.Load() != 0 || len(r.b.Vhosts()) != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("after removal: %d grants mapped, %d LUNs open, vhosts %+v", r.grants.Mapped(), r.open.Load(), r.b.Vhosts())
			}
			time.Sleep(time.Millisecond)
		}
		r.stop()
	})
}
