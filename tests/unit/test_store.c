/*
 * test_store.c — the store as the engine relies on it, on both backends: schema version,
 * upgrades from older databases, requests and their conditional state changes,
 * approvals, replay protection, deadlines, the outbox and its claims, webhook deliveries,
 * revoked sessions and revocation cohorts, grants, SSM sessions, transactions (rollback
 * really discards, nesting commits once, writers are serialised, relaxed ones refuse what
 * needs the lock) and read snapshots. Every test runs against SQLite and against
 * PostgreSQL (ELEVATE_TEST_PG_URL: a database this test may empty, which tests/run-all.sh
 * provides through tests/unit/with_pg.py), except what only one backend has: SQLite's file
 * mode, WAL checkpointer and damaged pages; PostgreSQL's nodes migrating together, writers
 * serialised across connections, mails claimed once across nodes, nonce claims without
 * the writers' lock, and lost connections.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include "elevate/audit.h"
#include "elevate/config.h"
#include "elevate/el.h"
#include "elevate/log.h"
#include "elevate/store.h"

/* The backend a test runs on: its cmocka prestate. */
struct backend {
	bool pg;
};
static struct backend on_sqlite = {false}, on_pg = {true};
static const char *pg_url;     /* ELEVATE_TEST_PG_URL */

struct fx {
	bool pg;
	char dir[64];
	char path[128];            /* SQLite: the file */
	const char *where;         /* what store_open() takes: the file, or pg_url */
	struct store *s;
};

static void
quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;   /* "drop cascades to ...": expected */
}

/* A connection of our own to the test's database, as another process or node. */
static PGconn *
pg_outside(void)
{
	PGconn *c = PQconnectdb(pg_url);

	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("PostgreSQL: %s", PQerrorMessage(c));
	PQsetNoticeProcessor(c, quiet, NULL);
	return c;
}

/* Runs sql outside the store: 0 done, 1 refused by a constraint, -1 another failure. */
static int
outside_exec(const struct fx *f, const char *sql)
{
	if (f->pg) {
		PGconn *c = pg_outside();
		PGresult *res = PQexec(c, sql);
		const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		int rc = PQresultStatus(res) == PGRES_COMMAND_OK ||
		    PQresultStatus(res) == PGRES_TUPLES_OK ? 0 :
		    st != NULL && strncmp(st, "23", 2) == 0 ? 1 : -1;

		if (rc < 0)
			fprintf(stderr, "outside_exec: %s", PQresultErrorMessage(res));
		PQclear(res);
		PQfinish(c);
		return rc;
	} else {
		sqlite3 *db;
		int rc;

		assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
		sqlite3_busy_timeout(db, 5000);
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
		if (rc != SQLITE_OK && rc != SQLITE_CONSTRAINT)
			fprintf(stderr, "outside_exec: %s\n", sqlite3_errmsg(db));
		sqlite3_close(db);
		return rc == SQLITE_OK ? 0 : rc == SQLITE_CONSTRAINT ? 1 : -1;
	}
}

/* The integer a one-row query gives, read outside the store (what another process
 * sees); -1 without a row. */
static int64_t
outside_int(const struct fx *f, const char *sql)
{
	int64_t n = -1;

	if (f->pg) {
		PGconn *c = pg_outside();
		PGresult *res = PQexec(c, sql);

		if (PQresultStatus(res) != PGRES_TUPLES_OK)
			fail_msg("%s: %s", sql, PQresultErrorMessage(res));
		if (PQntuples(res) > 0)
			n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		PQclear(res);
		PQfinish(c);
	} else {
		sqlite3 *db;
		sqlite3_stmt *st;

		assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL),
		    SQLITE_OK);
		sqlite3_busy_timeout(db, 5000);
		assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
		if (sqlite3_step(st) == SQLITE_ROW)
			n = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
		sqlite3_close(db);
	}
	return n;
}

/* Rows in a table, read through a separate connection (what another process sees). */
static int
count_outside(const struct fx *f, const char *table)
{
	char sql[128];

	snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM %s", table);
	return (int)outside_int(f, sql);
}

static void
rm_db(const char *path)
{
	char p[160];

	unlink(path);
	snprintf(p, sizeof(p), "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-journal", path);
	unlink(p);
}

/* An empty database: a new directory for SQLite, PostgreSQL's emptied (the schema
 * public dropped with all it holds, schema_version too, and made again). */
static int
setup_dir(void **state)
{
	const struct backend *b = *state;
	struct fx *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	f->pg = b->pg;
	snprintf(f->dir, sizeof(f->dir), "/tmp/el_test_store_XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/elevate.db", f->dir);
	f->where = f->pg ? pg_url : f->path;
	*state = f;
	if (f->pg && outside_exec(f, "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public")
	    != 0)
		return -1;
	return 0;
}

static int
setup(void **state)
{
	struct fx *f;
	struct el_why w = {{0}};

	if (setup_dir(state) != 0)
		return -1;
	f = *state;
	if (store_open(f->where, &f->s, &w) != EL_OK) {
		fprintf(stderr, "store_open: %s\n", w.msg);
		return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	store_close(f->s);
	rm_db(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* A request filled with the usual fields; strings are borrowed literals. */
static void
mkreq(struct store_request *r, const char *id, const char *state, const char *requester,
    const char *profile, int64_t created)
{
	memset(r, 0, sizeof(*r));
	el_strlcpy(r->id, id, sizeof(r->id));
	assert_true(lifecycle_state_parse(state) >= 0);
	r->state = (enum req_state)lifecycle_state_parse(state);
	el_strlcpy(r->requester, requester, sizeof(r->requester));
	el_strlcpy(r->profile, profile, sizeof(r->profile));
	r->duration = 900;
	r->role_arn = "arn:aws:iam::111122223333:role/ProdReadOnly";
	r->region = "ap-northeast-1";
	r->created_at = created;
	r->pending_until = created + 1800;
}

static void
insert(struct store *s, const char *id, const char *state, const char *requester,
    const char *profile, int64_t created)
{
	struct store_request r;

	mkreq(&r, id, state, requester, profile, created);
	assert_int_equal(store_request_insert(s, &r), EL_OK);
}

/* The store's compare-and-set, as the engine's transitions use it. */
static enum el_err
set_state(struct store *s, const char *id, const char *from, const char *to, int64_t at)
{
	struct store_request r;
	enum el_err e;

	(void)at;
	if ((e = store_request_get(s, id, &r)) != EL_OK)
		return e;
	r.state = (enum req_state)lifecycle_state_parse(to);
	e = store_request_cas(s, &r, (enum req_state)lifecycle_state_parse(from));
	store_request_free(&r);
	return e;
}

static int64_t
deadline(struct store *s)
{
	int64_t t = -1;

	assert_int_equal(store_next_deadline(s, 0, 0, &t), EL_OK);
	return t;
}

static int64_t
mail_due(struct store *s)
{
	int64_t t = -1;

	assert_int_equal(store_mail_next_due(s, &t), EL_OK);
	return t;
}

static int
exists(struct store *s, const char *id)
{
	struct store_request r;
	enum el_err e = store_request_get(s, id, &r);

	if (e == EL_OK) {
		store_request_free(&r);
		return 1;
	}
	assert_int_equal(e, EL_ENOENT);
	return 0;
}

/* ---- open, version, upgrade ---- */

static void
open_mode_and_version(void **state)
{
	struct fx *f = *state;
	struct el_why w = {{0}};
	struct stat st;
	char p[160];
	mode_t old;

	/* Even with a permissive umask the database is private. */
	old = umask(0);
	assert_int_equal(store_open(f->path, &f->s, &w), EL_OK);
	umask(old);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(store_schema_version(f->s), STORE_SCHEMA_VERSION);
	assert_int_equal(STORE_SCHEMA_VERSION, 16);
	/* Write something so the WAL exists: it holds the same secrets, same mode. */
	insert(f->s, "req_a", "pending", "alice", "prod", 100);
	snprintf(p, sizeof(p), "%s-wal", f->path);
	if (stat(p, &st) == 0)
		assert_int_equal(st.st_mode & 0077, 0);
	store_close(f->s);

	/* Reopening an up-to-date database changes nothing. */
	assert_int_equal(store_open(f->path, &f->s, &w), EL_OK);
	assert_int_equal(store_schema_version(f->s), STORE_SCHEMA_VERSION);
	assert_true(exists(f->s, "req_a"));
}

static void
open_refusals(void **state)
{
	struct fx *f = *state;
	struct el_why w = {{0}};
	struct store *s = NULL;
	char sql[128];

	assert_int_equal(store_open_version(f->where, 0, &s, &w), EL_EINVAL);
	assert_int_equal(store_open_version(f->where, STORE_SCHEMA_VERSION + 1, &s, &w),
	    EL_EINVAL);
	memset(&w, 0, sizeof(w));
	if (f->pg) {
		/* a server that is not there: the message names it, never a password */
		assert_int_equal(store_open("postgresql://elevate:s3cret@127.0.0.1:1/nodb"
		    "?connect_timeout=5", &s, &w), EL_EDB);
		assert_non_null(strstr(w.msg, "database nodb on 127.0.0.1:1 as elevate"));
		assert_null(strstr(w.msg, "s3cret"));
		memset(&w, 0, sizeof(w));
		assert_int_equal(store_open("postgresql://h/db?nosuchparameter=1", &s, &w),
		    EL_ECONFIG);
		assert_non_null(strstr(w.msg, "nosuchparameter"));
	} else {
		assert_int_equal(store_open("/nonexistent-dir-el/x.db", &s, &w), EL_EIO);
		assert_non_null(strstr(w.msg, "/nonexistent-dir-el/x.db"));
	}

	/* A database from a newer elevated is refused, not downgraded or damaged. */
	assert_int_equal(store_open(f->where, &s, &w), EL_OK);
	store_close(s);
	snprintf(sql, sizeof(sql), f->pg ? "UPDATE schema_version SET version = %d" :
	    "PRAGMA user_version = %d", STORE_SCHEMA_VERSION + 1);
	assert_int_equal(outside_exec(f, sql), 0);
	memset(&w, 0, sizeof(w));
	assert_int_equal(store_open(f->where, &s, &w), EL_EDB);
	assert_non_null(strstr(w.msg, "newer"));
	assert_int_equal(outside_int(f, f->pg ? "SELECT version FROM schema_version" :
	    "PRAGMA user_version"), STORE_SCHEMA_VERSION + 1);
}

static void
upgrade_from_v1(void **state)
{
	struct fx *f = *state;
	struct el_why w = {{0}};
	struct store_request r;
	struct store_approval *a = NULL;
	struct store_session ss;
	struct store_revoked rv;
	size_t n = 0;
	int64_t id;

	assert_int_equal(store_open_version(f->where, 1, &f->s, &w), EL_OK);
	assert_int_equal(store_schema_version(f->s), 1);
	store_close(f->s);
	f->s = NULL;

	/* What a v1 elevated wrote, with v1's columns only. */
	assert_int_equal(outside_exec(f, "INSERT INTO requests (id, profile, requester, state,"
	    " duration, reason, ticket, role_arn, region, created_at, pending_until, decided_at,"
	    " window_start, window_end, updated_at) VALUES ('req_old', 'prod-readonly', 'alice',"
	    " 'active', 900, 'fix INC-1', 'INC-1', 'arn:aws:iam::111122223333:role/R',"
	    " 'ap-northeast-1', 1000, 2800, 1100, 1100, 2000, 1100);"
	    "INSERT INTO approvals (request_id, approver, decision, comment, at) VALUES"
	    " ('req_old', 'carol', 'approve', 'ok', 1100);"
	    "INSERT INTO nonces (nonce, who, seen_at) VALUES ('n-old', 'alice', 1000);"), 0);

	assert_int_equal(store_open(f->where, &f->s, &w), EL_OK);
	assert_int_equal(store_schema_version(f->s), STORE_SCHEMA_VERSION);
	assert_int_equal(store_request_get(f->s, "req_old", &r), EL_OK);
	assert_string_equal(r.id, "req_old");
	assert_string_equal(r.profile, "prod-readonly");
	assert_string_equal(r.requester, "alice");
	assert_string_equal(lifecycle_state_name(r.state), "active");
	assert_int_equal(r.duration, 900);
	assert_string_equal(r.reason, "fix INC-1");
	assert_string_equal(r.ticket, "INC-1");
	assert_string_equal(r.role_arn, "arn:aws:iam::111122223333:role/R");
	assert_string_equal(r.region, "ap-northeast-1");
	assert_int_equal(r.created_at, 1000);
	assert_int_equal(r.pending_until, 2800);
	assert_int_equal(r.decided_at, 1100);
	assert_int_equal(r.window_start, 1100);
	assert_int_equal(r.window_end, 2000);
	assert_int_equal(r.ended_at, 0);
	/* New columns take their defaults. */
	assert_int_equal(r.attempts, 0);
	assert_int_equal(r.next_attempt_at, 0);
	assert_null(r.parent_id);
	assert_null(r.failure_code);
	store_request_free(&r);

	assert_int_equal(store_approval_list(f->s, "req_old", &a, &n), EL_OK);
	assert_int_equal(n, 1);
	assert_string_equal(a[0].approver, "carol");
	assert_string_equal(a[0].via, "cli");
	assert_string_equal(a[0].comment, "ok");
	store_approvals_free(a, n);

	/* The upgraded database takes everything v3 writes. */
	assert_int_equal(set_state(f->s, "req_old", "active", "ending", 2000), EL_OK);
	memset(&ss, 0, sizeof(ss));
	ss.session_id = "alice-0123456789abcdef0";
	ss.target = "i-0123456789abcdef0";
	ss.started_at = 1200;
	assert_int_equal(store_session_insert(f->s, "req_old", &ss), EL_OK);
	rv.role_name = "R";
	rv.userid = "AROAEXAMPLE:elevate-req_old";
	rv.request_id = "req_old";
	rv.expires_at = 5000;
	assert_int_equal(store_revoked_add(f->s, &rv), EL_OK);
	assert_int_equal(store_mail_enqueue(f->s, "req_old", "alice@example.com", "s", "m", "<1@t>",
	    10, &id), EL_OK);
	assert_int_equal(store_nonce_use(f->s, "token", "n-old", "alice", 2000), EL_OK);
	insert(f->s, "req_new", "pending", "bob", "prod-readonly", 3000);
	store_close(f->s);

	/* And opening it again is a no-op. */
	assert_int_equal(store_open(f->where, &f->s, &w), EL_OK);
	assert_int_equal(store_schema_version(f->s), STORE_SCHEMA_VERSION);
	assert_true(exists(f->s, "req_old"));
	assert_true(exists(f->s, "req_new"));
}

static void
upgrade_from_v2(void **state)
{
	struct fx *f = *state;
	struct el_why w = {{0}};
	struct store_request r;

	assert_int_equal(store_open_version(f->where, 2, &f->s, &w), EL_OK);
	assert_int_equal(store_schema_version(f->s), 2);
	mkreq(&r, "req_v2", "ending", "alice", "prod", 50);
	r.next_attempt_at = 77;
	r.attempts = 2;
	r.parent_id = "req_parent";
	assert_int_equal(store_request_insert(f->s, &r), EL_OK);
	store_close(f->s);
	assert_int_equal(store_open(f->where, &f->s, &w), EL_OK);
	assert_int_equal(store_schema_version(f->s), STORE_SCHEMA_VERSION);
	assert_int_equal(store_request_get(f->s, "req_v2", &r), EL_OK);
	assert_int_equal(r.next_attempt_at, 77);
	assert_int_equal(r.attempts, 2);
	assert_string_equal(r.parent_id, "req_parent");
	store_request_free(&r);
}

/* Version 10's leases: the activation lease of a first attempt (next_attempt_at) is gone,
 * a retry keeps its time, and nothing is leased. */
static void
upgrade_from_v8_frees_activations(void **state)
{
	struct fx *f = *state;
	struct el_why w = {{0}};
	struct store_request r;
	int64_t until = -1;
	char node[16];

	assert_int_equal(store_open_version(f->where, 8, &f->s, &w), EL_OK);
	mkreq(&r, "req_first", "activating", "alice", "prod", 50);
	r.next_attempt_at = 110;      /* the old 60 s lease */
	assert_int_equal(store_request_insert(f->s, &r), EL_OK);
	mkreq(&r, "req_retry", "activating", "alice", "prod", 50);
	r.next_attempt_at = 130;
	r.attempts = 2;
	assert_int_equal(store_request_insert(f->s, &r), EL_OK);
	store_close(f->s);
	assert_int_equal(store_open(f->where, &f->s, &w), EL_OK);
	assert_int_equal(store_schema_version(f->s), STORE_SCHEMA_VERSION);
	assert_int_equal(store_request_get(f->s, "req_first", &r), EL_OK);
	assert_int_equal(r.next_attempt_at, 0);
	store_request_free(&r);
	assert_int_equal(store_request_get(f->s, "req_retry", &r), EL_OK);
	assert_int_equal(r.next_attempt_at, 130);
	store_request_free(&r);
	assert_int_equal(store_lease_get(f->s, "req_first", node, sizeof(node), &until), EL_OK);
	assert_string_equal(node, "");
	assert_int_equal(until, 0);
}

/* ---- requests ---- */

static void
request_round_trip(void **state)
{
	struct fx *f = *state;
	struct store_request in, out;

	mkreq(&in, "req_7kq2m4x9bd3h", "pending", "alice", "prod-readonly", 1795317960);
	in.reason = "deploy hotfix — ünïcode";
	in.ticket = "INC-42";
	in.decided_at = 11;
	in.window_start = 12;
	in.window_end = 13;
	in.ended_at = 14;
	in.next_attempt_at = 15;
	in.attempts = 3;
	in.failure_code = "AccessDenied";
	in.failure_message = "not allowed";
	in.parent_id = "req_parent";
	assert_int_equal(store_request_insert(f->s, &in), EL_OK);
	assert_int_equal(store_request_get(f->s, "req_7kq2m4x9bd3h", &out), EL_OK);
	assert_string_equal(out.id, in.id);
	assert_string_equal(out.profile, "prod-readonly");
	assert_string_equal(out.requester, "alice");
	assert_string_equal(lifecycle_state_name(out.state), "pending");
	assert_int_equal(out.duration, 900);
	assert_string_equal(out.reason, in.reason);
	assert_string_equal(out.ticket, "INC-42");
	assert_string_equal(out.role_arn, in.role_arn);
	assert_string_equal(out.region, "ap-northeast-1");
	assert_int_equal(out.created_at, 1795317960);
	assert_int_equal(out.pending_until, 1795317960 + 1800);
	assert_int_equal(out.decided_at, 11);
	assert_int_equal(out.window_start, 12);
	assert_int_equal(out.window_end, 13);
	assert_int_equal(out.ended_at, 14);
	assert_int_equal(out.next_attempt_at, 15);
	assert_int_equal(out.attempts, 3);
	assert_string_equal(out.failure_code, "AccessDenied");
	assert_string_equal(out.failure_message, "not allowed");
	assert_string_equal(out.parent_id, "req_parent");
	store_request_free(&out);
	assert_null(out.reason);

	/* Optional strings stay absent. */
	insert(f->s, "req_bare", "pending", "bob", "p", 5);
	assert_int_equal(store_request_get(f->s, "req_bare", &out), EL_OK);
	assert_null(out.reason);
	assert_null(out.ticket);
	assert_null(out.failure_code);
	assert_int_equal(out.window_end, 0);
	store_request_free(&out);

	assert_int_equal(store_request_get(f->s, "req_missing", &out), EL_ENOENT);
	/* Ids are unique. */
	mkreq(&in, "req_bare", "pending", "mallory", "p", 6);
	assert_int_equal(store_request_insert(f->s, &in), EL_EEXIST);
	assert_int_equal(store_request_get(f->s, "req_bare", &out), EL_OK);
	assert_string_equal(out.requester, "bob");
	store_request_free(&out);
}

static void
request_list_filters(void **state)
{
	struct fx *f = *state;
	struct store_filter flt;
	struct store_request *v = NULL;
	size_t n = 0, i;

	insert(f->s, "r1", "pending", "alice", "prod", 100);
	insert(f->s, "r2", "active", "alice", "dev", 200);
	insert(f->s, "r3", "pending", "bob", "prod", 300);
	insert(f->s, "r4", "denied", "bob", "dev", 400);
	insert(f->s, "r5", "pending", "alice", "dev", 500);

	memset(&flt, 0, sizeof(flt));
	assert_int_equal(store_request_list(f->s, &flt, &v, &n), EL_OK);
	assert_int_equal(n, 5);
	/* Newest first. */
	assert_string_equal(v[0].id, "r5");
	assert_string_equal(v[4].id, "r1");
	for (i = 0; i < n; i++)
		store_request_free(&v[i]);
	free(v);

	flt.by_state = true;
	flt.state = RS_PENDING;
	assert_int_equal(store_request_list(f->s, &flt, &v, &n), EL_OK);
	assert_int_equal(n, 3);
	assert_string_equal(v[0].id, "r5");
	assert_string_equal(v[1].id, "r3");
	assert_string_equal(v[2].id, "r1");
	for (i = 0; i < n; i++)
		store_request_free(&v[i]);
	free(v);

	flt.requester = "alice";
	assert_int_equal(store_request_list(f->s, &flt, &v, &n), EL_OK);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].id, "r5");
	assert_string_equal(v[1].id, "r1");
	for (i = 0; i < n; i++)
		store_request_free(&v[i]);
	free(v);

	flt.profile = "prod";
	assert_int_equal(store_request_list(f->s, &flt, &v, &n), EL_OK);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].id, "r1");
	store_request_free(&v[0]);
	free(v);

	memset(&flt, 0, sizeof(flt));
	flt.profile = "dev";
	flt.limit = 2;
	assert_int_equal(store_request_list(f->s, &flt, &v, &n), EL_OK);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].id, "r5");
	assert_string_equal(v[1].id, "r4");
	for (i = 0; i < n; i++)
		store_request_free(&v[i]);
	free(v);

	memset(&flt, 0, sizeof(flt));
	flt.requester = "nobody";
	v = NULL;
	assert_int_equal(store_request_list(f->s, &flt, &v, &n), EL_OK);
	assert_int_equal(n, 0);
	free(v);

	/* SQL in a filter value is only a value. */
	flt.requester = "alice' OR '1'='1";
	assert_int_equal(store_request_list(f->s, &flt, &v, &n), EL_OK);
	assert_int_equal(n, 0);
	free(v);
}

