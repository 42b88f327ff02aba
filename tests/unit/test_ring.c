/*
 * lib/ring: balance, weights, minimal movement, preference lists, diff,
 * determinism, and refusal of bad input. Node UUIDs and keys are drawn
 * from a seeded generator; the seed is printed (set RINGKV_TEST_SEED to
 * replay a run).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ring/members.h"
#include "ring/ring.h"

#define KEYS 1000000

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* splitmix64 */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void random_id(uint8_t id[RK_RING_ID_BYTES])
{
	uint64_t a = rnd(), b = rnd();
	memcpy(id, &a, 8);
	memcpy(id + 8, &b, 8);
}

static void make_nodes(rk_ring_node_t *nodes, size_t n, uint32_t weight)
{
	memset(nodes, 0, n * sizeof(*nodes));
	for (size_t i = 0; i < n; i++) {
		random_id(nodes[i].id);
		nodes[i].weight = weight;
		snprintf(nodes[i].datacenter, RK_RING_NAME_MAX, "dc1");
		snprintf(nodes[i].rack, RK_RING_NAME_MAX, "rack%zu", i % 3);
	}
}

/* Counts, per node index of R, how many of KEYS random keys it owns. */
static void count_keys(const rk_ring_t *r, size_t *counts, uint64_t seed)
{
	uint64_t saved = rng_state;
	rng_state = seed;
	memset(counts, 0, rk_ring_node_count(r) * sizeof(*counts));
	for (size_t k = 0; k < KEYS; k++) {
		uint64_t key[2] = {rnd(), rnd()};
		int o = rk_ring_owner(r, rk_ring_key_token(key, sizeof(key)));
		assert_true(o >= 0);
		counts[o]++;
	}
	rng_state = saved;
}

static void test_ring_hash_is_siphash24_as_in_libsodium(void **state)
{
	(void)state;
	assert_true(sodium_init() >= 0);
	for (size_t len = 0; len < 40; len++) {
		uint8_t msg[40];
		for (size_t i = 0; i < len; i++)
			msg[i] = (uint8_t)rnd();
		uint8_t h[8];
		crypto_shorthash_siphash24(h, msg, len,
		                           (const uint8_t *)RK_RING_HASH_KEY);
		uint64_t want = 0;
		for (int i = 7; i >= 0; i--)
			want = (want << 8) | h[i];
		assert_true(rk_ring_key_token(msg, len) == want);
	}
}

static void test_ring_node_token_is_documented_value(void **state)
{
	(void)state;
	/* docs/ring.md gives this vector for a reader who reimplements it. */
	uint8_t id[16];
	for (int i = 0; i < 16; i++)
		id[i] = (uint8_t)i;
	printf("token 0 of 000102..0f: %016llx, key \"hello\": %016llx\n",
	       (unsigned long long)rk_ring_node_token(id, 0),
	       (unsigned long long)rk_ring_key_token("hello", 5));
	uint8_t msg[20];
	memcpy(msg, id, 16);
	memset(msg + 16, 0, 4);
	assert_true(rk_ring_node_token(id, 0) == rk_ring_key_token(msg, 20));
	msg[16] = 7;
	assert_true(rk_ring_node_token(id, 7) == rk_ring_key_token(msg, 20));
	/* The vectors printed in docs/ring.md: a change of hash, key or
	 * byte order moves every key in every cluster, so it must fail. */
	assert_true(rk_ring_node_token(id, 0) == 0xa94e9f204f4ada6bull);
	assert_true(rk_ring_key_token("hello", 5) == 0x6abc2d26699c1e12ull);
}

static void
test_ring_ten_equal_nodes_each_within_ten_percent_of_fair(void **state)
{
	(void)state;
	rk_ring_node_t nodes[10];
	make_nodes(nodes, 10, 1);
	rk_ring_t *r;
	assert_int_equal(rk_ring_build(nodes, 10, 0, &r), RK_OK);
	assert_int_equal(rk_ring_token_count(r), 10 * RK_RING_DEFAULT_VNODES);
	size_t counts[10];
	count_keys(r, counts, rnd());
	double fair = KEYS / 10.0, worst = 0;
	for (size_t i = 0; i < 10; i++) {
		double dev = ((double)counts[i] - fair) / fair;
		if (dev < 0)
			dev = -dev;
		if (dev > worst)
			worst = dev;
		assert_true(dev <= 0.10);
		/* The computed share agrees with the keys counted. */
		double s = rk_ring_share(r, i) * KEYS;
		assert_true(s > counts[i] * 0.97 && s < counts[i] * 1.03);
	}
	printf("10 nodes x %u vnodes: worst deviation from fair share %.2f%%\n",
	       RK_RING_DEFAULT_VNODES, worst * 100);
	rk_ring_free(r);
}

