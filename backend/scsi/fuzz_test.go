package scsi

import (
	"reflect"
	"testing"

	"github.com/govscsi/govscsi/backend/store"
)

// FuzzExecute throws arbitrary CDBs, directions and data lengths at a small
// RAM disk with every feature on: Execute must never panic and must always
// return a valid Result (checkInvariants).
func FuzzExecute(f *testing.F) {
	seeds := [][]byte{
		cdb6(OpRead6, 0, 0), cdb6(OpWrite6, 10, 1), cdb10(OpRead10, 0x08, 100, 8), cdb10(OpWrite10, 0x08, 255, 1),
		cdb12(OpRead12, 0, 0, 1), cdb16(OpRead16, 0, 1<<64-1, 1), cdb16(OpWrite16, 0x08, 0, 1),
		cdb10(OpWriteSame10, 0x08, 0, 4), cdb16(OpWriteSame16, 0x09, 0, 4), cdb10(OpUnmap, 0, 0, 24),
		cdb10(OpVerify10, 0x02, 0, 1), cdb16(OpVerify16, 0x06, 0, 3), cdb10(OpSyncCache10, 0, 0, 0),
		cdb10(OpPreFetch10, 0, 0, 1), inquiry(false, 0, 96), inquiry(true, 0x83, 255), inquiry(true, 0xB0, 64),
		rc16(32), {OpReadCapacity10, 0, 0, 0, 0, 0, 0, 0, 0, 0}, {OpModeSense6, 0, 0x3F, 0, 255, 0},
		{OpModeSense10, 0x10, 0x08, 0, 0, 0, 0, 1, 0, 0}, {OpModeSelect6, 0x10, 0, 0, 24, 0},
		{OpModeSelect10, 0x10, 0, 0, 0, 0, 0, 0, 28, 0}, reportLUNsCDB(0, 64), rsoc(0x80, 0, 0, 4096),
		rsoc(2, OpServiceActionIn16, SAReadCapacity16, 64), {OpRequestSense, 0, 0, 0, 18, 0},
		{OpTestUnitReady, 0, 0, 0, 0, 0}, {OpStartStopUnit, 0, 0, 0, 1, 0}, {OpPersistentResOut, 0},
		caw(0, 3, 1), caw(0x08, 1<<64-1, 1), cdb10(OpWriteVerify10, 0x02, 4, 2), cdb16(OpWriteVerify16, 0, 60, 4),
		getLBAStatus(0, 64), getLBAStatus(63, 24), {OpMaintenanceIn, 0x20 | SAReportTargetPGs, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0},
		{OpLogSense, 0, 0x40, 0xFF, 0, 0, 0, 0, 255, 0}, {OpLogSense, 0, 0x6F, 0, 0, 0, 1, 0, 64, 0},
		{OpSeek6, 0, 0, 63, 0, 0}, cdb10(OpSeek10, 0, 64, 0), {OpModeSense6, 0, 0xC1, 0, 255, 0},
	}
	for i, s := range seeds {
		f.Add(s, uint8(i%4), []byte{byte(i), 1, 2, 3}, uint16(512*(i%5)))
	}
	// Well-formed parameter lists, so the fuzzer starts inside the parsers.
	unmap := []byte{0, 22, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 8, 0, 0, 0, 0}
	f.Add(cdb10(OpUnmap, 0, 0, 24), uint8(DirToDevice), unmap, uint16(0))
	modeSel := []byte{0, 0, 0, 8, 0, 0, 0, 0x40, 0, 0, 0x02, 0, 0x08, 0x12, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	f.Add([]byte{OpModeSelect6, 0x10, 0, 0, byte(len(modeSel)), 0}, uint8(DirToDevice), modeSel, uint16(0))
	r, err := store.NewRAM(64*512, store.RAMOptions{Limit: 16 << 10})
	if err != nil {
		f.Fatal(err)
	}
	d := NewDisk(r, DiskOptions{Discard: true, WriteCache: true, ReportLUNs: func() []uint64 { return []uint64{0, 3} }}).(*Disk)
	ro := NewDisk(r, DiskOptions{ReadOnly: true})
	f.Fuzz(func(t *testing.T, cdb []byte, dir uint8, payload []byte, extra uint16) {
		if len(cdb) > 16 {
			cdb = cdb[:16] // the datapath never passes longer CDBs
		}
		data := make([]byte, len(payload)+int(extra)%(MaxTransferBytes+4096))
		copy(data, payload)
		cmd := &Command{CDB: append([]byte(nil), cdb...), Dir: Direction(dir % 5), Data: data}
		for _, l := range []LUN{d, ro} {
			var res Result
			l.Execute(cmd, &res)
			checkInvariants(t, cdb, data, &res)
		}
		if len(payload) > 0 && payload[0] == 0xEE {
			d.Reset()
		}
	})
}

func benchRead(b *testing.B, l LUN, blocks uint16, bs int) {
	data := make([]byte, int(blocks)*bs)
	cmd := &Command{CDB: cdb10(OpRead10, 0, 0, blocks), Dir: DirFromDevice, Data: data}
	var res Result
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cmd.CDB[5] = byte(i) // walk over 256 different 4 KiB-aligned offsets
		l.Execute(cmd, &res)
		if res.Status != 0 {
			b.Fatalf("status %#x", res.Status)
		}
	}
}

