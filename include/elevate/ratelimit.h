/*
 * ratelimit.h — token buckets per key (a source address) in a bounded table. A key holds
 * at most `burst` tokens and earns back `per_minute` of them a minute; each charge takes
 * one; a key with less than one token left is blocked until it has earned one back. When
 * the table is full the least recently seen key is forgotten (it would start again with a
 * full bucket). One mutex inside: every call is thread-safe.
 */
#ifndef ELEVATE_RATELIMIT_H
#define ELEVATE_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "elevate/el.h"

#define RATELIMIT_KEY_MAX 47     /* longer keys are cut: an IPv6 address is at most 45 */

struct ratelimit;

/* capacity keys (at least 1), burst >= 1 tokens, per_minute > 0. Free with ratelimit_free. */
enum el_err ratelimit_new(size_t capacity, double burst, double per_minute,
    struct ratelimit **out);
void ratelimit_free(struct ratelimit *rl);
/* Is key blocked at now_ms? When it is, *retry_after (may be NULL) gets the whole seconds
 * until it has a token again, at least 1. An unknown key is never blocked and not added. */
bool ratelimit_blocked(struct ratelimit *rl, const char *key, int64_t now_ms,
    int *retry_after);
/* Takes one token from key (adding the key when new). True when this charge left the key
 * blocked and it was not before: the moment to say so once in the log. */
bool ratelimit_charge(struct ratelimit *rl, const char *key, int64_t now_ms);
/* How many keys the table holds now. */
size_t ratelimit_size(struct ratelimit *rl);

#endif
