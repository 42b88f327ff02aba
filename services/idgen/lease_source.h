/*
 * A worker-id source that leases (datacenter, worker) from the membership
 * agents (worker_id_source: lease; docs/idgen.md, "Worker ids").
 *
 * acquire asks an agent (the configured URLs, in turn) for any free
 * worker id of the configured datacenter, retrying until the acquire
 * timeout; a background thread then renews every third of the ttl, and
 * `held` is true only until the last granted validity (valid_for_ms from
 * when that request was sent, on the monotonic clock) runs out, or at
 * once when an agent says the lease is another's. Such a generator stays
 * refused until it is restarted.
 *
 * Ownership: rk_idgen_lease_new makes the source; rk_idgen_lease_worker
 * fills a rk_idgen_worker_t whose impl is the source (borrowed: the
 * source must outlive the service that copies it). rk_idgen_lease_stop
 * releases the lease and ends the thread (idempotent; call it while the
 * sealer still lives, before the runtime tears down); then
 * rk_idgen_lease_free.
 */
#ifndef RK_IDGEN_LEASE_SOURCE_H
#define RK_IDGEN_LEASE_SOURCE_H

#include <stdint.h>

#include <ringkv/status.h>

#include "crypto/seal.h"
#include "idgen_config.h"
#include "worker.h"

typedef struct rk_idgen_lease rk_idgen_lease_t;

/* A source for CFG's datacenter, agents and lease timings. SEALER is
 * borrowed (NULL: unsealed). RK_INVALID_ARGUMENT when CFG names no
 * agent or a bad URL. */
rk_status_t rk_idgen_lease_new(const rk_idgen_config_t *cfg,
                               rk_sealer_t *sealer, rk_idgen_lease_t **out);

/* Fills OUT as a lease-kind source backed by L. */
void rk_idgen_lease_worker(rk_idgen_lease_t *l, rk_idgen_worker_t *out);

/* Stops renewing and gives the lease back (best effort, one short call
 * per agent URL until one answers). Idempotent. */
void rk_idgen_lease_stop(rk_idgen_lease_t *l);

/* Stops (if not yet) and frees. NULL is ok. */
void rk_idgen_lease_free(rk_idgen_lease_t *l);

#endif
