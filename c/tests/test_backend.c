/*
 * test_backend.c - the userspace vscsi backend embedded in libgovscsi.so
 * (vscsi_backend_*), driven through the public header. tests/cshared/run.sh
 * runs it against the library built with the test-only build tag
 * govscsi_fakexen (fake grant table and event channels inside the library,
 * since a test host has no /dev/xen; real libxenstore against the fake
 * xenstored), with guest domain 6 "guest6" played by
 * `peer -frontend-only -fakexen-ring` (and GOVSCSI_FAKEXEN_GUESTS=6).
 *
 * It starts the backend, attaches a ram: LUN to guest6 with the toolstack
 * API (flavour userspace), checks state 4 on both sides and the backend's
 * statistics, detaches, stops the backend (vscsi_backend_stop_async) and
 * checks nothing is left. Then, with a guest connected: vscsi_backend_stop
 * hands over (4/4 kept), a second backend takes the vhost over, and
 * vscsi_backend_stop_disconnect_async closes it (6).
 * Prints PASS and exits 0 when every check holds.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "govscsi.h"
#include "check.h"

struct stopped {
	atomic_int done;
	int rc, handle;
};

static void on_stopped(int handle, int rc, const char *msg, void *user)
{
	struct stopped *st = user;
	st->rc = rc;
	st->handle = handle;
	if (rc != 0)
		fprintf(stderr, "stop: %s\n", msg);
	atomic_fetch_add(&st->done, 1);
}

#define BACKEND_CONFIG "domid: 0\nstats_socket: none\nmax_ram: 64M\nlog_level: warn\n" \
	"timeouts: {shutdown: 5s, remove: 5s}\n"

/* vscsi_list's JSON for guest6 contains want (waits up to 10 s). */
static int list_has(int h, const char *want)
{
	char *json = NULL;
	int i, ok = 0;

	for (i = 0; i < 200 && !ok; i++) {
		if (vscsi_list(h, "guest6", &json) == 0 && json)
			ok = strstr(json, want) != NULL;
		if (!ok && i == 199)
			printf("list: %s\n", json ? json : "(none)");
		vscsi_free(json);
		json = NULL;
		if (!ok)
			usleep(50000);
	}
	return ok;
}

/* The backend's stats JSON contains want (waits up to 10 s). */
static int stats_has(int be, const char *want)
{
	char *json = NULL;
	int i, ok = 0;

	for (i = 0; i < 200 && !ok; i++) {
		if (vscsi_backend_stats(be, &json) == 0 && json)
			ok = strstr(json, want) != NULL;
		vscsi_free(json);
		json = NULL;
		if (!ok)
			usleep(50000);
	}
	return ok;
}

/*
 * A guest connected when the backend stops: vscsi_backend_stop (the default
 * handover) leaves the vhost connected (4/4) and a second backend takes it
 * over; vscsi_backend_stop_disconnect closes it (the explicit act).
 */
