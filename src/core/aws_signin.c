/*
 * aws_signin.c — owns the AWS console sign-in: a grant's role credentials exchanged at the
 * federation endpoint for a sign-in token (Action=getSigninToken, the session as JSON in
 * the query, nothing signed), and the Action=login URL that opens the console with it.
 * The token is good for 15 minutes; the console session it starts is the role session,
 * bounded by the credentials' session policy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "elevate/aws.h"
#include "elevate/aws_internal.h"
#include "elevate/el.h"

#define SIGNIN_URL_MAX 8192
#define SIGNIN_TOKEN_MAX 4096

/* "&name=" then value percent-encoded (RFC 3986 unreserved kept). */
static enum el_err
param(struct dbuf *b, const char *name, const char *value)
{
	if (dbuf_printf(b, "&%s=", name) != EL_OK ||
	    sigv4_uri_encode(b, value, strlen(value), 0) != EL_OK)
		return EL_ETOOBIG;
	return EL_OK;
}

/* The sign-in token for as (role credentials with a session token). */
static enum el_err
signin_token(struct aws_client *c, const struct aws_creds *as, char **token,
    struct aws_error *err)
{
	struct aws_call call;
	struct aws_resp resp;
	struct dbuf path;
	json_t *session = NULL, *answer = NULL;
	const char *t;
	char *sj = NULL;
	enum el_err r;

	*token = NULL;
	dbuf_init(&path, SIGNIN_URL_MAX);
	aws_resp_init(&resp);
	/* No SessionDuration: the federation endpoint refuses it for role credentials. */
	session = json_pack("{s:s, s:s, s:s}", "sessionId", as->access_key_id, "sessionKey",
	    as->secret_access_key, "sessionToken", as->session_token);
	if (session == NULL || (sj = json_dumps(session, JSON_COMPACT)) == NULL) {
		aws_error_set(err, 0, NULL, "out of memory");
		r = EL_ENOMEM;
		goto out;
	}
	if (dbuf_printf(&path, "/federation?Action=getSigninToken") != EL_OK ||
	    param(&path, "Session", sj) != EL_OK) {
		aws_error_set(err, 0, NULL, "the session is too long for a sign-in request");
		r = EL_ETOOBIG;
		goto out;
	}
	memset(&call, 0, sizeof(call));
	call.svc = AWS_SVC_SIGNIN;
	call.action = "getSigninToken";
	call.proto = AWS_PROTO_REST;
	call.method = "GET";
	call.path = path.p;
	call.as = as;
	if ((r = aws_call_do(c, &call, &resp, err)) != EL_OK)
		goto out;
	answer = json_loadb(resp.body.p, resp.body.len, 0, NULL);
	t = json_string_value(json_object_get(answer, "SigninToken"));
	if (t == NULL || *t == '\0' || strlen(t) > SIGNIN_TOKEN_MAX) {
		aws_error_set(err, resp.status, resp.request_id, "the federation endpoint's answer "
		    "holds no SigninToken");
		r = EL_EPARSE;
		goto out;
	}
	if ((*token = strdup(t)) == NULL) {
		aws_error_set(err, 0, NULL, "out of memory");
		r = EL_ENOMEM;
	}
out:
	if (sj != NULL) {
		sodium_memzero(sj, strlen(sj));
		free(sj);
	}
	json_decref(session);
	json_decref(answer);
	dbuf_free_secret(&path);
	aws_resp_free(&resp);
	return r;
}

enum el_err
aws_signin_url(struct aws_client *c, const struct aws_creds *as, const char *issuer,
    const char *destination, char **url, struct aws_error *err)
{
	struct el_why w = {{0}};
	struct dbuf b;
	char ep[1024], *token = NULL;
	size_t n;
	enum el_err r;

	*url = NULL;
	if (as->session_token == NULL || as->secret_access_key == NULL) {
		aws_error_set(err, 0, NULL, "the console needs role credentials with a session "
		    "token");
		return EL_EINVAL;
	}
	if ((r = aws_endpoint_url(c, "signin", NULL, ep, sizeof(ep), &w)) != EL_OK) {
		aws_error_set(err, 0, NULL, "%s", w.msg);
		return r;
	}
	if ((r = signin_token(c, as, &token, err)) != EL_OK)
		return r;
	n = strlen(ep);
	while (n > 0 && ep[n - 1] == '/')
		ep[--n] = '\0';
	dbuf_init(&b, SIGNIN_URL_MAX);
	if (dbuf_printf(&b, "%s/federation?Action=login", ep) != EL_OK ||
	    param(&b, "Issuer", issuer) != EL_OK ||
	    param(&b, "Destination", destination) != EL_OK ||
	    param(&b, "SigninToken", token) != EL_OK) {
		aws_error_set(err, 0, NULL, "the sign-in URL would be too long");
		r = EL_ETOOBIG;
	} else if ((*url = strdup(b.p)) == NULL) {
		aws_error_set(err, 0, NULL, "out of memory");
		r = EL_ENOMEM;
	}
	sodium_memzero(token, strlen(token));
	free(token);
	dbuf_free_secret(&b);
	return r;
}
