package sgio

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/govscsi/govscsi/backend/scsi"
	"github.com/govscsi/govscsi/backend/vscsiif"
)

// DefaultTimeout is the per-command timeout when Options.Timeout is 0 (the
// Linux sd default).
const DefaultTimeout = 30 * time.Second

// Options configures Open.
type Options struct {
	// Timeout bounds each command inside the kernel (SG_IO timeout); on
	// expiry the kernel aborts it and the guest sees host TIME_OUT.
	Timeout time.Duration
	// Raw is feature-host mode: every CDB goes to the device unfiltered
	// and REPORT LUNS is not emulated.
	Raw bool
	// ReadOnly refuses write-class CDBs with DATA PROTECT / WRITE PROTECTED
	// (not in raw mode).
	ReadOnly bool
	// ReportLUNs, when set (and not raw), answers REPORT LUNS locally with
	// the LUNs configured on the guest's (channel, target), like xenlinux.
	ReportLUNs func() []uint64
}

// ioctlFunc is the seam the unit tests replace: one ioctl on fd.
type ioctlFunc func(fd uintptr, req uintptr, arg unsafe.Pointer) syscall.Errno

func sysIoctl(fd uintptr, req uintptr, arg unsafe.Pointer) syscall.Errno {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, fd, req, uintptr(arg))
	return e
}

// Device is a pass-through LUN over /dev/sgN or a SCSI block device
// (/dev/sdX, preferred: its SG_IO waits uninterruptibly, whereas /dev/sg
// may return early on a signal and the runtime restarts the ioctl).
// Execute is safe for concurrent use; each call blocks for the duration of
// the device command.
type Device struct {
	path      string
	f         *os.File
	fd        uintptr
	opts      Options
	timeoutMS uint32
	allow     *[256]uint8
	ptype     byte
	ioctl     ioctlFunc
	calls     sync.Pool
}

// call is the per-command memory handed to the kernel: header, CDB and sense
// in one heap object (pooled, so the path does not allocate).
type call struct {
	hdr   Hdr
	cdb   [16]byte
	sense [vscsiif.SenseBufferSize]byte
	pin   runtime.Pinner
}

// OpenFlags are the open(2) flags FromFile expects its descriptor to have
// been opened with (O_NONBLOCK: opening a tape or sg node must not wait
// for a medium).
const OpenFlags = os.O_RDWR | unix.O_NONBLOCK

// Open opens path and checks that it speaks SG_IO (SG_GET_VERSION_NUM), by
// path: for trusted paths (tests, tools). The backend opens a guest's
// p-dev through lunconf, beneath its allowed directory, and hands the
// descriptor to FromFile.
func Open(path string, opts Options) (*Device, error) {
	f, err := os.OpenFile(path, OpenFlags|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("sgio: open: %w", err)
	}
	return FromFile(f, opts)
}

// FromFile makes a pass-through LUN of f, an sg node or SCSI block device
// opened with OpenFlags, after checking that it speaks SG_IO v3. The Device
// owns f from here on, also when FromFile fails.
func FromFile(f *os.File, opts Options) (*Device, error) {
	path := f.Name()
	var ver int32
	if e := sysIoctl(f.Fd(), ioctlGetVersionNum, unsafe.Pointer(&ver)); e != 0 {
		f.Close()
		return nil, fmt.Errorf("sgio: %s does not support SG_IO (SG_GET_VERSION_NUM): %w", path, e)
	}
	if ver < 30000 {
		f.Close()
		return nil, fmt.Errorf("sgio: %s: sg driver version %d lacks the v3 interface", path, ver)
	}
	d := newDevice(path, f, f.Fd(), opts, sysIoctl, TypeDisk)
	if err := d.probeType(); err != nil {
		f.Close()
		return nil, err
	}
	return d, nil
}

// probeType asks the device what it is (standard INQUIRY) and takes the
// allow-list of its peripheral device type.
func (d *Device) probeType() error {
	buf := make([]byte, 36)
	var res scsi.Result
	d.Execute(&scsi.Command{CDB: []byte{scsi.OpInquiry, 0, 0, 0, 36, 0}, Dir: scsi.DirFromDevice, Data: buf}, &res)
	if res.Status != scsi.StatusGood || res.Host != 0 || res.DataLen < 1 {
		return fmt.Errorf("sgio: %s: INQUIRY failed (status %#x, host %d, sense % x): cannot tell the device type", d.path, res.Status, res.Host, res.Sense)
	}
	if q := buf[0] >> 5; q != 0 {
		return fmt.Errorf("sgio: %s: peripheral qualifier %d: no device connected at this LUN", d.path, q)
	}
	d.setType(buf[0] & 0x1F)
	return nil
}

func (d *Device) setType(ptype byte) {
	d.ptype = ptype
	d.allow = policyFor(ptype)
}

// Type is the device's peripheral device type (TypeDisk, TypeTape, ...),
// whose allow-list filters the guest's CDBs.
func (d *Device) Type() byte { return d.ptype }

func newDevice(path string, f *os.File, fd uintptr, opts Options, io ioctlFunc, ptype byte) *Device {
	d := &Device{path: path, f: f, fd: fd, opts: opts, ioctl: io}
	d.setType(ptype)
	t := opts.Timeout
	if t <= 0 {
		t = DefaultTimeout
	}
	d.timeoutMS = uint32(min(t.Milliseconds(), int64(^uint32(0)-1)))
	d.calls.New = func() any { return new(call) }
	return d
}

