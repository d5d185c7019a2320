/*
 * test_aws_creds.c — the broker's credential chain as a user sets it up: environment
 * variables, shared credentials/config files selected with AWS_PROFILE (and the errors
 * for a missing or unsupported profile), the container provider and IMDSv2 against a
 * tiny loopback HTTP server run by the test, IMDS's short timeout, and the client's
 * cache (refresh ahead of expiry, keeping valid credentials when a refresh fails).
 * The same server plays a misbehaving AWS endpoint for the signed-call layer: retries
 * of 5xx and throttling, no retry of other 4xx, a proxy's HTML page, the size ceiling.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "elevate/aws.h"
#include "elevate/aws_internal.h"
#include "elevate/el.h"
#include "elevate/log.h"

static char tmpdir[256];

static const char *const chain_vars[] = {
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
	"AWS_DEFAULT_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE",
	"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
	"AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
	"AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_EC2_METADATA_DISABLED",
};

/* A clean slate for every test: nothing set, files in tmpdir, IMDS off, HOME = tmpdir. */
static int
reset_env(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(chain_vars) / sizeof(chain_vars[0]); i++)
		unsetenv(chain_vars[i]);
	setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
	setenv("HOME", tmpdir, 1);
	return 0;
}

static void
write_file(const char *name, const char *text, char *path, size_t len)
{
	FILE *f;

	snprintf(path, len, "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* ---------------------------------------------------------------- environment */

static void
from_env(void **state)
{
	struct aws_creds c;
	struct el_why w = {{0}};

	(void)state;
	setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "env-secret", 1);
	setenv("AWS_SESSION_TOKEN", "env-token", 1);
	assert_int_equal(aws_creds_chain(NULL, &c, &w), EL_OK);
	assert_string_equal(c.access_key_id, "AKIAENV");
	assert_string_equal(c.secret_access_key, "env-secret");
	assert_string_equal(c.session_token, "env-token");
	assert_string_equal(c.source, "environment");
	assert_int_equal(c.expiration, 0);
	aws_creds_clear(&c);

	/* the environment wins over a profile */
	setenv("AWS_PROFILE", "nosuch", 1);
	assert_int_equal(aws_creds_chain(NULL, &c, &w), EL_OK);
	assert_string_equal(c.source, "environment");
	aws_creds_clear(&c);
	unsetenv("AWS_PROFILE");

	unsetenv("AWS_SESSION_TOKEN");
	assert_int_equal(aws_creds_chain(NULL, &c, &w), EL_OK);
	assert_null(c.session_token);
	aws_creds_clear(&c);

	/* half set is an error, not a silent fall-through */
	unsetenv("AWS_SECRET_ACCESS_KEY");
	assert_int_equal(aws_creds_chain(NULL, &c, &w), EL_ECONFIG);
	assert_non_null(strstr(w.msg, "AWS_SECRET_ACCESS_KEY is not"));
}

/* ---------------------------------------------------------------- shared files */

static const char cred_text[] =
    "# elevate broker\r\n"
    "[default]\r\n"
    "aws_access_key_id = AKIADEFAULT\r\n"
    "aws_secret_access_key = default-secret\r\n"
    "\r\n"
    "[dev]\n"
    "  ; indented comment\n"
    "AWS_ACCESS_KEY_ID=AKIADEV\n"
    "aws_secret_access_key =   dev-secret  \n"
    "aws_session_token = dev-token\n"
    "s3 =\n"
    "  aws_access_key_id = NESTED-NOT-A-KEY\n"
    "[assumer]\n"
    "role_arn = arn:aws:iam::111122223333:role/Broker\n"
    "source_profile = default\n"
    "[half]\n"
    "aws_access_key_id = AKIAHALF\n";

static const char conf_text[] =
    "[default]\n"
    "region = ap-northeast-1\n"
    "[profile cfgonly]\n"
    "aws_access_key_id = AKIACFG\n"
    "aws_secret_access_key = cfg-secret\n"
    "[bare]\n"
    "aws_access_key_id = AKIABARE\n"
    "aws_secret_access_key = bare-secret\n"
    "[profile  sso]\n"
    "sso_session = corp\n"
    "sso_account_id = 111122223333\n"
    "[profile proc]\n"
    "credential_process = /usr/bin/false\n"
    "[profile regiononly]\n"
    "region = eu-west-1\n";

static void
setup_files(char *cred, char *conf, size_t len)
{
	write_file("credentials", cred_text, cred, len);
	write_file("config", conf_text, conf, len);
	setenv("AWS_SHARED_CREDENTIALS_FILE", cred, 1);
	setenv("AWS_CONFIG_FILE", conf, 1);
}

static void
from_profile(void **state)
{
	struct aws_creds c;
	struct el_why w = {{0}};
	char cred[512], conf[512];

	(void)state;
	setup_files(cred, conf, sizeof(cred));

	/* no AWS_PROFILE: default */
	assert_int_equal(aws_creds_chain(NULL, &c, &w), EL_OK);
	assert_string_equal(c.access_key_id, "AKIADEFAULT");
	assert_string_equal(c.secret_access_key, "default-secret");
	assert_null(c.session_token);
	assert_string_equal(c.source, "shared-credentials-file (profile default)");
	aws_creds_clear(&c);

	setenv("AWS_PROFILE", "dev", 1);
	assert_int_equal(aws_creds_chain(NULL, &c, &w), EL_OK);
	assert_string_equal(c.access_key_id, "AKIADEV");
	assert_string_equal(c.secret_access_key, "dev-secret");
	assert_string_equal(c.session_token, "dev-token");
	assert_string_equal(c.source, "shared-credentials-file (profile dev)");
	aws_creds_clear(&c);

	/* the config file names profiles "[profile NAME]" */
	setenv("AWS_PROFILE", "cfgonly", 1);
	assert_int_equal(aws_creds_chain(NULL, &c, &w), EL_OK);
	assert_string_equal(c.access_key_id, "AKIACFG");
	assert_string_equal(c.source, "shared-config-file (profile cfgonly)");
	aws_creds_clear(&c);

	/* ... so a bare "[bare]" in the config file is not the profile "bare" */
	setenv("AWS_PROFILE", "bare", 1);
	assert_int_equal(aws_creds_chain(NULL, &c, &w), EL_ECONFIG);
	assert_non_null(strstr(w.msg, "'bare'"));
	assert_non_null(strstr(w.msg, "not found"));

	/* AWS_DEFAULT_PROFILE is honoured when AWS_PROFILE is not set */
	unsetenv("AWS_PROFILE");
	setenv("AWS_DEFAULT_PROFILE", "dev", 1);
	assert_int_equal(aws_creds_chain(NULL, &c, &w), EL_OK);
	assert_string_equal(c.access_key_id, "AKIADEV");
	aws_creds_clear(&c);
}

static void
profile_errors(void **state)
{
	struct aws_creds c;
	struct el_why w = {{0}};
	char cred[512], conf[512];

	(void)state;
	setup_files(cred, conf, sizeof(cred));

	/* a missing profile names itself and both files */
	setenv("AWS_PROFILE", "prod-broker", 1);
	assert_int_equal(aws_creds_chain(NULL, &c, &w), EL_ECONFIG);
	assert_non_null(strstr(w.msg, "AWS profile 'prod-broker' (AWS_PROFILE) not found"));
	assert_non_null(strstr(w.msg, cred));
	assert_non_null(strstr(w.msg, conf));
	assert_null(c.secret_access_key);

	/* unsupported kinds are named, not skipped */
	setenv("AWS_PROFILE", "assumer", 1);
	assert_int_equal(aws_creds_chain(NULL, &c, &w), EL_ECONFIG);
	assert_non_null(strstr(w.msg, "role_arn"));
	assert_non_null(strstr(w.msg, "does not support"));
	setenv("AWS_PROFILE", "sso", 1);
	assert_int_equal(aws_creds_chain(NULL, &c, &w), EL_ECONFIG);
	assert_non_null(strstr(w.msg, "sso_session"));
	setenv("AWS_PROFILE", "proc", 1);
	assert_int_equal(aws_creds_chain(NULL, &c, &w), EL_ECONFIG);
	assert_non_null(strstr(w.msg, "credential_process"));

	/* half a key pair */
	setenv("AWS_PROFILE", "half", 1);
	assert_int_equal(aws_creds_chain(NULL, &c, &w), EL_ECONFIG);
	assert_non_null(strstr(w.msg, "aws_access_key_id but not aws_secret_access_key"));
	assert_null(strstr(w.msg, "AKIAHALF"));

	/* a profile with no keys lets the chain go on; with nothing else, a clear summary */
	setenv("AWS_PROFILE", "regiononly", 1);
	assert_int_equal(aws_creds_chain(NULL, &c, &w), EL_ECONFIG);
	assert_non_null(strstr(w.msg, "no AWS credentials for the broker"));
	assert_non_null(strstr(w.msg, "environment"));
	assert_non_null(strstr(w.msg, "no static keys"));
	assert_non_null(strstr(w.msg, "AWS_EC2_METADATA_DISABLED"));
	/* never a secret in a message */
	assert_null(strstr(w.msg, "secret"));
}

static void
default_paths_under_home(void **state)
{
	struct aws_creds c;
	struct el_why w = {{0}};
	char dir[512], path[512];

	(void)state;
	snprintf(dir, sizeof(dir), "%s/.aws", tmpdir);
	(void)mkdir(dir, 0700);
	write_file(".aws/credentials", "[default]\naws_access_key_id=AKIAHOME\n"
	    "aws_secret_access_key=home-secret\n", path, sizeof(path));
	assert_int_equal(aws_creds_chain(NULL, &c, &w), EL_OK);
	assert_string_equal(c.access_key_id, "AKIAHOME");
	aws_creds_clear(&c);
	/* "~/" in the variable is the home directory, as in the AWS CLI */
	write_file("other-creds", "[x]\naws_access_key_id=AKIATILDE\n"
	    "aws_secret_access_key=t\n", path, sizeof(path));
	setenv("AWS_SHARED_CREDENTIALS_FILE", "~/other-creds", 1);
	setenv("AWS_PROFILE", "x", 1);
	assert_int_equal(aws_creds_chain(NULL, &c, &w), EL_OK);
	assert_string_equal(c.access_key_id, "AKIATILDE");
	aws_creds_clear(&c);
	unlink(path);
	snprintf(path, sizeof(path), "%s/.aws/credentials", tmpdir);
	unlink(path);
	rmdir(dir);
}

/* ---------------------------------------------------------------- loopback server */

struct route {
	const char *method, *path;
	const char *need_header;        /* "name: value" that must be present, or NULL */
	int status;
	const char *body;
	int uses;                       /* answers left; -1 = unlimited */
};

struct server {
	int fd;
	int port;
	atomic_int silent;              /* accept nothing: a black hole for timeouts */
	atomic_int stop;                /* read by the server thread */
	pthread_t th;
	pthread_mutex_t mu;
	struct route routes[8];
	size_t nroutes;
	int hits;                       /* requests answered */
	char last_auth[256];
	char last_date[32];             /* X-Amz-Date of the last request */
	int dates_differ;               /* a retry carried a new X-Amz-Date (re-signed) */
};

static void
write_all(int fd, const char *p, size_t n)
{
	ssize_t k;

	while (n > 0 && (k = write(fd, p, n)) > 0) {
		p += k;
		n -= (size_t)k;
	}
}

static void
serve_one(struct server *s, int cfd)
{
	char req[16384], method[16], path[512], head[256], date[32] = "";
	const struct route *rt = NULL;
	size_t n = 0, i, hl, blen;
	ssize_t k;
	long clen = 0;
	int status = 404;
	const char *body = "not found", *a, *e;

	while (n < sizeof(req) - 1) {
		k = read(cfd, req + n, sizeof(req) - 1 - n);
		if (k <= 0)
			break;
		n += (size_t)k;
		req[n] = '\0';
		if ((e = strstr(req, "\r\n\r\n")) != NULL) {
			/* read the whole body too: closing on unread data would reset */
			hl = (size_t)(e - req) + 4;
			if ((a = strcasestr(req, "\r\nContent-Length:")) != NULL && a < e)
				clen = strtol(a + 17, NULL, 10);
			if (n >= hl + (size_t)clen)
				break;
		}
	}
	req[n] = '\0';
	if (sscanf(req, "%15s %511s", method, path) != 2)
		goto out;
	if ((a = strcasestr(req, "\r\nX-Amz-Date: ")) != NULL)
		snprintf(date, sizeof(date), "%.16s", a + 14);
	pthread_mutex_lock(&s->mu);
	if ((a = strcasestr(req, "\r\nAuthorization: ")) != NULL)
		snprintf(s->last_auth, sizeof(s->last_auth), "%.*s",
		    (int)strcspn(a + 17, "\r\n"), a + 17);
	if (date[0] != '\0' && s->last_date[0] != '\0' && strcmp(date, s->last_date) != 0)
		s->dates_differ = 1;
	snprintf(s->last_date, sizeof(s->last_date), "%s", date);
	for (i = 0; i < s->nroutes; i++) {
		if (strcmp(s->routes[i].method, method) == 0 &&
		    strcmp(s->routes[i].path, path) == 0 && s->routes[i].uses != 0) {
			rt = &s->routes[i];
			if (s->routes[i].uses > 0)
				s->routes[i].uses--;
			break;
		}
	}
	if (rt != NULL) {
		if (rt->need_header != NULL && strcasestr(req, rt->need_header) == NULL) {
			status = 401;
			body = "missing header";
		} else {
			status = rt->status;
			body = rt->body;
		}
	}
	s->hits++;
	pthread_mutex_unlock(&s->mu);
out:
	blen = strlen(body);
	hl = (size_t)snprintf(head, sizeof(head), "HTTP/1.1 %d X\r\nContent-Type: text/plain\r\n"
	    "x-amzn-RequestId: test-rid-%d\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
	    status, s->hits, blen);
	write_all(cfd, head, hl);
	write_all(cfd, body, blen);
	close(cfd);
}

static void *
server_main(void *arg)
{
	struct server *s = arg;
	struct pollfd p;
	int cfd;

	while (!s->stop) {
		p.fd = s->fd;
		p.events = POLLIN;
		if (poll(&p, 1, 50) <= 0 || s->silent)
			continue;
		if ((cfd = accept(s->fd, NULL, NULL)) < 0)
			continue;
		serve_one(s, cfd);
	}
	return NULL;
}

static void
server_start(struct server *s, int silent)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);

	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->mu, NULL);
	s->silent = silent;
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s->fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(s->fd, 16), 0);
	assert_int_equal(getsockname(s->fd, (struct sockaddr *)&sa, &sl), 0);
	s->port = ntohs(sa.sin_port);
	assert_int_equal(pthread_create(&s->th, NULL, server_main, s), 0);
}

