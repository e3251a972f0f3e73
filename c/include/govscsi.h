/*
 * govscsi.h - C API of govscsi's Xen PV SCSI (vscsi) toolstack,
 * libgovscsi.so (pkg-config govscsi).
 *
 * Hand-written; this file, not the cgo-generated header, is the contract.
 *
 * Conventions
 *   - A handle is a small positive int from vscsi_open; it owns one
 *     xenstore connection (libxenstore: XENSTORED_PATH, else the local
 *     xenstored socket, else /dev/xen/xenbus). Synchronous calls on one
 *     handle are serialised; use several handles, or the asynchronous
 *     calls (below), to work in parallel.
 *   - Every function returning int returns 0 on success or a negative
 *     errno: -EBADF unknown handle, -EINVAL bad argument/spec/options,
 *     -ESRCH no such domain, -ENOENT no such device or vhost, -ENODEV a
 *     peer refused the device (state 6), -ENOTCONN the vhost closed,
 *     -ETIMEDOUT a peer did not answer in time, -EBUSY the vhost stayed in
 *     a reconfiguration, -EIO an internal error (a Go panic caught before
 *     it reached C: a bug, the message says what; the library stays
 *     usable), other values from xenstore (-EACCES ...).
 *     vscsi_errmsg gives the message: every failing call on a valid handle
 *     sets it (a NULL pointer or malformed argument included), a call on
 *     an unknown handle (-EBADF) has no message to set. A config file that
 *     is not a regular file, is larger than 1 MiB or nests lists deeper
 *     than 64 is -EINVAL too (docs/vscsi-syntax.md).
 *   - Writing operations wait for both peers (backend and guest) and undo
 *     their own writes when they fail (see docs/toolstack.md).
 *   - Strings returned by the library are released with vscsi_free.
 *
 * Threads and forking
 *   Loading the library starts the Go runtime (its own threads), but none
 *   of govscsi's code: no goroutine, timer or connection exists before
 *   vscsi_open or vscsi_backend_start. vscsi_open starts one goroutine (the
 *   xenstore watch dispatcher), and libxenstore starts its reader thread
 *   with the first watch; vscsi_close stops both. vscsi_backend_start
 *   starts the embedded backend's goroutines; vscsi_backend_stop ends
 *   them. The first asynchronous operation or event subscription starts
 *   the callback thread (see "Asynchronous operations"); it ends when no
 *   operation or subscription is left. A process that forks should do so
 *   with no handle open, and only exec in the child.
 *   No Go panic crosses into C: an internal error inside the library
 *   is returned as -EIO with its message.
 *   Backend handles share the handle space: vscsi_errmsg and
 *   vscsi_open_handles cover them; vscsi_close refuses them (-EBADF).
 *   Only one Go c-shared library may be loaded into a process (one Go
 *   runtime per process), and this one must never be dlclose'd.
 */
#ifndef GOVSCSI_H
#define GOVSCSI_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on every incompatible change; compare with vscsi_api_version(). */
#define GOVSCSI_API_VERSION 4

/* The API version the loaded library implements (GOVSCSI_API_VERSION). */
int vscsi_api_version(void);

/* A static version string such as "govscsi 0.1.0" (do not free). */
const char *vscsi_version(void);

/*
 * Open a handle. options_yaml may be NULL (backend in dom0, flavour
 * kernel, libxl's 10 s timeouts) or YAML text with any of:
 *   backend_domid: 0
 *   flavour: kernel | hctl | userspace
 *   backend_type: vscsi     (default: vscsi, vscsiu for flavour userspace)
 *   timeout: 10s            (init_timeout and destroy_timeout together)
 *   init_timeout: 10s
 *   destroy_timeout: 10s
 *   hotplug_script: /etc/xen/scripts/vscsi
 *   hotplug_timeout: 40s
 *   hotplug_log: /var/log/xen/vscsi-hotplug.log
 *   sysfs_root: /sys
 *   configfs_root: /sys/kernel/config
 *   log_level: trace | debug | info | warn | error   (to stderr)
 * Unknown keys are errors. On success *handle is set. On failure the
 * message is available through vscsi_errmsg(0, ...).
 */
int vscsi_open(const char *options_yaml, int *handle);

/* Close a handle (stops its goroutine and its xenstore connection). */
int vscsi_close(int handle);

/* How many handles are open (for leak checks). */
int vscsi_open_handles(void);

