/*
 * config.c — owns elevated.json: the one table of configuration keys (type, default,
 * bounds, help), loading with defaults, and validation that reports every problem.
 */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "elevate/config.h"

enum cfg_type { CFG_STR, CFG_BOOL, CFG_INT, CFG_DURATION };

struct cfg_key {
	const char *path;          /* dotted: "smtp.url" */
	enum cfg_type type;
	size_t off;
	const char *def;           /* NULL: unset */
	long long min, max;        /* ints and durations (seconds) */
	const char *help;
};

#define K(p, t, f, d, lo, hi, h) {p, t, offsetof(struct config, f), d, lo, hi, h}

static const struct cfg_key keys[] = {
	K("listen", CFG_STR, listen, "127.0.0.1:8443", 0, 0, "address:port to listen on"),
	K("public_url", CFG_STR, public_url, NULL, 0, 0,
	    "base URL of approval links (default http://LISTEN)"),
	K("trusted_proxy", CFG_STR, trusted_proxy, NULL, 0, 0,
	    "address of a reverse proxy in front: requests from it are taken to come from the "
	    "last address its X-Forwarded-For names (refusals, throttling, audit)"),
	K("tls.cert", CFG_STR, tls_cert, NULL, 0, 0, "PEM certificate; no tls = plain HTTP"),
	K("tls.key", CFG_STR, tls_key, NULL, 0, 0, "PEM private key"),
	K("state_dir", CFG_STR, state_dir, "/var/lib/elevate", 0, 0,
	    "database and keys (created 0700)"),
	K("policies", CFG_STR, policies, "/etc/elevate/policies", 0, 0, "directory of *.json"),
	K("templates", CFG_STR, templates, "/usr/share/elevate/templates", 0, 0,
	    "mail and page templates"),
	K("smtp.url", CFG_STR, smtp_url, NULL, 0, 0, "smtp://host:port or smtps://; unset: no mail"),
	K("smtp.from", CFG_STR, smtp_from, "elevate@localhost", 0, 0, "sender address"),
	K("smtp.username", CFG_STR, smtp_username, NULL, 0, 0, "SMTP AUTH user"),
	K("smtp.password_file", CFG_STR, smtp_password_file, NULL, 0, 0,
	    "file holding the SMTP password (not world-readable)"),
	K("smtp.require_starttls", CFG_BOOL, smtp_require_starttls, "false", 0, 0,
	    "refuse to send without STARTTLS"),
	K("smtp.timeout", CFG_DURATION, smtp_timeout, "30s", 1, 600, "per-attempt timeout"),
	K("smtp.max_attempts", CFG_INT, mail_max_attempts, "12", 1, 100,
	    "attempts before a mail is marked failed"),
	K("aws.region", CFG_STR, aws_region, "us-east-1", 0, 0, "default region"),
	K("aws.endpoint", CFG_STR, aws_endpoint, NULL, 0, 0,
	    "endpoint for every service (else AWS_ENDPOINT_URL)"),
	K("aws.endpoints.sts", CFG_STR, aws_endpoint_sts, NULL, 0, 0, "STS endpoint override"),
	K("aws.endpoints.iam", CFG_STR, aws_endpoint_iam, NULL, 0, 0, "IAM endpoint override"),
	K("aws.endpoints.ssm", CFG_STR, aws_endpoint_ssm, NULL, 0, 0, "SSM endpoint override"),
	K("aws.endpoints.ec2", CFG_STR, aws_endpoint_ec2, NULL, 0, 0, "EC2 endpoint override"),
	K("aws.ca_file", CFG_STR, aws_ca_file, NULL, 0, 0, "CA bundle for AWS endpoints"),
	K("aws.max_attempts", CFG_INT, aws_max_attempts, "5", 1, 20, "attempts per AWS call"),
	K("aws.timeout", CFG_DURATION, aws_timeout, "10s", 1, 120, "per-attempt timeout"),
	K("audit.file", CFG_STR, audit_file, NULL, 0, 0, "JSON Lines export of the audit chain"),
	K("audit.syslog", CFG_BOOL, audit_syslog, "false", 0, 0, "also send records to syslog"),
	K("audit.checkpoint_every", CFG_INT, audit_checkpoint_every, "100", 1, 100000,
	    "sign the chain head every N records"),
	K("audit.refusal_interval", CFG_DURATION, refusal_interval, "60s", 1, 3600,
	    "anonymous refusals (bad signature, unknown user, bad link) beyond the first few "
	    "are counted, and audited as one summary per reason per interval"),
	K("audit.refusals_individual", CFG_INT, refusals_individual, "5", 0, 1000,
	    "anonymous refusals of each reason audited one by one per interval"),
	K("auditors", CFG_STR, auditors, "group:security", 0, 0, "who may read the audit API"),
	K("admins", CFG_STR, admins, "group:platform-admins", 0, 0,
	    "who may revoke any grant and see every request"),
	K("limits.max_body", CFG_INT, max_body, "65536", 1024, 1048576, "request body ceiling"),
	K("limits.max_connections", CFG_INT, max_connections, "4096", 4, 65536,
	    "concurrent connections (the open-file limit is raised to fit)"),
	K("limits.max_connections_per_address", CFG_INT, max_connections_per_address, "64", 0,
	    65536, "concurrent connections from one client address (0: no limit)"),
	K("limits.request_timeout", CFG_DURATION, request_timeout, "10s", 1, 300,
	    "time to send a whole request after connecting or after the previous answer"),
	K("limits.connection_timeout", CFG_DURATION, connection_timeout, "30s", 1, 3600,
	    "idle connection timeout"),
	K("limits.http_threads", CFG_INT, http_threads, "8", 1, 64,
	    "threads serving connections (epoll, each serves many)"),
	K("limits.http_workers", CFG_INT, http_workers, "32", 1, 1024,
	    "threads running requests (one waiting on AWS holds one, never a connection thread)"),
	K("limits.refusal_burst", CFG_INT, refusal_burst, "30", 1, 1000000,
	    "anonymous refusals a source address may collect before it is answered 429"),
	K("limits.refusal_rate", CFG_INT, refusal_rate, "30", 1, 1000000,
	    "refusals per minute an address is forgiven (earns back)"),
	K("limits.refusal_addresses", CFG_INT, refusal_addresses, "4096", 16, 1048576,
	    "source addresses tracked; the least recently seen is forgotten"),
	K("mail.ending_soon", CFG_DURATION, ending_soon, "5m", 0, 86400,
	    "warn the requester this long before the window ends (0: never)"),
	K("revoke.policy_name", CFG_STR, revoke_policy_name, "elevate-revoked-sessions", 0, 0,
	    "inline role policy that denies early-revoked sessions"),
	K("log.level", CFG_STR, log_level, "info", 0, 0, "error, warn, info or debug"),
	K("log.syslog", CFG_BOOL, log_syslog, "false", 0, 0, "log to syslog instead of stderr"),
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static const struct cfg_key *
find_key(const char *path)
{
	size_t i;

	for (i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].path, path) == 0)
			return &keys[i];
	return NULL;
}

