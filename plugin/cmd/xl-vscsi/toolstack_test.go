package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govscsi/govscsi/libxlgo/xenif"
	"github.com/govscsi/govscsi/plugin/internal/rigtest"
	"github.com/govscsi/govscsi/tests/simpeer"
)

// cliRig: an xsfake server (XENSTORED_PATH set, so the commands use the
// real libxenstore), domain 5 "guest5", the scripted backend and
// frontends for domains 5 and 6, and a fake xl (shell, driving the real
// xenstore-utils) that "creates" domain 6.
type cliRig struct {
	*rigtest.Host
	t     *testing.T
	xlLog string
}

const pdevA, pdevB = "naa.5001405012345678:0", "naa.5001405012345678:1"

func newCLIRig(t *testing.T, resolvable func(string) bool) *cliRig {
	r := &cliRig{Host: rigtest.NewHost(t), t: t}
	r.Mkdir("/local/domain/0/backend/vscsi", rigtest.N0)
	r.Guest(5, "guest5")

	bs, _ := r.Srv.Connect(0)
	stop := simpeer.Start((&simpeer.Backend{Store: bs, Resolvable: resolvable, DevErrors: true}).Run)
	t.Cleanup(func() { stop(); bs.Close() })
	for _, d := range []uint32{5, 6} {
		fs, _ := r.Srv.Connect(d)
		stop := simpeer.Start((&simpeer.Frontend{Store: fs, Domid: d}).Run)
		t.Cleanup(func() { stop(); fs.Close() })
	}

	dir := t.TempDir()
	r.xlLog = filepath.Join(dir, "xl.log")
	xl := filepath.Join(dir, "xl")
	script := `#!/bin/sh
echo "$*" >> "` + r.xlLog + `"
case "$1" in
create)
	d=6
	xenstore-write /local/domain/$d "" && xenstore-chmod /local/domain/$d n0 r$d &&
	xenstore-write /local/domain/$d/name fresh &&
	xenstore-write /local/domain/$d/device "" && xenstore-chmod /local/domain/$d/device n$d r0 ;;
restore)
	d=6
	xenstore-write /local/domain/$d "" && xenstore-chmod /local/domain/$d n0 r$d &&
	xenstore-write /local/domain/$d/name fresh &&
	xenstore-write /local/domain/$d/device "" && xenstore-chmod /local/domain/$d/device n$d r0 ;;
migrate-receive)
	# the stream: read what the sender sent, answer on stdout
	read -r line && echo "got $line"
	d=6
	xenstore-write /local/domain/$d "" && xenstore-chmod /local/domain/$d n0 r$d &&
	xenstore-write /local/domain/$d/name fresh--incoming &&
	xenstore-write /local/domain/$d/device "" && xenstore-chmod /local/domain/$d/device n$d r0 &&
	xenstore-write /local/domain/$d/name fresh ;;
migrate) ;;
unpause) ;;
destroy) xenstore-rm /local/domain/$2 ;;
*) exit 1 ;;
esac
`
	if err := os.WriteFile(xl, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XL", xl)
	return r
}

func (r *cliRig) run(args ...string) (string, string, int) {
	r.t.Helper()
	var out, errb bytes.Buffer
	code := runEnv(&env{stdout: &out, stderr: &errb, stat: fixtureStat(r.t)}, args)
	return out.String(), errb.String(), code
}

func (r *cliRig) ok(args ...string) string {
	r.t.Helper()
	out, errs, code := r.run(args...)
	if code != 0 {
		r.t.Fatalf("%v: exit %d: %s", args, code, errs)
	}
	return out
}

func (r *cliRig) read(p string) string {
	v, err := r.Admin.Read(xenif.NoTx, p)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return v
}

func TestCLIAttachListDetach(t *testing.T) {
	r := newCLIRig(t, nil)
	r.ok("scsi-attach", "guest5", pdevA, "0:0:0:0")
	out := r.ok("scsi-list", "guest5")
	want := "Dom Vhost Type  Idx BE-state FE-state Dev   V-dev   BE-dev FE-dev P-dev                  P-devname\n" +
		"5   0     vscsi 0   4        4        dev-0 0:0:0:0 4      4      " + pdevA + " -\n"
	if out != want {
		t.Errorf("scsi-list:\n%s\nwant\n%s", out, want)
	}
	// SUSE's separate 4th argument: a second vhost with feature-host.
	_, errs, code := r.run("vscsi-attach", "--flavour", "kernel", "5", pdevB, "1:0:0:0", "feature-host")
	if code != 0 || !strings.Contains(errs, "ignores feature-host") {
		t.Fatalf("attach with a 4th argument: exit %d %s", code, errs)
	}
	if got := r.read("/local/domain/0/backend/vscsi/5/1/feature-host"); got != "1" {
		t.Errorf("feature-host %q", got)
	}
	j := r.ok("vscsi-list", "--json", "5")
	if !strings.Contains(j, `"vhost": 1`) || !strings.Contains(j, `"feature_host": true`) {
		t.Errorf("--json:\n%s", j)
	}

	// Dry runs print and touch nothing.
	before := r.Srv.Dump()
	out = r.ok("scsi-detach", "--dry-run", "guest5", "0:0:0:0")
	if want := "/local/domain/0/backend/vscsi/5/0/vscsi-devs/dev-0/state = \"5\"\n/local/domain/0/backend/vscsi/5/0/state = \"7\"\n" +
		"rm /local/domain/0/backend/vscsi/5/0/vscsi-devs/dev-0\nrm /local/domain/5/device/vscsi/0/vscsi-devs/dev-0\n"; out != want {
		t.Errorf("detach --dry-run:\n%s\nwant\n%s", out, want)
	}
	out = r.ok("destroy-vhost", "--dry-run", "--json", "guest5", "1")
	if !strings.Contains(out, `"kind": "rm"`) || !strings.Contains(out, `"/local/domain/5/device/vscsi/1"`) {
		t.Errorf("destroy-vhost --dry-run --json:\n%s", out)
	}
	out = r.ok("scsi-attach", "--dry-run", "guest5", pdevB, "0:0:1:0")
	if !strings.Contains(out, "vscsi-devs/dev-1/p-dev = \""+pdevB+"\"") {
		t.Errorf("attach --dry-run:\n%s", out)
	}
	if r.Srv.Dump() != before {
		t.Errorf("a dry run changed xenstore")
	}

	r.ok("scsi-detach", "guest5", "0:0:0:0")
	if got := r.read("/local/domain/0/backend/vscsi/5/0/vscsi-devs/dev-0/state"); !strings.Contains(got, "no such file") {
		t.Errorf("dev-0 still there: %q", got)
	}
	r.ok("destroy-vhost", "guest5", "1")
	if got := r.read("/local/domain/0/backend/vscsi/5/1"); !strings.Contains(got, "no such file") {
		t.Errorf("vhost 1 still there: %q", got)
	}

	// Global options may precede the subcommand, as xl's do.
	if out := r.ok("--timeout", "5s", "--flavour=hctl", "scsi-list", "guest5"); !strings.HasPrefix(out, "Dom Vhost") || !strings.Contains(out, "\n5   0 ") {
		t.Errorf("global options: %q", out)
	}

	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--timeout", "soon", "scsi-list", "guest5"}, `invalid value "soon" for flag -timeout`},
		{[]string{"scsi-attach", "nosuch", pdevA, "0:0:0:0"}, `domain "nosuch": no such domain`},
		{[]string{"scsi-attach", "guest5", pdevA, "0:0:0"}, `"0:0:0"`},
		{[]string{"scsi-attach", "guest5", pdevA}, "Usage: xl-vscsi scsi-attach"},
		{[]string{"scsi-detach", "guest5", "0:0:9:0"}, "0:0:9:0 does not exist in domain 5"},
		{[]string{"scsi-detach", "guest5", "zero"}, `virtual device "zero"`},
		{[]string{"destroy-vhost", "guest5", "7"}, "vhost 7 does not exist in domain 5"},
		{[]string{"destroy-vhost", "guest5", "x"}, `vhost "x"`},
		{[]string{"scsi-list"}, "at least one <Domain>"},
		{[]string{"scsi-list", "guest5", "nosuch"}, `domain "nosuch"`},
	} {
		out, errs, code := r.run(c.args...)
		if code != 1 || out != "" || !strings.Contains(errs, c.msg) || !strings.HasPrefix(errs, "xl-vscsi ") {
			t.Errorf("%v: exit %d stdout %q stderr %q, want exit 1 and %q", c.args, code, out, errs, c.msg)
		}
	}
}

