/*
 * engine_glass.c — owns break-glass: a request of a profile that allows it becomes active
 * at once, without approval (pending -> activating by the break_glass event, in its
 * creating transaction), the people the profile names and the auditors are told at once
 * (the notice waits in the outbox when mail is down: it never holds up access), and an
 * approver reviews it afterwards: approve ratifies it, deny revokes it at once and flags
 * it. Unreviewed past review_within, it is escalated to the auditors (the reaper).
 */
#include <stdlib.h>
#include <string.h>

#include "elevate/log.h"
#include "engine_int.h"

/* Everyone the break-glass notice goes to: the profile's break_glass.notify (else its
 * approvers) and the auditors, each once, the requester left out. Caller frees. */
static const char **
notice_list(struct engine *e, const struct policy *p, const struct pol_profile *pp,
    const char *requester, size_t *n)
{
	char *const *who = pp->glass.nnotify > 0 ? pp->glass.notify : pp->approvers;
	size_t nwho = pp->glass.nnotify > 0 ? pp->glass.nnotify : pp->napprovers;
	const char **list;
	size_t i, j;

	*n = 0;
	if ((list = calloc(p->nusers + 1, sizeof(*list))) == NULL)
		return NULL;
	for (i = 0; i < p->nusers; i++) {
		const char *u = p->users[i].name;
		bool in = e->cfg->auditors != NULL && policy_principal_has(p, e->cfg->auditors, u);

		for (j = 0; !in && j < nwho; j++)
			in = policy_principal_has(p, who[j], u);
		if (in && strcmp(u, requester) != 0)
			list[(*n)++] = u;
	}
	return list;
}

enum el_err
engine_glass_begin(struct engine *e, const struct policy *p, struct store_request *r,
    const char *user)
{
	const struct pol_profile *pp = policy_profile(p, r->profile);
	const char **who;
	json_t *data, *names, *extra;
	char due[32];
	size_t n = 0, i;
	enum el_err rc;

	if (pp == NULL || !pp->glass.on)
		return EL_EPERM;
	if ((rc = store_glass_insert(e->store, r->id, r->created_at + pp->glass.review_within))
	    != EL_OK)
		return rc;
	if ((who = notice_list(e, p, pp, r->requester, &n)) == NULL)
		return EL_ENOMEM;
	names = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(names, json_string(who[i]));
	el_format_time(r->created_at + pp->glass.review_within, due, sizeof(due));
	data = json_pack("{s:o, s:s}", "notified", names, "review_due", due);
	/* Due now, as for a vote's activation: this node's worker mints under its lease,
	 * which any node's reaper takes over once it runs out. */
	r->next_attempt_at = 0;
	r->attempts = 0;
	r->decided_at = r->created_at;
	if ((rc = engine_transition(e, r, EV_BREAK_GLASS, user, data)) == EL_OK)
		rc = engine_lease_take(e, r->id);
	json_decref(data);
	if (rc == EL_OK) {
		extra = json_pack("{s:s}", "review_due", due);
		rc = engine_notify(e, "break_glass", r, who, n, extra);
		json_decref(extra);
	}
	free(who);
	return rc;
}

enum el_err
engine_glass_review(struct engine *e, const struct policy *p, struct store_request *r,
    const char *user, bool approve, const char *comment, const char *via, struct el_why *w)
{
	struct store_glass g;
	json_t *data;
	enum el_err rc;

	if ((rc = store_glass_get(e->store, r->id, &g)) != EL_OK)
		return rc;
	if (g.reviewed_at != 0)
		return el_fail(w, EL_ESTATE, "break-glass request %s was already reviewed: %s by "
		    "%s", r->id, g.review, g.reviewed_by);
	if ((rc = policy_check_approver(p, r->profile, r->requester, user, w)) != EL_OK)
		return rc;
	if ((rc = store_glass_review(e->store, r->id, user, approve ? "ratified" : "rejected",
	    el_now())) != EL_OK)
		return rc == EL_ESTATE ? el_fail(w, rc, "break-glass request %s was reviewed "
		    "meanwhile", r->id) : rc;
	data = json_pack("{s:s, s:s?, s:s, s:s}", "by", user, "comment", comment, "via", via,
	    "state", lifecycle_state_name(r->state));
	rc = engine_audit(e, user, approve ? "request.break_glass_ratified" :
	    "request.break_glass_rejected", r->id, data);
	json_decref(data);
	if (rc != EL_OK || approve)
		return rc;
	/* Rejected: whatever access it still gives ends now. */
	if (r->state == RS_ACTIVE || r->state == RS_ACTIVATING) {
		r->next_attempt_at = 0;
		r->attempts = 0;
		data = json_pack("{s:s, s:s, s:b, s:b}", "by", user, "reason",
		    "break-glass rejected on review", "early", 1, "break_glass_rejected", 1);
		rc = engine_transition(e, r, EV_REVOKE, user, data);
		json_decref(data);
		if (rc == EL_OK)
			log_warn("break-glass request %s rejected by %s: revoked", r->id, user);
	}
	return rc;
}

json_t *
engine_glass_json(struct engine *e, const char *id)
{
	struct store_glass g;
	char due[32], at[32], esc[32];

	if (store_glass_get(e->store, id, &g) != EL_OK)
		return json_null();
	el_format_time(g.review_due_at, due, sizeof(due));
	el_format_time(g.reviewed_at, at, sizeof(at));
	el_format_time(g.escalated_at, esc, sizeof(esc));
	return json_pack("{s:s, s:s?, s:s?, s:s?, s:s?}", "review_due_at", due,
	    "review", g.review[0] ? g.review : NULL,
	    "reviewed_by", g.reviewed_by[0] ? g.reviewed_by : NULL,
	    "reviewed_at", g.reviewed_at ? at : NULL, "escalated_at", g.escalated_at ? esc : NULL);
}

void
engine_glass_escalate_due(struct engine *e, int64_t now)
{
	char **ids = NULL;
	size_t n = 0, i;

	if (store_glass_due(e->store, now, 1000, &ids, &n) != EL_OK)
		return;
	for (i = 0; i < n; i++) {
		struct store_request r;
		json_t *data, *extra;
		char due[32];
		struct store_glass g;

		if (engine_tx_read(e, ids[i], &r) != EL_OK)
			continue;
		if (store_glass_get(e->store, r.id, &g) != EL_OK ||
		    store_glass_escalate(e->store, r.id, now) != EL_OK) {
			engine_tx_rollback(e);       /* reviewed meanwhile: nothing to escalate */
			store_request_free(&r);
			continue;
		}
		el_format_time(g.review_due_at, due, sizeof(due));
		data = json_pack("{s:s, s:s}", "review_due", due, "state",
		    lifecycle_state_name(r.state));
		extra = json_pack("{s:s}", "review_due", due);
		if (engine_audit(e, "system", "request.break_glass_escalated", r.id, data) != EL_OK ||
		    engine_notify(e, "break_glass_escalated", &r, NULL, 0, extra) != EL_OK)
			engine_tx_rollback(e);
		else if (engine_tx_commit(e) == EL_OK)
			log_warn("break-glass request %s was not reviewed by %s: escalated to the "
			    "auditors", r.id, due);
		json_decref(data);
		json_decref(extra);
		store_request_free(&r);
	}
	el_strv_free(ids, n);
}
