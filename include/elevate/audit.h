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

/* A record as exported (JSON Lines): the hashed fields plus prev_hash and hash. New ref. */
json_t *audit_rec_json(const struct audit_rec *r);
/* Parses one exported record (borrowing nothing from j). Caller frees with audit_rec_free. */
enum el_err audit_rec_from_json(json_t *j, struct audit_rec *r, struct el_why *w);
void audit_rec_free(struct audit_rec *r);

struct audit_verify_report {
	int64_t records;               /* how many records were read */
	int64_t first_seq, last_seq;
	int64_t checkpoints;           /* valid checkpoints seen */
	int64_t last_signed_seq;       /* highest seq covered by a valid checkpoint, 0 if none */
	int last_is_checkpoint;        /* the last record read is a valid checkpoint */
	int64_t bad_line;              /* line of the first problem, 0 if none */
	char problem[EL_WHYLEN];       /* what is wrong, empty if intact */
};

/*
 * Verifies a JSON Lines export read from f: every hash, every link, sequence numbers
 * contiguous from the first, and (when pk != NULL) every checkpoint signature.
 * require_start: the first record must be seq 1 with a zero prev_hash.
 * Returns EL_OK when intact, EL_ECRYPTO (tampered) or EL_EPARSE with rep->problem set.
 */
enum el_err audit_verify_stream(FILE *f, const unsigned char *pk, int require_start,
    struct audit_verify_report *rep);

#endif