static void test_ring_weights_two_to_one_give_shares_two_to_one(void **state)
{
	(void)state;
	rk_ring_node_t nodes[6];
	make_nodes(nodes, 6, 1);
	uint8_t heavy[3][16];
	for (size_t i = 0; i < 3; i++) {
		nodes[i].weight = 2;
		memcpy(heavy[i], nodes[i].id, 16);
	}
	rk_ring_t *r;
	assert_int_equal(rk_ring_build(nodes, 6, 0, &r), RK_OK);
	size_t counts[6];
	count_keys(r, counts, rnd());
	/* Total weight 9: a weight-2 node's fair share is 2/9, a weight-1
	 * node's 1/9. */
	for (size_t i = 0; i < 6; i++) {
		const rk_ring_node_t *nd = rk_ring_node(r, i);
		double fair = KEYS * (double)nd->weight / 9.0;
		double ratio = (double)counts[i] / fair;
		printf("weight %u: %zu keys, %.3f of fair\n", nd->weight,
		       counts[i], ratio);
		assert_true(ratio >= 0.90 && ratio <= 1.10);
	}
	rk_ring_free(r);
}

static void
test_ring_eleventh_node_takes_about_a_eleventh_all_for_itself(void **state)
{
	(void)state;
	rk_ring_node_t nodes[11];
	make_nodes(nodes, 11, 1);
	rk_ring_t *r10, *r11;
	assert_int_equal(rk_ring_build(nodes, 10, 0, &r10), RK_OK);
	assert_int_equal(rk_ring_build(nodes, 11, 0, &r11), RK_OK);
	uint64_t saved = rng_state;
	size_t moved = 0, moved_elsewhere = 0;
	for (size_t k = 0; k < KEYS; k++) {
		uint64_t key[2] = {rnd(), rnd()};
		uint64_t t = rk_ring_key_token(key, sizeof(key));
		const rk_ring_node_t *a =
		    rk_ring_node(r10, rk_ring_owner(r10, t));
		const rk_ring_node_t *b =
		    rk_ring_node(r11, rk_ring_owner(r11, t));
		if (memcmp(a->id, b->id, 16) != 0) {
			moved++;
			if (memcmp(b->id, nodes[10].id, 16) != 0)
				moved_elsewhere++;
		}
	}
	(void)saved;
	double want = KEYS / 11.0;
	printf("adding an 11th node moved %zu keys (1/11 is %.0f)\n", moved,
	       want);
	assert_true(moved >= want * 0.8 && moved <= want * 1.2);
	assert_int_equal(moved_elsewhere, 0);

	/* The diff names exactly the ranges that moved, all to the new node,
	 * and their total length is the new node's share. */
	rk_ring_move_t *mv;
	size_t nm;
	assert_int_equal(rk_ring_diff(r10, r11, &mv, &nm), RK_OK);
	assert_true(nm > 0);
	double total = 0;
	for (size_t i = 0; i < nm; i++) {
		assert_true(mv[i].had_from && mv[i].has_to);
		assert_memory_equal(mv[i].to, nodes[10].id, 16);
		total += (double)rk_ring_range_len(mv[i].start, mv[i].end);
		/* A token inside the range is owned by the new node now. */
		uint64_t inside = mv[i].end;
		const rk_ring_node_t *o =
		    rk_ring_node(r11, rk_ring_owner(r11, inside));
		assert_memory_equal(o->id, nodes[10].id, 16);
	}
	int idx = rk_ring_find(r11, nodes[10].id);
	assert_true(idx >= 0);
	double share = total / 18446744073709551616.0;
	assert_true(share > rk_ring_share(r11, (size_t)idx) * 0.999999 &&
	            share < rk_ring_share(r11, (size_t)idx) * 1.000001);
	free(mv);

	/* And the other way: removing it gives every range back. */
	assert_int_equal(rk_ring_diff(r11, r10, &mv, &nm), RK_OK);
	for (size_t i = 0; i < nm; i++)
		assert_memory_equal(mv[i].from, nodes[10].id, 16);
	free(mv);
	rk_ring_free(r10);
	rk_ring_free(r11);
}

