/*
 * test_policy.c — policy loading (every problem reported with file and JSON path),
 * request/approver decisions, quorum across groups, SSM scope, diagnostics, refcounting.
 * Table driven: each row of a table is its own named cmocka test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "elevate/diag.h"
#include "elevate/el.h"
#include "elevate/policy.h"

/* ------------------------------------------------------------------ documents */

/* Placeholder Ed25519 keys: 31 zero bytes and one distinct byte each. */
#define KEY(last) "\"ed25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" last "\""
#define USER(n, k) "\"" n "\": {\"email\": \"" n "@example.com\", \"keys\": [" KEY(k) "]}"

#define USERS "\"users\": {" USER("alice", "E=") "," USER("bob", "I=") "," \
	USER("carol", "M=") "," USER("dave", "Q=") "," USER("erin", "U=") "," \
	USER("frank", "Y=") "," USER("gina", "c=") "}"
/* gina is in both sre-leads and security: the cross-group quorum cases rely on it. */
#define GROUPS "\"groups\": {\"engineers\": [\"alice\", \"bob\", \"frank\"], " \
	"\"sre-leads\": [\"carol\", \"dave\", \"gina\"], \"security\": [\"erin\", \"gina\"], " \
	"\"platform-admins\": [\"frank\"]}"

#define ARN "\"role_arn\": \"arn:aws:iam::111122223333:role/R\""
#define REQ "\"requesters\": [\"group:engineers\"]"
#define APP "\"approvers\": [\"group:sre-leads\"]"
#define P_MIN ARN ", " REQ ", " APP
/* A document with the common users and groups and one profile "p" with this body. */
#define DOCP(body) "{" USERS ", " GROUPS ", \"profiles\": {\"p\": {" body "}}}"

static const char decisions_doc[] = "{" USERS ", " GROUPS ", \"profiles\": {"
	"\"prod-readonly\": {" ARN ", " REQ ", " APP ", \"default_duration\": \"15m\", "
	"  \"max_duration\": \"1h\", \"ticket_pattern\": \"^(INC|CHG)-[0-9]+$\", "
	"  \"ssm\": {\"targets\": [\"i-0123456789abcdef0\"], \"target_tags\": {\"env\": \"prod\"}, "
	"          \"documents\": [\"SSM-SessionManagerRunShell\", \"AWS-StartPortForwardingSession\"]}},"
	"\"prod-admin\": {" ARN ", \"requesters\": [\"group:sre-leads\", \"group:platform-admins\"], "
	"  \"approvers\": [{\"from\": \"group:sre-leads\", \"count\": 1}, "
	"                {\"from\": \"group:security\", \"count\": 1}], \"max_duration\": \"30m\"},"
	"\"dev-poweruser\": {" ARN ", \"requesters\": [\"group:engineers\", \"group:sre-leads\"], "
	"  " APP ", \"allow_self_approval\": true, \"default_duration\": \"1h\", "
	"  \"max_duration\": \"8h\", \"ssm\": {\"target_tags\": {\"env\": \"dev\"}}},"
	"\"one\": {" ARN ", \"requesters\": [\"group:engineers\", \"group:sre-leads\"], " APP "},"
	"\"two\": {" ARN ", " REQ ", " APP ", \"approvals_required\": 2},"
	"\"multi\": {" ARN ", " REQ ", \"approvers\": [\"group:security\", \"carol\"], "
	"  \"approvals_required\": 2, \"reason_required\": false}"
	"}}";

static struct policy *P;   /* decisions_doc, loaded by the group setup */

/* All problems of d as printed, one per line (caller frees). */
static char *
diags_text(const struct diags *d)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	diags_print(d, f);
	fclose(f);
	return buf;
}

/* ------------------------------------------------------------------ load errors */

struct load_case {
	const char *name;
	const char *json;
	const char *want[4];    /* each must appear in the printed problems */
};

