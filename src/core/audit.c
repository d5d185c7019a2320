/*
 * audit.c — owns the audit chain: canonical form of a record, its BLAKE2b-256 link to the
 * previous one, appending inside the caller's store transaction, signed checkpoints, and
 * verification of an exported JSON Lines chain.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "elevate/audit.h"
#include "elevate/store.h"

#define CANON_FLAGS (JSON_COMPACT | JSON_SORT_KEYS)
#define AUDIT_MAX_LINE (AUDIT_MAX_RECORD + 1024)
#define CHECKPOINT_MSG_MAX (160 + AUDIT_NODE_MAX)

char *
audit_canonical(const struct audit_rec *r)
{
	json_t *o;
	char *s;

	o = json_pack("{s:I, s:s, s:s, s:s, s:o?, s:O}", "seq", (json_int_t)r->seq,
	    "time", r->time, "actor", r->actor, "event", r->event,
	    "request_id", r->request_id ? json_string(r->request_id) : json_null(),
	    "data", r->data ? r->data : json_object());
	if (o == NULL)
		return NULL;
	s = json_dumps(o, CANON_FLAGS);
	json_decref(o);
	return s;
}

void
audit_chain_hash(const unsigned char prev[AUDIT_HASH_BYTES], const char *canonical,
    unsigned char out[AUDIT_HASH_BYTES])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, AUDIT_HASH_BYTES);
	crypto_generichash_update(&st, prev, AUDIT_HASH_BYTES);
	crypto_generichash_update(&st, (const unsigned char *)canonical, strlen(canonical));
	crypto_generichash_final(&st, out, AUDIT_HASH_BYTES);
}

static void
now_ms_string(char *buf, size_t len)
{
	char base[32];
	int64_t ms = el_now_ms();

	el_format_time(ms / 1000, base, sizeof(base));
	base[strlen(base) - 1] = '\0';   /* drop the Z */
	snprintf(buf, len, "%.19s.%03dZ", base, (int)(ms % 1000));
}

enum el_err
audit_append(struct store *s, const char *actor, const char *event, const char *request_id,
    json_t *data, struct el_why *w)
{
	struct audit_rec r;
	json_t *empty = NULL;
	char *canon = NULL;
	enum el_err e;

	memset(&r, 0, sizeof(r));
	/* The tail read and the insert must be one write transaction (on PostgreSQL, under
	 * the lock every node's writers share): outside one, two appenders could both take
	 * the same tail. */
	if (!store_in_transaction(s))
		return el_fail(w, EL_EINVAL, "audit record %s written outside a store "
		    "transaction", event);
	if (data == NULL)
		data = empty = json_object();
	if ((e = store_audit_tail(s, &r.seq, r.prev_hash)) != EL_OK)
		goto out;
	r.seq++;
	now_ms_string(r.time, sizeof(r.time));
	r.actor = (char *)(uintptr_t)actor;
	r.event = (char *)(uintptr_t)event;
	r.request_id = (char *)(uintptr_t)request_id;
	r.data = data;
	if ((canon = audit_canonical(&r)) == NULL) {
		e = EL_ENOMEM;
		goto out;
	}
	if (strlen(canon) > AUDIT_MAX_RECORD) {
		e = el_fail(w, EL_ETOOBIG, "audit record for %s too large", event);
		goto out;
	}
	audit_chain_hash(r.prev_hash, canon, r.hash);
	e = store_audit_insert(s, &r);
out:
	if (e != EL_OK && w != NULL && w->msg[0] == '\0')
		el_fail(w, e, "cannot write audit record %s: %s", event, el_strerror(e));
	free(canon);
	json_decref(empty);
	return e;
}

/* "elevate-audit-checkpoint\n" SEQ "\n" HEX, and "\n" NODE when it names one (node NULL
 * or absent: as before nodes). A node's name holds no newline: the two never collide. */
static void
checkpoint_message(int64_t seq, const char *hexhash, const char *node, char *buf, size_t len)
{
	snprintf(buf, len, "elevate-audit-checkpoint\n%lld\n%s%s%s", (long long)seq, hexhash,
	    node != NULL ? "\n" : "", node != NULL ? node : "");
}

enum el_err
audit_checkpoint(struct store *s, const char *node, const unsigned char sk[64],
    struct el_why *w)
{
	unsigned char head[AUDIT_HASH_BYTES], sig[crypto_sign_BYTES];
	char hex[2 * AUDIT_HASH_BYTES + 1], msg[CHECKPOINT_MSG_MAX], *b64;
	int64_t seq;
	json_t *data;
	enum el_err e;

	if ((e = store_audit_tail(s, &seq, head)) != EL_OK)
		return e;
	el_hex(head, sizeof(head), hex);
	checkpoint_message(seq, hex, node, msg, sizeof(msg));
	crypto_sign_detached(sig, NULL, (const unsigned char *)msg, strlen(msg), sk);
	if ((b64 = el_b64_encode(sig, sizeof(sig))) == NULL)
		return EL_ENOMEM;
	data = json_pack("{s:I, s:s, s:s, s:s*}", "signed_seq", (json_int_t)seq, "signed_hash",
	    hex, "sig", b64, "node", node);
	free(b64);
	if (data == NULL)
		return EL_ENOMEM;
	e = audit_append(s, "system", AUDIT_CHECKPOINT_EVENT, NULL, data, w);
	json_decref(data);
	return e;
}

