/*
 * engine_metrics.c — owns the engine's measurements: histograms, the AWS call observer
 * (calls by service, action and outcome) and the Prometheus exposition of /metrics.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elevate/log.h"
#include "engine_int.h"

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


/* ---- metrics ---- */

static void
metric_hist(struct dbuf *b, const char *name, const char *labels, const uint64_t *bucket,
    uint64_t count, double sum)
{
	uint64_t cum = 0;
	int i;

	for (i = 0; i < ENGINE_HIST_BUCKETS; i++) {
		cum += bucket[i];
		if (i == ENGINE_HIST_BUCKETS - 1)
			dbuf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels,
			    *labels ? "," : "", (unsigned long long)cum);
		else
			dbuf_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels,
			    *labels ? "," : "", engine_hist_bounds[i], (unsigned long long)cum);
	}
	dbuf_printf(b, "%s_sum{%s} %.6f\n%s_count{%s} %llu\n", name, labels, sum, name, labels,
	    (unsigned long long)count);
}

enum el_err
engine_metrics(struct engine *e, struct dbuf *b)
{
	json_t *counts = store_request_counts(e->store), *mail = store_mail_counts(e->store);
	int64_t overdue = 0;
	size_t i;
	uint64_t bucket[ENGINE_HIST_BUCKETS];

	if (counts == NULL || mail == NULL) {
		/* A partial exposition would read as zeros: none at all is honest. */
		json_decref(counts);
		json_decref(mail);
		return EL_EDB;
	}
	dbuf_adds(b, "# HELP elevate_requests Requests by state.\n# TYPE elevate_requests gauge\n");
	for (i = 0; i < RS__COUNT; i++)
		dbuf_printf(b, "elevate_requests{state=\"%s\"} %lld\n",
		    lifecycle_state_name((enum req_state)i), (long long)json_integer_value(
		    json_object_get(counts, lifecycle_state_name((enum req_state)i))));
	dbuf_printf(b, "# HELP elevate_approvals_total Approval votes.\n"
	    "# TYPE elevate_approvals_total counter\nelevate_approvals_total %llu\n"
	    "# HELP elevate_denials_total Denials.\n# TYPE elevate_denials_total counter\n"
	    "elevate_denials_total %llu\n"
	    "# HELP elevate_auth_refused_total Refused API signatures (each one, whether audited "
	    "alone or in a summary).\n"
	    "# TYPE elevate_auth_refused_total counter\nelevate_auth_refused_total %llu\n"
	    "# HELP elevate_tokens_refused_total Refused approval links (each one).\n"
	    "# TYPE elevate_tokens_refused_total counter\nelevate_tokens_refused_total %llu\n"
	    "# HELP elevate_authz_refused_total Operations refused to authenticated users.\n"
	    "# TYPE elevate_authz_refused_total counter\nelevate_authz_refused_total %llu\n"
	    "# HELP elevate_rate_limited_total Requests answered 429: their source address had "
	    "too many refusals.\n"
	    "# TYPE elevate_rate_limited_total counter\nelevate_rate_limited_total %llu\n",
	    (unsigned long long)e->approvals_total, (unsigned long long)e->denials_total,
	    (unsigned long long)e->auth_refused_total, (unsigned long long)e->tokens_refused_total,
	    (unsigned long long)e->authz_refused_total, (unsigned long long)e->rate_limited_total);
	/* Overdue: ending grants whose window ended more than a second ago. */
	if (store_request_overdue(e->store, el_now() - 1, &overdue) == EL_OK)
		dbuf_printf(b, "# HELP elevate_revocations_overdue Grants past their window end "
		    "whose revocation has not finished.\n# TYPE elevate_revocations_overdue gauge\n"
		    "elevate_revocations_overdue %lld\n", (long long)overdue);
	dbuf_printf(b, "# HELP elevate_revocation_failures_total Failed revocation attempts "
	    "(retried).\n# TYPE elevate_revocation_failures_total counter\n"
	    "elevate_revocation_failures_total %llu\n",
	    (unsigned long long)e->revocations_failed_total);
	dbuf_printf(b, "# HELP elevate_revocation_policy_chars_max The largest early-revocation "
	    "deny policy put on a role since start, in the characters IAM counts (all inline "
	    "policies of a role share 10240).\n# TYPE elevate_revocation_policy_chars_max gauge\n"
	    "elevate_revocation_policy_chars_max %llu\n",
	    (unsigned long long)e->deny_policy_chars_max);
	dbuf_adds(b, "# HELP elevate_revocation_lag_seconds From window end to revocation "
	    "done.\n# TYPE elevate_revocation_lag_seconds histogram\n");
	for (i = 0; i < ENGINE_HIST_BUCKETS; i++)
		bucket[i] = e->revoke_lag.bucket[i];
	metric_hist(b, "elevate_revocation_lag_seconds", "", bucket, e->revoke_lag.count,
	    (double)e->revoke_lag.sum_us / 1e6);
	dbuf_printf(b, "# HELP elevate_outbox Mails by state.\n# TYPE elevate_outbox gauge\n"
	    "elevate_outbox{state=\"queued\"} %lld\nelevate_outbox{state=\"sent\"} %lld\n"
	    "elevate_outbox{state=\"failed\"} %lld\n",
	    (long long)json_integer_value(json_object_get(mail, "queued")),
	    (long long)json_integer_value(json_object_get(mail, "sent")),
	    (long long)json_integer_value(json_object_get(mail, "failed")));
	dbuf_adds(b, "# HELP elevate_aws_call_duration_seconds AWS calls by service, action "
	    "and outcome.\n# TYPE elevate_aws_call_duration_seconds histogram\n");
	pthread_mutex_lock(&e->stat_mu);
	for (i = 0; i < e->nstats; i++) {
		char labels[160];
		snprintf(labels, sizeof(labels), "service=\"%s\",action=\"%s\",outcome=\"%s\"",
		    e->stats[i].service, e->stats[i].action, e->stats[i].outcome);
		metric_hist(b, "elevate_aws_call_duration_seconds", labels, e->stats[i].bucket,
		    e->stats[i].count, e->stats[i].sum);
	}
	pthread_mutex_unlock(&e->stat_mu);
	engine_audit_metrics(e, b);
	engine_webhook_metrics(e, b);
	json_decref(counts);
	json_decref(mail);
	return EL_OK;
}
