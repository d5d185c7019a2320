/*
 * jspec.h — declarative checks for untrusted JSON objects (request bodies): each field
 * has a name, a type, whether it is required and a maximum length. Unknown fields are
 * refused, so a typo in a client never goes unnoticed.
 */
#ifndef ELEVATE_JSPEC_H
#define ELEVATE_JSPEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "elevate/el.h"

enum jspec_type {
	JS_STRING,       /* string up to maxlen bytes, no NUL, valid UTF-8 (jansson checks) */
	JS_INTEGER,      /* integer within [min, max] */
	JS_BOOL,
	JS_DURATION,     /* "15m" string or integer seconds */
	JS_OBJECT,       /* any object with at most maxlen members */
	JS_STRING_ARRAY, /* array of at most `max` strings of maxlen bytes */
};

struct jspec {
	const char *name;
	enum jspec_type type;
	bool required;
	size_t maxlen;
	long long min, max;
};

/* EL_OK, or EL_EINVAL with w naming the field and the rule it broke. */
enum el_err jspec_check(json_t *obj, const struct jspec *spec, size_t n, struct el_why *w);
/* Borrowed string of a checked field, or NULL when absent/null. */
const char *jspec_str(json_t *obj, const char *name);
/* A JS_DURATION field in seconds (0 when absent). */
int64_t jspec_duration(json_t *obj, const char *name);

#endif
