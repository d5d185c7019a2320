/*
 * lifecycle.h — the request states and the one transition table (state × event → state,
 * with the audit event each transition records). docs/lifecycle.md shows the same table;
 * test_lifecycle keeps the two equal. The engine changes a state only through
 * engine_transition(), a compare-and-set in the store built on this table.
 */
#ifndef ELEVATE_LIFECYCLE_H
#define ELEVATE_LIFECYCLE_H

#include <stdbool.h>
#include <stddef.h>

enum req_state {
	RS_PENDING,
	RS_ACTIVATING,
	RS_ACTIVE,
	RS_ENDING,
	RS_ENDED,
	RS_DENIED,
	RS_CANCELLED,
	RS_LAPSED,
	RS_FAILED,
	RS__COUNT
};

enum req_event {
	EV_QUORUM,       /* the vote that completes the quorum */
	EV_DENY,
	EV_CANCEL,
	EV_LAPSE,        /* no decision before pending_until */
	EV_FAIL,         /* AWS refused, or an extension cannot be applied */
	EV_MINTED,       /* the grant's first credentials are stored */
	EV_APPLIED,      /* an extension moved its grant's window */
	EV_REVOKE,       /* early end, asked by a person */
	EV_WINDOW_END,
	EV_REVOKED,      /* sessions terminated, credentials denied: access is over */
	EV_BREAK_GLASS,  /* an emergency request: active at once, reviewed afterwards */
	EV__COUNT
};

struct lifecycle_transition {
	enum req_state from;
	enum req_event event;
	enum req_state to;
	const char *audit_event;
};

extern const struct lifecycle_transition lifecycle_table[];
extern const size_t lifecycle_ntransitions;

const char *lifecycle_state_name(enum req_state s);
const char *lifecycle_event_name(enum req_event e);
/* -1 when the name is no state. */
int lifecycle_state_parse(const char *name);
/* The transition for (from, event), or NULL when the table has none. */
const struct lifecycle_transition *lifecycle_find(enum req_state from, enum req_event ev);
/* A state no event leaves. */
bool lifecycle_terminal(enum req_state s);
/* "pending, activating, ..." (every state, in order): for messages and validation. */
const char *lifecycle_state_list(void);

#endif
