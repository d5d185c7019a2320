/*
 * cmd_init.c — `elevate init`: creates the user's config directory (0700), the Ed25519
 * key pair (secret key 0600) and config.json, and prints the public key as it goes into
 * a policy plus the ~/.aws/config lines that use elevate as a credential_process.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "elevate/el.h"
#include "elevate/reqsig.h"
#include "api.h"
#include "commands.h"
#include "output.h"

#define CONFIG_MAX (64 * 1024)

static int init_run(int, char **);

const struct cli_cmd cmd_init = {
	.name = "init",
	.usage = "elevate init --server URL --user NAME [--force]",
	.summary = "create your key pair and configuration",
	.run = init_run,
};

static void
init_help(void)
{
	printf("usage: %s\n\n"
	    "Creates the configuration directory (mode 0700), an Ed25519 key pair (secret key\n"
	    "in `key`, mode 0600; public key in `key.pub`) and config.json, then prints the\n"
	    "public key to add to your user in the policy.\n\n"
	    "  --server URL   the broker, e.g. https://elevate.example.com\n"
	    "  --user NAME    your user name in the policy\n"
	    "  --force        replace an existing key (the old one stops working once the\n"
	    "                 policy no longer lists it)\n\n"
	    "The directory is $ELEVATE_CONFIG_DIR, else $XDG_CONFIG_HOME/elevate, else\n"
	    "~/.config/elevate.\n", cmd_init.usage);
}

/* The characters a policy user name may use here; it travels in a signed header. */
static int
valid_user(const char *s)
{
	size_t n;

	for (n = 0; s[n] != '\0'; n++) {
		char c = s[n];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' || c == '@' ||
		    c == '+'))
			return 0;
	}
	return n > 0 && n < API_USER_MAX && s[0] != '-';
}

/* The directory exists, is ours and is closed to others (tightened if it was not). */
static int
prepare_dir(const char *dir)
{
	struct stat st;

	if (el_mkdirs(dir, 0700) != EL_OK) {
		output_err("cannot create %s: %s", dir, strerror(errno));
		return CLI_ERR;
	}
	if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		output_err("%s is not a directory", dir);
		return CLI_ERR;
	}
	if (st.st_uid != geteuid()) {
		output_err("%s belongs to another user: refusing to put a key there", dir);
		return CLI_ERR;
	}
	if ((st.st_mode & 077) != 0 && chmod(dir, 0700) != 0) {
		output_err("chmod 0700 %s: %s", dir, strerror(errno));
		return CLI_ERR;
	}
	return CLI_OK;
}

static int
dump_cb(const char *buf, size_t size, void *arg)
{
	return dbuf_add(arg, buf, size) == EL_OK ? 0 : -1;
}

/* config.json with server and user set; other keys of an existing file (ca_file) kept. */
static int
write_config(const char *dir, const char *server, const char *user)
{
	char path[PATH_MAX], *text = NULL;
	json_t *cfg = NULL;
	struct dbuf b;
	struct el_why why;
	enum el_err r;
	int rc = CLI_ERR;

	dbuf_init(&b, CONFIG_MAX);
	if ((size_t)snprintf(path, sizeof(path), "%s/config.json", dir) >= sizeof(path)) {
		output_err("config path too long");
		goto out;
	}
	if ((r = el_read_file(path, CONFIG_MAX, &text, NULL, &why)) == EL_OK)
		cfg = json_loads(text, 0, NULL);
	if (!json_is_object(cfg)) {
		json_decref(cfg);
		cfg = json_object();
	}
	if (cfg == NULL || json_object_set_new(cfg, "server", json_string(server)) != 0 ||
	    json_object_set_new(cfg, "user", json_string(user)) != 0 ||
	    json_dump_callback(cfg, dump_cb, &b, JSON_INDENT(2)) != 0 ||
	    dbuf_adds(&b, "\n") != EL_OK) {
		output_err("cannot build %s", path);
		goto out;
	}
	if (el_write_file(path, b.p, b.len, 0600, &why) != EL_OK) {
		output_err("%s", why.msg);
		goto out;
	}
	rc = CLI_OK;
out:
	free(text);
	json_decref(cfg);
	dbuf_free(&b);
	return rc;
}

