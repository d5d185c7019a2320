/*
 * engine_webhook.c — owns the engine's webhooks (notify.webhooks): their HMAC keys, read
 * at start; the deliveries, queued in the transaction of each audit record a webhook
 * takes (one per webhook and record, so each event is delivered once: its delivery id is
 * the receivers' de-duplication key); and the thread that claims due deliveries with a
 * lease naming this node, posts them (webhook.c), and retries with backoff until
 * notify.webhook_give_up, when the delivery is marked failed and audited
 * (webhook.failed). A webhook's deliveries go out in the order of their events.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sodium.h>

#include "elevate/log.h"
#include "elevate/webhook.h"
#include "engine_int.h"

/* A lease outlives an attempt by this much: a node that dies mid-POST leaves its
 * delivery to the others once it runs out (and to itself at its next start). */
#define LEASE_MARGIN 60

struct hook {
	const struct config_webhook *cfg;
	unsigned char *key;               /* generic: sodium_malloc; slack: NULL */
	size_t keylen;
};

struct webhooks {
	struct hook *v;
	size_t n;
	pthread_t thread;
	int started;
	pthread_cond_t cv;                /* under e->wake_mu */
	int wake;
	_Atomic int stopping;             /* cuts a POST in flight short */
	_Atomic uint64_t sent_total, failed_total, retries_total;
};

/* This thread's transaction queued a delivery: wake the sender once it commits. */
static _Thread_local int queued_here;

enum el_err
engine_webhooks_open(struct engine *e, struct el_why *w)
{
	const struct config *cfg = e->cfg;
	struct webhooks *wh;
	char *text = NULL;
	size_t i, len;
	enum el_err r;

	if (cfg->nwebhooks == 0)
		return EL_OK;
	if ((wh = calloc(1, sizeof(*wh))) == NULL ||
	    (wh->v = calloc(cfg->nwebhooks, sizeof(*wh->v))) == NULL) {
		free(wh);
		return EL_ENOMEM;
	}
	pthread_cond_init(&wh->cv, NULL);
	e->hooks = wh;
	wh->n = cfg->nwebhooks;
	for (i = 0; i < wh->n; i++) {
		struct hook *h = &wh->v[i];

		h->cfg = &cfg->webhooks[i];
		if (h->cfg->secret_file == NULL)
			continue;
		if ((r = el_read_password_file(h->cfg->secret_file, "webhook secret_file", &text,
		    w)) != EL_OK)
			return r;
		if ((len = strlen(text)) < WEBHOOK_KEY_MIN) {
			el_password_free(text);
			return el_fail(w, EL_ECONFIG, "webhook %s: %s holds fewer than %d bytes: write "
			    "a random key, e.g. openssl rand -hex 32", h->cfg->name,
			    h->cfg->secret_file, WEBHOOK_KEY_MIN);
		}
		if ((h->key = sodium_malloc(len)) == NULL) {
			el_password_free(text);
			return EL_ENOMEM;
		}
		memcpy(h->key, text, len);
		h->keylen = len;
		el_password_free(text);
	}
	return EL_OK;
}

void
engine_webhooks_close(struct engine *e)
{
	struct webhooks *wh = e->hooks;
	size_t i;

	if (wh == NULL)
		return;
	for (i = 0; i < wh->n; i++)
		if (wh->v[i].key != NULL)
			sodium_free(wh->v[i].key);
	pthread_cond_destroy(&wh->cv);
	free(wh->v);
	free(wh);
	e->hooks = NULL;
}

/* ---- queueing, in the audit record's transaction ---- */

/* The generic document of one delivery, at most WEBHOOK_BODY_MAX bytes (a record too
 * large loses its data, which the audit chain keeps). Caller frees. */
static char *
document(json_t *doc, const char *id, const char *webhook)
{
	char *s;

	json_object_set_new(doc, "delivery_id", json_string(id));
	json_object_set_new(doc, "webhook", json_string(webhook));
	if ((s = json_dumps(doc, JSON_COMPACT)) != NULL && strlen(s) > WEBHOOK_BODY_MAX) {
		free(s);
		json_object_set_new(doc, "data", json_pack("{s:s}", "omitted", "larger than a "
		    "webhook carries: read the audit record (seq)"));
		s = json_dumps(doc, JSON_COMPACT);
	}
	return s;
}

