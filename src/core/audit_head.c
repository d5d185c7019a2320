/*
 * audit_head.c — owns the signed head of the audit chain: the small document (seq, hash,
 * time, Ed25519 signature) the broker publishes after each checkpoint, so that a verifier
 * holding a copy can tell an export that was cut short from a whole one.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "elevate/audit_export.h"

#define HEAD_MAX 4096

static void
head_message(const struct audit_head *h, char *buf, size_t len)
{
	snprintf(buf, len, "elevate-audit-head\n%lld\n%s\n%s", (long long)h->seq, h->hash,
	    h->time);
}

char *
audit_head_sign(const struct audit_head *h, const unsigned char sk[64])
{
	unsigned char sig[crypto_sign_BYTES];
	char msg[256], *b64, *out;
	json_t *j;

	head_message(h, msg, sizeof(msg));
	crypto_sign_detached(sig, NULL, (const unsigned char *)msg, strlen(msg), sk);
	if ((b64 = el_b64_encode(sig, sizeof(sig))) == NULL)
		return NULL;
	j = json_pack("{s:I, s:s, s:s, s:s}", "seq", (json_int_t)h->seq, "hash", h->hash,
	    "time", h->time, "sig", b64);
	free(b64);
	if (j == NULL)
		return NULL;
	out = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(j);
	return out;
}

enum el_err
audit_head_parse(const char *text, size_t len, const unsigned char *pk, struct audit_head *h,
    struct el_why *w)
{
	unsigned char sig[crypto_sign_BYTES + 4];
	const char *hash, *time, *b64;
	char msg[256];
	json_int_t seq;
	json_error_t je;
	json_t *j;
	size_t n;
	enum el_err r = EL_OK;

	memset(h, 0, sizeof(*h));
	if (len > HEAD_MAX)
		return el_fail(w, EL_EPARSE, "not an audit head: longer than %d bytes", HEAD_MAX);
	if ((j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je)) == NULL)
		return el_fail(w, EL_EPARSE, "not an audit head: %s", je.text);
	if (json_unpack_ex(j, &je, JSON_STRICT, "{s:I, s:s, s:s, s:s}", "seq", &seq, "hash",
	    &hash, "time", &time, "sig", &b64) != 0) {
		r = el_fail(w, EL_EPARSE, "not an audit head: %s", je.text);
		goto out;
	}
	if (seq < 1 || strlen(hash) != 2 * AUDIT_HASH_BYTES ||
	    strspn(hash, "0123456789abcdef") != 2 * AUDIT_HASH_BYTES ||
	    strlen(time) >= sizeof(h->time)) {
		r = el_fail(w, EL_EPARSE, "not an audit head: bad seq, hash or time");
		goto out;
	}
	h->seq = seq;
	memcpy(h->hash, hash, sizeof(h->hash));
	el_strlcpy(h->time, time, sizeof(h->time));
	if (pk == NULL)
		goto out;
	head_message(h, msg, sizeof(msg));
	if (el_b64_decode(b64, sig, sizeof(sig), &n) != EL_OK || n != crypto_sign_BYTES ||
	    crypto_sign_verify_detached(sig, (const unsigned char *)msg, strlen(msg), pk) != 0)
		r = el_fail(w, EL_ECRYPTO, "the head's signature does not verify with this key");
out:
	json_decref(j);
	return r;
}
