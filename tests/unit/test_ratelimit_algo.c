/*
 * The five rate-limit algorithms against reference models, on a clock the
 * test controls (time is a parameter of rk_rl_apply). Randomized cases
 * print their seed; set RK_TEST_SEED to replay one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "algo.h"
#include "rl_algo_util.h"

/* ------------------------------------------------------------ fixed */

/* The fixed window's known flaw: L at the very end of a window and L at
 * the very start of the next all pass, 2L within 2 ms. */
static void test_fixed_window_admits_twice_the_limit_at_a_window_edge(void **st)
{
	(void)st;
	rk_rl_params_t p = params(RK_RL_FIXED_WINDOW, 100, 1000, 0);
	rk_rl_state_t s = {0};
	uint64_t t0 = 1000000; /* a window start */
	int admitted = 0;
	for (int i = 0; i < 150; i++)
		admitted += hit(&s, &p, t0 + 999, 1, NULL);
	for (int i = 0; i < 150; i++)
		admitted += hit(&s, &p, t0 + 1000, 1, NULL);
	assert_int_equal(admitted, 200);
}

/* Random traffic: same decisions as a per-window counter. */
static void test_fixed_window_matches_reference_counter(void **st)
{
	(void)st;
	test_seed(__func__);
	rk_rl_params_t p = params(RK_RL_FIXED_WINDOW, 50, 1000, 0);
	rk_rl_state_t s = {0};
	uint64_t t = 5000, ref_window = 0, ref_count = 0;
	for (int i = 0; i < 20000; i++) {
		t += rnd() % 40;
		uint64_t h = 1 + rnd() % 3;
		if (t / 1000 != ref_window) {
			ref_window = t / 1000;
			ref_count = 0;
		}
		bool want = ref_count + h <= 50;
		if (want)
			ref_count += h;
		rk_rl_verdict_t v;
		assert_int_equal(hit(&s, &p, t, h, &v), want);
		assert_int_equal(v.remaining, 50 - ref_count);
		if (!want)
			assert_int_equal(v.retry_after_ms, 1000 - t % 1000);
	}
}

/* ------------------------------------------------------------ sliding log */

/* A deep copy of a sliding-log state (the ring is on the heap). */
static rk_rl_state_t log_copy(const rk_rl_state_t *s)
{
	rk_rl_state_t c = {0};
	if (s->log.p != NULL) {
		size_t n = sizeof(rk_rl_log_t) +
		           s->log.p->cap * sizeof(rk_rl_log_entry_t);
		c.log.p = malloc(n);
		memcpy(c.log.p, s->log.p, n);
	}
	return c;
}

/* Decision for decision the same as a list of every admitted hit. */
static void test_sliding_log_matches_exact_reference(void **st)
{
	(void)st;
	test_seed(__func__);
	enum { N = 20000 };
	uint64_t *times = calloc(N * 3, sizeof(uint64_t)); /* one per hit */
	size_t ntimes = 0;
	rk_rl_params_t p = params(RK_RL_SLIDING_LOG, 40, 1000, 0);
	rk_rl_state_t s = {0};
	uint64_t t = 77777;
	for (int i = 0; i < N; i++) {
		t += rnd() % 50;
		uint64_t h = 1 + rnd() % 3;
		uint64_t in = 0;
		for (size_t k = 0; k < ntimes; k++)
			in += times[k] + 1000 > t;
		bool want = in + h <= 40;
		rk_rl_verdict_t v;
		assert_int_equal(hit(&s, &p, t, h, &v), want);
		if (want)
			for (uint64_t k = 0; k < h; k++)
				times[ntimes++] = t;
		if (!want) {
			/* retry_after is exact: one ms earlier still fails */
			rk_rl_state_t copy = log_copy(&s);
			rk_rl_verdict_t w;
			assert_int_equal(rk_rl_apply(&copy, &p,
			                             t + v.retry_after_ms, h,
			                             false, &w),
			                 RK_OK);
			assert_true(w.allowed);
			rk_rl_state_clear(&copy, RK_RL_SLIDING_LOG);
			if (v.retry_after_ms > 0) {
				copy = log_copy(&s);
				rk_rl_apply(&copy, &p, t + v.retry_after_ms - 1,
				            h, false, &w);
				assert_false(w.allowed);
				rk_rl_state_clear(&copy, RK_RL_SLIDING_LOG);
			}
		}
	}
	/* The log never holds more than min(L, U) entries. */
	assert_true(s.log.p == NULL || s.log.p->cap <= 64);
	rk_rl_state_clear(&s, RK_RL_SLIDING_LOG);
	free(times);
}

