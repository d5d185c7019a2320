/*
 * engine_refuse.c — owns refusals. Anonymous ones (a bad, unknown or replayed API
 * signature; an approval link that does not verify) cost no durable write each: the first
 * audit.refusals_individual of each reason per audit.refusal_interval are audited one by
 * one, the rest counted in memory and audited as one summary record per reason and
 * interval (written by the reaper when the interval is over, by the next refusal of that
 * reason, or at shutdown). Each is also charged to its source address's bucket: an
 * address out of tokens is answered 429 before any signature check or store access.
 * Refusals of authenticated callers are audited one by one as authz.refused: a signed
 * caller is accountable.
 */
#include <stdio.h>
#include <string.h>

#include "elevate/log.h"
#include "engine_int.h"

enum el_err
engine_refusals_open(struct engine *e)
{
	return ratelimit_new((size_t)e->cfg->refusal_addresses, (double)e->cfg->refusal_burst,
	    (double)e->cfg->refusal_rate, &e->throttle);
}

void
engine_refusals_close(struct engine *e)
{
	ratelimit_free(e->throttle);
	e->throttle = NULL;
}

bool
engine_throttled(struct engine *e, const char *peer, int *retry_after)
{
	if (peer == NULL || !ratelimit_blocked(e->throttle, peer, el_now_ms(), retry_after))
		return false;
	atomic_fetch_add(&e->rate_limited_total, 1);
	return true;
}

/* The kind of (event, reason), claimed when new; NULL when every slot is taken. Under
 * refuse_mu. */
static struct refusal_kind *
kind_of(struct engine *e, const char *event, const char *reason)
{
	size_t i;

	for (i = 0; i < REFUSAL_KINDS; i++) {
		struct refusal_kind *k = &e->refusals[i];

		if (k->event[0] == '\0') {
			el_strlcpy(k->event, event, sizeof(k->event));
			el_strlcpy(k->reason, reason, sizeof(k->reason));
			return k;
		}
		if (strcmp(k->event, event) == 0 && strcmp(k->reason, reason) == 0)
			return k;
	}
	return NULL;
}

/* One audit record in a transaction of its own (refusals change no state). */
static void
audit_alone(struct engine *e, const char *actor, const char *event, const char *request_id,
    json_t *data)
{
	if (engine_tx_begin(e) != EL_OK) {
		log_err("audit %s: the store is unavailable: %s", event, store_errmsg());
		return;
	}
	if (engine_audit(e, actor, event, request_id, data) == EL_OK)
		engine_tx_commit(e);
	else
		engine_tx_rollback(e);
}

/* The summary of a closed interval of k (a copy taken under the lock). */
static void
write_summary(struct engine *e, const struct refusal_kind *k)
{
	char event[40], since[32], first[32], last[32];
	json_t *data;

	snprintf(event, sizeof(event), "%s_summary", k->event);
	el_format_time(k->since, since, sizeof(since));
	el_format_time(k->first_at, first, sizeof(first));
	el_format_time(k->last_at, last, sizeof(last));
	data = json_pack("{s:s, s:I, s:I, s:s, s:s, s:s, s:s, s:s}", "reason", k->reason,
	    "count", (json_int_t)k->count, "audited_individually", (json_int_t)k->individual,
	    "interval_start", since, "first_at", first, "last_at", last,
	    "first_peer", k->first_peer, "last_peer", k->last_peer);
	audit_alone(e, "anonymous", event, NULL, data);
	json_decref(data);
	log_info("%s (%s): %llu more refusals from %s to %s, first from %s, last from %s",
	    k->event, k->reason, (unsigned long long)k->count, first, last, k->first_peer,
	    k->last_peer);
}

