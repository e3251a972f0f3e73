/*
 * test_badargs.c - every export of libgovscsi.so called with every class of
 * bad argument (NULL pointers, unknown, closed and wrong-kind handles,
 * absurd lengths, malformed strings, hostile files): each call returns the
 * errno govscsi.h documents, sets the message of the handle it was given,
 * and never takes the process down (issue 14: vscsi_errmsg with
 * (size_t)-1 aborted on a Go panic, vscsi_detach(h, "5", "x") gave -EIO,
 * vscsi_list(h, d, NULL) left the previous call's message).
 *
 * tests/cshared/run.sh runs it against the govscsi_fakexen build (so a
 * backend handle can exist), with the fake xenstored and the scripted
 * peers of guest 5. Prints PASS and exits 0 when every check holds.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "govscsi.h"
#include "check.h"

/* A message the previous call left, to see it replaced. */
static void stale(int h)
{
	int rc = vscsi_detach(h, "guest5", "0:0:63:63");
	CHECK(rc == -ENOENT, "priming detach rc %d: %s", rc, errmsg(h));
}

static int callbacks;

static void done(int handle, int rc, const char *msg, void *user)
{
	(void)handle, (void)rc, (void)msg, (void)user;
	callbacks++;
}

static void on_event(int handle, const vscsi_event *ev, void *user)
{
	(void)handle, (void)ev, (void)user;
}

static void on_log(int level, const char *msg, void *user)
{
	(void)level, (void)msg, (void)user;
}

/* The handle's message is set and names want. */
#define MSG(h, want) CHECK(strstr(errmsg(h), (want)) != NULL, "message of %d is \"%s\", want it to name \"%s\"", (h), errmsg(h), (want))

