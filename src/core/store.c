/*
 * store.c — owns the SQLite database: schema and migrations, and every read and write of
 * broker state. WAL, foreign keys on, busy timeout.
 *
 * One writer connection guarded by a recursive mutex: store_begin() takes it for the whole
 * transaction, and a thread inside its own transaction reads through it too (it must see
 * what it wrote). Every other read goes to a pool of read-only connections, so WAL readers
 * never wait for a writer. API nonces are group-committed (store_nonce_claim): the calls
 * that arrive while one batch commits go in the next, with synchronous=NORMAL.
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
#include <unistd.h>

#include "elevate/lifecycle.h"
#include "elevate/log.h"
#include "elevate/store.h"

#define STORE_READERS 4
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

/* A committed transaction waiting for its group's commit; on its thread's stack. */
struct member {
	enum el_err r;
	bool done;
	struct member *next;
};

struct store {
	sqlite3 *db;            /* the writer */
	pthread_mutex_t mu;
	int in_tx;
	int poisoned;

	char *path;
	pthread_mutex_t rd_mu;
	pthread_cond_t rd_cv;
	sqlite3 *rd[STORE_READERS];   /* all open, or rd[0] NULL */
	bool rd_busy[STORE_READERS];
	struct stmt_cache wcache, rcache[STORE_READERS];

	/* The group: transactions are savepoints in one SQLite transaction, committed (and
	 * synced) once for all of them. Under mu: */
	bool group_open;        /* BEGIN done, COMMIT not yet */
	bool group_lost;        /* SQLite rolled it back by itself (I/O error, full disk) */
	bool group_relaxed;     /* synchronous=NORMAL: only nonce claims may join it */
	int waiting;            /* transactions waiting for a relaxed group to end */
	struct member *members; /* released savepoints waiting for the COMMIT */
	/* Under gmu: */
	pthread_mutex_t gmu;
	pthread_cond_t gcv;
	bool committing;        /* a leader is committing (or waiting for mu to) */
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

/* A WAL this long is checkpointed by the checkpointer; without one, or when it falls this
 * far behind, by the commit that makes it so long (SQLite's own default behaviour). */
#define WAL_CHECKPOINT_PAGES 1000
#define WAL_BACKSTOP_PAGES 20000

/* The store whose transaction this thread has open: its reads go to the writer. */
static _Thread_local struct store *tx_store;

/* Migrations: entry N brings the schema from version N to N+1. Never edit a shipped one. */
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
};

#define NMIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

static void
lock(struct store *s)
{
	pthread_mutex_lock(&s->mu);
}

static void
unlock(struct store *s)
{
	pthread_mutex_unlock(&s->mu);
}

/* The last failure of this thread, for the messages callers build (503 "unavailable"). */
static _Thread_local char last_error[160];

static enum el_err
dberr(sqlite3 *db, const char *what)
{
	const char *msg = sqlite3_errmsg(db);

	log_err("store: %s: %s", what, msg);
	el_strlcpy(last_error, msg, sizeof(last_error));
	return EL_EDB;
}

const char *
store_errmsg(void)
{
	return last_error[0] ? last_error : "the database does not answer";
}

static sqlite3 *
reader_open(struct store *s)
{
	sqlite3 *db = NULL;

	if (sqlite3_open_v2(s->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL)
	    != SQLITE_OK || sqlite3_exec(db, "PRAGMA query_only=1; PRAGMA foreign_keys=ON;"
	    "SELECT count(*) FROM sqlite_master;", NULL, NULL, NULL) != SQLITE_OK) {
		if (db != NULL)
			dberr(db, "open a reader");
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, 5000);
	return db;
}

/*
 * The connection a read uses: the writer, locked, when this thread is inside its own
 * transaction; otherwise a free reader, waiting for one when all are busy (each read is
 * one short statement). Readers are opened with the store (a sandboxed engine cannot open
 * files later); without them (one failed to open) reads go to the writer.
 */
static sqlite3 *
rd_get(struct store *s)
{
	sqlite3 *db = NULL;
	int i;

	if (tx_store == s || s->rd[0] == NULL) {
		lock(s);
		return s->db;
	}
	pthread_mutex_lock(&s->rd_mu);
	for (;;) {
		for (i = 0; i < STORE_READERS && s->rd_busy[i]; i++)
			;
		if (i < STORE_READERS)
			break;
		pthread_cond_wait(&s->rd_cv, &s->rd_mu);
	}
	s->rd_busy[i] = true;
	db = s->rd[i];
	pthread_mutex_unlock(&s->rd_mu);
	return db;
}

/* All readers or none: a store without them reads through the writer, as one would. */
static void
readers_open(struct store *s)
{
	int i;

	for (i = 0; i < STORE_READERS; i++)
		if ((s->rd[i] = reader_open(s)) == NULL)
			break;
	if (i == STORE_READERS)
		return;
	log_warn("store: %s: reads go through the writer (a reader did not open)", s->path);
	while (i > 0) {
		sqlite3_close(s->rd[--i]);
		s->rd[i] = NULL;
	}
}

static void
rd_put(struct store *s, sqlite3 *db)
{
	int i;

	if (db == s->db) {
		unlock(s);
		return;
	}
	pthread_mutex_lock(&s->rd_mu);
	for (i = 0; i < STORE_READERS; i++)
		if (s->rd[i] == db)
			s->rd_busy[i] = false;
	pthread_cond_signal(&s->rd_cv);
	pthread_mutex_unlock(&s->rd_mu);
}

/*
 * Steps st to its end, calling fn on every row. Readers fail closed: a loop that stops
 * for anything but SQLITE_DONE is an error, never a shorter list (fewer rows than there
 * are is how revocations get lost).
 */
static enum el_err
each_row(sqlite3 *db, sqlite3_stmt *st, const char *what,
    enum el_err (*fn)(sqlite3_stmt *, void *), void *arg)
{
	enum el_err r;
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if ((r = fn(st, arg)) != EL_OK)
			return r;
	if (rc != SQLITE_DONE)
		return dberr(db, what);
	return EL_OK;
}

/* One row of a single-row query: EL_OK with a row, EL_ENOENT without, EL_EDB on failure. */
static enum el_err
one_row(sqlite3 *db, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		return EL_OK;
	return rc == SQLITE_DONE ? EL_ENOENT : dberr(db, what);
}

/*
 * Binds arguments by a format: 't' text (NULL binds NULL), 'i' int64, 'z' int64 where 0
 * binds NULL, 'b' blob (pointer, size_t length).
 */
static enum el_err
vbind(sqlite3 *db, sqlite3_stmt *st, const char *fmt, va_list ap)
{
	int i, rc = SQLITE_OK;

	for (i = 0; fmt != NULL && fmt[i] != '\0'; i++) {
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
		if (rc != SQLITE_OK)
			return dberr(db, "bind");
	}
	return EL_OK;
}

static struct stmt_cache *
cache_of(struct store *s, sqlite3 *db)
{
	int i;

	if (db == s->db)
		return &s->wcache;
	for (i = 0; i < STORE_READERS; i++)
		if (db == s->rd[i])
			return &s->rcache[i];
	return NULL;
}

static uint32_t
sql_hash(const char *sql)
{
	uint32_t h = 2166136261u;

	while (*sql != '\0')
		h = (h ^ (unsigned char)*sql++) * 16777619u;
	return h;
}

/* A statement for sql on db: the connection's cached one, reset, when it is free;
 * otherwise a new one, cached when there is room. Give it back with unprepare(). */
