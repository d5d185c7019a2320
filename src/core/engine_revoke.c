/*
 * engine_revoke.c — owns the end of a window: terminating a grant's SSM sessions, the
 * per-role deny policy for early revocations (batched, pruned, the role's revocation
 * cohorts closed as it needs; the document is denypolicy.c's), pushing entries IAM does
 * not hold yet, and marking grants ended, retried with backoff.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "elevate/denypolicy.h"
#include "elevate/log.h"
#include "engine_int.h"

#define QUICK_RETRIES 10            /* revocations retried every second at first */

/* ---- the end of a window ---- */

const char *
engine_role_name(const char *arn)
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

/* The role's open cohort ("" none), closed first when it holds enough of the revoked
 * grants to be swept (denypolicy.h). Grants that join a cohort afterwards get the new one,
 * so the live grants must be listed after this. */
static enum el_err
open_cohort(struct engine *e, const char *role, const struct deny_grant *rg, size_t n,
    char *open, size_t len)
{
	char fresh[DENYPOLICY_COHORT_LEN + 1];
	enum el_err rc;

	if ((rc = store_cohort_open(e->store, role, open, len)) == EL_ENOENT) {
		open[0] = '\0';
		return EL_OK;
	}
	if (rc != EL_OK || !denypolicy_should_close(rg, n, open))
		return rc;
	el_random_id(fresh, sizeof(fresh), DENYPOLICY_COHORT_LEN);
	if ((rc = engine_tx_begin(e)) != EL_OK)
		return EL_OK;   /* stays open: only less compact */
	if (store_cohort_close(e->store, role, fresh) != EL_OK)
		engine_tx_rollback(e);
	else if (engine_tx_commit(e) == EL_OK) {
		log_info("role %s: revocation cohort %s closed, %s opened", role, open, fresh);
		el_strlcpy(open, fresh, len);
	}
	return EL_OK;
}

static enum el_err put_deny_policy(struct engine *e, const char *role,
    struct aws_error *err, struct el_why *w);

/*
 * One PutRolePolicy for every revoked, still-alive session of the role, under the role's
 * lock among the nodes (store_role_lock): the document replaces the role's whole policy,
 * so a node that read the entries before another's newer write must not land after it
 * (the newer entries, already marked synced, would be gone from IAM).
 */
static enum el_err
update_deny_policy(struct engine *e, const char *role, struct aws_error *err,
    struct el_why *w)
{
	enum el_err rc;

	if ((rc = store_role_lock(e->store, role)) != EL_OK)
		return el_fail(w, rc, "cannot lock role %s among the nodes: %s", role,
		    store_errmsg());
	rc = put_deny_policy(e, role, err, w);
	store_role_unlock(e->store, role);
	return rc;
}

/*
 * The document for every revoked, still-alive session of the role (entries whose
 * credentials expired on their own are pruned first), built by denypolicy_build() from
 * them and the role's live grants, and its PutRolePolicy. Fails loudly over budget.
 */
