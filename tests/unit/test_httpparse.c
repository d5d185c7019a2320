/*
 * test_httpparse.c — the daemon's parsing of request text (src/daemon/httpparse.c): the
 * route lookup (every route found by its own method and path, 404 and 405 told apart,
 * captures) and, as regression tests, the inputs tests/fuzz/ found, which also live in
 * tests/fuzz/corpus/.
 */
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static void
free_captures(char *c[HTTP_MAX_CAPTURES])
{
	int i;

	for (i = 0; i < HTTP_MAX_CAPTURES; i++) {
		free(c[i]);
		c[i] = NULL;
	}
}

static void
every_route_is_found(void **state)
{
	static const struct {
		const char *method, *path, *pattern, *cap0, *cap1;
	} t[] = {
		{"GET", "/v1/requests", "/v1/requests", NULL, NULL},
		{"POST", "/v1/requests", "/v1/requests", NULL, NULL},
		{"GET", "/v1/requests/req_1", "/v1/requests/*", "req_1", NULL},
		{"POST", "/v1/requests/req_1/approve", "/v1/requests/*/approve", "req_1", NULL},
		{"POST", "/v1/requests/req_1/deny", "/v1/requests/*/deny", "req_1", NULL},
		{"POST", "/v1/requests/req_1/cancel", "/v1/requests/*/cancel", "req_1", NULL},
		{"POST", "/v1/requests/req_1/revoke", "/v1/requests/*/revoke", "req_1", NULL},
		{"POST", "/v1/requests/req_1/extend", "/v1/requests/*/extend", "req_1", NULL},
		{"GET", "/v1/requests/req_1/credentials", "/v1/requests/*/credentials", "req_1",
		    NULL},
		{"POST", "/v1/requests/req_1/sessions", "/v1/requests/*/sessions", "req_1", NULL},
		{"POST", "/v1/requests/req_1/sessions/s-9/terminate",
		    "/v1/requests/*/sessions/*/terminate", "req_1", "s-9"},
		{"POST", "/v1/revoke", "/v1/revoke", NULL, NULL},
		{"GET", "/approve/tok", "/approve/*", "tok", NULL},
		{"POST", "/approve/tok", "/approve/*", "tok", NULL},
		{"GET", "/static/elevate.css", "/static/elevate.css", NULL, NULL},
		{"GET", "/healthz", "/healthz", NULL, NULL},
		{"GET", "/metrics", "/metrics", NULL, NULL},
		{"GET", "/v1/audit", "/v1/audit", NULL, NULL},
	};
	char *c[HTTP_MAX_CAPTURES] = {0};
	const struct route *rt;
	size_t i;
	int known;

	(void)state;
	for (i = 0; i < NELEM(t); i++) {
		rt = http_route_find(t[i].method, t[i].path, c, &known);
		if (rt == NULL)
			fail_msg("%s %s: no route", t[i].method, t[i].path);
		assert_string_equal(rt->method, t[i].method);
		assert_string_equal(rt->pattern, t[i].pattern);
		if (t[i].cap0 != NULL)
			assert_string_equal(c[0], t[i].cap0);
		else
			assert_null(c[0]);
		if (t[i].cap1 != NULL)
			assert_string_equal(c[1], t[i].cap1);
		else
			assert_null(c[1]);
		free_captures(c);
	}
}

static void
unknown_paths_and_methods(void **state)
{
	static const char *const none[] = {
		"", "/", "/v1", "/v1/requests/", "/v1/requests//approve", "/approve/",
		"/approve/a/b", "/v1/requests/a/sessions//terminate", "/healthz/", "//healthz",
		"/v1/requests/a/sessions/b/terminate/", "/HEALTHZ",
	};
	char *c[HTTP_MAX_CAPTURES] = {0};
	size_t i;
	int known;

	(void)state;
	for (i = 0; i < NELEM(none); i++) {
		known = -1;
		if (http_route_find("GET", none[i], c, &known) != NULL)
			fail_msg("GET \"%s\" found a route", none[i]);
		assert_int_equal(known, 0);
		assert_null(c[0]);
		assert_null(c[1]);
		if (http_route_find("POST", none[i], c, &known) != NULL)
			fail_msg("POST \"%s\" found a route", none[i]);
	}
	/* The path exists with another method: 405, not 404, and no capture kept. */
	assert_null(http_route_find("DELETE", "/v1/requests/req_1", c, &known));
	assert_int_equal(known, 1);
	assert_null(c[0]);
	assert_null(http_route_find("GET", "/v1/requests/req_1/approve", c, &known));
	assert_int_equal(known, 1);
	assert_null(http_route_find("get", "/healthz", c, &known));
	assert_int_equal(known, 1);
}

/* Bytes the heap holds for the program (0 under ASan, whose leak check takes over). */
static size_t
heap_in_use(void)
{
	return mallinfo2().uordblks;
}

/* tests/fuzz/corpus/route/leak-empty-second-capture: a path that matched the first '*'
 * of /v1/requests/{*}/sessions/{*}/terminate and had an empty second segment lost the
 * first capture (a bare return in match()): 17 bytes per request, before any signature
 * check. The answer was right (404), so only the heap shows it. */
static void
no_capture_lost_on_a_failed_match(void **state)
{
	static const char *const paths[] = {
		"/v1/requests/req_4kT9xQ2mLp7w/sessions//terminate2c3d4e5f67890/terminate",
		"/v1/requests/req_1/sessions//terminate",
		"/v1/requests/req_1/sessions/",
	};
	char *c[HTTP_MAX_CAPTURES] = {0};
	size_t before, after, i;
	int n, known;

	(void)state;
	for (i = 0; i < NELEM(paths); i++) {
		assert_null(http_route_find("POST", paths[i], c, &known));
		assert_int_equal(known, 0);
		assert_null(c[0]);
		assert_null(c[1]);
	}
	before = heap_in_use();
	for (n = 0; n < 1000; n++)
		for (i = 0; i < NELEM(paths); i++)
			assert_null(http_route_find("POST", paths[i], c, &known));
	after = heap_in_use();
	if (after > before + 1024)
		fail_msg("3000 failed lookups kept %zu bytes", after - before);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_route_is_found),
		cmocka_unit_test(unknown_paths_and_methods),
		cmocka_unit_test(no_capture_lost_on_a_failed_match),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
