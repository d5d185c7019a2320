/*
 * engine_aws.c — owns what the engine does with AWS: minting a grant's credentials with
 * a time-bound session policy (activation, extension, re-minting), keeping them encrypted
 * at rest, starting SSM sessions, and the revocation steps at the end of a window.
 */
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "elevate/jspec.h"
#include "elevate/log.h"
#include "engine_int.h"

#define SESSION_POLICY_MAX 2048     /* STS: inline session policy characters */
#define IAM_INLINE_BUDGET 10240     /* IAM: all inline policies of a role, no whitespace */
#define STS_MIN_DURATION 900
#define CHAINED_MAX_DURATION 3600
#define ROLE_CACHE_TTL 3600
#define ACTIVATION_ATTEMPTS 8

static const char *role_name_of(const char *arn);

/* ---- metrics observer ---- */

const double engine_hist_bounds[ENGINE_HIST_BUCKETS] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, INFINITY,
};

void
hist_observe(struct hist *h, double seconds)
{
	int i;

	for (i = 0; i < ENGINE_HIST_BUCKETS; i++)
		if (seconds <= engine_hist_bounds[i]) {
			atomic_fetch_add(&h->bucket[i], 1);
			break;
		}
	atomic_fetch_add(&h->count, 1);
	atomic_fetch_add(&h->sum_us, (uint64_t)(seconds > 0 ? seconds * 1e6 : 0));
}

