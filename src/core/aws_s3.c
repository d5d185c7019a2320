/*
 * aws_s3.c — owns the S3 calls elevate makes: PutObject of a signed audit head under
 * Object Lock (COMPLIANCE, a retain-until date) and GetObject to read one back, both
 * path-style REST requests signed with SigV4 through aws_http.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "elevate/aws.h"
#include "elevate/aws_internal.h"
#include "elevate/el.h"

#define S3_KEY_MAX 1024

/* "/bucket/key" with the key encoded as S3 wants it (slashes kept). */
static enum el_err
object_path(const char *bucket, const char *key, struct dbuf *p, struct aws_error *err)
{
	size_t n = strlen(bucket);

	if (n < 3 || n > 63 || strspn(bucket, "abcdefghijklmnopqrstuvwxyz0123456789.-") != n ||
	    key == NULL || *key == '\0' || strlen(key) > S3_KEY_MAX) {
		aws_error_set(err, 0, NULL, "bad S3 bucket or key");
		return EL_EINVAL;
	}
	if (dbuf_printf(p, "/%s/", bucket) != EL_OK ||
	    sigv4_uri_encode(p, key, strlen(key), 1) != EL_OK) {
		aws_error_set(err, 0, NULL, "S3 key too long");
		return EL_ETOOBIG;
	}
	return EL_OK;
}

enum el_err
aws_s3_put_object(struct aws_client *c, const char *bucket, const char *key, const void *body,
    size_t len, const char *content_type, const char *lock_mode, const char *retain_until,
    struct aws_error *err)
{
	struct sigv4_header h[3];
	struct aws_call call;
	struct aws_resp resp;
	struct dbuf path;
	unsigned char md5[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char *b64 = NULL;
	size_t nh = 0;
	enum el_err r;

	dbuf_init(&path, 3 * S3_KEY_MAX + 128);
	if ((r = object_path(bucket, key, &path, err)) != EL_OK)
		goto out;
	/* Object Lock wants an integrity header on every put. */
	if (EVP_Digest(body, len, md5, &mdlen, EVP_md5(), NULL) != 1 ||
	    (b64 = el_b64_encode(md5, mdlen)) == NULL) {
		aws_error_set(err, 0, NULL, "cannot hash the object");
		r = EL_ECRYPTO;
		goto out;
	}
	h[nh++] = (struct sigv4_header){"content-md5", b64};
	if (lock_mode != NULL) {
		h[nh++] = (struct sigv4_header){"x-amz-object-lock-mode", lock_mode};
		h[nh++] = (struct sigv4_header){"x-amz-object-lock-retain-until-date",
		    retain_until};
	}
	memset(&call, 0, sizeof(call));
	call.svc = AWS_SVC_S3;
	call.action = "PutObject";
	call.proto = AWS_PROTO_REST;
	call.method = "PUT";
	call.path = path.p;
	call.content_type = content_type;
	call.headers = h;
	call.nheaders = nh;
	call.body = body;
	call.body_len = len;
	aws_resp_init(&resp);
	r = aws_call_do(c, &call, &resp, err);
	aws_resp_free(&resp);
out:
	free(b64);
	dbuf_free(&path);
	return r;
}

enum el_err
aws_s3_get_object(struct aws_client *c, const char *bucket, const char *key, struct dbuf *out,
    struct aws_error *err)
{
	struct aws_call call;
	struct aws_resp resp;
	struct dbuf path;
	enum el_err r;

	dbuf_init(&path, 3 * S3_KEY_MAX + 128);
	if ((r = object_path(bucket, key, &path, err)) != EL_OK)
		goto out;
	memset(&call, 0, sizeof(call));
	call.svc = AWS_SVC_S3;
	call.action = "GetObject";
	call.proto = AWS_PROTO_REST;
	call.method = "GET";
	call.path = path.p;
	call.quiet_code = "NoSuchKey";
	aws_resp_init(&resp);
	r = aws_call_do(c, &call, &resp, err);
	if (r == EL_OK)
		r = dbuf_add(out, resp.body.p, resp.body.len);
	else if (r == EL_EAWS && err != NULL && strcmp(err->code, "NoSuchKey") == 0)
		r = EL_ENOENT;
	aws_resp_free(&resp);
out:
	dbuf_free(&path);
	return r;
}
