package sgio

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/govscsi/govscsi/backend/scsi"
	"github.com/govscsi/govscsi/backend/vscsiif"
)

// fakeDev plays the kernel's side of SG_IO: it checks the header it is
// handed and completes the command the way the test configures.
type fakeDev struct {
	t        *testing.T
	calls    int
	lastHdr  Hdr
	lastCDB  []byte
	cdbBuf   [16]byte
	errno    syscall.Errno
	fill     byte   // written into FROM_DEV buffers
	resid    int32  // reported residual
	status   uint8  // SCSI status
	host     uint16 // DID_*
	driver   uint16
	sense    []byte
	gotData  []byte // TO_DEV data seen
	resetArg int32
}

// ptr reinterprets a uintptr header field as the pointer the kernel would use.
func ptr(p *uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(p)) }

func (f *fakeDev) ioctl(fd uintptr, req uintptr, arg unsafe.Pointer) syscall.Errno {
	f.calls++
	if req == ioctlSCSIReset {
		f.resetArg = *(*int32)(arg)
		return f.errno
	}
	if req != ioctlSGIO {
		f.t.Fatalf("unexpected ioctl %#x", req)
	}
	h := (*Hdr)(arg)
	f.lastHdr = *h
	if h.InterfaceID != 'S' || h.CmdLen == 0 || h.CmdLen > 16 || h.MxSbLen != vscsiif.SenseBufferSize {
		f.t.Fatalf("bad header %+v", *h)
	}
	f.lastCDB = f.cdbBuf[:copy(f.cdbBuf[:], unsafe.Slice((*byte)(ptr(&h.Cmdp)), h.CmdLen))]
	if f.errno != 0 {
		return f.errno
	}
	if (h.DxferLen == 0) != (h.Dxferp == 0) {
		f.t.Fatalf("dxfer_len %d with dxferp %#x", h.DxferLen, h.Dxferp)
	}
	if h.DxferLen > 0 {
		buf := unsafe.Slice((*byte)(ptr(&h.Dxferp)), h.DxferLen)
		switch h.DxferDirection {
		case dxferFromDev:
			for i := range buf[:int(h.DxferLen)-int(f.resid)] {
				buf[i] = f.fill
			}
		case dxferToDev:
			f.gotData = append([]byte(nil), buf...)
		default:
			f.t.Fatalf("data with direction %d", h.DxferDirection)
		}
	}
	h.Status, h.HostStatus, h.DriverStatus, h.Resid = f.status, f.host, f.driver, f.resid
	if len(f.sense) > 0 {
		n := copy(unsafe.Slice((*byte)(ptr(&h.Sbp)), h.MxSbLen), f.sense)
		h.SbLenWr = uint8(n)
	}
	return 0
}

func newFake(t *testing.T, opts Options) (*Device, *fakeDev) {
	f := &fakeDev{t: t}
	return newDevice("fake", nil, 3, opts, f.ioctl, TypeDisk), f
}

func run(d *Device, dir scsi.Direction, data []byte, cdb ...byte) scsi.Result {
	var res scsi.Result
	d.Execute(&scsi.Command{CDB: cdb, Dir: dir, Data: data}, &res)
	return res
}

func TestLayoutIsSane(t *testing.T) {
	l := Layout()
	if l[len(l)-1].Name != "sizeof" {
		t.Fatal("layout must end with sizeof")
	}
	want := uintptr(64)
	if unsafe.Sizeof(uintptr(0)) == 8 {
		want = 88
	}
	if sz := l[len(l)-1].Size; sz != want {
		t.Fatalf("sizeof(sg_io_hdr) %d, want %d", sz, want)
	}
	for i := 1; i < len(l)-1; i++ {
		if l[i].Offset < l[i-1].Offset+l[i-1].Size {
			t.Fatalf("%s overlaps %s", l[i].Name, l[i-1].Name)
		}
	}
}

