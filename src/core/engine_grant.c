/*
 * engine_grant.c — owns minting a grant's credentials: the time-bound session policy,
 * AssumeRole (activation, extension, re-minting), the credentials encrypted at rest, and
 * the per-request claims that keep one minting at a time per grant in this process (the
 * node's lease on the request keeps the other nodes off it: engine_lease.c). Every write
 * after an AWS call reads the request afresh and is a compare-and-set through the
 * lifecycle.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "elevate/denypolicy.h"
#include "elevate/log.h"
#include "engine_int.h"

#define SESSION_POLICY_MAX 2048     /* STS: inline session policy characters */
#define STS_MIN_DURATION 900
#define CHAINED_MAX_DURATION 3600
#define ROLE_CACHE_TTL 3600
#define ACTIVATION_ATTEMPTS 8

static void set_minting(struct engine *e, const char *id, int on);

/* ---- credentials at rest ---- */

static enum el_err
encrypt_creds(struct engine *e, const struct aws_creds *c, const char *region,
    unsigned char **box, size_t *boxlen)
{
	char exp[32];
	json_t *j;
	char *plain;
	size_t n;
	unsigned char *out;

	el_format_time(c->expiration, exp, sizeof(exp));
	j = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s?}", "Version", 1, "AccessKeyId",
	    c->access_key_id, "SecretAccessKey", c->secret_access_key, "SessionToken",
	    c->session_token ? c->session_token : "", "Expiration", exp, "Region", region);
	if (j == NULL)
		return EL_ENOMEM;
	plain = json_dumps(j, JSON_COMPACT);
	json_decref(j);   /* jansson copied the secret: it is freed, not wiped; see README */
	if (plain == NULL)
		return EL_ENOMEM;
	n = strlen(plain);
	if ((out = malloc(crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + n)) == NULL) {
		sodium_memzero(plain, n);
		free(plain);
		return EL_ENOMEM;
	}
	randombytes_buf(out, crypto_secretbox_NONCEBYTES);
	crypto_secretbox_easy(out + crypto_secretbox_NONCEBYTES, (unsigned char *)plain, n, out,
	    e->box_key);
	sodium_memzero(plain, n);
	free(plain);
	*box = out;
	*boxlen = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + n;
	return EL_OK;
}

enum el_err
engine_decrypt_creds(struct engine *e, const struct store_grant *g, json_t **creds)
{
	size_t n;
	char *plain;
	json_t *j;

	if (g->creds_box == NULL ||
	    g->creds_box_len <= crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES)
		return EL_ENOENT;
	n = g->creds_box_len - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES;
	if ((plain = sodium_malloc(n + 1)) == NULL)
		return EL_ENOMEM;
	if (crypto_secretbox_open_easy((unsigned char *)plain,
	    g->creds_box + crypto_secretbox_NONCEBYTES,
	    g->creds_box_len - crypto_secretbox_NONCEBYTES, g->creds_box, e->box_key) != 0) {
		sodium_free(plain);
		return EL_ECRYPTO;
	}
	plain[n] = '\0';
	j = json_loads(plain, 0, NULL);
	sodium_free(plain);
	if (j == NULL)
		return EL_EPARSE;
	json_object_del(j, "Region");
	*creds = j;
	return EL_OK;
}

/* The grant's credentials as aws_creds (to sign its StartSession). Caller clears. */
enum el_err
engine_grant_creds(struct engine *e, const struct store_grant *g, struct aws_creds *c)
{
	json_t *j;
	int64_t exp = 0;
	enum el_err r;

	if ((r = engine_decrypt_creds(e, g, &j)) != EL_OK)
		return r;
	el_parse_time(json_string_value(json_object_get(j, "Expiration")), &exp);
	r = aws_creds_set(c, json_string_value(json_object_get(j, "AccessKeyId")),
	    json_string_value(json_object_get(j, "SecretAccessKey")),
	    json_string_value(json_object_get(j, "SessionToken")), exp, "grant");
	json_decref(j);
	return r;
}

/* ---- the time-bound session policy ---- */

/*
 * The profile's session policy (or allow-all) with DateLessThan aws:CurrentTime = end on
 * every Allow statement. Caller frees. EL_ETOOBIG with a clear message when over STS's
 * limit.
 */
