/*
 * output.c — owns how `elevate` prints: the --json switch, messages on stderr, tables,
 * relative times, and cleaning broker-supplied text before it reaches a terminal.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "elevate/el.h"
#include "output.h"

static int json_mode;

void
output_set_json(int on)
{
	json_mode = on;
}

int
output_json(void)
{
	return json_mode;
}

int
output_print_json(const json_t *j)
{
	if (json_dumpf(j, stdout, JSON_INDENT(2)) != 0 || fputc('\n', stdout) == EOF ||
	    fflush(stdout) != 0) {
		output_err("cannot write to stdout");
		return CLI_ERR;
	}
	return CLI_OK;
}

static void
output_verr(const char *fmt, va_list ap)
{
	char raw[2048], clean[2048];

	vsnprintf(raw, sizeof(raw), fmt, ap);
	output_clean(raw, 0, clean, sizeof(clean));
	fflush(stdout);
	fprintf(stderr, "elevate: %s\n", clean);
}

void
output_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	output_verr(fmt, ap);
	va_end(ap);
}

int
output_usage(const struct cli_cmd *c, const char *fmt, ...)
{
	va_list ap;

	if (fmt != NULL) {
		va_start(ap, fmt);
		output_verr(fmt, ap);
		va_end(ap);
	}
	fprintf(stderr, "usage: %s\n", c->usage);
	return CLI_USAGE;
}

/*
 * One UTF-8 sequence at p: its length (1-4) and code point, or 0 when invalid
 * (overlong, surrogate, beyond U+10FFFF, truncated).
 */