static void
request_set_state_conditional(void **state)
{
	struct fx *f = *state;
	struct store_request r;

	insert(f->s, "req_s", "pending", "alice", "prod", 100);
	assert_int_equal(set_state(f->s, "req_s", "pending", "active", 200), EL_OK);
	/* A second approver racing the first finds the state already moved. */
	assert_int_equal(set_state(f->s, "req_s", "pending", "active", 201),
	    EL_ESTATE);
	assert_int_equal(set_state(f->s, "req_s", "pending", "denied", 202),
	    EL_ESTATE);
	assert_int_equal(store_request_get(f->s, "req_s", &r), EL_OK);
	assert_string_equal(lifecycle_state_name(r.state), "active");
	store_request_free(&r);
	assert_int_equal(set_state(f->s, "req_s", "active", "ending", 300), EL_OK);
	assert_int_equal(store_request_get(f->s, "req_s", &r), EL_OK);
	assert_string_equal(lifecycle_state_name(r.state), "ending");
	store_request_free(&r);
	assert_int_not_equal(set_state(f->s, "req_nope", "pending", "active", 1),
	    EL_OK);
	assert_false(exists(f->s, "req_nope"));
}

static void
request_update(void **state)
{
	struct fx *f = *state;
	struct store_request r, g;

	insert(f->s, "req_u", "pending", "alice", "prod", 100);
	assert_int_equal(store_request_get(f->s, "req_u", &r), EL_OK);
	r.state = RS_FAILED;
	r.decided_at = 150;
	r.window_start = 160;
	r.window_end = 1060;
	r.ended_at = 170;
	r.duration = 1800;
	r.attempts = 4;
	r.next_attempt_at = 175;
	free(r.failure_code);
	free(r.failure_message);
	r.failure_code = strdup("AccessDenied");
	r.failure_message = strdup("User is not authorized to perform sts:AssumeRole");
	assert_int_equal(store_request_cas(f->s, &r, RS_PENDING), EL_OK);
	/* Written once: the row is no longer pending. */
	assert_int_equal(store_request_cas(f->s, &r, RS_PENDING), EL_ESTATE);
	assert_int_equal(store_request_get(f->s, "req_u", &g), EL_OK);
	assert_string_equal(lifecycle_state_name(g.state), "failed");
	assert_int_equal(g.decided_at, 150);
	assert_int_equal(g.window_start, 160);
	assert_int_equal(g.window_end, 1060);
	assert_int_equal(g.ended_at, 170);
	assert_int_equal(g.duration, 1800);
	assert_int_equal(g.attempts, 4);
	assert_int_equal(g.next_attempt_at, 175);
	assert_string_equal(g.failure_code, "AccessDenied");
	assert_string_equal(g.failure_message, r.failure_message);
	/* What update does not own stays put. */
	assert_string_equal(g.requester, "alice");
	assert_int_equal(g.created_at, 100);
	store_request_free(&g);

	/* Clearing works (0 and NULL mean "none"). */
	free(r.failure_code);
	r.failure_code = NULL;
	r.next_attempt_at = 0;
	assert_int_equal(store_request_cas(f->s, &r, RS_FAILED), EL_OK);
	assert_int_equal(store_request_get(f->s, "req_u", &g), EL_OK);
	assert_null(g.failure_code);
	assert_int_equal(g.next_attempt_at, 0);
	store_request_free(&g);
	store_request_free(&r);
}

static void
request_counts(void **state)
{
	struct fx *f = *state;
	json_t *c;

	c = store_request_counts(f->s);
	assert_non_null(c);
	assert_int_equal(json_object_size(c), 0);
	json_decref(c);
	insert(f->s, "a", "pending", "alice", "p", 1);
	insert(f->s, "b", "pending", "alice", "p", 2);
	insert(f->s, "c", "active", "alice", "p", 3);
	c = store_request_counts(f->s);
	assert_int_equal(json_integer_value(json_object_get(c, "pending")), 2);
	assert_int_equal(json_integer_value(json_object_get(c, "active")), 1);
	assert_null(json_object_get(c, "ended"));
	json_decref(c);
}

/* ---- approvals ---- */

static void
approvals_unique(void **state)
{
	struct fx *f = *state;
	struct store_approval a, *v = NULL;
	size_t n = 0;

	insert(f->s, "req_a", "pending", "alice", "prod", 100);
	insert(f->s, "req_b", "pending", "alice", "prod", 100);
	memset(&a, 0, sizeof(a));
	el_strlcpy(a.approver, "carol", sizeof(a.approver));
	el_strlcpy(a.decision, "approve", sizeof(a.decision));
	a.comment = "looks fine";
	a.at = 200;
	assert_int_equal(store_approval_insert(f->s, "req_a", &a), EL_OK);
	/* The same approver cannot decide twice, not even the other way. */
	el_strlcpy(a.decision, "deny", sizeof(a.decision));
	a.at = 201;
	assert_int_equal(store_approval_insert(f->s, "req_a", &a), EL_EEXIST);
	/* Another request is another decision. */
	assert_int_equal(store_approval_insert(f->s, "req_b", &a), EL_OK);
	el_strlcpy(a.approver, "dave", sizeof(a.approver));
	el_strlcpy(a.via, "email", sizeof(a.via));
	a.comment = NULL;
	a.at = 150;
	assert_int_equal(store_approval_insert(f->s, "req_a", &a), EL_OK);
	/* Only approve/deny are decisions. */
	el_strlcpy(a.approver, "erin", sizeof(a.approver));
	el_strlcpy(a.decision, "maybe", sizeof(a.decision));
	assert_int_not_equal(store_approval_insert(f->s, "req_a", &a), EL_OK);

	assert_int_equal(store_approval_list(f->s, "req_a", &v, &n), EL_OK);
	assert_int_equal(n, 2);
	/* In the order they were made. */
	assert_string_equal(v[0].approver, "dave");
	assert_string_equal(v[0].decision, "deny");
	assert_string_equal(v[0].via, "email");
	assert_null(v[0].comment);
	assert_int_equal(v[0].at, 150);
	assert_string_equal(v[1].approver, "carol");
	assert_string_equal(v[1].decision, "approve");
	assert_string_equal(v[1].via, "cli");   /* empty via defaults to cli */
	assert_string_equal(v[1].comment, "looks fine");
	store_approvals_free(v, n);

	assert_int_equal(store_approval_list(f->s, "req_none", &v, &n), EL_OK);
	assert_int_equal(n, 0);
	store_approvals_free(v, n);
}

/* ---- nonces ---- */

