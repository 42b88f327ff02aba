/*
 * The checker: several limits per request decided all or nothing, the
 * most restrictive deciding, shadow mode, reads, bad requests, fail open
 * and closed, bounded memory, metrics, atomic rule swaps, and many
 * threads on one key never admitting more than the limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "checker.h"
#include "core/arena.h"
#include "metrics/metrics.h"

/* ------------------------------------------------------------ helpers */

static _Atomic uint64_t fake_now = 1000000000; /* a window start */

static uint64_t fake_clock(void *arg)
{
	(void)arg;
	return atomic_load(&fake_now);
}

/* A request built from strings: descriptors "k=v,k2=v2". */
typedef struct req {
	Ringkv__V1__RateLimitCheckRequest r;
	Ringkv__V1__RateLimitDescriptor d[4], *dp[4];
	Ringkv__V1__RateLimitEntry e[4][4], *ep[4][4];
	char text[4][256];
} req_t;

static void mkreq(req_t *q, const char *domain, uint32_t hits, int n, ...)
{
	memset(q, 0, sizeof(*q));
	ringkv__v1__rate_limit_check_request__init(&q->r);
	q->r.domain = (char *)domain;
	q->r.hits = hits;
	q->r.n_descriptors = (size_t)n;
	q->r.descriptors = q->dp;
	va_list ap;
	va_start(ap, n);
	for (int i = 0; i < n; i++) {
		ringkv__v1__rate_limit_descriptor__init(&q->d[i]);
		q->dp[i] = &q->d[i];
		snprintf(q->text[i], sizeof(q->text[i]), "%s",
		         va_arg(ap, const char *));
		size_t ne = 0;
		char *save = NULL;
		for (char *tok = strtok_r(q->text[i], ",", &save); tok;
		     tok = strtok_r(NULL, ",", &save)) {
			ringkv__v1__rate_limit_entry__init(&q->e[i][ne]);
			char *eq = strchr(tok, '=');
			if (eq != NULL)
				*eq = '\0';
			q->e[i][ne].key = tok;
			q->e[i][ne].value = eq ? eq + 1 : NULL;
			q->ep[i][ne] = &q->e[i][ne];
			ne++;
		}
		q->d[i].n_entries = ne;
		q->d[i].entries = q->ep[i];
	}
	va_end(ap);
}

static void *arena_alloc(void *arg, size_t n)
{
	return rk_arena_alloc(arg, n);
}

typedef struct fix {
	rk_metrics_t *metrics;
	rk_rl_checker_t *c;
	rk_arena_t arena;
	char why[512];
} fix_t;

static rk_rl_rules_t *rules_of(const char *text)
{
	rk_rl_rules_t *r = NULL;
	char *err = NULL;
	if (rk_rl_rules_parse(text, strlen(text), "rules.yaml", NULL, &r,
	                      &err) != RK_OK)
		fail_msg("rules: %s", err);
	return r;
}

static void fix_init(fix_t *f, const char *rules,
                     const rk_rl_checker_opts_t *extra)
{
	memset(f, 0, sizeof(*f));
	f->metrics = rk_metrics_new();
	rk_rl_checker_opts_t o = {0};
	if (extra != NULL)
		o = *extra;
	o.metrics = f->metrics;
	o.clock = fake_clock;
	assert_int_equal(rk_rl_checker_new(&o, rules_of(rules), &f->c), RK_OK);
	rk_arena_init(&f->arena, 1 << 20);
}

static void fix_fini(fix_t *f)
{
	rk_rl_checker_free(f->c);
	rk_metrics_free(f->metrics);
	rk_arena_fini(&f->arena);
}

/* Runs one check; returns its status; RESP filled on RK_OK. */
static rk_status_t check(fix_t *f, req_t *q,
                         Ringkv__V1__RateLimitCheckResponse *resp)
{
	rk_arena_reset(&f->arena);
	ringkv__v1__rate_limit_check_response__init(resp);
	rk_rl_rules_t *r = rk_rl_checker_acquire(f->c);
	rk_status_t st =
	    rk_rl_checker_check(f->c, r, &q->r, arena_alloc, &f->arena, resp,
	                        f->why, sizeof(f->why));
	rk_rl_checker_release(f->c, r);
	return st;
}

static bool allowed(fix_t *f, req_t *q)
{
	Ringkv__V1__RateLimitCheckResponse resp;
	assert_int_equal(check(f, q, &resp), RK_OK);
	return resp.allowed;
}

