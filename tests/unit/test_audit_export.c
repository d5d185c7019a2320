/*
 * test_audit_export.c — where the audit chain leaves the store: rotated names, a torn
 * last line cut at open (and a bad whole line refused), appends that resume after the
 * last record of the newest rotated file, rotation by size, several files read as one
 * chain (gaps and overlaps named), the signed head (and every forgery of it refused),
 * and RFC 3164 syslog lines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "elevate/audit_export.h"
#include "elevate/el.h"
#include "elevate/log.h"

struct fx {
	char dir[64];
	char path[128];
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/elevate-ut-ae-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/audit.jsonl", f->dir);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void
put(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static char *
slurp(const char *path)
{
	char *t = NULL;
	size_t n;

	assert_int_equal(el_read_file(path, 1 << 20, &t, &n, NULL), EL_OK);
	return t;
}

#define REC(n) "{\"seq\":" #n ",\"time\":\"2026-11-22T03:26:00.123Z\"}\n"

static void
rotated_names(void **state)
{
	char b[256];

	(void)state;
	assert_int_equal(audit_rotated_name("/x/audit.jsonl", 123, b, sizeof(b)), EL_OK);
	assert_string_equal(b, "/x/audit-000000000123.jsonl");
	assert_int_equal(audit_rotated_name("/x.d/audit", 7, b, sizeof(b)), EL_OK);
	assert_string_equal(b, "/x.d/audit-000000000007");
	assert_int_equal(audit_rotated_name("/x/.audit", 7, b, sizeof(b)), EL_OK);
	assert_string_equal(b, "/x/.audit-000000000007");
	assert_int_equal(audit_rotated_name("/x/audit.jsonl", 1, b, 10), EL_ETOOBIG);
	assert_int_equal(audit_time_parse("2026-11-22T03:26:00.123Z"), 1795317960);
	assert_int_equal(audit_time_parse("garbage"), 0);
}

static void
torn_line_cut(void **state)
{
	struct fx *f = *state;
	struct audit_out o;
	struct stat st;
	char *t;

	memset(&o, 0, sizeof(o));
	o.fd = -1;
	put(f->path, REC(1) REC(2) "{\"seq\":3,\"ti");
	chmod(f->path, 0644);
	assert_int_equal(audit_out_open(&o, f->path, 0, 0, NULL), EL_OK);
	assert_int_equal(o.torn_bytes, 12);
	assert_int_equal(o.last_seq, 2);
	assert_int_equal(o.first_seq, 1);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(audit_out_write(&o, "{\"seq\":3}", 9, 3, 0, NULL), EL_OK);
	assert_int_equal(audit_out_sync(&o, NULL), EL_OK);
	audit_out_close(&o);
	t = slurp(f->path);
	assert_string_equal(t, REC(1) REC(2) "{\"seq\":3}\n");
	free(t);
	/* a whole last line that is no record is not cut: someone must look */
	put(f->path, REC(1) "not json\n");
	assert_int_equal(audit_out_open(&o, f->path, 0, 0, NULL), EL_EPARSE);
	assert_int_equal(o.fd, -1);
	free(o.path);
}

static void
rotate_by_size_and_resume(void **state)
{
	struct fx *f = *state;
	struct audit_out o;
	char rot[256], *t;
	int i;

	memset(&o, 0, sizeof(o));
	o.fd = -1;
	assert_int_equal(audit_out_open(&o, f->path, 40, 0, NULL), EL_OK);
	assert_int_equal(o.last_seq, 0);
	for (i = 1; i <= 5; i++) {
		char line[32];

		snprintf(line, sizeof(line), "{\"seq\":%d,\"pad\":\"xxxxx\"}", i);
		assert_int_equal(audit_out_write(&o, line, strlen(line), i, 0, NULL), EL_OK);
	}
	assert_int_equal(audit_out_sync(&o, NULL), EL_OK);
	/* 25-byte lines, 40-byte files: one record each */
	for (i = 1; i <= 4; i++) {
		assert_int_equal(audit_rotated_name(f->path, i, rot, sizeof(rot)), EL_OK);
		assert_int_equal(access(rot, F_OK), 0);
	}
	audit_out_close(&o);
	/* an empty live file resumes after the newest rotated one */
	assert_int_equal(audit_out_rotate(&o, NULL), EL_EIO);   /* closed: fsync refuses */
	assert_int_equal(audit_out_open(&o, f->path, 40, 0, NULL), EL_OK);
	assert_int_equal(audit_out_rotate(&o, NULL), EL_OK);
	audit_out_close(&o);
	assert_int_equal(audit_out_open(&o, f->path, 40, 0, NULL), EL_OK);
	assert_int_equal(o.first_seq, 0);
	assert_int_equal(o.last_seq, 5);
	audit_out_close(&o);
	t = slurp(f->path);
	assert_string_equal(t, "");
	free(t);
	free(o.path);
}