static enum el_err
session_policy(const struct pol_profile *pp, int64_t end, char **out, struct el_why *w)
{
	char endtxt[32];
	json_t *doc, *stmts, *st;
	size_t i;
	char *s;

	el_format_time(end, endtxt, sizeof(endtxt));
	if (pp->session_policy != NULL)
		doc = json_deep_copy(pp->session_policy);
	else
		doc = json_pack("{s:s, s:[{s:s, s:s, s:s}]}", "Version", "2012-10-17",
		    "Statement", "Effect", "Allow", "Action", "*", "Resource", "*");
	if (doc == NULL)
		return EL_ENOMEM;
	stmts = json_object_get(doc, "Statement");
	if (json_is_object(stmts)) {
		json_t *arr = json_array();
		json_array_append(arr, stmts);
		json_object_set_new(doc, "Statement", arr);
		stmts = arr;
	}
	json_array_foreach(stmts, i, st) {
		json_t *cond, *dlt;
		const char *old;
		int64_t oldt;

		if (!json_is_string(json_object_get(st, "Effect")) ||
		    strcmp(json_string_value(json_object_get(st, "Effect")), "Allow") != 0)
			continue;
		if ((cond = json_object_get(st, "Condition")) == NULL) {
			cond = json_object();
			json_object_set_new(st, "Condition", cond);
		}
		if ((dlt = json_object_get(cond, "DateLessThan")) == NULL) {
			dlt = json_object();
			json_object_set_new(cond, "DateLessThan", dlt);
		}
		/* Keep an earlier end the profile's policy already had. */
		old = json_string_value(json_object_get(dlt, "aws:CurrentTime"));
		if (old != NULL && el_parse_time(old, &oldt) == EL_OK && oldt < end)
			continue;
		json_object_set_new(dlt, "aws:CurrentTime", json_string(endtxt));
	}
	s = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	if (s == NULL)
		return EL_ENOMEM;
	if (strlen(s) > SESSION_POLICY_MAX) {
		size_t n = strlen(s);
		free(s);
		return el_fail(w, EL_ETOOBIG, "profile %s: the session policy with its time bound "
		    "is %zu characters, over STS's limit of %d: shorten session_policy", pp->name, n,
		    SESSION_POLICY_MAX);
	}
	*out = s;
	return EL_OK;
}

/* ---- role facts ---- */

static int
role_max_session(struct engine *e, const char *role_name)
{
	struct aws_error err;
	char id[64];
	int max = 3600;
	size_t i;
	int64_t now = el_now();

	pthread_mutex_lock(&e->role_mu);
	for (i = 0; i < e->nroles; i++)
		if (strcmp(e->roles[i].name, role_name) == 0 &&
		    now - e->roles[i].fetched_at < ROLE_CACHE_TTL) {
			max = e->roles[i].max_session;
			pthread_mutex_unlock(&e->role_mu);
			return max;
		}
	pthread_mutex_unlock(&e->role_mu);
	memset(&err, 0, sizeof(err));
	if (aws_iam_get_role(e->aws, role_name, id, sizeof(id), &max, &err) != EL_OK) {
		log_warn("GetRole %s: %s %s (assuming MaxSessionDuration 3600)", role_name,
		    err.code, err.message);
		return 3600;
	}
	pthread_mutex_lock(&e->role_mu);
	for (i = 0; i < e->nroles; i++)
		if (strcmp(e->roles[i].name, role_name) == 0)
			break;
	if (i == e->nroles) {
		struct role_info *nv = realloc(e->roles, (e->nroles + 1) * sizeof(*nv));
		if (nv != NULL) {
			e->roles = nv;
			e->nroles++;
		} else
			i = SIZE_MAX;
	}
	if (i != SIZE_MAX) {
		el_strlcpy(e->roles[i].name, role_name, sizeof(e->roles[i].name));
		el_strlcpy(e->roles[i].id, id, sizeof(e->roles[i].id));
		e->roles[i].max_session = max;
		e->roles[i].fetched_at = now;
	}
	pthread_mutex_unlock(&e->role_mu);
	return max;
}

/* STS RoleSessionName: 2-64 of [\w+=,.@-], unique per grant. */
static void
session_name(const struct store_request *r, char *buf, size_t len)
{
	/* "elevate." + at most 39 of the user + "." + the 16-char id: at most 64. */
	snprintf(buf, len, "elevate.%.39s.%.16s", r->requester, r->id);
}

/*
 * AssumeRole for grant g of request r so the credentials die at `end`. Fills g (session
 * name kept if already set). On an AWS refusal fills err and returns EL_EAWS.
 */
static enum el_err
mint(struct engine *e, const struct store_request *r, int64_t end, struct store_grant *g,
    struct aws_error *err, struct el_why *w)
{
	struct policy *p = engine_policy(e);
	const struct pol_profile *pp = policy_profile(p, r->profile);
	struct aws_assume_role_in in;
	struct aws_assume_role_out out;
	struct aws_tag tags[3];
	char *pol = NULL;
	int64_t remaining, dur, cap;
	enum el_err rc;

