/*
 * store.c — owns the SQLite database: schema and migrations, and every read and write of
 * broker state. WAL, foreign keys on, busy timeout. One connection guarded by a recursive
 * mutex: store_begin() takes it for the whole transaction.
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

struct store {
	sqlite3 *db;
	pthread_mutex_t mu;
	int in_tx;
	int poisoned;
};

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
dberr(struct store *s, const char *what)
{
	const char *msg = sqlite3_errmsg(s->db);

	log_err("store: %s: %s", what, msg);
	el_strlcpy(last_error, msg, sizeof(last_error));
	return EL_EDB;
}

const char *
store_errmsg(void)
{
	return last_error[0] ? last_error : "the database does not answer";
}

/*
 * Steps st to its end, calling fn on every row. Readers fail closed: a loop that stops
 * for anything but SQLITE_DONE is an error, never a shorter list (fewer rows than there
 * are is how revocations get lost).
 */
static enum el_err
each_row(struct store *s, sqlite3_stmt *st, const char *what,
    enum el_err (*fn)(sqlite3_stmt *, void *), void *arg)
{
	enum el_err r;
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if ((r = fn(st, arg)) != EL_OK)
			return r;
	if (rc != SQLITE_DONE)
		return dberr(s, what);
	return EL_OK;
}

/* One row of a single-row query: EL_OK with a row, EL_ENOENT without, EL_EDB on failure. */
static enum el_err
one_row(struct store *s, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		return EL_OK;
	return rc == SQLITE_DONE ? EL_ENOENT : dberr(s, what);
}

/*
 * Binds arguments by a format: 't' text (NULL binds NULL), 'i' int64, 'z' int64 where 0
 * binds NULL, 'b' blob (pointer, size_t length).
 */
static enum el_err
vbind(struct store *s, sqlite3_stmt *st, const char *fmt, va_list ap)
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
			return dberr(s, "bind");
	}
	return EL_OK;
}

static enum el_err
prepare(struct store *s, sqlite3_stmt **st, const char *sql, const char *fmt, ...)
{
	va_list ap;
	enum el_err r;

	if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK)
		return dberr(s, sql);
	va_start(ap, fmt);
	r = vbind(s, *st, fmt, ap);
	va_end(ap);
	if (r != EL_OK) {
		sqlite3_finalize(*st);
		*st = NULL;
	}
	return r;
}

/* Runs a statement that returns no rows. EL_EEXIST on a constraint violation. */
static enum el_err
exec(struct store *s, const char *sql, const char *fmt, ...)
{
	sqlite3_stmt *st;
	va_list ap;
	enum el_err r;
	int rc;

	lock(s);
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
		r = dberr(s, sql);
		unlock(s);
		return r;
	}
	va_start(ap, fmt);
	r = vbind(s, st, fmt, ap);
	va_end(ap);
	if (r == EL_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_CONSTRAINT)
			r = EL_EEXIST;
		else if (rc != SQLITE_DONE)
			r = dberr(s, sql);
	}
	sqlite3_finalize(st);
	unlock(s);
	return r;
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
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&s->mu, &ma);
	pthread_mutexattr_destroy(&ma);
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
	*out = s;
	return EL_OK;
fail:
	sqlite3_close(s->db);
	pthread_mutex_destroy(&s->mu);
	free(s);
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
	if (s == NULL)
		return;
	sqlite3_close(s->db);
	pthread_mutex_destroy(&s->mu);
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

enum el_err
store_begin(struct store *s)
{
	lock(s);
	if (s->in_tx++ > 0)
		return EL_OK;   /* nested: part of the outer transaction */
	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		s->in_tx--;
		dberr(s, "begin");
		unlock(s);
		return EL_EDB;
	}
	return EL_OK;
}

enum el_err
store_commit(struct store *s)
{
	enum el_err r = EL_OK;

	if (--s->in_tx == 0 && s->poisoned) {
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		s->poisoned = 0;
		r = EL_EDB;
	} else if (s->in_tx == 0 && sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		r = dberr(s, "commit");
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	}
	unlock(s);
	return r;
}

