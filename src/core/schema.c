/*
 * schema.c — owns declarative JSON validation (schema.h): walking an object against a
 * table of fields, the checks of each kind of value, defaults, and the wording of every
 * problem ("expected a string, got a list", "unknown key (did you mean region?)"), with
 * the JSON paths and quoting those messages use. A typo must never widen access or
 * silently change a setting, so unknown keys are always errors.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "elevate/diag.h"
#include "elevate/el.h"
#include "elevate/log.h"
#include "elevate/schema.h"

#define MSG_LEN 768
#define NAME_MAX_LEN 64         /* keys shown plainly in paths, and compared for typos */

#define AT(base, off, type) ((type *)(void *)((char *)(base) + (off)))

/* ------------------------------------------------------------------ messages */

const char *
schema_show(char *buf, size_t len, const char *s)
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
	if (v == NULL)
		return "nothing";
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

bool
schema_has_control(const char *s)
{
	const unsigned char *c;

	for (c = (const unsigned char *)s; *c != '\0'; c++)
		if (*c < 0x20 || *c == 0x7f)
			return true;
	return false;
}

/* Paths are for humans: an over-long one is cut and ends in "...". */
static void
path_done(char *out, size_t len, int n)
{
	if ((n < 0 || (size_t)n >= len) && len > 4)
		memcpy(out + len - 4, "...", 4);
}

void
schema_path_key(char *out, size_t len, const char *base, const char *key)
{
	char q[SCHEMA_SHOW_LEN];
	const char *c;
	bool plain = key[0] != '\0' && strlen(key) <= NAME_MAX_LEN;

	for (c = key; *c != '\0' && plain; c++)
		plain = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		    (*c >= '0' && *c <= '9') || *c == '_' || *c == '-';
	if (plain)
		path_done(out, len, snprintf(out, len, "%s%s%s", base, base[0] ? "." : "", key));
	else
		path_done(out, len, snprintf(out, len, "%s[\"%s\"]", base,
		    schema_show(q, sizeof(q), key)));
}

void
schema_path_idx(char *out, size_t len, const char *base, size_t i)
{
	path_done(out, len, snprintf(out, len, "%s[%zu]", base, i));
}

static size_t
edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[NAME_MAX_LEN + 1], i, j;

	if (la > NAME_MAX_LEN || lb > NAME_MAX_LEN)
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

const char *
schema_suggest(const char *word, const void *base, size_t n, size_t stride, size_t off)
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

void
schema_problem(struct schema_ctx *c, const char *path, const char *fmt, ...)
{
	char msg[MSG_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->d != NULL)
		diags_add(c->d, c->file, path, 0, 0, "%s", msg);
	else if (c->n == 0 && path != NULL && path[0] != '\0')
		el_fail(c->w, EL_EINVAL, "%s: %s", path, msg);
	else if (c->n == 0)
		el_fail(c->w, EL_EINVAL, "%s", msg);
	c->n++;
}

void
schema_oom(struct schema_ctx *c)
{
	if (!c->oom) {
		if (c->d != NULL)
			diags_add(c->d, c->file, NULL, 0, 0, "out of memory");
		else if (c->n == 0)
			el_fail(c->w, EL_ENOMEM, "out of memory");
		c->n++;
	}
	c->oom = true;
}

void
schema_wrong_type(struct schema_ctx *c, const char *path, const char *expected,
    const json_t *v)
{
	schema_problem(c, path, "expected %s, got %s", expected, jtype(v));
}

/* ------------------------------------------------------------------ defaults */

