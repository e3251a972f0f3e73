//go:build cgo

package layout

/*
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
// ring.h leaves the barriers to the includer (as Linux and QEMU do); with
// the default interface version it maps xen_mb() to mb() and so on.
#define mb()  __sync_synchronize()
#define rmb() __sync_synchronize()
#define wmb() __sync_synchronize()
#include <xen/xen.h>
#include <xen/grant_table.h>
#include <xen/io/vscsiif.h>

// One C frontend per process is enough for the tests.
static struct vscsiif_front_ring fr;

static void *cring_page(void) {
	void *p = aligned_alloc(4096, 4096);
	if (p) memset(p, 0xa5, 4096); // garbage: SHARED_RING_INIT must fix the header
	return p;
}

static void cring_init(void *p) {
	struct vscsiif_sring *s = p;
	SHARED_RING_INIT(s);
	FRONT_RING_INIT(&fr, s, 4096);
}

static int cring_free(void) { return RING_FREE_REQUESTS(&fr); }
static int cring_size(void) { return RING_SIZE(&fr); }

static void cring_put(uint16_t rqid, uint8_t act, uint16_t lun) {
	vscsiif_request_t *r = RING_GET_REQUEST(&fr, fr.req_prod_pvt);
	memset(r, 0, sizeof(*r));
	r->rqid = rqid;
	r->act = act;
	r->cmd_len = 6; // TEST UNIT READY
	r->lun = lun;
	r->sc_data_direction = 3; // DMA_NONE
	fr.req_prod_pvt++;
}

static int cring_push(void) {
	int notify;
	RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&fr, notify);
	return notify;
}

// cring_take consumes one response; with final set it does the
// RING_FINAL_CHECK_FOR_RESPONSES dance when none is pending (a frontend
// about to sleep). Returns 1 and the fields, or 0.
static int cring_take(int final, uint16_t *rqid, int32_t *rslt) {
	if (!RING_HAS_UNCONSUMED_RESPONSES(&fr)) {
		int more = 0;
		if (!final)
			return 0;
		RING_FINAL_CHECK_FOR_RESPONSES(&fr, more);
		if (!more)
			return 0;
	}
	xen_rmb();
	vscsiif_response_t *r = RING_GET_RESPONSE(&fr, fr.rsp_cons);
	*rqid = r->rqid;
	*rslt = r->rslt;
	fr.rsp_cons++;
	return 1;
}
*/
import "C"

import "unsafe"

// CFront is a vscsiif frontend written with Xen's own ring.h macros, over a
// page allocated in C memory (C keeps a pointer to it, so it cannot be Go
// memory). Only one may exist per process.
type CFront struct{ page unsafe.Pointer }

// NewCFront allocates a page and initialises it as a shared ring.
func NewCFront() *CFront {
	p := C.cring_page()
	if p == nil {
		panic("aligned_alloc failed")
	}
	C.cring_init(p)
	return &CFront{page: p}
}

// Page is the ring page as a Go slice aliasing the C memory.
func (f *CFront) Page() []byte { return unsafe.Slice((*byte)(f.page), 4096) }

// Size is RING_SIZE.
func (f *CFront) Size() int { return int(C.cring_size()) }

// Free is RING_FREE_REQUESTS.
func (f *CFront) Free() int { return int(C.cring_free()) }

// Put queues a TEST UNIT READY (or another act) without publishing it.
func (f *CFront) Put(rqid uint16, act uint8, lun uint16) {
	C.cring_put(C.uint16_t(rqid), C.uint8_t(act), C.uint16_t(lun))
}

// Push is RING_PUSH_REQUESTS_AND_CHECK_NOTIFY.
func (f *CFront) Push() bool { return C.cring_push() != 0 }

// Take consumes one response; final makes it re-arm rsp_event first when
// nothing is pending (RING_FINAL_CHECK_FOR_RESPONSES).
func (f *CFront) Take(final bool) (rqid uint16, rslt int32, ok bool) {
	var r C.uint16_t
	var s C.int32_t
	fin := C.int(0)
	if final {
		fin = 1
	}
	if C.cring_take(fin, &r, &s) == 0 {
		return 0, 0, false
	}
	return uint16(r), int32(s), true
}

// Free releases the page.
func (f *CFront) Close() { C.free(f.page) }
