/*
 * front.c — the front process (proc.h): reads its configuration and the TLS key, enters
 * its sandbox (sandbox.h), serves HTTP on the socket the parent bound, and forwards every
 * request over the link to the engine, answering 503 while there is none (the engine is
 * restarting). Calls on the link carry an id; one reader thread hands each reply to the
 * worker waiting for it.
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

struct pending {
	uint32_t id;
	struct link *l;
	int done;
	struct frame reply;        /* type 0 when the link ended first */
	struct pending *next;
};

struct front {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct link *link;         /* NULL while the engine is away */
	struct pending *pending;
	uint32_t next_id;
	size_t nroutes;
	int ctl;
};

/* A reply for the call waiting on it; anything else ends the link. */
static bool
on_reply(void *cls, struct link *l, struct frame *f)
{
	struct front *fr = cls;
	struct pending *p;

	pthread_mutex_lock(&fr->mu);
	for (p = fr->pending; p != NULL; p = p->next)
		if (p->l == l && p->id == f->id && !p->done)
			break;
	if (p == NULL || !frame_accepts(FR_FRONT, f->type, fr->nroutes) || f->fd >= 0) {
		pthread_mutex_unlock(&fr->mu);
		log_err("link: the engine sent a message of type %#x for no call", f->type);
		frame_free(f);
		return false;
	}
	p->reply = *f;
	p->done = 1;
	pthread_cond_broadcast(&fr->cv);
	pthread_mutex_unlock(&fr->mu);
	return true;
}

/* The calls still waiting on the link end without an answer. */
static void
on_end(void *cls, struct link *l)
{
	struct front *fr = cls;
	struct pending *p;
	struct link *gone = NULL;

	pthread_mutex_lock(&fr->mu);
	for (p = fr->pending; p != NULL; p = p->next)
		if (p->l == l)
			p->done = 1;
	if (fr->link == l) {
		gone = l;
		fr->link = NULL;
		log_warn("link to the engine lost: answering 503 until it is back");
	}
	pthread_cond_broadcast(&fr->cv);
	pthread_mutex_unlock(&fr->mu);
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

/* One call: the reply frame into *reply (type 0 when there was no answer). */
static void
call(struct front *fr, uint32_t type, const char *payload, size_t len, struct frame *reply)
{
	struct pending p, **pp;

	memset(&p, 0, sizeof(p));
	p.reply.fd = -1;
	pthread_mutex_lock(&fr->mu);
	if ((p.l = fr->link) == NULL) {
		pthread_mutex_unlock(&fr->mu);
		*reply = p.reply;
		return;
	}
	link_ref(p.l);
	p.id = ++fr->next_id;
	p.next = fr->pending;
	fr->pending = &p;
	pthread_mutex_unlock(&fr->mu);

	/* A send that fails found the link ended: no answer will come on it. */
	if (link_send(p.l, type, p.id, payload, len) != EL_OK) {
		pthread_mutex_lock(&fr->mu);
		p.done = 1;
		pthread_mutex_unlock(&fr->mu);
	}
	pthread_mutex_lock(&fr->mu);
	while (!p.done)
		pthread_cond_wait(&fr->cv, &fr->mu);
	for (pp = &fr->pending; *pp != &p; pp = &(*pp)->next)
		;
	*pp = p.next;
	pthread_mutex_unlock(&fr->mu);
	link_unref(p.l);
	*reply = p.reply;
}

static void
forward(void *cls, struct http_req *rq)
{
	struct front *fr = cls;
	struct frame reply;
	char *payload;
	size_t len;

	if ((payload = msg_call_encode(rq, &len)) == NULL) {
		http_error(rq, 500, "internal", "out of memory");
		return;
	}
	call(fr, MSG_CALL + (uint32_t)http_route_index(rq->route), payload, len, &reply);
	explicit_bzero(payload, len);
	free(payload);
	if (reply.type == 0 || msg_reply_decode(reply.payload ? reply.payload : "", reply.len,
	    rq) != EL_OK)
		http_json_retry(rq, 503, json_pack("{s:{s:s, s:s}}", "error", "code",
		    "unavailable", "message", "the broker's engine is restarting: try again in a "
		    "moment"), 1);
	frame_free(&reply);
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
	pthread_cond_init(&fr.cv, NULL);
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
