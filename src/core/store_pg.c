/*
 * store_pg.c — the store's PostgreSQL backend (store_db.h), through libpq: owns the
 * connections (a writer and a pool of readers; one that is lost fails its call with
 * EL_EDB and is opened again on the next), statements (prepared once per connection, the
 * shared SQL's `?` and `?N` rewritten as `$N`, parameters typed by the bind format: text,
 * int8, bytea), and the schema's migrations for PostgreSQL: the same versions as SQLite's,
 * recorded in the table schema_version, run under a session advisory lock so that nodes
 * starting together migrate once.
 *
 * A write transaction is BEGIN and pg_advisory_xact_lock(): one writer at a time across
 * every connection to the database - threads, processes, nodes - as SQLite has one
 * writer, so a read-then-write inside it (the audit chain's tail) is safe. COMMIT returns
 * once the transaction is durable (the server's synchronous_commit; PostgreSQL flushes
 * concurrent commits together by itself). A relaxed transaction (a nonce claim, a mail
 * claimed or marked sent: rows of its own, no audit record) takes no advisory lock - row
 * locks, unique keys and FOR UPDATE SKIP LOCKED keep it right, and another node's
 * writer never holds it up - and turns synchronous_commit off for itself.
 * A write inside a caller's transaction runs under a savepoint, sent in one round trip
 * with it (a pipeline), so that a constraint it violates (EL_EEXIST) leaves the
 * transaction usable, as in SQLite.
 *
 * Also the wake-ups between nodes: a transaction that store_notify() marks sends NOTIFY on
 * the channel elevate_wake before its COMMIT (delivered with the commit, never without),
 * its payload the store's own random tag; a listener thread on a connection of its own
 * (LISTEN, then poll() on its socket and a pipe that stops it) calls back on every notice
 * that carries another tag, and opens the connection again, once a second, when it is
 * lost.
 */
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elevate/log.h"
#include "elevate/store.h"
#include "store_db.h"

#define PG_STMTS 64
#define PG_MAX_PARAMS 32
/* Advisory lock keys: ('elev', 1) serialises writers, ('elev', 2) migrations. */
#define PG_LOCK_WRITE "1701602678, 1"
#define PG_LOCK_MIGRATE "1701602678, 2"
/* The channel of wake-ups between nodes (store_notify, store_listen). */
#define PG_WAKE_CHANNEL "elevate_wake"
/* How long a writer waits for another node's transaction (SQLite's busy timeout). */
#define PG_LOCK_TIMEOUT "SET lock_timeout = '5s'"
/* How long a node waits for a role another node updates (an AWS call and its retries);
 * past it the revocation step fails and is retried. */
#define PG_ROLE_LOCK_TIMEOUT "SET lock_timeout = '60s'"

/* Type OIDs of the parameters (pg_type.h). */
#define OID_BYTEA 17
#define OID_INT8 20
#define OID_TEXT 25

struct conn {
	PGconn *pg;
	bool lost;              /* failed for want of a connection: reopen before next use */
	struct {
		char *sql;
		uint32_t hash;
		char name[12];
	} stmt[PG_STMTS];       /* prepared on this connection, by SQL text */
	int nstmt;
	char err[256];          /* why the last statement failed */
};

struct pg_store {
	struct store base;      /* first: a struct store * is one of these */
	char *url;              /* may hold a password: wiped when freed */
	char *password_file;
	char where[192];        /* "database D on H:P as U", for messages */
	struct conn wconn, rconn[STORE_READERS];
	/* The open transaction, under base.mu: */
	bool in_tx;             /* BEGIN done on wconn: it is never reopened until the end */
	int tx_ok;              /* statements that succeeded in it */
	bool tx_notify;         /* store_notify(): NOTIFY before its COMMIT */
	/* Wake-ups: this store's tag (the payload of its notices, which its own listener
	 * ignores) and the listener thread, started by pg_listen. */
	char tag[17];
	struct conn lconn;      /* the listener's, used by its thread only */
	pthread_t lthread;
	bool listening;         /* the thread runs (changed only by listen and stop) */
	int lstop[2];           /* a byte written to lstop[1] stops it */
	void (*lfn)(void *);
	void *larg;
	struct conn nconn;      /* holds the node name's advisory lock (pg_claim_node) */
	pthread_mutex_t rmu;    /* held from pg_role_lock to its unlock: one role at a time */
	struct conn rconn_lock; /* the role locks' connection, under rmu */
};

/* Text compares and sorts byte by byte, as SQLite's does (BINARY), whatever the
 * database's default collation. */
#define T "TEXT COLLATE \"C\""

/* Migrations: entry N brings the schema from version N to N+1, the same versions as
 * store_sqlite.c's, in PostgreSQL's words (integers BIGINT, blobs BYTEA). Never edit a
 * shipped one. */