static void
nonces(void **state)
{
	struct fx *f = *state;
	char longn[200];

	assert_int_equal(store_nonce_use(f->s, "api", "n1", "alice", 1000), EL_OK);
	assert_int_equal(store_nonce_use(f->s, "api", "n1", "alice", 1001), EL_EEXIST);
	/* Seen is seen, whoever replays it. */
	assert_int_equal(store_nonce_use(f->s, "api", "n1", "bob", 1002), EL_EEXIST);
	/* Kinds are separate spaces: an API nonce does not burn an approval token. */
	assert_int_equal(store_nonce_use(f->s, "token", "n1", "carol", 1003), EL_OK);
	assert_int_equal(store_nonce_use(f->s, "token", "n1", "carol", 1004), EL_EEXIST);
	assert_int_equal(store_nonce_use(f->s, "api", "n2", "alice", 2000), EL_OK);

	/* Pruning forgets old nonces of one kind only. */
	assert_int_equal(store_nonce_prune(f->s, "api", 1500), EL_OK);
	assert_int_equal(store_nonce_use(f->s, "api", "n2", "alice", 2001), EL_EEXIST);
	assert_int_equal(store_nonce_use(f->s, "token", "n1", "carol", 2002), EL_EEXIST);
	assert_int_equal(store_nonce_use(f->s, "api", "n1", "alice", 2003), EL_OK);
	assert_int_equal(store_nonce_prune(f->s, "token", 5000), EL_OK);
	assert_int_equal(store_nonce_use(f->s, "token", "n1", "carol", 5001), EL_OK);

	/* An absurd nonce is refused, not truncated into a collision. */
	memset(longn, 'x', sizeof(longn) - 1);
	longn[sizeof(longn) - 1] = '\0';
	assert_int_equal(store_nonce_use(f->s, "api", longn, "alice", 1), EL_EINVAL);
}

/* ---- deadlines ---- */

