/*
 * engine_report.c — owns the access review (`elevate report`, GET /v1/report): for every
 * grant of a period (a request that was ever active, or failed), who asked for which role
 * and why, who approved, the window asked and served, how it ended, its SSM sessions, its
 * credential hand-outs with their source address and its revocation receipt, with overdue
 * revocations flagged. Built from the store's requests, approvals and sessions and from
 * each grant's audit records; bounded by a period ceiling and a row limit that refuses
 * rather than shortens.
 */
#include <stdlib.h>
#include <string.h>

#include "elevate/jspec.h"
#include "elevate/log.h"
#include "engine_int.h"

#define REPORT_SINCE_MAX EL_DURATION_MAX   /* 366 days */
#define REPORT_LIMIT_DEFAULT 1000          /* requests read for one report */
#define REPORT_LIMIT_MAX 10000
#define REPORT_RECORDS_MAX 5000            /* audit records read per grant */
#define REPORT_OVERDUE_MS 5000             /* a revocation later than this is overdue */

/* "2026-11-22T03:26:00.123Z" -> ms since the epoch; -1 when it is not a time. */
static int64_t
time_ms(const char *iso)
{
	const char *p;
	int64_t t, ms = 0;
	int i;

	if (iso == NULL || el_parse_time(iso, &t) != EL_OK)
		return -1;
	if ((p = strchr(iso, '.')) != NULL)
		for (i = 0, p++; i < 3; i++)
			ms = ms * 10 + (*p >= '0' && *p <= '9' ? *p++ - '0' : 0);
	return t * 1000 + ms;
}

enum el_err
engine_event_time_ms(struct engine *e, const char *id, const char *event, int64_t *ms)
{
	struct store_audit_filter f;
	json_t *recs;
	size_t n;
	enum el_err rc;

	memset(&f, 0, sizeof(f));
	f.request_id = id;
	f.event = event;
	f.limit = REPORT_RECORDS_MAX;
	if ((rc = store_audit_list(e->store, &f, &recs)) != EL_OK)
		return rc;
	n = json_array_size(recs);
	*ms = n ? time_ms(json_string_value(json_object_get(json_array_get(recs, n - 1),
	    "time"))) : -1;
	json_decref(recs);
	return *ms >= 0 ? EL_OK : EL_ENOENT;
}

static json_t *
time_json(int64_t t)
{
	return el_time_json(t);
}

static double
secs_between(int64_t from_ms, int64_t to_ms)
{
	return (double)(to_ms - from_ms) / 1000.0;
}

/* How the grant ended and whether its revocation was late: from the request and the
 * times of its records. */
static void
add_end(json_t *g, const struct store_request *r, json_t *revoke, int64_t ended_ms,
    int64_t now_ms, bool *overdue)
{
	const char *how;
	int64_t due_ms = r->window_end * 1000, rq_ms;
	json_t *end, *rev;

	*overdue = false;
	if (r->state == RS_FAILED) {
		json_object_set_new(g, "end", json_pack("{s:s, s:o, s:s?, s:s?}", "how", "failed",
		    "at", time_json(r->decided_at ? r->decided_at : r->created_at), "code",
		    r->failure_code, "message", r->failure_message));
		json_object_set_new(g, "revocation", json_null());
		return;
	}
	rq_ms = revoke ? time_ms(json_string_value(json_object_get(revoke, "time"))) : -1;
	if (revoke != NULL && rq_ms >= 0 && rq_ms < due_ms) {
		how = "revoked";
		due_ms = rq_ms;
	} else if (r->state == RS_ENDED)
		how = "expired";
	else
		how = lifecycle_state_name(r->state);
	end = json_pack("{s:s, s:o}", "how", how, "at", time_json(r->ended_at));
	if (strcmp(how, "revoked") == 0) {
		json_t *d = json_object_get(revoke, "data");
		json_object_set(end, "by", json_object_get(revoke, "actor"));
		json_object_set(end, "reason", json_object_get(d, "reason") ?
		    json_object_get(d, "reason") : json_null());
		json_object_set(end, "requested_at", json_object_get(revoke, "time"));
	}
	json_object_set_new(g, "end", end);
	rev = json_pack("{s:o}", "due", time_json(due_ms / 1000));
	if (ended_ms > 0) {
		json_object_set_new(rev, "done", time_json(ended_ms / 1000));
		json_object_set_new(rev, "lag_seconds", json_real(secs_between(due_ms, ended_ms)));
		*overdue = ended_ms - due_ms > REPORT_OVERDUE_MS;
	} else {
		json_object_set_new(rev, "done", json_null());
		*overdue = now_ms - due_ms > REPORT_OVERDUE_MS;
		if (*overdue)
			json_object_set_new(rev, "pending_seconds",
			    json_real(secs_between(due_ms, now_ms)));
	}
	json_object_set_new(rev, "overdue", json_boolean(*overdue));
	json_object_set_new(g, "revocation", rev);
}

