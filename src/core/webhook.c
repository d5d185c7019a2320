/*
 * webhook.c — owns the webhooks of notify.webhooks: their config and its checks, which
 * audit events each takes, the documents receivers get (the generic JSON, signed with
 * HMAC-SHA256 over the timestamp and the body; Slack-compatible blocks, every user text
 * escaped), and the one HTTPS POST of a delivery. The queue and the thread that sends
 * are the engine's (engine_webhook.c); docs/webhooks.md is the receivers' side.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <curl/curl.h>
#include <sodium.h>

#include "elevate/config.h"
#include "elevate/webhook.h"

#define HO(m) offsetof(struct config_webhook, m)
#define ANSWER_SHOWN 120            /* bytes of a refusing answer quoted in the error */
#define ANSWER_MAX (1024 * 1024)    /* an answer longer than this is cut off (an error) */
#define SLACK_TEXT_MAX 600          /* bytes of one user text in a Slack message */

const char *const webhook_default_events[] = {
	"request.created", "request.approved", "request.denied", "request.break_glass",
	"request.break_glass_escalated", "request.break_glass_rejected", "grant.activated",
	"grant.ended", "request.lapsed", "request.failed", NULL,
};

const char *const webhook_known_events[] = {
	"request.created", "request.approved", "request.denied", "request.break_glass",
	"request.break_glass_escalated", "request.break_glass_rejected", "grant.activated",
	"grant.ended", "request.lapsed", "request.failed",
	"request.cancelled", "request.auto_approved", "request.break_glass_ratified",
	"request.approval", "request.denial", "request.extension_applied",
	"grant.revoke_requested", "grant.window_ended", "grant.extended", "grant.reminted",
	"grant.revocation_verified", "grant.revocation_unverified", "session.started",
	"session.terminated", "mail.failed", "revocation.failed", "webhook.failed",
	"daemon.started", "daemon.stopped", "bundle.created", NULL,
};

static const char *const kinds[] = {"generic", "slack", NULL};

/* ---- config ---- */

static bool
in_list(const char *const *v, const char *s)
{
	for (; *v != NULL; v++)
		if (strcmp(*v, s) == 0)
			return true;
	return false;
}

static bool
check_name(struct schema_ctx *c, const char *path, const char *s)
{
	size_t n = strlen(s);

	if (n >= 1 && n <= WEBHOOK_NAME_MAX && strspn(s, "abcdefghijklmnopqrstuvwxyz"
	    "0123456789_-") == n)
		return true;
	schema_problem(c, path, "1 to %d of a-z 0-9 _ -", WEBHOOK_NAME_MAX);
	return false;
}

/* A loopback host of an http:// URL: localhost, 127.0.0.0/8, [::1]. */
static bool
loopback(const char *host, size_t n)
{
	char h[64];
	unsigned char a[16];

	if (n == 0 || n >= sizeof(h))
		return false;
	memcpy(h, host, n);
	h[n] = '\0';
	if (strcmp(h, "localhost") == 0 || strcmp(h, "[::1]") == 0)
		return true;
	return inet_pton(AF_INET, h, a) == 1 && a[0] == 127;
}

static bool
check_url(struct schema_ctx *c, const char *path, const char *s)
{
	bool tls = strncmp(s, "https://", 8) == 0;
	const char *auth = s + (tls ? 8 : 7), *close;
	size_t n, hn;

	if (!tls && strncmp(s, "http://", 7) != 0) {
		schema_problem(c, path, "must start with https:// (or http:// to a loopback "
		    "address)");
		return false;
	}
	if (strpbrk(s, " \"<>\\^`{|}") != NULL) {
		schema_problem(c, path, "must not contain spaces, quotes, <, >, \\ or braces "
		    "(percent-encode them)");
		return false;
	}
	n = strcspn(auth, "/?#");
	if (memchr(auth, '@', n) != NULL) {
		schema_problem(c, path, "must not carry a user name or password (user@host)");
		return false;
	}
	/* The host: up to the port, or a bracketed IPv6 address with its brackets. */
	if (auth[0] == '[' && (close = memchr(auth, ']', n)) != NULL)
		hn = (size_t)(close - auth) + 1;
	else
		hn = strcspn(auth, ":/?#");
	if (hn == 0) {
		schema_problem(c, path, "has no host");
		return false;
	}
	if (!tls && !loopback(auth, hn)) {
		schema_problem(c, path, "http:// is allowed only to a loopback address "
		    "(localhost, 127.0.0.1, [::1]): use https://");
		return false;
	}
	return true;
}

