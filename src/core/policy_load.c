/*
 * policy_load.c — owns loading policies: reading the *.json files of policies/ (or one
 * string), merging them (a later file may add names, never redefine one), and building
 * users, groups and profiles from them with every problem reported by file and JSON
 * path. Each kind of object (user, profile, ssm block, approver rule, session policy) is
 * a schema table (schema.h); the checks of policy values (emails, role ARNs, regions,
 * principals ...) and the cross-field rules (default <= max, a quorum that can be met)
 * live here. A typo must never widen access, so every problem refuses the whole policy.
 */
#include <dirent.h>
#include <errno.h>
#include <regex.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <jansson.h>

#include "elevate/diag.h"
#include "elevate/el.h"
#include "elevate/log.h"
#include "elevate/policy.h"
#include "elevate/schema.h"
#include "elevate/tzone.h"
#include "policy_int.h"

#define POLICY_MAX_TOTAL (16 * 1024 * 1024)   /* all files of a directory together */
#define SESSION_POLICY_MAX 2048         /* STS Policy parameter, plain-text characters */
#define WINDOW_MAX (12 * 3600)
#define DEFAULT_DURATION 900            /* when default_duration is absent: min(15m, max) */
#define ED25519_PREFIX "ed25519:"

/* Names of users, groups and profiles: [A-Za-z0-9_.@-]{1,64}. */
static bool
name_ok(const char *s)
{
	size_t n;

	for (n = 0; s[n] != '\0'; n++) {
		char c = s[n];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '@' || c == '-'))
			return false;
	}
	return n >= 1 && n <= POLICY_NAME_MAX;
}

/* Built-in patterns only: a failure to compile one is a bug, not bad input. */
static bool
builtin_match(const char *re, const char *s)
{
	regex_t r;
	bool ok;

	if (regcomp(&r, re, REG_EXTENDED | REG_NOSUB) != 0)
		fatalx("policy: built-in pattern does not compile: %s", re);
	ok = regexec(&r, s, 0, NULL, 0) == 0;
	regfree(&r);
	return ok;
}

/* ------------------------------------------------------------------ loader state */

enum kind { K_USER, K_GROUP, K_PROFILE, K__N };
static const char *const kind_names[K__N] = {"user", "group", "profile"};
static const char *const kind_paths[K__N] = {"$.users", "$.groups", "$.profiles"};

/* One user/group/profile definition as found, before validation. */
struct entry {
	const char *name;       /* borrowed from the document */
	const char *file;       /* borrowed from loader.files */
	json_t *val;            /* borrowed from the document */
	size_t seq;             /* order of appearance */
	bool redefined;
};

struct entries {
	struct entry *v;
	size_t n, cap;
};

/* sc.arg points back here, for the checks that look names up in p. */
struct loader {
	struct schema_ctx sc;   /* sc.d gets the problems, sc.file: the file being validated */
	size_t d0;              /* diags_count(sc.d) on entry: success means it did not grow */
	struct policy *p;
	char **files;           /* every file name, owned */
	size_t nfiles;
	json_t **docs;          /* every parsed document, owned */
	size_t ndocs;
	size_t total;           /* bytes read so far */
	struct entries ent[K__N];
	int approvers_form;     /* of the profile being validated: 0 none, 1 list, 2 rules */
};

/* ------------------------------------------------------------------ value checks */

static bool
check_email(struct schema_ctx *c, const char *path, const char *s)
{
	char q[SCHEMA_SHOW_LEN];
	const char *at = strchr(s, '@'), *ch;

	if (at == NULL || strchr(at + 1, '@') != NULL) {
		schema_problem(c, path, "\"%s\" is not an email address (it needs exactly one @)",
		    schema_show(q, sizeof(q), s));
		return false;
	}
	if (at == s || at[1] == '\0') {
		schema_problem(c, path, "\"%s\" is not an email address (it needs a name before "
		    "and a domain after the @)", schema_show(q, sizeof(q), s));
		return false;
	}
	/* Plain addresses only: anything that could bend an SMTP header is refused. */
	for (ch = s; *ch != '\0'; ch++) {
		if ((unsigned char)*ch <= ' ' || (unsigned char)*ch >= 0x7f ||
		    strchr("<>,;:\"()[]\\", *ch) != NULL) {
			schema_problem(c, path, "\"%s\" is not a plain email address (spaces, "
			    "non-ASCII and <>,;:\"()[]\\ are not allowed)",
			    schema_show(q, sizeof(q), s));
			return false;
		}
	}
	return true;
}

static bool
parse_key(const char *s, unsigned char pk[32])
{
	size_t n;

	if (strncmp(s, ED25519_PREFIX, strlen(ED25519_PREFIX)) != 0)
		return false;
	return el_b64_decode(s + strlen(ED25519_PREFIX), pk, 32, &n) == EL_OK && n == 32;
}

static bool
check_role_arn(struct schema_ctx *c, const char *path, const char *s)
{
	char q[SCHEMA_SHOW_LEN];

	if (builtin_match("^arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:role/([A-Za-z0-9_+=,.@-]+/)*"
	    "[A-Za-z0-9_+=,.@-]{1,64}$", s))
		return true;
	schema_problem(c, path, "\"%s\" is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME or "
	    "role/PATH/NAME, with a 12-digit account)", schema_show(q, sizeof(q), s));
	return false;
}

static bool
check_region(struct schema_ctx *c, const char *path, const char *s)
{
	char q[SCHEMA_SHOW_LEN];

	if (builtin_match("^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}$", s))
		return true;
	schema_problem(c, path, "\"%s\" is not an AWS region such as \"ap-northeast-1\"",
	    schema_show(q, sizeof(q), s));
	return false;
}

/* The actions the engine can call as a revocation probe (engine_probe.c): read-only, and
 * subject to the session policy and the role's deny policy. */
static bool
check_probe(struct schema_ctx *c, const char *path, const char *s)
{
	char q[SCHEMA_SHOW_LEN];

	if (strcmp(s, "ec2:DescribeRegions") == 0 || strcmp(s, "ec2:DescribeInstances") == 0)
		return true;
	if (strcasecmp(s, "sts:GetCallerIdentity") == 0) {
		schema_problem(c, path, "sts:GetCallerIdentity is never denied by IAM policies, so "
		    "it cannot show that a grant was revoked; use \"ec2:DescribeRegions\" or "
		    "\"ec2:DescribeInstances\"");
		return false;
	}
	schema_problem(c, path, "\"%s\" is not a supported revocation probe; use "
	    "\"ec2:DescribeRegions\" or \"ec2:DescribeInstances\" (read-only actions the role "
	    "allows)", schema_show(q, sizeof(q), s));
	return false;
}

static bool
check_ticket_pattern(struct schema_ctx *c, const char *path, const char *s)
{
	regex_t re;
	char err[128];
	int rc;

	if ((rc = regcomp(&re, s, REG_EXTENDED | REG_NOSUB)) != 0) {
		regerror(rc, &re, err, sizeof(err));
		schema_problem(c, path, "not a valid POSIX extended regular expression: %s", err);
		return false;
	}
	regfree(&re);
	return true;
}

