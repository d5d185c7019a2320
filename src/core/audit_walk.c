/*
 * audit_walk.c — owns the rules a chain is checked by, one record at a time: contiguous
 * sequence numbers, each prev_hash equal to the hash before it, each hash recomputed from
 * the canonical form, each checkpoint signed by the current key of the node it names, and
 * each key rotation signed by that node's current key, which then hands over to the key
 * the rotation names. A node's first signature binds it to its key: the given key that
 * verifies it (a key binds to one node only), or, for the store's own check, the key its
 * audit.node_joined announced. Both readers of a chain walk with it: the export verifier
 * (audit_verify_stream) and the store's own check (audit_check.c).
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
	if (pk != NULL)
		audit_walk_add_key(v, pk);
	v->require_start = require_start;
}

enum el_err
audit_walk_add_key(struct audit_walk *v, const unsigned char pk[32])
{
	int i;

	for (i = 0; i < v->nkeys; i++)
		if (sodium_memcmp(v->keys[i], pk, 32) == 0)
			return EL_OK;
	if (v->nkeys == AUDIT_KEYS_MAX)
		return EL_ETOOBIG;
	memcpy(v->keys[v->nkeys], pk, 32);
	v->key_node[v->nkeys++] = -1;
	v->keyed = 1;
	return EL_OK;
}

const struct audit_node *
audit_nodes_find(const struct audit_node *nodes, int n, const char *name)
{
	int i;

	for (i = 0; i < n; i++)
		if (strcmp(nodes[i].name, name) == 0)
			return &nodes[i];
	return NULL;
}

static int
node_index(struct audit_walk *v, const char *name, int add)
{
	const struct audit_node *n = audit_nodes_find(v->nodes, v->nnodes, name);
	struct audit_node *m;

	if (n != NULL)
		return (int)(n - v->nodes);
	if (!add || v->nnodes == AUDIT_NODES_MAX || strlen(name) > AUDIT_NODE_MAX)
		return -1;
	m = &v->nodes[v->nnodes];
	memset(m, 0, sizeof(*m));
	el_strlcpy(m->name, name, sizeof(m->name));
	m->given = -1;
	return v->nnodes++;
}

enum el_err
audit_walk_seed(struct audit_walk *v, const char *node, const unsigned char pk[32])
{
	int i = node_index(v, node, 1);

	if (i < 0)
		return EL_ETOOBIG;
	memcpy(v->nodes[i].key, pk, 32);
	v->nodes[i].bound = 1;
	return EL_OK;
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

/* Does r (a rotation when rotation, else a checkpoint) verify with pk? */
static int
signs(const struct audit_rec *r, int rotation, const unsigned char *pk, unsigned char next[32],
    int64_t *signed_seq)
{
	return rotation ? audit_rotation_verify(r, pk, next, signed_seq) :
	    audit_checkpoint_verify(r, pk, signed_seq);
}

/* Why r (a checkpoint or rotation) verifies with no key node i may have. The wording of a
 * chain from before nodes is as it always was. */
static void
unsigned_problem(const struct audit_walk *v, int i, int rotation, char *problem, size_t plen)
{
	const struct audit_node *n = &v->nodes[i];
	const char *what = rotation ? "key rotation not signed by the current key" :
	    "checkpoint signature does not verify";
	char whose[AUDIT_NODE_MAX + 64];

	if (n->name[0] == '\0') {
		if (rotation)
			snprintf(problem, plen, "%s: a forged or broken rotation", what);
		else
			snprintf(problem, plen, "%s with %s%s", what, v->nkeys > 1 && !n->bound ?
			    "any given key" : "this key", n->rotations > 0 ?
			    " (the key named by the last rotation)" : "");
		return;
	}
	snprintf(whose, sizeof(whose), "%snode %s", rotation ? "of " : "with the key of ",
	    n->name);
	if (n->bound)
		snprintf(problem, plen, "%s %s%s: a forged or broken %s", what, whose,
		    n->rotations > 0 ? " (the key its last rotation named)" : "",
		    rotation ? "rotation" : "checkpoint");
	else if (v->trust_joins && n->joined_seq > 0)
		snprintf(problem, plen, "%s %s: not the key its audit.node_joined (seq %lld) "
		    "announced", what, whose, (long long)n->joined_seq);
	else if (v->trust_joins)
		snprintf(problem, plen, "%s %s: the chain announces no key of node %s (no "
		    "audit.node_joined)", what, whose, n->name);
	else
		snprintf(problem, plen, "%s with any given key: node %s signs here for the first "
		    "time, with a key not given (give node %s's first audit.pub with --pubkey)",
		    what, n->name, n->name);
}