void
store_rollback(struct store *s)
{
	/* A nested rollback poisons the outer transaction: roll the whole thing back. */
	if (s->in_tx > 0 && --s->in_tx > 0)
		s->poisoned = 1;
	else {
		if (sqlite3_get_autocommit(s->db) == 0)
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		s->poisoned = 0;
	}
	unlock(s);
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
	sqlite3_stmt *st;
	enum el_err r2;

	lock(s);
	if ((r2 = prepare(s, &st, "SELECT " REQ_READ_COLS " FROM requests WHERE id = ?", "t", id))
	    != EL_OK) {
		unlock(s);
		return r2;
	}
	if ((r2 = one_row(s, st, "request get")) == EL_OK)
		r2 = read_request(st, r);
	sqlite3_finalize(st);
	unlock(s);
	return r2;
}

enum el_err
store_request_cas(struct store *s, const struct store_request *r, enum req_state from)
{
	enum el_err e;

	lock(s);
	e = exec(s, "UPDATE requests SET state = ?, decided_at = ?, window_start = ?,"
	    " window_end = ?, ended_at = ?, failure_code = ?, failure_message = ?,"
	    " next_attempt_at = ?, attempts = ?, duration = ?, updated_at = ?"
	    " WHERE id = ? AND state = ?", "tzzzzttziiitt", lifecycle_state_name(r->state),
	    r->decided_at, r->window_start, r->window_end, r->ended_at, r->failure_code,
	    r->failure_message, r->next_attempt_at, (int64_t)r->attempts, r->duration, el_now(),
	    r->id, lifecycle_state_name(from));
	if (e == EL_OK && sqlite3_changes(s->db) != 1)
		e = EL_ESTATE;
	unlock(s);
	return e;
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
	sqlite3_stmt *st;
	struct vec a = {NULL, 0, 0, sizeof(struct store_request)};
	struct store_request *v;
	enum el_err r;

	lock(s);
	r = prepare(s, &st, "SELECT " REQ_READ_COLS " FROM requests WHERE (?1 IS NULL OR state = ?1)"
	    " AND (?2 IS NULL OR requester = ?2) AND (?3 IS NULL OR profile = ?3)"
	    " AND (?5 = 0 OR created_at >= ?5 OR window_end >= ?5"
	    "  OR (window_start IS NOT NULL AND ended_at IS NULL))"
	    " ORDER BY created_at DESC, rowid DESC LIMIT ?4", "tttii",
	    f->by_state ? lifecycle_state_name(f->state) : NULL, f->requester,
	    f->profile, (int64_t)(f->limit > 0 ? f->limit : 500), f->since);
	if (r == EL_OK) {
		r = each_row(s, st, "request list", request_row, &a);
		sqlite3_finalize(st);
	}
	unlock(s);
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
collect_strings(struct store *s, sqlite3_stmt *st, char ***out, size_t *n)
{
	struct vec a = {NULL, 0, 0, sizeof(char *)};
	char **v;
	enum el_err r;

	r = each_row(s, st, "collect", string_row, &a);
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
	lock(s);
	if ((r = prepare(s, &st, sql, "tii", lifecycle_state_name(state), until, (int64_t)limit))
	    == EL_OK) {
		r = collect_strings(s, st, ids, n);
		sqlite3_finalize(st);
	}
	unlock(s);
	return r;
}

/* One int64 from a single-row aggregate; *t = dflt when it is NULL. */
static enum el_err
scalar(struct store *s, sqlite3_stmt *st, const char *what, int64_t dflt, int64_t *t)
{
	enum el_err r = one_row(s, st, what);

	if (r == EL_ENOENT)
		return dberr(s, what);   /* an aggregate always has its row */
	if (r == EL_OK)
		*t = sqlite3_column_type(st, 0) == SQLITE_NULL ? dflt : sqlite3_column_int64(st, 0);
	return r;
}

/* scalar() of a query bound as prepare() binds, under the store's lock. */
static enum el_err
scalar_query(struct store *s, const char *what, int64_t dflt, int64_t *t, const char *sql,
    const char *fmt, ...)
{
	sqlite3_stmt *st;
	va_list ap;
	enum el_err r;

	lock(s);
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
		r = dberr(s, sql);
		goto out;
	}
	va_start(ap, fmt);
	r = vbind(s, st, fmt, ap);
	va_end(ap);
	if (r == EL_OK)
		r = scalar(s, st, what, dflt, t);
	sqlite3_finalize(st);
out:
	unlock(s);
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
	sqlite3_stmt *st;
	json_t *o = json_object();
	enum el_err r = o ? EL_OK : EL_ENOMEM;

	lock(s);
	if (r == EL_OK && (r = prepare(s, &st, sql, NULL)) == EL_OK) {
		r = each_row(s, st, "counts", count_row, o);
		sqlite3_finalize(st);
	}
	unlock(s);
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
	sqlite3_stmt *st;
	enum el_err r;

	lock(s);
	if ((r = prepare(s, &st, "SELECT id FROM requests WHERE state = ?4 AND"
	    " warned_at IS NULL AND window_end - window_start > ?2 AND window_end - ?2 <= ?1"
	    " ORDER BY window_end LIMIT ?3", "iiit", now, warn_lead, (int64_t)limit,
	    lifecycle_state_name(RS_ACTIVE))) == EL_OK) {
		r = collect_strings(s, st, ids, n);
		sqlite3_finalize(st);
	}
	unlock(s);
	return r;
}

