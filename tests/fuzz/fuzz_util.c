/*
 * fuzz_util.c — libFuzzer harness for the small text parsers that see untrusted input:
 * reqsig_pubkey_parse (policy files, `elevate audit verify --pubkey`), el_parse_duration
 * (request bodies, CLI, config) and el_parse_time (X-Elevate-Date, --since). Besides "no
 * crash, no UB", it checks that what a parser accepts formats back to the same value.
 * Build: see README.md.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "elevate/el.h"
#include "elevate/reqsig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	char buf[64], *s, *txt;
	int64_t v, back;

	if (size > 4096)
		return 0;
	/* The parsers take C strings: what follows a NUL is what C callers would ignore. */
	if ((s = malloc(size + 1)) == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';

	if (reqsig_pubkey_parse(s, pk) == EL_OK) {
		/* Strict base64: the accepted text is the one canonical spelling of the key. */
		if ((txt = reqsig_pubkey_format(pk)) == NULL || strcmp(txt, s) != 0)
			abort();
		free(txt);
	}

	if (el_parse_duration(s, &v) == EL_OK) {
		if (v <= 0 || v > 366LL * 86400)
			abort();
		el_format_duration(v, buf, sizeof(buf));
		if (el_parse_duration(buf, &back) != EL_OK || back != v)
			abort();
	}

	if (el_parse_time(s, &v) == EL_OK) {
		el_format_time(v, buf, sizeof(buf));
		if (v >= 0 && v < 253402300800LL &&   /* years 1970..9999 format as 4 digits */
		    (el_parse_time(buf, &back) != EL_OK || back != v))
			abort();
	}

	free(s);
	return 0;
}
