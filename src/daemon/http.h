/*
 * http.h — the daemon's HTTP layer over libmicrohttpd: per-request context with bounded
 * body, the route table entries each endpoint-group file exports, and response helpers.
 * Handlers see only the engine interface.
 */
#ifndef ELEVATED_HTTP_H
#define ELEVATED_HTTP_H

#include <jansson.h>
#include <microhttpd.h>

#include "elevate/config.h"
#include "elevate/el.h"
#include "elevate/engine.h"

#define HTTP_MAX_URI 2048
#define HTTP_MAX_CAPTURES 2

struct http_req {
	struct MHD_Connection *conn;
	struct engine *engine;
	const struct config *cfg;
	const char *method;
	char uri[HTTP_MAX_URI + 1];      /* raw, as sent: path?query */
	char *path;                      /* points into a copy of uri, before '?' */
	const char *query;               /* after '?', or "" */
	char *pathbuf;
	struct dbuf body;
	int started;
	int too_big;
	int uri_too_long;
	char *captures[HTTP_MAX_CAPTURES];
	const char *user;                /* authenticated caller (signed routes) */
	char peer[48];                   /* the client's address, as text (see find_peer) */
	/* Run by a worker while the connection is suspended: the answer waits here until
	 * libmicrohttpd calls back for the resumed connection. */
	int dispatched;
	int failed;                      /* the handler answered MHD_NO */
	struct MHD_Response *resp;
	unsigned resp_status;
	struct http_req *next;           /* the worker queue */
};

/* ROUTE_TOKEN: public, but the path carries a credential (an approval link). Signed and
 * token routes are refused with 429 to a source address that had too many refusals. */
enum route_auth { ROUTE_PUBLIC, ROUTE_SIGNED, ROUTE_TOKEN };

struct route {
	const char *method;
	const char *pattern;             /* "/v1/requests/{*}/approve", where * matches one segment */
	enum route_auth auth;
	int (*handler)(struct http_req *rq);   /* returns an MHD_Result */
};

struct route_group {
	const struct route *routes;
	size_t nroutes;
};

extern const struct route_group routes_requests;
extern const struct route_group routes_approve;
extern const struct route_group routes_misc;

/* Responses (they queue and return the MHD result). */
int http_json(struct http_req *rq, unsigned status, json_t *body);   /* steals body */
int http_error(struct http_req *rq, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Maps an engine error to status + code with w's message. */
int http_engine_error(struct http_req *rq, enum el_err e, const struct el_why *w);
int http_page(struct http_req *rq, unsigned status, const char *content_type, char *body);
/* Body as a JSON object (an empty body is {}). NULL after answering 400 itself. */
json_t *http_body_json(struct http_req *rq, int *result);

/* Parsing of request text (httpparse.c). */
/* Query string / form body as a JSON object of strings (last value wins). New ref. */
json_t *http_parse_form(const char *s, size_t len);
/* The first route, in table order, whose pattern matches path and whose method is method;
 * its '*' segments go to captures (all NULL on entry; caller frees). NULL when there is
 * none, captures all NULL again and *path_known set when a route matched the path with
 * another method (405 rather than 404). */
const struct route *http_route_find(const char *method, const char *path,
    char *captures[HTTP_MAX_CAPTURES], int *path_known);

/* Server lifecycle. */
struct http_server;
enum el_err http_start(const struct config *cfg, struct engine *e, struct http_server **out,
    struct el_why *w);
void http_quiesce(struct http_server *s);
void http_stop(struct http_server *s);

#endif
