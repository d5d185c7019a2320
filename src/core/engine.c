/*
 * engine.c — owns the request lifecycle: create, list, show, decide, cancel, revoke,
 * extend; authentication of API calls; the keys in state_dir; transactions that carry
 * their audit record. AWS work lives in engine_aws.c, timers in engine_sched.c, mail in
 * engine_mail.c, approval pages in engine_token.c.
 */
#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "elevate/jspec.h"
#include "elevate/log.h"
#include "engine_int.h"

#define REASON_MAX 1024
#define ENGINE_LOCK_WAIT_MS 10000
#define NODE_CLAIM_WAIT_MS 3000
#define COMMENT_MAX 1000
#define TICKET_MAX 128

/* ---- keys ---- */

static void
gen_sign_sk(unsigned char *sk)
{
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];

	crypto_sign_keypair(pk, sk);
}

/* Loads a raw key file of exactly len bytes, or creates it (0600) with random bytes or
 * an Ed25519 secret key, as mode says. The key lives in sodium_malloc memory. */
enum el_err
engine_load_key(const char *dir, const char *name, size_t len, enum key_mode mode,
    unsigned char **out, struct el_why *w)
{
	char path[PATH_MAX];
	char *text = NULL;
	size_t n = 0;
	struct stat st;
	unsigned char *k;
	enum el_err r;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((k = sodium_malloc(len)) == NULL)
		return EL_ENOMEM;
	r = el_read_file(path, 4096, &text, &n, NULL);
	if (r == EL_OK) {
		if (stat(path, &st) == 0 && (st.st_mode & 077) != 0) {
			sodium_memzero(text, n);
			free(text);
			sodium_free(k);
			return el_fail(w, EL_ECONFIG, "%s is readable by others: chmod 600 %s",
			    path, path);
		}
		if (n != len) {
			sodium_memzero(text, n);
			free(text);
			sodium_free(k);
			return el_fail(w, EL_ECONFIG, "%s: expected %zu bytes, found %zu", path, len, n);
		}
		memcpy(k, text, len);
		sodium_memzero(text, n);
		free(text);
	} else if (r == EL_ENOENT && mode == KEY_MUST_EXIST) {
		sodium_free(k);
		return el_fail(w, r, "%s is missing", path);
	} else if (r == EL_ENOENT) {
		if (mode == KEY_NEW_SIGN)
			gen_sign_sk(k);
		else
			randombytes_buf(k, len);
		if ((r = el_write_file(path, k, len, 0600, w)) != EL_OK) {
			sodium_free(k);
			return r;
		}
		log_info("created %s", path);
	} else {
		sodium_free(k);
		return el_fail(w, r, "cannot read %s", path);
	}
	*out = k;
	return EL_OK;
}


/* ---- open / close ---- */

struct policy *
engine_policy(struct engine *e)
{
	struct policy *p;

	pthread_mutex_lock(&e->policy_mu);
	p = e->policy;
	policy_retain(p);
	pthread_mutex_unlock(&e->policy_mu);
	return p;
}

enum el_err
engine_reload_policy(struct engine *e, struct diags *d)
{
	struct policy *np = NULL, *old;
	enum el_err r;

	if ((r = policy_load_dir(e->cfg->policies, &np, d)) != EL_OK)
		return r;
	pthread_mutex_lock(&e->policy_mu);
	old = e->policy;
	e->policy = np;
	pthread_mutex_unlock(&e->policy_mu);
	if (old != NULL)
		policy_release(old);
	return EL_OK;
}

/* The node's name on the store (store_claim_node). A predecessor of the same name killed
 * a moment ago holds it until the server notices its connection is gone: waited for a
 * little, like the state_dir's lock. */
static enum el_err
claim_node(struct engine *e, struct el_why *w)
{
	enum el_err r;
	int waited;

	for (waited = 0; (r = store_claim_node(e->store, engine_node(e), w)) == EL_EEXIST &&
	    waited < NODE_CLAIM_WAIT_MS; waited += 100)
		usleep(100 * 1000);
	return r;
}