static enum el_err
stmt_get(struct store *s, sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
	struct stmt_cache *c = cache_of(s, db);
	uint32_t h = sql_hash(sql);
	int i;

	for (i = 0; c != NULL && i < c->n; i++)
		if (c->v[i].hash == h && !c->v[i].out && strcmp(c->v[i].sql, sql) == 0) {
			c->v[i].out = true;
			*st = c->v[i].st;
			return EL_OK;
		}
	if (c != NULL && c->n < STMT_CACHE) {
		if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL)
		    != SQLITE_OK)
			return dberr(db, sql);
		if ((c->v[c->n].sql = strdup(sql)) == NULL) {
			sqlite3_finalize(*st);
			return EL_ENOMEM;
		}
		c->v[c->n].hash = h;
		c->v[c->n].st = *st;
		c->v[c->n].out = true;
		c->n++;
		return EL_OK;
	}
	if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK)
		return dberr(db, sql);
	return EL_OK;
}

static void
unprepare(struct store *s, sqlite3 *db, sqlite3_stmt *st)
{
	struct stmt_cache *c = cache_of(s, db);
	int i;

	if (st == NULL)
		return;
	for (i = 0; c != NULL && i < c->n; i++)
		if (c->v[i].st == st) {
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			c->v[i].out = false;
			return;
		}
	sqlite3_finalize(st);
}

static void
cache_free(struct stmt_cache *c)
{
	int i;

	for (i = 0; i < c->n; i++) {
		sqlite3_finalize(c->v[i].st);
		free(c->v[i].sql);
	}
	c->n = 0;
}

/* A statement without parameters or rows (BEGIN, COMMIT, a PRAGMA) through the cache. */
static int
run(struct store *s, sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	int rc;

	if (stmt_get(s, db, sql, &st) != EL_OK)
		return SQLITE_ERROR;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		;
	unprepare(s, db, st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static enum el_err
prepare(struct store *s, sqlite3 *db, sqlite3_stmt **st, const char *sql, const char *fmt,
    ...)
{
	va_list ap;
	enum el_err r;

	if ((r = stmt_get(s, db, sql, st)) != EL_OK)
		return r;
	va_start(ap, fmt);
	r = vbind(db, *st, fmt, ap);
	va_end(ap);
	if (r != EL_OK) {
		unprepare(s, db, *st);
		*st = NULL;
	}
	return r;
}

static enum el_err own_begin(struct store *s, bool *own);
static enum el_err own_end(struct store *s, bool own, enum el_err r);

/* Runs a statement that returns no rows, on the writer, in the caller's transaction or
 * in one of its own. EL_EEXIST on a constraint violation. */
static enum el_err
exec(struct store *s, const char *sql, const char *fmt, ...)
{
	sqlite3_stmt *st;
	va_list ap;
	enum el_err r;
	bool own;
	int rc;

	if ((r = own_begin(s, &own)) != EL_OK)
		return r;
	lock(s);
	if ((r = stmt_get(s, s->db, sql, &st)) != EL_OK) {
		unlock(s);
		return own_end(s, own, r);
	}
	va_start(ap, fmt);
	r = vbind(s->db, st, fmt, ap);
	va_end(ap);
	if (r == EL_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_CONSTRAINT)
			r = EL_EEXIST;
		else if (rc != SQLITE_DONE)
			r = dberr(s->db, sql);
	}
	unprepare(s, s->db, st);
	unlock(s);
	return own_end(s, own, r);
}

/* Room for element n of an array of elem-sized items with room for *cap: the same
 * array, or a larger one (doubling), or NULL when out of memory (v is then untouched). */
static void *
grow(void *v, size_t *cap, size_t n, size_t elem)
{
	size_t ncap;
	void *nv;

	if (n < *cap)
		return v;
	ncap = *cap ? *cap * 2 : 16;
	if ((nv = realloc(v, ncap * elem)) == NULL)
		return NULL;
	*cap = ncap;
	return nv;
}

static char *
col_str(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t ? strdup((const char *)t) : NULL;
}

static void
col_copy(sqlite3_stmt *st, int i, char *dst, size_t len)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	el_strlcpy(dst, t ? (const char *)t : "", len);
}

static int
user_version(struct store *s)
{
	sqlite3_stmt *st;
	int v = -1;

	if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* Rows whose foreign key points nowhere (a migration must leave none); -1 on error. */
static int
fk_violations(struct store *s)
{
	sqlite3_stmt *st;
	int n = 0, rc;

	if (sqlite3_prepare_v2(s->db, "PRAGMA foreign_key_check", -1, &st, NULL) != SQLITE_OK)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		n++;
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? n : -1;
}

static enum el_err
migrate(struct store *s, int target, struct el_why *w)
{
	char sql[64];
	int v = user_version(s);

	if (v < 0)
		return el_fail(w, EL_EDB, "cannot read schema version: %s", sqlite3_errmsg(s->db));
	if (v > NMIGRATIONS)
		return el_fail(w, EL_EDB, "database schema version %d is newer than this "
		    "elevated (%d): upgrade elevated", v, NMIGRATIONS);
	/* A table rebuild drops a table others reference: SQLite's way is foreign keys off
	 * (outside any transaction), rebuild, check, on again. */
	if (v < target && sqlite3_exec(s->db, "PRAGMA foreign_keys=OFF", NULL, NULL, NULL)
	    != SQLITE_OK)
		return el_fail(w, EL_EDB, "migration: %s", sqlite3_errmsg(s->db));
	while (v < target) {
		if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
			return el_fail(w, EL_EDB, "migration: %s", sqlite3_errmsg(s->db));
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
		if (sqlite3_exec(s->db, migrations[v], NULL, NULL, NULL) != SQLITE_OK ||
		    sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK ||
		    fk_violations(s) != 0) {
			el_fail(w, EL_EDB, "migration %d -> %d: %s", v, v + 1, sqlite3_errmsg(s->db));
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
			return EL_EDB;
		}
		if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
			return el_fail(w, EL_EDB, "migration commit: %s", sqlite3_errmsg(s->db));
		if (v > 0)
			log_info("store: migrated schema %d -> %d", v, v + 1);
		v++;
	}
	if (sqlite3_exec(s->db, "PRAGMA foreign_keys=ON", NULL, NULL, NULL) != SQLITE_OK)
		return el_fail(w, EL_EDB, "migration: %s", sqlite3_errmsg(s->db));
	return EL_OK;
}

/* After each commit on the writer, with the WAL's length in frames. */
static int
wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
	struct store *s = arg;
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
	struct store *s = arg;

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

enum el_err
store_checkpointer_start(struct store *s)
{
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

enum el_err
store_open_version(const char *path, int version, struct store **out, struct el_why *w)
{
	struct store *s;
	pthread_mutexattr_t ma;
	int fd;
	enum el_err r;

	if (version < 1 || version > NMIGRATIONS)
		return el_fail(w, EL_EINVAL, "no schema version %d", version);
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
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&s->mu, &ma);
	pthread_mutexattr_destroy(&ma);
	pthread_mutex_init(&s->rd_mu, NULL);
	pthread_cond_init(&s->rd_cv, NULL);
	pthread_mutex_init(&s->gmu, NULL);
	pthread_cond_init(&s->gcv, NULL);
	pthread_mutex_init(&s->ck_mu, NULL);
	pthread_cond_init(&s->ck_cv, NULL);
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX,
	    NULL) != SQLITE_OK) {
		r = el_fail(w, EL_EDB, "%s: %s", path, s->db ? sqlite3_errmsg(s->db) : "open failed");
		goto fail;
	}
	sqlite3_busy_timeout(s->db, 5000);
	if (sqlite3_exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON;"
	    "PRAGMA synchronous=FULL; PRAGMA secure_delete=ON;", NULL, NULL, NULL) != SQLITE_OK) {
		r = el_fail(w, EL_EDB, "%s: %s", path, sqlite3_errmsg(s->db));
		goto fail;
	}
	if ((r = migrate(s, version, w)) != EL_OK)
		goto fail;
	sqlite3_wal_hook(s->db, wal_hook, s);
	readers_open(s);
	*out = s;
	return EL_OK;
