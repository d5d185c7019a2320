/*
 * engine_mail.c — owns the engine's mail: the template context of a request, queueing
 * mails in the durable outbox inside the transaction of the event that causes them, the
 * approval-request mails with their signed links (built before the new request's
 * transaction, so that the store's writer is not held while they are rendered, signed
 * and sealed), and the mailer thread that sends with retries and backoff.
 *
 * Several nodes may share the outbox (PostgreSQL). A mailer claims a mail for its node
 * before it sends it (store_mail_claim: a lease of smtp.timeout + MAIL_LEASE_MARGIN), so
 * no two nodes send the same mail; the claim ends with the attempt's outcome. A node that
 * dies in the middle of a send leaves its claim to run out, and another node then sends
 * the mail again, with the same Message-ID (or the node itself at once, when it starts
 * again under its name): each mail is sent once, and at least once across a crash.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sodium.h>

#include "elevate/log.h"
#include "elevate/mail.h"
#include "engine_int.h"

#define MAIL_RENDER_MAX (256 * 1024)
/* A claim lasts the send (smtp.timeout bounds it whole) and this much more: reading the
 * password file, and committing the outcome behind other writers (each waits at most 5 s
 * for the store's lock). */
#define MAIL_LEASE_MARGIN 30
/* On a store other nodes share, an idle mailer looks at the outbox at least this often
 * (seconds): a mail another node queued and could not send (it died) is not left until
 * this node queues one of its own. */
#define MAIL_LOOK_AGAIN 30


static void
set_time(json_t *o, const char *key, int64_t t)
{
	char buf[32];

	if (t <= 0)
		return;
	el_format_time(t, buf, sizeof(buf));
	json_object_set_new(o, key, json_string(buf));
}

json_t *
engine_approvals_ctx(const struct store_approval *ap, size_t nap)
{
	char at[32];
	json_t *arr = json_array();
	size_t i;

	for (i = 0; i < nap; i++) {
		el_format_time(ap[i].at, at, sizeof(at));
		json_array_append_new(arr, json_pack("{s:s, s:s, s:s?, s:s, s:s}",
		    "approver", ap[i].approver, "decision", ap[i].decision,
		    "comment", ap[i].comment, "decided_at", at, "via", ap[i].via));
	}
	return arr;
}

json_t *
engine_request_ctx(struct engine *e, const struct store_request *r, const char *recipient)
{
	struct policy *p = engine_policy(e);
	const struct pol_profile *pp = policy_profile(p, r->profile);
	char dur[32], win[96], a[32], b[32];
	json_t *o;

	el_format_duration(r->duration, dur, sizeof(dur));
	o = json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:s, s:s?, s:s?, s:s?, s:s}",
	    "request_id", r->id, "requester", r->requester, "profile", r->profile,
	    "role_arn", r->role_arn, "account", pp ? pp->account : NULL, "duration", dur,
	    "reason", r->reason, "ticket", r->ticket, "recipient", recipient,
	    "public_url", e->cfg->public_url);
	if (pp != NULL)
		json_object_set_new(o, "approvals_required", json_integer(pp->approvals_required));
	json_object_set_new(o, "region", json_string(r->region ? r->region : ""));
	set_time(o, "expires", r->pending_until);
	set_time(o, "window_start", r->window_start);
	set_time(o, "window_end", r->window_end);
	set_time(o, "ended_at", r->ended_at);
	set_time(o, "decided_at", r->decided_at);
	if (r->window_start > 0) {
		el_format_time(r->window_start, a, sizeof(a));
		el_format_time(r->window_end, b, sizeof(b));
		snprintf(win, sizeof(win), "%s to %s", a, b);
	} else
		snprintf(win, sizeof(win), "%s from approval", dur);
	json_object_set_new(o, "window", json_string(win));
	if (r->failure_code != NULL) {
		json_object_set_new(o, "aws_code", json_string(r->failure_code));
		json_object_set_new(o, "aws_message", json_string(r->failure_message ?
		    r->failure_message : ""));
	}
	policy_release(p);
	return o;
}

json_t *
engine_mail_ctx(struct engine *e, const struct store_request *r, const char *recipient)
{
	struct store_approval *ap = NULL;
	size_t nap = 0;
	json_t *o = engine_request_ctx(e, r, recipient);

	if (store_approval_list(e->store, r->id, &ap, &nap) != EL_OK)
		nap = 0;
	json_object_set_new(o, "approvals", engine_approvals_ctx(ap, nap));
	store_approvals_free(ap, nap);
	return o;
}

