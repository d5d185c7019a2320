/*
 * test_denypolicy.c — the early-revocation deny policy: every revoked grant is denied and
 * no live one, read with IAM's rules for the two operators it uses (StringEquals: the key
 * is present and equals one value; StringNotEquals with several values: the key is
 * absent or equals none, a NOR); and its size stays within IAM's 10,240 characters for a
 * burst of 1,000 revocations on one role, growing with the live grants, not the revoked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "elevate/denypolicy.h"
#include "elevate/el.h"

#define KEY_ID "aws:PrincipalTag/" DENYPOLICY_TAG_ID
#define KEY_COHORT "aws:PrincipalTag/" DENYPOLICY_TAG_COHORT

/* Grants of a test, with the strings they point to. */
struct set {
	struct deny_grant *g;
	char (*id)[24];
	char (*cohort)[16];
	size_t n, cap;
};

static void
set_add(struct set *s, unsigned id, int cohort)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->g = realloc(s->g, s->cap * sizeof(*s->g));
		s->id = realloc(s->id, s->cap * sizeof(*s->id));
		s->cohort = realloc(s->cohort, s->cap * sizeof(*s->cohort));
		assert_non_null(s->g);
		assert_non_null(s->id);
		assert_non_null(s->cohort);
	}
	/* request ids as the broker makes them: req_ and 12 characters */
	snprintf(s->id[s->n], sizeof(s->id[0]), "req_%012u", id);
	if (cohort >= 0)
		snprintf(s->cohort[s->n], sizeof(s->cohort[0]), "c%07d", cohort);
	else
		s->cohort[s->n][0] = '\0';
	s->n++;
}

/* The pointers, once the arrays stop moving. */
static struct deny_grant *
set_grants(struct set *s)
{
	size_t i;

	for (i = 0; i < s->n; i++) {
		s->g[i].id = s->id[i];
		s->g[i].cohort = s->cohort[i];
	}
	return s->g;
}

static void
set_free(struct set *s)
{
	free(s->g);
	free(s->id);
	free(s->cohort);
	memset(s, 0, sizeof(*s));
}

static const char *
cohort_name(int c, char *buf, size_t len)
{
	snprintf(buf, len, "c%07d", c);
	return buf;
}

static bool
in_list(json_t *vals, const char *v)
{
	size_t i;
	json_t *x;

	if (json_is_string(vals))
		return strcmp(json_string_value(vals), v) == 0;
	json_array_foreach(vals, i, x)
		if (strcmp(json_string_value(x), v) == 0)
			return true;
	return false;
}

/* Is a session with these tags (cohort "" = no such tag) denied by doc? */
static bool
denied(json_t *doc, const char *id, const char *cohort)
{
	size_t i;
	json_t *st;

	json_array_foreach(json_object_get(doc, "Statement"), i, st) {
		const char *op, *key;
		json_t *keys, *vals;
		bool all = true;

		assert_string_equal(json_string_value(json_object_get(st, "Effect")), "Deny");
		assert_string_equal(json_string_value(json_object_get(st, "Action")), "*");
		assert_string_equal(json_string_value(json_object_get(st, "Resource")), "*");
		json_object_foreach(json_object_get(st, "Condition"), op, keys)
			json_object_foreach(keys, key, vals) {
				const char *v = strcmp(key, KEY_ID) == 0 ? id :
				    strcmp(key, KEY_COHORT) == 0 ? cohort : NULL;
				bool present;

				assert_non_null(v);
				present = *v != '\0';
				if (strcmp(op, "StringEquals") == 0)
					all = all && present && in_list(vals, v);
				else if (strcmp(op, "StringNotEquals") == 0)
					all = all && (!present || !in_list(vals, v));
				else
					fail_msg("unexpected operator %s", op);
			}
		if (all)
			return true;
	}
	return false;
}

/* Builds, checks every grant against IAM's reading of the document, returns its stats. */
static struct deny_stats
build_and_check(struct set *rv, struct set *lv, const char *open)
{
	struct deny_stats st;
	char *doc = NULL;
	json_t *d;
	size_t i, j;

	memset(&st, 0, sizeof(st));
	assert_int_equal(denypolicy_build(set_grants(rv), rv->n, set_grants(lv), lv->n, open,
	    &doc, &st), EL_OK);
	assert_non_null(doc);
	assert_int_equal(st.chars, strlen(doc));   /* compact: no whitespace to discount */
	assert_int_equal(st.chars, denypolicy_chars(doc));
	assert_non_null(d = json_loads(doc, 0, NULL));
	for (i = 0; i < rv->n; i++)
		assert_true(denied(d, rv->id[i], rv->cohort[i]));
	for (j = 0; j < lv->n; j++) {
		bool revoked = false;

		for (i = 0; i < rv->n; i++)
			if (strcmp(rv->id[i], lv->id[j]) == 0)
				revoked = true;
		assert_true(denied(d, lv->id[j], lv->cohort[j]) == revoked);
	}
	json_decref(d);
	free(doc);
	return st;
}

