/*
 * engine_probe.c — owns revocation receipts. When a grant ends and its profile names a
 * revocation_probe (a read-only action its role allows), a worker thread calls that action
 * with the grant's own credentials until AWS refuses it, and audits the first refusal as
 * grant.revocation_verified with the seconds from the end of access (the window's end, or
 * the revoke request of an early revocation) to that refusal; after PROBE_ATTEMPTS it gives
 * up as grant.revocation_unverified, saying why. The reaper never waits for it; a probe
 * the broker's stop or death interrupts starts again at the next start.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "elevate/log.h"
#include "engine_int.h"

#define PROBE_ATTEMPTS 12           /* backoff 1, 2, 4 ... 30 s: about 3.5 minutes in all */
#define PROBE_BACKOFF_CAP 30
#define PROBE_RESUME_WINDOW 3600    /* s: grants that ended this recently are proved at start */

struct probe_job {
	struct engine *e;
	char id[32];
};

/* The answers that mean "this principal may no longer do it". */
static bool
is_refusal(const struct aws_error *err)
{
	static const char *const codes[] = {
		"AccessDenied", "AccessDeniedException", "UnauthorizedOperation",
		"ExpiredToken", "ExpiredTokenException", "RequestExpired", "AuthFailure",
		"InvalidClientTokenId",
	};
	size_t i;

	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (strcmp(err->code, codes[i]) == 0)
			return true;
	return false;
}

/* Sleeps `secs` seconds in short steps; false when the engine is stopping. */
static bool
probe_sleep(struct engine *e, int64_t secs)
{
	struct timespec ts = {0, 100 * 1000 * 1000};
	int64_t i;
	int stop;

	for (i = 0; i < secs * 10; i++) {
		pthread_mutex_lock(&e->wake_mu);
		stop = e->stopping;
		pthread_mutex_unlock(&e->wake_mu);
		if (stop)
			return false;
		nanosleep(&ts, NULL);
	}
	return true;
}

static void
probe_audit(struct engine *e, const char *id, const char *event, json_t *data)
{
	if (engine_tx_begin(e) != EL_OK) {
		log_err("request %s: %s not recorded: %s", id, event, store_errmsg());
		return;
	}
	if (engine_audit(e, "system", event, id, data) != EL_OK) {
		engine_tx_rollback(e);
		return;
	}
	if (engine_tx_commit(e) != EL_OK)
		log_err("request %s: %s not recorded: %s", id, event, store_errmsg());
}

/*
 * The moment access should have ended, in ms: the window's end, or for a grant revoked
 * before it, the revoke request (the record grant.revoke_requested). *from names which.
 */
static int64_t
access_end_ms(struct engine *e, const struct store_request *r, const char **from)
{
	int64_t ms;

	*from = "window_end";
	if (r->ended_at > 0 && r->ended_at < r->window_end &&
	    engine_event_time_ms(e, r->id, "grant.revoke_requested", &ms) == EL_OK &&
	    ms < r->window_end * 1000) {
		*from = "revoke_requested";
		return ms;
	}
	return r->window_end * 1000;
}

