/*
 * wait.c — the --wait machinery shared by `request` and `extend`: interrupt handling,
 * the spinner, polling GET /v1/requests/{id} until the request is decided, and the
 * stderr report of each new approval or denial.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "elevate/el.h"
#include "api.h"
#include "output.h"
#include "wait.h"

#define POLL_TICK_MS 250
#define POLL_TICKS 8              /* a poll every 2 s */

static volatile sig_atomic_t interrupted;

/* What the wait has reported so far. */
struct seen {
	size_t approvals;
	char missing[EL_WHYLEN];
	int unreachable;
	int tty;                      /* stderr is a terminal: draw the spinner */
	int shown;                    /* the spinner is on the current line */
};

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

/* Erases the spinner before anything else is written to stderr. */
static void
spinner_clear(struct seen *s)
{
	if (s->tty && s->shown) {
		fprintf(stderr, "\r%60s\r", "");
		s->shown = 0;
	}
}

/* New approvals and denials of req since the last call, one line each on stderr. */
static void
report_changes(const json_t *req, struct seen *s, int say_missing)
{
	const json_t *ap = json_object_get(req, "approvals"), *x;
	const char *st = output_str(req, "state"), *missing, *who, *d, *c;
	char line[EL_WHYLEN * 2], clean[EL_WHYLEN * 2];
	size_t i;

	for (i = s->approvals; i < json_array_size(ap); i++) {
		x = json_array_get(ap, i);
		who = output_str(x, "approver");
		d = output_str(x, "decision");
		c = output_str(x, "comment");
		spinner_clear(s);
		snprintf(line, sizeof(line), "%s %s%s%s", who ? who : "someone",
		    d && strcmp(d, "deny") == 0 ? "denied" : "approved", c && *c ? ": " : "",
		    c && *c ? c : "");
		output_clean(line, 400, clean, sizeof(clean));
		fprintf(stderr, "%s\n", clean);
	}
	s->approvals = json_array_size(ap);
	missing = output_str(json_object_get(req, "quorum"), "missing");
	if (say_missing && st != NULL && strcmp(st, "pending") == 0 && missing != NULL &&
	    strcmp(missing, s->missing) != 0) {
		if (s->missing[0] != '\0') {
			spinner_clear(s);
			output_clean(missing, 400, clean, sizeof(clean));
			fprintf(stderr, "still %s\n", clean);
		}
		el_strlcpy(s->missing, missing, sizeof(s->missing));
	}
}

static int
is_pending(const json_t *req)
{
	const char *st = output_str(req, "state");

	/* activating: approved, the broker is minting; the outcome is still to come */
	return st != NULL && (strcmp(st, "pending") == 0 || strcmp(st, "activating") == 0);
}

int
wait_decision(struct api *a, json_t **reqp, int64_t timeout, int say_missing)
{
	static const char spin[] = "|/-\\";
	json_t *next;
	char id[72], path[128];
	struct api_error e;
	struct seen s;
	int64_t deadline = 0, pu;
	int tick, frame = 0, rc = CLI_OK;

	memset(&s, 0, sizeof(s));
	el_strlcpy(id, output_str(*reqp, "id"), sizeof(id));   /* checked by the caller */
	report_changes(*reqp, &s, say_missing);
	s.tty = isatty(STDERR_FILENO);
	snprintf(path, sizeof(path), "/v1/requests/%s", id);
	pu = output_time(*reqp, "pending_until");
	if (timeout > 0)
		deadline = el_now() + timeout;
	else if (pu > 0)
		deadline = pu + WAIT_LAPSE_GRACE;
	catch_interrupts();
	api_set_cancel(a, &interrupted);
	while (is_pending(*reqp)) {
		for (tick = 0; tick < POLL_TICKS && !interrupted; tick++) {
			if (s.tty) {
				fprintf(stderr, "\rwaiting for a decision on %s %c", id,
				    spin[frame++ % 4]);
				s.shown = 1;
			}
			sleep_ms(POLL_TICK_MS);
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
			if (!s.unreachable) {
				spinner_clear(&s);
				api_perror(&e);
				fprintf(stderr, "still trying...\n");
			}
			s.unreachable = 1;
			rc = CLI_OK;
			continue;
		}
		if (rc != CLI_OK) {
			spinner_clear(&s);
			api_perror(&e);
			break;
		}
		s.unreachable = 0;
		json_decref(*reqp);
		*reqp = next;
		report_changes(*reqp, &s, say_missing);
	}
	spinner_clear(&s);
	api_set_cancel(a, NULL);
	return rc;
}
