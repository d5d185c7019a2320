/*
 * test_jspec.c — declarative checks of untrusted JSON bodies (schema tables through
 * jspec_check): unknown fields, required fields, string ceilings and NULs, integer
 * bounds, durations, string arrays, and that every refusal names the field.
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

#include "elevate/el.h"
#include "elevate/jspec.h"

static const struct schema_field fields[] = {
	{ .key = "profile", .kind = SF_STR, .required = true, .null_ok = true, .max = 64 },
	{ .key = "reason", .kind = SF_TEXT, .null_ok = true, .max = 10 },
	{ .key = "count", .kind = SF_INT, .null_ok = true, .min = 1, .max = 10 },
	{ .key = "duration", .kind = SF_DURATION, .null_ok = true, .seconds_ok = true, .min = 1,
	  .max = EL_DURATION_MAX },
	{ .key = "targets", .kind = SF_STRLIST, .null_ok = true, .max = 3, .item_max = 8 },
	{ .key = "wait", .kind = SF_BOOL, .null_ok = true },
	{ .key = "tags", .kind = SF_JSON, .null_ok = true, .max = 2 },
};
static const struct schema spec = SCHEMA(fields);

/* Parses text and checks it; returns the verdict, w gets the reason. */
static enum el_err
check_text(const char *text, struct el_why *w)
{
	json_error_t je;
	json_t *j;
	enum el_err r;

	memset(w, 0, sizeof(*w));
	if ((j = json_loads(text, 0, &je)) == NULL)
		fail_msg("test JSON does not parse: %s: %s", text, je.text);
	r = jspec_check(j, &spec, w);
	json_decref(j);
	return r;
}

/* Adds field=v to a valid body and checks it (v is stolen). */
static enum el_err
check_with(const char *field, json_t *v, struct el_why *w)
{
	json_t *j = json_pack("{s:s}", "profile", "prod-readonly");
	enum el_err r;

	memset(w, 0, sizeof(*w));
	json_object_set_new(j, field, v);
	r = jspec_check(j, &spec, w);
	json_decref(j);
	return r;
}

static void
expect_refused(enum el_err r, const struct el_why *w, const char *needle)
{
	assert_int_equal(r, EL_EINVAL);
	if (strstr(w->msg, needle) == NULL)
		fail_msg("reason \"%s\" does not mention \"%s\"", w->msg, needle);
}

static void
valid_body(void **state)
{
	struct el_why w;
	json_t *j;

	(void)state;
	j = json_loads("{\"profile\": \"prod-readonly\", \"reason\": \"INC-1 fix\","
	    " \"count\": 3, \"duration\": \"1h30m\", \"targets\": [\"i-1\", \"i-2\"],"
	    " \"wait\": true, \"tags\": {\"a\": 1}}", 0, NULL);
	assert_non_null(j);
	assert_int_equal(jspec_check(j, &spec, &w), EL_OK);
	assert_string_equal(jspec_str(j, "profile"), "prod-readonly");
	assert_string_equal(jspec_str(j, "reason"), "INC-1 fix");
	assert_null(jspec_str(j, "ticket"));
	assert_null(jspec_str(j, "count"));   /* not a string */
	assert_int_equal(jspec_duration(j, "duration"), 5400);
	assert_int_equal(jspec_duration(j, "nothing"), 0);
	json_decref(j);

	/* Only the required field; optional fields may be null. */
	assert_int_equal(check_text("{\"profile\": \"p\"}", &w), EL_OK);
	assert_int_equal(check_text("{\"profile\": \"p\", \"reason\": null, \"count\": null,"
	    " \"duration\": null, \"targets\": null, \"wait\": null}", &w), EL_OK);

	j = json_pack("{s:s, s:i}", "profile", "p", "duration", 900);
	assert_int_equal(jspec_check(j, &spec, &w), EL_OK);
	assert_int_equal(jspec_duration(j, "duration"), 900);
	json_decref(j);
}

