/*
 * config.c — owns elevated.json: the one table of configuration keys (type, default,
 * bounds, help; schema.h fields, a section per nested object), loading with defaults,
 * and validation that reports every problem.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>

#include "elevate/config.h"
#include "elevate/schema.h"
#include "elevate/store.h"
#include "elevate/webhook.h"

#define STR_MAX 4096
#define CO(m) offsetof(struct config, m)

/* A string with a default (null refused), one without (null: unset), and the rest. */
#define STR(k, m, d, h) { .key = k, .kind = SF_STR, .max = STR_MAX, .off = CO(m), .dflt = d, \
	.help = h }
#define OPT(k, m, h) { .key = k, .kind = SF_STR, .max = STR_MAX, .off = CO(m), .null_ok = true, \
	.help = h }
#define BOOL(k, m, d, h) { .key = k, .kind = SF_BOOL, .off = CO(m), .dflt = d, .help = h }
#define INT(k, m, d, lo, hi, h) { .key = k, .kind = SF_INT, .off = CO(m), .dflt = d, \
	.min = lo, .max = hi, .help = h }
#define DUR(k, m, d, lo, hi, h) { .key = k, .kind = SF_DURATION, .seconds_ok = true, \
	.off = CO(m), .dflt = d, .min = lo, .max = hi, .help = h }
#define SECTION(k, s) { .key = k, .kind = SF_OBJECT, .sub = &(s) }

static bool
check_listen(struct schema_ctx *c, const char *path, const char *s)
{
	if (strchr(s, ':') != NULL)
		return true;
	schema_problem(c, path, "must be address:port");
	return false;
}

static bool
check_url(struct schema_ctx *c, const char *path, const char *s)
{
	if (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0)
		return true;
	schema_problem(c, path, "must start with http:// or https://");
	return false;
}

/* The proxy whose X-Forwarded-For is believed: an address, never a name. */
static bool
check_ip(struct schema_ctx *c, const char *path, const char *s)
{
	unsigned char bin[16];

	if (inet_pton(AF_INET, s, bin) == 1 || inet_pton(AF_INET6, s, bin) == 1)
		return true;
	schema_problem(c, path, "must be an IP address");
	return false;
}

static const struct schema_field tls_fields[] = {
	OPT("cert", tls_cert, "PEM certificate; no tls = plain HTTP"),
	OPT("key", tls_key, "PEM private key"),
};
static const struct schema tls_schema = SCHEMA(tls_fields);

/* store.url: sqlite:, or what libpq parses (checked by libpq itself, never printed back:
 * it may hold a password). */
static bool
check_store_url(struct schema_ctx *c, const char *path, const char *s)
{
	char why[256];

	if (store_url_valid(s, why, sizeof(why)))
		return true;
	schema_problem(c, path, "%s", why);
	return false;
}

/* node: a name other nodes, the audit chain and the logs can show as it is. */
static bool
check_node(struct schema_ctx *c, const char *path, const char *s)
{
	size_t i, n = strlen(s);

	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && strchr("._-", s[i]) == NULL)
			break;
	if (n >= 1 && n <= NODE_MAX && i == n)
		return true;
	schema_problem(c, path, "1 to %d letters, digits, '.', '_' or '-'", NODE_MAX);
	return false;
}

static const struct schema_field store_fields[] = {
	{ .key = "url", .kind = SF_STR, .max = STR_MAX, .off = CO(store_url), .null_ok = true,
	  .check = check_store_url,
	  .help = "where the broker's state lives: unset or sqlite: is state_dir/elevate.db; "
	  "postgresql://USER@HOST:PORT/DB?sslmode=verify-full (or libpq's keyword=value pairs; "
	  "TLS settings, passfile and the rest as libpq takes them) puts it in PostgreSQL, "
	  "which several nodes may share" },
	OPT("password_file", store_password_file, "PostgreSQL: file holding the password "
	    "alone (not world-readable), read at each connection; rather than a password in "
	    "store.url"),
};
static const struct schema store_schema = SCHEMA(store_fields);

static const struct schema_field smtp_fields[] = {
	OPT("url", smtp_url, "smtp://host:port or smtps://; unset: no mail"),
	STR("from", smtp_from, "elevate@localhost", "sender address"),
	OPT("username", smtp_username, "SMTP AUTH user"),
	OPT("password_file", smtp_password_file,
	    "file holding the SMTP password (not world-readable)"),
	BOOL("require_starttls", smtp_require_starttls, "false", "refuse to send without STARTTLS"),
	DUR("timeout", smtp_timeout, "30s", 1, 600, "per-attempt timeout"),
	INT("max_attempts", mail_max_attempts, "12", 1, 100,
	    "attempts before a mail is marked failed"),
};
static const struct schema smtp_schema = SCHEMA(smtp_fields);

