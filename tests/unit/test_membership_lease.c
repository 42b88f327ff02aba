/*
 * One agent's worker-id lease promises (services/membership/lease.c),
 * driven with a clock passed in: a slot is promised to one live lease at
 * a time, is reused only after ttl + skew, renew extends only the
 * holder's own promise, release frees only the holder's, and three
 * tables standing for three agents never let two majorities grant one
 * slot to two leases.
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

#include "lease.h"

#define SKEW 200
#define TTL  1000

static rk_ms_lease_t lease(uint32_t dc, uint32_t w, uint8_t holder, uint64_t id)
{
	rk_ms_lease_t l;
	memset(&l, 0, sizeof(l));
	l.dc = dc;
	l.worker = w;
	memset(l.holder, holder, sizeof(l.holder));
	l.lease_id = id;
	l.ttl_ms = TTL;
	return l;
}

static void test_acquire_refuses_a_slot_promised_to_a_live_lease(void **st)
{
	(void)st;
	rk_ms_lease_table_t t;
	rk_ms_lease_table_init(&t, SKEW);
	rk_ms_lease_t a = lease(1, 5, 0xa, 11), b = lease(1, 5, 0xb, 22);
	assert_true(
	    rk_ms_lease_vote(&t, RK_MS_VOTE_ACQUIRE, &a, 1000, 0, NULL));
	rk_ms_lease_t c;
	memset(&c, 0, sizeof(c));
	assert_false(rk_ms_lease_vote(&t, RK_MS_VOTE_ACQUIRE, &b, 1500, 0, &c));
	assert_int_equal(c.lease_id, 11);
	/* Another datacenter's slot with the same worker id is separate. */
	rk_ms_lease_t d = lease(2, 5, 0xb, 33);
	assert_true(
	    rk_ms_lease_vote(&t, RK_MS_VOTE_ACQUIRE, &d, 1500, 0, NULL));
	rk_ms_lease_table_fini(&t);
}

static void test_expired_slot_is_reused_only_after_ttl_plus_skew(void **st)
{
	(void)st;
	rk_ms_lease_table_t t;
	rk_ms_lease_table_init(&t, SKEW);
	rk_ms_lease_t a = lease(0, 3, 0xa, 11), b = lease(0, 3, 0xb, 22);
	assert_true(
	    rk_ms_lease_vote(&t, RK_MS_VOTE_ACQUIRE, &a, 1000, 0, NULL));
	/* At ttl it is still promised (skew margin), and just before
	 * ttl + skew too. */
	assert_false(
	    rk_ms_lease_vote(&t, RK_MS_VOTE_ACQUIRE, &b, 1000 + TTL, 0, NULL));
	assert_false(rk_ms_lease_vote(&t, RK_MS_VOTE_ACQUIRE, &b,
	                              1000 + TTL + SKEW - 1, 0, NULL));
	assert_int_equal(
	    rk_ms_lease_pick(&t, 0, 3, 0, 0xfffffff7u, 1000 + TTL + SKEW - 1),
	    -1);
	assert_true(rk_ms_lease_vote(&t, RK_MS_VOTE_ACQUIRE, &b,
	                             1000 + TTL + SKEW, 0, NULL));
	rk_ms_lease_t got;
	assert_true(rk_ms_lease_get(&t, 0, 3, 1000 + TTL + SKEW, &got));
	assert_int_equal(got.lease_id, 22);
	rk_ms_lease_table_fini(&t);
}

