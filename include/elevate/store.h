/*
 * store.h — the persistent state of the broker: requests, approvals, grants, SSM
 * sessions, seen nonces, used tokens, the mail outbox, revoked role sessions and the
 * audit chain, in SQLite (a file in state_dir, the default) or PostgreSQL (store.url).
 * store.c and its backends (src/core/store_db.h) are the only code that touches a
 * database. Every write happens inside store_begin()/store_commit(), which serialises
 * writers across threads, and on PostgreSQL across processes and nodes.
 */
#ifndef ELEVATE_STORE_H
#define ELEVATE_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "elevate/audit.h"
#include "elevate/el.h"
#include "elevate/lifecycle.h"

#define STORE_SCHEMA_VERSION 16

struct store;
struct config;

/*
 * Opens and migrates to STORE_SCHEMA_VERSION (PostgreSQL: under an advisory lock, so that
 * nodes starting together migrate once). `where` is a SQLite file (created if needed,
 * mode 0600), optionally prefixed "sqlite:", or a libpq connection string: a
 * postgresql:// (or postgres://) URI, or keyword=value pairs. A database whose schema is
 * newer than this elevated knows is refused.
 */
enum el_err store_open(const char *where, struct store **out, struct el_why *w);
/* The store the config names: store.url (with store.password_file), or, when it is
 * unset or "sqlite:", state_dir/elevate.db. */
enum el_err store_open_config(const struct config *cfg, struct store **out,
    struct el_why *w);
/* What messages call the store the config names: state_dir/elevate.db, or "the
 * PostgreSQL database D on H:P as U" (never a password). */
void store_where(const struct config *cfg, char *buf, size_t len);
/* Tests: open and migrate only up to `version` (to build an older database). */
enum el_err store_open_version(const char *where, int version, struct store **out,
    struct el_why *w);
/* Whether url is a store.url value that can be used; if not, why (never quoting a
 * password). */
bool store_url_valid(const char *url, char *why, size_t len);
void store_close(struct store *s);
/* SQLite: a thread that checkpoints the WAL on a connection of its own, so that no commit
 * pays for it (the daemon starts it; store_close stops it). Without it a commit that makes
 * the WAL 1,000 pages long checkpoints it, as SQLite does by default. PostgreSQL: none. */
enum el_err store_checkpointer_start(struct store *s);
int store_schema_version(struct store *s);
/* Whether other nodes may use the store at once (PostgreSQL): what one node queues,
 * another may take. */
bool store_shared(const struct store *s);

/* Transactions: store_commit() returns once the transaction is on disk (SQLite: group-
 * committed, with the others in the same fsync; PostgreSQL: COMMIT). One write
 * transaction at a time (PostgreSQL: across nodes too, by an advisory lock). Recursive:
 * store_* calls inside are fine. */
enum el_err store_begin(struct store *s);
/* A transaction that writes rows of its own only (a nonce claimed, a mail claimed or
 * marked sent) and whose loss in an OS crash costs only a repeat (a mail marked sent is
 * sent again): it commits without an fsync when nothing else in its group needs one, and
 * on PostgreSQL it takes no advisory lock, so another node's writer never holds it up
 * (row locks and unique keys keep it right). Durable across a kill of the process all
 * the same. No audit record may be written in it, nor a store_begin() nested in it
 * (both fail with EL_EINVAL): they need the writers' lock. */
enum el_err store_begin_relaxed(struct store *s);
enum el_err store_commit(struct store *s);
/*
 * A read of several rows as one snapshot, on one reader taken for it: the reads between
 * store_read_begin() and store_read_end() see the same state, and pay one read
 * transaction instead of one each. For short read-only paths (a page, a GET). A write
 * transaction begun in between ends the snapshot first (a read after it sees the write).
 * Nestable; without readers, or on a backend without read transactions, a no-op.
 */
void store_read_begin(struct store *s);
void store_read_end(struct store *s);
void store_rollback(struct store *s);
/* Has this thread a transaction open on s (also after a nested commit)? */
bool store_in_transaction(struct store *s);
/* The text of this thread's last store failure ("database is locked", "disk I/O error"),
 * for messages: never empty. */
