/*
 * store.c — owns the broker's state: every read and write of requests, approvals,
 * grants, SSM sessions, nonces, the outbox, revoked role sessions and the audit chain, in
 * SQL written once for both backends (store_db.h): SQLite, the embedded default
 * (store_sqlite.c), and PostgreSQL (store_pg.c). The SQL keeps to what both run: upserts
 * as INSERT ... ON CONFLICT, CASE rather than scalar MAX, RETURNING rather than the last
 * rowid, an explicit integer column (rid) where SQLite's rowid was used.
 *
 * Also owns what both backends share: a transaction's nesting (store_begin() inside a
 * transaction joins it; a nested rollback fails the whole), which connection a statement
 * uses (writes and the reads of a thread inside its own transaction go to the writer,
 * other reads to a pool of readers, so they never wait for a writer), and the text of the
 * last failure.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "elevate/config.h"
#include "elevate/lifecycle.h"
#include "elevate/log.h"
#include "elevate/store.h"
#include "store_db.h"

/* The store whose transaction this thread has open: its reads go to the writer. */
static _Thread_local struct store *tx_store;
/* The thread's read snapshot (store_read_begin): its store, its reader (NULL once a
 * write transaction ended it early), its depth. */
static _Thread_local struct store *rs_store;
static _Thread_local struct conn *rs_conn;
static _Thread_local int rs_depth;

/* The last failure of this thread, for the messages callers build (503 "unavailable"). */
static _Thread_local char last_error[256];

enum el_err
store_fail(const char *what, const char *msg)
{
	log_err("store: %s: %s", what, msg);
	el_strlcpy(last_error, msg, sizeof(last_error));
	return EL_EDB;
}

void
store_note(const char *msg)
{
	el_strlcpy(last_error, msg, sizeof(last_error));
}

const char *
store_errmsg(void)
{
	return last_error[0] ? last_error : "the database does not answer";
}

/* FNV-1a: the key the backends find a prepared statement by, with its SQL text. */
uint32_t
store_sql_hash(const char *sql)
{
	uint32_t h = 2166136261u;

	while (*sql != '\0')
		h = (h ^ (unsigned char)*sql++) * 16777619u;
	return h;
}

void
store_init(struct store *s, const struct store_backend *be)
{
	pthread_mutexattr_t ma;

	s->be = be;
	atomic_init(&s->entering, 0);
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&s->mu, &ma);
	pthread_mutexattr_destroy(&ma);
	pthread_mutex_init(&s->rd_mu, NULL);
	pthread_cond_init(&s->rd_cv, NULL);
}

void
store_fini(struct store *s)
{
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->rd_mu);
	pthread_cond_destroy(&s->rd_cv);
}

/* A libpq connection string, never a path: postgresql:// or postgres://, or libpq's
 * keyword=value pairs ("host=db1 dbname=elevate"). */
static bool
is_pg(const char *where)
{
	size_t k = strspn(where, "abcdefghijklmnopqrstuvwxyz_");

	if (strncmp(where, "postgresql://", 13) == 0 || strncmp(where, "postgres://", 11) == 0)
		return true;
	return k > 0 && where[k + strspn(where + k, " ")] == '=';
}

enum el_err
store_open_version(const char *where, int version, struct store **out, struct el_why *w)
{
	if (version < 1 || version > STORE_SCHEMA_VERSION)
		return el_fail(w, EL_EINVAL, "no schema version %d", version);
	if (is_pg(where))
		return store_pg_open(where, NULL, version, out, w);
	if (strncmp(where, "sqlite:", 7) == 0)
		where += 7;
	return store_sqlite_open(where, version, out, w);
}

enum el_err
store_open(const char *where, struct store **out, struct el_why *w)
{
	return store_open_version(where, STORE_SCHEMA_VERSION, out, w);
}

enum el_err
store_open_config(const struct config *cfg, struct store **out, struct el_why *w)
{
	char path[4096], where[256];

	if (cfg->store_url != NULL && strcmp(cfg->store_url, "sqlite:") != 0) {
		store_where(cfg, where, sizeof(where));
		log_info("store: %s", where);
		return store_pg_open(cfg->store_url, cfg->store_password_file,
		    STORE_SCHEMA_VERSION, out, w);
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/elevate.db", cfg->state_dir) >=
	    sizeof(path))
		return el_fail(w, EL_EINVAL, "state_dir is too long");
	return store_sqlite_open(path, STORE_SCHEMA_VERSION, out, w);
}

void
store_where(const struct config *cfg, char *buf, size_t len)
{
	char where[192];

	if (cfg->store_url != NULL && strcmp(cfg->store_url, "sqlite:") != 0) {
		store_pg_describe(cfg->store_url, where, sizeof(where));
		snprintf(buf, len, "the PostgreSQL %s", where);
	} else
		snprintf(buf, len, "%s/elevate.db", cfg->state_dir);
}

/* Whether a connection string holds a password: a URI's user:password@, or a password
 * keyword. */
static bool
has_password(const char *url)
{
	const char *a = strstr(url, "://"), *at;
	size_t n;

	if (strstr(url, "password") != NULL)
		return true;
	if (a == NULL)
		return false;
	a += 3;
	n = strcspn(a, "/?");
	at = memchr(a, '@', n);
	return at != NULL && memchr(a, ':', (size_t)(at - a)) != NULL;
}

bool
store_url_valid(const char *url, char *why, size_t len)
{
	if (strcmp(url, "sqlite:") == 0)
		return true;
	if (!is_pg(url)) {
		snprintf(why, len, "must be sqlite:, a postgresql:// URI or libpq's keyword=value "
		    "pairs");
		return false;
	}
	if (store_pg_check(url, why, len))
		return true;
	/* libpq's message may quote the token it choked on */
	if (has_password(url))
		snprintf(why, len, "libpq cannot parse it (its message is not shown: the string "
		    "holds a password; store.password_file keeps it out)");
	return false;
}

void
store_close(struct store *s)
{
	if (s != NULL)
		s->be->close(s);
}

enum el_err
store_checkpointer_start(struct store *s)
{
	return s->be->checkpointer_start(s);
}

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

/*
 * The connection a read uses: the writer when this thread is inside its own transaction
 * (it must see what it wrote); otherwise a free reader, waiting for one when all are busy
 * (each read is one short statement). A store without readers reads through the writer,
 * locked.
 */
static struct conn *
conn_get(struct store *s)
{
	int i;

	if (tx_store == s)
		return s->w;
	if (s->rd[0] == NULL) {
		lock(s);
		return s->w;
	}
	if (rs_store == s && rs_conn != NULL)
		return rs_conn;
	pthread_mutex_lock(&s->rd_mu);
	for (;;) {
		for (i = 0; i < STORE_READERS && s->rd_busy[i]; i++)
			;
		if (i < STORE_READERS)
			break;
		pthread_cond_wait(&s->rd_cv, &s->rd_mu);
	}
	s->rd_busy[i] = true;
	pthread_mutex_unlock(&s->rd_mu);
	return s->rd[i];
}

/* The writer, for a read that must see the thread's transaction (or lock it out). */
static struct conn *
conn_writer(struct store *s)
{
	if (tx_store != s)
		lock(s);
	return s->w;
}

static void
conn_put(struct store *s, struct conn *c)
{
	int i;

	if (c == s->w) {
		if (tx_store != s)
			unlock(s);
		return;
	}
	if (c == rs_conn)
		return;
	pthread_mutex_lock(&s->rd_mu);
	for (i = 0; i < STORE_READERS; i++)
		if (s->rd[i] == c)
			s->rd_busy[i] = false;
	pthread_cond_signal(&s->rd_cv);
	pthread_mutex_unlock(&s->rd_mu);
}

/* ---- statements ---- */

static enum el_err
q_vstart(struct q *q, struct store *s, struct conn *c, bool guard, const char *sql,
    const char *fmt, va_list ap)
{
	memset(q, 0, sizeof(*q));
	q->s = s;
	q->c = c;
	q->sql = sql;
	q->guard = guard;
	return s->be->prepare(q, fmt, ap);
}

static enum q_rc
q_step(struct q *q)
{
	return q->s->be->step(q);
}

static bool
q_isnull(struct q *q, int i)
{
	return q->s->be->isnull(q, i);
}

static const char *
q_text(struct q *q, int i)
{
	return q->s->be->text(q, i);
}

static int64_t
q_int(struct q *q, int i)
{
	return q->s->be->int64(q, i);
}

static const void *
q_blob(struct q *q, int i, size_t *len)
{
	return q->s->be->blob(q, i, len);
}

