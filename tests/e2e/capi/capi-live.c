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
 *
 * Options (YAML for vscsi_open) come from $CAPI_LIVE_OPTIONS, default
 * "timeout: 30s". Exit status 0 on success; otherwise the negative errno
 * and vscsi_errmsg go to stderr and the exit status is 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "govscsi.h"

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
	      (strcmp(cmd, "list") == 0 && argc == 3))) {
		fprintf(stderr, "usage: capi-live attach DOMAIN PDEV VDEV | detach DOMAIN VDEV | "
				"destroy DOMAIN VHOST | list DOMAIN\n");
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
