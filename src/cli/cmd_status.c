/*
 * cmd_status.c — `elevate status ID`: one request in full (approvals, what the quorum
 * still misses, failure, grant, SSM sessions), or a bundle with each of its members;
 * also owns status_next(), the "what happens next" line other commands print after they
 * change a request, and status_bundle(), what they print when they acted on a bundle.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elevate/el.h"
#include "api.h"
#include "commands.h"
#include "output.h"

#define LINE_MAX_CHARS 1200

static int status_run(int, char **);

const struct cli_cmd cmd_status = {
	.name = "status",
	.usage = "elevate status ID|BUNDLE",
	.summary = "show one request: approvals, window, grant, sessions",
	.run = status_run,
};

static void
status_help(void)
{
	printf("usage: %s\n\n"
	    "Shows request ID in full: state, reason, approvals and what the quorum still\n"
	    "needs, the access window, the grant, SSM sessions and, when AWS refused the\n"
	    "role, why. For a bundle (bun_..., one request of several profiles): its\n"
	    "summary state, then each member request in full.\n\n"
	    "  --json   the broker's JSON\n", cmd_status.usage);
}

/* "needs 1 more approval from group:x" -> "waiting for 1 approval from group:x". */
static void
waiting_text(const char *missing, char *buf, size_t len)
{
	char rest[EL_WHYLEN];
	const char *m;

	if (missing == NULL || *missing == '\0') {
		snprintf(buf, len, "waiting for approval");
		return;
	}
	if (strncmp(missing, "needs ", 6) != 0) {
		snprintf(buf, len, "waiting: %s", missing);
		return;
	}
	el_strlcpy(rest, missing + 6, sizeof(rest));
	if ((m = strstr(rest, " more ")) != NULL) {
		size_t at = (size_t)(m - rest);

		memmove(rest + at, rest + at + 5, strlen(rest + at + 5) + 1);
	}
	snprintf(buf, len, "waiting for %s", rest);
}

/* The deciding "deny" approval of req, or NULL. */
static const json_t *
find_denial(const json_t *req)
{
	const json_t *ap = json_object_get(req, "approvals"), *x;
	size_t i;

	json_array_foreach(ap, i, x) {
		const char *d = output_str(x, "decision");

		if (d != NULL && strcmp(d, "deny") == 0)
			return x;
	}
	return NULL;
}

static void
put(FILE *f, const char *text)
{
	char clean[LINE_MAX_CHARS * 4];

	output_clean(text, LINE_MAX_CHARS, clean, sizeof(clean));
	fprintf(f, "%s\n", clean);
}