static void
deadlines(void **state)
{
	struct fx *f = *state;
	struct store_request r;
	char **ids = NULL;
	size_t n = 0, i;

	assert_true(deadline(f->s) == INT64_MAX);

	mkreq(&r, "p1", "pending", "alice", "p", 1);
	r.pending_until = 500;
	assert_int_equal(store_request_insert(f->s, &r), EL_OK);
	assert_int_equal(deadline(f->s), 500);

	mkreq(&r, "a1", "active", "alice", "p", 1);
	r.pending_until = 10;         /* no longer relevant once active */
	r.window_end = 300;
	assert_int_equal(store_request_insert(f->s, &r), EL_OK);
	mkreq(&r, "a2", "active", "alice", "p", 1);
	r.pending_until = 10;
	r.window_end = 350;
	assert_int_equal(store_request_insert(f->s, &r), EL_OK);
	mkreq(&r, "e1", "ending", "alice", "p", 1);
	r.pending_until = 10;
	r.window_end = 20;
	r.next_attempt_at = 400;
	assert_int_equal(store_request_insert(f->s, &r), EL_OK);
	/* Finished requests never wake the reaper. */
	mkreq(&r, "d1", "denied", "alice", "p", 1);
	r.pending_until = 1;
	r.window_end = 1;
	assert_int_equal(store_request_insert(f->s, &r), EL_OK);
	mkreq(&r, "x1", "ended", "alice", "p", 1);
	r.pending_until = 2;
	r.window_end = 2;
	r.next_attempt_at = 2;
	assert_int_equal(store_request_insert(f->s, &r), EL_OK);

	assert_int_equal(deadline(f->s), 300);
	assert_int_equal(set_state(f->s, "a1", "active", "ended", 300), EL_OK);
	assert_int_equal(deadline(f->s), 350);
	assert_int_equal(set_state(f->s, "a2", "active", "ended", 350), EL_OK);
	assert_int_equal(deadline(f->s), 400);
	assert_int_equal(set_state(f->s, "e1", "ending", "ended", 400), EL_OK);
	assert_int_equal(deadline(f->s), 500);
	/* An ending grant without a retry time is due now. */
	mkreq(&r, "e2", "ending", "alice", "p", 1);
	r.window_end = 600;
	assert_int_equal(store_request_insert(f->s, &r), EL_OK);
	assert_int_equal(deadline(f->s), 0);

	/* Due lists: in deadline order, up to `until`, within a limit. */
	mkreq(&r, "a3", "active", "alice", "p", 1);
	r.window_end = 900;
	assert_int_equal(store_request_insert(f->s, &r), EL_OK);
	mkreq(&r, "a4", "active", "alice", "p", 1);
	r.window_end = 700;
	assert_int_equal(store_request_insert(f->s, &r), EL_OK);
	mkreq(&r, "a5", "active", "alice", "p", 1);
	r.window_end = 800;
	assert_int_equal(store_request_insert(f->s, &r), EL_OK);
	assert_int_equal(store_request_due(f->s, RS_ACTIVE, "window_end", 850, 10, &ids, &n), EL_OK);
	assert_int_equal(n, 2);
	assert_string_equal(ids[0], "a4");
	assert_string_equal(ids[1], "a5");
	for (i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	assert_int_equal(store_request_due(f->s, RS_ACTIVE, "window_end", 10000, 1, &ids, &n), EL_OK);
	assert_int_equal(n, 1);
	assert_string_equal(ids[0], "a4");
	free(ids[0]);
	free(ids);
	assert_int_equal(store_request_due(f->s, RS_ACTIVE, "window_end", 699, 10, &ids, &n), EL_OK);
	assert_int_equal(n, 0);
	free(ids);
	assert_int_equal(store_request_due(f->s, RS_PENDING, "pending_until", 500, 10, &ids, &n),
	    EL_OK);
	assert_int_equal(n, 1);
	assert_string_equal(ids[0], "p1");
	free(ids[0]);
	free(ids);
	assert_int_equal(store_request_due(f->s, RS_ENDING, "next_attempt_at", 0, 10, &ids, &n),
	    EL_OK);
	assert_int_equal(n, 1);
	assert_string_equal(ids[0], "e2");
	free(ids[0]);
	free(ids);
	/* Only the three deadline columns may be named. */
	assert_int_equal(store_request_due(f->s, RS_ACTIVE, "id; DROP TABLE requests", 1, 1, &ids,
	    &n), EL_EINVAL);
	assert_int_equal(store_request_due(f->s, RS_ACTIVE, "created_at", 1, 1, &ids, &n), EL_EINVAL);
}

/* ---- leases on due work ---- */

/* Claims `kind` as node at now_ms (a lease of 2 s): the ids, sorted, joined by ",". */
static const char *
claim(struct store *s, enum store_due kind, const char *node, int64_t now_ms, int limit)
{
	static char out[256];
	char **ids = NULL, *t;
	size_t n = 0, i, j;

	assert_int_equal(store_lease_claim(s, kind, node, now_ms, now_ms + 2000, limit, &ids,
	    &n), EL_OK);
	for (i = 1; i < n; i++)
		for (j = i; j > 0 && strcmp(ids[j - 1], ids[j]) > 0; j--) {
			t = ids[j];
			ids[j] = ids[j - 1];
			ids[j - 1] = t;
		}
	out[0] = '\0';
	for (i = 0, j = 0; i < n; i++) {
		j += (size_t)snprintf(out + j, sizeof(out) - j, "%s%s", i > 0 ? "," : "", ids[i]);
		assert_true(j < sizeof(out));
		free(ids[i]);
	}
	free(ids);
	return out;
}

static const char *
holder(struct store *s, const char *id, int64_t *until)
{
	static char node[72];
	int64_t u = -1;

	assert_int_equal(store_lease_get(s, id, node, sizeof(node), &u), EL_OK);
	if (until != NULL)
		*until = u;
	return node;
}

/* Each kind of due work is claimed by one node at a time: due rows that no lease holds,
 * or whose lease ran out (a dead node's); a live lease keeps other nodes off until it
 * runs out or is let go; only its holder renews or lets it go. */
static void
leases(void **state)
{
	struct fx *f = *state;
	struct store_request r;
	int64_t until = 0, t = 0, n = 0;
	char *both[2] = {"a1", "a2"};
	size_t lost = 9;

	/* id, state, and its deadline: pending_until, window_end or next_attempt_at (0: none,
	 * due now) */
	static const struct { const char *id, *state; int64_t due; } due[] = {
		{"p1", "pending", 500}, {"a1", "active", 300}, {"a2", "active", 350},
		{"a3", "active", 401},       /* not yet */
		{"e1", "ending", 400}, {"e2", "ending", 0},
		{"x1", "activating", 0}, {"x2", "activating", 9999},   /* a retry later */
	};
	size_t i;

	for (i = 0; i < sizeof(due) / sizeof(due[0]); i++) {
		mkreq(&r, due[i].id, due[i].state, "alice", "p", 1);
		if (r.state == RS_PENDING)
			r.pending_until = due[i].due;
		else if (r.state == RS_ACTIVE)
			r.window_end = due[i].due;
		else
			r.next_attempt_at = due[i].due;
		assert_int_equal(store_request_insert(f->s, &r), EL_OK);
	}

	/* Nothing is leased yet: the deadline is e2's (due now), no lease ends. */
	assert_int_equal(store_next_deadline(f->s, 0, 400000, &t), EL_OK);
	assert_int_equal(t, 0);
	assert_int_equal(store_lease_next_end(f->s, 400000, &t), EL_OK);
	assert_true(t == INT64_MAX);

	/* Window ends due at 400 s: a1 and a2 (a3 ends at 401), once. */
	assert_string_equal(claim(f->s, STORE_DUE_WINDOW_END, "node-a", 400000, 10), "a1,a2");
	assert_string_equal(claim(f->s, STORE_DUE_WINDOW_END, "node-b", 400000, 10), "");
	assert_string_equal(claim(f->s, STORE_DUE_WINDOW_END, "node-a", 401500, 10), "a3");
	assert_string_equal(holder(f->s, "a1", &until), "node-a");
	assert_int_equal(until, 402000);
	assert_string_equal(holder(f->s, "e1", &until), "");
	assert_int_equal(until, 0);
	/* Leased rows are not due for the reaper: their lease's end is. */
	assert_int_equal(store_lease_next_end(f->s, 400000, &t), EL_OK);
	assert_int_equal(t, 402000);
	assert_int_equal(store_lease_next_end(f->s, 402000, &t), EL_OK);
	assert_int_equal(t, 403500);
	/* The holder renews; another node's renewal changes nothing and finds them lost. */
	assert_int_equal(store_lease_renew(f->s, "node-b", both, 2, 405000, &lost), EL_OK);
	assert_int_equal(lost, 2);
	assert_int_equal(store_lease_renew(f->s, "node-a", both, 2, 404000, &lost), EL_OK);
	assert_int_equal(lost, 0);
	assert_string_equal(claim(f->s, STORE_DUE_WINDOW_END, "node-b", 403499, 10), "");
	/* node-a dies: at 404 s its leases have run out, node-b takes them over (a3's ran out
	 * at 403.5 s too). */
	assert_string_equal(claim(f->s, STORE_DUE_WINDOW_END, "node-b", 404000, 1), "a1");
	assert_string_equal(claim(f->s, STORE_DUE_WINDOW_END, "node-b", 404000, 10), "a2,a3");
	assert_string_equal(holder(f->s, "a2", &until), "node-b");
	assert_int_equal(until, 406000);
	assert_int_equal(store_lease_renew(f->s, "node-a", both, 2, 409000, &lost), EL_OK);
	assert_int_equal(lost, 2);
	/* Only the holder lets go; then the row is free for everyone at once, and a renewal
	 * that comes after it (the work ended meanwhile) neither renews nor loses it. */
	assert_int_equal(store_lease_release(f->s, "a1", "node-a"), EL_OK);
	assert_string_equal(holder(f->s, "a1", NULL), "node-b");
	assert_int_equal(store_lease_release(f->s, "a1", "node-b"), EL_OK);
	assert_string_equal(holder(f->s, "a1", &until), "");
	assert_int_equal(until, 0);
	assert_int_equal(store_lease_renew(f->s, "node-b", both, 2, 406500, &lost), EL_OK);
	assert_int_equal(lost, 0);
	assert_string_equal(holder(f->s, "a1", &until), "");
	assert_string_equal(holder(f->s, "a2", &until), "node-b");
	assert_int_equal(until, 406500);
	assert_string_equal(claim(f->s, STORE_DUE_WINDOW_END, "node-a", 404001, 10), "a1");

	/* The deadline leaves out what is leased beyond now: e1 (400) and e2 (due now) are
	 * free; once claimed, p1 (500) is next. */
	assert_string_equal(claim(f->s, STORE_DUE_REVOKE, "node-a", 400000, 10), "e1,e2");
	assert_string_equal(claim(f->s, STORE_DUE_ACTIVATE, "node-a", 400000, 10), "x1");
	assert_int_equal(store_next_deadline(f->s, 0, 401000, &t), EL_OK);
	assert_int_equal(t, 500);
	/* ... and what is leased until a moment past counts again */
	assert_int_equal(store_next_deadline(f->s, 0, 402000, &t), EL_OK);
	assert_int_equal(t, 0);
	assert_string_equal(claim(f->s, STORE_DUE_LAPSE, "node-a", 499999, 10), "");
	assert_string_equal(claim(f->s, STORE_DUE_LAPSE, "node-b", 500000, 10), "p1");

	/* A node's start lets go of its own leases only. */
	assert_int_equal(store_lease_release_all(f->s, "node-a", &n), EL_OK);
	assert_int_equal(n, 4);       /* a1, e1, e2, x1 */
	assert_string_equal(holder(f->s, "e1", NULL), "");
	assert_string_equal(holder(f->s, "a2", NULL), "node-b");
	assert_string_equal(holder(f->s, "p1", NULL), "node-b");
	/* The vote that starts an activation takes the lease whoever held it. */
	assert_int_equal(store_lease_take(f->s, "x2", "node-a", 777000), EL_OK);
	assert_int_equal(store_lease_take(f->s, "p1", "node-a", 777000), EL_OK);
	assert_string_equal(holder(f->s, "p1", &until), "node-a");
	assert_int_equal(until, 777000);
	assert_int_equal(store_lease_take(f->s, "nope", "node-a", 777000), EL_ENOENT);
	/* Nothing else is claimed: a kind out of range is refused. */
	assert_int_equal(store_lease_claim(f->s, (enum store_due)9, "node-a", 1, 2, 1, NULL,
	    NULL), EL_EINVAL);
}

/* ---- outbox ---- */

static void
outbox(void **state)
{
	struct fx *f = *state;
	struct store_mail m, m2;
	int64_t id1 = 0, id2 = 0, id3 = 0;
	json_t *c;

	assert_true(mail_due(f->s) == INT64_MAX);
	assert_int_equal(store_mail_claim(f->s, "node-a", 1000, 100, &m), EL_ENOENT);
	assert_int_equal(store_mail_enqueue(f->s, "req_1", "carol@example.com", "Approve?",
	    "From: a\r\n\r\nbody1", "<1@t>", 100, &id1), EL_OK);
	assert_int_equal(store_mail_enqueue(f->s, NULL, "dave@example.com", "Approve?",
	    "From: a\r\n\r\nbody2", "<2@t>", 200, &id2), EL_OK);
	assert_int_equal(store_mail_enqueue(f->s, "req_1", "erin@example.com", "FYI", "m3", "<3@t>",
	    300, &id3), EL_OK);
	assert_true(id1 > 0 && id2 > id1 && id3 > id2);
	assert_int_equal(mail_due(f->s), 100);

	assert_int_equal(store_mail_claim(f->s, "node-a", 50, 100, &m), EL_ENOENT);   /* not due */
	assert_int_equal(store_mail_claim(f->s, "node-a", 150, 100, &m), EL_OK);
	assert_int_equal(m.id, id1);
	assert_string_equal(m.request_id, "req_1");
	assert_string_equal(m.rcpt, "carol@example.com");
	assert_string_equal(m.subject, "Approve?");
	assert_string_equal(m.message, "From: a\r\n\r\nbody1");
	assert_string_equal(m.state, "queued");
	assert_int_equal(m.attempts, 0);
	assert_int_equal(m.next_attempt_at, 100);
	assert_null(m.last_error);
	/* node-a's until 250: nobody else gets it meanwhile, nor writes its outcome */
	assert_int_equal(store_mail_claim(f->s, "node-b", 150, 100, &m2), EL_ENOENT);
	assert_int_equal(mail_due(f->s), 200);
	el_strlcpy(m.state, "sent", sizeof(m.state));
	m.attempts = 1;
	assert_int_equal(store_mail_update(f->s, "node-b", &m), EL_ESTATE);
	assert_int_equal(store_mail_update(f->s, "node-a", &m), EL_OK);
	assert_int_equal(store_mail_update(f->s, "node-a", &m), EL_ESTATE);   /* once */
	store_mail_free(&m);
	/* sent: the body (it may hold a live link) is dropped, the sender's name kept */
	assert_int_equal(count_outside(f, "outbox WHERE state = 'sent' AND message = ''"
	    " AND claimed_by = 'node-a'"), 1);

	/* Sent mail is never handed out again; the next one is. */
	assert_int_equal(store_mail_claim(f->s, "node-a", 150, 100, &m), EL_ENOENT);
	assert_int_equal(store_mail_claim(f->s, "node-b", 250, 100, &m), EL_OK);
	assert_int_equal(m.id, id2);
	assert_null(m.request_id);
	store_mail_free(&m);
	/* node-b dies holding it until 350: the others go on with the rest */
	assert_int_equal(mail_due(f->s), 300);
	assert_int_equal(store_mail_claim(f->s, "node-a", 300, 100, &m), EL_OK);
	assert_int_equal(m.id, id3);
	/* A temporary failure: retry later with the reason kept; the claim ends. */
	m.attempts = 1;
	m.next_attempt_at = 500;
	m.last_error = strdup("451 try again");
	assert_int_equal(store_mail_update(f->s, "node-a", &m), EL_OK);
	store_mail_free(&m);
	/* node-b's claim runs out after 350: then anyone takes the mail over */
	assert_int_equal(mail_due(f->s), 351);
	assert_int_equal(store_mail_claim(f->s, "node-a", 350, 100, &m), EL_ENOENT);
	assert_int_equal(store_mail_claim(f->s, "node-a", 351, 100, &m), EL_OK);
	assert_int_equal(m.id, id2);
	el_strlcpy(m.state, "sent", sizeof(m.state));
	assert_int_equal(store_mail_update(f->s, "node-b", &m), EL_ESTATE);   /* too late */
	el_strlcpy(m.state, "failed", sizeof(m.state));
	assert_int_equal(store_mail_update(f->s, "node-a", &m), EL_OK);
	store_mail_free(&m);
	assert_int_equal(mail_due(f->s), 500);

	/* A node that starts again gives up its claims at once: the mail is due again. */
	assert_int_equal(store_mail_claim(f->s, "node-c", 500, 100, &m), EL_OK);
	assert_int_equal(m.id, id3);
	assert_int_equal(m.attempts, 1);
	assert_string_equal(m.last_error, "451 try again");
	store_mail_free(&m);
	assert_int_equal(mail_due(f->s), 601);
	assert_int_equal(store_mail_release(f->s, "node-a"), EL_OK);   /* not its claim */
	assert_int_equal(store_mail_claim(f->s, "node-a", 501, 100, &m), EL_ENOENT);
	assert_int_equal(store_mail_release(f->s, "node-c"), EL_OK);
	assert_int_equal(mail_due(f->s), 500);
	assert_int_equal(store_mail_claim(f->s, "node-a", 501, 100, &m), EL_OK);
	assert_int_equal(m.id, id3);

	c = store_mail_counts(f->s);
	assert_int_equal(json_integer_value(json_object_get(c, "queued")), 1);
	assert_int_equal(json_integer_value(json_object_get(c, "sent")), 1);
	assert_int_equal(json_integer_value(json_object_get(c, "failed")), 1);
	json_decref(c);
	el_strlcpy(m.state, "sent", sizeof(m.state));
	assert_int_equal(store_mail_update(f->s, "node-a", &m), EL_OK);
	store_mail_free(&m);
	assert_true(mail_due(f->s) == INT64_MAX);
	/* id is optional. */
	assert_int_equal(store_mail_enqueue(f->s, NULL, "x@example.com", "s", "m", NULL, 1,
	    NULL), EL_OK);
}

/* ---- webhook deliveries ---- */

static void
mkdelivery(struct store_delivery *d, const char *id, const char *hook, int64_t seq,
    int64_t at)
{
	memset(d, 0, sizeof(*d));
	el_strlcpy(d->id, id, sizeof(d->id));
	el_strlcpy(d->webhook, hook, sizeof(d->webhook));
	el_strlcpy(d->event, "request.created", sizeof(d->event));
	d->seq = seq;
	d->request_id = seq % 2 ? "req_1" : NULL;
	d->payload = "{\"event\":\"request.created\"}";
	d->next_attempt_at = d->created_at = at;
	d->give_up_at = at + 86400;
}

static int64_t
delivery_due(struct store *s)
{
	int64_t t = 0;

	assert_int_equal(store_delivery_next_due(s, &t), EL_OK);
	return t;
}

/* One per webhook and seq; each webhook's go out in order (only its oldest queued one is
 * ever due); a claim leases it to one node until the lease runs out or is released. */
static void
deliveries(void **state)
{
	struct fx *f = *state;
	struct store_delivery d, c;
	json_t *n;

	assert_true(delivery_due(f->s) == INT64_MAX);
	assert_int_equal(store_delivery_claim(f->s, 1000, 1100, "a", &c), EL_ENOENT);
	mkdelivery(&d, "dlv_1", "ops", 7, 100);
	assert_int_equal(store_delivery_insert(f->s, &d), EL_OK);
	mkdelivery(&d, "dlv_2", "ops", 7, 100);
	assert_int_equal(store_delivery_insert(f->s, &d), EL_EEXIST);   /* same event */
	mkdelivery(&d, "dlv_1", "chat", 7, 100);
	assert_int_equal(store_delivery_insert(f->s, &d), EL_EEXIST);   /* same id */
	mkdelivery(&d, "dlv_3", "chat", 7, 100);
	assert_int_equal(store_delivery_insert(f->s, &d), EL_OK);
	mkdelivery(&d, "dlv_4", "ops", 8, 90);
	assert_int_equal(store_delivery_insert(f->s, &d), EL_OK);
	assert_int_equal(delivery_due(f->s), 100);   /* dlv_4 waits behind dlv_1 */

	assert_int_equal(store_delivery_claim(f->s, 50, 150, "a", &c), EL_ENOENT);
	assert_int_equal(store_delivery_claim(f->s, 100, 150, "a", &c), EL_OK);
	assert_string_equal(c.id, "dlv_1");
	assert_string_equal(c.webhook, "ops");
	assert_int_equal(c.seq, 7);
	assert_string_equal(c.request_id, "req_1");
	assert_string_equal(c.payload, "{\"event\":\"request.created\"}");
	assert_int_equal(c.give_up_at, 100 + 86400);
	/* Leased: node b gets the other webhook's, then nothing until the lease ends. */
	assert_int_equal(store_delivery_claim(f->s, 100, 150, "b", &d), EL_OK);
	assert_string_equal(d.id, "dlv_3");
	store_delivery_free(&d);
	assert_int_equal(store_delivery_claim(f->s, 120, 170, "b", &d), EL_ENOENT);
	assert_int_equal(delivery_due(f->s), 150);
	/* Only the node holding the lease records the outcome. */
	c.attempts = 1;
	c.next_attempt_at = 130;
	c.last_error = strdup("HTTP 503");
	assert_int_equal(store_delivery_done(f->s, &c, "queued", "b", 110), EL_ESTATE);
	assert_int_equal(store_delivery_done(f->s, &c, "queued", "a", 110), EL_OK);
	store_delivery_free(&c);
	assert_int_equal(delivery_due(f->s), 130);
	assert_int_equal(store_delivery_claim(f->s, 130, 200, "b", &c), EL_OK);
	assert_string_equal(c.id, "dlv_1");
	assert_int_equal(c.attempts, 1);
	assert_int_equal(store_delivery_done(f->s, &c, "sent", "b", 131), EL_OK);
	assert_int_equal(store_delivery_done(f->s, &c, "sent", "b", 131), EL_ESTATE);
	store_delivery_free(&c);
	assert_int_equal(outside_int(f, "SELECT COUNT(*) FROM webhook_deliveries WHERE id ="
	    " 'dlv_1' AND payload = '' AND sent_at = 131"), 1);
	/* dlv_4 is the head now. A node's leases are released at its start. */
	assert_int_equal(store_delivery_claim(f->s, 131, 300, "a", &c), EL_OK);
	assert_string_equal(c.id, "dlv_4");
	assert_null(c.request_id);
	assert_int_equal(store_delivery_claim(f->s, 132, 300, "a", &d), EL_ENOENT);
	assert_int_equal(store_delivery_release(f->s, "a"), EL_OK);
	assert_int_equal(store_delivery_claim(f->s, 132, 300, "a", &d), EL_OK);
	assert_string_equal(d.id, "dlv_4");
	assert_int_equal(store_delivery_done(f->s, &d, "failed", "a", 133), EL_OK);
	store_delivery_free(&d);
	store_delivery_free(&c);
	n = store_delivery_counts(f->s);
	assert_int_equal(json_integer_value(json_object_get(n, "sent")), 1);
	assert_int_equal(json_integer_value(json_object_get(n, "failed")), 1);
	assert_int_equal(json_integer_value(json_object_get(n, "queued")), 1);   /* dlv_3, b's */
	json_decref(n);
	assert_int_equal(delivery_due(f->s), 150);
}

struct mailer {
	struct store *s;
	const char *node;
	_Atomic int *sends;        /* per mail id: the times it was claimed */
	int claimed, failures;
};

/* Claims and marks sent until nothing is left, as a node's mailer does. */
static void *
mailer_work(void *arg)
{
	struct mailer *mw = arg;
	struct store_mail m;
	enum el_err r;

	while ((r = store_mail_claim(mw->s, mw->node, 1000, 100, &m)) == EL_OK) {
		mw->claimed++;
		if (m.id < 1 || m.id > 200)
			mw->failures++;
		else
			atomic_fetch_add(&mw->sends[m.id], 1);
		el_strlcpy(m.state, "sent", sizeof(m.state));
		m.attempts = 1;
		if (store_begin_relaxed(mw->s) != EL_OK ||
		    store_mail_update(mw->s, mw->node, &m) != EL_OK ||
		    store_commit(mw->s) != EL_OK)
			mw->failures++;
		store_mail_free(&m);
	}
	if (r != EL_ENOENT)
		mw->failures++;
	return NULL;
}

/* Four mailers, two on f->s and two on `other` (another node's store, or f->s), drain 200
 * mails: each is claimed exactly once, and all are sent. */
static void
mails_claimed_once(struct fx *f, struct store *other)
{
	static _Atomic int sends[201];
	struct mailer mw[4];
	pthread_t th[4];
	char rcpt[32];
	int i, total = 0;

	assert_int_equal(store_begin(f->s), EL_OK);
	for (i = 0; i < 200; i++) {
		snprintf(rcpt, sizeof(rcpt), "u%d@example.com", i);
		assert_int_equal(store_mail_enqueue(f->s, NULL, rcpt, "s", "m", NULL, 1 + i % 7,
		    NULL), EL_OK);
	}
	assert_int_equal(store_commit(f->s), EL_OK);
	assert_int_equal(outside_int(f, "SELECT MIN(id) FROM outbox"), 1);
	for (i = 0; i <= 200; i++)
		atomic_init(&sends[i], 0);
	for (i = 0; i < 4; i++) {
		memset(&mw[i], 0, sizeof(mw[i]));
		mw[i].s = i % 2 ? other : f->s;
		mw[i].node = i % 2 ? "node-b" : "node-a";
		mw[i].sends = sends;
		assert_int_equal(pthread_create(&th[i], NULL, mailer_work, &mw[i]), 0);
	}
	for (i = 0; i < 4; i++)
		pthread_join(th[i], NULL);   /* all of them before any assertion can end the test */
	for (i = 0; i < 4; i++) {
		assert_int_equal(mw[i].failures, 0);
		total += mw[i].claimed;
	}
	assert_int_equal(total, 200);
	for (i = 1; i <= 200; i++)
		if (atomic_load(&sends[i]) != 1)
			fail_msg("mail %d was claimed %d times", i, atomic_load(&sends[i]));
	assert_int_equal(count_outside(f, "outbox WHERE state = 'sent'"), 200);
	assert_true(mail_due(f->s) == INT64_MAX);
}

static void
mails_claimed_once_by_threads(void **state)
{
	struct fx *f = *state;

	mails_claimed_once(f, f->s);
}

/* ---- relaxed transactions ---- */

/* A relaxed transaction holds no writers' lock (on PostgreSQL): an audit record in it, or
 * a transaction that needs the lock begun inside it, is refused, and fails the whole.
 * A relaxed one inside a transaction joins it. */
static void
relaxed_refuses_what_needs_the_lock(void **state)
{
	struct fx *f = *state;

	assert_int_equal(store_begin_relaxed(f->s), EL_OK);
	assert_int_equal(store_nonce_use(f->s, "api", "r1", "alice", 1), EL_OK);
	assert_int_equal(audit_append(f->s, "alice", "test.event", NULL, NULL, NULL), EL_EINVAL);
	assert_int_not_equal(store_commit(f->s), EL_OK);
	assert_int_equal(store_begin_relaxed(f->s), EL_OK);
	assert_int_equal(store_nonce_use(f->s, "api", "r2", "alice", 1), EL_OK);
	assert_int_equal(store_begin(f->s), EL_EINVAL);
	assert_int_not_equal(store_commit(f->s), EL_OK);
	assert_int_equal(count_outside(f, "nonces"), 0);
	assert_int_equal(count_outside(f, "audit"), 0);

	assert_int_equal(store_begin(f->s), EL_OK);
	assert_int_equal(store_begin_relaxed(f->s), EL_OK);
	assert_int_equal(store_nonce_use(f->s, "api", "r3", "alice", 1), EL_OK);
	assert_int_equal(audit_append(f->s, "alice", "test.event", NULL, NULL, NULL), EL_OK);
	assert_int_equal(store_commit(f->s), EL_OK);
	assert_int_equal(store_commit(f->s), EL_OK);
	assert_int_equal(count_outside(f, "nonces"), 1);
	assert_int_equal(count_outside(f, "audit"), 1);
}

/* ---- revoked role sessions ---- */

static void
revoked(void **state)
{
	struct fx *f = *state;
	struct store_revoked r, *v = NULL;
	size_t n = 0;

	r.role_name = "ProdReadOnly";
	r.request_id = "req_1";
	r.userid = "AROA1:elevate-c";
	r.expires_at = 300;
	assert_int_equal(store_revoked_add(f->s, &r), EL_OK);
	r.userid = "AROA1:elevate-a";
	r.expires_at = 100;
	assert_int_equal(store_revoked_add(f->s, &r), EL_OK);
	r.userid = "AROA1:elevate-b";
	r.expires_at = 200;
	assert_int_equal(store_revoked_add(f->s, &r), EL_OK);
	r.role_name = "Admin";
	r.userid = "AROA2:elevate-z";
	r.expires_at = 100;
	assert_int_equal(store_revoked_add(f->s, &r), EL_OK);

	assert_int_equal(store_revoked_list(f->s, "ProdReadOnly", 150, &v, &n, NULL), EL_OK);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].userid, "AROA1:elevate-b");
	assert_string_equal(v[0].role_name, "ProdReadOnly");
	assert_string_equal(v[0].request_id, "req_1");
	assert_int_equal(v[0].expires_at, 200);
	assert_string_equal(v[1].userid, "AROA1:elevate-c");
	store_revoked_free(v, n);

	/* Adding the same session again updates it rather than failing. */
	r.role_name = "ProdReadOnly";
	r.userid = "AROA1:elevate-a";
	r.expires_at = 1000;
	assert_int_equal(store_revoked_add(f->s, &r), EL_OK);
	assert_int_equal(store_revoked_list(f->s, "ProdReadOnly", 150, &v, &n, NULL), EL_OK);
	assert_int_equal(n, 3);
	assert_string_equal(v[0].userid, "AROA1:elevate-a");
	assert_int_equal(v[0].expires_at, 1000);
	store_revoked_free(v, n);

	/* Prune drops entries expired on their own, of that role only. */
	assert_int_equal(store_revoked_prune(f->s, "ProdReadOnly", 200), EL_OK);
	assert_int_equal(store_revoked_list(f->s, "ProdReadOnly", 0, &v, &n, NULL), EL_OK);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].userid, "AROA1:elevate-a");
	assert_string_equal(v[1].userid, "AROA1:elevate-c");
	store_revoked_free(v, n);
	assert_int_equal(store_revoked_list(f->s, "Admin", 0, &v, &n, NULL), EL_OK);
	assert_int_equal(n, 1);
	store_revoked_free(v, n);
	assert_int_equal(store_revoked_list(f->s, "Admin", 100, &v, &n, NULL), EL_OK);
	assert_int_equal(n, 0);
	store_revoked_free(v, n);
}

