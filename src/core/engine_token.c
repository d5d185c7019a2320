/*
 * engine_token.c — owns the approval links: checking a token (signature, expiry, request
 * still pending, approver still an approver, not decided yet, single use), the context
 * of the approval and result pages, and the decision a POST makes. Every refusal is
 * audited with its reason and source address, as engine_refuse.c counts them: a link
 * whose signature does not verify is anonymous (summarised like a bad API signature), one
 * that verifies names its approver and request (summarised per link when refused again
 * and again). A GET never changes state, and reads the request and its decisions once.
 * A bundle's link (its request id a bundle's) shows every role of the bundle and decides
 * each member this approver may decide, through the member's own vote.
 */
#include <stdlib.h>
#include <string.h>

#include "elevate/log.h"
#include "engine_int.h"


struct refusal {
	int status;
	const char *reason;     /* audit code */
	const char *title;
	const char *message;
};

static const struct refusal R_INVALID = {403, "invalid", "Invalid link",
	"This link is not valid. Use the link from the email exactly as it was sent."};
static const struct refusal R_EXPIRED = {410, "expired", "This link has expired",
	"The request was not decided in time. The requester can ask again."};
static const struct refusal R_DECIDED = {409, "already_decided", "Already decided",
	"This request has already been decided."};
static const struct refusal R_VOTED = {409, "already_decided", "Already decided",
	"You have already decided this request."};
static const struct refusal R_NOT_APPROVER = {403, "not_an_approver",
	"You are no longer an approver", "The policy no longer lets you approve this request."};
static const struct refusal R_USED = {409, "used", "This link was already used",
	"Each link can be used once."};

/* The result page of a refusal: the request (r, NULL when unknown) without its
 * decisions, which that page does not show. */
static json_t *
refusal_ctx(struct engine *e, const struct store_request *r, const struct refusal *f)
{
	json_t *ctx = r ? engine_request_ctx(e, r, NULL) : json_object();

	json_object_set_new(ctx, "public_url", json_string(e->cfg->public_url));
	json_object_set_new(ctx, "title", json_string(f->title));
	json_object_set_new(ctx, "message", json_string(f->message));
	json_object_set_new(ctx, "refused", json_true());
	return ctx;
}

/* approver NULL: the link names nobody we can believe (its signature does not verify). */
static void
audit_refusal(struct engine *e, const char *approver, const char *request_id,
    const struct refusal *f, const char *method, const char *peer)
{
	json_t *data = json_pack("{s:s, s:s}", "reason", f->reason, "method", method);

	atomic_fetch_add(&e->tokens_refused_total, 1);
	if (approver == NULL || *approver == '\0')
		engine_refused_anon(e, "token.refused", f->reason, peer, data);
	else
		engine_refused_link(e, approver, request_id, f->reason, method, peer, data);
	json_decref(data);
}

/*
 * A bundle's link (verified): its page context, or the refusal page (audited) when there
 * is nothing approver may decide now.
 */
static enum el_err
check_bundle(struct engine *e, const struct token_claims *c, const char *method,
    const char *peer, json_t **ctx, int *status)
{
	const struct refusal *f = NULL;
	size_t nd, npend, nyours;
	json_t *x;

	x = engine_bundle_page_ctx(e, c->request_id, c->approver, &nd, &npend, &nyours);
	if (x == NULL)
		f = &R_INVALID;
	else if (nd == 0)
		f = npend == 0 ? &R_DECIDED : nyours == 0 ? &R_NOT_APPROVER : &R_VOTED;
	if (f != NULL) {
		audit_refusal(e, c->approver, x ? c->request_id : NULL, f, method, peer);
		*ctx = refusal_ctx(e, NULL, f);
		if (x != NULL)
			json_object_set_new(*ctx, "request_id", json_string(c->request_id));
		json_decref(x);
		*status = f->status;
		return EL_EAUTH;
	}
	json_object_set_new(x, "approver", json_string(c->approver));
	*ctx = x;
	*status = 200;
	return EL_OK;
}

/*
 * Every check a link must pass. On EL_OK, r is loaded (caller frees) and c is filled, and
 * so are *ap and *nap, the decisions so far (caller frees), when ap is not NULL;
 * otherwise *ctx is the refusal page and *status its code (already audited).
 */
