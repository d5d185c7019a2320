/*
 * main.c — elevated: parses arguments, loads and validates configuration (`check`),
 * wires engine and HTTP server together, and handles signals (SIGHUP reloads policies,
 * SIGTERM/SIGINT drain and exit).
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>

#include "elevate/audit.h"
#include "elevate/audit_export.h"
#include "elevate/aws.h"
#include "elevate/config.h"
#include "elevate/engine.h"
#include "elevate/keyset.h"
#include "elevate/log.h"
#include "elevate/policy.h"
#include "elevate/store.h"
#include "elevate/template.h"
#include "http.h"
#include "proc.h"


static const char usage_text[] =
    "usage: elevated [--config FILE] [--log-level LEVEL]     serve\n"
    "       elevated check [--config FILE] [--aws] [--audit] validate config, policies, templates\n"
    "       elevated audit-rotate-key [--config FILE]        new audit key of this node, handed\n"
    "                                                        over in the chain\n"
    "       elevated config-reference                        print every config key\n"
    "       elevated audit-export --from SEQ --to FILE       export the audit chain again\n"
    "                                                        from the store (offline)\n"
    "       elevated keygen [--force] DIR                    write the key set every node\n"
    "                                                        of one deployment shares\n"
    "\n"
    "  --config FILE   default /etc/elevate/elevated.json (ELEVATED_CONFIG overrides)\n"
    "  --aws           with check: also find the broker's AWS credentials and say where from\n"
    "  --audit         with check: verify the store's whole audit chain, name the first bad seq\n"
    "\n"
    "audit-rotate-key rotates this node's key, with this node stopped (it refuses while one\n"
    "runs on state_dir): the old key signs a record naming the node and the new key, the\n"
    "new key signs from then on; keep the node's first audit.pub: it verifies every\n"
    "rotation after it (docs/audit.md).\n"
    "\n"
    "keygen writes DIR/token.key (signs approval links) and DIR/secret.key (seals credentials\n"
    "and mail at rest), mode 0600; it never replaces them without --force. Copy both into\n"
    "the state_dir of every node; each node keeps its own audit.key (docs/operations.md).\n"
    "\n"
    "Signals: SIGHUP reloads policies (a bad set keeps the old one), SIGTERM drains and exits.\n";

/*
 * `elevated check --aws`: harmless calls that prove the broker's permissions — who it is
 * (GetCallerIdentity), each profile's role (GetRole), sessions (DescribeSessions) — and
 * say exactly what is missing.
 */
