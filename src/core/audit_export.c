/*
 * audit_export.c — owns the audit export file on disk: opening it 0600, finding and
 * cutting a torn last line, checked appends that never leave half a record behind,
 * fsync, rotation by size or age under names that carry the first seq, and the offline
 * re-export of the store (`elevated audit-export`).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "elevate/audit_export.h"
#include "elevate/store.h"

#define LINE_MAX_BYTES (AUDIT_MAX_RECORD + 2048)
#define SEQ_DIGITS 12

int64_t
audit_time_parse(const char *s)
{
	struct tm tm;
	char *end;

	memset(&tm, 0, sizeof(tm));
	if (s == NULL || (end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) == NULL)
		return 0;
	return (int64_t)timegm(&tm);
}

/* Splits path into the part before its extension and the extension ("" when none). */
static void
split_ext(const char *path, size_t *stem_len, const char **ext)
{
	const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');

	if (dot == NULL || (slash != NULL && dot < slash) || dot == (slash ? slash + 1 : path)) {
		*stem_len = strlen(path);
		*ext = "";
	} else {
		*stem_len = (size_t)(dot - path);
		*ext = dot;
	}
}

enum el_err
audit_rotated_name(const char *path, int64_t seq, char *buf, size_t len)
{
	size_t stem;
	const char *ext;
	int n;

	split_ext(path, &stem, &ext);
	n = snprintf(buf, len, "%.*s-%0*lld%s", (int)stem, path, SEQ_DIGITS, (long long)seq, ext);
	return n < 0 || (size_t)n >= len ? EL_ETOOBIG : EL_OK;
}

/* seq and time of one JSON line; 0 when it is not a record. */
static int64_t
line_seq(const char *line, size_t len, int64_t *t)
{
	json_t *j, *s;
	int64_t seq = 0;

	if ((j = json_loadb(line, len, 0, NULL)) == NULL)
		return 0;
	s = json_object_get(j, "seq");
	if (json_is_integer(s) && json_integer_value(s) > 0) {
		seq = json_integer_value(s);
		if (t != NULL)
			*t = audit_time_parse(json_string_value(json_object_get(j, "time")));
	}
	json_decref(j);
	return seq;
}

