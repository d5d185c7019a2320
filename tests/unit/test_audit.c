/*
 * test_audit.c — the tamper-evident audit trail as an auditor checks it: records appended
 * in store transactions form a BLAKE2b chain, the canonical form is exact (checked against
 * an independent implementation), an export verifies, and every edit, drop, reorder, cut,
 * garbage line, rewritten history and foreign or misplaced checkpoint is caught and
 * reported with its line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>
#include <sqlite3.h>

#include "elevate/audit.h"
#include "elevate/el.h"
#include "elevate/log.h"
#include "elevate/store.h"

#define EXPORT_FLAGS (JSON_COMPACT | JSON_SORT_KEYS)
#define ZERO_HEX "0000000000000000000000000000000000000000000000000000000000000000"

struct fx {
	char dir[64];
	char path[128];
	struct store *s;
	unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
	unsigned char pk2[crypto_sign_PUBLICKEYBYTES], sk2[crypto_sign_SECRETKEYBYTES];
};

/* An export: one JSON Lines string per record, each ending in "\n". */
struct lines {
	char **v;
	size_t n;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct el_why w = {{0}};

	if (f == NULL || sodium_init() < 0)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/el_test_audit_XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/elevate.db", f->dir);
	if (store_open(f->path, &f->s, &w) != EL_OK) {
		fprintf(stderr, "store_open: %s\n", w.msg);
		return -1;
	}
	crypto_sign_keypair(f->pk, f->sk);
	crypto_sign_keypair(f->pk2, f->sk2);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	char p[160];

