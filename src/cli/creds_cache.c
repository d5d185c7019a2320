/*
 * creds_cache.c — owns the CLI's credential cache: one 0600 file per request in a 0700
 * directory, reused until shortly before the credentials expire or the window ends, and
 * the profile -> request choice. Needs no network and no key, so `elevate creds` from
 * the cache (quick.c) loads neither libcurl nor the user's key.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "elevate/el.h"
#include "api.h"
#include "creds_cache.h"
#include "output.h"

#define CACHE_FILE_MAX (64 * 1024)
#define CACHE_PRUNE_AGE (24 * 3600)      /* stale cache files older than this are removed */

void
creds_wipe(json_t *creds)
{
	static const char *const keys[] = {"AccessKeyId", "SecretAccessKey", "SessionToken"};
	json_t *v;
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (json_is_string(v = json_object_get(creds, keys[i])))
			/* jansson owns this heap buffer; zero it before json_decref frees it */
			sodium_memzero((void *)(uintptr_t)json_string_value(v),
			    json_string_length(v));
}

int
creds_valid(const json_t *c, int64_t *exp)
{
	return json_is_object(c) && output_int(c, "Version", 0) == 1 &&
	    output_str(c, "AccessKeyId") != NULL && output_str(c, "SecretAccessKey") != NULL &&
	    output_str(c, "SessionToken") != NULL && (*exp = output_time(c, "Expiration")) > 0;
}

static int
safe_name(const char *s)
{
	size_t n;

	if (s == NULL || *s == '\0' || *s == '.')
		return 0;
	for (n = 0; s[n] != '\0'; n++)
		if (!((s[n] >= 'A' && s[n] <= 'Z') || (s[n] >= 'a' && s[n] <= 'z') ||
		    (s[n] >= '0' && s[n] <= '9') || s[n] == '.' || s[n] == '_' || s[n] == '-'))
			return 0;
	return n <= NAME_MAX_LEN;
}

int
creds_cache_dir(char *buf, size_t len)
{
	const char *e, *h;
	struct stat st;
	int n;

	if ((e = getenv("ELEVATE_CACHE_DIR")) != NULL && *e != '\0')
		n = snprintf(buf, len, "%s", e);
	else if ((e = getenv("XDG_CACHE_HOME")) != NULL && *e == '/')
		n = snprintf(buf, len, "%s/elevate", e);
	else if ((h = getenv("HOME")) != NULL && *h == '/')
		n = snprintf(buf, len, "%s/.cache/elevate", h);
	else
		return -1;
	if (n < 0 || (size_t)n >= len - NAME_MAX_LEN - 32)
		return -1;
	if (el_mkdirs(buf, 0700) != EL_OK || lstat(buf, &st) != 0 || !S_ISDIR(st.st_mode) ||
	    st.st_uid != geteuid())
		return -1;
	if ((st.st_mode & 077) != 0 && chmod(buf, 0700) != 0)
		return -1;
	return 0;
}

/* Reads a cache file that is ours and private; NULL otherwise. New reference. */
static json_t *
cache_load(const char *path)
{
	struct stat st;
	struct dbuf b;
	char chunk[4096];
	json_t *j = NULL;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return NULL;
	dbuf_init(&b, CACHE_FILE_MAX);
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 077) != 0)
		goto out;
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || dbuf_add(&b, chunk, (size_t)n) != EL_OK)
			break;
	}
	if (n == 0 && b.len > 0)
		j = json_loadb(b.p, b.len, 0, NULL);
	if (!json_is_object(j)) {
		json_decref(j);
		j = NULL;
	}
out:
	sodium_memzero(chunk, sizeof(chunk));
	dbuf_free_secret(&b);
	close(fd);
	return j;
}

static int
dump_cb(const char *buf, size_t size, void *arg)
{
	return dbuf_add(arg, buf, size) == EL_OK ? 0 : -1;
}

static void
cache_store(const char *path, const json_t *j)
{
	struct dbuf b;

	dbuf_init(&b, CACHE_FILE_MAX);
	if (json_dump_callback(j, dump_cb, &b, JSON_COMPACT) == 0)
		(void)el_write_file(path, b.p, b.len, 0600, NULL);   /* a cache: best effort */
	dbuf_free_secret(&b);
}

/* Removes our cache files nobody has rewritten for a day: their credentials are dead. */
static void
cache_prune(const char *dir)
{
	char path[PATH_MAX];
	struct dirent *d;
	struct stat st;
	DIR *dp;
	int64_t now = el_now();

	if ((dp = opendir(dir)) == NULL)
		return;
	while ((d = readdir(dp)) != NULL) {
		if (strncmp(d->d_name, "creds-", 6) != 0 && strncmp(d->d_name, "profile-", 8) != 0)
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, d->d_name) >= sizeof(path))
			continue;
		if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
		    now - (int64_t)st.st_mtime > CACHE_PRUNE_AGE)
			unlink(path);
	}
	closedir(dp);
}

/* The cached entry is for this broker and user and still good for CACHE_MARGIN s. */
static int
entry_fresh(const json_t *j, const struct api_conf *c)
{
	const char *s = output_str(j, "server"), *u = output_str(j, "user");

	return s != NULL && u != NULL && strcmp(s, c->server) == 0 &&
	    strcmp(u, c->user) == 0 && output_int(j, "valid_until", 0) > el_now();
}

