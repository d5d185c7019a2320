/*
 * engine_int.h — the engine's private state, shared by engine*.c only. Nothing outside
 * src/core/engine*.c includes this file.
 */
#ifndef ELEVATE_ENGINE_INT_H
#define ELEVATE_ENGINE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "elevate/audit.h"
#include "elevate/audit_export.h"
#include "elevate/aws.h"
#include "elevate/config.h"
#include "elevate/engine.h"
#include "elevate/lifecycle.h"
#include "elevate/policy.h"
#include "elevate/ratelimit.h"
#include "elevate/store.h"
#include "elevate/template.h"
#include "elevate/token.h"

#define SCHEDULE_MAX (30 * 86400)   /* how far ahead a window may be scheduled (s) */
#define ENGINE_HIST_BUCKETS 12
/* A node's lease on due work (ms): another node takes the work over once it runs out, so a
 * dead node's work waits at most this long after the lease's last renewal. Renewed every
 * LEASE_RENEW_MS while the work runs (AWS calls of any length): three renewals may fail or
 * stall before another node steps in. */
#define LEASE_MS 2000
#define LEASE_RENEW_MS 500

struct hist {
	_Atomic uint64_t bucket[ENGINE_HIST_BUCKETS];   /* cumulative on output */
	_Atomic uint64_t count;
	_Atomic uint64_t sum_us;
};

struct aws_stat {
	char service[8];
	char action[40];
	char outcome[48];
	uint64_t count;
	double sum;
	uint64_t bucket[ENGINE_HIST_BUCKETS];
};

/* Refusals of one kind in the current interval: anonymous ones by event and reason; those
 * of an approval link that verifies also by its approver, request and method. */
#define REFUSAL_KINDS 8
#define LINK_REFUSAL_KINDS 64
#define REFUSAL_PEER_MAX 48
struct refusal_kind {
	char event[24];                   /* "auth.refused", "token.refused"; "" unused */
	char reason[24];
	char actor[TOKEN_FIELD_MAX + 1];  /* "anonymous", or the approver a link names */
	char request_id[TOKEN_FIELD_MAX + 1];   /* "": none */
	char method[8];                   /* a link's GET or POST; "": anonymous */
	int64_t since;                    /* the interval began (s); 0: none open */
	int64_t individual;               /* audited one by one in it */
	uint64_t count;                   /* counted in it, for its summary */
	int64_t first_at, last_at;
	char first_peer[REFUSAL_PEER_MAX], last_peer[REFUSAL_PEER_MAX];
};

/* A request with AWS work in flight in this process (engine_grant.c). */
struct claim {
	char *id;
	int minting;                      /* waiting for AWS to mint its session */
};

struct role_info {
	char name[72];
	char id[64];
	int max_session;
	int64_t fetched_at;
};

struct engine {
	const struct config *cfg;
	struct store *store;
	pthread_mutex_t policy_mu;
	struct policy *policy;            /* current; take with engine_policy() */
	struct template_set *templates;   /* NULL when the directory is missing (no mail) */
	struct aws_client *aws;
	struct token_key *token_key;
	unsigned char *audit_sk;          /* 64 bytes, sodium_malloc */
	unsigned char *audit_pk;          /* 32 bytes */
	unsigned char *box_key;           /* 32 bytes, sodium_malloc */
	int lock_fd;                      /* state_dir/engine.lock, held while open */
	int broker_chained;               /* the broker's own creds are a role session */
	int64_t opened_at;                /* API signatures dated before it are refused */

	/* reaper */
	pthread_t reaper;
	pthread_mutex_t wake_mu;
	pthread_cond_t wake_cv;
	int wake;
	int64_t reaper_until;             /* the reaper sleeps until then, ms (0: it is looking) */
	int stopping;
	int reaper_started, mailer_started;   /* engine_stop joins what was started */
	/* mailer */
	pthread_t mailer;
	pthread_cond_t mail_cv;
	int mail_wake;
	/* webhooks (engine_webhook.c); NULL: none configured */
	struct webhooks *hooks;
	/* revocation entries not yet in IAM (minted credentials that lost a race): the
	 * reaper's own, so no lock */
	int64_t sync_next_at;
	int sync_attempts;

