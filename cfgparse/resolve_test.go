package cfgparse

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func mustPDev(t *testing.T, s string) PDev {
	t.Helper()
	p, err := parsePDev(s)
	if err != nil {
		t.Fatalf("parsePDev(%q): %v", s, err)
	}
	return p
}

// TestResolveFixtures resolves every pdev form on the fixture trees
// (testdata/sysfs, its kernel/config, and testdata/vscsi/devnodes.txt).
func TestResolveFixtures(t *testing.T) {
	r := fixtureResolver(t)
	cases := []struct {
		pdev     string
		fl       Flavour
		want     PDevValue
		noteWith string // a note must mention this ("" = no notes)
	}{
		// h:c:t:l and naa are written as given (SUSE; for xen-scsiback an
		// h:c:t:l is a TPG alias plus LIO LUN index).
		{"8:0:2:1", FlavourKernel, PDevValue{PDev: "8:0:2:1"}, ""},
		{"8:0:2:1", FlavourHCTL, PDevValue{PDev: "8:0:2:1"}, ""},
		{"naa.5001405012345678:0", FlavourKernel, PDevValue{PDev: "naa.5001405012345678:0"}, ""},
		// ... but checked against LIO where it exists, as xen-scsiback will:
		// the TPG alias 8:0:2 has lun_1..3; naa.5001405012345678 lun_0,2,3,10.
		{"8:0:2:9", FlavourKernel, PDevValue{PDev: "8:0:2:9"}, "naa.5001405000000008/tpgt_1/lun has no lun_9; xen-scsiback will not find p-dev 8:0:2:9"},
		{"9:0:0:0", FlavourKernel, PDevValue{PDev: "9:0:0:0"}, "no TPG under testdata/sysfs/kernel/config/target/xen-pvscsi has param/alias 9:0:0"},
		{"naa.5001405012345678:7", FlavourKernel, PDevValue{PDev: "naa.5001405012345678:7"}, "has no lun_7"},
		{"naa.50014050ffffffff:0", FlavourKernel, PDevValue{PDev: "naa.50014050ffffffff:0"}, "no target port testdata/sysfs/kernel/config/target/xen-pvscsi/naa.50014050ffffffff"},
		// /dev paths: sysfs to h:c:t:l, then (kernel) LIO to naa:<LIO index>.
		{"/dev/sdb", FlavourHCTL, PDevValue{PDev: "2:0:0:0", PDevName: "/dev/sdb"}, ""},
		{"/dev/sg0", FlavourHCTL, PDevValue{PDev: "2:0:0:0", PDevName: "/dev/sg0"}, ""},
		{"/dev/sdb", FlavourKernel, PDevValue{PDev: "naa.5001405012345678:3", PDevName: "/dev/sdb"}, ""},
		{"/dev/sg0", FlavourKernel, PDevValue{PDev: "naa.5001405012345678:3", PDevName: "/dev/sg0"}, ""},
		// by-id link in the pdev; the backstore's udev_path is a by-id link too
		{"/dev/disk/by-id/scsi-SATA_disk_sdb", FlavourKernel, PDevValue{PDev: "naa.5001405012345678:3", PDevName: "/dev/disk/by-id/scsi-SATA_disk_sdb"}, ""},
		// sdc is in two ports: LUN dirs sorted numerically (lun_10 after
		// lun_2/lun_3), ports by name; the first wins and a note lists both.
		{"/dev/sdc", FlavourKernel, PDevValue{PDev: "naa.5001405012345678:10", PDevName: "/dev/sdc"}, "naa.6001405000000001:0"},
		{"/dev/sdc", FlavourHCTL, PDevValue{PDev: "2:0:0:1", PDevName: "/dev/sdc"}, ""},
	}
	for _, c := range cases {
		got, notes, err := r.Resolve(mustPDev(t, c.pdev), c.fl)
		if err != nil {
			t.Errorf("Resolve(%s, %s): %v", c.pdev, c.fl, err)
			continue
		}
		if got != c.want {
			t.Errorf("Resolve(%s, %s) = %+v, want %+v", c.pdev, c.fl, got, c.want)
		}
		if c.noteWith == "" && len(notes) > 0 || c.noteWith != "" && (len(notes) != 1 || !strings.Contains(notes[0], c.noteWith)) {
			t.Errorf("Resolve(%s, %s) notes %q, want one mentioning %q", c.pdev, c.fl, notes, c.noteWith)
		}
	}
}

