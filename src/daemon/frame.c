/*
 * frame.c — owns the framing of the messages between elevated's processes (frame.h):
 * header, ceiling, descriptor passing and the table of which side accepts which type.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "frame.h"

bool
frame_accepts(enum frame_reader reader, uint32_t type, size_t nroutes)
{
	uint32_t call = type & ~(uint32_t)MSG_REPLY;
	bool is_call = call >= MSG_CALL && call - MSG_CALL < nroutes;

	switch (reader) {
	case FR_PARENT:
		return type == CTL_READY || type == CTL_BADPEER;
	case FR_CHILD:
		return type == CTL_LINK || type == CTL_RELOAD;
	case FR_ENGINE:
		return is_call && !(type & MSG_REPLY);
	case FR_FRONT:
		return is_call && (type & MSG_REPLY);
	}
	return false;
}

enum el_err
frame_header(const unsigned char h[FRAME_HEADER], uint32_t *type, uint32_t *id,
    uint32_t *len)
{
	memcpy(type, h, 4);
	memcpy(id, h + 4, 4);
	memcpy(len, h + 8, 4);
	return *len > FRAME_MAX ? EL_ETOOBIG : EL_OK;
}

static void
frame_init(struct frame *f)
{
	memset(f, 0, sizeof(*f));
	f->fd = -1;
}

void
frame_free(struct frame *f)
{
	if (f == NULL)
		return;
	if (f->payload != NULL) {
		explicit_bzero(f->payload, f->len);
		free(f->payload);
	}
	if (f->fd >= 0)
		close(f->fd);
	frame_init(f);
}

static enum el_err
take_payload(struct frame *f, const void *p, size_t len)
{
	f->len = len;
	if (len == 0)
		return EL_OK;
	if ((f->payload = malloc(len + 1)) == NULL)
		return EL_ENOMEM;
	memcpy(f->payload, p, len);
	f->payload[len] = '\0';
	return EL_OK;
}

enum el_err
frame_parse(const void *buf, size_t n, struct frame *f, size_t *used)
{
	const unsigned char *b = buf;
	uint32_t len;
	enum el_err r;

	frame_init(f);
	if (n < FRAME_HEADER)
		return EL_EINVAL;
	if ((r = frame_header(b, &f->type, &f->id, &len)) != EL_OK)
		return r;
	if (n - FRAME_HEADER < len)
		return EL_EINVAL;
	if ((r = take_payload(f, b + FRAME_HEADER, len)) != EL_OK)
		return r;
	*used = FRAME_HEADER + (size_t)len;
	return EL_OK;
}

void
frame_put_header(unsigned char h[FRAME_HEADER], uint32_t type, uint32_t id, size_t len)
{
	uint32_t l = (uint32_t)len;

	memcpy(h, &type, 4);
	memcpy(h + 4, &id, 4);
	memcpy(h + 8, &l, 4);
}

enum el_err
frame_send(int sock, uint32_t type, uint32_t id, const void *payload, size_t len,
    int pass_fd)
{
	unsigned char h[FRAME_HEADER];
	union {
		struct cmsghdr c;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;
	struct iovec iov[2];
	struct msghdr m;
	size_t off = 0, total = FRAME_HEADER + len;
	ssize_t n;

	if (len > FRAME_MAX)
		return EL_ETOOBIG;
	frame_put_header(h, type, id, len);
	while (off < total) {
		memset(&m, 0, sizeof(m));
		if (off < FRAME_HEADER) {
			iov[0].iov_base = h + off;
			iov[0].iov_len = FRAME_HEADER - off;
			iov[1].iov_base = (void *)(uintptr_t)payload;
			iov[1].iov_len = len;
			m.msg_iovlen = len > 0 ? 2 : 1;
		} else {
			iov[0].iov_base = (char *)(uintptr_t)payload + (off - FRAME_HEADER);
			iov[0].iov_len = total - off;
			m.msg_iovlen = 1;
		}
		m.msg_iov = iov;
		if (off == 0 && pass_fd >= 0) {
			memset(&cm, 0, sizeof(cm));
			m.msg_control = cm.buf;
			m.msg_controllen = sizeof(cm.buf);
			cm.c.cmsg_level = SOL_SOCKET;
			cm.c.cmsg_type = SCM_RIGHTS;
			cm.c.cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(&cm.c), &pass_fd, sizeof(int));
		}
		n = sendmsg(sock, &m, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return EL_EIO;
		off += (size_t)n;
	}
	return EL_OK;
}

/* One read of at most len bytes (blocking until there is one): its count, 0 at the end
 * of the stream, -1 on an error. A descriptor passed along goes to *fd when fd is not
 * NULL and *fd is -1; any other is closed (one descriptor a frame). */
