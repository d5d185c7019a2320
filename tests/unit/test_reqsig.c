/*
 * test_reqsig.c — the API request signature as docs/API.md "Request signing" defines it:
 * the exact string to sign, a known answer computed by an independent Ed25519
 * implementation (Python cryptography), and refusal of every changed field, foreign key,
 * malformed signature and newline-carrying field; public key text round trip.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "elevate/el.h"
#include "elevate/reqsig.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Seed 00 01 02 .. 1f; the public key and signature below come from
 * cryptography.hazmat Ed25519PrivateKey.from_private_bytes(bytes(range(32))). */
#define KAT_PUBKEY "ed25519:A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
#define KAT_SIG "ed25519=FBJyA9fom7Hp6lFpp68ugdJl9YzSiAyWkfRSgHXIu0eAmtWuMW5+GCk6w5aHyREYZ9sC" \
	"XgQoqYcu4/BTezzMCg=="
#define KAT_STRING "elevate-request-v1\nPOST\n/v1/requests?x=1\n2026-11-22T03:26:00Z\n" \
	"AAAAAAAAAAAAAAAAAAAAAA\nalice\n" \
	"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

struct keys {
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	unsigned char sk[crypto_sign_SECRETKEYBYTES];
	unsigned char pk2[crypto_sign_PUBLICKEYBYTES];
	unsigned char sk2[crypto_sign_SECRETKEYBYTES];
};

static int
setup(void **state)
{
	struct keys *k;
	unsigned char seed[crypto_sign_SEEDBYTES];
	size_t i;

	if (sodium_init() < 0 || (k = calloc(1, sizeof(*k))) == NULL)
		return -1;
	for (i = 0; i < sizeof(seed); i++)
		seed[i] = (unsigned char)i;
	crypto_sign_seed_keypair(k->pk, k->sk, seed);
	crypto_sign_keypair(k->pk2, k->sk2);
	*state = k;
	return 0;
}

static int
teardown(void **state)
{
	struct keys *k = *state;

	sodium_memzero(k, sizeof(*k));
	free(k);
	return 0;
}

static struct reqsig_fields
kat_fields(void)
{
	struct reqsig_fields f;

	memset(&f, 0, sizeof(f));
	f.method = "POST";
	f.path_query = "/v1/requests?x=1";
	f.date = "2026-11-22T03:26:00Z";
	f.nonce = "AAAAAAAAAAAAAAAAAAAAAA";
	f.user = "alice";
	f.body = "abc";
	f.body_len = 3;
	return f;
}

