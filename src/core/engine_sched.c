/*
 * engine_sched.c — owns time in the engine: the reaper thread that sleeps until the
 * earliest deadline (a pending request's TTL, an active window's end, an ending grant's
 * next attempt, the end of another node's lease, the end of an interval of counted
 * refusals), then claims what is due (engine_lease.c) and lapses, ends, revokes and
 * activates it, and writes refusal summaries; start-up recovery.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "elevate/log.h"
#include "engine_int.h"

#define SWEEP_BATCH 1000

/* pending past pending_until -> lapsed: claimed, then each read afresh in its own
 * transaction, which lets the lease go with the state change. */
static void
lapse_due(struct engine *e, int64_t now_ms)
{
	char **ids = NULL;
	size_t n = 0, i;

	if (engine_claim(e, STORE_DUE_LAPSE, now_ms, SWEEP_BATCH, &ids, &n) != EL_OK)
		return;
	for (i = 0; i < n; i++) {
		struct store_request r;
		const char *who[1];

		if (engine_tx_read(e, ids[i], &r) != EL_OK)
			continue;
		r.decided_at = now_ms / 1000;
		who[0] = r.requester;
		if (r.pending_until > now_ms / 1000 ||
		    engine_transition(e, &r, EV_LAPSE, "system", NULL) != EL_OK ||
		    engine_notify(e, "lapsed", &r, who, 1, NULL) != EL_OK ||
		    engine_lease_release(e, r.id) != EL_OK)
			engine_tx_rollback(e);   /* the lease runs out: tried again then */
		else if (engine_tx_commit(e) == EL_OK)
			log_info("request %s lapsed: no decision in time", r.id);
		store_request_free(&r);
	}
	el_strv_free(ids, n);
}

/* active past window_end -> ending: claimed and moved in one transaction, under this
 * node's lease, which the revocation that follows (revoke_due) keeps. Fills *ids with
 * those that moved (caller frees). */
static void
end_windows(struct engine *e, int64_t now_ms, char ***ids, size_t *n)
{
	char **claimed = NULL;
	size_t nc = 0, i;

	*ids = NULL;
	*n = 0;
	if (engine_tx_begin(e) != EL_OK)
		return;
	if (engine_claim(e, STORE_DUE_WINDOW_END, now_ms, SWEEP_BATCH, &claimed, &nc) != EL_OK) {
		engine_tx_rollback(e);
		return;
	}
	for (i = 0; i < nc; i++) {
		struct store_request r;

		if (store_request_get(e->store, claimed[i], &r) != EL_OK)
			continue;
		r.next_attempt_at = 0;
		r.attempts = 0;
		if (r.window_end > now_ms / 1000 ||
		    engine_transition(e, &r, EV_WINDOW_END, "system", NULL) != EL_OK) {
			free(claimed[i]);   /* its lease runs out: looked at again then */
			claimed[i] = NULL;
		}
		store_request_free(&r);
	}
	if (engine_tx_commit(e) != EL_OK) {
		el_strv_free(claimed, nc);
		return;
	}
	for (i = 0; i < nc; i++)
		if (claimed[i] != NULL)
			claimed[(*n)++] = claimed[i];
	*ids = claimed;
}

/* Every ending grant whose next attempt is due, with those whose window just ended
 * (already this node's): one sweep, batched per role, under this node's leases, renewed
 * while AWS works. */