func TestAllowList(t *testing.T) {
	tab := diskPolicy()
	for _, tc := range []struct {
		cdb  []byte
		ro   bool
		want verdict
	}{
		{[]byte{0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0}, false, pass},
		{[]byte{0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0}, false, pass},
		{[]byte{0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0}, true, refuseReadOnly},
		{[]byte{0x12, 1, 0x83, 0, 0xFF, 0}, true, pass},
		{[]byte{0x9E, 0x10}, false, pass},
		{[]byte{0x9E, 0x11}, false, refuseField},
		{[]byte{0x9E}, false, refuseField},
		{[]byte{0xA3, 0x0C}, false, pass},
		{[]byte{0xA3, 0x05}, false, refuseField},
		{[]byte{0x15, 0x10, 0, 0, 12, 0}, false, pass},
		{[]byte{0x15, 0x11, 0, 0, 12, 0}, false, refuseField}, // SP
		{[]byte{0x55, 0x10}, true, refuseReadOnly},
		{[]byte{0x04, 0, 0, 0, 0, 0}, false, refuseOpcode}, // FORMAT UNIT
		{[]byte{0x3B, 0x05}, false, refuseOpcode},          // WRITE BUFFER (download microcode)
		{[]byte{0x5E, 0}, false, refuseOpcode},             // PERSISTENT RESERVE IN
		{[]byte{0x5F, 0}, false, refuseOpcode},
		{[]byte{0x16}, false, refuseOpcode}, // RESERVE(6)
		{[]byte{0x48}, false, refuseOpcode}, // SANITIZE
		{[]byte{0x85}, false, refuseOpcode}, // ATA PASS-THROUGH(16)
		{[]byte{0x7F}, false, refuseOpcode},
		{[]byte{0xC5}, false, refuseOpcode}, // vendor specific
		{[]byte{0xFF}, false, refuseOpcode},
	} {
		if got := classify(tab, tc.cdb, tc.ro); got != tc.want {
			t.Errorf("% x ro=%v: verdict %d, want %d", tc.cdb, tc.ro, got, tc.want)
		}
	}
	for op := 0xC0; op <= 0xFF; op++ {
		if tab[op] != deny {
			t.Errorf("vendor-specific opcode %#x allowed", op)
		}
	}
}

func TestExecuteFiltersAndEmulates(t *testing.T) {
	d, f := newFake(t, Options{ReadOnly: true, ReportLUNs: func() []uint64 { return []uint64{0, 4} }})
	check := func(res scsi.Result, key, asc byte) {
		t.Helper()
		if res.Status != scsi.StatusCheckCondition || !scsi.ValidFixedSense(res.Sense) || res.Sense[2] != key || res.Sense[12] != asc || res.Host != 0 {
			t.Fatalf("result %+v, want %x/%02x", res, key, asc)
		}
	}
	check(run(d, scsi.DirToDevice, make([]byte, 512), 0x3B, 0x05, 0, 0, 0, 0, 0, 2, 0, 0), 0x05, 0x20)
	check(run(d, scsi.DirNone, nil, 0x9E, 0x1F, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), 0x05, 0x24)
	check(run(d, scsi.DirToDevice, make([]byte, 512), 0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0), 0x07, 0x27)
	buf := make([]byte, 64)
	res := run(d, scsi.DirFromDevice, buf, 0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0)
	if res.Status != 0 || res.DataLen != 24 || buf[17] != 4 {
		t.Fatalf("emulated REPORT LUNS: %+v % x", res, buf[:24])
	}
	if f.calls != 0 {
		t.Fatalf("%d filtered/emulated commands reached the device", f.calls)
	}
	// Raw mode passes everything, REPORT LUNS included.
	raw, rf := newFake(t, Options{Raw: true, ReadOnly: true, ReportLUNs: func() []uint64 { return nil }})
	for _, cdb := range [][]byte{{0x3B, 0x05, 0, 0, 0, 0, 0, 0, 0, 0}, {0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0}, {0xC5, 0, 0, 0, 0, 0}} {
		if res := run(raw, scsi.DirNone, nil, cdb...); res.Status != 0 || res.Host != 0 {
			t.Fatalf("raw % x: %+v", cdb, res)
		}
		if !bytes.Equal(rf.lastCDB, cdb) {
			t.Fatalf("device saw % x, want % x", rf.lastCDB, cdb)
		}
	}
}