static void
probe_run(struct engine *e, const char *id)
{
	struct policy *p = engine_policy(e);
	const struct pol_profile *pp;
	struct store_request r;
	struct store_grant g;
	struct aws_creds creds;
	struct aws_error err;
	char action[64], region[32], why[1024];
	const char *from, *service_action;
	int64_t end_ms, now_ms;
	int attempt, allowed = 0;
	json_t *data;

	memset(&g, 0, sizeof(g));
	memset(&creds, 0, sizeof(creds));
	memset(&err, 0, sizeof(err));
	if (store_request_get(e->store, id, &r) != EL_OK) {
		policy_release(p);
		return;
	}
	pp = policy_profile(p, r.profile);
	if (pp == NULL || pp->revocation_probe == NULL || r.window_start == 0) {
		policy_release(p);
		goto out;
	}
	el_strlcpy(action, pp->revocation_probe, sizeof(action));
	policy_release(p);
	el_strlcpy(region, r.region ? r.region : "", sizeof(region));
	service_action = strchr(action, ':') + 1;   /* the loader admits ec2:* only */
	end_ms = access_end_ms(e, &r, &from);
	if (store_grant_get(e->store, id, &g) != EL_OK)
		goto out;                 /* never minted: nothing to verify */
	if (engine_grant_creds(e, &g, &creds) != EL_OK) {
		data = json_pack("{s:s, s:s}", "action", action, "why",
		    "the grant's stored credentials cannot be read");
		probe_audit(e, id, "grant.revocation_unverified", data);
		json_decref(data);
		goto out;
	}
	snprintf(why, sizeof(why), "no answer yet");
	for (attempt = 1; attempt <= PROBE_ATTEMPTS; attempt++) {
		memset(&err, 0, sizeof(err));
		if (aws_ec2_probe(e->aws, &creds, region[0] ? region : NULL, service_action,
		    &err) == EL_OK) {
			allowed++;
			log_warn("request %s: %s still allowed with the grant's credentials %.1f s "
			    "after access ended (attempt %d)", id, action,
			    (double)(el_now_ms() - end_ms) / 1000.0, attempt);
			snprintf(why, sizeof(why), "AWS still allowed %s with the grant's credentials",
			    action);
		} else if (is_refusal(&err)) {
			now_ms = el_now_ms();
			data = json_pack("{s:s, s:s, s:f, s:s, s:s?, s:s?, s:i, s:i}", "action", action,
			    "from", from, "seconds", (double)(now_ms - end_ms) / 1000.0,
			    "code", err.code, "message", err.message[0] ? err.message : NULL,
			    "aws_request_id", err.request_id[0] ? err.request_id : NULL,
			    "attempts", attempt, "allowed_after_end", allowed);
			probe_audit(e, id, "grant.revocation_verified", data);
			json_decref(data);
			log_info("request %s: revocation verified: %s refused (%s) %.3f s after "
			    "%s", id, action, err.code, (double)(now_ms - end_ms) / 1000.0, from);
			goto out;
		} else
			snprintf(why, sizeof(why), "%s: %s %s", action,
			    err.code[0] ? err.code : "no answer", err.message);
		if (attempt < PROBE_ATTEMPTS &&
		    !probe_sleep(e, el_backoff(attempt, 1, PROBE_BACKOFF_CAP))) {
			/* no receipt: the next start proves it again */
			log_info("request %s: revocation probe interrupted by the stop; it resumes "
			    "at the next start", id);
			goto out;
		}
	}
	data = json_pack("{s:s, s:s, s:i, s:i, s:f}", "action", action, "why", why,
	    "attempts", attempt - 1, "allowed_after_end", allowed, "seconds_tried",
	    (double)(el_now_ms() - end_ms) / 1000.0);
	probe_audit(e, id, "grant.revocation_unverified", data);
	json_decref(data);
	log_warn("request %s: revocation unverified: %s", id, why);
out:
	aws_creds_clear(&creds);
	store_grant_free(&g);
	store_request_free(&r);
}

static void *
probe_worker(void *arg)
{
	struct probe_job *j = arg;
	struct engine *e = j->e;

	probe_run(e, j->id);
	free(j);
	engine_worker_done(e);
	return NULL;
}

void
engine_probe_start(struct engine *e, const char *id)
{
	struct policy *p = engine_policy(e);
	struct store_request r;
	const struct pol_profile *pp;
	struct probe_job *j;
	bool want = false;

	if (store_request_get(e->store, id, &r) == EL_OK) {
		want = r.window_start > 0 && (pp = policy_profile(p, r.profile)) != NULL &&
		    pp->revocation_probe != NULL;
		store_request_free(&r);
	}
	policy_release(p);
	if (!want || (j = calloc(1, sizeof(*j))) == NULL)
		return;
	j->e = e;
	el_strlcpy(j->id, id, sizeof(j->id));
	if (!engine_worker_spawn(e, probe_worker, j)) {
		free(j);
		log_err("request %s: cannot start the revocation probe", id);
	}
}

/*
 * At start: grants that ended within the last hour with a probe and no receipt yet (the
 * broker stopped or died while proving them) are proved now; the seconds measured then
 * include the time the broker was away.
 */
void
engine_probe_resume(struct engine *e)
{
	struct store_filter f;
	struct store_request *v = NULL;
	size_t n = 0, i;
	int64_t ms;

	memset(&f, 0, sizeof(f));
	f.by_state = true;
	f.state = RS_ENDED;
	f.since = el_now() - PROBE_RESUME_WINDOW;
	f.limit = 500;
	if (store_request_list(e->store, &f, &v, &n) != EL_OK) {
		log_err("revocation probes: cannot list ended grants: %s", store_errmsg());
		return;
	}
	for (i = 0; i < n; i++) {
		if (v[i].window_start == 0 || v[i].ended_at < f.since ||
		    engine_event_time_ms(e, v[i].id, "grant.revocation_verified", &ms) == EL_OK ||
		    engine_event_time_ms(e, v[i].id, "grant.revocation_unverified", &ms) == EL_OK)
			continue;
		log_info("request %s: resuming its revocation probe", v[i].id);
		engine_probe_start(e, v[i].id);
	}
	for (i = 0; i < n; i++)
		store_request_free(&v[i]);
	free(v);
}