static const char *const migrations[] = {
	/* 0 -> 1: the request service */
	"CREATE TABLE requests ("
	"  id " T " PRIMARY KEY, profile " T " NOT NULL, requester " T " NOT NULL,"
	"  state " T " NOT NULL, duration BIGINT NOT NULL, reason " T ", ticket " T ","
	"  role_arn " T " NOT NULL, region " T ", created_at BIGINT NOT NULL,"
	"  pending_until BIGINT NOT NULL, decided_at BIGINT, window_start BIGINT,"
	"  window_end BIGINT, ended_at BIGINT, failure_code " T ", failure_message " T ","
	"  updated_at BIGINT NOT NULL);"
	"CREATE INDEX requests_state ON requests(state);"
	"CREATE TABLE approvals ("
	"  request_id " T " NOT NULL REFERENCES requests(id), approver " T " NOT NULL,"
	"  decision " T " NOT NULL CHECK (decision IN ('approve','deny')), comment " T ","
	"  at BIGINT NOT NULL, PRIMARY KEY (request_id, approver));"
	"CREATE TABLE grants ("
	"  request_id " T " PRIMARY KEY REFERENCES requests(id),"
	"  role_session_name " T " NOT NULL, assumed_role_arn " T ", assumed_role_id " T ","
	"  access_key_id " T ", creds_box BYTEA, creds_expire_at BIGINT, minted_at BIGINT);"
	"CREATE TABLE nonces (nonce " T " PRIMARY KEY, who " T " NOT NULL,"
	"  seen_at BIGINT NOT NULL);"
	"CREATE TABLE audit ("
	"  seq BIGINT PRIMARY KEY, time " T " NOT NULL, actor " T " NOT NULL,"
	"  event " T " NOT NULL, request_id " T ", data " T " NOT NULL,"
	"  prev_hash BYTEA NOT NULL, hash BYTEA NOT NULL);"
	"CREATE INDEX audit_request ON audit(request_id);",

	/* 1 -> 2: email approvals, approval channel, extensions, reaper backoff */
	"ALTER TABLE approvals ADD COLUMN via " T " NOT NULL DEFAULT 'cli';"
	"ALTER TABLE requests ADD COLUMN next_attempt_at BIGINT;"
	"ALTER TABLE requests ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;"
	"ALTER TABLE requests ADD COLUMN parent_id " T ";"
	"ALTER TABLE nonces ADD COLUMN kind " T " NOT NULL DEFAULT 'api';"
	"CREATE TABLE outbox ("
	"  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, request_id " T ","
	"  rcpt " T " NOT NULL, subject " T " NOT NULL, message " T " NOT NULL,"
	"  state " T " NOT NULL DEFAULT 'queued', attempts BIGINT NOT NULL DEFAULT 0,"
	"  next_attempt_at BIGINT NOT NULL, last_error " T ", created_at BIGINT NOT NULL);"
	"CREATE INDEX outbox_due ON outbox(state, next_attempt_at);",

	/* 2 -> 3: SSM sessions and early revocation */
	"CREATE TABLE sessions ("
	"  session_id " T " PRIMARY KEY, request_id " T " NOT NULL REFERENCES requests(id),"
	"  target " T " NOT NULL, document " T ", started_at BIGINT NOT NULL,"
	"  terminated_at BIGINT);"
	"CREATE INDEX sessions_request ON sessions(request_id);"
	"CREATE TABLE revoked ("
	"  userid " T " PRIMARY KEY, role_name " T " NOT NULL, request_id " T " NOT NULL,"
	"  expires_at BIGINT NOT NULL);"
	"CREATE INDEX revoked_role ON revoked(role_name, expires_at);",

	/* 3 -> 4: the "ending soon" warning; the Message-ID beside a sealed body */
	"ALTER TABLE requests ADD COLUMN warned_at BIGINT;"
	"ALTER TABLE outbox ADD COLUMN message_id " T ";",

	/* 4 -> 5: the lifecycle's states only; synced revocation entries; /healthz */
	"ALTER TABLE requests ADD CONSTRAINT requests_state_check CHECK (state IN ('pending',"
	"  'activating','active','ending','ended','denied','cancelled','lapsed','failed'));"
	"CREATE INDEX requests_parent ON requests(parent_id);"
	"ALTER TABLE revoked ADD COLUMN synced_at BIGINT;"
	"CREATE TABLE health (k INTEGER PRIMARY KEY CHECK (k = 1), at BIGINT NOT NULL);",

	/* 5 -> 6: indexes for what runs on every call or every wake */
	"CREATE INDEX nonces_kind_seen ON nonces(kind, seen_at);"
	"CREATE INDEX requests_state_window ON requests(state, window_end);"
	"CREATE INDEX requests_state_pending ON requests(state, pending_until);"
	"CREATE INDEX requests_created ON requests(created_at);"
	"CREATE INDEX requests_unwarned ON requests(window_end)"
	"  WHERE state = 'active' AND warned_at IS NULL;",

	/* 6 -> 7: revocation cohorts */
	"ALTER TABLE requests ADD COLUMN cohort " T ";"
	"CREATE TABLE role_cohorts (role_name " T " PRIMARY KEY, open " T " NOT NULL);",

	/* 7 -> 8: rid, the order of insertion (SQLite's rowid); `list` walks
	 * (created_at, rid) backwards */
	"ALTER TABLE requests ADD COLUMN rid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE;"
	"DROP INDEX requests_created;"
	"CREATE INDEX requests_created ON requests(created_at, rid);"
	"ALTER TABLE approvals ADD COLUMN rid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE;"
	"ALTER TABLE sessions ADD COLUMN rid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE;"
	"ALTER TABLE revoked ADD COLUMN rid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE;"
	"ALTER TABLE nonces ADD COLUMN rid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE;",

	/* 8 -> 9: the records that tell the audit chain's keys, found without a scan */
	"CREATE INDEX audit_keys ON audit(seq)"
	"  WHERE event IN ('audit.node_joined', 'audit.key_rotated');",

	/* 9 -> 10: break-glass grants and their review */
	"CREATE TABLE glass ("
	"  request_id " T " PRIMARY KEY REFERENCES requests(id), review_due_at BIGINT NOT NULL,"
	"  reviewed_at BIGINT, reviewed_by " T ", review " T ", escalated_at BIGINT);"
	"CREATE INDEX glass_unreviewed ON glass(review_due_at)"
	"  WHERE reviewed_at IS NULL AND escalated_at IS NULL;",

	/* 10 -> 11: webhook deliveries */
	"CREATE TABLE webhook_deliveries ("
	"  rid BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id " T " NOT NULL UNIQUE,"
	"  webhook " T " NOT NULL, seq BIGINT NOT NULL, event " T " NOT NULL, request_id " T ","
	"  payload " T " NOT NULL,"
	"  state " T " NOT NULL DEFAULT 'queued' CHECK (state IN ('queued','sent','failed')),"
	"  attempts BIGINT NOT NULL DEFAULT 0, next_attempt_at BIGINT NOT NULL,"
	"  give_up_at BIGINT NOT NULL, lease_until BIGINT, leased_by " T ", last_error " T ","
	"  created_at BIGINT NOT NULL, sent_at BIGINT, UNIQUE (webhook, seq));"
	"CREATE INDEX webhook_queued ON webhook_deliveries(webhook, rid) WHERE state = 'queued';",

	/* 11 -> 12: leases on due work; the old activation leases are due now */
	"ALTER TABLE requests ADD COLUMN lease_node " T ";"
	"ALTER TABLE requests ADD COLUMN lease_until BIGINT;"
	"CREATE INDEX requests_leased ON requests(lease_until) WHERE lease_until IS NOT NULL;"
	"UPDATE requests SET next_attempt_at = NULL WHERE state = 'activating'"
	"  AND attempts = 0;",

	/* 12 -> 13: scheduled windows (a request's window starts at start_at) */
	"CREATE TABLE schedules ("
	"  request_id " T " PRIMARY KEY REFERENCES requests(id), start_at BIGINT NOT NULL);",

	/* 13 -> 14: a mail is claimed by one node at a time, until its lease runs out */
	"ALTER TABLE outbox ADD COLUMN claimed_by " T ";"
	"ALTER TABLE outbox ADD COLUMN claimed_until BIGINT;",

	/* 14 -> 15: the mailer's next due time from indexes alone (claimed_until sits after
	 * the message: reading it from the row read every queued mail whole) */
	"CREATE INDEX outbox_next ON outbox(state, next_attempt_at, id, claimed_until);"
	"CREATE INDEX outbox_claims ON outbox(state, claimed_until, next_attempt_at);"
	"DROP INDEX outbox_due;",

	/* 15 -> 16: bundles, one request over several profiles (a member request each) */
	"CREATE TABLE bundles ("
	"  id " T " PRIMARY KEY, requester " T " NOT NULL, created_at BIGINT NOT NULL);"
	"CREATE TABLE bundle_members ("
	"  request_id " T " PRIMARY KEY REFERENCES requests(id),"
	"  bundle_id " T " NOT NULL REFERENCES bundles(id), position BIGINT NOT NULL,"
	"  UNIQUE (bundle_id, position));",
};

