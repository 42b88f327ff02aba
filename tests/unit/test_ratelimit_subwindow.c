/*
 * The sliding window counter with K > 1 sub-windows (`sub_windows: K`,
 * algo_sliding_window.c; the bounds are proved in docs/ratelimit.md):
 * against a reference model recomputed from the whole admitted history,
 * on a clock the test controls; its bounds over every span; its exact
 * retry-after; its memory; K = 1 unchanged; and through the checker, its
 * heap block charged to the key table's budget. Randomized cases print
 * their seed; set RK_TEST_SEED to replay one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "algo.h"
#include "rl_algo_util.h"
#include "checker.h"
#include "core/arena.h"
#include "metrics/metrics.h"

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

static rk_rl_params_t params_k(uint64_t limit, uint64_t unit_ms, uint32_t k)
{
	rk_rl_params_t p = params(RK_RL_SLIDING_WINDOW, limit, unit_ms, 0);
	p.sub_windows = k;
	return p;
}

/* A deep copy of a sliding window state (the block is not shared). */
static rk_rl_state_t copy_state(const rk_rl_state_t *s)
{
	rk_rl_state_t c = *s;
	if (s->swk.tag == RK_RL_SUBWIN_TAG) {
		size_t n = RK_RL_SUBWIN_BYTES(s->swk.p->k);
		c.swk.p = malloc(n);
		assert_non_null(c.swk.p);
		memcpy(c.swk.p, s->swk.p, n);
	}
	return c;
}

/* The reference model of the K-sub-window counter, written from the
 * definition in docs/ratelimit.md and kept apart from the code: every
 * admitted hit is kept with its time, sub-window x of window w is
 * [wU + floor(iU/K), wU + floor((i+1)U/K)), found here by search, and the
 * estimate is recomputed from the whole history at each arrival. */
typedef struct ref_k {
	uint64_t u, k, lim;
	uint64_t *t; /* admitted hits' times, one entry per hit */
	size_t n, cap;
} ref_k_t;

static uint64_t ref_bound(const ref_k_t *r, uint64_t w, uint64_t i)
{
	return w * r->u + i * r->u / r->k;
}

/* The sub-window of T: its start and length. */
static void ref_sub(const ref_k_t *r, uint64_t t, uint64_t *start,
                    uint64_t *len)
{
	uint64_t w = t / r->u, i = 0;
	while (ref_bound(r, w, i + 1) <= t)
		i++;
	*start = ref_bound(r, w, i);
	*len = ref_bound(r, w, i + 1) - *start;
}

/* Admitted hits in [A, B). */
static uint64_t ref_count(const ref_k_t *r, uint64_t a, uint64_t b)
{
	uint64_t c = 0;
	for (size_t j = r->n; j > 0 && r->t[j - 1] + 2 * r->u >= b; j--)
		c += r->t[j - 1] >= a && r->t[j - 1] < b;
	return c;
}

/* Would H hits pass at T? Also the estimate's numerator (x LEN), the
 * exact count of the last U ms, and the weighted sub-window's count. */
static bool ref_decide(const ref_k_t *r, uint64_t t, uint64_t h,
                       uint64_t *est_num, uint64_t *len_out, uint64_t *exact,
                       uint64_t *old_out)
{
	uint64_t start, len;
	ref_sub(r, t, &start, &len);
	uint64_t e = t - start;
	uint64_t whole = ref_count(r, start + len - r->u, t + 1);
	uint64_t old = ref_count(r, start - r->u, start + len - r->u);
	*est_num = old * (len - e) + whole * len;
	*len_out = len;
	*exact = ref_count(r, t + 1 - r->u, t + 1);
	*old_out = old;
	return h <= r->lim && *est_num + h * len <= r->lim * len;
}

static void ref_admit(ref_k_t *r, uint64_t t, uint64_t h)
{
	for (uint64_t j = 0; j < h; j++) {
		if (r->n == r->cap) {
			r->cap = r->cap ? 2 * r->cap : 1024;
			r->t = realloc(r->t, r->cap * sizeof(r->t[0]));
			assert_non_null(r->t);
		}
		r->t[r->n++] = t;
	}
}

