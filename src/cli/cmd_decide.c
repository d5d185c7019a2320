/*
 * cmd_decide.c — `elevate approve ID` and `elevate deny ID`: an approver's decision from
 * the CLI (POST /v1/requests/{id}/approve|deny), under the same rules as the email link.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "elevate/el.h"
#include "api.h"
#include "commands.h"
#include "output.h"

#define COMMENT_MAX_CHARS 1024

static int approve_run(int, char **);
static int deny_run(int, char **);

const struct cli_cmd cmd_approve = {
	.name = "approve",
	.usage = "elevate approve ID [--comment C]",
	.summary = "approve a pending request (approvers)",
	.run = approve_run,
};

const struct cli_cmd cmd_deny = {
	.name = "deny",
	.usage = "elevate deny ID [--comment C]",
	.summary = "deny a pending request (approvers)",
	.run = deny_run,
};

static void
decide_help(const struct cli_cmd *c, int approve)
{
	printf("usage: %s\n\n"
	    "%s request ID as one of its approvers. %s\n"
	    "Your own request never counts towards its quorum. Check it first with\n"
	    "`elevate status ID`.\n\n"
	    "  --comment C   a note for the requester and the audit trail\n"
	    "  --json        the broker's JSON of the request afterwards\n", c->usage,
	    approve ? "Approves" : "Denies",
	    approve ? "Once enough approvals are in, the grant becomes active." :
	    "One denial ends the request.");
}

static int
decide(const struct cli_cmd *c, int approve, int argc, char **argv)
{
	static const struct option opts[] = {
		{"comment", required_argument, NULL, 'c'},
		{"json", no_argument, NULL, 'J'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *comment = NULL, *id, *profile, *requester;
	char path[128], line[512], clean[1024];
	struct api *a = NULL;
	json_t *body = NULL, *req = NULL;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': comment = optarg; break;
		case 'J': output_set_json(1); break;
		case 'h': decide_help(c, approve); return CLI_OK;
		default: return output_usage(c, NULL);
		}
	}
	if (argc - optind != 1)
		return output_usage(c, "one request ID expected");
	id = argv[optind];
	if (!api_valid_id(id))
		return output_usage(c, "not a request id: \"%s\"", id);
	if (comment != NULL && output_width(comment) > COMMENT_MAX_CHARS)
		return output_usage(c, "--comment: at most %d characters", COMMENT_MAX_CHARS);
	if ((body = json_object()) == NULL ||
	    (comment != NULL && json_object_set_new(body, "comment", json_string(comment)) != 0)) {
		json_decref(body);
		return output_usage(c, "--comment must be valid UTF-8 text");
	}
	snprintf(path, sizeof(path), "/v1/requests/%s/%s", id, approve ? "approve" : "deny");
	if ((rc = api_open(&a)) != CLI_OK)
		goto out;
	if ((rc = api_do(a, "POST", path, body, &req)) != CLI_OK)
		goto out;
	if (output_json()) {
		rc = output_print_json(req);
		goto out;
	}
	profile = output_str(req, "profile");
	requester = output_str(req, "requester");
	snprintf(line, sizeof(line), "%s %s (%s for %s)", approve ? "approved" : "denied", id,
	    profile ? profile : "?", requester ? requester : "?");
	output_clean(line, 0, clean, sizeof(clean));
	printf("%s\n", clean);
	status_next(req, stdout);
out:
	json_decref(body);
	json_decref(req);
	api_close(a);
	return rc;
}

static int
approve_run(int argc, char **argv)
{
	return decide(&cmd_approve, 1, argc, argv);
}

static int
deny_run(int argc, char **argv)
{
	return decide(&cmd_deny, 0, argc, argv);
}
