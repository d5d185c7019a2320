/*
 * sigv4.c — owns AWS Signature Version 4 header signing: the canonical request, the
 * string to sign, the HMAC-SHA256 key chain and the Authorization header value.
 * Pure computation on the caller's inputs; SHA-256 and HMAC come from OpenSSL.
 *
 * Where the SigV4 documents leave room, this follows botocore's SigV4Auth (the
 * reference tests/integration/test_sigv4_botocore.py compares against): path
 * normalisation as botocore's remove_dot_segments, header values trimmed and inner
 * whitespace runs collapsed, sort orders by byte value.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "elevate/el.h"
#include "elevate/sigv4.h"

#define SHA256_LEN 32
#define SIGV4_ALGO "AWS4-HMAC-SHA256"

struct canon_header {
	char *name;             /* lowercased */
	char *value;            /* trimmed, inner whitespace collapsed */
	size_t order;           /* input position: repeated headers keep their order */
};

struct canon_param {
	char *key;              /* RFC 3986-encoded */
	char *value;
};

static int
is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
}

/* The whitespace botocore's str.split() drops, restricted to ASCII. */
static int
is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* RFC 7230 token characters: what a header name or a method may contain. */
static int
is_tchar(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int
is_token(const char *s)
{
	if (s == NULL || *s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (!is_tchar((unsigned char)*s))
			return 0;
	return 1;
}

/* Credential scope parts end up between '/' in the scope and the Authorization value. */
static int
is_scope_part(const char *s, size_t max)
{
	size_t n;

	if (s == NULL || *s == '\0')
		return 0;
	for (n = 0; s[n] != '\0'; n++) {
		if (n >= max)
			return 0;
		if (s[n] == '/' || s[n] == ',' || is_ws((unsigned char)s[n]) ||
		    (unsigned char)s[n] < 0x20 || s[n] == 0x7f)
			return 0;
	}
	return 1;
}

static int
is_amz_date(const char *s)
{
	size_t i;

	if (s == NULL || strlen(s) != SIGV4_AMZ_DATE_LEN)
		return 0;
	for (i = 0; i < SIGV4_AMZ_DATE_LEN; i++) {
		if (i == 8) {
			if (s[i] != 'T')
				return 0;
		} else if (i == 15) {
			if (s[i] != 'Z')
				return 0;
		} else if (s[i] < '0' || s[i] > '9')
			return 0;
	}
	return 1;
}

enum el_err
sigv4_uri_encode(struct dbuf *b, const char *s, size_t len, int keep_slash)
{
	static const char hx[] = "0123456789ABCDEF";
	unsigned char c;
	char esc[3];
	size_t i, run;
	enum el_err r;

	for (i = 0; i < len; ) {
		/* Copy runs of kept bytes in one go; escape the rest one by one. */
		for (run = i; run < len; run++) {
			c = (unsigned char)s[run];
			if (!is_unreserved(c) && !(keep_slash && c == '/'))
				break;
		}
		if (run > i && (r = dbuf_add(b, s + i, run - i)) != EL_OK)
			return r;
		if (run >= len)
			break;
		c = (unsigned char)s[run];
		esc[0] = '%';
		esc[1] = hx[c >> 4];
		esc[2] = hx[c & 15];
		if ((r = dbuf_add(b, esc, 3)) != EL_OK)
			return r;
		i = run + 1;
	}
	return EL_OK;
}

enum el_err
sigv4_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_Digest(data != NULL ? data : "", len, md, &mdlen, EVP_sha256(),
	    NULL) != 1 || mdlen != SHA256_LEN)
		return EL_ECRYPTO;
	el_hex(md, SHA256_LEN, out);
	return EL_OK;
}

enum el_err
sigv4_format_amz_date(int64_t t, char *buf, size_t len)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (len < SIGV4_AMZ_DATE_LEN + 1 || gmtime_r(&tt, &tm) == NULL)
		return EL_EINVAL;
	if (strftime(buf, len, "%Y%m%dT%H%M%SZ", &tm) != SIGV4_AMZ_DATE_LEN)
		return EL_EINVAL;
	return EL_OK;
}

