/*
 * engine_bundle.c — owns bundles: one request over several profiles. A bundle is an id
 * ("bun_…") over member requests, one per profile, each an ordinary request with its own
 * approvers, quorum, window, credentials and revocation. The members are created all or
 * none in one transaction (bundle.created, then each member's request.created naming the
 * bundle); what is asked of the bundle afterwards (approve, deny, cancel, revoke, extend)
 * is asked of each member through the member's own operation, so every state change is
 * still one member's transition with its own audit record.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elevate/jspec.h"
#include "elevate/log.h"
#include "engine_int.h"

#define REASON_MAX 1024
#define TICKET_MAX 128

static const struct schema_field bundle_fields[] = {
	{ .key = "profiles", .kind = SF_STRLIST, .required = true, .min = 2, .max = BUNDLE_MAX,
	  .item_max = POLICY_NAME_MAX },
	{ .key = "duration", .kind = SF_DURATION, .null_ok = true, .seconds_ok = true, .min = 1,
	  .max = EL_DURATION_MAX },
	{ .key = "reason", .kind = SF_TEXT, .null_ok = true, .max = REASON_MAX },
	{ .key = "ticket", .kind = SF_TEXT, .null_ok = true, .max = TICKET_MAX },
	{ .key = "start_at", .kind = SF_STR, .null_ok = true, .max = 40 },
};
static const struct schema bundle_spec = SCHEMA(bundle_fields);

/* Appends s to buf (len bytes), cut short when full. */
static void
append(char *buf, size_t len, const char *s)
{
	size_t n = strlen(buf);

	if (n + 1 < len)
		el_strlcpy(buf + n, s, len - n);
}

/* "a, b, c": the members' profiles, in order, into buf (len bytes), cut short when full. */
static void
profile_names(const struct store_request *r, size_t n, char *buf, size_t len)
{
	size_t i;

	buf[0] = '\0';
	for (i = 0; i < n; i++) {
		append(buf, len, i > 0 ? ", " : "");
		append(buf, len, r[i].profile);
	}
}

bool
engine_is_bundle_id(const char *id)
{
	return id != NULL && strncmp(id, "bun_", 4) == 0;
}

/* A bundle's members, each loaded, in the order asked. */
struct members {
	char requester[STORE_NAME_MAX];
	struct store_request *r;
	size_t n;
};

static void
members_free(struct members *m)
{
	size_t i;

	for (i = 0; i < m->n; i++)
		store_request_free(&m->r[i]);
	free(m->r);
	m->r = NULL;
	m->n = 0;
}

/* The members of bundle id, if user may see one of them: EL_ENOENT alike for a missing
 * bundle and a hidden one. Free with members_free(). */
static enum el_err
members_load(struct engine *e, const struct policy *p, const char *user, const char *id,
    struct members *m, struct el_why *w)
{
	char **ids = NULL;
	size_t n = 0, i;
	bool visible = false;
	enum el_err rc;

	memset(m, 0, sizeof(*m));
	if (strlen(id) > 31)
		return el_fail(w, EL_ENOENT, "no such request");
	if ((rc = store_bundle_members(e->store, id, m->requester, &ids, &n)) == EL_ENOENT)
		return el_fail(w, EL_ENOENT, "no request %s", id);
	if (rc != EL_OK)
		return el_fail(w, rc, "cannot read bundle %s: %s", id, store_errmsg());
	if ((m->r = calloc(n ? n : 1, sizeof(*m->r))) == NULL) {
		el_strv_free(ids, n);
		return el_fail(w, EL_ENOMEM, "out of memory");
	}
	for (i = 0; i < n && rc == EL_OK; i++) {
		if ((rc = store_request_get(e->store, ids[i], &m->r[i])) != EL_OK)
			el_fail(w, rc, "cannot read request %s of bundle %s: %s", ids[i], id,
			    store_errmsg());
		else {
			m->n++;
			visible |= engine_may_view(e, p, user, &m->r[i]);
		}
	}
	el_strv_free(ids, n);
	if (rc == EL_OK && !visible)
		rc = el_fail(w, EL_ENOENT, "no request %s", id);
	if (rc != EL_OK)
		members_free(m);
	return rc;
}

