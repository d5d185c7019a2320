/*
 * test_util.c — the shared helpers of el.h as their callers rely on them: duration and
 * time parsing/formatting, strict base64, dbuf ceilings, strict integers, bounded copies.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "elevate/el.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- lists ---- */

static void
split_list_splits_and_refuses(void **state)
{
	static const char *const bad[] = {
		"", ",", "a,", ",a", "a,,b", "a,b,a", "a,b,c,d", "abcdefghi", "a,abcdefghi",
	};
	struct el_why w;
	char **v = NULL;
	size_t n = 99, i;

	(void)state;
	assert_int_equal(el_split_list("prod-readonly,billing", ',', 3, 8 + 5, &v, &n, &w),
	    EL_OK);
	assert_int_equal(n, 2);
	assert_string_equal(v[0], "prod-readonly");
	assert_string_equal(v[1], "billing");
	el_strv_free(v, n);
	assert_int_equal(el_split_list("one", ',', 3, 8, &v, &n, &w), EL_OK);
	assert_int_equal(n, 1);
	assert_string_equal(v[0], "one");
	el_strv_free(v, n);
	assert_int_equal(el_split_list("a,b,c", ',', 3, 8, &v, &n, &w), EL_OK);
	assert_int_equal(n, 3);
	el_strv_free(v, n);
	for (i = 0; i < NELEM(bad); i++) {
		v = NULL;
		n = 99;
		memset(&w, 0, sizeof(w));
		if (el_split_list(bad[i], ',', 3, 8, &v, &n, &w) != EL_EINVAL)
			fail_msg("el_split_list(\"%s\") accepted", bad[i]);
		assert_null(v);
		assert_int_equal(n, 0);
		assert_true(w.msg[0] != '\0');
	}
	assert_int_equal(el_split_list("a,b,a", ',', 3, 8, &v, &n, &w), EL_EINVAL);
	assert_non_null(strstr(w.msg, "a is named twice"));
	assert_int_equal(el_split_list("a,b,c,d", ',', 3, 8, &v, &n, &w), EL_EINVAL);
	assert_non_null(strstr(w.msg, "more than 3"));
}

/* ---- durations ---- */

static void
duration_accepts(void **state)
{
	static const struct {
		const char *in;
		int64_t secs;
	} ok[] = {
		{"90s", 90}, {"15m", 900}, {"1h30m", 5400}, {"1d", 86400}, {"2h", 7200},
		{"3600", 3600}, {"1d2h3m4s", 93784}, {"1h0m", 3600}, {"366d", 366LL * 86400},
		{"1", 1}, {"45s", 45},
	};
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(ok); i++) {
		int64_t secs = -1;

		if (el_parse_duration(ok[i].in, &secs) != EL_OK)
			fail_msg("el_parse_duration(\"%s\") refused", ok[i].in);
		if (secs != ok[i].secs)
			fail_msg("el_parse_duration(\"%s\") = %lld, want %lld", ok[i].in,
			    (long long)secs, (long long)ok[i].secs);
	}
}

static void
duration_refuses(void **state)
{
	static const char *const bad[] = {
		"", "0", "0s", "0h0m", "1h30", "30m1h", "1x", "-5m", "+5m", "1h1h", "367d",
		"31622401", "1.5h", "h", " 5m", "5m ", "5 m", "1d1d", "5M", "1w",
		"000000000000000000000000000000090s",   /* longer than 32 characters */
		"99999999999999999999999999d",
	};
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(bad); i++) {
		int64_t secs = 4242;

		if (el_parse_duration(bad[i], &secs) == EL_OK)
			fail_msg("el_parse_duration(\"%s\") accepted as %lld", bad[i],
			    (long long)secs);
		/* A refused input must not leave a half-parsed value behind. */
		assert_int_equal(secs, 4242);
	}
	assert_int_equal(el_parse_duration(NULL, &(int64_t){0}), EL_EINVAL);
}

static void
duration_format(void **state)
{
	static const struct {
		int64_t secs;
		const char *out;
	} v[] = {
		{90, "1m30s"}, {5400, "1h30m"}, {86400, "1d"}, {45, "45s"}, {3600, "1h"},
		{93784, "1d2h3m4s"}, {0, "0s"}, {900, "15m"}, {86401, "1d1s"},
	};
	char buf[32];
	int64_t back, s;
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(v); i++) {
		el_format_duration(v[i].secs, buf, sizeof(buf));
		assert_string_equal(buf, v[i].out);
	}
	/* What we print, we parse back to the same number (the CLI echoes durations). */
	for (s = 1; s <= 366LL * 86400; s = s * 3 + 7) {
		el_format_duration(s, buf, sizeof(buf));
		assert_int_equal(el_parse_duration(buf, &back), EL_OK);
		assert_int_equal(back, s);
	}
	/* Small buffers truncate, never overflow. */
	el_format_duration(93784, buf, 4);
	assert_string_equal(buf, "1d2");
}

