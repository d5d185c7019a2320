/*
 * cmd_request.c — `elevate request PROFILE`: asks the broker for a role for a bounded
 * time (POST /v1/requests) and, with --wait, follows the request until someone decides,
 * reporting each change on stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "elevate/el.h"
#include "api.h"
#include "commands.h"
#include "output.h"

#define REASON_MAX_CHARS 1024
#define TICKET_MAX 128
#define PROFILE_MAX 128
#define POLL_TICK_MS 250
#define POLL_TICKS 8              /* a poll every 2 s */
#define LAPSE_GRACE 10            /* s after pending_until, to see the broker say "lapsed" */

static int request_run(int, char **);

const struct cli_cmd cmd_request = {
	.name = "request",
	.usage = "elevate request PROFILE --for DUR --reason TEXT [--ticket T] "
	    "[--wait [--timeout DUR]]",
	.summary = "ask for a role for a bounded time",
	.run = request_run,
};

static volatile sig_atomic_t interrupted;

static void
request_help(void)
{
	printf("usage: %s\n\n"
	    "Asks the broker for PROFILE (a role named in the policy) for a bounded time.\n"
	    "The approvers named in the policy are told; `elevate status ID` follows it.\n\n"
	    "  --for DUR        how long, e.g. 10m, 1h, 1h30m (the profile's default if\n"
	    "                   omitted; the policy caps it)\n"
	    "  --reason TEXT    why, shown to the approvers (at most %d characters)\n"
	    "  --ticket T       a ticket reference, when the profile asks for one\n"
	    "  --wait           wait for the decision; exit 0 once active, %d when denied,\n"
	    "                   cancelled, lapsed or failed, %d on timeout. Ctrl-C stops\n"
	    "                   waiting and leaves the request pending.\n"
	    "  --timeout DUR    with --wait: give up after DUR (default: when the request\n"
	    "                   would lapse)\n"
	    "  --json           print the broker's JSON of the request\n",
	    cmd_request.usage, REASON_MAX_CHARS, CLI_REFUSED, CLI_TIMEOUT);
}