static ssize_t
pread_full(int fd, char *buf, size_t len, off_t off)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = pread(fd, buf + got, len - got, off + (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/*
 * Reads the end of the file of `size` bytes: *whole is where its whole lines end (a torn
 * last line starts there), *last the seq of the last whole line (0: none).
 */
static enum el_err
scan_tail(int fd, const char *path, int64_t size, int64_t *whole, int64_t *last,
    struct el_why *w)
{
	char *buf;
	int64_t from, n, end, start, i;
	enum el_err r = EL_OK;

	*whole = 0;
	*last = 0;
	if (size == 0)
		return EL_OK;
	if ((buf = malloc(2 * LINE_MAX_BYTES)) == NULL)
		return EL_ENOMEM;
	from = size > 2 * LINE_MAX_BYTES ? size - 2 * LINE_MAX_BYTES : 0;
	if ((n = pread_full(fd, buf, (size_t)(size - from), from)) != size - from) {
		r = el_fail(w, EL_EIO, "%s: cannot read: %s", path, strerror(errno));
		goto out;
	}
	/* the end of the last whole line */
	for (end = n; end > 0 && buf[end - 1] != '\n'; end--)
		;
	if (end == 0 && from > 0) {
		r = el_fail(w, EL_EPARSE, "%s: its last %lld bytes hold no line end: not an audit "
		    "export; move it aside", path, (long long)n);
		goto out;
	}
	*whole = from + end;
	/* the last whole line that is not blank */
	while (end > 0) {
		for (start = end - 1; start > 0 && buf[start - 1] != '\n'; start--)
			;
		for (i = start; i < end - 1 && buf[i] == ' '; i++)
			;
		if (end - 1 > i) {
			if ((*last = line_seq(buf + start, (size_t)(end - 1 - start), NULL)) == 0)
				r = el_fail(w, EL_EPARSE, "%s: its last line is not an audit record "
				    "(edited?): move the file aside, then `elevated audit-export` "
				    "rewrites it from the store", path);
			break;
		}
		end = start;
	}
out:
	free(buf);
	return r;
}

/* The first record of the file: its seq and time (0 when the file has none). */
static void
scan_head(int fd, int64_t size, int64_t *seq, int64_t *t)
{
	char *buf;
	ssize_t n;
	char *nl;

	*seq = *t = 0;
	if (size == 0 || (buf = malloc(LINE_MAX_BYTES)) == NULL)
		return;
	n = pread_full(fd, buf, size < LINE_MAX_BYTES ? (size_t)size : LINE_MAX_BYTES, 0);
	if (n > 0 && (nl = memchr(buf, '\n', (size_t)n)) != NULL)
		*seq = line_seq(buf, (size_t)(nl - buf), t);
	free(buf);
}

/* The last seq of the newest rotated sibling of path (0: none). */
static int64_t
rotated_last_seq(const char *path)
{
	char dir[PATH_MAX], base[PATH_MAX], best[PATH_MAX], full[PATH_MAX + 256];
	const char *ext, *bn;
	size_t stem, blen;
	long long s, top = 0;
	struct dirent *de;
	struct stat st;
	DIR *d;
	int fd;
	int64_t whole, last = 0;

	el_strlcpy(dir, path, sizeof(dir));
	el_strlcpy(base, path, sizeof(base));
	bn = basename(base);
	split_ext(bn, &stem, &ext);
	blen = stem;
	if ((d = opendir(dirname(dir))) == NULL)
		return 0;
	best[0] = '\0';
	while ((de = readdir(d)) != NULL) {
		const char *nm = de->d_name;
		size_t len = strlen(nm);

		if (len != blen + 1 + SEQ_DIGITS + strlen(ext) || strncmp(nm, bn, blen) != 0 ||
		    nm[blen] != '-' || strcmp(nm + blen + 1 + SEQ_DIGITS, ext) != 0 ||
		    strspn(nm + blen + 1, "0123456789") != SEQ_DIGITS)
			continue;
		s = strtoll(nm + blen + 1, NULL, 10);
		if (s > top) {
			top = s;
			el_strlcpy(best, nm, sizeof(best));
		}
	}
	closedir(d);
	if (best[0] == '\0')
		return 0;
	snprintf(full, sizeof(full), "%s/%s", dir, best);
	if ((fd = open(full, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	if (fstat(fd, &st) == 0)
		(void)scan_tail(fd, full, st.st_size, &whole, &last, NULL);
	close(fd);
	return last;
}

void
audit_out_close(struct audit_out *o)
{
	if (o->fd >= 0)
		close(o->fd);
	o->fd = -1;
}

enum el_err
audit_out_open(struct audit_out *o, const char *path, int64_t rotate_bytes,
    int64_t rotate_age, struct el_why *w)
{
	struct stat st;
	int64_t whole, last;
	enum el_err r;

	if (o->path == NULL || strcmp(o->path, path) != 0) {
		free(o->path);
		if ((o->path = strdup(path)) == NULL)
			return EL_ENOMEM;
	}
	audit_out_close(o);
	o->rotate_bytes = rotate_bytes;
	o->rotate_age = rotate_age;
	o->torn_bytes = 0;
	o->fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (o->fd < 0)
		return el_fail(w, EL_EIO, "cannot open %s: %s", path, strerror(errno));
	/* It holds users, reasons and access key ids: the owner's only. */
	if (fstat(o->fd, &st) != 0) {
		r = el_fail(w, EL_EIO, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		/* a device or a pipe (/dev/full, a FIFO to a collector): append, nothing more */
		o->size = o->synced = 0;
		o->first_seq = o->first_time = o->last_seq = 0;
		o->regular = 0;
		return EL_OK;
	}
	o->regular = 1;
	if ((st.st_mode & 077) != 0 && fchmod(o->fd, 0600) != 0) {
		r = el_fail(w, EL_EIO, "cannot make %s 0600: %s", path, strerror(errno));
		goto fail;
	}
	if ((r = scan_tail(o->fd, path, st.st_size, &whole, &last, w)) != EL_OK)
		goto fail;
	if (whole < st.st_size) {
		if (ftruncate(o->fd, whole) != 0) {
			r = el_fail(w, EL_EIO, "%s: cannot cut its torn last line: %s", path,
			    strerror(errno));
			goto fail;
		}
		o->torn_bytes = st.st_size - whole;
	}
	o->size = o->synced = whole;
	scan_head(o->fd, whole, &o->first_seq, &o->first_time);
	o->last_seq = last > 0 ? last : rotated_last_seq(path);
	return EL_OK;
fail:
	audit_out_close(o);
	return r;
}

int
audit_out_rotate_due(const struct audit_out *o, int64_t now)
{
	return o->rotate_age > 0 && o->first_seq > 0 && o->first_time > 0 &&
	    now - o->first_time >= o->rotate_age;
}

static enum el_err
sync_dir(const char *path)
{
	char dir[PATH_MAX];
	int fd;
	enum el_err r = EL_OK;

	el_strlcpy(dir, path, sizeof(dir));
	if ((fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return EL_EIO;
	if (fsync(fd) != 0)
		r = EL_EIO;
	close(fd);
	return r;
}

enum el_err
audit_out_sync(struct audit_out *o, struct el_why *w)
{
	if (o->fd < 0)
		return el_fail(w, EL_EIO, "%s is not open", o->path ? o->path : "audit file");
	if (o->synced == o->size)
		return EL_OK;
	if (o->regular && fsync(o->fd) != 0)
		return el_fail(w, EL_EIO, "%s: fsync: %s", o->path, strerror(errno));
	o->synced = o->size;
	return EL_OK;
}

enum el_err
audit_out_rotate(struct audit_out *o, struct el_why *w)
{
	char to[PATH_MAX];
	enum el_err r;

	if (o->first_seq <= 0 || !o->regular)
		return EL_OK;   /* nothing to rotate */
	if (audit_rotated_name(o->path, o->first_seq, to, sizeof(to)) != EL_OK)
		return el_fail(w, EL_ETOOBIG, "%s: rotated name too long", o->path);
	if ((r = audit_out_sync(o, w)) != EL_OK)
		return r;
	if (access(to, F_OK) == 0)
		return el_fail(w, EL_EIO, "cannot rotate %s: %s exists already", o->path, to);
	if (rename(o->path, to) != 0)
		return el_fail(w, EL_EIO, "cannot rotate %s to %s: %s", o->path, to,
		    strerror(errno));
	if (sync_dir(o->path) != EL_OK)
		return el_fail(w, EL_EIO, "cannot rotate %s: fsync of its directory: %s",
		    o->path, strerror(errno));
	audit_out_close(o);
	o->fd = open(o->path, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (o->fd < 0)
		return el_fail(w, EL_EIO, "cannot open %s after rotating it: %s", o->path,
		    strerror(errno));
	o->size = o->synced = 0;
	o->first_seq = o->first_time = 0;
	return EL_OK;
}

/* Writes all of buf, or cuts the file back to its last whole line and fails. */
static enum el_err
write_line(struct audit_out *o, const char *buf, size_t len, struct el_why *w)
{
	size_t done = 0;
	ssize_t n;
	int err;

	while (done < len) {
		n = write(o->fd, buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = n < 0 ? errno : ENOSPC;
			/* A partial record must not stay: the next attempt writes it whole. */
			if (done > 0 && ftruncate(o->fd, o->size) != 0)
				audit_out_close(o);   /* reopening finds and cuts the torn line */
			return el_fail(w, EL_EIO, "cannot write %s: %s", o->path, strerror(err));
		}
		done += (size_t)n;
	}
	o->size += (int64_t)len;
	return EL_OK;
}

enum el_err
audit_out_write(struct audit_out *o, const char *line, size_t len, int64_t seq, int64_t time,
    struct el_why *w)
{
	char *buf;
	enum el_err r;

	if (o->fd < 0)
		return el_fail(w, EL_EIO, "%s is not open", o->path ? o->path : "audit file");
	if (o->regular && o->first_seq > 0 && ((o->rotate_bytes > 0 &&
	    o->size + (int64_t)len + 1 > o->rotate_bytes) || audit_out_rotate_due(o, time)) &&
	    (r = audit_out_rotate(o, w)) != EL_OK)
		return r;
	if ((buf = malloc(len + 1)) == NULL)
		return EL_ENOMEM;
	memcpy(buf, line, len);
	buf[len] = '\n';
	r = write_line(o, buf, len + 1, w);
	free(buf);
	if (r != EL_OK)
		return r;
	if (o->first_seq == 0) {
		o->first_seq = seq;
		o->first_time = time;
	}
	o->last_seq = seq;
	return EL_OK;
}

enum el_err
audit_export_to(struct store *s, int64_t from, const char *to, int64_t *n, struct el_why *w)
{
	struct store_audit_filter f;
	struct audit_out o;
	json_t *recs = NULL, *rec;
	size_t i;
	enum el_err r = EL_OK;

	*n = 0;
	memset(&o, 0, sizeof(o));
	o.path = (char *)(uintptr_t)to;
	o.fd = open(to, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (o.fd < 0)
		return el_fail(w, EL_EIO, "%s: %s%s", to, strerror(errno), errno == EEXIST ?
		    " (audit-export never overwrites a file)" : "");
	memset(&f, 0, sizeof(f));
	f.since_seq = from > 0 ? from - 1 : 0;
	for (;;) {
		f.limit = 1000;
		if ((r = store_audit_list(s, &f, &recs)) != EL_OK) {
			el_fail(w, r, "cannot read the audit chain: %s", store_errmsg());
			break;
		}
		if (json_array_size(recs) == 0) {
			json_decref(recs);
			break;
		}
		json_array_foreach(recs, i, rec) {
			char *line = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
			int64_t seq = json_integer_value(json_object_get(rec, "seq"));

			if (line == NULL) {
				r = EL_ENOMEM;
				break;
			}
			r = audit_out_write(&o, line, strlen(line), seq, 0, w);
			free(line);
			if (r != EL_OK)
				break;
			f.since_seq = seq;
			(*n)++;
		}
		json_decref(recs);
		recs = NULL;
		if (r != EL_OK)
			break;
	}
	if (r == EL_OK)
		r = audit_out_sync(&o, w);
	audit_out_close(&o);
	return r;
}
