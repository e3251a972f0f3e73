package hotplug_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/govscsi/govscsi/cfgparse"
	"github.com/govscsi/govscsi/hotplug"
	"golang.org/x/sys/unix"
)

// Device backings on real device nodes (mknod, needs root): a block device
// becomes an iblock backstore, a SCSI character device (sg, tape) a pscsi
// one on the h:c:t:l sysfs gives for it; a character device that is not
// SCSI is refused, naming it.
func TestLIODeviceBackings(t *testing.T) {
	root, _ := configfsFixture(t)
	dir := t.TempDir()
	blk, chr, other := filepath.Join(dir, "sdb"), filepath.Join(dir, "sg3"), filepath.Join(dir, "tty9")
	for _, n := range []struct {
		p            string
		mode         uint32
		major, minor uint32
	}{{blk, syscall.S_IFBLK, 8, 16}, {chr, syscall.S_IFCHR, 21, 3}, {other, syscall.S_IFCHR, 4, 9}} {
		if err := unix.Mknod(n.p, n.mode|0o600, int(unix.Mkdev(n.major, n.minor))); err != nil {
			t.Skipf("mknod (needs root): %v", err)
		}
	}
	sys := t.TempDir()
	os.MkdirAll(filepath.Join(sys, "dev/char/21:3/device/scsi_device/3:0:2:1"), 0o755)
	os.MkdirAll(filepath.Join(sys, "dev/char/4:9"), 0o755)
	l := &hotplug.LIO{FS: hotplug.FixtureConfigFS{}, Root: root, Resolver: &cfgparse.Resolver{SysfsRoot: sys}}
	rec := func(hotplug.Step) error { return nil }

	if _, err := l.Ensure("naa.5001405000000001:0", blk, rec); err != nil {
		t.Fatal(err)
	}
	if c, _ := os.ReadFile(filepath.Join(root, "target/core/iblock_0/govscsi-5001405000000001-0/control")); string(c) != "udev_path="+blk+"\n" {
		t.Errorf("iblock control %q", c)
	}
	if _, err := l.Ensure("naa.5001405000000002:0", chr, rec); err != nil {
		t.Fatal(err)
	}
	if c, _ := os.ReadFile(filepath.Join(root, "target/core/pscsi_0/govscsi-5001405000000002-0/control")); string(c) != "scsi_host_id=3,scsi_channel_id=0,scsi_target_id=2,scsi_lun_id=1\n" {
		t.Errorf("pscsi control %q", c)
	}
	// The same device under another name (a by-id link) is the same backing.
	link := filepath.Join(dir, "by-id-disk")
	os.Symlink(blk, link)
	if err := l.Check("naa.5001405000000001:0", link); err != nil {
		t.Errorf("by-id link to the same node: %v", err)
	}
	if err := l.Check("naa.5001405000000001:0", chr); err == nil {
		t.Errorf("another device accepted as the LUN's backing")
	}
	if _, err := l.Ensure("naa.5001405000000003:0", other, rec); err == nil || !strings.Contains(err.Error(), other) {
		t.Errorf("non-SCSI char device: %v", err)
	}
}