static const struct schema_field endpoints_fields[] = {
	OPT("sts", aws_endpoint_sts, "STS endpoint override"),
	OPT("iam", aws_endpoint_iam, "IAM endpoint override"),
	OPT("ssm", aws_endpoint_ssm, "SSM endpoint override"),
	OPT("ec2", aws_endpoint_ec2, "EC2 endpoint override"),
	OPT("s3", aws_endpoint_s3, "S3 endpoint override (audit.anchor; path-style requests)"),
	OPT("signin", aws_endpoint_signin, "console federation endpoint override (elevate "
	    "console; default https://signin.aws.amazon.com, whose /federation is called)"),
};
static const struct schema endpoints_schema = SCHEMA(endpoints_fields);

static const struct schema_field aws_fields[] = {
	STR("region", aws_region, "us-east-1", "default region"),
	OPT("endpoint", aws_endpoint, "endpoint for every service (else AWS_ENDPOINT_URL)"),
	SECTION("endpoints", endpoints_schema),
	OPT("ca_file", aws_ca_file, "CA bundle for AWS endpoints"),
	INT("max_attempts", aws_max_attempts, "5", 1, 20, "attempts per AWS call"),
	DUR("timeout", aws_timeout, "10s", 1, 120, "per-attempt timeout"),
};
static const struct schema aws_schema = SCHEMA(aws_fields);

static const char *const syslog_facilities[] = {"auth", "authpriv", "daemon", "user",
	"local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7", NULL};

/* audit.anchor: s3://BUCKET/PREFIX, a bucket name S3 would accept. */
static bool
check_anchor(struct schema_ctx *c, const char *path, const char *s)
{
	const char *b = s + 5, *slash;
	size_t n;

	if (strncmp(s, "s3://", 5) != 0) {
		schema_problem(c, path, "must be s3://BUCKET/PREFIX");
		return false;
	}
	slash = strchr(b, '/');
	n = slash != NULL ? (size_t)(slash - b) : strlen(b);
	if (n < 3 || n > 63 || strspn(b, "abcdefghijklmnopqrstuvwxyz0123456789.-") < n) {
		schema_problem(c, path, "the bucket must be 3 to 63 of a-z 0-9 . -");
		return false;
	}
	return true;
}

static const struct schema_field audit_fields[] = {
	{ .key = "file", .kind = SF_STR, .max = STR_MAX, .off = CO(audit_file), .null_ok = true,
	  .help = "JSON Lines export of the audit chain (created 0600); rotated files sit next "
	  "to it, named by their first seq: audit.jsonl -> audit-000000000123.jsonl" },
	INT("rotate_bytes", audit_rotate_bytes, "0", 0, 1LL << 40,
	    "rotate audit.file before it grows past this many bytes (0: never)"),
	DUR("rotate_age", audit_rotate_age, NULL, 0, EL_DURATION_MAX,
	    "rotate audit.file once its first record is this old (unset or 0: never)"),
	BOOL("syslog", audit_syslog, "false", "also send every record to syslog (RFC 3164 "
	    "datagrams to audit.syslog_socket at audit.syslog_facility, whatever log.* say)"),
	{ .key = "syslog_facility", .kind = SF_STR, .max = STR_MAX,
	  .off = CO(audit_syslog_facility), .dflt = "authpriv", .one_of = syslog_facilities,
	  .help = "facility of audit records and heads sent to syslog" },
	STR("syslog_socket", audit_syslog_socket, "/dev/log",
	    "Unix datagram socket of the syslog daemon"),
	OPT("head_file", audit_head_file, "where the newest signed head (seq, hash, time, "
	    "signature) is written, atomically, 0644 (it holds no secret)"),
	{ .key = "anchor", .kind = SF_STR, .max = STR_MAX, .off = CO(audit_anchor),
	  .null_ok = true, .check = check_anchor,
	  .help = "s3://BUCKET/PREFIX: each signed head is also put there with S3 Object Lock "
	  "(COMPLIANCE, audit.anchor_retain); the bucket needs Object Lock enabled" },
	DUR("anchor_retain", audit_anchor_retain, "365d", 86400, EL_DURATION_MAX,
	    "how long S3 keeps each anchored head (retain-until date)"),
	INT("checkpoint_every", audit_checkpoint_every, "100", 1, 100000,
	    "sign the chain head every N records"),
	DUR("refusal_interval", refusal_interval, "60s", 1, 3600,
	    "anonymous refusals (bad signature, unknown user, bad link) beyond the first few "
	    "are counted, and audited as one summary per reason per interval"),
	INT("refusals_individual", refusals_individual, "5", 0, 1000,
	    "anonymous refusals of each reason, and refusals of each approval link, reason and "
	    "method, audited one by one per interval"),
};
static const struct schema audit_schema = SCHEMA(audit_fields);

