/*
 * fuzz_jspec.c — libFuzzer harness for the request-body path of the HTTP API:
 * json_loadb (with JSON_REJECT_DUPLICATES, as http.c loads bodies) then jspec_check
 * against a fixed table holding every field type. Besides "no crash, no UB, no leak":
 * an accepted object must really satisfy the table (required fields present, lengths
 * and ranges kept, no unknown field), and a refusal must say why.
 * Build: see README.md.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "elevate/el.h"
#include "elevate/jspec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct jspec spec[] = {
	{"profile", JS_STRING, true, 64, 0, 0},
	{"reason", JS_STRING, false, 16, 0, 0},
	{"count", JS_INTEGER, false, 0, -5, 10},
	{"duration", JS_DURATION, false, 0, 0, 0},
	{"targets", JS_STRING_ARRAY, false, 8, 0, 3},
	{"wait", JS_BOOL, false, 0, 0, 0},
	{"tags", JS_OBJECT, false, 2, 0, 0},
};
#define NSPEC (sizeof(spec) / sizeof(spec[0]))

/* Re-checks one accepted field independently of jspec.c. */
static void
recheck(const struct jspec *f, json_t *v)
{
	json_t *x;
	size_t i;

	if (json_is_null(v)) {
		if (f->required)
			abort();
		return;
	}
	switch (f->type) {
	case JS_STRING:
		if (!json_is_string(v) || json_string_length(v) > f->maxlen ||
		    strlen(json_string_value(v)) != json_string_length(v))
			abort();
		break;
	case JS_INTEGER:
		if (!json_is_integer(v) || json_integer_value(v) < f->min ||
		    json_integer_value(v) > f->max)
			abort();
		break;
	case JS_BOOL:
		if (!json_is_boolean(v))
			abort();
		break;
	case JS_DURATION:
		/* the value itself is checked through jspec_duration below */
		if (!json_is_integer(v) && !json_is_string(v))
			abort();
		break;
	case JS_OBJECT:
		if (!json_is_object(v) || json_object_size(v) > f->maxlen)
			abort();
		break;
	case JS_STRING_ARRAY:
		if (!json_is_array(v) || json_array_size(v) > (size_t)f->max)
			abort();
		json_array_foreach(v, i, x)
			if (!json_is_string(x) || json_string_length(x) > f->maxlen)
				abort();
		break;
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
	if (jspec_check(j, spec, NSPEC, &w) == EL_OK) {
		if (!json_is_object(j) || jspec_str(j, "profile") == NULL)
			abort();
		json_object_foreach(j, k, v) {
			for (i = 0; i < NSPEC && strcmp(spec[i].name, k) != 0; i++)
				;
			if (i == NSPEC)
				abort();
			recheck(&spec[i], v);
		}
		/* An accepted duration is positive and within a year; absent or null is 0. */
		d = jspec_duration(j, "duration");
		v = json_object_get(j, "duration");
		if (v == NULL || json_is_null(v) ? d != 0 : d <= 0 || d > 366LL * 86400)
			abort();
	} else if (w.msg[0] == '\0')
		abort();
	json_decref(j);
	return 0;
}
