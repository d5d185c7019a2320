/*
 * test_webhook.c — what a webhook receiver relies on: the signature (checked against
 * Python's hmac, as docs/webhooks.md verifies it), which events a webhook takes, the
 * generic document of an event, and Slack blocks with every user text escaped and the
 * button only where a decision is wanted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "elevate/webhook.h"

static void
signature_matches_python(void **state)
{
	const char *key = "whsec-unit-0123456789abcdef", *body = "{\"event\":\"request.created\"}";
	char sig[68];

	(void)state;
	/* python3 -c "import hmac, hashlib; print(hmac.new(KEY, b'1700000000.' + BODY,
	 * hashlib.sha256).hexdigest())" */
	webhook_signature((const unsigned char *)key, strlen(key), 1700000000, body, strlen(body),
	    sig);
	assert_string_equal(sig, "v1=a670511fa2bf14741f11c89a953bfed0a57f748766583ef4b5ea5b4f8a4e7adb");
	/* Another timestamp, another signature: a replayed body with a new time fails. */
	webhook_signature((const unsigned char *)key, strlen(key), 1700000001, body, strlen(body),
	    sig);
	assert_string_not_equal(sig, "v1=a670511fa2bf14741f11c89a953bfed0a57f748766583ef4b5ea5b4f8a4e7adb");
}

static void
which_events(void **state)
{
	char *only[] = {"grant.ended", "webhook.failed"};
	struct config_webhook dflt = {.name = "ops"}, some = {.name = "chat", .events = only,
	    .nevents = 2};
	json_t *plain = json_pack("{s:s}", "profile", "p");
	json_t *glass = json_pack("{s:b}", "break_glass", 1);
	json_t *rule = json_pack("{s:s}", "auto_rule", "dev-self");
	json_t *own = json_pack("{s:s}", "webhook", "chat"), *other = json_pack("{s:s}",
	    "webhook", "ops");

	(void)state;
	assert_true(webhook_wants(&dflt, "request.created", plain));
	assert_false(webhook_wants(&dflt, "request.created", glass));
	assert_false(webhook_wants(&dflt, "request.created", rule));
	assert_true(webhook_wants(&dflt, "request.break_glass", glass));
	assert_true(webhook_wants(&dflt, "grant.ended", NULL));
	assert_false(webhook_wants(&dflt, "grant.credentials_fetched", NULL));
	assert_false(webhook_wants(&dflt, "webhook.failed", other));   /* not by default */
	assert_true(webhook_wants(&some, "grant.ended", NULL));
	assert_false(webhook_wants(&some, "request.created", plain));
	assert_true(webhook_wants(&some, "webhook.failed", other));
	assert_false(webhook_wants(&some, "webhook.failed", own));     /* its own failure */
	json_decref(plain);
	json_decref(glass);
	json_decref(rule);
	json_decref(own);
	json_decref(other);
}

static void
mkreq(struct store_request *r)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->id, sizeof(r->id), "req_abc234");
	snprintf(r->profile, sizeof(r->profile), "prod<admin>");
	snprintf(r->requester, sizeof(r->requester), "alice");
	r->state = RS_PENDING;
	r->duration = 900;
	r->reason = "fix <!channel> & <https://evil.example|click>";
	r->ticket = "INC-1";
}

static void
generic_document(void **state)
{
	struct store_request r;
	json_t *data = json_pack("{s:s}", "profile", "prod<admin>"), *p, *req;

	(void)state;
	mkreq(&r);
	p = webhook_payload("request.created", 42, 1795317960, "alice", r.id, data, &r, true,
	    "https://elevate.example.com");
	assert_non_null(p);
	assert_string_equal(json_string_value(json_object_get(p, "event")), "request.created");
	assert_int_equal(json_integer_value(json_object_get(p, "seq")), 42);
	assert_string_equal(json_string_value(json_object_get(p, "time")),
	    "2026-11-22T03:26:00Z");
	req = json_object_get(p, "request");
	assert_string_equal(json_string_value(json_object_get(req, "state")), "pending");
	assert_string_equal(json_string_value(json_object_get(req, "reason")), r.reason);
	assert_true(json_is_null(json_object_get(req, "window_start")));
	assert_true(json_is_true(json_object_get(req, "break_glass")));
	assert_string_equal(json_string_value(json_object_get(json_object_get(p, "links"),
	    "approval_page")), "https://elevate.example.com/requests/req_abc234");
	/* The record's data is a copy: the caller's stays as it was. */
	json_object_set_new(json_object_get(p, "data"), "x", json_true());
	assert_null(json_object_get(data, "x"));
	json_decref(p);
	/* An event of no request: request null, no link. */
	p = webhook_payload("mail.failed", 43, 1795317960, "system", NULL, NULL, NULL, false,
	    "https://elevate.example.com");
	assert_true(json_is_null(json_object_get(p, "request")));
	assert_true(json_is_null(json_object_get(p, "request_id")));
	assert_int_equal(json_object_size(json_object_get(p, "links")), 0);
	json_decref(p);
	json_decref(data);
}

/* Every mrkdwn text of the message, joined. */
static void
texts(json_t *v, char *out, size_t len)
{
	const char *k;
	json_t *it;
	size_t i;

	if (json_is_object(v)) {
		json_object_foreach(v, k, it) {
			if (strcmp(k, "text") == 0 && json_is_string(it)) {
				strncat(out, json_string_value(it), len - strlen(out) - 1);
				strncat(out, "\n", len - strlen(out) - 1);
			} else
				texts(it, out, len);
		}
	} else if (json_is_array(v))
		json_array_foreach(v, i, it)
			texts(it, out, len);
}

static void
slack_blocks(void **state)
{
	struct store_request r;
	json_t *p, *m, *blocks, *act;
	char *body, all[8192] = "";

	(void)state;
	mkreq(&r);
	p = webhook_payload("request.created", 42, 1795317960, "alice", r.id, NULL, &r, false,
	    "https://elevate.example.com");
	body = webhook_slack_body(p);
	assert_non_null(body);
	m = json_loads(body, 0, NULL);
	assert_non_null(m);
	blocks = json_object_get(m, "blocks");
	assert_int_equal(json_array_size(blocks), 4);
	texts(m, all, sizeof(all));
	/* Slack's control characters in user text are escaped: no mention, no link. */
	assert_non_null(strstr(all, "fix &lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;"));
	assert_non_null(strstr(all, "*prod&lt;admin&gt;*"));
	assert_null(strstr(all, "<!channel>"));
	assert_null(strstr(all, "<https://evil"));
	act = json_array_get(blocks, 3);
	assert_string_equal(json_string_value(json_object_get(act, "type")), "actions");
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(act,
	    "elements"), 0), "url")), "https://elevate.example.com/requests/req_abc234");
	json_decref(m);
	free(body);
	json_decref(p);

	/* Told, not asked: no button. */
	r.state = RS_ENDED;
	p = webhook_payload("grant.ended", 50, 1795317960, "system", r.id, NULL, &r, false,
	    "https://elevate.example.com");
	body = webhook_slack_body(p);
	m = json_loads(body, 0, NULL);
	blocks = json_object_get(m, "blocks");
	assert_string_equal(json_string_value(json_object_get(json_array_get(blocks,
	    json_array_size(blocks) - 1), "type")), "context");
	assert_non_null(strstr(json_string_value(json_object_get(m, "text")), "ended"));
	json_decref(m);
	free(body);
	json_decref(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(signature_matches_python),
		cmocka_unit_test(which_events),
		cmocka_unit_test(generic_document),
		cmocka_unit_test(slack_blocks),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
