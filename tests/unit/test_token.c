/*
 * test_token.c — approval tokens: key file creation and checks, round trip, that any
 * change to a token (every byte, every bit, truncation, padding, junk) is refused, and
 * that a remembered token (the key's memo) verifies exactly as it did the first time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "elevate/el.h"
#include "elevate/token.h"

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

struct fx {
	char dir[64];
	struct token_key *key;
};

static void
rm_dir(const char *dir)
{
	char p[256];

	snprintf(p, sizeof(p), "%s/%s", dir, TOKEN_KEY_FILE);
	unlink(p);
	rmdir(dir);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct el_why w;

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/el_test_token_XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	if (token_key_load_or_create(f->dir, &f->key, &w) != EL_OK) {
		fprintf(stderr, "%s\n", w.msg);
		return -1;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	token_key_free(f->key);
	rm_dir(f->dir);
	free(f);
	return 0;
}

static void
test_key_file(void **state)
{
	struct fx *f = *state;
	struct token_key *again = NULL;
	struct token_claims c;
	struct el_why w;
	struct stat st;
	unsigned char pk1[32], pk2[32];
	char p[256], *tok;

	snprintf(p, sizeof(p), "%s/%s", f->dir, TOKEN_KEY_FILE);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* The second start loads the same key: old links keep working. */
	assert_int_equal(token_key_load_or_create(f->dir, &again, &w), EL_OK);
	token_key_public(f->key, pk1);
	token_key_public(again, pk2);
	assert_memory_equal(pk1, pk2, 32);
	assert_int_equal(token_issue(f->key, "req_1", "carol", el_now() + 60, &tok), EL_OK);
	assert_int_equal(token_verify(again, tok, el_now(), &c, &w), EL_OK);
	free(tok);
	token_key_free(again);
	again = NULL;
	/* A key others can read is refused with a message that says what to do. */
	assert_int_equal(chmod(p, 0644), 0);
	assert_int_equal(token_key_load_or_create(f->dir, &again, &w), EL_ECONFIG);
	assert_null(again);
	assert_non_null(strstr(w.msg, "chmod 600"));
	assert_int_equal(chmod(p, 0600), 0);
	/* A damaged key file is refused, never silently replaced. */
	assert_int_equal(el_write_file(p, "not base64!\n", 12, 0600, &w), EL_OK);
	assert_int_equal(token_key_load_or_create(f->dir, &again, &w), EL_ECONFIG);
	assert_null(again);
	assert_non_null(strstr(w.msg, "not a token key"));
}

static void
test_round_trip(void **state)
{
	struct fx *f = *state;
	struct token_claims c;
	struct el_why w;
	char *t1, *t2;
	int64_t exp = el_now() + 1800;
	size_t i;

	assert_int_equal(token_issue(f->key, "req_7xk2m9", "carol", exp, &t1), EL_OK);
	assert_int_equal(token_issue(f->key, "req_7xk2m9", "carol", exp, &t2), EL_OK);
	assert_string_not_equal(t1, t2);           /* fresh nonce every time */
	for (i = 0; t1[i] != '\0'; i++)
		assert_non_null(strchr(b64url, t1[i])); /* URL-safe, no padding */
	assert_int_equal(token_verify(f->key, t1, el_now(), &c, &w), EL_OK);
	assert_string_equal(c.request_id, "req_7xk2m9");
	assert_string_equal(c.approver, "carol");
	assert_int_equal(c.expiry, exp);
	assert_int_equal(strlen(c.nonce_hex), 32);
	assert_int_equal(strspn(c.nonce_hex, "0123456789abcdef"), 32);
	{
		struct token_claims c2;

		assert_int_equal(token_verify(f->key, t2, el_now(), &c2, &w), EL_OK);
		assert_string_not_equal(c.nonce_hex, c2.nonce_hex);
	}
	free(t1);
	free(t2);
}

static void
test_longest_fields_fit(void **state)
{
	struct fx *f = *state;
	struct token_claims c;
	struct el_why w;
	char id[TOKEN_FIELD_MAX + 1], ap[TOKEN_FIELD_MAX + 1], *tok;

	memset(id, 'r', TOKEN_FIELD_MAX);
	id[TOKEN_FIELD_MAX] = '\0';
	memset(ap, '~', TOKEN_FIELD_MAX);
	ap[TOKEN_FIELD_MAX] = '\0';
	assert_int_equal(token_issue(f->key, id, ap, INT64_MAX, &tok), EL_OK);
	assert_true(strlen(tok) <= TOKEN_MAX_LEN);
	assert_int_equal(token_verify(f->key, tok, el_now(), &c, &w), EL_OK);
	assert_string_equal(c.request_id, id);
	assert_string_equal(c.approver, ap);
	assert_int_equal(c.expiry, INT64_MAX);
	free(tok);
}

