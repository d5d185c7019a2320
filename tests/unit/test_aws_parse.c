/*
 * test_aws_parse.c — the AWS client without the network: form encoding, every response
 * parser (STS, IAM, SSM, EC2, container/IMDS credentials) and every error shape (Query
 * XML, EC2 XML, JSON 1.1, a proxy's HTML page), including out-of-order children,
 * timestamps with and without milliseconds, huge tokens, missing fields, invalid and
 * oversized documents, and the retry classification.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "elevate/aws.h"
#include "elevate/aws_internal.h"
#include "elevate/el.h"

#define STS_NS "xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\""
#define EXP_EPOCH 1795317960    /* 2026-11-22T03:26:00Z */

/* ---------------------------------------------------------------- encoding */

static char *
form(const char *k, const char *v)
{
	struct dbuf b;

	dbuf_init(&b, 4096);
	assert_int_equal(aws_form_add(&b, k, v), EL_OK);
	return dbuf_take(&b);
}

static void
form_encoding(void **state)
{
	struct dbuf b;
	char *s;

	(void)state;
	s = form("Policy", "a b*c~d-e_f.g");
	assert_string_equal(s, "Policy=a%20b%2Ac~d-e_f.g");
	free(s);
	s = form("Tags.member.1.Key", "x/y+z=w&v");
	assert_string_equal(s, "Tags.member.1.Key=x%2Fy%2Bz%3Dw%26v");
	free(s);
	s = form("k", "\xc3\xa9\"{}:");
	assert_string_equal(s, "k=%C3%A9%22%7B%7D%3A");
	free(s);

	dbuf_init(&b, 4096);
	assert_int_equal(aws_form_add(&b, "Action", "AssumeRole"), EL_OK);
	assert_int_equal(aws_form_add(&b, "Version", "2011-06-15"), EL_OK);
	assert_string_equal(b.p, "Action=AssumeRole&Version=2011-06-15");
	dbuf_free(&b);

	/* the ceiling holds */
	dbuf_init(&b, 8);
	assert_int_equal(aws_form_add(&b, "Action", "AssumeRole"), EL_ETOOBIG);
	dbuf_free(&b);
}

static void
names(void **state)
{
	(void)state;
	assert_true(aws_name_ok("elevate-req_abc.1@x=y,z+", 2, 64));
	assert_false(aws_name_ok("a", 2, 64));
	assert_false(aws_name_ok("has space", 2, 64));
	assert_false(aws_name_ok("caf\xc3\xa9", 2, 64));
	assert_false(aws_name_ok("a/b", 2, 64));
	assert_false(aws_name_ok(NULL, 2, 64));
}

/* ---------------------------------------------------------------- STS */

static char *
assume_role_xml(const char *exp, const char *token, int reorder)
{
	struct dbuf b;

	dbuf_init(&b, 8 * 1024 * 1024);
	if (!reorder) {
		assert_int_equal(dbuf_printf(&b,
		    "<AssumeRoleResponse " STS_NS ">\n"
		    "  <AssumeRoleResult>\n"
		    "    <SourceIdentity>alice</SourceIdentity>\n"
		    "    <AssumedRoleUser>\n"
		    "      <AssumedRoleId>AROA3XFRBF535PLBIFPI4:elevate-req_1</AssumedRoleId>\n"
		    "      <Arn>arn:aws:sts::111122223333:assumed-role/ProdReadOnly/"
		    "elevate-req_1</Arn>\n"
		    "    </AssumedRoleUser>\n"
		    "    <Credentials>\n"
		    "      <AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId>\n"
		    "      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
		    "</SecretAccessKey>\n"
		    "      <SessionToken>%s</SessionToken>\n"
		    "      <Expiration>%s</Expiration>\n"
		    "    </Credentials>\n"
		    "    <PackedPolicySize>6</PackedPolicySize>\n"
		    "  </AssumeRoleResult>\n"
		    "  <ResponseMetadata>\n"
		    "    <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>\n"
		    "  </ResponseMetadata>\n"
		    "</AssumeRoleResponse>\n", token, exp), EL_OK);
	} else {
		/* every level in a different order, no whitespace, a prefixed namespace */
		assert_int_equal(dbuf_printf(&b,
		    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
		    "<s:AssumeRoleResponse xmlns:s=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
		    "<s:ResponseMetadata><s:RequestId>rid-2</s:RequestId></s:ResponseMetadata>"
		    "<s:AssumeRoleResult>"
		    "<s:Credentials>"
		    "<s:Expiration>%s</s:Expiration>"
		    "<s:SessionToken>%s</s:SessionToken>"
		    "<s:SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</s:SecretAccessKey>"
		    "<s:AccessKeyId>ASIAIOSFODNN7EXAMPLE</s:AccessKeyId>"
		    "</s:Credentials>"
		    "<s:AssumedRoleUser>"
		    "<s:Arn>arn:aws:sts::111122223333:assumed-role/ProdReadOnly/elevate-req_1"
		    "</s:Arn>"
		    "<s:AssumedRoleId>AROA3XFRBF535PLBIFPI4:elevate-req_1</s:AssumedRoleId>"
		    "</s:AssumedRoleUser>"
		    "</s:AssumeRoleResult>"
		    "</s:AssumeRoleResponse>", exp, token), EL_OK);
	}
	return dbuf_take(&b);
}

