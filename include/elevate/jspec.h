/*
 * jspec.h — untrusted JSON objects (request bodies, query strings) checked against a
 * schema (schema.h) before anything reads them. Unknown fields are refused, so a typo in
 * a client never goes unnoticed; in a request, a field set to null counts as left out
 * when its table entry says null_ok.
 */
#ifndef ELEVATE_JSPEC_H
#define ELEVATE_JSPEC_H

#include <jansson.h>
#include <stdint.h>

#include "elevate/el.h"
#include "elevate/schema.h"

/*
 * EL_OK, or EL_EINVAL with w naming the field and the first rule it broke ("reason: is
 * 2000 characters long; at most 1024 are allowed"). Nothing is stored: read the checked
 * fields with jspec_str and jspec_duration.
 */
enum el_err jspec_check(json_t *obj, const struct schema *s, struct el_why *w);
/* Borrowed string of a checked field, or NULL when absent/null. */
const char *jspec_str(json_t *obj, const char *name);
/* An SF_DURATION field (seconds_ok) in seconds; 0 when absent. */
int64_t jspec_duration(json_t *obj, const char *name);

#endif
