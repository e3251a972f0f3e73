package xenbus

// The xenbus cases of issue 14's hostile-input campaign, kept in the suite.

import (
	"fmt"
	"math/rand"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/govscsi/govscsi/libxlgo/xenif"
)

// backendGoroutines counts the goroutines running the backend's code
// (vhost actors, connections, workers); the rig's peers and xenstore
// connections have goroutines of their own, so NumGoroutine is no measure.
func backendGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "xenbus.(*vhost)") || strings.Contains(g, "xenbus.(*Backend)") || strings.Contains(g, "datapath.(*Conn)") {
			n++
		}
	}
	return n
}

// garbage is what a hostile guest writes into its frontend nodes.
var garbage = []string{"", "0", "1", "2", "3", "4", "5", "6", "7", "8", "99", "-1", "banana", "4294967296",
	"3 ", " 3", "0x3", "\x00", "18446744073709551616", "8\n", "7777777", "12345678901234567890"}

// TestFlapCyclesWithGarbage: a guest flaps its vhost 200 times through
// every state with garbage in every frontend node (ring-ref,
// event-channel, state, vscsi-devs states) while a neighbour guest does
// I/O throughout. The neighbour sees no error, the hostile vhost can be
// removed and attached again and then works, and nothing leaks
// (grants, ports, LUNs, goroutines).
func TestFlapCyclesWithGarbage(t *testing.T) {
	r := newRig(t, func(c *Config) {
		c.Logger = hclog.NewNullLogger()
		c.RemoveTimeout = 50 * time.Millisecond
	})
	r.start()
	neighbour := connectGuest(t, r, 5)
	g := r.newGuest(6)
	r.attach(6, 0, map[int]devSpec{0: {"ram:1M", "0:0:0:0"}})
	be, fe := r.bePath(6, 0), fePath(6, 0)
	r.waitValue(be+"/state", "2")

	done := make(chan int)
	go func() {
		rng := rand.New(rand.NewSource(6))
		nodes := []string{"/ring-ref", "/event-channel", "/state", "/vscsi-devs/dev-0/state", "/protocol", "/feature-host"}
		writes := 0
		for cycle := 0; cycle < 200; cycle++ {
			// A plausible connect now and then, so the backend maps
			// and unmaps the ring between the garbage.
			if cycle%10 == 0 {
				_ = g.store.Write(xenif.NoTx, fe+"/ring-ref", fmt.Sprint(g.ref))
				_ = g.store.Write(xenif.NoTx, fe+"/event-channel", fmt.Sprint(g.port))
				_ = g.store.Write(xenif.NoTx, fe+"/state", "3")
			}
			for k := 0; k < 1+rng.Intn(len(nodes)); k++ {
				_ = g.store.Write(xenif.NoTx, fe+nodes[rng.Intn(len(nodes))], garbage[rng.Intn(len(garbage))])
				writes++
			}
			if rng.Intn(4) == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		done <- writes
	}()
	ios := 0
	for running := true; running; ios++ {
		select {
		case n := <-done:
			t.Logf("200 flap cycles, %d garbage writes; the neighbour did %d write+read pairs meanwhile", n, ios)
			running = false
		default:
		}
		neighbour.writeRead(a0, uint32(ios%64)*8, byte(ios))
	}

	// The toolstack removes the hostile vhost; whatever state the garbage
	// left it in, it goes.
	must(t, xenif.Transact(r.ts, 5, func(tx xenif.Tx) error {
		if err := r.ts.Write(tx, be+"/online", "0"); err != nil {
			return err
		}
		return r.ts.Write(tx, be+"/state", "5")
	}))
	r.waitFor(be+"/state", func(v string, ok bool) bool { return !ok || v == "6" }, "closed")
	// Closed: the toolstack removes both trees, as libxl does.
	must(t, r.ts.Rm(xenif.NoTx, be))
	must(t, r.ts.Rm(xenif.NoTx, fe))
	eventually(t, "hostile vhost gone", func() bool { return len(r.b.Vhosts()) == 1 })
	eventually(t, "only the neighbour's ring mapped", func() bool { return r.grants.Mapped() == 1 })

	// A clean attach of the same guest works after all that.
	g.newRing()
	r.attach(6, 1, map[int]devSpec{0: {"ram:1M", "0:0:0:0"}})
	r.waitValue(r.bePath(6, 1)+"/state", "2")
	g.runFrontend(nil)
	r.waitValue(r.bePath(6, 1)+"/state", "4")
	r.waitValue(r.bePath(6, 1)+"/vscsi-devs/dev-0/state", "4")
	g.writeRead(a0, 0, 0x66)
	neighbour.writeRead(a1, 0, 0x55)

	r.stop() // checks grants, ports and LUNs
	eventually(t, "no backend goroutine left", func() bool { return backendGoroutines() == 0 })
}

// TestRemovalMidConnect: the toolstack removes a vhost at a random moment
// of its connection (frontend writing ring-ref, event-channel, state 3;
// backend mapping and connecting), 30 times. Every vhost ends closed and
// released, whichever side was first; the backend keeps serving.
func TestRemovalMidConnect(t *testing.T) {
	r := newRig(t, func(c *Config) {
		c.Logger = hclog.NewNullLogger()
		c.RemoveTimeout = 50 * time.Millisecond
	})
	r.start()
	rng := rand.New(rand.NewSource(30))
	for i := 0; i < 30; i++ {
		domid := uint32(10 + i)
		g := r.newGuest(domid)
		r.attach(domid, 0, map[int]devSpec{0: {"ram:1M", "0:0:0:0"}})
		be, fe := r.bePath(domid, 0), fePath(domid, 0)
		r.waitValue(be+"/state", "2")
		go func() {
			_ = g.store.Write(xenif.NoTx, fe+"/ring-ref", fmt.Sprint(g.ref))
			_ = g.store.Write(xenif.NoTx, fe+"/event-channel", fmt.Sprint(g.port))
			_ = g.store.Write(xenif.NoTx, fe+"/state", "3")
		}()
		time.Sleep(time.Duration(rng.Intn(3000)) * time.Microsecond)
		must(t, xenif.Transact(r.ts, 5, func(tx xenif.Tx) error {
			if err := r.ts.Write(tx, be+"/online", "0"); err != nil {
				return err
			}
			return r.ts.Write(tx, be+"/state", "5")
		}))
		r.waitFor(be+"/state", func(v string, ok bool) bool { return !ok || v == "6" }, fmt.Sprintf("vhost of domain %d closed", domid))
		// Closed: the toolstack removes both trees, as libxl does.
		must(t, r.ts.Rm(xenif.NoTx, be))
		must(t, r.ts.Rm(xenif.NoTx, fe))
		eventually(t, "vhost gone", func() bool { return len(r.b.Vhosts()) == 0 })
		eventually(t, "ring unmapped", func() bool { return r.grants.Mapped() == 0 })
		eventually(t, "LUNs closed", func() bool { return r.open.Load() == 0 })
	}
	// Still serving.
	g := connectGuest(t, r, 99)
	g.writeRead(a0, 0, 0x99)
	r.stop()
	eventually(t, "no backend goroutine left", func() bool { return backendGoroutines() == 0 })
}
