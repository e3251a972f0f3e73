package main

import (
	"bytes"
	"io"
	"testing"

	"github.com/govscsi/govscsi/internal/version"
)

// TestVersion: --version prints the one version (internal/version; the
// Makefile stamps the same into every binary) and starts nothing.
func TestVersion(t *testing.T) {
	var out, errb bytes.Buffer
	defer func(w io.Writer) { stdout = w }(stdout)
	stdout = &out
	if code := run([]string{"--version"}, &errb); code != 0 || out.String() != "vscsi-backend "+version.String()+"\n" || errb.Len() != 0 {
		t.Errorf("vscsi-backend --version: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
}