static void
unknown_field(void **state)
{
	struct el_why w;

	(void)state;
	expect_refused(check_text("{\"profile\": \"p\", \"reasn\": \"typo\"}", &w), &w, "reasn");
	expect_refused(check_text("{\"profile\": \"p\", \"reasn\": \"typo\"}", &w), &w, "unknown");
	/* Even when null, and even before the required field is considered. */
	expect_refused(check_text("{\"Profile\": null}", &w), &w, "Profile");
	/* Field names are compared exactly. */
	expect_refused(check_with("profile ", json_string("x"), &w), &w, "profile ");
	/* A hostile name does not overflow the message. */
	{
		char name[2000];

		memset(name, 'n', sizeof(name) - 1);
		name[sizeof(name) - 1] = '\0';
		expect_refused(check_with(name, json_true(), &w), &w, "nnnnnnnn");
		assert_true(strlen(w.msg) < sizeof(w.msg));
	}
}

static void
required_field(void **state)
{
	struct el_why w;
	json_t *j;

	(void)state;
	expect_refused(check_text("{}", &w), &w, "profile");
	expect_refused(check_text("{}", &w), &w, "required");
	expect_refused(check_text("{\"reason\": \"r\"}", &w), &w, "profile");
	expect_refused(check_text("{\"profile\": null}", &w), &w, "profile");
	/* The body itself must be an object. */
	expect_refused(check_text("[]", &w), &w, "object");
	j = json_string("profile");
	assert_int_equal(jspec_check(j, &spec, &w), EL_EINVAL);
	json_decref(j);
	assert_int_equal(jspec_check(NULL, &spec, &w), EL_EINVAL);
}