static size_t
utf8_decode(const unsigned char *p, uint32_t *cp)
{
	size_t n, i;
	uint32_t c, min;

	if (p[0] < 0x80) {
		*cp = p[0];
		return 1;
	}
	if ((p[0] & 0xe0) == 0xc0) {
		n = 2; c = p[0] & 0x1f; min = 0x80;
	} else if ((p[0] & 0xf0) == 0xe0) {
		n = 3; c = p[0] & 0x0f; min = 0x800;
	} else if ((p[0] & 0xf8) == 0xf0) {
		n = 4; c = p[0] & 0x07; min = 0x10000;
	} else
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)   /* also stops at the NUL */
			return 0;
		c = (c << 6) | (p[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

/* Characters that must not reach a terminal: C0/C1 controls, DEL, bidi overrides. */
static int
unsafe_cp(uint32_t c)
{
	return c < 0x20 || c == 0x7f || (c >= 0x80 && c <= 0x9f) ||
	    (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069) ||
	    c == 0x200e || c == 0x200f;
}

size_t
output_width(const char *s)
{
	size_t n = 0;

	for (; s != NULL && *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

int
output_has_control(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

void
output_clean(const char *s, size_t maxchars, char *buf, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0, chars = 0, limit = SIZE_MAX, n;
	int cut = 0;
	uint32_t cp;

	if (len == 0)
		return;
	buf[0] = '\0';
	if (s == NULL)
		return;
	if (maxchars > 0 && output_width(s) > maxchars) {
		cut = 1;
		limit = maxchars > 3 ? maxchars - 3 : 1;
	}
	while (*p != '\0') {
		const unsigned char *src = p;
		char rep;

		if (chars >= limit) {
			cut = 1;
			break;
		}
		if ((n = utf8_decode(p, &cp)) == 0) {
			rep = '?';
			n = 1;
		} else if (cp == '\t' || cp == '\n' || cp == '\r')
			rep = ' ';
		else if (unsafe_cp(cp))
			rep = '?';
		else
			rep = 0;
		/* keep room for "..." and the NUL */
		if (o + (rep ? 1 : n) + 4 > len) {
			cut = 1;
			break;
		}
		if (rep)
			buf[o++] = rep;
		else {
			memcpy(buf + o, src, n);
			o += n;
		}
		p += n;
		chars++;
	}
	if (cut && o + 4 <= len) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
}

void
output_duration(int64_t secs, char *buf, size_t len)
{
	el_format_duration(secs, buf, len);
}

void
output_reltime(int64_t t, int64_t now, char *buf, size_t len)
{
	int64_t d = t - now, a = d < 0 ? -d : d, x, y;
	char span[48];

	if (a < 5) {
		snprintf(buf, len, "now");
		return;
	}
	if (a < 60)
		snprintf(span, sizeof(span), "%llds", (long long)a);
	else if (a < 600) {
		x = a / 60; y = a % 60;
		if (y)
			snprintf(span, sizeof(span), "%lldm%llds", (long long)x, (long long)y);
		else
			snprintf(span, sizeof(span), "%lldm", (long long)x);
	} else if (a < 3600)
		snprintf(span, sizeof(span), "%lldm", (long long)(a / 60));
	else if (a < 86400) {
		x = a / 3600; y = (a % 3600) / 60;
		if (y)
			snprintf(span, sizeof(span), "%lldh%lldm", (long long)x, (long long)y);
		else
			snprintf(span, sizeof(span), "%lldh", (long long)x);
	} else {
		x = a / 86400; y = (a % 86400) / 3600;
		if (y)
			snprintf(span, sizeof(span), "%lldd%lldh", (long long)x, (long long)y);
		else
			snprintf(span, sizeof(span), "%lldd", (long long)x);
	}
	if (d < 0)
		snprintf(buf, len, "%s ago", span);
	else
		snprintf(buf, len, "in %s", span);
}

const char *
output_str(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

int64_t
output_int(const json_t *obj, const char *key, int64_t def)
{
	const json_t *v = json_object_get(obj, key);

	if (json_is_integer(v))
		return (int64_t)json_integer_value(v);
	if (json_is_real(v))
		return (int64_t)json_real_value(v);
	return def;
}

int64_t
output_time(const json_t *obj, const char *key)
{
	const char *s = output_str(obj, key);
	int64_t t;

	if (s == NULL || el_parse_time(s, &t) != EL_OK)
		return 0;
	return t;
}

struct output_table {
	size_t ncols;
	size_t nrows;       /* rows including the heading row */
	size_t cap;
	char **cells;       /* nrows * ncols cleaned strings */
};

struct output_table *
output_table_new(size_t ncols, const char *const *heads)
{
	struct output_table *t;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	t->ncols = ncols;
	output_table_add(t, heads);
	return t;
}

void
output_table_add(struct output_table *t, const char *const *cells)
{
	char buf[OUTPUT_CELL_MAX * 4];
	size_t i, base;

	if (t == NULL || t->nrows > OUTPUT_TABLE_MAX)
		return;
	if (t->nrows == t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 16;
		char **nc = reallocarray(t->cells, ncap * t->ncols, sizeof(char *));

		if (nc == NULL)
			return;
		t->cells = nc;
		t->cap = ncap;
	}
	base = t->nrows * t->ncols;
	for (i = 0; i < t->ncols; i++) {
		output_clean(cells[i], OUTPUT_CELL_MAX, buf, sizeof(buf));
		t->cells[base + i] = strdup(buf);
	}
	t->nrows++;
}

static size_t
term_cols(FILE *f)
{
	struct winsize ws;

	if (isatty(fileno(f)) && ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	return 0;
}

void
output_table_print(struct output_table *t, FILE *f)
{
	size_t w[32] = {0}, i, r, used = 0, cols, lastmax = 0, n;
	char cut[OUTPUT_CELL_MAX * 4];

	if (t == NULL || t->ncols == 0 || t->ncols > 32)
		return;
	for (r = 0; r < t->nrows; r++)
		for (i = 0; i < t->ncols; i++) {
			const char *c = t->cells[r * t->ncols + i];

			if (c != NULL && (n = output_width(c)) > w[i])
				w[i] = n;
		}
	for (i = 0; i + 1 < t->ncols; i++)
		used += w[i] + 2;
	/* The last column (free text such as a reason) gives way to the terminal. */
	if ((cols = term_cols(f)) > 0)
		lastmax = cols > used + 12 ? cols - used - 1 : 12;
	for (r = 0; r < t->nrows; r++) {
		size_t pad = 0;     /* owed spaces: written only before a non-empty cell */

		for (i = 0; i < t->ncols; i++) {
			const char *c = t->cells[r * t->ncols + i];

			if (c == NULL)
				c = "";
			if (i + 1 == t->ncols && lastmax > 0 && output_width(c) > lastmax) {
				output_clean(c, lastmax, cut, sizeof(cut));
				c = cut;
			}
			if (*c != '\0') {
				for (; pad > 0; pad--)
					fputc(' ', f);
				fputs(c, f);
			}
			pad += w[i] + 2 - output_width(c);
		}
		fputc('\n', f);
	}
	fflush(f);
}

void
output_table_free(struct output_table *t)
{
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}
