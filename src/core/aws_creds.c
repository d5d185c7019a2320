/*
 * aws_creds.c — owns AWS credential values (copy, wipe) and the broker's own credential
 * chain: environment, shared credentials/config files (static keys only), the container
 * provider, then IMDSv2 — and the client's cache of the result, refreshed ahead of
 * expiry. Secrets are never logged and are wiped before their memory is released.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "elevate/aws.h"
#include "elevate/aws_internal.h"
#include "elevate/el.h"
#include "elevate/log.h"

#define INI_MAX          (1024 * 1024)
#define CREDS_JSON_MAX   (64 * 1024)
#define IMDS_TIMEOUT_MS  1000
#define CONTAINER_TIMEOUT_MS 2000
#define REFETCH_MIN_S    15     /* do not hammer a provider that hands out short-lived keys */

/* ---------------------------------------------------------------- values */

static void
free_secret(char *s)
{
	if (s == NULL)
		return;
	sodium_memzero(s, strlen(s));
	free(s);
}

void
aws_creds_clear(struct aws_creds *c)
{
	if (c == NULL)
		return;
	free_secret(c->secret_access_key);
	free_secret(c->session_token);
	sodium_memzero(c, sizeof(*c));
}

enum el_err
aws_creds_set(struct aws_creds *c, const char *access_key_id, const char *secret_access_key,
    const char *session_token, int64_t expiration, const char *source)
{
	memset(c, 0, sizeof(*c));
	if (access_key_id == NULL || *access_key_id == '\0' ||
	    strlen(access_key_id) >= sizeof(c->access_key_id) ||
	    secret_access_key == NULL || *secret_access_key == '\0')
		return EL_EINVAL;
	el_strlcpy(c->access_key_id, access_key_id, sizeof(c->access_key_id));
	if ((c->secret_access_key = strdup(secret_access_key)) == NULL)
		goto nomem;
	if (session_token != NULL && *session_token != '\0' &&
	    (c->session_token = strdup(session_token)) == NULL)
		goto nomem;
	c->expiration = expiration;
	if (source != NULL)
		el_strlcpy(c->source, source, sizeof(c->source));
	return EL_OK;
nomem:
	aws_creds_clear(c);
	return EL_ENOMEM;
}

enum el_err
aws_creds_copy(struct aws_creds *dst, const struct aws_creds *src)
{
	return aws_creds_set(dst, src->access_key_id, src->secret_access_key,
	    src->session_token, src->expiration, src->source);
}

/* Wipes a jansson string in place before the document is released. */
static void
json_wipe(json_t *v)
{
	if (v != NULL && json_is_string(v))
		sodium_memzero((void *)(uintptr_t)json_string_value(v), json_string_length(v));
}

enum el_err
aws_parse_json_creds(const char *json, size_t len, const char *source, struct aws_creds *out,
    struct el_why *w)
{
	json_error_t je;
	json_t *j, *akid, *sk = NULL, *tok = NULL, *exp, *code;
	int64_t t = 0;
	enum el_err r;