static void handover_then_disconnect(int base_g)
{
	char state[128];
	int be = -1, h = -1, rc;

	snprintf(state, sizeof state, "state_dir: /tmp/govscsi-cshared-state-%d\n", (int)getpid());
	char config[512];
	snprintf(config, sizeof config, "%s%s", BACKEND_CONFIG, state);
	rc = vscsi_backend_start(config, &be);
	CHECK(rc == 0, "start rc %d: %s", rc, errmsg(0));
	rc = vscsi_open("flavour: userspace\ntimeout: 10s\n", &h);
	CHECK(rc == 0, "open rc %d: %s", rc, errmsg(0));
	rc = vscsi_attach(h, "guest6", "ram:16M", "0:0:0:0");
	CHECK(rc == 0, "attach rc %d: %s", rc, errmsg(h));
	CHECK(stats_has(be, "\"connected\": true"), "first backend not connected");

	rc = vscsi_backend_stop(be, 10000);
	CHECK(rc == 0, "handover stop rc %d: %s", rc, errmsg(0));
	CHECK(list_has(h, "\"backend_state\": 4"), "the handover changed the backend state");
	CHECK(list_has(h, "\"frontend_state\": 4"), "the handover changed the frontend state");

	rc = vscsi_backend_start(config, &be);
	CHECK(rc == 0, "second start rc %d: %s", rc, errmsg(0));
	CHECK(stats_has(be, "\"connected\": true"), "second backend did not take the vhost over");
	CHECK(list_has(h, "\"backend_state\": 4"), "after the takeover");

	/* The asynchronous twin (API version 4). */
	struct stopped st = {0, 1, 0};
	vscsi_async_how how = {on_stopped, &st};
	rc = vscsi_backend_stop_disconnect_async(be, 10000, &how);
	CHECK(rc == 0, "stop_disconnect_async rc %d: %s", rc, errmsg(be));
	for (int i = 0; i < 1500 && !atomic_load(&st.done); i++)
		usleep(10000);
	CHECK(atomic_load(&st.done) == 1 && st.rc == 0, "disconnect callback %d times, rc %d", atomic_load(&st.done), st.rc);
	CHECK(list_has(h, "\"backend_state\": 6"), "the explicit disconnect did not close the vhost");
	CHECK(vscsi_backend_stop_disconnect(be, 10000) == -EBADF, "double stop_disconnect");

	rc = vscsi_destroy_vhost(h, "guest6", 0);
	CHECK(rc == 0, "destroy rc %d: %s", rc, errmsg(h));
	CHECK(vscsi_close(h) == 0, "close");
	CHECK(vscsi_open_handles() == 0, "handles leaked: %d", vscsi_open_handles());
	for (int i = 0; i < 100 && vscsi_debug_goroutines() > base_g; i++)
		usleep(20000); /* the callback thread ends just after its last callback */
	CHECK(vscsi_debug_goroutines() == base_g, "goroutines %d after the second stop, %d at load",
	      vscsi_debug_goroutines(), base_g);
	snprintf(config, sizeof config, "rm -rf /tmp/govscsi-cshared-state-%d", (int)getpid());
	CHECK(system(config) == 0, "%s", config);
}

