/*
 * http.h — the daemon's HTTP layer: the request with its bounded body and its answer, the
 * route table each endpoint-group file exports, answer helpers, and the front's server
 * over libmicrohttpd. Handlers run in the engine process and see only the engine
 * interface; the front parses, bounds and forwards.
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

/* An answer: JSON (type NULL) or a page with its content type. */
struct http_reply {
	unsigned status;
	char *type;                      /* NULL: application/json */
	char *body;
	size_t len;
	int retry_after;                 /* > 0: a Retry-After header */
};

/*
 * One request. The front fills it from libmicrohttpd and forwards it (serve.h); the
 * engine process rebuilds it from the message, authenticates it and runs the route's
 * handler, whose answer goes back in `reply`.
 */
struct http_req {
	struct engine *engine;           /* in the engine process only */
	const struct config *cfg;
	char method[16];
	char uri[HTTP_MAX_URI + 1];      /* raw, as sent: path?query */
	char *path;                      /* points into a copy of uri, before '?' */
	const char *query;               /* after '?', or "" */
	char *pathbuf;
	struct dbuf body;
	char *captures[HTTP_MAX_CAPTURES];
	const struct route *route;
	const char *user;                /* authenticated caller (signed routes) */
	char peer[48];                   /* the client's address, as text (see find_peer) */
	/* X-Elevate-User, -Date, -Nonce, -Signature as sent (NULL when absent) */
	char *sig_user, *sig_date, *sig_nonce, *sig_signature;
	struct http_reply reply;
	int answered;
	/* front only: libmicrohttpd's connection, and the request while it is read and
	 * forwarded (the connection suspended meanwhile) */
	struct MHD_Connection *conn;
	struct http_server *server;
	int started;
	int too_big;
	int uri_too_long;
	int dispatched;
};

/* ROUTE_TOKEN: public, but the path carries a credential (an approval link). Signed and
 * token routes are refused with 429 to a source address that had too many refusals. */
enum route_auth { ROUTE_PUBLIC, ROUTE_SIGNED, ROUTE_TOKEN };

/* ROUTE_QUICK: the handler reads and computes, and does not wait on AWS or on a durable
 * write (but for a rare audit record): it runs on the engine's small pool (two threads a
 * core), so a burst of such calls is not spread over dozens of runnable threads, whose
 * turns make the slowest answers slow. The rest run on the pool of limits.http_workers. */
enum route_pace { ROUTE_MAY_WAIT = 0, ROUTE_QUICK };

struct route {
	const char *method;
	const char *pattern;             /* "/v1/requests/{*}/approve", where * matches one segment */
	enum route_auth auth;
	int (*handler)(struct http_req *rq);   /* returns an MHD_Result */
	enum route_pace pace;
};

struct route_group {
	const struct route *routes;
	size_t nroutes;
};

extern const struct route_group routes_requests;
extern const struct route_group routes_approve;
extern const struct route_group routes_misc;

/* Answers: each sets rq->reply (replacing an earlier one) and returns MHD_YES, or MHD_NO
 * when out of memory. */
int http_json(struct http_req *rq, unsigned status, json_t *body);   /* steals body */
int http_json_retry(struct http_req *rq, unsigned status, json_t *body, int retry_after);
int http_error(struct http_req *rq, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Maps an engine error to status + code with w's message. */
int http_engine_error(struct http_req *rq, enum el_err e, const struct el_why *w);
/* A page (HTML, CSS, text): steals body. */
int http_page(struct http_req *rq, unsigned status, const char *content_type, char *body);
/* Body as a JSON object (an empty body is {}). NULL after answering 400 itself. */
json_t *http_body_json(struct http_req *rq, int *result);
void http_reply_clear(struct http_reply *r);

/* Sets up a request's method, URI (path, query) and body ceiling; EL_ETOOBIG for a URI
 * over HTTP_MAX_URI, a method over 15 bytes. http_req_free() frees what it holds. */
enum el_err http_req_init(struct http_req *rq, const struct config *cfg, const char *method,
    const char *uri);
void http_req_free(struct http_req *rq);

/* Parsing of request text (httpparse.c). */
/* Query string / form body as a JSON object of strings (last value wins). New ref. */
json_t *http_parse_form(const char *s, size_t len);
/* The first route, in table order, whose pattern matches path and whose method is method;
 * its '*' segments go to captures (all NULL on entry; caller frees). NULL when there is
 * none, captures all NULL again and *path_known set when a route matched the path with
 * another method (405 rather than 404). */
const struct route *http_route_find(const char *method, const char *path,
    char *captures[HTTP_MAX_CAPTURES], int *path_known);

/* The route table's size, a route's index in it, the route at an index (NULL past it). */
size_t http_route_count(void);
size_t http_route_index(const struct route *rt);
const struct route *http_route_at(size_t i);

/* Server lifecycle (the front), on a listening socket; cert and key (PEM text) for TLS,
 * or NULL. forward() hands a whole request on to the engine and returns without waiting:
 * it runs on an epoll thread, with the connection suspended. Whoever has the answer sets
 * rq->reply and calls http_req_done(rq), once, from any thread. */
struct http_server;
typedef void (*http_forward_fn)(void *cls, struct http_req *rq);
void http_req_done(struct http_req *rq);
enum el_err http_start(const struct config *cfg, int listen_fd, const char *cert,
    const char *key, http_forward_fn forward, void *cls, struct http_server **out,
    struct el_why *w);
/* The listening socket for cfg->listen ("address:port", IPv4), non-blocking. */
enum el_err http_listen_socket(const char *listen, int *fd, struct el_why *w);
void http_quiesce(struct http_server *s);
void http_stop(struct http_server *s);

#endif
