/*
 * engine_console.c — owns `POST /v1/requests/{id}/console`: the AWS console for an active
 * grant, as a federation sign-in URL made from the grant's own credentials (aws_signin.c),
 * handed to its requester only, audited as grant.console. The console session is the role
 * session: the session policy that denies every action after the window's end bounds it
 * like the credentials, and a revocation ends it like them.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "elevate/jspec.h"
#include "elevate/log.h"
#include "engine_int.h"

#define CONSOLE_DEFAULT_DESTINATION "https://console.aws.amazon.com/"
#define CONSOLE_TOKEN_LIFETIME 900      /* s a sign-in token is good for (AWS's rule) */

static const struct schema_field console_fields[] = {
	{ .key = "destination", .kind = SF_STR, .null_ok = true, .max = 1024 },
};
static const struct schema console_spec = SCHEMA(console_fields);

/* A console page: https:// and nothing a URL cannot carry as it is. */
static bool
destination_ok(const char *d)
{
	size_t i;

	if (strncmp(d, "https://", 8) != 0 || d[8] == '\0')
		return false;
	for (i = 0; d[i] != '\0'; i++)
		if ((unsigned char)d[i] <= ' ' || (unsigned char)d[i] >= 0x7f)
			return false;
	return true;
}

/* Is request id still active (read afresh, inside the caller's transaction)? */
static bool
still_active(struct engine *e, const char *id)
{
	struct store_request now;
	bool yes;

	if (store_request_get(e->store, id, &now) != EL_OK)
		return false;
	yes = now.state == RS_ACTIVE && el_now() < now.window_end;
	store_request_free(&now);
	return yes;
}

enum el_err
engine_console(struct engine *e, const char *user, const char *id, const char *peer,
    json_t *body, json_t **out, struct el_why *w)
{
	struct policy *p = engine_policy(e);
	struct store_request r;
	struct store_grant g;
	struct aws_creds c;
	struct aws_error err;
	const char *dest;
	char *url = NULL, end[32];
	json_t *data;
	enum el_err rc;

	memset(&r, 0, sizeof(r));
	memset(&g, 0, sizeof(g));
	memset(&c, 0, sizeof(c));
	memset(&err, 0, sizeof(err));
	if ((rc = jspec_check(body, &console_spec, w)) != EL_OK)
		goto out_p;
	dest = jspec_str(body, "destination");
	if (dest == NULL)
		dest = CONSOLE_DEFAULT_DESTINATION;
	else if (!destination_ok(dest)) {
		rc = el_fail(w, EL_EINVAL, "destination must be an https:// URL of the console "
		    "(printable ASCII, no spaces)");
		goto out_p;
	}
	if ((rc = engine_load_own(e, p, user, id, "open the console of", &r, w)) != EL_OK)
		goto out_p;
	if (r.state != RS_ACTIVE || el_now() >= r.window_end) {
		rc = el_fail(w, EL_ESTATE, "request %s is %s: the console opens only while the "
		    "grant is active", id, r.state == RS_ACTIVE ? "ending" :
		    lifecycle_state_name(r.state));
		goto out;
	}
	/* Credentials about to expire are minted again first, as for `elevate creds`. */
	if ((rc = engine_remint_if_due(e, &r)) != EL_OK && rc != EL_ENOENT) {
		rc = el_fail(w, EL_EAWS, "could not mint fresh credentials for %s", id);
		goto out;
	}
	if ((rc = store_grant_get(e->store, id, &g)) != EL_OK ||
	    (rc = engine_grant_creds(e, &g, &c)) != EL_OK) {
		rc = el_fail(w, EL_ESTATE, "request %s has no usable credentials", id);
		goto out;
	}
	if ((rc = aws_signin_url(e->aws, &c, e->cfg->public_url, dest, &url, &err)) != EL_OK) {
		rc = el_fail(w, EL_EAWS, "the AWS federation endpoint gave no sign-in token: %s%s%s",
		    err.code, err.code[0] ? ": " : "", err.message);
		goto out;
	}
	/* Handed out only while the grant is still active (read afresh): a revoke or the
	 * window's end that committed during the call wins. */
	data = json_pack("{s:s?, s:s, s:s?}", "access_key_id", g.access_key_id, "destination",
	    dest, "peer", peer && *peer ? peer : NULL);
	if ((rc = engine_tx_begin(e)) == EL_OK) {
		if (!still_active(e, id)) {
			engine_tx_rollback(e);
			rc = el_fail(w, EL_ESTATE, "request %s ended while the sign-in URL was being "
			    "made: nothing handed out", id);
		} else if ((rc = engine_audit(e, user, "grant.console", id, data)) != EL_OK) {
			engine_tx_rollback(e);
			el_fail(w, rc, "the console hand-out was not recorded: %s", store_errmsg());
		} else if ((rc = engine_tx_commit(e)) != EL_OK)
			el_fail(w, rc, "the console hand-out was not recorded: %s", store_errmsg());
	} else
		el_fail(w, rc, "the store is unavailable: %s", store_errmsg());
	json_decref(data);
	if (rc != EL_OK)
		goto out;
	el_format_time(r.window_end, end, sizeof(end));
	*out = json_pack("{s:s, s:s, s:s, s:i}", "id", id, "url", url, "window_end", end,
	    "url_valid_seconds", CONSOLE_TOKEN_LIFETIME);
	if (*out == NULL)
		rc = el_fail(w, EL_ENOMEM, "out of memory");
	else
		log_info("%s opened the console of %s (until %s)", user, id, end);
out:
	if (url != NULL) {
		sodium_memzero(url, strlen(url));
		free(url);
	}
	aws_creds_clear(&c);
	store_grant_free(&g);
	store_request_free(&r);
out_p:
	policy_release(p);
	return engine_authz(e, user, "grant.console", id, rc, w);
}