enum el_err
engine_webhook_queue(struct engine *e, const char *actor, const char *event,
    const char *request_id, json_t *data)
{
	struct webhooks *wh = e->hooks;
	struct store_request r;
	struct store_glass g;
	struct store_delivery d;
	unsigned char head[AUDIT_HASH_BYTES];
	bool want = false, have_r = false, glass = false;
	int64_t seq = 0, now = el_now();
	json_t *doc = NULL;
	size_t i;
	enum el_err rc;

	for (i = 0; wh != NULL && i < wh->n && !want; i++)
		want = webhook_wants(wh->v[i].cfg, event, data);
	if (!want)
		return EL_OK;
	/* The record just appended is the chain's tail, in this transaction. */
	if ((rc = store_audit_tail(e->store, &seq, head)) != EL_OK)
		return rc;
	if (request_id != NULL) {
		if ((rc = store_request_get(e->store, request_id, &r)) == EL_OK)
			have_r = true;
		else if (rc != EL_ENOENT)
			return rc;
		glass = have_r && store_glass_get(e->store, request_id, &g) == EL_OK;
	}
	doc = webhook_payload(event, seq, now, actor, request_id, data, have_r ? &r : NULL,
	    glass, e->cfg->public_url);
	if (have_r)
		store_request_free(&r);
	if (doc == NULL)
		return EL_ENOMEM;
	rc = EL_OK;
	for (i = 0; i < wh->n && rc == EL_OK; i++) {
		const struct config_webhook *h = wh->v[i].cfg;
		char rnd[WEBHOOK_ID_LEN - 3];

		if (!webhook_wants(h, event, data))
			continue;
		memset(&d, 0, sizeof(d));
		el_random_id(rnd, sizeof(rnd), sizeof(rnd) - 1);
		snprintf(d.id, sizeof(d.id), "dlv_%s", rnd);
		el_strlcpy(d.webhook, h->name, sizeof(d.webhook));
		el_strlcpy(d.event, event, sizeof(d.event));
		d.seq = seq;
		d.request_id = (char *)(uintptr_t)request_id;
		d.next_attempt_at = d.created_at = now;
		d.give_up_at = now + e->cfg->webhook_give_up;
		if ((d.payload = document(doc, d.id, h->name)) == NULL) {
			rc = EL_ENOMEM;
			break;
		}
		rc = store_delivery_insert(e->store, &d);
		free(d.payload);
	}
	json_decref(doc);
	if (rc == EL_OK) {
		queued_here = 1;
		store_notify(e->store);   /* other nodes' senders may take it */
	}
	return rc;
}

void
engine_webhooks_wake(struct engine *e)
{
	struct webhooks *wh = e->hooks;

	if (wh == NULL)
		return;
	pthread_mutex_lock(&e->wake_mu);
	wh->wake = 1;
	pthread_cond_broadcast(&wh->cv);
	pthread_mutex_unlock(&e->wake_mu);
}

void
engine_webhooks_committed(struct engine *e)
{
	struct webhooks *wh = e->hooks;

	/* A nested commit is not the end of the transaction: wait for the outer one. */
	if (wh == NULL || !queued_here || store_in_transaction(e->store))
		return;
	queued_here = 0;
	engine_webhooks_wake(e);
}

/* ---- the sender ---- */

static int
cancelled(void *arg)
{
	struct webhooks *wh = arg;

	return wh->stopping;
}

static const struct hook *
find(const struct webhooks *wh, const char *name)
{
	size_t i;

	for (i = 0; i < wh->n; i++)
		if (strcmp(wh->v[i].cfg->name, name) == 0)
			return &wh->v[i];
	return NULL;
}

