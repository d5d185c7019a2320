/*
 * aws_iam.c — owns the IAM calls elevate makes on target roles: GetRole (role id and
 * MaxSessionDuration) and Get/Put/DeleteRolePolicy (the early-revoke deny policy), on
 * the global endpoint signed us-east-1, Query protocol.
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

#define IAM_VERSION "2010-05-08"
#define IAM_POLICY_MAX (128 * 1024)     /* far above IAM's own 10,240 (inline, per role) */

enum el_err
aws_parse_get_role(const char *xml, size_t len, char *role_id, size_t idlen,
    int *max_session_duration, struct el_why *w)
{
	xmlDocPtr doc = NULL;
	xmlNodePtr res, role, n;
	char num[32];
	long long v = 3600;             /* IAM's default when a role does not say */
	enum el_err r;

	if ((r = aws_xml_read(xml, len, &doc, w)) != EL_OK)
		return r;
	if ((r = aws_xml_result(doc, "GetRole", &res, w)) != EL_OK)
		goto out;
	if ((role = aws_xml_child(res, "Role")) == NULL) {
		r = el_fail(w, EL_EPARSE, "response has no Role");
		goto out;
	}
	if ((r = aws_xml_copy(aws_xml_child(role, "RoleId"), "RoleId", role_id, idlen, w)) !=
	    EL_OK)
		goto out;
	if ((n = aws_xml_child(role, "MaxSessionDuration")) != NULL &&
	    (aws_xml_copy(n, "MaxSessionDuration", num, sizeof(num), w) != EL_OK ||
	    el_parse_int(num, 1, INT_MAX, &v) != EL_OK)) {
		r = el_fail(w, EL_EPARSE, "MaxSessionDuration is not a positive number");
		goto out;
	}
	if (max_session_duration != NULL)
		*max_session_duration = (int)v;
out:
	aws_xml_free(doc);
	return r;
}

static enum el_err
check_names(const char *what, const char *role, const char *policy, struct aws_error *err)
{
	if (!aws_name_ok(role, 1, 64)) {
		aws_error_set(err, 0, NULL, "%s: role name '%s' is not 1-64 characters of "
		    "[A-Za-z0-9_+=,.@-]", what, role ? role : "");
		return EL_EINVAL;
	}
	if (policy != NULL && !aws_name_ok(policy, 1, 128)) {
		aws_error_set(err, 0, NULL, "%s: policy name '%s' is not 1-128 characters of "
		    "[A-Za-z0-9_+=,.@-]", what, policy);
		return EL_EINVAL;
	}
	return EL_OK;
}

/*
 * Builds and sends one IAM Query call; params are name/value pairs (NULL-terminated).
 * NoSuchEntity becomes EL_ENOENT (err still filled).
 */
static enum el_err
iam_call(struct aws_client *c, const char *action, struct aws_resp *resp,
    struct aws_error *err, const char *const *params)
{
	struct aws_call call;
	struct aws_error tmp;
	struct dbuf body;
	size_t i;
	enum el_err r;

	if (err == NULL)
		err = &tmp;
	dbuf_init(&body, AWS_MAX_REQUEST);
	r = aws_form_add(&body, "Action", action);
	if (r == EL_OK)
		r = aws_form_add(&body, "Version", IAM_VERSION);
	for (i = 0; r == EL_OK && params[i] != NULL; i += 2)
		r = aws_form_add(&body, params[i], params[i + 1]);
	if (r != EL_OK) {
		aws_error_set(err, 0, NULL, "%s: request too large", action);
		goto out;
	}
	memset(&call, 0, sizeof(call));
	call.svc = AWS_SVC_IAM;
	call.action = action;
	call.proto = AWS_PROTO_QUERY;
	call.body = body.p;
	call.body_len = body.len;
	call.quiet_code = "NoSuchEntity";
	r = aws_call_do(c, &call, resp, err);
	if (r == EL_EAWS && strcmp(err->code, "NoSuchEntity") == 0)
		r = EL_ENOENT;
out:
	dbuf_free(&body);
	return r;
}

enum el_err
aws_iam_get_role(struct aws_client *c, const char *role_name, char *role_id, size_t idlen,
    int *max_session_duration, struct aws_error *err)
{
	const char *params[] = {"RoleName", role_name, NULL};
	struct aws_resp resp;
	struct el_why w = {{0}};
	enum el_err r;

	if ((r = check_names("GetRole", role_name, NULL, err)) != EL_OK)
		return r;
	aws_resp_init(&resp);
	if ((r = iam_call(c, "GetRole", &resp, err, params)) != EL_OK)
		goto out;
	if ((r = aws_parse_get_role(resp.body.p, resp.body.len, role_id, idlen,
	    max_session_duration, &w)) != EL_OK)
		aws_error_set(err, resp.status, resp.request_id, "GetRole: %s", w.msg);
out:
	aws_resp_free(&resp);
	return r;
}

enum el_err
aws_iam_put_role_policy(struct aws_client *c, const char *role_name, const char *policy_name,
    const char *doc, struct aws_error *err)
{
	const char *params[] = {"RoleName", role_name, "PolicyName", policy_name,
	    "PolicyDocument", doc, NULL};
	struct aws_resp resp;
	enum el_err r;

	if ((r = check_names("PutRolePolicy", role_name, policy_name, err)) != EL_OK)
		return r;
	if (doc == NULL || *doc == '\0' || strlen(doc) > IAM_POLICY_MAX) {
		aws_error_set(err, 0, NULL, "PutRolePolicy: empty or oversized policy document");
		return EL_EINVAL;
	}
	aws_resp_init(&resp);
	r = iam_call(c, "PutRolePolicy", &resp, err, params);
	aws_resp_free(&resp);
	return r;
}

enum el_err
aws_iam_delete_role_policy(struct aws_client *c, const char *role_name,
    const char *policy_name, struct aws_error *err)
{
	const char *params[] = {"RoleName", role_name, "PolicyName", policy_name, NULL};
	struct aws_resp resp;
	enum el_err r;

	if ((r = check_names("DeleteRolePolicy", role_name, policy_name, err)) != EL_OK)
		return r;
	aws_resp_init(&resp);
	r = iam_call(c, "DeleteRolePolicy", &resp, err, params);
	aws_resp_free(&resp);
	return r;
}
