/*
 * store_db.h — the inside of the store, for store.c and its two backends only: what the
 * domain functions of store.c (their SQL written once, for both) need from a database,
 * and the state every backend shares. store_sqlite.c is the embedded default (a file in
 * state_dir); store_pg.c is PostgreSQL through libpq (store.url = "postgresql://...").
 *
 * A backend owns its connections, its statements, how a transaction begins and becomes
 * durable, and its migrations (the same schema version on both). store.c owns what is
 * the same on both: a transaction's nesting, which connection a read uses (the writer
 * inside the thread's own transaction, else a free reader), and every statement.
 */
#ifndef ELEVATE_STORE_DB_H
#define ELEVATE_STORE_DB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include "elevate/el.h"
#include "elevate/store.h"

#define STORE_READERS 4

/* How a step of a statement ended. */
enum q_rc { Q_ROW, Q_DONE, Q_CONSTRAINT, Q_ERROR };

struct conn;   /* a backend's connection */

/*
 * A statement in progress, on its caller's stack: prepared and bound by the backend's
 * prepare (placeholders `?` and `?N`, bound by a format: 't' text, NULL binds NULL; 'i'
 * int64; 'z' int64 where 0 binds NULL; 'b' blob, a pointer and a size_t length), stepped
 * row by row, ended by done. Column values are borrowed until the next step or done.
 */
struct q {
	struct store *s;
	struct conn *c;
	const char *sql;
	bool guard;             /* a write in the caller's transaction, which goes on after
	                         * it: a failure of this statement must leave it usable */
	void *st;               /* the backend's statement (SQLite) or result (PostgreSQL) */
	int row, nrows;         /* PostgreSQL: the row the last step gave, and how many */
	enum q_rc rc;           /* PostgreSQL: how the statement ended */
	unsigned char *buf;     /* PostgreSQL: the last bytea value decoded */
};

struct store_backend {
	const char *name;
	/* The schema version, as one row of one integer (a query on any connection). */
	const char *version_sql;
	/* Called with mu held and no transaction open on the writer; keeps mu. A relaxed
	 * transaction writes rows of its own only (store_begin_relaxed): it needs no fsync,
	 * and takes no lock that serialises writers across nodes. */
	enum el_err (*begin)(struct store *s, bool relaxed);
	/* Called with mu held; returns once the transaction is durable, with mu released. */
	enum el_err (*commit)(struct store *s);
	/* Called with mu held; keeps it. */
	void (*rollback)(struct store *s);
	/* q's s, c, sql and guard are set. A failure (EL_EDB) is logged and remembered
	 * (store_fail); a statement that ran and failed is reported by step instead. */
	enum el_err (*prepare)(struct q *q, const char *fmt, va_list ap);
	enum q_rc (*step)(struct q *q);
	bool (*isnull)(struct q *q, int col);
	const char *(*text)(struct q *q, int col);      /* NULL for NULL */
	int64_t (*int64)(struct q *q, int col);         /* 0 for NULL */
	const void *(*blob)(struct q *q, int col, size_t *len);
	int64_t (*changes)(struct q *q);                /* rows the statement wrote */
	const char *(*errmsg)(struct q *q);             /* why step failed */
	void (*done)(struct q *q);
	enum el_err (*checkpointer_start)(struct store *s);
	/* store_read_begin/end (store.h) on a reader: open (on) or end one read transaction;
	 * NULL: statements read each in their own. */
	enum el_err (*read_tx)(struct conn *c, bool on);
	/* What ends a SELECT of rows to claim: PostgreSQL's " FOR UPDATE SKIP LOCKED" (a
	 * concurrent claim skips the rows another holds), SQLite's "" (one writer anyway). */
	const char *claim_lock;
	/* store_notify, store_listen (store.h); NULL: the backend has no peers to wake.
	 * notify is called inside the thread's transaction, with mu held. */
	void (*notify)(struct store *s);
	enum el_err (*listen)(struct store *s, void (*fn)(void *), void *arg);
	void (*listen_stop)(struct store *s);
	/* store_claim_node (store.h); NULL: nothing to claim. */
	enum el_err (*claim_node)(struct store *s, const char *node, struct el_why *w);
	/* store_role_lock (on) and store_role_unlock (off); NULL: nothing to lock. */
	enum el_err (*role_lock)(struct store *s, const char *role, bool on);
	void (*close)(struct store *s);                 /* frees s */
};

/*
 * The state every backend shares, first member of the backend's own struct. The writer
 * connection is used under mu, which the thread in a transaction holds from begin to
 * commit (recursive: store_* calls inside are fine); readers are taken from the pool.
 */
struct store {
	const struct store_backend *be;
	pthread_mutex_t mu;
	atomic_int entering;    /* threads in store_begin() waiting for mu (a group commit
	                         * lets them in first) */
	struct conn *w;
	int depth;              /* under mu: store_begin() calls of the open transaction */
	bool relaxed;           /* under mu: it is relaxed (rows of its own, no audit) */
	bool poisoned;          /* under mu: a nested rollback fails the whole transaction */

	pthread_mutex_t rd_mu;
	pthread_cond_t rd_cv;
	struct conn *rd[STORE_READERS];   /* all open, or none: reads go to the writer */
	bool rd_busy[STORE_READERS];
};

/* store.c, for the backends */
void store_init(struct store *s, const struct store_backend *be);
void store_fini(struct store *s);
/* Logs "store: what: msg", remembers msg for store_errmsg(); returns EL_EDB. */
enum el_err store_fail(const char *what, const char *msg);
/* Remembers msg for store_errmsg() without logging it. */
void store_note(const char *msg);
/* A hash of a statement's SQL text, to find it again in a connection's cache. */
uint32_t store_sql_hash(const char *sql);

/* The backends: open (and migrate to `version`) a store. */
enum el_err store_sqlite_open(const char *path, int version, struct store **out,
    struct el_why *w);/* url: libpq's (a postgresql:// URI or keyword=value pairs); password_file: NULL, or a
 * file holding the password alone, read at each connection. */
enum el_err store_pg_open(const char *url, const char *password_file, int version,
    struct store **out, struct el_why *w);
/* "database D on H:P as U": what messages say of url, never its password. */
void store_pg_describe(const char *url, char *buf, size_t len);
/* Whether libpq can parse url; if not, why in why. */
bool store_pg_check(const char *url, char *why, size_t len);

#endif
