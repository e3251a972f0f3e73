package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// exercise runs the behaviour every store shares: round trips at scattered
// offsets, bounds, and (when supported) discard reading back as zeros.
func exercise(t *testing.T, s Store) {
	t.Helper()
	lbs := int64(s.LogicalBlockSize())
	size := s.Size()
	rng := rand.New(rand.NewPCG(1, 2))
	shadow := make([]byte, min(size, 4<<20))
	limit := int64(len(shadow))
	for i := 0; i < 200; i++ {
		blocks := 1 + rng.Int64N(16)
		off := rng.Int64N(limit/lbs-blocks) * lbs
		buf := make([]byte, blocks*lbs)
		for j := range buf {
			buf[j] = byte(rng.Uint32())
		}
		var err error
		if i%3 == 0 {
			_, err = WriteFUA(s, buf, off)
		} else {
			_, err = s.WriteAt(buf, off)
		}
		if err != nil {
			t.Fatalf("write %d+%d: %v", off, len(buf), err)
		}
		copy(shadow[off:], buf)
	}
	got := make([]byte, len(shadow))
	if _, err := s.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, shadow) {
		t.Fatal("read-back differs from what was written")
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	// Bounds: the last block works, one past fails, negative fails.
	last := make([]byte, lbs)
	if _, err := s.ReadAt(last, size-lbs); err != nil {
		t.Fatalf("read last block: %v", err)
	}
	if _, err := s.ReadAt(last, size); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("read past end: err=%v, want ErrOutOfRange", err)
	}
	if _, err := s.WriteAt(last, size-lbs+1); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("write straddling end: err=%v, want ErrOutOfRange", err)
	}
	if _, err := s.ReadAt(last, -lbs); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("read at negative offset: err=%v", err)
	}
	if z, ok := s.(Zeroer); ok {
		off, n := 5*lbs, 9*lbs
		if err := z.ZeroRange(off, n); err != nil {
			t.Fatalf("zero range: %v", err)
		}
		if err := z.ZeroRange(size-lbs, 2*lbs); !errors.Is(err, ErrOutOfRange) {
			t.Fatalf("zero range past end: %v", err)
		}
		if _, err := s.ReadAt(got, 0); err != nil {
			t.Fatal(err)
		}
		clear(shadow[off : off+n])
		if !bytes.Equal(got, shadow) {
			t.Fatal("after ZeroRange: range not zero or neighbours damaged")
		}
	}
	d, ok := s.(Discarder)
	if !ok {
		return
	}
	if err := d.Discard(size, 2*lbs); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("discard past end: err=%v", err)
	}
	// Discard a range that starts and ends mid-page.
	off, n := 3*lbs, 40*lbs+lbs
	if err := d.Discard(off, n); err != nil {
		if errors.Is(err, ErrUnsupported) {
			t.Logf("discard unsupported here: %v", err)
			return
		}
		t.Fatalf("discard: %v", err)
	}
	if !d.DiscardZeroes() {
		return
	}
	if _, err := s.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	clear(shadow[off : off+n])
	if !bytes.Equal(got, shadow) {
		t.Fatal("after discard: range not zero or neighbours damaged")
	}
}

