package store

import (
	"os"
	"path/filepath"
	"testing"
)

// benchStore reads and writes 4 KiB at rotating offsets over the first 16 MiB.
func benchStore(b *testing.B, s Store, write, fua bool) {
	buf := AlignedBuffer(4096)
	b.SetBytes(4096)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		off := int64(i%4096) * 4096
		var err error
		switch {
		case write && fua:
			_, err = WriteFUA(s, buf, off)
		case write:
			_, err = s.WriteAt(buf, off)
		default:
			_, err = s.ReadAt(buf, off)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRAMRead4K(b *testing.B) {
	r, _ := NewRAM(16<<20, RAMOptions{})
	page := make([]byte, 4096)
	for off := int64(0); off < 16<<20; off += 4096 {
		r.WriteAt(page, off) // allocate every page: measure copies, not holes
	}
	benchStore(b, r, false, false)
}

func BenchmarkRAMWrite4K(b *testing.B) {
	r, _ := NewRAM(16<<20, RAMOptions{})
	defer r.Close()
	benchStore(b, r, true, false)
}

// BenchmarkRAMFile*: a RAM disk kept in a file (tmpfs when the host has
// /dev/shm), as the daemon runs them so that they survive a restart.
func benchRAMFile(b *testing.B, write bool) {
	dir := b.TempDir()
	if d, err := os.MkdirTemp("/dev/shm", "govscsi-bench-"); err == nil {
		dir = d
		defer os.RemoveAll(d)
	}
	r, _, err := OpenRAMFile(filepath.Join(dir, "b.lun"), 16<<20, "bench", RAMOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	page := make([]byte, 4096)
	for off := int64(0); off < 16<<20; off += 4096 {
		r.WriteAt(page, off)
	}
	benchStore(b, r, write, false)
}

func BenchmarkRAMFileRead4K(b *testing.B)  { benchRAMFile(b, false) }
func BenchmarkRAMFileWrite4K(b *testing.B) { benchRAMFile(b, true) }

func BenchmarkFileRead4K(b *testing.B) {
	f, err := OpenFile(newTempFile(b, 16<<20), FileOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	benchStore(b, f, false, false)
}

func BenchmarkFileWrite4K(b *testing.B) {
	f, err := OpenFile(newTempFile(b, 16<<20), FileOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	benchStore(b, f, true, false)
}

func BenchmarkFileWriteFUA4K(b *testing.B) {
	f, err := OpenFile(newTempFile(b, 16<<20), FileOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	benchStore(b, f, true, true)
}

func BenchmarkLoopDirectRead4K(b *testing.B) {
	dev := loopDevice(b, 16<<20, 0)
	s, err := OpenBlock(dev, BlockOptions{Direct: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	benchStore(b, s, false, false)
}

func BenchmarkLoopBufferedRead4K(b *testing.B) {
	dev := loopDevice(b, 16<<20, 0)
	s, err := OpenBlock(dev, BlockOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	benchStore(b, s, false, false)
}
