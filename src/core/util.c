/*
 * util.c — owns the shared helpers declared in el.h: error strings, bounded buffers,
 * durations, times, base64/hex, whole-file I/O and random ids.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <jansson.h>

#include "elevate/el.h"

static const char *const el_errs[EL__MAX] = {
	[EL_OK] = "ok",
	[EL_ENOMEM] = "out of memory",
	[EL_EINVAL] = "invalid input",
	[EL_ENOENT] = "not found",
	[EL_EEXIST] = "already exists",
	[EL_EPERM] = "not allowed",
	[EL_ESTATE] = "wrong state",
	[EL_ETOOBIG] = "too large",
	[EL_EIO] = "I/O error",
	[EL_EDB] = "store error",
	[EL_ECRYPTO] = "cryptographic failure",
	[EL_EAUTH] = "authentication failed",
	[EL_EPARSE] = "malformed document",
	[EL_ENET] = "network error",
	[EL_ETIMEOUT] = "timed out",
	[EL_EAWS] = "AWS error",
	[EL_ECONFIG] = "configuration error",
};

const char *
el_strerror(enum el_err e)
{
	if ((int)e < 0 || e >= EL__MAX || el_errs[e] == NULL)
		return "unknown error";
	return el_errs[e];
}

enum el_err
el_fail(struct el_why *w, enum el_err e, const char *fmt, ...)
{
	va_list ap;

	if (w != NULL) {
		va_start(ap, fmt);
		vsnprintf(w->msg, sizeof(w->msg), fmt, ap);
		va_end(ap);
	}
	return e;
}

void
dbuf_init(struct dbuf *b, size_t max)
{
	b->p = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

static enum el_err
dbuf_grow(struct dbuf *b, size_t need)
{
	size_t ncap;
	char *np;

	if (need > b->max || need + 1 < need)
		return EL_ETOOBIG;
	if (need + 1 <= b->cap)
		return EL_OK;
	ncap = b->cap ? b->cap : 256;
	while (ncap < need + 1)
		ncap *= 2;
	if (ncap > b->max + 1)
		ncap = b->max + 1;
	np = realloc(b->p, ncap);
	if (np == NULL)
		return EL_ENOMEM;
	b->p = np;
	b->cap = ncap;
	return EL_OK;
}

enum el_err
dbuf_add(struct dbuf *b, const void *data, size_t len)
{
	enum el_err r;

	if ((r = dbuf_grow(b, b->len + len)) != EL_OK)
		return r;
	if (len > 0)
		memcpy(b->p + b->len, data, len);
	b->len += len;
	b->p[b->len] = '\0';
	return EL_OK;
}

enum el_err
dbuf_adds(struct dbuf *b, const char *s)
{
	return dbuf_add(b, s, strlen(s));
}

enum el_err
dbuf_vprintf(struct dbuf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;
	enum el_err r;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return EL_EINVAL;
	if ((r = dbuf_grow(b, b->len + (size_t)n)) != EL_OK)
		return r;
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return EL_OK;
}

enum el_err
dbuf_printf(struct dbuf *b, const char *fmt, ...)
{
	va_list ap;
	enum el_err r;

	va_start(ap, fmt);
	r = dbuf_vprintf(b, fmt, ap);
	va_end(ap);
	return r;
}

void
dbuf_reset(struct dbuf *b)
{
	b->len = 0;
	if (b->p != NULL)
		b->p[0] = '\0';
}

void
dbuf_free(struct dbuf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

void
dbuf_free_secret(struct dbuf *b)
{
	if (b->p != NULL)
		sodium_memzero(b->p, b->cap);
	dbuf_free(b);
}

char *
dbuf_take(struct dbuf *b)
{
	char *p = b->p;

	if (p == NULL)
		p = strdup("");
	b->p = NULL;
	b->len = b->cap = 0;
	return p;
}

int64_t
el_backoff(int attempt, int64_t first, int64_t cap)
{
	int64_t d = first;
	int i;

	for (i = 1; i < attempt && d < cap; i++)
		d *= 2;
	return d < cap ? d : cap;
}

void
el_strv_free(char **v, size_t n)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

enum el_err
el_split_list(const char *s, char sep, size_t max, size_t item_max, char ***out, size_t *n,
    struct el_why *w)
{
	char **v;
	const char *p, *q;
	size_t k = 0, i, len;

	*out = NULL;
	*n = 0;
	if ((v = calloc(max + 1, sizeof(*v))) == NULL)
		return el_fail(w, EL_ENOMEM, "out of memory");
	for (p = s;; p = q + 1) {
		if ((q = strchr(p, sep)) == NULL)
			q = p + strlen(p);
		len = (size_t)(q - p);
		if (len == 0) {
			el_strv_free(v, k);
			return el_fail(w, EL_EINVAL, "an empty name in \"%.64s\"", s);
		}
		if (len > item_max) {
			el_strv_free(v, k);
			return el_fail(w, EL_EINVAL, "\"%.*s\" is longer than %zu characters",
			    (int)(len > 64 ? 64 : len), p, item_max);
		}
		if (k == max) {
			el_strv_free(v, k);
			return el_fail(w, EL_EINVAL, "more than %zu names", max);
		}
		if ((v[k] = strndup(p, len)) == NULL) {
			el_strv_free(v, k);
			return el_fail(w, EL_ENOMEM, "out of memory");
		}
		for (i = 0; i < k; i++)
			if (strcmp(v[i], v[k]) == 0) {
				el_fail(w, EL_EINVAL, "%s is named twice", v[k]);
				el_strv_free(v, k + 1);
				return EL_EINVAL;
			}
		k++;
		if (*q == '\0')
			break;
	}
	*out = v;
	*n = k;
	return EL_OK;
}

int
el_utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0, need, k;
	unsigned long c;

	while (i < len) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if (s[i] >= 0xc2 && s[i] <= 0xdf) {
			need = 1;
			c = s[i] & 0x1f;
		} else if (s[i] >= 0xe0 && s[i] <= 0xef) {
			need = 2;
			c = s[i] & 0x0f;
		} else if (s[i] >= 0xf0 && s[i] <= 0xf4) {
			need = 3;
			c = s[i] & 0x07;
		} else
			return 0;
		if (i + need >= len)
			return 0;
		for (k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			c = (c << 6) | (s[i + k] & 0x3f);
		}
		if ((need == 2 && c < 0x800) || (need == 3 && c < 0x10000) || c > 0x10ffff ||
		    (c >= 0xd800 && c <= 0xdfff))
			return 0;
		i += need + 1;
	}
	return 1;
}

size_t
el_strlcpy(char *dst, const char *src, size_t dstsize)
{
	size_t n = strlen(src);

	if (dstsize > 0) {
		size_t c = n < dstsize - 1 ? n : dstsize - 1;
		memcpy(dst, src, c);
		dst[c] = '\0';
	}
	return n;
}

enum el_err
el_parse_int(const char *s, long long min, long long max, long long *out)
{
	char *end;
	long long v;

	if (s == NULL || !((*s >= '0' && *s <= '9') || *s == '-'))
		return EL_EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return EL_EINVAL;
	*out = v;
	return EL_OK;
}

enum el_err
el_parse_duration(const char *s, int64_t *secs)
{
	int64_t total = 0;
	const char *p = s;
	int seen = 0, last_rank = 5;

	if (s == NULL || *s == '\0' || strlen(s) > 32)
		return EL_EINVAL;
	while (*p != '\0') {
		int64_t v = 0, mult;
		int digits = 0, rank;

		while (*p >= '0' && *p <= '9') {
			v = v * 10 + (*p - '0');
			if (v > EL_DURATION_MAX)
				return EL_EINVAL;
			p++;
			digits++;
		}
		if (digits == 0)
			return EL_EINVAL;
		switch (*p) {
		case 'd': mult = 86400; rank = 4; p++; break;
		case 'h': mult = 3600; rank = 3; p++; break;
		case 'm': mult = 60; rank = 2; p++; break;
		case 's': mult = 1; rank = 1; p++; break;
		case '\0':
			if (seen)   /* "1h30" is ambiguous */
				return EL_EINVAL;
			mult = 1; rank = 0; break;
		default:
			return EL_EINVAL;
		}
		if (rank >= last_rank)   /* units must go from large to small, once each */
			return EL_EINVAL;
		last_rank = rank;
		total += v * mult;
		if (total > EL_DURATION_MAX)
			return EL_EINVAL;
		seen = 1;
	}
	if (total <= 0)
		return EL_EINVAL;
	*secs = total;
	return EL_OK;
}

