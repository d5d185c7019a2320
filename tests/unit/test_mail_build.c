/*
 * test_mail_build.c — the bytes of a built message as a receiving mail server sees them:
 * headers present and single-line, hostile subjects unable to add headers, non-ASCII
 * surviving RFC 2047, deterministic output, the size ceiling, and the password file rules.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "elevate/el.h"
#include "elevate/mail.h"

static const char *const carol[] = {"Carol <carol@example.com>"};

static void
build(const char *subject, const char *text, struct dbuf *out, enum el_err want)
{
	struct mail_msg m;
	struct el_why w = {{0}};

	memset(&m, 0, sizeof(m));
	m.from = "elevate@example.com";
	m.to = carol;
	m.nto = 1;
	m.subject = subject;
	m.text = text;
	m.html = "<p>hello</p>";
	m.message_id = "<outbox-1.req_abc@elevate>";
	m.date = 1795300000;
	assert_int_equal(mail_build(&m, out, &w), want);
}

/* The header block: everything before the first empty line. */
static char *
headers(const struct dbuf *b)
{
	const char *end = strstr(b->p, "\r\n\r\n");

	assert_non_null(end);
	return strndup(b->p, (size_t)(end - b->p) + 2);
}

/* Is there a header line (not a continuation) starting with name? */
static int
has_header(const char *h, const char *name)
{
	const char *p = h;
	size_t n = strlen(name);

	while (p && *p) {
		if (strncasecmp(p, name, n) == 0)
			return 1;
		p = strstr(p, "\r\n");
		if (p)
			p += 2;
	}
	return 0;
}

static void
headers_present_and_mime(void **state)
{
	struct dbuf b;
	char *h;

	(void)state;
	build("Approve dev for alice?", "body text", &b, EL_OK);
	h = headers(&b);
	assert_true(has_header(h, "Date: "));
	assert_true(has_header(h, "From: "));
	assert_true(has_header(h, "To: "));
	assert_true(has_header(h, "Subject: Approve dev for alice?"));
	assert_true(has_header(h, "Message-ID: <outbox-1.req_abc@elevate>"));
	assert_true(has_header(h, "MIME-Version: 1.0"));
	assert_true(has_header(h, "Content-Type: multipart/alternative"));
	assert_non_null(strstr(b.p, "text/plain; charset=utf-8"));
	assert_non_null(strstr(b.p, "text/html; charset=utf-8"));
	/* every line ends in CRLF: no bare LF anywhere */
	for (size_t i = 0; i < b.len; i++)
		if (b.p[i] == '\n')
			assert_true(i > 0 && b.p[i - 1] == '\r');
	free(h);
	dbuf_free(&b);
}

static void
crlf_in_subject_adds_no_header(void **state)
{
	struct dbuf b;
	char *h;

	(void)state;
	build("hi\r\nBcc: mallory@evil.example\r\nX-Injected: yes", "t", &b, EL_OK);
	h = headers(&b);
	assert_false(has_header(h, "Bcc:"));
	assert_false(has_header(h, "X-Injected:"));
	free(h);
	dbuf_free(&b);
}

/* Decodes every =?UTF-8?B?...?= word of the Subject header and concatenates them. */
static void
decode_subject(const char *h, char *out, size_t outlen)
{
	const char *p = strstr(h, "Subject: ");
	size_t o = 0;

	assert_non_null(p);
	while ((p = strstr(p, "=?UTF-8?B?")) != NULL) {
		const char *end = strstr(p + 10, "?=");
		char b64[256];
		unsigned char raw[256];
		size_t n;

		assert_non_null(end);
		assert_true((size_t)(end - p - 10) < sizeof(b64));
		memcpy(b64, p + 10, (size_t)(end - p - 10));
		b64[end - p - 10] = '\0';
		assert_int_equal(el_b64_decode(b64, raw, sizeof(raw), &n), EL_OK);
		assert_true(o + n < outlen);
		memcpy(out + o, raw, n);
		o += n;
		p = end + 2;
		if (strncmp(p, "\r\n", 2) == 0 && p[2] != ' ')
			break;   /* end of the Subject header */
	}
	out[o] = '\0';
}

static void
non_ascii_subject_round_trips(void **state)
{
	const char *subj = "Prüfung 検証 ✓ — a long subject that needs more than one encoded "
	    "word because RFC 2047 caps each at 75 characters";
	char got[512];
	struct dbuf b;
	char *h;

	(void)state;
	build(subj, "text ü", &b, EL_OK);
	h = headers(&b);
	decode_subject(h, got, sizeof(got));
	assert_string_equal(got, subj);
	/* header lines stay short and 7-bit */
	for (const char *l = h; *l; ) {
		const char *e = strstr(l, "\r\n");
		assert_true(e - l <= 78);
		for (const char *c = l; c < e; c++)
			assert_true((unsigned char)*c < 0x80);
		l = e + 2;
	}
	free(h);
	dbuf_free(&b);
}

static void
deterministic(void **state)
{
	struct dbuf a, b;

	(void)state;
	build("same", "same body", &a, EL_OK);
	build("same", "same body", &b, EL_OK);
	assert_int_equal(a.len, b.len);
	assert_memory_equal(a.p, b.p, a.len);
	dbuf_free(&a);
	dbuf_free(&b);
}

static void
bad_address_and_ceiling(void **state)
{
	struct mail_msg m;
	struct dbuf b;
	struct el_why w = {{0}};
	const char *const evil[] = {"carol@example.com\r\nBcc: x@y.z"};
	char *big;

	(void)state;
	memset(&m, 0, sizeof(m));
	m.from = "elevate@example.com";
	m.to = evil;
	m.nto = 1;
	m.subject = "s";
	m.text = "t";
	m.message_id = "<1@e>";
	m.date = 1;
	assert_int_equal(mail_build(&m, &b, &w), EL_EINVAL);
	big = malloc(MAIL_MAX_SIZE + 10);
	memset(big, 'a', MAIL_MAX_SIZE + 9);
	big[MAIL_MAX_SIZE + 9] = '\0';
	build("s", big, &b, EL_ETOOBIG);
	assert_int_equal(b.len, 0);
	free(big);
	dbuf_free(&b);
}

static void
password_file_rules(void **state)
{
	char dir[] = "/tmp/elevate-mailpw-XXXXXX", path[128], *pw = NULL;
	struct el_why w = {{0}};
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/pw", dir);
	f = fopen(path, "w");
	fputs("s3cret\n", f);
	fclose(f);
	chmod(path, 0644);
	assert_int_not_equal(mail_read_password_file(path, &pw, &w), EL_OK);   /* world-readable */
	chmod(path, 0600);
	assert_int_equal(mail_read_password_file(path, &pw, &w), EL_OK);
	assert_string_equal(pw, "s3cret");
	mail_password_free(pw);
	unlink(path);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(headers_present_and_mime),
		cmocka_unit_test(crlf_in_subject_adds_no_header),
		cmocka_unit_test(non_ascii_subject_round_trips),
		cmocka_unit_test(deterministic),
		cmocka_unit_test(bad_address_and_ceiling),
		cmocka_unit_test(password_file_rules),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
