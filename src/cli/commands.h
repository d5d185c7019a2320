/*
 * commands.h — every `elevate` command, one cmd_*.c file each, and the few helpers
 * two commands share. main.c's router lists these in its table.
 */
#ifndef ELEVATE_CLI_COMMANDS_H
#define ELEVATE_CLI_COMMANDS_H

#include <stdio.h>
#include <jansson.h>

#include "cli.h"
#include "creds_cache.h"

struct api;

extern const struct cli_cmd cmd_init;
extern const struct cli_cmd cmd_request;
extern const struct cli_cmd cmd_list;
extern const struct cli_cmd cmd_status;
extern const struct cli_cmd cmd_approve;      /* cmd_decide.c */
extern const struct cli_cmd cmd_deny;         /* cmd_decide.c */
extern const struct cli_cmd cmd_cancel;
extern const struct cli_cmd cmd_revoke;
extern const struct cli_cmd cmd_creds;
extern const struct cli_cmd cmd_exec;
extern const struct cli_cmd cmd_audit;
extern const struct cli_cmd cmd_debug;
extern const struct cli_cmd cmd_ssm;
extern const struct cli_cmd cmd_extend;
extern const struct cli_cmd cmd_report;
extern const struct cli_cmd cmd_console;

/*
 * The id of the caller's active grant of profile (the latest window end; one being
 * activated is waited for) into id. Otherwise the message is printed and the return is
 * the exit code. cmd_creds.c.
 */
/* Is res a bundle (GET) or what an operation on a bundle answered (its results)? Then
 * status_bundle prints it: each member's outcome, the bundle, its members. */
int status_is_bundle(const json_t *res);
int status_bundle(const json_t *res);
int creds_grant_id(struct api *a, const char *profile, char *id, size_t len);
/* The member of bundle id for profile into member (the bundle's profiles listed on
 * stderr when profile is NULL or not one of them: CLI_USAGE). */
int creds_bundle_member(struct api *a, const char *id, const char *profile, char *member,
    size_t len);

/*
 * One or two lines on req's state and what happens next ("waiting for 1 approval from
 * group:sre-leads ...", "active until ...; use it with ...", "failed: ..."), cleaned
 * for a terminal. cmd_status.c.
 */
void status_next(const json_t *req, FILE *f);

/*
 * The whole of a command `elevate NAME [--json] ID` (c, whose --help is help) that makes
 * one call METHOD /v1/requests/ID<suffix>: prints the broker's JSON with --json, else
 * print(answer, ID) (both borrowed for the call). Returns the exit code. cmd_status.c.
 */
int status_call_one(const struct cli_cmd *c, void (*help)(void), int argc, char **argv,
    const char *method, const char *suffix, void (*print)(const json_t *req, const char *id));

/*
 * GET path_query and print(list) of the answer's array member key (borrowed for the
 * call), or the whole answer with --json. Returns the exit code; any message is printed.
 * cmd_list.c.
 */
int list_get(const char *path_query, const char *key, void (*print)(const json_t *list));

/*
 * Credentials of one grant, as cmd_creds.c fetches and caches them for `creds` and
 * `exec`. Exactly one of id / profile is set. On CLI_OK *creds is the credential_process
 * object (new reference, caller json_decref()s after creds_wipe()), *region the grant's
 * region or "" and *req_id the request id. Otherwise the message is already printed and
 * the return is the exit code.
 */
int creds_get(struct api *a, const char *id, const char *profile, json_t **creds,
    char *region, size_t regionlen, char *req_id, size_t req_idlen);
/*
 * Puts the credential_process object creds (borrowed) into AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, a non-empty region into AWS_REGION and
 * AWS_DEFAULT_REGION, and removes AWS_PROFILE and the like so these are used. With
 * req_id (not NULL), also AWS_CREDENTIAL_EXPIRATION and ELEVATE_REQUEST_ID, as `exec`
 * promises. 0, or -1 with errno set.
 */
int creds_setenv(const json_t *creds, const char *region, const char *req_id);

#endif
