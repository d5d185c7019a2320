/*
 * test_keyset.c — the key set of `elevated keygen`: both files written 0600 in the forms
 * the engine loads, copies on two nodes verify each other's approval links, an existing
 * set is never replaced without force (and nothing is half-written), force replaces it.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "elevate/el.h"
#include "elevate/keyset.h"
#include "elevate/token.h"

struct fx {
	char root[64];
	char set[128];       /* where keygen writes: root/set, created by keyset_write */
};

static void
rm_tree(const char *dir)
{
	char p[512];
	struct dirent *de;
	struct stat st;
	DIR *d;

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
			rm_tree(p);
		else
			unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	snprintf(f->root, sizeof(f->root), "/tmp/el_test_keyset_XXXXXX");
	if (mkdtemp(f->root) == NULL)
		return -1;
	snprintf(f->set, sizeof(f->set), "%s/set", f->root);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	rm_tree(f->root);
	free(f);
	return 0;
}

static char *
slurp(const char *dir, const char *name, size_t *len)
{
	char p[512], *text = NULL;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	if (el_read_file(p, 4096, &text, len, NULL) != EL_OK)
		return NULL;
	return text;
}

static int
mode_of(const char *dir, const char *name)
{
	char p[512];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	if (lstat(p, &st) != 0 || !S_ISREG(st.st_mode))
		return -1;
	return (int)(st.st_mode & 07777);
}

/* The names in dir, sorted and joined with spaces: no temporary file may stay behind. */
static void
names(const char *dir, char *out, size_t len)
{
	struct dirent **v;
	int n, i;

	out[0] = '\0';
	n = scandir(dir, &v, NULL, alphasort);
	assert_true(n >= 0);
	for (i = 0; i < n; i++) {
		if (v[i]->d_name[0] != '.') {
			if (out[0] != '\0')
				strncat(out, " ", len - strlen(out) - 1);
			strncat(out, v[i]->d_name, len - strlen(out) - 1);
		}
		free(v[i]);
	}
	free(v);
}

/* Copies the set's two files into a node's state_dir, as an operator would (0600). */
static void
install_on_node(const char *set, const char *node)
{
	static const char *const files[] = {TOKEN_KEY_FILE, KEYSET_SECRET_FILE};
	char p[512], *text;
	size_t i, len;
	struct el_why w;

	assert_int_equal(el_mkdirs(node, 0700), EL_OK);
	for (i = 0; i < 2; i++) {
		assert_non_null(text = slurp(set, files[i], &len));
		snprintf(p, sizeof(p), "%s/%s", node, files[i]);
		assert_int_equal(el_write_file(p, text, len, 0600, &w), EL_OK);
		sodium_memzero(text, len);
		free(text);
	}
}

/* Both files of a set as they are on disk, to tell whether a call changed them. */
struct snap {
	char *tok, *sec;
	size_t tl, sl;
};

static void
snap_take(const char *dir, struct snap *s)
{
	assert_non_null(s->tok = slurp(dir, TOKEN_KEY_FILE, &s->tl));
	assert_non_null(s->sec = slurp(dir, KEYSET_SECRET_FILE, &s->sl));
}

static int
same_token(const struct snap *a, const struct snap *b)
{
	return a->tl == b->tl && memcmp(a->tok, b->tok, a->tl) == 0;
}

static int
same_secret(const struct snap *a, const struct snap *b)
{
	return a->sl == b->sl && memcmp(a->sec, b->sec, a->sl) == 0;
}

static void
snap_free(struct snap *s)
{
	sodium_memzero(s->tok, s->tl);
	sodium_memzero(s->sec, s->sl);
	free(s->tok);
	free(s->sec);
}