/* ------------------------------------------------------- sliding window */

/* Largest number admitted in any window of length D ending at an
 * admission time. */
static uint64_t max_in_span(const uint64_t *t, size_t n, uint64_t d)
{
	uint64_t best = 0;
	size_t lo = 0;
	for (size_t hi = 0; hi < n; hi++) {
		while (t[lo] + d <= t[hi])
			lo++;
		if (hi - lo + 1 > best)
			best = hi - lo + 1;
	}
	return best;
}

/* At a window edge the counter lets through only the overlap share: a
 * full burst of L at the end of a window, and at e ms into the next only
 * about L * e / U more, never the fixed window's 2L. */
static void test_sliding_window_has_no_boundary_spike(void **st)
{
	(void)st;
	rk_rl_params_t p = params(RK_RL_SLIDING_WINDOW, 100, 1000, 0);
	rk_rl_state_t s = {0};
	uint64_t t0 = 1000000;
	int first = 0, second = 0;
	for (int i = 0; i < 150; i++)
		first += hit(&s, &p, t0 + 999, 1, NULL);
	for (int i = 0; i < 150; i++)
		second += hit(&s, &p, t0 + 1010, 1, NULL); /* e = 10 */
	assert_int_equal(first, 100);
	/* used = 100 * 990/1000 = 99: one more fits. */
	assert_int_equal(second, 1);
	/* Half way through the next window, half the old burst is gone. */
	int later = 0;
	for (int i = 0; i < 150; i++)
		later += hit(&s, &p, t0 + 1500, 1, NULL);
	assert_int_equal(later, 49); /* 100 * 0.5 + 1 = 51 used */
}

/* Random bursty traffic: decisions equal an independent floating-point
 * model of the estimate, and over every span d <= U at most
 * L * (1 + d/U) hits pass (the documented error). */
static void test_sliding_window_stays_within_documented_error(void **st)
{
	(void)st;
	test_seed(__func__);
	enum { N = 40000 };
	const uint64_t L = 60, U = 1000;
	rk_rl_params_t p = params(RK_RL_SLIDING_WINDOW, L, U, 0);
	rk_rl_state_t s = {0};
	uint64_t *adm = calloc(N, sizeof(uint64_t));
	size_t nadm = 0;
	uint64_t t = 3000000, w = t / U;
	double cur = 0, prev = 0;
	for (int i = 0; i < N; i++) {
		/* on-off: bursts of dense arrivals, then gaps */
		t += (i / 200) % 2 ? rnd() % 60 : rnd() % 4;
		if (t / U == w + 1) {
			prev = cur;
			cur = 0;
		} else if (t / U != w) {
			prev = cur = 0;
		}
		w = t / U;
		double e = (double)(t - w * U);
		double used = prev * (U - e) / U + cur;
		bool want = used + 1 <= (double)L + 1e-9;
		assert_int_equal(hit(&s, &p, t, 1, NULL), want);
		if (want) {
			cur += 1;
			adm[nadm++] = t;
		}
	}
	for (uint64_t d = 1; d <= U; d += 37) {
		uint64_t m = max_in_span(adm, nadm, d);
		uint64_t bound = L + (L * d + U - 1) / U;
		if (m > bound)
			fail_msg("span %llu ms admitted %llu > bound %llu",
			         (unsigned long long)d, (unsigned long long)m,
			         (unsigned long long)bound);
	}
	free(adm);
}

