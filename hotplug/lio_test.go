package hotplug_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/govscsi/govscsi/cfgparse"
	"github.com/govscsi/govscsi/hotplug"
)

// configfsFixture is a directory tree shaped like /sys/kernel/config with
// target_core_mod and xen-scsiback loaded (target/core and
// target/xen-pvscsi exist), plus a 1 MiB backing file.
func configfsFixture(t testing.TB) (root, backing string) {
	t.Helper()
	dir := t.TempDir()
	root = filepath.Join(dir, "config")
	for _, d := range []string{"target/core", "target/xen-pvscsi"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	backing = filepath.Join(dir, "disk0.img")
	if err := os.WriteFile(backing, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	return root, backing
}

// tree lists every path under root (dirs with '/', links with '->').
func tree(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			tgt, _ := os.Readlink(p)
			r, _ := filepath.Rel(root, tgt)
			out = append(out, rel+" -> "+r)
		case d.IsDir():
			out = append(out, rel+"/")
		default:
			b, _ := os.ReadFile(p)
			out = append(out, rel+" = "+strings.TrimSpace(string(b)))
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func newLIO(root string, fail func(op, p string) error) *hotplug.LIO {
	return &hotplug.LIO{FS: hotplug.FixtureConfigFS{Fail: fail}, Root: root}
}

// A file-backed p-dev: everything xen-scsiback needs is created, in the
// layout and with the names scripts/lio-xen-pvscsi.sh uses; a second
// Ensure changes nothing; Teardown restores the tree exactly.
func TestLIOEnsureFileAndTeardown(t *testing.T) {
	root, backing := configfsFixture(t)
	before := tree(t, root)
	l := newLIO(root, nil)
	pdev := hotplug.PlannedPDev(backing)
	wwn := strings.TrimSuffix(pdev, ":0")
	if len(pdev) > cfgparse.MaxNAAPDevLen || !strings.HasPrefix(pdev, "naa.5001405") {
		t.Fatalf("planned p-dev %q", pdev)
	}
	var steps []hotplug.Step
	rec := func(s hotplug.Step) error { steps = append(steps, s); return nil }
	created, err := l.Ensure(pdev, backing, rec)
	if err != nil || !created {
		t.Fatalf("Ensure: %v %v", created, err)
	}
	bs := "target/core/fileio_0/govscsi-" + strings.TrimPrefix(wwn, "naa.") + "-0"
	tpg := "target/xen-pvscsi/" + wwn + "/tpgt_1"
	got := strings.Join(tree(t, root), "\n")
	for _, want := range []string{
		bs + "/control = fd_dev_name=" + backing + ",fd_dev_size=1048576",
		bs + "/udev_path = " + backing,
		bs + "/enable = 1",
		tpg + "/lun/lun_0/port_govscsi-" + strings.TrimPrefix(wwn, "naa.") + "-0 -> " + bs,
		tpg + "/nexus = naa.5001405",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("configfs lacks %q:\n%s", want, got)
		}
	}
	var ops []string
	for _, s := range steps {
		rel, _ := filepath.Rel(root, s.Path)
		ops = append(ops, s.Op+" "+rel)
	}
	wantOps := []string{"mkdir " + bs, "mkdir target/xen-pvscsi/" + wwn, "mkdir " + tpg, "nexus " + tpg, "mkdir " + tpg + "/lun/lun_0", "symlink " + tpg + "/lun/lun_0/port_govscsi-" + strings.TrimPrefix(wwn, "naa.") + "-0"}
	if strings.Join(ops, "\n") != strings.Join(wantOps, "\n") {
		t.Errorf("steps:\n%s\nwant\n%s", strings.Join(ops, "\n"), strings.Join(wantOps, "\n"))
	}
	if err := l.Check(pdev, backing); err != nil {
		t.Errorf("Check after Ensure: %v", err)
	}

	mid := tree(t, root)
	created, err = l.Ensure(pdev, backing, func(s hotplug.Step) error { t.Errorf("second Ensure made %v", s); return nil })
	if err != nil || created {
		t.Errorf("second Ensure: %v %v", created, err)
	}
	if got := tree(t, root); strings.Join(got, "\n") != strings.Join(mid, "\n") {
		t.Errorf("second Ensure changed configfs")
	}

	inUse, failed, errs := l.Teardown(steps)
	if len(inUse)+len(failed)+len(errs) != 0 {
		t.Fatalf("Teardown: in use %v failed %v errs %v", inUse, failed, errs)
	}
	if got := tree(t, root); strings.Join(got, "\n") != strings.Join(before, "\n") {
		t.Errorf("after Teardown:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(before, "\n"))
	}
	// Tearing down again: everything is already gone, which is fine.
	if inUse, failed, errs := l.Teardown(steps); len(inUse)+len(failed)+len(errs) != 0 {
		t.Errorf("second Teardown: %v %v %v", inUse, failed, errs)
	}
}

// Objects someone else made are used, never recorded, never removed: an
// existing target gets only our LUN; an existing LUN is accepted as is.
func TestLIOUsesExistingObjects(t *testing.T) {
	root, backing := configfsFixture(t)
	l := newLIO(root, nil)
	wwn := "naa.5001405012345678"
	tpg := filepath.Join(root, "target/xen-pvscsi", wwn, "tpgt_1")
	for _, d := range []string{tpg + "/lun/lun_0", tpg + "/param", root + "/target/core/iblock_0/other"} {
		os.MkdirAll(d, 0o755)
	}
	os.WriteFile(tpg+"/nexus", []byte("naa.500140500000000a\n"), 0o644)
	os.WriteFile(root+"/target/core/iblock_0/other/udev_path", []byte("/dev/sdz\n"), 0o644)
	os.Symlink(root+"/target/core/iblock_0/other", tpg+"/lun/lun_0/port_other")

	// LUN 0 exists (someone else's): nothing to do, nothing recorded.
	created, err := l.Ensure(wwn+":0", "", func(s hotplug.Step) error { t.Errorf("recorded %v", s); return nil })
	if err != nil || created {
		t.Fatalf("existing LUN: %v %v", created, err)
	}
	// ... but with a p-devname that is not what backs it: an error naming both.
	if _, err := l.Ensure(wwn+":0", backing, func(hotplug.Step) error { return nil }); !errors.Is(err, hotplug.ErrConflict) ||
		!strings.Contains(err.Error(), "/dev/sdz") || !strings.Contains(err.Error(), backing) {
		t.Errorf("existing LUN with another backing: %v", err)
	}
	// LUN 1 in the same target: only the LUN, link and backstore are ours.
	var steps []hotplug.Step
	created, err = l.Ensure(wwn+":1", backing, func(s hotplug.Step) error { steps = append(steps, s); return nil })
	if err != nil || !created {
		t.Fatalf("new LUN in an existing target: %v %v", created, err)
	}
	for _, s := range steps {
		if s.Path == tpg || s.Path == filepath.Dir(tpg) || s.Op == "nexus" {
			t.Errorf("recorded someone else's object: %v", s)
		}
	}
	if _, _, errs := l.Teardown(steps); len(errs) != 0 {
		t.Fatal(errs)
	}
	if _, err := os.Stat(tpg + "/lun/lun_0/port_other"); err != nil {
		t.Errorf("teardown touched the other LUN: %v", err)
	}
	if _, err := os.Stat(tpg + "/lun/lun_1"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("our LUN left behind: %v", err)
	}
	if nx, _ := os.ReadFile(tpg + "/nexus"); string(nx) != "naa.500140500000000a\n" {
		t.Errorf("nexus changed: %q", nx)
	}
}

// The alias form h:c:t:L creates a target whose TPG carries the alias, so
// xen-scsiback finds it by alias (SUSE's convention); Check finds it.
func TestLIOAlias(t *testing.T) {
	root, backing := configfsFixture(t)
	l := newLIO(root, nil)
	if err := l.Check("1:0:7:3", ""); !errors.Is(err, hotplug.ErrNoLUN) {
		t.Fatalf("Check before: %v", err)
	}
	var steps []hotplug.Step
	if _, err := l.Ensure("1:0:7:3", backing, func(s hotplug.Step) error { steps = append(steps, s); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := l.Check("1:0:7:3", backing); err != nil {
		t.Errorf("Check after: %v", err)
	}
	wwn := hotplug.PlannedWWN("alias 1:0:7")
	if a, _ := os.ReadFile(filepath.Join(root, "target/xen-pvscsi", wwn, "tpgt_1/param/alias")); string(a) != "1:0:7\n" {
		t.Errorf("alias %q", a)
	}
	if _, err := os.Stat(filepath.Join(root, "target/xen-pvscsi", wwn, "tpgt_1/lun/lun_3")); err != nil {
		t.Error(err)
	}
	if _, _, errs := l.Teardown(steps); len(errs) != 0 {
		t.Error(errs)
	}
}

// Bad p-devs and backings are refused before anything is made, naming the
// token; a p-dev without LUN and without backing names the p-dev.
func TestLIORefuses(t *testing.T) {
	root, backing := configfsFixture(t)
	l := newLIO(root, nil)
	none := func(s hotplug.Step) error { t.Errorf("recorded %v", s); return nil }
	for _, c := range []struct{ pdev, backing, want string }{
		{"naa.5001405012345678:0", "", `"naa.5001405012345678:0"`},
		{"naa.xyz:0", backing, `"naa.xyz:0"`},
		{"naa.5001405012345678", backing, `"naa.5001405012345678"`},
		{"naa.50014050123456789abcdef01234:0", backing, "31"},
		{"1:2:3", backing, `"1:2:3"`},
		{"naa.5001405012345678:0", "relative.img", `"relative.img"`},
		{"naa.5001405012345678:0", "/tmp/a,fd_dev_size=1", "','"},
		{"naa.5001405012345678:0", "/tmp/../etc/x", "clean"},
		{"naa.5001405012345678:0", "/nonexistent/disk.img", "/nonexistent/disk.img"},
		{"naa.5001405012345678:0", "/dev/null", "/dev/null"},
	} {
		_, err := l.Ensure(c.pdev, c.backing, none)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Ensure(%q, %q): %v, want an error naming %s", c.pdev, c.backing, err, c.want)
		}
	}
	if got := tree(t, root); len(got) != 3 {
		t.Errorf("refusals changed configfs: %v", got)
	}
}

// LIO refusing a step (here the backstore's enable, as the kernel does for
// a control string it cannot use) is an error naming the backstore; the
// steps recorded so far undo cleanly.
func TestLIOKernelRefuses(t *testing.T) {
	root, backing := configfsFixture(t)
	before := tree(t, root)
	l := newLIO(root, func(op, p string) error {
		if op == "write" && filepath.Base(p) == "enable" {
			return syscall.EINVAL
		}
		return nil
	})
	var steps []hotplug.Step
	_, err := l.Ensure(hotplug.PlannedPDev(backing), backing, func(s hotplug.Step) error { steps = append(steps, s); return nil })
	if !errors.Is(err, syscall.EINVAL) || !strings.Contains(err.Error(), "LIO refused backstore govscsi-") {
		t.Fatalf("Ensure: %v", err)
	}
	if _, _, errs := l.Teardown(steps); len(errs) != 0 {
		t.Fatal(errs)
	}
	if got := tree(t, root); strings.Join(got, "\n") != strings.Join(before, "\n") {
		t.Errorf("after rollback:\n%s", strings.Join(got, "\n"))
	}
}

// Without configfs's target directory (LIO not loaded) and no module
// loader, the error says so; with a loader, it is asked for the modules.
func TestLIOFabricMissing(t *testing.T) {
	dir := t.TempDir()
	backing := filepath.Join(dir, "d.img")
	os.WriteFile(backing, []byte("x"), 0o644)
	l := newLIO(filepath.Join(dir, "config"), nil)
	if _, err := l.Ensure(hotplug.PlannedPDev(backing), backing, func(hotplug.Step) error { return nil }); !errors.Is(err, hotplug.ErrNoFabric) {
		t.Errorf("no configfs: %v", err)
	}
	var loaded []string
	l.LoadModule = func(name string) error {
		loaded = append(loaded, name)
		if name == "target_core_mod" {
			return os.MkdirAll(filepath.Join(dir, "config/target/core"), 0o755)
		}
		return nil
	}
	if _, err := l.Ensure(hotplug.PlannedPDev(backing), backing, func(hotplug.Step) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if strings.Join(loaded, ",") != "target_core_mod,xen-scsiback" {
		t.Errorf("modules loaded: %v", loaded)
	}
}

// Another vhost's LUN in "our" target keeps the target, TPG and nexus in
// place (reported as in use), and removes our LUN only. The shared HBA
// directory is not recorded; it goes with its last backstore.
func TestLIOTeardownSharedTarget(t *testing.T) {
	root, backing := configfsFixture(t)
	l := newLIO(root, nil)
	pdev := hotplug.PlannedPDev(backing)
	var mine []hotplug.Step
	if _, err := l.Ensure(pdev, backing, func(s hotplug.Step) error { mine = append(mine, s); return nil }); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(filepath.Dir(backing), "disk1.img")
	os.WriteFile(other, []byte("y"), 0o644)
	wwn := strings.TrimSuffix(pdev, ":0")
	if _, err := l.Ensure(wwn+":1", other, func(hotplug.Step) error { return nil }); err != nil {
		t.Fatal(err)
	}
	inUse, failed, errs := l.Teardown(mine)
	if len(failed)+len(errs) != 0 {
		t.Fatal(failed, errs)
	}
	var kinds []string
	for _, s := range inUse {
		kinds = append(kinds, s.Op+" "+filepath.Base(s.Path))
	}
	sort.Strings(kinds)
	if want := "mkdir " + wwn + ",mkdir tpgt_1,nexus tpgt_1"; strings.Join(kinds, ",") != want {
		t.Errorf("in use: %v, want %s", kinds, want)
	}
	if err := l.Check(wwn+":1", other); err != nil {
		t.Errorf("the other LUN: %v", err)
	}
	if err := l.Check(pdev, ""); !errors.Is(err, hotplug.ErrNoLUN) {
		t.Errorf("our LUN: %v", err)
	}
}

func writeFile(t testing.TB, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// xen-scsiback answers ENODEV for a nexus that is already gone (reading or
// writing NULL): teardown counts that as done, and a TPG whose nexus
// cannot be read gets one.
func TestLIONexusENODEV(t *testing.T) {
	root, backing := configfsFixture(t)
	writes := 0
	noNexus := func(op, p string) error {
		if filepath.Base(p) != "nexus" {
			return nil
		}
		if _, err := os.Stat(p); op == "read" && err != nil {
			return syscall.ENODEV // no nexus yet: the kernel's answer
		}
		if op == "write" {
			if writes++; writes == 2 {
				return syscall.ENODEV // the NULL: someone dropped it already
			}
		}
		return nil
	}
	l := newLIO(root, noNexus)
	var steps []hotplug.Step
	if _, err := l.Ensure(hotplug.PlannedPDev(backing), backing, func(s hotplug.Step) error { steps = append(steps, s); return nil }); err != nil {
		t.Fatal(err)
	}
	if writes != 1 {
		t.Errorf("nexus not set on a TPG whose nexus reads ENODEV (%d writes)", writes)
	}
	inUse, failed, errs := l.Teardown(steps)
	if len(inUse)+len(failed)+len(errs) != 0 || writes != 2 {
		t.Errorf("teardown with ENODEV on NULL: %v %v %v (%d writes)", inUse, failed, errs, writes)
	}
}
