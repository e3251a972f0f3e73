package xenfake

import (
	"bytes"
	"testing"

	"github.com/govscsi/govscsi/libxlgo/xenif"
)

// FuzzGrantCopy feeds GrantCopy the op fields a hostile frontend controls
// (ref, offset, length, direction; domid too, for good measure). It must
// never panic, only give Xen's statuses, copy exactly the bytes asked for on
// success, and never touch a read-only page or bytes outside the op.
func FuzzGrantCopy(f *testing.F) {
	f.Add(uint32(firstRef), uint32(guest), uint16(0), uint16(4096), true)
	f.Add(uint32(firstRef+1), uint32(guest), uint16(100), uint16(50), true) // read-only page
	f.Add(uint32(firstRef), uint32(guest), uint16(4095), uint16(2), false)  // crosses the page
	f.Add(uint32(0), uint32(guest), uint16(0), uint16(1), false)
	f.Add(uint32(1<<31), uint32(0x7ff0), uint16(65535), uint16(65535), true)
	f.Add(uint32(firstRef+2), uint32(guest), uint16(0), uint16(0), true) // revoked, empty
	f.Fuzz(func(t *testing.T, ref, domid uint32, offset, length uint16, toGuest bool) {
		g := NewGrants()
		defer g.Close()
		rw, ro, gone := page(0x11), page(0x22), page(0x33)
		g.Grant(guest, rw, false)
		g.Grant(guest, ro, true)
		goneRef := g.Grant(guest, gone, false)
		g.Revoke(goneRef)
		local := bytes.Repeat([]byte{0x5a}, int(length))
		ops := []xenif.GrantCopyOp{{Ref: ref, Domid: domid, Offset: offset, ToGuest: toGuest, Local: local}}
		if err := g.GrantCopy(ops); err != nil {
			t.Fatal(err)
		}
		st := ops[0].Status
		switch st {
		case xenif.GNTSTOkay, xenif.GNTSTGeneralError, xenif.GNTSTBadDomain, xenif.GNTSTBadGntref, xenif.GNTSTBadCopyArg:
		default:
			t.Fatalf("status %d is not one Xen gives for grant copy", st)
		}
		if int(offset)+int(length) > PageSize && length > 0 && st != xenif.GNTSTBadCopyArg {
			t.Fatalf("page-crossing op got status %d", st)
		}
		if !bytes.Equal(ro, page(0x22)) || !bytes.Equal(gone, page(0x33)) {
			t.Fatalf("read-only or revoked page modified")
		}
		wantRW := page(0x11)
		okRW := st == xenif.GNTSTOkay && length > 0 && ref == firstRef && domid == guest
		if okRW && toGuest {
			copy(wantRW[offset:], local)
		}
		if !bytes.Equal(rw, wantRW) {
			t.Fatalf("writable page holds the wrong bytes (status %d)", st)
		}
		if st == xenif.GNTSTOkay && !toGuest && length > 0 {
			src := map[uint32][]byte{firstRef: rw, firstRef + 1: ro}[ref]
			if src == nil || !bytes.Equal(local, src[offset:int(offset)+int(length)]) {
				t.Fatalf("read returned the wrong bytes")
			}
		}
		if st != xenif.GNTSTOkay && !toGuest && !bytes.Equal(local, bytes.Repeat([]byte{0x5a}, int(length))) {
			t.Fatalf("failed read modified the local buffer")
		}
	})
}