// Path is the device node.
func (d *Device) Path() string { return d.path }

// Execute implements scsi.LUN.
func (d *Device) Execute(cmd *scsi.Command, res *scsi.Result) {
	*res = scsi.Result{}
	n := len(cmd.CDB)
	if n == 0 || n > 16 {
		res.Host = vscsiif.HostError
		return
	}
	if !d.opts.Raw {
		if cmd.CDB[0] == scsi.OpReportLUNs && d.opts.ReportLUNs != nil {
			scsi.EmulateReportLUNs(cmd, res, d.opts.ReportLUNs())
			return
		}
		switch classify(d.allow, cmd.CDB, d.opts.ReadOnly) {
		case refuseOpcode:
			scsi.SetCheckCondition(res, scsi.KeyIllegalRequest, 0x20, 0x00)
			return
		case refuseField:
			scsi.SetCheckCondition(res, scsi.KeyIllegalRequest, 0x24, 0x00)
			return
		case refuseReadOnly:
			scsi.SetCheckCondition(res, scsi.KeyDataProtect, 0x27, 0x00)
			return
		}
	}
	var dir int32
	data := cmd.Data
	switch cmd.Dir {
	case scsi.DirNone:
		dir, data = dxferNone, nil
	case scsi.DirToDevice:
		dir = dxferToDev
	case scsi.DirFromDevice:
		dir = dxferFromDev
	default:
		// SG_IO v3 has no bidirectional transfers.
		res.Host = vscsiif.HostError
		return
	}
	if len(data) == 0 {
		dir, data = dxferNone, nil
	}
	c := d.calls.Get().(*call)
	defer d.calls.Put(c)
	copy(c.cdb[:], cmd.CDB)
	c.hdr = Hdr{
		InterfaceID:    interfaceID,
		DxferDirection: dir,
		CmdLen:         uint8(n),
		MxSbLen:        vscsiif.SenseBufferSize,
		DxferLen:       uint32(len(data)),
		Cmdp:           uintptr(unsafe.Pointer(&c.cdb[0])),
		Sbp:            uintptr(unsafe.Pointer(&c.sense[0])),
		Timeout:        d.timeoutMS,
	}
	if len(data) > 0 {
		c.pin.Pin(&data[0]) // the kernel holds this address for the whole call
		c.hdr.Dxferp = uintptr(unsafe.Pointer(&data[0]))
	}
	e := d.ioctl(d.fd, ioctlSGIO, unsafe.Pointer(&c.hdr))
	c.pin.Unpin()
	runtime.KeepAlive(data)
	if e != 0 {
		res.Host = hostForErrno(e)
		return
	}
	d.translate(c, cmd, len(data), res)
}

// translate turns the completed header into a Result. Errors go only into the
// host byte and the status (P20); the driver byte has no place in vscsiif.
func (d *Device) translate(c *call, cmd *scsi.Command, moved int, res *scsi.Result) {
	h := &c.hdr
	res.Status = h.Status
	switch {
	case h.HostStatus > vscsiif.HostTransportMarginal:
		res.Host = vscsiif.HostError // unknown DID_* code
	default:
		res.Host = uint8(h.HostStatus)
	}
	if res.Host == vscsiif.HostOK {
		switch drv := h.DriverStatus & 0x0F; {
		case drv == driverTimeout:
			res.Host = vscsiif.HostTimeOut
		case drv != 0 && drv != driverSense && h.Status == scsi.StatusGood:
			res.Host = vscsiif.HostError // the driver failed the command without a status
		}
	}
	if w := int(min(h.SbLenWr, h.MxSbLen)); w > 0 {
		res.Sense = append([]byte(nil), c.sense[:w]...)
	}
	if cmd.Dir == scsi.DirFromDevice {
		resid := max(0, min(int(h.Resid), moved))
		res.DataLen = moved - resid
	}
}

// hostForErrno maps an SG_IO failure (the command never completed) to a host
// byte: a vanished device is NO_CONNECT (not retried), a busy or short on
// memory kernel BUS_BUSY (retried), anything else ERROR.
func hostForErrno(e syscall.Errno) uint8 {
	switch e {
	case unix.ENODEV, unix.ENXIO, unix.ENOENT:
		return vscsiif.HostNoConnect
	case unix.EBUSY, unix.EAGAIN, unix.ENOMEM, unix.EINTR:
		return vscsiif.HostBusBusy
	case unix.ETIMEDOUT:
		return vscsiif.HostTimeOut
	}
	return vscsiif.HostError
}

// Abort implements scsi.TaskManagement: an SG_IO in flight cannot be
// cancelled from user space; its own timeout bounds it.
func (d *Device) Abort(tag uint64) bool { return false }

// Reset implements scsi.TaskManagement with SG_SCSI_RESET (device reset).
func (d *Device) Reset() error {
	arg := int32(resetDevice)
	if e := d.ioctl(d.fd, ioctlSCSIReset, unsafe.Pointer(&arg)); e != 0 {
		return fmt.Errorf("sgio: SG_SCSI_RESET %s: %w", d.path, e)
	}
	return nil
}

// Close closes the device node.
func (d *Device) Close() error {
	if d.f == nil {
		return nil
	}
	err := d.f.Close()
	if err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("sgio: close %s: %w", d.path, err)
	}
	return nil
}
