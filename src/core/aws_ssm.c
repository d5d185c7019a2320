/*
 * aws_ssm.c — owns the SSM Session Manager calls (JSON 1.1 protocol): StartSession with
 * the grant's credentials, TerminateSession and the paged DescribeSessions the reaper
 * uses with the broker's, and the parsing of their answers.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "elevate/aws.h"
#include "elevate/aws_internal.h"
#include "elevate/el.h"

#define SSM_PAGE_SIZE 200               /* DescribeSessions' maximum MaxResults */

static enum el_err
load_object(const char *json, size_t len, json_t **out, struct el_why *w)
{
	json_error_t je;

	*out = NULL;
	if (len > AWS_MAX_RESPONSE)
		return el_fail(w, EL_ETOOBIG, "JSON document over %d bytes", AWS_MAX_RESPONSE);
	if (json == NULL || len == 0)
		return el_fail(w, EL_EPARSE, "empty body where JSON was expected");
	if ((*out = json_loadb(json, len, 0, &je)) == NULL)
		return el_fail(w, EL_EPARSE, "not JSON: %s (line %d)", je.text, je.line);
	if (!json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		return el_fail(w, EL_EPARSE, "JSON answer is not an object");
	}
	return EL_OK;
}

enum el_err
aws_parse_start_session(const char *json, size_t len, json_t **out, struct el_why *w)
{
	static const char *const need[] = {"SessionId", "TokenValue", "StreamUrl"};
	json_t *j, *v;
	size_t i;
	enum el_err r;

	*out = NULL;
	if ((r = load_object(json, len, &j, w)) != EL_OK)
		return r;
	for (i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		v = json_object_get(j, need[i]);
		if (!json_is_string(v) || json_string_length(v) == 0) {
			json_decref(j);
			return el_fail(w, EL_EPARSE, "response has no %s", need[i]);
		}
	}
	*out = j;
	return EL_OK;
}

enum el_err
aws_parse_describe_sessions(const char *json, size_t len, const char *owner_arn,
    struct aws_ids *ids, char **next_token, struct el_why *w)
{
	json_t *j, *sessions, *s, *id, *owner, *next;
	size_t i;
	enum el_err r;

	*next_token = NULL;
	if ((r = load_object(json, len, &j, w)) != EL_OK)
		return r;
	sessions = json_object_get(j, "Sessions");
	if (!json_is_array(sessions)) {
		r = el_fail(w, EL_EPARSE, "response has no Sessions list");
		goto out;
	}
	json_array_foreach(sessions, i, s) {
		id = json_object_get(s, "SessionId");
		owner = json_object_get(s, "Owner");
		if (!json_is_string(id) || json_string_length(id) == 0) {
			r = el_fail(w, EL_EPARSE, "Sessions[%zu] has no SessionId", i);
			goto out;
		}
		/* The filter is server-side too; checking again costs nothing and protects
		 * another grant's sessions from a lax endpoint. */
		if (owner_arn != NULL && (!json_is_string(owner) ||
		    strcmp(json_string_value(owner), owner_arn) != 0))
			continue;
		if ((r = aws_ids_add(ids, json_string_value(id))) != EL_OK) {
			r = el_fail(w, r, r == EL_ETOOBIG ? "more than %d sessions" :
			    "out of memory (%d)", AWS_MAX_IDS);
			goto out;
		}
	}
	next = json_object_get(j, "NextToken");
	if (json_is_string(next) && json_string_length(next) > 0 &&
	    (*next_token = strdup(json_string_value(next))) == NULL) {
		r = el_fail(w, EL_ENOMEM, "out of memory");
		goto out;
	}
	r = EL_OK;
out:
	json_decref(j);
	return r;
}

/* Sends one SSM call with a JSON body (borrowed). */
static enum el_err
ssm_call(struct aws_client *c, const struct aws_creds *as, const char *region,
    const char *action, json_t *req, struct aws_resp *resp, struct aws_error *err)
{
	struct aws_call call;
	char *body;
	enum el_err r;

	if ((body = json_dumps(req, JSON_COMPACT)) == NULL) {
		aws_error_set(err, 0, NULL, "%s: cannot encode the request", action);
		return EL_ENOMEM;
	}
	if (strlen(body) > AWS_MAX_REQUEST) {
		free(body);
		aws_error_set(err, 0, NULL, "%s: request too large", action);
		return EL_ETOOBIG;
	}
	memset(&call, 0, sizeof(call));
	call.svc = AWS_SVC_SSM;
	call.action = action;
	call.region = region;
	call.as = as;
	call.proto = AWS_PROTO_JSON;
	call.body = body;
	call.body_len = strlen(body);
	r = aws_call_do(c, &call, resp, err);
	free(body);
	return r;
}

