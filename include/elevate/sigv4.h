/*
 * sigv4.h — AWS Signature Version 4 (header signing) as AWS.md describes it.
 * Pure computation: no I/O, no clock (the caller passes the time).
 *
 * The signer adds two headers to the signed set when the request does not carry them:
 * x-amz-date (= params.amz_date) and, with a session token, x-amz-security-token. The
 * caller must send them too (with exactly those values) along with the Authorization
 * header. When the request carries them already, their values must match the params
 * (EL_EINVAL otherwise: a mismatch could only produce a rejected signature).
 */
#ifndef ELEVATE_SIGV4_H
#define ELEVATE_SIGV4_H

#include <stddef.h>
#include <stdint.h>

#include "elevate/el.h"

/* Ceilings: inputs beyond them fail with EL_ETOOBIG. */
#define SIGV4_MAX_CANONICAL     (1024 * 1024)   /* canonical request, also any input string */
#define SIGV4_MAX_HEADERS       256             /* header lines, repeats counted */
#define SIGV4_MAX_QUERY_PARAMS  4096
#define SIGV4_MAX_SECRET        256             /* bytes of the secret access key */
#define SIGV4_AMZ_DATE_LEN      16              /* "20150830T123600Z" */

struct sigv4_header {
	const char *name;               /* as given; canonicalised inside */
	const char *value;
};

struct sigv4_request {
	const char *method;             /* "GET", "POST" ... */
	/*
	 * The path as sent on the wire (already percent-encoded once, as an HTTP client
	 * sends it); "" or NULL means "/". With double_encode_path it is encoded again, as
	 * every service but S3 wants; without, it is used as it is.
	 */
	const char *path;
	/* Raw query string without '?', may be NULL. Each key and value is percent-decoded,
	 * then re-encoded (RFC 3986), so callers may pass it encoded or not. '+' is a plus,
	 * never a space. Empty pieces ("a&&b") are ignored. */
	const char *query;
	const struct sigv4_header *headers;   /* every header to sign (host included) */
	size_t nheaders;
	const void *body;
	size_t body_len;
	const char *payload_hash;       /* hex SHA-256 to use instead of hashing body, or NULL */
};

struct sigv4_params {
	const char *access_key;
	const char *secret_key;
	const char *session_token;      /* NULL: none. Signed as x-amz-security-token */
	const char *region;
	const char *service;
	const char *amz_date;           /* "20150830T123600Z" */
	int normalize_path;             /* 1 for every service except S3 */
	int double_encode_path;         /* 1 for every service except S3 */
	/* Do not add x-amz-security-token to the signed set (the caller still sends it,
	 * unsigned): the old STS convention some endpoints want. 0 for all elevate does. */
	int omit_session_token;
};

/*
 * Everything a signature is made of; each member is a NUL-terminated malloc'd string
 * (caller frees with sigv4_result_free, which wipes them).
 */
struct sigv4_result {
	char *canonical_request;
	char *string_to_sign;
	char *signature;                /* hex */
	char *signed_headers;           /* "host;x-amz-date" */
	char *authorization;            /* full Authorization header value */
};

/*
 * Signs req. On success out holds the five strings (caller frees with
 * sigv4_result_free); on failure out is left empty (freeing it is harmless).
 * EL_EINVAL: malformed method, header name, amz_date, region/service/access key, or
 * x-amz-date / x-amz-security-token headers that contradict the params.
 * EL_ETOOBIG: a ceiling above was reached. EL_ECRYPTO: OpenSSL failed.
 */
enum el_err sigv4_sign(const struct sigv4_request *req, const struct sigv4_params *p,
    struct sigv4_result *out);
/* Wipes and frees every member; r itself is the caller's. Safe on a zeroed result. */
void sigv4_result_free(struct sigv4_result *r);

/* Lowercase hex SHA-256 of data (for x-amz-content-sha256 and payload_hash);
 * out must hold 65 bytes. */
enum el_err sigv4_sha256_hex(const void *data, size_t len, char out[65]);

/* Formats t (seconds since the epoch, UTC) as "YYYYMMDDTHHMMSSZ"; len >= 17. */
enum el_err sigv4_format_amz_date(int64_t t, char *buf, size_t len);

/*
 * A raw HTTP/1.1 request as the SigV4 test suite writes it (request.txt) and as
 * `elevate debug sigv4` reads it: "METHOD TARGET HTTP/1.1" (TARGET may hold spaces),
 * header lines "Name:value" (a line starting with a space or tab continues the
 * previous value), an empty line, the body (everything after it; none at EOF).
 * Lines end in LF or CRLF. Every member is owned by the struct.
 */
#define SIGV4_MAX_RAW           (1024 * 1024)
struct sigv4_raw {
	char *method;
	char *path;                     /* target up to '?' */
	char *query;                    /* after '?', NULL when there is no '?' */
	char **names;                   /* nheaders of each, as written */
	char **values;                  /* continuation lines appended, untrimmed */
	struct sigv4_header *headers;   /* nheaders views of names/values, in order */
	size_t nheaders;
	char *body;                     /* NUL-terminated for convenience */
	size_t body_len;
};
/* Parses buf[0..len) into out (caller frees with sigv4_raw_free, also on failure).
 * EL_EPARSE with w saying what and on which line; EL_ETOOBIG past the ceilings. */
enum el_err sigv4_raw_parse(const char *buf, size_t len, struct sigv4_raw *out,
    struct el_why *w);
void sigv4_raw_free(struct sigv4_raw *r);

/* RFC 3986 encoding as SigV4 wants it (unreserved kept, everything else %XX uppercase);
 * appends to b. */
enum el_err sigv4_uri_encode(struct dbuf *b, const char *s, size_t len, int keep_slash);

#endif