static void
check_assumed(const struct aws_assume_role_out *o, const char *token)
{
	assert_string_equal(o->creds.access_key_id, "ASIAIOSFODNN7EXAMPLE");
	assert_string_equal(o->creds.secret_access_key,
	    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY");
	assert_string_equal(o->creds.session_token, token);
	assert_int_equal(o->creds.expiration, EXP_EPOCH);
	assert_string_equal(o->assumed_role_arn,
	    "arn:aws:sts::111122223333:assumed-role/ProdReadOnly/elevate-req_1");
	assert_string_equal(o->assumed_role_id, "AROA3XFRBF535PLBIFPI4:elevate-req_1");
}

static void
assume_role_ok(void **state)
{
	struct aws_assume_role_out o;
	struct el_why w = {{0}};
	char *x;

	(void)state;
	x = assume_role_xml("2026-11-22T03:26:00Z", "FQoGZXIvYXdzEPT//////////wEXAMPLE", 0);
	assert_int_equal(aws_parse_assume_role(x, strlen(x), &o, &w), EL_OK);
	check_assumed(&o, "FQoGZXIvYXdzEPT//////////wEXAMPLE");
	assert_int_equal(o.packed_policy_size, 6);
	assert_string_equal(o.request_id, "c6104cbe-af31-11e0-8154-cbc7ccf896c7");
	aws_creds_clear(&o.creds);
	assert_null(o.creds.secret_access_key);
	free(x);
}

static void
assume_role_out_of_order_with_ms(void **state)
{
	struct aws_assume_role_out o;
	struct el_why w = {{0}};
	char *x;

	(void)state;
	x = assume_role_xml("2026-11-22T03:26:00.123Z", "tok", 1);
	assert_int_equal(aws_parse_assume_role(x, strlen(x), &o, &w), EL_OK);
	check_assumed(&o, "tok");
	assert_int_equal(o.packed_policy_size, -1);     /* absent */
	assert_string_equal(o.request_id, "rid-2");
	aws_creds_clear(&o.creds);
	free(x);
}

static void
assume_role_huge_token(void **state)
{
	struct aws_assume_role_out o;
	struct el_why w = {{0}};
	size_t sizes[] = {1500, 8192, 200000}, i;
	char *tok, *x;

	(void)state;
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		tok = malloc(sizes[i] + 1);
		assert_non_null(tok);
		memset(tok, 'Q', sizes[i]);
		tok[sizes[i] - 1] = '=';
		tok[sizes[i]] = '\0';
		x = assume_role_xml("2026-11-22T03:26:00Z", tok, (int)(i % 2));
		assert_int_equal(aws_parse_assume_role(x, strlen(x), &o, &w), EL_OK);
		assert_int_equal(strlen(o.creds.session_token), sizes[i]);
		check_assumed(&o, tok);
		aws_creds_clear(&o.creds);
		free(x);
		free(tok);
	}
}

/* Removes the first occurrence of <tag>...</tag> from x (in place). */
static void
drop_element(char *x, const char *tag)
{
	char open[64], close[64];
	char *s, *e;

	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	s = strstr(x, open);
	assert_non_null(s);
	e = strstr(s, close);
	assert_non_null(e);
	e += strlen(close);
	memmove(s, e, strlen(e) + 1);
}

static void
assume_role_missing_fields(void **state)
{
	static const char *const fields[] = {
		"SecretAccessKey", "AccessKeyId", "SessionToken", "Expiration", "Arn",
		"AssumedRoleId", "Credentials", "AssumedRoleUser",
	};
	struct aws_assume_role_out o;
	struct el_why w;
	size_t i;
	char *x;

	(void)state;
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		x = assume_role_xml("2026-11-22T03:26:00Z", "tok", 0);
		drop_element(x, fields[i]);
		memset(&w, 0, sizeof(w));
		assert_int_equal(aws_parse_assume_role(x, strlen(x), &o, &w), EL_EPARSE);
		/* the message names what is missing, and no secret leaks into it */
		assert_non_null(strstr(w.msg, fields[i]));
		assert_null(strstr(w.msg, "wJalrXUtnFEMI"));
		assert_null(o.creds.secret_access_key);
		assert_null(o.creds.session_token);
		free(x);
	}
	/* empty secret is as bad as a missing one */
	x = assume_role_xml("2026-11-22T03:26:00Z", "", 0);
	assert_int_equal(aws_parse_assume_role(x, strlen(x), &o, &w), EL_EPARSE);
	assert_non_null(strstr(w.msg, "SessionToken"));
	free(x);
	/* a bad date */
	x = assume_role_xml("tomorrow", "tok", 0);
	assert_int_equal(aws_parse_assume_role(x, strlen(x), &o, &w), EL_EPARSE);
	assert_non_null(strstr(w.msg, "Expiration"));
	free(x);
}

static void
assume_role_invalid(void **state)
{
	static const char trunc[] = "<AssumeRoleResponse><AssumeRoleResult><Credentials>";
	static const char other[] = "<GetRoleResponse><GetRoleResult/></GetRoleResponse>";
	static const char err[] = "<ErrorResponse><Error><Code>AccessDenied</Code></Error>"
	    "</ErrorResponse>";
	static const char json[] = "{\"Credentials\": {}}";
	static const char dtd[] = "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"aaaa\">"
	    "<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;\">]><AssumeRoleResponse>&b;"
	    "</AssumeRoleResponse>";
	static const char ext[] = "<?xml version=\"1.0\"?><!DOCTYPE x SYSTEM "
	    "\"http://127.0.0.1:1/evil.dtd\"><AssumeRoleResponse/>";
	struct aws_assume_role_out o;
	struct el_why w;
	char *big;

	(void)state;
	memset(&w, 0, sizeof(w));
	assert_int_equal(aws_parse_assume_role(trunc, strlen(trunc), &o, &w), EL_EPARSE);
	assert_non_null(strstr(w.msg, "XML"));
	assert_int_equal(aws_parse_assume_role(other, strlen(other), &o, &w), EL_EPARSE);
	assert_non_null(strstr(w.msg, "AssumeRoleResponse"));
	assert_int_equal(aws_parse_assume_role(err, strlen(err), &o, &w), EL_EPARSE);
	assert_int_equal(aws_parse_assume_role(json, strlen(json), &o, &w), EL_EPARSE);
	assert_int_equal(aws_parse_assume_role("", 0, &o, &w), EL_EPARSE);
	assert_int_equal(aws_parse_assume_role(NULL, 0, &o, &w), EL_EPARSE);
	/* DTDs (entity expansion, external subsets) are refused outright */
	assert_int_equal(aws_parse_assume_role(dtd, strlen(dtd), &o, &w), EL_EPARSE);
	assert_int_equal(aws_parse_assume_role(ext, strlen(ext), &o, &w), EL_EPARSE);
	assert_non_null(strstr(w.msg, "DOCTYPE"));

	/* oversized: refused before parsing */
	big = malloc(AWS_MAX_RESPONSE + 2);
	assert_non_null(big);
	memset(big, ' ', AWS_MAX_RESPONSE + 1);
	memcpy(big, "<AssumeRoleResponse>", 20);
	big[AWS_MAX_RESPONSE + 1] = '\0';
	assert_int_equal(aws_parse_assume_role(big, AWS_MAX_RESPONSE + 1, &o, &w),
	    EL_ETOOBIG);
	free(big);
}

