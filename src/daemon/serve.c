/*
 * serve.c — the engine process (proc.h): opens the engine, tells the parent it is ready,
 * and answers the front's calls. Each call is re-checked here from what the client sent:
 * the route must be the one its method and path name, the signature must verify (the
 * front's word on a user counts for nothing), the refusal limits apply, and then the
 * route's handler runs and its answer goes back. A front that sends a message outside
 * the table loses its link and the parent restarts it.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "elevate/config.h"
#include "elevate/engine.h"
#include "elevate/log.h"
#include "frame.h"
#include "http.h"
#include "link.h"
#include "msg.h"
#include "proc.h"

struct job {
	struct link *l;
	struct frame f;
	struct job *next;
};

/* The calls waiting for a worker of one pool (enum route_pace). */
struct queue {
	pthread_cond_t cv;
	struct job *head, *tail;
};

struct pool {
	struct serve *s;
	struct queue *q;
};

struct serve {
	struct engine *e;
	const struct config *cfg;
	int ctl;
	pthread_mutex_t ctl_wmu;
	pthread_mutex_t mu;
	struct queue q[2];            /* ROUTE_MAY_WAIT, ROUTE_QUICK */
	struct pool pools[2];
	int stopping;
	struct link *link;
	size_t nroutes;
	pthread_t *workers;
	size_t nworkers;
};

/* ---- the link ---- */

static void
ctl_send(struct serve *s, uint32_t type)
{
	pthread_mutex_lock(&s->ctl_wmu);
	(void)frame_send(s->ctl, type, 0, NULL, 0, -1);
	pthread_mutex_unlock(&s->ctl_wmu);
}

/* A call from the front goes to the queue; anything else ends the link. */
static bool
on_call(void *cls, struct link *l, struct frame *f)
{
	struct serve *s = cls;
	struct queue *q;
	struct job *j;

	if (!frame_accepts(FR_ENGINE, f->type, s->nroutes) || f->fd >= 0) {
		log_err("link: the front sent a message of type %#x, outside the table: ending "
		    "its link and asking for a new front", f->type);
		frame_free(f);
		ctl_send(s, CTL_BADPEER);
		return false;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		frame_free(f);
		return false;
	}
	j->f = *f;
	j->l = l;
	link_ref(l);
	q = &s->q[http_route_at(f->type - MSG_CALL)->pace == ROUTE_QUICK];
	pthread_mutex_lock(&s->mu);
	if (q->tail != NULL)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&s->mu);
	return true;
}

static void
on_end(void *cls, struct link *l)
{
	struct serve *s = cls;
	struct link *gone = NULL;

	pthread_mutex_lock(&s->mu);
	if (s->link == l) {
		gone = l;
		s->link = NULL;
	}
	pthread_mutex_unlock(&s->mu);
	link_unref(gone);
}

/* A new link from the parent replaces the old one (whose front is gone or going). */
static void
install_link(struct serve *s, int fd)
{
	struct link *l = link_start(fd, on_call, on_end, s), *old;

	if (l == NULL)
		return;
	pthread_mutex_lock(&s->mu);
	old = s->link;
	s->link = l;
	pthread_mutex_unlock(&s->mu);
	if (old != NULL) {
		link_close(old);
		link_unref(old);
	}
	log_info("link to the front established");
}

/* ---- one call ---- */

static int
authenticate(struct http_req *rq)
{
	struct reqsig_fields f;
	struct el_why w = {{0}};
	const char *code = "bad_signature";
	enum el_err r;

	memset(&f, 0, sizeof(f));
	f.method = rq->method;
	f.path_query = rq->uri;
	f.user = rq->sig_user;
	f.date = rq->sig_date;
	f.nonce = rq->sig_nonce;
	f.body = rq->body.p;
	f.body_len = rq->body.len;
	if (f.user == NULL || rq->sig_signature == NULL)
		return http_error(rq, 401, "unauthorized", "this call must be signed: use the "
		    "elevate CLI (elevate init) or see docs/API.md");
	if (strlen(f.user) > 64)
		return http_error(rq, 401, "unknown_user", "unknown user");
	if ((r = engine_authenticate(rq->engine, &f, rq->sig_signature, rq->peer, &code,
	    &w)) == EL_EDB)
		return http_engine_error(rq, r, &w);
	if (r != EL_OK)
		return http_error(rq, 401, code, "%s", w.msg);
	rq->user = f.user;
	return -1;   /* authenticated: go on */
}

/* The answer to one call: what the route's handler says, once the call has shown it is
 * a request for that route and, for signed routes, whose it is. */
static void
answer(struct serve *s, const struct frame *f, struct http_req *rq)
{
	const struct route *rt = http_route_at(f->type - MSG_CALL);
	struct el_why w = {{0}};
	int retry = 0;

	rq->engine = s->e;
	if (msg_call_decode(f->payload ? f->payload : "", f->len, rt, s->cfg, rq, &w) != EL_OK) {
		log_warn("link: a malformed call from the front: %s", w.msg);
		http_error(rq, 400, "bad_request", "%s", w.msg);
		return;
	}
	/* Before any signature check or store access. */
	if (rt->auth != ROUTE_PUBLIC && engine_throttled(s->e, rq->peer, &retry)) {
		http_json_retry(rq, 429, json_pack("{s:{s:s, s:s}}", "error", "code",
		    "rate_limited", "message", "too many refused requests from this "
		    "address: try again later (see Retry-After)"), retry);
		return;
	}
	if (rt->auth == ROUTE_SIGNED && authenticate(rq) != -1)
		return;
	if (rt->handler(rq) == MHD_NO || !rq->answered)
		http_error(rq, 500, "internal", "out of memory");
}