const char *store_errmsg(void);
/* A write transaction that commits, or the reason it cannot: /healthz. */
enum el_err store_probe_commit(struct store *s);

/* ---- requests ---- */
struct store_request {
	char id[32];
	char profile[72];
	char requester[72];
	enum req_state state;
	int64_t duration;
	char *reason;            /* NULL when none */
	char *ticket;
	char *role_arn;
	char *region;
	int64_t created_at, pending_until, decided_at, window_start, window_end, ended_at;
	int64_t next_attempt_at; /* reaper backoff for `ending` */
	int attempts;
	char *failure_code;
	char *failure_message;
	char *parent_id;         /* extension requests: the grant they extend */
	char cohort[16];         /* the grant's revocation cohort, "" none yet (read only:
	                          * store_request_cohort() writes it) */
};
void store_request_free(struct store_request *r);   /* frees members, not r */
enum el_err store_request_insert(struct store *s, const struct store_request *r);
/* EL_ENOENT when absent. r filled; caller frees with store_request_free. */
enum el_err store_request_get(struct store *s, const char *id, struct store_request *r);
/*
 * The one write of a request row: r's state and mutable fields (decided_at, window_start,
 * window_end, ended_at, failure, next_attempt_at, attempts, duration), only if the row is
 * still in state `from` — exactly one row changed, else EL_ESTATE. Only engine_transition()
 * passes r->state != from; everything else writes with from = r->state.
 */
enum el_err store_request_cas(struct store *s, const struct store_request *r,
    enum req_state from);

struct store_filter {
	bool by_state;           /* false: any state */
	enum req_state state;
	const char *requester;   /* NULL: any */
	const char *profile;
	int64_t since;           /* > 0: only requests created, or with a window ending, at or
	                          * after it, and grants not ended yet (the access review) */
	int limit;               /* 0: 500 */
};
/* Newest first. *out: caller frees each with store_request_free and the array. */
enum el_err store_request_list(struct store *s, const struct store_filter *f,
    struct store_request **out, size_t *n);
/* Ids of requests in `state` whose `column` is <= until, oldest first. Columns:
 * pending_until, window_end, next_attempt_at (NULL = due now) and retry_at
 * (next_attempt_at, NULL = never due: a pending request's activation retry). */
enum el_err store_request_due(struct store *s, enum req_state state, const char *column,
    int64_t until, int limit, char ***ids, size_t *n);
/* Earliest pending_until of pending / next attempt of activating / window_end of active /
 * next_attempt_at of ending / (window_end - warn_lead) of an active grant not yet warned
 * (warn_lead 0: no warnings); *t = INT64_MAX when none. Requests a node holds a lease on
 * beyond now_ms (ms) are left out: their lease's end is store_lease_next_end's. A read
 * error is an error. */
enum el_err store_next_deadline(struct store *s, int64_t warn_lead, int64_t now_ms,
    int64_t *t);
/*
 * ---- leases on due work ----
 * Several nodes share the due work: a node claims a batch of due requests with a lease
 * (its name and an end in ms), does the work (AWS calls), then changes the state by a
 * compare-and-set and lets the lease go in the same transaction. A lease that runs out
 * (its node died) makes the work claimable again by any node.
 */
enum store_due {
	STORE_DUE_LAPSE,        /* pending, past pending_until */
	STORE_DUE_WINDOW_END,   /* active, past window_end */
	STORE_DUE_REVOKE,       /* ending, its next attempt due (NULL: now) */
	STORE_DUE_ACTIVATE,     /* activating, its next attempt due (NULL: now) */
};
/* Claims up to `limit` requests whose `kind` of work is due at now_ms and that no node
 * holds (no lease, or one that ran out by now_ms, whoever held it): node's lease on each
 * until until_ms. One statement (PostgreSQL: the candidates locked FOR UPDATE SKIP LOCKED,
 * so concurrent claims get disjoint rows). In the caller's transaction or one of its own.
 * *ids: caller frees each and the array. */