static void
caller_identity(void **state)
{
	static const char ok[] = "<GetCallerIdentityResponse " STS_NS ">"
	    "<GetCallerIdentityResult><Account>111122223333</Account>"
	    "<Arn>arn:aws:iam::111122223333:user/elevate-broker</Arn>"
	    "<UserId>AIDAEXAMPLE</UserId></GetCallerIdentityResult>"
	    "<ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>"
	    "</GetCallerIdentityResponse>";
	static const char noarn[] = "<GetCallerIdentityResponse><GetCallerIdentityResult>"
	    "<Account>1</Account></GetCallerIdentityResult></GetCallerIdentityResponse>";
	struct el_why w = {{0}};
	char arn[256], small[8];

	(void)state;
	assert_int_equal(aws_parse_caller_identity(ok, strlen(ok), arn, sizeof(arn), &w), EL_OK);
	assert_string_equal(arn, "arn:aws:iam::111122223333:user/elevate-broker");
	assert_int_equal(aws_parse_caller_identity(ok, strlen(ok), small, sizeof(small), &w),
	    EL_ETOOBIG);
	assert_int_equal(aws_parse_caller_identity(noarn, strlen(noarn), arn, sizeof(arn), &w),
	    EL_EPARSE);
	assert_non_null(strstr(w.msg, "Arn"));
}

/* ---------------------------------------------------------------- errors */

static void
query_error_sts(void **state)
{
	static const char sts[] =
	    "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
	    "  <Error>\n"
	    "    <Type>Sender</Type>\n"
	    "    <Code>AccessDenied</Code>\n"
	    "    <Message>User: arn:aws:iam::111122223333:user/elevate-broker is not "
	    "authorized to perform: sts:AssumeRole on resource: arn:aws:iam::111122223333:"
	    "role/ProdAdmin</Message>\n"
	    "  </Error>\n"
	    "  <RequestId>4b2a0d9c-0000-4000-8000-000000000001</RequestId>\n"
	    "</ErrorResponse>\n";
	/* children in another order: RequestId first, Message before Code */
	static const char reordered[] =
	    "<ErrorResponse><RequestId>rid-x</RequestId><Error><Message>Rate exceeded"
	    "</Message><Code>Throttling</Code><Type>Sender</Type></Error></ErrorResponse>";
	struct aws_error e;

	(void)state;
	assert_int_equal(aws_parse_query_error(sts, strlen(sts), 403, &e), EL_OK);
	assert_int_equal(e.http_status, 403);
	assert_string_equal(e.code, "AccessDenied");
	assert_non_null(strstr(e.message, "not authorized to perform: sts:AssumeRole"));
	assert_string_equal(e.request_id, "4b2a0d9c-0000-4000-8000-000000000001");
	assert_false(aws_error_retryable(&e));

	assert_int_equal(aws_parse_query_error(reordered, strlen(reordered), 400, &e), EL_OK);
	assert_string_equal(e.code, "Throttling");
	assert_string_equal(e.message, "Rate exceeded");
	assert_string_equal(e.request_id, "rid-x");
	assert_true(aws_error_retryable(&e));
}

static void
query_error_iam(void **state)
{
	static const char iam[] =
	    "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error>"
	    "<Type>Sender</Type><Code>NoSuchEntity</Code><Message>The role policy with name "
	    "elevate-revoke cannot be found.</Message></Error>"
	    "<RequestId>11111111-2222-3333-4444-555555555555</RequestId></ErrorResponse>";
	static const char limit[] =
	    "<ErrorResponse><Error><Code>LimitExceeded</Code><Message>Maximum policy size of "
	    "10240 bytes exceeded for role ProdReadOnly</Message></Error>"
	    "<RequestId>r</RequestId></ErrorResponse>";
	struct aws_error e;

	(void)state;
	assert_int_equal(aws_parse_query_error(iam, strlen(iam), 404, &e), EL_OK);
	assert_string_equal(e.code, "NoSuchEntity");
	assert_string_equal(e.request_id, "11111111-2222-3333-4444-555555555555");
	assert_false(aws_error_retryable(&e));
	/* IAM's LimitExceeded (409) is a quota, not throttling: never retried */
	assert_int_equal(aws_parse_query_error(limit, strlen(limit), 409, &e), EL_OK);
	assert_string_equal(e.code, "LimitExceeded");
	assert_false(aws_error_retryable(&e));
}

