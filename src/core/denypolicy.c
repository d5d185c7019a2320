/*
 * denypolicy.c — owns the early-revocation deny policy document of a role: which revoked
 * grants it names one by one, which closed cohorts it denies as a whole and which live
 * grants it excepts from them, chosen per cohort to keep the document small
 * (denypolicy.h has the shape and the bound).
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "elevate/denypolicy.h"

/* What a value costs in a JSON list: itself, its quotes and a comma. */
#define VALUE_COST(s) (strlen(s) + 3)
/* The cohort statement without its values (its Sid, effect, action, resource and the two
 * condition keys): a sweep must save more than this. */
#define SWEEP_FRAME 205

static const char *
cohort_of(const struct deny_grant *g)
{
	return g->cohort != NULL ? g->cohort : "";
}

/* By cohort, then request id. */
static int
cmp_grant(const void *a, const void *b)
{
	const struct deny_grant *x = a, *y = b;
	int c = strcmp(cohort_of(x), cohort_of(y));

	return c != 0 ? c : strcmp(x->id, y->id);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool
in_sorted(const char *const *v, size_t n, const char *s)
{
	return n > 0 && bsearch(&s, v, n, sizeof(*v), cmp_str) != NULL;
}

bool
denypolicy_should_close(const struct deny_grant *revoked, size_t nrevoked, const char *open)
{
	size_t i, n = 0;

	if (open == NULL || *open == '\0')
		return false;
	for (i = 0; i < nrevoked; i++)
		if (strcmp(cohort_of(&revoked[i]), open) == 0)
			n++;
	return n >= DENYPOLICY_CLOSE_AT;
}

size_t
denypolicy_chars(const char *doc)
{
	size_t n = 0;

	for (; *doc; doc++)
		if (*doc != ' ' && *doc != '\n' && *doc != '\t' && *doc != '\r')
			n++;
	return n;
}

/* A sorted list of distinct strings as a JSON array. */
static json_t *
string_list(const char **v, size_t n)
{
	json_t *a = json_array();
	size_t i;

	if (a == NULL)
		return NULL;
	qsort(v, n, sizeof(*v), cmp_str);
	for (i = 0; i < n; i++)
		if ((i == 0 || strcmp(v[i], v[i - 1]) != 0) &&
		    json_array_append_new(a, json_string(v[i])) != 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

static json_t *
deny_statement(const char *sid, json_t *condition)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:o}", "Sid", sid, "Effect", "Deny", "Action",
	    "*", "Resource", "*", "Condition", condition);
}

enum el_err
denypolicy_build(const struct deny_grant *revoked, size_t nrevoked,
    const struct deny_grant *live, size_t nlive, const char *open, char **doc,
    struct deny_stats *st)
{
	struct deny_grant *rv = NULL, *lv = NULL;
	const char **rids = NULL, **swept = NULL, **listed = NULL, **excepted = NULL;
	size_t nswept = 0, nlisted = 0, nexcepted = 0, saving = 0, i, j, k;
	json_t *stmts = NULL, *d = NULL, *cond;
	enum el_err rc = EL_ENOMEM;

	*doc = NULL;
	if (open == NULL)
		open = "";
	if (nrevoked == 0)
		return EL_EINVAL;
	rv = malloc(nrevoked * sizeof(*rv));
	lv = malloc((nlive ? nlive : 1) * sizeof(*lv));
	rids = malloc(nrevoked * sizeof(*rids));
	swept = malloc(nrevoked * sizeof(*swept));
	listed = malloc(nrevoked * sizeof(*listed));
	excepted = malloc((nlive ? nlive : 1) * sizeof(*excepted));
	if (!rv || !lv || !rids || !swept || !listed || !excepted)
		goto out;
	memcpy(rv, revoked, nrevoked * sizeof(*rv));
	if (nlive > 0)
		memcpy(lv, live, nlive * sizeof(*lv));
	qsort(rv, nrevoked, sizeof(*rv), cmp_grant);
	qsort(lv, nlive, sizeof(*lv), cmp_grant);
	for (i = 0; i < nrevoked; i++)
		rids[i] = rv[i].id;
	qsort(rids, nrevoked, sizeof(*rids), cmp_str);

