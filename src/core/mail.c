/*
 * mail.c — owns mail on the wire: building one RFC 5322/MIME message with sanitised
 * headers (RFC 2047 encoded words, folded at 76 columns) and quoted-printable bodies,
 * sending it with libcurl SMTP, and reading the SMTP password file.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "elevate/el.h"
#include "elevate/mail.h"

#define LINE_MAX_COLS  76      /* header and body lines, as RFC 2045/2047 ask */
#define EW_OVERHEAD    12      /* "=?UTF-8?B?" + "?=" */
#define MSGID_MAX      250
#define NAME_MAX_BYTES 256     /* a display name */
#define REPLY_MAX      256     /* the server's last reply kept for messages */

/* ---- validation helpers ---- */

static int
atext(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* local@domain, plain ASCII, nothing that could end an SMTP command or a header. */
static int
spec_valid(const char *s, size_t len)
{
	const char *at = memchr(s, '@', len);
	size_t ll, dl, i, lab = 0;

	if (at == NULL || len > MAIL_ADDR_MAX)
		return 0;
	ll = (size_t)(at - s);
	dl = len - ll - 1;
	if (ll == 0 || ll > 64 || dl == 0 || s[0] == '.' || s[ll - 1] == '.')
		return 0;
	for (i = 0; i < ll; i++) {
		if (s[i] == '.' && s[i + 1] == '.')
			return 0;
		if (s[i] != '.' && !atext((unsigned char)s[i]))
			return 0;
	}
	for (i = ll + 1; i < len; i++) {
		char c = s[i];

		if (c == '.') {
			if (lab == 0 || s[i - 1] == '-')
				return 0;
			lab = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-'))
			return 0;
		if (c == '-' && lab == 0)
			return 0;
		if (++lab > 63)
			return 0;
	}
	return lab > 0 && s[len - 1] != '-';
}

/*
 * Splits "Name <spec>" or "spec" into a display name (may be empty) and the addr-spec.
 * No control characters anywhere: nothing in an address can start a new header line.
 */
static enum el_err
addr_split(const char *addr, char *name, size_t namecap, char *spec, size_t speccap)
{
	const char *lt, *gt, *s, *e;
	size_t len, i;

	if (addr == NULL)
		return EL_EINVAL;
	len = strlen(addr);
	for (i = 0; i < len; i++)
		if ((unsigned char)addr[i] < 0x20 || addr[i] == 0x7f)
			return EL_EINVAL;
	if (!el_utf8_valid((const unsigned char *)addr, len))
		return EL_EINVAL;
	lt = strchr(addr, '<');
	if (lt == NULL) {
		s = addr;
		e = addr + len;
		name[0] = '\0';
	} else {
		gt = strchr(lt, '>');
		if (gt == NULL || strchr(lt + 1, '<') != NULL || strchr(gt + 1, '>') != NULL)
			return EL_EINVAL;
		for (e = gt + 1; *e == ' '; e++)
			;
		if (*e != '\0')
			return EL_EINVAL;
		/* the display name: trimmed, surrounding quotes dropped */
		s = addr;
		e = lt;
		while (s < e && *s == ' ')
			s++;
		while (e > s && e[-1] == ' ')
			e--;
		if (e - s >= 2 && *s == '"' && e[-1] == '"') {
			s++;
			e--;
		}
		if ((size_t)(e - s) >= namecap || memchr(s, '>', (size_t)(e - s)) != NULL)
			return EL_EINVAL;
		memcpy(name, s, (size_t)(e - s));
		name[e - s] = '\0';
		s = lt + 1;
		e = gt;
	}
	while (s < e && *s == ' ')
		s++;
	while (e > s && e[-1] == ' ')
		e--;
	if ((size_t)(e - s) >= speccap || !spec_valid(s, (size_t)(e - s)))
		return EL_EINVAL;
	memcpy(spec, s, (size_t)(e - s));
	spec[e - s] = '\0';
	return EL_OK;
}

enum el_err
mail_addr_spec(const char *addr, char *out, size_t outlen)
{
	char name[NAME_MAX_BYTES];
	char spec[MAIL_ADDR_MAX + 1];

	if (addr_split(addr, name, sizeof(name), spec, sizeof(spec)) != EL_OK)
		return EL_EINVAL;
	if (el_strlcpy(out, spec, outlen) >= outlen)
		return EL_EINVAL;
	return EL_OK;
}

/* ---- header writer: folds between tokens to stay within 76 columns ---- */

struct hdr {
	struct dbuf *b;
	size_t col;
};

static enum el_err
hdr_start(struct hdr *h, const char *field)
{
	h->col = strlen(field) + 1;
	return dbuf_printf(h->b, "%s:", field);
}

/* Adds a token preceded by a space, or by a fold when it would pass the limit. */
static enum el_err
hdr_token(struct hdr *h, const char *s, size_t n)
{
	enum el_err r;

	if (h->col + 1 + n > LINE_MAX_COLS && h->col > 1) {
		if ((r = dbuf_add(h->b, "\r\n ", 3)) != EL_OK)
			return r;
		h->col = 1;
	} else {
		if ((r = dbuf_add(h->b, " ", 1)) != EL_OK)
			return r;
		h->col++;
	}
	if ((r = dbuf_add(h->b, s, n)) != EL_OK)
		return r;
	h->col += n;
	return EL_OK;
}

static enum el_err
hdr_end(struct hdr *h)
{
	return dbuf_add(h->b, "\r\n", 2);
}

/*
 * Writes s as RFC 2047 B encoded words, each whole characters only and each fitting
 * the line it goes on (at most 75 characters); readers drop the space between them.
 */
static enum el_err
hdr_encoded(struct hdr *h, const char *s, size_t len)
{
	char word[LINE_MAX_COLS + EW_OVERHEAD + 1];
	char b64[LINE_MAX_COLS];
	size_t off = 0, room, maxbytes, n;
	enum el_err r;

	while (off < len) {
		/* room for the word after the separating space, or on a fresh line */
		if (h->col + 1 + EW_OVERHEAD + 8 <= LINE_MAX_COLS)
			room = LINE_MAX_COLS - h->col - 1;
		else
			room = LINE_MAX_COLS - 1;
		if (room > 75)
			room = 75;
		maxbytes = (room - EW_OVERHEAD) / 4 * 3;
		n = len - off < maxbytes ? len - off : maxbytes;
		while (n > 0 && off + n < len && ((unsigned char)s[off + n] & 0xc0) == 0x80)
			n--;   /* never split a character */
		if (n == 0)
			return EL_EINVAL;
		sodium_bin2base64(b64, sizeof(b64), (const unsigned char *)s + off, n,
		    sodium_base64_VARIANT_ORIGINAL);
		snprintf(word, sizeof(word), "=?UTF-8?B?%s?=", b64);
		if ((r = hdr_token(h, word, strlen(word))) != EL_OK)
			return r;
		off += n;
	}
	return EL_OK;
}

/* Plain words when s is short printable ASCII that cannot look like an encoded word. */
static int
plain_ok(const char *s, int for_name)
{
	size_t word = 0;

	if (strstr(s, "=?") != NULL)
		return 0;
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return 0;
		if (for_name && *s != ' ' && !atext((unsigned char)*s))
			return 0;
		word = *s == ' ' ? 0 : word + 1;
		if (word > LINE_MAX_COLS - 12)
			return 0;
	}
	return 1;
}

/* Writes text (one line, already sanitised) as plain words or encoded words. */
static enum el_err
hdr_text(struct hdr *h, const char *s, int for_name)
{
	const char *p = s, *e;
	enum el_err r;

	if (!plain_ok(s, for_name))
		return hdr_encoded(h, s, strlen(s));
	while (*p != '\0') {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		for (e = p; *e != '\0' && *e != ' '; e++)
			;
		if ((r = hdr_token(h, p, (size_t)(e - p))) != EL_OK)
			return r;
		p = e;
	}
	return EL_OK;
}

static enum el_err
hdr_address(struct hdr *h, const char *addr, int last, struct el_why *w)
{
	char name[NAME_MAX_BYTES];
	char spec[MAIL_ADDR_MAX + 4];
	char tok[MAIL_ADDR_MAX + 8];
	enum el_err r;

	if (addr_split(addr, name, sizeof(name), spec, sizeof(spec) - 3) != EL_OK)
		return el_fail(w, EL_EINVAL, "not a valid mail address: '%.80s'",
		    addr ? addr : "(null)");
	if (name[0] != '\0' && (r = hdr_text(h, name, 1)) != EL_OK)
		return r;
	snprintf(tok, sizeof(tok), "%s%s%s%s", name[0] ? "<" : "", spec, name[0] ? ">" : "",
	    last ? "" : ",");
	return hdr_token(h, tok, strlen(tok));
}

/* Subject: CR, LF and tab become spaces, other controls go, spaces are trimmed. */
static enum el_err
clean_subject(const char *in, char **out)
{
	size_t i, n = 0, len = strlen(in);
	char *s;

	if ((s = malloc(len + 1)) == NULL)
		return EL_ENOMEM;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == '\r' || c == '\n' || c == '\t')
			c = ' ';
		else if (c < 0x20 || c == 0x7f)
			continue;
		if (c == ' ' && (n == 0 || s[n - 1] == ' '))
			continue;
		s[n++] = (char)c;
	}
	while (n > 0 && s[n - 1] == ' ')
		n--;
	s[n] = '\0';
	*out = s;
	return EL_OK;
}

