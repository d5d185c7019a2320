/*
 * main.c — owns the `elevate` command line router: global options (--json, --server,
 * --help, --version), `elevate help COMMAND`, and the table of commands (cmd_*.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "cli.h"
#include "commands.h"
#include "output.h"

static const struct cli_cmd *const commands[] = {
	&cmd_init,
	&cmd_request,
	&cmd_list,
	&cmd_status,
	&cmd_approve,
	&cmd_deny,
	&cmd_cancel,
	&cmd_revoke,
	&cmd_creds,
	&cmd_exec,
	&cmd_ssm,
	&cmd_console,
	&cmd_extend,
	&cmd_audit,
	&cmd_report,
	&cmd_debug,
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void
usage_all(FILE *f)
{
	size_t i;

	fprintf(f,
	    "usage: elevate [--json] [--server URL] COMMAND [ARGS...]\n"
	    "\n"
	    "Just-in-time access to AWS roles through the elevate broker: ask for a role for\n"
	    "a bounded time with a reason, get it approved, use it; it ends on time.\n"
	    "\n"
	    "commands:\n");
	for (i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-9s %s\n", commands[i]->name, commands[i]->summary);
	fprintf(f,
	    "\n"
	    "global options:\n"
	    "  --json          print the broker's JSON instead of tables\n"
	    "  --server URL    the broker (wins over ELEVATE_SERVER and config.json)\n"
	    "  -h, --help      this help; `elevate help COMMAND` for one command\n"
	    "  -V, --version   the version\n"
	    "\n"
	    "environment:\n"
	    "  ELEVATE_CONFIG_DIR  config and key (default $XDG_CONFIG_HOME/elevate or\n"
	    "                      ~/.config/elevate)\n"
	    "  ELEVATE_SERVER      the broker URL\n"
	    "  ELEVATE_CACHE_DIR   credential cache (default $XDG_CACHE_HOME/elevate or\n"
	    "                      ~/.cache/elevate)\n"
	    "  ELEVATE_CA_FILE     CA bundle for a broker with a private certificate\n"
	    "\n"
	    "exit codes:\n"
	    "  %3d  success\n"
	    "  %3d  error (the message says what to do)\n"
	    "  %3d  bad command line\n"
	    "  %3d  refused by the broker (denied, not allowed, wrong state)\n"
	    "  %3d  no such request, or no active grant\n"
	    "  %3d  the broker could not be reached\n"
	    "  %3d  --wait gave up before a decision\n"
	    "  %3d  interrupted (Ctrl-C)\n",
	    CLI_OK, CLI_ERR, CLI_USAGE, CLI_REFUSED, CLI_NOTFOUND, CLI_UNREACHABLE,
	    CLI_TIMEOUT, CLI_INTERRUPTED);
}

static const struct cli_cmd *
find_cmd(const char *name)
{
	size_t i;

	for (i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i]->name, name) == 0)
			return commands[i];
	return NULL;
}

static int
unknown_cmd(const char *name)
{
	output_err("unknown command \"%s\": run `elevate --help` for the list", name);
	return CLI_USAGE;
}

/* `elevate help [COMMAND]`: a command's own --help. */
static int
run_help(int argc, char **argv)
{
	static char help_opt[] = "--help";
	const struct cli_cmd *c;
	char *hargv[3];

	if (argc < 2) {
		usage_all(stdout);
		return CLI_OK;
	}
	if ((c = find_cmd(argv[1])) == NULL)
		return unknown_cmd(argv[1]);
	hargv[0] = argv[1];
	hargv[1] = help_opt;
	hargv[2] = NULL;
	return c->run(2, hargv);
}

int
main(int argc, char **argv)
{
	const struct cli_cmd *c;
	int i, rc;

	el_json_wipe_on_free();   /* credentials pass through JSON documents */
	/* Global options stop at the command name; the command parses the rest. */
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--json") == 0)
			output_set_json(1);
		else if (strcmp(argv[i], "--server") == 0) {
			if (i + 1 >= argc) {
				output_err("--server needs a URL");
				return CLI_USAGE;
			}
			api_set_server(argv[++i]);
		} else if (strncmp(argv[i], "--server=", 9) == 0)
			api_set_server(argv[i] + 9);
		else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage_all(stdout);
			return CLI_OK;
		} else if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0) {
			printf("elevate %s\n", ELEVATE_VERSION);
			return CLI_OK;
		} else {
			output_err("unknown option %s", argv[i]);
			fprintf(stderr, "usage: elevate [--json] [--server URL] COMMAND [ARGS...]\n");
			return CLI_USAGE;
		}
	}
	if (i >= argc) {
		usage_all(stderr);
		return CLI_USAGE;
	}
	if (api_global_init() != CLI_OK)
		return CLI_ERR;
	if (strcmp(argv[i], "help") == 0)
		rc = run_help(argc - i, argv + i);
	else if ((c = find_cmd(argv[i])) == NULL)
		rc = unknown_cmd(argv[i]);
	else
		rc = c->run(argc - i, argv + i);
	if (fflush(stdout) != 0 && rc == CLI_OK) {
		output_err("cannot write to stdout");
		rc = CLI_ERR;
	}
	api_global_cleanup();
	return rc;
}
