/*
 * test_mail.c — mail building read back as a mail reader would (headers, RFC 2047,
 * quoted-printable, MIME parts), header injection, ceilings, the password file, and
 * real SMTP sends to a local aiosmtpd server (plain, AUTH, STARTTLS, refusals).
 * The live tests are skipped when /usr/bin/python3 cannot import aiosmtpd
 * (Debian package python3-aiosmtpd).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <sodium.h>

#include "elevate/el.h"
#include "elevate/mail.h"

/* ---- a small reader for what mail_build wrote ---- */

struct parsed {
	char *headers;      /* unfolded, "\n"-separated "Name: value" lines */
	char *body;         /* after the blank line, raw */
};

static void
assert_crlf_and_width(const char *msg, size_t len)
{
	size_t i, col = 0;

	for (i = 0; i < len; i++) {
		if (msg[i] == '\n') {
			if (i == 0 || msg[i - 1] != '\r')
				fail_msg("bare LF at byte %zu", i);
			col = 0;
			continue;
		}
		if (msg[i] == '\r') {
			if (i + 1 >= len || msg[i + 1] != '\n')
				fail_msg("bare CR at byte %zu", i);
			continue;
		}
		if (++col > 76)
			fail_msg("line longer than 76 at byte %zu", i);
	}
}

static void
parse(const char *msg, struct parsed *p)
{
	const char *sep = strstr(msg, "\r\n\r\n");
	size_t hl, i, o = 0;

	assert_non_null(sep);
	hl = (size_t)(sep - msg);
	p->headers = malloc(hl + 2);
	assert_non_null(p->headers);
	for (i = 0; i < hl; i++) {
		if (msg[i] == '\r' && msg[i + 1] == '\n') {
			i++;
			if (i + 1 < hl && (msg[i + 1] == ' ' || msg[i + 1] == '\t'))
				continue;   /* unfold: drop the CRLF, keep the space */
			p->headers[o++] = '\n';
			continue;
		}
		p->headers[o++] = msg[i];
	}
	p->headers[o++] = '\n';
	p->headers[o] = '\0';
	p->body = strdup(sep + 4);
	assert_non_null(p->body);
}

static void
parsed_free(struct parsed *p)
{
	free(p->headers);
	free(p->body);
}

/* Value of header name (caller frees), or NULL. */
static char *
header(const struct parsed *p, const char *name)
{
	size_t nl = strlen(name);
	const char *l = p->headers, *e;

	while (*l != '\0') {
		e = strchr(l, '\n');
		if ((size_t)(e - l) > nl + 1 && strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
			l += nl + 1;
			while (*l == ' ')
				l++;
			return strndup(l, (size_t)(e - l));
		}
		l = e + 1;
	}
	return NULL;
}

/* RFC 2047 decoding of an unstructured value: B words, whitespace between words dropped. */
static char *
decode_2047(const char *v)
{
	char *out = calloc(1, strlen(v) + 1);
	size_t o = 0, n, pend_ws = 0;
	const char *p = v, *ws_start = NULL;
	int last_was_ew = 0;

	assert_non_null(out);
	while (*p != '\0') {
		if (*p == ' ' || *p == '\t') {
			if (ws_start == NULL)
				ws_start = p;
			p++;
			continue;
		}
		pend_ws = ws_start ? (size_t)(p - ws_start) : 0;
		if (strncmp(p, "=?UTF-8?B?", 10) == 0) {
			const char *end = strstr(p + 10, "?=");
			char b64[128];
			unsigned char bin[128];

			assert_non_null(end);
			assert_true((size_t)(end - p) + 2 <= 75);   /* RFC 2047: word <= 75 */
			n = (size_t)(end - p - 10);
			assert_true(n < sizeof(b64));
			memcpy(b64, p + 10, n);
			b64[n] = '\0';
			if (!last_was_ew && pend_ws) {
				memcpy(out + o, ws_start, pend_ws);
				o += pend_ws;
			}
			assert_int_equal(el_b64_decode(b64, bin, sizeof(bin), &n), EL_OK);
			memcpy(out + o, bin, n);
			o += n;
			p = end + 2;
			last_was_ew = 1;
		} else {
			if (pend_ws) {
				memcpy(out + o, ws_start, pend_ws);
				o += pend_ws;
			}
			while (*p != '\0' && *p != ' ' && *p != '\t')
				out[o++] = *p++;
			last_was_ew = 0;
		}
		ws_start = NULL;
	}
	out[o] = '\0';
	return out;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	fail_msg("bad QP hex digit '%c'", c);
	return 0;
}