const char *
audit_rec_node(const struct audit_rec *r)
{
	json_t *n = json_object_get(r->data, "node");
	const char *s;
	size_t len;

	if (n == NULL)
		return "";
	if (!json_is_string(n))
		return NULL;
	s = json_string_value(n);
	len = strlen(s);
	/* config's rule for a node's name: [A-Za-z0-9._-]{1,64} */
	if (len < 1 || len > AUDIT_NODE_MAX || strspn(s, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != len)
		return NULL;
	return s;
}

json_t *
audit_rec_json(const struct audit_rec *r)
{
	char ph[2 * AUDIT_HASH_BYTES + 1], h[2 * AUDIT_HASH_BYTES + 1];

	el_hex(r->prev_hash, AUDIT_HASH_BYTES, ph);
	el_hex(r->hash, AUDIT_HASH_BYTES, h);
	return json_pack("{s:I, s:s, s:s, s:s, s:o?, s:O, s:s, s:s}", "seq", (json_int_t)r->seq,
	    "time", r->time, "actor", r->actor, "event", r->event,
	    "request_id", r->request_id ? json_string(r->request_id) : json_null(),
	    "data", r->data, "prev_hash", ph, "hash", h);
}

static enum el_err
unhex(const char *s, unsigned char out[AUDIT_HASH_BYTES])
{
	size_t n;

	if (s == NULL || strlen(s) != 2 * AUDIT_HASH_BYTES)
		return EL_EPARSE;
	if (sodium_hex2bin(out, AUDIT_HASH_BYTES, s, strlen(s), NULL, &n, NULL) != 0 ||
	    n != AUDIT_HASH_BYTES)
		return EL_EPARSE;
	return EL_OK;
}

enum el_err
audit_rec_from_json(json_t *j, struct audit_rec *r, struct el_why *w)
{
	const char *time = NULL, *actor = NULL, *event = NULL, *ph = NULL, *h = NULL;
	json_t *rid = NULL, *data = NULL;
	json_int_t seq = 0;
	json_error_t je;

	memset(r, 0, sizeof(r[0]));
	if (json_unpack_ex(j, &je, JSON_STRICT, "{s:I, s:s, s:s, s:s, s:o, s:o, s:s, s:s}",
	    "seq", &seq, "time", &time, "actor", &actor, "event", &event, "request_id", &rid,
	    "data", &data, "prev_hash", &ph, "hash", &h) != 0)
		return el_fail(w, EL_EPARSE, "not an audit record: %s", je.text);
	if (!json_is_object(data) || !(json_is_null(rid) || json_is_string(rid)))
		return el_fail(w, EL_EPARSE, "not an audit record: bad data or request_id");
	if (unhex(ph, r->prev_hash) != EL_OK || unhex(h, r->hash) != EL_OK)
		return el_fail(w, EL_EPARSE, "not an audit record: bad hash");
	/* Real chains start at 1; INT64_MAX would overflow the next expected seq. */
	if (seq < 1 || seq == INT64_MAX)
		return el_fail(w, EL_EPARSE, "not an audit record: bad seq");
	if (strlen(time) >= sizeof(r->time))
		return el_fail(w, EL_EPARSE, "not an audit record: bad time");
	r->seq = seq;
	el_strlcpy(r->time, time, sizeof(r->time));
	r->actor = strdup(actor);
	r->event = strdup(event);
	r->request_id = json_is_string(rid) ? strdup(json_string_value(rid)) : NULL;
	r->data = json_incref(data);
	if (r->actor == NULL || r->event == NULL) {
		audit_rec_free(r);
		return EL_ENOMEM;
	}
	return EL_OK;
}

void
audit_rec_free(struct audit_rec *r)
{
	free(r->actor);
	free(r->event);
	free(r->request_id);
	json_decref(r->data);
	memset(r, 0, sizeof(*r));
}

int
audit_checkpoint_verify(const struct audit_rec *r, const unsigned char *pk,
    int64_t *signed_seq)
{
	json_int_t seq;
	const char *hex, *sig, *node;
	unsigned char raw[crypto_sign_BYTES + 4], want[AUDIT_HASH_BYTES];
	char msg[CHECKPOINT_MSG_MAX];
	size_t n;

	if (json_unpack(r->data, "{s:I, s:s, s:s}", "signed_seq", &seq, "signed_hash", &hex,
	    "sig", &sig) != 0 || (node = audit_rec_node(r)) == NULL)
		return 0;
	if (el_b64_decode(sig, raw, sizeof(raw), &n) != EL_OK || n != crypto_sign_BYTES)
		return 0;
	if (unhex(hex, want) != EL_OK)
		return 0;
	/* A checkpoint signs the head just before it: the record it links to. */
	if (seq != r->seq - 1 || sodium_memcmp(r->prev_hash, want, AUDIT_HASH_BYTES) != 0)
		return 0;
	/* A checkpoint without "node" was signed before nodes, over the old message. */
	checkpoint_message(seq, hex, node[0] != '\0' ? node : NULL, msg, sizeof(msg));
	if (crypto_sign_verify_detached(raw, (const unsigned char *)msg, strlen(msg), pk) != 0)
		return 0;
	*signed_seq = seq;
	return 1;
}

/*
 * An exported line is the canonical form with "hash" and "prev_hash" put in, in key
 * order, just before "request_id": the canonical form is the line without them, and
 * needs no second serialisation. The last `,"hash":"` of a line is the top-level one
 * (only request_id, seq and time follow it, which hold no unescaped quote). Whatever
 * this finds is only a hint: audit_walk_next() accepts it only if it hashes right.
 */
#define HASH_FIELDS_LEN (8 + 2 * AUDIT_HASH_BYTES + 15 + 2 * AUDIT_HASH_BYTES + 2)
static int
line_hint(const char *line, size_t len, struct audit_canon_hint *h)
{
	static const char pat[] = ",\"hash\":\"";
	const char *p = line, *q, *last = NULL, *f;

	while (len > 0 && line[len - 1] == '\n')
		len--;
	while ((q = memmem(p, len - (size_t)(p - line), pat, sizeof(pat) - 1)) != NULL) {
		last = q;
		p = q + 1;
	}
	if (last == NULL || (size_t)(last - line) + 1 + HASH_FIELDS_LEN >= len)
		return 0;
	f = last + 1;
	if (memcmp(f + 8 + 2 * AUDIT_HASH_BYTES, "\",\"prev_hash\":\"", 15) != 0 ||
	    memcmp(f + HASH_FIELDS_LEN - 2, "\",", 2) != 0)
		return 0;
	h->a = line;
	h->alen = (size_t)(f - line);
	h->b = f + HASH_FIELDS_LEN;
	h->blen = len - (size_t)(h->b - line);
	return 1;
}

enum el_err
audit_verify_stream(FILE *f, const unsigned char *pk, int require_start,
    struct audit_verify_report *rep)
{
	unsigned char k[1][32];

	if (pk != NULL)
		memcpy(k[0], pk, sizeof(k[0]));
	return audit_verify_stream_keys(f, k, pk != NULL ? 1 : 0, require_start, rep);
}

enum el_err
audit_verify_stream_keys(FILE *f, const unsigned char (*keys)[32], int nkeys,
    int require_start, struct audit_verify_report *rep)
{
	struct audit_walk v;
	struct audit_canon_hint hint;
	char *line = NULL, problem[EL_WHYLEN - 64];
	size_t linecap = 0;
	ssize_t len;
	int64_t lineno = 0;
	enum el_err e = EL_OK;
	int i;

	memset(rep, 0, sizeof(*rep));
	audit_walk_init(&v, nkeys > 0 ? keys[0] : NULL, require_start);
	for (i = 1; i < nkeys; i++)
		if (audit_walk_add_key(&v, keys[i]) != EL_OK) {
			snprintf(rep->problem, sizeof(rep->problem), "more than %d keys",
			    AUDIT_KEYS_MAX);
			return EL_EINVAL;
		}
	while ((len = getline(&line, &linecap, f)) >= 0) {
		struct audit_rec r;
		struct el_why w = {{0}};
		json_error_t je;
		json_t *j;

		lineno++;
		if (len == 0 || (len == 1 && line[0] == '\n'))
			continue;
		if (len > AUDIT_MAX_LINE) {
			snprintf(rep->problem, sizeof(rep->problem), "line %lld: longer than %d bytes",
			    (long long)lineno, AUDIT_MAX_LINE);
			e = EL_EPARSE;
			break;
		}
		if ((j = json_loadb(line, (size_t)len, JSON_REJECT_DUPLICATES, &je)) == NULL) {
			snprintf(rep->problem, sizeof(rep->problem), "line %lld: not JSON: %.200s",
			    (long long)lineno, je.text);
			e = EL_EPARSE;
			break;
		}
		e = audit_rec_from_json(j, &r, &w);
		json_decref(j);
		if (e != EL_OK) {
			snprintf(rep->problem, sizeof(rep->problem), "line %lld: %.400s",
			    (long long)lineno, w.msg);
			break;
		}
		e = audit_walk_next(&v, &r, line_hint(line, (size_t)len, &hint) ? &hint : NULL,
		    problem, sizeof(problem));
		if (e != EL_OK)
			snprintf(rep->problem, sizeof(rep->problem), "line %lld (seq %lld): %s",
			    (long long)lineno, (long long)r.seq, problem);
		audit_rec_free(&r);
		if (e != EL_OK)
			break;
	}
	audit_walk_report(&v, rep);
	if (e != EL_OK)
		rep->bad_line = lineno;
	else if (rep->records == 0) {
		snprintf(rep->problem, sizeof(rep->problem), "no audit records");
		e = EL_EPARSE;
	}
	free(line);
	return e;
}