static bool
check_instance_id(struct schema_ctx *c, const char *path, const char *s)
{
	char q[SCHEMA_SHOW_LEN];
	size_t n = 0;

	if (strncmp(s, "i-", 2) == 0)
		for (n = 0; (s[2 + n] >= '0' && s[2 + n] <= '9') ||
		    (s[2 + n] >= 'a' && s[2 + n] <= 'f'); n++)
			;
	if (n >= 8 && n <= 17 && s[2 + n] == '\0')
		return true;
	schema_problem(c, path, "\"%s\" is not an EC2 instance id (i- followed by 8 to 17 "
	    "lowercase hex digits)", schema_show(q, sizeof(q), s));
	return false;
}

static bool
check_document(struct schema_ctx *c, const char *path, const char *s)
{
	char q[SCHEMA_SHOW_LEN];
	size_t n;

	for (n = 0; (s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
	    (s[n] >= '0' && s[n] <= '9') || (s[n] != '\0' && strchr("_.:/-", s[n])); n++)
		;
	if (s[n] == '\0' && n >= 3 && n <= 128)
		return true;
	schema_problem(c, path, "\"%s\" is not an SSM document name (3 to 128 of A-Z a-z 0-9 "
	    "_ . : / -)", schema_show(q, sizeof(q), s));
	return false;
}

static bool
check_name(struct schema_ctx *c, const char *path, const char *s, const char *what)
{
	char q[SCHEMA_SHOW_LEN];

	if (name_ok(s))
		return true;
	schema_problem(c, path, "\"%s\" is not a valid %s name (1 to 64 of A-Z a-z 0-9 _ . @ -)",
	    schema_show(q, sizeof(q), s), what);
	return false;
}

static bool
check_user_exists(struct schema_ctx *c, const char *path, const char *name)
{
	struct loader *L = c->arg;
	char q[SCHEMA_SHOW_LEN];
	const char *near;

	if (!check_name(c, path, name, "user"))
		return false;
	if (policy_user(L->p, name) != NULL)
		return true;
	near = schema_suggest(name, L->p->users, L->p->nusers, sizeof(struct pol_user),
	    offsetof(struct pol_user, name));
	if (near != NULL)
		schema_problem(c, path, "unknown user \"%s\" (did you mean \"%s\"?)",
		    schema_show(q, sizeof(q), name), near);
	else
		schema_problem(c, path, "unknown user \"%s\"", schema_show(q, sizeof(q), name));
	return false;
}

/* A group member: a user name (groups do not nest). */
static bool
check_member(struct schema_ctx *c, const char *path, const char *s)
{
	if (strncmp(s, "group:", 6) == 0) {
		schema_problem(c, path, "groups list user names; nested groups are not supported");
		return false;
	}
	if (strncmp(s, "user:", 5) == 0)
		s += 5;
	return check_user_exists(c, path, s);
}

/* A principal: "group:NAME", "user:NAME" or a bare user name, which must exist. */
static bool
check_principal(struct schema_ctx *c, const char *path, const char *s)
{
	struct loader *L = c->arg;
	char q[SCHEMA_SHOW_LEN];
	const char *near;

	if (strncmp(s, "group:", 6) == 0) {
		if (!check_name(c, path, s + 6, "group"))
			return false;
		if (policy_group(L->p, s + 6) != NULL)
			return true;
		near = schema_suggest(s + 6, L->p->groups, L->p->ngroups, sizeof(struct pol_group),
		    offsetof(struct pol_group, name));
		if (near != NULL)
			schema_problem(c, path, "unknown group \"%s\" (did you mean \"%s\"?)",
			    schema_show(q, sizeof(q), s + 6), near);
		else
			schema_problem(c, path, "unknown group \"%s\"",
			    schema_show(q, sizeof(q), s + 6));
		return false;
	}
	if (strncmp(s, "user:", 5) == 0)
		return check_user_exists(c, path, s + 5);
	if (strchr(s, ':') != NULL) {
		schema_problem(c, path, "\"%s\" is not a principal (write group:NAME, user:NAME "
		    "or a user name)", schema_show(q, sizeof(q), s));
		return false;
	}
	return check_user_exists(c, path, s);
}

static bool
check_policy_version(struct schema_ctx *c, const char *path, const char *s)
{
	if (strcmp(s, "2012-10-17") == 0 || strcmp(s, "2008-10-17") == 0)
		return true;
	schema_problem(c, path, "must be \"2012-10-17\"");
	return false;
}

/* ------------------------------------------------------------------ custom fields */

static void
set_keys(struct schema_ctx *c, const struct schema_field *f, const char *path, json_t *v, void *dst)
{
	struct pol_user *u = dst;
	char ip[SCHEMA_PATH_LEN];
	json_t *it;
	size_t i, j, n;

	(void)f;
	if (!json_is_array(v)) {
		schema_wrong_type(c, path, "a list of \"ed25519:BASE64\" keys", v);
		return;
	}
	if ((n = json_array_size(v)) == 0 || n > 16) {
		schema_problem(c, path, "must list 1 to 16 keys");
		return;
	}
	if ((u->keys = calloc(n, sizeof(*u->keys))) == NULL) {
		schema_oom(c);
		return;
	}
	json_array_foreach(v, i, it) {
		schema_path_idx(ip, sizeof(ip), path, i);
		if (!json_is_string(it) || !parse_key(json_string_value(it), u->keys[u->nkeys])) {
			schema_problem(c, ip, "not an Ed25519 public key: expected \"ed25519:\" "
			    "followed by the base64 of 32 bytes (as `elevate init` prints it)");
			continue;
		}
		for (j = 0; j < u->nkeys && memcmp(u->keys[j], u->keys[u->nkeys], 32) != 0; j++)
			;
		if (j < u->nkeys) {
			schema_problem(c, ip, "the same key is listed twice");
			continue;
		}
		u->nkeys++;
	}
}

static void
set_target_tags(struct schema_ctx *c, const struct schema_field *f, const char *path, json_t *v,
    void *dst)
{
	struct pol_profile *pr = dst;
	char kp[SCHEMA_PATH_LEN];
	const char *key;
	json_t *val;
	size_t before = c->n;

	(void)f;
	if (!json_is_object(v)) {
		schema_wrong_type(c, path, "an object of tag name to value", v);
		return;
	}
	if (json_object_size(v) > 50) {
		schema_problem(c, path, "has %zu tags; at most 50 are allowed",
		    json_object_size(v));
		return;
	}
	json_object_foreach(v, key, val) {
		schema_path_key(kp, sizeof(kp), path, key);
		if (key[0] == '\0' || strlen(key) > 128 || schema_has_control(key))
			schema_problem(c, kp, "tag names are 1 to 128 characters without "
			    "control characters");
		else if (!json_is_string(val))
			schema_wrong_type(c, kp, "a string", val);
		else if (json_string_length(val) > 256 ||
		    schema_has_control(json_string_value(val)) ||
		    strlen(json_string_value(val)) != json_string_length(val))
			schema_problem(c, kp, "tag values are at most 256 characters without "
			    "control characters");
	}
	/* An empty object would scope nothing; keep it NULL so it never matches everything. */
	if (c->n != before || json_object_size(v) == 0)
		return;
	if ((pr->ssm_target_tags = json_deep_copy(v)) == NULL)
		schema_oom(c);
}

static void
check_statement(struct schema_ctx *c, const struct schema_field *f, const char *path, json_t *v,
    void *dst)
{
	char ip[SCHEMA_PATH_LEN];
	json_t *it;
	size_t i;

	(void)f;
	(void)dst;
	if (json_is_object(v))
		return;
	if (!json_is_array(v) || json_array_size(v) == 0) {
		schema_wrong_type(c, path, "a statement object or a non-empty list of them", v);
		return;
	}
	json_array_foreach(v, i, it) {
		schema_path_idx(ip, sizeof(ip), path, i);
		if (!json_is_object(it))
			schema_wrong_type(c, ip, "a statement object", it);
	}
}

/* Scratch destination for the session policy's own keys (only validated, not kept). */
struct sp_scratch {
	char *version;
	char *id;
};

static const struct schema_field sp_fields[] = {
	{ .key = "Version", .kind = SF_STR, .required = true, .min = 1, .max = 16,
	  .off = offsetof(struct sp_scratch, version), .check = check_policy_version },
	{ .key = "Id", .kind = SF_STR, .min = 1, .max = 128,
	  .off = offsetof(struct sp_scratch, id) },
	{ .key = "Statement", .kind = SF_CUSTOM, .required = true, .custom = check_statement },
};
static const struct schema sp_spec = SCHEMA(sp_fields);

static void
set_session_policy(struct schema_ctx *c, const struct schema_field *f, const char *path, json_t *v,
    void *dst)
{
	struct pol_profile *pr = dst;
	struct sp_scratch sc = { NULL, NULL };
	size_t before = c->n, len;
	char *compact;

	(void)f;
	if (json_is_null(v))
		return;
	if (!json_is_object(v)) {
		schema_wrong_type(c, path, "null or an IAM policy object", v);
		return;
	}
	schema_apply(c, &sp_spec, v, path, &sc);
	free(sc.version);
	free(sc.id);
	if (c->n != before)
		return;
	if ((compact = json_dumps(v, JSON_COMPACT)) == NULL) {
		schema_oom(c);
		return;
	}
	len = strlen(compact);
	free(compact);
	if (len > SESSION_POLICY_MAX) {
		schema_problem(c, path, "is %zu characters as compact JSON; STS accepts at most %d",
		    len, SESSION_POLICY_MAX);
		return;
	}
	if ((pr->session_policy = json_deep_copy(v)) == NULL)
		schema_oom(c);
}

/* "from" of a rule: one principal or a list of them. */
static const struct schema_field rule_froms = {
	.key = "from", .kind = SF_STRLIST, .min = 1, .max = 16,
	.off = offsetof(struct pol_rule, froms), .off2 = offsetof(struct pol_rule, nfroms),
	.check = check_principal,
};

static void
set_rule_from(struct schema_ctx *c, const struct schema_field *f, const char *path, json_t *v,
    void *dst)
{
	struct pol_rule *r = dst;

	(void)f;
	if (json_is_string(v)) {
		const char *s = json_string_value(v);

		if (!schema_str_ok(c, &rule_froms, path, s, json_string_length(v), true))
			return;
		if ((r->froms = calloc(1, sizeof(*r->froms))) == NULL ||
		    (r->froms[0] = strdup(s)) == NULL) {
			schema_oom(c);
			return;
		}
		r->nfroms = 1;
	} else if (json_is_array(v)) {
		schema_set_strlist(c, &rule_froms, path, v, r);
	} else {
		schema_wrong_type(c, path, "a principal or a list of principals", v);
	}
	if (r->nfroms > 0)
		r->from = r->froms[0];
}

static const struct schema_field rule_fields[] = {
	{ .key = "from", .kind = SF_CUSTOM, .required = true, .custom = set_rule_from },
	{ .key = "count", .kind = SF_INT, .min = 1, .max = 100, .dflt = "1",
	  .off = offsetof(struct pol_rule, count) },
};
static const struct schema rule_spec = SCHEMA(rule_fields);

/* A plain "approvers" list: one rule over the union of its principals. */
static const struct schema_field plain_approvers = {
	.key = "approvers", .kind = SF_STRLIST, .min = 1, .max = 64,
	.off = offsetof(struct pol_rule, froms), .off2 = offsetof(struct pol_rule, nfroms),
	.check = check_principal,
};

static void
set_approvers(struct schema_ctx *c, const struct schema_field *f, const char *path, json_t *v,
    void *dst)
{
	struct loader *L = c->arg;
	struct pol_profile *pr = dst;
	char ip[SCHEMA_PATH_LEN];
	json_t *it;
	size_t i, n;
	bool plain;

	(void)f;
	if (!json_is_array(v) || (n = json_array_size(v)) == 0) {
		schema_wrong_type(c, path, "a non-empty list of principals, or of rules "
		    "{\"from\": ..., \"count\": N}", v);
		return;
	}
	if (n > 64) {
		schema_problem(c, path, "lists %zu items; at most 64 are allowed", n);
		return;
	}
	plain = json_is_string(json_array_get(v, 0));
	json_array_foreach(v, i, it) {
		schema_path_idx(ip, sizeof(ip), path, i);
		if (plain ? !json_is_string(it) : !json_is_object(it)) {
			if (json_is_string(it) || json_is_object(it))
				schema_problem(c, ip, "mixes principals and rule objects; use one "
				    "form for the whole list");
			else
				schema_wrong_type(c, ip, "a principal or a rule {\"from\": ..., "
				    "\"count\": N}", it);
			return;
		}
	}
	if ((pr->rules = calloc(plain ? 1 : n, sizeof(*pr->rules))) == NULL) {
		schema_oom(c);
		return;
	}
	if (plain) {
		pr->nrules = 1;
		schema_set_strlist(c, &plain_approvers, path, v, &pr->rules[0]);
		if (pr->rules[0].nfroms > 0)
			pr->rules[0].from = pr->rules[0].froms[0];
		L->approvers_form = 1;
		return;
	}
	pr->nrules = n;
	json_array_foreach(v, i, it) {
		schema_path_idx(ip, sizeof(ip), path, i);
		schema_apply(c, &rule_spec, it, ip, &pr->rules[i]);
	}
	L->approvers_form = 2;
}

/* ------------------------------------------------------------------ auto_approve */

#define AUTO_RULES_MAX 16
#define AO(m) offsetof(struct pol_auto_rule, m)

static const char *const day_names[7] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

static int
day_of(const char *s, size_t n)
{
	int d;

	for (d = 0; d < 7; d++)
		if (n == 3 && strncasecmp(s, day_names[d], 3) == 0)
			return d;
	return -1;
}

/* "mon-fri", "mon,wed,fri", "fri-mon" (wraps), "sat-sun,wed": a bit per weekday. */
static bool
parse_days(const char *s, unsigned *out)
{
	const char *p = s, *comma, *dash;
	int a, b;

	*out = 0;
	while (*p != '\0') {
		comma = strchr(p, ',');
		if (comma == NULL)
			comma = p + strlen(p);
		dash = memchr(p, '-', (size_t)(comma - p));
		if (dash == NULL) {
			if ((a = day_of(p, (size_t)(comma - p))) < 0)
				return false;
			b = a;
		} else if ((a = day_of(p, (size_t)(dash - p))) < 0 ||
		    (b = day_of(dash + 1, (size_t)(comma - dash - 1))) < 0)
			return false;
		for (;; a = (a + 1) % 7) {
			*out |= 1u << a;
			if (a == b)
				break;
		}
		p = *comma == ',' ? comma + 1 : comma;
		if (*comma == ',' && *p == '\0')
			return false;
	}
	return *out != 0;
}

/* "HH:MM" (00:00 to 24:00) as minutes of the day, or -1. */
static int
parse_hhmm(const char *s)
{
	int h, m;

	if (strlen(s) != 5 || s[2] != ':' || s[0] < '0' || s[0] > '9' || s[1] < '0' ||
	    s[1] > '9' || s[3] < '0' || s[3] > '5' || s[4] < '0' || s[4] > '9')
		return -1;
	h = (s[0] - '0') * 10 + (s[1] - '0');
	m = (s[3] - '0') * 10 + (s[4] - '0');
	if (h > 24 || (h == 24 && m != 0))
		return -1;
	return h * 60 + m;
}

/* "hours": {"tz": "Asia/Tokyo", "days": "mon-fri", "from": "09:00", "to": "19:00"} */
static void
set_hours(struct schema_ctx *c, const struct schema_field *f, const char *path, json_t *v,
    void *dst)
{
	struct pol_auto_rule *ar = dst;
	struct el_why w = {{0}};
	char kp[SCHEMA_PATH_LEN], q[SCHEMA_SHOW_LEN];
	const char *k, *tz, *days, *from, *to;
	json_t *x;

	(void)f;
	if (!json_is_object(v)) {
		schema_wrong_type(c, path, "an object {\"tz\", \"days\", \"from\", \"to\"}", v);
		return;
	}
	json_object_foreach(v, k, x) {
		if (strcmp(k, "tz") != 0 && strcmp(k, "days") != 0 && strcmp(k, "from") != 0 &&
		    strcmp(k, "to") != 0) {
			schema_path_key(kp, sizeof(kp), path, k);
			schema_problem(c, kp, "unknown key (hours takes tz, days, from and to)");
			return;
		}
		if (!json_is_string(x) || json_string_length(x) > TZONE_NAME_MAX) {
			schema_path_key(kp, sizeof(kp), path, k);
			schema_wrong_type(c, kp, "a string of at most 64 characters", x);
			return;
		}
	}
	tz = json_string_value(json_object_get(v, "tz"));
	days = json_string_value(json_object_get(v, "days"));
	from = json_string_value(json_object_get(v, "from"));
	to = json_string_value(json_object_get(v, "to"));
	if (tz == NULL || from == NULL || to == NULL) {
		schema_problem(c, path, "needs tz (like \"Asia/Tokyo\"), from and to (\"HH:MM\"); "
		    "days is optional (default mon-sun)");
		return;
	}
	schema_path_key(kp, sizeof(kp), path, "tz");
	if (tzone_load(NULL, tz, &ar->zone, &w) != EL_OK) {
		schema_problem(c, kp, "%s", w.msg);
		return;
	}
	schema_path_key(kp, sizeof(kp), path, "days");
	if (days == NULL)
		ar->days = 0x7f;
	else if (!parse_days(days, &ar->days)) {
		schema_problem(c, kp, "\"%s\" is not a list of days (like \"mon-fri\" or "
		    "\"mon,wed,sat-sun\")", schema_show(q, sizeof(q), days));
		return;
	}
	ar->from_min = parse_hhmm(from);
	ar->to_min = parse_hhmm(to);
	if (ar->from_min < 0 || ar->to_min < 0) {
		schema_path_key(kp, sizeof(kp), path, ar->from_min < 0 ? "from" : "to");
		schema_problem(c, kp, "\"%s\" is not a time of day HH:MM (00:00 to 24:00)",
		    schema_show(q, sizeof(q), ar->from_min < 0 ? from : to));
		return;
	}
	if (ar->from_min >= ar->to_min) {
		schema_path_key(kp, sizeof(kp), path, "to");
		schema_problem(c, kp, "%s is not after from %s: a window over midnight is two "
		    "rules (one to 24:00, one from 00:00)", to, from);
		return;
	}
	if ((ar->tz = strdup(tz)) == NULL)
		schema_oom(c);
}

static bool
check_rule_name(struct schema_ctx *c, const char *path, const char *s)
{
	return check_name(c, path, s, "rule");
}

static const struct schema_field auto_fields[] = {
	{ .key = "name", .kind = SF_STR, .min = 1, .max = POLICY_NAME_MAX, .off = AO(name),
	  .check = check_rule_name },
	{ .key = "requesters", .kind = SF_STRLIST, .required = true, .min = 1, .max = 256,
	  .off = AO(requesters), .off2 = AO(nrequesters), .check = check_principal },
	{ .key = "max_duration", .kind = SF_DURATION, .min = 60, .max = WINDOW_MAX,
	  .off = AO(max_duration) },
	{ .key = "ticket_pattern", .kind = SF_STR, .min = 1, .max = 256,
	  .off = AO(ticket_pattern), .check = check_ticket_pattern },
	{ .key = "hours", .kind = SF_CUSTOM, .custom = set_hours },
};
static const struct schema auto_spec = SCHEMA(auto_fields);

/* "auto_approve": [rule, ...]: when no human is needed (struct pol_auto_rule). */
static void
set_auto_approve(struct schema_ctx *c, const struct schema_field *f, const char *path,
    json_t *v, void *dst)
{
	struct pol_profile *pr = dst;
	char ip[SCHEMA_PATH_LEN], b1[48];
	json_t *it;
	size_t i, n;

	(void)f;
	if (!json_is_array(v)) {
		schema_wrong_type(c, path, "a list of rules {\"requesters\", \"max_duration\"?, "
		    "\"ticket_pattern\"?, \"hours\"?}", v);
		return;
	}
	if ((n = json_array_size(v)) > AUTO_RULES_MAX) {
		schema_problem(c, path, "lists %zu rules; at most %d are allowed", n,
		    AUTO_RULES_MAX);
		return;
	}
	if (n == 0 || (pr->auto_rules = calloc(n, sizeof(*pr->auto_rules))) == NULL) {
		if (n > 0)
			schema_oom(c);
		return;
	}
	pr->nauto_rules = n;
	json_array_foreach(v, i, it) {
		struct pol_auto_rule *ar = &pr->auto_rules[i];

		schema_path_idx(ip, sizeof(ip), path, i);
		if (!json_is_object(it)) {
			schema_wrong_type(c, ip, "a rule {\"requesters\": [...], ...}", it);
			continue;
		}
		schema_apply(c, &auto_spec, it, ip, ar);
		if (ar->name == NULL) {
			snprintf(b1, sizeof(b1), "auto_approve[%zu]", i);
			if ((ar->name = strdup(b1)) == NULL)
				schema_oom(c);
		}
		if (ar->ticket_pattern != NULL &&
		    regcomp(&ar->ticket_re, ar->ticket_pattern, REG_EXTENDED | REG_NOSUB) != 0) {
			free(ar->ticket_pattern);
			ar->ticket_pattern = NULL;
		}
	}
}

/* ------------------------------------------------------------------ break_glass */

#define GO(m) offsetof(struct pol_glass, m)
#define GLASS_REVIEW_DEFAULT (24 * 3600)

static const struct schema_field glass_fields[] = {
	{ .key = "requesters", .kind = SF_STRLIST, .required = true, .min = 1, .max = 256,
	  .off = GO(requesters), .off2 = GO(nrequesters), .check = check_principal },
	{ .key = "max_duration", .kind = SF_DURATION, .min = 60, .max = WINDOW_MAX,
	  .off = GO(max_duration) },
	{ .key = "notify", .kind = SF_STRLIST, .min = 1, .max = 64, .off = GO(notify),
	  .off2 = GO(nnotify), .check = check_principal },
	{ .key = "review_within", .kind = SF_DURATION, .min = 1, .max = 30 * 86400,
	  .off = GO(review_within) },
};
static const struct schema glass_spec = SCHEMA(glass_fields);

/* "break_glass": {"requesters", "max_duration"?, "notify"?, "review_within"?} */
static void
set_glass(struct schema_ctx *c, const struct schema_field *f, const char *path, json_t *v,
    void *dst)
{
	struct pol_profile *pr = dst;

	(void)f;
	if (!json_is_object(v)) {
		schema_wrong_type(c, path, "an object {\"requesters\", \"max_duration\"?, "
		    "\"notify\"?, \"review_within\"?}", v);
		return;
	}
	schema_apply(c, &glass_spec, v, path, &pr->glass);
	if (pr->glass.review_within == 0)
		pr->glass.review_within = GLASS_REVIEW_DEFAULT;
	pr->glass.on = true;
}

/* ------------------------------------------------------------------ the tables */

#define UO(m) offsetof(struct pol_user, m)
#define PO(m) offsetof(struct pol_profile, m)

static const struct schema_field user_fields[] = {
	{ .key = "email", .kind = SF_STR, .required = true, .min = 3, .max = 254,
	  .off = UO(email), .check = check_email },
	{ .key = "keys", .kind = SF_CUSTOM, .required = true, .custom = set_keys },
};
static const struct schema user_spec = SCHEMA(user_fields);

static const struct schema_field group_members = {
	.key = "members", .kind = SF_STRLIST, .min = 0, .max = 5000,
	.off = offsetof(struct pol_group, members), .off2 = offsetof(struct pol_group, nmembers),
	.check = check_member,
};

static const struct schema_field ssm_fields[] = {
	{ .key = "targets", .kind = SF_STRLIST, .min = 0, .max = 256,
	  .off = PO(ssm_targets), .off2 = PO(nssm_targets), .check = check_instance_id },
	{ .key = "target_tags", .kind = SF_CUSTOM, .custom = set_target_tags },
	{ .key = "documents", .kind = SF_STRLIST, .min = 0, .max = 64,
	  .off = PO(ssm_documents), .off2 = PO(nssm_documents), .check = check_document },
};
static const struct schema ssm_spec = SCHEMA(ssm_fields);

/* Keep in step with policies/README.md (it documents this table). */
static const struct schema_field profile_fields[] = {
	{ .key = "description", .kind = SF_STR, .min = 0, .max = 1024, .off = PO(description) },
	{ .key = "role_arn", .kind = SF_STR, .required = true, .min = 1, .max = 2048,
	  .off = PO(role_arn), .check = check_role_arn },
	{ .key = "region", .kind = SF_STR, .min = 1, .max = 32, .off = PO(region),
	  .check = check_region },
	{ .key = "requesters", .kind = SF_STRLIST, .required = true, .min = 1, .max = 256,
	  .off = PO(requesters), .off2 = PO(nrequesters), .check = check_principal },
	{ .key = "approvers", .kind = SF_CUSTOM, .required = true, .custom = set_approvers },
	{ .key = "approvals_required", .kind = SF_INT, .min = 1, .max = 100, .dflt = "1",
	  .off = PO(approvals_required) },
	{ .key = "allow_self_approval", .kind = SF_BOOL, .dflt = "false",
	  .off = PO(allow_self_approval) },
	{ .key = "default_duration", .kind = SF_DURATION, .min = 60, .max = WINDOW_MAX,
	  .off = PO(default_duration) },     /* default: min(15m, max_duration) */
	{ .key = "max_duration", .kind = SF_DURATION, .min = 60, .max = WINDOW_MAX,
	  .dflt = "1h", .off = PO(max_duration) },
	{ .key = "pending_ttl", .kind = SF_DURATION, .min = 1, .max = 7 * 86400,
	  .dflt = "30m", .off = PO(pending_ttl) },
	{ .key = "reason_required", .kind = SF_BOOL, .dflt = "true", .off = PO(reason_required) },
	{ .key = "ticket_pattern", .kind = SF_STR, .min = 1, .max = 256,
	  .off = PO(ticket_pattern), .check = check_ticket_pattern },
	{ .key = "ticket_required", .kind = SF_BOOL,
	  .off = PO(ticket_required) },      /* default: true iff ticket_pattern is set */
	{ .key = "ssm", .kind = SF_OBJECT, .sub = &ssm_spec },
	{ .key = "session_policy", .kind = SF_CUSTOM, .custom = set_session_policy },
	{ .key = "max_credential_duration", .kind = SF_DURATION, .min = 900, .max = WINDOW_MAX,
	  .dflt = "1h", .off = PO(max_credential_duration) },
	{ .key = "revocation_probe", .kind = SF_STR, .null_ok = true, .min = 1, .max = 64,
	  .off = PO(revocation_probe), .check = check_probe },
	{ .key = "auto_approve", .kind = SF_CUSTOM, .custom = set_auto_approve },
	{ .key = "break_glass", .kind = SF_CUSTOM, .custom = set_glass },
};
static const struct schema profile_spec = SCHEMA(profile_fields);

static void collect(struct schema_ctx *c, const struct schema_field *f, const char *path,
    json_t *v, void *dst);

static const struct schema_field top_fields[] = {
	{ .key = "users", .kind = SF_CUSTOM, .custom = collect, .arg = K_USER },
	{ .key = "groups", .kind = SF_CUSTOM, .custom = collect, .arg = K_GROUP },
	{ .key = "profiles", .kind = SF_CUSTOM, .custom = collect, .arg = K_PROFILE },
};
static const struct schema top_spec = SCHEMA(top_fields);

/* ------------------------------------------------------------------ loading */

/* Top level: remember each definition with its file; validated once all files are read. */
static void
collect(struct schema_ctx *c, const struct schema_field *f, const char *path, json_t *v,
    void *dst)
{
	struct loader *L = c->arg;
	struct entries *es = &L->ent[f->arg];
	char np[SCHEMA_PATH_LEN];
	const char *name;
	json_t *val;

	(void)dst;
	if (!json_is_object(v)) {
		schema_wrong_type(c, path, "an object keyed by name", v);
		return;
	}
	json_object_foreach(v, name, val) {
		schema_path_key(np, sizeof(np), path, name);
		if (!check_name(c, np, name, kind_names[f->arg]))
			continue;
		if (es->n == es->cap) {
			size_t ncap = es->cap ? es->cap * 2 : 16;
			struct entry *nv = reallocarray(es->v, ncap, sizeof(*nv));
			if (nv == NULL) {
				schema_oom(c);
				return;
			}
			es->v = nv;
			es->cap = ncap;
		}
		es->v[es->n] = (struct entry){ name, c->file, val, es->n, false };
		es->n++;
	}
}

static void
parse_doc(struct loader *L, const char *file, const char *buf, size_t len)
{
	json_error_t je;
	json_t *doc;
	char *f, **nf;
	json_t **nd;

	if ((f = strdup(file)) == NULL ||
	    (nf = reallocarray(L->files, L->nfiles + 1, sizeof(*nf))) == NULL) {
		free(f);
		schema_oom(&L->sc);
		return;
	}
	L->files = nf;
	L->files[L->nfiles++] = f;
	L->sc.file = f;
	if (len > POLICY_MAX_FILE) {
		schema_problem(&L->sc, NULL, "is %zu bytes; a policy file may have at most %d", len,
		    POLICY_MAX_FILE);
		return;
	}
	if ((doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je)) == NULL) {
		diags_add(L->sc.d, f, NULL, je.line, je.column, "%s", je.text);
		return;
	}
	if ((nd = reallocarray(L->docs, L->ndocs + 1, sizeof(*nd))) == NULL) {
		json_decref(doc);
		schema_oom(&L->sc);
		return;
	}
	L->docs = nd;
	L->docs[L->ndocs++] = doc;
	schema_apply(&L->sc, &top_spec, doc, "$", NULL);
}

