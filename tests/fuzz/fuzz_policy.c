/*
 * fuzz_policy.c — libFuzzer harness for policy_load_string, the parser of the policies/
 * *.json files (policy-as-code from a repository many people can push to). The input is
 * one JSON document (NUL-terminated copy). Besides "no crash, no UB, no leak", the
 * verdict must agree with the diagnostics: EL_OK exactly when no problem was recorded,
 * and every loaded profile must be found again by name.
 * Build: see README.md.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "elevate/diag.h"
#include "elevate/el.h"
#include "elevate/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct policy *p = NULL;
	struct diags d;
	const char **who;
	enum el_err e;
	size_t i, n;
	char *s;

	if (size > 64 * 1024)
		return 0;
	if ((s = malloc(size + 1)) == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';

	diags_init(&d);
	e = policy_load_string(s, "fuzz.json", &p, &d);
	if (e == EL_OK) {
		if (p == NULL || diags_count(&d) != 0)
			abort();
		for (i = 0; i < p->nprofiles; i++) {
			const struct pol_profile *pp = &p->profiles[i];

			if (policy_profile(p, pp->name) != pp ||
			    pp->approvals_required <= 0)
				abort();
			if (policy_approvers_for(p, pp->name, "alice", &who, &n) != EL_OK)
				abort();
			free(who);
		}
		policy_release(p);
	} else if (p != NULL || (e == EL_ECONFIG && diags_count(&d) == 0))
		abort();
	diags_free(&d);
	free(s);
	return 0;
}
