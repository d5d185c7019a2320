/*
 * commands.h — every `elevate` command, one cmd_*.c file each, and the few helpers
 * two commands share. main.c's router lists these in its table.
 */
#ifndef ELEVATE_CLI_COMMANDS_H
#define ELEVATE_CLI_COMMANDS_H

#include <stdio.h>
#include <jansson.h>

#include "cli.h"

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

/*
 * One or two lines on req's state and what happens next ("waiting for 1 approval from
 * group:sre-leads ...", "active until ...; use it with ...", "failed: ..."), cleaned
 * for a terminal. cmd_status.c.
 */
void status_next(const json_t *req, FILE *f);

/*
 * Credentials of one grant, as cmd_creds.c fetches and caches them for `creds` and
 * `exec`. Exactly one of id / profile is set. On CLI_OK *creds is the credential_process
 * object (new reference, caller json_decref()s after creds_wipe()), *region the grant's
 * region or "" and *req_id the request id. Otherwise the message is already printed and
 * the return is the exit code.
 */
int creds_get(struct api *a, const char *id, const char *profile, json_t **creds,
    char *region, size_t regionlen, char *req_id, size_t req_idlen);
/* Drops request id's cached credentials (and a profile choice pointing at it). */
void creds_forget(const char *id);
/* Zeroes the secret strings inside a credential_process object (before json_decref). */
void creds_wipe(json_t *creds);

#endif
