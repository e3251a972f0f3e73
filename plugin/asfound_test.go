package plugin_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/govscsi/govscsi/libxlgo/xenif"
	"github.com/govscsi/govscsi/plugin"
)

// treeDiff compares two whole-tree dumps (every node, value and
// permission) and lists the lines only one of them has.
func treeDiff(before, after string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	b, a := in(before), in(after)
	var out []string
	for _, l := range strings.Split(before, "\n") {
		if !a[l] {
			out = append(out, "- "+l)
		}
	}
	for _, l := range strings.Split(after, "\n") {
		if !b[l] {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// TestFailedAttachLeavesTreeAsFound: an attach that fails, whichever way,
// leaves the whole xenstore tree (every node, value and permission, of
// every domain and of /libxl) exactly as it found it, parents included.
// The checks compare full dumps of the real tree (xsfake) around the
// operation, which runs on the real libxenstore. (Failed creates left
// the parent directories they had created: /local/domain/0/backend/
// <type>/<domid>, and for a domain without /libxl/<domid> that directory
// and its device/ level.)
func TestFailedAttachLeavesTreeAsFound(t *testing.T) {
	fast := plugin.Options{InitTimeout: 300 * time.Millisecond, DestroyTimeout: 2 * time.Second}
	for _, c := range []struct {
		name  string
		opt   rigOpt
		setup func(r *rig)
		want  func(error) bool
	}{
		{"backend refuses", rigOpt{resolvable: func(p string) bool { return p != wwn2 }}, nil,
			func(err error) bool { var de *plugin.DeviceError; return errors.As(err, &de) && de.Side == "backend" }},
		{"frontend refuses", rigOpt{failAdd: func(v string) bool { return v == "0:0:0:0" }}, nil,
			func(err error) bool { var de *plugin.DeviceError; return errors.As(err, &de) && de.Side == "frontend" }},
		{"no frontend", rigOpt{noFrontend: true, opts: fast}, nil,
			func(err error) bool { return errors.Is(err, plugin.ErrTimeout) }},
		{"no backend", rigOpt{noBackend: true, opts: fast}, nil,
			func(err error) bool { return errors.Is(err, plugin.ErrTimeout) }},
		{"no /libxl/<domid>", rigOpt{resolvable: func(p string) bool { return p != wwn2 }},
			func(r *rig) {
				if err := r.Admin.Rm(xenif.NoTx, "/libxl/5"); err != nil {
					t.Fatal(err)
				}
			},
			func(err error) bool { var de *plugin.DeviceError; return errors.As(err, &de) }},
		{"no backend type directory", rigOpt{resolvable: func(p string) bool { return p != wwn2 }},
			func(r *rig) {
				if err := r.Admin.Rm(xenif.NoTx, "/local/domain/0/backend/vscsi"); err != nil {
					t.Fatal(err)
				}
			},
			func(err error) bool { var de *plugin.DeviceError; return errors.As(err, &de) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, c.opt)
			if c.setup != nil {
				c.setup(r)
			}
			before := r.Srv.Dump()
			_, err := r.ts.Attach(ctx(t), "guest5", wwn2, "0:0:0:0")
			if err == nil || !c.want(err) {
				t.Fatalf("attach: %v", err)
			}
			if d := treeDiff(before, r.Srv.Dump()); d != "" {
				t.Errorf("the failed attach changed the tree:\n%s", d)
			}
		})
	}
}

// TestFailedUserspaceAttachLeavesTreeAsFound: the same through the REAL
// userspace backend, on a host where nothing made backend/vscsiu yet: the
// backend refuses a p-dev outside allow_paths (dev-N/error), the
// toolstack rolls back, and neither /local/domain/0/backend/vscsiu nor the
// backend's error tree is left.
func TestFailedUserspaceAttachLeavesTreeAsFound(t *testing.T) {
	u := newUserspaceRig(t)
	if err := u.Admin.Rm(xenif.NoTx, "/local/domain/0/backend/vscsiu"); err != nil {
		t.Fatal(err)
	}
	before := u.Srv.Dump()
	_, err := u.user.Attach(ctx(t), "guest5", "file:/etc/passwd", "0:0:0:0")
	var de *plugin.DeviceError
	if !errors.As(err, &de) || de.Side != "backend" {
		t.Fatalf("attach outside allow_paths: %v", err)
	}
	if d := treeDiff(before, u.Srv.Dump()); d != "" {
		t.Errorf("the failed attach changed the tree:\n%s", d)
	}
}

// TestFailedHotAddLeavesTreeAsFound: a hot-add to a connected vhost that
// the backend or the guest refuses leaves the tree as found; the one
// deliberate exception is the vhost's next_vscsidev_id (dev ids are never
// reused: a backend that saw dev-N refuse and go must not meet another
// dev-N), which the check allows to move on.
func TestFailedHotAddLeavesTreeAsFound(t *testing.T) {
	for _, c := range []struct {
		name string
		opt  rigOpt
	}{
		{"backend refuses", rigOpt{resolvable: func(p string) bool { return p != wwn2 }}},
		{"frontend refuses", rigOpt{failAdd: func(v string) bool { return v == "0:0:1:0" }}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, c.opt)
			if _, err := r.ts.Attach(ctx(t), "guest5", wwn0, "0:0:0:0"); err != nil {
				t.Fatal(err)
			}
			before := r.Srv.Dump()
			if _, err := r.ts.Attach(ctx(t), "guest5", wwn2, "0:0:1:0"); err == nil {
				t.Fatal("the hot-add succeeded")
			}
			var d []string
			for _, l := range strings.Split(treeDiff(before, r.Srv.Dump()), "\n") {
				if l != "" && !strings.Contains(l, "/next_vscsidev_id = ") {
					d = append(d, l)
				}
			}
			if len(d) != 0 {
				t.Errorf("the failed hot-add changed the tree:\n%s", strings.Join(d, "\n"))
			}
		})
	}
}