fail:
	store_close(s);
	return r;
}

enum el_err
store_open(const char *path, struct store **out, struct el_why *w)
{
	return store_open_version(path, NMIGRATIONS, out, w);
}

void
store_close(struct store *s)
{
	bool started;
	int i;

	if (s == NULL)
		return;
	pthread_mutex_lock(&s->ck_mu);
	s->ck_stop = true;
	pthread_cond_signal(&s->ck_cv);
	started = s->ck_started;
	pthread_mutex_unlock(&s->ck_mu);
	if (started)
		pthread_join(s->ck_thread, NULL);
	sqlite3_close(s->ck);
	for (i = 0; i < STORE_READERS; i++) {
		cache_free(&s->rcache[i]);
		sqlite3_close(s->rd[i]);
	}
	cache_free(&s->wcache);
	sqlite3_close(s->db);
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->rd_mu);
	pthread_cond_destroy(&s->rd_cv);
	pthread_mutex_destroy(&s->gmu);
	pthread_cond_destroy(&s->gcv);
	pthread_mutex_destroy(&s->ck_mu);
	pthread_cond_destroy(&s->ck_cv);
	free(s->path);
	free(s);
}

int
store_schema_version(struct store *s)
{
	int v;

	lock(s);
	v = user_version(s);
	unlock(s);
	return v;
}

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
 * A group of relaxed transactions alone (API nonce claims, mail marked sent) commits with
 * synchronous=NORMAL: no fsync. They may join any group; another transaction waits for a
 * relaxed group to end and starts a synced one, so nothing but relaxed writes is ever
 * visible before it is on disk.
 */
static void
group_ended(struct store *s)
{
	pthread_mutex_lock(&s->gmu);
	s->commits++;
	pthread_cond_broadcast(&s->gcv);
	pthread_mutex_unlock(&s->gmu);
}