static void test_ring_diff_of_equal_rings_is_empty(void **state)
{
	(void)state;
	rk_ring_node_t nodes[4];
	make_nodes(nodes, 4, 1);
	rk_ring_t *a, *b, *empty;
	assert_int_equal(rk_ring_build(nodes, 4, 64, &a), RK_OK);
	assert_int_equal(rk_ring_build(nodes, 4, 64, &b), RK_OK);
	assert_int_equal(rk_ring_build(NULL, 0, 64, &empty), RK_OK);
	rk_ring_move_t *mv;
	size_t nm;
	assert_int_equal(rk_ring_diff(a, b, &mv, &nm), RK_OK);
	assert_int_equal(nm, 0);
	assert_null(mv);
	/* From nothing, every range comes from no one. */
	assert_int_equal(rk_ring_diff(empty, a, &mv, &nm), RK_OK);
	assert_true(nm > 0);
	for (size_t i = 0; i < nm; i++)
		assert_false(mv[i].had_from);
	free(mv);
	assert_int_equal(rk_ring_owner(empty, 42), -1);
	rk_ring_free(a);
	rk_ring_free(b);
	rk_ring_free(empty);
}

static void test_ring_same_table_in_any_order_gives_same_ring(void **state)
{
	(void)state;
	rk_ring_node_t nodes[8], shuffled[8];
	make_nodes(nodes, 8, 1);
	nodes[3].weight = 3;
	memcpy(shuffled, nodes, sizeof(nodes));
	for (size_t i = 7; i > 0; i--) {
		size_t j = rnd() % (i + 1);
		rk_ring_node_t t = shuffled[i];
		shuffled[i] = shuffled[j];
		shuffled[j] = t;
	}
	rk_ring_t *a, *b;
	assert_int_equal(rk_ring_build(nodes, 8, 128, &a), RK_OK);
	assert_int_equal(rk_ring_build(shuffled, 8, 128, &b), RK_OK);
	assert_int_equal(rk_ring_token_count(a), rk_ring_token_count(b));
	for (size_t i = 0; i < 8; i++) {
		assert_memory_equal(rk_ring_node(a, i)->id,
		                    rk_ring_node(b, i)->id, 16);
		uint64_t ta[384], tb[384];
		size_t na = rk_ring_node_tokens(a, i, ta, 384);
		assert_int_equal(na, rk_ring_node_tokens(b, i, tb, 384));
		assert_memory_equal(ta, tb, na * sizeof(uint64_t));
	}
	rk_ring_pref_opts_t o = {.n = 3};
	for (int k = 0; k < 1000; k++) {
		uint64_t t = rnd();
		int pa[8], pb[8];
		size_t ra, rb;
		size_t na = rk_ring_preference_list(a, t, &o, pa, 8, &ra);
		size_t nb = rk_ring_preference_list(b, t, &o, pb, 8, &rb);
		assert_int_equal(na, nb);
		assert_int_equal(ra, rb);
		assert_memory_equal(pa, pb, na * sizeof(int));
	}
	rk_ring_free(a);
	rk_ring_free(b);
}