	memset(out, 0, sizeof(*out));
	if (len > CREDS_JSON_MAX)
		return el_fail(w, EL_ETOOBIG, "%s: credentials document over %d bytes", source,
		    CREDS_JSON_MAX);
	if ((j = json_loadb(json, len, 0, &je)) == NULL)
		return el_fail(w, EL_EPARSE, "%s: credentials are not JSON: %s", source, je.text);
	if (!json_is_object(j)) {
		r = el_fail(w, EL_EPARSE, "%s: credentials are not a JSON object", source);
		goto out;
	}
	code = json_object_get(j, "Code");
	akid = json_object_get(j, "AccessKeyId");
	sk = json_object_get(j, "SecretAccessKey");
	tok = json_object_get(j, "Token");
	exp = json_object_get(j, "Expiration");
	if (code != NULL && (!json_is_string(code) ||
	    strcmp(json_string_value(code), "Success") != 0)) {
		r = el_fail(w, EL_EAUTH, "%s: credentials not available (Code %s)", source,
		    json_is_string(code) ? json_string_value(code) : "?");
		goto out;
	}
	if (!json_is_string(akid)) {
		r = el_fail(w, EL_EPARSE, "%s: response has no AccessKeyId", source);
		goto out;
	}
	if (!json_is_string(sk)) {
		r = el_fail(w, EL_EPARSE, "%s: response has no SecretAccessKey", source);
		goto out;
	}
	if (tok != NULL && !json_is_null(tok) && !json_is_string(tok)) {
		r = el_fail(w, EL_EPARSE, "%s: Token is not a string", source);
		goto out;
	}
	if (exp != NULL && !json_is_null(exp) && (!json_is_string(exp) ||
	    el_parse_time(json_string_value(exp), &t) != EL_OK)) {
		r = el_fail(w, EL_EPARSE, "%s: Expiration is not an ISO 8601 UTC time", source);
		goto out;
	}
	r = aws_creds_set(out, json_string_value(akid), json_string_value(sk),
	    json_is_string(tok) ? json_string_value(tok) : NULL, t, source);
	if (r == EL_EINVAL)
		r = el_fail(w, EL_EPARSE, "%s: empty or oversized AccessKeyId/SecretAccessKey",
		    source);
	else if (r != EL_OK)
		r = el_fail(w, r, "out of memory");
out:
	json_wipe(sk);
	json_wipe(tok);
	json_decref(j);
	return r;
}

/* ---------------------------------------------------------------- environment */

static const char *
env(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? v : NULL;
}

enum el_err
aws_creds_from_env(struct aws_creds *out, struct el_why *w)
{
	const char *akid = env("AWS_ACCESS_KEY_ID"), *sk = env("AWS_SECRET_ACCESS_KEY");
	enum el_err r;

	memset(out, 0, sizeof(*out));
	if (akid == NULL && sk == NULL)
		return el_fail(w, EL_ENOENT, "AWS_ACCESS_KEY_ID not set");
	if (akid == NULL)
		return el_fail(w, EL_ECONFIG, "AWS_SECRET_ACCESS_KEY is set but "
		    "AWS_ACCESS_KEY_ID is not");
	if (sk == NULL)
		return el_fail(w, EL_ECONFIG, "AWS_ACCESS_KEY_ID is set but "
		    "AWS_SECRET_ACCESS_KEY is not");
	if ((r = aws_creds_set(out, akid, sk, env("AWS_SESSION_TOKEN"), 0, "environment")) !=
	    EL_OK)
		return el_fail(w, r == EL_EINVAL ? EL_ECONFIG : r, "AWS_ACCESS_KEY_ID is %s",
		    r == EL_EINVAL ? "too long" : "unusable (out of memory)");
	return EL_OK;
}

/* ---------------------------------------------------------------- shared files */

struct ini_hit {
	int found;                      /* the section exists */
	char *akid, *secret, *token;
	char unsupported[64];           /* first key naming an unsupported credential kind */
};

static void
ini_hit_clear(struct ini_hit *h)
{
	free(h->akid);
	free_secret(h->secret);
	free_secret(h->token);
	memset(h, 0, sizeof(*h));
}

static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* Does section header text `name` (inside the brackets, trimmed) denote profile? */
static int
section_is(const char *name, const char *profile, int config_file)
{
	if (!config_file)
		return strcmp(name, profile) == 0;
	/* config file: "[profile NAME]"; the default profile may also be "[default]" */
	if (strcmp(profile, "default") == 0 && strcmp(name, "default") == 0)
		return 1;
	if (strncmp(name, "profile", 7) != 0 || (name[7] != ' ' && name[7] != '\t'))
		return 0;
	name += 7;
	while (*name == ' ' || *name == '\t')
		name++;
	return strcmp(name, profile) == 0;
}

