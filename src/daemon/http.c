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
#include <unistd.h>

#include "elevate/log.h"
#include "elevate/reqsig.h"
#include "http.h"
#include "http_guard.h"

#define HEADER_MEMORY (32 * 1024)
/* Descriptors besides connections: store, logs, AWS and SMTP clients, epoll, pipes. */
#define FD_RESERVE 256

struct http_server {
	struct MHD_Daemon *d;
	http_forward_fn forward;
	void *forward_cls;
	const struct config *cfg;
	struct http_guard *guard;
	char *cert, *key;
	/* requests forwarded and not yet answered, their connections suspended */
	pthread_mutex_t mu;
	pthread_cond_t idle;
	int busy;
};

static void
add_common_headers(struct MHD_Response *r)
{
	MHD_add_response_header(r, "Cache-Control", "no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
}

/* Queues rq->reply (taking its body) with the headers every answer carries. */
static enum MHD_Result
queue_reply(struct http_req *rq)
{
	struct http_reply *rp = &rq->reply;
	struct MHD_Response *r;
	char retry[16];
	enum MHD_Result ret;

	if (!rq->answered || rp->body == NULL)
		return MHD_NO;
	r = MHD_create_response_from_buffer(rp->len, rp->body, MHD_RESPMEM_MUST_FREE);
	if (r == NULL)
		return MHD_NO;
	rp->body = NULL;
	MHD_add_response_header(r, "Content-Type", rp->type ? rp->type : "application/json");
	add_common_headers(r);
	/* Pages need no script at all; forms post back to us only. */
	if (rp->type != NULL)
		MHD_add_response_header(r, "Content-Security-Policy", "default-src 'none'; "
		    "style-src 'self'; img-src 'self'; form-action 'self'; "
		    "frame-ancestors 'none'; base-uri 'none'");
	if (rp->retry_after > 0) {
		snprintf(retry, sizeof(retry), "%d", rp->retry_after);
		MHD_add_response_header(r, "Retry-After", retry);
	}
	ret = MHD_queue_response(rq->conn, rp->status, r);
	MHD_destroy_response(r);
	return ret;
}

/* A header's value as a new string (NULL when absent). */
static char *
header(struct http_req *rq, const char *name)
{
	const char *v = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);

	return v != NULL ? strdup(v) : NULL;
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

static bool
utf8(const char *s)
{
	return s == NULL || el_utf8_valid((const unsigned char *)s, strlen(s));
}

/* Routes the request and answers what the front can answer itself (no such endpoint,
 * wrong method, bytes that are not text): false then. True: the request is for the engine, which authenticates it. */
static bool
route(struct http_req *rq)
{
	int path_known;

	find_peer(rq);
	if ((rq->route = http_route_find(rq->method, rq->path, rq->captures,
	    &path_known)) == NULL) {
		if (path_known)
			http_error(rq, 405, "method_not_allowed", "%s is not allowed on %s",
			    rq->method, rq->path);
		else
			http_error(rq, 404, "not_found", "no such endpoint: %s", rq->path);
		return false;
	}
	rq->sig_user = header(rq, "X-Elevate-User");
	rq->sig_date = header(rq, "X-Elevate-Date");
	rq->sig_nonce = header(rq, "X-Elevate-Nonce");
	rq->sig_signature = header(rq, "X-Elevate-Signature");
	/* The engine takes text only (msg.h): other bytes are the client's mistake. */
	if (!utf8(rq->uri) || !utf8(rq->sig_user) || !utf8(rq->sig_date) ||
	    !utf8(rq->sig_nonce) || !utf8(rq->sig_signature)) {
		http_error(rq, 400, "bad_request", "the URL and the X-Elevate-* headers must be "
		    "UTF-8 text");
		return false;
	}
	return true;
}

/* ---- libmicrohttpd callbacks ---- */

static void *
uri_logger(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct http_server *s = cls;
	struct http_req *rq = calloc(1, sizeof(*rq));
	enum el_err r;

	(void)conn;
	if (rq == NULL)
		return NULL;
	if (strlen(uri) > HTTP_MAX_URI) {
		rq->uri_too_long = 1;
		uri = "/";
	}
	if ((r = http_req_init(rq, s->cfg, "", uri)) != EL_OK) {
		http_req_free(rq);
		free(rq);
		return NULL;
	}
	return rq;
}

static void
completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct http_req *rq = *con_cls;

	(void)cls;
	(void)toe;
	http_guard_rearm(conn);
	if (rq == NULL)
		return;
	http_req_free(rq);
	free(rq);
	*con_cls = NULL;
}

/* ---- forwarding ---- */

void
http_req_done(struct http_req *rq)
{
	struct http_server *s = rq->server;

	MHD_resume_connection(rq->conn);
	pthread_mutex_lock(&s->mu);
	if (--s->busy == 0)
		pthread_cond_broadcast(&s->idle);
	pthread_mutex_unlock(&s->mu);
}

