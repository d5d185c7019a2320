/*
 * api.c — owns the CLI's conversation with the broker: the user's Ed25519 secret key
 * (sodium_malloc'd, wiped on close; config.json is api_conf.c's), request signing
 * (docs/API.md, via reqsig.c), the libcurl transfer with timeouts and a 1 MiB answer
 * ceiling, and the mapping of broker errors to messages and exit codes.
 */
#include <errno.h>
#include <fcntl.h>
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

#define KEY_TEXT_MAX 256

struct api {
	struct api_conf c;
	unsigned char *sk;                /* sodium_malloc, crypto_sign_SECRETKEYBYTES */
	CURL *curl;
	volatile sig_atomic_t *cancel;
};

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
	char path[PATH_MAX];
	int rc;

	*out = NULL;
	if ((a = calloc(1, sizeof(*a))) == NULL) {
		output_err("out of memory");
		return CLI_ERR;
	}
	if ((rc = api_conf_load(&a->c, 0)) != CLI_OK)
		goto out;
	rc = CLI_ERR;
	if ((a->sk = sodium_malloc(crypto_sign_SECRETKEYBYTES)) == NULL) {
		output_err("out of memory");
		goto out;
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/key", a->c.dir) >= sizeof(path)) {
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
	return a->c.user;
}

const char *
api_server(const struct api *a)
{
	return a->c.server;
}

const struct api_conf *
api_conf(const struct api *a)
{
	return &a->c;
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
			    "with more than %d bytes: refusing it", a->c.server, API_MAX_BODY);
		break;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		return set_error(e, CLI_UNREACHABLE, 0, "unreachable", "cannot reach the broker "
		    "at %s: %s (is elevated running?)", a->c.server, detail);
	case CURLE_OPERATION_TIMEDOUT:
		return set_error(e, CLI_UNREACHABLE, 0, "unreachable", "cannot reach the broker "
		    "at %s: no answer within %d s (is elevated running?)", a->c.server,
		    API_TIMEOUT);
	default:
		break;
	}
	return set_error(e, CLI_ERR, 0, "transport", "talking to the broker at %s: %s",
	    a->c.server, detail);
}

static const char *
auth_hint(const struct api *a, const char *code)
{
	static char hint[PATH_MAX + 2 * API_USER_MAX + 256];

	if (strcmp(code, "bad_signature") == 0)
		snprintf(hint, sizeof(hint), "is the public key in %s/key.pub listed for user "
		    "\"%s\" in the policy?", a->c.dir, a->c.user);
	else if (strcmp(code, "unknown_user") == 0)
		snprintf(hint, sizeof(hint), "the policy has no user \"%s\": check \"user\" in "
		    "%s/config.json", a->c.user, a->c.dir);
	else if (strcmp(code, "clock_skew") == 0)
		snprintf(hint, sizeof(hint), "this machine's clock is more than %d s away from "
		    "the broker's: synchronise it (e.g. timedatectl set-ntp true)",
		    REQSIG_MAX_SKEW);
	else if (strcmp(code, "replayed_nonce") == 0)
		snprintf(hint, sizeof(hint), "try again");
	else if (strcmp(code, "signed_before_restart") == 0)
		snprintf(hint, sizeof(hint), "this machine's clock is behind the broker's: "
		    "synchronise it (e.g. timedatectl set-ntp true)");
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
	return set_error(e, xc, status, code, "%s (HTTP %ld from %s)", msg, status, a->c.server);
}

/* The path part of the server URL ("" or "/prefix"): it is on the wire, so it is signed. */
static const char *
server_path(const struct api *a)
{
	const char *host = strstr(a->c.server, "://"), *p;

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
	if (a->c.ca_file[0] != '\0')
		curl_easy_setopt(a->curl, CURLOPT_CAINFO, a->c.ca_file);
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

static int
call_once(struct api *a, const char *method, const char *path_query, const json_t *body,
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
	if ((size_t)snprintf(url, sizeof(url), "%s%s", a->c.server, path_query) >= sizeof(url) ||
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
	f.user = a->c.user;
	f.body = req.p;
	f.body_len = req.len;
	if (reqsig_sign(a->sk, &f, sig, sizeof(sig)) != EL_OK) {
		rc = set_error(e, CLI_ERR, 0, "sign", "cannot sign the request");
		goto out;
	}
	/* No "Expect: 100-continue" round trip for small bodies. */
	if (add_header(&h, "X-Elevate-User: %s", a->c.user) != EL_OK ||
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
		    "HTTP %ld with %s", a->c.server, status, j == NULL ? "malformed JSON" :
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

/* Seconds a call signed before the broker's restart is signed again: the broker refuses
 * such dates for a while after it starts (its nonces may not have reached the disk), and
 * only a clock behind the broker's keeps signing them. */
#define API_RESIGN_TRIES 5

int
api_call(struct api *a, const char *method, const char *path_query, const json_t *body,
    json_t **out, struct api_error *e)
{
	int rc, i;

	for (i = 0;; i++) {
		rc = call_once(a, method, path_query, body, out, e);
		if (rc != CLI_REFUSED || strcmp(e->code, "signed_before_restart") != 0 ||
		    i == API_RESIGN_TRIES || (a->cancel != NULL && *a->cancel != 0))
			return rc;
		if (i == 0)
			output_err("the broker has just restarted and this machine's clock is "
			    "behind it: signing the call again");
		sleep(1);
	}
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