/* Adds a route answering `uses` times (-1: always); earlier routes are tried first. */
static void
server_route_n(struct server *s, const char *method, const char *path, const char *need,
    int status, const char *body, int uses)
{
	pthread_mutex_lock(&s->mu);
	assert_true(s->nroutes < 8);
	s->routes[s->nroutes++] = (struct route){method, path, need, status, body, uses};
	pthread_mutex_unlock(&s->mu);
}

/* Sets the one unlimited answer for method+path (replacing an earlier one). */
static void
server_route(struct server *s, const char *method, const char *path, const char *need,
    int status, const char *body)
{
	size_t i;

	pthread_mutex_lock(&s->mu);
	for (i = 0; i < s->nroutes; i++)
		if (strcmp(s->routes[i].method, method) == 0 &&
		    strcmp(s->routes[i].path, path) == 0 && s->routes[i].uses < 0)
			break;
	assert_true(i < 8);
	s->routes[i] = (struct route){method, path, need, status, body, -1};
	if (i == s->nroutes)
		s->nroutes++;
	pthread_mutex_unlock(&s->mu);
}

static int
server_hits(struct server *s)
{
	int n;

	pthread_mutex_lock(&s->mu);
	n = s->hits;
	pthread_mutex_unlock(&s->mu);
	return n;
}