enum el_err
engine_open(const struct config *cfg, struct engine **out, struct el_why *w)
{
	struct engine *e;
	struct diags d;
	struct aws_config ac;
	enum el_err r;

	if ((e = calloc(1, sizeof(*e))) == NULL)
		return EL_ENOMEM;
	e->cfg = cfg;
	e->lock_fd = -1;
	e->opened_at = el_now();
	pthread_mutex_init(&e->policy_mu, NULL);
	pthread_mutex_init(&e->wake_mu, NULL);
	pthread_cond_init(&e->wake_cv, NULL);
	pthread_cond_init(&e->mail_cv, NULL);
	pthread_mutex_init(&e->act_mu, NULL);
	pthread_cond_init(&e->act_cv, NULL);
	pthread_mutex_init(&e->end_mu, NULL);
	pthread_mutex_init(&e->lease_mu, NULL);
	{
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&e->end_cv, &ca);
		pthread_cond_init(&e->lease_cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	pthread_mutex_init(&e->export_mu, NULL);
	pthread_mutex_init(&e->ckpt_mu, NULL);
	pthread_cond_init(&e->audit_cv, NULL);
	pthread_cond_init(&e->anchor_cv, NULL);
	e->aout.fd = -1;
	e->syslog_fd = -1;
	e->syslog_ok = 1;
	pthread_mutex_init(&e->role_mu, NULL);
	pthread_mutex_init(&e->stat_mu, NULL);
	pthread_mutex_init(&e->refuse_mu, NULL);
	diags_init(&d);

	if (el_mkdirs(cfg->state_dir, 0700) != EL_OK) {
		r = el_fail(w, EL_EIO, "cannot create state_dir %s: %s", cfg->state_dir,
		    strerror(errno));
		goto fail;
	}
	chmod(cfg->state_dir, 0700);
	if ((r = store_open_config(cfg, &e->store, w)) != EL_OK)
		goto fail;
	if ((r = engine_lock_state(cfg->state_dir, ENGINE_LOCK_WAIT_MS, &e->lock_fd,
	    w)) != EL_OK)
		goto fail;
	if ((r = claim_node(e, w)) != EL_OK)
		goto fail;
	if ((r = engine_audit_key_open(e, w)) != EL_OK)
		goto fail;
	if ((r = engine_load_key(cfg->state_dir, "secret.key", crypto_secretbox_KEYBYTES,
	    KEY_NEW_RANDOM, &e->box_key, w)) != EL_OK)
		goto fail;
	if ((r = token_key_load_or_create(cfg->state_dir, &e->token_key, w)) != EL_OK)
		goto fail;
	if ((r = policy_load_dir(cfg->policies, &e->policy, &d)) != EL_OK) {
		el_fail(w, EL_ECONFIG, "policies in %s are invalid (%zu problem%s; run elevated "
		    "check): %s%s%s", cfg->policies, d.n, d.n == 1 ? "" : "s",
		    d.n ? (d.v[0].path ? d.v[0].path : "") : "", d.n ? ": " : "",
		    d.n ? d.v[0].msg : "");
		r = EL_ECONFIG;
		goto fail;
	}
	if ((r = template_set_load(cfg->templates, &e->templates, &d)) != EL_OK) {
		el_fail(w, EL_ECONFIG, "templates in %s are invalid (run elevated check)%s%s",
		    cfg->templates, d.n ? ": " : "", d.n ? d.v[0].msg : "");
		r = EL_ECONFIG;
		goto fail;
	}
	memset(&ac, 0, sizeof(ac));
	ac.region = cfg->aws_region;
	ac.endpoint_all = cfg->aws_endpoint;
	ac.endpoint_sts = cfg->aws_endpoint_sts;
	ac.endpoint_iam = cfg->aws_endpoint_iam;
	ac.endpoint_ssm = cfg->aws_endpoint_ssm;
	ac.endpoint_ec2 = cfg->aws_endpoint_ec2;
	ac.endpoint_s3 = cfg->aws_endpoint_s3;
	ac.endpoint_signin = cfg->aws_endpoint_signin;
	ac.ca_file = cfg->aws_ca_file;
	ac.max_attempts = (int)cfg->aws_max_attempts;
	ac.timeout_ms = (long)cfg->aws_timeout * 1000;
	if ((r = aws_client_new(&ac, &e->aws, w)) != EL_OK)
		goto fail;
	aws_client_set_observer(e->aws, engine_aws_observer, e);
	if ((r = engine_webhooks_open(e, w)) != EL_OK)
		goto fail;
	if ((r = engine_refusals_open(e)) != EL_OK) {
		el_fail(w, r, "cannot set up the per-address refusal throttle");
		goto fail;
	}
	diags_free(&d);
	*out = e;
	return EL_OK;
fail:
	diags_free(&d);
	engine_close(e);
	return r;
}

void
engine_close(struct engine *e)
{
	size_t i;

	if (e == NULL)
		return;
	engine_stop(e);
	if (e->store != NULL && e->audit_sk != NULL)
		engine_audit_close(e);
	else
		engine_audit_stop(e);
	free(e->anchor_doc);
	engine_refusals_close(e);
	engine_webhooks_close(e);
	aws_client_free(e->aws);
	template_set_free(e->templates);
	if (e->policy != NULL)
		policy_release(e->policy);
	token_key_free(e->token_key);
	if (e->audit_sk)
		sodium_free(e->audit_sk);
	if (e->audit_pk)
		sodium_free(e->audit_pk);
	if (e->box_key)
		sodium_free(e->box_key);
	store_close(e->store);
	if (e->lock_fd >= 0)
		close(e->lock_fd);
	for (i = 0; i < e->nclaimed; i++)
		free(e->claimed[i].id);
	free(e->claimed);
	for (i = 0; i < e->nleased; i++)
		free(e->leased[i]);
	free(e->leased);
	free(e->roles);
	free(e->stats);
	free(e);
}

/* ---- transactions and the audit export ---- */

/* This thread appended an audit record in its transaction, or some thread appended one
 * outside any (a transaction of its own), that no commit has exported yet: only then
 * does a commit (the outermost) run the checkpoint and export, not after every one (the
 * mailer's marks, for one, write none). */
static _Thread_local bool audited;
static atomic_bool audited_alone;

enum el_err
engine_tx_begin(struct engine *e)
{
	return store_begin(e->store);
}

void
engine_tx_rollback(struct engine *e)
{
	store_rollback(e->store);
	if (!store_in_transaction(e->store))
		audited = false;
}

enum el_err
engine_tx_commit(struct engine *e)
{
	enum el_err r;

	r = store_commit(e->store);
	if (r != EL_OK) {
		if (!store_in_transaction(e->store))
			audited = false;   /* rolled back: nothing to export */
		return r;
	}
	if (!store_in_transaction(e->store)) {
		bool mine = audited;

		audited = false;
		if (atomic_exchange(&audited_alone, false) || mine)
			engine_audit_committed(e);
	}
	/* Any transaction may have queued mail (the outbox is written with the event). A
	 * wake before the mailer runs is harmless: it looks at the outbox when it starts. */
	engine_wake_mailer(e);
	engine_webhooks_committed(e);
	return EL_OK;
}

enum el_err
engine_audit(struct engine *e, const char *actor, const char *event, const char *request_id,
    json_t *data)
{
	struct el_why w = {{0}};
	bool alone = !store_in_transaction(e->store);
	enum el_err r;

	if ((r = audit_append(e->store, actor, event, request_id, data, &w)) != EL_OK)
		log_err("audit %s: %s", event, w.msg);
	else if ((r = engine_webhook_queue(e, actor, event, request_id, data)) != EL_OK)
		log_err("webhook deliveries of %s: %s", event, r == EL_EDB ? store_errmsg() :
		    el_strerror(r));
	else if (alone)
		atomic_store(&audited_alone, true);
	else
		audited = true;
	return r;
}

enum el_err
engine_transition(struct engine *e, struct store_request *r, enum req_event ev,
    const char *actor, json_t *data)
{
	const struct lifecycle_transition *t = lifecycle_find(r->state, ev);
	enum req_state from = r->state;
	json_t *rec;
	enum el_err rc;

	if (t == NULL)
		return EL_ESTATE;
	r->state = t->to;
	if ((rc = store_request_cas(e->store, r, from)) != EL_OK) {
		r->state = from;
		return rc;
	}
	if ((rec = json_is_object(data) ? json_copy(data) : json_object()) == NULL) {
		r->state = from;
		return EL_ENOMEM;
	}
	json_object_set_new(rec, "from", json_string(lifecycle_state_name(from)));
	json_object_set_new(rec, "to", json_string(lifecycle_state_name(t->to)));
	if ((rc = engine_audit(e, actor, t->audit_event, r->id, rec)) != EL_OK)
		r->state = from;
	json_decref(rec);
	return rc;
}

enum el_err
engine_request_save(struct engine *e, const struct store_request *r)
{
	return store_request_cas(e->store, r, r->state);
}

enum el_err
engine_tx_read(struct engine *e, const char *id, struct store_request *r)
{
	enum el_err rc;

	if ((rc = engine_tx_begin(e)) != EL_OK)
		return rc;
	if ((rc = store_request_get(e->store, id, r)) != EL_OK)
		engine_tx_rollback(e);
	return rc;
}

void
engine_retry_at(struct engine *e, const char *id, enum req_state state, int64_t at)
{
	struct store_request r;

	if (engine_tx_read(e, id, &r) != EL_OK)
		return;
	r.next_attempt_at = at;
	if (r.state != state || engine_request_save(e, &r) != EL_OK ||
	    engine_lease_release(e, id) != EL_OK)
		engine_tx_rollback(e);
	else
		engine_tx_commit(e);
	store_request_free(&r);
}

void
engine_wake_reaper(struct engine *e)
{
	pthread_mutex_lock(&e->wake_mu);
	e->wake = 1;
	pthread_cond_broadcast(&e->wake_cv);
	pthread_mutex_unlock(&e->wake_mu);
}

void
engine_wake_reaper_for(struct engine *e, int64_t due)
{
	pthread_mutex_lock(&e->wake_mu);
	/* Sleeping until then or sooner, it will find the new work when it looks. */
	if (e->reaper_until == 0 || e->reaper_until > due * 1000) {   /* ms against s */
		e->wake = 1;
		pthread_cond_broadcast(&e->wake_cv);
	}
	pthread_mutex_unlock(&e->wake_mu);
}

void
engine_wake_mailer(struct engine *e)
{
	pthread_mutex_lock(&e->wake_mu);
	e->mail_wake = 1;
	pthread_cond_broadcast(&e->mail_cv);
	pthread_mutex_unlock(&e->wake_mu);
}

/* ---- start / stop ---- */

enum el_err
engine_start(struct engine *e)
{
	enum el_err r;

	if ((r = engine_audit_start(e)) != EL_OK)
		return r;
	if (store_checkpointer_start(e->store) != EL_OK)
		log_warn("store: no checkpointer (%s): commits checkpoint the WAL themselves",
		    store_errmsg());
	if (engine_tx_begin(e) == EL_OK) {
		engine_audit(e, "system", "daemon.started", NULL, NULL);
		engine_tx_commit(e);
	}
	if ((r = engine_leases_start(e)) != EL_OK)
		return r;
	if ((r = engine_resume(e)) != EL_OK)
		log_warn("resume: %s (will retry)", el_strerror(r));
	if (pthread_create(&e->reaper, NULL, engine_reaper_main, e) != 0)
		return EL_ENOMEM;
	e->reaper_started = 1;
	if (pthread_create(&e->mailer, NULL, engine_mailer_main, e) != 0) {
		engine_stop(e);   /* joins the reaper: no thread outlives a failed start */
		return EL_ENOMEM;
	}
	e->mailer_started = 1;
	if ((r = engine_webhooks_start(e)) != EL_OK) {
		engine_stop(e);
		return r;
	}
	return EL_OK;
}

void
engine_stop(struct engine *e)
{
	int was_running = e->reaper_started || e->mailer_started;

	pthread_mutex_lock(&e->wake_mu);
	e->stopping = 1;
	pthread_cond_broadcast(&e->wake_cv);
	pthread_cond_broadcast(&e->mail_cv);
	pthread_mutex_unlock(&e->wake_mu);
	if (e->reaper_started)
		pthread_join(e->reaper, NULL);
	if (e->mailer_started)
		pthread_join(e->mailer, NULL);
	e->reaper_started = e->mailer_started = 0;
	engine_webhooks_stop(e);
	engine_workers_wait(e);
	engine_leases_stop(e);
	/* What was counted and not yet summarised is not lost on a clean stop. */
	if (was_running)
		engine_refusals_flush(e, el_now(), true);
	if (was_running && engine_tx_begin(e) == EL_OK) {
		engine_audit(e, "system", "daemon.stopped", NULL, NULL);
		engine_tx_commit(e);
	}
	engine_audit_stop(e);
}

/* ---- authentication ---- */

enum el_err
engine_authenticate(struct engine *e, const struct reqsig_fields *f, const char *signature,
    const char *peer, const char **code, struct el_why *w)
{
	struct policy *p = engine_policy(e);
	const struct pol_user *u;
	int64_t t, now = el_now();
	size_t i;
	enum el_err r = EL_EAUTH;
	json_t *data;

	*code = "bad_signature";
	if (f->user == NULL || (u = policy_user(p, f->user)) == NULL) {
		*code = "unknown_user";
		el_fail(w, EL_EAUTH, "unknown user: add the user and key to the policy");
		goto refuse;
	}
	if (f->date == NULL || el_parse_time(f->date, &t) != EL_OK) {
		el_fail(w, EL_EAUTH, "missing or malformed X-Elevate-Date");
		goto refuse;
	}
	if (t > now + REQSIG_MAX_SKEW || t < now - REQSIG_MAX_SKEW) {
		*code = "clock_skew";
		el_fail(w, EL_EAUTH, "request date %s is more than %d s from the broker's clock: "
		    "check the client's clock", f->date, REQSIG_MAX_SKEW);
		goto refuse;
	}
	if (f->nonce == NULL || strlen(f->nonce) < 16 || strlen(f->nonce) > 64) {
		el_fail(w, EL_EAUTH, "missing or malformed X-Elevate-Nonce");
		goto refuse;
	}
	for (i = 0; i < u->nkeys; i++)
		if (reqsig_verify(u->keys[i], f, signature) == EL_OK)
			break;
	if (i == u->nkeys) {
		el_fail(w, EL_EAUTH, "signature does not verify with any key of %s", f->user);
		goto refuse;
	}
	/* Replay: the nonce is remembered in the store, so a restart does not forget it; a
	 * store that cannot remember it refuses the call as unavailable (503), not unsigned.
	 * Nonces are committed without an fsync of their own (store_nonce_claim): a kill of the
	 * process loses none, an OS crash may lose the last ones, and those were signed before
	 * the restart, which is refused here for as long as the skew would still admit them. */
	if (t < e->opened_at) {
		*code = "signed_before_restart";
		el_fail(w, EL_EAUTH, "request date %s is before the broker's restart: sign the "
		    "request again (elevate does so by itself)", f->date);
		goto refuse;
	}
	r = store_nonce_claim(e->store, "api", f->nonce, f->user, now,
	    now - REQSIG_NONCE_TTL - REQSIG_MAX_SKEW);
	if (r == EL_OK)
		goto out;
	if (r != EL_EEXIST)
		goto unavailable;
	*code = "replayed_nonce";
	el_fail(w, EL_EAUTH, "this request was already used (replayed nonce)");
refuse:
	r = EL_EAUTH;
	atomic_fetch_add(&e->auth_refused_total, 1);
	data = json_pack("{s:s, s:s?, s:s?, s:s?}", "reason", *code, "user", f->user,
	    "method", f->method, "path", f->path_query);
	engine_refused_anon(e, "auth.refused", *code, peer, data);
	json_decref(data);
	goto out;
unavailable:
	r = el_fail(w, EL_EDB, "the broker's store is unavailable (%s): try again shortly",
	    store_errmsg());
out:
	policy_release(p);
	return r;
}

/* ---- request JSON ---- */

static json_t *
time_or_null(int64_t t)
{
	return el_time_json(t);
}

enum el_err
engine_quorum_of(const struct policy *p, const struct store_request *r,
    const struct store_approval *ap, size_t nap, bool *met, size_t *napproved,
    struct el_why *w)
{
	const char **voters;
	size_t i, nv = 0;

	*met = false;
	if ((voters = calloc(nap + 1, sizeof(*voters))) == NULL)
		return el_fail(w, EL_ENOMEM, "out of memory");
	for (i = 0; i < nap; i++)
		if (strcmp(ap[i].decision, "approve") == 0)
			voters[nv++] = ap[i].approver;
	*met = policy_quorum_met(p, r->profile, r->requester, voters, nv, w);
	if (napproved != NULL)
		*napproved = nv;
	free(voters);
	return EL_OK;
}

json_t *
engine_request_json(struct engine *e, const struct store_request *r)
{
	struct store_approval *ap = NULL;
	struct store_session *ss = NULL;
	struct store_grant g;
	size_t nap = 0, nss = 0, i;
	json_t *o, *arr, *sess;
	struct el_why w = {{0}};
	struct policy *p;
	json_t *auto_rule = NULL;
	bool met = false;

	o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s?, s:s?, s:s?, s:s?, s:o, s:o, s:o, s:o,"
	    " s:o, s:o, s:s?}", "id", r->id, "profile", r->profile, "requester", r->requester,
	    "state", lifecycle_state_name(r->state), "duration", (json_int_t)r->duration, "reason", r->reason,
	    "ticket", r->ticket, "role_arn", r->role_arn, "region", r->region,
	    "created_at", time_or_null(r->created_at),
	    "pending_until", time_or_null(r->pending_until),
	    "decided_at", time_or_null(r->decided_at),
	    "window_start", time_or_null(r->window_start),
	    "window_end", time_or_null(r->window_end), "ended_at", time_or_null(r->ended_at),
	    "extends", r->parent_id);
	if (o == NULL)
		return NULL;
	arr = json_array();
	if (store_approval_list(e->store, r->id, &ap, &nap) == EL_OK) {
		for (i = 0; i < nap; i++) {
			char at[32];
			el_format_time(ap[i].at, at, sizeof(at));
			json_array_append_new(arr, json_pack("{s:s, s:s, s:s?, s:s, s:s}",
			    "approver", ap[i].approver, "decision", ap[i].decision,
			    "comment", ap[i].comment, "at", at, "via", ap[i].via));
			if (strcmp(ap[i].via, "auto") == 0 && auto_rule == NULL)
				auto_rule = json_string(ap[i].approver + 5);   /* "auto:" */
		}
	}
	json_object_set_new(o, "approvals", arr);
	json_object_set_new(o, "auto_approved", auto_rule != NULL ? auto_rule : json_null());
	json_object_set_new(o, "break_glass", engine_glass_json(e, r->id));
	{
		char bid[32];

		/* only a bundle's member has the key: other requests answer as they did */
		if (store_bundle_of(e->store, r->id, bid, sizeof(bid)) == EL_OK)
			json_object_set_new(o, "bundle", json_string(bid));
	}
	{
		int64_t start;

		json_object_set_new(o, "scheduled_start", store_schedule_get(e->store, r->id,
		    &start) == EL_OK ? time_or_null(start) : json_null());
	}
	p = engine_policy(e);
	if (auto_rule != NULL)
		met = true;
	else
		engine_quorum_of(p, r, ap, nap, &met, NULL, &w);   /* not met: w says why */
	policy_release(p);
	json_object_set_new(o, "quorum", json_pack("{s:b, s:s?}", "met", met,
	    "missing", met ? NULL : w.msg));
	store_approvals_free(ap, nap);
	if (r->failure_code != NULL)
		json_object_set_new(o, "failure", json_pack("{s:s, s:s?}", "code", r->failure_code,
		    "message", r->failure_message));
	else
		json_object_set_new(o, "failure", json_null());
	if (store_grant_get(e->store, r->id, &g) == EL_OK) {
		json_object_set_new(o, "grant", json_pack("{s:s, s:s?, s:s?, s:o, s:s?}",
		    "role_session_name", g.role_session_name,
		    "assumed_role_arn", g.assumed_role_arn, "assumed_role_id", g.assumed_role_id,
		    "credentials_expire_at", time_or_null(g.creds_expire_at),
		    "revocation_cohort", r->cohort[0] != '\0' ? r->cohort : NULL));
		store_grant_free(&g);
	} else
		json_object_set_new(o, "grant", json_null());
	sess = json_array();
	if (store_session_list(e->store, r->id, &ss, &nss) == EL_OK) {
		for (i = 0; i < nss; i++)
			json_array_append_new(sess, json_pack("{s:s, s:s, s:s?, s:o, s:o}",
			    "session_id", ss[i].session_id, "target", ss[i].target,
			    "document", ss[i].document, "started_at", time_or_null(ss[i].started_at),
			    "terminated_at", time_or_null(ss[i].terminated_at)));
		store_sessions_free(ss, nss);
	}
	json_object_set_new(o, "sessions", sess);
	if (r->state == RS_ENDING) {
		json_object_set_new(o, "revocation", json_pack("{s:i, s:o, s:b}",
		    "attempts", r->attempts, "next_attempt_at", time_or_null(r->next_attempt_at),
		    "overdue", r->window_end > 0 && el_now() > r->window_end + 1));
	}
	return o;
}

