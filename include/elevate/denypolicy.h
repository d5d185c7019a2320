/*
 * denypolicy.h — the inline deny policy that ends a role's early-revoked sessions, built
 * to fit IAM's budget for all inline policies of a role (10,240 characters, whitespace
 * not counted) however many sessions are revoked at once.
 *
 * Every session the broker mints carries two session tags: `elevate:request-id` (the
 * grant) and `elevate:cohort` (a random value the role's grants share until the broker
 * closes the cohort; no grant minted later gets it). A revoked grant is denied either by
 * its request id, or — once its cohort is closed and holds more revoked grants than live
 * ones — by the cohort, with the cohort's live grants excepted by request id:
 *
 *   Deny * if aws:PrincipalTag/elevate:request-id is one of LISTED, and
 *   Deny * if aws:PrincipalTag/elevate:cohort is one of SWEPT and
 *          aws:PrincipalTag/elevate:request-id is none of EXCEPTED.
 *
 * So the document grows with min(revoked, live) per cohort, never with the revocations
 * alone: about 19 characters per live grant of a swept cohort, 11 per swept cohort and
 * 19 per listed grant (at most DENYPOLICY_CLOSE_AT - 1 of the open cohort, plus grants
 * minted before cohorts existed).
 */
#ifndef ELEVATE_DENYPOLICY_H
#define ELEVATE_DENYPOLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "elevate/el.h"

#define DENYPOLICY_BUDGET 10240     /* IAM: all inline policies of a role, no whitespace */
#define DENYPOLICY_CLOSE_AT 16      /* revoked grants in the open cohort that close it */
#define DENYPOLICY_TAG_ID "elevate:request-id"
#define DENYPOLICY_TAG_COHORT "elevate:cohort"
#define DENYPOLICY_COHORT_LEN 8     /* random characters of a cohort value */

/* A grant: its request id (the elevate:request-id tag) and its cohort tag ("" or NULL:
 * minted without one, so only its request id can name it). Borrowed. */
struct deny_grant {
	const char *id;
	const char *cohort;
};

struct deny_stats {
	size_t listed;     /* grants denied by request id */
	size_t swept;      /* cohorts denied as a whole */
	size_t excepted;   /* live grants excepted from the swept cohorts */
	size_t chars;      /* the document's size as IAM counts it */
};

/* Whether the role's open cohort should be closed before the policy is built: it holds
 * DENYPOLICY_CLOSE_AT or more of the revoked grants. */
bool denypolicy_should_close(const struct deny_grant *revoked, size_t nrevoked,
    const char *open);

/*
 * The policy for a role: every grant in `revoked` is denied; no grant in `live` (the
 * role's grants that are active or being activated) is, unless it is also in `revoked`.
 * `open` (may be NULL) is the role's open cohort: never swept, since grants minted later
 * join it. nrevoked > 0. *doc: compact JSON, caller frees; st may be NULL. Whether the
 * document fits the budget is the caller's check (st->chars).
 */
enum el_err denypolicy_build(const struct deny_grant *revoked, size_t nrevoked,
    const struct deny_grant *live, size_t nlive, const char *open, char **doc,
    struct deny_stats *st);

/* A policy's size as IAM counts it: characters other than whitespace. */
size_t denypolicy_chars(const char *doc);

#endif