	store_close(f->s);
	unlink(f->path);
	snprintf(p, sizeof(p), "%s-wal", f->path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", f->path);
	unlink(p);
	rmdir(f->dir);
	sodium_memzero(f->sk, sizeof(f->sk));
	sodium_memzero(f->sk2, sizeof(f->sk2));
	free(f);
	return 0;
}

static void
lines_free(struct lines *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static void
lines_push(struct lines *l, const char *text)
{
	char **nv = realloc(l->v, (l->n + 1) * sizeof(*nv));

	assert_non_null(nv);
	l->v = nv;
	l->v[l->n] = strdup(text);
	assert_non_null(l->v[l->n]);
	l->n++;
}

/* A record as the exporter writes it: compact, sorted, one line. */
static char *
line_of(json_t *rec)
{
	char *s = json_dumps(rec, EXPORT_FLAGS), *out;
	size_t n;

	assert_non_null(s);
	n = strlen(s) + 2;
	out = malloc(n);
	assert_non_null(out);
	snprintf(out, n, "%s\n", s);
	free(s);
	return out;
}

/* Exports the whole chain the way engine.c does (store_audit_list -> json_dumps). */
static void
export(struct fx *f, struct lines *l)
{
	struct store_audit_filter af;
	json_t *recs = NULL, *rec;
	size_t i;

	memset(l, 0, sizeof(*l));
	memset(&af, 0, sizeof(af));
	af.limit = 100000;
	assert_int_equal(store_audit_list(f->s, &af, &recs), EL_OK);
	json_array_foreach(recs, i, rec) {
		char *s = line_of(rec);

		lines_push(l, s);
		free(s);
	}
	json_decref(recs);
}

/* Runs the verifier over the concatenation of lines, read from a real file. */
static enum el_err
verify(const struct lines *l, const unsigned char *pk, int require_start,
    struct audit_verify_report *rep)
{
	FILE *fp = tmpfile();
	size_t i;
	enum el_err e;

	assert_non_null(fp);
	for (i = 0; i < l->n; i++)
		assert_int_equal(fputs(l->v[i], fp) >= 0, 1);
	rewind(fp);
	e = audit_verify_stream(fp, pk, require_start, rep);
	fclose(fp);
	return e;
}

static enum el_err
verify_text(const char *text, const unsigned char *pk, int require_start,
    struct audit_verify_report *rep)
{
	struct lines l = {NULL, 0};
	enum el_err e;

	lines_push(&l, text);
	e = verify(&l, pk, require_start, rep);
	lines_free(&l);
	return e;
}

/* Appends n ordinary records in one transaction, varied so that every field is used. */
static void
append_n(struct fx *f, int n)
{
	struct el_why w = {{0}};
	int i;

	assert_int_equal(store_begin(f->s), EL_OK);
	for (i = 0; i < n; i++) {
		json_t *data = json_pack("{s:i, s:s}", "i", i, "reason", "fix \xe2\x9c\x93");

		if (audit_append(f->s, i % 2 ? "alice" : "carol", i % 3 ? "request.created" :
		    "request.approved", i % 4 ? "req_1" : NULL, i % 5 ? data : NULL, &w) != EL_OK)
			fail_msg("audit_append: %s", w.msg);
		json_decref(data);
	}
	assert_int_equal(store_commit(f->s), EL_OK);
}

static void
checkpoint(struct fx *f)
{
	struct el_why w = {{0}};

	assert_int_equal(store_begin(f->s), EL_OK);
	if (audit_checkpoint(f->s, NULL, f->sk, &w) != EL_OK)
		fail_msg("audit_checkpoint: %s", w.msg);
	assert_int_equal(store_commit(f->s), EL_OK);
}

/* 5 records, checkpoint (seq 6 signs 5), 5 records, checkpoint (seq 12 signs 11). */
static void
standard_chain(struct fx *f, struct lines *l)
{
	append_n(f, 5);
	checkpoint(f);
	append_n(f, 5);
	checkpoint(f);
	export(f, l);
	assert_int_equal(l->n, 12);
}

/* Builds one record line from parts, hashing it onto prev; *hash gets its hash. */
static char *
forge(int64_t seq, const unsigned char prev[AUDIT_HASH_BYTES], const char *actor,
    const char *event, const char *rid, json_t *data, unsigned char hash[AUDIT_HASH_BYTES])
{
	struct audit_rec r;
	char *canon, *line;
	json_t *j;

	memset(&r, 0, sizeof(r));
	r.seq = seq;
	el_strlcpy(r.time, "2026-11-22T03:26:00.000Z", sizeof(r.time));
	r.actor = (char *)(uintptr_t)actor;
	r.event = (char *)(uintptr_t)event;
	r.request_id = (char *)(uintptr_t)rid;
	r.data = data;
	memcpy(r.prev_hash, prev, AUDIT_HASH_BYTES);
	canon = audit_canonical(&r);
	assert_non_null(canon);
	audit_chain_hash(prev, canon, r.hash);
	free(canon);
	memcpy(hash, r.hash, AUDIT_HASH_BYTES);
	j = audit_rec_json(&r);
	assert_non_null(j);
	line = line_of(j);
	json_decref(j);
	return line;
}

/*
 * What someone with write access to the export (but not the checkpoint key) can do:
 * recompute every hash and link after changing records. The hash is unkeyed by design.
 */
static void
rechain(struct lines *l)
{
	unsigned char prev[AUDIT_HASH_BYTES], h[AUDIT_HASH_BYTES];
	size_t i;

	memset(prev, 0, sizeof(prev));
	for (i = 0; i < l->n; i++) {
		struct audit_rec r;
		json_t *j = json_loads(l->v[i], 0, NULL);

		assert_non_null(j);
		assert_int_equal(audit_rec_from_json(j, &r, NULL), EL_OK);
		json_decref(j);
		free(l->v[i]);
		l->v[i] = forge(r.seq, prev, r.actor, r.event, r.request_id, r.data, h);
		memcpy(prev, h, sizeof(prev));
		audit_rec_free(&r);
	}
}

/* Sets key in record line i to a new value (stolen), leaving hashes as they are. */
static void
edit(struct lines *l, size_t i, const char *key, json_t *v)
{
	json_t *j = json_loads(l->v[i], 0, NULL);

	assert_non_null(j);
	assert_int_equal(json_object_set_new(j, key, v), 0);
	free(l->v[i]);
	l->v[i] = line_of(j);
	json_decref(j);
}

static void
drop(struct lines *l, size_t i)
{
	free(l->v[i]);
	memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof(l->v[0]));
	l->n--;
}

static void
expect_bad(enum el_err e, enum el_err want, const struct audit_verify_report *rep,
    int64_t line, const char *needle)
{
	if (e != want)
		fail_msg("verify returned %d, want %d (problem: %s)", e, want, rep->problem);
	if (rep->bad_line != line)
		fail_msg("bad line %lld, want %lld (problem: %s)", (long long)rep->bad_line,
		    (long long)line, rep->problem);
	if (needle != NULL && strstr(rep->problem, needle) == NULL)
		fail_msg("problem \"%s\" does not mention \"%s\"", rep->problem, needle);
}

/* ---- appending and the chain ---- */

static void
append_links_records(void **state)
{
	struct fx *f = *state;
	struct lines l;
	unsigned char prev[AUDIT_HASH_BYTES];
	size_t i;
	int64_t before = el_now(), after;

	append_n(f, 7);
	after = el_now();
	export(f, &l);
	assert_int_equal(l.n, 7);
	memset(prev, 0, sizeof(prev));
	for (i = 0; i < l.n; i++) {
		json_t *j = json_loads(l.v[i], 0, NULL);
		struct audit_rec r;
		unsigned char h[AUDIT_HASH_BYTES];
		crypto_generichash_state gs;
		char *canon;
		int64_t t;

		assert_non_null(j);
		assert_int_equal(audit_rec_from_json(j, &r, NULL), EL_OK);
		assert_int_equal(r.seq, (int64_t)i + 1);
		/* Record k's prev_hash is record k-1's hash; the first links to zeros. */
		assert_memory_equal(r.prev_hash, prev, AUDIT_HASH_BYTES);
		if (i == 0)
			assert_string_equal(json_string_value(json_object_get(j, "prev_hash")),
			    ZERO_HEX);
		/* hash = BLAKE2b-256(prev_hash || canonical), computed here independently. */
		canon = audit_canonical(&r);
		crypto_generichash_init(&gs, NULL, 0, AUDIT_HASH_BYTES);
		crypto_generichash_update(&gs, prev, AUDIT_HASH_BYTES);
		crypto_generichash_update(&gs, (const unsigned char *)canon, strlen(canon));
		crypto_generichash_final(&gs, h, AUDIT_HASH_BYTES);
		assert_memory_equal(h, r.hash, AUDIT_HASH_BYTES);
		free(canon);
		/* Times in ms, UTC, from now. */
		assert_int_equal(strlen(r.time), 24);
		assert_int_equal(r.time[19], '.');
		assert_int_equal(r.time[23], 'Z');
		assert_int_equal(el_parse_time(r.time, &t), EL_OK);
		assert_true(t >= before && t <= after + 1);   /* time(2) may lag the ms clock */
		/* NULL request_id exports as null; NULL data as {}. */
		if (i % 4 == 0) {
			assert_null(r.request_id);
			assert_true(json_is_null(json_object_get(j, "request_id")));
		} else
			assert_string_equal(r.request_id, "req_1");
		if (i % 5 == 0)
			assert_int_equal(json_object_size(r.data), 0);
		else
			assert_int_equal(json_integer_value(json_object_get(r.data, "i")), (int)i);
		memcpy(prev, r.hash, sizeof(prev));
		audit_rec_free(&r);
		json_decref(j);
	}
	lines_free(&l);
}

static void
rolled_back_records_leave_no_gap(void **state)
{
	struct fx *f = *state;
	struct audit_verify_report rep;
	struct lines l;

	append_n(f, 3);
	assert_int_equal(store_begin(f->s), EL_OK);
	assert_int_equal(audit_append(f->s, "alice", "request.created", NULL, NULL, NULL), EL_OK);
	assert_int_equal(audit_append(f->s, "alice", "request.created", NULL, NULL, NULL), EL_OK);
	store_rollback(f->s);
	append_n(f, 2);
	export(f, &l);
	assert_int_equal(l.n, 5);
	assert_int_equal(verify(&l, NULL, 1, &rep), EL_OK);
	assert_int_equal(rep.last_seq, 5);
	lines_free(&l);
}

static void
oversized_record_refused(void **state)
{
	struct fx *f = *state;
	struct el_why w = {{0}};
	struct lines l;
	char *big = malloc(AUDIT_MAX_RECORD + 10);
	json_t *data;

	assert_non_null(big);
	memset(big, 'x', AUDIT_MAX_RECORD + 9);
	big[AUDIT_MAX_RECORD + 9] = '\0';
	data = json_pack("{s:s}", "blob", big);
	free(big);
	assert_int_equal(store_begin(f->s), EL_OK);
	assert_int_equal(audit_append(f->s, "alice", "request.created", "r", data, &w),
	    EL_ETOOBIG);
	assert_non_null(strstr(w.msg, "request.created"));
	/* Nothing was written; the transaction goes on. */
	assert_int_equal(audit_append(f->s, "alice", "request.denied", "r", NULL, NULL), EL_OK);
	assert_int_equal(store_commit(f->s), EL_OK);
	json_decref(data);
	export(f, &l);
	assert_int_equal(l.n, 1);
	assert_non_null(strstr(l.v[0], "request.denied"));
	lines_free(&l);
}

/* ---- canonical form ---- */

#define UTF8_REASON "\xc3\x9c" "berpr" "\xc3\xbc" "fung \xe2\x9c\x93 \xe7\x9b\xa3\xe6\x9f\xbb"

static void
canonical_exact(void **state)
{
	struct audit_rec r;
	unsigned char zero[AUDIT_HASH_BYTES], h[AUDIT_HASH_BYTES];
	char hex[2 * AUDIT_HASH_BYTES + 1], *c;

	(void)state;
	memset(&r, 0, sizeof(r));
	r.seq = 7;
	el_strlcpy(r.time, "2026-11-22T03:26:00.123Z", sizeof(r.time));
	r.actor = "alice";
	r.event = "request.created";
	r.request_id = "req_x";
	r.data = json_pack("{s:s, s:[i,i], s:{s:i, s:s}, s:s, s:s}", "reason", UTF8_REASON,
	    "b", 1, 2, "a", "z", 1, "y", "\"q\"", "path", "/v1/x", "text", "l1\nl2");
	assert_non_null(r.data);
	c = audit_canonical(&r);
	/* Sorted keys at every level, no blanks, UTF-8 as is, '/' unescaped. The same string
	 * comes from Python's json.dumps(sort_keys=True, separators=(',',':'),
	 * ensure_ascii=False). */
	assert_string_equal(c, "{\"actor\":\"alice\",\"data\":{\"a\":{\"y\":\"\\\"q\\\"\",\"z\":1},"
	    "\"b\":[1,2],\"path\":\"/v1/x\",\"reason\":\"" UTF8_REASON "\",\"text\":\"l1\\nl2\"},"
	    "\"event\":\"request.created\",\"request_id\":\"req_x\",\"seq\":7,"
	    "\"time\":\"2026-11-22T03:26:00.123Z\"}");
	/* hashlib.blake2b(b'\0'*32 + canonical, digest_size=32) */
	memset(zero, 0, sizeof(zero));
	audit_chain_hash(zero, c, h);
	el_hex(h, sizeof(h), hex);
	assert_string_equal(hex, "eecb016af7fddee77a7bddde21826a18be622ea64b78157af57e5d0659c5adc0");
	audit_chain_hash(h, c, h);
	el_hex(h, sizeof(h), hex);
	assert_string_equal(hex, "2f73e05dae84848d98e733b017527a0d6ead025722ecdbde65c5f40c672996ea");
	free(c);

	/* Without a request id it is null, not missing; data keeps its place. */
	r.request_id = NULL;
	json_decref(r.data);
	r.data = json_object();
	c = audit_canonical(&r);
	assert_string_equal(c, "{\"actor\":\"alice\",\"data\":{},\"event\":\"request.created\","
	    "\"request_id\":null,\"seq\":7,\"time\":\"2026-11-22T03:26:00.123Z\"}");
	free(c);
	json_decref(r.data);
}

static void
rec_json_round_trip(void **state)
{
	struct audit_rec r, back;
	json_t *j, *k;
	static const char *const bad[] = {
		"{}",
		/* extra field */
		"{\"seq\":1,\"time\":\"t\",\"actor\":\"a\",\"event\":\"e\",\"request_id\":null,"
		"\"data\":{},\"prev_hash\":\"" ZERO_HEX "\",\"hash\":\"" ZERO_HEX "\",\"x\":1}",
		/* missing hash */
		"{\"seq\":1,\"time\":\"t\",\"actor\":\"a\",\"event\":\"e\",\"request_id\":null,"
		"\"data\":{},\"prev_hash\":\"" ZERO_HEX "\"}",
		/* short hash */
		"{\"seq\":1,\"time\":\"t\",\"actor\":\"a\",\"event\":\"e\",\"request_id\":null,"
		"\"data\":{},\"prev_hash\":\"" ZERO_HEX "\",\"hash\":\"00\"}",
		/* non-hex hash */
		"{\"seq\":1,\"time\":\"t\",\"actor\":\"a\",\"event\":\"e\",\"request_id\":null,"
		"\"data\":{},\"prev_hash\":\"" ZERO_HEX "\",\"hash\":\"zz"
		"00000000000000000000000000000000000000000000000000000000000000\"}",
		/* data not an object */
		"{\"seq\":1,\"time\":\"t\",\"actor\":\"a\",\"event\":\"e\",\"request_id\":null,"
		"\"data\":[],\"prev_hash\":\"" ZERO_HEX "\",\"hash\":\"" ZERO_HEX "\"}",
		/* request_id a number */
		"{\"seq\":1,\"time\":\"t\",\"actor\":\"a\",\"event\":\"e\",\"request_id\":5,"
		"\"data\":{},\"prev_hash\":\"" ZERO_HEX "\",\"hash\":\"" ZERO_HEX "\"}",
		/* seq a string */
		"{\"seq\":\"1\",\"time\":\"t\",\"actor\":\"a\",\"event\":\"e\",\"request_id\":null,"
		"\"data\":{},\"prev_hash\":\"" ZERO_HEX "\",\"hash\":\"" ZERO_HEX "\"}",
		/* time longer than the field */
		"{\"seq\":1,\"time\":\"2026-11-22T03:26:00.123Z-and-much-more\",\"actor\":\"a\","
		"\"event\":\"e\",\"request_id\":null,\"data\":{},\"prev_hash\":\"" ZERO_HEX "\","
		"\"hash\":\"" ZERO_HEX "\"}",
	};
	size_t i;

	(void)state;
	memset(&r, 0, sizeof(r));
	r.seq = 42;
	el_strlcpy(r.time, "2026-11-22T03:26:00.123Z", sizeof(r.time));
	r.actor = "system";
	r.event = "grant.ended";
	r.request_id = "req_9";
	r.data = json_pack("{s:b}", "early", 1);
	for (i = 0; i < AUDIT_HASH_BYTES; i++) {
		r.prev_hash[i] = (unsigned char)i;
		r.hash[i] = (unsigned char)(0xff - i);
	}
	j = audit_rec_json(&r);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "prev_hash")),
	    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
	assert_int_equal(audit_rec_from_json(j, &back, NULL), EL_OK);
	assert_int_equal(back.seq, 42);
	assert_string_equal(back.time, r.time);
	assert_string_equal(back.actor, "system");
	assert_string_equal(back.event, "grant.ended");
	assert_string_equal(back.request_id, "req_9");
	assert_true(json_equal(back.data, r.data));
	assert_memory_equal(back.prev_hash, r.prev_hash, AUDIT_HASH_BYTES);
	assert_memory_equal(back.hash, r.hash, AUDIT_HASH_BYTES);
	audit_rec_free(&back);
	/* The parsed record owns its data: the JSON may go away. */
	assert_int_equal(audit_rec_from_json(j, &back, NULL), EL_OK);
	json_decref(j);
	assert_true(json_is_true(json_object_get(back.data, "early")));
	audit_rec_free(&back);
	json_decref(r.data);

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct el_why w = {{0}};

		k = json_loads(bad[i], 0, NULL);
		assert_non_null(k);
		if (audit_rec_from_json(k, &back, &w) != EL_EPARSE)
			fail_msg("bad record %zu accepted", i);
		assert_true(w.msg[0] != '\0');
		json_decref(k);
	}
}