static void
query_error_ec2(void **state)
{
	static const char ec2[] =
	    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not "
	    "authorized to perform this operation.</Message></Error></Errors>"
	    "<RequestID>ec2-rid-1</RequestID></Response>";
	static const char throttle[] =
	    "<Response><RequestID>ec2-rid-2</RequestID><Errors><Error><Message>Request limit "
	    "exceeded.</Message><Code>RequestLimitExceeded</Code></Error></Errors></Response>";
	struct aws_error e;

	(void)state;
	assert_int_equal(aws_parse_query_error(ec2, strlen(ec2), 403, &e), EL_OK);
	assert_string_equal(e.code, "UnauthorizedOperation");
	assert_string_equal(e.request_id, "ec2-rid-1");
	assert_string_equal(e.message, "You are not authorized to perform this operation.");
	assert_false(aws_error_retryable(&e));
	assert_int_equal(aws_parse_query_error(throttle, strlen(throttle), 503, &e), EL_OK);
	assert_string_equal(e.code, "RequestLimitExceeded");
	assert_string_equal(e.request_id, "ec2-rid-2");
	assert_true(aws_error_retryable(&e));
}

static void
query_error_not_aws(void **state)
{
	static const char html[] =
	    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
	    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
	    "</body>\r\n</html>\r\n";
	static const char html5[] = "<!DOCTYPE html><html><body><p>Service Unavailable<br>"
	    "</body></html>";
	static const char nocode[] = "<ErrorResponse><Error><Message>m</Message></Error>"
	    "</ErrorResponse>";
	static const char other[] = "<Foo><Bar/></Foo>";
	struct aws_error e;

	(void)state;
	/* well-formed XHTML, but not an AWS error: EL_EPARSE, status and content shown */
	assert_int_equal(aws_parse_query_error(html, strlen(html), 502, &e), EL_EPARSE);
	assert_int_equal(e.http_status, 502);
	assert_string_equal(e.code, "");
	assert_non_null(strstr(e.message, "HTTP 502"));
	assert_non_null(strstr(e.message, "502 Bad Gateway"));
	assert_true(aws_error_retryable(&e));   /* 5xx: worth another attempt */
	/* not even XML */
	assert_int_equal(aws_parse_query_error(html5, strlen(html5), 503, &e), EL_EPARSE);
	assert_int_equal(e.http_status, 503);
	assert_string_equal(e.code, "");
	assert_non_null(strstr(e.message, "HTTP 503"));
	assert_non_null(strstr(e.message, "Service Unavailable"));
	/* empty body */
	assert_int_equal(aws_parse_query_error("", 0, 500, &e), EL_EPARSE);
	assert_non_null(strstr(e.message, "HTTP 500 with an empty body"));
	/* an error document without its Code */
	assert_int_equal(aws_parse_query_error(nocode, strlen(nocode), 400, &e), EL_EPARSE);
	assert_non_null(strstr(e.message, "Code"));
	assert_int_equal(aws_parse_query_error(other, strlen(other), 400, &e), EL_EPARSE);
	assert_non_null(strstr(e.message, "HTTP 400"));
	assert_false(aws_error_retryable(&e));
}

static void
json_errors(void **state)
{
	static const char ssm1[] = "{\"__type\":\"com.amazonaws.ssm#InvalidInstanceId\","
	    "\"message\":\"Instance i-0123 not connected\"}";
	static const char ssm2[] = "{\"__type\":\"AccessDeniedException\",\"Message\":"
	    "\"User is not authorized to perform: ssm:StartSession\"}";
	static const char thr[] = "{\"__type\":\"ThrottlingException\",\"message\":"
	    "\"Rate exceeded\"}";
	static const char colon[] = "{\"__type\":\"com.amazon.coral#ValidationException:"
	    "http://internal.amazon.com/coral/x/\",\"message\":\"bad\"}";
	static const char notype[] = "{\"message\":\"Forbidden\"}";
	static const char html[] = "<html><body>502 Bad Gateway</body></html>";
	static const char arr[] = "[1,2]";
	struct aws_error e;

	(void)state;
	assert_int_equal(aws_parse_json_error(ssm1, strlen(ssm1), 400, "rid-h", &e), EL_OK);
	assert_string_equal(e.code, "InvalidInstanceId");
	assert_string_equal(e.message, "Instance i-0123 not connected");
	assert_string_equal(e.request_id, "rid-h");
	assert_int_equal(e.http_status, 400);
	assert_false(aws_error_retryable(&e));

	assert_int_equal(aws_parse_json_error(ssm2, strlen(ssm2), 400, NULL, &e), EL_OK);
	assert_string_equal(e.code, "AccessDeniedException");
	assert_string_equal(e.message, "User is not authorized to perform: ssm:StartSession");
	assert_string_equal(e.request_id, "");

	assert_int_equal(aws_parse_json_error(thr, strlen(thr), 400, "r", &e), EL_OK);
	assert_string_equal(e.code, "ThrottlingException");
	assert_true(aws_error_retryable(&e));

	assert_int_equal(aws_parse_json_error(colon, strlen(colon), 400, "r", &e), EL_OK);
	assert_string_equal(e.code, "ValidationException");

	/* no __type: named by status, like botocore */
	assert_int_equal(aws_parse_json_error(notype, strlen(notype), 403, "r", &e), EL_OK);
	assert_string_equal(e.code, "403");
	assert_string_equal(e.message, "Forbidden");

	assert_int_equal(aws_parse_json_error(html, strlen(html), 502, "r", &e), EL_EPARSE);
	assert_int_equal(e.http_status, 502);
	assert_string_equal(e.code, "");
	assert_string_equal(e.request_id, "r");
	assert_non_null(strstr(e.message, "HTTP 502"));
	assert_non_null(strstr(e.message, "502 Bad Gateway"));
	assert_true(aws_error_retryable(&e));

	assert_int_equal(aws_parse_json_error(arr, strlen(arr), 400, NULL, &e), EL_EPARSE);
	assert_int_equal(aws_parse_json_error("", 0, 500, NULL, &e), EL_EPARSE);
	assert_non_null(strstr(e.message, "empty body"));
}

