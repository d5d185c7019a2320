/*
 * reqsig.c — owns the API request signature: the canonical string both sides build,
 * Ed25519 signing (CLI) and verification (daemon).
 */
#include <string.h>
#include <stdlib.h>

#include "elevate/el.h"
#include "elevate/reqsig.h"

#define REQSIG_MAX_STRING 8192

enum el_err
reqsig_string(const struct reqsig_fields *f, struct dbuf *out)
{
	unsigned char h[crypto_hash_sha256_BYTES];
	char hex[2 * crypto_hash_sha256_BYTES + 1];

	if (f->method == NULL || f->path_query == NULL || f->date == NULL ||
	    f->nonce == NULL || f->user == NULL)
		return EL_EINVAL;
	/* A field with a newline would let two different requests share one string. */
	if (strpbrk(f->method, "\r\n") || strpbrk(f->path_query, "\r\n") ||
	    strpbrk(f->date, "\r\n") || strpbrk(f->nonce, "\r\n") || strpbrk(f->user, "\r\n"))
		return EL_EINVAL;
	crypto_hash_sha256(h, f->body != NULL ? f->body : (const void *)"", f->body_len);
	el_hex(h, sizeof(h), hex);
	return dbuf_printf(out, "elevate-request-v1\n%s\n%s\n%s\n%s\n%s\n%s", f->method,
	    f->path_query, f->date, f->nonce, f->user, hex);
}

enum el_err
reqsig_sign(const unsigned char sk[crypto_sign_SECRETKEYBYTES], const struct reqsig_fields *f,
    char *out, size_t outlen)
{
	unsigned char sig[crypto_sign_BYTES];
	struct dbuf s;
	char *b64 = NULL;
	enum el_err r;

	dbuf_init(&s, REQSIG_MAX_STRING);
	if ((r = reqsig_string(f, &s)) != EL_OK)
		goto out;
	crypto_sign_detached(sig, NULL, (const unsigned char *)s.p, s.len, sk);
	if ((b64 = el_b64_encode(sig, sizeof(sig))) == NULL) {
		r = EL_ENOMEM;
		goto out;
	}
	if ((size_t)snprintf(out, outlen, "ed25519=%s", b64) >= outlen)
		r = EL_ETOOBIG;
out:
	free(b64);
	dbuf_free(&s);
	return r;
}

enum el_err
reqsig_verify(const unsigned char pk[crypto_sign_PUBLICKEYBYTES], const struct reqsig_fields *f,
    const char *sig)
{
	unsigned char raw[crypto_sign_BYTES + 8];
	size_t rawlen;
	struct dbuf s;
	enum el_err r;

	if (sig == NULL || strncmp(sig, "ed25519=", 8) != 0 || strlen(sig) > REQSIG_SIG_B64_MAX)
		return EL_EAUTH;
	if (el_b64_decode(sig + 8, raw, sizeof(raw), &rawlen) != EL_OK ||
	    rawlen != crypto_sign_BYTES)
		return EL_EAUTH;
	dbuf_init(&s, REQSIG_MAX_STRING);
	if ((r = reqsig_string(f, &s)) != EL_OK) {
		dbuf_free(&s);
		return r == EL_EINVAL ? EL_EAUTH : r;
	}
	r = crypto_sign_verify_detached(raw, (const unsigned char *)s.p, s.len, pk) == 0 ?
	    EL_OK : EL_EAUTH;
	dbuf_free(&s);
	return r;
}

void
reqsig_nonce(char *out, size_t outlen)
{
	unsigned char n[16];
	char *b;

	randombytes_buf(n, sizeof(n));
	b = el_b64url_encode(n, sizeof(n));
	el_strlcpy(out, b != NULL ? b : "", outlen);
	free(b);
}

enum el_err
reqsig_pubkey_parse(const char *text, unsigned char pk[crypto_sign_PUBLICKEYBYTES])
{
	unsigned char raw[crypto_sign_PUBLICKEYBYTES + 8];
	size_t n;

	if (text == NULL || strncmp(text, "ed25519:", 8) != 0)
		return EL_EINVAL;
	if (el_b64_decode(text + 8, raw, sizeof(raw), &n) != EL_OK ||
	    n != crypto_sign_PUBLICKEYBYTES)
		return EL_EINVAL;
	memcpy(pk, raw, crypto_sign_PUBLICKEYBYTES);
	return EL_OK;
}

char *
reqsig_pubkey_format(const unsigned char pk[crypto_sign_PUBLICKEYBYTES])
{
	char *b = el_b64_encode(pk, crypto_sign_PUBLICKEYBYTES), *out;
	size_t n;

	if (b == NULL)
		return NULL;
	n = strlen(b) + 9;
	if ((out = malloc(n)) != NULL)
		snprintf(out, n, "ed25519:%s", b);
	free(b);
	return out;
}