static struct load_case load_cases[] = {
	{ "load: mistyped key reports file, path and suggestion",
	  DOCP(P_MIN ", \"max_duraton\": \"1h\""),
	  { "t.json: $.profiles.p.max_duraton: unknown key (did you mean max_duration?)" } },
	{ "load: unknown key far from any known key",
	  DOCP(P_MIN ", \"colour\": \"blue\""),
	  { "t.json: $.profiles.p.colour: unknown key\n" } },
	{ "load: unknown group in approvers reports its path",
	  DOCP(ARN ", " REQ ", \"approvers\": [\"group:sre-lead\"]"),
	  { "t.json: $.profiles.p.approvers[0]: unknown group \"sre-lead\" (did you mean \"sre-leads\"?)" } },
	{ "load: unknown group in a quorum rule",
	  DOCP(ARN ", " REQ ", \"approvers\": [{\"from\": \"group:sre-leads\"}, {\"from\": \"group:secrity\"}]"),
	  { "$.profiles.p.approvers[1].from: unknown group \"secrity\"" } },
	{ "load: unknown user in requesters",
	  DOCP(ARN ", \"requesters\": [\"alicia\"], " APP),
	  { "$.profiles.p.requesters[0]: unknown user \"alicia\" (did you mean \"alice\"?)" } },
	{ "load: unknown user in a group",
	  "{" USERS ", \"groups\": {\"g\": [\"alice\", \"bobb\"]}}",
	  { "t.json: $.groups.g[1]: unknown user \"bobb\" (did you mean \"bob\"?)" } },
	{ "load: malformed duration",
	  DOCP(P_MIN ", \"max_duration\": \"1x\""),
	  { "$.profiles.p.max_duration: \"1x\" is not a duration" } },
	{ "load: duration given as a number",
	  DOCP(P_MIN ", \"pending_ttl\": 1800"),
	  { "$.profiles.p.pending_ttl: expected a duration such as \"15m\"", "got an integer" } },
	{ "load: max_duration above 12h",
	  DOCP(P_MIN ", \"max_duration\": \"13h\""),
	  { "$.profiles.p.max_duration: 13h is out of range (1m..12h)" } },
	{ "load: default_duration longer than max_duration",
	  DOCP(P_MIN ", \"default_duration\": \"2h\", \"max_duration\": \"1h\""),
	  { "$.profiles.p.default_duration: 2h is longer than max_duration 1h" } },
	{ "load: max_credential_duration below STS's 15m floor",
	  DOCP(P_MIN ", \"max_credential_duration\": \"10m\""),
	  { "$.profiles.p.max_credential_duration: 10m is out of range (15m..12h)" } },
	{ "load: role_arn with a short account",
	  DOCP("\"role_arn\": \"arn:aws:iam::1234:role/R\", " REQ ", " APP),
	  { "$.profiles.p.role_arn: \"arn:aws:iam::1234:role/R\" is not an IAM role ARN" } },
	{ "load: role_arn of a user, not a role",
	  DOCP("\"role_arn\": \"arn:aws:iam::111122223333:user/R\", " REQ ", " APP),
	  { "$.profiles.p.role_arn:", "is not an IAM role ARN" } },
	{ "load: bad region",
	  DOCP(P_MIN ", \"region\": \"tokyo\""),
	  { "$.profiles.p.region: \"tokyo\" is not an AWS region" } },
	{ "load: key of 3 bytes",
	  "{\"users\": {\"alice\": {\"email\": \"a@example.com\", \"keys\": [\"ed25519:AAAA\"]}}}",
	  { "$.users.alice.keys[0]: not an Ed25519 public key" } },
	{ "load: key without the ed25519: prefix",
	  "{\"users\": {\"alice\": {\"email\": \"a@example.com\", "
	  "\"keys\": [\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE=\"]}}}",
	  { "$.users.alice.keys[0]: not an Ed25519 public key" } },
	{ "load: two users sharing one key",
	  "{\"users\": {" USER("alice", "E=") ", \"bob\": {\"email\": \"bob@example.com\", "
	  "\"keys\": [" KEY("E=") "]}}}",
	  { "$.users.bob.keys[0]: this key is also a key of user \"alice\"" } },
	{ "load: two users sharing one mailbox",
	  "{\"users\": {" USER("alice", "E=") ", \"bob\": {\"email\": \"Alice@example.com\", "
	  "\"keys\": [" KEY("I=") "]}}}",
	  { "$.users.bob.email: user \"alice\" has the same email address" } },
	{ "load: email without @ and with two @",
	  "{\"users\": {\"alice\": {\"email\": \"alice.example.com\", \"keys\": [" KEY("E=") "]},"
	  "\"bob\": {\"email\": \"bob@x@example.com\", \"keys\": [" KEY("I=") "]}}}",
	  { "$.users.alice.email: \"alice.example.com\" is not an email address (it needs exactly one @)",
	    "$.users.bob.email: \"bob@x@example.com\" is not an email address" } },
	{ "load: bad user name",
	  "{\"users\": {\"al ice\": {\"email\": \"a@example.com\", \"keys\": [" KEY("E=") "]}}}",
	  { "$.users[\"al ice\"]: \"al ice\" is not a valid user name" } },
	{ "load: ticket_pattern that does not compile",
	  DOCP(P_MIN ", \"ticket_pattern\": \"(INC\""),
	  { "$.profiles.p.ticket_pattern: not a valid POSIX extended regular expression" } },
	{ "load: bad SSM instance id and document",
	  DOCP(P_MIN ", \"ssm\": {\"targets\": [\"i-xyz\"], \"documents\": [\"a b\"]}"),
	  { "$.profiles.p.ssm.targets[0]: \"i-xyz\" is not an EC2 instance id",
	    "$.profiles.p.ssm.documents[0]: \"a b\" is not an SSM document name" } },
	{ "load: mistyped key inside ssm",
	  DOCP(P_MIN ", \"ssm\": {\"target\": [\"i-0123456789abcdef0\"]}"),
	  { "$.profiles.p.ssm.target: unknown key (did you mean targets?)" } },
	{ "load: session_policy without Statement and with a bad Version",
	  DOCP(P_MIN ", \"session_policy\": {\"Version\": \"2020-01-01\"}"),
	  { "$.profiles.p.session_policy.Version: must be \"2012-10-17\"",
	    "$.profiles.p.session_policy: missing required key \"Statement\"" } },
	{ "load: more approvals required than people who can approve",
	  DOCP(ARN ", " REQ ", \"approvers\": [\"group:security\"], \"approvals_required\": 3"),
	  { "$.profiles.p.approvals_required: 3 approvals are required but only 2 people can approve (group:security)" } },
	{ "load: approvals_required disagrees with the rules",
	  DOCP(ARN ", " REQ ", \"approvers\": [{\"from\": \"group:sre-leads\", \"count\": 1}, "
	  "{\"from\": \"group:security\", \"count\": 1}], \"approvals_required\": 3"),
	  { "$.profiles.p.approvals_required: is 3 but the approver rules add up to 2" } },
	{ "load: rules that need more distinct people than exist",
	  DOCP(ARN ", " REQ ", \"approvers\": [{\"from\": \"group:security\", \"count\": 2}, "
	  "{\"from\": \"user:gina\", \"count\": 1}]"),
	  { "$.profiles.p.approvers: the rules need 3 different approvers but only 2 can be found" } },
	{ "load: approvers mixing principals and rules",
	  DOCP(ARN ", " REQ ", \"approvers\": [\"group:sre-leads\", {\"from\": \"erin\"}]"),
	  { "$.profiles.p.approvers[1]: mixes principals and rule objects" } },
	{ "load: principal of an unknown kind",
	  DOCP(ARN ", " REQ ", \"approvers\": [\"role:admin\"]"),
	  { "$.profiles.p.approvers[0]: \"role:admin\" is not a principal" } },
	{ "load: auto_approve not a list",
	  DOCP(P_MIN ", \"auto_approve\": {\"from\": \"group:sre-leads\"}"),
	  { "$.profiles.p.auto_approve: expected a list of rules" } },
	{ "load: auto_approve rules that cannot hold",
	  DOCP(P_MIN ", \"auto_approve\": [{\"requesters\": [\"alice\"], \"hours\": "
	  "{\"tz\": \"UTC\", \"from\": \"9:00\", \"to\": \"17:00\"}}, {\"requesters\": "
	  "[\"alice\"], \"hours\": {\"tz\": \"UTC\", \"from\": \"09:00\", \"to\": \"24:01\"}},"
	  " {\"hours\": {\"tz\": \"UTC\", \"from\": \"09:00\", \"to\": \"17:00\"}}]"),
	  { "$.profiles.p.auto_approve[0].hours.from: \"9:00\" is not a time of day",
	    "$.profiles.p.auto_approve[1].hours.to: \"24:01\" is not a time of day",
	    "$.profiles.p.auto_approve[2]: missing required key \"requesters\"" } },
	{ "load: missing required role_arn",
	  DOCP(REQ ", " APP),
	  { "$.profiles.p: missing required key \"role_arn\"" } },
	{ "load: wrong types",
	  DOCP(P_MIN ", \"approvals_required\": \"2\", \"allow_self_approval\": \"no\""),
	  { "$.profiles.p.approvals_required: expected an integer, got a string",
	    "$.profiles.p.allow_self_approval: expected true or false, got a string" } },
	{ "load: approvals_required of 0",
	  DOCP(P_MIN ", \"approvals_required\": 0"),
	  { "$.profiles.p.approvals_required: 0 is out of range (1..100)" } },
	{ "load: unknown top-level key",
	  "{\"profile\": {}}",
	  { "t.json: $.profile: unknown key (did you mean profiles?)" } },
	{ "load: JSON syntax error reports file:line:column",
	  "{\n  \"users\": {\n    \"alice\": {,\n}}",
	  { "t.json:3:15: " } },
	{ "load: duplicate JSON key is rejected",
	  "{\"users\": {}, \"users\": {}}",
	  { "t.json:1:", "duplicate object key" } },
	{ "load: every problem of one document is listed",
	  "{" USERS ", " GROUPS ", \"profiles\": {"
	  "\"a\": {" ARN ", " REQ ", \"approvers\": [\"group:nope\"], \"max_duraton\": \"1h\"},"
	  "\"b\": {\"role_arn\": \"arn:aws:iam::1:role/R\", " REQ ", " APP ", \"default_duration\": \"2h\"}}}",
	  { "$.profiles.a.approvers[0]: unknown group \"nope\"",
	    "$.profiles.a.max_duraton: unknown key (did you mean max_duration?)",
	    "$.profiles.b.role_arn:",
	    "$.profiles.b.default_duration: 2h is longer than max_duration 1h" } },
};

