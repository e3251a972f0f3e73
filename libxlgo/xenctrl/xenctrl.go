//go:build linux && cgo

package xenctrl

/*
#cgo pkg-config: xencontrol
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <xentoollog.h>
#include <xenctrl.h>

// A logger that drops everything (as in libxlgo/gnttab): failures reach
// Go as errno, and a NULL logger would make the library print to stderr.
static void xc_quiet_vmessage(struct xentoollog_logger *l, xentoollog_level lv,
	int errnoval, const char *ctx, const char *fmt, va_list al) {}
static void xc_quiet_progress(struct xentoollog_logger *l, const char *ctx,
	const char *what, int pct, unsigned long done, unsigned long total) {}
static void xc_quiet_destroy(struct xentoollog_logger *l) {}
static struct xentoollog_logger xc_quiet_logger = {
	xc_quiet_vmessage, xc_quiet_progress, xc_quiet_destroy,
};

static xc_interface *xc_open_quiet(void) {
	return xc_interface_open(&xc_quiet_logger, &xc_quiet_logger, 0);
}

// The fields of xc_dominfo_t Go needs; bitfields cannot be read from Go.
struct govscsi_dominfo {
	uint32_t domid;
	int dying, crashed, shutdown, paused, blocked, running;
	unsigned int shutdown_reason;
	unsigned long long cpu_time;
};

// Returns 1 and fills out when domid exists, 0 when it does not, -1 on
// error (errno set). xc_domain_getinfo returns the first domain at or
// after domid, so the domid is checked.
static int govscsi_getinfo(xc_interface *xch, uint32_t domid, struct govscsi_dominfo *out) {
	xc_dominfo_t info;
	int n;
	memset(&info, 0, sizeof(info));
	n = xc_domain_getinfo(xch, domid, 1, &info);
	if (n < 0)
		return -1;
	if (n == 0 || info.domid != domid)
		return 0;
	out->domid = info.domid;
	out->dying = info.dying;
	out->crashed = info.crashed;
	out->shutdown = info.shutdown;
	out->paused = info.paused;
	out->blocked = info.blocked;
	out->running = info.running;
	out->shutdown_reason = info.shutdown_reason;
	out->cpu_time = info.cpu_time;
	return 1;
}
*/
import "C"

import (
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/govscsi/govscsi/libxlgo/internal/cerr"
	"github.com/govscsi/govscsi/libxlgo/xenif"
)

const source = "xenctrl"

// Handle is an open libxenctrl interface. It is safe for concurrent use.
type Handle struct {
	mu sync.RWMutex
	h  *C.xc_interface
}

var _ xenif.DomainControl = (*Handle)(nil)

// Open opens libxenctrl (/dev/xen/privcmd). Off Xen, or without
// privilege, it fails with an error wrapping the library's errno.
//
// Implements: xc_interface *xc_interface_open(xentoollog_logger *logger, xentoollog_logger *dombuild_logger, unsigned open_flags);
func Open() (*Handle, error) {
	h, err := C.xc_open_quiet()
	if h == nil {
		return nil, cerr.FromErr(source, "open", "/dev/xen/privcmd", err)
	}
	return &Handle{h: h}, nil
}

// Close releases the interface; further calls fail with EBADF.
func (x *Handle) Close() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.h == nil {
		return nil
	}
	C.xc_interface_close(x.h)
	x.h = nil
	return nil
}

func dom(domid uint32) string { return "domain " + strconv.FormatUint(uint64(domid), 10) }

// Pause takes a controller pause reference on domid.
//
// Implements: int xc_domain_pause(xc_interface *xch, uint32_t domid);
func (x *Handle) Pause(domid uint32) error {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.h == nil {
		return cerr.New(source, "pause", dom(domid), syscall.EBADF)
	}
	if r, err := C.xc_domain_pause(x.h, C.uint32_t(domid)); r != 0 {
		return cerr.FromErr(source, "pause", dom(domid), err)
	}
	return nil
}

// Unpause drops a controller pause reference on domid.
//
// Implements: int xc_domain_unpause(xc_interface *xch, uint32_t domid);
func (x *Handle) Unpause(domid uint32) error {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.h == nil {
		return cerr.New(source, "unpause", dom(domid), syscall.EBADF)
	}
	if r, err := C.xc_domain_unpause(x.h, C.uint32_t(domid)); r != 0 {
		return cerr.FromErr(source, "unpause", dom(domid), err)
	}
	return nil
}

// DomainInfo reads domid's info; a missing domain is an error wrapping
// ESRCH.
//
// Implements: int xc_domain_getinfo(xc_interface *xch, uint32_t first_domid, unsigned int max_doms, xc_dominfo_t *info);
func (x *Handle) DomainInfo(domid uint32) (xenif.DomainInfo, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.h == nil {
		return xenif.DomainInfo{}, cerr.New(source, "getinfo", dom(domid), syscall.EBADF)
	}
	var out C.struct_govscsi_dominfo
	r, err := C.govscsi_getinfo(x.h, C.uint32_t(domid), &out)
	switch r {
	case 1:
	case 0:
		return xenif.DomainInfo{}, cerr.New(source, "getinfo", dom(domid), syscall.ESRCH)
	default:
		return xenif.DomainInfo{}, cerr.FromErr(source, "getinfo", dom(domid), err)
	}
	return xenif.DomainInfo{
		Domid: uint32(out.domid), Paused: out.paused != 0, Running: out.running != 0, Blocked: out.blocked != 0,
		Dying: out.dying != 0, Shutdown: out.shutdown != 0, Crashed: out.crashed != 0,
		ShutdownReason: int(out.shutdown_reason), CPUTime: time.Duration(out.cpu_time),
	}, nil
}
