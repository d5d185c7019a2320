/*
 * wait.h — the --wait of `request` and `extend`: follows a pending request until the
 * broker decides it, with a spinner on a terminal, each new approval or denial on
 * stderr, and Ctrl-C (or SIGTERM) ending the wait while the request stays pending.
 */
#ifndef ELEVATE_CLI_WAIT_H
#define ELEVATE_CLI_WAIT_H

#include <stdint.h>
#include <jansson.h>

struct api;

#define WAIT_LAPSE_GRACE 10       /* s after pending_until, to see the broker say "lapsed" */

/*
 * Polls GET /v1/requests/{id} for *reqp (a pending request whose id the caller has
 * checked) until its state is no longer "pending". Each newer answer replaces *reqp
 * (the older one is json_decref()ed; the caller still owns *reqp). Gives up after
 * timeout seconds when timeout > 0, else WAIT_LAPSE_GRACE s after the request's
 * pending_until. With say_missing, a change in what the quorum still misses is
 * reported too ("still needs ..."). Returns CLI_OK once decided, CLI_TIMEOUT or
 * CLI_INTERRUPTED with nothing printed (the caller says what became of the request),
 * or another exit code after printing why.
 */
int wait_decision(struct api *a, json_t **reqp, int64_t timeout, int say_missing);

#endif