/* Quoted-printable to bytes; CRLF becomes LF (caller frees). */
static char *
decode_qp(const char *s, size_t len)
{
	char *out = malloc(len + 1);
	size_t i, o = 0;

	assert_non_null(out);
	for (i = 0; i < len; i++) {
		if (s[i] == '=' && i + 2 < len + 1 && s[i + 1] == '\r' && s[i + 2] == '\n') {
			i += 2;
		} else if (s[i] == '=') {
			assert_true(i + 2 < len);
			out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
		} else if (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n') {
			out[o++] = '\n';
			i++;
		} else {
			assert_true(s[i] == '\t' || (s[i] >= 32 && s[i] <= 126));
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	return out;
}

/* Finds the part whose Content-Type starts with type; returns its decoded body. */
static char *
mime_part(const char *body, const char *boundary, const char *type)
{
	char delim[128], ct[128];
	const char *p = body, *start, *next, *hdr_end;

	snprintf(delim, sizeof(delim), "\r\n--%s", boundary);
	snprintf(ct, sizeof(ct), "Content-Type: %s; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n", type);
	while ((p = strstr(p, delim + 2)) != NULL) {
		start = p + strlen(delim + 2);
		if (strncmp(start, "--", 2) == 0)
			break;
		start += 2;   /* CRLF after the delimiter */
		next = strstr(start, delim);
		assert_non_null(next);
		if (strncmp(start, ct, strlen(ct)) == 0) {
			hdr_end = start + strlen(ct);
			return decode_qp(hdr_end, (size_t)(next - hdr_end));
		}
		p = next + 2;
	}
	return NULL;
}

static const char *const two_to[] = { "Carol Lead <carol@example.com>", "dave@example.org" };

static struct mail_msg
base_msg(void)
{
	struct mail_msg m = {
		.from = "Elevate <elevate@example.com>",
		.to = two_to,
		.nto = 2,
		.subject = "Approve prod-readonly for alice? (req_7xk2m9)",
		.text = "Hello,\n\nline with trailing space \n.dot line\nFrom here\n",
		.html = "<p>Hello &amp; welcome</p>\n",
		.message_id = "<outbox-17.req_7xk2m9@elevate>",
		.date = 1700000000,   /* Tue, 14 Nov 2023 22:13:20 +0000 */
	};
	return m;
}

static void
test_build_reads_back(void **state)
{
	struct mail_msg m = base_msg();
	struct dbuf b, b2;
	struct parsed p;
	struct el_why w;
	char *v, *ct, *txt, *html, boundary[80], longtext[600];
	const char *q;
	size_t i;

	(void)state;
	/* a long line and bytes outside ASCII in the body */
	for (i = 0; i < sizeof(longtext) - 40; i++)
		longtext[i] = (char)('a' + i % 26);
	snprintf(longtext + i, sizeof(longtext) - i, " caf\xc3\xa9 =sign\n");
	m.text = longtext;
	assert_int_equal(mail_build(&m, &b, &w), EL_OK);
	assert_crlf_and_width(b.p, b.len);
	parse(b.p, &p);
	assert_non_null(v = header(&p, "Date"));
	assert_string_equal(v, "Tue, 14 Nov 2023 22:13:20 +0000");
	free(v);
	assert_non_null(v = header(&p, "From"));
	assert_string_equal(v, "Elevate <elevate@example.com>");
	free(v);
	assert_non_null(v = header(&p, "To"));
	assert_string_equal(v, "Carol Lead <carol@example.com>, dave@example.org");
	free(v);
	assert_non_null(v = header(&p, "Subject"));
	assert_string_equal(v, "Approve prod-readonly for alice? (req_7xk2m9)");
	free(v);
	assert_non_null(v = header(&p, "Message-ID"));
	assert_string_equal(v, "<outbox-17.req_7xk2m9@elevate>");
	free(v);
	assert_non_null(v = header(&p, "MIME-Version"));
	assert_string_equal(v, "1.0");
	free(v);
	assert_non_null(v = header(&p, "Auto-Submitted"));
	free(v);
	assert_non_null(ct = header(&p, "Content-Type"));
	assert_true(strncmp(ct, "multipart/alternative;", 22) == 0);
	assert_non_null(q = strstr(ct, "boundary=\""));
	snprintf(boundary, sizeof(boundary), "%s", q + 10);
	*strchr(boundary, '"') = '\0';
	free(ct);
	/* both parts, decoded, are exactly what went in */
	assert_non_null(txt = mime_part(p.body, boundary, "text/plain"));
	assert_string_equal(txt, longtext);
	assert_non_null(html = mime_part(p.body, boundary, "text/html"));
	assert_string_equal(html, m.html);
	free(txt);
	free(html);
	assert_non_null(strstr(p.body, "\r\n--"));
	{
		char closing[100];

		snprintf(closing, sizeof(closing), "--%s--\r\n", boundary);
		assert_non_null(strstr(p.body, closing));
	}
	parsed_free(&p);
	/* same input, same bytes: a retry from the outbox sends the identical message */
	assert_int_equal(mail_build(&m, &b2, &w), EL_OK);
	assert_int_equal(b.len, b2.len);
	assert_memory_equal(b.p, b2.p, b.len);
	dbuf_free(&b2);
	dbuf_free(&b);

	/* dot and From lines and trailing space survive, encoded */
	m = base_msg();
	assert_int_equal(mail_build(&m, &b, &w), EL_OK);
	assert_non_null(strstr(b.p, "\r\n=2Edot line\r\n"));
	assert_non_null(strstr(b.p, "\r\n=46rom here\r\n"));
	assert_non_null(strstr(b.p, "trailing space=20\r\n"));
	dbuf_free(&b);
}

static void
test_text_only(void **state)
{
	struct mail_msg m = base_msg();
	struct dbuf b;
	struct parsed p;
	struct el_why w;
	char *ct, *txt;

	(void)state;
	m.html = NULL;
	assert_int_equal(mail_build(&m, &b, &w), EL_OK);
	parse(b.p, &p);
	assert_non_null(ct = header(&p, "Content-Type"));
	assert_string_equal(ct, "text/plain; charset=utf-8");
	free(ct);
	assert_non_null(ct = header(&p, "Content-Transfer-Encoding"));
	assert_string_equal(ct, "quoted-printable");
	free(ct);
	txt = decode_qp(p.body, strlen(p.body));
	assert_true(strncmp(txt, m.text, strlen(m.text)) == 0);
	free(txt);
	parsed_free(&p);
	dbuf_free(&b);
}

static void
test_header_injection(void **state)
{
	struct mail_msg m = base_msg();
	static const char *const evil_to[] = { "carol@example.com\r\nBcc: x@evil.example" };
	static const char *const evil_name[] = { "Carol\r\nBcc: x@evil.example <c@example.com>" };
	struct dbuf b;
	struct parsed p;
	struct el_why w;
	const char *l;
	char *v, *d;
	int nheaders = 0;

	(void)state;
	m.subject = "Hello\r\nBcc: victim@evil.example\r\n\r\nInjected body\nX: y";
	assert_int_equal(mail_build(&m, &b, &w), EL_OK);
	assert_crlf_and_width(b.p, b.len);
	/* no line of the message starts an injected header */
	for (l = b.p; l != NULL; l = strstr(l, "\r\n") ? strstr(l, "\r\n") + 2 : NULL) {
		assert_true(strncasecmp(l, "Bcc:", 4) != 0);
		assert_true(strncmp(l, "X: y", 4) != 0);
		assert_true(strncmp(l, "Injected", 8) != 0);
	}
	parse(b.p, &p);
	for (l = p.headers; *l != '\0'; l = strchr(l, '\n') + 1)
		nheaders++;
	assert_int_equal(nheaders, 8);   /* Date From To Subject Message-ID MIME Auto CT */
	assert_non_null(v = header(&p, "Subject"));
	d = decode_2047(v);
	assert_string_equal(d, "Hello Bcc: victim@evil.example Injected body X: y");
	free(d);
	free(v);
	parsed_free(&p);
	dbuf_free(&b);

	m = base_msg();
	m.to = evil_to;
	m.nto = 1;
	assert_int_equal(mail_build(&m, &b, &w), EL_EINVAL);
	assert_null(b.p);
	m.to = evil_name;
	assert_int_equal(mail_build(&m, &b, &w), EL_EINVAL);
	m = base_msg();
	m.from = "elevate@example.com\nBcc: x@evil.example";
	assert_int_equal(mail_build(&m, &b, &w), EL_EINVAL);
	m = base_msg();
	m.message_id = "<a@b>\r\nBcc: x@evil.example";
	assert_int_equal(mail_build(&m, &b, &w), EL_EINVAL);
	m.message_id = "no-brackets@elevate";
	assert_int_equal(mail_build(&m, &b, &w), EL_EINVAL);
	m.message_id = NULL;
	assert_int_equal(mail_build(&m, &b, &w), EL_EINVAL);
}

static void
test_addresses(void **state)
{
	char out[MAIL_ADDR_MAX + 1];
	char longlocal[80];

	(void)state;
	assert_int_equal(mail_addr_spec("carol@example.com", out, sizeof(out)), EL_OK);
	assert_string_equal(out, "carol@example.com");
	assert_int_equal(mail_addr_spec("Carol Lead <carol@example.com>", out, sizeof(out)), EL_OK);
	assert_string_equal(out, "carol@example.com");
	assert_int_equal(mail_addr_spec("\"Lead, Carol\" <c.l+x@mail.example.com>", out,
	    sizeof(out)), EL_OK);
	assert_string_equal(out, "c.l+x@mail.example.com");
	assert_int_equal(mail_addr_spec("J\xc3\xbcrgen <j@example.com>", out, sizeof(out)), EL_OK);
	assert_int_equal(mail_addr_spec("ops@localhost", out, sizeof(out)), EL_OK);
	/* refused */
	assert_int_equal(mail_addr_spec("", out, sizeof(out)), EL_EINVAL);
	assert_int_equal(mail_addr_spec("carol", out, sizeof(out)), EL_EINVAL);
	assert_int_equal(mail_addr_spec("carol@", out, sizeof(out)), EL_EINVAL);
	assert_int_equal(mail_addr_spec("@example.com", out, sizeof(out)), EL_EINVAL);
	assert_int_equal(mail_addr_spec("a b@example.com", out, sizeof(out)), EL_EINVAL);
	assert_int_equal(mail_addr_spec("a@b@example.com", out, sizeof(out)), EL_EINVAL);
	assert_int_equal(mail_addr_spec("a..b@example.com", out, sizeof(out)), EL_EINVAL);
	assert_int_equal(mail_addr_spec("a@exa_mple.com", out, sizeof(out)), EL_EINVAL);
	assert_int_equal(mail_addr_spec("a@-example.com", out, sizeof(out)), EL_EINVAL);
	assert_int_equal(mail_addr_spec("a@example..com", out, sizeof(out)), EL_EINVAL);
	assert_int_equal(mail_addr_spec("j\xc3\xbcrgen@example.com", out, sizeof(out)), EL_EINVAL);
	assert_int_equal(mail_addr_spec("<a@example.com", out, sizeof(out)), EL_EINVAL);
	assert_int_equal(mail_addr_spec("A <a@example.com> trailing", out, sizeof(out)), EL_EINVAL);
	assert_int_equal(mail_addr_spec("A <<a@example.com>>", out, sizeof(out)), EL_EINVAL);
	assert_int_equal(mail_addr_spec("a@example.com\r\n", out, sizeof(out)), EL_EINVAL);
	assert_int_equal(mail_addr_spec("a@example.com>", out, sizeof(out)), EL_EINVAL);
	assert_int_equal(mail_addr_spec("\"a\"@example.com", out, sizeof(out)), EL_EINVAL);
	memset(longlocal, 'x', 65);
	snprintf(longlocal + 65, sizeof(longlocal) - 65, "@example.com");
	assert_int_equal(mail_addr_spec(longlocal, out, sizeof(out)), EL_EINVAL);
	assert_int_equal(mail_addr_spec(NULL, out, sizeof(out)), EL_EINVAL);
}

static void
test_non_ascii_headers(void **state)
{
	static const char subj[] = "Zugriff genehmigt: prod-readonly f\xc3\xbcr J\xc3\xbcrgen "
	    "Gro\xc3\x9f \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\x86"
	    "\xe3\x82\xad\xe3\x82\xb9\xe3\x83\x88 \xf0\x9f\x94\x91 and a long tail of words to "
	    "make it fold over several lines";
	static const char *const to[] = { "J\xc3\xbcrgen Gro\xc3\x9f <jg@example.com>" };
	struct mail_msg m = base_msg();
	struct dbuf b;
	struct parsed p;
	struct el_why w;
	char *v, *d;

	(void)state;
	m.subject = subj;
	m.to = to;
	m.nto = 1;
	assert_int_equal(mail_build(&m, &b, &w), EL_OK);
	assert_crlf_and_width(b.p, b.len);
	/* nothing but ASCII in the header block */
	{
		const char *e = strstr(b.p, "\r\n\r\n");
		const char *s;

		for (s = b.p; s < e; s++)
			assert_true((unsigned char)*s < 0x80);
	}
	parse(b.p, &p);
	assert_non_null(v = header(&p, "Subject"));
	assert_non_null(strstr(v, "=?UTF-8?B?"));
	d = decode_2047(v);
	assert_string_equal(d, subj);
	free(d);
	free(v);
	assert_non_null(v = header(&p, "To"));
	assert_non_null(strstr(v, "<jg@example.com>"));
	d = decode_2047(v);
	assert_string_equal(d, "J\xc3\xbcrgen Gro\xc3\x9f <jg@example.com>");
	free(d);
	free(v);
	parsed_free(&p);
	dbuf_free(&b);

	/* ASCII that merely looks like an encoded word is encoded, so it reads back as typed */
	m = base_msg();
	m.subject = "=?UTF-8?B?SGk=?= not decoded";
	assert_int_equal(mail_build(&m, &b, &w), EL_OK);
	parse(b.p, &p);
	v = header(&p, "Subject");
	d = decode_2047(v);
	assert_string_equal(d, "=?UTF-8?B?SGk=?= not decoded");
	free(d);
	free(v);
	parsed_free(&p);
	dbuf_free(&b);

	m = base_msg();
	m.subject = "bad \xff utf-8";
	assert_int_equal(mail_build(&m, &b, &w), EL_EINVAL);
}

static void
test_size_ceiling(void **state)
{
	struct mail_msg m = base_msg();
	struct dbuf b;
	struct el_why w;
	size_t n = 600 * 1024;
	char *big = malloc(n + 1);

	(void)state;
	assert_non_null(big);
	memset(big, 'a', n);
	big[n] = '\0';
	m.text = big;
	m.html = NULL;
	assert_int_equal(mail_build(&m, &b, &w), EL_OK);     /* 600 KiB alone fits */
	assert_true(b.len <= MAIL_MAX_SIZE);
	dbuf_free(&b);
	m.html = big;                                        /* twice does not */
	assert_int_equal(mail_build(&m, &b, &w), EL_ETOOBIG);
	assert_non_null(strstr(w.msg, "larger than"));
	assert_null(b.p);
	free(big);
}

/* ---- password file ---- */

static void
write_file(const char *path, const char *s, size_t len, int mode)
{
	struct el_why w;

	assert_int_equal(el_write_file(path, s, len, mode, &w), EL_OK);
}

static void
test_password_file(void **state)
{
	char dir[] = "/tmp/el_test_mailpw_XXXXXX", p[128];
	char big[MAIL_PASSWORD_MAX + 2];
	struct el_why w;
	char *pw = NULL;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(p, sizeof(p), "%s/pw", dir);
	write_file(p, "s3cret pass\n", 12, 0600);
	assert_int_equal(mail_read_password_file(p, &pw, &w), EL_OK);
	assert_string_equal(pw, "s3cret pass");
	mail_password_free(pw);
	write_file(p, "s3cret", 6, 0640);
	assert_int_equal(mail_read_password_file(p, &pw, &w), EL_OK);
	assert_string_equal(pw, "s3cret");
	mail_password_free(pw);
	pw = NULL;
	write_file(p, "s3cret\r\n", 8, 0600);
	assert_int_equal(mail_read_password_file(p, &pw, &w), EL_OK);
	assert_string_equal(pw, "s3cret");
	mail_password_free(pw);
	pw = NULL;
	/* world-readable: refused, and the message says how to fix it */
	write_file(p, "s3cret\n", 7, 0644);
	assert_int_equal(mail_read_password_file(p, &pw, &w), EL_ECONFIG);
	assert_null(pw);
	assert_non_null(strstr(w.msg, "chmod"));
	write_file(p, "a\nb\n", 4, 0600);
	assert_int_equal(mail_read_password_file(p, &pw, &w), EL_ECONFIG);
	write_file(p, "\n", 1, 0600);
	assert_int_equal(mail_read_password_file(p, &pw, &w), EL_ECONFIG);
	memset(big, 'x', sizeof(big));
	write_file(p, big, MAIL_PASSWORD_MAX, 0600);
	assert_int_equal(mail_read_password_file(p, &pw, &w), EL_OK);
	assert_int_equal(strlen(pw), MAIL_PASSWORD_MAX);
	mail_password_free(pw);
	pw = NULL;
	write_file(p, big, MAIL_PASSWORD_MAX + 1, 0600);
	assert_int_equal(mail_read_password_file(p, &pw, &w), EL_ETOOBIG);
	assert_null(pw);
	unlink(p);
	assert_int_equal(mail_read_password_file(p, &pw, &w), EL_ENOENT);
	rmdir(dir);
}

/* ---- live SMTP against aiosmtpd ---- */

static const char server_py[] =
    "import os, signal, ssl, sys, time\n"
    "from aiosmtpd.controller import Controller\n"
    "from aiosmtpd.smtp import AuthResult, LoginPassword\n"
    "port, outdir = int(sys.argv[1]), sys.argv[2]\n"
    "tls = None\n"
    "if len(sys.argv) > 4:\n"
    "    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)\n"
    "    tls.load_cert_chain(sys.argv[3], sys.argv[4])\n"
    "class H:\n"
    "    n = 0\n"
    "    async def handle_RCPT(self, server, session, envelope, address, opts):\n"
    "        if address.startswith('reject'):\n"
    "            return '550 5.1.1 <%s>: Recipient address rejected' % address\n"
    "        if address.startswith('later'):\n"
    "            return '451 4.3.0 Try again later'\n"
    "        envelope.rcpt_tos.append(address)\n"
    "        return '250 OK'\n"
    "    async def handle_DATA(self, server, session, envelope):\n"
    "        H.n += 1\n"
    "        p = os.path.join(outdir, 'msg%d' % H.n)\n"
    "        with open(p + '.tmp', 'wb') as f:\n"
    "            f.write(('FROM %s\\n' % envelope.mail_from).encode())\n"
    "            for r in envelope.rcpt_tos:\n"
    "                f.write(('RCPT %s\\n' % r).encode())\n"
    "            who = session.auth_data.decode() if session.authenticated else '-'\n"
    "            f.write(('AUTH %s\\nTLS %d\\n\\n' % (who, session.ssl is not None)).encode())\n"
    "            f.write(envelope.original_content)\n"
    "        os.rename(p + '.tmp', p)\n"
    "        return '250 2.0.0 Accepted'\n"
    "def auth(server, session, envelope, mechanism, data):\n"
    "    ok = isinstance(data, LoginPassword) and data.login == b'elevate' and "
    "data.password == b's3cret'\n"
    "    return AuthResult(success=ok, handled=False,\n"
    "        auth_data=data.login if ok else None)\n"
    "c = Controller(H(), hostname='127.0.0.1', port=port, tls_context=tls,\n"
    "    require_starttls=False, authenticator=auth, auth_require_tls=False)\n"
    "c.start()\n"
    "signal.signal(signal.SIGTERM, lambda *a: (c.stop(), os._exit(0)))\n"
    "open(os.path.join(outdir, 'ready'), 'w').close()\n"
    "while True:\n"
    "    time.sleep(1)\n";

struct smtpd {
	pid_t pid;
	int port;
	char dir[128];
};

struct live {
	int ok;
	char dir[64];
	struct smtpd plain;
	struct smtpd tls;
	char cert[128], key[128], script[128];
};

static int
free_port(void)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	int s = socket(AF_INET, SOCK_STREAM, 0), port;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    getsockname(s, (struct sockaddr *)&a, &al) != 0) {
		if (s >= 0)
			close(s);
		return -1;
	}
	port = ntohs(a.sin_port);
	close(s);
	return port;
}

