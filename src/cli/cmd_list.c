/*
 * cmd_list.c — `elevate list`: the requests the caller may see (GET /v1/requests), as a
 * table or the broker's JSON. Also owns list_get(), the fetch-and-print of a listing
 * that `audit show` shares.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "elevate/el.h"
#include "elevate/lifecycle.h"
#include "api.h"
#include "commands.h"
#include "output.h"

#define REASON_COL_MAX 48

static int list_run(int, char **);

const struct cli_cmd cmd_list = {
	.name = "list",
	.usage = "elevate list [--state S] [--mine]",
	.summary = "list requests (yours, those you may decide, or all)",
	.run = list_run,
};

static void
list_help(void)
{
	printf("usage: %s\n\n"
	    "Lists the requests you may see: requesters their own, approvers those they may\n"
	    "decide, auditors and admins all. A bundle's member shows its bundle's id after\n"
	    "its profile: PROFILE [bun_...].\n\n"
	    "  --state S   only requests in state S: %s\n"
	    "  --mine      only your own requests\n"
	    "  --json      the broker's JSON\n", cmd_list.usage, lifecycle_state_list());
}

static int
known_state(const char *s)
{
	return lifecycle_state_parse(s) >= 0;
}

/* WINDOW/AGE: when an active grant ends, when a finished one ended, else its age. */
static void
window_age(const json_t *r, int64_t now, char *buf, size_t len)
{
	const char *st = output_str(r, "state");
	char rel[64];
	int64_t t;

	if (st != NULL && strcmp(st, "active") == 0 && (t = output_time(r, "window_end")) > 0) {
		output_reltime(t, now, rel, sizeof(rel));
		snprintf(buf, len, "%s %s", t > now ? "ends" : "ended", rel);
	} else if (st != NULL && strcmp(st, "ending") == 0)
		snprintf(buf, len, "ending now");
	else if (st != NULL && strcmp(st, "ended") == 0 &&
	    ((t = output_time(r, "ended_at")) > 0 || (t = output_time(r, "window_end")) > 0)) {
		output_reltime(t, now, rel, sizeof(rel));
		snprintf(buf, len, "ended %s", rel);
	} else if ((t = output_time(r, "created_at")) > 0) {
		output_reltime(t, now, rel, sizeof(rel));
		snprintf(buf, len, "asked %s", rel);
	} else
		snprintf(buf, len, "-");
}

static void
print_table(const json_t *list)
{
	static const char *const heads[] = {
		"ID", "PROFILE", "REQUESTER", "STATE", "DURATION", "WINDOW/AGE", "REASON",
	};
	struct output_table *t;
	const json_t *r;
	char dur[32], wa[96], reason[REASON_COL_MAX * 4 + 8], st[32], rel[64], prof[112];
	int64_t start;
	const char *cells[7];
	int64_t now = el_now();
	size_t i;

	if (json_array_size(list) == 0) {
		printf("no requests\n");
		return;
	}
	if ((t = output_table_new(7, heads)) == NULL)
		return;
	json_array_foreach(list, i, r) {
		output_duration(output_int(r, "duration", 0), dur, sizeof(dur));
		window_age(r, now, wa, sizeof(wa));
		output_clean(output_str(r, "reason"), REASON_COL_MAX, reason, sizeof(reason));
		cells[0] = output_str(r, "id");
		cells[1] = output_str(r, "profile");
		if (output_str(r, "bundle") != NULL) {
			/* a bundle's member: the bundle's id goes where the profile is */
			snprintf(prof, sizeof(prof), "%s [%s]", cells[1] ? cells[1] : "?",
			    output_str(r, "bundle"));
			cells[1] = prof;
		}
		cells[2] = output_str(r, "requester");
		cells[3] = output_str(r, "state");
		if ((start = output_time(r, "scheduled_start")) > now && cells[3] != NULL &&
		    (strcmp(cells[3], "pending") == 0 || strcmp(cells[3], "activating") == 0)) {
			/* approved and waiting for its start, or asked for a later start */
			output_reltime(start, now, rel, sizeof(rel));
			snprintf(wa, sizeof(wa), "starts %s", rel);
			if (strcmp(cells[3], "activating") == 0)
				cells[3] = "scheduled";
		}
		if (json_is_object(json_object_get(r, "break_glass"))) {
			/* marked where the eye goes: the state column */
			snprintf(st, sizeof(st), "%s!glass", cells[3] ? cells[3] : "?");
			cells[3] = st;
		}
		cells[4] = output_int(r, "duration", 0) > 0 ? dur : "-";
		cells[5] = wa;
		cells[6] = reason;
		output_table_add(t, cells);
	}
	output_table_print(t, stdout);
	output_table_free(t);
}

int
list_get(const char *path_query, const char *key, void (*print)(const json_t *list))
{
	struct api *a = NULL;
	json_t *res = NULL, *list;
	int rc;

	if ((rc = api_open(&a)) != CLI_OK)
		goto out;
	if ((rc = api_do(a, "GET", path_query, NULL, &res)) != CLI_OK)
		goto out;
	if (output_json()) {
		rc = output_print_json(res);
		goto out;
	}
	if (!json_is_array(list = json_object_get(res, key))) {
		output_err("the broker's answer has no \"%s\" list", key);
		rc = CLI_ERR;
		goto out;
	}
	print(list);
out:
	json_decref(res);
	api_close(a);
	return rc;
}

static int
list_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{"state", required_argument, NULL, 's'},
		{"mine", no_argument, NULL, 'm'},
		{"json", no_argument, NULL, 'J'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *state = NULL;
	struct dbuf path, q;
	int ch, mine = 0, rc;

	while ((ch = getopt_long(argc, argv, "s:mh", opts, NULL)) != -1) {
		switch (ch) {
		case 's': state = optarg; break;
		case 'm': mine = 1; break;
		case 'J': output_set_json(1); break;
		case 'h': list_help(); return CLI_OK;
		default: return output_usage(&cmd_list, NULL);
		}
	}
	if (optind != argc)
		return output_usage(&cmd_list, "unexpected argument \"%s\"", argv[optind]);
	if (state != NULL && !known_state(state))
		return output_usage(&cmd_list, "unknown state \"%s\" (%s)", state,
		    lifecycle_state_list());
	dbuf_init(&path, 1024);
	dbuf_init(&q, 512);
	if (api_query_add(&q, "state", state) != EL_OK ||
	    api_query_add(&q, "mine", mine ? "1" : NULL) != EL_OK ||
	    dbuf_printf(&path, "/v1/requests%s%s", q.len ? "?" : "", q.len ? q.p : "") != EL_OK) {
		rc = CLI_ERR;
		goto out;
	}
	rc = list_get(path.p, "requests", print_table);
out:
	dbuf_free(&path);
	dbuf_free(&q);
	return rc;
}