	memset(&in, 0, sizeof(in));
	memset(&out, 0, sizeof(out));
	if (pp == NULL) {
		rc = el_fail(w, EL_ESTATE, "profile %s no longer exists in the policy", r->profile);
		el_strlcpy(err->code, "ProfileRemoved", sizeof(err->code));
		el_strlcpy(err->message, w->msg, sizeof(err->message));
		goto out;
	}
	if ((rc = session_policy(pp, end, &pol, w)) != EL_OK) {
		el_strlcpy(err->code, "SessionPolicyTooLarge", sizeof(err->code));
		el_strlcpy(err->message, w->msg, sizeof(err->message));
		goto out;
	}
	if (g->role_session_name[0] == '\0')
		session_name(r, g->role_session_name, sizeof(g->role_session_name));
	set_minting(e, r->id, 1);   /* the caller holds the claim on r->id */
	/* Credentials live at least STS's floor; the session policy ends them on time. */
	remaining = end - el_now();
	cap = pp->max_credential_duration;
	if (cap > role_max_session(e, pp->role_name))
		cap = role_max_session(e, pp->role_name);
	if (e->broker_chained && cap > CHAINED_MAX_DURATION)
		cap = CHAINED_MAX_DURATION;
	dur = remaining < STS_MIN_DURATION ? STS_MIN_DURATION : remaining;
	if (dur > cap)
		dur = cap < STS_MIN_DURATION ? STS_MIN_DURATION : cap;
	/* The revocation policy names sessions by the grant's request id and cohort tags
	 * (denypolicy.h); an extension mints with its grant's request (r is the grant). */
	tags[0].key = DENYPOLICY_TAG_ID;
	tags[0].value = r->parent_id ? r->parent_id : r->id;
	tags[1].key = "elevate:profile";
	tags[1].value = r->profile;
	tags[2].key = DENYPOLICY_TAG_COHORT;
	tags[2].value = r->cohort;
	in.role_arn = pp->role_arn;
	in.role_session_name = g->role_session_name;
	in.source_identity = r->requester;
	in.policy = pol;
	in.region = r->region;
	in.duration_seconds = (int)dur;
	in.tags = tags;
	in.ntags = r->cohort[0] != '\0' ? 3 : 2;   /* grants minted before cohorts: none */
	rc = aws_sts_assume_role(e->aws, &in, &out, err);
	set_minting(e, r->id, 0);
	if (rc != EL_OK) {
		if (err->code[0] == '\0') {
			el_strlcpy(err->code, rc == EL_ENET || rc == EL_ETIMEOUT ? "NetworkError" :
			    "ClientError", sizeof(err->code));
			if (err->message[0] == '\0')
				el_strlcpy(err->message, el_strerror(rc), sizeof(err->message));
		}
		rc = el_fail(w, EL_EAWS, "AssumeRole %s: %s: %s", pp->role_arn, err->code,
		    err->message);
		goto out;
	}
	free(g->assumed_role_arn);
	free(g->assumed_role_id);
	free(g->access_key_id);
	free(g->creds_box);
	g->creds_box = NULL;
	g->assumed_role_arn = strdup(out.assumed_role_arn);
	g->assumed_role_id = strdup(out.assumed_role_id);
	g->access_key_id = strdup(out.creds.access_key_id);
	g->creds_expire_at = out.creds.expiration;
	g->minted_at = el_now();
	el_strlcpy(err->request_id, out.request_id, sizeof(err->request_id));
	rc = encrypt_creds(e, &out.creds, r->region, &g->creds_box, &g->creds_box_len);
out:
	aws_creds_clear(&out.creds);
	free(pol);
	policy_release(p);
	return rc;
}

/* ---- claims: AWS work in flight per request ---- */

/* The claim on id, or NULL. Under act_mu. */
static struct claim *
claim_find_locked(struct engine *e, const char *id)
{
	size_t i;

	for (i = 0; i < e->nclaimed; i++)
		if (strcmp(e->claimed[i].id, id) == 0)
			return &e->claimed[i];
	return NULL;
}

/* Takes the claim on id; with wait, waits for the holder to let go. false: held elsewhere
 * (without wait) or out of memory. */
static bool
claim(struct engine *e, const char *id, bool wait)
{
	struct claim *nv;
	char *dup;

	pthread_mutex_lock(&e->act_mu);
	while (claim_find_locked(e, id) != NULL) {
		if (!wait) {
			pthread_mutex_unlock(&e->act_mu);
			return false;
		}
		pthread_cond_wait(&e->act_cv, &e->act_mu);
	}
	if ((dup = strdup(id)) == NULL ||
	    (nv = realloc(e->claimed, (e->nclaimed + 1) * sizeof(*nv))) == NULL) {
		free(dup);
		pthread_mutex_unlock(&e->act_mu);
		return false;
	}
	e->claimed = nv;
	e->claimed[e->nclaimed].id = dup;
	e->claimed[e->nclaimed++].minting = 0;
	pthread_mutex_unlock(&e->act_mu);
	return true;
}