static ssize_t
recv_some(int sock, void *buf, size_t len, int *fd)
{
	union {
		struct cmsghdr c;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;
	struct iovec iov;
	struct msghdr m;
	struct cmsghdr *c;
	ssize_t n;

	do {
		memset(&m, 0, sizeof(m));
		iov.iov_base = buf;
		iov.iov_len = len;
		m.msg_iov = &iov;
		m.msg_iovlen = 1;
		if (fd != NULL) {
			m.msg_control = cm.buf;
			m.msg_controllen = sizeof(cm.buf);
		}
		n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	for (c = n >= 0 && fd != NULL ? CMSG_FIRSTHDR(&m) : NULL; c != NULL;
	    c = CMSG_NXTHDR(&m, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len >= CMSG_LEN(sizeof(int))) {
			int got;
			memcpy(&got, CMSG_DATA(c), sizeof(int));
			if (*fd >= 0)
				close(got);
			else
				*fd = got;
		}
	return n;
}

/* Reads exactly len bytes; the reads also take a passed descriptor (fd not NULL). */
static enum el_err
read_all(int sock, void *buf, size_t len, int *fd, bool *got_any)
{
	size_t off = 0;
	ssize_t n;

	while (off < len) {
		if ((n = recv_some(sock, (char *)buf + off, len - off, fd)) < 0)
			return EL_EIO;
		if (n == 0)
			return *got_any ? EL_EIO : EL_ENOENT;
		*got_any = true;
		off += (size_t)n;
	}
	return EL_OK;
}

enum el_err
frame_recv(int sock, struct frame *f, struct el_why *w)
{
	unsigned char h[FRAME_HEADER];
	uint32_t len;
	bool got_any = false;
	enum el_err r;

	frame_init(f);
	if ((r = read_all(sock, h, sizeof(h), &f->fd, &got_any)) != EL_OK)
		return r == EL_ENOENT ? r : el_fail(w, r, "the peer went away inside a frame");
	if (frame_header(h, &f->type, &f->id, &len) != EL_OK) {
		frame_free(f);
		return el_fail(w, EL_ETOOBIG, "a frame of %u bytes (the ceiling is %u)", len,
		    FRAME_MAX);
	}
	f->len = len;
	if (len == 0)
		return EL_OK;
	if ((f->payload = malloc((size_t)len + 1)) == NULL) {
		frame_free(f);
		return el_fail(w, EL_ENOMEM, "out of memory");
	}
	if ((r = read_all(sock, f->payload, len, NULL, &got_any)) != EL_OK) {
		frame_free(f);
		return el_fail(w, EL_EIO, "the peer went away inside a frame");
	}
	f->payload[len] = '\0';
	return EL_OK;
}

enum el_err
frame_in_init(struct frame_in *in)
{
	memset(in, 0, sizeof(*in));
	in->fd = -1;
	return (in->buf = malloc(FRAME_IN_BUF)) == NULL ? EL_ENOMEM : EL_OK;
}

void
frame_in_free(struct frame_in *in)
{
	if (in->buf != NULL) {
		explicit_bzero(in->buf, FRAME_IN_BUF);
		free(in->buf);
	}
	if (in->fd >= 0)
		close(in->fd);
	memset(in, 0, sizeof(*in));
	in->fd = -1;
}

bool
frame_in_ready(const struct frame_in *in)
{
	uint32_t type, id, len;

	return in->len >= FRAME_HEADER &&
	    (frame_header(in->buf + in->off, &type, &id, &len) != EL_OK ||
	    in->len - FRAME_HEADER >= len);
}

/* A frame larger than the input's buffer: its payload is read straight into place. */
static enum el_err
take_large(int sock, struct frame_in *in, struct frame *f, uint32_t len, struct el_why *w)
{
	size_t have = in->len - FRAME_HEADER;
	bool got_any = true;

	if ((f->payload = malloc((size_t)len + 1)) == NULL)
		return el_fail(w, EL_ENOMEM, "out of memory");
	f->len = len;
	memcpy(f->payload, in->buf + in->off + FRAME_HEADER, have);
	explicit_bzero(in->buf, in->off + in->len);
	in->off = in->len = 0;
	if (read_all(sock, f->payload + have, len - have, &in->fd, &got_any) != EL_OK)
		return el_fail(w, EL_EIO, "the peer went away inside a frame");
	f->payload[len] = '\0';
	return EL_OK;
}

enum el_err
frame_in_next(int sock, struct frame_in *in, struct frame *f, struct el_why *w)
{
	uint32_t type, id, len;
	size_t used;
	ssize_t n;
	enum el_err r;

	frame_init(f);
	for (;;) {
		if (in->len >= FRAME_HEADER) {
			if (frame_header(in->buf + in->off, &type, &id, &len) != EL_OK)
				return el_fail(w, EL_ETOOBIG, "a frame of %u bytes (the ceiling is "
				    "%u)", len, FRAME_MAX);
			if (in->len - FRAME_HEADER >= len) {
				if ((r = frame_parse(in->buf + in->off, in->len, f, &used)) != EL_OK)
					return el_fail(w, r, "out of memory");
				explicit_bzero(in->buf + in->off, used);
				in->off += used;
				in->len -= used;
				break;
			}
			if ((size_t)len > FRAME_IN_BUF - FRAME_HEADER) {
				f->type = type;
				f->id = id;
				if ((r = take_large(sock, in, f, len, w)) != EL_OK) {
					frame_free(f);
					return r;
				}
				break;
			}
		}
		/* a part of a frame: to the front of the buffer, and read after it */
		if (in->off > 0) {
			memmove(in->buf, in->buf + in->off, in->len);
			explicit_bzero(in->buf + in->len, in->off);
			in->off = 0;
		}
		if ((n = recv_some(sock, in->buf + in->len, FRAME_IN_BUF - in->len, &in->fd)) < 0)
			return el_fail(w, EL_EIO, "the peer went away inside a frame");
		if (n == 0)
			return in->len > 0 ? el_fail(w, EL_EIO, "the peer went away inside a "
			    "frame") : EL_ENOENT;
		in->len += (size_t)n;
	}
	f->fd = in->fd;
	in->fd = -1;
	if (in->len == 0)
		in->off = 0;
	return EL_OK;
}
