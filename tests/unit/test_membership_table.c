/*
 * The membership agent's rules, driven exactly: the member table (merge,
 * suspicion, conviction on two sources only, refutation, catching up,
 * forgetting), the checks on members from the wire, and the identity file.
 * Time is passed in, so no case sleeps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "identity.h"
#include "table.h"
#include "wire.h"

#define SUSPECT  500
#define ISOLATED 300
#define FORGET   2000

static const rk_ms_timing_t timing = {SUSPECT, ISOLATED, FORGET};

static rk_ms_member_t member(uint8_t tag)
{
	rk_ms_member_t m;
	memset(&m, 0, sizeof(m));
	memset(m.id, tag, RK_MS_ID_BYTES);
	m.generation = 1;
	m.role = 4;
	m.weight = 1;
	m.state = RK_MS_ALIVE;
	snprintf(m.name, sizeof(m.name), "n%u", tag);
	snprintf(m.rpc_url, sizeof(m.rpc_url), "tcp://127.0.0.1:%u",
	         7000 + tag);
	return m;
}

/* A table for agent 1 that knows agents 2 and 3, at time 0. */
static void three(rk_ms_table_t *t)
{
	rk_ms_member_t self = member(1);
	assert_int_equal(rk_ms_table_init(t, &self, &timing, 1000), RK_OK);
	rk_ms_member_t others[2] = {member(2), member(3)};
	assert_int_equal(rk_ms_table_merge(t, others, 2, 1000, 0), 2);
	assert_int_equal(t->n, 3);
}

static rk_ms_member_t *get(rk_ms_table_t *t, uint8_t tag)
{
	uint8_t id[16];
	memset(id, tag, 16);
	return rk_ms_table_find(t, id);
}

static void test_merge_takes_higher_generation_and_incarnation_only(void **s)
{
	(void)s;
	rk_ms_table_t t;
	three(&t);
	rk_ms_member_t m = member(2);
	m.generation = 2;
	snprintf(m.rpc_url, sizeof(m.rpc_url), "tcp://127.0.0.1:9999");
	assert_int_equal(rk_ms_table_merge(&t, &m, 1, 1100, 0), 1);
	assert_string_equal(get(&t, 2)->rpc_url, "tcp://127.0.0.1:9999");
	/* An older generation is ignored. */
	rk_ms_member_t old = member(2);
	old.heartbeat = 99;
	assert_int_equal(rk_ms_table_merge(&t, &old, 1, 1100, 0), 0);
	assert_int_equal(get(&t, 2)->generation, 2);
	assert_int_equal(get(&t, 2)->heartbeat, 0);
	/* Same generation and incarnation: the heartbeat is the maximum. */
	m.heartbeat = 5;
	rk_ms_table_merge(&t, &m, 1, 1100, 0);
	m.heartbeat = 3;
	rk_ms_table_merge(&t, &m, 1, 1100, 0);
	assert_int_equal(get(&t, 2)->heartbeat, 5);
	rk_ms_table_fini(&t);
}

static void test_down_from_a_single_accuser_is_kept_suspect(void **s)
{
	(void)s;
	rk_ms_table_t t;
	three(&t);
	rk_ms_member_t m = member(2);
	m.state = RK_MS_DOWN;
	m.naccusers = 1;
	memset(m.accusers[0].id, 3, 16);
	m.accusers[0].source = RK_MS_ACCUSE_STALLED;
	assert_int_equal(rk_ms_table_merge(&t, &m, 1, 1100, 0), 1);
	assert_int_equal(get(&t, 2)->state, RK_MS_SUSPECT);
	/* The same accuser twice is still one source. */
	m.naccusers = 2;
	m.accusers[1] = m.accusers[0];
	rk_ms_table_merge(&t, &m, 1, 1100, 0);
	assert_int_equal(get(&t, 2)->state, RK_MS_SUSPECT);
	assert_int_equal(rk_ms_member_accusers(get(&t, 2)), 1);
	/* A member first heard of as down is not taken in at all (that is
	 * what keeps forgotten entries from coming back); as suspect it is. */
	rk_ms_member_t n4 = member(4);
	n4.state = RK_MS_DOWN;
	n4.naccusers = 1;
	memset(n4.accusers[0].id, 3, 16);
	rk_ms_table_merge(&t, &n4, 1, 1100, 0);
	assert_null(get(&t, 4));
	n4.state = RK_MS_SUSPECT;
	rk_ms_table_merge(&t, &n4, 1, 1100, 0);
	assert_int_equal(get(&t, 4)->state, RK_MS_SUSPECT);
	rk_ms_table_fini(&t);
}