/*
 * Attach a device, as `xl scsi-attach domain pdev vdev[,feature-host]`:
 * domain is a name or a domid; pdev a /dev path, "h:c:t:l" or
 * "naa.<wwn>:<lun>" (flavour userspace: a /dev path, "block:/dev/X",
 * "sg:/dev/X", "file:/abs/path" or "ram:<size>"); vdev_and_opts "h:c:t:l"
 * optionally followed by ",feature-host" (flavour userspace also ",ro",
 * ",direct", ",raw"). Creates the vhost if needed, waits until backend and
 * guest both report the device connected.
 */
int vscsi_attach(int handle, const char *domain, const char *pdev, const char *vdev_and_opts);

/* Detach the device with virtual address vdev ("h:c:t:l") from domain.
 * The vhost stays even if it has no device left. */
int vscsi_detach(int handle, const char *domain, const char *vdev);

/* Remove vhost number vhost (its devid) and all its devices. */
int vscsi_destroy_vhost(int handle, const char *domain, int vhost);

/* Add every vscsi= entry of an xl config file to a running domain. */
int vscsi_apply(int handle, const char *config_path, const char *domain);

/* Remove the vscsi xenstore nodes of domains that no longer exist. */
int vscsi_cleanup(int handle);

/*
 * List the vhosts and devices of a domain as JSON (an array of vhosts; see
 * docs/toolstack.md for the fields). *json_out is set to a NUL-terminated
 * string the caller releases with vscsi_free (NULL on error).
 */
int vscsi_list(int handle, const char *domain, char **json_out);

/* Release a string returned by the library (NULL is fine). */
void vscsi_free(char *p);

/*
 * Copy the message of the last failed call on handle (0: the last failed
 * vscsi_open) into buf, always NUL-terminated; "" if the last call
 * succeeded. Only strlen(message)+1 bytes of buf are written, at most len.
 * Returns 0, -ERANGE if the message was truncated, -EBADF for an unknown
 * handle, -EINVAL if buf is NULL, len is 0 or len is larger than
 * PTRDIFF_MAX (such as (size_t)-1: no buffer is that large). It never
 * changes the message.
 */
int vscsi_errmsg(int handle, char *buf, size_t len);

/*
 * The userspace vscsi backend, embedded (API version 2; stop_disconnect 4). It serves
 * /local/domain/<me>/backend/<backend_type>/... (default "vscsiu") from the
 * calling process, exactly as the vscsi-backend daemon would
 * (docs/backend.md); a toolstack handle opened with "flavour: userspace"
 * writes vhosts it serves. One backend per backend type and host: two
 * would answer for the same vhosts, so a backend waits (up to 30 s, in the
 * background after start returned) for the lock of its state directory
 * (state_dir, default /run/govscsi/<backend_type>: in-flight journals, RAM
 * disks) while another backend holds it, e.g. one still handing over.
 *
 * vscsi_backend_start: config_yaml is the daemon's configuration
 * (backend/systemd/vscsi-backend.yaml.example; NULL or "" for the
 * defaults: domid from xenstore, allow_paths [/dev/], stats socket
 * /run/govscsi/vscsi-backend.sock, "none" to have none). It opens a
 * xenstore connection, /dev/xen/gntdev and /dev/xen/evtchn, starts serving
 * in background goroutines (nothing runs before this call) and sets
 * *handle. Errors: -EINVAL bad configuration, -ENOENT/-EACCES/... a device
 * or xenstore could not be opened, -EIO the backend stopped at once (the
 * stats socket is in use...); the message is in vscsi_errmsg(0, ...).
 * Log lines go to stderr (log_level, log_json from the configuration).
 */
int vscsi_backend_start(const char *config_yaml, int *handle);

/*
 * Stop a backend. By default (configuration on_stop: handover) its guests
 * stay connected: commands in flight finish and are answered (bounded by
 * timeouts.handover), requests not taken yet stay in the rings, xenstore is
 * left as it is, and the next backend started on this host (in this
 * process or as the vscsi-backend daemon) takes the vhosts over; the
 * guests see a pause. With on_stop: disconnect every vhost is closed as
 * vscsi_backend_stop_disconnect does. Either way the backend's connections
 * and devices in this process are released. Waits at most timeout_ms (<= 0:
 * 30 s). Returns 0 once stopped, and the handle is gone; -ETIMEDOUT if it
 * has not stopped yet (the handle stays: call again); another error if the
 * backend had failed while running (the handle is gone too; message in
 * vscsi_errmsg(0, ...)).
 */
int vscsi_backend_stop(int handle, int timeout_ms);

