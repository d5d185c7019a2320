/*
 * audit_key.c — owns the records that tell a chain's keys: a node's join (event
 * audit.node_joined), announcing the first key of a node that begins to sign, and the
 * hand-over from one of its keys to the next (event audit.key_rotated), signed by the old
 * key and naming the new one. Each is followed at once by a checkpoint the new key
 * signs. A verifier that holds a node's first public key learns every later key of it
 * from the chain itself.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elevate/audit.h"
#include "elevate/reqsig.h"
#include "elevate/store.h"

#define ROTATION_MSG_MAX (256 + AUDIT_NODE_MAX)

/* "elevate-audit-key-rotation\n" SEQ "\n" HEX "\n" "ed25519:BASE64", and "\n" NODE when
 * it names one (NULL: as before nodes). */
static void
rotation_message(int64_t seq, const char *hexhash, const char *newkey, const char *node,
    char *buf, size_t len)
{
	snprintf(buf, len, "elevate-audit-key-rotation\n%lld\n%s\n%s%s%s", (long long)seq,
	    hexhash, newkey, node != NULL ? "\n" : "", node != NULL ? node : "");
}

enum el_err
audit_rotate(struct store *s, const char *node,
    const unsigned char old_sk[crypto_sign_SECRETKEYBYTES],
    const unsigned char new_sk[crypto_sign_SECRETKEYBYTES], struct el_why *w)
{
	unsigned char head[AUDIT_HASH_BYTES], sig[crypto_sign_BYTES];
	unsigned char new_pk[crypto_sign_PUBLICKEYBYTES];
	char hex[2 * AUDIT_HASH_BYTES + 1], msg[ROTATION_MSG_MAX], *b64 = NULL, *newkey = NULL;
	int64_t seq;
	json_t *data = NULL;
	enum el_err e;

	if ((e = store_audit_tail(s, &seq, head)) != EL_OK)
		return el_fail(w, e, "cannot read the audit chain's head: %s", store_errmsg());
	crypto_sign_ed25519_sk_to_pk(new_pk, new_sk);
	if ((newkey = reqsig_pubkey_format(new_pk)) == NULL) {
		e = EL_ENOMEM;
		goto out;
	}
	el_hex(head, sizeof(head), hex);
	rotation_message(seq, hex, newkey, node, msg, sizeof(msg));
	crypto_sign_detached(sig, NULL, (const unsigned char *)msg, strlen(msg), old_sk);
	if ((b64 = el_b64_encode(sig, sizeof(sig))) == NULL ||
	    (data = json_pack("{s:I, s:s, s:s, s:s, s:s*}", "signed_seq", (json_int_t)seq,
	    "signed_hash", hex, "new_key", newkey, "sig", b64, "node", node)) == NULL) {
		e = EL_ENOMEM;
		goto out;
	}
	if ((e = audit_append(s, "system", AUDIT_ROTATION_EVENT, NULL, data, w)) != EL_OK)
		goto out;
	/* The new key vouches for the rotation record at once: the store's own check at
	 * start and every verifier find the chain's head signed by the current key. */
	e = audit_checkpoint(s, node, new_sk, w);
out:
	free(b64);
	free(newkey);
	json_decref(data);
	return e;
}

enum el_err
audit_join(struct store *s, const char *node, const unsigned char sk[crypto_sign_SECRETKEYBYTES],
    struct el_why *w)
{
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	char *text;
	json_t *data;
	enum el_err e;

	crypto_sign_ed25519_sk_to_pk(pk, sk);
	if ((text = reqsig_pubkey_format(pk)) == NULL)
		return EL_ENOMEM;
	data = json_pack("{s:s, s:s}", "node", node, "public_key", text);
	free(text);
	if (data == NULL)
		return EL_ENOMEM;
	e = audit_append(s, "system", AUDIT_JOIN_EVENT, NULL, data, w);
	json_decref(data);
	/* The new key vouches at once for the record that names it. */
	if (e == EL_OK)
		e = audit_checkpoint(s, node, sk, w);
	return e;
}

/* Only the one spelling of a key ("ed25519:" and 44 characters of padded base64): every
 * verifier reads the same key from it. */
static int
key_text_parse(const char *text, unsigned char pk[crypto_sign_PUBLICKEYBYTES])
{
	char *again;
	int same;

	if (reqsig_pubkey_parse(text, pk) != EL_OK || (again = reqsig_pubkey_format(pk)) == NULL)
		return 0;
	same = strcmp(again, text) == 0;
	free(again);
	return same;
}

int
audit_join_parse(const struct audit_rec *r, const char **node,
    unsigned char pk[crypto_sign_PUBLICKEYBYTES])
{
	const char *key;

	if (json_unpack(r->data, "{s:s}", "public_key", &key) != 0 ||
	    (*node = audit_rec_node(r)) == NULL || (*node)[0] == '\0')
		return 0;
	return key_text_parse(key, pk);
}

int
audit_rotation_verify(const struct audit_rec *r, const unsigned char *pk,
    unsigned char next[crypto_sign_PUBLICKEYBYTES], int64_t *signed_seq)
{
	json_int_t seq;
	const char *hex, *sig, *newkey, *node;
	unsigned char raw[crypto_sign_BYTES + 4], want[AUDIT_HASH_BYTES];
	char msg[ROTATION_MSG_MAX];
	size_t n;

	if (json_unpack(r->data, "{s:I, s:s, s:s, s:s}", "signed_seq", &seq, "signed_hash",
	    &hex, "new_key", &newkey, "sig", &sig) != 0 || (node = audit_rec_node(r)) == NULL)
		return 0;
	if (el_b64_decode(sig, raw, sizeof(raw), &n) != EL_OK || n != crypto_sign_BYTES)
		return 0;
	if (strlen(hex) != 2 * AUDIT_HASH_BYTES || sodium_hex2bin(want, sizeof(want), hex,
	    strlen(hex), NULL, &n, NULL) != 0 || n != AUDIT_HASH_BYTES)
		return 0;
	/* Like a checkpoint, a rotation signs the head just before it. */
	if (seq != r->seq - 1 || sodium_memcmp(r->prev_hash, want, AUDIT_HASH_BYTES) != 0)
		return 0;
	if (!key_text_parse(newkey, next))
		return 0;
	rotation_message(seq, hex, newkey, node[0] != '\0' ? node : NULL, msg, sizeof(msg));
	if (crypto_sign_verify_detached(raw, (const unsigned char *)msg, strlen(msg), pk) != 0)
		return 0;
	*signed_seq = seq;
	return 1;
}
