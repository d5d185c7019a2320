/*
 * http.c — owns the listener: libmicrohttpd set-up (epoll, a thread pool) with ceilings
 * (connections in all and per address, header memory, body size, timeouts, the request
 * deadline of http_guard.c), dispatch to the route httpparse.c finds, the 429 for source
 * addresses with too many refusals, request signature checks for signed routes, and
 * JSON/page responses with their security headers.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "elevate/log.h"
#include "elevate/reqsig.h"
#include "http.h"
#include "http_guard.h"

#define HEADER_MEMORY (32 * 1024)
/* Descriptors besides connections: store, logs, AWS and SMTP clients, epoll, pipes. */
#define FD_RESERVE 256

struct http_server {
	struct MHD_Daemon *d;
	struct engine *engine;
	const struct config *cfg;
	struct http_guard *guard;
	char *cert, *key;
	/* workers: a request that may wait (on AWS, on the store) runs here, so the epoll
	 * thread that owns its connection goes on serving the others */
	pthread_mutex_t mu;
	pthread_cond_t cv, idle;
	struct http_req *head, *tail;
	int busy;                        /* requests queued or running */
	int stopping;
	pthread_t *workers;
	size_t nworkers;
};

/* The answer goes out now, or (on a worker) once the connection is resumed. */
static int
answer(struct http_req *rq, unsigned status, struct MHD_Response *r)
{
	int ret;

	if (rq->dispatched) {
		rq->resp = r;
		rq->resp_status = status;
		return MHD_YES;
	}
	ret = MHD_queue_response(rq->conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static void
add_common_headers(struct MHD_Response *r)
{
	MHD_add_response_header(r, "Cache-Control", "no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
}

/* http_json with a Retry-After header when retry_after > 0. */
static int
queue_json(struct http_req *rq, unsigned status, json_t *body, int retry_after)
{
	struct MHD_Response *r;
	char *s, retry[16];

	s = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (s == NULL)
		s = strdup("{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}");
	if (s == NULL)
		return MHD_NO;
	r = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(s);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", "application/json");
	add_common_headers(r);
	if (retry_after > 0) {
		snprintf(retry, sizeof(retry), "%d", retry_after);
		MHD_add_response_header(r, "Retry-After", retry);
	}
	return answer(rq, status, r);
}

int
http_json(struct http_req *rq, unsigned status, json_t *body)
{
	return queue_json(rq, status, body, 0);
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
	struct MHD_Response *r;

	r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", content_type);
	add_common_headers(r);
	/* Pages need no script at all; forms post back to us only. */
	MHD_add_response_header(r, "Content-Security-Policy", "default-src 'none'; "
	    "style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
	    "base-uri 'none'");
	return answer(rq, status, r);
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

/* ---- signed routes and dispatch ---- */

static int
authenticate(struct http_req *rq)
{
	struct reqsig_fields f;
	struct el_why w = {{0}};
	const char *code = "bad_signature", *sig;
	enum el_err r;

	memset(&f, 0, sizeof(f));
	f.method = rq->method;
	f.path_query = rq->uri;
	f.user = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "X-Elevate-User");
	f.date = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "X-Elevate-Date");
	f.nonce = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "X-Elevate-Nonce");
	sig = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "X-Elevate-Signature");
	f.body = rq->body.p;
	f.body_len = rq->body.len;
	if (f.user == NULL || sig == NULL)
		return http_error(rq, 401, "unauthorized", "this call must be signed: use the "
		    "elevate CLI (elevate init) or see docs/API.md");
	if (strlen(f.user) > 64) {
		return http_error(rq, 401, "unknown_user", "unknown user");
	}
	if ((r = engine_authenticate(rq->engine, &f, sig, rq->peer, &code, &w)) == EL_EDB)
		return http_engine_error(rq, r, &w);
	if (r != EL_OK)
		return http_error(rq, 401, code, "%s", w.msg);
	rq->user = f.user;
	return -1;   /* authenticated: go on */
}

/* The client's address as text into rq->peer: the connection's source ("unknown" if it
 * has none), or behind the trusted proxy the last address of X-Forwarded-For (the one the
 * proxy added; what a client sent before it is not believed). */