/* From the cache: on success *creds (new ref) and region filled, returns 0. */
static int
cache_get_creds(const struct api_conf *c, const char *dir, const char *id, json_t **creds,
    char *region, size_t regionlen, int64_t *until)
{
	char path[PATH_MAX];
	json_t *j;
	int64_t exp;
	const char *r, *cid;

	if (dir == NULL ||
	    (size_t)snprintf(path, sizeof(path), "%s/creds-%s.json", dir, id) >= sizeof(path) ||
	    (j = cache_load(path)) == NULL)
		return -1;
	cid = output_str(j, "request_id");
	if (!entry_fresh(j, c) || cid == NULL || strcmp(cid, id) != 0 ||
	    !creds_valid(json_object_get(j, "credentials"), &exp) ||
	    exp - CACHE_MARGIN <= el_now()) {
		creds_wipe(json_object_get(j, "credentials"));
		json_decref(j);
		return -1;
	}
	*creds = json_incref(json_object_get(j, "credentials"));
	*until = output_int(j, "valid_until", 0);
	r = output_str(j, "region");
	el_strlcpy(region, r != NULL ? r : "", regionlen);
	json_decref(j);
	return 0;
}

/* The request id cached for profile, when its credentials are still good. */
static int
cache_get_profile(const struct api_conf *c, const char *dir, const char *profile, char *id,
    size_t idlen)
{
	char path[PATH_MAX];
	const char *cid;
	json_t *j;
	int rc = -1;

	if (dir == NULL || !safe_name(profile) ||
	    (size_t)snprintf(path, sizeof(path), "%s/profile-%s.json", dir, profile) >=
	    sizeof(path) || (j = cache_load(path)) == NULL)
		return -1;
	cid = output_str(j, "request_id");
	if (entry_fresh(j, c) && cid != NULL && api_valid_id(cid)) {
		el_strlcpy(id, cid, idlen);
		rc = 0;
	}
	json_decref(j);
	return rc;
}

void
creds_cache_put_profile(const struct api_conf *c, const char *dir, const char *profile,
    const char *id, int64_t until)
{
	char path[PATH_MAX];
	json_t *j;

	if (dir == NULL || profile == NULL || !safe_name(profile))
		return;
	j = json_pack("{s:s, s:s, s:s, s:I}", "server", c->server, "user", c->user,
	    "request_id", id, "valid_until", (json_int_t)until);
	if (j != NULL &&
	    (size_t)snprintf(path, sizeof(path), "%s/profile-%s.json", dir, profile) <
	    sizeof(path))
		cache_store(path, j);
	json_decref(j);
}

void
creds_cache_put(const struct api_conf *c, const char *dir, const json_t *req, json_t *creds,
    const char *profile)
{
	char path[PATH_MAX];
	const char *id = output_str(req, "id"), *region = output_str(req, "region");
	int64_t exp = 0, until, wend = output_time(req, "window_end");
	json_t *j;

	if (dir == NULL || id == NULL || !api_valid_id(id) || !creds_valid(creds, &exp))
		return;
	until = exp;
	if (wend > 0 && wend < until)
		until = wend;
	until -= CACHE_MARGIN;
	if (until <= el_now())
		return;
	cache_prune(dir);
	j = json_pack("{s:s, s:s, s:s, s:s?, s:I, s:O}", "server", c->server, "user",
	    c->user, "request_id", id, "region", region, "valid_until", (json_int_t)until,
	    "credentials", creds);
	if (j != NULL &&
	    (size_t)snprintf(path, sizeof(path), "%s/creds-%s.json", dir, id) < sizeof(path))
		cache_store(path, j);
	json_decref(j);      /* creds itself is the caller's; only borrowed here */
	creds_cache_put_profile(c, dir, profile, id, until);
}

int
creds_cache_get(const struct api_conf *c, const char *dir, const char *id,
    const char *profile, json_t **creds, char *region, size_t regionlen, char *req_id,
    size_t req_idlen, int64_t *until)
{
	char cid[72];

	if (id != NULL)
		el_strlcpy(cid, id, sizeof(cid));
	else if (cache_get_profile(c, dir, profile, cid, sizeof(cid)) != 0)
		return -1;
	if (cache_get_creds(c, dir, cid, creds, region, regionlen, until) != 0)
		return -1;
	el_strlcpy(req_id, cid, req_idlen);
	return 0;
}

void
creds_forget(const char *id)
{
	char dir[PATH_MAX], path[PATH_MAX];
	struct dirent *d;
	const char *cid;
	json_t *j;
	DIR *dp;

	if (!api_valid_id(id) || creds_cache_dir(dir, sizeof(dir)) != 0)
		return;
	if ((size_t)snprintf(path, sizeof(path), "%s/creds-%s.json", dir, id) < sizeof(path))
		unlink(path);
	if ((dp = opendir(dir)) == NULL)
		return;
	while ((d = readdir(dp)) != NULL) {
		if (strncmp(d->d_name, "profile-", 8) != 0 ||
		    (size_t)snprintf(path, sizeof(path), "%s/%s", dir, d->d_name) >= sizeof(path) ||
		    (j = cache_load(path)) == NULL)
			continue;
		if ((cid = output_str(j, "request_id")) != NULL && strcmp(cid, id) == 0)
			unlink(path);
		json_decref(j);
	}
	closedir(dp);
}
