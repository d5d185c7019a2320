/*
 * reply.c — owns a request's life outside libmicrohttpd: setting it up from a method and
 * URI, its answer (JSON, an error with its code, a page), and the mapping of engine
 * errors to HTTP statuses. Both processes use it: the front for the answers it gives
 * itself (404, 413, 503...), the engine for the handlers' answers.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

void
http_reply_clear(struct http_reply *r)
{
	free(r->type);
	if (r->body != NULL) {
		explicit_bzero(r->body, r->len);   /* credentials pass through here */
		free(r->body);
	}
	memset(r, 0, sizeof(*r));
}

static int
set_reply(struct http_req *rq, unsigned status, const char *type, char *body,
    int retry_after)
{
	http_reply_clear(&rq->reply);
	rq->answered = 1;
	rq->reply.status = status;
	rq->reply.retry_after = retry_after;
	if (body == NULL || (type != NULL && (rq->reply.type = strdup(type)) == NULL)) {
		free(body);
		rq->reply.status = 500;
		return MHD_NO;
	}
	rq->reply.body = body;
	rq->reply.len = strlen(body);
	return MHD_YES;
}

int
http_json_retry(struct http_req *rq, unsigned status, json_t *body, int retry_after)
{
	char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;

	json_decref(body);
	return set_reply(rq, status, NULL, s, retry_after);
}

int
http_json(struct http_req *rq, unsigned status, json_t *body)
{
	return http_json_retry(rq, status, body, 0);
}

int
http_error(struct http_req *rq, unsigned status, const char *code, const char *fmt, ...)
{
	char msg[EL_WHYLEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return http_json(rq, status, json_pack("{s:{s:s, s:s}}", "error", "code", code,
	    "message", msg));
}

int
http_engine_error(struct http_req *rq, enum el_err e, const struct el_why *w)
{
	unsigned status;
	const char *code;

	switch (e) {
	case EL_EINVAL: status = 400; code = "bad_request"; break;
	case EL_EPARSE: status = 400; code = "invalid_json"; break;
	case EL_EAUTH: status = 401; code = "unauthorized"; break;
	case EL_EPERM: status = 403; code = "forbidden"; break;
	case EL_ENOENT: status = 404; code = "not_found"; break;
	case EL_EEXIST: status = 409; code = "conflict"; break;
	case EL_ESTATE: status = 409; code = "conflict"; break;
	case EL_ETOOBIG: status = 413; code = "payload_too_large"; break;
	case EL_EAWS: status = 502; code = "aws_error"; break;
	case EL_ETIMEOUT: status = 504; code = "timeout"; break;
	/* Storage failures (locked, disk full, corrupt) are the broker's, and passing:
	 * never a client error, never a signature problem. */
	case EL_EDB: status = 503; code = "unavailable"; break;
	default: status = 500; code = "internal"; break;
	}
	return http_error(rq, status, code, "%s", w && w->msg[0] ? w->msg : el_strerror(e));
}

int
http_page(struct http_req *rq, unsigned status, const char *content_type, char *body)
{
	return set_reply(rq, status, content_type, body, 0);
}

json_t *
http_body_json(struct http_req *rq, int *result)
{
	json_error_t je;
	json_t *j;

	if (rq->body.len == 0)
		return json_object();
	j = json_loadb(rq->body.p, rq->body.len, JSON_REJECT_DUPLICATES, &je);
	if (j == NULL) {
		*result = http_error(rq, 400, "invalid_json", "malformed JSON at line %d column %d: "
		    "%.200s", je.line, je.column, je.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		*result = http_error(rq, 400, "invalid_json", "the body must be a JSON object");
		return NULL;
	}
	return j;
}

enum el_err
http_req_init(struct http_req *rq, const struct config *cfg, const char *method,
    const char *uri)
{
	char *q;

	rq->cfg = cfg;
	dbuf_init(&rq->body, (size_t)cfg->max_body);
	if (strlen(method) >= sizeof(rq->method) || strlen(uri) > HTTP_MAX_URI)
		return EL_ETOOBIG;
	el_strlcpy(rq->method, method, sizeof(rq->method));
	el_strlcpy(rq->uri, uri, sizeof(rq->uri));
	if ((rq->pathbuf = strdup(rq->uri)) == NULL)
		return EL_ENOMEM;
	rq->path = rq->pathbuf;
	if ((q = strchr(rq->pathbuf, '?')) != NULL) {
		*q = '\0';
		rq->query = q + 1;
	} else
		rq->query = "";
	return EL_OK;
}

void
http_req_free(struct http_req *rq)
{
	int i;

	for (i = 0; i < HTTP_MAX_CAPTURES; i++)
		free(rq->captures[i]);
	dbuf_free_secret(&rq->body);
	free(rq->pathbuf);
	free(rq->sig_user);
	free(rq->sig_date);
	free(rq->sig_nonce);
	free(rq->sig_signature);
	http_reply_clear(&rq->reply);
	memset(rq, 0, sizeof(*rq));
}
