/*
 * cmd_audit.c — `elevate audit verify FILE...`: checks an exported audit trail (hash chain
 * across rotated files, sequence, signed checkpoints of one node or several, each with
 * its own key, and against a signed head: a cut export) offline with
 * audit_verify_stream_keys(); `elevate audit show`: reads filtered audit records from the
 * broker (GET /v1/audit, auditors only).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "elevate/audit.h"
#include "elevate/audit_export.h"
#include "elevate/aws.h"
#include "elevate/el.h"
#include "elevate/reqsig.h"
#include "api.h"
#include "commands.h"
#include "output.h"

#define PUBKEY_FILE_MAX 4096
#define HEAD_FILE_MAX 4096
#define DATA_COL_MAX 60
#define LIMIT_MAX 10000

static int audit_run(int, char **);

const struct cli_cmd cmd_audit = {
	.name = "audit",
	.usage = "elevate audit verify FILE... [--pubkey ed25519:KEY|--pubkey-file F]... "
	    "[--head HEADFILE|s3://BUCKET/KEY] [--partial] [--allow-unsigned-tail]"
	    " | elevate audit show [--user U] [--profile P] [--event E] [--since DUR|TIME] "
	    "[--limit N]",
	.summary = "verify an exported audit trail, or show audit records (auditors)",
	.run = audit_run,
};

static const char verify_usage[] =
    "elevate audit verify FILE... [--pubkey ed25519:KEY|--pubkey-file F]... "
    "[--head HEADFILE|s3://BUCKET/KEY] [--partial] [--allow-unsigned-tail]";
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
	    "dropped, reordered or truncated record is reported with its line. Several FILEs\n"
	    "(the live file and its rotated ones, in any order) are one chain: sorted by first\n"
	    "seq, a gap between two files names both. Exit 0 when intact, 1 otherwise; with a\n"
	    "key, a trail no checkpoint signs is not intact.\n"
	    "Several nodes sign one chain, each with its own key: give each node's FIRST key\n"
	    "(repeat --pubkey / --pubkey-file, up to %d). A node's first checkpoint binds it to\n"
	    "the given key that verifies it (a key binds to one node only); a checkpoint no\n"
	    "given key verifies fails, naming its node.\n\n"
	    "  --pubkey ed25519:KEY   an audit checkpoint public key (a node's first audit.pub)\n"
	    "  --pubkey-file F        the same, read from a file\n"
	    "  --head H               the broker's signed head (audit.head_file, or the\n"
	    "                         s3://BUCKET/KEY of audit.anchor, read with the usual AWS\n"
	    "                         credentials and AWS_ENDPOINT_URL_S3; a node's own, signed\n"
	    "                         with its key): an export that ends before the head's seq,\n"
	    "                         or differs from it there, was cut\n"
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
	    "  --json        the broker's JSON\n", verify_usage, show_usage, AUDIT_KEYS_MAX,
	    LIMIT_MAX);
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

/* The nodes that signed, each with its counts and the key it ends with. New ref. */
static json_t *
nodes_json(const struct audit_verify_report *rep)
{
	json_t *a = json_array();
	int i;

	for (i = 0; a != NULL && i < rep->nnodes; i++) {
		const struct audit_node *n = &rep->nodes[i];
		char *key;

		if (!audit_node_signed(n))
			continue;
		if ((key = reqsig_pubkey_format(n->key)) == NULL ||
		    json_array_append_new(a, json_pack("{s:s?, s:I, s:I, s:s}", "node",
		    n->name[0] ? n->name : NULL, "checkpoints", (json_int_t)n->checkpoints,
		    "rotations", (json_int_t)n->rotations, "key", key)) != 0) {
			free(key);
			json_decref(a);
			return NULL;
		}
		free(key);
	}
	return a;
}

static int
verify_json(const struct audit_verify_report *rep, int ok, int keyed)
{
	json_t *j;
	int rc;

	j = json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:b, s:I, s:s, s:o?, s:i, s:i}", "ok", ok,
	    "records", (json_int_t)rep->records, "first_seq", (json_int_t)rep->first_seq,
	    "last_seq", (json_int_t)rep->last_seq, "checkpoints", (json_int_t)rep->checkpoints,
	    "last_signed_seq", (json_int_t)rep->last_signed_seq, "checkpoints_verified", keyed,
	    "bad_line", (json_int_t)rep->bad_line, "problem", rep->problem,
	    "nodes", keyed ? nodes_json(rep) : NULL, "keys_given", rep->nkeys,
	    "keys_used", rep->keys_used);
	if (j == NULL)
		return CLI_ERR;
	rc = output_print_json(j);
	json_decref(j);
	return rc;
}

/* Does the head verify with the key some node ends the chain with? A node signs its own
 * heads, after its own checkpoints. */
