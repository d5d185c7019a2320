/*
 * engine_refuse.c — owns refusals. Anonymous ones (a bad, unknown or replayed API
 * signature; an approval link that does not verify) cost no durable write each: the first
 * audit.refusals_individual of each reason per audit.refusal_interval are audited one by
 * one, the rest counted in memory and audited as one summary record per reason and
 * interval (written by the reaper when the interval is over, by the next refusal of that
 * kind, or at shutdown). Each is also charged to its source address's bucket: an
 * address out of tokens is answered 429 before any signature check or store access.
 * Refusals of an approval link that verifies (opening a decided request's link again and
 * again) follow the same rule per link, reason and method, their records naming the link's
 * approver and request: holding a link must not buy a durable write per request.
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

/* What a refusal is counted by (see struct refusal_kind). */
struct refusal_key {
	const char *event, *reason, *actor, *request_id, *method;
};

static bool
is_kind(const struct refusal_kind *k, const struct refusal_key *key)
{
	return k->event[0] != '\0' && strcmp(k->event, key->event) == 0 &&
	    strcmp(k->reason, key->reason) == 0 && strcmp(k->actor, key->actor) == 0 &&
	    strcmp(k->request_id, key->request_id) == 0 && strcmp(k->method, key->method) == 0;
}

/*
 * The kind of key in tab[0..n), claimed when new: from an unused slot or one whose
 * interval is over (what it counted is copied to *closed, *summary set, for its summary).
 * NULL when every slot holds an open interval. Under refuse_mu.
 */
static struct refusal_kind *
kind_of(struct engine *e, struct refusal_kind *tab, size_t n, const struct refusal_key *key,
    int64_t now, struct refusal_kind *closed, bool *summary)
{
	struct refusal_kind *k, *spare = NULL;
	size_t i;

	for (i = 0; i < n; i++) {
		k = &tab[i];
		if (is_kind(k, key))
			return k;
		if (spare == NULL && (k->event[0] == '\0' || k->since == 0 ||
		    now >= k->since + e->cfg->refusal_interval))
			spare = k;
	}
	if ((k = spare) == NULL)
		return NULL;
	if (k->event[0] != '\0' && k->since != 0 && k->count > 0) {
		*closed = *k;
		*summary = true;
	}
	memset(k, 0, sizeof(*k));
	el_strlcpy(k->event, key->event, sizeof(k->event));
	el_strlcpy(k->reason, key->reason, sizeof(k->reason));
	el_strlcpy(k->actor, key->actor, sizeof(k->actor));
	el_strlcpy(k->request_id, key->request_id, sizeof(k->request_id));
	el_strlcpy(k->method, key->method, sizeof(k->method));
	return k;
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

/* For the log: " (the link of carol for req_x)" for a link's refusal (its method set),
 * "" for an anonymous one. */
static const char *
whose(const char *actor, const char *request_id, const char *method, char *buf, size_t len)
{
	if (method[0] == '\0')
		return "";
	snprintf(buf, len, " (the link of %s for %s)", actor,
	    request_id[0] ? request_id : "a request that is gone");
	return buf;
}

/* The summary of a closed interval of k (a copy taken under the lock). */
static void
write_summary(struct engine *e, const struct refusal_kind *k)
{
	char event[40], since[32], first[32], last[32], link[160];
	json_t *data;

	snprintf(event, sizeof(event), "%s_summary", k->event);
	el_format_time(k->since, since, sizeof(since));
	el_format_time(k->first_at, first, sizeof(first));
	el_format_time(k->last_at, last, sizeof(last));
	data = json_pack("{s:s, s:I, s:I, s:s, s:s, s:s, s:s, s:s}", "reason", k->reason,
	    "count", (json_int_t)k->count, "audited_individually", (json_int_t)k->individual,
	    "interval_start", since, "first_at", first, "last_at", last,
	    "first_peer", k->first_peer, "last_peer", k->last_peer);
	if (k->method[0] != '\0')
		json_object_set_new(data, "method", json_string(k->method));
	audit_alone(e, k->actor, event, k->request_id[0] ? k->request_id : NULL, data);
	json_decref(data);
	log_info("%s (%s)%s: %llu more refusals from %s to %s, first from %s, last from %s",
	    k->event, k->reason, whose(k->actor, k->request_id, k->method, link, sizeof(link)),
	    (unsigned long long)k->count, first, last, k->first_peer, k->last_peer);
}

/* A refusal of kind key in tab: audited, or counted (see the top of the file). */
static void
refused(struct engine *e, struct refusal_kind *tab, size_t n, const struct refusal_key *key,
    const char *peer, json_t *data)
{
	struct refusal_kind *k, closed;
	int64_t now = el_now();
	bool individual = false, summary = false, counting = false;
	char link[160];
	const char *who = whose(key->actor, key->request_id, key->method, link, sizeof(link));

	pthread_mutex_lock(&e->refuse_mu);
	if ((k = kind_of(e, tab, n, key, now, &closed, &summary)) == NULL)
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
		audit_alone(e, key->actor, key->event, key->request_id[0] ? key->request_id : NULL,
		    data);
		log_info("%s (%s) from %s%s", key->event, key->reason, peer, who);
	}
	if (counting) {
		log_info("%s (%s)%s: more than %lld in %llds: counting the rest into one summary",
		    key->event, key->reason, who, (long long)e->cfg->refusals_individual,
		    (long long)e->cfg->refusal_interval);
		engine_wake_reaper(e);   /* the summary is due at the interval's end */
	}
}

