/*
 * test_httpparse.c — the daemon's parsing of request text (src/daemon/httpparse.c): the
 * query-string / form decoder (decoding, last value wins, every kind of malformed
 * input), the route lookup (every route found by its own method and path, 404 and 405
 * told apart, captures) and, as regression tests, the inputs tests/fuzz/ found, which
 * also live in tests/fuzz/corpus/.
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
#include <jansson.h>

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

/* The form as compact JSON with sorted keys, or NULL when it is refused. */
static char *
form(const char *s, size_t len)
{
	json_t *o = http_parse_form(s, len);
	char *out;

	if (o == NULL)
		return NULL;
	out = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	assert_non_null(out);
	return out;
}

static void
assert_form(const char *s, const char *want)
{
	char *got = form(s, strlen(s));

	if (got == NULL)
		fail_msg("\"%s\" refused, wanted %s", s, want);
	if (strcmp(got, want) != 0)
		fail_msg("\"%s\" gave %s, wanted %s", s, got, want);
	free(got);
}

static void
form_decoding(void **state)
{
	(void)state;
	assert_form("", "{}");
	assert_form("state=pending&mine=1", "{\"mine\":\"1\",\"state\":\"pending\"}");
	assert_form("since=2026-11-22T03%3A26%3A00Z",
	    "{\"since\":\"2026-11-22T03:26:00Z\"}");
	assert_form("comment=looks+good%2c+ship+it&decision=approve",
	    "{\"comment\":\"looks good, ship it\",\"decision\":\"approve\"}");
	assert_form("c=caf%C3%A9", "{\"c\":\"caf\u00e9\"}");
	assert_form("a=1&a=2", "{\"a\":\"2\"}");                 /* last value wins */
	assert_form("a&b=", "{\"a\":\"\",\"b\":\"\"}");
	assert_form("=x&&a=1&", "{\"a\":\"1\"}");               /* empty keys skipped */
	assert_form("a=b=c", "{\"a\":\"b=c\"}");
	assert_form("%26=%3D", "{\"&\":\"=\"}");
}

static void
form_malformed(void **state)
{
	static const char *const bad[] = {
		"%", "a=%", "a=%4", "a=%4g", "a=%g4", "a=%00", "%00=1", "a=1&b=%",
		"a=%C3", "a=%ff", "a=%ED%A0%80", "a=\xc3", "%FF=1", "b\xa6" "c=1",
	};
	size_t i;
	char *got;

	(void)state;
	for (i = 0; i < NELEM(bad); i++)
		if ((got = form(bad[i], strlen(bad[i]))) != NULL)
			fail_msg("\"%s\" accepted as %s", bad[i], got);
}

/* tests/fuzz/corpus/form/crash-nul-byte: a NUL byte in a form body (the approval page
 * posts one; a query string is cut at its first NUL before) was kept, so C cut the value
 * short there: "decision=approve\0deny" was an approval. Only %00 was refused. */
static void
form_nul_byte_refused(void **state)
{
	static const char found[] = "user=alice&p\xff\xff\xff\xff\xff\xff\xff\0rod-admin&"
	    "event=request.created&since=2026-11-22T03%3A26%3A00Z&limit=50";
	static const char approve[] = "decision=approve\0deny";
	static const char comment[] = "comment=ok\0<hidden>&decision=approve";

	(void)state;
	assert_null(form(found, sizeof(found) - 1));
	assert_null(form(approve, sizeof(approve) - 1));
	assert_null(form(comment, sizeof(comment) - 1));
	assert_null(form("\0", 1));
	assert_null(form("=\0", 2));
}

/* tests/fuzz/corpus/form/crash-non-utf8-key: a key that is not UTF-8 was dropped without
 * a word (jansson refuses it as a key), while such a value refused the whole input. */
static void
form_non_utf8_key_refused(void **state)
{
	static const char found[] = "a=1&a=2&&=x&b\xa6" "c=&d=%1D%26";

	(void)state;
	assert_null(form(found, sizeof(found) - 1));
	assert_null(form("%FF=1", 5));
	assert_null(form("decision=approve&%C3=1", 22));
}

/* tests/fuzz/corpus/form/empty-key-non-utf8-value: not a bug (the harness's reference
 * was stricter than the contract) but the rule it pins down: a pair with an empty key is
 * skipped whole, whatever UTF-8 its value holds; a bad escape still refuses. */
static void
form_empty_key_pair_skipped(void **state)
{
	char found[64], *got;

	(void)state;
	memcpy(found, "a=1&&=x=a", 9);
	memset(found + 9, 0xac, 45);
	memcpy(found + 54, "&2&b&=26", 8);
	got = form(found, 62);
	assert_non_null(got);
	assert_string_equal(got, "{\"2\":\"\",\"a\":\"1\",\"b\":\"\"}");
	free(got);
	assert_form("=%FF", "{}");
	assert_null(form("=%F", 3));
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
		cmocka_unit_test(form_decoding),
		cmocka_unit_test(form_malformed),
		cmocka_unit_test(form_nul_byte_refused),
		cmocka_unit_test(form_non_utf8_key_refused),
		cmocka_unit_test(form_empty_key_pair_skipped),
		cmocka_unit_test(every_route_is_found),
		cmocka_unit_test(unknown_paths_and_methods),
		cmocka_unit_test(no_capture_lost_on_a_failed_match),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
