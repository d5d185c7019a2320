/*
 * policy.c — owns struct policy once loaded: its lifetime (retain, release, free), the
 * lookups of users, groups and profiles, and the decision whether a user may request a
 * profile. Loading is policy_load.c; who may approve and the quorum, policy_match.c.
 */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "elevate/el.h"
#include "elevate/policy.h"
#include "elevate/tzone.h"
#include "elevate/schema.h"
#include "policy_int.h"

#define REASON_MAX 1024                 /* characters (UTF-8 code points) */
#define TICKET_MAX 128

void
policy_join(char *buf, size_t len, char *const *v, size_t n, const char *sep)
{
	size_t i, o = 0;

	buf[0] = '\0';
	for (i = 0; i < n && o < len; i++) {
		int k = snprintf(buf + o, len - o, "%s%s", i ? sep : "", v[i]);
		if (k < 0 || (size_t)k >= len - o) {
			if (len > 4)
				memcpy(buf + len - 4, "...", 4);
			return;
		}
		o += (size_t)k;
	}
}

int
policy_cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void
policy_free(struct policy *p)
{
	size_t i, j;

	if (p == NULL)
		return;
	for (i = 0; i < p->nusers; i++) {
		free(p->users[i].name);
		free(p->users[i].email);
		free(p->users[i].keys);
	}
	free(p->users);
	for (i = 0; i < p->ngroups; i++) {
		free(p->groups[i].name);
		el_strv_free(p->groups[i].members, p->groups[i].nmembers);
	}
	free(p->groups);
	for (i = 0; i < p->nprofiles; i++) {
		struct pol_profile *pr = &p->profiles[i];

		free(pr->name);
		free(pr->description);
		free(pr->role_arn);
		free(pr->account);
		free(pr->role_name);
		free(pr->region);
		free(pr->revocation_probe);
		for (j = 0; j < pr->nauto_rules; j++) {
			struct pol_auto_rule *ar = &pr->auto_rules[j];

			free(ar->name);
			el_strv_free(ar->requesters, ar->nrequesters);
			if (ar->ticket_pattern != NULL)
				regfree(&ar->ticket_re);
			free(ar->ticket_pattern);
			free(ar->tz);
			tzone_free(ar->zone);
		}
		free(pr->auto_rules);
		el_strv_free(pr->glass.requesters, pr->glass.nrequesters);
		el_strv_free(pr->glass.notify, pr->glass.nnotify);
		el_strv_free(pr->requesters, pr->nrequesters);
		el_strv_free(pr->approvers, pr->napprovers);
		for (j = 0; j < pr->nrules; j++)
			el_strv_free(pr->rules[j].froms, pr->rules[j].nfroms);
		free(pr->rules);
		if (pr->ticket_pattern != NULL)
			regfree(&pr->ticket_re);
		free(pr->ticket_pattern);
		el_strv_free(pr->ssm_targets, pr->nssm_targets);
		json_decref(pr->ssm_target_tags);
		el_strv_free(pr->ssm_documents, pr->nssm_documents);
		json_decref(pr->session_policy);
	}
	free(p->profiles);
	free(p);
}

void
policy_retain(struct policy *p)
{
	if (p != NULL)
		__atomic_add_fetch(&p->refs, 1, __ATOMIC_RELAXED);
}

void
policy_release(struct policy *p)
{
	/* acq_rel: the last holder must see every other holder's reads finished. */
	if (p != NULL && __atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) == 0)
		policy_free(p);
}

/* ------------------------------------------------------------------ lookups */

static int
cmp_name_user(const void *key, const void *elem)
{
	return strcmp(key, ((const struct pol_user *)elem)->name);
}

static int
cmp_name_group(const void *key, const void *elem)
{
	return strcmp(key, ((const struct pol_group *)elem)->name);
}

static int
cmp_name_profile(const void *key, const void *elem)
{
	return strcmp(key, ((const struct pol_profile *)elem)->name);
}

static int
cmp_name_member(const void *key, const void *elem)
{
	return strcmp(key, *(char *const *)elem);
}

const struct pol_user *
policy_user(const struct policy *p, const char *name)
{
	if (p == NULL || name == NULL || p->nusers == 0)
		return NULL;
	return bsearch(name, p->users, p->nusers, sizeof(*p->users), cmp_name_user);
}

const struct pol_profile *
policy_profile(const struct policy *p, const char *name)
{
	if (p == NULL || name == NULL || p->nprofiles == 0)
		return NULL;
	return bsearch(name, p->profiles, p->nprofiles, sizeof(*p->profiles), cmp_name_profile);
}

const struct pol_group *
policy_group(const struct policy *p, const char *name)
{
	if (p == NULL || name == NULL || p->ngroups == 0)
		return NULL;
	if (strncmp(name, "group:", 6) == 0)
		name += 6;
	return bsearch(name, p->groups, p->ngroups, sizeof(*p->groups), cmp_name_group);
}

