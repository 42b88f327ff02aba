/*
 * ringkv-ratelimit as a service of the shared runtime (lib/service): its
 * config section, its start, reload and stop hooks. main.c is one call.
 *
 * Config section `ratelimit` (docs/ratelimit.md):
 *
 *	ratelimit:
 *	  rules_file: ratelimit-rules.yaml  # relative to this file; absent:
 *	                              # no rules (every check NOT_FOUND)
 *	  shards: 64                  # key-table shards (restart to change)
 *	  max_keys: 1048576           # keys kept in all (restart to change)
 *	  max_log_memory: 64MiB       # sliding-log rings in all (restart)
 *	  max_hits: 1000000           # most hits one check may count
 *	  max_batch: 1000             # most checks in one CheckBatch
 *	  sliding_log_max_entries: 65536  # per-key bound of a sliding log
 *	  unreachable_retry: 1s       # retry-after when failing closed
 *
 * The rules file is read with the config: a bad one stops start-up (exit
 * 2, every problem named by file and line), and on SIGHUP a bad one is
 * rejected with the same messages while the old rules stay in force.
 */
#ifndef RK_RATELIMIT_H
#define RK_RATELIMIT_H

#include "service/service.h"

extern const rk_service_spec_t rk_ratelimit_spec;

#endif