/* ---- times ---- */

#define T_2026 1795317960LL   /* 2026-11-22T03:26:00Z (date -u -d ... +%s) */

static void
time_parse_accepts(void **state)
{
	static const char *const ok[] = {
		"2026-11-22T03:26:00Z", "2026-11-22T03:26:00.000Z", "2026-11-22T03:26:00.999Z",
		"2026-11-22T03:26:00+00:00", "2026-11-22T03:26:00.123+00:00",
	};
	int64_t t;
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(ok); i++) {
		t = 0;
		if (el_parse_time(ok[i], &t) != EL_OK)
			fail_msg("el_parse_time(\"%s\") refused", ok[i]);
		/* Milliseconds are dropped, never rounded up into the next second. */
		assert_int_equal(t, T_2026);
	}
	assert_int_equal(el_parse_time("1970-01-01T00:00:01Z", &t), EL_OK);
	assert_int_equal(t, 1);
	assert_int_equal(el_parse_time("2000-02-29T12:00:00Z", &t), EL_OK);
	assert_int_equal(t, 951825600LL);
}

static void
time_parse_offsets(void **state)
{
	int64_t t = 0;

	(void)state;
	assert_int_equal(el_parse_time_offset("2026-11-22T12:26:00+09:00", &t), EL_OK);
	assert_int_equal(t, T_2026);
	assert_int_equal(el_parse_time_offset("2026-11-21T22:26:00-05:00", &t), EL_OK);
	assert_int_equal(t, T_2026);
	assert_int_equal(el_parse_time_offset("2026-11-22T03:26:00Z", &t), EL_OK);
	assert_int_equal(t, T_2026);
	assert_int_equal(el_parse_time_offset("2026-11-22T08:56:00.5+05:30", &t), EL_OK);
	assert_int_equal(t, T_2026);
	assert_int_equal(el_parse_time_offset("2026-11-22T03:26:00+25:00", &t), EL_EINVAL);
	assert_int_equal(el_parse_time_offset("2026-11-22T03:26:00+0900", &t), EL_EINVAL);
	assert_int_equal(el_parse_time_offset("2026-11-22T03:26:00", &t), EL_EINVAL);
	assert_int_equal(el_parse_time_offset("2026-02-30T03:26:00+01:00", &t), EL_EINVAL);
	/* the plain parser keeps refusing offsets (signed dates are UTC) */
	assert_int_equal(el_parse_time("2026-11-22T12:26:00+09:00", &t), EL_EINVAL);
}

static void
time_parse_refuses(void **state)
{
	static const char *const bad[] = {
		"", "garbage", "2026-11-22T03:26:00", "2026-11-22T03:26:00+01:00",
		"2026-11-22T03:26:00-05:00", "2026-11-22T03:26:00+0000", "2026-11-22 03:26:00Z",
		"2026-11-22T03:26:00Zjunk", "2026-11-22T03:26:00 Z", "2026-13-01T00:00:00Z",
		"2026-11-22T25:00:00Z", "2026-11-22T03:61:00Z", "2026-11-22", "03:26:00Z",
		"2026-11-22T03:26:00.abcZ", "2026-11-22T03:26Z",
	};
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(bad); i++) {
		int64_t t = 4242;

		if (el_parse_time(bad[i], &t) == EL_OK)
			fail_msg("el_parse_time(\"%s\") accepted as %lld", bad[i], (long long)t);
		assert_int_equal(t, 4242);
	}
	assert_int_equal(el_parse_time(NULL, &(int64_t){0}), EL_EINVAL);
}

/*
 * el.h promises "YYYY-MM-DDTHH:MM:SS[.fff]Z". Dates that do not exist must be refused, not
 * silently moved (Feb 30 becoming Mar 2), and only that exact shape may pass: the date is
 * signed and logged as text, and two spellings of one instant make the log ambiguous.
 */
