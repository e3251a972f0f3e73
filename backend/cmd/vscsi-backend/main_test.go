package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govscsi/govscsi/libxlgo/xsfake"
)

func TestFlagsAndConfigErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("backend_typ: x\n"), 0o600)
	for _, c := range []struct {
		args []string
		code int
		word string
	}{
		{[]string{"--bogus"}, 2, "bogus"},
		{[]string{"extra"}, 2, "unexpected argument \"extra\""},
		{[]string{"--config", bad}, 2, "backend_typ"},
		{[]string{"--config", filepath.Join(t.TempDir(), "missing.yaml")}, 2, "no such file"},
		{[]string{"--config", bad, "--log-level", "loud"}, 2, "backend_typ"},
		{[]string{"--log-level", "loud", "--config", os.DevNull}, 2, "--log-level \"loud\""},
		{[]string{"--config", os.DevNull, "--check-config"}, 0, "BackendType:vscsiu"},
	} {
		var out bytes.Buffer
		code := run(c.args, &out)
		if code != c.code || !strings.Contains(out.String(), c.word) {
			t.Errorf("run(%q) = %d, %q; want %d mentioning %q", c.args, code, out.String(), c.code, c.word)
		}
	}
}

// TestStartsOnLibxenstore: with a real libxenstore connection (to xsfake)
// the daemon gets as far as the Xen devices; without /dev/xen it says
// which device is missing and exits 1 instead of hanging or panicking.
func TestStartsOnLibxenstore(t *testing.T) {
	if _, err := os.Stat("/dev/xen/gntdev"); err == nil {
		t.Skip("running on Xen: the daemon would really start")
	}
	xsfake.StartT(t)
	var out bytes.Buffer
	code := run([]string{"--config", os.DevNull, "--foreground"}, &out)
	if code != 1 || !strings.Contains(out.String(), "grant device") {
		t.Errorf("run = %d, %q", code, out.String())
	}
}