// BenchmarkRead10_4K: READ(10) of 4 KiB from a RAM disk (allocs/op must be 0).
func BenchmarkRead10_4K(b *testing.B) {
	r, _ := store.NewRAM(64<<20, store.RAMOptions{})
	d := NewDisk(r, DiskOptions{})
	var res Result
	d.Execute(&Command{CDB: cdb10(OpWrite10, 0, 0, 2048), Dir: DirToDevice, Data: make([]byte, 1<<20)}, &res)
	benchRead(b, d, 8, 512)
}

// BenchmarkWrite10_4K: WRITE(10) of 4 KiB to a RAM disk with the write cache on.
func BenchmarkWrite10_4K(b *testing.B) {
	r, _ := store.NewRAM(64<<20, store.RAMOptions{})
	d := NewDisk(r, DiskOptions{WriteCache: true})
	cmd := &Command{CDB: cdb10(OpWrite10, 0, 0, 8), Dir: DirToDevice, Data: make([]byte, 4096)}
	var res Result
	b.SetBytes(4096)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		cmd.CDB[5] = byte(i)
		d.Execute(cmd, &res)
	}
}

// BenchmarkRead10_512K: the largest transfer one request can carry.
func BenchmarkRead10_512K(b *testing.B) {
	r, _ := store.NewRAM(64<<20, store.RAMOptions{})
	d := NewDisk(r, DiskOptions{})
	benchRead(b, d, 1024, 512)
}

func BenchmarkNull(b *testing.B) { benchRead(b, NewNull(), 8, 512) }

// BenchmarkInquiryVPD83: a probe, for scale (allocates its response).
func BenchmarkInquiryVPD83(b *testing.B) {
	r, _ := store.NewRAM(1<<20, store.RAMOptions{})
	d := NewDisk(r, DiskOptions{})
	cmd := &Command{CDB: inquiry(true, 0x83, 255), Dir: DirFromDevice, Data: make([]byte, 255)}
	var res Result
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		d.Execute(cmd, &res)
	}
}

// TestReadWritePathAllocatesNothing pins the benchmark's 0 allocs/op.
func TestReadWritePathAllocatesNothing(t *testing.T) {
	r, _ := store.NewRAM(1<<20, store.RAMOptions{})
	d := NewDisk(r, DiskOptions{WriteCache: true})
	w := &Command{CDB: cdb10(OpWrite10, 0x08, 0, 8), Dir: DirToDevice, Data: make([]byte, 4096)}
	rd := &Command{CDB: cdb10(OpRead10, 0, 0, 8), Dir: DirFromDevice, Data: make([]byte, 4096)}
	var res Result
	d.Execute(w, &res) // allocate the pages once
	if n := testing.AllocsPerRun(100, func() { d.Execute(w, &res); d.Execute(rd, &res) }); n != 0 {
		t.Fatalf("READ/WRITE(10) allocate %v times per command pair", n)
	}
}

