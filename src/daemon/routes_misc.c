/*
 * routes_misc.c — /healthz, /metrics (anyone on the listener), the signed /v1/audit and
 * /v1/report (auditors), and /requests/{id}, where chat buttons lead (webhooks): it shows
 * no request, only how an approver decides.
 */
#include <string.h>

#include "http.h"

static int
healthz(struct http_req *rq)
{
	json_t *out = NULL;
	struct el_why w = {{0}};

	if (engine_health(rq->engine, &out, &w) != EL_OK)
		return http_error(rq, 503, "unavailable", "%s", w.msg);
	return http_json(rq, 200, out);
}

static int
metrics(struct http_req *rq)
{
	struct dbuf b;

	dbuf_init(&b, 4 * 1024 * 1024);
	if (engine_metrics(rq->engine, &b) != EL_OK) {
		dbuf_free(&b);
		return http_error(rq, 503, "unavailable", "cannot collect metrics: the store does "
		    "not answer");
	}
	return http_page(rq, 200, "text/plain; version=0.0.4", dbuf_take(&b));
}

/* A signed GET whose query string is the engine call's JSON argument. */
static int
query_call(struct http_req *rq, enum el_err (*call)(struct engine *, const char *, json_t *,
    json_t **, struct el_why *))
{
	struct el_why w = {{0}};
	json_t *q, *out = NULL;
	enum el_err e;

	if ((q = http_parse_form(rq->query, strlen(rq->query))) == NULL)
		return http_error(rq, 400, "bad_request", "malformed query string");
	e = call(rq->engine, rq->user, q, &out, &w);
	json_decref(q);
	if (e != EL_OK)
		return http_engine_error(rq, e, &w);
	return http_json(rq, 200, out);
}

static int
audit(struct http_req *rq)
{
	return query_call(rq, engine_audit_query);
}

static int
report(struct http_req *rq)
{
	return query_call(rq, engine_report);
}

/* POST /v1/requests/{id}/console: the AWS console sign-in URL of an active grant. */
static int
console(struct http_req *rq)
{
	struct el_why w = {{0}};
	json_t *body, *out = NULL;
	int res = MHD_NO;
	enum el_err e;

	if ((body = http_body_json(rq, &res)) == NULL)
		return res;
	e = engine_console(rq->engine, rq->user, rq->captures[0], rq->peer, body, &out, &w);
	json_decref(body);
	if (e != EL_OK)
		return http_engine_error(rq, e, &w);
	return http_json(rq, 200, out);
}

/*
 * GET /requests/{id}: the page a chat message's button opens (notify.webhooks). Approval
 * links are the approvers' own (a token each) and never go to a shared channel, so this
 * page says where to decide instead; it answers anyone and reads nothing about the request.
 */
static int
request_page(struct http_req *rq)
{
	const char *id = rq->captures[0];
	char msg[512];
	char *html = NULL;
	size_t n = strlen(id);
	json_t *ctx;

	if (n < 5 || n > 31 || strncmp(id, "req_", 4) != 0 ||
	    strspn(id + 4, "abcdefghijklmnopqrstuvwxyz0123456789") != n - 4)
		return http_error(rq, 404, "not_found", "no such page");
	snprintf(msg, sizeof(msg), "Approval links are personal: open the link in the approval "
	    "mail elevate sent you, or run \"elevate approve %s\" (or \"elevate deny %s\") with "
	    "your elevate key. A break-glass request is reviewed the same way; \"elevate status "
	    "%s\" shows where it stands.", id, id, id);
	ctx = json_pack("{s:s, s:s, s:s}", "title", "Decide in your approval mail", "message",
	    msg, "request_id", id);
	if (ctx == NULL || engine_render_page(rq->engine, "result_page.html", ctx, &html) !=
	    EL_OK) {
		json_decref(ctx);
		return http_error(rq, 500, "internal", "cannot render the page");
	}
	json_decref(ctx);
	return http_page(rq, 200, "text/html; charset=utf-8", html);
}

static const struct route routes[] = {
	{"GET", "/healthz", ROUTE_PUBLIC, healthz, ROUTE_MAY_WAIT},
	{"GET", "/metrics", ROUTE_PUBLIC, metrics, ROUTE_QUICK},
	{"GET", "/v1/audit", ROUTE_SIGNED, audit, ROUTE_MAY_WAIT},
	/* appended: the order numbers messages */
	{"GET", "/v1/report", ROUTE_SIGNED, report, ROUTE_MAY_WAIT},
	{"POST", "/v1/requests/*/console", ROUTE_SIGNED, console, ROUTE_MAY_WAIT},
	{"GET", "/requests/*", ROUTE_PUBLIC, request_page, ROUTE_QUICK},
};

const struct route_group routes_misc = {routes, sizeof(routes) / sizeof(routes[0])};
