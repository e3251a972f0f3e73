// Package vscsiif is the wire format of Xen's PV SCSI ring protocol
// (xen/include/public/io/vscsiif.h): constants, the 252-byte request and
// response slots and the 8-byte scatter-gather segment.
//
// Everything is encoded and decoded over []byte with explicit little-endian
// offsets (Xen's PV protocols are little-endian on every architecture that
// runs them, and vscsiif's layout is identical on x86_32, x86_64 and Arm), so
// the package needs neither cgo nor unsafe. tests/vscsiif-layout checks every
// offset and size here against the real C header.
//
// Decoding never validates: callers copy a request out of shared memory once
// (DecodeRequest reads each byte exactly once), then validate the private copy
// (XSA-155).
package vscsiif
