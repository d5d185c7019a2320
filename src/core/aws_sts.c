/*
 * aws_sts.c — owns the STS calls: AssumeRole (the grant's credentials, with session
 * policy, SourceIdentity and tags) and GetCallerIdentity, on regional endpoints,
 * Query protocol, and the parsing of their XML answers.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <libxml/tree.h>

#include "elevate/aws.h"
#include "elevate/aws_internal.h"
#include "elevate/el.h"

#define STS_VERSION "2011-06-15"

/* Text of a required secret element into a malloc'd string; EL_EPARSE naming it. */
static enum el_err
xml_secret(xmlNodePtr n, const char *what, char **out, struct el_why *w)
{
	*out = NULL;
	if (n == NULL)
		return el_fail(w, EL_EPARSE, "response has no %s", what);
	if ((*out = aws_xml_text(n)) == NULL)
		return el_fail(w, EL_ENOMEM, "out of memory reading %s", what);
	if (**out == '\0') {
		free(*out);
		*out = NULL;
		return el_fail(w, EL_EPARSE, "response has an empty %s", what);
	}
	return EL_OK;
}

static void
free_secret(char *s)
{
	if (s != NULL) {
		sodium_memzero(s, strlen(s));
		free(s);
	}
}

enum el_err
aws_parse_assume_role(const char *xml, size_t len, struct aws_assume_role_out *out,
    struct el_why *w)
{
	xmlDocPtr doc = NULL;
	xmlNodePtr res, cr, user, n;
	char *akid = NULL, *sk = NULL, *tok = NULL, exp[64], pps[32];
	long long v;
	int64_t t;
	enum el_err r;

	memset(out, 0, sizeof(*out));
	out->packed_policy_size = -1;
	if ((r = aws_xml_read(xml, len, &doc, w)) != EL_OK)
		return r;
	if ((r = aws_xml_result(doc, "AssumeRole", &res, w)) != EL_OK)
		goto out;
	if ((cr = aws_xml_child(res, "Credentials")) == NULL) {
		r = el_fail(w, EL_EPARSE, "response has no Credentials");
		goto out;
	}
	if ((r = xml_secret(aws_xml_child(cr, "AccessKeyId"), "AccessKeyId", &akid, w)) !=
	    EL_OK ||
	    (r = xml_secret(aws_xml_child(cr, "SecretAccessKey"), "SecretAccessKey", &sk,
	    w)) != EL_OK ||
	    (r = xml_secret(aws_xml_child(cr, "SessionToken"), "SessionToken", &tok, w)) !=
	    EL_OK ||
	    (r = aws_xml_copy(aws_xml_child(cr, "Expiration"), "Expiration", exp,
	    sizeof(exp), w)) != EL_OK)
		goto out;
	if (el_parse_time(exp, &t) != EL_OK) {
		r = el_fail(w, EL_EPARSE, "Expiration '%s' is not an ISO 8601 UTC time", exp);
		goto out;
	}
	if ((user = aws_xml_child(res, "AssumedRoleUser")) == NULL) {
		r = el_fail(w, EL_EPARSE, "response has no AssumedRoleUser");
		goto out;
	}
	if ((r = aws_xml_copy(aws_xml_child(user, "Arn"), "AssumedRoleUser/Arn",
	    out->assumed_role_arn, sizeof(out->assumed_role_arn), w)) != EL_OK ||
	    (r = aws_xml_copy(aws_xml_child(user, "AssumedRoleId"),
	    "AssumedRoleUser/AssumedRoleId", out->assumed_role_id,
	    sizeof(out->assumed_role_id), w)) != EL_OK)
		goto out;
	if ((n = aws_xml_child(res, "PackedPolicySize")) != NULL) {
		if (aws_xml_copy(n, "PackedPolicySize", pps, sizeof(pps), w) != EL_OK ||
		    el_parse_int(pps, 0, INT_MAX, &v) != EL_OK) {
			r = el_fail(w, EL_EPARSE, "PackedPolicySize is not a number");
			goto out;
		}
		out->packed_policy_size = (int)v;
	}
	n = aws_xml_path(xmlDocGetRootElement(doc), "ResponseMetadata", "RequestId", NULL);
	if (n != NULL)
		(void)aws_xml_copy(n, "RequestId", out->request_id, sizeof(out->request_id), w);
	if ((r = aws_creds_set(&out->creds, akid, sk, tok, t, "sts")) != EL_OK) {
		r = el_fail(w, r == EL_EINVAL ? EL_EPARSE : r, "AccessKeyId of %zu bytes is "
		    "unusable", strlen(akid));
		goto out;
	}
	r = EL_OK;
out:
	free(akid);
	free_secret(sk);
	free_secret(tok);
	aws_xml_free(doc);
	if (r != EL_OK) {
		aws_creds_clear(&out->creds);
		out->assumed_role_arn[0] = out->assumed_role_id[0] = '\0';
	}
	return r;
}

enum el_err
aws_parse_caller_identity(const char *xml, size_t len, char *arn, size_t arnlen,
    struct el_why *w)
{
	xmlDocPtr doc = NULL;
	xmlNodePtr res;
	enum el_err r;

	if ((r = aws_xml_read(xml, len, &doc, w)) != EL_OK)
		return r;
	if ((r = aws_xml_result(doc, "GetCallerIdentity", &res, w)) == EL_OK)
		r = aws_xml_copy(aws_xml_child(res, "Arn"), "Arn", arn, arnlen, w);
	aws_xml_free(doc);
	return r;
}