static void
check_aws(const char *path, const struct config *cfg, const struct policy *p, struct diags *d)
{
	struct aws_config ac;
	struct aws_client *c = NULL;
	struct aws_error err;
	struct el_why w = {{0}};
	char src[128], arn[512], id[64];
	size_t i;

	memset(&ac, 0, sizeof(ac));
	ac.region = cfg->aws_region;
	ac.endpoint_all = cfg->aws_endpoint;
	ac.endpoint_sts = cfg->aws_endpoint_sts;
	ac.endpoint_iam = cfg->aws_endpoint_iam;
	ac.endpoint_ssm = cfg->aws_endpoint_ssm;
	ac.endpoint_ec2 = cfg->aws_endpoint_ec2;
	ac.endpoint_s3 = cfg->aws_endpoint_s3;
	ac.max_attempts = 2;
	if (aws_client_new(&ac, &c, &w) != EL_OK ||
	    aws_broker_creds_source(c, src, sizeof(src), &w) != EL_OK) {
		diags_add(d, path, "$.aws", 0, 0, "no AWS credentials for the broker: %s", w.msg);
		aws_client_free(c);
		return;
	}
	printf("AWS credentials: found (%s)\n", src);
	memset(&err, 0, sizeof(err));
	if (aws_sts_get_caller_identity(c, NULL, cfg->aws_region, arn, sizeof(arn), &err)
	    != EL_OK) {
		diags_add(d, path, "$.aws", 0, 0, "sts:GetCallerIdentity failed: %s %s",
		    err.code, err.message);
		aws_client_free(c);
		return;
	}
	printf("AWS identity: %s\n", arn);
	for (i = 0; p != NULL && i < p->nprofiles; i++) {
		const struct pol_profile *pp = &p->profiles[i];
		const char *region = pp->region ? pp->region : cfg->aws_region;
		json_t *sessions = NULL;
		int max = 0;

		memset(&err, 0, sizeof(err));
		if (aws_iam_get_role(c, pp->role_name, id, sizeof(id), &max, &err) != EL_OK)
			diags_add(d, NULL, NULL, 0, 0, "profile %s: iam:GetRole %s: %s %s (the broker "
			    "needs iam:GetRole, iam:PutRolePolicy and "
			    "iam:DeleteRolePolicy on %s)", pp->name, pp->role_name, err.code,
			    err.message, pp->role_arn);
		else {
			printf("profile %s: role %s (%s), MaxSessionDuration %ds\n", pp->name,
			    pp->role_arn, id, max);
			if (max < pp->max_credential_duration)
				printf("  note: credentials last at most %ds (the role's "
				    "MaxSessionDuration); longer windows are served by minting again\n",
				    max);
		}
		memset(&err, 0, sizeof(err));
		if (aws_ssm_active_sessions_by_owner(c, NULL, region, &sessions, &err) != EL_OK)
			diags_add(d, NULL, NULL, 0, 0, "profile %s: ssm:DescribeSessions in %s: %s %s "
			    "(the reaper needs ssm:DescribeSessions and ssm:TerminateSession)",
			    pp->name, region, err.code, err.message);
		json_decref(sessions);
	}
	printf("note: sts:AssumeRole/TagSession/SetSourceIdentity are proven only by the "
	    "first activation (a harmless probe would mint real credentials)\n");
	aws_client_free(c);
}

/* `elevated check --audit`: the store's chain, all of it. */
static int
check_audit(const struct config *cfg)
{
	struct audit_check_report rep;
	char nodes[AUDIT_NODES_MAX * (AUDIT_NODE_MAX + 24) + 64];
	struct el_why w = {{0}};
	enum el_err r;

	r = engine_audit_check(cfg, &rep, &w);
	if (r == EL_OK) {
		audit_nodes_summary(&rep.v, nodes, sizeof(nodes));
		printf("audit chain OK: %lld records (seq %lld..%lld), %lld checkpoint%s%s, %lld "
		    "key rotation%s, signed through seq %lld\n", (long long)rep.v.records,
		    (long long)rep.v.first_seq, (long long)rep.v.last_seq, (long long)rep.v.checkpoints,
		    rep.v.checkpoints == 1 ? "" : "s", nodes, (long long)rep.v.rotations,
		    rep.v.rotations == 1 ? "" : "s", (long long)rep.v.last_signed_seq);
		return 0;
	}
	if (rep.bad_seq > 0)
		fprintf(stderr, "audit chain BROKEN at seq %lld: %s\n", (long long)rep.bad_seq,
		    rep.v.problem);
	else
		fprintf(stderr, "audit chain cannot be checked: %s\n",
		    rep.v.problem[0] ? rep.v.problem : w.msg[0] ? w.msg : el_strerror(r));
	return 1;
}

static int
run_rotate_key(const char *path)
{
	struct config cfg;
	struct diags d;
	struct el_why w = {{0}};
	char pub[128];
	int64_t seq = 0;
	int rc = 1;

	diags_init(&d);
	if (config_load(path, &cfg, &d) != EL_OK || d.n > 0) {
		diags_print(&d, stderr);
		goto out;
	}
	if (engine_audit_rotate_key(&cfg, pub, sizeof(pub), &seq, &w) != EL_OK) {
		fprintf(stderr, "elevated: audit-rotate-key: %s\n", w.msg);
		goto out;
	}
	printf("audit key rotated at seq %lld: the new public key is %s (in %s/audit.pub)\n",
	    (long long)seq, pub, cfg.state_dir);
	rc = 0;
out:
	diags_free(&d);
	config_free(&cfg);
	return rc;
}

