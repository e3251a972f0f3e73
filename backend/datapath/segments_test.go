package datapath

import (
	"bytes"
	"testing"

	"github.com/govscsi/govscsi/backend/vscsiif"
)

// TestIndirectSegmentsWithOffsets: buffered ext4 writeback sends
// multi-segment requests whose data segments do not all start at offset 0
// nor span whole pages. Every byte must land at its place in the transfer
// (concatenation of the segments in order) and read back into a different
// layout; an off-by-one in the page/offset arithmetic shows up as a byte
// difference in the LUN's store.
func TestIndirectSegmentsWithOffsets(t *testing.T) {
	for _, inline := range inlineModes {
		t.Run(modeName(inline), func(t *testing.T) {
			f := newTestFront(t)
			lun := newMemLUN(256)
			f.table.Set(lun0, Entry{LUN: lun, Inline: inline})
			f.start(2)
			type piece struct {
				page     []byte
				ref      uint32
				off, len int
			}
			// layout: (offset, length) per data segment, 512-byte multiples
			// summing to whole blocks.
			send := func(rqid uint16, op, dir byte, lba uint32, layout [][2]int, fill func(k int, p []byte)) []piece {
				var ps []piece
				sgl := make([]byte, len(layout)*8)
				total := 0
				for i, l := range layout {
					p, ref := f.dataPage(0, dir == vscsiif.DMAToDevice)
					ps = append(ps, piece{p, ref, l[0], l[1]})
					if fill != nil {
						fill(total, p[l[0]:l[0]+l[1]])
					}
					seg(ref, uint16(l[0]), uint16(l[1])).Encode(sgl[i*8:])
					total += l[1]
				}
				ind, iref := f.dataPage(0, true)
				copy(ind[16:], sgl) // the list itself starts at an offset too
				r := rw(rqid, op, dir, lba, uint16(total/blockSize), seg(iref, 16, uint16(len(sgl))))
				r.NrSegments = vscsiif.SGGrant | 1
				f.send(r)
				expectRslt(t, f.recv(1)[0], rqid, rsltGood)
				return ps
			}
			byteAt := func(pos int) byte { return byte(pos*7 + pos/4096) }
			wl := [][2]int{{512, 3584}, {0, 4096}, {3584, 512}, {1024, 1024}, {0, 512}, {2048, 2048}}
			total := 0
			for _, l := range wl {
				total += l[1]
			}
			send(1, opWrite10, vscsiif.DMAToDevice, 5, wl, func(k int, p []byte) {
				for j := range p {
					p[j] = byteAt(k + j)
				}
			})
			want := make([]byte, total)
			for i := range want {
				want[i] = byteAt(i)
			}
			lun.mu.Lock()
			got := bytes.Clone(lun.data[5*blockSize : 5*blockSize+total])
			lun.mu.Unlock()
			if !bytes.Equal(got, want) {
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("store byte %d of the transfer = %#x, want %#x", i, got[i], want[i])
					}
				}
			}
			rl := [][2]int{{3072, 1024}, {0, 4096}, {512, 2560}, {0, 3584}, {1536, 512}}
			pieces := send(2, opRead10, vscsiif.DMAFromDevice, 5, rl, nil)
			pos := 0
			for i, p := range pieces {
				if !bytes.Equal(p.page[p.off:p.off+p.len], want[pos:pos+p.len]) {
					t.Fatalf("read segment %d (offset %d length %d) differs", i, p.off, p.len)
				}
				if bytes.ContainsFunc(p.page[:p.off], func(r rune) bool { return r != 0 }) ||
					bytes.ContainsFunc(p.page[p.off+p.len:], func(r rune) bool { return r != 0 }) {
					t.Fatalf("read segment %d wrote outside its range", i)
				}
				pos += p.len
			}
		})
	}
}
