/*
 * fuzz_form.c — libFuzzer harness for http_parse_form (src/daemon/httpparse.c), the
 * decoder of the query string of every GET (/v1/requests, /v1/audit) and of the
 * application/x-www-form-urlencoded body of the public approval form. The input is the
 * text, parsed as a body (with its length) and as a query (as the C string before the
 * first NUL). Besides "no crash, no leak, no UB", each answer must equal that of a
 * reference decoder written here from the contract: pairs split on '&', then on the
 * first '='; '+' is a space; %XX is a byte, any other '%' and %00 make the whole input
 * malformed, and so does a NUL byte; a key and its value are UTF-8 or the input is
 * malformed; a pair with an empty key is skipped; the last value of a key wins.
 * Build: see README.md.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "http.h"   /* src/daemon/ */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXPAIRS 512

struct pair {
	char *k, *v;
};

static int
hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Well-formed UTF-8 as RFC 3629 has it: no overlong forms, no surrogates, <= U+10FFFF. */
static int
utf8_ok(const unsigned char *s)
{
	while (*s) {
		unsigned c = *s, n, cp, i;

		if (c < 0x80) {
			s++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) { n = 1; cp = c & 0x1f; }
		else if (c >= 0xe0 && c <= 0xef) { n = 2; cp = c & 0x0f; }
		else if (c >= 0xf0 && c <= 0xf4) { n = 3; cp = c & 0x07; }
		else
			return 0;
		for (i = 1; i <= n; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		s += n + 1;
	}
	return 1;
}

/* One side of a pair, decoded; NULL when it makes the input malformed. */
static char *
ref_decode(const unsigned char *s, size_t n)
{
	char *out = malloc(n + 1);
	size_t i, o = 0;

	if (out == NULL)
		abort();
	for (i = 0; i < n; i++) {
		if (s[i] == '\0')
			goto bad;
		if (s[i] == '+')
			out[o++] = ' ';
		else if (s[i] == '%') {
			if (n - i < 3 || hex(s[i + 1]) < 0 || hex(s[i + 2]) < 0 ||
			    hex(s[i + 1]) * 16 + hex(s[i + 2]) == 0)
				goto bad;
			out[o++] = (char)(hex(s[i + 1]) * 16 + hex(s[i + 2]));
			i += 2;
		} else
			out[o++] = (char)s[i];
	}
	out[o] = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

/* The pairs of s, in order, empty keys left out; -1 when s is malformed. */
static int
ref_parse(const unsigned char *s, size_t len, struct pair *p)
{
	size_t i = 0, np = 0;

	while (i < len) {
		size_t j = i, eq;
		char *k, *v;

		while (j < len && s[j] != '&')
			j++;
		for (eq = i; eq < j && s[eq] != '='; eq++)
			;
		k = ref_decode(s + i, eq - i);
		v = ref_decode(eq < j ? s + eq + 1 : s + j, eq < j ? j - eq - 1 : 0);
		/* A pair with an empty key is skipped, whatever UTF-8 its value holds. */
		if (k == NULL || v == NULL || (*k != '\0' &&
		    (!utf8_ok((unsigned char *)k) || !utf8_ok((unsigned char *)v)))) {
			free(k);
			free(v);
			while (np > 0) {
				np--;
				free(p[np].k);
				free(p[np].v);
			}
			return -1;
		}
		if (*k == '\0' || np == MAXPAIRS) {
			free(k);
			free(v);
		} else {
			p[np].k = k;
			p[np].v = v;
			np++;
		}
		i = j + 1;
	}
	return (int)np;
}

static void
check(const unsigned char *s, size_t len)
{
	static struct pair p[MAXPAIRS];
	json_t *o = http_parse_form((const char *)s, len), *v;
	const char *key;
	int np = ref_parse(s, len, p), i, j, nkeys = 0;

	if (np < 0) {
		if (o != NULL)
			abort();   /* accepted what the contract calls malformed */
		return;
	}
	if (o == NULL || !json_is_object(o))
		abort();       /* refused well-formed input */
	for (i = 0; i < np; i++) {
		for (j = i + 1; j < np && strcmp(p[j].k, p[i].k) != 0; j++)
			;
		if (j == np) {  /* the last value of this key */
			nkeys++;
			v = json_object_get(o, p[i].k);
			if (!json_is_string(v) || strcmp(json_string_value(v), p[i].v) != 0 ||
			    json_string_length(v) != strlen(p[i].v))
				abort();
		}
	}
	if (json_object_size(o) != (size_t)nkeys)
		abort();
	json_object_foreach(o, key, v)
		if (*key == '\0' || !json_is_string(v))
			abort();
	for (i = 0; i < np; i++) {
		free(p[i].k);
		free(p[i].v);
	}
	json_decref(o);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Far more pairs than fit would only test the reference's ceiling. */
	if (size > 2 * MAXPAIRS)
		return 0;
	check(data, size);                                       /* a form body */
	check(data, strnlen((const char *)data, size));          /* a query string */
	return 0;
}
