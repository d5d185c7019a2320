/*
 * cmd_cancel.c — `elevate cancel ID`: the requester withdraws a pending request
 * (POST /v1/requests/{id}/cancel).
 */
#include <getopt.h>
#include <stdio.h>

#include "api.h"
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

static int
cancel_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'J'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	char path[128];
	struct api *a = NULL;
	json_t *req = NULL;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'J': output_set_json(1); break;
		case 'h': cancel_help(); return CLI_OK;
		default: return output_usage(&cmd_cancel, NULL);
		}
	}
	if (argc - optind != 1)
		return output_usage(&cmd_cancel, "one request ID expected");
	if (!api_valid_id(argv[optind]))
		return output_usage(&cmd_cancel, "not a request id: \"%s\"", argv[optind]);
	snprintf(path, sizeof(path), "/v1/requests/%s/cancel", argv[optind]);
	if ((rc = api_open(&a)) != CLI_OK)
		return rc;
	if ((rc = api_do(a, "POST", path, NULL, &req)) != CLI_OK)
		goto out;
	if (output_json())
		rc = output_print_json(req);
	else {
		printf("cancelled %s\n", argv[optind]);
		status_next(req, stdout);
	}
out:
	json_decref(req);
	api_close(a);
	return rc;
}