static int
head_signed(const char *text, size_t len, const struct audit_verify_report *rep,
    struct audit_head *head, struct el_why *w)
{
	int i;

	for (i = 0; i < rep->nnodes; i++)
		if (rep->nodes[i].bound && audit_head_parse(text, len, rep->nodes[i].key, head,
		    w) == EL_OK)
			return 1;
	if (w->msg[0] == '\0')
		el_fail(w, EL_ECRYPTO, "the head's signature does not verify with this key");
	return 0;
}

/* " by 2 nodes (node-a 7, node-b 5), 2 of 2 keys given used": only when more than one
 * node or key is in play, so that the one-key summary reads as it always did. */
static void
print_nodes(const struct audit_verify_report *rep)
{
	char buf[AUDIT_NODES_MAX * (AUDIT_NODE_MAX + 24) + 64];

	audit_nodes_summary(rep, buf, sizeof(buf));
	if (buf[0] == '\0' && rep->nkeys < 2)
		return;
	printf("%s, %d of %d key%s given used", buf, rep->keys_used, rep->nkeys,
	    rep->nkeys == 1 ? "" : "s");
}

/* Reads the head document: a file, or an S3 object with the usual AWS credential chain. */
static int
read_head(const char *src, struct dbuf *out)
{
	struct el_why w = {{0}};
	char *text = NULL;
	size_t n = 0;

	if (strncmp(src, "s3://", 5) == 0) {
		struct aws_config ac;
		struct aws_client *c = NULL;
		struct aws_error err;
		char bucket[64];
		const char *slash = strchr(src + 5, '/');
		enum el_err r;

		if (slash == NULL || slash[1] == '\0' || slash - (src + 5) >= (long)sizeof(bucket)) {
			output_err("--head %s: write s3://BUCKET/KEY", src);
			return CLI_USAGE;
		}
		snprintf(bucket, sizeof(bucket), "%.*s", (int)(slash - (src + 5)), src + 5);
		memset(&ac, 0, sizeof(ac));
		ac.max_attempts = 3;
		memset(&err, 0, sizeof(err));
		if (aws_client_new(&ac, &c, &w) != EL_OK) {
			output_err("--head %s: %s", src, w.msg);
			return CLI_ERR;
		}
		r = aws_s3_get_object(c, bucket, slash + 1, out, &err);
		aws_client_free(c);
		if (r != EL_OK) {
			output_err("--head %s: %s%s%s", src, err.code, err.code[0] ? ": " : "",
			    err.message[0] ? err.message : el_strerror(r));
			return CLI_ERR;
		}
		return CLI_OK;
	}
	if (el_read_file(src, HEAD_FILE_MAX, &text, &n, &w) != EL_OK) {
		output_err("--head: %s", w.msg);
		return CLI_ERR;
	}
	dbuf_add(out, text, n);
	free(text);
	return CLI_OK;
}

/*
 * Compares a verified export with the signed head: the export must reach the head's seq
 * and hold the head's hash there. Fills problem and returns 0 when it was cut.
 */
static int
head_covers(FILE *f, const struct audit_verify_report *rep, const struct audit_head *h,
    char *problem, size_t len)
{
	char hex[2 * AUDIT_HASH_BYTES + 1];

	if (rep->last_seq < h->seq) {
		snprintf(problem, len, "the export ends at seq %lld but the broker signed a head "
		    "at seq %lld (%s): records %lld..%lld were cut", (long long)rep->last_seq,
		    (long long)h->seq, h->time, (long long)rep->last_seq + 1, (long long)h->seq);
		return 0;
	}
	if (h->seq < rep->first_seq) {
		snprintf(problem, len, "the signed head is at seq %lld, before this export's "
		    "first record (seq %lld): give the files that hold it", (long long)h->seq,
		    (long long)rep->first_seq);
		return 0;
	}
	if (audit_files_hash_at(f, h->seq, hex) != EL_OK ||
	    strcmp(hex, h->hash) != 0) {
		snprintf(problem, len, "the record at seq %lld is not the one the broker signed "
		    "in its head (%s): the export was rewritten from there", (long long)h->seq,
		    h->time);
		return 0;
	}
	return 1;
}

/* The verification proper, once the options are read: keys (nkeys, 0 for none) are
 * each a node's first key. */
