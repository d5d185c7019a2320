/*
 * cmd_revoke.c — `elevate revoke ID [ID ...]`: ends active grants now. One id goes to
 * POST /v1/requests/{id}/revoke; several to POST /v1/revoke, which revokes them all or
 * none in one sweep (one IAM policy update per role). The broker closes their SSM
 * sessions and denies their role sessions at once.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "commands.h"
#include "output.h"

#define REASON_MAX_CHARS 1024
#define REVOKE_IDS_MAX 1000         /* the broker's ceiling on one sweep */

static int revoke_run(int, char **);

const struct cli_cmd cmd_revoke = {
	.name = "revoke",
	.usage = "elevate revoke ID [ID ...] [--reason R]",
	.summary = "end active grants now",
	.run = revoke_run,
};

static void
revoke_help(void)
{
	printf("usage: %s\n\n"
	    "Ends the active grants ID ... before their windows are over: their credentials\n"
	    "stop working and their SSM sessions are terminated. Allowed to the requester,\n"
	    "the profile's approvers and admins. With several ids, all are revoked or, when\n"
	    "one of them cannot be, none.\n\n"
	    "  --reason R   why, for the audit trail\n"
	    "  --json       the broker's JSON of the request(s) afterwards\n", cmd_revoke.usage);
}

/* "revoked ID" and what became of it, for one request of the answer. */
static void
print_revoked(const json_t *req, const char *id)
{
	const char *rid = output_str(req, "id");

	printf("revoked %s\n", rid != NULL && api_valid_id(rid) ? rid : id);
	status_next(req, stdout);
}

static int
revoke_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{"reason", required_argument, NULL, 'r'},
		{"json", no_argument, NULL, 'J'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *reason = NULL;
	char path[128];
	struct api *a = NULL;
	json_t *body = NULL, *ids = NULL, *res = NULL, *v;
	size_t i;
	int ch, rc, j, dup;

	while ((ch = getopt_long(argc, argv, "r:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'r': reason = optarg; break;
		case 'J': output_set_json(1); break;
		case 'h': revoke_help(); return CLI_OK;
		default: return output_usage(&cmd_revoke, NULL);
		}
	}
	if (argc - optind < 1)
		return output_usage(&cmd_revoke, "at least one request ID expected");
	if (argc - optind > REVOKE_IDS_MAX)
		return output_usage(&cmd_revoke, "at most %d request IDs at once",
		    REVOKE_IDS_MAX);
	for (j = optind; j < argc; j++)
		if (!api_valid_id(argv[j]))
			return output_usage(&cmd_revoke, "not a request id: \"%s\"", argv[j]);
	if (reason != NULL && output_width(reason) > REASON_MAX_CHARS)
		return output_usage(&cmd_revoke, "--reason: at most %d characters",
		    REASON_MAX_CHARS);
	if ((body = json_object()) == NULL || (ids = json_array()) == NULL ||
	    (reason != NULL && json_object_set_new(body, "reason", json_string(reason)) != 0)) {
		rc = output_usage(&cmd_revoke, "--reason must be valid UTF-8 text");
		goto out;
	}
	/* The same id twice is one revocation, not a conflict with itself. */
	for (j = optind; j < argc; j++) {
		dup = 0;
		json_array_foreach(ids, i, v)
			if (strcmp(json_string_value(v), argv[j]) == 0)
				dup = 1;
		if (!dup && json_array_append_new(ids, json_string(argv[j])) != 0) {
			rc = CLI_ERR;
			goto out;
		}
	}
	if ((rc = api_open(&a)) != CLI_OK)
		goto out;
	if (json_array_size(ids) == 1) {
		snprintf(path, sizeof(path), "/v1/requests/%s/revoke",
		    json_string_value(json_array_get(ids, 0)));
		rc = api_do(a, "POST", path, body, &res);
	} else {
		if (json_object_set(body, "ids", ids) != 0) {
			rc = CLI_ERR;
			goto out;
		}
		rc = api_do(a, "POST", "/v1/revoke", body, &res);
	}
	if (rc != CLI_OK)
		goto out;
	/* The cached credentials are dead now: let the next `creds --profile` look again. */
	json_array_foreach(ids, i, v)
		creds_forget(json_string_value(v));
	json_array_foreach(json_object_get(res, "results"), i, v)
		creds_forget(output_str(v, "id"));   /* a bundle's members */
	if (output_json())
		rc = output_print_json(res);
	else if (status_is_bundle(res))
		rc = status_bundle(res);
	else if (json_array_size(ids) == 1)
		print_revoked(res, json_string_value(json_array_get(ids, 0)));
	else {
		json_array_foreach(json_object_get(res, "requests"), i, v)
			print_revoked(v, "?");
	}
out:
	json_decref(body);
	json_decref(ids);
	json_decref(res);
	api_close(a);
	return rc;
}
