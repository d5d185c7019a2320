/*
 * httpparse.c — owns the pure parsing of request text the HTTP layer hands over: the
 * query-string / application/x-www-form-urlencoded decoder and the route lookup over the
 * route groups (method + path -> route and its '*' captures). No libmicrohttpd and no
 * engine here, so tests/fuzz/ and tests/unit/ can call it directly.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

static const struct route_group *const groups[] = {
	&routes_requests, &routes_approve, &routes_misc,
};

/* Percent- and '+'-decoding into a new string. NULL on a bad escape or a NUL byte. */
static char *
form_decode(const char *s, size_t len)
{
	char *out = malloc(len + 1), *o = out;
	size_t i;

	if (out == NULL)
		return NULL;
	for (i = 0; i < len; i++) {
		if (s[i] == '\0') {   /* raw in a body: C would cut the value short there */
			free(out);
			return NULL;
		}
		if (s[i] == '+')
			*o++ = ' ';
		else if (s[i] == '%') {
			int h, l;
			if (i + 2 >= len) {
				free(out);
				return NULL;
			}
			h = el_hexval(s[i + 1]);
			l = el_hexval(s[i + 2]);
			if (h < 0 || l < 0 || (h == 0 && l == 0)) {
				free(out);
				return NULL;
			}
			*o++ = (char)(h * 16 + l);
			i += 2;
		} else
			*o++ = s[i];
	}
	*o = '\0';
	return out;
}

json_t *
http_parse_form(const char *s, size_t len)
{
	json_t *o = json_object();
	size_t i = 0;

	while (o != NULL && i < len) {
		size_t j = i, eq;
		char *k, *v;

		while (j < len && s[j] != '&')
			j++;
		for (eq = i; eq < j && s[eq] != '='; eq++)
			;
		k = form_decode(s + i, eq - i);
		v = eq < j ? form_decode(s + eq + 1, j - eq - 1) : strdup("");
		if (k == NULL || v == NULL) {
			free(k);
			free(v);
			json_decref(o);
			return NULL;
		}
		if (*k != '\0') {
			/* NULL and -1 when not UTF-8: a key too, not only a value. */
			json_t *js = json_string(v);
			if (js == NULL || json_object_set_new(o, k, js) != 0) {
				free(k);
				free(v);
				json_decref(o);
				return NULL;
			}
		}
		free(k);
		free(v);
		i = j + 1;
	}
	return o;
}

/* ---- routing ---- */

static int
match(const char *pattern, const char *path, char *captures[HTTP_MAX_CAPTURES])
{
	int ncap = 0;

	while (*pattern && *path) {
		if (*pattern == '*') {
			const char *end = strchr(path, '/');
			size_t n = end ? (size_t)(end - path) : strlen(path);
			/* Not a bare return: the captures taken so far go too. */
			if (n == 0 || ncap >= HTTP_MAX_CAPTURES)
				goto no;
			if ((captures[ncap] = strndup(path, n)) == NULL)
				goto no;
			ncap++;
			path += n;
			pattern++;
			continue;
		}
		if (*pattern != *path)
			goto no;
		pattern++;
		path++;
	}
	if (*pattern == '\0' && *path == '\0')
		return 1;
no:
	while (ncap > 0) {
		free(captures[--ncap]);
		captures[ncap] = NULL;
	}
	return 0;
}

const struct route *
http_route_find(const char *method, const char *path, char *captures[HTTP_MAX_CAPTURES],
    int *path_known)
{
	size_t g, i;
	int c;

	*path_known = 0;
	for (g = 0; g < sizeof(groups) / sizeof(groups[0]); g++)
		for (i = 0; i < groups[g]->nroutes; i++) {
			const struct route *rt = &groups[g]->routes[i];

			if (!match(rt->pattern, path, captures))
				continue;
			if (strcmp(rt->method, method) == 0)
				return rt;
			*path_known = 1;
			for (c = 0; c < HTTP_MAX_CAPTURES; c++) {
				free(captures[c]);
				captures[c] = NULL;
			}
		}
	return NULL;
}

size_t
http_route_count(void)
{
	size_t g, n = 0;

	for (g = 0; g < sizeof(groups) / sizeof(groups[0]); g++)
		n += groups[g]->nroutes;
	return n;
}

const struct route *
http_route_at(size_t i)
{
	size_t g;

	for (g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
		if (i < groups[g]->nroutes)
			return &groups[g]->routes[i];
		i -= groups[g]->nroutes;
	}
	return NULL;
}

size_t
http_route_index(const struct route *rt)
{
	size_t g, n = 0;

	for (g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
		if (rt >= groups[g]->routes && rt < groups[g]->routes + groups[g]->nroutes)
			return n + (size_t)(rt - groups[g]->routes);
		n += groups[g]->nroutes;
	}
	return SIZE_MAX;
}
