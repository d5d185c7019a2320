/*
 * audit_walk.c — owns the rules a chain is checked by, one record at a time: contiguous
 * sequence numbers, each prev_hash equal to the hash before it, each hash recomputed from
 * the canonical form, each checkpoint signed by the current key, and each key rotation
 * signed by the current key, which then hands over to the key the rotation names. Both
 * readers of a chain walk with it: the export verifier (audit_verify_stream) and the
 * store's own check (audit_check.c).
 */
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elevate/audit.h"

void
audit_walk_init(struct audit_walk *v, const unsigned char *pk, int require_start)
{
	memset(v, 0, sizeof(*v));
	if (pk != NULL) {
		memcpy(v->key, pk, sizeof(v->key));
		v->keyed = 1;
	}
	v->require_start = require_start;
}

/* BLAKE2b-256(prev || a || b): the canonical form may come in two pieces (a line with
 * its hash fields cut out). */
static void
hash2(const unsigned char prev[AUDIT_HASH_BYTES], const char *a, size_t alen, const char *b,
    size_t blen, unsigned char out[AUDIT_HASH_BYTES])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, AUDIT_HASH_BYTES);
	crypto_generichash_update(&st, prev, AUDIT_HASH_BYTES);
	crypto_generichash_update(&st, (const unsigned char *)a, alen);
	if (blen > 0)
		crypto_generichash_update(&st, (const unsigned char *)b, blen);
	crypto_generichash_final(&st, out, AUDIT_HASH_BYTES);
}

/* Does r's hash follow from prev and its content? hint, when given, is what the caller
 * believes the canonical form to be; only a match counts, anything else is decided on
 * the canonical form computed here. */
static enum el_err
hash_ok(const unsigned char prev[AUDIT_HASH_BYTES], const struct audit_rec *r,
    const struct audit_canon_hint *hint, int *ok)
{
	unsigned char calc[AUDIT_HASH_BYTES];
	char *canon;

	if (hint != NULL) {
		hash2(prev, hint->a, hint->alen, hint->b, hint->blen, calc);
		if (sodium_memcmp(calc, r->hash, AUDIT_HASH_BYTES) == 0) {
			*ok = 1;
			return EL_OK;
		}
	}
	if ((canon = audit_canonical(r)) == NULL)
		return EL_ENOMEM;
	hash2(prev, canon, strlen(canon), NULL, 0, calc);
	free(canon);
	*ok = sodium_memcmp(calc, r->hash, AUDIT_HASH_BYTES) == 0;
	return EL_OK;
}

enum el_err
audit_walk_next(struct audit_walk *v, const struct audit_rec *r,
    const struct audit_canon_hint *hint, char *problem, size_t plen)
{
	unsigned char next[crypto_sign_PUBLICKEYBYTES];
	int64_t signed_seq = 0;
	enum el_err e;
	int ok;

	if (r->seq < 1 || r->seq == INT64_MAX) {
		snprintf(problem, plen, "seq %lld is not a sequence number", (long long)r->seq);
		return EL_EPARSE;
	}
	if (v->records == 0) {
		v->first_seq = r->seq;
		if (v->require_start && (r->seq != 1 ||
		    !sodium_is_zero(r->prev_hash, AUDIT_HASH_BYTES))) {
			snprintf(problem, plen, "chain does not start at seq 1 (starts at %lld): "
			    "records were dropped", (long long)r->seq);
			return EL_ECRYPTO;
		}
		memcpy(v->prev, r->prev_hash, sizeof(v->prev));
		v->expect_seq = r->seq;
	}
	if (r->seq != v->expect_seq) {
		snprintf(problem, plen, "seq %lld where seq %lld was expected: records dropped or "
		    "reordered", (long long)r->seq, (long long)v->expect_seq);
		return EL_ECRYPTO;
	}
	if (sodium_memcmp(v->prev, r->prev_hash, AUDIT_HASH_BYTES) != 0) {
		snprintf(problem, plen, "prev_hash does not match the previous record");
		return EL_ECRYPTO;
	}
	if ((e = hash_ok(v->prev, r, hint, &ok)) != EL_OK)
		return e;
	if (!ok) {
		snprintf(problem, plen, "hash mismatch: the record was edited");
		return EL_ECRYPTO;
	}
	v->last_is_checkpoint = 0;
	if (v->keyed && strcmp(r->event, AUDIT_CHECKPOINT_EVENT) == 0) {
		if (!audit_checkpoint_verify(r, v->key, &signed_seq)) {
			snprintf(problem, plen, "checkpoint signature does not verify with this key%s",
			    v->rotations > 0 ? " (the key named by the last rotation)" : "");
			return EL_ECRYPTO;
		}
		v->checkpoints++;
		v->last_signed_seq = signed_seq;
		v->last_is_checkpoint = 1;
	} else if (v->keyed && strcmp(r->event, AUDIT_ROTATION_EVENT) == 0) {
		if (!audit_rotation_verify(r, v->key, next, &signed_seq)) {
			snprintf(problem, plen, "key rotation not signed by the current key: a forged "
			    "or broken rotation");
			return EL_ECRYPTO;
		}
		memcpy(v->key, next, sizeof(v->key));
		v->rotations++;
		v->last_signed_seq = signed_seq;
	}
	memcpy(v->prev, r->hash, sizeof(v->prev));
	v->last_seq = r->seq;
	v->records++;
	v->expect_seq = r->seq + 1;
	return EL_OK;
}

void
audit_walk_report(const struct audit_walk *v, struct audit_verify_report *rep)
{
	rep->records = v->records;
	rep->first_seq = v->first_seq;
	rep->last_seq = v->last_seq;
	rep->checkpoints = v->checkpoints;
	rep->rotations = v->rotations;
	memcpy(rep->key, v->key, sizeof(rep->key));
	rep->last_signed_seq = v->last_signed_seq;
	rep->last_is_checkpoint = v->last_is_checkpoint;
}