static int
smtpd_start(struct live *l, struct smtpd *s, const char *name, int tls)
{
	char port[16], ready[192];
	int i;

	snprintf(s->dir, sizeof(s->dir), "%s/%s", l->dir, name);
	if (mkdir(s->dir, 0700) != 0 || (s->port = free_port()) < 0)
		return -1;
	snprintf(port, sizeof(port), "%d", s->port);
	if ((s->pid = fork()) < 0)
		return -1;
	if (s->pid == 0) {
		char log[192];
		int fd;

		/* the server's own chatter (TLS alerts it logs as tracebacks) goes to a file */
		snprintf(log, sizeof(log), "%s/server.log", s->dir);
		if ((fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600)) >= 0) {
			dup2(fd, 2);
			close(fd);
		}
		if (tls)
			execl("/usr/bin/python3", "python3", l->script, port, s->dir, l->cert,
			    l->key, (char *)NULL);
		else
			execl("/usr/bin/python3", "python3", l->script, port, s->dir, (char *)NULL);
		_exit(127);
	}
	snprintf(ready, sizeof(ready), "%s/ready", s->dir);
	for (i = 0; i < 300; i++) {
		if (access(ready, F_OK) == 0)
			return 0;
		if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
			s->pid = 0;
			return -1;
		}
		usleep(50000);
	}
	return -1;
}

