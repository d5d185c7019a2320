/*
 * cmd_cancel.c — `elevate cancel ID`: the requester withdraws a pending request
 * (POST /v1/requests/{id}/cancel).
 */
#include <stdio.h>

#include "commands.h"
#include "output.h"

static int cancel_run(int, char **);

const struct cli_cmd cmd_cancel = {
	.name = "cancel",
	.usage = "elevate cancel ID",
	.summary = "withdraw your pending request",
	.run = cancel_run,
};

static void
cancel_help(void)
{
	printf("usage: %s\n\n"
	    "Withdraws your pending request ID; its approval links stop working. An active\n"
	    "grant is ended with `elevate revoke ID` instead.\n\n"
	    "  --json   the broker's JSON of the request afterwards\n", cmd_cancel.usage);
}

static void
print_cancelled(const json_t *req, const char *id)
{
	printf("cancelled %s\n", id);
	status_next(req, stdout);
}

static int
cancel_run(int argc, char **argv)
{
	return status_call_one(&cmd_cancel, cancel_help, argc, argv, "POST", "/cancel",
	    print_cancelled);
}