static void
find_peer(struct http_req *rq)
{
	const union MHD_ConnectionInfo *ci;
	const struct sockaddr *sa;
	const char *xff, *last;
	char addr[48];
	unsigned char bin[sizeof(struct in6_addr)];
	size_t n;

	el_strlcpy(rq->peer, "unknown", sizeof(rq->peer));
	ci = MHD_get_connection_info(rq->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci == NULL || (sa = ci->client_addr) == NULL)
		return;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
		    rq->peer, sizeof(rq->peer));
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
		    rq->peer, sizeof(rq->peer));
	if (rq->cfg->trusted_proxy == NULL || strcmp(rq->peer, rq->cfg->trusted_proxy) != 0 ||
	    (xff = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
	    "X-Forwarded-For")) == NULL)
		return;
	last = strrchr(xff, ',') ? strrchr(xff, ',') + 1 : xff;
	last += strspn(last, " \t");
	n = strcspn(last, " \t");
	if (n == 0 || n >= sizeof(addr))
		return;
	memcpy(addr, last, n);
	addr[n] = '\0';
	if (inet_pton(AF_INET, addr, bin) == 1 || inet_pton(AF_INET6, addr, bin) == 1)
		el_strlcpy(rq->peer, addr, sizeof(rq->peer));
}

static int
dispatch(struct http_req *rq)
{
	const struct route *rt;
	int path_known, ret, retry = 0;

	find_peer(rq);
	if ((rt = http_route_find(rq->method, rq->path, rq->captures, &path_known)) == NULL) {
		if (path_known)
			return http_error(rq, 405, "method_not_allowed", "%s is not allowed on %s",
			    rq->method, rq->path);
		return http_error(rq, 404, "not_found", "no such endpoint: %s", rq->path);
	}
	/* Before any signature check or store access. */
	if (rt->auth != ROUTE_PUBLIC && engine_throttled(rq->engine, rq->peer, &retry))
		return queue_json(rq, 429, json_pack("{s:{s:s, s:s}}", "error", "code",
		    "rate_limited", "message", "too many refused requests from this "
		    "address: try again later (see Retry-After)"), retry);
	if (rt->auth == ROUTE_SIGNED && (ret = authenticate(rq)) != -1)
		return ret;
	return rt->handler(rq);
}

/* ---- libmicrohttpd callbacks ---- */

static void *
uri_logger(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct http_server *s = cls;
	struct http_req *rq = calloc(1, sizeof(*rq));
	char *q;

	(void)conn;
	if (rq == NULL)
		return NULL;
	rq->engine = s->engine;
	rq->cfg = s->cfg;
	dbuf_init(&rq->body, (size_t)s->cfg->max_body);
	if (strlen(uri) > HTTP_MAX_URI) {
		rq->uri_too_long = 1;
		uri = "/";
	}
	el_strlcpy(rq->uri, uri, sizeof(rq->uri));
	rq->pathbuf = strdup(rq->uri);
	if (rq->pathbuf == NULL) {
		free(rq);
		return NULL;
	}
	rq->path = rq->pathbuf;
	if ((q = strchr(rq->pathbuf, '?')) != NULL) {
		*q = '\0';
		rq->query = q + 1;
	} else
		rq->query = "";
	return rq;
}

static void
completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct http_req *rq = *con_cls;
	int i;

	(void)cls;
	(void)toe;
	http_guard_rearm(conn);
	if (rq == NULL)
		return;
	for (i = 0; i < HTTP_MAX_CAPTURES; i++)
		free(rq->captures[i]);
	dbuf_free_secret(&rq->body);
	free(rq->pathbuf);
	free(rq);
	*con_cls = NULL;
}

/* ---- workers ---- */

static void *
worker_main(void *arg)
{
	struct http_server *s = arg;
	struct http_req *rq;

	for (;;) {
		pthread_mutex_lock(&s->mu);
		while (s->head == NULL && !s->stopping)
			pthread_cond_wait(&s->cv, &s->mu);
		if ((rq = s->head) == NULL) {
			pthread_mutex_unlock(&s->mu);
			return NULL;
		}
		if ((s->head = rq->next) == NULL)
			s->tail = NULL;
		pthread_mutex_unlock(&s->mu);
		if (dispatch(rq) == MHD_NO && rq->resp == NULL)
			rq->failed = 1;
		MHD_resume_connection(rq->conn);
		pthread_mutex_lock(&s->mu);
		if (--s->busy == 0)
			pthread_cond_broadcast(&s->idle);
		pthread_mutex_unlock(&s->mu);
	}
}

