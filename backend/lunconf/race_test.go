package lunconf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govscsi/govscsi/backend/scsi"
)

// writeBlock runs WRITE(10) of one 512-byte block at lba, with the FUA bit
// when fua is set (the store's WriteAtFUA path).
func writeBlock(l scsi.LUN, lba uint32, fua bool, data []byte) scsi.Result {
	cdb := []byte{0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0}
	if fua {
		cdb[1] = 0x08
	}
	binary.BigEndian.PutUint32(cdb[2:], lba)
	var res scsi.Result
	l.Execute(&scsi.Command{CDB: cdb, Dir: scsi.DirToDevice, Data: data}, &res)
	return res
}

// TestSymlinkSwapRace is the campaign's attack on allow_paths: whoever can
// write in an allowed directory swaps (renameat2 RENAME_EXCHANGE, atomic) a
// name the p-dev goes through between a real entry and a symlink that leads
// out of the directory, while the backend opens the p-dev again and again.
// Every open must either be refused or reach the file inside, and both the
// plain and the FUA write of one open must reach the same file.
func TestSymlinkSwapRace(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup makes, in allowed/, the name the p-dev uses in its good
		// form and the evil twin it is exchanged with; it returns the
		// p-dev path and the two names to exchange.
		setup func(t *testing.T, allowed, outside string) (pdev, a, b string)
	}{
		{"leaf", func(t *testing.T, allowed, outside string) (string, string, string) {
			// allowed/disk.img: a regular file <-> a symlink to outside/secret.img
			img := filepath.Join(allowed, "disk.img")
			mustImage(t, img)
			evil := filepath.Join(allowed, "evil")
			must(t, os.Symlink("../outside/secret.img", evil))
			return img, img, evil
		}},
		{"directory", func(t *testing.T, allowed, outside string) (string, string, string) {
			// allowed/d: a directory holding secret.img <-> a symlink to ../outside
			d := filepath.Join(allowed, "d")
			must(t, os.Mkdir(d, 0o700))
			mustImage(t, filepath.Join(d, "secret.img"))
			evil := filepath.Join(allowed, "evil")
			must(t, os.Symlink("../outside", evil))
			return filepath.Join(d, "secret.img"), d, evil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			allowed, outside := filepath.Join(dir, "allowed"), filepath.Join(dir, "outside")
			must(t, os.Mkdir(allowed, 0o700))
			must(t, os.Mkdir(outside, 0o700))
			secret := filepath.Join(outside, "secret.img")
			mustImage(t, secret)
			pdev, a, b := tc.setup(t, allowed, outside)
			p := Policy{AllowPaths: []string{allowed}}

			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE); err != nil {
						t.Errorf("RENAME_EXCHANGE: %v", err)
						return
					}
				}
			}()
			// Until 200 opens succeeded (each a chance to escape), or 5 s.
			// An exchange takes tens of microseconds, a refused open one
			// or two, so most tries are refusals.
			const wantOpened = 200
			deadline := time.Now().Add(5 * time.Second)
			var opened, refused, escaped, split, other int
			var otherErr error
			plain, fua := make([]byte, 512), make([]byte, 512)
			for i := 0; opened < wantOpened && time.Now().Before(deadline); i++ {
				o, err := p.Open("file:"+pdev, Options{})
				if err != nil {
					if !errors.Is(err, ErrNotAllowed) {
						other++
						otherErr = err
					}
					refused++
					continue
				}
				opened++
				// Mark both blocks with this open's number; then see where
				// they landed.
				binary.BigEndian.PutUint32(plain, uint32(2*i+1))
				binary.BigEndian.PutUint32(fua, uint32(2*i+2))
				r1 := writeBlock(o.LUN, 1, false, plain)
				r2 := writeBlock(o.LUN, 2, true, fua)
				o.LUN.Close()
				if r1.Status != 0 || r2.Status != 0 {
					t.Fatalf("open %d: write status %#x/%#x", i, r1.Status, r2.Status)
				}
				s1, s2 := blockIs(t, secret, 1, plain), blockIs(t, secret, 2, fua)
				if s1 || s2 {
					escaped++
				}
				if s1 != s2 {
					split++
				}
			}
			close(stop)
			wg.Wait()
			t.Logf("%d opens: %d opened, %d refused, %d wrote outside the allowed directory, %d had their two descriptors on different files",
				opened+refused, opened, refused, escaped, split)
			if escaped != 0 || split != 0 {
				t.Errorf("allow_paths escaped: %d of %d opens wrote to %s, %d split between two files", escaped, opened, secret, split)
			}
			if other != 0 {
				t.Errorf("%d refusals were not policy refusals (ErrNotAllowed), e.g. %v", other, otherErr)
			}
			if opened == 0 {
				t.Errorf("no open succeeded: the race did not exercise the good side")
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustImage(t *testing.T, path string) {
	t.Helper()
	must(t, os.WriteFile(path, make([]byte, 64<<10), 0o600))
}

// blockIs reports whether 512-byte block lba of path holds want.
func blockIs(t *testing.T, path string, lba int64, want []byte) bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make([]byte, 512)
	if _, err := f.ReadAt(got, lba*512); err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(got, want)
}

