package cfgparse

import (
	"errors"
	"strings"
	"testing"
)

func dev(entry int, spec string, vdev HCTL, fh bool) Device {
	return Device{Origin: Origin{Entry: entry, Spec: spec}, VDev: vdev, PDev: "p" + spec, FeatureHost: fh}
}

// TestGroupNew: vhosts in order of first appearance of their vdev host,
// devids 0,1,2..., dev ids 0,1,... per vhost in input order.
func TestGroupNew(t *testing.T) {
	devs := []Device{
		dev(0, "a", HCTL{3, 0, 0, 0}, false),
		dev(1, "b", HCTL{1, 0, 0, 0}, true),
		dev(2, "c", HCTL{3, 0, 1, 0}, false),
		dev(3, "d", HCTL{0, 0, 0, 0}, false),
		dev(4, "e", HCTL{1, 0, 0, 1}, true),
		dev(5, "f", HCTL{3, 0, 0, 1}, false),
	}
	p, err := Group(devs, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		devid int
		index uint32
		fh    bool
		specs string
	}
	exp := []want{{0, 3, false, "a c f"}, {1, 1, true, "b e"}, {2, 0, false, "d"}}
	if len(p.Create) != len(exp) || len(p.Add) != 0 || p.NextVHost != 3 {
		t.Fatalf("plan %+v", p)
	}
	for i, w := range exp {
		v := p.Create[i]
		var specs []string
		for j, d := range v.Devs {
			if d.ID != j {
				t.Errorf("vhost %d dev %d has id %d", v.DevID, j, d.ID)
			}
			specs = append(specs, d.Spec)
		}
		if v.DevID != w.devid || v.Index != w.index || v.FeatureHost != w.fh || strings.Join(specs, " ") != w.specs || v.NextDev != len(v.Devs) {
			t.Errorf("vhost %d = %+v, want %+v", i, v, w)
		}
	}
	// A caller whose domain already used vhost devids up to 6 passes 7.
	p, err = Group(devs, nil, 7)
	if err != nil || p.Create[0].DevID != 7 || p.Create[2].DevID != 9 || p.NextVHost != 10 {
		t.Errorf("nextVHost 7: %+v %v", p, err)
	}
	if p, err := Group(nil, nil, 0); err != nil || len(p.Create) != 0 || RenderCreate(Domains{Frontend: 1}, p.Create) != nil {
		t.Errorf("no devices: %+v %v", p, err)
	}
}

// TestGroupConflicts: a vdev c:t:l twice on one vhost and mixed
// feature-host on one vhost are errors naming both entries; the same
// c:t:l on different vhosts is fine.
func TestGroupConflicts(t *testing.T) {
	devs := []Device{
		dev(0, "a", HCTL{0, 0, 0, 0}, false),
		dev(1, "b", HCTL{1, 0, 0, 0}, false), // same c:t:l, other vhost: fine
		dev(2, "c", HCTL{0, 0, 0, 0}, false), // duplicate of a
		dev(3, "d", HCTL{0, 0, 1, 0}, true),  // feature-host differs from a
		dev(4, "e", HCTL{1, 0, 1, 0}, false),
	}
	_, err := Group(devs, nil, 0)
	var errs []*GroupError
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ge *GroupError
		if !errors.As(e, &ge) {
			t.Fatalf("%v is not a *GroupError", e)
		}
		errs = append(errs, ge)
	}
	if len(errs) != 2 {
		t.Fatalf("errors: %v", err)
	}
	if errs[0].Entry != 2 || errs[0].Other.Entry != 0 || errs[0].Token != "0:0:0:0" || !strings.Contains(errs[0].Msg, "vdev 0:0:0 used twice on vdev host 0") {
		t.Errorf("duplicate: %+v", errs[0])
	}
	if errs[1].Entry != 3 || errs[1].Other.Entry != 0 || errs[1].Token != "feature-host" {
		t.Errorf("feature-host: %+v", errs[1])
	}
	msg := errs[0].Error()
	if !strings.Contains(msg, `vscsi[2] "c"`) || !strings.Contains(msg, `vscsi[0] "a"`) {
		t.Errorf("message %q does not name both entries", msg)
	}
	// The other direction: feature-host first, a device without it later.
	_, err = Group([]Device{dev(0, "a", HCTL{0, 0, 0, 0}, true), dev(1, "b", HCTL{0, 0, 1, 0}, false)}, nil, 0)
	var ge *GroupError
	if !errors.As(err, &ge) || ge.Token != "0:0:1:0" || !strings.Contains(ge.Msg, "no feature-host here") {
		t.Errorf("feature-host missing on the second device: %v", err)
	}
}