static const struct schema_field limits_fields[] = {
	INT("max_body", max_body, "65536", 1024, 1048576, "request body ceiling"),
	INT("max_connections", max_connections, "4096", 4, 65536,
	    "concurrent connections (the open-file limit is raised to fit)"),
	INT("max_connections_per_address", max_connections_per_address, "64", 0, 65536,
	    "concurrent connections from one client address (0: no limit)"),
	DUR("request_timeout", request_timeout, "10s", 1, 300,
	    "time to send a whole request after connecting or after the previous answer"),
	DUR("connection_timeout", connection_timeout, "30s", 1, 3600, "idle connection timeout"),
	INT("http_threads", http_threads, "8", 1, 64,
	    "threads serving connections (epoll, each serves many)"),
	INT("http_workers", http_workers, "32", 1, 1024,
	    "engine threads running requests (one waiting on AWS holds one; the front never waits)"),
	INT("refusal_burst", refusal_burst, "30", 1, 1000000,
	    "anonymous refusals a source address may collect before it is answered 429"),
	INT("refusal_rate", refusal_rate, "30", 1, 1000000,
	    "refusals per minute an address is forgiven (earns back)"),
	INT("refusal_addresses", refusal_addresses, "4096", 16, 1048576,
	    "source addresses tracked; the least recently seen is forgotten"),
};
static const struct schema limits_schema = SCHEMA(limits_fields);

static const struct schema_field mail_fields[] = {
	DUR("ending_soon", ending_soon, "5m", 0, 86400,
	    "warn the requester this long before the window ends (0: never)"),
};
static const struct schema mail_schema = SCHEMA(mail_fields);

static const struct schema_field revoke_fields[] = {
	STR("policy_name", revoke_policy_name, "elevate-revoked-sessions",
	    "inline role policy that denies early-revoked sessions"),
};
static const struct schema revoke_schema = SCHEMA(revoke_fields);

static const struct schema_field notify_fields[] = {
	{ .key = "webhooks", .kind = SF_CUSTOM, .custom = webhook_config_set,
	  .help = "up to 16 webhooks told of audit events, each {\"name\", \"url\", \"kind\": "
	  "\"generic\" (JSON signed with HMAC-SHA256 by the key in \"secret_file\") or \"slack\", "
	  "\"events\"?}; delivered once per event through a durable queue (docs/webhooks.md)" },
	DUR("webhook_timeout", webhook_timeout, "10s", 1, 120,
	    "per-attempt timeout of a webhook delivery"),
	DUR("webhook_retry_max", webhook_retry_max, "5m", 1, 3600,
	    "the longest wait between two attempts of a delivery (it doubles from 2 s up to this)"),
	DUR("webhook_give_up", webhook_give_up, "24h", 60, 604800,
	    "a delivery not accepted this long after its event is marked failed and audited "
	    "(webhook.failed)"),
};
static const struct schema notify_schema = SCHEMA(notify_fields);

static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};

static const struct schema_field log_fields[] = {
	{ .key = "level", .kind = SF_STR, .max = STR_MAX, .off = CO(log_level), .dflt = "info",
	  .one_of = log_levels, .help = "error, warn, info or debug" },
	BOOL("syslog", log_syslog, "false", "log to syslog instead of stderr"),
};
static const struct schema log_schema = SCHEMA(log_fields);