// TestOpenBeneath: what the walk beneath an allow_paths entry follows and
// what it refuses, one case at a time.
func TestOpenBeneath(t *testing.T) {
	dir := t.TempDir()
	allowed, outside := filepath.Join(dir, "allowed"), filepath.Join(dir, "outside")
	must(t, os.MkdirAll(filepath.Join(allowed, "sub"), 0o700))
	must(t, os.Mkdir(outside, 0o700))
	good := filepath.Join(allowed, "sub", "good.img")
	mustImage(t, good)
	mustImage(t, filepath.Join(outside, "secret.img"))
	must(t, os.Symlink("sub/good.img", filepath.Join(allowed, "rel.img")))
	must(t, os.Symlink(good, filepath.Join(allowed, "abs.img")))
	must(t, os.Symlink("../outside/secret.img", filepath.Join(allowed, "out.img")))
	must(t, os.Symlink("..", filepath.Join(allowed, "up")))
	must(t, unix.Mkfifo(filepath.Join(allowed, "fifo"), 0o600))
	// A character device that is not sg (1:3 is /dev/null's number).
	chr := filepath.Join(allowed, "chr")
	if err := unix.Mknod(chr, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))); err != nil {
		chr = ""
	}

	p := Policy{AllowPaths: []string{allowed + "/"}}
	for _, c := range []struct{ pdev, path string }{
		{"file:" + good, good},
		{"file:" + filepath.Join(allowed, "rel.img"), good}, // relative symlink inside
		{"file:" + filepath.Join(allowed, "rel.img") + ",ro", good},
	} {
		o, err := p.Open(c.pdev, Options{})
		if err != nil {
			t.Errorf("%s: %v", c.pdev, err)
			continue
		}
		if o.Path != c.path {
			t.Errorf("%s: Path %q, want %q", c.pdev, o.Path, c.path)
		}
		o.LUN.Close()
	}
	for _, c := range []struct{ pdev, word string }{
		{"file:" + filepath.Join(allowed, "abs.img"), "leaves"}, // absolute symlinks are refused, even to inside
		{"file:" + filepath.Join(allowed, "out.img"), "leaves"},
		{"file:" + filepath.Join(allowed, "up/outside/secret.img"), "leaves"},
		{"file:" + filepath.Join(allowed, "fifo"), "not a regular file"},
		{"file:" + filepath.Join(allowed, "fifo") + ",ro", "not a regular file"},
		{"file:" + filepath.Join(allowed, "sub"), "not a regular file"},
		{"file:" + filepath.Join(outside, "secret.img"), "outside the allowed paths"},
	} {
		done := make(chan error, 1)
		go func() {
			o, err := p.Open(c.pdev, Options{})
			if err == nil {
				o.LUN.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), c.word) {
				t.Errorf("%s: %v, want an error saying %q", c.pdev, err, c.word)
			}
			if c.word == "leaves" && !errors.Is(err, ErrNotAllowed) {
				t.Errorf("%s: %v does not wrap ErrNotAllowed", c.pdev, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: Open hangs", c.pdev)
		}
	}
	if chr != "" {
		// A device p-dev must be under /dev/, so go through sg: (which
		// opens it) only to see the type checks; /dev/null itself
		// shows the auto kind refusing a non-sg character device
		// without opening it.
		if _, err := (Policy{AllowPaths: []string{"/dev/"}}).Open("/dev/null", Options{}); err == nil || !strings.Contains(err.Error(), "not a SCSI generic node") {
			t.Errorf("/dev/null: %v", err)
		}
		if _, err := p.Open("file:"+chr, Options{}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("character device as file: %v", err)
		}
	}

	// An entry that names the p-dev itself allows that name, not a
	// symlink in its place.
	if o, err := (Policy{AllowPaths: []string{good}}).Open("file:"+good, Options{}); err != nil {
		t.Errorf("exact entry: %v", err)
	} else {
		o.LUN.Close()
	}
	rel := filepath.Join(allowed, "rel.img")
	if _, err := (Policy{AllowPaths: []string{rel}}).Open("file:"+rel, Options{}); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("exact entry that is a symlink: %v", err)
	}
	// The walk starts at the widest matching entry: a relative symlink
	// out of a narrow entry into a wider one is inside.
	// (allowed/sub/link -> ../sub/good.img climbs out of sub.)
	link := filepath.Join(allowed, "sub", "link")
	must(t, os.Symlink("../sub/good.img", link))
	wide := Policy{AllowPaths: []string{filepath.Join(allowed, "sub"), allowed}}
	if o, err := wide.Open("file:"+link, Options{}); err != nil {
		t.Errorf("nested entries: %v", err)
	} else {
		o.LUN.Close()
	}
	narrow := Policy{AllowPaths: []string{filepath.Join(allowed, "sub")}}
	if _, err := narrow.Open("file:"+link, Options{}); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("climbing out of the only entry: %v", err)
	}
}