	/* AWS work in flight per request id (minting, extension, re-minting): one at a time
	 * per grant in this process; the reaper leaves a claimed activation alone until
	 * done (a grant minted again or extended is revoked at once: its minter denies) */
	pthread_mutex_t act_mu;
	pthread_cond_t act_cv;            /* a claim was released, or a worker finished */
	struct claim *claimed;
	size_t nclaimed;
	int workers;                      /* detached activation workers still running */

	/* leases on due work (engine_lease.c): the requests whose work is in flight here
	 * (one entry per hold), their leases renewed by the leaser thread; under lease_mu */
	pthread_mutex_t lease_mu;
	pthread_cond_t lease_cv;          /* CLOCK_MONOTONIC: the leaser's stop */
	char **leased;
	size_t nleased, leased_cap;
	pthread_t leaser;
	int leaser_started;
	int leaser_stop;

	/* revocations waited for (engine_revoke.c): end_gen counts the moments grants left
	 * `ending` or AWS work began on one; waiters sleep on end_cv (CLOCK_MONOTONIC) */
	pthread_mutex_t end_mu;
	pthread_cond_t end_cv;
	uint64_t end_gen;

	/* audit export (engine_audit.c); under export_mu */
	pthread_mutex_t export_mu;
	int64_t exported_seq;
	struct audit_out aout;            /* audit.file */
	int syslog_fd;                    /* -1: not connected */
	int syslog_ok;                    /* the last send worked (log once per outage) */
	char hostname[64];
	int export_failing, export_attempts, export_mailed;
	int64_t export_retry_at_ms, export_failed_since;
	char export_problem[EL_WHYLEN];
	int64_t published_seq;            /* the newest head published */
	/* checkpoints; under ckpt_mu */
	pthread_mutex_t ckpt_mu;          /* committing threads race for the checkpoint */
	int64_t checkpoint_seq;           /* newest checkpoint of any node seen (tail at start) */
	int64_t unsigned_since_ms;        /* first record no checkpoint covers yet; 0: none */
	/* the auditor and anchor threads; under wake_mu */
	pthread_t auditor, anchorer;
	int auditor_started, anchorer_started;
	pthread_cond_t audit_cv, anchor_cv;
	int audit_wake;
	char *anchor_doc;                 /* head waiting for audit.anchor; NULL: none */
	int64_t anchor_seq, anchor_retry_at_ms;
	int anchor_attempts;
	_Atomic int64_t audit_anchored_seq;
	_Atomic uint64_t audit_export_failed_total, audit_syslog_failed_total;
	_Atomic uint64_t audit_heads_total, audit_anchor_failed_total;
	_Atomic int64_t healthy_at_ms;    /* last commit /healthz saw succeed */

	/* refusals counted for their summaries (engine_refuse.c); under refuse_mu */
	pthread_mutex_t refuse_mu;
	struct refusal_kind refusals[REFUSAL_KINDS];             /* anonymous */
	struct refusal_kind link_refusals[LINK_REFUSAL_KINDS];   /* of links that verify */
	struct ratelimit *throttle;       /* per source address */

	/* role id / max session cache */
	pthread_mutex_t role_mu;
	struct role_info *roles;
	size_t nroles;

	/* metrics */
	pthread_mutex_t stat_mu;
	struct aws_stat *stats;
	size_t nstats;
	struct hist revoke_lag;           /* seconds from window end to ended */
	_Atomic uint64_t approvals_total, denials_total, auth_refused_total;
	_Atomic uint64_t mail_sent_total, mail_failed_total, revocations_failed_total;
	_Atomic uint64_t deny_policy_chars_max;   /* largest revocation policy put */
	_Atomic uint64_t tokens_refused_total, authz_refused_total, rate_limited_total;
};

/* The current policy, retained: release with policy_release(). */
/* Keys in state_dir (engine.c). */
enum key_mode { KEY_MUST_EXIST, KEY_NEW_RANDOM, KEY_NEW_SIGN };
enum el_err engine_load_key(const char *dir, const char *name, size_t len,
    enum key_mode mode, unsigned char **out, struct el_why *w);
