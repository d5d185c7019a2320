/*
 * audit.h — the tamper-evident audit trail. audit.c is the only writer of audit records:
 * each record is hash-chained (BLAKE2b-256 over the previous hash and the record's
 * canonical JSON) and appended inside the caller's store transaction, so no state
 * change lands without its record. Checkpoints sign the chain head with Ed25519.
 */
#ifndef ELEVATE_AUDIT_H
#define ELEVATE_AUDIT_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "elevate/el.h"

#define AUDIT_HASH_BYTES 32
#define AUDIT_MAX_RECORD (64 * 1024)   /* canonical JSON ceiling of one record */
#define AUDIT_CHECKPOINT_EVENT "audit.checkpoint"
#define AUDIT_ROTATION_EVENT "audit.key_rotated"

struct store;

struct audit_rec {
	int64_t seq;
	char time[32];                 /* "2026-11-22T03:26:00.123Z" */
	char *actor;                   /* user name, "system", "anonymous" ... */
	char *event;                   /* "request.created" ... */
	char *request_id;              /* may be NULL */
	json_t *data;                  /* object, never NULL */
	unsigned char prev_hash[AUDIT_HASH_BYTES];
	unsigned char hash[AUDIT_HASH_BYTES];
};

/*
 * Canonical JSON of the hashed part: {"actor","data","event","request_id","seq","time"}
 * with sorted keys, compact, UTF-8 unescaped. Caller frees.
 */
char *audit_canonical(const struct audit_rec *r);
/* hash = BLAKE2b-256(prev_hash || canonical) */
void audit_chain_hash(const unsigned char prev[AUDIT_HASH_BYTES], const char *canonical,
    unsigned char out[AUDIT_HASH_BYTES]);

/*
 * Appends one record. Must be called inside store_begin()/store_commit() on s; data is
 * borrowed (may be NULL for {}). Never put a secret in data.
 */
enum el_err audit_append(struct store *s, const char *actor, const char *event,
    const char *request_id, json_t *data, struct el_why *w);

/*
 * Appends a checkpoint record whose data signs the current head:
 * {"signed_seq": N, "signed_hash": HEX, "sig": BASE64(Ed25519("elevate-audit-checkpoint\n"
 * N "\n" HEX))}. Inside a store transaction.
 */
enum el_err audit_checkpoint(struct store *s, const unsigned char sk[64], struct el_why *w);

/*
 * Is r a checkpoint that signs the head just before it (signed_seq == seq - 1,
 * signed_hash == prev_hash) with public key pk? Then *signed_seq is set. 1 or 0.
 */
int audit_checkpoint_verify(const struct audit_rec *r, const unsigned char *pk,
    int64_t *signed_seq);

/*
 * Key rotation (audit_key.c). Appends an audit.key_rotated record whose data
 * {"signed_seq","signed_hash","new_key":"ed25519:B64","sig"} the old key signs over
 * "elevate-audit-key-rotation\n" N "\n" HEX "\n" NEWKEY, then a checkpoint signed by
 * the new key. Inside a store transaction; keys are borrowed.
 */
enum el_err audit_rotate(struct store *s, const unsigned char old_sk[64],
    const unsigned char new_sk[64], struct el_why *w);
/* Is r a rotation signed by pk? Then next gets the new public key, *signed_seq the head
 * it signs. 1 or 0. */
int audit_rotation_verify(const struct audit_rec *r, const unsigned char *pk,
    unsigned char next[32], int64_t *signed_seq);

/*
 * A walk along a chain, record by record (audit_walk.c): the state every reader of a
 * chain keeps, and the one set of rules it checks.
 */
struct audit_walk {
	unsigned char prev[AUDIT_HASH_BYTES];
	unsigned char key[32];         /* the current public key, when keyed */
	int keyed;
	int require_start;             /* the first record must be seq 1, zero prev_hash */
	int64_t expect_seq;
	int64_t records, first_seq, last_seq;
	int64_t checkpoints, rotations;
	int64_t last_signed_seq;       /* highest seq a valid signature covers, 0 if none */
	int last_is_checkpoint;
};
/* What the caller believes is r's canonical form, in two pieces (b may be empty). */
struct audit_canon_hint {
	const char *a, *b;
	size_t alen, blen;
};
/* pk (borrowed, may be NULL: signatures are not checked) is the first key. */
void audit_walk_init(struct audit_walk *v, const unsigned char *pk, int require_start);
/*
 * Takes the next record: EL_OK, or EL_ECRYPTO / EL_EPARSE with problem set (no line or
 * seq in it: the caller says where). hint may be NULL; it only ever saves work.
 */
enum el_err audit_walk_next(struct audit_walk *v, const struct audit_rec *r,
    const struct audit_canon_hint *hint, char *problem, size_t plen);
struct audit_verify_report;
/* Copies the walk's counts into rep (problem and bad_line untouched). */
void audit_walk_report(const struct audit_walk *v, struct audit_verify_report *rep);

/* A record as exported (JSON Lines): the hashed fields plus prev_hash and hash. New ref. */
json_t *audit_rec_json(const struct audit_rec *r);
/* Parses one exported record (borrowing nothing from j). Caller frees with audit_rec_free. */
enum el_err audit_rec_from_json(json_t *j, struct audit_rec *r, struct el_why *w);
void audit_rec_free(struct audit_rec *r);

struct audit_verify_report {
	int64_t records;               /* how many records were read */
	int64_t first_seq, last_seq;
	int64_t checkpoints;           /* valid checkpoints seen */
	int64_t rotations;             /* valid key rotations seen */
	unsigned char key[32];         /* keyed: the public key current at the end (the
	                                * first, or the one the last rotation named) */
	int64_t last_signed_seq;       /* highest seq covered by a valid checkpoint, 0 if none */
	int last_is_checkpoint;        /* the last record read is a valid checkpoint */
	int64_t bad_line;              /* line of the first problem, 0 if none */
	char problem[EL_WHYLEN];       /* what is wrong, empty if intact */
};

/*
 * Verifies a JSON Lines export read from f: every hash, every link, sequence numbers
 * contiguous from the first, and (when pk != NULL) every checkpoint signature, with pk
 * until a rotation signed by it hands over to the next key.
 * require_start: the first record must be seq 1 with a zero prev_hash.
 * Returns EL_OK when intact, EL_ECRYPTO (tampered) or EL_EPARSE with rep->problem set.
 */
enum el_err audit_verify_stream(FILE *f, const unsigned char *pk, int require_start,
    struct audit_verify_report *rep);

/*
 * The store checks its own chain (audit_check.c): whole == 0, from the record the last
 * checkpoint signs to the head, with pk the current public key; whole == 1, from seq 1
 * with pk the first key (learning every rotation). EL_OK when intact (rep->key is then
 * the key the chain ends with); EL_ECRYPTO with rep->bad_seq and rep->problem naming the
 * first bad record; another error when the store cannot be read.
 */
struct audit_check_report {
	struct audit_verify_report v;  /* what was walked; v.problem says what is wrong */
	int64_t bad_seq;               /* 0 when intact */
	unsigned char key[32];
};
enum el_err audit_check_store(struct store *s, const unsigned char *pk, int whole,
    struct audit_check_report *rep);

#endif
