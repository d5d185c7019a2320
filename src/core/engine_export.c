/*
 * engine_export.c — owns the engine's side of the audit trail after commit: checkpoints
 * (every audit.checkpoint_every records, and at most AUDIT_SIGN_DELAY_MS after the first
 * record no signature covers), the export to audit.file and syslog that never advances
 * past a failed write (retried with backoff, counted, reported by /healthz, mailed to
 * the auditors once), rotation by age, and the publication of each signed head
 * (audit.head_file, syslog, S3 Object Lock). Two threads: the auditor (timers) and the
 * anchor (S3, which may be slow and must never hold up a checkpoint).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "elevate/log.h"
#include "engine_int.h"

/* A checkpoint lands this long after the first record it covers: within the 1 s promise. */
#define AUDIT_SIGN_DELAY_MS 800
#define EXPORT_BATCH 1000
#define EXPORT_RETRY_FIRST_MS 500
#define EXPORT_RETRY_CAP_MS 30000
#define ANCHOR_RETRY_CAP_S 60
#define SYSLOG_MSG_MAX (AUDIT_MAX_RECORD + 4096)

static void
now_iso_ms(char *buf, size_t len)
{
	char base[32];
	int64_t ms = el_now_ms();

	el_format_time(ms / 1000, base, sizeof(base));
	snprintf(buf, len, "%.19s.%03dZ", base, (int)(ms % 1000));
}

/* ---- syslog ---- */

/* One message to syslog (export_mu held). Reconnects after a failure; counts losses. */
static void
syslog_put(struct engine *e, const char *prefix, const char *text)
{
	struct el_why w = {{0}};
	struct dbuf b, msg;
	int fac = audit_syslog_facility(e->cfg->audit_syslog_facility);

	dbuf_init(&msg, SYSLOG_MSG_MAX);
	dbuf_init(&b, SYSLOG_MSG_MAX + 256);
	if (dbuf_printf(&msg, "%s%s", prefix, text) != EL_OK ||
	    audit_syslog_format(&b, fac < 0 ? LOG_AUTHPRIV : fac, el_now(), e->hostname,
	    (long)getpid(), msg.p) != EL_OK) {
		w.msg[0] = '\0';
		el_fail(&w, EL_ETOOBIG, "record too large for a syslog message");
		goto fail;
	}
	if (e->syslog_fd < 0 &&
	    (e->syslog_fd = audit_syslog_connect(e->cfg->audit_syslog_socket, &w)) < 0)
		goto fail;
	if (audit_syslog_send(e->syslog_fd, &b, &w) == EL_OK) {
		e->syslog_ok = 1;
		goto out;
	}
	close(e->syslog_fd);
	e->syslog_fd = -1;
fail:
	e->audit_syslog_failed_total++;
	if (e->syslog_ok) {   /* once per outage, not per record */
		log_err("audit syslog: %s (counted in elevate_audit_syslog_failed_total)", w.msg);
		e->syslog_ok = 0;
	}
out:
	dbuf_free(&b);
	dbuf_free(&msg);
}

/* ---- the export ---- */

/* (Re)opens audit.file and resumes after the last whole record in it. export_mu held. */
static enum el_err
open_export(struct engine *e, struct el_why *w)
{
	enum el_err r;

	if ((r = audit_out_open(&e->aout, e->cfg->audit_file, e->cfg->audit_rotate_bytes,
	    e->cfg->audit_rotate_age, w)) != EL_OK)
		return r;
	if (e->aout.torn_bytes > 0)
		log_warn("audit export %s: cut a torn last line (%lld bytes); resuming after seq "
		    "%lld", e->cfg->audit_file, (long long)e->aout.torn_bytes,
		    (long long)e->aout.last_seq);
	if (e->aout.last_seq > 0)
		e->exported_seq = e->aout.last_seq;
	return EL_OK;
}

