/*
 * cmd_audit.c — `elevate audit verify FILE`: checks an exported audit trail (hash chain,
 * sequence, signed checkpoints) offline with audit_verify_stream(); `elevate audit show`:
 * reads filtered audit records from the broker (GET /v1/audit, auditors only).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "elevate/audit.h"
#include "elevate/el.h"
#include "elevate/reqsig.h"
#include "api.h"
#include "commands.h"
#include "output.h"

#define PUBKEY_FILE_MAX 4096
#define DATA_COL_MAX 60
#define LIMIT_MAX 10000

static int audit_run(int, char **);

const struct cli_cmd cmd_audit = {
	.name = "audit",
	.usage = "elevate audit verify FILE [--pubkey ed25519:KEY|--pubkey-file F] [--partial]"
	    " [--allow-unsigned-tail]"
	    " | elevate audit show [--user U] [--profile P] [--event E] [--since DUR|TIME] "
	    "[--limit N]",
	.summary = "verify an exported audit trail, or show audit records (auditors)",
	.run = audit_run,
};

static const char verify_usage[] =
    "elevate audit verify FILE [--pubkey ed25519:KEY|--pubkey-file F] [--partial]"
	    " [--allow-unsigned-tail]";
static const char show_usage[] =
    "elevate audit show [--user U] [--profile P] [--event E] [--since DUR|TIME] "
    "[--limit N]";

static const struct cli_cmd cmd_verify = {
	.name = "audit verify", .usage = verify_usage, .summary = "", .run = NULL,
};
static const struct cli_cmd cmd_show = {
	.name = "audit show", .usage = show_usage, .summary = "", .run = NULL,
};

static void
audit_help(void)
{
	printf("usage: %s\n       %s\n\n"
	    "verify: checks an audit export (JSON Lines; FILE - reads stdin) offline: every\n"
	    "record's hash and link to the previous one, contiguous sequence numbers from 1,\n"
	    "and with the broker's audit public key every signed checkpoint and key rotation\n"
    "(give the FIRST public key: each rotation names the next). Any edited,\n"
	    "dropped, reordered or truncated record is reported with its line. Exit 0 when\n"
	    "intact, 1 otherwise; with a key, a trail no checkpoint signs is not intact.\n\n"
	    "  --pubkey ed25519:KEY   the broker's audit checkpoint public key\n"
	    "  --pubkey-file F        the same, read from a file\n"
	    "  --partial              the export need not start at seq 1 (a rotated file)\n"
    "  --allow-unsigned-tail  accept records after the last checkpoint (their hashes are\n"
    "                         unkeyed: without it they fail the check)\n\n"
	    "show: audit records from the broker, filtered (auditors only).\n\n"
	    "  --user U      records by or about user U\n"
	    "  --profile P   records about requests for profile P\n"
	    "  --event E     one event, e.g. request.approved\n"
	    "  --since D     records of the last D (24h, 7d) or since a time\n"
	    "                (2026-11-22T03:26:00Z)\n"
	    "  --limit N     at most N records (1..%d)\n"
	    "  --json        the broker's JSON\n", verify_usage, show_usage, LIMIT_MAX);
}

static int
load_pubkey(const char *text, const char *file, unsigned char pk[crypto_sign_PUBLICKEYBYTES])
{
	struct el_why why;
	char *buf = NULL;
	size_t n;
	int rc = CLI_OK;

	if (file != NULL) {
		if (el_read_file(file, PUBKEY_FILE_MAX, &buf, &n, &why) != EL_OK) {
			output_err("%s", why.msg);
			return CLI_ERR;
		}
		while (n > 0 && strchr(" \t\r\n", buf[n - 1]) != NULL)
			buf[--n] = '\0';
		text = buf;
	}
	if (reqsig_pubkey_parse(text, pk) != EL_OK) {
		output_err("%s: not an audit public key (ed25519:BASE64 of %d bytes)",
		    file != NULL ? file : "--pubkey", crypto_sign_PUBLICKEYBYTES);
		rc = CLI_USAGE;
	}
	free(buf);
	return rc;
}

static int
verify_json(const struct audit_verify_report *rep, int ok, int keyed)
{
	json_t *j;
	int rc;

	j = json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:b, s:I, s:s}", "ok", ok,
	    "records", (json_int_t)rep->records, "first_seq", (json_int_t)rep->first_seq,
	    "last_seq", (json_int_t)rep->last_seq, "checkpoints", (json_int_t)rep->checkpoints,
	    "last_signed_seq", (json_int_t)rep->last_signed_seq, "checkpoints_verified", keyed,
	    "bad_line", (json_int_t)rep->bad_line, "problem", rep->problem);
	if (j == NULL)
		return CLI_ERR;
	rc = output_print_json(j);
	json_decref(j);
	return rc;
}

static int
audit_verify(int argc, char **argv)
{
	static const struct option opts[] = {
		{"pubkey", required_argument, NULL, 'k'},
		{"pubkey-file", required_argument, NULL, 'K'},
		{"partial", no_argument, NULL, 'P'},
		{"allow-unsigned-tail", no_argument, NULL, 'T'},
		{"json", no_argument, NULL, 'J'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	const char *keytext = NULL, *keyfile = NULL, *file;
	struct audit_verify_report rep;
	enum el_err r;
	FILE *f;
	int ch, partial = 0, allow_tail = 0, rc, ok;
	int64_t tail;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'k': keytext = optarg; break;
		case 'K': keyfile = optarg; break;
		case 'P': partial = 1; break;
		case 'T': allow_tail = 1; break;
		case 'J': output_set_json(1); break;
		case 'h': audit_help(); return CLI_OK;
		default: return output_usage(&cmd_verify, NULL);
		}
	}
	if (argc - optind != 1)
		return output_usage(&cmd_verify, "one FILE expected (- for stdin)");
	if (keytext != NULL && keyfile != NULL)
		return output_usage(&cmd_verify, "--pubkey or --pubkey-file, not both");
	if ((keytext != NULL || keyfile != NULL) &&
	    (rc = load_pubkey(keytext, keyfile, pk)) != CLI_OK)
		return rc == CLI_USAGE ? output_usage(&cmd_verify, NULL) : rc;
	file = argv[optind];
	if (strcmp(file, "-") == 0)
		f = stdin;
	else if ((f = fopen(file, "re")) == NULL) {
		output_err("%s: %s", file, strerror(errno));
		return CLI_ERR;
	}
	memset(&rep, 0, sizeof(rep));
	r = audit_verify_stream(f, keytext || keyfile ? pk : NULL, !partial, &rep);
	if (f != stdin)
		fclose(f);
	ok = r == EL_OK && rep.records > 0 &&
	    (!(keytext || keyfile) || rep.last_signed_seq > 0);
	tail = rep.last_is_checkpoint || rep.last_signed_seq == 0 ? 0 :
	    rep.last_seq - rep.last_signed_seq - 1;
	if (ok && (keytext || keyfile) && tail > 0 && !allow_tail) {
		ok = 0;
		snprintf(rep.problem, sizeof(rep.problem), "%lld records after seq %lld are not "
		    "covered by a signed checkpoint", (long long)tail,
		    (long long)rep.last_signed_seq + 1);
	}
	if (r == EL_OK && !ok && rep.problem[0] == '\0')
		snprintf(rep.problem, sizeof(rep.problem), "%s", rep.records == 0 ?
		    "no audit records" : "no signed checkpoint covers these records");
	if (output_json()) {
		rc = verify_json(&rep, ok, keytext || keyfile);
		return rc != CLI_OK ? rc : ok ? CLI_OK : CLI_ERR;
	}
	if (r != EL_OK) {
		/* audit.c's problem text names the line already ("line 7 (seq 7): ...") */
		if (rep.bad_line > 0 && strncmp(rep.problem, "line ", 5) != 0)
			printf("audit FAILED at line %lld: %s\n", (long long)rep.bad_line,
			    rep.problem[0] ? rep.problem : el_strerror(r));
		else
			printf("audit FAILED: %s\n", rep.problem[0] ? rep.problem : el_strerror(r));
		if (rep.records > 0)
			printf("(%lld records read before the problem, seq %lld..%lld)\n",
			    (long long)rep.records, (long long)rep.first_seq,
			    (long long)rep.last_seq);
		return CLI_ERR;
	}
	if (rep.records == 0) {
		printf("audit FAILED: %s holds no audit records\n", file);
		return CLI_ERR;
	}
	if (!(keytext || keyfile)) {
		printf("audit OK: %lld records (seq %lld..%lld), hash chain intact; checkpoints "
		    "NOT verified (no --pubkey given)\n", (long long)rep.records,
		    (long long)rep.first_seq, (long long)rep.last_seq);
		return CLI_OK;
	}
	if (rep.last_signed_seq <= 0) {
		printf("audit FAILED: %lld records (seq %lld..%lld) chain correctly, but no "
		    "signed checkpoint covers any of them: nothing proves the broker wrote them\n",
		    (long long)rep.records, (long long)rep.first_seq, (long long)rep.last_seq);
		return CLI_ERR;
	}
	/* Records after the last checkpoint carry only unkeyed hashes: anyone can edit them
	 * and compute the hashes again. The last record being the checkpoint itself (as after
	 * a clean shutdown) leaves nothing unsigned. */
	if (tail > 0 && !allow_tail) {
		printf("audit FAILED: %lld record%s after seq %lld %s not covered by a signed "
		    "checkpoint: their hashes are unkeyed and could have been rewritten "
		    "(--allow-unsigned-tail accepts them, e.g. for an export taken while the "
		    "broker runs)\n", (long long)tail, tail == 1 ? "" : "s",
		    (long long)rep.last_signed_seq + 1, tail == 1 ? "is" : "are");
		return CLI_ERR;
	}
	printf("audit OK: %lld records (seq %lld..%lld), %lld checkpoint%s, signed through "
	    "seq %lld", (long long)rep.records, (long long)rep.first_seq,
	    (long long)rep.last_seq, (long long)rep.checkpoints, rep.checkpoints == 1 ? "" : "s",
	    (long long)rep.last_signed_seq);
	if (rep.rotations > 0)
		printf(", %lld key rotation%s", (long long)rep.rotations,
		    rep.rotations == 1 ? "" : "s");
	printf("\n");
	if (tail > 0)
		printf("note: %lld record%s after seq %lld %s not yet covered by a signed "
		    "checkpoint\n", (long long)tail, tail == 1 ? "" : "s",
		    (long long)rep.last_signed_seq + 1, tail == 1 ? "is" : "are");
	return CLI_OK;
}

