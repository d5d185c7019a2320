/*
 * test_httpframe.c — the privilege-separation messages (src/daemon/frame.c, link.c, msg.c):
 * frames over a real socketpair (split writes, a passed descriptor, the ceiling, an end
 * inside a frame), read one at a time and read ahead (several in one read, one larger than
 * the read-ahead buffer), a link with senders on several threads, the table of what each
 * process accepts, and the call and reply payloads: a call is a request for the route
 * its type names or nothing, with every ceiling.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <pthread.h>

#include "frame.h"
#include "link.h"
#include "msg.h"

static struct config cfg;

static void
pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
}

static void
frames_round_trip(void **state)
{
	int sv[2], pv[2];
	struct frame f;
	struct stat a, b;
	char big[100000];

	(void)state;
	pair(sv);
	pair(pv);
	memset(big, 'x', sizeof(big));
	assert_int_equal(frame_send(sv[0], MSG_CALL + 3, 7, "{}", 2, -1), EL_OK);
	assert_int_equal(frame_send(sv[0], CTL_LINK, 0, NULL, 0, pv[0]), EL_OK);
	assert_int_equal(frame_send(sv[0], MSG_REPLY | (MSG_CALL + 3), 7, big, sizeof(big), -1),
	    EL_OK);
	assert_int_equal(frame_recv(sv[1], &f, NULL), EL_OK);
	assert_int_equal(f.type, MSG_CALL + 3);
	assert_int_equal(f.id, 7);
	assert_int_equal(f.len, 2);
	assert_string_equal(f.payload, "{}");
	assert_int_equal(f.fd, -1);
	frame_free(&f);
	assert_int_equal(frame_recv(sv[1], &f, NULL), EL_OK);
	assert_int_equal(f.type, CTL_LINK);
	assert_null(f.payload);
	assert_true(f.fd >= 0);
	/* the descriptor that came is the one that was sent */
	assert_int_equal(fstat(f.fd, &a), 0);
	assert_int_equal(fstat(pv[0], &b), 0);
	assert_int_equal(a.st_ino, b.st_ino);
	frame_free(&f);
	assert_int_equal(frame_recv(sv[1], &f, NULL), EL_OK);
	assert_int_equal(f.len, sizeof(big));
	assert_memory_equal(f.payload, big, sizeof(big));
	frame_free(&f);
	close(sv[0]);
	assert_int_equal(frame_recv(sv[1], &f, NULL), EL_ENOENT);   /* a clean end */
	close(sv[1]);
	close(pv[0]);
	close(pv[1]);
}

static void
frames_bounded(void **state)
{
	int sv[2];
	unsigned char h[FRAME_HEADER];
	uint32_t type = MSG_CALL, id = 1, len = FRAME_MAX + 1;
	struct frame f;
	size_t used;
	struct el_why w = {{0}};

	(void)state;
	/* a header claiming more than the ceiling is refused before any allocation */
	memcpy(h, &type, 4);
	memcpy(h + 4, &id, 4);
	memcpy(h + 8, &len, 4);
	pair(sv);
	assert_int_equal(write(sv[0], h, sizeof(h)), (ssize_t)sizeof(h));
	assert_int_equal(frame_recv(sv[1], &f, &w), EL_ETOOBIG);
	assert_non_null(strstr(w.msg, "ceiling"));
	assert_int_equal(frame_parse(h, sizeof(h), &f, &used), EL_ETOOBIG);
	close(sv[0]);
	close(sv[1]);
	/* a peer that goes away inside a frame */
	len = 10;
	memcpy(h + 8, &len, 4);
	pair(sv);
	assert_int_equal(write(sv[0], h, sizeof(h)), (ssize_t)sizeof(h));
	assert_int_equal(write(sv[0], "abc", 3), 3);
	close(sv[0]);
	assert_int_equal(frame_recv(sv[1], &f, &w), EL_EIO);
	close(sv[1]);
	assert_int_equal(frame_parse(h, sizeof(h), &f, &used), EL_EINVAL);   /* a part */
	assert_int_equal(frame_send(-1, 1, 1, "x", FRAME_MAX + 1u, -1), EL_ETOOBIG);
}

