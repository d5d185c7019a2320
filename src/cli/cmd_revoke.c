/*
 * cmd_revoke.c — `elevate revoke ID`: ends an active grant now (POST
 * /v1/requests/{id}/revoke); the broker closes its SSM sessions and denies its role
 * session at once.
 */
#include <getopt.h>
#include <stdio.h>

#include "api.h"
#include "commands.h"
#include "output.h"

#define REASON_MAX_CHARS 1024

static int revoke_run(int, char **);

const struct cli_cmd cmd_revoke = {
	.name = "revoke",
	.usage = "elevate revoke ID [--reason R]",
	.summary = "end an active grant now",
	.run = revoke_run,
};

static void
revoke_help(void)
{
	printf("usage: %s\n\n"
	    "Ends the active grant ID before its window is over: its credentials stop\n"
	    "working and its SSM sessions are terminated. Allowed to the requester, the\n"
	    "profile's approvers and admins.\n\n"
	    "  --reason R   why, for the audit trail\n"
	    "  --json       the broker's JSON of the request afterwards\n", cmd_revoke.usage);
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
	json_t *body = NULL, *req = NULL;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "r:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'r': reason = optarg; break;
		case 'J': output_set_json(1); break;
		case 'h': revoke_help(); return CLI_OK;
		default: return output_usage(&cmd_revoke, NULL);
		}
	}
	if (argc - optind != 1)
		return output_usage(&cmd_revoke, "one request ID expected");
	if (!api_valid_id(argv[optind]))
		return output_usage(&cmd_revoke, "not a request id: \"%s\"", argv[optind]);
	if (reason != NULL && output_width(reason) > REASON_MAX_CHARS)
		return output_usage(&cmd_revoke, "--reason: at most %d characters",
		    REASON_MAX_CHARS);
	if ((body = json_object()) == NULL ||
	    (reason != NULL && json_object_set_new(body, "reason", json_string(reason)) != 0)) {
		json_decref(body);
		return output_usage(&cmd_revoke, "--reason must be valid UTF-8 text");
	}
	snprintf(path, sizeof(path), "/v1/requests/%s/revoke", argv[optind]);
	if ((rc = api_open(&a)) != CLI_OK)
		goto out;
	if ((rc = api_do(a, "POST", path, body, &req)) != CLI_OK)
		goto out;
	/* The cached credentials are dead now: let the next `creds --profile` look again. */
	creds_forget(argv[optind]);
	if (output_json())
		rc = output_print_json(req);
	else {
		printf("revoked %s\n", argv[optind]);
		status_next(req, stdout);
	}
out:
	json_decref(body);
	json_decref(req);
	api_close(a);
	return rc;
}
