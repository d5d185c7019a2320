/*
 * policy.c — owns struct policy: loading the *.json files of policies/ into it (parse, declarative
 * validation that reports every problem with file and JSON path, merging several files),
 * and every access decision derived from it: who may request a profile, who may approve,
 * whether a quorum is met, which SSM targets and documents a grant may use.
 *
 * Validation is table driven: each kind of object (user, profile, ssm block, approver
 * rule, session policy) has a spec of fields with type, required flag, bounds, default
 * and where the value goes; apply() walks a JSON object against it. Cross-field rules
 * (default <= max, quorum feasibility) run after the tables. A typo must never widen
 * access, so unknown keys are errors, with a "did you mean" when one is close.
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

#define PATH_LEN 512                    /* JSON paths in diagnostics (truncated beyond) */
#define SHOW_LEN 80                     /* user-supplied text quoted in messages */
#define MSG_LEN 768
#define POLICY_MAX_TOTAL (16 * 1024 * 1024)   /* all files of a directory together */
#define ITEM_MAX 2048                   /* one string inside a list */
#define REASON_MAX 1024                 /* characters (UTF-8 code points) */
#define TICKET_MAX 128
#define SESSION_POLICY_MAX 2048         /* STS Policy parameter, plain-text characters */
#define WINDOW_MAX (12 * 3600)
#define DEFAULT_DURATION 900            /* when default_duration is absent: min(15m, max) */
#define ED25519_PREFIX "ed25519:"

/* ------------------------------------------------------------------ helpers */

/*
 * Copies s for a message: printable ASCII kept, '"' and '\' escaped, other bytes as \xNN,
 * cut with "..." past SHOW_LEN, so a hostile policy cannot put control sequences on the
 * operator's terminal.
 */
static const char *
show(char *buf, size_t len, const char *s)
{
	size_t o = 0;
	const unsigned char *c;

	for (c = (const unsigned char *)s; *c != '\0'; c++) {
		if (o + 8 >= len) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		if (*c == '"' || *c == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)*c;
		} else if (*c >= 0x20 && *c < 0x7f) {
			buf[o++] = (char)*c;
		} else {
			o += (size_t)snprintf(buf + o, len - o, "\\x%02x", *c);
		}
	}
	buf[o] = '\0';
	return buf;
}

static const char *
jtype(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "a list";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number with a fraction";
	case JSON_TRUE: return "true";
	case JSON_FALSE: return "false";
	case JSON_NULL: return "null";
	}
	return "something else";
}

static const char *
plural(long long n)
{
	return n == 1 ? "" : "s";
}

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