static void
show_table(const json_t *recs)
{
	static const char *const heads[] = {"TIME", "SEQ", "ACTOR", "EVENT", "REQUEST", "DATA"};
	struct output_table *t;
	const json_t *r, *d;
	const char *cells[6];
	char when[32], seq[32], data[DATA_COL_MAX * 4 + 8], *dump;
	int64_t tm;
	size_t i;

	if (json_array_size(recs) == 0) {
		printf("no audit records\n");
		return;
	}
	if ((t = output_table_new(6, heads)) == NULL)
		return;
	json_array_foreach(recs, i, r) {
		if ((tm = output_time(r, "time")) > 0)
			el_format_time(tm, when, sizeof(when));
		else
			el_strlcpy(when, "-", sizeof(when));
		snprintf(seq, sizeof(seq), "%lld", (long long)output_int(r, "seq", 0));
		d = json_object_get(r, "data");
		dump = json_is_object(d) && json_object_size(d) > 0 ?
		    json_dumps(d, JSON_COMPACT) : NULL;
		output_clean(dump != NULL ? dump : "", DATA_COL_MAX, data, sizeof(data));
		free(dump);
		cells[0] = when;
		cells[1] = seq;
		cells[2] = output_str(r, "actor");
		cells[3] = output_str(r, "event");
		cells[4] = output_str(r, "request_id") ? output_str(r, "request_id") : "-";
		cells[5] = data;
		output_table_add(t, cells);
	}
	output_table_print(t, stdout);
	output_table_free(t);
}