/* The bundle's JSON: its members (request JSON each) and a summary state, the members'
 * common state or "mixed" (states counts them). */
static json_t *
bundle_json(struct engine *e, const char *id, const struct members *m)
{
	json_t *o, *arr = json_array(), *profiles = json_array(), *states = json_object();
	const char *common = NULL;
	int64_t created = 0;
	size_t i;

	for (i = 0; i < m->n; i++) {
		const char *st = lifecycle_state_name(m->r[i].state);
		json_t *c = json_object_get(states, st);

		json_array_append_new(arr, engine_request_json(e, &m->r[i]));
		json_array_append_new(profiles, json_string(m->r[i].profile));
		json_object_set_new(states, st, json_integer(c ? json_integer_value(c) + 1 : 1));
		common = i == 0 || (common != NULL && strcmp(common, st) == 0) ? st : NULL;
		if (i == 0 || m->r[i].created_at < created)
			created = m->r[i].created_at;
	}
	o = json_pack("{s:s, s:s, s:s, s:o, s:o, s:o}", "id", id, "kind", "bundle",
	    "requester", m->requester, "profiles", profiles, "states", states, "members", arr);
	if (o != NULL) {
		char at[32];

		el_format_time(created, at, sizeof(at));
		json_object_set_new(o, "state", json_string(common != NULL ? common : "mixed"));
		json_object_set_new(o, "created_at", json_string(at));
	}
	return o;
}

/* ---- the approvers' mail and page ---- */

/* Each member's role as approver (NULL: nobody in particular) sees it: its state and
 * quorum, whether approver may approve it (yours) and may decide it now (decidable). */
static json_t *
roles_ctx(struct engine *e, const struct policy *p, const struct store_request *r,
    size_t n, const char *approver, size_t *ndecidable, size_t *npending, size_t *nyours)
{
	json_t *roles = json_array();
	size_t i, k;

	*ndecidable = *npending = *nyours = 0;
	for (i = 0; i < n; i++) {
		const struct pol_profile *pp = policy_profile(p, r[i].profile);
		struct store_approval *ap = NULL;
		struct el_why w = {{0}};
		size_t nap = 0, nv = 0;
		bool yours, voted = false, met = false;

		yours = approver != NULL &&
		    policy_check_approver(p, r[i].profile, r[i].requester, approver, NULL) == EL_OK;
		if (store_approval_list(e->store, r[i].id, &ap, &nap) != EL_OK) {
			ap = NULL;
			nap = 0;
		}
		for (k = 0; k < nap; k++)
			if (approver != NULL && strcmp(ap[k].approver, approver) == 0)
				voted = true;
		engine_quorum_of(p, &r[i], ap, nap, &met, &nv, &w);
		*npending += r[i].state == RS_PENDING;
		*nyours += yours;
		*ndecidable += yours && !voted && r[i].state == RS_PENDING;
		json_array_append_new(roles, json_pack("{s:s, s:s, s:s?, s:s, s:I, s:I, s:s,"
		    " s:b, s:b, s:b}", "profile", r[i].profile, "request_id", r[i].id,
		    "role_arn", r[i].role_arn, "state", lifecycle_state_name(r[i].state),
		    "approvals_count", (json_int_t)nv, "approvals_required",
		    (json_int_t)(pp != NULL ? pp->approvals_required : 0),
		    "missing", met ? "quorum met" : w.msg, "yours", yours,
		    "decidable", yours && !voted && r[i].state == RS_PENDING, "voted", voted));
		store_approvals_free(ap, nap);
	}
	return roles;
}

/* The bundle's fields over its first member's request fields (bundle_id, profile: every
 * profile, roles) for approver. */
