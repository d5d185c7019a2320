/*
 * api.c — owns the CLI's conversation with the broker: the user's config and Ed25519
 * secret key (sodium_malloc'd, wiped on close), request signing (docs/API.md, via
 * reqsig.c), the libcurl transfer with timeouts and a 1 MiB answer ceiling, and the
 * mapping of broker errors to messages and exit codes.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sodium.h>

#include "elevate/el.h"
#include "elevate/reqsig.h"
#include "api.h"
#include "output.h"

#define CONFIG_MAX (64 * 1024)
#define KEY_TEXT_MAX 256

struct api {
	char dir[PATH_MAX];
	char server[API_URL_MAX];
	char user[API_USER_MAX];
	char ca_file[PATH_MAX];
	unsigned char *sk;                /* sodium_malloc, crypto_sign_SECRETKEYBYTES */
	CURL *curl;
	volatile sig_atomic_t *cancel;
};

static const char *server_opt;

int
api_global_init(void)
{
	if (sodium_init() < 0) {
		output_err("libsodium failed to initialise");
		return CLI_ERR;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		output_err("libcurl failed to initialise");
		return CLI_ERR;
	}
	return CLI_OK;
}

void
api_global_cleanup(void)
{
	curl_global_cleanup();
}

void
api_set_server(const char *url)
{
	server_opt = url;
}

const char *
api_server_option(void)
{
	return server_opt;
}

static const char *
home_dir(void)
{
	const char *h = getenv("HOME");
	struct passwd *pw;

	if (h != NULL && *h == '/')
		return h;
	if ((pw = getpwuid(getuid())) != NULL && pw->pw_dir != NULL && *pw->pw_dir == '/')
		return pw->pw_dir;
	return NULL;
}

enum el_err
api_config_dir(char *buf, size_t len, struct el_why *w)
{
	const char *e, *h;
	int n;

	if ((e = getenv("ELEVATE_CONFIG_DIR")) != NULL && *e != '\0')
		n = snprintf(buf, len, "%s", e);
	else if ((e = getenv("XDG_CONFIG_HOME")) != NULL && *e == '/')   /* relative: ignored */
		n = snprintf(buf, len, "%s/elevate", e);
	else if ((h = home_dir()) != NULL)
		n = snprintf(buf, len, "%s/.config/elevate", h);
	else
		return el_fail(w, EL_ECONFIG, "no home directory: set ELEVATE_CONFIG_DIR");
	if (n < 0 || (size_t)n >= len)
		return el_fail(w, EL_EINVAL, "config directory path too long");
	return EL_OK;
}

int
api_normalize_server(const char *url, char *out, size_t outlen)
{
	size_t n;

	if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0) {
		output_err("server URL must start with https:// or http://: %s", url);
		return CLI_ERR;
	}
	if (strpbrk(url, " \t\r\n?#") != NULL) {
		output_err("server URL must be plain scheme://host[:port]: %s", url);
		return CLI_ERR;
	}
	if (el_strlcpy(out, url, outlen) >= outlen) {
		output_err("server URL too long");
		return CLI_ERR;
	}
	n = strlen(out);
	while (n > 0 && out[n - 1] == '/')
		out[--n] = '\0';
	return CLI_OK;
}

/* Plain HTTP is for loopback behind a reverse proxy (DESIGN "Daemon configuration"). */
static void
warn_plain_http(const char *url)
{
	const char *h;

	if (strncmp(url, "http://", 7) != 0)
		return;
	h = url + 7;
	if (strncmp(h, "127.", 4) == 0 || strncmp(h, "localhost", 9) == 0 ||
	    strncmp(h, "[::1]", 5) == 0)
		return;
	output_err("warning: %s is plain HTTP: requests and credentials cross the network "
	    "unencrypted", url);
}

/*
 * Reads the secret key file into sk. Checked on the open descriptor so the file that is
 * checked is the file that is read; a key others can read is refused, as ssh does.
 */
