/*
 * engine_audit.c — owns this node's audit signing key in state_dir and the chain's trust
 * at start: audit.key is never made anew for a node the chain already names (a node new
 * to a chain that nodes sign makes one and joins), an interrupted rotation is finished or
 * undone, audit.pub always holds the current public key, and the store checks its chain
 * from the last checkpoint before the engine adds to it. Also the two offline commands:
 * `elevated audit-rotate-key` (run with this node stopped: it takes the engine's lock)
 * and `elevated check --audit`.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "elevate/log.h"
#include "elevate/reqsig.h"
#include "engine_int.h"

#define PUB_MAX 4096

static void
state_path(const char *dir, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

enum el_err
engine_lock_state(const char *dir, int wait_ms, int *fd, struct el_why *w)
{
	char path[PATH_MAX];
	int rc;

	state_path(dir, "engine.lock", path, sizeof(path));
	if ((*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
		return el_fail(w, EL_EIO, "%s: %s", path, strerror(errno));
	/* An engine whose parent was killed dies on its own (PR_SET_PDEATHSIG), but maybe
	 * only after its successor starts: the successor waits for it a little. */
	while ((rc = flock(*fd, LOCK_EX | LOCK_NB)) != 0 && errno == EWOULDBLOCK &&
	    wait_ms > 0) {
		usleep(50 * 1000);
		wait_ms -= 50;
	}
	if (rc != 0) {
		int busy = errno == EWOULDBLOCK;

		close(*fd);
		*fd = -1;
		return el_fail(w, busy ? EL_EEXIST : EL_EIO, busy ? "another elevated engine "
		    "uses %s (%s is locked): stop it first" : "%s: cannot lock %s", dir, path);
	}
	return EL_OK;
}

/* Writes pk as "ed25519:B64\n" to path (it is no secret). */
static enum el_err
write_pub(const char *path, const unsigned char pk[crypto_sign_PUBLICKEYBYTES],
    struct el_why *w)
{
	char *text = reqsig_pubkey_format(pk), line[128];
	enum el_err e;

	if (text == NULL)
		return EL_ENOMEM;
	snprintf(line, sizeof(line), "%s\n", text);
	free(text);
	e = el_write_file(path, line, strlen(line), 0644, w);
	return e;
}

static enum el_err
read_pub(const char *path, unsigned char pk[crypto_sign_PUBLICKEYBYTES], struct el_why *w)
{
	char *buf = NULL;
	size_t n;
	enum el_err e;

	if ((e = el_read_file(path, PUB_MAX, &buf, &n, w)) != EL_OK)
		return e;
	while (n > 0 && strchr(" \t\r\n", buf[n - 1]) != NULL)
		buf[--n] = '\0';
	e = reqsig_pubkey_parse(buf, pk);
	free(buf);
	return e == EL_OK ? EL_OK : el_fail(w, EL_EPARSE, "%s: not an audit public key", path);
}

/* A rotation cut short between its commit and the rename leaves audit.key.new: the
 * chain tells whether the new key took over (finish) or not (undo). */
static enum el_err
finish_rotation(struct engine *e, struct el_why *w)
{
	char path[PATH_MAX], key[PATH_MAX];
	unsigned char *sk = NULL, pk[crypto_sign_PUBLICKEYBYTES];
	struct audit_check_report rep;
	enum el_err r;

	state_path(e->cfg->state_dir, "audit.key.new", path, sizeof(path));
	if (access(path, F_OK) != 0)
		return EL_OK;
	if ((r = engine_load_key(e->cfg->state_dir, "audit.key.new", crypto_sign_SECRETKEYBYTES,
	    KEY_MUST_EXIST, &sk, w)) != EL_OK)
		return r;
	crypto_sign_ed25519_sk_to_pk(pk, sk);
	sodium_free(sk);
	state_path(e->cfg->state_dir, "audit.key", key, sizeof(key));
	if (audit_check_store(e->store, e->cfg->node, pk, 0, &rep) == EL_OK &&
	    rep.v.checkpoints > 0) {
		if (rename(path, key) != 0)
			return el_fail(w, EL_EIO, "cannot finish the audit key rotation: rename %s "
			    "%s: %s", path, key, strerror(errno));
		log_warn("finished an interrupted audit key rotation: %s replaces audit.key", path);
	} else {
		unlink(path);
		log_warn("undid an interrupted audit key rotation: removed %s", path);
	}
	return EL_OK;
}