/* engine_audit.c: the audit key, an interrupted rotation and the chain's check at start
 * (fills e->audit_sk, e->audit_pk). */
enum el_err engine_audit_key_open(struct engine *e, struct el_why *w);
/* flock on state_dir/engine.lock: one engine (or key rotation) per state_dir, waiting
 * up to wait_ms for a holder to go. *fd is the held descriptor. */
enum el_err engine_lock_state(const char *dir, int wait_ms, int *fd, struct el_why *w);

struct policy *engine_policy(struct engine *e);

/* Transactions that also export the audit trail and wake the threads after commit. */
enum el_err engine_tx_begin(struct engine *e);
enum el_err engine_tx_commit(struct engine *e);
void engine_tx_rollback(struct engine *e);
void engine_wake_reaper(struct engine *e);
/* Wakes the reaper for work due at `due`, unless it sleeps until no later than that. */
void engine_wake_reaper_for(struct engine *e, int64_t due);
void engine_wake_mailer(struct engine *e);

/*
 * The one way to change a request's state, inside the caller's transaction: the
 * transition for (r->state, ev) from the lifecycle table, written as a compare-and-set
 * (the row must still be in r->state) together with its audit record, whose data gets
 * "from" and "to". r->state follows on success. EL_ESTATE when the table has no such
 * transition or the row moved on meanwhile; the caller then rolls back.
 */
enum el_err engine_transition(struct engine *e, struct store_request *r, enum req_event ev,
    const char *actor, json_t *data);
/* Writes r's fields other than its state, only while the row is still in r->state. */
enum el_err engine_request_save(struct engine *e, const struct store_request *r);
/* Begins a transaction and reads request id afresh in it (what was read before an AWS
 * call or a wait is stale). On failure nothing is left open. Caller frees r. */
enum el_err engine_tx_read(struct engine *e, const char *id, struct store_request *r);
/* Moves the next attempt of request id to `at`, if it is still in `state`, and lets go of
 * this node's lease on it: the work is given up until then. */
void engine_retry_at(struct engine *e, const char *id, enum req_state state, int64_t at);
/* The vote that completes r's quorum (inside the caller's transaction, r read in it):
 * pending -> activating, or for an extension that no longer fits, pending -> failed.
 * *activate tells whether minting should follow. */
enum el_err engine_quorum_reached(struct engine *e, const struct policy *p,
    struct store_request *r, const char *actor, bool *activate);

/* Request JSON for the API (with approvals, quorum, grant, sessions). New ref. */
json_t *engine_request_json(struct engine *e, const struct store_request *r);
/* Audit inside a transaction, logging (never failing silently). */
enum el_err engine_audit(struct engine *e, const char *actor, const char *event,
    const char *request_id, json_t *data);

/* One decision (CLI or email link: `via`), inside its own transaction. *out is the
 * request as the vote left it: a vote that completes the quorum answers `activating`
 * once committed, and the minting follows on a worker (engine_activate_async). */
enum el_err engine_decide_as(struct engine *e, const char *user, const char *id, bool approve,
    const char *comment, const char *via, json_t **out, struct el_why *w);
/* The template context of a request for mails and pages, its decisions (approvals) read
 * from the store. New ref. */
json_t *engine_mail_ctx(struct engine *e, const struct store_request *r,
    const char *recipient);
/* The same without the decisions: what a page needs that shows none (the result page), or
 * that adds the ones it has already read (engine_approvals_ctx). New ref. */
json_t *engine_request_ctx(struct engine *e, const struct store_request *r,
    const char *recipient);
/* The decisions ap[0..nap) as the templates name them (approvals.decided_at). New ref. */
json_t *engine_approvals_ctx(const struct store_approval *ap, size_t nap);
/* Whether the decisions ap[0..nap) on r meet its profile's quorum (*met; w, may be NULL:
 * what is missing) and how many approved (*napproved, may be NULL). EL_ENOMEM only (then
 * *met is false and w says so). */