/*
 * Marks the claimed request id as waiting for AWS to mint (on) or answered (off). A
 * revoke waits for the revocation of its grant, except while AWS mints for it: then it
 * answers at once (`ending`) and the grant ends after AWS answers. Once AWS has answered,
 * the outcome is committed within moments, so a revoke waits for it.
 */
static void
set_minting(struct engine *e, const char *id, int on)
{
	struct claim *c;

	pthread_mutex_lock(&e->act_mu);
	if ((c = claim_find_locked(e, id)) != NULL)
		c->minting = on;
	pthread_mutex_unlock(&e->act_mu);
	if (on)
		engine_ends_changed(e);   /* a revoke waiting for this grant answers now */
}

static void
release(struct engine *e, const char *id)
{
	struct claim *c;

	pthread_mutex_lock(&e->act_mu);
	if ((c = claim_find_locked(e, id)) != NULL) {
		free(c->id);
		*c = e->claimed[--e->nclaimed];
	}
	pthread_cond_broadcast(&e->act_cv);
	pthread_mutex_unlock(&e->act_mu);
}

bool
engine_in_flight(struct engine *e, const char *id)
{
	bool r;

	pthread_mutex_lock(&e->act_mu);
	r = claim_find_locked(e, id) != NULL;
	pthread_mutex_unlock(&e->act_mu);
	return r;
}

bool
engine_minting(struct engine *e, const char *id)
{
	struct claim *c;
	bool r;

	pthread_mutex_lock(&e->act_mu);
	r = (c = claim_find_locked(e, id)) != NULL && c->minting;
	pthread_mutex_unlock(&e->act_mu);
	return r;
}

/* ---- activation ---- */

/* Throttling, 5xx and network trouble outlived the client's retries: try again later
 * rather than call it a refusal. */
static bool
transient(const struct aws_error *err)
{
	/* NetworkError: mint()'s code when no AWS answer came at all */
	return aws_error_retryable(err) || strcmp(err->code, "NetworkError") == 0;
}

/*
 * Credentials minted for a request that is no longer theirs to have (revoked or ended
 * while AWS answered): the role's deny policy takes their session, until they expire or
 * `end`, their session policy's own end. Nobody was handed them; the reaper pushes the
 * entry to IAM. Inside the caller's transaction.
 */
static enum el_err
deny_minted(struct engine *e, const struct store_request *r, const struct store_grant *g,
    int64_t end)
{
	struct store_revoked rv;
	json_t *data;
	enum el_err rc;

	if (g->assumed_role_id == NULL)
		return EL_OK;
	memset(&rv, 0, sizeof(rv));
	rv.role_name = (char *)(uintptr_t)engine_role_name(r->role_arn);
	rv.userid = g->assumed_role_id;
	rv.request_id = (char *)(uintptr_t)r->id;
	rv.expires_at = g->creds_expire_at < end ? g->creds_expire_at : end;
	if ((rc = store_revoked_add(e->store, &rv)) != EL_OK)
		return rc;
	data = json_pack("{s:s, s:s?, s:s, s:I}", "state", lifecycle_state_name(r->state),
	    "access_key_id", g->access_key_id, "denied_role_session", g->assumed_role_id,
	    "until", (json_int_t)rv.expires_at);
	rc = engine_audit(e, "system", "grant.minted_after_revoke", r->id, data);
	json_decref(data);
	log_warn("request %s: credentials minted after it became %s are denied (%s)", r->id,
	    lifecycle_state_name(r->state), g->assumed_role_id);
	return rc;
}

/* Minting failed: retry a transient error while attempts last (the lease moves to the
 * retry time), else activating -> failed with AWS's reason, told to the requester. */
static enum el_err
activation_failed(struct engine *e, const char *id, const struct aws_error *err)
{
	struct store_request r;
	const char *who[1];
	json_t *data = NULL;
	enum el_err rc;

	if ((rc = engine_tx_read(e, id, &r)) != EL_OK)
		return rc;
	who[0] = r.requester;
	if (r.state == RS_ENDING) {
		/* Revoked while AWS refused: nothing was minted; the reaper ends it now. */
		r.next_attempt_at = 0;
		rc = engine_request_save(e, &r);
	} else if (r.state != RS_ACTIVATING) {
		rc = EL_OK;
	} else if (transient(err) && r.attempts < ACTIVATION_ATTEMPTS) {
		r.attempts++;
		r.next_attempt_at = el_now() + el_backoff(r.attempts, 2, 30);
		data = json_pack("{s:s, s:s, s:i, s:I}", "code", err->code, "message",
		    err->message, "attempt", r.attempts, "next_attempt_at",
		    (json_int_t)r.next_attempt_at);
		if ((rc = engine_request_save(e, &r)) == EL_OK)
			rc = engine_audit(e, "system", "grant.activation_retry", r.id, data);
		log_warn("request %s: AssumeRole %s (%s); retrying in %llds", r.id, err->code,
		    err->message, (long long)(r.next_attempt_at - el_now()));
	} else {
		r.decided_at = el_now();
		r.next_attempt_at = 0;
		free(r.failure_code);
		free(r.failure_message);
		r.failure_code = strdup(err->code);
		r.failure_message = strdup(err->message);
		data = json_pack("{s:s, s:s, s:s, s:i}", "code", err->code, "message",
		    err->message, "aws_request_id", err->request_id, "http_status",
		    err->http_status);
		if ((rc = engine_transition(e, &r, EV_FAIL, "system", data)) == EL_OK)
			rc = engine_notify(e, "failed", &r, who, 1, data);
		log_warn("request %s failed: %s: %s", r.id, err->code, err->message);
	}
	json_decref(data);
	store_request_free(&r);
	if (rc == EL_OK)
		rc = engine_lease_release(e, id);   /* a retry is any node's at its time */
	if (rc != EL_OK) {
		engine_tx_rollback(e);
		return rc;
	}
	return engine_tx_commit(e);
}