func TestRAM(t *testing.T) {
	r, err := NewRAM(8<<20, RAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	buf := make([]byte, 4096)
	if _, err := r.ReadAt(buf, 4096); err != nil || !bytes.Equal(buf, make([]byte, 4096)) {
		t.Fatalf("unwritten range must read as zeros (err %v)", err)
	}
	exercise(t, r)
}

func TestRAMLimitAndDiscardFreesPages(t *testing.T) {
	r, err := NewRAM(1<<20, RAMOptions{Limit: 3 * ramPageSize, LogicalBlockSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	page := bytes.Repeat([]byte{0xAB}, ramPageSize)
	for i := int64(0); i < 3; i++ {
		if _, err := r.WriteAt(page, i*ramPageSize*10); err != nil {
			t.Fatalf("page %d: %v", i, err)
		}
	}
	if _, err := r.WriteAt(page, 5*ramPageSize); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("4th page over a 3-page limit: err=%v, want ErrNoSpace", err)
	}
	if got := r.Allocated(); got != 3*ramPageSize {
		t.Fatalf("allocated %d after failed write, want %d", got, 3*ramPageSize)
	}
	if err := r.Discard(0, ramPageSize); err != nil {
		t.Fatal(err)
	}
	if got := r.Allocated(); got != 2*ramPageSize {
		t.Fatalf("discard of a whole page must free it: allocated %d", got)
	}
	if _, err := r.WriteAt(page, 5*ramPageSize); err != nil {
		t.Fatalf("write after freeing a page: %v", err)
	}
	if _, err := NewRAM(1000, RAMOptions{}); err == nil {
		t.Fatal("size not a block multiple must be rejected")
	}
	if _, err := NewRAM(4096, RAMOptions{LogicalBlockSize: 1000}); err == nil {
		t.Fatal("block size 1000 must be rejected")
	}
}

func newTempFile(t testing.TB, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFile(t *testing.T) {
	p := newTempFile(t, 8<<20+100) // the odd tail is not a whole block
	f, err := OpenFile(p, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Size() != 8<<20 {
		t.Fatalf("size %d, want rounded down to 8 MiB", f.Size())
	}
	exercise(t, f)
}

func TestFilePunchHoleDeallocates(t *testing.T) {
	p := newTempFile(t, 4<<20)
	f, err := OpenFile(p, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data := bytes.Repeat([]byte{1}, 2<<20)
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	before := allocatedBlocks(t, p)
	if err := f.Discard(0, 2<<20); err != nil {
		if errors.Is(err, ErrUnsupported) {
			t.Skipf("this filesystem cannot punch holes: %v", err)
		}
		t.Fatal(err)
	}
	after := allocatedBlocks(t, p)
	if after >= before {
		t.Fatalf("punch hole did not deallocate: %d -> %d 512-byte blocks", before, after)
	}
	if fi, _ := os.Stat(p); fi.Size() != 4<<20 {
		t.Fatalf("file size changed to %d (KEEP_SIZE)", fi.Size())
	}
}

func allocatedBlocks(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Blocks
}

func TestFileReadOnlyAndErrors(t *testing.T) {
	p := newTempFile(t, 1<<20)
	f, err := OpenFile(p, FileOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, 512), 0); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("write to read-only: %v", err)
	}
	if _, err := WriteFUA(f, make([]byte, 512), 0); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("FUA write to read-only: %v", err)
	}
	if err := f.Discard(0, 512); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("discard on read-only: %v", err)
	}
	if _, err := OpenFile(filepath.Join(t.TempDir(), "missing"), FileOptions{}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := OpenFile("/dev/null", FileOptions{}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("character device as file store: %v", err)
	}
	if _, err := OpenFile(newTempFile(t, 100), FileOptions{}); err == nil {
		t.Fatal("a file smaller than a block must be rejected")
	}
	f.Close()
	if _, err := f.ReadAt(make([]byte, 512), 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
}

func TestAlignedBuffer(t *testing.T) {
	for _, n := range []int{1, 512, 4096, 12345, MaxBounce} {
		b := AlignedBuffer(n)
		if len(b) != n || !IsAligned(b) {
			t.Fatalf("AlignedBuffer(%d): len %d aligned %v", n, len(b), IsAligned(b))
		}
	}
}

// loopDevice attaches a loop device to a fresh file; it skips (with the
// reason) where loop devices are not usable.
func loopDevice(t testing.TB, size int64, sectorSize int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loop devices need root")
	}
	if _, err := exec.LookPath("losetup"); err != nil {
		t.Skip("losetup not installed")
	}
	p := newTempFile(t, size)
	args := []string{"-f", "--show"}
	if sectorSize != 0 {
		args = append(args, "--sector-size", itoa(sectorSize))
	}
	out, err := exec.Command("losetup", append(args, p)...).CombinedOutput()
	if err != nil {
		t.Skipf("loop devices unavailable in this sandbox: losetup: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v: %s", dev, err, out)
		}
	})
	return dev
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func TestBlockDeviceLoop(t *testing.T) {
	for _, tc := range []struct {
		name   string
		sector int
		direct bool
	}{
		{"buffered-512", 0, false},
		{"direct-512", 0, true},
		{"direct-4096", 4096, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev := loopDevice(t, 16<<20, tc.sector)
			b, err := OpenBlock(dev, BlockOptions{Direct: tc.direct})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if b.Size() != 16<<20 {
				t.Fatalf("BLKGETSIZE64: %d", b.Size())
			}
			want := 512
			if tc.sector != 0 {
				want = tc.sector
			}
			if b.LogicalBlockSize() != want || b.PhysicalBlockSize() < want {
				t.Fatalf("block sizes %d/%d, want logical %d", b.LogicalBlockSize(), b.PhysicalBlockSize(), want)
			}
			exercise(t, b)
			if tc.direct {
				// Unaligned buffer: must bounce, not fail with EINVAL.
				raw := make([]byte, 2*want+1)
				un := raw[1 : 1+2*want]
				for i := range un {
					un[i] = byte(i * 7)
				}
				if _, err := b.WriteAt(un, int64(want)); err != nil {
					t.Fatalf("unaligned-buffer write: %v", err)
				}
				back := AlignedBuffer(2 * want)
				if _, err := b.ReadAt(back, int64(want)); err != nil || !bytes.Equal(back, un) {
					t.Fatalf("unaligned round trip: err %v equal %v", err, bytes.Equal(back, un))
				}
				if _, err := b.ReadAt(make([]byte, 100), 0); !errors.Is(err, syscall.EINVAL) {
					t.Fatalf("sub-block O_DIRECT read must fail cleanly with EINVAL, got %v", err)
				}
			}
			if err := b.Discard(0, int64(want)*8); err != nil && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("BLKDISCARD: %v", err)
			}
		})
	}
	if _, err := OpenBlock(newTempFile(t, 1<<20), BlockOptions{}); err == nil || !strings.Contains(err.Error(), "not a block device") {
		t.Fatalf("regular file as block device: %v", err)
	}
}

