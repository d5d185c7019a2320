/*
 * jspec.c — owns validation of untrusted JSON objects against declarative field specs.
 */
#include <string.h>

#include "elevate/jspec.h"

static const struct jspec *
find(const struct jspec *spec, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(spec[i].name, name) == 0)
			return &spec[i];
	return NULL;
}

static enum el_err
check_field(const struct jspec *f, json_t *v, struct el_why *w)
{
	int64_t secs;
	size_t i;
	json_t *x;

	switch (f->type) {
	case JS_STRING:
		if (!json_is_string(v))
			return el_fail(w, EL_EINVAL, "%s: must be a string", f->name);
		if (json_string_length(v) > f->maxlen)
			return el_fail(w, EL_EINVAL, "%s: longer than %zu bytes", f->name, f->maxlen);
		if (strlen(json_string_value(v)) != json_string_length(v))
			return el_fail(w, EL_EINVAL, "%s: contains a NUL byte", f->name);
		return EL_OK;
	case JS_INTEGER:
		if (!json_is_integer(v) || json_integer_value(v) < f->min ||
		    json_integer_value(v) > f->max)
			return el_fail(w, EL_EINVAL, "%s: must be a whole number from %lld to %lld",
			    f->name, f->min, f->max);
		return EL_OK;
	case JS_BOOL:
		if (!json_is_boolean(v))
			return el_fail(w, EL_EINVAL, "%s: must be true or false", f->name);
		return EL_OK;
	case JS_DURATION:
		if (json_is_integer(v)) {
			if (json_integer_value(v) <= 0 || json_integer_value(v) > 366LL * 86400)
				return el_fail(w, EL_EINVAL, "%s: must be a positive number of seconds",
				    f->name);
			return EL_OK;
		}
		if (!json_is_string(v) || json_string_length(v) > 32 ||
		    el_parse_duration(json_string_value(v), &secs) != EL_OK)
			return el_fail(w, EL_EINVAL, "%s: must be a duration like 90s, 15m or 1h30m",
			    f->name);
		return EL_OK;
	case JS_OBJECT:
		if (!json_is_object(v) || json_object_size(v) > f->maxlen)
			return el_fail(w, EL_EINVAL, "%s: must be an object of at most %zu members",
			    f->name, f->maxlen);
		return EL_OK;
	case JS_STRING_ARRAY:
		if (!json_is_array(v) || json_array_size(v) > (size_t)f->max)
			return el_fail(w, EL_EINVAL, "%s: must be a list of at most %lld strings",
			    f->name, f->max);
		json_array_foreach(v, i, x)
			if (!json_is_string(x) || json_string_length(x) > f->maxlen ||
			    strlen(json_string_value(x)) != json_string_length(x))
				return el_fail(w, EL_EINVAL, "%s[%zu]: must be a string of at most "
				    "%zu bytes", f->name, i, f->maxlen);
		return EL_OK;
	}
	return EL_EINVAL;
}

enum el_err
jspec_check(json_t *obj, const struct jspec *spec, size_t n, struct el_why *w)
{
	const char *key;
	json_t *v;
	size_t i;
	enum el_err r;

	if (!json_is_object(obj))
		return el_fail(w, EL_EINVAL, "the body must be a JSON object");
	json_object_foreach(obj, key, v) {
		const struct jspec *f = find(spec, n, key);
		if (f == NULL)
			return el_fail(w, EL_EINVAL, "unknown field \"%.64s\"", key);
		if (json_is_null(v) && !f->required)
			continue;
		if ((r = check_field(f, v, w)) != EL_OK)
			return r;
	}
	for (i = 0; i < n; i++) {
		v = json_object_get(obj, spec[i].name);
		if (spec[i].required && (v == NULL || json_is_null(v)))
			return el_fail(w, EL_EINVAL, "%s: required", spec[i].name);
	}
	return EL_OK;
}

const char *
jspec_str(json_t *obj, const char *name)
{
	return json_string_value(json_object_get(obj, name));
}

int64_t
jspec_duration(json_t *obj, const char *name)
{
	json_t *v = json_object_get(obj, name);
	int64_t secs = 0;

	if (json_is_integer(v))
		return json_integer_value(v);
	if (json_is_string(v) && el_parse_duration(json_string_value(v), &secs) == EL_OK)
		return secs;
	return 0;
}
