/*
 * test_config.c — elevated.json as an operator meets it: the defaults, a full valid file,
 * and every kind of mistake reported with the file and the JSON path, all at once.
 */
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

#include "elevate/config.h"
#include "elevate/store.h"
#include "elevate/diag.h"
#include "elevate/el.h"
#include "elevate/webhook.h"

struct fx {
	char dir[64];
	char file[128];
	struct config cfg;
	struct diags d;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/el_test_config_XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->file, sizeof(f->file), "%s/elevated.json", f->dir);
	diags_init(&f->d);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	config_free(&f->cfg);
	diags_free(&f->d);
	unlink(f->file);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Writes text to the fixture's file and loads it. */
static enum el_err
load(struct fx *f, const char *text)
{
	FILE *fp = fopen(f->file, "w");

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	return config_load(f->file, &f->cfg, &f->d);
}

/* The message recorded for a JSON path, or NULL. Also checks the file is named. */
static const char *
diag_at(const struct fx *f, const char *path)
{
	size_t i;

	for (i = 0; i < f->d.n; i++)
		if (f->d.v[i].path != NULL && strcmp(f->d.v[i].path, path) == 0) {
			assert_non_null(f->d.v[i].file);
			assert_string_equal(f->d.v[i].file, f->file);
			return f->d.v[i].msg;
		}
	return NULL;
}

static void
dump(const struct fx *f)
{
	diags_print(&f->d, stderr);
}

static void
expect_diag(const struct fx *f, const char *path, const char *needle)
{
	const char *m = diag_at(f, path);

	if (m == NULL) {
		dump(f);
		fail_msg("no problem reported at %s", path);
	}
	if (needle != NULL && strstr(m, needle) == NULL)
		fail_msg("%s: \"%s\" does not mention \"%s\"", path, m, needle);
}

static void
defaults(void **state)
{
	struct fx *f = *state;
	struct config *c = &f->cfg;

	assert_int_equal(config_load(NULL, c, &f->d), EL_OK);
	assert_int_equal(diags_count(&f->d), 0);
	assert_string_equal(c->listen, "127.0.0.1:8443");
	assert_string_equal(c->public_url, "http://127.0.0.1:8443");
	assert_null(c->tls_cert);
	assert_null(c->tls_key);
	assert_string_equal(c->state_dir, "/var/lib/elevate");
	assert_string_equal(c->policies, "/etc/elevate/policies");
	assert_string_equal(c->templates, "/usr/share/elevate/templates");
	assert_null(c->smtp_url);
	assert_string_equal(c->smtp_from, "elevate@localhost");
	assert_false(c->smtp_require_starttls);
	assert_int_equal(c->smtp_timeout, 30);
	assert_int_equal(c->mail_max_attempts, 12);
	assert_string_equal(c->aws_region, "us-east-1");
	assert_null(c->aws_endpoint);
	assert_null(c->aws_endpoint_sts);
	assert_int_equal(c->aws_max_attempts, 5);
	assert_int_equal(c->aws_timeout, 10);
	assert_null(c->audit_file);
	assert_false(c->audit_syslog);
	assert_int_equal(c->audit_checkpoint_every, 100);
	assert_int_equal(c->refusal_interval, 60);
	assert_int_equal(c->refusals_individual, 5);
	assert_int_equal(c->refusal_burst, 30);
	assert_int_equal(c->refusal_rate, 30);
	assert_int_equal(c->refusal_addresses, 4096);
	assert_null(c->trusted_proxy);
	assert_string_equal(c->auditors, "group:security");
	assert_string_equal(c->admins, "group:platform-admins");
	assert_int_equal(c->max_body, 65536);
	assert_int_equal(c->max_connections, 4096);
	assert_int_equal(c->max_connections_per_address, 64);
	assert_int_equal(c->request_timeout, 10);
	assert_int_equal(c->connection_timeout, 30);
	assert_int_equal(c->http_threads, 8);
	assert_int_equal(c->ending_soon, 300);
	assert_string_equal(c->revoke_policy_name, "elevate-revoked-sessions");
	assert_string_equal(c->log_level, "info");
	assert_false(c->log_syslog);
}