static enum el_err
set_dup(char **dst, const char *v)
{
	char *n = strdup(v);

	if (n == NULL)
		return EL_ENOMEM;
	free_secret(*dst);
	*dst = n;
	return EL_OK;
}

/* Reads the section of `profile` from an INI file. EL_ENOENT: no such file. */
static enum el_err
ini_profile(const char *path, const char *profile, int config_file, struct ini_hit *hit,
    struct el_why *w)
{
	static const char *const unsupported[] = {
		"role_arn", "source_profile", "credential_source", "credential_process",
		"sso_session", "sso_start_url", "sso_account_id", "sso_role_name",
		"web_identity_token_file", "login_session",
	};
	char *buf = NULL, *line, *next, *eq, *key, *val, *k;
	size_t len = 0, i;
	int in = 0, indented;
	enum el_err r;

	if ((r = el_read_file(path, INI_MAX, &buf, &len, w)) != EL_OK)
		return r;
	for (line = buf; line != NULL && *line != '\0'; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		/* an indented line continues a nested block ("s3 =\n  key = v"): not ours */
		indented = *line == ' ' || *line == '\t';
		line = trim(line);
		if (*line == '\0' || *line == '#' || *line == ';')
			continue;
		if (*line == '[') {
			char *end = strrchr(line, ']');

			if (end == NULL) {
				in = 0;
				continue;
			}
			*end = '\0';
			in = section_is(trim(line + 1), profile, config_file);
			if (in)
				hit->found = 1;
			continue;
		}
		if (!in || indented || (eq = strchr(line, '=')) == NULL)
			continue;
		*eq = '\0';
		key = trim(line);
		val = trim(eq + 1);
		for (k = key; *k != '\0'; k++)
			*k = (char)tolower((unsigned char)*k);
		r = EL_OK;
		if (strcmp(key, "aws_access_key_id") == 0)
			r = set_dup(&hit->akid, val);
		else if (strcmp(key, "aws_secret_access_key") == 0)
			r = set_dup(&hit->secret, val);
		else if (strcmp(key, "aws_session_token") == 0 ||
		    (strcmp(key, "aws_security_token") == 0 && hit->token == NULL))
			r = set_dup(&hit->token, val);
		else if (hit->unsupported[0] == '\0') {
			for (i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++)
				if (strcmp(key, unsupported[i]) == 0)
					el_strlcpy(hit->unsupported, key,
					    sizeof(hit->unsupported));
		}
		if (r != EL_OK) {
			r = el_fail(w, r, "out of memory");
			goto out;
		}
	}
	r = EL_OK;
out:
	sodium_memzero(buf, len);
	free(buf);
	return r;
}

