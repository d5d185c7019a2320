/*
 * diag.h — a list of problems found while validating configuration, policies or
 * templates, each with file and JSON path, so `elevated check` can report all of them.
 */
#ifndef ELEVATE_DIAG_H
#define ELEVATE_DIAG_H

#include <stddef.h>

#define DIAGS_MAX 1000   /* problems kept; more are only counted (a hostile file cannot exhaust memory) */

struct diag {
	char *file;   /* may be NULL */
	char *path;   /* JSON path like "$.profiles.prod-readonly.max_duration", may be NULL */
	int line;     /* 0 when unknown */
	int column;   /* 0 when unknown */
	char *msg;
};

struct diags {
	struct diag *v;
	size_t n;
	size_t cap;
	size_t dropped;   /* problems not kept (over DIAGS_MAX or out of memory) */
};

void diags_init(struct diags *d);
void diags_free(struct diags *d);
/* Adds one problem; file/path may be NULL. Never fails (drops on OOM, counting it). */
void diags_add(struct diags *d, const char *file, const char *path, int line, int column,
    const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* "file:line:col: path: msg" — one per line, into a stdio stream. */
void diags_print(const struct diags *d, void *FILE_stream);
/* Problems recorded so far, kept or dropped: a validator succeeded when this did not grow. */
size_t diags_count(const struct diags *d);
/* One problem as diags_print writes it (without newline), snprintf-style: returns the length
 * it needed; buf always terminated when len > 0. For log lines and HTTP error bodies. */
size_t diag_format(const struct diag *g, char *buf, size_t len);

#endif