void
status_next(const json_t *req, FILE *f)
{
	const char *state = output_str(req, "state"), *id = output_str(req, "id"), *who, *why;
	const json_t *q = json_object_get(req, "quorum"), *fl, *dn;
	int64_t now = el_now(), t;
	char line[LINE_MAX_CHARS], rel[64], at[32], wait[EL_WHYLEN + 32];

	if (state == NULL)
		return;
	if (id == NULL)
		id = "ID";
	if (strcmp(state, "pending") == 0) {
		waiting_text(output_str(q, "missing"), wait, sizeof(wait));
		if ((t = output_time(req, "pending_until")) > 0) {
			output_reltime(t, now, rel, sizeof(rel));
			snprintf(line, sizeof(line), "%s (lapses %s if nobody decides)", wait, rel);
		} else
			snprintf(line, sizeof(line), "%s", wait);
	} else if (strcmp(state, "active") == 0) {
		t = output_time(req, "window_end");
		el_format_time(t, at, sizeof(at));
		output_reltime(t, now, rel, sizeof(rel));
		snprintf(line, sizeof(line), "active until %s (ends %s); use it with", at, rel);
		put(f, line);
		snprintf(line, sizeof(line), "  elevate creds %s   or   elevate exec %s -- aws sts "
		    "get-caller-identity", id, id);
	} else if (strcmp(state, "activating") == 0 &&
	    (t = output_time(req, "scheduled_start")) > now) {
		el_format_time(t, at, sizeof(at));
		output_reltime(t, now, rel, sizeof(rel));
		snprintf(line, sizeof(line), "approved: scheduled to start at %s (%s); the policy "
		    "is checked again then", at, rel);
	} else if (strcmp(state, "activating") == 0)
		snprintf(line, sizeof(line), "approved: access is being activated (the broker "
		    "is minting the credentials); follow it with `elevate status %s`", id);
	else if (strcmp(state, "ending") == 0)
		snprintf(line, sizeof(line), "ending: access is over, its SSM sessions are being "
		    "closed");
	else if (strcmp(state, "ended") == 0) {
		t = output_time(req, "ended_at");
		if (t == 0)
			t = output_time(req, "window_end");
		output_reltime(t, now, rel, sizeof(rel));
		snprintf(line, sizeof(line), "ended %s", rel);
	} else if (strcmp(state, "denied") == 0) {
		dn = find_denial(req);
		who = output_str(dn, "approver");
		why = output_str(dn, "comment");
		snprintf(line, sizeof(line), "denied%s%s%s%s", who ? " by " : "", who ? who : "",
		    why && *why ? ": " : "", why && *why ? why : "");
	} else if (strcmp(state, "cancelled") == 0)
		snprintf(line, sizeof(line), "cancelled by the requester");
	else if (strcmp(state, "lapsed") == 0)
		snprintf(line, sizeof(line), "lapsed: nobody decided in time");
	else if (strcmp(state, "failed") == 0) {
		fl = json_object_get(req, "failure");
		snprintf(line, sizeof(line), "failed: AWS refused the role: %s: %s",
		    output_str(fl, "code") ? output_str(fl, "code") : "error",
		    output_str(fl, "message") ? output_str(fl, "message") : "no detail");
	} else
		snprintf(line, sizeof(line), "%s", state);
	put(f, line);
}

static void
field(const char *label, const char *value)
{
	char clean[LINE_MAX_CHARS * 4];

	output_clean(value, LINE_MAX_CHARS, clean, sizeof(clean));
	printf("%-14s%s\n", label, clean);
}

/* "2026-11-22T03:26:00Z (5m ago)" */
static void
field_time(const char *label, const json_t *obj, const char *key)
{
	char line[128], at[32], rel[64];
	int64_t t = output_time(obj, key);

	if (t == 0)
		return;
	el_format_time(t, at, sizeof(at));
	output_reltime(t, el_now(), rel, sizeof(rel));
	snprintf(line, sizeof(line), "%s (%s)", at, rel);
	field(label, line);
}

static void
print_approvals(const json_t *req)
{
	const json_t *ap = json_object_get(req, "approvals"), *x;
	char line[LINE_MAX_CHARS], rel[64];
	const char *label = "approvals", *c, *d;
	size_t i;

	if (json_array_size(ap) == 0) {
		field(label, "none yet");
		return;
	}
	json_array_foreach(ap, i, x) {
		d = output_str(x, "decision");
		c = output_str(x, "comment");
		output_reltime(output_time(x, "at"), el_now(), rel, sizeof(rel));
		snprintf(line, sizeof(line), "%s %s%s%s%s%s",
		    output_str(x, "approver") ? output_str(x, "approver") : "?",
		    d == NULL ? "decided" : strcmp(d, "approve") == 0 ? "approved" :
		    strcmp(d, "deny") == 0 ? "denied" : d,
		    output_time(x, "at") ? " " : "", output_time(x, "at") ? rel : "",
		    c && *c ? ": " : "", c && *c ? c : "");
		field(label, line);
		label = "";
	}
}