/* ---- grants ---- */

/* A bundle: its requester, its members in the order given, a member's bundle; a request
 * in no bundle and an unknown bundle are EL_ENOENT; a member in two bundles is refused. */
static void
bundles(void **state)
{
	struct fx *f = *state;
	char requester[STORE_NAME_MAX], bid[32];
	char **ids = NULL;
	size_t n = 0;

	insert(f->s, "req_b1", "pending", "alice", "prod", 100);
	insert(f->s, "req_b2", "pending", "alice", "dev", 100);
	insert(f->s, "req_lone", "pending", "alice", "dev", 100);
	assert_int_equal(store_begin(f->s), EL_OK);
	assert_int_equal(store_bundle_insert(f->s, "bun_x", "alice", 100), EL_OK);
	assert_int_equal(store_bundle_member_insert(f->s, "bun_x", "req_b2", 0), EL_OK);
	assert_int_equal(store_bundle_member_insert(f->s, "bun_x", "req_b1", 1), EL_OK);
	assert_int_equal(store_commit(f->s), EL_OK);
	assert_int_equal(store_bundle_members(f->s, "bun_x", requester, &ids, &n), EL_OK);
	assert_string_equal(requester, "alice");
	assert_int_equal(n, 2);
	assert_string_equal(ids[0], "req_b2");
	assert_string_equal(ids[1], "req_b1");
	el_strv_free(ids, n);
	assert_int_equal(store_bundle_of(f->s, "req_b1", bid, sizeof(bid)), EL_OK);
	assert_string_equal(bid, "bun_x");
	assert_int_equal(store_bundle_of(f->s, "req_lone", bid, sizeof(bid)), EL_ENOENT);
	assert_int_equal(store_bundle_members(f->s, "bun_none", requester, &ids, &n),
	    EL_ENOENT);
	assert_int_equal(store_bundle_insert(f->s, "bun_y", "alice", 100), EL_OK);
	assert_int_not_equal(store_bundle_member_insert(f->s, "bun_y", "req_b1", 0), EL_OK);
}

static void
grants(void **state)
{
	struct fx *f = *state;
	struct store_grant g, out;
	unsigned char box[24 + 16 + 200];
	size_t i;

	insert(f->s, "req_g", "active", "alice", "prod", 100);
	for (i = 0; i < sizeof(box); i++)
		box[i] = (unsigned char)(i * 7);   /* includes 0x00 bytes */
	memset(&g, 0, sizeof(g));
	el_strlcpy(g.request_id, "req_g", sizeof(g.request_id));
	el_strlcpy(g.role_session_name, "elevate-alice-req_g", sizeof(g.role_session_name));
	g.assumed_role_arn = "arn:aws:sts::111122223333:assumed-role/R/elevate-alice-req_g";
	g.assumed_role_id = "AROAEXAMPLE:elevate-alice-req_g";
	g.access_key_id = "ASIAEXAMPLE";
	g.creds_box = box;
	g.creds_box_len = sizeof(box);
	g.creds_expire_at = 2000;
	g.minted_at = 1100;
	assert_int_equal(store_grant_put(f->s, &g), EL_OK);
	assert_int_equal(store_grant_get(f->s, "req_g", &out), EL_OK);
	assert_string_equal(out.request_id, "req_g");
	assert_string_equal(out.role_session_name, "elevate-alice-req_g");
	assert_string_equal(out.assumed_role_arn, g.assumed_role_arn);
	assert_string_equal(out.assumed_role_id, g.assumed_role_id);
	assert_string_equal(out.access_key_id, "ASIAEXAMPLE");
	assert_int_equal(out.creds_box_len, sizeof(box));
	assert_memory_equal(out.creds_box, box, sizeof(box));
	assert_int_equal(out.creds_expire_at, 2000);
	assert_int_equal(out.minted_at, 1100);
	store_grant_free(&out);
	assert_null(out.creds_box);

	/* Minting again under the same session name replaces the credentials. */
	box[0] ^= 0xff;
	g.creds_box_len = 40;
	g.access_key_id = "ASIASECOND";
	g.creds_expire_at = 5600;
	assert_int_equal(store_grant_put(f->s, &g), EL_OK);
	assert_int_equal(store_grant_get(f->s, "req_g", &out), EL_OK);
	assert_int_equal(out.creds_box_len, 40);
	assert_memory_equal(out.creds_box, box, 40);
	assert_string_equal(out.access_key_id, "ASIASECOND");
	assert_int_equal(out.creds_expire_at, 5600);
	store_grant_free(&out);

	/* No credentials yet: no blob. */
	g.creds_box = NULL;
	g.creds_box_len = 0;
	assert_int_equal(store_grant_put(f->s, &g), EL_OK);
	assert_int_equal(store_grant_get(f->s, "req_g", &out), EL_OK);
	assert_null(out.creds_box);
	assert_int_equal(out.creds_box_len, 0);
	store_grant_free(&out);

	assert_int_equal(store_grant_get(f->s, "req_none", &out), EL_ENOENT);
	/* A grant needs its request (foreign keys are on). */
	el_strlcpy(g.request_id, "req_none", sizeof(g.request_id));
	assert_int_not_equal(store_grant_put(f->s, &g), EL_OK);
	assert_int_equal(store_grant_get(f->s, "req_none", &out), EL_ENOENT);
}

/* ---- SSM sessions ---- */

static void
sessions(void **state)
{
	struct fx *f = *state;
	struct store_session ss, *v = NULL;
	size_t n = 0;

	insert(f->s, "req_s", "active", "alice", "prod", 100);
	memset(&ss, 0, sizeof(ss));
	ss.session_id = "alice-02";
	ss.target = "i-0123456789abcdef0";
	ss.document = "SSM-SessionManagerRunShell";
	ss.started_at = 200;
	assert_int_equal(store_session_insert(f->s, "req_s", &ss), EL_OK);
	ss.session_id = "alice-01";
	ss.document = NULL;
	ss.started_at = 150;
	assert_int_equal(store_session_insert(f->s, "req_s", &ss), EL_OK);
	assert_int_equal(store_session_insert(f->s, "req_s", &ss), EL_EEXIST);
	assert_int_not_equal(store_session_insert(f->s, "req_missing", &ss), EL_OK);

	assert_int_equal(store_session_list(f->s, "req_s", &v, &n), EL_OK);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].session_id, "alice-01");
	assert_null(v[0].document);
	assert_int_equal(v[0].terminated_at, 0);
	assert_string_equal(v[1].session_id, "alice-02");
	assert_string_equal(v[1].target, "i-0123456789abcdef0");
	assert_string_equal(v[1].document, "SSM-SessionManagerRunShell");
	assert_int_equal(v[1].started_at, 200);
	store_sessions_free(v, n);

	assert_int_equal(store_session_terminated(f->s, "alice-02", 900), EL_OK);
	/* The first termination time is the one that counts. */
	assert_int_equal(store_session_terminated(f->s, "alice-02", 950), EL_OK);
	assert_int_equal(store_session_list(f->s, "req_s", &v, &n), EL_OK);
	assert_int_equal(v[0].terminated_at, 0);
	assert_int_equal(v[1].terminated_at, 900);
	store_sessions_free(v, n);

	assert_int_equal(store_session_list(f->s, "req_other", &v, &n), EL_OK);
	assert_int_equal(n, 0);
	store_sessions_free(v, n);
}

/* ---- transactions ---- */

static void
rollback_discards(void **state)
{
	struct fx *f = *state;
	json_t *recs = NULL;
	struct store_audit_filter af;

	assert_int_equal(store_begin(f->s), EL_OK);
	insert(f->s, "req_rb", "pending", "alice", "prod", 100);
	assert_int_equal(audit_append(f->s, "alice", "request.created", "req_rb", NULL, NULL),
	    EL_OK);
	assert_int_equal(store_nonce_use(f->s, "api", "n-rb", "alice", 1), EL_OK);
	assert_true(exists(f->s, "req_rb"));   /* visible inside the transaction */
	store_rollback(f->s);
	assert_false(exists(f->s, "req_rb"));
	assert_int_equal(store_nonce_use(f->s, "api", "n-rb", "alice", 2), EL_OK);
	memset(&af, 0, sizeof(af));
	assert_int_equal(store_audit_list(f->s, &af, &recs), EL_OK);
	assert_int_equal(json_array_size(recs), 0);
	json_decref(recs);
	assert_int_equal(count_outside(f, "requests"), 0);

	/* And commit keeps. */
	assert_int_equal(store_begin(f->s), EL_OK);
	insert(f->s, "req_ok", "pending", "alice", "prod", 100);
	assert_int_equal(store_commit(f->s), EL_OK);
	assert_true(exists(f->s, "req_ok"));
	assert_int_equal(count_outside(f, "requests"), 1);
}

static void
nested_commit(void **state)
{
	struct fx *f = *state;

	assert_int_equal(store_begin(f->s), EL_OK);
	insert(f->s, "req_outer", "pending", "alice", "prod", 100);
	assert_int_equal(store_begin(f->s), EL_OK);
	insert(f->s, "req_inner", "pending", "alice", "prod", 100);
	assert_int_equal(store_commit(f->s), EL_OK);
	/* The inner commit is part of the outer transaction: nothing is durable yet. */
	assert_int_equal(count_outside(f, "requests"), 0);
	assert_int_equal(store_commit(f->s), EL_OK);
	assert_int_equal(count_outside(f, "requests"), 2);

	/* An outer rollback takes the committed inner part with it. */
	assert_int_equal(store_begin(f->s), EL_OK);
	assert_int_equal(store_begin(f->s), EL_OK);
	insert(f->s, "req_gone", "pending", "alice", "prod", 100);
	assert_int_equal(store_commit(f->s), EL_OK);
	store_rollback(f->s);
	assert_false(exists(f->s, "req_gone"));
	assert_int_equal(count_outside(f, "requests"), 2);

	/* The store is usable afterwards. */
	assert_int_equal(store_begin(f->s), EL_OK);
	insert(f->s, "req_after", "pending", "alice", "prod", 100);
	assert_int_equal(store_commit(f->s), EL_OK);
	assert_int_equal(count_outside(f, "requests"), 3);
}

/*
 * An inner rollback fails the whole outer transaction (store.c: "A nested rollback poisons
 * the outer transaction"). What the outer code writes after that must not become durable
 * on its own, and the outer commit must report the failure.
 */
static void
nested_rollback_poisons_outer(void **state)
{
	struct fx *f = *state;
	enum el_err r;

	assert_int_equal(store_begin(f->s), EL_OK);
	insert(f->s, "req_a", "pending", "alice", "prod", 100);
	assert_int_equal(store_begin(f->s), EL_OK);
	insert(f->s, "req_b", "pending", "alice", "prod", 100);
	store_rollback(f->s);
	/* The outer caller has not noticed and goes on writing. */
	(void)set_state(f->s, "req_a", "pending", "active", 101);
	(void)store_nonce_use(f->s, "api", "n-after", "alice", 1);
	r = store_commit(f->s);
	assert_int_not_equal(r, EL_OK);
	assert_false(exists(f->s, "req_a"));
	assert_false(exists(f->s, "req_b"));
	assert_int_equal(count_outside(f, "nonces"), 0);
	assert_int_equal(count_outside(f, "requests"), 0);
}

/*
 * A write the database refuses inside a transaction (EL_EEXIST: a duplicate, a foreign
 * key to nowhere, a value a CHECK refuses) fails alone: the transaction goes on, and what
 * it wrote before and after commits. (PostgreSQL would abort the whole transaction at the
 * first error; the store runs such writes under a savepoint.)
 */
