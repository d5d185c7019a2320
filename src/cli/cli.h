/*
 * cli.h — the command table of `elevate`: one file per command (cmd_*.c), each exporting
 * a const struct cli_cmd that main.c's router looks up by name.
 */
#ifndef ELEVATE_CLI_H
#define ELEVATE_CLI_H

/* Documented exit codes (README "Exit codes"). */
enum cli_exit {
	CLI_OK = 0,
	CLI_ERR = 1,        /* an error: the message says what to do */
	CLI_USAGE = 2,      /* bad command line */
	CLI_REFUSED = 3,    /* the broker refused (denied, not allowed, wrong state) */
	CLI_NOTFOUND = 4,   /* no such request / no active grant */
	CLI_UNREACHABLE = 5,/* the broker could not be reached */
	CLI_TIMEOUT = 6,    /* --wait gave up before a decision */
};

struct cli_cmd {
	const char *name;
	const char *usage;      /* "elevate request PROFILE --for DUR --reason TEXT [...]" */
	const char *summary;    /* one line for `elevate --help` */
	int (*run)(int argc, char **argv);   /* argv[0] is the command name */
};

#endif