/* The size of naming every revoked grant by request id: what the policy may never
 * exceed. */
static size_t
listed_size(struct set *rv)
{
	struct set untagged = {0};
	struct deny_stats st;
	char *doc = NULL;
	size_t i;

	for (i = 0; i < rv->n; i++)
		set_add(&untagged, (unsigned)strtoul(rv->id[i] + 4, NULL, 10), -1);
	assert_int_equal(denypolicy_build(set_grants(&untagged), untagged.n, NULL, 0, NULL, &doc,
	    &st), EL_OK);
	assert_int_equal(st.listed, untagged.n);
	assert_int_equal(st.swept, 0);
	free(doc);
	set_free(&untagged);
	return st.chars;
}

/*
 * The burst that overflowed IAM: grants of one role revoked back to back, 1,000 of them
 * alive at once. The broker closes the open cohort at every DENYPOLICY_CLOSE_AT revoked
 * grants, so they fall into 63 cohorts; 40 live grants of the role are scattered among
 * them. Named one by one they would need 19 characters each (and 55 each by aws:userid).
 */
static void
burst_of_a_thousand_fits(void **state)
{
	struct set rv = {0}, lv = {0};
	struct deny_stats st;
	char open[16];
	unsigned id = 1;
	int c;
	size_t i;

	(void)state;
	for (i = 0; i < 1000; i++) {
		c = (int)(i / DENYPOLICY_CLOSE_AT);
		if (i % 25 == 0)
			set_add(&lv, id++, c);
		set_add(&rv, id++, c);
	}
	cohort_name((int)(999 / DENYPOLICY_CLOSE_AT), open, sizeof(open));
	st = build_and_check(&rv, &lv, open);
	print_message("     1,000 revoked, 40 live: %zu characters (%zu named, %zu cohorts, "
	    "%zu excepted); by request id alone %zu\n", st.chars, st.listed, st.swept,
	    st.excepted, listed_size(&rv));
	assert_true(st.chars <= DENYPOLICY_BUDGET);
	/* The bound of denypolicy.h: the open cohort's few named, 11 per cohort, 19 per
	 * excepted live grant, and the two statements' frames. */
	assert_true(st.listed < DENYPOLICY_CLOSE_AT);
	assert_true(st.chars <= 400 + 19 * (st.listed + st.excepted) + 11 * st.swept);
	assert_true(listed_size(&rv) > DENYPOLICY_BUDGET);
	set_free(&rv);
	set_free(&lv);
}

/* Revoked and live grants mixed in one cohort: the policy names the fewer side, so it
 * grows with min(revoked, live); past about 500 of each on one role it is over budget
 * (the broker then fails loudly and retries, test_revoke). */
static void
grows_with_the_fewer_side(void **state)
{
	struct set rv = {0}, lv = {0};
	struct deny_stats st, st2;
	unsigned id = 1;
	size_t i;

	(void)state;
	for (i = 0; i < 2000; i++)
		set_add(&rv, id++, 1);
	for (i = 0; i < 100; i++)
		set_add(&lv, id++, 1);
	st = build_and_check(&rv, &lv, "c0000002");
	assert_int_equal(st.listed, 0);
	assert_int_equal(st.swept, 1);
	assert_int_equal(st.excepted, 100);
	assert_true(st.chars < 100 * 19 + 400);
	set_free(&rv);
	set_free(&lv);

	for (i = 0; i < 500; i++) {
		set_add(&rv, id++, 1);
		set_add(&lv, id++, 1);
	}
	set_add(&rv, id++, 1);
	st = build_and_check(&rv, &lv, "c0000002");
	assert_true(st.chars <= DENYPOLICY_BUDGET);
	set_add(&rv, id++, 1);
	for (i = 0; i < 40; i++) {
		set_add(&rv, id++, 1);
		set_add(&lv, id++, 1);
	}
	st2 = build_and_check(&rv, &lv, "c0000002");
	assert_true(st2.chars > DENYPOLICY_BUDGET);
	print_message("     501 revoked with 500 live in one cohort: %zu characters; 542 with "
	    "540: %zu\n", st.chars, st2.chars);
	set_free(&rv);
	set_free(&lv);
}

