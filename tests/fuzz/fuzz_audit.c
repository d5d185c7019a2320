/*
 * fuzz_audit.c — libFuzzer harness for audit_verify_stream, the parser `elevate audit
 * verify` runs over an export that may have been tampered with. The input is the file
 * (read through fmemopen); it is verified without a key and with the fixed checkpoint key
 * below (seed 0x00..0x1f, so corpus/audit/ seeds can carry valid checkpoints). Besides
 * "no crash, no UB, no leak", the report must agree with the verdict.
 * Build: see README.md.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "elevate/audit.h"
#include "elevate/el.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned char fuzz_pk[crypto_sign_PUBLICKEYBYTES];
static int fuzz_ready;

static void
check(const uint8_t *data, size_t size, const unsigned char *pk, int require_start)
{
	struct audit_verify_report rep;
	enum el_err e;
	FILE *f;

	if ((f = fmemopen((void *)(uintptr_t)data, size, "r")) == NULL)
		return;
	e = audit_verify_stream(f, pk, require_start, &rep);
	fclose(f);
	if (e == EL_OK) {
		if (rep.records <= 0 || rep.bad_line != 0 || rep.problem[0] != '\0' ||
		    rep.last_seq - rep.first_seq + 1 != rep.records ||
		    (require_start && rep.first_seq != 1) ||
		    (pk == NULL && rep.checkpoints != 0) ||
		    rep.last_signed_seq > rep.last_seq)
			abort();
	} else if (rep.problem[0] == '\0')
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!fuzz_ready) {
		unsigned char seed[crypto_sign_SEEDBYTES], sk[crypto_sign_SECRETKEYBYTES];
		size_t i;

		if (sodium_init() < 0)
			abort();
		for (i = 0; i < sizeof(seed); i++)
			seed[i] = (unsigned char)i;
		crypto_sign_seed_keypair(fuzz_pk, sk, seed);
		sodium_memzero(sk, sizeof(sk));
		fuzz_ready = 1;
	}
	if (size == 0 || size > 1 << 20)
		return 0;
	check(data, size, NULL, 0);
	check(data, size, fuzz_pk, 1);
	return 0;
}