/* How the chain names node, for messages: "its audit.node_joined at seq 12". */
static void
named_how(const struct audit_node_info *ni, char *buf, size_t len)
{
	snprintf(buf, len, "its %s at seq %lld", ni->joined == ni->named ? AUDIT_JOIN_EVENT :
	    ni->named_by_checkpoint == ni->named ? AUDIT_CHECKPOINT_EVENT : AUDIT_ROTATION_EVENT,
	    (long long)ni->named);
}

/*
 * audit.key is missing and the chain has records up to seq tail: a new key is made only
 * for a node the chain has never named, on a chain that nodes sign by name (it then
 * joins). Otherwise the key is lost, and the message says which case it is.
 */
static enum el_err
may_make_key(struct engine *e, const char *path, const char *db, int64_t tail,
    struct el_why *w)
{
	const char *node = e->cfg->node;
	struct audit_node_info ni;
	char how[128];
	enum el_err r;

	if ((r = audit_node_info(e->store, node, NULL, 1, &ni)) != EL_OK)
		return el_fail(w, r, "cannot read the audit chain in %s: %s", db,
		    r == EL_ECRYPTO ? "a record naming its keys cannot be read" : store_errmsg());
	if (ni.named > 0) {
		named_how(&ni, how, sizeof(how));
		return el_fail(w, EL_ECONFIG, "%s is missing, but the audit chain in %s names "
		    "node %s (%s): this node's key is lost: restore audit.key from a backup "
		    "(audit.pub holds its public key). If it is lost for good, give this node "
		    "another name (config node): it joins the chain as a new node", path, db,
		    node, how);
	}
	if (!ni.node_aware)
		return el_fail(w, EL_ECONFIG, "%s is missing, but the audit chain in %s holds "
		    "records up to seq %lld signed by a key whose checkpoints name no node (a "
		    "chain from before nodes): restore audit.key from a backup (audit.pub holds "
		    "its public key). A new key would leave the chain unverifiable; if the key is "
		    "lost for good, set the store aside (elevate.db, or the PostgreSQL database) "
		    "to begin a new chain", path, db, (long long)tail);
	log_info("audit: the chain in %s has never named node %s: it makes a key and joins",
	    db, node);
	return EL_OK;
}

/*
 * Announces this node's key in the chain if the chain has no join of it yet (a new chain,
 * a new node, a chain from before nodes): checked again under the store's write lock, so
 * two starts of one node cannot both join.
 */
static enum el_err
join_chain(struct engine *e, const char *db, struct el_why *w)
{
	const char *node = e->cfg->node;
	struct audit_node_info ni;
	int64_t seq = 0;
	unsigned char head[AUDIT_HASH_BYTES];
	char why[EL_WHYLEN];
	enum el_err r;

	if ((r = store_begin(e->store)) != EL_OK)
		return el_fail(w, r, "cannot begin a store transaction: %s", store_errmsg());
	if ((r = audit_node_info(e->store, node, e->audit_pk, 0, &ni)) != EL_OK) {
		store_rollback(e->store);
		return el_fail(w, r, "cannot read the audit chain in %s: %s", db, r ==
		    EL_ECRYPTO ? "a record naming its keys cannot be read" : store_errmsg());
	}
	if (ni.joined > 0) {
		store_rollback(e->store);
		return EL_OK;
	}
	if (ni.owner[0] != '\0') {
		store_rollback(e->store);
		return el_fail(w, EL_ECONFIG, "%s/audit.key is the key of node %s in the audit "
		    "chain in %s, but this node is named %s: a key belongs to one node. If this "
		    "is node %s renamed (config node; its default is the host name), name it %s "
		    "again; if its state_dir was copied, remove audit.key and audit.pub here: this "
		    "node then makes its own", e->cfg->state_dir, ni.owner, db, node, ni.owner,
		    ni.owner);
	}
	if ((r = audit_join(e->store, node, e->audit_sk, w)) != EL_OK ||
	    (r = store_audit_tail(e->store, &seq, head)) != EL_OK) {
		el_strlcpy(why, w->msg[0] ? w->msg : store_errmsg(), sizeof(why));
		store_rollback(e->store);
		return el_fail(w, r, "cannot announce node %s's key in the audit chain: %s",
		    node, why);
	}
	if ((r = store_commit(e->store)) != EL_OK)
		return el_fail(w, r, "cannot announce node %s's key in the audit chain: %s",
		    node, store_errmsg());
	log_info("audit: node %s joined the chain in %s at seq %lld", node, db,
	    (long long)seq - 1);
	return EL_OK;
}