enum el_err
aws_creds_from_profile(const char *cred_file, const char *config_file, const char *profile,
    int is_explicit, struct aws_creds *out, struct el_why *w)
{
	struct ini_hit h[2];
	const char *paths[2] = {cred_file, config_file};
	const char *kinds[2] = {"shared-credentials-file", "shared-config-file"};
	char source[64];
	enum el_err r = EL_OK;
	int i;

	memset(out, 0, sizeof(*out));
	memset(h, 0, sizeof(h));
	if (profile == NULL || *profile == '\0')
		profile = "default";
	for (i = 0; i < 2; i++) {
		if (paths[i] == NULL)
			continue;
		r = ini_profile(paths[i], profile, i == 1, &h[i], w);
		if (r == EL_ENOENT)
			continue;
		if (r != EL_OK)
			goto out;
	}
	/* A profile the AWS CLI would resolve to other credentials must not silently fall
	 * through to static keys or to IMDS: say so. */
	for (i = 0; i < 2; i++) {
		if (h[i].unsupported[0] != '\0') {
			r = el_fail(w, EL_ECONFIG, "AWS profile '%s' in %s uses %s, which elevated "
			    "does not support: give the broker static keys (aws_access_key_id and "
			    "aws_secret_access_key), environment variables, a container "
			    "credentials provider or an instance profile", profile, paths[i],
			    h[i].unsupported);
			goto out;
		}
	}
	for (i = 0; i < 2; i++) {
		if (!h[i].found || (h[i].akid == NULL && h[i].secret == NULL))
			continue;
		if (h[i].akid == NULL || h[i].secret == NULL) {
			r = el_fail(w, EL_ECONFIG, "AWS profile '%s' in %s has %s but not %s",
			    profile, paths[i], h[i].akid ? "aws_access_key_id" :
			    "aws_secret_access_key", h[i].akid ? "aws_secret_access_key" :
			    "aws_access_key_id");
			goto out;
		}
		snprintf(source, sizeof(source), "%s (profile %s)", kinds[i], profile);
		if ((r = aws_creds_set(out, h[i].akid, h[i].secret, h[i].token, 0, source)) !=
		    EL_OK) {
			r = el_fail(w, r == EL_EINVAL ? EL_ECONFIG : r, "AWS profile '%s' in %s: "
			    "unusable aws_access_key_id", profile, paths[i]);
			goto out;
		}
		goto out;
	}
	if (!h[0].found && !h[1].found) {
		if (is_explicit)
			r = el_fail(w, EL_ECONFIG, "AWS profile '%s' (AWS_PROFILE) not found in "
			    "%s or %s", profile, cred_file ? cred_file : "(no credentials file)",
			    config_file ? config_file : "(no config file)");
		else
			r = el_fail(w, EL_ENOENT, "no profile '%s' in %s or %s", profile,
			    cred_file ? cred_file : "-", config_file ? config_file : "-");
	} else {
		r = el_fail(w, EL_ENOENT, "profile '%s' has no static keys", profile);
	}
out:
	ini_hit_clear(&h[0]);
	ini_hit_clear(&h[1]);
	return r;
}

/* AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials (with ~ expanded). */
static enum el_err
aws_file_path(const char *envname, const char *leaf, char *buf, size_t len)
{
	const char *v = env(envname), *home;
	struct passwd pw, *pp = NULL;
	char pwbuf[1024];
	int n;

	home = env("HOME");
	if (home == NULL && getpwuid_r(getuid(), &pw, pwbuf, sizeof(pwbuf), &pp) == 0 &&
	    pp != NULL)
		home = pp->pw_dir;
	if (v != NULL && strncmp(v, "~/", 2) != 0)
		n = snprintf(buf, len, "%s", v);
	else if (home == NULL)
		return EL_ENOENT;
	else if (v != NULL)
		n = snprintf(buf, len, "%s/%s", home, v + 2);
	else
		n = snprintf(buf, len, "%s/.aws/%s", home, leaf);
	return n < 0 || (size_t)n >= len ? EL_ETOOBIG : EL_OK;
}

/* ---------------------------------------------------------------- container provider */

static int
container_host_ok(const char *url)
{
	static const char *const allowed[] = {
		"localhost", "169.254.170.2", "169.254.170.23", "[::1]", "[fd00:ec2::23]",
	};
	struct in_addr a4;
	CURLU *u;
	char *host = NULL, *scheme = NULL;
	int ok = 0;
	size_t i;

	if ((u = curl_url()) == NULL)
		return 0;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		goto out;
	if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)
		goto out;
	for (i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
		if (strcasecmp(host, allowed[i]) == 0)
			ok = 1;
	/* all of 127.0.0.0/8 is loopback */
	if (!ok && inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127)
		ok = 1;
out:
	curl_free(host);
	curl_free(scheme);
	curl_url_cleanup(u);
	return ok;
}