static int
audit_show(int argc, char **argv)
{
	static const struct option opts[] = {
		{"user", required_argument, NULL, 'u'},
		{"profile", required_argument, NULL, 'p'},
		{"event", required_argument, NULL, 'e'},
		{"since", required_argument, NULL, 's'},
		{"limit", required_argument, NULL, 'n'},
		{"json", no_argument, NULL, 'J'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *user = NULL, *profile = NULL, *event = NULL, *since = NULL, *limit = NULL;
	char since_at[32];
	long long n;
	int64_t secs, t;
	struct dbuf q, path;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "u:p:e:s:n:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'u': user = optarg; break;
		case 'p': profile = optarg; break;
		case 'e': event = optarg; break;
		case 's': since = optarg; break;
		case 'n': limit = optarg; break;
		case 'J': output_set_json(1); break;
		case 'h': audit_help(); return CLI_OK;
		default: return output_usage(&cmd_show, NULL);
		}
	}
	if (optind != argc)
		return output_usage(&cmd_show, "unexpected argument \"%s\"", argv[optind]);
	if (limit != NULL && el_parse_int(limit, 1, LIMIT_MAX, &n) != EL_OK)
		return output_usage(&cmd_show, "--limit: a number from 1 to %d", LIMIT_MAX);
	/* A duration is turned into a time here, so the broker sees one form only. */
	if (since != NULL) {
		if (el_parse_duration(since, &secs) == EL_OK)
			t = el_now() - secs;
		else if (el_parse_time(since, &t) != EL_OK)
			return output_usage(&cmd_show, "--since: a duration (24h, 7d) or a time "
			    "(2026-11-22T03:26:00Z), not \"%s\"", since);
		el_format_time(t, since_at, sizeof(since_at));
		since = since_at;
	}
	dbuf_init(&q, 2048);
	dbuf_init(&path, 4096);
	if (api_query_add(&q, "user", user) != EL_OK ||
	    api_query_add(&q, "profile", profile) != EL_OK ||
	    api_query_add(&q, "event", event) != EL_OK ||
	    api_query_add(&q, "since", since) != EL_OK ||
	    api_query_add(&q, "limit", limit) != EL_OK ||
	    dbuf_printf(&path, "/v1/audit%s%s", q.len ? "?" : "", q.len ? q.p : "") != EL_OK) {
		rc = output_usage(&cmd_show, "filters too long");
		goto out;
	}
	rc = list_get(path.p, "records", show_table);
out:
	dbuf_free(&q);
	dbuf_free(&path);
	return rc;
}

static int
audit_run(int argc, char **argv)
{
	if (argc < 2)
		return output_usage(&cmd_audit, "verify or show?");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		audit_help();
		return CLI_OK;
	}
	if (strcmp(argv[1], "verify") == 0)
		return audit_verify(argc - 1, argv + 1);
	if (strcmp(argv[1], "show") == 0)
		return audit_show(argc - 1, argv + 1);
	return output_usage(&cmd_audit, "unknown audit command \"%s\" (verify or show)", argv[1]);
}
