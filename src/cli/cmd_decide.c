/*
 * cmd_decide.c — `elevate approve ID` and `elevate deny ID`: an approver's decision from
 * the CLI (POST /v1/requests/{id}/approve|deny), under the same rules as the email link.
 * The broker answers once the vote is recorded; an approval that completes the quorum
 * leaves the request `activating` while the credentials are minted, which
 * `approve --wait` follows until the access is active (or AWS refused it).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "elevate/el.h"
#include "api.h"
#include "commands.h"
#include "output.h"
#include "wait.h"

#define COMMENT_MAX_CHARS 1024

static int approve_run(int, char **);
static int deny_run(int, char **);

const struct cli_cmd cmd_approve = {
	.name = "approve",
	.usage = "elevate approve ID [--comment C] [--wait [--timeout DUR]]",
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
	    "  --comment C   a note for the requester and the audit trail\n", c->usage,
	    approve ? "Approves" : "Denies",
	    approve ? "Once enough approvals are in, the broker mints\n"
	    "the credentials and the grant becomes active; the answer comes as soon as your\n"
	    "approval is recorded (`activating` while AWS mints)." :
	    "One denial ends the request.");
	if (approve)
		printf("  --wait        follow the request until the access is active: exit 0 then,\n"
		    "                %d when it is denied, lapses or AWS refuses the role, %d on\n"
		    "                timeout (also waits for the approvals still missing).\n"
		    "                Ctrl-C stops waiting; the activation goes on.\n"
		    "  --timeout DUR with --wait: give up after DUR (default: when the request\n"
		    "                would lapse, or %d minutes once it is approved)\n",
		    CLI_REFUSED, CLI_TIMEOUT, WAIT_ACTIVATING_MAX / 60);
	printf("  --json        the broker's JSON of the request afterwards\n");
}

static int
decide(const struct cli_cmd *c, int approve, int argc, char **argv)
{
	static const struct option opts[] = {
		{"comment", required_argument, NULL, 'c'},
		{"wait", no_argument, NULL, 'w'},
		{"timeout", required_argument, NULL, 'T'},
		{"json", no_argument, NULL, 'J'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *comment = NULL, *id, *profile, *requester;
	char path[128], line[512], clean[1024];
	struct api *a = NULL;
	json_t *body = NULL, *req = NULL;
	int64_t timeout = 0;
	int ch, wait = 0, rc;

	while ((ch = getopt_long(argc, argv, "c:wT:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': comment = optarg; break;
		case 'w': wait = 1; break;
		case 'T':
			if (el_parse_duration(optarg, &timeout) != EL_OK)
				return output_usage(c, "--timeout: not a duration: \"%s\" (e.g. 2m)",
				    optarg);
			break;
		case 'J': output_set_json(1); break;
		case 'h': decide_help(c, approve); return CLI_OK;
		default: return output_usage(c, NULL);
		}
	}
	if (wait && !approve)
		return output_usage(c, "--wait goes with approve: a denial ends the request");
	if (timeout > 0 && !wait)
		return output_usage(c, "--timeout goes with --wait");
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
	if (status_is_bundle(req)) {   /* a bundle's id: each member's outcome */
		rc = output_json() ? output_print_json(req) : status_bundle(req);
		goto out;
	}
	if (!output_json()) {
		profile = output_str(req, "profile");
		requester = output_str(req, "requester");
		snprintf(line, sizeof(line), "%s %s (%s for %s)", approve ? "approved" : "denied",
		    id, profile ? profile : "?", requester ? requester : "?");
		output_clean(line, 0, clean, sizeof(clean));
		printf("%s\n", clean);
	}
	if (wait) {
		if (output_str(req, "id") == NULL || strcmp(output_str(req, "id"), id) != 0) {
			output_err("the broker answered without request %s's id", id);
			rc = CLI_ERR;
		} else if (wait_undecided(req)) {
			/* what the quorum still misses; `activating` is followed quietly */
			if (!output_json() && strcmp(output_str(req, "state"), "pending") == 0)
				status_next(req, stdout);
			fflush(stdout);
			rc = wait_follow(a, &req, timeout, 1, 0);
		} else
			rc = wait_outcome(req);
		goto out;
	}
	if (output_json()) {
		rc = output_print_json(req);
		goto out;
	}
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