enum el_err engine_quorum_of(const struct policy *p, const struct store_request *r,
    const struct store_approval *ap, size_t nap, bool *met, size_t *napproved,
    struct el_why *w);

/* engine_grant.c */
/* activating -> active (or failed, or a retry later): mints the first credentials, or
 * applies an approved extension, on a worker thread of its own, so neither the approver's
 * call nor the reaper waits for AWS. false when the request is already in flight here or
 * no worker could start; the request's lease then brings the reaper back to it. */
bool engine_activate_async(struct engine *e, const char *id);
/* Is AWS work on request id in flight in this process (claimed until its outcome is
 * committed)? */
bool engine_in_flight(struct engine *e, const char *id);
/* Is AWS minting for request id right now (the call not answered yet)? */
bool engine_minting(struct engine *e, const char *id);
/* Waits for the activation workers to finish (engine_stop). */
void engine_workers_wait(struct engine *e);
/* Mints fresh credentials for an active grant under its session name. */
enum el_err engine_remint(struct engine *e, const char *id);
/* engine_remint when r's stored credentials expire before its window ends and within
 * 5 minutes (what `elevate creds` and the console hand out must outlive a few minutes):
 * EL_OK (fresh enough, or minted), EL_ENOENT (none stored), or engine_remint's error
 * (EL_ESTATE: the grant left `active` meanwhile). */
enum el_err engine_remint_if_due(struct engine *e, const struct store_request *r);
/* The stored credentials as credential_process JSON (new ref), or as aws_creds (to sign
 * the grant's StartSession; caller clears). */
enum el_err engine_decrypt_creds(struct engine *e, const struct store_grant *g,
    json_t **creds);
enum el_err engine_grant_creds(struct engine *e, const struct store_grant *g,
    struct aws_creds *c);

/* engine_revoke.c */
/* Pushes every role's revocation entries that IAM does not hold yet (the reaper). */
void engine_sync_revocations(struct engine *e, int64_t now);
/* The role name of a role ARN (borrowed from arn). */
const char *engine_role_name(const char *arn);
/* Runs the revocation steps for grants in `ending` this node holds the leases of; each
 * either ends or is rescheduled, and its lease let go with it. */
void engine_end_grants(struct engine *e, char **ids, size_t n);
/* Wakes the waiters of engine_wait_ended: a grant left `ending`, or AWS began minting for
 * one. */
void engine_ends_changed(struct engine *e);
/* Waits until every id has left `ending` (or AWS is minting for it: it ends after AWS
 * answers), or timeout_ms passes; one deadline for all. Borrows ids. */
void engine_wait_ended(struct engine *e, const char *const *ids, size_t n, int timeout_ms);
/* active or activating -> ending for grant id, in a transaction of its own (refusals
 * audited); the caller wakes the reaper and waits (engine_revoke does both). */
enum el_err engine_revoke_mark(struct engine *e, const char *user, const char *id,
    json_t *body, struct el_why *w);

/* Counted worker threads (engine_workers_wait waits for them): spawn runs fn(arg)
 * detached, false when it cannot; the worker calls engine_worker_done as it ends. */
bool engine_worker_spawn(struct engine *e, void *(*fn)(void *), void *arg);
void engine_worker_done(struct engine *e);
/* engine_probe.c: after grant id ended, proves it with its profile's revocation_probe on
 * a worker thread (counted in e->workers; quits when the engine stops). */
void engine_probe_start(struct engine *e, const char *id);
/* At start: probes of grants that ended in the last hour without a receipt. */
void engine_probe_resume(struct engine *e);

/* engine_report.c: the time (ms since the epoch) of the last audit record `event` of
 * request id; EL_ENOENT when there is none. */
enum el_err engine_event_time_ms(struct engine *e, const char *id, const char *event,
    int64_t *ms);

/* engine_mail.c: renders `tmpl` for each user and queues it (inside a transaction). */
enum el_err engine_notify(struct engine *e, const char *tmpl, const struct store_request *r,
    const char *const *users, size_t nusers, json_t *extra);
