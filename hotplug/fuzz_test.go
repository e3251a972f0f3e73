package hotplug_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govscsi/govscsi/hotplug"
)

// The script's inputs come from the environment and from xenstore nodes
// the toolstack wrote: parsing them never panics, an accepted XENBUS_PATH
// renders back to itself, an accepted backing cannot smuggle LIO control
// parameters, and no p-dev is "found" in an empty LIO.
func FuzzInputs(f *testing.F) {
	for _, s := range [][3]string{
		{"backend/vscsi/5/0", "naa.5001405012345678:0", "/var/lib/disk.img"},
		{"/local/domain/0/backend/vscsi/32751/2147483647", "1:0:7:3", "/dev/disk/by-id/scsi-1"},
		{"backend/vscsi/05/00", "naa.:0", "/a,b=c"},
		{"backend/vscsiu/5/1", "ram:64M", "/srv/disk.img"},
		{"/local/domain/1/backend/Vs.csi/7/0", "file:/srv/a", "/dev/sdb"},
		{"backend/vscsi//0", "naa.5001405012345678:99999999999999999999", "/x/../y"},
		{"", "", ""},
	} {
		f.Add(s[0], s[1], s[2])
	}
	root := filepath.Join(f.TempDir(), "config")
	os.MkdirAll(filepath.Join(root, "target/xen-pvscsi"), 0o755)
	l := &hotplug.LIO{FS: hotplug.FixtureConfigFS{}, Root: root}
	f.Fuzz(func(t *testing.T, xenbusPath, pdev, backing string) {
		if b, err := hotplug.ParseXenbusPath(xenbusPath); err == nil {
			again, err := hotplug.ParseXenbusPath(b.Path())
			if err != nil || again != b {
				t.Errorf("%q -> %+v -> %q -> %+v %v", xenbusPath, b, b.Path(), again, err)
			}
		}
		if err := hotplug.CheckBacking(backing); err == nil {
			if strings.ContainsAny(backing, ",=\n") || !strings.HasPrefix(backing, "/") || strings.Contains(backing, "/../") {
				t.Errorf("backing %q accepted", backing)
			}
		}
		if err := l.Check(pdev, ""); err == nil {
			t.Errorf("p-dev %q found in an empty LIO", pdev)
		} else if !errors.Is(err, hotplug.ErrNoLUN) && !errors.Is(err, hotplug.ErrBadPDev) {
			t.Errorf("p-dev %q: unexpected error %v", pdev, err)
		}
	})
}
