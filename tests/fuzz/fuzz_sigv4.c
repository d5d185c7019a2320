/*
 * fuzz_sigv4.c — libFuzzer harness for sigv4_raw_parse, the reader of raw HTTP requests
 * behind `elevate debug sigv4` (a file the user pastes), then sigv4_sign over whatever it
 * parsed with fixed credentials, the way the debug command does. Signed twice: as every
 * service but S3 (normalised, double-encoded path, session token) and as S3 (neither).
 * Besides "no crash, no UB, no leak": a parse failure says why, a signature is 64
 * lowercase hex digits and ends the Authorization header.
 * Build: see README.md.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "elevate/el.h"
#include "elevate/sigv4.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
sign(const struct sigv4_raw *raw, int s3)
{
	struct sigv4_params p = {
		.access_key = "AKIDEXAMPLE",
		.secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
		.session_token = s3 ? NULL : "AQoDYXdzEPT//////////wEXAMPLEtoken",
		.region = "us-east-1",
		.service = s3 ? "s3" : "service",
		.amz_date = "20150830T123600Z",
		.normalize_path = !s3,
		.double_encode_path = !s3,
	};
	struct sigv4_request req = {
		.method = raw->method,
		.path = raw->path,
		.query = raw->query,
		.headers = raw->headers,
		.nheaders = raw->nheaders,
		.body = raw->body,
		.body_len = raw->body_len,
	};
	struct sigv4_result res;
	size_t i, alen;

	memset(&res, 0, sizeof(res));
	if (sigv4_sign(&req, &p, &res) == EL_OK) {
		if (res.canonical_request == NULL || res.string_to_sign == NULL ||
		    res.signature == NULL || res.signed_headers == NULL ||
		    res.authorization == NULL || strlen(res.signature) != 64)
			abort();
		for (i = 0; i < 64; i++)
			if (strchr("0123456789abcdef", res.signature[i]) == NULL)
				abort();
		alen = strlen(res.authorization);
		if (alen < 64 || strcmp(res.authorization + alen - 64, res.signature) != 0)
			abort();
	} else if (res.signature != NULL || res.authorization != NULL)
		abort();
	sigv4_result_free(&res);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct el_why w = {{0}};
	struct sigv4_raw raw;
	enum el_err e;
	size_t i;

	if (size > 64 * 1024)
		return 0;
	memset(&raw, 0, sizeof(raw));
	e = sigv4_raw_parse((const char *)data, size, &raw, &w);
	if (e == EL_OK) {
		if (raw.method == NULL || raw.path == NULL || raw.body == NULL ||
		    raw.body_len > size || (raw.nheaders > 0 && raw.headers == NULL))
			abort();
		for (i = 0; i < raw.nheaders; i++)
			if (raw.headers[i].name != raw.names[i] ||
			    raw.headers[i].value != raw.values[i])
				abort();
		sign(&raw, 0);
		sign(&raw, 1);
	} else if (w.msg[0] == '\0')
		abort();
	sigv4_raw_free(&raw);
	return 0;
}