/*
 * Queued messages are sealed with the at-rest key: an approval mail carries a live token
 * until it is sent (then the body is dropped). "box:" + base64(nonce || secretbox).
 */
static char *
seal(struct engine *e, const char *msg, size_t len)
{
	unsigned char *box;
	char *b64, *out;
	size_t n = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + len;

	if ((box = malloc(n)) == NULL)
		return NULL;
	randombytes_buf(box, crypto_secretbox_NONCEBYTES);
	crypto_secretbox_easy(box + crypto_secretbox_NONCEBYTES, (const unsigned char *)msg, len,
	    box, e->box_key);
	b64 = el_b64_encode_public(box, n);   /* a ciphertext: nothing to hide in its timing */
	free(box);
	if (b64 == NULL)
		return NULL;
	if ((out = malloc(strlen(b64) + 5)) != NULL)
		snprintf(out, strlen(b64) + 5, "box:%s", b64);
	free(b64);
	return out;
}

/* The queued message in clear, into b (wiped by the caller). */
static enum el_err
unseal(struct engine *e, const char *stored, struct dbuf *b)
{
	unsigned char *box;
	size_t cap, n;
	enum el_err r;

	if (strncmp(stored, "box:", 4) != 0)
		return EL_EPARSE;
	cap = strlen(stored);
	if ((box = malloc(cap)) == NULL)
		return EL_ENOMEM;
	if (el_b64_decode(stored + 4, box, cap, &n) != EL_OK ||
	    n < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES) {
		free(box);
		return EL_EPARSE;
	}
	n -= crypto_secretbox_NONCEBYTES;
	/* Open in place (libsodium allows m == c): the nonce in front stays intact. */
	if (crypto_secretbox_open_easy(box + crypto_secretbox_NONCEBYTES,
	    box + crypto_secretbox_NONCEBYTES, n, box, e->box_key) != 0) {
		free(box);
		return EL_ECRYPTO;
	}
	r = dbuf_add(b, box + crypto_secretbox_NONCEBYTES, n - crypto_secretbox_MACBYTES);
	sodium_memzero(box, cap);
	free(box);
	return r;
}

/* Builds one message for `to` (rendered, MIME, sealed) into out, not queued yet. */
static enum el_err
build_mail(struct engine *e, const char *tmpl, const char *request_id, const char *to,
    json_t *ctx, struct engine_mail *out)
{
	struct template_mail m;
	struct mail_msg msg;
	struct dbuf mime;
	struct el_why w = {{0}};
	char rnd[20];
	enum el_err rc;

	memset(&m, 0, sizeof(m));
	memset(&msg, 0, sizeof(msg));
	memset(out, 0, sizeof(*out));
	dbuf_init(&mime, MAIL_MAX_SIZE);
	if ((rc = template_render_mail(e->templates, tmpl, ctx, MAIL_RENDER_MAX, &m, &w))
	    != EL_OK) {
		log_err("mail %s to %s: %s", tmpl, to, w.msg);
		goto out;
	}
	/* Stable per mail: a retried send carries the same Message-ID. */
	el_random_id(rnd, sizeof(rnd), 16);
	snprintf(out->msgid, sizeof(out->msgid), "<%s.%s.%s@elevate>", tmpl,
	    request_id ? request_id : "none", rnd);
	msg.from = e->cfg->smtp_from;
	msg.to = &to;
	msg.nto = 1;
	msg.subject = m.subject;
	msg.text = m.text;
	msg.html = m.html;
	msg.message_id = out->msgid;
	msg.date = el_now();
	if ((rc = mail_build(&msg, &mime, &w)) != EL_OK) {
		log_err("mail %s to %s: %s", tmpl, to, w.msg);
		goto out;
	}
	rc = EL_ENOMEM;
	if ((out->sealed = seal(e, mime.p, mime.len)) == NULL ||
	    (out->to = strdup(to)) == NULL || (out->subject = strdup(m.subject)) == NULL)
		goto out;
	rc = EL_OK;
out:
	template_mail_free(&m);
	dbuf_free_secret(&mime);   /* approval mails carry a token */
	return rc;
}

/* Queues built mails (inside the caller's transaction). */
static enum el_err
enqueue(struct engine *e, const char *request_id, const struct engine_mail *v, size_t n)
{
	int64_t id = 0;
	enum el_err rc = EL_OK;
	size_t i;

	for (i = 0; i < n && rc == EL_OK; i++)
		rc = store_mail_enqueue(e->store, request_id, v[i].to, v[i].subject, v[i].sealed,
		    v[i].msgid, el_now(), &id);
	return rc;
}

