/*
 * Gossip from a peer that lies or garbles, at random: valid gossip tables
 * are packed, mutated byte by byte, unpacked, checked (wire.c) and, when
 * they pass, merged into a member table. Whatever arrives, nothing
 * crashes (the sanitizer build runs this too), a table never holds a DOWN
 * entry with fewer than two distinct accusers, never more than the cap,
 * and never loses its own entry. The seed is printed; RINGKV_TEST_SEED
 * replays a run.
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

#include "core/log.h"
#include "table.h"
#include "wire.h"

#define ROUNDS 20000

static uint64_t rng;

static uint64_t rnd(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* A plausible member: one of a few ids, random states and counters. */
static rk_ms_member_t random_member(void)
{
	rk_ms_member_t m;
	memset(&m, 0, sizeof(m));
	memset(m.id, (int)(1 + rnd() % 6), RK_MS_ID_BYTES);
	m.generation = 1 + rnd() % 3;
	m.role = 4;
	m.weight = (uint32_t)(rnd() % 3);
	m.state = (int)(1 + rnd() % 4);
	m.heartbeat = rnd() % 50;
	m.incarnation = rnd() % 3;
	snprintf(m.rpc_url, sizeof(m.rpc_url), "tcp://127.0.0.1:%u",
	         (unsigned)(7000 + rnd() % 10));
	snprintf(m.datacenter, sizeof(m.datacenter), "dc1");
	snprintf(m.rack, sizeof(m.rack), "r%u", (unsigned)(rnd() % 3));
	m.naccusers = (size_t)(rnd() % 4);
	for (size_t i = 0; i < m.naccusers; i++) {
		memset(m.accusers[i].id, (int)(1 + rnd() % 6), RK_MS_ID_BYTES);
		m.accusers[i].source = (int)(1 + rnd() % 3);
		m.accusers[i].incarnation = m.incarnation;
	}
	return m;
}

static void test_random_and_garbled_gossip_never_breaks_the_table(void **s)
{
	(void)s;
	rk_ms_timing_t timing = {500, 300, 2000};
	rk_ms_member_t self;
	memset(&self, 0, sizeof(self));
	memset(self.id, 1, RK_MS_ID_BYTES);
	self.generation = 1;
	self.role = 4;
	rk_ms_table_t t;
	assert_int_equal(rk_ms_table_init(&t, &self, &timing, 0), RK_OK);
	size_t accepted = 0, refused = 0, garbled = 0;
	uint64_t now = 0;
	for (int round = 0; round < ROUNDS; round++) {
		rk_ms_member_t m[4];
		size_t n = (size_t)(1 + rnd() % 4);
		for (size_t i = 0; i < n; i++)
			m[i] = random_member();
		rk_ms_pb_list_t l;
		assert_int_equal(rk_ms_pb_list_init(&l, m, n, 0, 0), RK_OK);
		Ringkv__V1__GossipRequest req =
		    RINGKV__V1__GOSSIP_REQUEST__INIT;
		req.n_members = l.n;
		req.members = l.pp;
		uint8_t buf[4096];
		size_t len = ringkv__v1__gossip_request__pack(&req, buf);
		rk_ms_pb_list_fini(&l);
		/* Flip a few bytes in most rounds. */
		int flips = (int)(rnd() % 4);
		for (int f = 0; f < flips && len > 0; f++)
			buf[rnd() % len] ^= (uint8_t)(1 + rnd() % 255);
		Ringkv__V1__GossipRequest *got =
		    ringkv__v1__gossip_request__unpack(NULL, len, buf);
		if (got == NULL) {
			garbled++;
			continue;
		}
		rk_ms_member_t
		    in[RK_MS_MAX_MEMBERS > 8 ? 8 : RK_MS_MAX_MEMBERS];
		bool ok = got->n_members <= 8;
		for (size_t i = 0; ok && i < got->n_members; i++) {
			const char *why;
			ok = rk_ms_member_from_pb(got->members[i], &in[i],
			                          &why) == RK_OK;
		}
		if (ok) {
			accepted++;
			now += rnd() % 200;
			rk_ms_table_merge(&t, in, got->n_members, now, now);
			rk_ms_table_heard(&t, now);
			uint8_t probe[4][16];
			rk_ms_table_tick(&t, now, now, probe, 4);
		} else {
			refused++;
		}
		ringkv__v1__gossip_request__free_unpacked(got, NULL);
		assert_true(t.n >= 1 && t.n <= RK_MS_MAX_MEMBERS);
		assert_memory_equal(rk_ms_table_self(&t)->id, self.id, 16);
		for (size_t i = 0; i < t.n; i++) {
			if (t.m[i].state == RK_MS_DOWN)
				assert_true(rk_ms_member_accusers(&t.m[i]) >=
				            2);
			assert_true(t.m[i].state >= RK_MS_ALIVE &&
			            t.m[i].state <= RK_MS_LEFT);
		}
	}
	printf("%zu tables merged, %zu refused by the checks, %zu not even "
	       "protobuf\n",
	       accepted, refused, garbled);
	assert_true(accepted > 0 && refused > 0);
	rk_ms_table_fini(&t);
}

int main(void)
{
	const char *env = getenv("RINGKV_TEST_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 0)
	                    : (uint64_t)time(NULL) ^ (uint64_t)clock();
	printf("test_membership_wire_random seed %llu (RINGKV_TEST_SEED to "
	       "replay)\n",
	       (unsigned long long)seed);
	rng = seed;
	rk_log_set_level(RK_LOG_WARN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
	        test_random_and_garbled_gossip_never_breaks_the_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