// TestResolveErrors: every failing step has its own error, naming the path.
func TestResolveErrors(t *testing.T) {
	r := fixtureResolver(t)
	noFabric := &Resolver{SysfsRoot: fixtureSysfs, ConfigfsRoot: t.TempDir(), Stat: r.Stat}
	statFails := &Resolver{SysfsRoot: fixtureSysfs, ConfigfsRoot: fixtureConfigfs,
		Stat: func(p string) (DevNode, error) {
			return DevNode{}, &fs.PathError{Op: "stat", Path: p, Err: fs.ErrPermission}
		}}
	cases := []struct {
		r      *Resolver
		pdev   string
		fl     Flavour
		kind   error
		inText []string
	}{
		{r, "/dev/nope", FlavourKernel, ErrNodeNotFound, []string{"device node not found", "/dev/nope"}},
		{statFails, "/dev/sdb", FlavourHCTL, ErrNodeNotFound, []string{"cannot stat", "/dev/sdb", "permission denied"}},
		{r, "/dev/disk", FlavourHCTL, ErrNotDevice, []string{"not a block or char device", "/dev/disk"}},
		{r, "/dev/sdz", FlavourHCTL, ErrNoMajorMinor, []string{"no major:minor entry in sysfs", "testdata/sysfs/dev/block/8:240"}},
		{r, "/dev/vda", FlavourHCTL, ErrNoHCTL, []string{"no h:c:t:l entry in sysfs", "testdata/sysfs/dev/block/254:0/device/scsi_device", "not a SCSI device"}},
		{r, "/dev/sdb1", FlavourKernel, ErrNoHCTL, []string{"no h:c:t:l entry in sysfs", "8:17", "a partition; pass the whole disk"}},
		{r, "/dev/sdd", FlavourHCTL, ErrNoHCTL, []string{"no h:c:t:l entry in sysfs", "8:48/device/scsi_device", "no entry named h:c:t:l"}},
		{r, "/dev/sde", FlavourKernel, ErrNoLIOLUN, []string{"no xen-pvscsi LUN in LIO backs the device", "xen-pvscsi", "h:c:t:l 3:0:5:7"}},
		{noFabric, "/dev/sdb", FlavourKernel, ErrNoFabric, []string{"no xen-pvscsi fabric in configfs", "target/xen-pvscsi", "flavour hctl"}},
		{r, "naa.5001405012345678:0", FlavourHCTL, ErrFlavourPDev, []string{"naa.<wwn>:<lun> names an LIO target port"}},
		{r, "8:0:2:4294967296", FlavourHCTL, ErrFlavourPDev, []string{"lun 4294967296", "32-bit"}},
		// xen-scsiback truncates p-dev to 31 bytes; xenlinux scans it whole.
		{r, "4294967295:4294967295:4294967295:1", FlavourKernel, ErrFlavourPDev, []string{"is 34 bytes; xen-scsiback matches at most 31"}},
		{r, "8:0:2:1", Flavour(0), ErrUnknownFlavour, []string{"Flavour(0)"}},
	}
	for _, c := range cases {
		_, _, err := c.r.Resolve(mustPDev(t, c.pdev), c.fl)
		var re *ResolveError
		if !errors.Is(err, c.kind) || !errors.As(err, &re) {
			t.Errorf("Resolve(%s, %s) = %v, want a *ResolveError of kind %v", c.pdev, c.fl, err, c.kind)
			continue
		}
		for _, s := range c.inText {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("Resolve(%s, %s) = %q, should mention %q", c.pdev, c.fl, err, s)
			}
		}
	}
	if v, _, err := r.Resolve(mustPDev(t, "4294967295:4294967295:4294967295:1"), FlavourHCTL); err != nil || v.PDev != "4294967295:4294967295:4294967295:1" {
		t.Errorf("long h:c:t:l for xenlinux: %v %v", v, err)
	}
	if v, _, err := r.Resolve(mustPDev(t, "4294967295:4294967295:4294967:1"), FlavourKernel); err != nil || len(v.PDev) != 31 {
		t.Errorf("31-byte h:c:t:l for xen-scsiback: %v %v", v, err)
	}
	// Without the fabric (another host, a driver domain) there is nothing
	// to check an h:c:t:l or naa pdev against, and no note.
	if v, notes, err := noFabric.Resolve(mustPDev(t, "8:0:2:9"), FlavourKernel); err != nil || v.PDev != "8:0:2:9" || notes != nil {
		t.Errorf("no fabric: %v %q %v", v, notes, err)
	}
	// The system error stays reachable.
	if _, err := r.HCTLOf("/dev/nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("HCTLOf(/dev/nope) = %v, want it to wrap fs.ErrNotExist", err)
	}
}