func TestBlockDeviceReadOnly(t *testing.T) {
	dev := loopDevice(t, 1<<20, 0)
	b, err := OpenBlock(dev, BlockOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.WriteAt(make([]byte, 512), 0); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("write on read-only block store: %v", err)
	}
}

func TestOpenPicksTheStore(t *testing.T) {
	p := newTempFile(t, 1<<20)
	s, err := Open(p, Options{LogicalBlockSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*File); !ok || s.LogicalBlockSize() != 4096 {
		t.Fatalf("regular file opened as %T lbs %d", s, s.LogicalBlockSize())
	}
	s.Close()
	if _, err := Open("/dev/null", Options{}); err == nil || !strings.Contains(err.Error(), "neither") {
		t.Fatalf("character device: %v", err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "nope"), Options{}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
	dev := loopDevice(t, 1<<20, 0)
	s, err = Open(dev, Options{Direct: true, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if b, ok := s.(*Block); !ok || !b.Direct() || !b.ReadOnly() {
		t.Fatalf("loop device opened as %T", s)
	}
}

func TestRefreshAfterResize(t *testing.T) {
	p := newTempFile(t, 1<<20)
	f, err := OpenFile(p, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := os.Truncate(p, 3<<20+7); err != nil {
		t.Fatal(err)
	}
	if f.Size() != 1<<20 {
		t.Fatal("size changed before Refresh")
	}
	if n, err := f.Refresh(); err != nil || n != 3<<20 || f.Size() != 3<<20 {
		t.Fatalf("file Refresh: %d %v", n, err)
	}
	if _, err := f.WriteAt(make([]byte, 512), 3<<20-512); err != nil {
		t.Fatalf("write in the grown area: %v", err)
	}
	dev := loopDevice(t, 1<<20, 0)
	b, err := OpenBlock(dev, BlockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	backing, err := exec.Command("losetup", "-n", "-O", "BACK-FILE", dev).Output()
	if err != nil {
		t.Skipf("losetup -O: %v", err)
	}
	if err := os.Truncate(strings.TrimSpace(string(backing)), 2<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("losetup", "-c", dev).CombinedOutput(); err != nil {
		t.Skipf("losetup -c: %v: %s", err, out)
	}
	if n, err := b.Refresh(); err != nil || n != 2<<20 {
		t.Fatalf("block Refresh after losetup -c: %d %v", n, err)
	}
}

// TestRAMFile: a file-backed RAM disk behaves like the anonymous one, and a
// second open of the same file (the next daemon) finds the contents again;
// a file describing another disk is replaced by an empty one.
func TestRAMFile(t *testing.T) {
	for name, dir := range ramDirs(t) {
		t.Run(name, func(t *testing.T) { testRAMFile(t, dir) })
	}
}

// ramDirs: the test's directory, and one on tmpfs (/dev/shm) where the
// daemon's files live (/run/govscsi), when the host has it.
func ramDirs(t *testing.T) map[string]string {
	dirs := map[string]string{"tempdir": t.TempDir()}
	var st syscall.Statfs_t
	if syscall.Statfs("/dev/shm", &st) == nil && st.Type == 0x01021994 { // TMPFS_MAGIC
		d, err := os.MkdirTemp("/dev/shm", "govscsi-test-")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			dirs["tmpfs"] = d
		}
	}
	return dirs
}

func testRAMFile(t *testing.T, dir string) {
	path := filepath.Join(dir, "d", "dev-0.lun")
	r, kept, err := OpenRAMFile(path, 8<<20, "ram:8M@5/0/dev-0", RAMOptions{})
	if err != nil || kept {
		t.Fatalf("create: kept %v, %v", kept, err)
	}
	exercise(t, r)
	pattern := bytes.Repeat([]byte("restart!"), 512)
	if _, err := r.WriteAt(pattern, 3<<20); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 8<<20)
	if _, err := r.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	alloc := r.Allocated()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	r2, kept, err := OpenRAMFile(path, 8<<20, "ram:8M@5/0/dev-0", RAMOptions{})
	if err != nil || !kept {
		t.Fatalf("reopen: kept %v, %v", kept, err)
	}
	again := make([]byte, 8<<20)
	if _, err := r2.ReadAt(again, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, again) {
		t.Fatal("reopened RAM disk differs from what was written")
	}
	if a := r2.Allocated(); a != alloc {
		t.Errorf("allocated %d after reopen, %d before", a, alloc)
	}
	r2.Close()

	for _, c := range []struct {
		size int64
		tag  string
	}{{8 << 20, "ram:8M@6/0/dev-0"}, {16 << 20, "ram:8M@5/0/dev-0"}} {
		r3, kept, err := OpenRAMFile(path, c.size, c.tag, RAMOptions{})
		if err != nil || kept {
			t.Fatalf("%d %q: kept %v, %v", c.size, c.tag, kept, err)
		}
		if r3.Allocated() != 0 {
			t.Errorf("%q: a replaced disk has %d bytes allocated", c.tag, r3.Allocated())
		}
		buf := make([]byte, 4096)
		r3.ReadAt(buf, 3<<20)
		if !bytes.Equal(buf, make([]byte, 4096)) {
			t.Errorf("%q: another disk's data is visible", c.tag)
		}
		r3.Close()
	}
}

// TestRAMFileReadsDoNotAllocate: reading unwritten ranges of a file-backed
// disk touches nothing (a read fault on a hole of a shared tmpfs mapping
// would allocate a page, and SIGBUS on a full tmpfs); a write allocates
// only its pages, a discard frees them.
func TestRAMFileReadsDoNotAllocate(t *testing.T) {
	for name, dir := range ramDirs(t) {
		t.Run(name, func(t *testing.T) { testRAMFileReadsDoNotAllocate(t, dir) })
	}
}

func testRAMFileReadsDoNotAllocate(t *testing.T, dir string) {
	path := filepath.Join(dir, "dev-1.lun")
	r, _, err := OpenRAMFile(path, 64<<20, "t", RAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	blocks := func() int64 {
		var st syscall.Stat_t
		if err := syscall.Stat(path, &st); err != nil {
			t.Fatal(err)
		}
		return st.Blocks * 512
	}
	base := blocks() // the header page
	buf := make([]byte, 1<<20)
	for off := int64(0); off < 64<<20; off += 1 << 20 {
		if _, err := r.ReadAt(buf, off); err != nil {
			t.Fatal(err)
		}
	}
	if b := blocks(); b != base {
		t.Fatalf("reading holes allocated %d bytes", b-base)
	}
	if _, err := r.WriteAt(buf[:8192], 5<<20); err != nil {
		t.Fatal(err)
	}
	if b := blocks() - base; b < 8192 || b > 64<<10 {
		t.Fatalf("an 8 KiB write allocated %d bytes", b)
	}
	if err := r.Discard(5<<20, 8192); err != nil {
		t.Fatal(err)
	}
	if b := blocks(); b != base || r.Allocated() != 0 {
		t.Fatalf("discard left %d bytes allocated (%d counted)", b-base, r.Allocated())
	}
}

// TestRAMShortLastPage: a size that is not a multiple of the page size can
// be written to its end (the last page is allocated whole).
func TestRAMShortLastPage(t *testing.T) {
	r, err := NewRAM(3*512, RAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.WriteAt(bytes.Repeat([]byte{7}, 3*512), 0); err != nil {
		t.Fatal(err)
	}
	if err := r.Discard(512, 1024); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 3*512)
	r.ReadAt(got, 0)
	if !bytes.Equal(got[:512], bytes.Repeat([]byte{7}, 512)) || !bytes.Equal(got[512:], make([]byte, 1024)) {
		t.Fatal("discard of the short last page's tail")
	}
}

// extents walks a Mapper from 0 and returns the runs as "m:len" / "h:len".
func extents(t *testing.T, m Mapper, size int64) []string {
	t.Helper()
	var out []string
	for off := int64(0); off < size; {
		mapped, n, err := m.Extent(off)
		if err != nil {
			t.Fatalf("Extent(%d): %v", off, err)
		}
		if n <= 0 || off+n > size {
			t.Fatalf("Extent(%d) = %v, %d: run outside the store", off, mapped, n)
		}
		k := "h"
		if mapped {
			k = "m"
		}
		if len(out) > 0 && out[len(out)-1][0] == k[0] {
			t.Fatalf("Extent(%d): two adjacent %s runs (%v)", off, k, out)
		}
		out = append(out, fmt.Sprintf("%s:%d", k, n))
		off += n
	}
	return out
}

func TestRAMExtent(t *testing.T) {
	r, err := NewRAM(1<<20, RAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := extents(t, r, 1<<20); len(got) != 1 || got[0] != "h:1048576" {
		t.Fatalf("empty RAM store: %v", got)
	}
	r.WriteAt(make([]byte, 8192), 64<<10)
	r.WriteAt([]byte{1}, 1<<20-1)
	want := []string{"h:65536", "m:8192", "h:970752", "m:4096"}
	if got := extents(t, r, 1<<20); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("extents %v, want %v", got, want)
	}
	r.Discard(64<<10, 4096)
	if mapped, n, _ := r.Extent(64 << 10); mapped || n != 4096 {
		t.Fatalf("after discard: %v %d", mapped, n)
	}
	if _, _, err := r.Extent(1 << 20); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("Extent at the end: %v", err)
	}
}

func TestFileExtent(t *testing.T) {
	p := newTempFile(t, 4<<20)
	f, err := OpenFile(p, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(bytes.Repeat([]byte{7}, 1<<20), 1<<20); err != nil {
		t.Fatal(err)
	}
	got := extents(t, f, 4<<20)
	if allocatedBlocks(t, p) == 0 || fmt.Sprint(got) == "[m:4194304]" {
		t.Skipf("this file system reports no holes: %v", got)
	}
	want := []string{"h:1048576", "m:1048576", "h:2097152"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("extents %v, want %v", got, want)
	}
}

func TestIdentity(t *testing.T) {
	p := newTempFile(t, 1<<20)
	a, err := OpenFile(p, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	link := filepath.Join(t.TempDir(), "link.img")
	if err := os.Symlink(p, link); err != nil {
		t.Fatal(err)
	}
	b, err := OpenFile(link, FileOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	other, err := OpenFile(newTempFile(t, 1<<20), FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ia, err := a.Identity()
	if err != nil {
		t.Fatal(err)
	}
	ib, _ := b.Identity()
	io, _ := other.Identity()
	if ia != ib || ia.Ino == 0 || ia.Rdev != 0 {
		t.Fatalf("one file through a symlink: %+v vs %+v", ia, ib)
	}
	if ia == io {
		t.Fatalf("two files, one identity %+v", ia)
	}
	a.Close()
	if _, err := a.Identity(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Identity after Close: %v", err)
	}
}

func TestBlockIdentity(t *testing.T) {
	dev := loopDevice(t, 4<<20, 0)
	a, err := OpenBlock(dev, BlockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := OpenBlock(dev, BlockOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ia, _ := a.Identity()
	ib, _ := b.Identity()
	if ia != ib || ia.Rdev == 0 || ia.Ino != 0 {
		t.Fatalf("one block device, identities %+v and %+v", ia, ib)
	}
}
