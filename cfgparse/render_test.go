package cfgparse

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/govscsi/govscsi/libxlgo/xenif"
)

var updateVscsi = flag.Bool("vscsi.update", false, "rewrite cfgparse/testdata/vscsi/*.{golden,json,err}")

const (
	fixtureSysfs    = "testdata/sysfs"
	fixtureConfigfs = "testdata/sysfs/kernel/config"
	devnodesFile    = "testdata/vscsi/devnodes.txt"
)

// fixtureStat turns testdata/vscsi/devnodes.txt into a StatFunc: listed
// paths are device nodes (or a directory), anything else does not exist.
func fixtureStat(t testing.TB) StatFunc {
	t.Helper()
	f, err := os.Open(devnodesFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	nodes := map[string]DevNode{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) == 0 || strings.HasPrefix(fl[0], "#") {
			continue
		}
		var n DevNode
		switch fl[1] {
		case "block":
			n.Block = true
		case "char":
			n.Char = true
		}
		if len(fl) > 2 {
			if _, err := fmt.Sscanf(fl[2], "%d:%d", &n.Major, &n.Minor); err != nil {
				t.Fatalf("%s: %q: %v", devnodesFile, sc.Text(), err)
			}
		}
		nodes[fl[0]] = n
	}
	return func(p string) (DevNode, error) {
		n, ok := nodes[p]
		if !ok {
			return DevNode{}, &fs.PathError{Op: "stat", Path: p, Err: fs.ErrNotExist}
		}
		return n, nil
	}
}

func fixtureResolver(t testing.TB) *Resolver {
	return &Resolver{SysfsRoot: fixtureSysfs, ConfigfsRoot: fixtureConfigfs, Stat: fixtureStat(t)}
}

var goldenHeader = regexp.MustCompile(`(?m)^# golden: domid=(\d+) backend=(\d+) flavour=(\w+)$`)

// pipeline is what `xl-vscsi apply --dry-run` does with a config.
func pipeline(t *testing.T, cfg string) ([]Write, []Warning, error) {
	t.Helper()
	src, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := goldenHeader.FindSubmatch(src)
	if m == nil {
		t.Fatalf("%s: no '# golden: domid=N backend=N flavour=F' line", cfg)
	}
	domid, _ := strconv.Atoi(string(m[1]))
	be, _ := strconv.Atoi(string(m[2]))
	fl, err := ParseFlavour(string(m[3]))
	if err != nil {
		t.Fatal(err)
	}
	entries, warns, err := ConfigSpecs(cfg)
	if err != nil {
		return nil, warns, err
	}
	devs, w2, err := fixtureResolver(t).Devices(entries, fl)
	warns = append(warns, w2...)
	if err != nil {
		return nil, warns, err
	}
	plan, err := Group(devs, nil, 0)
	if err != nil {
		return nil, warns, err
	}
	return plan.Render(Domains{Frontend: uint32(domid), Backend: uint32(be), Type: fl.BackendType()}), warns, nil
}

func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *updateVscsi {
		if len(got) == 0 {
			os.Remove(path)
			return
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && len(got) == 0 {
		return
	}
	if err != nil {
		t.Fatalf("%v (run go test ./cfgparse -run TestGolden -args -vscsi.update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs:\n--- got\n%s--- want\n%s", path, got, want)
	}
}

// TestGolden runs every testdata/vscsi/*.cfg through parse, resolve (on the
// fixture trees), group and render, and compares the text writes (.golden,
// what the CLI prints), the JSON writes (.json) and the warnings and
// errors (.err) with the files next to it.
func TestGolden(t *testing.T) {
	cfgs, _ := filepath.Glob("testdata/vscsi/*.cfg")
	if len(cfgs) < 5 {
		t.Fatalf("only %d golden configs found", len(cfgs))
	}
	for _, cfg := range cfgs {
		base := strings.TrimSuffix(cfg, ".cfg")
		t.Run(filepath.Base(base), func(t *testing.T) {
			ws, warns, err := pipeline(t, cfg)
			var diag strings.Builder
			for _, w := range warns {
				diag.WriteString(w.String() + "\n")
			}
			if err != nil {
				diag.WriteString("error: " + strings.ReplaceAll(err.Error(), "\n", "\nerror: ") + "\n")
			}
			var js []byte
			if err == nil {
				js, err = FormatJSON(ws)
				if err != nil {
					t.Fatal(err)
				}
			}
			checkGolden(t, base+".golden", []byte(FormatText(ws)))
			checkGolden(t, base+".json", js)
			checkGolden(t, base+".err", []byte(diag.String()))
		})
	}
}

// seedLayout extracts the "Xenstore format in practice" key/value lines of
// the seed (testdata/vscsi/seed-layout.txt, copied verbatim from the
// vscsiif.h notes) as "<side> <relative key> = <value>" pairs.
func seedLayout(t *testing.T) (backend, frontend [][2]string) {
	b, err := os.ReadFile("testdata/vscsi/seed-layout.txt")
	if err != nil {
		t.Fatal(err)
	}
	kv := regexp.MustCompile(`^\s*\*\s+(<domid>/<vhost>/|<vhost>/)(\S+) = "([^"]*)"`)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "Backend/frontend protocol") {
			break
		}
		m := kv.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if m[1] == "<vhost>/" {
			frontend = append(frontend, [2]string{m[2], m[3]})
		} else {
			backend = append(backend, [2]string{m[2], m[3]})
		}
	}
	return backend, frontend
}