/*
 * Stop a backend and disconnect every guest it serves (API version 4): each
 * connected vhost goes Closing, the guest gets timeouts.shutdown to close
 * its side, then Closed; the guests lose those disks until their vhosts are
 * set up again. The explicit act; otherwise as vscsi_backend_stop.
 */
int vscsi_backend_stop_disconnect(int handle, int timeout_ms);

/*
 * A backend's statistics as JSON, the stats socket's snapshot
 * ("luns": per-LUN counters, rates and latency percentiles; "vhosts":
 * state and ring counters; see docs/backend.md) plus "running" (false if
 * the backend stopped on its own, "error" then says why). *json_out is
 * released with vscsi_free.
 */
int vscsi_backend_stats(int handle, char **json_out);

/* For tests: goroutines running (Go's own system goroutines not counted).
 * Before the first vscsi_open and after the last vscsi_close it is the
 * same small baseline. */
int vscsi_debug_goroutines(void);

/*
 * Asynchronous operations (API version 3), in the shape of libxl's
 * libxl_asyncop_how: each operation that waits for peers has a variant
 * taking a vscsi_async_how. With how == NULL, or how->callback == NULL,
 * the call is synchronous and behaves exactly as the call without _async
 * (the message of a failure is then in vscsi_errmsg). Otherwise the call
 * returns at once:
 *   - 0: the operation started; how->callback will be called exactly once
 *     with its result (0 or a negative errno as listed above, -ECANCELED
 *     if it was aborted) and, on failure, its message (else ""; valid
 *     during the callback only). The callback may run before the starting
 *     call has returned (on the callback thread): set up what it needs
 *     first. vscsi_errmsg of the handle is not changed by the operation.
 *   - a negative errno: it did not start (-EBADF unknown handle, -EINVAL a
 *     NULL argument; message in vscsi_errmsg) and the callback is never
 *     called.
 * Asynchronous operations run concurrently with each other and with the
 * handle's synchronous calls; operations on one vhost are still serialised
 * by the library (they wait for each other), as between processes.
 *
 * Callback thread: every completion and event callback of the process
 * runs on one thread the library creates for them (never the caller's,
 * never a signal handler), one callback at a time, in the order the
 * results and events happened. The thread exists while an operation is
 * pending or a subscription is enabled. A callback may call any function
 * of this API, including vscsi_close, vscsi_abort and vscsi_evdisable of
 * its own handle (those then do not wait for the callback thread, see
 * each), and synchronous operations (which block the other callbacks
 * meanwhile). It must not block for long: the other callbacks wait.
 */
typedef void vscsi_done_fn(int handle, int rc, const char *errmsg, void *user);

typedef struct vscsi_async_how {
	vscsi_done_fn *callback; /* NULL: synchronous */
	void *user;              /* handed to callback unchanged */
} vscsi_async_how;

int vscsi_attach_async(int handle, const char *domain, const char *pdev, const char *vdev_and_opts,
		       const vscsi_async_how *how);
int vscsi_detach_async(int handle, const char *domain, const char *vdev, const vscsi_async_how *how);
int vscsi_destroy_vhost_async(int handle, const char *domain, int vhost, const vscsi_async_how *how);
int vscsi_apply_async(int handle, const char *config_path, const char *domain, const vscsi_async_how *how);
/* The handle stays valid until the callback reports 0 or an error other
 * than -ETIMEDOUT (as vscsi_backend_stop). Stopping cannot be aborted. */
int vscsi_backend_stop_async(int handle, int timeout_ms, const vscsi_async_how *how);
/* As vscsi_backend_stop_disconnect (API version 4). */
int vscsi_backend_stop_disconnect_async(int handle, int timeout_ms, const vscsi_async_how *how);

/*
 * Abort the asynchronous operations of handle started with the same
 * callback and user pointer as how (libxl_ao_abort's matching). An
 * aborted operation undoes its own writes, as on a timeout, and completes
 * with -ECANCELED (or with its result, if it finished first). Returns 0 if
 * at least one operation was asked to stop, -ENOENT if none matched,
 * -EBADF, -EINVAL (how or how->callback NULL).
 *
 * vscsi_close aborts every pending operation of the handle and returns
 * once each has completed and its callback has run (when vscsi_close is
 * called from a callback, the remaining callbacks run after that one
 * returns).
 */
int vscsi_abort(int handle, const vscsi_async_how *how);