// FuzzPersistentReserve drives the reservation commands' CDB and
// parameter list parsers from three nexuses of one unit with arbitrary
// bytes: every answer is a valid Result, and after every command the
// unit's state is one a unit could be created from (every rule of
// stateFrom holds) and is what was saved.
func FuzzPersistentReserve(f *testing.F) {
	reg := func(n byte, key, sa uint64, flags byte) []byte {
		return append([]byte{n, OpPersistentResOut, proRegister, 0, 24}, prOutParams(key, sa, flags)...)
	}
	f.Add(append(reg(0, 0, 0xA, 1), reg(1, 0, 0xB, 0)...))
	f.Add(append(append(reg(0, 0, 0xA, 0), 0, OpPersistentResOut, proReserve, prWriteExclusive, 24), prOutParams(0xA, 0, 0)...))
	f.Add(append(append(reg(1, 0, 0xB, 4), 1, OpPersistentResOut, proPreemptAbort, prExclusiveAccessAll, 24), prOutParams(0xB, 0, 0)...))
	f.Add([]byte{2, OpPersistentResIn, 3, 0, 255, 0, OpReserve6, 0, 0, 0, 1, OpRelease10, 0, 0, 0})
	f.Fuzz(func(t *testing.T, prog []byte) {
		r, err := store.NewRAM(64*512, store.RAMOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pr := &memPR{}
		unit, err := NewLogicalUnit(LogicalUnitOptions{PR: pr})
		if err != nil {
			t.Fatal(err)
		}
		var disks [3]*Disk
		for i := range disks {
			disks[i] = newDisk(keepOpen{r}, DiskOptions{Unit: unit, Initiator: string(rune('A' + i))})
		}
		// program: nexus, opcode, b1, b2, plen/alloc, then plen bytes of data
		for len(prog) >= 5 && len(prog) < 4096 {
			n, op, b1, b2, l := int(prog[0]%3), prog[1], prog[2], prog[3], int(prog[4])
			prog = prog[5:]
			var cmd Command
			switch op % 6 {
			case 0, 1:
				data := prog[:min(l, len(prog))]
				prog = prog[len(data):]
				cmd = Command{CDB: prOutCDB(b1, b2, uint32(l)), Dir: DirToDevice, Data: append([]byte(nil), data...)}
			case 2:
				cmd = Command{CDB: []byte{OpPersistentResIn, b1, 0, 0, 0, 0, 0, 0, byte(l), 0}, Dir: DirFromDevice, Data: make([]byte, l)}
			case 3:
				cmd = Command{CDB: []byte{[]byte{OpReserve6, OpRelease6}[b1&1], b2, 0, 0, 0, 0}}
			case 4:
				cmd = Command{CDB: []byte{[]byte{OpReserve10, OpRelease10}[b1&1], b2, 0, 0, 0, 0, 0, 0, 0, 0}}
			case 5:
				if b1&1 == 0 {
					disks[n].Reset()
					continue
				}
				cmd = Command{CDB: cdb10(OpWrite10, 0, uint32(b2%64), 1), Dir: DirToDevice, Data: make([]byte, 512)}
			}
			var res Result
			disks[n].Execute(&cmd, &res)
			checkInvariants(t, cmd.CDB, cmd.Data, &res)
			st := unit.State()
			if _, err := stateFrom(st); err != nil {
				t.Fatalf("after % x from %d: the unit's state breaks a rule: %v (%+v)", cmd.CDB, n, err, st)
			}
			if pr.ok && !reflect.DeepEqual(st, pr.st) {
				t.Fatalf("saved %+v, unit %+v", pr.st, st)
			}
		}
	})
}
