package autoattach

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/govscsi/govscsi/cfgparse"
)

// TestScanHostileConfigs: a config directory holding hostile files (a
// million '[' overflowed the parser's stack and killed vscsi-autoattach at
// every scan; a FIFO hung it) is scanned: the good config is found, the
// hostile one reported as skipped with the limit, the FIFO passed over.
func TestScanHostileConfigs(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("good.cfg", "name = \"g1\"\n")
	write("deep.cfg", "name = \"g2\"\nx = "+strings.Repeat("[", 1_000_000)+"\n")
	if err := unix.Mkfifo(filepath.Join(dir, "fifo.cfg"), 0o600); err != nil {
		t.Fatal(err)
	}
	var skipped []string
	var ix configIndex
	cands, err := ix.scan([]string{dir}, func(p string, err error) {
		if filepath.Base(p) == "deep.cfg" && !errors.Is(err, cfgparse.ErrLimit) {
			t.Errorf("deep.cfg skipped with %v, want ErrLimit", err)
		}
		skipped = append(skipped, filepath.Base(p))
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(cands) != 1 || cands[0].Name != "g1" {
		t.Errorf("candidates %+v, want g1 only", cands)
	}
	if len(skipped) != 1 || skipped[0] != "deep.cfg" {
		t.Errorf("skipped %v, want [deep.cfg]", skipped)
	}
}
