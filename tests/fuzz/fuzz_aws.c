/*
 * fuzz_aws.c — libFuzzer harness for the AWS response parsers (aws_internal.h): what
 * comes back from STS, IAM, SSM and EC2 — or from whatever answers on that address (a
 * proxy, a captive portal, a test double). The first input byte picks the parser, the
 * rest is the response body. Besides "no crash, no UB, no leak": a failed parse leaves
 * no credentials behind, and an error document always yields a message.
 * Build: see README.md.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "elevate/aws.h"
#include "elevate/aws_internal.h"
#include "elevate/el.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum which {
	P_ASSUME_ROLE,          /* STS AssumeRole XML */
	P_QUERY_ERROR,          /* STS/IAM/EC2 error XML */
	P_JSON_ERROR,           /* SSM error JSON */
	P_DESCRIBE_SESSIONS,    /* SSM DescribeSessions JSON */
	P_DESCRIBE_INSTANCES,   /* EC2 DescribeInstances XML */
	P_GET_ROLE,             /* IAM GetRole XML */
	P_CALLER_IDENTITY,      /* STS GetCallerIdentity XML */
	P_START_SESSION,        /* SSM StartSession JSON */
	P_JSON_CREDS,           /* container / IMDS credentials JSON */
	P__COUNT
};

static const char owner[] = "arn:aws:sts::111122223333:assumed-role/ProdReadOnly/elevate-req_1";

/* Both error parsers share this contract (aws_internal.h). */
static void
check_error(enum el_err e, const struct aws_error *err, int status)
{
	/* EL_OK: an AWS error with a code; EL_EPARSE: a message saying what came instead. */
	if (err->http_status != status || (e == EL_OK && err->code[0] == '\0') ||
	    (e != EL_OK && err->message[0] == '\0'))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct el_why w = {{0}};
	struct aws_assume_role_out ar;
	struct aws_creds cr;
	struct aws_error err;
	struct aws_ids ids;
	const char *body;
	char buf[512], *next;
	json_t *j;
	enum el_err e;
	size_t len;
	int msd;

	if (size == 0 || size > AWS_MAX_RESPONSE)
		return 0;
	body = (const char *)data + 1;
	len = size - 1;
	memset(&ids, 0, sizeof(ids));

	switch (data[0] % P__COUNT) {
	case P_ASSUME_ROLE:
		e = aws_parse_assume_role(body, len, &ar, &w);
		if (e == EL_OK) {
			if (ar.creds.secret_access_key == NULL || ar.creds.session_token == NULL ||
			    ar.creds.access_key_id[0] == '\0' || ar.assumed_role_arn[0] == '\0' ||
			    ar.assumed_role_id[0] == '\0')
				abort();
		} else if (ar.creds.secret_access_key != NULL || ar.creds.session_token != NULL ||
		    w.msg[0] == '\0')
			abort();
		aws_creds_clear(&ar.creds);
		break;
	case P_QUERY_ERROR:
		memset(&err, 0, sizeof(err));
		e = aws_parse_query_error(body, len, 400, &err);
		check_error(e, &err, 400);
		break;
	case P_JSON_ERROR:
		memset(&err, 0, sizeof(err));
		e = aws_parse_json_error(body, len, 400, "rid-1", &err);
		check_error(e, &err, 400);
		break;
	case P_DESCRIBE_SESSIONS:
		/* With an owner filter, then without: the second pass appends to the same list,
		 * as the paginated caller does. */
		next = NULL;
		if (aws_parse_describe_sessions(body, len, owner, &ids, &next, &w) == EL_OK)
			free(next);
		else if (next != NULL)
			abort();
		next = NULL;
		if (aws_parse_describe_sessions(body, len, NULL, &ids, &next, &w) == EL_OK)
			free(next);
		else if (next != NULL)
			abort();
		if (ids.n > AWS_MAX_IDS)
			abort();
		aws_ids_free(&ids);
		break;
	case P_DESCRIBE_INSTANCES:
		next = NULL;
		if (aws_parse_describe_instances(body, len, &ids, &next, &w) == EL_OK)
			free(next);
		else if (next != NULL)
			abort();
		if (ids.n > AWS_MAX_IDS)
			abort();
		aws_ids_free(&ids);
		break;
	case P_GET_ROLE:
		msd = 0;
		if (aws_parse_get_role(body, len, buf, sizeof(buf), &msd, &w) == EL_OK &&
		    (buf[0] == '\0' || msd <= 0))
			abort();
		break;
	case P_CALLER_IDENTITY:
		if (aws_parse_caller_identity(body, len, buf, sizeof(buf), &w) == EL_OK &&
		    buf[0] == '\0')
			abort();
		break;
	case P_START_SESSION:
		j = NULL;
		if (aws_parse_start_session(body, len, &j, &w) == EL_OK) {
			if (!json_is_string(json_object_get(j, "SessionId")) ||
			    !json_is_string(json_object_get(j, "TokenValue")) ||
			    !json_is_string(json_object_get(j, "StreamUrl")))
				abort();
			json_decref(j);
		} else if (j != NULL)
			abort();
		break;
	case P_JSON_CREDS:
		memset(&cr, 0, sizeof(cr));
		if (aws_parse_json_creds(body, len, "fuzz", &cr, &w) == EL_OK &&
		    cr.secret_access_key == NULL)
			abort();
		aws_creds_clear(&cr);
		break;
	}
	return 0;
}