static void
refused_write_keeps_the_transaction(void **state)
{
	struct fx *f = *state;
	struct store_approval a;

	memset(&a, 0, sizeof(a));
	el_strlcpy(a.approver, "carol", sizeof(a.approver));
	el_strlcpy(a.decision, "approve", sizeof(a.decision));
	a.at = 5;
	assert_int_equal(store_begin(f->s), EL_OK);
	insert(f->s, "req_a", "pending", "alice", "prod", 1);
	assert_int_equal(store_approval_insert(f->s, "req_a", &a), EL_OK);
	assert_int_equal(store_approval_insert(f->s, "req_a", &a), EL_EEXIST);
	assert_int_equal(store_approval_insert(f->s, "req_none", &a), EL_EEXIST);
	el_strlcpy(a.decision, "maybe", sizeof(a.decision));
	el_strlcpy(a.approver, "dave", sizeof(a.approver));
	assert_int_equal(store_approval_insert(f->s, "req_a", &a), EL_EEXIST);
	assert_int_equal(store_nonce_use(f->s, "api", "n1", "alice", 1), EL_OK);
	assert_int_equal(store_nonce_use(f->s, "api", "n1", "alice", 1), EL_EEXIST);
	insert(f->s, "req_b", "pending", "alice", "prod", 2);
	assert_int_equal(store_commit(f->s), EL_OK);
	assert_int_equal(count_outside(f, "requests"), 2);
	assert_int_equal(count_outside(f, "approvals"), 1);
	assert_int_equal(count_outside(f, "nonces"), 1);
}

struct worker {
	struct store *s;
	int id;
	int failures;
};

static void *
work(void *arg)
{
	struct worker *wk = arg;
	char nonce[32];
	int i;

	for (i = 0; i < 50; i++) {
		snprintf(nonce, sizeof(nonce), "t%d-%d", wk->id, i);
		if (store_begin(wk->s) != EL_OK) {
			wk->failures++;
			continue;
		}
		if (store_nonce_use(wk->s, "api", nonce, "alice", i) != EL_OK ||
		    audit_append(wk->s, "alice", "test.event", NULL, NULL, NULL) != EL_OK) {
			wk->failures++;
			store_rollback(wk->s);
			continue;
		}
		if (store_commit(wk->s) != EL_OK)
			wk->failures++;
	}
	return NULL;
}

/* Four threads append to the audit chain in transactions, two on f->s and two on `other`
 * (which may be f->s): no seq lost or given twice. */
static void
serialised(struct fx *f, struct store *other)
{
	struct worker wk[4];
	pthread_t th[4];
	struct store_audit_filter af;
	json_t *recs;
	int i;

	for (i = 0; i < 4; i++) {
		wk[i].s = i % 2 ? other : f->s;
		wk[i].id = i;
		wk[i].failures = 0;
		assert_int_equal(pthread_create(&th[i], NULL, work, &wk[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(wk[i].failures, 0);
	}
	assert_int_equal(count_outside(f, "nonces"), 200);
	memset(&af, 0, sizeof(af));
	assert_int_equal(store_audit_list(f->s, &af, &recs), EL_OK);
	assert_int_equal(json_array_size(recs), 200);
	for (i = 0; i < 200; i++)
		assert_int_equal(json_integer_value(json_object_get(json_array_get(recs,
		    (size_t)i), "seq")), i + 1);
	json_decref(recs);
}

/* Transactions from several threads are serialised: no lost or duplicated audit seq. */
static void
threads_serialise(void **state)
{
	struct fx *f = *state;

	serialised(f, f->s);
}

/* ---- nonce group commit and reader connections ---- */

struct claimer {
	struct store *s;
	int id;
	int failures, shared_won;
};

static void *
claim_work(void *arg)
{
	struct claimer *c = arg;
	char nonce[32];
	enum el_err r;
	int i;

	for (i = 0; i < 200; i++) {
		snprintf(nonce, sizeof(nonce), "c%d-%d", c->id, i);
		if (store_nonce_claim(c->s, "api", nonce, "alice", 1000 + i, 0) != EL_OK)
			c->failures++;
		if (i % 4 == 0) {
			/* every thread claims the same 50: one of them wins each */
			snprintf(nonce, sizeof(nonce), "shared-%d", i / 4);
			r = store_nonce_claim(c->s, "api", nonce, "alice", 1000 + i, 0);
			if (r == EL_OK)
				c->shared_won++;
			else if (r != EL_EEXIST)
				c->failures++;
		}
	}
	return NULL;
}

/* Claims from many threads land in shared batches: each nonce is won exactly once, none is
 * lost, and they are in the file for the next process. */
static void
nonce_claims_group_commit(void **state)
{
	struct fx *f = *state;
	struct claimer c[8];
	pthread_t th[8];
	struct el_why w = {{0}};
	char nonce[32];
	int i, won = 0;

	for (i = 0; i < 8; i++) {
		memset(&c[i], 0, sizeof(c[i]));
		c[i].s = f->s;
		c[i].id = i;
		assert_int_equal(pthread_create(&th[i], NULL, claim_work, &c[i]), 0);
	}
	for (i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(c[i].failures, 0);
		won += c[i].shared_won;
	}
	assert_int_equal(won, 50);
	assert_int_equal(count_outside(f, "nonces"), 8 * 200 + 50);
	assert_int_equal(store_nonce_claim(f->s, "api", "c3-17", "bob", 5000, 0), EL_EEXIST);
	store_close(f->s);
	assert_int_equal(store_open(f->where, &f->s, &w), EL_OK);
	assert_int_equal(store_nonce_claim(f->s, "api", "shared-7", "bob", 5000, 0), EL_EEXIST);
	assert_int_equal(store_nonce_use(f->s, "api", "c7-199", "bob", 5000), EL_EEXIST);
	/* each claim deletes up to 8 nonces older than prune_before, the oldest first */
	assert_int_equal(store_nonce_claim(f->s, "api", "late", "bob", 6000, 1100), EL_OK);
	assert_int_equal(count_outside(f, "nonces"), 8 * 200 + 50 - 8 + 1);
	/* 9 were seen at 1000 (c0-0 .. c7-0 and shared-0, in the order the threads happened
	 * to claim them): 8 of them are gone */
	assert_int_equal(count_outside(f, "nonces WHERE seen_at = 1000"), 1);
	assert_int_equal(store_nonce_use(f->s, "api", "again", "bob", 6000), EL_OK);
	for (i = 0; i < 200; i++) {
		snprintf(nonce, sizeof(nonce), "later-%d", i);
		assert_int_equal(store_nonce_claim(f->s, "api", nonce, "bob", 6000, 1100), EL_OK);
	}
	/* the 825 seen before 1100 are gone, the rest stand (and "again", seen at 6000) */
	assert_int_equal(count_outside(f, "nonces"), 8 * 100 + 25 + 1 + 201);
	assert_int_equal(store_nonce_claim(f->s, "api", "c1-150", "bob", 6000, 0), EL_EEXIST);
}

struct holder {
	struct store *s;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int step;          /* 1: the transaction is open; 2: commit it; 3: done */
	int saw_own;
};

static void
hold_step(struct holder *h, int step)
{
	pthread_mutex_lock(&h->mu);
	h->step = step;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

static void
hold_wait(struct holder *h, int step)
{
	pthread_mutex_lock(&h->mu);
	while (h->step < step)
		pthread_cond_wait(&h->cv, &h->mu);
	pthread_mutex_unlock(&h->mu);
}

static void *
hold_tx(void *arg)
{
	struct holder *h = arg;
	struct store_request r;

	if (store_begin(h->s) != EL_OK)
		return NULL;
	mkreq(&r, "req_held", "pending", "alice", "prod", 10);
	(void)store_request_insert(h->s, &r);
	memset(&r, 0, sizeof(r));
	if (store_request_get(h->s, "req_held", &r) == EL_OK) {   /* its own write */
		h->saw_own = 1;
		store_request_free(&r);
	}
	hold_step(h, 1);
	hold_wait(h, 2);
	(void)store_commit(h->s);
	hold_step(h, 3);
	return NULL;
}

/* A read outside any transaction does not wait for a writer's open transaction and sees
 * the last commit; the writer's own reads see its writes. (Had the read waited for the
 * writer, this test would never end: the writer commits only after the read returns.) */
static void
readers_do_not_wait_for_the_writer(void **state)
{
	struct fx *f = *state;
	struct holder h;
	struct store_request r;
	pthread_t th;

	memset(&h, 0, sizeof(h));
	h.s = f->s;
	pthread_mutex_init(&h.mu, NULL);
	pthread_cond_init(&h.cv, NULL);
	insert(f->s, "req_before", "pending", "alice", "prod", 5);
	assert_int_equal(pthread_create(&th, NULL, hold_tx, &h), 0);
	hold_wait(&h, 1);
	assert_int_equal(h.saw_own, 1);
	assert_int_equal(store_request_get(f->s, "req_held", &r), EL_ENOENT);
	assert_int_equal(store_request_get(f->s, "req_before", &r), EL_OK);
	store_request_free(&r);
	hold_step(&h, 2);
	hold_wait(&h, 3);
	pthread_join(th, NULL);
	assert_int_equal(store_request_get(f->s, "req_held", &r), EL_OK);
	store_request_free(&r);
	pthread_mutex_destroy(&h.mu);
	pthread_cond_destroy(&h.cv);
}

/* A thread that writes while another holds a read snapshot. */
static void *
deny_outside(void *arg)
{
	struct store *s = arg;

	assert_int_equal(set_state(s, "req_snap", "pending", "denied", 7), EL_OK);
	return NULL;
}

static const char *
state_of(struct store *s, const char *id, char *buf, size_t len)
{
	struct store_request r;

	assert_int_equal(store_request_get(s, id, &r), EL_OK);
	snprintf(buf, len, "%s", lifecycle_state_name(r.state));
	store_request_free(&r);
	return buf;
}

/*
 * store_read_begin/end: on SQLite the reads in between see one snapshot (another
 * thread's commit shows after the end, not before); on both, a write of the thread's own
 * ends the snapshot, so its next read sees the write, and the snapshot nests.
 */
static void
read_snapshot(void **state)
{
	struct fx *f = *state;
	pthread_t th;
	char st[32];

	insert(f->s, "req_snap", "pending", "alice", "prod", 5);
	store_read_begin(f->s);
	store_read_begin(f->s);
	assert_string_equal(state_of(f->s, "req_snap", st, sizeof(st)), "pending");
	assert_int_equal(pthread_create(&th, NULL, deny_outside, f->s), 0);
	pthread_join(th, NULL);
	/* PostgreSQL reads each statement afresh (the backend has no read snapshots) */
	assert_string_equal(state_of(f->s, "req_snap", st, sizeof(st)),
	    f->pg ? "denied" : "pending");
	store_read_end(f->s);
	assert_string_equal(state_of(f->s, "req_snap", st, sizeof(st)),
	    f->pg ? "denied" : "pending");
	store_read_end(f->s);
	assert_string_equal(state_of(f->s, "req_snap", st, sizeof(st)), "denied");

	store_read_begin(f->s);
	assert_string_equal(state_of(f->s, "req_snap", st, sizeof(st)), "denied");
	assert_int_equal(set_state(f->s, "req_snap", "denied", "cancelled", 8), EL_OK);
	assert_string_equal(state_of(f->s, "req_snap", st, sizeof(st)), "cancelled");
	store_read_end(f->s);
	assert_string_equal(state_of(f->s, "req_snap", st, sizeof(st)), "cancelled");
}

/* With the checkpointer running, the WAL reaches the database file though no commit
 * checkpoints it (a commit would only at 20,000 pages): the file grows by itself. */
static void
checkpointer_copies_the_wal(void **state)
{
	struct fx *f = *state;
	struct store_request r;
	struct stat st;
	char id[32], *reason;
	int i, waited;

	assert_int_equal(store_checkpointer_start(f->s), EL_OK);
	assert_int_equal(stat(f->path, &st), 0);
	assert_true(st.st_size < 1000 * 4096);
	reason = malloc(3000);
	memset(reason, 'x', 2999);
	reason[2999] = '\0';
	assert_int_equal(store_begin(f->s), EL_OK);
	for (i = 0; i < 1500; i++) {
		snprintf(id, sizeof(id), "req_big%04d", i);
		mkreq(&r, id, "pending", "alice", "prod", i + 1);
		r.reason = reason;
		assert_int_equal(store_request_insert(f->s, &r), EL_OK);
	}
	assert_int_equal(store_commit(f->s), EL_OK);
	free(reason);
	for (waited = 0; waited < 1000; waited++) {   /* up to 10 s */
		assert_int_equal(stat(f->path, &st), 0);
		if (st.st_size > 1000 * 4096)
			break;
		usleep(10 * 1000);
	}
	assert_true(st.st_size > 1000 * 4096);
}

/* ---- schema 5: the lifecycle's states only ---- */

static void
upgrade_from_v4_checks_states(void **state)
{
	struct fx *f = *state;
	struct el_why w = {{0}};
	struct store_request r;
	struct store_approval a;

	assert_int_equal(store_open_version(f->where, 4, &f->s, &w), EL_OK);
	insert(f->s, "req_p", "pending", "alice", "prod", 10);
	insert(f->s, "req_a", "active", "bob", "prod", 20);
	memset(&a, 0, sizeof(a));
	el_strlcpy(a.approver, "carol", sizeof(a.approver));
	el_strlcpy(a.decision, "approve", sizeof(a.decision));
	a.at = 21;
	assert_int_equal(store_approval_insert(f->s, "req_a", &a), EL_OK);
	store_close(f->s);
	assert_int_equal(store_open(f->where, &f->s, &w), EL_OK);
	assert_int_equal(store_schema_version(f->s), STORE_SCHEMA_VERSION);
	/* The rebuilt table kept every row and its neighbours still point at it. */
	assert_int_equal(store_request_get(f->s, "req_a", &r), EL_OK);
	assert_int_equal(r.state, RS_ACTIVE);
	assert_int_equal(r.created_at, 20);
	store_request_free(&r);
	assert_true(exists(f->s, "req_p"));
	assert_int_equal(store_approval_insert(f->s, "req_a", &a), EL_EEXIST);
	assert_int_not_equal(store_approval_insert(f->s, "req_nope", &a), EL_OK);
	/* Every state of the table is accepted, any other name refused by the database. */
	assert_int_equal(outside_exec(f, "UPDATE requests SET state = 'activating'"
	    " WHERE id = 'req_p'"), 0);
	assert_int_equal(outside_exec(f, "UPDATE requests SET state = 'approved'"
	    " WHERE id = 'req_p'"), 1);
	assert_int_equal(store_request_get(f->s, "req_p", &r), EL_OK);
	assert_int_equal(r.state, RS_ACTIVATING);
	store_request_free(&r);
}

/* ---- readers fail closed ---- */

/* Overwrites the file's pages from `from` (1-based) on with garbage, outside SQLite. */
static void
corrupt_pages(const char *path, long from, long page)
{
	FILE *fp = fopen(path, "r+b");
	char junk[4096];
	long size;

	assert_non_null(fp);
	memset(junk, 0xA5, sizeof(junk));
	fseek(fp, 0, SEEK_END);
	size = ftell(fp);
	for (long off = (from - 1) * page; off + page <= size; off += page) {
		fseek(fp, off, SEEK_SET);
		assert_int_equal(fwrite(junk, 1, (size_t)page, fp), (size_t)page);
	}
	fclose(fp);
}

static void
readers_fail_closed(void **state)
{
	struct fx *f = *state;
	struct el_why w = {{0}};
	struct store_filter flt;
	struct store_request *v = NULL;
	char **ids = NULL, id[32];
	size_t n = 0, i;
	sqlite3 *db;
	long pages, page;
	enum el_err e1, e2;

	assert_int_equal(store_begin(f->s), EL_OK);
	for (i = 0; i < 2000; i++) {
		snprintf(id, sizeof(id), "req_%05zu", i);
		insert(f->s, id, "active", "alice", "prod", (int64_t)i + 1);
	}
	assert_int_equal(store_commit(f->s), EL_OK);
	store_close(f->s);
	f->s = NULL;
	/* Fold the WAL into the file, then learn its size in pages. */
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL),
	    SQLITE_OK);
	{
		sqlite3_stmt *st;
		assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA page_count", -1, &st, NULL),
		    SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		pages = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
		assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA page_size", -1, &st, NULL),
		    SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		page = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	assert_true(pages > 40);
	/* The table's later leaves are gone: a scan reads some rows, then hits them. */
	corrupt_pages(f->path, pages / 2, page);
	assert_int_equal(store_open(f->path, &f->s, &w), EL_OK);
	memset(&flt, 0, sizeof(flt));
	flt.limit = 5000;
	e1 = store_request_list(f->s, &flt, &v, &n);
	/* Never a shorter list: an error, or (had the damage missed the table) all of it. */
	assert_true(e1 == EL_EDB || (e1 == EL_OK && n == 2000));
	if (e1 == EL_OK) {
		for (i = 0; i < n; i++)
			store_request_free(&v[i]);
		free(v);
	}
	e2 = store_request_due(f->s, RS_ACTIVE, "window_end", INT64_MAX - 1, 5000, &ids, &n);
	assert_true(e2 == EL_EDB || (e2 == EL_OK && n == 2000));
	if (e2 == EL_OK) {
		for (i = 0; i < n; i++)
			free(ids[i]);
		free(ids);
	}
	/* The damage did reach what these readers read. */
	assert_true(e1 == EL_EDB || e2 == EL_EDB);
	assert_string_not_equal(store_errmsg(), "");
}

/* ---- revocation entries and their sync to IAM ---- */

static void
revoked_sync(void **state)
{
	struct fx *f = *state;
	struct store_revoked r, *v = NULL;
	char **roles = NULL;
	size_t n = 0;
	int64_t mark = 0;

	r.role_name = "R";
	r.request_id = "req_1";
	r.userid = "AROA1:s1";
	r.expires_at = 500;
	assert_int_equal(store_revoked_add(f->s, &r), EL_OK);
	assert_int_equal(store_revoked_unsynced_roles(f->s, 100, &roles, &n), EL_OK);
	assert_int_equal(n, 1);
	assert_string_equal(roles[0], "R");
	free(roles[0]);
	free(roles);
	assert_int_equal(store_revoked_list(f->s, "R", 100, &v, &n, &mark), EL_OK);
	assert_int_equal(n, 1);
	store_revoked_free(v, n);
	/* Added after the listing: not covered by its mark. */
	r.userid = "AROA1:s2";
	assert_int_equal(store_revoked_add(f->s, &r), EL_OK);
	assert_int_equal(store_revoked_synced(f->s, "R", mark, 150), EL_OK);
	assert_int_equal(store_revoked_unsynced_roles(f->s, 100, &roles, &n), EL_OK);
	assert_int_equal(n, 1);
	free(roles[0]);
	free(roles);
	assert_int_equal(store_revoked_list(f->s, "R", 100, &v, &n, &mark), EL_OK);
	store_revoked_free(v, n);
	assert_int_equal(store_revoked_synced(f->s, "R", mark, 160), EL_OK);
	assert_int_equal(store_revoked_unsynced_roles(f->s, 100, &roles, &n), EL_OK);
	assert_int_equal(n, 0);
	free(roles);
	/* An entry is never shortened by a later, shorter one. */
	r.userid = "AROA1:s1";
	r.expires_at = 200;
	assert_int_equal(store_revoked_add(f->s, &r), EL_OK);
	assert_int_equal(store_revoked_list(f->s, "R", 300, &v, &n, NULL), EL_OK);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].expires_at, 500);
	store_revoked_free(v, n);
	/* Expired entries need no sync. */
	r.userid = "AROA1:s3";
	r.expires_at = 120;
	assert_int_equal(store_revoked_add(f->s, &r), EL_OK);
	assert_int_equal(store_revoked_unsynced_roles(f->s, 130, &roles, &n), EL_OK);
	assert_int_equal(n, 0);
	free(roles);
}

/* ---- revocation cohorts ---- */

static void
cohorts(void **state)
{
	struct fx *f = *state;
	struct store_request r;
	struct store_revoked rv, *v = NULL;
	struct store_live *lv = NULL;
	char c[16], open[16];
	size_t n = 0;

	insert(f->s, "req_a", "activating", "alice", "prod-readonly", 100);
	insert(f->s, "req_b", "activating", "bob", "prod-readonly", 100);
	insert(f->s, "req_c", "activating", "bob", "prod-readonly", 100);
	insert(f->s, "req_p", "pending", "bob", "prod-readonly", 100);
	mkreq(&r, "req_o", "active", "bob", "dev", 100);
	r.role_arn = "arn:aws:iam::111122223333:role/team/Other";
	assert_int_equal(store_request_insert(f->s, &r), EL_OK);
	assert_int_equal(store_cohort_open(f->s, "ProdReadOnly", open, sizeof(open)), EL_ENOENT);

	/* The first grant opens the role's cohort; the next joins it; a request keeps its
	 * cohort whatever is offered later. */
	assert_int_equal(store_request_cohort(f->s, "req_a", "ProdReadOnly", "c1", c, sizeof(c)),
	    EL_OK);
	assert_string_equal(c, "c1");
	assert_int_equal(store_request_cohort(f->s, "req_b", "ProdReadOnly", "c9", c, sizeof(c)),
	    EL_OK);
	assert_string_equal(c, "c1");
	assert_int_equal(store_cohort_open(f->s, "ProdReadOnly", open, sizeof(open)), EL_OK);
	assert_string_equal(open, "c1");
	assert_int_equal(store_cohort_close(f->s, "ProdReadOnly", "c2"), EL_OK);
	assert_int_equal(store_request_cohort(f->s, "req_a", "ProdReadOnly", "c9", c, sizeof(c)),
	    EL_OK);
	assert_string_equal(c, "c1");
	assert_int_equal(store_request_cohort(f->s, "req_c", "ProdReadOnly", "c9", c, sizeof(c)),
	    EL_OK);
	assert_string_equal(c, "c2");
	assert_int_equal(store_request_cohort(f->s, "req_o", "Other", "o1", c, sizeof(c)), EL_OK);
	assert_int_equal(store_request_get(f->s, "req_c", &r), EL_OK);
	assert_string_equal(r.cohort, "c2");
	store_request_free(&r);
	assert_int_equal(store_request_get(f->s, "req_p", &r), EL_OK);
	assert_string_equal(r.cohort, "");
	store_request_free(&r);

	/* Live: active or activating grants of the role (by the ARN's last part) that carry a
	 * cohort; not pending ones, not other roles, not once they end. */
	assert_int_equal(set_state(f->s, "req_b", "activating", "active", 0), EL_OK);
	assert_int_equal(store_live_grants(f->s, "ProdReadOnly", &lv, &n), EL_OK);
	assert_int_equal(n, 3);
	assert_string_equal(lv[0].request_id, "req_a");
	assert_string_equal(lv[0].cohort, "c1");
	assert_string_equal(lv[1].request_id, "req_b");
	assert_string_equal(lv[2].cohort, "c2");
	free(lv);
	assert_int_equal(store_live_grants(f->s, "Other", &lv, &n), EL_OK);
	assert_int_equal(n, 1);
	assert_string_equal(lv[0].request_id, "req_o");
	free(lv);
	assert_int_equal(store_live_grants(f->s, "Readonly", &lv, &n), EL_OK);
	assert_int_equal(n, 0);
	free(lv);
	assert_int_equal(set_state(f->s, "req_b", "active", "ending", 0), EL_OK);
	assert_int_equal(store_live_grants(f->s, "ProdReadOnly", &lv, &n), EL_OK);
	assert_int_equal(n, 2);
	free(lv);

	/* A revoked entry lists its request's cohort ("" for a request without). */
	memset(&rv, 0, sizeof(rv));
	rv.role_name = "ProdReadOnly";
	rv.request_id = "req_b";
	rv.userid = "AROA1:elevate.bob.req_b";
	rv.expires_at = 500;
	assert_int_equal(store_revoked_add(f->s, &rv), EL_OK);
	rv.request_id = "req_p";
	rv.userid = "AROA1:elevate.bob.req_p";
	assert_int_equal(store_revoked_add(f->s, &rv), EL_OK);
	assert_int_equal(store_revoked_list(f->s, "ProdReadOnly", 100, &v, &n, NULL), EL_OK);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].request_id, "req_b");
	assert_string_equal(v[0].cohort, "c1");
	assert_string_equal(v[1].cohort, "");
	store_revoked_free(v, n);
}