enum el_err
engine_audit_key_open(struct engine *e, struct el_why *w)
{
	const char *dir = e->cfg->state_dir;
	struct audit_check_report rep;
	unsigned char head[AUDIT_HASH_BYTES];
	char path[PATH_MAX], db[PATH_MAX];
	int64_t tail = 0;
	enum el_err r;

	if ((r = store_audit_tail(e->store, &tail, head)) != EL_OK)
		return el_fail(w, r, "cannot read the audit chain: %s", store_errmsg());
	if ((r = finish_rotation(e, w)) != EL_OK)
		return r;
	state_path(dir, "audit.key", path, sizeof(path));
	store_where(e->cfg, db, sizeof(db));
	if (tail > 0 && access(path, F_OK) != 0 && errno == ENOENT &&
	    (r = may_make_key(e, path, db, tail, w)) != EL_OK)
		return r;
	if ((r = engine_load_key(dir, "audit.key", crypto_sign_SECRETKEYBYTES,
	    KEY_NEW_SIGN, &e->audit_sk,
	    w)) != EL_OK)
		return r;
	if ((e->audit_pk = sodium_malloc(crypto_sign_PUBLICKEYBYTES)) == NULL)
		return EL_ENOMEM;
	crypto_sign_ed25519_sk_to_pk(e->audit_pk, e->audit_sk);
	/* Auditors need the public key to verify checkpoints; it is no secret. */
	state_path(dir, "audit.pub", path, sizeof(path));
	write_pub(path, e->audit_pk, NULL);
	if ((r = audit_check_store(e->store, e->cfg->node, e->audit_pk, 0, &rep)) != EL_OK)
		return el_fail(w, r, "the audit chain in %s does not verify: %s. Nothing is "
		    "added to a broken chain: `elevated check --audit` checks all of it; restore "
		    "the store (and audit.key, if it is not the key that signed the chain) from "
		    "a backup", db, rep.v.problem);
	log_info("audit chain checked from seq %lld to %lld (%lld records)",
	    (long long)rep.v.first_seq, (long long)rep.v.last_seq, (long long)rep.v.records);
	return join_chain(e, db, w);
}

/* The first public key: audit.pub.first once a rotation happened, else audit.pub. */
static enum el_err
first_pub(const char *dir, unsigned char pk[crypto_sign_PUBLICKEYBYTES], struct el_why *w)
{
	char path[PATH_MAX];

	state_path(dir, "audit.pub.first", path, sizeof(path));
	if (access(path, F_OK) != 0)
		state_path(dir, "audit.pub", path, sizeof(path));
	return read_pub(path, pk, w);
}

enum el_err
engine_audit_check(const struct config *cfg, struct audit_check_report *rep,
    struct el_why *w)
{
	unsigned char first[crypto_sign_PUBLICKEYBYTES], cur[crypto_sign_PUBLICKEYBYTES];
	char path[PATH_MAX];
	struct store *s = NULL;
	enum el_err r;

	memset(rep, 0, sizeof(*rep));
	if ((r = first_pub(cfg->state_dir, first, w)) != EL_OK)
		return r;
	state_path(cfg->state_dir, "audit.pub", path, sizeof(path));
	if ((r = read_pub(path, cur, w)) != EL_OK)
		return r;
	if ((r = store_open_config(cfg, &s, w)) != EL_OK)
		return r;
	r = audit_check_store(s, cfg->node, first, 1, rep);
	store_close(s);
	if (r == EL_OK && rep->v.records > 0 && sodium_memcmp(rep->key, cur, sizeof(cur)) != 0) {
		snprintf(rep->v.problem, sizeof(rep->v.problem), "the chain's last key is not the one "
		    "in %s/audit.pub", cfg->state_dir);
		r = EL_ECRYPTO;
	}
	return r;
}