#define NMIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))
_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == STORE_SCHEMA_VERSION,
    "a migration per schema version");

static struct pg_store *
pgs(struct store *s)
{
	return (struct pg_store *)s;
}

/* The message of a failed result (the server's own words) or connection, on one line. */
static void
set_err(struct conn *c, const PGresult *res)
{
	const char *m = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	size_t n;

	if (m == NULL || m[0] == '\0')
		m = c->pg != NULL ? PQerrorMessage(c->pg) : "no connection";
	el_strlcpy(c->err, m[0] ? m : "the server gave no reason", sizeof(c->err));
	n = strlen(c->err);
	while (n > 0 && (c->err[n - 1] == '\n' || c->err[n - 1] == ' '))
		c->err[--n] = '\0';
	for (n = 0; c->err[n] != '\0'; n++)
		if (c->err[n] == '\n' || c->err[n] == '\t')
			c->err[n] = ' ';
}

/* c is unusable: the next call opens it again. c->err says why, and now that too. */
static void
mark_lost(struct pg_store *s, struct conn *c)
{
	char msg[sizeof(c->err) + sizeof(s->where) + 64];

	if (c->lost)
		return;
	c->lost = true;
	snprintf(msg, sizeof(msg), "lost the connection to PostgreSQL, the next call reconnects "
	    "(%s): %s", s->where, c->err);
	el_strlcpy(c->err, msg, sizeof(c->err));
}

/* After a failure: was it the connection? */
static void
check_lost(struct pg_store *s, struct conn *c)
{
	if (PQstatus(c->pg) == CONNECTION_BAD)
		mark_lost(s, c);
}

static void
notice(void *arg, const char *msg)
{
	(void)arg;
	log_debug("store: postgresql: %s", msg);
}

/* ---- statements ---- */

/* sql with SQLite's placeholders as PostgreSQL's: `?N` is `$N`, and `?` one more than the
 * highest number so far (as SQLite numbers them). Caller frees. */
static char *
pg_sql(const char *sql)
{
	size_t len = strlen(sql), cap = len * 4 + 1, o = 0;
	char *out, *end;
	bool quoted = false;
	long k, top = 0;

	if ((out = malloc(cap)) == NULL)   /* "?" becomes at most "$NNN" */
		return NULL;
	while (*sql != '\0') {
		if (*sql == '\'')
			quoted = !quoted;
		if (*sql != '?' || quoted) {
			out[o++] = *sql++;
			continue;
		}
		sql++;
		k = strtol(sql, &end, 10);
		if (end == sql)
			k = top + 1;
		sql = end;
		if (k > top)
			top = k;
		if (k < 1 || k > PG_MAX_PARAMS)
			fatalx("store: parameter ?%ld in %s", k, sql);
		o += (size_t)snprintf(out + o, cap - o, "$%ld", k);
	}
	out[o] = '\0';
	return out;
}

static void
stmts_forget(struct conn *c)
{
	int i;

	for (i = 0; i < c->nstmt; i++)
		free(c->stmt[i].sql);
	c->nstmt = 0;
}

/* The name sql is prepared under on c, preparing it the first time; "" when the cache
 * is full (the statement then runs unnamed, parsed each time). NULL on failure. */
static const char *
stmt_name(struct conn *c, const char *sql, const char *pgsql, int n, const Oid *types)
{
	uint32_t h = store_sql_hash(sql);
	PGresult *res;
	int i;

	for (i = 0; i < c->nstmt; i++)
		if (c->stmt[i].hash == h && strcmp(c->stmt[i].sql, sql) == 0)
			return c->stmt[i].name;
	if (c->nstmt == PG_STMTS || (c->stmt[i].sql = strdup(sql)) == NULL)
		return "";
	snprintf(c->stmt[i].name, sizeof(c->stmt[i].name), "e%d", i);
	res = PQprepare(c->pg, c->stmt[i].name, pgsql, n, types);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		set_err(c, res);
		PQclear(res);
		free(c->stmt[i].sql);
		return NULL;
	}
	PQclear(res);
	c->stmt[i].hash = h;
	c->nstmt++;
	return c->stmt[i].name;
}