static enum el_err
creds_from_container(struct aws_client *c, struct aws_creds *out, struct el_why *w)
{
	const char *rel = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	const char *full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	const char *tokfile = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	const char *tokenv = env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
	struct dbuf url, auth, body;
	struct el_why iw = {{0}};
	const char *hdrs[2];
	char *tok = NULL;
	size_t toklen = 0, nh = 0;
	int status = 0, attempt;
	enum el_err r;

	dbuf_init(&url, 4096);
	dbuf_init(&auth, 16384);
	dbuf_init(&body, CREDS_JSON_MAX);
	if (rel != NULL) {
		if (*rel != '/') {
			r = el_fail(w, EL_ECONFIG, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI must "
			    "start with '/'");
			goto out;
		}
		r = dbuf_printf(&url, "http://169.254.170.2%s", rel);
	} else if (full != NULL) {
		if (!container_host_ok(full)) {
			r = el_fail(w, EL_ECONFIG, "AWS_CONTAINER_CREDENTIALS_FULL_URI must be an "
			    "http(s) URL on a loopback address (or the ECS/EKS agent address)");
			goto out;
		}
		r = dbuf_adds(&url, full);
	} else {
		r = el_fail(w, EL_ENOENT, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/FULL_URI "
		    "not set");
		goto out;
	}
	if (r != EL_OK) {
		r = el_fail(w, EL_ECONFIG, "container credentials URI too long");
		goto out;
	}
	if (tokfile != NULL) {
		if ((r = el_read_file(tokfile, 16384, &tok, &toklen, &iw)) != EL_OK) {
			r = el_fail(w, EL_ECONFIG, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: %s",
			    iw.msg);
			goto out;
		}
		while (toklen > 0 && isspace((unsigned char)tok[toklen - 1]))
			tok[--toklen] = '\0';
	} else if (tokenv != NULL && (tok = strdup(tokenv)) == NULL) {
		r = el_fail(w, EL_ENOMEM, "out of memory");
		goto out;
	}
	hdrs[nh++] = "Accept: application/json";
	if (tok != NULL && *tok != '\0') {
		if (strpbrk(tok, "\r\n") != NULL) {
			r = el_fail(w, EL_ECONFIG, "container authorization token has a line break");
			goto out;
		}
		if ((r = dbuf_printf(&auth, "Authorization: %s", tok)) != EL_OK) {
			r = el_fail(w, EL_ECONFIG, "container authorization token too long");
			goto out;
		}
		hdrs[nh++] = auth.p;
	}
	/* The agent is local: a couple of quick attempts cover its restarts. */
	for (attempt = 1; attempt <= 3; attempt++) {
		dbuf_free_secret(&body);
		dbuf_init(&body, CREDS_JSON_MAX);
		r = aws_http_plain(c, "GET", url.p, hdrs, nh, CONTAINER_TIMEOUT_MS, &status,
		    &body, &iw);
		if (r == EL_OK && status < 500)
			break;
		if (r == EL_ETOOBIG)
			break;
		usleep(100000);
	}
	if (r != EL_OK) {
		r = el_fail(w, r, "container credentials endpoint %s: %s", url.p, iw.msg);
		goto out;
	}
	if (status != 200) {
		r = el_fail(w, EL_EAUTH, "container credentials endpoint answered HTTP %d",
		    status);
		goto out;
	}
	r = aws_parse_json_creds(body.p, body.len, "container", out, w);
out:
	if (tok != NULL) {
		sodium_memzero(tok, strlen(tok));
		free(tok);
	}
	dbuf_free(&url);
	dbuf_free_secret(&auth);
	dbuf_free_secret(&body);
	return r;
}

/* ---------------------------------------------------------------- IMDSv2 */