static void
smtpd_stop(struct smtpd *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		waitpid(s->pid, NULL, 0);
		s->pid = 0;
	}
}

static int
live_setup(void **state)
{
	struct live *l = calloc(1, sizeof(*l));
	char cmd[512];
	struct el_why w;

	if (l == NULL)
		return -1;
	*state = l;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (system("/usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1") != 0 ||
	    system("command -v openssl >/dev/null 2>&1") != 0)
		return 0;   /* l->ok stays 0: the live tests skip */
	snprintf(l->dir, sizeof(l->dir), "/tmp/el_test_smtp_XXXXXX");
	if (mkdtemp(l->dir) == NULL)
		return -1;
	snprintf(l->script, sizeof(l->script), "%s/smtpd.py", l->dir);
	snprintf(l->cert, sizeof(l->cert), "%s/cert.pem", l->dir);
	snprintf(l->key, sizeof(l->key), "%s/key.pem", l->dir);
	if (el_write_file(l->script, server_py, strlen(server_py), 0600, &w) != EL_OK)
		return -1;
	snprintf(cmd, sizeof(cmd), "openssl req -x509 -newkey rsa:2048 -nodes -days 1 "
	    "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout %s -out %s "
	    ">/dev/null 2>&1", l->key, l->cert);
	if (system(cmd) != 0)
		return -1;
	if (smtpd_start(l, &l->plain, "plain", 0) != 0 || smtpd_start(l, &l->tls, "tls", 1) != 0) {
		fprintf(stderr, "could not start aiosmtpd\n");
		return -1;
	}
	l->ok = 1;
	return 0;
}

