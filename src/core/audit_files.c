/*
 * audit_files.c — owns reading several audit export files (the live one and its rotated
 * predecessors, given in any order) as one chain: sorted by their first seq, checked to
 * meet end to start, and served as a single stream for audit_verify_stream().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "elevate/audit_export.h"

#define LINE_CAP (AUDIT_MAX_RECORD + 2048)

struct chain {
	FILE **f;
	size_t n, cur;
};

static ssize_t
chain_read(void *cookie, char *buf, size_t size)
{
	struct chain *c = cookie;
	size_t got;

	while (c->cur < c->n) {
		if ((got = fread(buf, 1, size, c->f[c->cur])) > 0)
			return (ssize_t)got;
		if (ferror(c->f[c->cur]))
			return -1;
		c->cur++;
	}
	return 0;
}

static int
chain_seek(void *cookie, off64_t *off, int whence)
{
	struct chain *c = cookie;
	size_t i;

	/* Only a rewind is needed (audit_files_hash_at). */
	if (*off != 0 || whence != SEEK_SET)
		return -1;
	for (i = 0; i < c->n; i++)
		rewind(c->f[i]);
	c->cur = 0;
	return 0;
}

static int
chain_close(void *cookie)
{
	struct chain *c = cookie;
	size_t i;

	for (i = 0; i < c->n; i++)
		fclose(c->f[i]);
	free(c->f);
	free(c);
	return 0;
}

static int64_t
seq_of(const char *line)
{
	json_t *j = json_loads(line, 0, NULL);
	int64_t s = 0;

	if (j != NULL && json_is_integer(json_object_get(j, "seq")))
		s = json_integer_value(json_object_get(j, "seq"));
	json_decref(j);
	return s;
}

/* First and last seq and the line count of one file (0 seqs when it has no record). */
static void
survey(FILE *f, struct audit_file_info *fi)
{
	char *line = NULL, *last = NULL;
	size_t cap = 0;
	ssize_t len;

	while ((len = getline(&line, &cap, f)) >= 0) {
		fi->lines++;
		if (len <= 1 || len > LINE_CAP)
			continue;
		if (fi->first_seq == 0)
			fi->first_seq = seq_of(line);
		free(last);
		last = strdup(line);
	}
	if (last != NULL)
		fi->last_seq = seq_of(last);
	free(last);
	free(line);
	rewind(f);
}

struct ent {
	struct audit_file_info fi;
	FILE *f;
};

static int
by_first_seq(const void *a, const void *b)
{
	const struct ent *x = a, *y = b;

	return x->fi.first_seq < y->fi.first_seq ? -1 : x->fi.first_seq > y->fi.first_seq;
}

enum el_err
audit_files_open(char *const *paths, size_t n, FILE **out, struct audit_file_info **info,
    struct el_why *w)
{
	static const cookie_io_functions_t io = {chain_read, NULL, chain_seek, chain_close};
	struct audit_file_info *fi = NULL;
	struct ent *v;
	struct chain *c = NULL;
	size_t i;
	enum el_err r = EL_OK;

	*out = NULL;
	*info = NULL;
	if ((v = calloc(n ? n : 1, sizeof(*v))) == NULL)
		return EL_ENOMEM;
	for (i = 0; i < n; i++) {
		v[i].fi.path = paths[i];
		if ((v[i].f = fopen(paths[i], "re")) == NULL) {
			r = el_fail(w, EL_EIO, "%s: %s", paths[i], strerror(errno));
			goto fail;
		}
		survey(v[i].f, &v[i].fi);
		if (n > 1 && v[i].fi.first_seq == 0) {
			r = el_fail(w, EL_EPARSE, "%s: no audit record in it", paths[i]);
			goto fail;
		}
	}
	qsort(v, n, sizeof(*v), by_first_seq);
	for (i = 1; i < n; i++) {
		const struct audit_file_info *a = &v[i - 1].fi, *b = &v[i].fi;

		if (b->first_seq != a->last_seq + 1) {
			r = el_fail(w, EL_ECRYPTO, "%s ends at seq %lld but %s starts at seq %lld: "
			    "%s", a->path, (long long)a->last_seq, b->path, (long long)b->first_seq,
			    b->first_seq > a->last_seq + 1 ? "records between them are missing" :
			    "they overlap");
			goto fail;
		}
	}
	if ((fi = calloc(n ? n : 1, sizeof(*fi))) == NULL || (c = calloc(1, sizeof(*c))) == NULL ||
	    (c->f = calloc(n ? n : 1, sizeof(*c->f))) == NULL) {
		r = EL_ENOMEM;
		goto fail;
	}
	for (i = 0; i < n; i++) {
		fi[i] = v[i].fi;
		c->f[i] = v[i].f;
	}
	c->n = n;
	if ((*out = fopencookie(c, "r", io)) == NULL) {
		r = EL_ENOMEM;
		goto fail;
	}
	free(v);
	*info = fi;
	return EL_OK;
fail:
	for (i = 0; i < n; i++)
		if (v[i].f != NULL)
			fclose(v[i].f);
	if (c != NULL)
		free(c->f);
	free(c);
	free(v);
	free(fi);
	return r;
}

const struct audit_file_info *
audit_files_where(const struct audit_file_info *info, size_t n, int64_t lineno,
    int64_t *line_in_file)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (lineno <= info[i].lines) {
			*line_in_file = lineno;
			return &info[i];
		}
		lineno -= info[i].lines;
	}
	return NULL;
}

enum el_err
audit_files_hash_at(FILE *f, int64_t seq, char hex[2 * AUDIT_HASH_BYTES + 1])
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	enum el_err r = EL_ENOENT;

	if (fseek(f, 0, SEEK_SET) != 0)
		return EL_EIO;
	while ((len = getline(&line, &cap, f)) >= 0) {
		json_t *j;
		const char *h;

		if (len <= 1 || len > LINE_CAP || (j = json_loads(line, 0, NULL)) == NULL)
			continue;
		if (json_integer_value(json_object_get(j, "seq")) == seq) {
			h = json_string_value(json_object_get(j, "hash"));
			if (h != NULL && strlen(h) == 2 * AUDIT_HASH_BYTES) {
				memcpy(hex, h, 2 * AUDIT_HASH_BYTES + 1);
				r = EL_OK;
			}
			json_decref(j);
			break;
		}
		json_decref(j);
	}
	free(line);
	return r;
}