static enum el_err
hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
    unsigned char out[SHA256_LEN])
{
	unsigned int outlen = 0;

	if (HMAC(EVP_sha256(), key, (int)keylen, msg, msglen, out, &outlen) == NULL ||
	    outlen != SHA256_LEN)
		return EL_ECRYPTO;
	return EL_OK;
}

/*
 * Path normalisation as botocore's remove_dot_segments: drop empty and "." segments,
 * ".." pops one, keep the leading '/' and a trailing '/' unless nothing is left.
 */
static enum el_err
normalize_path(const char *path, size_t len, struct dbuf *out)
{
	struct seg {
		size_t off;
		size_t len;
	} *segs = NULL;
	size_t nsegs = 0, cap = 1, i, start, sl;
	enum el_err r = EL_OK;

	for (i = 0; i < len; i++)
		if (path[i] == '/')
			cap++;
	if ((segs = calloc(cap, sizeof(*segs))) == NULL)
		return EL_ENOMEM;
	for (i = 0, start = 0; i <= len; i++) {
		if (i < len && path[i] != '/')
			continue;
		sl = i - start;
		if (sl == 2 && path[start] == '.' && path[start + 1] == '.') {
			if (nsegs > 0)
				nsegs--;
		} else if (sl > 0 && !(sl == 1 && path[start] == '.')) {
			segs[nsegs].off = start;
			segs[nsegs].len = sl;
			nsegs++;
		}
		start = i + 1;
	}
	if (path[0] == '/' && (r = dbuf_add(out, "/", 1)) != EL_OK)
		goto out;
	for (i = 0; i < nsegs; i++) {
		if (i > 0 && (r = dbuf_add(out, "/", 1)) != EL_OK)
			goto out;
		if ((r = dbuf_add(out, path + segs[i].off, segs[i].len)) != EL_OK)
			goto out;
	}
	if (path[len - 1] == '/' && nsegs > 0)
		r = dbuf_add(out, "/", 1);
out:
	free(segs);
	return r;
}

static enum el_err
canonical_path(const struct sigv4_request *req, const struct sigv4_params *p,
    struct dbuf *cr)
{
	struct dbuf norm;
	const char *path = req->path != NULL ? req->path : "";
	size_t len = strnlen(path, SIGV4_MAX_CANONICAL + 1);
	enum el_err r;

	if (len > SIGV4_MAX_CANONICAL)
		return EL_ETOOBIG;
	if (len == 0) {
		path = "/";
		len = 1;
	}
	dbuf_init(&norm, SIGV4_MAX_CANONICAL);
	if (p->normalize_path) {
		if ((r = normalize_path(path, len, &norm)) != EL_OK)
			goto out;
	} else if ((r = dbuf_add(&norm, path, len)) != EL_OK)
		goto out;
	if (p->double_encode_path)
		r = sigv4_uri_encode(cr, norm.p, norm.len, 1);
	else
		r = dbuf_add(cr, norm.p, norm.len);
out:
	dbuf_free(&norm);
	return r;
}

