// Package opfiletest gives the tests of every operator-file reader the same
// hostile paths (issue 14): a FIFO (hung the readers for ever), /dev/zero
// (grew memory until OOM), a directory and a file over the size limit.
package opfiletest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Case is one hostile path and a word its error must contain.
type Case struct {
	Name, Path, Want string
}

// Cases makes the hostile paths in a temporary directory; the oversize
// file has limit+1 bytes of newlines (valid YAML and xl syntax, so only
// the limit can refuse it).
func Cases(t testing.TB, limit int64) []Case {
	t.Helper()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.cfg")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.cfg")
	if err := os.WriteFile(big, []byte(strings.Repeat("\n", int(limit)+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "dir.cfg")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	return []Case{
		{"FIFO", fifo, "FIFO"},
		{"/dev/zero", "/dev/zero", "character device"},
		{"directory", sub, "directory"},
		{"oversize", big, "limit"},
	}
}

// Check runs read on every case and fails the test if it hangs (10 s),
// succeeds, or gives an error without the case's word.
func Check(t *testing.T, limit int64, read func(path string) error) {
	t.Helper()
	for _, c := range Cases(t, limit) {
		done := make(chan error, 1)
		go func() { done <- read(c.Path) }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), c.Want) {
				t.Errorf("%s (%s): %v, want an error saying %q", c.Name, c.Path, err, c.Want)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s (%s): the reader hangs", c.Name, c.Path)
			// Unblock a FIFO reader so the test binary can end.
			if c.Name == "FIFO" {
				if f, err := os.OpenFile(c.Path, os.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
					f.Close()
				}
			}
		}
	}
}