static json_t *
bundle_ctx(struct engine *e, const struct policy *p, const char *bid,
    const struct store_request *r, size_t n, const char *approver, size_t *ndecidable,
    size_t *npending, size_t *nyours)
{
	json_t *ctx = engine_request_ctx(e, &r[0], approver);
	char names[BUNDLE_MAX * (POLICY_NAME_MAX + 2)];
	int64_t until = 0;
	size_t i;

	profile_names(r, n, names, sizeof(names));
	for (i = 0; i < n; i++)
		if (r[i].pending_until > until)
			until = r[i].pending_until;
	json_object_set_new(ctx, "request_id", json_string(bid));
	json_object_set_new(ctx, "bundle_id", json_string(bid));
	json_object_set_new(ctx, "profile", json_string(names));
	json_object_set_new(ctx, "roles_count", json_integer((json_int_t)n));
	json_object_set_new(ctx, "roles", roles_ctx(e, p, r, n, approver, ndecidable,
	    npending, nyours));
	{
		char at[32];

		el_format_time(until, at, sizeof(at));
		json_object_set_new(ctx, "expires", json_string(at));
	}
	return ctx;
}

/*
 * One mail per approver of any member (not one per member): the roles, which of them
 * this approver may approve, and one link to the bundle's page, valid until the last
 * member's pending_until. Built before the transaction, as a request's are. Members an
 * auto-approval rule approves ask nobody.
 */
static enum el_err
bundle_mails(struct engine *e, const struct policy *p, const char *bid,
    const struct store_request *r, size_t n, const struct pol_auto_rule *const *ars,
    struct engine_mails *out)
{
	const char **who = NULL, **all = NULL, **v;
	size_t nwho, nall = 0, i, j, k, nd, npend, nyours;
	int64_t until = 0;
	enum el_err rc = EL_OK;

	if (e->cfg->smtp_url == NULL || e->templates == NULL)
		return EL_OK;
	for (i = 0; i < n && rc == EL_OK; i++) {
		if (ars[i] != NULL)
			continue;
		if (r[i].pending_until > until)
			until = r[i].pending_until;
		if ((rc = policy_approvers_for(p, r[i].profile, r[i].requester, &who, &nwho))
		    != EL_OK)
			break;
		for (j = 0; j < nwho; j++) {
			for (k = 0; k < nall && strcmp(all[k], who[j]) != 0; k++)
				;
			if (k < nall)
				continue;
			if ((v = realloc(all, (nall + 1) * sizeof(*all))) == NULL) {
				rc = EL_ENOMEM;
				break;
			}
			all = v;
			all[nall++] = who[j];
		}
		free(who);
		who = NULL;
	}
	for (i = 0; i < nall && rc == EL_OK; i++) {
		const struct pol_user *u = policy_user(p, all[i]);
		char link[1024];
		json_t *ctx;

		if (u == NULL || u->email == NULL)
			continue;
		if ((rc = engine_approval_link(e, bid, u->name, until, link, sizeof(link)))
		    != EL_OK)
			break;
		ctx = bundle_ctx(e, p, bid, r, n, u->name, &nd, &npend, &nyours);
		for (j = 0; j < n; j++)    /* approved by its rule as it is stored */
			if (ars[j] != NULL)
				json_object_set_new(json_array_get(json_object_get(ctx, "roles"), j),
				    "yours", json_false());
		json_object_set_new(ctx, "link", json_string(link));
		rc = engine_mails_add(e, out, "bundle_approval_request", bid, u->email, ctx);
		explicit_bzero(link, sizeof(link));
		json_decref(ctx);
	}
	free(all);
	if (rc != EL_OK)
		engine_mails_free(out);
	return rc;
}