static void
set_default(struct schema_ctx *c, const struct schema_field *f, void *dst)
{
	long long iv;
	int64_t dv;
	char *s;

	switch (f->kind) {
	case SF_STR:
	case SF_TEXT:
		if (f->dflt == NULL)
			break;
		if ((s = strdup(f->dflt)) == NULL) {
			schema_oom(c);
			break;
		}
		free(*AT(dst, f->off, char *));
		*AT(dst, f->off, char *) = s;
		break;
	case SF_BOOL:
		*AT(dst, f->off, bool) = f->dflt != NULL && strcmp(f->dflt, "true") == 0;
		break;
	case SF_INT:
		if (f->dflt == NULL)
			break;
		if (el_parse_int(f->dflt, f->min, f->max, &iv) != EL_OK)
			fatalx("schema: bad default %s for %s", f->dflt, f->key);
		*AT(dst, f->off, int64_t) = iv;
		break;
	case SF_DURATION:
		if (f->dflt == NULL)
			break;
		if (el_parse_duration(f->dflt, &dv) != EL_OK)
			fatalx("schema: bad default %s for %s", f->dflt, f->key);
		*AT(dst, f->off, int64_t) = dv;
		break;
	case SF_OBJECT:
		schema_defaults(c, f->sub, dst);
		break;
	default:
		break;  /* lists and JSON start NULL/0 */
	}
}

void
schema_defaults(struct schema_ctx *c, const struct schema *s, void *dst)
{
	size_t i;

	if (dst == NULL)
		return;
	for (i = 0; i < s->n; i++)
		set_default(c, &s->f[i], dst);
}

void
schema_free(const struct schema *s, void *dst)
{
	const struct schema_field *f;
	size_t i;

	for (i = 0; i < s->n; i++) {
		f = &s->f[i];
		switch (f->kind) {
		case SF_STR:
		case SF_TEXT:
			free(*AT(dst, f->off, char *));
			*AT(dst, f->off, char *) = NULL;
			break;
		case SF_STRLIST:
			el_strv_free(*AT(dst, f->off, char **), *AT(dst, f->off2, size_t));
			*AT(dst, f->off, char **) = NULL;
			*AT(dst, f->off2, size_t) = 0;
			break;
		case SF_JSON:
			json_decref(*AT(dst, f->off, json_t *));
			*AT(dst, f->off, json_t *) = NULL;
			break;
		case SF_OBJECT:
			schema_free(f->sub, dst);
			break;
		default:
			break;
		}
	}
}

/* ------------------------------------------------------------------ values */

/* "must be error, warn, info or debug" */
static void
not_one_of(struct schema_ctx *c, const char *path, const char *const *v)
{
	char buf[256];
	size_t o = 0, i;

	buf[0] = '\0';
	for (i = 0; v[i] != NULL && o < sizeof(buf); i++)
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%s",
		    i == 0 ? "" : v[i + 1] == NULL ? " or " : ", ", v[i]);
	schema_problem(c, path, "must be %s", buf);
}

bool
schema_str_ok(struct schema_ctx *c, const struct schema_field *f, const char *path,
    const char *s, size_t len, bool item)
{
	long long min = item ? 0 : f->min;
	long long max = !item ? f->max : f->item_max ? (long long)f->item_max : SCHEMA_ITEM_MAX;
	size_t i;

	if (strlen(s) != len) {
		schema_problem(c, path, "contains a NUL character");
		return false;
	}
	if ((long long)len < min) {
		schema_problem(c, path, min == 1 ? "must not be empty" :
		    "must be at least %lld characters", min);
		return false;
	}
	if ((long long)len > max) {
		schema_problem(c, path, "is %zu characters long; at most %lld are allowed", len,
		    max);
		return false;
	}
	if (f->kind != SF_TEXT && schema_has_control(s)) {
		schema_problem(c, path, "contains a control character");
		return false;
	}
	if (f->one_of != NULL) {
		for (i = 0; f->one_of[i] != NULL && strcmp(f->one_of[i], s) != 0; i++)
			;
		if (f->one_of[i] == NULL) {
			not_one_of(c, path, f->one_of);
			return false;
		}
	}
	return f->check == NULL || f->check(c, path, s);
}

