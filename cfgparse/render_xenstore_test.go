package cfgparse

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/govscsi/govscsi/libxlgo/xsfake"
)

// This test applies rendered writes with the real xenstore-* tools
// (Debian's xenstore-utils, through the real libxenstore) to the xsfake
// server, the way the Xen test ground did by hand (protocol.md §2.3): parent
// directories first with xenstore-chmod, then every node in one
// xenstore-write (one transaction). It proves that the permissions our
// Write list claims are what the nodes really get by inheritance, and that
// each domain can then do exactly its part of the protocol.

func xsTool(t *testing.T, socket, name string, args ...string) (string, bool) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = []string{"XENSTORED_PATH=" + socket, "PATH=/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	return string(out), err == nil
}

// applyWithTools applies ws: dirs one by one (write "" then chmod), then
// all nodes in a single xenstore-write. Node perms are not set: they must
// come from the dirs.
func applyWithTools(t *testing.T, socket string, ws []Write) {
	t.Helper()
	var pairs []string
	for _, w := range ws {
		if w.Kind == KindDir {
			if out, ok := xsTool(t, socket, "xenstore-write", w.Path, ""); !ok {
				t.Fatalf("xenstore-write %s: %s", w.Path, out)
			}
			args := append([]string{w.Path}, strings.Fields(w.Perms.String())...)
			if out, ok := xsTool(t, socket, "xenstore-chmod", args...); !ok {
				t.Fatalf("xenstore-chmod %v: %s", args, out)
			}
			continue
		}
		pairs = append(pairs, w.Path, w.Value)
	}
	if out, ok := xsTool(t, socket, "xenstore-write", pairs...); !ok {
		t.Fatalf("xenstore-write (%d pairs): %s", len(pairs)/2, out)
	}
}

func TestRenderAppliedWithXenstoreTools(t *testing.T) {
	for _, tool := range []string{"xenstore-write", "xenstore-chmod", "xenstore-read"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (Debian xenstore-utils): %v", tool, err)
		}
	}
	srv := xsfake.StartT(t)
	const guest, be, other = 7, 3, 9
	sock := map[int]string{}
	for _, d := range []int{guest, be, other} {
		p, err := srv.ListenDomain(uint32(d))
		if err != nil {
			t.Fatal(err)
		}
		sock[d] = p
		srv.IntroduceDomain(uint32(d))
	}
	d := Domains{Frontend: guest, Backend: be}
	plan, err := Group([]Device{
		{Origin: Origin{Entry: 0}, VDev: HCTL{0, 0, 0, 0}, PDev: "naa.5001405012345678:3", PDevName: "/dev/sdb"},
		{Origin: Origin{Entry: 1}, VDev: HCTL{2, 0, 1, 0}, PDev: "8:0:2:2", FeatureHost: true},
	}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	ws := plan.Render(d)
	applyWithTools(t, srv.Socket, ws)

	snap := srv.Snapshot()
	for _, w := range ws {
		n, ok := snap[w.Path]
		if !ok {
			t.Errorf("%s missing after apply", w.Path)
			continue
		}
		if n.Value != w.Value || n.Perms.String() != w.Perms.String() {
			t.Errorf("%s = %q (%s), the Write says %q (%s)", w.Path, n.Value, n.Perms, w.Value, w.Perms)
		}
	}
	// Intermediate directories the writes created implicitly (vhost dirs,
	// vscsi-devs, dev-N) carry their side's permissions too.
	for p, n := range snap {
		var want string
		switch {
		case strings.HasPrefix(p, FrontendRoot(d)):
			want = "n7 r3"
		case strings.HasPrefix(p, BackendRoot(d)):
			want = "n3 r7"
		default:
			continue
		}
		if n.Perms.String() != want {
			t.Errorf("%s has perms %q, want %q", p, n.Perms, want)
		}
	}

	mustOK := func(dom int, args ...string) {
		t.Helper()
		if out, ok := xsTool(t, sock[dom], args[0], args[1:]...); !ok {
			t.Errorf("dom%d: %v failed: %s", dom, args, out)
		}
	}
	mustFail := func(dom int, args ...string) {
		t.Helper()
		if out, ok := xsTool(t, sock[dom], args[0], args[1:]...); ok {
			t.Errorf("dom%d: %v succeeded (%q), want permission denied", dom, args, out)
		}
	}
	bePath, fePath := BackendPath(d, 0), FrontendPath(d, 0)
	// The guest reads its backend's tree and drives its own (scsifront
	// writes ring-ref, event-channel, state, dev states)...
	mustOK(guest, "xenstore-read", bePath+"/vscsi-devs/dev-0/v-dev")
	mustOK(guest, "xenstore-read", bePath+"/feature-host")
	mustOK(guest, "xenstore-write", fePath+"/ring-ref", "8", fePath+"/event-channel", "8", fePath+"/state", "3")
	mustOK(guest, "xenstore-write", fePath+"/vscsi-devs/dev-0/state", "4")
	// ... but cannot touch the backend's.
	mustFail(guest, "xenstore-write", bePath+"/vscsi-devs/dev-0/p-dev", "naa.1:0")
	mustFail(guest, "xenstore-write", bePath+"/state", "4")
	// The backend domain reads the frontend and drives its own tree
	// (xen-scsiback writes feature-sg-grant, state, dev states).
	mustOK(be, "xenstore-read", fePath+"/ring-ref")
	mustOK(be, "xenstore-read", fePath+"/backend")
	mustOK(be, "xenstore-write", bePath+"/feature-sg-grant", "128", bePath+"/state", "4", bePath+"/vscsi-devs/dev-0/state", "4")
	mustFail(be, "xenstore-write", fePath+"/state", "6")
	// A third domain sees neither.
	mustFail(other, "xenstore-read", bePath+"/vscsi-devs/dev-0/p-dev")
	mustFail(other, "xenstore-read", fePath+"/state")

	// A hot-add applied the same way (one transaction) gets the backend's
	// permissions for the new dev nodes and sets the vhost to 7.
	add := RenderHotAdd(d, 0, []VHostDev{{ID: 1, Device: Device{VDev: HCTL{0, 0, 1, 0}, PDev: "naa.5001405012345678:10", PDevName: "/dev/sdc"}}})
	applyWithTools(t, srv.Socket, add)
	snap = srv.Snapshot()
	for _, w := range add {
		if n := snap[w.Path]; n.Value != w.Value || n.Perms.String() != "n3 r7" {
			t.Errorf("hot-add %s = %q (%s)", w.Path, n.Value, n.Perms)
		}
	}
	if snap[bePath+"/state"].Value != "7" {
		t.Errorf("vhost state after hot-add: %q", snap[bePath+"/state"].Value)
	}
}