func TestExecutePassesThrough(t *testing.T) {
	d, f := newFake(t, Options{Timeout: 5 * time.Second})
	// READ(10) with a short transfer: residual reported.
	f.fill, f.resid = 0xA5, 512
	buf := make([]byte, 4096)
	res := run(d, scsi.DirFromDevice, buf, 0x28, 0, 0, 0, 0, 9, 0, 0, 8, 0)
	if res.Status != 0 || res.Host != 0 || res.DataLen != 4096-512 || buf[0] != 0xA5 || buf[4095] != 0 {
		t.Fatalf("read: %+v", res)
	}
	if h := f.lastHdr; h.DxferDirection != dxferFromDev || h.DxferLen != 4096 || h.Timeout != 5000 || h.CmdLen != 10 {
		t.Fatalf("header %+v", h)
	}
	// WRITE: the device sees the guest's bytes.
	f.resid = 0
	data := bytes.Repeat([]byte{1, 2, 3, 4}, 128)
	if res := run(d, scsi.DirToDevice, data, 0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0); res.Status != 0 || !bytes.Equal(f.gotData, data) {
		t.Fatalf("write: %+v", res)
	}
	// DirNone (or an empty buffer): no data pointer at all.
	run(d, scsi.DirNone, make([]byte, 10), 0, 0, 0, 0, 0, 0)
	if f.lastHdr.DxferDirection != dxferNone || f.lastHdr.DxferLen != 0 {
		t.Fatalf("TUR header %+v", f.lastHdr)
	}
	// CHECK CONDITION: status and sense (with its length) pass through.
	sense := []byte{0x70, 0, 0x03, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x11, 0x00, 0, 0, 0, 0}
	f.status, f.sense, f.driver = 0x02, sense, driverSense
	res = run(d, scsi.DirFromDevice, buf, 0x28, 0, 0, 0, 0, 9, 0, 0, 8, 0)
	if res.Status != 2 || res.Host != 0 || !bytes.Equal(res.Sense, sense) {
		t.Fatalf("check condition: %+v", res)
	}
	// Descriptor-format sense from the device is passed as is, with its length.
	desc := []byte{0x72, 0x05, 0x24, 0x00, 0, 0, 0, 0}
	f.sense = desc
	if res := run(d, scsi.DirNone, nil, 0, 0, 0, 0, 0, 0); !bytes.Equal(res.Sense, desc) {
		t.Fatalf("descriptor sense: % x", res.Sense)
	}
	f.sense, f.status, f.driver = nil, 0, 0
	// Host and driver bytes.
	for _, tc := range []struct {
		host, driver uint16
		status       uint8
		want         uint8
	}{
		{0, 0, 0, vscsiif.HostOK},
		{3, 0, 0, vscsiif.HostTimeOut},
		{1, 0, 0, vscsiif.HostNoConnect},
		{20, 0, 0, vscsiif.HostTransportMarginal},
		{99, 0, 0, vscsiif.HostError},
		{0, driverTimeout, 0, vscsiif.HostTimeOut},
		{0, 0x04, 0, vscsiif.HostError}, // DRIVER_ERROR without a status
		{0, 0x04, 2, vscsiif.HostOK},    // ... but with CHECK CONDITION the status speaks
		{0, driverSense, 0, vscsiif.HostOK},
	} {
		f.host, f.driver, f.status = tc.host, tc.driver, tc.status
		if res := run(d, scsi.DirNone, nil, 0, 0, 0, 0, 0, 0); res.Host != tc.want || res.Status != tc.status {
			t.Errorf("host %d driver %#x: got host %d status %d, want host %d", tc.host, tc.driver, res.Host, res.Status, tc.want)
		}
	}
	f.host, f.driver, f.status = 0, 0, 0
	// ioctl failures.
	for e, want := range map[syscall.Errno]uint8{syscall.ENODEV: vscsiif.HostNoConnect, syscall.EBUSY: vscsiif.HostBusBusy,
		syscall.ENOMEM: vscsiif.HostBusBusy, syscall.EINVAL: vscsiif.HostError, syscall.ENOTTY: vscsiif.HostError} {
		f.errno = e
		if res := run(d, scsi.DirFromDevice, buf, 0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0); res.Host != want || res.Status != 0 || res.DataLen != 0 {
			t.Errorf("errno %v: %+v", e, res)
		}
	}
	f.errno = 0
	// Malformed requests never reach the device.
	calls := f.calls
	for _, tc := range []struct {
		dir scsi.Direction
		cdb []byte
	}{{scsi.DirNone, nil}, {scsi.DirNone, make([]byte, 17)}, {scsi.DirBidirectional, []byte{0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0}}} {
		if res := run(d, tc.dir, buf, tc.cdb...); res.Host != vscsiif.HostError {
			t.Errorf("dir %d cdb len %d: %+v", tc.dir, len(tc.cdb), res)
		}
	}
	if f.calls != calls {
		t.Fatal("a malformed request reached the device")
	}
	if err := d.Reset(); err != nil || f.resetArg != resetDevice {
		t.Fatalf("reset: %v arg %d", err, f.resetArg)
	}
	f.errno = syscall.EIO
	if err := d.Reset(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("failed reset: %v", err)
	}
	if d.Abort(7) {
		t.Fatal("Abort cannot cancel SG_IO")
	}
}