/* One attempt at d; *final: no other attempt can help. */
static enum el_err
attempt(struct engine *e, const struct hook *h, const struct store_delivery *d,
    bool *final, struct el_why *w)
{
	struct webhook_post p;
	json_t *doc = NULL;
	char *body = NULL;
	long status = 0;
	enum el_err r;

	*final = false;
	if (h == NULL) {
		*final = true;
		return el_fail(w, EL_ECONFIG, "webhook %s is no longer in notify.webhooks",
		    d->webhook);
	}
	if (strcmp(h->cfg->kind, "slack") == 0) {
		if ((doc = json_loads(d->payload, 0, NULL)) == NULL) {
			*final = true;
			return el_fail(w, EL_EPARSE, "the queued document is not JSON");
		}
		body = webhook_slack_body(doc);
		json_decref(doc);
	} else
		body = strdup(d->payload);
	if (body == NULL)
		return el_fail(w, EL_ENOMEM, "out of memory");
	memset(&p, 0, sizeof(p));
	p.url = h->cfg->url;
	p.body = body;
	p.len = strlen(body);
	p.delivery_id = d->id;
	p.event = d->event;
	p.key = h->key;
	p.keylen = h->keylen;
	p.timeout_ms = (long)e->cfg->webhook_timeout * 1000;
	p.cancel = cancelled;
	p.cancel_arg = e->hooks;
	r = webhook_post(&p, &status, w);
	free(body);
	return r;
}

static void
deliver(struct engine *e, struct store_delivery *d)
{
	struct webhooks *wh = e->hooks;
	const char *node = e->cfg->node, *state;
	struct el_why w = {{0}};
	int64_t now, wait, cap = e->cfg->webhook_retry_max;
	bool final;
	enum el_err rc;

	rc = attempt(e, find(wh, d->webhook), d, &final, &w);
	now = el_now();
	d->attempts++;
	free(d->last_error);
	d->last_error = rc == EL_OK ? NULL : strdup(w.msg);
	if (rc == EL_OK)
		state = "sent";
	else if (wh->stopping) {
		/* Cut short by the stop: not an attempt; the next start sends it again. */
		d->attempts--;
		state = "queued";
	} else if (final || now >= d->give_up_at)
		state = "failed";
	else {
		state = "queued";
		wait = el_backoff(d->attempts, cap < 2 ? cap : 2, cap);
		d->next_attempt_at = now + wait < d->give_up_at ? now + wait : d->give_up_at;
	}
	/* A delivery marked sent that an OS crash unmarks is sent again with the same
	 * delivery id (receivers drop it): no fsync of its own. */
	if ((strcmp(state, "failed") != 0 ? store_begin_relaxed(e->store) : engine_tx_begin(e))
	    != EL_OK)
		return;
	if ((rc = store_delivery_done(e->store, d, state, node, now)) != EL_OK) {
		engine_tx_rollback(e);
		log_warn("webhook %s: delivery %s: cannot record the attempt (%s): %s",
		    d->webhook, d->id, el_strerror(rc), rc == EL_ESTATE ? "another node took it "
		    "over" : store_errmsg());
		return;
	}
	if (strcmp(state, "failed") == 0) {
		json_t *data = json_pack("{s:s, s:s, s:s, s:I, s:i, s:s}", "webhook", d->webhook,
		    "delivery_id", d->id, "event", d->event, "seq", (json_int_t)d->seq,
		    "attempts", d->attempts, "error", w.msg);
		engine_audit(e, "system", "webhook.failed", d->request_id, data);
		json_decref(data);
	}
	if (engine_tx_commit(e) != EL_OK)
		return;
	if (strcmp(state, "sent") == 0) {
		atomic_fetch_add(&wh->sent_total, 1);
		log_info("webhook %s: delivered %s (%s, seq %lld)", d->webhook, d->id, d->event,
		    (long long)d->seq);
	} else if (strcmp(state, "failed") == 0) {
		atomic_fetch_add(&wh->failed_total, 1);
		log_err("webhook %s: gave up delivery %s (%s, seq %lld) after %d attempts: %s",
		    d->webhook, d->id, d->event, (long long)d->seq, d->attempts, w.msg);
	} else if (!wh->stopping) {
		atomic_fetch_add(&wh->retries_total, 1);
		log_warn("webhook %s: delivery %s (%s): %s (attempt %d, next in %llds)",
		    d->webhook, d->id, d->event, w.msg, d->attempts,
		    (long long)(d->next_attempt_at - now));
	}
}