static enum el_err
creds_from_imds(struct aws_client *c, struct aws_creds *out, struct el_why *w)
{
	const char *dis = env("AWS_EC2_METADATA_DISABLED");
	const char *ep = env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
	char base[512], url[1024], role[160], tokhdr[256];
	const char *hdr[1];
	struct dbuf body;
	size_t n;
	int status = 0;
	enum el_err r;

	memset(tokhdr, 0, sizeof(tokhdr));
	dbuf_init(&body, CREDS_JSON_MAX);
	if (dis != NULL && strcasecmp(dis, "true") == 0) {
		r = el_fail(w, EL_ENOENT, "disabled by AWS_EC2_METADATA_DISABLED");
		goto out;
	}
	if (el_strlcpy(base, ep ? ep : "http://169.254.169.254", sizeof(base)) >=
	    sizeof(base)) {
		r = el_fail(w, EL_ECONFIG, "AWS_EC2_METADATA_SERVICE_ENDPOINT too long");
		goto out;
	}
	n = strlen(base);
	while (n > 0 && base[n - 1] == '/')
		base[--n] = '\0';

	/* session token first: IMDSv2 only, no v1 fallback */
	snprintf(url, sizeof(url), "%s/latest/api/token", base);
	hdr[0] = "x-aws-ec2-metadata-token-ttl-seconds: 21600";
	r = aws_http_plain(c, "PUT", url, hdr, 1, IMDS_TIMEOUT_MS, &status, &body, w);
	if (r != EL_OK || status != 200) {
		if (r == EL_OK)
			el_fail(w, EL_ENOENT, "%s answered HTTP %d to the token request", base,
			    status);
		else
			el_fail(w, EL_ENOENT, "no instance metadata service at %s (%s)", base,
			    el_strerror(r));
		r = EL_ENOENT;
		goto out;
	}
	while (body.len > 0 && isspace((unsigned char)body.p[body.len - 1]))
		body.p[--body.len] = '\0';
	if (body.len == 0 || strpbrk(body.p, "\r\n") != NULL ||
	    (size_t)snprintf(tokhdr, sizeof(tokhdr), "x-aws-ec2-metadata-token: %s",
	    body.p) >= sizeof(tokhdr)) {
		r = el_fail(w, EL_EPARSE, "IMDS returned an unusable session token");
		goto out;
	}
	hdr[0] = tokhdr;

	dbuf_free_secret(&body);
	dbuf_init(&body, CREDS_JSON_MAX);
	snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/", base);
	r = aws_http_plain(c, "GET", url, hdr, 1, IMDS_TIMEOUT_MS, &status, &body, w);
	if (r != EL_OK) {
		r = el_fail(w, EL_ENOENT, "IMDS at %s: %s", base, el_strerror(r));
		goto out;
	}
	if (status == 404) {
		r = el_fail(w, EL_ENOENT, "this instance has no instance profile (IMDS 404)");
		goto out;
	}
	if (status != 200) {
		r = el_fail(w, EL_EAUTH, "IMDS answered HTTP %d for the role name", status);
		goto out;
	}
	n = strcspn(body.p, "\r\n");
	if (n == 0 || n >= sizeof(role)) {
		r = el_fail(w, EL_EPARSE, "IMDS returned no usable role name");
		goto out;
	}
	memcpy(role, body.p, n);
	role[n] = '\0';
	if (!aws_name_ok(role, 1, 128)) {
		r = el_fail(w, EL_EPARSE, "IMDS returned an invalid role name");
		goto out;
	}

	dbuf_free_secret(&body);
	dbuf_init(&body, CREDS_JSON_MAX);
	snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/%s", base,
	    role);
	r = aws_http_plain(c, "GET", url, hdr, 1, IMDS_TIMEOUT_MS, &status, &body, w);
	if (r != EL_OK || status != 200) {
		r = r != EL_OK ? el_fail(w, r, "IMDS credentials for %s: %s", role,
		    el_strerror(r)) : el_fail(w, EL_EAUTH, "IMDS answered HTTP %d for the "
		    "credentials of %s", status, role);
		goto out;
	}
	r = aws_parse_json_creds(body.p, body.len, "imds", out, w);
out:
	sodium_memzero(tokhdr, sizeof(tokhdr));
	dbuf_free_secret(&body);
	return r;
}

/* ---------------------------------------------------------------- the chain */