func TestPassThroughPathAllocatesNothing(t *testing.T) {
	d, _ := newFake(t, Options{})
	cmd := &scsi.Command{CDB: []byte{0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0}, Dir: scsi.DirFromDevice, Data: make([]byte, 4096)}
	var res scsi.Result
	d.Execute(cmd, &res)
	if n := testing.AllocsPerRun(100, func() { d.Execute(cmd, &res) }); n != 0 {
		t.Fatalf("%v allocs per pass-through READ", n)
	}
}

// TestOpenRejectsNonSCSI proves the SG_IO probe against real kernel objects:
// a regular file and (as root) a loop device, which has no SCSI layer.
func TestOpenRejectsNonSCSI(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(p, Options{}); !errors.Is(err, syscall.ENOTTY) {
		t.Fatalf("regular file: %v, want ENOTTY", err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing"), Options{}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing node: %v", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("loop device part needs root")
	}
	out, err := exec.Command("losetup", "-f", "--show", p).CombinedOutput()
	if err != nil {
		t.Skipf("loop devices unavailable: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	defer exec.Command("losetup", "-d", dev).Run()
	_, err = Open(dev, Options{})
	if err == nil || !strings.Contains(err.Error(), "does not support SG_IO") {
		t.Fatalf("loop device %s: %v", dev, err)
	}
	t.Logf("loop device: %v", err)
}

// scsiDebugDisk finds a SCSI disk to test against: $GOVSCSI_SGIO_DEV, or a
// scsi_debug disk (loading the module if modprobe works here).
func scsiDebugDisk(t *testing.T) string {
	if dev := os.Getenv("GOVSCSI_SGIO_DEV"); dev != "" {
		return dev
	}
	find := func() string {
		models, _ := filepath.Glob("/sys/class/scsi_device/*/device/model")
		for _, m := range models {
			b, _ := os.ReadFile(m)
			if strings.TrimSpace(string(b)) != "scsi_debug" {
				continue
			}
			blocks, _ := filepath.Glob(filepath.Join(filepath.Dir(m), "block", "*"))
			if len(blocks) > 0 {
				return "/dev/" + filepath.Base(blocks[0])
			}
		}
		return ""
	}
	if dev := find(); dev != "" {
		return dev
	}
	if os.Geteuid() == 0 {
		if out, err := exec.Command("modprobe", "scsi_debug", "dev_size_mb=16").CombinedOutput(); err == nil {
			for i := 0; i < 50; i++ {
				if dev := find(); dev != "" {
					if _, err := os.Stat(dev); err == nil {
						return dev
					}
				}
				time.Sleep(100 * time.Millisecond)
			}
		} else {
			t.Logf("modprobe scsi_debug: %v: %s", err, out)
		}
	}
	t.Skip("no SCSI device: set GOVSCSI_SGIO_DEV or make scsi_debug loadable (this sandbox has no SCSI layer or modules; the Xen rig runs this in dom0)")
	return ""
}

// TestRealDevice drives a real SCSI disk through SG_IO.
func TestRealDevice(t *testing.T) {
	dev := scsiDebugDisk(t)
	d, err := Open(dev, Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var res scsi.Result
	tur := func() scsi.Result { return run(d, scsi.DirNone, nil, 0, 0, 0, 0, 0, 0) }
	for i := 0; i < 3; i++ { // the first may carry a unit attention
		if res = tur(); res.Status == 0 {
			break
		}
	}
	if res.Status != 0 || res.Host != 0 {
		t.Fatalf("TEST UNIT READY: %+v", res)
	}
	inq := make([]byte, 96)
	res = run(d, scsi.DirFromDevice, inq, 0x12, 0, 0, 0, 96, 0)
	if res.Status != 0 || res.DataLen < 36 {
		t.Fatalf("INQUIRY: %+v", res)
	}
	t.Logf("INQUIRY: %q %q", inq[8:16], inq[16:32])
	rc := make([]byte, 8)
	if res = run(d, scsi.DirFromDevice, rc, 0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0); res.Status != 0 || res.DataLen != 8 {
		t.Fatalf("READ CAPACITY: %+v", res)
	}
	bs := int(rc[4])<<24 | int(rc[5])<<16 | int(rc[6])<<8 | int(rc[7])
	data := bytes.Repeat([]byte{0x5A}, bs)
	if res = run(d, scsi.DirToDevice, data, 0x2A, 0, 0, 0, 0, 1, 0, 0, 1, 0); res.Status != 0 {
		t.Fatalf("WRITE(10): %+v", res)
	}
	back := make([]byte, bs)
	if res = run(d, scsi.DirFromDevice, back, 0x28, 0, 0, 0, 0, 1, 0, 0, 1, 0); res.Status != 0 || !bytes.Equal(back, data) {
		t.Fatalf("READ(10): %+v", res)
	}
	// A read past the end: CHECK CONDITION with ILLEGAL REQUEST sense.
	res = run(d, scsi.DirFromDevice, back, 0x28, 0, 0xFF, 0xFF, 0xFF, 0xF0, 0, 0, 1, 0)
	if res.Status != 2 || len(res.Sense) < 14 || res.Sense[2]&0x0F != 5 && res.Sense[1]&0x0F != 5 {
		t.Fatalf("read past end: %+v", res)
	}
	// Denied without ever reaching the device.
	if res = run(d, scsi.DirNone, nil, 0x04, 0, 0, 0, 0, 0); res.Status != 2 || res.Sense[12] != 0x20 {
		t.Fatalf("FORMAT UNIT not refused: %+v", res)
	}
}

// TestPolicyPerDeviceType: an opcode means what the device's command set
// says; each type gets the commands its software sends, and only those.
func TestPolicyPerDeviceType(t *testing.T) {
	type c struct {
		cdb  []byte
		ro   bool
		want verdict
	}
	cases := map[byte][]c{
		TypeTape: {
			{[]byte{0x01, 0, 0, 0, 0, 0}, false, pass},                 // REWIND
			{[]byte{0x05, 0, 0, 0, 0, 0}, false, pass},                 // READ BLOCK LIMITS
			{[]byte{0x34, 0, 0, 0, 0, 0, 0, 0, 0, 0}, false, pass},     // READ POSITION
			{[]byte{0x2B, 0, 0, 0, 0, 0, 0, 0, 0, 0}, false, pass},     // LOCATE(10)
			{[]byte{0x92, 0}, false, pass},                             // LOCATE(16)
			{[]byte{0x11, 1, 0, 0, 1, 0}, false, pass},                 // SPACE(6)
			{[]byte{0x1B, 0, 0, 0, 1, 0}, false, pass},                 // LOAD UNLOAD
			{[]byte{0x4D, 0, 0x6E, 0, 0, 0, 0, 0, 64, 0}, false, pass}, // LOG SENSE TapeAlert (2Eh)
			{[]byte{0x15, 0x10, 0, 0, 12, 0}, true, pass},              // MODE SELECT on a read-only tape (block size)
			{[]byte{0x10, 0, 0, 0, 1, 0}, false, pass},                 // WRITE FILEMARKS(6)
			{[]byte{0x10, 0, 0, 0, 1, 0}, true, refuseReadOnly},        //
			{[]byte{0x04, 0, 0, 0, 0, 0}, false, pass},                 // FORMAT MEDIUM
			{[]byte{0x0A, 1, 0, 0, 1, 0}, true, refuseReadOnly},        // WRITE(6)
			{[]byte{0x8D, 0}, false, pass},                             // WRITE ATTRIBUTE
			{[]byte{0xA5, 0}, false, refuseOpcode},                     // MOVE MEDIUM is a changer's
			{[]byte{0xA2, 0}, false, refuseOpcode},                     // SECURITY PROTOCOL IN
			{[]byte{0x3B, 0}, false, refuseOpcode},                     // WRITE BUFFER
			{[]byte{0x5F, 0}, false, refuseOpcode},                     // PERSISTENT RESERVE OUT
		},
		TypeChanger: {
			{[]byte{0xA5, 0, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0}, false, pass}, // MOVE MEDIUM
			{[]byte{0xA5, 0, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0}, true, pass},  // ... read-only changer too
			{[]byte{0xB8, 0x10}, false, pass},                            // READ ELEMENT STATUS
			{[]byte{0x07, 0, 0, 0, 0, 0}, false, pass},                   // INITIALIZE ELEMENT STATUS
			{[]byte{0x37, 0}, false, pass},                               // ... WITH RANGE
			{[]byte{0x2B, 0}, false, pass},                               // POSITION TO ELEMENT
			{[]byte{0xA6, 0}, false, pass},                               // EXCHANGE MEDIUM
			{[]byte{0x1E, 0, 0, 0, 1, 0}, false, pass},                   // PREVENT ALLOW (door lock)
			{[]byte{0x28, 0}, false, refuseOpcode},                       // READ(10) is a disk's
			{[]byte{0x01, 0}, false, refuseOpcode},                       // REWIND is a tape's
		},
		TypeDisk: {
			{[]byte{0x2B, 0}, false, pass},         // SEEK(10)
			{[]byte{0x04, 0}, false, refuseOpcode}, // FORMAT UNIT
			{[]byte{0xA5, 0}, false, refuseOpcode},
			{[]byte{0x10, 0}, false, refuseOpcode}, // no filemarks on a disk
			{[]byte{0x89, 0}, true, refuseReadOnly},
		},
		TypeCDROM: {
			{[]byte{0x43, 0}, false, pass},         // READ TOC
			{[]byte{0xBD, 0}, false, pass},         // MECHANISM STATUS
			{[]byte{0x0A, 0}, false, refuseOpcode}, // WRITE(6)
		},
		0x03: { // a processor: SPC only
			{[]byte{0x12, 0}, false, pass},
			{[]byte{0x28, 0}, false, refuseOpcode},
		},
	}
	for ptype, cs := range cases {
		tab := policyFor(ptype)
		for _, tc := range cs {
			if got := classify(tab, tc.cdb, tc.ro); got != tc.want {
				t.Errorf("%s: % x ro=%v: verdict %d, want %d", TypeName(ptype), tc.cdb, tc.ro, got, tc.want)
			}
		}
		for op := 0xC0; op <= 0xFF; op++ {
			if tab[op] != deny {
				t.Errorf("%s: vendor-specific opcode %#x allowed", TypeName(ptype), op)
			}
		}
	}
}

// TestProbeType: the device's INQUIRY picks its allow-list; a LUN with no
// device connected (peripheral qualifier != 0) or an INQUIRY that fails is
// refused.
func TestProbeType(t *testing.T) {
	for _, c := range []struct {
		byte0   byte
		wantErr bool
		want    byte
	}{{0x01, false, TypeTape}, {0x08, false, TypeChanger}, {0x05, false, TypeCDROM}, {0x00, false, TypeDisk}, {0x7F, true, 0}, {0x21, true, 0}} {
		d, f := newFake(t, Options{})
		f.fill = c.byte0
		err := d.probeType()
		if (err != nil) != c.wantErr || err == nil && d.Type() != c.want {
			t.Errorf("INQUIRY byte 0 %#x: type %d, err %v", c.byte0, d.Type(), err)
		}
		if !c.wantErr && f.lastCDB[0] != scsi.OpInquiry {
			t.Errorf("probe sent % x", f.lastCDB)
		}
	}
	d, f := newFake(t, Options{})
	f.status = scsi.StatusCheckCondition
	if err := d.probeType(); err == nil || !strings.Contains(err.Error(), "INQUIRY failed") {
		t.Errorf("failing INQUIRY: %v", err)
	}
	// Once a tape, tape commands pass and disk ones do not.
	d, f = newFake(t, Options{})
	f.fill = TypeTape
	d.probeType()
	f.fill = 0
	if res := run(d, scsi.DirNone, nil, 0x01, 0, 0, 0, 0, 0); res.Status != 0 || f.lastCDB[0] != 0x01 {
		t.Fatalf("REWIND on a tape: %+v, device saw % x", res, f.lastCDB)
	}
	if res := run(d, scsi.DirNone, nil, 0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0); res.Status != scsi.StatusCheckCondition {
		t.Fatalf("SYNCHRONIZE CACHE on a tape passed: %+v", res)
	}
}
