// Package sgio passes CDBs through to a real SCSI device with the Linux SG_IO
// ioctl (v3 interface, struct sg_io_hdr), behind a CDB allow-list. It is the
// LUN behind a vscsi device in pass-through ("feature-host") mode.
//
// x/sys/unix has no SG_IO, so the header is defined here; its layout is
// checked against <scsi/sg.h> by the cgo helper in tests/sgio-layout.
package sgio

import "unsafe"

// Hdr mirrors struct sg_io_hdr (<scsi/sg.h>). Pointer fields are uintptr so
// the struct has the C layout on every Linux architecture.
type Hdr struct {
	InterfaceID    int32   // 'S'
	DxferDirection int32   // SG_DXFER_*
	CmdLen         uint8   // CDB length (<= 16)
	MxSbLen        uint8   // sense buffer size
	IovecCount     uint16  // 0: Dxferp is a flat buffer
	DxferLen       uint32  // data length
	Dxferp         uintptr // data buffer
	Cmdp           uintptr // CDB
	Sbp            uintptr // sense buffer
	Timeout        uint32  // milliseconds
	Flags          uint32  // SG_FLAG_*
	PackID         int32
	UsrPtr         uintptr
	Status         uint8 // SCSI status byte
	MaskedStatus   uint8
	MsgStatus      uint8
	SbLenWr        uint8  // sense bytes written
	HostStatus     uint16 // DID_*
	DriverStatus   uint16 // DRIVER_* | SUGGEST_*
	Resid          int32  // DxferLen - bytes actually transferred
	Duration       uint32 // milliseconds
	Info           uint32 // SG_INFO_*
}

// Linux constants from <scsi/sg.h> and <scsi/scsi.h>.
const (
	ioctlSGIO          = 0x2285 // SG_IO
	ioctlGetVersionNum = 0x2282 // SG_GET_VERSION_NUM
	ioctlSCSIReset     = 0x2284 // SG_SCSI_RESET
	resetDevice        = 1      // SG_SCSI_RESET_DEVICE

	interfaceID   = 'S'
	dxferNone     = -1
	dxferToDev    = -2
	dxferFromDev  = -3
	driverTimeout = 0x06
	driverSense   = 0x08
)

// Field describes one member of the header, for the layout check.
type Field struct {
	Name         string
	Offset, Size uintptr
}

// Layout lists Hdr's fields with their offsets and sizes, named as in
// <scsi/sg.h>, followed by the struct size as "sizeof".
func Layout() []Field {
	var h Hdr
	f := func(name string, off, size uintptr) Field { return Field{name, off, size} }
	return []Field{
		f("interface_id", unsafe.Offsetof(h.InterfaceID), unsafe.Sizeof(h.InterfaceID)),
		f("dxfer_direction", unsafe.Offsetof(h.DxferDirection), unsafe.Sizeof(h.DxferDirection)),
		f("cmd_len", unsafe.Offsetof(h.CmdLen), unsafe.Sizeof(h.CmdLen)),
		f("mx_sb_len", unsafe.Offsetof(h.MxSbLen), unsafe.Sizeof(h.MxSbLen)),
		f("iovec_count", unsafe.Offsetof(h.IovecCount), unsafe.Sizeof(h.IovecCount)),
		f("dxfer_len", unsafe.Offsetof(h.DxferLen), unsafe.Sizeof(h.DxferLen)),
		f("dxferp", unsafe.Offsetof(h.Dxferp), unsafe.Sizeof(h.Dxferp)),
		f("cmdp", unsafe.Offsetof(h.Cmdp), unsafe.Sizeof(h.Cmdp)),
		f("sbp", unsafe.Offsetof(h.Sbp), unsafe.Sizeof(h.Sbp)),
		f("timeout", unsafe.Offsetof(h.Timeout), unsafe.Sizeof(h.Timeout)),
		f("flags", unsafe.Offsetof(h.Flags), unsafe.Sizeof(h.Flags)),
		f("pack_id", unsafe.Offsetof(h.PackID), unsafe.Sizeof(h.PackID)),
		f("usr_ptr", unsafe.Offsetof(h.UsrPtr), unsafe.Sizeof(h.UsrPtr)),
		f("status", unsafe.Offsetof(h.Status), unsafe.Sizeof(h.Status)),
		f("masked_status", unsafe.Offsetof(h.MaskedStatus), unsafe.Sizeof(h.MaskedStatus)),
		f("msg_status", unsafe.Offsetof(h.MsgStatus), unsafe.Sizeof(h.MsgStatus)),
		f("sb_len_wr", unsafe.Offsetof(h.SbLenWr), unsafe.Sizeof(h.SbLenWr)),
		f("host_status", unsafe.Offsetof(h.HostStatus), unsafe.Sizeof(h.HostStatus)),
		f("driver_status", unsafe.Offsetof(h.DriverStatus), unsafe.Sizeof(h.DriverStatus)),
		f("resid", unsafe.Offsetof(h.Resid), unsafe.Sizeof(h.Resid)),
		f("duration", unsafe.Offsetof(h.Duration), unsafe.Sizeof(h.Duration)),
		f("info", unsafe.Offsetof(h.Info), unsafe.Sizeof(h.Info)),
		f("sizeof", 0, unsafe.Sizeof(h)),
	}
}

// Constants returns the <scsi/sg.h> values this package hard-codes, by their
// C names, for the layout check.
func Constants() map[string]int64 {
	return map[string]int64{
		"SG_IO": ioctlSGIO, "SG_GET_VERSION_NUM": ioctlGetVersionNum, "SG_SCSI_RESET": ioctlSCSIReset,
		"SG_SCSI_RESET_DEVICE": resetDevice, "SG_DXFER_NONE": dxferNone, "SG_DXFER_TO_DEV": dxferToDev,
		"SG_DXFER_FROM_DEV": dxferFromDev,
	}
}