/*
 * Device-state events: a subscription reports every change of a vhost's or
 * a device's xenbus state, backend or frontend side, and a domain's end.
 * The baseline is the state when vscsi_evenable returns (vscsi_list gives
 * it); each later change is reported once. Changes are found through
 * xenstore watches by comparing the vscsi trees before and after: writes
 * in quick succession may be reported as one change (old_state to the
 * state read), never as a state that was not there.
 */
enum vscsi_event_type {
	VSCSI_EVENT_VHOST_STATE = 1,  /* vhost, side, state, old_state */
	VSCSI_EVENT_DEVICE_STATE = 2, /* vhost, dev, vdev, side, state, old_state */
	VSCSI_EVENT_DOMAIN_GONE = 3,  /* the domain's xenstore home went away: its last event */
	VSCSI_EVENT_ERROR = 4,        /* the subscription stopped: state is -errno, errmsg says why */
};

enum vscsi_side {
	VSCSI_SIDE_BACKEND = 0,
	VSCSI_SIDE_FRONTEND = 1,
};

typedef struct vscsi_event {
	size_t size;              /* sizeof(vscsi_event) in the library; fields are only ever added at the end */
	int type;                 /* enum vscsi_event_type */
	unsigned int domid;
	int vhost;                /* the vhost's devid; -1 for DOMAIN_GONE and ERROR */
	int dev;                  /* dev-N's N for DEVICE_STATE, else -1 */
	int side;                 /* enum vscsi_side (VSCSI_SIDE_BACKEND for DOMAIN_GONE and ERROR) */
	int state;                /* the xenbus state now; 0: the node went away */
	int old_state;            /* the one before; 0: the node did not exist */
	const char *vdev;         /* "h:c:t:l" for DEVICE_STATE, else NULL */
	const char *backend_type; /* "vscsi", "vscsiu", ...; NULL for DOMAIN_GONE and ERROR */
	const char *errmsg;       /* ERROR only, else NULL */
} vscsi_event;                    /* the strings are valid during the callback only */

typedef void vscsi_event_fn(int handle, const vscsi_event *ev, void *user);

/* An enabled subscription (opaque; from vscsi_evenable). */
typedef struct vscsi_evsub vscsi_evsub;

/*
 * Subscribe to the events of domain (a name or domid, resolved now; the
 * subscription follows that domid and ends with its DOMAIN_GONE), or of
 * every domain, including those created later, if domain is NULL or "".
 * fn is called on the callback thread with user. *sub is set; release it
 * with vscsi_evdisable (also after DOMAIN_GONE or ERROR). Errors: -EBADF,
 * -EINVAL (fn or sub NULL), -ESRCH no such domain, xenstore errors.
 */
int vscsi_evenable(int handle, const char *domain, vscsi_event_fn *fn, void *user, vscsi_evsub **sub);

/*
 * End a subscription and release sub. Once it returns fn is not called
 * again for it (called from a callback, after that callback returns).
 * vscsi_close disables the handle's remaining subscriptions. -EBADF if sub
 * is not an enabled subscription of handle.
 */
int vscsi_evdisable(int handle, vscsi_evsub *sub);

/*
 * Logging. The library's messages (those the log_level options send to
 * stderr) of every handle and embedded backend of the process also go to
 * fn when level is reached: VSCSI_LOG_TRACE (most) .. VSCSI_LOG_ERROR.
 * msg is "<name>: <message>: key=value ..." and is valid during the call.
 * fn runs on the thread that logs (the caller's own thread inside a
 * synchronous call, a library thread otherwise), one call at a time
 * process-wide; it must not call into this library. fn == NULL turns it
 * off; once vscsi_set_log returns, the previous fn is not called any more
 * (unless another thread is inside it: the call waits for it to return).
 * Returns 0, or -EINVAL for a level out of range.
 */
enum vscsi_log_level {
	VSCSI_LOG_TRACE = 1,
	VSCSI_LOG_DEBUG = 2,
	VSCSI_LOG_INFO = 3,
	VSCSI_LOG_WARN = 4,
	VSCSI_LOG_ERROR = 5,
};

typedef void vscsi_log_fn(int level, const char *msg, void *user);

int vscsi_set_log(vscsi_log_fn *fn, int level, void *user);

/* For tests: opaque pointers the library has handed out and not taken
 * back (subscriptions; github.com/mattn/go-pointer entries). 0 once every
 * subscription is disabled. */
int vscsi_debug_pointers(void);

#ifdef __cplusplus
}
#endif

#endif /* GOVSCSI_H */
