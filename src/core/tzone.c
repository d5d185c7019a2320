/*
 * tzone.c — owns reading a compiled IANA zone file (TZif, RFC 8536: the version 2+ block
 * with 64-bit transition times) and the offset from UTC at a given instant. Past the last
 * transition the last local time type holds: Debian's zone files list transitions up to
 * 2037, and the POSIX rule in the footer (for later years) is not read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elevate/tzone.h"

#define TZIF_MAX (256 * 1024)
#define TZIF_HEADER 44

struct tzone {
	size_t n;                       /* transitions */
	int64_t *at;                    /* transition times, ascending */
	unsigned char *type;            /* local time type from each transition on */
	size_t ntypes;
	int32_t *utoff;                 /* per type */
	int32_t first;                  /* offset before the first transition */
};

static uint32_t
be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t
be64(const unsigned char *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static bool
name_ok(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > TZONE_NAME_MAX || s[0] == '/' || strstr(s, "..") != NULL)
		return false;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || strchr("_+-/", s[i]) != NULL))
			return false;
	return true;
}

/* The counts of a header at p: isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt. */
static void
counts(const unsigned char *p, uint32_t c[6])
{
	int i;

	for (i = 0; i < 6; i++)
		c[i] = be32(p + 20 + 4 * i);
}

/* Bytes of a data block with counts c and time size ts (4 or 8). */
static size_t
block_len(const uint32_t c[6], size_t ts)
{
	return (size_t)c[3] * ts + c[3] + (size_t)c[4] * 6 + c[5] + (size_t)c[2] * (ts + 4) +
	    c[1] + c[0];
}

static enum el_err
parse(const unsigned char *b, size_t len, struct tzone *z, const char *name,
    struct el_why *w)
{
	uint32_t c[6];
	const unsigned char *p;
	size_t i, need;

	if (len < TZIF_HEADER || memcmp(b, "TZif", 4) != 0)
		return el_fail(w, EL_EPARSE, "time zone %s: not a TZif file", name);
	if (b[4] < '2')
		return el_fail(w, EL_EPARSE, "time zone %s: a version 1 zone file (no 64-bit "
		    "times); install a current tzdata", name);
	counts(b, c);
	need = TZIF_HEADER + block_len(c, 4) + TZIF_HEADER;
	if (need > len)
		return el_fail(w, EL_EPARSE, "time zone %s: truncated zone file", name);
	p = b + TZIF_HEADER + block_len(c, 4);       /* the version 2 header */
	if (memcmp(p, "TZif", 4) != 0)
		return el_fail(w, EL_EPARSE, "time zone %s: damaged zone file", name);
	counts(p, c);
	if (c[4] == 0 || c[4] > 256 || c[3] > 100000 ||
	    (size_t)(p - b) + TZIF_HEADER + block_len(c, 8) > len)
		return el_fail(w, EL_EPARSE, "time zone %s: damaged zone file", name);
	p += TZIF_HEADER;
	z->n = c[3];
	z->ntypes = c[4];
	if ((z->at = calloc(z->n + 1, sizeof(*z->at))) == NULL ||
	    (z->type = calloc(z->n + 1, 1)) == NULL ||
	    (z->utoff = calloc(z->ntypes, sizeof(*z->utoff))) == NULL)
		return el_fail(w, EL_ENOMEM, "out of memory");
	for (i = 0; i < z->n; i++, p += 8)
		z->at[i] = be64(p);
	for (i = 0; i < z->n; i++, p++) {
		if (*p >= z->ntypes)
			return el_fail(w, EL_EPARSE, "time zone %s: damaged zone file", name);
		z->type[i] = *p;
	}
	for (i = 0; i < z->ntypes; i++, p += 6)
		z->utoff[i] = (int32_t)be32(p);
	for (i = 1; i < z->n; i++)
		if (z->at[i] <= z->at[i - 1])
			return el_fail(w, EL_EPARSE, "time zone %s: damaged zone file", name);
	z->first = z->utoff[0];
	return EL_OK;
}

enum el_err
tzone_load(const char *dir, const char *name, struct tzone **out, struct el_why *w)
{
	char path[512];
	unsigned char *buf;
	struct tzone *z;
	size_t len = 0;
	FILE *f;
	enum el_err r;

	*out = NULL;
	if (!name_ok(name))
		return el_fail(w, EL_EINVAL, "\"%s\" is not a time zone name (like Asia/Tokyo)",
		    name);
	snprintf(path, sizeof(path), "%s/%s", dir != NULL ? dir : TZONE_DIR, name);
	if ((f = fopen(path, "rb")) == NULL)
		return el_fail(w, EL_ENOENT, "unknown time zone %s (no %s; names are like "
		    "Asia/Tokyo or UTC, and the tzdata package provides them)", name, path);
	if ((buf = malloc(TZIF_MAX)) == NULL) {
		fclose(f);
		return el_fail(w, EL_ENOMEM, "out of memory");
	}
	len = fread(buf, 1, TZIF_MAX, f);
	fclose(f);
	if ((z = calloc(1, sizeof(*z))) == NULL) {
		free(buf);
		return el_fail(w, EL_ENOMEM, "out of memory");
	}
	if ((r = parse(buf, len, z, name, w)) != EL_OK) {
		tzone_free(z);
		z = NULL;
	}
	free(buf);
	*out = z;
	return r;
}

void
tzone_free(struct tzone *z)
{
	if (z == NULL)
		return;
	free(z->at);
	free(z->type);
	free(z->utoff);
	free(z);
}

void
tzone_local(const struct tzone *z, int64_t t, struct tm *out, int32_t *utoff)
{
	size_t lo = 0, hi = z->n;
	int32_t off = z->first;
	time_t local;

	/* the last transition at or before t */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (z->at[mid] <= t)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo > 0)
		off = z->utoff[z->type[lo - 1]];
	local = (time_t)(t + off);
	gmtime_r(&local, out);
	if (utoff != NULL)
		*utoff = off;
}