static enum el_err
check_in(const struct aws_assume_role_in *in, struct el_why *w)
{
	size_t i;

	if (in->role_arn == NULL || strncmp(in->role_arn, "arn:", 4) != 0 ||
	    strlen(in->role_arn) > 2048)
		return el_fail(w, EL_EINVAL, "role ARN '%s' is not an ARN",
		    in->role_arn ? in->role_arn : "");
	if (!aws_name_ok(in->role_session_name, 2, 64))
		return el_fail(w, EL_EINVAL, "RoleSessionName must be 2-64 characters of "
		    "[A-Za-z0-9_+=,.@-]");
	if (in->source_identity != NULL && (!aws_name_ok(in->source_identity, 2, 64) ||
	    strncmp(in->source_identity, "aws:", 4) == 0))
		return el_fail(w, EL_EINVAL, "SourceIdentity must be 2-64 characters of "
		    "[A-Za-z0-9_+=,.@-], not starting with aws:");
	if (in->duration_seconds != 0 &&
	    (in->duration_seconds < 900 || in->duration_seconds > 43200))
		return el_fail(w, EL_EINVAL, "DurationSeconds %d is outside 900..43200",
		    in->duration_seconds);
	if (in->ntags > 50)
		return el_fail(w, EL_EINVAL, "%zu session tags (at most 50)", in->ntags);
	for (i = 0; i < in->ntags; i++) {
		if (in->tags[i].key == NULL || *in->tags[i].key == '\0' ||
		    strlen(in->tags[i].key) > 128)
			return el_fail(w, EL_EINVAL, "session tag %zu: key must be 1-128 "
			    "characters", i + 1);
		if (in->tags[i].value == NULL || strlen(in->tags[i].value) > 256)
			return el_fail(w, EL_EINVAL, "session tag %s: value must be at most 256 "
			    "characters", in->tags[i].key);
	}
	return EL_OK;
}

enum el_err
aws_sts_assume_role(struct aws_client *c, const struct aws_assume_role_in *in,
    struct aws_assume_role_out *out, struct aws_error *err)
{
	struct aws_call call;
	struct aws_resp resp;
	struct dbuf body;
	struct el_why w = {{0}};
	char key[64], num[16];
	size_t i;
	enum el_err r;

	memset(out, 0, sizeof(*out));
	out->packed_policy_size = -1;
	aws_resp_init(&resp);
	dbuf_init(&body, AWS_MAX_REQUEST);
	if ((r = check_in(in, &w)) != EL_OK) {
		aws_error_set(err, 0, NULL, "AssumeRole: %s", w.msg);
		goto out;
	}
	r = aws_form_add(&body, "Action", "AssumeRole");
	if (r == EL_OK)
		r = aws_form_add(&body, "Version", STS_VERSION);
	if (r == EL_OK)
		r = aws_form_add(&body, "RoleArn", in->role_arn);
	if (r == EL_OK)
		r = aws_form_add(&body, "RoleSessionName", in->role_session_name);
	if (r == EL_OK && in->duration_seconds != 0) {
		snprintf(num, sizeof(num), "%d", in->duration_seconds);
		r = aws_form_add(&body, "DurationSeconds", num);
	}
	if (r == EL_OK && in->policy != NULL)
		r = aws_form_add(&body, "Policy", in->policy);
	if (r == EL_OK && in->source_identity != NULL)
		r = aws_form_add(&body, "SourceIdentity", in->source_identity);
	for (i = 0; r == EL_OK && i < in->ntags; i++) {
		snprintf(key, sizeof(key), "Tags.member.%zu.Key", i + 1);
		if ((r = aws_form_add(&body, key, in->tags[i].key)) != EL_OK)
			break;
		snprintf(key, sizeof(key), "Tags.member.%zu.Value", i + 1);
		r = aws_form_add(&body, key, in->tags[i].value);
	}
	if (r != EL_OK) {
		aws_error_set(err, 0, NULL, "AssumeRole: request too large");
		goto out;
	}
	memset(&call, 0, sizeof(call));
	call.svc = AWS_SVC_STS;
	call.action = "AssumeRole";
	call.region = in->region;
	call.proto = AWS_PROTO_QUERY;
	call.body = body.p;
	call.body_len = body.len;
	if ((r = aws_call_do(c, &call, &resp, err)) != EL_OK)
		goto out;
	if ((r = aws_parse_assume_role(resp.body.p, resp.body.len, out, &w)) != EL_OK) {
		aws_error_set(err, resp.status, resp.request_id, "AssumeRole: %s", w.msg);
		goto out;
	}
	if (out->request_id[0] == '\0')
		el_strlcpy(out->request_id, resp.request_id, sizeof(out->request_id));
	if (err != NULL)
		el_strlcpy(err->request_id, out->request_id, sizeof(err->request_id));
out:
	dbuf_free(&body);
	aws_resp_free(&resp);
	return r;
}

enum el_err
aws_sts_get_caller_identity(struct aws_client *c, const struct aws_creds *as,
    const char *region, char *arn, size_t arnlen, struct aws_error *err)
{
	static const char body[] = "Action=GetCallerIdentity&Version=" STS_VERSION;
	struct aws_call call;
	struct aws_resp resp;
	struct el_why w = {{0}};
	enum el_err r;

	aws_resp_init(&resp);
	memset(&call, 0, sizeof(call));
	call.svc = AWS_SVC_STS;
	call.action = "GetCallerIdentity";
	call.region = region;
	call.as = as;
	call.proto = AWS_PROTO_QUERY;
	call.body = body;
	call.body_len = sizeof(body) - 1;
	if ((r = aws_call_do(c, &call, &resp, err)) != EL_OK)
		goto out;
	if ((r = aws_parse_caller_identity(resp.body.p, resp.body.len, arn, arnlen, &w)) !=
	    EL_OK)
		aws_error_set(err, resp.status, resp.request_id, "GetCallerIdentity: %s", w.msg);
out:
	aws_resp_free(&resp);
	return r;
}