/* ---- verification ---- */

static void
verify_intact(void **state)
{
	struct fx *f = *state;
	struct audit_verify_report rep;
	struct lines l;
	json_t *cp;

	standard_chain(f, &l);
	assert_int_equal(verify(&l, f->pk, 1, &rep), EL_OK);
	assert_int_equal(rep.records, 12);
	assert_int_equal(rep.first_seq, 1);
	assert_int_equal(rep.last_seq, 12);
	assert_int_equal(rep.checkpoints, 2);
	assert_int_equal(rep.last_signed_seq, 11);
	assert_int_equal(rep.bad_line, 0);
	assert_string_equal(rep.problem, "");

	/* Without a key the chain is still checked, the checkpoints are not. */
	assert_int_equal(verify(&l, NULL, 1, &rep), EL_OK);
	assert_int_equal(rep.records, 12);
	assert_int_equal(rep.checkpoints, 0);
	assert_int_equal(rep.last_signed_seq, 0);

	/* The checkpoint is what audit.h documents: Ed25519 over
	 * "elevate-audit-checkpoint\n" N "\n" HEX, where HEX is record N's hash. */
	cp = json_loads(l.v[5], 0, NULL);
	assert_non_null(cp);
	assert_string_equal(json_string_value(json_object_get(cp, "event")),
	    AUDIT_CHECKPOINT_EVENT);
	{
		json_t *d = json_object_get(cp, "data"), *r5 = json_loads(l.v[4], 0, NULL);
		char msg[200];
		unsigned char sig[crypto_sign_BYTES];
		size_t n;

		assert_int_equal(json_integer_value(json_object_get(d, "signed_seq")), 5);
		assert_string_equal(json_string_value(json_object_get(d, "signed_hash")),
		    json_string_value(json_object_get(r5, "hash")));
		snprintf(msg, sizeof(msg), "elevate-audit-checkpoint\n5\n%s",
		    json_string_value(json_object_get(r5, "hash")));
		assert_int_equal(el_b64_decode(json_string_value(json_object_get(d, "sig")), sig,
		    sizeof(sig), &n), EL_OK);
		assert_int_equal(n, crypto_sign_BYTES);
		assert_int_equal(crypto_sign_verify_detached(sig, (const unsigned char *)msg,
		    strlen(msg), f->pk), 0);
		json_decref(r5);
	}
	json_decref(cp);

	/* Blank lines (an editor's trailing newline) are not records. */
	lines_push(&l, "\n");
	assert_int_equal(verify(&l, f->pk, 1, &rep), EL_OK);
	assert_int_equal(rep.records, 12);
	lines_free(&l);
}