/* The example from DESIGN.md loads as written. */
static void
design_example(void **state)
{
	struct fx *f = *state;
	struct config *c = &f->cfg;

	assert_int_equal(load(f, "{\n"
	    "  \"listen\": \"127.0.0.1:8443\",\n"
	    "  \"public_url\": \"https://elevate.example.com\",\n"
	    "  \"tls\": {\"cert\": \"/etc/elevate/tls.crt\", \"key\": \"/etc/elevate/tls.key\"},\n"
	    "  \"state_dir\": \"/var/lib/elevate\",\n"
	    "  \"policies\": \"/etc/elevate/policies\",\n"
	    "  \"templates\": \"/usr/share/elevate/templates\",\n"
	    "  \"smtp\": {\"url\": \"smtp://127.0.0.1:25\", \"from\": \"elevate@example.com\",\n"
	    "           \"username\": null, \"password_file\": null},\n"
	    "  \"aws\": {\"region\": \"ap-northeast-1\",\n"
	    "          \"endpoints\": {\"sts\": null, \"iam\": null, \"ssm\": null}},\n"
	    "  \"audit\": {\"file\": \"/var/log/elevate/audit.jsonl\", \"syslog\": false},\n"
	    "  \"auditors\": \"group:security\",\n"
	    "  \"admins\": \"group:platform-admins\"\n"
	    "}\n"), EL_OK);
	assert_int_equal(diags_count(&f->d), 0);
	assert_string_equal(c->public_url, "https://elevate.example.com");
	assert_string_equal(c->tls_cert, "/etc/elevate/tls.crt");
	assert_string_equal(c->tls_key, "/etc/elevate/tls.key");
	assert_string_equal(c->smtp_url, "smtp://127.0.0.1:25");
	assert_string_equal(c->smtp_from, "elevate@example.com");
	assert_null(c->smtp_username);
	assert_string_equal(c->aws_region, "ap-northeast-1");
	assert_null(c->aws_endpoint_sts);
	assert_string_equal(c->audit_file, "/var/log/elevate/audit.jsonl");
	/* Keys the file does not mention keep their defaults. */
	assert_int_equal(c->aws_timeout, 10);
	assert_string_equal(c->log_level, "info");
}

static void
values_of_every_type(void **state)
{
	struct fx *f = *state;
	struct config *c = &f->cfg;

	assert_int_equal(load(f, "{\"listen\": \"0.0.0.0:9000\", "
	    "\"smtp\": {\"require_starttls\": true, \"timeout\": \"2m\", \"max_attempts\": 100},"
	    "\"aws\": {\"timeout\": 120, \"max_attempts\": 1, \"endpoint\": \"http://127.0.0.1:4566\","
	    " \"endpoints\": {\"ec2\": \"http://e\"}},"
	    "\"limits\": {\"max_body\": 1024, \"connection_timeout\": \"1h\","
	    " \"max_connections_per_address\": 0, \"request_timeout\": \"5m\", \"http_threads\": 1},"
	    "\"mail\": {\"ending_soon\": 0}, \"log\": {\"level\": \"debug\", \"syslog\": true}}"),
	    EL_OK);
	assert_string_equal(c->listen, "0.0.0.0:9000");
	assert_string_equal(c->public_url, "http://0.0.0.0:9000");   /* derived from listen */
	assert_true(c->smtp_require_starttls);
	assert_int_equal(c->smtp_timeout, 120);
	assert_int_equal(c->mail_max_attempts, 100);
	assert_int_equal(c->aws_timeout, 120);
	assert_int_equal(c->aws_max_attempts, 1);
	assert_string_equal(c->aws_endpoint, "http://127.0.0.1:4566");
	assert_string_equal(c->aws_endpoint_ec2, "http://e");
	assert_int_equal(c->max_body, 1024);
	assert_int_equal(c->connection_timeout, 3600);
	assert_int_equal(c->max_connections_per_address, 0);
	assert_int_equal(c->request_timeout, 300);
	assert_int_equal(c->http_threads, 1);
	assert_int_equal(c->ending_soon, 0);
	assert_string_equal(c->log_level, "debug");
	assert_true(c->log_syslog);

	config_free(c);
	assert_int_equal(load(f, "{\"mail\": {\"ending_soon\": \"0\"}}"), EL_OK);
	assert_int_equal(c->ending_soon, 0);
}

static void
unknown_key(void **state)
{
	struct fx *f = *state;

	assert_int_equal(load(f, "{\"smtp\": {\"ulr\": \"smtp://x\"}, \"lissen\": \"a:1\","
	    " \"aws\": {\"endpoints\": {\"sqs\": \"http://x\"}}}"), EL_ECONFIG);
	expect_diag(f, "$.smtp.ulr", "unknown");
	expect_diag(f, "$.lissen", "unknown key (did you mean listen?)");
	expect_diag(f, "$.aws.endpoints.sqs", "unknown");
	assert_int_equal(diags_count(&f->d), 3);
	/* The typo did not set anything. */
	assert_null(f->cfg.smtp_url);
}