static uint64_t counter(fix_t *f, const char *name, const char *rule)
{
	char labels[256];
	snprintf(labels, sizeof(labels), "domain=\"d\",rule=\"%s\"", rule);
	return rk_counter_value(
	    rk_metrics_counter(f->metrics, name, NULL, labels));
}

static const char *two_limits =
    "domain: d\n"
    "descriptors:\n"
    "  - key: user\n"
    "    rate_limits:\n"
    "      - {name: per_second, unit: second, requests_per_unit: 3}\n"
    "      - {name: per_minute, unit: minute, requests_per_unit: 5,\n"
    "         near_limit_percent: 60}\n"
    "  - key: ip\n"
    "    rate_limit: {name: ip_soft, unit: second, requests_per_unit: 2,\n"
    "                 shadow_mode: true}\n"
    "  - key: fragile\n"
    "    rate_limit: {name: closed, unit: second, requests_per_unit: 2,\n"
    "                 fail_open: false}\n";

/* ------------------------------------------------------------ cases */

/* 3/s and 5/min: the per-second limit refuses the fourth; refused hits
 * spend nothing, so the minute still has room for two later. */
static void
test_multi_limit_most_restrictive_decides_and_refusals_cost_nothing(void **st)
{
	(void)st;
	fix_t f;
	fix_init(&f, two_limits, NULL);
	atomic_store(&fake_now, 1000000000);
	req_t q;
	mkreq(&q, "d", 1, 1, "user=alice");
	Ringkv__V1__RateLimitCheckResponse resp;
	for (int i = 0; i < 3; i++)
		assert_true(allowed(&f, &q));
	for (int i = 0; i < 10; i++) {
		assert_int_equal(check(&f, &q, &resp), RK_OK);
		assert_false(resp.allowed);
	}
	assert_int_equal(resp.n_limits, 2);
	assert_int_equal(resp.deciding_index, 0);
	assert_string_equal(resp.limits[0]->rule, "per_second");
	assert_false(resp.limits[0]->allowed);
	assert_true(resp.limits[1]->allowed);
	assert_int_equal(resp.limits[1]->remaining, 2); /* only 3 counted */
	assert_int_equal(resp.limit, 3);
	assert_true(resp.retry_after_ms > 0 && resp.retry_after_ms <= 2000);
	assert_int_equal(resp.rules_version, 1);
	assert_int_equal(resp.outcome,
	                 RINGKV__V1__RATE_LIMIT_OUTCOME__RATE_LIMIT_DECIDED);
	/* two seconds on: the minute limit is now the tighter one */
	atomic_fetch_add(&fake_now, 2000);
	assert_int_equal(check(&f, &q, &resp), RK_OK);
	assert_true(resp.allowed);
	assert_int_equal(resp.deciding_index, 1);
	assert_int_equal(resp.remaining, 1);
	assert_true(resp.limits[1]->near_limit); /* 4 of 5 >= 60% */
	assert_true(allowed(&f, &q));
	assert_false(allowed(&f, &q)); /* minute spent */
	assert_int_equal(
	    counter(&f, "ringkv_ratelimit_hits_total", "per_minute"), 16);
	assert_int_equal(
	    counter(&f, "ringkv_ratelimit_over_limit_total", "per_second"), 10);
	assert_int_equal(
	    counter(&f, "ringkv_ratelimit_over_limit_total", "per_minute"), 1);
	assert_int_equal(
	    counter(&f, "ringkv_ratelimit_near_limit_total", "per_minute"), 3);
	/* another user has its own counters */
	mkreq(&q, "d", 1, 1, "user=bob");
	assert_true(allowed(&f, &q));
	fix_fini(&f);
}

