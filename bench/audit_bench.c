/*
 * audit_bench.c — the helper of `make bench-audit` (bench/audit.sh): `gen DIR N` writes N
 * records through the real audit_append() into a real store in DIR (a checkpoint every
 * 100 records, as the default audit.checkpoint_every), then exports them the way the
 * broker does (one audit_rec_json line each, compact with sorted keys) to DIR/audit.jsonl
 * and the public key to DIR/audit.pub; `parse FILE` parses every line of FILE with
 * jansson and prints the seconds it took: the yardstick verification is held to.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "elevate/audit.h"
#include "elevate/el.h"
#include "elevate/reqsig.h"
#include "elevate/store.h"

#define BATCH 1000
#define CHECKPOINT_EVERY 100

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
gen(const char *dir, long long n)
{
	unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
	struct el_why w = {{0}};
	struct store *s;
	char path[512], rid[40], *pub, *line;
	long long i;
	int64_t since = 0;
	FILE *f;

	crypto_sign_keypair(pk, sk);
	snprintf(path, sizeof(path), "%s/elevate.db", dir);
	if (store_open(path, &s, &w) != EL_OK) {
		fprintf(stderr, "store_open: %s\n", w.msg);
		return 1;
	}
	for (i = 0; i < n; ) {
		if (store_begin(s) != EL_OK)
			goto dberr;
		for (long long k = 0; k < BATCH && i < n; k++, i++) {
			json_t *d;
			enum el_err e;

			snprintf(rid, sizeof(rid), "r-%016llx", (unsigned long long)(i / 5));
			d = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "from", "pending", "to",
			    "approved", "profile", "prod-readonly", "reason",
			    "deploy fix for INC-1234: restart the stuck workers", "duration", (json_int_t)900,
			    "comment", "ok, go ahead \xc3\xa9");
			e = audit_append(s, i % 7 == 0 ? "carol" : "alice", "request.approved", rid, d,
			    &w);
			json_decref(d);
			if (e == EL_OK && (i + 1) % CHECKPOINT_EVERY == 0 && i + 1 < n) {
				i++;
				e = audit_checkpoint(s, "bench", sk, &w);
			}
			if (e != EL_OK) {
				fprintf(stderr, "append: %s\n", w.msg);
				return 1;
			}
		}
		if (store_commit(s) != EL_OK)
			goto dberr;
	}
	/* The export ends with a checkpoint, as after a clean stop. */
	if (store_begin(s) != EL_OK || audit_checkpoint(s, "bench", sk, &w) != EL_OK ||
	    store_commit(s) != EL_OK)
		goto dberr;
	snprintf(path, sizeof(path), "%s/audit.jsonl", dir);
	if ((f = fopen(path, "w")) == NULL)
		return 1;
	for (;;) {
		struct store_audit_filter flt;
		json_t *recs, *rec;
		size_t k;

		memset(&flt, 0, sizeof(flt));
		flt.since_seq = since;
		flt.limit = 10000;
		if (store_audit_list(s, &flt, &recs) != EL_OK)
			goto dberr;
		if (json_array_size(recs) == 0) {
			json_decref(recs);
			break;
		}
		json_array_foreach(recs, k, rec) {
			if ((line = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS)) == NULL)
				return 1;
			fprintf(f, "%s\n", line);
			free(line);
			since = json_integer_value(json_object_get(rec, "seq"));
		}
		json_decref(recs);
	}
	if (fclose(f) != 0)
		return 1;
	store_close(s);
	snprintf(path, sizeof(path), "%s/audit.pub", dir);
	if ((f = fopen(path, "w")) == NULL || (pub = reqsig_pubkey_format(pk)) == NULL)
		return 1;
	fprintf(f, "%s\n", pub);
	free(pub);
	fclose(f);
	printf("%lld\n", (long long)since);
	return 0;
dberr:
	fprintf(stderr, "store: %s\n", store_errmsg());
	return 1;
}

static int
parse(const char *file)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	long long n = 0;
	double t0 = now_s();
	FILE *f;

	if ((f = fopen(file, "r")) == NULL)
		return 1;
	while ((len = getline(&line, &cap, f)) >= 0) {
		json_error_t je;
		json_t *j = json_loadb(line, (size_t)len, JSON_REJECT_DUPLICATES, &je);

		if (j == NULL) {
			fprintf(stderr, "line %lld: %s\n", n + 1, je.text);
			return 1;
		}
		json_decref(j);
		n++;
	}
	fclose(f);
	free(line);
	printf("%.6f %lld\n", now_s() - t0, n);
	return 0;
}

int
main(int argc, char **argv)
{
	long long n;

	if (sodium_init() < 0)
		return 1;
	if (argc == 4 && strcmp(argv[1], "gen") == 0 &&
	    el_parse_int(argv[3], 1, 100000000, &n) == EL_OK)
		return gen(argv[2], n);
	if (argc == 3 && strcmp(argv[1], "parse") == 0)
		return parse(argv[2]);
	fprintf(stderr, "usage: audit_bench gen DIR N | parse FILE\n");
	return 2;
}
