/*
 * The key table: keyed 128-bit identities, least-recently-used eviction
 * within a shard, entries pinned for the locked section that touched
 * them, and the sliding-log memory budget.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "keytable.h"

static rk_rl_table_t *table(uint64_t max_keys, uint64_t log_bytes,
                            const uint8_t *key)
{
	rk_rl_table_opts_t o = {.shards = 1,
	                        .max_keys = max_keys,
	                        .max_log_bytes = log_bytes,
	                        .hash_key = key};
	rk_rl_table_t *t = NULL;
	assert_int_equal(rk_rl_table_new(&o, &t), RK_OK);
	return t;
}

static rk_rl_id_t id_of(rk_rl_table_t *t, int i)
{
	char k[32];
	int n = snprintf(k, sizeof(k), "key-%d", i);
	rk_rl_id_t id;
	rk_rl_table_id(t, k, (size_t)n, &id);
	return id;
}

/* The same key and hash key give the same identity; another hash key
 * another one (callers cannot predict where a key lands). */
static void test_identity_is_keyed(void **st)
{
	(void)st;
	uint8_t k1[16] = {1}, k2[16] = {2};
	rk_rl_table_t *a = table(1024, 1 << 16, k1),
	              *b = table(1024, 1 << 16, k1),
	              *c = table(1024, 1 << 16, k2);
	rk_rl_id_t x = id_of(a, 7), y = id_of(b, 7), z = id_of(c, 7),
	           w = id_of(a, 8);
	assert_memory_equal(&x, &y, sizeof(x));
	assert_memory_not_equal(&x, &z, sizeof(x));
	assert_memory_not_equal(&x, &w, sizeof(x));
	rk_rl_table_free(a);
	rk_rl_table_free(b);
	rk_rl_table_free(c);
}

/* A full shard evicts its least recently used key; a find counts as a
 * use. Idle and live evictions are told apart by the entry's expiry. */
static void test_full_shard_evicts_least_recently_used(void **st)
{
	(void)st;
	rk_rl_table_t *t = table(1024, 1 << 16, NULL);
	for (int i = 0; i < 1024; i++) {
		rk_rl_table_lock(t, 0);
		rk_rl_id_t id = id_of(t, i);
		rk_rl_entry_t *e =
		    rk_rl_table_insert(t, 0, &id, RK_RL_FIXED_WINDOW, 1000);
		assert_non_null(e);
		e->expires_ms = i == 1 ? 5000 : 0; /* key 1 still counting */
		rk_rl_table_unlock(t, 0);
	}
	/* use key 0: key 1 becomes the oldest */
	rk_rl_table_lock(t, 0);
	rk_rl_id_t id0 = id_of(t, 0);
	assert_non_null(rk_rl_table_find(t, 0, &id0));
	rk_rl_id_t idn = id_of(t, 5000);
	assert_non_null(
	    rk_rl_table_insert(t, 0, &idn, RK_RL_FIXED_WINDOW, 1000));
	rk_rl_id_t id1 = id_of(t, 1), id2 = id_of(t, 2);
	assert_null(rk_rl_table_find(t, 0, &id1));
	assert_non_null(rk_rl_table_find(t, 0, &id0));
	assert_non_null(rk_rl_table_find(t, 0, &id2));
	rk_rl_table_unlock(t, 0);
	rk_rl_table_stats_t s;
	rk_rl_table_stats(t, &s);
	assert_int_equal(s.keys, 1024);
	assert_int_equal(s.evicted_live, 1); /* key 1 expired at 5000 */
	assert_int_equal(s.evicted_idle, 0);
	rk_rl_table_free(t);
}

/* Entries touched in the current locked section are never evicted: with
 * every entry pinned, an insert fails instead. */
static void test_entries_touched_in_a_section_are_pinned(void **st)
{
	(void)st;
	rk_rl_table_t *t = table(1024, 1 << 16, NULL);
	rk_rl_table_lock(t, 0);
	for (int i = 0; i < 1024; i++) {
		rk_rl_id_t id = id_of(t, i);
		assert_non_null(
		    rk_rl_table_insert(t, 0, &id, RK_RL_FIXED_WINDOW, 0));
	}
	rk_rl_id_t extra = id_of(t, 99999);
	assert_null(rk_rl_table_insert(t, 0, &extra, RK_RL_FIXED_WINDOW, 0));
	rk_rl_table_unlock(t, 0);
	/* a new section: the oldest goes */
	rk_rl_table_lock(t, 0);
	assert_non_null(
	    rk_rl_table_insert(t, 0, &extra, RK_RL_FIXED_WINDOW, 0));
	rk_rl_table_unlock(t, 0);
	rk_rl_table_stats_t s;
	rk_rl_table_stats(t, &s);
	assert_int_equal(s.insert_failed, 1);
	assert_int_equal(s.evicted_idle, 1);
	rk_rl_table_free(t);
}

/* Sliding-log rings count against their budget: past it, the least
 * recently used keys go, rings and all. */
static void test_sliding_log_memory_stays_within_budget(void **st)
{
	(void)st;
	const uint64_t budget = 64 << 10;
	rk_rl_table_t *t = table(4096, budget, NULL);
	rk_rl_params_t p = {.limit = 1000,
	                    .unit_ms = 1000,
	                    .burst = 1000,
	                    .max_log = 65536,
	                    .algorithm = RK_RL_SLIDING_LOG};
	for (int i = 0; i < 400; i++) {
		rk_rl_table_lock(t, 0);
		rk_rl_id_t id = id_of(t, i);
		rk_rl_entry_t *e =
		    rk_rl_table_insert(t, 0, &id, RK_RL_SLIDING_LOG, 0);
		assert_non_null(e);
		for (uint64_t ms = 0; ms < 100; ms++) { /* 100 entries */
			size_t before = rk_rl_state_heap_bytes(
			    &e->state, RK_RL_SLIDING_LOG);
			rk_rl_verdict_t v;
			assert_int_equal(
			    rk_rl_apply(&e->state, &p, 50000 + ms, 1, true, &v),
			    RK_OK);
			rk_rl_table_account(t, 0, e, before, 50000 + ms);
		}
		rk_rl_table_unlock(t, 0);
		rk_rl_table_stats_t s;
		rk_rl_table_stats(t, &s);
		/* one key's ring may exceed it while pinned, never more */
		assert_true(s.log_bytes <= budget + 24 + 128 * 8);
	}
	rk_rl_table_stats_t s;
	rk_rl_table_stats(t, &s);
	printf("# %llu keys kept, %llu ring bytes, %llu evicted\n",
	       (unsigned long long)s.keys, (unsigned long long)s.log_bytes,
	       (unsigned long long)(s.evicted_live + s.evicted_idle));
	assert_true(s.keys < 400);
	rk_rl_table_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_identity_is_keyed),
	    cmocka_unit_test(test_full_shard_evicts_least_recently_used),
	    cmocka_unit_test(test_entries_touched_in_a_section_are_pinned),
	    cmocka_unit_test(test_sliding_log_memory_stays_within_budget),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
