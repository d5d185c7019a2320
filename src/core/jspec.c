/*
 * jspec.c — owns checking untrusted JSON objects (request bodies, query strings) before
 * the engine reads them: the schema engine validates, the first problem becomes the
 * caller's answer, and the accessors read what was checked.
 */
#include <string.h>

#include "elevate/jspec.h"
#include "elevate/schema.h"

enum el_err
jspec_check(json_t *obj, const struct schema *s, struct el_why *w)
{
	struct schema_ctx c = { .w = w };

	if (!json_is_object(obj))
		return el_fail(w, EL_EINVAL, "the body must be a JSON object");
	schema_apply(&c, s, obj, "", NULL);
	return c.n == 0 ? EL_OK : EL_EINVAL;
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
