/*
 * front.c — the front process (proc.h): reads its configuration and the TLS key, enters
 * its sandbox (sandbox.h), serves HTTP on the socket the parent bound, and forwards every
 * request over the link to the engine, answering 503 while there is none (the engine is
 * restarting). Calls on the link carry an id; the link's reader thread answers each
 * request with its reply, so no thread waits for the engine.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "elevate/config.h"
#include "elevate/log.h"
#include "frame.h"
#include "http.h"
#include "link.h"
#include "msg.h"
#include "proc.h"
#include "sandbox.h"

/* A call on the link, waiting for its reply. */
struct pending {
	uint32_t id;
	struct link *l;
	struct http_req *rq;
	struct pending *next;
};

struct front {
	pthread_mutex_t mu;
	struct link *link;         /* NULL while the engine is away */
	struct pending *pending;
	uint32_t next_id;
	size_t nroutes;
	int ctl;
};

static void
unavailable(struct http_req *rq)
{
	http_json_retry(rq, 503, json_pack("{s:{s:s, s:s}}", "error", "code", "unavailable",
	    "message", "the broker's engine is restarting: try again in a moment"), 1);
}

/* Takes the call id of link l off the list: NULL when there is none. */
static struct pending *
take(struct front *fr, struct link *l, uint32_t id)
{
	struct pending **pp, *p;

	for (pp = &fr->pending; (p = *pp) != NULL; pp = &p->next)
		if (p->l == l && p->id == id) {
			*pp = p->next;
			return p;
		}
	return NULL;
}

/* The reply to a call answers its request; anything else ends the link. */
static bool
on_reply(void *cls, struct link *l, struct frame *f)
{
	struct front *fr = cls;
	struct pending *p;

	pthread_mutex_lock(&fr->mu);
	p = take(fr, l, f->id);
	pthread_mutex_unlock(&fr->mu);
	if (p == NULL || !frame_accepts(FR_FRONT, f->type, fr->nroutes) || f->fd >= 0) {
		log_err("link: the engine sent a message of type %#x for no call", f->type);
		frame_free(f);
		if (p != NULL) {
			unavailable(p->rq);
			http_req_done(p->rq);
			link_unref(p->l);
			free(p);
		}
		return false;
	}
	if (msg_reply_decode(f->payload ? f->payload : "", f->len, p->rq) != EL_OK)
		unavailable(p->rq);
	frame_free(f);
	http_req_done(p->rq);
	link_unref(p->l);
	free(p);
	return true;
}

/* The calls still waiting on the link end without an answer. */
static void
on_end(void *cls, struct link *l)
{
	struct front *fr = cls;
	struct pending *p, *next, *ended = NULL, **pp;
	struct link *gone = NULL;

	pthread_mutex_lock(&fr->mu);
	for (pp = &fr->pending; (p = *pp) != NULL;)
		if (p->l == l) {
			*pp = p->next;
			p->next = ended;
			ended = p;
		} else
			pp = &p->next;
	if (fr->link == l) {
		gone = l;
		fr->link = NULL;
		log_warn("link to the engine lost: answering 503 until it is back");
	}
	pthread_mutex_unlock(&fr->mu);
	for (p = ended; p != NULL; p = next) {
		next = p->next;
		unavailable(p->rq);
		http_req_done(p->rq);
		link_unref(p->l);
		free(p);
	}
	link_unref(gone);
}

static void
install_link(struct front *fr, int fd)
{
	struct link *l = link_start(fd, on_reply, on_end, fr), *old;

	if (l == NULL)
		return;
	pthread_mutex_lock(&fr->mu);
	old = fr->link;
	fr->link = l;
	pthread_mutex_unlock(&fr->mu);
	if (old != NULL) {
		link_close(old);
		link_unref(old);
	}
	log_info("link to the engine established");
}