/* Random on-off traffic, several hits per request, for several K and
 * units (K = 7 and 16 do not divide 1000: sub-windows of unequal
 * length): every verdict equals the reference model's; the estimate is
 * never further from the exact count of the last U ms than the weighted
 * sub-window's hits; and over every span of d ms at most
 *	L                                   for d <= U - ceil(U/K),
 *	L + L * (d - U + ceil(U/K)) / ceil(U/K)   up to d = U,
 * and never more than L plus the most hits of one sub-window. */
static void test_sub_window_counter_matches_reference_and_bound(void **st)
{
	(void)st;
	test_seed(__func__);
	static const struct {
		uint64_t lim, u;
		uint32_t k;
	} cases[] = {{60, 1000, 2},  {60, 1000, 4},   {60, 1000, 7},
	             {60, 1000, 16}, {50, 1000, 64},  {60, 60000, 16},
	             {7, 1000, 8},   {200, 60000, 60}};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		const uint64_t L = cases[c].lim, U = cases[c].u;
		const uint64_t K = cases[c].k;
		rk_rl_params_t p = params_k(L, U, cases[c].k);
		rk_rl_state_t s = {0};
		ref_k_t r = {.u = U, .k = K, .lim = L};
		uint64_t t = 1700000000000ull + rnd() % U;
		uint64_t step = U / 400 + 1;
		for (int i = 0; i < 12000; i++) {
			/* on-off: dense bursts, then sparse stretches and
			 * now and then a silence longer than U */
			uint64_t phase = (uint64_t)(i / 150) % 3;
			t += phase == 0   ? rnd() % (step + 1)
			     : phase == 1 ? rnd() % (20 * step)
			                  : rnd() % (4 * step);
			if (rnd() % 3000 == 0)
				t += U + rnd() % (2 * U);
			uint64_t h = 1 + rnd() % 3;
			uint64_t num, len, exact, old;
			bool want =
			    ref_decide(&r, t, h, &num, &len, &exact, &old);
			/* |estimate - exact| <= the weighted sub-window */
			uint64_t ex = exact * len;
			assert_true(ex <= num + old * len);
			assert_true(num <= ex + old * len);
			rk_rl_verdict_t v;
			bool got = hit(&s, &p, t, h, &v);
			if (got != want)
				fail_msg("K=%llu U=%llu at %d t=%llu: got %d "
				         "want %d",
				         (unsigned long long)K,
				         (unsigned long long)U, i,
				         (unsigned long long)t, got, want);
			if (got)
				ref_admit(&r, t, h);
		}
		uint64_t smax = (U + K - 1) / K;
		/* most admitted in one aligned sub-window */
		uint64_t most = 0;
		for (size_t a = 0, b = 0; a < r.n; a = b) {
			uint64_t st0, ln;
			ref_sub(&r, r.t[a], &st0, &ln);
			for (b = a; b < r.n && r.t[b] < st0 + ln; b++)
				;
			if (b - a > most)
				most = b - a;
		}
		for (uint64_t d = 1; d <= U; d += U / 97 + 1) {
			uint64_t m = max_in_span(r.t, r.n, d);
			uint64_t bound = L;
			if (d + smax > U)
				bound += (L * (d + smax - U) + smax - 1) / smax;
			if (m > bound || m > L + most)
				fail_msg("K=%llu: span %llu ms admitted %llu > "
				         "bound %llu (or L + %llu)",
				         (unsigned long long)K,
				         (unsigned long long)d,
				         (unsigned long long)m,
				         (unsigned long long)bound,
				         (unsigned long long)most);
		}
		uint64_t m = max_in_span(r.t, r.n, U);
		printf("# K=%llu U=%llu L=%llu: %zu admitted; worst span of U "
		       "%llu (L + one sub-window's most: %llu)\n",
		       (unsigned long long)K, (unsigned long long)U,
		       (unsigned long long)L, r.n, (unsigned long long)m,
		       (unsigned long long)(L + most));
		rk_rl_state_clear(&s, RK_RL_SLIDING_WINDOW);
		free(r.t);
	}
}

/* Spans up to U - U/K are exact: a burst of L at the last ms of a window
 * and then requests every 10 ms: K = 10 admits nothing more for 900 ms
 * (the classic counter lets through L * e / U), then the weighted
 * sub-window frees room as it slides out. */