/* Suspends the connection and hands its request to a worker. */
static enum MHD_Result
submit(struct http_server *s, struct http_req *rq)
{
	rq->dispatched = 1;
	MHD_suspend_connection(rq->conn);
	pthread_mutex_lock(&s->mu);
	rq->next = NULL;
	if (s->tail != NULL)
		s->tail->next = rq;
	else
		s->head = rq;
	s->tail = rq;
	s->busy++;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	return MHD_YES;
}

static enum MHD_Result
access_handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
    const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct http_server *s = cls;
	struct http_req *rq = *con_cls;
	const char *cl;
	enum MHD_Result ret;

	(void)url;
	(void)version;
	if (rq == NULL)
		return MHD_NO;
	rq->conn = conn;
	rq->method = method;
	if (rq->uri_too_long)
		return (enum MHD_Result)http_error(rq, 414, "uri_too_long", "the URL is longer "
		    "than %d bytes", HTTP_MAX_URI);
	if (!rq->started) {
		/* First call: headers only. Refuse early when the declared length is too big. */
		rq->started = 1;
		cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		    MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl != NULL) {
			long long n;
			if (el_parse_int(cl, 0, INT64_MAX, &n) == EL_OK && n > rq->cfg->max_body)
				return (enum MHD_Result)http_error(rq, 413, "payload_too_large",
				    "the body is larger than %lld bytes", (long long)rq->cfg->max_body);
		}
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		if (!rq->too_big && dbuf_add(&rq->body, upload_data, *upload_data_size) != EL_OK)
			rq->too_big = 1;
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (rq->dispatched) {
		/* Resumed: the worker's answer. */
		if (rq->failed || rq->resp == NULL)
			return MHD_NO;
		ret = MHD_queue_response(conn, rq->resp_status, rq->resp);
		MHD_destroy_response(rq->resp);
		rq->resp = NULL;
		return ret;
	}
	http_guard_request_read(conn);
	if (rq->too_big)
		return (enum MHD_Result)http_error(rq, 413, "payload_too_large", "the body is "
		    "larger than %lld bytes", (long long)rq->cfg->max_body);
	return submit(s, rq);
}

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];

	(void)cls;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	buf[strcspn(buf, "\n")] = '\0';
	log_debug("http: %s", buf);
}

static enum el_err
parse_listen(const char *listen, struct sockaddr_in *sa, struct el_why *w)
{
	char host[64];
	const char *colon = strrchr(listen, ':');
	long long port;

	if (colon == NULL || (size_t)(colon - listen) >= sizeof(host))
		return el_fail(w, EL_ECONFIG, "listen %s: expected address:port", listen);
	memcpy(host, listen, (size_t)(colon - listen));
	host[colon - listen] = '\0';
	if (el_parse_int(colon + 1, 0, 65535, &port) != EL_OK)
		return el_fail(w, EL_ECONFIG, "listen %s: bad port", listen);
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	if (strcmp(host, "localhost") == 0)
		el_strlcpy(host, "127.0.0.1", sizeof(host));
	if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
		return el_fail(w, EL_ECONFIG, "listen %s: %s is not an IPv4 address", listen, host);
	return EL_OK;
}

/*
 * Every connection is a descriptor: raise the soft open-file limit to fit max_connections
 * (up to the hard limit) and say so; when even the hard limit is short, serve fewer.
 */
static unsigned
fit_connections(unsigned want)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)want + FD_RESERVE, was;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur >= need)
		return want;
	was = rl.rlim_cur;
	rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need ? rl.rlim_max : need;
	if (rl.rlim_cur > was && setrlimit(RLIMIT_NOFILE, &rl) == 0)
		log_info("raised the open-file limit from %llu to %llu for limits.max_connections "
		    "%u", (unsigned long long)was, (unsigned long long)rl.rlim_cur, want);
	else
		rl.rlim_cur = was;
	if (rl.rlim_cur >= need)
		return want;
	need = rl.rlim_cur > FD_RESERVE + 4 ? rl.rlim_cur - FD_RESERVE : 4;
	log_warn("the open-file limit (%llu, hard limit %llu) fits only %llu of "
	    "limits.max_connections %u: raise it (systemd: LimitNOFILE=)",
	    (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
	    (unsigned long long)need, want);
	return (unsigned)need;
}