static void
server_stop(struct server *s)
{
	s->stop = 1;
	pthread_join(s->th, NULL);
	close(s->fd);
	pthread_mutex_destroy(&s->mu);
}

/* A credentials JSON document expiring `in` seconds from now (static buffer per slot). */
static const char *
creds_json(char *buf, size_t len, const char *akid, int64_t in)
{
	char when[32];

	el_format_time(el_now() + in, when, sizeof(when));
	snprintf(buf, len, "{\"Code\":\"Success\",\"AccessKeyId\":\"%s\",\"SecretAccessKey\":"
	    "\"%s-secret\",\"Token\":\"%s-token\",\"Expiration\":\"%s\"}", akid, akid, akid,
	    when);
	return buf;
}

/* ---------------------------------------------------------------- container */

static void
container_provider(void **state)
{
	struct server s;
	struct aws_creds c;
	struct el_why w = {{0}};
	char url[256], body[512], tokpath[512];

	(void)state;
	server_start(&s, 0);
	server_route(&s, "GET", "/creds", "\r\nAuthorization: container-auth-token\r\n", 200,
	    creds_json(body, sizeof(body), "ASIACONTAINER", 3600));
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/creds", s.port);
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);
	setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "container-auth-token", 1);
	assert_int_equal(aws_creds_chain(NULL, &c, &w), EL_OK);
	assert_string_equal(c.access_key_id, "ASIACONTAINER");
	assert_string_equal(c.secret_access_key, "ASIACONTAINER-secret");
	assert_string_equal(c.session_token, "ASIACONTAINER-token");
	assert_string_equal(c.source, "container");
	assert_true(c.expiration > el_now() + 3500);
	aws_creds_clear(&c);

	/* the token file wins over the variable (EKS pod identity) */
	write_file("container-token", "file-token\n", tokpath, sizeof(tokpath));
	setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", tokpath, 1);
	assert_int_equal(aws_creds_chain(NULL, &c, &w), EL_EAUTH);
	assert_string_equal(s.last_auth, "file-token");
	assert_non_null(strstr(w.msg, "HTTP 401"));
	unsetenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	unlink(tokpath);

	/* FULL_URI off loopback is refused before any request */
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://169.254.169.254/creds", 1);
	assert_int_equal(aws_creds_chain(NULL, &c, &w), EL_ECONFIG);
	assert_non_null(strstr(w.msg, "loopback"));
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://example.com/creds", 1);
	assert_int_equal(aws_creds_chain(NULL, &c, &w), EL_ECONFIG);
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "file:///etc/passwd", 1);
	assert_int_equal(aws_creds_chain(NULL, &c, &w), EL_ECONFIG);
	server_stop(&s);
}

