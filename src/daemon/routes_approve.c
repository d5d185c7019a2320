/*
 * routes_approve.c — the approval pages behind the links in approval mails:
 * GET /approve/{token} only shows the request (or a bundle's roles); POST decides. Also
 * the stylesheet.
 */
#include <stdlib.h>
#include <string.h>

#include "http.h"

static int
render(struct http_req *rq, int status, const char *name, json_t *ctx)
{
	char *html = NULL;

	if (engine_render_page(rq->engine, name, ctx, &html) != EL_OK) {
		json_decref(ctx);
		return http_error(rq, 500, "internal", "cannot render the page");
	}
	json_decref(ctx);
	return http_page(rq, (unsigned)status, "text/html; charset=utf-8", html);
}

static int
page(struct http_req *rq)
{
	json_t *ctx = NULL;
	int status = 200;

	if (engine_token_page(rq->engine, rq->captures[0], rq->peer, &ctx, &status) != EL_OK)
		return http_error(rq, 500, "internal", "cannot show the request");
	/* a bundle's link shows every role of the bundle */
	return render(rq, status, status != 200 ? "result_page.html" :
	    json_object_get(ctx, "roles") != NULL ? "bundle_page.html" : "approve_page.html",
	    ctx);
}

static int
decide(struct http_req *rq)
{
	json_t *form, *ctx = NULL;
	const char *decision, *comment;
	int status = 200;

	form = http_parse_form(rq->body.p ? rq->body.p : "", rq->body.len);
	if (form == NULL)
		return http_error(rq, 400, "bad_request", "malformed form");
	decision = json_string_value(json_object_get(form, "decision"));
	comment = json_string_value(json_object_get(form, "comment"));
	if (decision == NULL || (strcmp(decision, "approve") != 0 &&
	    strcmp(decision, "deny") != 0)) {
		json_decref(form);
		return http_error(rq, 400, "bad_request", "decision must be approve or deny");
	}
	if (comment != NULL && strlen(comment) > 1000) {
		json_decref(form);
		return http_error(rq, 400, "bad_request", "the comment is longer than 1000 bytes");
	}
	if (engine_token_decide(rq->engine, rq->captures[0], strcmp(decision, "approve") == 0,
	    comment && *comment ? comment : NULL, rq->peer, &ctx, &status) != EL_OK) {
		json_decref(form);
		return http_error(rq, 500, "internal", "cannot record the decision");
	}
	json_decref(form);
	return render(rq, status, "result_page.html", ctx);
}

static int
stylesheet(struct http_req *rq)
{
	char *css = NULL;

	if (engine_render_page(rq->engine, "elevate.css", NULL, &css) != EL_OK)
		return http_error(rq, 404, "not_found", "no stylesheet");
	return http_page(rq, 200, "text/css; charset=utf-8", css);
}

static const struct route routes[] = {
	{"GET", "/approve/*", ROUTE_TOKEN, page, ROUTE_QUICK},
	{"POST", "/approve/*", ROUTE_TOKEN, decide, ROUTE_MAY_WAIT},
	{"GET", "/static/elevate.css", ROUTE_PUBLIC, stylesheet, ROUTE_QUICK},
};

const struct route_group routes_approve = {routes, sizeof(routes) / sizeof(routes[0])};
