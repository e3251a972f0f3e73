//go:build linux && cgo

package main

/*
#cgo pkg-config: xengnttab
#include <stddef.h>
#include <xengnttab.h>
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// sharer is the granting side of the test, standing in for a frontend: it
// allocates pages of its own and grants them (libxengntshr, /dev/xen/gntalloc).
type sharer struct{ h *C.xengntshr_handle }

func openSharer() (*sharer, error) {
	h, err := C.xengntshr_open(nil, 0)
	if h == nil {
		return nil, fmt.Errorf("gntshr open /dev/xen/gntalloc: %w", err)
	}
	return &sharer{h: h}, nil
}

// share grants count fresh pages to domid and returns them (mapped here) with
// their refs.
func (s *sharer) share(domid uint32, count int, writable bool) ([]byte, []uint32, error) {
	refs := make([]uint32, count)
	w := C.int(0)
	if writable {
		w = 1
	}
	p, err := C.xengntshr_share_pages(s.h, C.uint32_t(domid), C.int(count),
		(*C.uint32_t)(unsafe.Pointer(unsafe.SliceData(refs))), w)
	if p == nil {
		return nil, nil, fmt.Errorf("gntshr share %d pages with dom %d: %w", count, domid, err)
	}
	return unsafe.Slice((*byte)(p), count*4096), refs, nil
}

func (s *sharer) unshare(mem []byte) error {
	if rc, err := C.xengntshr_unshare(s.h, unsafe.Pointer(unsafe.SliceData(mem)), C.uint32_t(len(mem)/4096)); rc != 0 {
		return fmt.Errorf("gntshr unshare: %w", err)
	}
	return nil
}

func (s *sharer) close() { C.xengntshr_close(s.h) }