static void
test_ring_preference_list_never_repeats_and_spans_racks(void **state)
{
	(void)state;
	/* 9 nodes over 3 racks of one datacenter, one rack twice as big. */
	rk_ring_node_t nodes[9];
	make_nodes(nodes, 9, 1);
	for (size_t i = 0; i < 9; i++)
		snprintf(nodes[i].rack, RK_RING_NAME_MAX, "rack%zu",
		         i < 5   ? (size_t)0
		         : i < 7 ? (size_t)1
		                 : (size_t)2);
	rk_ring_t *r;
	assert_int_equal(rk_ring_build(nodes, 9, 0, &r), RK_OK);
	rk_ring_pref_opts_t o = {.n = 3};
	for (int k = 0; k < 20000; k++) {
		uint64_t t = rnd();
		int p[9];
		size_t reps;
		size_t n = rk_ring_preference_list(r, t, &o, p, 9, &reps);
		assert_int_equal(n, 9); /* 3 replicas, 6 fallbacks */
		assert_int_equal(reps, 3);
		bool seen[9] = {false};
		for (size_t i = 0; i < n; i++) {
			assert_true(p[i] >= 0 && p[i] < 9);
			assert_false(seen[p[i]]);
			seen[p[i]] = true;
		}
		const char *r0 = rk_ring_node(r, p[0])->rack;
		const char *r1 = rk_ring_node(r, p[1])->rack;
		const char *r2 = rk_ring_node(r, p[2])->rack;
		assert_string_not_equal(r0, r1);
		assert_string_not_equal(r0, r2);
		assert_string_not_equal(r1, r2);
		/* The first replica is the key's owner unless its rack was
		 * taken: here it is the first node met, always taken. */
		assert_int_equal(p[0], rk_ring_owner(r, t));
	}
	/* Asking for more replicas than nodes gives every node once. */
	o.n = 20;
	int p[20];
	size_t reps;
	assert_int_equal(rk_ring_preference_list(r, 5, &o, p, 20, &reps), 9);
	assert_int_equal(reps, 9);
	rk_ring_free(r);
}

static void test_ring_preference_list_spreads_over_datacenters(void **state)
{
	(void)state;
	/* 2 datacenters x 2 racks x 3 nodes. */
	rk_ring_node_t nodes[12];
	make_nodes(nodes, 12, 1);
	for (size_t i = 0; i < 12; i++) {
		snprintf(nodes[i].datacenter, RK_RING_NAME_MAX, "dc%zu", i / 6);
		snprintf(nodes[i].rack, RK_RING_NAME_MAX, "r%zu", (i / 3) % 2);
	}
	rk_ring_t *r;
	assert_int_equal(rk_ring_build(nodes, 12, 0, &r), RK_OK);
	rk_ring_dc_rf_t rf[2] = {{"dc0", 3}, {"dc1", 2}};
	rk_ring_pref_opts_t per_dc = {.dcs = rf, .ndc = 2};
	rk_ring_pref_opts_t two = {.n = 2};
	for (int k = 0; k < 5000; k++) {
		uint64_t t = rnd();
		int p[12];
		size_t reps;
		size_t n = rk_ring_preference_list(r, t, &per_dc, p, 12, &reps);
		assert_int_equal(n, 12);
		assert_int_equal(reps, 5);
		int in_dc[2] = {0, 0};
		bool racks[2][2] = {{false, false}, {false, false}};
		for (size_t i = 0; i < 5; i++) {
			const rk_ring_node_t *nd = rk_ring_node(r, p[i]);
			int dc = nd->datacenter[2] - '0';
			in_dc[dc]++;
			racks[dc][nd->rack[1] - '0'] = true;
		}
		assert_int_equal(in_dc[0], 3);
		assert_int_equal(in_dc[1], 2);
		/* Both racks of each datacenter hold a replica. */
		assert_true(racks[0][0] && racks[0][1]);
		assert_true(racks[1][0] && racks[1][1]);
		/* N = 2 in all: one replica in each datacenter. */
		n = rk_ring_preference_list(r, t, &two, p, 2, &reps);
		assert_int_equal(n, 2);
		assert_string_not_equal(rk_ring_node(r, p[0])->datacenter,
		                        rk_ring_node(r, p[1])->datacenter);
	}
	/* A datacenter nobody is in gives no replicas, and no error. */
	rk_ring_dc_rf_t none[1] = {{"dc9", 3}};
	rk_ring_pref_opts_t o = {.dcs = none, .ndc = 1};
	int p[12];
	size_t reps;
	assert_int_equal(rk_ring_preference_list(r, 1, &o, p, 12, &reps), 12);
	assert_int_equal(reps, 0);
	rk_ring_free(r);
}