/* Exports what is not exported yet. export_mu held. EL_OK, or the failure (w). */
static enum el_err
export_locked(struct engine *e, struct el_why *w)
{
	struct store_audit_filter f;
	json_t *recs = NULL, *rec;
	char **lines = NULL;
	size_t i, n;
	int64_t last = 0;
	enum el_err r = EL_OK;

	if (e->cfg->audit_file != NULL) {
		if (e->aout.fd < 0 && (r = open_export(e, w)) != EL_OK)
			return r;
		if (audit_out_rotate_due(&e->aout, el_now()) &&
		    (r = audit_out_rotate(&e->aout, w)) != EL_OK)
			goto fail;
	}
	for (;;) {
		memset(&f, 0, sizeof(f));
		f.since_seq = e->exported_seq;
		f.limit = EXPORT_BATCH;
		if ((r = store_audit_list(e->store, &f, &recs)) != EL_OK)
			return el_fail(w, r, "cannot read the audit chain: %s", store_errmsg());
		if ((n = json_array_size(recs)) == 0)
			break;
		if ((lines = calloc(n, sizeof(*lines))) == NULL) {
			r = EL_ENOMEM;
			goto fail;
		}
		json_array_foreach(recs, i, rec) {
			int64_t seq = json_integer_value(json_object_get(rec, "seq"));

			if ((lines[i] = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS)) == NULL) {
				r = EL_ENOMEM;
				goto fail;
			}
			if (e->cfg->audit_file != NULL && (r = audit_out_write(&e->aout, lines[i],
			    strlen(lines[i]), seq, audit_time_parse(json_string_value(
			    json_object_get(rec, "time"))), w)) != EL_OK)
				goto fail;
			last = seq;
		}
		/* Durable before anything counts it as exported; syslog after, so a retry
		 * sends nothing twice. */
		if (e->cfg->audit_file != NULL && (r = audit_out_sync(&e->aout, w)) != EL_OK)
			goto fail;
		for (i = 0; e->cfg->audit_syslog && i < n; i++)
			syslog_put(e, "audit ", lines[i]);
		e->exported_seq = last;
		el_strv_free(lines, n);
		lines = NULL;
		json_decref(recs);
		recs = NULL;
	}
	json_decref(recs);
	return EL_OK;
fail:
	if (lines != NULL)
		el_strv_free(lines, n);
	json_decref(recs);
	/* Reopening re-reads the file: whatever part of the batch reached it counts. */
	audit_out_close(&e->aout);
	if (r == EL_ENOMEM && w->msg[0] == '\0')
		el_fail(w, r, "out of memory");
	return r;
}

/* Queues the auditors' mail and an audit record about a failing export (no lock held). */
static void
report_failure(struct engine *e, const char *problem, int64_t since)
{
	char at[32];
	json_t *data, *extra;

	el_format_time(since, at, sizeof(at));
	data = json_pack("{s:s, s:s}", "file", e->cfg->audit_file ? e->cfg->audit_file : "",
	    "error", problem);
	extra = json_pack("{s:s, s:s, s:s}", "file", e->cfg->audit_file ?
	    e->cfg->audit_file : "", "error", problem, "since", at);
	if (engine_tx_begin(e) == EL_OK) {
		if (engine_audit(e, "system", "audit.export_failed", NULL, data) != EL_OK ||
		    engine_notify(e, "audit_export_failed", NULL, NULL, 0, extra) != EL_OK)
			engine_tx_rollback(e);
		else
			engine_tx_commit(e);
	}
	json_decref(data);
	json_decref(extra);
}

void
engine_audit_export(struct engine *e)
{
	struct el_why w = {{0}};
	int64_t now = el_now_ms(), since = 0;
	char problem[EL_WHYLEN];
	int report = 0, failing;

	if (e->cfg->audit_file == NULL && !e->cfg->audit_syslog)
		return;
	pthread_mutex_lock(&e->export_mu);
	/* While failing, only the auditor's retry timer tries again. */
	if (e->export_failing && now < e->export_retry_at_ms) {
		pthread_mutex_unlock(&e->export_mu);
		return;
	}
	if (export_locked(e, &w) == EL_OK) {
		if (e->export_failing)
			log_info("audit export to %s works again after %d failed attempt%s; "
			    "exported through seq %lld", e->cfg->audit_file, e->export_attempts,
			    e->export_attempts == 1 ? "" : "s", (long long)e->exported_seq);
		e->export_failing = 0;
		e->export_attempts = 0;
		e->export_mailed = 0;
		e->export_problem[0] = '\0';
	} else {
		e->audit_export_failed_total++;
		e->export_attempts++;
		e->export_retry_at_ms = now + el_backoff(e->export_attempts,
		    EXPORT_RETRY_FIRST_MS, EXPORT_RETRY_CAP_MS);
		el_strlcpy(e->export_problem, w.msg, sizeof(e->export_problem));
		if (!e->export_failing) {
			e->export_failing = 1;
			e->export_failed_since = el_now();
			log_err("audit export stopped at seq %lld: %s (retrying; records stay in "
			    "the store)", (long long)e->exported_seq, w.msg);
		}
		if (!e->export_mailed) {
			e->export_mailed = report = 1;
			el_strlcpy(problem, w.msg, sizeof(problem));
			since = e->export_failed_since;
		}
	}
	failing = e->export_failing;   /* read under the lock: other committers write it */
	pthread_mutex_unlock(&e->export_mu);
	if (report)
		report_failure(e, problem, since);
	if (failing)
		engine_wake_auditor(e);
}