enum el_err
aws_ssm_start_session(struct aws_client *c, const struct aws_creds *as, const char *region,
    json_t *request, json_t **response, struct aws_error *err)
{
	struct aws_resp resp;
	struct el_why w = {{0}};
	json_t *t;
	enum el_err r;

	*response = NULL;
	t = json_is_object(request) ? json_object_get(request, "Target") : NULL;
	if (!json_is_string(t) || json_string_length(t) == 0) {
		aws_error_set(err, 0, NULL, "StartSession: request has no Target");
		return EL_EINVAL;
	}
	aws_resp_init(&resp);
	if ((r = ssm_call(c, as, region, "StartSession", request, &resp, err)) != EL_OK)
		goto out;
	if ((r = aws_parse_start_session(resp.body.p, resp.body.len, response, &w)) != EL_OK)
		aws_error_set(err, resp.status, resp.request_id, "StartSession: %s", w.msg);
out:
	aws_resp_free(&resp);
	return r;
}

enum el_err
aws_ssm_terminate_session(struct aws_client *c, const struct aws_creds *as, const char *region,
    const char *session_id, struct aws_error *err)
{
	struct aws_resp resp;
	json_t *req;
	enum el_err r;

	if (session_id == NULL || *session_id == '\0' || strlen(session_id) > 96) {
		aws_error_set(err, 0, NULL, "TerminateSession: bad session id");
		return EL_EINVAL;
	}
	if ((req = json_pack("{s:s}", "SessionId", session_id)) == NULL) {
		aws_error_set(err, 0, NULL, "TerminateSession: out of memory");
		return EL_ENOMEM;
	}
	aws_resp_init(&resp);
	r = ssm_call(c, as, region, "TerminateSession", req, &resp, err);
	aws_resp_free(&resp);
	json_decref(req);
	return r;
}

enum el_err
aws_ssm_active_sessions_by_owner(struct aws_client *c, const struct aws_creds *as,
    const char *region, json_t **out, struct aws_error *err)
{
	struct aws_resp resp;
	json_t *req = NULL, *acc, *j = NULL;
	char *next = NULL;
	int page;
	enum el_err r = EL_OK;

	if ((acc = json_object()) == NULL)
		return EL_ENOMEM;
	aws_resp_init(&resp);
	for (page = 0; page < AWS_MAX_PAGES; page++) {
		json_t *sessions, *s;
		size_t i;

		req = json_pack("{s:s, s:i}", "State", "Active", "MaxResults", SSM_PAGE_SIZE);
		if (req == NULL || (next != NULL &&
		    json_object_set_new(req, "NextToken", json_string(next)) != 0)) {
			r = EL_ENOMEM;
			goto out;
		}
		if ((r = ssm_call(c, as, region, "DescribeSessions", req, &resp, err)) != EL_OK)
			goto out;
		free(next);
		next = NULL;
		if ((j = json_loadb(resp.body.p, resp.body.len, 0, NULL)) == NULL ||
		    !json_is_array(sessions = json_object_get(j, "Sessions"))) {
			aws_error_set(err, resp.status, resp.request_id,
			    "DescribeSessions: response has no Sessions list");
			r = EL_EPARSE;
			goto out;
		}
		json_array_foreach(sessions, i, s) {
			const char *id = json_string_value(json_object_get(s, "SessionId"));
			const char *owner = json_string_value(json_object_get(s, "Owner"));
			json_t *list;

			if (id == NULL || owner == NULL)
				continue;
			if ((list = json_object_get(acc, owner)) == NULL) {
				list = json_array();
				json_object_set_new(acc, owner, list);
			}
			json_array_append_new(list, json_string(id));
		}
		if (json_is_string(json_object_get(j, "NextToken")) &&
		    json_string_length(json_object_get(j, "NextToken")) > 0)
			next = strdup(json_string_value(json_object_get(j, "NextToken")));
		json_decref(j);
		j = NULL;
		aws_resp_free(&resp);
		json_decref(req);
		req = NULL;
		if (next == NULL)
			break;
	}
	if (next != NULL) {
		aws_error_set(err, 0, NULL, "DescribeSessions: more than %d pages", AWS_MAX_PAGES);
		r = EL_ETOOBIG;
		goto out;
	}
	*out = acc;
	acc = NULL;
out:
	free(next);
	json_decref(j);
	json_decref(req);
	json_decref(acc);
	aws_resp_free(&resp);
	return r;
}
