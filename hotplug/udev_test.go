package hotplug_test

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The rule file is checked two ways. Debian 12's udev (systemd 252) has no
// `udevadm verify` (added in systemd 253), so a parser here checks the
// syntax udev.rules(7) describes (KEY[{attr}]OP"value", comma separated,
// match keys with ==/!=, assignment keys with =/+=/-=/:=, known key names)
// and evaluates the rule's matches against the uevents the kernel sends
// for vscsi and for other backends. Where udevadm verify exists, it runs
// too.

const rulesFile = "udev/65-govscsi-vscsi.rules"

type udevToken struct{ key, attr, op, value string }

var (
	udevTokenRe = regexp.MustCompile(`^\s*([A-Z_]+)(?:\{([^}]*)\})?\s*(==|!=|\+=|-=|:=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)`)
	// udev.rules(7), systemd 252.
	udevMatchKeys  = map[string]bool{"ACTION": true, "DEVPATH": true, "KERNEL": true, "KERNELS": true, "SUBSYSTEM": true, "SUBSYSTEMS": true, "DRIVER": true, "DRIVERS": true, "ATTR": true, "ATTRS": true, "SYSCTL": true, "TAG": true, "TAGS": true, "ENV": true, "CONST": true, "TEST": true, "PROGRAM": true, "RESULT": true, "NAME": true, "SYMLINK": true}
	udevAssignKeys = map[string]bool{"NAME": true, "SYMLINK": true, "OWNER": true, "GROUP": true, "MODE": true, "SECLABEL": true, "ATTR": true, "SYSCTL": true, "ENV": true, "TAG": true, "RUN": true, "LABEL": true, "GOTO": true, "IMPORT": true, "OPTIONS": true}
)

func parseUdevRules(text string) ([][]udevToken, []error) {
	var (
		rules [][]udevToken
		errs  []error
	)
	text = strings.ReplaceAll(text, "\\\n", "")
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var rule []udevToken
		rest := line
		for rest != "" {
			m := udevTokenRe.FindStringSubmatch(rest)
			if m == nil {
				errs = append(errs, fmt.Errorf("line %d: cannot parse at %q", n+1, rest))
				break
			}
			tok := udevToken{key: m[1], attr: m[2], op: m[3], value: m[4]}
			match := tok.op == "==" || tok.op == "!="
			if match && !udevMatchKeys[tok.key] || !match && !udevAssignKeys[tok.key] {
				errs = append(errs, fmt.Errorf("line %d: %s%s is not a valid use of %s", n+1, tok.key, tok.op, tok.key))
			}
			if (tok.key == "ENV" || tok.key == "ATTR" || tok.key == "ATTRS") && tok.attr == "" {
				errs = append(errs, fmt.Errorf("line %d: %s needs {name}", n+1, tok.key))
			}
			rule = append(rule, tok)
			rest = strings.TrimSpace(rest[len(m[0]):])
		}
		rules = append(rules, rule)
	}
	return rules, errs
}

// matches evaluates a rule's ==/!= keys against a uevent (patterns are
// fnmatch globs with '|' alternatives, as udev has them).
func matches(rule []udevToken, ev map[string]string) bool {
	for _, tok := range rule {
		if tok.op != "==" && tok.op != "!=" {
			continue
		}
		v := ev[tok.key]
		if tok.key == "ENV" {
			v = ev[tok.attr]
		}
		hit := false
		for _, alt := range strings.Split(tok.value, "|") {
			if ok, _ := path.Match(alt, v); ok {
				hit = true
			}
		}
		if hit != (tok.op == "==") {
			return false
		}
	}
	return true
}

func TestUdevRule(t *testing.T) {
	data, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	rules, errs := parseUdevRules(string(data))
	for _, e := range errs {
		t.Error(e)
	}
	if len(rules) != 1 {
		t.Fatalf("%d rules, want 1", len(rules))
	}
	rule := rules[0]
	vscsi := func(action string) map[string]string {
		return map[string]string{"SUBSYSTEM": "xen-backend", "KERNEL": "vscsi-5-0", "ACTION": action, "DEVPATH": "/devices/vscsi-5-0",
			"XENBUS_TYPE": "vscsi", "XENBUS_PATH": "backend/vscsi/5/0", "XENBUS_BASE_PATH": "backend"}
	}
	for ev, want := range map[string]bool{"add": true, "remove": true, "bind": false, "unbind": false, "change": false} {
		if got := matches(rule, vscsi(ev)); got != want {
			t.Errorf("ACTION=%s: match %v, want %v", ev, got, want)
		}
	}
	for _, other := range []map[string]string{
		{"SUBSYSTEM": "xen-backend", "KERNEL": "vbd-5-51712", "ACTION": "add"},
		{"SUBSYSTEM": "xen-backend", "KERNEL": "vif-5-0", "ACTION": "add"},
		{"SUBSYSTEM": "scsi", "KERNEL": "vscsi-5-0", "ACTION": "add"},
	} {
		if matches(rule, other) {
			t.Errorf("matches %v", other)
		}
	}
	var run []string
	udevCall := false
	for _, tok := range rule {
		switch {
		case tok.key == "RUN":
			run = append(run, tok.value)
		case tok.key == "ENV" && tok.attr == "UDEV_CALL" && tok.op == "=" && tok.value == "1":
			udevCall = true
		}
	}
	if !udevCall {
		t.Error("the rule does not set UDEV_CALL=1 (the script's guard relies on it)")
	}
	if len(run) != 1 {
		t.Fatalf("RUN entries %v", run)
	}
	f := strings.Fields(run[0])
	if len(f) != 2 || f[0] != "/etc/xen/scripts/"+filepath.Base(wrapperPath(t)) || f[1] != "$env{ACTION}" {
		t.Errorf("RUN %q: want the installed wrapper with $env{ACTION}", run[0])
	}
	if out, err := exec.Command("udevadm", "verify", "--help").CombinedOutput(); err == nil {
		if out, err := exec.Command("udevadm", "verify", rulesFile).CombinedOutput(); err != nil {
			t.Errorf("udevadm verify: %v\n%s", err, out)
		}
	} else {
		t.Logf("udevadm verify not available (%v %s); the parser above checked the syntax", err, strings.TrimSpace(string(out)))
	}
}

// The parser itself must reject what udev rejects, or the test above
// proves nothing.
func TestUdevParserRejects(t *testing.T) {
	if _, errs := parseUdevRules(`SUBSYSTEM=="xen-backend", KERNEL=="vscsi-*", ENV{UDEV_CALL}="1", RUN+="/x $env{ACTION}"`); len(errs) != 0 {
		t.Errorf("good rule rejected: %v", errs)
	}
	for _, bad := range []string{
		`SUBSYSTEM="xen-backend", RUN+="/x"`,   // assignment to a match-only key
		`RUN=="/x"`,                            // match on an assignment-only key
		`SUBSYSTEM=="xen-backend" RUN+="/x"`,   // no comma between tokens
		`SUBSYSTEM=="xen-backend", FOO=="bar"`, // unknown key
		`ENV="1"`,                              // ENV without {name}
		`SUBSYSTEM=="xen-backend", RUN+=/x`,    // unquoted value
		`KERNEL=="vscsi*", RUN+="/x $env{A}`,   // unterminated quote
	} {
		if _, errs := parseUdevRules(bad); len(errs) == 0 {
			t.Errorf("parser accepted %q", bad)
		}
	}
}
