/*
 * test_ratelimit.c — the per-address buckets as the HTTP layer relies on them: a burst,
 * then blocked with an honest Retry-After, tokens earned back over time, addresses
 * independent, a bounded table that forgets the least recently seen address and never
 * grows on a mere check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "elevate/ratelimit.h"

#define T0 1700000000000LL   /* ms */

static struct ratelimit *
make(size_t cap, double burst, double per_minute)
{
	struct ratelimit *rl = NULL;

	assert_int_equal(ratelimit_new(cap, burst, per_minute, &rl), EL_OK);
	assert_non_null(rl);
	return rl;
}

static void
burst_then_blocked(void **state)
{
	struct ratelimit *rl = make(16, 5, 30);   /* one token back every 2 s */
	int retry = -1, i;

	(void)state;
	for (i = 0; i < 4; i++) {
		assert_false(ratelimit_blocked(rl, "127.0.0.2", T0, &retry));
		assert_false(ratelimit_charge(rl, "127.0.0.2", T0));
	}
	assert_false(ratelimit_blocked(rl, "127.0.0.2", T0, &retry));
	/* the fifth refusal empties the bucket: said once */
	assert_true(ratelimit_charge(rl, "127.0.0.2", T0));
	assert_true(ratelimit_blocked(rl, "127.0.0.2", T0, &retry));
	assert_int_equal(retry, 2);
	assert_false(ratelimit_charge(rl, "127.0.0.2", T0));   /* a raced charge: no news */
	/* 1.5 s later: three quarters of a token, still blocked, half a second to go -> 1 */
	assert_true(ratelimit_blocked(rl, "127.0.0.2", T0 + 1500, &retry));
	assert_int_equal(retry, 1);
	/* after 2 s one token is back: one more refusal is allowed, then blocked again */
	assert_false(ratelimit_blocked(rl, "127.0.0.2", T0 + 2000, &retry));
	assert_true(ratelimit_charge(rl, "127.0.0.2", T0 + 2000));
	assert_true(ratelimit_blocked(rl, "127.0.0.2", T0 + 2000, NULL));
	ratelimit_free(rl);
}

static void
refills_to_burst_only(void **state)
{
	struct ratelimit *rl = make(16, 3, 60);
	int i;

	(void)state;
	for (i = 0; i < 3; i++)
		ratelimit_charge(rl, "a", T0);
	assert_true(ratelimit_blocked(rl, "a", T0, NULL));
	/* an hour idle earns 3600 tokens but the bucket holds 3 */
	for (i = 0; i < 2; i++)
		assert_false(ratelimit_charge(rl, "a", T0 + 3600000));
	assert_true(ratelimit_charge(rl, "a", T0 + 3600000));
	/* a clock that steps back earns nothing and breaks nothing */
	assert_true(ratelimit_blocked(rl, "a", T0, NULL));
	ratelimit_free(rl);
}

static void
addresses_are_independent(void **state)
{
	struct ratelimit *rl = make(16, 2, 1);
	int retry = 0;

	(void)state;
	ratelimit_charge(rl, "10.0.0.1", T0);
	ratelimit_charge(rl, "10.0.0.1", T0);
	assert_true(ratelimit_blocked(rl, "10.0.0.1", T0, &retry));
	assert_int_equal(retry, 60);
	assert_false(ratelimit_blocked(rl, "10.0.0.2", T0, &retry));
	assert_false(ratelimit_blocked(rl, "10.0.0.10", T0, &retry));
	assert_false(ratelimit_blocked(rl, NULL, T0, &retry));
	ratelimit_free(rl);
}

static void
checks_add_nothing(void **state)
{
	struct ratelimit *rl = make(4, 1, 1);
	char key[32];
	int i;

	(void)state;
	for (i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "192.0.2.%d", i);
		assert_false(ratelimit_blocked(rl, key, T0, NULL));
	}
	assert_int_equal(ratelimit_size(rl), 0);
	ratelimit_free(rl);
}

