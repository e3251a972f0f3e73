package datapath

import (
	"runtime"
	"testing"

	"github.com/govscsi/govscsi/backend/scsi"
	"github.com/govscsi/govscsi/backend/vscsiif"
)

// bufBytes sums the data buffers the connection's slots hold.
func bufBytes(c *Conn) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, s := range c.slots {
		n += cap(s.buf)
	}
	return n
}

// TestDataMemoryBounded: whatever max_segments allows, a request's data
// buffer is bounded by the largest transfer any LUN accepts
// (scsi.MaxTransferBytes, 512 KiB). A request offering more is refused
// with CHECK CONDITION / ILLEGAL REQUEST / INVALID FIELD IN CDB before
// anything is allocated for it. (At max_segments 13312 each indirect
// request made its slot allocate 52 MiB, and kept it: the campaign had 16
// of them pin 832 MiB, up to 1.7 GiB per vhost.)
func TestDataMemoryBounded(t *testing.T) {
	for _, inline := range inlineModes {
		t.Run(modeName(inline), func(t *testing.T) {
			f := newTestFront(t)
			f.table.Set(lun0, Entry{LUN: nullLUN{}, Inline: inline})
			cfg := f.config(2)
			cfg.MaxSegments = maxMaxSegments
			c, err := Start(cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.stop(c) })
			if c.MaxSegments() != maxMaxSegments {
				t.Fatalf("MaxSegments %d", c.MaxSegments())
			}
			_, data := f.dataPage(0, false)
			// One indirect page of 512 entries, each a whole data page
			// (the same one: grant refs may repeat).
			ind, indRef := f.dataPage(0, true)
			for i := 0; i < vscsiif.SGPerPage; i++ {
				seg(data, 0, vscsiif.PageSize).Encode(ind[i*vscsiif.SegmentSize:])
			}
			// request with pages indirect pages: pages*512 full segments.
			big := func(rqid uint16, pages int) vscsiif.Request {
				var segs []vscsiif.Segment
				for i := 0; i < pages; i++ {
					segs = append(segs, seg(indRef, 0, vscsiif.PageSize))
				}
				r := rw(rqid, opRead10, vscsiif.DMAFromDevice, 0, 0, segs...)
				r.NrSegments = vscsiif.SGGrant | uint8(pages)
				return r
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			const n = 4
			var reqs []vscsiif.Request
			for i := 0; i < n; i++ {
				reqs = append(reqs, big(uint16(10+i), vscsiif.SGTableSize)) // 13312 pages: 52 MiB
			}
			f.send(reqs...)
			for _, r := range f.recv(n) {
				if r.Rslt != vscsiif.Rslt(vscsiif.HostOK, scsi.StatusCheckCondition) || r.SenseLen < 14 ||
					r.Sense[2]&0x0f != scsi.KeyIllegalRequest || r.Sense[12] != 0x24 {
					t.Errorf("rqid %d: rslt %#x sense %x, want CHECK CONDITION ILLEGAL REQUEST 24/00", r.Rqid, r.Rslt, r.Sense[:r.SenseLen])
				}
			}
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			held := bufBytes(c)
			t.Logf("%d requests of 52 MiB: %d bytes allocated, %d held in data buffers", n, alloc, held)
			if held > len(c.slots)*scsi.MaxTransferBytes {
				t.Errorf("data buffers hold %d bytes, more than %d slots x %d", held, len(c.slots), scsi.MaxTransferBytes)
			}
			if alloc > 8<<20 {
				t.Errorf("%d bytes allocated for refused requests", alloc)
			}
			// The largest transfer a LUN takes still works: 128 full pages,
			// and 13312 tiny segments of 32 bytes (416 KiB).
			ok := rw(20, opRead10, vscsiif.DMAFromDevice, 0, 0, seg(indRef, 0, 128*vscsiif.SegmentSize))
			ok.NrSegments = vscsiif.SGGrant | 1
			// Its own data page: two reads in flight into one guest
			// page would race in the fake's memory.
			_, data2 := f.dataPage(0, false)
			tiny, tinyRef := f.dataPage(0, true)
			for i := 0; i < vscsiif.SGPerPage; i++ {
				seg(data2, 0, 32).Encode(tiny[i*vscsiif.SegmentSize:])
			}
			var tsegs []vscsiif.Segment
			for i := 0; i < vscsiif.SGTableSize; i++ {
				tsegs = append(tsegs, seg(tinyRef, 0, vscsiif.PageSize))
			}
			many := rw(21, opRead10, vscsiif.DMAFromDevice, 0, 0, tsegs...)
			many.NrSegments = vscsiif.SGGrant | vscsiif.SGTableSize
			f.send(ok, many)
			for _, r := range f.recv(2) {
				expectRslt(t, r, r.Rqid, rsltGood)
			}
			if held := bufBytes(c); held > len(c.slots)*scsi.MaxTransferBytes {
				t.Errorf("data buffers hold %d bytes", held)
			}
		})
	}
}
