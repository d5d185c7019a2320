/*
 * engine.h — the narrow interface between the HTTP layer and everything that holds
 * secrets (AWS credentials, the token-signing key, the at-rest key). Handlers pass what
 * the caller said and who the caller is (already authenticated); the engine re-checks
 * every decision against the policy itself and answers JSON or an error with a message.
 */
#ifndef ELEVATE_ENGINE_H
#define ELEVATE_ENGINE_H

#include <jansson.h>
#include <stdbool.h>

#include "elevate/config.h"
#include "elevate/diag.h"
#include "elevate/el.h"
#include "elevate/reqsig.h"

struct engine;

/* Opens the store, keys (created 0600 on first start), policies, templates and the AWS
 * client. cfg is borrowed for the engine's life. */
enum el_err engine_open(const struct config *cfg, struct engine **out, struct el_why *w);
/* Resumes overdue work (lapses, endings, activations interrupted by a crash), then starts
 * the reaper and the mailer threads. */
enum el_err engine_start(struct engine *e);
/* Stops the threads (finishing the step in progress). */
void engine_stop(struct engine *e);
void engine_close(struct engine *e);
/*
 * Offline audit commands (engine_audit.c), with the broker stopped or not running on
 * cfg->state_dir. engine_audit_check: `elevated check --audit`, the store's whole chain
 * from seq 1 with the first public key (audit.pub.first, else audit.pub), ending with the
 * key in audit.pub. engine_audit_rotate_key: `elevated audit-rotate-key`, refused while
 * an engine holds state_dir; newpub gets the new public key, *at_seq the chain's head.
 */
struct audit_check_report;
enum el_err engine_audit_check(const struct config *cfg, struct audit_check_report *rep,
    struct el_why *w);
enum el_err engine_audit_rotate_key(const struct config *cfg, char *newpub, size_t len,
    int64_t *at_seq, struct el_why *w);
/* Loads policies again; on any problem keeps the old set and reports it in d. */
enum el_err engine_reload_policy(struct engine *e, struct diags *d);

/* Is the source address peer (as text) throttled for its refusals? Then *retry_after
 * gets the seconds to wait. Costs no store access: asked before any signature check. */
bool engine_throttled(struct engine *e, const char *peer, int *retry_after);
/* Authentication of a signed API call from source address peer. On failure *code is
 * "bad_signature", "clock_skew", "replayed_nonce" or "unknown_user", and the refusal is
 * counted against peer and audited (the first few of each reason per interval one by
 * one, the rest in a summary record). */
enum el_err engine_authenticate(struct engine *e, const struct reqsig_fields *f,
    const char *signature, const char *peer, const char **code, struct el_why *w);

/* API operations. `user` is authenticated. *out is a new reference on success. A refusal
 * (EL_EPERM; or EL_ENOENT for a request the user may not see) is audited as
 * authz.refused. */
enum el_err engine_create_request(struct engine *e, const char *user, json_t *body,
    json_t **out, struct el_why *w);
enum el_err engine_list_requests(struct engine *e, const char *user, const char *state,
    bool mine, json_t **out, struct el_why *w);
enum el_err engine_get_request(struct engine *e, const char *user, const char *id,
    json_t **out, struct el_why *w);
/* An approver's vote. It answers as soon as the vote is committed: the vote that
 * completes the quorum answers `activating` and the credentials are minted after it. */
enum el_err engine_decide(struct engine *e, const char *user, const char *id, bool approve,
    json_t *body, json_t **out, struct el_why *w);
enum el_err engine_cancel(struct engine *e, const char *user, const char *id, json_t **out,
    struct el_why *w);
enum el_err engine_revoke(struct engine *e, const char *user, const char *id, json_t *body,
    json_t **out, struct el_why *w);
enum el_err engine_extend(struct engine *e, const char *user, const char *id, json_t *body,
    json_t **out, struct el_why *w);
/* The hand-out is audited as grant.credentials_fetched with the caller's source address
 * (peer, as text) and the access key id: never a secret. */
enum el_err engine_credentials(struct engine *e, const char *user, const char *id,
    const char *peer, json_t **out, struct el_why *w);
enum el_err engine_start_session(struct engine *e, const char *user, const char *id,
    json_t *body, json_t **out, struct el_why *w);
/* The AWS console for an active grant of user's: body {"destination"?: "https://…"};
 * *out {id, url (a sign-in URL, a secret for url_valid_seconds), window_end,
 * url_valid_seconds}. Audited as grant.console. */
enum el_err engine_console(struct engine *e, const char *user, const char *id,
    const char *peer, json_t *body, json_t **out, struct el_why *w);
enum el_err engine_terminate_session(struct engine *e, const char *user, const char *id,
    const char *session_id, json_t **out, struct el_why *w);
/* Revokes many active grants in one sweep (one policy update per role). body:
 * {"ids": [...], "reason"?}. */
enum el_err engine_revoke_many(struct engine *e, const char *user, json_t *body,
    json_t **out, struct el_why *w);
enum el_err engine_audit_query(struct engine *e, const char *user, json_t *query,
    json_t **out, struct el_why *w);
/* The access review (auditors only; engine_report.c): every grant since query's "since"
 * (a duration or a time, at most REPORT_SINCE_MAX ago) with its approvals, window, end,
 * SSM sessions, credential fetches and revocation receipt; overdue revocations flagged.
 * query: {"since", "limit"?} as strings (a query string). More grants than the limit is
 * a refusal that says so, never a shorter report. */
enum el_err engine_report(struct engine *e, const char *user, json_t *query, json_t **out,
    struct el_why *w);

/* Approval pages (no signature: the token is the credential), from source address peer.
 * The context is for the approve_page / result_page templates; *status is the HTTP status
 * to answer with. A link that does not verify is refused like a bad API signature. */
enum el_err engine_token_page(struct engine *e, const char *token, const char *peer,
    json_t **ctx, int *status);
enum el_err engine_token_decide(struct engine *e, const char *token, bool approve,
    const char *comment, const char *peer, json_t **ctx, int *status);
/* Renders a page template (HTML) or the stylesheet. Caller frees *out. */
enum el_err engine_render_page(struct engine *e, const char *name, json_t *ctx, char **out);

/* Prometheus text exposition. */
enum el_err engine_metrics(struct engine *e, struct dbuf *out);
/* Health: EL_OK when the store commits a transaction (EL_EDB with the reason in w). */
enum el_err engine_health(struct engine *e, json_t **out, struct el_why *w);

#endif
