/*
 * lib/cluster against a stand-in membership agent: a real RPC server on
 * loopback answering Join, Leave, GetRing and Subscribe from a member
 * list the test controls, and a real pub0 socket for events. Proves that
 * a service registers with its role, endpoint and UUID and leaves on stop;
 * that the owner of every key is the one rk_ring_from_members gives for
 * the agent's members; that the ring follows the agent through events
 * alone (polling set to a minute), through polling alone (no events URL),
 * and on demand; that an unreachable agent leaves an empty ring that
 * lookups report without blocking; bad options; and lookups from many
 * threads while the ring is replaced (run under ASan/UBSan).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/cluster.h"
#include "core/clock.h"
#include "ring/members.h"
#include "ringkv/v1/membership.pb-c.h"
#include "rpc/method.h"
#include "rpc/server.h"

#define MAXM   16
#define ROLE   RINGKV__V1__SERVICE_ID__SERVICE_RATELIMIT
#define VNODES 64

/* One member of the stand-in's table. */
typedef struct fm {
	uint8_t id[16]; /* UUID */
	char url[64];   /* RPC endpoint */
	int role;       /* ServiceId */
	bool left;      /* state LEFT */
} fm_t;

typedef struct agent {
	rk_rpc_server_t *srv; /* the RPC server */
	char url[64];         /* its URL */
	nng_socket pub;       /* events */
	char events_url[64];  /* where pub listens; "" none */
	pthread_mutex_t mu;   /* guards below */
	fm_t m[MAXM];         /* the table */
	int n;                /* entries */
	int joins, leaves;    /* calls seen */
	int ring_calls;       /* GetRing calls seen */
	uint8_t left_id[16];  /* the last Leave's node id */
} agent_t;

static rk_rpc_method_t m_join, m_leave, m_ring, m_sub;

static void add_member(agent_t *a, uint8_t seed, const char *url, int role)
{
	pthread_mutex_lock(&a->mu);
	fm_t *m = &a->m[a->n++];
	memset(m, 0, sizeof(*m));
	memset(m->id, seed, sizeof(m->id));
	m->id[0] = 0xA0;
	snprintf(m->url, sizeof(m->url), "%s", url);
	m->role = role;
	pthread_mutex_unlock(&a->mu);
}

static void on_join(rk_rpc_call_t *call, const ProtobufCMessage *msg, void *arg)
{
	agent_t *a = arg;
	const Ringkv__V1__JoinRequest *r = (const void *)msg;
	pthread_mutex_lock(&a->mu);
	a->joins++;
	for (size_t i = 0; i < r->n_members && a->n < MAXM; i++) {
		const Ringkv__V1__Member *in = r->members[i];
		fm_t *m = &a->m[a->n++];
		memset(m, 0, sizeof(*m));
		if (in->node_id.len == 16)
			memcpy(m->id, in->node_id.data, 16);
		if (in->n_endpoints > 0 && in->endpoints[0]->url != NULL)
			snprintf(m->url, sizeof(m->url), "%s",
			         in->endpoints[0]->url);
		m->role = in->role;
	}
	pthread_mutex_unlock(&a->mu);
	Ringkv__V1__JoinResponse resp = RINGKV__V1__JOIN_RESPONSE__INIT;
	rk_rpc_reply(call, &resp.base);
}

static void on_leave(rk_rpc_call_t *call, const ProtobufCMessage *msg,
                     void *arg)
{
	agent_t *a = arg;
	const Ringkv__V1__LeaveRequest *r = (const void *)msg;
	pthread_mutex_lock(&a->mu);
	a->leaves++;
	if (r->node_id.len == 16)
		memcpy(a->left_id, r->node_id.data, 16);
	pthread_mutex_unlock(&a->mu);
	Ringkv__V1__LeaveResponse resp = RINGKV__V1__LEAVE_RESPONSE__INIT;
	rk_rpc_reply(call, &resp.base);
}

