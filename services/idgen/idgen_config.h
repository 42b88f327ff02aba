/*
 * The `idgen:` section of ringkv-idgen's config file (docs/idgen.md lists
 * every field; deploy/config/idgen.yaml shows them with their defaults).
 */
#ifndef RK_IDGEN_CONFIG_H
#define RK_IDGEN_CONFIG_H

#include <limits.h>
#include <stdint.h>

#include "config/config.h"
#include "worker.h"

#define RK_IDGEN_MAX_AGENTS 8 /* idgen.lease.agents entries */

typedef struct rk_idgen_config {
	uint64_t epoch_ms;             /* idgen.epoch, Unix ms */
	uint32_t datacenter_id;        /* idgen.datacenter_id, 0..31 */
	uint32_t worker_id;            /* idgen.worker_id, 0..31 */
	rk_idgen_worker_kind_t source; /* idgen.worker_id_source */
	char data_dir[PATH_MAX];       /* idgen.data_dir, else systemd's
	                                  $STATE_DIRECTORY; "" when neither:
	                                  the mark is then not persisted */
	uint32_t chunk_ms;             /* idgen.high_water_chunk */
	uint32_t max_step_ms;          /* idgen.max_clock_step */
	uint32_t stall_ms;             /* idgen.clock_stall_limit */
	uint32_t threads;              /* idgen.wait_threads: for calls that
	                                  must wait for the clock */
	char agents[RK_IDGEN_MAX_AGENTS][256]; /* idgen.lease.agents: agent
	                                          RPC URLs to lease from */
	uint32_t nagents;              /* entries of agents */
	uint32_t lease_ttl_ms;         /* idgen.lease.ttl */
	uint32_t lease_acquire_ms;     /* idgen.lease.acquire_timeout */
} rk_idgen_config_t;

/* Fills OUT with the defaults. */
void rk_idgen_config_defaults(rk_idgen_config_t *out);

/* Reads the idgen section of CFG into OUT (defaults for what is absent);
 * errors are recorded in CFG, reported by rk_config_finish(). */
void rk_idgen_config_read(rk_config_t *cfg, rk_idgen_config_t *out);

/* Parses an epoch: "YYYY-MM-DDTHH:MM:SSZ" (UTC) or Unix ms as digits.
 * Returns 0, or -1 if TEXT is neither. */
int rk_idgen_parse_epoch(const char *text, uint64_t *ms);

#endif
