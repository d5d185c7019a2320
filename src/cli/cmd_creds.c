/*
 * cmd_creds.c — `elevate creds`: prints a grant's credentials as AWS credential_process
 * JSON. Owns fetching credentials for the CLI (also used by `exec`), kept in the cache
 * (creds_cache.c; quick.c answers from it without this file when it can), the
 * profile -> request choice, and putting them into the environment (`exec`, `ssm`).
 * Never writes a secret to stderr.
 */
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
#include "wait.h"

static int creds_run(int, char **);

const struct cli_cmd cmd_creds = {
	.name = "creds",
	.usage = "elevate creds ID | elevate creds --profile PROFILE | "
	    "elevate creds BUNDLE --profile PROFILE",
	.summary = "print a grant's credentials for the AWS CLI (credential_process)",
	.run = creds_run,
};

static void
creds_help(void)
{
	printf("usage: %s\n\n"
	    "Prints the credentials of your active grant ID as credential_process JSON\n"
	    "({\"Version\": 1, \"AccessKeyId\", ...}). With --profile, uses your active grant\n"
	    "of PROFILE with the latest end. A bundle (one request of several profiles, id\n"
	    "bun_...) has credentials per profile: BUNDLE --profile PROFILE picks its\n"
	    "member's. For ~/.aws/config:\n\n"
	    "    [profile elevate-prod-readonly]\n"
	    "    credential_process = elevate creds --profile prod-readonly\n\n"
	    "A grant approved a moment ago is still `activating` while the broker mints its\n"
	    "credentials: creds waits for it (up to %d s, saying so on stderr after 2 s).\n"
	    "Credentials are cached (mode 0600) in $ELEVATE_CACHE_DIR, else\n"
	    "$XDG_CACHE_HOME/elevate, else ~/.cache/elevate, until %d s before they expire\n"
	    "or the window ends. Errors go to stderr with a non-zero exit: %d when there\n"
	    "is no active grant, %d when the request is not active.\n",
	    cmd_creds.usage, WAIT_MINTED_MAX, CACHE_MARGIN, CLI_NOTFOUND, CLI_REFUSED);
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

/* The caller's request of profile in state with the latest window end (new reference),
 * or *out NULL; a scheduled one that has not started is left out. */
static int
latest_mine(struct api *a, const char *state, const char *profile, json_t **out)
{
	json_t *res = NULL, *r, *best = NULL;
	int64_t best_end = -1, end, now = el_now();
	char path[96];
	const char *p;
	size_t i;
	int rc;

	*out = NULL;
	snprintf(path, sizeof(path), "/v1/requests?state=%s&mine=1", state);
	if ((rc = api_do(a, "GET", path, NULL, &res)) != CLI_OK)
		return rc;
	json_array_foreach(json_object_get(res, "requests"), i, r) {
		p = output_str(r, "profile");
		if (p == NULL || strcmp(p, profile) != 0 || !api_valid_id(output_str(r, "id")) ||
		    output_time(r, "scheduled_start") > now)
			continue;
		end = output_time(r, "window_end");
		if (best == NULL || end > best_end) {
			best = r;
			best_end = end;
		}
	}
	if (best != NULL)
		*out = json_incref(best);
	json_decref(res);
	return CLI_OK;
}

/* No active grant of profile: one being activated (approved, the broker is minting),
 * followed until it is active. *out: that grant (new reference), or NULL when there is
 * none; CLI_REFUSED (said) when it did not become active. */
static int
find_activating(struct api *a, const char *profile, json_t **out)
{
	json_t *req = NULL;
	const char *p;
	int rc;

	*out = NULL;
	if ((rc = latest_mine(a, "activating", profile, &req)) != CLI_OK || req == NULL)
		return rc;
	if ((rc = wait_minted(a, &req, WAIT_MINTED_MAX)) == CLI_OK) {
		p = output_str(req, "state");
		if (p != NULL && strcmp(p, "active") == 0) {
			*out = req;
			return CLI_OK;
		}
		output_err("%s for %s was approved, but is now %s", output_str(req, "id"), profile,
		    p != NULL ? p : "in an unknown state");
		status_next(req, stderr);
		rc = CLI_REFUSED;
	}
	json_decref(req);
	return rc;
}

/* The caller's active grant of profile with the latest window end; new reference. */
static int
find_grant(struct api *a, const char *profile, json_t **out)
{
	int rc;

	if ((rc = latest_mine(a, "active", profile, out)) != CLI_OK || *out != NULL)
		return rc;
	/* approved a moment ago: followed until minted */
	if ((rc = find_activating(a, profile, out)) != CLI_OK || *out != NULL)
		return rc;
	output_err("no active grant for %s: run elevate request %s --for 15m --reason ...",
	    profile, profile);
	mention_pending(a, profile);
	return CLI_NOTFOUND;
}

int
creds_grant_id(struct api *a, const char *profile, char *id, size_t len)
{
	json_t *req = NULL;
	int rc;

	if ((rc = find_grant(a, profile, &req)) != CLI_OK)
		return rc;
	el_strlcpy(id, output_str(req, "id"), len);
	json_decref(req);
	return CLI_OK;
}

int
creds_bundle_member(struct api *a, const char *id, const char *profile, char *member,
    size_t len)
{
	char path[96], names[512] = "";
	json_t *b = NULL, *r;
	const char *p;
	size_t i;
	int rc;

	snprintf(path, sizeof(path), "/v1/requests/%s", id);
	if ((rc = api_do(a, "GET", path, NULL, &b)) != CLI_OK)
		return rc;
	rc = CLI_USAGE;
	json_array_foreach(json_object_get(b, "members"), i, r) {
		if ((p = output_str(r, "profile")) == NULL || !api_valid_id(output_str(r, "id")))
			continue;
		if (profile != NULL && strcmp(p, profile) == 0) {
			el_strlcpy(member, output_str(r, "id"), len);
			rc = CLI_OK;
			break;
		}
		if (strlen(names) + strlen(p) + 3 < sizeof(names))
			snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
			    names[0] ? ", " : "", p);
	}
	if (rc != CLI_OK && profile == NULL)
		output_err("%s is a bundle of several profiles (%s): each has its own "
		    "credentials; name one with --profile, e.g. elevate creds %s --profile %s",
		    id, names, id, output_str(json_array_get(json_object_get(b, "members"), 0),
		    "profile") ? output_str(json_array_get(json_object_get(b, "members"), 0),
		    "profile") : "PROFILE");
	else if (rc != CLI_OK)
		output_err("bundle %s has no profile %s; its profiles: %s", id, profile, names);
	json_decref(b);
	return rc;
}

