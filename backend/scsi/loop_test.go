package scsi

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govscsi/govscsi/backend/store"
)

// TestDiskOverLoopDevice runs the emulated disk on a real block device (a
// loop device over a sparse file, opened O_DIRECT): geometry from the
// kernel, SCSI reads and writes through unaligned Go buffers (bounced),
// WRITE SAME zeroing via BLKZEROOUT and UNMAP via BLKDISCARD.
func TestDiskOverLoopDevice(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loop devices need root")
	}
	for _, sector := range []string{"512", "4096"} {
		t.Run(sector, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "backing")
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(p, 32<<20); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("losetup", "-f", "--show", "--sector-size", sector, p).CombinedOutput()
			if err != nil {
				t.Skipf("loop devices unavailable in this sandbox: %v: %s", err, out)
			}
			dev := strings.TrimSpace(string(out))
			t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
			bs, err := store.OpenBlock(dev, store.BlockOptions{Direct: true})
			if err != nil {
				t.Fatal(err)
			}
			opts := DiskOptions{Discard: true, WriteCache: true, ID: dev}
			if err := opts.Validate(bs); err != nil {
				t.Fatal(err)
			}
			d := NewDisk(bs, opts).(*Disk)
			defer d.Close()
			lbs := d.BlockSize()
			if sector == "4096" && lbs != 4096 || d.Capacity() != uint64(32<<20/lbs) {
				t.Fatalf("geometry: lbs %d capacity %d", lbs, d.Capacity())
			}
			buf := make([]byte, 32)
			wantGood(t, run(t, d, DirFromDevice, buf, rc16(32)...))
			if binary.BigEndian.Uint32(buf[8:]) != uint32(lbs) || buf[14]&0x80 == 0 || buf[14]&0x40 != 0 {
				t.Fatalf("RC16 over a loop device: % x (want LBPME, no LBPRZ: BLKDISCARD promises no zeros)", buf)
			}
			blocks := int(d.Capacity())
			shadow := make([]byte, blocks*lbs)
			rng := rand.New(rand.NewPCG(3, uint64(lbs)))
			for i := 0; i < 100; i++ {
				n := 1 + rng.IntN(32)
				lba := rng.IntN(blocks - n)
				raw := make([]byte, n*lbs+1)
				data := raw[1:] // deliberately misaligned for O_DIRECT
				for j := range data {
					data[j] = byte(rng.Uint32())
				}
				wantGood(t, run(t, d, DirToDevice, data, cdb16(OpWrite16, fuaBit(i%2 == 0), uint64(lba), uint32(n))...))
				copy(shadow[lba*lbs:], data)
				got := make([]byte, n*lbs+3)[3:]
				wantGood(t, run(t, d, DirFromDevice, got, cdb16(OpRead16, 0, uint64(lba), uint32(n))...))
				if !bytes.Equal(got, shadow[lba*lbs:(lba+n)*lbs]) {
					t.Fatalf("iteration %d: read-back differs", i)
				}
			}
			// WRITE SAME(16) UNMAP with zeros: the store cannot promise zeros
			// from a discard, so the disk zeroes (BLKZEROOUT) instead.
			wantGood(t, run(t, d, DirToDevice, make([]byte, lbs), cdb16(OpWriteSame16, 0x08, 0, 64)...))
			got := make([]byte, 64*lbs)
			wantGood(t, run(t, d, DirFromDevice, got, cdb16(OpRead16, 0, 0, 64)...))
			if !bytes.Equal(got, make([]byte, 64*lbs)) {
				t.Fatal("WRITE SAME UNMAP on a block device did not zero")
			}
			param := make([]byte, 24)
			binary.BigEndian.PutUint16(param[0:], 22)
			binary.BigEndian.PutUint16(param[2:], 16)
			binary.BigEndian.PutUint64(param[8:], 128)
			binary.BigEndian.PutUint32(param[16:], 256)
			wantGood(t, run(t, d, DirToDevice, param, cdb10(OpUnmap, 0, 0, 24)...))
			wantGood(t, run(t, d, DirNone, nil, cdb10(OpSyncCache10, 0, 0, 0)...))
		})
	}
}
