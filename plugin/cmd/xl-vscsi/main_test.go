package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govscsi/govscsi/cfgparse"
)

const (
	cfgTestdata = "../../../cfgparse/testdata"
	acceptance  = "vscsi = [ '8:0:2:1,0:0:0:0', '8:0:2:2,0:0:1:0' ]\n"
)

func writeCfg(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "guest.cfg")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// buildCLI builds the real binary, as `make build` does.
func buildCLI(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "xl-vscsi")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func execCLI(t *testing.T, bin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// TestAcceptance is issue 3's acceptance case, run on the built binary:
// `xl-vscsi apply --dry-run cfg 5` prints the seed's backend and frontend
// trees (cfgparse's TestSeedLayout checks that golden file against the
// seed text itself).
func TestAcceptance(t *testing.T) {
	bin := buildCLI(t)
	cfg := writeCfg(t, acceptance)
	out, errs, code := execCLI(t, bin, "apply", "--dry-run", cfg, "5")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	if want := readFile(t, cfgTestdata+"/vscsi/seed.golden"); out != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", out, want)
	}
	out, _, code = execCLI(t, bin, "apply", "--json", "--dry-run", cfg, "5")
	if want := readFile(t, cfgTestdata+"/vscsi/seed.json"); code != 0 || out != want {
		t.Errorf("--json: exit %d\n%s\nwant:\n%s", code, out, want)
	}
	// A real process exits 1 on bad input, with the message on stderr.
	out, errs, code = execCLI(t, bin, "apply", "--dry-run", cfg, "guest")
	if code != 1 || out != "" || !strings.Contains(errs, `domain "guest"`) {
		t.Errorf("bad domid: exit %d stdout %q stderr %q", code, out, errs)
	}
	if _, errs, code = execCLI(t, bin); code != 1 || !strings.Contains(errs, "Usage: xl-vscsi") {
		t.Errorf("no args: exit %d stderr %q", code, errs)
	}
}

// fixtureStat reads cfgparse/testdata/vscsi/devnodes.txt, the fake device
// nodes that go with the fixture sysfs tree.
func fixtureStat(t *testing.T) cfgparse.StatFunc {
	t.Helper()
	f, err := os.Open(cfgTestdata + "/vscsi/devnodes.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	nodes := map[string]cfgparse.DevNode{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) < 2 || strings.HasPrefix(fl[0], "#") {
			continue
		}
		n := cfgparse.DevNode{Block: fl[1] == "block", Char: fl[1] == "char"}
		if len(fl) > 2 {
			fmt.Sscanf(fl[2], "%d:%d", &n.Major, &n.Minor)
		}
		nodes[fl[0]] = n
	}
	return func(p string) (cfgparse.DevNode, error) {
		if n, ok := nodes[p]; ok {
			return n, nil
		}
		return cfgparse.DevNode{}, &fs.PathError{Op: "stat", Path: p, Err: fs.ErrNotExist}
	}
}

func runFixture(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := runEnv(&env{stdout: &out, stderr: &errb, stat: fixtureStat(t)}, args)
	return out.String(), errb.String(), code
}