void
engine_aws_observer(void *arg, const char *service, const char *action, const char *outcome,
    double seconds)
{
	struct engine *e = arg;
	struct aws_stat *st = NULL;
	size_t i;
	int b;

	pthread_mutex_lock(&e->stat_mu);
	for (i = 0; i < e->nstats; i++)
		if (strcmp(e->stats[i].service, service) == 0 &&
		    strcmp(e->stats[i].action, action) == 0 &&
		    strcmp(e->stats[i].outcome, outcome) == 0) {
			st = &e->stats[i];
			break;
		}
	if (st == NULL && e->nstats < 512) {
		struct aws_stat *nv = realloc(e->stats, (e->nstats + 1) * sizeof(*nv));
		if (nv != NULL) {
			e->stats = nv;
			st = &e->stats[e->nstats++];
			memset(st, 0, sizeof(*st));
			el_strlcpy(st->service, service, sizeof(st->service));
			el_strlcpy(st->action, action, sizeof(st->action));
			el_strlcpy(st->outcome, outcome, sizeof(st->outcome));
		}
	}
	if (st != NULL) {
		st->count++;
		st->sum += seconds;
		for (b = 0; b < ENGINE_HIST_BUCKETS; b++)
			if (seconds <= engine_hist_bounds[b]) {
				st->bucket[b]++;
				break;
			}
	}
	pthread_mutex_unlock(&e->stat_mu);
}

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
static enum el_err
grant_creds(struct engine *e, const struct store_grant *g, struct aws_creds *c)
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
	struct aws_tag tags[2];
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
	tags[0].key = "elevate:request-id";
	tags[0].value = r->parent_id ? r->parent_id : r->id;
	tags[1].key = "elevate:profile";
	tags[1].value = r->profile;
	in.role_arn = pp->role_arn;
	in.role_session_name = g->role_session_name;
	in.source_identity = r->requester;
	in.policy = pol;
	in.region = r->region;
	in.duration_seconds = (int)dur;
	in.tags = tags;
	in.ntags = 2;
	if ((rc = aws_sts_assume_role(e->aws, &in, &out, err)) != EL_OK) {
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

static bool
claimed_locked(struct engine *e, const char *id)
{
	size_t i;

	for (i = 0; i < e->nclaimed; i++)
		if (strcmp(e->claimed[i], id) == 0)
			return true;
	return false;
}

/* Takes the claim on id; with wait, waits for the holder to let go. false: held elsewhere
 * (without wait) or out of memory. */
static bool
claim(struct engine *e, const char *id, bool wait)
{
	char **nv, *dup;

	pthread_mutex_lock(&e->act_mu);
	while (claimed_locked(e, id)) {
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
	e->claimed[e->nclaimed++] = dup;
	pthread_mutex_unlock(&e->act_mu);
	return true;
}

static void
release(struct engine *e, const char *id)
{
	size_t i;

	pthread_mutex_lock(&e->act_mu);
	for (i = 0; i < e->nclaimed; i++)
		if (strcmp(e->claimed[i], id) == 0) {
			free(e->claimed[i]);
			e->claimed[i] = e->claimed[--e->nclaimed];
			break;
		}
	pthread_cond_broadcast(&e->act_cv);
	pthread_mutex_unlock(&e->act_mu);
}

bool
engine_in_flight(struct engine *e, const char *id)
{
	bool r;

	pthread_mutex_lock(&e->act_mu);
	r = claimed_locked(e, id);
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
	rv.role_name = (char *)(uintptr_t)role_name_of(r->role_arn);
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
		r.next_attempt_at = el_now() + (r.attempts < 5 ? (1 << r.attempts) : 30);
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

/* The activation of a claimed request. */
static enum el_err
activate_claimed(struct engine *e, const char *id, bool wait)
{
	struct store_request r;
	struct store_grant g;
	struct aws_error err;
	struct el_why w = {{0}};
	int64_t start, end;
	enum el_err rc;

	memset(&g, 0, sizeof(g));
	memset(&err, 0, sizeof(err));
	if ((rc = store_request_get(e->store, id, &r)) != EL_OK)
		return rc;
	if (r.state != RS_ACTIVATING)
		goto out;   /* done, or revoked before anything was minted */
	if (r.parent_id != NULL) {
		/* Mints the grant's session: one at a time with its re-minting and other
		 * extensions. */
		if (!claim(e, r.parent_id, wait)) {
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

enum el_err
engine_activate(struct engine *e, const char *id, bool wait)
{
	enum el_err rc;

	if (!claim(e, id, wait))
		return EL_OK;   /* another thread is on it */
	rc = activate_claimed(e, id, wait);
	release(e, id);
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

	activate_claimed(e, j->id, false);
	release(e, j->id);
	free(j);
	pthread_mutex_lock(&e->act_mu);
	e->workers--;
	pthread_cond_broadcast(&e->act_cv);
	pthread_mutex_unlock(&e->act_mu);
	return NULL;
}

bool
engine_activate_async(struct engine *e, const char *id)
{
	struct act_job *j;
	pthread_attr_t attr;
	pthread_t th;
	int ok;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return false;
	j->e = e;
	el_strlcpy(j->id, id, sizeof(j->id));
	if (!claim(e, id, false)) {
		free(j);
		return false;
	}
	pthread_mutex_lock(&e->act_mu);
	e->workers++;
	pthread_mutex_unlock(&e->act_mu);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	ok = pthread_create(&th, &attr, activation_worker, j) == 0;
	pthread_attr_destroy(&attr);
	if (!ok) {
		pthread_mutex_lock(&e->act_mu);
		e->workers--;
		pthread_mutex_unlock(&e->act_mu);
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
		/* The reaper left this grant alone while it was claimed: it reads these. */
		if ((rc = store_grant_put(e->store, &g)) == EL_OK)
			rc = engine_audit(e, "system", "grant.minted_after_revoke", id, NULL);
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

/* ---- SSM sessions ---- */

static const struct jspec session_spec[] = {
	{"target", JS_STRING, true, 64, 0, 0},
	{"document", JS_STRING, false, 128, 0, 0},
	{"parameters", JS_OBJECT, false, 20, 0, 0},
	{"reason", JS_STRING, false, 256, 0, 0},
};

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
	aws_free_ids(ids, n);
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
	if ((rc = jspec_check(body, session_spec, sizeof(session_spec) / sizeof(session_spec[0]),
	    w)) != EL_OK)
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
	    (rc = grant_creds(e, &g, &c)) != EL_OK) {
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

/* ---- the end of a window ---- */

static const char *
role_name_of(const char *arn)
{
	const char *s = strrchr(arn, '/');

	return s ? s + 1 : arn;
}

/*
 * The sessions to terminate for a grant: the recorded open ones and those SSM reports
 * as Active for its role session (`active` maps owner ARN -> session ids, from one
 * DescribeSessions for the whole sweep). New array of strings.
 */
static json_t *
sessions_to_end(struct engine *e, const struct store_request *r, const struct store_grant *g,
    json_t *active)
{
	struct store_session *ss = NULL;
	size_t nss = 0, i, j;
	json_t *todo = json_array(), *v, *x;

	if (store_session_list(e->store, r->id, &ss, &nss) == EL_OK) {
		for (i = 0; i < nss; i++)
			if (ss[i].terminated_at == 0)
				json_array_append_new(todo, json_string(ss[i].session_id));
		store_sessions_free(ss, nss);
	}
	if (g->assumed_role_arn != NULL && active != NULL)
		json_array_foreach(json_object_get(active, g->assumed_role_arn), i, v) {
			int dup = 0;
			json_array_foreach(todo, j, x)
				if (json_equal(x, v))
					dup = 1;
			if (!dup)
				json_array_append(todo, v);
		}
	return todo;
}

/* One TerminateSession of a sweep; run by a small pool of threads, since real AWS takes
 * tens of milliseconds a call and a window end may close hundreds at once. */
struct term_job {
	const char *session_id;
	const char *region;
	size_t grant;              /* index into the sweep */
	enum el_err rc;
	char request_id[128];
	char error[256];
};

struct term_pool {
	struct engine *e;
	struct term_job *jobs;
	size_t njobs;
	size_t next;
	pthread_mutex_t mu;
};

#define TERM_THREADS 16

static void *
term_worker(void *arg)
{
	struct term_pool *tp = arg;

	for (;;) {
		struct term_job *j;
		struct aws_error err;

		pthread_mutex_lock(&tp->mu);
		j = tp->next < tp->njobs ? &tp->jobs[tp->next++] : NULL;
		pthread_mutex_unlock(&tp->mu);
		if (j == NULL)
			return NULL;
		memset(&err, 0, sizeof(err));
		/* The broker's own credentials: the grant's are dead by design. */
		j->rc = aws_ssm_terminate_session(tp->e->aws, NULL, j->region, j->session_id, &err);
		el_strlcpy(j->request_id, err.request_id, sizeof(j->request_id));
		if (j->rc != EL_OK) {
			snprintf(j->error, sizeof(j->error), "TerminateSession %.64s: %.64s %.100s",
			    j->session_id, err.code, err.message);
			log_warn("%s", j->error);
		}
	}
}

static void
term_run(struct engine *e, struct term_job *jobs, size_t n)
{
	struct term_pool tp;
	pthread_t th[TERM_THREADS];
	size_t i, nth = n < TERM_THREADS ? n : TERM_THREADS;

	memset(&tp, 0, sizeof(tp));
	tp.e = e;
	tp.jobs = jobs;
	tp.njobs = n;
	pthread_mutex_init(&tp.mu, NULL);
	for (i = 0; i < nth; i++)
		if (pthread_create(&th[i], NULL, term_worker, &tp) != 0)
			break;
	if (i == 0)
		term_worker(&tp);   /* no thread to be had: do it here */
	nth = i;
	for (i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_destroy(&tp.mu);
}

/* The deny policy for a role's revoked sessions still alive. Caller frees. */
static char *
deny_policy(struct store_revoked *v, size_t n)
{
	json_t *ids = json_array(), *doc;
	size_t i;
	char *s;

	for (i = 0; i < n; i++)
		json_array_append_new(ids, json_string(v[i].userid));
	doc = json_pack("{s:s, s:[{s:s, s:s, s:s, s:s, s:{s:{s:o}}}]}", "Version", "2012-10-17",
	    "Statement", "Sid", "ElevateRevokedSessions", "Effect", "Deny", "Action", "*",
	    "Resource", "*", "Condition", "StringEquals", "aws:userid", ids);
	s = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	return s;
}

/* IAM counts inline policies without whitespace. The role's other inline policies share
 * the budget: AWS then answers LimitExceeded, handled as loudly as this check. */
static size_t
nonspace_len(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		if (*s != ' ' && *s != '\n' && *s != '\t' && *s != '\r')
			n++;
	return n;
}

/*
 * One PutRolePolicy for every revoked, still-alive session of the role (entries whose
 * credentials expired on their own are pruned first). Fails loudly over budget.
 */
static enum el_err
update_deny_policy(struct engine *e, const char *role, struct aws_error *err,
    struct el_why *w)
{
	struct store_revoked *v = NULL;
	size_t n = 0;
	char *doc = NULL;
	int64_t now = el_now(), mark = 0;
	enum el_err rc;

	if (engine_tx_begin(e) == EL_OK) {
		store_revoked_prune(e->store, role, now);
		engine_tx_commit(e);
	}
	if ((rc = store_revoked_list(e->store, role, now, &v, &n, &mark)) != EL_OK)
		return el_fail(w, rc, "cannot read role %s's revoked sessions: %s", role,
		    store_errmsg());
	if (n == 0) {
		rc = aws_iam_delete_role_policy(e->aws, role, e->cfg->revoke_policy_name, err);
		if (rc == EL_ENOENT || strcmp(err->code, "NoSuchEntity") == 0)
			rc = EL_OK;
		goto out;
	}
	if ((doc = deny_policy(v, n)) == NULL) {
		rc = EL_ENOMEM;
		goto out;
	}
	if (nonspace_len(doc) > IAM_INLINE_BUDGET) {
		rc = el_fail(w, EL_ETOOBIG, "role %s: %zu revoked sessions need %zu characters of "
		    "inline policy, over IAM's %d", role, n, nonspace_len(doc), IAM_INLINE_BUDGET);
		el_strlcpy(err->code, "RevocationBudgetExceeded", sizeof(err->code));
		el_strlcpy(err->message, w->msg, sizeof(err->message));
		goto out;
	}
	rc = aws_iam_put_role_policy(e->aws, role, e->cfg->revoke_policy_name, doc, err);
	if (rc != EL_OK && strcmp(err->code, "LimitExceeded") == 0)
		/* The role's other inline policies leave too little room: as loud as our own
		 * budget check, and the grant stays `ending` until it fits. */
		rc = el_fail(w, EL_ETOOBIG, "role %s: PutRolePolicy: %s %s", role, err->code,
		    err->message);
	else if (rc != EL_OK)
		el_fail(w, EL_EAWS, "PutRolePolicy %s: %s %s", role, err->code, err->message);
out:
	/* What was listed is in IAM now; entries added since stay unsynced for the next. */
	if (rc == EL_OK && n > 0 && engine_tx_begin(e) == EL_OK) {
		if (store_revoked_synced(e->store, role, mark, el_now()) == EL_OK)
			engine_tx_commit(e);
		else
			engine_tx_rollback(e);
	}
	free(doc);
	store_revoked_free(v, n);
	return rc;
}

/* ending -> ended for every finished grant of a sweep, in one transaction: each read
 * afresh, with its audit record (the steps and AWS request ids) and the requester's mail. */
static void
mark_ended(struct engine *e, struct store_request *rs, json_t **steps, const enum el_err *st,
    size_t n)
{
	int64_t now = el_now();
	double done;
	size_t i, j;
	bool *ended;

	if ((ended = calloc(n ? n : 1, sizeof(*ended))) == NULL)
		return;
	if (engine_tx_begin(e) != EL_OK) {
		free(ended);
		return;
	}
	for (i = 0; i < n; i++) {
		struct store_request r;
		const char *who[1];
		json_t *t, *term;
		enum el_err rc;

		if (steps[i] == NULL || st[i] != EL_OK)
			continue;
		if ((rc = store_request_get(e->store, rs[i].id, &r)) != EL_OK)
			goto fail;
		if (r.state != RS_ENDING) {
			store_request_free(&r);
			continue;
		}
		term = json_object_get(steps[i], "terminated_sessions");
		json_array_foreach(term, j, t)
			store_session_terminated(e->store,
			    json_string_value(json_object_get(t, "session_id")), now);
		r.ended_at = now;
		r.next_attempt_at = 0;
		who[0] = r.requester;
		rc = engine_transition(e, &r, EV_REVOKED, "system", steps[i]);
		if (rc == EL_OK)
			rc = engine_notify(e, "ended", &r, who, 1, NULL);
		store_request_free(&r);
		if (rc != EL_OK)
			goto fail;
		ended[i] = true;
	}
	if (engine_tx_commit(e) != EL_OK) {
		free(ended);
		return;
	}
	done = (double)el_now_ms() / 1000.0;
	for (i = 0; i < n; i++)
		if (ended[i] && rs[i].window_end > 0 && done >= (double)rs[i].window_end)
			hist_observe(&e->revoke_lag, done - (double)rs[i].window_end);
	free(ended);
	return;
fail:
	engine_tx_rollback(e);
	free(ended);
}

/* A failed step: the grant stays `ending` (read afresh) and is retried with backoff. */
static void
reschedule(struct engine *e, const char *id, const char *why)
{
	struct store_request r;
	int64_t delay = 0;
	json_t *data;

	if (engine_tx_read(e, id, &r) != EL_OK)
		return;
	if (r.state != RS_ENDING) {
		engine_tx_rollback(e);
		store_request_free(&r);
		return;
	}
	r.attempts++;
	delay = r.attempts < 6 ? (1LL << r.attempts) / 2 : 30;   /* 0,1,2,4,8,16,30 s */
	if (delay < 1)
		delay = 1;
	r.next_attempt_at = el_now() + delay;
	data = json_pack("{s:s, s:i, s:I}", "error", why, "attempt", r.attempts,
	    "next_attempt_at", (json_int_t)r.next_attempt_at);
	if (engine_request_save(e, &r) != EL_OK ||
	    engine_audit(e, "system", "grant.revocation_retry", r.id, data) != EL_OK)
		engine_tx_rollback(e);
	else
		engine_tx_commit(e);
	json_decref(data);
	atomic_fetch_add(&e->revocations_failed_total, 1);
	log_warn("request %s: revocation step failed (%s); attempt %d, retrying in %llds",
	    r.id, why, r.attempts, (long long)delay);
	store_request_free(&r);
}

/* Revocation entries that IAM does not hold yet, outside any grant's sweep (credentials
 * minted after their request was revoked): one policy update per role, with backoff. */
void
engine_sync_revocations(struct engine *e, int64_t now)
{
	char **roles = NULL;
	size_t n = 0, i;
	bool failed = false;

	if (now < e->sync_next_at)
		return;
	if (store_revoked_unsynced_roles(e->store, now, &roles, &n) != EL_OK) {
		failed = true;
		n = 0;
	}
	for (i = 0; i < n; i++) {
		struct aws_error err;
		struct el_why w = {{0}};

		memset(&err, 0, sizeof(err));
		if (update_deny_policy(e, roles[i], &err, &w) != EL_OK) {
			log_warn("revocation sync of role %s: %s", roles[i], w.msg);
			failed = true;
		}
		free(roles[i]);
	}
	free(roles);
	if (failed) {
		e->sync_attempts++;
		e->sync_next_at = now + (e->sync_attempts < 5 ? (1 << e->sync_attempts) : 30);
		atomic_fetch_add(&e->revocations_failed_total, 1);
	} else {
		e->sync_attempts = 0;
		e->sync_next_at = 0;
	}
}

void
engine_end_grants(struct engine *e, char **ids, size_t n)
{
	struct store_request *rs;
	struct store_grant *gs;
	json_t **steps, *active = json_object();
	char **roles = NULL;
	size_t nroles = 0, i, j;
	enum el_err *st;

	rs = calloc(n, sizeof(*rs));
	gs = calloc(n, sizeof(*gs));
	steps = calloc(n, sizeof(*steps));
	st = calloc(n, sizeof(*st));
	roles = calloc(n, sizeof(*roles));
	if (!rs || !gs || !steps || !st || !roles || !active)
		goto out;
	for (i = 0; i < n; i++) {
		st[i] = store_request_get(e->store, ids[i], &rs[i]);
		if (st[i] != EL_OK || rs[i].state != RS_ENDING) {
			st[i] = EL_ESTATE;
			continue;
		}
		if (engine_in_flight(e, ids[i])) {
			/* Left to its minter, who wakes the reaper when done; looked at again in
			 * a second at the latest. */
			st[i] = EL_ESTATE;
			engine_retry_at(e, ids[i], RS_ENDING, el_now() + 1);
			continue;
		}
		steps[i] = json_pack("{s:[], s:b}", "terminated_sessions", "early",
		    el_now() < rs[i].window_end);
		if (store_grant_get(e->store, ids[i], &gs[i]) != EL_OK)
			memset(&gs[i], 0, sizeof(gs[i]));   /* never minted: nothing to take back */
	}
	/* 1. sessions: one DescribeSessions per region for the whole sweep */
	for (i = 0; i < n; i++) {
		struct aws_error err;
		json_t *sessions = NULL;

		if (steps[i] == NULL || gs[i].assumed_role_arn == NULL ||
		    json_object_get(active, rs[i].region) != NULL)
			continue;
		memset(&err, 0, sizeof(err));
		if (aws_ssm_active_sessions_by_owner(e->aws, NULL, rs[i].region, &sessions, &err)
		    != EL_OK) {
			log_warn("DescribeSessions in %s: %s %s", rs[i].region, err.code, err.message);
			for (j = i; j < n; j++)
				if (steps[j] != NULL && strcmp(rs[j].region, rs[i].region) == 0) {
					st[j] = EL_EAWS;
					json_object_set_new(steps[j], "error", json_pack("s++",
					    "DescribeSessions: ", err.code, " ", err.message));
				}
			json_object_set_new(active, rs[i].region, json_object());
			continue;
		}
		json_object_set_new(active, rs[i].region, sessions);
	}
	{
		struct term_job *jobs = NULL;
		json_t **todo = calloc(n, sizeof(*todo));
		size_t njobs = 0, k;

		for (i = 0; todo != NULL && i < n; i++) {
			if (steps[i] == NULL || st[i] != EL_OK || gs[i].assumed_role_arn == NULL)
				continue;
			todo[i] = sessions_to_end(e, &rs[i], &gs[i],
			    json_object_get(active, rs[i].region));
			njobs += json_array_size(todo[i]);
		}
		if (njobs > 0 && (jobs = calloc(njobs, sizeof(*jobs))) != NULL) {
			json_t *v;
			njobs = 0;
			for (i = 0; i < n; i++)
				json_array_foreach(todo[i], k, v) {
					jobs[njobs].session_id = json_string_value(v);
					jobs[njobs].region = rs[i].region;
					jobs[njobs].grant = i;
					njobs++;
				}
			term_run(e, jobs, njobs);
			for (k = 0; k < njobs; k++) {
				struct term_job *jb = &jobs[k];
				if (jb->rc != EL_OK) {
					st[jb->grant] = EL_EAWS;
					json_object_set_new(steps[jb->grant], "error",
					    json_string(jb->error));
				} else
					json_array_append_new(json_object_get(steps[jb->grant],
					    "terminated_sessions"), json_pack("{s:s, s:s}", "session_id",
					    jb->session_id, "aws_request_id", jb->request_id));
			}
		} else if (njobs > 0) {
			for (i = 0; i < n; i++)
				if (todo[i] != NULL && json_array_size(todo[i]) > 0)
					st[i] = EL_ENOMEM;
		}
		free(jobs);
		for (i = 0; todo != NULL && i < n; i++)
			json_decref(todo[i]);
		free(todo);
	}
	for (i = 0; i < n; i++) {
		if (steps[i] == NULL || st[i] != EL_OK || gs[i].assumed_role_arn == NULL)
			continue;
		/* 2. early: the session policy still allows; deny the role session now */
		if (st[i] == EL_OK && el_now() < rs[i].window_end && gs[i].assumed_role_id &&
		    gs[i].creds_expire_at > el_now()) {
			struct store_revoked rv;
			const char *role = role_name_of(rs[i].role_arn);

			rv.role_name = (char *)(uintptr_t)role;
			rv.userid = gs[i].assumed_role_id;
			rv.request_id = rs[i].id;
			/* Needed only while the credentials could still work: until they expire
			 * or the window's own end, when the session policy takes over. */
			rv.expires_at = gs[i].creds_expire_at < rs[i].window_end ?
			    gs[i].creds_expire_at : rs[i].window_end;
			if (engine_tx_begin(e) == EL_OK) {
				if (store_revoked_add(e->store, &rv) == EL_OK)
					engine_tx_commit(e);
				else
					engine_tx_rollback(e);
			}
			for (j = 0; j < nroles; j++)
				if (strcmp(roles[j], role) == 0)
					break;
			if (j == nroles)
				roles[nroles++] = strdup(role);
			json_object_set_new(steps[i], "denied_role_session",
			    json_string(gs[i].assumed_role_id));
		}
	}
	/* 3. one policy update per role for all its grants revoked in this sweep */
	for (j = 0; j < nroles; j++) {
		struct aws_error err;
		struct el_why w = {{0}};
		enum el_err rc;

		memset(&err, 0, sizeof(err));
		if ((rc = update_deny_policy(e, roles[j], &err, &w)) == EL_OK) {
			for (i = 0; i < n; i++)
				if (steps[i] != NULL &&
				    json_object_get(steps[i], "denied_role_session") != NULL &&
				    strcmp(role_name_of(rs[i].role_arn), roles[j]) == 0)
					json_object_set_new(steps[i], "policy_request_id",
					    json_string(err.request_id));
			continue;
		}
		for (i = 0; i < n; i++) {
			if (st[i] != EL_OK || json_object_get(steps[i], "denied_role_session") == NULL ||
			    strcmp(role_name_of(rs[i].role_arn), roles[j]) != 0)
				continue;
			st[i] = rc;
			json_object_set_new(steps[i], "error", json_string(w.msg));
		}
		if (rc == EL_ETOOBIG && engine_tx_begin(e) == EL_OK) {
			json_t *data = json_pack("{s:s, s:s}", "role", roles[j], "error", w.msg);
			engine_audit(e, "system", "revocation.failed", NULL, data);
			engine_notify(e, "revocation_failed", NULL, NULL, 0, data);
			json_decref(data);
			engine_tx_commit(e);
			log_err("%s", w.msg);
		}
	}
	/* 4. done: one transaction; the rest is retried with backoff */
	for (i = 0; i < n; i++)
		if (steps[i] != NULL && st[i] == EL_OK)
			json_object_set_new(steps[i], "attempts", json_integer(rs[i].attempts + 1));
	mark_ended(e, rs, steps, st, n);
	for (i = 0; i < n; i++) {
		json_t *er;

		if (steps[i] == NULL || st[i] == EL_OK)
			continue;
		er = json_object_get(steps[i], "error");
		reschedule(e, rs[i].id, er ? json_string_value(er) : el_strerror(st[i]));
	}
out:
	for (i = 0; rs && gs && i < n; i++) {
		store_request_free(&rs[i]);
		store_grant_free(&gs[i]);
		if (steps)
			json_decref(steps[i]);
	}
	for (j = 0; j < nroles; j++)
		free(roles[j]);
	json_decref(active);
	free(roles);
	free(rs);
	free(gs);
	free(steps);
	free(st);
}