static void
test_issue_refuses_bad_fields(void **state)
{
	struct fx *f = *state;
	char long_id[TOKEN_FIELD_MAX + 2], *tok = NULL;

	memset(long_id, 'a', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	assert_int_equal(token_issue(f->key, "", "carol", 1, &tok), EL_EINVAL);
	assert_int_equal(token_issue(f->key, "req_1", "", 1, &tok), EL_EINVAL);
	assert_int_equal(token_issue(f->key, long_id, "carol", 1, &tok), EL_EINVAL);
	assert_int_equal(token_issue(f->key, "req_1", long_id, 1, &tok), EL_EINVAL);
	assert_int_equal(token_issue(f->key, "req 1", "carol", 1, &tok), EL_EINVAL);
	assert_int_equal(token_issue(f->key, "req_1", "car\nol", 1, &tok), EL_EINVAL);
	assert_int_equal(token_issue(f->key, "req_1", "caf\xc3\xa9", 1, &tok), EL_EINVAL);
	assert_int_equal(token_issue(f->key, NULL, "carol", 1, &tok), EL_EINVAL);
	assert_null(tok);
}

static void
test_expired(void **state)
{
	struct fx *f = *state;
	struct token_claims c;
	struct el_why w;
	char *tok;

	assert_int_equal(token_issue(f->key, "req_1", "carol", 1000, &tok), EL_OK);
	assert_int_equal(token_verify(f->key, tok, 999, &c, &w), EL_OK);
	assert_int_equal(token_verify(f->key, tok, 1000, &c, &w), EL_ESTATE);
	/* Expired but authentic: the page may say which request. */
	assert_string_equal(c.request_id, "req_1");
	assert_string_equal(c.approver, "carol");
	assert_int_equal(token_verify(f->key, tok, el_now(), &c, &w), EL_ESTATE);
	assert_non_null(strstr(w.msg, "expired"));
	free(tok);
}

static void
assert_invalid(const struct token_key *key, const char *tok)
{
	struct token_claims c;
	struct el_why w;
	enum el_err r = token_verify(key, tok, 0, &c, &w);

	if (r != EL_EAUTH)
		fail_msg("token '%s' gave %s, want invalid", tok, el_strerror(r));
	assert_string_equal(c.request_id, "");
	assert_string_equal(c.approver, "");
}

/*
 * More tokens than the memo has slots, each verified twice (the second time from the
 * memo, or again when another took its slot): the same claims every time; on a hit the
 * expiry is still checked at the caller's time; another key does not share the memo.
 */
static void
test_remembered_token(void **state)
{
	struct fx *f = *state;
	struct token_key *other = NULL;
	struct token_claims c1, c2;
	struct el_why w;
	char other_dir[64], rid[32], appr[32], *tok[1500], *mut;
	size_t i, len;
	int pass;

	for (i = 0; i < 1500; i++) {
		snprintf(rid, sizeof(rid), "req_%zu", i);
		snprintf(appr, sizeof(appr), "approver%zu", i % 7);
		assert_int_equal(token_issue(f->key, rid, appr, 5000 + (int64_t)i, &tok[i]),
		    EL_OK);
	}
	for (pass = 0; pass < 2; pass++)
		for (i = 0; i < 1500; i++) {
			snprintf(rid, sizeof(rid), "req_%zu", i);
			snprintf(appr, sizeof(appr), "approver%zu", i % 7);
			assert_int_equal(token_verify(f->key, tok[i], 4000, &c1, &w), EL_OK);
			assert_string_equal(c1.request_id, rid);
			assert_string_equal(c1.approver, appr);
			assert_int_equal(c1.expiry, 5000 + (int64_t)i);
		}
	/* The newest are certainly remembered: a hit gives the claims of the first check. */
	assert_int_equal(token_verify(f->key, tok[1499], 4000, &c1, &w), EL_OK);
	assert_int_equal(token_verify(f->key, tok[1499], 4000, &c2, &w), EL_OK);
	assert_memory_equal(&c1, &c2, sizeof(c1));
	assert_int_equal(token_verify(f->key, tok[1499], 5000 + 1499, &c2, &w), EL_ESTATE);
	assert_string_equal(c2.request_id, "req_1499");
	assert_non_null(strstr(w.msg, "expired"));
	/* One character changed in a remembered token: not the same text, not remembered. */
	len = strlen(tok[1499]);
	assert_non_null(mut = strdup(tok[1499]));
	for (i = 0; i < len; i++) {
		mut[i] = mut[i] == 'A' ? 'B' : 'A';
		assert_invalid(f->key, mut);
		mut[i] = tok[1499][i];
	}
	free(mut);
	snprintf(other_dir, sizeof(other_dir), "/tmp/el_test_token_XXXXXX");
	assert_non_null(mkdtemp(other_dir));
	assert_int_equal(token_key_load_or_create(other_dir, &other, &w), EL_OK);
	assert_invalid(other, tok[1499]);
	token_key_free(other);
	rm_dir(other_dir);
	for (i = 0; i < 1500; i++)
		free(tok[i]);
}

static void
test_every_changed_character_refused(void **state)
{
	struct fx *f = *state;
	char *tok, *mut;
	size_t i, j, len, tried = 0;

	assert_int_equal(token_issue(f->key, "req_abcd", "dave", INT64_MAX, &tok), EL_OK);
	{
		struct token_claims c;
		struct el_why w;

		/* remembered from here on: no change of it may pass for it */
		assert_int_equal(token_verify(f->key, tok, 0, &c, &w), EL_OK);
	}
	len = strlen(tok);
	/* len % 4 != 0 here, so the last character has unused bits: they count too. */
	assert_true(len % 4 != 0);
	assert_non_null(mut = strdup(tok));
	for (i = 0; i < len; i++) {
		for (j = 0; j < 64; j++) {
			if (b64url[j] == tok[i])
				continue;
			mut[i] = b64url[j];
			assert_invalid(f->key, mut);
			tried++;
		}
		mut[i] = tok[i];
	}
	assert_int_equal(tried, len * 63);
	free(mut);
	free(tok);
}

static void
test_every_flipped_bit_refused(void **state)
{
	struct fx *f = *state;
	unsigned char raw[TOKEN_MAX_LEN];
	size_t n, i;
	int b;
	char *tok, *mut;

	assert_int_equal(token_issue(f->key, "req_abcd", "dave", INT64_MAX, &tok), EL_OK);
	assert_int_equal(el_b64url_decode(tok, raw, sizeof(raw), &n), EL_OK);
	for (i = 0; i < n; i++) {
		for (b = 0; b < 8; b++) {
			raw[i] ^= (unsigned char)(1u << b);
			assert_non_null(mut = el_b64url_encode(raw, n));
			assert_invalid(f->key, mut);
			free(mut);
			raw[i] ^= (unsigned char)(1u << b);
		}
	}
	/* Unchanged, it still verifies: the loop above tested something real. */
	assert_non_null(mut = el_b64url_encode(raw, n));
	{
		struct token_claims c;
		struct el_why w;

		assert_int_equal(token_verify(f->key, mut, 0, &c, &w), EL_OK);
	}
	free(mut);
	free(tok);
}

static void
test_truncated_oversize_garbage(void **state)
{
	struct fx *f = *state;
	struct token_key *other = NULL;
	char other_dir[64];
	char big[TOKEN_MAX_LEN + 2], *tok, *mut;
	struct el_why w;
	size_t i, len;

	assert_int_equal(token_issue(f->key, "req_abcd", "dave", INT64_MAX, &tok), EL_OK);
	len = strlen(tok);
	assert_non_null(mut = malloc(len + 8));
	for (i = 0; i < len; i++) {
		memcpy(mut, tok, i);
		mut[i] = '\0';
		assert_invalid(f->key, mut);   /* every prefix, the empty one included */
	}
	snprintf(mut, len + 8, "%sA", tok);
	assert_invalid(f->key, mut);
	snprintf(mut, len + 8, "%s=", tok);
	assert_invalid(f->key, mut);
	snprintf(mut, len + 8, "%s\n", tok);
	assert_invalid(f->key, mut);
	snprintf(mut, len + 8, " %s", tok);
	assert_invalid(f->key, mut);
	memcpy(mut, tok, len + 1);
	mut[len / 2] = '+';                  /* standard base64, not URL-safe */
	assert_invalid(f->key, mut);
	mut[len / 2] = '.';
	assert_invalid(f->key, mut);
	free(mut);
	memset(big, 'A', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_invalid(f->key, big);         /* 513 characters */
	big[TOKEN_MAX_LEN] = '\0';
	assert_invalid(f->key, big);         /* 512 valid characters, no valid token */
	assert_invalid(f->key, "");
	assert_invalid(f->key, "%00");
	assert_invalid(f->key, "../../etc/passwd");
	assert_invalid(f->key, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
	/* A token from another broker's key is not ours. */
	snprintf(other_dir, sizeof(other_dir), "/tmp/el_test_token_XXXXXX");
	assert_non_null(mkdtemp(other_dir));
	assert_int_equal(token_key_load_or_create(other_dir, &other, &w), EL_OK);
	assert_invalid(other, tok);
	token_key_free(other);
	rm_dir(other_dir);
	free(tok);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_key_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_longest_fields_fit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_issue_refuses_bad_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expired, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remembered_token, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_changed_character_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_every_flipped_bit_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_oversize_garbage, setup, teardown),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
