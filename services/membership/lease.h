/*
 * One agent's worker-id lease promises (docs/membership.md, "Worker-id
 * leases"): the state a VoteLease changes and ListLeases shows, with no
 * I/O, so tests drive it with their own clock.
 *
 * A promise says "(datacenter, worker) belongs to HOLDER under LEASE_ID
 * until EXPIRES_MONO on my monotonic clock"; that end is the voted ttl
 * plus the skew margin. The proposer (lease_rpc.c) turns a majority of
 * such promises into a grant. Thread-safe: every call takes the table's
 * own mutex.
 */
#ifndef RK_MS_LEASE_H
#define RK_MS_LEASE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RK_MS_LEASE_DCS     32      /* Snowflake datacenter ids 0..31 */
#define RK_MS_LEASE_WORKERS 32      /* Snowflake worker ids 0..31 */
#define RK_MS_LEASE_HOLDER  16      /* bytes of a holder UUID */
#define RK_MS_LEASE_MAX_TTL 600000u /* longest lease, ms */

/* Kinds of vote: the values of ringkv.v1.LeaseVoteKind. */
enum { RK_MS_VOTE_ACQUIRE = 1, RK_MS_VOTE_RENEW = 2, RK_MS_VOTE_RELEASE = 3 };

/* One lease, as voted on and as promised. */
typedef struct rk_ms_lease {
	uint32_t dc;                        /* datacenter id, 0..31 */
	uint32_t worker;                    /* worker id, 0..31 */
	uint8_t holder[RK_MS_LEASE_HOLDER]; /* holder's UUID */
	uint64_t generation;                /* holder's generation */
	uint64_t lease_id;                  /* random, never 0 */
	uint32_t ttl_ms;                    /* length of one grant */
	uint64_t expires_mono;              /* promise end, monotonic ms */
	uint64_t expires_wall;              /* the same as wall ms, shown */
} rk_ms_lease_t;

/* Every promise of one agent: a slot per (dc, worker); lease_id 0 is an
 * empty slot. Zeroed memory plus rk_ms_lease_table_init is a table. */
typedef struct rk_ms_lease_table {
	pthread_mutex_t mu; /* guards slot */
	rk_ms_lease_t slot[RK_MS_LEASE_DCS][RK_MS_LEASE_WORKERS]; /* promises */
	uint64_t skew_ms; /* added to every promise */
} rk_ms_lease_table_t;

void rk_ms_lease_table_init(rk_ms_lease_table_t *t, uint64_t skew_ms);
void rk_ms_lease_table_fini(rk_ms_lease_table_t *t);

/* Applies one vote of KIND on L (dc, worker, holder, lease_id, ttl_ms
 * read) at NOW_MONO / NOW_WALL. Returns whether it is granted; when a
 * live promise to another lease refuses it, *CONFLICT (may be NULL)
 * receives that promise. Rules:
 *   ACQUIRE and RENEW: granted when the slot is empty, its promise has
 *     run out (expires_mono <= now), or it holds the same lease_id and
 *     holder; the promise then ends at now + ttl + skew.
 *   RELEASE: empties the slot if it holds that lease_id; always granted.
 * An out-of-range id or a zero lease_id or ttl is refused. */
bool rk_ms_lease_vote(rk_ms_lease_table_t *t, int kind, const rk_ms_lease_t *l,
                      uint64_t now_mono, uint64_t now_wall,
                      rk_ms_lease_t *conflict);

/* Picks a worker id of DC free here at NOW_MONO, trying PREFERRED first
 * (when < 32), then the others from START upwards, skipping the ids in
 * the bit set SKIP. Returns the id, or -1 when none is free. */
int rk_ms_lease_pick(rk_ms_lease_table_t *t, uint32_t dc, uint32_t preferred,
                     uint32_t start, uint32_t skip, uint64_t now_mono);

/* The live promise of (DC, WORKER) into *OUT; false when none. */
bool rk_ms_lease_get(rk_ms_lease_table_t *t, uint32_t dc, uint32_t worker,
                     uint64_t now_mono, rk_ms_lease_t *out);

/* Copies up to CAP live promises (of DC, or all when DC >= 32) into OUT
 * in (dc, worker) order and returns how many; expired ones are dropped
 * from the table on the way. */
size_t rk_ms_lease_list(rk_ms_lease_table_t *t, uint32_t dc, uint64_t now_mono,
                        rk_ms_lease_t *out, size_t cap);

#endif
