package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// manText is a hand-written roff page with the font escapes removed and
// "\-" turned into "-", so it can be searched for option names.
func manText(t *testing.T, page string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(top, "docs/man", page))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), `\-`, "-")
	return regexp.MustCompile(`\\f[BIRP]`).ReplaceAllString(s, "")
}

// xl-vscsi(1) keeps up with the CLI: every subcommand `xl-vscsi help`
// lists and every flag `xl-vscsi help <subcommand>` shows appear in the
// page (the binary built from this tree).
func TestManXlVscsiCoversCLI(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "xl-vscsi")
	if out, err := exec.Command("go", "build", "-o", bin, filepath.Join(top, "plugin/cmd/xl-vscsi")).CombinedOutput(); err != nil {
		t.Fatalf("go build xl-vscsi: %v\n%s", err, out)
	}
	help := func(args ...string) string {
		out, err := exec.Command(bin, append([]string{"help"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("xl-vscsi help %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	page := manText(t, "xl-vscsi.1")
	subs := regexp.MustCompile(`(?m)^ ([a-z][a-z-]+) {2,}`).FindAllStringSubmatch(help(), -1)
	if len(subs) < 8 {
		t.Fatalf("xl-vscsi help lists only %d subcommands", len(subs))
	}
	flagRe := regexp.MustCompile(`(?m)^  -([a-z][a-z-]*)`)
	for _, m := range subs {
		sub := m[1]
		if !strings.Contains(page, sub) {
			t.Errorf("xl-vscsi(1) does not mention the subcommand %s", sub)
		}
		flags := flagRe.FindAllStringSubmatch(help(sub), -1)
		if len(flags) == 0 {
			t.Errorf("xl-vscsi help %s shows no flags", sub)
		}
		for _, f := range flags {
			if !strings.Contains(page, "--"+f[1]) {
				t.Errorf("xl-vscsi(1) does not document --%s (of %s)", f[1], sub)
			}
		}
	}
	for _, want := range []string{"--flavour kernel|hctl|userspace", "vscsiu", "file:", "ram:", "block:", "sg:", "ro", "direct", "raw", "idempotent"} {
		if !strings.Contains(page, want) {
			t.Errorf("xl-vscsi(1) lacks %q", want)
		}
	}
}

// xl-vscsi.cfg(5) covers what docs/vscsi-syntax.md lists: every PDEV form
// (the userspace ones too), every option, the flavours and backend types.
func TestManVscsiCfgCoversSyntax(t *testing.T) {
	page := manText(t, "xl-vscsi.cfg.5")
	for _, want := range []string{"/dev/NODE", "H:C:T:L", "naa.HEX:LUN", "file:/PATH", "ram:SIZE", "block:/dev/NODE", "sg:/dev/NODE",
		"feature-host", "ro, direct, raw", "kernel", "hctl", "userspace", "vscsiu", "--backend-type", "allow_paths",
		"expected one of: direct, feature-host, raw, ro", "idempotent"} {
		if !strings.Contains(page, want) {
			t.Errorf("xl-vscsi.cfg(5) lacks %q", want)
		}
	}
	// The option list in the man page's error example is the parser's.
	syntax, err := os.ReadFile(filepath.Join(top, "docs/vscsi-syntax.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`expected one of: ([a-z, -]+)`).FindSubmatch(syntax)
	if m == nil || !strings.Contains(page, "expected one of: "+string(m[1])) {
		t.Errorf("the option list differs from docs/vscsi-syntax.md's %q", m)
	}
}
