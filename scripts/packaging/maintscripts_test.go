package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The Debian maintainer scripts call systemd only when systemd runs
// (/run/systemd/system exists) and the install is not chrootless
// (DPKG_ROOT): each script runs in a private mount namespace whose /run is
// a fresh tmpfs, with or without run/systemd/system, and with
// systemctl, deb-systemd-helper and deb-systemd-invoke replaced by fakes
// that log their arguments. The host's /run is never touched.
func TestMaintainerScripts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a private mount namespace")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare not installed")
	}
	bin := t.TempDir()
	fake := `#!/bin/sh
echo "$(basename "$0") $*" >>"$FAKELOG"
if [ "$(basename "$0")" = deb-systemd-helper ] && [ "$1" = --quiet ] && [ "$2" = is-enabled ]; then
	exit "${FAKE_ENABLED:-0}"
fi
exit 0
`
	for _, n := range []string{"systemctl", "deb-systemd-helper", "deb-systemd-invoke"} {
		if err := os.WriteFile(filepath.Join(bin, n), []byte(fake), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script := func(name string) string {
		p, err := filepath.Abs(filepath.Join("deb", name))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	// run executes a maintainer script and returns the fake calls, one per
	// line.
	run := func(systemd bool, env []string, name string, args ...string) string {
		t.Helper()
		log := filepath.Join(t.TempDir(), "calls")
		setup := "mount -t tmpfs none /run"
		if systemd {
			setup += " && mkdir -p /run/systemd/system"
		}
		cmd := exec.Command("unshare", append([]string{"-m", "sh", "-c", setup + ` && exec "$0" "$@"`, script(name)}, args...)...)
		cmd.Env = append(append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "FAKELOG="+log), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			if strings.Contains(string(out), "unshare") || strings.Contains(string(out), "mount") {
				t.Skipf("no private mount namespace here: %s", out)
			}
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		b, _ := os.ReadFile(log)
		return strings.TrimSpace(string(b))
	}
	const (
		be = "vscsi-backend.service"
		aa = "vscsi-autoattach.service"
	)
	cases := []struct {
		what    string
		systemd bool
		env     []string
		script  string
		args    []string
		want    []string
	}{
		{"first install, systemd running", true, nil, "postinst", []string{"configure", ""}, []string{
			"systemctl --system daemon-reload",
			"deb-systemd-helper enable " + be, "deb-systemd-helper --quiet is-enabled " + be, "deb-systemd-invoke restart " + be,
			"deb-systemd-helper enable " + aa, "deb-systemd-helper --quiet is-enabled " + aa, "deb-systemd-invoke restart " + aa,
		}},
		{"first install, no systemd", false, nil, "postinst", []string{"configure", ""}, nil},
		{"first install, chrootless", true, []string{"DPKG_ROOT=/tmp/x"}, "postinst", []string{"configure", ""}, nil},
		{"upgrade of disabled units", true, []string{"FAKE_ENABLED=1"}, "postinst", []string{"configure", "0.0.9-1"}, []string{
			"systemctl --system daemon-reload",
			"deb-systemd-helper --quiet is-enabled " + be,
			"deb-systemd-helper --quiet is-enabled " + aa,
		}},
		{"upgrade of enabled units", true, nil, "postinst", []string{"configure", "0.0.9-1"}, []string{
			"systemctl --system daemon-reload",
			"deb-systemd-helper --quiet is-enabled " + be, "deb-systemd-invoke restart " + be,
			"deb-systemd-helper --quiet is-enabled " + aa, "deb-systemd-invoke restart " + aa,
		}},
		{"abort-upgrade", true, nil, "postinst", []string{"abort-upgrade", "0.1.0-1"}, nil},
		{"remove", true, nil, "prerm", []string{"remove"}, []string{
			"deb-systemd-invoke stop " + aa, "deb-systemd-helper disable " + aa,
			"deb-systemd-invoke stop " + be, "deb-systemd-helper disable " + be,
		}},
		{"remove, no systemd", false, nil, "prerm", []string{"remove"}, nil},
		{"upgrade stops only", true, nil, "prerm", []string{"upgrade", "0.2.0-1"}, []string{
			"deb-systemd-invoke stop " + aa, "deb-systemd-invoke stop " + be,
		}},
		{"postrm remove", true, nil, "postrm", []string{"remove"}, []string{"systemctl --system daemon-reload"}},
	}
	for _, c := range cases {
		got := run(c.systemd, c.env, c.script, c.args...)
		if want := strings.Join(c.want, "\n"); got != want {
			t.Errorf("%s (%s %v):\n--- got\n%s\n--- want\n%s", c.what, c.script, c.args, got, want)
		}
	}

	// purge, chrootless: no systemd calls, the enable links and the empty
	// /etc/govscsi under DPKG_ROOT go.
	root := t.TempDir()
	wants := filepath.Join(root, "etc/systemd/system/multi-user.target.wants")
	if err := os.MkdirAll(wants, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "etc/govscsi"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{be, aa, "other.service"} {
		if err := os.Symlink("/lib/systemd/system/"+u, filepath.Join(wants, u)); err != nil {
			t.Fatal(err)
		}
	}
	if got := run(true, []string{"DPKG_ROOT=" + root}, "postrm", "purge"); got != "" {
		t.Errorf("chrootless purge called: %s", got)
	}
	left, _ := filepath.Glob(filepath.Join(wants, "*"))
	if len(left) != 1 || filepath.Base(left[0]) != "other.service" {
		t.Errorf("enable links after purge: %v", left)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/govscsi")); err == nil {
		t.Errorf("/etc/govscsi left after purge")
	}
}
