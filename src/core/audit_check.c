/*
 * audit_check.c — owns the store's check of its own chain: the records from the last
 * checkpoint on (at every engine start), or the whole chain from seq 1 (`elevated check
 * --audit`), read back from the database and walked with the same rules as an export
 * (audit_walk.c). An edit made straight in the database (sqlite3 UPDATE) is named by its
 * seq. Other nodes' signatures are checked with the keys the chain's own join records
 * announce; and what the chain says of one node (named? joined?) when it starts without
 * its key.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elevate/audit.h"
#include "elevate/reqsig.h"
#include "elevate/store.h"

#define CHECK_BATCH 1000
#define KEYS_BATCH 200

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

/* Reads j (a record as exported) into r, or says why not in problem. */
static enum el_err
rec_of(json_t *j, struct audit_rec *r, char *problem, size_t plen)
{
	struct el_why w = {{0}};

	if (audit_rec_from_json(j, r, &w) == EL_OK)
		return EL_OK;
	snprintf(problem, plen, "seq %lld: %.400s", (long long)json_integer_value(
	    json_object_get(j, "seq")), w.msg);
	return EL_ECRYPTO;
}

/*
 * Each node's key as the chain's own records tell it: its audit.node_joined names its
 * first key, each of its rotations (checked with the key before it) the next. Rotations
 * of a node no join announced (a chain from before nodes) are left to the walk. Fills
 * t (AUDIT_NODES_MAX entries); EL_ECRYPTO with *bad and problem for a join or rotation
 * that does not hold.
 */
static enum el_err
chain_keys(struct store *s, struct audit_node *t, int *nt, int64_t *bad, char *problem,
    size_t plen)
{
	unsigned char next[32];
	int64_t since = 0, ss;
	const struct audit_node *found;
	struct audit_node *n;
	enum el_err e;

	*nt = 0;
	for (;;) {
		json_t *recs, *j;
		size_t i;

		if ((e = store_audit_key_records(s, since, KEYS_BATCH, &recs)) != EL_OK) {
			snprintf(problem, plen, "cannot read the audit chain's keys: %s",
			    store_errmsg());
			return e;
		}
		if (json_array_size(recs) == 0) {
			json_decref(recs);
			return EL_OK;
		}
		json_array_foreach(recs, i, j) {
			struct audit_rec r;
			const char *name;
			unsigned char pk[32];

			if ((e = rec_of(j, &r, problem, plen)) != EL_OK) {
				*bad = json_integer_value(json_object_get(j, "seq"));
				json_decref(recs);
				return e;
			}
			since = *bad = r.seq;
			e = EL_ECRYPTO;
			if (strcmp(r.event, AUDIT_JOIN_EVENT) == 0) {
				if (!audit_join_parse(&r, &name, pk))
					snprintf(problem, plen, "seq %lld: audit.node_joined names no "
					    "valid node or key", (long long)r.seq);
				else if ((found = audit_nodes_find(t, *nt, name)) != NULL)
					snprintf(problem, plen, "seq %lld: node %s joins again (it "
					    "joined at seq %lld)", (long long)r.seq, name,
					    (long long)found->joined_seq);
				else if (*nt == AUDIT_NODES_MAX)
					snprintf(problem, plen, "seq %lld: more than %d nodes sign "
					    "this chain", (long long)r.seq, AUDIT_NODES_MAX);
				else {
					n = &t[(*nt)++];
					memset(n, 0, sizeof(*n));
					el_strlcpy(n->name, name, sizeof(n->name));
					memcpy(n->key, pk, sizeof(pk));
					memcpy(n->announced, pk, sizeof(pk));
					n->bound = 1;
					n->given = -1;
					n->joined_seq = r.seq;
					e = EL_OK;
				}
			} else if ((name = audit_rec_node(&r)) == NULL)
				snprintf(problem, plen, "seq %lld: key rotation names no valid node",
				    (long long)r.seq);
			else if ((found = audit_nodes_find(t, *nt, name)) == NULL)
				e = EL_OK;
			else if (!audit_rotation_verify(&r, found->key, next, &ss))
				snprintf(problem, plen, "seq %lld: key rotation not signed by the "
				    "current key of node %s: a forged or broken rotation",
				    (long long)r.seq, name);
			else {
				n = &t[found - t];
				memcpy(n->key, next, sizeof(next));
				n->rotations++;
				e = EL_OK;
			}
			audit_rec_free(&r);
			if (e != EL_OK) {
				json_decref(recs);
				return e;
			}
		}
		json_decref(recs);
	}
}

/*
 * Sets up the walk from the last checkpoint: every node the chain announces with the key
 * it ends with, this node (and signatures that name none: a chain from before nodes)
 * with pk, which must be the key the chain gives this node.
 */
