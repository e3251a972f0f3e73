package safeopen

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// tree makes dir/allowed (with a file, a subdirectory, relative and
// absolute symlinks, a ".." symlink and a FIFO) and dir/outside/secret.
func tree(t testing.TB) (allowed, outside string) {
	dir := t.TempDir()
	allowed, outside = filepath.Join(dir, "allowed"), filepath.Join(dir, "outside")
	must(t, os.MkdirAll(filepath.Join(allowed, "sub"), 0o700))
	must(t, os.Mkdir(outside, 0o700))
	must(t, os.WriteFile(filepath.Join(allowed, "sub", "good"), []byte("good"), 0o600))
	must(t, os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o600))
	must(t, os.Symlink("sub/good", filepath.Join(allowed, "rel")))                         // stays inside
	must(t, os.Symlink("../sub/good", filepath.Join(allowed, "sub", "up")))                // .. but still inside
	must(t, os.Symlink(filepath.Join(allowed, "sub/good"), filepath.Join(allowed, "abs"))) // absolute
	must(t, os.Symlink("../outside/secret", filepath.Join(allowed, "out")))                // leaves
	must(t, os.Symlink("..", filepath.Join(allowed, "parent")))                            // a way up
	must(t, os.Symlink("/proc/self/root", filepath.Join(allowed, "magic")))                // to a magic link
	must(t, unix.Mkfifo(filepath.Join(allowed, "fifo"), 0o600))
	return allowed, outside
}

func read(t *testing.T, pf *os.File) string {
	t.Helper()
	f, err := Reopen(pf, os.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 16)
	n, _ := f.Read(b)
	return string(b[:n])
}

func TestBeneath(t *testing.T) {
	allowed, _ := tree(t)
	for _, rel := range []string{"sub/good", "rel", "sub/up"} {
		f, err := Beneath(allowed, rel, true)
		if err != nil {
			t.Errorf("Beneath(%s): %v", rel, err)
			continue
		}
		if got := read(t, f); got != "good" {
			t.Errorf("Beneath(%s) read %q", rel, got)
		}
		if f.Name() != allowed+"/"+rel {
			t.Errorf("name %q", f.Name())
		}
		f.Close()
	}
	for _, rel := range []string{"abs", "out", "parent/outside/secret", "../outside/secret", "magic/etc/passwd", "sub/../../outside/secret"} {
		f, err := Beneath(allowed, rel, true)
		if err == nil {
			t.Errorf("Beneath(%s) opened %s", rel, read(t, f))
			f.Close()
			continue
		}
		if !errors.Is(err, ErrEscape) {
			t.Errorf("Beneath(%s): %v, want ErrEscape", rel, err)
		}
	}
	// No symlinks at all: even one that stays inside is refused.
	if _, err := Beneath(allowed, "rel", false); !errors.Is(err, ErrEscape) {
		t.Errorf("Beneath(rel, no symlinks): %v", err)
	}
	if f, err := Beneath(allowed, "sub/good", false); err != nil {
		t.Errorf("Beneath(sub/good, no symlinks): %v", err)
	} else {
		f.Close()
	}
	if _, err := Beneath(allowed, "missing", true); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
	if _, err := Beneath(filepath.Join(allowed, "nodir"), "x", true); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing directory: %v", err)
	}
	if _, err := Beneath(allowed, "/etc/passwd", true); err == nil {
		t.Errorf("absolute rel accepted")
	}
}

// TestFIFONotOpened: the O_PATH lookup of a FIFO returns at once (a real
// open for reading would wait for a writer); its type is known before
// anything opens it.
func TestFIFONotOpened(t *testing.T) {
	allowed, _ := tree(t)
	f, err := Beneath(allowed, "fifo", true)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("stat: %v %v", fi, err)
	}
}