/* A failed step, logged with what was being done. */
static enum el_err
q_fail(struct q *q, const char *what)
{
	return store_fail(what, q->s->be->errmsg(q));
}

/* A read prepared and bound on c, which q_end() gives back (also when this fails). */
static enum el_err
q_start(struct q *q, struct store *s, struct conn *c, const char *sql, const char *fmt, ...)
{
	va_list ap;
	enum el_err r;

	va_start(ap, fmt);
	r = q_vstart(q, s, c, false, sql, fmt, ap);
	va_end(ap);
	if (r != EL_OK)
		conn_put(s, c);
	return r;
}

/* q_start() on the connection conn_get() gives. */
#define q_read(s, q, ...) q_start((q), (s), conn_get(s), __VA_ARGS__)

static void
q_end(struct q *q)
{
	q->s->be->done(q);
	conn_put(q->s, q->c);
}

/*
 * Steps q to its end, calling fn on every row. Readers fail closed: a loop that stops
 * for anything but the end of the rows is an error, never a shorter list (fewer rows than
 * there are is how revocations get lost).
 */
static enum el_err
each_row(struct q *q, const char *what, enum el_err (*fn)(struct q *, void *), void *arg)
{
	enum el_err r;
	enum q_rc rc;

	while ((rc = q_step(q)) == Q_ROW)
		if ((r = fn(q, arg)) != EL_OK)
			return r;
	if (rc != Q_DONE)
		return q_fail(q, what);
	return EL_OK;
}

/* One row of a single-row query: EL_OK with a row, EL_ENOENT without, EL_EDB on failure. */
static enum el_err
one_row(struct q *q, const char *what)
{
	enum q_rc rc = q_step(q);

	if (rc == Q_ROW)
		return EL_OK;
	return rc == Q_DONE ? EL_ENOENT : q_fail(q, what);
}

static char *
col_str(struct q *q, int i)
{
	const char *t = q_text(q, i);

	return t ? strdup(t) : NULL;
}

static void
col_copy(struct q *q, int i, char *dst, size_t len)
{
	const char *t = q_text(q, i);

	el_strlcpy(dst, t ? t : "", len);
}

/* ---- read snapshots ---- */

void
store_read_begin(struct store *s)
{
	struct conn *c;

	if (rs_store != NULL) {
		/* nested (or another store's: that one keeps its snapshot, this reads as usual) */
		if (rs_store == s)
			rs_depth++;
		return;
	}
	if (tx_store == s || s->rd[0] == NULL || s->be->read_tx == NULL)
		return;
	c = conn_get(s);
	if (s->be->read_tx(c, true) != EL_OK) {
		conn_put(s, c);
		return;
	}
	rs_store = s;
	rs_conn = c;
	rs_depth = 1;
}

/* Ends the snapshot and gives its reader back; the thread reads as usual after it. */
static void
read_unpin(struct store *s)
{
	struct conn *c = rs_conn;

	if (c == NULL)
		return;
	s->be->read_tx(c, false);
	rs_conn = NULL;
	conn_put(s, c);
}

void
store_read_end(struct store *s)
{
	if (rs_store != s || --rs_depth > 0)
		return;
	read_unpin(s);
	rs_store = NULL;
}

/* ---- transactions ---- */

