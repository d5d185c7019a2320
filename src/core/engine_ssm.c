/*
 * engine_ssm.c — owns SSM sessions started through the broker: target and document
 * checked against the profile, StartSession with the grant's credentials, the session
 * recorded only while the grant is still active, and terminating one on request.
 */
#include <stdlib.h>
#include <string.h>

#include "elevate/jspec.h"
#include "elevate/log.h"
#include "engine_int.h"

/* ---- SSM sessions ---- */

/* In a request body, null is the same as leaving the field out. */
static const struct schema_field session_fields[] = {
	{ .key = "target", .kind = SF_STR, .required = true, .null_ok = true, .max = 64 },
	{ .key = "document", .kind = SF_STR, .null_ok = true, .max = 128 },
	{ .key = "parameters", .kind = SF_JSON, .null_ok = true, .max = 20 },
	{ .key = "reason", .kind = SF_TEXT, .null_ok = true, .max = 256 },
};
static const struct schema session_spec = SCHEMA(session_fields);

static bool
in_list(char *const *v, size_t n, const char *s)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return true;
	return false;
}

/* Is target allowed by the profile (listed id, or an instance carrying the tags)? */
static enum el_err
check_target(struct engine *e, const struct pol_profile *pp, const struct aws_creds *as,
    const char *region, const char *target, struct el_why *w)
{
	struct aws_error err;
	char **ids = NULL;
	size_t n = 0;
	bool ok;

	if (in_list(pp->ssm_targets, pp->nssm_targets, target))
		return EL_OK;
	if (pp->ssm_target_tags == NULL || json_object_size(pp->ssm_target_tags) == 0)
		return el_fail(w, EL_EPERM, "profile %s does not allow SSM sessions to %s",
		    pp->name, target);
	memset(&err, 0, sizeof(err));
	if (aws_ec2_instances_with_tags(e->aws, as, region, pp->ssm_target_tags, &ids, &n,
	    &err) != EL_OK)
		return el_fail(w, EL_EAWS, "cannot check the tags of %s: %s %s", target, err.code,
		    err.message);
	ok = in_list(ids, n, target);
	el_strv_free(ids, n);
	if (!ok)
		return el_fail(w, EL_EPERM, "profile %s does not allow SSM sessions to %s (not "
		    "listed, and its tags do not match the profile's target_tags)", pp->name, target);
	return EL_OK;
}