func TestNoOpenat2(t *testing.T) {
	allowed, _ := tree(t)
	calls := 0
	openat2 = func(int, string, *unix.OpenHow) (int, error) { calls++; return -1, unix.ENOSYS }
	defer func() { openat2 = unix.Openat2 }()
	if _, err := Beneath(allowed, "sub/good", true); !errors.Is(err, ErrNoOpenat2) {
		t.Errorf("no openat2: %v", err)
	}
	if Available() {
		t.Errorf("Available with ENOSYS")
	}
	if calls != 2 {
		t.Errorf("%d calls, want one each (no fallback to a path open)", calls)
	}
}

func TestRetryEAGAIN(t *testing.T) {
	allowed, _ := tree(t)
	n := 0
	openat2 = func(d int, p string, h *unix.OpenHow) (int, error) {
		if n++; n <= 3 {
			return -1, unix.EAGAIN
		}
		return unix.Openat2(d, p, h)
	}
	defer func() { openat2 = unix.Openat2 }()
	f, err := Beneath(allowed, "sub/good", true)
	if err != nil {
		t.Fatalf("after 3 EAGAIN: %v", err)
	}
	f.Close()
	// A renamer that never stops gets an error, not a hang.
	openat2 = func(int, string, *unix.OpenHow) (int, error) { return -1, unix.EAGAIN }
	if _, err := Beneath(allowed, "sub/good", true); !errors.Is(err, unix.EAGAIN) {
		t.Errorf("endless EAGAIN: %v", err)
	}
}

// TestReopen: the reopened descriptor is the pinned inode even after the
// name was renamed away and replaced.
func TestReopen(t *testing.T) {
	allowed, _ := tree(t)
	pf, err := Beneath(allowed, "sub/good", true)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	must(t, os.Rename(filepath.Join(allowed, "sub/good"), filepath.Join(allowed, "sub/moved")))
	must(t, os.WriteFile(filepath.Join(allowed, "sub/good"), []byte("replaced"), 0o600))
	f, err := Reopen(pf, os.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("G"), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if b, _ := os.ReadFile(filepath.Join(allowed, "sub/moved")); string(b) != "Good" {
		t.Errorf("write went elsewhere: moved file holds %q", b)
	}
	if f.Name() != pf.Name() {
		t.Errorf("reopened name %q, want %q", f.Name(), pf.Name())
	}
}

// FuzzBeneath: whatever relative path a p-dev brings (components, "..",
// symlinks in and out of the directory, magic links), what Beneath opens
// lies beneath the directory: never the secret file outside it.
func FuzzBeneath(f *testing.F) {
	for _, s := range []string{"sub/good", "rel", "sub/up", "abs", "out", "parent/outside/secret", "../outside/secret",
		"magic/etc/passwd", "sub/../../outside/secret", "sub/./good", "fifo", "", "/", "sub//good", "parent/allowed/out",
		"sub/up/../../out"} {
		f.Add(s)
	}
	allowed, outside := tree(f)
	// A symlink chain that climbs out two levels at a time.
	must(f, os.Symlink("../../outside", filepath.Join(allowed, "sub", "twoup")))
	secret := filepath.Join(outside, "secret")
	var st unix.Stat_t
	must(f, unix.Stat(secret, &st))
	f.Fuzz(func(t *testing.T, rel string) {
		pf, err := Beneath(allowed, rel, true)
		if err != nil {
			return
		}
		defer pf.Close()
		var got unix.Stat_t
		if err := unix.Fstat(int(pf.Fd()), &got); err != nil {
			t.Fatal(err)
		}
		if got.Dev == st.Dev && got.Ino == st.Ino {
			t.Fatalf("Beneath(%q) opened the secret outside the directory", rel)
		}
		real, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(pf.Fd())))
		if err != nil {
			t.Fatal(err)
		}
		if real != allowed && !strings.HasPrefix(real, allowed+"/") {
			t.Fatalf("Beneath(%q) opened %s, outside %s", rel, real, allowed)
		}
	})
}