/* Is path a prefix object of some key ("smtp", "aws.endpoints")? */
static int
is_section(const char *path)
{
	size_t i, n = strlen(path);

	for (i = 0; i < NKEYS; i++)
		if (strncmp(keys[i].path, path, n) == 0 && keys[i].path[n] == '.')
			return 1;
	return 0;
}

static enum el_err
set_value(struct config *cfg, const struct cfg_key *k, const char *text, struct el_why *w)
{
	char *base = (char *)cfg;
	int64_t secs;
	long long v;

	switch (k->type) {
	case CFG_STR: {
		char **p = (char **)(void *)(base + k->off);
		free(*p);
		*p = text ? strdup(text) : NULL;
		return EL_OK;
	}
	case CFG_BOOL:
		*(bool *)(void *)(base + k->off) = strcmp(text, "true") == 0;
		return EL_OK;
	case CFG_INT:
		if (el_parse_int(text, k->min, k->max, &v) != EL_OK)
			return el_fail(w, EL_EINVAL, "must be a whole number from %lld to %lld",
			    k->min, k->max);
		*(int64_t *)(void *)(base + k->off) = v;
		return EL_OK;
	case CFG_DURATION:
		if (strcmp(text, "0") == 0 && k->min == 0)
			secs = 0;
		else if (el_parse_duration(text, &secs) != EL_OK)
			return el_fail(w, EL_EINVAL, "must be a duration like 30s, 5m or 1h");
		if (secs < k->min || secs > k->max)
			return el_fail(w, EL_EINVAL, "must be between %llds and %llds", k->min, k->max);
		*(int64_t *)(void *)(base + k->off) = secs;
		return EL_OK;
	}
	return EL_EINVAL;
}

