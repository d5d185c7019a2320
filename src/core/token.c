/*
 * token.c — owns the broker's token-signing key (state_dir/token.key) and the approval
 * link tokens it signs and verifies, with the key's memo of tokens that verified. The
 * format is described in token.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "elevate/el.h"
#include "elevate/token.h"

#define TOKEN_VERSION  1
#define SIG_LEN        crypto_sign_BYTES
#define SEED_LEN       crypto_sign_SEEDBYTES
/* Signed before the payload: a signature made for anything else never verifies here. */
static const char token_context[] = "elevate approval token v1";
#define CTX_LEN        (sizeof(token_context))   /* the NUL is part of it */
#define PAYLOAD_MIN    (1 + 1 + 1 + 1 + 1 + 8 + TOKEN_NONCE_LEN)
#define PAYLOAD_MAX    (1 + 1 + TOKEN_FIELD_MAX + 1 + TOKEN_FIELD_MAX + 8 + TOKEN_NONCE_LEN)
#define KEYFILE_MAX    128      /* base64 of a 32-byte seed and a newline */
#define MEMO_SLOTS     512      /* tokens remembered per key; a power of two */
#define MEMO_HASH      32

/*
 * Tokens that verified under one key, by a keyed BLAKE2b of their text: the same text
 * verifies the same way under the same key, so an approval page opened again costs a
 * hash instead of an Ed25519 check. Only the claims are kept (no token, no signature);
 * the expiry is compared with the caller's time on every use. Direct-mapped: a token
 * whose slot another took is simply verified again.
 */
struct memo {
	pthread_mutex_t mu;
	unsigned char hkey[crypto_generichash_KEYBYTES];
	struct memo_slot {
		bool used;
		unsigned char h[MEMO_HASH];
		struct token_claims c;
	} slot[MEMO_SLOTS];
};

/* The key pair, in sodium_malloc'd memory left read-only. */
struct token_secret {
	unsigned char sk[crypto_sign_SECRETKEYBYTES];
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
};

struct token_key {
	struct token_secret *s;
	struct memo *memo;            /* ordinary memory: it holds nothing secret */
};

/* The key of a seed, with an empty memo; token_key_free() frees it. */
static enum el_err
key_from_seed(const unsigned char seed[SEED_LEN], struct token_key **out)
{
	struct token_key *k;

	if ((k = calloc(1, sizeof(*k))) == NULL)
		return EL_ENOMEM;
	if ((k->memo = calloc(1, sizeof(*k->memo))) == NULL ||
	    (k->s = sodium_malloc(sizeof(*k->s))) == NULL) {
		free(k->memo);
		free(k);
		return EL_ENOMEM;
	}
	crypto_sign_seed_keypair(k->s->pk, k->s->sk, seed);
	sodium_mprotect_readonly(k->s);
	pthread_mutex_init(&k->memo->mu, NULL);
	randombytes_buf(k->memo->hkey, sizeof(k->memo->hkey));
	*out = k;
	return EL_OK;
}

void
token_key_free(struct token_key *key)
{
	if (key == NULL)
		return;
	sodium_mprotect_readwrite(key->s);
	sodium_memzero(key->s, sizeof(*key->s));
	sodium_free(key->s);
	pthread_mutex_destroy(&key->memo->mu);
	sodium_memzero(key->memo, sizeof(*key->memo));
	free(key->memo);
	free(key);
}

void
token_key_public(const struct token_key *key, unsigned char pk[32])
{
	memcpy(pk, key->s->pk, crypto_sign_PUBLICKEYBYTES);
}