enum el_err
engine_audit_health(struct engine *e, struct el_why *w)
{
	enum el_err r = EL_OK;
	char since[32];

	pthread_mutex_lock(&e->export_mu);
	if (e->export_failing) {
		el_format_time(e->export_failed_since, since, sizeof(since));
		r = el_fail(w, EL_EIO, "the audit export is failing since %s, stopped after seq "
		    "%lld: %s", since, (long long)e->exported_seq, e->export_problem);
	}
	pthread_mutex_unlock(&e->export_mu);
	return r;
}

/* ---- checkpoints and the signed head ---- */

/* Publishes the head of seq: head_file, syslog, and the anchor thread's queue. Heads of
 * two checkpoints may get here out of order: an older one never replaces a newer one. */
static void
publish_head(struct engine *e, const char *doc, int64_t seq)
{
	struct el_why w = {{0}};

	pthread_mutex_lock(&e->export_mu);
	if (seq <= e->published_seq) {
		pthread_mutex_unlock(&e->export_mu);
		return;
	}
	e->published_seq = seq;
	e->audit_heads_total++;
	if (e->cfg->audit_head_file != NULL &&
	    el_write_file(e->cfg->audit_head_file, doc, strlen(doc), 0644, &w) != EL_OK)
		log_err("audit head: %s", w.msg);
	if (e->cfg->audit_syslog)
		syslog_put(e, "audit-head ", doc);
	pthread_mutex_unlock(&e->export_mu);
	if (e->cfg->audit_anchor != NULL) {
		pthread_mutex_lock(&e->wake_mu);
		if (seq > e->anchor_seq || e->anchor_doc == NULL) {
			free(e->anchor_doc);
			e->anchor_doc = strdup(doc);
			e->anchor_seq = seq;
			e->anchor_attempts = 0;
			e->anchor_retry_at_ms = 0;
			pthread_cond_broadcast(&e->anchor_cv);
		}
		pthread_mutex_unlock(&e->wake_mu);
	}
}

/*
 * Writes a checkpoint when records are unsigned and `force` or checkpoint_every says so.
 * Other nodes sign the same chain: the count runs from the last checkpoint of any node,
 * read again under the store's write lock before signing, and records another node's
 * checkpoint already covers are not signed again. Returns the signed head to publish
 * (caller frees) or NULL.
 */
static char *
checkpoint(struct engine *e, int force, int64_t *head_seq)
{
	struct audit_head h;
	unsigned char hash[AUDIT_HASH_BYTES];
	int64_t seq = 0, last = 0;
	char *doc = NULL;
	int ok = 0;

	pthread_mutex_lock(&e->ckpt_mu);
	/* e->checkpoint_seq: the last checkpoint this node saw; others only make it later */
	if (store_audit_tail(e->store, &seq, hash) != EL_OK || seq <= e->checkpoint_seq)
		goto out;
	if (!force && seq - e->checkpoint_seq < e->cfg->audit_checkpoint_every)
		goto unsigned_left;
	if (store_begin(e->store) != EL_OK)
		goto out;
	if (store_audit_last_event(e->store, AUDIT_CHECKPOINT_EVENT, &last) != EL_OK ||
	    store_audit_tail(e->store, &seq, hash) != EL_OK) {
		store_rollback(e->store);
		goto out;
	}
	if (seq == last || (!force && seq - last < e->cfg->audit_checkpoint_every)) {
		store_rollback(e->store);   /* another node signed meanwhile */
		e->checkpoint_seq = last;
		if (seq == last) {
			e->unsigned_since_ms = 0;
			goto out;
		}
		goto unsigned_left;
	}
	if (audit_checkpoint(e->store, e->cfg->node, e->audit_sk, NULL) == EL_OK &&
	    store_audit_tail(e->store, &h.seq, hash) == EL_OK && store_commit(e->store) == EL_OK)
		ok = 1;
	else
		store_rollback(e->store);
	if (!ok)
		goto out;
	e->checkpoint_seq = h.seq;
	e->unsigned_since_ms = 0;
	el_hex(hash, sizeof(hash), h.hash);
	now_iso_ms(h.time, sizeof(h.time));
	if ((doc = audit_head_sign(&h, e->audit_sk)) != NULL)
		*head_seq = h.seq;
	goto out;
unsigned_left:
	if (e->unsigned_since_ms == 0) {
		e->unsigned_since_ms = el_now_ms();
		engine_wake_auditor(e);
	}
out:
	pthread_mutex_unlock(&e->ckpt_mu);
	return doc;
}

