/*
 * audit_check.c — owns the store's check of its own chain: the records from the last
 * checkpoint on (at every engine start), or the whole chain from seq 1 (`elevated check
 * --audit`), read back from the database and walked with the same rules as an export
 * (audit_walk.c). An edit made straight in the database (sqlite3 UPDATE) is named by its
 * seq.
 */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "elevate/audit.h"
#include "elevate/store.h"

#define CHECK_BATCH 1000

/* Reads up to limit records after seq since. A row that cannot be read fails the whole
 * batch; read one by one to say which. */
static enum el_err
read_batch(struct store *s, int64_t since, int limit, json_t **out, int64_t *bad_seq)
{
	struct store_audit_filter f;
	enum el_err e;

	memset(&f, 0, sizeof(f));
	f.since_seq = since;
	f.limit = limit;
	if ((e = store_audit_list(s, &f, out)) != EL_EDB || limit == 1)
		return e;
	for (;;) {
		json_t *one;

		f.limit = 1;
		if ((e = store_audit_list(s, &f, &one)) != EL_OK) {
			*bad_seq = f.since_seq + 1;
			return e;
		}
		if (json_array_size(one) == 0) {
			json_decref(one);
			return EL_EDB;
		}
		f.since_seq = json_integer_value(json_object_get(json_array_get(one, 0), "seq"));
		json_decref(one);
	}
}

enum el_err
audit_check_store(struct store *s, const unsigned char *pk, int whole,
    struct audit_check_report *rep)
{
	struct audit_walk v;
	char problem[EL_WHYLEN - 64];
	int64_t since = 0, ckpt = 0, bad;
	enum el_err e = EL_OK;

	memset(rep, 0, sizeof(*rep));
	if (!whole && (e = store_audit_last_event(s, AUDIT_CHECKPOINT_EVENT, &ckpt)) != EL_OK) {
		snprintf(rep->v.problem, sizeof(rep->v.problem), "cannot read the audit chain: %s",
		    store_errmsg());
		return e;
	}
	/* From the record the last checkpoint signs: its hash is checked against its content,
	 * and the checkpoint's signature against that hash. */
	since = ckpt > 1 ? ckpt - 2 : 0;
	/* That record's own signature, if it is one (a rotation), was made by a key before
	 * pk: the walk takes pk from the record after it on. */
	audit_walk_init(&v, since == 0 ? pk : NULL, since == 0);
	for (;;) {
		json_t *recs, *j;
		size_t i;

		bad = 0;
		if ((e = read_batch(s, since, CHECK_BATCH, &recs, &bad)) != EL_OK) {
			rep->bad_seq = bad;
			if (bad > 0)
				snprintf(rep->v.problem, sizeof(rep->v.problem), "seq %lld: the record "
				    "cannot be read (its data is not JSON): edited in the database",
				    (long long)bad);
			else
				snprintf(rep->v.problem, sizeof(rep->v.problem), "cannot read the audit "
				    "chain after seq %lld: %s", (long long)since, store_errmsg());
			return e == EL_EDB && bad > 0 ? EL_ECRYPTO : e;
		}
		if (json_array_size(recs) == 0) {
			json_decref(recs);
			break;
		}
		json_array_foreach(recs, i, j) {
			struct audit_rec r;
			struct el_why w = {{0}};

			if ((e = audit_rec_from_json(j, &r, &w)) != EL_OK) {
				rep->bad_seq = json_integer_value(json_object_get(j, "seq"));
				snprintf(rep->v.problem, sizeof(rep->v.problem), "seq %lld: %.400s",
				    (long long)rep->bad_seq, w.msg);
				json_decref(recs);
				return EL_ECRYPTO;
			}
			bad = v.records > 0 && r.seq > v.expect_seq ? v.expect_seq : r.seq;
			e = audit_walk_next(&v, &r, NULL, problem, sizeof(problem));
			if (e == EL_OK && v.records == 1 && !v.keyed && pk != NULL) {
				memcpy(v.key, pk, sizeof(v.key));
				v.keyed = 1;
			}
			since = r.seq;
			audit_rec_free(&r);
			if (e != EL_OK) {
				rep->bad_seq = bad;
				snprintf(rep->v.problem, sizeof(rep->v.problem), "seq %lld: %s",
				    (long long)bad, problem);
				json_decref(recs);
				return EL_ECRYPTO;
			}
		}
		json_decref(recs);
	}
	audit_walk_report(&v, &rep->v);
	memcpy(rep->key, v.key, sizeof(rep->key));
	return EL_OK;
}