/*
 * On an epoll thread: the request goes to the engine as one call and the thread goes on
 * serving its other connections; the link's reader answers it when the reply comes (or
 * 503 when the link ends first, or there is none).
 */
static void
forward(void *cls, struct http_req *rq)
{
	struct front *fr = cls;
	struct pending *p;
	char *payload;
	size_t len;

	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (payload = msg_call_encode(rq, &len)) == NULL) {
		free(p);
		http_error(rq, 500, "internal", "out of memory");
		http_req_done(rq);
		return;
	}
	p->rq = rq;
	pthread_mutex_lock(&fr->mu);
	if ((p->l = fr->link) == NULL) {
		pthread_mutex_unlock(&fr->mu);
		free(p);
		explicit_bzero(payload, len);
		free(payload);
		unavailable(rq);
		http_req_done(rq);
		return;
	}
	link_ref(p->l);
	p->id = ++fr->next_id;
	p->next = fr->pending;
	fr->pending = p;
	pthread_mutex_unlock(&fr->mu);
	/* The reply may come (and the request be answered) before link_send returns: p and
	 * rq belong to the reader from here on. A send that fails ends the link, and on_end
	 * answers every call still on it. */
	(void)link_send(p->l, MSG_CALL + (uint32_t)http_route_index(rq->route), p->id,
	    payload, len);
	explicit_bzero(payload, len);
	free(payload);
}

/* The parent's messages: a new link. Its end of the control socket closing means it is
 * gone: so are we. */
static void *
ctl_main(void *arg)
{
	struct front *fr = arg;
	struct el_why w = {{0}};
	struct frame f;

	while (frame_recv(fr->ctl, &f, &w) == EL_OK) {
		if (!frame_accepts(FR_CHILD, f.type, 0) || f.type != CTL_LINK || f.fd < 0)
			fatalx("control: a message of type %#x from the parent", f.type);
		install_link(fr, f.fd);
		f.fd = -1;
		frame_free(&f);
	}
	kill(getpid(), SIGTERM);
	return NULL;
}

static void
wipe_free(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

int
front_main(const char *config_path, const char *level, int ctl_fd, int listen_fd)
{
	struct config cfg;
	struct front fr;
	struct http_server *srv = NULL;
	struct el_why w = {{0}};
	char *cert = NULL, *key = NULL;
	sigset_t set;
	pthread_t t;
	int sig, rc = 1;

	memset(&fr, 0, sizeof(fr));
	if (proc_setup(config_path, level, &cfg, &set, false) != EL_OK)
		return 1;
	pthread_mutex_init(&fr.mu, NULL);
	fr.nroutes = http_route_count();
	fr.ctl = ctl_fd;
	if (cfg.tls_cert != NULL &&
	    (el_read_file(cfg.tls_cert, 1 << 20, &cert, NULL, &w) != EL_OK ||
	    el_read_file(cfg.tls_key, 1 << 20, &key, NULL, &w) != EL_OK)) {
		log_err("%s", w.msg);
		goto out;
	}
	if (sandbox_enter(cfg.run_as, &w) != EL_OK) {
		log_err("cannot enter the front's sandbox: %s", w.msg);
		goto out;
	}
	if (http_start(&cfg, listen_fd, cert, key, forward, &fr, &srv, &w) != EL_OK) {
		log_err("%s", w.msg);
		goto out;
	}
	wipe_free(key);
	key = NULL;
	if (pthread_create(&t, NULL, ctl_main, &fr) != 0)
		goto out;
	pthread_detach(t);
	(void)frame_send(ctl_fd, CTL_READY, 0, NULL, 0, -1);
	for (;;) {
		if (sigwait(&set, &sig) != 0 || sig == SIGHUP)
			continue;
		log_info("front: signal %d: draining", sig);
		break;
	}
	http_quiesce(srv);
	rc = 0;
out:
	http_stop(srv);   /* waits for requests in flight */
	wipe_free(key);
	free(cert);
	config_free(&cfg);
	return rc;
}
