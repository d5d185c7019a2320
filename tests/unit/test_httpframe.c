/*
 * test_httpframe.c — the privilege-separation messages (src/daemon/frame.c, msg.c): frames
 * over a real socketpair (split writes, a passed descriptor, the ceiling, an end inside a
 * frame), the table of what each process accepts, and the call and reply payloads: a
 * call is a request for the route its type names or nothing, with every ceiling.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "frame.h"
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
	/* shapes that are not calls (each with its NUL and an empty body) */
	{
		static const char good[] = "{\"method\":\"GET\",\"uri\":\"/healthz\","
		    "\"peer\":\"x\"}";
		static const char *const bad[] = {
			"", "[]", "{}", "{\"method\":1}", "{\"method\":\"GET\"",
			"{\"method\":\"GET\",\"uri\":\"/healthz\"}",
			"{\"method\":\"GET\",\"uri\":\"/healthz\",\"peer\":\"x\",\"peer\":\"y\"}",
			"{\"method\":\"GET\",\"uri\":\"/healthz\",\"peer\":\"x\",\"user\":7}",
		};
		size_t i;
		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			memset(&got, 0, sizeof(got));
			assert_int_equal(msg_call_decode(bad[i], strlen(bad[i]) + 1,
			    route_of("GET", "/healthz"), &cfg, &got, &w), EL_EINVAL);
			http_req_free(&got);
		}
		/* the same call is one with its NUL, none without */
		memset(&got, 0, sizeof(got));
		assert_int_equal(msg_call_decode(good, sizeof(good), route_of("GET", "/healthz"),
		    &cfg, &got, &w), EL_OK);
		assert_int_equal(got.body.len, 0);
		http_req_free(&got);
		memset(&got, 0, sizeof(got));
		assert_int_equal(msg_call_decode(good, sizeof(good) - 1,
		    route_of("GET", "/healthz"), &cfg, &got, &w), EL_EINVAL);
		http_req_free(&got);
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
	memset(&got, 0, sizeof(got));
	assert_int_equal(msg_reply_decode("{\"status\":42}\0", 14, &got), EL_EINVAL);
	assert_int_equal(msg_reply_decode("{\"status\":200}", 14, &got), EL_EINVAL);   /* no NUL */
	assert_int_equal(msg_reply_decode("{\"status\":200,\"status\":201}\0", 29, &got),
	    EL_EINVAL);
	assert_false(got.answered);
	/* the body is every byte after the NUL, NULs and all */
	assert_int_equal(msg_reply_decode("{\"status\":200}\0a\0b", 18, &got), EL_OK);
	assert_int_equal(got.reply.len, 3);
	assert_memory_equal(got.reply.body, "a\0b", 4);
	http_req_free(&got);
	memset(&got, 0, sizeof(got));
	assert_int_equal(msg_reply_decode("{\"status\":200}\0", 15, &got), EL_OK);
	assert_int_equal(got.reply.len, 0);
	assert_string_equal(got.reply.body, "");
	http_req_free(&got);
	memset(&got, 0, sizeof(got));
	assert_int_equal(msg_reply_decode("{\"status\":200}", 14, &got), EL_EINVAL);
	assert_false(got.answered);
	http_req_free(&got);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(frames_round_trip),
		cmocka_unit_test(frames_bounded),
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