static void
test_stalled_member_is_suspect_and_down_only_on_second_source(void **s)
{
	(void)s;
	rk_ms_table_t t;
	three(&t);
	uint8_t probe[4][16];
	/* Heartbeats of 3 keep rising; 2 is silent. */
	uint64_t now = 1000;
	size_t np = 0;
	for (int round = 0; round < 8; round++) {
		now += 100;
		rk_ms_table_heard(&t, now);
		rk_ms_member_t m3 = *get(&t, 3);
		m3.heartbeat++;
		rk_ms_table_merge(&t, &m3, 1, now, 0);
		np = rk_ms_table_tick(&t, now, now, probe, 4);
	}
	/* 600 ms without a rise: suspect, this agent its only accuser, and
	 * it asks for indirect probes rather than convicting. */
	assert_int_equal(get(&t, 2)->state, RK_MS_SUSPECT);
	assert_int_equal(get(&t, 3)->state, RK_MS_ALIVE);
	assert_int_equal(np, 1);
	assert_memory_equal(probe[0], get(&t, 2)->id, 16);
	for (int round = 0; round < 20; round++) {
		now += 100;
		rk_ms_table_heard(&t, now);
		rk_ms_table_tick(&t, now, now, probe, 4);
	}
	assert_int_equal(get(&t, 2)->state, RK_MS_SUSPECT);
	/* Agent 3's failed indirect probe is the second source. */
	uint8_t three_id[16];
	memset(three_id, 3, 16);
	assert_int_equal(rk_ms_table_accuse(&t, get(&t, 2)->id, three_id,
	                                    RK_MS_ACCUSE_INDIRECT, now, now),
	                 RK_OK);
	rk_ms_member_t *m2 = get(&t, 2);
	assert_int_equal(m2->state, RK_MS_DOWN);
	assert_int_equal(rk_ms_member_accusers(m2), 2);
	assert_int_equal(m2->accusers[0].id[0], 1);
	assert_int_equal(m2->accusers[1].id[0], 3);
	assert_int_equal(m2->accusers[1].source, RK_MS_ACCUSE_INDIRECT);
	rk_ms_table_fini(&t);
}

static void test_suspicion_is_refuted_by_a_higher_incarnation(void **s)
{
	(void)s;
	rk_ms_table_t t;
	three(&t);
	/* Peers say this agent (1) is down, with two accusers. */
	rk_ms_member_t me = *rk_ms_table_self(&t);
	me.state = RK_MS_DOWN;
	me.naccusers = 2;
	memset(me.accusers[0].id, 2, 16);
	memset(me.accusers[1].id, 3, 16);
	rk_ms_table_merge(&t, &me, 1, 1100, 0);
	assert_int_equal(rk_ms_table_self(&t)->state, RK_MS_ALIVE);
	assert_int_equal(rk_ms_table_self(&t)->incarnation, 1);
	assert_int_equal(t.refutations, 1);

	/* And the other way: 2 is down here; its refutation clears that. */
	rk_ms_member_t m2 = *get(&t, 2);
	m2.state = RK_MS_DOWN;
	m2.naccusers = 2;
	memset(m2.accusers[0].id, 1, 16);
	memset(m2.accusers[1].id, 3, 16);
	rk_ms_table_merge(&t, &m2, 1, 1100, 0);
	assert_int_equal(get(&t, 2)->state, RK_MS_DOWN);
	rk_ms_member_t back = member(2);
	back.incarnation = 1;
	rk_ms_table_merge(&t, &back, 1, 1200, 0);
	assert_int_equal(get(&t, 2)->state, RK_MS_ALIVE);
	assert_int_equal(get(&t, 2)->naccusers, 0);
	/* An unhealthy agent does not refute. */
	t.healthy = false;
	me = *rk_ms_table_self(&t);
	me.state = RK_MS_SUSPECT;
	rk_ms_table_merge(&t, &me, 1, 1300, 0);
	assert_int_equal(rk_ms_table_self(&t)->incarnation, 1);
	rk_ms_table_fini(&t);
}