struct params {
	int n;
	const char *v[PG_MAX_PARAMS];
	int len[PG_MAX_PARAMS], fmt[PG_MAX_PARAMS];
	Oid type[PG_MAX_PARAMS];
	char num[PG_MAX_PARAMS][24];
};

static void
bind_params(struct params *p, const char *fmt, va_list ap)
{
	int i;

	p->n = fmt != NULL ? (int)strlen(fmt) : 0;
	if (p->n > PG_MAX_PARAMS)
		fatalx("store: %d parameters, more than %d", p->n, PG_MAX_PARAMS);
	for (i = 0; i < p->n; i++) {
		p->len[i] = 0;
		p->fmt[i] = 0;
		switch (fmt[i]) {
		case 't':
			p->type[i] = OID_TEXT;
			p->v[i] = va_arg(ap, const char *);
			break;
		case 'i':
		case 'z': {
			int64_t v = va_arg(ap, int64_t);
			p->type[i] = OID_INT8;
			snprintf(p->num[i], sizeof(p->num[i]), "%lld", (long long)v);
			p->v[i] = fmt[i] == 'z' && v == 0 ? NULL : p->num[i];
			break;
		}
		case 'b': {
			const void *b = va_arg(ap, const void *);
			size_t n = va_arg(ap, size_t);
			p->type[i] = OID_BYTEA;
			p->v[i] = b;
			p->len[i] = (int)n;
			p->fmt[i] = 1;
			break;
		}
		default:
			fatalx("store: bad bind format %c", fmt[i]);
		}
	}
}

static bool
send_stmt(struct conn *c, const char *name, const char *pgsql, const struct params *p)
{
	if (name[0] != '\0')
		return PQsendQueryPrepared(c->pg, name, p->n, p->v, p->len, p->fmt, 0) == 1;
	return PQsendQueryParams(c->pg, pgsql, p->n, p->type, p->v, p->len, p->fmt, 0) == 1;
}

/* The result of the pipeline's next command, and the NULL that ends it. */
static PGresult *
next_result(PGconn *pg)
{
	PGresult *res = PQgetResult(pg), *extra;

	if (res != NULL)
		while ((extra = PQgetResult(pg)) != NULL)
			PQclear(extra);
	return res;
}

/*
 * The statement under a savepoint of its own, in one round trip: SAVEPOINT, statement,
 * RELEASE and a sync sent together. A statement that fails is rolled back to the
 * savepoint, and the transaction goes on as if it had not run.
 */
static PGresult *
exec_guarded(struct pg_store *s, struct conn *c, const char *name, const char *pgsql,
    const struct params *p)
{
	PGresult *sp, *res, *rel, *sync;

	if (PQenterPipelineMode(c->pg) != 1 ||
	    PQsendQueryParams(c->pg, "SAVEPOINT q", 0, NULL, NULL, NULL, NULL, 0) != 1 ||
	    !send_stmt(c, name, pgsql, p) ||
	    PQsendQueryParams(c->pg, "RELEASE SAVEPOINT q", 0, NULL, NULL, NULL, NULL, 0) != 1 ||
	    PQpipelineSync(c->pg) != 1) {
		set_err(c, NULL);
		mark_lost(s, c);   /* out of step with the server: opened again */
		return NULL;
	}
	sp = next_result(c->pg);
	res = next_result(c->pg);
	rel = next_result(c->pg);
	sync = PQgetResult(c->pg);
	if (PQresultStatus(sync) != PGRES_PIPELINE_SYNC || PQexitPipelineMode(c->pg) != 1) {
		set_err(c, res);
		mark_lost(s, c);
		PQclear(sp);
		PQclear(res);
		PQclear(rel);
		PQclear(sync);
		return NULL;
	}
	PQclear(sync);
	if (PQresultStatus(sp) == PGRES_COMMAND_OK && PQresultStatus(rel) != PGRES_COMMAND_OK) {
		PGresult *undo = PQexec(c->pg, "ROLLBACK TO SAVEPOINT q; RELEASE SAVEPOINT q");
		PQclear(undo);
	}
	PQclear(sp);
	PQclear(rel);
	return res;
}

static enum q_rc
classify(const PGresult *res)
{
	const char *state;

	switch (PQresultStatus(res)) {
	case PGRES_COMMAND_OK:
	case PGRES_TUPLES_OK:
		return Q_DONE;
	default:
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		/* class 23: integrity constraint violation (unique, foreign key, check) */
		return state != NULL && strncmp(state, "23", 2) == 0 ? Q_CONSTRAINT : Q_ERROR;
	}
}

static enum el_err conn_ready(struct pg_store *s, struct conn *c);

static enum el_err
pg_prepare(struct q *q, const char *fmt, va_list ap)
{
	struct pg_store *s = pgs(q->s);
	struct conn *c = q->c;
	struct params p;
	const char *name;
	char *pgsql = NULL;
	PGresult *res;
	enum el_err r;

	bind_params(&p, fmt, ap);
	/* A transaction lost with its connection stays lost: reopened here, the rest of it
	 * would run, and commit, on its own. */
	if (c == &s->wconn && s->in_tx && c->lost)
		return store_fail(q->sql, c->err);
	if ((r = conn_ready(s, c)) != EL_OK)
		return r;
	if ((pgsql = pg_sql(q->sql)) == NULL)
		return EL_ENOMEM;
	if ((name = stmt_name(c, q->sql, pgsql, p.n, p.type)) == NULL) {
		check_lost(s, c);
		r = store_fail(q->sql, c->err);
		free(pgsql);
		return r;
	}
	if (q->guard)
		res = exec_guarded(s, c, name, pgsql, &p);
	else if (name[0] != '\0')
		res = PQexecPrepared(c->pg, name, p.n, p.v, p.len, p.fmt, 0);
	else
		res = PQexecParams(c->pg, pgsql, p.n, p.type, p.v, p.len, p.fmt, 0);
	free(pgsql);
	q->st = res;
	q->row = -1;
	q->nrows = res != NULL ? PQntuples(res) : 0;
	q->rc = res != NULL ? classify(res) : Q_ERROR;
	if (q->rc != Q_DONE) {
		if (res != NULL) {
			set_err(c, res);
			check_lost(s, c);
		}
	} else if (c == &s->wconn)
		s->tx_ok++;
	return EL_OK;
}