/* A shadow-mode limit never refuses, but flags and counts. */
static void test_shadow_mode_allows_but_flags_and_counts(void **st)
{
	(void)st;
	fix_t f;
	fix_init(&f, two_limits, NULL);
	req_t q;
	mkreq(&q, "d", 1, 1, "ip=10.0.0.1");
	Ringkv__V1__RateLimitCheckResponse resp;
	for (int i = 0; i < 5; i++) {
		assert_int_equal(check(&f, &q, &resp), RK_OK);
		assert_true(resp.allowed);
		assert_int_equal(resp.shadow_mode, i >= 2);
		assert_int_equal(resp.limits[0]->allowed, i < 2);
		assert_true(resp.limits[0]->shadow_mode);
	}
	assert_int_equal(
	    counter(&f, "ringkv_ratelimit_shadow_mode_total", "ip_soft"), 3);
	assert_int_equal(
	    counter(&f, "ringkv_ratelimit_over_limit_total", "ip_soft"), 0);
	/* with an enforced limit beside it, the enforced one decides */
	mkreq(&q, "d", 1, 2, "ip=10.0.0.1", "user=carol");
	assert_int_equal(check(&f, &q, &resp), RK_OK);
	assert_true(resp.allowed);
	assert_true(resp.shadow_mode);
	assert_string_equal(resp.limits[resp.deciding_index]->rule,
	                    "per_second");
	fix_fini(&f);
}

/* hits = 0 answers with the state and counts nothing. */
static void test_zero_hits_reads_without_counting(void **st)
{
	(void)st;
	fix_t f;
	fix_init(&f, two_limits, NULL);
	req_t q, r0;
	mkreq(&q, "d", 1, 1, "user=dave");
	mkreq(&r0, "d", 0, 1, "user=dave");
	Ringkv__V1__RateLimitCheckResponse resp;
	for (int i = 0; i < 20; i++) {
		assert_int_equal(check(&f, &r0, &resp), RK_OK);
		assert_true(resp.allowed);
		assert_int_equal(resp.remaining, 3);
	}
	rk_rl_table_stats_t ts;
	rk_rl_table_stats(rk_rl_checker_table(f.c), &ts);
	assert_int_equal(ts.keys, 0); /* reads make no keys */
	assert_true(allowed(&f, &q));
	assert_int_equal(check(&f, &r0, &resp), RK_OK);
	assert_int_equal(resp.remaining, 2);
	fix_fini(&f);
}

/* Bad requests get clear statuses, never a verdict. */
static void test_bad_requests_get_clear_statuses(void **st)
{
	(void)st;
	rk_rl_checker_opts_t o = {.max_hits = 100};
	fix_t f;
	fix_init(&f, two_limits, &o);
	req_t q;
	Ringkv__V1__RateLimitCheckResponse resp;
	mkreq(&q, "nope", 1, 1, "user=a");
	assert_int_equal(check(&f, &q, &resp), RK_NOT_FOUND);
	assert_non_null(strstr(f.why, "no rules for domain \"nope\""));
	mkreq(&q, "d", 1, 0);
	assert_int_equal(check(&f, &q, &resp), RK_INVALID_ARGUMENT);
	assert_non_null(strstr(f.why, "no descriptors"));
	mkreq(&q, "", 1, 1, "user=a");
	assert_int_equal(check(&f, &q, &resp), RK_INVALID_ARGUMENT);
	mkreq(&q, "d", 1, 1, "=a");
	assert_int_equal(check(&f, &q, &resp), RK_INVALID_ARGUMENT);
	assert_non_null(strstr(f.why, "empty key"));
	mkreq(&q, "d", 1, 1, "user=a");
	q.d[0].n_entries = 0;
	assert_int_equal(check(&f, &q, &resp), RK_INVALID_ARGUMENT);
	assert_non_null(strstr(f.why, "descriptor 0 is empty"));
	mkreq(&q, "d", 101, 1, "user=a");
	assert_int_equal(check(&f, &q, &resp), RK_INVALID_ARGUMENT);
	assert_non_null(strstr(f.why, "hits 101"));
	mkreq(&q, "d", 4, 1, "user=a");
	assert_int_equal(check(&f, &q, &resp), RK_OUT_OF_RANGE);
	assert_non_null(strstr(f.why, "per_second"));
	/* no rule matches: allowed, nothing applied */
	mkreq(&q, "d", 1, 1, "method=GET");
	assert_int_equal(check(&f, &q, &resp), RK_OK);
	assert_true(resp.allowed);
	assert_int_equal(resp.n_limits, 0);
	assert_false(resp.has_deciding_index);
	fix_fini(&f);
}

static rk_rl_owner_t owner_unreachable(void *arg, const void *key, size_t len)
{
	(void)arg;
	(void)len;
	/* everything but domain "d", key "user" is local */
	const char *k = (const char *)key + 2; /* after "d\0" */
	return strcmp(k, "fragile") == 0 || strcmp(k, "user") == 0
	           ? RK_RL_OWNER_UNREACHABLE
	           : RK_RL_OWNER_LOCAL;
}