static enum el_err
put_deny_policy(struct engine *e, const char *role, struct aws_error *err,
    struct el_why *w)
{
	struct store_revoked *v = NULL;
	struct store_live *lv = NULL;
	struct deny_grant *rg = NULL, *lg = NULL;
	struct deny_stats ds;
	size_t n = 0, nl = 0, i;
	char *doc = NULL, open[16];
	int64_t now = el_now(), mark = 0;
	uint64_t max;
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
	if ((rg = calloc(n, sizeof(*rg))) == NULL) {
		rc = EL_ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		rg[i].id = v[i].request_id;
		rg[i].cohort = v[i].cohort;
	}
	if ((rc = open_cohort(e, role, rg, n, open, sizeof(open))) != EL_OK ||
	    (rc = store_live_grants(e->store, role, &lv, &nl)) != EL_OK) {
		rc = el_fail(w, rc, "cannot read role %s's grants: %s", role, store_errmsg());
		goto out;
	}
	if ((lg = calloc(nl ? nl : 1, sizeof(*lg))) == NULL) {
		rc = EL_ENOMEM;
		goto out;
	}
	for (i = 0; i < nl; i++) {
		lg[i].id = lv[i].request_id;
		lg[i].cohort = lv[i].cohort;
	}
	if ((rc = denypolicy_build(rg, n, lg, nl, open, &doc, &ds)) != EL_OK)
		goto out;
	if (ds.chars > DENYPOLICY_BUDGET) {
		rc = el_fail(w, EL_ETOOBIG, "role %s: %zu revoked sessions need %zu characters of "
		    "inline policy (%zu named, %zu cohorts with %zu live grants excepted), over "
		    "IAM's %d", role, n, ds.chars, ds.listed, ds.swept, ds.excepted,
		    DENYPOLICY_BUDGET);
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
	if (rc == EL_OK) {
		log_debug("role %s: deny policy of %zu characters: %zu named, %zu cohorts, %zu "
		    "live grants excepted", role, ds.chars, ds.listed, ds.swept, ds.excepted);
		max = atomic_load(&e->deny_policy_chars_max);
		while (ds.chars > max &&
		    !atomic_compare_exchange_weak(&e->deny_policy_chars_max, &max, ds.chars))
			;
	}
out:
	/* What was listed is in IAM now; entries added since stay unsynced for the next. */
	if (rc == EL_OK && n > 0 && engine_tx_begin(e) == EL_OK) {
		if (store_revoked_synced(e->store, role, mark, el_now()) == EL_OK)
			engine_tx_commit(e);
		else
			engine_tx_rollback(e);
	}
	free(doc);
	free(rg);
	free(lg);
	free(lv);
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
		if (rc == EL_OK)
			rc = engine_lease_release(e, r.id);
		store_request_free(&r);
		if (rc != EL_OK)
			goto fail;
		ended[i] = true;
	}
	if (engine_tx_commit(e) != EL_OK) {
		free(ended);
		return;
	}
	engine_ends_changed(e);
	done = (double)el_now_ms() / 1000.0;
	for (i = 0; i < n; i++)
		if (ended[i] && rs[i].window_end > 0 && done >= (double)rs[i].window_end)
			hist_observe(&e->revoke_lag, done - (double)rs[i].window_end);
	for (i = 0; i < n; i++)
		if (ended[i])
			engine_probe_start(e, rs[i].id);
	free(ended);
	return;
fail:
	engine_tx_rollback(e);
	free(ended);
}

void
engine_ends_changed(struct engine *e)
{
	pthread_mutex_lock(&e->end_mu);
	e->end_gen++;
	pthread_cond_broadcast(&e->end_cv);
	pthread_mutex_unlock(&e->end_mu);
}

/* Whether a revoke's caller has waited long enough for id: it left `ending`, or AWS is
 * still minting its activation (a revoked activation ends only after AWS answers), here
 * or on another node that holds its lease. Once AWS has answered, the minter commits at
 * once and the grant ends after it: that is waited for. A grant being minted again or
 * extended is revoked without waiting for AWS (engine_end_grants): that is waited for. */
static bool
end_settled(struct engine *e, const char *id)
{
	struct store_request r;
	char node[NODE_MAX + 1];
	int64_t until = 0;
	bool settled;

	if (store_request_get(e->store, id, &r) != EL_OK)
		return true;
	settled = r.state != RS_ENDING;
	if (!settled && r.window_start == 0 && engine_minting(e, id))
		settled = true;     /* AWS mints it here: its outcome ends it */
	else if (!settled && r.window_start == 0 &&
	    store_lease_get(e->store, id, node, sizeof(node), &until) == EL_OK &&
	    node[0] != '\0' && strcmp(node, engine_node(e)) != 0 && until > el_now_ms())
		settled = true;     /* another node mints it: its outcome ends it there */
	store_request_free(&r);
	return settled;
}

