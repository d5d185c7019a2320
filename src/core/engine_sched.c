/*
 * engine_sched.c — owns time in the engine: the reaper thread that sleeps until the
 * earliest deadline (a pending request's TTL, an active window's end, an ending grant's
 * next attempt, the end of an interval of counted refusals), then lapses, ends and
 * revokes and writes refusal summaries; start-up recovery; and /metrics.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "elevate/log.h"
#include "engine_int.h"

#define SWEEP_BATCH 1000

/* pending past pending_until -> lapsed, each read afresh in its own transaction. */
static void
lapse_due(struct engine *e, int64_t now)
{
	char **ids = NULL;
	size_t n = 0, i;

	if (store_request_due(e->store, RS_PENDING, "pending_until", now, SWEEP_BATCH, &ids, &n)
	    != EL_OK)
		return;
	for (i = 0; i < n; i++) {
		struct store_request r;
		const char *who[1];

		if (engine_tx_read(e, ids[i], &r) != EL_OK)
			continue;
		r.decided_at = now;
		who[0] = r.requester;
		if (r.pending_until > now ||
		    engine_transition(e, &r, EV_LAPSE, "system", NULL) != EL_OK ||
		    engine_notify(e, "lapsed", &r, who, 1, NULL) != EL_OK)
			engine_tx_rollback(e);
		else if (engine_tx_commit(e) == EL_OK)
			log_info("request %s lapsed: no decision in time", r.id);
		store_request_free(&r);
	}
	el_strv_free(ids, n);
}

/* active past window_end -> ending, all in one transaction. Returns how many. */
static size_t
end_windows(struct engine *e, int64_t now)
{
	char **ids = NULL;
	size_t n = 0, i, done = 0;

	if (store_request_due(e->store, RS_ACTIVE, "window_end", now, SWEEP_BATCH, &ids, &n)
	    != EL_OK || n == 0) {
		el_strv_free(ids, n);
		return 0;
	}
	if (engine_tx_begin(e) == EL_OK) {
		for (i = 0; i < n; i++) {
			struct store_request r;

			if (store_request_get(e->store, ids[i], &r) != EL_OK)
				continue;
			r.next_attempt_at = 0;
			r.attempts = 0;
			if (r.window_end <= now &&
			    engine_transition(e, &r, EV_WINDOW_END, "system", NULL) == EL_OK)
				done++;
			store_request_free(&r);
		}
		if (engine_tx_commit(e) != EL_OK)
			done = 0;
	}
	el_strv_free(ids, n);
	return done;
}

/* Every ending grant whose next attempt is due: one sweep, batched per role. */
static void
revoke_due(struct engine *e, int64_t now)
{
	char **ids = NULL;
	size_t n = 0;

	if (store_request_due(e->store, RS_ENDING, "next_attempt_at", now, SWEEP_BATCH, &ids, &n)
	    != EL_OK)
		return;
	if (n > 0)
		engine_end_grants(e, ids, n);
	el_strv_free(ids, n);
}

/* Pending requests whose quorum is met but that never became activating (a database from
 * before the activating state, or a policy change that lowered the quorum). */
static void
claim_stranded(struct engine *e)
{
	struct store_filter f;
	struct store_request *v = NULL;
	size_t n = 0, i;

	memset(&f, 0, sizeof(f));
	f.by_state = true;
	f.state = RS_PENDING;
	f.limit = 10000;
	if (store_request_list(e->store, &f, &v, &n) != EL_OK)
		return;
	for (i = 0; i < n; i++) {
		json_t *j = engine_request_json(e, &v[i]);
		if (j != NULL && json_is_true(json_object_get(json_object_get(j, "quorum"), "met"))) {
			struct policy *p = engine_policy(e);
			struct store_request r;
			bool activate;

			if (engine_tx_begin(e) == EL_OK) {
				if (store_request_get(e->store, v[i].id, &r) == EL_OK) {
					if (r.state == RS_PENDING &&
					    engine_quorum_reached(e, p, &r, "system", &activate) == EL_OK)
						engine_tx_commit(e);
					else
						engine_tx_rollback(e);
					store_request_free(&r);
				} else
					engine_tx_rollback(e);
			}
			policy_release(p);
		}
		json_decref(j);
		store_request_free(&v[i]);
	}
	free(v);
}

/* Activations whose lease ran out (a crash, or AWS trouble to retry): each on a worker
 * thread, so the reaper never waits for AWS to mint. One still in flight here renews its
 * lease instead. */
