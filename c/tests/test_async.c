/*
 * test_async.c - the asynchronous half of libgovscsi.so's API (API version
 * 3): completion callbacks (vscsi_*_async), vscsi_abort, vscsi_close with
 * operations pending and from inside a callback, device-state events
 * (vscsi_evenable/vscsi_evdisable) and the log callback (vscsi_set_log),
 * driven from several threads through the public header.
 *
 * tests/cshared/run.sh runs it against a fake xenstored with scripted peers:
 * guest5 has a backend and a frontend (operations complete); guest7 has
 * neither peer's frontend (an attach waits until it is aborted). It makes
 * guest8 itself (xenstore-write/xenstore-rm, XENSTORED_PATH) to see a
 * domain go. run.sh also runs it built with -fsanitize=address (leaks
 * and memory errors fail that run).
 *
 * Checked throughout: each callback runs exactly once, with its own user
 * pointer, never on the thread that started the operation, and never two
 * at a time; every subscription's events continue each node's history
 * (old_state is the last state reported); at the end no handle, goroutine
 * or go-pointer entry is left.
 * Prints PASS and exits 0 when every check holds. TEST_ASYNC_TRACE=1 in the
 * environment prints every event.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "govscsi.h"
#include "check.h"

#define WWN "naa.5001405012345678"
#define NTHREADS 4
#define ROUNDS 4

static pid_t tid(void) { return (pid_t)syscall(SYS_gettid); }

static atomic_int in_callback;   /* callbacks running now: never above 1 */
static atomic_int overlap;       /* times two ran at once */
static atomic_int callbacks;     /* completion callbacks seen */

static void enter_cb(void)
{
	if (atomic_fetch_add(&in_callback, 1) != 0)
		atomic_fetch_add(&overlap, 1);
}

static void leave_cb(void) { atomic_fetch_sub(&in_callback, 1); }

/* One asynchronous operation awaited by its starter. */
struct op {
	unsigned magic;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done;       /* times the callback ran (must end at 1) */
	int rc;
	int handle;
	pid_t starter;  /* the thread that started it */
	pid_t cb_tid;   /* the thread its callback ran on */
	char msg[512];
	int close_in_cb; /* the callback closes its handle */
	int close_rc;
};
#define OP_MAGIC 0x6f70u

static void op_init(struct op *o)
{
	memset(o, 0, sizeof *o);
	o->magic = OP_MAGIC;
	pthread_mutex_init(&o->mu, NULL);
	pthread_cond_init(&o->cv, NULL);
	o->starter = tid();
	o->rc = 1;
}

static void op_destroy(struct op *o)
{
	pthread_mutex_destroy(&o->mu);
	pthread_cond_destroy(&o->cv);
}

static void on_done(int handle, int rc, const char *msg, void *user)
{
	struct op *o = user;

	enter_cb();
	atomic_fetch_add(&callbacks, 1);
	if (o->magic != OP_MAGIC) {
		fprintf(stderr, "FAIL: callback with a wrong user pointer %p\n", user);
		failures++;
		leave_cb();
		return;
	}
	if (o->close_in_cb)
		o->close_rc = vscsi_close(handle);
	pthread_mutex_lock(&o->mu);
	o->done++;
	o->rc = rc;
	o->handle = handle;
	o->cb_tid = tid();
	snprintf(o->msg, sizeof o->msg, "%s", msg ? msg : "(null)");
	pthread_cond_broadcast(&o->cv);
	pthread_mutex_unlock(&o->mu);
	leave_cb();
}

/* op_wait waits up to secs for the callback; returns its rc (1: none). */
static int op_wait(struct op *o, int secs)
{
	struct timespec dl;
	int rc;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += secs;
	pthread_mutex_lock(&o->mu);
	while (!o->done && pthread_cond_timedwait(&o->cv, &o->mu, &dl) == 0)
		;
	rc = o->done ? o->rc : 1;
	pthread_mutex_unlock(&o->mu);
	return rc;
}

static void op_check(struct op *o, int h, const char *what)
{
	CHECK(o->done == 1, "%s: callback ran %d times", what, o->done);
	CHECK(o->handle == h, "%s: callback handle %d, want %d", what, o->handle, h);
	CHECK(o->cb_tid != o->starter, "%s: callback ran on the starting thread", what);
	CHECK(o->rc != 0 || strcmp(o->msg, "") == 0, "%s: success with a message '%s'", what, o->msg);
}