static void
full_table_forgets_the_least_recent(void **state)
{
	struct ratelimit *rl = make(16, 1, 1);
	char key[32];
	int i;

	(void)state;
	/* the flooder is blocked, then 15 others fill the table */
	assert_true(ratelimit_charge(rl, "flooder", T0));
	for (i = 0; i < 15; i++) {
		snprintf(key, sizeof(key), "198.51.100.%d", i);
		assert_true(ratelimit_charge(rl, key, T0 + 1));
	}
	assert_int_equal(ratelimit_size(rl), 16);
	/* the flooder keeps coming (each check makes it recent again) */
	assert_true(ratelimit_blocked(rl, "flooder", T0 + 2, NULL));
	/* 20 new addresses: the table stays at 16 and forgets the idle ones first */
	for (i = 0; i < 15; i++) {
		snprintf(key, sizeof(key), "203.0.113.%d", i);
		ratelimit_charge(rl, key, T0 + 3);
	}
	assert_int_equal(ratelimit_size(rl), 16);
	assert_true(ratelimit_blocked(rl, "flooder", T0 + 4, NULL));
	for (i = 0; i < 15; i++) {
		snprintf(key, sizeof(key), "198.51.100.%d", i);
		assert_false(ratelimit_blocked(rl, key, T0 + 4, NULL));   /* forgotten */
		snprintf(key, sizeof(key), "203.0.113.%d", i);
		assert_true(ratelimit_blocked(rl, key, T0 + 4, NULL));
	}
	/* once the flooder is the oldest, it is the one forgotten */
	for (i = 15; i < 30; i++) {
		snprintf(key, sizeof(key), "203.0.113.%d", i);
		ratelimit_charge(rl, key, T0 + 5);
	}
	ratelimit_charge(rl, "one more", T0 + 5);
	assert_false(ratelimit_blocked(rl, "flooder", T0 + 6, NULL));
	assert_int_equal(ratelimit_size(rl), 16);
	ratelimit_free(rl);
}

static void
many_keys_stay_consistent(void **state)
{
	struct ratelimit *rl = make(64, 1, 1);
	char key[32];
	int i, blocked = 0;

	(void)state;
	/* 10,000 addresses through a 64-entry table: the last 64 are exactly the ones held */
	for (i = 0; i < 10000; i++) {
		snprintf(key, sizeof(key), "a%d", i);
		ratelimit_charge(rl, key, T0);
	}
	assert_int_equal(ratelimit_size(rl), 64);
	for (i = 0; i < 10000; i++) {
		snprintf(key, sizeof(key), "a%d", i);
		if (ratelimit_blocked(rl, key, T0, NULL)) {
			blocked++;
			assert_true(i >= 10000 - 64);
		}
	}
	assert_int_equal(blocked, 64);
	ratelimit_free(rl);
}

static void
long_keys_are_cut(void **state)
{
	struct ratelimit *rl = make(4, 1, 1);
	char a[128], b[128];

	(void)state;
	memset(a, 'x', sizeof(a) - 1);
	a[sizeof(a) - 1] = '\0';
	memcpy(b, a, sizeof(b));
	b[100] = 'y';   /* differs only past the cut */
	ratelimit_charge(rl, a, T0);
	assert_true(ratelimit_blocked(rl, b, T0, NULL));
	ratelimit_free(rl);
}

static void
bad_parameters(void **state)
{
	struct ratelimit *rl = NULL;

	(void)state;
	assert_int_equal(ratelimit_new(0, 5, 5, &rl), EL_EINVAL);
	assert_int_equal(ratelimit_new(4, 0.5, 5, &rl), EL_EINVAL);
	assert_int_equal(ratelimit_new(4, 5, 0, &rl), EL_EINVAL);
	assert_null(rl);
	ratelimit_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(burst_then_blocked),
		cmocka_unit_test(refills_to_burst_only),
		cmocka_unit_test(addresses_are_independent),
		cmocka_unit_test(checks_add_nothing),
		cmocka_unit_test(full_table_forgets_the_least_recent),
		cmocka_unit_test(many_keys_stay_consistent),
		cmocka_unit_test(long_keys_are_cut),
		cmocka_unit_test(bad_parameters),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
