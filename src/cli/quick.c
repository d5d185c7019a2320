/*
 * quick.c — owns `elevate`'s front door. The AWS CLI runs `elevate creds --profile P`
 * (credential_process) before every command it runs, so that must start fast: this
 * binary answers `elevate creds ID|--profile P` from the credential cache by itself,
 * loading nothing but jansson and libsodium (no libcurl, no key, no libsodium init),
 * and runs elevate-full, installed next to it, for everything else: every other
 * command, any option it does not know, and a cache miss.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "elevate/el.h"
#include "api.h"
#include "creds_cache.h"
#include "output.h"

/* Runs elevate-full from this binary's directory with the same arguments. */
static int
run_full(char **argv)
{
	char self[PATH_MAX], path[PATH_MAX];
	const char *slash;
	ssize_t n;

	if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) <= 0) {
		output_err("cannot find this program's directory (/proc/self/exe: %s): run "
		    "elevate-full directly", strerror(errno));
		return CLI_ERR;
	}
	self[n] = '\0';
	slash = strrchr(self, '/');
	if (slash == NULL || (size_t)snprintf(path, sizeof(path), "%.*s/elevate-full",
	    (int)(slash - self), self) >= sizeof(path)) {
		output_err("%s: path too long", self);
		return CLI_ERR;
	}
	execv(path, argv);
	output_err("cannot run %s: %s (elevate-full is installed next to elevate)", path,
	    strerror(errno));
	return CLI_ERR;
}

/*
 * The credentials of `elevate [--json] [--server URL] creds [--json] (ID | --profile P)`
 * from the cache, printed: CLI_OK. -1 when this is not such a command line, or the cache
 * cannot answer: elevate-full then does (and says why when it fails).
 */
static int
cached_creds(int argc, char **argv)
{
	const char *id = NULL, *profile = NULL;
	char dir[PATH_MAX], region[64], rid[72];
	struct api_conf c;
	json_t *creds = NULL;
	int64_t until;
	int i, rc = CLI_OK;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--json") == 0)
			continue;
		if (strcmp(argv[i], "--server") == 0 && i + 1 < argc)
			api_set_server(argv[++i]);
		else if (strncmp(argv[i], "--server=", 9) == 0)
			api_set_server(argv[i] + 9);
		else
			return -1;
	}
	if (i >= argc || strcmp(argv[i], "creds") != 0)
		return -1;
	for (i++; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			continue;
		if (profile == NULL && (strcmp(argv[i], "--profile") == 0 ||
		    strcmp(argv[i], "-p") == 0) && i + 1 < argc)
			profile = argv[++i];
		else if (profile == NULL && strncmp(argv[i], "--profile=", 10) == 0)
			profile = argv[i] + 10;
		else if (id == NULL && argv[i][0] != '-')
			id = argv[i];
		else
			return -1;
	}
	if ((id == NULL) == (profile == NULL) || (id != NULL && !api_valid_id(id)) ||
	    (profile != NULL && (*profile == '\0' || strlen(profile) > NAME_MAX_LEN)))
		return -1;
	if (api_conf_load(&c, 1) != CLI_OK || creds_cache_dir(dir, sizeof(dir)) != 0 ||
	    creds_cache_get(&c, dir, id, profile, &creds, region, sizeof(region), rid,
	    sizeof(rid), &until) != 0)
		return -1;
	api_warn_plain_http(c.server);
	if (json_dumpf(creds, stdout, JSON_COMPACT) != 0 || fputc('\n', stdout) == EOF ||
	    fflush(stdout) != 0) {
		output_err("cannot write to stdout");
		rc = CLI_ERR;
	}
	creds_wipe(creds);
	json_decref(creds);
	return rc;
}

int
main(int argc, char **argv)
{
	int rc;

	el_json_wipe_on_free();   /* credentials pass through JSON documents */
	if ((rc = cached_creds(argc, argv)) >= 0)
		return rc;
	return run_full(argv);
}
