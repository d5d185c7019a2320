/*
 * cmd_exec.c — `elevate exec ID|--profile P -- CMD ARGS...`: runs CMD with a grant's
 * credentials in the usual AWS_* environment variables (fetched and cached as
 * `elevate creds` does), so any AWS tool uses them.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "commands.h"
#include "output.h"

#define EXEC_FAILED 127          /* as shells report a command that cannot run */

static int exec_run(int, char **);

const struct cli_cmd cmd_exec = {
	.name = "exec",
	.usage = "elevate exec ID|--profile PROFILE|BUNDLE --profile PROFILE -- CMD [ARGS...]",
	.summary = "run a command with a grant's credentials in AWS_* variables",
	.run = exec_run,
};

static void
exec_help(void)
{
	printf("usage: %s\n\n"
	    "Runs CMD with the credentials of your active grant ID (or, with --profile, of\n"
	    "your active grant of PROFILE; with a bundle's id and --profile, that member's)\n"
	    "in AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,\n"
	    "AWS_SESSION_TOKEN and AWS_CREDENTIAL_EXPIRATION, and the grant's region in\n"
	    "AWS_REGION and AWS_DEFAULT_REGION; AWS_PROFILE is removed so those are used.\n"
	    "ELEVATE_REQUEST_ID names the grant. The exit code is CMD's (%d when it cannot\n"
	    "be run).\n\n"
	    "  elevate exec req_7kq2m4x9bd3h -- aws sts get-caller-identity\n",
	    cmd_exec.usage, EXEC_FAILED);
}

static int
exec_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{"profile", required_argument, NULL, 'p'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *profile = NULL, *id = NULL;
	char region[64], rid[72];
	struct api *a = NULL;
	json_t *c = NULL;
	int ch, rc, dd, nopt;

	/* Only what comes before "--" is ours; CMD's own options must not reach getopt. */
	for (dd = 1; dd < argc && strcmp(argv[dd], "--") != 0; dd++)
		;
	nopt = dd;
	while ((ch = getopt_long(nopt, argv, "p:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'p': profile = optarg; break;
		case 'h': exec_help(); return CLI_OK;
		default: return output_usage(&cmd_exec, NULL);
		}
	}
	if (optind < nopt)
		id = argv[optind++];
	if (optind != nopt)
		return output_usage(&cmd_exec, "unexpected argument \"%s\"", argv[optind]);
	if ((id == NULL && profile == NULL) ||
	    (id != NULL && profile != NULL && !api_bundle_id(id)))
		return output_usage(&cmd_exec, "give a request ID, --profile PROFILE, or a "
		    "bundle's ID with --profile PROFILE");
	if (dd >= argc - 1)
		return output_usage(&cmd_exec, "give the command to run after --");
	if (id != NULL && !api_valid_id(id))
		return output_usage(&cmd_exec, "not a request id: \"%s\"", id);
	if ((rc = api_open(&a)) != CLI_OK)
		return rc;
	rc = creds_get(a, id, profile, &c, region, sizeof(region), rid, sizeof(rid));
	api_close(a);
	if (rc != CLI_OK)
		return rc;
	if (creds_setenv(c, region, rid) != 0) {
		output_err("cannot set the environment: %s", strerror(errno));
		rc = CLI_ERR;
	}
	creds_wipe(c);
	json_decref(c);
	if (rc != CLI_OK)
		return rc;
	fflush(stdout);
	execvp(argv[dd + 1], argv + dd + 1);
	output_err("cannot run %s: %s", argv[dd + 1], strerror(errno));
	return EXEC_FAILED;
}
