/*
 * cmd_creds.c — `elevate creds`: prints a grant's credentials as AWS credential_process
 * JSON. Owns fetching credentials for the CLI (also used by `exec`) and their local
 * cache: one 0600 file per request in a 0700 directory, reused until shortly before
 * the credentials expire or the window ends, plus the profile -> request choice, and
 * putting them into the environment (`exec`, `ssm`). Never writes a secret to stderr.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
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
#include "commands.h"
#include "output.h"

#define CACHE_MARGIN 60                  /* s before expiry when cached creds are refetched */
#define CACHE_FILE_MAX (64 * 1024)
#define CACHE_PRUNE_AGE (24 * 3600)      /* stale cache files older than this are removed */
#define NAME_MAX_LEN 100

static int creds_run(int, char **);

const struct cli_cmd cmd_creds = {
	.name = "creds",
	.usage = "elevate creds ID | elevate creds --profile PROFILE",
	.summary = "print a grant's credentials for the AWS CLI (credential_process)",
	.run = creds_run,
};

static void
creds_help(void)
{
	printf("usage: %s\n\n"
	    "Prints the credentials of your active grant ID as credential_process JSON\n"
	    "({\"Version\": 1, \"AccessKeyId\", ...}). With --profile, uses your active grant\n"
	    "of PROFILE with the latest end. For ~/.aws/config:\n\n"
	    "    [profile elevate-prod-readonly]\n"
	    "    credential_process = elevate creds --profile prod-readonly\n\n"
	    "Credentials are cached (mode 0600) in $ELEVATE_CACHE_DIR, else\n"
	    "$XDG_CACHE_HOME/elevate, else ~/.cache/elevate, until %d s before they expire\n"
	    "or the window ends. Errors go to stderr with a non-zero exit: %d when there\n"
	    "is no active grant, %d when the request is not active.\n",
	    cmd_creds.usage, CACHE_MARGIN, CLI_NOTFOUND, CLI_REFUSED);
}

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
creds_setenv(const json_t *creds, const char *region, const char *req_id)
{
	static const char *const drop[] = {
		"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SECURITY_TOKEN",
	};
	size_t i;

	for (i = 0; i < sizeof(drop) / sizeof(drop[0]); i++)
		if (unsetenv(drop[i]) != 0)
			return -1;
	if (setenv("AWS_ACCESS_KEY_ID", output_str(creds, "AccessKeyId"), 1) != 0 ||
	    setenv("AWS_SECRET_ACCESS_KEY", output_str(creds, "SecretAccessKey"), 1) != 0 ||
	    setenv("AWS_SESSION_TOKEN", output_str(creds, "SessionToken"), 1) != 0)
		return -1;
	if (req_id != NULL &&
	    (setenv("AWS_CREDENTIAL_EXPIRATION", output_str(creds, "Expiration"), 1) != 0 ||
	    setenv("ELEVATE_REQUEST_ID", req_id, 1) != 0))
		return -1;
	if (region[0] != '\0' && (setenv("AWS_REGION", region, 1) != 0 ||
	    setenv("AWS_DEFAULT_REGION", region, 1) != 0))
		return -1;
	return 0;
}

/* A credential_process object we can hand out; *exp gets Expiration. */
static int
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

/*
 * The cache directory, created 0700 and checked to be ours and closed; 0 when it can be
 * used, -1 when credentials are simply not cached.
 */
static int
cache_dir(char *buf, size_t len)
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
entry_fresh(const json_t *j, const struct api *a)
{
	const char *s = output_str(j, "server"), *u = output_str(j, "user");

	return s != NULL && u != NULL && strcmp(s, api_server(a)) == 0 &&
	    strcmp(u, api_user(a)) == 0 && output_int(j, "valid_until", 0) > el_now();
}