static void
run_load_case(void **state)
{
	const struct load_case *c = *state;
	struct policy *p = NULL;
	struct diags d;
	char *text;
	size_t i;

	diags_init(&d);
	assert_int_equal(policy_load_string(c->json, "t.json", &p, &d), EL_ECONFIG);
	assert_null(p);
	assert_true(d.n > 0);
	text = diags_text(&d);
	for (i = 0; i < 4 && c->want[i] != NULL; i++) {
		if (strstr(text, c->want[i]) == NULL)
			fail_msg("wanted \"%s\" among:\n%s", c->want[i], text);
	}
	free(text);
	diags_free(&d);
}

/* ------------------------------------------------------------------ auto-approval */

/* policy_auto_rule at fixed instants: the first rule that holds wins; hours are local to
 * the rule's zone (Tokyo is UTC+9, no DST), days wrap (fri-mon), "to" is exclusive and may
 * be 24:00. 2026-12-04 is a Friday. */
static void
test_auto_rule(void **state)
{
	static const char doc[] = DOCP(P_MIN ", \"max_duration\": \"2h\", \"auto_approve\": ["
	    "{\"name\": \"office\", \"requesters\": [\"group:engineers\"], \"max_duration\": "
	    "\"30m\", \"ticket_pattern\": \"^INC-[0-9]+$\", \"hours\": {\"tz\": \"Asia/Tokyo\", "
	    "\"days\": \"mon-fri\", \"from\": \"09:00\", \"to\": \"19:00\"}}, "
	    "{\"name\": \"late\", \"requesters\": [\"frank\"], \"hours\": {\"tz\": "
	    "\"Asia/Tokyo\", \"days\": \"fri-mon\", \"from\": \"22:00\", \"to\": \"24:00\"}}]");
	/* 2026-12-04 Friday: 00:00 UTC = 09:00 JST */
	const int64_t fri9 = 1796342400;
	const struct pol_auto_rule *ar;
	const struct pol_profile *pr;
	struct policy *p = NULL;
	struct diags d;

	(void)state;
	diags_init(&d);
	if (policy_load_string(doc, "t.json", &p, &d) != EL_OK) {
		char *t = diags_text(&d);
		fail_msg("%s", t);
	}
	pr = policy_profile(p, "p");
	assert_int_equal(pr->nauto_rules, 2);
	assert_non_null(ar = policy_auto_rule(p, pr, "alice", 1800, "INC-1", fri9));
	assert_string_equal(ar->name, "office");
	assert_null(policy_auto_rule(p, pr, "alice", 1800, "INC-1", fri9 - 1));  /* 08:59:59 */
	assert_non_null(policy_auto_rule(p, pr, "alice", 1800, "INC-1", fri9 + 10 * 3600 - 1));
	assert_null(policy_auto_rule(p, pr, "alice", 1800, "INC-1", fri9 + 10 * 3600)); /* 19:00 */
	assert_null(policy_auto_rule(p, pr, "alice", 1801, "INC-1", fri9));       /* > 30m */
	assert_null(policy_auto_rule(p, pr, "alice", 1800, "CHG-1", fri9));       /* ticket */
	assert_null(policy_auto_rule(p, pr, "alice", 1800, NULL, fri9));
	assert_null(policy_auto_rule(p, pr, "carol", 1800, "INC-1", fri9));       /* requester */
	assert_null(policy_auto_rule(p, pr, "alice", 1800, "INC-1", fri9 + 86400)); /* Saturday */
	/* frank is in engineers too: office first, then late (no ticket, up to the profile's
	 * 2h) on Friday to Monday from 22:00 until midnight, Tokyo time */
	assert_null(policy_auto_rule(p, pr, "frank", 7200, NULL, fri9));
	assert_non_null(ar = policy_auto_rule(p, pr, "frank", 7200, NULL, fri9 + 13 * 3600));
	assert_string_equal(ar->name, "late");
	assert_non_null(policy_auto_rule(p, pr, "frank", 7200, NULL, fri9 + 15 * 3600 - 1));
	assert_non_null(policy_auto_rule(p, pr, "frank", 7200, NULL, fri9 + 3 * 86400 + 13 * 3600));
	assert_null(policy_auto_rule(p, pr, "frank", 7200, NULL, fri9 + 4 * 86400 + 13 * 3600));
	policy_release(p);
	diags_free(&d);
}