/*
 * The credentials are minted: activating -> active with the grant, in one transaction
 * that reads the request afresh. If it was revoked meanwhile (`ending`), what was minted
 * is stored so the reaper revokes it like any grant (deny entry, sessions); anything else
 * means the credentials are denied at once.
 */
static enum el_err
activation_done(struct engine *e, const char *id, const struct store_grant *g,
    int64_t start, int64_t end, const char *aws_request_id)
{
	struct store_request r;
	json_t *data;
	enum el_err rc;

	if ((rc = engine_tx_read(e, id, &r)) != EL_OK)
		return rc;
	data = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:s}", "role_arn", r.role_arn,
	    "role_session_name", g->role_session_name, "assumed_role_id",
	    g->assumed_role_id ? g->assumed_role_id : "", "access_key_id",
	    g->access_key_id ? g->access_key_id : "", "window_end", (json_int_t)end,
	    "credentials_expire_at", (json_int_t)g->creds_expire_at, "aws_request_id",
	    aws_request_id);
	r.window_start = start;
	r.window_end = end;
	r.next_attempt_at = 0;
	r.attempts = 0;
	if (r.state == RS_ACTIVATING) {
		r.decided_at = start;
		if ((rc = store_grant_put(e->store, g)) == EL_OK &&
		    (rc = engine_transition(e, &r, EV_MINTED, "system", data)) == EL_OK) {
			const char *who[1] = {r.requester};
			if ((rc = engine_notify(e, "approved", &r, who, 1, NULL)) == EL_OK)
				rc = engine_notify_others(e, &r, "approved", NULL);
		}
	} else if (r.state == RS_ENDING) {
		json_object_set_new(data, "state", json_string(lifecycle_state_name(r.state)));
		if ((rc = engine_request_save(e, &r)) == EL_OK &&
		    (rc = store_grant_put(e->store, g)) == EL_OK)
			rc = engine_audit(e, "system", "grant.minted_after_revoke", r.id, data);
		log_info("request %s: revoked while minting; the reaper takes back what was "
		    "minted", r.id);
	} else if (r.state == RS_ACTIVE) {
		/* Another minter won (the claim is per process): these credentials share the
		 * live grant's session, so denying them would end it. Never handed out. */
		log_warn("request %s: minted twice; the second credentials are dropped", r.id);
	} else
		rc = deny_minted(e, &r, g, end);
	json_decref(data);
	if (rc == EL_OK)
		rc = engine_lease_release(e, id);   /* ending: any node's reaper revokes it */
	if (rc != EL_OK) {
		engine_tx_rollback(e);
		store_request_free(&r);
		return rc;
	}
	rc = engine_tx_commit(e);
	if (rc == EL_OK && r.state == RS_ACTIVE)
		log_info("request %s active until %lld as %s", r.id, (long long)end,
		    g->assumed_role_arn ? g->assumed_role_arn : "?");
	store_request_free(&r);
	engine_wake_reaper(e);
	return rc;
}

/* Does the grant's window, ending at new_end, still fit the profile with the other
 * extensions in flight (x's own duration is among them)? Inside a transaction. */
static bool
extension_fits(struct engine *e, const struct store_request *parent,
    const struct store_request *x, int64_t new_end, char *why, size_t len)
{
	struct policy *p = engine_policy(e);
	const struct pol_profile *pp = policy_profile(p, parent->profile);
	int64_t in_flight = 0;
	bool ok;

	ok = pp != NULL && store_extensions_in_flight(e->store, parent->id, &in_flight) == EL_OK &&
	    new_end - parent->window_start + in_flight - x->duration <= pp->max_duration;
	if (!ok)
		snprintf(why, len, "the grant %s would outgrow its profile's max_duration",
		    parent->id);
	policy_release(p);
	return ok;
}