func TestCLIApplyCreateCleanup(t *testing.T) {
	r := newCLIRig(t, func(p string) bool { return p != "naa.5001405012345678:9" })
	dir := t.TempDir()
	good := filepath.Join(dir, "good.cfg")
	os.WriteFile(good, []byte("name = 'fresh'\nvscsi = [ '"+pdevA+",0:0:0:0', '"+pdevB+",0:0:1:0' ]\n"), 0o644)
	bad := filepath.Join(dir, "bad.cfg")
	os.WriteFile(bad, []byte("name = 'fresh'\nvscsi = [ 'naa.5001405012345678:9,0:0:0:0' ]\n"), 0o644)

	r.ok("apply", good, "guest5")
	if got := r.read("/local/domain/5/device/vscsi/0/vscsi-devs/dev-1/state"); got != "4" {
		t.Errorf("apply: frontend dev-1 state %q", got)
	}

	// create --dry-run checks the config and runs nothing.
	out := r.ok("create", "--dry-run", good, "--", "-q", "memory=256")
	if want := "xl create -p -q " + good + " memory=256\nxl-vscsi apply " + good + " <new domid>   (2 device(s))\nxl unpause <new domid>\n"; out != want {
		t.Errorf("create --dry-run:\n%s\nwant\n%s", out, want)
	}
	if _, err := os.Stat(r.xlLog); err == nil {
		t.Errorf("create --dry-run ran xl")
	}

	// create: xl create -p, apply, unpause.
	r.ok("create", good, "--", "-q", "memory=256")
	log, _ := os.ReadFile(r.xlLog)
	if string(log) != "create -p -q "+good+" memory=256\nunpause 6\n" {
		t.Errorf("xl calls:\n%s", log)
	}
	if got := r.read("/local/domain/0/backend/vscsi/6/0/vscsi-devs/dev-1/state"); got != "4" {
		t.Errorf("create: dev-1 state %q", got)
	}

	// A failing apply destroys the half-made domain.
	r.Admin.Rm(xenif.NoTx, "/local/domain/6")
	os.Remove(r.xlLog)
	_, errs, code := r.run("create", bad)
	log, _ = os.ReadFile(r.xlLog)
	if code != 1 || !strings.Contains(errs, "naa.5001405012345678:9") || !strings.Contains(errs, "domain 6 destroyed") ||
		string(log) != "create -p "+bad+"\ndestroy 6\n" {
		t.Errorf("create with a bad device: exit %d stderr %q xl calls %q", code, errs, log)
	}

	// Domain 6 is gone; its backend tree stays until cleanup (P26).
	r.Admin.Write(xenif.NoTx, "/local/domain/0/backend/vscsi/6/0/state", "6")
	out = r.ok("cleanup", "--dry-run")
	if out != "would remove the vscsi nodes of vanished domain 6\n" {
		t.Errorf("cleanup --dry-run: %q", out)
	}
	out = r.ok("cleanup", "--json")
	if out != `{"cleaned":[6],"dry_run":false}`+"\n" {
		t.Errorf("cleanup --json: %q", out)
	}
	if got := r.read("/local/domain/0/backend/vscsi/6"); !strings.Contains(got, "no such file") {
		t.Errorf("backend tree of domain 6: %q", got)
	}
}