bool
policy_in_group(const struct policy *p, const char *group, const char *user)
{
	const struct pol_group *g = policy_group(p, group);

	if (g == NULL || user == NULL || g->nmembers == 0 || policy_user(p, user) == NULL)
		return false;
	return bsearch(user, g->members, g->nmembers, sizeof(*g->members),
	    cmp_name_member) != NULL;
}

bool
policy_principal_has(const struct policy *p, const char *principal, const char *user)
{
	if (p == NULL || principal == NULL || user == NULL)
		return false;
	if (strncmp(principal, "group:", 6) == 0)
		return policy_in_group(p, principal + 6, user);
	if (strncmp(principal, "user:", 5) == 0)
		principal += 5;
	return strcmp(principal, user) == 0 && policy_user(p, user) != NULL;
}

bool
policy_user_has_key(const struct pol_user *u, const unsigned char pk[32])
{
	size_t i;

	if (u == NULL || pk == NULL)
		return false;
	for (i = 0; i < u->nkeys; i++)
		if (memcmp(u->keys[i], pk, 32) == 0)
			return true;
	return false;
}

const struct pol_user *
policy_user_by_key(const struct policy *p, const unsigned char pk[32])
{
	size_t i;

	if (p == NULL || pk == NULL)
		return NULL;
	for (i = 0; i < p->nusers; i++)
		if (policy_user_has_key(&p->users[i], pk))
			return &p->users[i];
	return NULL;
}

/* ------------------------------------------------------------------ decisions */

static bool
in_requesters(const struct policy *p, const struct pol_profile *pr, const char *user)
{
	size_t i;

	for (i = 0; i < pr->nrequesters; i++)
		if (policy_principal_has(p, pr->requesters[i], user))
			return true;
	return false;
}

const struct pol_auto_rule *
policy_auto_rule(const struct policy *p, const struct pol_profile *pr, const char *user,
    int64_t duration, const char *ticket, int64_t now)
{
	const struct pol_auto_rule *ar;
	struct tm tm;
	size_t i, j;
	int min;

	for (i = 0; i < pr->nauto_rules; i++) {
		ar = &pr->auto_rules[i];
		for (j = 0; j < ar->nrequesters; j++)
			if (policy_principal_has(p, ar->requesters[j], user))
				break;
		if (j == ar->nrequesters)
			continue;
		if (duration > (ar->max_duration > 0 ? ar->max_duration : pr->max_duration))
			continue;
		if (ar->ticket_pattern != NULL && (ticket == NULL || *ticket == '\0' ||
		    regexec(&ar->ticket_re, ticket, 0, NULL, 0) != 0))
			continue;
		if (ar->zone != NULL) {
			tzone_local(ar->zone, now, &tm, NULL);
			min = tm.tm_hour * 60 + tm.tm_min;
			if (!(ar->days & (1u << tm.tm_wday)) || min < ar->from_min ||
			    min >= ar->to_min)
				continue;
		}
		return ar;
	}
	return NULL;
}