static void
mail_free(struct engine_mail *m)
{
	free(m->to);
	free(m->subject);
	free(m->sealed);
	memset(m, 0, sizeof(*m));
}

void
engine_mails_free(struct engine_mails *m)
{
	size_t i;

	for (i = 0; i < m->n; i++)
		mail_free(&m->v[i]);
	free(m->v);
	memset(m, 0, sizeof(*m));
}

/* Builds one message for `to` and queues it. Inside the caller's transaction. */
static enum el_err
queue_mail(struct engine *e, const char *tmpl, const char *request_id, const char *to,
    json_t *ctx)
{
	struct engine_mail m;
	enum el_err rc;

	if ((rc = build_mail(e, tmpl, request_id, to, ctx, &m)) == EL_OK)
		rc = enqueue(e, request_id, &m, 1);
	mail_free(&m);
	return rc;
}

enum el_err
engine_notify(struct engine *e, const char *tmpl, const struct store_request *r,
    const char *const *users, size_t nusers, json_t *extra)
{
	struct policy *p;
	const char **list = NULL;
	size_t n = 0, i;
	enum el_err rc = EL_OK;

	if (e->cfg->smtp_url == NULL || e->templates == NULL)
		return EL_OK;   /* mail not configured: the API and audit still tell */
	p = engine_policy(e);
	if (users == NULL) {
		/* No recipients named: the security team (auditors). */
		if ((list = calloc(p->nusers + 1, sizeof(*list))) == NULL) {
			policy_release(p);
			return EL_ENOMEM;
		}
		for (i = 0; i < p->nusers; i++)
			if (e->cfg->auditors && policy_principal_has(p, e->cfg->auditors,
			    p->users[i].name))
				list[n++] = p->users[i].name;
		users = list;
		nusers = n;
	}
	for (i = 0; i < nusers && rc == EL_OK; i++) {
		const struct pol_user *u = policy_user(p, users[i]);
		json_t *ctx;

		if (u == NULL || u->email == NULL)
			continue;
		if (r != NULL)
			ctx = engine_mail_ctx(e, r, u->name);
		else
			ctx = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "request_id", "",
			    "requester", "", "profile", "", "duration", "", "recipient", u->name,
			    "public_url", e->cfg->public_url, "role_arn", "");
		if (extra != NULL)
			json_object_update(ctx, extra);
		rc = queue_mail(e, tmpl, r ? r->id : NULL, u->email, ctx);
		json_decref(ctx);
	}
	free(list);
	policy_release(p);
	return rc;
}

enum el_err
engine_approval_link(struct engine *e, const char *id, const char *approver, int64_t until,
    char *link, size_t len)
{
	char *tok = NULL;
	enum el_err rc;

	if ((rc = token_issue(e->token_key, id, approver, until, &tok)) != EL_OK)
		return rc;
	snprintf(link, len, "%s/approve/%s", e->cfg->public_url, tok);
	explicit_bzero(tok, strlen(tok));
	free(tok);
	return EL_OK;
}

enum el_err
engine_approver_mails(struct engine *e, const struct store_request *r,
    struct engine_mails *out)
{
	struct policy *p;
	const char **who = NULL;
	size_t n = 0, i;
	enum el_err rc = EL_OK;

	memset(out, 0, sizeof(*out));
	if (e->cfg->smtp_url == NULL || e->templates == NULL)
		return EL_OK;
	p = engine_policy(e);
	if ((rc = policy_approvers_for(p, r->profile, r->requester, &who, &n)) != EL_OK) {
		policy_release(p);
		return rc;
	}
	if (n > 0 && (out->v = calloc(n, sizeof(*out->v))) == NULL)
		rc = EL_ENOMEM;
	for (i = 0; i < n && rc == EL_OK; i++) {
		const struct pol_user *u = policy_user(p, who[i]);
		char link[1024];
		json_t *ctx;

		if (u == NULL || u->email == NULL)
			continue;
		/* One token per approver per request; it expires with the request. */
		if ((rc = engine_approval_link(e, r->id, u->name, r->pending_until, link,
		    sizeof(link))) != EL_OK)
			break;
		ctx = engine_mail_ctx(e, r, u->name);
		json_object_set_new(ctx, "link", json_string(link));
		if ((rc = build_mail(e, "approval_request", r->id, u->email, ctx,
		    &out->v[out->n])) == EL_OK)
			out->n++;
		else
			mail_free(&out->v[out->n]);
		explicit_bzero(link, sizeof(link));
		json_decref(ctx);
	}
	free(who);
	policy_release(p);
	if (rc != EL_OK)
		engine_mails_free(out);
	return rc;
}