/* ---------------------------------------------------------------- IMDSv2 */

static void
imds_provider(void **state)
{
	struct server s;
	struct aws_creds c;
	struct el_why w = {{0}};
	char url[256], body[512];

	(void)state;
	server_start(&s, 0);
	server_route(&s, "PUT", "/latest/api/token",
	    "\r\nx-aws-ec2-metadata-token-ttl-seconds: 21600\r\n", 200, "IMDSSESSIONTOKEN");
	server_route(&s, "GET", "/latest/meta-data/iam/security-credentials/",
	    "\r\nx-aws-ec2-metadata-token: IMDSSESSIONTOKEN\r\n", 200, "elevate-broker\n");
	server_route(&s, "GET", "/latest/meta-data/iam/security-credentials/elevate-broker",
	    "\r\nx-aws-ec2-metadata-token: IMDSSESSIONTOKEN\r\n", 200,
	    creds_json(body, sizeof(body), "ASIAIMDS", 6 * 3600));
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", s.port);
	setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", url, 1);

	/* disabled means disabled, even with an endpoint */
	assert_int_equal(aws_creds_chain(NULL, &c, &w), EL_ECONFIG);
	assert_int_equal(server_hits(&s), 0);

	unsetenv("AWS_EC2_METADATA_DISABLED");
	assert_int_equal(aws_creds_chain(NULL, &c, &w), EL_OK);
	assert_string_equal(c.access_key_id, "ASIAIMDS");
	assert_string_equal(c.session_token, "ASIAIMDS-token");
	assert_string_equal(c.source, "imds");
	assert_int_equal(server_hits(&s), 3);
	aws_creds_clear(&c);

	/* no instance profile: a clear "nothing found" */
	server_route(&s, "GET", "/latest/meta-data/iam/security-credentials/", NULL, 404, "");
	assert_int_equal(aws_creds_chain(NULL, &c, &w), EL_ECONFIG);
	assert_non_null(strstr(w.msg, "no instance profile"));
	server_stop(&s);
}