static void
verify_edited(void **state)
{
	struct fx *f = *state;
	struct audit_verify_report rep;
	struct lines l;
	size_t i;
	static const char *const keys[] = {"actor", "event", "time", "request_id", "data", "seq"};

	standard_chain(f, &l);
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		struct lines c = {NULL, 0};
		json_t *v;
		size_t k;

		for (k = 0; k < l.n; k++)
			lines_push(&c, l.v[k]);
		if (strcmp(keys[i], "seq") == 0)
			v = json_integer(30);
		else if (strcmp(keys[i], "data") == 0)
			v = json_pack("{s:i, s:s}", "i", 99, "reason", "fix \xe2\x9c\x93");
		else if (strcmp(keys[i], "request_id") == 0)
			v = json_string("req_other");
		else if (strcmp(keys[i], "time") == 0)
			v = json_string("2020-01-01T00:00:00.000Z");
		else
			v = json_string("mallory");
		edit(&c, 2, keys[i], v);
		if (verify(&c, f->pk, 1, &rep) != EL_ECRYPTO)
			fail_msg("edited %s not detected: %s", keys[i], rep.problem);
		assert_int_equal(rep.bad_line, 3);
		assert_int_equal(rep.records, 2);   /* the lines before were fine */
		lines_free(&c);
	}
	/* The edited record's own hash fixed up: the next link breaks. */
	{
		unsigned char prev[AUDIT_HASH_BYTES], h[AUDIT_HASH_BYTES];
		json_t *j = json_loads(l.v[2], 0, NULL);
		struct audit_rec r;

		assert_int_equal(audit_rec_from_json(j, &r, NULL), EL_OK);
		memcpy(prev, r.prev_hash, sizeof(prev));
		free(l.v[2]);
		l.v[2] = forge(r.seq, prev, "mallory", r.event, r.request_id, r.data, h);
		audit_rec_free(&r);
		json_decref(j);
		expect_bad(verify(&l, NULL, 1, &rep), EL_ECRYPTO, &rep, 4, "prev_hash");
	}
	lines_free(&l);
}

static void
verify_dropped_reordered_cut(void **state)
{
	struct fx *f = *state;
	struct audit_verify_report rep;
	struct lines l;
	char *t;

	standard_chain(f, &l);

	/* Dropped record 4: line 4 now holds seq 5. */
	{
		struct lines c = {NULL, 0};
		size_t k;

		for (k = 0; k < l.n; k++)
			lines_push(&c, l.v[k]);
		drop(&c, 3);
		expect_bad(verify(&c, f->pk, 1, &rep), EL_ECRYPTO, &rep, 4, "dropped");
		assert_int_equal(rep.records, 3);
		assert_int_equal(rep.last_seq, 3);
		lines_free(&c);
	}
	/* Records 3 and 4 swapped. */
	t = l.v[2];
	l.v[2] = l.v[3];
	l.v[3] = t;
	expect_bad(verify(&l, f->pk, 1, &rep), EL_ECRYPTO, &rep, 3, "reordered");
	l.v[3] = l.v[2];
	l.v[2] = t;
	assert_int_equal(verify(&l, f->pk, 1, &rep), EL_OK);

	/* The last line duplicated. */
	lines_push(&l, l.v[l.n - 1]);
	expect_bad(verify(&l, f->pk, 1, &rep), EL_ECRYPTO, &rep, 13, NULL);
	drop(&l, l.n - 1);

	/* First line cut: refused when the export must be complete... */
	drop(&l, 0);
	expect_bad(verify(&l, f->pk, 1, &rep), EL_ECRYPTO, &rep, 1, "seq 1");
	/* ...and a valid tail otherwise, which says where it starts. */
	assert_int_equal(verify(&l, f->pk, 0, &rep), EL_OK);
	assert_int_equal(rep.first_seq, 2);
	assert_int_equal(rep.last_seq, 12);
	assert_int_equal(rep.records, 11);
	assert_int_equal(rep.checkpoints, 2);

	/* Cutting the end cannot be seen in the chain; the report shows what the last
	 * checkpoint covers so the auditor can tell. */
	drop(&l, l.n - 1);
	assert_int_equal(verify(&l, f->pk, 0, &rep), EL_OK);
	assert_int_equal(rep.last_seq, 11);
	assert_int_equal(rep.last_signed_seq, 5);
	lines_free(&l);
}

static void
verify_garbage(void **state)
{
	struct fx *f = *state;
	struct audit_verify_report rep;
	struct lines l;
	char *saved;
	size_t n;

	standard_chain(f, &l);
	saved = l.v[2];

	l.v[2] = "this is not json\n";
	expect_bad(verify(&l, f->pk, 1, &rep), EL_EPARSE, &rep, 3, "line 3");
	assert_int_equal(rep.records, 2);
	l.v[2] = "{\"hello\": \"world\"}\n";
	expect_bad(verify(&l, f->pk, 1, &rep), EL_EPARSE, &rep, 3, "not an audit record");
	l.v[2] = "[1,2,3]\n";
	expect_bad(verify(&l, f->pk, 1, &rep), EL_EPARSE, &rep, 3, NULL);
	l.v[2] = "\x01\x02\xff\xfe\n";
	expect_bad(verify(&l, f->pk, 1, &rep), EL_EPARSE, &rep, 3, NULL);

	/* Half a record: a write cut short. */
	n = strlen(saved) / 2;
	l.v[2] = strndup(saved, n);
	expect_bad(verify(&l, f->pk, 1, &rep), EL_EPARSE, &rep, 3, NULL);
	free(l.v[2]);

	/* A key given twice cannot smuggle a second value past the hash. */
	{
		size_t len = strlen(saved);
		char *dup = malloc(len + 40);

		assert_non_null(dup);
		memcpy(dup, saved, len - 2);   /* drop "}\n" */
		snprintf(dup + len - 2, 40, ",\"actor\":\"mallory\"}\n");
		l.v[2] = dup;
		expect_bad(verify(&l, f->pk, 1, &rep), EL_EPARSE, &rep, 3, NULL);
		free(dup);
	}
	l.v[2] = saved;
	assert_int_equal(verify(&l, f->pk, 1, &rep), EL_OK);
	lines_free(&l);

	/* Nothing at all is not an intact log. */
	memset(&l, 0, sizeof(l));
	assert_int_equal(verify(&l, NULL, 0, &rep), EL_EPARSE);
	assert_true(rep.problem[0] != '\0');
	assert_int_equal(verify_text("\n\n", NULL, 0, &rep), EL_EPARSE);

	/* A line beyond the ceiling is refused, not parsed. */
	{
		size_t big = AUDIT_MAX_RECORD + 4096;
		char *line = malloc(big + 2);

		assert_non_null(line);
		memset(line, ' ', big);
		line[0] = '{';
		line[big - 1] = '}';
		line[big] = '\n';
		line[big + 1] = '\0';
		expect_bad(verify_text(line, NULL, 0, &rep), EL_EPARSE, &rep, 1, "longer");
		free(line);
	}
}

