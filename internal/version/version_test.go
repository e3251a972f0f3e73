package version

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestString: without a stamp the version is the VERSION file's, a
// dotted number.
func TestString(t *testing.T) {
	b, err := os.ReadFile("VERSION")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := String(), strings.TrimSpace(string(b)); got != want {
		t.Fatalf("String() = %q, want the VERSION file's %q", got, want)
	}
	if !regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+([~+.-][0-9A-Za-z.~+-]+)?$`).MatchString(String()) {
		t.Fatalf("version %q is not a Debian-usable version number", String())
	}
}

// TestStamp: the linker flag the Makefile uses reaches String().
func TestStamp(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program")
	}
	bin := filepath.Join(t.TempDir(), "printversion")
	build := exec.Command("go", "build", "-o", bin, "-ldflags", "-X github.com/govscsi/govscsi/internal/version.stamped=9.8.7~test", "./testdata/printversion")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "9.8.7~test" {
		t.Fatalf("stamped build says %q, want 9.8.7~test", out)
	}
}
