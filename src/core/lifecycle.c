/*
 * lifecycle.c — owns the request states and the transition table. Nothing else names a
 * state with a string literal: the store's CHECK constraint, the API's state filter, the
 * metrics and docs/lifecycle.md are all this table.
 */
#include <string.h>

#include "elevate/lifecycle.h"

static const char *const state_names[RS__COUNT] = {
	[RS_PENDING] = "pending",
	[RS_ACTIVATING] = "activating",
	[RS_ACTIVE] = "active",
	[RS_ENDING] = "ending",
	[RS_ENDED] = "ended",
	[RS_DENIED] = "denied",
	[RS_CANCELLED] = "cancelled",
	[RS_LAPSED] = "lapsed",
	[RS_FAILED] = "failed",
};

static const char *const event_names[EV__COUNT] = {
	[EV_QUORUM] = "quorum",
	[EV_DENY] = "deny",
	[EV_CANCEL] = "cancel",
	[EV_LAPSE] = "lapse",
	[EV_FAIL] = "fail",
	[EV_MINTED] = "minted",
	[EV_APPLIED] = "applied",
	[EV_REVOKE] = "revoke",
	[EV_WINDOW_END] = "window_end",
	[EV_REVOKED] = "revoked",
	[EV_BREAK_GLASS] = "break_glass",
};

const struct lifecycle_transition lifecycle_table[] = {
	{RS_PENDING, EV_QUORUM, RS_ACTIVATING, "request.approved"},
	{RS_PENDING, EV_DENY, RS_DENIED, "request.denied"},
	{RS_PENDING, EV_CANCEL, RS_CANCELLED, "request.cancelled"},
	{RS_PENDING, EV_LAPSE, RS_LAPSED, "request.lapsed"},
	{RS_PENDING, EV_FAIL, RS_FAILED, "request.failed"},
	{RS_PENDING, EV_BREAK_GLASS, RS_ACTIVATING, "request.break_glass"},
	{RS_ACTIVATING, EV_MINTED, RS_ACTIVE, "grant.activated"},
	{RS_ACTIVATING, EV_APPLIED, RS_ENDED, "request.extension_applied"},
	{RS_ACTIVATING, EV_FAIL, RS_FAILED, "request.failed"},
	{RS_ACTIVATING, EV_REVOKE, RS_ENDING, "grant.revoke_requested"},
	{RS_ACTIVE, EV_REVOKE, RS_ENDING, "grant.revoke_requested"},
	{RS_ACTIVE, EV_WINDOW_END, RS_ENDING, "grant.window_ended"},
	{RS_ENDING, EV_REVOKED, RS_ENDED, "grant.ended"},
};

const size_t lifecycle_ntransitions = sizeof(lifecycle_table) / sizeof(lifecycle_table[0]);

const char *
lifecycle_state_name(enum req_state s)
{
	return (unsigned)s < RS__COUNT ? state_names[s] : "?";
}

const char *
lifecycle_event_name(enum req_event e)
{
	return (unsigned)e < EV__COUNT ? event_names[e] : "?";
}

int
lifecycle_state_parse(const char *name)
{
	int i;

	for (i = 0; name != NULL && i < RS__COUNT; i++)
		if (strcmp(name, state_names[i]) == 0)
			return i;
	return -1;
}

const struct lifecycle_transition *
lifecycle_find(enum req_state from, enum req_event ev)
{
	size_t i;

	for (i = 0; i < lifecycle_ntransitions; i++)
		if (lifecycle_table[i].from == from && lifecycle_table[i].event == ev)
			return &lifecycle_table[i];
	return NULL;
}

bool
lifecycle_terminal(enum req_state s)
{
	size_t i;

	for (i = 0; i < lifecycle_ntransitions; i++)
		if (lifecycle_table[i].from == s)
			return false;
	return true;
}

const char *
lifecycle_state_list(void)
{
	return "pending, activating, active, ending, ended, denied, cancelled, lapsed, failed";
}