/* Mails built (rendered, MIME, sealed with the at-rest key) and not queued yet. */
struct engine_mail {
	char *to, *subject, *sealed;
	char msgid[160];
};
struct engine_mails {
	struct engine_mail *v;
	size_t n;
};
/* The approval-request mail with a token link for every eligible approver of r (a new
 * request, not stored yet), built outside any transaction; *out is freed with
 * engine_mails_free(). engine_mails_queue() queues them inside the request's. */
enum el_err engine_approver_mails(struct engine *e, const struct store_request *r,
    struct engine_mails *out);
/* The approval link (public_url/approve/TOKEN) of approver for request or bundle id,
 * valid until `until`, into link: a secret. */
enum el_err engine_approval_link(struct engine *e, const char *id, const char *approver,
    int64_t until, char *link, size_t len);
/* Ends the transaction a new request's rows were written in: committed when rc is EL_OK,
 * else rolled back; w says why it was not stored. Returns the outcome. */
enum el_err engine_new_request_end(struct engine *e, enum el_err rc, struct el_why *w);
/* Builds one mail of template tmpl for address `to` (ctx borrowed) onto out, outside any
 * transaction. */
enum el_err engine_mails_add(struct engine *e, struct engine_mails *out, const char *tmpl,
    const char *request_id, const char *to, json_t *ctx);
enum el_err engine_mails_queue(struct engine *e, const char *request_id,
    const struct engine_mails *m);
void engine_mails_free(struct engine_mails *m);
/* Tells the approvers who did not vote that the request was decided by others. */
enum el_err engine_notify_others(struct engine *e, const struct store_request *r,
    const char *outcome, const char *decided_by);
void *engine_mailer_main(void *arg);

/* engine_webhook.c */
/* The webhooks of the config, their keys read (engine_open); the end (engine_close). */
enum el_err engine_webhooks_open(struct engine *e, struct el_why *w);
void engine_webhooks_close(struct engine *e);
/* The sender thread (engine_start, engine_stop; a POST in flight is cut short). */
enum el_err engine_webhooks_start(struct engine *e);
void engine_webhooks_stop(struct engine *e);
/* In the transaction of the audit record just appended (engine_audit): a delivery for
 * each webhook that takes it. */
enum el_err engine_webhook_queue(struct engine *e, const char *actor, const char *event,
    const char *request_id, json_t *data);
/* After a commit: wakes the sender when this thread's transaction queued deliveries. */
void engine_webhooks_committed(struct engine *e);
/* Wakes the webhook sender: another node queued deliveries it may send. */
void engine_webhooks_wake(struct engine *e);
void engine_webhook_metrics(struct engine *e, struct dbuf *b);

/* engine_refuse.c */
/* The per-address throttle from the config (engine_open), and its end (engine_close). */
enum el_err engine_refusals_open(struct engine *e);
void engine_refusals_close(struct engine *e);
/*
 * An anonymous refusal: one before the caller is known (a bad, unknown or replayed API
 * signature: event auth.refused; an approval link whose signature does not verify:
 * token.refused). It is charged to peer's throttle bucket; the first
 * audit.refusals_individual of its reason in an interval are audited one by one (data,
 * borrowed, gets "peer"), the rest only counted into one summary record per interval
 * (engine_refusals_flush). The caller counts it in the metrics.
 */
void engine_refused_anon(struct engine *e, const char *event, const char *reason,
    const char *peer, json_t *data);
/*
 * A refusal of an approval link that verifies (expired, already decided, used, no longer
 * an approver): audited as token.refused with actor approver and request_id (NULL when
 * the request is gone), the first audit.refusals_individual of each link (approver and
 * request), reason and method in an interval one by one (data, borrowed, gets "peer"), the
 * rest counted into one token.refused_summary of that link, reason and method. Not charged
 * to the throttle: the link is the broker's own. The caller counts it in the metrics.
 */
void engine_refused_link(struct engine *e, const char *approver, const char *request_id,
    const char *reason, const char *method, const char *peer, json_t *data);
/* Writes the summaries of intervals that are over (every one when `all`: at shutdown),
 * each in its own transaction. Returns when the next one is due (INT64_MAX: none). */
