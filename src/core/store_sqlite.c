/*
 * store_sqlite.c — the store's SQLite backend (store_db.h), the embedded default: owns
 * the database file (created 0600), its connections, PRAGMAs (WAL, foreign keys, busy
 * timeout, secure_delete), migrations (PRAGMA user_version), prepared statements, group
 * commit and the WAL checkpointer.
 *
 * One writer connection, used under the store's mutex; a pool of read-only connections,
 * so that WAL readers never wait for a writer. Statements are prepared once per
 * connection and found again by their SQL text. Transactions are group-committed: each is
 * a savepoint in one SQLite transaction whose COMMIT (one fsync) the first waiting member
 * performs for all.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "elevate/log.h"
#include "elevate/store.h"
#include "store_db.h"

#define STMT_CACHE 48

/* Prepared statements kept per connection, found again by their SQL text. */
struct stmt_cache {
	struct {
		char *sql;
		uint32_t hash;
		sqlite3_stmt *st;
		bool out;               /* in use: a nested use of the same SQL prepares its own */
	} v[STMT_CACHE];
	int n;
};

struct conn {
	sqlite3 *db;
	struct stmt_cache cache;
};

/* A committed transaction waiting for its group's commit; on its thread's stack. */
struct member {
	enum el_err r;
	bool done;
	struct member *next;
};

struct sqlite_store {
	struct store base;      /* first: a struct store * is one of these */
	char *path;
	struct conn wconn, rconn[STORE_READERS];

	/* The group: transactions are savepoints in one SQLite transaction, committed (and
	 * synced) once for all of them. Under base.mu: */
	bool group_open;        /* BEGIN done, COMMIT not yet */
	bool group_lost;        /* SQLite rolled it back by itself (I/O error, full disk) */
	bool group_relaxed;     /* synchronous=NORMAL: only relaxed ones may join it */
	int waiting;            /* transactions waiting for a relaxed group to end */
	struct member *members; /* released savepoints waiting for the COMMIT */
	int nmembers;
	/* Under gmu: */
	pthread_mutex_t gmu;
	pthread_cond_t gcv;
	bool committing;        /* a leader is committing (or waiting for mu to) */
	pthread_cond_t lcv;     /* the leader waits here for the transactions it lets in */
	bool leader_waits;
	uint64_t events;        /* transactions that joined a group, ended, or wait for one */
	uint64_t commits;       /* groups ended so far */

	/* The checkpointer: copies the WAL into the database on its own connection, off
	 * the commit path (store_checkpointer_start). Under ck_mu: */
	sqlite3 *ck;
	pthread_t ck_thread;
	pthread_mutex_t ck_mu;
	pthread_cond_t ck_cv;
	bool ck_started, ck_stop;
	int wal_pages;          /* frames in the WAL after the last commit */
};

/* A group commit waits for at most this many members, this long. */
#define GROUP_MAX 32
#define GROUP_WAIT_MS 5

/* A WAL this long is checkpointed by the checkpointer; without one, or when it falls this
 * far behind, by the commit that makes it so long (SQLite's own default behaviour). */
#define WAL_CHECKPOINT_PAGES 1000
#define WAL_BACKSTOP_PAGES 20000

/* Migrations: entry N brings the schema from version N to N+1. Never edit a shipped one.
 * store_pg.c has the same versions for PostgreSQL. */