static enum el_err
check_token(struct engine *e, const char *token, const char *method, const char *peer,
    struct token_claims *c, struct store_request *r, struct store_approval **ap,
    size_t *nap, json_t **ctx, int *status)
{
	struct policy *p;
	struct el_why w = {{0}};
	struct store_approval *v = NULL;
	size_t n = 0, i;
	const struct refusal *f = NULL;
	enum el_err rc;

	memset(r, 0, sizeof(*r));
	rc = token_verify(e->token_key, token, el_now(), c, &w);
	if (rc == EL_OK && engine_is_bundle_id(c->request_id))
		return EL_ENOENT;           /* the caller shows or decides the bundle */
	if (rc != EL_OK) {
		/* An expired token still names its request and approver (signature held). */
		f = rc == EL_ESTATE ? &R_EXPIRED : &R_INVALID;
		audit_refusal(e, rc == EL_ESTATE ? c->approver : NULL,
		    rc == EL_ESTATE ? c->request_id : NULL, f, method, peer);
		*ctx = refusal_ctx(e, NULL, f);
		*status = f->status;
		return EL_EAUTH;
	}
	if (store_request_get(e->store, c->request_id, r) != EL_OK) {
		audit_refusal(e, c->approver, NULL, &R_INVALID, method, peer);
		*ctx = refusal_ctx(e, NULL, &R_INVALID);
		*status = R_INVALID.status;
		return EL_EAUTH;
	}
	if (r->state != RS_PENDING)
		f = r->state == RS_LAPSED ? &R_EXPIRED : &R_DECIDED;
	if (f == NULL) {
		p = engine_policy(e);
		if (policy_check_approver(p, r->profile, r->requester, c->approver, NULL) != EL_OK)
			f = &R_NOT_APPROVER;
		policy_release(p);
	}
	if (f == NULL && store_approval_list(e->store, r->id, &v, &n) == EL_OK)
		for (i = 0; i < n; i++)
			if (strcmp(v[i].approver, c->approver) == 0)
				f = &R_VOTED;
	if (f != NULL || ap == NULL) {
		store_approvals_free(v, n);
		v = NULL;
		n = 0;
	}
	if (f != NULL) {
		audit_refusal(e, c->approver, r->id, f, method, peer);
		*ctx = refusal_ctx(e, r, f);
		*status = f->status;
		store_request_free(r);
		return EL_EAUTH;
	}
	if (ap != NULL) {
		*ap = v;
		*nap = n;
	}
	return EL_OK;
}

enum el_err
engine_token_page(struct engine *e, const char *token, const char *peer, json_t **ctx,
    int *status)
{
	struct token_claims c;
	struct store_request r;
	struct store_approval *ap = NULL;
	size_t nap = 0;

	memset(&c, 0, sizeof(c));
	/* the page's reads as one snapshot (a refusal's audit record ends it first) */
	store_read_begin(e->store);
	switch (check_token(e, token, "GET", peer, &c, &r, &ap, &nap, ctx, status)) {
	case EL_OK:
		break;
	case EL_ENOENT:
		check_bundle(e, &c, "GET", peer, ctx, status);
		store_read_end(e->store);
		return EL_OK;
	default:
		store_read_end(e->store);
		return EL_OK;
	}
	/* the decisions check_token read, as the templates name them */
	*ctx = engine_request_ctx(e, &r, c.approver);
	store_read_end(e->store);
	json_object_set_new(*ctx, "approvals", engine_approvals_ctx(ap, nap));
	json_object_set_new(*ctx, "approver", json_string(c.approver));
	json_object_set_new(*ctx, "approvals_count", json_integer((json_int_t)nap));
	*status = 200;
	store_approvals_free(ap, nap);
	store_request_free(&r);
	return EL_OK;
}

/* What an approval did, for the result page; out is the request as the vote left it (the
 * page answers before anything is minted). */
static const char *
approved_text(const json_t *out, char *buf, size_t len)
{
	const char *fail = json_string_value(json_object_get(json_object_get(out, "failure"),
	    "message"));

	switch (lifecycle_state_parse(json_string_value(json_object_get(out, "state")))) {
	case RS_PENDING:
		return "Your approval was recorded. More approvals are needed.";
	case RS_ACTIVATING:
		return "Your approval completed the quorum: access is being activated. The "
		    "requester is told as soon as it is active, or why AWS refused it.";
	case RS_ACTIVE:
		return "Your approval completed the quorum: access is now active.";
	case RS_FAILED:
		snprintf(buf, len, "Your approval was recorded, but the request failed: %s",
		    fail ? fail : "no reason given");
		return buf;
	default:
		return "Your approval completed the quorum, but the grant was revoked meanwhile.";
	}
}

/* Uses the link's nonce once (in its own transaction): false (the refusal page set and
 * audited) when it was used already. */
static bool
use_once(struct engine *e, const struct token_claims *c, const struct store_request *r,
    const char *peer, json_t **ctx, int *status, enum el_err *rc)
{
	*rc = EL_OK;
	if (engine_tx_begin(e) != EL_OK) {
		*rc = EL_EDB;
		return false;
	}
	if (store_nonce_use(e->store, "token", c->nonce_hex, c->approver, el_now()) != EL_OK) {
		engine_tx_rollback(e);
		audit_refusal(e, c->approver, r != NULL ? r->id : c->request_id, &R_USED, "POST",
		    peer);
		*ctx = refusal_ctx(e, r, &R_USED);
		*status = R_USED.status;
		return false;
	}
	engine_tx_commit(e);
	return true;
}

