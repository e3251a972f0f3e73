// Package scsi is govscsi's SCSI target emulation: LUNs that execute CDBs
// from the guest (the LUN interface in iface.go, shared with the datapath).
//
// NewDisk is an SBC direct-access disk over a backend/store.Store; NewNull a
// no-op LUN for benchmarks. Dispatch is a per-disk 256-entry opcode table
// whose empty entries answer ILLEGAL REQUEST / INVALID COMMAND OPERATION CODE
// (05/20/00), so no CDB, CDB length or data length can make Execute panic.
//
// Choices where the standards leave room (mirroring Linux LIO where it has
// a view):
//
//   - Data length vs. CDB: a read into a buffer larger than the transfer
//     fills the transfer and reports the rest as residual (DataLen); a
//     buffer smaller than the transfer is refused with 05/24/00 INVALID
//     FIELD IN CDB pointing at the length field, before any I/O (vscsiif
//     cannot express an overflow residual); a data-out buffer shorter than
//     a WRITE, WRITE AND VERIFY or COMPARE AND WRITE needs is 05/0E/03
//     INVALID FIELD IN COMMAND INFORMATION UNIT, as LIO answers it (a
//     partial write is worse than none), other short parameter lists
//     05/24/00. Extra data-out bytes are ignored. Transfers above the
//     advertised maximum (128 segments * 4 KiB) are 05/24/00 too.
//   - Sense is always fixed format (0x70, additional length 10); INVALID
//     FIELD errors carry a sense-key-specific field pointer.
//   - Store errors: ENOSPC/EDQUOT and the RAM store's limit -> DATA PROTECT
//     07/27/07 SPACE ALLOCATION FAILED WRITE PROTECT (Linux maps it to
//     -ENOSPC instead of retrying); EROFS -> 07/27/00 WRITE PROTECTED; any
//     other error -> MEDIUM ERROR 03/11/00 on reads, 03/0C/00 on writes and
//     cache flushes, with the command's first LBA in INFORMATION.
//   - WCE off (write-through) makes every write FUA; turning it off by
//     MODE SELECT flushes first. FUA uses the store's O_DSYNC path.
//   - REPORT LUNS uses Linux's int_to_scsilun encoding so the guest sees the
//     configured LUN numbers; allocation lengths below 16 are refused.
//   - Unit attentions: LUN reset (29/03) and capacity change (2A/09), not at
//     power-on; INQUIRY, REPORT LUNS and REQUEST SENSE are exempt.
//   - WRITE BUFFER, FORMAT UNIT, EXTENDED COPY and all vendor-specific
//     opcodes are unsupported (05/20/00). docs/backend.md §9 has the
//     command set and every difference from LIO kept on purpose.
//   - Persistent reservations (pr.go, SPC-4 5.13) and SPC-2 RESERVE/
//     RELEASE live in the LogicalUnit that every Disk over one backing
//     shares; each Disk is an I_T nexus named by DiskOptions.Initiator.
//     PERSISTENT RESERVE OUT and RESERVE/RELEASE hold the unit
//     exclusively, so a PREEMPT AND ABORT completes only after every
//     write past its reservation check has finished. The state goes to
//     a PRStore (backend/prstore) before it takes effect.
//   - COMPARE AND WRITE holds the LogicalUnit's lock exclusively, medium
//     writes hold it shared: the compare and the write are atomic against
//     every writer of the logical unit, whichever nexus (guest) it is.
//
// For the datapath: DataLen is only meaningful for FromDevice commands.
// LUNs that take part in ABORT/RESET implement TaskManagement (Disk and
// sgio.Device do): Abort returns false at once (store I/O and SG_IO cannot
// be cancelled from user space; the command completes and must still be
// answered), Reset returns nil or the reason the reset failed. Buffers from
// store.AlignedBuffer spare O_DIRECT block stores a bounce copy.
package scsi