static void
time_parse_refuses_noncanonical(void **state)
{
	static const char *const bad[] = {
		"2026-02-30T00:00:00Z",     /* no such day: strptime+timegm gives Mar 2 */
		"2026-11-31T00:00:00Z",
		"2026-11-22T03:26:60Z",     /* second 60 becomes the next minute */
		" 2026-11-22T03:26:00Z",    /* leading blank */
		"2026-1-2T3:4:5Z",          /* unpadded fields */
		"2026-11-22T03:26:00.Z",    /* dot without digits */
	};
	size_t i, accepted = 0;

	(void)state;
	for (i = 0; i < NELEM(bad); i++) {
		int64_t t = 4242;

		/* Name every offender, then fail once. */
		if (el_parse_time(bad[i], &t) == EL_OK) {
			print_error("el_parse_time(\"%s\") accepted as %lld\n", bad[i], (long long)t);
			accepted++;
		}
	}
	assert_int_equal(accepted, 0);
}

static void
time_format(void **state)
{
	char buf[32];
	int64_t t, back;

	(void)state;
	el_format_time(0, buf, sizeof(buf));
	assert_string_equal(buf, "1970-01-01T00:00:00Z");
	el_format_time(T_2026, buf, sizeof(buf));
	assert_string_equal(buf, "2026-11-22T03:26:00Z");
	assert_int_equal(strlen(buf), 20);
	el_format_time(951825600LL, buf, 21);   /* the documented minimum size */
	assert_string_equal(buf, "2000-02-29T12:00:00Z");
	for (t = 0; t < 4102444800LL; t += 86400LL * 97 + 3607) {
		el_format_time(t, buf, sizeof(buf));
		assert_int_equal(el_parse_time(buf, &back), EL_OK);
		assert_int_equal(back, t);
	}
	/* Now is now: within a second of time(2), and ms agrees with s. */
	t = el_now();
	assert_true(el_now_ms() / 1000 - t <= 1 && el_now_ms() / 1000 - t >= 0);
}

/* ---- base64 ---- */

/* The table encoder writes exactly what libsodium's constant-time one writes. */
static void
b64_public_matches(void **state)
{
	unsigned char raw[300];
	char *a, *b;
	size_t len;

	(void)state;
	randombytes_buf(raw, sizeof(raw));
	for (len = 0; len <= sizeof(raw); len++) {
		a = el_b64_encode(raw, len);
		b = el_b64_encode_public(raw, len);
		assert_non_null(a);
		assert_non_null(b);
		assert_string_equal(a, b);
		free(a);
		free(b);
	}
	memset(raw, 0xff, sizeof(raw));   /* every index of the table's last entries */
	a = el_b64_encode(raw, 7);
	b = el_b64_encode_public(raw, 7);
	assert_string_equal(a, b);
	free(a);
	free(b);
}

static void
b64_round_trip(void **state)
{
	unsigned char raw[300], out[300];
	size_t len, n;
	char *e;

	(void)state;
	e = el_b64_encode((const unsigned char *)"hello", 5);
	assert_non_null(e);
	assert_string_equal(e, "aGVsbG8=");
	assert_int_equal(el_b64_decode(e, out, sizeof(out), &n), EL_OK);
	assert_int_equal(n, 5);
	assert_memory_equal(out, "hello", 5);
	free(e);

	raw[0] = 0xfb;
	raw[1] = 0xff;
	e = el_b64_encode(raw, 2);
	assert_string_equal(e, "+/8=");
	free(e);
	e = el_b64url_encode(raw, 2);
	assert_string_equal(e, "-_8");   /* url alphabet, no padding */
	assert_int_equal(el_b64url_decode(e, out, sizeof(out), &n), EL_OK);
	assert_int_equal(n, 2);
	assert_memory_equal(out, raw, 2);
	free(e);

	e = el_b64_encode(raw, 0);
	assert_string_equal(e, "");
	assert_int_equal(el_b64_decode(e, out, sizeof(out), &n), EL_OK);
	assert_int_equal(n, 0);
	free(e);

	for (len = 0; len < sizeof(raw); len++) {
		raw[len] = (unsigned char)(len * 37 + 11);
		e = el_b64_encode(raw, len + 1);
		assert_int_equal(el_b64_decode(e, out, sizeof(out), &n), EL_OK);
		assert_int_equal(n, len + 1);
		assert_memory_equal(out, raw, len + 1);
		free(e);
		e = el_b64url_encode(raw, len + 1);
		assert_null(strchr(e, '='));
		assert_int_equal(el_b64url_decode(e, out, sizeof(out), &n), EL_OK);
		assert_int_equal(n, len + 1);
		assert_memory_equal(out, raw, len + 1);
		free(e);
	}
}

