package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/govscsi/govscsi/backend/stats"
	"github.com/govscsi/govscsi/plugin/internal/rigtest"
	"github.com/govscsi/govscsi/tests/simpeer"
)

// `apply --dry-run --flavour userspace` prints the writes of cfgparse's
// userspace golden file (backend/vscsiu, p-devs as given).
func TestCLIApplyDryRunUserspace(t *testing.T) {
	out, errs, code := runFixture(t, "apply", cfgTestdata+"/vscsi/userspace.cfg", "5", "--dry-run", "--flavour", "userspace")
	want, err := os.ReadFile(cfgTestdata + "/vscsi/userspace.golden")
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 || out != string(want) {
		t.Fatalf("exit %d, stderr %q\n%s\nwant\n%s", code, errs, out, want)
	}
	// --backend-type overrides the flavour's type.
	out, _, code = runFixture(t, "apply", cfgTestdata+"/vscsi/userspace.cfg", "5", "--dry-run", "--flavour", "userspace", "--backend-type", "vscsi")
	if code != 0 || strings.Contains(out, "vscsiu") || !strings.Contains(out, "/local/domain/0/backend/vscsi/5/0/vscsi-devs/dev-1/p-dev = \"ram:64M,ro\"") {
		t.Errorf("--backend-type vscsi:\n%s", out)
	}
	_, errs, code = runFixture(t, "apply", cfgTestdata+"/vscsi/userspace.cfg", "5", "--dry-run", "--backend-type", "Bad/Type")
	if code == 0 || !strings.Contains(errs, `"Bad/Type"`) {
		t.Errorf("bad backend type: exit %d %q", code, errs)
	}
	// The kernel flavour refuses the userspace forms, naming them.
	_, errs, code = runFixture(t, "apply", cfgTestdata+"/vscsi/userspace.cfg", "5", "--dry-run")
	if code == 0 || !strings.Contains(errs, `"file:/srv/vm/disk0.img"`) || !strings.Contains(errs, `"ro"`) {
		t.Errorf("kernel flavour with userspace p-devs: exit %d %s", code, errs)
	}
}