static void
retry_classes(void **state)
{
	static const char *const yes[] = {
		"Throttling", "ThrottlingException", "RequestLimitExceeded",
		"TooManyRequestsException", "RequestThrottled", "InternalError",
	};
	static const char *const no[] = {
		"AccessDenied", "ValidationError", "MalformedPolicyDocument", "NoSuchEntity",
		"LimitExceeded", "ExpiredToken", "SignatureDoesNotMatch", "",
	};
	struct aws_error e;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		memset(&e, 0, sizeof(e));
		e.http_status = 400;
		el_strlcpy(e.code, yes[i], sizeof(e.code));
		assert_true(aws_error_retryable(&e));
	}
	for (i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		memset(&e, 0, sizeof(e));
		e.http_status = 400;
		el_strlcpy(e.code, no[i], sizeof(e.code));
		assert_false(aws_error_retryable(&e));
	}
	memset(&e, 0, sizeof(e));
	e.http_status = 503;
	assert_true(aws_error_retryable(&e));
	e.http_status = 429;
	assert_true(aws_error_retryable(&e));
	e.http_status = 404;
	assert_false(aws_error_retryable(&e));
}

/* ---------------------------------------------------------------- IAM */

static void
get_role(void **state)
{
	static const char ok[] =
	    "<GetRoleResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\">"
	    "<GetRoleResult><Role><Path>/</Path>"
	    "<AssumeRolePolicyDocument>%7B%22Version%22%7D</AssumeRolePolicyDocument>"
	    "<MaxSessionDuration>43200</MaxSessionDuration>"
	    "<RoleId>AROA3XFRBF535PLBIFPI4</RoleId><RoleName>ProdReadOnly</RoleName>"
	    "<Arn>arn:aws:iam::111122223333:role/ProdReadOnly</Arn></Role></GetRoleResult>"
	    "<ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></GetRoleResponse>";
	static const char nomsd[] = "<GetRoleResponse><GetRoleResult><Role>"
	    "<RoleId>AROAX</RoleId></Role></GetRoleResult></GetRoleResponse>";
	static const char noid[] = "<GetRoleResponse><GetRoleResult><Role>"
	    "<MaxSessionDuration>3600</MaxSessionDuration></Role></GetRoleResult>"
	    "</GetRoleResponse>";
	static const char badmsd[] = "<GetRoleResponse><GetRoleResult><Role>"
	    "<RoleId>AROAX</RoleId><MaxSessionDuration>1h</MaxSessionDuration></Role>"
	    "</GetRoleResult></GetRoleResponse>";
	struct el_why w = {{0}};
	char id[64];
	int msd = 0;

	(void)state;
	assert_int_equal(aws_parse_get_role(ok, strlen(ok), id, sizeof(id), &msd, &w), EL_OK);
	assert_string_equal(id, "AROA3XFRBF535PLBIFPI4");
	assert_int_equal(msd, 43200);
	assert_int_equal(aws_parse_get_role(nomsd, strlen(nomsd), id, sizeof(id), &msd, &w),
	    EL_OK);
	assert_string_equal(id, "AROAX");
	assert_int_equal(msd, 3600);
	assert_int_equal(aws_parse_get_role(noid, strlen(noid), id, sizeof(id), &msd, &w),
	    EL_EPARSE);
	assert_non_null(strstr(w.msg, "RoleId"));
	assert_int_equal(aws_parse_get_role(badmsd, strlen(badmsd), id, sizeof(id), &msd, &w),
	    EL_EPARSE);
	assert_non_null(strstr(w.msg, "MaxSessionDuration"));
}

/* ---------------------------------------------------------------- SSM */

static void
start_session(void **state)
{
	static const char ok[] = "{\"SessionId\":\"alice-0a1b2c3d4e5f\",\"TokenValue\":"
	    "\"AAEAAf...\",\"StreamUrl\":\"wss://ssmmessages.ap-northeast-1.amazonaws.com/"
	    "v1/data-channel/alice-0a1b2c3d4e5f?role=publish_subscribe\"}";
	static const char notok[] = "{\"SessionId\":\"s\",\"StreamUrl\":\"wss://x\"}";
	static const char numid[] = "{\"SessionId\":5,\"TokenValue\":\"t\",\"StreamUrl\":\"u\"}";
	struct el_why w = {{0}};
	json_t *j;

	(void)state;
	assert_int_equal(aws_parse_start_session(ok, strlen(ok), &j, &w), EL_OK);
	assert_string_equal(json_string_value(json_object_get(j, "SessionId")),
	    "alice-0a1b2c3d4e5f");
	json_decref(j);
	assert_int_equal(aws_parse_start_session(notok, strlen(notok), &j, &w), EL_EPARSE);
	assert_null(j);
	assert_non_null(strstr(w.msg, "TokenValue"));
	assert_int_equal(aws_parse_start_session(numid, strlen(numid), &j, &w), EL_EPARSE);
	assert_non_null(strstr(w.msg, "SessionId"));
	assert_int_equal(aws_parse_start_session("not json", 8, &j, &w), EL_EPARSE);
}

