/*
 * govscsi.h - C API of govscsi's Xen PV SCSI (vscsi) toolstack,
 * libgovscsi.so (pkg-config govscsi).
 *
 * Hand-written; this file, not the cgo-generated header, is the contract.
 *
 * Conventions
 *   - A handle is a small positive int from vscsi_open; it owns one
 *     xenstore connection (libxenstore: XENSTORED_PATH, else the local
 *     xenstored socket, else /dev/xen/xenbus). Calls on one handle are
 *     serialised; use several handles to work in parallel.
 *   - Every function returning int returns 0 on success or a negative
 *     errno: -EBADF unknown handle, -EINVAL bad argument/spec/options,
 *     -ESRCH no such domain, -ENOENT no such device or vhost, -ENODEV a
 *     peer refused the device (state 6), -ENOTCONN the vhost closed,
 *     -ETIMEDOUT a peer did not answer in time, -EBUSY the vhost stayed in
 *     a reconfiguration, other values from xenstore (-EACCES ...).
 *     vscsi_errmsg gives the message.
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
 *   them. A process that forks should do so with no handle open, and only
 *   exec in the child.
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
#define GOVSCSI_API_VERSION 2

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
 * succeeded. Returns 0, -ERANGE if the message was truncated, -EBADF for
 * an unknown handle, -EINVAL if buf is NULL or len is 0.
 */
int vscsi_errmsg(int handle, char *buf, size_t len);

/*
 * The userspace vscsi backend, embedded (API version 2). It serves
 * /local/domain/<me>/backend/<backend_type>/... (default "vscsiu") from the
 * calling process, exactly as the vscsi-backend daemon would
 * (docs/backend.md); a toolstack handle opened with "flavour: userspace"
 * writes vhosts it serves. Run at most one backend per backend type and
 * host: two would answer for the same vhosts.
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
 * Stop a backend: every vhost it serves is closed (the guests get
 * timeouts.shutdown to close their side) and its connections and devices
 * are released. Waits at most timeout_ms (<= 0: 30 s). Returns 0 once
 * stopped, and the handle is gone; -ETIMEDOUT if it has not stopped yet
 * (the handle stays: call again); another error if the backend had failed
 * while running (the handle is gone too; message in vscsi_errmsg(0, ...)).
 */
int vscsi_backend_stop(int handle, int timeout_ms);

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

#ifdef __cplusplus
}
#endif

#endif /* GOVSCSI_H */