static void
imds_timeout_is_short(void **state)
{
	struct server s;
	struct aws_creds c;
	struct el_why w = {{0}};
	char url[256];
	int64_t t0, ms;

	(void)state;
	server_start(&s, 1);            /* listens, never answers */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", s.port);
	setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", url, 1);
	unsetenv("AWS_EC2_METADATA_DISABLED");
	t0 = el_now_ms();
	assert_int_equal(aws_creds_chain(NULL, &c, &w), EL_ECONFIG);
	ms = el_now_ms() - t0;
	assert_true(ms >= 900);
	assert_true(ms < 2500);
	assert_non_null(strstr(w.msg, "IMDS"));
	server_stop(&s);
}

/* ---------------------------------------------------------------- the cache */

static void
broker_cache(void **state)
{
	struct server s;
	struct aws_client *cl;
	struct aws_creds c;
	struct el_why w = {{0}};
	char url[256], b1[512], b2[512], src[64];

	(void)state;
	server_start(&s, 0);
	/* credentials inside the 5-minute refresh margin */
	server_route(&s, "GET", "/creds", NULL, 200,
	    creds_json(b1, sizeof(b1), "ASIAFIRST", 200));
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/creds", s.port);
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);
	assert_int_equal(aws_client_new(NULL, &cl, &w), EL_OK);

	assert_int_equal(aws_broker_creds(cl, &c, &w), EL_OK);
	assert_string_equal(c.access_key_id, "ASIAFIRST");
	aws_creds_clear(&c);
	assert_int_equal(server_hits(&s), 1);
	assert_int_equal(aws_broker_creds_source(cl, src, sizeof(src), &w), EL_OK);
	assert_string_equal(src, "container");
	/* fetched just now: not refetched at once even though inside the margin */
	assert_int_equal(server_hits(&s), 1);

	/* a while later, inside the margin: refreshed ahead of expiry */
	server_route(&s, "GET", "/creds", NULL, 200,
	    creds_json(b2, sizeof(b2), "ASIASECOND", 3600));
	cl->creds_fetched -= 60;
	assert_int_equal(aws_broker_creds(cl, &c, &w), EL_OK);
	assert_string_equal(c.access_key_id, "ASIASECOND");
	aws_creds_clear(&c);
	assert_int_equal(server_hits(&s), 2);

	/* outside the margin: served from the cache */
	cl->creds_fetched -= 60;
	assert_int_equal(aws_broker_creds(cl, &c, &w), EL_OK);
	assert_string_equal(c.access_key_id, "ASIASECOND");
	aws_creds_clear(&c);
	assert_int_equal(server_hits(&s), 2);

	/* refresh fails while the cached ones are still valid: keep using them */
	server_route(&s, "GET", "/creds", NULL, 403, "{\"message\":\"no\"}");
	cl->creds.expiration = el_now() + 120;
	cl->creds_fetched -= 60;
	assert_int_equal(aws_broker_creds(cl, &c, &w), EL_OK);
	assert_string_equal(c.access_key_id, "ASIASECOND");
	aws_creds_clear(&c);
	assert_int_equal(server_hits(&s), 3);

	/* ... but not once they are (about to be) expired */
	cl->creds.expiration = el_now() + 5;
	assert_int_equal(aws_broker_creds(cl, &c, &w), EL_EAUTH);
	assert_null(c.secret_access_key);
	aws_client_free(cl);
	server_stop(&s);
}