// TestDevPathFixture: /dev pdevs resolved on the fixture trees write
// p-devname (and naa p-devs for the kernel flavour, h:c:t:l for hctl).
func TestDevPathFixture(t *testing.T) {
	roots := []string{"--sysfs-root", cfgTestdata + "/sysfs", "--configfs-root", cfgTestdata + "/sysfs/kernel/config"}
	out, errs, code := runFixture(t, append([]string{"apply", "--dry-run"}, append(roots, cfgTestdata+"/vscsi/devpath.cfg", "5")...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if want := readFile(t, cfgTestdata+"/vscsi/devpath.golden"); out != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", out, want)
	}
	if !strings.Contains(out, `/vscsi-devs/dev-0/p-devname = "/dev/disk/by-id/scsi-SATA_disk_sdb"`) {
		t.Errorf("no p-devname for the /dev pdev")
	}
	if !strings.Contains(errs, "xl-vscsi: ") || !strings.Contains(errs, "warning") || !strings.Contains(errs, "ignores feature-host") {
		t.Errorf("warnings missing on stderr: %q", errs)
	}
	// Flags after the positional arguments work too.
	out, errs, code = runFixture(t, append([]string{"apply", cfgTestdata + "/vscsi/hctl.cfg", "7", "--dry-run", "--flavour", "hctl", "--backend-domid", "3"}, roots...)...)
	if want := readFile(t, cfgTestdata+"/vscsi/hctl.golden"); code != 0 || out != want {
		t.Errorf("hctl: exit %d stderr %q\n%s\nwant:\n%s", code, errs, out, want)
	}
}

// TestCLIErrors: bad input gives exit 1 and a message naming the bad part;
// nothing panics.
func TestCLIErrors(t *testing.T) {
	// Without --dry-run apply talks to xenstore: make sure it is none.
	t.Setenv("XENSTORED_PATH", "/nonexistent/xenstored-socket")
	good := writeCfg(t, acceptance)
	badSpec := writeCfg(t, "vscsi = [ '8:0:2:1,0:0:0:0', '8:0:2:2,0:0:1:0,bogus' ]\n")
	syntax := writeCfg(t, "vscsi = [ '8:0:2:1,0:0:0:0'\n")
	none := writeCfg(t, "name = 'g'\n")
	twoBad := writeCfg(t, "vscsi = [ 'x,0:0:0:0', '8:0:2:1,0:0:0:65536' ]\n")
	conflict := writeCfg(t, "vscsi = [ '8:0:2:1,0:0:0:0', '8:0:2:2,0:0:0:0' ]\n")
	cases := []struct {
		name   string
		args   []string
		code   int
		stdout string // substring of stdout
		stderr []string
	}{
		{"no args", nil, 1, "", []string{"Usage: xl-vscsi <subcommand>", "apply"}},
		{"help", []string{"help"}, 0, "xl-vscsi full list of subcommands", nil},
		{"help apply", []string{"help", "apply"}, 0, "Usage: xl-vscsi apply [options] <ConfigFile> <Domain>", nil},
		{"apply -h", []string{"apply", "-h"}, 0, "-flavour kernel|hctl", nil},
		{"help unknown", []string{"help", "frob"}, 1, "", []string{`unknown command "frob"`}},
		{"unknown command", []string{"frob"}, 1, "", []string{`xl-vscsi: unknown command "frob"`}},
		{"bad flag", []string{"apply", "--dry-run", "--bogus", good, "5"}, 1, "", []string{"xl-vscsi apply: flag provided but not defined: -bogus", "Usage: xl-vscsi apply"}},
		{"bad flavour", []string{"apply", "--dry-run", "--flavour", "qemu", good, "5"}, 1, "", []string{`unknown backend flavour "qemu"`}},
		{"bad backend domid", []string{"apply", "--dry-run", "--backend-domid", "x1", good, "5"}, 1, "", []string{`domain "x1"`}},
		{"domid name", []string{"apply", "--dry-run", good, "guest"}, 1, "", []string{`domain "guest": domain names need xenstore`, "numeric domid"}},
		{"domid range", []string{"apply", "--dry-run", good, "32752"}, 1, "", []string{`domain id "32752" out of range (0-32751)`}},
		{"domid huge", []string{"apply", "--dry-run", good, "99999999999999999999"}, 1, "", []string{"out of range"}},
		{"domid empty", []string{"apply", "--dry-run", good, ""}, 1, "", []string{"empty domain id"}},
		{"own backend", []string{"apply", "--dry-run", good, "0"}, 1, "", []string{"domain 0 cannot be its own vscsi backend"}},
		{"too few args", []string{"apply", "--dry-run", good}, 1, "", []string{"want <ConfigFile> <Domain>, got 1 argument(s)", "Usage: xl-vscsi apply"}},
		{"too many args", []string{"apply", "--dry-run", good, "5", "6"}, 1, "", []string{"got 3 argument(s)"}},
		{"no xenstore", []string{"apply", good, "5"}, 1, "", []string{"cannot connect to xenstore", "/nonexistent/xenstored-socket"}},
		{"missing file", []string{"apply", "--dry-run", "/nonexistent/guest.cfg", "5"}, 1, "", []string{"/nonexistent/guest.cfg", "no such file"}},
		{"bad spec", []string{"apply", "--dry-run", badSpec, "5"}, 1, "", []string{`vscsi[1] "8:0:2:2,0:0:1:0,bogus": "bogus": unknown option`, badSpec + ":1:"}},
		{"syntax error", []string{"apply", "--dry-run", syntax, "5"}, 1, "", []string{syntax + ":"}},
		{"conflict", []string{"apply", "--dry-run", conflict, "5"}, 1, "", []string{"used twice", "vscsi[0]", "vscsi[1]"}},
		{"two bad specs", []string{"apply", "--dry-run", twoBad, "5"}, 1, "", []string{
			"xl-vscsi apply: " + twoBad + `:1:11: vscsi[0] "x,0:0:0:0": "x": pdev:`,
			"\nxl-vscsi apply: " + twoBad + `:1:24: vscsi[1] "8:0:2:1,0:0:0:65536": "0:0:0:65536": vdev: lun 65536 does not fit`}},
		{"no vscsi", []string{"apply", "--dry-run", none, "5"}, 0, "", []string{"no vscsi= entries"}},
		{"unresolvable", []string{"apply", "--dry-run", "--sysfs-root", t.TempDir(), writeCfg(t, "vscsi=['/dev/sdb,0:0:0:0']"), "5"}, 1, "", []string{`"/dev/sdb"`, "no major:minor entry in sysfs"}},
		{"after --", []string{"apply", "--dry-run", "--", good, "5"}, 0, "/local/domain/5/device/vscsi/0/state", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, errs, code := runFixture(t, c.args...)
			if code != c.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, c.code, errs)
			}
			if !strings.Contains(out, c.stdout) {
				t.Errorf("stdout %q, want it to contain %q", out, c.stdout)
			}
			if c.code != 0 && out != "" {
				t.Errorf("stdout %q on failure", out)
			}
			for _, s := range c.stderr {
				if !strings.Contains(errs, s) {
					t.Errorf("stderr %q, want it to contain %q", errs, s)
				}
			}
		})
	}
}

// TestRunDefaults: run() (what main calls) uses the real stat.
func TestRunDefaults(t *testing.T) {
	var out, errb bytes.Buffer
	cfg := writeCfg(t, "vscsi=['/dev/govscsi-none,0:0:0:0']\n")
	if code := run([]string{"apply", "--dry-run", cfg, "5"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "device node not found: /dev/govscsi-none") {
		t.Errorf("exit %d stderr %q", code, errb.String())
	}
}