/* ---- who may see and do what ---- */

static bool
is_admin(struct engine *e, const struct policy *p, const char *user)
{
	return e->cfg->admins != NULL && policy_principal_has(p, e->cfg->admins, user);
}

static bool
is_auditor(struct engine *e, const struct policy *p, const char *user)
{
	return e->cfg->auditors != NULL && policy_principal_has(p, e->cfg->auditors, user);
}

bool
engine_may_view(struct engine *e, const struct policy *p, const char *user,
    const struct store_request *r)
{
	const struct pol_profile *pp;
	size_t i;

	if (strcmp(r->requester, user) == 0 || is_admin(e, p, user) || is_auditor(e, p, user))
		return true;
	if ((pp = policy_profile(p, r->profile)) == NULL)
		return false;
	for (i = 0; i < pp->napprovers; i++)
		if (policy_principal_has(p, pp->approvers[i], user))
			return true;
	return false;
}

enum el_err
engine_load_visible(struct engine *e, const struct policy *p, const char *user, const char *id,
    struct store_request *r, struct el_why *w)
{
	enum el_err rc;

	if (id == NULL || strlen(id) > 31)
		return el_fail(w, EL_ENOENT, "no such request");
	if ((rc = store_request_get(e->store, id, r)) == EL_ENOENT)
		return el_fail(w, EL_ENOENT, "no request %s", id);
	if (rc != EL_OK)
		return el_fail(w, rc, "cannot read request %s: %s", id, store_errmsg());
	if (!engine_may_view(e, p, user, r)) {
		store_request_free(r);
		return el_fail(w, EL_ENOENT, "no request %s", id);
	}
	return EL_OK;
}