enum el_err store_lease_claim(struct store *s, enum store_due kind, const char *node,
    int64_t now_ms, int64_t until_ms, int limit, char ***ids, size_t *n);
/* Gives node the lease on id until until_ms whoever held it (the vote that starts an
 * activation: its own worker mints at once). EL_ENOENT when no such request. */
enum el_err store_lease_take(struct store *s, const char *id, const char *node,
    int64_t until_ms);
/* Moves node's leases on ids[0..n) to until_ms; *lost (may be NULL): how many of them
 * another node holds now (node's ran out and was claimed); those let go meanwhile are
 * neither. */
enum el_err store_lease_renew(struct store *s, const char *node, char *const *ids, size_t n,
    int64_t until_ms, size_t *lost);
/* Lets go of node's lease on id (a lease another node holds is left alone). */
enum el_err store_lease_release(struct store *s, const char *id, const char *node);
/* Lets go of every lease node holds (its start: nothing of its own is in flight any more);
 * *n (may be NULL): how many. */
enum el_err store_lease_release_all(struct store *s, const char *node, int64_t *n);
/* The earliest end after now_ms (ms) of a lease any node holds; INT64_MAX when none. */
enum el_err store_lease_next_end(struct store *s, int64_t now_ms, int64_t *t);
/* The holder of id's lease ("" none) and its end (0 none). */
enum el_err store_lease_get(struct store *s, const char *id, char *node, size_t len,
    int64_t *until);

/*
 * Wake-ups between nodes on one database. store_notify(), inside the caller's transaction:
 * when it commits, the other nodes are told there is something new to look at (new due
 * work, a lease let go, mail). store_listen(): fn(arg) is called on a thread of the
 * store's own whenever another node's notice arrives, and once whenever the connection it
 * listens on is back after a loss (notices may have been missed); stopped by
 * store_listen_stop() or store_close(). PostgreSQL: NOTIFY and LISTEN on the channel
 * elevate_wake. SQLite (one node): nothing to tell, nobody to listen to.
 */
void store_notify(struct store *s);
/* Claims the node name for as long as s is open: EL_EEXIST (w says what to do) while
 * another process holds it on the same database. Leases, checkpoints and log lines are
 * named after the node: two processes of one name would take each other's work for their
 * own. PostgreSQL: a session advisory lock on a connection of its own (a lost connection
 * lets it go). SQLite (one node): nothing to claim (engine_lock_state locks the state_dir). */
enum el_err store_claim_node(struct store *s, const char *node, struct el_why *w);
/* The role's lock among the nodes, for work that reads the store, calls AWS and writes
 * back what AWS now holds (a role's deny policy): held by one thread of one node at a
 * time, waited for. PostgreSQL: a session advisory lock on a connection of the store's
 * own, kept until store_role_unlock (one role at a time per process); SQLite: nothing
 * (one node, whose reaper is the only writer of deny policies). */
enum el_err store_role_lock(struct store *s, const char *role);
void store_role_unlock(struct store *s, const char *role);
enum el_err store_listen(struct store *s, void (*fn)(void *), void *arg);
void store_listen_stop(struct store *s);

/* Sum of the durations of parent's extensions in `activating` (in flight). */
enum el_err store_extensions_in_flight(struct store *s, const char *parent_id, int64_t *sum);
/* Active grants longer than warn_lead, not yet warned, ending within warn_lead of now. */
enum el_err store_request_to_warn(struct store *s, int64_t now, int64_t warn_lead, int limit,
    char ***ids, size_t *n);
/* Marks an active grant warned (EL_ESTATE when it is no longer active, or was warned
 * already: by another node). */
enum el_err store_request_warned(struct store *s, const char *id, int64_t at);
/* Counts per state, as a JSON object {"pending": N, ...}. New ref; NULL on a read error. */
json_t *store_request_counts(struct store *s);
/* How many grants in `ending` have a window end before `before` (NULL counts as 0). */
enum el_err store_request_overdue(struct store *s, int64_t before, int64_t *n);

