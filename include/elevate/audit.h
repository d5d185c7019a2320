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
#define AUDIT_JOIN_EVENT "audit.node_joined"
#define AUDIT_NODE_MAX 64              /* a node's name: config's NODE_MAX */
#define AUDIT_NODES_MAX 64             /* nodes one walk tells apart */
#define AUDIT_KEYS_MAX 64              /* public keys one verification is given */

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
 * Appends a checkpoint record whose data signs the current head, in the name of node:
 * {"node": NODE, "signed_seq": N, "signed_hash": HEX, "sig": BASE64(Ed25519(
 * "elevate-audit-checkpoint\n" N "\n" HEX "\n" NODE))}. node NULL writes a checkpoint as
 * before nodes (no "node", the message without its last line): for tests of old chains.
 * Inside a store transaction.
 */
enum el_err audit_checkpoint(struct store *s, const char *node, const unsigned char sk[64],
    struct el_why *w);

/*
 * Is r a checkpoint that signs the head just before it (signed_seq == seq - 1,
 * signed_hash == prev_hash) with public key pk, in the name of the node its data names
 * (or none)? Then *signed_seq is set. 1 or 0.
 */
int audit_checkpoint_verify(const struct audit_rec *r, const unsigned char *pk,
    int64_t *signed_seq);

/*
 * The node a checkpoint, rotation or join names: "" when its data has no "node" (a
 * record from before nodes), NULL when "node" is there but not a node's name. Borrowed
 * from r->data.
 */
const char *audit_rec_node(const struct audit_rec *r);

/*
 * Key rotation (audit_key.c). Appends an audit.key_rotated record whose data
 * {"node","signed_seq","signed_hash","new_key":"ed25519:B64","sig"} the old key signs over
 * "elevate-audit-key-rotation\n" N "\n" HEX "\n" NEWKEY "\n" NODE, then a checkpoint
 * signed by the new key. node NULL: as before nodes. Inside a store transaction; keys are
 * borrowed.
 */
enum el_err audit_rotate(struct store *s, const char *node, const unsigned char old_sk[64],
    const unsigned char new_sk[64], struct el_why *w);
/* Is r a rotation signed by pk? Then next gets the new public key, *signed_seq the head
 * it signs. 1 or 0. */
int audit_rotation_verify(const struct audit_rec *r, const unsigned char *pk,
    unsigned char next[32], int64_t *signed_seq);

/*
 * A node joins the chain (audit_key.c): an audit.node_joined record {"node": NODE,
 * "public_key": "ed25519:B64"} announcing the node's first key, then a checkpoint that
 * key signs. Inside a store transaction; sk is borrowed.
 */
enum el_err audit_join(struct store *s, const char *node, const unsigned char sk[64],
    struct el_why *w);
/* Is r a well-formed join? Then *node (borrowed from r) and pk are set. 1 or 0. */
int audit_join_parse(const struct audit_rec *r, const char **node, unsigned char pk[32]);

/*
 * A node as a walk knows it: the key its signatures are checked with, and how it came
 * by it. Several nodes sign one chain, each with its own key (docs/audit.md).
 */
struct audit_node {
	char name[AUDIT_NODE_MAX + 1]; /* "" for signatures that name no node (before nodes) */
	unsigned char key[32];         /* its current key, once bound */
	unsigned char announced[32];   /* the key its audit.node_joined named */
	int bound;                     /* key is set */
	int given;                     /* the given key it bound to, -1 if none */
	int merged;                    /* "" only: a named node took its key over */
	int64_t joined_seq;            /* its audit.node_joined, 0 if none was seen */
	int64_t first_signed;          /* its first signature in this walk, 0 if none */
	int64_t checkpoints, rotations;
};

/*
 * A walk along a chain, record by record (audit_walk.c): the state every reader of a
 * chain keeps, and the one set of rules it checks.
 */
