/*
 * Where ringkv-idgen's (datacenter, worker) identity comes from.
 *
 * Today: the config file (worker_id_source: config). The identity is the
 * operator's responsibility: two generators given the same pair on
 * different hosts or data directories would issue duplicate IDs, and
 * nothing here can see that (docs/idgen.md). The one case a host can see,
 * two processes with the same pair in one data directory, is refused by
 * the lock in hwm.c.
 *
 * Tomorrow: a lease from the membership agents (issue 4), granted by a
 * majority, with a TTL. The interface below is the shape that needs: an
 * identity is acquired (may block, may fail), is held until a time, and
 * the service asks before every issue whether it still is; a source that
 * cannot renew stops answering `held`, and the service refuses to issue.
 * The calls it will make are in proto/ringkv/v1/membership.proto
 * (AcquireLease, RenewLease, ReleaseLease to the local agent; validity
 * from valid_for_ms, counted from when the request was sent). A lease may
 * name another worker id than the last one held, so the service will
 * build its generator (and open that identity's mark) after acquire.
 *
 * A rk_idgen_worker_t is plain data; the static source holds no memory,
 * but its impl points into the struct itself: make it in place and do
 * not copy it afterwards.
 */
#ifndef RK_IDGEN_WORKER_H
#define RK_IDGEN_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ringkv/status.h>

/* Values of WorkerIdSource in idgen.proto. */
typedef enum rk_idgen_worker_kind {
	RK_IDGEN_WORKER_CONFIG = 1, /* static, from the config file */
	RK_IDGEN_WORKER_LEASE = 2,  /* leased from the membership agents */
} rk_idgen_worker_kind_t;

typedef struct rk_idgen_identity {
	uint32_t datacenter; /* 0..31 */
	uint32_t worker;     /* 0..31 */
} rk_idgen_identity_t;

/* What a source of identities does. */
typedef struct rk_idgen_worker_ops {
	/* Obtains an identity into OUT; WHY (LEN bytes) on failure. */
	rk_status_t (*acquire)(void *impl, rk_idgen_identity_t *out, char *why,
	                       size_t len);
	/* Whether the identity may still issue now. A source measures
	 * validity on the monotonic clock (a lease's valid_for_ms counts
	 * from when its request was sent), so a wall-clock step can never
	 * stretch it. *EXPIRES_AT_MS receives the end as wall ms, for
	 * display (0: never). */
	bool (*held)(void *impl, uint64_t *expires_at_ms);
	/* Gives the identity back (stops renewing). */
	void (*release)(void *impl);
} rk_idgen_worker_ops_t;

typedef struct rk_idgen_worker {
	rk_idgen_worker_kind_t kind;      /* config or lease */
	const rk_idgen_worker_ops_t *ops; /* static */
	void *impl;                       /* the source's state; for the
	                                     static source, &identity */
	rk_idgen_identity_t identity;     /* valid after acquire */
} rk_idgen_worker_t;

/* A static source of (DC, WORKER). RK_INVALID_ARGUMENT if out of range. */
rk_status_t rk_idgen_worker_static(uint32_t dc, uint32_t worker,
                                   rk_idgen_worker_t *out);

/* Acquires the identity into w->identity. */
rk_status_t rk_idgen_worker_acquire(rk_idgen_worker_t *w, char *why,
                                    size_t len);

/* Whether W may issue now; EXPIRES_AT_MS (may be NULL) as above. */
bool rk_idgen_worker_held(rk_idgen_worker_t *w, uint64_t *expires_at_ms);

void rk_idgen_worker_release(rk_idgen_worker_t *w);

#endif