/* vhost_of is the devid of domain's vhost serving vdev host idx (-1: none). */
static int vhost_of(int h, const char *domain, int idx)
{
	char *json = NULL, key[32], *p;
	int v = -1;

	if (vscsi_list(h, domain, &json) != 0 || !json)
		return -1;
	snprintf(key, sizeof key, "\"idx\": %d,", idx);
	p = strstr(json, key);
	while (p && p > json && strncmp(p, "\"vhost\": ", 9) != 0)
		p--;
	if (p && p > json)
		v = atoi(p + 9);
	vscsi_free(json);
	return v;
}

/* ---- several threads, one shared handle ---- */

static int shared_h;

struct worker {
	int n;
	int ok;
};

static void *worker(void *arg)
{
	struct worker *w = arg;
	char pdev[64], vdev[32], what[64];
	int r;

	snprintf(pdev, sizeof pdev, WWN ":%d", w->n);
	snprintf(vdev, sizeof vdev, "%d:0:0:0", w->n + 1); /* one vhost per thread */
	for (r = 0; r < ROUNDS; r++) {
		struct op o;
		vscsi_async_how how;
		char *json = NULL;
		int rc;

		op_init(&o);
		how.callback = on_done;
		how.user = &o;
		snprintf(what, sizeof what, "thread %d round %d attach", w->n, r);
		rc = vscsi_attach_async(shared_h, "guest5", pdev, vdev, &how);
		CHECK(rc == 0, "%s: start rc %d", what, rc);
		rc = op_wait(&o, 60);
		CHECK(rc == 0, "%s: rc %d: %s", what, rc, o.msg);
		op_check(&o, shared_h, what);
		op_destroy(&o);

		rc = vscsi_list(shared_h, "guest5", &json);
		CHECK(rc == 0 && json && strstr(json, vdev), "%s: list: %s", what, json ? json : "");
		vscsi_free(json);

		op_init(&o);
		how.user = &o;
		snprintf(what, sizeof what, "thread %d round %d detach", w->n, r);
		rc = vscsi_detach_async(shared_h, "guest5", vdev, &how);
		CHECK(rc == 0, "%s: start rc %d", what, rc);
		rc = op_wait(&o, 60);
		CHECK(rc == 0, "%s: rc %d: %s", what, rc, o.msg);
		op_check(&o, shared_h, what);
		op_destroy(&o);

		op_init(&o);
		how.user = &o;
		snprintf(what, sizeof what, "thread %d round %d destroy", w->n, r);
		int vhost = vhost_of(shared_h, "guest5", w->n + 1);
		CHECK(vhost >= 0, "%s: no vhost for idx %d", what, w->n + 1);
		rc = vscsi_destroy_vhost_async(shared_h, "guest5", vhost, &how);
		CHECK(rc == 0, "%s: start rc %d", what, rc);
		rc = op_wait(&o, 60);
		CHECK(rc == 0, "%s: rc %d: %s", what, rc, o.msg);
		op_check(&o, shared_h, what);
		op_destroy(&o);
	}
	w->ok = 1;
	return NULL;
}

/* ---- events ---- */

#define MAXKEYS 256
struct evlog {
	unsigned magic;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int n;              /* events seen */
	int gone;           /* DOMAIN_GONE seen (for its domid) */
	int after_gone;     /* events of that domain after its DOMAIN_GONE */
	int errors;         /* ERROR events */
	int broken;         /* events that do not continue their node's history */
	struct { unsigned domid; int vhost, dev, side, state; } last[MAXKEYS];
	int nkeys;
};
#define EV_MAGIC 0x65766cu

static void evlog_init(struct evlog *l)
{
	memset(l, 0, sizeof *l);
	l->magic = EV_MAGIC;
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, NULL);
}

static int *state_of(struct evlog *l, unsigned domid, int vhost, int dev, int side)
{
	int i;
	for (i = 0; i < l->nkeys; i++)
		if (l->last[i].domid == domid && l->last[i].vhost == vhost && l->last[i].dev == dev &&
		    l->last[i].side == side)
			return &l->last[i].state;
	if (l->nkeys == MAXKEYS)
		return NULL;
	l->last[l->nkeys].domid = domid;
	l->last[l->nkeys].vhost = vhost;
	l->last[l->nkeys].dev = dev;
	l->last[l->nkeys].side = side;
	l->last[l->nkeys].state = 0;
	return &l->last[l->nkeys++].state;
}