static void
describe_sessions(void **state)
{
	static const char p1[] = "{\"Sessions\":["
	    "{\"SessionId\":\"s-1\",\"Target\":\"i-0123456789abcdef0\",\"Status\":\"Connected\","
	    "\"StartDate\":1.7e9,\"Owner\":\"arn:aws:sts::111122223333:assumed-role/"
	    "ProdReadOnly/elevate-req_1\"},"
	    "{\"SessionId\":\"s-2\",\"Owner\":\"arn:aws:sts::111122223333:assumed-role/"
	    "ProdReadOnly/elevate-req_2\"},"
	    "{\"Owner\":\"arn:aws:sts::111122223333:assumed-role/ProdReadOnly/elevate-req_1\","
	    "\"SessionId\":\"s-3\",\"Status\":\"Disconnected\"}"
	    "],\"NextToken\":\"page2\"}";
	static const char p2[] = "{\"Sessions\":[]}";
	static const char bad[] = "{\"NextToken\":\"x\"}";
	static const char noid[] = "{\"Sessions\":[{\"Owner\":\"o\"}]}";
	const char *owner = "arn:aws:sts::111122223333:assumed-role/ProdReadOnly/elevate-req_1";
	struct aws_ids ids;
	struct el_why w = {{0}};
	char *next;

	(void)state;
	memset(&ids, 0, sizeof(ids));
	assert_int_equal(aws_parse_describe_sessions(p1, strlen(p1), owner, &ids, &next, &w),
	    EL_OK);
	assert_int_equal(ids.n, 2);
	assert_string_equal(ids.v[0], "s-1");
	assert_string_equal(ids.v[1], "s-3");
	assert_string_equal(next, "page2");
	free(next);
	assert_int_equal(aws_parse_describe_sessions(p2, strlen(p2), owner, &ids, &next, &w),
	    EL_OK);
	assert_int_equal(ids.n, 2);
	assert_null(next);
	aws_ids_free(&ids);
	/* owner NULL: every session */
	assert_int_equal(aws_parse_describe_sessions(p1, strlen(p1), NULL, &ids, &next, &w),
	    EL_OK);
	assert_int_equal(ids.n, 3);
	free(next);
	aws_ids_free(&ids);
	assert_int_equal(aws_parse_describe_sessions(bad, strlen(bad), owner, &ids, &next, &w),
	    EL_EPARSE);
	assert_non_null(strstr(w.msg, "Sessions"));
	assert_int_equal(aws_parse_describe_sessions(noid, strlen(noid), owner, &ids, &next,
	    &w), EL_EPARSE);
	assert_non_null(strstr(w.msg, "SessionId"));
	aws_ids_free(&ids);
}

/* ---------------------------------------------------------------- EC2 */

static void
describe_instances(void **state)
{
	static const char p1[] =
	    "<DescribeInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\n"
	    "  <requestId>8f7724cf-496f-496e-8fe3-example</requestId>\n"
	    "  <reservationSet>\n"
	    "    <item><reservationId>r-1</reservationId><ownerId>111122223333</ownerId>\n"
	    "      <groupSet/>\n"
	    "      <instancesSet>\n"
	    "        <item><instanceId>i-0123456789abcdef0</instanceId>\n"
	    "          <tagSet><item><key>env</key><value>prod</value></item></tagSet>\n"
	    "          <instanceState><code>16</code><name>running</name></instanceState>\n"
	    "        </item>\n"
	    "        <item><tagSet/><instanceId>i-0123456789abcdef1</instanceId></item>\n"
	    "      </instancesSet>\n"
	    "    </item>\n"
	    "    <item><instancesSet><item><instanceId>i-0fedcba9876543210</instanceId></item>"
	    "</instancesSet><reservationId>r-2</reservationId></item>\n"
	    "  </reservationSet>\n"
	    "  <nextToken>tok2</nextToken>\n"
	    "</DescribeInstancesResponse>\n";
	static const char empty[] = "<DescribeInstancesResponse><requestId>x</requestId>"
	    "<reservationSet/></DescribeInstancesResponse>";
	static const char noid[] = "<DescribeInstancesResponse><reservationSet><item>"
	    "<instancesSet><item><imageId>ami-1</imageId></item></instancesSet></item>"
	    "</reservationSet></DescribeInstancesResponse>";
	static const char noset[] = "<DescribeInstancesResponse><requestId>x</requestId>"
	    "</DescribeInstancesResponse>";
	struct aws_ids ids;
	struct el_why w = {{0}};
	char *next;

	(void)state;
	memset(&ids, 0, sizeof(ids));
	assert_int_equal(aws_parse_describe_instances(p1, strlen(p1), &ids, &next, &w), EL_OK);
	assert_int_equal(ids.n, 3);
	assert_string_equal(ids.v[0], "i-0123456789abcdef0");
	assert_string_equal(ids.v[1], "i-0123456789abcdef1");
	assert_string_equal(ids.v[2], "i-0fedcba9876543210");
	assert_string_equal(next, "tok2");
	free(next);
	assert_int_equal(aws_parse_describe_instances(empty, strlen(empty), &ids, &next, &w),
	    EL_OK);
	assert_int_equal(ids.n, 3);
	assert_null(next);
	aws_ids_free(&ids);
	assert_int_equal(aws_parse_describe_instances(noid, strlen(noid), &ids, &next, &w),
	    EL_EPARSE);
	assert_non_null(strstr(w.msg, "instanceId"));
	assert_int_equal(aws_parse_describe_instances(noset, strlen(noset), &ids, &next, &w),
	    EL_EPARSE);
	assert_non_null(strstr(w.msg, "reservationSet"));
	aws_ids_free(&ids);
}

/* ---------------------------------------------------------------- credentials JSON */