static int
run_check(const char *path, int aws, int audit)
{
	struct config cfg;
	struct diags d;
	struct policy *p = NULL;
	struct template_set *ts = NULL;
	int bad;

	diags_init(&d);
	config_load(path, &cfg, &d);
	if (cfg.policies != NULL)
		policy_load_dir(cfg.policies, &p, &d);
	if (cfg.templates != NULL)
		template_set_load(cfg.templates, &ts, &d);
	if (aws && d.n == 0)
		check_aws(path, &cfg, p, &d);
	diags_print(&d, stderr);
	bad = d.n > 0;
	if (!bad)
		printf("configuration OK\n");
	else
		fprintf(stderr, "%zu problem%s found\n", d.n, d.n == 1 ? "" : "s");
	if (!bad && audit)
		bad = check_audit(&cfg);
	if (p != NULL)
		policy_release(p);
	template_set_free(ts);
	diags_free(&d);
	config_free(&cfg);
	return bad ? 1 : 0;
}

/*
 * `elevated audit-export --from SEQ --to FILE`: writes the store's records from SEQ on
 * to a new file (never overwriting one), e.g. to replace an export that was lost or
 * damaged. Reads the database only; the broker may be running.
 */
static int
run_audit_export(const char *path, const char *from, const char *to)
{
	struct config cfg;
	struct diags d;
	struct store *s = NULL;
	struct el_why w = {{0}};
	long long seq;
	int64_t n = 0;
	int rc = 1;

	if (from == NULL || to == NULL || el_parse_int(from, 1, INT64_MAX - 1, &seq) != EL_OK) {
		fprintf(stderr, "elevated audit-export: --from SEQ (1 or more) and --to FILE are "
		    "required\n");
		return 2;
	}
	diags_init(&d);
	if (config_load(path, &cfg, &d) != EL_OK) {
		diags_print(&d, stderr);
		goto out;
	}
	if (store_open_config(&cfg, &s, &w) != EL_OK) {
		fprintf(stderr, "elevated audit-export: %s\n", w.msg);
		goto out;
	}
	if (audit_export_to(s, seq, to, &n, &w) != EL_OK) {
		fprintf(stderr, "elevated audit-export: %s\n", w.msg);
		goto out;
	}
	printf("exported %lld record%s from seq %lld to %s\n", (long long)n, n == 1 ? "" : "s",
	    seq, to);
	rc = n > 0 ? 0 : 1;
	if (n == 0)
		fprintf(stderr, "elevated audit-export: the store has no record from seq %lld\n",
		    seq);
out:
	store_close(s);
	diags_free(&d);
	config_free(&cfg);
	return rc;
}

/*
 * `elevated keygen [--force] DIR`: a new key set for a deployment (keyset.h), and what
 * to do with it.
 */
