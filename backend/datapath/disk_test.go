package datapath

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/govscsi/govscsi/backend/scsi"
	"github.com/govscsi/govscsi/backend/store"
	"github.com/govscsi/govscsi/backend/vscsiif"
)

// TestRealDiskEmulation drives backend/scsi's real disk emulation over a
// RAM store through the whole data path, in both execution modes: INQUIRY,
// READ CAPACITY(10), a 128-segment (512 KiB, indirect) WRITE(10) read back
// through direct segments in 8 commands, an unknown opcode (CHECK CONDITION
// with valid sense) and a LUN RESET (unit attention on the next command).
func TestRealDiskEmulation(t *testing.T) {
	for _, inline := range inlineModes {
		t.Run(modeName(inline), func(t *testing.T) {
			f := newTestFront(t)
			st, err := store.NewRAM(8<<20, store.RAMOptions{})
			if err != nil {
				t.Fatal(err)
			}
			disk := scsi.NewDisk(st, scsi.DiskOptions{ID: "datapath-test"})
			defer disk.Close()
			f.table.Set(lun0, Entry{LUN: disk, Inline: inline})
			f.start(4)

			page, ref := f.dataPage(0, false)
			inq := vscsiif.Request{Rqid: 1, Act: vscsiif.ActSCSICDB, CmdLen: 6, Direction: vscsiif.DMAFromDevice, NrSegments: 1}
			inq.CDB[0], inq.CDB[4] = opInquiry, 96
			inq.Seg[0] = seg(ref, 0, 96)
			f.send(inq)
			r := f.recv(1)[0]
			expectRslt(t, r, 1, rsltGood)
			if page[0] != 0 || !bytes.HasPrefix(page[8:], []byte("GOVSCSI")) || r.Residual >= 96 {
				t.Fatalf("INQUIRY: % x residual %d", page[:16], r.Residual)
			}

			cap10 := vscsiif.Request{Rqid: 2, Act: vscsiif.ActSCSICDB, CmdLen: 10, Direction: vscsiif.DMAFromDevice, NrSegments: 1}
			cap10.CDB[0] = 0x25
			cap10.Seg[0] = seg(ref, 0, 8)
			f.send(cap10)
			expectRslt(t, f.recv(1)[0], 2, rsltGood)
			if last, bs := binary.BigEndian.Uint32(page), binary.BigEndian.Uint32(page[4:]); last != 8<<20/512-1 || bs != 512 {
				t.Fatalf("READ CAPACITY: last LBA %d block size %d", last, bs)
			}

			// 128 pages through one indirect piece.
			sgl, sglRef := f.dataPage(0, true)
			var want []byte
			for i := 0; i < 128; i++ {
				p, ref := f.dataPage(byte(i+1), true)
				want = append(want, p...)
				seg(ref, 0, 4096).Encode(sgl[i*8:])
			}
			w := rw(3, opWrite10, vscsiif.DMAToDevice, 100, 1024, seg(sglRef, 0, 128*8))
			w.NrSegments = vscsiif.SGGrant | 1
			f.send(w)
			expectRslt(t, f.recv(1)[0], 3, rsltGood)
			var got []byte // read back in 8 direct commands of 16 pages
			for part := 0; part < 8; part++ {
				var segs []vscsiif.Segment
				var pages [][]byte
				for i := 0; i < 16; i++ {
					p, ref := f.dataPage(0, false)
					pages = append(pages, p)
					segs = append(segs, seg(ref, 0, 4096))
				}
				f.send(rw(4, opRead10, vscsiif.DMAFromDevice, uint32(100+part*128), 128, segs...))
				expectRslt(t, f.recv(1)[0], 4, rsltGood)
				for _, p := range pages {
					got = append(got, p...)
				}
			}
			if !bytes.Equal(got, want) {
				t.Fatal("512 KiB read back differs")
			}

			bad := vscsiif.Request{Rqid: 5, Act: vscsiif.ActSCSICDB, CmdLen: 6, Direction: vscsiif.DMANone}
			bad.CDB[0] = 0xc7 // vendor specific: unsupported
			f.send(bad)
			r = f.recv(1)[0]
			expectRslt(t, r, 5, vscsiif.Rslt(0, scsi.StatusCheckCondition))
			if r.SenseLen < 18 || r.Sense[0] != 0x70 || r.Sense[2]&0xf != 5 {
				t.Fatalf("sense %d % x", r.SenseLen, r.Sense[:18])
			}

			f.send(vscsiif.Request{Rqid: 6, Act: vscsiif.ActSCSIReset})
			expectRslt(t, f.recv(1)[0], 6, vscsiif.RsltResetSuccess)
			f.send(rw(7, opTUR, vscsiif.DMANone, 0, 0))
			r = f.recv(1)[0]
			expectRslt(t, r, 7, vscsiif.Rslt(0, scsi.StatusCheckCondition))
			if r.Sense[2]&0xf != 6 || r.Sense[12] != 0x29 {
				t.Fatalf("after reset: sense % x, want UNIT ATTENTION 29/xx", r.Sense[:18])
			}
		})
	}
}
