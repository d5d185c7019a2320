/*
 * cmd_debug.c — `elevate debug`: developer tools that expose core internals for
 * checking against other implementations. Today one: `debug sigv4`, which signs a raw
 * HTTP request read on stdin and prints the Authorization value, canonical request or
 * string to sign (tests/integration/test_sigv4_botocore.py compares it with botocore).
 */
#include <errno.h>
#include <getopt.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "elevate/el.h"
#include "elevate/sigv4.h"
#include "cli.h"

#define DEBUG_USAGE \
	"usage: elevate debug sigv4 --access-key K --secret-key S --region R --service N\n" \
	"           --time YYYYMMDDTHHMMSSZ [--session-token T]\n" \
	"           [--print authorization|canonical-request|string-to-sign|signature|signed-headers]\n"

#define SIGV4_HELP DEBUG_USAGE \
	"\n" \
	"Signs the raw HTTP request on stdin with AWS Signature Version 4 and prints one part\n" \
	"of the result (default: the Authorization header value). The request is\n" \
	"\"METHOD /path?query HTTP/1.1\", header lines (a line starting with a space or tab\n" \
	"continues the previous one), an empty line and the body; at most 1 MiB.\n" \
	"Every header present is signed; x-amz-date is added from --time and, with\n" \
	"--session-token, x-amz-security-token, unless the request carries them. An\n" \
	"x-amz-content-sha256 header is used as the payload hash. Service \"s3\" gets S3's\n" \
	"rules (path neither normalised nor encoded again).\n" \
	"Arguments are visible to other local users: use test credentials only.\n"

enum print_what {
	PRINT_AUTHORIZATION,
	PRINT_CANONICAL_REQUEST,
	PRINT_STRING_TO_SIGN,
	PRINT_SIGNATURE,
	PRINT_SIGNED_HEADERS,
};

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("elevate debug sigv4: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n" DEBUG_USAGE, stderr);
	return CLI_USAGE;
}

/* Reads all of stdin up to SIGV4_MAX_RAW bytes (caller frees *out). */
static enum el_err
read_stdin(char **out, size_t *outlen)
{
	struct dbuf b;
	char chunk[8192];
	ssize_t n;
	enum el_err r = EL_OK;

	dbuf_init(&b, SIGV4_MAX_RAW);
	if ((r = dbuf_add(&b, "", 0)) != EL_OK)
		goto out;
	for (;;) {
		n = read(STDIN_FILENO, chunk, sizeof(chunk));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = EL_EIO;
			goto out;
		}
		if (n == 0)
			break;
		if ((r = dbuf_add(&b, chunk, (size_t)n)) != EL_OK)
			goto out;
	}
	*outlen = b.len;
	*out = dbuf_take(&b);
	if (*out == NULL)
		r = EL_ENOMEM;
out:
	dbuf_free_secret(&b);
	return r;
}

/* Copies the trimmed value of the first header called name (case-insensitive) into
 * buf: 1 found, 0 absent, -1 longer than buf. */
static int
header_value(const struct sigv4_raw *raw, const char *name, char *buf, size_t len)
{
	const char *v;
	size_t i, n;

	for (i = 0; i < raw->nheaders; i++) {
		if (strcasecmp(raw->names[i], name) != 0)
			continue;
		for (v = raw->values[i]; *v == ' ' || *v == '\t'; v++)
			;
		n = strlen(v);
		while (n > 0 && strchr(" \t\r\n", v[n - 1]) != NULL)
			n--;
		if (n >= len)
			return -1;
		memcpy(buf, v, n);
		buf[n] = '\0';
		return 1;
	}
	return 0;
}