static void
b64_strict(void **state)
{
	static const char *const bad_std[] = {
		"aGVsbG8",       /* padding missing */
		"aGVsbG8==",     /* too much padding */
		"aGVs bG8=",     /* blank inside */
		"aGVsbG8=\n",    /* trailing newline */
		" aGVsbG8=",
		"aGVsbG9=",      /* non-zero trailing bits: not the canonical form */
		"-_8=",          /* url alphabet in standard base64 */
		"aGVsbG8=aGVs",  /* data after padding */
		"a===", "=", "!!!!",
	};
	static const char *const bad_url[] = {
		"-_8=",          /* padding in the unpadded variant */
		"+/8",           /* standard alphabet */
		"-_9",           /* non-zero trailing bits */
		"a", "-_8\n", "-_ 8",
	};
	unsigned char out[64];
	size_t i, n;

	(void)state;
	for (i = 0; i < NELEM(bad_std); i++)
		if (el_b64_decode(bad_std[i], out, sizeof(out), &n) == EL_OK)
			fail_msg("el_b64_decode(\"%s\") accepted", bad_std[i]);
	for (i = 0; i < NELEM(bad_url); i++)
		if (el_b64url_decode(bad_url[i], out, sizeof(out), &n) == EL_OK)
			fail_msg("el_b64url_decode(\"%s\") accepted", bad_url[i]);
	assert_int_not_equal(el_b64_decode(NULL, out, sizeof(out), &n), EL_OK);
	/* The output capacity is a ceiling, not a hint. */
	assert_int_not_equal(el_b64_decode("aGVsbG8=", out, 4, &n), EL_OK);
	assert_int_equal(el_b64_decode("aGVsbG8=", out, 5, &n), EL_OK);
	assert_int_equal(n, 5);
}

/*
 * libsodium 1.0.18's decoder reads the text through a signed char, so every byte >= 0x80
 * decodes as if it were '/' (or '_' in base64url): "QUJD\xa9\xa9\xa9\xa9" yields
 * 41 42 43 ff ff ff. el.h promises strict decoding; such text must be refused.
 */
static void
b64_refuses_non_ascii(void **state)
{
	static const char *const bad[] = {
		"QUJD\xa9\xa9\xa9\xa9", "\xff\xff\xff\xff", "QUJD\x80\x80\x80\x80",
		"QU\xc3\xa9JD",
	};
	unsigned char out[64];
	size_t i, n, accepted = 0;

	(void)state;
	for (i = 0; i < NELEM(bad); i++) {
		if (el_b64_decode(bad[i], out, sizeof(out), &n) == EL_OK) {
			print_error("el_b64_decode accepted non-ASCII input %zu\n", i);
			accepted++;
		}
		if (el_b64url_decode(bad[i], out, sizeof(out), &n) == EL_OK) {
			print_error("el_b64url_decode accepted non-ASCII input %zu\n", i);
			accepted++;
		}
	}
	assert_int_equal(accepted, 0);
}

static void
hex_lower(void **state)
{
	const unsigned char in[] = {0x00, 0x9f, 0xab, 0xff};
	char out[9];

	(void)state;
	el_hex(in, sizeof(in), out);
	assert_string_equal(out, "009fabff");
	el_hex(in, 0, out);
	assert_string_equal(out, "");
}

/* ---- dbuf ---- */