static void
wrong_types(void **state)
{
	struct fx *f = *state;

	assert_int_equal(load(f, "{\"listen\": 8443, \"smtp\": {\"require_starttls\": \"yes\","
	    " \"max_attempts\": \"5\", \"timeout\": true}, \"limits\": {\"max_body\": 1.5},"
	    " \"aws\": {\"max_attempts\": null}, \"tls\": \"on\"}"), EL_ECONFIG);
	expect_diag(f, "$.listen", "string");
	expect_diag(f, "$.smtp.require_starttls", "true or false");
	expect_diag(f, "$.smtp.max_attempts", "expected an integer, got a string");
	expect_diag(f, "$.smtp.timeout", "duration");
	expect_diag(f, "$.limits.max_body", "expected an integer");
	expect_diag(f, "$.aws.max_attempts", "null");
	expect_diag(f, "$.tls", NULL);
	/* Refused values leave the defaults in place. */
	assert_string_equal(f->cfg.listen, "127.0.0.1:8443");
	assert_int_equal(f->cfg.mail_max_attempts, 12);
	assert_int_equal(f->cfg.max_body, 65536);
}

static void
bounds(void **state)
{
	struct fx *f = *state;

	assert_int_equal(load(f, "{\"smtp\": {\"timeout\": \"601s\", \"max_attempts\": 0},"
	    " \"aws\": {\"timeout\": \"0\", \"max_attempts\": 21},"
	    " \"limits\": {\"max_body\": 1023, \"max_connections\": 65537,"
	    " \"connection_timeout\": \"1h30\", \"max_connections_per_address\": -1,"
	    " \"request_timeout\": \"301s\", \"http_threads\": 65},"
	    " \"mail\": {\"ending_soon\": \"1d1s\"},"
	    " \"audit\": {\"checkpoint_every\": -1}}"), EL_ECONFIG);
	expect_diag(f, "$.smtp.timeout", "10m1s is out of range (1s..10m)");
	expect_diag(f, "$.smtp.max_attempts", "(1..100)");
	expect_diag(f, "$.aws.timeout", "duration");
	expect_diag(f, "$.aws.max_attempts", "(1..20)");
	expect_diag(f, "$.limits.max_body", "1024");
	expect_diag(f, "$.limits.max_connections", "65536");
	expect_diag(f, "$.limits.connection_timeout", "duration");
	expect_diag(f, "$.limits.max_connections_per_address", "(0..65536)");
	expect_diag(f, "$.limits.request_timeout", "(1s..5m)");
	expect_diag(f, "$.limits.http_threads", "(1..64)");
	expect_diag(f, "$.mail.ending_soon", "(0s..1d)");
	expect_diag(f, "$.audit.checkpoint_every", NULL);
	assert_int_equal(diags_count(&f->d), 12);
	assert_int_equal(f->cfg.smtp_timeout, 30);
	assert_int_equal(f->cfg.max_body, 65536);

	/* Exactly at the bounds is fine, as a string or a number of seconds. */
	config_free(&f->cfg);
	diags_free(&f->d);
	assert_int_equal(load(f, "{\"smtp\": {\"timeout\": \"10m\"}, \"aws\": {\"timeout\": 1},"
	    " \"mail\": {\"ending_soon\": \"1d\"}, \"limits\": {\"max_body\": 1048576}}"), EL_OK);
	assert_int_equal(f->cfg.smtp_timeout, 600);
	assert_int_equal(f->cfg.aws_timeout, 1);
	assert_int_equal(f->cfg.ending_soon, 86400);
	assert_int_equal(f->cfg.max_body, 1048576);
}