static int
debug_sigv4(int argc, char **argv)
{
	static const struct option opts[] = {
		{"access-key", required_argument, NULL, 'a'},
		{"secret-key", required_argument, NULL, 's'},
		{"session-token", required_argument, NULL, 'k'},
		{"region", required_argument, NULL, 'r'},
		{"service", required_argument, NULL, 'n'},
		{"time", required_argument, NULL, 't'},
		{"print", required_argument, NULL, 'p'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct sigv4_params p;
	struct sigv4_request req;
	struct sigv4_result res;
	struct sigv4_raw raw;
	struct el_why why = {{0}};
	enum print_what what = PRINT_AUTHORIZATION;
	char *input = NULL, hashbuf[260];
	const char *outstr = NULL;
	size_t inlen = 0;
	int c, rc = CLI_ERR;
	enum el_err r;

	memset(&p, 0, sizeof(p));
	memset(&req, 0, sizeof(req));
	memset(&res, 0, sizeof(res));
	memset(&raw, 0, sizeof(raw));
	optind = 0;     /* glibc: full reset, main may have parsed options already */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
			p.access_key = optarg;
			break;
		case 's':
			p.secret_key = optarg;
			break;
		case 'k':
			p.session_token = optarg;
			break;
		case 'r':
			p.region = optarg;
			break;
		case 'n':
			p.service = optarg;
			break;
		case 't':
			p.amz_date = optarg;
			break;
		case 'p':
			if (strcmp(optarg, "authorization") == 0)
				what = PRINT_AUTHORIZATION;
			else if (strcmp(optarg, "canonical-request") == 0)
				what = PRINT_CANONICAL_REQUEST;
			else if (strcmp(optarg, "string-to-sign") == 0)
				what = PRINT_STRING_TO_SIGN;
			else if (strcmp(optarg, "signature") == 0)
				what = PRINT_SIGNATURE;
			else if (strcmp(optarg, "signed-headers") == 0)
				what = PRINT_SIGNED_HEADERS;
			else
				return usage_error("unknown --print value \"%s\"", optarg);
			break;
		case 'h':
			fputs(SIGV4_HELP, stdout);
			return CLI_OK;
		default:
			return usage_error("bad option or missing value: %s",
			    argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument \"%s\"", argv[optind]);
	if (p.access_key == NULL || p.secret_key == NULL || p.region == NULL ||
	    p.service == NULL || p.amz_date == NULL)
		return usage_error("%s", "--access-key, --secret-key, --region, --service "
		    "and --time are required");
	if (strlen(p.amz_date) != SIGV4_AMZ_DATE_LEN || p.amz_date[8] != 'T' ||
	    p.amz_date[15] != 'Z' || strspn(p.amz_date, "0123456789") != 8 ||
	    strspn(p.amz_date + 9, "0123456789") != 6)
		return usage_error("--time \"%s\" is not YYYYMMDDTHHMMSSZ", p.amz_date);
	if (*p.access_key == '\0' || *p.region == '\0' || *p.service == '\0' ||
	    strchr(p.access_key, '/') != NULL || strchr(p.region, '/') != NULL ||
	    strchr(p.service, '/') != NULL)
		return usage_error("%s", "--access-key, --region and --service must be "
		    "non-empty and contain no '/'");
	p.normalize_path = p.double_encode_path = strcmp(p.service, "s3") != 0;

	if ((r = read_stdin(&input, &inlen)) != EL_OK) {
		if (r == EL_ETOOBIG)
			fprintf(stderr, "elevate debug sigv4: the request on stdin is larger "
			    "than 1 MiB (%d bytes)\n", SIGV4_MAX_RAW);
		else
			fprintf(stderr, "elevate debug sigv4: reading stdin: %s\n",
			    el_strerror(r));
		goto out;
	}
	if ((r = sigv4_raw_parse(input, inlen, &raw, &why)) != EL_OK) {
		fprintf(stderr, "elevate debug sigv4: bad request on stdin: %s\n",
		    why.msg[0] != '\0' ? why.msg : el_strerror(r));
		goto out;
	}
	req.method = raw.method;
	req.path = raw.path;
	req.query = raw.query;
	req.headers = raw.headers;
	req.nheaders = raw.nheaders;
	req.body = raw.body;
	req.body_len = raw.body_len;
	/* As botocore: a payload hash the request states (S3's UNSIGNED-PAYLOAD ...) wins. */
	switch (header_value(&raw, "x-amz-content-sha256", hashbuf, sizeof(hashbuf))) {
	case 1:
		req.payload_hash = hashbuf;
		break;
	case -1:
		fprintf(stderr, "elevate debug sigv4: the x-amz-content-sha256 value is "
		    "too long\n");
		goto out;
	}
	if ((r = sigv4_sign(&req, &p, &res)) != EL_OK) {
		if (r == EL_EINVAL)
			fprintf(stderr, "elevate debug sigv4: cannot sign: a header name is "
			    "not a token, a credential field is malformed, or the request's "
			    "x-amz-date / x-amz-security-token differ from --time / "
			    "--session-token\n");
		else
			fprintf(stderr, "elevate debug sigv4: cannot sign: %s\n",
			    el_strerror(r));
		goto out;
	}
	switch (what) {
	case PRINT_AUTHORIZATION:
		outstr = res.authorization;
		break;
	case PRINT_CANONICAL_REQUEST:
		outstr = res.canonical_request;
		break;
	case PRINT_STRING_TO_SIGN:
		outstr = res.string_to_sign;
		break;
	case PRINT_SIGNATURE:
		outstr = res.signature;
		break;
	case PRINT_SIGNED_HEADERS:
		outstr = res.signed_headers;
		break;
	}
	if (printf("%s\n", outstr) < 0 || fflush(stdout) != 0) {
		fprintf(stderr, "elevate debug sigv4: writing stdout: %s\n", strerror(errno));
		goto out;
	}
	rc = CLI_OK;
out:
	sigv4_result_free(&res);
	sigv4_raw_free(&raw);
	if (input != NULL) {
		sodium_memzero(input, inlen);
		free(input);
	}
	return rc;
}

static int
debug_run(int argc, char **argv)
{
	if (argc < 2) {
		fputs(DEBUG_USAGE, stderr);
		return CLI_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		fputs(DEBUG_USAGE, stdout);
		return CLI_OK;
	}
	if (strcmp(argv[1], "sigv4") == 0)
		return debug_sigv4(argc - 1, argv + 1);
	fprintf(stderr, "elevate debug: unknown tool \"%s\"\n" DEBUG_USAGE, argv[1]);
	return CLI_USAGE;
}

const struct cli_cmd cmd_debug = {
	.name = "debug",
	.usage = "elevate debug sigv4 --access-key K --secret-key S --region R "
	    "--service N --time YYYYMMDDTHHMMSSZ [--session-token T] [--print WHAT]",
	.summary = "developer tools: sign a raw HTTP request with SigV4 (stdin)",
	.run = debug_run,
};
