/*
 * capi-live.c - the C API (libgovscsi.so, c/include/govscsi.h) against the
 * real xenstored and a live guest on the Xen test ground (scenario
 * capi-live). Unlike c/tests/test_attach.c (fake xenstored, scripted peers)
 * the peers here are Linux xen-scsiback and the guest's xen-scsifront.
 *
 *   capi-live attach  DOMAIN PDEV VDEV    vscsi_attach
 *   capi-live detach  DOMAIN VDEV         vscsi_detach
 *   capi-live destroy DOMAIN VHOST        vscsi_destroy_vhost
 *   capi-live list    DOMAIN              vscsi_list (JSON on stdout)
 *   capi-live cycle   DOMAIN PDEV VDEV    the asynchronous API (version 3): a
 *                     device-state subscription on DOMAIN, vscsi_attach_async,
 *                     the guest's device reaching 4, vscsi_detach_async, the
 *                     device gone; prints "done <op> rc <rc>" per completion
 *                     and "event ..." per event
 *
 * Options (YAML for vscsi_open) come from $CAPI_LIVE_OPTIONS, default
 * "timeout: 30s". Exit status 0 on success; otherwise the negative errno
 * and vscsi_errmsg go to stderr and the exit status is 1.
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "govscsi.h"

/* cycle's state, shared with the callback thread */
static atomic_int done_count, done_rc, fe_state, be_state, wrong_thread;
static pid_t main_tid;
static const char *cycle_vdev;

static void on_done(int h, int rc, const char *msg, void *user)
{
	(void)h;
	if ((pid_t)syscall(SYS_gettid) == main_tid)
		atomic_store(&wrong_thread, 1);
	printf("done %s rc %d%s%s\n", (const char *)user, rc, *msg ? ": " : "", msg);
	fflush(stdout);
	atomic_store(&done_rc, rc);
	atomic_fetch_add(&done_count, 1);
}

static void on_event(int h, const vscsi_event *ev, void *user)
{
	(void)h;
	(void)user;
	printf("event type %d domid %u vhost %d dev %d side %s %d->%d vdev %s\n", ev->type, ev->domid, ev->vhost,
	       ev->dev, ev->side == VSCSI_SIDE_FRONTEND ? "frontend" : "backend", ev->old_state, ev->state,
	       ev->vdev ? ev->vdev : "-");
	fflush(stdout);
	if (ev->type == VSCSI_EVENT_DEVICE_STATE && ev->vdev && strcmp(ev->vdev, cycle_vdev) == 0)
		atomic_store(ev->side == VSCSI_SIDE_FRONTEND ? &fe_state : &be_state, ev->state);
}

/* wait_for polls *v for want up to secs. */
static int wait_for(atomic_int *v, int want, int secs)
{
	for (int i = 0; i < secs * 100; i++) {
		if (atomic_load(v) == want)
			return 1;
		usleep(10000);
	}
	return 0;
}

static int cycle(int h, const char *dom, const char *pdev, const char *vdev)
{
	vscsi_evsub *sub = NULL;
	vscsi_async_how how = { on_done, "attach" };
	int rc;

	main_tid = (pid_t)syscall(SYS_gettid);
	cycle_vdev = vdev;
	if ((rc = vscsi_evenable(h, dom, on_event, NULL, &sub)) != 0)
		return rc;
	if ((rc = vscsi_attach_async(h, dom, pdev, vdev, &how)) != 0)
		return rc;
	if (!wait_for(&done_count, 1, 120) || atomic_load(&done_rc) != 0) {
		fprintf(stderr, "capi-live: attach did not complete (rc %d)\n", atomic_load(&done_rc));
		return -1;
	}
	if (!wait_for(&fe_state, 4, 30)) {
		fprintf(stderr, "capi-live: no event of the guest's device reaching state 4\n");
		return -1;
	}
	how.user = "detach";
	if ((rc = vscsi_detach_async(h, dom, vdev, &how)) != 0)
		return rc;
	if (!wait_for(&done_count, 2, 120) || atomic_load(&done_rc) != 0) {
		fprintf(stderr, "capi-live: detach did not complete (rc %d)\n", atomic_load(&done_rc));
		return -1;
	}
	if (!wait_for(&fe_state, 0, 30) || !wait_for(&be_state, 0, 30)) {
		fprintf(stderr, "capi-live: no event of the device going away\n");
		return -1;
	}
	if (atomic_load(&wrong_thread)) {
		fprintf(stderr, "capi-live: a callback ran on the starting thread\n");
		return -1;
	}
	rc = vscsi_evdisable(h, sub);
	printf("pointers %d\n", vscsi_debug_pointers());
	return rc;
}

static int report(int h, const char *what, int rc)
{
	char msg[1024];

	if (rc >= 0)
		return 0;
	vscsi_errmsg(h, msg, sizeof msg);
	fprintf(stderr, "capi-live: %s: rc %d: %s\n", what, rc, msg);
	return 1;
}

int main(int argc, char **argv)
{
	const char *opts = getenv("CAPI_LIVE_OPTIONS");
	const char *cmd = argc > 1 ? argv[1] : "";
	int h, rc, bad;
	char *json = NULL;

	if (!((strcmp(cmd, "attach") == 0 && argc == 5) ||
	      (strcmp(cmd, "detach") == 0 && argc == 4) ||
	      (strcmp(cmd, "destroy") == 0 && argc == 4) ||
	      (strcmp(cmd, "list") == 0 && argc == 3) ||
	      (strcmp(cmd, "cycle") == 0 && argc == 5))) {
		fprintf(stderr, "usage: capi-live attach DOMAIN PDEV VDEV | detach DOMAIN VDEV | "
				"destroy DOMAIN VHOST | list DOMAIN | cycle DOMAIN PDEV VDEV\n");
		return 2;
	}
	if (vscsi_api_version() != GOVSCSI_API_VERSION) {
		fprintf(stderr, "capi-live: library API %d, header %d\n", vscsi_api_version(),
			GOVSCSI_API_VERSION);
		return 1;
	}
	if (report(0, "vscsi_open", vscsi_open(opts ? opts : "timeout: 30s\n", &h)))
		return 1;
	if (strcmp(cmd, "attach") == 0) {
		rc = vscsi_attach(h, argv[2], argv[3], argv[4]);
	} else if (strcmp(cmd, "detach") == 0) {
		rc = vscsi_detach(h, argv[2], argv[3]);
	} else if (strcmp(cmd, "cycle") == 0) {
		rc = cycle(h, argv[2], argv[3], argv[4]);
	} else if (strcmp(cmd, "destroy") == 0) {
		rc = vscsi_destroy_vhost(h, argv[2], atoi(argv[3]));
	} else {
		rc = vscsi_list(h, argv[2], &json);
		if (rc == 0) {
			puts(json);
			vscsi_free(json);
		}
	}
	bad = report(h, cmd, rc);
	bad |= report(h, "vscsi_close", vscsi_close(h));
	return bad;
}