static void test_renew_extends_only_the_holders_own_promise(void **st)
{
	(void)st;
	rk_ms_lease_table_t t;
	rk_ms_lease_table_init(&t, SKEW);
	rk_ms_lease_t a = lease(0, 1, 0xa, 11), b = lease(0, 1, 0xb, 22);
	assert_true(rk_ms_lease_vote(&t, RK_MS_VOTE_ACQUIRE, &a, 0, 0, NULL));
	assert_false(rk_ms_lease_vote(&t, RK_MS_VOTE_RENEW, &b, 500, 0, NULL));
	/* Same lease id under another holder is not the holder. */
	rk_ms_lease_t forged = lease(0, 1, 0xb, 11);
	assert_false(
	    rk_ms_lease_vote(&t, RK_MS_VOTE_RENEW, &forged, 500, 0, NULL));
	assert_true(rk_ms_lease_vote(&t, RK_MS_VOTE_RENEW, &a, 900, 0, NULL));
	/* Renewed at 900: promised until 900 + ttl + skew. */
	assert_false(rk_ms_lease_vote(&t, RK_MS_VOTE_ACQUIRE, &b,
	                              900 + TTL + SKEW - 1, 0, NULL));
	assert_true(rk_ms_lease_vote(&t, RK_MS_VOTE_ACQUIRE, &b,
	                             900 + TTL + SKEW, 0, NULL));
	/* The old holder's late renew is now refused. */
	assert_false(rk_ms_lease_vote(&t, RK_MS_VOTE_RENEW, &a,
	                              900 + TTL + SKEW + 1, 0, NULL));
	rk_ms_lease_table_fini(&t);
}

static void test_release_frees_only_the_holders_promise(void **st)
{
	(void)st;
	rk_ms_lease_table_t t;
	rk_ms_lease_table_init(&t, SKEW);
	rk_ms_lease_t a = lease(0, 9, 0xa, 11), b = lease(0, 9, 0xb, 22);
	assert_true(rk_ms_lease_vote(&t, RK_MS_VOTE_ACQUIRE, &a, 0, 0, NULL));
	/* A stranger's release is acknowledged and changes nothing. */
	assert_true(rk_ms_lease_vote(&t, RK_MS_VOTE_RELEASE, &b, 10, 0, NULL));
	assert_false(rk_ms_lease_vote(&t, RK_MS_VOTE_ACQUIRE, &b, 20, 0, NULL));
	assert_true(rk_ms_lease_vote(&t, RK_MS_VOTE_RELEASE, &a, 30, 0, NULL));
	assert_true(rk_ms_lease_vote(&t, RK_MS_VOTE_ACQUIRE, &b, 40, 0, NULL));
	rk_ms_lease_table_fini(&t);
}

static void test_bad_votes_are_refused(void **st)
{
	(void)st;
	rk_ms_lease_table_t t;
	rk_ms_lease_table_init(&t, SKEW);
	rk_ms_lease_t l = lease(32, 0, 1, 5);
	assert_false(rk_ms_lease_vote(&t, RK_MS_VOTE_ACQUIRE, &l, 0, 0, NULL));
	l = lease(0, 32, 1, 5);
	assert_false(rk_ms_lease_vote(&t, RK_MS_VOTE_ACQUIRE, &l, 0, 0, NULL));
	l = lease(0, 0, 1, 0);
	assert_false(rk_ms_lease_vote(&t, RK_MS_VOTE_ACQUIRE, &l, 0, 0, NULL));
	l = lease(0, 0, 1, 5);
	l.ttl_ms = 0;
	assert_false(rk_ms_lease_vote(&t, RK_MS_VOTE_RENEW, &l, 0, 0, NULL));
	l.ttl_ms = RK_MS_LEASE_MAX_TTL + 1;
	assert_false(rk_ms_lease_vote(&t, RK_MS_VOTE_ACQUIRE, &l, 0, 0, NULL));
	l.ttl_ms = TTL;
	assert_false(rk_ms_lease_vote(&t, 0, &l, 0, 0, NULL));
	assert_false(rk_ms_lease_vote(&t, 7, &l, 0, 0, NULL));
	assert_int_equal(rk_ms_lease_list(&t, 32, 0, NULL, 0), 0);
	assert_int_equal(rk_ms_lease_pick(&t, 32, 0, 0, 0, 0), -1);
	rk_ms_lease_table_fini(&t);
}