/* ------------------------------------------------------------------ loading that works */

static void
test_load_defaults(void **state)
{
	struct policy *p = NULL;
	const struct pol_profile *pr;
	struct diags d;

	(void)state;
	diags_init(&d);
	assert_int_equal(policy_load_string(DOCP(P_MIN), "t.json", &p, &d), EL_OK);
	assert_int_equal(d.n, 0);
	assert_non_null(pr = policy_profile(p, "p"));
	assert_int_equal(pr->default_duration, 900);
	assert_int_equal(pr->max_duration, 3600);
	assert_int_equal(pr->pending_ttl, 1800);
	assert_int_equal(pr->max_credential_duration, 3600);
	assert_int_equal(pr->approvals_required, 1);
	assert_int_equal(pr->nrules, 1);
	assert_int_equal(pr->rules[0].count, 1);
	assert_string_equal(pr->rules[0].from, "group:sre-leads");
	assert_false(pr->allow_self_approval);
	assert_true(pr->reason_required);
	assert_false(pr->ticket_required);
	assert_null(pr->ticket_pattern);
	assert_null(pr->region);
	assert_null(pr->session_policy);
	assert_string_equal(pr->account, "111122223333");
	assert_string_equal(pr->role_name, "R");
	policy_release(p);

	/* default_duration defaults to min(15m, max_duration) */
	assert_int_equal(policy_load_string(DOCP(P_MIN ", \"max_duration\": \"10m\""), "t.json",
	    &p, &d), EL_OK);
	assert_int_equal(policy_profile(p, "p")->default_duration, 600);
	policy_release(p);
	/* ticket_required defaults to true once a pattern is given, and can be turned off */
	assert_int_equal(policy_load_string(DOCP(P_MIN ", \"ticket_pattern\": \"^T-[0-9]+$\""),
	    "t.json", &p, &d), EL_OK);
	assert_true(policy_profile(p, "p")->ticket_required);
	policy_release(p);
	assert_int_equal(policy_load_string(DOCP(P_MIN ", \"ticket_pattern\": \"^T-[0-9]+$\", "
	    "\"ticket_required\": false"), "t.json", &p, &d), EL_OK);
	assert_false(policy_profile(p, "p")->ticket_required);
	policy_release(p);
	assert_int_equal(d.n, 0);
	diags_free(&d);
}

static void
test_load_rules_and_lookups(void **state)
{
	const struct pol_profile *pr = policy_profile(P, "prod-admin");
	const struct pol_user *u;
	unsigned char pk[32] = { 0 };

	(void)state;
	assert_non_null(pr);
	assert_int_equal(pr->nrules, 2);
	assert_int_equal(pr->approvals_required, 2);   /* the sum of the rules */
	assert_int_equal(pr->napprovers, 2);
	assert_string_equal(pr->approvers[0], "group:sre-leads");
	assert_string_equal(pr->approvers[1], "group:security");
	assert_int_equal(pr->max_duration, 1800);
	assert_null(policy_profile(P, "prod-write"));

	pk[31] = 3;   /* carol's placeholder key */
	assert_non_null(u = policy_user(P, "carol"));
	assert_string_equal(u->email, "carol@example.com");
	assert_true(policy_user_has_key(u, pk));
	assert_ptr_equal(policy_user_by_key(P, pk), u);
	pk[31] = 4;
	assert_false(policy_user_has_key(u, pk));
	pk[31] = 99;
	assert_null(policy_user_by_key(P, pk));

	assert_true(policy_in_group(P, "security", "gina"));
	assert_true(policy_in_group(P, "group:security", "erin"));
	assert_false(policy_in_group(P, "security", "carol"));
	assert_false(policy_in_group(P, "nope", "carol"));
	assert_true(policy_principal_has(P, "user:bob", "bob"));
	assert_true(policy_principal_has(P, "bob", "bob"));
	assert_false(policy_principal_has(P, "bob", "alice"));
	assert_false(policy_principal_has(P, "zed", "zed"));   /* not a user */
}

