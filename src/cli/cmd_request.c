/*
 * cmd_request.c — `elevate request PROFILE`: asks the broker for a role for a bounded
 * time (POST /v1/requests) and, with --wait, follows the request until someone decides
 * and the credentials are minted, reporting each change on stderr. `elevate request
 * A,B` asks for several profiles in one request (a bundle).
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
#define PROFILE_MAX 128
#define BUNDLE_MAX 10         /* profiles in one request: the broker's limit too */

static int request_run(int, char **);

const struct cli_cmd cmd_request = {
	.name = "request",
	.usage = "elevate request PROFILE[,PROFILE...] --for DUR --reason TEXT [--ticket T] "
	    "[--at TIME | --in DUR] [--break-glass] [--wait [--timeout DUR]]",
	.summary = "ask for a role for a bounded time",
	.run = request_run,
};

static void
request_help(void)
{
	printf("usage: %s\n\n"
	    "Asks the broker for PROFILE (a role named in the policy) for a bounded time.\n"
	    "The approvers named in the policy are told; `elevate status ID` follows it.\n"
	    "Several profiles, comma-separated (at most %d), make one request, a bundle\n"
	    "(id bun_...): each profile is a member request with its own approvers, quorum\n"
	    "and credentials (elevate creds BUNDLE --profile P); cancel, revoke and extend\n"
	    "on the bundle's id act on every member. A bundle takes no --break-glass and\n"
	    "no --wait (follow it with elevate status BUNDLE).\n\n"
	    "  --for DUR        how long, e.g. 10m, 1h, 1h30m (the profile's default if\n"
	    "                   omitted; the policy caps it)\n"
	    "  --reason TEXT    why, shown to the approvers (at most %d characters)\n"
	    "  --ticket T       a ticket reference, when the profile asks for one\n"
	    "  --at TIME        schedule the window to start at TIME (RFC 3339, e.g.\n"
	    "                   2026-12-02T09:00:00+09:00); approvals may come before it\n"
	    "                   and the policy is checked again when it starts\n"
	    "  --in DUR         the same, DUR from now (e.g. 3h)\n"
	    "  --break-glass    an emergency: active at once without approval, where the\n"
	    "                   profile allows it (break_glass in the policy). The\n"
	    "                   approvers and the security team are told at once and an\n"
	    "                   approver reviews it afterwards: deny revokes it. Needs a\n"
	    "                   reason.\n"
	    "  --wait           wait for the decision and, once approved, for the broker to\n"
	    "                   mint the credentials; exit 0 once active, %d when denied,\n"
	    "                   cancelled, lapsed or failed, %d on timeout. Ctrl-C stops\n"
	    "                   waiting and leaves the request as it is.\n"
	    "  --timeout DUR    with --wait: give up after DUR (default: when the request\n"
	    "                   would lapse, or %d minutes once it is approved)\n"
	    "  --json           print the broker's JSON of the request\n",
	    cmd_request.usage, BUNDLE_MAX, REASON_MAX_CHARS, CLI_REFUSED, CLI_TIMEOUT,
	    WAIT_ACTIVATING_MAX / 60);
}

/* "a,b" (checked) as a JSON array. */
static json_t *
profiles_json(const char *list)
{
	struct el_why w;
	char **v;
	size_t n, i;
	json_t *a;

	if (el_split_list(list, ',', BUNDLE_MAX, PROFILE_MAX, &v, &n, &w) != EL_OK)
		return NULL;
	a = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	el_strv_free(v, n);
	return a;
}

/* A bundle as created: its id and each member's id, profile and state. */
static int
bundle_print(json_t *b)
{
	const char *id = output_str(b, "id");
	json_t *m;
	size_t i;

	if (id == NULL || !api_bundle_id(id)) {
		output_err("the broker answered without a usable bundle id");
		return CLI_ERR;
	}
	printf("%s  bundle of %zu  %s\n", id, json_array_size(json_object_get(b, "members")),
	    output_str(b, "state") ? output_str(b, "state") : "?");
	json_array_foreach(json_object_get(b, "members"), i, m) {
		printf("  %s  %s  %s\n", output_str(m, "id") ? output_str(m, "id") : "?",
		    output_str(m, "profile") ? output_str(m, "profile") : "?",
		    output_str(m, "state") ? output_str(m, "state") : "?");
		status_next(m, stdout);
	}
	printf("follow it: elevate status %s\n", id);
	return CLI_OK;
}