static bool
check_event(struct schema_ctx *c, const char *path, const char *s)
{
	char q[SCHEMA_SHOW_LEN];
	const char *near;
	size_t n = 0;

	if (in_list(webhook_known_events, s))
		return true;
	while (webhook_known_events[n] != NULL)
		n++;
	near = schema_suggest(s, webhook_known_events, n, sizeof(char *), 0);
	schema_problem(c, path, "\"%s\" is not an event webhooks can take%s%s%s (docs/webhooks.md "
	    "lists them)", schema_show(q, sizeof(q), s), near ? " (did you mean " : "",
	    near ? near : "", near ? "?)" : "");
	return false;
}

static const struct schema_field hook_fields[] = {
	{ .key = "name", .kind = SF_STR, .required = true, .max = WEBHOOK_NAME_MAX,
	  .off = HO(name), .check = check_name },
	{ .key = "url", .kind = SF_STR, .required = true, .min = 1, .max = WEBHOOK_URL_MAX,
	  .off = HO(url), .check = check_url },
	{ .key = "kind", .kind = SF_STR, .required = true, .max = 16, .off = HO(kind),
	  .one_of = kinds },
	{ .key = "secret_file", .kind = SF_STR, .min = 1, .max = 4096, .off = HO(secret_file),
	  .null_ok = true },
	{ .key = "events", .kind = SF_STRLIST, .min = 1, .max = 64, .item_max = 64,
	  .off = HO(events), .off2 = HO(nevents), .check = check_event },
};
static const struct schema hook_schema = SCHEMA(hook_fields);

/* The key file as far as stat tells (the engine reads it at start): there, a regular
 * file no other user may read, long enough. */
