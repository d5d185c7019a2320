/*
 * frame.h — the messages between elevated's processes (docs/security.md): a frame is a
 * header {u32 type, u32 id, u32 len} in host byte order, then len bytes of payload (JSON
 * text), on a SOCK_STREAM socketpair. Every receiver knows which types it accepts from
 * which peer; anything else, or a length over FRAME_MAX, ends the link.
 *
 * Types:
 *   parent <-> child (the control socket):
 *     CTL_READY    child -> parent   started: the engine's store is open and its overdue
 *                                    work resumed; the front listens
 *     CTL_LINK     parent -> child   carries (SCM_RIGHTS) the child's end of a new
 *                                    front <-> engine socketpair; the old link ends
 *     CTL_RELOAD   parent -> engine  SIGHUP: load the policies again
 *     CTL_BADPEER  engine -> parent  the front broke the protocol: restart it
 *   front <-> engine (the link):
 *     MSG_CALL+i   front -> engine   one request for route i of the route table (each
 *                                    route calls one engine.h function), see serve.c
 *     the same type | MSG_REPLY, with the call's id, engine -> front: the answer
 */
#ifndef ELEVATED_FRAME_H
#define ELEVATED_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "elevate/el.h"

#define FRAME_HEADER 12
#define FRAME_MAX (4u << 20)   /* a payload's ceiling: the largest answer is an audit page */

enum {
	CTL_READY = 1,
	CTL_LINK = 2,
	CTL_RELOAD = 3,
	CTL_BADPEER = 4,
	MSG_CALL = 0x100,          /* + the route's index; below MSG_CALL + MSG_CALLS */
	MSG_CALLS = 0x100,
	MSG_REPLY = 0x10000,
};

/* Who is reading: the table of what each may receive is frame_accepts(). */
enum frame_reader {
	FR_PARENT,                 /* from a child's control socket */
	FR_CHILD,                  /* from the parent */
	FR_ENGINE,                 /* from the front, on the link */
	FR_FRONT,                  /* from the engine, on the link */
};

struct frame {
	uint32_t type, id;
	char *payload;             /* len bytes and a NUL; NULL when len is 0 */
	size_t len;
	int fd;                    /* passed with it (CTL_LINK), else -1 */
};

/* May `reader` receive a frame of type `type`? nroutes bounds the calls. */
bool frame_accepts(enum frame_reader reader, uint32_t type, size_t nroutes);

/* Decodes a header: EL_ETOOBIG when its length is over FRAME_MAX. */
enum el_err frame_header(const unsigned char h[FRAME_HEADER], uint32_t *type, uint32_t *id,
    uint32_t *len);
/* One frame from buf[0..n): EL_OK with *used set (f->payload is a new copy), EL_EINVAL
 * when buf holds only part of one, EL_ETOOBIG as frame_header. For tests and fuzzing;
 * frame_recv() reads the same format from a socket. */
enum el_err frame_parse(const void *buf, size_t n, struct frame *f, size_t *used);

/* Writes a frame's header for a payload of len bytes (at most FRAME_MAX) into h. */
void frame_put_header(unsigned char h[FRAME_HEADER], uint32_t type, uint32_t id, size_t len);
/* Sends one frame, all of it (pass_fd >= 0 goes along by SCM_RIGHTS). Callers sharing a
 * socket serialise their sends. EL_EIO when the peer is gone. */
enum el_err frame_send(int sock, uint32_t type, uint32_t id, const void *payload, size_t len,
    int pass_fd);
/* Blocks for one frame. EL_ENOENT at a clean end of stream between frames; EL_EIO on an
 * error or an end inside a frame; EL_ETOOBIG for a length over FRAME_MAX. Reads no byte
 * past the frame (a control socket: the descriptor a frame carries stays with it). */
enum el_err frame_recv(int sock, struct frame *f, struct el_why *w);
void frame_free(struct frame *f);

/*
 * A socket's input read ahead (the link): one read takes whatever the peer has sent, up
 * to FRAME_IN_BUF bytes, and frames are taken from it until it holds no whole one, so a
 * burst of frames costs one system call rather than two a frame. A descriptor that comes
 * along goes with the next frame taken (f->fd), which its reader then refuses.
 */
#define FRAME_IN_BUF (64 * 1024)

struct frame_in {
	unsigned char *buf;        /* FRAME_IN_BUF bytes */
	size_t off, len;           /* the bytes not taken yet: buf[off .. off + len) */
	int fd;                    /* came with them, for the next frame; else -1 */
};

enum el_err frame_in_init(struct frame_in *in);
void frame_in_free(struct frame_in *in);
/* The next frame: from what an earlier read left when it holds a whole one, else after
 * blocking for more. Returns as frame_recv(); after anything but EL_OK the input is
 * spent (free it). */
enum el_err frame_in_next(int sock, struct frame_in *in, struct frame *f, struct el_why *w);
/* Does the input hold a whole frame already (frame_in_next() would not block)? */
bool frame_in_ready(const struct frame_in *in);

#endif