/* A payload from fields (NULL: absent) and a body, as msg.h spells it; caller frees. */
static char *
fields(size_t *len, const char *body, size_t blen, size_t n, ...)
{
	char *out = malloc(4096), *p = out;
	const char *f;
	uint32_t l;
	va_list ap;
	size_t i;

	va_start(ap, n);
	for (i = 0; i < n; i++) {
		f = va_arg(ap, const char *);
		l = f != NULL ? (uint32_t)strlen(f) : MSG_ABSENT;
		memcpy(p, &l, 4);
		p += 4;
		if (f != NULL) {
			memcpy(p, f, strlen(f));
			p += strlen(f);
		}
	}
	va_end(ap);
	memcpy(p, body, blen);
	*len = (size_t)(p - out) + blen;
	return out;
}

/* Frames written in one go are read ahead in one read and taken one by one; a frame is
 * whole before it is handed on, however the bytes arrive. */
static void
frames_read_ahead(void **state)
{
	int sv[2], pv[2];
	struct frame_in in;
	struct frame f;
	struct el_why w = {{0}};
	unsigned char h[FRAME_HEADER], *big;
	size_t i, bigl = FRAME_IN_BUF * 3 + 17;
	int fds;

	(void)state;
	pair(sv);
	pair(pv);
	assert_int_equal(frame_in_init(&in), EL_OK);
	for (i = 0; i < 5; i++)
		assert_int_equal(frame_send(sv[0], MSG_CALL + 1, (uint32_t)i, "abc", 3, -1), EL_OK);
	assert_false(frame_in_ready(&in));
	for (i = 0; i < 5; i++) {
		assert_int_equal(frame_in_next(sv[1], &in, &f, &w), EL_OK);
		assert_int_equal(f.id, i);
		assert_int_equal(f.len, 3);
		assert_string_equal(f.payload, "abc");
		assert_int_equal(f.fd, -1);
		frame_free(&f);
		/* all five came in the first read */
		assert_true(frame_in_ready(&in) == (i < 4));
	}
	/* a header and a payload cut anywhere, across writes */
	frame_put_header(h, MSG_CALL + 2, 9, 6);
	assert_int_equal(write(sv[0], h, 5), 5);
	assert_int_equal(write(sv[0], h + 5, FRAME_HEADER - 5), FRAME_HEADER - 5);
	assert_int_equal(write(sv[0], "he", 2), 2);
	assert_false(frame_in_ready(&in));
	assert_int_equal(write(sv[0], "llo!", 4), 4);
	assert_int_equal(frame_in_next(sv[1], &in, &f, &w), EL_OK);
	assert_int_equal(f.type, MSG_CALL + 2);
	assert_memory_equal(f.payload, "hello!", 7);
	frame_free(&f);
	/* larger than the read-ahead buffer, behind a small one, a descriptor with it */
	big = malloc(bigl);
	for (i = 0; i < bigl; i++)
		big[i] = (unsigned char)(i * 7);
	assert_int_equal(frame_send(sv[0], MSG_CALL + 3, 1, "x", 1, -1), EL_OK);
	assert_int_equal(frame_send(sv[0], MSG_CALL + 3, 2, big, bigl, pv[0]), EL_OK);
	assert_int_equal(frame_send(sv[0], MSG_CALL + 3, 3, NULL, 0, -1), EL_OK);
	assert_int_equal(frame_in_next(sv[1], &in, &f, &w), EL_OK);
	assert_int_equal(f.id, 1);
	fds = f.fd >= 0;
	frame_free(&f);
	assert_int_equal(frame_in_next(sv[1], &in, &f, &w), EL_OK);
	assert_int_equal(f.id, 2);
	assert_int_equal(f.len, bigl);
	assert_memory_equal(f.payload, big, bigl);
	fds += f.fd >= 0;
	frame_free(&f);
	assert_int_equal(frame_in_next(sv[1], &in, &f, &w), EL_OK);
	assert_int_equal(f.id, 3);
	assert_null(f.payload);
	assert_int_equal(f.fd, -1);
	frame_free(&f);
	/* the descriptor went with a frame taken from the read it came with (the first read
	 * may hold the small frame and the start of the big one), for its reader to refuse */
	assert_int_equal(fds, 1);
	free(big);
	/* a clean end between frames */
	close(sv[0]);
	assert_int_equal(frame_in_next(sv[1], &in, &f, &w), EL_ENOENT);
	frame_in_free(&in);
	close(sv[1]);
	/* an end inside a frame; a length over the ceiling, refused before any allocation */
	pair(sv);
	assert_int_equal(frame_in_init(&in), EL_OK);
	frame_put_header(h, MSG_CALL, 1, 10);
	assert_int_equal(write(sv[0], h, sizeof(h)), (ssize_t)sizeof(h));
	assert_int_equal(write(sv[0], "abc", 3), 3);
	close(sv[0]);
	assert_int_equal(frame_in_next(sv[1], &in, &f, &w), EL_EIO);
	assert_non_null(strstr(w.msg, "inside a frame"));
	frame_in_free(&in);
	close(sv[1]);
	pair(sv);
	assert_int_equal(frame_in_init(&in), EL_OK);
	frame_put_header(h, MSG_CALL, 1, 10);
	memcpy(h + 8, &(uint32_t){FRAME_MAX + 1}, 4);
	assert_int_equal(write(sv[0], h, sizeof(h)), (ssize_t)sizeof(h));
	assert_int_equal(frame_in_next(sv[1], &in, &f, &w), EL_ETOOBIG);
	assert_non_null(strstr(w.msg, "ceiling"));
	frame_in_free(&in);
	close(sv[0]);
	close(sv[1]);
	close(pv[0]);
	close(pv[1]);
}