/* A key belongs to one node: is key no other node's current key? */
static enum el_err
key_is_free(const struct audit_walk *v, int i, const unsigned char *key, const char *verb,
    char *problem, size_t plen)
{
	int j;

	for (j = 0; j < v->nnodes; j++)
		if (j != i && v->nodes[j].bound && !v->nodes[j].merged &&
		    sodium_memcmp(v->nodes[j].key, key, 32) == 0) {
			snprintf(problem, plen, "node %s %s the key of node %s: each node has a key "
			    "of its own", v->nodes[i].name[0] ? v->nodes[i].name : "(unnamed)", verb,
			    v->nodes[j].name[0] ? v->nodes[j].name : "(unnamed)");
			return EL_ECRYPTO;
		}
	return EL_OK;
}

/*
 * The node that signed r (a checkpoint, or a rotation), whose signature verifies with its
 * key; next and *signed_seq are set. A node not bound yet binds now: to the key of the
 * signatures that named no node (a chain from before nodes, taken over by the first
 * node named after them), else to a given key no other node holds, else (trust_joins)
 * to the key its join announced. Its index, or -1 with problem set.
 */
static int
signer(struct audit_walk *v, const struct audit_rec *r, int rotation, unsigned char next[32],
    int64_t *signed_seq, char *problem, size_t plen)
{
	const char *name = audit_rec_node(r);
	struct audit_node *n, *old;
	int i, j, g;

	if (name == NULL) {
		snprintf(problem, plen, "%s names no valid node", rotation ?
		    "key rotation" : "checkpoint");
		return -1;
	}
	if ((i = node_index(v, name, 1)) < 0) {
		snprintf(problem, plen, "more than %d nodes sign this chain", AUDIT_NODES_MAX);
		return -1;
	}
	n = &v->nodes[i];
	if (n->bound) {
		if (!signs(r, rotation, n->key, next, signed_seq)) {
			unsigned_problem(v, i, rotation, problem, plen);
			return -1;
		}
		goto signed_ok;
	}
	j = node_index(v, "", 0);
	old = j >= 0 ? &v->nodes[j] : NULL;
	if (name[0] != '\0' && old != NULL && old->bound && !old->merged &&
	    signs(r, rotation, old->key, next, signed_seq)) {
		memcpy(n->key, old->key, sizeof(n->key));
		if ((n->given = old->given) >= 0)
			v->key_node[n->given] = i;
		old->merged = 1;
	} else {
		for (g = 0; g < v->nkeys; g++)
			if (v->key_node[g] < 0 && signs(r, rotation, v->keys[g], next, signed_seq))
				break;
		if (g < v->nkeys) {
			memcpy(n->key, v->keys[g], sizeof(n->key));
			n->given = g;
			v->key_node[g] = i;
		} else if (v->trust_joins && n->joined_seq > 0 &&
		    signs(r, rotation, n->announced, next, signed_seq))
			memcpy(n->key, n->announced, sizeof(n->key));
		else {
			unsigned_problem(v, i, rotation, problem, plen);
			return -1;
		}
	}
	n->bound = 1;
	/* The store's own check holds a node to what its join announced. An export's
	 * verifier trusts the given keys only: a join is a claim anyone could rewrite. */
	if (v->trust_joins && n->joined_seq > 0 &&
	    sodium_memcmp(n->key, n->announced, sizeof(n->key)) != 0) {
		snprintf(problem, plen, "node %s signs with a key other than the one its "
		    "audit.node_joined (seq %lld) announced", n->name, (long long)n->joined_seq);
		return -1;
	}
	if (key_is_free(v, i, n->key, "signs with", problem, plen) != EL_OK)
		return -1;
signed_ok:
	if (n->first_signed == 0)
		n->first_signed = r->seq;
	return i;
}