// TestResolveNoNexus: a TPG without a nexus is reported (xen-scsiback
// refuses its LUNs), but the port is still the answer.
func TestResolveNoNexus(t *testing.T) {
	cfs := t.TempDir()
	lun := filepath.Join(cfs, "target/xen-pvscsi/naa.600140500000000a/tpgt_1/lun/lun_4")
	if err := os.MkdirAll(filepath.Join(lun, "bs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lun, "bs", "udev_path"), []byte("/dev/sde\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &Resolver{SysfsRoot: fixtureSysfs, ConfigfsRoot: cfs, Stat: fixtureStat(t)}
	v, notes, err := r.Resolve(mustPDev(t, "/dev/sde"), FlavourKernel)
	if err != nil || v.PDev != "naa.600140500000000a:4" {
		t.Fatalf("got %+v %v", v, err)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "no nexus") {
		t.Errorf("notes %q, want one about the missing nexus", notes)
	}
	// A port name so long that "<name>:<lun>" exceeds 31 bytes can never
	// be matched by xen-scsiback: skipped, with a note.
	long := filepath.Join(cfs, "target/xen-pvscsi/naa.5001405012345678ABCDEF0123/tpgt_1/lun/lun_0/bs")
	os.RemoveAll(filepath.Join(cfs, "target/xen-pvscsi/naa.600140500000000a"))
	if err := os.MkdirAll(long, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(long, "udev_path"), []byte("/dev/sde"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, notes, err = r.Resolve(mustPDev(t, "/dev/sde"), FlavourKernel)
	if !errors.Is(err, ErrNoLIOLUN) || len(notes) != 1 || !strings.Contains(notes[0], "longer than xen-scsiback's 31 bytes") {
		t.Errorf("too-long port: %v, notes %q", err, notes)
	}
}

// TestResolveIBlockInfo: an iblock backstore made with only
// `udev_path=/dev/sdX` written to control has an empty udev_path attribute
// (LIO fills that one only when a tool writes it); its info names the disk
// by Major/Minor, which must resolve the same.
func TestResolveIBlockInfo(t *testing.T) {
	cfs := t.TempDir()
	tpg := filepath.Join(cfs, "target/xen-pvscsi/naa.50014050000000a1/tpgt_1")
	bs := filepath.Join(tpg, "lun/lun_0/1f2e3d4c")
	if err := os.MkdirAll(filepath.Join(tpg, "lun/lun_0/statistics"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(bs, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(tpg, "nexus"), "naa.50014050000000a1\n")
	write(filepath.Join(bs, "udev_path"), "\n")
	info := "Status: ACTIVATED  Max Queue Depth: 128  SectorSize: 512  HwMaxSectors: 128\n" +
		"iBlock device: sde  UDEV PATH: /dev/sde  readonly: 0\n        Major: 8 Minor: %d  CLAIMED: IBLOCK\n"
	write(filepath.Join(bs, "info"), fmt.Sprintf(info, 64))
	r := &Resolver{SysfsRoot: fixtureSysfs, ConfigfsRoot: cfs, Stat: fixtureStat(t)}
	v, notes, err := r.Resolve(mustPDev(t, "/dev/sde"), FlavourKernel)
	if err != nil || v.PDev != "naa.50014050000000a1:0" || notes != nil {
		t.Fatalf("Resolve(/dev/sde) = %+v %q %v, want naa.50014050000000a1:0", v, notes, err)
	}
	// Another disk's numbers (sdd is 8:48) must not match, nor a
	// malformed info.
	for _, bad := range []string{fmt.Sprintf(info, 48), "iBlock device: sde Major: x Minor: 64", ""} {
		write(filepath.Join(bs, "info"), bad)
		if _, _, err := r.Resolve(mustPDev(t, "/dev/sde"), FlavourKernel); !errors.Is(err, ErrNoLIOLUN) {
			t.Errorf("info %q: err = %v, want ErrNoLIOLUN", bad, err)
		}
	}
}

// TestResolveRealDevices uses the real stat(2) on real device nodes of
// this host: /dev/null is char 1:3 everywhere; the fixture sysfs gives 1:3
// a SCSI address, the host's real /sys does not.
func TestResolveRealDevices(t *testing.T) {
	n, err := OSStat("/dev/null")
	if err != nil {
		t.Skipf("no /dev/null: %v", err)
	}
	if !n.Char || n.Block || n.Major != 1 || n.Minor != 3 {
		t.Fatalf("OSStat(/dev/null) = %+v, want char 1:3", n)
	}
	// Large major/minor numbers use the split dev_t encoding; a node made
	// with mknod(2) (root only) must come back with its numbers.
	node := filepath.Join(t.TempDir(), "blk")
	if err := unix.Mknod(node, unix.S_IFBLK|0o600, int(unix.Mkdev(4095, 1048575))); err == nil {
		if n, err := OSStat(node); err != nil || !n.Block || n.Char || n.Major != 4095 || n.Minor != 1048575 {
			t.Errorf("OSStat(block 4095:1048575) = %+v, %v", n, err)
		}
	} else {
		t.Logf("mknod not permitted (%v); large dev_t not checked", err)
	}
	fix := &Resolver{SysfsRoot: fixtureSysfs, ConfigfsRoot: fixtureConfigfs} // real stat
	if h, err := fix.HCTLOf("/dev/null"); err != nil || h != (HCTL{9, 0, 0, 0}) {
		t.Errorf("fixture sysfs, real /dev/null: %v %v, want 9:0:0:0", h, err)
	}
	// Through a symlink, as /dev/disk/by-id names are (stat follows it).
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		link := filepath.Join("/dev/shm", "govscsi-test-link-"+filepath.Base(t.TempDir()))
		if err := os.Symlink("/dev/null", link); err == nil {
			defer os.Remove(link)
			if h, err := fix.HCTLOf(link); err != nil || h != (HCTL{9, 0, 0, 0}) {
				t.Errorf("symlink to /dev/null: %v %v", h, err)
			}
		}
		if _, err := fix.HCTLOf("/dev/shm"); !errors.Is(err, ErrNotDevice) {
			t.Errorf("/dev/shm (a directory): %v, want ErrNotDevice", err)
		}
	}
	if _, err := fix.HCTLOf("/dev/govscsi-no-such-node"); !errors.Is(err, ErrNodeNotFound) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing node: %v", err)
	}
	// The real /sys: /dev/null is not a SCSI device.
	if _, err := os.Stat("/sys/dev/char/1:3"); err != nil {
		t.Skipf("no real sysfs: %v", err)
	}
	real := &Resolver{}
	if _, err := real.HCTLOf("/dev/null"); !errors.Is(err, ErrNoHCTL) || !strings.Contains(err.Error(), "/sys/dev/char/1:3/device/scsi_device") {
		t.Errorf("real sysfs, /dev/null: %v, want ErrNoHCTL naming /sys/dev/char/1:3/device/scsi_device", err)
	}
	// Any real SCSI device this host has resolves to the address sysfs
	// lists for it (none on most CI machines).
	ents, _ := os.ReadDir("/sys/class/scsi_device")
	for _, e := range ents {
		want, err := ParseHCTL(e.Name())
		if err != nil {
			continue
		}
		blocks, _ := os.ReadDir(filepath.Join("/sys/class/scsi_device", e.Name(), "device", "block"))
		for _, b := range blocks {
			got, err := real.HCTLOf("/dev/" + b.Name())
			if err != nil || got != want {
				t.Errorf("real /dev/%s: %v %v, want %v", b.Name(), got, err, want)
			}
		}
	}
}

func TestParseFlavour(t *testing.T) {
	for s, want := range map[string]Flavour{"kernel": FlavourKernel, "hctl": FlavourHCTL, "userspace": FlavourUserspace} {
		if f, err := ParseFlavour(s); err != nil || f != want || f.String() != s {
			t.Errorf("ParseFlavour(%q) = %v %v", s, f, err)
		}
	}
	if _, err := ParseFlavour("user"); err == nil || !strings.Contains(err.Error(), `"user"`) {
		t.Errorf("unknown flavour: %v", err)
	}
	for f, want := range map[Flavour]string{FlavourKernel: "vscsi", FlavourHCTL: "vscsi", FlavourUserspace: "vscsiu"} {
		if got := f.BackendType(); got != want {
			t.Errorf("%v.BackendType() = %q, want %q", f, got, want)
		}
	}
}

// TestDevicesWarnings: flavour advice comes back as warnings with the
// entry's origin; resolution failures as *SpecError wrapping *ResolveError.
func TestDevicesWarnings(t *testing.T) {
	entries, _, err := ParseSpecs([]string{"8:0:2:1,0:0:0:0,feature-host", "/dev/nope,0:0:1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := fixtureResolver(t)
	devs, warns, err := r.Devices(entries[:1], FlavourKernel)
	if err != nil || len(devs) != 1 || len(warns) != 1 || warns[0].Token != "feature-host" || warns[0].Entry != 0 {
		t.Errorf("feature-host with kernel flavour: %v %v %v", devs, warns, err)
	}
	if _, warns, _ := r.Devices(entries[:1], FlavourHCTL); len(warns) != 0 {
		t.Errorf("feature-host with hctl flavour warned: %v", warns)
	}
	_, _, err = r.Devices(entries, FlavourHCTL)
	var se *SpecError
	var re *ResolveError
	if !errors.As(err, &se) || se.Entry != 1 || se.Token != "/dev/nope" || !errors.As(err, &re) || !errors.Is(err, ErrNodeNotFound) {
		t.Errorf("resolution failure: %v", err)
	}
}

// With PlanLIO (a hotplug script will create the LUN), a /dev path that
// no LIO LUN backs yet is rendered as the planned p-dev with p-devname =
// the path and a note; paths that are no device still fail, and so does
// every path for flavour hctl (nothing to plan there).
func TestResolvePlanLIO(t *testing.T) {
	r := fixtureResolver(t)
	r.PlanLIO = func(p string) string { return "naa.planned:" + p }
	v, notes, err := r.Resolve(PDev{Kind: PDevPath, Path: "/dev/sde"}, FlavourKernel)
	if err != nil || v.PDev != "naa.planned:/dev/sde" || v.PDevName != "/dev/sde" || len(notes) != 1 || !strings.Contains(notes[0], "hotplug script") {
		t.Fatalf("planned: %+v %q %v", v, notes, err)
	}
	// A LUN that exists wins over the plan.
	if v, _, err := r.Resolve(PDev{Kind: PDevPath, Path: "/dev/sdb"}, FlavourKernel); err != nil || strings.HasPrefix(v.PDev, "naa.planned") {
		t.Errorf("existing LUN: %+v %v", v, err)
	}
	if _, _, err := r.Resolve(PDev{Kind: PDevPath, Path: "/dev/nope"}, FlavourKernel); !errors.Is(err, ErrNodeNotFound) {
		t.Errorf("missing node: %v", err)
	}
	if _, _, err := r.Resolve(PDev{Kind: PDevPath, Path: "/dev/sde"}, FlavourHCTL); err != nil {
		t.Errorf("hctl: %v", err)
	}
	// Userspace: written as given, no host lookup at all.
	if v, _, err := r.Resolve(PDev{Kind: PDevPath, Path: "/dev/not-on-this-host"}, FlavourUserspace); err != nil || v.PDev != "/dev/not-on-this-host" || v.PDevName != v.PDev {
		t.Errorf("userspace: %+v %v", v, err)
	}
}