int main(void)
{
	int h = -1, be = -1, closed = -1, rc;
	char *json = (char *)"untouched";
	char buf[64];
	char dir[] = "/tmp/govscsi-badargs.XXXXXX";
	char path[256];
	FILE *f;

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 2;
	}

	/* vscsi_open */
	CHECK(vscsi_open(NULL, NULL) == -EINVAL, "open with a NULL handle pointer");
	MSG(0, "NULL");
	CHECK(vscsi_open("timeout: 1s\ntimeout: 2s\n", &h) == -EINVAL, "open with a key given twice");
	MSG(0, "twice");
	CHECK(vscsi_open("timeout: 1s\n---\nflavour: hctl\n", &h) == -EINVAL, "open with two documents");
	MSG(0, "second YAML document");
	CHECK(vscsi_open("[[[[", &h) == -EINVAL, "open with broken YAML");
	snprintf(path, sizeof path, "%s/fifo", dir);
	CHECK(mkfifo(path, 0600) == 0, "mkfifo");
	{
		char opts[300];
		snprintf(opts, sizeof opts, "hotplug_log: %s\n", path);
		rc = vscsi_open(opts, &h);
		CHECK(rc < 0, "open with a FIFO hotplug_log rc %d", rc);
		MSG(0, "hotplug_log");
	}

	rc = vscsi_open("timeout: 2s\n", &h);
	CHECK(rc == 0 && h > 0, "open rc %d: %s", rc, errmsg(0));
	rc = vscsi_open("timeout: 2s\n", &closed);
	CHECK(rc == 0 && closed > 0, "second open rc %d", rc);
	CHECK(vscsi_close(closed) == 0, "close");

	/* Unknown, closed and negative handles: -EBADF everywhere. */
	int bad[] = {0, -1, 99999, closed};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int b = bad[i];
		CHECK(vscsi_close(b) == -EBADF, "close(%d)", b);
		CHECK(vscsi_attach(b, "guest5", "naa.5001405012345678:0", "0:0:0:0") == -EBADF, "attach(%d)", b);
		CHECK(vscsi_detach(b, "guest5", "0:0:0:0") == -EBADF, "detach(%d)", b);
		CHECK(vscsi_destroy_vhost(b, "guest5", 0) == -EBADF, "destroy_vhost(%d)", b);
		CHECK(vscsi_apply(b, "/dev/null", "guest5") == -EBADF, "apply(%d)", b);
		CHECK(vscsi_cleanup(b) == -EBADF, "cleanup(%d)", b);
		json = (char *)"untouched";
		CHECK(vscsi_list(b, "guest5", &json) == -EBADF && json == NULL, "list(%d)", b);
		CHECK(vscsi_backend_stop(b, 10) == -EBADF, "backend_stop(%d)", b);
		CHECK(vscsi_backend_stop_disconnect(b, 10) == -EBADF, "backend_stop_disconnect(%d)", b);
		json = (char *)"untouched";
		CHECK(vscsi_backend_stats(b, &json) == -EBADF && json == NULL, "backend_stats(%d)", b);
		if (b != 0)
			CHECK(vscsi_errmsg(b, buf, sizeof buf) == -EBADF, "errmsg(%d)", b);
	}

	/* The asynchronous calls, event subscriptions and logging (API 3). */
	vscsi_async_how how = {done, &callbacks};
	vscsi_evsub *sub = NULL;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int b = bad[i];
		CHECK(vscsi_attach_async(b, "guest5", "naa.5001405012345678:0", "0:0:0:0", &how) == -EBADF, "attach_async(%d)", b);
		CHECK(vscsi_detach_async(b, "guest5", "0:0:0:0", &how) == -EBADF, "detach_async(%d)", b);
		CHECK(vscsi_destroy_vhost_async(b, "guest5", 0, &how) == -EBADF, "destroy_vhost_async(%d)", b);
		CHECK(vscsi_apply_async(b, "/dev/null", "guest5", &how) == -EBADF, "apply_async(%d)", b);
		CHECK(vscsi_backend_stop_async(b, 10, &how) == -EBADF, "backend_stop_async(%d)", b);
		CHECK(vscsi_backend_stop_disconnect_async(b, 10, &how) == -EBADF, "backend_stop_disconnect_async(%d)", b);
		CHECK(vscsi_abort(b, &how) == -EBADF, "abort(%d)", b);
		CHECK(vscsi_evenable(b, "guest5", on_event, NULL, &sub) == -EBADF && sub == NULL, "evenable(%d)", b);
		CHECK(vscsi_evdisable(b, sub) == -EBADF, "evdisable(%d, NULL)", b);
	}
	stale(h);
	CHECK(vscsi_attach_async(h, NULL, "naa.5001405012345678:0", "0:0:0:0", &how) == -EINVAL, "attach_async NULL domain");
	MSG(h, "NULL");
	stale(h);
	CHECK(vscsi_detach_async(h, "guest5", NULL, &how) == -EINVAL, "detach_async NULL vdev");
	MSG(h, "NULL");
	stale(h);
	CHECK(vscsi_destroy_vhost_async(h, "guest5", -1, &how) == -EINVAL, "destroy_vhost_async -1");
	MSG(h, "negative");
	stale(h);
	CHECK(vscsi_apply_async(h, NULL, "guest5", &how) == -EINVAL, "apply_async NULL path");
	MSG(h, "NULL");
	stale(h);
	CHECK(vscsi_backend_stop_async(h, 10, &how) == -EBADF, "backend_stop_async on a toolstack handle");
	MSG(h, "not a");
	stale(h);
	CHECK(vscsi_backend_stop_disconnect_async(h, 10, &how) == -EBADF, "backend_stop_disconnect_async on a toolstack handle");
	MSG(h, "not a");
	stale(h);
	CHECK(vscsi_abort(h, NULL) == -EINVAL, "abort NULL how");
	MSG(h, "NULL");
	stale(h);
	{
		vscsi_async_how nocb = {NULL, NULL};
		CHECK(vscsi_abort(h, &nocb) == -EINVAL, "abort NULL callback");
		MSG(h, "NULL");
	}
	stale(h);
	CHECK(vscsi_abort(h, &how) == -ENOENT, "abort with nothing pending");
	MSG(h, "no asynchronous operation");
	stale(h);
	CHECK(vscsi_evenable(h, "guest5", NULL, NULL, &sub) == -EINVAL, "evenable NULL fn");
	MSG(h, "NULL");
	stale(h);
	CHECK(vscsi_evenable(h, "guest5", on_event, NULL, NULL) == -EINVAL, "evenable NULL sub");
	MSG(h, "NULL");
	stale(h);
	CHECK(vscsi_evenable(h, "nosuchguest", on_event, NULL, &sub) == -ESRCH && sub == NULL, "evenable unknown domain");
	MSG(h, "nosuchguest");
	stale(h);
	CHECK(vscsi_evdisable(h, NULL) == -EBADF, "evdisable NULL");
	MSG(h, "not an enabled subscription");
	stale(h);
	CHECK(vscsi_evdisable(h, (vscsi_evsub *)&how) == -EBADF, "evdisable of a pointer that is no subscription");
	MSG(h, "not an enabled subscription");
	CHECK(vscsi_set_log(on_log, 0, NULL) == -EINVAL, "set_log level 0");
	MSG(0, "level");
	CHECK(vscsi_set_log(on_log, 99, NULL) == -EINVAL, "set_log level 99");
	CHECK(vscsi_set_log(NULL, 99, NULL) == 0, "set_log off");
	CHECK(callbacks == 0, "%d callbacks of calls that did not start", callbacks);
	CHECK(vscsi_debug_pointers() == 0, "%d pointers handed out", vscsi_debug_pointers());

	/* NULL strings and pointers: -EINVAL, with the message set. */
	stale(h);
	CHECK(vscsi_attach(h, NULL, "naa.5001405012345678:0", "0:0:0:0") == -EINVAL, "attach NULL domain");
	MSG(h, "NULL");
	stale(h);
	CHECK(vscsi_attach(h, "guest5", NULL, "0:0:0:0") == -EINVAL, "attach NULL pdev");
	MSG(h, "NULL");
	stale(h);
	CHECK(vscsi_attach(h, "guest5", "naa.5001405012345678:0", NULL) == -EINVAL, "attach NULL vdev");
	MSG(h, "NULL");
	stale(h);
	CHECK(vscsi_detach(h, NULL, "0:0:0:0") == -EINVAL, "detach NULL domain");
	MSG(h, "NULL");
	stale(h);
	CHECK(vscsi_detach(h, "guest5", NULL) == -EINVAL, "detach NULL vdev");
	MSG(h, "NULL");
	stale(h);
	CHECK(vscsi_destroy_vhost(h, NULL, 0) == -EINVAL, "destroy_vhost NULL domain");
	MSG(h, "NULL");
	stale(h);
	CHECK(vscsi_apply(h, NULL, "guest5") == -EINVAL, "apply NULL path");
	MSG(h, "NULL");
	stale(h);
	CHECK(vscsi_apply(h, "/dev/null", NULL) == -EINVAL, "apply NULL domain");
	MSG(h, "NULL");
	stale(h);
	CHECK(vscsi_list(h, "guest5", NULL) == -EINVAL, "list NULL out");
	MSG(h, "NULL");
	stale(h);
	json = (char *)"untouched";
	CHECK(vscsi_list(h, NULL, &json) == -EINVAL && json == NULL, "list NULL domain");
	MSG(h, "NULL");

	/* Malformed values: -EINVAL naming the value; unknown things: their
	 * documented errno. */
	stale(h);
	rc = vscsi_detach(h, "5", "x");
	CHECK(rc == -EINVAL, "detach vdev \"x\" rc %d: %s", rc, errmsg(h));
	MSG(h, "\"x\"");
	stale(h);
	rc = vscsi_detach(h, "guest5", "");
	CHECK(rc == -EINVAL, "detach vdev \"\" rc %d: %s", rc, errmsg(h));
	stale(h);
	rc = vscsi_attach(h, "guest5", "naa.5001405012345678:0", "0:0:0");
	CHECK(rc == -EINVAL, "attach vdev \"0:0:0\" rc %d: %s", rc, errmsg(h));
	stale(h);
	rc = vscsi_attach(h, "guest5", "", "0:0:0:0");
	CHECK(rc == -EINVAL, "attach pdev \"\" rc %d: %s", rc, errmsg(h));
	stale(h);
	rc = vscsi_destroy_vhost(h, "guest5", -1);
	CHECK(rc == -EINVAL, "destroy_vhost -1 rc %d: %s", rc, errmsg(h));
	MSG(h, "negative");
	rc = vscsi_destroy_vhost(h, "guest5", 999);
	CHECK(rc == -ENOENT, "destroy_vhost 999 rc %d: %s", rc, errmsg(h));
	rc = vscsi_detach(h, "nosuchguest", "0:0:0:0");
	CHECK(rc == -ESRCH, "detach from an unknown domain rc %d: %s", rc, errmsg(h));
	MSG(h, "nosuchguest");
	rc = vscsi_detach(h, "", "0:0:0:0");
	CHECK(rc == -EINVAL || rc == -ESRCH, "detach from domain \"\" rc %d: %s", rc, errmsg(h));
	rc = vscsi_list(h, "4294967296", &json);
	CHECK(rc == -ESRCH || rc == -EINVAL, "list domid 2^32 rc %d: %s", rc, errmsg(h));

	/* Hostile config files for vscsi_apply: an error, at once. */
	rc = vscsi_apply(h, path, "guest5"); /* the FIFO */
	CHECK(rc == -EINVAL, "apply a FIFO rc %d: %s", rc, errmsg(h));
	MSG(h, "FIFO");
	rc = vscsi_apply(h, "/dev/zero", "guest5");
	CHECK(rc == -EINVAL, "apply /dev/zero rc %d: %s", rc, errmsg(h));
	snprintf(path, sizeof path, "%s/deep.cfg", dir);
	f = fopen(path, "w");
	CHECK(f != NULL, "fopen %s", path);
	if (f) {
		fputs("vscsi = ", f);
		for (int i = 0; i < 1000000; i++)
			fputc('[', f);
		fputc('\n', f);
		fclose(f);
	}
	rc = vscsi_apply(h, path, "guest5"); /* overflowed the Go stack: abort */
	CHECK(rc == -EINVAL, "apply a deeply nested config rc %d: %s", rc, errmsg(h));
	MSG(h, "deep");
	unlink(path);
	snprintf(path, sizeof path, "%s/missing.cfg", dir);
	rc = vscsi_apply(h, path, "guest5");
	CHECK(rc == -ENOENT, "apply a missing file rc %d: %s", rc, errmsg(h));

	/* vscsi_errmsg: lengths. */
	stale(h);
	CHECK(vscsi_errmsg(h, NULL, 10) == -EINVAL, "errmsg NULL buffer");
	CHECK(vscsi_errmsg(h, buf, 0) == -EINVAL, "errmsg length 0");
	CHECK(vscsi_errmsg(h, buf, (size_t)-1) == -EINVAL, "errmsg length (size_t)-1");
	CHECK(vscsi_errmsg(h, buf, (size_t)PTRDIFF_MAX + 1) == -EINVAL, "errmsg length PTRDIFF_MAX+1");
	memset(buf, 'x', sizeof buf);
	CHECK(vscsi_errmsg(h, buf, 1) == -ERANGE && buf[0] == 0 && buf[1] == 'x', "errmsg length 1 writes the NUL only");
	CHECK(vscsi_errmsg(h, buf, sizeof buf) == -ERANGE || vscsi_errmsg(h, buf, sizeof buf) == 0, "errmsg");
	CHECK(strstr(errmsg(h), "does not exist") != NULL, "errmsg calls changed the message: %s", errmsg(h));
	vscsi_free(NULL);

	/* Backend handles and toolstack handles are not interchangeable. */
	CHECK(vscsi_backend_start("domid: 0\nstats_socket: none\n", NULL) == -EINVAL, "backend_start NULL out");
	MSG(0, "NULL");
	CHECK(vscsi_backend_start("domid: 0\ndomid: 1\n", &be) == -EINVAL, "backend_start key twice");
	MSG(0, "twice");
	CHECK(vscsi_backend_start("backend_type: \"a b\"\nstats_socket: none\n", &be) == -EINVAL, "backend_start bad type");
	MSG(0, "backend_type");
	rc = vscsi_backend_start("domid: 0\nstats_socket: none\nstate_dir: none\nbackend_type: vscsibadargs\nlog_level: error\n", &be);
	CHECK(rc == 0 && be > 0, "backend_start rc %d: %s", rc, errmsg(0));
	if (rc == 0) {
		CHECK(vscsi_attach(be, "guest5", "naa.5001405012345678:0", "0:0:0:0") == -EBADF, "attach on a backend handle");
		CHECK(vscsi_close(be) == -EBADF, "close on a backend handle");
		MSG(be, "vscsi_backend_stop");
		CHECK(vscsi_backend_stats(be, NULL) == -EINVAL, "backend_stats NULL out");
		MSG(be, "NULL");
		CHECK(vscsi_backend_stop(h, 10) == -EBADF, "backend_stop on a toolstack handle");
		MSG(h, "not a backend handle");
		CHECK(vscsi_backend_stop_disconnect(h, 10) == -EBADF, "backend_stop_disconnect on a toolstack handle");
		MSG(h, "not a backend handle");
		json = (char *)"untouched";
		CHECK(vscsi_backend_stats(h, &json) == -EBADF && json == NULL, "backend_stats on a toolstack handle");
		rc = vscsi_backend_stop(be, 10000);
		CHECK(rc == 0, "backend_stop rc %d: %s", rc, errmsg(be));
		CHECK(vscsi_backend_stop(be, 10) == -EBADF, "backend_stop twice");
	}

	/* A Go panic inside an export (injected in the test build) comes back
	 * as -EIO with a message; the process and the library go on. */
	const char *trigger = getenv("GOVSCSI_FAKEXEN_PANIC");
	CHECK(trigger != NULL, "run.sh sets GOVSCSI_FAKEXEN_PANIC");
	if (trigger && (f = fopen(trigger, "w")) != NULL) {
		fclose(f);
		be = -1;
		rc = vscsi_backend_start("domid: 0\nstats_socket: none\nstate_dir: none\nbackend_type: vscsibadargs\n", &be);
		unlink(trigger);
		CHECK(rc == -EIO && be == -1, "a panic in backend_start rc %d", rc);
		MSG(0, "internal error");
		MSG(0, "GOVSCSI_FAKEXEN_PANIC");
	}
	rc = vscsi_list(h, "guest5", &json);
	CHECK(rc == 0, "list after a caught panic rc %d: %s", rc, errmsg(h));
	vscsi_free(json);

	CHECK(vscsi_close(h) == 0, "close");
	CHECK(vscsi_open_handles() == 0, "handles left %d", vscsi_open_handles());
	snprintf(path, sizeof path, "%s/fifo", dir);
	unlink(path);
	rmdir(dir);
	return verdict();
}
