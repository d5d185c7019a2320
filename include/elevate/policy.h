/*
 * policy.h — policy-as-code: users, groups and profiles loaded from the *.json files of policies/,
 * and every access decision derived from them (who may request, approve, the quorum).
 * A loaded struct policy is immutable; SIGHUP swaps in a new one (refcounted).
 */
#ifndef ELEVATE_POLICY_H
#define ELEVATE_POLICY_H

#include <jansson.h>
#include <regex.h>
#include <stdbool.h>
#include <stdint.h>

#include "elevate/diag.h"
#include "elevate/el.h"

#define POLICY_MAX_FILE (1024 * 1024)   /* ceiling for one policy file */
#define POLICY_MAX_FILES 256            /* ceiling for *.json files in the directory */
#define POLICY_NAME_MAX 64              /* user, group, profile names: [A-Za-z0-9_.@-]{1,64} */

struct pol_user {
	char *name;
	char *email;
	unsigned char (*keys)[32];      /* Ed25519 public keys */
	size_t nkeys;
};

struct pol_group {
	char *name;
	char **members;                 /* user names */
	size_t nmembers;
};

/*
 * One quorum rule: `count` distinct approvers from the union of the principals in `froms`.
 * A plain "approvers" list becomes one rule whose froms is that list. One approval counts
 * toward at most one rule (see policy_quorum_met).
 */
struct pol_rule {
	char *from;                     /* "group:NAME" or "user:NAME"/"NAME"; == froms[0] */
	int64_t count;
	char **froms;                   /* every principal of the rule (nfroms >= 1) */
	size_t nfroms;
};

struct tzone;

/*
 * An auto-approval rule of a profile: a request that meets every condition given is
 * approved by the rule, with no human. requesters is required; the rest are optional.
 */
struct pol_auto_rule {
	char *name;                     /* "name", else "auto_approve[i]" */
	char **requesters;              /* principals */
	size_t nrequesters;
	int64_t max_duration;           /* seconds; 0: the profile's max_duration */
	char *ticket_pattern;           /* POSIX ERE or NULL */
	regex_t ticket_re;              /* compiled iff ticket_pattern != NULL */
	char *tz;                       /* "hours": IANA zone name, or NULL (no hours) */
	struct tzone *zone;             /* loaded tz */
	unsigned days;                  /* bit d = weekday d (0 Sunday) allowed */
	int from_min, to_min;           /* minutes of the local day: from <= t < to */
};

/* A profile's break-glass: who may take the role at once, without approval, for how long;
 * who is told (besides the auditors); how soon an approver must review it afterwards. */
struct pol_glass {
	bool on;                        /* the profile allows break-glass */
	char **requesters;
	size_t nrequesters;
	int64_t max_duration;           /* seconds; 0: the profile's max_duration */
	char **notify;                  /* principals; none: the profile's approvers */
	size_t nnotify;
	int64_t review_within;          /* seconds */
};

struct pol_profile {
	char *name;
	char *description;              /* may be NULL */
	char *role_arn;
	char *account;                  /* taken from role_arn */
	char *role_name;                /* taken from role_arn (after the last '/') */
	char *region;                   /* may be NULL: use the daemon's aws.region */
	char **requesters;              /* principals */
	size_t nrequesters;
	char **approvers;               /* principals (union of all rules' `from`) */
	size_t napprovers;
	struct pol_rule *rules;         /* quorum rules; from "approvers"+"approvals_required" when a plain list */
	size_t nrules;
	int64_t approvals_required;
	bool allow_self_approval;
	int64_t default_duration;       /* seconds */
	int64_t max_duration;
	int64_t pending_ttl;
	bool reason_required;
	bool ticket_required;           /* true when ticket_pattern is set and "ticket_required" is not false */
	char *ticket_pattern;           /* NULL when none */
	regex_t ticket_re;              /* compiled ticket_pattern (POSIX ERE) when ticket_pattern != NULL */
	char **ssm_targets;             /* instance ids */
	size_t nssm_targets;
	json_t *ssm_target_tags;        /* object tag -> string, or NULL */
	char **ssm_documents;
	size_t nssm_documents;
	json_t *session_policy;         /* object or NULL */
	int64_t max_credential_duration;/* DurationSeconds ceiling for AssumeRole (default 3600) */
	char *revocation_probe;         /* read-only action tried with an ended grant's own
	                                 * credentials until AWS refuses it, or NULL */
	struct pol_auto_rule *auto_rules;
	size_t nauto_rules;
	struct pol_glass glass;
};