/* When the owner cannot be reached each rule fails open or closed as it
 * says, and the answer says which happened. A forwarded check is always
 * decided locally. */
static void test_unreachable_owner_fails_open_or_closed_per_rule(void **st)
{
	(void)st;
	rk_rl_checker_opts_t o = {.owner = owner_unreachable,
	                          .unreachable_retry_ms = 700};
	fix_t f;
	fix_init(&f, two_limits, &o);
	req_t q;
	Ringkv__V1__RateLimitCheckResponse resp;
	mkreq(&q, "d", 1, 1, "user=a");
	assert_int_equal(check(&f, &q, &resp), RK_OK);
	assert_true(resp.allowed);
	assert_int_equal(
	    resp.outcome,
	    RINGKV__V1__RATE_LIMIT_OUTCOME__RATE_LIMIT_FAILED_OPEN);
	mkreq(&q, "d", 1, 2, "user=a", "fragile=x");
	assert_int_equal(check(&f, &q, &resp), RK_OK);
	assert_false(resp.allowed);
	assert_int_equal(
	    resp.outcome,
	    RINGKV__V1__RATE_LIMIT_OUTCOME__RATE_LIMIT_FAILED_CLOSED);
	assert_int_equal(resp.retry_after_ms, 700);
	q.r.forwarded = true;
	assert_int_equal(check(&f, &q, &resp), RK_OK);
	assert_true(resp.allowed);
	assert_int_equal(resp.outcome,
	                 RINGKV__V1__RATE_LIMIT_OUTCOME__RATE_LIMIT_DECIDED);
	fix_fini(&f);
}

/* The table never holds more than max_keys; evictions are counted. */
static void test_key_table_memory_is_bounded(void **st)
{
	(void)st;
	rk_rl_checker_opts_t o = {.table = {.shards = 4, .max_keys = 1024}};
	fix_t f;
	fix_init(&f, two_limits, &o);
	req_t q;
	char d[64];
	for (int i = 0; i < 5000; i++) {
		snprintf(d, sizeof(d), "ip=%d", i);
		mkreq(&q, "d", 1, 1, d);
		assert_true(allowed(&f, &q));
	}
	rk_rl_table_stats_t ts;
	rk_rl_table_stats(rk_rl_checker_table(f.c), &ts);
	assert_true(ts.keys <= 1024);
	assert_true(ts.evicted_idle + ts.evicted_live >= 5000 - 1024);
	assert_int_equal(ts.insert_failed, 0);
	/* a second later every old key is idle: evictions lose nothing */
	atomic_fetch_add(&fake_now, 5000);
	uint64_t live_before = ts.evicted_live;
	for (int i = 5000; i < 7000; i++) {
		snprintf(d, sizeof(d), "ip=%d", i);
		mkreq(&q, "d", 1, 1, d);
		allowed(&f, &q);
	}
	rk_rl_table_stats(rk_rl_checker_table(f.c), &ts);
	assert_true(ts.evicted_idle >= 1024 - 0);
	assert_true(ts.evicted_live >= live_before);
	fix_fini(&f);
}

/* A reload that keeps a limit's name, unit and algorithm keeps its count
 * (and applies a new requests_per_unit to it); a renamed limit starts
 * from zero. */
static void test_reload_keeps_counts_of_unchanged_limits(void **st)
{
	(void)st;
	fix_t f;
	fix_init(&f, two_limits, NULL);
	req_t q;
	mkreq(&q, "d", 1, 1, "user=erin");
	for (int i = 0; i < 3; i++)
		assert_true(allowed(&f, &q));
	assert_false(allowed(&f, &q));
	assert_int_equal(rk_rl_checker_install(f.c, rules_of(two_limits)), 2);
	assert_false(allowed(&f, &q)); /* same count under version 2 */
	const char *raised =
	    "domain: d\ndescriptors:\n  - key: user\n    rate_limit: {name: "
	    "per_second, unit: second, requests_per_unit: 4}\n";
	assert_int_equal(rk_rl_checker_install(f.c, rules_of(raised)), 3);
	assert_true(allowed(&f, &q)); /* 3 counted, limit now 4 */
	assert_false(allowed(&f, &q));
	const char *renamed =
	    "domain: d\ndescriptors:\n  - key: user\n    rate_limit: {name: "
	    "fresh, unit: second, requests_per_unit: 4}\n";
	rk_rl_checker_install(f.c, rules_of(renamed));
	assert_true(allowed(&f, &q));
	fix_fini(&f);
}