static void
activate_due(struct engine *e, int64_t now)
{
	char **ids = NULL;
	size_t n = 0, i;

	if (store_request_due(e->store, RS_ACTIVATING, "next_attempt_at", now, SWEEP_BATCH, &ids,
	    &n) != EL_OK)
		return;
	for (i = 0; i < n; i++)
		if (!engine_activate_async(e, ids[i]))
			engine_retry_at(e, ids[i], RS_ACTIVATING, now + ACTIVATION_LEASE);
	el_strv_free(ids, n);
}

/* Tells requesters their window ends soon (mail.ending_soon before), once per grant. */
static void
warn_due(struct engine *e, int64_t now)
{
	char **ids = NULL;
	size_t n = 0, i;

	if (e->cfg->ending_soon <= 0 || store_request_to_warn(e->store, now, e->cfg->ending_soon,
	    SWEEP_BATCH, &ids, &n) != EL_OK)
		return;
	for (i = 0; i < n; i++) {
		struct store_request r;
		const char *who[1];
		char left[32];
		json_t *extra;

		if (engine_tx_read(e, ids[i], &r) != EL_OK)
			continue;
		who[0] = r.requester;
		el_format_duration(r.window_end - now, left, sizeof(left));
		extra = json_pack("{s:s}", "remaining", left);
		if (store_request_warned(e->store, r.id, now) != EL_OK ||
		    engine_notify(e, "ending_soon", &r, who, 1, extra) != EL_OK)
			engine_tx_rollback(e);
		else
			engine_tx_commit(e);
		json_decref(extra);
		store_request_free(&r);
	}
	el_strv_free(ids, n);
}

static void
sweep(struct engine *e)
{
	int64_t now = el_now();

	end_windows(e, now);
	revoke_due(e, now);
	engine_sync_revocations(e, now);
	lapse_due(e, now);
	activate_due(e, now);
	warn_due(e, now);
}

/* Start-up: nothing is in flight in a new process, so every activation is due now. */
static void
expire_leases(struct engine *e)
{
	char **ids = NULL;
	size_t n = 0, i;

	if (store_request_due(e->store, RS_ACTIVATING, "next_attempt_at", INT64_MAX - 1,
	    SWEEP_BATCH, &ids, &n) != EL_OK || engine_tx_begin(e) != EL_OK) {
		el_strv_free(ids, n);
		return;
	}
	for (i = 0; i < n; i++) {
		struct store_request r;

		if (store_request_get(e->store, ids[i], &r) != EL_OK)
			continue;
		if (r.state == RS_ACTIVATING && r.attempts == 0) {
			r.next_attempt_at = 0;
			engine_request_save(e, &r);
		}
		store_request_free(&r);
	}
	engine_tx_commit(e);
	el_strv_free(ids, n);
}

enum el_err
engine_resume(struct engine *e)
{
	claim_stranded(e);
	expire_leases(e);
	engine_probe_resume(e);   /* before sweep: what it ends starts its own probe */
	sweep(e);
	return EL_OK;
}

void *
engine_reaper_main(void *arg)
{
	struct engine *e = arg;

	for (;;) {
		struct timespec ts;
		int64_t next, summary;

		sweep(e);
		summary = engine_refusals_flush(e, el_now(), false);
		if (store_next_deadline(e->store, e->cfg->ending_soon, &next) != EL_OK)
			next = el_now() + 1;   /* the store failed: look again soon, never never */
		if (e->sync_next_at > 0 && e->sync_next_at < next)
			next = e->sync_next_at;
		if (summary < next)
			next = summary;
		pthread_mutex_lock(&e->wake_mu);
		e->reaper_until = next;
		while (!e->stopping && !e->wake) {
			if (next == INT64_MAX) {
				pthread_cond_wait(&e->wake_cv, &e->wake_mu);
				continue;
			}
			/* Wake exactly at the deadline second (CLOCK_REALTIME, like the windows). */
			ts.tv_sec = (time_t)next;
			ts.tv_nsec = 0;
			if (pthread_cond_timedwait(&e->wake_cv, &e->wake_mu, &ts) == ETIMEDOUT)
				break;
		}
		e->wake = 0;
		e->reaper_until = 0;
		if (e->stopping) {
			pthread_mutex_unlock(&e->wake_mu);
			break;
		}
		pthread_mutex_unlock(&e->wake_mu);
	}
	return NULL;
}