void
schema_set_strlist(struct schema_ctx *c, const struct schema_field *f, const char *path,
    json_t *v, void *dst)
{
	char ip[SCHEMA_PATH_LEN], q[SCHEMA_SHOW_LEN];
	char **arr = NULL, ***slot;
	size_t n, i, j, k = 0;
	json_t *it;

	if (!json_is_array(v)) {
		schema_wrong_type(c, path, "a list of strings", v);
		return;
	}
	n = json_array_size(v);
	if ((long long)n < f->min) {
		schema_problem(c, path, "must list at least %lld item%s", f->min, plural(f->min));
		return;
	}
	if ((long long)n > f->max) {
		schema_problem(c, path, "lists %zu items; at most %lld are allowed", n, f->max);
		return;
	}
	if (dst != NULL && (arr = calloc(n ? n : 1, sizeof(*arr))) == NULL) {
		schema_oom(c);
		return;
	}
	json_array_foreach(v, i, it) {
		const char *s;

		schema_path_idx(ip, sizeof(ip), path, i);
		if (!json_is_string(it)) {
			schema_wrong_type(c, ip, "a string", it);
			continue;
		}
		s = json_string_value(it);
		if (!schema_str_ok(c, f, ip, s, json_string_length(it), true))
			continue;
		/* An earlier equal item was either kept or refused for the same reason. */
		for (j = 0; j < i && !(json_is_string(json_array_get(v, j)) &&
		    strcmp(json_string_value(json_array_get(v, j)), s) == 0); j++)
			;
		if (j < i) {
			schema_problem(c, ip, "\"%s\" is listed "
			    "twice", schema_show(q, sizeof(q), s));
			continue;
		}
		if (arr == NULL)
			continue;
		if ((arr[k] = strdup(s)) == NULL) {
			schema_oom(c);
			break;
		}
		k++;
	}
	if (dst == NULL)
		return;
	slot = AT(dst, f->off, char **);
	el_strv_free(*slot, *AT(dst, f->off2, size_t));   /* never set twice by a table */
	*slot = arr;
	*AT(dst, f->off2, size_t) = k;
}

static void
set_duration(struct schema_ctx *c, const struct schema_field *f, const char *path,
    json_t *v, void *dst)
{
	char b1[32], b2[32], b3[32], q[SCHEMA_SHOW_LEN];
	const char *s;
	int64_t dv;

	if (json_is_integer(v) && f->seconds_ok) {
		dv = (int64_t)json_integer_value(v);
	} else if (!json_is_string(v)) {
		schema_wrong_type(c, path, "a duration such as \"15m\" or \"1h30m\"", v);
		return;
	} else {
		s = json_string_value(v);
		if (f->min == 0 && strcmp(s, "0") == 0) {
			dv = 0;
		} else if (el_parse_duration(s, &dv) != EL_OK) {
			schema_problem(c, path, "\"%s\" is not a duration (write e.g. \"90s\", "
			    "\"15m\", \"1h30m\")", schema_show(q, sizeof(q), s));
			return;
		}
	}
	if (dv < f->min || dv > f->max) {
		if (dv > 0)
			el_format_duration(dv, b1, sizeof(b1));
		else
			snprintf(b1, sizeof(b1), "%llds", (long long)dv);
		el_format_duration(f->min, b2, sizeof(b2));
		el_format_duration(f->max, b3, sizeof(b3));
		schema_problem(c, path, "%s is out of range (%s..%s)", b1, b2, b3);
		return;
	}
	if (dst != NULL)
		*AT(dst, f->off, int64_t) = dv;
}

