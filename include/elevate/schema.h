/*
 * schema.h — the one way to validate a JSON object: a schema is a table of fields (key,
 * kind, required, bounds, default, where the value goes) and schema_apply() walks an
 * object against it. Policies, elevated.json and request bodies all use it, so "a string
 * of at most N bytes", "an integer in [a, b]", "a duration", "one of ..." and "unknown
 * key (did you mean ...)" are said, checked and worded the same everywhere.
 */
#ifndef ELEVATE_SCHEMA_H
#define ELEVATE_SCHEMA_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "elevate/diag.h"
#include "elevate/el.h"

#define SCHEMA_PATH_LEN 512     /* JSON paths in messages (cut with "..." beyond) */
#define SCHEMA_SHOW_LEN 80      /* user-supplied text quoted in messages */
#define SCHEMA_ITEM_MAX 2048    /* bytes of one string in a list, unless item_max says */

enum schema_kind {
	SF_STR,         /* char *; min/max: length in bytes; no NUL, no control character */
	SF_TEXT,        /* char *, free text a person typed: as SF_STR, control characters kept */
	SF_BOOL,        /* bool */
	SF_INT,         /* int64_t; min/max: value */
	SF_DURATION,    /* int64_t seconds, written "15m"; min/max: seconds (0 only if min 0) */
	SF_STRLIST,     /* char ** at off, size_t count at off2; min/max: items; no duplicate */
	SF_JSON,        /* json_t * (a reference), any object of at most max members */
	SF_OBJECT,      /* nested keys (sub) stored into the same destination */
	SF_CUSTOM,      /* custom() validates and stores */
	SF_REJECT,      /* a known key that is refused: always an error saying why */
};

struct schema_ctx;
struct schema_field;

/* Checks one string (a field or a list item) after the common checks; reports and
 * returns false when it is wrong. */
typedef bool (*schema_str_fn)(struct schema_ctx *c, const char *path, const char *s);
typedef void (*schema_custom_fn)(struct schema_ctx *c, const struct schema_field *f,
    const char *path, json_t *v, void *dst);

struct schema {
	const struct schema_field *f;
	size_t n;                       /* at most 64 */
};

struct schema_field {
	const char *key;
	enum schema_kind kind;
	bool required;
	bool null_ok;                   /* null is taken as the key being absent */
	bool seconds_ok;                /* SF_DURATION: a JSON integer of seconds too */
	long long min, max;
	size_t item_max;                /* SF_STRLIST: bytes per item; 0: SCHEMA_ITEM_MAX */
	const char *dflt;               /* the default as the documentation states it */
	size_t off, off2;
	const char *const *one_of;      /* SF_STR: NULL-terminated list of the values allowed */
	schema_str_fn check;            /* SF_STR, SF_TEXT, and each item of an SF_STRLIST */
	schema_custom_fn custom;        /* SF_CUSTOM */
	const struct schema *sub;       /* SF_OBJECT */
	const char *why;                /* SF_REJECT */
	int arg;                        /* SF_CUSTOM */
	const char *help;               /* one line for reference tables */
};

#define SCHEMA(tab) { (tab), sizeof(tab) / sizeof((tab)[0]) }

/*
 * Where problems go: into d (every one, with file and JSON path), or else into w (only
 * the first, as "path: message"). arg is for check and custom functions.
 */
struct schema_ctx {
	struct diags *d;
	struct el_why *w;
	const char *file;
	void *arg;
	size_t n;                       /* problems reported so far */
	bool oom;
};

/* What schema_apply saw: bit i of `seen` is field i present, of `bad` field i refused. */
struct schema_seen {
	uint64_t seen, bad;
	bool object;
};

/*
 * Validates obj against s and stores every valid value into dst (NULL: validate only):
 * defaults first, so a refused value leaves the default; every unknown key, wrong type,
 * bound and missing required key is reported, in document order. Strings stored are
 * the caller's to free (schema_free).
 */
struct schema_seen schema_apply(struct schema_ctx *c, const struct schema *s, json_t *obj,
    const char *path, void *dst);
/* Validates and stores one value for field f (what schema_apply does per key). */
void schema_set(struct schema_ctx *c, const struct schema_field *f, const char *path,
    json_t *v, void *dst);
/* Validates the list v for f and stores copies of its strings (f->off, f->off2). */
void schema_set_strlist(struct schema_ctx *c, const struct schema_field *f, const char *path,
    json_t *v, void *dst);
/* The common checks of one string of f (item: as a list item), then f->check. */
bool schema_str_ok(struct schema_ctx *c, const struct schema_field *f, const char *path,
    const char *s, size_t len, bool item);
/* Stores the defaults of s into dst. */
void schema_defaults(struct schema_ctx *c, const struct schema *s, void *dst);
/* Frees what schema_apply stored into dst (strings, lists, JSON) and clears it. */
void schema_free(const struct schema *s, void *dst);
/* Was key present / present and accepted? key must be a field of s. */
bool schema_seen(const struct schema *s, const struct schema_seen *a, const char *key);
bool schema_ok(const struct schema *s, const struct schema_seen *a, const char *key);

void schema_problem(struct schema_ctx *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "expected EXPECTED, got a list" */
void schema_wrong_type(struct schema_ctx *c, const char *path, const char *expected,
    const json_t *v);
/* Reports "out of memory" once. */
void schema_oom(struct schema_ctx *c);

/*
 * Copies s into buf for a message: printable ASCII kept, '"' and '\' escaped, other
 * bytes as \xNN, cut with "..." past len, so hostile input cannot put control sequences
 * on a terminal. Returns buf.
 */
const char *schema_show(char *buf, size_t len, const char *s);
/* base.key, or base["key"] when key is not a plain name; key alone when base is "". */
void schema_path_key(char *out, size_t len, const char *base, const char *key);
/* base[i] */
void schema_path_idx(char *out, size_t len, const char *base, size_t i);
/*
 * The candidate closest to word when close enough to be a likely typo; NULL otherwise.
 * Candidates are n records of `stride` bytes, each with a string pointer at `off`.
 */
const char *schema_suggest(const char *word, const void *base, size_t n, size_t stride,
    size_t off);
bool schema_has_control(const char *s);

#endif