void
engine_wait_ended(struct engine *e, const char *const *ids, size_t n, int timeout_ms)
{
	struct timespec until;
	const char **left;
	size_t nleft = 0, i, j;
	uint64_t gen;
	int rc = 0;

	if ((left = calloc(n ? n : 1, sizeof(*left))) == NULL)
		return;
	for (i = 0; i < n; i++)
		left[nleft++] = ids[i];
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	while (nleft > 0 && rc != ETIMEDOUT) {
		/* The generation is read before the states: an end committed after the check
		 * bumps it, so the wait below cannot miss it. */
		pthread_mutex_lock(&e->end_mu);
		gen = e->end_gen;
		pthread_mutex_unlock(&e->end_mu);
		for (i = j = 0; i < nleft; i++)
			if (!end_settled(e, left[i]))
				left[j++] = left[i];
		if ((nleft = j) == 0)
			break;
		pthread_mutex_lock(&e->end_mu);
		while (e->end_gen == gen && rc != ETIMEDOUT)
			rc = pthread_cond_timedwait(&e->end_cv, &e->end_mu, &until);
		pthread_mutex_unlock(&e->end_mu);
	}
	free(left);
}

/*
 * A failed step: the grant stays `ending` (read afresh) and is retried. AWS trouble
 * (throttling, 5xx, the network: `quick`) is retried every second for the first ten
 * attempts — the window is over and every second counts — then with backoff; a full
 * revocation budget backs off from the start.
 */
static void
reschedule(struct engine *e, const char *id, const char *why, bool quick)
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
	delay = quick && r.attempts <= QUICK_RETRIES ? 1 : el_backoff(r.attempts, 1, 30);
	r.next_attempt_at = el_now() + delay;
	data = json_pack("{s:s, s:i, s:I}", "error", why, "attempt", r.attempts,
	    "next_attempt_at", (json_int_t)r.next_attempt_at);
	if (engine_request_save(e, &r) != EL_OK ||
	    engine_audit(e, "system", "grant.revocation_retry", r.id, data) != EL_OK ||
	    engine_lease_release(e, r.id) != EL_OK)   /* the retry is any node's */
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
		e->sync_next_at = now + el_backoff(e->sync_attempts, 2, 30);
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
			if (st[i] == EL_OK)
				engine_lease_release(e, ids[i]);
			st[i] = EL_ESTATE;
			continue;
		}
		if (rs[i].window_start == 0 && engine_in_flight(e, ids[i])) {
			/* An activation: left to its minter, who stores what AWS minted and wakes
			 * the reaper; looked at again in a second at the latest. A grant that is
			 * minted again or extended meanwhile is revoked now: that minter denies
			 * what it gets (deny_minted), here or on another node. */
			st[i] = EL_ESTATE;
			engine_retry_at(e, ids[i], RS_ENDING, el_now() + 1);
			continue;
		}
		/* node: who revoked it, among several */
		steps[i] = json_pack("{s:[], s:b, s:s}", "terminated_sessions", "early",
		    el_now() < rs[i].window_end, "node", engine_node(e));
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
			const char *role = engine_role_name(rs[i].role_arn);

			memset(&rv, 0, sizeof(rv));
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
				    strcmp(engine_role_name(rs[i].role_arn), roles[j]) == 0)
					json_object_set_new(steps[i], "policy_request_id",
					    json_string(err.request_id));
			continue;
		}
		for (i = 0; i < n; i++) {
			if (st[i] != EL_OK || json_object_get(steps[i], "denied_role_session") == NULL ||
			    strcmp(engine_role_name(rs[i].role_arn), roles[j]) != 0)
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
		reschedule(e, rs[i].id, er ? json_string_value(er) : el_strerror(st[i]),
		    st[i] != EL_ETOOBIG);
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