/* A bundle's link decides every member approver may decide now, each its own vote (via
 * "email"); the result page says what became of each. */
static enum el_err
bundle_decide(struct engine *e, const struct token_claims *c, bool approve,
    const char *comment, const char *peer, json_t **ctx, int *status)
{
	struct el_why w = {{0}};
	json_t *body, *out = NULL, *x;
	char msg[EL_WHYLEN * 2] = "";
	enum el_err rc;
	size_t i, n;

	if (check_bundle(e, c, "POST", peer, ctx, status) != EL_OK)
		return EL_OK;
	json_decref(*ctx);
	*ctx = NULL;
	if (!use_once(e, c, NULL, peer, ctx, status, &rc))
		return rc;
	body = json_pack("{s:s?}", "comment", comment);
	rc = engine_bundle_each(e, c->approver, c->request_id, approve ? BOP_APPROVE :
	    BOP_DENY, body, "email", &out, &w);
	json_decref(body);
	*ctx = engine_bundle_page_ctx(e, c->request_id, c->approver, &i, &i, &i);
	if (*ctx == NULL)
		*ctx = json_object();
	json_object_set_new(*ctx, "public_url", json_string(e->cfg->public_url));
	if (rc != EL_OK) {
		json_object_set_new(*ctx, "title", json_string("Not recorded"));
		json_object_set_new(*ctx, "message", json_string(w.msg));
		json_object_set_new(*ctx, "refused", json_true());
		*status = rc == EL_EPERM ? 403 : 409;
		return EL_OK;
	}
	n = 0;
	json_array_foreach(json_object_get(out, "results"), i, x) {
		const char *p = json_string_value(json_object_get(x, "profile"));
		const char *st = json_string_value(json_object_get(json_object_get(x, "request"),
		    "state"));

		if (!json_is_true(json_object_get(x, "ok")))
			continue;
		snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), "%s%s: %s", n++ ? "; " : "",
		    p ? p : "?", !approve ? "denied" : st != NULL && strcmp(st, "pending") == 0 ?
		    "approved, more approvals needed" : "approved, access is being activated");
	}
	json_object_set_new(*ctx, approve ? "approved" : "denied", json_true());
	json_object_set_new(*ctx, "title", json_string(approve ? "Approved" : "Denied"));
	json_object_set_new(*ctx, "message", json_string(msg));
	if (comment != NULL)
		json_object_set_new(*ctx, "comment", json_string(comment));
	*status = 200;
	json_decref(out);
	return EL_OK;
}

enum el_err
engine_token_decide(struct engine *e, const char *token, bool approve, const char *comment,
    const char *peer, json_t **ctx, int *status)
{
	struct token_claims c;
	struct store_request r;
	struct el_why w = {{0}};
	json_t *out = NULL;
	char msg[EL_WHYLEN + 128];
	enum el_err rc;

	memset(&c, 0, sizeof(c));
	switch (check_token(e, token, "POST", peer, &c, &r, NULL, NULL, ctx, status)) {
	case EL_OK:
		break;
	case EL_ENOENT:
		return bundle_decide(e, &c, approve, comment, peer, ctx, status);
	default:
		return EL_OK;
	}
	/* Single use, even if a later policy change made the same approver vote again. */
	if (!use_once(e, &c, &r, peer, ctx, status, &rc)) {
		store_request_free(&r);
		return rc;
	}
	rc = engine_decide_as(e, c.approver, r.id, approve, comment, "email", &out, &w);
	*ctx = engine_mail_ctx(e, &r, c.approver);
	json_object_set_new(*ctx, "public_url", json_string(e->cfg->public_url));
	if (rc != EL_OK) {
		json_object_set_new(*ctx, "title", json_string("Not recorded"));
		json_object_set_new(*ctx, "message", json_string(w.msg));
		json_object_set_new(*ctx, "refused", json_true());
		*status = rc == EL_EPERM ? 403 : 409;
	} else {
		json_object_set_new(*ctx, approve ? "approved" : "denied", json_true());
		json_object_set_new(*ctx, "title", json_string(!approve ? "Denied" :
		    lifecycle_state_parse(json_string_value(json_object_get(out, "state"))) ==
		    RS_ACTIVATING ? "Approved — access is being activated" : "Approved"));
		json_object_set_new(*ctx, "message", json_string(approve ? approved_text(out, msg,
		    sizeof(msg)) : "The request was denied. The requester has been told."));
		if (comment != NULL)
			json_object_set_new(*ctx, "comment", json_string(comment));
		*status = 200;
	}
	json_decref(out);
	store_request_free(&r);
	return EL_OK;
}

enum el_err
engine_render_page(struct engine *e, const char *name, json_t *ctx, char **out)
{
	struct el_why w = {{0}};
	enum el_err rc;

	rc = template_render(e->templates, name, ctx, TEMPLATE_OUT_MAX, out, &w);
	if (rc != EL_OK)
		log_err("render %s: %s", name, w.msg);
	return rc;
}