/* Called with mu held once, returns with it held: a relaxed group open now has ended. */
static void
wait_relaxed_group(struct store *s)
{
	uint64_t seen;

	while (s->group_open && s->group_relaxed) {
		s->waiting++;
		pthread_mutex_lock(&s->gmu);
		seen = s->commits;
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
group_join(struct store *s, bool relaxed)
{
	if (!relaxed)
		wait_relaxed_group(s);
	if (s->group_open && sqlite3_get_autocommit(s->db))
		s->group_lost = true;   /* rolled back under us: its members will fail */
	if (s->group_lost) {
		el_strlcpy(last_error, "the store's last commit failed: try again",
		    sizeof(last_error));
		return EL_EDB;
	}
	if (!s->group_open) {
		/* While a transaction waits, claims open synced groups: it cannot starve. */
		relaxed = relaxed && s->waiting == 0;
		if (relaxed != s->group_relaxed &&
		    run(s, s->db, relaxed ? "PRAGMA synchronous=NORMAL" :
		    "PRAGMA synchronous=FULL") != SQLITE_OK)
			return dberr(s->db, "synchronous");
		s->group_relaxed = relaxed;
		if (run(s, s->db, "BEGIN IMMEDIATE") != SQLITE_OK)
			return dberr(s->db, "begin");
		s->group_open = true;
	}
	if (run(s, s->db, "SAVEPOINT tx") != SQLITE_OK)
		return dberr(s->db, "savepoint");
	return EL_OK;
}

static enum el_err
begin(struct store *s, bool relaxed)
{
	enum el_err r;

	lock(s);
	if (s->in_tx > 0) {
		s->in_tx++;
		return EL_OK;   /* nested: part of the outer transaction */
	}
	if ((r = group_join(s, relaxed)) != EL_OK) {
		unlock(s);
		return r;
	}
	s->in_tx = 1;
	tx_store = s;
	return EL_OK;
}

enum el_err
store_begin(struct store *s)
{
	return begin(s, false);
}

enum el_err
store_begin_relaxed(struct store *s)
{
	return begin(s, true);
}

/* Undoes the transaction in progress (its savepoint), leaving the group's others. A
 * group left with no member (none has released a savepoint into it) ends here. */
static void
undo(struct store *s)
{
	if (sqlite3_get_autocommit(s->db))
		s->group_lost = s->group_open;
	else if (run(s, s->db, "ROLLBACK TO tx") != SQLITE_OK ||
	    run(s, s->db, "RELEASE tx") != SQLITE_OK)
		s->group_lost = true;
	s->poisoned = 0;
	s->in_tx = 0;
	tx_store = NULL;
	if (s->members == NULL && s->group_open) {
		if (sqlite3_get_autocommit(s->db) == 0)
			run(s, s->db, "ROLLBACK");
		s->group_open = s->group_lost = false;
		group_ended(s);
	}
}

/* The leader: commits the group (everything under the savepoints released so far) and
 * tells its members. Called without any lock. */
static void
group_commit(struct store *s)
{
	struct member *m, *next;
	enum el_err r = EL_OK;

	lock(s);
	m = s->members;
	s->members = NULL;
	if (s->group_open) {
		if (s->group_lost || sqlite3_get_autocommit(s->db)) {
			el_strlcpy(last_error, "the store rolled the transaction back",
			    sizeof(last_error));
			r = EL_EDB;
		} else if (run(s, s->db, "COMMIT") != SQLITE_OK)
			r = dberr(s->db, "commit");
		if (r != EL_OK && !sqlite3_get_autocommit(s->db))
			run(s, s->db, "ROLLBACK");
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

enum el_err
store_commit(struct store *s)
{
	struct member me = {EL_OK, false, NULL};
	bool led = false;

	if (s->in_tx > 1) {
		s->in_tx--;
		unlock(s);
		return EL_OK;
	}
	if (s->poisoned || run(s, s->db, "RELEASE tx") != SQLITE_OK) {
		if (!s->poisoned)
			dberr(s->db, "release");
		undo(s);
		unlock(s);
		return EL_EDB;
	}
	s->in_tx = 0;
	tx_store = NULL;
	me.next = s->members;
	s->members = &me;
	unlock(s);
	pthread_mutex_lock(&s->gmu);
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
		el_strlcpy(last_error, "the store could not commit", sizeof(last_error));
	return me.r;
}

void
store_rollback(struct store *s)
{
	/* A nested rollback poisons the outer transaction: roll the whole thing back. */
	if (s->in_tx > 1) {
		s->in_tx--;
		s->poisoned = 1;
	} else if (s->in_tx == 1)
		undo(s);
	unlock(s);
}

/* A write outside the caller's transaction is a transaction of its own. */
static enum el_err
own_begin(struct store *s, bool *own)
{
	*own = tx_store != s;
	return *own ? store_begin(s) : EL_OK;
}

static enum el_err
own_end(struct store *s, bool own, enum el_err r)
{
	if (!own)
		return r;
	if (r == EL_OK || r == EL_EEXIST || r == EL_ESTATE) {
		enum el_err c = store_commit(s);
		return c != EL_OK ? c : r;
	}
	store_rollback(s);
	return r;
}

/* ---- requests ---- */

#define REQ_COLS "id, profile, requester, state, duration, reason, ticket, role_arn, region," \
	" created_at, pending_until, decided_at, window_start, window_end, ended_at," \
	" failure_code, failure_message, next_attempt_at, attempts, parent_id"

/* What reads of a request select: its columns, and the cohort written only by
 * store_request_cohort(). */
#define REQ_READ_COLS REQ_COLS ", cohort"

/* A row the lifecycle does not know (the CHECK keeps them out) is an error, not a guess. */
static enum el_err
read_request(sqlite3_stmt *st, struct store_request *r)
{
	int state;

	memset(r, 0, sizeof(*r));
	col_copy(st, 0, r->id, sizeof(r->id));
	col_copy(st, 1, r->profile, sizeof(r->profile));
	col_copy(st, 2, r->requester, sizeof(r->requester));
	if ((state = lifecycle_state_parse((const char *)sqlite3_column_text(st, 3))) < 0) {
		el_strlcpy(last_error, "a request row holds an unknown state", sizeof(last_error));
		log_err("store: request %s: unknown state %s", r->id,
		    (const char *)sqlite3_column_text(st, 3));
		return EL_EDB;
	}
	r->state = (enum req_state)state;
	r->duration = sqlite3_column_int64(st, 4);
	r->reason = col_str(st, 5);
	r->ticket = col_str(st, 6);
	r->role_arn = col_str(st, 7);
	r->region = col_str(st, 8);
	r->created_at = sqlite3_column_int64(st, 9);
	r->pending_until = sqlite3_column_int64(st, 10);
	r->decided_at = sqlite3_column_int64(st, 11);
	r->window_start = sqlite3_column_int64(st, 12);
	r->window_end = sqlite3_column_int64(st, 13);
	r->ended_at = sqlite3_column_int64(st, 14);
	r->failure_code = col_str(st, 15);
	r->failure_message = col_str(st, 16);
	r->next_attempt_at = sqlite3_column_int64(st, 17);
	r->attempts = sqlite3_column_int(st, 18);
	r->parent_id = col_str(st, 19);
	col_copy(st, 20, r->cohort, sizeof(r->cohort));
	return EL_OK;
}

void
store_request_free(struct store_request *r)
{
	if (r == NULL)
		return;
	free(r->reason);
	free(r->ticket);
	free(r->role_arn);
	free(r->region);
	free(r->failure_code);
	free(r->failure_message);
	free(r->parent_id);
	r->reason = r->ticket = r->role_arn = r->region = NULL;
	r->failure_code = r->failure_message = r->parent_id = NULL;
}

enum el_err
store_request_insert(struct store *s, const struct store_request *r)
{
	return exec(s, "INSERT INTO requests (" REQ_COLS ", updated_at) VALUES "
	    "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", "ttttittttiizzzzttzitz",
	    r->id, r->profile, r->requester, lifecycle_state_name(r->state), r->duration,
	    r->reason, r->ticket, r->role_arn, r->region, r->created_at, r->pending_until,
	    r->decided_at, r->window_start, r->window_end, r->ended_at, r->failure_code,
	    r->failure_message, r->next_attempt_at, (int64_t)r->attempts, r->parent_id,
	    r->created_at);
}

enum el_err
store_request_get(struct store *s, const char *id, struct store_request *r)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	enum el_err r2;

	db = rd_get(s);
	if ((r2 = prepare(s, db, &st, "SELECT " REQ_READ_COLS " FROM requests WHERE id = ?", "t",
	    id))
	    != EL_OK) {
		rd_put(s, db);
		return r2;
	}
	if ((r2 = one_row(db, st, "request get")) == EL_OK)
		r2 = read_request(st, r);
	unprepare(s, db, st);
	rd_put(s, db);
	return r2;
}

enum el_err
store_request_cas(struct store *s, const struct store_request *r, enum req_state from)
{
	enum el_err e;
	bool own;

	if ((e = own_begin(s, &own)) != EL_OK)
		return e;
	e = exec(s, "UPDATE requests SET state = ?, decided_at = ?, window_start = ?,"
	    " window_end = ?, ended_at = ?, failure_code = ?, failure_message = ?,"
	    " next_attempt_at = ?, attempts = ?, duration = ?, updated_at = ?"
	    " WHERE id = ? AND state = ?", "tzzzzttziiitt", lifecycle_state_name(r->state),
	    r->decided_at, r->window_start, r->window_end, r->ended_at, r->failure_code,
	    r->failure_message, r->next_attempt_at, (int64_t)r->attempts, r->duration, el_now(),
	    r->id, lifecycle_state_name(from));
	if (e == EL_OK && sqlite3_changes(s->db) != 1)
		e = EL_ESTATE;
	return own_end(s, own, e);
}

/* A growing array of elem-sized items, filled by a row callback. */
struct vec {
	void *v;
	size_t n, cap, elem;
};

static void *
vec_next(struct vec *a)
{
	void *nv;

	if ((nv = grow(a->v, &a->cap, a->n, a->elem)) == NULL)
		return NULL;
	a->v = nv;
	return (char *)a->v + a->n * a->elem;
}

static enum el_err
request_row(sqlite3_stmt *st, void *arg)
{
	struct vec *a = arg;
	struct store_request *r;
	enum el_err e;

	if ((r = vec_next(a)) == NULL)
		return EL_ENOMEM;
	if ((e = read_request(st, r)) != EL_OK)
		return e;
	a->n++;
	return EL_OK;
}

enum el_err
store_request_list(struct store *s, const struct store_filter *f, struct store_request **out,
    size_t *n)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	struct vec a = {NULL, 0, 0, sizeof(struct store_request)};
	struct store_request *v;
	enum el_err r;

	db = rd_get(s);
	r = prepare(s, db, &st, "SELECT " REQ_READ_COLS " FROM requests WHERE"
	    " (?1 IS NULL OR state = ?1)"
	    " AND (?2 IS NULL OR requester = ?2) AND (?3 IS NULL OR profile = ?3)"
	    " AND (?5 = 0 OR created_at >= ?5 OR window_end >= ?5"
	    "  OR (window_start IS NOT NULL AND ended_at IS NULL))"
	    " ORDER BY created_at DESC, rowid DESC LIMIT ?4", "tttii",
	    f->by_state ? lifecycle_state_name(f->state) : NULL, f->requester,
	    f->profile, (int64_t)(f->limit > 0 ? f->limit : 500), f->since);
	if (r == EL_OK) {
		r = each_row(db, st, "request list", request_row, &a);
		unprepare(s, db, st);
	}
	rd_put(s, db);
	v = a.v;
	if (r != EL_OK) {
		while (a.n > 0)
			store_request_free(&v[--a.n]);
		free(v);
		return r;
	}
	*out = v;
	*n = a.n;
	return EL_OK;
}

static enum el_err
string_row(sqlite3_stmt *st, void *arg)
{
	struct vec *a = arg;
	char **slot;

	if ((slot = vec_next(a)) == NULL || (*slot = col_str(st, 0)) == NULL)
		return EL_ENOMEM;
	a->n++;
	return EL_OK;
}

/* Collects the first text column of every row. */
static enum el_err
collect_strings(sqlite3 *db, sqlite3_stmt *st, char ***out, size_t *n)
{
	struct vec a = {NULL, 0, 0, sizeof(char *)};
	char **v;
	enum el_err r;

	r = each_row(db, st, "collect", string_row, &a);
	v = a.v;
	if (r != EL_OK) {
		while (a.n > 0)
			free(v[--a.n]);
		free(v);
		return r;
	}
	*out = v;
	*n = a.n;
	return EL_OK;
}

enum el_err
store_request_due(struct store *s, enum req_state state, const char *column, int64_t until,
    int limit, char ***ids, size_t *n)
{
	sqlite3 *db;
	/* A column name, and how a NULL in it counts: due at once, or never. */
	static const struct { const char *name, *cond; } cols[] = {
		{"pending_until", "COALESCE(pending_until, 0) <= ?2 ORDER BY pending_until"},
		{"window_end", "COALESCE(window_end, 0) <= ?2 ORDER BY window_end"},
		{"next_attempt_at", "COALESCE(next_attempt_at, 0) <= ?2 ORDER BY next_attempt_at"},
		{"retry_at", "next_attempt_at IS NOT NULL AND next_attempt_at <= ?2"
		    " ORDER BY next_attempt_at"},
	};
	char sql[256];
	sqlite3_stmt *st;
	enum el_err r;
	size_t i;

	for (i = 0; i < sizeof(cols) / sizeof(cols[0]); i++)
		if (strcmp(column, cols[i].name) == 0)
			break;
	if (i == sizeof(cols) / sizeof(cols[0]))
		return EL_EINVAL;
	snprintf(sql, sizeof(sql), "SELECT id FROM requests WHERE state = ?1 AND %s LIMIT ?3",
	    cols[i].cond);
	db = rd_get(s);
	if ((r = prepare(s, db, &st, sql, "tii", lifecycle_state_name(state), until, (int64_t)limit))
	    == EL_OK) {
		r = collect_strings(db, st, ids, n);
		unprepare(s, db, st);
	}
	rd_put(s, db);
	return r;
}

/* One int64 from a single-row aggregate; *t = dflt when it is NULL. */
static enum el_err
scalar(sqlite3 *db, sqlite3_stmt *st, const char *what, int64_t dflt, int64_t *t)
{
	enum el_err r = one_row(db, st, what);

	if (r == EL_ENOENT)
		return dberr(db, what);   /* an aggregate always has its row */
	if (r == EL_OK)
		*t = sqlite3_column_type(st, 0) == SQLITE_NULL ? dflt : sqlite3_column_int64(st, 0);
	return r;
}

/* scalar() of a query bound as prepare() binds, on a reader. */
static enum el_err
scalar_query(struct store *s, const char *what, int64_t dflt, int64_t *t, const char *sql,
    const char *fmt, ...)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	va_list ap;
	enum el_err r;

	db = rd_get(s);
	if ((r = stmt_get(s, db, sql, &st)) != EL_OK)
		goto out;
	va_start(ap, fmt);
	r = vbind(db, st, fmt, ap);
	va_end(ap);
	if (r == EL_OK)
		r = scalar(db, st, what, dflt, t);
	unprepare(s, db, st);
out:
	rd_put(s, db);
	return r;
}

enum el_err
store_next_deadline(struct store *s, int64_t warn_lead, int64_t *t)
{
	/* The warning's subquery walks requests_unwarned (a partial index: its WHERE must be
	 * written out as in the index) in window order and stops at the first row; the others
	 * take the MIN of an index on (state, column). */
	return scalar_query(s, "next deadline", INT64_MAX, t, "SELECT MIN(t) FROM ("
	    " SELECT * FROM (SELECT window_end - ?1 AS t FROM requests"
	    "  WHERE state = 'active' AND warned_at IS NULL AND ?1 > 0"
	    "  AND window_end - window_start > ?1 ORDER BY window_end LIMIT 1) UNION ALL"
	    " SELECT MIN(pending_until) AS t FROM requests WHERE state = ?2"
	    " UNION ALL SELECT MIN(window_end) FROM requests WHERE state = ?3"
	    " UNION ALL SELECT MIN(COALESCE(next_attempt_at, 0)) FROM requests"
	    "  WHERE state = ?4 OR state = ?5)", "itttt", warn_lead,
	    lifecycle_state_name(RS_PENDING), lifecycle_state_name(RS_ACTIVE),
	    lifecycle_state_name(RS_ENDING), lifecycle_state_name(RS_ACTIVATING));
}

enum el_err
store_extensions_in_flight(struct store *s, const char *parent_id, int64_t *sum)
{
	return scalar_query(s, "extensions in flight", 0, sum, "SELECT COALESCE(SUM(duration),"
	    " 0) FROM requests WHERE parent_id = ? AND state = ?", "tt", parent_id,
	    lifecycle_state_name(RS_ACTIVATING));
}

static enum el_err
count_row(sqlite3_stmt *st, void *arg)
{
	const char *k = (const char *)sqlite3_column_text(st, 0);

	if (k == NULL || json_object_set_new(arg, k, json_integer(sqlite3_column_int64(st, 1))))
		return EL_ENOMEM;
	return EL_OK;
}

static json_t *
group_counts(struct store *s, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	json_t *o = json_object();
	enum el_err r = o ? EL_OK : EL_ENOMEM;

	db = rd_get(s);
	if (r == EL_OK && (r = prepare(s, db, &st, sql, NULL)) == EL_OK) {
		r = each_row(db, st, "counts", count_row, o);
		unprepare(s, db, st);
	}
	rd_put(s, db);
	if (r != EL_OK) {
		json_decref(o);
		return NULL;
	}
	return o;
}

enum el_err
store_request_to_warn(struct store *s, int64_t now, int64_t warn_lead, int limit, char ***ids,
    size_t *n)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	enum el_err r;

	db = rd_get(s);
	if ((r = prepare(s, db, &st, "SELECT id FROM requests WHERE state = ?4 AND"
	    " warned_at IS NULL AND window_end - window_start > ?2 AND window_end - ?2 <= ?1"
	    " ORDER BY window_end LIMIT ?3", "iiit", now, warn_lead, (int64_t)limit,
	    lifecycle_state_name(RS_ACTIVE))) == EL_OK) {
		r = collect_strings(db, st, ids, n);
		unprepare(s, db, st);
	}
	rd_put(s, db);
	return r;
}