static void
cross_checks(void **state)
{
	struct fx *f = *state;

	assert_int_equal(load(f, "{\"tls\": {\"cert\": \"/etc/elevate/tls.crt\"}}"), EL_ECONFIG);
	expect_diag(f, "$.tls", "key");
	assert_int_equal(diags_count(&f->d), 1);

	config_free(&f->cfg);
	diags_free(&f->d);
	assert_int_equal(load(f, "{\"tls\": {\"key\": \"/k\"}, \"public_url\": \"ftp://x\","
	    " \"log\": {\"level\": \"verbose\"}, \"listen\": \"8443\"}"), EL_ECONFIG);
	expect_diag(f, "$.tls", "cert");
	expect_diag(f, "$.public_url", "http");
	expect_diag(f, "$.log.level", "debug");
	expect_diag(f, "$.listen", "port");

	/* the proxy whose X-Forwarded-For is believed: an address, never a name */
	config_free(&f->cfg);
	diags_free(&f->d);
	assert_int_equal(load(f, "{\"trusted_proxy\": \"proxy.example.com\"}"), EL_ECONFIG);
	expect_diag(f, "$.trusted_proxy", "IP address");
	config_free(&f->cfg);
	diags_free(&f->d);
	assert_int_equal(load(f, "{\"trusted_proxy\": \"::1\", \"limits\": "
	    "{\"refusal_burst\": 5, \"refusal_rate\": 2}, \"audit\": "
	    "{\"refusal_interval\": \"5m\", \"refusals_individual\": 0}}"), EL_OK);
	assert_string_equal(f->cfg.trusted_proxy, "::1");
	assert_int_equal(f->cfg.refusal_burst, 5);
	assert_int_equal(f->cfg.refusal_rate, 2);
	assert_int_equal(f->cfg.refusal_interval, 300);
	assert_int_equal(f->cfg.refusals_individual, 0);
}

/* store.url: SQLite (the default), or what libpq takes; a refusal never quotes a
 * password back. */
static void
store_url(void **state)
{
	struct fx *f = *state;
	char where[256];
	const char *ok[] = {
		"{\"store\": {\"url\": \"sqlite:\"}}",
		"{\"store\": {\"url\": \"postgresql://elevate@db.example.com:5433/elevate"
		    "?sslmode=verify-full&sslrootcert=/etc/elevate/db-ca.pem\","
		    " \"password_file\": \"/etc/elevate/db.pw\"}}",
		"{\"store\": {\"url\": \"postgres://db1,db2/elevate?target_session_attrs=read-write\"}}",
		"{\"store\": {\"url\": \"host=db.example.com dbname=elevate user=elevate"
		    " passfile=/etc/elevate/pgpass\"}}",
	};
	size_t i;

	assert_int_equal(load(f, "{}"), EL_OK);
	assert_null(f->cfg.store_url);
	store_where(&f->cfg, where, sizeof(where));
	assert_string_equal(where, "/var/lib/elevate/elevate.db");
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		config_free(&f->cfg);
		diags_free(&f->d);
		if (load(f, ok[i]) != EL_OK) {
			dump(f);
			fail_msg("refused: %s", ok[i]);
		}
	}
	store_where(&f->cfg, where, sizeof(where));
	assert_string_equal(where, "the PostgreSQL database elevate on db.example.com as "
	    "elevate");

	config_free(&f->cfg);
	diags_free(&f->d);
	assert_int_equal(load(f, "{\"store\": {\"url\": \"mysql://db/elevate\"}}"), EL_ECONFIG);
	expect_diag(f, "$.store.url", "postgresql://");
	config_free(&f->cfg);
	diags_free(&f->d);
	assert_int_equal(load(f, "{\"store\": {\"url\": \"postgresql://db/elevate?sslmod=require\"}}"),
	    EL_ECONFIG);
	expect_diag(f, "$.store.url", "sslmod");
	config_free(&f->cfg);
	diags_free(&f->d);
	assert_int_equal(load(f, "{\"store\": {\"url\": \"postgresql://u:hunter%zz2@db/x\"}}"),
	    EL_ECONFIG);
	expect_diag(f, "$.store.url", "holds a password");
	assert_null(strstr(diag_at(f, "$.store.url"), "hunter"));
	/* a password file is for PostgreSQL */
	config_free(&f->cfg);
	diags_free(&f->d);
	assert_int_equal(load(f, "{\"store\": {\"password_file\": \"/etc/elevate/db.pw\"}}"),
	    EL_ECONFIG);
	expect_diag(f, "$.store.password_file", "PostgreSQL");
}

