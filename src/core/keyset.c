/*
 * keyset.c — owns the writing of a deployment's shared key set (keyset.h): token.key
 * through token.c, secret.key as the engine's at-rest key file (32 random bytes, mode
 * 0600, read by engine_load_key). Nothing here runs inside the broker: `elevated keygen`
 * calls it once per deployment.
 */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "elevate/keyset.h"

static int
path_in(char *buf, size_t len, const char *dir, const char *name)
{
	return (size_t)snprintf(buf, len, "%s/%s", dir, name) < len;
}

/* Flushes dir itself, so the new names survive a crash as the files do. */
static void
sync_dir(const char *dir)
{
	int fd;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

static enum el_err
write_secret(const char *path, int force, struct el_why *w)
{
	unsigned char k[KEYSET_SECRET_LEN];
	enum el_err r;

	randombytes_buf(k, sizeof(k));
	r = el_install_file(path, k, sizeof(k), 0600, force, w);
	sodium_memzero(k, sizeof(k));
	return r;
}

static enum el_err
read_token_pub(const char *dir, char *out, size_t len, struct el_why *w)
{
	struct token_key *k = NULL;
	unsigned char pk[32];
	char b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];
	enum el_err r;

	if ((r = token_key_load_or_create(dir, &k, w)) != EL_OK)
		return r;
	token_key_public(k, pk);
	token_key_free(k);
	sodium_bin2base64(b64, sizeof(b64), pk, sizeof(pk), sodium_base64_VARIANT_ORIGINAL);
	snprintf(out, len, "ed25519:%s", b64);
	return EL_OK;
}

enum el_err
keyset_write(const char *dir, int force, struct keyset_written *out, struct el_why *w)
{
	char db[4096];
	struct stat st;
	int have_token, have_secret;
	enum el_err r;

	memset(out, 0, sizeof(*out));
	if (sodium_init() < 0)
		return el_fail(w, EL_ECRYPTO, "libsodium failed to initialise");
	if (!path_in(out->token_path, sizeof(out->token_path), dir, TOKEN_KEY_FILE) ||
	    !path_in(out->secret_path, sizeof(out->secret_path), dir, KEYSET_SECRET_FILE) ||
	    !path_in(db, sizeof(db), dir, "elevate.db"))
		return el_fail(w, EL_EINVAL, "%s: path too long", dir);
	if (el_mkdirs(dir, 0700) != EL_OK || stat(dir, &st) != 0)
		return el_fail(w, EL_EIO, "%s: cannot create the directory: %s", dir,
		    strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return el_fail(w, EL_EINVAL, "%s: not a directory", dir);
	out->beside_store = lstat(db, &st) == 0;
	have_token = lstat(out->token_path, &st) == 0;
	have_secret = lstat(out->secret_path, &st) == 0;
	if (!force && (have_token || have_secret))
		return el_fail(w, EL_EEXIST, "%s%s%s already exist%s, perhaps the keys of a "
		    "deployment that runs: nothing was written (--force replaces the set: "
		    "approval links already mailed stop working, and grant credentials and "
		    "queued mail sealed with the old secret.key can no longer be opened)",
		    have_token ? out->token_path : "", have_token && have_secret ? " and " : "",
		    have_secret ? out->secret_path : "", have_token && have_secret ? "" : "s");
	if ((r = token_key_write(out->token_path, force, w)) != EL_OK)
		return r;
	if ((r = write_secret(out->secret_path, force, w)) != EL_OK) {
		if (!force)
			unlink(out->token_path);   /* ours: a set is written whole or not at all */
		return r;
	}
	sync_dir(dir);
	return read_token_pub(dir, out->token_pub, sizeof(out->token_pub), w);
}