static int
msgid_valid(const char *id)
{
	size_t len, i;

	if (id == NULL || (len = strlen(id)) < 5 || len > MSGID_MAX || id[0] != '<' ||
	    id[len - 1] != '>')
		return 0;
	for (i = 1; i < len - 1; i++)
		if ((unsigned char)id[i] < 0x21 || (unsigned char)id[i] > 0x7e ||
		    id[i] == '<' || id[i] == '>' || id[i] == '"' || id[i] == '\\')
			return 0;
	return memchr(id, '@', len) != NULL;
}

/* ---- body: quoted-printable, CRLF lines, at most 76 columns ---- */

static enum el_err
qp_encode(struct dbuf *b, const char *s)
{
	static const char hx[] = "0123456789ABCDEF";
	/* One output line at a time: at most LINE_MAX_COLS - 1 columns and "=\r\n". */
	char out[LINE_MAX_COLS + 8];
	const char *line = s, *nl, *end;
	size_t col, i;
	enum el_err r;

	for (;;) {
		nl = strchr(line, '\n');
		end = nl != NULL ? nl : line + strlen(line);
		if (end > line && end[-1] == '\r' && nl != NULL)
			end--;
		col = 0;
		for (i = 0; line + i < end; i++) {
			unsigned char c = (unsigned char)line[i];
			int literal = (c >= 33 && c <= 126 && c != '=') ||
			    ((c == ' ' || c == '\t') && line + i + 1 < end);

			/* A "." or "From " opening a line is encoded: no transport can mangle it. */
			if (i == 0 && (c == '.' || (c == 'F' && strncmp(line, "From ", 5) == 0)))
				literal = 0;
			if (col + (literal ? 1 : 3) > LINE_MAX_COLS - 1) {
				memcpy(out + col, "=\r\n", 3);
				if ((r = dbuf_add(b, out, col + 3)) != EL_OK)
					return r;
				col = 0;
			}
			if (literal)
				out[col++] = (char)c;
			else {
				out[col++] = '=';
				out[col++] = hx[c >> 4];
				out[col++] = hx[c & 15];
			}
		}
		if (col > 0 && (r = dbuf_add(b, out, col)) != EL_OK)
			return r;
		if (nl == NULL)
			return EL_OK;
		if ((r = dbuf_add(b, "\r\n", 2)) != EL_OK)
			return r;
		line = nl + 1;
		if (*line == '\0')
			return EL_OK;
	}
}