/* The example shipped in policies/ must load: it is what users copy. */
static void
test_load_example(void **state)
{
	char dir[4096];
	const char *f = __FILE__, *cut = strstr(f, "tests/unit/");
	struct policy *p = NULL;
	const struct pol_profile *pr;
	struct diags d;
	char *text;

	(void)state;
	snprintf(dir, sizeof(dir), "%.*spolicies", cut ? (int)(cut - f) : 0, f);
	if (access(dir, R_OK | X_OK) != 0) {
		/* Run from elsewhere than the repository root: nothing to check here. */
		print_message("skipped: %s not found from the current directory\n", dir);
		skip();
	}
	diags_init(&d);
	if (policy_load_dir(dir, &p, &d) != EL_OK) {
		text = diags_text(&d);
		fail_msg("%s does not load:\n%s", dir, text);
	}
	assert_int_equal(p->nusers, 6);
	assert_non_null(pr = policy_profile(p, "prod-admin"));
	assert_int_equal(pr->nrules, 2);
	assert_int_equal(pr->max_duration, 1800);
	assert_string_equal(pr->role_name, "ProdAdmin");
	assert_non_null(pr = policy_profile(p, "prod-readonly"));
	assert_true(pr->ticket_required);
	assert_string_equal(pr->region, "ap-northeast-1");
	assert_non_null(pr = policy_profile(p, "dev-poweruser"));
	assert_true(pr->allow_self_approval);
	assert_false(pr->ticket_required);
	assert_non_null(pr->session_policy);
	assert_int_equal(pr->pending_ttl, 1800);
	policy_release(p);
	diags_free(&d);
}

/* ------------------------------------------------------------------ directories */

static char *
mktempdir(void)
{
	char tmpl[] = "/tmp/test_policy.XXXXXX";
	char *dir = mkdtemp(tmpl);

	assert_non_null(dir);
	return strdup(dir);
}

static void
put_file(const char *dir, const char *name, const char *content)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_non_null(f = fopen(path, "w"));
	fputs(content, f);
	fclose(f);
}

static void
rm_dir(const char *dir, const char *const *names)
{
	char path[4096];

	for (; *names != NULL; names++) {
		snprintf(path, sizeof(path), "%s/%s", dir, *names);
		unlink(path);
	}
	rmdir(dir);
}

static void
test_dir_merges_files(void **state)
{
	static const char *const names[] = {"10-people.json", "20-prod.json", "notes.txt", NULL};
	char *dir = mktempdir(), *text;
	struct policy *p = NULL;
	struct diags d;

	(void)state;
	/* The profile file refers to groups defined in the other file. */
	put_file(dir, "10-people.json", "{" USERS ", " GROUPS "}");
	put_file(dir, "20-prod.json", "{\"profiles\": {\"p\": {" P_MIN "}}}");
	put_file(dir, "notes.txt", "not json");
	diags_init(&d);
	if (policy_load_dir(dir, &p, &d) != EL_OK) {
		text = diags_text(&d);
		fail_msg("%s", text);
	}
	assert_non_null(policy_profile(p, "p"));
	assert_int_equal(p->nusers, 7);
	policy_release(p);
	diags_free(&d);
	rm_dir(dir, names);
	free(dir);
}

static void
test_dir_redefinition(void **state)
{
	static const char *const names[] = {"10-a.json", "20-b.json", NULL};
	char *dir = mktempdir(), *text, want[4200];
	struct policy *p = NULL;
	struct diags d;

	(void)state;
	put_file(dir, "10-a.json", DOCP(P_MIN));
	put_file(dir, "20-b.json", "{\"users\": {\"zoe\": {\"email\": \"zoe@example.com\", "
	    "\"keys\": [" KEY("g=") "]}}, \"profiles\": {\"p\": {" P_MIN "}}}");
	diags_init(&d);
	assert_int_equal(policy_load_dir(dir, &p, &d), EL_ECONFIG);
	assert_null(p);
	text = diags_text(&d);
	snprintf(want, sizeof(want), "%s/20-b.json: $.profiles.p: profile \"p\" is already "
	    "defined in %s/10-a.json", dir, dir);
	if (strstr(text, want) == NULL)
		fail_msg("wanted \"%s\" in:\n%s", want, text);
	assert_int_equal(d.n, 1);   /* adding user zoe is fine */
	free(text);
	diags_free(&d);
	rm_dir(dir, names);
	free(dir);
}