/* ---------------------------------------------------------------- signed calls */

static const char caller_ok[] = "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/"
    "doc/2011-06-15/\"><GetCallerIdentityResult><Arn>arn:aws:iam::111122223333:user/"
    "elevate-broker</Arn></GetCallerIdentityResult><ResponseMetadata><RequestId>body-rid"
    "</RequestId></ResponseMetadata></GetCallerIdentityResponse>";
static const char nginx_502[] = "<html><head><title>502 Bad Gateway</title></head><body>"
    "<center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>";
static const char throttled[] = "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling"
    "</Code><Message>Rate exceeded</Message></Error><RequestId>thr-rid</RequestId>"
    "</ErrorResponse>";
static const char denied[] = "<ErrorResponse><Error><Code>AccessDenied</Code><Message>no"
    "</Message></Error><RequestId>deny-rid</RequestId></ErrorResponse>";

struct seen {
	int n;
	char outcome[64];
};

static void
observe(void *arg, const char *service, const char *action, const char *outcome,
    double seconds)
{
	struct seen *s = arg;

	assert_string_equal(service, "sts");
	assert_string_equal(action, "GetCallerIdentity");
	assert_true(seconds >= 0);
	s->n++;
	snprintf(s->outcome, sizeof(s->outcome), "%s", outcome);
}