enum el_err
engine_load_own(struct engine *e, const struct policy *p, const char *user, const char *id,
    const char *what, struct store_request *r, struct el_why *w)
{
	enum el_err rc;

	if ((rc = engine_load_visible(e, p, user, id, r, w)) != EL_OK ||
	    strcmp(r->requester, user) == 0)
		return rc;
	rc = el_fail(w, EL_EPERM, "only the requester (%s) may %s %s", r->requester, what, id);
	store_request_free(r);
	return rc;
}

/* ---- create ---- */

/* In every request body, null is the same as leaving the field out. */
static const struct schema_field create_fields[] = {
	{ .key = "profile", .kind = SF_STR, .required = true, .null_ok = true,
	  .max = POLICY_NAME_MAX },
	{ .key = "duration", .kind = SF_DURATION, .null_ok = true, .seconds_ok = true, .min = 1,
	  .max = EL_DURATION_MAX },
	{ .key = "reason", .kind = SF_TEXT, .null_ok = true, .max = REASON_MAX },
	{ .key = "ticket", .kind = SF_TEXT, .null_ok = true, .max = TICKET_MAX },
	{ .key = "targets", .kind = SF_STRLIST, .null_ok = true, .max = 50, .item_max = 64 },
	{ .key = "break_glass", .kind = SF_BOOL, .null_ok = true },
	{ .key = "start_at", .kind = SF_STR, .null_ok = true, .max = 40 },
};
static const struct schema create_spec = SCHEMA(create_fields);

static void
make_id(char *buf, size_t len)
{
	char rnd[16];

	el_random_id(rnd, sizeof(rnd), 12);
	snprintf(buf, len, "req_%s", rnd);
}

/*
 * The auto-approval rule ar approves r, in the caller's transaction: its vote (approver
 * "auto:RULE", via "auto"), request.auto_approved naming the rule and what it checked, and
 * the quorum's transition to activating. *activate: mint after the commit.
 */
static enum el_err
auto_approve(struct engine *e, const struct policy *p, struct store_request *r,
    const struct pol_auto_rule *ar, bool *activate)
{
	struct store_approval a;
	static const char *const dn[7] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
	json_t *data, *hours = NULL;
	char from[24], to[24], days[32] = "";
	enum el_err rc;
	int d;

	memset(&a, 0, sizeof(a));
	snprintf(a.approver, sizeof(a.approver), "auto:%s", ar->name);
	el_strlcpy(a.decision, "approve", sizeof(a.decision));
	el_strlcpy(a.via, "auto", sizeof(a.via));
	a.at = el_now();
	if ((rc = store_approval_insert(e->store, r->id, &a)) != EL_OK)
		return rc;
	if (ar->tz != NULL) {
		snprintf(from, sizeof(from), "%02d:%02d", ar->from_min / 60, ar->from_min % 60);
		snprintf(to, sizeof(to), "%02d:%02d", ar->to_min / 60, ar->to_min % 60);
		for (d = 0; d < 7; d++)
			if (ar->days & (1u << d))
				snprintf(days + strlen(days), sizeof(days) - strlen(days), "%s%s",
				    days[0] != '\0' ? "," : "", dn[d]);
		hours = json_pack("{s:s, s:s, s:s, s:s}", "tz", ar->tz, "days", days,
		    "from", from, "to", to);
	}
	data = json_pack("{s:s, s:I, s:s?, s:o?}", "rule", ar->name, "max_duration",
	    (json_int_t)ar->max_duration, "ticket_pattern", ar->ticket_pattern, "hours", hours);
	rc = engine_audit(e, "system", "request.auto_approved", r->id, data);
	json_decref(data);
	if (rc != EL_OK)
		return rc;
	r->decided_at = a.at;
	atomic_fetch_add(&e->approvals_total, 1);
	return engine_quorum_reached(e, p, r, "system", activate);
}

/*
 * What a new pending request (r's strings are borrowed) needs before its transaction: the
 * data of its request.created record (extra, borrowed, merged in: a bundle's id) and the
 * approvers' mails. The mails are built outside the transaction: rendering, signing and
 * sealing them is most of a request's work, and the transaction holds the store's only
 * writer. Free with engine_new_request_free().
 */
enum el_err
engine_new_request_prepare(struct engine *e, struct engine_new_request *n,
    struct store_request *r, const struct pol_auto_rule *ar, bool glass, int64_t start_at,
    bool ask, json_t *extra)
{
	json_t *data;

	memset(n, 0, sizeof(*n));
	n->r = r;
	n->ar = ar;
	n->glass = glass;
	n->start_at = start_at;
	data = json_pack("{s:s, s:s, s:I, s:s?, s:s?, s:s?, s:s?}", "profile", r->profile,
	    "requester", r->requester, "duration", (json_int_t)r->duration, "reason", r->reason,
	    "ticket", r->ticket, "role_arn", r->role_arn, "extends", r->parent_id);
	if (data != NULL && glass)
		json_object_set_new(data, "break_glass", json_true());
	if (data != NULL && start_at > 0)
		json_object_set_new(data, "start_at", json_integer(start_at));
	if (data != NULL && ar != NULL)   /* approved in this transaction: no approver asked */
		json_object_set_new(data, "auto_rule", json_string(ar->name));
	if (data != NULL && extra != NULL)
		json_object_update(data, extra);
	if ((n->data = data) == NULL)
		return EL_ENOMEM;
	if (ask && !glass && ar == NULL)
		return engine_approver_mails(e, r, &n->mails);
	return EL_OK;
}

void
engine_new_request_free(struct engine_new_request *n)
{
	engine_mails_free(&n->mails);
	json_decref(n->data);
	n->data = NULL;
}

/* Stores n's request inside the caller's transaction: the row, its schedule, its audit
 * record, then the rule's approval, the broken glass or the approvers' mails. */
enum el_err
engine_new_request_store(struct engine *e, const struct policy *p, const char *user,
    struct engine_new_request *n)
{
	struct store_request *r = n->r;
	enum el_err rc;

	if ((rc = store_request_insert(e->store, r)) != EL_OK ||
	    (n->start_at > 0 && (rc = store_schedule_insert(e->store, r->id, n->start_at))
	    != EL_OK) ||
	    (rc = engine_audit(e, user, "request.created", r->id, n->data)) != EL_OK)
		return rc;
	if (n->glass)
		return engine_glass_begin(e, p, r, user);
	if (n->ar != NULL)
		return auto_approve(e, p, r, n->ar, &n->activate);
	return engine_mails_queue(e, r->id, &n->mails);
}

enum el_err
engine_new_request_end(struct engine *e, enum el_err rc, struct el_why *w)
{
	if (rc != EL_OK) {
		engine_tx_rollback(e);
		return el_fail(w, rc, "cannot store the request: %s", rc == EL_EDB ?
		    store_errmsg() : el_strerror(rc));
	}
	if ((rc = engine_tx_commit(e)) != EL_OK)
		el_fail(w, rc, "cannot store the request: %s", store_errmsg());
	return rc;
}

/* After n's commit: logs it, starts its minting or wakes the reaper for its deadline. */
void
engine_new_request_started(struct engine *e, const char *user, struct engine_new_request *n)
{
	struct store_request *r = n->r;
	const struct pol_auto_rule *ar = n->ar;

	if (n->glass) {
		n->activate = true;
		log_warn("request %s: %s broke the glass for %s (%llds): active without approval, "
		    "to be reviewed", r->id, user, r->profile, (long long)r->duration);
	}
	log_info("request %s created by %s for %s (%llds)%s%s%s%s", r->id, user, r->profile,
	    (long long)r->duration, r->parent_id ? ", extending " : "",
	    r->parent_id ? r->parent_id : "", ar != NULL ? ", auto-approved by rule " : "",
	    ar != NULL ? ar->name : "");
	if (n->activate && !engine_activate_async(e, r->id))
		log_warn("request %s: no worker for its activation now; a reaper resumes it "
		    "within %d ms", r->id, LEASE_MS);
	/* its pending_until (a wake per request kept the reaper sweeping under load) */
	if (n->activate)
		engine_wake_reaper(e);
	else
		engine_wake_reaper_for(e, r->pending_until);
}

/*
 * Stores a new pending request (r's strings are borrowed) with its audit record and the
 * approvers' mails, in one transaction; requests and extensions alike. With an
 * auto-approval rule ar, the rule approves it in the same transaction instead (no mail to
 * approvers), and break-glass activates it (engine_glass_begin); the minting starts after
 * the commit.
 */
static enum el_err
insert_request(struct engine *e, const char *user, struct store_request *r,
    const struct policy *p, const struct pol_auto_rule *ar, bool glass, int64_t start_at,
    struct el_why *w)
{
	struct engine_new_request n;
	enum el_err rc;

	if ((rc = engine_new_request_prepare(e, &n, r, ar, glass, start_at, true, NULL)) != EL_OK) {
		el_fail(w, rc, "cannot store the request: %s", el_strerror(rc));
		goto out;
	}
	if ((rc = engine_tx_begin(e)) != EL_OK) {
		el_fail(w, rc, "cannot store the request: %s", store_errmsg());
		goto out;
	}
	if ((rc = engine_new_request_end(e, engine_new_request_store(e, p, user, &n), w))
	    != EL_OK)
		goto out;
	engine_new_request_started(e, user, &n);
out:
	engine_new_request_free(&n);
	return rc;
}