static enum q_rc
pg_step(struct q *q)
{
	if (q->rc != Q_DONE)
		return q->rc;
	if (q->row + 1 < q->nrows) {
		q->row++;
		return Q_ROW;
	}
	q->row = q->nrows;
	return Q_DONE;
}

static bool
pg_isnull(struct q *q, int i)
{
	return PQgetisnull(q->st, q->row, i);
}

static const char *
pg_text(struct q *q, int i)
{
	return PQgetisnull(q->st, q->row, i) ? NULL : PQgetvalue(q->st, q->row, i);
}

static int64_t
pg_int(struct q *q, int i)
{
	const char *v = pg_text(q, i);

	return v != NULL ? strtoll(v, NULL, 10) : 0;
}

/* A bytea in the text format ("\x" and hex digits), decoded into q->buf. */
static const void *
pg_blob(struct q *q, int i, size_t *len)
{
	const char *v = pg_text(q, i);
	size_t n, k;
	int hi, lo;

	*len = 0;
	free(q->buf);
	q->buf = NULL;
	if (v == NULL || strncmp(v, "\\x", 2) != 0)
		return NULL;
	v += 2;
	n = strlen(v) / 2;
	if ((q->buf = malloc(n > 0 ? n : 1)) == NULL)
		return NULL;
	for (k = 0; k < n; k++) {
		if ((hi = el_hexval(v[2 * k])) < 0 || (lo = el_hexval(v[2 * k + 1])) < 0)
			return NULL;
		q->buf[k] = (unsigned char)(hi << 4 | lo);
	}
	*len = n;
	return q->buf;
}

static int64_t
pg_changes(struct q *q)
{
	return strtoll(PQcmdTuples(q->st), NULL, 10);
}

static const char *
pg_errmsg(struct q *q)
{
	return q->c->err;
}

static void
pg_done(struct q *q)
{
	PQclear(q->st);
	q->st = NULL;
	free(q->buf);
	q->buf = NULL;
}

/* ---- connections ---- */

/* A message naming the database, never the password. */
void
store_pg_describe(const char *url, char *buf, size_t len)
{
	PQconninfoOption *opts, *o;
	const char *db = NULL, *host = NULL, *port = NULL, *user = NULL;

	if ((opts = PQconninfoParse(url, NULL)) == NULL) {
		snprintf(buf, len, "a connection string libpq cannot parse");
		return;
	}
	for (o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL || o->val[0] == '\0')
			continue;
		if (strcmp(o->keyword, "dbname") == 0)
			db = o->val;
		else if (strcmp(o->keyword, "host") == 0 || (host == NULL &&
		    strcmp(o->keyword, "hostaddr") == 0))
			host = o->val;
		else if (strcmp(o->keyword, "port") == 0)
			port = o->val;
		else if (strcmp(o->keyword, "user") == 0)
			user = o->val;
	}
	snprintf(buf, len, "database %s on %s%s%s%s%s", db ? db : "(default)",
	    host ? host : "(default host)", port ? ":" : "", port ? port : "",
	    user ? " as " : "", user ? user : "");
	PQconninfoFree(opts);
}

bool
store_pg_check(const char *url, char *why, size_t len)
{
	PQconninfoOption *opts;
	char *err = NULL;
	size_t n;

	if ((opts = PQconninfoParse(url, &err)) != NULL) {
		PQconninfoFree(opts);
		return true;
	}
	snprintf(why, len, "%s", err != NULL ? err : "libpq cannot parse it (out of memory?)");
	n = strlen(why);
	while (n > 0 && why[n - 1] == '\n')
		why[--n] = '\0';
	PQfreemem(err);
	return false;
}

/*
 * Opens c: defaults that bound how long a server that does not answer holds a call (10 s
 * to connect; a connection idle 30 s is probed, dead after 3 probes 10 s apart), then the
 * URL (its own settings win), then the password from store.password_file (read each
 * time, so a rotated one is picked up), which overrides any in the URL.
 */
static enum el_err
conn_open(struct pg_store *s, struct conn *c, struct el_why *w)
{
	static const char *const dflt[][2] = {
		{"connect_timeout", "10"}, {"keepalives_idle", "30"},
		{"keepalives_interval", "10"}, {"keepalives_count", "3"},
	};
	const char *kw[8], *val[8];
	char *password = NULL;
	struct el_why pw = {{0}};
	enum el_err r;
	size_t i;
	int n = 0;

	if (s->password_file != NULL &&
	    (r = el_read_password_file(s->password_file, "store.password_file", &password,
	    &pw)) != EL_OK)
		return el_fail(w, EL_ECONFIG, "%s", pw.msg);
	for (i = 0; i < sizeof(dflt) / sizeof(dflt[0]); i++) {
		kw[n] = dflt[i][0];
		val[n++] = dflt[i][1];
	}
	kw[n] = "dbname";
	val[n++] = s->url;
	if (password != NULL) {
		kw[n] = "password";
		val[n++] = password;
	}
	kw[n] = "fallback_application_name";
	val[n++] = "elevated";
	kw[n] = NULL;
	val[n] = NULL;
	c->pg = PQconnectdbParams(kw, val, 1);
	el_password_free(password);
	if (c->pg == NULL)
		return el_fail(w, EL_ENOMEM, "PostgreSQL: out of memory");
	if (PQstatus(c->pg) != CONNECTION_OK) {
		set_err(c, NULL);
		r = el_fail(w, EL_EDB, "cannot connect to PostgreSQL (%s): %s", s->where, c->err);
		PQfinish(c->pg);
		c->pg = NULL;
		return r;
	}
	PQsetNoticeProcessor(c->pg, notice, NULL);
	c->lost = false;
	return EL_OK;
}