static void
verify_checkpoints(void **state)
{
	struct fx *f = *state;
	struct audit_verify_report rep;
	struct lines l;

	standard_chain(f, &l);

	/* Another key: the first checkpoint (line 6) is refused. */
	expect_bad(verify(&l, f->pk2, 1, &rep), EL_ECRYPTO, &rep, 6, "checkpoint");
	assert_int_equal(rep.records, 5);
	assert_int_equal(rep.checkpoints, 0);
	assert_int_equal(rep.last_signed_seq, 0);

	/* History rewritten with every hash recomputed: the chain alone cannot tell... */
	edit(&l, 1, "actor", json_string("mallory"));
	rechain(&l);
	assert_int_equal(verify(&l, NULL, 1, &rep), EL_OK);
	/* ...the signed checkpoint can. */
	expect_bad(verify(&l, f->pk, 1, &rep), EL_ECRYPTO, &rep, 6, "checkpoint");
	lines_free(&l);

	/* A checkpoint whose signature was altered (and the chain fixed up). */
	export(f, &l);
	assert_int_equal(l.n, 12);
	assert_int_equal(verify(&l, f->pk, 1, &rep), EL_OK);
	{
		json_t *j = json_loads(l.v[5], 0, NULL), *d;
		char *s;

		d = json_deep_copy(json_object_get(j, "data"));
		s = strdup(json_string_value(json_object_get(d, "sig")));
		s[10] = s[10] == 'A' ? 'B' : 'A';
		json_object_set_new(d, "sig", json_string(s));
		free(s);
		edit(&l, 5, "data", d);
		json_decref(j);
	}
	rechain(&l);
	expect_bad(verify(&l, f->pk, 1, &rep), EL_ECRYPTO, &rep, 6, "checkpoint");
	assert_int_equal(verify(&l, NULL, 1, &rep), EL_OK);
	lines_free(&l);
}

static void
checkpoint_of_empty_chain(void **state)
{
	struct fx *f = *state;
	struct audit_verify_report rep;
	struct lines l;

	checkpoint(f);
	append_n(f, 2);
	export(f, &l);
	assert_int_equal(l.n, 3);
	assert_non_null(strstr(l.v[0], "\"signed_seq\":0"));
	assert_non_null(strstr(l.v[0], "\"signed_hash\":\"" ZERO_HEX "\""));
	assert_int_equal(verify(&l, f->pk, 1, &rep), EL_OK);
	assert_int_equal(rep.checkpoints, 1);
	assert_int_equal(rep.records, 3);
	lines_free(&l);
}

/*
 * A checkpoint signs the head just before it (audit_checkpoint: signed_seq = seq - 1). A
 * genuine checkpoint copied to an earlier position of a forged chain must not vouch for
 * records it never saw: here all of seq 1..11 are forged, yet a checkpoint "covering" 11
 * is offered as record 11.
 */
static void
checkpoint_moved_earlier(void **state)
{
	struct fx *f = *state;
	struct audit_verify_report rep;
	struct lines real, fake = {NULL, 0};
	unsigned char prev[AUDIT_HASH_BYTES], h[AUDIT_HASH_BYTES];
	json_t *cp, *data;
	int64_t seq;
	char *line;

	standard_chain(f, &real);
	cp = json_loads(real.v[11], 0, NULL);   /* seq 12, signs seq 11 */
	data = json_object_get(cp, "data");
	assert_int_equal(json_integer_value(json_object_get(data, "signed_seq")), 11);

	memset(prev, 0, sizeof(prev));
	for (seq = 1; seq <= 10; seq++) {
		json_t *d = json_pack("{s:s}", "note", "forged");

		line = forge(seq, prev, "mallory", "request.approved", "req_1", d, h);
		json_decref(d);
		lines_push(&fake, line);
		free(line);
		memcpy(prev, h, sizeof(prev));
	}
	line = forge(11, prev, "system", AUDIT_CHECKPOINT_EVENT, NULL, data, h);
	lines_push(&fake, line);
	free(line);
	json_decref(cp);

	if (verify(&fake, f->pk, 1, &rep) == EL_OK)
		fail_msg("forged chain accepted: %lld checkpoint(s), last_signed_seq %lld of "
		    "%lld records", (long long)rep.checkpoints, (long long)rep.last_signed_seq,
		    (long long)rep.records);
	assert_int_equal(rep.bad_line, 11);
	lines_free(&fake);
	lines_free(&real);
}

/*
 * Sequence numbers come from the file. A record at seq INT64_MAX makes the verifier
 * compute INT64_MAX + 1 for the next expected seq (signed overflow: undefined behaviour,
 * in practice INT64_MIN), so a chain INT64_MAX, INT64_MIN passes as "contiguous" with a
 * report whose last_seq is below its first_seq. Real seqs start at 1 and never get there.
 */
static void
seq_overflow_refused(void **state)
{
	struct audit_verify_report rep;
	struct lines l = {NULL, 0};
	unsigned char prev[AUDIT_HASH_BYTES], h[AUDIT_HASH_BYTES];
	json_t *d = json_object();
	char *line;

	(void)state;
	memset(prev, 0x11, sizeof(prev));
	line = forge(INT64_MAX, prev, "system", "x", NULL, d, h);
	lines_push(&l, line);
	free(line);
	line = forge(INT64_MIN, h, "system", "x", NULL, d, h);
	lines_push(&l, line);
	free(line);
	json_decref(d);
	if (verify(&l, NULL, 0, &rep) == EL_OK)
		fail_msg("seq INT64_MAX then INT64_MIN accepted: first_seq %lld last_seq %lld",
		    (long long)rep.first_seq, (long long)rep.last_seq);
	lines_free(&l);
}

/* ---- reading the trail back ---- */

static void
list_filters(void **state)
{
	struct fx *f = *state;
	struct store_audit_filter af;
	struct store_request r;
	json_t *recs;
	char since[32];

	memset(&r, 0, sizeof(r));
	el_strlcpy(r.id, "req_p", sizeof(r.id));
	el_strlcpy(r.profile, "prod-readonly", sizeof(r.profile));
	el_strlcpy(r.requester, "alice", sizeof(r.requester));
	r.state = RS_PENDING;
	r.duration = 900;
	r.role_arn = "arn:aws:iam::111122223333:role/R";
	r.created_at = 1;
	r.pending_until = 2;
	assert_int_equal(store_request_insert(f->s, &r), EL_OK);
	el_strlcpy(r.id, "req_d", sizeof(r.id));
	el_strlcpy(r.profile, "dev", sizeof(r.profile));
	assert_int_equal(store_request_insert(f->s, &r), EL_OK);

	assert_int_equal(store_begin(f->s), EL_OK);
	assert_int_equal(audit_append(f->s, "alice", "request.created", "req_p", NULL, NULL), EL_OK);
	assert_int_equal(audit_append(f->s, "alice", "request.created", "req_d", NULL, NULL), EL_OK);
	assert_int_equal(audit_append(f->s, "carol", "request.approved", "req_p", NULL, NULL), EL_OK);
	assert_int_equal(audit_append(f->s, "system", "grant.ended", "req_p", NULL, NULL), EL_OK);
	assert_int_equal(audit_append(f->s, "anonymous", "auth.refused", NULL, NULL, NULL), EL_OK);
	assert_int_equal(audit_append(f->s, "alice", "requests.other", NULL, NULL, NULL), EL_OK);
	assert_int_equal(store_commit(f->s), EL_OK);

#define LIST(n) do { assert_int_equal(store_audit_list(f->s, &af, &recs), EL_OK); \
	assert_int_equal(json_array_size(recs), (n)); } while (0)