enum el_err
aws_creds_chain(struct aws_client *c, struct aws_creds *out, struct el_why *w)
{
	struct el_why pw = {{0}};
	struct dbuf tried;
	char cred_path[PATH_MAX], conf_path[PATH_MAX];
	const char *profile;
	int is_explicit;
	enum el_err r;

	memset(out, 0, sizeof(*out));
	dbuf_init(&tried, EL_WHYLEN);

	if ((r = aws_creds_from_env(out, &pw)) != EL_ENOENT)
		goto done;
	(void)dbuf_printf(&tried, "environment: %s", pw.msg);

	profile = env("AWS_PROFILE");
	if (profile == NULL)
		profile = env("AWS_DEFAULT_PROFILE");
	is_explicit = profile != NULL;
	r = aws_creds_from_profile(
	    aws_file_path("AWS_SHARED_CREDENTIALS_FILE", "credentials", cred_path,
	    sizeof(cred_path)) == EL_OK ? cred_path : NULL,
	    aws_file_path("AWS_CONFIG_FILE", "config", conf_path, sizeof(conf_path)) == EL_OK ?
	    conf_path : NULL, profile ? profile : "default", is_explicit, out, &pw);
	if (r != EL_ENOENT)
		goto done;
	(void)dbuf_printf(&tried, "; shared files: %s", pw.msg);

	if ((r = creds_from_container(c, out, &pw)) != EL_ENOENT)
		goto done;
	(void)dbuf_printf(&tried, "; container: %s", pw.msg);

	if ((r = creds_from_imds(c, out, &pw)) != EL_ENOENT)
		goto done;
	(void)dbuf_printf(&tried, "; IMDS: %s", pw.msg);

	r = el_fail(w, EL_ECONFIG, "no AWS credentials for the broker (%s)",
	    tried.p ? tried.p : "");
	dbuf_free(&tried);
	return r;
done:
	if (r != EL_OK)
		el_fail(w, r, "%s", pw.msg);
	dbuf_free(&tried);
	return r;
}

/* ---------------------------------------------------------------- the cache */

enum el_err
aws_broker_creds(struct aws_client *c, struct aws_creds *out, struct el_why *w)
{
	struct aws_creds fresh;
	char when[32];
	int64_t now;
	int stale;
	enum el_err r = EL_OK;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&c->creds_mu);
	now = el_now();
	stale = !c->have_creds || (c->creds.expiration != 0 &&
	    now >= c->creds.expiration - AWS_REFRESH_MARGIN &&
	    (now >= c->creds.expiration - 10 || now - c->creds_fetched >= REFETCH_MIN_S));
	if (stale) {
		/* Under the lock: one refresh at a time, the others wait for its result. */
		r = aws_creds_chain(c, &fresh, w);
		if (r == EL_OK) {
			aws_creds_clear(&c->creds);
			c->creds = fresh;       /* moves the secrets */
			memset(&fresh, 0, sizeof(fresh));
			c->have_creds = 1;
			c->creds_fetched = now;
			if (c->creds.expiration != 0) {
				el_format_time(c->creds.expiration, when, sizeof(when));
				log_info("aws: broker credentials from %s, expire %s",
				    c->creds.source, when);
			} else {
				log_info("aws: broker credentials from %s", c->creds.source);
			}
		} else if (c->have_creds && c->creds.expiration > now + 10) {
			el_format_time(c->creds.expiration, when, sizeof(when));
			log_warn("aws: refreshing broker credentials failed (%s); using the "
			    "current ones until %s", w ? w->msg : el_strerror(r), when);
			r = EL_OK;
		}
	}
	if (r == EL_OK && (r = aws_creds_copy(out, &c->creds)) != EL_OK)
		r = el_fail(w, r, "out of memory");
	pthread_mutex_unlock(&c->creds_mu);
	return r;
}

enum el_err
aws_broker_creds_source(struct aws_client *c, char *buf, size_t len, struct el_why *w)
{
	struct aws_creds cr;
	enum el_err r;

	if ((r = aws_broker_creds(c, &cr, w)) != EL_OK)
		return r;
	el_strlcpy(buf, cr.source, len);
	aws_creds_clear(&cr);
	return EL_OK;
}
