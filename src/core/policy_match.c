/*
 * policy_match.c — owns approver matching: who may approve a profile's requests, and
 * whether a set of votes meets its rules. Quorum is a bipartite matching of voters to
 * rules, so one person's approval counts toward one rule only.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "elevate/el.h"
#include "elevate/policy.h"
#include "elevate/schema.h"
#include "policy_int.h"

bool
policy_rule_has(const struct policy *p, const struct pol_rule *r, const char *user)
{
	size_t i;

	for (i = 0; i < r->nfroms; i++)
		if (policy_principal_has(p, r->froms[i], user))
			return true;
	return false;
}

static bool
profile_can_approve(const struct policy *p, const struct pol_profile *pr, const char *user)
{
	size_t i;

	for (i = 0; i < pr->nrules; i++)
		if (policy_rule_has(p, &pr->rules[i], user))
			return true;
	return false;
}

/*
 * Quorum as bipartite matching: each voter is assigned to at most one rule, rule r takes
 * at most rules[r].count voters, and augmenting paths (Kuhn) maximise the assignment, so
 * one person in two groups cannot satisfy two rules, and no order of votes starves a rule
 * that could be met.
 */
struct matching {
	const struct pol_profile *pr;
	const unsigned char *adj;   /* nv x nr: voter v may serve rule r */
	size_t nv, nr;
	int *load;                  /* voters assigned per rule */
	size_t *owner;              /* rule of each voter, SIZE_MAX when none */
	unsigned char *mark;        /* rules visited in this augmentation */
};

static bool
augment(struct matching *m, size_t v)
{
	size_t r, u;

	for (r = 0; r < m->nr; r++) {
		if (!m->adj[v * m->nr + r] || m->mark[r])
			continue;
		m->mark[r] = 1;
		if (m->load[r] < m->pr->rules[r].count) {
			m->owner[v] = r;
			m->load[r]++;
			return true;
		}
		for (u = 0; u < m->nv; u++) {
			if (m->owner[u] == r && augment(m, u)) {
				m->owner[v] = r;    /* u moved elsewhere, v takes its place */
				return true;
			}
		}
	}
	return false;
}

enum el_err
policy_match_votes(const struct policy *p, const struct pol_profile *pr,
    const char *const *voters, size_t nv, int *load, long long *total)
{
	struct matching m;
	unsigned char *adj = NULL, *mark = NULL;
	size_t *owner = NULL, v, r;
	long long need = 0;
	enum el_err e = EL_ENOMEM;

	*total = 0;
	memset(load, 0, pr->nrules * sizeof(*load));
	if (nv == 0 || pr->nrules == 0)
		return EL_OK;
	if ((adj = calloc(nv, pr->nrules)) == NULL ||
	    (mark = calloc(pr->nrules, 1)) == NULL ||
	    (owner = calloc(nv, sizeof(*owner))) == NULL)
		goto out;
	for (r = 0; r < pr->nrules; r++)
		need += pr->rules[r].count;
	for (v = 0; v < nv; v++) {
		owner[v] = SIZE_MAX;
		for (r = 0; r < pr->nrules; r++)
			adj[v * pr->nrules + r] = policy_rule_has(p, &pr->rules[r], voters[v]);
	}
	m = (struct matching){ pr, adj, nv, pr->nrules, load, owner, mark };
	for (v = 0; v < nv && *total < need; v++) {
		memset(mark, 0, pr->nrules);
		if (augment(&m, v))
			(*total)++;
	}
	e = EL_OK;
out:
	free(adj);
	free(mark);
	free(owner);
	return e;
}

enum el_err
policy_check_approver(const struct policy *p, const char *profile, const char *requester,
    const char *approver, struct el_why *w)
{
	const struct pol_profile *pr;
	char q[SCHEMA_SHOW_LEN], who[256];

	if (p == NULL || profile == NULL || approver == NULL)
		return el_fail(w, EL_EINVAL, "missing profile or approver");
	if ((pr = policy_profile(p, profile)) == NULL)
		return el_fail(w, EL_ENOENT, "no profile named \"%s\"",
		    schema_show(q, sizeof(q), profile));
	if (!profile_can_approve(p, pr, approver)) {
		policy_join(who, sizeof(who), pr->approvers, pr->napprovers, ", ");
		return el_fail(w, EL_EPERM, "profile %s: %s is not among its approvers (%s)",
		    pr->name, schema_show(q, sizeof(q), approver), who);
	}
	if (requester != NULL && strcmp(requester, approver) == 0 && !pr->allow_self_approval)
		return el_fail(w, EL_EPERM, "profile %s: %s cannot approve a request of their "
		    "own (allow_self_approval is false)", pr->name,
		    schema_show(q, sizeof(q), approver));
	return EL_OK;
}