/*
 * An approved extension (x, activating; claims on x and its grant held): mints the grant's
 * credentials for the new end, then in one transaction moves the grant's window — only if
 * the grant is still active and the whole window still fits. Otherwise x fails and what
 * was minted is denied.
 */
static enum el_err
apply_extension(struct engine *e, const char *xid, const char *parent_id)
{
	struct store_request x, parent;
	struct store_grant g;
	struct aws_error err;
	struct el_why w = {{0}};
	char why[256];
	json_t *data = NULL;
	int64_t new_end;
	enum el_err rc;

	memset(&err, 0, sizeof(err));
	memset(&g, 0, sizeof(g));
	memset(&x, 0, sizeof(x));
	if ((rc = store_request_get(e->store, parent_id, &parent)) != EL_OK)
		return rc;
	if (parent.state != RS_ACTIVE || store_grant_get(e->store, parent.id, &g) != EL_OK) {
		el_strlcpy(err.code, "GrantNotActive", sizeof(err.code));
		snprintf(err.message, sizeof(err.message), "the grant %s is %s, not active",
		    parent.id, lifecycle_state_name(parent.state));
		rc = activation_failed(e, xid, &err);
		goto out_p;
	}
	new_end = parent.window_end;
	if ((rc = store_request_get(e->store, xid, &x)) != EL_OK)
		goto out_p;
	new_end += x.duration;
	if (mint(e, &parent, new_end, &g, &err, &w) != EL_OK) {
		rc = activation_failed(e, xid, &err);
		goto out_p;
	}
	store_request_free(&x);
	store_request_free(&parent);
	if ((rc = engine_tx_begin(e)) != EL_OK)
		goto out;
	if ((rc = store_request_get(e->store, xid, &x)) != EL_OK ||
	    (rc = store_request_get(e->store, parent_id, &parent)) != EL_OK)
		goto fail;
	if (x.state != RS_ACTIVATING) {
		rc = parent.state == RS_ACTIVE ? EL_OK : deny_minted(e, &parent, &g, new_end);
		goto commit;
	}
	why[0] = '\0';
	if (parent.state != RS_ACTIVE)
		snprintf(why, sizeof(why), "the grant %s became %s while the extension was being "
		    "minted", parent.id, lifecycle_state_name(parent.state));
	else if (parent.window_end + x.duration != new_end ||
	    !extension_fits(e, &parent, &x, new_end, why, sizeof(why)))
		if (why[0] == '\0')
			snprintf(why, sizeof(why), "the grant %s changed while the extension was "
			    "being minted", parent.id);
	if (why[0] != '\0') {
		const char *who[1] = {x.requester};
		free(x.failure_code);
		free(x.failure_message);
		x.failure_code = strdup(parent.state != RS_ACTIVE ? "GrantNotActive" :
		    "WindowExceeded");
		x.failure_message = strdup(why);
		x.decided_at = el_now();
		x.next_attempt_at = 0;
		data = json_pack("{s:s, s:s}", "code", x.failure_code, "message", why);
		if ((rc = engine_transition(e, &x, EV_FAIL, "system", data)) == EL_OK &&
		    (rc = engine_notify(e, "failed", &x, who, 1, data)) == EL_OK &&
		    parent.state != RS_ACTIVE)
			rc = deny_minted(e, &parent, &g, new_end);
		log_warn("extension %s failed: %s", x.id, why);
		goto commit;
	}
	data = json_pack("{s:s, s:I, s:I, s:s}", "grant", parent.id, "old_window_end",
	    (json_int_t)parent.window_end, "new_window_end", (json_int_t)new_end,
	    "aws_request_id", err.request_id);
	parent.window_end = new_end;
	parent.duration = new_end - parent.window_start;
	x.decided_at = x.window_start = x.ended_at = el_now();
	x.window_end = new_end;
	x.next_attempt_at = 0;
	if ((rc = engine_request_save(e, &parent)) != EL_OK ||
	    (rc = store_grant_put(e->store, &g)) != EL_OK ||
	    (rc = engine_audit(e, "system", "grant.extended", parent.id, data)) != EL_OK ||
	    (rc = engine_transition(e, &x, EV_APPLIED, "system", data)) != EL_OK)
		goto fail;
	{
		const char *who[1] = {x.requester};
		rc = engine_notify(e, "approved", &parent, who, 1, NULL);
	}
commit:
	if (rc == EL_OK)
		rc = engine_lease_release(e, xid);
	if (rc != EL_OK)
		goto fail;
	rc = engine_tx_commit(e);
	engine_wake_reaper(e);
	goto out;
fail:
	engine_tx_rollback(e);
out:
	json_decref(data);
	store_grant_free(&g);
	store_request_free(&x);
	store_request_free(&parent);
	return rc;
out_p:
	store_grant_free(&g);
	store_request_free(&x);
	store_request_free(&parent);
	return rc;
}

