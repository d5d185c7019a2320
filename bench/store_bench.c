/*
 * store_bench.c — make bench's SQLite helper (bench/bench.py):
 *   insert DB SECONDS   the create baseline: single-row INSERTs, each its own transaction,
 *                       into a fresh DB with the store's settings (WAL, synchronous=FULL);
 *                       prints "rps=.."
 *   gen DB N USERS      N more requests straight into the broker's store (stopped), in one
 *                       transaction with one prepared INSERT: 95% ended, 2% denied,
 *                       2% pending (due in 1 day), 1% active (a grant row, due in 1 day),
 *                       requesters from the comma-separated USERS; prints "seconds=.."
 *   deadline DB K       K timings of store_next_deadline() on the store (the reaper's
 *                       query, through libelevate); prints "median_us=.. min_us=.."
 *   verify SECONDS      reqsig_verify() of a signed GET in a loop on one thread: what one
 *                       core can check, the ceiling of signed calls; prints "rps=.."
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "elevate/el.h"
#include "elevate/reqsig.h"
#include "elevate/store.h"

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
check(sqlite3 *db, int rc, const char *what)
{
	if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
		fprintf(stderr, "store_bench: %s: %s\n", what, sqlite3_errmsg(db));
		exit(1);
	}
}

static int
insert(const char *path, double secs)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	double t0, t;
	long n = 0;

	check(NULL, sqlite3_open(path, &db), "open");
	check(db, sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON;"
	    "PRAGMA synchronous=FULL; PRAGMA secure_delete=ON;"
	    "CREATE TABLE IF NOT EXISTS t (id TEXT PRIMARY KEY, v TEXT NOT NULL,"
	    " at INTEGER NOT NULL)", NULL, NULL, NULL), "setup");
	check(db, sqlite3_prepare_v2(db, "INSERT INTO t VALUES (?, ?, ?)", -1, &st, NULL),
	    "prepare");
	t0 = now_s();
	do {
		char id[32];

		snprintf(id, sizeof(id), "r-%016ld", n);
		sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 2, "bench row with a reason of some length", -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)time(NULL));
		check(db, sqlite3_step(st), "insert");
		sqlite3_reset(st);
		n++;
	} while ((t = now_s()) - t0 < secs);
	printf("rps=%.0f rows=%ld\n", n / (t - t0), n);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return 0;
}

static int
gen(const char *path, long n, char *users)
{
	sqlite3 *db;
	sqlite3_stmt *st, *gr;
	const char *u[16];
	int nu = 0;
	long i, first;
	int64_t now = time(NULL);
	double t0 = now_s();

	for (char *p = strtok(users, ","); p && nu < 16; p = strtok(NULL, ","))
		u[nu++] = p;
	if (nu == 0)
		return 2;
	check(NULL, sqlite3_open(path, &db), "open");
	check(db, sqlite3_exec(db, "PRAGMA synchronous=FULL; BEGIN", NULL, NULL, NULL), "begin");
	check(db, sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM requests WHERE id LIKE 'r-bench%'",
	    -1, &st, NULL), "count");
	check(db, sqlite3_step(st), "count");
	first = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	check(db, sqlite3_prepare_v2(db, "INSERT INTO requests (id, profile, requester, state,"
	    " duration, reason, ticket, role_arn, region, created_at, pending_until, decided_at,"
	    " window_start, window_end, ended_at, updated_at) VALUES"
	    " (?1, 'dev', ?2, ?3, 900, 'bench', NULL, ?4, 'ap-northeast-1', ?5, ?6, ?7, ?8, ?9,"
	    " ?10, ?5)", -1, &st, NULL), "prepare");
	check(db, sqlite3_prepare_v2(db, "INSERT INTO grants (request_id, role_session_name)"
	    " VALUES (?, ?)", -1, &gr, NULL), "prepare grants");
	for (i = first; i < first + n; i++) {
		char id[32];
		int k = i % 100;
		const char *state = k < 95 ? "ended" : k < 97 ? "denied" : k < 99 ? "pending" :
		    "active";
		int64_t created = now - 90 * 86400 + (int64_t)i * 7 % (89 * 86400);

		snprintf(id, sizeof(id), "r-bench%010ld", i);
		sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 2, u[i % nu], -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, state, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, "arn:aws:iam::111122223333:role/Dev", -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, created);
		if (state[0] == 'p') {
			sqlite3_bind_int64(st, 6, now + 86400 + i % 3600);
			sqlite3_bind_null(st, 7);
		} else {
			sqlite3_bind_int64(st, 6, created + 1800);
			sqlite3_bind_int64(st, 7, created + 60);
		}
		if (state[0] == 'e' || state[0] == 'a') {
			sqlite3_bind_int64(st, 8, created + 60);
			sqlite3_bind_int64(st, 9, state[0] == 'a' ? now + 86400 + i % 3600 :
			    created + 960);
		} else {
			sqlite3_bind_null(st, 8);
			sqlite3_bind_null(st, 9);
		}
		if (state[0] == 'e')
			sqlite3_bind_int64(st, 10, created + 961);
		else
			sqlite3_bind_null(st, 10);
		check(db, sqlite3_step(st), "insert");
		sqlite3_reset(st);
		if (state[0] != 'p' && state[0] != 'd') {
			sqlite3_bind_text(gr, 1, id, -1, SQLITE_TRANSIENT);
			sqlite3_bind_text(gr, 2, id, -1, SQLITE_TRANSIENT);
			check(db, sqlite3_step(gr), "insert grant");
			sqlite3_reset(gr);
		}
	}
	sqlite3_finalize(st);
	sqlite3_finalize(gr);
	check(db, sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), "commit");
	sqlite3_close(db);
	printf("seconds=%.2f rows=%ld\n", now_s() - t0, n);
	return 0;
}

static int
cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int
deadline(const char *path, int k)
{
	struct store *s;
	struct el_why w = {0};
	double *v = calloc(k, sizeof(*v));
	int64_t t;
	int i;

	if (v == NULL || store_open(path, &s, &w) != EL_OK) {
		fprintf(stderr, "store_bench: %s\n", w.msg);
		return 1;
	}
	for (i = 0; i < k; i++) {
		double t0 = now_s();

		if (store_next_deadline(s, 300, el_now_ms(), &t) != EL_OK) {
			fprintf(stderr, "store_bench: next deadline: %s\n", store_errmsg());
			return 1;
		}
		v[i] = (now_s() - t0) * 1e6;
	}
	qsort(v, k, sizeof(*v), cmpd);
	printf("median_us=%.0f min_us=%.0f next=%lld\n", v[k / 2], v[0], (long long)t);
	store_close(s);
	return 0;
}

static int
verify(double secs)
{
	unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
	char sig[REQSIG_SIG_B64_MAX], nonce[32];
	struct reqsig_fields f = {"GET", "/v1/requests/req_0123456789abcdef",
	    "2026-12-01T00:00:00Z", NULL, "alice", "", 0};
	double t0, t;
	long n = 0;

	if (sodium_init() < 0)
		return 1;
	crypto_sign_keypair(pk, sk);
	reqsig_nonce(nonce, sizeof(nonce));
	f.nonce = nonce;
	if (reqsig_sign(sk, &f, sig, sizeof(sig)) != EL_OK)
		return 1;
	t0 = now_s();
	do {
		if (reqsig_verify(pk, &f, sig) != EL_OK)
			return 1;
		n++;
	} while ((t = now_s() - t0) < secs);
	printf("rps=%.0f\n", n / t);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "insert") == 0)
		return insert(argv[2], atof(argv[3]));
	if (argc == 5 && strcmp(argv[1], "gen") == 0)
		return gen(argv[2], atol(argv[3]), argv[4]);
	if (argc == 4 && strcmp(argv[1], "deadline") == 0)
		return deadline(argv[2], atoi(argv[3]));
	if (argc == 3 && strcmp(argv[1], "verify") == 0)
		return verify(atof(argv[2]));
	fprintf(stderr, "usage: store_bench insert DB SECONDS | gen DB N USERS | deadline DB K |"
	    " verify SECONDS\n");
	return 2;
}