int main(void)
{
	int be = -1, h = -1, rc, base_g;
	char *json = NULL;

	base_g = vscsi_debug_goroutines();
	CHECK(base_g <= 1, "%d goroutines at load", base_g);
	CHECK(vscsi_api_version() == 4 && GOVSCSI_API_VERSION == 4, "api version %d", vscsi_api_version());

	/* A bad configuration: EINVAL, the message names the key, nothing runs. */
	rc = vscsi_backend_start("domid: 0\nallow_pathz: [/dev/]\n", &be);
	CHECK(rc == -EINVAL, "bad config rc %d", rc);
	CHECK(strstr(errmsg(0), "allow_pathz") != NULL, "bad config message %s", errmsg(0));
	CHECK(vscsi_open_handles() == 0, "handles after a failed start %d", vscsi_open_handles());
	CHECK(vscsi_backend_start(NULL, NULL) == -EINVAL, "NULL handle pointer");

	rc = vscsi_backend_start("domid: 0\nstats_socket: none\nstate_dir: none\nmax_ram: 64M\n"
				 "timeouts: {shutdown: 5s, remove: 5s}\nlog_level: warn\n", &be);
	CHECK(rc == 0 && be > 0, "start rc %d: %s", rc, errmsg(0));
	CHECK(vscsi_open_handles() == 1, "handles %d", vscsi_open_handles());
	CHECK(vscsi_debug_goroutines() > base_g, "no goroutine after start");
	CHECK(vscsi_close(be) == -EBADF, "vscsi_close on a backend handle");
	CHECK(strstr(errmsg(be), "vscsi_backend_stop") != NULL, "close message %s", errmsg(be));

	rc = vscsi_open("flavour: userspace\ntimeout: 10s\n", &h);
	CHECK(rc == 0 && h > 0, "open rc %d: %s", rc, errmsg(0));
	CHECK(vscsi_backend_stop(h, 100) == -EBADF, "backend_stop on a toolstack handle");
	CHECK(vscsi_backend_stats(h, &json) == -EBADF && json == NULL, "backend_stats on a toolstack handle");

	rc = vscsi_attach(h, "guest6", "ram:16M", "0:0:0:0");
	CHECK(rc == 0, "attach rc %d: %s", rc, errmsg(h));
	rc = vscsi_list(h, "guest6", &json);
	CHECK(rc == 0 && json != NULL, "list rc %d: %s", rc, errmsg(h));
	if (json) {
		CHECK(strstr(json, "\"backend_type\": \"vscsiu\"") != NULL, "list %s", json);
		CHECK(strstr(json, "\"backend_state\": 4") != NULL, "list %s", json);
		CHECK(strstr(json, "\"frontend_state\": 4") != NULL, "list %s", json);
		CHECK(strstr(json, "\"p_dev\": \"ram:16M\"") != NULL, "list %s", json);
		vscsi_free(json);
		json = NULL;
	}

	rc = vscsi_backend_stats(be, &json);
	CHECK(rc == 0 && json != NULL, "stats rc %d: %s", rc, errmsg(be));
	if (json) {
		printf("backend stats: %.300s...\n", json);
		CHECK(strstr(json, "\"running\": true") != NULL, "stats %s", json);
		CHECK(strstr(json, "\"pdev\": \"ram:16M\"") != NULL, "stats %s", json);
		CHECK(strstr(json, "\"connected\": true") != NULL, "stats %s", json);
		vscsi_free(json);
		json = NULL;
	}

	/* A p-dev the userspace backend's syntax refuses never reaches xenstore. */
	rc = vscsi_attach(h, "guest6", "ram:1000", "0:0:1:0");
	CHECK(rc == -EINVAL && strstr(errmsg(h), "ram:1000") != NULL, "bad ram size rc %d %s", rc, errmsg(h));

	rc = vscsi_detach(h, "guest6", "0:0:0:0");
	CHECK(rc == 0, "detach rc %d: %s", rc, errmsg(h));
	rc = vscsi_destroy_vhost(h, "guest6", 0);
	CHECK(rc == 0, "destroy rc %d: %s", rc, errmsg(h));
	rc = vscsi_list(h, "guest6", &json);
	CHECK(rc == 0 && json && strcmp(json, "[]\n") == 0, "after destroy: %s", json ? json : "");
	vscsi_free(json);
	json = NULL;
	CHECK(vscsi_close(h) == 0, "close");

	/* Stopped asynchronously (API version 3): the callback reports it. */
	struct stopped st = {0, 1, 0};
	vscsi_async_how how = {on_stopped, &st};
	rc = vscsi_backend_stop_async(be, 10000, &how);
	CHECK(rc == 0, "stop_async rc %d: %s", rc, errmsg(be));
	for (int i = 0; i < 1500 && !atomic_load(&st.done); i++)
		usleep(10000);
	CHECK(atomic_load(&st.done) == 1 && st.rc == 0, "stop callback %d times, rc %d", atomic_load(&st.done), st.rc);
	CHECK(st.handle == be, "stop callback for handle %d, want %d", st.handle, be);
	CHECK(vscsi_backend_stop(be, 10000) == -EBADF, "double stop");
	CHECK(vscsi_open_handles() == 0, "handles leaked: %d", vscsi_open_handles());
	for (int i = 0; i < 100 && vscsi_debug_goroutines() > base_g; i++)
		usleep(20000); /* the callback thread ends just after its last callback */
	CHECK(vscsi_debug_goroutines() == base_g, "goroutines %d after stop, %d at load",
	      vscsi_debug_goroutines(), base_g);

	handover_then_disconnect(base_g);
	return verdict();
}