static int
run_keygen(const char *dir, int force)
{
	struct keyset_written ks;
	struct el_why w = {{0}};

	if (keyset_write(dir, force, &ks, &w) != EL_OK) {
		fprintf(stderr, "elevated keygen: %s\n", w.msg);
		return 1;
	}
	printf("wrote %s (mode 0600): signs approval links; public key %s\n", ks.token_path,
	    ks.token_pub);
	printf("wrote %s (mode 0600): seals grant credentials and queued mail at rest\n",
	    ks.secret_path);
	if (ks.beside_store)
		printf("warning: %s holds a store (elevate.db): links mailed before now no longer "
		    "verify, and what was sealed with the old secret.key no longer opens\n", dir);
	printf("next: copy both files into the state_dir of every node of this deployment\n"
	    "  before it starts, mode 0600, owned by the user that starts elevated (from a\n"
	    "  secret manager, or scp then chmod 600); keep the set nowhere else than there and\n"
	    "  in your secret manager. Each node makes its own audit.key on its first start:\n"
	    "  keep every node's audit.pub (docs/operations.md, \"Keys\").\n");
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"log-level", required_argument, NULL, 'l'},
		{"aws", no_argument, NULL, 'a'},
		{"audit", no_argument, NULL, 'U'},
		{"from", required_argument, NULL, 'f'},
		{"to", required_argument, NULL, 't'},
		{"force", no_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		/* how the parent starts its children (proc.h) */
		{"engine", no_argument, NULL, 'E'},
		{"front", no_argument, NULL, 'F'},
		{"ctl-fd", required_argument, NULL, 'C'},
		{"listen-fd", required_argument, NULL, 'L'},
		{NULL, 0, NULL, 0},
	};
	const char *config = getenv("ELEVATED_CONFIG"), *level = NULL, *cmd = NULL;
	const char *from = NULL, *to = NULL;
	int c, aws = 0, audit = 0, force = 0, rc, role = 0, ctl_fd = -1, listen_fd = -1;
	long long n;

	if (config == NULL)
		config = "/etc/elevate/elevated.json";
	if (sodium_init() < 0)
		fatalx("libsodium cannot initialise");
	el_json_wipe_on_free();
	curl_global_init(CURL_GLOBAL_DEFAULT);
	log_init("elevated", 0, LOG_LVL_INFO);
	if (argc > 1 && argv[1][0] != '-') {
		cmd = argv[1];
		argv++;
		argc--;
	}
	while ((c = getopt_long(argc, argv, "c:l:ahV", opts, NULL)) != -1) {
		switch (c) {
		case 'c': config = optarg; break;
		case 'l': level = optarg; break;
		case 'a': aws = 1; break;
		case 'U': audit = 1; break;
		case 'f': from = optarg; break;
		case 't': to = optarg; break;
		case 'o': force = 1; break;
		case 'h': fputs(usage_text, stdout); return 0;
		case 'V': printf("elevated %s\n", VERSION); return 0;
		case 'E': case 'F': role = c; break;
		case 'C': case 'L':
			if (el_parse_int(optarg, 3, 1 << 20, &n) != EL_OK)
				fatalx("--ctl-fd and --listen-fd take a descriptor number");
			*(c == 'C' ? &ctl_fd : &listen_fd) = (int)n;
			break;
		default: fputs(usage_text, stderr); return 2;
		}
	}
	/* keygen takes DIR; nothing else takes an operand */
	if (optind + (cmd != NULL && strcmp(cmd, "keygen") == 0) != argc) {
		fputs(usage_text, stderr);
		return 2;
	}
	if (role != 0 && (cmd != NULL || ctl_fd < 0 || (role == 'F' && listen_fd < 0)))
		fatalx("--engine and --front are for elevated's own parent process");
	if (role == 'E')
		rc = engine_main(config, level, ctl_fd);
	else if (role == 'F')
		rc = front_main(config, level, ctl_fd, listen_fd);
	else if (cmd == NULL)
		rc = parent_main(config, level);
	else if (strcmp(cmd, "check") == 0)
		rc = run_check(config, aws, audit);
	else if (strcmp(cmd, "audit-rotate-key") == 0)
		rc = run_rotate_key(config);
	else if (strcmp(cmd, "audit-export") == 0)
		rc = run_audit_export(config, from, to);
	else if (strcmp(cmd, "keygen") == 0)
		rc = run_keygen(argv[optind], force);
	else if (strcmp(cmd, "config-reference") == 0) {
		config_print_reference(stdout);
		rc = 0;
	} else {
		fprintf(stderr, "elevated: unknown command %s\n%s", cmd, usage_text);
		rc = 2;
	}
	curl_global_cleanup();
	return rc;
}