static void
print_sessions(const json_t *req)
{
	const json_t *ss = json_object_get(req, "sessions"), *x;
	char line[LINE_MAX_CHARS], *dump;
	const char *label = "sessions", *id, *target, *st;
	size_t i;

	if (json_array_size(ss) == 0)
		return;
	json_array_foreach(ss, i, x) {
		id = output_str(x, "session_id");
		if (id == NULL)
			id = output_str(x, "id");
		target = output_str(x, "target");
		st = output_str(x, "state");
		if (id != NULL) {
			snprintf(line, sizeof(line), "%s%s%s%s%s%s", id, target ? " on " : "",
			    target ? target : "", st ? " (" : "", st ? st : "", st ? ")" : "");
			field(label, line);
		} else if ((dump = json_dumps(x, JSON_COMPACT)) != NULL) {
			field(label, dump);
			free(dump);
		}
		label = "";
	}
}

static void
print_detail(const json_t *req)
{
	const json_t *q = json_object_get(req, "quorum"), *fl = json_object_get(req, "failure");
	const json_t *g = json_object_get(req, "grant");
	const char *s, *state = output_str(req, "state");
	char line[LINE_MAX_CHARS], w0[32], w1[32], rel[64];
	int64_t t0, t1;

	field("request", output_str(req, "id"));
	field("profile", output_str(req, "profile"));
	if ((s = output_str(req, "role_arn")) != NULL) {
		snprintf(line, sizeof(line), "%s%s%s%s", s, output_str(req, "region") ? " (" : "",
		    output_str(req, "region") ? output_str(req, "region") : "",
		    output_str(req, "region") ? ")" : "");
		field("role", line);
	}
	field("requester", output_str(req, "requester"));
	field("state", state);
	if (output_int(req, "duration", 0) > 0) {
		output_duration(output_int(req, "duration", 0), line, sizeof(line));
		field("duration", line);
	}
	if ((s = output_str(req, "reason")) != NULL && *s != '\0')
		field("reason", s);
	if ((s = output_str(req, "ticket")) != NULL && *s != '\0')
		field("ticket", s);
	field_time("created", req, "created_at");
	field_time("scheduled", req, "scheduled_start");
	if (state != NULL && strcmp(state, "pending") == 0)
		field_time("pending until", req, "pending_until");
	t0 = output_time(req, "window_start");
	t1 = output_time(req, "window_end");
	if (t0 > 0 && t1 > 0) {
		el_format_time(t0, w0, sizeof(w0));
		el_format_time(t1, w1, sizeof(w1));
		output_reltime(t1, el_now(), rel, sizeof(rel));
		snprintf(line, sizeof(line), "%s .. %s (end%s %s)", w0, w1,
		    t1 > el_now() ? "s" : "ed", rel);
		field("window", line);
	}
	field_time("ended", req, "ended_at");
	print_approvals(req);
	if ((s = output_str(req, "auto_approved")) != NULL)
		field("auto-approved", s);
	if (json_is_object(g = json_object_get(req, "break_glass"))) {
		const char *rv = output_str(g, "review");
		char due[32];

		el_format_time(output_time(g, "review_due_at"), due, sizeof(due));
		if (rv != NULL)
			snprintf(line, sizeof(line), "yes: %s by %s", rv,
			    output_str(g, "reviewed_by") ? output_str(g, "reviewed_by") : "?");
		else
			snprintf(line, sizeof(line), "yes: NOT REVIEWED (due %s%s)", due,
			    output_str(g, "escalated_at") ? "; escalated to the auditors" : "");
		field("break-glass", line);
	}
	g = json_object_get(req, "grant");
	if (json_is_object(q))
		field("quorum", json_is_true(json_object_get(q, "met")) ? "met" :
		    output_str(q, "missing") ? output_str(q, "missing") : "not met");
	if (json_is_object(fl)) {
		snprintf(line, sizeof(line), "%s: %s",
		    output_str(fl, "code") ? output_str(fl, "code") : "error",
		    output_str(fl, "message") ? output_str(fl, "message") : "no detail");
		field("failure", line);
	}
	if (json_is_object(g)) {
		if ((s = output_str(g, "role_session_name")) != NULL)
			field("role session", s);
		if ((s = output_str(g, "assumed_role_arn")) != NULL)
			field("assumed role", s);
		field_time("creds expire", g, "credentials_expire_at");
	}
	print_sessions(req);
	printf("\n");
	status_next(req, stdout);
}