// The CLI end to end with the REAL userspace backend (backend/server on
// its own libxenstore connection, xenfake grants and event channels, a
// stats socket) and a simpeer guest 7 with a granted ring:
// scsi-attach --flavour userspace (ram: and file:), scsi-list shows the
// vscsiu vhost, stats reads the backend's counters through the socket
// (table and --json), scsi-detach and destroy-vhost clean up.
func TestCLIUserspaceBackendAndStats(t *testing.T) {
	r := newCLIRig(t, nil)
	const guest = 7
	r.Mkdir("/local/domain/0/backend/vscsiu", rigtest.N0)
	r.Guest(guest, "guest7")

	// The stats socket's path must be short (107 bytes): not in t.TempDir.
	sockDir, err := os.MkdirTemp("", "xlvs")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	sock := filepath.Join(sockDir, "stats.sock")
	b := rigtest.StartBackend(t, fmt.Sprintf("stats_socket: %s\nmax_ram: 16M\ntimeouts: {shutdown: 2s}\n", sock), hclog.NewNullLogger())
	defer b.Stop()
	img := b.Img

	ref, port := b.GuestRing(t, guest)
	gs, err := r.Srv.Connect(guest)
	if err != nil {
		t.Fatal(err)
	}
	defer gs.Close()
	stopFE := simpeer.Start((&simpeer.Frontend{Store: gs, Domid: guest, RingRef: ref, EventChannel: port}).Run)
	defer stopFE()

	r.ok("scsi-attach", "--flavour", "userspace", "guest7", "ram:4M", "0:0:0:0")
	r.ok("--flavour", "userspace", "scsi-attach", "7", "file:"+img, "0:0:1:0,ro")
	if got := r.read("/local/domain/0/backend/vscsiu/7/0/vscsi-devs/dev-1/p-dev"); got != "file:"+img+",ro" {
		t.Errorf("p-dev %q", got)
	}
	out := r.ok("scsi-list", "guest7")
	if !strings.Contains(out, "7   0     vscsiu 0   4        4        dev-0 0:0:0:0 4      4      ram:4M") {
		t.Errorf("scsi-list:\n%s", out)
	}

	out = r.ok("stats", "--socket", sock)
	t.Logf("xl-vscsi stats:\n%s", out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 5 || !strings.HasPrefix(lines[0], "Dom Vhost Dev") || !strings.Contains(out, "p50-us") ||
		!strings.Contains(lines[1], "ram:4M") || !strings.Contains(lines[2], "file:"+img+",ro") ||
		!strings.Contains(out, "Connected") || !strings.Contains(out, " true ") {
		t.Errorf("stats:\n%s", out)
	}
	var snap stats.Snapshot
	if err := json.Unmarshal([]byte(r.ok("stats", "--socket", sock, "--json")), &snap); err != nil {
		t.Fatal(err)
	}
	if len(snap.LUNs) != 2 || snap.LUNs[0].Domid != guest || snap.LUNs[0].Addr != "0:0:0" || len(snap.Vhosts) != 1 || !snap.Vhosts[0].Connected {
		t.Errorf("stats --json: %+v", snap)
	}
	_, errs, code := r.run("stats", "--socket", filepath.Join(sockDir, "nope.sock"))
	if code == 0 || !strings.Contains(errs, "nope.sock") {
		t.Errorf("stats without a backend: exit %d %q", code, errs)
	}

	r.ok("scsi-detach", "guest7", "0:0:1:0")
	r.ok("destroy-vhost", "guest7", "0")
	if v := r.read("/local/domain/0/backend/vscsiu/7/0"); !strings.HasPrefix(v, "(") {
		t.Errorf("vhost left: %q", v)
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[uint64]string{0: "0", 1023: "1023", 4096: "4.0K", 3 << 20: "3.0M", 1 << 40: "1.0T"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestCLIBackendStop: backend-stop is a handover (the guest's vhost stays
// connected, 4/4) and backend-stop --disconnect closes it (6/6); both wait
// for the backend to finish and say what became of the vhosts.
func TestCLIBackendStop(t *testing.T) {
	for _, c := range []struct {
		flags   []string
		state   string
		saying  string
		stopped string
	}{
		{nil, "4", "left connected for the next vscsi-backend", "handover"},
		{[]string{"--disconnect"}, "6", "disconnected", "disconnect"},
	} {
		t.Run(c.stopped, func(t *testing.T) {
			r := newCLIRig(t, nil)
			const guest = 7
			r.Mkdir("/local/domain/0/backend/vscsiu", rigtest.N0)
			r.Guest(guest, "guest7")
			sockDir, err := os.MkdirTemp("", "xlvs")
			if err != nil {
				t.Fatal(err)
			}
			defer os.RemoveAll(sockDir)
			sock := filepath.Join(sockDir, "stats.sock")
			b := rigtest.StartBackend(t, fmt.Sprintf("stats_socket: %s\nmax_ram: 16M\ntimeouts: {shutdown: 2s}\n", sock), hclog.NewNullLogger())
			defer b.Stop()
			ref, port := b.GuestRing(t, guest)
			gs, err := r.Srv.Connect(guest)
			if err != nil {
				t.Fatal(err)
			}
			defer gs.Close()
			stopFE := simpeer.Start((&simpeer.Frontend{Store: gs, Domid: guest, RingRef: ref, EventChannel: port}).Run)
			defer stopFE()
			r.ok("scsi-attach", "--flavour", "userspace", "guest7", "ram:4M", "0:0:0:0")

			out := r.ok(append([]string{"backend-stop", "--socket", sock}, c.flags...)...)
			if !strings.Contains(out, "1 vhosts "+c.saying) {
				t.Errorf("backend-stop said %q", out)
			}
			if v := r.read("/local/domain/0/backend/vscsiu/7/0/state"); v != c.state {
				t.Errorf("BE state %q after backend-stop %v, want %s", v, c.flags, c.state)
			}
			if v := r.read("/local/domain/7/device/vscsi/0/state"); v != c.state {
				t.Errorf("FE state %q after backend-stop %v, want %s", v, c.flags, c.state)
			}
			if _, errs, code := r.run("backend-stop", "--socket", sock); code == 0 || !strings.Contains(errs, "stats.sock") {
				t.Errorf("backend-stop of a stopped backend: exit %d %q", code, errs)
			}
		})
	}
}