/* Fills MS/EP/RM/PTR from the table (lock held); returns how many. */
static size_t fill(agent_t *a, Ringkv__V1__Member *ms, Ringkv__V1__Endpoint *ep,
                   Ringkv__V1__Endpoint **epp, Ringkv__V1__RingMember *rm,
                   Ringkv__V1__RingMember **rmp)
{
	size_t n = 0;
	for (int i = 0; i < a->n; i++) {
		fm_t *f = &a->m[i];
		if (f->role != ROLE || f->left)
			continue;
		ringkv__v1__member__init(&ms[n]);
		ms[n].has_node_id = true;
		ms[n].node_id.data = f->id;
		ms[n].node_id.len = 16;
		ms[n].has_role = true;
		ms[n].role = (Ringkv__V1__ServiceId)f->role;
		ms[n].has_weight = true;
		ms[n].weight = 1;
		ms[n].has_state = true;
		ms[n].state = RINGKV__V1__MEMBER_STATE__MEMBER_ALIVE;
		ringkv__v1__endpoint__init(&ep[n]);
		ep[n].has_kind = true;
		ep[n].kind = RINGKV__V1__ENDPOINT_KIND__ENDPOINT_RPC;
		ep[n].url = f->url;
		epp[n] = &ep[n];
		ms[n].n_endpoints = 1;
		ms[n].endpoints = &epp[n];
		ringkv__v1__ring_member__init(&rm[n]);
		rm[n].member = &ms[n];
		rmp[n] = &rm[n];
		n++;
	}
	return n;
}

static void on_ring(rk_rpc_call_t *call, const ProtobufCMessage *msg, void *arg)
{
	(void)msg;
	agent_t *a = arg;
	Ringkv__V1__Member ms[MAXM];
	Ringkv__V1__Endpoint ep[MAXM], *epp[MAXM];
	Ringkv__V1__RingMember rm[MAXM], *rmp[MAXM];
	pthread_mutex_lock(&a->mu);
	a->ring_calls++;
	size_t n = fill(a, ms, ep, epp, rm, rmp);
	Ringkv__V1__RingView v = RINGKV__V1__RING_VIEW__INIT;
	v.has_vnodes_per_weight = true;
	v.vnodes_per_weight = VNODES;
	v.n_members = n;
	v.members = rmp;
	Ringkv__V1__GetRingResponse resp = RINGKV__V1__GET_RING_RESPONSE__INIT;
	resp.ring = &v;
	rk_rpc_reply(call, &resp.base);
	pthread_mutex_unlock(&a->mu);
}

static void on_sub(rk_rpc_call_t *call, const ProtobufCMessage *msg, void *arg)
{
	(void)msg;
	agent_t *a = arg;
	Ringkv__V1__SubscribeResponse resp =
	    RINGKV__V1__SUBSCRIBE_RESPONSE__INIT;
	resp.events_url = a->events_url[0] ? a->events_url : NULL;
	rk_rpc_reply(call, &resp.base);
}

static agent_t *agent_new(bool events)
{
	const ProtobufCServiceDescriptor *sd =
	    &ringkv__v1__membership__descriptor;
	const ProtobufCEnumDescriptor *ids =
	    &ringkv__v1__membership_method__descriptor;
	assert_int_equal(rk_rpc_method_resolve(sd, ids, "Join", &m_join),
	                 RK_OK);
	assert_int_equal(rk_rpc_method_resolve(sd, ids, "Leave", &m_leave),
	                 RK_OK);
	assert_int_equal(rk_rpc_method_resolve(sd, ids, "GetRing", &m_ring),
	                 RK_OK);
	assert_int_equal(rk_rpc_method_resolve(sd, ids, "Subscribe", &m_sub),
	                 RK_OK);
	agent_t *a = calloc(1, sizeof(*a));
	pthread_mutex_init(&a->mu, NULL);
	rk_rpc_server_opts_t o = {.listen = "tcp://127.0.0.1:0",
	                          .name = "fake-agent"};
	assert_int_equal(rk_rpc_server_new(&o, &a->srv), RK_OK);
	rk_rpc_server_handle(a->srv, &m_join, on_join, RK_RPC_INLINE, a);
	rk_rpc_server_handle(a->srv, &m_leave, on_leave, RK_RPC_INLINE, a);
	rk_rpc_server_handle(a->srv, &m_ring, on_ring, RK_RPC_INLINE, a);
	rk_rpc_server_handle(a->srv, &m_sub, on_sub, RK_RPC_INLINE, a);
	assert_int_equal(rk_rpc_server_start(a->srv, NULL), RK_OK);
	snprintf(a->url, sizeof(a->url), "tcp://127.0.0.1:%d",
	         rk_rpc_server_port(a->srv));
	if (events) {
		assert_int_equal(nng_pub0_open(&a->pub), 0);
		nng_listener l;
		assert_int_equal(nng_listen(a->pub, "tcp://127.0.0.1:0", &l, 0),
		                 0);
		int port = 0;
		nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port);
		snprintf(a->events_url, sizeof(a->events_url),
		         "tcp://127.0.0.1:%d", port);
	}
	return a;
}

