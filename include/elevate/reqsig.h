/*
 * reqsig.h — the signature on every CLI → daemon API call (docs/API.md "Request
 * signing"): one canonical string, signed by the CLI, verified by the daemon.
 */
#ifndef ELEVATE_REQSIG_H
#define ELEVATE_REQSIG_H

#include <stddef.h>
#include <sodium.h>

#include "elevate/el.h"

#define REQSIG_MAX_SKEW 300        /* seconds either way */
#define REQSIG_NONCE_TTL 900       /* how long a seen nonce is remembered */
#define REQSIG_SIG_B64_MAX 128

struct reqsig_fields {
	const char *method;
	const char *path_query;
	const char *date;          /* "2026-11-22T03:26:00Z" */
	const char *nonce;         /* base64url of 16 bytes */
	const char *user;
	const void *body;
	size_t body_len;
};

/* The string to sign; appended to out. */
enum el_err reqsig_string(const struct reqsig_fields *f, struct dbuf *out);
/* "ed25519=BASE64" into out (>= REQSIG_SIG_B64_MAX). */
enum el_err reqsig_sign(const unsigned char sk[crypto_sign_SECRETKEYBYTES],
    const struct reqsig_fields *f, char *out, size_t outlen);
/* EL_OK when sig ("ed25519=BASE64") verifies under pk. */
enum el_err reqsig_verify(const unsigned char pk[crypto_sign_PUBLICKEYBYTES],
    const struct reqsig_fields *f, const char *sig);
/* Fresh nonce (base64url, 22 chars) into out (>= 32). */
void reqsig_nonce(char *out, size_t outlen);
/* "ed25519:BASE64" public key text <-> bytes. */
enum el_err reqsig_pubkey_parse(const char *text, unsigned char pk[crypto_sign_PUBLICKEYBYTES]);
char *reqsig_pubkey_format(const unsigned char pk[crypto_sign_PUBLICKEYBYTES]);   /* caller frees */

#endif