/* Length in characters (UTF-8 code points) of s without leading/trailing white space. */
static size_t
trimmed_chars(const char *s, size_t *total)
{
	const char *b = s, *e = s + strlen(s), *c;
	size_t n = 0, all = 0;

	for (c = s; *c != '\0'; c++)
		all += ((unsigned char)*c & 0xc0) != 0x80;
	*total = all;
	while (*b == ' ' || *b == '\t' || *b == '\n' || *b == '\r')
		b++;
	while (e > b && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		e--;
	for (c = b; c < e; c++)
		n += ((unsigned char)*c & 0xc0) != 0x80;
	return n;
}

/* The reason and ticket of a request for pr; need_ticket: a missing ticket is refused. */
static enum el_err
check_text(const struct pol_profile *pr, const char *reason, const char *ticket,
    bool need_ticket, struct el_why *w)
{
	char q[SCHEMA_SHOW_LEN], pat[SCHEMA_SHOW_LEN] = "";
	const char *c;
	size_t total;

	if (reason == NULL)
		reason = "";
	if (trimmed_chars(reason, &total) == 0 && pr->reason_required)
		return el_fail(w, EL_EINVAL, "profile %s: a reason is required; say why you need "
		    "access", pr->name);
	if (total > REASON_MAX)
		return el_fail(w, EL_EINVAL, "profile %s: the reason is %zu characters; at most "
		    "%d are allowed", pr->name, total, REASON_MAX);
	/* Reasons go into emails and pages: no control characters but line breaks and tabs. */
	for (c = reason; *c != '\0'; c++)
		if (((unsigned char)*c < 0x20 && *c != '\n' && *c != '\t') || *c == 0x7f)
			return el_fail(w, EL_EINVAL, "profile %s: the reason contains a control "
			    "character", pr->name);
	if (ticket != NULL && ticket[0] == '\0')
		ticket = NULL;
	if (pr->ticket_pattern != NULL)
		schema_show(pat, sizeof(pat), pr->ticket_pattern);
	if (ticket == NULL) {
		if (!need_ticket)
			return EL_OK;
		if (pr->ticket_pattern != NULL)
			return el_fail(w, EL_EINVAL, "profile %s: a ticket matching %s is required",
			    pr->name, pat);
		return el_fail(w, EL_EINVAL, "profile %s: a ticket is required", pr->name);
	}
	if (strlen(ticket) > TICKET_MAX || schema_has_control(ticket))
		return el_fail(w, EL_EINVAL, "profile %s: a ticket is at most %d characters "
		    "without control characters", pr->name, TICKET_MAX);
	if (pr->ticket_pattern != NULL && regexec(&pr->ticket_re, ticket, 0, NULL, 0) != 0)
		return el_fail(w, EL_EINVAL, "profile %s: ticket \"%s\" does not match %s",
		    pr->name, schema_show(q, sizeof(q), ticket), pat);
	return EL_OK;
}

enum el_err
policy_check_request(const struct policy *p, const char *user, const char *profile,
    int64_t *duration, const char *reason, const char *ticket, struct el_why *w)
{
	const struct pol_profile *pr;
	char q[SCHEMA_SHOW_LEN], who[256], b1[32], b2[32];

	if (p == NULL || user == NULL || profile == NULL || duration == NULL)
		return el_fail(w, EL_EINVAL, "missing user, profile or duration");
	if ((pr = policy_profile(p, profile)) == NULL)
		return el_fail(w, EL_ENOENT, "no profile named \"%s\"",
		    schema_show(q, sizeof(q), profile));
	if (!in_requesters(p, pr, user)) {
		policy_join(who, sizeof(who), pr->requesters, pr->nrequesters, ", ");
		return el_fail(w, EL_EPERM, "profile %s: %s is not in its requesters (%s)",
		    pr->name, schema_show(q, sizeof(q), user), who);
	}
	if (*duration < 0)
		return el_fail(w, EL_EINVAL, "profile %s: the duration must be positive",
		    pr->name);
	if (*duration == 0)
		*duration = pr->default_duration;
	if (*duration > pr->max_duration) {
		el_format_duration(*duration, b1, sizeof(b1));
		el_format_duration(pr->max_duration, b2, sizeof(b2));
		return el_fail(w, EL_EINVAL, "profile %s: %s is longer than its max_duration %s",
		    pr->name, b1, b2);
	}
	return check_text(pr, reason, ticket, pr->ticket_required, w);
}

enum el_err
policy_check_glass(const struct policy *p, const char *user, const char *profile,
    int64_t *duration, const char *reason, const char *ticket, struct el_why *w)
{
	const struct pol_profile *pr;
	char q[SCHEMA_SHOW_LEN], who[256], b1[32], b2[32];
	int64_t max;
	size_t i, total;

	if ((pr = policy_profile(p, profile)) == NULL)
		return el_fail(w, EL_ENOENT, "no profile named \"%s\"",
		    schema_show(q, sizeof(q), profile));
	if (!pr->glass.on)
		return el_fail(w, EL_EPERM, "profile %s does not allow break-glass: ask for it "
		    "the usual way (elevate request %s ...)", pr->name, pr->name);
	for (i = 0; i < pr->glass.nrequesters; i++)
		if (policy_principal_has(p, pr->glass.requesters[i], user))
			break;
	if (i == pr->glass.nrequesters) {
		policy_join(who, sizeof(who), pr->glass.requesters, pr->glass.nrequesters, ", ");
		return el_fail(w, EL_EPERM, "profile %s: %s may not break glass (only %s may)",
		    pr->name, schema_show(q, sizeof(q), user), who);
	}
	if (reason == NULL || trimmed_chars(reason, &total) == 0)
		return el_fail(w, EL_EINVAL, "profile %s: break-glass needs a reason: say what "
		    "the emergency is (--reason)", pr->name);
	max = pr->glass.max_duration > 0 ? pr->glass.max_duration : pr->max_duration;
	if (*duration == 0)
		*duration = pr->default_duration < max ? pr->default_duration : max;
	if (*duration > max) {
		el_format_duration(*duration, b1, sizeof(b1));
		el_format_duration(max, b2, sizeof(b2));
		return el_fail(w, EL_EINVAL, "profile %s: break-glass lasts at most %s; %s asked",
		    pr->name, b2, b1);
	}
	if (*duration < 0)
		return el_fail(w, EL_EINVAL, "profile %s: the duration must be positive",
		    pr->name);
	/* the reason and ticket rules of an ordinary request, a ticket being optional */
	return check_text(pr, reason, ticket, false, w);
}