static void agent_free(agent_t *a)
{
	rk_rpc_server_free(a->srv);
	if (a->events_url[0])
		nng_close(a->pub);
	pthread_mutex_destroy(&a->mu);
	free(a);
}

static void publish(agent_t *a)
{
	nng_msg *m = NULL;
	assert_int_equal(nng_msg_alloc(&m, 4), 0);
	memset(nng_msg_body(m), 1, 4);
	if (nng_sendmsg(a->pub, m, 0) != 0)
		nng_msg_free(m);
}

static void pause_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static const uint8_t self_id[16] = {0x5e, 0x1f, 1, 2,  3,  4,  5,  6,
                                    7,    8,    9, 10, 11, 12, 13, 14};

static rk_cluster_t *start(agent_t *a, uint32_t poll_ms)
{
	rk_cluster_opts_t o = {.agent_url = a->url,
	                       .role = ROLE,
	                       .self_url = "tcp://127.0.0.1:9999",
	                       .self_id = self_id,
	                       .name = "test",
	                       .poll_ms = poll_ms,
	                       .timeout_ms = 1000};
	rk_cluster_t *c = NULL;
	assert_int_equal(rk_cluster_start(&o, &c), RK_OK);
	return c;
}

/* --- cases ----------------------------------------------------------- */

static void registers_with_role_endpoint_and_id_and_leaves_on_stop(void **state)
{
	(void)state;
	agent_t *a = agent_new(false);
	rk_cluster_t *c = start(a, 60000);
	assert_true(rk_cluster_registered(c));
	assert_memory_equal(rk_cluster_self_id(c), self_id, 16);
	pthread_mutex_lock(&a->mu);
	assert_int_equal(a->joins, 1);
	assert_int_equal(a->n, 1);
	assert_memory_equal(a->m[0].id, self_id, 16);
	assert_string_equal(a->m[0].url, "tcp://127.0.0.1:9999");
	assert_int_equal(a->m[0].role, ROLE);
	pthread_mutex_unlock(&a->mu);
	/* The ring holds us alone: every key is ours. */
	assert_int_equal(rk_cluster_ring_size(c), 1);
	rk_cluster_owner_t o;
	assert_int_equal(rk_cluster_owner(c, "k", 1, &o), RK_OK);
	assert_true(o.self);
	assert_string_equal(o.url, "tcp://127.0.0.1:9999");
	rk_cluster_stop(c);
	assert_int_equal(a->leaves, 1);
	assert_memory_equal(a->left_id, self_id, 16);
	agent_free(a);
}

static void owner_is_the_one_the_ring_of_the_members_names(void **state)
{
	(void)state;
	agent_t *a = agent_new(false);
	add_member(a, 1, "tcp://10.0.0.1:1", ROLE);
	add_member(a, 2, "tcp://10.0.0.2:1", ROLE);
	add_member(a, 3, "tcp://10.0.0.3:1", ROLE);
	add_member(a, 4, "tcp://10.0.0.4:1",
	           RINGKV__V1__SERVICE_ID__SERVICE_STORAGE);
	rk_cluster_t *c = start(a, 60000);
	assert_int_equal(rk_cluster_ring_size(c), 4); /* 3 + us */
	/* The reference: the same members through rk_ring_from_members. */
	Ringkv__V1__Member ms[MAXM];
	Ringkv__V1__Endpoint ep[MAXM], *epp[MAXM];
	Ringkv__V1__RingMember rm[MAXM], *rmp[MAXM];
	Ringkv__V1__Member *mp[MAXM];
	pthread_mutex_lock(&a->mu);
	size_t n = fill(a, ms, ep, epp, rm, rmp);
	for (size_t i = 0; i < n; i++)
		mp[i] = &ms[i];
	rk_ring_t *ref = NULL;
	assert_int_equal(rk_ring_from_members(mp, n, ROLE, VNODES, &ref),
	                 RK_OK);
	int per[MAXM] = {0}, mine = 0;
	for (int k = 0; k < 4000; k++) {
		char key[32];
		int len = snprintf(key, sizeof(key), "key-%d", k);
		rk_cluster_owner_t o;
		assert_int_equal(rk_cluster_owner(c, key, (size_t)len, &o),
		                 RK_OK);
		int i = rk_ring_owner(ref, rk_ring_key_token(key, (size_t)len));
		const rk_ring_node_t *node = rk_ring_node(ref, (size_t)i);
		assert_memory_equal(o.id, node->id, 16);
		assert_int_equal(o.self, memcmp(node->id, self_id, 16) == 0);
		per[i]++;
		mine += o.self;
		bool url_ok = false;
		for (size_t j = 0; j < n; j++)
			if (memcmp(ms[j].node_id.data, o.id, 16) == 0)
				url_ok = strcmp(ep[j].url, o.url) == 0;
		assert_true(url_ok);
	}
	pthread_mutex_unlock(&a->mu);
	for (size_t i = 0; i < n; i++)
		assert_true(per[i] > 400); /* each of 4 owns a fair part */
	assert_true(mine > 400);
	rk_ring_free(ref);
	rk_cluster_stop(c);
	agent_free(a);
}