static enum el_err
begin(struct store *s, bool relaxed)
{
	enum el_err r;

	/* A write ends the thread's snapshot: what it reads after must see what it wrote. */
	if (rs_store == s)
		read_unpin(s);

	if (tx_store == s) {
		/* Nested: part of the outer transaction, which must hold the writers' lock if
		 * this one needs it. A relaxed one holds none: fail the whole. */
		if (s->relaxed && !relaxed) {
			s->poisoned = true;
			store_fail("begin", "a transaction that needs the writers' lock was begun "
			    "inside a relaxed one");
			return EL_EINVAL;
		}
		s->depth++;
		return EL_OK;
	}
	atomic_fetch_add(&s->entering, 1);
	lock(s);
	atomic_fetch_sub(&s->entering, 1);
	if ((r = s->be->begin(s, relaxed)) != EL_OK) {
		unlock(s);
		return r;
	}
	s->depth = 1;
	s->poisoned = false;
	s->relaxed = relaxed;
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

enum el_err
store_commit(struct store *s)
{
	if (tx_store != s)
		return EL_EINVAL;
	if (s->depth > 1) {
		s->depth--;
		return EL_OK;
	}
	s->depth = 0;
	tx_store = NULL;
	if (s->poisoned) {
		s->be->rollback(s);
		unlock(s);
		store_note("a part of the transaction failed: it was rolled back");
		return EL_EDB;
	}
	return s->be->commit(s);
}

bool
store_in_transaction(struct store *s)
{
	return tx_store == s;
}

void
store_rollback(struct store *s)
{
	if (tx_store != s)
		return;
	/* A nested rollback poisons the outer transaction: roll the whole thing back. */
	if (s->depth > 1) {
		s->depth--;
		s->poisoned = true;
		return;
	}
	s->depth = 0;
	tx_store = NULL;
	s->be->rollback(s);
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

/* A write that tells the other nodes when it commits (store_notify): in the caller's
 * transaction or one of its own, which the notice joins. */
#define exec_notify(s, ...) exec_told((s), true, NULL, __VA_ARGS__)

/*
 * Runs a write on the writer, in the caller's transaction or in one of its own: a
 * statement without rows, or one whose RETURNING row's first column goes to *id.
 * EL_EEXIST on a constraint violation; *changes (may be NULL): the rows it wrote.
 */
static enum el_err
vexec(struct store *s, int64_t *changes, int64_t *id, const char *sql, const char *fmt,
    va_list ap)
{
	struct q q;
	enum el_err r;
	enum q_rc rc;
	bool own;

	if ((r = own_begin(s, &own)) != EL_OK)
		return r;
	if ((r = q_vstart(&q, s, s->w, !own, sql, fmt, ap)) != EL_OK)
		return own_end(s, own, r);
	rc = q_step(&q);
	if (rc == Q_ROW && id != NULL) {
		*id = q_int(&q, 0);
		rc = q_step(&q);
	}
	if (rc == Q_CONSTRAINT)
		r = EL_EEXIST;
	else if (rc != Q_DONE)
		r = q_fail(&q, sql);
	else if (changes != NULL)
		*changes = s->be->changes(&q);
	s->be->done(&q);
	return own_end(s, own, r);
}

static enum el_err
exec(struct store *s, const char *sql, const char *fmt, ...)
{
	va_list ap;
	enum el_err r;

	va_start(ap, fmt);
	r = vexec(s, NULL, NULL, sql, fmt, ap);
	va_end(ap);
	return r;
}

/* exec() of an INSERT ... RETURNING id: *id (may be NULL) the new row's. */
static enum el_err
exec_id(struct store *s, int64_t *id, const char *sql, const char *fmt, ...)
{
	va_list ap;
	enum el_err r;
	int64_t v = 0;

	va_start(ap, fmt);
	r = vexec(s, NULL, &v, sql, fmt, ap);
	va_end(ap);
	if (r == EL_OK && id != NULL)
		*id = v;
	return r;
}

/* exec() that counts the rows it wrote into *changes (may be NULL); with tell, its commit
 * tells the other nodes (store_notify) when it wrote some. */
static enum el_err
exec_told(struct store *s, bool tell, int64_t *changes, const char *sql, const char *fmt,
    ...)
{
	va_list ap;
	enum el_err r;
	int64_t n = 0;
	bool own;

	if ((r = own_begin(s, &own)) != EL_OK)
		return r;
	va_start(ap, fmt);
	r = vexec(s, &n, NULL, sql, fmt, ap);
	va_end(ap);
	if (r == EL_OK && n > 0 && tell)
		store_notify(s);
	if (changes != NULL)
		*changes = n;
	return own_end(s, own, r);
}

/* exec() of a write that must change exactly one row, else EL_ESTATE. */
static enum el_err
exec_one(struct store *s, const char *sql, const char *fmt, ...)
{
	va_list ap;
	enum el_err r;
	int64_t n = 0;

	va_start(ap, fmt);
	r = vexec(s, &n, NULL, sql, fmt, ap);
	va_end(ap);
	return r == EL_OK && n != 1 ? EL_ESTATE : r;
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

/* A backend that locks the rows it claims is one other nodes use at once. */
bool
store_shared(const struct store *s)
{
	return s->be->claim_lock[0] != '\0';
}

int
store_schema_version(struct store *s)
{
	struct q q;
	int v = -1;

	if (q_read(s, &q, s->be->version_sql, NULL) != EL_OK)
		return -1;
	if (one_row(&q, "schema version") == EL_OK)
		v = (int)q_int(&q, 0);
	q_end(&q);
	return v;
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
read_request(struct q *q, struct store_request *r)
{
	int state;

	memset(r, 0, sizeof(*r));
	col_copy(q, 0, r->id, sizeof(r->id));
	col_copy(q, 1, r->profile, sizeof(r->profile));
	col_copy(q, 2, r->requester, sizeof(r->requester));
	if ((state = lifecycle_state_parse(q_text(q, 3))) < 0) {
		store_note("a request row holds an unknown state");
		log_err("store: request %s: unknown state %s", r->id,
		    q_text(q, 3));
		return EL_EDB;
	}
	r->state = (enum req_state)state;
	r->duration = q_int(q, 4);
	r->reason = col_str(q, 5);
	r->ticket = col_str(q, 6);
	r->role_arn = col_str(q, 7);
	r->region = col_str(q, 8);
	r->created_at = q_int(q, 9);
	r->pending_until = q_int(q, 10);
	r->decided_at = q_int(q, 11);
	r->window_start = q_int(q, 12);
	r->window_end = q_int(q, 13);
	r->ended_at = q_int(q, 14);
	r->failure_code = col_str(q, 15);
	r->failure_message = col_str(q, 16);
	r->next_attempt_at = q_int(q, 17);
	r->attempts = (int)q_int(q, 18);
	r->parent_id = col_str(q, 19);
	col_copy(q, 20, r->cohort, sizeof(r->cohort));
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
	return exec_notify(s, "INSERT INTO requests (" REQ_COLS ", updated_at) VALUES "
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
	struct q q;
	enum el_err e;

	if ((e = q_read(s, &q, "SELECT " REQ_READ_COLS " FROM requests WHERE id = ?", "t",
	    id)) != EL_OK)
		return e;
	if ((e = one_row(&q, "request get")) == EL_OK)
		e = read_request(&q, r);
	q_end(&q);
	return e;
}

/* Every write of a request may move a deadline (a window, a retry, a state with one):
 * the other nodes are told. */
enum el_err
store_request_cas(struct store *s, const struct store_request *r, enum req_state from)
{
	int64_t n = 0;
	enum el_err e;

	e = exec_told(s, true, &n, "UPDATE requests SET state = ?, decided_at = ?,"
	    " window_start = ?, window_end = ?, ended_at = ?, failure_code = ?, failure_message = ?,"
	    " next_attempt_at = ?, attempts = ?, duration = ?, updated_at = ?"
	    " WHERE id = ? AND state = ?", "tzzzzttziiitt", lifecycle_state_name(r->state),
	    r->decided_at, r->window_start, r->window_end, r->ended_at, r->failure_code,
	    r->failure_message, r->next_attempt_at, (int64_t)r->attempts, r->duration, el_now(),
	    r->id, lifecycle_state_name(from));
	return e == EL_OK && n != 1 ? EL_ESTATE : e;
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
request_row(struct q *q, void *arg)
{
	struct vec *a = arg;
	struct store_request *r;
	enum el_err e;

	if ((r = vec_next(a)) == NULL)
		return EL_ENOMEM;
	if ((e = read_request(q, r)) != EL_OK)
		return e;
	a->n++;
	return EL_OK;
}

enum el_err
store_request_list(struct store *s, const struct store_filter *f, struct store_request **out,
    size_t *n)
{
	struct q q;
	struct vec a = {NULL, 0, 0, sizeof(struct store_request)};
	struct store_request *v;
	enum el_err r;

	r = q_read(s, &q, "SELECT " REQ_READ_COLS " FROM requests WHERE"
	    " (?1 IS NULL OR state = ?1)"
	    " AND (?2 IS NULL OR requester = ?2) AND (?3 IS NULL OR profile = ?3)"
	    " AND (?5 = 0 OR created_at >= ?5 OR window_end >= ?5"
	    "  OR (window_start IS NOT NULL AND ended_at IS NULL))"
	    " ORDER BY created_at DESC, rid DESC LIMIT ?4", "tttii",
	    f->by_state ? lifecycle_state_name(f->state) : NULL, f->requester,
	    f->profile, (int64_t)(f->limit > 0 ? f->limit : 500), f->since);
	if (r == EL_OK) {
		r = each_row(&q, "request list", request_row, &a);
		q_end(&q);
	}
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
string_row(struct q *q, void *arg)
{
	struct vec *a = arg;
	char **slot;

	if ((slot = vec_next(a)) == NULL || (*slot = col_str(q, 0)) == NULL)
		return EL_ENOMEM;
	a->n++;
	return EL_OK;
}

/* Collects the first text column of every row, and ends q. */
static enum el_err
collect_strings(struct q *q, char ***out, size_t *n)
{
	struct vec a = {NULL, 0, 0, sizeof(char *)};
	char **v;
	enum el_err r;

	r = each_row(q, "collect", string_row, &a);
	q_end(q);
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

/* A deadline column's name, and how a NULL in it counts: due at once, or never. The
 * condition compares it with ?2 and orders by it. pending_until is never NULL: compared
 * bare, the index on (state, pending_until) ends the scan at the first row not due, where
 * COALESCE read every pending row at every sweep. */
static const struct { const char *name, *cond; } due_cols[] = {
	{"pending_until", "pending_until <= ?2 ORDER BY pending_until"},
	{"window_end", "COALESCE(window_end, 0) <= ?2 ORDER BY window_end"},
	{"next_attempt_at", "COALESCE(next_attempt_at, 0) <= ?2 ORDER BY next_attempt_at"},
	{"retry_at", "next_attempt_at IS NOT NULL AND next_attempt_at <= ?2"
	    " ORDER BY next_attempt_at"},
};
#define NDUE_COLS (sizeof(due_cols) / sizeof(due_cols[0]))

static const char *
due_cond(const char *column)
{
	size_t i;

	for (i = 0; i < NDUE_COLS; i++)
		if (strcmp(column, due_cols[i].name) == 0)
			return due_cols[i].cond;
	return NULL;
}

enum el_err
store_request_due(struct store *s, enum req_state state, const char *column, int64_t until,
    int limit, char ***ids, size_t *n)
{
	const char *cond = due_cond(column);
	char sql[256];
	struct q q;
	enum el_err r;

	if (cond == NULL)
		return EL_EINVAL;
	snprintf(sql, sizeof(sql), "SELECT id FROM requests WHERE state = ?1 AND %s LIMIT ?3",
	    cond);
	if ((r = q_read(s, &q, sql, "tii", lifecycle_state_name(state), until, (int64_t)limit))
	    != EL_OK)
		return r;
	return collect_strings(&q, ids, n);
}

/* ---- leases on due work ---- */

static enum el_err scalar_query(struct store *s, const char *what, int64_t dflt, int64_t *t,
    const char *sql, const char *fmt, ...);

/* Each kind of due work: the state and the deadline column (due_cols). */
static const struct { enum req_state state; const char *column; } due_work[] = {
	[STORE_DUE_LAPSE] = {RS_PENDING, "pending_until"},
	[STORE_DUE_WINDOW_END] = {RS_ACTIVE, "window_end"},
	[STORE_DUE_REVOKE] = {RS_ENDING, "next_attempt_at"},
	[STORE_DUE_ACTIVATE] = {RS_ACTIVATING, "next_attempt_at"},
};

/* A lease nobody holds at ?N (ms): none, or one that ran out. */
#define LEASE_FREE(N) "(lease_until IS NULL OR lease_until <= ?" N ")"

/* The rows of a write's RETURNING (its first column), in the caller's transaction or in
 * one of its own. */
static enum el_err
exec_strings(struct store *s, char ***out, size_t *n, const char *sql, const char *fmt, ...)
{
	struct vec a = {NULL, 0, 0, sizeof(char *)};
	struct q q;
	va_list ap;
	enum el_err r;
	enum q_rc rc;
	bool own;
	char **v;

	if ((r = own_begin(s, &own)) != EL_OK)
		return r;
	va_start(ap, fmt);
	r = q_vstart(&q, s, s->w, !own, sql, fmt, ap);
	va_end(ap);
	if (r != EL_OK)
		return own_end(s, own, r);
	while ((rc = q_step(&q)) == Q_ROW)
		if ((r = string_row(&q, &a)) != EL_OK)
			break;
	if (r == EL_OK && rc != Q_DONE)
		r = q_fail(&q, sql);
	s->be->done(&q);
	v = a.v;
	if (r != EL_OK) {
		while (a.n > 0)
			free(v[--a.n]);
		free(v);
		return own_end(s, own, r);
	}
	*out = v;
	*n = a.n;
	return own_end(s, own, r);
}

/*
 * The claim: one UPDATE of the candidates' leases, the candidates chosen (and, on
 * PostgreSQL, locked, skipping rows a concurrent claim has locked) by its subquery, in
 * deadline order up to the limit. Params: ?1 state, ?2 now (s), ?3 limit, ?4 node, ?5 the
 * lease's end, ?6 now (ms).
 */
enum el_err
store_lease_claim(struct store *s, enum store_due kind, const char *node, int64_t now_ms,
    int64_t until_ms, int limit, char ***ids, size_t *n)
{
	char sql[512];

	if ((unsigned)kind >= sizeof(due_work) / sizeof(due_work[0]) || node == NULL)
		return EL_EINVAL;
	snprintf(sql, sizeof(sql), "UPDATE requests SET lease_node = ?4, lease_until = ?5"
	    " WHERE rid IN (SELECT rid FROM requests WHERE state = ?1 AND " LEASE_FREE("6")
	    " AND %s LIMIT ?3%s) RETURNING id", due_cond(due_work[kind].column),
	    s->be->claim_lock);
	return exec_strings(s, ids, n, sql, "tiitii", lifecycle_state_name(due_work[kind].state),
	    now_ms / 1000, (int64_t)limit, node, until_ms, now_ms);
}

enum el_err
store_lease_take(struct store *s, const char *id, const char *node, int64_t until_ms)
{
	enum el_err r = exec_one(s, "UPDATE requests SET lease_node = ?, lease_until = ?"
	    " WHERE id = ?", "tit", node, until_ms, id);

	return r == EL_ESTATE ? EL_ENOENT : r;
}

enum el_err
store_lease_renew(struct store *s, const char *node, char *const *ids, size_t n,
    int64_t until_ms, size_t *lost)
{
	enum el_err r;
	size_t i, k = 0;
	int64_t c, other;
	bool own;

	if ((r = own_begin(s, &own)) != EL_OK)
		return r;
	for (i = 0; i < n && r == EL_OK; i++) {
		c = other = 0;
		r = exec_told(s, false, &c, "UPDATE requests SET lease_until = ? WHERE id = ?"
		    " AND lease_node = ?", "itt", until_ms, ids[i], node);
		/* Not renewed: let go already (the work ended meanwhile), or another's now. */
		if (r == EL_OK && c == 0)
			r = scalar_query(s, "lease holder", 0, &other, "SELECT COUNT(*) FROM requests"
			    " WHERE id = ? AND lease_node IS NOT NULL AND lease_node <> ?", "tt",
			    ids[i], node);
		k += other > 0;
	}
	if (lost != NULL)
		*lost = k;
	return own_end(s, own, r);
}

/* A lease let go makes the work claimable by every node at once: they are told. */
enum el_err
store_lease_release(struct store *s, const char *id, const char *node)
{
	return exec_notify(s, "UPDATE requests SET lease_node = NULL, lease_until = NULL"
	    " WHERE id = ? AND lease_node = ?", "tt", id, node);
}

enum el_err
store_lease_release_all(struct store *s, const char *node, int64_t *n)
{
	return exec_told(s, true, n, "UPDATE requests SET lease_node = NULL, lease_until = NULL"
	    " WHERE lease_until IS NOT NULL AND lease_node = ?", "t", node);
}

enum el_err
store_lease_get(struct store *s, const char *id, char *node, size_t len, int64_t *until)
{
	struct q q;
	enum el_err r;

	if ((r = q_read(s, &q, "SELECT lease_node, lease_until FROM requests WHERE id = ?", "t",
	    id)) != EL_OK)
		return r;
	if ((r = one_row(&q, "lease")) == EL_OK) {
		col_copy(&q, 0, node, len);
		*until = q_int(&q, 1);
	}
	q_end(&q);
	return r;
}

void
store_notify(struct store *s)
{
	if (tx_store == s && s->be->notify != NULL)
		s->be->notify(s);
}

enum el_err
store_listen(struct store *s, void (*fn)(void *), void *arg)
{
	return s->be->listen != NULL ? s->be->listen(s, fn, arg) : EL_OK;
}

enum el_err
store_claim_node(struct store *s, const char *node, struct el_why *w)
{
	return s->be->claim_node != NULL ? s->be->claim_node(s, node, w) : EL_OK;
}

enum el_err
store_role_lock(struct store *s, const char *role)
{
	return s->be->role_lock != NULL ? s->be->role_lock(s, role, true) : EL_OK;
}

void
store_role_unlock(struct store *s, const char *role)
{
	if (s->be->role_lock != NULL)
		(void)s->be->role_lock(s, role, false);
}

void
store_listen_stop(struct store *s)
{
	if (s != NULL && s->be->listen_stop != NULL)
		s->be->listen_stop(s);
}

/* One int64 from a single-row aggregate, read as q_read() reads; *t = dflt when it is
 * NULL. */
static enum el_err
scalar_query(struct store *s, const char *what, int64_t dflt, int64_t *t, const char *sql,
    const char *fmt, ...)
{
	struct conn *c = conn_get(s);
	struct q q;
	va_list ap;
	enum el_err r;

	va_start(ap, fmt);
	r = q_vstart(&q, s, c, false, sql, fmt, ap);
	va_end(ap);
	if (r != EL_OK) {
		conn_put(s, c);
		return r;
	}
	if ((r = one_row(&q, what)) == EL_ENOENT) {
		store_note("an aggregate had no row");   /* it always has one */
		r = EL_EDB;
	} else if (r == EL_OK)
		*t = q_isnull(&q, 0) ? dflt : q_int(&q, 0);
	q_end(&q);
	return r;
}

enum el_err
store_next_deadline(struct store *s, int64_t warn_lead, int64_t now_ms, int64_t *t)
{
	/* The warning's subquery walks requests_unwarned (a partial index: its WHERE must be
	 * written out as in the index) in window order and stops at the first row; pending
	 * and active walk an index on (state, column) and stop at the first row no lease
	 * holds (leases are few: the work in flight); activating and ending are few. */
	return scalar_query(s, "next deadline", INT64_MAX, t, "SELECT MIN(t) FROM ("
	    " SELECT * FROM (SELECT window_end - ?1 AS t FROM requests"
	    "  WHERE state = 'active' AND warned_at IS NULL AND ?1 > 0"
	    "  AND window_end - window_start > ?1 ORDER BY window_end LIMIT 1) AS w UNION ALL"
	    " SELECT * FROM (SELECT pending_until AS t FROM requests WHERE state = ?2"
	    "  AND " LEASE_FREE("6") " ORDER BY pending_until LIMIT 1) AS p UNION ALL"
	    " SELECT * FROM (SELECT window_end AS t FROM requests WHERE state = ?3"
	    "  AND " LEASE_FREE("6") " ORDER BY window_end LIMIT 1) AS a UNION ALL"
	    " SELECT MIN(COALESCE(next_attempt_at, 0)) FROM requests"
	    "  WHERE (state = ?4 OR state = ?5) AND " LEASE_FREE("6") ") AS d", "itttti",
	    warn_lead, lifecycle_state_name(RS_PENDING), lifecycle_state_name(RS_ACTIVE),
	    lifecycle_state_name(RS_ENDING), lifecycle_state_name(RS_ACTIVATING), now_ms);
}

enum el_err
store_lease_next_end(struct store *s, int64_t now_ms, int64_t *t)
{
	return scalar_query(s, "next lease end", INT64_MAX, t,
	    "SELECT MIN(lease_until) FROM requests WHERE lease_until > ?", "i", now_ms);
}

enum el_err
store_extensions_in_flight(struct store *s, const char *parent_id, int64_t *sum)
{
	return scalar_query(s, "extensions in flight", 0, sum, "SELECT COALESCE(SUM(duration),"
	    " 0) FROM requests WHERE parent_id = ? AND state = ?", "tt", parent_id,
	    lifecycle_state_name(RS_ACTIVATING));
}

static enum el_err
count_row(struct q *q, void *arg)
{
	const char *k = q_text(q, 0);

	if (k == NULL || json_object_set_new(arg, k, json_integer(q_int(q, 1))))
		return EL_ENOMEM;
	return EL_OK;
}

static json_t *
group_counts(struct store *s, const char *sql)
{
	struct q q;
	json_t *o = json_object();
	enum el_err r = o ? EL_OK : EL_ENOMEM;

	if (r == EL_OK && (r = q_read(s, &q, sql, NULL)) == EL_OK) {
		r = each_row(&q, "counts", count_row, o);
		q_end(&q);
	}
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
	struct q q;
	enum el_err r;

	if ((r = q_read(s, &q, "SELECT id FROM requests WHERE state = ?4 AND"
	    " warned_at IS NULL AND window_end - window_start > ?2 AND window_end - ?2 <= ?1"
	    " ORDER BY window_end LIMIT ?3", "iiit", now, warn_lead, (int64_t)limit,
	    lifecycle_state_name(RS_ACTIVE))) != EL_OK)
		return r;
	return collect_strings(&q, ids, n);
}

enum el_err
store_request_warned(struct store *s, const char *id, int64_t at)
{
	/* Once: of two nodes warning the same grant, the second finds it warned. */
	return exec_one(s, "UPDATE requests SET warned_at = ? WHERE id = ? AND state = ?"
	    " AND warned_at IS NULL", "itt", at, id, lifecycle_state_name(RS_ACTIVE));
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
	if ((r = exec(s, "INSERT INTO health (k, at) VALUES (1, ?) ON CONFLICT (k) DO UPDATE"
	    " SET at = excluded.at", "i", el_now())) != EL_OK) {
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
approval_row(struct q *q, void *arg)
{
	struct vec *a = arg;
	struct store_approval *v;

	if ((v = vec_next(a)) == NULL)
		return EL_ENOMEM;
	memset(v, 0, sizeof(*v));
	col_copy(q, 0, v->approver, sizeof(v->approver));
	col_copy(q, 1, v->decision, sizeof(v->decision));
	v->comment = col_str(q, 2);
	v->at = q_int(q, 3);
	col_copy(q, 4, v->via, sizeof(v->via));
	a->n++;
	return EL_OK;
}

enum el_err
store_approval_list(struct store *s, const char *request_id, struct store_approval **out,
    size_t *n)
{
	struct q q;
	struct vec a = {NULL, 0, 0, sizeof(struct store_approval)};
	enum el_err r;

	if ((r = q_read(s, &q, "SELECT approver, decision, comment, at, via FROM approvals"
	    " WHERE request_id = ? ORDER BY at, rid", "t", request_id)) == EL_OK) {
		r = each_row(&q, "approval list", approval_row, &a);
		q_end(&q);
	}
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
	return exec(s, "INSERT INTO grants (request_id, role_session_name, assumed_role_arn,"
	    " assumed_role_id, access_key_id, creds_box, creds_expire_at, minted_at)"
	    " VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (request_id) DO UPDATE SET"
	    " role_session_name = excluded.role_session_name,"
	    " assumed_role_arn = excluded.assumed_role_arn,"
	    " assumed_role_id = excluded.assumed_role_id, access_key_id = excluded.access_key_id,"
	    " creds_box = excluded.creds_box, creds_expire_at = excluded.creds_expire_at,"
	    " minted_at = excluded.minted_at", "tttttbzz", g->request_id,
	    g->role_session_name, g->assumed_role_arn, g->assumed_role_id, g->access_key_id,
	    (const void *)g->creds_box, g->creds_box_len, g->creds_expire_at, g->minted_at);
}

enum el_err
store_grant_get(struct store *s, const char *request_id, struct store_grant *g)
{
	struct q q;
	const void *blob;
	size_t blen;
	enum el_err r;

	if ((r = q_read(s, &q, "SELECT request_id, role_session_name, assumed_role_arn,"
	    " assumed_role_id, access_key_id, creds_box, creds_expire_at, minted_at"
	    " FROM grants WHERE request_id = ?", "t", request_id)) != EL_OK)
		return r;
	if ((r = one_row(&q, "grant get")) == EL_OK) {
		memset(g, 0, sizeof(*g));
		col_copy(&q, 0, g->request_id, sizeof(g->request_id));
		col_copy(&q, 1, g->role_session_name, sizeof(g->role_session_name));
		g->assumed_role_arn = col_str(&q, 2);
		g->assumed_role_id = col_str(&q, 3);
		g->access_key_id = col_str(&q, 4);
		blob = q_blob(&q, 5, &blen);
		if (blob != NULL && blen > 0 && (g->creds_box = malloc(blen)) != NULL) {
			memcpy(g->creds_box, blob, blen);
			g->creds_box_len = blen;
		}
		g->creds_expire_at = q_int(&q, 6);
		g->minted_at = q_int(&q, 7);
	}
	q_end(&q);
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
session_row(struct q *q, void *arg)
{
	struct vec *a = arg;
	struct store_session *v;

	if ((v = vec_next(a)) == NULL)
		return EL_ENOMEM;
	v->session_id = col_str(q, 0);
	v->target = col_str(q, 1);
	v->document = col_str(q, 2);
	v->started_at = q_int(q, 3);
	v->terminated_at = q_int(q, 4);
	a->n++;
	return v->session_id && v->target ? EL_OK : EL_ENOMEM;
}

enum el_err
store_session_list(struct store *s, const char *request_id, struct store_session **out,
    size_t *n)
{
	struct q q;
	struct vec a = {NULL, 0, 0, sizeof(struct store_session)};
	enum el_err r;

	if ((r = q_read(s, &q, "SELECT session_id, target, document, started_at, terminated_at"
	    " FROM sessions WHERE request_id = ? ORDER BY started_at, rid", "t", request_id))
	    == EL_OK) {
		r = each_row(&q, "session list", session_row, &a);
		q_end(&q);
	}
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

/* Deletes up to NONCE_PRUNE_EACH of kind's nonces seen before `before`, the oldest first,
 * skipping those a concurrent claim is deleting (its backend's claim_lock). */
static enum el_err
nonce_prune_some(struct store *s, const char *kind, int64_t before)
{
	char sql[256];

	snprintf(sql, sizeof(sql), "DELETE FROM nonces WHERE rid IN (SELECT rid FROM nonces"
	    " WHERE kind = ?1 AND seen_at < ?2 ORDER BY seen_at LIMIT " NONCE_PRUNE_EACH "%s)",
	    s->be->claim_lock);
	return exec(s, sql, "ti", kind, before);
}

/*
 * A claim is a relaxed transaction of its own: it needs no fsync (SQLite: its group
 * commits with synchronous=NORMAL when nothing else in it needs one; PostgreSQL:
 * synchronous_commit off). The write is done before the answer, so a kill of the process
 * loses no claim; what an OS crash could lose is covered by refusing, after a restart,
 * signatures dated before it (engine_authenticate). It touches the nonces table alone,
 * so on PostgreSQL it takes no writers' lock: the unique key refuses a replay to any
 * node (a claim of the same nonce waits for the first to commit, then fails), and the
 * pruning skips rows another claim is deleting.
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
		r = nonce_prune_some(s, kind, prune_before);
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

/* ---- scheduled windows ---- */

enum el_err
store_schedule_insert(struct store *s, const char *request_id, int64_t start_at)
{
	return exec(s, "INSERT INTO schedules (request_id, start_at) VALUES (?, ?)", "ti",
	    request_id, start_at);
}

enum el_err
store_schedule_get(struct store *s, const char *request_id, int64_t *start_at)
{
	enum el_err r;

	/* an aggregate: one row, NULL when there is no schedule */
	if ((r = scalar_query(s, "schedule", INT64_MIN, start_at, "SELECT MAX(start_at) FROM"
	    " schedules WHERE request_id = ?", "t", request_id)) != EL_OK)
		return r;
	return *start_at == INT64_MIN ? EL_ENOENT : EL_OK;
}

/* ---- bundles ---- */

enum el_err
store_bundle_insert(struct store *s, const char *id, const char *requester,
    int64_t created_at)
{
	return exec(s, "INSERT INTO bundles (id, requester, created_at) VALUES (?, ?, ?)", "tti",
	    id, requester, created_at);
}

enum el_err
store_bundle_member_insert(struct store *s, const char *bundle_id, const char *request_id,
    int position)
{
	return exec(s, "INSERT INTO bundle_members (request_id, bundle_id, position)"
	    " VALUES (?, ?, ?)", "tti", request_id, bundle_id, (int64_t)position);
}

/* The first column of a one-row read into buf; EL_ENOENT for no row. */
static enum el_err
string_query(struct store *s, char *buf, size_t len, const char *sql, const char *arg)
{
	char **v = NULL;
	size_t n = 0, i;
	struct q q;
	enum el_err r;

	if ((r = q_read(s, &q, sql, "t", arg)) != EL_OK ||
	    (r = collect_strings(&q, &v, &n)) != EL_OK)
		return r;
	if (n > 0)
		el_strlcpy(buf, v[0], len);
	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
	return n > 0 ? EL_OK : EL_ENOENT;
}

enum el_err
store_bundle_members(struct store *s, const char *bundle_id, char *requester, char ***ids,
    size_t *n)
{
	struct q q;
	enum el_err r;

	if ((r = string_query(s, requester, STORE_NAME_MAX, "SELECT requester FROM bundles"
	    " WHERE id = ?", bundle_id)) != EL_OK)
		return r;
	if ((r = q_read(s, &q, "SELECT request_id FROM bundle_members WHERE bundle_id = ?"
	    " ORDER BY position", "t", bundle_id)) != EL_OK)
		return r;
	return collect_strings(&q, ids, n);
}

enum el_err
store_bundle_of(struct store *s, const char *request_id, char *bundle_id, size_t len)
{
	return string_query(s, bundle_id, len, "SELECT bundle_id FROM bundle_members"
	    " WHERE request_id = ?", request_id);
}

/* ---- break-glass reviews ---- */

enum el_err
store_glass_insert(struct store *s, const char *request_id, int64_t review_due_at)
{
	return exec(s, "INSERT INTO glass (request_id, review_due_at) VALUES (?, ?)", "ti",
	    request_id, review_due_at);
}

enum el_err
store_glass_get(struct store *s, const char *request_id, struct store_glass *g)
{
	struct q q;
	enum el_err r;

	memset(g, 0, sizeof(*g));
	if ((r = q_read(s, &q, "SELECT review_due_at, COALESCE(reviewed_at, 0),"
	    " COALESCE(reviewed_by, ''), COALESCE(review, ''), COALESCE(escalated_at, 0)"
	    " FROM glass WHERE request_id = ?", "t", request_id)) != EL_OK)
		return r;
	if ((r = one_row(&q, "glass")) == EL_OK) {
		g->review_due_at = q_int(&q, 0);
		g->reviewed_at = q_int(&q, 1);
		col_copy(&q, 2, g->reviewed_by, sizeof(g->reviewed_by));
		col_copy(&q, 3, g->review, sizeof(g->review));
		g->escalated_at = q_int(&q, 4);
	}
	q_end(&q);
	return r;
}

enum el_err
store_glass_review(struct store *s, const char *request_id, const char *by,
    const char *review, int64_t at)
{
	enum el_err r = exec_one(s, "UPDATE glass SET reviewed_at = ?, reviewed_by = ?,"
	    " review = ? WHERE request_id = ? AND reviewed_at IS NULL", "ittt", at, by, review,
	    request_id);
	return r == EL_ENOENT ? EL_ESTATE : r;
}

enum el_err
store_glass_escalate(struct store *s, const char *request_id, int64_t at)
{
	enum el_err r = exec_one(s, "UPDATE glass SET escalated_at = ? WHERE request_id = ?"
	    " AND reviewed_at IS NULL AND escalated_at IS NULL", "it", at, request_id);
	return r == EL_ENOENT ? EL_ESTATE : r;
}

enum el_err
store_glass_due(struct store *s, int64_t now, int limit, char ***ids, size_t *n)
{
	struct q q;
	enum el_err r;

	/* the WHERE is the partial index's */
	if ((r = q_read(s, &q, "SELECT request_id FROM glass WHERE reviewed_at IS NULL AND"
	    " escalated_at IS NULL AND review_due_at <= ? ORDER BY review_due_at LIMIT ?", "ii",
	    now, (int64_t)limit)) != EL_OK)
		return r;
	return collect_strings(&q, ids, n);
}

enum el_err
store_glass_next_due(struct store *s, int64_t *t)
{
	return scalar_query(s, "next review due", INT64_MAX, t, "SELECT MIN(review_due_at)"
	    " FROM glass WHERE reviewed_at IS NULL AND escalated_at IS NULL", NULL);
}

/* ---- outbox ---- */

enum el_err
store_mail_enqueue(struct store *s, const char *request_id, const char *rcpt,
    const char *subject, const char *message, const char *message_id, int64_t now,
    int64_t *id)
{
	enum el_err r;
	bool own;

	/* The other nodes' mailers are told of the new mail. */
	if ((r = own_begin(s, &own)) != EL_OK)
		return r;
	r = exec_id(s, id, "INSERT INTO outbox (request_id, rcpt, subject, message, message_id,"
	    " next_attempt_at, created_at) VALUES (?,?,?,?,?,?,?) RETURNING id", "tttttii",
	    request_id, rcpt, subject, message, message_id, now, now);
	if (r == EL_OK)
		store_notify(s);
	return own_end(s, own, r);
}

/* A mail is claimed by a node (claimed_by) until claimed_until, inclusive; a claim that
 * ran out is anyone's. */
#define MAIL_CLAIMABLE "state = 'queued' AND (claimed_until IS NULL OR claimed_until < ?2)"

enum el_err
store_mail_claim(struct store *s, const char *node, int64_t now, int64_t lease,
    struct store_mail *m)
{
	char sql[512];
	struct q q;
	enum el_err r, c;

	/* The row is chosen (and on PostgreSQL locked) by the subquery, and checked again by
	 * the UPDATE: a claim another node committed meanwhile is seen there. */
	snprintf(sql, sizeof(sql), "UPDATE outbox SET claimed_by = ?1, claimed_until = ?3"
	    " WHERE id = (SELECT id FROM outbox WHERE " MAIL_CLAIMABLE " AND next_attempt_at"
	    " <= ?2 ORDER BY next_attempt_at, id LIMIT 1%s) AND " MAIL_CLAIMABLE " RETURNING id,"
	    " request_id, rcpt, subject, message, attempts, next_attempt_at, state, last_error",
	    s->be->claim_lock);
	if ((r = store_begin_relaxed(s)) != EL_OK)
		return r;
	memset(m, 0, sizeof(*m));
	if ((r = q_start(&q, s, s->w, sql, "tii", node, now, now + lease)) == EL_OK) {
		if ((r = one_row(&q, "mail claim")) == EL_OK) {
			m->id = q_int(&q, 0);
			m->request_id = col_str(&q, 1);
			m->rcpt = col_str(&q, 2);
			m->subject = col_str(&q, 3);
			m->message = col_str(&q, 4);
			m->attempts = (int)q_int(&q, 5);
			m->next_attempt_at = q_int(&q, 6);
			col_copy(&q, 7, m->state, sizeof(m->state));
			m->last_error = col_str(&q, 8);
			if (q_step(&q) != Q_DONE)
				r = q_fail(&q, "mail claim");
			else if (m->rcpt == NULL || m->subject == NULL || m->message == NULL)
				r = EL_ENOMEM;
		}
		q_end(&q);
	}
	if (r != EL_OK && r != EL_ENOENT) {
		store_mail_free(m);
		store_rollback(s);
		return r;
	}
	if ((c = store_commit(s)) != EL_OK) {
		store_mail_free(m);
		return c;
	}
	return r;
}

enum el_err
store_mail_update(struct store *s, const char *node, const struct store_mail *m)
{
	/* A sent mail's body is dropped: approval mails carry a live token. A mail to be
	 * tried again is anyone's at its next attempt. */
	return exec_one(s, "UPDATE outbox SET state = ?1, attempts = ?2, next_attempt_at = ?3,"
	    " last_error = ?4, message = CASE WHEN ?1 = 'sent' THEN '' ELSE message END,"
	    " claimed_by = CASE WHEN ?1 = 'queued' THEN NULL ELSE claimed_by END,"
	    " claimed_until = NULL"
	    " WHERE id = ?5 AND claimed_by = ?6 AND state = 'queued'", "tiitit", m->state,
	    (int64_t)m->attempts, m->next_attempt_at, m->last_error, m->id, node);
}

enum el_err
store_mail_release(struct store *s, const char *node)
{
	return exec(s, "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL"
	    " WHERE claimed_by = ? AND state = 'queued'", "t", node);
}

enum el_err
store_mail_next_due(struct store *s, int64_t *t)
{
	/* A queued mail is due at next_attempt_at, or when the claim on it runs out if that
	 * is later: the earliest of each kind, each the head of an index (outbox_next,
	 * outbox_claims), never a scan of the queue. */
	return scalar_query(s, "mail next due", INT64_MAX, t, "SELECT MIN(t) FROM ("
	    " SELECT * FROM (SELECT next_attempt_at AS t FROM outbox WHERE state = 'queued'"
	    "  AND (claimed_until IS NULL OR claimed_until < next_attempt_at)"
	    "  ORDER BY next_attempt_at LIMIT 1) AS n UNION ALL"
	    " SELECT * FROM (SELECT claimed_until + 1 AS t FROM outbox WHERE state = 'queued'"
	    "  AND claimed_until >= next_attempt_at ORDER BY claimed_until LIMIT 1) AS c) AS d",
	    NULL);
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

/* ---- webhook deliveries ---- */

enum el_err
store_delivery_insert(struct store *s, const struct store_delivery *d)
{
	return exec(s, "INSERT INTO webhook_deliveries (id, webhook, seq, event, request_id,"
	    " payload, next_attempt_at, give_up_at, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
	    "ttitttiii", d->id, d->webhook, d->seq, d->event, d->request_id, d->payload,
	    d->next_attempt_at, d->give_up_at, d->created_at);
}

/* A webhook's deliveries go out in the order of their events: only the oldest queued one
 * of each webhook is ever due (the head). */
#define DELIVERY_HEAD "state = 'queued' AND NOT EXISTS (SELECT 1 FROM webhook_deliveries o" \
	" WHERE o.webhook = d.webhook AND o.state = 'queued' AND o.rid < d.rid)"

enum el_err
store_delivery_claim(struct store *s, int64_t now, int64_t lease_until, const char *node,
    struct store_delivery *d)
{
	struct q q;
	enum el_err r;

	memset(d, 0, sizeof(*d));
	if ((r = store_begin_relaxed(s)) != EL_OK)
		return r;
	if ((r = q_read(s, &q, "SELECT id, webhook, seq, event, request_id, payload, attempts,"
	    " next_attempt_at, give_up_at, created_at FROM webhook_deliveries d WHERE "
	    DELIVERY_HEAD " AND next_attempt_at <= ?1 AND COALESCE(lease_until, 0) <= ?1"
	    " ORDER BY next_attempt_at, rid LIMIT 1", "i", now)) != EL_OK) {
		store_rollback(s);
		return r;
	}
	if ((r = one_row(&q, "next delivery")) == EL_OK) {
		col_copy(&q, 0, d->id, sizeof(d->id));
		col_copy(&q, 1, d->webhook, sizeof(d->webhook));
		d->seq = q_int(&q, 2);
		col_copy(&q, 3, d->event, sizeof(d->event));
		d->request_id = col_str(&q, 4);
		d->payload = col_str(&q, 5);
		d->attempts = (int)q_int(&q, 6);
		d->next_attempt_at = q_int(&q, 7);
		d->give_up_at = q_int(&q, 8);
		d->created_at = q_int(&q, 9);
		if (d->payload == NULL)
			r = EL_ENOMEM;
	}
	q_end(&q);
	/* The lease is checked again by the write itself: a claim takes no writers' lock
	 * (store_begin_relaxed), so another node may have claimed the row since the read; on
	 * PostgreSQL the UPDATE then waits for that commit and sees its lease. */
	if (r == EL_OK && (r = exec_one(s, "UPDATE webhook_deliveries SET lease_until = ?,"
	    " leased_by = ? WHERE id = ? AND state = 'queued' AND COALESCE(lease_until, 0) <= ?",
	    "itti", lease_until, node, d->id, now)) == EL_ESTATE)
		r = EL_ENOENT;           /* taken meanwhile: nothing claimed */
	if (r != EL_OK) {
		store_rollback(s);
		store_delivery_free(d);
		return r;
	}
	if ((r = store_commit(s)) != EL_OK)
		store_delivery_free(d);
	return r;
}

enum el_err
store_delivery_done(struct store *s, const struct store_delivery *d, const char *state,
    const char *node, int64_t now)
{
	/* A sent delivery's document is dropped: the audit chain holds the event. */
	return exec_one(s, "UPDATE webhook_deliveries SET state = ?1, attempts = ?2,"
	    " next_attempt_at = ?3, last_error = ?4, lease_until = NULL, leased_by = NULL,"
	    " sent_at = CASE WHEN ?1 = 'sent' THEN ?5 ELSE sent_at END,"
	    " payload = CASE WHEN ?1 = 'sent' THEN '' ELSE payload END"
	    " WHERE id = ?6 AND state = 'queued' AND leased_by = ?7", "tiititt", state,
	    (int64_t)d->attempts, d->next_attempt_at, d->last_error, now, d->id, node);
}

enum el_err
store_delivery_release(struct store *s, const char *node)
{
	return exec(s, "UPDATE webhook_deliveries SET lease_until = NULL, leased_by = NULL"
	    " WHERE state = 'queued' AND leased_by = ?", "t", node);
}

enum el_err
store_delivery_next_due(struct store *s, int64_t *t)
{
	return scalar_query(s, "next delivery due", INT64_MAX, t, "SELECT MIN(CASE WHEN"
	    " COALESCE(lease_until, 0) > next_attempt_at THEN lease_until ELSE next_attempt_at"
	    " END) FROM webhook_deliveries d WHERE " DELIVERY_HEAD, NULL);
}

json_t *
store_delivery_counts(struct store *s)
{
	return group_counts(s, "SELECT state, COUNT(*) FROM webhook_deliveries GROUP BY state");
}

void
store_delivery_free(struct store_delivery *d)
{
	if (d == NULL)
		return;
	free(d->request_id);
	free(d->payload);
	free(d->last_error);
	d->request_id = d->payload = d->last_error = NULL;
}

/* ---- revoked role sessions ---- */

enum el_err
store_revoked_add(struct store *s, const struct store_revoked *r)
{
	/* Never shortens an entry. The deny policy names userids, not expiries: an entry
	 * already in IAM stays there while it lives, so extending it needs no new sync. */
	return exec(s, "INSERT INTO revoked (userid, role_name, request_id, expires_at)"
	    " VALUES (?1,?2,?3,?4) ON CONFLICT (userid) DO UPDATE SET expires_at = CASE"
	    " WHEN excluded.expires_at > revoked.expires_at THEN excluded.expires_at"
	    " ELSE revoked.expires_at END", "ttti", r->userid, r->role_name,
	    r->request_id, r->expires_at);
}

struct revoked_acc {
	struct vec a;
	int64_t mark;
};

static enum el_err
revoked_row(struct q *q, void *arg)
{
	struct revoked_acc *acc = arg;
	struct store_revoked *v;

	if ((v = vec_next(&acc->a)) == NULL)
		return EL_ENOMEM;
	v->role_name = col_str(q, 0);
	v->userid = col_str(q, 1);
	v->request_id = col_str(q, 2);
	v->expires_at = q_int(q, 3);
	col_copy(q, 5, v->cohort, sizeof(v->cohort));
	acc->a.n++;
	if (q_int(q, 4) > acc->mark)
		acc->mark = q_int(q, 4);
	return v->role_name && v->userid && v->request_id ? EL_OK : EL_ENOMEM;
}

enum el_err
store_revoked_list(struct store *s, const char *role_name, int64_t alive_after,
    struct store_revoked **out, size_t *n, int64_t *mark)
{
	struct q q;
	struct revoked_acc acc = {{NULL, 0, 0, sizeof(struct store_revoked)}, 0};
	enum el_err r;

	/* The highest rid listed marks the listing: a row added later gets a higher one
	 * (rows are pruned only by the reaper, before it lists). */
	if ((r = q_read(s, &q, "SELECT v.role_name, v.userid, v.request_id, v.expires_at,"
	    " v.rid, q.cohort FROM revoked v LEFT JOIN requests q ON q.id = v.request_id"
	    " WHERE v.role_name = ? AND v.expires_at > ? ORDER BY v.userid", "ti",
	    role_name, alive_after)) == EL_OK) {
		r = each_row(&q, "revoked list", revoked_row, &acc);
		q_end(&q);
	}
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
	return exec(s, "UPDATE revoked SET synced_at = ? WHERE role_name = ? AND rid <= ?"
	    " AND synced_at IS NULL", "iti", at, role_name, mark);
}

enum el_err
store_revoked_unsynced_roles(struct store *s, int64_t alive_after, char ***roles, size_t *n)
{
	struct q q;
	enum el_err r;

	if ((r = q_read(s, &q, "SELECT DISTINCT role_name FROM revoked WHERE synced_at IS NULL"
	    " AND expires_at > ? ORDER BY role_name", "i", alive_after)) != EL_OK)
		return r;
	return collect_strings(&q, roles, n);
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
	struct q q;
	enum el_err r;
	bool own;

	if ((r = own_begin(s, &own)) != EL_OK)
		return r;
	/* The role's open cohort, opened with `fresh` if it has none; a request keeps the
	 * first it was given. */
	if ((r = exec(s, "INSERT INTO role_cohorts (role_name, open) VALUES (?, ?)"
	    " ON CONFLICT (role_name) DO NOTHING", "tt", role_name, fresh)) != EL_OK ||
	    (r = exec(s, "UPDATE requests SET cohort = (SELECT open FROM role_cohorts"
	    " WHERE role_name = ?) WHERE id = ? AND cohort IS NULL", "tt", role_name, id))
	    != EL_OK)
		goto out;
	if ((r = q_read(s, &q, "SELECT cohort FROM requests WHERE id = ?", "t", id)) != EL_OK)
		goto out;
	if ((r = one_row(&q, "request cohort")) == EL_OK)
		col_copy(&q, 0, out, len);
	q_end(&q);
out:
	return own_end(s, own, r);
}

enum el_err
store_cohort_open(struct store *s, const char *role_name, char *out, size_t len)
{
	struct q q;
	enum el_err r;

	if ((r = q_read(s, &q, "SELECT open FROM role_cohorts WHERE role_name = ?", "t",
	    role_name)) != EL_OK)
		return r;
	if ((r = one_row(&q, "open cohort")) == EL_OK)
		col_copy(&q, 0, out, len);
	q_end(&q);
	return r;
}

enum el_err
store_cohort_close(struct store *s, const char *role_name, const char *fresh)
{
	return exec(s, "INSERT INTO role_cohorts (role_name, open) VALUES (?1, ?2)"
	    " ON CONFLICT (role_name) DO UPDATE SET open = ?2", "tt", role_name, fresh);
}

static enum el_err
live_row(struct q *q, void *arg)
{
	struct vec *a = arg;
	struct store_live *v;

	if ((v = vec_next(a)) == NULL)
		return EL_ENOMEM;
	col_copy(q, 0, v->request_id, sizeof(v->request_id));
	col_copy(q, 1, v->cohort, sizeof(v->cohort));
	a->n++;
	return EL_OK;
}

enum el_err
store_live_grants(struct store *s, const char *role_name, struct store_live **out,
    size_t *n)
{
	struct q q;
	struct vec a = {NULL, 0, 0, sizeof(struct store_live)};
	enum el_err r;

	/* The role is the last component of the ARN (a role's name is unique in its account,
	 * whatever its path): its last length + 1 characters are "/" and the name (substr
	 * from a positive start: a negative one counts from the end in SQLite only).
	 * Extensions mint under their grant's id: the grant is the row. */
	if ((r = q_read(s, &q, "SELECT id, cohort FROM requests"
	    " WHERE state IN ('activating', 'active') AND parent_id IS NULL"
	    " AND cohort IS NOT NULL"
	    " AND substr(role_arn, length(role_arn) - length(?1)) = '/' || ?1"
	    " ORDER BY id", "t", role_name)) == EL_OK) {
		r = each_row(&q, "live grants", live_row, &a);
		q_end(&q);
	}
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
	struct q q;
	const void *h;
	size_t len = 0;
	enum el_err r;

	/* On the writer: the appender's read of the tail and its insert are one write. */
	if ((r = q_start(&q, s, conn_writer(s), "SELECT seq, hash FROM audit"
	    " ORDER BY seq DESC LIMIT 1", NULL)) != EL_OK)
		return r;
	if ((r = one_row(&q, "audit tail")) == EL_ENOENT) {
		*seq = 0;
		memset(hash, 0, AUDIT_HASH_BYTES);
		r = EL_OK;
	} else if (r == EL_OK) {
		if ((h = q_blob(&q, 1, &len)) != NULL && len == AUDIT_HASH_BYTES) {
			*seq = q_int(&q, 0);
			memcpy(hash, h, AUDIT_HASH_BYTES);
		} else
			r = store_fail("audit tail", "the last audit record has no hash");
	}
	q_end(&q);
	return r;
}

enum el_err
store_audit_insert(struct store *s, const struct audit_rec *r)
{
	char *data;
	enum el_err e;

	/* The chain's tail is read and appended to under the writers' lock. */
	if (tx_store == s && s->relaxed) {
		s->poisoned = true;
		store_fail("audit insert", "an audit record in a relaxed transaction");
		return EL_EINVAL;
	}
	if ((data = json_dumps(r->data, JSON_COMPACT | JSON_SORT_KEYS)) == NULL)
		return EL_ENOMEM;
	e = exec(s, "INSERT INTO audit (seq, time, actor, event, request_id, data, prev_hash,"
	    " hash) VALUES (?,?,?,?,?,?,?,?)", "itttttbb", r->seq, r->time, r->actor, r->event,
	    r->request_id, data, (const void *)r->prev_hash, (size_t)AUDIT_HASH_BYTES,
	    (const void *)r->hash, (size_t)AUDIT_HASH_BYTES);
	free(data);
	return e;
}

static enum el_err
audit_row(struct q *q, void *arg)
{
	struct audit_rec rec;
	json_error_t je;
	const void *h;
	size_t len;
	json_t *j;

	memset(&rec, 0, sizeof(rec));
	rec.seq = q_int(q, 0);
	col_copy(q, 1, rec.time, sizeof(rec.time));
	rec.actor = col_str(q, 2);
	rec.event = col_str(q, 3);
	rec.request_id = col_str(q, 4);
	rec.data = json_loads(q_text(q, 5), 0, &je);
	if ((h = q_blob(q, 6, &len)) != NULL && len == AUDIT_HASH_BYTES)
		memcpy(rec.prev_hash, h, AUDIT_HASH_BYTES);
	if ((h = q_blob(q, 7, &len)) != NULL && len == AUDIT_HASH_BYTES)
		memcpy(rec.hash, h, AUDIT_HASH_BYTES);
	j = rec.data && rec.actor && rec.event ? audit_rec_json(&rec) : NULL;
	json_decref(rec.data);
	free(rec.actor);
	free(rec.event);
	free(rec.request_id);
	if (j == NULL) {
		store_note("an audit record cannot be read");
		return EL_EDB;
	}
	return json_array_append_new(arg, j) == 0 ? EL_OK : EL_ENOMEM;
}

/* One integer from a one-row query with at most one text parameter. */
static enum el_err
audit_scalar(struct store *s, const char *sql, const char *arg, const char *what,
    int64_t *out)
{
	return scalar_query(s, what, 0, out, sql, arg != NULL ? "t" : NULL, arg);
}

enum el_err
store_audit_last_event(struct store *s, const char *event, int64_t *seq)
{
	/* Backwards from the head, which stops at the first match: max(seq) WHERE ... reads
	 * the whole table on SQLite. */
	return audit_scalar(s, "SELECT coalesce((SELECT seq FROM audit WHERE event = ?"
	    " ORDER BY seq DESC LIMIT 1), 0)", event, "audit last event", seq);
}

enum el_err
store_audit_count(struct store *s, int64_t *n)
{
	return audit_scalar(s, "SELECT count(*) FROM audit", NULL, "audit count", n);
}

/* The rows of an audit query (the columns audit_row reads), as a JSON array. */
static enum el_err
audit_rows(struct q *q, enum el_err r, json_t **out)
{
	json_t *arr;

	if (r != EL_OK)
		return r;
	if ((arr = json_array()) == NULL) {
		q_end(q);
		return EL_ENOMEM;
	}
	r = each_row(q, "audit list", audit_row, arr);
	q_end(q);
	if (r != EL_OK) {
		json_decref(arr);
		return r;
	}
	*out = arr;
	return EL_OK;
}

enum el_err
store_audit_list(struct store *s, const struct store_audit_filter *f, json_t **out)
{
	struct q q;

	return audit_rows(&q, q_read(s, &q, "SELECT a.seq, a.time, a.actor, a.event,"
	    " a.request_id, a.data, a.prev_hash, a.hash FROM audit a"
	    " LEFT JOIN requests q ON q.id = a.request_id"
	    " WHERE a.seq > ?1 AND (?2 IS NULL OR a.actor = ?2) AND (?3 IS NULL OR a.event = ?3"
	    " OR a.event LIKE ?3 || '.%') AND (?4 IS NULL OR a.request_id = ?4)"
	    " AND (?5 IS NULL OR q.profile = ?5) AND (?6 IS NULL OR a.time >= ?6)"
	    " ORDER BY a.seq LIMIT ?7", "ittttti", f->since_seq, f->actor, f->event,
	    f->request_id, f->profile, f->since_time, (int64_t)(f->limit > 0 ? f->limit : 1000)),
	    out);
}

enum el_err
store_audit_key_records(struct store *s, int64_t since_seq, int limit, json_t **out)
{
	struct q q;

	/* The partial index audit_keys holds exactly these rows (schema 9). */
	return audit_rows(&q, q_read(s, &q, "SELECT seq, time, actor, event, request_id, data,"
	    " prev_hash, hash FROM audit WHERE seq > ? AND event IN ('audit.node_joined',"
	    " 'audit.key_rotated') ORDER BY seq LIMIT ?", "ii", since_seq, (int64_t)limit), out);
}