static void
string_to_sign_exact(void **state)
{
	struct reqsig_fields f = kat_fields();
	struct dbuf b;

	(void)state;
	dbuf_init(&b, 8192);
	assert_int_equal(reqsig_string(&f, &b), EL_OK);
	assert_string_equal(b.p, KAT_STRING);
	dbuf_free(&b);

	/* GET: no body hashes as the empty string; no query, no '?'. */
	f.method = "GET";
	f.path_query = "/v1/requests";
	f.body = NULL;
	f.body_len = 0;
	dbuf_init(&b, 8192);
	assert_int_equal(reqsig_string(&f, &b), EL_OK);
	assert_string_equal(b.p, "elevate-request-v1\nGET\n/v1/requests\n2026-11-22T03:26:00Z\n"
	    "AAAAAAAAAAAAAAAAAAAAAA\nalice\n"
	    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	dbuf_free(&b);

	/* "appended to out": existing content stays in front. */
	dbuf_init(&b, 8192);
	assert_int_equal(dbuf_adds(&b, "X"), EL_OK);
	assert_int_equal(reqsig_string(&f, &b), EL_OK);
	assert_int_equal(strncmp(b.p, "Xelevate-request-v1\n", 20), 0);
	dbuf_free(&b);
}

static void
known_answer(void **state)
{
	struct keys *k = *state;
	struct reqsig_fields f = kat_fields();
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	char sig[REQSIG_SIG_B64_MAX], *txt;

	assert_int_equal(reqsig_sign(k->sk, &f, sig, sizeof(sig)), EL_OK);
	assert_string_equal(sig, KAT_SIG);
	assert_int_equal(reqsig_pubkey_parse(KAT_PUBKEY, pk), EL_OK);
	assert_memory_equal(pk, k->pk, sizeof(pk));
	txt = reqsig_pubkey_format(k->pk);
	assert_string_equal(txt, KAT_PUBKEY);
	free(txt);
	assert_int_equal(reqsig_verify(pk, &f, KAT_SIG), EL_OK);
}

static void
round_trip(void **state)
{
	struct keys *k = *state;
	struct reqsig_fields f = kat_fields();
	char sig[REQSIG_SIG_B64_MAX];
	unsigned char body[4096];

	assert_int_equal(reqsig_sign(k->sk2, &f, sig, sizeof(sig)), EL_OK);
	assert_int_equal(strncmp(sig, "ed25519=", 8), 0);
	assert_int_equal(reqsig_verify(k->pk2, &f, sig), EL_OK);

	/* A binary body with NULs is covered by length, not by strlen. */
	randombytes_buf(body, sizeof(body));
	body[10] = 0;
	f.body = body;
	f.body_len = sizeof(body);
	assert_int_equal(reqsig_sign(k->sk2, &f, sig, sizeof(sig)), EL_OK);
	assert_int_equal(reqsig_verify(k->pk2, &f, sig), EL_OK);
	body[sizeof(body) - 1] ^= 1;
	assert_int_equal(reqsig_verify(k->pk2, &f, sig), EL_EAUTH);

	/* The output buffer is a ceiling. */
	f = kat_fields();
	assert_int_equal(reqsig_sign(k->sk2, &f, sig, 20), EL_ETOOBIG);
}

static void
each_field_is_covered(void **state)
{
	struct keys *k = *state;
	struct reqsig_fields f, g;
	char sig[REQSIG_SIG_B64_MAX];
	unsigned char body[3];
	int i;

	f = kat_fields();
	assert_int_equal(reqsig_sign(k->sk, &f, sig, sizeof(sig)), EL_OK);
	assert_int_equal(reqsig_verify(k->pk, &f, sig), EL_OK);

	for (i = 0; i < 9; i++) {
		g = f;
		switch (i) {
		case 0: g.method = "GET"; break;
		case 1: g.path_query = "/v1/requests?x=2"; break;
		case 2: g.path_query = "/v1/requests"; break;
		case 3: g.date = "2026-11-22T03:26:01Z"; break;
		case 4: g.nonce = "AAAAAAAAAAAAAAAAAAAAAB"; break;
		case 5: g.user = "mallory"; break;
		case 6:
			memcpy(body, "abc", 3);
			body[2] = 'd';
			g.body = body;
			break;
		case 7: g.body_len = 2; break;
		case 8: g.body = NULL; g.body_len = 0; break;
		}
		if (reqsig_verify(k->pk, &g, sig) != EL_EAUTH)
			fail_msg("change %d still verifies", i);
	}
	/* Moving a byte between fields changes the string (the separators are fixed). */
	g = f;
	g.path_query = "/v1/requests?x=1\n2026";
	assert_int_equal(reqsig_verify(k->pk, &g, sig), EL_EAUTH);
}

static void
foreign_and_garbage_signatures(void **state)
{
	struct keys *k = *state;
	struct reqsig_fields f = kat_fields();
	char sig[REQSIG_SIG_B64_MAX], bad[256];
	static const char *const garbage[] = {
		"", "ed25519=", "ed25519=!!!!", "rsa=" "FBJyA9fom7Hp6lFpp68ugdJl9YzSiAyWkfRSgHXIu0eAmt",
		"ED25519=FBJyA9fom7Hp6lFpp68ugdJl9YzSiAyWkfRSgHXIu0eAmtWuMW5+GCk6w5aHyREYZ9sCXgQoqYcu4/BTezzMCg==",
		"ed25519:FBJyA9fom7Hp6lFpp68ugdJl9YzSiAyWkfRSgHXIu0eAmtWuMW5+GCk6w5aHyREYZ9sCXgQoqYcu4/BTezzMCg==",
		" ed25519=FBJyA9fom7Hp6lFpp68ugdJl9YzSiAyWkfRSgHXIu0eAmtWuMW5+GCk6w5aHyREYZ9sCXgQoqYcu4/BTezzMCg==",
		"ed25519=FBJyA9fom7Hp6lFpp68ugdJl9YzSiAyWkfRSgHXIu0eAmtWuMW5+GCk6w5aHyREYZ9sCXgQoqYcu4/BTezzMCg== ",
		"ed25519=FBJyA9fom7Hp6lFpp68ugdJl9YzSiAyWkfRSgHXIu0eAmtWuMW5+GCk6w5aHyREYZ9sCXgQoqYcu4/BTezzMCg",
		"ed25519=FBJyA9fom7Hp6lFpp68ugdJl9YzSiAyWkfRSgHXIu0eAmtWuMW5-GCk6w5aHyREYZ9sCXgQoqYcu4_BTezzMCg==",
		"ed25519=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
		"ed25519=FBJyA9fom7Hp6lFpp68ugdJl9YzSiAyWkfRSgHXIu0eAmtWuMW5+GCk6w5aHyREYZ9sCXgQoqYcu4/BTezzMCgAA",
	};
	size_t i, n;

	/* The right string signed with another key. */
	assert_int_equal(reqsig_sign(k->sk2, &f, sig, sizeof(sig)), EL_OK);
	assert_int_equal(reqsig_verify(k->pk, &f, sig), EL_EAUTH);
	assert_int_equal(reqsig_verify(k->pk, &f, NULL), EL_EAUTH);
	for (i = 0; i < NELEM(garbage); i++)
		if (reqsig_verify(k->pk, &f, garbage[i]) != EL_EAUTH)
			fail_msg("garbage signature %zu \"%s\" not refused with EL_EAUTH", i,
			    garbage[i]);
	/* The genuine signature with one bit flipped anywhere in the decoded bytes. */
	assert_int_equal(reqsig_verify(k->pk, &f, KAT_SIG), EL_OK);
	for (n = 0; n < crypto_sign_BYTES; n++) {
		unsigned char raw[crypto_sign_BYTES];
		size_t len;
		char *b;

		assert_int_equal(el_b64_decode(KAT_SIG + 8, raw, sizeof(raw), &len), EL_OK);
		raw[n] ^= 0x10;
		b = el_b64_encode(raw, sizeof(raw));
		snprintf(bad, sizeof(bad), "ed25519=%s", b);
		free(b);
		if (reqsig_verify(k->pk, &f, bad) != EL_EAUTH)
			fail_msg("signature with byte %zu changed verifies", n);
	}
	/* Overlong text is refused before decoding. */
	memset(bad, 'A', sizeof(bad) - 1);
	memcpy(bad, "ed25519=", 8);
	bad[sizeof(bad) - 1] = '\0';
	assert_int_equal(reqsig_verify(k->pk, &f, bad), EL_EAUTH);
}

static void
newline_in_a_field(void **state)
{
	struct keys *k = *state;
	struct reqsig_fields f = kat_fields(), g;
	char sig[REQSIG_SIG_B64_MAX];
	struct dbuf b;
	int i;

	assert_int_equal(reqsig_sign(k->sk, &f, sig, sizeof(sig)), EL_OK);
	for (i = 0; i < 10; i++) {
		g = f;
		switch (i) {
		case 0: g.method = "POST\n"; break;
		case 1: g.path_query = "/v1/requests\n?x=1"; break;
		case 2: g.date = "2026-11-22T03:26:00Z\r"; break;
		case 3: g.nonce = "\nAAAAAAAAAAAAAAAAAAAAAA"; break;
		case 4: g.user = "alice\nadmin"; break;
		case 5: g.user = "alice\r\n"; break;
		case 6: g.method = NULL; break;
		case 7: g.user = NULL; break;
		case 8: g.date = NULL; break;
		case 9: g.nonce = NULL; break;
		}
		dbuf_init(&b, 8192);
		if (reqsig_string(&g, &b) != EL_EINVAL)
			fail_msg("reqsig_string accepted bad field set %d", i);
		dbuf_free(&b);
		if (reqsig_sign(k->sk, &g, sig, sizeof(sig)) == EL_OK)
			fail_msg("reqsig_sign signed bad field set %d", i);
		if (reqsig_verify(k->pk, &g, KAT_SIG) != EL_EAUTH)
			fail_msg("reqsig_verify did not refuse bad field set %d with EL_EAUTH", i);
	}
	/* A body may contain newlines: it is hashed. */
	g = f;
	g.body = "a\nb";
	g.body_len = 3;
	assert_int_equal(reqsig_sign(k->sk, &g, sig, sizeof(sig)), EL_OK);
	assert_int_equal(reqsig_verify(k->pk, &g, sig), EL_OK);
}

static void
pubkey_text(void **state)
{
	struct keys *k = *state;
	unsigned char pk[crypto_sign_PUBLICKEYBYTES], raw[40];
	static const char *const bad[] = {
		NULL, "", "ed25519:", "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=",
		"ed25519=A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=",
		"ED25519:A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=",
		"ssh-ed25519:A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=",
		"ed25519:A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg",      /* no padding */
		"ed25519:A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=\n",   /* pasted newline */
		"ed25519: A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=",
		"ed25519:A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=",     /* url alphabet */
		"ed25519:A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMQ==",     /* 31 bytes */
		"ed25519:A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbgA",     /* 33 bytes */
		"ed25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
	};
	size_t i;
	char *txt;

	for (i = 0; i < NELEM(bad); i++) {
		memset(pk, 0x5a, sizeof(pk));
		if (reqsig_pubkey_parse(bad[i], pk) != EL_EINVAL)
			fail_msg("pubkey %zu \"%s\" accepted", i, bad[i] ? bad[i] : "(null)");
		/* Nothing written on failure. */
		memset(raw, 0x5a, sizeof(pk));
		assert_memory_equal(pk, raw, sizeof(pk));
	}
	for (i = 0; i < 50; i++) {
		unsigned char p[crypto_sign_PUBLICKEYBYTES], s[crypto_sign_SECRETKEYBYTES];

		crypto_sign_keypair(p, s);
		txt = reqsig_pubkey_format(p);
		assert_non_null(txt);
		assert_int_equal(strlen(txt), 8 + 44);
		assert_int_equal(reqsig_pubkey_parse(txt, pk), EL_OK);
		assert_memory_equal(pk, p, sizeof(pk));
		free(txt);
	}
	txt = reqsig_pubkey_format(k->pk2);
	assert_int_equal(reqsig_pubkey_parse(txt, pk), EL_OK);
	assert_memory_equal(pk, k->pk2, sizeof(pk));
	free(txt);
}

/* Bytes >= 0x80 in a key or signature are not base64 (libsodium 1.0.18 decodes them as
 * '/', see test_util b64_refuses_non_ascii): a pasted key or a signature header must have
 * one spelling only. */
static void
non_ascii_text_refused(void **state)
{
	struct keys *k = *state;
	struct reqsig_fields f = kat_fields();
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	char sig[sizeof(KAT_SIG)], key[sizeof(KAT_PUBKEY)], *slash;

	el_strlcpy(key, KAT_PUBKEY, sizeof(key));
	slash = strchr(key + 8, '/');
	assert_non_null(slash);
	*slash = '\xa9';
	assert_int_equal(reqsig_pubkey_parse(key, pk), EL_EINVAL);

	el_strlcpy(sig, KAT_SIG, sizeof(sig));
	slash = strchr(sig + 8, '/');
	assert_non_null(slash);
	*slash = '\xff';
	assert_int_equal(reqsig_verify(k->pk, &f, sig), EL_EAUTH);
}

static void
nonces(void **state)
{
	char a[32], b[32];
	unsigned char raw[32];
	size_t n;

	(void)state;
	reqsig_nonce(a, sizeof(a));
	reqsig_nonce(b, sizeof(b));
	assert_int_equal(strlen(a), 22);
	assert_string_not_equal(a, b);
	assert_int_equal(el_b64url_decode(a, raw, sizeof(raw), &n), EL_OK);
	assert_int_equal(n, 16);
	reqsig_nonce(a, 5);   /* truncates, terminated */
	assert_int_equal(strlen(a), 4);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(string_to_sign_exact),
		cmocka_unit_test(known_answer),
		cmocka_unit_test(round_trip),
		cmocka_unit_test(each_field_is_covered),
		cmocka_unit_test(foreign_and_garbage_signatures),
		cmocka_unit_test(newline_in_a_field),
		cmocka_unit_test(pubkey_text),
		cmocka_unit_test(non_ascii_text_refused),
		cmocka_unit_test(nonces),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
