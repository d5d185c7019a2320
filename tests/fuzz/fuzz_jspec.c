/*
 * fuzz_jspec.c — libFuzzer harness for the request-body path of the HTTP API:
 * json_loadb (with JSON_REJECT_DUPLICATES, as http.c loads bodies) then jspec_check
 * against a fixed schema table holding every kind of field a request uses. Besides "no
 * crash, no UB, no leak": an accepted object must really satisfy the table (required
 * fields present, lengths and ranges kept, no unknown field, no item twice), and a
 * refusal must say why.
 * Build: see README.md.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "elevate/el.h"
#include "elevate/jspec.h"
#include "elevate/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct schema_field fields[] = {
	{ .key = "profile", .kind = SF_STR, .required = true, .null_ok = true, .max = 64 },
	{ .key = "reason", .kind = SF_TEXT, .null_ok = true, .max = 16 },
	{ .key = "count", .kind = SF_INT, .null_ok = true, .min = -5, .max = 10 },
	{ .key = "duration", .kind = SF_DURATION, .null_ok = true, .seconds_ok = true, .min = 1,
	  .max = EL_DURATION_MAX },
	{ .key = "targets", .kind = SF_STRLIST, .null_ok = true, .max = 3, .item_max = 8 },
	{ .key = "wait", .kind = SF_BOOL, .null_ok = true },
	{ .key = "tags", .kind = SF_JSON, .null_ok = true, .max = 2 },
};
static const struct schema spec = SCHEMA(fields);
#define NSPEC (sizeof(fields) / sizeof(fields[0]))

static bool
has_control(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* Re-checks one accepted field independently of schema.c. */
static void
recheck(const struct schema_field *f, json_t *v)
{
	json_t *x, *y;
	size_t i, j;

	if (json_is_null(v)) {
		if (f->required)
			abort();
		return;
	}
	switch (f->kind) {
	case SF_STR:
	case SF_TEXT:
		if (!json_is_string(v) || (long long)json_string_length(v) > f->max ||
		    strlen(json_string_value(v)) != json_string_length(v) ||
		    (f->kind == SF_STR && has_control(json_string_value(v))))
			abort();
		break;
	case SF_INT:
		if (!json_is_integer(v) || json_integer_value(v) < f->min ||
		    json_integer_value(v) > f->max)
			abort();
		break;
	case SF_BOOL:
		if (!json_is_boolean(v))
			abort();
		break;
	case SF_DURATION:
		/* the value itself is checked through jspec_duration below */
		if (!json_is_integer(v) && !json_is_string(v))
			abort();
		break;
	case SF_JSON:
		if (!json_is_object(v) || (long long)json_object_size(v) > f->max)
			abort();
		break;
	case SF_STRLIST:
		if (!json_is_array(v) || (long long)json_array_size(v) > f->max)
			abort();
		json_array_foreach(v, i, x) {
			if (!json_is_string(x) || json_string_length(x) > f->item_max ||
			    strlen(json_string_value(x)) != json_string_length(x) ||
			    has_control(json_string_value(x)))
				abort();
			for (j = 0; j < i; j++)
				if ((y = json_array_get(v, j)) != NULL &&
				    strcmp(json_string_value(y), json_string_value(x)) == 0)
					abort();
		}
		break;
	default:
		abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct el_why w = {{0}};
	json_error_t je;
	const char *k;
	json_t *j, *v;
	size_t i;
	int64_t d;

	if (size > 64 * 1024)
		return 0;
	if ((j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je)) == NULL)
		return 0;
	if (jspec_check(j, &spec, &w) == EL_OK) {
		if (!json_is_object(j) || jspec_str(j, "profile") == NULL)
			abort();
		json_object_foreach(j, k, v) {
			for (i = 0; i < NSPEC && strcmp(fields[i].key, k) != 0; i++)
				;
			if (i == NSPEC)
				abort();
			recheck(&fields[i], v);
		}
		/* An accepted duration is positive and within a year; absent or null is 0. */
		d = jspec_duration(j, "duration");
		v = json_object_get(j, "duration");
		if (v == NULL || json_is_null(v) ? d != 0 : d <= 0 || d > EL_DURATION_MAX)
			abort();
	} else if (w.msg[0] == '\0')
		abort();
	json_decref(j);
	return 0;
}