static struct evlog *trace_all;

static void on_event(int handle, const vscsi_event *ev, void *user)
{
	struct evlog *l = user;
	int *st;

	(void)handle;
	enter_cb();
	if (l->magic != EV_MAGIC || ev->size < sizeof *ev) {
		fprintf(stderr, "FAIL: event with a wrong user pointer or size\n");
		failures++;
		leave_cb();
		return;
	}
	pthread_mutex_lock(&l->mu);
	l->n++;
	if (getenv("TEST_ASYNC_TRACE"))
		fprintf(stderr, "trace %s: type %d dom%u vhost%d dev%d side%d %d->%d vdev %s\n",
			l == trace_all ? "all" : "sub", ev->type, ev->domid, ev->vhost, ev->dev, ev->side,
			ev->old_state, ev->state, ev->vdev ? ev->vdev : "-");
	switch (ev->type) {
	case VSCSI_EVENT_DOMAIN_GONE:
		l->gone++;
		break;
	case VSCSI_EVENT_ERROR:
		l->errors++;
		fprintf(stderr, "event ERROR %d: %s\n", ev->state, ev->errmsg ? ev->errmsg : "");
		break;
	case VSCSI_EVENT_VHOST_STATE:
	case VSCSI_EVENT_DEVICE_STATE:
		if (l->gone)
			l->after_gone++;
		if ((ev->type == VSCSI_EVENT_DEVICE_STATE) != (ev->vdev != NULL && ev->dev >= 0) ||
		    ev->backend_type == NULL)
			l->broken++;
		st = state_of(l, ev->domid, ev->vhost, ev->dev, ev->side);
		if (st) {
			if (*st != ev->old_state || ev->state == ev->old_state) {
				fprintf(stderr, "event dom%u vhost%d dev%d side%d %d->%d after state %d\n", ev->domid,
					ev->vhost, ev->dev, ev->side, ev->old_state, ev->state, *st);
				l->broken++;
			}
			*st = ev->state;
		}
		break;
	default:
		l->broken++;
	}
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
	leave_cb();
}

/* ev_wait waits up to secs until the state of a node is want. */
static int ev_wait(struct evlog *l, unsigned domid, int vhost, int dev, int side, int want, int secs)
{
	struct timespec dl;
	int ok = 0;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += secs;
	pthread_mutex_lock(&l->mu);
	for (;;) {
		int *st = state_of(l, domid, vhost, dev, side);
		if (st && *st == want) {
			ok = 1;
			break;
		}
		if (pthread_cond_timedwait(&l->cv, &l->mu, &dl) != 0)
			break;
	}
	pthread_mutex_unlock(&l->mu);
	return ok;
}

static int ev_wait_gone(struct evlog *l, int secs)
{
	struct timespec dl;
	int ok;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += secs;
	pthread_mutex_lock(&l->mu);
	while (!l->gone && pthread_cond_timedwait(&l->cv, &l->mu, &dl) == 0)
		;
	ok = l->gone;
	pthread_mutex_unlock(&l->mu);
	return ok;
}

/* ---- logging ---- */

struct logctx {
	atomic_int n, bad_level, named;
};

static void on_log(int level, const char *msg, void *user)
{
	struct logctx *c = user;
	atomic_fetch_add(&c->n, 1);
	if (level < VSCSI_LOG_DEBUG || level > VSCSI_LOG_ERROR)
		atomic_fetch_add(&c->bad_level, 1);
	if (strncmp(msg, "govscsi", 7) == 0)
		atomic_fetch_add(&c->named, 1);
}

static int sh(const char *cmd)
{
	int rc = system(cmd);
	if (rc != 0)
		fprintf(stderr, "'%s' exited %d\n", cmd, rc);
	return rc;
}