/* ---- PostgreSQL: several nodes on one database ---- */

struct opener {
	const char *url;
	struct store *s;
	enum el_err r;
	char msg[256];
	atomic_bool done;
};

static void *
open_work(void *arg)
{
	struct opener *o = arg;
	struct el_why w = {{0}};

	o->r = store_open(o->url, &o->s, &w);
	el_strlcpy(o->msg, w.msg, sizeof(o->msg));
	atomic_store(&o->done, true);
	return NULL;
}

/* The advisory lock that store_pg.c migrates under: (class 'elev', 2). */
#define MIGRATE_LOCK "1701602678, 2"

/*
 * Nodes starting together on an empty database migrate once: each waits for the
 * migration lock (held here, as by a node that is migrating, until all four wait for it),
 * then one migrates and the others find the schema done. Had two migrated at once, the
 * second would have failed on the tables the first made.
 */
static void
pg_nodes_migrate_once(void **state)
{
	struct fx *f = *state;
	struct opener o[4];
	pthread_t th[4];
	PGconn *holder = pg_outside();
	PGresult *res;
	int i, tries;

	res = PQexec(holder, "SELECT pg_advisory_lock(" MIGRATE_LOCK ")");
	assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
	PQclear(res);
	for (i = 0; i < 4; i++) {
		memset(&o[i], 0, sizeof(o[i]));
		o[i].url = f->where;
		atomic_init(&o[i].done, false);
		assert_int_equal(pthread_create(&th[i], NULL, open_work, &o[i]), 0);
	}
	for (tries = 0; ; tries++) {   /* up to 20 s */
		if (outside_int(f, "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory'"
		    " AND classid = 1701602678 AND objid = 2 AND NOT granted") == 4)
			break;
		if (tries == 2000)
			fail_msg("four nodes never all waited for the migration lock");
		usleep(10 * 1000);
	}
	for (i = 0; i < 4; i++)
		assert_false(atomic_load(&o[i].done));
	assert_int_equal(count_outside(f, "pg_tables WHERE schemaname = 'public'"), 0);
	PQfinish(holder);   /* releases the lock */
	for (i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < 4; i++) {
		if (o[i].r != EL_OK)
			fail_msg("node %d: %s: %s", i, el_strerror(o[i].r), o[i].msg);
		assert_int_equal(store_schema_version(o[i].s), STORE_SCHEMA_VERSION);
	}
	insert(o[0].s, "req_n0", "pending", "alice", "prod", 1);
	assert_true(exists(o[3].s, "req_n0"));
	for (i = 0; i < 4; i++)
		store_close(o[i].s);
	assert_int_equal(outside_int(f, "SELECT version FROM schema_version"),
	    STORE_SCHEMA_VERSION);
}

/* Writers on two stores (two nodes) are serialised by the database, not only by each
 * store's mutex: the audit chain, read at its tail and appended to in one transaction
 * by each, has every seq once. */
static void
pg_writers_serialise_across_nodes(void **state)
{
	struct fx *f = *state;
	struct el_why w = {{0}};
	struct store *other = NULL;

	assert_int_equal(store_open(f->where, &other, &w), EL_OK);
	serialised(f, other);
	store_close(other);
}

/* Two nodes claiming the same due work at once, from threads: every row once. */
struct lease_claimer {
	struct store *s;
	const char *node;
	char got[400][8];
	size_t n;
};

static void *
lease_claimer_main(void *arg)
{
	struct lease_claimer *c = arg;
	char **ids = NULL;
	size_t n = 0, i;

	do {
		assert_int_equal(store_lease_claim(c->s, STORE_DUE_WINDOW_END, c->node, 1000000,
		    2000000, 7, &ids, &n), EL_OK);
		for (i = 0; i < n; i++) {
			if (c->n < 400)
				el_strlcpy(c->got[c->n++], ids[i], sizeof(c->got[0]));
			free(ids[i]);
		}
		free(ids);
	} while (n > 0);
	return NULL;
}