/* ---- approvals ---- */
struct store_approval {
	char approver[72];
	char decision[8];        /* "approve" | "deny" */
	char *comment;
	char via[8];             /* "cli" | "email" */
	int64_t at;
};
/* A break-glass grant's review (table glass): due, done (review "ratified" or "rejected",
 * by whom, when) or escalated to the auditors. */
struct store_glass {
	int64_t review_due_at;
	int64_t reviewed_at;     /* 0: not reviewed */
	char reviewed_by[72];
	char review[12];         /* "", "ratified", "rejected" */
	int64_t escalated_at;    /* 0: not escalated */
};
enum el_err store_glass_insert(struct store *s, const char *request_id, int64_t review_due_at);
/* EL_ENOENT: not a break-glass request. */
enum el_err store_glass_get(struct store *s, const char *request_id, struct store_glass *g);
/* Records the review once: EL_ESTATE if it was reviewed already. */
enum el_err store_glass_review(struct store *s, const char *request_id, const char *by,
    const char *review, int64_t at);
/* Marks an unreviewed one escalated: EL_ESTATE if reviewed or escalated meanwhile. */
enum el_err store_glass_escalate(struct store *s, const char *request_id, int64_t at);
/* Unreviewed, unescalated break-glass grants whose review is due by now (oldest first). */
enum el_err store_glass_due(struct store *s, int64_t now, int limit, char ***ids, size_t *n);
/* The earliest review due of those (INT64_MAX: none). */
enum el_err store_glass_next_due(struct store *s, int64_t *t);

/* A scheduled request's window start (table schedules): EL_ENOENT for one that starts
 * at its approval. */
enum el_err store_schedule_insert(struct store *s, const char *request_id, int64_t start_at);
enum el_err store_schedule_get(struct store *s, const char *request_id, int64_t *start_at);

/* Bundles (tables bundles, bundle_members): one id over several member requests, one per
 * profile, in the order asked. store_bundle_members: EL_ENOENT for no such bundle;
 * *requester (STORE_NAME_MAX) its requester. store_bundle_of: EL_ENOENT for a request in
 * no bundle. */
#define STORE_NAME_MAX 72
enum el_err store_bundle_insert(struct store *s, const char *id, const char *requester,
    int64_t created_at);
enum el_err store_bundle_member_insert(struct store *s, const char *bundle_id,
    const char *request_id, int position);
enum el_err store_bundle_members(struct store *s, const char *bundle_id, char *requester,
    char ***ids, size_t *n);
enum el_err store_bundle_of(struct store *s, const char *request_id, char *bundle_id,
    size_t len);

/* EL_EEXIST if this approver has already decided this request. */
enum el_err store_approval_insert(struct store *s, const char *request_id,
    const struct store_approval *a);
enum el_err store_approval_list(struct store *s, const char *request_id,
    struct store_approval **out, size_t *n);
void store_approvals_free(struct store_approval *a, size_t n);

/* ---- grants (one per active request: the AWS role session) ---- */
struct store_grant {
	char request_id[32];
	char role_session_name[72];
	char *assumed_role_arn;
	char *assumed_role_id;   /* ROLEID:SESSION (aws:userid) */
	char *access_key_id;
	unsigned char *creds_box;/* secretbox(nonce || ciphertext) of the credentials JSON */
	size_t creds_box_len;
	int64_t creds_expire_at;
	int64_t minted_at;
};
void store_grant_free(struct store_grant *g);
enum el_err store_grant_put(struct store *s, const struct store_grant *g);   /* insert or replace */
enum el_err store_grant_get(struct store *s, const char *request_id, struct store_grant *g);

/* ---- SSM sessions ---- */
struct store_session {
	char *session_id;
	char *target;
	char *document;
	int64_t started_at;
	int64_t terminated_at;   /* 0 while open */
};
enum el_err store_session_insert(struct store *s, const char *request_id, const struct store_session *ss);
enum el_err store_session_list(struct store *s, const char *request_id, struct store_session **out, size_t *n);
enum el_err store_session_terminated(struct store *s, const char *session_id, int64_t at);
void store_sessions_free(struct store_session *v, size_t n);