static enum el_err
key_load(const char *path, struct token_key **out, struct el_why *w)
{
	char buf[KEYFILE_MAX + 1];
	unsigned char seed[SEED_LEN];
	struct stat st;
	size_t len = 0, n;
	ssize_t got;
	int fd;
	enum el_err r = EL_OK;

	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return el_fail(w, errno == ENOENT ? EL_ENOENT : EL_EIO, "%s: %s", path,
		    strerror(errno));
	if (fstat(fd, &st) != 0) {
		r = el_fail(w, EL_EIO, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = el_fail(w, EL_ECONFIG, "%s: not a regular file", path);
		goto out;
	}
	if ((st.st_mode & 077) != 0) {
		r = el_fail(w, EL_ECONFIG, "%s: mode %03o lets others read or change the token "
		    "key; run chmod 600 on it", path, (unsigned)(st.st_mode & 0777));
		goto out;
	}
	if (st.st_uid != geteuid()) {
		r = el_fail(w, EL_ECONFIG, "%s: owned by uid %u, not by this user (uid %u)",
		    path, (unsigned)st.st_uid, (unsigned)geteuid());
		goto out;
	}
	while (len < sizeof(buf)) {
		got = read(fd, buf + len, sizeof(buf) - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			r = el_fail(w, EL_EIO, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (got == 0)
			break;
		len += (size_t)got;
	}
	if (len > KEYFILE_MAX) {
		r = el_fail(w, EL_ECONFIG, "%s: not a token key (too long)", path);
		goto out;
	}
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	buf[len] = '\0';
	if (el_b64_decode(buf, seed, sizeof(seed), &n) != EL_OK || n != SEED_LEN) {
		r = el_fail(w, EL_ECONFIG, "%s: not a token key (want the base64 of %d bytes)",
		    path, SEED_LEN);
		goto out;
	}
	if ((r = key_from_seed(seed, out)) != EL_OK)
		el_fail(w, r, "token key: out of secure memory");
out:
	close(fd);
	sodium_memzero(buf, sizeof(buf));
	sodium_memzero(seed, sizeof(seed));
	return r;
}

enum el_err
token_key_write(const char *path, int replace, struct el_why *w)
{
	char b64[sodium_base64_ENCODED_LEN(SEED_LEN, sodium_base64_VARIANT_ORIGINAL) + 1];
	unsigned char seed[SEED_LEN];
	size_t len;
	enum el_err r;

	randombytes_buf(seed, sizeof(seed));
	sodium_bin2base64(b64, sizeof(b64) - 1, seed, sizeof(seed),
	    sodium_base64_VARIANT_ORIGINAL);
	len = strlen(b64);
	b64[len++] = '\n';
	r = el_install_file(path, b64, len, 0600, replace, w);
	sodium_memzero(seed, sizeof(seed));
	sodium_memzero(b64, sizeof(b64));
	return r;
}

enum el_err
token_key_load_or_create(const char *state_dir, struct token_key **out, struct el_why *w)
{
	char path[PATH_MAX];
	enum el_err r;

	*out = NULL;
	if (sodium_init() < 0)
		return el_fail(w, EL_ECRYPTO, "libsodium failed to initialise");
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", state_dir, TOKEN_KEY_FILE) >=
	    sizeof(path))
		return el_fail(w, EL_EINVAL, "%s: path too long", state_dir);
	r = key_load(path, out, w);
	if (r != EL_ENOENT)
		return r;
	if (el_mkdirs(state_dir, 0700) != EL_OK)
		return el_fail(w, EL_EIO, "%s: cannot create directory: %s", state_dir,
		    strerror(errno));
	/* EL_EEXIST: another process created it first, and that key is the one to use. */
	if ((r = token_key_write(path, 0, w)) != EL_OK && r != EL_EEXIST)
		return r;
	return key_load(path, out, w);
}

static int
field_ok(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > TOKEN_FIELD_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return 0;
	return 1;
}

enum el_err
token_issue(const struct token_key *key, const char *request_id, const char *approver,
    int64_t expiry, char **out)
{
	unsigned char msg[CTX_LEN + PAYLOAD_MAX + SIG_LEN];
	unsigned char *p = msg + CTX_LEN, *q;
	size_t rl, al, plen;
	uint64_t e = (uint64_t)expiry;
	int i;

	*out = NULL;
	if (request_id == NULL || approver == NULL)
		return EL_EINVAL;
	rl = strlen(request_id);
	al = strlen(approver);
	if (!field_ok(request_id, rl) || !field_ok(approver, al))
		return EL_EINVAL;
	memcpy(msg, token_context, CTX_LEN);
	q = p;
	*q++ = TOKEN_VERSION;
	*q++ = (unsigned char)rl;
	memcpy(q, request_id, rl);
	q += rl;
	*q++ = (unsigned char)al;
	memcpy(q, approver, al);
	q += al;
	for (i = 7; i >= 0; i--)
		*q++ = (unsigned char)(e >> (8 * i));
	randombytes_buf(q, TOKEN_NONCE_LEN);
	q += TOKEN_NONCE_LEN;
	plen = (size_t)(q - p);
	/* The signature goes right after the payload: the token is payload || signature. */
	crypto_sign_detached(q, NULL, msg, CTX_LEN + plen, key->s->sk);
	if ((*out = el_b64url_encode(p, plen + SIG_LEN)) == NULL)
		return EL_ENOMEM;
	return EL_OK;
}

static struct memo_slot *
memo_slot(struct memo *m, const unsigned char h[MEMO_HASH])
{
	return &m->slot[((size_t)h[0] | (size_t)h[1] << 8) & (MEMO_SLOTS - 1)];
}

/* The claims of a token that verified before, into *out; false when not remembered. */
static bool
memo_get(struct memo *m, const unsigned char h[MEMO_HASH], struct token_claims *out)
{
	struct memo_slot *sl = memo_slot(m, h);
	bool hit;

	pthread_mutex_lock(&m->mu);
	if ((hit = sl->used && memcmp(sl->h, h, MEMO_HASH) == 0))
		*out = sl->c;
	pthread_mutex_unlock(&m->mu);
	return hit;
}

static void
memo_put(struct memo *m, const unsigned char h[MEMO_HASH], const struct token_claims *c)
{
	struct memo_slot *sl = memo_slot(m, h);

	pthread_mutex_lock(&m->mu);
	sl->used = true;
	memcpy(sl->h, h, MEMO_HASH);
	sl->c = *c;
	pthread_mutex_unlock(&m->mu);
}

/* Every check but the length (the caller's) and the expiry: EL_OK with *out filled, or
 * EL_EAUTH with *out zeroed. */
static enum el_err
verify_text(const struct token_key *key, const char *tok, struct token_claims *out,
    struct el_why *w)
{
	unsigned char raw[TOKEN_MAX_LEN];   /* decoded is 3/4 of the text: enough */
	unsigned char msg[CTX_LEN + PAYLOAD_MAX];
	const unsigned char *p, *sig;
	size_t n, plen, rl, al, off;
	uint64_t e = 0;
	int i;

	if (el_b64url_decode(tok, raw, sizeof(raw), &n) != EL_OK)
		return el_fail(w, EL_EAUTH, "invalid link: not a token");
	if (n < PAYLOAD_MIN + SIG_LEN || n > PAYLOAD_MAX + SIG_LEN)
		return el_fail(w, EL_EAUTH, "invalid link: wrong token length");
	plen = n - SIG_LEN;
	p = raw;
	sig = raw + plen;
	memcpy(msg, token_context, CTX_LEN);
	memcpy(msg + CTX_LEN, p, plen);
	if (crypto_sign_verify_detached(sig, msg, CTX_LEN + plen, key->s->pk) != 0)
		return el_fail(w, EL_EAUTH, "invalid link: bad signature");
	/* Signed by us, so well formed unless the format changed: check anyway. */
	if (p[0] != TOKEN_VERSION)
		return el_fail(w, EL_EAUTH, "invalid link: unknown token version %u", p[0]);
	rl = p[1];
	off = 2 + rl;
	if (rl == 0 || rl > TOKEN_FIELD_MAX || off + 1 > plen)
		goto bad;
	al = p[off];
	if (al == 0 || al > TOKEN_FIELD_MAX || off + 1 + al + 8 + TOKEN_NONCE_LEN != plen)
		goto bad;
	if (!field_ok((const char *)p + 2, rl) || !field_ok((const char *)p + off + 1, al))
		goto bad;
	memcpy(out->request_id, p + 2, rl);
	memcpy(out->approver, p + off + 1, al);
	off += 1 + al;
	for (i = 0; i < 8; i++)
		e = (e << 8) | p[off + (size_t)i];
	out->expiry = (int64_t)e;
	el_hex(p + off + 8, TOKEN_NONCE_LEN, out->nonce_hex);
	return EL_OK;
bad:
	memset(out, 0, sizeof(*out));
	return el_fail(w, EL_EAUTH, "invalid link: malformed token");
}

enum el_err
token_verify(const struct token_key *key, const char *tok, int64_t now,
    struct token_claims *out, struct el_why *w)
{
	unsigned char h[MEMO_HASH];
	size_t len;
	enum el_err r;

	memset(out, 0, sizeof(*out));
	if (tok == NULL || (len = strnlen(tok, TOKEN_MAX_LEN + 1)) > TOKEN_MAX_LEN)
		return el_fail(w, EL_EAUTH, "invalid link: token too long");
	crypto_generichash(h, sizeof(h), (const unsigned char *)tok, len, key->memo->hkey,
	    sizeof(key->memo->hkey));
	if (!memo_get(key->memo, h, out)) {
		if ((r = verify_text(key, tok, out, w)) != EL_OK)
			return r;
		memo_put(key->memo, h, out);
	}
	if (now >= out->expiry)
		return el_fail(w, EL_ESTATE, "link expired");
	return EL_OK;
}