/* Percent-decodes s[0..len) and re-encodes it; malformed escapes stay literal. */
static enum el_err
recode_component(const char *s, size_t len, char **out)
{
	struct dbuf dec, enc;
	size_t i;
	int hi, lo;
	char c;
	enum el_err r;

	*out = NULL;
	dbuf_init(&dec, SIGV4_MAX_CANONICAL);
	dbuf_init(&enc, SIGV4_MAX_CANONICAL);
	if ((r = dbuf_add(&dec, "", 0)) != EL_OK)
		goto out;
	for (i = 0; i < len; i++) {
		c = s[i];
		if (c == '%' && i + 2 < len &&
		    (hi = el_hexval((unsigned char)s[i + 1])) >= 0 &&
		    (lo = el_hexval((unsigned char)s[i + 2])) >= 0) {
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		if ((r = dbuf_add(&dec, &c, 1)) != EL_OK)
			goto out;
	}
	if ((r = dbuf_add(&enc, "", 0)) != EL_OK)
		goto out;
	if ((r = sigv4_uri_encode(&enc, dec.p, dec.len, 0)) != EL_OK)
		goto out;
	*out = dbuf_take(&enc);
	if (*out == NULL)
		r = EL_ENOMEM;
out:
	dbuf_free(&dec);
	dbuf_free(&enc);
	return r;
}

static int
param_cmp(const void *a, const void *b)
{
	const struct canon_param *x = a, *y = b;
	int c;

	if ((c = strcmp(x->key, y->key)) != 0)
		return c;
	return strcmp(x->value, y->value);
}

static enum el_err
canonical_query(const char *query, struct dbuf *cr)
{
	struct canon_param *params = NULL;
	size_t n = 0, cap = 0, qlen, i, start, end, eq;
	enum el_err r = EL_OK;

	if (query == NULL || *query == '\0')
		return EL_OK;
	if ((qlen = strnlen(query, SIGV4_MAX_CANONICAL + 1)) > SIGV4_MAX_CANONICAL)
		return EL_ETOOBIG;
	for (i = 0; i < qlen; i++)
		if (query[i] == '&')
			cap++;
	if (++cap > SIGV4_MAX_QUERY_PARAMS) {
		/* Empty pieces do not count; recount only when the cheap bound fails. */
		for (i = 0, start = 0, cap = 0; i <= qlen; i++) {
			if (i < qlen && query[i] != '&')
				continue;
			if (i > start)
				cap++;
			start = i + 1;
		}
		if (cap > SIGV4_MAX_QUERY_PARAMS)
			return EL_ETOOBIG;
		if (cap == 0)
			return EL_OK;
	}
	if ((params = calloc(cap, sizeof(*params))) == NULL)
		return EL_ENOMEM;
	for (i = 0, start = 0; i <= qlen; i++) {
		if (i < qlen && query[i] != '&')
			continue;
		end = i;
		if (end > start) {
			for (eq = start; eq < end && query[eq] != '='; eq++)
				;
			if ((r = recode_component(query + start, eq - start,
			    &params[n].key)) != EL_OK)
				goto out;
			n++;
			if ((r = recode_component(query + eq + (eq < end),
			    end - eq - (eq < end), &params[n - 1].value)) != EL_OK)
				goto out;
		}
		start = i + 1;
	}
	qsort(params, n, sizeof(*params), param_cmp);
	for (i = 0; i < n; i++) {
		if (i > 0 && (r = dbuf_add(cr, "&", 1)) != EL_OK)
			goto out;
		if ((r = dbuf_adds(cr, params[i].key)) != EL_OK ||
		    (r = dbuf_add(cr, "=", 1)) != EL_OK ||
		    (r = dbuf_adds(cr, params[i].value)) != EL_OK)
			goto out;
	}
out:
	for (i = 0; i < n; i++) {
		free(params[i].key);
		free(params[i].value);
	}
	free(params);
	return r;
}

/* Trimmed copy of v with each inner whitespace run collapsed to one space. */
static enum el_err
canon_value(const char *v, char **out)
{
	size_t len = strnlen(v, SIGV4_MAX_CANONICAL + 1), i, o = 0;
	int pending = 0;
	char *s;

	*out = NULL;
	if (len > SIGV4_MAX_CANONICAL)
		return EL_ETOOBIG;
	if ((s = malloc(len + 1)) == NULL)
		return EL_ENOMEM;
	for (i = 0; i < len; i++) {
		if (is_ws((unsigned char)v[i])) {
			pending = o > 0;
			continue;
		}
		if (pending)
			s[o++] = ' ';
		pending = 0;
		s[o++] = v[i];
	}
	s[o] = '\0';
	*out = s;
	return EL_OK;
}

/* h has room for the caller's headers plus the two the signer may add. */
static enum el_err
add_header(struct canon_header *h, size_t *n, const char *name, const char *value)
{
	size_t i;
	enum el_err r;

	if (!is_token(name))
		return EL_EINVAL;
	if (value == NULL)
		value = "";
	if ((h[*n].name = strdup(name)) == NULL)
		return EL_ENOMEM;
	for (i = 0; h[*n].name[i] != '\0'; i++)
		if (h[*n].name[i] >= 'A' && h[*n].name[i] <= 'Z')
			h[*n].name[i] = (char)(h[*n].name[i] - 'A' + 'a');
	if ((r = canon_value(value, &h[*n].value)) != EL_OK) {
		free(h[*n].name);
		h[*n].name = NULL;
		return r;
	}
	h[*n].order = *n;
	(*n)++;
	return EL_OK;
}

static int
header_cmp(const void *a, const void *b)
{
	const struct canon_header *x = a, *y = b;
	int c;

	if ((c = strcmp(x->name, y->name)) != 0)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

/*
 * Appends the canonical headers block (each "name:v1,v2\n") to cr and the signed
 * headers list to sh, adding x-amz-date and x-amz-security-token as the header says.
 */
static enum el_err
canonical_headers(const struct sigv4_request *req, const struct sigv4_params *p,
    struct dbuf *cr, struct dbuf *sh)
{
	struct canon_header *h = NULL;
	char *tok = NULL;
	size_t n = 0, i;
	int have_date = 0, have_token = 0;
	enum el_err r = EL_OK;

	if (req->nheaders > SIGV4_MAX_HEADERS)
		return EL_ETOOBIG;
	if (req->nheaders > 0 && req->headers == NULL)
		return EL_EINVAL;
	if ((h = calloc(req->nheaders + 2, sizeof(*h))) == NULL)
		return EL_ENOMEM;
	for (i = 0; i < req->nheaders; i++) {
		if ((r = add_header(h, &n, req->headers[i].name,
		    req->headers[i].value)) != EL_OK)
			goto out;
		if (strcmp(h[n - 1].name, "x-amz-date") == 0) {
			if (strcmp(h[n - 1].value, p->amz_date) != 0) {
				r = EL_EINVAL;
				goto out;
			}
			have_date = 1;
		} else if (strcmp(h[n - 1].name, "x-amz-security-token") == 0) {
			/* Compared after trimming, as the value is signed; trimmed once however
			 * often the header comes. */
			if (p->session_token != NULL) {
				if (tok == NULL && (r = canon_value(p->session_token, &tok)) != EL_OK)
					goto out;
				if (strcmp(tok, h[n - 1].value) != 0) {
					r = EL_EINVAL;
					goto out;
				}
			}
			have_token = 1;
		}
	}
	if (!have_date && (r = add_header(h, &n, "x-amz-date", p->amz_date)) != EL_OK)
		goto out;
	if (p->session_token != NULL && !p->omit_session_token && !have_token &&
	    (r = add_header(h, &n, "x-amz-security-token", p->session_token)) != EL_OK)
		goto out;
	qsort(h, n, sizeof(*h), header_cmp);
	for (i = 0; i < n; i++) {
		if (i > 0 && strcmp(h[i].name, h[i - 1].name) == 0) {
			r = dbuf_add(cr, ",", 1);
		} else {
			if (i > 0 && ((r = dbuf_add(cr, "\n", 1)) != EL_OK ||
			    (r = dbuf_add(sh, ";", 1)) != EL_OK))
				goto out;
			if ((r = dbuf_adds(cr, h[i].name)) != EL_OK ||
			    (r = dbuf_add(cr, ":", 1)) != EL_OK)
				goto out;
			r = dbuf_adds(sh, h[i].name);
		}
		if (r != EL_OK || (r = dbuf_adds(cr, h[i].value)) != EL_OK)
			goto out;
	}
	r = dbuf_add(cr, "\n", 1);
out:
	free(tok);
	for (i = 0; i < n; i++) {
		free(h[i].name);
		free(h[i].value);
	}
	free(h);
	return r;
}

static int
valid_payload_hash(const char *s)
{
	size_t n;

	if (*s == '\0')
		return 0;
	for (n = 0; s[n] != '\0'; n++)
		if (n >= 256 || is_ws((unsigned char)s[n]) || (unsigned char)s[n] < 0x20)
			return 0;
	return 1;
}

/* kSigning = HMAC chain "AWS4"+secret -> date -> region -> service -> "aws4_request". */
static enum el_err
sign_string(const struct sigv4_params *p, const char *sts, size_t stslen,
    char sig[2 * SHA256_LEN + 1])
{
	unsigned char kbuf[4 + SIGV4_MAX_SECRET];
	unsigned char k1[SHA256_LEN], k2[SHA256_LEN], mac[SHA256_LEN];
	size_t slen = strnlen(p->secret_key, SIGV4_MAX_SECRET + 1);
	enum el_err r;

	if (slen > SIGV4_MAX_SECRET) {
		r = EL_ETOOBIG;
		goto out;
	}
	memcpy(kbuf, "AWS4", 4);
	memcpy(kbuf + 4, p->secret_key, slen);
	if ((r = hmac_sha256(kbuf, 4 + slen, p->amz_date, 8, k1)) != EL_OK ||
	    (r = hmac_sha256(k1, SHA256_LEN, p->region, strlen(p->region), k2)) != EL_OK ||
	    (r = hmac_sha256(k2, SHA256_LEN, p->service, strlen(p->service), k1)) != EL_OK ||
	    (r = hmac_sha256(k1, SHA256_LEN, "aws4_request", 12, k2)) != EL_OK ||
	    (r = hmac_sha256(k2, SHA256_LEN, sts, stslen, mac)) != EL_OK)
		goto out;
	el_hex(mac, SHA256_LEN, sig);
out:
	sodium_memzero(kbuf, sizeof(kbuf));
	sodium_memzero(k1, sizeof(k1));
	sodium_memzero(k2, sizeof(k2));
	sodium_memzero(mac, sizeof(mac));
	return r;
}

static void
free_wiped(char **s)
{
	if (*s != NULL) {
		sodium_memzero(*s, strlen(*s));
		free(*s);
		*s = NULL;
	}
}

void
sigv4_result_free(struct sigv4_result *r)
{
	if (r == NULL)
		return;
	free_wiped(&r->canonical_request);
	free_wiped(&r->string_to_sign);
	free_wiped(&r->signature);
	free_wiped(&r->signed_headers);
	free_wiped(&r->authorization);
}

enum el_err
sigv4_sign(const struct sigv4_request *req, const struct sigv4_params *p,
    struct sigv4_result *out)
{
	struct dbuf cr, sh, sts, auth;
	char hash[2 * SHA256_LEN + 1], sig[2 * SHA256_LEN + 1];
	enum el_err r;

	memset(out, 0, sizeof(*out));
	dbuf_init(&cr, SIGV4_MAX_CANONICAL);
	dbuf_init(&sh, SIGV4_MAX_CANONICAL);
	dbuf_init(&sts, SIGV4_MAX_CANONICAL);
	dbuf_init(&auth, SIGV4_MAX_CANONICAL);
	if (req == NULL || p == NULL || !is_token(req->method) ||
	    !is_amz_date(p->amz_date) || p->secret_key == NULL ||
	    !is_scope_part(p->access_key, 256) || !is_scope_part(p->region, 64) ||
	    !is_scope_part(p->service, 64) ||
	    (req->body == NULL && req->body_len > 0) ||
	    (req->payload_hash != NULL && !valid_payload_hash(req->payload_hash))) {
		r = EL_EINVAL;
		goto out;
	}

	/* METHOD \n PATH \n QUERY \n HEADERS \n SIGNED_HEADERS \n PAYLOAD_HASH */
	if ((r = dbuf_adds(&cr, req->method)) != EL_OK ||
	    (r = dbuf_add(&cr, "\n", 1)) != EL_OK ||
	    (r = canonical_path(req, p, &cr)) != EL_OK ||
	    (r = dbuf_add(&cr, "\n", 1)) != EL_OK ||
	    (r = canonical_query(req->query, &cr)) != EL_OK ||
	    (r = dbuf_add(&cr, "\n", 1)) != EL_OK ||
	    (r = dbuf_add(&sh, "", 0)) != EL_OK ||
	    (r = canonical_headers(req, p, &cr, &sh)) != EL_OK ||
	    (r = dbuf_add(&cr, "\n", 1)) != EL_OK ||
	    (r = dbuf_add(&cr, sh.p, sh.len)) != EL_OK ||
	    (r = dbuf_add(&cr, "\n", 1)) != EL_OK)
		goto out;
	if (req->payload_hash != NULL)
		r = dbuf_adds(&cr, req->payload_hash);
	else if ((r = sigv4_sha256_hex(req->body, req->body_len, hash)) == EL_OK)
		r = dbuf_adds(&cr, hash);
	if (r != EL_OK)
		goto out;

	if ((r = sigv4_sha256_hex(cr.p, cr.len, hash)) != EL_OK)
		goto out;
	if ((r = dbuf_printf(&sts, SIGV4_ALGO "\n%s\n%.8s/%s/%s/aws4_request\n%s",
	    p->amz_date, p->amz_date, p->region, p->service, hash)) != EL_OK)
		goto out;
	if ((r = sign_string(p, sts.p, sts.len, sig)) != EL_OK)
		goto out;
	if ((r = dbuf_printf(&auth, SIGV4_ALGO " Credential=%s/%.8s/%s/%s/aws4_request, "
	    "SignedHeaders=%s, Signature=%s", p->access_key, p->amz_date, p->region,
	    p->service, sh.p, sig)) != EL_OK)
		goto out;

	if ((out->signature = strdup(sig)) == NULL) {
		r = EL_ENOMEM;
		goto out;
	}
	out->canonical_request = dbuf_take(&cr);
	out->string_to_sign = dbuf_take(&sts);
	out->signed_headers = dbuf_take(&sh);
	out->authorization = dbuf_take(&auth);
	if (out->canonical_request == NULL || out->string_to_sign == NULL ||
	    out->signed_headers == NULL || out->authorization == NULL)
		r = EL_ENOMEM;
out:
	sodium_memzero(sig, sizeof(sig));
	if (r != EL_OK)
		sigv4_result_free(out);
	dbuf_free(&cr);
	dbuf_free(&sh);
	dbuf_free(&sts);
	dbuf_free(&auth);
	return r;
}

void
sigv4_raw_free(struct sigv4_raw *r)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < r->nheaders; i++) {
		free(r->names[i]);
		free_wiped(&r->values[i]);     /* may hold a session token */
	}
	free(r->names);
	free(r->values);
	free(r->headers);
	free(r->method);
	free(r->path);
	free(r->query);
	if (r->body != NULL)
		sodium_memzero(r->body, r->body_len);
	free(r->body);
	memset(r, 0, sizeof(*r));
}

