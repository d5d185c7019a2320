/*
 * cmd_report.c — `elevate report --since 30d [--csv|--json]`: the access review for
 * auditors (GET /v1/report). A table by default, the broker's JSON document with --json,
 * or RFC 4180 CSV with a header row and one row per grant, every text cell that starts
 * with = + - @ (or a tab or CR) prefixed with ' so a spreadsheet does not run it.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elevate/el.h"
#include "api.h"
#include "commands.h"
#include "output.h"

#define LIMIT_MAX 10000
#define CELL_MAX 4096

static int report_run(int, char **);

const struct cli_cmd cmd_report = {
	.name = "report",
	.usage = "elevate report --since DUR|TIME [--limit N] [--csv|--json]",
	.summary = "the access review: every grant, its approvals, end and use (auditors)",
	.run = report_run,
};

static void
report_help(void)
{
	printf("usage: %s\n\n"
	    "Every grant since the given time (a request that became active, or failed): who\n"
	    "asked for which role and why, who approved and when, the window asked and served,\n"
	    "how it ended (expired, revoked by whom, failed), its SSM sessions, its credential\n"
	    "fetches with their source address and its revocation receipt. A revocation that\n"
	    "came more than 5 s after the window's end (or the revoke request), or has not come\n"
	    "yet, is flagged OVERDUE. Requests never granted are counted in the summary.\n\n"
	    "  --since DUR|TIME  30d, 24h, or 2026-11-01T00:00:00Z (at most 366 days)\n"
	    "  --limit N         refuse when the period holds more than N requests (1000)\n"
	    "  --csv             RFC 4180 CSV, one row per grant; cells starting with\n"
	    "                    = + - @ are prefixed with ' against spreadsheet formulas\n"
	    "  --json            the broker's JSON document\n", cmd_report.usage);
}

static const char *
str(const json_t *o, const char *k)
{
	const char *s = output_str(o, k);

	return s ? s : "";
}

/* ---- CSV (RFC 4180) ---- */

static void
csv_cell(FILE *f, const char *s, int text, int last)
{
	const char *p;
	int quote = 0;

	if (s == NULL)
		s = "";
	for (p = s; *p; p++)
		if (*p == ',' || *p == '"' || *p == '\r' || *p == '\n')
			quote = 1;
	/* CSV injection: a spreadsheet takes a cell starting with one of these as a formula */
	if (text && *s != '\0' && strchr("=+-@\t\r", *s) != NULL) {
		fputs(quote ? "\"'" : "'", f);
	} else if (quote)
		fputc('"', f);
	for (p = s; *p; p++) {
		if (*p == '"')
			fputc('"', f);
		fputc(*p, f);
	}
	if (quote)
		fputc('"', f);
	fputs(last ? "\r\n" : ",", f);
}

static const char *const csv_heads[] = {
	"id", "requester", "profile", "role_arn", "reason", "ticket", "requested_at",
	"asked_seconds", "approvals", "window_start", "window_end", "served_seconds",
	"extensions", "ended", "ended_at", "revoked_by", "revoke_reason", "failure",
	"revocation_due", "revocation_done", "revocation_lag_seconds", "overdue", "receipt",
	"receipt_seconds", "ssm_sessions", "credential_fetches", "records_complete",
};
#define NCSV (sizeof(csv_heads) / sizeof(csv_heads[0]))

/* "a; b; c" of each item of a list rendered by fmt. */
static void
join(const json_t *list, void (*fmt)(const json_t *, struct dbuf *), struct dbuf *b)
{
	const json_t *v;
	size_t i;

	json_array_foreach(list, i, v) {
		if (i > 0)
			dbuf_add(b, "; ", 2);
		fmt(v, b);
	}
}

static void
fmt_approval(const json_t *a, struct dbuf *b)
{
	dbuf_printf(b, "%s %s at %s", str(a, "approver"), strcmp(str(a, "decision"), "approve")
	    == 0 ? "approved" : "denied", str(a, "at"));
	if (output_str(a, "comment"))
		dbuf_printf(b, ": %s", str(a, "comment"));
}

