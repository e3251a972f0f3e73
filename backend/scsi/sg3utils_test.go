package scsi

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govscsi/govscsi/backend/store"
)

// TestSg3UtilsDecodesOurPages feeds the disk's INQUIRY and VPD answers to the
// real sg3_utils decoders (sg_inq / sg_vpd --inhex --raw), the tools the
// guest will point at the disk in the rig, and checks what they print.
func TestSg3UtilsDecodesOurPages(t *testing.T) {
	for _, tool := range []string{"sg_inq", "sg_vpd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (apt-get install sg3-utils)", tool)
		}
	}
	r, err := store.NewRAM(1<<30, store.RAMOptions{PhysicalBlockSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	d := NewDisk(r, DiskOptions{ID: "rig-disk", Discard: true, Product: "RIGDISK", Serial: "SN-0042"})
	dir := t.TempDir()
	decode := func(tool string, cdb []byte) string {
		t.Helper()
		buf := make([]byte, 1024)
		res := exec1(t, d, buf, cdb)
		p := filepath.Join(dir, "resp.bin")
		if err := os.WriteFile(p, buf[:res.DataLen], 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(tool, "--inhex="+p, "--raw").CombinedOutput()
		if err != nil {
			t.Fatalf("%s on % x: %v\n%s", tool, cdb, err, out)
		}
		return string(out)
	}
	want := func(out string, lines ...string) {
		t.Helper()
		for _, l := range lines {
			if !strings.Contains(out, l) {
				t.Errorf("decoder output lacks %q:\n%s", l, out)
			}
		}
	}
	want(decode("sg_inq", inquiry(false, 0, 255)),
		"PDT=0", "version=0x06  [SPC-4]", "HiSUP=1", "CmdQue=1", "length=74",
		"Vendor identification: GOVSCSI", "Product identification: RIGDISK", "Product revision level: 0001")
	want(decode("sg_vpd", inquiry(true, 0x00, 255)),
		"Unit serial number [sn]", "Device identification [di]", "Block limits (SBC) [bl]",
		"Block device characteristics (SBC) [bdc]", "Logical block provisioning (SBC) [lbpv]")
	want(decode("sg_vpd", inquiry(true, 0x80, 255)), "Unit serial number: SN-0042")
	want(decode("sg_vpd", inquiry(true, 0x83, 255)),
		"designator type: NAA,  code set: Binary", "designator type: T10 vendor identification,  code set: ASCII",
		"vendor id: GOVSCSI", "vendor specific: SN-0042")
	want(decode("sg_vpd", inquiry(true, 0xB0, 255)),
		"Write same non-zero (WSNZ): 1", "Optimal transfer length granularity: 8 blocks",
		"Maximum transfer length: 1024 blocks", "Maximum unmap LBA count: 1048576",
		"Maximum unmap block descriptor count: 256", "Maximum write same length: 0x100000 blocks")
	want(decode("sg_vpd", inquiry(true, 0xB1, 255)), "Non-rotating medium")
	want(decode("sg_vpd", inquiry(true, 0xB2, 255)),
		"(LBPU): 1", "(LBPWS): 1", "(LBPWS10): 1", "(LBPRZ): 1", "Provisioning type: 2 (thin provisioned)")
}

func exec1(t *testing.T, l LUN, buf, cdb []byte) Result {
	t.Helper()
	res := run(t, l, DirFromDevice, buf, cdb...)
	wantGood(t, res)
	return res
}