int main(void)
{
	int h = -1, ha = -1, hc = -1, rc, base_g, i, n;
	pthread_t th[NTHREADS];
	struct worker w[NTHREADS];
	vscsi_async_how how;
	struct op o;
	struct evlog all, one, g8;
	vscsi_evsub *sub_all = NULL, *sub_one = NULL, *sub8 = NULL;
	struct logctx lc = {0};
	char *json = NULL;

	base_g = vscsi_debug_goroutines();
	CHECK(vscsi_api_version() == 4 && GOVSCSI_API_VERSION == 4, "api version %d", vscsi_api_version());
	CHECK(vscsi_debug_pointers() == 0, "pointers at load: %d", vscsi_debug_pointers());

	/* Log callback: bad level refused; debug messages arrive. */
	CHECK(vscsi_set_log(on_log, 9, &lc) == -EINVAL, "set_log with level 9");
	CHECK(vscsi_set_log(on_log, VSCSI_LOG_DEBUG, &lc) == 0, "set_log");

	rc = vscsi_open("timeout: 30s\n", &h);
	CHECK(rc == 0, "open rc %d: %s", rc, errmsg(0));
	shared_h = h;

	/* Starting errors: no callback, the message on the handle. */
	op_init(&o);
	how.callback = on_done;
	how.user = &o;
	CHECK(vscsi_attach_async(h, NULL, WWN ":0", "0:0:0:0", &how) == -EINVAL, "NULL domain");
	CHECK(strstr(errmsg(h), "NULL") != NULL, "NULL domain message %s", errmsg(h));
	CHECK(vscsi_attach_async(999, "guest5", WWN ":0", "0:0:0:0", &how) == -EBADF, "bad handle");
	CHECK(vscsi_destroy_vhost_async(h, "guest5", -1, &how) == -EINVAL, "negative vhost");
	CHECK(vscsi_abort(h, &how) == -ENOENT, "abort with nothing pending");
	CHECK(vscsi_abort(h, NULL) == -EINVAL, "abort NULL how");
	CHECK(vscsi_evenable(h, "guest5", NULL, NULL, &sub_one) == -EINVAL, "evenable NULL fn");
	CHECK(vscsi_evenable(h, "nosuch", on_event, &one, &sub_one) == -ESRCH, "evenable of a missing domain");
	CHECK(vscsi_evdisable(h, (vscsi_evsub *)&o) == -EBADF, "evdisable of a pointer that is no subscription");
	usleep(100000);
	CHECK(o.done == 0, "a callback ran for an operation that did not start");
	op_destroy(&o);

	/* Subscriptions: every domain, and guest5 alone (from here on, every
	 * change is an event; the state before is 0 for everything). */
	evlog_init(&all);
	evlog_init(&one);
	trace_all = &all;
	rc = vscsi_evenable(h, NULL, on_event, &all, &sub_all);
	CHECK(rc == 0 && sub_all, "evenable all rc %d: %s", rc, errmsg(h));
	rc = vscsi_evenable(h, "guest5", on_event, &one, &sub_one);
	CHECK(rc == 0 && sub_one, "evenable guest5 rc %d: %s", rc, errmsg(h));
	CHECK(vscsi_debug_pointers() == 2, "pointers with two subscriptions: %d", vscsi_debug_pointers());

	/* Synchronous through the _async entry points (how NULL / callback NULL). */
	rc = vscsi_attach_async(h, "guest5", WWN ":9", "9:0:0:0", NULL);
	CHECK(rc == 0, "synchronous attach_async rc %d: %s", rc, errmsg(h));
	how.callback = NULL;
	rc = vscsi_attach_async(h, "guest5", WWN ":9", "9:0:0", &how);
	CHECK(rc == -EINVAL && strstr(errmsg(h), "9:0:0"), "synchronous bad attach rc %d: %s", rc, errmsg(h));
	rc = vscsi_list(h, "guest5", &json);
	CHECK(rc == 0 && json && strstr(json, "\"v_dev\": \"9:0:0:0\""), "after the synchronous attach: %s", json ? json : "");
	vscsi_free(json);
	json = NULL;

	/* Several threads, one handle: attach, detach, destroy, in rounds. */
	for (i = 0; i < NTHREADS; i++) {
		w[i].n = i;
		w[i].ok = 0;
		pthread_create(&th[i], NULL, worker, &w[i]);
	}
	for (i = 0; i < NTHREADS; i++) {
		pthread_join(th[i], NULL);
		CHECK(w[i].ok, "thread %d did not finish", i);
	}
	printf("%d threads x %d rounds: %d completion callbacks\n", NTHREADS, ROUNDS, atomic_load(&callbacks));
	CHECK(atomic_load(&callbacks) == NTHREADS * ROUNDS * 3, "callbacks %d", atomic_load(&callbacks));

	/* Events of the synchronous vhost (9:0:0:0 on its own vhost) as it goes. */
	int v9 = vhost_of(h, "guest5", 9);
	CHECK(v9 >= 0, "no vhost for 9:0:0:0");
	rc = vscsi_destroy_vhost(h, "guest5", v9);
	CHECK(rc == 0, "destroy vhost %d: %s", v9, errmsg(h));
	CHECK(ev_wait(&one, 5, v9, -1, VSCSI_SIDE_BACKEND, 0, 20), "guest5 subscription: vhost %d never gone", v9);
	CHECK(ev_wait(&all, 5, v9, -1, VSCSI_SIDE_BACKEND, 0, 20), "all-domain subscription: vhost %d never gone", v9);
	pthread_mutex_lock(&one.mu);
	n = one.n;
	pthread_mutex_unlock(&one.mu);
	printf("events: %d for guest5, %d for every domain\n", n, all.n);
	/* every thread's vhost came up (state 4 seen) and went (0) */
	CHECK(n >= NTHREADS * ROUNDS * 4, "only %d guest5 events", n);
	CHECK(one.broken == 0 && all.broken == 0, "events out of history: %d, %d", one.broken, all.broken);
	CHECK(one.errors == 0 && all.errors == 0, "ERROR events");

	/* After evdisable, nothing more for it. */
	CHECK(vscsi_evdisable(h, sub_one) == 0, "evdisable guest5");
	CHECK(vscsi_evdisable(h, sub_one) == -EBADF, "second evdisable");
	rc = vscsi_attach(h, "guest5", WWN ":8", "8:0:0:0");
	CHECK(rc == 0, "attach after evdisable: %s", errmsg(h));
	/* once the other subscription has its events, the disabled one's would
	 * have run too (one callback thread, in order) */
	int v8 = vhost_of(h, "guest5", 8);
	CHECK(ev_wait(&all, 5, v8, 0, VSCSI_SIDE_FRONTEND, 4, 20), "all-domain subscription: 8:0:0:0 not seen");
	pthread_mutex_lock(&one.mu);
	CHECK(one.n == n, "%d events after evdisable", one.n - n);
	pthread_mutex_unlock(&one.mu);

	/* A domain that goes: guest8, made here. */
	CHECK(sh("xenstore-write /local/domain/8/name guest8 /local/domain/8/device ''") == 0, "make guest8");
	evlog_init(&g8);
	rc = vscsi_evenable(h, "guest8", on_event, &g8, &sub8);
	CHECK(rc == 0, "evenable guest8 rc %d: %s", rc, errmsg(h));
	CHECK(sh("xenstore-write /local/domain/0/backend/vscsi/8/0/state 1 /local/domain/8/device/vscsi/0/state 1") == 0, "guest8 vhost");
	CHECK(ev_wait(&g8, 8, 0, -1, VSCSI_SIDE_FRONTEND, 1, 20), "guest8: no frontend state 1");
	CHECK(sh("xenstore-rm /local/domain/8 /local/domain/0/backend/vscsi/8") == 0, "remove guest8");
	CHECK(ev_wait_gone(&g8, 20), "guest8: no DOMAIN_GONE");
	usleep(300000);
	CHECK(g8.after_gone == 0, "guest8: %d events after DOMAIN_GONE", g8.after_gone);
	CHECK(vscsi_evdisable(h, sub8) == 0, "evdisable guest8 after it went");

	/* Abort: guest7's frontend never answers, so the attach waits. */
	rc = vscsi_open("timeout: 60s\n", &ha);
	CHECK(rc == 0, "open 2: %s", errmsg(0));
	op_init(&o);
	how.callback = on_done;
	how.user = &o;
	rc = vscsi_attach_async(ha, "guest7", WWN ":7", "0:0:0:0", &how);
	CHECK(rc == 0, "attach guest7 start rc %d", rc);
	usleep(500000);
	CHECK(o.done == 0, "guest7's attach finished without a frontend: rc %d %s", o.rc, o.msg);
	vscsi_async_how other = { on_done, &lc };
	CHECK(vscsi_abort(ha, &other) == -ENOENT, "abort with another user pointer");
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK(vscsi_abort(ha, &how) == 0, "abort");
	rc = op_wait(&o, 30);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK(rc == -ECANCELED, "aborted attach rc %d: %s", rc, o.msg);
	op_check(&o, ha, "aborted attach");
	printf("abort: the callback came %.2f s after vscsi_abort (%s)\n",
	       (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9, o.msg);
	op_destroy(&o);
	rc = vscsi_list(ha, "guest7", &json);
	CHECK(rc == 0 && json && strcmp(json, "[]\n") == 0, "guest7 after the abort: %s", json ? json : "");
	vscsi_free(json);
	json = NULL;

	/* vscsi_close with an operation pending: its callback has run when
	 * close returns, with -ECANCELED. */
	op_init(&o);
	how.user = &o;
	rc = vscsi_attach_async(ha, "guest7", WWN ":7", "0:0:0:0", &how);
	CHECK(rc == 0, "attach guest7 (2) start rc %d", rc);
	usleep(300000);
	CHECK(vscsi_close(ha) == 0, "close with a pending operation");
	CHECK(o.done == 1 && o.rc == -ECANCELED, "after close: callback %d times, rc %d %s", o.done, o.rc, o.msg);
	op_destroy(&o);
	CHECK(vscsi_attach_async(ha, "guest5", WWN ":0", "0:0:0:0", &how) == -EBADF, "async on a closed handle");

	/* vscsi_close from the operation's own callback. */
	rc = vscsi_open(NULL, &hc);
	CHECK(rc == 0, "open 3: %s", errmsg(0));
	op_init(&o);
	o.close_in_cb = 1;
	how.user = &o;
	rc = vscsi_attach_async(hc, "guest5", WWN ":6", "6:0:0:0", &how);
	CHECK(rc == 0, "attach (close in callback) start rc %d", rc);
	rc = op_wait(&o, 60);
	CHECK(rc == 0, "attach (close in callback) rc %d %s", rc, o.msg);
	CHECK(o.close_rc == 0, "vscsi_close in the callback: %d", o.close_rc);
	op_destroy(&o);
	CHECK(vscsi_close(hc) == -EBADF, "the handle closed in its callback is gone");

	/* Clean up guest5: the two vhosts made synchronously above. */
	json = NULL;
	vscsi_list(h, "guest5", &json);
	if (json) {
		char *p = json;
		while ((p = strstr(p, "\"vhost\": ")) != NULL) {
			int v = atoi(p + 9);
			rc = vscsi_destroy_vhost(h, "guest5", v);
			CHECK(rc == 0, "destroy vhost %d: %s", v, errmsg(h));
			p += 9;
		}
		vscsi_free(json);
	}

	CHECK(vscsi_evdisable(h, sub_all) == 0, "evdisable all");
	CHECK(all.broken == 0, "every-domain events out of history: %d", all.broken);
	CHECK(vscsi_close(h) == 0, "close");

	n = atomic_load(&lc.n);
	printf("log callback: %d messages (%d named govscsi...)\n", n, atomic_load(&lc.named));
	CHECK(n > 0 && atomic_load(&lc.named) == n, "log messages %d, named %d", n, atomic_load(&lc.named));
	CHECK(atomic_load(&lc.bad_level) == 0, "log messages below the level asked for");
	CHECK(vscsi_set_log(NULL, 0, NULL) == 0, "set_log off");
	rc = vscsi_open(NULL, &h);
	CHECK(rc == 0, "open 4");
	CHECK(vscsi_attach(h, "guest5", WWN ":5", "5:0:0:0") == 0, "attach with no log callback: %s", errmsg(h));
	CHECK(vscsi_destroy_vhost(h, "guest5", vhost_of(h, "guest5", 5)) == 0, "destroy: %s", errmsg(h));
	vscsi_close(h);
	CHECK(atomic_load(&lc.n) == n, "%d log messages after set_log(NULL)", atomic_load(&lc.n) - n);

	CHECK(atomic_load(&overlap) == 0, "callbacks ran concurrently %d times", atomic_load(&overlap));
	CHECK(vscsi_open_handles() == 0, "handles leaked: %d", vscsi_open_handles());
	CHECK(vscsi_debug_pointers() == 0, "go-pointer entries leaked: %d", vscsi_debug_pointers());
	/* the callback thread ends once nothing is pending */
	for (i = 0; i < 100 && vscsi_debug_goroutines() > base_g; i++)
		usleep(20000);
	CHECK(vscsi_debug_goroutines() == base_g, "goroutines %d, %d at load", vscsi_debug_goroutines(), base_g);
	return verdict();
}
