/*
 * fuzz_reqsig.c — libFuzzer harness for the API request signature (src/core/reqsig.c):
 * reqsig_string over the signed fields (the request line and the X-Elevate-User, -Date
 * and -Nonce headers, from anyone on the listener) and reqsig_verify of the
 * X-Elevate-Signature text with a fixed key. The input is
 *     method NUL path?query NUL date NUL nonce NUL user NUL signature NUL body
 * (fewer NULs: the missing fields are NULL, the body empty; the body may hold NULs).
 * The key pair comes from the seed 00 01 .. 1f, the one test_reqsig's known answer uses,
 * so corpus/reqsig/ holds genuinely signed requests and the accepting path is reached.
 * Besides "no crash, no leak, no UB":
 *   - the string to sign is exactly "elevate-request-v1" and the five fields and the
 *     body's SHA-256 in hex, one per line, or EL_EINVAL when a field is missing or holds
 *     CR or LF (a field with a newline would let two requests share one string), or
 *     EL_ETOOBIG past its 8 KiB ceiling;
 *   - no forgery: a signature that verifies is byte for byte the one reqsig_sign makes
 *     for these fields with the secret key (Ed25519 is deterministic), so no changed
 *     field, no second spelling of the base64 and no other bytes are accepted; nothing
 *     verifies under a second key whose signatures the input never carries;
 *   - what reqsig_sign makes verifies, and stops verifying when one body bit changes.
 * Build: see README.md.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "elevate/el.h"
#include "elevate/reqsig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define STRING_MAX 8192   /* REQSIG_MAX_STRING in reqsig.c */

static unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
static unsigned char pk2[crypto_sign_PUBLICKEYBYTES];

static void
setup(void)
{
	unsigned char seed[crypto_sign_SEEDBYTES], sk2[crypto_sign_SECRETKEYBYTES];
	size_t i;

	if (sodium_init() < 0)
		abort();
	for (i = 0; i < sizeof(seed); i++)
		seed[i] = (unsigned char)i;
	crypto_sign_seed_keypair(pk, sk, seed);
	for (i = 0; i < sizeof(seed); i++)
		seed[i] = (unsigned char)(0x80 + i);
	crypto_sign_seed_keypair(pk2, sk2, seed);
	sodium_memzero(sk2, sizeof(sk2));
}

static int
bad_field(const char *s)
{
	return s == NULL || strpbrk(s, "\r\n") != NULL;
}

/* The string the contract describes, or NULL when the fields are refused. */
static char *
expected_string(const struct reqsig_fields *f)
{
	unsigned char h[crypto_hash_sha256_BYTES];
	char hex[2 * crypto_hash_sha256_BYTES + 1], *out;
	size_t i, n;

	if (bad_field(f->method) || bad_field(f->path_query) || bad_field(f->date) ||
	    bad_field(f->nonce) || bad_field(f->user))
		return NULL;
	crypto_hash_sha256(h, (const unsigned char *)(f->body ? f->body : ""), f->body_len);
	for (i = 0; i < sizeof(h); i++)
		snprintf(hex + 2 * i, 3, "%02x", h[i]);
	n = strlen(f->method) + strlen(f->path_query) + strlen(f->date) + strlen(f->nonce) +
	    strlen(f->user) + sizeof(hex) + 32;
	if ((out = malloc(n)) == NULL)
		abort();
	snprintf(out, n, "elevate-request-v1\n%s\n%s\n%s\n%s\n%s\n%s", f->method, f->path_query,
	    f->date, f->nonce, f->user, hex);
	return out;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	const char *field[6] = {0};
	char *buf, *p, *end, *want, mine[REQSIG_SIG_B64_MAX], *body = NULL;
	struct reqsig_fields f;
	struct dbuf s;
	enum el_err r, v;
	size_t i;

	if (!ready) {
		setup();
		ready = 1;
	}
	if (size > 16384)
		return 0;
	if ((buf = malloc(size + 1)) == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	p = buf;
	end = buf + size;
	for (i = 0; i < 6 && p <= end; i++) {
		field[i] = p;
		p += strlen(p) + 1;
	}
	memset(&f, 0, sizeof(f));
	f.method = field[0];
	f.path_query = field[1];
	f.date = field[2];
	f.nonce = field[3];
	f.user = field[4];
	if (i == 6 && p <= end) {
		f.body = p;
		f.body_len = (size_t)(end - p);
	}

	/* The string to sign. */
	want = expected_string(&f);
	dbuf_init(&s, STRING_MAX);
	r = reqsig_string(&f, &s);
	if (want == NULL ? r != EL_EINVAL :
	    strlen(want) > STRING_MAX ? r != EL_ETOOBIG :
	    r != EL_OK || s.len != strlen(want) || strcmp(s.p, want) != 0)
		abort();
	dbuf_free(&s);

	/* The signature as sent: only the genuine one verifies. */
	v = reqsig_verify(pk, &f, field[5]);
	if (v != EL_OK && v != EL_EAUTH && v != EL_ETOOBIG)
		abort();
	if (v == EL_OK) {
		if (r != EL_OK || reqsig_sign(sk, &f, mine, sizeof(mine)) != EL_OK ||
		    strcmp(mine, field[5]) != 0)
			abort();   /* a forgery, or a second spelling of a signature */
	}
	if (reqsig_verify(pk2, &f, field[5]) == EL_OK)
		abort();

	/* What the signer makes verifies, for these fields only. */
	if (r == EL_OK) {
		if (reqsig_sign(sk, &f, mine, sizeof(mine)) != EL_OK ||
		    reqsig_verify(pk, &f, mine) != EL_OK || reqsig_verify(pk2, &f, mine) == EL_OK)
			abort();
		if (f.body_len > 0) {
			if ((body = malloc(f.body_len)) == NULL)
				abort();
			memcpy(body, f.body, f.body_len);
			body[(size ^ f.body_len) % f.body_len] ^= (char)(1u << (size % 8));
			f.body = body;
			if (reqsig_verify(pk, &f, mine) != EL_EAUTH)
				abort();
		}
	}
	free(body);
	free(want);
	free(buf);
	return 0;
}