/* ---- replay protection ---- */
/* EL_EEXIST when the nonce was seen already; otherwise remembers it. */
enum el_err store_nonce_use(struct store *s, const char *kind, const char *nonce,
    const char *who, int64_t now);
/* Claims an API nonce: EL_OK first use, EL_EEXIST a replay, EL_EDB. A relaxed transaction
 * (SQLite: group-committed with synchronous=NORMAL; PostgreSQL: synchronous_commit off):
 * durable across a kill of the process, not across an OS crash of the database's machine
 * (see engine_authenticate). Each claim also deletes up to 8 of the kind's nonces seen
 * before prune_before (0: none). */
enum el_err store_nonce_claim(struct store *s, const char *kind, const char *nonce,
    const char *who, int64_t now, int64_t prune_before);
enum el_err store_nonce_prune(struct store *s, const char *kind, int64_t older_than);

/* ---- mail outbox ---- */
struct store_mail {
	int64_t id;
	char *request_id;
	char *rcpt;              /* one address */
	char *subject;
	char *message;           /* the complete RFC 5322 message */
	int attempts;
	int64_t next_attempt_at;
	char state[12];          /* "queued" | "sent" | "failed" */
	char *last_error;
};
/* message: the stored form (the engine seals it); message_id: its Message-ID header. */
enum el_err store_mail_enqueue(struct store *s, const char *request_id, const char *rcpt,
    const char *subject, const char *message, const char *message_id, int64_t now,
    int64_t *id);
/*
 * Claims the oldest queued mail due by now that no node holds a claim on (or whose claim
 * ran out before now) for `node` until now + lease, in a relaxed transaction of its own;
 * on PostgreSQL nodes claiming together skip each other's row (FOR UPDATE SKIP LOCKED),
 * so each mail is claimed by one node at a time. EL_ENOENT when none.
 */
enum el_err store_mail_claim(struct store *s, const char *node, int64_t now, int64_t lease,
    struct store_mail *m);
/* Writes the outcome of an attempt of the mail `node` claimed, and ends the claim (the
 * node's name stays on a mail sent or failed for good). EL_ESTATE when the mail is no
 * longer queued under node's claim: its lease ran out and another node took it over. */
enum el_err store_mail_update(struct store *s, const char *node, const struct store_mail *m);
/* Ends every claim of node on a queued mail: a node starting again under its name gives up
 * what it was sending when it stopped or died. */
enum el_err store_mail_release(struct store *s, const char *node);
/* When the next queued mail may be claimed: its next attempt, or after the claim on it
 * runs out. *t = INT64_MAX when none. */
enum el_err store_mail_next_due(struct store *s, int64_t *t);
/* {"queued":..,"sent":..,"failed":..}; NULL on a read error. */
json_t *store_mail_counts(struct store *s);
void store_mail_free(struct store_mail *m);

/* ---- webhook deliveries (engine_webhook.c) ---- */
struct store_delivery {
	char id[32];             /* "dlv_...": the receivers' de-duplication key */
	char webhook[40];        /* the webhook's name */
	int64_t seq;             /* the audit record told; (webhook, seq) is unique */
	char event[48];
	char *request_id;        /* NULL: an event of no request */
	char *payload;           /* the generic JSON document */
	int attempts;
	int64_t next_attempt_at, give_up_at, created_at;
	char *last_error;
};
/* In the caller's transaction (that of the audit record): EL_EEXIST when the webhook has
 * a delivery of that seq already. */
enum el_err store_delivery_insert(struct store *s, const struct store_delivery *d);
/* In a transaction of its own: the oldest due delivery of a webhook whose older
 * deliveries are all done, not leased, leased now to `node` until lease_until.
 * EL_ENOENT when none. Caller frees with store_delivery_free. */
enum el_err store_delivery_claim(struct store *s, int64_t now, int64_t lease_until,
    const char *node, struct store_delivery *d);
/* The end of an attempt by `node`: state "sent", "failed", or "queued" again (with
 * d->attempts, d->next_attempt_at, d->last_error); the lease is released. EL_ESTATE when
 * the delivery is no longer this node's. */