static void *
worker_main(void *arg)
{
	struct pool *p = arg;
	struct serve *s = p->s;
	struct queue *q = p->q;
	struct http_req rq;
	struct job *j;
	char *reply;
	size_t len;

	for (;;) {
		pthread_mutex_lock(&s->mu);
		while (q->head == NULL && !s->stopping)
			pthread_cond_wait(&q->cv, &s->mu);
		if ((j = q->head) == NULL) {
			pthread_mutex_unlock(&s->mu);
			return NULL;
		}
		if ((q->head = j->next) == NULL)
			q->tail = NULL;
		pthread_mutex_unlock(&s->mu);
		memset(&rq, 0, sizeof(rq));
		answer(s, &j->f, &rq);
		if ((reply = msg_reply_encode(&rq.reply, &len)) != NULL) {
			(void)link_send(j->l, j->f.type | MSG_REPLY, j->f.id, reply, len);
			explicit_bzero(reply, len);
			free(reply);
		}
		http_req_free(&rq);
		frame_free(&j->f);
		link_unref(j->l);
		free(j);
	}
}

/* ---- the parent ---- */

static void *
ctl_main(void *arg)
{
	struct serve *s = arg;
	struct el_why w = {{0}};
	struct frame f;

	for (;;) {
		if (frame_recv(s->ctl, &f, &w) != EL_OK)
			break;
		if (!frame_accepts(FR_CHILD, f.type, 0))
			fatalx("control: a message of type %#x from the parent", f.type);
		if (f.type == CTL_LINK && f.fd >= 0) {
			install_link(s, f.fd);
			f.fd = -1;
		} else if (f.type == CTL_RELOAD) {
			struct diags d;
			size_t i;

			diags_init(&d);
			if (engine_reload_policy(s->e, &d) == EL_OK)
				log_info("policies reloaded from %s", s->cfg->policies);
			else {
				for (i = 0; i < d.n; i++)
					log_err("policy reload: %s: %s: %s", d.v[i].file ? d.v[i].file : "",
					    d.v[i].path ? d.v[i].path : "", d.v[i].msg);
				log_err("policy reload failed: keeping the previous policies");
			}
			diags_free(&d);
		}
		frame_free(&f);
	}
	/* The parent is gone: so are we, cleanly. */
	kill(getpid(), SIGTERM);
	return NULL;
}

static void
serve_stop(struct serve *s)
{
	size_t i;

	pthread_mutex_lock(&s->mu);
	s->stopping = 1;
	if (s->link != NULL)
		link_close(s->link);
	pthread_cond_broadcast(&s->q[0].cv);
	pthread_cond_broadcast(&s->q[1].cv);
	pthread_mutex_unlock(&s->mu);
	for (i = 0; i < s->nworkers; i++)
		pthread_join(s->workers[i], NULL);
	free(s->workers);
}

/* Two a core: enough to keep the cores busy while one waits for a reader connection. */
static size_t
quick_workers(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 2 : n > 16 ? 32 : (size_t)n * 2;
}

int
engine_main(const char *config_path, const char *level, int ctl_fd)
{
	struct config cfg;
	struct serve s;
	struct el_why w = {{0}};
	sigset_t set;
	pthread_t ctl_thread;
	size_t nquick;
	int i, sig, rc = 1;

	memset(&s, 0, sizeof(s));
	if (proc_setup(config_path, level, &cfg, &set, false) != EL_OK)
		return 1;
	s.cfg = &cfg;
	s.ctl = ctl_fd;
	s.nroutes = http_route_count();
	pthread_mutex_init(&s.mu, NULL);
	pthread_mutex_init(&s.ctl_wmu, NULL);
	for (i = 0; i < 2; i++) {
		pthread_cond_init(&s.q[i].cv, NULL);
		s.pools[i].s = &s;
		s.pools[i].q = &s.q[i];
	}
	if (engine_open(&cfg, &s.e, &w) != EL_OK) {
		log_err("cannot start: %s", w.msg);
		goto out;
	}
	/* Overdue revocations are resumed before the front is linked. */
	if (engine_start(s.e) != EL_OK) {
		log_err("cannot start the engine threads");
		goto out;
	}
	nquick = quick_workers();
	if ((s.workers = calloc((size_t)cfg.http_workers + nquick, sizeof(*s.workers))) == NULL)
		goto out;
	for (; s.nworkers < (size_t)cfg.http_workers + nquick; s.nworkers++)
		if (pthread_create(&s.workers[s.nworkers], NULL, worker_main,
		    &s.pools[s.nworkers < nquick ? ROUTE_QUICK : ROUTE_MAY_WAIT]) != 0) {
			log_err("cannot start the engine's workers");
			goto out;
		}
	if (pthread_create(&ctl_thread, NULL, ctl_main, &s) != 0)
		goto out;
	pthread_detach(ctl_thread);
	ctl_send(&s, CTL_READY);
	for (;;) {
		if (sigwait(&set, &sig) != 0 || sig == SIGHUP)
			continue;
		log_info("engine: signal %d: stopping", sig);
		break;
	}
	rc = 0;
out:
	serve_stop(&s);
	engine_close(s.e);
	config_free(&cfg);
	return rc;
}