static int
live_teardown(void **state)
{
	struct live *l = *state;
	char cmd[128];

	smtpd_stop(&l->plain);
	smtpd_stop(&l->tls);
	if (l->dir[0] != '\0' && strncmp(l->dir, "/tmp/el_test_smtp_", 18) == 0) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", l->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", l->dir);
	}
	curl_global_cleanup();
	free(l);
	return 0;
}

#define LIVE(l) do { \
	if (!(l)->ok) { \
		fprintf(stderr, "skipping: /usr/bin/python3 lacks aiosmtpd (python3-aiosmtpd)\n"); \
		skip(); \
	} \
} while (0)

static void
url_of(const struct smtpd *s, char *buf, size_t len)
{
	snprintf(buf, len, "smtp://127.0.0.1:%d", s->port);
}

/* Reads the n-th message the server stored (caller frees). */
static char *
received(const struct smtpd *s, int n)
{
	char p[192], *buf = NULL;
	struct el_why w;

	snprintf(p, sizeof(p), "%s/msg%d", s->dir, n);
	if (el_read_file(p, 4 << 20, &buf, NULL, &w) != EL_OK)
		return NULL;
	return buf;
}

static void
test_send_plain(void **state)
{
	struct live *l = *state;
	struct mail_msg m = base_msg();
	struct mail_server srv = { 0 };
	struct dbuf b;
	struct el_why w;
	char url[64], *got, *content;

	LIVE(l);
	url_of(&l->plain, url, sizeof(url));
	srv.url = url;
	srv.timeout_ms = 10000;
	m.text = "Hello,\n.\n..two dots\nend\n";
	assert_int_equal(mail_build(&m, &b, &w), EL_OK);
	if (mail_send(&srv, m.from, two_to, 2, &b, &w) != EL_OK)
		fail_msg("send: %s", w.msg);
	assert_non_null(got = received(&l->plain, 1));
	assert_non_null(strstr(got, "FROM elevate@example.com\n"));
	assert_non_null(strstr(got, "RCPT carol@example.com\nRCPT dave@example.org\n"));
	assert_non_null(strstr(got, "AUTH -\nTLS 0\n"));
	/* the server received exactly the bytes built */
	content = strstr(got, "\n\n") + 2;
	assert_int_equal(strlen(content), b.len);
	assert_memory_equal(content, b.p, b.len);
	free(got);
	dbuf_free(&b);
}

