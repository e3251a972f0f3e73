package stats

import (
	"testing"

	"github.com/govscsi/govscsi/backend/scsi"
)

// BenchmarkExecuteRaw and BenchmarkExecuteCounted show what counting adds
// to each command (two clock reads, a few atomic adds).
func BenchmarkExecuteRaw(b *testing.B) {
	l := scsi.NewNull()
	cmd := &scsi.Command{CDB: []byte{0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0}, Dir: scsi.DirFromDevice, Data: make([]byte, 4096)}
	var res scsi.Result
	b.ReportAllocs()
	for b.Loop() {
		l.Execute(cmd, &res)
	}
}

func BenchmarkExecuteCounted(b *testing.B) {
	l := NewRegistry().Wrap(Meta{}, scsi.NewNull())
	cmd := &scsi.Command{CDB: []byte{0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0}, Dir: scsi.DirFromDevice, Data: make([]byte, 4096)}
	var res scsi.Result
	b.ReportAllocs()
	for b.Loop() {
		l.Execute(cmd, &res)
	}
}

func BenchmarkExecuteCountedParallel(b *testing.B) {
	l := NewRegistry().Wrap(Meta{}, scsi.NewNull())
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		cmd := &scsi.Command{CDB: []byte{0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0}, Dir: scsi.DirFromDevice, Data: make([]byte, 4096)}
		var res scsi.Result
		for pb.Next() {
			l.Execute(cmd, &res)
		}
	})
}