enum el_err
store_request_warned(struct store *s, const char *id, int64_t at)
{
	enum el_err r;

	lock(s);
	r = exec(s, "UPDATE requests SET warned_at = ? WHERE id = ? AND state = ?", "itt", at,
	    id, lifecycle_state_name(RS_ACTIVE));
	if (r == EL_OK && sqlite3_changes(s->db) != 1)
		r = EL_ESTATE;
	unlock(s);
	return r;
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
	sqlite3_stmt *st;
	struct vec a = {NULL, 0, 0, sizeof(struct store_approval)};
	enum el_err r;

	lock(s);
	if ((r = prepare(s, &st, "SELECT approver, decision, comment, at, via FROM approvals"
	    " WHERE request_id = ? ORDER BY at, rowid", "t", request_id)) == EL_OK) {
		r = each_row(s, st, "approval list", approval_row, &a);
		sqlite3_finalize(st);
	}
	unlock(s);
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
	sqlite3_stmt *st;
	enum el_err r;
	int rc;

	lock(s);
	if ((r = prepare(s, &st, "SELECT request_id, role_session_name, assumed_role_arn,"
	    " assumed_role_id, access_key_id, creds_box, creds_expire_at, minted_at"
	    " FROM grants WHERE request_id = ?", "t", request_id)) != EL_OK) {
		unlock(s);
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
		r = rc == SQLITE_DONE ? EL_ENOENT : dberr(s, "grant get");
	sqlite3_finalize(st);
	unlock(s);
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
	sqlite3_stmt *st;
	struct vec a = {NULL, 0, 0, sizeof(struct store_session)};
	enum el_err r;

	lock(s);
	if ((r = prepare(s, &st, "SELECT session_id, target, document, started_at, terminated_at"
	    " FROM sessions WHERE request_id = ? ORDER BY started_at, rowid", "t", request_id))
	    == EL_OK) {
		r = each_row(s, st, "session list", session_row, &a);
		sqlite3_finalize(st);
	}
	unlock(s);
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

	lock(s);
	r = exec(s, "INSERT INTO outbox (request_id, rcpt, subject, message, message_id,"
	    " next_attempt_at, created_at) VALUES (?,?,?,?,?,?,?)", "tttttii", request_id, rcpt,
	    subject, message, message_id, now, now);
	if (r == EL_OK && id != NULL)
		*id = sqlite3_last_insert_rowid(s->db);
	unlock(s);
	return r;
}

enum el_err
store_mail_next(struct store *s, int64_t now, struct store_mail *m)
{
	sqlite3_stmt *st;
	enum el_err r;
	int rc;

	lock(s);
	if ((r = prepare(s, &st, "SELECT id, request_id, rcpt, subject, message, attempts,"
	    " next_attempt_at, state, last_error FROM outbox WHERE state = 'queued' AND"
	    " next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT 1", "i", now)) != EL_OK) {
		unlock(s);
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
		r = rc == SQLITE_DONE ? EL_ENOENT : dberr(s, "mail next");
	sqlite3_finalize(st);
	unlock(s);
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
	sqlite3_stmt *st;
	struct revoked_acc acc = {{NULL, 0, 0, sizeof(struct store_revoked)}, 0};
	enum el_err r;

	lock(s);
	/* The highest rowid listed marks the listing: a row added later gets a higher one
	 * (rows are pruned only by the reaper, before it lists). */
	if ((r = prepare(s, &st, "SELECT v.role_name, v.userid, v.request_id, v.expires_at,"
	    " v.rowid, q.cohort FROM revoked v LEFT JOIN requests q ON q.id = v.request_id"
	    " WHERE v.role_name = ? AND v.expires_at > ? ORDER BY v.userid", "ti",
	    role_name, alive_after)) == EL_OK) {
		r = each_row(s, st, "revoked list", revoked_row, &acc);
		sqlite3_finalize(st);
	}
	unlock(s);
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
	sqlite3_stmt *st;
	enum el_err r;

	lock(s);
	if ((r = prepare(s, &st, "SELECT DISTINCT role_name FROM revoked WHERE synced_at IS NULL"
	    " AND expires_at > ? ORDER BY role_name", "i", alive_after)) == EL_OK) {
		r = collect_strings(s, st, roles, n);
		sqlite3_finalize(st);
	}
	unlock(s);
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

	lock(s);
	/* The role's open cohort, opened with `fresh` if it has none; a request keeps the
	 * first it was given. */
	if ((r = exec(s, "INSERT INTO role_cohorts (role_name, open) VALUES (?, ?)"
	    " ON CONFLICT(role_name) DO NOTHING", "tt", role_name, fresh)) != EL_OK ||
	    (r = exec(s, "UPDATE requests SET cohort = (SELECT open FROM role_cohorts"
	    " WHERE role_name = ?) WHERE id = ? AND cohort IS NULL", "tt", role_name, id))
	    != EL_OK)
		goto out;
	if ((r = prepare(s, &st, "SELECT cohort FROM requests WHERE id = ?", "t", id)) != EL_OK)
		goto out;
	if ((r = one_row(s, st, "request cohort")) == EL_OK)
		col_copy(st, 0, out, len);
	sqlite3_finalize(st);
out:
	unlock(s);
	return r;
}

enum el_err
store_cohort_open(struct store *s, const char *role_name, char *out, size_t len)
{
	sqlite3_stmt *st;
	enum el_err r;

	lock(s);
	if ((r = prepare(s, &st, "SELECT open FROM role_cohorts WHERE role_name = ?", "t",
	    role_name)) == EL_OK) {
		if ((r = one_row(s, st, "open cohort")) == EL_OK)
			col_copy(st, 0, out, len);
		sqlite3_finalize(st);
	}
	unlock(s);
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
	sqlite3_stmt *st;
	struct vec a = {NULL, 0, 0, sizeof(struct store_live)};
	enum el_err r;

	lock(s);
	/* The role is the last component of the ARN (a role's name is unique in its account,
	 * whatever its path). Extensions mint under their grant's id: the grant is the row. */
	if ((r = prepare(s, &st, "SELECT id, cohort FROM requests"
	    " WHERE state IN ('activating', 'active') AND parent_id IS NULL"
	    " AND cohort IS NOT NULL AND substr(role_arn, -length(?1) - 1) = '/' || ?1"
	    " ORDER BY id", "t", role_name)) == EL_OK) {
		r = each_row(s, st, "live grants", live_row, &a);
		sqlite3_finalize(st);
	}
	unlock(s);
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
	if ((r = prepare(s, &st, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
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
		r = dberr(s, "audit tail");
	sqlite3_finalize(st);
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
	sqlite3_stmt *st;
	enum el_err r;
	int rc;

	lock(s);
	if ((r = prepare(s, &st, sql, arg != NULL ? "t" : NULL, arg)) != EL_OK) {
		unlock(s);
		return r;
	}
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		*out = sqlite3_column_int64(st, 0);
	else
		r = dberr(s, what);
	sqlite3_finalize(st);
	unlock(s);
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
	sqlite3_stmt *st;
	json_t *arr;
	enum el_err r;

	if ((arr = json_array()) == NULL)
		return EL_ENOMEM;
	lock(s);
	r = prepare(s, &st, "SELECT a.seq, a.time, a.actor, a.event, a.request_id, a.data,"
	    " a.prev_hash, a.hash FROM audit a LEFT JOIN requests q ON q.id = a.request_id"
	    " WHERE a.seq > ?1 AND (?2 IS NULL OR a.actor = ?2) AND (?3 IS NULL OR a.event = ?3"
	    " OR a.event LIKE ?3 || '.%') AND (?4 IS NULL OR a.request_id = ?4)"
	    " AND (?5 IS NULL OR q.profile = ?5) AND (?6 IS NULL OR a.time >= ?6)"
	    " ORDER BY a.seq LIMIT ?7", "ittttti", f->since_seq, f->actor, f->event,
	    f->request_id, f->profile, f->since_time, (int64_t)(f->limit > 0 ? f->limit : 1000));
	if (r == EL_OK) {
		r = each_row(s, st, "audit list", audit_row, arr);
		sqlite3_finalize(st);
	}
	unlock(s);
	if (r != EL_OK) {
		json_decref(arr);
		return r;
	}
	*out = arr;
	return EL_OK;
}