static void
test_dir_file_errors(void **state)
{
	static const char *const names[] = {"a.json", "b.json", NULL};
	char *dir = mktempdir(), *text, want[4200], *big;
	struct policy *p = NULL;
	struct diags d;

	(void)state;
	put_file(dir, "a.json", "{\n\"users\": [}\n");
	assert_non_null(big = malloc(POLICY_MAX_FILE + 2));
	memset(big, ' ', POLICY_MAX_FILE + 1);
	big[0] = '{';
	big[POLICY_MAX_FILE] = '}';
	big[POLICY_MAX_FILE + 1] = '\0';
	put_file(dir, "b.json", big);
	free(big);
	diags_init(&d);
	assert_int_equal(policy_load_dir(dir, &p, &d), EL_ECONFIG);
	text = diags_text(&d);
	snprintf(want, sizeof(want), "%s/a.json:2:11: ", dir);
	if (strstr(text, want) == NULL)
		fail_msg("wanted \"%s\" in:\n%s", want, text);
	snprintf(want, sizeof(want), "%s/b.json: larger than %d bytes", dir, POLICY_MAX_FILE);
	if (strstr(text, want) == NULL)
		fail_msg("wanted \"%s\" in:\n%s", want, text);
	free(text);
	diags_free(&d);
	rm_dir(dir, names);

	/* a directory without policy files is a mistake, not an empty policy */
	diags_init(&d);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(policy_load_dir(dir, &p, &d), EL_ECONFIG);
	assert_non_null(strstr(d.v[0].msg, "no *.json policy files"));
	diags_free(&d);
	rmdir(dir);
	free(dir);
}

/* ------------------------------------------------------------------ requests */

struct req_case {
	const char *name;
	const char *user, *profile;
	int64_t duration, want_duration;
	const char *reason, *ticket;
	enum el_err want;
	const char *msg;        /* substring of the message when refused */
};

static struct req_case req_cases[] = {
	{ "request: default duration written back", "alice", "prod-readonly", 0, 900,
	  "deploy hotfix", "INC-42", EL_OK, NULL },
	{ "request: exactly max_duration", "alice", "prod-readonly", 3600, 3600,
	  "deploy hotfix", "CHG-7", EL_OK, NULL },
	{ "request: longer than max_duration", "alice", "prod-readonly", 7200, 0,
	  "deploy hotfix", "INC-42", EL_EINVAL,
	  "profile prod-readonly: 2h is longer than its max_duration 1h" },
	{ "request: negative duration", "alice", "prod-readonly", -5, 0,
	  "x", "INC-1", EL_EINVAL, "positive" },
	{ "request: not a requester", "carol", "prod-readonly", 0, 0,
	  "x", "INC-1", EL_EPERM,
	  "profile prod-readonly: carol is not in its requesters (group:engineers)" },
	{ "request: unknown user", "mallory", "prod-readonly", 0, 0,
	  "x", "INC-1", EL_EPERM, "mallory is not in its requesters" },
	{ "request: unknown profile", "alice", "prod-write", 0, 0,
	  "x", "INC-1", EL_ENOENT, "no profile named \"prod-write\"" },
	{ "request: reason of blanks", "alice", "prod-readonly", 0, 0,
	  " \t\n ", "INC-1", EL_EINVAL, "a reason is required" },
	{ "request: no reason", "alice", "prod-readonly", 0, 0,
	  NULL, "INC-1", EL_EINVAL, "a reason is required" },
	{ "request: reason not required", "alice", "multi", 0, 900,
	  NULL, NULL, EL_OK, NULL },
	{ "request: ticket missing", "alice", "prod-readonly", 0, 0,
	  "x", NULL, EL_EINVAL, "a ticket matching ^(INC|CHG)-[0-9]+$ is required" },
	{ "request: ticket not matching", "alice", "prod-readonly", 0, 0,
	  "x", "JIRA-1", EL_EINVAL,
	  "ticket \"JIRA-1\" does not match ^(INC|CHG)-[0-9]+$" },
	{ "request: pattern anchored as written", "alice", "prod-readonly", 0, 0,
	  "x", "xINC-1", EL_EINVAL, "does not match" },
	{ "request: no ticket where none is required", "bob", "dev-poweruser", 0, 3600,
	  "try the new instance type", NULL, EL_OK, NULL },
};

