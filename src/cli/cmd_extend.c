/*
 * cmd_extend.c — `elevate extend ID --by DUR`: asks for more time on an active grant
 * (POST /v1/requests/{id}/extend). The answer is a new pending request ("extends": ID)
 * that the profile's approvers decide like any other; once approved the grant's window
 * end moves and the extension request shows "ended". --wait follows it until decided.
 */
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
#define POLL_TICK_MS 250
#define POLL_TICKS 8              /* a poll every 2 s */
#define LAPSE_GRACE 10            /* s after pending_until, to see the broker say "lapsed" */

static int extend_run(int, char **);

const struct cli_cmd cmd_extend = {
	.name = "extend",
	.usage = "elevate extend ID --by DUR [--reason R] [--ticket T] [--wait [--timeout DUR]]",
	.summary = "ask for more time on an active grant",
	.run = extend_run,
};

static volatile sig_atomic_t interrupted;

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
	    "  --wait           wait for the decision; exit 0 once the grant is extended, %d\n"
	    "                   when denied, cancelled, lapsed or failed, %d on timeout.\n"
	    "                   Ctrl-C stops waiting and leaves the request pending.\n"
	    "  --timeout DUR    with --wait: give up after DUR (default: when the request\n"
	    "                   would lapse)\n"
	    "  --json           print the broker's JSON of the extension request\n",
	    cmd_extend.usage, CLI_REFUSED, CLI_TIMEOUT);
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

static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);       /* EINTR on Ctrl-C is what we want */
}

/* New approvals and denials of req since *seen, one line each on stderr. */
static void
report_decisions(const json_t *req, size_t *seen)
{
	const json_t *ap = json_object_get(req, "approvals"), *x;
	const char *who, *d, *c;
	char line[EL_WHYLEN * 2], clean[EL_WHYLEN * 2];
	size_t i;

	for (i = *seen; i < json_array_size(ap); i++) {
		x = json_array_get(ap, i);
		who = output_str(x, "approver");
		d = output_str(x, "decision");
		c = output_str(x, "comment");
		snprintf(line, sizeof(line), "%s %s%s%s", who ? who : "someone",
		    d && strcmp(d, "deny") == 0 ? "denied" : "approved", c && *c ? ": " : "",
		    c && *c ? c : "");
		output_clean(line, 400, clean, sizeof(clean));
		fprintf(stderr, "%s\n", clean);
	}
	*seen = json_array_size(ap);
}

/*
 * The exit code for a decided extension of grant, after saying what became of it: an
 * applied extension is "ended" with the grant's new window end as its own.
 */
static int
outcome(const json_t *req, const char *grant)
{
	const char *st = output_str(req, "state");
	char at[32], rel[64];
	int64_t t;

	if (output_json())
		output_print_json(req);
	if (st != NULL && strcmp(st, "ended") == 0 && (t = output_time(req, "window_end")) > 0) {
		if (!output_json()) {
			el_format_time(t, at, sizeof(at));
			output_reltime(t, el_now(), rel, sizeof(rel));
			printf("extended %s: active until %s (ends %s)\n", grant, at, rel);
		}
		return CLI_OK;
	}
	if (!output_json())
		status_next(req, stdout);
	return CLI_REFUSED;
}

/* Follows the extension request *reqp until it is decided; Ctrl-C stops waiting. */
static int
wait_decision(struct api *a, json_t **reqp, const char *grant, int64_t timeout)
{
	static const char spin[] = "|/-\\";
	json_t *req = *reqp, *next;
	char id[72], path[128];
	struct api_error e;
	size_t seen = 0;
	int64_t deadline = 0, pu;
	int tty = isatty(STDERR_FILENO), shown = 0, tick, frame = 0, rc, unreachable = 0;
	const char *st;

	el_strlcpy(id, output_str(req, "id"), sizeof(id));   /* checked by the caller */
	report_decisions(req, &seen);
	snprintf(path, sizeof(path), "/v1/requests/%s", id);
	pu = output_time(req, "pending_until");
	if (timeout > 0)
		deadline = el_now() + timeout;
	else if (pu > 0)
		deadline = pu + LAPSE_GRACE;
	catch_interrupts();
	api_set_cancel(a, &interrupted);
	rc = CLI_OK;
	while ((st = output_str(req, "state")) != NULL && strcmp(st, "pending") == 0) {
		for (tick = 0; tick < POLL_TICKS && !interrupted; tick++) {
			if (tty) {
				fprintf(stderr, "\rwaiting for a decision on %s %c", id,
				    spin[frame++ % 4]);
				shown = 1;
			}
			sleep_ms(POLL_TICK_MS);
		}
		if (tty && shown) {
			fprintf(stderr, "\r%60s\r", "");
			shown = 0;
		}
		if (interrupted) {
			rc = CLI_INTERRUPTED;
			break;
		}
		if (deadline > 0 && el_now() >= deadline) {
			rc = CLI_TIMEOUT;
			break;
		}
		if ((rc = api_call(a, "GET", path, NULL, &next, &e)) == CLI_INTERRUPTED)
			break;
		if (rc == CLI_UNREACHABLE) {
			/* A broker restart should not end the wait; say so once. */
			if (!unreachable) {
				api_perror(&e);
				fprintf(stderr, "still trying...\n");
			}
			unreachable = 1;
			rc = CLI_OK;
			continue;
		}
		if (rc != CLI_OK) {
			api_perror(&e);
			break;
		}
		unreachable = 0;
		json_decref(req);
		*reqp = req = next;
		report_decisions(req, &seen);
	}
	api_set_cancel(a, NULL);
	if (rc == CLI_TIMEOUT || rc == CLI_INTERRUPTED) {
		if (output_json())
			output_print_json(req);       /* scripts still learn the id */
		output_err("%s: the extension %s is still pending (`elevate status %s` follows it, "
		    "`elevate cancel %s` withdraws it)", rc == CLI_TIMEOUT ? "gave up waiting" :
		    "interrupted", id, id, id);
		return rc;
	}
	if (rc != CLI_OK)
		return rc;
	return outcome(req, grant);
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
	if (ticket != NULL && (strlen(ticket) > TICKET_MAX || has_control(ticket)))
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
		rc = wait_decision(a, &req, grant, timeout);
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
		rc = outcome(req, grant);
out:
	json_decref(body);
	json_decref(req);
	api_close(a);
	return rc;
}
