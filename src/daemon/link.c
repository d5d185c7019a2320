/*
 * link.c — owns a link's life (link.h): its reference count, its senders' turns, and the
 * reader thread that hands frames to the owner until the peer goes.
 *
 * Both directions batch. The reader takes whatever the peer has sent in one read and
 * hands on every whole frame in it (frame_in_next()). One sender writes at a time; a
 * frame sent meanwhile is copied into the link's queue (up to LINK_QUEUE bytes) and the
 * sender goes on, and the writer sends the queue too, in one write, before it leaves. So
 * under load the two processes trade a few large writes rather than a system call and a
 * wake-up per frame, and no sender waits on the lock while another's write is in the
 * kernel.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "elevate/log.h"
#include "link.h"

/* Frames waiting for the writer, in bytes. A frame that does not fit waits for the
 * writer to finish and is then written by its own sender. */
#define LINK_QUEUE (256 * 1024)

struct link {
	int fd;
	pthread_mutex_t mu;        /* refs */
	int refs;
	pthread_mutex_t wmu;       /* the rest, but for the reader's input */
	pthread_cond_t wcv;        /* the writer has left */
	bool writing;              /* a sender is writing: the others queue */
	bool broken;               /* a write failed: the link is ending */
	unsigned char *q, *spare;  /* LINK_QUEUE bytes each: the queue, the writer's copy */
	size_t qlen;
	struct frame_in in;        /* the reader's */
	link_frame_fn on_frame;
	link_end_fn on_end;
	void *cls;
};

void
link_ref(struct link *l)
{
	pthread_mutex_lock(&l->mu);
	l->refs++;
	pthread_mutex_unlock(&l->mu);
}

static void
link_free(struct link *l)
{
	close(l->fd);
	frame_in_free(&l->in);
	free(l->q);
	free(l->spare);
	pthread_cond_destroy(&l->wcv);
	pthread_mutex_destroy(&l->wmu);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

void
link_unref(struct link *l)
{
	int last;

	if (l == NULL)
		return;
	pthread_mutex_lock(&l->mu);
	last = --l->refs == 0;
	pthread_mutex_unlock(&l->mu);
	if (last)
		link_free(l);
}

static enum el_err
write_all(int fd, const unsigned char *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return EL_EIO;
		p += n;
		len -= (size_t)n;
	}
	return EL_OK;
}

/* The writer (wmu held on entry and on return, not while writing): its own frame, then
 * what the others queued meanwhile, until the queue is empty. */
static enum el_err
write_turn(struct link *l, uint32_t type, uint32_t id, const void *payload, size_t len)
{
	unsigned char *batch;
	size_t n;
	enum el_err r;

	l->writing = true;
	pthread_mutex_unlock(&l->wmu);
	r = frame_send(l->fd, type, id, payload, len, -1);
	pthread_mutex_lock(&l->wmu);
	while (r == EL_OK && l->qlen > 0) {
		batch = l->q;
		n = l->qlen;
		l->q = l->spare;
		l->spare = batch;
		l->qlen = 0;
		pthread_mutex_unlock(&l->wmu);
		r = write_all(l->fd, batch, n);
		explicit_bzero(batch, n);
		pthread_mutex_lock(&l->wmu);
	}
	if (r != EL_OK) {
		l->broken = true;
		explicit_bzero(l->q, l->qlen);
		l->qlen = 0;
	}
	l->writing = false;
	pthread_cond_broadcast(&l->wcv);
	return r;
}

enum el_err
link_send(struct link *l, uint32_t type, uint32_t id, const void *payload, size_t len)
{
	enum el_err r = EL_OK;

	if (len > FRAME_MAX)
		return EL_ETOOBIG;
	pthread_mutex_lock(&l->wmu);
	for (;;) {
		if (l->broken) {
			r = EL_EIO;
			break;
		}
		if (!l->writing) {
			r = write_turn(l, type, id, payload, len);
			break;
		}
		if (LINK_QUEUE - l->qlen >= FRAME_HEADER + len) {
			frame_put_header(l->q + l->qlen, type, id, len);
			if (len > 0)
				memcpy(l->q + l->qlen + FRAME_HEADER, payload, len);
			l->qlen += FRAME_HEADER + len;
			break;
		}
		pthread_cond_wait(&l->wcv, &l->wmu);
	}
	pthread_mutex_unlock(&l->wmu);
	if (r != EL_OK)
		link_close(l);
	return r;
}

void
link_close(struct link *l)
{
	shutdown(l->fd, SHUT_RDWR);
}

static void *
reader(void *arg)
{
	struct link *l = arg;
	struct el_why w = {{0}};
	struct frame f;
	enum el_err r;

	for (;;) {
		if ((r = frame_in_next(l->fd, &l->in, &f, &w)) != EL_OK) {
			if (r != EL_ENOENT)
				log_warn("link: %s", w.msg);
			break;
		}
		if (!l->on_frame(l->cls, l, &f))
			break;
	}
	link_close(l);
	l->on_end(l->cls, l);
	link_unref(l);
	return NULL;
}

struct link *
link_start(int fd, link_frame_fn on_frame, link_end_fn on_end, void *cls)
{
	struct link *l = calloc(1, sizeof(*l));
	pthread_t t;

	if (l == NULL) {
		close(fd);
		return NULL;
	}
	l->fd = fd;
	l->refs = 2;   /* the reader's and the caller's */
	l->on_frame = on_frame;
	l->on_end = on_end;
	l->cls = cls;
	pthread_mutex_init(&l->mu, NULL);
	pthread_mutex_init(&l->wmu, NULL);
	pthread_cond_init(&l->wcv, NULL);
	if (frame_in_init(&l->in) != EL_OK || (l->q = malloc(LINK_QUEUE)) == NULL ||
	    (l->spare = malloc(LINK_QUEUE)) == NULL) {
		log_err("link: out of memory");
		link_free(l);
		return NULL;
	}
	if (pthread_create(&t, NULL, reader, l) != 0) {
		log_err("link: cannot start its reader");
		link_free(l);
		return NULL;
	}
	pthread_detach(t);
	return l;
}