// TestSeedLayout checks the acceptance config against the seed itself, not
// against our own golden file: the seed's backend and frontend trees for
// domid 5, vhost 0, backend 0, with the create sequence's state "1" for
// the toolstack-written states, minus what only the backend or frontend
// write (ring-ref, event-channel, the frontend's vscsi-devs) and minus the
// toolstack-only p-devname (the pdevs are h:c:t:l, not /dev paths).
func TestSeedLayout(t *testing.T) {
	be, fe := seedLayout(t)
	if len(be) < 10 || len(fe) < 5 {
		t.Fatalf("seed layout not found: %d backend, %d frontend lines", len(be), len(fe))
	}
	subst := strings.NewReplacer("<domid>", "5", "<backend_domid>", "0")
	var want []string
	for _, kv := range be {
		key, val := kv[0], kv[1]
		switch {
		case strings.HasSuffix(key, "p-devname"):
			continue
		case key == "state" || strings.HasSuffix(key, "/state"):
			val = "1"
		case strings.HasPrefix(val, "8:0:2:1 or"):
			val = "8:0:2:1"
		}
		want = append(want, fmt.Sprintf("/local/domain/0/backend/vscsi/5/0/%s = %q", key, subst.Replace(val)))
	}
	for _, kv := range fe {
		key, val := kv[0], kv[1]
		switch {
		case key == "event-channel" || key == "ring-ref" || strings.HasPrefix(key, "vscsi-devs/"):
			continue
		case key == "state":
			val = "1"
		case key == "backend":
			val = strings.ReplaceAll(val, "<vhost>", "0")
		}
		want = append(want, fmt.Sprintf("/local/domain/5/device/vscsi/0/%s = %q", key, subst.Replace(val)))
	}
	ws, warns, err := pipeline(t, "testdata/vscsi/seed.cfg")
	if err != nil || len(warns) > 0 {
		t.Fatalf("seed.cfg: %v %v", err, warns)
	}
	got := strings.Split(strings.TrimSuffix(FormatText(ws), "\n"), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rendering differs from the seed:\n--- got\n%s\n--- want (from the seed)\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestRenderPerms checks every write's permissions and that the parent
// directories come first.
func TestRenderPerms(t *testing.T) {
	d := Domains{Frontend: 7, Backend: 3}
	vh := []VHost{
		{DevID: 0, Devs: []VHostDev{{ID: 0, Device: Device{PDev: "naa.5:0", PDevName: "/dev/sdb"}}}},
		{DevID: 2, FeatureHost: true, Devs: []VHostDev{{ID: 4, Device: Device{PDev: "1:2:3:4", VDev: HCTL{1, 0, 2, 3}}}}},
	}
	ws := RenderCreate(d, vh)
	if ws[0].Kind != KindDir || ws[0].Path != "/local/domain/7/device/vscsi" || ws[0].Perms.String() != "n7 r3" {
		t.Errorf("first write %+v, want the frontend parent dir with n7 r3", ws[0])
	}
	if ws[1].Kind != KindDir || ws[1].Path != "/local/domain/3/backend/vscsi/7" || ws[1].Perms.String() != "n3 r7" {
		t.Errorf("second write %+v, want the backend parent dir with n3 r7", ws[1])
	}
	seen := map[string]bool{}
	for _, w := range ws[2:] {
		if w.Kind != KindNode {
			t.Errorf("%s: dir after the first two writes", w.Path)
		}
		if seen[w.Path] {
			t.Errorf("%s written twice", w.Path)
		}
		seen[w.Path] = true
		var want string
		switch {
		case strings.HasPrefix(w.Path, "/local/domain/7/device/vscsi/"):
			want = "n7 r3"
		case strings.HasPrefix(w.Path, "/local/domain/3/backend/vscsi/7/"):
			want = "n3 r7"
		default:
			t.Errorf("%s outside both trees", w.Path)
		}
		if w.Perms.String() != want {
			t.Errorf("%s perms %q, want %q", w.Path, w.Perms, want)
		}
		// The guest may read the backend tree and the backend the frontend
		// tree; nobody else may write either.
		if !w.Perms.CanRead(7) || !w.Perms.CanRead(3) || w.Perms.CanWrite(9) || w.Perms.CanRead(9) {
			t.Errorf("%s perms %q: wrong access", w.Path, w.Perms)
		}
	}
	for _, p := range []string{
		"/local/domain/3/backend/vscsi/7/0/vscsi-devs/dev-0/p-devname",
		"/local/domain/3/backend/vscsi/7/2/vscsi-devs/dev-4/v-dev",
		"/local/domain/3/backend/vscsi/7/2/feature-host",
		"/local/domain/7/device/vscsi/2/backend",
	} {
		if !seen[p] {
			t.Errorf("%s not written", p)
		}
	}
	if seen["/local/domain/3/backend/vscsi/7/2/vscsi-devs/dev-4/p-devname"] {
		t.Errorf("p-devname written for an h:c:t:l pdev")
	}
	if RenderCreate(d, nil) != nil {
		t.Errorf("no vhosts should render no writes")
	}
}

func texts(ws []Write) []string {
	var s []string
	for _, w := range ws {
		s = append(s, fmt.Sprintf("%s=%s [%s]", w.Path, w.Value, w.Perms))
	}
	return s
}

// TestRenderHotPlug checks the seed's hot-add and hot-remove sequences:
// new dev nodes then state 7; dev state 5 then state 7.
func TestRenderHotPlug(t *testing.T) {
	d := Domains{Frontend: 5, Backend: 0}
	add := RenderHotAdd(d, 0, []VHostDev{{ID: 1, Device: Device{PDev: "8:0:2:2", VDev: HCTL{0, 0, 1, 0}}}})
	want := []string{
		"/local/domain/0/backend/vscsi/5/0/vscsi-devs/dev-1/p-dev=8:0:2:2 [n0 r5]",
		"/local/domain/0/backend/vscsi/5/0/vscsi-devs/dev-1/state=1 [n0 r5]",
		"/local/domain/0/backend/vscsi/5/0/vscsi-devs/dev-1/v-dev=0:0:1:0 [n0 r5]",
		"/local/domain/0/backend/vscsi/5/0/state=7 [n0 r5]",
	}
	if got := texts(add); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("hot-add:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	rm := RenderHotRemove(d, 0, []int{1, 3})
	want = []string{
		"/local/domain/0/backend/vscsi/5/0/vscsi-devs/dev-1/state=5 [n0 r5]",
		"/local/domain/0/backend/vscsi/5/0/vscsi-devs/dev-3/state=5 [n0 r5]",
		"/local/domain/0/backend/vscsi/5/0/state=7 [n0 r5]",
	}
	if got := texts(rm); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("hot-remove:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if RenderHotAdd(d, 0, nil) != nil || RenderHotRemove(d, 0, nil) != nil {
		t.Errorf("empty hot-plug should render nothing (a lone state 7 would reconfigure for nothing)")
	}
}

func TestFormatJSONPerms(t *testing.T) {
	ws := []Write{{Path: "/a", Value: "x\"y", Perms: xenif.Perms{{Domid: 1, Bits: xenif.PermNone}, {Domid: 0, Bits: xenif.PermRead}}, Kind: KindDir}}
	b, err := FormatJSON(ws)
	if err != nil {
		t.Fatal(err)
	}
	want := "[\n  {\n    \"path\": \"/a\",\n    \"value\": \"x\\\"y\",\n    \"perms\": \"n1 r0\",\n    \"kind\": \"dir\"\n  }\n]\n"
	if string(b) != want {
		t.Errorf("got %s want %s", b, want)
	}
	if FormatText(ws) != "" {
		t.Errorf("FormatText printed a dir write")
	}
}