/* Random requests of one to three descriptors over two users (the same
 * descriptor may come twice), each user under 5 a second and 12 a
 * minute (fixed windows): verdicts equal a reference that admits a
 * request only when every counter has room for all its hits, and then
 * counts them all. */
static void test_multi_limit_all_or_nothing_matches_reference(void **st)
{
	(void)st;
	const char *env = getenv("RK_TEST_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
	printf("# %s: seed %llu (RK_TEST_SEED to replay)\n", __func__,
	       (unsigned long long)seed);
	srand((unsigned)seed);
	fix_t f;
	fix_init(&f,
	         "domain: d\ndescriptors:\n  - key: u\n    rate_limits:\n"
	         "      - {name: s, unit: second, requests_per_unit: 5, "
	         "algorithm: fixed_window}\n"
	         "      - {name: m, unit: minute, requests_per_unit: 12, "
	         "algorithm: fixed_window}\n",
	         NULL);
	uint64_t now = 6000000000; /* a minute start */
	atomic_store(&fake_now, now);
	uint64_t sec_w[2] = {0}, sec_n[2] = {0}, min_w[2] = {0}, min_n[2] = {0};
	for (int i = 0; i < 3000; i++) {
		now += (uint64_t)(rand() % 400);
		atomic_store(&fake_now, now);
		int nd = 1 + rand() % 3, who[3];
		uint32_t hits = 1 + (uint32_t)(rand() % 3);
		char d[3][16];
		for (int k = 0; k < nd; k++) {
			who[k] = rand() % 2;
			snprintf(d[k], sizeof(d[k]), "u=%d", who[k]);
		}
		req_t q;
		if (nd == 1)
			mkreq(&q, "d", hits, 1, d[0]);
		else if (nd == 2)
			mkreq(&q, "d", hits, 2, d[0], d[1]);
		else
			mkreq(&q, "d", hits, 3, d[0], d[1], d[2]);
		uint64_t need[2] = {0, 0};
		for (int k = 0; k < nd; k++)
			need[who[k]] += hits;
		bool want = true;
		for (int u = 0; u < 2; u++) {
			if (sec_w[u] != now / 1000) {
				sec_w[u] = now / 1000;
				sec_n[u] = 0;
			}
			if (min_w[u] != now / 60000) {
				min_w[u] = now / 60000;
				min_n[u] = 0;
			}
			if (need[u] > 0 &&
			    (sec_n[u] + need[u] > 5 || min_n[u] + need[u] > 12))
				want = false;
		}
		if (want)
			for (int u = 0; u < 2; u++) {
				sec_n[u] += need[u];
				min_n[u] += need[u];
			}
		Ringkv__V1__RateLimitCheckResponse resp;
		assert_int_equal(check(&f, &q, &resp), RK_OK);
		if (resp.allowed != want)
			fail_msg("request %d: got %d, reference %d", i,
			         resp.allowed, want);
	}
	fix_fini(&f);
}

/* --- concurrency ------------------------------------------------------- */

typedef struct hammer {
	fix_t *f;
	_Atomic uint64_t *admitted;
	int rounds;
} hammer_t;

static void *hammer_run(void *arg)
{
	hammer_t *h = arg;
	rk_arena_t arena;
	rk_arena_init(&arena, 1 << 16);
	req_t q;
	mkreq(&q, "d", 1, 1, "k=hot");
	char why[256];
	for (int i = 0; i < h->rounds; i++) {
		rk_arena_reset(&arena);
		Ringkv__V1__RateLimitCheckResponse resp =
		    RINGKV__V1__RATE_LIMIT_CHECK_RESPONSE__INIT;
		rk_rl_rules_t *r = rk_rl_checker_acquire(h->f->c);
		if (rk_rl_checker_check(h->f->c, r, &q.r, arena_alloc, &arena,
		                        &resp, why, sizeof(why)) == RK_OK &&
		    resp.allowed)
			atomic_fetch_add(h->admitted, 1);
		rk_rl_checker_release(h->f->c, r);
	}
	rk_arena_fini(&arena);
	return NULL;
}

/* 16 threads on one key, for every algorithm: exactly the limit passes,
 * never more. */
static void test_many_threads_on_one_key_never_admit_more_than_limit(void **st)
{
	(void)st;
	static const char *algos[] = {
	    "sliding_window_counter",
	    "token_bucket",
	    "leaking_bucket",
	    "fixed_window",
	    "sliding_log",
	    "sliding_window_counter, sub_windows: 16"};
	for (size_t a = 0; a < sizeof(algos) / sizeof(algos[0]); a++) {
		char rules[512];
		snprintf(
		    rules, sizeof(rules),
		    "domain: d\ndescriptors:\n  - key: k\n    rate_limit: "
		    "{unit: day, requests_per_unit: 2000, algorithm: %s}\n",
		    algos[a]);
		fix_t f;
		fix_init(&f, rules, NULL);
		_Atomic uint64_t admitted = 0;
		enum { T = 16 };
		pthread_t th[T];
		hammer_t h = {.f = &f, .admitted = &admitted, .rounds = 500};
		for (int i = 0; i < T; i++)
			pthread_create(&th[i], NULL, hammer_run, &h);
		for (int i = 0; i < T; i++)
			pthread_join(th[i], NULL);
		printf("# %s: %llu of %d admitted, limit 2000\n", algos[a],
		       (unsigned long long)atomic_load(&admitted), T * 500);
		assert_int_equal(atomic_load(&admitted), 2000);
		fix_fini(&f);
	}
}

typedef struct swapper {
	fix_t *f;
	atomic_bool stop;
	_Atomic uint64_t checks;
	bool monotonic;
} swapper_t;

static void *swap_reader(void *arg)
{
	swapper_t *s = arg;
	rk_arena_t arena;
	rk_arena_init(&arena, 1 << 16);
	req_t q;
	mkreq(&q, "d", 1, 1, "user=x");
	char why[256];
	uint64_t last = 0;
	while (!atomic_load(&s->stop)) {
		rk_arena_reset(&arena);
		Ringkv__V1__RateLimitCheckResponse resp =
		    RINGKV__V1__RATE_LIMIT_CHECK_RESPONSE__INIT;
		rk_rl_rules_t *r = rk_rl_checker_acquire(s->f->c);
		rk_status_t stt =
		    rk_rl_checker_check(s->f->c, r, &q.r, arena_alloc, &arena,
		                        &resp, why, sizeof(why));
		/* the rule name is read from the rules while held */
		if (stt != RK_OK || resp.n_limits != 2 ||
		    strncmp(resp.limits[0]->rule, "per_", 4) != 0 ||
		    resp.rules_version < last)
			s->monotonic = false;
		last = resp.rules_version;
		rk_rl_checker_release(s->f->c, r);
		atomic_fetch_add(&s->checks, 1);
	}
	rk_arena_fini(&arena);
	return NULL;
}

/* Rules swapped under load: every check sees one whole rules version,
 * versions only go up, and old rules are freed (ASan checks the rest). */
static void test_rules_swap_is_atomic_under_load(void **st)
{
	(void)st;
	fix_t f;
	fix_init(&f, two_limits, NULL);
	swapper_t s = {.f = &f, .monotonic = true};
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, swap_reader, &s);
	uint64_t v = 0;
	for (int i = 0; i < 200; i++)
		v = rk_rl_checker_install(f.c, rules_of(two_limits));
	atomic_store(&s.stop, true);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(v, 201);
	assert_true(s.monotonic);
	assert_true(atomic_load(&s.checks) > 0);
	fix_fini(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
	        test_multi_limit_most_restrictive_decides_and_refusals_cost_nothing),
	    cmocka_unit_test(test_shadow_mode_allows_but_flags_and_counts),
	    cmocka_unit_test(test_zero_hits_reads_without_counting),
	    cmocka_unit_test(test_bad_requests_get_clear_statuses),
	    cmocka_unit_test(
	        test_unreachable_owner_fails_open_or_closed_per_rule),
	    cmocka_unit_test(test_key_table_memory_is_bounded),
	    cmocka_unit_test(test_reload_keeps_counts_of_unchanged_limits),
	    cmocka_unit_test(test_multi_limit_all_or_nothing_matches_reference),
	    cmocka_unit_test(
	        test_many_threads_on_one_key_never_admit_more_than_limit),
	    cmocka_unit_test(test_rules_swap_is_atomic_under_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