enum el_err
engine_mails_add(struct engine *e, struct engine_mails *out, const char *tmpl,
    const char *request_id, const char *to, json_t *ctx)
{
	struct engine_mail *v;
	enum el_err rc;

	if ((v = realloc(out->v, (out->n + 1) * sizeof(*v))) == NULL)
		return EL_ENOMEM;
	out->v = v;
	if ((rc = build_mail(e, tmpl, request_id, to, ctx, &v[out->n])) == EL_OK)
		out->n++;
	else
		mail_free(&v[out->n]);
	return rc;
}

enum el_err
engine_mails_queue(struct engine *e, const char *request_id, const struct engine_mails *m)
{
	return enqueue(e, request_id, m->v, m->n);
}

enum el_err
engine_notify_others(struct engine *e, const struct store_request *r, const char *outcome,
    const char *decided_by)
{
	struct policy *p;
	struct store_approval *ap = NULL;
	const char **who = NULL, **rest = NULL;
	size_t n = 0, nap = 0, nrest = 0, i, k;
	json_t *extra;
	enum el_err rc;

	if (e->cfg->smtp_url == NULL || e->templates == NULL)
		return EL_OK;
	p = engine_policy(e);
	if ((rc = policy_approvers_for(p, r->profile, r->requester, &who, &n)) != EL_OK)
		goto out;
	if ((rc = store_approval_list(e->store, r->id, &ap, &nap)) != EL_OK)
		goto out;
	if ((rest = calloc(n + 1, sizeof(*rest))) == NULL) {
		rc = EL_ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		bool voted = false;
		for (k = 0; k < nap; k++)
			if (strcmp(ap[k].approver, who[i]) == 0)
				voted = true;
		if (!voted)
			rest[nrest++] = who[i];
	}
	{
		/* Approved by the quorum: name everyone who approved. */
		char by[512] = "";
		size_t len = 0;
		for (k = 0; decided_by == NULL && k < nap; k++) {
			if (strcmp(ap[k].decision, "approve") != 0)
				continue;
			len += (size_t)snprintf(by + len, len < sizeof(by) ? sizeof(by) - len : 0,
			    "%s%s", len ? ", " : "", ap[k].approver);
			if (len >= sizeof(by))
				break;
		}
		extra = json_pack("{s:s, s:s}", "outcome", outcome, "decided_by",
		    decided_by ? decided_by : by);
	}
	rc = nrest ? engine_notify(e, "decided_by_others", r, rest, nrest, extra) : EL_OK;
	json_decref(extra);
out:
	free(rest);
	free(who);
	store_approvals_free(ap, nap);
	policy_release(p);
	return rc;
}

/* ---- the mailer thread ---- */

/* The name this node's claims are held under. */
static const char *
node(struct engine *e)
{
	return e->cfg->node != NULL ? e->cfg->node : "localhost";
}