json_t *
engine_bundle_page_ctx(struct engine *e, const char *id, const char *approver,
    size_t *ndecidable, size_t *npending, size_t *approver_of)
{
	struct policy *p = engine_policy(e);
	struct members m;
	json_t *ctx = NULL;

	*ndecidable = *npending = *approver_of = 0;
	if (members_load(e, p, approver, id, &m, NULL) == EL_OK) {
		if (m.n > 0)
			ctx = bundle_ctx(e, p, id, m.r, m.n, approver, ndecidable, npending,
			    approver_of);
		members_free(&m);
	}
	policy_release(p);
	return ctx;
}

/* ---- create ---- */

static void
make_bundle_id(char *buf, size_t len)
{
	char rnd[16];

	el_random_id(rnd, sizeof(rnd), 12);
	snprintf(buf, len, "bun_%s", rnd);
}

enum el_err
engine_create_bundle(struct engine *e, const char *user, json_t *body, json_t **out,
    struct el_why *w)
{
	struct policy *p = engine_policy(e);
	struct store_request r[BUNDLE_MAX];
	struct engine_new_request n[BUNDLE_MAX];
	const struct pol_auto_rule *ar, *ars[BUNDLE_MAX];
	struct members m;
	struct engine_mails mails = {NULL, 0};
	char bid[32];
	json_t *profiles, *extra = NULL, *data = NULL, *ids;
	size_t np = 0, nn = 0, i;
	int64_t start = 0, now = el_now();
	enum el_err rc;

	memset(r, 0, sizeof(r));
	memset(&m, 0, sizeof(m));
	if ((rc = jspec_check(body, &bundle_spec, w)) != EL_OK)
		goto out;
	profiles = json_object_get(body, "profiles");
	np = json_array_size(profiles);
	/* Every member is checked before anything is stored: one refused profile refuses
	 * the whole request, naming that profile (the policy's messages do). */
	for (i = 0; i < np; i++) {
		struct el_why w1 = {{0}};

		if ((rc = engine_request_build(e, p, user, body, json_string_value(
		    json_array_get(profiles, i)), now, &r[i], &start, &ar, &w1)) != EL_OK) {
			if (rc == EL_ENOENT)
				rc = EL_EINVAL;   /* a bad name in the body, not a missing resource */
			el_fail(w, rc, "nothing was requested: %s", w1.msg);
			goto out;
		}
		ars[i] = ar;
	}
	make_bundle_id(bid, sizeof(bid));
	extra = json_pack("{s:s}", "bundle", bid);
	for (i = 0; i < np; i++) {
		nn = i + 1;   /* n[i] is freed even when its preparation fails */
		if ((rc = engine_new_request_prepare(e, &n[i], &r[i], ars[i], false, start,
		    false, extra)) != EL_OK) {
			el_fail(w, rc, "cannot store the request: %s", el_strerror(rc));
			goto out;
		}
	}
	if ((rc = bundle_mails(e, p, bid, r, np, ars, &mails)) != EL_OK) {
		el_fail(w, rc, "cannot store the request: %s", el_strerror(rc));
		goto out;
	}
	ids = json_array();
	for (i = 0; i < np; i++)
		json_array_append_new(ids, json_string(r[i].id));
	data = json_pack("{s:O, s:o, s:I, s:s?, s:s?}", "profiles", profiles, "members", ids,
	    "duration", (json_int_t)r[0].duration, "reason", r[0].reason, "ticket", r[0].ticket);
	if (data != NULL && start > 0)
		json_object_set_new(data, "start_at", json_integer(start));
	if (data == NULL) {
		rc = el_fail(w, EL_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = engine_tx_begin(e)) != EL_OK) {
		el_fail(w, rc, "cannot store the request: %s", store_errmsg());
		goto out;
	}
	rc = store_bundle_insert(e->store, bid, user, now);
	if (rc == EL_OK)
		rc = engine_audit(e, user, "bundle.created", bid, data);
	for (i = 0; i < np && rc == EL_OK; i++)
		if ((rc = engine_new_request_store(e, p, user, &n[i])) == EL_OK)
			rc = store_bundle_member_insert(e->store, bid, r[i].id, (int)i);
	if (rc == EL_OK)
		rc = engine_mails_queue(e, bid, &mails);
	if ((rc = engine_new_request_end(e, rc, w)) != EL_OK)
		goto out;
	log_info("bundle %s created by %s: %zu profiles", bid, user, np);
	for (i = 0; i < np; i++)
		engine_new_request_started(e, user, &n[i]);
	if ((rc = members_load(e, p, user, bid, &m, w)) == EL_OK)
		*out = bundle_json(e, bid, &m);
out:
	for (i = 0; i < nn; i++)
		engine_new_request_free(&n[i]);
	engine_mails_free(&mails);
	members_free(&m);
	json_decref(extra);
	json_decref(data);
	policy_release(p);
	return engine_authz(e, user, "request.create", NULL, rc, w);
}