enum el_err
engine_audit_rotate_key(const struct config *cfg, char *newpub, size_t len,
    int64_t *at_seq, struct el_why *w)
{
	char path[PATH_MAX], next[PATH_MAX], first[PATH_MAX], *text;
	unsigned char *old_sk = NULL, *new_sk = NULL;
	unsigned char old_pk[crypto_sign_PUBLICKEYBYTES], new_pk[crypto_sign_PUBLICKEYBYTES];
	unsigned char head[AUDIT_HASH_BYTES];
	struct audit_check_report rep;
	struct audit_node_info ni;
	struct store *s = NULL;
	int lock = -1;
	enum el_err r;

	if ((r = engine_lock_state(cfg->state_dir, 0, &lock, w)) != EL_OK)
		goto out;
	if ((r = store_open_config(cfg, &s, w)) != EL_OK)
		goto out;
	if ((r = engine_load_key(cfg->state_dir, "audit.key", crypto_sign_SECRETKEYBYTES,
	    KEY_MUST_EXIST, &old_sk, w)) != EL_OK)
		goto out;
	crypto_sign_ed25519_sk_to_pk(old_pk, old_sk);
	if ((r = audit_check_store(s, cfg->node, old_pk, 0, &rep)) != EL_OK) {
		el_fail(w, r, "not rotating: the audit chain does not verify with the current "
		    "key: %s", rep.v.problem);
		goto out;
	}
	if ((new_sk = sodium_malloc(crypto_sign_SECRETKEYBYTES)) == NULL) {
		r = EL_ENOMEM;
		goto out;
	}
	crypto_sign_keypair(new_pk, new_sk);
	/* The new key is on disk before the chain names it; start-up finishes or undoes a
	 * rotation cut short here (finish_rotation). */
	state_path(cfg->state_dir, "audit.key.new", next, sizeof(next));
	if ((r = el_write_file(next, new_sk, crypto_sign_SECRETKEYBYTES, 0600, w)) != EL_OK)
		goto out;
	state_path(cfg->state_dir, "audit.pub.first", first, sizeof(first));
	if (access(first, F_OK) != 0 && (r = write_pub(first, old_pk, w)) != EL_OK)
		goto out;
	if ((r = store_begin(s)) != EL_OK) {
		el_fail(w, r, "cannot begin a store transaction: %s", store_errmsg());
		goto out;
	}
	/* A node that has not joined yet (a chain from before nodes) announces the key it
	 * hands over from first. */
	if ((r = audit_node_info(s, cfg->node, NULL, 0, &ni)) != EL_OK ||
	    (ni.joined == 0 && (r = audit_join(s, cfg->node, old_sk, w)) != EL_OK) ||
	    (r = audit_rotate(s, cfg->node, old_sk, new_sk, w)) != EL_OK) {
		if (w->msg[0] == '\0')
			el_fail(w, r, "cannot read the audit chain: %s", store_errmsg());
		store_rollback(s);
		unlink(next);
		goto out;
	}
	if ((r = store_commit(s)) != EL_OK) {
		el_fail(w, r, "cannot commit the rotation: %s", store_errmsg());
		unlink(next);
		goto out;
	}
	state_path(cfg->state_dir, "audit.key", path, sizeof(path));
	if (rename(next, path) != 0) {
		r = el_fail(w, EL_EIO, "rotation recorded, but rename %s %s: %s (the next start "
		    "finishes it)", next, path, strerror(errno));
		goto out;
	}
	state_path(cfg->state_dir, "audit.pub", path, sizeof(path));
	if ((r = write_pub(path, new_pk, w)) != EL_OK)
		goto out;
	store_audit_tail(s, at_seq, head);
	if ((text = reqsig_pubkey_format(new_pk)) == NULL) {
		r = EL_ENOMEM;
		goto out;
	}
	el_strlcpy(newpub, text, len);
	free(text);
out:
	if (old_sk != NULL)
		sodium_free(old_sk);
	if (new_sk != NULL)
		sodium_free(new_sk);
	store_close(s);
	if (lock >= 0)
		close(lock);
	return r;
}
