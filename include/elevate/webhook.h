/*
 * webhook.h — chat and webhook notices of audit events (notify.webhooks): the config of
 * each webhook and its checks, which events a webhook takes, the JSON a receiver gets
 * (generic, signed with HMAC-SHA256; or Slack-compatible blocks), and one HTTPS POST. The
 * only code that speaks HTTP to webhook receivers; the engine (engine_webhook.c) queues
 * the deliveries in the store and runs the thread that sends them. docs/webhooks.md is
 * the receivers' side.
 */
#ifndef ELEVATE_WEBHOOK_H
#define ELEVATE_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "elevate/el.h"
#include "elevate/schema.h"
#include "elevate/store.h"

#define WEBHOOK_MAX 16              /* webhooks in notify.webhooks */
#define WEBHOOK_NAME_MAX 32
#define WEBHOOK_URL_MAX 2048
#define WEBHOOK_KEY_MIN 16          /* bytes of a generic webhook's HMAC key */
#define WEBHOOK_BODY_MAX (128 * 1024)   /* a payload, generic or Slack, never exceeds this */
#define WEBHOOK_ID_LEN 28           /* "dlv_" + 24 characters */

/* One entry of notify.webhooks (config.h's struct config holds an array of them). */
struct config_webhook {
	char *name;                 /* [a-z0-9_-]{1,32}, unique */
	char *url;                  /* https://, or http:// to a loopback address */
	char *kind;                 /* "generic" | "slack" */
	char *secret_file;          /* generic: the HMAC key, alone in a file; slack: NULL */
	char **events;              /* NULL: the default set (webhook_default_events) */
	size_t nevents;
};

/* The schema's custom setter of notify.webhooks: validates the list (every problem with
 * its JSON path) and stores it into dst, a struct config. */
void webhook_config_set(struct schema_ctx *c, const struct schema_field *f, const char *path,
    json_t *v, void *dst);
void webhook_config_free(struct config_webhook *h, size_t n);

/* NULL-terminated: the events a webhook takes without "events", and all it may name. */
extern const char *const webhook_default_events[];
extern const char *const webhook_known_events[];

/*
 * Does webhook h take audit event `event` (data: the record's)? Its list (or the default
 * set) names it, except: request.created only for a request that waits for approvers (not
 * a break-glass one, nor one an auto-approval rule approves in the same transaction), and
 * never h's own webhook.failed.
 */
bool webhook_wants(const struct config_webhook *h, const char *event, json_t *data);

/*
 * The generic document of one event, without delivery_id and webhook (set per delivery):
 * {event, seq, time, actor, request_id, request, data, links}. r: the request as the
 * event's transaction left it (NULL for events of no request); glass: it is break-glass.
 * New reference.
 */
json_t *webhook_payload(const char *event, int64_t seq, int64_t now, const char *actor,
    const char *request_id, json_t *data, const struct store_request *r, bool glass,
    const char *public_url);

/* The Slack incoming-webhook message ({"text", "blocks"}) of a generic document.
 * Caller frees. NULL when out of memory. */
char *webhook_slack_body(json_t *payload);

/* "v1=" + hex(HMAC-SHA256(key, decimal(ts) + "." + body)) into out (68 bytes). */
void webhook_signature(const unsigned char *key, size_t keylen, int64_t ts, const char *body,
    size_t len, char out[68]);

struct webhook_post {
	const char *url;
	const char *body;
	size_t len;
	const char *delivery_id, *event;
	const unsigned char *key;   /* generic: the HMAC key; NULL: unsigned (slack) */
	size_t keylen;
	long timeout_ms;
	/* Called while the POST runs; non-zero aborts it (the engine is stopping). */
	int (*cancel)(void *arg);
	void *cancel_arg;
};

/*
 * POSTs p->body as application/json to p->url (no redirects; TLS verified against the
 * system's CA store), with X-Elevate-Delivery, X-Elevate-Event, X-Elevate-Timestamp and,
 * with a key, X-Elevate-Signature. EL_OK on a 2xx answer; otherwise why (the status and
 * the start of the answer, or curl's error) in w. *status: the HTTP status, 0 for none.
 * The URL is never put in w: a Slack URL is itself a secret.
 */
enum el_err webhook_post(const struct webhook_post *p, long *status, struct el_why *w);

#endif