bool
policy_quorum_met(const struct policy *p, const char *profile, const char *requester,
    const char *const *approvers, size_t napprovers, struct el_why *w)
{
	const struct pol_profile *pr;
	const char **voters = NULL;
	char who[256], q[SCHEMA_SHOW_LEN];
	struct dbuf b;
	long long total;
	int *load = NULL;
	size_t i, nv = 0;
	bool met = false;

	dbuf_init(&b, EL_WHYLEN - 1);
	if (p == NULL || profile == NULL || (pr = policy_profile(p, profile)) == NULL) {
		el_fail(w, EL_ENOENT, "no profile named \"%s\"",
		    profile ? schema_show(q, sizeof(q), profile) : "");
		return false;
	}
	if ((voters = calloc(napprovers ? napprovers : 1, sizeof(*voters))) == NULL ||
	    (load = calloc(pr->nrules ? pr->nrules : 1, sizeof(*load))) == NULL)
		goto nomem;
	/* Only votes that still qualify under this policy count (it may have changed). */
	for (i = 0; i < napprovers; i++) {
		const char *a = approvers[i];

		if (a == NULL || policy_user(p, a) == NULL)
			continue;
		if (!pr->allow_self_approval && requester != NULL && strcmp(a, requester) == 0)
			continue;
		if (!profile_can_approve(p, pr, a))
			continue;
		voters[nv++] = a;
	}
	if (nv > 1) {
		size_t k = 1;

		qsort(voters, nv, sizeof(*voters), policy_cmp_str);
		for (i = 1; i < nv; i++)
			if (strcmp(voters[i], voters[k - 1]) != 0)
				voters[k++] = voters[i];
		nv = k;
	}
	if (policy_match_votes(p, pr, voters, nv, load, &total) != EL_OK)
		goto nomem;
	met = pr->nrules > 0;
	for (i = 0; i < pr->nrules; i++) {
		int miss = pr->rules[i].count - load[i];

		if (miss <= 0)
			continue;
		met = false;
		policy_join(who, sizeof(who), pr->rules[i].froms, pr->rules[i].nfroms, " or ");
		/* Truncation only shortens the hint; the verdict is already decided. */
		(void)dbuf_printf(&b, "%s%d more approval%s from %s", b.len ? " and " : "needs ",
		    miss, miss == 1 ? "" : "s", who);
	}
	if (!met && w != NULL)
		el_fail(w, EL_EPERM, "%s", b.len ? b.p : "no approver rules");
	goto out;
nomem:
	el_fail(w, EL_ENOMEM, "out of memory");
	met = false;
out:
	dbuf_free(&b);
	free(voters);
	free(load);
	return met;
}

enum el_err
policy_approvers_for(const struct policy *p, const char *profile, const char *requester,
    const char ***out, size_t *n)
{
	const struct pol_profile *pr;
	const char **v;
	size_t i;

	*out = NULL;
	*n = 0;
	if ((pr = policy_profile(p, profile)) == NULL)
		return EL_ENOENT;
	if (p->nusers == 0)
		return EL_OK;
	if ((v = calloc(p->nusers, sizeof(*v))) == NULL)
		return EL_ENOMEM;
	/* p->users is sorted by name, so the result is sorted and unique. */
	for (i = 0; i < p->nusers; i++) {
		const char *u = p->users[i].name;

		if (!pr->allow_self_approval && requester != NULL && strcmp(u, requester) == 0)
			continue;
		if (profile_can_approve(p, pr, u))
			v[(*n)++] = u;
	}
	if (*n == 0) {
		free(v);
		return EL_OK;
	}
	*out = v;
	return EL_OK;
}


