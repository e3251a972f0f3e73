package xenbus

import (
	"fmt"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/govscsi/govscsi/libxlgo/xenif"
)

// BenchmarkReconnectCycle measures one frontend connect/disconnect cycle
// through xenstore (xsfake over net.Pipe): FE 3 -> BE 4 (map ring, bind
// port, device pass), FE 6 -> BE 6, FE 1 -> BE 2.
func BenchmarkReconnectCycle(b *testing.B) {
	r := newRig(b, func(c *Config) { c.Logger = hclog.NewNullLogger() })
	r.start()
	defer r.stop()
	g := r.newGuest(5)
	r.attach(5, 0, map[int]devSpec{0: {"ram:1M", "0:0:0:0"}})
	be, fe := r.bePath(5, 0), fePath(5, 0)
	r.waitValue(be+"/state", "2")
	w := func(p, v string) {
		if err := g.store.Write(xenif.NoTx, p, v); err != nil {
			b.Fatal(err)
		}
	}
	w(fe+"/ring-ref", fmt.Sprint(g.ref))
	w(fe+"/event-channel", fmt.Sprint(g.port))
	b.ResetTimer()
	for b.Loop() {
		w(fe+"/state", "3")
		r.waitValue(be+"/state", "4")
		w(fe+"/state", "6")
		r.waitValue(be+"/state", "2") // via Closed, ready for the next frontend
		w(fe+"/state", "1")
		r.waitValue(be+"/state", "2")
	}
}