static const char *const migrations[] = {
	/* 0 -> 1: the request service */
	"CREATE TABLE requests ("
	"  id TEXT PRIMARY KEY, profile TEXT NOT NULL, requester TEXT NOT NULL,"
	"  state TEXT NOT NULL, duration INTEGER NOT NULL, reason TEXT, ticket TEXT,"
	"  role_arn TEXT NOT NULL, region TEXT, created_at INTEGER NOT NULL,"
	"  pending_until INTEGER NOT NULL, decided_at INTEGER, window_start INTEGER,"
	"  window_end INTEGER, ended_at INTEGER, failure_code TEXT, failure_message TEXT,"
	"  updated_at INTEGER NOT NULL);"
	"CREATE INDEX requests_state ON requests(state);"
	"CREATE TABLE approvals ("
	"  request_id TEXT NOT NULL REFERENCES requests(id), approver TEXT NOT NULL,"
	"  decision TEXT NOT NULL CHECK (decision IN ('approve','deny')), comment TEXT,"
	"  at INTEGER NOT NULL, PRIMARY KEY (request_id, approver));"
	"CREATE TABLE grants ("
	"  request_id TEXT PRIMARY KEY REFERENCES requests(id), role_session_name TEXT NOT NULL,"
	"  assumed_role_arn TEXT, assumed_role_id TEXT, access_key_id TEXT, creds_box BLOB,"
	"  creds_expire_at INTEGER, minted_at INTEGER);"
	"CREATE TABLE nonces (nonce TEXT PRIMARY KEY, who TEXT NOT NULL, seen_at INTEGER NOT NULL);"
	"CREATE TABLE audit ("
	"  seq INTEGER PRIMARY KEY, time TEXT NOT NULL, actor TEXT NOT NULL, event TEXT NOT NULL,"
	"  request_id TEXT, data TEXT NOT NULL, prev_hash BLOB NOT NULL, hash BLOB NOT NULL);"
	"CREATE INDEX audit_request ON audit(request_id);",

	/* 1 -> 2: email approvals (outbox, single-use tokens via kinds of nonces), approval
	 * channel, extensions, reaper backoff */
	"ALTER TABLE approvals ADD COLUMN via TEXT NOT NULL DEFAULT 'cli';"
	"ALTER TABLE requests ADD COLUMN next_attempt_at INTEGER;"
	"ALTER TABLE requests ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE requests ADD COLUMN parent_id TEXT;"
	"ALTER TABLE nonces ADD COLUMN kind TEXT NOT NULL DEFAULT 'api';"
	"CREATE TABLE outbox ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT, rcpt TEXT NOT NULL,"
	"  subject TEXT NOT NULL, message TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'queued',"
	"  attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at INTEGER NOT NULL,"
	"  last_error TEXT, created_at INTEGER NOT NULL);"
	"CREATE INDEX outbox_due ON outbox(state, next_attempt_at);",

	/* 2 -> 3: SSM sessions and early revocation */
	"CREATE TABLE sessions ("
	"  session_id TEXT PRIMARY KEY, request_id TEXT NOT NULL REFERENCES requests(id),"
	"  target TEXT NOT NULL, document TEXT, started_at INTEGER NOT NULL,"
	"  terminated_at INTEGER);"
	"CREATE INDEX sessions_request ON sessions(request_id);"
	"CREATE TABLE revoked ("
	"  userid TEXT PRIMARY KEY, role_name TEXT NOT NULL, request_id TEXT NOT NULL,"
	"  expires_at INTEGER NOT NULL);"
	"CREATE INDEX revoked_role ON revoked(role_name, expires_at);",

	/* 3 -> 4: the "ending soon" warning is sent once per grant; queued mail bodies are
	 * sealed, so the Message-ID is kept beside them */
	"ALTER TABLE requests ADD COLUMN warned_at INTEGER;"
	"ALTER TABLE outbox ADD COLUMN message_id TEXT;",

	/* 4 -> 5: the lifecycle's states are the only ones the column holds (rebuilt with a
	 * CHECK, the only way SQLite adds one); revocation entries remember whether the
	 * role's deny policy holds them; /healthz commits to a table of its own */
	"CREATE TABLE requests_v5 ("
	"  id TEXT PRIMARY KEY, profile TEXT NOT NULL, requester TEXT NOT NULL,"
	"  state TEXT NOT NULL CHECK (state IN ('pending','activating','active','ending',"
	"   'ended','denied','cancelled','lapsed','failed')),"
	"  duration INTEGER NOT NULL, reason TEXT, ticket TEXT,"
	"  role_arn TEXT NOT NULL, region TEXT, created_at INTEGER NOT NULL,"
	"  pending_until INTEGER NOT NULL, decided_at INTEGER, window_start INTEGER,"
	"  window_end INTEGER, ended_at INTEGER, failure_code TEXT, failure_message TEXT,"
	"  updated_at INTEGER NOT NULL, next_attempt_at INTEGER,"
	"  attempts INTEGER NOT NULL DEFAULT 0, parent_id TEXT, warned_at INTEGER);"
	"INSERT INTO requests_v5 (id, profile, requester, state, duration, reason, ticket,"
	"  role_arn, region, created_at, pending_until, decided_at, window_start, window_end,"
	"  ended_at, failure_code, failure_message, updated_at, next_attempt_at, attempts,"
	"  parent_id, warned_at)"
	" SELECT id, profile, requester, state, duration, reason, ticket,"
	"  role_arn, region, created_at, pending_until, decided_at, window_start, window_end,"
	"  ended_at, failure_code, failure_message, updated_at, next_attempt_at, attempts,"
	"  parent_id, warned_at FROM requests;"
	"DROP TABLE requests;"
	"ALTER TABLE requests_v5 RENAME TO requests;"
	"CREATE INDEX requests_state ON requests(state);"
	"CREATE INDEX requests_parent ON requests(parent_id);"
	"ALTER TABLE revoked ADD COLUMN synced_at INTEGER;"
	"CREATE TABLE health (k INTEGER PRIMARY KEY CHECK (k = 1), at INTEGER NOT NULL);",

	/* 5 -> 6: indexes for what runs on every call or every wake (make bench): the nonce
	 * prune of each signed call scanned every nonce; the reaper's next deadline read every
	 * row of a state for its MIN; `list` sorted every request by creation */
	"CREATE INDEX nonces_kind_seen ON nonces(kind, seen_at);"
	"CREATE INDEX requests_state_window ON requests(state, window_end);"
	"CREATE INDEX requests_state_pending ON requests(state, pending_until);"
	"CREATE INDEX requests_created ON requests(created_at);"
	"CREATE INDEX requests_unwarned ON requests(window_end)"
	"  WHERE state = 'active' AND warned_at IS NULL;",

	/* 6 -> 7: revocation cohorts. A grant's sessions carry its cohort as a session tag;
	 * a role's open cohort is the one its next grants join, until the deny policy closes
	 * it (denypolicy.h) */
	"ALTER TABLE requests ADD COLUMN cohort TEXT;"
	"CREATE TABLE role_cohorts (role_name TEXT PRIMARY KEY, open TEXT NOT NULL);",

	/* 7 -> 8: the rowid SQL ordered and marked by is a column of its own, rid, so that
	 * the same SQL runs on PostgreSQL. Each table is rebuilt with rid as its INTEGER
	 * PRIMARY KEY (SQLite's alias of the rowid: the same b-tree as before, every rowid
	 * kept) and its old key as a UNIQUE column, as 4 -> 5 rebuilt requests. */
	"CREATE TABLE requests_v8 ("
	"  rid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, profile TEXT NOT NULL,"
	"  requester TEXT NOT NULL,"
	"  state TEXT NOT NULL CHECK (state IN ('pending','activating','active','ending',"
	"   'ended','denied','cancelled','lapsed','failed')),"
	"  duration INTEGER NOT NULL, reason TEXT, ticket TEXT,"
	"  role_arn TEXT NOT NULL, region TEXT, created_at INTEGER NOT NULL,"
	"  pending_until INTEGER NOT NULL, decided_at INTEGER, window_start INTEGER,"
	"  window_end INTEGER, ended_at INTEGER, failure_code TEXT, failure_message TEXT,"
	"  updated_at INTEGER NOT NULL, next_attempt_at INTEGER,"
	"  attempts INTEGER NOT NULL DEFAULT 0, parent_id TEXT, warned_at INTEGER,"
	"  cohort TEXT);"
	"INSERT INTO requests_v8 (rid, id, profile, requester, state, duration, reason, ticket,"
	"  role_arn, region, created_at, pending_until, decided_at, window_start, window_end,"
	"  ended_at, failure_code, failure_message, updated_at, next_attempt_at, attempts,"
	"  parent_id, warned_at, cohort)"
	" SELECT rowid, id, profile, requester, state, duration, reason, ticket,"
	"  role_arn, region, created_at, pending_until, decided_at, window_start, window_end,"
	"  ended_at, failure_code, failure_message, updated_at, next_attempt_at, attempts,"
	"  parent_id, warned_at, cohort FROM requests;"
	"DROP TABLE requests;"
	"ALTER TABLE requests_v8 RENAME TO requests;"
	"CREATE INDEX requests_state ON requests(state);"
	"CREATE INDEX requests_parent ON requests(parent_id);"
	"CREATE INDEX requests_state_window ON requests(state, window_end);"
	"CREATE INDEX requests_state_pending ON requests(state, pending_until);"
	"CREATE INDEX requests_created ON requests(created_at);"
	"CREATE INDEX requests_unwarned ON requests(window_end)"
	"  WHERE state = 'active' AND warned_at IS NULL;"
	"CREATE TABLE approvals_v8 ("
	"  rid INTEGER PRIMARY KEY, request_id TEXT NOT NULL REFERENCES requests(id),"
	"  approver TEXT NOT NULL,"
	"  decision TEXT NOT NULL CHECK (decision IN ('approve','deny')), comment TEXT,"
	"  at INTEGER NOT NULL, via TEXT NOT NULL DEFAULT 'cli', UNIQUE (request_id, approver));"
	"INSERT INTO approvals_v8 (rid, request_id, approver, decision, comment, at, via)"
	" SELECT rowid, request_id, approver, decision, comment, at, via FROM approvals;"
	"DROP TABLE approvals;"
	"ALTER TABLE approvals_v8 RENAME TO approvals;"
	"CREATE TABLE sessions_v8 ("
	"  rid INTEGER PRIMARY KEY, session_id TEXT NOT NULL UNIQUE,"
	"  request_id TEXT NOT NULL REFERENCES requests(id),"
	"  target TEXT NOT NULL, document TEXT, started_at INTEGER NOT NULL,"
	"  terminated_at INTEGER);"
	"INSERT INTO sessions_v8 (rid, session_id, request_id, target, document, started_at,"
	"  terminated_at)"
	" SELECT rowid, session_id, request_id, target, document, started_at, terminated_at"
	" FROM sessions;"
	"DROP TABLE sessions;"
	"ALTER TABLE sessions_v8 RENAME TO sessions;"
	"CREATE INDEX sessions_request ON sessions(request_id);"
	"CREATE TABLE revoked_v8 ("
	"  rid INTEGER PRIMARY KEY, userid TEXT NOT NULL UNIQUE, role_name TEXT NOT NULL,"
	"  request_id TEXT NOT NULL, expires_at INTEGER NOT NULL, synced_at INTEGER);"
	"INSERT INTO revoked_v8 (rid, userid, role_name, request_id, expires_at, synced_at)"
	" SELECT rowid, userid, role_name, request_id, expires_at, synced_at FROM revoked;"
	"DROP TABLE revoked;"
	"ALTER TABLE revoked_v8 RENAME TO revoked;"
	"CREATE INDEX revoked_role ON revoked(role_name, expires_at);"
	"CREATE TABLE nonces_v8 ("
	"  rid INTEGER PRIMARY KEY, nonce TEXT NOT NULL UNIQUE, who TEXT NOT NULL,"
	"  seen_at INTEGER NOT NULL, kind TEXT NOT NULL DEFAULT 'api');"
	"INSERT INTO nonces_v8 (rid, nonce, who, seen_at, kind)"
	" SELECT rowid, nonce, who, seen_at, kind FROM nonces;"
	"DROP TABLE nonces;"
	"ALTER TABLE nonces_v8 RENAME TO nonces;"
	"CREATE INDEX nonces_kind_seen ON nonces(kind, seen_at);",

	/* 8 -> 9: the records that tell the audit chain's keys, found without a scan */
	"CREATE INDEX audit_keys ON audit(seq)"
	"  WHERE event IN ('audit.node_joined', 'audit.key_rotated');",

	/* 9 -> 10: break-glass grants and their review */
	"CREATE TABLE glass ("
	"  request_id TEXT PRIMARY KEY REFERENCES requests(id), review_due_at INTEGER NOT NULL,"
	"  reviewed_at INTEGER, reviewed_by TEXT, review TEXT, escalated_at INTEGER);"
	"CREATE INDEX glass_unreviewed ON glass(review_due_at)"
	"  WHERE reviewed_at IS NULL AND escalated_at IS NULL;",

	/* 10 -> 11: webhook deliveries, one per webhook and audit record (seq); claimed
	 * with a lease by the node that sends it */
	"CREATE TABLE webhook_deliveries ("
	"  rid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, webhook TEXT NOT NULL,"
	"  seq INTEGER NOT NULL, event TEXT NOT NULL, request_id TEXT, payload TEXT NOT NULL,"
	"  state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued','sent','failed')),"
	"  attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at INTEGER NOT NULL,"
	"  give_up_at INTEGER NOT NULL, lease_until INTEGER, leased_by TEXT, last_error TEXT,"
	"  created_at INTEGER NOT NULL, sent_at INTEGER, UNIQUE (webhook, seq));"
	"CREATE INDEX webhook_queued ON webhook_deliveries(webhook, rid) WHERE state = 'queued';",

	/* 11 -> 12: leases on due work (several nodes: store.h). The activation lease was
	 * next_attempt_at of a first attempt; with no node running (a schema change stops
	 * them all) nothing is in flight, so those are due now. */
	"ALTER TABLE requests ADD COLUMN lease_node TEXT;"
	"ALTER TABLE requests ADD COLUMN lease_until INTEGER;"
	"CREATE INDEX requests_leased ON requests(lease_until) WHERE lease_until IS NOT NULL;"
	"UPDATE requests SET next_attempt_at = NULL WHERE state = 'activating'"
	"  AND attempts = 0;",

	/* 12 -> 13: scheduled windows (a request's window starts at start_at) */
	"CREATE TABLE schedules ("
	"  request_id TEXT PRIMARY KEY REFERENCES requests(id), start_at INTEGER NOT NULL);",

	/* 13 -> 14: a mail is claimed by one node at a time, until its lease runs out */
	"ALTER TABLE outbox ADD COLUMN claimed_by TEXT;"
	"ALTER TABLE outbox ADD COLUMN claimed_until INTEGER;",

	/* 14 -> 15: the mailer's next due time from indexes alone (claimed_until sits after
	 * the message: reading it from the row read every queued mail whole) */
	"CREATE INDEX outbox_next ON outbox(state, next_attempt_at, id, claimed_until);"
	"CREATE INDEX outbox_claims ON outbox(state, claimed_until, next_attempt_at);"
	"DROP INDEX outbox_due;",

	/* 15 -> 16: bundles, one request over several profiles (a member request each) */
	"CREATE TABLE bundles ("
	"  id TEXT PRIMARY KEY, requester TEXT NOT NULL, created_at INTEGER NOT NULL);"
	"CREATE TABLE bundle_members ("
	"  request_id TEXT PRIMARY KEY REFERENCES requests(id),"
	"  bundle_id TEXT NOT NULL REFERENCES bundles(id), position INTEGER NOT NULL,"
	"  UNIQUE (bundle_id, position));",
};