void
engine_audit_committed(struct engine *e)
{
	int64_t seq = 0;
	char *head = checkpoint(e, 0, &seq);

	engine_audit_export(e);
	if (head != NULL) {
		/* After the export, so a head never names a record the file does not hold
		 * unless the export is failing (which /healthz says). */
		publish_head(e, head, seq);
		free(head);
	}
}

/* ---- threads ---- */

void
engine_wake_auditor(struct engine *e)
{
	pthread_mutex_lock(&e->wake_mu);
	e->audit_wake = 1;
	pthread_cond_broadcast(&e->audit_cv);
	pthread_mutex_unlock(&e->wake_mu);
}

static void
deadline(struct timespec *ts, int64_t ms)
{
	ts->tv_sec = (time_t)(ms / 1000);
	ts->tv_nsec = (long)(ms % 1000) * 1000000L;
}

static void *
auditor_main(void *arg)
{
	struct engine *e = arg;

	for (;;) {
		int64_t now = el_now_ms(), next = INT64_MAX, due, seq = 0;
		struct timespec ts;
		char *head = NULL;

		pthread_mutex_lock(&e->ckpt_mu);
		due = e->unsigned_since_ms ? e->unsigned_since_ms + AUDIT_SIGN_DELAY_MS : 0;
		pthread_mutex_unlock(&e->ckpt_mu);
		if (due != 0 && now >= due)
			head = checkpoint(e, 1, &seq);
		else if (due != 0)
			next = due;
		pthread_mutex_lock(&e->export_mu);
		/* a failing export waits for its retry, a rotation included */
		if (e->export_failing)
			due = e->export_retry_at_ms;
		else if (e->aout.fd >= 0 && e->aout.rotate_age > 0 && e->aout.first_seq > 0 &&
		    e->aout.first_time > 0)
			due = (e->aout.first_time + e->aout.rotate_age) * 1000;
		else
			due = 0;
		pthread_mutex_unlock(&e->export_mu);
		if (head != NULL || (due != 0 && now >= due)) {
			engine_audit_export(e);
			if (head != NULL)
				publish_head(e, head, seq);
			free(head);
			continue;   /* the deadlines moved */
		}
		if (due != 0 && due < next)
			next = due;
		pthread_mutex_lock(&e->wake_mu);
		while (!e->stopping && !e->audit_wake) {
			if (next == INT64_MAX) {
				pthread_cond_wait(&e->audit_cv, &e->wake_mu);
				continue;
			}
			deadline(&ts, next);
			if (pthread_cond_timedwait(&e->audit_cv, &e->wake_mu, &ts) == ETIMEDOUT)
				break;
		}
		e->audit_wake = 0;
		if (e->stopping) {
			pthread_mutex_unlock(&e->wake_mu);
			break;
		}
		pthread_mutex_unlock(&e->wake_mu);
	}
	return NULL;
}