static enum el_err
seed_walk(struct store *s, struct audit_walk *v, const char *node, const unsigned char *pk,
    struct audit_check_report *rep)
{
	struct audit_node *t;
	char *text = NULL;
	enum el_err e;
	int nt, i;

	if ((t = calloc(AUDIT_NODES_MAX, sizeof(*t))) == NULL)
		return EL_ENOMEM;
	if ((e = chain_keys(s, t, &nt, &rep->bad_seq, rep->v.problem,
	    sizeof(rep->v.problem))) != EL_OK)
		goto out;
	rep->bad_seq = 0;
	for (i = 0; i < nt && e == EL_OK; i++) {
		if (node == NULL || strcmp(t[i].name, node) != 0) {
			e = audit_walk_seed(v, t[i].name, t[i].key);
			continue;
		}
		if (pk != NULL && sodium_memcmp(t[i].key, pk, 32) != 0) {
			text = reqsig_pubkey_format(t[i].key);
			snprintf(rep->v.problem, sizeof(rep->v.problem), "the chain names %s as node "
			    "%s's key (its audit.node_joined at seq %lld%s), not the key of this "
			    "audit.key", text ? text : "another key", node,
			    (long long)t[i].joined_seq, t[i].rotations > 0 ? " and its rotations" : "");
			e = EL_ECRYPTO;
		}
	}
	if (e == EL_OK && pk != NULL && node != NULL)
		e = audit_walk_seed(v, node, pk);
	if (e == EL_OK && pk != NULL)
		e = audit_walk_seed(v, "", pk);
	if (e == EL_ETOOBIG)
		snprintf(rep->v.problem, sizeof(rep->v.problem), "more than %d nodes sign this "
		    "chain", AUDIT_NODES_MAX);
out:
	free(text);
	free(t);
	return e;
}

enum el_err
audit_check_store(struct store *s, const char *node, const unsigned char *pk, int whole,
    struct audit_check_report *rep)
{
	struct audit_walk *v;
	const struct audit_node *me;
	char problem[EL_WHYLEN - 64];
	int64_t since = 0, ckpt = 0, bad;
	enum el_err e = EL_OK;

	memset(rep, 0, sizeof(*rep));
	if (!whole && (e = store_audit_last_event(s, AUDIT_CHECKPOINT_EVENT, &ckpt)) != EL_OK) {
		snprintf(rep->v.problem, sizeof(rep->v.problem), "cannot read the audit chain: %s",
		    store_errmsg());
		return e;
	}
	if ((v = malloc(sizeof(*v))) == NULL)
		return EL_ENOMEM;
	/* From the record the last checkpoint signs: its hash is checked against its content,
	 * and the checkpoint's signature against that hash. */
	since = ckpt > 1 ? ckpt - 2 : 0;
	/* That record's own signature, if it is one (a rotation), was made by a key before
	 * the one the chain ends with: the walk checks signatures from the record after it
	 * on. The whole chain is walked from each node's first key. */
	audit_walk_init(v, whole ? pk : NULL, since == 0);
	v->trust_joins = 1;
	if (!whole && (e = seed_walk(s, v, node, pk, rep)) != EL_OK)
		goto out;
	if (!whole && since == 0)
		v->keyed = pk != NULL;
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
			e = e == EL_EDB && bad > 0 ? EL_ECRYPTO : e;
			goto out;
		}
		if (json_array_size(recs) == 0) {
			json_decref(recs);
			break;
		}
		json_array_foreach(recs, i, j) {
			struct audit_rec r;

			if ((e = rec_of(j, &r, rep->v.problem, sizeof(rep->v.problem))) != EL_OK) {
				rep->bad_seq = json_integer_value(json_object_get(j, "seq"));
				json_decref(recs);
				goto out;
			}
			bad = v->records > 0 && r.seq > v->expect_seq ? v->expect_seq : r.seq;
			e = audit_walk_next(v, &r, NULL, problem, sizeof(problem));
			if (e == EL_OK && v->records == 1 && !whole && pk != NULL)
				v->keyed = 1;
			since = r.seq;
			audit_rec_free(&r);
			if (e != EL_OK) {
				rep->bad_seq = bad;
				snprintf(rep->v.problem, sizeof(rep->v.problem), "seq %lld: %s",
				    (long long)bad, problem);
				json_decref(recs);
				e = EL_ECRYPTO;
				goto out;
			}
		}
		json_decref(recs);
	}
	audit_walk_report(v, &rep->v);
	/* This node's key at the end: its own, or (a chain from before nodes) the one its
	 * unnamed signatures end with, or pk when nothing it signed was walked. */
	me = node != NULL ? audit_nodes_find(v->nodes, v->nnodes, node) : NULL;
	if (me != NULL && me->bound)
		memcpy(rep->key, me->key, sizeof(rep->key));
	else if ((me = audit_nodes_find(v->nodes, v->nnodes, "")) != NULL && me->bound &&
	    !me->merged)
		memcpy(rep->key, me->key, sizeof(rep->key));
	else if (pk != NULL)
		memcpy(rep->key, pk, sizeof(rep->key));