enum el_err store_delivery_done(struct store *s, const struct store_delivery *d,
    const char *state, const char *node, int64_t now);
/* Releases the leases `node` holds (at start: nothing of it is in flight). */
enum el_err store_delivery_release(struct store *s, const char *node);
/* When the next delivery is due (its lease included); *t = INT64_MAX when none. */
enum el_err store_delivery_next_due(struct store *s, int64_t *t);
/* {"queued":..,"sent":..,"failed":..}; NULL on a read error. */
json_t *store_delivery_counts(struct store *s);
void store_delivery_free(struct store_delivery *d);

/* ---- early revocation: denied role sessions per role ---- */
struct store_revoked {
	char *role_name;
	char *userid;            /* ROLEID:SESSION */
	char *request_id;
	int64_t expires_at;      /* when the credentials expire on their own */
	char cohort[16];         /* listing: its request's cohort, "" none */
};
/* Adds a denied role session, or extends its expiry (never shortens it). A new or extended
 * entry is unsynced until store_revoked_synced() says the role's policy holds it. */
enum el_err store_revoked_add(struct store *s, const struct store_revoked *r);
/* The role's entries alive after alive_after; *mark (may be NULL) identifies this listing
 * for store_revoked_synced. */
enum el_err store_revoked_list(struct store *s, const char *role_name, int64_t alive_after,
    struct store_revoked **out, size_t *n, int64_t *mark);
/* Every entry of the role listed at or before `mark` is now in IAM. */
enum el_err store_revoked_synced(struct store *s, const char *role_name, int64_t mark,
    int64_t at);
/* Roles with entries alive after alive_after not yet in IAM. Caller frees each and ids. */
enum el_err store_revoked_unsynced_roles(struct store *s, int64_t alive_after, char ***roles,
    size_t *n);
enum el_err store_revoked_prune(struct store *s, const char *role_name, int64_t expired_before);
void store_revoked_free(struct store_revoked *v, size_t n);

/* ---- revocation cohorts (denypolicy.h) ---- */
/* The cohort of request id, given on first call: the role's open cohort, which `fresh`
 * opens if the role has none. Written once; *out is what the request holds. */
enum el_err store_request_cohort(struct store *s, const char *id, const char *role_name,
    const char *fresh, char *out, size_t len);
/* The role's open cohort; EL_ENOENT when it has none. */
enum el_err store_cohort_open(struct store *s, const char *role_name, char *out, size_t len);
/* Closes the role's open cohort: `fresh` is the one later grants join. */
enum el_err store_cohort_close(struct store *s, const char *role_name, const char *fresh);
struct store_live {
	char request_id[32];
	char cohort[16];
};
/* The role's grants that are active or being activated and carry a cohort. Caller frees
 * *out (free()). */
enum el_err store_live_grants(struct store *s, const char *role_name, struct store_live **out,
    size_t *n);

/* ---- audit (called by audit.c only) ---- */
enum el_err store_audit_tail(struct store *s, int64_t *seq, unsigned char hash[AUDIT_HASH_BYTES]);
enum el_err store_audit_insert(struct store *s, const struct audit_rec *r);
struct store_audit_filter {
	int64_t since_seq;       /* records with seq > since_seq */
	const char *actor, *event, *request_id, *profile;
	const char *since_time;  /* ISO time, inclusive */
	int limit;               /* 0: 1000 */
};
/* Ascending seq. Each element a JSON record as exported (audit_rec_json). New ref. */
enum el_err store_audit_list(struct store *s, const struct store_audit_filter *f, json_t **out);
/* The highest seq of a record with this event (0 when none), and how many records the
 * audit table holds. */
enum el_err store_audit_last_event(struct store *s, const char *event, int64_t *seq);
enum el_err store_audit_count(struct store *s, int64_t *n);
/* The records that tell the chain's keys (audit.node_joined, audit.key_rotated) with seq
 * > since_seq, at most limit, ascending, as store_audit_list's. New ref. */
enum el_err store_audit_key_records(struct store *s, int64_t since_seq, int limit,
    json_t **out);

#endif