static void test_isolated_agent_convicts_nobody_until_caught_up(void **s)
{
	(void)s;
	rk_ms_table_t t;
	three(&t);
	uint8_t probe[4][16];
	/* Paused for 5 s: no rounds, nothing heard. */
	uint64_t now = 6000;
	rk_ms_table_tick(&t, now, now, probe, 4);
	assert_false(t.caught_up);
	assert_int_equal(get(&t, 2)->state, RK_MS_ALIVE);
	assert_int_equal(get(&t, 3)->state, RK_MS_ALIVE);
	/* It hears from a peer: every clock restarts, nobody is suspect. */
	rk_ms_table_heard(&t, now);
	rk_ms_table_tick(&t, now + 100, now + 100, probe, 4);
	assert_true(t.caught_up);
	assert_int_equal(get(&t, 2)->state, RK_MS_ALIVE);
	rk_ms_table_fini(&t);
}

static void test_down_entry_is_forgotten_and_not_brought_back(void **s)
{
	(void)s;
	rk_ms_table_t t;
	three(&t);
	rk_ms_member_t m2 = *get(&t, 2);
	m2.state = RK_MS_DOWN;
	m2.naccusers = 2;
	memset(m2.accusers[0].id, 1, 16);
	memset(m2.accusers[1].id, 3, 16);
	rk_ms_table_merge(&t, &m2, 1, 1000, 0);
	uint8_t probe[4][16];
	uint64_t now = 1000 + FORGET + 1;
	rk_ms_table_heard(&t, now);
	rk_ms_table_tick(&t, now, now, probe, 4);
	assert_null(get(&t, 2));
	/* A slower peer still gossips the old entry: ignored. */
	rk_ms_table_merge(&t, &m2, 1, now, 0);
	assert_null(get(&t, 2));
	/* Its next life gets in. */
	rk_ms_member_t next = member(2);
	next.generation = 2;
	rk_ms_table_merge(&t, &next, 1, now, 0);
	assert_non_null(get(&t, 2));
	/* Operator removal: not for the living. */
	assert_int_equal(rk_ms_table_remove(&t, next.id, now),
	                 RK_FAILED_PRECONDITION);
	assert_int_equal(rk_ms_table_remove(&t, rk_ms_table_self(&t)->id, now),
	                 RK_FAILED_PRECONDITION);
	rk_ms_table_fini(&t);
}

static void test_leave_is_left_and_join_comes_back(void **s)
{
	(void)s;
	rk_ms_table_t t;
	three(&t);
	rk_ms_table_leave_self(&t, false, 1100, 0);
	assert_int_equal(rk_ms_table_self(&t)->state, RK_MS_LEFT);
	assert_int_equal(rk_ms_table_self(&t)->incarnation, 1);
	/* A leaving agent's heartbeat stops. */
	uint8_t probe[4][16];
	uint64_t hb = rk_ms_table_self(&t)->heartbeat;
	rk_ms_table_tick(&t, 1200, 0, probe, 4);
	assert_int_equal(rk_ms_table_self(&t)->heartbeat, hb);
	rk_ms_table_leave_self(&t, true, 1300, 0);
	assert_int_equal(rk_ms_table_self(&t)->state, RK_MS_ALIVE);
	assert_int_equal(rk_ms_table_self(&t)->incarnation, 2);
	rk_ms_table_fini(&t);
}

static void test_digest_follows_ring_not_heartbeats(void **s)
{
	(void)s;
	rk_ms_table_t a, b;
	three(&a);
	rk_ms_member_t self3 = member(3);
	assert_int_equal(rk_ms_table_init(&b, &self3, &timing, 1000), RK_OK);
	rk_ms_member_t others[2] = {member(2), member(1)};
	rk_ms_table_merge(&b, others, 2, 1000, 0);
	uint8_t da[16], db[16];
	rk_ms_table_digest(&a, da);
	rk_ms_table_digest(&b, db);
	assert_memory_equal(da, db, 16);
	get(&a, 2)->heartbeat = 1000;
	rk_ms_table_digest(&a, da);
	assert_memory_equal(da, db, 16);
	get(&a, 2)->weight = 3;
	rk_ms_table_digest(&a, da);
	assert_memory_not_equal(da, db, 16);
	rk_ms_table_fini(&a);
	rk_ms_table_fini(&b);
}