static enum el_err
add_part_headers(struct dbuf *b, const char *type)
{
	return dbuf_printf(b, "Content-Type: %s; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n", type);
}

static void
format_date(int64_t t, char *buf, size_t len)
{
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *const mons[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul",
	    "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	/* Names by hand: strftime's %a and %b follow the locale. */
	snprintf(buf, len, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday],
	    tm.tm_mday, mons[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static enum el_err
build(const struct mail_msg *m, struct dbuf *b, struct el_why *w)
{
	unsigned char hash[16];
	char boundary[64], hex[33], date[64];
	char *subject = NULL;
	struct hdr h = { b, 0 };
	crypto_generichash_state st;
	size_t i;
	enum el_err r;

	if (m->to == NULL || m->nto == 0)
		return el_fail(w, EL_EINVAL, "a mail needs at least one recipient");
	if (m->text == NULL || m->subject == NULL)
		return el_fail(w, EL_EINVAL, "a mail needs a subject and a text body");
	if (!msgid_valid(m->message_id))
		return el_fail(w, EL_EINVAL, "not a valid Message-ID: '%.80s'",
		    m->message_id ? m->message_id : "(null)");
	if (!el_utf8_valid((const unsigned char *)m->subject, strlen(m->subject)) ||
	    !el_utf8_valid((const unsigned char *)m->text, strlen(m->text)) ||
	    (m->html != NULL && !el_utf8_valid((const unsigned char *)m->html, strlen(m->html))))
		return el_fail(w, EL_EINVAL, "mail subject or body is not valid UTF-8");

	format_date(m->date, date, sizeof(date));
	if ((r = dbuf_printf(b, "Date: %s\r\n", date)) != EL_OK)
		goto out;
	if ((r = hdr_start(&h, "From")) != EL_OK ||
	    (r = hdr_address(&h, m->from, 1, w)) != EL_OK || (r = hdr_end(&h)) != EL_OK)
		goto out;
	if ((r = hdr_start(&h, "To")) != EL_OK)
		goto out;
	for (i = 0; i < m->nto; i++)
		if ((r = hdr_address(&h, m->to[i], i + 1 == m->nto, w)) != EL_OK)
			goto out;
	if ((r = hdr_end(&h)) != EL_OK)
		goto out;
	if ((r = clean_subject(m->subject, &subject)) != EL_OK)
		goto out;
	if ((r = hdr_start(&h, "Subject")) != EL_OK || (r = hdr_text(&h, subject, 0)) != EL_OK ||
	    (r = hdr_end(&h)) != EL_OK)
		goto out;
	if ((r = dbuf_printf(b, "Message-ID: %s\r\nMIME-Version: 1.0\r\n"
	    "Auto-Submitted: auto-generated\r\n", m->message_id)) != EL_OK)
		goto out;
	if (m->html == NULL) {
		if ((r = add_part_headers(b, "text/plain")) == EL_OK &&
		    (r = qp_encode(b, m->text)) == EL_OK)
			r = dbuf_adds(b, "\r\n");
		goto out;
	}
	/* "=_" never occurs in quoted-printable text, so no body can contain the boundary. */
	crypto_generichash_init(&st, NULL, 0, sizeof(hash));
	crypto_generichash_update(&st, (const unsigned char *)m->message_id,
	    strlen(m->message_id));
	crypto_generichash_update(&st, (const unsigned char *)date, strlen(date));
	crypto_generichash_final(&st, hash, sizeof(hash));
	el_hex(hash, sizeof(hash), hex);
	snprintf(boundary, sizeof(boundary), "=_elevate_%s", hex);
	if ((r = dbuf_printf(b, "Content-Type: multipart/alternative;\r\n boundary=\"%s\"\r\n"
	    "\r\nThis is a MIME message with text and HTML versions.\r\n"
	    "\r\n--%s\r\n", boundary, boundary)) != EL_OK)
		goto out;
	if ((r = add_part_headers(b, "text/plain")) != EL_OK ||
	    (r = qp_encode(b, m->text)) != EL_OK ||
	    (r = dbuf_printf(b, "\r\n--%s\r\n", boundary)) != EL_OK)
		goto out;
	if ((r = add_part_headers(b, "text/html")) != EL_OK ||
	    (r = qp_encode(b, m->html)) != EL_OK ||
	    (r = dbuf_printf(b, "\r\n--%s--\r\n", boundary)) != EL_OK)
		goto out;
out:
	free(subject);
	if (r == EL_ETOOBIG)
		el_fail(w, r, "mail larger than %d bytes", MAIL_MAX_SIZE);
	return r;
}

enum el_err
mail_build(const struct mail_msg *m, struct dbuf *out, struct el_why *w)
{
	enum el_err r;

	dbuf_init(out, MAIL_MAX_SIZE);
	if ((r = build(m, out, w)) != EL_OK)
		dbuf_free(out);
	return r;
}

/* ---- sending ---- */

struct upload {
	const char *p;
	size_t len;
	size_t off;
};

static size_t
read_cb(char *buf, size_t size, size_t nitems, void *ud)
{
	struct upload *u = ud;
	size_t n = size * nitems;

	if (n > u->len - u->off)
		n = u->len - u->off;
	memcpy(buf, u->p + u->off, n);
	u->off += n;
	return n;
}

/*
 * Keeps the server's first 4xx/5xx reply line, the one that says why (later ones are
 * the QUIT). What we send, AUTH included, is never looked at.
 */
static int
debug_cb(CURL *c, curl_infotype type, char *data, size_t size, void *ud)
{
	char *last = ud;
	size_t n = size, i;

	(void)c;
	if (type != CURLINFO_HEADER_IN || last[0] != '\0' || size == 0 ||
	    (data[0] != '4' && data[0] != '5'))
		return 0;
	while (n > 0 && (data[n - 1] == '\n' || data[n - 1] == '\r'))
		n--;
	if (n >= REPLY_MAX)
		n = REPLY_MAX - 1;
	for (i = 0; i < n; i++)
		last[i] = (data[i] >= 0x20 && data[i] < 0x7f) ? data[i] : '?';
	last[n] = '\0';
	return 0;
}

static int
loopback_host(const char *host)
{
	return strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
	    strcmp(host, "[::1]") == 0 || strcmp(host, "::1") == 0;
}

/* Checks the URL: smtp or smtps, a host; says whether it is TLS from the start. */
static enum el_err
check_url(const char *url, int *smtps, int *loopback, struct el_why *w)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL;
	enum el_err r = EL_OK;

	if (u == NULL)
		return EL_ENOMEM;
	if (url == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		r = el_fail(w, EL_EINVAL, "not a valid SMTP URL: '%.100s'", url ? url : "");
		goto out;
	}
	if (strcmp(scheme, "smtp") != 0 && strcmp(scheme, "smtps") != 0) {
		r = el_fail(w, EL_EINVAL, "SMTP URL must start with smtp:// or smtps://");
		goto out;
	}
	*smtps = strcmp(scheme, "smtps") == 0;
	*loopback = loopback_host(host);
out:
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return r;
}

static enum el_err
classify(CURLcode cc, CURL *c, const char *url, const char *errbuf, const char *reply,
    struct el_why *w)
{
	long code = 0;
	const char *what;

	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	switch (cc) {
	case CURLE_OK:
		return EL_OK;
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		return el_fail(w, EL_EINVAL, "SMTP URL %s: %s", url, errbuf);
	case CURLE_COULDNT_RESOLVE_HOST:
		return el_fail(w, EL_ENET, "SMTP server %s: host not found", url);
	case CURLE_COULDNT_CONNECT:
		return el_fail(w, EL_ENET, "SMTP server %s: cannot connect (%s)", url, errbuf);
	case CURLE_OPERATION_TIMEDOUT:
		return el_fail(w, EL_ETIMEOUT, "SMTP server %s: timed out (%s)", url, errbuf);
	case CURLE_LOGIN_DENIED:
		return el_fail(w, EL_EAUTH, "SMTP server %s refused the login: %s", url,
		    reply[0] ? reply : errbuf);
	case CURLE_USE_SSL_FAILED:
		return el_fail(w, EL_ENET, "SMTP server %s does not offer STARTTLS, which is "
		    "required", url);
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
		return el_fail(w, EL_ENET, "SMTP server %s: TLS failed: %s", url, errbuf);
	default:
		break;
	}
	if (strncmp(errbuf, "RCPT failed", 11) == 0)
		what = "refused a recipient";
	else if (strncmp(errbuf, "MAIL failed", 11) == 0)
		what = "refused the sender";
	else if (code >= 400)
		what = "refused the message";
	else
		return el_fail(w, EL_ENET, "SMTP server %s: %s", url,
		    errbuf[0] ? errbuf : curl_easy_strerror(cc));
	return el_fail(w, code >= 500 ? EL_EPERM : EL_ENET, "SMTP server %s %s: %s", url, what,
	    reply[0] ? reply : errbuf);
}

/* "<addr" to "<addr>"; the buffer was sized for it. */
static void
append_gt(char *spec)
{
	size_t l = strlen(spec);

	spec[l] = '>';
	spec[l + 1] = '\0';
}

enum el_err
mail_send(const struct mail_server *srv, const char *from, const char *const *rcpt,
    size_t nrcpt, const struct dbuf *message, struct el_why *w)
{
	char spec[MAIL_ADDR_MAX + 3];
	char errbuf[CURL_ERROR_SIZE];
	char reply[REPLY_MAX];
	struct curl_slist *list = NULL, *nl;
	struct upload up;
	CURL *c = NULL;
	CURLcode cc;
	long timeout;
	int smtps = 0, loopback = 0;
	size_t i;
	enum el_err r;

	if (message == NULL || message->p == NULL || message->len == 0)
		return el_fail(w, EL_EINVAL, "empty mail");
	if (nrcpt == 0)
		return el_fail(w, EL_EINVAL, "a mail needs at least one recipient");
	if ((r = check_url(srv->url, &smtps, &loopback, w)) != EL_OK)
		return r;
	if (srv->username != NULL && srv->password != NULL && !smtps &&
	    !srv->require_starttls && !loopback)
		return el_fail(w, EL_EINVAL, "refusing to send the SMTP password without TLS to "
		    "%s: use smtps:// or require STARTTLS", srv->url);
	for (i = 0; i < nrcpt; i++) {
		spec[0] = '<';
		if (mail_addr_spec(rcpt[i], spec + 1, sizeof(spec) - 2) != EL_OK) {
			r = el_fail(w, EL_EINVAL, "not a valid recipient: '%.80s'",
			    rcpt[i] ? rcpt[i] : "(null)");
			goto out;
		}
		append_gt(spec);
		if ((nl = curl_slist_append(list, spec)) == NULL) {
			r = EL_ENOMEM;
			goto out;
		}
		list = nl;
	}
	spec[0] = '<';
	if (mail_addr_spec(from, spec + 1, sizeof(spec) - 2) != EL_OK) {
		r = el_fail(w, EL_EINVAL, "not a valid sender: '%.80s'", from ? from : "(null)");
		goto out;
	}
	append_gt(spec);
	if ((c = curl_easy_init()) == NULL) {
		r = EL_ENOMEM;
		goto out;
	}
	timeout = srv->timeout_ms > 0 ? srv->timeout_ms : 30000;
	up.p = message->p;
	up.len = message->len;
	up.off = 0;
	errbuf[0] = '\0';
	reply[0] = '\0';
	curl_easy_setopt(c, CURLOPT_URL, srv->url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
	curl_easy_setopt(c, CURLOPT_MAIL_FROM, spec);
	curl_easy_setopt(c, CURLOPT_MAIL_RCPT, list);
	curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
	curl_easy_setopt(c, CURLOPT_READDATA, &up);
	curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)message->len);
	/* Opportunistic STARTTLS is not used: with verification on it would break local
	 * relays with self-signed certificates; ask for it with require_starttls. */
	curl_easy_setopt(c, CURLOPT_USE_SSL,
	    (long)(srv->require_starttls ? CURLUSESSL_ALL : CURLUSESSL_NONE));
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (srv->ca_file != NULL)
		curl_easy_setopt(c, CURLOPT_CAINFO, srv->ca_file);
	if (srv->username != NULL) {
		curl_easy_setopt(c, CURLOPT_USERNAME, srv->username);
		if (srv->password != NULL)
			curl_easy_setopt(c, CURLOPT_PASSWORD, srv->password);
	}
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout < 10000 ? timeout : 10000L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_VERBOSE, 1L);   /* only for debug_cb: it logs nothing */
	curl_easy_setopt(c, CURLOPT_DEBUGFUNCTION, debug_cb);
	curl_easy_setopt(c, CURLOPT_DEBUGDATA, reply);
	cc = curl_easy_perform(c);
	r = classify(cc, c, srv->url, errbuf, reply, w);
out:
	if (c != NULL)
		curl_easy_cleanup(c);
	curl_slist_free_all(list);
	return r;
}

/* ---- password file ---- */

void
mail_password_free(char *p)
{
	el_password_free(p);
}

enum el_err
mail_read_password_file(const char *path, char **out, struct el_why *w)
{
	return el_read_password_file(path, "SMTP password file", out, w);
}