static int
has_control(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

static void
on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void
catch_interrupts(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;    /* no SA_RESTART: the sleep returns at once */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

/* What --wait reports when it changes. */
struct seen {
	char state[32];
	size_t approvals;
	char missing[EL_WHYLEN];
	int unreachable;
};

static void
spinner_clear(int tty, int *shown)
{
	if (tty && *shown) {
		fprintf(stderr, "\r%60s\r", "");
		*shown = 0;
	}
}

static void
report_changes(const json_t *req, struct seen *s, int tty, int *shown)
{
	const json_t *ap = json_object_get(req, "approvals"), *x;
	const char *st = output_str(req, "state"), *missing;
	char clean[EL_WHYLEN * 2];
	size_t i;

	missing = output_str(json_object_get(req, "quorum"), "missing");
	for (i = s->approvals; i < json_array_size(ap); i++) {
		const char *who, *d, *c;
		char line[EL_WHYLEN * 2];

		x = json_array_get(ap, i);
		who = output_str(x, "approver");
		d = output_str(x, "decision");
		c = output_str(x, "comment");
		spinner_clear(tty, shown);
		snprintf(line, sizeof(line), "%s %s%s%s", who ? who : "someone",
		    d && strcmp(d, "deny") == 0 ? "denied" : "approved", c && *c ? ": " : "",
		    c && *c ? c : "");
		output_clean(line, 400, clean, sizeof(clean));
		fprintf(stderr, "%s\n", clean);
	}
	s->approvals = json_array_size(ap);
	if (st != NULL && strcmp(st, "pending") == 0 && missing != NULL &&
	    strcmp(missing, s->missing) != 0) {
		if (s->missing[0] != '\0') {
			spinner_clear(tty, shown);
			output_clean(missing, 400, clean, sizeof(clean));
			fprintf(stderr, "still %s\n", clean);
		}
		el_strlcpy(s->missing, missing, sizeof(s->missing));
	}
	if (st != NULL)
		el_strlcpy(s->state, st, sizeof(s->state));
}

/* The exit code for a decided request, after saying what became of it. */
static int
outcome(const json_t *req)
{
	const char *st = output_str(req, "state");

	if (output_json())
		output_print_json(req);
	else
		status_next(req, stdout);
	if (st == NULL)
		return CLI_ERR;
	if (strcmp(st, "active") == 0)
		return CLI_OK;
	if (strcmp(st, "ending") == 0 || strcmp(st, "ended") == 0)
		return CLI_ERR;       /* approved, but the window is already over */
	return CLI_REFUSED;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);       /* EINTR on Ctrl-C is what we want */
}

static int
wait_decision(struct api *a, json_t **reqp, int64_t timeout)
{
	static const char spin[] = "|/-\\";
	json_t *req = *reqp, *next;
	char id[72], path[128], at[32];
	struct api_error e;
	struct seen s;
	int64_t deadline = 0, pu;
	int tty = isatty(STDERR_FILENO), shown = 0, tick, frame = 0, rc;

	memset(&s, 0, sizeof(s));
	el_strlcpy(id, output_str(req, "id"), sizeof(id));   /* checked by the caller */
	report_changes(req, &s, 0, &shown);
	snprintf(path, sizeof(path), "/v1/requests/%s", id);
	pu = output_time(req, "pending_until");
	if (timeout > 0)
		deadline = el_now() + timeout;
	else if (pu > 0)
		deadline = pu + LAPSE_GRACE;
	catch_interrupts();
	api_set_cancel(a, &interrupted);
	while (strcmp(s.state, "pending") == 0) {
		for (tick = 0; tick < POLL_TICKS && !interrupted; tick++) {
			if (tty) {
				fprintf(stderr, "\rwaiting for a decision on %s %c", id,
				    spin[frame++ % 4]);
				shown = 1;
			}
			sleep_ms(POLL_TICK_MS);
		}
		if (interrupted)
			break;
		if (deadline > 0 && el_now() >= deadline) {
			spinner_clear(tty, &shown);
			output_err("gave up waiting: %s is still pending (check it with "
			    "`elevate status %s`)", id, id);
			api_set_cancel(a, NULL);
			if (output_json())
				output_print_json(req);   /* scripts still learn the id */
			return CLI_TIMEOUT;
		}
		if ((rc = api_call(a, "GET", path, NULL, &next, &e)) == CLI_INTERRUPTED)
			break;
		if (rc == CLI_UNREACHABLE) {
			/* A broker restart should not end the wait; say so once. */
			if (!s.unreachable) {
				spinner_clear(tty, &shown);
				api_perror(&e);
				fprintf(stderr, "still trying...\n");
			}
			s.unreachable = 1;
			continue;
		}
		if (rc != CLI_OK) {
			spinner_clear(tty, &shown);
			api_perror(&e);
			api_set_cancel(a, NULL);
			return rc;
		}
		s.unreachable = 0;
		json_decref(req);
		*reqp = req = next;
		report_changes(req, &s, tty, &shown);
	}
	spinner_clear(tty, &shown);
	api_set_cancel(a, NULL);
	if (interrupted) {
		if (output_json())
			output_print_json(req);
		if (pu > 0) {
			el_format_time(pu, at, sizeof(at));
			output_err("interrupted: %s is still pending (until %s); `elevate status %s` "
			    "follows it, `elevate cancel %s` withdraws it", id, at, id, id);
		} else
			output_err("interrupted: %s is still pending; `elevate status %s` follows "
			    "it, `elevate cancel %s` withdraws it", id, id, id);
		return CLI_INTERRUPTED;
	}
	return outcome(req);
}

static int
request_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{"for", required_argument, NULL, 'f'},
		{"reason", required_argument, NULL, 'r'},
		{"ticket", required_argument, NULL, 't'},
		{"wait", no_argument, NULL, 'w'},
		{"timeout", required_argument, NULL, 'T'},
		{"json", no_argument, NULL, 'J'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *dur = NULL, *reason = NULL, *ticket = NULL, *profile, *st, *id;
	int64_t secs, timeout = 0;
	struct api *a = NULL;
	json_t *body = NULL, *req = NULL;
	int ch, wait = 0, rc;

	while ((ch = getopt_long(argc, argv, "f:r:t:wT:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'f': dur = optarg; break;
		case 'r': reason = optarg; break;
		case 't': ticket = optarg; break;
		case 'w': wait = 1; break;
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
	if (*profile == '\0' || strlen(profile) > PROFILE_MAX || has_control(profile))
		return output_usage(&cmd_request, "not a profile name: \"%s\"", profile);
	if (dur != NULL && el_parse_duration(dur, &secs) != EL_OK)
		return output_usage(&cmd_request, "--for: not a duration: \"%s\" (e.g. 10m, 1h, "
		    "1h30m)", dur);
	if (reason != NULL && output_width(reason) > REASON_MAX_CHARS)
		return output_usage(&cmd_request, "--reason is %zu characters; at most %d",
		    output_width(reason), REASON_MAX_CHARS);
	if (ticket != NULL && (strlen(ticket) > TICKET_MAX || has_control(ticket)))
		return output_usage(&cmd_request, "--ticket: at most %d printable characters",
		    TICKET_MAX);
	if (timeout > 0 && !wait)
		return output_usage(&cmd_request, "--timeout goes with --wait");
	if ((body = json_object()) == NULL ||
	    json_object_set_new(body, "profile", json_string(profile)) != 0 ||
	    (dur != NULL && json_object_set_new(body, "duration", json_string(dur)) != 0) ||
	    (reason != NULL && json_object_set_new(body, "reason", json_string(reason)) != 0) ||
	    (ticket != NULL && json_object_set_new(body, "ticket", json_string(ticket)) != 0)) {
		/* json_string() refuses text that is not UTF-8 */
		json_decref(body);
		return output_usage(&cmd_request, "arguments must be valid UTF-8 text");
	}
	if ((rc = api_open(&a)) != CLI_OK)
		goto out;
	if ((rc = api_do(a, "POST", "/v1/requests", body, &req)) != CLI_OK)
		goto out;
	st = output_str(req, "state");
	id = output_str(req, "id");
	if (st == NULL || id == NULL || !api_valid_id(id)) {
		output_err("the broker answered without a usable request id and state");
		rc = CLI_ERR;
		goto out;
	}
	if (wait && strcmp(st, "pending") == 0) {
		if (!output_json())
			printf("%s  %s  pending\n", id, profile);
		status_next(req, output_json() ? stderr : stdout);
		fflush(stdout);
		rc = wait_decision(a, &req, timeout);
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