/* Statements of the session that need one round trip: "" OK, else why. */
static enum el_err
simple(struct conn *c, const char *sql, ExecStatusType want)
{
	PGresult *res = PQexec(c->pg, sql);
	enum el_err r = EL_OK;

	if (PQresultStatus(res) != want) {
		set_err(c, res);
		r = EL_EDB;
	}
	PQclear(res);
	return r;
}

/* c, connected: opened again if it was lost (its prepared statements went with it). */
static enum el_err
conn_ready(struct pg_store *s, struct conn *c)
{
	struct el_why w = {{0}};

	if (c->pg != NULL && !c->lost && PQstatus(c->pg) == CONNECTION_OK)
		return EL_OK;
	PQfinish(c->pg);
	c->pg = NULL;
	stmts_forget(c);
	if (conn_open(s, c, &w) != EL_OK ||
	    (c == &s->wconn && simple(c, PG_LOCK_TIMEOUT, PGRES_COMMAND_OK) != EL_OK)) {
		c->lost = true;
		return store_fail("reconnect", w.msg[0] ? w.msg : c->err);
	}
	log_info("store: reconnected to PostgreSQL (%s)", s->where);
	return EL_OK;
}

static void
conn_close(struct conn *c)
{
	PQfinish(c->pg);
	c->pg = NULL;
	stmts_forget(c);
}

/* ---- transactions ---- */

static enum el_err
pg_begin(struct store *base, bool relaxed)
{
	struct pg_store *s = pgs(base);
	struct conn *c = &s->wconn;
	PGresult *res;
	enum el_err r;

	if ((r = conn_ready(s, c)) != EL_OK)
		return r;
	/* One round trip: the lock is taken in the transaction and held to its end. A
	 * relaxed transaction writes rows of its own only: their locks and unique keys
	 * suffice, and it never waits for another node's writer. */
	res = PQexec(c->pg, relaxed ? "BEGIN; SET LOCAL synchronous_commit = off" :
	    "BEGIN; SELECT pg_advisory_xact_lock(" PG_LOCK_WRITE ")");
	if (PQresultStatus(res) != (relaxed ? PGRES_COMMAND_OK : PGRES_TUPLES_OK)) {
		set_err(c, res);
		PQclear(res);
		check_lost(s, c);
		if (!c->lost)
			PQclear(PQexec(c->pg, "ROLLBACK"));
		return store_fail("begin", c->err);
	}
	PQclear(res);
	s->in_tx = true;
	s->tx_ok = 0;
	s->tx_notify = false;
	return EL_OK;
}

static void
pg_rollback(struct store *base)
{
	struct pg_store *s = pgs(base);
	struct conn *c = &s->wconn;

	s->in_tx = false;
	s->tx_notify = false;
	if (c->lost)
		return;   /* the server rolls it back when the connection goes */
	if (simple(c, "ROLLBACK", PGRES_COMMAND_OK) != EL_OK) {
		check_lost(s, c);
		log_warn("store: rollback: %s", c->err);
	}
}

static enum el_err
pg_commit(struct store *base)
{
	struct pg_store *s = pgs(base);
	struct conn *c = &s->wconn;
	PGresult *res;
	enum el_err r = EL_OK;

	s->in_tx = false;
	if (c->lost) {
		r = store_fail("commit", c->err);
		goto out;
	}
	if (s->tx_notify) {
		char sql[64];

		/* Queued by the server, delivered with the COMMIT or not at all. */
		snprintf(sql, sizeof(sql), "NOTIFY " PG_WAKE_CHANNEL ", '%s'", s->tag);
		s->tx_notify = false;
		if (simple(c, sql, PGRES_COMMAND_OK) != EL_OK) {
			check_lost(s, c);
			r = store_fail("notify", c->err);
			if (!c->lost)
				PQclear(PQexec(c->pg, "ROLLBACK"));
			goto out;
		}
	}
	res = PQexec(c->pg, "COMMIT");
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		set_err(c, res);
		check_lost(s, c);
		r = store_fail("commit", c->err);
	} else if (strcmp(PQcmdStatus(res), "ROLLBACK") == 0 && s->tx_ok > 0) {
		/* A statement failed outside a savepoint after others had succeeded: the
		 * server rolled all of them back. (Alone, it had nothing to lose.) */
		r = store_fail("commit", "a statement of the transaction failed: the whole "
		    "transaction was rolled back");
	}
	PQclear(res);
out:
	pthread_mutex_unlock(&s->base.mu);
	return r;
}

/* ---- migrations ---- */

/* The schema version recorded in the database (0: none yet), or -1. */
static int
schema_version(struct conn *c)
{
	PGresult *res = PQexec(c->pg, "SELECT version FROM schema_version WHERE k = 1");
	int v = -1;

	if (PQresultStatus(res) == PGRES_TUPLES_OK)
		v = PQntuples(res) == 0 ? 0 : atoi(PQgetvalue(res, 0, 0));
	else
		set_err(c, res);
	PQclear(res);
	return v;
}