/* Waits up to MS for the ring to hold N members. */
static bool wait_size(rk_cluster_t *c, size_t n, long ms)
{
	uint64_t until = rk_clock_mono_ms() + (uint64_t)ms;
	while (rk_clock_mono_ms() < until) {
		if (rk_cluster_ring_size(c) == n)
			return true;
		pause_ms(10);
	}
	return rk_cluster_ring_size(c) == n;
}

static void ring_follows_agent_events_without_polling(void **state)
{
	(void)state;
	agent_t *a = agent_new(true);
	rk_cluster_t *c = start(a, 60000); /* polling: once a minute */
	assert_int_equal(rk_cluster_ring_size(c), 1);
	add_member(a, 7, "tcp://10.0.0.7:1", ROLE);
	/* The sub socket dials in the background: publish until heard. */
	uint64_t until = rk_clock_mono_ms() + 5000;
	while (rk_cluster_ring_size(c) != 2 && rk_clock_mono_ms() < until) {
		publish(a);
		pause_ms(20);
	}
	assert_int_equal(rk_cluster_ring_size(c), 2);
	rk_cluster_stop(c);
	agent_free(a);
}

static void ring_follows_agent_by_polling_without_events(void **state)
{
	(void)state;
	agent_t *a = agent_new(false);
	rk_cluster_t *c = start(a, 100);
	assert_int_equal(rk_cluster_ring_size(c), 1);
	pthread_mutex_lock(&a->mu);
	int calls0 = a->ring_calls;
	pthread_mutex_unlock(&a->mu);
	add_member(a, 8, "tcp://10.0.0.8:1", ROLE);
	assert_true(wait_size(c, 2, 5000));
	pthread_mutex_lock(&a->mu);
	a->m[1].left = true; /* it leaves: off the ring */
	pthread_mutex_unlock(&a->mu);
	assert_true(wait_size(c, 1, 5000));
	pthread_mutex_lock(&a->mu);
	assert_true(a->ring_calls > calls0 + 1);
	pthread_mutex_unlock(&a->mu);
	rk_cluster_stop(c);
	agent_free(a);
}

static void refresh_fetches_the_ring_now(void **state)
{
	(void)state;
	agent_t *a = agent_new(false);
	rk_cluster_t *c = start(a, 60000);
	uint64_t b0 = rk_cluster_ring_builds(c);
	add_member(a, 9, "tcp://10.0.0.9:1", ROLE);
	assert_int_equal(rk_cluster_refresh(c, 5000), RK_OK);
	assert_int_equal(rk_cluster_ring_size(c), 2);
	assert_true(rk_cluster_ring_builds(c) > b0);
	rk_cluster_stop(c);
	agent_free(a);
}