static void
fmt_extension(const json_t *x, struct dbuf *b)
{
	dbuf_printf(b, "%s: %s -> %s", str(x, "at"), str(x, "old_end"), str(x, "new_end"));
}

static void
fmt_session(const json_t *s, struct dbuf *b)
{
	dbuf_printf(b, "%s on %s %s..%s", str(s, "session_id"), str(s, "instance"),
	    str(s, "started_at"), output_str(s, "ended_at") ? str(s, "ended_at") : "open");
}

static void
fmt_fetch(const json_t *c, struct dbuf *b)
{
	dbuf_printf(b, "%s by %s from %s", str(c, "at"), str(c, "user"),
	    output_str(c, "peer") ? str(c, "peer") : "?");
	if (output_str(c, "access_key_id"))
		dbuf_printf(b, " (%s)", str(c, "access_key_id"));
}

static void
num(char *buf, size_t len, const json_t *o, const char *k)
{
	const json_t *v = json_object_get(o, k);

	if (json_is_integer(v))
		snprintf(buf, len, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		snprintf(buf, len, "%.3f", json_real_value(v));
	else
		buf[0] = '\0';
}

static void
print_csv(const json_t *grants)
{
	const json_t *g, *end, *rev, *rc;
	struct dbuf b[5];
	char asked[32], served[32], lag[32], rsecs[32], fail[1024];
	size_t i, k;

	for (k = 0; k < NCSV; k++)
		csv_cell(stdout, csv_heads[k], 0, k == NCSV - 1);
	for (k = 0; k < 5; k++)
		dbuf_init(&b[k], 1024 * 1024);
	json_array_foreach(grants, i, g) {
		end = json_object_get(g, "end");
		rev = json_object_get(g, "revocation");
		rc = json_object_get(g, "receipt");
		for (k = 0; k < 5; k++)
			dbuf_reset(&b[k]);
		join(json_object_get(g, "approvals"), fmt_approval, &b[0]);
		join(json_object_get(g, "extensions"), fmt_extension, &b[1]);
		join(json_object_get(g, "sessions"), fmt_session, &b[2]);
		join(json_object_get(g, "credential_fetches"), fmt_fetch, &b[3]);
		num(asked, sizeof(asked), g, "asked_seconds");
		num(served, sizeof(served), g, "served_seconds");
		num(lag, sizeof(lag), rev, "lag_seconds");
		num(rsecs, sizeof(rsecs), rc, "seconds");
		fail[0] = '\0';
		if (output_str(end, "code"))
			snprintf(fail, sizeof(fail), "%s: %s", str(end, "code"), str(end, "message"));
		csv_cell(stdout, str(g, "id"), 1, 0);
		csv_cell(stdout, str(g, "requester"), 1, 0);
		csv_cell(stdout, str(g, "profile"), 1, 0);
		csv_cell(stdout, str(g, "role_arn"), 1, 0);
		csv_cell(stdout, str(g, "reason"), 1, 0);
		csv_cell(stdout, str(g, "ticket"), 1, 0);
		csv_cell(stdout, str(g, "requested_at"), 0, 0);
		csv_cell(stdout, asked, 0, 0);
		csv_cell(stdout, b[0].len ? b[0].p : "", 1, 0);
		csv_cell(stdout, str(g, "window_start"), 0, 0);
		csv_cell(stdout, str(g, "window_end"), 0, 0);
		csv_cell(stdout, served, 0, 0);
		csv_cell(stdout, b[1].len ? b[1].p : "", 1, 0);
		csv_cell(stdout, str(end, "how"), 0, 0);
		csv_cell(stdout, str(end, "at"), 0, 0);
		csv_cell(stdout, str(end, "by"), 1, 0);
		csv_cell(stdout, str(end, "reason"), 1, 0);
		csv_cell(stdout, fail, 1, 0);
		csv_cell(stdout, str(rev, "due"), 0, 0);
		csv_cell(stdout, str(rev, "done"), 0, 0);
		csv_cell(stdout, lag, 0, 0);
		csv_cell(stdout, json_is_true(json_object_get(rev, "overdue")) ? "yes" : "no", 0, 0);
		csv_cell(stdout, json_is_object(rc) ? json_is_true(json_object_get(rc, "verified")) ?
		    "verified" : "unverified" : "", 0, 0);
		csv_cell(stdout, rsecs, 0, 0);
		csv_cell(stdout, b[2].len ? b[2].p : "", 1, 0);
		csv_cell(stdout, b[3].len ? b[3].p : "", 1, 0);
		csv_cell(stdout, json_is_true(json_object_get(g, "records_complete")) ? "yes" : "no",
		    0, 1);
	}
	for (k = 0; k < 5; k++)
		dbuf_free(&b[k]);
}

/* ---- table ---- */

static void
print_table(const json_t *doc)
{
	static const char *const heads[] = {"REQUEST", "REQUESTER", "PROFILE", "APPROVED BY",
	    "WINDOW", "SERVED/ASKED", "ENDED", "REVOCATION", "SSM", "FETCHES", "RECEIPT",
	    "REASON"};
	const json_t *grants = json_object_get(doc, "grants"), *g, *v, *end, *rev, *rc, *sum;
	struct output_table *t;
	struct dbuf b;
	char served[32], asked[32], sa[80], ended[160], revo[96], ssm[32], fetch[32], rcpt[64];
	char reason[512], window[48];
	const char *cells[12];
	size_t i, j;

	sum = json_object_get(doc, "summary");
	printf("access review since %s (generated %s): %lld grant%s, %lld expired, %lld revoked, "
	    "%lld failed, %lld overdue revocation%s\n", str(doc, "since"), str(doc,
	    "generated_at"), (long long)output_int(sum, "grants", 0),
	    output_int(sum, "grants", 0) == 1 ? "" : "s",
	    (long long)output_int(sum, "expired", 0), (long long)output_int(sum, "revoked", 0),
	    (long long)output_int(sum, "failed", 0),
	    (long long)output_int(sum, "overdue_revocations", 0),
	    output_int(sum, "overdue_revocations", 0) == 1 ? "" : "s");
	if (json_object_size(json_object_get(sum, "not_granted")) > 0) {
		const char *k;
		printf("not granted:");
		json_object_foreach((json_t *)json_object_get(sum, "not_granted"), k, v)
			printf(" %s %lld", k, (long long)json_integer_value(v));
		printf("\n");
	}
	if (json_array_size(grants) == 0)
		return;
	if ((t = output_table_new(12, heads)) == NULL)
		return;
	dbuf_init(&b, 64 * 1024);
	json_array_foreach(grants, i, g) {
		end = json_object_get(g, "end");
		rev = json_object_get(g, "revocation");
		rc = json_object_get(g, "receipt");
		dbuf_reset(&b);
		json_array_foreach(json_object_get(g, "approvals"), j, v)
			if (strcmp(str(v, "decision"), "approve") == 0)
				dbuf_printf(&b, "%s%s", b.len ? "," : "", str(v, "approver"));
		output_duration(output_int(g, "served_seconds", 0), served, sizeof(served));
		output_duration(output_int(g, "asked_seconds", 0), asked, sizeof(asked));
		snprintf(sa, sizeof(sa), "%s/%s%s", served, asked,
		    json_array_size(json_object_get(g, "extensions")) ? " +ext" : "");
		snprintf(window, sizeof(window), "%s", output_str(g, "window_start") ?
		    str(g, "window_start") : "-");
		if (strcmp(str(end, "how"), "revoked") == 0)
			snprintf(ended, sizeof(ended), "revoked by %s", str(end, "by"));
		else if (strcmp(str(end, "how"), "failed") == 0)
			snprintf(ended, sizeof(ended), "failed: %s", str(end, "code"));
		else
			snprintf(ended, sizeof(ended), "%s", str(end, "how"));
		if (!json_is_object(rev))
			snprintf(revo, sizeof(revo), "-");
		else if (json_is_true(json_object_get(rev, "overdue")))
			snprintf(revo, sizeof(revo), "OVERDUE %s", output_str(rev, "done") ?
			    "(late)" : "(pending)");
		else if (json_is_number(json_object_get(rev, "lag_seconds")))
			snprintf(revo, sizeof(revo), "%+.1fs",
			    json_number_value(json_object_get(rev, "lag_seconds")));
		else
			snprintf(revo, sizeof(revo), "due %s", str(rev, "due"));
		snprintf(ssm, sizeof(ssm), "%zu", json_array_size(json_object_get(g, "sessions")));
		snprintf(fetch, sizeof(fetch), "%zu",
		    json_array_size(json_object_get(g, "credential_fetches")));
		if (!json_is_object(rc))
			snprintf(rcpt, sizeof(rcpt), "-");
		else if (json_is_true(json_object_get(rc, "verified")))
			snprintf(rcpt, sizeof(rcpt), "verified %.1fs",
			    json_number_value(json_object_get(rc, "seconds")));
		else
			snprintf(rcpt, sizeof(rcpt), "UNVERIFIED");
		snprintf(reason, sizeof(reason), "%s%s%s", str(g, "reason"),
		    output_str(g, "ticket") ? " " : "", str(g, "ticket"));
		cells[0] = str(g, "id");
		cells[1] = str(g, "requester");
		cells[2] = str(g, "profile");
		cells[3] = b.len ? b.p : "-";
		cells[4] = window;
		cells[5] = sa;
		cells[6] = ended;
		cells[7] = revo;
		cells[8] = ssm;
		cells[9] = fetch;
		cells[10] = rcpt;
		cells[11] = reason;
		output_table_add(t, cells);
	}
	output_table_print(t, stdout);
	output_table_free(t);
	dbuf_free(&b);
}

static int
report_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{"since", required_argument, NULL, 's'},
		{"limit", required_argument, NULL, 'n'},
		{"csv", no_argument, NULL, 'C'},
		{"json", no_argument, NULL, 'J'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *since = NULL, *limit = NULL;
	char since_at[32];
	long long n;
	int64_t secs, t;
	struct dbuf q, path;
	struct api *a = NULL;
	json_t *res = NULL;
	int ch, rc, csv = 0;

	while ((ch = getopt_long(argc, argv, "s:n:h", opts, NULL)) != -1) {
		switch (ch) {
		case 's': since = optarg; break;
		case 'n': limit = optarg; break;
		case 'C': csv = 1; break;
		case 'J': output_set_json(1); break;
		case 'h': report_help(); return CLI_OK;
		default: return output_usage(&cmd_report, NULL);
		}
	}
	if (optind != argc)
		return output_usage(&cmd_report, "unexpected argument \"%s\"", argv[optind]);
	if (since == NULL)
		return output_usage(&cmd_report, "--since is required (e.g. --since 30d)");
	if (csv && output_json())
		return output_usage(&cmd_report, "--csv or --json, not both");
	if (limit != NULL && el_parse_int(limit, 1, LIMIT_MAX, &n) != EL_OK)
		return output_usage(&cmd_report, "--limit: a number from 1 to %d", LIMIT_MAX);
	if (el_parse_duration(since, &secs) == EL_OK)
		t = el_now() - secs;
	else if (el_parse_time(since, &t) != EL_OK)
		return output_usage(&cmd_report, "--since: a duration (30d, 24h) or a time "
		    "(2026-11-01T00:00:00Z), not \"%s\"", since);
	el_format_time(t, since_at, sizeof(since_at));
	dbuf_init(&q, 256);
	dbuf_init(&path, 512);
	if (api_query_add(&q, "since", since_at) != EL_OK ||
	    api_query_add(&q, "limit", limit) != EL_OK ||
	    dbuf_printf(&path, "/v1/report?%s", q.p) != EL_OK) {
		rc = output_usage(&cmd_report, "arguments too long");
		goto out;
	}
	if ((rc = api_open(&a)) != CLI_OK)
		goto out;
	if ((rc = api_do(a, "GET", path.p, NULL, &res)) != CLI_OK)
		goto out;
	if (output_json())
		rc = output_print_json(res);
	else if (!json_is_array(json_object_get(res, "grants"))) {
		output_err("the broker's answer has no \"grants\" list");
		rc = CLI_ERR;
	} else if (csv)
		print_csv(json_object_get(res, "grants"));
	else
		print_table(res);
out:
	json_decref(res);
	api_close(a);
	dbuf_free(&q);
	dbuf_free(&path);
	return rc;
}