static void test_pick_prefers_then_skips_and_exhausts(void **st)
{
	(void)st;
	rk_ms_lease_table_t t;
	rk_ms_lease_table_init(&t, SKEW);
	assert_int_equal(rk_ms_lease_pick(&t, 4, 7, 0, 0, 0), 7);
	assert_int_equal(rk_ms_lease_pick(&t, 4, 32, 30, 0, 0), 30);
	assert_int_equal(rk_ms_lease_pick(&t, 4, 32, 30, 1u << 30, 0), 31);
	for (uint32_t w = 0; w < 32; w++) {
		rk_ms_lease_t l = lease(4, w, 1, 100 + w);
		assert_true(
		    rk_ms_lease_vote(&t, RK_MS_VOTE_ACQUIRE, &l, 0, 0, NULL));
	}
	assert_int_equal(rk_ms_lease_pick(&t, 4, 7, 0, 0, 10), -1);
	rk_ms_lease_t out[40];
	assert_int_equal(rk_ms_lease_list(&t, 4, 10, out, 40), 32);
	assert_int_equal(rk_ms_lease_list(&t, 5, 10, out, 40), 0);
	assert_int_equal(out[0].worker, 0);
	assert_int_equal(out[31].worker, 31);
	/* All expire together, and listing drops them. */
	assert_int_equal(rk_ms_lease_list(&t, 32, TTL + SKEW, out, 40), 0);
	assert_int_equal(rk_ms_lease_pick(&t, 4, 7, 0, 0, TTL + SKEW), 7);
	rk_ms_lease_table_fini(&t);
}

/* Three agents; random proposers ask random subsets (a partition) to
 * vote; a grant needs 2 of 3. At no instant may two different leases of
 * one slot both be granted and unexpired at their holders. */
static void test_two_majorities_never_grant_one_slot_twice(void **st)
{
	(void)st;
	unsigned seed = (unsigned)time(NULL);
	printf("seed %u\n", seed);
	srand(seed);
	rk_ms_lease_table_t ag[3];
	for (int i = 0; i < 3; i++)
		rk_ms_lease_table_init(&ag[i], SKEW);
	uint64_t grant_id[32];     /* last granted lease per worker */
	uint64_t holder_until[32]; /* its validity at the holder */
	memset(grant_id, 0, sizeof(grant_id));
	memset(holder_until, 0, sizeof(holder_until));
	uint64_t now = 1000;
	int grants = 0;
	for (uint64_t id = 1; id < 20000; id++) {
		now += (uint64_t)(rand() % 50);
		uint32_t w = (uint32_t)(rand() % 4);
		rk_ms_lease_t l = lease(0, w, (uint8_t)(id % 7), id);
		int kind =
		    rand() % 4 == 0 ? RK_MS_VOTE_RENEW : RK_MS_VOTE_ACQUIRE;
		if (kind == RK_MS_VOTE_RENEW && grant_id[w] != 0)
			l = lease(0, w, (uint8_t)(grant_id[w] % 7),
			          grant_id[w]);
		int mask = rand() % 8; /* which agents this side reaches */
		int yes = 0;
		for (int i = 0; i < 3; i++)
			if ((mask >> i) & 1)
				yes += rk_ms_lease_vote(&ag[i], kind, &l, now,
				                        0, NULL);
		if (yes >= 2) {
			if (grant_id[w] != l.lease_id &&
			    holder_until[w] > now) {
				fail_msg("seed %u: worker %u granted to %llu "
				         "while %llu valid",
				         seed, w, (unsigned long long)id,
				         (unsigned long long)grant_id[w]);
			}
			grant_id[w] = l.lease_id;
			holder_until[w] = now + TTL - SKEW;
			grants++;
		}
	}
	assert_true(grants > 100);
	for (int i = 0; i < 3; i++)
		rk_ms_lease_table_fini(&ag[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
	        test_acquire_refuses_a_slot_promised_to_a_live_lease),
	    cmocka_unit_test(
	        test_expired_slot_is_reused_only_after_ttl_plus_skew),
	    cmocka_unit_test(test_renew_extends_only_the_holders_own_promise),
	    cmocka_unit_test(test_release_frees_only_the_holders_promise),
	    cmocka_unit_test(test_bad_votes_are_refused),
	    cmocka_unit_test(test_pick_prefers_then_skips_and_exhausts),
	    cmocka_unit_test(test_two_majorities_never_grant_one_slot_twice),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