/* One grant: the request, its approvals and sessions, and what its records tell. */
static enum el_err
grant_json(struct engine *e, const struct store_request *r, int64_t now_ms, json_t **out,
    bool *overdue)
{
	struct store_audit_filter f;
	struct store_approval *ap = NULL;
	struct store_session *ss = NULL;
	size_t nap = 0, nss = 0, i;
	json_t *recs = NULL, *g, *v, *fetches, *exts, *approvals, *sessions, *revoke = NULL;
	json_t *receipt = json_null();
	int64_t asked = r->duration, ended_ms = 0;
	enum el_err rc;

	memset(&f, 0, sizeof(f));
	f.request_id = r->id;
	f.limit = REPORT_RECORDS_MAX;
	if ((rc = store_approval_list(e->store, r->id, &ap, &nap)) != EL_OK ||
	    (rc = store_session_list(e->store, r->id, &ss, &nss)) != EL_OK ||
	    (rc = store_audit_list(e->store, &f, &recs)) != EL_OK)
		goto out;
	fetches = json_array();
	exts = json_array();
	json_array_foreach(recs, i, v) {
		const char *ev = json_string_value(json_object_get(v, "event"));
		json_t *d = json_object_get(v, "data");

		if (ev == NULL)
			continue;
		if (strcmp(ev, "request.created") == 0 &&
		    json_is_integer(json_object_get(d, "duration")))
			asked = json_integer_value(json_object_get(d, "duration"));
		else if (strcmp(ev, "grant.revoke_requested") == 0 && revoke == NULL)
			revoke = v;
		else if (strcmp(ev, "grant.ended") == 0)
			ended_ms = time_ms(json_string_value(json_object_get(v, "time")));
		else if (strcmp(ev, "grant.extended") == 0)
			json_array_append_new(exts, json_pack("{s:O, s:o, s:o}", "at",
			    json_object_get(v, "time"), "old_end", time_json(json_integer_value(
			    json_object_get(d, "old_window_end"))), "new_end", time_json(
			    json_integer_value(json_object_get(d, "new_window_end")))));
		else if (strcmp(ev, "grant.credentials_fetched") == 0)
			json_array_append_new(fetches, json_pack("{s:O, s:O, s:O?, s:O?}", "at",
			    json_object_get(v, "time"), "user", json_object_get(v, "actor"), "peer",
			    json_object_get(d, "peer"), "access_key_id",
			    json_object_get(d, "access_key_id")));
		else if (strcmp(ev, "grant.revocation_verified") == 0 ||
		    strcmp(ev, "grant.revocation_unverified") == 0) {
			json_decref(receipt);
			receipt = json_deep_copy(d);
			json_object_set_new(receipt, "verified",
			    json_boolean(strcmp(ev, "grant.revocation_verified") == 0));
			json_object_set(receipt, "at", json_object_get(v, "time"));
		}
	}
	approvals = json_array();
	for (i = 0; i < nap; i++)
		json_array_append_new(approvals, json_pack("{s:s, s:s, s:o, s:s?, s:s}",
		    "approver", ap[i].approver, "decision", ap[i].decision, "at",
		    time_json(ap[i].at), "comment", ap[i].comment, "via", ap[i].via));
	sessions = json_array();
	for (i = 0; i < nss; i++)
		json_array_append_new(sessions, json_pack("{s:s, s:s, s:s?, s:o, s:o}",
		    "session_id", ss[i].session_id, "instance", ss[i].target, "document",
		    ss[i].document, "started_at", time_json(ss[i].started_at), "ended_at",
		    time_json(ss[i].terminated_at)));
	g = json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s?, s:s?, s:s, s:o, s:I, s:o, s:o, s:o, s:o,"
	    " s:o, s:o, s:o, s:b}",
	    "id", r->id, "requester", r->requester, "profile", r->profile, "role_arn",
	    r->role_arn, "region", r->region, "reason", r->reason, "ticket", r->ticket,
	    "state", lifecycle_state_name(r->state), "requested_at", time_json(r->created_at),
	    "asked_seconds", (json_int_t)asked, "approvals", approvals,
	    "window_start", time_json(r->window_start), "window_end", time_json(r->window_end),
	    "extensions", exts, "sessions", sessions, "credential_fetches", fetches,
	    "receipt", receipt, "records_complete",
	    json_array_size(recs) < REPORT_RECORDS_MAX);
	receipt = NULL;
	if (g == NULL) {
		rc = EL_ENOMEM;
		goto out;
	}
	json_object_set_new(g, "served_seconds", r->window_start > 0 ?
	    json_integer((r->ended_at > 0 && r->ended_at < r->window_end ? r->ended_at :
	    r->window_end) - r->window_start) : json_integer(0));
	add_end(g, r, revoke, ended_ms, now_ms, overdue);
	json_object_set_new(g, "break_glass", engine_glass_json(e, r->id));
	*out = g;