static int
load_key(const char *path, unsigned char *sk)
{
	struct stat st;
	char *text = NULL;
	unsigned char *raw = NULL;
	size_t len = 0, rawlen;
	ssize_t n;
	int fd = -1, rc = CLI_ERR;

	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		if (errno == ENOENT)
			output_err("no key at %s: run `elevate init --server URL --user NAME` "
			    "first", path);
		else
			output_err("%s: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		output_err("%s: not a regular file", path);
		goto out;
	}
	if ((st.st_mode & 077) != 0) {
		output_err("%s is accessible by group or others (mode %04o): refusing to use "
		    "it; run `chmod 600 %s`", path, (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	if ((text = sodium_malloc(KEY_TEXT_MAX + 1)) == NULL ||
	    (raw = sodium_malloc(crypto_sign_SECRETKEYBYTES + 8)) == NULL) {
		output_err("out of memory");
		goto out;
	}
	while (len < KEY_TEXT_MAX) {
		n = read(fd, text + len, KEY_TEXT_MAX - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			output_err("%s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	text[len] = '\0';
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' ||
	    text[len - 1] == ' '))
		text[--len] = '\0';
	if (el_b64_decode(text, raw, crypto_sign_SECRETKEYBYTES + 8, &rawlen) != EL_OK ||
	    rawlen != crypto_sign_SECRETKEYBYTES) {
		output_err("%s: not an Ed25519 secret key (base64 of %d bytes)", path,
		    crypto_sign_SECRETKEYBYTES);
		goto out;
	}
	memcpy(sk, raw, crypto_sign_SECRETKEYBYTES);
	rc = CLI_OK;
out:
	if (fd >= 0)
		close(fd);
	sodium_free(text);     /* sodium_free wipes */
	sodium_free(raw);
	return rc;
}

int
api_open(struct api **out)
{
	struct api *a;
	struct el_why why;
	char path[PATH_MAX], *text = NULL;
	const char *server = NULL, *user, *ca, *env;
	json_t *cfg = NULL;
	json_error_t jerr;
	enum el_err r;
	int rc = CLI_ERR;

	*out = NULL;
	if ((a = calloc(1, sizeof(*a))) == NULL) {
		output_err("out of memory");
		return CLI_ERR;
	}
	if (api_config_dir(a->dir, sizeof(a->dir), &why) != EL_OK) {
		output_err("%s", why.msg);
		goto out;
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/config.json", a->dir) >= sizeof(path)) {
		output_err("config path too long");
		goto out;
	}
	if ((r = el_read_file(path, CONFIG_MAX, &text, NULL, &why)) != EL_OK) {
		if (r == EL_ENOENT)
			output_err("no configuration at %s: run `elevate init --server URL "
			    "--user NAME` first", path);
		else
			output_err("%s", why.msg);
		goto out;
	}
	if ((cfg = json_loads(text, 0, &jerr)) == NULL || !json_is_object(cfg)) {
		output_err("%s:%d: %s", path, jerr.line, cfg ? "not a JSON object" : jerr.text);
		goto out;
	}
	user = output_str(cfg, "user");
	if (user == NULL || *user == '\0' || strpbrk(user, "\r\n") != NULL ||
	    el_strlcpy(a->user, user, sizeof(a->user)) >= sizeof(a->user)) {
		output_err("%s: \"user\" missing or invalid", path);
		goto out;
	}
	if (server_opt != NULL)
		server = server_opt;
	else if ((env = getenv("ELEVATE_SERVER")) != NULL && *env != '\0')
		server = env;
	else
		server = output_str(cfg, "server");
	if (server == NULL) {
		output_err("%s: no \"server\" (or set ELEVATE_SERVER / --server)", path);
		goto out;
	}
	if (api_normalize_server(server, a->server, sizeof(a->server)) != CLI_OK)
		goto out;
	warn_plain_http(a->server);
	if ((env = getenv("ELEVATE_CA_FILE")) != NULL && *env != '\0')
		ca = env;
	else
		ca = output_str(cfg, "ca_file");
	if (ca != NULL && el_strlcpy(a->ca_file, ca, sizeof(a->ca_file)) >= sizeof(a->ca_file)) {
		output_err("%s: \"ca_file\" too long", path);
		goto out;
	}
	if ((a->sk = sodium_malloc(crypto_sign_SECRETKEYBYTES)) == NULL) {
		output_err("out of memory");
		goto out;
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/key", a->dir) >= sizeof(path)) {
		output_err("key path too long");
		goto out;
	}
	if (load_key(path, a->sk) != CLI_OK)
		goto out;
	if ((a->curl = curl_easy_init()) == NULL) {
		output_err("libcurl: cannot create a handle");
		goto out;
	}
	*out = a;
	a = NULL;
	rc = CLI_OK;
out:
	json_decref(cfg);
	free(text);
	api_close(a);
	return rc;
}

void
api_close(struct api *a)
{
	if (a == NULL)
		return;
	if (a->curl != NULL)
		curl_easy_cleanup(a->curl);
	sodium_free(a->sk);      /* NULL-safe; wipes */
	free(a);
}

const char *
api_user(const struct api *a)
{
	return a->user;
}

const char *
api_server(const struct api *a)
{
	return a->server;
}

void
api_set_cancel(struct api *a, volatile sig_atomic_t *flag)
{
	a->cancel = flag;
}

struct sink {
	struct dbuf b;
	int overflow;
};

static size_t
write_cb(char *p, size_t size, size_t nmemb, void *arg)
{
	struct sink *k = arg;
	size_t n = size * nmemb;

	if (dbuf_add(&k->b, p, n) != EL_OK) {
		k->overflow = 1;    /* over API_MAX_BODY: curl fails with CURLE_WRITE_ERROR */
		return 0;
	}
	return n;
}

static int
progress_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
    curl_off_t ulnow)
{
	struct api *a = arg;

	(void)dltotal; (void)dlnow; (void)ultotal; (void)ulnow;
	return a->cancel != NULL && *a->cancel != 0;
}

static int
dump_cb(const char *buf, size_t size, void *arg)
{
	return dbuf_add(arg, buf, size) == EL_OK ? 0 : -1;
}

static int
set_error(struct api_error *e, int xc, long status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int
set_error(struct api_error *e, int xc, long status, const char *code, const char *fmt, ...)
{
	va_list ap;

	e->exit = xc;
	e->status = status;
	el_strlcpy(e->code, code != NULL ? code : "", sizeof(e->code));
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return xc;
}

static int
curl_failure(struct api *a, CURLcode c, const char *errbuf, int overflow, struct api_error *e)
{
	const char *detail = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(c);

	switch (c) {
	case CURLE_ABORTED_BY_CALLBACK:
		return set_error(e, CLI_INTERRUPTED, 0, "interrupted", "interrupted");
	case CURLE_WRITE_ERROR:
		if (overflow)
			return set_error(e, CLI_ERR, 0, "too_large", "the broker at %s answered "
			    "with more than %d bytes: refusing it", a->server, API_MAX_BODY);
		break;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		return set_error(e, CLI_UNREACHABLE, 0, "unreachable", "cannot reach the broker "
		    "at %s: %s (is elevated running?)", a->server, detail);
	case CURLE_OPERATION_TIMEDOUT:
		return set_error(e, CLI_UNREACHABLE, 0, "unreachable", "cannot reach the broker "
		    "at %s: no answer within %d s (is elevated running?)", a->server,
		    API_TIMEOUT);
	default:
		break;
	}
	return set_error(e, CLI_ERR, 0, "transport", "talking to the broker at %s: %s",
	    a->server, detail);
}

static const char *
auth_hint(const struct api *a, const char *code)
{
	static char hint[PATH_MAX + 2 * API_USER_MAX + 256];

	if (strcmp(code, "bad_signature") == 0)
		snprintf(hint, sizeof(hint), "is the public key in %s/key.pub listed for user "
		    "\"%s\" in the policy?", a->dir, a->user);
	else if (strcmp(code, "unknown_user") == 0)
		snprintf(hint, sizeof(hint), "the policy has no user \"%s\": check \"user\" in "
		    "%s/config.json", a->user, a->dir);
	else if (strcmp(code, "clock_skew") == 0)
		snprintf(hint, sizeof(hint), "this machine's clock is more than %d s away from "
		    "the broker's: synchronise it (e.g. timedatectl set-ntp true)",
		    REQSIG_MAX_SKEW);
	else if (strcmp(code, "replayed_nonce") == 0)
		snprintf(hint, sizeof(hint), "try again");
	else
		return NULL;
	return hint;
}

/* An answer with status >= 300: the broker's {"error": {code, message}} when it sent one. */
static int
http_failure(struct api *a, long status, const json_t *j, struct api_error *e)
{
	const json_t *err = json_object_get(j, "error");
	const char *code = output_str(err, "code"), *msg = output_str(err, "message"), *hint;
	int xc;

	if (status == 401 || status == 403 || status == 409)
		xc = CLI_REFUSED;
	else if (status == 404)
		xc = CLI_NOTFOUND;
	else if (status == 503)
		xc = CLI_UNREACHABLE;
	else
		xc = CLI_ERR;
	if (code == NULL)
		code = "";
	if (msg == NULL || *msg == '\0')
		msg = status < 400 ? "unexpected answer" : "no error message";
	if (status == 401 && (hint = auth_hint(a, code)) != NULL)
		return set_error(e, xc, status, code, "the broker refused the call: %s (%s): %s",
		    msg, code, hint);
	if (*code != '\0')
		return set_error(e, xc, status, code, "%s (%s)", msg, code);
	return set_error(e, xc, status, code, "%s (HTTP %ld from %s)", msg, status, a->server);
}

/* The path part of the server URL ("" or "/prefix"): it is on the wire, so it is signed. */
static const char *
server_path(const struct api *a)
{
	const char *host = strstr(a->server, "://"), *p;

	p = host != NULL ? strchr(host + 3, '/') : NULL;
	return p != NULL ? p : "";
}

static enum el_err
add_header(struct curl_slist **h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static enum el_err
add_header(struct curl_slist **h, const char *fmt, ...)
{
	char line[API_USER_MAX + REQSIG_SIG_B64_MAX + 64];
	struct curl_slist *nh;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line))
		return EL_ETOOBIG;
	if ((nh = curl_slist_append(*h, line)) == NULL)
		return EL_ENOMEM;
	*h = nh;
	return EL_OK;
}

static void
set_curl_options(struct api *a, const char *url, struct curl_slist *h, struct sink *k,
    const char *method, const struct dbuf *req, char *errbuf)
{
	curl_easy_reset(a->curl);       /* keeps the connection for the next poll */
	curl_easy_setopt(a->curl, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(a->curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(a->curl, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(a->curl, CURLOPT_FOLLOWLOCATION, 0L);   /* the signature binds the path */
	curl_easy_setopt(a->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(a->curl, CURLOPT_CONNECTTIMEOUT, (long)API_CONNECT_TIMEOUT);
	curl_easy_setopt(a->curl, CURLOPT_TIMEOUT, (long)API_TIMEOUT);
	curl_easy_setopt(a->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(a->curl, CURLOPT_USERAGENT, "elevate/" ELEVATE_VERSION);
	curl_easy_setopt(a->curl, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(a->curl, CURLOPT_WRITEDATA, k);
	curl_easy_setopt(a->curl, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(a->curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(a->curl, CURLOPT_XFERINFOFUNCTION, progress_cb);
	curl_easy_setopt(a->curl, CURLOPT_XFERINFODATA, a);
	if (a->ca_file[0] != '\0')
		curl_easy_setopt(a->curl, CURLOPT_CAINFO, a->ca_file);
	if (strcmp(method, "GET") == 0)
		curl_easy_setopt(a->curl, CURLOPT_HTTPGET, 1L);
	else {
		if (strcmp(method, "POST") != 0)
			curl_easy_setopt(a->curl, CURLOPT_CUSTOMREQUEST, method);
		curl_easy_setopt(a->curl, CURLOPT_POST, 1L);
		curl_easy_setopt(a->curl, CURLOPT_POSTFIELDS, req->p != NULL ? req->p : "");
		curl_easy_setopt(a->curl, CURLOPT_POSTFIELDSIZE, (long)req->len);
	}
}

int
api_call(struct api *a, const char *method, const char *path_query, const json_t *body,
    json_t **out, struct api_error *e)
{
	struct reqsig_fields f;
	struct dbuf req;
	struct sink k;
	struct curl_slist *h = NULL;
	char date[32], nonce[32], sig[REQSIG_SIG_B64_MAX + 16], errbuf[CURL_ERROR_SIZE];
	char url[API_URL_MAX + 2048], pq[API_URL_MAX + 2048];
	json_t *j = NULL;
	json_error_t jerr;
	CURLcode c;
	long status = 0;
	int rc;

	*out = NULL;
	memset(e, 0, sizeof(*e));
	dbuf_init(&req, API_MAX_BODY);
	dbuf_init(&k.b, API_MAX_BODY);
	k.overflow = 0;
	errbuf[0] = '\0';
	if (body != NULL && json_dump_callback(body, dump_cb, &req, JSON_COMPACT) != 0) {
		rc = set_error(e, CLI_ERR, 0, "too_large", "request body too large");
		goto out;
	}
	if ((size_t)snprintf(url, sizeof(url), "%s%s", a->server, path_query) >= sizeof(url) ||
	    (size_t)snprintf(pq, sizeof(pq), "%s%s", server_path(a), path_query) >= sizeof(pq)) {
		rc = set_error(e, CLI_ERR, 0, "too_large", "URL too long");
		goto out;
	}
	el_format_time(el_now(), date, sizeof(date));
	reqsig_nonce(nonce, sizeof(nonce));
	memset(&f, 0, sizeof(f));
	f.method = method;
	f.path_query = pq;
	f.date = date;
	f.nonce = nonce;
	f.user = a->user;
	f.body = req.p;
	f.body_len = req.len;
	if (reqsig_sign(a->sk, &f, sig, sizeof(sig)) != EL_OK) {
		rc = set_error(e, CLI_ERR, 0, "sign", "cannot sign the request");
		goto out;
	}
	/* No "Expect: 100-continue" round trip for small bodies. */
	if (add_header(&h, "X-Elevate-User: %s", a->user) != EL_OK ||
	    add_header(&h, "X-Elevate-Date: %s", date) != EL_OK ||
	    add_header(&h, "X-Elevate-Nonce: %s", nonce) != EL_OK ||
	    add_header(&h, "X-Elevate-Signature: %s", sig) != EL_OK ||
	    add_header(&h, "Accept: application/json") != EL_OK ||
	    add_header(&h, body != NULL ? "Content-Type: application/json" :
	    "Content-Type:") != EL_OK ||     /* empty: no form type on a bodiless POST */
	    add_header(&h, "Expect:") != EL_OK) {
		rc = set_error(e, CLI_ERR, 0, "nomem", "cannot build the request headers");
		goto out;
	}
	set_curl_options(a, url, h, &k, method, &req, errbuf);
	if ((c = curl_easy_perform(a->curl)) != CURLE_OK) {
		rc = curl_failure(a, c, errbuf, k.overflow, e);
		goto out;
	}
	curl_easy_getinfo(a->curl, CURLINFO_RESPONSE_CODE, &status);
	if (k.b.len > 0)
		j = json_loadb(k.b.p, k.b.len, 0, &jerr);
	if (status >= 300 || status < 200) {
		rc = http_failure(a, status, j, e);
		goto out;
	}
	if (!json_is_object(j)) {
		rc = set_error(e, CLI_ERR, status, "bad_answer", "the broker at %s answered "
		    "HTTP %ld with %s", a->server, status, j == NULL ? "malformed JSON" :
		    "JSON that is not an object");
		goto out;
	}
	*out = j;
	j = NULL;
	rc = CLI_OK;
out:
	curl_slist_free_all(h);
	json_decref(j);
	/* The answer may be credentials. */
	dbuf_free_secret(&k.b);
	dbuf_free_secret(&req);
	return rc;
}

void
api_perror(const struct api_error *e)
{
	output_err("%s", e->msg);
}

int
api_do(struct api *a, const char *method, const char *path_query, const json_t *body,
    json_t **out)
{
	struct api_error e;
	int rc;

	if ((rc = api_call(a, method, path_query, body, out, &e)) != CLI_OK)
		api_perror(&e);
	return rc;
}

enum el_err
api_query_add(struct dbuf *q, const char *key, const char *value)
{
	static const char hx[] = "0123456789ABCDEF";
	const unsigned char *p;
	enum el_err r;

	if (value == NULL)
		return EL_OK;
	if ((r = dbuf_printf(q, "%s%s=", q->len > 0 ? "&" : "", key)) != EL_OK)
		return r;
	for (p = (const unsigned char *)value; *p != '\0'; p++) {
		char enc[3];

		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~')
			r = dbuf_add(q, p, 1);
		else {
			enc[0] = '%';
			enc[1] = hx[*p >> 4];
			enc[2] = hx[*p & 15];
			r = dbuf_add(q, enc, 3);
		}
		if (r != EL_OK)
			return r;
	}
	return EL_OK;
}

int
api_valid_id(const char *s)
{
	size_t n;

	if (s == NULL || *s == '\0' || *s == '-' || *s == '.')
		return 0;
	for (n = 0; s[n] != '\0'; n++) {
		char c = s[n];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return 0;
	}
	return n <= 64;
}
