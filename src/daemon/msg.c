/*
 * msg.c — owns the payloads of the front <-> engine messages (msg.h): encoding in one
 * process, decoding with every ceiling in the other. Nothing decoded here is trusted
 * beyond its shape: the engine authenticates the call afterwards.
 */
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "msg.h"

#define MAX_HEADER 1024     /* a signature header's value (they are far shorter) */

static char *
dump(json_t *o, size_t *len)
{
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	*len = s ? strlen(s) : 0;
	return s;
}

static int
set_opt(json_t *o, const char *k, const char *v)
{
	return v == NULL ? 0 : json_object_set_new(o, k, json_string(v));
}

static char *
b64(const void *p, size_t len)
{
	return el_b64_encode(len ? p : (const unsigned char *)"", len);
}

char *
msg_call_encode(const struct http_req *rq, size_t *len)
{
	char *body = b64(rq->body.p, rq->body.len);
	json_t *o;

	o = body ? json_pack("{s:s, s:s, s:s, s:s}", "method", rq->method, "uri", rq->uri,
	    "peer", rq->peer, "body", body) : NULL;
	free(body);
	if (o != NULL && (set_opt(o, "user", rq->sig_user) != 0 ||
	    set_opt(o, "date", rq->sig_date) != 0 || set_opt(o, "nonce", rq->sig_nonce) != 0 ||
	    set_opt(o, "signature", rq->sig_signature) != 0)) {
		json_decref(o);
		o = NULL;
	}
	return dump(o, len);
}

/* A string member of at most max bytes, as a new string (NULL when absent). */
static enum el_err
opt_str(json_t *o, const char *k, size_t max, char **out, struct el_why *w)
{
	json_t *v = json_object_get(o, k);

	*out = NULL;
	if (v == NULL)
		return EL_OK;
	if (!json_is_string(v) || json_string_length(v) > max ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return el_fail(w, EL_EINVAL, "call: \"%s\" is not a string of at most %zu bytes",
		    k, max);
	if ((*out = strdup(json_string_value(v))) == NULL)
		return el_fail(w, EL_ENOMEM, "out of memory");
	return EL_OK;
}

/* Decodes base64 text into b (its ceiling applies). */
static enum el_err
unb64(const char *s, struct dbuf *b, struct el_why *w)
{
	size_t n = strlen(s), got = 0;
	unsigned char *tmp;
	enum el_err r;

	if (n / 4 * 3 > b->max + 3)
		return el_fail(w, EL_ETOOBIG, "call: the body is over its ceiling");
	if ((tmp = malloc(n / 4 * 3 + 3)) == NULL)
		return el_fail(w, EL_ENOMEM, "out of memory");
	r = el_b64_decode(s, tmp, n / 4 * 3 + 3, &got);
	if (r == EL_OK)
		r = dbuf_add(b, tmp, got);
	explicit_bzero(tmp, n / 4 * 3 + 3);
	free(tmp);
	return r == EL_OK ? EL_OK : el_fail(w, EL_EINVAL, "call: a malformed or oversized body");
}

enum el_err
msg_call_decode(const char *payload, size_t len, const struct route *rt,
    const struct config *cfg, struct http_req *rq, struct el_why *w)
{
	json_error_t je;
	json_t *o;
	char *method = NULL, *uri = NULL, *peer = NULL, *body = NULL;
	const struct route *found;
	int path_known;
	enum el_err r;

	if ((o = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &je)) == NULL ||
	    !json_is_object(o)) {
		json_decref(o);
		return el_fail(w, EL_EINVAL, "call: not a JSON object");
	}
	if ((r = opt_str(o, "method", 15, &method, w)) != EL_OK ||
	    (r = opt_str(o, "uri", HTTP_MAX_URI, &uri, w)) != EL_OK ||
	    (r = opt_str(o, "peer", sizeof(rq->peer) - 1, &peer, w)) != EL_OK ||
	    (r = opt_str(o, "body", FRAME_MAX, &body, w)) != EL_OK ||
	    (r = opt_str(o, "user", MAX_HEADER, &rq->sig_user, w)) != EL_OK ||
	    (r = opt_str(o, "date", MAX_HEADER, &rq->sig_date, w)) != EL_OK ||
	    (r = opt_str(o, "nonce", MAX_HEADER, &rq->sig_nonce, w)) != EL_OK ||
	    (r = opt_str(o, "signature", MAX_HEADER, &rq->sig_signature, w)) != EL_OK)
		goto out;
	if (method == NULL || uri == NULL || peer == NULL || body == NULL) {
		r = el_fail(w, EL_EINVAL, "call: method, uri, peer and body are required");
		goto out;
	}
	if ((r = http_req_init(rq, cfg, method, uri)) != EL_OK) {
		r = el_fail(w, EL_EINVAL, "call: a malformed method or URI");
		goto out;
	}
	el_strlcpy(rq->peer, peer, sizeof(rq->peer));
	if ((r = unb64(body, &rq->body, w)) != EL_OK)
		goto out;
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
	json_decref(o);
	free(method);
	free(uri);
	free(peer);
	free(body);
	return r;
}

char *
msg_reply_encode(const struct http_reply *r, size_t *len)
{
	char *body = b64(r->body, r->len);
	json_t *o;

	o = body ? json_pack("{s:i, s:s}", "status", (int)r->status, "body", body) : NULL;
	if (body != NULL) {
		explicit_bzero(body, strlen(body));
		free(body);
	}
	if (o != NULL && ((r->type != NULL && set_opt(o, "type", r->type) != 0) ||
	    (r->retry_after > 0 && json_object_set_new(o, "retry_after",
	    json_integer(r->retry_after)) != 0))) {
		json_decref(o);
		o = NULL;
	}
	return dump(o, len);
}

enum el_err
msg_reply_decode(const char *payload, size_t len, struct http_req *rq)
{
	json_error_t je;
	json_t *o;
	struct dbuf b;
	char *type = NULL, *body = NULL;
	json_int_t status, retry = 0;
	enum el_err r = EL_EINVAL;

	dbuf_init(&b, FRAME_MAX);
	if ((o = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &je)) == NULL ||
	    json_unpack(o, "{s:I, s?I}", "status", &status, "retry_after", &retry) != 0 ||
	    status < 100 || status > 599 || retry < 0 || retry > 86400 ||
	    opt_str(o, "type", 128, &type, NULL) != EL_OK ||
	    opt_str(o, "body", FRAME_MAX, &body, NULL) != EL_OK || body == NULL ||
	    unb64(body, &b, NULL) != EL_OK || dbuf_add(&b, "", 1) != EL_OK)
		goto out;
	http_reply_clear(&rq->reply);
	rq->answered = 1;
	rq->reply.status = (unsigned)status;
	rq->reply.retry_after = (int)retry;
	rq->reply.type = type;
	type = NULL;
	rq->reply.len = b.len - 1;
	rq->reply.body = dbuf_take(&b);
	r = EL_OK;
out:
	json_decref(o);
	free(type);
	if (body != NULL) {
		explicit_bzero(body, strlen(body));
		free(body);
	}
	dbuf_free_secret(&b);
	return r;
}
