//go:build cgo

package layout

import (
	"testing"

	"github.com/govscsi/govscsi/backend/ring"
	v "github.com/govscsi/govscsi/backend/vscsiif"
)

// TestLayoutMatchesHeader compares every offset, size and constant the Go
// code hard-codes with what the C compiler computes from the installed
// <xen/io/vscsiif.h> and <xen/io/ring.h>.
func TestLayoutMatchesHeader(t *testing.T) {
	c := Fields()
	check := func(group, name string, wantOff, wantSize int) {
		t.Helper()
		got, ok := c[group][name]
		if !ok {
			t.Errorf("%s.%s missing from the C table", group, name)
			return
		}
		if got.Off != wantOff || (wantSize >= 0 && got.Size != wantSize) {
			t.Errorf("%s.%s: C has off %d size %d, Go has off %d size %d", group, name, got.Off, got.Size, wantOff, wantSize)
		}
	}
	req := [][3]any{
		{"rqid", v.ReqOffRqid, 2}, {"act", v.ReqOffAct, 1}, {"cmd_len", v.ReqOffCmdLen, 1},
		{"cmnd", v.ReqOffCmnd, v.MaxCommandSize}, {"timeout_per_command", v.ReqOffTimeout, 2},
		{"channel", v.ReqOffChannel, 2}, {"id", v.ReqOffID, 2}, {"lun", v.ReqOffLUN, 2},
		{"ref_rqid", v.ReqOffRefRqid, 2}, {"sc_data_direction", v.ReqOffDirection, 1},
		{"nr_segments", v.ReqOffNrSegs, 1}, {"seg", v.ReqOffSeg, v.SGTableSize * v.SegmentSize},
		{"reserved", v.ReqOffReserved, v.RequestSize - v.ReqOffReserved}, {"sizeof", 0, v.RequestSize},
	}
	for _, r := range req {
		check("request", r[0].(string), r[1].(int), r[2].(int))
	}
	rsp := [][3]any{
		{"rqid", v.RspOffRqid, 2}, {"act", v.RspOffAct, 1}, {"sense_len", v.RspOffSenseLen, 1},
		{"sense_buffer", v.RspOffSense, v.SenseBufferSize}, {"rslt", v.RspOffRslt, 4},
		{"residual_len", v.RspOffResidual, 4}, {"reserved", v.RspOffReserved, v.ResponseSize - v.RspOffReserved},
		{"sizeof", 0, v.ResponseSize},
	}
	for _, r := range rsp {
		check("response", r[0].(string), r[1].(int), r[2].(int))
	}
	check("segment", "gref", v.SegOffGref, 4)
	check("segment", "offset", v.SegOffOffset, 2)
	check("segment", "length", v.SegOffLength, 2)
	check("segment", "sizeof", 0, v.SegmentSize)

	check("sring", "req_prod", ring.OffReqProd, 4)
	check("sring", "req_event", ring.OffReqEvent, 4)
	check("sring", "rsp_prod", ring.OffRspProd, 4)
	check("sring", "rsp_event", ring.OffRspEvent, 4)
	check("sring", "ring", ring.OffRing, -1)
	slotSize := max(v.RequestSize, v.ResponseSize)
	check("sring", "slot", 0, slotSize)
	check("sring", "slots", 0, ring.Slots(v.PageSize, slotSize))

	consts := map[string]int{
		"VSCSIIF_ACT_SCSI_CDB": v.ActSCSICDB, "VSCSIIF_ACT_SCSI_ABORT": v.ActSCSIAbort,
		"VSCSIIF_ACT_SCSI_RESET": v.ActSCSIReset, "VSCSIIF_ACT_SCSI_SG_PRESET": v.ActSCSISGPreset,
		"VSCSIIF_SG_TABLESIZE": v.SGTableSize, "VSCSIIF_MAX_COMMAND_SIZE": v.MaxCommandSize,
		"VSCSIIF_SENSE_BUFFERSIZE": v.SenseBufferSize, "VSCSIIF_PAGE_SIZE": v.PageSize,
		"VSCSIIF_SG_PER_PAGE": v.SGPerPage, "VSCSIIF_SG_GRANT": v.SGGrant,
		"VSCSIIF_SG_LIST_SIZE":           v.SGListSize,
		"XEN_VSCSIIF_RSLT_RESET_SUCCESS": v.RsltResetSuccess, "XEN_VSCSIIF_RSLT_RESET_FAILED": v.RsltResetFailed,
		"XEN_VSCSIIF_RSLT_HOST_OK": v.HostOK, "XEN_VSCSIIF_RSLT_HOST_NO_CONNECT": v.HostNoConnect,
		"XEN_VSCSIIF_RSLT_HOST_BUS_BUSY": v.HostBusBusy, "XEN_VSCSIIF_RSLT_HOST_TIME_OUT": v.HostTimeOut,
		"XEN_VSCSIIF_RSLT_HOST_BAD_TARGET": v.HostBadTarget, "XEN_VSCSIIF_RSLT_HOST_ABORT": v.HostAbort,
		"XEN_VSCSIIF_RSLT_HOST_PARITY": v.HostParity, "XEN_VSCSIIF_RSLT_HOST_ERROR": v.HostError,
		"XEN_VSCSIIF_RSLT_HOST_RESET": v.HostReset, "XEN_VSCSIIF_RSLT_HOST_BAD_INTR": v.HostBadIntr,
		"XEN_VSCSIIF_RSLT_HOST_PASSTHROUGH": v.HostPassthrough, "XEN_VSCSIIF_RSLT_HOST_SOFT_ERROR": v.HostSoftError,
		"XEN_VSCSIIF_RSLT_HOST_IMM_RETRY": v.HostImmRetry, "XEN_VSCSIIF_RSLT_HOST_REQUEUE": v.HostRequeue,
		"XEN_VSCSIIF_RSLT_HOST_TRANSPORT_DISRUPTED": v.HostTransportDisrupted,
		"XEN_VSCSIIF_RSLT_HOST_TRANSPORT_FAILFAST":  v.HostTransportFailfast,
		"XEN_VSCSIIF_RSLT_HOST_TARGET_FAILURE":      v.HostTargetFailure,
		"XEN_VSCSIIF_RSLT_HOST_NEXUS_FAILURE":       v.HostNexusFailure,
		"XEN_VSCSIIF_RSLT_HOST_ALLOC_FAILURE":       v.HostAllocFailure,
		"XEN_VSCSIIF_RSLT_HOST_MEDIUM_ERROR":        v.HostMediumError,
		"XEN_VSCSIIF_RSLT_HOST_TRANSPORT_MARGINAL":  v.HostTransportMarginal,
	}
	for name, want := range consts {
		check("const", name, 0, want)
	}
	if len(c["const"]) != len(consts) {
		t.Errorf("C table has %d constants, Go checks %d", len(c["const"]), len(consts))
	}
}
