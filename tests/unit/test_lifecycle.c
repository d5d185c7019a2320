/*
 * test_lifecycle.c — the transition table: docs/lifecycle.md shows the code's table, the
 * table is a function of (state, event), and the store's CHECK admits exactly its states.
 * Run from the repository root (tests/run-all.sh does).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "elevate/el.h"
#include "elevate/lifecycle.h"
#include "elevate/log.h"
#include "elevate/store.h"

#define DOC "docs/lifecycle.md"

/* Trims spaces and backquotes around a table cell, in place. */
static char *
cell(char *s)
{
	char *e;

	while (*s == ' ' || *s == '`')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '`' || e[-1] == '\n'))
		*--e = '\0';
	return s;
}

/* Splits "| a | b | c |" into at most max cells. Returns how many. */
static int
split_row(char *line, char **cells, int max)
{
	int n = 0;
	char *p = line, *bar;

	if (*p != '|')
		return 0;
	p++;
	while (n < max && (bar = strchr(p, '|')) != NULL) {
		*bar = '\0';
		cells[n++] = cell(p);
		p = bar + 1;
	}
	return n;
}

/* The rows of the table under `heading` in the doc, each as its cells. */
struct rows {
	char cells[64][4][48];
	int n;
};

static void
read_table(const char *heading, struct rows *out)
{
	FILE *fp = fopen(DOC, "r");
	char line[512];
	int in = 0, header = 0;

	assert_non_null(fp);
	memset(out, 0, sizeof(*out));
	while (fgets(line, sizeof(line), fp) != NULL) {
		char *c[4];
		int n, i;

		if (strncmp(line, "## ", 3) == 0) {
			in = strcmp(cell(line + 3), heading) == 0;
			header = 0;
			continue;
		}
		if (!in || line[0] != '|')
			continue;
		if (header++ < 2)
			continue;   /* the column names and the |---| line */
		n = split_row(line, c, 4);
		assert_true(n >= 2);
		assert_true(out->n < 64);
		for (i = 0; i < n; i++)
			el_strlcpy(out->cells[out->n][i], c[i], sizeof(out->cells[0][0]));
		out->n++;
	}
	fclose(fp);
}

static void
doc_shows_the_codes_table(void **state)
{
	struct rows r;
	size_t i;

	(void)state;
	read_table("Transitions", &r);
	assert_int_equal((size_t)r.n, lifecycle_ntransitions);
	for (i = 0; i < lifecycle_ntransitions; i++) {
		const struct lifecycle_transition *t = &lifecycle_table[i];
		assert_string_equal(r.cells[i][0], lifecycle_state_name(t->from));
		assert_string_equal(r.cells[i][1], lifecycle_event_name(t->event));
		assert_string_equal(r.cells[i][2], lifecycle_state_name(t->to));
		assert_string_equal(r.cells[i][3], t->audit_event);
	}
}

static void
doc_lists_every_state(void **state)
{
	struct rows r;
	char list[256] = "";
	size_t len = 0;
	int i;

	(void)state;
	read_table("States", &r);
	assert_int_equal(r.n, RS__COUNT);
	for (i = 0; i < RS__COUNT; i++) {
		assert_string_equal(r.cells[i][0], lifecycle_state_name((enum req_state)i));
		assert_int_equal(lifecycle_state_parse(r.cells[i][0]), i);
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", i > 0 ? ", " : "",
		    lifecycle_state_name((enum req_state)i));
	}
	assert_string_equal(lifecycle_state_list(), list);
	assert_int_equal(lifecycle_state_parse("approved"), -1);
	assert_int_equal(lifecycle_state_parse(NULL), -1);
}

/* A function of (state, event); one audit event names one transition from a state, so an
 * audit history reads back as a path. */
static void
table_is_a_function(void **state)
{
	size_t i, j;

	(void)state;
	for (i = 0; i < lifecycle_ntransitions; i++)
		for (j = i + 1; j < lifecycle_ntransitions; j++) {
			const struct lifecycle_transition *a = &lifecycle_table[i],
			    *b = &lifecycle_table[j];
			if (a->from != b->from)
				continue;
			assert_false(a->event == b->event);
			assert_string_not_equal(a->audit_event, b->audit_event);
		}
	assert_int_equal(lifecycle_find(RS_PENDING, EV_QUORUM)->to, RS_ACTIVATING);
	assert_null(lifecycle_find(RS_ACTIVATING, EV_CANCEL));   /* 409: revoke instead */
	assert_null(lifecycle_find(RS_ACTIVATING, EV_DENY));
	assert_int_equal(lifecycle_find(RS_ACTIVATING, EV_REVOKE)->to, RS_ENDING);
	assert_null(lifecycle_find(RS_ENDING, EV_MINTED));     /* a late mint never reopens */
	assert_null(lifecycle_find(RS_CANCELLED, EV_MINTED));
}

static void
terminal_states(void **state)
{
	int i;

	(void)state;
	for (i = 0; i < RS__COUNT; i++) {
		bool want = i == RS_ENDED || i == RS_DENIED || i == RS_CANCELLED ||
		    i == RS_LAPSED || i == RS_FAILED;
		assert_int_equal(lifecycle_terminal((enum req_state)i), want);
	}
	/* Every state but pending is reached by some transition: none is dead code. */
	for (i = 1; i < RS__COUNT; i++) {
		size_t j;
		bool reached = false;
		for (j = 0; j < lifecycle_ntransitions; j++)
			reached |= lifecycle_table[j].to == (enum req_state)i;
		assert_true(reached);
	}
}

/* The database's CHECK admits exactly the table's states. */
static void
store_check_matches(void **state)
{
	char dir[] = "/tmp/el_test_lifecycle_XXXXXX", path[96], sql[256];
	struct store *s;
	struct el_why w = {{0}};
	sqlite3 *db;
	int i;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/e.db", dir);
	assert_int_equal(store_open(path, &s, &w), EL_OK);
	store_close(s);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	for (i = 0; i < RS__COUNT + 1; i++) {
		const char *name = i < RS__COUNT ? lifecycle_state_name((enum req_state)i) : "bogus";
		snprintf(sql, sizeof(sql), "INSERT INTO requests (id, profile, requester, state,"
		    " duration, role_arn, created_at, pending_until, updated_at) VALUES"
		    " ('r%d', 'p', 'u', '%s', 1, 'a', 1, 1, 1)", i, name);
		assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL),
		    i < RS__COUNT ? SQLITE_OK : SQLITE_CONSTRAINT);
	}
	sqlite3_close(db);
	snprintf(sql, sizeof(sql), "rm -rf %s", dir);
	assert_int_equal(system(sql), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(doc_shows_the_codes_table),
		cmocka_unit_test(doc_lists_every_state),
		cmocka_unit_test(table_is_a_function),
		cmocka_unit_test(terminal_states),
		cmocka_unit_test(store_check_matches),
	};

	log_set_level(LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