static void
test_sub_window_counter_has_no_excess_within_u_minus_a_sub_window(void **st)
{
	(void)st;
	rk_rl_params_t p1 = params(RK_RL_SLIDING_WINDOW, 100, 1000, 0);
	rk_rl_params_t pk = params_k(100, 1000, 10);
	rk_rl_state_t s1 = {0}, sk = {0};
	uint64_t t0 = 1000000;
	int n1 = 0, nk = 0;
	for (int i = 0; i < 150; i++) {
		n1 += hit(&s1, &p1, t0 + 999, 1, NULL);
		nk += hit(&sk, &pk, t0 + 999, 1, NULL);
	}
	assert_int_equal(n1, 100);
	assert_int_equal(nk, 100);
	n1 = nk = 0;
	for (uint64_t t = t0 + 1000; t < t0 + 1900; t += 10) {
		n1 += hit(&s1, &p1, t, 1, NULL);
		nk += hit(&sk, &pk, t, 1, NULL);
	}
	printf("# within 900 ms after a full burst: K=1 admitted %d, K=10 "
	       "%d\n",
	       n1, nk);
	assert_true(n1 > 40);
	assert_int_equal(nk, 0);
	/* Half way through the burst's sub-window's last overlap. */
	int later = 0;
	for (int i = 0; i < 150; i++)
		later += hit(&sk, &pk, t0 + 1950, 1, NULL);
	assert_int_equal(later, 50); /* 100 * 50/100 used */
	rk_rl_state_clear(&sk, RK_RL_SLIDING_WINDOW);
}

/* retry_after is exact to the millisecond for K > 1 as for K = 1. */
static void test_sub_window_counter_retry_after_is_exact(void **st)
{
	(void)st;
	test_seed(__func__);
	static const uint32_t ks[] = {2, 7, 16, 64};
	for (size_t c = 0; c < sizeof(ks) / sizeof(ks[0]); c++) {
		rk_rl_params_t p = params_k(30, 60000, ks[c]);
		rk_rl_state_t s = {0};
		uint64_t t = 600000;
		int refused = 0;
		for (int i = 0; i < 4000; i++) {
			t += rnd() % 3000;
			uint64_t h = 1 + rnd() % 4;
			rk_rl_verdict_t v;
			if (hit(&s, &p, t, h, &v))
				continue;
			refused++;
			assert_true(v.retry_after_ms > 0);
			rk_rl_state_t copy = copy_state(&s);
			rk_rl_verdict_t w;
			rk_rl_apply(&copy, &p, t + v.retry_after_ms, h, false,
			            &w);
			assert_true(w.allowed);
			rk_rl_state_clear(&copy, RK_RL_SLIDING_WINDOW);
			copy = copy_state(&s);
			rk_rl_apply(&copy, &p, t + v.retry_after_ms - 1, h,
			            false, &w);
			assert_false(w.allowed);
			rk_rl_state_clear(&copy, RK_RL_SLIDING_WINDOW);
			/* reset_after: back to full then, not before */
			copy = copy_state(&s);
			rk_rl_apply(&copy, &p, t + v.reset_after_ms, 0, false,
			            &w);
			assert_int_equal(w.remaining, 30);
			rk_rl_state_clear(&copy, RK_RL_SLIDING_WINDOW);
			copy = copy_state(&s);
			rk_rl_apply(&copy, &p, t + v.reset_after_ms - 1, 0,
			            false, &w);
			assert_true(w.remaining < 30);
			rk_rl_state_clear(&copy, RK_RL_SLIDING_WINDOW);
		}
		assert_true(refused > 100);
		rk_rl_state_clear(&s, RK_RL_SLIDING_WINDOW);
	}
}

/* K = 1 (or 0, unset) is the classic counter: same verdicts, field by
 * field, no heap; K > 1 holds one block of 12 + 4(K+1) bytes from the
 * first counted hit, none for reads of a fresh key, and frees it once
 * every count has aged out. */