static const struct schema_field config_fields[] = {
	{ .key = "listen", .kind = SF_STR, .max = STR_MAX, .off = CO(listen),
	  .dflt = "127.0.0.1:8443", .check = check_listen, .help = "address:port to listen on" },
	{ .key = "public_url", .kind = SF_STR, .max = STR_MAX, .off = CO(public_url),
	  .null_ok = true, .check = check_url,
	  .help = "base URL of approval links (default http://LISTEN)" },
	{ .key = "trusted_proxy", .kind = SF_STR, .max = STR_MAX, .off = CO(trusted_proxy),
	  .null_ok = true, .check = check_ip,
	  .help = "address of a reverse proxy in front: requests from it are taken to come "
	  "from the last address its X-Forwarded-For names (refusals, throttling, audit)" },
	OPT("run_as", run_as, "started as root: the user the front (the process that serves "
	    "HTTP) switches to; it also chroots to an empty directory"),
	SECTION("tls", tls_schema),
	STR("state_dir", state_dir, "/var/lib/elevate", "keys, and the SQLite database "
	    "(created 0700)"),
	SECTION("store", store_schema),
	{ .key = "node", .kind = SF_STR, .max = NODE_MAX, .off = CO(node), .null_ok = true,
	  .check = check_node,
	  .help = "this node's name among the nodes sharing one PostgreSQL store (leases on due "
	  "work, audit checkpoints, logs); unique per node (default: the host name)" },
	STR("policies", policies, "/etc/elevate/policies", "directory of *.json"),
	STR("templates", templates, "/usr/share/elevate/templates", "mail and page templates"),
	SECTION("smtp", smtp_schema),
	SECTION("aws", aws_schema),
	SECTION("audit", audit_schema),
	STR("auditors", auditors, "group:security", "who may read the audit API"),
	STR("admins", admins, "group:platform-admins",
	    "who may revoke any grant and see every request"),
	SECTION("limits", limits_schema),
	SECTION("mail", mail_schema),
	SECTION("notify", notify_schema),
	SECTION("revoke", revoke_schema),
	SECTION("log", log_schema),
};
static const struct schema config_schema = SCHEMA(config_fields);

enum el_err
config_load(const char *path, struct config *cfg, struct diags *d)
{
	struct schema_ctx c = { .d = d, .file = path };
	size_t before = diags_count(d);
	json_error_t je;
	json_t *root;
	char *text = NULL;
	struct el_why w = {{0}};

	memset(cfg, 0, sizeof(*cfg));
	schema_defaults(&c, &config_schema, cfg);
	if (path != NULL) {
		if (el_read_file(path, CONFIG_MAX_FILE, &text, NULL, &w) != EL_OK) {
			diags_add(d, path, NULL, 0, 0, "%s", w.msg);
			return EL_ECONFIG;
		}
		root = json_loads(text, JSON_REJECT_DUPLICATES, &je);
		free(text);
		if (root == NULL) {
			diags_add(d, path, NULL, je.line, je.column, "%s", je.text);
			return EL_ECONFIG;
		}
		schema_apply(&c, &config_schema, root, "$", cfg);
		json_decref(root);
	}
	if (cfg->public_url == NULL && cfg->listen != NULL) {
		size_t n = strlen(cfg->listen) + 16;
		if ((cfg->public_url = malloc(n)) != NULL)
			snprintf(cfg->public_url, n, "http://%s", cfg->listen);
	}
	if (cfg->node == NULL) {
		char host[256];

		if (gethostname(host, sizeof(host)) != 0)
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		host[strcspn(host, ".")] = '\0';   /* the short name: the rest seldom tells nodes apart */
		host[NODE_MAX] = '\0';
		cfg->node = strdup(host[0] != '\0' ? host : "localhost");
	}
	if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL))
		diags_add(d, path, "$.tls", 0, 0, "needs both cert and key");
	if (cfg->store_password_file != NULL && (cfg->store_url == NULL ||
	    strcmp(cfg->store_url, "sqlite:") == 0))
		diags_add(d, path, "$.store.password_file", 0, 0, "is for a PostgreSQL store.url");
	return diags_count(d) == before ? EL_OK : EL_ECONFIG;
}

void
config_free(struct config *cfg)
{
	webhook_config_free(cfg->webhooks, cfg->nwebhooks);
	cfg->webhooks = NULL;
	cfg->nwebhooks = 0;
	schema_free(&config_schema, cfg);
}

static void
print_keys(FILE *f, const struct schema *s, const char *prefix)
{
	static const char *const tn[] = {
		[SF_STR] = "string", [SF_BOOL] = "bool", [SF_INT] = "integer",
		[SF_DURATION] = "duration", [SF_CUSTOM] = "list",
	};
	const struct schema_field *k;
	char path[128];
	size_t i;

	for (i = 0; i < s->n; i++) {
		k = &s->f[i];
		snprintf(path, sizeof(path), "%s%s%s", prefix, prefix[0] ? "." : "", k->key);
		if (k->kind == SF_OBJECT) {
			print_keys(f, k->sub, path);
			continue;
		}
		fprintf(f, "| `%s` | %s | %s | %s", path, tn[k->kind], k->dflt ? k->dflt : "—",
		    k->help);
		if (k->kind == SF_INT || (k->kind == SF_DURATION && k->max))
			fprintf(f, " (%lld–%lld%s)", k->min, k->max,
			    k->kind == SF_DURATION ? " s" : "");
		fprintf(f, " |\n");
	}
}

void
config_print_reference(FILE *f)
{
	fprintf(f, "| key | type | default | meaning |\n|---|---|---|---|\n");
	print_keys(f, &config_schema, "");
}