int
status_is_bundle(const json_t *res)
{
	return json_is_array(json_object_get(res, "members")) ||
	    json_is_array(json_object_get(res, "results"));
}

int
status_bundle(const json_t *res)
{
	const json_t *b = json_object_get(res, "results") ? json_object_get(res, "bundle") : res;
	const json_t *x, *m;
	char line[LINE_MAX_CHARS];
	int done = 0;
	size_t i;

	json_array_foreach(json_object_get(res, "results"), i, x) {
		m = json_object_get(x, "request");
		if (json_is_true(json_object_get(x, "ok"))) {
			snprintf(line, sizeof(line), "%s  %s  done: now %s", output_str(x, "id") ?
			    output_str(x, "id") : "?", output_str(x, "profile") ?
			    output_str(x, "profile") : "?", output_str(m, "state") ?
			    output_str(m, "state") : "?");
			done++;
		} else
			snprintf(line, sizeof(line), "%s  %s  not done: %s", output_str(x, "id") ?
			    output_str(x, "id") : "?", output_str(x, "profile") ?
			    output_str(x, "profile") : "?", output_str(json_object_get(x, "error"),
			    "message") ? output_str(json_object_get(x, "error"), "message") : "?");
		put(stdout, line);
	}
	if (!json_is_object(b))
		return done > 0 ? CLI_OK : CLI_REFUSED;
	snprintf(line, sizeof(line), "bundle %s  %s  of %s: %zu profiles",
	    output_str(b, "id") ? output_str(b, "id") : "?",
	    output_str(b, "state") ? output_str(b, "state") : "?",
	    output_str(b, "requester") ? output_str(b, "requester") : "?",
	    json_array_size(json_object_get(b, "members")));
	put(stdout, line);
	if (json_object_get(res, "results") != NULL) {
		json_array_foreach(json_object_get(b, "members"), i, m) {
			snprintf(line, sizeof(line), "  %s  %s  %s", output_str(m, "id") ?
			    output_str(m, "id") : "?", output_str(m, "profile") ?
			    output_str(m, "profile") : "?", output_str(m, "state") ?
			    output_str(m, "state") : "?");
			put(stdout, line);
		}
		return CLI_OK;
	}
	json_array_foreach(json_object_get(b, "members"), i, m) {
		printf("\n");
		print_detail(m);
	}
	return CLI_OK;
}

int
status_call_one(const struct cli_cmd *c, void (*help)(void), int argc, char **argv,
    const char *method, const char *suffix, void (*print)(const json_t *req, const char *id))
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
		case 'h': help(); return CLI_OK;
		default: return output_usage(c, NULL);
		}
	}
	if (argc - optind != 1)
		return output_usage(c, "one request ID expected");
	if (!api_valid_id(argv[optind]))
		return output_usage(c, "not a request id: \"%s\"", argv[optind]);
	snprintf(path, sizeof(path), "/v1/requests/%s%s", argv[optind], suffix);
	if ((rc = api_open(&a)) != CLI_OK)
		return rc;
	if ((rc = api_do(a, method, path, NULL, &req)) != CLI_OK)
		goto out;
	if (output_json())
		rc = output_print_json(req);
	else if (status_is_bundle(req))
		rc = status_bundle(req);
	else
		print(req, argv[optind]);
out:
	json_decref(req);
	api_close(a);
	return rc;
}

static void
print_status(const json_t *req, const char *id)
{
	(void)id;
	print_detail(req);
}

static int
status_run(int argc, char **argv)
{
	return status_call_one(&cmd_status, status_help, argc, argv, "GET", "", print_status);
}