/* retry_after is exact for the counter too. */
static void test_sliding_window_retry_after_is_exact(void **st)
{
	(void)st;
	test_seed(__func__);
	rk_rl_params_t p = params(RK_RL_SLIDING_WINDOW, 30, 60000, 0);
	rk_rl_state_t s = {0};
	uint64_t t = 600000;
	for (int i = 0; i < 5000; i++) {
		t += rnd() % 3000;
		uint64_t h = 1 + rnd() % 4;
		rk_rl_verdict_t v;
		if (hit(&s, &p, t, h, &v))
			continue;
		rk_rl_state_t copy = s;
		rk_rl_verdict_t w;
		rk_rl_apply(&copy, &p, t + v.retry_after_ms, h, false, &w);
		assert_true(w.allowed);
		copy = s;
		rk_rl_apply(&copy, &p, t + v.retry_after_ms - 1, h, false, &w);
		assert_false(w.allowed);
	}
}

/* ------------------------------------------------------------ buckets */

/* A fresh token bucket gives its whole burst at once, then the rate. */
static void test_token_bucket_bursts_then_refills_at_rate(void **st)
{
	(void)st;
	rk_rl_params_t p = params(RK_RL_TOKEN_BUCKET, 10, 1000, 25);
	rk_rl_state_t s = {0};
	uint64_t t = 42000;
	rk_rl_verdict_t v;
	for (int i = 0; i < 25; i++)
		assert_true(hit(&s, &p, t, 1, &v));
	assert_int_equal(v.remaining, 0);
	assert_false(hit(&s, &p, t, 1, &v));
	assert_int_equal(v.retry_after_ms, 100); /* one token per 100 ms */
	assert_false(hit(&s, &p, t + 99, 1, &v));
	assert_true(hit(&s, &p, t + 100, 1, &v));
	/* over 10 s at most 25 + 100 pass */
	int n = 0;
	for (uint64_t ms = 101; ms <= 10000; ms++)
		n += hit(&s, &p, t + ms, 1, NULL);
	assert_int_equal(n, 99);
}

/* Against a model that adds the refill millisecond by millisecond. */
static void test_token_bucket_matches_stepwise_reference(void **st)
{
	(void)st;
	test_seed(__func__);
	const uint64_t L = 7, U = 1000, B = 12;
	rk_rl_params_t p = params(RK_RL_TOKEN_BUCKET, L, U, B);
	rk_rl_state_t s = {0};
	uint64_t t = 10000, ref = B * U; /* tokens x U */
	for (int i = 0; i < 20000; i++) {
		uint64_t dt = rnd() % 200;
		for (uint64_t k = 0; k < dt; k++)
			ref = ref + L > B * U ? B * U : ref + L;
		t += dt;
		uint64_t h = 1 + rnd() % 3;
		bool want = ref >= h * U;
		if (want)
			ref -= h * U;
		rk_rl_verdict_t v;
		assert_int_equal(hit(&s, &p, t, h, &v), want);
		assert_int_equal(v.remaining, ref / U);
	}
}

/* The leaking bucket takes a burst into its queue and lets it out at the
 * outflow rate: the n-th queued hit waits n * U / L. */
static void test_leaking_bucket_outflow_is_at_rate(void **st)
{
	(void)st;
	rk_rl_params_t p = params(RK_RL_LEAKING_BUCKET, 20, 1000, 10);
	rk_rl_state_t s = {0};
	uint64_t t = 5000;
	rk_rl_verdict_t v;
	for (uint64_t i = 0; i < 10; i++) {
		assert_true(hit(&s, &p, t, 1, &v));
		assert_int_equal(v.delay_ms, i * 50);
	}
	assert_false(hit(&s, &p, t, 1, &v)); /* queue full */
	assert_int_equal(v.retry_after_ms, 50);
	assert_true(hit(&s, &p, t + 50, 1, &v));
	assert_int_equal(v.delay_ms, 450);
}

/* Random arrivals: departures (arrival + delay) never come closer than
 * U / L apart, so the outflow never exceeds the rate. */