static void test_sub_window_memory_and_k1_unchanged(void **st)
{
	(void)st;
	test_seed(__func__);
	rk_rl_params_t p0 = params(RK_RL_SLIDING_WINDOW, 20, 1000, 0);
	rk_rl_params_t p1 = params_k(20, 1000, 1);
	rk_rl_state_t s0 = {0}, s1 = {0};
	uint64_t t = 5000000;
	for (int i = 0; i < 20000; i++) {
		t += rnd() % 120;
		uint64_t h = rnd() % 4;
		rk_rl_verdict_t a, b;
		hit(&s0, &p0, t, h, &a);
		hit(&s1, &p1, t, h, &b);
		assert_memory_equal(&a, &b, sizeof(a));
		assert_memory_equal(&s0, &s1, sizeof(s0));
		assert_int_equal(
		    rk_rl_state_heap_bytes(&s1, RK_RL_SLIDING_WINDOW), 0);
	}
	assert_int_equal(RK_RL_SUBWIN_BYTES(4), 32);
	assert_int_equal(RK_RL_SUBWIN_BYTES(16), 80);
	assert_int_equal(RK_RL_SUBWIN_BYTES(RK_RL_MAX_SUB_WINDOWS), 272);
	rk_rl_params_t pk = params_k(20, 1000, 16);
	rk_rl_state_t s = {0};
	rk_rl_verdict_t v;
	assert_true(hit(&s, &pk, t, 0, &v)); /* a read: nothing kept */
	assert_int_equal(v.remaining, 20);
	assert_int_equal(rk_rl_state_heap_bytes(&s, RK_RL_SLIDING_WINDOW), 0);
	assert_true(hit(&s, &pk, t, 3, &v));
	assert_int_equal(rk_rl_state_heap_bytes(&s, RK_RL_SLIDING_WINDOW), 80);
	assert_int_equal(v.remaining, 17);
	/* 2U later every count has aged out: a read frees the block */
	assert_true(hit(&s, &pk, t + 2000, 0, &v));
	assert_int_equal(v.remaining, 20);
	assert_int_equal(rk_rl_state_heap_bytes(&s, RK_RL_SLIDING_WINDOW), 0);
	assert_true(hit(&s, &pk, t + 2000, 20, &v));
	assert_false(hit(&s, &pk, t + 2001, 1, &v));
	/* a clock 10 s back gives nothing back */
	assert_false(hit(&s, &pk, t - 8000, 1, &v));
	rk_rl_state_clear(&s, RK_RL_SLIDING_WINDOW);
	assert_int_equal(rk_rl_state_heap_bytes(&s, RK_RL_SLIDING_WINDOW), 0);
}

/* ------------------------------------------------ through the checker */

static _Atomic uint64_t fake_now = 1000000000;

static uint64_t fake_clock(void *arg)
{
	(void)arg;
	return atomic_load(&fake_now);
}

static void *arena_alloc(void *arg, size_t n)
{
	return rk_arena_alloc(arg, n);
}

static rk_rl_rules_t *rules_of(const char *text)
{
	rk_rl_rules_t *r = NULL;
	char *err = NULL;
	if (rk_rl_rules_parse(text, strlen(text), "rules.yaml", NULL, &r,
	                      &err) != RK_OK)
		fail_msg("rules: %s", err);
	return r;
}

typedef struct fix {
	rk_metrics_t *metrics;
	rk_rl_checker_t *c;
	rk_arena_t arena;
} fix_t;

static void fix_init(fix_t *f, const char *rules,
                     const rk_rl_checker_opts_t *extra)
{
	memset(f, 0, sizeof(*f));
	f->metrics = rk_metrics_new();
	rk_rl_checker_opts_t o = *extra;
	o.metrics = f->metrics;
	o.clock = fake_clock;
	assert_int_equal(rk_rl_checker_new(&o, rules_of(rules), &f->c), RK_OK);
	rk_arena_init(&f->arena, 1 << 16);
}

static void fix_fini(fix_t *f)
{
	rk_rl_checker_free(f->c);
	rk_metrics_free(f->metrics);
	rk_arena_fini(&f->arena);
}

/* A request of HITS for descriptor [(key, value)] in domain d. */
typedef struct req {
	Ringkv__V1__RateLimitCheckRequest r;
	Ringkv__V1__RateLimitDescriptor d, *dp;
	Ringkv__V1__RateLimitEntry e, *ep;
	char key[64], value[64];
} req_t;

/* KV is "key=value". */
static void mkreq(req_t *q, const char *domain, uint32_t hits, const char *kv)
{
	memset(q, 0, sizeof(*q));
	ringkv__v1__rate_limit_check_request__init(&q->r);
	ringkv__v1__rate_limit_descriptor__init(&q->d);
	ringkv__v1__rate_limit_entry__init(&q->e);
	const char *eq = strchr(kv, '=');
	snprintf(q->key, sizeof(q->key), "%.*s", (int)(eq - kv), kv);
	snprintf(q->value, sizeof(q->value), "%s", eq + 1);
	q->e.key = q->key;
	q->e.value = q->value;
	q->ep = &q->e;
	q->d.n_entries = 1;
	q->d.entries = &q->ep;
	q->dp = &q->d;
	q->r.domain = (char *)domain;
	q->r.hits = hits;
	q->r.n_descriptors = 1;
	q->r.descriptors = &q->dp;
}