static void
files_as_one_chain(void **state)
{
	struct fx *f = *state;
	char a[160], b[160], c[160], hex[65];
	char *paths[3];
	struct audit_file_info *info = NULL;
	struct el_why w = {{0}};
	const struct audit_file_info *where;
	int64_t line = 0;
	FILE *fp;
	char buf[512];
	size_t n;

	snprintf(a, sizeof(a), "%s/a", f->dir);
	snprintf(b, sizeof(b), "%s/b", f->dir);
	snprintf(c, sizeof(c), "%s/c", f->dir);
	put(a, "{\"seq\":1,\"hash\":\"" "1111111111111111111111111111111111111111111111111111111111111111" "\"}\n"
	    "{\"seq\":2}\n");
	put(b, "{\"seq\":3}\n{\"seq\":4,\"hash\":\""
	    "4444444444444444444444444444444444444444444444444444444444444444" "\"}\n");
	put(c, "{\"seq\":5}\n");
	paths[0] = c;
	paths[1] = a;
	paths[2] = b;
	assert_int_equal(audit_files_open(paths, 3, &fp, &info, &w), EL_OK);
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "{\"seq\":2}\n{\"seq\":3}"));
	assert_ptr_equal(info[0].path, a);
	assert_ptr_equal(info[2].path, c);
	where = audit_files_where(info, 3, 4, &line);
	assert_ptr_equal(where->path, b);
	assert_int_equal(line, 2);
	assert_int_equal(audit_files_hash_at(fp, 4, hex), EL_OK);
	assert_int_equal(hex[0], '4');
	assert_int_equal(audit_files_hash_at(fp, 1, hex), EL_OK);
	assert_int_equal(hex[0], '1');
	assert_int_equal(audit_files_hash_at(fp, 9, hex), EL_ENOENT);
	fclose(fp);
	free(info);
	/* a gap names both files */
	paths[0] = a;
	paths[1] = c;
	assert_int_equal(audit_files_open(paths, 2, &fp, &info, &w), EL_ECRYPTO);
	assert_non_null(strstr(w.msg, a));
	assert_non_null(strstr(w.msg, c));
	assert_non_null(strstr(w.msg, "missing"));
	/* the same file twice overlaps */
	paths[1] = a;
	assert_int_equal(audit_files_open(paths, 2, &fp, &info, &w), EL_ECRYPTO);
	assert_non_null(strstr(w.msg, "overlap"));
}

static void
head_signed_and_checked(void **state)
{
	unsigned char pk[32], sk[64], pk2[32], sk2[64];
	struct audit_head h, got;
	struct el_why w = {{0}};
	char *doc, *bad;

	(void)state;
	crypto_sign_keypair(pk, sk);
	crypto_sign_keypair(pk2, sk2);
	memset(&h, 0, sizeof(h));
	h.seq = 42;
	memset(h.hash, 'a', 64);
	el_strlcpy(h.time, "2026-12-01T00:00:00.000Z", sizeof(h.time));
	assert_non_null(doc = audit_head_sign(&h, sk));
	assert_int_equal(audit_head_parse(doc, strlen(doc), pk, &got, &w), EL_OK);
	assert_int_equal(got.seq, 42);
	assert_string_equal(got.hash, h.hash);
	assert_int_equal(audit_head_parse(doc, strlen(doc), pk2, &got, &w), EL_ECRYPTO);
	/* each field is signed */
	bad = strdup(doc);
	strstr(bad, "\"seq\":42")[7] = '3';
	assert_int_equal(audit_head_parse(bad, strlen(bad), pk, &got, &w), EL_ECRYPTO);
	free(bad);
	bad = strdup(doc);
	strstr(bad, "aaaa")[0] = 'b';
	assert_int_equal(audit_head_parse(bad, strlen(bad), pk, &got, &w), EL_ECRYPTO);
	free(bad);
	bad = strdup(doc);
	strstr(bad, "2026-12-01")[3] = '7';
	assert_int_equal(audit_head_parse(bad, strlen(bad), pk, &got, &w), EL_ECRYPTO);
	free(bad);
	assert_int_equal(audit_head_parse("{\"seq\":1}", 9, pk, &got, &w), EL_EPARSE);
	assert_int_equal(audit_head_parse("nope", 4, pk, &got, &w), EL_EPARSE);
	free(doc);
}

static void
syslog_lines(void **state)
{
	struct dbuf b;

	(void)state;
	setenv("TZ", "UTC", 1);
	tzset();
	dbuf_init(&b, 256);
	assert_int_equal(audit_syslog_facility("authpriv"), LOG_AUTHPRIV);
	assert_int_equal(audit_syslog_facility("local3"), LOG_LOCAL3);
	assert_int_equal(audit_syslog_facility("kern"), -1);
	/* 2026-11-02T03:04:05Z: a one-digit day is space padded */
	assert_int_equal(audit_syslog_format(&b, LOG_LOCAL3, 1793588645, "host", 77, "audit {}"),
	    EL_OK);
	assert_string_equal(b.p, "<158>Nov  2 03:04:05 host elevated[77]: audit {}");
	assert_int_equal(audit_syslog_format(&b, LOG_AUTHPRIV, 1793588645, "h", 1, "x"), EL_OK);
	assert_string_equal(b.p, "<86>Nov  2 03:04:05 h elevated[1]: x");
	dbuf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(rotated_names),
		cmocka_unit_test_setup_teardown(torn_line_cut, setup, teardown),
		cmocka_unit_test_setup_teardown(rotate_by_size_and_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(files_as_one_chain, setup, teardown),
		cmocka_unit_test(head_signed_and_checked),
		cmocka_unit_test(syslog_lines),
	};

	log_set_level(LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