static void
test_writes_a_set(void **state)
{
	struct fx *f = *state;
	struct keyset_written ks;
	struct token_key *k = NULL;
	struct el_why w = {{0}};
	struct stat st;
	unsigned char pk[32], raw[64];
	char *text, b64[64], list[256];
	size_t len, n;

	assert_int_equal(keyset_write(f->set, 0, &ks, &w), EL_OK);
	/* the directory did not exist: created for the caller alone */
	assert_int_equal(stat(f->set, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	names(f->set, list, sizeof(list));
	assert_string_equal(list, "secret.key token.key");
	assert_int_equal(mode_of(f->set, TOKEN_KEY_FILE), 0600);
	assert_int_equal(mode_of(f->set, KEYSET_SECRET_FILE), 0600);
	assert_non_null(strstr(ks.token_path, "/set/token.key"));
	assert_non_null(strstr(ks.secret_path, "/set/secret.key"));
	assert_int_equal(ks.beside_store, 0);

	/* secret.key: the engine's at-rest key file, exactly 32 bytes, not all zero */
	assert_non_null(text = slurp(f->set, KEYSET_SECRET_FILE, &len));
	assert_int_equal(len, KEYSET_SECRET_LEN);
	assert_int_equal(KEYSET_SECRET_LEN, crypto_secretbox_KEYBYTES);
	assert_false(sodium_is_zero((unsigned char *)text, len));
	free(text);
	/* token.key: one line, the base64 of a 32-byte seed, as token.c reads it */
	assert_non_null(text = slurp(f->set, TOKEN_KEY_FILE, &len));
	assert_true(len > 1 && text[len - 1] == '\n');
	text[len - 1] = '\0';
	assert_int_equal(el_b64_decode(text, raw, sizeof(raw), &n), EL_OK);
	assert_int_equal(n, 32);
	free(text);

	/* the public key printed is the one the engine's loader derives from the file */
	assert_int_equal(token_key_load_or_create(f->set, &k, &w), EL_OK);
	token_key_public(k, pk);
	token_key_free(k);
	sodium_bin2base64(b64, sizeof(b64), pk, sizeof(pk), sodium_base64_VARIANT_ORIGINAL);
	assert_true(strncmp(ks.token_pub, "ed25519:", 8) == 0);
	assert_string_equal(ks.token_pub + 8, b64);
}

static void
test_two_nodes_verify_each_others_links(void **state)
{
	struct fx *f = *state;
	struct keyset_written ks;
	struct token_key *a = NULL, *b = NULL, *stranger = NULL;
	struct token_claims c;
	struct el_why w = {{0}};
	char node_a[256], node_b[256], other[256], *tok = NULL;

	assert_int_equal(keyset_write(f->set, 0, &ks, &w), EL_OK);
	snprintf(node_a, sizeof(node_a), "%s/node-a", f->root);
	snprintf(node_b, sizeof(node_b), "%s/node-b", f->root);
	snprintf(other, sizeof(other), "%s/other-deployment", f->root);
	install_on_node(f->set, node_a);
	install_on_node(f->set, node_b);
	assert_int_equal(keyset_write(other, 0, &ks, &w), EL_OK);
	assert_int_equal(token_key_load_or_create(node_a, &a, &w), EL_OK);
	assert_int_equal(token_key_load_or_create(node_b, &b, &w), EL_OK);
	assert_int_equal(token_key_load_or_create(other, &stranger, &w), EL_OK);

	/* a link node A mails is good on node B; another deployment's key refuses it */
	assert_int_equal(token_issue(a, "req_1", "carol", el_now() + 600, &tok), EL_OK);
	assert_int_equal(token_verify(b, tok, el_now(), &c, &w), EL_OK);
	assert_string_equal(c.request_id, "req_1");
	assert_string_equal(c.approver, "carol");
	assert_int_equal(token_verify(stranger, tok, el_now(), &c, &w), EL_EAUTH);
	free(tok);
	token_key_free(a);
	token_key_free(b);
	token_key_free(stranger);
}

static void
test_never_replaces_without_force(void **state)
{
	struct fx *f = *state;
	struct keyset_written ks;
	struct el_why w = {{0}};
	struct snap before, after;
	char list[256], p[512];

	assert_int_equal(keyset_write(f->set, 0, &ks, &w), EL_OK);
	snap_take(f->set, &before);

	/* a second keygen into the same place: refused, says why and what --force does */
	memset(&w, 0, sizeof(w));
	assert_int_equal(keyset_write(f->set, 0, &ks, &w), EL_EEXIST);
	assert_non_null(strstr(w.msg, "/set/token.key and "));
	assert_non_null(strstr(w.msg, "/set/secret.key already exist,"));
	assert_non_null(strstr(w.msg, "nothing was written"));
	assert_non_null(strstr(w.msg, "--force"));
	snap_take(f->set, &after);
	assert_true(same_token(&before, &after) && same_secret(&before, &after));
	assert_int_equal(mode_of(f->set, TOKEN_KEY_FILE), 0600);
	assert_int_equal(mode_of(f->set, KEYSET_SECRET_FILE), 0600);
	snap_free(&after);

	/* half a set is refused too, and the missing half is not made up */
	snprintf(p, sizeof(p), "%s/%s", f->set, KEYSET_SECRET_FILE);
	assert_int_equal(unlink(p), 0);
	memset(&w, 0, sizeof(w));
	assert_int_equal(keyset_write(f->set, 0, &ks, &w), EL_EEXIST);
	assert_non_null(strstr(w.msg, "/set/token.key already exists,"));
	assert_null(strstr(w.msg, "secret.key already"));
	names(f->set, list, sizeof(list));
	assert_string_equal(list, "token.key");
	assert_non_null(after.tok = slurp(f->set, TOKEN_KEY_FILE, &after.tl));
	assert_true(same_token(&before, &after));
	free(after.tok);
	snap_free(&before);
}

static void
test_force_replaces_both(void **state)
{
	struct fx *f = *state;
	struct keyset_written ks;
	struct el_why w = {{0}};
	struct snap before, after;
	char pub1[KEYSET_PUB_MAX], list[256], p[512];

	assert_int_equal(keyset_write(f->set, 0, &ks, &w), EL_OK);
	el_strlcpy(pub1, ks.token_pub, sizeof(pub1));
	snap_take(f->set, &before);
	/* a node's state_dir (it has a store): replaced all the same, and the caller told */
	snprintf(p, sizeof(p), "%s/elevate.db", f->set);
	assert_int_equal(el_write_file(p, "", 0, 0600, &w), EL_OK);

	assert_int_equal(keyset_write(f->set, 1, &ks, &w), EL_OK);
	assert_int_equal(ks.beside_store, 1);
	assert_string_not_equal(ks.token_pub, pub1);
	snap_take(f->set, &after);
	assert_false(same_token(&before, &after));
	assert_false(same_secret(&before, &after));
	assert_int_equal(after.sl, KEYSET_SECRET_LEN);
	assert_int_equal(mode_of(f->set, TOKEN_KEY_FILE), 0600);
	assert_int_equal(mode_of(f->set, KEYSET_SECRET_FILE), 0600);
	names(f->set, list, sizeof(list));
	assert_string_equal(list, "elevate.db secret.key token.key");
	snap_free(&before);
	snap_free(&after);
}

static void
test_refuses_a_file_as_dir(void **state)
{
	struct fx *f = *state;
	struct keyset_written ks;
	struct el_why w = {{0}};
	char p[256];

	snprintf(p, sizeof(p), "%s/plain-file", f->root);
	assert_int_equal(el_write_file(p, "x", 1, 0600, &w), EL_OK);
	assert_int_equal(keyset_write(p, 0, &ks, &w), EL_EINVAL);
	assert_non_null(strstr(w.msg, "not a directory"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_writes_a_set, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_nodes_verify_each_others_links, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_never_replaces_without_force, setup, teardown),
		cmocka_unit_test_setup_teardown(test_force_replaces_both, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuses_a_file_as_dir, setup, teardown),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