static void
run_req_case(void **state)
{
	const struct req_case *c = *state;
	struct el_why w = { "" };
	int64_t dur = c->duration;
	enum el_err r;

	r = policy_check_request(P, c->user, c->profile, &dur, c->reason, c->ticket, &w);
	if (r != c->want)
		fail_msg("got %s (%s), wanted %s", el_strerror(r), w.msg, el_strerror(c->want));
	if (c->want == EL_OK)
		assert_int_equal(dur, c->want_duration);
	else if (strstr(w.msg, c->msg) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", w.msg, c->msg);
}

static void
test_request_reason_ceiling(void **state)
{
	char reason[1100];
	struct el_why w;
	int64_t dur = 0;

	(void)state;
	memset(reason, 'r', 1024);
	reason[1024] = '\0';
	assert_int_equal(policy_check_request(P, "alice", "prod-readonly", &dur, reason,
	    "INC-1", &w), EL_OK);
	reason[1024] = 'r';
	reason[1025] = '\0';
	assert_int_equal(policy_check_request(P, "alice", "prod-readonly", &dur, reason,
	    "INC-1", &w), EL_EINVAL);
	assert_non_null(strstr(w.msg, "1025 characters"));
}

/* ------------------------------------------------------------------ approvers */

struct appr_case {
	const char *name;
	const char *profile, *requester, *approver;
	enum el_err want;
	const char *msg;
};

static struct appr_case appr_cases[] = {
	{ "approver: sre lead for an engineer", "prod-readonly", "alice", "carol", EL_OK, NULL },
	{ "approver: engineer is not an approver", "prod-readonly", "alice", "bob", EL_EPERM,
	  "profile prod-readonly: bob is not among its approvers (group:sre-leads)" },
	{ "approver: any rule's group qualifies", "prod-admin", "carol", "erin", EL_OK, NULL },
	{ "approver: self-approval refused", "prod-admin", "carol", "carol", EL_EPERM,
	  "carol cannot approve a request of their own (allow_self_approval is false)" },
	{ "approver: self-approval allowed", "dev-poweruser", "carol", "carol", EL_OK, NULL },
	{ "approver: unknown user", "prod-readonly", "alice", "zed", EL_EPERM,
	  "zed is not among its approvers" },
	{ "approver: unknown profile", "nope", "alice", "carol", EL_ENOENT, "no profile" },
};

static void
run_appr_case(void **state)
{
	const struct appr_case *c = *state;
	struct el_why w = { "" };
	enum el_err r;

	r = policy_check_approver(P, c->profile, c->requester, c->approver, &w);
	if (r != c->want)
		fail_msg("got %s (%s), wanted %s", el_strerror(r), w.msg, el_strerror(c->want));
	if (c->want != EL_OK && strstr(w.msg, c->msg) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", w.msg, c->msg);
}

static void
test_approvers_for(void **state)
{
	const char **v;
	size_t n;

	(void)state;
	assert_int_equal(policy_approvers_for(P, "prod-admin", "frank", &v, &n), EL_OK);
	assert_int_equal(n, 4);
	assert_string_equal(v[0], "carol");
	assert_string_equal(v[1], "dave");
	assert_string_equal(v[2], "erin");
	assert_string_equal(v[3], "gina");
	free(v);
	/* the requester is left out unless self-approval is allowed */
	assert_int_equal(policy_approvers_for(P, "one", "carol", &v, &n), EL_OK);
	assert_int_equal(n, 2);
	assert_string_equal(v[0], "dave");
	assert_string_equal(v[1], "gina");
	free(v);
	assert_int_equal(policy_approvers_for(P, "dev-poweruser", "carol", &v, &n), EL_OK);
	assert_int_equal(n, 3);
	assert_string_equal(v[0], "carol");
	free(v);
	assert_int_equal(policy_approvers_for(P, "nope", "carol", &v, &n), EL_ENOENT);
	assert_null(v);
}

/* ------------------------------------------------------------------ quorum */

struct quorum_case {
	const char *name;
	const char *profile, *requester;
	const char *votes[5];
	bool want;
	const char *msg;        /* substring of w when not met */
};

static struct quorum_case quorum_cases[] = {
	{ "quorum: 1 of N met", "one", "alice", { "dave" }, true, NULL },
	{ "quorum: 1 of N, no votes", "one", "alice", { NULL }, false,
	  "needs 1 more approval from group:sre-leads" },
	{ "quorum: 2 of N, one vote", "two", "alice", { "carol" }, false,
	  "needs 1 more approval from group:sre-leads" },
	{ "quorum: 2 of N met", "two", "alice", { "carol", "gina" }, true, NULL },
	{ "quorum: duplicate votes count once", "two", "alice", { "carol", "carol" }, false,
	  "needs 1 more approval from group:sre-leads" },
	{ "quorum: votes of non-approvers ignored", "two", "alice", { "carol", "bob", "zed" },
	  false, "needs 1 more approval" },
	{ "quorum: cross-group met", "prod-admin", "frank", { "dave", "erin" }, true, NULL },
	{ "quorum: cross-group, only sre-leads", "prod-admin", "frank", { "carol", "dave" },
	  false, "needs 1 more approval from group:security" },
	{ "quorum: cross-group, only security", "prod-admin", "frank", { "erin" },
	  false, "needs 1 more approval from group:sre-leads" },
	{ "quorum: one person in both groups satisfies one rule only", "prod-admin", "frank",
	  { "gina" }, false, "needs 1 more approval from group:security" },
	{ "quorum: person in both groups plus an sre lead", "prod-admin", "frank",
	  { "gina", "carol" }, true, NULL },
	{ "quorum: person in both groups plus security", "prod-admin", "frank",
	  { "gina", "erin" }, true, NULL },
	{ "quorum: no votes on two rules lists both", "prod-admin", "frank", { NULL }, false,
	  "needs 1 more approval from group:sre-leads and 1 more approval from group:security" },
	{ "quorum: self vote ignored", "one", "carol", { "carol" }, false,
	  "needs 1 more approval from group:sre-leads" },
	{ "quorum: self vote ignored in a rule", "prod-admin", "carol", { "carol", "erin" },
	  false, "needs 1 more approval from group:sre-leads" },
	{ "quorum: self vote counted when allowed", "dev-poweruser", "carol", { "carol" },
	  true, NULL },
	{ "quorum: plain list over several principals", "multi", "alice", { "erin", "carol" },
	  true, NULL },
	{ "quorum: plain list names every principal", "multi", "alice", { "erin" }, false,
	  "needs 1 more approval from group:security or carol" },
	{ "quorum: unknown profile", "nope", "alice", { "carol" }, false, "no profile" },
};

static void
run_quorum_case(void **state)
{
	const struct quorum_case *c = *state;
	struct el_why w = { "" };
	size_t n;
	bool met;

	for (n = 0; n < 5 && c->votes[n] != NULL; n++)
		;
	met = policy_quorum_met(P, c->profile, c->requester, c->votes, n, &w);
	if (met != c->want)
		fail_msg("met=%d, wanted %d (%s)", met, c->want, w.msg);
	if (!c->want && strstr(w.msg, c->msg) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", w.msg, c->msg);
}

/* A vote cast before a policy change stops counting once its author left the group. */
static void
test_quorum_ex_approver(void **state)
{
	static const char *const votes[] = { "dave", "carol" };
	struct policy *p2 = NULL;
	struct diags d;
	struct el_why w = { "" };

	(void)state;
	diags_init(&d);
	assert_true(policy_quorum_met(P, "two", "alice", votes, 2, &w));
	assert_int_equal(policy_load_string("{" USERS ", \"groups\": {\"engineers\": [\"alice\"], "
	    "\"sre-leads\": [\"carol\", \"gina\"]}, \"profiles\": {\"two\": {" P_MIN
	    ", \"approvals_required\": 2}}}", "t.json", &p2, &d), EL_OK);
	assert_false(policy_quorum_met(p2, "two", "alice", votes, 2, &w));
	assert_non_null(strstr(w.msg, "needs 1 more approval from group:sre-leads"));
	assert_int_equal(policy_check_approver(p2, "two", "alice", "dave", NULL), EL_EPERM);
	policy_release(p2);
	diags_free(&d);
}

/* ------------------------------------------------------------------ SSM scope */

/* ------------------------------------------------------------------ diags, refcount */

static void
test_diags_format(void **state)
{
	struct diags d;
	char *text, line[16];
	int i;

	(void)state;
	diags_init(&d);
	diags_add(&d, "a.json", "$.x", 3, 7, "bad %s", "thing");
	diags_add(&d, "a.json", NULL, 0, 0, "no path");
	diags_add(&d, NULL, "$.y", 0, 0, "no file");
	diags_add(&d, "b.json", "$.z", 2, 0, "line only");
	text = diags_text(&d);
	assert_string_equal(text, "a.json:3:7: $.x: bad thing\na.json: no path\n"
	    "$.y: no file\nb.json:2: $.z: line only\n");
	free(text);
	/* snprintf-like: reports the length it needed and truncates safely */
	assert_int_equal(diag_format(&d.v[0], line, sizeof(line)),
	    strlen("a.json:3:7: $.x: bad thing"));
	assert_string_equal(line, "a.json:3:7: $.x");
	diags_free(&d);

	diags_init(&d);
	for (i = 0; i < DIAGS_MAX + 5; i++)
		diags_add(&d, "f", NULL, 0, 0, "p%d", i);
	assert_int_equal(d.n, DIAGS_MAX);
	assert_int_equal(diags_count(&d), DIAGS_MAX + 5);
	text = diags_text(&d);
	assert_non_null(strstr(text, "(5 more problems not shown)"));
	free(text);
	diags_free(&d);
}

static void *
hammer(void *arg)
{
	struct policy *p = arg;
	int i;

	for (i = 0; i < 100000; i++) {
		policy_retain(p);
		policy_release(p);
	}
	return NULL;
}

static void
test_refcount_threads(void **state)
{
	pthread_t t[4];
	struct policy *p = NULL;
	int i;

	(void)state;
	assert_int_equal(policy_load_string(DOCP(P_MIN), "t.json", &p, NULL), EL_OK);
	for (i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hammer, p), 0);
	for (i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(__atomic_load_n(&p->refs, __ATOMIC_SEQ_CST), 1);
	policy_release(p);   /* frees; ASan reports a leak or double free otherwise */
}

/* ------------------------------------------------------------------ main */

static int
setup(void **state)
{
	struct diags d;
	char *text;

	(void)state;
	diags_init(&d);
	if (policy_load_string(decisions_doc, "decisions.json", &P, &d) != EL_OK) {
		text = diags_text(&d);
		fprintf(stderr, "decisions_doc does not load:\n%s", text);
		free(text);
		diags_free(&d);
		return -1;
	}
	diags_free(&d);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	policy_release(P);
	return 0;
}

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

int
main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_load_defaults),
		cmocka_unit_test(test_auto_rule),
		cmocka_unit_test(test_load_rules_and_lookups),
		cmocka_unit_test(test_load_example),
		cmocka_unit_test(test_dir_merges_files),
		cmocka_unit_test(test_dir_redefinition),
		cmocka_unit_test(test_dir_file_errors),
		cmocka_unit_test(test_request_reason_ceiling),
		cmocka_unit_test(test_approvers_for),
		cmocka_unit_test(test_quorum_ex_approver),
		cmocka_unit_test(test_diags_format),
		cmocka_unit_test(test_refcount_threads),
	};
	struct CMUnitTest *t;
	size_t i, n = 0, max = NELEM(fixed) + NELEM(load_cases) + NELEM(req_cases) +
	    NELEM(appr_cases) + NELEM(quorum_cases);
	int rc;

	if ((t = calloc(max, sizeof(*t))) == NULL)
		return 1;
	for (i = 0; i < NELEM(fixed); i++)
		t[n++] = fixed[i];
	for (i = 0; i < NELEM(load_cases); i++)
		t[n++] = (struct CMUnitTest){ load_cases[i].name, run_load_case, NULL, NULL,
		    &load_cases[i] };
	for (i = 0; i < NELEM(req_cases); i++)
		t[n++] = (struct CMUnitTest){ req_cases[i].name, run_req_case, NULL, NULL,
		    &req_cases[i] };
	for (i = 0; i < NELEM(appr_cases); i++)
		t[n++] = (struct CMUnitTest){ appr_cases[i].name, run_appr_case, NULL, NULL,
		    &appr_cases[i] };
	for (i = 0; i < NELEM(quorum_cases); i++)
		t[n++] = (struct CMUnitTest){ quorum_cases[i].name, run_quorum_case, NULL, NULL,
		    &quorum_cases[i] };
	rc = _cmocka_run_group_tests("policy", t, n, setup, teardown);
	free(t);
	return rc;
}