enum el_err
engine_start_session(struct engine *e, const char *user, const char *id, json_t *body,
    json_t **out, struct el_why *w)
{
	struct policy *p = engine_policy(e);
	const struct pol_profile *pp;
	struct store_request r;
	struct store_grant g;
	struct store_session ss;
	struct aws_creds c;
	struct aws_error err;
	const char *target, *doc;
	json_t *req = NULL, *resp = NULL, *data;
	enum el_err rc;

	memset(&r, 0, sizeof(r));
	memset(&g, 0, sizeof(g));
	memset(&c, 0, sizeof(c));
	memset(&err, 0, sizeof(err));
	if ((rc = jspec_check(body, &session_spec, w)) != EL_OK)
		goto out_p;
	if ((rc = engine_load_own(e, p, user, id, "start sessions of", &r, w)) != EL_OK)
		goto out_p;
	if (r.state != RS_ACTIVE || el_now() >= r.window_end) {
		rc = el_fail(w, EL_ESTATE, "request %s is %s: sessions start only while active",
		    id, lifecycle_state_name(r.state));
		goto out;
	}
	if ((pp = policy_profile(p, r.profile)) == NULL) {
		rc = el_fail(w, EL_ESTATE, "profile %s no longer exists", r.profile);
		goto out;
	}
	target = jspec_str(body, "target");
	doc = jspec_str(body, "document");
	if (doc == NULL && pp->nssm_documents > 0)
		doc = pp->ssm_documents[0];
	if (doc != NULL && !in_list(pp->ssm_documents, pp->nssm_documents, doc)) {
		rc = el_fail(w, EL_EPERM, "profile %s does not allow the SSM document %s", pp->name,
		    doc);
		goto out;
	}
	if ((rc = store_grant_get(e->store, id, &g)) != EL_OK ||
	    (rc = engine_grant_creds(e, &g, &c)) != EL_OK) {
		rc = el_fail(w, EL_ESTATE, "request %s has no usable credentials", id);
		goto out;
	}
	if ((rc = check_target(e, pp, &c, r.region, target, w)) != EL_OK)
		goto out;
	req = json_pack("{s:s}", "Target", target);
	if (doc != NULL)
		json_object_set_new(req, "DocumentName", json_string(doc));
	if (json_object_get(body, "parameters") != NULL) {
		const char *k;
		json_t *v, *params = json_object();
		json_object_foreach(json_object_get(body, "parameters"), k, v) {
			json_t *arr = json_is_array(v) ? json_incref(v) : json_pack("[O]", v);
			json_object_set_new(params, k, arr);
		}
		json_object_set_new(req, "Parameters", params);
	}
	json_object_set_new(req, "Reason", json_string(jspec_str(body, "reason") ?
	    jspec_str(body, "reason") : r.id));
	if ((rc = aws_ssm_start_session(e->aws, &c, r.region, req, &resp, &err)) != EL_OK) {
		rc = el_fail(w, EL_EAWS, "StartSession %s: %s: %s", target, err.code, err.message);
		goto out;
	}
	memset(&ss, 0, sizeof(ss));
	ss.session_id = (char *)(uintptr_t)json_string_value(json_object_get(resp, "SessionId"));
	ss.target = (char *)(uintptr_t)target;
	ss.document = (char *)(uintptr_t)doc;
	ss.started_at = el_now();
	if (ss.session_id == NULL) {
		rc = el_fail(w, EL_EAWS, "StartSession answered without a SessionId");
		goto out;
	}
	data = json_pack("{s:s, s:s, s:s?}", "session_id", ss.session_id, "target", target,
	    "document", doc);
	/* Recorded only while the grant is still active (read afresh): a revoke or window end
	 * that committed during StartSession may already have swept the grant's sessions. */
	if ((rc = engine_tx_begin(e)) == EL_OK) {
		struct store_request now;
		if ((rc = store_request_get(e->store, id, &now)) == EL_OK &&
		    (now.state != RS_ACTIVE || el_now() >= now.window_end))
			rc = EL_ESTATE;
		if (rc == EL_OK)
			store_request_free(&now);
		if (rc != EL_OK ||
		    (rc = store_session_insert(e->store, id, &ss)) != EL_OK ||
		    (rc = engine_audit(e, user, "session.started", id, data)) != EL_OK)
			engine_tx_rollback(e);
		else
			rc = engine_tx_commit(e);
	}
	json_decref(data);
	if (rc != EL_OK) {
		/* Unrecorded means unreapable: end it now rather than leave it open. */
		aws_ssm_terminate_session(e->aws, NULL, r.region, ss.session_id, &err);
		if (rc == EL_ESTATE)
			el_fail(w, rc, "request %s ended while the session was starting; the session "
			    "was terminated", id);
		else
			el_fail(w, rc, "cannot record the session (%s); it was terminated",
			    store_errmsg());
		goto out;
	}
	{
		char ep[512];
		if (aws_endpoint_url(e->aws, "ssm", r.region, ep, sizeof(ep), NULL) == EL_OK)
			json_object_set_new(resp, "EndpointUrl", json_string(ep));
	}
	json_object_set_new(resp, "Region", json_string(r.region));
	json_object_set(resp, "Request", req);
	*out = json_incref(resp);
out:
	json_decref(req);
	json_decref(resp);
	aws_creds_clear(&c);
	store_grant_free(&g);
	store_request_free(&r);
out_p:
	policy_release(p);
	return engine_authz(e, user, "session.start", id, rc, w);
}

enum el_err
engine_terminate_session(struct engine *e, const char *user, const char *id,
    const char *session_id, json_t **out, struct el_why *w)
{
	struct policy *p = engine_policy(e);
	struct store_request r;
	struct store_session *ss = NULL;
	struct aws_error err;
	size_t n = 0, i;
	bool found = false;
	json_t *data;
	enum el_err rc;

	if ((rc = engine_load_own(e, p, user, id, "terminate sessions of", &r, w)) != EL_OK)
		goto out_p;
	if (store_session_list(e->store, id, &ss, &n) == EL_OK) {
		for (i = 0; i < n; i++)
			if (strcmp(ss[i].session_id, session_id) == 0)
				found = true;
		store_sessions_free(ss, n);
	}
	if (!found) {
		rc = el_fail(w, EL_ENOENT, "request %s has no session %s", id, session_id);
		goto out;
	}
	memset(&err, 0, sizeof(err));
	if (aws_ssm_terminate_session(e->aws, NULL, r.region, session_id, &err) != EL_OK) {
		rc = el_fail(w, EL_EAWS, "TerminateSession %s: %s %s", session_id, err.code,
		    err.message);
		goto out;
	}
	data = json_pack("{s:s, s:s}", "session_id", session_id, "aws_request_id",
	    err.request_id);
	if ((rc = engine_tx_begin(e)) == EL_OK) {
		store_session_terminated(e->store, session_id, el_now());
		engine_audit(e, user, "session.terminated", id, data);
		rc = engine_tx_commit(e);
	}
	json_decref(data);
	*out = json_pack("{s:s, s:s}", "SessionId", session_id, "state", "terminated");
out:
	store_request_free(&r);
out_p:
	policy_release(p);
	return engine_authz(e, user, "session.terminate", id, rc, w);
}