/* Sends m, which this node claimed, and writes the outcome. */
static void
send_one(struct engine *e, struct store_mail *m)
{
	struct mail_server srv;
	struct el_why w = {{0}};
	struct dbuf msg;
	const char *rcpt[1] = {m->rcpt};
	char *password = NULL;
	enum el_err rc, u;

	memset(&srv, 0, sizeof(srv));
	srv.url = e->cfg->smtp_url;
	srv.username = e->cfg->smtp_username;
	srv.require_starttls = e->cfg->smtp_require_starttls;
	srv.timeout_ms = (long)e->cfg->smtp_timeout * 1000;
	if (e->cfg->smtp_password_file != NULL &&
	    mail_read_password_file(e->cfg->smtp_password_file, &password, &w) != EL_OK) {
		rc = EL_ECONFIG;
		goto done;
	}
	srv.password = password;
	dbuf_init(&msg, MAIL_MAX_SIZE);
	if ((rc = unseal(e, m->message, &msg)) != EL_OK)
		el_fail(&w, rc, "the queued message cannot be opened (%s): was secret.key "
		    "replaced?", el_strerror(rc));
	else
		rc = mail_send(&srv, e->cfg->smtp_from, rcpt, 1, &msg, &w);
	dbuf_free_secret(&msg);
done:
	if (password != NULL)
		mail_password_free(password);
	m->attempts++;
	free(m->last_error);
	m->last_error = rc == EL_OK ? NULL : strdup(w.msg);
	if (rc == EL_OK)
		el_strlcpy(m->state, "sent", sizeof(m->state));
	else if (m->attempts >= e->cfg->mail_max_attempts)
		el_strlcpy(m->state, "failed", sizeof(m->state));
	else {
		m->next_attempt_at = el_now() + el_backoff(m->attempts, 2, 300);
	}
	/* A mail marked sent that an OS crash unmarks is sent again, with the same Message-ID
	 * (at least once, as across any crash): that needs no fsync of its own. */
	if ((rc == EL_OK ? store_begin_relaxed(e->store) : engine_tx_begin(e)) != EL_OK) {
		log_err("mail %lld to %s: cannot record the attempt (%s): it is tried again once "
		    "its claim runs out", (long long)m->id, m->rcpt, store_errmsg());
		return;
	}
	if ((u = store_mail_update(e->store, node(e), m)) != EL_OK) {
		store_rollback(e->store);
		if (u == EL_ESTATE)
			log_warn("mail %lld to %s: its claim ran out during the attempt and another "
			    "node took it over (%s): this attempt's outcome is dropped", (long long)m->id,
			    m->rcpt, rc == EL_OK ? "sent: it may arrive twice" : w.msg);
		else
			log_err("mail %lld to %s: cannot record the attempt (%s): it is tried again "
			    "once its claim runs out", (long long)m->id, m->rcpt, store_errmsg());
		return;
	}
	if (rc == EL_OK)
		atomic_fetch_add(&e->mail_sent_total, 1);
	if (strcmp(m->state, "failed") == 0) {
		json_t *data = json_pack("{s:I, s:s, s:s, s:i}", "mail_id", (json_int_t)m->id,
		    "rcpt", m->rcpt, "error", w.msg, "attempts", m->attempts);
		engine_audit(e, "system", "mail.failed", m->request_id, data);
		json_decref(data);
		atomic_fetch_add(&e->mail_failed_total, 1);
		log_err("mail %lld to %s failed for good after %d attempts: %s",
		    (long long)m->id, m->rcpt, m->attempts, w.msg);
	} else if (rc != EL_OK)
		log_warn("mail %lld to %s: %s (attempt %d, retrying)", (long long)m->id, m->rcpt,
		    w.msg, m->attempts);
	else
		log_info("mail %lld sent to %s: %s", (long long)m->id, m->rcpt, m->subject);
	engine_tx_commit(e);
}

void *
engine_mailer_main(void *arg)
{
	struct engine *e = arg;
	int64_t lease = e->cfg->smtp_timeout + MAIL_LEASE_MARGIN;

	/* What this node was sending when it stopped or died is for it to send again now,
	 * not after the claim runs out. */
	if (e->cfg->smtp_url != NULL && store_mail_release(e->store, node(e)) != EL_OK)
		log_warn("mail: cannot end the claims this node left (%s): those mails are sent "
		    "once the claims run out", store_errmsg());
	for (;;) {
		struct store_mail m;
		struct timespec ts;
		int64_t next = INT64_MAX, now;

		pthread_mutex_lock(&e->wake_mu);
		if (e->stopping) {
			pthread_mutex_unlock(&e->wake_mu);
			break;
		}
		pthread_mutex_unlock(&e->wake_mu);
		if (e->cfg->smtp_url != NULL) {
			/* A read first: most wakes (every commit wakes the mailer) find nothing due,
			 * and a claim is a write. */
			now = el_now();
			if (store_mail_next_due(e->store, &next) != EL_OK)
				next = now + 1;   /* the store failed: look again soon */
			else if (next <= now) {
				if (store_mail_claim(e->store, node(e), now, lease, &m) == EL_OK) {
					send_one(e, &m);
					store_mail_free(&m);
					continue;
				}
				/* Another node claimed it meanwhile (or the store failed). */
				next = now + 1;
			}
			if (store_shared(e->store) && next > now + MAIL_LOOK_AGAIN)
				next = now + MAIL_LOOK_AGAIN;
		}
		pthread_mutex_lock(&e->wake_mu);
		while (!e->stopping && !e->mail_wake) {
			if (next == INT64_MAX) {
				pthread_cond_wait(&e->mail_cv, &e->wake_mu);
				continue;
			}
			ts.tv_sec = (time_t)next;
			ts.tv_nsec = 0;
			if (pthread_cond_timedwait(&e->mail_cv, &e->wake_mu, &ts) != 0)
				break;
		}
		e->mail_wake = 0;
		pthread_mutex_unlock(&e->wake_mu);
	}
	return NULL;
}