// TestGroupExisting: adding to a domain that has vhosts. Devices for an
// existing vdev host become hot-adds with ids from its counter (never a
// reused id, P29); new vdev hosts get devids above every existing one
// (numeric max + 1, P31), even if the caller passes a lower nextVHost.
func TestGroupExisting(t *testing.T) {
	existing := []VHost{
		{DevID: 10, Index: 0, Devs: []VHostDev{
			{ID: 0, Device: Device{VDev: HCTL{0, 0, 0, 0}, PDev: "8:0:2:1"}},
			{ID: 3, Device: Device{VDev: HCTL{0, 0, 3, 0}, PDev: "8:0:2:4"}},
		}, NextDev: 5}, // dev-4 was detached: 4 must not come back
		{DevID: 2, Index: 1, FeatureHost: true, NextDev: 0, Devs: []VHostDev{{ID: 6, Device: Device{VDev: HCTL{1, 0, 0, 0}}}}},
	}
	devs := []Device{
		dev(0, "a", HCTL{0, 0, 1, 0}, false),
		dev(1, "b", HCTL{5, 0, 0, 0}, false),
		dev(2, "c", HCTL{0, 0, 2, 0}, false),
		dev(3, "d", HCTL{1, 0, 1, 0}, true),
	}
	p, err := Group(devs, existing, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Create) != 1 || p.Create[0].DevID != 11 || p.Create[0].Index != 5 || p.NextVHost != 12 {
		t.Errorf("create %+v next %d, want vhost 11 for vdev host 5", p.Create, p.NextVHost)
	}
	if len(p.Add) != 2 || p.Add[0].VHost != 10 || len(p.Add[0].Devs) != 2 || p.Add[0].Devs[0].ID != 5 || p.Add[0].Devs[1].ID != 6 ||
		p.Add[1].VHost != 2 || len(p.Add[1].Devs) != 1 || p.Add[1].Devs[0].ID != 7 {
		t.Errorf("adds %+v", p.Add)
	}
	if p.Existing[0].NextDev != 7 || len(p.Existing[0].Devs) != 4 || p.Existing[1].NextDev != 8 {
		t.Errorf("updated counters %+v", p.Existing)
	}
	if len(existing[0].Devs) != 2 || existing[0].NextDev != 5 {
		t.Errorf("Group modified the caller's vhosts: %+v", existing[0])
	}
	// Conflicts with attached devices name them.
	_, err = Group([]Device{dev(0, "x", HCTL{0, 0, 3, 0}, false), dev(1, "y", HCTL{1, 0, 2, 0}, false)}, existing, 0)
	if err == nil || !strings.Contains(err.Error(), "dev-3 of vhost 10 (attached)") || !strings.Contains(err.Error(), "vhost 2 (attached)") {
		t.Errorf("conflicts with attached devices: %v", err)
	}
	// The rendered plan: create vhost 11, then hot-add to 10 and 2.
	ws := p.Render(Domains{Frontend: 4, Backend: 0})
	var states []string
	for _, w := range ws {
		if strings.HasSuffix(w.Path, "/state") && !strings.Contains(w.Path, "vscsi-devs") && strings.Contains(w.Path, "backend") {
			states = append(states, w.Path+"="+w.Value)
		}
	}
	want := "/local/domain/0/backend/vscsi/4/11/state=1 /local/domain/0/backend/vscsi/4/10/state=7 /local/domain/0/backend/vscsi/4/2/state=7"
	if strings.Join(states, " ") != want {
		t.Errorf("vhost states %v, want %s", states, want)
	}
}

// FuzzPlan: any list of specs (';'-separated here) either fails with
// typed errors or groups and renders into writes where every path is
// written once, lies in its side's tree with that side's permissions, and
// every device has exactly its p-dev, state and v-dev.
func FuzzPlan(f *testing.F) {
	for _, s := range []string{
		"8:0:2:1,0:0:0:0;8:0:2:2,0:0:1:0",
		"naa.5001405012345678:0,1:0:0:0,feature-host;8:0:2:2,0:0:0:0;8:0:2:3,1:0:1:0,feature-host",
		"8:0:2:1,0:0:0:0;8:0:2:1,0:0:0:0",
		"8:0:2:1,3:0:0:0;8:0:2:1,3:0:0:0,feature-host;x",
	} {
		f.Add(s, uint16(5), uint16(0))
	}
	f.Fuzz(func(t *testing.T, in string, fe, be uint16) {
		entries, _, err := ParseSpecs(strings.Split(in, ";"), nil)
		if err != nil {
			var se *SpecError
			if !errors.As(err, &se) {
				t.Fatalf("parse error %v is not a *SpecError", err)
			}
			return
		}
		var devs []Device
		for _, e := range entries {
			if e.Parsed.PDev.Kind == PDevPath {
				return // needs a host; resolution has its own tests
			}
			devs = append(devs, Device{Origin: e.Origin, VDev: e.Parsed.VDev, PDev: e.Parsed.PDev.String(), FeatureHost: e.Parsed.FeatureHost})
		}
		plan, err := Group(devs, nil, 0)
		if err != nil {
			var ge *GroupError
			if !errors.As(err, &ge) {
				t.Fatalf("group error %v is not a *GroupError", err)
			}
			return
		}
		d := Domains{Frontend: uint32(fe), Backend: uint32(be)}
		ws := plan.Render(d)
		seen := map[string]bool{}
		nodes := 0
		for _, w := range ws {
			if seen[w.Path] {
				t.Fatalf("%s written twice", w.Path)
			}
			seen[w.Path] = true
			switch {
			case strings.HasPrefix(w.Path, FrontendRoot(d)+"/") || w.Path == FrontendRoot(d):
				if w.Perms.String() != FrontendPerms(d).String() {
					t.Fatalf("%s perms %s", w.Path, w.Perms)
				}
			case strings.HasPrefix(w.Path, BackendRoot(d)+"/") || w.Path == BackendRoot(d):
				if w.Perms.String() != BackendPerms(d).String() {
					t.Fatalf("%s perms %s", w.Path, w.Perms)
				}
			default:
				t.Fatalf("%s outside both trees", w.Path)
			}
			if w.Kind == KindNode {
				nodes++
			}
		}
		if want := len(plan.Create)*8 + len(devs)*3; nodes != want {
			t.Fatalf("%d nodes for %d vhosts and %d devices, want %d", nodes, len(plan.Create), len(devs), want)
		}
		for _, v := range plan.Create {
			for _, dv := range v.Devs {
				if got := dv.VDev.String(); !seen[DevPath(d, v.DevID, dv.ID)+"/v-dev"] || got == "" {
					t.Fatalf("dev-%d of vhost %d not rendered", dv.ID, v.DevID)
				}
			}
		}
	})
}
