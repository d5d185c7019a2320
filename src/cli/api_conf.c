/*
 * api_conf.c — owns what the CLI knows before it talks to the broker: the config
 * directory, config.json (server, user, CA file; --server and ELEVATE_SERVER win), the
 * server URL's form and a request id's syntax. No network and no key: the credential
 * cache's fast path (quick.c) uses it without loading libcurl.
 */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "elevate/el.h"
#include "api.h"
#include "output.h"

#define CONFIG_MAX (64 * 1024)

static const char *server_opt;

void
api_set_server(const char *url)
{
	server_opt = url;
}

const char *
api_server_option(void)
{
	return server_opt;
}

static const char *
home_dir(void)
{
	const char *h = getenv("HOME");
	struct passwd *pw;

	if (h != NULL && *h == '/')
		return h;
	if ((pw = getpwuid(getuid())) != NULL && pw->pw_dir != NULL && *pw->pw_dir == '/')
		return pw->pw_dir;
	return NULL;
}

enum el_err
api_config_dir(char *buf, size_t len, struct el_why *w)
{
	const char *e, *h;
	int n;

	if ((e = getenv("ELEVATE_CONFIG_DIR")) != NULL && *e != '\0')
		n = snprintf(buf, len, "%s", e);
	else if ((e = getenv("XDG_CONFIG_HOME")) != NULL && *e == '/')   /* relative: ignored */
		n = snprintf(buf, len, "%s/elevate", e);
	else if ((h = home_dir()) != NULL)
		n = snprintf(buf, len, "%s/.config/elevate", h);
	else
		return el_fail(w, EL_ECONFIG, "no home directory: set ELEVATE_CONFIG_DIR");
	if (n < 0 || (size_t)n >= len)
		return el_fail(w, EL_EINVAL, "config directory path too long");
	return EL_OK;
}

static int
normalize(const char *url, char *out, size_t outlen, int quiet)
{
	size_t n;

	if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0) {
		if (!quiet)
			output_err("server URL must start with https:// or http://: %s", url);
		return CLI_ERR;
	}
	if (strpbrk(url, " \t\r\n?#") != NULL) {
		if (!quiet)
			output_err("server URL must be plain scheme://host[:port]: %s", url);
		return CLI_ERR;
	}
	if (el_strlcpy(out, url, outlen) >= outlen) {
		if (!quiet)
			output_err("server URL too long");
		return CLI_ERR;
	}
	n = strlen(out);
	while (n > 0 && out[n - 1] == '/')
		out[--n] = '\0';
	return CLI_OK;
}

int
api_normalize_server(const char *url, char *out, size_t outlen)
{
	return normalize(url, out, outlen, 0);
}

/* Plain HTTP is for loopback behind a reverse proxy (DESIGN "Daemon configuration"). */
void
api_warn_plain_http(const char *url)
{
	const char *h;

	if (strncmp(url, "http://", 7) != 0)
		return;
	h = url + 7;
	if (strncmp(h, "127.", 4) == 0 || strncmp(h, "localhost", 9) == 0 ||
	    strncmp(h, "[::1]", 5) == 0)
		return;
	output_err("warning: %s is plain HTTP: requests and credentials cross the network "
	    "unencrypted", url);
}


int
api_valid_id(const char *s)
{
	size_t n;

	if (s == NULL || *s == '\0' || *s == '-' || *s == '.')
		return 0;
	for (n = 0; s[n] != '\0'; n++) {
		char c = s[n];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return 0;
	}
	return n <= 64;
}

int
api_bundle_id(const char *s)
{
	return api_valid_id(s) && strncmp(s, "bun_", 4) == 0;
}

int
api_conf_load(struct api_conf *c, int quiet)
{
	struct el_why why;
	char path[PATH_MAX], *text = NULL;
	const char *server, *user, *ca, *env;
	json_t *cfg = NULL;
	json_error_t jerr;
	enum el_err r;
	int rc = CLI_ERR;

	memset(c, 0, sizeof(*c));
	if (api_config_dir(c->dir, sizeof(c->dir), &why) != EL_OK) {
		if (!quiet)
			output_err("%s", why.msg);
		goto out;
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/config.json", c->dir) >= sizeof(path)) {
		if (!quiet)
			output_err("config path too long");
		goto out;
	}
	if ((r = el_read_file(path, CONFIG_MAX, &text, NULL, &why)) != EL_OK) {
		if (quiet)
			;
		else if (r == EL_ENOENT)
			output_err("no configuration at %s: run `elevate init --server URL "
			    "--user NAME` first", path);
		else
			output_err("%s", why.msg);
		goto out;
	}
	if ((cfg = json_loads(text, 0, &jerr)) == NULL || !json_is_object(cfg)) {
		if (!quiet)
			output_err("%s:%d: %s", path, jerr.line, cfg ? "not a JSON object" :
			    jerr.text);
		goto out;
	}
	user = output_str(cfg, "user");
	if (user == NULL || *user == '\0' || strpbrk(user, "\r\n") != NULL ||
	    el_strlcpy(c->user, user, sizeof(c->user)) >= sizeof(c->user)) {
		if (!quiet)
			output_err("%s: \"user\" missing or invalid", path);
		goto out;
	}
	if (server_opt != NULL)
		server = server_opt;
	else if ((env = getenv("ELEVATE_SERVER")) != NULL && *env != '\0')
		server = env;
	else
		server = output_str(cfg, "server");
	if (server == NULL) {
		if (!quiet)
			output_err("%s: no \"server\" (or set ELEVATE_SERVER / --server)", path);
		goto out;
	}
	if (normalize(server, c->server, sizeof(c->server), quiet) != CLI_OK)
		goto out;
	if (!quiet)
		api_warn_plain_http(c->server);
	if ((env = getenv("ELEVATE_CA_FILE")) != NULL && *env != '\0')
		ca = env;
	else
		ca = output_str(cfg, "ca_file");
	if (ca != NULL && el_strlcpy(c->ca_file, ca, sizeof(c->ca_file)) >= sizeof(c->ca_file)) {
		if (!quiet)
			output_err("%s: \"ca_file\" too long", path);
		goto out;
	}
	rc = CLI_OK;
out:
	json_decref(cfg);
	free(text);
	return rc;
}