enum el_err
store_request_warned(struct store *s, const char *id, int64_t at)
{
	enum el_err r;
	bool own;

	if ((r = own_begin(s, &own)) != EL_OK)
		return r;
	r = exec(s, "UPDATE requests SET warned_at = ? WHERE id = ? AND state = ?", "itt", at,
	    id, lifecycle_state_name(RS_ACTIVE));
	if (r == EL_OK && sqlite3_changes(s->db) != 1)
		r = EL_ESTATE;
	return own_end(s, own, r);
}

json_t *
store_request_counts(struct store *s)
{
	return group_counts(s, "SELECT state, COUNT(*) FROM requests GROUP BY state");
}

enum el_err
store_request_overdue(struct store *s, int64_t before, int64_t *n)
{
	return scalar_query(s, "overdue revocations", 0, n, "SELECT COUNT(*) FROM requests"
	    " WHERE state = ? AND COALESCE(window_end, 0) < ?", "ti",
	    lifecycle_state_name(RS_ENDING), before);
}

enum el_err
store_probe_commit(struct store *s)
{
	enum el_err r;

	if ((r = store_begin(s)) != EL_OK)
		return r;
	if ((r = exec(s, "INSERT OR REPLACE INTO health (k, at) VALUES (1, ?)", "i", el_now()))
	    != EL_OK) {
		store_rollback(s);
		return r;
	}
	return store_commit(s);
}

/* ---- approvals ---- */

enum el_err
store_approval_insert(struct store *s, const char *request_id, const struct store_approval *a)
{
	return exec(s, "INSERT INTO approvals (request_id, approver, decision, comment, at, via)"
	    " VALUES (?,?,?,?,?,?)", "ttttit", request_id, a->approver, a->decision, a->comment,
	    a->at, a->via[0] ? a->via : "cli");
}

static enum el_err
approval_row(sqlite3_stmt *st, void *arg)
{
	struct vec *a = arg;
	struct store_approval *v;

	if ((v = vec_next(a)) == NULL)
		return EL_ENOMEM;
	memset(v, 0, sizeof(*v));
	col_copy(st, 0, v->approver, sizeof(v->approver));
	col_copy(st, 1, v->decision, sizeof(v->decision));
	v->comment = col_str(st, 2);
	v->at = sqlite3_column_int64(st, 3);
	col_copy(st, 4, v->via, sizeof(v->via));
	a->n++;
	return EL_OK;
}

