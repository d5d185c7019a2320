/*
 * fuzz_token.c — libFuzzer harness for token_verify, the parser of the approval-link
 * token that arrives in a URL from anyone. The key is made once in a temporary
 * directory from the fixed seed 00 01 .. 1f (written as token.key before loading), so
 * the checked-in seeds under corpus/token/ carry valid signatures and the code past the
 * signature check is reachable. Besides "no crash, no UB": EL_OK/EL_ESTATE agree with
 * the expiry, EL_EAUTH leaves the claims zeroed, and an accepted token is the canonical
 * base64url of its bytes (strict libsodium decode and re-encode give the same text, so
 * no second spelling of a token verifies). A second check issues a token from fields cut
 * out of the input and verifies it back.
 * Build: see README.md.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "elevate/el.h"
#include "elevate/token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW 1700000000LL   /* 2023-11-14T22:13:20Z; seeds expire at 4102444800 (2100) */

static struct token_key *key;

static void
setup(void)
{
	char dir[] = "/tmp/fuzz_token.XXXXXX", path[sizeof(dir) + 16];
	char b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];
	unsigned char seed[32];
	struct el_why w = {{0}};
	size_t i;
	int fd;

	if (sodium_init() < 0 || mkdtemp(dir) == NULL)
		abort();
	for (i = 0; i < sizeof(seed); i++)
		seed[i] = (unsigned char)i;
	sodium_bin2base64(b64, sizeof(b64), seed, sizeof(seed), sodium_base64_VARIANT_ORIGINAL);
	snprintf(path, sizeof(path), "%s/%s", dir, TOKEN_KEY_FILE);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600)) < 0 ||
	    write(fd, b64, strlen(b64)) != (ssize_t)strlen(b64) || write(fd, "\n", 1) != 1 ||
	    close(fd) != 0)
		abort();
	if (token_key_load_or_create(dir, &key, &w) != EL_OK) {
		fprintf(stderr, "fuzz_token: %s\n", w.msg);
		abort();
	}
	/* The key lives in memory now: the directory is not needed any more. */
	unlink(path);
	rmdir(dir);
}

static int
all_zero(const void *p, size_t n)
{
	const unsigned char *c = p;

	while (n-- > 0)
		if (*c++ != 0)
			return 0;
	return 1;
}

/* Fields from the input: request id | approver | 8 bytes of expiry. */
static void
round_trip(const uint8_t *data, size_t size)
{
	char rid[TOKEN_FIELD_MAX + 1], appr[TOKEN_FIELD_MAX + 1], *tok = NULL;
	struct token_claims c;
	const uint8_t *bar, *bar2;
	uint64_t exp = 0;
	size_t rl, al, i;

	if ((bar = memchr(data, '|', size)) == NULL ||
	    (bar2 = memchr(bar + 1, '|', size - (size_t)(bar + 1 - data))) == NULL)
		return;
	rl = (size_t)(bar - data);
	al = (size_t)(bar2 - bar - 1);
	if (rl > TOKEN_FIELD_MAX || al > TOKEN_FIELD_MAX)
		return;
	memcpy(rid, data, rl);
	rid[rl] = '\0';
	memcpy(appr, bar + 1, al);
	appr[al] = '\0';
	for (i = 0, bar2++; i < 8 && bar2 < data + size; i++, bar2++)
		exp = exp << 8 | *bar2;
	if (token_issue(key, rid, appr, (int64_t)exp, &tok) != EL_OK)
		return;
	if (token_verify(key, tok, NOW, &c, NULL) == EL_EAUTH ||
	    strcmp(c.request_id, rid) != 0 || strcmp(c.approver, appr) != 0 ||
	    c.expiry != (int64_t)exp)
		abort();
	free(tok);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct token_claims c;
	struct el_why w = {{0}};
	enum el_err e;
	unsigned char raw[TOKEN_MAX_LEN];
	char *s, canon[TOKEN_MAX_LEN + 1];
	size_t n;

	if (key == NULL)
		setup();
	if (size > 2 * TOKEN_MAX_LEN)
		return 0;
	if ((s = malloc(size + 1)) == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';

	e = token_verify(key, s, NOW, &c, &w);
	switch (e) {
	case EL_OK:
	case EL_ESTATE:
		if ((e == EL_OK) != (c.expiry > NOW) || c.request_id[0] == '\0' ||
		    c.approver[0] == '\0' || strlen(c.nonce_hex) != 2 * TOKEN_NONCE_LEN)
			abort();
		if (sodium_base642bin(raw, sizeof(raw), s, strlen(s), NULL, &n, NULL,
		    sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
			abort();
		sodium_bin2base64(canon, sizeof(canon), raw, n,
		    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
		if (strcmp(canon, s) != 0)
			abort();
		break;
	case EL_EAUTH:
		if (!all_zero(&c, sizeof(c)) || w.msg[0] == '\0')
			abort();
		break;
	default:
		abort();
	}
	free(s);
	round_trip(data, size);
	return 0;
}