#define NMIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))
_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == STORE_SCHEMA_VERSION,
    "a migration per schema version");

static struct sqlite_store *
sq(struct store *s)
{
	return (struct sqlite_store *)s;
}

static void
lock(struct sqlite_store *s)
{
	pthread_mutex_lock(&s->base.mu);
}

static void
unlock(struct sqlite_store *s)
{
	pthread_mutex_unlock(&s->base.mu);
}

static enum el_err
dberr(sqlite3 *db, const char *what)
{
	return store_fail(what, sqlite3_errmsg(db));
}

/* ---- statements ---- */

/* A statement for sql on c: the connection's cached one, reset, when it is free;
 * otherwise a new one, cached when there is room. Give it back with unprepare(). */
static enum el_err
stmt_get(struct conn *c, const char *sql, sqlite3_stmt **st)
{
	struct stmt_cache *k = &c->cache;
	uint32_t h = store_sql_hash(sql);
	int i;

	for (i = 0; i < k->n; i++)
		if (k->v[i].hash == h && !k->v[i].out && strcmp(k->v[i].sql, sql) == 0) {
			k->v[i].out = true;
			*st = k->v[i].st;
			return EL_OK;
		}
	if (k->n < STMT_CACHE) {
		if (sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL)
		    != SQLITE_OK)
			return dberr(c->db, sql);
		if ((k->v[k->n].sql = strdup(sql)) == NULL) {
			sqlite3_finalize(*st);
			return EL_ENOMEM;
		}
		k->v[k->n].hash = h;
		k->v[k->n].st = *st;
		k->v[k->n].out = true;
		k->n++;
		return EL_OK;
	}
	if (sqlite3_prepare_v2(c->db, sql, -1, st, NULL) != SQLITE_OK)
		return dberr(c->db, sql);
	return EL_OK;
}