out:
	free(v);
	return e;
}

/* Does the last checkpoint name a node? Then the chain is one nodes sign. */
static enum el_err
last_checkpoint_named(struct store *s, int *aware)
{
	struct store_audit_filter f;
	struct audit_rec r;
	struct el_why w = {{0}};
	int64_t seq = 0;
	json_t *recs;
	enum el_err e;

	*aware = 0;
	if ((e = store_audit_last_event(s, AUDIT_CHECKPOINT_EVENT, &seq)) != EL_OK || seq == 0)
		return e;
	memset(&f, 0, sizeof(f));
	f.since_seq = seq - 1;
	f.limit = 1;
	if ((e = store_audit_list(s, &f, &recs)) != EL_OK)
		return e;
	if (json_array_size(recs) == 1 &&
	    audit_rec_from_json(json_array_get(recs, 0), &r, &w) == EL_OK) {
		const char *name = audit_rec_node(&r);

		*aware = name != NULL && name[0] != '\0';
		audit_rec_free(&r);
	}
	json_decref(recs);
	return EL_OK;
}

/* The first checkpoint naming node (0 if none): a scan of every checkpoint. */
static enum el_err
first_checkpoint_of(struct store *s, const char *node, int64_t *seq)
{
	struct store_audit_filter f;
	enum el_err e;

	*seq = 0;
	memset(&f, 0, sizeof(f));
	f.event = AUDIT_CHECKPOINT_EVENT;
	f.limit = CHECK_BATCH;
	for (;;) {
		json_t *recs, *j;
		size_t i;

		if ((e = store_audit_list(s, &f, &recs)) != EL_OK)
			return e;
		if (json_array_size(recs) == 0) {
			json_decref(recs);
			return EL_OK;
		}
		json_array_foreach(recs, i, j) {
			json_t *n = json_object_get(json_object_get(j, "data"), "node");

			f.since_seq = json_integer_value(json_object_get(j, "seq"));
			if (json_is_string(n) && strcmp(json_string_value(n), node) == 0) {
				*seq = f.since_seq;
				break;
			}
		}
		json_decref(recs);
		if (*seq > 0)
			return EL_OK;
	}
}

enum el_err
audit_node_info(struct store *s, const char *node, const unsigned char *pk, int deep,
    struct audit_node_info *out)
{
	int64_t since = 0;
	enum el_err e;

	memset(out, 0, sizeof(*out));
	for (;;) {
		json_t *recs, *j;
		size_t i;

		if ((e = store_audit_key_records(s, since, KEYS_BATCH, &recs)) != EL_OK)
			return e;
		if (json_array_size(recs) == 0) {
			json_decref(recs);
			break;
		}
		json_array_foreach(recs, i, j) {
			struct audit_rec r;
			struct el_why w = {{0}};
			unsigned char key[32];
			const char *name;
			int join;

			if (audit_rec_from_json(j, &r, &w) != EL_OK) {
				json_decref(recs);
				return EL_ECRYPTO;
			}
			since = r.seq;
			memset(key, 0, sizeof(key));
			if ((join = strcmp(r.event, AUDIT_JOIN_EVENT) == 0)) {
				if (!audit_join_parse(&r, &name, key))
					name = NULL;
			} else
				name = audit_rec_node(&r);
			if (join && name != NULL)
				out->node_aware = 1;
			if (name != NULL && strcmp(name, node) == 0) {
				if (out->named == 0)
					out->named = r.seq;
				if (join && out->joined == 0)
					out->joined = r.seq;
			} else if (name != NULL && join && pk != NULL && out->owner[0] == '\0' &&
			    sodium_memcmp(key, pk, sizeof(key)) == 0)
				el_strlcpy(out->owner, name, sizeof(out->owner));
			audit_rec_free(&r);
		}
		json_decref(recs);
	}
	/* Nodes join before they sign: a join, or a checkpoint naming a node, says so. */
	if (!out->node_aware && (e = last_checkpoint_named(s, &out->node_aware)) != EL_OK)
		return e;
	if (deep && out->named == 0 && (e = first_checkpoint_of(s, node,
	    &out->named_by_checkpoint)) == EL_OK)
		out->named = out->named_by_checkpoint;
	return e;
}