enum el_err
http_start(const struct config *cfg, struct engine *e, struct http_server **out,
    struct el_why *w)
{
	struct http_server *s;
	struct sockaddr_in sa;
	struct MHD_OptionItem tls[3] = {{MHD_OPTION_END, 0, NULL}};   /* set with tls.cert */
	/* epoll threads each serve many connections; ITC lets http_quiesce() stop them and
	 * a worker resume a suspended one. */
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG |
	    MHD_ALLOW_SUSPEND_RESUME;
	unsigned conns;
	enum el_err r;

	if ((r = parse_listen(cfg->listen, &sa, w)) != EL_OK)
		return r;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return EL_ENOMEM;
	s->engine = e;
	s->cfg = cfg;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	pthread_cond_init(&s->idle, NULL);
	if ((s->workers = calloc((size_t)cfg->http_workers, sizeof(*s->workers))) == NULL) {
		http_stop(s);
		return EL_ENOMEM;
	}
	for (; s->nworkers < (size_t)cfg->http_workers; s->nworkers++)
		if (pthread_create(&s->workers[s->nworkers], NULL, worker_main, s) != 0) {
			http_stop(s);
			return el_fail(w, EL_ENOMEM, "cannot start the HTTP workers");
		}
	if (cfg->tls_cert != NULL) {
		if ((r = el_read_file(cfg->tls_cert, 1 << 20, &s->cert, NULL, w)) != EL_OK ||
		    (r = el_read_file(cfg->tls_key, 1 << 20, &s->key, NULL, w)) != EL_OK) {
			http_stop(s);
			return r;
		}
		flags |= MHD_USE_TLS;
		tls[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, s->cert};
		tls[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, s->key};
		tls[2] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
	}
	conns = fit_connections((unsigned)cfg->max_connections);
	/* Connections still waiting for their request may take three quarters of the slots;
	 * beyond that a new one closes the oldest. */
	if ((r = http_guard_new(cfg->request_timeout, conns - conns / 4, &s->guard, w)) != EL_OK) {
		http_stop(s);
		return r;
	}
	s->d = MHD_start_daemon(flags, 0, NULL, NULL, access_handler, s,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
	    MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->http_threads,
	    MHD_OPTION_URI_LOG_CALLBACK, uri_logger, s,
	    MHD_OPTION_NOTIFY_COMPLETED, completed, s,
	    MHD_OPTION_NOTIFY_CONNECTION, http_guard_notify, s->guard,
	    MHD_OPTION_CONNECTION_LIMIT, conns,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->max_connections_per_address,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->connection_timeout,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HEADER_MEMORY,
	    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
	    MHD_OPTION_ARRAY, tls,
	    MHD_OPTION_END);
	if (s->d == NULL) {
		http_stop(s);
		return el_fail(w, EL_EIO, "cannot listen on %s: %s", cfg->listen, strerror(errno));
	}
	log_info("http: %u threads, %u workers, at most %u connections (per address: %lld, 0 is "
	    "no limit), a request must arrive within %llds", (unsigned)cfg->http_threads,
	    (unsigned)cfg->http_workers, conns, (long long)cfg->max_connections_per_address,
	    (long long)cfg->request_timeout);
	*out = s;
	return EL_OK;
}

void
http_quiesce(struct http_server *s)
{
	if (s != NULL && s->d != NULL)
		MHD_quiesce_daemon(s->d);
}

void
http_stop(struct http_server *s)
{
	size_t i;

	if (s == NULL)
		return;
	/* Requests in flight finish and their connections are resumed: libmicrohttpd must
	 * not be stopped with a connection suspended. */
	if (s->workers != NULL) {
		pthread_mutex_lock(&s->mu);
		while (s->busy > 0)
			pthread_cond_wait(&s->idle, &s->mu);
		pthread_mutex_unlock(&s->mu);
	}
	if (s->d != NULL)
		MHD_stop_daemon(s->d);
	pthread_mutex_lock(&s->mu);
	s->stopping = 1;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	for (i = 0; i < s->nworkers; i++)
		pthread_join(s->workers[i], NULL);
	free(s->workers);
	pthread_cond_destroy(&s->idle);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	http_guard_free(s->guard);
	if (s->key != NULL) {
		explicit_bzero(s->key, strlen(s->key));
		free(s->key);
	}
	free(s->cert);
	free(s);
}