enum el_err
store_approval_list(struct store *s, const char *request_id, struct store_approval **out,
    size_t *n)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	struct vec a = {NULL, 0, 0, sizeof(struct store_approval)};
	enum el_err r;

	db = rd_get(s);
	if ((r = prepare(s, db, &st, "SELECT approver, decision, comment, at, via FROM approvals"
	    " WHERE request_id = ? ORDER BY at, rowid", "t", request_id)) == EL_OK) {
		r = each_row(db, st, "approval list", approval_row, &a);
		unprepare(s, db, st);
	}
	rd_put(s, db);
	if (r != EL_OK) {
		store_approvals_free(a.v, a.n);
		return r;
	}
	*out = a.v;
	*n = a.n;
	return EL_OK;
}

void
store_approvals_free(struct store_approval *a, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(a[i].comment);
	free(a);
}

/* ---- grants ---- */

void
store_grant_free(struct store_grant *g)
{
	if (g == NULL)
		return;
	free(g->assumed_role_arn);
	free(g->assumed_role_id);
	free(g->access_key_id);
	free(g->creds_box);
	g->assumed_role_arn = g->assumed_role_id = g->access_key_id = NULL;
	g->creds_box = NULL;
}

enum el_err
store_grant_put(struct store *s, const struct store_grant *g)
{
	return exec(s, "INSERT OR REPLACE INTO grants (request_id, role_session_name,"
	    " assumed_role_arn, assumed_role_id, access_key_id, creds_box, creds_expire_at,"
	    " minted_at) VALUES (?,?,?,?,?,?,?,?)", "tttttbzz", g->request_id,
	    g->role_session_name, g->assumed_role_arn, g->assumed_role_id, g->access_key_id,
	    (const void *)g->creds_box, g->creds_box_len, g->creds_expire_at, g->minted_at);
}

enum el_err
store_grant_get(struct store *s, const char *request_id, struct store_grant *g)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	enum el_err r;
	int rc;

	db = rd_get(s);
	if ((r = prepare(s, db, &st, "SELECT request_id, role_session_name, assumed_role_arn,"
	    " assumed_role_id, access_key_id, creds_box, creds_expire_at, minted_at"
	    " FROM grants WHERE request_id = ?", "t", request_id)) != EL_OK) {
		rd_put(s, db);
		return r;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const void *blob;
		int blen;

		memset(g, 0, sizeof(*g));
		col_copy(st, 0, g->request_id, sizeof(g->request_id));
		col_copy(st, 1, g->role_session_name, sizeof(g->role_session_name));
		g->assumed_role_arn = col_str(st, 2);
		g->assumed_role_id = col_str(st, 3);
		g->access_key_id = col_str(st, 4);
		blob = sqlite3_column_blob(st, 5);
		blen = sqlite3_column_bytes(st, 5);
		if (blob != NULL && blen > 0 && (g->creds_box = malloc((size_t)blen)) != NULL) {
			memcpy(g->creds_box, blob, (size_t)blen);
			g->creds_box_len = (size_t)blen;
		}
		g->creds_expire_at = sqlite3_column_int64(st, 6);
		g->minted_at = sqlite3_column_int64(st, 7);
		r = EL_OK;
	} else
		r = rc == SQLITE_DONE ? EL_ENOENT : dberr(db, "grant get");
	unprepare(s, db, st);
	rd_put(s, db);
	return r;
}

/* ---- SSM sessions ---- */

enum el_err
store_session_insert(struct store *s, const char *request_id, const struct store_session *ss)
{
	return exec(s, "INSERT INTO sessions (session_id, request_id, target, document,"
	    " started_at, terminated_at) VALUES (?,?,?,?,?,?)", "ttttiz", ss->session_id,
	    request_id, ss->target, ss->document, ss->started_at, ss->terminated_at);
}

static enum el_err
session_row(sqlite3_stmt *st, void *arg)
{
	struct vec *a = arg;
	struct store_session *v;

	if ((v = vec_next(a)) == NULL)
		return EL_ENOMEM;
	v->session_id = col_str(st, 0);
	v->target = col_str(st, 1);
	v->document = col_str(st, 2);
	v->started_at = sqlite3_column_int64(st, 3);
	v->terminated_at = sqlite3_column_int64(st, 4);
	a->n++;
	return v->session_id && v->target ? EL_OK : EL_ENOMEM;
}

enum el_err
store_session_list(struct store *s, const char *request_id, struct store_session **out,
    size_t *n)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	struct vec a = {NULL, 0, 0, sizeof(struct store_session)};
	enum el_err r;

	db = rd_get(s);
	if ((r = prepare(s, db, &st, "SELECT session_id, target, document, started_at, terminated_at"
	    " FROM sessions WHERE request_id = ? ORDER BY started_at, rowid", "t", request_id))
	    == EL_OK) {
		r = each_row(db, st, "session list", session_row, &a);
		unprepare(s, db, st);
	}
	rd_put(s, db);
	if (r != EL_OK) {
		store_sessions_free(a.v, a.n);
		return r;
	}
	*out = a.v;
	*n = a.n;
	return EL_OK;
}

enum el_err
store_session_terminated(struct store *s, const char *session_id, int64_t at)
{
	return exec(s, "UPDATE sessions SET terminated_at = ? WHERE session_id = ?"
	    " AND terminated_at IS NULL", "it", at, session_id);
}

void
store_sessions_free(struct store_session *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i].session_id);
		free(v[i].target);
		free(v[i].document);
	}
	free(v);
}

/* ---- nonces ---- */

enum el_err
store_nonce_use(struct store *s, const char *kind, const char *nonce, const char *who,
    int64_t now)
{
	char key[160];

	/* One table serves API nonces and approval-token nonces; the kind keeps them apart. */
	if ((size_t)snprintf(key, sizeof(key), "%s:%s", kind, nonce) >= sizeof(key))
		return EL_EINVAL;
	return exec(s, "INSERT INTO nonces (nonce, who, seen_at, kind) VALUES (?,?,?,?)",
	    "ttit", key, who, now, kind);
}

#define NONCE_PRUNE_EACH "8"

/*
 * A claim is a transaction of its own that needs no fsync: its group commits with
 * synchronous=NORMAL when nothing else in it needs one. The WAL write is done before the
 * answer, so a kill of the process loses no claim; what an OS crash could lose is covered
 * by refusing, after a restart, signatures dated before it (engine_authenticate).
 */
enum el_err
store_nonce_claim(struct store *s, const char *kind, const char *nonce, const char *who,
    int64_t now, int64_t prune_before)
{
	enum el_err r;

	if (strlen(kind) + strlen(nonce) + 2 > 160)
		return EL_EINVAL;
	if ((r = store_begin_relaxed(s)) != EL_OK)
		return r;
	r = store_nonce_use(s, kind, nonce, who, now);
	/* Each claim takes a few expired ones away: the table keeps pace with the calls, and
	 * no transaction has a second's worth to delete (that stalled every call behind it). */
	if (r == EL_OK && prune_before > 0)
		r = exec(s, "DELETE FROM nonces WHERE rowid IN (SELECT rowid FROM nonces"
		    " WHERE kind = ?1 AND seen_at < ?2 ORDER BY seen_at LIMIT " NONCE_PRUNE_EACH ")",
		    "ti", kind, prune_before);
	if (r != EL_OK) {
		store_rollback(s);
		return r;
	}
	return store_commit(s);
}

enum el_err
store_nonce_prune(struct store *s, const char *kind, int64_t older_than)
{
	return exec(s, "DELETE FROM nonces WHERE kind = ? AND seen_at < ?", "ti", kind,
	    older_than);
}

/* ---- outbox ---- */