static void test_ring_weight_zero_node_owns_nothing(void **state)
{
	(void)state;
	rk_ring_node_t nodes[3];
	make_nodes(nodes, 3, 1);
	nodes[1].weight = 0;
	rk_ring_t *r;
	assert_int_equal(rk_ring_build(nodes, 3, 16, &r), RK_OK);
	int idx = rk_ring_find(r, nodes[1].id);
	assert_true(idx >= 0);
	assert_true(rk_ring_share(r, (size_t)idx) == 0.0);
	rk_ring_pref_opts_t o = {.n = 3};
	int p[3];
	size_t reps;
	for (int k = 0; k < 100; k++) {
		size_t n = rk_ring_preference_list(r, rnd(), &o, p, 3, &reps);
		assert_int_equal(n, 2);
		assert_int_not_equal(p[0], idx);
		assert_int_not_equal(p[1], idx);
	}
	rk_ring_free(r);
}

static void test_ring_build_refuses_bad_input(void **state)
{
	(void)state;
	rk_ring_node_t nodes[2];
	make_nodes(nodes, 2, 1);
	rk_ring_t *r = (rk_ring_t *)1;
	memcpy(nodes[1].id, nodes[0].id, 16);
	assert_int_equal(rk_ring_build(nodes, 2, 0, &r), RK_INVALID_ARGUMENT);
	assert_null(r);
	make_nodes(nodes, 2, 1);
	nodes[0].weight = RK_RING_MAX_WEIGHT + 1;
	assert_int_equal(rk_ring_build(nodes, 2, 0, &r), RK_INVALID_ARGUMENT);
	nodes[0].weight = 1;
	assert_int_equal(rk_ring_build(nodes, 2, RK_RING_MAX_VNODES + 1, &r),
	                 RK_INVALID_ARGUMENT);
	nodes[0].weight = RK_RING_MAX_WEIGHT;
	nodes[1].weight = RK_RING_MAX_WEIGHT;
	assert_int_equal(rk_ring_build(nodes, 2, RK_RING_MAX_VNODES, &r),
	                 RK_INVALID_ARGUMENT);
	assert_int_equal(rk_ring_build(NULL, 1, 0, &r), RK_INVALID_ARGUMENT);
	/* Unterminated names are cut, not overrun. */
	make_nodes(nodes, 2, 1);
	memset(nodes[0].rack, 'x', RK_RING_NAME_MAX);
	assert_int_equal(rk_ring_build(nodes, 2, 4, &r), RK_OK);
	int i = rk_ring_find(r, nodes[0].id);
	assert_int_equal(strlen(rk_ring_node(r, (size_t)i)->rack),
	                 RK_RING_NAME_MAX - 1);
	rk_ring_free(r);
}

static int cmp_tok_node(const void *a, const void *b)
{
	const uint64_t *x = a, *y = b;
	if (x[0] != y[0])
		return x[0] < y[0] ? -1 : 1;
	return x[1] < y[1] ? -1 : (x[1] > y[1]);
}

static void
test_ring_preference_list_is_the_clockwise_walk_of_nodes(void **state)
{
	(void)state;
	/* One rack: no placement preference, so replicas and fallbacks are
	 * exactly the distinct nodes in the order met walking clockwise,
	 * computed here independently from the nodes' own tokens. */
	rk_ring_node_t nodes[6];
	make_nodes(nodes, 6, 1);
	for (size_t i = 0; i < 6; i++)
		snprintf(nodes[i].rack, RK_RING_NAME_MAX, "rack");
	rk_ring_t *r;
	assert_int_equal(rk_ring_build(nodes, 6, 32, &r), RK_OK);
	uint64_t all[6 * 32][2];
	size_t k = 0;
	for (size_t i = 0; i < 6; i++) {
		uint64_t t[32];
		assert_int_equal(rk_ring_node_tokens(r, i, t, 32), 32);
		for (size_t j = 0; j < 32; j++) {
			all[k][0] = t[j];
			all[k][1] = i;
			k++;
		}
	}
	qsort(all, k, sizeof(all[0]), cmp_tok_node);
	rk_ring_pref_opts_t o = {.n = 2};
	for (int trial = 0; trial < 2000; trial++) {
		uint64_t key = rnd();
		size_t at = 0;
		while (at < k && all[at][0] < key)
			at++;
		int want[6], nw = 0;
		for (size_t step = 0; step < k && nw < 6; step++) {
			int node = (int)all[(at + step) % k][1];
			bool dup = false;
			for (int w = 0; w < nw; w++)
				dup = dup || want[w] == node;
			if (!dup)
				want[nw++] = node;
		}
		int got[6];
		size_t reps;
		assert_int_equal(
		    rk_ring_preference_list(r, key, &o, got, 6, &reps), 6);
		assert_int_equal(reps, 2);
		assert_memory_equal(got, want, sizeof(want));
	}
	rk_ring_free(r);
}