static enum el_err
migrate_to(struct conn *c, int target, struct el_why *w)
{
	char sql[160];
	int v;

	if (simple(c, "CREATE TABLE IF NOT EXISTS schema_version (k INTEGER PRIMARY KEY"
	    " CHECK (k = 1), version INTEGER NOT NULL)", PGRES_COMMAND_OK) != EL_OK ||
	    (v = schema_version(c)) < 0)
		return el_fail(w, EL_EDB, "cannot read schema version: %s", c->err);
	if (v > NMIGRATIONS)
		return el_fail(w, EL_EDB, "database schema version %d is newer than this "
		    "elevated (%d): upgrade elevated", v, NMIGRATIONS);
	for (; v < target; v++) {
		snprintf(sql, sizeof(sql), "INSERT INTO schema_version (k, version) VALUES (1, %d)"
		    " ON CONFLICT (k) DO UPDATE SET version = excluded.version", v + 1);
		if (simple(c, "BEGIN", PGRES_COMMAND_OK) != EL_OK ||
		    simple(c, migrations[v], PGRES_COMMAND_OK) != EL_OK ||
		    simple(c, sql, PGRES_COMMAND_OK) != EL_OK ||
		    simple(c, "COMMIT", PGRES_COMMAND_OK) != EL_OK) {
			el_fail(w, EL_EDB, "migration %d -> %d: %s", v, v + 1, c->err);
			PQclear(PQexec(c->pg, "ROLLBACK"));
			return EL_EDB;
		}
		if (v > 0)
			log_info("store: migrated schema %d -> %d", v, v + 1);
	}
	return EL_OK;
}

/* Migrations under a session advisory lock: a node that starts while another migrates
 * waits for it, then finds the schema up to date. */
static enum el_err
migrate(struct conn *c, int target, struct el_why *w)
{
	enum el_err r;

	if (simple(c, "SELECT pg_advisory_lock(" PG_LOCK_MIGRATE ")", PGRES_TUPLES_OK) != EL_OK)
		return el_fail(w, EL_EDB, "cannot lock the schema for migration: %s", c->err);
	r = migrate_to(c, target, w);
	if (simple(c, "SELECT pg_advisory_unlock(" PG_LOCK_MIGRATE ")", PGRES_TUPLES_OK)
	    != EL_OK && r == EL_OK)
		r = el_fail(w, EL_EDB, "cannot unlock the schema after migration: %s", c->err);
	return r;
}

/* ---- wake-ups between nodes ---- */

static void
pg_notify(struct store *base)
{
	pgs(base)->tx_notify = true;   /* under mu: this thread's transaction */
}

/* The listener's connection, opened and listening. */
static enum el_err
listen_open(struct pg_store *s)
{
	struct conn *c = &s->lconn;
	struct el_why w = {{0}};

	conn_close(c);
	if (conn_open(s, c, &w) != EL_OK) {
		el_strlcpy(c->err, w.msg, sizeof(c->err));
		return EL_EDB;
	}
	if (simple(c, "LISTEN " PG_WAKE_CHANNEL, PGRES_COMMAND_OK) != EL_OK) {
		conn_close(c);
		return EL_EDB;
	}
	return EL_OK;
}

/* Notices from the other nodes (payload: their tag; this store's own are skipped).
 * false: the connection is lost. */
static bool
listen_read(struct pg_store *s, bool *woken)
{
	PGconn *pg = s->lconn.pg;
	PGnotify *nt;

	if (PQconsumeInput(pg) != 1) {
		set_err(&s->lconn, NULL);
		return false;
	}
	while ((nt = PQnotifies(pg)) != NULL) {
		if (nt->extra == NULL || strcmp(nt->extra, s->tag) != 0)
			*woken = true;
		PQfreemem(nt);
	}
	return PQstatus(pg) == CONNECTION_OK;
}

static void *
listener(void *arg)
{
	struct pg_store *s = arg;
	bool up = false, told = false;

	for (;;) {
		struct pollfd pf[2];
		bool woken = false;

		if (!up && listen_open(s) == EL_OK) {
			up = true;
			if (told)
				log_info("store: listening to the other nodes again (%s)", s->where);
			told = false;
			woken = true;   /* what came while nobody listened */
		} else if (!up && !told) {
			log_warn("store: cannot listen to the other nodes (%s): %s; trying again "
			    "every second", s->where, s->lconn.err);
			told = true;
		}
		if (woken)
			s->lfn(s->larg);
		pf[0].fd = s->lstop[0];
		pf[0].events = POLLIN;
		pf[1].fd = up ? PQsocket(s->lconn.pg) : -1;
		pf[1].events = POLLIN;
		pf[0].revents = pf[1].revents = 0;
		if (poll(pf, 2, up ? -1 : 1000) < 0 && errno != EINTR) {
			log_warn("store: listener: poll: %s", strerror(errno));
			break;
		}
		if (pf[0].revents != 0)
			break;
		if (!up || pf[1].revents == 0)
			continue;
		woken = false;
		if (!listen_read(s, &woken)) {
			log_warn("store: lost the connection the other nodes' wake-ups come on (%s): "
			    "%s; reconnecting", s->where, s->lconn.err);
			conn_close(&s->lconn);
			up = false;
			told = true;
		}
		if (woken)
			s->lfn(s->larg);
	}
	conn_close(&s->lconn);
	return NULL;
}

static enum el_err
pg_listen(struct store *base, void (*fn)(void *), void *arg)
{
	struct pg_store *s = pgs(base);

	if (s->listening)
		return EL_EINVAL;
	if (pipe2(s->lstop, O_CLOEXEC) != 0)
		return store_fail("listen", strerror(errno));
	s->lfn = fn;
	s->larg = arg;
	if (pthread_create(&s->lthread, NULL, listener, s) != 0) {
		close(s->lstop[0]);
		close(s->lstop[1]);
		return store_fail("listen", "cannot start a thread");
	}
	s->listening = true;
	return EL_OK;
}

static void
pg_listen_stop(struct store *base)
{
	struct pg_store *s = pgs(base);
	ssize_t n;

	if (!s->listening)
		return;
	do
		n = write(s->lstop[1], "x", 1);
	while (n < 0 && errno == EINTR);
	pthread_join(s->lthread, NULL);
	close(s->lstop[0]);
	close(s->lstop[1]);
	s->listening = false;
}

/* The node name's session advisory lock, keyed by a 64-bit hash of the name, on a
 * connection kept for the store's life. */
