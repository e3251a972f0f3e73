package opfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// readSoon runs Read and fails the test instead of hanging.
func readSoon(t *testing.T, path string, limit int64) ([]byte, error) {
	t.Helper()
	type res struct {
		b   []byte
		err error
	}
	c := make(chan res, 1)
	go func() { b, err := Read("config", path, limit); c <- res{b, err} }()
	select {
	case r := <-c:
		return r.b, r.err
	case <-time.After(10 * time.Second):
		t.Fatalf("Read(%s) hangs", path)
		return nil, nil
	}
}

func TestRead(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok.cfg")
	if err := os.WriteFile(ok, []byte("x = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := readSoon(t, ok, 6); err != nil || string(b) != "x = 1\n" {
		t.Errorf("regular file at the limit: %q %v", b, err)
	}
	if _, err := readSoon(t, ok, 5); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "limit is 5") || !strings.Contains(err.Error(), ok) {
		t.Errorf("one byte over: %v", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readSoon(t, fifo, 1<<20); !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "FIFO") {
		t.Errorf("FIFO: %v", err)
	}
	if _, err := readSoon(t, "/dev/zero", 1<<20); !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "character device") {
		t.Errorf("/dev/zero: %v", err)
	}
	if _, err := readSoon(t, dir, 1<<20); !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "directory") {
		t.Errorf("directory: %v", err)
	}
	if _, err := readSoon(t, filepath.Join(dir, "missing"), 1<<20); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
	if b, err := readSoon(t, "/dev/null", 1<<20); err != nil || len(b) != 0 {
		t.Errorf("/dev/null: %q %v, want empty", b, err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink("ok.cfg", link); err != nil {
		t.Fatal(err)
	}
	if b, err := readSoon(t, link, 1<<20); err != nil || string(b) != "x = 1\n" {
		t.Errorf("symlink to a regular file: %q %v", b, err)
	}
}
