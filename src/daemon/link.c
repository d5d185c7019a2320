/*
 * link.c — owns a link's life (link.h): its reference count, the lock its senders take
 * turns on, and the reader thread that hands frames to the owner until the peer goes.
 */
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "elevate/log.h"
#include "link.h"

struct link {
	int fd;
	pthread_mutex_t mu;        /* refs */
	int refs;
	pthread_mutex_t wmu;       /* one sender at a time */
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

void
link_unref(struct link *l)
{
	int last;

	if (l == NULL)
		return;
	pthread_mutex_lock(&l->mu);
	last = --l->refs == 0;
	pthread_mutex_unlock(&l->mu);
	if (!last)
		return;
	close(l->fd);
	pthread_mutex_destroy(&l->wmu);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

enum el_err
link_send(struct link *l, uint32_t type, uint32_t id, const void *payload, size_t len)
{
	enum el_err r;

	pthread_mutex_lock(&l->wmu);
	r = frame_send(l->fd, type, id, payload, len, -1);
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
		if ((r = frame_recv(l->fd, &f, &w)) != EL_OK) {
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
	if (pthread_create(&t, NULL, reader, l) != 0) {
		log_err("link: cannot start its reader");
		l->refs = 1;
		link_unref(l);
		return NULL;
	}
	pthread_detach(t);
	return l;
}
