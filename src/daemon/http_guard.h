/*
 * http_guard.h — the request deadline of the listener's connections: a client has
 * limits.request_timeout to deliver a whole request (line, headers and body) after it
 * connects or after its previous answer, however often it sends a byte; and connections
 * still waiting for their request may hold only so many slots, the oldest going first.
 */
#ifndef ELEVATED_HTTP_GUARD_H
#define ELEVATED_HTTP_GUARD_H

#include <microhttpd.h>

#include "elevate/el.h"

struct http_guard;

/* Starts the sweeper thread. timeout_s: the request deadline; max_waiting: connections
 * that may wait for their request at once (a new one beyond it closes the oldest). */
enum el_err http_guard_new(int64_t timeout_s, size_t max_waiting, struct http_guard **out,
    struct el_why *w);
/* Stops the sweeper and frees the guard; call after MHD_stop_daemon(). */
void http_guard_free(struct http_guard *g);
/* MHD_OPTION_NOTIFY_CONNECTION callback; cls is the guard. */
void http_guard_notify(void *cls, struct MHD_Connection *c, void **socket_context,
    enum MHD_ConnectionNotificationCode toe);
/* The request on c has arrived whole: no deadline while it is handled and answered. */
void http_guard_request_read(struct MHD_Connection *c);
/* The answer on c is done: the next request must arrive within the deadline. */
void http_guard_rearm(struct MHD_Connection *c);

#endif
