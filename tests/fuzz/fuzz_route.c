/*
 * fuzz_route.c — libFuzzer harness for http_route_find (src/daemon/httpparse.c), which
 * maps the method and path of every request, from anyone on the listener, to a route of
 * the table the routes_*.c files export. The input is a request line, "METHOD PATH"
 * (split at the first space; each cut at a NUL as a C caller sees it). Besides "no crash,
 * no leak, no UB", the answer must be the one a reference matcher written here gives:
 * the first route in table order whose method is METHOD and whose pattern matches PATH
 * segment by segment ('/'-separated; "*" matches one non-empty segment and captures it,
 * anything else matches itself), with exactly those captures; none otherwise, no
 * captures left behind, and path_known exactly when some route matched the path with
 * another method.
 * Build: see README.md.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"   /* src/daemon/ */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The table in the order httpparse.c searches it. A route found outside this list
 * means the two have drifted apart: fix this list. */
static const struct route_group *const groups[] = {
	&routes_requests, &routes_approve, &routes_misc,
};
#define NGROUPS (sizeof(groups) / sizeof(groups[0]))

/* Every '*' is a whole segment, at most HTTP_MAX_CAPTURES of them: what the reference
 * below assumes and what the table promises. */
static void
check_table(void)
{
	size_t g, i;

	for (g = 0; g < NGROUPS; g++)
		for (i = 0; i < groups[g]->nroutes; i++) {
			const char *p = groups[g]->routes[i].pattern, *s;
			int n = 0;

			if (p[0] != '/')
				abort();
			for (s = p; (s = strchr(s, '*')) != NULL; s++, n++)
				if (s[-1] != '/' || (s[1] != '/' && s[1] != '\0'))
					abort();
			if (n > HTTP_MAX_CAPTURES)
				abort();
		}
}

/* Segment by segment; caps[] get pointers into path and lengths. */
static int
ref_match(const char *pattern, const char *path, const char *caps[], size_t caplen[],
    int *ncap)
{
	*ncap = 0;
	for (;;) {
		size_t pl = strcspn(pattern, "/"), sl = strcspn(path, "/");

		if (pl == 1 && pattern[0] == '*') {
			if (sl == 0)
				return 0;
			caps[*ncap] = path;
			caplen[(*ncap)++] = sl;
		} else if (pl != sl || memcmp(pattern, path, pl) != 0)
			return 0;
		pattern += pl;
		path += sl;
		if (*pattern == '\0' || *path == '\0')
			return *pattern == '\0' && *path == '\0';
		pattern++;   /* both at a '/' */
		path++;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int checked;
	char *line, *method, *path, *sp, *captures[HTTP_MAX_CAPTURES] = {0};
	const char *caps[HTTP_MAX_CAPTURES + 1], *ecaps[HTTP_MAX_CAPTURES + 1];
	size_t caplen[HTTP_MAX_CAPTURES + 1], ecaplen[HTTP_MAX_CAPTURES + 1], g, i;
	const struct route *rt, *expect = NULL;
	int known = 0, path_known = -1, ncap, encap = 0, in_table = 0;

	if (!checked) {
		check_table();
		checked = 1;
	}
	if (size > HTTP_MAX_URI + 16)
		return 0;
	if ((line = malloc(size + 1)) == NULL)
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';
	method = line;
	if ((sp = strchr(line, ' ')) != NULL) {
		*sp = '\0';
		path = sp + 1;
	} else
		path = line + strlen(line);

	for (g = 0; g < NGROUPS; g++)
		for (i = 0; i < groups[g]->nroutes; i++) {
			const struct route *r = &groups[g]->routes[i];

			if (!ref_match(r->pattern, path, caps, caplen, &ncap))
				continue;
			if (strcmp(r->method, method) != 0) {
				known = 1;
				continue;
			}
			if (expect == NULL) {
				expect = r;
				encap = ncap;
				memcpy(ecaps, caps, sizeof(caps));
				memcpy(ecaplen, caplen, sizeof(caplen));
			}
		}

	rt = http_route_find(method, path, captures, &path_known);
	for (g = 0; g < NGROUPS; g++)
		if (rt >= groups[g]->routes && rt < groups[g]->routes + groups[g]->nroutes)
			in_table = 1;
	if (rt != expect || (rt != NULL && !in_table))
		abort();
	if (rt == NULL && path_known != known)
		abort();
	for (i = 0; i < HTTP_MAX_CAPTURES; i++) {
		if ((int)i >= encap || rt == NULL) {
			if (captures[i] != NULL)
				abort();   /* a capture left behind */
			continue;
		}
		if (captures[i] == NULL || strlen(captures[i]) != ecaplen[i] ||
		    memcmp(captures[i], ecaps[i], ecaplen[i]) != 0 || strchr(captures[i], '/'))
			abort();
		free(captures[i]);
	}
	free(line);
	return 0;
}