static struct aws_client *
fake_client(struct server *s, int max_attempts, long max_retry_ms)
{
	struct aws_config cfg;
	struct aws_client *c;
	struct el_why w = {{0}};
	char url[128];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d", s->port);
	setenv("AWS_ACCESS_KEY_ID", "AKIDTEST", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "test-secret", 1);
	memset(&cfg, 0, sizeof(cfg));
	cfg.region = "ap-northeast-1";
	cfg.endpoint_sts = url;
	cfg.timeout_ms = 2000;
	cfg.max_attempts = max_attempts;
	cfg.max_retry_ms = max_retry_ms;
	assert_int_equal(aws_client_new(&cfg, &c, &w), EL_OK);
	return c;
}

static void
call_retries(void **state)
{
	struct server s;
	struct aws_client *c;
	struct aws_error e;
	struct seen seen = {0, ""};
	char arn[256];

	(void)state;
	server_start(&s, 0);
	c = fake_client(&s, 5, 20000);
	aws_client_set_observer(c, observe, &seen);
	/* a proxy's 502 page, then throttling, then the answer: retried, re-signed, once
	 * to the observer */
	server_route_n(&s, "POST", "/", NULL, 502, nginx_502, 1);
	server_route_n(&s, "POST", "/", NULL, 400, throttled, 1);
	server_route_n(&s, "POST", "/", NULL, 200, caller_ok, 1);
	assert_int_equal(aws_sts_get_caller_identity(c, NULL, NULL, arn, sizeof(arn), &e),
	    EL_OK);
	assert_string_equal(arn, "arn:aws:iam::111122223333:user/elevate-broker");
	assert_int_equal(server_hits(&s), 3);
	assert_int_equal(seen.n, 1);
	assert_string_equal(seen.outcome, "ok");
	assert_non_null(strstr(s.last_auth, "AWS4-HMAC-SHA256 Credential=AKIDTEST/"));
	assert_non_null(strstr(s.last_auth, "/ap-northeast-1/sts/aws4_request"));
	assert_non_null(strstr(s.last_auth, "SignedHeaders=content-type;host;x-amz-date,"));

	/* other 4xx: exactly one attempt, AWS's code and request id */
	server_route_n(&s, "POST", "/", NULL, 403, denied, 1);
	assert_int_equal(aws_sts_get_caller_identity(c, NULL, NULL, arn, sizeof(arn), &e),
	    EL_EAWS);
	assert_int_equal(server_hits(&s), 4);
	assert_string_equal(e.code, "AccessDenied");
	assert_string_equal(e.request_id, "deny-rid");
	assert_int_equal(e.http_status, 403);
	assert_string_equal(seen.outcome, "AccessDenied");

	/* a 4xx page that is not an AWS error: EL_EPARSE with the status, not retried */
	server_route_n(&s, "POST", "/", NULL, 400, "<html><body>Bad Request</body></html>", 1);
	assert_int_equal(aws_sts_get_caller_identity(c, NULL, NULL, arn, sizeof(arn), &e),
	    EL_EPARSE);
	assert_int_equal(server_hits(&s), 5);
	assert_int_equal(e.http_status, 400);
	assert_string_equal(e.code, "");
	assert_non_null(strstr(e.message, "HTTP 400"));
	assert_string_equal(seen.outcome, "invalid-response");

	/* 502 forever: bounded by max_attempts, the last answer reported */
	server_route(&s, "POST", "/", NULL, 502, nginx_502);
	assert_int_equal(aws_sts_get_caller_identity(c, NULL, NULL, arn, sizeof(arn), &e),
	    EL_EPARSE);
	assert_int_equal(server_hits(&s), 10);
	assert_int_equal(e.http_status, 502);
	assert_non_null(strstr(e.message, "502 Bad Gateway"));
	aws_client_free(c);
	server_stop(&s);
}