void
engine_refused_anon(struct engine *e, const char *event, const char *reason,
    const char *peer, json_t *data)
{
	struct refusal_key key = {event, reason, "anonymous", "", ""};

	if (peer == NULL)
		peer = "unknown";
	if (ratelimit_charge(e->throttle, peer, el_now_ms()))
		log_warn("%s: too many refusals (%s): further requests are answered 429 until it "
		    "slows down", peer, reason);
	refused(e, e->refusals, REFUSAL_KINDS, &key, peer, data);
}

void
engine_refused_link(struct engine *e, const char *approver, const char *request_id,
    const char *reason, const char *method, const char *peer, json_t *data)
{
	struct refusal_key key = {"token.refused", reason, approver,
	    request_id ? request_id : "", method};

	refused(e, e->link_refusals, LINK_REFUSAL_KINDS, &key, peer ? peer : "unknown", data);
}

/* Takes the closed intervals of tab[0..n) into due (*nd of them so far); lowers *next
 * to the end of the earliest open one with something counted. Under refuse_mu. */
static void
closed_kinds(struct engine *e, struct refusal_kind *tab, size_t n, int64_t now, bool all,
    struct refusal_kind *due, size_t *nd, int64_t *next)
{
	size_t i;

	for (i = 0; i < n; i++) {
		struct refusal_kind *k = &tab[i];
		int64_t end = k->since + e->cfg->refusal_interval;

		if (k->event[0] == '\0' || k->since == 0)
			continue;
		if (all || now >= end) {
			if (k->count > 0)
				due[(*nd)++] = *k;
			k->since = 0;
			k->count = 0;
			k->individual = 0;
		} else if (k->count > 0 && end < *next)
			*next = end;
	}
}

int64_t
engine_refusals_flush(struct engine *e, int64_t now, bool all)
{
	struct refusal_kind due[REFUSAL_KINDS + LINK_REFUSAL_KINDS];   /* 24 KiB */
	int64_t next = INT64_MAX;
	size_t i, n = 0;

	pthread_mutex_lock(&e->refuse_mu);
	closed_kinds(e, e->refusals, REFUSAL_KINDS, now, all, due, &n, &next);
	closed_kinds(e, e->link_refusals, LINK_REFUSAL_KINDS, now, all, due, &n, &next);
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
