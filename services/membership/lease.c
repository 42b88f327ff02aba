/*
 * Worker-id lease promises of one agent; see lease.h.
 *
 * This is the voter's half of the lease protocol (docs/membership.md,
 * "Worker-id leases"). Each agent keeps, per (datacenter, worker), at most
 * one promise to one lease id. A proposer needs a majority of such
 * promises to grant; any two majorities of one electorate share an agent,
 * and that agent cannot promise one slot to two live leases, so two
 * proposers (two sides of a partition) cannot both grant it.
 *
 * Time: a promise is kept on the voter's monotonic clock for ttl + skew
 * from when the vote arrived, which is after the holder sent its request;
 * the holder issues for ttl - skew from when it sent it. The 2 x skew gap
 * absorbs clock-rate differences and scheduling between the two. Wall
 * time is only shown (ListLeases), never decided on.
 *
 * Promises live in memory: an agent that restarts forgets them. It then
 * counts as one vote that may promise anew, which a majority tolerates
 * for one agent at a time (docs/membership.md says what that means).
 */
#include "lease.h"

#include <string.h>

void rk_ms_lease_table_init(rk_ms_lease_table_t *t, uint64_t skew_ms)
{
	memset(t->slot, 0, sizeof(t->slot));
	pthread_mutex_init(&t->mu, NULL);
	t->skew_ms = skew_ms;
}

void rk_ms_lease_table_fini(rk_ms_lease_table_t *t)
{
	pthread_mutex_destroy(&t->mu);
}

/* Whether slot S is promised to a live lease at NOW. */
static bool live(const rk_ms_lease_t *s, uint64_t now_mono)
{
	return s->lease_id != 0 && s->expires_mono > now_mono;
}

static bool same(const rk_ms_lease_t *s, const rk_ms_lease_t *l)
{
	return s->lease_id == l->lease_id &&
	       memcmp(s->holder, l->holder, RK_MS_LEASE_HOLDER) == 0;
}

bool rk_ms_lease_vote(rk_ms_lease_table_t *t, int kind, const rk_ms_lease_t *l,
                      uint64_t now_mono, uint64_t now_wall,
                      rk_ms_lease_t *conflict)
{
	if (l->dc >= RK_MS_LEASE_DCS || l->worker >= RK_MS_LEASE_WORKERS ||
	    l->lease_id == 0)
		return false;
	if (kind != RK_MS_VOTE_RELEASE &&
	    (l->ttl_ms == 0 || l->ttl_ms > RK_MS_LEASE_MAX_TTL))
		return false;
	bool granted = false;
	pthread_mutex_lock(&t->mu);
	rk_ms_lease_t *s = &t->slot[l->dc][l->worker];
	switch (kind) {
	case RK_MS_VOTE_ACQUIRE:
	case RK_MS_VOTE_RENEW:
		if (!live(s, now_mono) || same(s, l)) {
			*s = *l;
			s->expires_mono = now_mono + l->ttl_ms + t->skew_ms;
			s->expires_wall = now_wall + l->ttl_ms + t->skew_ms;
			granted = true;
		} else if (conflict != NULL) {
			*conflict = *s;
		}
		break;
	case RK_MS_VOTE_RELEASE:
		if (same(s, l))
			memset(s, 0, sizeof(*s));
		granted = true;
		break;
	default:
		break;
	}
	pthread_mutex_unlock(&t->mu);
	return granted;
}

int rk_ms_lease_pick(rk_ms_lease_table_t *t, uint32_t dc, uint32_t preferred,
                     uint32_t start, uint32_t skip, uint64_t now_mono)
{
	if (dc >= RK_MS_LEASE_DCS)
		return -1;
	int found = -1;
	pthread_mutex_lock(&t->mu);
	if (preferred < RK_MS_LEASE_WORKERS && !(skip & (1u << preferred)) &&
	    !live(&t->slot[dc][preferred], now_mono))
		found = (int)preferred;
	for (uint32_t i = 0; found < 0 && i < RK_MS_LEASE_WORKERS; i++) {
		uint32_t w = (start + i) % RK_MS_LEASE_WORKERS;
		if (!(skip & (1u << w)) && !live(&t->slot[dc][w], now_mono))
			found = (int)w;
	}
	pthread_mutex_unlock(&t->mu);
	return found;
}

bool rk_ms_lease_get(rk_ms_lease_table_t *t, uint32_t dc, uint32_t worker,
                     uint64_t now_mono, rk_ms_lease_t *out)
{
	if (dc >= RK_MS_LEASE_DCS || worker >= RK_MS_LEASE_WORKERS)
		return false;
	pthread_mutex_lock(&t->mu);
	bool ok = live(&t->slot[dc][worker], now_mono);
	if (ok)
		*out = t->slot[dc][worker];
	pthread_mutex_unlock(&t->mu);
	return ok;
}

size_t rk_ms_lease_list(rk_ms_lease_table_t *t, uint32_t dc, uint64_t now_mono,
                        rk_ms_lease_t *out, size_t cap)
{
	size_t n = 0;
	pthread_mutex_lock(&t->mu);
	for (uint32_t d = 0; d < RK_MS_LEASE_DCS; d++) {
		if (dc < RK_MS_LEASE_DCS && d != dc)
			continue;
		for (uint32_t w = 0; w < RK_MS_LEASE_WORKERS; w++) {
			rk_ms_lease_t *s = &t->slot[d][w];
			if (s->lease_id == 0)
				continue;
			if (!live(s, now_mono)) {
				memset(s, 0, sizeof(*s));
				continue;
			}
			if (n < cap)
				out[n++] = *s;
		}
	}
	pthread_mutex_unlock(&t->mu);
	return n;
}