static bool
has_control(const char *s)
{
	const unsigned char *c;

	for (c = (const unsigned char *)s; *c != '\0'; c++)
		if (*c < 0x20 || *c == 0x7f)
			return true;
	return false;
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

/* Paths are for humans: an over-long one is cut and ends in "...". */
static void
path_done(char *out, size_t len, int n)
{
	if ((n < 0 || (size_t)n >= len) && len > 4)
		memcpy(out + len - 4, "...", 4);
}

static void
path_key(char *out, size_t len, const char *base, const char *key)
{
	char q[SHOW_LEN];
	const char *c;
	bool plain = key[0] != '\0' && strlen(key) <= POLICY_NAME_MAX;

	for (c = key; *c != '\0' && plain; c++)
		plain = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		    (*c >= '0' && *c <= '9') || *c == '_' || *c == '-';
	if (plain)
		path_done(out, len, snprintf(out, len, "%s.%s", base, key));
	else
		path_done(out, len, snprintf(out, len, "%s[\"%s\"]", base,
		    show(q, sizeof(q), key)));
}

static void
path_idx(char *out, size_t len, const char *base, size_t i)
{
	path_done(out, len, snprintf(out, len, "%s[%zu]", base, i));
}

static size_t
edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[POLICY_NAME_MAX + 1], i, j;

	if (la > POLICY_NAME_MAX || lb > POLICY_NAME_MAX)
		return SIZE_MAX;
	for (j = 0; j <= lb; j++)
		row[j] = j;
	for (i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (j = 1; j <= lb; j++) {
			size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

/*
 * The candidate closest to word, when close enough to be a likely typo; NULL otherwise.
 * Candidates are n records of `stride` bytes, each with a string pointer at `off`.
 */
static const char *
suggest(const char *word, const void *base, size_t n, size_t stride, size_t off)
{
	const char *best = NULL;
	size_t i, bd = SIZE_MAX;

	for (i = 0; i < n; i++) {
		const char *c = *(const char *const *)(const void *)((const char *)base +
		    i * stride + off);
		size_t dist;

		if (c == NULL)
			continue;
		dist = edit_distance(word, c);
		if (dist < bd) {
			bd = dist;
			best = c;
		}
	}
	if (best != NULL && bd <= 2 && bd * 2 <= strlen(best))
		return best;
	return NULL;
}

/* Joins principals for messages ("group:a, bob"), cut with "..." when too long. */
static void
join(char *buf, size_t len, char *const *v, size_t n, const char *sep)
{
	size_t i, o = 0;

	buf[0] = '\0';
	for (i = 0; i < n && o < len; i++) {
		int k = snprintf(buf + o, len - o, "%s%s", i ? sep : "", v[i]);
		if (k < 0 || (size_t)k >= len - o) {
			if (len > 4)
				memcpy(buf + len - 4, "...", 4);
			return;
		}
		o += (size_t)k;
	}
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
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

struct loader {
	struct diags *d;
	size_t d0;              /* diags_count(d) on entry: success means it did not grow */
	struct policy *p;
	const char *file;       /* file of the definition being validated */
	char **files;           /* every file name, owned */
	size_t nfiles;
	json_t **docs;          /* every parsed document, owned */
	size_t ndocs;
	size_t total;           /* bytes read so far */
	struct entries ent[K__N];
	int approvers_form;     /* of the profile being validated: 0 none, 1 list, 2 rules */
	bool oom;
};

static void problem(struct loader *L, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
problem(struct loader *L, const char *path, const char *fmt, ...)
{
	char msg[MSG_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	diags_add(L->d, L->file, path, 0, 0, "%s", msg);
}

static void
oom(struct loader *L)
{
	if (!L->oom)
		diags_add(L->d, L->file, NULL, 0, 0, "out of memory");
	L->oom = true;
}

static void
wrong_type(struct loader *L, const char *path, const char *expected, const json_t *v)
{
	problem(L, path, "expected %s, got %s", expected, jtype(v));
}

/* ------------------------------------------------------------------ the spec engine */

enum fkind {
	F_STR,          /* char *; min/max: length in bytes */
	F_BOOL,         /* bool */
	F_INT,          /* int; min/max: value */
	F_DURATION,     /* int64_t seconds, written "15m"; min/max: seconds */
	F_STRLIST,      /* char ** at off, size_t count at off2; min/max: number of items */
	F_OBJECT,       /* nested keys (sub) stored into the same destination */
	F_CUSTOM,       /* custom() validates and stores */
	F_REJECT,       /* a known key that is refused: always an error saying why */
};

struct field;
typedef bool (*str_check_fn)(struct loader *L, const char *path, const char *s);
typedef void (*custom_fn)(struct loader *L, const struct field *f, const char *path,
    json_t *v, void *dst);

struct spec {
	const struct field *f;
	size_t n;
};

struct field {
	const char *key;
	enum fkind kind;
	bool required;
	long long min, max;
	const char *dflt;       /* F_BOOL, F_INT, F_DURATION: default as the README states it */
	size_t off, off2;
	str_check_fn check;     /* F_STR, and each item of an F_STRLIST */
	custom_fn custom;       /* F_CUSTOM */
	const struct spec *sub; /* F_OBJECT */
	const char *why;        /* F_REJECT */
	int arg;                /* F_CUSTOM */
};

#define SPEC(tab) { (tab), sizeof(tab) / sizeof((tab)[0]) }
#define AT(base, off, type) ((type *)(void *)((char *)(base) + (off)))

/* What apply() saw: bit i of `seen` is field i present, of `bad` field i rejected. */
struct applied {
	uint64_t seen, bad;
	bool object;
};

static bool
applied_ok(const struct spec *s, const struct applied *a, const char *key)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (strcmp(s->f[i].key, key) == 0)
			return a->object && !(a->bad & ((uint64_t)1 << i));
	fatalx("policy: no field %s in spec", key);
}

static bool
applied_seen(const struct spec *s, const struct applied *a, const char *key)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (strcmp(s->f[i].key, key) == 0)
			return (a->seen & ((uint64_t)1 << i)) != 0;
	fatalx("policy: no field %s in spec", key);
}

static void apply_defaults(const struct spec *s, void *dst);

static void
set_default(const struct field *f, void *dst)
{
	long long iv;
	int64_t dv;

	switch (f->kind) {
	case F_BOOL:
		*AT(dst, f->off, bool) = f->dflt != NULL && strcmp(f->dflt, "true") == 0;
		break;
	case F_INT:
		if (f->dflt == NULL)
			break;
		if (el_parse_int(f->dflt, f->min, f->max, &iv) != EL_OK)
			fatalx("policy: bad default %s for %s", f->dflt, f->key);
		*AT(dst, f->off, int) = (int)iv;
		break;
	case F_DURATION:
		if (f->dflt == NULL)
			break;
		if (el_parse_duration(f->dflt, &dv) != EL_OK)
			fatalx("policy: bad default %s for %s", f->dflt, f->key);
		*AT(dst, f->off, int64_t) = dv;
		break;
	case F_OBJECT:
		apply_defaults(f->sub, dst);
		break;
	default:
		break;  /* strings and lists start NULL/0 (calloc) */
	}
}

static void
apply_defaults(const struct spec *s, void *dst)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		set_default(&s->f[i], dst);
}

/* Common checks of one string value (a field or a list item), then f->check. */
static bool
str_ok(struct loader *L, const struct field *f, const char *path, const char *s, size_t len,
    bool item)
{
	long long min = item ? 0 : f->min, max = item ? ITEM_MAX : f->max;

	if (strlen(s) != len) {
		problem(L, path, "contains a NUL character");
		return false;
	}
	if ((long long)len < min) {
		problem(L, path, min == 1 ? "must not be empty" :
		    "must be at least %lld characters", min);
		return false;
	}
	if ((long long)len > max) {
		problem(L, path, "is %zu characters long; at most %lld are allowed", len, max);
		return false;
	}
	if (has_control(s)) {
		problem(L, path, "contains a control character");
		return false;
	}
	return f->check == NULL || f->check(L, path, s);
}

static void
set_strlist(struct loader *L, const struct field *f, const char *path, json_t *v, void *dst)
{
	char ip[PATH_LEN], q[SHOW_LEN];
	char **arr, ***slot = AT(dst, f->off, char **);
	size_t n, i, j, k = 0;
	json_t *it;

	if (!json_is_array(v)) {
		wrong_type(L, path, "a list of strings", v);
		return;
	}
	n = json_array_size(v);
	if ((long long)n < f->min) {
		problem(L, path, "must list at least %lld item%s", f->min, plural(f->min));
		return;
	}
	if ((long long)n > f->max) {
		problem(L, path, "lists %zu items; at most %lld are allowed", n, f->max);
		return;
	}
	if ((arr = calloc(n ? n : 1, sizeof(*arr))) == NULL) {
		oom(L);
		return;
	}
	json_array_foreach(v, i, it) {
		const char *s;

		path_idx(ip, sizeof(ip), path, i);
		if (!json_is_string(it)) {
			wrong_type(L, ip, "a string", it);
			continue;
		}
		s = json_string_value(it);
		if (!str_ok(L, f, ip, s, json_string_length(it), true))
			continue;
		for (j = 0; j < k && strcmp(arr[j], s) != 0; j++)
			;
		if (j < k) {
			problem(L, ip, "\"%s\" is listed twice", show(q, sizeof(q), s));
			continue;
		}
		if ((arr[k] = strdup(s)) == NULL) {
			oom(L);
			break;
		}
		k++;
	}
	if (*slot != NULL) {   /* never set twice by the tables, but stay leak-free */
		for (j = 0; j < *AT(dst, f->off2, size_t); j++)
			free((*slot)[j]);
		free(*slot);
	}
	*slot = arr;
	*AT(dst, f->off2, size_t) = k;
}

static struct applied apply(struct loader *L, const struct spec *s, json_t *obj,
    const char *path, void *dst);

static void
set_field(struct loader *L, const struct field *f, const char *path, json_t *v, void *dst)
{
	char b1[32], b2[32], b3[32], q[SHOW_LEN];
	long long iv;
	int64_t dv;
	char *s;

	switch (f->kind) {
	case F_STR:
		if (!json_is_string(v)) {
			wrong_type(L, path, "a string", v);
			return;
		}
		if (!str_ok(L, f, path, json_string_value(v), json_string_length(v), false))
			return;
		if ((s = strdup(json_string_value(v))) == NULL) {
			oom(L);
			return;
		}
		free(*AT(dst, f->off, char *));
		*AT(dst, f->off, char *) = s;
		return;
	case F_BOOL:
		if (!json_is_boolean(v)) {
			wrong_type(L, path, "true or false", v);
			return;
		}
		*AT(dst, f->off, bool) = json_is_true(v);
		return;
	case F_INT:
		if (!json_is_integer(v)) {
			wrong_type(L, path, "an integer", v);
			return;
		}
		iv = (long long)json_integer_value(v);
		if (iv < f->min || iv > f->max) {
			problem(L, path, "%lld is out of range (%lld..%lld)", iv, f->min, f->max);
			return;
		}
		*AT(dst, f->off, int) = (int)iv;
		return;
	case F_DURATION:
		if (!json_is_string(v)) {
			wrong_type(L, path, "a duration such as \"15m\" or \"1h30m\"", v);
			return;
		}
		if (el_parse_duration(json_string_value(v), &dv) != EL_OK) {
			problem(L, path, "\"%s\" is not a duration (write e.g. \"90s\", \"15m\", "
			    "\"1h30m\")", show(q, sizeof(q), json_string_value(v)));
			return;
		}
		if (dv < f->min || dv > f->max) {
			el_format_duration(dv, b1, sizeof(b1));
			el_format_duration(f->min, b2, sizeof(b2));
			el_format_duration(f->max, b3, sizeof(b3));
			problem(L, path, "%s is out of range (%s..%s)", b1, b2, b3);
			return;
		}
		*AT(dst, f->off, int64_t) = dv;
		return;
	case F_STRLIST:
		set_strlist(L, f, path, v, dst);
		return;
	case F_OBJECT:
		apply(L, f->sub, v, path, dst);
		return;
	case F_CUSTOM:
		f->custom(L, f, path, v, dst);
		return;
	case F_REJECT:
		problem(L, path, "%s", f->why);
		return;
	}
}

/*
 * Validates obj against spec s and stores every valid value into dst: defaults first, so
 * a rejected value leaves the default; every unknown key, wrong type, bound and missing
 * required key is reported. Keys are visited in document order so problems read top-down.
 */
static struct applied
apply(struct loader *L, const struct spec *s, json_t *obj, const char *path, void *dst)
{
	struct applied a = { 0, 0, false };
	char kp[PATH_LEN];
	const char *key, *near;
	json_t *v;
	size_t i, before;

	if (s->n > 64)
		fatalx("policy: spec too large");
	apply_defaults(s, dst);
	if (!json_is_object(obj)) {
		wrong_type(L, path, "an object", obj);
		a.bad = ~(uint64_t)0;
		return a;
	}
	a.object = true;
	json_object_foreach(obj, key, v) {
		path_key(kp, sizeof(kp), path, key);
		for (i = 0; i < s->n && strcmp(key, s->f[i].key) != 0; i++)
			;
		if (i == s->n) {
			near = suggest(key, s->f, s->n, sizeof(s->f[0]), offsetof(struct field, key));
			if (near != NULL)
				problem(L, kp, "unknown key (did you mean %s?)", near);
			else
				problem(L, kp, "unknown key");
			continue;
		}
		a.seen |= (uint64_t)1 << i;
		before = diags_count(L->d);
		set_field(L, &s->f[i], kp, v, dst);
		if (diags_count(L->d) != before)
			a.bad |= (uint64_t)1 << i;
	}
	for (i = 0; i < s->n; i++) {
		if (!s->f[i].required || (a.seen & ((uint64_t)1 << i)))
			continue;
		problem(L, path, "missing required key \"%s\"", s->f[i].key);
		a.bad |= (uint64_t)1 << i;
	}
	return a;
}

/* ------------------------------------------------------------------ value checks */

static bool
check_email(struct loader *L, const char *path, const char *s)
{
	char q[SHOW_LEN];
	const char *at = strchr(s, '@'), *c;

	if (at == NULL || strchr(at + 1, '@') != NULL) {
		problem(L, path, "\"%s\" is not an email address (it needs exactly one @)",
		    show(q, sizeof(q), s));
		return false;
	}
	if (at == s || at[1] == '\0') {
		problem(L, path, "\"%s\" is not an email address (it needs a name before and a "
		    "domain after the @)", show(q, sizeof(q), s));
		return false;
	}
	/* Plain addresses only: anything that could bend an SMTP header is refused. */
	for (c = s; *c != '\0'; c++) {
		if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f ||
		    strchr("<>,;:\"()[]\\", *c) != NULL) {
			problem(L, path, "\"%s\" is not a plain email address (spaces, non-ASCII "
			    "and <>,;:\"()[]\\ are not allowed)", show(q, sizeof(q), s));
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
check_role_arn(struct loader *L, const char *path, const char *s)
{
	char q[SHOW_LEN];

	if (builtin_match("^arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:role/([A-Za-z0-9_+=,.@-]+/)*"
	    "[A-Za-z0-9_+=,.@-]{1,64}$", s))
		return true;
	problem(L, path, "\"%s\" is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME or "
	    "role/PATH/NAME, with a 12-digit account)", show(q, sizeof(q), s));
	return false;
}

static bool
check_region(struct loader *L, const char *path, const char *s)
{
	char q[SHOW_LEN];

	if (builtin_match("^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}$", s))
		return true;
	problem(L, path, "\"%s\" is not an AWS region such as \"ap-northeast-1\"",
	    show(q, sizeof(q), s));
	return false;
}

static bool
check_ticket_pattern(struct loader *L, const char *path, const char *s)
{
	regex_t re;
	char err[128];
	int rc;

	if ((rc = regcomp(&re, s, REG_EXTENDED | REG_NOSUB)) != 0) {
		regerror(rc, &re, err, sizeof(err));
		problem(L, path, "not a valid POSIX extended regular expression: %s", err);
		return false;
	}
	regfree(&re);
	return true;
}

static bool
check_instance_id(struct loader *L, const char *path, const char *s)
{
	char q[SHOW_LEN];
	size_t n = 0;

	if (strncmp(s, "i-", 2) == 0)
		for (n = 0; (s[2 + n] >= '0' && s[2 + n] <= '9') ||
		    (s[2 + n] >= 'a' && s[2 + n] <= 'f'); n++)
			;
	if (n >= 8 && n <= 17 && s[2 + n] == '\0')
		return true;
	problem(L, path, "\"%s\" is not an EC2 instance id (i- followed by 8 to 17 lowercase "
	    "hex digits)", show(q, sizeof(q), s));
	return false;
}

static bool
check_document(struct loader *L, const char *path, const char *s)
{
	char q[SHOW_LEN];
	size_t n;

	for (n = 0; (s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
	    (s[n] >= '0' && s[n] <= '9') || (s[n] != '\0' && strchr("_.:/-", s[n])); n++)
		;
	if (s[n] == '\0' && n >= 3 && n <= 128)
		return true;
	problem(L, path, "\"%s\" is not an SSM document name (3 to 128 of A-Z a-z 0-9 _ . : / -)",
	    show(q, sizeof(q), s));
	return false;
}

static bool
check_name(struct loader *L, const char *path, const char *s, const char *what)
{
	char q[SHOW_LEN];

	if (name_ok(s))
		return true;
	problem(L, path, "\"%s\" is not a valid %s name (1 to 64 of A-Z a-z 0-9 _ . @ -)",
	    show(q, sizeof(q), s), what);
	return false;
}

static bool
check_user_exists(struct loader *L, const char *path, const char *name)
{
	char q[SHOW_LEN];
	const char *near;

	if (!check_name(L, path, name, "user"))
		return false;
	if (policy_user(L->p, name) != NULL)
		return true;
	near = suggest(name, L->p->users, L->p->nusers, sizeof(struct pol_user),
	    offsetof(struct pol_user, name));
	if (near != NULL)
		problem(L, path, "unknown user \"%s\" (did you mean \"%s\"?)",
		    show(q, sizeof(q), name), near);
	else
		problem(L, path, "unknown user \"%s\"", show(q, sizeof(q), name));
	return false;
}

/* A group member: a user name (groups do not nest). */
static bool
check_member(struct loader *L, const char *path, const char *s)
{
	if (strncmp(s, "group:", 6) == 0) {
		problem(L, path, "groups list user names; nested groups are not supported");
		return false;
	}
	if (strncmp(s, "user:", 5) == 0)
		s += 5;
	return check_user_exists(L, path, s);
}

/* A principal: "group:NAME", "user:NAME" or a bare user name, which must exist. */
static bool
check_principal(struct loader *L, const char *path, const char *s)
{
	char q[SHOW_LEN];
	const char *near;

	if (strncmp(s, "group:", 6) == 0) {
		if (!check_name(L, path, s + 6, "group"))
			return false;
		if (policy_group(L->p, s + 6) != NULL)
			return true;
		near = suggest(s + 6, L->p->groups, L->p->ngroups, sizeof(struct pol_group),
		    offsetof(struct pol_group, name));
		if (near != NULL)
			problem(L, path, "unknown group \"%s\" (did you mean \"%s\"?)",
			    show(q, sizeof(q), s + 6), near);
		else
			problem(L, path, "unknown group \"%s\"", show(q, sizeof(q), s + 6));
		return false;
	}
	if (strncmp(s, "user:", 5) == 0)
		return check_user_exists(L, path, s + 5);
	if (strchr(s, ':') != NULL) {
		problem(L, path, "\"%s\" is not a principal (write group:NAME, user:NAME or a "
		    "user name)", show(q, sizeof(q), s));
		return false;
	}
	return check_user_exists(L, path, s);
}

static bool
check_policy_version(struct loader *L, const char *path, const char *s)
{
	if (strcmp(s, "2012-10-17") == 0 || strcmp(s, "2008-10-17") == 0)
		return true;
	problem(L, path, "must be \"2012-10-17\"");
	return false;
}

/* ------------------------------------------------------------------ custom fields */

static void
set_keys(struct loader *L, const struct field *f, const char *path, json_t *v, void *dst)
{
	struct pol_user *u = dst;
	char ip[PATH_LEN];
	json_t *it;
	size_t i, j, n;

	(void)f;
	if (!json_is_array(v)) {
		wrong_type(L, path, "a list of \"ed25519:BASE64\" keys", v);
		return;
	}
	if ((n = json_array_size(v)) == 0 || n > 16) {
		problem(L, path, "must list 1 to 16 keys");
		return;
	}
	if ((u->keys = calloc(n, sizeof(*u->keys))) == NULL) {
		oom(L);
		return;
	}
	json_array_foreach(v, i, it) {
		path_idx(ip, sizeof(ip), path, i);
		if (!json_is_string(it) || !parse_key(json_string_value(it), u->keys[u->nkeys])) {
			problem(L, ip, "not an Ed25519 public key: expected \"ed25519:\" followed by "
			    "the base64 of 32 bytes (as `elevate init` prints it)");
			continue;
		}
		for (j = 0; j < u->nkeys && memcmp(u->keys[j], u->keys[u->nkeys], 32) != 0; j++)
			;
		if (j < u->nkeys) {
			problem(L, ip, "the same key is listed twice");
			continue;
		}
		u->nkeys++;
	}
}

static void
set_target_tags(struct loader *L, const struct field *f, const char *path, json_t *v,
    void *dst)
{
	struct pol_profile *pr = dst;
	char kp[PATH_LEN];
	const char *key;
	json_t *val;
	size_t before = diags_count(L->d);

	(void)f;
	if (!json_is_object(v)) {
		wrong_type(L, path, "an object of tag name to value", v);
		return;
	}
	if (json_object_size(v) > 50) {
		problem(L, path, "has %zu tags; at most 50 are allowed", json_object_size(v));
		return;
	}
	json_object_foreach(v, key, val) {
		path_key(kp, sizeof(kp), path, key);
		if (key[0] == '\0' || strlen(key) > 128 || has_control(key))
			problem(L, kp, "tag names are 1 to 128 characters without control characters");
		else if (!json_is_string(val))
			wrong_type(L, kp, "a string", val);
		else if (json_string_length(val) > 256 || has_control(json_string_value(val)) ||
		    strlen(json_string_value(val)) != json_string_length(val))
			problem(L, kp, "tag values are at most 256 characters without control "
			    "characters");
	}
	/* An empty object would scope nothing; keep it NULL so it never matches everything. */
	if (diags_count(L->d) != before || json_object_size(v) == 0)
		return;
	if ((pr->ssm_target_tags = json_deep_copy(v)) == NULL)
		oom(L);
}

static void
check_statement(struct loader *L, const struct field *f, const char *path, json_t *v,
    void *dst)
{
	char ip[PATH_LEN];
	json_t *it;
	size_t i;

	(void)f;
	(void)dst;
	if (json_is_object(v))
		return;
	if (!json_is_array(v) || json_array_size(v) == 0) {
		wrong_type(L, path, "a statement object or a non-empty list of them", v);
		return;
	}
	json_array_foreach(v, i, it) {
		path_idx(ip, sizeof(ip), path, i);
		if (!json_is_object(it))
			wrong_type(L, ip, "a statement object", it);
	}
}

/* Scratch destination for the session policy's own keys (only validated, not kept). */
struct sp_scratch {
	char *version;
	char *id;
};

static const struct field sp_fields[] = {
	{ .key = "Version", .kind = F_STR, .required = true, .min = 1, .max = 16,
	  .off = offsetof(struct sp_scratch, version), .check = check_policy_version },
	{ .key = "Id", .kind = F_STR, .min = 1, .max = 128,
	  .off = offsetof(struct sp_scratch, id) },
	{ .key = "Statement", .kind = F_CUSTOM, .required = true, .custom = check_statement },
};
static const struct spec sp_spec = SPEC(sp_fields);

static void
set_session_policy(struct loader *L, const struct field *f, const char *path, json_t *v,
    void *dst)
{
	struct pol_profile *pr = dst;
	struct sp_scratch sc = { NULL, NULL };
	size_t before = diags_count(L->d), len;
	char *compact;

	(void)f;
	if (json_is_null(v))
		return;
	if (!json_is_object(v)) {
		wrong_type(L, path, "null or an IAM policy object", v);
		return;
	}
	apply(L, &sp_spec, v, path, &sc);
	free(sc.version);
	free(sc.id);
	if (diags_count(L->d) != before)
		return;
	if ((compact = json_dumps(v, JSON_COMPACT)) == NULL) {
		oom(L);
		return;
	}
	len = strlen(compact);
	free(compact);
	if (len > SESSION_POLICY_MAX) {
		problem(L, path, "is %zu characters as compact JSON; STS accepts at most %d",
		    len, SESSION_POLICY_MAX);
		return;
	}
	if ((pr->session_policy = json_deep_copy(v)) == NULL)
		oom(L);
}

/* "from" of a rule: one principal or a list of them. */
static const struct field rule_froms = {
	.key = "from", .kind = F_STRLIST, .min = 1, .max = 16,
	.off = offsetof(struct pol_rule, froms), .off2 = offsetof(struct pol_rule, nfroms),
	.check = check_principal,
};

static void
set_rule_from(struct loader *L, const struct field *f, const char *path, json_t *v,
    void *dst)
{
	struct pol_rule *r = dst;

	(void)f;
	if (json_is_string(v)) {
		const char *s = json_string_value(v);

		if (!str_ok(L, &rule_froms, path, s, json_string_length(v), true))
			return;
		if ((r->froms = calloc(1, sizeof(*r->froms))) == NULL ||
		    (r->froms[0] = strdup(s)) == NULL) {
			oom(L);
			return;
		}
		r->nfroms = 1;
	} else if (json_is_array(v)) {
		set_strlist(L, &rule_froms, path, v, r);
	} else {
		wrong_type(L, path, "a principal or a list of principals", v);
	}
	if (r->nfroms > 0)
		r->from = r->froms[0];
}

static const struct field rule_fields[] = {
	{ .key = "from", .kind = F_CUSTOM, .required = true, .custom = set_rule_from },
	{ .key = "count", .kind = F_INT, .min = 1, .max = 100, .dflt = "1",
	  .off = offsetof(struct pol_rule, count) },
};
static const struct spec rule_spec = SPEC(rule_fields);

/* A plain "approvers" list: one rule over the union of its principals. */
static const struct field plain_approvers = {
	.key = "approvers", .kind = F_STRLIST, .min = 1, .max = 64,
	.off = offsetof(struct pol_rule, froms), .off2 = offsetof(struct pol_rule, nfroms),
	.check = check_principal,
};

static void
set_approvers(struct loader *L, const struct field *f, const char *path, json_t *v,
    void *dst)
{
	struct pol_profile *pr = dst;
	char ip[PATH_LEN];
	json_t *it;
	size_t i, n;
	bool plain;

	(void)f;
	if (!json_is_array(v) || (n = json_array_size(v)) == 0) {
		wrong_type(L, path, "a non-empty list of principals, or of rules "
		    "{\"from\": ..., \"count\": N}", v);
		return;
	}
	if (n > 64) {
		problem(L, path, "lists %zu items; at most 64 are allowed", n);
		return;
	}
	plain = json_is_string(json_array_get(v, 0));
	json_array_foreach(v, i, it) {
		path_idx(ip, sizeof(ip), path, i);
		if (plain ? !json_is_string(it) : !json_is_object(it)) {
			if (json_is_string(it) || json_is_object(it))
				problem(L, ip, "mixes principals and rule objects; use one form for "
				    "the whole list");
			else
				wrong_type(L, ip, "a principal or a rule {\"from\": ..., "
				    "\"count\": N}", it);
			return;
		}
	}
	if ((pr->rules = calloc(plain ? 1 : n, sizeof(*pr->rules))) == NULL) {
		oom(L);
		return;
	}
	if (plain) {
		pr->nrules = 1;
		set_strlist(L, &plain_approvers, path, v, &pr->rules[0]);
		if (pr->rules[0].nfroms > 0)
			pr->rules[0].from = pr->rules[0].froms[0];
		L->approvers_form = 1;
		return;
	}
	pr->nrules = n;
	json_array_foreach(v, i, it) {
		path_idx(ip, sizeof(ip), path, i);
		apply(L, &rule_spec, it, ip, &pr->rules[i]);
	}
	L->approvers_form = 2;
}

/* ------------------------------------------------------------------ the tables */

#define UO(m) offsetof(struct pol_user, m)
#define PO(m) offsetof(struct pol_profile, m)

static const struct field user_fields[] = {
	{ .key = "email", .kind = F_STR, .required = true, .min = 3, .max = 254,
	  .off = UO(email), .check = check_email },
	{ .key = "keys", .kind = F_CUSTOM, .required = true, .custom = set_keys },
};
static const struct spec user_spec = SPEC(user_fields);

static const struct field group_members = {
	.key = "members", .kind = F_STRLIST, .min = 0, .max = 5000,
	.off = offsetof(struct pol_group, members), .off2 = offsetof(struct pol_group, nmembers),
	.check = check_member,
};

static const struct field ssm_fields[] = {
	{ .key = "targets", .kind = F_STRLIST, .min = 0, .max = 256,
	  .off = PO(ssm_targets), .off2 = PO(nssm_targets), .check = check_instance_id },
	{ .key = "target_tags", .kind = F_CUSTOM, .custom = set_target_tags },
	{ .key = "documents", .kind = F_STRLIST, .min = 0, .max = 64,
	  .off = PO(ssm_documents), .off2 = PO(nssm_documents), .check = check_document },
};
static const struct spec ssm_spec = SPEC(ssm_fields);

/* Keep in step with policies/README.md (it documents this table). */
static const struct field profile_fields[] = {
	{ .key = "description", .kind = F_STR, .min = 0, .max = 1024, .off = PO(description) },
	{ .key = "role_arn", .kind = F_STR, .required = true, .min = 1, .max = 2048,
	  .off = PO(role_arn), .check = check_role_arn },
	{ .key = "region", .kind = F_STR, .min = 1, .max = 32, .off = PO(region),
	  .check = check_region },
	{ .key = "requesters", .kind = F_STRLIST, .required = true, .min = 1, .max = 256,
	  .off = PO(requesters), .off2 = PO(nrequesters), .check = check_principal },
	{ .key = "approvers", .kind = F_CUSTOM, .required = true, .custom = set_approvers },
	{ .key = "approvals_required", .kind = F_INT, .min = 1, .max = 100, .dflt = "1",
	  .off = PO(approvals_required) },
	{ .key = "allow_self_approval", .kind = F_BOOL, .dflt = "false",
	  .off = PO(allow_self_approval) },
	{ .key = "default_duration", .kind = F_DURATION, .min = 60, .max = WINDOW_MAX,
	  .off = PO(default_duration) },     /* default: min(15m, max_duration) */
	{ .key = "max_duration", .kind = F_DURATION, .min = 60, .max = WINDOW_MAX,
	  .dflt = "1h", .off = PO(max_duration) },
	{ .key = "pending_ttl", .kind = F_DURATION, .min = 1, .max = 7 * 86400,
	  .dflt = "30m", .off = PO(pending_ttl) },
	{ .key = "reason_required", .kind = F_BOOL, .dflt = "true", .off = PO(reason_required) },
	{ .key = "ticket_pattern", .kind = F_STR, .min = 1, .max = 256,
	  .off = PO(ticket_pattern), .check = check_ticket_pattern },
	{ .key = "ticket_required", .kind = F_BOOL,
	  .off = PO(ticket_required) },      /* default: true iff ticket_pattern is set */
	{ .key = "ssm", .kind = F_OBJECT, .sub = &ssm_spec },
	{ .key = "session_policy", .kind = F_CUSTOM, .custom = set_session_policy },
	{ .key = "max_credential_duration", .kind = F_DURATION, .min = 900, .max = WINDOW_MAX,
	  .dflt = "1h", .off = PO(max_credential_duration) },
	{ .key = "auto_approve", .kind = F_REJECT,
	  .why = "auto-approval is not supported yet; remove auto_approve (every request "
	  "needs its approvals)" },
};
static const struct spec profile_spec = SPEC(profile_fields);

static void collect(struct loader *L, const struct field *f, const char *path, json_t *v,
    void *dst);

static const struct field top_fields[] = {
	{ .key = "users", .kind = F_CUSTOM, .custom = collect, .arg = K_USER },
	{ .key = "groups", .kind = F_CUSTOM, .custom = collect, .arg = K_GROUP },
	{ .key = "profiles", .kind = F_CUSTOM, .custom = collect, .arg = K_PROFILE },
};
static const struct spec top_spec = SPEC(top_fields);

/* ------------------------------------------------------------------ loading */

/* Top level: remember each definition with its file; validated once all files are read. */
static void
collect(struct loader *L, const struct field *f, const char *path, json_t *v, void *dst)
{
	struct entries *es = &L->ent[f->arg];
	char np[PATH_LEN];
	const char *name;
	json_t *val;

	(void)dst;
	if (!json_is_object(v)) {
		wrong_type(L, path, "an object keyed by name", v);
		return;
	}
	json_object_foreach(v, name, val) {
		path_key(np, sizeof(np), path, name);
		if (!check_name(L, np, name, kind_names[f->arg]))
			continue;
		if (es->n == es->cap) {
			size_t ncap = es->cap ? es->cap * 2 : 16;
			struct entry *nv = reallocarray(es->v, ncap, sizeof(*nv));
			if (nv == NULL) {
				oom(L);
				return;
			}
			es->v = nv;
			es->cap = ncap;
		}
		es->v[es->n] = (struct entry){ name, L->file, val, es->n, false };
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
		oom(L);
		return;
	}
	L->files = nf;
	L->files[L->nfiles++] = f;
	L->file = f;
	if (len > POLICY_MAX_FILE) {
		problem(L, NULL, "is %zu bytes; a policy file may have at most %d", len,
		    POLICY_MAX_FILE);
		return;
	}
	if ((doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je)) == NULL) {
		diags_add(L->d, f, NULL, je.line, je.column, "%s", je.text);
		return;
	}
	if ((nd = reallocarray(L->docs, L->ndocs + 1, sizeof(*nd))) == NULL) {
		json_decref(doc);
		oom(L);
		return;
	}
	L->docs = nd;
	L->docs[L->ndocs++] = doc;
	apply(L, &top_spec, doc, "$", NULL);
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
	char np[PATH_LEN];
	size_t i;

	if (es->n < 2)
		return;
	qsort(es->v, es->n, sizeof(*es->v), cmp_entry);
	for (i = 1; i < es->n; i++) {
		if (strcmp(es->v[i].name, es->v[i - 1].name) != 0)
			continue;
		es->v[i].redefined = true;
		L->file = es->v[i].file;
		path_key(np, sizeof(np), kind_paths[k], es->v[i].name);
		problem(L, np, "%s \"%s\" is already defined in %s", kind_names[k],
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
	char np[PATH_LEN], ip[PATH_LEN];
	size_t i, j, n = 0;

	for (i = 0; i < p->nusers; i++)
		n += p->users[i].nkeys;
	if ((kr = calloc(n > p->nusers ? n : p->nusers ? p->nusers : 1, sizeof(*kr))) == NULL) {
		oom(L);
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
		L->file = ufile[kr[i].user];
		path_key(np, sizeof(np), "$.users", p->users[kr[i].user].name);
		path_key(ip, sizeof(ip), np, "keys");
		path_idx(np, sizeof(np), ip, kr[i].idx);
		problem(L, np, "this key is also a key of user \"%s\"; every person needs "
		    "their own key", p->users[kr[i - 1].user].name);
	}
	for (i = 0, n = 0; i < p->nusers; i++)
		if (p->users[i].email != NULL)
			kr[n++] = (struct keyref){ NULL, p->users[i].email, i, 0 };
	if (n > 1)
		qsort(kr, n, sizeof(*kr), cmp_keyref_text);
	for (i = 1; i < n; i++) {
		if (strcasecmp(kr[i].text, kr[i - 1].text) != 0)
			continue;
		L->file = ufile[kr[i].user];
		path_key(np, sizeof(np), "$.users", p->users[kr[i].user].name);
		path_key(ip, sizeof(ip), np, "email");
		problem(L, ip, "user \"%s\" has the same email address; approval links would "
		    "reach one mailbox for two people", p->users[kr[i - 1].user].name);
	}
	free(kr);
}

static void
build_users(struct loader *L)
{
	struct entries *es = &L->ent[K_USER];
	struct policy *p = L->p;
	const char **ufile;
	char np[PATH_LEN];
	size_t i;

	if (es->n == 0)
		return;
	if ((p->users = calloc(es->n, sizeof(*p->users))) == NULL ||
	    (ufile = calloc(es->n, sizeof(*ufile))) == NULL) {
		oom(L);
		return;
	}
	for (i = 0; i < es->n; i++) {
		struct pol_user *u;

		if (es->v[i].redefined)
			continue;
		u = &p->users[p->nusers];
		if ((u->name = strdup(es->v[i].name)) == NULL) {
			oom(L);
			break;
		}
		ufile[p->nusers++] = es->v[i].file;
		L->file = es->v[i].file;
		path_key(np, sizeof(np), "$.users", u->name);
		apply(L, &user_spec, es->v[i].val, np, u);
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
	char np[PATH_LEN];
	size_t i;

	if (es->n == 0)
		return;
	if ((p->groups = calloc(es->n, sizeof(*p->groups))) == NULL) {
		oom(L);
		return;
	}
	for (i = 0; i < es->n; i++) {
		struct pol_group *g;

		if (es->v[i].redefined)
			continue;
		g = &p->groups[p->ngroups];
		if ((g->name = strdup(es->v[i].name)) == NULL) {
			oom(L);
			break;
		}
		p->ngroups++;
		L->file = es->v[i].file;
		path_key(np, sizeof(np), "$.groups", g->name);
		set_field(L, &group_members, np, es->v[i].val, g);
		/* "user:bob" is accepted as a member; keep the bare name for lookups. */
		for (size_t j = 0; j < g->nmembers; j++)
			if (strncmp(g->members[j], "user:", 5) == 0)
				memmove(g->members[j], g->members[j] + 5,
				    strlen(g->members[j] + 5) + 1);
		if (g->nmembers > 1)
			qsort(g->members, g->nmembers, sizeof(*g->members), cmp_str);
		for (size_t j = 1; j < g->nmembers; j++)
			if (strcmp(g->members[j], g->members[j - 1]) == 0)
				problem(L, np, "\"%s\" is listed twice", g->members[j]);
	}
	qsort(p->groups, p->ngroups, sizeof(*p->groups), cmp_group);
}

/* Does user belong to any principal of rule r? */
static bool
rule_has(const struct policy *p, const struct pol_rule *r, const char *user)
{
	size_t i;

	for (i = 0; i < r->nfroms; i++)
		if (policy_principal_has(p, r->froms[i], user))
			return true;
	return false;
}

static bool
profile_can_approve(const struct policy *p, const struct pol_profile *pr, const char *user)
{
	size_t i;

	for (i = 0; i < pr->nrules; i++)
		if (rule_has(p, &pr->rules[i], user))
			return true;
	return false;
}

/*
 * Quorum as bipartite matching: each voter is assigned to at most one rule, rule r takes
 * at most rules[r].count voters, and augmenting paths (Kuhn) maximise the assignment, so
 * one person in two groups cannot satisfy two rules, and no order of votes starves a rule
 * that could be met.
 */
struct matching {
	const struct pol_profile *pr;
	const unsigned char *adj;   /* nv x nr: voter v may serve rule r */
	size_t nv, nr;
	int *load;                  /* voters assigned per rule */
	size_t *owner;              /* rule of each voter, SIZE_MAX when none */
	unsigned char *mark;        /* rules visited in this augmentation */
};

static bool
augment(struct matching *m, size_t v)
{
	size_t r, u;

	for (r = 0; r < m->nr; r++) {
		if (!m->adj[v * m->nr + r] || m->mark[r])
			continue;
		m->mark[r] = 1;
		if (m->load[r] < m->pr->rules[r].count) {
			m->owner[v] = r;
			m->load[r]++;
			return true;
		}
		for (u = 0; u < m->nv; u++) {
			if (m->owner[u] == r && augment(m, u)) {
				m->owner[v] = r;    /* u moved elsewhere, v takes its place */
				return true;
			}
		}
	}
	return false;
}

/* Fills load[] (nrules) with the best assignment of voters; total is its sum. */
static enum el_err
match_votes(const struct policy *p, const struct pol_profile *pr, const char *const *voters,
    size_t nv, int *load, long long *total)
{
	struct matching m;
	unsigned char *adj = NULL, *mark = NULL;
	size_t *owner = NULL, v, r;
	long long need = 0;
	enum el_err e = EL_ENOMEM;

	*total = 0;
	memset(load, 0, pr->nrules * sizeof(*load));
	if (nv == 0 || pr->nrules == 0)
		return EL_OK;
	if ((adj = calloc(nv, pr->nrules)) == NULL ||
	    (mark = calloc(pr->nrules, 1)) == NULL ||
	    (owner = calloc(nv, sizeof(*owner))) == NULL)
		goto out;
	for (r = 0; r < pr->nrules; r++)
		need += pr->rules[r].count;
	for (v = 0; v < nv; v++) {
		owner[v] = SIZE_MAX;
		for (r = 0; r < pr->nrules; r++)
			adj[v * pr->nrules + r] = rule_has(p, &pr->rules[r], voters[v]);
	}
	m = (struct matching){ pr, adj, nv, pr->nrules, load, owner, mark };
	for (v = 0; v < nv && *total < need; v++) {
		memset(mark, 0, pr->nrules);
		if (augment(&m, v))
			(*total)++;
	}
	e = EL_OK;
out:
	free(adj);
	free(mark);
	free(owner);
	return e;
}

static size_t
rule_population(const struct policy *p, const struct pol_rule *r)
{
	size_t i, n = 0;

	for (i = 0; i < p->nusers; i++)
		n += rule_has(p, r, p->users[i].name);
	return n;
}

/* Can the approver rules ever be met by the users the policy declares? */
static void
check_quorum_feasible(struct loader *L, struct pol_profile *pr, const char *path)
{
	const struct policy *p = L->p;
	const char **all = NULL;
	char rp[PATH_LEN], tmp[PATH_LEN], who[256];
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
		join(who, sizeof(who), r->froms, r->nfroms, ", ");
		if (L->approvers_form == 1) {
			path_key(rp, sizeof(rp), path, "approvals_required");
			problem(L, rp, "%d approval%s required but only %zu %s can approve (%s)",
			    r->count, r->count == 1 ? " is" : "s are", pop,
			    pop == 1 ? "person" : "people", who);
		} else {
			path_key(rp, sizeof(rp), path, "approvers");
			path_idx(tmp, sizeof(tmp), rp, i);
			path_key(rp, sizeof(rp), tmp, "count");
			problem(L, rp, "%d approval%s required from %s but only %zu %s in it",
			    r->count, r->count == 1 ? " is" : "s are", who, pop,
			    pop == 1 ? "person is" : "people are");
		}
	}
	if (!each_ok || pr->nrules < 2)
		return;
	if ((all = calloc(p->nusers ? p->nusers : 1, sizeof(*all))) == NULL ||
	    (load = calloc(pr->nrules, sizeof(*load))) == NULL) {
		oom(L);
		goto out;
	}
	for (i = 0; i < p->nusers; i++)
		all[i] = p->users[i].name;
	if (match_votes(p, pr, all, p->nusers, load, &total) != EL_OK) {
		oom(L);
		goto out;
	}
	if (total < need) {
		path_key(rp, sizeof(rp), path, "approvers");
		problem(L, rp, "the rules need %lld different approvers but only %lld can be "
		    "found (one person's approval counts toward one rule only)", need, total);
	}
out:
	free(all);
	free(load);
}

/* The cross-field rules of one profile, after its table has been applied. */
static void
finish_profile(struct loader *L, struct pol_profile *pr, const char *path,
    const struct applied *a, size_t before)
{
	const struct spec *s = &profile_spec;
	char fp[PATH_LEN], b1[32], b2[32];
	const char *t;
	long long sum = 0;
	size_t i, j, k;

	if (pr->role_arn != NULL) {
		t = strstr(pr->role_arn, ":iam::") + 6;
		if ((pr->account = strndup(t, 12)) == NULL ||
		    (pr->role_name = strdup(strrchr(pr->role_arn, '/') + 1)) == NULL)
			oom(L);
	}

	if (!applied_seen(s, a, "default_duration"))
		pr->default_duration = pr->max_duration < DEFAULT_DURATION ?
		    pr->max_duration : DEFAULT_DURATION;
	else if (applied_ok(s, a, "default_duration") && applied_ok(s, a, "max_duration") &&
	    pr->default_duration > pr->max_duration) {
		el_format_duration(pr->default_duration, b1, sizeof(b1));
		el_format_duration(pr->max_duration, b2, sizeof(b2));
		path_key(fp, sizeof(fp), path, "default_duration");
		problem(L, fp, "%s is longer than max_duration %s", b1, b2);
	}

	/* Validated by check_ticket_pattern; keep "ticket_re compiled iff pattern set". */
	if (pr->ticket_pattern != NULL &&
	    regcomp(&pr->ticket_re, pr->ticket_pattern, REG_EXTENDED | REG_NOSUB) != 0) {
		free(pr->ticket_pattern);
		pr->ticket_pattern = NULL;
	}
	if (!applied_seen(s, a, "ticket_required"))
		pr->ticket_required = applied_seen(s, a, "ticket_pattern");

	if (L->approvers_form == 1) {
		pr->rules[0].count = pr->approvals_required;
	} else if (L->approvers_form == 2) {
		for (i = 0; i < pr->nrules; i++)
			sum += pr->rules[i].count;
		if (applied_seen(s, a, "approvals_required") &&
		    applied_ok(s, a, "approvals_required") && pr->approvals_required != sum) {
			path_key(fp, sizeof(fp), path, "approvals_required");
			problem(L, fp, "is %d but the approver rules add up to %lld; leave it out "
			    "or make it %lld", pr->approvals_required, sum, sum);
		}
		pr->approvals_required = (int)sum;
	}

	/* approvers: the union of every rule's principals, each once. */
	for (i = 0, k = 0; i < pr->nrules; i++)
		k += pr->rules[i].nfroms;
	if (k > 0 && (pr->approvers = calloc(k, sizeof(*pr->approvers))) == NULL) {
		oom(L);
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
				oom(L);
				return;
			}
			pr->napprovers++;
		}
	}

	/* Only on an otherwise clean profile: an unknown group would make it cascade. */
	if (diags_count(L->d) == before && L->approvers_form != 0)
		check_quorum_feasible(L, pr, path);
}

static void
build_profiles(struct loader *L)
{
	struct entries *es = &L->ent[K_PROFILE];
	struct policy *p = L->p;
	struct applied a;
	char np[PATH_LEN];
	size_t i, before;

	if (es->n == 0)
		return;
	if ((p->profiles = calloc(es->n, sizeof(*p->profiles))) == NULL) {
		oom(L);
		return;
	}
	for (i = 0; i < es->n; i++) {
		struct pol_profile *pr;

		if (es->v[i].redefined)
			continue;
		pr = &p->profiles[p->nprofiles];
		if ((pr->name = strdup(es->v[i].name)) == NULL) {
			oom(L);
			break;
		}
		p->nprofiles++;
		L->file = es->v[i].file;
		L->approvers_form = 0;
		before = diags_count(L->d);
		path_key(np, sizeof(np), "$.profiles", pr->name);
		a = apply(L, &profile_spec, es->v[i].val, np, pr);
		finish_profile(L, pr, np, &a, before);
	}
	qsort(p->profiles, p->nprofiles, sizeof(*p->profiles), cmp_profile);
}

static void
policy_free(struct policy *p)
{
	size_t i, j;

	if (p == NULL)
		return;
	for (i = 0; i < p->nusers; i++) {
		free(p->users[i].name);
		free(p->users[i].email);
		free(p->users[i].keys);
	}
	free(p->users);
	for (i = 0; i < p->ngroups; i++) {
		free(p->groups[i].name);
		el_strv_free(p->groups[i].members, p->groups[i].nmembers);
	}
	free(p->groups);
	for (i = 0; i < p->nprofiles; i++) {
		struct pol_profile *pr = &p->profiles[i];

		free(pr->name);
		free(pr->description);
		free(pr->role_arn);
		free(pr->account);
		free(pr->role_name);
		free(pr->region);
		el_strv_free(pr->requesters, pr->nrequesters);
		el_strv_free(pr->approvers, pr->napprovers);
		for (j = 0; j < pr->nrules; j++)
			el_strv_free(pr->rules[j].froms, pr->rules[j].nfroms);
		free(pr->rules);
		if (pr->ticket_pattern != NULL)
			regfree(&pr->ticket_re);
		free(pr->ticket_pattern);
		el_strv_free(pr->ssm_targets, pr->nssm_targets);
		json_decref(pr->ssm_target_tags);
		el_strv_free(pr->ssm_documents, pr->nssm_documents);
		json_decref(pr->session_policy);
	}
	free(p->profiles);
	free(p);
}

static enum el_err
loader_init(struct loader *L, struct diags *d, struct diags *own)
{
	memset(L, 0, sizeof(*L));
	if (d == NULL) {
		diags_init(own);
		d = own;
	}
	L->d = d;
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

	if (L->oom)
		r = EL_ENOMEM;
	else if (diags_count(L->d) != L->d0)
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
	if (L->d == own)
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
		diags_add(L.d, dir, NULL, 0, 0, "cannot read the policy directory: %s",
		    strerror(errno));
		goto done;
	}
	if ((names = calloc(POLICY_MAX_FILES, sizeof(*names))) == NULL) {
		oom(&L);
		goto done;
	}
	while ((de = readdir(dp)) != NULL) {
		if (!is_policy_file(dir, de->d_name))
			continue;
		if (n == POLICY_MAX_FILES) {
			diags_add(L.d, dir, NULL, 0, 0, "more than %d policy files",
			    POLICY_MAX_FILES);
			goto done;
		}
		if ((names[n] = strdup(de->d_name)) == NULL) {
			oom(&L);
			goto done;
		}
		n++;
	}
	if (n == 0) {
		diags_add(L.d, dir, NULL, 0, 0, "no *.json policy files");
		goto done;
	}
	/* Byte order, not the locale's: the same files load the same way everywhere. */
	qsort(names, n, sizeof(*names), cmp_str);
	for (i = 0; i < n; i++) {
		snprintf(full, sizeof(full), "%s/%s", dir, names[i]);
		r = el_read_file(full, POLICY_MAX_FILE, &buf, &len, &w);
		if (r == EL_ETOOBIG) {
			diags_add(L.d, full, NULL, 0, 0, "larger than %d bytes, the ceiling for "
			    "one policy file", POLICY_MAX_FILE);
			continue;
		}
		if (r != EL_OK) {
			diags_add(L.d, full, NULL, 0, 0, "%s", w.msg);
			continue;
		}
		L.total += len;
		if (L.total > POLICY_MAX_TOTAL) {
			diags_add(L.d, full, NULL, 0, 0, "policy files together exceed %d bytes",
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

void
policy_retain(struct policy *p)
{
	if (p != NULL)
		__atomic_add_fetch(&p->refs, 1, __ATOMIC_RELAXED);
}

void
policy_release(struct policy *p)
{
	/* acq_rel: the last holder must see every other holder's reads finished. */
	if (p != NULL && __atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) == 0)
		policy_free(p);
}

/* ------------------------------------------------------------------ lookups */

static int
cmp_name_user(const void *key, const void *elem)
{
	return strcmp(key, ((const struct pol_user *)elem)->name);
}

static int
cmp_name_group(const void *key, const void *elem)
{
	return strcmp(key, ((const struct pol_group *)elem)->name);
}

static int
cmp_name_profile(const void *key, const void *elem)
{
	return strcmp(key, ((const struct pol_profile *)elem)->name);
}

static int
cmp_name_member(const void *key, const void *elem)
{
	return strcmp(key, *(char *const *)elem);
}

const struct pol_user *
policy_user(const struct policy *p, const char *name)
{
	if (p == NULL || name == NULL || p->nusers == 0)
		return NULL;
	return bsearch(name, p->users, p->nusers, sizeof(*p->users), cmp_name_user);
}

const struct pol_profile *
policy_profile(const struct policy *p, const char *name)
{
	if (p == NULL || name == NULL || p->nprofiles == 0)
		return NULL;
	return bsearch(name, p->profiles, p->nprofiles, sizeof(*p->profiles), cmp_name_profile);
}

const struct pol_group *
policy_group(const struct policy *p, const char *name)
{
	if (p == NULL || name == NULL || p->ngroups == 0)
		return NULL;
	if (strncmp(name, "group:", 6) == 0)
		name += 6;
	return bsearch(name, p->groups, p->ngroups, sizeof(*p->groups), cmp_name_group);
}

bool
policy_in_group(const struct policy *p, const char *group, const char *user)
{
	const struct pol_group *g = policy_group(p, group);

	if (g == NULL || user == NULL || g->nmembers == 0 || policy_user(p, user) == NULL)
		return false;
	return bsearch(user, g->members, g->nmembers, sizeof(*g->members),
	    cmp_name_member) != NULL;
}

bool
policy_principal_has(const struct policy *p, const char *principal, const char *user)
{
	if (p == NULL || principal == NULL || user == NULL)
		return false;
	if (strncmp(principal, "group:", 6) == 0)
		return policy_in_group(p, principal + 6, user);
	if (strncmp(principal, "user:", 5) == 0)
		principal += 5;
	return strcmp(principal, user) == 0 && policy_user(p, user) != NULL;
}

bool
policy_user_has_key(const struct pol_user *u, const unsigned char pk[32])
{
	size_t i;

	if (u == NULL || pk == NULL)
		return false;
	for (i = 0; i < u->nkeys; i++)
		if (memcmp(u->keys[i], pk, 32) == 0)
			return true;
	return false;
}

const struct pol_user *
policy_user_by_key(const struct policy *p, const unsigned char pk[32])
{
	size_t i;

	if (p == NULL || pk == NULL)
		return NULL;
	for (i = 0; i < p->nusers; i++)
		if (policy_user_has_key(&p->users[i], pk))
			return &p->users[i];
	return NULL;
}

/* ------------------------------------------------------------------ decisions */

static bool
in_requesters(const struct policy *p, const struct pol_profile *pr, const char *user)
{
	size_t i;

	for (i = 0; i < pr->nrequesters; i++)
		if (policy_principal_has(p, pr->requesters[i], user))
			return true;
	return false;
}

/* Length in characters (UTF-8 code points) of s without leading/trailing white space. */
static size_t
trimmed_chars(const char *s, size_t *total)
{
	const char *b = s, *e = s + strlen(s), *c;
	size_t n = 0, all = 0;

	for (c = s; *c != '\0'; c++)
		all += ((unsigned char)*c & 0xc0) != 0x80;
	*total = all;
	while (*b == ' ' || *b == '\t' || *b == '\n' || *b == '\r')
		b++;
	while (e > b && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		e--;
	for (c = b; c < e; c++)
		n += ((unsigned char)*c & 0xc0) != 0x80;
	return n;
}

enum el_err
policy_check_request(const struct policy *p, const char *user, const char *profile,
    int64_t *duration, const char *reason, const char *ticket, struct el_why *w)
{
	const struct pol_profile *pr;
	char q[SHOW_LEN], who[256], b1[32], b2[32], pat[SHOW_LEN] = "";
	const char *c;
	size_t total;

	if (p == NULL || user == NULL || profile == NULL || duration == NULL)
		return el_fail(w, EL_EINVAL, "missing user, profile or duration");
	if ((pr = policy_profile(p, profile)) == NULL)
		return el_fail(w, EL_ENOENT, "no profile named \"%s\"",
		    show(q, sizeof(q), profile));
	if (!in_requesters(p, pr, user)) {
		join(who, sizeof(who), pr->requesters, pr->nrequesters, ", ");
		return el_fail(w, EL_EPERM, "profile %s: %s is not in its requesters (%s)",
		    pr->name, show(q, sizeof(q), user), who);
	}
	if (*duration < 0)
		return el_fail(w, EL_EINVAL, "profile %s: the duration must be positive",
		    pr->name);
	if (*duration == 0)
		*duration = pr->default_duration;
	if (*duration > pr->max_duration) {
		el_format_duration(*duration, b1, sizeof(b1));
		el_format_duration(pr->max_duration, b2, sizeof(b2));
		return el_fail(w, EL_EINVAL, "profile %s: %s is longer than its max_duration %s",
		    pr->name, b1, b2);
	}
	if (reason == NULL)
		reason = "";
	if (trimmed_chars(reason, &total) == 0 && pr->reason_required)
		return el_fail(w, EL_EINVAL, "profile %s: a reason is required; say why you "
		    "need access", pr->name);
	if (total > REASON_MAX)
		return el_fail(w, EL_EINVAL, "profile %s: the reason is %zu characters; at most "
		    "%d are allowed", pr->name, total, REASON_MAX);
	/* Reasons go into emails and pages: no control characters but line breaks and tabs. */
	for (c = reason; *c != '\0'; c++)
		if (((unsigned char)*c < 0x20 && *c != '\n' && *c != '\t') || *c == 0x7f)
			return el_fail(w, EL_EINVAL, "profile %s: the reason contains a control "
			    "character", pr->name);
	if (ticket != NULL && ticket[0] == '\0')
		ticket = NULL;
	if (pr->ticket_pattern != NULL)
		show(pat, sizeof(pat), pr->ticket_pattern);
	if (ticket == NULL) {
		if (!pr->ticket_required)
			return EL_OK;
		if (pr->ticket_pattern != NULL)
			return el_fail(w, EL_EINVAL, "profile %s: a ticket matching %s is required",
			    pr->name, pat);
		return el_fail(w, EL_EINVAL, "profile %s: a ticket is required", pr->name);
	}
	if (strlen(ticket) > TICKET_MAX || has_control(ticket))
		return el_fail(w, EL_EINVAL, "profile %s: a ticket is at most %d characters "
		    "without control characters", pr->name, TICKET_MAX);
	if (pr->ticket_pattern != NULL && regexec(&pr->ticket_re, ticket, 0, NULL, 0) != 0)
		return el_fail(w, EL_EINVAL, "profile %s: ticket \"%s\" does not match %s",
		    pr->name, show(q, sizeof(q), ticket), pat);
	return EL_OK;
}

enum el_err
policy_check_approver(const struct policy *p, const char *profile, const char *requester,
    const char *approver, struct el_why *w)
{
	const struct pol_profile *pr;
	char q[SHOW_LEN], who[256];

	if (p == NULL || profile == NULL || approver == NULL)
		return el_fail(w, EL_EINVAL, "missing profile or approver");
	if ((pr = policy_profile(p, profile)) == NULL)
		return el_fail(w, EL_ENOENT, "no profile named \"%s\"",
		    show(q, sizeof(q), profile));
	if (!profile_can_approve(p, pr, approver)) {
		join(who, sizeof(who), pr->approvers, pr->napprovers, ", ");
		return el_fail(w, EL_EPERM, "profile %s: %s is not among its approvers (%s)",
		    pr->name, show(q, sizeof(q), approver), who);
	}
	if (requester != NULL && strcmp(requester, approver) == 0 && !pr->allow_self_approval)
		return el_fail(w, EL_EPERM, "profile %s: %s cannot approve a request of their "
		    "own (allow_self_approval is false)", pr->name, show(q, sizeof(q), approver));
	return EL_OK;
}

bool
policy_quorum_met(const struct policy *p, const char *profile, const char *requester,
    const char *const *approvers, size_t napprovers, struct el_why *w)
{
	const struct pol_profile *pr;
	const char **voters = NULL;
	char who[256], q[SHOW_LEN];
	struct dbuf b;
	long long total;
	int *load = NULL;
	size_t i, nv = 0;
	bool met = false;

	dbuf_init(&b, EL_WHYLEN - 1);
	if (p == NULL || profile == NULL || (pr = policy_profile(p, profile)) == NULL) {
		el_fail(w, EL_ENOENT, "no profile named \"%s\"",
		    profile ? show(q, sizeof(q), profile) : "");
		return false;
	}
	if ((voters = calloc(napprovers ? napprovers : 1, sizeof(*voters))) == NULL ||
	    (load = calloc(pr->nrules ? pr->nrules : 1, sizeof(*load))) == NULL)
		goto nomem;
	/* Only votes that still qualify under this policy count (it may have changed). */
	for (i = 0; i < napprovers; i++) {
		const char *a = approvers[i];

		if (a == NULL || policy_user(p, a) == NULL)
			continue;
		if (!pr->allow_self_approval && requester != NULL && strcmp(a, requester) == 0)
			continue;
		if (!profile_can_approve(p, pr, a))
			continue;
		voters[nv++] = a;
	}
	if (nv > 1) {
		size_t k = 1;

		qsort(voters, nv, sizeof(*voters), cmp_str);
		for (i = 1; i < nv; i++)
			if (strcmp(voters[i], voters[k - 1]) != 0)
				voters[k++] = voters[i];
		nv = k;
	}
	if (match_votes(p, pr, voters, nv, load, &total) != EL_OK)
		goto nomem;
	met = pr->nrules > 0;
	for (i = 0; i < pr->nrules; i++) {
		int miss = pr->rules[i].count - load[i];

		if (miss <= 0)
			continue;
		met = false;
		join(who, sizeof(who), pr->rules[i].froms, pr->rules[i].nfroms, " or ");
		/* Truncation only shortens the hint; the verdict is already decided. */
		(void)dbuf_printf(&b, "%s%d more approval%s from %s", b.len ? " and " : "needs ",
		    miss, plural(miss), who);
	}
	if (!met && w != NULL)
		el_fail(w, EL_EPERM, "%s", b.len ? b.p : "no approver rules");
	goto out;
nomem:
	el_fail(w, EL_ENOMEM, "out of memory");
	met = false;
out:
	dbuf_free(&b);
	free(voters);
	free(load);
	return met;
}

enum el_err
policy_approvers_for(const struct policy *p, const char *profile, const char *requester,
    const char ***out, size_t *n)
{
	const struct pol_profile *pr;
	const char **v;
	size_t i;

	*out = NULL;
	*n = 0;
	if ((pr = policy_profile(p, profile)) == NULL)
		return EL_ENOENT;
	if (p->nusers == 0)
		return EL_OK;
	if ((v = calloc(p->nusers, sizeof(*v))) == NULL)
		return EL_ENOMEM;
	/* p->users is sorted by name, so the result is sorted and unique. */
	for (i = 0; i < p->nusers; i++) {
		const char *u = p->users[i].name;

		if (!pr->allow_self_approval && requester != NULL && strcmp(u, requester) == 0)
			continue;
		if (profile_can_approve(p, pr, u))
			v[(*n)++] = u;
	}
	if (*n == 0) {
		free(v);
		return EL_OK;
	}
	*out = v;
	return EL_OK;
}