/* A request's start_at: a time (RFC 3339, with an offset or Z) after now, within
 * SCHEDULE_MAX; *start its epoch seconds. */
static enum el_err
check_start(const char *text, bool glass, int64_t now, int64_t *start, struct el_why *w)
{
	char max[32];

	if (glass)
		return el_fail(w, EL_EINVAL, "break-glass starts now: it takes no start_at");
	if (el_parse_time_offset(text, start) != EL_OK)
		return el_fail(w, EL_EINVAL, "start_at must be a time like "
		    "2026-12-02T09:00:00+09:00 or 2026-12-02T00:00:00Z");
	if (*start <= now)
		return el_fail(w, EL_EINVAL, "start_at %s is not in the future: leave it out to "
		    "start at the approval", text);
	if (*start > now + SCHEDULE_MAX) {
		el_format_duration(SCHEDULE_MAX, max, sizeof(max));
		return el_fail(w, EL_EINVAL, "start_at is more than %s ahead", max);
	}
	return EL_OK;
}

/*
 * Checks a new request of user's for profile (body: create_spec's fields but the
 * profile) against the policy and fills r (its strings borrowed from body and p), *start
 * (0: at the approval) and *ar (the auto-approval rule that approves it, or NULL).
 */
enum el_err
engine_request_build(struct engine *e, const struct policy *p, const char *user,
    json_t *body, const char *profile, int64_t now, struct store_request *r, int64_t *start,
    const struct pol_auto_rule **ar, struct el_why *w)
{
	const struct pol_profile *pp;
	int64_t duration;
	const char *start_at;
	bool glass;
	enum el_err rc;

	memset(r, 0, sizeof(*r));
	*start = 0;
	*ar = NULL;
	duration = jspec_duration(body, "duration");
	glass = json_is_true(json_object_get(body, "break_glass"));
	if ((rc = (glass ? policy_check_glass : policy_check_request)(p, user, profile,
	    &duration, jspec_str(body, "reason"), jspec_str(body, "ticket"), w)) != EL_OK)
		return rc;
	pp = policy_profile(p, profile);
	make_id(r->id, sizeof(r->id));
	el_strlcpy(r->profile, pp->name, sizeof(r->profile));
	el_strlcpy(r->requester, user, sizeof(r->requester));
	r->state = RS_PENDING;
	r->duration = duration;
	r->reason = (char *)(uintptr_t)jspec_str(body, "reason");
	r->ticket = (char *)(uintptr_t)jspec_str(body, "ticket");
	r->role_arn = pp->role_arn;
	r->region = pp->region != NULL ? pp->region : e->cfg->aws_region;
	r->created_at = now;
	r->pending_until = now + pp->pending_ttl;
	if ((start_at = jspec_str(body, "start_at")) != NULL &&
	    (rc = check_start(start_at, glass, now, start, w)) != EL_OK)
		return rc;
	if (*start > 0)
		r->pending_until = *start;    /* approvals may come until the window starts */
	if (!glass)
		*ar = policy_auto_rule(p, pp, user, duration, r->ticket, now);
	return EL_OK;
}

enum el_err
engine_create_request(struct engine *e, const char *user, json_t *body, json_t **out,
    struct el_why *w)
{
	struct policy *p;
	struct store_request r;
	const struct pol_auto_rule *ar;
	int64_t start;
	enum el_err rc;

	if (json_is_object(body) && json_object_get(body, "profiles") != NULL)
		return engine_create_bundle(e, user, body, out, w);
	p = engine_policy(e);
	memset(&r, 0, sizeof(r));
	if ((rc = jspec_check(body, &create_spec, w)) != EL_OK ||
	    (rc = engine_request_build(e, p, user, body, jspec_str(body, "profile"), el_now(),
	    &r, &start, &ar, w)) != EL_OK)
		goto out;
	if ((rc = insert_request(e, user, &r, p, ar, json_is_true(json_object_get(body,
	    "break_glass")), start, w)) != EL_OK)
		goto out;
	*out = engine_request_json(e, &r);
out:
	policy_release(p);
	return engine_authz(e, user, "request.create", NULL, rc, w);
}

/* ---- read ---- */

enum el_err
engine_list_requests(struct engine *e, const char *user, const char *state, bool mine,
    json_t **out, struct el_why *w)
{
	struct policy *p;
	struct store_filter f;
	struct store_request *v = NULL;
	size_t n = 0, i;
	json_t *arr;
	enum el_err rc;

	memset(&f, 0, sizeof(f));
	if (state != NULL) {
		int st = lifecycle_state_parse(state);
		if (st < 0)
			return el_fail(w, EL_EINVAL, "state must be one of %s", lifecycle_state_list());
		f.by_state = true;
		f.state = (enum req_state)st;
	}
	f.requester = mine ? user : NULL;
	p = engine_policy(e);
	/* the list and what each request's JSON gathers, as one snapshot */
	store_read_begin(e->store);
	if ((rc = store_request_list(e->store, &f, &v, &n)) != EL_OK) {
		store_read_end(e->store);
		policy_release(p);
		return el_fail(w, rc, "cannot list requests: %s", store_errmsg());
	}
	arr = json_array();
	for (i = 0; i < n; i++) {
		if (engine_may_view(e, p, user, &v[i]))
			json_array_append_new(arr, engine_request_json(e, &v[i]));
		store_request_free(&v[i]);
	}
	store_read_end(e->store);
	free(v);
	policy_release(p);
	*out = json_pack("{s:o}", "requests", arr);
	return EL_OK;
}

enum el_err
engine_get_request(struct engine *e, const char *user, const char *id, json_t **out,
    struct el_why *w)
{
	struct policy *p;
	struct store_request r;
	enum el_err rc;

	if (engine_is_bundle_id(id))
		return engine_get_bundle(e, user, id, out, w);
	p = engine_policy(e);
	/* the request and what its JSON gathers (approvals, grant, schedule, bundle) as one
	 * snapshot */
	store_read_begin(e->store);
	if ((rc = engine_load_visible(e, p, user, id, &r, w)) == EL_OK) {
		*out = engine_request_json(e, &r);
		store_request_free(&r);
	}
	store_read_end(e->store);
	policy_release(p);
	return engine_authz(e, user, "request.show", id, rc, w);
}

/* ---- decide ---- */

static const struct schema_field decide_fields[] = {
	{ .key = "comment", .kind = SF_TEXT, .null_ok = true, .max = COMMENT_MAX },
};
static const struct schema decide_spec = SCHEMA(decide_fields);

/*
 * Records one decision inside a transaction the caller owns (r read in it). *activate is
 * set when this vote completed the quorum and minting should follow. Shared by CLI
 * decisions and email links.
 */
static enum el_err
record_decision(struct engine *e, const struct policy *p, struct store_request *r,
    const char *user, bool approve, const char *comment, const char *via, bool *activate,
    struct el_why *w)
{
	struct store_approval a, *ap = NULL;
	size_t nap = 0;
	json_t *data;
	enum el_err rc;
	bool met;

	*activate = false;
	/* Not pending: the review of a break-glass grant, or too late. */
	if (r->state != RS_PENDING &&
	    (rc = engine_glass_review(e, p, r, user, approve, comment, via, w)) != EL_ENOENT)
		return rc;
	if (r->state == RS_ACTIVATING)
		return el_fail(w, EL_ESTATE, "request %s is activating: it was approved and its "
		    "credentials are being minted, so it can no longer be %s; %s", r->id,
		    approve ? "approved again" : "denied", r->parent_id != NULL ?
		    "revoke its grant if access must end" : "end it with elevate revoke");
	if (r->state != RS_PENDING)
		return el_fail(w, EL_ESTATE, "request %s is %s, not pending: it was already "
		    "decided", r->id, lifecycle_state_name(r->state));
	if ((rc = policy_check_approver(p, r->profile, r->requester, user, w)) != EL_OK)
		return rc;
	memset(&a, 0, sizeof(a));
	el_strlcpy(a.approver, user, sizeof(a.approver));
	el_strlcpy(a.decision, approve ? "approve" : "deny", sizeof(a.decision));
	el_strlcpy(a.via, via, sizeof(a.via));
	a.comment = (char *)(uintptr_t)comment;
	a.at = el_now();
	if ((rc = store_approval_insert(e->store, r->id, &a)) == EL_EEXIST)
		return el_fail(w, EL_EEXIST, "%s has already decided request %s", user, r->id);
	if (rc != EL_OK)
		return el_fail(w, rc, "cannot record the decision: %s", store_errmsg());
	data = json_pack("{s:s, s:s?, s:s}", "decision", a.decision, "comment", comment, "via",
	    via);
	rc = engine_audit(e, user, approve ? "request.approval" : "request.denial", r->id, data);
	json_decref(data);
	if (rc != EL_OK)
		return rc;
	if (!approve) {
		r->decided_at = a.at;
		data = json_pack("{s:s, s:s?}", "by", user, "comment", comment);
		rc = engine_transition(e, r, EV_DENY, user, data);
		json_decref(data);
		if (rc == EL_OK) {
			const char *who[1] = {r->requester};
			json_t *extra = json_pack("{s:s, s:s?}", "denied_by", user, "comment", comment);
			rc = engine_notify(e, "denied", r, who, 1, extra);
			json_decref(extra);
			if (rc == EL_OK)
				rc = engine_notify_others(e, r, "denied", user);
		}
		atomic_fetch_add(&e->denials_total, 1);
		return rc;
	}
	atomic_fetch_add(&e->approvals_total, 1);
	if ((rc = store_approval_list(e->store, r->id, &ap, &nap)) != EL_OK)
		return rc;
	rc = engine_quorum_of(p, r, ap, nap, &met, NULL, NULL);
	store_approvals_free(ap, nap);
	if (rc != EL_OK || !met)
		return rc;
	r->decided_at = a.at;
	return engine_quorum_reached(e, p, r, user, activate);
}

