/*
 * wait.c — the --wait machinery shared by `request`, `extend` and `approve`: interrupt
 * handling, the spinner, polling GET /v1/requests/{id} until the request is decided and
 * minted, the stderr report of each new approval or denial and of a slow activation, and
 * what the command says and exits with afterwards.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "elevate/el.h"
#include "api.h"
#include "commands.h"
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
	long activating_ms;           /* waited while `activating` */
	int said_activating;          /* stderr (no terminal) was told */
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
state_is(const json_t *req, const char *state)
{
	const char *st = output_str(req, "state");

	return st != NULL && strcmp(st, state) == 0;
}

int
wait_scheduled(const json_t *req)
{
	return state_is(req, "activating") && output_time(req, "scheduled_start") > el_now();
}

int
wait_undecided(const json_t *req)
{
	/* activating: approved, the broker is minting; the outcome is still to come (a
	 * scheduled window's approval is an outcome: it starts later) */
	return state_is(req, "pending") || (state_is(req, "activating") && !wait_scheduled(req));
}

/* Ticks of POLL_TICK_MS before the next look: every 2 s while pending; while activating
 * (minting takes a moment) after 1, 2, 4, then 8 ticks. */
static int
poll_ticks(int activating, int polls)
{
	if (!activating)
		return POLL_TICKS;
	return polls < 3 ? 1 << polls : POLL_TICKS;
}

/* Polls until *reqp is neither pending nor activating: CLI_OK, CLI_TIMEOUT or
 * CLI_INTERRUPTED with nothing printed, or another exit code after printing why. */
static int
wait_decision(struct api *a, json_t **reqp, int64_t timeout, int say_missing)
{
	static const char spin[] = "|/-\\";
	json_t *next;
	char id[72], path[128];
	struct api_error e;
	struct seen s;
	int64_t deadline = 0, pu;
	int tick, ticks, frame = 0, act, act_polls = 0, rc = CLI_OK;

	memset(&s, 0, sizeof(s));
	el_strlcpy(id, output_str(*reqp, "id"), sizeof(id));   /* checked by the caller */
	/* the votes already in are known to the caller (approve: its own) */
	s.approvals = json_array_size(json_object_get(*reqp, "approvals"));
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
	while (wait_undecided(*reqp)) {
		if ((act = state_is(*reqp, "activating")) && act_polls == 0 && timeout <= 0)
			deadline = el_now() + WAIT_ACTIVATING_MAX;   /* no lapse once approved */
		ticks = poll_ticks(act, act ? act_polls++ : 0);
		for (tick = 0; tick < ticks && !interrupted; tick++) {
			if (s.tty) {
				fprintf(stderr, act ? "\ractivating %s (minting the credentials) %c" :
				    "\rwaiting for a decision on %s %c", id, spin[frame++ % 4]);
				s.shown = 1;
			}
			sleep_ms(POLL_TICK_MS);
			if (act)
				s.activating_ms += POLL_TICK_MS;
		}
		if (act && !s.tty && !s.said_activating &&
		    s.activating_ms >= WAIT_SAY_ACTIVATING_MS) {
			fprintf(stderr, "activating %s: the broker is still minting the credentials "
			    "(Ctrl-C stops waiting; the activation goes on)\n", id);
			s.said_activating = 1;
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

/* After a timeout or Ctrl-C (rc): where the request is and how to follow it. */
static int
wait_unfinished(const json_t *req, int rc, int can_cancel)
{
	const char *id = output_str(req, "id"), *how, *what;
	char at[32], until[48] = "";
	int64_t pu = output_time(req, "pending_until");

	how = rc == CLI_TIMEOUT ? "gave up waiting" : "interrupted";
	what = output_str(req, "extends") != NULL ? "the extension " : "";
	if (id == NULL)
		id = "?";
	if (output_json())
		output_print_json(req);   /* scripts still learn the id */
	if (state_is(req, "activating")) {
		output_err("%s: %s%s is approved and still activating: the broker goes on minting "
		    "its credentials; `elevate status %s` follows it", how, what, id, id);
		return rc;
	}
	if (pu > 0) {
		el_format_time(pu, at, sizeof(at));
		snprintf(until, sizeof(until), " (until %s)", at);
	}
	if (can_cancel)
		output_err("%s: %s%s is still pending%s; `elevate status %s` follows it, "
		    "`elevate cancel %s` withdraws it", how, what, id, until, id, id);
	else
		output_err("%s: %s%s is still pending%s; `elevate status %s` follows it", how,
		    what, id, until, id);
	return rc;
}

int
wait_outcome(const json_t *req)
{
	const char *grant = output_str(req, "extends");
	char at[32], rel[64], clean[128];
	int64_t t;

	if (output_json())
		output_print_json(req);
	/* an applied extension is `ended`, its window_end the grant's new end */
	if (grant != NULL && state_is(req, "ended") && (t = output_time(req, "window_end")) > 0) {
		if (!output_json()) {
			el_format_time(t, at, sizeof(at));
			output_reltime(t, el_now(), rel, sizeof(rel));
			output_clean(grant, 64, clean, sizeof(clean));
			printf("extended %s: active until %s (ends %s)\n", clean, at, rel);
		}
		return CLI_OK;
	}
	if (!output_json())
		status_next(req, stdout);
	if (output_str(req, "state") == NULL)
		return CLI_ERR;
	if (state_is(req, "active") || wait_scheduled(req))
		return CLI_OK;
	if (grant == NULL && (state_is(req, "ending") || state_is(req, "ended")))
		return CLI_ERR;       /* approved, but the window is already over */
	return CLI_REFUSED;
}

int
wait_follow(struct api *a, json_t **reqp, int64_t timeout, int say_missing, int can_cancel)
{
	int rc;

	rc = wait_decision(a, reqp, timeout, say_missing);
	if (rc == CLI_TIMEOUT || rc == CLI_INTERRUPTED)
		return wait_unfinished(*reqp, rc, can_cancel);
	if (rc != CLI_OK)
		return rc;
	return wait_outcome(*reqp);
}

int
wait_minted(struct api *a, json_t **reqp, int64_t timeout)
{
	int64_t start = el_now_ms(), deadline = start + timeout * 1000;
	long pause = 50;
	int said = 0, rc;
	char id[72], path[128];
	json_t *next;

	el_strlcpy(id, output_str(*reqp, "id") ? output_str(*reqp, "id") : "", sizeof(id));
	snprintf(path, sizeof(path), "/v1/requests/%s", id);
	while (state_is(*reqp, "activating")) {
		if (el_now_ms() >= deadline) {
			output_err("%s is still activating after %llds: the broker has not minted its "
			    "credentials yet; see `elevate status %s`", id, (long long)timeout, id);
			return CLI_TIMEOUT;
		}
		if (!said && el_now_ms() - start >= WAIT_SAY_ACTIVATING_MS) {
			fprintf(stderr, "%s is approved; waiting for the broker to mint its "
			    "credentials...\n", id);
			said = 1;
		}
		sleep_ms(pause);
		pause = pause * 2 > 1000 ? 1000 : pause * 2;
		if ((rc = api_do(a, "GET", path, NULL, &next)) != CLI_OK)
			return rc;
		json_decref(*reqp);
		*reqp = next;
	}
	return CLI_OK;
}