/* A link with senders on several threads at once: every frame arrives once, whole, with
 * its own payload, whoever wrote it (its sender, or another's write turn). */
#define SENDERS 4
#define PER_SENDER 2000

struct got {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned char seen[SENDERS][PER_SENDER];
	int n, bad, ended;
};

static bool
got_frame(void *cls, struct link *l, struct frame *f)
{
	struct got *g = cls;
	uint32_t who = f->type - MSG_CALL, i = f->id;
	char want[64];

	(void)l;
	snprintf(want, sizeof(want), "sender %u frame %u", who, i);
	pthread_mutex_lock(&g->mu);
	if (who >= SENDERS || i >= PER_SENDER || g->seen[who][i] || f->payload == NULL ||
	    strcmp(f->payload, want) != 0 || f->len != strlen(want) + (i % 3) * 1000)
		g->bad++;
	else
		g->seen[who][i] = 1;
	g->n++;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
	frame_free(f);
	return true;
}

static void
got_end(void *cls, struct link *l)
{
	struct got *g = cls;

	(void)l;
	pthread_mutex_lock(&g->mu);
	g->ended = 1;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

struct sender {
	struct link *l;
	uint32_t who;
};

static void *
send_many(void *arg)
{
	struct sender *s = arg;
	char buf[64 + 2000];
	uint32_t i;
	size_t n;

	for (i = 0; i < PER_SENDER; i++) {
		memset(buf, 0, sizeof(buf));
		n = (size_t)snprintf(buf, 64, "sender %u frame %u", s->who, i);
		if (link_send(s->l, MSG_CALL + s->who, i, buf, n + (i % 3) * 1000) != EL_OK)
			break;
	}
	return NULL;
}

static bool
drop_frame(void *cls, struct link *l, struct frame *f)
{
	(void)cls;
	(void)l;
	frame_free(f);
	return true;
}

static void
drop_end(void *cls, struct link *l)
{
	(void)cls;
	(void)l;
}

static void
link_senders_share_it(void **state)
{
	static struct got g;
	struct sender s[SENDERS];
	pthread_t t[SENDERS];
	struct link *a, *b;
	int sv[2], i;

	(void)state;
	memset(&g, 0, sizeof(g));
	pthread_mutex_init(&g.mu, NULL);
	pthread_cond_init(&g.cv, NULL);
	pair(sv);
	assert_non_null(a = link_start(sv[0], drop_frame, drop_end, NULL));
	assert_non_null(b = link_start(sv[1], got_frame, got_end, &g));
	for (i = 0; i < SENDERS; i++) {
		s[i].l = a;
		s[i].who = (uint32_t)i;
		assert_int_equal(pthread_create(&t[i], NULL, send_many, &s[i]), 0);
	}
	for (i = 0; i < SENDERS; i++)
		pthread_join(t[i], NULL);
	pthread_mutex_lock(&g.mu);
	while (g.n < SENDERS * PER_SENDER && !g.ended)
		pthread_cond_wait(&g.cv, &g.mu);
	pthread_mutex_unlock(&g.mu);
	assert_int_equal(g.n, SENDERS * PER_SENDER);
	assert_int_equal(g.bad, 0);
	/* the peer gone: a send fails, and the reader ends the link */
	link_close(b);
	pthread_mutex_lock(&g.mu);
	while (!g.ended)
		pthread_cond_wait(&g.cv, &g.mu);
	pthread_mutex_unlock(&g.mu);
	link_unref(b);
	for (i = 0; i < 100 && link_send(a, MSG_CALL, 1, "x", 1) == EL_OK; i++)
		;
	assert_int_equal(link_send(a, MSG_CALL, 1, "x", 1), EL_EIO);
	link_unref(a);
}

static void
who_accepts_what(void **state)
{
	size_t n = http_route_count();

	(void)state;
	assert_true(n > 10 && n < MSG_CALLS);
	/* the engine takes calls of existing routes from the front, nothing else */
	assert_true(frame_accepts(FR_ENGINE, MSG_CALL, n));
	assert_true(frame_accepts(FR_ENGINE, MSG_CALL + (uint32_t)n - 1, n));
	assert_false(frame_accepts(FR_ENGINE, MSG_CALL + (uint32_t)n, n));
	assert_false(frame_accepts(FR_ENGINE, MSG_REPLY | MSG_CALL, n));
	assert_false(frame_accepts(FR_ENGINE, CTL_LINK, n));
	assert_false(frame_accepts(FR_ENGINE, CTL_READY, n));
	/* the front takes replies only */
	assert_true(frame_accepts(FR_FRONT, MSG_REPLY | MSG_CALL, n));
	assert_false(frame_accepts(FR_FRONT, MSG_CALL, n));
	assert_false(frame_accepts(FR_FRONT, CTL_LINK, n));
	/* control messages go one way each */
	assert_true(frame_accepts(FR_CHILD, CTL_LINK, n));
	assert_true(frame_accepts(FR_CHILD, CTL_RELOAD, n));
	assert_false(frame_accepts(FR_CHILD, CTL_READY, n));
	assert_true(frame_accepts(FR_PARENT, CTL_READY, n));
	assert_true(frame_accepts(FR_PARENT, CTL_BADPEER, n));
	assert_false(frame_accepts(FR_PARENT, CTL_LINK, n));
	assert_false(frame_accepts(FR_PARENT, MSG_CALL, n));
	assert_false(frame_accepts(FR_PARENT, 0, n));
}

static const struct route *
route_of(const char *method, const char *path)
{
	char *c[HTTP_MAX_CAPTURES] = {NULL, NULL};
	const struct route *rt;
	int known;

	rt = http_route_find(method, path, c, &known);
	free(c[0]);
	free(c[1]);
	assert_non_null(rt);
	return rt;
}

static void
calls_name_their_route(void **state)
{
	const struct route *show = route_of("GET", "/v1/requests/x"),
	    *revoke = route_of("POST", "/v1/requests/x/revoke");
	struct http_req rq, got;
	char *p;
	size_t len;
	struct el_why w = {{0}};

	(void)state;
	memset(&rq, 0, sizeof(rq));
	assert_int_equal(http_req_init(&rq, &cfg, "POST", "/v1/requests/r-1/revoke?x=1"), EL_OK);
	el_strlcpy(rq.peer, "192.0.2.7", sizeof(rq.peer));
	rq.sig_user = strdup("alice");
	rq.sig_signature = strdup("ed25519=AAAA");
	assert_int_equal(dbuf_add(&rq.body, "{\"reason\":\"x\0y\"}", 16), EL_OK);
	assert_non_null(p = msg_call_encode(&rq, &len));
	/* decoded for its own route: the same request, bytes for bytes */
	memset(&got, 0, sizeof(got));
	assert_int_equal(msg_call_decode(p, len, revoke, &cfg, &got, &w), EL_OK);
	assert_string_equal(got.method, "POST");
	assert_string_equal(got.path, "/v1/requests/r-1/revoke");
	assert_string_equal(got.query, "x=1");
	assert_string_equal(got.captures[0], "r-1");
	assert_string_equal(got.peer, "192.0.2.7");
	assert_string_equal(got.sig_user, "alice");
	assert_null(got.sig_date);
	assert_int_equal(got.body.len, 16);
	assert_memory_equal(got.body.p, "{\"reason\":\"x\0y\"}", 16);
	http_req_free(&got);
	/* sent as another route's call: refused (a front cannot turn a signed revoke into
	 * anything else, nor the other way round) */
	memset(&got, 0, sizeof(got));
	assert_int_equal(msg_call_decode(p, len, show, &cfg, &got, &w), EL_EINVAL);
	assert_non_null(strstr(w.msg, "is not a request for"));
	http_req_free(&got);
	free(p);
	/* a body over limits.max_body */
	dbuf_free(&rq.body);
	dbuf_init(&rq.body, (size_t)cfg.max_body + 10);
	{
		char *big = calloc(1, (size_t)cfg.max_body + 1);
		assert_int_equal(dbuf_add(&rq.body, big, (size_t)cfg.max_body + 1), EL_OK);
		free(big);
	}
	assert_non_null(p = msg_call_encode(&rq, &len));
	memset(&got, 0, sizeof(got));
	assert_int_not_equal(msg_call_decode(p, len, revoke, &cfg, &got, &w), EL_OK);
	http_req_free(&got);
	free(p);
	http_req_free(&rq);
	/* shapes that are not calls */
	{
		const struct route *hz = route_of("GET", "/healthz");
		struct {
			char *p;
			size_t len;
		} bad[10];
		char *good;
		size_t i, glen, nbad = 0;

		good = fields(&glen, "", 0, 7, "GET", "/healthz", "x", NULL, NULL, NULL, NULL);
		bad[nbad].p = fields(&bad[nbad].len, "", 0, 0);   /* nothing */
		nbad++;
		/* a field cut short, or fields missing */
		bad[nbad].p = fields(&bad[nbad].len, "", 0, 7, "GET", "/healthz", "x", NULL,
		    NULL, NULL, NULL);
		bad[nbad].len -= 1;
		nbad++;
		bad[nbad].p = fields(&bad[nbad].len, "", 0, 3, "GET", "/healthz", "x");
		nbad++;
		/* method, uri and peer are required */
		bad[nbad].p = fields(&bad[nbad].len, "", 0, 7, "GET", "/healthz", NULL, NULL,
		    NULL, NULL, NULL);
		nbad++;
		/* a field longer than what follows it */
		bad[nbad].p = fields(&bad[nbad].len, "", 0, 1, "GET");
		memcpy(bad[nbad].p, &(uint32_t){100}, 4);
		nbad++;
		/* a NUL, bytes that are not UTF-8, a method over 15 bytes */
		bad[nbad].p = fields(&bad[nbad].len, "", 0, 7, "GET", "/healthz", "x", "al", NULL,
		    NULL, NULL);
		bad[nbad].p[4 + 3 + 4 + 8 + 4 + 1 + 4 + 1] = '\0';
		nbad++;
		bad[nbad].p = fields(&bad[nbad].len, "", 0, 7, "GET", "/healthz", "x", "\xc3\x28",
		    NULL, NULL, NULL);
		nbad++;
		bad[nbad].p = fields(&bad[nbad].len, "", 0, 7, "GETGETGETGETGETG", "/healthz",
		    "x", NULL, NULL, NULL, NULL);
		nbad++;
		for (i = 0; i < nbad; i++) {
			memset(&got, 0, sizeof(got));
			assert_int_equal(msg_call_decode(bad[i].p, bad[i].len, hz, &cfg, &got, &w),
			    EL_EINVAL);
			http_req_free(&got);
			free(bad[i].p);
		}
		memset(&got, 0, sizeof(got));
		assert_int_equal(msg_call_decode(good, glen, hz, &cfg, &got, &w), EL_OK);
		assert_int_equal(got.body.len, 0);
		assert_null(got.sig_user);
		http_req_free(&got);
		free(good);
	}
}

static void
replies_round_trip(void **state)
{
	struct http_req rq, got;
	char *p;
	size_t len;

	(void)state;
	memset(&rq, 0, sizeof(rq));
	assert_int_equal(http_req_init(&rq, &cfg, "GET", "/x"), EL_OK);
	http_page(&rq, 429, "text/html; charset=utf-8", strdup("<p>\xc3\xa9</p>"));
	rq.reply.retry_after = 3;
	assert_non_null(p = msg_reply_encode(&rq.reply, &len));
	memset(&got, 0, sizeof(got));
	assert_int_equal(msg_reply_decode(p, len, &got), EL_OK);
	assert_int_equal(got.reply.status, 429);
	assert_string_equal(got.reply.type, "text/html; charset=utf-8");
	assert_string_equal(got.reply.body, "<p>\xc3\xa9</p>");
	assert_int_equal(got.reply.retry_after, 3);
	free(p);
	http_req_free(&got);
	http_req_free(&rq);
	/* not replies: no status, one out of range or not a number, a retry_after of 0,
	 * fields cut short */
	{
		char *bad[6];
		size_t blen[6], i;

		bad[0] = fields(&blen[0], "", 0, 3, NULL, NULL, NULL);
		bad[1] = fields(&blen[1], "", 0, 3, "42", NULL, NULL);
		bad[2] = fields(&blen[2], "", 0, 3, "2OO", NULL, NULL);
		bad[3] = fields(&blen[3], "", 0, 3, "200", NULL, "0");
		bad[4] = fields(&blen[4], "", 0, 2, "200", NULL);
		bad[5] = fields(&blen[5], "", 0, 3, "200", "text/html", NULL);
		blen[5] = 4 + 3 + 4 + 2;
		for (i = 0; i < 6; i++) {
			memset(&got, 0, sizeof(got));
			assert_int_equal(msg_reply_decode(bad[i], blen[i], &got), EL_EINVAL);
			assert_false(got.answered);
			free(bad[i]);
		}
	}
	/* the body is every byte after the fields, NULs and all */
	p = fields(&len, "a\0b", 3, 3, "200", NULL, NULL);
	memset(&got, 0, sizeof(got));
	assert_int_equal(msg_reply_decode(p, len, &got), EL_OK);
	assert_int_equal(got.reply.status, 200);
	assert_null(got.reply.type);
	assert_int_equal(got.reply.retry_after, 0);
	assert_int_equal(got.reply.len, 3);
	assert_memory_equal(got.reply.body, "a\0b", 4);
	http_req_free(&got);
	free(p);
	p = fields(&len, "", 0, 3, "204", NULL, NULL);
	memset(&got, 0, sizeof(got));
	assert_int_equal(msg_reply_decode(p, len, &got), EL_OK);
	assert_int_equal(got.reply.len, 0);
	assert_string_equal(got.reply.body, "");
	http_req_free(&got);
	free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(frames_round_trip),
		cmocka_unit_test(frames_bounded),
		cmocka_unit_test(frames_read_ahead),
		cmocka_unit_test(link_senders_share_it),
		cmocka_unit_test(who_accepts_what),
		cmocka_unit_test(calls_name_their_route),
		cmocka_unit_test(replies_round_trip),
	};
	struct diags d;

	diags_init(&d);
	if (config_load(NULL, &cfg, &d) != EL_OK)
		return 1;
	diags_free(&d);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
