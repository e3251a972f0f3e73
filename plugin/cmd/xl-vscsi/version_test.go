package main

import (
	"bytes"
	"testing"

	"github.com/govscsi/govscsi/internal/version"
)

// TestVersion: --version and the version subcommand print the one version
// (internal/version; the Makefile stamps the same into every binary).
func TestVersion(t *testing.T) {
	for _, arg := range []string{"--version", "version"} {
		var out, errb bytes.Buffer
		if code := run([]string{arg}, &out, &errb); code != 0 || out.String() != "xl-vscsi "+version.String()+"\n" || errb.Len() != 0 {
			t.Errorf("xl-vscsi %s: exit %d, stdout %q, stderr %q", arg, code, out.String(), errb.String())
		}
	}
}