#define SEQ(i) json_integer_value(json_object_get(json_array_get(recs, (i)), "seq"))

	memset(&af, 0, sizeof(af));
	af.actor = "alice";
	LIST(3);
	assert_int_equal(SEQ(0), 1);
	assert_int_equal(SEQ(2), 6);
	json_decref(recs);

	memset(&af, 0, sizeof(af));
	af.event = "request";   /* a prefix matches the dotted family only */
	LIST(3);
	json_decref(recs);
	af.event = "request.approved";
	LIST(1);
	assert_int_equal(SEQ(0), 3);
	json_decref(recs);

	memset(&af, 0, sizeof(af));
	af.request_id = "req_p";
	LIST(3);
	json_decref(recs);

	memset(&af, 0, sizeof(af));
	af.profile = "dev";
	LIST(1);
	assert_int_equal(SEQ(0), 2);
	json_decref(recs);

	memset(&af, 0, sizeof(af));
	af.since_seq = 4;
	LIST(2);
	assert_int_equal(SEQ(0), 5);
	json_decref(recs);
	af.limit = 1;
	LIST(1);
	assert_int_equal(SEQ(0), 5);
	json_decref(recs);

	/* since_time as the engine passes it ("...SS", the Z dropped so it prefixes the ms
	 * form): every record of this second and later. */
	memset(&af, 0, sizeof(af));
	LIST(6);
	el_strlcpy(since, json_string_value(json_object_get(json_array_get(recs, 0), "time")),
	    sizeof(since));
	json_decref(recs);
	since[19] = '\0';
	af.since_time = since;
	LIST(6);
	json_decref(recs);
	af.since_time = "2999-01-01T00:00:00";
	LIST(0);
	json_decref(recs);

	/* Combined filters, and values are values, not SQL. */
	memset(&af, 0, sizeof(af));
	af.actor = "alice";
	af.request_id = "req_d";
	LIST(1);
	json_decref(recs);
	af.actor = "x' OR '1'='1";
	LIST(0);
	json_decref(recs);
#undef LIST
#undef SEQ
}

/* ---- key rotation, the store's own check, the line shortcut ---- */

static void
rotate(struct fx *f, const unsigned char *old_sk, const unsigned char *new_sk)
{
	struct el_why w = {{0}};

	assert_int_equal(store_begin(f->s), EL_OK);
	if (audit_rotate(f->s, NULL, old_sk, new_sk, &w) != EL_OK)
		fail_msg("audit_rotate: %s", w.msg);
	assert_int_equal(store_commit(f->s), EL_OK);
}

static void
checkpoint_with(struct fx *f, const unsigned char *sk)
{
	struct el_why w = {{0}};

	assert_int_equal(store_begin(f->s), EL_OK);
	assert_int_equal(audit_checkpoint(f->s, NULL, sk, &w), EL_OK);
	assert_int_equal(store_commit(f->s), EL_OK);
}

static void
rotation_verifies_with_first_key(void **state)
{
	struct fx *f = *state;
	struct audit_verify_report rep;
	struct lines l;

	append_n(f, 3);
	checkpoint(f);                       /* seq 4, key 1 */
	append_n(f, 2);
	rotate(f, f->sk, f->sk2);            /* seq 7 rotation, seq 8 checkpoint by key 2 */
	append_n(f, 3);
	checkpoint_with(f, f->sk2);          /* seq 12 */
	export(f, &l);
	assert_int_equal(l.n, 12);
	assert_non_null(strstr(l.v[6], "\"event\":\"audit.key_rotated\""));
	assert_int_equal(verify(&l, f->pk, 1, &rep), EL_OK);
	assert_int_equal(rep.rotations, 1);
	assert_int_equal(rep.checkpoints, 3);
	assert_int_equal(rep.last_signed_seq, 11);
	/* the second key alone cannot verify what the first signed */
	expect_bad(verify(&l, f->pk2, 1, &rep), EL_ECRYPTO, &rep, 4, "checkpoint");
	/* a chain read from after the rotation on needs the key it names */
	while (l.n > 5)
		drop(&l, 0);
	assert_int_equal(verify(&l, f->pk2, 0, &rep), EL_OK);
	expect_bad(verify(&l, f->pk, 0, &rep), EL_ECRYPTO, &rep, 1, "checkpoint");
	lines_free(&l);
}

static void
forged_rotation_refused(void **state)
{
	struct fx *f = *state;
	struct audit_verify_report rep;
	struct lines l;

	append_n(f, 2);
	checkpoint(f);
	/* an attacker's key hands over to itself: not signed by the current key */
	rotate(f, f->sk2, f->sk2);
	append_n(f, 1);
	export(f, &l);
	expect_bad(verify(&l, f->pk, 1, &rep), EL_ECRYPTO, &rep, 4, "key rotation");
	lines_free(&l);
}

static void
exec_sql(struct fx *f, const char *sql)
{
	sqlite3 *db;
	char *err = NULL;

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", sql, err);
	sqlite3_close(db);
}

static void
store_check_names_bad_seq(void **state)
{
	struct fx *f = *state;
	struct audit_check_report rep;

	append_n(f, 5);
	checkpoint(f);                       /* seq 6 signs 5 */
	append_n(f, 4);                      /* 7..10 unsigned */
	assert_int_equal(audit_check_store(f->s, NULL, f->pk, 0, &rep), EL_OK);
	assert_int_equal(rep.v.first_seq, 5);
	assert_int_equal(rep.v.last_seq, 10);
	assert_int_equal(audit_check_store(f->s, NULL, f->pk, 1, &rep), EL_OK);
	assert_int_equal(rep.v.records, 10);
	/* another key: the checkpoint does not verify */
	assert_int_equal(audit_check_store(f->s, NULL, f->pk2, 0, &rep), EL_ECRYPTO);
	assert_int_equal(rep.bad_seq, 6);
	/* a tail record edited in the database */
	exec_sql(f, "UPDATE audit SET actor = 'mallory' WHERE seq = 8");
	assert_int_equal(audit_check_store(f->s, NULL, f->pk, 0, &rep), EL_ECRYPTO);
	assert_int_equal(rep.bad_seq, 8);
	assert_non_null(strstr(rep.v.problem, "seq 8: hash mismatch"));
	exec_sql(f, "UPDATE audit SET actor = 'alice' WHERE seq = 8");
	assert_int_equal(audit_check_store(f->s, NULL, f->pk, 0, &rep), EL_OK);
	/* an old record: only the whole check sees it */
	exec_sql(f, "UPDATE audit SET event = 'request.forged' WHERE seq = 2");
	assert_int_equal(audit_check_store(f->s, NULL, f->pk, 0, &rep), EL_OK);
	assert_int_equal(audit_check_store(f->s, NULL, f->pk, 1, &rep), EL_ECRYPTO);
	assert_int_equal(rep.bad_seq, 2);
	exec_sql(f, "UPDATE audit SET event = 'request.created' WHERE seq = 2");
	/* a row deleted, a row whose data is not JSON */
	exec_sql(f, "DELETE FROM audit WHERE seq = 9");
	assert_int_equal(audit_check_store(f->s, NULL, f->pk, 0, &rep), EL_ECRYPTO);
	assert_int_equal(rep.bad_seq, 9);
	exec_sql(f, "UPDATE audit SET data = '{no' WHERE seq = 7");
	assert_int_equal(audit_check_store(f->s, NULL, f->pk, 0, &rep), EL_ECRYPTO);
	assert_int_equal(rep.bad_seq, 7);
}

/* The verifier takes the canonical form from a broker-written line, but only when it
 * hashes right: reformatted lines and data that mimics the hash fields verify the same. */
static void
line_shortcut_is_only_a_hint(void **state)
{
	struct fx *f = *state;
	struct audit_verify_report rep;
	struct el_why w = {{0}};
	struct lines l;
	char fake[400], *spaced;
	json_t *d, *j;
	size_t i, n;

	snprintf(fake, sizeof(fake), "x\",\"hash\":\"%064d\",\"prev_hash\":\"%064d\",\"y", 0, 0);
	d = json_pack("{s:s, s:s, s:s, s:i}", "a", fake, "hash", ZERO_HEX, "prev_hash",
	    ZERO_HEX, "q", 1);
	assert_int_equal(store_begin(f->s), EL_OK);
	assert_int_equal(audit_append(f->s, "alice", "request.created", "req_1", d, &w), EL_OK);
	assert_int_equal(store_commit(f->s), EL_OK);
	json_decref(d);
	append_n(f, 2);
	checkpoint(f);
	export(f, &l);
	assert_non_null(strstr(l.v[0], ",\"hash\":\"" ZERO_HEX "\",\"prev_hash\":\""
	    ZERO_HEX "\",\"q\":1}"));
	assert_int_equal(verify(&l, f->pk, 1, &rep), EL_OK);
	/* the same records written with spaces: no shortcut, same verdict */
	for (i = 0; i < l.n; i++) {
		j = json_loads(l.v[i], 0, NULL);
		assert_non_null(j);
		free(l.v[i]);
		spaced = json_dumps(j, JSON_SORT_KEYS);
		json_decref(j);
		assert_non_null(spaced);
		assert_non_null(strstr(spaced, "\": "));
		n = strlen(spaced) + 2;
		assert_non_null(l.v[i] = malloc(n));
		snprintf(l.v[i], n, "%s\n", spaced);
		free(spaced);
	}
	assert_int_equal(verify(&l, f->pk, 1, &rep), EL_OK);
	edit(&l, 1, "actor", json_string("mallory"));
	expect_bad(verify(&l, f->pk, 1, &rep), EL_ECRYPTO, &rep, 2, "hash mismatch");
	lines_free(&l);
}


