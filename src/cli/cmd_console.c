/*
 * cmd_console.c — `elevate console ID|--profile P [--print] [--destination URL]`: the AWS
 * console for an active grant. The broker turns the grant's credentials into a federation
 * sign-in URL (POST /v1/requests/{id}/console); this opens it with xdg-open, or prints it.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "elevate/el.h"
#include "api.h"
#include "commands.h"
#include "output.h"

static int console_run(int, char **);

const struct cli_cmd cmd_console = {
	.name = "console",
	.usage = "elevate console ID | elevate console [BUNDLE] --profile PROFILE [--print] "
	    "[--destination URL]",
	.summary = "open the AWS console as an active grant's role",
	.run = console_run,
};

static void
console_help(void)
{
	printf("usage: %s\n\n"
	    "Opens the AWS console signed in as your active grant ID's role (with --profile,\n"
	    "your active grant of PROFILE with the latest end; with a bundle's id and\n"
	    "--profile, that member's grant). The broker exchanges the\n"
	    "grant's credentials at the AWS federation endpoint for a sign-in URL; it is\n"
	    "opened with xdg-open. The URL signs anyone in who has it for 15 minutes: keep it\n"
	    "to yourself.\n\n"
	    "The console is the role session: it cannot outlive the window. After the\n"
	    "window's end (or a revocation) AWS denies every action in it.\n\n"
	    "  --print             print the URL instead of opening it\n"
	    "  --destination URL   the console page to land on (https://, default the home)\n"
	    "  --json              print the broker's answer {id, url, window_end, ...}\n",
	    cmd_console.usage);
}

/* xdg-open URL, quietly; 0 when it ran and succeeded. */
static int
open_url(const char *url)
{
	pid_t pid;
	int status, fd;

	if ((pid = fork()) < 0)
		return -1;
	if (pid == 0) {
		if ((fd = open("/dev/null", O_RDWR)) >= 0) {
			dup2(fd, STDIN_FILENO);
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		execlp("xdg-open", "xdg-open", url, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int
console_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{"profile", required_argument, NULL, 'p'},
		{"print", no_argument, NULL, 'P'},
		{"destination", required_argument, NULL, 'd'},
		{"json", no_argument, NULL, 'J'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *profile = NULL, *id = NULL, *dest = NULL, *url;
	char cid[72], path[128], end[64];
	struct api *a = NULL;
	json_t *body = NULL, *res = NULL;
	int ch, rc, print = 0;

	while ((ch = getopt_long(argc, argv, "p:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'p': profile = optarg; break;
		case 'P': print = 1; break;
		case 'd': dest = optarg; break;
		case 'J': output_set_json(1); break;
		case 'h': console_help(); return CLI_OK;
		default: return output_usage(&cmd_console, NULL);
		}
	}
	if (optind < argc)
		id = argv[optind++];
	if (optind != argc || (id == NULL && profile == NULL) ||
	    (id != NULL && profile != NULL && !api_bundle_id(id)))
		return output_usage(&cmd_console, "give a request ID, --profile PROFILE, or a "
		    "bundle's ID with --profile PROFILE");
	if (id != NULL && !api_valid_id(id))
		return output_usage(&cmd_console, "not a request id: \"%s\"", id);
	if (profile != NULL && (*profile == '\0' || strlen(profile) > NAME_MAX_LEN))
		return output_usage(&cmd_console, "not a profile name: \"%s\"", profile);
	if (dest != NULL && (strncmp(dest, "https://", 8) != 0 || strlen(dest) > 1024))
		return output_usage(&cmd_console, "--destination must be an https:// URL of "
		    "at most 1024 characters");
	if ((rc = api_open(&a)) != CLI_OK)
		return rc;
	if (id != NULL && api_bundle_id(id)) {
		if ((rc = creds_bundle_member(a, id, profile, cid, sizeof(cid))) != CLI_OK)
			goto out;
	} else if (id != NULL)
		el_strlcpy(cid, id, sizeof(cid));
	else if ((rc = creds_grant_id(a, profile, cid, sizeof(cid))) != CLI_OK)
		goto out;
	body = dest != NULL ? json_pack("{s:s}", "destination", dest) : json_object();
	snprintf(path, sizeof(path), "/v1/requests/%s/console", cid);
	if ((rc = api_do(a, "POST", path, body, &res)) != CLI_OK)
		goto out;
	if ((url = output_str(res, "url")) == NULL || strncmp(url, "http", 4) != 0 ||
	    output_has_control(url)) {
		output_err("the broker's answer holds no sign-in URL");
		rc = CLI_ERR;
		goto out;
	}
	output_clean(output_str(res, "window_end") ? output_str(res, "window_end") : "?", 40,
	    end, sizeof(end));
	if (output_json()) {
		rc = output_print_json(res);
	} else if (print) {
		printf("%s\n", url);
		fprintf(stderr, "the URL signs in for 15 minutes; the console session ends with "
		    "the window at %s (AWS denies every action after it)\n", end);
	} else if (open_url(url) == 0) {
		fprintf(stderr, "opened the AWS console for %s; it ends with the window at %s "
		    "(AWS denies every action after it)\n", cid, end);
	} else {
		output_err("could not run xdg-open to open the console: run `elevate console "
		    "%s --print` and open the URL yourself (it is good for 15 minutes)", cid);
		rc = CLI_ERR;
	}
out:
	if (res != NULL && (url = output_str(res, "url")) != NULL)
		sodium_memzero((void *)(uintptr_t)url, strlen(url));
	json_decref(res);
	json_decref(body);
	api_close(a);
	return rc;
}
