/*
 * api.h — the CLI's signed HTTP client for the broker (docs/API.md): loads the user's
 * config and Ed25519 key, signs every call, bounds and parses the answer, and turns
 * broker errors into a message and an exit code (cli.h).
 */
#ifndef ELEVATE_CLI_API_H
#define ELEVATE_CLI_API_H

#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <jansson.h>

#include "elevate/el.h"
#include "cli.h"

#ifndef ELEVATE_VERSION
#define ELEVATE_VERSION "0.1.0"      /* the Makefile may pass -DELEVATE_VERSION */
#endif

#define API_MAX_BODY (1024 * 1024)   /* ceiling on an answer */
#define API_CONNECT_TIMEOUT 10       /* seconds */
#define API_TIMEOUT 30               /* seconds, whole call */
#define API_URL_MAX 1024
#define API_USER_MAX 128
#define CLI_INTERRUPTED 130         /* 128 + SIGINT, as shells report it */

struct api;

/* What config.json (and --server, ELEVATE_SERVER, ELEVATE_CA_FILE) say. api_conf.c. */
struct api_conf {
	char dir[PATH_MAX];
	char server[API_URL_MAX];
	char user[API_USER_MAX];
	char ca_file[PATH_MAX];           /* "" = the system's CAs */
};

/*
 * Reads config.json into c. CLI_OK, or CLI_ERR with the problem printed (quiet: not
 * printed, nor the plain-HTTP warning).
 */
int api_conf_load(struct api_conf *c, int quiet);
/* Warns on stderr when url is plain HTTP to a host other than loopback. */
void api_warn_plain_http(const char *url);

/* What went wrong with a call, for the message and the exit code. */
struct api_error {
	int exit;                     /* enum cli_exit */
	long status;                  /* HTTP status, 0 when there was no answer */
	char code[64];                /* the broker's error code, or "" */
	char msg[EL_WHYLEN];          /* complete human message, never a secret */
};

/* Once per process, before anything else here: curl and libsodium. CLI_OK or CLI_ERR. */
int api_global_init(void);
void api_global_cleanup(void);

/* The --server option: wins over ELEVATE_SERVER and config.json. Borrowed for the process. */
void api_set_server(const char *url);
const char *api_server_option(void);

/*
 * Checks a broker URL ("http(s)://host[:port][/prefix]") and copies it to out without
 * trailing slashes. CLI_OK, or CLI_ERR with the problem printed.
 */
int api_normalize_server(const char *url, char *out, size_t outlen);

/*
 * The config directory: $ELEVATE_CONFIG_DIR, else $XDG_CONFIG_HOME/elevate, else
 * ~/.config/elevate. EL_OK or a message in w.
 */
enum el_err api_config_dir(char *buf, size_t len, struct el_why *w);

/*
 * Loads config.json and the key (refusing one readable by group or others) and prepares
 * a client. On failure prints the problem and returns the exit code; on CLI_OK *out is
 * the client (caller api_close()s it; the key is wiped there).
 */
int api_open(struct api **out);
void api_close(struct api *a);

/* Borrowed until api_close(). */
const char *api_user(const struct api *a);
const char *api_server(const struct api *a);
const struct api_conf *api_conf(const struct api *a);

/*
 * Aborts a call in progress as soon as *flag (set by a signal handler) is non-zero; the
 * call then fails with exit code CLI_INTERRUPTED. flag is borrowed; NULL stops watching.
 */
void api_set_cancel(struct api *a, volatile sig_atomic_t *flag);

/*
 * One signed call. path_query is "/v1/..." with an encoded query; body (borrowed, may
 * be NULL) is sent as JSON. On CLI_OK *out is the answer's JSON object (new reference,
 * caller json_decref()s). Otherwise e says why; nothing has been printed.
 */
int api_call(struct api *a, const char *method, const char *path_query, const json_t *body,
    json_t **out, struct api_error *e);
/* api_call() that prints the message on failure; returns the exit code. */
int api_do(struct api *a, const char *method, const char *path_query, const json_t *body,
    json_t **out);
/* Prints e's message on stderr. */
void api_perror(const struct api_error *e);

/*
 * Appends "key=value" (percent-encoded per RFC 3986, "&" before all but the first) to a
 * query being built in q. value NULL appends nothing.
 */
enum el_err api_query_add(struct dbuf *q, const char *key, const char *value);

/* True when s can be a request id (and is safe in a path and a file name). */
int api_valid_id(const char *s);
/* True when s is a bundle's id (bun_...): one request over several profiles. */
int api_bundle_id(const char *s);

#endif