void
engine_refused_anon(struct engine *e, const char *event, const char *reason,
    const char *peer, json_t *data)
{
	struct refusal_kind *k, closed;
	int64_t now = el_now();
	bool individual = false, summary = false, counting = false;

	if (peer == NULL)
		peer = "unknown";
	if (ratelimit_charge(e->throttle, peer, el_now_ms()))
		log_warn("%s: too many refusals (%s): further requests are answered 429 until it "
		    "slows down", peer, reason);
	pthread_mutex_lock(&e->refuse_mu);
	if ((k = kind_of(e, event, reason)) == NULL)
		individual = true;
	else {
		if (k->since != 0 && now >= k->since + e->cfg->refusal_interval) {
			if (k->count > 0) {
				closed = *k;
				summary = true;
			}
			k->since = 0;
		}
		if (k->since == 0) {
			k->since = now;
			k->individual = 0;
			k->count = 0;
		}
		if (k->individual < e->cfg->refusals_individual) {
			k->individual++;
			individual = true;
		} else {
			if (k->count++ == 0) {
				k->first_at = now;
				el_strlcpy(k->first_peer, peer, sizeof(k->first_peer));
				counting = true;
			}
			k->last_at = now;
			el_strlcpy(k->last_peer, peer, sizeof(k->last_peer));
		}
	}
	pthread_mutex_unlock(&e->refuse_mu);
	if (summary)
		write_summary(e, &closed);
	if (individual) {
		json_object_set_new(data, "peer", json_string(peer));
		audit_alone(e, "anonymous", event, NULL, data);
		log_info("%s (%s) from %s", event, reason, peer);
	}
	if (counting) {
		log_info("%s (%s): more than %lld in %llds: counting the rest into one summary",
		    event, reason, (long long)e->cfg->refusals_individual,
		    (long long)e->cfg->refusal_interval);
		engine_wake_reaper(e);   /* the summary is due at the interval's end */
	}
}

int64_t
engine_refusals_flush(struct engine *e, int64_t now, bool all)
{
	struct refusal_kind due[REFUSAL_KINDS];
	int64_t next = INT64_MAX;
	size_t i, n = 0;

	pthread_mutex_lock(&e->refuse_mu);
	for (i = 0; i < REFUSAL_KINDS; i++) {
		struct refusal_kind *k = &e->refusals[i];
		int64_t end = k->since + e->cfg->refusal_interval;

		if (k->event[0] == '\0' || k->since == 0)
			continue;
		if (all || now >= end) {
			if (k->count > 0)
				due[n++] = *k;
			k->since = 0;
			k->count = 0;
			k->individual = 0;
		} else if (k->count > 0 && end < next)
			next = end;
	}
	pthread_mutex_unlock(&e->refuse_mu);
	for (i = 0; i < n; i++)
		write_summary(e, &due[i]);
	return next;
}

enum el_err
engine_authz(struct engine *e, const char *user, const char *action, const char *id,
    enum el_err rc, const struct el_why *w)
{
	struct store_request r;
	char why[EL_WHYLEN];
	bool hidden = false;
	json_t *data;

	if (id != NULL && strlen(id) > 31)
		id = NULL;   /* no request has such an id */
	if (rc == EL_ENOENT && id != NULL && store_request_get(e->store, id, &r) == EL_OK) {
		struct policy *p = engine_policy(e);

		if ((hidden = !engine_may_view(e, p, user, &r)))
			snprintf(why, sizeof(why), "%s may not see request %s (of %s, profile %s): "
			    "answered as not found", user, id, r.requester, r.profile);
		policy_release(p);
		store_request_free(&r);
	}
	if (rc != EL_EPERM && !hidden)
		return rc;
	if (!hidden)
		el_strlcpy(why, w != NULL && w->msg[0] ? w->msg : el_strerror(rc), sizeof(why));
	atomic_fetch_add(&e->authz_refused_total, 1);
	data = json_pack("{s:s, s:s}", "action", action, "why", why);
	audit_alone(e, user, "authz.refused", id, data);
	json_decref(data);
	log_info("authz: %s may not %s%s%s: %s", user, action, id ? " " : "", id ? id : "", why);
	return rc;
}