static int
verify_files(char **files, size_t nfiles, const unsigned char (*keys)[32], int nkeys,
    const char *headsrc, int partial, int allow_tail)
{
	struct audit_verify_report *rep = NULL;
	struct audit_file_info *info = NULL;
	struct audit_head head;
	struct el_why w = {{0}};
	struct dbuf hb;
	char *hb_text = NULL;
	size_t hb_len = 0;
	enum el_err r;
	FILE *f;
	int rc, ok, cut = 0, keyed = nkeys > 0;
	int64_t tail;

	if (headsrc != NULL && !keyed)
		return output_usage(&cmd_verify, "--head needs --pubkey: an unverified head "
		    "proves nothing");
	memset(&head, 0, sizeof(head));
	if (headsrc != NULL) {
		dbuf_init(&hb, HEAD_FILE_MAX);
		rc = read_head(headsrc, &hb);
		/* its signature is checked after the walk, with the keys the nodes end the
		 * chain with (each node's first, or the one its last rotation named) */
		if (rc == CLI_OK && audit_head_parse(hb.p ? hb.p : "", hb.len, NULL, &head, &w)
		    != EL_OK) {
			output_err("--head %s: %s", headsrc, w.msg);
			rc = CLI_ERR;
		}
		if (rc == CLI_OK) {
			hb_len = hb.len;
			hb_text = dbuf_take(&hb);
		}
		dbuf_free(&hb);
		if (rc != CLI_OK)
			return rc == CLI_USAGE ? output_usage(&cmd_verify, NULL) : rc;
	}
	if ((rep = calloc(1, sizeof(*rep))) == NULL) {
		free(hb_text);
		return CLI_ERR;
	}
	if (nfiles == 1 && strcmp(files[0], "-") == 0) {
		if (headsrc != NULL) {
			rc = output_usage(&cmd_verify, "--head needs files, not stdin");
			goto out;
		}
		f = stdin;
	} else if (audit_files_open(files, nfiles, &f, &info, &w) != EL_OK) {
		if (output_json()) {
			el_strlcpy(rep->problem, w.msg, sizeof(rep->problem));
			rc = verify_json(rep, 0, keyed);
			rc = rc != CLI_OK ? rc : CLI_ERR;
			goto out;
		}
		printf("audit FAILED: %s\n", w.msg);
		rc = CLI_ERR;
		goto out;
	}
	r = audit_verify_stream_keys(f, keys, nkeys, !partial, rep);
	ok = r == EL_OK && rep->records > 0 && (!keyed || rep->last_signed_seq > 0);
	if (ok && headsrc != NULL && !head_signed(hb_text, hb_len, rep, &head, &w)) {
		ok = 0;
		cut = 1;
		snprintf(rep->problem, sizeof(rep->problem), "--head: %.400s", w.msg);
	} else if (ok && headsrc != NULL && !head_covers(f, rep, &head, rep->problem,
	    sizeof(rep->problem))) {
		ok = 0;
		cut = 1;
	}
	/* Records after the last checkpoint carry only unkeyed hashes: anyone can edit them
	 * and compute the hashes again. The last record being the checkpoint itself (as after
	 * a clean shutdown) leaves nothing unsigned. */
	tail = rep->last_is_checkpoint || rep->last_signed_seq == 0 ? 0 :
	    rep->last_seq - rep->last_signed_seq - 1;
	if (ok && keyed && tail > 0 && !allow_tail) {
		ok = 0;
		cut = 1;
		snprintf(rep->problem, sizeof(rep->problem), "%lld record%s after seq %lld %s not "
		    "covered by a signed checkpoint: their hashes are unkeyed and could have been "
		    "rewritten (--allow-unsigned-tail accepts them, e.g. for an export taken while "
		    "the broker runs)", (long long)tail, tail == 1 ? "" : "s",
		    (long long)rep->last_signed_seq + 1, tail == 1 ? "is" : "are");
	}
	if (f != stdin)
		fclose(f);
	if (r != EL_OK && info != NULL && nfiles > 1 && rep->bad_line > 0) {
		/* name the file: the stream's line numbers run across all of them */
		int64_t in_file = 0;
		const struct audit_file_info *where = audit_files_where(info, nfiles,
		    rep->bad_line, &in_file);
		struct dbuf tmp;

		if (where != NULL) {
			dbuf_init(&tmp, 2 * EL_WHYLEN);
			const char *rest = rep->problem;

			/* audit.c's "line N" counts across the files: say the file's own */
			if (strncmp(rest, "line ", 5) == 0)
				rest += 5 + strspn(rest + 5, "0123456789");
			dbuf_printf(&tmp, "%s line %lld%s%s", where->path, (long long)in_file,
			    *rest == ':' || *rest == ' ' ? "" : ": ", rest);
			el_strlcpy(rep->problem, tmp.p ? tmp.p : "", sizeof(rep->problem));
			dbuf_free(&tmp);
			rep->bad_line = 0;
		}
	}
	if (r == EL_OK && !ok && rep->problem[0] == '\0')
		snprintf(rep->problem, sizeof(rep->problem), "%s", rep->records == 0 ?
		    "no audit records" : "no signed checkpoint covers these records");
	if (output_json()) {
		rc = verify_json(rep, ok, keyed);
		rc = rc != CLI_OK ? rc : ok ? CLI_OK : CLI_ERR;
		goto out;
	}
	rc = CLI_ERR;
	if (cut) {
		printf("audit FAILED: %s\n", rep->problem);
		goto out;
	}
	if (r != EL_OK) {
		/* audit.c's problem text names the line already ("line 7 (seq 7): ...") */
		if (rep->bad_line > 0 && strncmp(rep->problem, "line ", 5) != 0)
			printf("audit FAILED at line %lld: %s\n", (long long)rep->bad_line,
			    rep->problem[0] ? rep->problem : el_strerror(r));
		else
			printf("audit FAILED: %s\n", rep->problem[0] ? rep->problem : el_strerror(r));
		if (rep->records > 0)
			printf("(%lld records read before the problem, seq %lld..%lld)\n",
			    (long long)rep->records, (long long)rep->first_seq,
			    (long long)rep->last_seq);
		goto out;
	}
	if (rep->records == 0) {
		printf("audit FAILED: %s holds no audit records\n", files[0]);
		goto out;
	}
	rc = CLI_OK;
	if (!keyed) {
		printf("audit OK: %lld records (seq %lld..%lld), hash chain intact; checkpoints "
		    "NOT verified (no --pubkey given)\n", (long long)rep->records,
		    (long long)rep->first_seq, (long long)rep->last_seq);
		goto out;
	}
	if (rep->last_signed_seq <= 0) {
		printf("audit FAILED: %lld records (seq %lld..%lld) chain correctly, but no "
		    "signed checkpoint covers any of them: nothing proves the broker wrote them\n",
		    (long long)rep->records, (long long)rep->first_seq, (long long)rep->last_seq);
		rc = CLI_ERR;
		goto out;
	}
	printf("audit OK: %lld records (seq %lld..%lld), %lld checkpoint%s",
	    (long long)rep->records, (long long)rep->first_seq, (long long)rep->last_seq,
	    (long long)rep->checkpoints, rep->checkpoints == 1 ? "" : "s");
	print_nodes(rep);
	printf(", signed through seq %lld", (long long)rep->last_signed_seq);
	if (rep->rotations > 0)
		printf(", %lld key rotation%s", (long long)rep->rotations,
		    rep->rotations == 1 ? "" : "s");
	printf("\n");
	if (headsrc != NULL)
		printf("the export holds the broker's signed head (seq %lld, %s): not cut\n",
		    (long long)head.seq, head.time);
	if (tail > 0)
		printf("note: %lld record%s after seq %lld %s not yet covered by a signed "
		    "checkpoint\n", (long long)tail, tail == 1 ? "" : "s",
		    (long long)rep->last_signed_seq + 1, tail == 1 ? "is" : "are");
out:
	free(info);
	free(hb_text);
	free(rep);
	return rc;
}