/* ---- read ---- */

enum el_err
engine_get_bundle(struct engine *e, const char *user, const char *id, json_t **out,
    struct el_why *w)
{
	struct policy *p = engine_policy(e);
	struct members m;
	enum el_err rc;

	if ((rc = members_load(e, p, user, id, &m, w)) == EL_OK) {
		*out = bundle_json(e, id, &m);
		members_free(&m);
	}
	policy_release(p);
	return engine_authz(e, user, "request.show", id, rc, w);
}

/* The member of bundle id for profile: EL_EINVAL naming the profiles otherwise. */
enum el_err
engine_bundle_member(struct engine *e, const char *user, const char *id,
    const char *profile, char *member, size_t len, struct el_why *w)
{
	struct policy *p = engine_policy(e);
	struct members m;
	char names[BUNDLE_MAX * (POLICY_NAME_MAX + 2)];
	size_t i;
	enum el_err rc;

	if ((rc = members_load(e, p, user, id, &m, w)) != EL_OK)
		goto out;
	for (i = 0; i < m.n; i++)
		if (profile != NULL && strcmp(m.r[i].profile, profile) == 0) {
			el_strlcpy(member, m.r[i].id, len);
			goto done;
		}
	profile_names(m.r, m.n, names, sizeof(names));
	if (profile == NULL)
		rc = el_fail(w, EL_EINVAL, "%s is a bundle of profiles %s: name one (elevate creds "
		    "%s --profile %s)", id, names, id, m.n > 0 ? m.r[0].profile : "P");
	else
		rc = el_fail(w, EL_EINVAL, "bundle %s has no profile %s; its profiles: %s", id,
		    profile, names);
done:
	members_free(&m);
out:
	policy_release(p);
	return rc;
}

/* ---- operations on every member ---- */

/* Every member revoked (results' ok entries) is ending: one wait for all of them, then
 * each result's request as it is now. The members end together, not one after another. */
static void
revoked_wait(struct engine *e, json_t *results)
{
	const char **ids;
	size_t i, n = 0;
	json_t *o;

	if ((ids = calloc(json_array_size(results) + 1, sizeof(*ids))) == NULL)
		return;
	json_array_foreach(results, i, o)
		if (json_is_true(json_object_get(o, "ok")))
			ids[n++] = json_string_value(json_object_get(o, "id"));
	engine_wake_reaper(e);
	engine_wait_ended(e, ids, n, 15000);
	json_array_foreach(results, i, o) {
		struct store_request r;

		if (json_is_true(json_object_get(o, "ok")) &&
		    store_request_get(e->store, json_string_value(json_object_get(o, "id")), &r)
		    == EL_OK) {
			json_object_set_new(o, "request", engine_request_json(e, &r));
			store_request_free(&r);
		}
	}
	free(ids);
}


/*
 * Runs op on each member of bundle id user may see, each in its own transaction through
 * the member's own operation. *out: {id, results: [{id, profile, ok, request | error}],
 * bundle} (the bundle as it is afterwards). Refused only when no member could be done:
 * then with the first member's refusal, prefixed by what each member said.
 */
