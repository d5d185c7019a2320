/*
 * keyset.h — the key set that every node of one deployment shares: token.key, which signs
 * the approval links (token.h), and secret.key, which seals grant credentials and queued
 * mail in the store (libsodium secretbox, 32 raw bytes). A link mailed by one node must
 * verify on the node that serves its click, and what one node sealed must open on the
 * node that reads it, so every node needs the same two files. audit.key is not part of
 * the set: each node signs its own audit checkpoints. docs/operations.md says how to
 * hand the set out.
 */
#ifndef ELEVATE_KEYSET_H
#define ELEVATE_KEYSET_H

#include "elevate/el.h"
#include "elevate/token.h"

#define KEYSET_SECRET_FILE  "secret.key"
#define KEYSET_SECRET_LEN   32          /* crypto_secretbox_KEYBYTES */
#define KEYSET_PUB_MAX      64          /* "ed25519:" and the base64 of 32 bytes */

struct keyset_written {
	char token_path[4096];
	char secret_path[4096];
	char token_pub[KEYSET_PUB_MAX];   /* the token key's public half, "ed25519:BASE64" */
	int beside_store;                 /* dir also holds an elevate.db (a node's state_dir) */
};

/*
 * Writes a new set into dir (created 0700 when missing): token.key and secret.key, mode
 * 0600, owned by the caller, in exactly the forms the engine loads. Without force
 * nothing is written when either file exists (EL_EEXIST, naming them); with force both
 * are replaced. token.key is read back through token_key_load_or_create for token_pub.
 */
enum el_err keyset_write(const char *dir, int force, struct keyset_written *out,
    struct el_why *w);

#endif
