// Package gnttab wraps libxengnttab (Debian's libxen-dev, <xengnttab.h>): the
// /dev/xen/gntdev device through which dom0 maps and copies guest grants.
//
// Handle implements xenif.Grants. Grant copy is the data path (one ioctl per
// batch, no mmap/munmap and no TLB shootdown per request; see protocol.md
// §6); mapping is for the long-lived ring page.
//
// Each wrapper names the C function it calls in an "Implements:" line.
// Errors are *cerr.Error values: "gnttab map ref 8 of dom 1: invalid
// argument", and errors.Is(err, syscall.EINVAL) holds.
//
// Without cgo (or off Linux) Open returns errors.ErrUnsupported.
package gnttab