static void *
sender_main(void *arg)
{
	struct engine *e = arg;
	struct webhooks *wh = e->hooks;
	int64_t lease = e->cfg->webhook_timeout + LEASE_MARGIN;

	for (;;) {
		struct store_delivery d;
		struct timespec ts;
		int64_t now = el_now(), next = INT64_MAX;
		enum el_err r;

		pthread_mutex_lock(&e->wake_mu);
		wh->wake = 0;
		if (e->stopping) {
			pthread_mutex_unlock(&e->wake_mu);
			break;
		}
		pthread_mutex_unlock(&e->wake_mu);
		/* A read first: a wake with nothing due writes nothing. */
		if ((r = store_delivery_next_due(e->store, &next)) == EL_OK && next <= now) {
			r = store_delivery_claim(e->store, now, now + lease, e->cfg->node, &d);
			if (r == EL_OK) {
				deliver(e, &d);
				store_delivery_free(&d);
				continue;
			}
			next = now + 1;   /* another node claimed it: look again shortly */
		}
		if (r != EL_OK && r != EL_ENOENT)
			next = now + 1;   /* the store failed: look again soon */
		pthread_mutex_lock(&e->wake_mu);
		while (!e->stopping && !wh->wake) {
			if (next == INT64_MAX) {
				pthread_cond_wait(&wh->cv, &e->wake_mu);
				continue;
			}
			ts.tv_sec = (time_t)next;
			ts.tv_nsec = 0;
			if (pthread_cond_timedwait(&wh->cv, &e->wake_mu, &ts) != 0)
				break;
		}
		pthread_mutex_unlock(&e->wake_mu);
	}
	return NULL;
}

enum el_err
engine_webhooks_start(struct engine *e)
{
	struct webhooks *wh = e->hooks;

	if (wh == NULL)
		return EL_OK;
	/* Nothing of this node is in flight at start: what it leased is due again now. */
	if (store_delivery_release(e->store, e->cfg->node) != EL_OK)
		log_warn("webhooks: cannot release this node's leases (%s): they run out within "
		    "%llds", store_errmsg(), (long long)(e->cfg->webhook_timeout + LEASE_MARGIN));
	if (pthread_create(&wh->thread, NULL, sender_main, e) != 0)
		return EL_ENOMEM;
	wh->started = 1;
	return EL_OK;
}

void
engine_webhooks_stop(struct engine *e)
{
	struct webhooks *wh = e->hooks;

	if (wh == NULL || !wh->started)
		return;
	wh->stopping = 1;
	pthread_mutex_lock(&e->wake_mu);
	wh->wake = 1;
	pthread_cond_broadcast(&wh->cv);
	pthread_mutex_unlock(&e->wake_mu);
	pthread_join(wh->thread, NULL);
	wh->started = 0;
}

void
engine_webhook_metrics(struct engine *e, struct dbuf *b)
{
	struct webhooks *wh = e->hooks;
	json_t *c;

	if (wh == NULL || (c = store_delivery_counts(e->store)) == NULL)
		return;
	dbuf_printf(b, "# HELP elevate_webhook_deliveries Webhook deliveries by state.\n"
	    "# TYPE elevate_webhook_deliveries gauge\n"
	    "elevate_webhook_deliveries{state=\"queued\"} %lld\n"
	    "elevate_webhook_deliveries{state=\"sent\"} %lld\n"
	    "elevate_webhook_deliveries{state=\"failed\"} %lld\n"
	    "# HELP elevate_webhook_sent_total Webhook deliveries sent by this process.\n"
	    "# TYPE elevate_webhook_sent_total counter\nelevate_webhook_sent_total %llu\n"
	    "# HELP elevate_webhook_retries_total Failed webhook attempts (retried).\n"
	    "# TYPE elevate_webhook_retries_total counter\nelevate_webhook_retries_total %llu\n"
	    "# HELP elevate_webhook_failed_total Webhook deliveries given up (audited).\n"
	    "# TYPE elevate_webhook_failed_total counter\nelevate_webhook_failed_total %llu\n",
	    (long long)json_integer_value(json_object_get(c, "queued")),
	    (long long)json_integer_value(json_object_get(c, "sent")),
	    (long long)json_integer_value(json_object_get(c, "failed")),
	    (unsigned long long)wh->sent_total, (unsigned long long)wh->retries_total,
	    (unsigned long long)wh->failed_total);
	json_decref(c);
}