static void
test_ring_from_table_takes_the_role_members_that_have_not_left(void **state)
{
	(void)state;
	uint8_t ids[6][16];
	Ringkv__V1__Member m[6], *mp[6], *rev[6];
	const int roles[6] = {3, 3, 3, 3, 4, 3};
	const int states[6] = {1, 2, 3, 4, 1, 1};
	for (int i = 0; i < 6; i++) {
		random_id(ids[i]);
		Ringkv__V1__Member init = RINGKV__V1__MEMBER__INIT;
		m[i] = init;
		m[i].has_node_id = true;
		m[i].node_id.data = ids[i];
		m[i].node_id.len = i == 5 ? 3 : 16; /* 5: malformed, skipped */
		m[i].has_role = true;
		m[i].role = (Ringkv__V1__ServiceId)roles[i];
		m[i].has_state = true;
		m[i].state = (Ringkv__V1__MemberState)states[i];
		m[i].has_weight = true;
		m[i].weight = 1;
		m[i].datacenter = "dc1";
		m[i].rack = i % 2 ? "a" : "b";
		mp[i] = &m[i];
		rev[5 - i] = &m[i];
	}
	rk_ring_t *r, *r2;
	assert_int_equal(rk_ring_from_members(mp, 6, 3, 16, &r), RK_OK);
	/* Alive, suspect and down storage members; not the left one, not
	 * the agent, not the malformed one. */
	assert_int_equal(rk_ring_node_count(r), 3);
	for (int i = 0; i < 3; i++)
		assert_true(rk_ring_find(r, ids[i]) >= 0);
	assert_int_equal(rk_ring_find(r, ids[3]), -1);
	assert_int_equal(rk_ring_find(r, ids[4]), -1);
	assert_int_equal(rk_ring_from_members(rev, 6, 3, 16, &r2), RK_OK);
	for (int k = 0; k < 1000; k++) {
		uint64_t t = rnd();
		assert_memory_equal(rk_ring_node(r, rk_ring_owner(r, t))->id,
		                    rk_ring_node(r2, rk_ring_owner(r2, t))->id,
		                    16);
	}
	rk_ring_free(r);
	rk_ring_free(r2);
}

int main(void)
{
	const char *env = getenv("RINGKV_TEST_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 0)
	                    : (uint64_t)time(NULL) ^ (uint64_t)clock();
	printf("test_ring seed %llu (RINGKV_TEST_SEED to replay)\n",
	       (unsigned long long)seed);
	rng_state = seed;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ring_hash_is_siphash24_as_in_libsodium),
	    cmocka_unit_test(test_ring_node_token_is_documented_value),
	    cmocka_unit_test(
	        test_ring_ten_equal_nodes_each_within_ten_percent_of_fair),
	    cmocka_unit_test(
	        test_ring_weights_two_to_one_give_shares_two_to_one),
	    cmocka_unit_test(
	        test_ring_eleventh_node_takes_about_a_eleventh_all_for_itself),
	    cmocka_unit_test(test_ring_diff_of_equal_rings_is_empty),
	    cmocka_unit_test(test_ring_same_table_in_any_order_gives_same_ring),
	    cmocka_unit_test(
	        test_ring_preference_list_never_repeats_and_spans_racks),
	    cmocka_unit_test(
	        test_ring_preference_list_spreads_over_datacenters),
	    cmocka_unit_test(test_ring_weight_zero_node_owns_nothing),
	    cmocka_unit_test(
	        test_ring_preference_list_is_the_clockwise_walk_of_nodes),
	    cmocka_unit_test(test_ring_build_refuses_bad_input),
	    cmocka_unit_test(
	        test_ring_from_table_takes_the_role_members_that_have_not_left),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
