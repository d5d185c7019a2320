/*
 * token.h — approval link tokens: one per approver per request, signed by the broker's
 * Ed25519 token key, bound to that request and that approver, with an expiry and a
 * random nonce the engine records to make each token single-use.
 *
 * Wire form: base64url without padding of payload || signature, at most TOKEN_MAX_LEN
 * characters. payload = 0x01 (version) | len | request id | len | approver |
 * expiry (int64, big-endian seconds) | 16-byte nonce. The signature covers a fixed
 * context string followed by the payload, so nothing else this key might ever sign can
 * be replayed as a token.
 */
#ifndef ELEVATE_TOKEN_H
#define ELEVATE_TOKEN_H

#include <stdint.h>

#include "elevate/el.h"

#define TOKEN_MAX_LEN    512    /* characters of the encoded token */
#define TOKEN_FIELD_MAX  64     /* request id and approver: 1..64 bytes of 0x21..0x7e */
#define TOKEN_NONCE_LEN  16
#define TOKEN_KEY_FILE   "token.key"

struct token_key;   /* opaque; the secret lives in sodium_malloc'd read-only memory */

/* What a verified token says. On EL_ESTATE (expired) it is filled and authentic too. */
struct token_claims {
	char request_id[TOKEN_FIELD_MAX + 1];
	char approver[TOKEN_FIELD_MAX + 1];
	int64_t expiry;
	char nonce_hex[2 * TOKEN_NONCE_LEN + 1];   /* record it to make the token single-use */
};

/*
 * Loads state_dir/token.key, or creates it (mode 0600, 32-byte Ed25519 seed, base64 on
 * one line) when absent. Refuses a key file readable or writable by group or others.
 * Two daemons starting at once agree on one key (created with link(2), never replaced).
 * *out is owned by the caller: token_key_free().
 */
enum el_err token_key_load_or_create(const char *state_dir, struct token_key **out,
    struct el_why *w);
/*
 * Writes a new random token key to path in the form token_key_load_or_create reads
 * (mode 0600). replace = 0: EL_EEXIST if path exists, which is then left as it was;
 * replace = 1: an existing key is replaced. Used by `elevated keygen` (keyset.h).
 */
enum el_err token_key_write(const char *path, int replace, struct el_why *w);
/* Wipes and frees the key; NULL is fine. */
void token_key_free(struct token_key *key);
/* The public key (32 bytes), e.g. to print it for an operator. */
void token_key_public(const struct token_key *key, unsigned char pk[32]);

/*
 * Issues a token for one approver of one request, valid until expiry (seconds since
 * the epoch). request_id and approver: 1..64 printable ASCII bytes, no space.
 * *out is NUL-terminated, caller frees. EL_EINVAL for a bad field.
 */
enum el_err token_issue(const struct token_key *key, const char *request_id,
    const char *approver, int64_t expiry, char **out);

/*
 * Verifies tok at time now.
 *   EL_OK      valid: *out filled.
 *   EL_EAUTH   invalid: too long, bad base64, wrong length or version, bad signature,
 *              bad field. Nothing in *out may be trusted (it is zeroed). Show
 *              "This link is not valid."
 *   EL_ESTATE  expired (now >= expiry), with a good signature: *out is filled, so the
 *              page may name the request. Show "This link has expired."
 * Single use is the engine's job: it records claims.nonce_hex with the decision.
 * The signature check is constant-time (crypto_sign_verify_detached). The key remembers
 * the claims of the last tokens that verified (a bounded table keyed by a keyed hash of
 * the text, never the token itself), so the same link opened again skips the signature
 * check; the expiry is compared with now on every call. Thread-safe.
 */
enum el_err token_verify(const struct token_key *key, const char *tok, int64_t now,
    struct token_claims *out, struct el_why *w);

#endif