/*
 * The grant's revocation cohort, fixed before its first AssumeRole so that every session
 * it ever mints carries the same one (denypolicy.h). Without one (the store failed) the
 * grant is minted untagged: its revocation then names it by request id, never by cohort.
 */
static void
grant_cohort(struct engine *e, struct store_request *r)
{
	char fresh[DENYPOLICY_COHORT_LEN + 1];

	if (r->cohort[0] != '\0')
		return;
	el_random_id(fresh, sizeof(fresh), DENYPOLICY_COHORT_LEN);
	if (engine_tx_begin(e) != EL_OK)
		return;
	if (store_request_cohort(e->store, r->id, engine_role_name(r->role_arn), fresh,
	    r->cohort, sizeof(r->cohort)) != EL_OK) {
		engine_tx_rollback(e);
		r->cohort[0] = '\0';
	} else if (engine_tx_commit(e) != EL_OK)
		r->cohort[0] = '\0';
	if (r->cohort[0] == '\0')
		log_warn("request %s: no revocation cohort (%s): minted without one", r->id,
		    store_errmsg());
}

/*
 * A scheduled grant at its start: the policy is checked again (the requester may have
 * left the profile's requesters, the profile may be gone or shorter since the approval)
 * and its window must still be ahead. Otherwise *err says why, for activation_failed
 * (codes PolicyChanged and ScheduleMissed: not retried).
 */
static bool
scheduled_still_allowed(struct engine *e, const struct store_request *r, int64_t sched,
    struct aws_error *err)
{
	struct policy *p = engine_policy(e);
	struct el_why w = {{0}};
	int64_t dur = r->duration;
	bool ok = true;

	memset(err, 0, sizeof(*err));
	if (policy_check_request(p, r->requester, r->profile, &dur, r->reason, r->ticket, &w)
	    != EL_OK) {
		el_strlcpy(err->code, "PolicyChanged", sizeof(err->code));
		snprintf(err->message, sizeof(err->message), "at the scheduled start the policy "
		    "no longer allows this request: %.400s", w.msg);
		ok = false;
	} else if (sched + r->duration <= el_now()) {
		el_strlcpy(err->code, "ScheduleMissed", sizeof(err->code));
		snprintf(err->message, sizeof(err->message), "the scheduled window was over "
		    "before it could be activated (the broker was down?)");
		ok = false;
	}
	policy_release(p);
	if (!ok)
		log_warn("request %s: not activated at its scheduled start: %s", r->id,
		    err->message);
	return ok;
}

/* The activation of a claimed request (on its worker thread). */
static enum el_err
activate_claimed(struct engine *e, const char *id)
{
	struct store_request r;
	struct store_grant g;
	struct aws_error err;
	struct el_why w = {{0}};
	int64_t start, end, sched;
	enum el_err rc;

	memset(&g, 0, sizeof(g));
	memset(&err, 0, sizeof(err));
	if ((rc = store_request_get(e->store, id, &r)) != EL_OK)
		return rc;
	if (r.state != RS_ACTIVATING) {
		/* Done, or revoked before anything was minted: the revocation is any node's. */
		rc = engine_lease_release(e, id);
		engine_wake_reaper(e);
		goto out;
	}
	if (r.parent_id != NULL) {
		/* Mints the grant's session: one at a time with its re-minting and other
		 * extensions. */
		if (!claim(e, r.parent_id, false)) {
			/* The grant is busy minting: look again in a second, not a lease. */
			engine_retry_at(e, id, RS_ACTIVATING, el_now() + 1);
			rc = EL_OK;
			goto out;
		}
		rc = apply_extension(e, id, r.parent_id);
		release(e, r.parent_id);
		goto out;
	}
	start = el_now();
	end = start + r.duration;
	if (store_schedule_get(e->store, id, &sched) == EL_OK) {
		if (sched > start) {
			/* claimed before its time: back to waiting for it */
			engine_retry_at(e, id, RS_ACTIVATING, sched);
			rc = EL_OK;
			goto out;
		}
		if (!scheduled_still_allowed(e, &r, sched, &err)) {
			rc = activation_failed(e, id, &err);
			goto out;
		}
		end = sched + r.duration;       /* the window the approvers approved */
	}
	grant_cohort(e, &r);
	el_strlcpy(g.request_id, r.id, sizeof(g.request_id));
	if (mint(e, &r, end, &g, &err, &w) != EL_OK)
		rc = activation_failed(e, id, &err);
	else
		rc = activation_done(e, id, &g, start, end, err.request_id);
out:
	store_grant_free(&g);
	store_request_free(&r);
	return rc;
}

