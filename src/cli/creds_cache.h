/*
 * creds_cache.h — the CLI's credential cache (creds_cache.c): what `creds`, `exec` and
 * the fast path of `elevate creds` (quick.c) share.
 */
#ifndef ELEVATE_CLI_CREDS_CACHE_H
#define ELEVATE_CLI_CREDS_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

struct api_conf;

#define CACHE_MARGIN 60          /* s before expiry when cached creds are refetched */
#define NAME_MAX_LEN 100         /* a profile name */

/* A credential_process object we can hand out; *exp gets Expiration. */
int creds_valid(const json_t *c, int64_t *exp);
/* Zeroes the secret strings inside a credential_process object (before json_decref). */
void creds_wipe(json_t *creds);
/*
 * The cache directory ($ELEVATE_CACHE_DIR, else $XDG_CACHE_HOME/elevate, else
 * ~/.cache/elevate), created 0700 and checked to be ours and closed; 0 when it can be
 * used, -1 when credentials are simply not cached.
 */
int creds_cache_dir(char *buf, size_t len);
/*
 * Cached credentials of request id, or of the request cached for profile (exactly one
 * set), for c's server and user, still good for CACHE_MARGIN s. 0 with *creds (new
 * reference; creds_wipe before json_decref), region, req_id and *until (the entry's end)
 * filled; -1 when there are none. dir NULL: never cached.
 */
int creds_cache_get(const struct api_conf *c, const char *dir, const char *id,
    const char *profile, json_t **creds, char *region, size_t regionlen, char *req_id,
    size_t req_idlen, int64_t *until);
/*
 * Caches creds (borrowed) of request req (and profile's choice, when not NULL) until
 * CACHE_MARGIN s before they expire or the window ends, whichever is first.
 */
void creds_cache_put(const struct api_conf *c, const char *dir, const json_t *req,
    json_t *creds, const char *profile);
/* Remembers that profile means request id until "until". */
void creds_cache_put_profile(const struct api_conf *c, const char *dir, const char *profile,
    const char *id, int64_t until);
/* Drops request id's cached credentials (and a profile choice pointing at it). */
void creds_forget(const char *id);

#endif
