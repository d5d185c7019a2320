/*
 * policy_int.h — what policy.c, policy_load.c and policy_match.c share and nobody else
 * sees: freeing a policy, the matching of voters to approver rules (the loader checks a
 * quorum can be met with it), and two helpers for messages and sorting.
 */
#ifndef ELEVATE_POLICY_INT_H
#define ELEVATE_POLICY_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "elevate/el.h"
#include "elevate/policy.h"

/* Frees p and everything it holds (not refcounted: policy_release is for holders). */
void policy_free(struct policy *p);
/* Joins principals for messages ("group:a, bob"), cut with "..." when too long. */
void policy_join(char *buf, size_t len, char *const *v, size_t n, const char *sep);
/* qsort/bsearch comparison of char * elements, byte order. */
int policy_cmp_str(const void *a, const void *b);

/* Does user belong to any principal of rule r? */
bool policy_rule_has(const struct policy *p, const struct pol_rule *r, const char *user);
/*
 * Assigns voters to pr's rules, each voter to one rule and rule r to at most its count,
 * as many as possible: load[] (pr->nrules) gets the voters per rule, *total their sum.
 */
enum el_err policy_match_votes(const struct policy *p, const struct pol_profile *pr,
    const char *const *voters, size_t nv, int *load, long long *total);

#endif