int64_t engine_refusals_flush(struct engine *e, int64_t now, bool all);
/*
 * The end of an authenticated caller's operation, with no transaction open: a refusal
 * (EL_EPERM, answered 403; or EL_ENOENT for a request that exists but `user` may not see,
 * answered 404 like a missing one) is audited as authz.refused (actor user, request id,
 * data {action, why}) and logged. Returns rc.
 */
enum el_err engine_authz(struct engine *e, const char *user, const char *action,
    const char *id, enum el_err rc, const struct el_why *w);
/* May user see request r? Its requester, its possible approvers, auditors, admins. */
bool engine_may_view(struct engine *e, const struct policy *p, const char *user,
    const struct store_request *r);
/* Loads request id if user may see it; EL_ENOENT alike for a missing and a hidden one
 * (not to leak ids). Caller frees r on EL_OK. */
enum el_err engine_load_visible(struct engine *e, const struct policy *p, const char *user,
    const char *id, struct store_request *r, struct el_why *w);
/* The same for what only the requester may do (`what`: "cancel request", ...): EL_EPERM
 * "only the requester (R) may WHAT ID" for anyone else who may see it. */
enum el_err engine_load_own(struct engine *e, const struct policy *p, const char *user,
    const char *id, const char *what, struct store_request *r, struct el_why *w);

/* A new request on its way into the store (engine.c): prepared outside any transaction
 * (its audit data, its approvers' mails unless !ask: a bundle's member, whose bundle
 * mails the approvers), stored inside one, started after the commit (its minting when
 * the rule approved it or the glass was broken). */
struct engine_new_request {
	struct store_request *r;          /* borrowed */
	const struct pol_auto_rule *ar;
	bool glass;
	int64_t start_at;
	json_t *data;
	struct engine_mails mails;
	bool activate;
};
enum el_err engine_new_request_prepare(struct engine *e, struct engine_new_request *n,
    struct store_request *r, const struct pol_auto_rule *ar, bool glass, int64_t start_at,
    bool ask, json_t *extra);
enum el_err engine_new_request_store(struct engine *e, const struct policy *p,
    const char *user, struct engine_new_request *n);
void engine_new_request_started(struct engine *e, const char *user,
    struct engine_new_request *n);
void engine_new_request_free(struct engine_new_request *n);
/* Checks a new request of user's for profile against the policy (body: POST
 * /v1/requests's fields but the profile) and fills r (strings borrowed from body and p),
 * *start (0: at the approval) and *ar (the auto-approval rule that approves it, or NULL). */
enum el_err engine_request_build(struct engine *e, const struct policy *p,
    const char *user, json_t *body, const char *profile, int64_t now,
    struct store_request *r, int64_t *start, const struct pol_auto_rule **ar,
    struct el_why *w);

/* engine_bundle.c: one request over several profiles, a member request per profile. */
#define BUNDLE_MAX 10
enum bundle_op { BOP_APPROVE, BOP_DENY, BOP_CANCEL, BOP_REVOKE, BOP_EXTEND };
/* Is id a bundle's ("bun_…")? */
bool engine_is_bundle_id(const char *id);
/* POST /v1/requests with "profiles": every member or none, in one transaction. */
enum el_err engine_create_bundle(struct engine *e, const char *user, json_t *body,
    json_t **out, struct el_why *w);
/* The bundle with its members (each the request JSON) and a summary state. */
enum el_err engine_get_bundle(struct engine *e, const char *user, const char *id,
    json_t **out, struct el_why *w);
/* The id of bundle id's member for profile into member; EL_EINVAL listing the profiles
 * when profile is NULL or not in the bundle. */
enum el_err engine_bundle_member(struct engine *e, const char *user, const char *id,
    const char *profile, char *member, size_t len, struct el_why *w);
/* op on every member (each through its own operation and transaction; a decision `via`
 * "cli" or "email"); see the file. */
enum el_err engine_bundle_each(struct engine *e, const char *user, const char *id,
    enum bundle_op op, json_t *body, const char *via, json_t **out, struct el_why *w);
