/*
 * ratelimit.c — owns the per-key token buckets (ratelimit.h): a fixed array of entries,
 * a hash of chains over it, and a recency list whose tail is forgotten when the array is
 * full. No allocation after ratelimit_new.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "elevate/ratelimit.h"

struct rl_entry {
	char key[RATELIMIT_KEY_MAX + 1];
	double tokens;
	int64_t at_ms;             /* tokens were counted at this time */
	int32_t hnext;             /* next in its hash chain, -1 at the end */
	int32_t newer, older;      /* recency list, -1 at its ends */
};

struct ratelimit {
	pthread_mutex_t mu;
	double burst, per_ms;
	struct rl_entry *v;
	size_t cap, used;
	int32_t *heads;            /* nheads chains, nheads a power of two >= 2 * cap */
	size_t nheads;
	int32_t newest, oldest;
};

static size_t
slot_of(const struct ratelimit *rl, const char *key)
{
	uint32_t h = 2166136261u;   /* FNV-1a */

	for (; *key; key++)
		h = (h ^ (unsigned char)*key) * 16777619u;
	return h & (rl->nheads - 1);
}

enum el_err
ratelimit_new(size_t capacity, double burst, double per_minute, struct ratelimit **out)
{
	struct ratelimit *rl;
	size_t i;

	if (capacity < 1 || capacity > (1u << 24) || burst < 1 || !(per_minute > 0))
		return EL_EINVAL;
	if ((rl = calloc(1, sizeof(*rl))) == NULL)
		return EL_ENOMEM;
	rl->burst = burst;
	rl->per_ms = per_minute / 60000.0;
	rl->cap = capacity;
	for (rl->nheads = 2; rl->nheads < 2 * capacity; rl->nheads *= 2)
		;
	rl->v = calloc(capacity, sizeof(*rl->v));
	rl->heads = malloc(rl->nheads * sizeof(*rl->heads));
	if (rl->v == NULL || rl->heads == NULL) {
		ratelimit_free(rl);
		return EL_ENOMEM;
	}
	for (i = 0; i < rl->nheads; i++)
		rl->heads[i] = -1;
	rl->newest = rl->oldest = -1;
	pthread_mutex_init(&rl->mu, NULL);
	*out = rl;
	return EL_OK;
}

void
ratelimit_free(struct ratelimit *rl)
{
	if (rl == NULL)
		return;
	if (rl->v != NULL && rl->heads != NULL)
		pthread_mutex_destroy(&rl->mu);
	free(rl->v);
	free(rl->heads);
	free(rl);
}

static void
unlink_recency(struct ratelimit *rl, int32_t i)
{
	struct rl_entry *e = &rl->v[i];

	if (e->newer >= 0)
		rl->v[e->newer].older = e->older;
	else
		rl->newest = e->older;
	if (e->older >= 0)
		rl->v[e->older].newer = e->newer;
	else
		rl->oldest = e->newer;
}

static void
make_newest(struct ratelimit *rl, int32_t i)
{
	struct rl_entry *e = &rl->v[i];

	e->newer = -1;
	e->older = rl->newest;
	if (rl->newest >= 0)
		rl->v[rl->newest].newer = i;
	rl->newest = i;
	if (rl->oldest < 0)
		rl->oldest = i;
}

/* The entry of key (made the newest), or -1. */
static int32_t
find(struct ratelimit *rl, const char *key)
{
	int32_t i;

	for (i = rl->heads[slot_of(rl, key)]; i >= 0; i = rl->v[i].hnext)
		if (strcmp(rl->v[i].key, key) == 0) {
			unlink_recency(rl, i);
			make_newest(rl, i);
			return i;
		}
	return -1;
}

/* A new entry for key with a full bucket: a free one, or the oldest one forgotten. */
static int32_t
add(struct ratelimit *rl, const char *key, int64_t now_ms)
{
	int32_t i, *pp;
	size_t s;

	if (rl->used < rl->cap)
		i = (int32_t)rl->used++;
	else {
		i = rl->oldest;
		for (pp = &rl->heads[slot_of(rl, rl->v[i].key)]; *pp != i; pp = &rl->v[*pp].hnext)
			;
		*pp = rl->v[i].hnext;
		unlink_recency(rl, i);
	}
	el_strlcpy(rl->v[i].key, key, sizeof(rl->v[i].key));
	rl->v[i].tokens = rl->burst;
	rl->v[i].at_ms = now_ms;
	s = slot_of(rl, rl->v[i].key);
	rl->v[i].hnext = rl->heads[s];
	rl->heads[s] = i;
	make_newest(rl, i);
	return i;
}

static void
refill(const struct ratelimit *rl, struct rl_entry *e, int64_t now_ms)
{
	if (now_ms > e->at_ms) {
		e->tokens += (double)(now_ms - e->at_ms) * rl->per_ms;
		if (e->tokens > rl->burst)
			e->tokens = rl->burst;
	}
	e->at_ms = now_ms;   /* a clock that stepped back earns nothing */
}

/* A key as the table holds it (cut to RATELIMIT_KEY_MAX). */
static const char *
cut(const char *key, char *buf)
{
	el_strlcpy(buf, key ? key : "", RATELIMIT_KEY_MAX + 1);
	return buf;
}

bool
ratelimit_blocked(struct ratelimit *rl, const char *key, int64_t now_ms, int *retry_after)
{
	char k[RATELIMIT_KEY_MAX + 1];
	bool blocked = false;
	int32_t i;

	pthread_mutex_lock(&rl->mu);
	if ((i = find(rl, cut(key, k))) >= 0) {
		refill(rl, &rl->v[i], now_ms);
		if (rl->v[i].tokens < 1) {
			blocked = true;
			if (retry_after != NULL) {
				double secs = ceil((1 - rl->v[i].tokens) / rl->per_ms / 1000.0);
				*retry_after = secs < 1 ? 1 : secs > 86400 ? 86400 : (int)secs;
			}
		}
	}
	pthread_mutex_unlock(&rl->mu);
	return blocked;
}

bool
ratelimit_charge(struct ratelimit *rl, const char *key, int64_t now_ms)
{
	char k[RATELIMIT_KEY_MAX + 1];
	bool was, now;
	int32_t i;

	pthread_mutex_lock(&rl->mu);
	if ((i = find(rl, cut(key, k))) < 0)
		i = add(rl, k, now_ms);
	refill(rl, &rl->v[i], now_ms);
	was = rl->v[i].tokens < 1;
	rl->v[i].tokens -= 1;
	if (rl->v[i].tokens < 0)
		rl->v[i].tokens = 0;   /* charges that raced past the check cost no more */
	now = rl->v[i].tokens < 1;
	pthread_mutex_unlock(&rl->mu);
	return now && !was;
}

size_t
ratelimit_size(struct ratelimit *rl)
{
	size_t n;

	pthread_mutex_lock(&rl->mu);
	n = rl->used;
	pthread_mutex_unlock(&rl->mu);
	return n;
}