/* An extension fails in the vote's transaction: its grant is gone or would outgrow. */
static enum el_err
reject_extension(struct engine *e, struct store_request *x, const char *code,
    const char *msg)
{
	const char *who[1] = {x->requester};
	json_t *data = json_pack("{s:s, s:s}", "code", code, "message", msg);
	enum el_err rc;

	free(x->failure_code);
	free(x->failure_message);
	x->failure_code = strdup(code);
	x->failure_message = strdup(msg);
	if ((rc = engine_transition(e, x, EV_FAIL, "system", data)) == EL_OK)
		rc = engine_notify(e, "failed", x, who, 1, data);
	json_decref(data);
	log_warn("extension %s failed: %s", x->id, msg);
	return rc;
}

enum el_err
engine_quorum_reached(struct engine *e, const struct policy *p, struct store_request *r,
    const char *actor, bool *activate)
{
	const struct pol_profile *pp;
	struct store_request parent;
	char msg[400], a[32], b[32];
	int64_t in_flight = 0, total, start;
	enum el_err rc;

	*activate = false;
	/* Due now: the caller's worker mints under this node's lease (taken below with the
	 * transition), which any node's reaper takes over once it runs out. */
	r->next_attempt_at = 0;
	r->attempts = 0;
	if (r->parent_id == NULL && store_schedule_get(e->store, r->id, &start) == EL_OK &&
	    start > el_now())
	{
		/* Scheduled: due at its start, when a reaper claims it; nothing mints now. */
		r->next_attempt_at = start;
		return engine_transition(e, r, EV_QUORUM, actor, NULL);
	}
	if (r->parent_id == NULL) {
		if ((rc = engine_transition(e, r, EV_QUORUM, actor, NULL)) == EL_OK &&
		    (rc = engine_lease_take(e, r->id)) == EL_OK)
			*activate = true;
		return rc;
	}
	/* An extension claims its share of the grant's window now, in this transaction: the
	 * grant must be active and the whole window, with every extension applied (already in
	 * window_end) or in flight, must fit max_duration. */
	if ((rc = store_request_get(e->store, r->parent_id, &parent)) != EL_OK)
		return rc;
	if (parent.state != RS_ACTIVE) {
		snprintf(msg, sizeof(msg), "the grant %s is %s, not active: nothing to extend",
		    parent.id, lifecycle_state_name(parent.state));
		rc = reject_extension(e, r, "GrantNotActive", msg);
		goto out;
	}
	if ((rc = store_extensions_in_flight(e->store, parent.id, &in_flight)) != EL_OK)
		goto out;
	total = parent.window_end - parent.window_start + in_flight + r->duration;
	pp = policy_profile(p, parent.profile);
	if (pp == NULL || total > pp->max_duration) {
		el_format_duration(total, a, sizeof(a));
		el_format_duration(pp ? pp->max_duration : 0, b, sizeof(b));
		snprintf(msg, sizeof(msg), "the grant %s would last %s with this and the "
		    "extensions already approved, longer than profile %s allows (%s)", parent.id,
		    a, parent.profile, pp ? b : "the profile is gone");
		rc = reject_extension(e, r, "WindowExceeded", msg);
		goto out;
	}
	if ((rc = engine_transition(e, r, EV_QUORUM, actor, NULL)) == EL_OK &&
	    (rc = engine_lease_take(e, r->id)) == EL_OK)
		*activate = true;
out:
	store_request_free(&parent);
	return rc;
}

/*
 * After a commit: answers the request as the vote left it, then, when the vote completed
 * the quorum, mints on a worker thread, so the approver's call never waits for AWS (the
 * vote and `activating` are durable already; the answer says `activating`).
 */
static enum el_err
after_decision(struct engine *e, const char *id, bool activate, json_t **out,
    struct el_why *w)
{
	struct store_request r;
	enum el_err rc = EL_OK;

	if (out != NULL) {
		if ((rc = store_request_get(e->store, id, &r)) == EL_OK) {
			*out = engine_request_json(e, &r);
			store_request_free(&r);
		} else
			el_fail(w, rc, "cannot read request %s: %s", id, store_errmsg());
	}
	/* No worker (no thread or memory): nothing is lost. The vote's transaction gave this
	 * node the activation's lease (engine_quorum_reached); when it runs out any node's
	 * reaper, which wakes for it, resumes it (activate_due), and a restart of this node
	 * resumes it at once (its own leases are let go at start). */
	if (activate && !engine_activate_async(e, id))
		log_warn("request %s: no worker for its activation now; a reaper resumes it "
		    "within %d ms", id, LEASE_MS);
	engine_wake_reaper(e);
	return rc;
}

enum el_err
engine_decide_as(struct engine *e, const char *user, const char *id, bool approve,
    const char *comment, const char *via, json_t **out, struct el_why *w)
{
	struct policy *p = engine_policy(e);
	struct store_request r;
	bool activate = false;
	enum el_err rc;

	memset(&r, 0, sizeof(r));
	if ((rc = engine_tx_begin(e)) != EL_OK) {
		el_fail(w, rc, "the store is unavailable: %s", store_errmsg());
		goto out;
	}
	if ((rc = engine_load_visible(e, p, user, id, &r, w)) != EL_OK) {
		engine_tx_rollback(e);
		goto out;
	}
	if ((rc = record_decision(e, p, &r, user, approve, comment, via, &activate, w))
	    != EL_OK) {
		engine_tx_rollback(e);
		if (rc == EL_EDB && w->msg[0] == '\0')
			el_fail(w, rc, "the store is unavailable: %s", store_errmsg());
		goto out;
	}
	if ((rc = engine_tx_commit(e)) != EL_OK) {
		el_fail(w, rc, "the decision was not recorded: %s", store_errmsg());
		goto out;
	}
	log_info("request %s: %s by %s via %s", id, approve ? "approval" : "denial", user, via);
	rc = after_decision(e, id, activate, out, w);
out:
	store_request_free(&r);
	policy_release(p);
	return engine_authz(e, user, approve ? "request.approve" : "request.deny", id, rc, w);
}

enum el_err
engine_decide(struct engine *e, const char *user, const char *id, bool approve,
    json_t *body, json_t **out, struct el_why *w)
{
	enum el_err rc;

	if (body != NULL && (rc = jspec_check(body, &decide_spec, w)) != EL_OK)
		return rc;
	if (engine_is_bundle_id(id))
		return engine_bundle_each(e, user, id, approve ? BOP_APPROVE : BOP_DENY, body,
		    "cli", out, w);
	return engine_decide_as(e, user, id, approve, body ? jspec_str(body, "comment") : NULL,
	    "cli", out, w);
}

/* ---- cancel ---- */

enum el_err
engine_cancel(struct engine *e, const char *user, const char *id, json_t **out,
    struct el_why *w)
{
	struct policy *p;
	struct store_request r;
	enum el_err rc;

	if (engine_is_bundle_id(id))
		return engine_bundle_each(e, user, id, BOP_CANCEL, NULL, NULL, out, w);
	p = engine_policy(e);
	memset(&r, 0, sizeof(r));
	if ((rc = engine_tx_begin(e)) != EL_OK) {
		el_fail(w, rc, "the store is unavailable: %s", store_errmsg());
		goto out;
	}
	if ((rc = engine_load_own(e, p, user, id, "cancel request", &r, w)) != EL_OK)
		goto fail;
	if (r.state == RS_ACTIVATING) {
		rc = el_fail(w, EL_ESTATE, "request %s is activating: it was approved and its "
		    "credentials are being minted, so it can no longer be cancelled; end it with "
		    "elevate revoke %s", id, id);
		goto fail;
	}
	r.decided_at = el_now();
	if ((rc = engine_transition(e, &r, EV_CANCEL, user, NULL)) == EL_ESTATE) {
		rc = el_fail(w, EL_ESTATE, "request %s is %s: only a pending request can be "
		    "cancelled%s", id, lifecycle_state_name(r.state), r.state == RS_ACTIVE ?
		    " (use elevate revoke to end an active grant)" : "");
		goto fail;
	}
	if (rc != EL_OK)
		goto fail;
	if ((rc = engine_tx_commit(e)) != EL_OK) {
		el_fail(w, rc, "the cancellation was not recorded: %s", store_errmsg());
		goto out;
	}
	*out = engine_request_json(e, &r);
	engine_wake_reaper(e);
	goto out;
fail:
	engine_tx_rollback(e);
	if (rc == EL_EDB && w->msg[0] == '\0')
		el_fail(w, rc, "the store is unavailable: %s", store_errmsg());
out:
	store_request_free(&r);
	policy_release(p);
	return engine_authz(e, user, "request.cancel", id, rc, w);
}