static char *
dup_range(const char *s, size_t len)
{
	char *p;

	if ((p = malloc(len + 1)) == NULL)
		return NULL;
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

/* Splits "METHOD TARGET HTTP/x" (TARGET may contain spaces). */
static enum el_err
parse_request_line(const char *l, size_t len, struct sigv4_raw *out, struct el_why *w)
{
	const char *sp1, *sp2, *q;
	size_t i;

	sp1 = memchr(l, ' ', len);
	for (sp2 = NULL, i = len; i > 0; i--)
		if (l[i - 1] == ' ') {
			sp2 = l + i - 1;
			break;
		}
	if (sp1 == NULL || sp2 == sp1 || sp2 == sp1 + 1 ||
	    (size_t)(l + len - (sp2 + 1)) < 5 || memcmp(sp2 + 1, "HTTP/", 5) != 0)
		return el_fail(w, EL_EPARSE,
		    "line 1: expected \"METHOD /path?query HTTP/1.1\"");
	if ((out->method = dup_range(l, (size_t)(sp1 - l))) == NULL)
		return EL_ENOMEM;
	if (!is_token(out->method))
		return el_fail(w, EL_EPARSE, "line 1: bad method");
	sp1++;
	if ((q = memchr(sp1, '?', (size_t)(sp2 - sp1))) == NULL)
		q = sp2;
	if ((out->path = dup_range(sp1, (size_t)(q - sp1))) == NULL)
		return EL_ENOMEM;
	if (q < sp2 && (out->query = dup_range(q + 1, (size_t)(sp2 - q - 1))) == NULL)
		return EL_ENOMEM;
	for (i = 0; i < (size_t)(sp2 - sp1); i++)
		if ((unsigned char)sp1[i] < 0x20 || sp1[i] == 0x7f)
			return el_fail(w, EL_EPARSE, "line 1: control character in target");
	return EL_OK;
}

enum el_err
sigv4_raw_parse(const char *buf, size_t len, struct sigv4_raw *out, struct el_why *w)
{
	struct dbuf val;
	const char *l, *nl, *colon;
	size_t llen, lineno = 0, off = 0, i;
	int in_headers = 1;
	enum el_err r = EL_OK;

	memset(out, 0, sizeof(*out));
	dbuf_init(&val, SIGV4_MAX_RAW);
	if (len > SIGV4_MAX_RAW)
		return el_fail(w, EL_ETOOBIG, "request larger than %d bytes", SIGV4_MAX_RAW);
	if ((out->names = calloc(SIGV4_MAX_HEADERS, sizeof(*out->names))) == NULL ||
	    (out->values = calloc(SIGV4_MAX_HEADERS, sizeof(*out->values))) == NULL ||
	    (out->headers = calloc(SIGV4_MAX_HEADERS, sizeof(*out->headers))) == NULL)
		return EL_ENOMEM;
	while (in_headers && off < len) {
		l = buf + off;
		nl = memchr(l, '\n', len - off);
		llen = nl != NULL ? (size_t)(nl - l) : len - off;
		off += llen + (nl != NULL);
		lineno++;
		if (llen > 0 && l[llen - 1] == '\r')
			llen--;
		if (memchr(l, '\0', llen) != NULL) {
			r = el_fail(w, EL_EPARSE, "line %zu: NUL byte", lineno);
			goto out;
		}
		if (lineno == 1) {
			if ((r = parse_request_line(l, llen, out, w)) != EL_OK)
				goto out;
			continue;
		}
		if (llen == 0) {
			in_headers = 0;
			break;
		}
		if (l[0] == ' ' || l[0] == '\t') {
			/* obs-fold: the line joins the previous value; its leading
			 * whitespace separates them and is collapsed when signed. */
			if (out->nheaders == 0) {
				r = el_fail(w, EL_EPARSE,
				    "line %zu: continuation line without a header", lineno);
				goto out;
			}
			dbuf_init(&val, SIGV4_MAX_RAW);
			if ((r = dbuf_adds(&val, out->values[out->nheaders - 1])) != EL_OK ||
			    (r = dbuf_add(&val, l, llen)) != EL_OK)
				goto out;
			free_wiped(&out->values[out->nheaders - 1]);
			if ((out->values[out->nheaders - 1] = dbuf_take(&val)) == NULL) {
				r = EL_ENOMEM;
				goto out;
			}
			continue;
		}
		if ((colon = memchr(l, ':', llen)) == NULL) {
			r = el_fail(w, EL_EPARSE, "line %zu: expected \"Name: value\"", lineno);
			goto out;
		}
		if (out->nheaders >= SIGV4_MAX_HEADERS) {
			r = el_fail(w, EL_ETOOBIG, "more than %d header lines",
			    SIGV4_MAX_HEADERS);
			goto out;
		}
		for (i = 0; l + i < colon; i++)
			if (!is_tchar((unsigned char)l[i]))
				break;
		if (colon == l || l + i != colon) {
			r = el_fail(w, EL_EPARSE, "line %zu: bad header name", lineno);
			goto out;
		}
		if ((out->names[out->nheaders] = dup_range(l, (size_t)(colon - l))) == NULL ||
		    (out->values[out->nheaders] = dup_range(colon + 1,
		    llen - (size_t)(colon + 1 - l))) == NULL) {
			free(out->names[out->nheaders]);
			out->names[out->nheaders] = NULL;
			r = EL_ENOMEM;
			goto out;
		}
		out->nheaders++;
	}
	if (lineno == 0) {
		r = el_fail(w, EL_EPARSE, "empty request");
		goto out;
	}
	if ((out->body = dup_range(buf + off, len - off)) == NULL) {
		r = EL_ENOMEM;
		goto out;
	}
	out->body_len = len - off;
	for (i = 0; i < out->nheaders; i++) {
		out->headers[i].name = out->names[i];
		out->headers[i].value = out->values[i];
	}
out:
	dbuf_free_secret(&val);
	return r;
}