static void
walk(struct config *cfg, json_t *obj, const char *prefix, const char *file, struct diags *d)
{
	const char *name;
	json_t *v;

	json_object_foreach(obj, name, v) {
		char path[256], num[32];
		const struct cfg_key *k;
		struct el_why w = {{0}};
		const char *text = NULL;

		char jpath[272];

		snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", name);
		snprintf(jpath, sizeof(jpath), "$.%s", path);
		if (json_is_object(v) && is_section(path)) {
			walk(cfg, v, path, file, d);
			continue;
		}
		if ((k = find_key(path)) == NULL) {
			diags_add(d, file, jpath, 0, 0, "unknown key");
			continue;
		}
		if (json_is_null(v)) {
			if (k->type == CFG_STR && k->def == NULL)
				set_value(cfg, k, NULL, NULL);
			else
				diags_add(d, file, jpath, 0, 0, "may not be null");
			continue;
		}
		switch (k->type) {
		case CFG_STR:
			if (!json_is_string(v) || json_string_length(v) > 4096) {
				diags_add(d, file, jpath, 0, 0, "must be a string");
				continue;
			}
			text = json_string_value(v);
			break;
		case CFG_BOOL:
			if (!json_is_boolean(v)) {
				diags_add(d, file, jpath, 0, 0, "must be true or false");
				continue;
			}
			text = json_is_true(v) ? "true" : "false";
			break;
		case CFG_INT:
			if (!json_is_integer(v)) {
				diags_add(d, file, jpath, 0, 0, "must be a whole number");
				continue;
			}
			snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
			text = num;
			break;
		case CFG_DURATION:
			if (json_is_integer(v)) {
				snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
				text = num;
			} else if (json_is_string(v))
				text = json_string_value(v);
			else {
				diags_add(d, file, jpath, 0, 0, "must be a duration");
				continue;
			}
			break;
		}
		if (set_value(cfg, k, text, &w) != EL_OK)
			diags_add(d, file, jpath, 0, 0, "%s", w.msg);
	}
}

enum el_err
config_load(const char *path, struct config *cfg, struct diags *d)
{
	size_t before = diags_count(d), i;
	json_error_t je;
	json_t *root;
	char *text = NULL;
	struct el_why w = {{0}};

	memset(cfg, 0, sizeof(*cfg));
	for (i = 0; i < NKEYS; i++)
		if (keys[i].def != NULL)
			set_value(cfg, &keys[i], keys[i].def, NULL);
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
		if (!json_is_object(root))
			diags_add(d, path, "$", 0, 0, "must be an object");
		else
			walk(cfg, root, "", path, d);
		json_decref(root);
	}
	if (cfg->public_url == NULL) {
		size_t n = strlen(cfg->listen) + 16;
		if ((cfg->public_url = malloc(n)) != NULL)
			snprintf(cfg->public_url, n, "http://%s", cfg->listen);
	}
	if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL))
		diags_add(d, path, "$.tls", 0, 0, "needs both cert and key");
	if (strncmp(cfg->public_url, "http://", 7) != 0 && strncmp(cfg->public_url, "https://", 8) != 0)
		diags_add(d, path, "$.public_url", 0, 0, "must start with http:// or https://");
	if (strcmp(cfg->log_level, "error") && strcmp(cfg->log_level, "warn") &&
	    strcmp(cfg->log_level, "info") && strcmp(cfg->log_level, "debug"))
		diags_add(d, path, "$.log.level", 0, 0, "must be error, warn, info or debug");
	if (strchr(cfg->listen, ':') == NULL)
		diags_add(d, path, "$.listen", 0, 0, "must be address:port");
	if (cfg->trusted_proxy != NULL) {
		unsigned char bin[16];
		if (inet_pton(AF_INET, cfg->trusted_proxy, bin) != 1 &&
		    inet_pton(AF_INET6, cfg->trusted_proxy, bin) != 1)
			diags_add(d, path, "$.trusted_proxy", 0, 0, "must be an IP address");
	}
	return diags_count(d) == before ? EL_OK : EL_ECONFIG;
}

void
config_free(struct config *cfg)
{
	size_t i;

	for (i = 0; i < NKEYS; i++)
		if (keys[i].type == CFG_STR) {
			char **p = (char **)(void *)((char *)cfg + keys[i].off);
			free(*p);
			*p = NULL;
		}
	free(cfg->public_url);
	cfg->public_url = NULL;
}

void
config_print_reference(FILE *f)
{
	size_t i;

	fprintf(f, "| key | type | default | meaning |\n|---|---|---|---|\n");
	for (i = 0; i < NKEYS; i++) {
		static const char *const tn[] = {"string", "bool", "integer", "duration"};
		fprintf(f, "| `%s` | %s | %s | %s", keys[i].path, tn[keys[i].type],
		    keys[i].def ? keys[i].def : "—", keys[i].help);
		if (keys[i].type == CFG_INT || (keys[i].type == CFG_DURATION && keys[i].max))
			fprintf(f, " (%lld–%lld%s)", keys[i].min, keys[i].max,
			    keys[i].type == CFG_DURATION ? " s" : "");
		fprintf(f, " |\n");
	}
}
