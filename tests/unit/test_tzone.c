/*
 * test_tzone.c — tzone.c against the C library as the oracle: for zones with and without
 * daylight saving time, at instants around their transitions and across decades, the
 * local time and offset tzone_local() computes equal localtime_r() under TZ=zone (this
 * test is single-threaded, so setting TZ is safe here). Bad names and files are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "elevate/el.h"
#include "elevate/tzone.h"

static const char *const zones[] = {
	"UTC", "Asia/Tokyo", "Europe/Berlin", "America/New_York", "Australia/Sydney",
	"Asia/Kolkata", "America/St_Johns", "Pacific/Chatham", "Europe/London",
};

static void
same_as_libc(const char *name)
{
	struct tzone *z = NULL;
	struct el_why w = {{0}};
	int64_t t;
	int checked = 0;

	assert_int_equal(tzone_load(NULL, name, &z, &w), EL_OK);
	setenv("TZ", name, 1);
	tzset();
	/* every 6 hours and 17 minutes from 1990 to 2036: crosses every DST change */
	for (t = 631152000; t < 2082758400; t += 6 * 3600 + 17 * 60) {
		struct tm want, got;
		time_t tt = (time_t)t;
		int32_t off;

		localtime_r(&tt, &want);
		tzone_local(z, t, &got, &off);
		if (want.tm_hour != got.tm_hour || want.tm_min != got.tm_min ||
		    want.tm_mday != got.tm_mday || want.tm_wday != got.tm_wday ||
		    want.tm_gmtoff != off)
			fail_msg("%s at %lld: libc %02d:%02d day %d (%+ld), tzone %02d:%02d day %d "
			    "(%+d)", name, (long long)t, want.tm_hour, want.tm_min, want.tm_mday,
			    want.tm_gmtoff, got.tm_hour, got.tm_min, got.tm_mday, off);
		checked++;
	}
	assert_true(checked > 60000);
	tzone_free(z);
}

static void
zones_match_libc(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(zones) / sizeof(zones[0]); i++)
		same_as_libc(zones[i]);
}

/* The second around a change: Berlin's spring forward at 2026-03-29 01:00 UTC. */
static void
transition_second(void **state)
{
	struct tzone *z = NULL;
	struct el_why w = {{0}};
	struct tm tm;
	int32_t off;

	(void)state;
	assert_int_equal(tzone_load(NULL, "Europe/Berlin", &z, &w), EL_OK);
	tzone_local(z, 1774746000 - 1, &tm, &off);      /* 01:59:59 CET */
	assert_int_equal(off, 3600);
	assert_int_equal(tm.tm_hour, 1);
	assert_int_equal(tm.tm_sec, 59);
	tzone_local(z, 1774746000, &tm, &off);          /* 03:00:00 CEST */
	assert_int_equal(off, 7200);
	assert_int_equal(tm.tm_hour, 3);
	tzone_free(z);
}

static void
refusals(void **state)
{
	static const char *const bad[] = {"", "../etc/passwd", "/etc/localtime", "Asia/../UTC",
	    "Asia/Tokyo\n", "Mars/Olympus_Mons", "Asia"};
	struct tzone *z = NULL;
	struct el_why w = {{0}};
	char dir[] = "/tmp/tzone-XXXXXX", path[64];
	FILE *f;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&w, 0, sizeof(w));
		assert_int_not_equal(tzone_load(NULL, bad[i], &z, &w), EL_OK);
		assert_null(z);
		assert_true(w.msg[0] != '\0');
	}
	/* not a zone file; a truncated one */
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/Bad", dir);
	assert_non_null(f = fopen(path, "w"));
	fputs("not a zone\n", f);
	fclose(f);
	assert_int_equal(tzone_load(dir, "Bad", &z, &w), EL_EPARSE);
	assert_non_null(strstr(w.msg, "not a TZif"));
	assert_non_null(f = fopen(path, "w"));
	fwrite("TZif2", 1, 5, f);
	fwrite("\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
	    "\0\1\0\0\0\1", 1, 44 - 5, f);
	fclose(f);
	assert_int_equal(tzone_load(dir, "Bad", &z, &w), EL_EPARSE);
	unlink(path);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(zones_match_libc),
		cmocka_unit_test(transition_second),
		cmocka_unit_test(refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