static void
unprepare(struct conn *c, sqlite3_stmt *st)
{
	struct stmt_cache *k = &c->cache;
	int i;

	if (st == NULL)
		return;
	for (i = 0; i < k->n; i++)
		if (k->v[i].st == st) {
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			k->v[i].out = false;
			return;
		}
	sqlite3_finalize(st);
}

static void
conn_close(struct conn *c)
{
	int i;

	for (i = 0; i < c->cache.n; i++) {
		sqlite3_finalize(c->cache.v[i].st);
		free(c->cache.v[i].sql);
	}
	c->cache.n = 0;
	sqlite3_close(c->db);
	c->db = NULL;
}

/* A statement without parameters or rows (BEGIN, COMMIT, a PRAGMA) through the cache. */
static int
run(struct conn *c, const char *sql)
{
	sqlite3_stmt *st;
	int rc;

	if (stmt_get(c, sql, &st) != EL_OK)
		return SQLITE_ERROR;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		;
	unprepare(c, st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static enum el_err
sq_prepare(struct q *q, const char *fmt, va_list ap)
{
	sqlite3 *db = q->c->db;
	sqlite3_stmt *st;
	enum el_err r;
	int i, rc = SQLITE_OK;

	if ((r = stmt_get(q->c, q->sql, &st)) != EL_OK)
		return r;
	for (i = 0; fmt != NULL && fmt[i] != '\0' && rc == SQLITE_OK; i++) {
		switch (fmt[i]) {
		case 't': {
			const char *v = va_arg(ap, const char *);
			rc = v ? sqlite3_bind_text(st, i + 1, v, -1, SQLITE_TRANSIENT) :
			    sqlite3_bind_null(st, i + 1);
			break;
		}
		case 'i':
			rc = sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
			break;
		case 'z': {
			int64_t v = va_arg(ap, int64_t);
			rc = v ? sqlite3_bind_int64(st, i + 1, v) : sqlite3_bind_null(st, i + 1);
			break;
		}
		case 'b': {
			const void *p = va_arg(ap, const void *);
			size_t n = va_arg(ap, size_t);
			rc = p ? sqlite3_bind_blob(st, i + 1, p, (int)n, SQLITE_TRANSIENT) :
			    sqlite3_bind_null(st, i + 1);
			break;
		}
		default:
			fatalx("store: bad bind format %c", fmt[i]);
		}
	}
	if (rc != SQLITE_OK) {
		r = dberr(db, "bind");
		unprepare(q->c, st);
		return r;
	}
	q->st = st;
	return EL_OK;
}

static enum q_rc
sq_step(struct q *q)
{
	int rc = sqlite3_step(q->st);

	if (rc == SQLITE_ROW)
		return Q_ROW;
	if (rc == SQLITE_DONE)
		return Q_DONE;
	return (rc & 0xff) == SQLITE_CONSTRAINT ? Q_CONSTRAINT : Q_ERROR;
}

static bool
sq_isnull(struct q *q, int i)
{
	return sqlite3_column_type(q->st, i) == SQLITE_NULL;
}

static const char *
sq_text(struct q *q, int i)
{
	return (const char *)sqlite3_column_text(q->st, i);
}

static int64_t
sq_int64(struct q *q, int i)
{
	return sqlite3_column_int64(q->st, i);
}

static const void *
sq_blob(struct q *q, int i, size_t *len)
{
	const void *p = sqlite3_column_blob(q->st, i);

	*len = (size_t)sqlite3_column_bytes(q->st, i);
	return p;
}

static int64_t
sq_changes(struct q *q)
{
	return sqlite3_changes(q->c->db);
}

static const char *
sq_errmsg(struct q *q)
{
	return sqlite3_errmsg(q->c->db);
}

static void
sq_done(struct q *q)
{
	unprepare(q->c, q->st);
	q->st = NULL;
}

/* ---- migrations ---- */

static int
user_version(sqlite3 *db)
{
	sqlite3_stmt *st;
	int v = -1;

	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* Rows whose foreign key points nowhere (a migration must leave none); -1 on error. */
static int
fk_violations(sqlite3 *db)
{
	sqlite3_stmt *st;
	int n = 0, rc;

	if (sqlite3_prepare_v2(db, "PRAGMA foreign_key_check", -1, &st, NULL) != SQLITE_OK)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		n++;
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? n : -1;
}

static enum el_err
migrate(sqlite3 *db, int target, struct el_why *w)
{
	char sql[64];
	int v = user_version(db);

	if (v < 0)
		return el_fail(w, EL_EDB, "cannot read schema version: %s", sqlite3_errmsg(db));
	if (v > NMIGRATIONS)
		return el_fail(w, EL_EDB, "database schema version %d is newer than this "
		    "elevated (%d): upgrade elevated", v, NMIGRATIONS);
	/* A table rebuild drops a table others reference: SQLite's way is foreign keys off
	 * (outside any transaction), rebuild, check, on again. */
	if (v < target && sqlite3_exec(db, "PRAGMA foreign_keys=OFF", NULL, NULL, NULL)
	    != SQLITE_OK)
		return el_fail(w, EL_EDB, "migration: %s", sqlite3_errmsg(db));
	while (v < target) {
		if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
			return el_fail(w, EL_EDB, "migration: %s", sqlite3_errmsg(db));
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
		if (sqlite3_exec(db, migrations[v], NULL, NULL, NULL) != SQLITE_OK ||
		    sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK ||
		    fk_violations(db) != 0) {
			el_fail(w, EL_EDB, "migration %d -> %d: %s", v, v + 1, sqlite3_errmsg(db));
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return EL_EDB;
		}
		if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
			return el_fail(w, EL_EDB, "migration commit: %s", sqlite3_errmsg(db));
		if (v > 0)
			log_info("store: migrated schema %d -> %d", v, v + 1);
		v++;
	}
	if (sqlite3_exec(db, "PRAGMA foreign_keys=ON", NULL, NULL, NULL) != SQLITE_OK)
		return el_fail(w, EL_EDB, "migration: %s", sqlite3_errmsg(db));
	return EL_OK;
}

/* ---- the WAL checkpointer ---- */

/* After each commit on the writer, with the WAL's length in frames. */
static int
wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
	struct sqlite_store *s = arg;
	bool started;

	pthread_mutex_lock(&s->ck_mu);
	started = s->ck_started;
	s->wal_pages = pages;
	if (started && pages >= WAL_CHECKPOINT_PAGES)
		pthread_cond_signal(&s->ck_cv);
	pthread_mutex_unlock(&s->ck_mu);
	if (pages >= (started ? WAL_BACKSTOP_PAGES : WAL_CHECKPOINT_PAGES))
		sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	return SQLITE_OK;
}

static void *
checkpointer(void *arg)
{
	struct sqlite_store *s = arg;

	pthread_mutex_lock(&s->ck_mu);
	for (;;) {
		while (!s->ck_stop && s->wal_pages < WAL_CHECKPOINT_PAGES)
			pthread_cond_wait(&s->ck_cv, &s->ck_mu);
		if (s->ck_stop)
			break;
		s->wal_pages = 0;
		pthread_mutex_unlock(&s->ck_mu);
		/* PASSIVE: copies what no reader still needs, waits for no one, holds no
		 * writer; the WAL starts over at the next commit once all of it is copied. */
		if (sqlite3_wal_checkpoint_v2(s->ck, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL)
		    != SQLITE_OK)
			log_warn("store: checkpoint: %s", sqlite3_errmsg(s->ck));
		pthread_mutex_lock(&s->ck_mu);
	}
	pthread_mutex_unlock(&s->ck_mu);
	return NULL;
}

static enum el_err
sq_read_tx(struct conn *c, bool on)
{
	if (run(c, on ? "BEGIN" : "COMMIT") != SQLITE_OK)
		return dberr(c->db, on ? "begin a read" : "end a read");
	return EL_OK;
}

static enum el_err
sq_checkpointer_start(struct store *base)
{
	struct sqlite_store *s = sq(base);

	/* A first read: until it has looked, a connection does not know the file is in WAL
	 * mode, and its checkpoints do nothing. */
	if (sqlite3_open_v2(s->path, &s->ck, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
	    NULL) != SQLITE_OK || sqlite3_exec(s->ck, "SELECT count(*) FROM sqlite_master",
	    NULL, NULL, NULL) != SQLITE_OK) {
		dberr(s->ck, "open the checkpointer");
		sqlite3_close(s->ck);
		s->ck = NULL;
		return EL_EDB;
	}
	pthread_mutex_lock(&s->ck_mu);
	if (pthread_create(&s->ck_thread, NULL, checkpointer, s) != 0) {
		pthread_mutex_unlock(&s->ck_mu);
		sqlite3_close(s->ck);
		s->ck = NULL;
		return EL_ENOMEM;
	}
	s->ck_started = true;
	pthread_mutex_unlock(&s->ck_mu);
	return EL_OK;
}

/* ---- group commit ---- */

/*
 * Transactions are group-committed. Each is a savepoint in one SQLite transaction (the
 * group), taken and released under the writer's lock as before; at its commit the thread
 * lets go of the lock and waits for the group's COMMIT, which the first waiter to find
 * none under way performs for everyone whose savepoint it holds: one fsync for all the
 * transactions that arrived while the previous group synced. Other connections see a
 * transaction only at its group's COMMIT, and store_commit() returns only after it, so
 * what a caller was told is committed is on disk, as with a COMMIT each. A group that
 * fails fails every member.
 *
 * The leader first lets in the transactions already waiting for the writer's lock (up to
 * GROUP_MAX members, for at most GROUP_WAIT_MS): under load they would otherwise each
 * start a group of one or two right after it, and every group writes the pages its
 * members share (the indexes' last leaves) and syncs once more.
 *
 * A group of relaxed transactions alone (API nonce claims, mail claimed or marked sent)
 * commits with synchronous=NORMAL: no fsync. They may join any group; another transaction
 * waits for a relaxed group to end and starts a synced one, so nothing but relaxed writes
 * is ever visible before it is on disk.
 */
static void
group_ended(struct sqlite_store *s)
{
	pthread_mutex_lock(&s->gmu);
	s->commits++;
	pthread_cond_broadcast(&s->gcv);
	pthread_mutex_unlock(&s->gmu);
}

/* A transaction the leader may be waiting for joined the group, ended, or waits for the
 * group to end (gmu held). */
static void
group_event(struct sqlite_store *s)
{
	s->events++;
	if (s->leader_waits)
		pthread_cond_signal(&s->lcv);
}

/* Called with mu held once, returns with it held: a relaxed group open now has ended. */
static void
wait_relaxed_group(struct sqlite_store *s)
{
	uint64_t seen;

	while (s->group_open && s->group_relaxed) {
		s->waiting++;
		pthread_mutex_lock(&s->gmu);
		seen = s->commits;
		group_event(s);
		pthread_mutex_unlock(&s->gmu);
		unlock(s);
		pthread_mutex_lock(&s->gmu);
		while (s->commits == seen)
			pthread_cond_wait(&s->gcv, &s->gmu);
		pthread_mutex_unlock(&s->gmu);
		lock(s);
		s->waiting--;
	}
}

static enum el_err
begin_group(struct store *base, bool relaxed)
{
	struct sqlite_store *s = sq(base);
	struct conn *w = &s->wconn;

	if (!relaxed)
		wait_relaxed_group(s);
	if (s->group_open && sqlite3_get_autocommit(w->db))
		s->group_lost = true;   /* rolled back under us: its members will fail */
	if (s->group_lost) {
		store_note("the store's last commit failed: try again");
		return EL_EDB;
	}
	if (!s->group_open) {
		/* While a transaction waits, claims open synced groups: it cannot starve. */
		relaxed = relaxed && s->waiting == 0;
		if (relaxed != s->group_relaxed &&
		    run(w, relaxed ? "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL")
		    != SQLITE_OK)
			return dberr(w->db, "synchronous");
		s->group_relaxed = relaxed;
		if (run(w, "BEGIN IMMEDIATE") != SQLITE_OK)
			return dberr(w->db, "begin");
		s->group_open = true;
	}
	if (run(w, "SAVEPOINT tx") != SQLITE_OK)
		return dberr(w->db, "savepoint");
	return EL_OK;
}

static enum el_err
sq_begin(struct store *base, bool relaxed)
{
	struct sqlite_store *s = sq(base);
	enum el_err r;

	if ((r = begin_group(base, relaxed)) != EL_OK) {
		pthread_mutex_lock(&s->gmu);
		group_event(s);
		pthread_mutex_unlock(&s->gmu);
	}
	return r;
}

/* Undoes the transaction in progress (its savepoint), leaving the group's others. A
 * group left with no member (none has released a savepoint into it) ends here. */
static void
sq_rollback(struct store *base)
{
	struct sqlite_store *s = sq(base);
	struct conn *w = &s->wconn;

	if (sqlite3_get_autocommit(w->db))
		s->group_lost = s->group_open;
	else if (run(w, "ROLLBACK TO tx") != SQLITE_OK || run(w, "RELEASE tx") != SQLITE_OK)
		s->group_lost = true;
	if (s->members == NULL && s->group_open) {
		if (sqlite3_get_autocommit(w->db) == 0)
			run(w, "ROLLBACK");
		s->group_open = s->group_lost = false;
		group_ended(s);
	}
	pthread_mutex_lock(&s->gmu);
	group_event(s);
	pthread_mutex_unlock(&s->gmu);
}

/* The leader, mu held once: while transactions wait for mu to join the group (and none
 * waits for this relaxed group to end), it lets go of mu until one of them has joined or
 * ended. Returns with mu held. */
static void
let_in_waiters(struct sqlite_store *s)
{
	struct timespec until;
	uint64_t seen;
	bool joined;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += GROUP_WAIT_MS * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	while (s->group_open && !s->group_lost && s->waiting == 0 &&
	    s->nmembers < GROUP_MAX && atomic_load(&s->base.entering) > 0) {
		pthread_mutex_lock(&s->gmu);
		seen = s->events;
		unlock(s);
		s->leader_waits = true;
		while (s->events == seen &&
		    pthread_cond_timedwait(&s->lcv, &s->gmu, &until) != ETIMEDOUT)
			;
		s->leader_waits = false;
		joined = s->events != seen;
		pthread_mutex_unlock(&s->gmu);
		lock(s);
		if (!joined)   /* timed out: commit what has joined */
			break;
	}
}

/* The leader: commits the group (everything under the savepoints released so far) and
 * tells its members. Called without any lock. */
static void
group_commit(struct sqlite_store *s)
{
	struct conn *w = &s->wconn;
	struct member *m, *next;
	enum el_err r = EL_OK;

	lock(s);
	let_in_waiters(s);
	m = s->members;
	s->members = NULL;
	s->nmembers = 0;
	if (s->group_open) {
		if (s->group_lost || sqlite3_get_autocommit(w->db)) {
			store_note("the store rolled the transaction back");
			r = EL_EDB;
		} else if (run(w, "COMMIT") != SQLITE_OK)
			r = dberr(w->db, "commit");
		if (r != EL_OK && !sqlite3_get_autocommit(w->db))
			run(w, "ROLLBACK");
	}
	s->group_open = s->group_lost = false;
	unlock(s);
	pthread_mutex_lock(&s->gmu);
	for (; m != NULL; m = next) {
		next = m->next;
		m->r = r;
		m->done = true;   /* its thread may return once gmu is free */
	}
	s->committing = false;
	s->commits++;
	pthread_cond_broadcast(&s->gcv);
	pthread_mutex_unlock(&s->gmu);
}

static enum el_err
sq_commit(struct store *base)
{
	struct sqlite_store *s = sq(base);
	struct member me = {EL_OK, false, NULL};
	bool led = false;

	if (run(&s->wconn, "RELEASE tx") != SQLITE_OK) {
		dberr(s->wconn.db, "release");
		sq_rollback(base);
		unlock(s);
		return EL_EDB;
	}
	me.next = s->members;
	s->members = &me;
	s->nmembers++;
	unlock(s);
	pthread_mutex_lock(&s->gmu);
	group_event(s);
	while (!me.done) {
		if (s->committing) {
			pthread_cond_wait(&s->gcv, &s->gmu);
			continue;
		}
		s->committing = true;
		pthread_mutex_unlock(&s->gmu);
		group_commit(s);
		led = true;
		pthread_mutex_lock(&s->gmu);
	}
	pthread_mutex_unlock(&s->gmu);
	if (me.r != EL_OK && !led)   /* the leader's thread has the reason */
		store_note("the store could not commit");
	return me.r;
}

/* ---- open and close ---- */

static int
reader_open(const char *path, struct conn *c)
{
	if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL)
	    != SQLITE_OK || sqlite3_exec(c->db, "PRAGMA query_only=1; PRAGMA foreign_keys=ON;"
	    "SELECT count(*) FROM sqlite_master;", NULL, NULL, NULL) != SQLITE_OK) {
		if (c->db != NULL)
			dberr(c->db, "open a reader");
		sqlite3_close(c->db);
		c->db = NULL;
		return -1;
	}
	sqlite3_busy_timeout(c->db, 5000);
	return 0;
}

