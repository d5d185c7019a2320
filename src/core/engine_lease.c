/*
 * engine_lease.c — owns this node's share of the due work among several nodes on one
 * store: claiming due requests with a lease in this node's name (config `node`), the
 * registry of the requests whose AWS work is in flight here and the thread that renews
 * their leases while it runs, letting leases go (at the end of the work, all of this
 * node's at its start and stop), and the wake-ups from the other nodes (the store's
 * listener wakes the reaper, the mailer and the revocations waited for).
 *
 * A lease is a claim on a row that another node respects until it runs out: LEASE_MS after
 * its last renewal, so a dead node's work waits at most that long. It is never what makes
 * a state change right: that stays a compare-and-set on the state read afresh in the
 * writing transaction, so a node whose lease ran out while it worked (a stall longer than
 * the lease) can only lose the race, never undo what another node did.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "elevate/log.h"
#include "engine_int.h"

const char *
engine_node(const struct engine *e)
{
	return e->cfg->node != NULL ? e->cfg->node : "localhost";
}

/* A claim alone is a relaxed transaction: one an OS crash loses was never worked on, and
 * its lease would run out anyway. Inside the caller's transaction it is part of that. */
enum el_err
engine_claim(struct engine *e, enum store_due kind, int64_t now_ms, int limit, char ***ids,
    size_t *n)
{
	enum el_err r;

	if ((r = store_begin_relaxed(e->store)) != EL_OK)
		return r;
	if ((r = store_lease_claim(e->store, kind, engine_node(e), now_ms, now_ms + LEASE_MS,
	    limit, ids, n)) != EL_OK) {
		store_rollback(e->store);
		return r;
	}
	if ((r = store_commit(e->store)) != EL_OK) {
		el_strv_free(*ids, *n);
		*ids = NULL;
		*n = 0;
	}
	return r;
}

enum el_err
engine_lease_take(struct engine *e, const char *id)
{
	return store_lease_take(e->store, id, engine_node(e), el_now_ms() + LEASE_MS);
}

enum el_err
engine_lease_release(struct engine *e, const char *id)
{
	return store_lease_release(e->store, id, engine_node(e));
}

/* ---- the work in flight here, renewed ---- */

void
engine_lease_hold(struct engine *e, char *const *ids, size_t n)
{
	size_t i;

	pthread_mutex_lock(&e->lease_mu);
	for (i = 0; i < n; i++) {
		char *dup, **nv;

		if (e->nleased == e->leased_cap) {
			size_t cap = e->leased_cap ? e->leased_cap * 2 : 16;
			if ((nv = realloc(e->leased, cap * sizeof(*nv))) == NULL)
				break;   /* not renewed: it runs out, and the work is done again */
			e->leased = nv;
			e->leased_cap = cap;
		}
		if ((dup = strdup(ids[i])) == NULL)
			break;
		e->leased[e->nleased++] = dup;
	}
	pthread_mutex_unlock(&e->lease_mu);
}

void
engine_lease_unhold(struct engine *e, char *const *ids, size_t n)
{
	size_t i, j;

	pthread_mutex_lock(&e->lease_mu);
	for (i = 0; i < n; i++)
		for (j = e->nleased; j-- > 0;)
			if (strcmp(e->leased[j], ids[i]) == 0) {
				free(e->leased[j]);
				e->leased[j] = e->leased[--e->nleased];
				break;
			}
	pthread_mutex_unlock(&e->lease_mu);
}

/* One renewal of every lease held for work in flight, in one relaxed transaction (a
 * renewal an OS crash loses only lets the lease run out sooner). Called without lease_mu. */
static void
renew(struct engine *e, char **ids, size_t n)
{
	size_t lost = 0;
	enum el_err r;

	if ((r = store_begin_relaxed(e->store)) == EL_OK) {
		if ((r = store_lease_renew(e->store, engine_node(e), ids, n,
		    el_now_ms() + LEASE_MS, &lost)) == EL_OK)
			r = store_commit(e->store);
		else
			store_rollback(e->store);
	}
	if (r != EL_OK)
		log_warn("leases: cannot renew %zu lease%s on work in flight (%s): another node "
		    "takes the work over if this lasts %d ms", n, n == 1 ? "" : "s",
		    store_errmsg(), LEASE_MS);
	else if (lost > 0)
		log_warn("leases: %zu of %zu leases on work in flight here ran out before they "
		    "were renewed and another node holds them now: it may do that work too "
		    "(whose state changes win by compare-and-set)", lost, n);
}

static void *
leaser_main(void *arg)
{
	struct engine *e = arg;

	pthread_mutex_lock(&e->lease_mu);
	while (!e->leaser_stop) {
		struct timespec until;
		char **ids = NULL;
		size_t n = 0, i;

		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += (long)LEASE_RENEW_MS * 1000000L;
		until.tv_sec += until.tv_nsec / 1000000000L;
		until.tv_nsec %= 1000000000L;
		while (!e->leaser_stop &&
		    pthread_cond_timedwait(&e->lease_cv, &e->lease_mu, &until) != ETIMEDOUT)
			;
		if (e->leaser_stop || e->nleased == 0)
			continue;
		if ((ids = calloc(e->nleased, sizeof(*ids))) != NULL)
			for (n = 0; n < e->nleased; n++)
				if ((ids[n] = strdup(e->leased[n])) == NULL)
					break;
		pthread_mutex_unlock(&e->lease_mu);
		if (n > 0)
			renew(e, ids, n);
		for (i = 0; i < n; i++)
			free(ids[i]);
		free(ids);
		pthread_mutex_lock(&e->lease_mu);
	}
	pthread_mutex_unlock(&e->lease_mu);
	return NULL;
}

/* The store's listener: another node committed something to look at. */
static void
peer_woke(void *arg)
{
	struct engine *e = arg;

	engine_wake_reaper(e);
	engine_wake_mailer(e);
	engine_webhooks_wake(e);
	engine_ends_changed(e);   /* a revoke waited for here may have ended there */
}

/* Lets go of every lease of this node: nothing of its own is in flight. */
static void
release_all(struct engine *e, const char *when)
{
	int64_t n = 0;

	if (store_lease_release_all(e->store, engine_node(e), &n) != EL_OK)
		log_warn("leases: cannot let go of node %s's leases at %s (%s): they run out "
		    "within %d ms", engine_node(e), when, store_errmsg(), LEASE_MS);
	else if (n > 0)
		log_info("leases: node %s let go of %lld lease%s at %s", engine_node(e),
		    (long long)n, n == 1 ? "" : "s", when);
}

enum el_err
engine_leases_start(struct engine *e)
{
	/* What this node held when it stopped or died was in flight in a process that is
	 * gone: due again at once. Another node's leases are its own until they run out. */
	release_all(e, "start");
	if (pthread_create(&e->leaser, NULL, leaser_main, e) != 0)
		return EL_ENOMEM;
	e->leaser_started = 1;
	if (store_listen(e->store, peer_woke, e) != EL_OK)
		log_warn("leases: no wake-ups from the other nodes (%s): this node finds their "
		    "new work at its own deadlines only", store_errmsg());
	return EL_OK;
}

void
engine_leases_stop(struct engine *e)
{
	store_listen_stop(e->store);
	if (e->leaser_started) {
		pthread_mutex_lock(&e->lease_mu);
		e->leaser_stop = 1;
		pthread_cond_broadcast(&e->lease_cv);
		pthread_mutex_unlock(&e->lease_mu);
		pthread_join(e->leaser, NULL);
		e->leaser_started = 0;
		/* The work has ended (engine_workers_wait): hand what is left over at once. */
		release_all(e, "stop");
	}
}