	/* Per closed cohort: naming its revoked grants, or sweeping it and naming its live
	 * ones (a revoked grant is never excepted, whatever `live` says). */
	for (i = 0, j = 0; i < nrevoked; i = k) {
		const char *c = cohort_of(&rv[i]);
		size_t list_cost = 0, sweep_cost = VALUE_COST(c);

		for (k = i; k < nrevoked && strcmp(cohort_of(&rv[k]), c) == 0; k++)
			if (k == i || strcmp(rv[k].id, rv[k - 1].id) != 0)
				list_cost += VALUE_COST(rv[k].id);
		if (*c == '\0' || strcmp(c, open) == 0)
			continue;
		while (j < nlive && strcmp(cohort_of(&lv[j]), c) < 0)
			j++;
		for (; j < nlive && strcmp(cohort_of(&lv[j]), c) == 0; j++)
			if (!in_sorted(rids, nrevoked, lv[j].id))
				sweep_cost += VALUE_COST(lv[j].id);
		if (sweep_cost < list_cost) {
			swept[nswept++] = c;
			saving += list_cost - sweep_cost;
		}
	}
	if (saving <= SWEEP_FRAME)
		nswept = 0;

	for (i = 0; i < nrevoked; i++)
		if (!in_sorted(swept, nswept, cohort_of(&rv[i])))
			listed[nlisted++] = rv[i].id;
	for (j = 0; j < nlive; j++)
		if (in_sorted(swept, nswept, cohort_of(&lv[j])) &&
		    !in_sorted(rids, nrevoked, lv[j].id))
			excepted[nexcepted++] = lv[j].id;

	if ((stmts = json_array()) == NULL)
		goto out;
	if (nlisted > 0) {
		json_t *ids = string_list(listed, nlisted);

		nlisted = json_array_size(ids);   /* distinct */
		cond = json_pack("{s:{s:o}}", "StringEquals", "aws:PrincipalTag/" DENYPOLICY_TAG_ID,
		    ids);
		if (json_array_append_new(stmts, deny_statement("ElevateRevokedSessions", cond)))
			goto out;
	}
	if (nswept > 0) {
		json_t *ex = nexcepted > 0 ? string_list(excepted, nexcepted) : NULL;

		nexcepted = json_array_size(ex);
		cond = json_pack("{s:{s:o}}", "StringEquals",
		    "aws:PrincipalTag/" DENYPOLICY_TAG_COHORT, string_list(swept, nswept));
		if (cond == NULL) {
			json_decref(ex);
			goto out;
		}
		/* json_pack takes ex's reference, failing or not (jansson >= 2.11) */
		if (ex != NULL && json_object_set_new(cond, "StringNotEquals",
		    json_pack("{s:o}", "aws:PrincipalTag/" DENYPOLICY_TAG_ID, ex)) != 0) {
			json_decref(cond);
			goto out;
		}
		if (json_array_append_new(stmts, deny_statement("ElevateRevokedCohorts", cond)))
			goto out;
	}
	d = json_pack("{s:s, s:O}", "Version", "2012-10-17", "Statement", stmts);
	if (d == NULL || (*doc = json_dumps(d, JSON_COMPACT)) == NULL)
		goto out;
	if (st != NULL) {
		st->listed = nlisted;
		st->swept = nswept;
		st->excepted = nexcepted;
		st->chars = denypolicy_chars(*doc);
	}
	rc = EL_OK;
out:
	json_decref(d);
	json_decref(stmts);
	free(rv);
	free(lv);
	free(rids);
	free(swept);
	free(listed);
	free(excepted);
	return rc;
}