static void test_wire_refuses_malformed_members(void **s)
{
	(void)s;
	rk_ms_member_t m = member(7), out;
	rk_ms_pb_member_t h;
	rk_ms_member_to_pb(&m, &h, 0);
	const char *why;
	assert_int_equal(rk_ms_member_from_pb(&h.pb, &out, &why), RK_OK);
	assert_memory_equal(out.id, m.id, 16);
	assert_string_equal(out.rpc_url, m.rpc_url);

	h.pb.node_id.len = 3;
	assert_int_equal(rk_ms_member_from_pb(&h.pb, &out, &why),
	                 RK_INVALID_ARGUMENT);
	assert_non_null(why);
	rk_ms_member_to_pb(&m, &h, 0);
	h.pb.state = (Ringkv__V1__MemberState)9;
	assert_int_equal(rk_ms_member_from_pb(&h.pb, &out, &why),
	                 RK_INVALID_ARGUMENT);
	rk_ms_member_to_pb(&m, &h, 0);
	h.pb.generation = 0;
	assert_int_equal(rk_ms_member_from_pb(&h.pb, &out, &why),
	                 RK_INVALID_ARGUMENT);
	h.pb.generation = UINT64_MAX; /* raising past it would wrap */
	assert_int_equal(rk_ms_member_from_pb(&h.pb, &out, &why),
	                 RK_INVALID_ARGUMENT);
	rk_ms_member_to_pb(&m, &h, 0);
	h.pb.incarnation = UINT64_MAX;
	assert_int_equal(rk_ms_member_from_pb(&h.pb, &out, &why),
	                 RK_INVALID_ARGUMENT);
	rk_ms_member_to_pb(&m, &h, 0);
	char long_name[200];
	memset(long_name, 'x', sizeof(long_name) - 1);
	long_name[199] = '\0';
	h.pb.rack = long_name;
	assert_int_equal(rk_ms_member_from_pb(&h.pb, &out, &why),
	                 RK_INVALID_ARGUMENT);
	rk_ms_member_to_pb(&m, &h, 0);
	h.pb.n_accusers = RK_MS_MAX_ACCUSERS + 1;
	assert_int_equal(rk_ms_member_from_pb(&h.pb, &out, &why),
	                 RK_INVALID_ARGUMENT);
	rk_ms_member_to_pb(&m, &h, 0);
	h.ep[0].url = "http://evil";
	assert_int_equal(rk_ms_member_from_pb(&h.pb, &out, &why),
	                 RK_INVALID_ARGUMENT);
	/* An RPC endpoint may name the stream transport; events may not. */
	h.ep[0].url = "stream://127.0.0.1:7410";
	assert_int_equal(rk_ms_member_from_pb(&h.pb, &out, &why), RK_OK);
	assert_string_equal(out.rpc_url, "stream://127.0.0.1:7410");
	h.ep[0].kind = RINGKV__V1__ENDPOINT_KIND__ENDPOINT_EVENTS;
	assert_int_equal(rk_ms_member_from_pb(&h.pb, &out, &why),
	                 RK_INVALID_ARGUMENT);
}

static void test_identity_keeps_uuid_and_raises_generation(void **s)
{
	(void)s;
	char dir[] = "/tmp/rk-ms-identity-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char sub[128];
	snprintf(sub, sizeof(sub), "%s/a/b", dir);
	uint8_t id1[16], id2[16];
	uint64_t g1, g2;
	char *err = NULL;
	assert_int_equal(rk_ms_identity_next(sub, id1, &g1, &err), RK_OK);
	assert_int_equal(g1, 1);
	assert_int_equal(rk_ms_identity_next(sub, id2, &g2, &err), RK_OK);
	assert_int_equal(g2, 2);
	assert_memory_equal(id1, id2, 16);
	assert_int_equal(id1[6] >> 4, 4); /* a version-4 UUID */
	/* A damaged file is an error, never a new identity. */
	char path[160];
	snprintf(path, sizeof(path), "%s/identity", sub);
	FILE *f = fopen(path, "w");
	fputs("ringkv-membership identity v1\nuuid nonsense\ngeneration 3\n",
	      f);
	fclose(f);
	assert_int_equal(rk_ms_identity_next(sub, id2, &g2, &err),
	                 RK_DATA_LOSS);
	assert_non_null(err);
	free(err);
	unlink(path);
	rmdir(sub);
	snprintf(sub, sizeof(sub), "%s/a", dir);
	rmdir(sub);
	rmdir(dir);
}