static void
string_rules(void **state)
{
	struct el_why w;
	char s65[66];

	(void)state;
	assert_int_equal(check_with("reason", json_string("0123456789"), &w), EL_OK);
	expect_refused(check_with("reason", json_string("0123456789x"), &w), &w, "reason");
	/* The ceiling counts bytes, not characters: 5 x U+00E9 is 10 bytes, 6 is 12. */
	assert_int_equal(check_with("reason", json_string("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	    "\xc3\xa9"), &w), EL_OK);
	expect_refused(check_with("reason", json_string("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	    "\xc3\xa9\xc3\xa9"), &w), &w, "reason");
	memset(s65, 'p', 65);
	s65[65] = '\0';
	expect_refused(check_with("profile", json_string(s65), &w), &w, "profile");
	s65[64] = '\0';
	assert_int_equal(check_with("profile", json_string(s65), &w), EL_OK);
	/* Wrong types. */
	expect_refused(check_with("reason", json_integer(5), &w), &w, "reason");
	expect_refused(check_with("reason", json_true(), &w), &w, "reason");
	expect_refused(check_with("reason", json_pack("[s]", "x"), &w), &w, "reason");
	expect_refused(check_with("profile", json_object(), &w), &w, "profile");
}

static void
string_nul(void **state)
{
	struct el_why w;

	(void)state;
	expect_refused(check_with("reason", json_stringn("a\0b", 3), &w), &w, "reason");
	expect_refused(check_with("reason", json_stringn("a\0b", 3), &w), &w, "NUL");
	expect_refused(check_with("profile", json_stringn("\0", 1), &w), &w, "profile");
}

static void
integer_bounds(void **state)
{
	struct el_why w;

	(void)state;
	assert_int_equal(check_with("count", json_integer(1), &w), EL_OK);
	assert_int_equal(check_with("count", json_integer(10), &w), EL_OK);
	expect_refused(check_with("count", json_integer(0), &w), &w, "count");
	expect_refused(check_with("count", json_integer(11), &w), &w, "count");
	expect_refused(check_with("count", json_integer(-1), &w), &w, "count");
	expect_refused(check_with("count", json_integer(INT64_MIN), &w), &w, "count");
	expect_refused(check_with("count", json_string("5"), &w), &w, "count");
	expect_refused(check_with("count", json_real(5.0), &w), &w, "count");
	expect_refused(check_with("count", json_true(), &w), &w, "count");
	/* The reason tells the range. */
	expect_refused(check_with("count", json_integer(11), &w), &w,
	    "count: 11 is out of range (1..10)");
}

static void
durations(void **state)
{
	static const char *const good[] = {"90s", "15m", "1h30m", "1d", "2h", "3600"};
	static const char *const bad[] = {
		"", "0", "1h30", "30m1h", "1x", "-5m", "1h1h", "367d", "15 m",
		"00000000000000000000000000000000015m",
	};
	struct el_why w;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (check_with("duration", json_string(good[i]), &w) != EL_OK)
			fail_msg("duration \"%s\" refused: %s", good[i], w.msg);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		enum el_err r = check_with("duration", json_string(bad[i]), &w);

		if (r != EL_EINVAL || strstr(w.msg, "duration") == NULL)
			fail_msg("duration \"%s\": %d %s", bad[i], r, w.msg);
	}
	assert_int_equal(check_with("duration", json_integer(1), &w), EL_OK);
	assert_int_equal(check_with("duration", json_integer(366LL * 86400), &w), EL_OK);
	expect_refused(check_with("duration", json_integer(0), &w), &w, "duration");
	expect_refused(check_with("duration", json_integer(-60), &w), &w, "duration");
	expect_refused(check_with("duration", json_integer(366LL * 86400 + 1), &w), &w,
	    "duration");
	expect_refused(check_with("duration", json_real(60.0), &w), &w, "duration");
	expect_refused(check_with("duration", json_true(), &w), &w, "duration");
}

static void
string_arrays(void **state)
{
	struct el_why w;

	(void)state;
	assert_int_equal(check_with("targets", json_array(), &w), EL_OK);
	assert_int_equal(check_with("targets", json_pack("[sss]", "i-1", "i-2", "12345678"), &w),
	    EL_OK);
	expect_refused(check_with("targets", json_pack("[ssss]", "a", "b", "c", "d"), &w), &w,
	    "targets");
	expect_refused(check_with("targets", json_pack("[si]", "a", 1), &w), &w, "targets[1]");
	expect_refused(check_with("targets", json_pack("[s]", "123456789"), &w), &w,
	    "targets[0]");
	expect_refused(check_with("targets", json_pack("[n]"), &w), &w, "targets[0]");
	expect_refused(check_with("targets", json_pack("[[s]]", "a"), &w), &w, "targets[0]");
	expect_refused(check_with("targets", json_string("i-1"), &w), &w, "targets");
	expect_refused(check_with("targets", json_object(), &w), &w, "targets");
}

/* Strings inside an SF_STRLIST obey the SF_STR rules: no NUL ("i-1\0x" would be
 * checked, logged and passed to AWS as "i-1"). */
static void
string_array_nul(void **state)
{
	struct el_why w;
	json_t *a = json_array();

	(void)state;
	json_array_append_new(a, json_stringn("i-1\0evil", 8));
	expect_refused(check_with("targets", a, &w), &w, "targets[0]");
}

static void
bools_and_objects(void **state)
{
	struct el_why w;

	(void)state;
	assert_int_equal(check_with("wait", json_false(), &w), EL_OK);
	expect_refused(check_with("wait", json_integer(1), &w), &w, "wait");
	expect_refused(check_with("wait", json_string("true"), &w), &w, "wait");
	assert_int_equal(check_with("tags", json_pack("{s:i,s:i}", "a", 1, "b", 2), &w), EL_OK);
	expect_refused(check_with("tags", json_pack("{s:i,s:i,s:i}", "a", 1, "b", 2, "c", 3), &w),
	    &w, "tags");
	expect_refused(check_with("tags", json_array(), &w), &w, "tags");
}

/*
 * The wording is the schema engine's, as for policies and elevated.json: a typo gets a
 * suggestion, a list names no item twice, names refuse control characters while text a
 * person typed keeps its line breaks (the engine judges those later).
 */
static void
schema_wording(void **state)
{
	struct el_why w;

	(void)state;
	expect_refused(check_text("{\"profile\": \"p\", \"reasn\": \"typo\"}", &w), &w,
	    "reasn: unknown key (did you mean reason?)");
	expect_refused(check_text("{}", &w), &w, "missing required key \"profile\"");
	expect_refused(check_with("targets", json_pack("[ss]", "i-1", "i-1"), &w), &w,
	    "targets[1]: \"i-1\" is listed twice");
	expect_refused(check_with("profile", json_string("a\tb"), &w), &w,
	    "profile: contains a control character");
	assert_int_equal(check_with("reason", json_string("a\nb\tc"), &w), EL_OK);
	expect_refused(check_with("wait", json_integer(1), &w), &w,
	    "wait: expected true or false, got an integer");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(valid_body),
		cmocka_unit_test(unknown_field),
		cmocka_unit_test(required_field),
		cmocka_unit_test(string_rules),
		cmocka_unit_test(string_nul),
		cmocka_unit_test(integer_bounds),
		cmocka_unit_test(durations),
		cmocka_unit_test(string_arrays),
		cmocka_unit_test(string_array_nul),
		cmocka_unit_test(bools_and_objects),
		cmocka_unit_test(schema_wording),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