static int
cmp_entry(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c != 0)
		return c;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int
cmp_entry_seq(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* A later file may add names but never redefine one: report each redefinition. */
static void
find_redefinitions(struct loader *L, enum kind k)
{
	struct entries *es = &L->ent[k];
	char np[SCHEMA_PATH_LEN];
	size_t i;

	if (es->n < 2)
		return;
	qsort(es->v, es->n, sizeof(*es->v), cmp_entry);
	for (i = 1; i < es->n; i++) {
		if (strcmp(es->v[i].name, es->v[i - 1].name) != 0)
			continue;
		es->v[i].redefined = true;
		L->sc.file = es->v[i].file;
		schema_path_key(np, sizeof(np), kind_paths[k], es->v[i].name);
		schema_problem(&L->sc, np, "%s \"%s\" is already defined in %s", kind_names[k],
		    es->v[i].name, es->v[i - 1].file);
	}
	qsort(es->v, es->n, sizeof(*es->v), cmp_entry_seq);
}

static int
cmp_user(const void *a, const void *b)
{
	return strcmp(((const struct pol_user *)a)->name, ((const struct pol_user *)b)->name);
}

static int
cmp_group(const void *a, const void *b)
{
	return strcmp(((const struct pol_group *)a)->name, ((const struct pol_group *)b)->name);
}

static int
cmp_profile(const void *a, const void *b)
{
	return strcmp(((const struct pol_profile *)a)->name,
	    ((const struct pol_profile *)b)->name);
}

struct keyref {
	const unsigned char *key;
	const char *text;       /* email */
	size_t user;            /* index in p->users (document order at this point) */
	size_t idx;
};

static int
cmp_keyref_key(const void *a, const void *b)
{
	const struct keyref *x = a, *y = b;
	int c = memcmp(x->key, y->key, 32);

	return c != 0 ? c : (x->user < y->user ? -1 : x->user > y->user);
}

static int
cmp_keyref_text(const void *a, const void *b)
{
	const struct keyref *x = a, *y = b;
	int c = strcasecmp(x->text, y->text);

	return c != 0 ? c : (x->user < y->user ? -1 : x->user > y->user);
}

/*
 * One key or one mailbox shared by two users would let one person act as two (approve
 * their own request, or count twice toward a quorum): both are errors.
 */
static void
check_users_distinct(struct loader *L, const char *const *ufile)
{
	struct policy *p = L->p;
	struct keyref *kr;
	char np[SCHEMA_PATH_LEN], ip[SCHEMA_PATH_LEN];
	size_t i, j, n = 0;

	for (i = 0; i < p->nusers; i++)
		n += p->users[i].nkeys;
	if ((kr = calloc(n > p->nusers ? n : p->nusers ? p->nusers : 1, sizeof(*kr))) == NULL) {
		schema_oom(&L->sc);
		return;
	}
	for (i = 0, n = 0; i < p->nusers; i++)
		for (j = 0; j < p->users[i].nkeys; j++)
			kr[n++] = (struct keyref){ p->users[i].keys[j], NULL, i, j };
	if (n > 1)
		qsort(kr, n, sizeof(*kr), cmp_keyref_key);
	for (i = 1; i < n; i++) {
		if (memcmp(kr[i].key, kr[i - 1].key, 32) != 0 || kr[i].user == kr[i - 1].user)
			continue;
		L->sc.file = ufile[kr[i].user];
		schema_path_key(np, sizeof(np), "$.users", p->users[kr[i].user].name);
		schema_path_key(ip, sizeof(ip), np, "keys");
		schema_path_idx(np, sizeof(np), ip, kr[i].idx);
		schema_problem(&L->sc, np, "this key is also a key of user \"%s\"; every person "
		    "needs their own key", p->users[kr[i - 1].user].name);
	}
	for (i = 0, n = 0; i < p->nusers; i++)
		if (p->users[i].email != NULL)
			kr[n++] = (struct keyref){ NULL, p->users[i].email, i, 0 };
	if (n > 1)
		qsort(kr, n, sizeof(*kr), cmp_keyref_text);
	for (i = 1; i < n; i++) {
		if (strcasecmp(kr[i].text, kr[i - 1].text) != 0)
			continue;
		L->sc.file = ufile[kr[i].user];
		schema_path_key(np, sizeof(np), "$.users", p->users[kr[i].user].name);
		schema_path_key(ip, sizeof(ip), np, "email");
		schema_problem(&L->sc, ip, "user \"%s\" has the same email address; approval "
		    "links would reach one mailbox for two people", p->users[kr[i - 1].user].name);
	}
	free(kr);
}

static void
build_users(struct loader *L)
{
	struct entries *es = &L->ent[K_USER];
	struct policy *p = L->p;
	const char **ufile;
	char np[SCHEMA_PATH_LEN];
	size_t i;

	if (es->n == 0)
		return;
	if ((p->users = calloc(es->n, sizeof(*p->users))) == NULL ||
	    (ufile = calloc(es->n, sizeof(*ufile))) == NULL) {
		schema_oom(&L->sc);
		return;
	}
	for (i = 0; i < es->n; i++) {
		struct pol_user *u;

		if (es->v[i].redefined)
			continue;
		u = &p->users[p->nusers];
		if ((u->name = strdup(es->v[i].name)) == NULL) {
			schema_oom(&L->sc);
			break;
		}
		ufile[p->nusers++] = es->v[i].file;
		L->sc.file = es->v[i].file;
		schema_path_key(np, sizeof(np), "$.users", u->name);
		schema_apply(&L->sc, &user_spec, es->v[i].val, np, u);
	}
	check_users_distinct(L, ufile);
	free(ufile);
	qsort(p->users, p->nusers, sizeof(*p->users), cmp_user);
}

static void
build_groups(struct loader *L)
{
	struct entries *es = &L->ent[K_GROUP];
	struct policy *p = L->p;
	char np[SCHEMA_PATH_LEN];
	size_t i;

	if (es->n == 0)
		return;
	if ((p->groups = calloc(es->n, sizeof(*p->groups))) == NULL) {
		schema_oom(&L->sc);
		return;
	}
	for (i = 0; i < es->n; i++) {
		struct pol_group *g;

		if (es->v[i].redefined)
			continue;
		g = &p->groups[p->ngroups];
		if ((g->name = strdup(es->v[i].name)) == NULL) {
			schema_oom(&L->sc);
			break;
		}
		p->ngroups++;
		L->sc.file = es->v[i].file;
		schema_path_key(np, sizeof(np), "$.groups", g->name);
		schema_set(&L->sc, &group_members, np, es->v[i].val, g);
		/* "user:bob" is accepted as a member; keep the bare name for lookups. */
		for (size_t j = 0; j < g->nmembers; j++)
			if (strncmp(g->members[j], "user:", 5) == 0)
				memmove(g->members[j], g->members[j] + 5,
				    strlen(g->members[j] + 5) + 1);
		if (g->nmembers > 1)
			qsort(g->members, g->nmembers, sizeof(*g->members), policy_cmp_str);
		for (size_t j = 1; j < g->nmembers; j++)
			if (strcmp(g->members[j], g->members[j - 1]) == 0)
				schema_problem(&L->sc, np, "\"%s\" is listed twice", g->members[j]);
	}
	qsort(p->groups, p->ngroups, sizeof(*p->groups), cmp_group);
}


static size_t
rule_population(const struct policy *p, const struct pol_rule *r)
{
	size_t i, n = 0;

	for (i = 0; i < p->nusers; i++)
		n += policy_rule_has(p, r, p->users[i].name);
	return n;
}

/* Can the approver rules ever be met by the users the policy declares? */
static void
check_quorum_feasible(struct loader *L, struct pol_profile *pr, const char *path)
{
	const struct policy *p = L->p;
	const char **all = NULL;
	char rp[SCHEMA_PATH_LEN], tmp[SCHEMA_PATH_LEN], who[256];
	long long total = 0, need = 0;
	int *load = NULL;
	size_t i, pop;
	bool each_ok = true;

	for (i = 0; i < pr->nrules; i++) {
		struct pol_rule *r = &pr->rules[i];

		need += r->count;
		pop = rule_population(p, r);
		if ((size_t)r->count <= pop)
			continue;
		each_ok = false;
		policy_join(who, sizeof(who), r->froms, r->nfroms, ", ");
		if (L->approvers_form == 1) {
			schema_path_key(rp, sizeof(rp), path, "approvals_required");
			schema_problem(&L->sc, rp, "%lld approval%s required but only %zu %s "
			    "can approve (%s)", (long long)r->count,
			    r->count == 1 ? " is" : "s are", pop,
			    pop == 1 ? "person" : "people", who);
		} else {
			schema_path_key(rp, sizeof(rp), path, "approvers");
			schema_path_idx(tmp, sizeof(tmp), rp, i);
			schema_path_key(rp, sizeof(rp), tmp, "count");
			schema_problem(&L->sc, rp, "%lld approval%s required from %s but only "
			    "%zu %s in it", (long long)r->count, r->count == 1 ? " is" : "s are",
			    who, pop, pop == 1 ? "person is" : "people are");
		}
	}
	if (!each_ok || pr->nrules < 2)
		return;
	if ((all = calloc(p->nusers ? p->nusers : 1, sizeof(*all))) == NULL ||
	    (load = calloc(pr->nrules, sizeof(*load))) == NULL) {
		schema_oom(&L->sc);
		goto out;
	}
	for (i = 0; i < p->nusers; i++)
		all[i] = p->users[i].name;
	if (policy_match_votes(p, pr, all, p->nusers, load, &total) != EL_OK) {
		schema_oom(&L->sc);
		goto out;
	}
	if (total < need) {
		schema_path_key(rp, sizeof(rp), path, "approvers");
		schema_problem(&L->sc, rp, "the rules need %lld different approvers but only "
		    "%lld can be found (one person's approval counts toward one rule only)",
		    need, total);
	}
out:
	free(all);
	free(load);
}

/* The cross-field rules of one profile, after its table has been applied. */
static void
finish_profile(struct loader *L, struct pol_profile *pr, const char *path,
    const struct schema_seen *a, size_t before)
{
	const struct schema *s = &profile_spec;
	char fp[SCHEMA_PATH_LEN], b1[32], b2[32];
	const char *t;
	long long sum = 0;
	size_t i, j, k;

	if (pr->role_arn != NULL) {
		t = strstr(pr->role_arn, ":iam::") + 6;
		if ((pr->account = strndup(t, 12)) == NULL ||
		    (pr->role_name = strdup(strrchr(pr->role_arn, '/') + 1)) == NULL)
			schema_oom(&L->sc);
	}

	if (!schema_seen(s, a, "default_duration"))
		pr->default_duration = pr->max_duration < DEFAULT_DURATION ?
		    pr->max_duration : DEFAULT_DURATION;
	else if (schema_ok(s, a, "default_duration") && schema_ok(s, a, "max_duration") &&
	    pr->default_duration > pr->max_duration) {
		el_format_duration(pr->default_duration, b1, sizeof(b1));
		el_format_duration(pr->max_duration, b2, sizeof(b2));
		schema_path_key(fp, sizeof(fp), path, "default_duration");
		schema_problem(&L->sc, fp, "%s is longer than max_duration %s", b1, b2);
	}

	if (pr->glass.max_duration > pr->max_duration && schema_ok(s, a, "max_duration")) {
		el_format_duration(pr->glass.max_duration, b1, sizeof(b1));
		el_format_duration(pr->max_duration, b2, sizeof(b2));
		char gp[SCHEMA_PATH_LEN];

		schema_path_key(gp, sizeof(gp), path, "break_glass");
		schema_path_key(fp, sizeof(fp), gp, "max_duration");
		schema_problem(&L->sc, fp, "%s is longer than the profile's max_duration %s", b1,
		    b2);
	}
	for (i = 0; i < pr->nauto_rules; i++) {
		const struct pol_auto_rule *ar = &pr->auto_rules[i];

		if (ar->max_duration > pr->max_duration && schema_ok(s, a, "max_duration")) {
			char ip[SCHEMA_PATH_LEN];

			el_format_duration(ar->max_duration, b1, sizeof(b1));
			el_format_duration(pr->max_duration, b2, sizeof(b2));
			schema_path_key(fp, sizeof(fp), path, "auto_approve");
			schema_path_idx(ip, sizeof(ip), fp, i);
			schema_path_key(fp, sizeof(fp), ip, "max_duration");
			schema_problem(&L->sc, fp, "%s is longer than the profile's max_duration %s",
			    b1, b2);
		}
	}

	/* Validated by check_ticket_pattern; keep "ticket_re compiled iff pattern set". */
	if (pr->ticket_pattern != NULL &&
	    regcomp(&pr->ticket_re, pr->ticket_pattern, REG_EXTENDED | REG_NOSUB) != 0) {
		free(pr->ticket_pattern);
		pr->ticket_pattern = NULL;
	}
	if (!schema_seen(s, a, "ticket_required"))
		pr->ticket_required = schema_seen(s, a, "ticket_pattern");

	if (L->approvers_form == 1) {
		pr->rules[0].count = pr->approvals_required;
	} else if (L->approvers_form == 2) {
		for (i = 0; i < pr->nrules; i++)
			sum += pr->rules[i].count;
		if (schema_seen(s, a, "approvals_required") &&
		    schema_ok(s, a, "approvals_required") && pr->approvals_required != sum) {
			schema_path_key(fp, sizeof(fp), path, "approvals_required");
			schema_problem(&L->sc, fp, "is %lld but the approver rules add up to "
			    "%lld; leave it out or make it %lld",
			    (long long)pr->approvals_required, sum, sum);
		}
		pr->approvals_required = sum;
	}

	/* approvers: the union of every rule's principals, each once. */
	for (i = 0, k = 0; i < pr->nrules; i++)
		k += pr->rules[i].nfroms;
	if (k > 0 && (pr->approvers = calloc(k, sizeof(*pr->approvers))) == NULL) {
		schema_oom(&L->sc);
		return;
	}
	for (i = 0; i < pr->nrules; i++) {
		for (j = 0; j < pr->rules[i].nfroms; j++) {
			const char *pp = pr->rules[i].froms[j];
			for (k = 0; k < pr->napprovers && strcmp(pr->approvers[k], pp) != 0; k++)
				;
			if (k < pr->napprovers)
				continue;
			if ((pr->approvers[pr->napprovers] = strdup(pp)) == NULL) {
				schema_oom(&L->sc);
				return;
			}
			pr->napprovers++;
		}
	}

	/* Only on an otherwise clean profile: an unknown group would make it cascade. */
	if (diags_count(L->sc.d) == before && L->approvers_form != 0)
		check_quorum_feasible(L, pr, path);
}

static void
build_profiles(struct loader *L)
{
	struct entries *es = &L->ent[K_PROFILE];
	struct policy *p = L->p;
	struct schema_seen a;
	char np[SCHEMA_PATH_LEN];
	size_t i, before;

	if (es->n == 0)
		return;
	if ((p->profiles = calloc(es->n, sizeof(*p->profiles))) == NULL) {
		schema_oom(&L->sc);
		return;
	}
	for (i = 0; i < es->n; i++) {
		struct pol_profile *pr;

		if (es->v[i].redefined)
			continue;
		pr = &p->profiles[p->nprofiles];
		if ((pr->name = strdup(es->v[i].name)) == NULL) {
			schema_oom(&L->sc);
			break;
		}
		p->nprofiles++;
		L->sc.file = es->v[i].file;
		L->approvers_form = 0;
		before = diags_count(L->sc.d);
		schema_path_key(np, sizeof(np), "$.profiles", pr->name);
		a = schema_apply(&L->sc, &profile_spec, es->v[i].val, np, pr);
		finish_profile(L, pr, np, &a, before);
	}
	qsort(p->profiles, p->nprofiles, sizeof(*p->profiles), cmp_profile);
}

static enum el_err
loader_init(struct loader *L, struct diags *d, struct diags *own)
{
	memset(L, 0, sizeof(*L));
	if (d == NULL) {
		diags_init(own);
		d = own;
	}
	L->sc.d = d;
	L->sc.arg = L;
	L->d0 = diags_count(d);
	if ((L->p = calloc(1, sizeof(*L->p))) == NULL)
		return EL_ENOMEM;
	return EL_OK;
}

/* Validates everything collected, then hands over the policy or frees it. */
static enum el_err
loader_finish(struct loader *L, struct policy **out, struct diags *own)
{
	enum el_err r;
	size_t i;
	int k;

	for (k = 0; k < K__N; k++)
		find_redefinitions(L, (enum kind)k);
	build_users(L);
	build_groups(L);
	build_profiles(L);

	if (L->sc.oom)
		r = EL_ENOMEM;
	else if (diags_count(L->sc.d) != L->d0)
		r = EL_ECONFIG;
	else
		r = EL_OK;
	if (r == EL_OK) {
		L->p->refs = 1;
		*out = L->p;
	} else {
		policy_free(L->p);
	}
	L->p = NULL;
	for (k = 0; k < K__N; k++)
		free(L->ent[k].v);
	for (i = 0; i < L->ndocs; i++)
		json_decref(L->docs[i]);
	free(L->docs);
	el_strv_free(L->files, L->nfiles);
	if (L->sc.d == own)
		diags_free(own);
	return r;
}

enum el_err
policy_load_string(const char *json, const char *file, struct policy **out, struct diags *d)
{
	struct loader L;
	struct diags own;
	enum el_err r;

	if (json == NULL || out == NULL)
		return EL_EINVAL;
	if ((r = loader_init(&L, d, &own)) != EL_OK) {
		if (d == NULL)
			diags_free(&own);
		return r;
	}
	parse_doc(&L, file != NULL ? file : "(string)", json, strlen(json));
	return loader_finish(&L, out, &own);
}

static bool
is_policy_file(const char *dir, const char *name)
{
	char full[4096];
	struct stat st;
	size_t n = strlen(name);

	/* Dot files are editor and tool droppings, not policy. */
	if (name[0] == '.' || n <= 5 || strcmp(name + n - 5, ".json") != 0)
		return false;
	if ((size_t)snprintf(full, sizeof(full), "%s/%s", dir, name) >= sizeof(full))
		return false;
	return stat(full, &st) == 0 && S_ISREG(st.st_mode);
}

enum el_err
policy_load_dir(const char *dir, struct policy **out, struct diags *d)
{
	struct loader L;
	struct diags own;
	struct el_why w;
	struct dirent *de;
	DIR *dp = NULL;
	char **names = NULL, full[4096], *buf;
	size_t n = 0, i, len;
	enum el_err r;

	if (dir == NULL || out == NULL)
		return EL_EINVAL;
	if ((r = loader_init(&L, d, &own)) != EL_OK) {
		if (d == NULL)
			diags_free(&own);
		return r;
	}
	if ((dp = opendir(dir)) == NULL) {
		diags_add(L.sc.d, dir, NULL, 0, 0, "cannot read the policy directory: %s",
		    strerror(errno));
		goto done;
	}
	if ((names = calloc(POLICY_MAX_FILES, sizeof(*names))) == NULL) {
		schema_oom(&L.sc);
		goto done;
	}
	while ((de = readdir(dp)) != NULL) {
		if (!is_policy_file(dir, de->d_name))
			continue;
		if (n == POLICY_MAX_FILES) {
			diags_add(L.sc.d, dir, NULL, 0, 0, "more than %d policy files",
			    POLICY_MAX_FILES);
			goto done;
		}
		if ((names[n] = strdup(de->d_name)) == NULL) {
			schema_oom(&L.sc);
			goto done;
		}
		n++;
	}
	if (n == 0) {
		diags_add(L.sc.d, dir, NULL, 0, 0, "no *.json policy files");
		goto done;
	}
	/* Byte order, not the locale's: the same files load the same way everywhere. */
	qsort(names, n, sizeof(*names), policy_cmp_str);
	for (i = 0; i < n; i++) {
		snprintf(full, sizeof(full), "%s/%s", dir, names[i]);
		r = el_read_file(full, POLICY_MAX_FILE, &buf, &len, &w);
		if (r == EL_ETOOBIG) {
			diags_add(L.sc.d, full, NULL, 0, 0, "larger than %d bytes, the ceiling "
			    "for one policy file", POLICY_MAX_FILE);
			continue;
		}
		if (r != EL_OK) {
			diags_add(L.sc.d, full, NULL, 0, 0, "%s", w.msg);
			continue;
		}
		L.total += len;
		if (L.total > POLICY_MAX_TOTAL) {
			diags_add(L.sc.d, full, NULL, 0, 0, "policy files together exceed %d bytes",
			    POLICY_MAX_TOTAL);
			free(buf);
			break;
		}
		parse_doc(&L, full, buf, len);
		free(buf);
	}
done:
	if (dp != NULL)
		closedir(dp);
	el_strv_free(names, n);
	return loader_finish(&L, out, &own);
}