struct act_job {
	struct engine *e;
	char id[32];
};

static void *
activation_worker(void *arg)
{
	struct act_job *j = arg;
	struct engine *e = j->e;
	char *ids[1] = {j->id};

	/* This node's lease on it (the vote's, or a claim's) is renewed while AWS mints; the
	 * outcome's transaction lets it go. */
	engine_lease_hold(e, ids, 1);
	activate_claimed(e, j->id);
	engine_lease_unhold(e, ids, 1);
	release(e, j->id);
	free(j);
	engine_worker_done(e);
	return NULL;
}

/* Workers (activations, revocation probes) are counted so that engine_workers_wait()
 * can wait for them at stop. */
bool
engine_worker_spawn(struct engine *e, void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	pthread_t th;
	int ok;

	pthread_mutex_lock(&e->act_mu);
	e->workers++;
	pthread_mutex_unlock(&e->act_mu);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	ok = pthread_create(&th, &attr, fn, arg) == 0;
	pthread_attr_destroy(&attr);
	if (!ok)
		engine_worker_done(e);
	return ok;
}

void
engine_worker_done(struct engine *e)
{
	pthread_mutex_lock(&e->act_mu);
	e->workers--;
	pthread_cond_broadcast(&e->act_cv);
	pthread_mutex_unlock(&e->act_mu);
}

bool
engine_activate_async(struct engine *e, const char *id)
{
	struct act_job *j;
	bool ok;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return false;
	j->e = e;
	el_strlcpy(j->id, id, sizeof(j->id));
	if (!claim(e, id, false)) {
		free(j);
		return false;
	}
	if (!(ok = engine_worker_spawn(e, activation_worker, j))) {
		release(e, id);
		free(j);
	}
	return ok;
}

void
engine_workers_wait(struct engine *e)
{
	pthread_mutex_lock(&e->act_mu);
	while (e->workers > 0)
		pthread_cond_wait(&e->act_cv, &e->act_mu);
	pthread_mutex_unlock(&e->act_mu);
}

enum el_err
engine_remint_if_due(struct engine *e, const struct store_request *r)
{
	struct store_grant g;
	bool due;

	if (store_grant_get(e->store, r->id, &g) != EL_OK)
		return EL_ENOENT;
	due = g.creds_expire_at < r->window_end && g.creds_expire_at - el_now() < 300;
	store_grant_free(&g);
	return due ? engine_remint(e, r->id) : EL_OK;
}

enum el_err
engine_remint(struct engine *e, const char *id)
{
	struct store_request r;
	struct store_grant g;
	struct aws_error err;
	struct el_why w = {{0}};
	json_t *data;
	int64_t end;
	enum el_err rc;

	if (!claim(e, id, true))
		return EL_ENOMEM;
	memset(&err, 0, sizeof(err));
	memset(&g, 0, sizeof(g));
	if ((rc = store_request_get(e->store, id, &r)) != EL_OK) {
		release(e, id);
		return rc;
	}
	if (r.state != RS_ACTIVE || store_grant_get(e->store, id, &g) != EL_OK) {
		rc = EL_ESTATE;
		goto out;
	}
	/* Someone else minted while this thread waited for the claim: nothing to do. */
	if (!(g.creds_expire_at < r.window_end && g.creds_expire_at - el_now() < 300))
		goto out;
	end = r.window_end;
	if ((rc = mint(e, &r, end, &g, &err, &w)) != EL_OK) {
		log_warn("request %s: minting again failed: %s", id, w.msg);
		goto out;
	}
	store_request_free(&r);
	if ((rc = engine_tx_read(e, id, &r)) != EL_OK)
		goto out;
	if (r.state == RS_ACTIVE) {
		data = json_pack("{s:s, s:s, s:I, s:s}", "role_session_name", g.role_session_name,
		    "access_key_id", g.access_key_id ? g.access_key_id : "",
		    "credentials_expire_at", (json_int_t)g.creds_expire_at, "aws_request_id",
		    err.request_id);
		if ((rc = store_grant_put(e->store, &g)) == EL_OK)
			rc = engine_audit(e, "system", "grant.reminted", id, data);
		json_decref(data);
	} else if (r.state == RS_ENDING) {
		/* The reaper does not wait for a re-minting: it may have read the grant before
		 * these credentials. Their own entry denies them until they expire. */
		if ((rc = store_grant_put(e->store, &g)) == EL_OK)
			rc = deny_minted(e, &r, &g, end);
	} else
		rc = deny_minted(e, &r, &g, end);
	if (rc != EL_OK)
		engine_tx_rollback(e);
	else if ((rc = engine_tx_commit(e)) == EL_OK && r.state != RS_ACTIVE)
		rc = EL_ESTATE;
out:
	store_grant_free(&g);
	store_request_free(&r);
	release(e, id);
	return rc;
}