/* An audit.node_joined: what it announces is checked when the node first signs. */
static enum el_err
joined(struct audit_walk *v, const struct audit_rec *r, char *problem, size_t plen)
{
	unsigned char pk[32];
	const char *name;
	struct audit_node *n;
	int i;

	if (!audit_join_parse(r, &name, pk)) {
		snprintf(problem, plen, "audit.node_joined names no valid node or key");
		return EL_ECRYPTO;
	}
	if ((i = node_index(v, name, 1)) < 0) {
		snprintf(problem, plen, "more than %d nodes sign this chain", AUDIT_NODES_MAX);
		return EL_ECRYPTO;
	}
	n = &v->nodes[i];
	if (n->joined_seq > 0 || n->first_signed > 0) {
		snprintf(problem, plen, "node %s joins again (it %s at seq %lld)", name,
		    n->joined_seq > 0 ? "joined" : "signed", (long long)(n->joined_seq > 0 ?
		    n->joined_seq : n->first_signed));
		return EL_ECRYPTO;
	}
	n->joined_seq = r->seq;
	memcpy(n->announced, pk, sizeof(pk));
	return EL_OK;
}

enum el_err
audit_walk_next(struct audit_walk *v, const struct audit_rec *r,
    const struct audit_canon_hint *hint, char *problem, size_t plen)
{
	unsigned char next[crypto_sign_PUBLICKEYBYTES];
	int64_t signed_seq = 0;
	enum el_err e;
	int ok, i;

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
		if ((i = signer(v, r, 0, next, &signed_seq, problem, plen)) < 0)
			return EL_ECRYPTO;
		v->nodes[i].checkpoints++;
		v->checkpoints++;
		v->last_signed_seq = signed_seq;
		v->last_is_checkpoint = 1;
	} else if (v->keyed && strcmp(r->event, AUDIT_ROTATION_EVENT) == 0) {
		if ((i = signer(v, r, 1, next, &signed_seq, problem, plen)) < 0 ||
		    (e = key_is_free(v, i, next, "rotates to", problem, plen)) != EL_OK)
			return EL_ECRYPTO;
		memcpy(v->nodes[i].key, next, sizeof(v->nodes[i].key));
		v->nodes[i].rotations++;
		v->rotations++;
		v->last_signed_seq = signed_seq;
	} else if (v->keyed && strcmp(r->event, AUDIT_JOIN_EVENT) == 0 &&
	    (e = joined(v, r, problem, plen)) != EL_OK)
		return e;
	memcpy(v->prev, r->hash, sizeof(v->prev));
	v->last_seq = r->seq;
	v->records++;
	v->expect_seq = r->seq + 1;
	return EL_OK;
}

void
audit_walk_report(const struct audit_walk *v, struct audit_verify_report *rep)
{
	int i;

	rep->records = v->records;
	rep->first_seq = v->first_seq;
	rep->last_seq = v->last_seq;
	rep->checkpoints = v->checkpoints;
	rep->rotations = v->rotations;
	rep->nnodes = v->nnodes;
	memcpy(rep->nodes, v->nodes, (size_t)v->nnodes * sizeof(v->nodes[0]));
	rep->nkeys = v->nkeys;
	rep->keys_used = 0;
	for (i = 0; i < v->nkeys; i++)
		rep->keys_used += v->key_node[i] >= 0;
	rep->last_signed_seq = v->last_signed_seq;
	rep->last_is_checkpoint = v->last_is_checkpoint;
}

void
audit_nodes_summary(const struct audit_verify_report *rep, char *buf, size_t len)
{
	struct dbuf b;
	int i, n = 0, first = 1;

	buf[0] = '\0';
	for (i = 0; i < rep->nnodes; i++)
		n += audit_node_signed(&rep->nodes[i]);
	if (n < 2)
		return;
	dbuf_init(&b, len);
	dbuf_printf(&b, " by %d nodes (", n);
	for (i = 0; i < rep->nnodes; i++) {
		if (!audit_node_signed(&rep->nodes[i]))
			continue;
		dbuf_printf(&b, "%s%s %lld", first ? "" : ", ", rep->nodes[i].name[0] ?
		    rep->nodes[i].name : "(unnamed)", (long long)rep->nodes[i].checkpoints);
		first = 0;
	}
	dbuf_printf(&b, ")");
	el_strlcpy(buf, b.p != NULL ? b.p : "", len);
	dbuf_free(&b);
}

int
audit_node_signed(const struct audit_node *n)
{
	return n->bound && !n->merged && n->checkpoints + n->rotations > 0;
}
