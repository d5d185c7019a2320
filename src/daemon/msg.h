/*
 * msg.h — the payloads of the front <-> engine messages (frame.h). A call carries the
 * request as the client sent it: method, URI, the signature headers and the body, bytes
 * for bytes, so the engine checks the signature itself and the front can never claim a
 * user; plus the client's address, which only the front knows. A reply carries the
 * answer. A payload is a fixed list of fields, then the body as it is: every byte after
 * the last field up to the frame's length. A field is a u32 length in host byte order (as
 * the frame's header) and that many bytes of UTF-8 text without a NUL; the length
 * MSG_ABSENT is a field not given, with no bytes. Numbers are decimal text.
 *
 * call:  method, uri, peer, user?, date?, nonce?, signature?; body
 * reply: status, type?, retry_after?; body
 */
#ifndef ELEVATED_MSG_H
#define ELEVATED_MSG_H

#include "http.h"

#define MSG_ABSENT 0xffffffffu

/* The call payload for rq (route, method, URI, peer, signature headers, body). */
char *msg_call_encode(const struct http_req *rq, size_t *len);
/* Fills rq (zeroed by the caller) from a call payload for route rt: EL_EINVAL when it is
 * malformed, over a ceiling, or its method and path are not a request for rt. */
enum el_err msg_call_decode(const char *payload, size_t len, const struct route *rt,
    const struct config *cfg, struct http_req *rq, struct el_why *w);
/* The reply payload for rq->reply. */
char *msg_reply_encode(const struct http_reply *r, size_t *len);
/* Sets rq's answer from a reply payload: EL_EINVAL when it is malformed. */
enum el_err msg_reply_decode(const char *payload, size_t len, struct http_req *rq);

#endif