// TestFailedOperationsWithHungFrontendLeaveTreeAsFound: with the guest's
// frontend hung after the first device connected, a hot-add and a detach
// both time out; each leaves the whole tree as it found it (the hot-add:
// but for next_vscsidev_id, see TestFailedHotAddLeavesTreeAsFound).
func TestFailedOperationsWithHungFrontendLeaveTreeAsFound(t *testing.T) {
	r := newRig(t, rigOpt{opts: plugin.Options{InitTimeout: 300 * time.Millisecond, DestroyTimeout: 300 * time.Millisecond}})
	if _, err := r.ts.Attach(ctx(t), "guest5", wwn0, "0:0:0:0"); err != nil {
		t.Fatal(err)
	}
	r.stopFE()
	before := r.Srv.Dump()
	if _, err := r.ts.Attach(ctx(t), "guest5", wwn1, "0:0:1:0"); !errors.Is(err, plugin.ErrTimeout) {
		t.Fatalf("hot-add with a hung frontend: %v", err)
	}
	var d []string
	for _, l := range strings.Split(treeDiff(before, r.Srv.Dump()), "\n") {
		if l != "" && !strings.Contains(l, "/next_vscsidev_id = ") {
			d = append(d, l)
		}
	}
	if len(d) != 0 {
		t.Errorf("the failed hot-add changed the tree:\n%s", strings.Join(d, "\n"))
	}
	before = r.Srv.Dump()
	if _, err := r.ts.Detach(ctx(t), "guest5", "0:0:0:0"); !errors.Is(err, plugin.ErrTimeout) {
		t.Fatalf("detach with a hung frontend: %v", err)
	}
	if diff := treeDiff(before, r.Srv.Dump()); diff != "" {
		t.Errorf("the failed detach changed the tree:\n%s", diff)
	}
}