/* ---- revoke ---- */

static const struct schema_field revoke_fields[] = {
	{ .key = "reason", .kind = SF_TEXT, .null_ok = true, .max = REASON_MAX },
};
static const struct schema revoke_spec = SCHEMA(revoke_fields);

/* active or activating -> ending for one grant, inside the caller's transaction. */
static enum el_err
mark_revoked(struct engine *e, const struct policy *p, const char *user, const char *id,
    const char *reason, struct el_why *w)
{
	struct store_request r;
	json_t *data;
	enum el_err rc;
	bool allowed;

	if ((rc = engine_load_visible(e, p, user, id, &r, w)) != EL_OK)
		return rc;
	allowed = strcmp(r.requester, user) == 0 || is_admin(e, p, user) ||
	    policy_check_approver(p, r.profile, r.requester, user, NULL) == EL_OK;
	if (!allowed) {
		rc = el_fail(w, EL_EPERM, "%s may not revoke request %s: only the requester, an "
		    "approver of %s or an admin may", user, id, r.profile);
		goto out;
	}
	if (r.parent_id != NULL) {
		rc = el_fail(w, EL_ESTATE, "request %s is an extension of %s, not a grant: revoke "
		    "the grant (elevate revoke %s)", id, r.parent_id, r.parent_id);
		goto out;
	}
	r.next_attempt_at = 0;
	r.attempts = 0;
	data = json_pack("{s:s, s:s?, s:b}", "by", user, "reason", reason, "early", 1);
	rc = engine_transition(e, &r, EV_REVOKE, user, data);
	json_decref(data);
	if (rc == EL_ESTATE)
		rc = el_fail(w, EL_ESTATE, "request %s is %s: only an active grant can be "
		    "revoked%s", id, lifecycle_state_name(r.state), r.state == RS_PENDING ?
		    " (use elevate cancel or deny for a pending one)" : "");
	else if (rc == EL_OK)
		log_info("request %s: revoked early by %s", id, user);
out:
	store_request_free(&r);
	return rc;
}

/* active or activating -> ending for grant id, in a transaction of its own; refusals
 * audited. The caller wakes the reaper and waits (engine_wait_ended). */
enum el_err
engine_revoke_mark(struct engine *e, const char *user, const char *id, json_t *body,
    struct el_why *w)
{
	struct policy *p = engine_policy(e);
	enum el_err rc;

	if (body != NULL && (rc = jspec_check(body, &revoke_spec, w)) != EL_OK)
		goto out;
	if ((rc = engine_tx_begin(e)) != EL_OK) {
		el_fail(w, rc, "the store is unavailable: %s", store_errmsg());
		goto out;
	}
	if ((rc = mark_revoked(e, p, user, id, body ? jspec_str(body, "reason") : NULL, w))
	    != EL_OK) {
		engine_tx_rollback(e);
		goto out;
	}
	if ((rc = engine_tx_commit(e)) != EL_OK)
		el_fail(w, rc, "the revocation was not recorded: %s", store_errmsg());
out:
	policy_release(p);
	return rc == EL_OK ? EL_OK : engine_authz(e, user, "grant.revoke", id, rc, w);
}

enum el_err
engine_revoke(struct engine *e, const char *user, const char *id, json_t *body, json_t **out,
    struct el_why *w)
{
	struct store_request r;
	enum el_err rc;

	if (engine_is_bundle_id(id))
		return engine_bundle_each(e, user, id, BOP_REVOKE, body, NULL, out, w);
	if ((rc = engine_revoke_mark(e, user, id, body, w)) != EL_OK)
		return rc;
	/* The reaper revokes (batching every grant of a role revoked together); the answer
	 * waits for it so the caller learns whether access has ended. */
	engine_wake_reaper(e);
	engine_wait_ended(e, &id, 1, 15000);
	if (store_request_get(e->store, id, &r) == EL_OK) {
		*out = engine_request_json(e, &r);
		store_request_free(&r);
	}
	return EL_OK;
}

static const struct schema_field revoke_many_fields[] = {
	{ .key = "ids", .kind = SF_STRLIST, .required = true, .null_ok = true, .max = 1000,
	  .item_max = 31 },
	{ .key = "reason", .kind = SF_TEXT, .null_ok = true, .max = REASON_MAX },
};
static const struct schema revoke_many_spec = SCHEMA(revoke_many_fields);

/* engine_wait_ended for a JSON array of ids, with one deadline for all. */
static void
wait_all(struct engine *e, json_t *ids)
{
	const char **v;
	size_t i, n = json_array_size(ids);

	if ((v = calloc(n ? n : 1, sizeof(*v))) == NULL)
		return;   /* answered without waiting: states as they are now */
	for (i = 0; i < n; i++)
		v[i] = json_string_value(json_array_get(ids, i));
	engine_wait_ended(e, v, n, 15000);
	free(v);
}

enum el_err
engine_revoke_many(struct engine *e, const char *user, json_t *body, json_t **out,
    struct el_why *w)
{
	struct policy *p = engine_policy(e);
	json_t *ids, *v, *arr;
	const char *refused = NULL;
	size_t i;
	enum el_err rc;

	if ((rc = jspec_check(body, &revoke_many_spec, w)) != EL_OK)
		goto out;
	ids = json_object_get(body, "ids");
	if ((rc = engine_tx_begin(e)) != EL_OK)
		goto out;
	/* All or nothing: one refused id refuses the call, so nothing half-happens. */
	json_array_foreach(ids, i, v) {
		struct el_why w1 = {{0}};
		if ((rc = mark_revoked(e, p, user, json_string_value(v), jspec_str(body, "reason"),
		    &w1)) != EL_OK) {
			engine_tx_rollback(e);
			el_fail(w, rc, "%s", w1.msg);
			refused = json_string_value(v);
			goto out;
		}
	}
	if ((rc = engine_tx_commit(e)) != EL_OK)
		goto out;
	engine_wake_reaper(e);
	wait_all(e, ids);
	arr = json_array();
	json_array_foreach(ids, i, v) {
		struct store_request r;
		if (store_request_get(e->store, json_string_value(v), &r) == EL_OK) {
			json_array_append_new(arr, engine_request_json(e, &r));
			store_request_free(&r);
		}
	}
	*out = json_pack("{s:o}", "requests", arr);
out:
	policy_release(p);
	return engine_authz(e, user, "grant.revoke", refused, rc, w);
}

/* ---- extend ---- */

static const struct schema_field extend_fields[] = {
	{ .key = "by", .kind = SF_DURATION, .required = true, .null_ok = true, .seconds_ok = true,
	  .min = 1, .max = EL_DURATION_MAX },
	{ .key = "reason", .kind = SF_TEXT, .null_ok = true, .max = REASON_MAX },
	{ .key = "ticket", .kind = SF_TEXT, .null_ok = true, .max = TICKET_MAX },
};
static const struct schema extend_spec = SCHEMA(extend_fields);

enum el_err
engine_extend(struct engine *e, const char *user, const char *id, json_t *body, json_t **out,
    struct el_why *w)
{
	struct policy *p;
	const struct pol_profile *pp;
	struct store_request parent, r;
	int64_t by, total, in_flight = 0, now = el_now();
	enum el_err rc;