out:
	json_decref(receipt);
	json_decref(recs);
	store_approvals_free(ap, nap);
	store_sessions_free(ss, nss);
	return rc;
}

static const struct schema_field report_query_fields[] = {
	{ .key = "since", .kind = SF_STR, .required = true, .max = 32 },
	{ .key = "limit", .kind = SF_STR, .null_ok = true, .max = 6 },
};
static const struct schema report_query_spec = SCHEMA(report_query_fields);

enum el_err
engine_report(struct engine *e, const char *user, json_t *query, json_t **out,
    struct el_why *w)
{
	struct policy *p = engine_policy(e);
	struct store_filter f;
	struct store_request *v = NULL;
	size_t n = 0, i;
	const char *s;
	long long lim = REPORT_LIMIT_DEFAULT;
	int64_t now = el_now(), now_ms = el_now_ms(), since, secs;
	json_t *grants = NULL, *g = NULL, *not_granted = NULL, *x;
	int nover = 0, nrevoked = 0, nexpired = 0, nfailed = 0;
	enum el_err rc;

	memset(&f, 0, sizeof(f));
	if (e->cfg->auditors == NULL || !policy_principal_has(p, e->cfg->auditors, user)) {
		rc = el_fail(w, EL_EPERM, "%s is not an auditor (%s)", user,
		    e->cfg->auditors ? e->cfg->auditors : "none configured");
		goto out;
	}
	if ((rc = jspec_check(query, &report_query_spec, w)) != EL_OK)
		goto out;
	s = jspec_str(query, "since");
	if (el_parse_duration(s, &secs) == EL_OK)
		since = now - secs;
	else if (el_parse_time(s, &since) != EL_OK) {
		rc = el_fail(w, EL_EINVAL, "since must be a duration (30d) or a time "
		    "(2026-11-01T00:00:00Z)");
		goto out;
	}
	if (since < now - REPORT_SINCE_MAX || since > now) {
		rc = el_fail(w, EL_EINVAL, "since must be within the last 366 days: a report covers "
		    "at most a year; run one per year for longer");
		goto out;
	}
	if ((s = jspec_str(query, "limit")) != NULL &&
	    el_parse_int(s, 1, REPORT_LIMIT_MAX, &lim) != EL_OK) {
		rc = el_fail(w, EL_EINVAL, "limit must be from 1 to %d", REPORT_LIMIT_MAX);
		goto out;
	}
	f.since = since > 0 ? since : 1;
	f.limit = (int)lim + 1;
	if ((rc = store_request_list(e->store, &f, &v, &n)) != EL_OK) {
		el_fail(w, rc, "cannot read the requests: %s", store_errmsg());
		goto out;
	}
	if (n > (size_t)lim) {
		rc = el_fail(w, EL_EINVAL, "more than %lld requests since %s: the report would be "
		    "incomplete; choose a shorter --since or a larger --limit (at most %d)", lim,
		    jspec_str(query, "since"), REPORT_LIMIT_MAX);
		goto out;
	}
	grants = json_array();
	not_granted = json_object();
	for (i = n; i-- > 0;) {             /* oldest first */
		bool overdue = false;
		const char *st = lifecycle_state_name(v[i].state);

		if (v[i].parent_id != NULL)
			continue;               /* an extension: shown in its grant */
		if (v[i].window_start == 0 && v[i].state != RS_FAILED) {
			x = json_object_get(not_granted, st);
			json_object_set_new(not_granted, st,
			    json_integer(x ? json_integer_value(x) + 1 : 1));
			continue;
		}
		if ((rc = grant_json(e, &v[i], now_ms, &g, &overdue)) != EL_OK) {
			el_fail(w, rc, "cannot read request %s: %s", v[i].id, store_errmsg());
			goto out;
		}
		s = json_string_value(json_object_get(json_object_get(g, "end"), "how"));
		nover += overdue;
		nrevoked += strcmp(s, "revoked") == 0;
		nexpired += strcmp(s, "expired") == 0;
		nfailed += strcmp(s, "failed") == 0;
		json_array_append_new(grants, g);
	}
	*out = json_pack("{s:o, s:o, s:{s:i, s:i, s:i, s:i, s:i, s:O}, s:O}",
	    "since", time_json(since), "generated_at", time_json(now),
	    "summary", "grants", (int)json_array_size(grants), "expired", nexpired, "revoked",
	    nrevoked, "failed", nfailed, "overdue_revocations", nover, "not_granted",
	    not_granted, "grants", grants);
	if (*out == NULL)
		rc = el_fail(w, EL_ENOMEM, "out of memory");
out:
	json_decref(grants);
	json_decref(not_granted);
	for (i = 0; i < n; i++)
		store_request_free(&v[i]);
	free(v);
	policy_release(p);
	return engine_authz(e, user, "report.read", NULL, rc, w);
}
