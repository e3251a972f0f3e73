package sgio

import (
	"testing"

	"github.com/govscsi/govscsi/backend/scsi"
	"github.com/govscsi/govscsi/backend/vscsiif"
)

// FuzzPassThrough: arbitrary CDBs, directions and buffer sizes, and arbitrary
// completions from the (fake) kernel. Execute must not panic, must never let
// a refused CDB reach the device, and must return a coherent Result.
func FuzzPassThrough(f *testing.F) {
	f.Add([]byte{0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0}, uint8(2), uint16(4096), uint8(0), uint16(0), uint16(0), int32(0), []byte{}, false, uint8(0))
	f.Add([]byte{0x3B, 5}, uint8(1), uint16(512), uint8(0), uint16(0), uint16(0), int32(0), []byte{}, false, uint8(0))
	f.Add([]byte{0x12, 1, 0x83, 0, 255, 0}, uint8(2), uint16(255), uint8(2), uint16(0), uint16(8), int32(100),
		[]byte{0x70, 0, 5, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0, 0, 0, 0, 0}, false, uint8(TypeTape))
	f.Add([]byte{0xA0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0}, uint8(2), uint16(256), uint8(0), uint16(7), uint16(6), int32(-5), []byte{}, true, uint8(TypeChanger))
	f.Add([]byte{0xA5, 0, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0}, uint8(0), uint16(0), uint8(0), uint16(0), uint16(0), int32(0), []byte{}, false, uint8(TypeChanger))
	f.Add([]byte{0x10, 0, 0, 0, 1, 0}, uint8(0), uint16(0), uint8(0), uint16(0), uint16(0), int32(0), []byte{}, false, uint8(TypeTape))
	f.Fuzz(func(t *testing.T, cdb []byte, dir uint8, n uint16, status uint8, host, driver uint16, resid int32, sense []byte, raw bool, ptype uint8) {
		ptype &= 0x1F
		fk := &fakeDev{t: t, status: status, host: host, driver: driver, resid: 0, sense: sense}
		if len(fk.sense) > vscsiif.SenseBufferSize {
			fk.sense = fk.sense[:vscsiif.SenseBufferSize]
		}
		d := newDevice("fuzz", nil, 3, Options{Raw: raw, ReportLUNs: func() []uint64 { return []uint64{1} }}, fk.ioctl, ptype)
		// The fake fills FROM_DEV buffers up to len-resid: keep that sane
		// for the fake, and test a hostile resid through translate below.
		data := make([]byte, n)
		var res scsi.Result
		d.Execute(&scsi.Command{CDB: cdb, Dir: scsi.Direction(dir % 5), Data: data}, &res)
		if res.DataLen < 0 || res.DataLen > len(data) {
			t.Fatalf("DataLen %d of %d", res.DataLen, len(data))
		}
		if res.Host > 20 {
			t.Fatalf("host byte %d outside XEN_VSCSIIF_RSLT_HOST_*", res.Host)
		}
		if len(res.Sense) > vscsiif.SenseBufferSize {
			t.Fatalf("sense of %d bytes", len(res.Sense))
		}
		if !raw && len(cdb) > 0 && len(cdb) <= 16 && fk.calls > 0 && classify(policyFor(ptype), cdb, false) != pass {
			t.Fatalf("refused CDB % x reached the device", cdb)
		}
		// A kernel reporting a nonsense residual cannot push DataLen out of range.
		c := &call{}
		c.hdr.Resid, c.hdr.MxSbLen, c.hdr.SbLenWr = resid, vscsiif.SenseBufferSize, uint8(len(fk.sense))
		var r2 scsi.Result
		d.translate(c, &scsi.Command{Dir: scsi.DirFromDevice}, len(data), &r2)
		if r2.DataLen < 0 || r2.DataLen > len(data) {
			t.Fatalf("resid %d: DataLen %d of %d", resid, r2.DataLen, len(data))
		}
	})
}
