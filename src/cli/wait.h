/*
 * wait.h — the --wait of `request`, `extend` and `approve`: follows a request until the
 * broker has decided it and, once approved, until its credentials are minted
 * (`activating` -> active or failed), with a spinner on a terminal, each new approval or
 * denial on stderr, and Ctrl-C (or SIGTERM) ending the wait while the request goes on.
 */
#ifndef ELEVATE_CLI_WAIT_H
#define ELEVATE_CLI_WAIT_H

#include <stdint.h>
#include <jansson.h>

struct api;

#define WAIT_LAPSE_GRACE 10       /* s after pending_until, to see the broker say "lapsed" */
#define WAIT_ACTIVATING_MAX 900   /* s a wait follows `activating` unless --timeout says */
#define WAIT_SAY_ACTIVATING_MS 2000   /* `activating` this long: stderr says so */

/*
 * The whole --wait of a command, for *reqp (a request whose id the caller has checked):
 * polls GET /v1/requests/{id} while its state is "pending" or "activating" — every 2 s
 * while pending; while activating (minting takes a moment) after a quarter of a second,
 * backing off to 2 s — with each new approval or denial on stderr (with say_missing also
 * what the quorum still needs) and, without a terminal, one line once activating lasts
 * WAIT_SAY_ACTIVATING_MS. Gives up after timeout seconds when timeout > 0; else
 * WAIT_LAPSE_GRACE s after pending_until while pending, and WAIT_ACTIVATING_MAX s after
 * it was first seen activating. Each newer answer replaces *reqp (the caller still owns
 * it). Then prints and returns wait_outcome(), or on timeout or Ctrl-C says on stderr
 * where the request is and how to follow it (can_cancel: and how to withdraw it) and
 * returns CLI_TIMEOUT or CLI_INTERRUPTED (with --json the request's JSON goes to stdout
 * first, so scripts still learn the id).
 */
int wait_follow(struct api *a, json_t **reqp, int64_t timeout, int say_missing,
    int can_cancel);

/*
 * `creds` just after an approval: while *reqp is `activating`, looks again (after 50 ms,
 * doubling to 1 s) until it is not, saying on stderr once after WAIT_SAY_ACTIVATING_MS
 * what it waits for. Returns CLI_OK once it is no longer activating (in whatever state:
 * the caller judges; *reqp is the newest answer), CLI_TIMEOUT after timeout s (said on
 * stderr), or the API's error.
 */
#define WAIT_MINTED_MAX 60        /* s `creds` waits for an activating grant */
int wait_minted(struct api *a, json_t **reqp, int64_t timeout);

/* True when req is approved and waits for its scheduled start. */
int wait_scheduled(const json_t *req);
/* True while the broker has not finished with req: pending or activating (unless
 * scheduled). */
int wait_undecided(const json_t *req);

/*
 * The exit code for a finished request, after printing what became of it (its JSON with
 * --json): CLI_OK when active, or for an extension when applied (`ended` with the
 * grant's new window end); CLI_ERR when approved but its window is already over;
 * CLI_REFUSED when denied, cancelled, lapsed or failed (AWS refused the role).
 */
int wait_outcome(const json_t *req);

#endif
