/*
 * diag.c — owns struct diags: the list of problems that configuration, policy and template
 * validation collect (so `elevated check` reports all of them, not just the first), and
 * their one printed form "file:line:col: path: message".
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elevate/diag.h"

#define DIAG_MSG_MAX 1024   /* one message; longer ones are truncated */

void
diags_init(struct diags *d)
{
	d->v = NULL;
	d->n = 0;
	d->cap = 0;
	d->dropped = 0;
}

void
diags_free(struct diags *d)
{
	size_t i;

	if (d == NULL)
		return;
	for (i = 0; i < d->n; i++) {
		free(d->v[i].file);
		free(d->v[i].path);
		free(d->v[i].msg);
	}
	free(d->v);
	diags_init(d);
}

void
diags_add(struct diags *d, const char *file, const char *path, int line, int column,
    const char *fmt, ...)
{
	struct diag *g;
	char msg[DIAG_MSG_MAX];
	va_list ap;

	if (d == NULL)
		return;
	if (d->n >= DIAGS_MAX)
		goto drop;
	if (d->n == d->cap) {
		size_t ncap = d->cap ? d->cap * 2 : 16;
		struct diag *nv;

		if (ncap > DIAGS_MAX)
			ncap = DIAGS_MAX;
		if ((nv = realloc(d->v, ncap * sizeof(*nv))) == NULL)
			goto drop;
		d->v = nv;
		d->cap = ncap;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	g = &d->v[d->n];
	g->file = file != NULL ? strdup(file) : NULL;
	g->path = path != NULL ? strdup(path) : NULL;
	g->msg = strdup(msg);
	g->line = line > 0 ? line : 0;
	g->column = column > 0 ? column : 0;
	if (g->msg == NULL || (file != NULL && g->file == NULL) ||
	    (path != NULL && g->path == NULL)) {
		free(g->file);
		free(g->path);
		free(g->msg);
		goto drop;
	}
	d->n++;
	return;
drop:
	d->dropped++;
}

size_t
diags_count(const struct diags *d)
{
	return d != NULL ? d->n + d->dropped : 0;
}

static void put(char *buf, size_t len, size_t *off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Appends to buf at *off like snprintf, remembering the full length needed. */
static void
put(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(*off < len ? buf + *off : NULL, *off < len ? len - *off : 0, fmt, ap);
	va_end(ap);
	if (n > 0)
		*off += (size_t)n;
}

size_t
diag_format(const struct diag *g, char *buf, size_t len)
{
	size_t off = 0;

	if (len > 0)
		buf[0] = '\0';
	if (g->file != NULL) {
		put(buf, len, &off, "%s", g->file);
		if (g->line > 0)
			put(buf, len, &off, ":%d", g->line);
		if (g->line > 0 && g->column > 0)
			put(buf, len, &off, ":%d", g->column);
		put(buf, len, &off, ": ");
	} else if (g->line > 0) {
		put(buf, len, &off, "line %d", g->line);
		if (g->column > 0)
			put(buf, len, &off, ":%d", g->column);
		put(buf, len, &off, ": ");
	}
	if (g->path != NULL)
		put(buf, len, &off, "%s: ", g->path);
	put(buf, len, &off, "%s", g->msg != NULL ? g->msg : "");
	return off;
}

void
diags_print(const struct diags *d, void *FILE_stream)
{
	FILE *f = FILE_stream;
	char line[DIAG_MSG_MAX + 1024];
	size_t i;

	if (d == NULL || f == NULL)
		return;
	for (i = 0; i < d->n; i++) {
		diag_format(&d->v[i], line, sizeof(line));
		fprintf(f, "%s\n", line);
	}
	if (d->dropped > 0)
		fprintf(f, "(%zu more problem%s not shown)\n", d->dropped,
		    d->dropped == 1 ? "" : "s");
}