static void
check_key_file(struct schema_ctx *c, const char *path, const char *file)
{
	struct stat st;

	if (stat(file, &st) != 0)
		schema_problem(c, path, "%s: cannot be read (%s)", file, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		schema_problem(c, path, "%s: not a regular file", file);
	else if ((st.st_mode & 007) != 0)
		schema_problem(c, path, "%s: mode %03o lets every user read the key; run chmod 600 "
		    "(or 640) on it", file, (unsigned)(st.st_mode & 0777));
	else if (st.st_size < WEBHOOK_KEY_MIN)
		schema_problem(c, path, "%s: holds fewer than %d bytes; write a random key, e.g. "
		    "openssl rand -hex 32 > %s", file, WEBHOOK_KEY_MIN, file);
	else if (st.st_size > EL_PASSWORD_MAX + 2)
		schema_problem(c, path, "%s: longer than %d bytes", file, EL_PASSWORD_MAX);
}

void
webhook_config_set(struct schema_ctx *c, const struct schema_field *f, const char *path,
    json_t *v, void *dst)
{
	struct config *cfg = dst;
	struct config_webhook *out = NULL, h;
	char ip[SCHEMA_PATH_LEN], kp[SCHEMA_PATH_LEN], q[SCHEMA_SHOW_LEN];
	size_t i, j, n = 0, before;
	json_t *it;

	(void)f;
	if (!json_is_array(v)) {
		schema_wrong_type(c, path, "a list of webhooks ({\"name\", \"url\", \"kind\", ...})",
		    v);
		return;
	}
	if (json_array_size(v) > WEBHOOK_MAX) {
		schema_problem(c, path, "lists %zu webhooks; at most %d are allowed",
		    json_array_size(v), WEBHOOK_MAX);
		return;
	}
	if (cfg != NULL && json_array_size(v) > 0 &&
	    (out = calloc(json_array_size(v), sizeof(*out))) == NULL) {
		schema_oom(c);
		return;
	}
	json_array_foreach(v, i, it) {
		schema_path_idx(ip, sizeof(ip), path, i);
		if (!json_is_object(it)) {
			schema_wrong_type(c, ip, "an object {\"name\", \"url\", \"kind\", ...}", it);
			continue;
		}
		memset(&h, 0, sizeof(h));
		before = c->n;
		schema_apply(c, &hook_schema, it, ip, &h);
		if (h.kind != NULL && strcmp(h.kind, "generic") == 0 && h.secret_file == NULL) {
			schema_path_key(kp, sizeof(kp), ip, "secret_file");
			schema_problem(c, kp, "is required for a generic webhook: a file holding the "
			    "HMAC-SHA256 key receivers verify the signature with");
		} else if (h.kind != NULL && strcmp(h.kind, "slack") == 0 && h.secret_file != NULL) {
			schema_path_key(kp, sizeof(kp), ip, "secret_file");
			schema_problem(c, kp, "is for generic webhooks: Slack does not check "
			    "signatures (its URL is the secret)");
		} else if (h.secret_file != NULL) {
			schema_path_key(kp, sizeof(kp), ip, "secret_file");
			check_key_file(c, kp, h.secret_file);
		}
		for (j = 0; h.name != NULL && j < i; j++)
			if (json_is_string(json_object_get(json_array_get(v, j), "name")) &&
			    strcmp(json_string_value(json_object_get(json_array_get(v, j), "name")),
			    h.name) == 0) {
				schema_path_key(kp, sizeof(kp), ip, "name");
				schema_problem(c, kp, "\"%s\" names another webhook too; names must be "
				    "unique", schema_show(q, sizeof(q), h.name));
			}
		if (out == NULL || c->n != before || h.name == NULL || h.url == NULL ||
		    h.kind == NULL) {
			schema_free(&hook_schema, &h);
			continue;
		}
		out[n++] = h;
	}
	if (cfg == NULL)
		return;
	webhook_config_free(cfg->webhooks, cfg->nwebhooks);
	cfg->webhooks = out;
	cfg->nwebhooks = n;
}

void
webhook_config_free(struct config_webhook *h, size_t n)
{
	size_t i;

	for (i = 0; h != NULL && i < n; i++)
		schema_free(&hook_schema, &h[i]);
	free(h);
}

bool
webhook_wants(const struct config_webhook *h, const char *event, json_t *data)
{
	size_t i;
	bool listed = false;

	if (h->events == NULL)
		listed = in_list(webhook_default_events, event);
	for (i = 0; i < h->nevents && !listed; i++)
		listed = strcmp(h->events[i], event) == 0;
	if (!listed)
		return false;
	/* request.created tells that approvers are wanted: not when the request is active
	 * at once (request.break_glass follows) or approved by a rule (request.approved). */
	if (strcmp(event, "request.created") == 0)
		return !json_is_true(json_object_get(data, "break_glass")) &&
		    json_object_get(data, "auto_rule") == NULL;
	/* A webhook's own failures would feed themselves. */
	if (strcmp(event, "webhook.failed") == 0) {
		const char *which = json_string_value(json_object_get(data, "webhook"));
		return which == NULL || strcmp(which, h->name) != 0;
	}
	return true;
}

/* ---- documents ---- */

json_t *
webhook_payload(const char *event, int64_t seq, int64_t now, const char *actor,
    const char *request_id, json_t *data, const struct store_request *r, bool glass,
    const char *public_url)
{
	json_t *o, *req = NULL, *links;
	char page[WEBHOOK_URL_MAX];

	o = json_pack("{s:s, s:I, s:o, s:s, s:o, s:o}", "event", event, "seq", (json_int_t)seq,
	    "time", el_time_json(now), "actor", actor, "request_id",
	    request_id ? json_string(request_id) : json_null(),
	    "data", json_is_object(data) ? json_deep_copy(data) : json_object());
	if (o == NULL)
		return NULL;
	if (r != NULL) {
		req = json_pack("{s:s, s:s, s:s, s:s, s:I, s:o, s:o, s:o, s:o, s:o}",
		    "id", r->id, "profile", r->profile, "requester", r->requester,
		    "state", lifecycle_state_name(r->state), "duration", (json_int_t)r->duration,
		    "reason", r->reason ? json_string(r->reason) : json_null(),
		    "ticket", r->ticket ? json_string(r->ticket) : json_null(),
		    "window_start", el_time_json(r->window_start),
		    "window_end", el_time_json(r->window_end),
		    "extends", r->parent_id ? json_string(r->parent_id) : json_null());
		if (req != NULL && glass)
			json_object_set_new(req, "break_glass", json_true());
	}
	json_object_set_new(o, "request", req ? req : json_null());
	links = json_object();
	if (request_id != NULL && public_url != NULL) {
		snprintf(page, sizeof(page), "%s/requests/%s", public_url, request_id);
		json_object_set_new(links, "approval_page", json_string(page));
	}
	json_object_set_new(o, "links", links);
	return o;
}

/* ---- Slack ---- */

/* Appends s with Slack's three control characters escaped (&, <, >), cut at max bytes
 * on a character boundary (then "..."). */
static void
md_add(struct dbuf *b, const char *s, size_t max)
{
	size_t i, n = strlen(s);
	bool cut = n > max;

	if (cut) {
		n = max;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	for (i = 0; i < n; i++) {
		switch (s[i]) {
		case '&': dbuf_adds(b, "&amp;"); break;
		case '<': dbuf_adds(b, "&lt;"); break;
		case '>': dbuf_adds(b, "&gt;"); break;
		default: dbuf_add(b, s + i, 1); break;
		}
	}
	if (cut)
		dbuf_adds(b, "...");
}

static const char *
str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

struct phrase {
	const char *event;
	const char *text;   /* %R requester, %P profile, %A actor, %D duration, %E window end */
	const char *button; /* NULL: no button */
};

static const struct phrase phrases[] = {
	{"request.created", ":raising_hand: *%R* asks for *%P* for %D", "Approve or deny"},
	{"request.approved", ":white_check_mark: %A approved *%R*'s request for *%P*", NULL},
	{"request.denied", ":no_entry: %A denied *%R*'s request for *%P*", NULL},
	{"request.break_glass", ":rotating_light: *%R* broke the glass: *%P* for %D, active "
	    "without approval, to be reviewed", "Review"},
	{"request.break_glass_escalated", ":rotating_light: Nobody has reviewed *%R*'s "
	    "break-glass access to *%P* in time", "Review"},
	{"request.break_glass_rejected", ":no_entry: %A rejected *%R*'s break-glass access to "
	    "*%P*: it is revoked", NULL},
	{"request.break_glass_ratified", ":white_check_mark: %A ratified *%R*'s break-glass "
	    "access to *%P*", NULL},
	{"grant.activated", ":unlock: *%R* has *%P* until %E", NULL},
	{"grant.ended", ":lock: *%R*'s access to *%P* ended", NULL},
	{"request.lapsed", ":hourglass: *%R*'s request for *%P* lapsed without a decision", NULL},
	{"request.failed", ":x: *%R*'s request for *%P* failed", NULL},
	{"request.cancelled", "*%R* cancelled the request for *%P*", NULL},
};

static void
expand(struct dbuf *b, const char *fmt, json_t *p, json_t *req)
{
	char buf[64];
	const char *v;

	for (; *fmt != '\0'; fmt++) {
		if (*fmt != '%' || fmt[1] == '\0') {
			dbuf_add(b, fmt, 1);
			continue;
		}
		switch (*++fmt) {
		case 'R': md_add(b, str(req, "requester"), 100); break;
		case 'P': md_add(b, str(req, "profile"), 100); break;
		case 'A':
			v = str(p, "actor");
			md_add(b, strcmp(v, "system") == 0 ? "elevate" : v, 100);
			break;
		case 'D':
			el_format_duration(json_integer_value(json_object_get(req, "duration")), buf,
			    sizeof(buf));
			dbuf_adds(b, buf);
			break;
		case 'E':
			v = str(req, "window_end");
			dbuf_adds(b, *v != '\0' ? v : "the window's end");
			break;
		default: dbuf_add(b, fmt, 1); break;
		}
	}
}

static void
add_field(json_t *fields, const char *label, const char *value)
{
	struct dbuf b;

	if (value == NULL || *value == '\0' || json_array_size(fields) >= 10)
		return;
	dbuf_init(&b, 4096);
	dbuf_printf(&b, "*%s*\n", label);
	md_add(&b, value, SLACK_TEXT_MAX);
	if (b.p != NULL)
		json_array_append_new(fields, json_pack("{s:s, s:s}", "type", "mrkdwn", "text",
		    b.p));
	dbuf_free(&b);
}

static json_t *
mrkdwn_section(const char *text)
{
	return json_pack("{s:s, s:{s:s, s:s}}", "type", "section", "text", "type", "mrkdwn",
	    "text", text);
}

char *
webhook_slack_body(json_t *p)
{
	const struct phrase *ph = NULL;
	const char *event = str(p, "event"), *page;
	json_t *req = json_object_get(p, "request"), *data = json_object_get(p, "data");
	json_t *blocks = json_array(), *fields = json_array(), *doc;
	struct dbuf head, ctx;
	char dur[32], win[96], *out = NULL;
	size_t i;

	dbuf_init(&head, 4096);
	dbuf_init(&ctx, 1024);
	for (i = 0; i < sizeof(phrases) / sizeof(phrases[0]); i++)
		if (strcmp(phrases[i].event, event) == 0 && json_is_object(req))
			ph = &phrases[i];
	if (ph != NULL)
		expand(&head, ph->text, p, req);
	else {
		dbuf_adds(&head, ":information_source: `");
		md_add(&head, event, 64);
		dbuf_adds(&head, "`");
	}
	json_array_append_new(blocks, mrkdwn_section(head.p ? head.p : ""));
	if (json_is_object(req)) {
		add_field(fields, "Requester", str(req, "requester"));
		add_field(fields, "Profile", str(req, "profile"));
		el_format_duration(json_integer_value(json_object_get(req, "duration")), dur,
		    sizeof(dur));
		if (json_is_string(json_object_get(req, "window_start"))) {
			snprintf(win, sizeof(win), "%s to %s", str(req, "window_start"),
			    str(req, "window_end"));
			add_field(fields, "Window", win);
		} else
			add_field(fields, "Duration", dur);
		add_field(fields, "Reason", str(req, "reason"));
		add_field(fields, "Ticket", str(req, "ticket"));
		add_field(fields, "State", str(req, "state"));
		if (json_is_true(json_object_get(req, "break_glass")))
			add_field(fields, "Break-glass", "yes: active without approval");
		add_field(fields, "Comment", str(data, "comment"));
		if (strcmp(event, "request.failed") == 0) {
			add_field(fields, "Code", str(data, "code"));
			add_field(fields, "Why", str(data, "message"));
		}
	} else {
		const char *k;
		json_t *v;

		json_object_foreach(data, k, v)
			if (json_is_string(v))
				add_field(fields, k, json_string_value(v));
	}
	if (json_array_size(fields) > 0)
		json_array_append_new(blocks, json_pack("{s:s, s:O}", "type", "section", "fields",
		    fields));
	dbuf_adds(&ctx, "elevate");
	if (json_is_string(json_object_get(p, "request_id"))) {
		dbuf_adds(&ctx, " · `");
		md_add(&ctx, str(p, "request_id"), 64);
		dbuf_adds(&ctx, "`");
	}
	dbuf_adds(&ctx, " · ");
	md_add(&ctx, event, 64);
	dbuf_adds(&ctx, " · ");
	md_add(&ctx, str(p, "time"), 64);
	json_array_append_new(blocks, json_pack("{s:s, s:[{s:s, s:s}]}", "type", "context",
	    "elements", "type", "mrkdwn", "text", ctx.p ? ctx.p : ""));
	page = json_string_value(json_object_get(json_object_get(p, "links"), "approval_page"));
	if (ph != NULL && ph->button != NULL && page != NULL)
		json_array_append_new(blocks, json_pack("{s:s, s:[{s:s, s:s, s:{s:s, s:s}, s:s}]}",
		    "type", "actions", "elements", "type", "button", "action_id", "elevate_open",
		    "text", "type", "plain_text", "text", ph->button, "url", page));
	doc = json_pack("{s:s, s:O}", "text", head.p ? head.p : "", "blocks", blocks);
	if (doc != NULL)
		out = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	json_decref(blocks);
	json_decref(fields);
	dbuf_free(&head);
	dbuf_free(&ctx);
	return out;
}

/* ---- signing and sending ---- */

void
webhook_signature(const unsigned char *key, size_t keylen, int64_t ts, const char *body,
    size_t len, char out[68])
{
	crypto_auth_hmacsha256_state st;
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	char t[24];

	snprintf(t, sizeof(t), "%lld.", (long long)ts);
	crypto_auth_hmacsha256_init(&st, key, keylen);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)t, strlen(t));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, len);
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_memzero(&st, sizeof(st));
	memcpy(out, "v1=", 3);
	el_hex(mac, sizeof(mac), out + 3);
}