/* Writes the secret key (base64 of 64 bytes, 0600) and key.pub; *pub gets the text. */
static int
write_keys(const char *dir, char **pub)
{
	unsigned char pk[crypto_sign_PUBLICKEYBYTES], *sk = NULL;
	char path[PATH_MAX], *b64 = NULL, line[160];
	struct el_why why;
	size_t n;
	int rc = CLI_ERR;

	*pub = NULL;
	if ((sk = sodium_malloc(crypto_sign_SECRETKEYBYTES)) == NULL) {
		output_err("out of memory");
		goto out;
	}
	crypto_sign_keypair(pk, sk);
	if ((b64 = el_b64_encode(sk, crypto_sign_SECRETKEYBYTES)) == NULL ||
	    (*pub = reqsig_pubkey_format(pk)) == NULL) {
		output_err("out of memory");
		goto out;
	}
	n = strlen(b64);
	if ((size_t)snprintf(path, sizeof(path), "%s/key", dir) >= sizeof(path)) {
		output_err("key path too long");
		goto out;
	}
	/* el_write_file: temporary file created 0600 and renamed, so never briefly open. */
	if (el_write_file(path, b64, n, 0600, &why) != EL_OK) {
		output_err("%s", why.msg);
		goto out;
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/key.pub", dir) >= sizeof(path)) {
		output_err("key path too long");
		goto out;
	}
	snprintf(line, sizeof(line), "%s\n", *pub);
	if (el_write_file(path, line, strlen(line), 0644, &why) != EL_OK) {
		output_err("%s", why.msg);
		goto out;
	}
	rc = CLI_OK;
out:
	if (b64 != NULL) {
		sodium_memzero(b64, strlen(b64));
		free(b64);
	}
	sodium_free(sk);
	if (rc != CLI_OK) {
		free(*pub);
		*pub = NULL;
	}
	return rc;
}

/* This binary's absolute path, quoted when the AWS CLI's shell-style split needs it. */
static void
self_path(char *buf, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n;
	size_t i;

	if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) <= 0) {
		el_strlcpy(buf, "elevate", len);
		return;
	}
	exe[n] = '\0';
	for (i = 0; exe[i] != '\0'; i++)
		if (strchr(" \t'\"\\$`", exe[i]) != NULL)
			break;
	if (exe[i] == '\0')
		el_strlcpy(buf, exe, len);
	else
		snprintf(buf, len, "\"%s\"", exe);
}

static int
init_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{"server", required_argument, NULL, 's'},
		{"user", required_argument, NULL, 'u'},
		{"force", no_argument, NULL, 'f'},
		{"json", no_argument, NULL, 'J'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	char dir[PATH_MAX], server[API_URL_MAX], keypath[PATH_MAX + 8], exe[PATH_MAX + 2];
	const char *server_arg = api_server_option(), *user = NULL;
	char *pub = NULL;
	struct el_why why;
	struct stat st;
	json_t *j;
	int ch, force = 0, rc = CLI_ERR;

	while ((ch = getopt_long(argc, argv, "s:u:fh", opts, NULL)) != -1) {
		switch (ch) {
		case 's': server_arg = optarg; break;
		case 'u': user = optarg; break;
		case 'f': force = 1; break;
		case 'J': output_set_json(1); break;
		case 'h': init_help(); return CLI_OK;
		default: return output_usage(&cmd_init, NULL);
		}
	}
	if (optind != argc)
		return output_usage(&cmd_init, "unexpected argument \"%s\"", argv[optind]);
	if (server_arg == NULL || user == NULL)
		return output_usage(&cmd_init, "--server and --user are required");
	if (!valid_user(user))
		return output_usage(&cmd_init, "user name \"%s\": use letters, digits and . _ - @ +",
		    user);
	if (api_normalize_server(server_arg, server, sizeof(server)) != CLI_OK)
		return output_usage(&cmd_init, NULL);
	if (api_config_dir(dir, sizeof(dir), &why) != EL_OK) {
		output_err("%s", why.msg);
		return CLI_ERR;
	}
	snprintf(keypath, sizeof(keypath), "%s/key", dir);
	if (!force && lstat(keypath, &st) == 0) {
		output_err("%s already exists: keeping it. `elevate init --force` replaces it "
		    "(then the policy must list the new public key)", keypath);
		return CLI_ERR;
	}
	if ((rc = prepare_dir(dir)) != CLI_OK ||
	    (rc = write_keys(dir, &pub)) != CLI_OK ||
	    (rc = write_config(dir, server, user)) != CLI_OK)
		goto out;
	self_path(exe, sizeof(exe));
	if (output_json()) {
		j = json_pack("{s:s, s:s, s:s, s:s, s:s}", "config_dir", dir, "server", server,
		    "user", user, "public_key", pub, "key_file", keypath);
		rc = j != NULL ? output_print_json(j) : CLI_ERR;
		json_decref(j);
		goto out;
	}
	printf("Created %s: key (secret, mode 0600), key.pub and config.json\n"
	    "(server %s, user %s).\n\n"
	    "Your public key, as it goes into the policy under \"users\": {\"%s\": ...}:\n\n"
	    "    \"keys\": [\"%s\"]\n\n"
	    "Next: send that line to whoever maintains the policies (a pull request to the\n"
	    "policy repository). Once it is deployed, ask for access with e.g.\n\n"
	    "    elevate request prod-readonly --for 15m --reason \"why you need it\"\n\n"
	    "To let the AWS CLI and SDKs use an active grant directly, add to ~/.aws/config:\n\n"
	    "    [profile elevate-prod-readonly]\n"
	    "    credential_process = %s creds --profile prod-readonly\n",
	    dir, server, user, user, pub, exe);
	rc = CLI_OK;
out:
	free(pub);
	return rc;
}
