/*
 * test_attach.c - drives libgovscsi.so through its public header against a
 * fake xenstored (XENSTORED_PATH) with scripted backend and frontend peers
 * running (tests/cshared/run.sh sets that up). Domain 5 is "guest5".
 *
 * Usage: test_attach <config-file-with-vscsi-entries>
 * Prints PASS and exits 0 when every check holds.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "govscsi.h"
#include "check.h"

static int threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;
	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

int main(int argc, char **argv)
{
	int h = -1, h2 = -1, rc, base_g, base_t;
	char *json = NULL;
	char small[8];

	if (argc != 2) {
		fprintf(stderr, "usage: %s <config>\n", argv[0]);
		return 2;
	}

	/* Before any call that starts work: no goroutine of ours. The Go
	 * runtime's own threads exist already (reported, not asserted). */
	base_t = threads();
	base_g = vscsi_debug_goroutines();
	printf("at load: %d threads (Go runtime), %d goroutines\n", base_t, base_g);
	CHECK(base_g <= 1, "%d goroutines before vscsi_open", base_g);

	/* Forking with the library loaded and no handle open, then exec in
	 * the child, is fine (govscsi.h, "Threads and forking"). The child
	 * must not call into the library: the Go runtime's other threads do
	 * not exist there, and a lock one of them held at the fork stays
	 * held (a child calling vscsi_open_handles hung so on a busy host). */
	pid_t pid = fork();
	if (pid == 0) {
		execl("/bin/true", "true", (char *)NULL);
		_exit(127);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "forked child status %d", status);

	CHECK(vscsi_api_version() == GOVSCSI_API_VERSION, "api version %d", vscsi_api_version());
	/* The library says the version the .pc file does (run.sh passes it). */
	CHECK(strcmp(vscsi_version(), "govscsi " GOVSCSI_TEST_VERSION) == 0, "version %s, want govscsi %s",
	      vscsi_version(), GOVSCSI_TEST_VERSION);

	/* Bad options: EINVAL, message on handle 0 naming the key. */
	rc = vscsi_open("timeot: 5s\n", &h);
	CHECK(rc == -EINVAL, "bad options rc %d", rc);
	CHECK(strstr(errmsg(0), "timeot") != NULL, "open error %s", errmsg(0));

	rc = vscsi_open("timeout: 5s\nflavour: kernel\n", &h);
	CHECK(rc == 0 && h > 0, "open rc %d (%s)", rc, errmsg(0));
	CHECK(vscsi_open_handles() == 1, "handles %d", vscsi_open_handles());
	CHECK(vscsi_debug_goroutines() > base_g, "no goroutine after open");

	rc = vscsi_attach(h, "guest5", "naa.5001405012345678:0", "0:0:0:0");
	CHECK(rc == 0, "attach rc %d: %s", rc, errmsg(h));
	CHECK(strcmp(errmsg(h), "") == 0, "errmsg after success: %s", errmsg(h));

	rc = vscsi_list(h, "guest5", &json);
	CHECK(rc == 0 && json != NULL, "list rc %d: %s", rc, errmsg(h));
	if (json) {
		CHECK(strstr(json, "\"p_dev\": \"naa.5001405012345678:0\"") != NULL, "list json %s", json);
		CHECK(strstr(json, "\"frontend_state\": 4") != NULL, "list json %s", json);
		CHECK(strstr(json, "\"v_dev\": \"0:0:0:0\"") != NULL, "list json %s", json);
		vscsi_free(json);
		json = NULL;
	}

	/* Errors: negative errno + a message naming the culprit. */
	rc = vscsi_attach(h, "nosuch", "naa.5001405012345678:1", "0:0:1:0");
	CHECK(rc == -ESRCH, "attach to a missing domain rc %d", rc);
	CHECK(strstr(errmsg(h), "nosuch") != NULL, "errmsg %s", errmsg(h));
	rc = vscsi_errmsg(h, small, sizeof small);
	CHECK(rc == -ERANGE && strlen(small) == sizeof small - 1, "small buffer rc %d '%s'", rc, small);
	rc = vscsi_attach(h, "guest5", "naa.5001405012345678:1", "0:0:1");
	CHECK(rc == -EINVAL && strstr(errmsg(h), "0:0:1") != NULL, "bad vdev rc %d %s", rc, errmsg(h));
	rc = vscsi_detach(h, "guest5", "0:0:7:0");
	CHECK(rc == -ENOENT, "detach of a missing device rc %d %s", rc, errmsg(h));
	rc = vscsi_list(h, NULL, &json);
	CHECK(rc == -EINVAL && json == NULL, "list NULL domain rc %d", rc);
	CHECK(vscsi_attach(999, "guest5", "x", "0:0:0:0") == -EBADF, "bad handle");
	CHECK(vscsi_errmsg(999, small, sizeof small) == -EBADF, "errmsg bad handle");

	/* A second handle works independently. */
	rc = vscsi_open(NULL, &h2);
	CHECK(rc == 0 && h2 > 0 && h2 != h, "second open rc %d", rc);
	CHECK(vscsi_open_handles() == 2, "handles %d", vscsi_open_handles());

	rc = vscsi_apply(h2, argv[1], "5");
	CHECK(rc == 0, "apply rc %d: %s", rc, errmsg(h2));
	rc = vscsi_list(h2, "5", &json);
	CHECK(rc == 0 && json && strstr(json, "\"v_dev\": \"0:0:2:0\"") != NULL, "after apply: %s", json ? json : errmsg(h2));
	vscsi_free(json);
	json = NULL;

	rc = vscsi_detach(h, "guest5", "0:0:0:0");
	CHECK(rc == 0, "detach rc %d: %s", rc, errmsg(h));
	rc = vscsi_list(h, "guest5", &json);
	CHECK(rc == 0 && json && strstr(json, "0:0:0:0") == NULL, "after detach: %s", json ? json : "");
	vscsi_free(json);

	rc = vscsi_destroy_vhost(h, "guest5", 0);
	CHECK(rc == 0, "destroy rc %d: %s", rc, errmsg(h));
	rc = vscsi_list(h, "guest5", &json);
	CHECK(rc == 0 && json && strcmp(json, "[]\n") == 0, "after destroy: %s", json ? json : "");
	vscsi_free(json);
	vscsi_free(NULL);

	/* The production library has the real Xen devices only: without
	 * /dev/xen the embedded backend fails to start, cleanly. */
	int be = -1;
	rc = vscsi_backend_start("domid: 0\nstats_socket: none\nstate_dir: none\n", &be);
	if (access("/dev/xen/gntdev", F_OK) != 0) {
		CHECK(rc < 0 && be == -1, "backend start without /dev/xen rc %d", rc);
		CHECK(strstr(errmsg(0), "grant device") != NULL, "backend start message %s", errmsg(0));
	} else if (rc == 0) {
		CHECK(vscsi_backend_stop(be, 10000) == 0, "backend stop: %s", errmsg(0));
	}

	CHECK(vscsi_close(h) == 0, "close");
	CHECK(vscsi_close(h) == -EBADF, "double close");
	CHECK(vscsi_close(h2) == 0, "close 2");
	CHECK(vscsi_open_handles() == 0, "handles leaked: %d", vscsi_open_handles());
	CHECK(vscsi_debug_goroutines() == base_g, "goroutines %d after close, %d before open",
	      vscsi_debug_goroutines(), base_g);
	printf("after close: %d threads, %d goroutines\n", threads(), vscsi_debug_goroutines());

	return verdict();
}