struct answer {
	char start[ANSWER_SHOWN + 1];
	size_t len;
};

static size_t
on_answer(char *ptr, size_t size, size_t n, void *arg)
{
	struct answer *a = arg;
	size_t got = size * n, k;

	if (a->len < ANSWER_SHOWN) {
		k = got < ANSWER_SHOWN - a->len ? got : ANSWER_SHOWN - a->len;
		memcpy(a->start + a->len, ptr, k);
		a->start[a->len + k] = '\0';
	}
	a->len += got;
	return a->len > ANSWER_MAX ? 0 : got;
}

static int
on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	const struct webhook_post *p = arg;

	(void)dt, (void)dn, (void)ut, (void)un;
	return p->cancel != NULL && p->cancel(p->cancel_arg) ? 1 : 0;
}

static enum el_err
add_header(struct curl_slist **l, const char *name, const char *value)
{
	char line[256];
	struct curl_slist *n;

	/* "Name:" alone takes curl's own header of that name away. */
	snprintf(line, sizeof(line), "%s:%s%s", name, value ? " " : "", value ? value : "");
	if ((n = curl_slist_append(*l, line)) == NULL)
		return EL_ENOMEM;
	*l = n;
	return EL_OK;
}

enum el_err
webhook_post(const struct webhook_post *p, long *status, struct el_why *w)
{
	struct curl_slist *hl = NULL;
	struct answer a;
	char errbuf[CURL_ERROR_SIZE] = "", ts[24], sig[68], shown[SCHEMA_SHOW_LEN];
	int64_t now = el_now();
	CURL *h;
	CURLcode cc;
	enum el_err r = EL_OK;

	*status = 0;
	memset(&a, 0, sizeof(a));
	if ((h = curl_easy_init()) == NULL)
		return el_fail(w, EL_ENOMEM, "cannot start an HTTP transfer");
	snprintf(ts, sizeof(ts), "%lld", (long long)now);
	if ((r = add_header(&hl, "Content-Type", "application/json")) != EL_OK ||
	    (r = add_header(&hl, "User-Agent", "elevate-webhook/1")) != EL_OK ||
	    (r = add_header(&hl, "X-Elevate-Delivery", p->delivery_id)) != EL_OK ||
	    (r = add_header(&hl, "X-Elevate-Event", p->event)) != EL_OK ||
	    (r = add_header(&hl, "X-Elevate-Timestamp", ts)) != EL_OK ||
	    (r = add_header(&hl, "Expect", NULL)) != EL_OK) {   /* no 100-continue wait */
		r = el_fail(w, EL_ENOMEM, "out of memory");
		goto out;
	}
	if (p->key != NULL) {
		webhook_signature(p->key, p->keylen, now, p->body, p->len, sig);
		if ((r = add_header(&hl, "X-Elevate-Signature", sig)) != EL_OK) {
			el_fail(w, r, "out of memory");
			goto out;
		}
	}
	curl_easy_setopt(h, CURLOPT_URL, p->url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, p->timeout_ms < 5000 ? p->timeout_ms :
	    5000L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, p->timeout_ms);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, p->body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)p->len);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_answer);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &a);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, p);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	if ((cc = curl_easy_perform(h)) != CURLE_OK) {
		r = el_fail(w, cc == CURLE_OPERATION_TIMEDOUT ? EL_ETIMEOUT : EL_ENET, "%s",
		    cc == CURLE_ABORTED_BY_CALLBACK ? "cut short: the broker is stopping" :
		    errbuf[0] ? errbuf : curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	if (*status < 200 || *status > 299)
		r = el_fail(w, EL_ENET, "HTTP %ld%s%s", *status, a.len ? ": " : "",
		    a.len ? schema_show(shown, sizeof(shown), a.start) : "");
out:
	curl_slist_free_all(hl);
	curl_easy_cleanup(h);
	return r;
}