/* ---- several nodes, one chain ---- */

static void
as_node(struct fx *f, const char *what, const char *node, const unsigned char *sk,
    const unsigned char *sk2)
{
	struct el_why w = {{0}};
	enum el_err e;

	assert_int_equal(store_begin(f->s), EL_OK);
	if (strcmp(what, "join") == 0)
		e = audit_join(f->s, node, sk, &w);
	else if (strcmp(what, "rotate") == 0)
		e = audit_rotate(f->s, node, sk, sk2, &w);
	else
		e = audit_checkpoint(f->s, node, sk, &w);
	if (e != EL_OK)
		fail_msg("%s as %s: %s", what, node ? node : "(none)", w.msg);
	assert_int_equal(store_commit(f->s), EL_OK);
}

static enum el_err
verify_keys(const struct lines *l, const unsigned char *k1, const unsigned char *k2,
    const unsigned char *k3, struct audit_verify_report *rep)
{
	unsigned char keys[3][32];
	FILE *fp = tmpfile();
	int n = 0;
	size_t i;
	enum el_err e;

	if (k1 != NULL)
		memcpy(keys[n++], k1, 32);
	if (k2 != NULL)
		memcpy(keys[n++], k2, 32);
	if (k3 != NULL)
		memcpy(keys[n++], k3, 32);
	assert_non_null(fp);
	for (i = 0; i < l->n; i++)
		assert_int_equal(fputs(l->v[i], fp) >= 0, 1);
	rewind(fp);
	e = audit_verify_stream_keys(fp, (const unsigned char (*)[32])keys, n, 1, rep);
	fclose(fp);
	return e;
}

/* node-a joins (1 join, 2 its checkpoint), 3..4, node-b joins (5, 6), 7..8, node-a signs
 * (9), 10, node-b signs (11). */
static void
two_node_chain(struct fx *f, struct lines *l)
{
	as_node(f, "join", "node-a", f->sk, NULL);
	append_n(f, 2);
	as_node(f, "join", "node-b", f->sk2, NULL);
	append_n(f, 2);
	as_node(f, "checkpoint", "node-a", f->sk, NULL);
	append_n(f, 1);
	as_node(f, "checkpoint", "node-b", f->sk2, NULL);
	export(f, l);
	assert_int_equal(l->n, 11);
}

static void
each_node_signs_with_its_own_key(void **state)
{
	struct fx *f = *state;
	struct audit_verify_report rep;
	const struct audit_node *a, *b;
	char sum[256];
	struct lines l;

	two_node_chain(f, &l);
	assert_non_null(strstr(l.v[0], "\"event\":\"audit.node_joined\""));
	assert_non_null(strstr(l.v[1], "\"node\":\"node-a\""));
	/* both keys, in either order: each node binds to the key that verifies it */
	assert_int_equal(verify_keys(&l, f->pk, f->pk2, NULL, &rep), EL_OK);
	assert_int_equal(rep.checkpoints, 4);
	assert_int_equal(rep.last_signed_seq, 10);
	assert_int_equal(rep.keys_used, 2);
	assert_non_null(a = audit_nodes_find(rep.nodes, rep.nnodes, "node-a"));
	assert_non_null(b = audit_nodes_find(rep.nodes, rep.nnodes, "node-b"));
	assert_int_equal(a->checkpoints, 2);
	assert_int_equal(b->checkpoints, 2);
	assert_memory_equal(a->key, f->pk, 32);
	assert_memory_equal(b->key, f->pk2, 32);
	audit_nodes_summary(&rep, sum, sizeof(sum));
	assert_string_equal(sum, " by 2 nodes (node-a 2, node-b 2)");
	assert_int_equal(verify_keys(&l, f->pk2, f->pk, NULL, &rep), EL_OK);
	/* node-a's key alone: node-b's first checkpoint (line 6) names the node */
	expect_bad(verify_keys(&l, f->pk, NULL, NULL, &rep), EL_ECRYPTO, &rep, 6,
	    "with any given key: node node-b signs here for the first time");
	/* a key given twice is one key */
	expect_bad(verify_keys(&l, f->pk, f->pk, NULL, &rep), EL_ECRYPTO, &rep, 6, "node-b");
	/* one node's rotation leaves the other alone */
	as_node(f, "rotate", "node-a", f->sk, f->sk2);
	lines_free(&l);
	export(f, &l);
	/* node-a's new key is node-b's: a key belongs to one node */
	expect_bad(verify_keys(&l, f->pk, f->pk2, NULL, &rep), EL_ECRYPTO, &rep, 12,
	    "node node-a rotates to the key of node node-b");
	lines_free(&l);
}

static void
a_key_binds_to_one_node(void **state)
{
	struct fx *f = *state;
	struct audit_verify_report rep;
	struct lines l;

	as_node(f, "join", "node-a", f->sk, NULL);
	append_n(f, 1);
	/* node-b signs with node-a's key: no given key is free for it */
	as_node(f, "checkpoint", "node-b", f->sk, NULL);
	export(f, &l);
	expect_bad(verify_keys(&l, f->pk, f->pk2, NULL, &rep), EL_ECRYPTO, &rep, 4,
	    "node node-b signs here for the first time");
	lines_free(&l);
}

static void
forged_checkpoint_of_a_bound_node(void **state)
{
	struct fx *f = *state;
	struct audit_verify_report rep;
	unsigned char pk3[32], sk3[64], prev[AUDIT_HASH_BYTES], h[AUDIT_HASH_BYTES];
	struct audit_rec r;
	struct lines l;
	json_t *j;

	crypto_sign_keypair(pk3, sk3);
	as_node(f, "join", "node-a", f->sk, NULL);
	append_n(f, 1);
	as_node(f, "checkpoint", "node-a", sk3, NULL);
	export(f, &l);
	/* a third key given does not let it through: node-a is bound to its first key */
	expect_bad(verify_keys(&l, f->pk, pk3, f->pk2, &rep), EL_ECRYPTO, &rep, 4,
	    "does not verify with the key of node node-a: a forged or broken checkpoint");
	/* the signed message names the node: node-a's checkpoint renamed node-b fails */
	while (l.n > 2)
		drop(&l, l.n - 1);
	j = json_loads(l.v[1], 0, NULL);
	assert_non_null(j);
	assert_int_equal(audit_rec_from_json(j, &r, NULL), EL_OK);
	json_decref(j);
	json_object_set_new(r.data, "node", json_string("node-b"));
	memcpy(prev, r.prev_hash, sizeof(prev));
	free(l.v[1]);
	l.v[1] = forge(r.seq, prev, r.actor, r.event, r.request_id, r.data, h);
	audit_rec_free(&r);
	expect_bad(verify_keys(&l, f->pk, f->pk2, NULL, &rep), EL_ECRYPTO, &rep, 2,
	    "node node-b signs here for the first time");
	lines_free(&l);
	sodium_memzero(sk3, sizeof(sk3));
}