/* Suspends the connection and hands its request on; the answer resumes it. */
static enum MHD_Result
submit(struct http_server *s, struct http_req *rq)
{
	rq->dispatched = 1;
	rq->server = s;
	MHD_suspend_connection(rq->conn);
	pthread_mutex_lock(&s->mu);
	s->busy++;
	pthread_mutex_unlock(&s->mu);
	s->forward(s->forward_cls, rq);
	return MHD_YES;
}

static enum MHD_Result
access_handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
    const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct http_server *s = cls;
	struct http_req *rq = *con_cls;
	const char *cl;

	(void)url;
	(void)version;
	if (rq == NULL)
		return MHD_NO;
	rq->conn = conn;
	if (!rq->started) {
		/* First call: headers only. Refuse early when the declared length is too big. */
		rq->started = 1;
		if (rq->uri_too_long) {
			http_error(rq, 414, "uri_too_long", "the URL is longer than %d bytes",
			    HTTP_MAX_URI);
			return queue_reply(rq);
		}
		if (strlen(method) >= sizeof(rq->method)) {
			http_error(rq, 501, "not_implemented", "no such method");
			return queue_reply(rq);
		}
		el_strlcpy(rq->method, method, sizeof(rq->method));
		cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		    MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl != NULL) {
			long long n;
			if (el_parse_int(cl, 0, INT64_MAX, &n) == EL_OK && n > rq->cfg->max_body) {
				http_error(rq, 413, "payload_too_large", "the body is larger than "
				    "%lld bytes", (long long)rq->cfg->max_body);
				return queue_reply(rq);
			}
		}
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		if (!rq->too_big && dbuf_add(&rq->body, upload_data, *upload_data_size) != EL_OK)
			rq->too_big = 1;
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (rq->dispatched)   /* resumed: the worker's answer */
		return queue_reply(rq);
	http_guard_request_read(conn);
	if (rq->too_big) {
		http_error(rq, 413, "payload_too_large", "the body is larger than %lld bytes",
		    (long long)rq->cfg->max_body);
		return queue_reply(rq);
	}
	if (!route(rq))
		return queue_reply(rq);
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

enum el_err
http_listen_socket(const char *addr, int *out, struct el_why *w)
{
	struct sockaddr_in sa;
	int fd, one = 1, tries;
	enum el_err r;

	if ((r = parse_listen(addr, &sa, w)) != EL_OK)
		return r;
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		return el_fail(w, EL_EIO, "socket: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* A front of the elevated just killed may hold the port for a moment more. */
	for (tries = 0; bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0; tries++) {
		if (errno != EADDRINUSE || tries >= 50) {
			r = el_fail(w, EL_EIO, "cannot listen on %s: %s", addr, strerror(errno));
			close(fd);
			return r;
		}
		usleep(100 * 1000);
	}
	if (listen(fd, SOMAXCONN) != 0) {
		r = el_fail(w, EL_EIO, "cannot listen on %s: %s", addr, strerror(errno));
		close(fd);
		return r;
	}
	*out = fd;
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
http_start(const struct config *cfg, int listen_fd, const char *cert, const char *key,
    http_forward_fn forward, void *cls, struct http_server **out, struct el_why *w)
{
	struct http_server *s;
	struct MHD_OptionItem tls[3] = {{MHD_OPTION_END, 0, NULL}};   /* set with tls.cert */
	/* epoll threads each serve many connections; ITC lets http_quiesce() stop them and
	 * a worker resume a suspended one. */
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG |
	    MHD_ALLOW_SUSPEND_RESUME;
	unsigned conns;
	enum el_err r;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return EL_ENOMEM;
	s->forward = forward;
	s->forward_cls = cls;
	s->cfg = cfg;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->idle, NULL);
	if (cert != NULL && key != NULL) {
		if ((s->cert = strdup(cert)) == NULL || (s->key = strdup(key)) == NULL) {
			http_stop(s);
			return EL_ENOMEM;
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
	    MHD_OPTION_LISTEN_SOCKET, listen_fd,
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
		return el_fail(w, EL_EIO, "cannot serve on %s: %s", cfg->listen, strerror(errno));
	}
	log_info("http: %u threads, at most %u connections (per address: %lld, 0 is no "
	    "limit), a request must arrive within %llds", (unsigned)cfg->http_threads, conns,
	    (long long)cfg->max_connections_per_address, (long long)cfg->request_timeout);
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
	if (s == NULL)
		return;
	/* Requests in flight are answered and their connections resumed: libmicrohttpd must
	 * not be stopped with a connection suspended. */
	pthread_mutex_lock(&s->mu);
	while (s->busy > 0)
		pthread_cond_wait(&s->idle, &s->mu);
	pthread_mutex_unlock(&s->mu);
	if (s->d != NULL)
		MHD_stop_daemon(s->d);
	pthread_cond_destroy(&s->idle);
	pthread_mutex_destroy(&s->mu);
	http_guard_free(s->guard);
	if (s->key != NULL) {
		explicit_bzero(s->key, strlen(s->key));
		free(s->key);
	}
	free(s->cert);
	free(s);
}