static void
test_send_refusals(void **state)
{
	struct live *l = *state;
	struct mail_msg m = base_msg();
	struct mail_server srv = { 0 };
	static const char *const rejected[] = { "reject-me@example.com" };
	static const char *const later[] = { "later@example.com" };
	static const char *const bad[] = { "x@example.com>\r\nRCPT TO:<y@example.com" };
	struct dbuf b;
	struct el_why w;
	char url[64];

	LIVE(l);
	url_of(&l->plain, url, sizeof(url));
	srv.url = url;
	srv.timeout_ms = 10000;
	assert_int_equal(mail_build(&m, &b, &w), EL_OK);
	/* a permanent refusal: do not retry; the server's words are in the message */
	assert_int_equal(mail_send(&srv, m.from, rejected, 1, &b, &w), EL_EPERM);
	assert_non_null(strstr(w.msg, "refused a recipient"));
	assert_non_null(strstr(w.msg, "550 5.1.1"));
	/* a temporary one: retry later */
	assert_int_equal(mail_send(&srv, m.from, later, 1, &b, &w), EL_ENET);
	assert_non_null(strstr(w.msg, "451"));
	/* an address that would smuggle an SMTP command never reaches the server */
	assert_int_equal(mail_send(&srv, m.from, bad, 1, &b, &w), EL_EINVAL);
	assert_int_equal(mail_send(&srv, "a@b.example\r\nRSET", two_to, 1, &b, &w), EL_EINVAL);
	assert_null(received(&l->plain, 2));
	/* STARTTLS required but not offered */
	srv.require_starttls = 1;
	assert_int_equal(mail_send(&srv, m.from, two_to, 1, &b, &w), EL_ENET);
	assert_non_null(strstr(w.msg, "STARTTLS"));
	/* not an SMTP URL */
	srv.require_starttls = 0;
	srv.url = "http://127.0.0.1:80";
	assert_int_equal(mail_send(&srv, m.from, two_to, 1, &b, &w), EL_EINVAL);
	dbuf_free(&b);
}