// TestOpenBlockDevice: a loop device as an auto-kind p-dev becomes an
// emulated disk whose plain and FUA writes reach the device.
func TestOpenBlockDevice(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loop devices need root")
	}
	img := filepath.Join(t.TempDir(), "loop.img")
	mustImage(t, img)
	out, err := exec.Command("losetup", "-f", "--show", img).CombinedOutput()
	if err != nil {
		t.Skipf("loop devices unavailable: losetup: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	defer exec.Command("losetup", "-d", dev).Run()
	o, err := (Policy{AllowPaths: []string{"/dev/"}}).Open(dev+",direct", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if o.Kind != KindBlock || o.Path != dev {
		t.Errorf("opened %+v", o)
	}
	plain, fua := make([]byte, 512), make([]byte, 512)
	plain[0], fua[0] = 0xa1, 0xf2
	if r := writeBlock(o.LUN, 1, false, plain); r.Status != 0 {
		t.Fatalf("WRITE: %#x", r.Status)
	}
	if r := writeBlock(o.LUN, 2, true, fua); r.Status != 0 {
		t.Fatalf("WRITE FUA: %#x", r.Status)
	}
	o.LUN.Close()
	if !blockIs(t, dev, 1, plain) || !blockIs(t, dev, 2, fua) {
		t.Errorf("writes did not reach %s", dev)
	}
	if _, err := (Policy{AllowPaths: []string{"/dev/"}}).Open("block:"+dev+",raw", Options{}); err == nil {
		t.Errorf("block with raw accepted")
	}
}
