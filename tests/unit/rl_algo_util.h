/*
 * What the rate-limit algorithm tests share (test_ratelimit_algo.c,
 * test_ratelimit_subwindow.c): a seeded generator that prints its seed
 * (RK_TEST_SEED replays one), parameters, and one hit applied in both of
 * rk_rl_apply's phases with the phases checked to agree.
 */
#ifndef RK_TEST_RL_ALGO_UTIL_H
#define RK_TEST_RL_ALGO_UTIL_H

#include <stdbool.h>
#include <stdint.h>

#include "algo.h"

/* Seeds rnd() from RK_TEST_SEED or the clock and prints the seed under
 * NAME; returns it. */
uint64_t test_seed(const char *name);

/* The next pseudo-random number (xorshift64*). */
uint64_t rnd(void);

/* Parameters of algorithm A: LIMIT per UNIT_MS, BURST (0: the limit). */
rk_rl_params_t params(rk_rl_algorithm_t a, uint64_t limit, uint64_t unit_ms,
                      uint64_t burst);

/* Applies HITS at NOW with commit, after checking that the check-only
 * phase gives the same verdict; returns whether admitted. V may be NULL. */
bool hit(rk_rl_state_t *s, const rk_rl_params_t *p, uint64_t now, uint64_t hits,
         rk_rl_verdict_t *v);

#endif