static void test_leaking_bucket_departures_never_exceed_rate(void **st)
{
	(void)st;
	test_seed(__func__);
	rk_rl_params_t p = params(RK_RL_LEAKING_BUCKET, 50, 1000, 30);
	rk_rl_state_t s = {0};
	uint64_t t = 1000, last_departure = 0;
	int admitted = 0;
	for (int i = 0; i < 20000; i++) {
		t += rnd() % 30;
		rk_rl_verdict_t v;
		if (!hit(&s, &p, t, 1, &v))
			continue;
		uint64_t dep = t + v.delay_ms;
		if (admitted++ > 0)
			assert_true(dep >= last_departure + 20);
		last_departure = dep;
	}
	assert_true(admitted > 100);
}

/* ------------------------------------------------------------ common */

/* A read (hits = 0) never changes what later requests get. */
static void test_zero_hits_reads_without_counting(void **st)
{
	(void)st;
	for (int a = 1; a < RK_RL_ALGORITHM_COUNT; a++) {
		rk_rl_params_t p = params((rk_rl_algorithm_t)a, 5, 1000, 0);
		rk_rl_state_t s = {0};
		rk_rl_verdict_t v;
		for (int i = 0; i < 100; i++)
			assert_true(hit(&s, &p, 9000, 0, &v));
		assert_int_equal(v.remaining, 5);
		int n = 0;
		for (int i = 0; i < 10; i++)
			n += hit(&s, &p, 9000, 1, NULL);
		assert_int_equal(n, 5);
		rk_rl_state_clear(&s, (rk_rl_algorithm_t)a);
	}
}

/* A clock that steps back gives no capacity back. */
static void test_clock_stepping_back_gives_nothing_back(void **st)
{
	(void)st;
	for (int a = 1; a < RK_RL_ALGORITHM_COUNT; a++) {
		rk_rl_params_t p = params((rk_rl_algorithm_t)a, 5, 1000, 0);
		rk_rl_state_t s = {0};
		int n = 0;
		for (int i = 0; i < 10; i++)
			n += hit(&s, &p, 50500, 1, NULL);
		for (int i = 0; i < 10; i++)
			n += hit(&s, &p, 40000, 1, NULL); /* 10 s earlier */
		assert_int_equal(n, 5);
		rk_rl_state_clear(&s, (rk_rl_algorithm_t)a);
	}
}

/* Memory per key as documented: 24 bytes of state for every algorithm,
 * and a sliding log ring bounded by min(L, U). */
static void test_state_sizes_are_as_documented(void **st)
{
	(void)st;
	assert_int_equal(sizeof(rk_rl_state_t), 24);
	rk_rl_params_t p = params(RK_RL_SLIDING_LOG, 1000, 1000, 0);
	rk_rl_state_t s = {0};
	for (uint64_t t = 0; t < 5000; t++)
		hit(&s, &p, 100000 + t, 1, NULL);
	/* one entry per ms, at most 1000 live: ring <= 1024 entries */
	size_t bytes = rk_rl_state_heap_bytes(&s, RK_RL_SLIDING_LOG);
	printf("# sliding log at 1000/s, 1 hit/ms: %zu heap bytes\n", bytes);
	assert_true(bytes <= sizeof(rk_rl_log_t) + 1000 * 8);
	rk_rl_state_clear(&s, RK_RL_SLIDING_LOG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
	        test_fixed_window_admits_twice_the_limit_at_a_window_edge),
	    cmocka_unit_test(test_fixed_window_matches_reference_counter),
	    cmocka_unit_test(test_sliding_log_matches_exact_reference),
	    cmocka_unit_test(test_sliding_window_has_no_boundary_spike),
	    cmocka_unit_test(test_sliding_window_stays_within_documented_error),
	    cmocka_unit_test(test_sliding_window_retry_after_is_exact),
	    cmocka_unit_test(test_token_bucket_bursts_then_refills_at_rate),
	    cmocka_unit_test(test_token_bucket_matches_stepwise_reference),
	    cmocka_unit_test(test_leaking_bucket_outflow_is_at_rate),
	    cmocka_unit_test(test_leaking_bucket_departures_never_exceed_rate),
	    cmocka_unit_test(test_zero_hits_reads_without_counting),
	    cmocka_unit_test(test_clock_stepping_back_gives_nothing_back),
	    cmocka_unit_test(test_state_sizes_are_as_documented),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