static void
json_creds(void **state)
{
	static const char imds[] = "{\"Code\":\"Success\",\"LastUpdated\":"
	    "\"2026-11-22T02:00:00Z\",\"Type\":\"AWS-HMAC\",\"AccessKeyId\":\"ASIAIMDS\","
	    "\"SecretAccessKey\":\"imds-secret\",\"Token\":\"imds-token\",\"Expiration\":"
	    "\"2026-11-22T03:26:00Z\"}";
	static const char container[] = "{\"AccessKeyId\":\"ASIACONT\",\"SecretAccessKey\":"
	    "\"c-secret\",\"Token\":\"c-token\",\"Expiration\":\"2026-11-22T03:26:00.000Z\","
	    "\"RoleArn\":\"arn:aws:iam::1:role/x\"}";
	static const char failed[] = "{\"Code\":\"AssumeRoleUnauthorizedAccess\","
	    "\"Message\":\"...\"}";
	static const char nosecret[] = "{\"AccessKeyId\":\"A\",\"Token\":\"t\"}";
	static const char badexp[] = "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"s\","
	    "\"Expiration\":\"soon\"}";
	struct aws_creds c;
	struct el_why w = {{0}};

	(void)state;
	assert_int_equal(aws_parse_json_creds(imds, strlen(imds), "imds", &c, &w), EL_OK);
	assert_string_equal(c.access_key_id, "ASIAIMDS");
	assert_string_equal(c.secret_access_key, "imds-secret");
	assert_string_equal(c.session_token, "imds-token");
	assert_int_equal(c.expiration, EXP_EPOCH);
	assert_string_equal(c.source, "imds");
	aws_creds_clear(&c);
	assert_int_equal(aws_parse_json_creds(container, strlen(container), "container", &c,
	    &w), EL_OK);
	assert_string_equal(c.session_token, "c-token");
	assert_int_equal(c.expiration, EXP_EPOCH);
	aws_creds_clear(&c);
	assert_int_equal(aws_parse_json_creds(failed, strlen(failed), "imds", &c, &w), EL_EAUTH);
	assert_non_null(strstr(w.msg, "AssumeRoleUnauthorizedAccess"));
	assert_int_equal(aws_parse_json_creds(nosecret, strlen(nosecret), "imds", &c, &w),
	    EL_EPARSE);
	assert_non_null(strstr(w.msg, "SecretAccessKey"));
	assert_int_equal(aws_parse_json_creds(badexp, strlen(badexp), "imds", &c, &w),
	    EL_EPARSE);
	assert_non_null(strstr(w.msg, "Expiration"));
	assert_null(c.secret_access_key);
}

static void
creds_copy_clear(void **state)
{
	struct aws_creds a, b;
	char *longid;

	(void)state;
	assert_int_equal(aws_creds_set(&a, "AKID", "secret", "token", 42, "environment"), EL_OK);
	assert_int_equal(aws_creds_copy(&b, &a), EL_OK);
	assert_ptr_not_equal(a.secret_access_key, b.secret_access_key);
	assert_string_equal(b.secret_access_key, "secret");
	assert_string_equal(b.session_token, "token");
	assert_int_equal(b.expiration, 42);
	assert_string_equal(b.source, "environment");
	aws_creds_clear(&a);
	assert_null(a.secret_access_key);
	assert_string_equal(a.access_key_id, "");
	assert_string_equal(b.secret_access_key, "secret");   /* independent copy */
	aws_creds_clear(&b);
	aws_creds_clear(NULL);
	/* empty token means none; missing secret is refused */
	assert_int_equal(aws_creds_set(&a, "AKID", "s", "", 0, NULL), EL_OK);
	assert_null(a.session_token);
	aws_creds_clear(&a);
	assert_int_equal(aws_creds_set(&a, "AKID", NULL, NULL, 0, NULL), EL_EINVAL);
	longid = malloc(200);
	assert_non_null(longid);
	memset(longid, 'A', 199);
	longid[199] = '\0';
	assert_int_equal(aws_creds_set(&a, longid, "s", NULL, 0, NULL), EL_EINVAL);
	free(longid);
}

/* ---------------------------------------------------------------- client config */

