/*
 * routes_requests.c — the signed /v1/requests endpoints: create, list, show, approve,
 * deny, cancel, revoke, extend, credentials, SSM sessions. Each handler parses, calls
 * one engine_* function and answers; no decision is made here.
 */
#include <string.h>

#include "http.h"

/* Runs an engine call that takes a JSON body and answers the object it returns. */
#define BODY_CALL(rq, status, call) do {                                 \
	struct el_why w_ = {{0}};                                            \
	json_t *out_ = NULL, *body_;                                         \
	int res_ = MHD_NO;                                                   \
	enum el_err e_;                                                      \
	if ((body_ = http_body_json(rq, &res_)) == NULL)                     \
		return res_;                                                     \
	e_ = (call);                                                         \
	json_decref(body_);                                                  \
	if (e_ != EL_OK)                                                     \
		return http_engine_error(rq, e_, &w_);                           \
	return http_json(rq, status, out_);                                  \
} while (0)

static int
create(struct http_req *rq)
{
	BODY_CALL(rq, 201, engine_create_request(rq->engine, rq->user, body_, &out_, &w_));
}

static int
list(struct http_req *rq)
{
	struct el_why w = {{0}};
	json_t *q, *out = NULL;
	const char *k, *state, *mine;
	json_t *v;
	enum el_err e;

	if ((q = http_parse_form(rq->query, strlen(rq->query))) == NULL)
		return http_error(rq, 400, "bad_request", "malformed query string");
	json_object_foreach(q, k, v) {
		if (strcmp(k, "state") != 0 && strcmp(k, "mine") != 0) {
			json_decref(q);
			return http_error(rq, 400, "bad_request", "unknown query parameter \"%.64s\"",
			    k);
		}
	}
	state = json_string_value(json_object_get(q, "state"));
	mine = json_string_value(json_object_get(q, "mine"));
	e = engine_list_requests(rq->engine, rq->user, state && *state ? state : NULL,
	    mine && strcmp(mine, "1") == 0, &out, &w);
	json_decref(q);
	if (e != EL_OK)
		return http_engine_error(rq, e, &w);
	return http_json(rq, 200, out);
}

static int
show(struct http_req *rq)
{
	struct el_why w = {{0}};
	json_t *out = NULL;
	enum el_err e;

	if ((e = engine_get_request(rq->engine, rq->user, rq->captures[0], &out, &w)) != EL_OK)
		return http_engine_error(rq, e, &w);
	return http_json(rq, 200, out);
}

static int
approve(struct http_req *rq)
{
	BODY_CALL(rq, 200, engine_decide(rq->engine, rq->user, rq->captures[0], true, body_,
	    &out_, &w_));
}

static int
deny(struct http_req *rq)
{
	BODY_CALL(rq, 200, engine_decide(rq->engine, rq->user, rq->captures[0], false, body_,
	    &out_, &w_));
}

static int
cancel(struct http_req *rq)
{
	BODY_CALL(rq, 200, (json_object_size(body_) ? el_fail(&w_, EL_EINVAL,
	    "cancel takes no body") : engine_cancel(rq->engine, rq->user, rq->captures[0], &out_,
	    &w_)));
}

static int
revoke_grant(struct http_req *rq)
{
	BODY_CALL(rq, 200, engine_revoke(rq->engine, rq->user, rq->captures[0], body_, &out_,
	    &w_));
}

static int
extend(struct http_req *rq)
{
	BODY_CALL(rq, 201, engine_extend(rq->engine, rq->user, rq->captures[0], body_, &out_,
	    &w_));
}

static int
credentials(struct http_req *rq)
{
	struct el_why w = {{0}};
	json_t *out = NULL;
	enum el_err e;

	if ((e = engine_credentials(rq->engine, rq->user, rq->captures[0], rq->peer, &out,
	    &w)) != EL_OK)
		return http_engine_error(rq, e, &w);
	return http_json(rq, 200, out);
}

static int
sessions(struct http_req *rq)
{
	BODY_CALL(rq, 201, engine_start_session(rq->engine, rq->user, rq->captures[0], body_,
	    &out_, &w_));
}

static int
terminate_session(struct http_req *rq)
{
	BODY_CALL(rq, 200, engine_terminate_session(rq->engine, rq->user, rq->captures[0],
	    rq->captures[1], &out_, &w_));
}

static int
revoke_many(struct http_req *rq)
{
	BODY_CALL(rq, 200, engine_revoke_many(rq->engine, rq->user, body_, &out_, &w_));
}

static const struct route routes[] = {
	{"POST", "/v1/revoke", ROUTE_SIGNED, revoke_many, ROUTE_MAY_WAIT},
	{"POST", "/v1/requests/*/sessions/*/terminate", ROUTE_SIGNED, terminate_session, ROUTE_MAY_WAIT},
	{"POST", "/v1/requests", ROUTE_SIGNED, create, ROUTE_MAY_WAIT},
	{"GET", "/v1/requests", ROUTE_SIGNED, list, ROUTE_QUICK},
	{"GET", "/v1/requests/*", ROUTE_SIGNED, show, ROUTE_QUICK},
	{"POST", "/v1/requests/*/approve", ROUTE_SIGNED, approve, ROUTE_MAY_WAIT},
	{"POST", "/v1/requests/*/deny", ROUTE_SIGNED, deny, ROUTE_MAY_WAIT},
	{"POST", "/v1/requests/*/cancel", ROUTE_SIGNED, cancel, ROUTE_MAY_WAIT},
	{"POST", "/v1/requests/*/revoke", ROUTE_SIGNED, revoke_grant, ROUTE_MAY_WAIT},
	{"POST", "/v1/requests/*/extend", ROUTE_SIGNED, extend, ROUTE_MAY_WAIT},
	{"GET", "/v1/requests/*/credentials", ROUTE_SIGNED, credentials, ROUTE_MAY_WAIT},
	{"POST", "/v1/requests/*/sessions", ROUTE_SIGNED, sessions, ROUTE_MAY_WAIT},
};

const struct route_group routes_requests = {routes, sizeof(routes) / sizeof(routes[0])};