/* All readers or none: a store without them reads through the writer, as one would.
 * Readers are opened with the store: a sandboxed process cannot open files later. */
static void
readers_open(struct sqlite_store *s)
{
	int i;

	for (i = 0; i < STORE_READERS; i++)
		if (reader_open(s->path, &s->rconn[i]) != 0)
			break;
	if (i == STORE_READERS) {
		for (i = 0; i < STORE_READERS; i++)
			s->base.rd[i] = &s->rconn[i];
		return;
	}
	log_warn("store: %s: reads go through the writer (a reader did not open)", s->path);
	while (i > 0)
		conn_close(&s->rconn[--i]);
}

static void
sq_close(struct store *base)
{
	struct sqlite_store *s = sq(base);
	bool started;
	int i;

	pthread_mutex_lock(&s->ck_mu);
	s->ck_stop = true;
	pthread_cond_signal(&s->ck_cv);
	started = s->ck_started;
	pthread_mutex_unlock(&s->ck_mu);
	if (started)
		pthread_join(s->ck_thread, NULL);
	sqlite3_close(s->ck);
	for (i = 0; i < STORE_READERS; i++)
		conn_close(&s->rconn[i]);
	conn_close(&s->wconn);
	pthread_mutex_destroy(&s->gmu);
	pthread_cond_destroy(&s->gcv);
	pthread_cond_destroy(&s->lcv);
	pthread_mutex_destroy(&s->ck_mu);
	pthread_cond_destroy(&s->ck_cv);
	store_fini(&s->base);
	free(s->path);
	free(s);
}