/* The bundle's approval page as approver sees it (the request fields of its first member,
 * bundle_id, roles: one per member with its state, quorum and whether approver may decide
 * it now); NULL for no bundle. *ndecidable: the members approver may decide now,
 * *npending those pending, *approver_of: those approver may approve at all. */
json_t *engine_bundle_page_ctx(struct engine *e, const char *id, const char *approver,
    size_t *ndecidable, size_t *npending, size_t *approver_of);

/* engine_glass.c */
/* A new break-glass request r (pending, just inserted in the caller's transaction): its
 * review row, pending -> activating (request.break_glass), the notice in the outbox. */
enum el_err engine_glass_begin(struct engine *e, const struct policy *p,
    struct store_request *r, const char *user);
/* An approver's vote on a request that is no longer pending: the review of a break-glass
 * grant (approve ratifies; deny rejects and revokes it at once); EL_ENOENT, with nothing
 * said, when r is not a break-glass request. In the caller's transaction. */
enum el_err engine_glass_review(struct engine *e, const struct policy *p,
    struct store_request *r, const char *user, bool approve, const char *comment,
    const char *via, struct el_why *w);
/* The request's "break_glass" member: its review, or JSON null (new reference). */
json_t *engine_glass_json(struct engine *e, const char *id);
/* The reaper: unreviewed break-glass grants past review_within go to the auditors. */
void engine_glass_escalate_due(struct engine *e, int64_t now);

/* engine_sched.c */
void *engine_reaper_main(void *arg);
enum el_err engine_resume(struct engine *e);

/* engine_lease.c */
/* This node's name (config node), which its leases carry. */
const char *engine_node(const struct engine *e);
/* Claims up to limit requests whose `kind` of work is due at now_ms and free (store.h):
 * this node's lease on each for LEASE_MS. In the caller's transaction or one of its own. */
enum el_err engine_claim(struct engine *e, enum store_due kind, int64_t now_ms, int limit,
    char ***ids, size_t *n);
/* This node's lease on id for LEASE_MS, whoever held it (inside the vote's transaction:
 * this node's worker mints at once). */
enum el_err engine_lease_take(struct engine *e, const char *id);
/* Lets go of this node's lease on id (the work is done or given up), in the caller's
 * transaction (with the state change it ends in) or one of its own; the other nodes are
 * told. */
enum el_err engine_lease_release(struct engine *e, const char *id);
/* The work on ids[0..n) is in flight here: their leases are renewed until unhold. */
void engine_lease_hold(struct engine *e, char *const *ids, size_t n);
void engine_lease_unhold(struct engine *e, char *const *ids, size_t n);
/* At start (before the first sweep): lets go of this node's own leases, starts the leaser
 * and listens to the other nodes; at stop (after the workers): stops both and lets go of
 * what is left. */
enum el_err engine_leases_start(struct engine *e);
void engine_leases_stop(struct engine *e);

/* engine_audit.c */
/* After every commit: a checkpoint when checkpoint_every says so (else the auditor's
 * timer signs within 1 s), the export, and the publication of a new head. */
void engine_audit_committed(struct engine *e);
/* Exports what is not exported yet (no lock held); while failing only on retry. */
void engine_audit_export(struct engine *e);
void engine_wake_auditor(struct engine *e);
/* Opens audit.file (cutting a torn line), starts the auditor and anchor threads. */
enum el_err engine_audit_start(struct engine *e);
/* Joins the threads (engine_stop); engine_audit_close also signs, exports, publishes
 * the last head and closes the file and syslog. */
void engine_audit_stop(struct engine *e);
void engine_audit_close(struct engine *e);
/* EL_EIO with the reason while the export fails (/healthz). */
enum el_err engine_audit_health(struct engine *e, struct el_why *w);
void engine_audit_metrics(struct engine *e, struct dbuf *b);

/* engine_metrics.c */
void engine_aws_observer(void *arg, const char *service, const char *action,
    const char *outcome, double seconds);
void hist_observe(struct hist *h, double seconds);
extern const double engine_hist_bounds[ENGINE_HIST_BUCKETS];

#endif