/* `elevated check` shows everything wrong in one run, not one problem per run. */
static void
every_problem_at_once(void **state)
{
	struct fx *f = *state;

	assert_int_equal(load(f, "{\"smtp\": {\"ulr\": \"smtp://x\", \"timeout\": \"1y\"},"
	    " \"listen\": 1, \"tls\": {\"cert\": \"/c\"}, \"limits\": {\"max_body\": 5},"
	    " \"log\": {\"level\": \"loud\"}}"), EL_ECONFIG);
	assert_int_equal(diags_count(&f->d), 6);
	expect_diag(f, "$.smtp.ulr", NULL);
	expect_diag(f, "$.smtp.timeout", NULL);
	expect_diag(f, "$.listen", NULL);
	expect_diag(f, "$.tls", NULL);
	expect_diag(f, "$.limits.max_body", NULL);
	expect_diag(f, "$.log.level", NULL);
}

static void
bad_documents(void **state)
{
	struct fx *f = *state;

	/* Syntax error: file, line and column. */
	assert_int_equal(load(f, "{\n  \"listen\": \"a:1\",\n  \"smtp\": {,}\n}\n"), EL_ECONFIG);
	assert_int_equal(f->d.n, 1);
	assert_string_equal(f->d.v[0].file, f->file);
	assert_int_equal(f->d.v[0].line, 3);
	assert_true(f->d.v[0].column > 0);
	config_free(&f->cfg);
	diags_free(&f->d);

	/* The same key twice is a mistake, not "last one wins". */
	assert_int_equal(load(f, "{\"listen\": \"a:1\", \"listen\": \"b:2\"}"), EL_ECONFIG);
	assert_int_equal(f->d.n, 1);
	assert_non_null(strstr(f->d.v[0].msg, "listen"));
	config_free(&f->cfg);
	diags_free(&f->d);

	assert_int_equal(load(f, "[1, 2]"), EL_ECONFIG);
	expect_diag(f, "$", "object");
	config_free(&f->cfg);
	diags_free(&f->d);

	/* A missing file names itself. */
	unlink(f->file);
	assert_int_equal(config_load(f->file, &f->cfg, &f->d), EL_ECONFIG);
	assert_int_equal(f->d.n, 1);
	assert_string_equal(f->d.v[0].file, f->file);
}

/*
 * A null is fine for optional strings ("username": null), but a key that has a default
 * and that the daemon cannot run without must refuse it: config_load itself computes
 * public_url from listen and compares log.level, and would dereference NULL.
 */
static void
null_for_required_strings(void **state)
{
	struct fx *f = *state;

	assert_int_equal(load(f, "{\"listen\": null}"), EL_ECONFIG);
	expect_diag(f, "$.listen", NULL);
	config_free(&f->cfg);
	diags_free(&f->d);
	assert_int_equal(load(f, "{\"log\": {\"level\": null}}"), EL_ECONFIG);
	expect_diag(f, "$.log.level", NULL);
}

/* config.h: "EL_OK only when d gained nothing" — also when d is already full and the new
 * problems are only counted (diags_count), not kept. */
static void
verdict_with_full_diags(void **state)
{
	struct fx *f = *state;
	size_t i;

	for (i = 0; i < DIAGS_MAX; i++)
		diags_add(&f->d, "policies/x.json", "$.x", 1, 1, "earlier problem %zu", i);
	assert_int_equal(diags_count(&f->d), DIAGS_MAX);
	assert_int_equal(load(f, "{\"lissen\": \"a:1\"}"), EL_ECONFIG);
	assert_int_equal(diags_count(&f->d), DIAGS_MAX + 1);
}

