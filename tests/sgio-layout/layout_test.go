//go:build cgo && linux

package layout

import (
	"testing"

	"github.com/govscsi/govscsi/backend/sgio"
)

// TestHdrMatchesSgH compares backend/sgio's Hdr, field by field, with
// sg_io_hdr_t from the installed <scsi/sg.h>, and its ioctl numbers and
// direction codes with the header's macros.
func TestHdrMatchesSgH(t *testing.T) {
	c, g := Fields(), sgio.Layout()
	if len(c) != len(g) {
		t.Fatalf("C has %d entries, Go %d", len(c), len(g))
	}
	for i := range c {
		if c[i].Name != g[i].Name || c[i].Off != g[i].Offset || c[i].Size != g[i].Size {
			t.Errorf("%s: C off %d size %d; Go %s off %d size %d", c[i].Name, c[i].Off, c[i].Size, g[i].Name, g[i].Offset, g[i].Size)
		}
	}
	k := Consts()
	for name, want := range sgio.Constants() {
		if got, ok := k[name]; !ok || got != want {
			t.Errorf("%s: C %d (present %v), Go %d", name, got, ok, want)
		}
	}
	if len(k) != len(sgio.Constants()) {
		t.Errorf("C checks %d constants, Go exports %d", len(k), len(sgio.Constants()))
	}
}