static void
revoke_due(struct engine *e, int64_t now_ms, char **ended, size_t nended)
{
	char **ids = NULL, **all;
	size_t n = 0, i;

	if (engine_claim(e, STORE_DUE_REVOKE, now_ms, SWEEP_BATCH, &ids, &n) != EL_OK)
		n = 0;
	if (n + nended > 0 && (all = calloc(n + nended, sizeof(*all))) != NULL) {
		for (i = 0; i < nended; i++)
			all[i] = ended[i];
		for (i = 0; i < n; i++)
			all[nended + i] = ids[i];
		engine_lease_hold(e, all, n + nended);
		engine_end_grants(e, all, n + nended);
		engine_lease_unhold(e, all, n + nended);
		free(all);
	}
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

			activate = false;
			if (engine_tx_begin(e) == EL_OK) {
				if (store_request_get(e->store, v[i].id, &r) == EL_OK) {
					if (r.state == RS_PENDING &&
					    engine_quorum_reached(e, p, &r, "system", &activate) == EL_OK)
						activate = engine_tx_commit(e) == EL_OK && activate;
					else {
						engine_tx_rollback(e);
						activate = false;
					}
					store_request_free(&r);
				} else
					engine_tx_rollback(e);
			}
			if (activate)
				engine_activate_async(e, v[i].id);   /* else: its lease runs out */
			policy_release(p);
		}
		json_decref(j);
		store_request_free(&v[i]);
	}
	free(v);
}

/* Activations due (a retry's time come, or a lease that ran out: a node died or no
 * worker started), claimed: each on a worker thread, so the reaper never waits for AWS to
 * mint. One whose worker could not start keeps the lease until it runs out. */
static void
activate_due(struct engine *e, int64_t now_ms)
{
	char **ids = NULL;
	size_t n = 0, i;

	if (engine_claim(e, STORE_DUE_ACTIVATE, now_ms, SWEEP_BATCH, &ids, &n) != EL_OK)
		return;
	for (i = 0; i < n; i++)
		engine_activate_async(e, ids[i]);
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

/* When (ms) the reaper has work next: the earliest deadline (a second) of work no lease
 * holds, or the end of a lease (a node's that dies is taken over then); soon when the
 * store fails. */
static int64_t
next_work_ms(struct engine *e, int64_t now_ms)
{
	int64_t due, lease;

	if (store_next_deadline(e->store, e->cfg->ending_soon, now_ms, &due) != EL_OK ||
	    store_lease_next_end(e->store, now_ms, &lease) != EL_OK)
		return now_ms + 1000;   /* look again soon, never never */
	if (due != INT64_MAX)
		due = due < INT64_MAX / 1000 ? due * 1000 : INT64_MAX - 1;
	return due < lease ? due : lease;
}

static void
sweep(struct engine *e)
{
	int64_t now_ms = el_now_ms();
	char **ended = NULL;
	size_t nended = 0;

	/* Claims write: with nothing due (a wake-up for something later, or another node's
	 * work) none is tried. */
	if (next_work_ms(e, now_ms) <= now_ms) {
		end_windows(e, now_ms, &ended, &nended);
		revoke_due(e, now_ms, ended, nended);
		el_strv_free(ended, nended);
		lapse_due(e, now_ms);
		activate_due(e, now_ms);
		warn_due(e, now_ms / 1000);
	}
	engine_sync_revocations(e, now_ms / 1000);
	engine_glass_escalate_due(e, now_ms / 1000);
}

enum el_err
engine_resume(struct engine *e)
{
	claim_stranded(e);
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
		int64_t next, t, glass;

		sweep(e);
		next = next_work_ms(e, el_now_ms());
		t = engine_refusals_flush(e, el_now(), false);
		if (e->sync_next_at > 0 && e->sync_next_at < t)
			t = e->sync_next_at;
		if (store_glass_next_due(e->store, &glass) != EL_OK)
			glass = el_now() + 1;      /* the store failed: look again soon */
		if (glass < t)
			t = glass;
		if (t != INT64_MAX && t * 1000 < next)
			next = t * 1000;
		pthread_mutex_lock(&e->wake_mu);
		e->reaper_until = next;
		while (!e->stopping && !e->wake) {
			if (next == INT64_MAX) {
				pthread_cond_wait(&e->wake_cv, &e->wake_mu);
				continue;
			}
			/* Wake exactly at the deadline (CLOCK_REALTIME, like the windows). */
			ts.tv_sec = (time_t)(next / 1000);
			ts.tv_nsec = (long)(next % 1000) * 1000000L;
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
