package scsi

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
		"Maximum transfer length: 512 blocks", "Optimal transfer length: 512 blocks", "Maximum unmap LBA count: 1048576",
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

// TestSg3UtilsDecodesOurSense hands every kind of sense this package builds
// to sg_decode_sense and checks its reading of key, ASC/ASCQ, INFORMATION
// and the field pointer.
func TestSg3UtilsDecodesOurSense(t *testing.T) {
	if _, err := exec.LookPath("sg_decode_sense"); err != nil {
		t.Skip("sg_decode_sense not installed (apt-get install sg3-utils)")
	}
	for _, tc := range []struct {
		c    check
		want []string
	}{
		{invalidOpcode(), []string{"Illegal Request", "Invalid command operation code", "Error in Command: byte 0"}},
		{invalidCDB(1, 3), []string{"Illegal Request", "Invalid field in cdb", "Error in Command: byte 1 bit 3"}},
		{invalidParam(14), []string{"Invalid field in parameter list", "Error in Data parameters: byte 14"}},
		{lbaOutOfRange, []string{"Logical block address out of range"}},
		{paramListLenError, []string{"Parameter list length error"}},
		{savingNotSupported, []string{"Saving parameters not supported"}},
		{unrecoveredRead.withInfo(77), []string{"Medium Error", "Unrecovered read error", "Info fld=0x4d [77]"}},
		{writeError.withInfo(5), []string{"Medium Error", "Write error", "Info fld=0x5 [5]"}},
		{writeError.withInfo(1 << 40), []string{"Write error"}}, // INFORMATION cannot hold it: not valid
		{spaceAllocFailed, []string{"Data Protect", "Space allocation failed write protect"}},
		{writeProtected, []string{"Data Protect", "Write protected"}},
		{miscompareOnVerify.withInfo(1000), []string{"Miscompare", "Miscompare during verify operation", "Info fld=0x3e8"}},
		{uaReset, []string{"Unit Attention", "Bus device reset function occurred"}},
		{uaCapacityChanged, []string{"Unit Attention", "Capacity data has changed"}},
		{mediumNotPresent, []string{"Not Ready", "Medium not present"}},
	} {
		s := tc.c.sense()
		args := make([]string, len(s))
		for i, b := range s {
			args[i] = strings.TrimPrefix(strings.ToLower(strconv.FormatUint(uint64(b)|0x100, 16)), "1")
		}
		out, err := exec.Command("sg_decode_sense", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("sg_decode_sense % x: %v\n%s", s, err, out)
		}
		if !strings.HasPrefix(string(out), "Fixed format, current") {
			t.Errorf("% x: not read as current fixed-format sense:\n%s", s, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(strings.ToLower(string(out)), strings.ToLower(w)) {
				t.Errorf("% x: decoder output lacks %q:\n%s", s, w, out)
			}
		}
		if tc.c.key == KeyMediumError && !tc.c.infoValid && strings.Contains(string(out), "Info fld") {
			t.Errorf("oversized INFORMATION reported as valid:\n%s", out)
		}
	}
}
