/*
 * check.h - what the C API test programs share: CHECK, which counts a
 * failed condition and goes on (so one run reports every broken check),
 * errmsg for the library's last message, and verdict, the PASS line
 * tests/cshared/run.sh looks for. Included by the test programs in
 * c/tests only: run.sh compiles each .c file there, and the quotes find
 * this header next to them.
 */
#ifndef GOVSCSI_TESTS_CHECK_H
#define GOVSCSI_TESTS_CHECK_H

#include <stdio.h>

#include "govscsi.h"

static int failures;

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__,     \
				__LINE__, #cond);                          \
			fprintf(stderr, __VA_ARGS__);                      \
			fputc('\n', stderr);                               \
			failures++;                                        \
		}                                                          \
	} while (0)

/* errmsg is vscsi_errmsg of handle h (0: the last failed open or start),
 * in a static buffer. */
static inline const char *errmsg(int h)
{
	static char buf[1024];
	vscsi_errmsg(h, buf, sizeof buf);
	return buf;
}

/* verdict prints PASS, or FAIL with the count, and is main's exit code. */
static inline int verdict(void)
{
	if (failures) {
		printf("FAIL (%d)\n", failures);
		return 1;
	}
	printf("PASS\n");
	return 0;
}

#endif