struct audit_walk {
	unsigned char prev[AUDIT_HASH_BYTES];
	unsigned char keys[AUDIT_KEYS_MAX][32]; /* given keys: each binds to one node */
	int key_node[AUDIT_KEYS_MAX];  /* the node each given key is bound to, -1 */
	int nkeys;
	int keyed;                     /* signatures are checked */
	int trust_joins;               /* a node no given key verifies takes the key its
	                                * audit.node_joined announced (the store's own check) */
	struct audit_node nodes[AUDIT_NODES_MAX];
	int nnodes;
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
/* pk (borrowed, may be NULL: signatures are not checked) is a first key. */
void audit_walk_init(struct audit_walk *v, const unsigned char *pk, int require_start);
/* One more given key (a node's first key); a key given twice counts once. EL_ETOOBIG
 * beyond AUDIT_KEYS_MAX. */
enum el_err audit_walk_add_key(struct audit_walk *v, const unsigned char pk[32]);
/* Binds node (its name, or "" for signatures that name none) to key pk from the start
 * of the walk: the store's own check, which knows the keys before it walks. */
enum el_err audit_walk_seed(struct audit_walk *v, const char *node, const unsigned char pk[32]);
/* The node named name, or NULL. */
const struct audit_node *audit_nodes_find(const struct audit_node *nodes, int n,
    const char *name);
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
	int nnodes;                    /* the nodes the walk met, with their keys at the end */
	struct audit_node nodes[AUDIT_NODES_MAX];
	int nkeys, keys_used;          /* keys given, and how many bound to a node */
	int64_t last_signed_seq;       /* highest seq covered by a valid checkpoint, 0 if none */
	int last_is_checkpoint;        /* the last record read is a valid checkpoint */
	int64_t bad_line;              /* line of the first problem, 0 if none */
	char problem[EL_WHYLEN];       /* what is wrong, empty if intact */
};

/* Did node n sign in the walk (a node of its own, not the unnamed one a named node took
 * over)? */
int audit_node_signed(const struct audit_node *n);
/* " by 2 nodes (node-a 7, node-b 5)": the checkpoints of each node that signed; "" when
 * one node (or none) did. */
void audit_nodes_summary(const struct audit_verify_report *rep, char *buf, size_t len);

/*
 * Verifies a JSON Lines export read from f: every hash, every link, sequence numbers
 * contiguous from the first, and (when pk != NULL) every checkpoint signature, with pk
 * until a rotation signed by it hands over to the next key.
 * require_start: the first record must be seq 1 with a zero prev_hash.
 * Returns EL_OK when intact, EL_ECRYPTO (tampered) or EL_EPARSE with rep->problem set.
 */
enum el_err audit_verify_stream(FILE *f, const unsigned char *pk, int require_start,
    struct audit_verify_report *rep);
/* The same with nkeys given keys (each a node's first key; 0: signatures unchecked):
 * each node's first signature binds it to the given key that verifies it. */
enum el_err audit_verify_stream_keys(FILE *f, const unsigned char (*keys)[32], int nkeys,
    int require_start, struct audit_verify_report *rep);

/*
 * The store checks its own chain (audit_check.c), as node (this node's name; NULL as
 * before nodes): whole == 0, from the record the last checkpoint signs to the head, with
 * pk this node's current public key; whole == 1, from seq 1 with pk this node's first
 * key (learning every rotation). Other nodes' signatures are checked with the keys the
 * chain's own audit.node_joined records announce (and their rotations hand over to).
 * EL_OK when intact (rep->key is then this node's key at the end of the chain, or pk
 * when the chain names no key of it); EL_ECRYPTO with rep->bad_seq and rep->problem
 * naming the first bad record; another error when the store cannot be read.
 */
struct audit_check_report {
	struct audit_verify_report v;  /* what was walked; v.problem says what is wrong */
	int64_t bad_seq;               /* 0 when intact */
	unsigned char key[32];
};
enum el_err audit_check_store(struct store *s, const char *node, const unsigned char *pk,
    int whole, struct audit_check_report *rep);

/*
 * What the chain in the store says of node (audit_check.c), for a node that starts
 * without its key or has not joined yet: named, the seq of the first join or rotation
 * naming it, or with deep (a scan of every checkpoint) checkpoint; joined, the seq of
 * its join; node_aware, whether nodes sign the chain by name (a node joined, or the last
 * checkpoint names one); owner, the node whose join announced pk ("" if none; pk may be
 * NULL). EL_ECRYPTO for a record that cannot
 * be read, another error when the store cannot be.
 */
struct audit_node_info {
	int64_t named, joined;         /* 0: none */
	int64_t named_by_checkpoint;   /* with deep, when only a checkpoint names it */
	int node_aware;
	char owner[AUDIT_NODE_MAX + 1];
};
enum el_err audit_node_info(struct store *s, const char *node, const unsigned char *pk,
    int deep, struct audit_node_info *out);

#endif
