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

static int
set_opt(json_t *o, const char *k, const char *v)
{
	return v == NULL ? 0 : json_object_set_new(o, k, json_string(v));
}

/* The payload: o as compact JSON (new text, never a NUL in it), a NUL, the body. Takes
 * o; NULL when o is NULL or memory is short. */
static char *
payload(json_t *o, const void *body, size_t blen, size_t *len)
{
	char *head = o ? json_dumps(o, JSON_COMPACT) : NULL, *out = NULL;
	size_t hlen;

	json_decref(o);
	if (head == NULL)
		return NULL;
	hlen = strlen(head);
	if ((out = malloc(hlen + 1 + blen + 1)) != NULL) {
		memcpy(out, head, hlen + 1);
		if (blen > 0)
			memcpy(out + hlen + 1, body, blen);
		out[hlen + 1 + blen] = '\0';   /* not counted: for a reader of the text */
		*len = hlen + 1 + blen;
	}
	free(head);
	return out;
}

/* The parts of a payload: its head parsed (new ref) and its body (borrowed from
 * payload); NULL when there is no NUL after the head or the head is no JSON object. */
static json_t *
split(const char *payload, size_t len, const char **body, size_t *blen)
{
	const char *nul = memchr(payload, '\0', len);
	json_error_t je;
	json_t *o;

	if (nul == NULL)
		return NULL;
	if ((o = json_loadb(payload, (size_t)(nul - payload), JSON_REJECT_DUPLICATES,
	    &je)) == NULL || !json_is_object(o)) {
		json_decref(o);
		return NULL;
	}
	*body = nul + 1;
	*blen = len - (size_t)(nul - payload) - 1;
	return o;
}

char *
msg_call_encode(const struct http_req *rq, size_t *len)
{
	json_t *o;

	o = json_pack("{s:s, s:s, s:s}", "method", rq->method, "uri", rq->uri, "peer",
	    rq->peer);
	if (o != NULL && (set_opt(o, "user", rq->sig_user) != 0 ||
	    set_opt(o, "date", rq->sig_date) != 0 || set_opt(o, "nonce", rq->sig_nonce) != 0 ||
	    set_opt(o, "signature", rq->sig_signature) != 0)) {
		json_decref(o);
		o = NULL;
	}
	return payload(o, rq->body.p, rq->body.len, len);
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

enum el_err
msg_call_decode(const char *payload, size_t len, const struct route *rt,
    const struct config *cfg, struct http_req *rq, struct el_why *w)
{
	json_t *o;
	char *method = NULL, *uri = NULL, *peer = NULL;
	const char *body = NULL;
	size_t blen = 0;
	const struct route *found;
	int path_known;
	enum el_err r;

	if ((o = split(payload, len, &body, &blen)) == NULL)
		return el_fail(w, EL_EINVAL, "call: not a JSON object, a NUL and a body");
	if ((r = opt_str(o, "method", 15, &method, w)) != EL_OK ||
	    (r = opt_str(o, "uri", HTTP_MAX_URI, &uri, w)) != EL_OK ||
	    (r = opt_str(o, "peer", sizeof(rq->peer) - 1, &peer, w)) != EL_OK ||
	    (r = opt_str(o, "user", MAX_HEADER, &rq->sig_user, w)) != EL_OK ||
	    (r = opt_str(o, "date", MAX_HEADER, &rq->sig_date, w)) != EL_OK ||
	    (r = opt_str(o, "nonce", MAX_HEADER, &rq->sig_nonce, w)) != EL_OK ||
	    (r = opt_str(o, "signature", MAX_HEADER, &rq->sig_signature, w)) != EL_OK)
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
	if (blen > 0 && dbuf_add(&rq->body, body, blen) != EL_OK) {
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
	json_decref(o);
	free(method);
	free(uri);
	free(peer);
	return r;
}

char *
msg_reply_encode(const struct http_reply *r, size_t *len)
{
	json_t *o = json_pack("{s:i}", "status", (int)r->status);

	if (o != NULL && ((r->type != NULL && set_opt(o, "type", r->type) != 0) ||
	    (r->retry_after > 0 && json_object_set_new(o, "retry_after",
	    json_integer(r->retry_after)) != 0))) {
		json_decref(o);
		o = NULL;
	}
	return payload(o, r->body, r->len, len);
}

enum el_err
msg_reply_decode(const char *payload, size_t len, struct http_req *rq)
{
	json_t *o;
	const char *b = NULL;
	char *type = NULL, *body = NULL;
	json_int_t status, retry = 0;
	size_t blen = 0;
	enum el_err r = EL_EINVAL;

	if ((o = split(payload, len, &b, &blen)) == NULL ||
	    json_unpack(o, "{s:I, s?I}", "status", &status, "retry_after", &retry) != 0 ||
	    status < 100 || status > 599 || retry < 0 || retry > 86400 ||
	    opt_str(o, "type", 128, &type, NULL) != EL_OK || blen > FRAME_MAX)
		goto out;
	if ((body = malloc(blen + 1)) == NULL)
		goto out;
	if (blen > 0)
		memcpy(body, b, blen);
	body[blen] = '\0';
	http_reply_clear(&rq->reply);
	rq->answered = 1;
	rq->reply.status = (unsigned)status;
	rq->reply.retry_after = (int)retry;
	rq->reply.type = type;
	type = NULL;
	rq->reply.len = blen;
	rq->reply.body = body;
	r = EL_OK;
out:
	json_decref(o);
	free(type);
	return r;
}
