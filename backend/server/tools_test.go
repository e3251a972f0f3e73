package server

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/govscsi/govscsi/backend/ring"
	"github.com/govscsi/govscsi/backend/vscsiif"
	"github.com/govscsi/govscsi/libxlgo/xenfake"
	"github.com/govscsi/govscsi/libxlgo/xenif"
	"github.com/govscsi/govscsi/libxlgo/xs"
	"github.com/govscsi/govscsi/libxlgo/xsfake"
	"github.com/govscsi/govscsi/tests/simpeer"
)

// TestXenstoreToolsDriveTheBackend plays the toolstack with the real
// xenstore-utils binaries (xenstore-write, -chmod, -read, -rm, as a
// libxl-style shell script would) against a backend on real libxenstore:
// create a vhost, hot-remove its device, remove the vhost (online=0,
// state=5), delete the nodes.
func TestXenstoreToolsDriveTheBackend(t *testing.T) {
	for _, tool := range []string{"xenstore-write", "xenstore-chmod", "xenstore-read", "xenstore-rm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (xenstore-utils): %v", tool, err)
		}
	}
	srv := xsfake.StartT(t) // XENSTORED_PATH for libxenstore and the tools
	xsx := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	waitTool := func(path, want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			out, err := exec.Command("xenstore-read", path).Output()
			if err == nil && strings.TrimSpace(string(out)) == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never became %q (last %q)\n%s", path, want, out, srv.Dump())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	store, err := xs.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	xsx("xenstore-write", "/local/domain/0/domid", "0")

	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig([]byte("stats_socket: none\nstate_dir: " + t.TempDir() + "\nallow_paths: [" + dir + "]\n"))
	if err != nil {
		t.Fatal(err)
	}
	grants, hub := xenfake.NewGrants(), xenfake.NewEventHub()
	s, err := New(cfg, Deps{Store: store, Grants: grants, OpenEvents: func() (xenif.EventChannel, error) { return hub.Open(0) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-runErr; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	const domid = 3
	be, fe := "/local/domain/0/backend/vscsiu/3/0", "/local/domain/3/device/vscsi/0"
	srv.IntroduceDomain(domid)
	xsx("xenstore-write", "/local/domain/3/domid", "3")
	xsx("xenstore-chmod", "/local/domain/3", "n3", "r0")
	xsx("xenstore-write", fe+"/backend", be, fe+"/backend-id", "0", fe+"/state", "1")
	xsx("xenstore-chmod", "-r", fe, "n3", "r0")
	xsx("xenstore-write", be+"/frontend", fe, be+"/frontend-id", "3", be+"/online", "1", be+"/state", "1",
		be+"/vscsi-devs/dev-0/p-dev", "file:"+img, be+"/vscsi-devs/dev-0/v-dev", "0:0:0:0", be+"/vscsi-devs/dev-0/state", "1",
		be+"/vscsi-devs/dev-1/p-dev", "ram:1M", be+"/vscsi-devs/dev-1/v-dev", "0:0:1:0", be+"/vscsi-devs/dev-1/state", "1")
	xsx("xenstore-chmod", "-r", be, "n0", "r3")

	gstore, err := srv.Connect(domid)
	if err != nil {
		t.Fatal(err)
	}
	defer gstore.Close()
	page := make([]byte, vscsiif.PageSize)
	if _, err := ring.NewFront(page, vscsiif.RequestSize); err != nil {
		t.Fatal(err)
	}
	ref := grants.Grant(domid, page, false)
	port := hub.Guest(domid).AllocUnbound(0)
	fr := &simpeer.Frontend{Store: gstore, Domid: domid, RingRef: strconv.Itoa(int(ref)), EventChannel: strconv.Itoa(int(port))}
	stopFE := simpeer.Start(fr.Run)
	defer stopFE()

	waitTool(be+"/state", "4")
	waitTool(be+"/vscsi-devs/dev-0/state", "4")
	waitTool(be+"/vscsi-devs/dev-1/state", "4")
	if v := xsx("xenstore-read", be+"/feature-sg-grant"); v != "128" {
		t.Errorf("feature-sg-grant %q", v)
	}

	// Hot-remove dev-1 the way SUSE's libxl does.
	xsx("xenstore-write", be+"/vscsi-devs/dev-1/state", "5", be+"/state", "7")
	waitTool(be+"/vscsi-devs/dev-1/state", "6")
	waitTool(be+"/state", "4")
	xsx("xenstore-rm", be+"/vscsi-devs/dev-1")

	// Remove the vhost: online=0, state=5, wait for 6, delete.
	xsx("xenstore-write", be+"/online", "0", be+"/state", "5")
	waitTool(be+"/state", "6")
	waitTool(fe+"/state", "6")
	xsx("xenstore-rm", be)
	xsx("xenstore-rm", fe)
	deadline := time.Now().Add(5 * time.Second)
	for grants.Mapped() != 0 || len(s.Backend().Vhosts()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after removal: %d grants mapped, vhosts %+v", grants.Mapped(), s.Backend().Vhosts())
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if out, err := exec.Command("xenstore-read", be+"/state").CombinedOutput(); err == nil {
		t.Errorf("backend node re-created after removal: %s", out)
	}
}
