/*
 * msg.c — owns the payloads of the front <-> engine messages (msg.h): encoding in one
 * process, decoding with every ceiling in the other (a field's length is checked against
 * what is left and its ceiling before a byte of it is copied, and its bytes must be
 * text). Nothing decoded here is trusted beyond its shape: the engine authenticates the
 * call afterwards.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "msg.h"

#define MAX_HEADER 1024     /* a signature header's value (they are far shorter) */
#define MAX_TYPE 128        /* a reply's content type */
#define MAX_NUMBER 20       /* a number's digits */

/* The payload: the fields (NULL: absent), then the body. New memory, with a NUL after
 * the body that len does not count (for a reader of the text); NULL when memory is short
 * or a field is too long to say. */
static char *
payload(const char *const *fields, size_t nfields, const void *body, size_t blen,
    size_t *len)
{
	unsigned char *out, *p;
	size_t i, n = blen, l;
	uint32_t u;

	for (i = 0; i < nfields; i++) {
		l = fields[i] != NULL ? strlen(fields[i]) : 0;
		if (l >= MSG_ABSENT)
			return NULL;
		n += 4 + l;
	}
	if ((out = malloc(n + 1)) == NULL)
		return NULL;
	for (p = out, i = 0; i < nfields; i++) {
		l = fields[i] != NULL ? strlen(fields[i]) : 0;
		u = fields[i] != NULL ? (uint32_t)l : MSG_ABSENT;
		memcpy(p, &u, 4);
		memcpy(p + 4, fields[i] != NULL ? fields[i] : "", l);
		p += 4 + l;
	}
	if (blen > 0)
		memcpy(p, body, blen);
	p[blen] = '\0';
	*len = n;
	return (char *)out;
}

/* What is left of a payload being decoded. */
struct cursor {
	const unsigned char *p;
	size_t left;
};

/* The next field, of at most max bytes, as a new string (NULL when absent; caller
 * frees). EL_EINVAL when it is malformed, too long, or not text. */
static enum el_err
field(struct cursor *c, const char *name, size_t max, char **out, struct el_why *w)
{
	uint32_t n;

	*out = NULL;
	if (c->left < 4)
		return el_fail(w, EL_EINVAL, "a message ends before its %s", name);
	memcpy(&n, c->p, 4);
	c->p += 4;
	c->left -= 4;
	if (n == MSG_ABSENT)
		return EL_OK;
	if (n > max || n > c->left || memchr(c->p, '\0', n) != NULL ||
	    !el_utf8_valid(c->p, n))
		return el_fail(w, EL_EINVAL, "a message's %s is not text of at most %zu bytes",
		    name, max);
	if ((*out = strndup((const char *)c->p, n)) == NULL)
		return el_fail(w, EL_ENOMEM, "out of memory");
	c->p += n;
	c->left -= n;
	return EL_OK;
}

char *
msg_call_encode(const struct http_req *rq, size_t *len)
{
	const char *f[] = {rq->method, rq->uri, rq->peer, rq->sig_user, rq->sig_date,
	    rq->sig_nonce, rq->sig_signature};

	return payload(f, sizeof(f) / sizeof(f[0]), rq->body.p, rq->body.len, len);
}

enum el_err
msg_call_decode(const char *payload, size_t len, const struct route *rt,
    const struct config *cfg, struct http_req *rq, struct el_why *w)
{
	struct cursor c = {(const unsigned char *)payload, len};
	char *method = NULL, *uri = NULL, *peer = NULL;
	const struct route *found;
	int path_known;
	enum el_err r;

	if ((r = field(&c, "method", 15, &method, w)) != EL_OK ||
	    (r = field(&c, "uri", HTTP_MAX_URI, &uri, w)) != EL_OK ||
	    (r = field(&c, "peer", sizeof(rq->peer) - 1, &peer, w)) != EL_OK ||
	    (r = field(&c, "user", MAX_HEADER, &rq->sig_user, w)) != EL_OK ||
	    (r = field(&c, "date", MAX_HEADER, &rq->sig_date, w)) != EL_OK ||
	    (r = field(&c, "nonce", MAX_HEADER, &rq->sig_nonce, w)) != EL_OK ||
	    (r = field(&c, "signature", MAX_HEADER, &rq->sig_signature, w)) != EL_OK)
		goto out;
	if (method == NULL || uri == NULL || peer == NULL) {
		r = el_fail(w, EL_EINVAL, "call: method, uri and peer are required");
		goto out;
	}
	if ((r = http_req_init(rq, cfg, method, uri)) != EL_OK) {
		r = el_fail(w, EL_EINVAL, "call: a malformed method or URI");
		goto out;
	}
	el_strlcpy(rq->peer, peer, sizeof(rq->peer));
	/* the ceiling is the body buffer's: limits.max_body */
	if (c.left > 0 && dbuf_add(&rq->body, c.p, c.left) != EL_OK) {
		r = el_fail(w, EL_ETOOBIG, "call: the body is over its ceiling");
		goto out;
	}
	/* The route is the one the request names: a front cannot send "revoke" for a
	 * signed "show". */
	found = http_route_find(rq->method, rq->path, rq->captures, &path_known);
	if (found != rt) {
		r = el_fail(w, EL_EINVAL, "call: %s %s is not a request for %s %s", rq->method,
		    rq->path, rt->method, rt->pattern);
		goto out;
	}
	rq->route = rt;
out:
	free(method);
	free(uri);
	free(peer);
	return r;
}

char *
msg_reply_encode(const struct http_reply *r, size_t *len)
{
	char status[16], retry[16];
	const char *f[] = {status, r->type, r->retry_after > 0 ? retry : NULL};

	snprintf(status, sizeof(status), "%u", r->status);
	snprintf(retry, sizeof(retry), "%d", r->retry_after);
	return payload(f, sizeof(f) / sizeof(f[0]), r->body, r->len, len);
}

/* A number field within [min, max] (absent: dflt, when absent is allowed). */
static enum el_err
number(struct cursor *c, const char *name, long long min, long long max, long long dflt,
    bool required, long long *out)
{
	char *s = NULL;
	enum el_err r;

	if ((r = field(c, name, MAX_NUMBER, &s, NULL)) != EL_OK)
		return r;
	*out = dflt;
	if (s == NULL)
		r = required ? EL_EINVAL : EL_OK;
	else
		r = el_parse_int(s, min, max, out);
	free(s);
	return r;
}

enum el_err
msg_reply_decode(const char *payload, size_t len, struct http_req *rq)
{
	struct cursor c = {(const unsigned char *)payload, len};
	char *type = NULL, *body = NULL;
	long long status, retry;
	enum el_err r;

	if ((r = number(&c, "status", 100, 599, 0, true, &status)) != EL_OK ||
	    (r = field(&c, "type", MAX_TYPE, &type, NULL)) != EL_OK ||
	    (r = number(&c, "retry_after", 1, 86400, 0, false, &retry)) != EL_OK)
		goto out;
	r = EL_ENOMEM;
	if ((body = malloc(c.left + 1)) == NULL)
		goto out;
	if (c.left > 0)
		memcpy(body, c.p, c.left);
	body[c.left] = '\0';
	http_reply_clear(&rq->reply);
	rq->answered = 1;
	rq->reply.status = (unsigned)status;
	rq->reply.retry_after = (int)retry;
	rq->reply.type = type;
	type = NULL;
	rq->reply.len = c.left;
	rq->reply.body = body;
	r = EL_OK;
out:
	free(type);
	return r != EL_OK ? EL_EINVAL : EL_OK;
}