static int
audit_verify(int argc, char **argv)
{
	static const struct option opts[] = {
		{"pubkey", required_argument, NULL, 'k'},
		{"pubkey-file", required_argument, NULL, 'K'},
		{"head", required_argument, NULL, 'H'},
		{"partial", no_argument, NULL, 'P'},
		{"allow-unsigned-tail", no_argument, NULL, 'T'},
		{"json", no_argument, NULL, 'J'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	unsigned char (*keys)[crypto_sign_PUBLICKEYBYTES];
	const char *headsrc = NULL;
	int ch, partial = 0, allow_tail = 0, nkeys = 0, rc = CLI_OK;

	if ((keys = calloc(AUDIT_KEYS_MAX, sizeof(*keys))) == NULL)
		return CLI_ERR;
	while (rc == CLI_OK && (ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'k':
		case 'K':
			if (nkeys == AUDIT_KEYS_MAX)
				rc = output_usage(&cmd_verify, "at most %d keys", AUDIT_KEYS_MAX);
			else if ((rc = load_pubkey(ch == 'k' ? optarg : NULL, ch == 'K' ? optarg :
			    NULL, keys[nkeys])) == CLI_USAGE)
				rc = output_usage(&cmd_verify, NULL);
			else
				nkeys++;
			break;
		case 'H': headsrc = optarg; break;
		case 'P': partial = 1; break;
		case 'T': allow_tail = 1; break;
		case 'J': output_set_json(1); break;
		case 'h': audit_help(); rc = -1; break;
		default: rc = output_usage(&cmd_verify, NULL); break;
		}
	}
	if (rc == -1)
		rc = CLI_OK;
	else if (rc == CLI_OK && argc - optind < 1)
		rc = output_usage(&cmd_verify, "FILE expected (- for stdin)");
	else if (rc == CLI_OK)
		rc = verify_files(argv + optind, (size_t)(argc - optind),
		    (const unsigned char (*)[32])keys, nkeys, headsrc, partial, allow_tail);
	free(keys);
	return rc;
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