enum el_err
store_mail_enqueue(struct store *s, const char *request_id, const char *rcpt,
    const char *subject, const char *message, const char *message_id, int64_t now,
    int64_t *id)
{
	enum el_err r;
	bool own;

	if ((r = own_begin(s, &own)) != EL_OK)
		return r;
	r = exec(s, "INSERT INTO outbox (request_id, rcpt, subject, message, message_id,"
	    " next_attempt_at, created_at) VALUES (?,?,?,?,?,?,?)", "tttttii", request_id, rcpt,
	    subject, message, message_id, now, now);
	if (r == EL_OK && id != NULL)
		*id = sqlite3_last_insert_rowid(s->db);
	return own_end(s, own, r);
}

enum el_err
store_mail_next(struct store *s, int64_t now, struct store_mail *m)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	enum el_err r;
	int rc;

	db = rd_get(s);
	if ((r = prepare(s, db, &st, "SELECT id, request_id, rcpt, subject, message, attempts,"
	    " next_attempt_at, state, last_error FROM outbox WHERE state = 'queued' AND"
	    " next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT 1", "i", now)) != EL_OK) {
		rd_put(s, db);
		return r;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		memset(m, 0, sizeof(*m));
		m->id = sqlite3_column_int64(st, 0);
		m->request_id = col_str(st, 1);
		m->rcpt = col_str(st, 2);
		m->subject = col_str(st, 3);
		m->message = col_str(st, 4);
		m->attempts = sqlite3_column_int(st, 5);
		m->next_attempt_at = sqlite3_column_int64(st, 6);
		col_copy(st, 7, m->state, sizeof(m->state));
		m->last_error = col_str(st, 8);
		r = EL_OK;
	} else
		r = rc == SQLITE_DONE ? EL_ENOENT : dberr(db, "mail next");
	unprepare(s, db, st);
	rd_put(s, db);
	return r;
}

enum el_err
store_mail_update(struct store *s, const struct store_mail *m)
{
	/* A sent mail's body is dropped: approval mails carry a live token. */
	return exec(s, "UPDATE outbox SET state = ?1, attempts = ?2, next_attempt_at = ?3,"
	    " last_error = ?4, message = CASE WHEN ?1 = 'sent' THEN '' ELSE message END"
	    " WHERE id = ?5", "tiiti", m->state, (int64_t)m->attempts, m->next_attempt_at,
	    m->last_error, m->id);
}

enum el_err
store_mail_next_due(struct store *s, int64_t *t)
{
	return scalar_query(s, "mail next due", INT64_MAX, t,
	    "SELECT MIN(next_attempt_at) FROM outbox WHERE state = 'queued'", NULL);
}

json_t *
store_mail_counts(struct store *s)
{
	return group_counts(s, "SELECT state, COUNT(*) FROM outbox GROUP BY state");
}

void
store_mail_free(struct store_mail *m)
{
	if (m == NULL)
		return;
	free(m->request_id);
	free(m->rcpt);
	free(m->subject);
	free(m->message);
	free(m->last_error);
	memset(m, 0, sizeof(*m));
}

/* ---- revoked role sessions ---- */

enum el_err
store_revoked_add(struct store *s, const struct store_revoked *r)
{
	/* Never shortens an entry. The deny policy names userids, not expiries: an entry
	 * already in IAM stays there while it lives, so extending it needs no new sync. */
	return exec(s, "INSERT INTO revoked (userid, role_name, request_id, expires_at)"
	    " VALUES (?1,?2,?3,?4) ON CONFLICT(userid) DO UPDATE SET"
	    " expires_at = MAX(expires_at, excluded.expires_at)", "ttti", r->userid, r->role_name,
	    r->request_id, r->expires_at);
}

struct revoked_acc {
	struct vec a;
	int64_t mark;
};

static enum el_err
revoked_row(sqlite3_stmt *st, void *arg)
{
	struct revoked_acc *acc = arg;
	struct store_revoked *v;

	if ((v = vec_next(&acc->a)) == NULL)
		return EL_ENOMEM;
	v->role_name = col_str(st, 0);
	v->userid = col_str(st, 1);
	v->request_id = col_str(st, 2);
	v->expires_at = sqlite3_column_int64(st, 3);
	col_copy(st, 5, v->cohort, sizeof(v->cohort));
	acc->a.n++;
	if (sqlite3_column_int64(st, 4) > acc->mark)
		acc->mark = sqlite3_column_int64(st, 4);
	return v->role_name && v->userid && v->request_id ? EL_OK : EL_ENOMEM;
}

enum el_err
store_revoked_list(struct store *s, const char *role_name, int64_t alive_after,
    struct store_revoked **out, size_t *n, int64_t *mark)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	struct revoked_acc acc = {{NULL, 0, 0, sizeof(struct store_revoked)}, 0};
	enum el_err r;

	db = rd_get(s);
	/* The highest rowid listed marks the listing: a row added later gets a higher one
	 * (rows are pruned only by the reaper, before it lists). */
	if ((r = prepare(s, db, &st, "SELECT v.role_name, v.userid, v.request_id, v.expires_at,"
	    " v.rowid, q.cohort FROM revoked v LEFT JOIN requests q ON q.id = v.request_id"
	    " WHERE v.role_name = ? AND v.expires_at > ? ORDER BY v.userid", "ti",
	    role_name, alive_after)) == EL_OK) {
		r = each_row(db, st, "revoked list", revoked_row, &acc);
		unprepare(s, db, st);
	}
	rd_put(s, db);
	if (r != EL_OK) {
		store_revoked_free(acc.a.v, acc.a.n);
		return r;
	}
	*out = acc.a.v;
	*n = acc.a.n;
	if (mark != NULL)
		*mark = acc.mark;
	return EL_OK;
}

enum el_err
store_revoked_synced(struct store *s, const char *role_name, int64_t mark, int64_t at)
{
	return exec(s, "UPDATE revoked SET synced_at = ? WHERE role_name = ? AND rowid <= ?"
	    " AND synced_at IS NULL", "iti", at, role_name, mark);
}

enum el_err
store_revoked_unsynced_roles(struct store *s, int64_t alive_after, char ***roles, size_t *n)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	enum el_err r;

	db = rd_get(s);
	if ((r = prepare(s, db, &st, "SELECT DISTINCT role_name FROM revoked WHERE synced_at IS NULL"
	    " AND expires_at > ? ORDER BY role_name", "i", alive_after)) == EL_OK) {
		r = collect_strings(db, st, roles, n);
		unprepare(s, db, st);
	}
	rd_put(s, db);
	return r;
}

enum el_err
store_revoked_prune(struct store *s, const char *role_name, int64_t expired_before)
{
	return exec(s, "DELETE FROM revoked WHERE role_name = ? AND expires_at <= ?", "ti",
	    role_name, expired_before);
}

/* ---- revocation cohorts ---- */

enum el_err
store_request_cohort(struct store *s, const char *id, const char *role_name,
    const char *fresh, char *out, size_t len)
{
	sqlite3_stmt *st;
	enum el_err r;
	bool own;

	if ((r = own_begin(s, &own)) != EL_OK)
		return r;
	/* The role's open cohort, opened with `fresh` if it has none; a request keeps the
	 * first it was given. */
	if ((r = exec(s, "INSERT INTO role_cohorts (role_name, open) VALUES (?, ?)"
	    " ON CONFLICT(role_name) DO NOTHING", "tt", role_name, fresh)) != EL_OK ||
	    (r = exec(s, "UPDATE requests SET cohort = (SELECT open FROM role_cohorts"
	    " WHERE role_name = ?) WHERE id = ? AND cohort IS NULL", "tt", role_name, id))
	    != EL_OK)
		goto out;
	lock(s);
	if ((r = prepare(s, s->db, &st, "SELECT cohort FROM requests WHERE id = ?", "t", id))
	    == EL_OK) {
		if ((r = one_row(s->db, st, "request cohort")) == EL_OK)
			col_copy(st, 0, out, len);
		unprepare(s, s->db, st);
	}
	unlock(s);
out:
	return own_end(s, own, r);
}

