/*
 * http_guard.c — owns the request deadline of the listener's connections. libmicrohttpd
 * has one timeout, reset by every byte, so a client sending a header line every few
 * seconds would keep its slot for ever. Here every connection waiting for a request (just
 * accepted, or kept alive after an answer) sits on one list, oldest first; a sweeper
 * thread shuts down those whose deadline has passed, and a new connection beyond
 * max_waiting shuts down the oldest, so clients that never finish a request cannot hold
 * the slots of those that do (a signed call sends its whole request at once).
 *
 * Shutting a socket down makes its libmicrohttpd thread see the end of the stream and
 * close the connection itself. The fd stays valid while its entry exists: the CLOSED
 * notification removes the entry, under the lock, before libmicrohttpd closes the fd.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "elevate/log.h"
#include "http_guard.h"

struct watch {
	struct http_guard *g;
	int fd;
	bool waiting;                /* on the list: no whole request yet */
	int64_t deadline;            /* monotonic ms, while waiting */
	char addr[INET6_ADDRSTRLEN];
	struct watch *prev, *next;
};

struct http_guard {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t sweeper;
	bool stop;
	int64_t timeout_ms;
	size_t max_waiting, nwaiting;
	struct watch *head, *tail;   /* waiting, by deadline: the oldest first */
};

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The list functions run under g->mu. */
static void
unlist(struct watch *x)
{
	struct http_guard *g = x->g;

	if (!x->waiting)
		return;
	if (x->prev != NULL)
		x->prev->next = x->next;
	else
		g->head = x->next;
	if (x->next != NULL)
		x->next->prev = x->prev;
	else
		g->tail = x->prev;
	x->prev = x->next = NULL;
	x->waiting = false;
	g->nwaiting--;
}

static void
enlist(struct watch *x)
{
	struct http_guard *g = x->g;

	unlist(x);
	x->deadline = mono_ms() + g->timeout_ms;
	x->prev = g->tail;
	if (g->tail != NULL)
		g->tail->next = x;
	else
		g->head = x;
	g->tail = x;
	x->waiting = true;
	g->nwaiting++;
}

static void
cut(struct watch *x, const char *why)
{
	log_debug("http: closing a connection from %s: %s", x->addr, why);
	unlist(x);
	shutdown(x->fd, SHUT_RDWR);
}

static void *
sweep(void *arg)
{
	struct http_guard *g = arg;

	pthread_mutex_lock(&g->mu);
	while (!g->stop) {
		int64_t now = mono_ms(), until = now + 1000;
		struct timespec ts;

		while (g->head != NULL && g->head->deadline <= now)
			cut(g->head, "no whole request within limits.request_timeout");
		if (g->head != NULL && g->head->deadline < until)
			until = g->head->deadline;
		ts.tv_sec = (time_t)(until / 1000);
		ts.tv_nsec = (long)(until % 1000) * 1000000;
		pthread_cond_timedwait(&g->cv, &g->mu, &ts);
	}
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

enum el_err
http_guard_new(int64_t timeout_s, size_t max_waiting, struct http_guard **out,
    struct el_why *w)
{
	struct http_guard *g;
	pthread_condattr_t ca;
	int rc;

	if ((g = calloc(1, sizeof(*g))) == NULL)
		return el_fail(w, EL_ENOMEM, "out of memory");
	g->timeout_ms = timeout_s * 1000;
	g->max_waiting = max_waiting;
	pthread_mutex_init(&g->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&g->cv, &ca);
	pthread_condattr_destroy(&ca);
	if ((rc = pthread_create(&g->sweeper, NULL, sweep, g)) != 0) {
		pthread_cond_destroy(&g->cv);
		pthread_mutex_destroy(&g->mu);
		free(g);
		return el_fail(w, EL_EIO, "cannot start the request deadline thread: %s",
		    strerror(rc));
	}
	*out = g;
	return EL_OK;
}

void
http_guard_free(struct http_guard *g)
{
	if (g == NULL)
		return;
	pthread_mutex_lock(&g->mu);
	g->stop = true;
	pthread_cond_signal(&g->cv);
	pthread_mutex_unlock(&g->mu);
	pthread_join(g->sweeper, NULL);
	pthread_cond_destroy(&g->cv);
	pthread_mutex_destroy(&g->mu);
	free(g);
}

static void
client_addr(struct MHD_Connection *c, char *buf, size_t len)
{
	const union MHD_ConnectionInfo *ci;
	const struct sockaddr *sa;

	el_strlcpy(buf, "?", len);
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci == NULL || (sa = ci->client_addr) == NULL)
		return;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, buf,
		    (socklen_t)len);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
		    buf, (socklen_t)len);
}

void
http_guard_notify(void *cls, struct MHD_Connection *c, void **socket_context,
    enum MHD_ConnectionNotificationCode toe)
{
	struct http_guard *g = cls;
	struct watch *x = *socket_context;
	const union MHD_ConnectionInfo *ci;

	if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
		if (x == NULL)
			return;
		pthread_mutex_lock(&g->mu);
		unlist(x);
		pthread_mutex_unlock(&g->mu);
		free(x);
		*socket_context = NULL;
		return;
	}
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci == NULL)
		return;
	if ((x = calloc(1, sizeof(*x))) == NULL) {
		shutdown(ci->connect_fd, SHUT_RDWR);   /* a connection without a deadline: none */
		return;
	}
	x->g = g;
	x->fd = ci->connect_fd;
	client_addr(c, x->addr, sizeof(x->addr));
	pthread_mutex_lock(&g->mu);
	enlist(x);
	if (g->nwaiting > g->max_waiting)
		cut(g->head, "too many connections are waiting for a request");
	pthread_mutex_unlock(&g->mu);
	*socket_context = x;
}

static void
set_waiting(struct MHD_Connection *c, bool waiting)
{
	const union MHD_ConnectionInfo *ci;
	struct watch *x;

	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	if (ci == NULL || (x = ci->socket_context) == NULL)
		return;
	pthread_mutex_lock(&x->g->mu);
	if (waiting)
		enlist(x);
	else
		unlist(x);
	pthread_mutex_unlock(&x->g->mu);
}

void
http_guard_request_read(struct MHD_Connection *c)
{
	set_waiting(c, false);
}

void
http_guard_rearm(struct MHD_Connection *c)
{
	set_waiting(c, true);
}