/* From the cache: on success *creds (new ref) and region filled, returns 0. */
static int
cache_get_creds(const struct api *a, const char *dir, const char *id, json_t **creds,
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
	if (!entry_fresh(j, a) || cid == NULL || strcmp(cid, id) != 0 ||
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
cache_get_profile(const struct api *a, const char *dir, const char *profile, char *id,
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
	if (entry_fresh(j, a) && cid != NULL && api_valid_id(cid)) {
		el_strlcpy(id, cid, idlen);
		rc = 0;
	}
	json_decref(j);
	return rc;
}

/* Remembers that profile means request id until "until". */
static void
cache_put_profile(const struct api *a, const char *dir, const char *profile, const char *id,
    int64_t until)
{
	char path[PATH_MAX];
	json_t *j;

	if (dir == NULL || profile == NULL || !safe_name(profile))
		return;
	j = json_pack("{s:s, s:s, s:s, s:I}", "server", api_server(a), "user", api_user(a),
	    "request_id", id, "valid_until", (json_int_t)until);
	if (j != NULL &&
	    (size_t)snprintf(path, sizeof(path), "%s/profile-%s.json", dir, profile) <
	    sizeof(path))
		cache_store(path, j);
	json_decref(j);
}

/*
 * Caches fresh credentials of request req (and the profile choice) until CACHE_MARGIN s
 * before they expire or the window ends, whichever is first.
 */
static void
cache_put(const struct api *a, const char *dir, const json_t *req, json_t *creds,
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
	j = json_pack("{s:s, s:s, s:s, s:s?, s:I, s:O}", "server", api_server(a), "user",
	    api_user(a), "request_id", id, "region", region, "valid_until", (json_int_t)until,
	    "credentials", creds);
	if (j != NULL &&
	    (size_t)snprintf(path, sizeof(path), "%s/creds-%s.json", dir, id) < sizeof(path))
		cache_store(path, j);
	json_decref(j);      /* creds itself is the caller's; only borrowed here */
	cache_put_profile(a, dir, profile, id, until);
}

/* A pending request of the caller for profile, to mention when there is no grant. */
static void
mention_pending(struct api *a, const char *profile)
{
	struct api_error e;
	json_t *res = NULL, *r;
	const char *p, *id;
	size_t i;

	if (api_call(a, "GET", "/v1/requests?state=pending&mine=1", NULL, &res, &e) != CLI_OK)
		return;
	json_array_foreach(json_object_get(res, "requests"), i, r) {
		p = output_str(r, "profile");
		id = output_str(r, "id");
		if (p != NULL && id != NULL && strcmp(p, profile) == 0) {
			output_err("your request %s for %s is still pending:", id, profile);
			status_next(r, stderr);
			break;
		}
	}
	json_decref(res);
}

/* The caller's active grant of profile with the latest window end; new reference. */
static int
find_grant(struct api *a, const char *profile, json_t **out)
{
	json_t *res = NULL, *r, *best = NULL;
	int64_t best_end = -1, end;
	const char *p;
	size_t i;
	int rc;

	*out = NULL;
	if ((rc = api_do(a, "GET", "/v1/requests?state=active&mine=1", NULL, &res)) != CLI_OK)
		return rc;
	json_array_foreach(json_object_get(res, "requests"), i, r) {
		p = output_str(r, "profile");
		if (p == NULL || strcmp(p, profile) != 0 || !api_valid_id(output_str(r, "id")))
			continue;
		end = output_time(r, "window_end");
		if (best == NULL || end > best_end) {
			best = r;
			best_end = end;
		}
	}
	if (best == NULL) {
		output_err("no active grant for %s: run elevate request %s --for 15m --reason ...",
		    profile, profile);
		mention_pending(a, profile);
		json_decref(res);
		return CLI_NOTFOUND;
	}
	*out = json_incref(best);
	json_decref(res);
	return CLI_OK;
}

int
creds_get(struct api *a, const char *id, const char *profile, json_t **creds, char *region,
    size_t regionlen, char *req_id, size_t req_idlen)
{
	char dirbuf[PATH_MAX], path[128], cid[72];
	const char *dir = NULL, *st;
	json_t *req = NULL, *c = NULL;
	int64_t exp, until;
	int rc;

	*creds = NULL;
	region[0] = '\0';
	if (cache_dir(dirbuf, sizeof(dirbuf)) == 0)
		dir = dirbuf;
	if (id != NULL)
		el_strlcpy(cid, id, sizeof(cid));
	else if (cache_get_profile(a, dir, profile, cid, sizeof(cid)) != 0)
		cid[0] = '\0';
	if (cid[0] != '\0' &&
	    cache_get_creds(a, dir, cid, creds, region, regionlen, &until) == 0) {
		el_strlcpy(req_id, cid, req_idlen);
		return CLI_OK;
	}
	if (id == NULL) {
		if ((rc = find_grant(a, profile, &req)) != CLI_OK)
			return rc;
		el_strlcpy(cid, output_str(req, "id"), sizeof(cid));
		/* `creds ID` may have cached this grant already */
		if (cache_get_creds(a, dir, cid, creds, region, regionlen, &until) == 0) {
			cache_put_profile(a, dir, profile, cid, until);
			el_strlcpy(req_id, cid, req_idlen);
			json_decref(req);
			return CLI_OK;
		}
	} else {
		snprintf(path, sizeof(path), "/v1/requests/%s", cid);
		if ((rc = api_do(a, "GET", path, NULL, &req)) != CLI_OK)
			return rc;
		st = output_str(req, "state");
		if (st == NULL || strcmp(st, "active") != 0) {
			output_err("%s is %s: it has no credentials to give", cid,
			    st != NULL ? st : "in an unknown state");
			status_next(req, stderr);
			json_decref(req);
			return CLI_REFUSED;
		}
	}
	snprintf(path, sizeof(path), "/v1/requests/%s/credentials", cid);
	if ((rc = api_do(a, "GET", path, NULL, &c)) != CLI_OK)
		goto out;
	if (!creds_valid(c, &exp)) {
		/* say nothing of the content: it may hold a secret */
		output_err("the broker's credentials for %s are not credential_process JSON", cid);
		rc = CLI_ERR;
		goto out;
	}
	cache_put(a, dir, req, c, id == NULL ? profile : NULL);
	el_strlcpy(region, output_str(req, "region") ? output_str(req, "region") : "",
	    regionlen);
	el_strlcpy(req_id, cid, req_idlen);
	*creds = c;
	c = NULL;
out:
	if (c != NULL) {
		creds_wipe(c);
		json_decref(c);
	}
	json_decref(req);
	return rc;
}

void
creds_forget(const char *id)
{
	char dir[PATH_MAX], path[PATH_MAX];
	struct dirent *d;
	const char *cid;
	json_t *j;
	DIR *dp;

	if (!api_valid_id(id) || cache_dir(dir, sizeof(dir)) != 0)
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

static int
creds_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{"profile", required_argument, NULL, 'p'},
		{"json", no_argument, NULL, 'J'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *profile = NULL, *id = NULL;
	char region[64], rid[72];
	struct api *a = NULL;
	json_t *c = NULL;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "p:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'p': profile = optarg; break;
		case 'J': break;            /* the output is JSON already */
		case 'h': creds_help(); return CLI_OK;
		default: return output_usage(&cmd_creds, NULL);
		}
	}
	if (optind < argc)
		id = argv[optind++];
	if (optind != argc || (id == NULL) == (profile == NULL))
		return output_usage(&cmd_creds, "give a request ID or --profile PROFILE");
	if (id != NULL && !api_valid_id(id))
		return output_usage(&cmd_creds, "not a request id: \"%s\"", id);
	if (profile != NULL && (*profile == '\0' || strlen(profile) > NAME_MAX_LEN))
		return output_usage(&cmd_creds, "not a profile name: \"%s\"", profile);
	if ((rc = api_open(&a)) != CLI_OK)
		return rc;
	if ((rc = creds_get(a, id, profile, &c, region, sizeof(region), rid,
	    sizeof(rid))) != CLI_OK)
		goto out;
	if (json_dumpf(c, stdout, JSON_COMPACT) != 0 || fputc('\n', stdout) == EOF ||
	    fflush(stdout) != 0) {
		output_err("cannot write to stdout");
		rc = CLI_ERR;
	}
out:
	if (c != NULL) {
		creds_wipe(c);
		json_decref(c);
	}
	api_close(a);
	return rc;
}