static void
test_send_auth(void **state)
{
	struct live *l = *state;
	struct mail_msg m = base_msg();
	struct mail_server srv = { 0 };
	struct dbuf b;
	struct el_why w;
	char url[64], *got;
	int n;

	LIVE(l);
	url_of(&l->plain, url, sizeof(url));
	srv.url = url;
	srv.timeout_ms = 10000;
	srv.username = "elevate";
	srv.password = "wrong";
	assert_int_equal(mail_build(&m, &b, &w), EL_OK);
	assert_int_equal(mail_send(&srv, m.from, two_to, 1, &b, &w), EL_EAUTH);
	assert_non_null(strstr(w.msg, "refused the login"));
	assert_null(strstr(w.msg, "wrong"));   /* the password is never in a message */
	srv.password = "s3cret";
	if (mail_send(&srv, m.from, two_to, 1, &b, &w) != EL_OK)
		fail_msg("send: %s", w.msg);
	for (n = 1; (got = received(&l->plain, n + 1)) != NULL; n++)
		free(got);
	assert_non_null(got = received(&l->plain, n));
	assert_non_null(strstr(got, "AUTH elevate\nTLS 0\n"));
	free(got);
	/* a password is not sent in clear to a host that is not this machine */
	srv.url = "smtp://192.0.2.1:25";
	assert_int_equal(mail_send(&srv, m.from, two_to, 1, &b, &w), EL_EINVAL);
	assert_non_null(strstr(w.msg, "without TLS"));
	dbuf_free(&b);
}

