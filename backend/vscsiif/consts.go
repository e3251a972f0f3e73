package vscsiif

// Request actions (vscsiif_request.act).
const (
	ActSCSICDB   = 1 // VSCSIIF_ACT_SCSI_CDB: execute cmnd[] on (channel, id, lun)
	ActSCSIAbort = 2 // VSCSIIF_ACT_SCSI_ABORT: abort the request whose rqid is ref_rqid
	ActSCSIReset = 3 // VSCSIIF_ACT_SCSI_RESET: reset the addressed LUN
	// ActSCSISGPreset is the deprecated SG_PRESET extension (2012). The number
	// stays reserved; a backend answers it with DID_ERROR like any unknown act.
	ActSCSISGPreset = 4
)

// Data directions (sc_data_direction): Linux's enum dma_data_direction.
// These are NOT in the order of scsi.Direction; map them explicitly.
const (
	DMABidirectional = 0 // DMA_BIDIRECTIONAL
	DMAToDevice      = 1 // DMA_TO_DEVICE: the guest writes, the backend reads the guest's pages
	DMAFromDevice    = 2 // DMA_FROM_DEVICE: the guest reads, the backend writes the guest's pages
	DMANone          = 3 // DMA_NONE
)

// Sizes and limits.
const (
	PageSize          = 4096 // VSCSIIF_PAGE_SIZE
	SGTableSize       = 26   // VSCSIIF_SG_TABLESIZE: seg[] entries in a request
	MaxCommandSize    = 16   // VSCSIIF_MAX_COMMAND_SIZE: CDB bytes
	SenseBufferSize   = 96   // VSCSIIF_SENSE_BUFFERSIZE
	SegmentSize       = 8    // sizeof(struct scsiif_request_segment)
	SGPerPage         = PageSize / SegmentSize
	SGGrant           = 0x80                            // VSCSIIF_SG_GRANT: flag in nr_segments, seg[] are indirect pages
	SGCountMask       = 0x7f                            // low bits of nr_segments: the entry count
	RequestSize       = 252                             // sizeof(struct vscsiif_request)
	ResponseSize      = 252                             // sizeof(struct vscsiif_response)
	SGListSize        = (RequestSize - 4) / SegmentSize // deprecated VSCSIIF_SG_LIST_SIZE
	MaxSegmentsLinux  = 128                             // SG_ALL: what Linux xen-scsiback advertises as feature-sg-grant
	MinFeatureSGGrant = SGTableSize
	MaxFeatureSGGrant = 65535
)

// Host bytes of rslt (XEN_VSCSIIF_RSLT_HOST_*); the values equal Linux DID_*.
const (
	HostOK                 = 0
	HostNoConnect          = 1
	HostBusBusy            = 2
	HostTimeOut            = 3
	HostBadTarget          = 4
	HostAbort              = 5
	HostParity             = 6
	HostError              = 7
	HostReset              = 8
	HostBadIntr            = 9
	HostPassthrough        = 10
	HostSoftError          = 11
	HostImmRetry           = 12
	HostRequeue            = 13
	HostTransportDisrupted = 14
	HostTransportFailfast  = 15
	HostTargetFailure      = 16
	HostNexusFailure       = 17
	HostAllocFailure       = 18
	HostMediumError        = 19
	HostTransportMarginal  = 20
)

// Results of ABORT and RESET requests (exact rslt values).
const (
	RsltResetSuccess = 0x2002 // XEN_VSCSIIF_RSLT_RESET_SUCCESS
	RsltResetFailed  = 0x2003 // XEN_VSCSIIF_RSLT_RESET_FAILED
)

// Rslt builds a command result: the host byte in bits 16..23 and the SAM
// status in bits 0..7. Errors always go in the host byte: the legacy
// driver-byte encoding reads as success to current frontends (P20).
func Rslt(host, status uint8) int32 { return int32(host)<<16 | int32(status) }

// RsltStatus and RsltHost take a result apart (XEN_VSCSIIF_RSLT_STATUS/HOST).
func RsltStatus(rslt int32) uint8 { return uint8(rslt & 0xff) }

// RsltHost returns the host byte of rslt.
func RsltHost(rslt int32) uint8 { return uint8((rslt & 0x00ff0000) >> 16) }