static bool allowed(fix_t *f, req_t *q)
{
	rk_arena_reset(&f->arena);
	Ringkv__V1__RateLimitCheckResponse resp =
	    RINGKV__V1__RATE_LIMIT_CHECK_RESPONSE__INIT;
	char why[256];
	rk_rl_rules_t *r = rk_rl_checker_acquire(f->c);
	rk_status_t st = rk_rl_checker_check(
	    f->c, r, &q->r, arena_alloc, &f->arena, &resp, why, sizeof(why));
	rk_rl_checker_release(f->c, r);
	assert_int_equal(st, RK_OK);
	return resp.allowed;
}

/* A limit with sub_windows through the checker: it counts by K
 * sub-windows (spans under U - U/K never pass more than L), its block
 * is charged to the table's heap budget (and evicting under that budget
 * frees blocks: no leak under ASan), and a reload that changes K starts
 * the limit from zero, as a changed algorithm does. */
static void test_sub_windows_limit_counts_and_is_charged_to_the_table(void **st)
{
	(void)st;
	const char *k10 =
	    "domain: d\ndescriptors:\n  - key: user\n    rate_limit: {name: "
	    "r, unit: second, requests_per_unit: 10, sub_windows: 10}\n";
	/* heap budget: 4 shards x 2 blocks of 56 bytes */
	rk_rl_checker_opts_t o = {
	    .table = {.shards = 4, .max_keys = 1024, .max_log_bytes = 448}};
	fix_t f;
	fix_init(&f, k10, &o);
	atomic_store(&fake_now, 2000000999); /* last ms of a window */
	req_t q;
	mkreq(&q, "d", 1, "user=ann");
	int n = 0;
	for (int i = 0; i < 15; i++)
		n += allowed(&f, &q);
	assert_int_equal(n, 10);
	/* 100 ms later the classic counter would admit 1; K = 10: 0 until
	 * the burst's sub-window starts sliding out, 900 ms on. */
	for (uint64_t t = 2000001100; t < 2000001900; t += 100) {
		atomic_store(&fake_now, t);
		assert_false(allowed(&f, &q));
	}
	atomic_store(&fake_now, 2000001950);
	assert_true(allowed(&f, &q)); /* 10 * 50/100 = 5 still counted */
	rk_rl_table_stats_t ts;
	rk_rl_table_stats(rk_rl_checker_table(f.c), &ts);
	assert_int_equal(ts.log_bytes, RK_RL_SUBWIN_BYTES(10));
	/* Many keys: the heap budget holds, by evicting (and freeing). */
	char d[64];
	for (int i = 0; i < 200; i++) {
		snprintf(d, sizeof(d), "user=u%d", i);
		mkreq(&q, "d", 1, d);
		assert_true(allowed(&f, &q));
	}
	rk_rl_table_stats(rk_rl_checker_table(f.c), &ts);
	assert_true(ts.log_bytes <= 448);
	assert_true(ts.evicted_live > 0);
	/* A reload with another K: a new counter, from zero. */
	mkreq(&q, "d", 3, "user=bob");
	assert_true(allowed(&f, &q));
	assert_true(allowed(&f, &q));
	assert_true(allowed(&f, &q));
	assert_false(allowed(&f, &q));
	const char *k4 =
	    "domain: d\ndescriptors:\n  - key: user\n    rate_limit: {name: "
	    "r, unit: second, requests_per_unit: 10, sub_windows: 4}\n";
	rk_rl_checker_install(f.c, rules_of(k4));
	assert_true(allowed(&f, &q));
	fix_fini(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
	        test_sub_window_counter_matches_reference_and_bound),
	    cmocka_unit_test(
	        test_sub_window_counter_has_no_excess_within_u_minus_a_sub_window),
	    cmocka_unit_test(test_sub_window_counter_retry_after_is_exact),
	    cmocka_unit_test(test_sub_window_memory_and_k1_unchanged),
	    cmocka_unit_test(
	        test_sub_windows_limit_counts_and_is_charged_to_the_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