static void
call_resigns_each_attempt(void **state)
{
	struct server s;
	struct aws_client *c;
	struct aws_error e;
	char arn[256];
	int64_t t0, ms;

	(void)state;
	server_start(&s, 0);
	c = fake_client(&s, 20, 2500);
	/* Throttled throughout: a call retries within its 2.5 s budget (jitter decides how
	 * long exactly), and X-Amz-Date must move with the attempts, each one signed anew.
	 * Only dates seen within one call count. */
	server_route(&s, "POST", "/", NULL, 400, throttled);
	t0 = el_now_ms();
	do {
		pthread_mutex_lock(&s.mu);
		s.last_date[0] = '\0';
		pthread_mutex_unlock(&s.mu);
		ms = el_now_ms();
		assert_int_equal(aws_sts_get_caller_identity(c, NULL, NULL, arn, sizeof(arn),
		    &e), EL_EAWS);
		ms = el_now_ms() - ms;
		assert_true(ms <= 2500 + 2000);         /* the budget holds */
	} while (!s.dates_differ && el_now_ms() - t0 < 15000);
	assert_true(s.dates_differ);
	assert_true(server_hits(&s) > 2);
	assert_string_equal(e.code, "Throttling");
	aws_client_free(c);
	server_stop(&s);
}

static void
call_size_ceiling(void **state)
{
	struct server s;
	struct aws_client *c;
	struct aws_error e;
	struct seen seen = {0, ""};
	char arn[256], *big;

	(void)state;
	big = malloc(AWS_MAX_RESPONSE + 4096);
	assert_non_null(big);
	memset(big, 'x', AWS_MAX_RESPONSE + 4095);
	big[AWS_MAX_RESPONSE + 4095] = '\0';
	server_start(&s, 0);
	c = fake_client(&s, 5, 20000);
	aws_client_set_observer(c, observe, &seen);
	server_route(&s, "POST", "/", NULL, 200, big);
	assert_int_equal(aws_sts_get_caller_identity(c, NULL, NULL, arn, sizeof(arn), &e),
	    EL_ETOOBIG);
	assert_int_equal(server_hits(&s), 1);           /* never retried */
	assert_non_null(strstr(e.message, "larger than"));
	assert_string_equal(seen.outcome, "invalid-response");
	aws_client_free(c);
	server_stop(&s);
	free(big);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(from_env, reset_env),
		cmocka_unit_test_setup(from_profile, reset_env),
		cmocka_unit_test_setup(profile_errors, reset_env),
		cmocka_unit_test_setup(default_paths_under_home, reset_env),
		cmocka_unit_test_setup(container_provider, reset_env),
		cmocka_unit_test_setup(imds_provider, reset_env),
		cmocka_unit_test_setup(imds_timeout_is_short, reset_env),
		cmocka_unit_test_setup(broker_cache, reset_env),
		cmocka_unit_test_setup(call_retries, reset_env),
		cmocka_unit_test_setup(call_resigns_each_attempt, reset_env),
		cmocka_unit_test_setup(call_size_ceiling, reset_env),
	};
	char path[512];
	int rc;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_aws_creds.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return 1;
	log_set_level(LOG_LVL_ERR);     /* the retries below warn by design */
	/* The test server answers clients that hang up on purpose (the size ceiling): a
	 * write to them must fail, not kill the binary. */
	signal(SIGPIPE, SIG_IGN);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	snprintf(path, sizeof(path), "%s/credentials", tmpdir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/config", tmpdir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/other-creds", tmpdir);
	unlink(path);
	rmdir(tmpdir);
	return rc;
}