static void test_agent_vouches_for_services_registered_through_it(void **s)
{
	(void)s;
	rk_ms_table_t t;
	three(&t);
	rk_ms_member_t svc = member(5);
	svc.role = 3; /* storage */
	svc.has_agent = true;
	memcpy(svc.agent_id, rk_ms_table_self(&t)->id, 16);
	rk_ms_member_t other = member(6);
	other.role = 3;
	other.has_agent = true;
	memset(other.agent_id, 2, 16); /* agent 2 vouches for it */
	rk_ms_member_t both[2] = {svc, other};
	rk_ms_table_merge(&t, both, 2, 1000, 0);
	assert_true(rk_ms_table_vouches(&t, get(&t, 5)));
	assert_false(rk_ms_table_vouches(&t, get(&t, 6)));
	assert_false(rk_ms_table_vouches(&t, rk_ms_table_self(&t)));
	/* Its heartbeat is ours to raise; we never suspect it ourselves. */
	uint8_t probe[4][16];
	for (uint64_t now = 1100; now < 3000; now += 100) {
		rk_ms_table_heard(&t, now);
		rk_ms_table_tick(&t, now, now, probe, 4);
	}
	assert_int_equal(get(&t, 5)->state, RK_MS_ALIVE);
	assert_int_equal(get(&t, 6)->state, RK_MS_SUSPECT);
	assert_int_equal(rk_ms_table_vouch(&t, svc.id, true, 3000, 0), RK_OK);
	assert_int_equal(get(&t, 5)->heartbeat, 1);
	assert_int_equal(rk_ms_table_vouch(&t, svc.id, false, 3100, 0), RK_OK);
	assert_int_equal(get(&t, 5)->heartbeat, 1);
	assert_int_equal(rk_ms_table_vouch(&t, other.id, true, 3100, 0),
	                 RK_FAILED_PRECONDITION);
	/* Others convict it while it does not serve; we refute for it once
	 * it serves again. */
	rk_ms_member_t down = *get(&t, 5);
	down.state = RK_MS_DOWN;
	down.naccusers = 2;
	memset(down.accusers[0].id, 2, 16);
	memset(down.accusers[1].id, 3, 16);
	rk_ms_table_merge(&t, &down, 1, 3200, 0);
	assert_int_equal(get(&t, 5)->state, RK_MS_DOWN);
	rk_ms_table_vouch(&t, svc.id, true, 3300, 0);
	assert_int_equal(get(&t, 5)->state, RK_MS_ALIVE);
	assert_int_equal(get(&t, 5)->incarnation, 1);
	/* It leaves through us, not through another agent. */
	assert_int_equal(rk_ms_table_leave_member(&t, svc.id, 3400, 0), RK_OK);
	assert_int_equal(get(&t, 5)->state, RK_MS_LEFT);
	assert_int_equal(rk_ms_table_leave_member(&t, other.id, 3400, 0),
	                 RK_FAILED_PRECONDITION);
	rk_ms_table_fini(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
	        test_merge_takes_higher_generation_and_incarnation_only),
	    cmocka_unit_test(test_down_from_a_single_accuser_is_kept_suspect),
	    cmocka_unit_test(
	        test_stalled_member_is_suspect_and_down_only_on_second_source),
	    cmocka_unit_test(test_suspicion_is_refuted_by_a_higher_incarnation),
	    cmocka_unit_test(
	        test_isolated_agent_convicts_nobody_until_caught_up),
	    cmocka_unit_test(test_down_entry_is_forgotten_and_not_brought_back),
	    cmocka_unit_test(test_leave_is_left_and_join_comes_back),
	    cmocka_unit_test(test_digest_follows_ring_not_heartbeats),
	    cmocka_unit_test(test_wire_refuses_malformed_members),
	    cmocka_unit_test(test_identity_keeps_uuid_and_raises_generation),
	    cmocka_unit_test(
	        test_agent_vouches_for_services_registered_through_it),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