	if (engine_is_bundle_id(id))
		return engine_bundle_each(e, user, id, BOP_EXTEND, body, NULL, out, w);
	p = engine_policy(e);
	memset(&parent, 0, sizeof(parent));
	memset(&r, 0, sizeof(r));
	if ((rc = jspec_check(body, &extend_spec, w)) != EL_OK)
		goto out;
	if ((rc = engine_load_own(e, p, user, id, "extend request", &parent, w)) != EL_OK)
		goto out;
	if (parent.state != RS_ACTIVE) {
		rc = el_fail(w, EL_ESTATE, "request %s is %s: only an active grant can be extended",
		    id, lifecycle_state_name(parent.state));
		goto out;
	}
	by = jspec_duration(body, "by");
	/* The whole window after the extension must still fit the profile's maximum. This is
	 * early advice; the binding check is the approval's (engine_quorum_reached). */
	if ((rc = store_extensions_in_flight(e->store, parent.id, &in_flight)) != EL_OK) {
		el_fail(w, rc, "cannot read the grant's extensions: %s", store_errmsg());
		goto out;
	}
	total = parent.window_end + by - parent.window_start + in_flight;
	if ((rc = policy_check_request(p, user, parent.profile, &by,
	    jspec_str(body, "reason") ? jspec_str(body, "reason") : parent.reason,
	    jspec_str(body, "ticket") ? jspec_str(body, "ticket") : parent.ticket, w)) != EL_OK)
		goto out;
	pp = policy_profile(p, parent.profile);
	if (total > pp->max_duration) {
		char a[32], b[32];
		el_format_duration(total, a, sizeof(a));
		el_format_duration(pp->max_duration, b, sizeof(b));
		rc = el_fail(w, EL_EPERM, "profile %s: the extended window would last %s, longer "
		    "than its max_duration %s", parent.profile, a, b);
		goto out;
	}
	make_id(r.id, sizeof(r.id));
	el_strlcpy(r.profile, parent.profile, sizeof(r.profile));
	el_strlcpy(r.requester, user, sizeof(r.requester));
	r.state = RS_PENDING;
	r.duration = by;
	r.reason = (char *)(uintptr_t)(jspec_str(body, "reason") ? jspec_str(body, "reason") :
	    parent.reason);
	r.ticket = (char *)(uintptr_t)(jspec_str(body, "ticket") ? jspec_str(body, "ticket") :
	    parent.ticket);
	r.role_arn = parent.role_arn;
	r.region = parent.region;
	r.created_at = now;
	r.pending_until = now + pp->pending_ttl;
	if (r.pending_until > parent.window_end)
		r.pending_until = parent.window_end;   /* an extension of an ended grant is moot */
	r.parent_id = parent.id;
	if ((rc = insert_request(e, user, &r, p, NULL, false, 0, w)) != EL_OK)
		goto out;
	*out = engine_request_json(e, &r);   /* r borrows parent's strings: before freeing */
out:
	store_request_free(&parent);
	policy_release(p);
	return engine_authz(e, user, "request.extend", id, rc, w);
}

/* ---- credentials ---- */

enum el_err
engine_credentials(struct engine *e, const char *user, const char *id, const char *peer,
    json_t **out, struct el_why *w)
{
	struct policy *p;
	struct store_request r;
	struct store_grant g;
	json_t *creds = NULL, *data;
	char member[32];
	enum el_err rc;

	if (engine_is_bundle_id(id))   /* each member has its own: never answers EL_OK */
		return engine_bundle_member(e, user, id, NULL, member, sizeof(member), w);
	p = engine_policy(e);
	memset(&g, 0, sizeof(g));
	if ((rc = engine_load_own(e, p, user, id, "fetch the credentials of", &r, w)) != EL_OK)
		goto out_p;
	if (r.state != RS_ACTIVE || el_now() >= r.window_end)
		goto not_active;
	/* Credentials that expire before the window ends are minted again, same session. */
	if ((rc = engine_remint_if_due(e, &r)) == EL_ENOENT) {
		rc = el_fail(w, EL_ESTATE, "request %s has no credentials yet", id);
		goto out;
	}
	if (rc != EL_OK && rc != EL_ESTATE) {   /* EL_ESTATE: it ended meanwhile, read below */
		rc = el_fail(w, EL_EAWS, "could not mint fresh credentials for %s", id);
		goto out;
	}
	/* Hand out only what the store says now: a revoke that committed meanwhile wins. */
	if ((rc = engine_tx_begin(e)) != EL_OK) {
		el_fail(w, rc, "the store is unavailable: %s", store_errmsg());
		goto out;
	}
	store_request_free(&r);
	store_grant_free(&g);
	if ((rc = store_request_get(e->store, id, &r)) != EL_OK) {
		engine_tx_rollback(e);
		el_fail(w, rc, "cannot read request %s: %s", id, store_errmsg());
		goto out_p;
	}
	if (r.state != RS_ACTIVE || el_now() >= r.window_end) {
		engine_tx_rollback(e);
		goto not_active;
	}
	if ((rc = store_grant_get(e->store, id, &g)) != EL_OK ||
	    (rc = engine_decrypt_creds(e, &g, &creds)) != EL_OK) {
		engine_tx_rollback(e);
		el_fail(w, rc, "cannot read the stored credentials");
		goto out;
	}
	data = json_pack("{s:s?, s:s?}", "access_key_id", g.access_key_id, "peer",
	    peer && *peer ? peer : NULL);
	rc = engine_audit(e, user, "grant.credentials_fetched", id, data);
	json_decref(data);
	if (rc != EL_OK || (rc = engine_tx_commit(e)) != EL_OK) {
		if (rc != EL_OK)
			engine_tx_rollback(e);
		json_decref(creds);
		el_fail(w, EL_EDB, "the hand-out was not recorded: %s", store_errmsg());
		rc = EL_EDB;
		goto out;
	}
	/* SDKs cache until Expiration: never let them believe in access past the window. */
	if (r.window_end < g.creds_expire_at) {
		char end[32];
		el_format_time(r.window_end, end, sizeof(end));
		json_object_set_new(creds, "Expiration", json_string(end));
	}
	*out = creds;
	goto out;
not_active:
	rc = el_fail(w, EL_ESTATE, "request %s is %s: credentials are only handed out while "
	    "the grant is active", id, r.state == RS_ACTIVE ? "ending" :
	    lifecycle_state_name(r.state));
out:
	store_grant_free(&g);
	store_request_free(&r);
out_p:
	policy_release(p);
	return engine_authz(e, user, "grant.credentials", id, rc, w);
}

/* ---- audit ---- */

static const struct schema_field audit_query_fields[] = {
	{ .key = "since_seq", .kind = SF_STR, .null_ok = true, .max = 20 },
	{ .key = "limit", .kind = SF_STR, .null_ok = true, .max = 6 },
	{ .key = "user", .kind = SF_STR, .null_ok = true, .max = POLICY_NAME_MAX },
	{ .key = "event", .kind = SF_STR, .null_ok = true, .max = 64 },
	{ .key = "request", .kind = SF_STR, .null_ok = true, .max = 32 },
	{ .key = "profile", .kind = SF_STR, .null_ok = true, .max = POLICY_NAME_MAX },
	{ .key = "since", .kind = SF_STR, .null_ok = true, .max = 32 },
};
static const struct schema audit_query_spec = SCHEMA(audit_query_fields);

enum el_err
engine_audit_query(struct engine *e, const char *user, json_t *query, json_t **out,
    struct el_why *w)
{
	struct policy *p = engine_policy(e);
	struct store_audit_filter f;
	char since[32];
	long long v;
	json_t *recs;
	const char *s;
	enum el_err rc;

	memset(&f, 0, sizeof(f));
	if (!is_auditor(e, p, user)) {
		rc = el_fail(w, EL_EPERM, "%s is not an auditor (%s)", user,
		    e->cfg->auditors ? e->cfg->auditors : "none configured");
		goto out;
	}
	if ((rc = jspec_check(query, &audit_query_spec, w)) != EL_OK)
		goto out;
	if ((s = jspec_str(query, "since_seq")) != NULL) {
		if (el_parse_int(s, 0, INT64_MAX, &v) != EL_OK) {
			rc = el_fail(w, EL_EINVAL, "since_seq must be a number");
			goto out;
		}
		f.since_seq = v;
	}
	if ((s = jspec_str(query, "limit")) != NULL) {
		if (el_parse_int(s, 1, 10000, &v) != EL_OK) {
			rc = el_fail(w, EL_EINVAL, "limit must be from 1 to 10000");
			goto out;
		}
		f.limit = (int)v;
	}
	if ((s = jspec_str(query, "since")) != NULL) {
		int64_t secs, t;
		if (el_parse_duration(s, &secs) == EL_OK)
			t = el_now() - secs;
		else if (el_parse_time(s, &t) != EL_OK) {
			rc = el_fail(w, EL_EINVAL, "since must be a duration (24h) or a time");
			goto out;
		}
		el_format_time(t, since, sizeof(since));
		since[strlen(since) - 1] = '\0';   /* compare as a prefix of the ms form */
		f.since_time = since;
	}
	f.actor = jspec_str(query, "user");
	f.event = jspec_str(query, "event");
	f.request_id = jspec_str(query, "request");
	f.profile = jspec_str(query, "profile");
	if ((rc = store_audit_list(e->store, &f, &recs)) != EL_OK) {
		el_fail(w, rc, "cannot read the audit trail: %s", store_errmsg());
		goto out;
	}
	*out = json_pack("{s:o}", "records", recs);
out:
	policy_release(p);
	return engine_authz(e, user, "audit.read", NULL, rc, w);
}

enum el_err
engine_health(struct engine *e, json_t **out, struct el_why *w)
{
	int64_t now = el_now_ms();
	enum el_err rc;
	int v;

	/* An export that does not advance is an outage of the audit trail. */
	if ((rc = engine_audit_health(e, w)) != EL_OK)
		return rc;
	/* Healthy means a transaction commits (a locked or full database does not), checked
	 * at most once a second: a monitor's polling costs no fsync each. */
	if (now - atomic_load(&e->healthy_at_ms) >= 1000) {
		if ((rc = store_probe_commit(e->store)) != EL_OK)
			return el_fail(w, rc, "the store cannot commit: %s", store_errmsg());
		atomic_store(&e->healthy_at_ms, now);
	}
	if ((v = store_schema_version(e->store)) < 0)
		return el_fail(w, EL_EDB, "the store does not answer: %s", store_errmsg());
	*out = json_pack("{s:s, s:i}", "status", "ok", "schema", v);
	return EL_OK;
}
