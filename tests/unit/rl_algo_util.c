/* Shared helpers of the rate-limit algorithm tests; see rl_algo_util.h. */
#include "rl_algo_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static uint64_t seed_state; /* rnd()'s state */

uint64_t test_seed(const char *name)
{
	const char *env = getenv("RK_TEST_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 10)
	                    : (uint64_t)time(NULL) ^ (uint64_t)clock();
	printf("# %s: seed %llu (RK_TEST_SEED=%llu to replay)\n", name,
	       (unsigned long long)seed, (unsigned long long)seed);
	seed_state = seed ? seed : 1;
	return seed;
}

uint64_t rnd(void)
{
	/* xorshift64* */
	seed_state ^= seed_state >> 12;
	seed_state ^= seed_state << 25;
	seed_state ^= seed_state >> 27;
	return seed_state * 2685821657736338717ull;
}

rk_rl_params_t params(rk_rl_algorithm_t a, uint64_t limit, uint64_t unit_ms,
                      uint64_t burst)
{
	rk_rl_params_t p = {.limit = limit,
	                    .unit_ms = unit_ms,
	                    .burst = burst ? burst : limit,
	                    .max_log = 65536,
	                    .algorithm = a};
	return p;
}

/* Applies HITS at NOW with commit; returns whether admitted. */
bool hit(rk_rl_state_t *s, const rk_rl_params_t *p, uint64_t now, uint64_t hits,
         rk_rl_verdict_t *v)
{
	rk_rl_verdict_t tmp;
	if (v == NULL)
		v = &tmp;
	assert_int_equal(rk_rl_apply(s, p, now, hits, false, v), RK_OK);
	bool would = v->allowed;
	assert_int_equal(rk_rl_apply(s, p, now, hits, true, v), RK_OK);
	assert_int_equal(would, v->allowed); /* the two phases agree */
	return v->allowed;
}
