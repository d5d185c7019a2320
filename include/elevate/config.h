/*
 * config.h — the daemon's configuration (elevated.json). Every key lives in one table in
 * config.c with its type, default and bounds, so docs, defaults and validation agree.
 */
#ifndef ELEVATE_CONFIG_H
#define ELEVATE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "elevate/diag.h"
#include "elevate/el.h"

#define CONFIG_MAX_FILE (256 * 1024)
#define NODE_MAX 64                /* config node: the longest name */

struct config_webhook;             /* webhook.h */

struct config {
	char *listen;              /* "127.0.0.1:8443" */
	char *public_url;          /* links in mails are built from this, never from Host */
	char *tls_cert, *tls_key;
	char *trusted_proxy;       /* its X-Forwarded-For names the client; NULL: none */
	char *run_as;              /* started as root: the front's user; NULL: none */
	char *state_dir;
	char *store_url;           /* NULL or "sqlite:": state_dir/elevate.db; else libpq's */
	char *store_password_file; /* PostgreSQL: a file holding the password alone */
	char *node;                /* this node's name: [A-Za-z0-9._-]{1,NODE_MAX} */
	char *policies;
	char *templates;
	char *smtp_url, *smtp_from, *smtp_username, *smtp_password_file;
	bool smtp_require_starttls;
	int64_t smtp_timeout;      /* seconds */
	int64_t mail_max_attempts;
	char *aws_region;
	char *aws_endpoint, *aws_endpoint_sts, *aws_endpoint_iam, *aws_endpoint_ssm,
	    *aws_endpoint_ec2, *aws_endpoint_s3, *aws_endpoint_signin;
	char *aws_ca_file;
	int64_t aws_max_attempts;
	int64_t aws_timeout;       /* seconds per attempt */
	char *audit_file;
	int64_t audit_rotate_bytes;   /* 0: never */
	int64_t audit_rotate_age;     /* seconds; 0: never */
	bool audit_syslog;
	char *audit_syslog_facility;  /* "authpriv" ... */
	char *audit_syslog_socket;    /* "/dev/log" */
	char *audit_head_file;        /* NULL: none */
	char *audit_anchor;           /* "s3://bucket/prefix" or NULL */
	int64_t audit_anchor_retain;  /* seconds */
	int64_t audit_checkpoint_every;
	int64_t refusal_interval;     /* seconds: one summary per reason per interval */
	int64_t refusals_individual;  /* anonymous refusals audited one by one per interval */
	char *auditors;            /* principal */
	char *admins;              /* principal */
	int64_t max_body;
	int64_t max_connections;
	int64_t max_connections_per_address;   /* 0: no limit */
	int64_t request_timeout;   /* seconds to deliver a whole request */
	int64_t connection_timeout;
	int64_t http_threads;
	int64_t http_workers;
	int64_t refusal_burst;        /* per-address throttle: bucket size ... */
	int64_t refusal_rate;         /* ... and refusals earned back per minute */
	int64_t refusal_addresses;    /* addresses tracked */
	int64_t ending_soon;       /* seconds before the window end to mail the requester; 0 off */
	char *revoke_policy_name;  /* inline policy holding early-revoked sessions */
	struct config_webhook *webhooks;   /* notify.webhooks (webhook.c checks them) */
	size_t nwebhooks;
	int64_t webhook_timeout;      /* seconds per attempt */
	int64_t webhook_retry_max;    /* seconds: the longest wait between two attempts */
	int64_t webhook_give_up;      /* seconds after its event a delivery is given up */
	char *log_level;
	bool log_syslog;
};

/* Loads path (NULL: defaults only), reports every problem with file and path in d.
 * EL_OK only when d gained nothing. cfg is filled with defaults first. */
enum el_err config_load(const char *path, struct config *cfg, struct diags *d);
void config_free(struct config *cfg);
/* Prints the key table (key, type, default, bounds, help) for docs and `--help-config`. */
void config_print_reference(FILE *f);

#endif
