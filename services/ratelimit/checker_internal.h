/*
 * Inside the checker: its state, shared by checker.c (one check) and
 * checker_rules.c (creation, rules snapshots, per-rule metrics).
 */
#ifndef RK_RL_CHECKER_INTERNAL_H
#define RK_RL_CHECKER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "checker.h"

#define DEFAULT_MAX_HITS 1000000
#define DEFAULT_RETRY_MS 1000

/* Counters of one limit, made when its rules are installed. */
typedef struct limit_metrics {
	rk_counter_t *hits;   /* hits checked against it */
	rk_counter_t *over;   /* hits it refused (enforced) */
	rk_counter_t *near;   /* hits admitted past its near_limit */
	rk_counter_t *shadow; /* hits it would have refused (shadow mode) */
} limit_metrics_t;

struct rk_rl_checker {
	rk_rl_table_t *table;           /* every key's state */
	_Atomic(rk_rl_rules_t *) rules; /* in effect; holds one reference */
	atomic_long acquiring;          /* readers between load and ref */
	pthread_mutex_t install_lock;   /* one install at a time */
	uint64_t version;               /* of the rules in effect */
	uint32_t max_hits;              /* most hits per check */
	uint32_t retry_ms;              /* retry-after when failed closed */
	rk_metrics_t *metrics;          /* borrowed, may be NULL */
	rk_histogram_t *latency[RK_RL_ALGORITHM_COUNT]; /* per algorithm */
	rk_gauge_t *g_keys;                             /* keys in the table */
	rk_gauge_t *g_log_bytes;                        /* sliding-log rings */
	rk_gauge_t *g_evicted_idle;   /* evictions that lost nothing */
	rk_gauge_t *g_evicted_live;   /* evictions that lost a count */
	atomic_uint_fast64_t checks;  /* for sampling the table's gauges */
	uint64_t (*clock)(void *arg); /* wall ms */
	void *clock_arg;               /* for clock */
	rk_rl_owner_fn owner; /* NULL: all local */
	void *owner_arg;               /* for owner */
};

#endif
