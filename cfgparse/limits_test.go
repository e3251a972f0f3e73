package cfgparse

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// parseAlloc parses data and returns the bytes allocated meanwhile.
func parseAlloc(t *testing.T, data []byte) (*Config, uint64, error) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c, err := Parse("hostile.cfg", data)
	runtime.ReadMemStats(&after)
	return c, after.TotalAlloc - before.TotalAlloc, err
}

// TestParseLimits: hostile configs get an error naming the file and the
// limit, and memory stays proportional to the input. (A million '['
// overflowed the Go stack, "fatal error: stack overflow"; += chains cost
// memory quadratic in their length.)
func TestParseLimits(t *testing.T) {
	deep := []byte("x = " + strings.Repeat("[", 1_000_000) + "\n")
	_, alloc, err := parseAlloc(t, deep)
	if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "hostile.cfg:1:") || !strings.Contains(err.Error(), fmt.Sprint(MaxListDepth)) {
		t.Errorf("a million '[': %v", err)
	}
	if alloc > 1<<20 {
		t.Errorf("a million '[' cost %d bytes", alloc)
	}
	// At the limit: fine.
	ok := []byte("x = " + strings.Repeat("[", MaxListDepth) + strings.Repeat("]", MaxListDepth) + "\n")
	if _, err := Parse("ok.cfg", ok); err != nil {
		t.Errorf("depth %d: %v", MaxListDepth, err)
	}
	over := []byte("x = " + strings.Repeat("[", MaxListDepth+1) + strings.Repeat("]", MaxListDepth+1) + "\n")
	if _, err := Parse("ok.cfg", over); !errors.Is(err, ErrLimit) {
		t.Errorf("depth %d: %v", MaxListDepth+1, err)
	}

	// += chains: each statement used to copy the whole list (or string)
	// so far. 300 KB of them must not cost more than a small multiple of
	// their size.
	for _, c := range []struct{ name, first, next string }{
		{"list", "x = [1]\n", "x += [1,1,1,1,1,1,1,1]\n"},
		{"string", "x = \"a\"\n", "x += \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\n"},
	} {
		var b strings.Builder
		b.WriteString(c.first)
		for b.Len() < 300_000 {
			b.WriteString(c.next)
		}
		data := []byte(b.String())
		cfg, alloc, err := parseAlloc(t, data)
		if err != nil && !errors.Is(err, ErrLimit) {
			t.Errorf("%s += chain: %v", c.name, err)
		}
		t.Logf("%s += chain: %d bytes of input, %d bytes allocated", c.name, len(data), alloc)
		if alloc > 64*uint64(len(data)) {
			t.Errorf("%s += chain: %d bytes of input cost %d bytes (%dx)", c.name, len(data), alloc, alloc/uint64(len(data)))
		}
		if err == nil {
			// The last value is still every operand joined.
			s := cfg.Settings[len(cfg.Settings)-1]
			n := strings.Count(string(data), "1")
			if c.name == "string" {
				n = strings.Count(string(data), "a")
			}
			if got := len(s.Value.List) + len(s.Value.Str); got != n {
				t.Errorf("%s += chain: last value has %d items/bytes, want %d", c.name, got, n)
			}
		}
	}

	// Too many values: an error, not memory.
	many := []byte("x = [" + strings.Repeat("1,", MaxValues) + "]\n")
	if _, err := Parse("many.cfg", many); !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), fmt.Sprint(MaxValues)) {
		t.Errorf("%d values: %v", MaxValues+1, err)
	}
	// Too large.
	big := make([]byte, MaxConfigSize+1)
	for i := range big {
		big[i] = '\n'
	}
	if _, err := Parse("big.cfg", big); !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "big.cfg") || !strings.Contains(err.Error(), fmt.Sprint(MaxConfigSize)) {
		t.Errorf("%d bytes: %v", len(big), err)
	}
}

// TestParseFileNotRegular: a FIFO or /dev/zero as the config is refused at
// once (a FIFO hung the reader for ever, /dev/zero grew memory until OOM).
func TestParseFileNotRegular(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "guest.cfg")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{fifo, "/dev/zero"} {
		done := make(chan error, 1)
		go func() { _, err := ParseFile(p); done <- err }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("ParseFile(%s): %v", p, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("ParseFile(%s) hangs", p)
		}
	}
	big := filepath.Join(t.TempDir(), "big.cfg")
	if err := os.WriteFile(big, make([]byte, MaxConfigSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseFile(big); err == nil || !strings.Contains(err.Error(), fmt.Sprint(MaxConfigSize)) {
		t.Errorf("ParseFile(big): %v", err)
	}
}