static void unreachable_agent_gives_an_empty_ring_without_blocking(void **state)
{
	(void)state;
	/* A port nobody listens on: bind one, note it, close it. */
	agent_t *a = agent_new(false);
	char url[64];
	snprintf(url, sizeof(url), "%s", a->url);
	agent_free(a);
	rk_cluster_opts_t o = {.agent_url = url,
	                       .role = ROLE,
	                       .self_url = "tcp://127.0.0.1:9999",
	                       .poll_ms = 100,
	                       .timeout_ms = 100};
	rk_cluster_t *c = NULL;
	assert_int_equal(rk_cluster_start(&o, &c), RK_OK);
	assert_false(rk_cluster_registered(c));
	uint64_t t0 = rk_clock_mono_ns();
	rk_cluster_owner_t out;
	for (int i = 0; i < 1000; i++)
		assert_int_equal(rk_cluster_owner(c, "k", 1, &out),
		                 RK_NOT_FOUND);
	uint64_t took = rk_clock_mono_ns() - t0;
	printf("# 1000 lookups on an empty ring: %.1f us\n", took / 1e3);
	assert_true(took < 50000000ull); /* far below one agent call */
	assert_int_equal(rk_cluster_refresh(c, 300), RK_DEADLINE_EXCEEDED);
	rk_cluster_stop(c);
}

static void bad_options_are_refused(void **state)
{
	(void)state;
	rk_cluster_t *c = NULL;
	rk_cluster_opts_t o = {.role = ROLE, .self_url = "tcp://x:1"};
	assert_int_equal(rk_cluster_start(&o, &c), RK_INVALID_ARGUMENT);
	o.agent_url = "tcp://127.0.0.1:1";
	o.self_url = NULL; /* a member needs an endpoint */
	assert_int_equal(rk_cluster_start(&o, &c), RK_INVALID_ARGUMENT);
	o.self_url = "tcp://x:1";
	o.weight = RK_RING_MAX_WEIGHT + 1;
	assert_int_equal(rk_cluster_start(&o, &c), RK_INVALID_ARGUMENT);
	rk_cluster_opts_t w = {.agent_url = "tcp://127.0.0.1:1"};
	assert_int_equal(rk_cluster_start(&w, &c), RK_INVALID_ARGUMENT);
	assert_int_equal(rk_cluster_start(NULL, &c), RK_INVALID_ARGUMENT);
	assert_null(c);
	rk_cluster_stop(NULL);
}

typedef struct reader {
	rk_cluster_t *c;   /* the view */
	atomic_bool *stop; /* set when done */
	long lookups, bad; /* done, and wrong */
} reader_t;

static void *read_loop(void *arg)
{
	reader_t *r = arg;
	unsigned k = 0;
	while (!atomic_load(r->stop)) {
		char key[16];
		int len = snprintf(key, sizeof(key), "%u", k++);
		rk_cluster_owner_t o;
		if (rk_cluster_owner(r->c, key, (size_t)len, &o) != RK_OK ||
		    strncmp(o.url, "tcp://", 6) != 0 || o.id[0] == 0)
			r->bad++;
		r->lookups++;
	}
	return NULL;
}

static void lookups_stay_consistent_while_the_ring_changes(void **state)
{
	(void)state;
	agent_t *a = agent_new(false);
	rk_cluster_t *c = start(a, 60000);
	atomic_bool stop = false;
	reader_t r[4];
	pthread_t t[4];
	for (int i = 0; i < 4; i++) {
		r[i] = (reader_t){.c = c, .stop = &stop};
		pthread_create(&t[i], NULL, read_loop, &r[i]);
	}
	for (int i = 0; i < 10; i++) {
		char url[32];
		snprintf(url, sizeof(url), "tcp://10.1.0.%d:1", i);
		add_member(a, (uint8_t)(20 + i), url, ROLE);
		assert_int_equal(rk_cluster_refresh(c, 5000), RK_OK);
	}
	atomic_store(&stop, true);
	long total = 0;
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(r[i].bad, 0);
		total += r[i].lookups;
	}
	printf("# %ld lookups during 10 ring changes\n", total);
	assert_true(total > 0);
	assert_int_equal(rk_cluster_ring_size(c), 11);
	rk_cluster_stop(c);
	agent_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
	        registers_with_role_endpoint_and_id_and_leaves_on_stop),
	    cmocka_unit_test(owner_is_the_one_the_ring_of_the_members_names),
	    cmocka_unit_test(ring_follows_agent_events_without_polling),
	    cmocka_unit_test(ring_follows_agent_by_polling_without_events),
	    cmocka_unit_test(refresh_fetches_the_ring_now),
	    cmocka_unit_test(
	        unreachable_agent_gives_an_empty_ring_without_blocking),
	    cmocka_unit_test(bad_options_are_refused),
	    cmocka_unit_test(lookups_stay_consistent_while_the_ring_changes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