/* notify.webhooks: a valid list is kept as written; every mistake has its path. */
static void
webhooks(void **state)
{
	struct fx *f = *state;
	char key[160], loose[160], text[2048];
	FILE *fp;

	snprintf(key, sizeof(key), "%s/hook.key", f->dir);
	snprintf(loose, sizeof(loose), "%s/loose.key", f->dir);
	fp = fopen(key, "w");
	assert_non_null(fp);
	fputs("0123456789abcdef0123456789abcdef\n", fp);
	fclose(fp);
	assert_int_equal(chmod(key, 0600), 0);
	fp = fopen(loose, "w");
	assert_non_null(fp);
	fputs("0123456789abcdef0123456789abcdef\n", fp);
	fclose(fp);
	assert_int_equal(chmod(loose, 0644), 0);

	snprintf(text, sizeof(text), "{\"notify\": {\"webhooks\": ["
	    "{\"name\": \"ops\", \"url\": \"https://hooks.example.com/elevate\", \"kind\": "
	    "\"generic\", \"secret_file\": \"%s\"},"
	    "{\"name\": \"chat\", \"url\": \"http://127.0.0.1:9/x\", \"kind\": \"slack\","
	    " \"events\": [\"grant.ended\", \"webhook.failed\"]}],"
	    " \"webhook_retry_max\": \"2s\"}}", key);
	assert_int_equal(load(f, text), EL_OK);
	assert_int_equal(f->cfg.nwebhooks, 2);
	assert_string_equal(f->cfg.webhooks[0].name, "ops");
	assert_string_equal(f->cfg.webhooks[0].secret_file, key);
	assert_null(f->cfg.webhooks[0].events);
	assert_string_equal(f->cfg.webhooks[1].kind, "slack");
	assert_int_equal(f->cfg.webhooks[1].nevents, 2);
	assert_string_equal(f->cfg.webhooks[1].events[1], "webhook.failed");
	assert_int_equal(f->cfg.webhook_retry_max, 2);
	assert_int_equal(f->cfg.webhook_timeout, 10);
	assert_int_equal(f->cfg.webhook_give_up, 86400);
	config_free(&f->cfg);

	snprintf(text, sizeof(text), "{\"notify\": {\"webhooks\": ["
	    "{\"name\": \"ops\", \"url\": \"http://hooks.example.com/\", \"kind\": "
	    "\"generic\", \"secret_file\": \"%s\"},"
	    "{\"name\": \"ops\", \"url\": \"https://u:p@h.example/\", \"kind\": \"slack\","
	    " \"secret_file\": \"%s\", \"events\": [\"grant.ende\"]},"
	    "{\"name\": \"No\", \"url\": \"ftp://h\", \"kind\": \"generic\"},"
	    "{\"url\": \"https://h.example\", \"kind\": \"teams\", \"color\": 1}, 7]}}",
	    loose, key);
	assert_int_equal(load(f, text), EL_ECONFIG);
	expect_diag(f, "$.notify.webhooks[0].url", "only to a loopback address");
	expect_diag(f, "$.notify.webhooks[0].secret_file", "mode 644");
	expect_diag(f, "$.notify.webhooks[1].name", "names another webhook too");
	expect_diag(f, "$.notify.webhooks[1].url", "user name or password");
	expect_diag(f, "$.notify.webhooks[1].secret_file", "is for generic webhooks");
	expect_diag(f, "$.notify.webhooks[1].events[0]", "did you mean grant.ended?");
	expect_diag(f, "$.notify.webhooks[2].name", "a-z 0-9 _ -");
	expect_diag(f, "$.notify.webhooks[2].url", "must start with https://");
	expect_diag(f, "$.notify.webhooks[2].secret_file", "is required for a generic webhook");
	expect_diag(f, "$.notify.webhooks[3]", "missing required key \"name\"");
	expect_diag(f, "$.notify.webhooks[3].kind", "must be generic or slack");
	expect_diag(f, "$.notify.webhooks[3].color", "unknown key");
	expect_diag(f, "$.notify.webhooks[4]", "expected an object");
	unlink(key);
	unlink(loose);
}

static void
reference_table(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);

	(void)state;
	assert_non_null(m);
	config_print_reference(m);
	fclose(m);
	assert_non_null(strstr(buf, "| `listen` | string | 127.0.0.1:8443 |"));
	assert_non_null(strstr(buf, "| `smtp.url` | string |"));
	assert_non_null(strstr(buf, "| `smtp.timeout` | duration | 30s |"));
	assert_non_null(strstr(buf, "| `limits.max_body` | integer | 65536 |"));
	assert_non_null(strstr(buf, "(1024–1048576)"));
	assert_non_null(strstr(buf, "| `log.syslog` | bool | false |"));
	assert_non_null(strstr(buf, "| `notify.webhooks` | list | — |"));
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(design_example, setup, teardown),
		cmocka_unit_test_setup_teardown(values_of_every_type, setup, teardown),
		cmocka_unit_test_setup_teardown(unknown_key, setup, teardown),
		cmocka_unit_test_setup_teardown(wrong_types, setup, teardown),
		cmocka_unit_test_setup_teardown(bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(cross_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(store_url, setup, teardown),
		cmocka_unit_test_setup_teardown(every_problem_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(bad_documents, setup, teardown),
		cmocka_unit_test_setup_teardown(verdict_with_full_diags, setup, teardown),
		cmocka_unit_test_setup_teardown(webhooks, setup, teardown),
		cmocka_unit_test(reference_table),
		/* Last: today it crashes, which ends a sanitizer build's run early. */
		cmocka_unit_test_setup_teardown(null_for_required_strings, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