static void
dbuf_ceiling(void **state)
{
	struct dbuf b;
	char *s;

	(void)state;
	dbuf_init(&b, 10);
	assert_int_equal(dbuf_adds(&b, "12345"), EL_OK);
	assert_int_equal(dbuf_adds(&b, "678901"), EL_ETOOBIG);
	/* The refused append left the content exactly as it was. */
	assert_int_equal(b.len, 5);
	assert_string_equal(b.p, "12345");
	assert_int_equal(dbuf_printf(&b, "%s-%d", "abcdef", 7), EL_ETOOBIG);
	assert_int_equal(b.len, 5);
	assert_string_equal(b.p, "12345");
	assert_int_equal(dbuf_adds(&b, "67890"), EL_OK);   /* exactly the ceiling */
	assert_int_equal(b.len, 10);
	assert_string_equal(b.p, "1234567890");
	assert_int_equal(dbuf_add(&b, "x", 1), EL_ETOOBIG);
	assert_int_equal(dbuf_printf(&b, "%s", ""), EL_OK);
	assert_string_equal(b.p, "1234567890");
	assert_true(b.cap <= 11);   /* never allocates beyond the ceiling */
	dbuf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.p, "");
	assert_int_equal(dbuf_printf(&b, "%d:%s", 42, "ab"), EL_OK);
	assert_string_equal(b.p, "42:ab");
	s = dbuf_take(&b);
	assert_string_equal(s, "42:ab");
	assert_null(b.p);
	assert_int_equal(b.len, 0);
	free(s);
	dbuf_free(&b);

	/* Binary content with NULs is counted by len and still terminated. */
	dbuf_init(&b, 1 << 20);
	assert_int_equal(dbuf_add(&b, "a\0b", 3), EL_OK);
	assert_int_equal(b.len, 3);
	assert_int_equal(b.p[3], '\0');
	{
		char big[5000];
		int i;

		memset(big, 'z', sizeof(big));
		for (i = 0; i < 100; i++)
			assert_int_equal(dbuf_add(&b, big, sizeof(big)), EL_OK);
		assert_int_equal(b.len, 3 + 100 * sizeof(big));
		assert_int_equal(b.p[b.len], '\0');
		assert_int_equal(b.p[b.len - 1], 'z');
	}
	dbuf_free_secret(&b);
	assert_null(b.p);

	/* An empty buffer still hands out a string. */
	dbuf_init(&b, 0);
	s = dbuf_take(&b);
	assert_non_null(s);
	assert_string_equal(s, "");
	free(s);
	assert_int_equal(dbuf_adds(&b, "x"), EL_ETOOBIG);
	dbuf_free(&b);
}

/* ---- integers and copies ---- */

static void
parse_int_bounds(void **state)
{
	long long v = 0;

	(void)state;
	assert_int_equal(el_parse_int("42", 0, 100, &v), EL_OK);
	assert_int_equal(v, 42);
	assert_int_equal(el_parse_int("0", 0, 100, &v), EL_OK);
	assert_int_equal(v, 0);
	assert_int_equal(el_parse_int("100", 0, 100, &v), EL_OK);
	assert_int_equal(el_parse_int("-5", -10, 10, &v), EL_OK);
	assert_int_equal(v, -5);
	assert_int_equal(el_parse_int("9223372036854775807", 0, INT64_MAX, &v), EL_OK);
	assert_true(v == INT64_MAX);

	v = 77;
	assert_int_equal(el_parse_int("101", 0, 100, &v), EL_EINVAL);
	assert_int_equal(el_parse_int("-1", 0, 100, &v), EL_EINVAL);
	assert_int_equal(el_parse_int("12abc", 0, 100, &v), EL_EINVAL);
	assert_int_equal(el_parse_int("42 ", 0, 100, &v), EL_EINVAL);
	assert_int_equal(el_parse_int("42\n", 0, 100, &v), EL_EINVAL);
	assert_int_equal(el_parse_int("", 0, 100, &v), EL_EINVAL);
	assert_int_equal(el_parse_int(NULL, 0, 100, &v), EL_EINVAL);
	assert_int_equal(el_parse_int("0x10", 0, 100, &v), EL_EINVAL);
	assert_int_equal(el_parse_int("1e2", 0, 1000, &v), EL_EINVAL);
	assert_int_equal(el_parse_int("9223372036854775808", 0, INT64_MAX, &v), EL_EINVAL);
	assert_int_equal(el_parse_int("-9223372036854775809", INT64_MIN, 0, &v), EL_EINVAL);
	assert_int_equal(el_parse_int("-", -10, 10, &v), EL_EINVAL);
	assert_int_equal(v, 77);   /* untouched on failure */
}

/* "Strict integer parse: whole string": a blank or sign before the digits is not a number
 * (Content-Length " 5", a port "+80"). strtoll skips leading white space itself. */
static void
parse_int_refuses_leading_junk(void **state)
{
	long long v = 77;

	(void)state;
	assert_int_equal(el_parse_int(" 42", 0, 100, &v), EL_EINVAL);
	assert_int_equal(el_parse_int("\t42", 0, 100, &v), EL_EINVAL);
	assert_int_equal(el_parse_int("\n42", 0, 100, &v), EL_EINVAL);
	assert_int_equal(v, 77);
}