struct policy {
	int refs;                       /* atomic; only through policy_retain/policy_release */
	struct pol_user *users;
	size_t nusers;
	struct pol_group *groups;
	size_t ngroups;
	struct pol_profile *profiles;
	size_t nprofiles;
};

/*
 * Loads every *.json file in dir (sorted by name; later files may add users, groups and
 * profiles but never redefine one). Every problem goes into d with file and JSON path
 * (d may be NULL). Returns EL_OK with *out set (caller releases with policy_release) only
 * when it added nothing to d; otherwise EL_ECONFIG (EL_ENOMEM when memory ran out) and
 * *out untouched. policies/README.md documents every key, default and bound.
 */
enum el_err policy_load_dir(const char *dir, struct policy **out, struct diags *d);
/* Same, from one NUL-terminated in-memory document (tests, fuzzing); `file` names it in
 * diagnostics. */
enum el_err policy_load_string(const char *json, const char *file, struct policy **out, struct diags *d);
void policy_retain(struct policy *p);
void policy_release(struct policy *p);

/* Lookups; borrowed pointers valid while p is retained. NULL when absent. */
const struct pol_user *policy_user(const struct policy *p, const char *name);
const struct pol_profile *policy_profile(const struct policy *p, const char *name);
/* Is user in principal ("group:NAME", "user:NAME" or a bare user name)? */
bool policy_principal_has(const struct policy *p, const char *principal, const char *user);
/* Does the user hold this Ed25519 public key? */
bool policy_user_has_key(const struct pol_user *u, const unsigned char pk[32]);
/* Is user a member of the named group ("security" or "group:security")? */
bool policy_in_group(const struct policy *p, const char *group, const char *user);
/* The group named "security" or "group:security"; borrowed, NULL when absent. */
const struct pol_group *policy_group(const struct policy *p, const char *name);
/* The user holding this Ed25519 public key (keys are unique across users); borrowed or NULL. */
const struct pol_user *policy_user_by_key(const struct policy *p, const unsigned char pk[32]);

/*
 * May `user` request `profile` for `*duration` seconds (0: the profile's default, written
 * back), with this reason and ticket (either may be NULL)? EL_OK, or EL_EPERM/EL_EINVAL
 * with a message that says what to do, e.g. "profile prod-admin: alice is not in its
 * requesters (group:engineers)".
 */
enum el_err policy_check_request(const struct policy *p, const char *user, const char *profile,
    int64_t *duration, const char *reason, const char *ticket, struct el_why *w);

/*
 * The first auto-approval rule of profile pr that approves user's request for duration
 * seconds with this ticket (may be NULL) at time now, or NULL: every rule's requesters,
 * max_duration, ticket_pattern and hours (the zone's local day and time) must hold.
 */
const struct pol_auto_rule *policy_auto_rule(const struct policy *p,
    const struct pol_profile *pr, const char *user, int64_t duration, const char *ticket,
    int64_t now);

/*
 * May `user` take `profile` by break-glass for `*duration` seconds (0: the profile's
 * default, capped by break_glass.max_duration; written back) with this reason (required)
 * and ticket (optional; checked against ticket_pattern when given)? EL_OK or EL_EPERM /
 * EL_EINVAL with what to do.
 */
enum el_err policy_check_glass(const struct policy *p, const char *user, const char *profile,
    int64_t *duration, const char *reason, const char *ticket, struct el_why *w);

/* May `approver` decide on a request of `requester` for `profile`? (self rule included) */
enum el_err policy_check_approver(const struct policy *p, const char *profile,
    const char *requester, const char *approver, struct el_why *w);

/*
 * Is the quorum met by these approvers (duplicates count once; the requester's own vote
 * never counts unless allow_self_approval; approvers no longer allowed do not count)?
 * When not met and w != NULL, w says what is missing ("needs 1 more approval from
 * group:security"). One approval counts toward at most one rule: with rules
 * [{group:sre-leads,1},{group:security,1}] a person in both groups meets only one of them
 * (bipartite matching, so the order of votes never matters).
 */
bool policy_quorum_met(const struct policy *p, const char *profile, const char *requester,
    const char *const *approvers, size_t napprovers, struct el_why *w);

/* Everyone who may approve requester's request for profile (self excluded unless
 * allowed), sorted, unique. Caller frees the array (not the strings: borrowed from p).
 * *out is NULL when *n is 0. EL_ENOENT for an unknown profile. */
enum el_err policy_approvers_for(const struct policy *p, const char *profile,
    const char *requester, const char ***out, size_t *n);

#endif