/* The open cohort is never swept (grants minted later join it), however cheap. */
static void
open_cohort_is_named(void **state)
{
	struct set rv = {0}, lv = {0};
	struct deny_stats st;
	unsigned i;

	(void)state;
	for (i = 0; i < 100; i++)
		set_add(&rv, i + 1, 7);
	st = build_and_check(&rv, &lv, "c0000007");
	assert_int_equal(st.swept, 0);
	assert_int_equal(st.listed, 100);
	assert_true(denypolicy_should_close(set_grants(&rv), rv.n, "c0000007"));
	assert_false(denypolicy_should_close(set_grants(&rv), rv.n, "c0000008"));
	assert_false(denypolicy_should_close(set_grants(&rv), rv.n, NULL));
	assert_false(denypolicy_should_close(set_grants(&rv), DENYPOLICY_CLOSE_AT - 1,
	    "c0000007"));
	assert_true(denypolicy_should_close(set_grants(&rv), DENYPOLICY_CLOSE_AT, "c0000007"));
	/* closed: now it is swept */
	st = build_and_check(&rv, &lv, "c0000008");
	assert_int_equal(st.swept, 1);
	assert_int_equal(st.listed, 0);
	set_free(&rv);
}

/* A sweep that does not pay for its statement is not made; grants minted without a
 * cohort are always named; a grant both revoked and live is denied, never excepted. */
static void
edges(void **state)
{
	struct set rv = {0}, lv = {0};
	struct deny_stats st;
	char *doc = NULL;
	unsigned i;

	(void)state;
	assert_int_equal(denypolicy_build(NULL, 0, NULL, 0, NULL, &doc, NULL), EL_EINVAL);
	assert_null(doc);
	set_add(&rv, 1, 3);
	set_add(&rv, 2, 3);
	set_add(&rv, 3, -1);
	set_add(&lv, 4, -1);
	st = build_and_check(&rv, &lv, NULL);
	assert_int_equal(st.swept, 0);
	assert_int_equal(st.listed, 3);

	for (i = 10; i < 60; i++)
		set_add(&rv, i, 3);
	set_add(&lv, 2, 3);          /* revoked, and still reported live */
	set_add(&lv, 5, 3);
	st = build_and_check(&rv, &lv, "c0000004");
	assert_int_equal(st.swept, 1);
	assert_int_equal(st.listed, 1);      /* the untagged one */
	assert_int_equal(st.excepted, 1);    /* req 5 only */
	/* the same grant twice costs once */
	set_add(&rv, 3, -1);
	st = build_and_check(&rv, &lv, "c0000004");
	assert_int_equal(st.listed, 1);
	set_free(&rv);
	set_free(&lv);
}

static unsigned
next(uint32_t *x)
{
	*x = *x * 1103515245u + 12345u;
	return (*x >> 8) & 0xffff;
}

/* Random mixes: always correct, never larger than naming every revoked grant. */
static void
random_mixes(void **state)
{
	uint32_t x = 12345;
	int round;

	(void)state;
	for (round = 0; round < 200; round++) {
		struct set rv = {0}, lv = {0};
		struct deny_stats st;
		char open[16];
		int ncoh, i, nr, nl;

		ncoh = 1 + (int)(next(&x) % 8);
		nr = 1 + (int)(next(&x) % 300);
		nl = (int)(next(&x) % 120);
		/* odd ids revoked, even ones live: a grant has one cohort */
		for (i = 0; i < nr; i++) {
			unsigned id = 2 * (next(&x) * 64 + (unsigned)i % 64) + 1;
			set_add(&rv, id, (int)(next(&x) % (unsigned)(ncoh + 1)) - 1);
		}
		for (i = 0; i < nl; i++) {
			unsigned id = 2 * (next(&x) * 64 + (unsigned)i % 64);
			set_add(&lv, id, (int)(next(&x) % (unsigned)(ncoh + 1)) - 1);
		}
		cohort_name((int)(next(&x) % (ncoh + 1)), open, sizeof(open));
		st = build_and_check(&rv, &lv, open);
		assert_true(st.chars <= listed_size(&rv));
		set_free(&rv);
		set_free(&lv);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(burst_of_a_thousand_fits),
		cmocka_unit_test(grows_with_the_fewer_side),
		cmocka_unit_test(open_cohort_is_named),
		cmocka_unit_test(edges),
		cmocka_unit_test(random_mixes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