static void
client_endpoints(void **state)
{
	struct aws_config cfg;
	struct aws_client *c;
	struct el_why w = {{0}};
	char url[256];

	(void)state;
	unsetenv("AWS_ENDPOINT_URL");
	unsetenv("AWS_ENDPOINT_URL_STS");
	unsetenv("AWS_ENDPOINT_URL_IAM");
	unsetenv("AWS_ENDPOINT_URL_SSM");
	unsetenv("AWS_ENDPOINT_URL_EC2");
	unsetenv("AWS_ENDPOINT_URL_S3");
	unsetenv("AWS_REGION");
	unsetenv("AWS_DEFAULT_REGION");
	memset(&cfg, 0, sizeof(cfg));
	cfg.region = "ap-northeast-1";
	assert_int_equal(aws_client_new(&cfg, &c, &w), EL_OK);
	assert_int_equal(aws_endpoint_url(c, "sts", NULL, url, sizeof(url), &w), EL_OK);
	assert_string_equal(url, "https://sts.ap-northeast-1.amazonaws.com/");
	assert_int_equal(aws_endpoint_url(c, "ssm", "eu-west-1", url, sizeof(url), &w), EL_OK);
	assert_string_equal(url, "https://ssm.eu-west-1.amazonaws.com/");
	assert_int_equal(aws_endpoint_url(c, "iam", NULL, url, sizeof(url), &w), EL_OK);
	assert_string_equal(url, "https://iam.amazonaws.com/");
	assert_int_equal(aws_endpoint_url(c, "ec2", NULL, url, sizeof(url), &w), EL_OK);
	assert_string_equal(url, "https://ec2.ap-northeast-1.amazonaws.com/");
	assert_int_equal(aws_endpoint_url(c, "ssm", "bad/region", url, sizeof(url), &w),
	    EL_EINVAL);
	assert_int_equal(aws_endpoint_url(c, "s3", NULL, url, sizeof(url), &w), EL_OK);
	assert_string_equal(url, "https://s3.ap-northeast-1.amazonaws.com/");
	assert_int_equal(aws_endpoint_url(c, "sqs", NULL, url, sizeof(url), &w), EL_EINVAL);
	aws_client_free(c);

	/* precedence: config per service, env per service, config all, env all */
	setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1111", 1);
	setenv("AWS_ENDPOINT_URL_SSM", "http://127.0.0.1:2222/", 1);
	cfg.endpoint_all = "http://localhost:3333";
	cfg.endpoint_iam = "http://[::1]:4444/";
	assert_int_equal(aws_client_new(&cfg, &c, &w), EL_OK);
	assert_int_equal(aws_endpoint_url(c, "iam", NULL, url, sizeof(url), &w), EL_OK);
	assert_string_equal(url, "http://[::1]:4444/");
	assert_int_equal(aws_endpoint_url(c, "ssm", NULL, url, sizeof(url), &w), EL_OK);
	assert_string_equal(url, "http://127.0.0.1:2222/");
	assert_int_equal(aws_endpoint_url(c, "sts", NULL, url, sizeof(url), &w), EL_OK);
	assert_string_equal(url, "http://localhost:3333");
	aws_client_free(c);
	cfg.endpoint_all = NULL;
	cfg.endpoint_iam = NULL;
	assert_int_equal(aws_client_new(&cfg, &c, &w), EL_OK);
	assert_int_equal(aws_endpoint_url(c, "ec2", NULL, url, sizeof(url), &w), EL_OK);
	assert_string_equal(url, "http://127.0.0.1:1111");
	aws_client_free(c);
	unsetenv("AWS_ENDPOINT_URL");
	unsetenv("AWS_ENDPOINT_URL_SSM");

	/* bad endpoints are configuration errors that name the service */
	cfg.endpoint_sts = "ftp://example.com/";
	assert_int_equal(aws_client_new(&cfg, &c, &w), EL_ECONFIG);
	assert_null(c);
	assert_non_null(strstr(w.msg, "sts"));
	cfg.endpoint_sts = "http://user:pw@example.com/";
	assert_int_equal(aws_client_new(&cfg, &c, &w), EL_ECONFIG);
	cfg.endpoint_sts = NULL;
	cfg.region = "Not A Region";
	assert_int_equal(aws_client_new(&cfg, &c, &w), EL_ECONFIG);

	/* no region: regional services say so, IAM still works */
	cfg.region = NULL;
	assert_int_equal(aws_client_new(&cfg, &c, &w), EL_OK);
	assert_int_equal(aws_endpoint_url(c, "sts", NULL, url, sizeof(url), &w), EL_ECONFIG);
	assert_non_null(strstr(w.msg, "region"));
	assert_int_equal(aws_endpoint_url(c, "iam", NULL, url, sizeof(url), &w), EL_OK);
	aws_client_free(c);
}

/* Input checks happen before any network I/O: an unreachable endpoint proves it. */
static void
assume_role_input_checks(void **state)
{
	struct aws_config cfg;
	struct aws_client *c;
	struct aws_assume_role_in in;
	struct aws_assume_role_out out;
	struct aws_error e;
	struct aws_tag tags[51];
	struct el_why w = {{0}};
	size_t i;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.region = "us-east-1";
	cfg.endpoint_all = "http://127.0.0.1:9";
	assert_int_equal(aws_client_new(&cfg, &c, &w), EL_OK);
	memset(&in, 0, sizeof(in));
	in.role_arn = "arn:aws:iam::111122223333:role/ProdReadOnly";
	in.role_session_name = "a";
	assert_int_equal(aws_sts_assume_role(c, &in, &out, &e), EL_EINVAL);
	assert_non_null(strstr(e.message, "RoleSessionName"));
	assert_string_equal(e.code, "");
	in.role_session_name = "elevate-req_1";
	in.source_identity = "aws:alice";
	assert_int_equal(aws_sts_assume_role(c, &in, &out, &e), EL_EINVAL);
	assert_non_null(strstr(e.message, "SourceIdentity"));
	in.source_identity = "alice";
	in.duration_seconds = 600;
	assert_int_equal(aws_sts_assume_role(c, &in, &out, &e), EL_EINVAL);
	assert_non_null(strstr(e.message, "DurationSeconds"));
	in.duration_seconds = 900;
	for (i = 0; i < 51; i++)
		tags[i] = (struct aws_tag){"k", "v"};
	in.tags = tags;
	in.ntags = 51;
	assert_int_equal(aws_sts_assume_role(c, &in, &out, &e), EL_EINVAL);
	in.ntags = 1;
	in.role_arn = "ProdReadOnly";
	assert_int_equal(aws_sts_assume_role(c, &in, &out, &e), EL_EINVAL);
	assert_non_null(strstr(e.message, "ARN"));
	assert_int_equal(aws_iam_get_role(c, "bad name", (char[32]){0}, 32, NULL, &e),
	    EL_EINVAL);
	aws_client_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(form_encoding),
		cmocka_unit_test(names),
		cmocka_unit_test(assume_role_ok),
		cmocka_unit_test(assume_role_out_of_order_with_ms),
		cmocka_unit_test(assume_role_huge_token),
		cmocka_unit_test(assume_role_missing_fields),
		cmocka_unit_test(assume_role_invalid),
		cmocka_unit_test(caller_identity),
		cmocka_unit_test(query_error_sts),
		cmocka_unit_test(query_error_iam),
		cmocka_unit_test(query_error_ec2),
		cmocka_unit_test(query_error_not_aws),
		cmocka_unit_test(json_errors),
		cmocka_unit_test(retry_classes),
		cmocka_unit_test(get_role),
		cmocka_unit_test(start_session),
		cmocka_unit_test(describe_sessions),
		cmocka_unit_test(describe_instances),
		cmocka_unit_test(json_creds),
		cmocka_unit_test(creds_copy_clear),
		cmocka_unit_test(client_endpoints),
		cmocka_unit_test(assume_role_input_checks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