static void
pg_claims_are_disjoint(void **state)
{
	struct fx *f = *state;
	struct el_why w = {{0}};
	static struct lease_claimer ca, cb;
	pthread_t ta, tb;
	char id[8], seen[200];
	size_t i;

	assert_int_equal(store_begin(f->s), EL_OK);
	for (i = 0; i < 200; i++) {
		struct store_request r;

		snprintf(id, sizeof(id), "w%03zu", i);
		mkreq(&r, id, "active", "alice", "p", 1);
		r.window_end = 100 + (int64_t)i;
		assert_int_equal(store_request_insert(f->s, &r), EL_OK);
	}
	assert_int_equal(store_commit(f->s), EL_OK);
	memset(&ca, 0, sizeof(ca));
	memset(&cb, 0, sizeof(cb));
	ca.s = f->s;
	ca.node = "node-a";
	assert_int_equal(store_open(f->where, &cb.s, &w), EL_OK);
	cb.node = "node-b";
	assert_int_equal(pthread_create(&ta, NULL, lease_claimer_main, &ca), 0);
	assert_int_equal(pthread_create(&tb, NULL, lease_claimer_main, &cb), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	store_close(cb.s);
	assert_int_equal(ca.n + cb.n, 200);
	memset(seen, 0, sizeof(seen));
	for (i = 0; i < ca.n + cb.n; i++) {
		const char *x = i < ca.n ? ca.got[i] : cb.got[i - ca.n];
		long k = strtol(x + 1, NULL, 10);

		assert_true(k >= 0 && k < 200);
		assert_int_equal(seen[k], 0);
		seen[k] = 1;
		assert_string_equal(holder(f->s, x, NULL), i < ca.n ? "node-a" : "node-b");
	}
}

/* What a listener heard (store_listen's callback). */
static atomic_int heard;

static void
hear(void *arg)
{
	(void)arg;
	atomic_fetch_add(&heard, 1);
}

/* Waits up to 10 s for the listener to have heard more than `before`. */
static bool
heard_after(int before)
{
	int i;

	for (i = 0; i < 1000; i++) {
		if (atomic_load(&heard) > before)
			return true;
		usleep(10 * 1000);
	}
	return false;
}

/* A commit that store_notify() marked wakes the other nodes' listeners, never its own
 * node's; a rollback wakes nobody; a listener whose connection is cut listens again and
 * calls back once (what it may have missed). */
static void
pg_wakes_other_nodes(void **state)
{
	struct fx *f = *state;
	struct el_why w = {{0}};
	struct store *other = NULL;
	int before, tries;

	atomic_store(&heard, 0);
	assert_int_equal(store_listen(f->s, hear, NULL), EL_OK);
	assert_true(heard_after(0));          /* listening: once, for what came before */
	assert_int_equal(store_open(f->where, &other, &w), EL_OK);

	before = atomic_load(&heard);
	insert(other, "req_1", "pending", "alice", "prod", 1);   /* a new deadline */
	assert_true(heard_after(before));

	/* Its own commits: nothing. A rolled back one: nothing. Then the other's again. */
	before = atomic_load(&heard);
	insert(f->s, "req_2", "pending", "alice", "prod", 1);
	assert_int_equal(store_begin(other), EL_OK);
	insert(other, "req_3", "pending", "alice", "prod", 1);
	store_rollback(other);
	assert_int_equal(store_begin(other), EL_OK);
	store_notify(other);
	assert_int_equal(store_commit(other), EL_OK);
	assert_true(heard_after(before));
	usleep(200 * 1000);
	assert_int_equal(atomic_load(&heard), before + 1);

	/* The listener's connection is cut: it connects again and calls back. */
	before = atomic_load(&heard);
	assert_int_equal(outside_exec(f, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
	    " WHERE datname = current_database() AND query LIKE 'LISTEN%'"), 0);
	assert_true(heard_after(before));
	for (tries = 0; tries < 1000; tries++) {   /* listening again: up to 10 s */
		if (outside_int(f, "SELECT COUNT(*) FROM pg_stat_activity WHERE"
		    " datname = current_database() AND query LIKE 'LISTEN%'") == 1)
			break;
		usleep(10 * 1000);
	}
	before = atomic_load(&heard);
	assert_int_equal(store_begin(other), EL_OK);
	store_notify(other);
	assert_int_equal(store_commit(other), EL_OK);
	assert_true(heard_after(before));

	store_listen_stop(f->s);
	store_listen_stop(f->s);              /* twice: nothing */
	store_close(other);
}

/* Mails on two stores (two nodes): FOR UPDATE SKIP LOCKED gives each to one of them. */
static void
pg_mails_claimed_once_across_nodes(void **state)
{
	struct fx *f = *state;
	struct el_why w = {{0}};
	struct store *other = NULL;

	assert_int_equal(store_open(f->where, &other, &w), EL_OK);
	mails_claimed_once(f, other);
	store_close(other);
}

/* The advisory lock every write transaction takes (store_pg.c): (class 'elev', 1). */
#define WRITE_LOCK "1701602678, 1"

/*
 * A nonce claim takes no writers' lock: with another session holding it (as another
 * node's long transaction would), claims on two nodes go through, a replay to either is
 * refused, and the pruning runs. Had the claims taken the lock, each would have failed
 * after lock_timeout (5 s).
 */
static void
pg_nonce_claims_without_the_writers_lock(void **state)
{
	struct fx *f = *state;
	struct el_why w = {{0}};
	struct store *other = NULL;
	PGconn *holder;
	PGresult *res;
	enum el_err r[4];

	assert_int_equal(store_open(f->where, &other, &w), EL_OK);
	assert_int_equal(store_nonce_claim(f->s, "api", "old-1", "alice", 100, 0), EL_OK);
	assert_int_equal(store_nonce_claim(other, "api", "old-2", "alice", 100, 0), EL_OK);
	holder = pg_outside();
	res = PQexec(holder, "SELECT pg_advisory_lock(" WRITE_LOCK ")");
	assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
	PQclear(res);
	r[0] = store_nonce_claim(f->s, "api", "n-a", "alice", 1000, 500);
	r[1] = store_nonce_claim(other, "api", "n-b", "bob", 1000, 500);
	r[2] = store_nonce_claim(other, "api", "n-a", "alice", 1001, 500);
	r[3] = store_nonce_claim(f->s, "api", "n-b", "bob", 1001, 500);
	PQfinish(holder);   /* releases the lock: a failure below leaves the next test alone */
	assert_int_equal(r[0], EL_OK);
	assert_int_equal(r[1], EL_OK);
	assert_int_equal(r[2], EL_EEXIST);
	assert_int_equal(r[3], EL_EEXIST);
	assert_int_equal(count_outside(f, "nonces WHERE seen_at < 500"), 0);
	assert_int_equal(count_outside(f, "nonces"), 2);
	insert(other, "req_after", "pending", "alice", "prod", 1);
	assert_true(exists(f->s, "req_after"));
	store_close(other);
}

/* Cuts every connection of the store (as a server restart or a failover does) and waits
 * until the server has closed them all. */
static void
pg_cut_connections(const struct fx *f)
{
	int tries;

	assert_int_equal(outside_exec(f, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
	    " WHERE datname = current_database() AND pid <> pg_backend_pid()"), 0);
	for (tries = 0; tries < 1000; tries++) {   /* up to 10 s */
		if (outside_int(f, "SELECT COUNT(*) FROM pg_stat_activity WHERE"
		    " datname = current_database() AND pid <> pg_backend_pid()") == 0)
			return;
		usleep(10 * 1000);
	}
	fail_msg("the store's connections outlived pg_terminate_backend");
}

/* A lost connection fails the call that meets it with EL_EDB and says so; the next call
 * connects again. Never a shorter list: a reader that lost its server is an error. */
static void
pg_reconnects(void **state)
{
	struct fx *f = *state;
	struct store_filter flt;
	struct store_request *v = NULL, r;
	size_t n = 0;

	insert(f->s, "req_1", "pending", "alice", "prod", 1);
	pg_cut_connections(f);
	memset(&flt, 0, sizeof(flt));
	assert_int_equal(store_request_list(f->s, &flt, &v, &n), EL_EDB);
	assert_non_null(strstr(store_errmsg(), "lost the connection to PostgreSQL, the next call "
	    "reconnects"));
	assert_int_equal(store_request_list(f->s, &flt, &v, &n), EL_OK);
	assert_int_equal(n, 1);
	store_request_free(&v[0]);
	free(v);

	/* the writer: its transaction cannot begin on the lost connection, the next can */
	assert_int_equal(store_begin(f->s), EL_EDB);
	assert_non_null(strstr(store_errmsg(), "lost the connection to PostgreSQL"));
	insert(f->s, "req_2", "pending", "alice", "prod", 2);
	assert_true(exists(f->s, "req_2"));

	/* lost inside a transaction: what follows in it fails too (it is not run on a new
	 * connection, where it would commit alone), the commit fails, nothing is kept */
	assert_int_equal(store_begin(f->s), EL_OK);
	insert(f->s, "req_3", "pending", "alice", "prod", 3);
	pg_cut_connections(f);
	mkreq(&r, "req_3b", "pending", "alice", "prod", 3);
	assert_int_equal(store_request_insert(f->s, &r), EL_EDB);
	assert_int_equal(store_request_insert(f->s, &r), EL_EDB);
	assert_int_equal(store_commit(f->s), EL_EDB);
	assert_int_equal(count_outside(f, "requests"), 2);
	insert(f->s, "req_4", "pending", "alice", "prod", 4);
	assert_int_equal(count_outside(f, "requests"), 3);
}

/* The value of a keyword of a libpq connection string; "" when unset. */
static void
conninfo(const char *url, const char *kw, char *out, size_t len)
{
	PQconninfoOption *opts = PQconninfoParse(url, NULL), *o;

	assert_non_null(opts);
	out[0] = '\0';
	for (o = opts; o->keyword != NULL; o++)
		if (strcmp(o->keyword, kw) == 0 && o->val != NULL)
			el_strlcpy(out, o->val, len);
	PQconninfoFree(opts);
}

/* store.password_file: the password alone, read at each connection, in a file not every
 * user can read; a wrong one is refused by the server, and no message shows it. */
static void
pg_password_file(void **state)
{
	struct fx *f = *state;
	struct config cfg;
	struct el_why w = {{0}};
	char passfile[512], line[512], url[1024], pwpath[160], host[128], port[16], db[64];
	char user[64], *pw;
	FILE *fp;
	int field;

	/* the password the test server gave the role, from its passfile (host:port:db:user:pw) */
	conninfo(pg_url, "passfile", passfile, sizeof(passfile));
	fp = fopen(passfile, "r");
	assert_non_null(fp);
	assert_non_null(fgets(line, sizeof(line), fp));
	fclose(fp);
	line[strcspn(line, "\n")] = '\0';
	pw = line;
	for (field = 0; field < 4; field++) {
		pw = strchr(pw, ':');
		assert_non_null(pw);
		pw++;
	}
	conninfo(pg_url, "host", host, sizeof(host));
	conninfo(pg_url, "port", port, sizeof(port));
	conninfo(pg_url, "dbname", db, sizeof(db));
	conninfo(pg_url, "user", user, sizeof(user));
	/* no passfile here: the password comes from store.password_file alone */
	snprintf(url, sizeof(url), "host=%s port=%s dbname=%s user=%s passfile=/nonexistent",
	    host, port, db, user);
	snprintf(pwpath, sizeof(pwpath), "%s/db.pw", f->dir);
	fp = fopen(pwpath, "w");
	assert_non_null(fp);
	fprintf(fp, "%s\n", pw);
	fclose(fp);
	assert_int_equal(chmod(pwpath, 0600), 0);

	memset(&cfg, 0, sizeof(cfg));
	cfg.state_dir = f->dir;
	cfg.store_url = url;
	cfg.store_password_file = pwpath;
	assert_int_equal(store_open_config(&cfg, &f->s, &w), EL_OK);
	assert_int_equal(store_schema_version(f->s), STORE_SCHEMA_VERSION);
	insert(f->s, "req_pw", "pending", "alice", "prod", 1);
	store_close(f->s);
	f->s = NULL;

	assert_int_equal(chmod(pwpath, 0644), 0);
	assert_int_equal(store_open_config(&cfg, &f->s, &w), EL_ECONFIG);
	assert_non_null(strstr(w.msg, "store.password_file"));
	assert_non_null(strstr(w.msg, "chmod 600"));

	fp = fopen(pwpath, "w");
	assert_non_null(fp);
	fprintf(fp, "not-%s\n", pw);
	fclose(fp);
	assert_int_equal(chmod(pwpath, 0600), 0);
	memset(&w, 0, sizeof(w));
	assert_int_equal(store_open_config(&cfg, &f->s, &w), EL_EDB);
	assert_non_null(strstr(w.msg, "password authentication failed"));
	assert_null(strstr(w.msg, pw));
	unlink(pwpath);
}

/* Without ELEVATE_TEST_PG_URL the PostgreSQL half fails, loudly: it is not skipped. */
static void
pg_url_given(void **state)
{
	(void)state;
	fail_msg("ELEVATE_TEST_PG_URL is not set: the PostgreSQL half of the store's tests needs "
	    "a database it may empty. Run tests/run-all.sh unit (it starts a throwaway server), "
	    "or: /usr/bin/python3 tests/unit/with_pg.py build/tests/test_store");
}

/* Every test that runs on both backends, for backend B. */
#define BOTH(B) \
	T(open_refusals, setup_dir, B), \
	T(upgrade_from_v1, setup_dir, B), \
	T(upgrade_from_v2, setup_dir, B), \
	T(upgrade_from_v4_checks_states, setup_dir, B), \
	T(request_round_trip, setup, B), \
	T(request_list_filters, setup, B), \
	T(request_set_state_conditional, setup, B), \
	T(request_update, setup, B), \
	T(request_counts, setup, B), \
	T(approvals_unique, setup, B), \
	T(nonces, setup, B), \
	T(deadlines, setup, B), \
	T(outbox, setup, B), \
	T(deliveries, setup, B), \
	T(mails_claimed_once_by_threads, setup, B), \
	T(relaxed_refuses_what_needs_the_lock, setup, B), \
	T(revoked, setup, B), \
	T(grants, setup, B), \
	T(bundles, setup, B), \
	T(sessions, setup, B), \
	T(rollback_discards, setup, B), \
	T(nested_commit, setup, B), \
	T(nested_rollback_poisons_outer, setup, B), \
	T(refused_write_keeps_the_transaction, setup, B), \
	T(threads_serialise, setup, B), \
	T(nonce_claims_group_commit, setup, B), \
	T(readers_do_not_wait_for_the_writer, setup, B), \
	T(read_snapshot, setup, B), \
	T(revoked_sync, setup, B), \
	T(cohorts, setup, B), \
	T(leases, setup, B), \
	T(upgrade_from_v8_frees_activations, setup_dir, B)
#define T(fn, su, B) cmocka_unit_test_prestate_setup_teardown(fn, su, teardown, B)

int
main(void)
{
	const struct CMUnitTest sqlite_tests[] = {
		BOTH(&on_sqlite),
		/* SQLite only: the file, its WAL, its pages */
		T(open_mode_and_version, setup_dir, &on_sqlite),
		T(checkpointer_copies_the_wal, setup, &on_sqlite),
		T(readers_fail_closed, setup, &on_sqlite),
	};
	const struct CMUnitTest pg_tests[] = {
		BOTH(&on_pg),
		/* PostgreSQL only: several nodes, the network */
		T(pg_nodes_migrate_once, setup_dir, &on_pg),
		T(pg_writers_serialise_across_nodes, setup, &on_pg),
		T(pg_mails_claimed_once_across_nodes, setup, &on_pg),
		T(pg_nonce_claims_without_the_writers_lock, setup, &on_pg),
		T(pg_reconnects, setup, &on_pg),
		T(pg_password_file, setup_dir, &on_pg),
		T(pg_claims_are_disjoint, setup, &on_pg),
		T(pg_wakes_other_nodes, setup, &on_pg),
	};
	const struct CMUnitTest no_pg[] = {
		cmocka_unit_test(pg_url_given),
	};
	int failed;

	log_set_level(LOG_LVL_WARN);   /* the migrations' info lines are expected */
	pg_url = getenv("ELEVATE_TEST_PG_URL");
	failed = cmocka_run_group_tests_name("store on SQLite", sqlite_tests, NULL, NULL);
	if (pg_url != NULL && pg_url[0] != '\0')
		failed += cmocka_run_group_tests_name("store on PostgreSQL", pg_tests, NULL, NULL);
	else
		failed += cmocka_run_group_tests_name("store on PostgreSQL", no_pg, NULL, NULL);
	return failed;
}