int
creds_get(struct api *a, const char *id, const char *profile, json_t **creds, char *region,
    size_t regionlen, char *req_id, size_t req_idlen)
{
	const struct api_conf *c0 = api_conf(a);
	char dirbuf[PATH_MAX], path[128], cid[72];
	const char *dir = NULL, *st;
	json_t *req = NULL, *c = NULL;
	int64_t exp, until;
	char member[72];
	int rc;

	*creds = NULL;
	region[0] = '\0';
	/* A bundle's member by its profile: then that member's credentials, as by its id. */
	if (id != NULL && api_bundle_id(id)) {
		if ((rc = creds_bundle_member(a, id, profile, member, sizeof(member))) != CLI_OK)
			return rc;
		id = member;
		profile = NULL;
	}
	if (creds_cache_dir(dirbuf, sizeof(dirbuf)) == 0)
		dir = dirbuf;
	if (creds_cache_get(c0, dir, id, profile, creds, region, regionlen, req_id, req_idlen,
	    &until) == 0)
		return CLI_OK;
	if (id == NULL) {
		if ((rc = find_grant(a, profile, &req)) != CLI_OK)
			return rc;
		el_strlcpy(cid, output_str(req, "id"), sizeof(cid));
		/* `creds ID` may have cached this grant already */
		if (creds_cache_get(c0, dir, cid, NULL, creds, region, regionlen, req_id,
		    req_idlen, &until) == 0) {
			creds_cache_put_profile(c0, dir, profile, cid, until);
			json_decref(req);
			return CLI_OK;
		}
	} else {
		el_strlcpy(cid, id, sizeof(cid));
		snprintf(path, sizeof(path), "/v1/requests/%s", cid);
		if ((rc = api_do(a, "GET", path, NULL, &req)) != CLI_OK)
			return rc;
		if ((rc = wait_minted(a, &req, WAIT_MINTED_MAX)) != CLI_OK) {
			json_decref(req);
			return rc;
		}
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
	creds_cache_put(c0, dir, req, c, id == NULL ? profile : NULL);
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
	if (optind != argc || (id == NULL && profile == NULL) ||
	    (id != NULL && profile != NULL && !api_bundle_id(id)))
		return output_usage(&cmd_creds, "give a request ID, --profile PROFILE, or a "
		    "bundle's ID with --profile PROFILE");
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