static const struct store_backend sqlite_backend = {
	.name = "sqlite",
	.version_sql = "PRAGMA user_version",
	.begin = sq_begin,
	.commit = sq_commit,
	.rollback = sq_rollback,
	.prepare = sq_prepare,
	.step = sq_step,
	.isnull = sq_isnull,
	.text = sq_text,
	.int64 = sq_int64,
	.blob = sq_blob,
	.changes = sq_changes,
	.errmsg = sq_errmsg,
	.done = sq_done,
	.checkpointer_start = sq_checkpointer_start,
	.read_tx = sq_read_tx,
	.claim_lock = "",
	.close = sq_close,
};

/* SQLite counts its allocations under one global mutex unless told not to: every
 * thread's queries then queue on it. Nothing here reads those counts. Only takes effect
 * before SQLite's first use in the process (later calls are refused, harmlessly). */
static void
sqlite_setup(void)
{
	(void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

enum el_err
store_sqlite_open(const char *path, int version, struct store **out, struct el_why *w)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	struct sqlite_store *s;
	sqlite3 *db;
	int fd;
	enum el_err r;

	pthread_once(&once, sqlite_setup);
	/* Create the file 0600 ourselves so SQLite never makes it world-readable. */
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
		return el_fail(w, EL_EIO, "%s: %s", path, strerror(errno));
	close(fd);
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return EL_ENOMEM;
	if ((s->path = strdup(path)) == NULL) {
		free(s);
		return EL_ENOMEM;
	}
	store_init(&s->base, &sqlite_backend);
	s->base.w = &s->wconn;
	pthread_mutex_init(&s->gmu, NULL);
	pthread_cond_init(&s->gcv, NULL);
	pthread_cond_init(&s->lcv, NULL);
	pthread_mutex_init(&s->ck_mu, NULL);
	pthread_cond_init(&s->ck_cv, NULL);
	if (sqlite3_open_v2(path, &s->wconn.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX,
	    NULL) != SQLITE_OK) {
		r = el_fail(w, EL_EDB, "%s: %s", path, s->wconn.db ?
		    sqlite3_errmsg(s->wconn.db) : "open failed");
		goto fail;
	}
	db = s->wconn.db;
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON;"
	    "PRAGMA synchronous=FULL; PRAGMA secure_delete=ON;", NULL, NULL, NULL) != SQLITE_OK) {
		r = el_fail(w, EL_EDB, "%s: %s", path, sqlite3_errmsg(db));
		goto fail;
	}
	if ((r = migrate(db, version, w)) != EL_OK)
		goto fail;
	sqlite3_wal_hook(db, wal_hook, s);
	readers_open(s);
	*out = &s->base;
	return EL_OK;
fail:
	sq_close(&s->base);
	return r;
}