enum el_err
engine_bundle_each(struct engine *e, const char *user, const char *id,
    enum bundle_op op, json_t *body, const char *via, json_t **out, struct el_why *w)
{
	static const char *const what[] = {
		[BOP_APPROVE] = "approved", [BOP_DENY] = "denied", [BOP_CANCEL] = "cancelled",
		[BOP_REVOKE] = "revoked", [BOP_EXTEND] = "extended",
	};
	static const char *const action[] = {
		[BOP_APPROVE] = "request.approve", [BOP_DENY] = "request.deny",
		[BOP_CANCEL] = "request.cancel", [BOP_REVOKE] = "grant.revoke",
		[BOP_EXTEND] = "request.extend",
	};
	struct policy *p = engine_policy(e);
	struct members m;
	json_t *results = NULL, *o;
	char msg[EL_WHYLEN] = "";
	enum el_err rc, first = EL_OK;
	size_t i, done = 0;

	if ((rc = members_load(e, p, user, id, &m, w)) != EL_OK) {
		policy_release(p);
		return engine_authz(e, user, action[op], id, rc, w);
	}
	results = json_array();
	for (i = 0; i < m.n; i++) {
		struct store_request *r = &m.r[i];
		struct el_why w1 = {{0}};
		json_t *res = NULL;

		if ((op == BOP_APPROVE || op == BOP_DENY) && (r->state != RS_PENDING ||
		    policy_check_approver(p, r->profile, r->requester, user, &w1) != EL_OK)) {
			/* Not this approver's to decide: left to the others, not refused. */
			if (w1.msg[0] == '\0')
				snprintf(w1.msg, sizeof(w1.msg), "request %s is %s, not pending", r->id,
				    lifecycle_state_name(r->state));
			rc = EL_EPERM;
		} else if (op == BOP_APPROVE || op == BOP_DENY)
			rc = engine_decide_as(e, user, r->id, op == BOP_APPROVE, body != NULL ?
			    jspec_str(body, "comment") : NULL, via, &res, &w1);
		else if (op == BOP_CANCEL)
			rc = engine_cancel(e, user, r->id, &res, &w1);
		else if (op == BOP_REVOKE)
			rc = engine_revoke_mark(e, user, r->id, body, &w1);   /* waited for below */
		else
			rc = engine_extend(e, user, r->id, body, &res, &w1);
		if (rc == EL_OK) {
			done++;
			o = json_pack("{s:s, s:s, s:b, s:o}", "id", r->id, "profile", r->profile,
			    "ok", 1, "request", res ? res : json_null());
		} else {
			json_decref(res);
			if (first == EL_OK)
				first = rc;
			o = json_pack("{s:s, s:s, s:b, s:{s:s}}", "id", r->id, "profile", r->profile,
			    "ok", 0, "error", "message", w1.msg);
			append(msg, sizeof(msg), msg[0] ? "; " : "");
			append(msg, sizeof(msg), r->profile);
			append(msg, sizeof(msg), ": ");
			append(msg, sizeof(msg), w1.msg);
		}
		json_array_append_new(results, o);
	}
	if (op == BOP_REVOKE && done > 0)
		revoked_wait(e, results);
	members_free(&m);
	if (done == 0) {
		json_decref(results);
		policy_release(p);
		rc = el_fail(w, first, "no member of bundle %s was %s: ", id, what[op]);
		append(w->msg, sizeof(w->msg), msg);
		/* a refusal of the bundle as a whole is audited like one of a request */
		return engine_authz(e, user, action[op], id, rc, w);
	}
	log_info("bundle %s: %zu of its members %s by %s", id, done, what[op], user);
	o = json_pack("{s:s, s:o}", "id", id, "results", results);
	if (members_load(e, p, user, id, &m, w) == EL_OK) {
		json_object_set_new(o, "bundle", bundle_json(e, id, &m));
		members_free(&m);
	}
	policy_release(p);
	*out = o;
	return EL_OK;
}