static void
strlcpy_truncates(void **state)
{
	char buf[8];

	(void)state;
	memset(buf, 'X', sizeof(buf));
	assert_int_equal(el_strlcpy(buf, "abc", sizeof(buf)), 3);
	assert_string_equal(buf, "abc");
	memset(buf, 'X', sizeof(buf));
	assert_int_equal(el_strlcpy(buf, "0123456789", sizeof(buf)), 10);
	assert_string_equal(buf, "0123456");   /* 7 chars + NUL */
	assert_int_equal(el_strlcpy(buf, "1234567", sizeof(buf)), 7);
	assert_string_equal(buf, "1234567");
	memset(buf, 'X', sizeof(buf));
	assert_int_equal(el_strlcpy(buf, "abc", 0), 3);
	assert_int_equal(buf[0], 'X');           /* size 0 writes nothing */
	assert_int_equal(el_strlcpy(buf, "abc", 1), 3);
	assert_string_equal(buf, "");
}

static void
misc_helpers(void **state)
{
	struct el_why w;
	char id[32];
	size_t i;

	(void)state;
	assert_string_equal(el_strerror(EL_OK), "ok");
	assert_string_equal(el_strerror(EL_ETOOBIG), "too large");
	assert_string_equal(el_strerror((enum el_err)999), "unknown error");
	for (i = 0; i < EL__MAX; i++)
		assert_string_not_equal(el_strerror((enum el_err)i), "unknown error");
	assert_int_equal(el_fail(&w, EL_EPERM, "x=%d", 5), EL_EPERM);
	assert_string_equal(w.msg, "x=5");
	assert_int_equal(el_fail(NULL, EL_EIO, "ignored"), EL_EIO);
	el_random_id(id, sizeof(id), 12);
	assert_int_equal(strlen(id), 12);
	assert_true(strspn(id, "abcdefghijkmnpqrstuvwxyz23456789") == 12);
	el_random_id(id, 5, 12);
	assert_int_equal(strlen(id), 4);
}

/* One backoff for every retry loop: the broker's four (activation, revocation, revocation
 * sync, mail) and the AWS client's jitter ceiling. */
static void
backoff_doubles_to_its_cap(void **state)
{
	(void)state;
	assert_int_equal(el_backoff(1, 1, 30), 1);
	assert_int_equal(el_backoff(2, 1, 30), 2);
	assert_int_equal(el_backoff(5, 1, 30), 16);
	assert_int_equal(el_backoff(6, 1, 30), 30);
	assert_int_equal(el_backoff(1000, 1, 30), 30);     /* no overflow */
	assert_int_equal(el_backoff(0, 2, 300), 2);
	assert_int_equal(el_backoff(8, 2, 300), 256);
	assert_int_equal(el_backoff(9, 2, 300), 300);
	assert_int_equal(el_backoff(3, 100, 5000), 400);
}

static void
hexval_and_strv(void **state)
{
	char **v = calloc(2, sizeof(*v));
	int c, n = 0;

	(void)state;
	for (c = 0; c < 256; c++)
		if (el_hexval(c) >= 0)
			n++;
	assert_int_equal(n, 22);
	assert_int_equal(el_hexval('0'), 0);
	assert_int_equal(el_hexval('f'), 15);
	assert_int_equal(el_hexval('F'), 15);
	assert_int_equal(el_hexval('g'), -1);
	assert_int_equal(el_hexval(-1), -1);
	assert_non_null(v);
	v[0] = strdup("a");
	v[1] = strdup("b");
	el_strv_free(v, 2);                     /* ASan: nothing leaks */
	el_strv_free(NULL, 3);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(duration_accepts),
		cmocka_unit_test(duration_refuses),
		cmocka_unit_test(duration_format),
		cmocka_unit_test(time_parse_accepts),
		cmocka_unit_test(time_parse_refuses),
		cmocka_unit_test(time_parse_offsets),
		cmocka_unit_test(time_parse_refuses_noncanonical),
		cmocka_unit_test(time_format),
		cmocka_unit_test(b64_round_trip),
		cmocka_unit_test(b64_public_matches),
		cmocka_unit_test(b64_strict),
		cmocka_unit_test(b64_refuses_non_ascii),
		cmocka_unit_test(hex_lower),
		cmocka_unit_test(dbuf_ceiling),
		cmocka_unit_test(parse_int_bounds),
		cmocka_unit_test(parse_int_refuses_leading_junk),
		cmocka_unit_test(strlcpy_truncates),
		cmocka_unit_test(misc_helpers),
		cmocka_unit_test(backoff_doubles_to_its_cap),
		cmocka_unit_test(hexval_and_strv),
		cmocka_unit_test(split_list_splits_and_refuses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