void
el_format_duration(int64_t secs, char *buf, size_t len)
{
	char tmp[64];
	int n = 0;
	int64_t d = secs / 86400, h = (secs % 86400) / 3600, m = (secs % 3600) / 60,
	    s = secs % 60;

	tmp[0] = '\0';
	if (secs <= 0) {
		snprintf(buf, len, "0s");
		return;
	}
	if (d)
		n += snprintf(tmp + n, sizeof(tmp) - (size_t)n, "%lldd", (long long)d);
	if (h)
		n += snprintf(tmp + n, sizeof(tmp) - (size_t)n, "%lldh", (long long)h);
	if (m)
		n += snprintf(tmp + n, sizeof(tmp) - (size_t)n, "%lldm", (long long)m);
	if (s)
		snprintf(tmp + n, sizeof(tmp) - (size_t)n, "%llds", (long long)s);
	snprintf(buf, len, "%s", tmp);
}

int64_t
el_now(void)
{
	struct timespec ts;

	/* Not time(NULL): it reads a coarse clock that can still say the previous second a
	 * few ms after el_now_ms() (and the reaper's timed wake) has passed it, and a grant
	 * claimed at its window's end would then look revoked early. */
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec;
}

int64_t
el_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
el_format_time(int64_t t, char *buf, size_t len)
{
	struct tm tm;
	time_t tt = (time_t)t;

	gmtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

enum el_err
el_parse_time(const char *s, int64_t *t)
{
	struct tm tm;
	const char *p;
	time_t v;

	static const char shape[] = "dddd-dd-ddTdd:dd:dd";
	struct tm chk;
	size_t i;

	if (s == NULL || strlen(s) < sizeof(shape) - 1)
		return EL_EINVAL;
	for (i = 0; i < sizeof(shape) - 1; i++)
		if (shape[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != shape[i])
			return EL_EINVAL;
	memset(&tm, 0, sizeof(tm));
	p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (p == NULL)
		return EL_EINVAL;
	chk = tm;
	if (*p == '.') {
		p++;
		if (!(*p >= '0' && *p <= '9'))
			return EL_EINVAL;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (strcmp(p, "Z") != 0 && strcmp(p, "+00:00") != 0 && strcmp(p, "z") != 0)
		return EL_EINVAL;
	v = timegm(&tm);
	/* timegm normalises Feb 30 to Mar 2: refuse what does not come back unchanged. */
	if (tm.tm_mday != chk.tm_mday || tm.tm_mon != chk.tm_mon || tm.tm_hour != chk.tm_hour ||
	    tm.tm_min != chk.tm_min || tm.tm_sec != chk.tm_sec)
		return EL_EINVAL;
	*t = (int64_t)v;
	return EL_OK;
}

enum el_err
el_parse_time_offset(const char *s, int64_t *t)
{
	char utc[40];
	size_t n;
	int64_t v, off;
	const char *p;

	if (s == NULL || (n = strlen(s)) < 20 || n >= sizeof(utc))
		return EL_EINVAL;
	p = s + n - 6;
	if ((p[0] == '+' || p[0] == '-') && p[1] >= '0' && p[1] <= '2' && p[2] >= '0' &&
	    p[2] <= '9' && p[3] == ':' && p[4] >= '0' && p[4] <= '5' && p[5] >= '0' &&
	    p[5] <= '9') {
		off = ((p[1] - '0') * 10 + (p[2] - '0')) * 3600 + ((p[4] - '0') * 10 +
		    (p[5] - '0')) * 60;
		if (off > 24 * 3600)
			return EL_EINVAL;
		/* the same local time as UTC, then moved by the offset */
		memcpy(utc, s, n - 6);
		memcpy(utc + n - 6, "Z", 2);
		if (el_parse_time(utc, &v) != EL_OK)
			return EL_EINVAL;
		*t = p[0] == '-' ? v + off : v - off;
		return EL_OK;
	}
	return el_parse_time(s, t);
}

static char *
b64_encode(const unsigned char *in, size_t len, int variant)
{
	size_t n = sodium_base64_encoded_len(len, variant);
	char *out = malloc(n);

	if (out == NULL)
		return NULL;
	sodium_bin2base64(out, n, in, len, variant);
	return out;
}

char *
el_b64_encode(const unsigned char *in, size_t len)
{
	return b64_encode(in, len, sodium_base64_VARIANT_ORIGINAL);
}

char *
el_b64_encode_public(const unsigned char *in, size_t len)
{
	static const char abc[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out, *o;
	size_t i;
	uint32_t v;

	if (len > (SIZE_MAX - 1) / 4 * 3 - 3 || (out = malloc((len + 2) / 3 * 4 + 1)) == NULL)
		return NULL;
	o = out;
	for (i = 0; i + 3 <= len; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		*o++ = abc[v >> 18];
		*o++ = abc[v >> 12 & 63];
		*o++ = abc[v >> 6 & 63];
		*o++ = abc[v & 63];
	}
	if (i < len) {
		v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);
		*o++ = abc[v >> 18];
		*o++ = abc[v >> 12 & 63];
		*o++ = i + 1 < len ? abc[v >> 6 & 63] : '=';
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

char *
el_b64url_encode(const unsigned char *in, size_t len)
{
	return b64_encode(in, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static enum el_err
b64_decode(const char *in, unsigned char *out, size_t outcap, size_t *outlen, int variant)
{
	const char *end;
	size_t n;

	if (in == NULL)
		return EL_EINVAL;
	/* libsodium 1.0.18 decodes bytes >= 0x80 as '/' (signed char): refuse them first. */
	for (end = in; *end != '\0'; end++)
		if ((unsigned char)*end >= 0x80)
			return EL_EINVAL;
	if (sodium_base642bin(out, outcap, in, strlen(in), NULL, &n, &end, variant) != 0 ||
	    *end != '\0')
		return EL_EINVAL;
	*outlen = n;
	return EL_OK;
}

enum el_err
el_b64_decode(const char *in, unsigned char *out, size_t outcap, size_t *outlen)
{
	return b64_decode(in, out, outcap, outlen, sodium_base64_VARIANT_ORIGINAL);
}

enum el_err
el_b64url_decode(const char *in, unsigned char *out, size_t outcap, size_t *outlen)
{
	return b64_decode(in, out, outcap, outlen, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

int
el_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

void
el_hex(const unsigned char *in, size_t len, char *out)
{
	static const char hx[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = hx[in[i] >> 4];
		out[2 * i + 1] = hx[in[i] & 15];
	}
	out[2 * len] = '\0';
}

enum el_err
el_read_file(const char *path, size_t max, char **out, size_t *outlen, struct el_why *w)
{
	struct dbuf b;
	char chunk[8192];
	ssize_t n;
	int fd;
	enum el_err r = EL_OK;

	dbuf_init(&b, max);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return el_fail(w, errno == ENOENT ? EL_ENOENT : EL_EIO, "%s: %s", path,
		    strerror(errno));
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = el_fail(w, EL_EIO, "%s: %s", path, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		if (dbuf_add(&b, chunk, (size_t)n) != EL_OK) {
			r = el_fail(w, EL_ETOOBIG, "%s: larger than %zu bytes", path, max);
			break;
		}
	}
	close(fd);
	if (r != EL_OK) {
		dbuf_free(&b);
		return r;
	}
	if (outlen != NULL)
		*outlen = b.len;
	*out = dbuf_take(&b);
	return *out ? EL_OK : EL_ENOMEM;
}

void
el_password_free(char *p)
{
	if (p == NULL)
		return;
	sodium_memzero(p, strlen(p));
	free(p);
}

enum el_err
el_read_password_file(const char *path, const char *what, char **out, struct el_why *w)
{
	char buf[EL_PASSWORD_MAX + 2];
	struct stat st;
	size_t len = 0;
	ssize_t n;
	int fd;
	enum el_err r = EL_OK;

	*out = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return el_fail(w, errno == ENOENT ? EL_ENOENT : EL_EIO, "%s %s: %s",
		    what, path, strerror(errno));
	if (fstat(fd, &st) != 0) {
		r = el_fail(w, EL_EIO, "%s %s: %s", what, path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = el_fail(w, EL_ECONFIG, "%s %s: not a regular file", what, path);
		goto out;
	}
	if ((st.st_mode & 007) != 0) {
		r = el_fail(w, EL_ECONFIG, "%s %s: mode %03o lets every user read "
		    "it; run chmod 600 (or 640) on it", what, path, (unsigned)(st.st_mode & 0777));
		goto out;
	}
	while (len < sizeof(buf)) {
		n = read(fd, buf + len, sizeof(buf) - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = el_fail(w, EL_EIO, "%s %s: %s", what, path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	if (len > EL_PASSWORD_MAX) {
		r = el_fail(w, EL_ETOOBIG, "%s %s: longer than %d bytes", what, path,
		    EL_PASSWORD_MAX);
		goto out;
	}
	if (len == 0) {
		r = el_fail(w, EL_ECONFIG, "%s %s is empty", what, path);
		goto out;
	}
	if (memchr(buf, '\n', len) != NULL || memchr(buf, '\r', len) != NULL ||
	    memchr(buf, '\0', len) != NULL) {
		r = el_fail(w, EL_ECONFIG, "%s %s: more than one line", what, path);
		goto out;
	}
	if ((*out = malloc(len + 1)) == NULL) {
		r = EL_ENOMEM;
		goto out;
	}
	memcpy(*out, buf, len);
	(*out)[len] = '\0';
out:
	close(fd);
	sodium_memzero(buf, sizeof(buf));
	return r;
}

/* Writes all of data to fd and fsyncs it; -1 with errno on failure. */
static int
write_all_sync(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return fsync(fd);
}

enum el_err
el_write_file(const char *path, const void *data, size_t len, int mode, struct el_why *w)
{
	char tmp[PATH_MAX];
	int fd;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= sizeof(tmp))
		return el_fail(w, EL_EINVAL, "%s: path too long", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return el_fail(w, EL_EIO, "%s: %s", tmp, strerror(errno));
	if (fchmod(fd, (mode_t)mode) != 0 || write_all_sync(fd, data, len) != 0)
		goto fail;
	close(fd);
	if (rename(tmp, path) != 0) {
		unlink(tmp);
		return el_fail(w, EL_EIO, "%s: %s", path, strerror(errno));
	}
	return EL_OK;
fail:
	el_fail(w, EL_EIO, "%s: %s", tmp, strerror(errno));
	close(fd);
	unlink(tmp);
	return EL_EIO;
}

enum el_err
el_install_file(const char *path, const void *data, size_t len, int mode, int replace,
    struct el_why *w)
{
	char tmp[PATH_MAX];
	int fd, saved;
	enum el_err r = EL_OK;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.new.%ld", path, (long)getpid()) >= sizeof(tmp))
		return el_fail(w, EL_EINVAL, "%s: path too long", path);
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return el_fail(w, EL_EIO, "%s: %s", tmp, strerror(errno));
	if (fchmod(fd, (mode_t)mode) != 0 || write_all_sync(fd, data, len) != 0) {
		r = el_fail(w, EL_EIO, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	if ((replace ? rename(tmp, path) : link(tmp, path)) != 0) {
		saved = errno;
		r = el_fail(w, saved == EEXIST ? EL_EEXIST : EL_EIO, "%s: %s", path,
		    strerror(saved));
	}
out:
	close(fd);
	unlink(tmp);   /* after link(2) the file lives on under path; after rename(2) a no-op */
	return r;
}

enum el_err
el_mkdirs(const char *path, int mode)
{
	char buf[PATH_MAX];
	char *p;

	if (el_strlcpy(buf, path, sizeof(buf)) >= sizeof(buf))
		return EL_EINVAL;
	for (p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, (mode_t)mode) != 0 && errno != EEXIST)
			return EL_EIO;
		*p = '/';
	}
	if (mkdir(buf, (mode_t)mode) != 0 && errno != EEXIST)
		return EL_EIO;
	return EL_OK;
}

void
el_random_id(char *buf, size_t len, size_t nbytes)
{
	static const char alpha[] = "abcdefghijkmnpqrstuvwxyz23456789";   /* 32, no look-alikes */
	unsigned char r[64];
	size_t i;

	if (len == 0)
		return;
	/* One random byte a character, taken 64 at a time (a system call each): 32 divides
	 * 256, so the low 5 bits are uniform. */
	for (i = 0; i < nbytes && i + 1 < len; i++) {
		if (i % sizeof(r) == 0)
			randombytes_buf(r, sizeof(r));
		buf[i] = alpha[r[i % sizeof(r)] & 31];
	}
	sodium_memzero(r, sizeof(r));
	buf[i] = '\0';
}

/* jansson's free gets no size; glibc knows it. Blocks stay plain malloc blocks, so the
 * strings json_dumps returns may still be released with free(). */
static void
wipe_free(void *ptr)
{
	if (ptr == NULL)
		return;
	sodium_memzero(ptr, malloc_usable_size(ptr));
	free(ptr);
}

void
el_json_wipe_on_free(void)
{
	json_set_alloc_funcs(malloc, wipe_free);
}

struct json_t *
el_time_json(int64_t t)
{
	char buf[32];

	if (t <= 0)
		return json_null();
	el_format_time(t, buf, sizeof(buf));
	return json_string(buf);
}