/* Puts doc (the head of seq) to the anchor: PREFIX/head-SEQ.json, then PREFIX/latest.json. */
static enum el_err
anchor_put(struct engine *e, const char *doc, int64_t seq, struct el_why *w)
{
	const char *b = e->cfg->audit_anchor + 5, *slash = strchr(b, '/');
	char bucket[64], prefix[1024], key[1200], until[32];
	struct aws_error err;
	enum el_err r;
	int i;

	snprintf(bucket, sizeof(bucket), "%.*s", (int)(slash ? slash - b : (long)strlen(b)), b);
	snprintf(prefix, sizeof(prefix), "%s", slash && slash[1] ? slash + 1 : "");
	while (prefix[0] && prefix[strlen(prefix) - 1] == '/')
		prefix[strlen(prefix) - 1] = '\0';
	el_format_time(el_now() + e->cfg->audit_anchor_retain, until, sizeof(until));
	for (i = 0; i < 2; i++) {
		if (i == 0)
			snprintf(key, sizeof(key), "%s%shead-%012lld.json", prefix, prefix[0] ?
			    "/" : "", (long long)seq);
		else
			snprintf(key, sizeof(key), "%s%slatest.json", prefix, prefix[0] ? "/" : "");
		memset(&err, 0, sizeof(err));
		if ((r = aws_s3_put_object(e->aws, bucket, key, doc, strlen(doc),
		    "application/json", "COMPLIANCE", until, &err)) != EL_OK)
			return el_fail(w, r, "s3://%s/%s: %s%s%s", bucket, key, err.code,
			    err.code[0] ? ": " : "", err.message);
	}
	return EL_OK;
}

static void *
anchor_main(void *arg)
{
	struct engine *e = arg;

	pthread_mutex_lock(&e->wake_mu);
	for (;;) {
		struct el_why w = {{0}};
		struct timespec ts;
		char *doc;
		int64_t seq;

		while (!e->stopping && (e->anchor_doc == NULL ||
		    el_now_ms() < e->anchor_retry_at_ms)) {
			if (e->anchor_doc == NULL) {
				pthread_cond_wait(&e->anchor_cv, &e->wake_mu);
				continue;
			}
			deadline(&ts, e->anchor_retry_at_ms);
			pthread_cond_timedwait(&e->anchor_cv, &e->wake_mu, &ts);
		}
		if (e->stopping)
			break;
		doc = e->anchor_doc;
		seq = e->anchor_seq;
		e->anchor_doc = NULL;
		pthread_mutex_unlock(&e->wake_mu);
		if (anchor_put(e, doc, seq, &w) == EL_OK) {
			free(doc);
			pthread_mutex_lock(&e->wake_mu);
			e->audit_anchored_seq = seq;
			e->anchor_attempts = 0;
			e->anchor_retry_at_ms = 0;
			continue;
		}
		log_err("audit anchor: head %lld not stored: %s (retrying)", (long long)seq,
		    w.msg);
		pthread_mutex_lock(&e->wake_mu);
		e->audit_anchor_failed_total++;
		if (e->anchor_doc == NULL) {   /* no newer head meanwhile: try this one again */
			e->anchor_doc = doc;
			e->anchor_seq = seq;
			e->anchor_attempts++;
			e->anchor_retry_at_ms = el_now_ms() + 1000 *
			    el_backoff(e->anchor_attempts, 1, ANCHOR_RETRY_CAP_S);
		} else
			free(doc);
	}
	pthread_mutex_unlock(&e->wake_mu);
	return NULL;
}

/* ---- start and stop ---- */

enum el_err
engine_audit_start(struct engine *e)
{
	struct el_why w = {{0}};
	int64_t seq = 0;
	unsigned char h[AUDIT_HASH_BYTES];
	enum el_err r;

	if (gethostname(e->hostname, sizeof(e->hostname) - 1) != 0 || e->hostname[0] == '\0')
		el_strlcpy(e->hostname, "localhost", sizeof(e->hostname));
	e->hostname[strcspn(e->hostname, ". ")] = '\0';
	if ((r = store_audit_tail(e->store, &seq, h)) != EL_OK) {
		log_err("cannot read the audit chain's head: %s", store_errmsg());
		return r;
	}
	e->checkpoint_seq = seq;
	if (e->cfg->audit_file != NULL) {
		pthread_mutex_lock(&e->export_mu);
		if (open_export(e, &w) != EL_OK) {
			/* Not fatal: the API goes on, /healthz says why, the auditor retries. */
			e->export_failing = 1;
			e->export_failed_since = el_now();
			e->export_retry_at_ms = el_now_ms();
			el_strlcpy(e->export_problem, w.msg, sizeof(e->export_problem));
			log_err("audit export: %s", w.msg);
		} else if (e->exported_seq > seq)
			log_warn("audit file %s is ahead of the store (seq %lld > %lld): starting a "
			    "new export after it", e->cfg->audit_file, (long long)e->exported_seq,
			    (long long)seq);
		pthread_mutex_unlock(&e->export_mu);
	}
	if (pthread_create(&e->auditor, NULL, auditor_main, e) != 0)
		return EL_ENOMEM;
	e->auditor_started = 1;
	if (e->cfg->audit_anchor != NULL) {
		if (pthread_create(&e->anchorer, NULL, anchor_main, e) != 0)
			return EL_ENOMEM;
		e->anchorer_started = 1;
	}
	return EL_OK;
}

