//go:build cgo

package layout

/*
#include <stddef.h>
#include <stdint.h>
#include <xen/xen.h>
#include <xen/grant_table.h>
#include <xen/io/vscsiif.h>

struct field { const char *group, *name; long off, size; };

#define F(G, T, f) { G, #f, (long)offsetof(T, f), (long)sizeof(((T *)0)->f) }
#define S(G, T) { G, "sizeof", 0, (long)sizeof(T) }
#define K(name) { "const", #name, 0, (long)(name) }

static const struct field fields[] = {
	F("request", struct vscsiif_request, rqid),
	F("request", struct vscsiif_request, act),
	F("request", struct vscsiif_request, cmd_len),
	F("request", struct vscsiif_request, cmnd),
	F("request", struct vscsiif_request, timeout_per_command),
	F("request", struct vscsiif_request, channel),
	F("request", struct vscsiif_request, id),
	F("request", struct vscsiif_request, lun),
	F("request", struct vscsiif_request, ref_rqid),
	F("request", struct vscsiif_request, sc_data_direction),
	F("request", struct vscsiif_request, nr_segments),
	F("request", struct vscsiif_request, seg),
	F("request", struct vscsiif_request, reserved),
	S("request", struct vscsiif_request),
	F("response", struct vscsiif_response, rqid),
	F("response", struct vscsiif_response, act),
	F("response", struct vscsiif_response, sense_len),
	F("response", struct vscsiif_response, sense_buffer),
	F("response", struct vscsiif_response, rslt),
	F("response", struct vscsiif_response, residual_len),
	F("response", struct vscsiif_response, reserved),
	S("response", struct vscsiif_response),
	F("segment", struct scsiif_request_segment, gref),
	F("segment", struct scsiif_request_segment, offset),
	F("segment", struct scsiif_request_segment, length),
	S("segment", struct scsiif_request_segment),
	F("sring", struct vscsiif_sring, req_prod),
	F("sring", struct vscsiif_sring, req_event),
	F("sring", struct vscsiif_sring, rsp_prod),
	F("sring", struct vscsiif_sring, rsp_event),
	{ "sring", "ring", (long)offsetof(struct vscsiif_sring, ring), 0 },
	{ "sring", "slot", 0, (long)sizeof(union vscsiif_sring_entry) },
	{ "sring", "slots", 0, (long)__RING_SIZE((struct vscsiif_sring *)0, 4096) },
	K(VSCSIIF_ACT_SCSI_CDB),
	K(VSCSIIF_ACT_SCSI_ABORT),
	K(VSCSIIF_ACT_SCSI_RESET),
	K(VSCSIIF_ACT_SCSI_SG_PRESET),
	K(VSCSIIF_SG_TABLESIZE),
	K(VSCSIIF_MAX_COMMAND_SIZE),
	K(VSCSIIF_SENSE_BUFFERSIZE),
	K(VSCSIIF_PAGE_SIZE),
	K(VSCSIIF_SG_PER_PAGE),
	K(VSCSIIF_SG_GRANT),
	K(VSCSIIF_SG_LIST_SIZE),
	K(XEN_VSCSIIF_RSLT_RESET_SUCCESS),
	K(XEN_VSCSIIF_RSLT_RESET_FAILED),
	K(XEN_VSCSIIF_RSLT_HOST_OK),
	K(XEN_VSCSIIF_RSLT_HOST_NO_CONNECT),
	K(XEN_VSCSIIF_RSLT_HOST_BUS_BUSY),
	K(XEN_VSCSIIF_RSLT_HOST_TIME_OUT),
	K(XEN_VSCSIIF_RSLT_HOST_BAD_TARGET),
	K(XEN_VSCSIIF_RSLT_HOST_ABORT),
	K(XEN_VSCSIIF_RSLT_HOST_PARITY),
	K(XEN_VSCSIIF_RSLT_HOST_ERROR),
	K(XEN_VSCSIIF_RSLT_HOST_RESET),
	K(XEN_VSCSIIF_RSLT_HOST_BAD_INTR),
	K(XEN_VSCSIIF_RSLT_HOST_PASSTHROUGH),
	K(XEN_VSCSIIF_RSLT_HOST_SOFT_ERROR),
	K(XEN_VSCSIIF_RSLT_HOST_IMM_RETRY),
	K(XEN_VSCSIIF_RSLT_HOST_REQUEUE),
	K(XEN_VSCSIIF_RSLT_HOST_TRANSPORT_DISRUPTED),
	K(XEN_VSCSIIF_RSLT_HOST_TRANSPORT_FAILFAST),
	K(XEN_VSCSIIF_RSLT_HOST_TARGET_FAILURE),
	K(XEN_VSCSIIF_RSLT_HOST_NEXUS_FAILURE),
	K(XEN_VSCSIIF_RSLT_HOST_ALLOC_FAILURE),
	K(XEN_VSCSIIF_RSLT_HOST_MEDIUM_ERROR),
	K(XEN_VSCSIIF_RSLT_HOST_TRANSPORT_MARGINAL),
};

static int nfields(void) { return sizeof(fields) / sizeof(fields[0]); }
static const struct field *field_at(int i) { return &fields[i]; }
*/
import "C"

// Field is one C struct member (or constant): its byte offset and size. For
// a constant, Size holds the value.
type Field struct{ Off, Size int }

// Fields returns group -> name -> Field for every member and constant the
// Go code mirrors. Groups: request, response, segment, sring, const.
func Fields() map[string]map[string]Field {
	out := map[string]map[string]Field{}
	for i := 0; i < int(C.nfields()); i++ {
		f := C.field_at(C.int(i))
		g := C.GoString(f.group)
		if out[g] == nil {
			out[g] = map[string]Field{}
		}
		out[g][C.GoString(f.name)] = Field{Off: int(f.off), Size: int(f.size)}
	}
	return out
}