enum el_err
store_cohort_open(struct store *s, const char *role_name, char *out, size_t len)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	enum el_err r;

	db = rd_get(s);
	if ((r = prepare(s, db, &st, "SELECT open FROM role_cohorts WHERE role_name = ?", "t",
	    role_name)) == EL_OK) {
		if ((r = one_row(db, st, "open cohort")) == EL_OK)
			col_copy(st, 0, out, len);
		unprepare(s, db, st);
	}
	rd_put(s, db);
	return r;
}

enum el_err
store_cohort_close(struct store *s, const char *role_name, const char *fresh)
{
	return exec(s, "INSERT INTO role_cohorts (role_name, open) VALUES (?1, ?2)"
	    " ON CONFLICT(role_name) DO UPDATE SET open = ?2", "tt", role_name, fresh);
}

static enum el_err
live_row(sqlite3_stmt *st, void *arg)
{
	struct vec *a = arg;
	struct store_live *v;

	if ((v = vec_next(a)) == NULL)
		return EL_ENOMEM;
	col_copy(st, 0, v->request_id, sizeof(v->request_id));
	col_copy(st, 1, v->cohort, sizeof(v->cohort));
	a->n++;
	return EL_OK;
}

enum el_err
store_live_grants(struct store *s, const char *role_name, struct store_live **out,
    size_t *n)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	struct vec a = {NULL, 0, 0, sizeof(struct store_live)};
	enum el_err r;

	db = rd_get(s);
	/* The role is the last component of the ARN (a role's name is unique in its account,
	 * whatever its path). Extensions mint under their grant's id: the grant is the row. */
	if ((r = prepare(s, db, &st, "SELECT id, cohort FROM requests"
	    " WHERE state IN ('activating', 'active') AND parent_id IS NULL"
	    " AND cohort IS NOT NULL AND substr(role_arn, -length(?1) - 1) = '/' || ?1"
	    " ORDER BY id", "t", role_name)) == EL_OK) {
		r = each_row(db, st, "live grants", live_row, &a);
		unprepare(s, db, st);
	}
	rd_put(s, db);
	if (r != EL_OK) {
		free(a.v);
		return r;
	}
	*out = a.v;
	*n = a.n;
	return EL_OK;
}

void
store_revoked_free(struct store_revoked *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i].role_name);
		free(v[i].userid);
		free(v[i].request_id);
	}
	free(v);
}

/* ---- audit ---- */

enum el_err
store_audit_tail(struct store *s, int64_t *seq, unsigned char hash[AUDIT_HASH_BYTES])
{
	sqlite3_stmt *st;
	enum el_err r;
	int rc;

	lock(s);
	if ((r = prepare(s, s->db, &st, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
	    NULL)) != EL_OK) {
		unlock(s);
		return r;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_bytes(st, 1) == AUDIT_HASH_BYTES) {
		*seq = sqlite3_column_int64(st, 0);
		memcpy(hash, sqlite3_column_blob(st, 1), AUDIT_HASH_BYTES);
	} else if (rc == SQLITE_DONE) {
		*seq = 0;
		memset(hash, 0, AUDIT_HASH_BYTES);
	} else
		r = dberr(s->db, "audit tail");
	unprepare(s, s->db, st);
	unlock(s);
	return r;
}

enum el_err
store_audit_insert(struct store *s, const struct audit_rec *r)
{
	char *data = json_dumps(r->data, JSON_COMPACT | JSON_SORT_KEYS);
	enum el_err e;

	if (data == NULL)
		return EL_ENOMEM;
	e = exec(s, "INSERT INTO audit (seq, time, actor, event, request_id, data, prev_hash,"
	    " hash) VALUES (?,?,?,?,?,?,?,?)", "itttttbb", r->seq, r->time, r->actor, r->event,
	    r->request_id, data, (const void *)r->prev_hash, (size_t)AUDIT_HASH_BYTES,
	    (const void *)r->hash, (size_t)AUDIT_HASH_BYTES);
	free(data);
	return e;
}

static enum el_err
audit_row(sqlite3_stmt *st, void *arg)
{
	struct audit_rec rec;
	json_error_t je;
	json_t *j;

	memset(&rec, 0, sizeof(rec));
	rec.seq = sqlite3_column_int64(st, 0);
	col_copy(st, 1, rec.time, sizeof(rec.time));
	rec.actor = col_str(st, 2);
	rec.event = col_str(st, 3);
	rec.request_id = col_str(st, 4);
	rec.data = json_loads((const char *)sqlite3_column_text(st, 5), 0, &je);
	if (sqlite3_column_bytes(st, 6) == AUDIT_HASH_BYTES)
		memcpy(rec.prev_hash, sqlite3_column_blob(st, 6), AUDIT_HASH_BYTES);
	if (sqlite3_column_bytes(st, 7) == AUDIT_HASH_BYTES)
		memcpy(rec.hash, sqlite3_column_blob(st, 7), AUDIT_HASH_BYTES);
	j = rec.data && rec.actor && rec.event ? audit_rec_json(&rec) : NULL;
	json_decref(rec.data);
	free(rec.actor);
	free(rec.event);
	free(rec.request_id);
	if (j == NULL) {
		el_strlcpy(last_error, "an audit record cannot be read", sizeof(last_error));
		return EL_EDB;
	}
	return json_array_append_new(arg, j) == 0 ? EL_OK : EL_ENOMEM;
}

/* One integer from a one-row query with at most one text parameter. */
static enum el_err
audit_scalar(struct store *s, const char *sql, const char *arg, const char *what,
    int64_t *out)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	enum el_err r;
	int rc;

	db = rd_get(s);
	if ((r = prepare(s, db, &st, sql, arg != NULL ? "t" : NULL, arg)) != EL_OK) {
		rd_put(s, db);
		return r;
	}
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		*out = sqlite3_column_int64(st, 0);
	else
		r = dberr(db, what);
	unprepare(s, db, st);
	rd_put(s, db);
	return r;
}

enum el_err
store_audit_last_event(struct store *s, const char *event, int64_t *seq)
{
	return audit_scalar(s, "SELECT coalesce(max(seq), 0) FROM audit WHERE event = ?",
	    event, "audit last event", seq);
}

enum el_err
store_audit_count(struct store *s, int64_t *n)
{
	return audit_scalar(s, "SELECT count(*) FROM audit", NULL, "audit count", n);
}

enum el_err
store_audit_list(struct store *s, const struct store_audit_filter *f, json_t **out)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	json_t *arr;
	enum el_err r;

	if ((arr = json_array()) == NULL)
		return EL_ENOMEM;
	db = rd_get(s);
	r = prepare(s, db, &st, "SELECT a.seq, a.time, a.actor, a.event, a.request_id, a.data,"
	    " a.prev_hash, a.hash FROM audit a LEFT JOIN requests q ON q.id = a.request_id"
	    " WHERE a.seq > ?1 AND (?2 IS NULL OR a.actor = ?2) AND (?3 IS NULL OR a.event = ?3"
	    " OR a.event LIKE ?3 || '.%') AND (?4 IS NULL OR a.request_id = ?4)"
	    " AND (?5 IS NULL OR q.profile = ?5) AND (?6 IS NULL OR a.time >= ?6)"
	    " ORDER BY a.seq LIMIT ?7", "ittttti", f->since_seq, f->actor, f->event,
	    f->request_id, f->profile, f->since_time, (int64_t)(f->limit > 0 ? f->limit : 1000));
	if (r == EL_OK) {
		r = each_row(db, st, "audit list", audit_row, arr);
		unprepare(s, db, st);
	}
	rd_put(s, db);
	if (r != EL_OK) {
		json_decref(arr);
		return r;
	}
	*out = arr;
	return EL_OK;
}
