/*
 * fuzz_frame.c — libFuzzer harness for the privilege-separation messages (src/daemon/
 * frame.c, msg.c): what a compromised front can send the engine, and what the front
 * reads back. The input is a stream of frames; each one parsed goes through the type
 * table for every reader, and its payload through the call decoder (for the route its
 * type names) and the reply decoder. The same stream also goes through a socketpair, in
 * pieces, to the link's read-ahead (frame_in_next), which must take the same frames.
 * Besides "no crash, no leak, no UB": frame_parse must consume exactly its header and
 * length; a type the engine accepts must be a call of an existing route; a decoded call
 * must be a request for that route (its method and path find it) within every ceiling,
 * and must encode and decode again to the same request; a decoded reply likewise.
 * Build: see README.md.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame.h"   /* src/daemon/ */
#include "msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct config cfg;
static int cfg_loaded;

static int
same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void
check_call(const struct frame *f)
{
	const struct route *rt = http_route_at(f->type - MSG_CALL), *found;
	struct http_req rq, again;
	char *enc, *caps[HTTP_MAX_CAPTURES] = {NULL, NULL};
	size_t len;
	int known, i;

	if (rt == NULL)
		abort();
	memset(&rq, 0, sizeof(rq));
	if (msg_call_decode(f->payload ? f->payload : "", f->len, rt, &cfg, &rq, NULL) != EL_OK) {
		http_req_free(&rq);
		return;
	}
	found = http_route_find(rq.method, rq.path, caps, &known);
	for (i = 0; i < HTTP_MAX_CAPTURES; i++)
		free(caps[i]);
	if (found != rt || rq.route != rt || rq.body.len > (size_t)cfg.max_body ||
	    strlen(rq.uri) > HTTP_MAX_URI)
		abort();
	if ((enc = msg_call_encode(&rq, &len)) == NULL)
		abort();
	memset(&again, 0, sizeof(again));
	if (msg_call_decode(enc, len, rt, &cfg, &again, NULL) != EL_OK ||
	    strcmp(again.method, rq.method) != 0 || strcmp(again.uri, rq.uri) != 0 ||
	    strcmp(again.peer, rq.peer) != 0 || again.body.len != rq.body.len ||
	    (rq.body.len && memcmp(again.body.p, rq.body.p, rq.body.len) != 0) ||
	    !same(again.sig_user, rq.sig_user) || !same(again.sig_date, rq.sig_date) ||
	    !same(again.sig_nonce, rq.sig_nonce) ||
	    !same(again.sig_signature, rq.sig_signature))
		abort();
	free(enc);
	http_req_free(&again);
	http_req_free(&rq);
}

static void
check_reply(const struct frame *f)
{
	struct http_req rq, again;
	char *enc;
	size_t len;

	memset(&rq, 0, sizeof(rq));
	if (msg_reply_decode(f->payload ? f->payload : "", f->len, &rq) != EL_OK) {
		http_req_free(&rq);
		return;
	}
	if (!rq.answered || rq.reply.status < 100 || rq.reply.status > 599 ||
	    rq.reply.body == NULL || strlen(rq.reply.body) > rq.reply.len)
		abort();
	if ((enc = msg_reply_encode(&rq.reply, &len)) == NULL)
		abort();
	memset(&again, 0, sizeof(again));
	if (msg_reply_decode(enc, len, &again) != EL_OK ||
	    again.reply.status != rq.reply.status || again.reply.len != rq.reply.len ||
	    memcmp(again.reply.body, rq.reply.body, rq.reply.len) != 0 ||
	    !same(again.reply.type, rq.reply.type) ||
	    again.reply.retry_after != rq.reply.retry_after)
		abort();
	free(enc);
	http_req_free(&again);
	http_req_free(&rq);
}

/*
 * The stream written to a socketpair in pieces (their sizes drawn from the data, so a
 * header or payload is cut anywhere) and read back with frame_in_next(): the frames it
 * takes must be the n frames of frame_parse, then an end (a clean one exactly when the
 * stream ends between frames). The socket's buffer holds the whole stream: up to 64 KiB.
 */
static void
check_read_ahead(const uint8_t *data, size_t size, size_t nframes, size_t parsed)
{
	struct frame_in in;
	struct frame f, g;
	size_t off = 0, piece, i, used;
	int sv[2], buf = 1 << 20;
	enum el_err r;

	if (size > 65536 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	while (off < size) {
		piece = 1 + data[off] % 64;
		if (piece > size - off)
			piece = size - off;
		if (write(sv[0], data + off, piece) != (ssize_t)piece)
			abort();
		off += piece;
	}
	close(sv[0]);
	if (frame_in_init(&in) != EL_OK)
		abort();
	for (i = 0, off = 0; i < nframes; i++) {
		if (frame_in_next(sv[1], &in, &f, NULL) != EL_OK ||
		    frame_parse(data + off, size - off, &g, &used) != EL_OK ||
		    f.type != g.type || f.id != g.id || f.len != g.len || f.fd != -1 ||
		    (f.len > 0 && memcmp(f.payload, g.payload, f.len) != 0))
			abort();
		off += used;
		frame_free(&f);
		frame_free(&g);
	}
	r = frame_in_next(sv[1], &in, &f, NULL);
	if (parsed == size ? r != EL_ENOENT : r == EL_OK || r == EL_ENOENT)
		abort();
	frame_free(&f);
	frame_in_free(&in);
	close(sv[1]);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0, used, nroutes = http_route_count(), nframes = 0;
	struct frame f;

	if (!cfg_loaded) {
		struct diags d;

		diags_init(&d);
		if (config_load(NULL, &cfg, &d) != EL_OK)
			abort();
		diags_free(&d);
		cfg_loaded = 1;
	}
	while (off < size) {
		enum el_err r = frame_parse(data + off, size - off, &f, &used);

		if (r != EL_OK) {
			if (r != EL_EINVAL && r != EL_ETOOBIG)
				abort();
			break;
		}
		if (used != FRAME_HEADER + f.len || f.len > FRAME_MAX)
			abort();
		if (frame_accepts(FR_ENGINE, f.type, nroutes)) {
			if (frame_accepts(FR_FRONT, f.type, nroutes) || f.type < MSG_CALL)
				abort();
			check_call(&f);
		}
		if (frame_accepts(FR_FRONT, f.type, nroutes))
			check_reply(&f);
		/* Control messages and calls are never both. */
		if ((frame_accepts(FR_PARENT, f.type, nroutes) ||
		    frame_accepts(FR_CHILD, f.type, nroutes)) &&
		    (frame_accepts(FR_ENGINE, f.type, nroutes) ||
		    frame_accepts(FR_FRONT, f.type, nroutes)))
			abort();
		frame_free(&f);
		off += used;
		nframes++;
	}
	check_read_ahead(data, size, nframes, off);
	return 0;
}