void
engine_audit_stop(struct engine *e)
{
	pthread_mutex_lock(&e->wake_mu);
	e->stopping = 1;
	pthread_cond_broadcast(&e->audit_cv);
	pthread_cond_broadcast(&e->anchor_cv);
	pthread_mutex_unlock(&e->wake_mu);
	if (e->auditor_started)
		pthread_join(e->auditor, NULL);
	if (e->anchorer_started)
		pthread_join(e->anchorer, NULL);
	e->auditor_started = e->anchorer_started = 0;
}

void
engine_audit_close(struct engine *e)
{
	struct el_why w = {{0}};
	char *head, *doc;
	int64_t seq = 0;

	engine_audit_stop(e);
	/* Sign the head on the way out so a verifier can tell nothing was cut. */
	head = checkpoint(e, 1, &seq);
	engine_audit_export(e);
	if (head != NULL)
		publish_head(e, head, seq);
	free(head);
	/* The last head (or one a failing anchor still holds) is tried once more. */
	pthread_mutex_lock(&e->wake_mu);
	doc = e->anchor_doc;
	seq = e->anchor_seq;
	e->anchor_doc = NULL;
	pthread_mutex_unlock(&e->wake_mu);
	if (doc != NULL && anchor_put(e, doc, seq, &w) != EL_OK) {
		pthread_mutex_lock(&e->wake_mu);
		e->audit_anchor_failed_total++;
		pthread_mutex_unlock(&e->wake_mu);
		log_err("audit anchor: head %lld not stored at shutdown: %s", (long long)seq,
		    w.msg);
	}
	free(doc);
	pthread_mutex_lock(&e->export_mu);
	audit_out_close(&e->aout);
	free(e->aout.path);
	e->aout.path = NULL;
	if (e->syslog_fd >= 0)
		close(e->syslog_fd);
	e->syslog_fd = -1;
	pthread_mutex_unlock(&e->export_mu);
}

void
engine_audit_metrics(struct engine *e, struct dbuf *b)
{
	unsigned long long failed, syslog_failed, heads, anchor_failed;
	long long anchored;

	/* the export's counters move under export_mu, the anchor's under wake_mu */
	pthread_mutex_lock(&e->export_mu);
	failed = (unsigned long long)e->audit_export_failed_total;
	syslog_failed = (unsigned long long)e->audit_syslog_failed_total;
	heads = (unsigned long long)e->audit_heads_total;
	pthread_mutex_unlock(&e->export_mu);
	pthread_mutex_lock(&e->wake_mu);
	anchor_failed = (unsigned long long)e->audit_anchor_failed_total;
	anchored = (long long)e->audit_anchored_seq;
	pthread_mutex_unlock(&e->wake_mu);
	dbuf_printf(b, "# HELP elevate_audit_export_failed_total Failed attempts to export "
	    "audit records to audit.file (retried; nothing is skipped).\n"
	    "# TYPE elevate_audit_export_failed_total counter\n"
	    "elevate_audit_export_failed_total %llu\n"
	    "# HELP elevate_audit_syslog_failed_total Audit records or heads syslog did not "
	    "take.\n# TYPE elevate_audit_syslog_failed_total counter\n"
	    "elevate_audit_syslog_failed_total %llu\n"
	    "# HELP elevate_audit_heads_total Signed heads published.\n"
	    "# TYPE elevate_audit_heads_total counter\nelevate_audit_heads_total %llu\n"
	    "# HELP elevate_audit_anchor_failed_total Failed puts of a head to audit.anchor.\n"
	    "# TYPE elevate_audit_anchor_failed_total counter\n"
	    "elevate_audit_anchor_failed_total %llu\n"
	    "# HELP elevate_audit_anchored_seq Seq of the newest head stored in audit.anchor.\n"
	    "# TYPE elevate_audit_anchored_seq gauge\nelevate_audit_anchored_seq %lld\n",
	    failed, syslog_failed, heads, anchor_failed, anchored);
}