void
schema_set(struct schema_ctx *c, const struct schema_field *f, const char *path, json_t *v,
    void *dst)
{
	long long iv;
	char *s;

	switch (f->kind) {
	case SF_STR:
	case SF_TEXT:
		if (!json_is_string(v)) {
			schema_wrong_type(c, path, "a string", v);
			return;
		}
		if (!schema_str_ok(c, f, path, json_string_value(v), json_string_length(v),
		    false) || dst == NULL)
			return;
		if ((s = strdup(json_string_value(v))) == NULL) {
			schema_oom(c);
			return;
		}
		free(*AT(dst, f->off, char *));
		*AT(dst, f->off, char *) = s;
		return;
	case SF_BOOL:
		if (!json_is_boolean(v)) {
			schema_wrong_type(c, path, "true or false", v);
			return;
		}
		if (dst != NULL)
			*AT(dst, f->off, bool) = json_is_true(v);
		return;
	case SF_INT:
		if (!json_is_integer(v)) {
			schema_wrong_type(c, path, "an integer", v);
			return;
		}
		iv = (long long)json_integer_value(v);
		if (iv < f->min || iv > f->max) {
			schema_problem(c, path, "%lld is out of range (%lld..%lld)", iv, f->min,
			    f->max);
			return;
		}
		if (dst != NULL)
			*AT(dst, f->off, int64_t) = iv;
		return;
	case SF_DURATION:
		set_duration(c, f, path, v, dst);
		return;
	case SF_STRLIST:
		schema_set_strlist(c, f, path, v, dst);
		return;
	case SF_JSON:
		if (!json_is_object(v)) {
			schema_wrong_type(c, path, "an object", v);
			return;
		}
		if ((long long)json_object_size(v) > f->max) {
			schema_problem(c, path, "has %zu members; at most %lld are allowed",
			    json_object_size(v), f->max);
			return;
		}
		if (dst != NULL) {
			json_decref(*AT(dst, f->off, json_t *));
			*AT(dst, f->off, json_t *) = json_incref(v);
		}
		return;
	case SF_OBJECT:
		schema_apply(c, f->sub, v, path, dst);
		return;
	case SF_CUSTOM:
		f->custom(c, f, path, v, dst);
		return;
	case SF_REJECT:
		schema_problem(c, path, "%s", f->why);
		return;
	}
}

/* ------------------------------------------------------------------ objects */

static size_t
field_index(const struct schema *s, const char *key)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (strcmp(s->f[i].key, key) == 0)
			return i;
	fatalx("schema: no field %s", key);
}

bool
schema_ok(const struct schema *s, const struct schema_seen *a, const char *key)
{
	return a->object && !(a->bad & ((uint64_t)1 << field_index(s, key)));
}

bool
schema_seen(const struct schema *s, const struct schema_seen *a, const char *key)
{
	return (a->seen & ((uint64_t)1 << field_index(s, key))) != 0;
}

struct schema_seen
schema_apply(struct schema_ctx *c, const struct schema *s, json_t *obj, const char *path,
    void *dst)
{
	struct schema_seen a = { 0, 0, false };
	char kp[SCHEMA_PATH_LEN];
	const char *key, *near;
	json_t *v;
	size_t i, before;

	if (s->n > 64)
		fatalx("schema: too many fields");
	schema_defaults(c, s, dst);
	if (!json_is_object(obj)) {
		schema_wrong_type(c, path, "an object", obj);
		a.bad = ~(uint64_t)0;
		return a;
	}
	a.object = true;
	json_object_foreach(obj, key, v) {
		schema_path_key(kp, sizeof(kp), path, key);
		for (i = 0; i < s->n && strcmp(key, s->f[i].key) != 0; i++)
			;
		if (i == s->n) {
			near = schema_suggest(key, s->f, s->n, sizeof(s->f[0]),
			    offsetof(struct schema_field, key));
			if (near != NULL)
				schema_problem(c, kp, "unknown key (did you mean %s?)", near);
			else
				schema_problem(c, kp, "unknown key");
			continue;
		}
		if (json_is_null(v) && s->f[i].null_ok)
			continue;
		a.seen |= (uint64_t)1 << i;
		before = c->n;
		schema_set(c, &s->f[i], kp, v, dst);
		if (c->n != before)
			a.bad |= (uint64_t)1 << i;
	}
	for (i = 0; i < s->n; i++) {
		if (!s->f[i].required || (a.seen & ((uint64_t)1 << i)))
			continue;
		schema_problem(c, path, "missing required key \"%s\"", s->f[i].key);
		a.bad |= (uint64_t)1 << i;
	}
	return a;
}
