//go:build linux && cgo

package gnttab

import (
	"encoding/binary"
	"testing"

	"github.com/govscsi/govscsi/libxlgo/xenif"
)

// FuzzGrantCopyEncoding: whatever ref, offset and length a frontend puts in a
// request, the segments handed to the kernel never cross a foreign page,
// never name a reserved domain, and describe exactly the op they come from.
func FuzzGrantCopyEncoding(f *testing.F) {
	f.Add(uint32(8), uint32(1), uint16(0), uint16(4096), true, uint16(512))
	f.Add(uint32(8), uint32(0x7ff0), uint16(0), uint16(1), false, uint16(0))
	f.Add(uint32(1<<31), uint32(1<<20), uint16(4095), uint16(2), true, uint16(4095))
	f.Add(uint32(0), uint32(0), uint16(65535), uint16(0), false, uint16(65535))
	f.Fuzz(func(t *testing.T, ref, domid uint32, offset, length uint16, toGuest bool, offset2 uint16) {
		buf := make([]byte, 2*int(length))
		ops := []xenif.GrantCopyOp{
			{Ref: ref, Domid: domid, Offset: offset, ToGuest: toGuest, Local: buf[:length]},
			{Ref: ref + 1, Domid: domid, Offset: offset2, ToGuest: !toGuest, Local: buf[length:]},
		}
		var b copyBuf
		n := b.fill(ops)
		b.pin.Unpin()
		submitted := map[int]bool{}
		for j := 0; j < n; j++ {
			i := b.idx[j]
			submitted[i] = true
			op, s := ops[i], b.segs[j]
			foreign := s.source[:]
			want := 1 // GNTCOPY_source_gref
			if op.ToGuest {
				foreign, want = s.dest[:], 2
			}
			ne := binary.NativeEndian
			if int(s.flags) != want || int(s.len) != len(op.Local) || len(op.Local) == 0 {
				t.Fatalf("op %d: flags %d len %d for %+v", i, s.flags, s.len, op)
			}
			if r, o, d := ne.Uint32(foreign), ne.Uint16(foreign[4:]), ne.Uint16(foreign[6:]); r != op.Ref || o != op.Offset || uint32(d) != op.Domid {
				t.Fatalf("op %d: foreign side ref %d off %d dom %d for %+v", i, r, o, d, op)
			}
			if int(op.Offset)+len(op.Local) > xenif.PageSize || op.Domid >= xenif.DomidFirstReserved {
				t.Fatalf("op %d submitted though invalid: %+v", i, op)
			}
		}
		for i, op := range ops {
			if !submitted[i] && len(op.Local) > 0 && op.Status == xenif.GNTSTOkay {
				t.Fatalf("op %d left out but reported okay: %+v", i, op)
			}
		}
	})
}