static enum el_err
pg_claim_node(struct store *base, const char *node, struct el_why *w)
{
	struct pg_store *s = pgs(base);
	struct conn *c = &s->nconn;
	const char *v[1] = {node};
	PGresult *res;
	bool held;

	if (c->pg != NULL)
		return el_fail(w, EL_EINVAL, "the node name is claimed already");
	if (conn_open(s, c, w) != EL_OK)
		return EL_EDB;
	res = PQexecParams(c->pg, "SELECT pg_try_advisory_lock(hashtextextended("
	    "'elevate node ' || $1::text, 0))", 1, NULL, v, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		set_err(c, res);
		PQclear(res);
		conn_close(c);
		return el_fail(w, EL_EDB, "cannot claim the node name \"%s\" (%s): %s", node,
		    s->where, c->err);
	}
	held = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (!held) {
		conn_close(c);
		return el_fail(w, EL_EEXIST, "another elevated runs as node \"%s\" on %s: give "
		    "every node of a deployment its own name (config key `node`, default the "
		    "short host name)", node, s->where);
	}
	return EL_OK;
}

/* A role's session advisory lock (on: taken, waiting for another node's; off: let go),
 * on rconn_lock, under rmu from the lock to the unlock. A connection lost meanwhile took
 * the lock with it: the unlock then has nothing to do. */
static enum el_err
pg_role_lock(struct store *base, const char *role, bool on)
{
	struct pg_store *s = pgs(base);
	struct conn *c = &s->rconn_lock;
	const char *v[1] = {role};
	PGresult *res;
	enum el_err r = EL_OK;

	if (on) {
		pthread_mutex_lock(&s->rmu);
		if (c->pg == NULL || c->lost || PQstatus(c->pg) != CONNECTION_OK) {
			struct el_why w = {{0}};

			conn_close(c);
			if (conn_open(s, c, &w) != EL_OK ||
			    simple(c, PG_ROLE_LOCK_TIMEOUT, PGRES_COMMAND_OK) != EL_OK) {
				r = store_fail("role lock", w.msg[0] ? w.msg : c->err);
				conn_close(c);
				pthread_mutex_unlock(&s->rmu);
				return r;
			}
		}
	}
	res = PQexecParams(c->pg, on ? "SELECT pg_advisory_lock(hashtextextended("
	    "'elevate role ' || $1::text, 0))" : "SELECT pg_advisory_unlock(hashtextextended("
	    "'elevate role ' || $1::text, 0))", 1, NULL, v, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		set_err(c, res);
		c->lost = PQstatus(c->pg) != CONNECTION_OK;
		r = store_fail(on ? "role lock" : "role unlock", c->err);
	}
	PQclear(res);
	if (!on || r != EL_OK)
		pthread_mutex_unlock(&s->rmu);
	return r;
}

/* ---- open and close ---- */

static enum el_err
pg_checkpointer_start(struct store *base)
{
	(void)base;
	return EL_OK;   /* the server checkpoints */
}

static void
pg_close(struct store *base)
{
	struct pg_store *s = pgs(base);
	int i;

	pg_listen_stop(base);
	conn_close(&s->nconn);
	conn_close(&s->rconn_lock);
	pthread_mutex_destroy(&s->rmu);
	for (i = 0; i < STORE_READERS; i++)
		conn_close(&s->rconn[i]);
	conn_close(&s->wconn);
	store_fini(&s->base);
	if (s->url != NULL) {
		sodium_memzero(s->url, strlen(s->url));
		free(s->url);
	}
	free(s->password_file);
	free(s);
}

static const struct store_backend pg_backend = {
	.name = "postgresql",
	.version_sql = "SELECT version FROM schema_version WHERE k = 1",
	.begin = pg_begin,
	.commit = pg_commit,
	.rollback = pg_rollback,
	.prepare = pg_prepare,
	.step = pg_step,
	.isnull = pg_isnull,
	.text = pg_text,
	.int64 = pg_int,
	.blob = pg_blob,
	.changes = pg_changes,
	.errmsg = pg_errmsg,
	.done = pg_done,
	.checkpointer_start = pg_checkpointer_start,
	.claim_lock = " FOR UPDATE SKIP LOCKED",
	.notify = pg_notify,
	.listen = pg_listen,
	.listen_stop = pg_listen_stop,
	.claim_node = pg_claim_node,
	.role_lock = pg_role_lock,
	.close = pg_close,
};

enum el_err
store_pg_open(const char *url, const char *password_file, int version, struct store **out,
    struct el_why *w)
{
	struct pg_store *s;
	char why[256];
	enum el_err r;
	int i;

	if (!store_pg_check(url, why, sizeof(why)))
		return el_fail(w, EL_ECONFIG, "store.url: %s", why);
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return EL_ENOMEM;
	pthread_mutex_init(&s->rmu, NULL);
	store_init(&s->base, &pg_backend);
	s->base.w = &s->wconn;
	store_pg_describe(url, s->where, sizeof(s->where));
	el_random_id(s->tag, sizeof(s->tag), sizeof(s->tag) - 1);
	if ((s->url = strdup(url)) == NULL || (password_file != NULL &&
	    (s->password_file = strdup(password_file)) == NULL)) {
		r = EL_ENOMEM;
		goto fail;
	}
	if ((r = conn_open(s, &s->wconn, w)) != EL_OK)
		goto fail;
	if ((r = migrate(&s->wconn, version, w)) != EL_OK)
		goto fail;
	if (simple(&s->wconn, PG_LOCK_TIMEOUT, PGRES_COMMAND_OK) != EL_OK) {
		r = el_fail(w, EL_EDB, "PostgreSQL (%s): %s", s->where, s->wconn.err);
		goto fail;
	}
	for (i = 0; i < STORE_READERS; i++) {
		if ((r = conn_open(s, &s->rconn[i], w)) != EL_OK)
			goto fail;
		s->base.rd[i] = &s->rconn[i];
	}
	*out = &s->base;
	return EL_OK;
fail:
	pg_close(&s->base);
	return r;
}
