package main

// The calls from Go into the C toolstack's functions (completion, event
// and log callbacks) and the reading of the structures it hands in. This
// file includes the public header c/include/govscsi.h, so the layouts used
// here are the contract's own; it has no //export (cgo allows definitions
// in the preamble only then), and the exports elsewhere take those
// pointers as unsafe.Pointer.

/*
#cgo CFLAGS: -I${SRCDIR}/../../c/include
#include <stdlib.h>
#include "govscsi.h"

static void govscsi_call_done(void *fn, int h, int rc, const char *msg, void *user)
{
	((vscsi_done_fn *)fn)(h, rc, msg, user);
}

static void govscsi_call_event(void *fn, int h, int type, unsigned int domid, int vhost, int dev, int side,
			       int state, int old_state, const char *vdev, const char *backend_type,
			       const char *errmsg, void *user)
{
	vscsi_event ev = {
		.size = sizeof ev, .type = type, .domid = domid, .vhost = vhost, .dev = dev, .side = side,
		.state = state, .old_state = old_state, .vdev = vdev, .backend_type = backend_type,
		.errmsg = errmsg,
	};
	((vscsi_event_fn *)fn)(h, &ev, user);
}

static void govscsi_call_log(void *fn, int level, const char *msg, void *user)
{
	((vscsi_log_fn *)fn)(level, msg, user);
}

static void *govscsi_how_callback(const vscsi_async_how *how) { return (void *)how->callback; }
static void *govscsi_how_user(const vscsi_async_how *how) { return how->user; }
*/
import "C"

import (
	"unsafe"

	"github.com/govscsi/govscsi/plugin"
)

// eventError is VSCSI_EVENT_ERROR (a subscription that stopped).
const eventError = C.VSCSI_EVENT_ERROR

// eventType is the header's enum vscsi_event_type value of a kind.
func eventType(k plugin.EventKind) int {
	switch k {
	case plugin.EventVHostState:
		return C.VSCSI_EVENT_VHOST_STATE
	case plugin.EventDeviceState:
		return C.VSCSI_EVENT_DEVICE_STATE
	case plugin.EventDomainGone:
		return C.VSCSI_EVENT_DOMAIN_GONE
	}
	return 0
}

// readHow reads a vscsi_async_how (nil: synchronous; callback nil too).
func readHow(p unsafe.Pointer) (callback, user unsafe.Pointer) {
	if p == nil {
		return nil, nil
	}
	how := (*C.vscsi_async_how)(p)
	return C.govscsi_how_callback(how), C.govscsi_how_user(how)
}

// cstr is a C copy of s, or NULL for "" when nullEmpty is set; free with
// freeStr.
func cstr(s string, nullEmpty bool) *C.char {
	if s == "" && nullEmpty {
		return nil
	}
	return C.CString(s)
}

func freeStr(p *C.char) {
	if p != nil {
		C.free(unsafe.Pointer(p))
	}
}

// callDone calls a vscsi_done_fn.
func callDone(fn unsafe.Pointer, h, rc int, msg string, user unsafe.Pointer) {
	m := cstr(msg, false)
	defer freeStr(m)
	C.govscsi_call_done(fn, C.int(h), C.int(rc), m, user)
}

// cEvent is a vscsi_event's content on the Go side.
type cEvent struct {
	typ, vhost, dev, side, state, oldState int
	domid                                  uint32
	vdev, backendType, errmsg              string
}

// callEvent calls a vscsi_event_fn with ev (its strings in C memory for
// the duration of the call).
func callEvent(fn unsafe.Pointer, h int, ev cEvent, user unsafe.Pointer) {
	vdev, bt, em := cstr(ev.vdev, true), cstr(ev.backendType, true), cstr(ev.errmsg, true)
	defer func() { freeStr(vdev); freeStr(bt); freeStr(em) }()
	C.govscsi_call_event(fn, C.int(h), C.int(ev.typ), C.uint(ev.domid), C.int(ev.vhost), C.int(ev.dev),
		C.int(ev.side), C.int(ev.state), C.int(ev.oldState), vdev, bt, em, user)
}

// callLog calls a vscsi_log_fn.
func callLog(fn unsafe.Pointer, level int, msg string, user unsafe.Pointer) {
	m := cstr(msg, false)
	defer freeStr(m)
	C.govscsi_call_log(fn, C.int(level), m, user)
}