static void
chain_from_before_nodes_taken_over(void **state)
{
	struct fx *f = *state;
	struct audit_verify_report rep;
	struct audit_check_report crep;
	const struct audit_node *n;
	char sum[256];
	struct lines l;

	append_n(f, 2);
	checkpoint(f);                       /* seq 3: no node */
	rotate(f, f->sk, f->sk2);            /* seq 4, 5: no node, key 2 */
	as_node(f, "join", "node-a", f->sk2, NULL);   /* the upgrade: 6, 7 */
	append_n(f, 1);
	as_node(f, "checkpoint", "node-a", f->sk2, NULL);
	export(f, &l);
	assert_int_equal(verify_keys(&l, f->pk, NULL, NULL, &rep), EL_OK);
	assert_int_equal(rep.checkpoints, 4);
	assert_non_null(n = audit_nodes_find(rep.nodes, rep.nnodes, "node-a"));
	assert_int_equal(n->checkpoints, 2);
	audit_nodes_summary(&rep, sum, sizeof(sum));
	assert_string_equal(sum, "");        /* one node signed all of it */
	/* the store checks it too: from the last checkpoint, and all of it */
	assert_int_equal(audit_check_store(f->s, "node-a", f->pk2, 0, &crep), EL_OK);
	assert_int_equal(audit_check_store(f->s, "node-a", f->pk, 1, &crep), EL_OK);
	assert_memory_equal(crep.key, f->pk2, 32);
	lines_free(&l);
}

static void
store_check_takes_keys_from_joins(void **state)
{
	struct fx *f = *state;
	struct audit_check_report rep;
	struct audit_node_info ni;
	unsigned char pk3[32], sk3[64];

	crypto_sign_keypair(pk3, sk3);
	as_node(f, "join", "node-a", f->sk, NULL);
	append_n(f, 2);
	as_node(f, "join", "node-b", f->sk2, NULL);
	append_n(f, 2);
	as_node(f, "checkpoint", "node-b", f->sk2, NULL);   /* the last checkpoint: node-b's */
	append_n(f, 1);
	/* node-a at start: node-b's checkpoint checked with the key node-b announced */
	assert_int_equal(audit_check_store(f->s, "node-a", f->pk, 0, &rep), EL_OK);
	assert_int_equal(rep.v.checkpoints, 1);
	assert_int_equal(audit_check_store(f->s, "node-b", f->pk2, 0, &rep), EL_OK);
	assert_int_equal(audit_check_store(f->s, "node-a", f->pk, 1, &rep), EL_OK);
	assert_int_equal(rep.v.checkpoints, 3);
	assert_memory_equal(rep.key, f->pk, 32);
	/* a key other than the one the chain names for the node */
	assert_int_equal(audit_check_store(f->s, "node-a", pk3, 0, &rep), EL_ECRYPTO);
	assert_non_null(strstr(rep.v.problem, "as node node-a's key"));
	/* node-b rotates: the key the chain ends with for it is the new one */
	as_node(f, "rotate", "node-b", f->sk2, sk3);
	assert_int_equal(audit_check_store(f->s, "node-a", f->pk, 0, &rep), EL_OK);
	assert_int_equal(audit_check_store(f->s, "node-b", pk3, 0, &rep), EL_OK);
	assert_int_equal(audit_check_store(f->s, "node-b", f->pk2, 0, &rep), EL_ECRYPTO);
	assert_int_equal(audit_check_store(f->s, "node-b", f->pk2, 1, &rep), EL_OK);
	assert_memory_equal(rep.key, pk3, 32);
	/* what a node starting without its key learns */
	assert_int_equal(audit_node_info(f->s, "node-b", NULL, 1, &ni), EL_OK);
	assert_true(ni.named > 0 && ni.joined == ni.named && ni.node_aware);
	assert_int_equal(audit_node_info(f->s, "node-c", f->pk, 1, &ni), EL_OK);
	assert_true(ni.named == 0 && ni.joined == 0 && ni.node_aware);
	assert_string_equal(ni.owner, "node-a");
	/* a checkpoint of a node the chain announces no key of */
	as_node(f, "checkpoint", "node-c", sk3, NULL);
	assert_int_equal(audit_check_store(f->s, "node-a", f->pk, 0, &rep), EL_ECRYPTO);
	assert_non_null(strstr(rep.v.problem, "announces no key of node node-c"));
	assert_int_equal(audit_node_info(f->s, "node-c", NULL, 0, &ni), EL_OK);
	assert_int_equal(ni.named, 0);        /* named by a checkpoint only: the deep scan */
	assert_int_equal(audit_node_info(f->s, "node-c", NULL, 1, &ni), EL_OK);
	assert_true(ni.named > 0 && ni.named_by_checkpoint == ni.named && ni.joined == 0);
	/* a second join of a node is a broken chain */
	as_node(f, "join", "node-a", sk3, NULL);
	assert_int_equal(audit_check_store(f->s, "node-b", pk3, 0, &rep), EL_ECRYPTO);
	assert_non_null(strstr(rep.v.problem, "node node-a joins again"));
	sodium_memzero(sk3, sizeof(sk3));
}

static void
chain_from_before_nodes_is_not_node_aware(void **state)
{
	struct fx *f = *state;
	struct audit_node_info ni;
	struct el_why w = {{0}};

	append_n(f, 2);
	checkpoint(f);
	assert_int_equal(audit_node_info(f->s, "node-a", NULL, 1, &ni), EL_OK);
	assert_true(ni.named == 0 && !ni.node_aware);
	/* an append outside a transaction is refused: its tail read would race */
	assert_int_equal(audit_append(f->s, "alice", "request.created", NULL, NULL, &w),
	    EL_EINVAL);
	assert_non_null(strstr(w.msg, "outside a store transaction"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(append_links_records, setup, teardown),
		cmocka_unit_test_setup_teardown(rolled_back_records_leave_no_gap, setup, teardown),
		cmocka_unit_test_setup_teardown(oversized_record_refused, setup, teardown),
		cmocka_unit_test(canonical_exact),
		cmocka_unit_test(rec_json_round_trip),
		cmocka_unit_test_setup_teardown(verify_intact, setup, teardown),
		cmocka_unit_test_setup_teardown(verify_edited, setup, teardown),
		cmocka_unit_test_setup_teardown(verify_dropped_reordered_cut, setup, teardown),
		cmocka_unit_test_setup_teardown(verify_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(verify_checkpoints, setup, teardown),
		cmocka_unit_test_setup_teardown(checkpoint_of_empty_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(checkpoint_moved_earlier, setup, teardown),
		cmocka_unit_test(seq_overflow_refused),
		cmocka_unit_test_setup_teardown(list_filters, setup, teardown),
		cmocka_unit_test_setup_teardown(rotation_verifies_with_first_key, setup, teardown),
		cmocka_unit_test_setup_teardown(forged_rotation_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(store_check_names_bad_seq, setup, teardown),
		cmocka_unit_test_setup_teardown(line_shortcut_is_only_a_hint, setup, teardown),
		cmocka_unit_test_setup_teardown(each_node_signs_with_its_own_key, setup, teardown),
		cmocka_unit_test_setup_teardown(a_key_binds_to_one_node, setup, teardown),
		cmocka_unit_test_setup_teardown(forged_checkpoint_of_a_bound_node, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(chain_from_before_nodes_taken_over, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(store_check_takes_keys_from_joins, setup, teardown),
		cmocka_unit_test_setup_teardown(chain_from_before_nodes_is_not_node_aware, setup,
		    teardown),
	};

	log_set_level(LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