static void
test_send_starttls(void **state)
{
	struct live *l = *state;
	struct mail_msg m = base_msg();
	struct mail_server srv = { 0 };
	struct dbuf b;
	struct el_why w;
	char url[64], *got;

	LIVE(l);
	url_of(&l->tls, url, sizeof(url));
	srv.url = url;
	srv.timeout_ms = 10000;
	srv.require_starttls = 1;
	assert_int_equal(mail_build(&m, &b, &w), EL_OK);
	/* a certificate we do not trust: refused */
	assert_int_equal(mail_send(&srv, m.from, two_to, 1, &b, &w), EL_ENET);
	assert_non_null(strstr(w.msg, "TLS"));
	assert_null(received(&l->tls, 1));
	/* trusted: sent over TLS */
	srv.ca_file = l->cert;
	if (mail_send(&srv, m.from, two_to, 1, &b, &w) != EL_OK)
		fail_msg("send: %s", w.msg);
	assert_non_null(got = received(&l->tls, 1));
	assert_non_null(strstr(got, "TLS 1\n"));
	free(got);
	dbuf_free(&b);
}

static void
test_send_connect_failures(void **state)
{
	struct mail_msg m = base_msg();
	struct mail_server srv = { 0 };
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	struct dbuf b;
	struct el_why w;
	char url[64];
	int s, port;
	int64_t t0;

	(void)state;
	assert_int_equal(mail_build(&m, &b, &w), EL_OK);
	/* nobody listening */
	assert_true((port = free_port()) > 0);
	snprintf(url, sizeof(url), "smtp://127.0.0.1:%d", port);
	srv.url = url;
	srv.timeout_ms = 5000;
	assert_int_equal(mail_send(&srv, m.from, two_to, 1, &b, &w), EL_ENET);
	assert_non_null(strstr(w.msg, "cannot connect"));
	/* a server that accepts and never speaks: the timeout holds */
	s = socket(AF_INET, SOCK_STREAM, 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s, 4), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &al), 0);
	snprintf(url, sizeof(url), "smtp://127.0.0.1:%d", ntohs(a.sin_port));
	srv.timeout_ms = 700;
	t0 = el_now_ms();
	assert_int_equal(mail_send(&srv, m.from, two_to, 1, &b, &w), EL_ETIMEOUT);
	assert_true(el_now_ms() - t0 < 5000);
	assert_non_null(strstr(w.msg, "timed out"));
	close(s);
	dbuf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest build_tests[] = {
		cmocka_unit_test(test_build_reads_back),
		cmocka_unit_test(test_text_only),
		cmocka_unit_test(test_header_injection),
		cmocka_unit_test(test_addresses),
		cmocka_unit_test(test_non_ascii_headers),
		cmocka_unit_test(test_size_ceiling),
		cmocka_unit_test(test_password_file),
		cmocka_unit_test(test_send_connect_failures),
	};
	const struct CMUnitTest live_tests[] = {
		cmocka_unit_test(test_send_plain),
		cmocka_unit_test(test_send_refusals),
		cmocka_unit_test(test_send_auth),
		cmocka_unit_test(test_send_starttls),
	};
	int fails;

	if (sodium_init() < 0)
		return 1;
	fails = cmocka_run_group_tests_name("mail_build", build_tests, NULL, NULL);
	fails += cmocka_run_group_tests_name("mail_send_live", live_tests, live_setup,
	    live_teardown);
	return fails;
}