static int
request_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{"for", required_argument, NULL, 'f'},
		{"reason", required_argument, NULL, 'r'},
		{"ticket", required_argument, NULL, 't'},
		{"wait", no_argument, NULL, 'w'},
		{"break-glass", no_argument, NULL, 'B'},
		{"at", required_argument, NULL, 'A'},
		{"in", required_argument, NULL, 'I'},
		{"timeout", required_argument, NULL, 'T'},
		{"json", no_argument, NULL, 'J'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *dur = NULL, *reason = NULL, *ticket = NULL, *profile, *st, *id, *at = NULL;
	char atbuf[32];
	int64_t in = 0, t;
	int64_t secs, timeout = 0;
	struct api *a = NULL;
	json_t *body = NULL, *req = NULL;
	int ch, wait = 0, glass = 0, rc;
	char **names = NULL;
	size_t nnames = 0;
	struct el_why why;

	while ((ch = getopt_long(argc, argv, "f:r:t:wT:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'f': dur = optarg; break;
		case 'r': reason = optarg; break;
		case 't': ticket = optarg; break;
		case 'w': wait = 1; break;
		case 'B': glass = 1; break;
		case 'A': at = optarg; break;
		case 'I':
			if (el_parse_duration(optarg, &in) != EL_OK || in <= 0)
				return output_usage(&cmd_request, "--in: not a duration: \"%s\" "
				    "(e.g. 30m, 3h)", optarg);
			break;
		case 'T':
			if (el_parse_duration(optarg, &timeout) != EL_OK)
				return output_usage(&cmd_request, "--timeout: not a duration: "
				    "\"%s\" (e.g. 10m, 1h)", optarg);
			break;
		case 'J': output_set_json(1); break;
		case 'h': request_help(); return CLI_OK;
		default: return output_usage(&cmd_request, NULL);
		}
	}
	if (argc - optind != 1)
		return output_usage(&cmd_request, "one PROFILE expected");
	profile = argv[optind];
	if (*profile == '\0' || strlen(profile) > PROFILE_MAX * BUNDLE_MAX ||
	    output_has_control(profile))
		return output_usage(&cmd_request, "not a profile name: \"%.128s\"", profile);
	if (strchr(profile, ',') != NULL) {
		if (el_split_list(profile, ',', BUNDLE_MAX, PROFILE_MAX, &names, &nnames, &why)
		    != EL_OK)
			return output_usage(&cmd_request, "profiles: %s", why.msg);
		el_strv_free(names, nnames);   /* the broker gets them as given */
		if (glass || wait) {
			return output_usage(&cmd_request, "%s takes one profile; request the "
			    "profiles one by one", glass ? "--break-glass" : "--wait");
		}
	} else if (strlen(profile) > PROFILE_MAX)
		return output_usage(&cmd_request, "not a profile name: \"%.128s\"", profile);
	if (dur != NULL && el_parse_duration(dur, &secs) != EL_OK)
		return output_usage(&cmd_request, "--for: not a duration: \"%s\" (e.g. 10m, 1h, "
		    "1h30m)", dur);
	if (reason != NULL && output_width(reason) > REASON_MAX_CHARS)
		return output_usage(&cmd_request, "--reason is %zu characters; at most %d",
		    output_width(reason), REASON_MAX_CHARS);
	if (ticket != NULL && (strlen(ticket) > TICKET_MAX || output_has_control(ticket)))
		return output_usage(&cmd_request, "--ticket: at most %d printable characters",
		    TICKET_MAX);
	if (timeout > 0 && !wait)
		return output_usage(&cmd_request, "--timeout goes with --wait");
	if (at != NULL && in > 0)
		return output_usage(&cmd_request, "--at or --in, not both");
	if (at != NULL && el_parse_time_offset(at, &t) != EL_OK)
		return output_usage(&cmd_request, "--at: not a time: \"%s\" (e.g. "
		    "2026-12-02T09:00:00+09:00)", at);
	if (in > 0) {
		el_format_time(el_now() + in, atbuf, sizeof(atbuf));
		at = atbuf;
	}
	if (glass && at != NULL)
		return output_usage(&cmd_request, "--break-glass starts now: no --at or --in");
	if (glass && (reason == NULL || *reason == '\0'))
		return output_usage(&cmd_request, "--break-glass needs --reason: say what the "
		    "emergency is");
	if ((body = json_object()) == NULL ||
	    (nnames == 0 && json_object_set_new(body, "profile", json_string(profile)) != 0) ||
	    (nnames > 0 && json_object_set_new(body, "profiles", profiles_json(profile)) != 0) ||
	    (dur != NULL && json_object_set_new(body, "duration", json_string(dur)) != 0) ||
	    (reason != NULL && json_object_set_new(body, "reason", json_string(reason)) != 0) ||
	    (ticket != NULL && json_object_set_new(body, "ticket", json_string(ticket)) != 0) ||
	    (glass && json_object_set_new(body, "break_glass", json_true()) != 0) ||
	    (at != NULL && json_object_set_new(body, "start_at", json_string(at)) != 0)) {
		/* json_string() refuses text that is not UTF-8 */
		json_decref(body);
		return output_usage(&cmd_request, "arguments must be valid UTF-8 text");
	}
	if ((rc = api_open(&a)) != CLI_OK)
		goto out;
	if ((rc = api_do(a, "POST", "/v1/requests", body, &req)) != CLI_OK)
		goto out;
	if (nnames > 0) {
		rc = output_json() ? output_print_json(req) : bundle_print(req);
		goto out;
	}
	st = output_str(req, "state");
	id = output_str(req, "id");
	if (st == NULL || id == NULL || !api_valid_id(id)) {
		output_err("the broker answered without a usable request id and state");
		rc = CLI_ERR;
		goto out;
	}
	if (glass && !output_json())
		fprintf(stderr, "BREAK-GLASS: %s is active without approval; the approvers and "
		    "the security team have been told, and an approver will review it\n", id);
	if (wait && wait_undecided(req)) {
		if (!output_json())
			printf("%s  %s  %s\n", id, profile, st);
		status_next(req, output_json() ? stderr : stdout);
		fflush(stdout);
		rc = wait_follow(a, &req, timeout, 1, 1);
		goto out;
	}
	if (output_json()) {
		rc = output_print_json(req);
		goto out;
	}
	printf("%s  %s  %s\n", id, profile, st);
	status_next(req, stdout);
	if (strcmp(st, "pending") == 0)
		printf("follow it: elevate status %s\n", id);
	rc = strcmp(st, "failed") == 0 || strcmp(st, "denied") == 0 ? CLI_REFUSED : CLI_OK;
out:
	json_decref(body);
	json_decref(req);
	api_close(a);
	return rc;
}
