/*
 * cmd_extend.c — `elevate extend ID --by DUR`: asks for more time on an active grant
 * (POST /v1/requests/{id}/extend). The answer is a new pending request ("extends": ID)
 * that the profile's approvers decide like any other; once approved the grant's window
 * end moves and the extension request shows "ended". --wait follows it until applied.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "elevate/el.h"
#include "api.h"
#include "commands.h"
#include "output.h"
#include "wait.h"

#define REASON_MAX_CHARS 1024
#define TICKET_MAX 128

static int extend_run(int, char **);

const struct cli_cmd cmd_extend = {
	.name = "extend",
	.usage = "elevate extend ID --by DUR [--reason R] [--ticket T] [--wait [--timeout DUR]]",
	.summary = "ask for more time on an active grant",
	.run = extend_run,
};

static void
extend_help(void)
{
	printf("usage: %s\n\n"
	    "Asks to extend your active grant ID by DUR. This is a new request (it extends\n"
	    "ID) that the profile's approvers decide as usual; once approved, ID's window\n"
	    "ends DUR later, with the same credentials. The whole window must still fit the\n"
	    "profile's max_duration.\n\n"
	    "  --by DUR         how much longer, e.g. 15m, 1h\n"
	    "  --reason R       why (default: the grant's reason)\n"
	    "  --ticket T       a ticket reference (default: the grant's)\n"
	    "  --wait           wait for the decision and, once approved, for the broker to\n"
	    "                   apply it; exit 0 once the grant is extended, %d when denied,\n"
	    "                   cancelled, lapsed or failed, %d on timeout. Ctrl-C stops\n"
	    "                   waiting and leaves the request as it is.\n"
	    "  --timeout DUR    with --wait: give up after DUR (default: when the request\n"
	    "                   would lapse, or %d minutes once it is approved)\n"
	    "  --json           print the broker's JSON of the extension request\n",
	    cmd_extend.usage, CLI_REFUSED, CLI_TIMEOUT, WAIT_ACTIVATING_MAX / 60);
}

static int
extend_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{"by", required_argument, NULL, 'b'},
		{"reason", required_argument, NULL, 'r'},
		{"ticket", required_argument, NULL, 't'},
		{"wait", no_argument, NULL, 'w'},
		{"timeout", required_argument, NULL, 'T'},
		{"json", no_argument, NULL, 'J'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *by = NULL, *reason = NULL, *ticket = NULL, *grant, *st, *id;
	char path[128];
	int64_t secs, timeout = 0;
	struct api *a = NULL;
	json_t *body = NULL, *req = NULL;
	int ch, wait = 0, rc;

	while ((ch = getopt_long(argc, argv, "b:r:t:wT:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'b': by = optarg; break;
		case 'r': reason = optarg; break;
		case 't': ticket = optarg; break;
		case 'w': wait = 1; break;
		case 'T':
			if (el_parse_duration(optarg, &timeout) != EL_OK)
				return output_usage(&cmd_extend, "--timeout: not a duration: "
				    "\"%s\" (e.g. 10m, 1h)", optarg);
			break;
		case 'J': output_set_json(1); break;
		case 'h': extend_help(); return CLI_OK;
		default: return output_usage(&cmd_extend, NULL);
		}
	}
	if (argc - optind != 1)
		return output_usage(&cmd_extend, "one request ID expected");
	grant = argv[optind];
	if (!api_valid_id(grant))
		return output_usage(&cmd_extend, "not a request id: \"%s\"", grant);
	if (by == NULL)
		return output_usage(&cmd_extend, "--by DUR is required (e.g. --by 30m)");
	if (el_parse_duration(by, &secs) != EL_OK || secs <= 0)
		return output_usage(&cmd_extend, "--by: not a duration: \"%s\" (e.g. 15m, 1h)",
		    by);
	if (reason != NULL && output_width(reason) > REASON_MAX_CHARS)
		return output_usage(&cmd_extend, "--reason is %zu characters; at most %d",
		    output_width(reason), REASON_MAX_CHARS);
	if (ticket != NULL && (strlen(ticket) > TICKET_MAX || output_has_control(ticket)))
		return output_usage(&cmd_extend, "--ticket: at most %d printable characters",
		    TICKET_MAX);
	if (timeout > 0 && !wait)
		return output_usage(&cmd_extend, "--timeout goes with --wait");
	if ((body = json_object()) == NULL ||
	    json_object_set_new(body, "by", json_string(by)) != 0 ||
	    (reason != NULL && json_object_set_new(body, "reason", json_string(reason)) != 0) ||
	    (ticket != NULL && json_object_set_new(body, "ticket", json_string(ticket)) != 0)) {
		json_decref(body);
		return output_usage(&cmd_extend, "arguments must be valid UTF-8 text");
	}
	snprintf(path, sizeof(path), "/v1/requests/%s/extend", grant);
	if ((rc = api_open(&a)) != CLI_OK)
		goto out;
	if ((rc = api_do(a, "POST", path, body, &req)) != CLI_OK)
		goto out;
	if (status_is_bundle(req)) {   /* a bundle's id: each member's outcome */
		rc = output_json() ? output_print_json(req) : status_bundle(req);
		goto out;
	}
	st = output_str(req, "state");
	id = output_str(req, "id");
	if (st == NULL || id == NULL || !api_valid_id(id)) {
		output_err("the broker answered without a usable request id and state");
		rc = CLI_ERR;
		goto out;
	}
	if (wait && strcmp(st, "pending") == 0) {
		if (!output_json())
			printf("%s  extends %s  pending\n", id, grant);
		status_next(req, output_json() ? stderr : stdout);
		fflush(stdout);
		rc = wait_follow(a, &req, timeout, 0, 1);
		goto out;
	}
	if (output_json()) {
		rc = output_print_json(req);
		goto out;
	}
	printf("%s  extends %s  %s\n", id, grant, st);
	if (strcmp(st, "pending") == 0) {
		status_next(req, stdout);
		printf("follow it: elevate status %s\n", id);
		rc = CLI_OK;
	} else
		rc = wait_outcome(req);
out:
	json_decref(body);
	json_decref(req);
	api_close(a);
	return rc;
}
