/*
 * The life of a member among real ringkv-membership processes on
 * loopback: graceful leave and rejoin, a restart on a new port (the same
 * node, a higher generation), forgetting down entries (by time, and by
 * operator removal), and bad input: unauthenticated, malformed and lying
 * gossip is refused or defused, logged, and the tables stay as they were.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/arena.h"
#include "crypto/seal.h"
#include "ringkv/v1/common.pb-c.h"
#include "rpc/frame.h"
#include "rpc/method.h"
#include "rpc/server.h"
#include "service/health.h"
#include "test_membership_cluster.h"

#define WAIT_MS 5000

typedef struct fixture {
	mc_cluster_t c; /* the agents */
	bool passed;    /* set last by each case */
} fixture_t;

static int setup(void **state)
{
	fixture_t *f = calloc(1, sizeof(*f));
	*state = f;
	return f == NULL ? -1 : 0;
}

static int teardown(void **state)
{
	fixture_t *f = *state;
	mc_fini(&f->c, !f->passed);
	free(f);
	return 0;
}

static rk_rpc_method_t method(const char *name)
{
	rk_rpc_method_t m;
	assert_int_equal(
	    rk_rpc_method_resolve(&ringkv__v1__membership__descriptor,
	                          &ringkv__v1__membership_method__descriptor,
	                          name, &m),
	    RK_OK);
	return m;
}

static void start_converged(mc_cluster_t *c, int n, uint64_t forget_ms)
{
	assert_int_equal(mc_init(c, n, forget_ms), 0);
	assert_int_equal(mc_start_all(c), 0);
	mc_converge_arg_t ca = {0};
	assert_true(mc_wait_all(c, -1, mc_pred_converged, &ca, WAIT_MS) >= 0);
}

static uint64_t generation_of(mc_cluster_t *c, int from, const uint8_t *id)
{
	rk_rpc_result_t res;
	const Ringkv__V1__MemberTable *t = mc_table(c, from, &res);
	assert_non_null(t);
	const Ringkv__V1__Member *m = mc_find(t, id);
	assert_non_null(m);
	uint64_t g = m->generation;
	rk_rpc_result_clear(&res);
	return g;
}

static void
test_left_agent_is_left_everywhere_and_rejoins_on_restart(void **state)
{
	fixture_t *f = *state;
	mc_cluster_t *c = &f->c;
	start_converged(c, 5, 60000);
	uint8_t id[16];
	memcpy(id, c->a[3].id, 16);
	uint64_t gen = generation_of(c, 0, id);

	rk_rpc_method_t leave = method("Leave");
	Ringkv__V1__LeaveRequest lr = RINGKV__V1__LEAVE_REQUEST__INIT;
	lr.reason = "test";
	rk_rpc_result_t res;
	assert_int_equal(
	    rk_rpc_call(c->a[3].client, &leave, &lr.base, 2000, &res), RK_OK);
	const Ringkv__V1__LeaveResponse *l = (const void *)res.response;
	assert_int_equal(l->member->state,
	                 RINGKV__V1__MEMBER_STATE__MEMBER_LEFT);
	rk_rpc_result_clear(&res);
	mc_state_arg_t left = {.id = id,
	                       .state = RINGKV__V1__MEMBER_STATE__MEMBER_LEFT};
	long took = mc_wait_all(c, -1, mc_pred_state, &left, WAIT_MS);
	printf("leave seen by all in %ld ms\n", took);
	assert_true(took >= 0);

	/* A left member holds no part of the ring. */
	rk_rpc_method_t get_ring = method("GetRing");
	Ringkv__V1__GetRingRequest rr = RINGKV__V1__GET_RING_REQUEST__INIT;
	rr.has_role = true;
	rr.role = RINGKV__V1__SERVICE_ID__SERVICE_MEMBERSHIP;
	assert_int_equal(
	    rk_rpc_call(c->a[0].client, &get_ring, &rr.base, 2000, &res),
	    RK_OK);
	const Ringkv__V1__RingView *v =
	    ((const Ringkv__V1__GetRingResponse *)res.response)->ring;
	assert_int_equal(v->n_members, 4);
	uint32_t ppm = 0;
	for (size_t i = 0; i < v->n_members; i++) {
		assert_memory_not_equal(v->members[i]->member->node_id.data, id,
		                        16);
		ppm += v->members[i]->share_ppm;
	}
	assert_true(ppm > 999990 && ppm < 1000010);
	rk_rpc_result_clear(&res);

	/* Stopped and started again: the same node, alive, a generation on. */
	assert_int_equal(mc_stop(c, 3), 0);
	assert_int_equal(mc_start(c, 3, 0), 0);
	assert_memory_equal(c->a[3].id, id, 16);
	mc_state_arg_t back = {.id = id,
	                       .state = RINGKV__V1__MEMBER_STATE__MEMBER_ALIVE,
	                       .min_generation = gen + 1};
	took = mc_wait_all(c, -1, mc_pred_state, &back, WAIT_MS);
	printf("rejoin seen by all in %ld ms\n", took);
	assert_true(took >= 0);
	assert_false(c->bad_down);
	f->passed = true;
}

/* Holds PORT on 127.0.0.1 so a restarted agent cannot take it again. */
static int hold_port(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(fd, 1) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

typedef struct at_url {
	mc_state_arg_t st; /* the state wanted */
	const char *url;   /* and this RPC endpoint */
} at_url_t;

static bool pred_at_url(mc_cluster_t *c, int agent,
                        const Ringkv__V1__MemberTable *t, void *arg)
{
	at_url_t *u = arg;
	if (!mc_pred_state(c, agent, t, &u->st))
		return false;
	const Ringkv__V1__Member *m = mc_find(t, u->st.id);
	for (size_t k = 0; k < m->n_endpoints; k++)
		if (m->endpoints[k]->kind ==
		    RINGKV__V1__ENDPOINT_KIND__ENDPOINT_RPC)
			return strcmp(m->endpoints[k]->url, u->url) == 0;
	return false;
}

static void
test_killed_agent_back_on_a_new_port_is_same_node_newer_generation(void **state)
{
	fixture_t *f = *state;
	mc_cluster_t *c = &f->c;
	start_converged(c, 5, 60000);
	uint8_t id[16];
	memcpy(id, c->a[1].id, 16);
	uint64_t gen = generation_of(c, 0, id);
	int old_port = c->a[1].port;
	mc_kill(c, 1);
	mc_state_arg_t down = {.id = id,
	                       .state = RINGKV__V1__MEMBER_STATE__MEMBER_DOWN};
	assert_true(mc_wait_all(c, 1, mc_pred_state, &down, WAIT_MS) >= 0);

	int held = hold_port(old_port);
	assert_int_equal(mc_start(c, 1, 0), 0);
	if (held >= 0)
		close(held);
	assert_int_not_equal(c->a[1].port, old_port);
	assert_memory_equal(c->a[1].id, id, 16);
	at_url_t want = {.st = {.id = id,
	                        .state = RINGKV__V1__MEMBER_STATE__MEMBER_ALIVE,
	                        .min_generation = gen + 1},
	                 .url = c->a[1].url};
	long took = mc_wait_all(c, -1, pred_at_url, &want, WAIT_MS);
	printf("restarted agent on port %d (was %d) alive everywhere, "
	       "generation %llu, in %ld ms\n",
	       c->a[1].port, old_port, (unsigned long long)gen + 1, took);
	assert_true(took >= 0);
	assert_false(c->bad_down);
	f->passed = true;
}

static void
test_down_member_is_forgotten_after_forget_time_or_removal(void **state)
{
	fixture_t *f = *state;
	mc_cluster_t *c = &f->c;
	start_converged(c, 4, 1500);
	uint8_t id[16];
	memcpy(id, c->a[3].id, 16);

	/* Removal is refused for a living member. */
	rk_rpc_method_t remove = method("Remove");
	Ringkv__V1__RemoveRequest rq = RINGKV__V1__REMOVE_REQUEST__INIT;
	rq.has_node_id = true;
	rq.node_id.data = id;
	rq.node_id.len = 16;
	rk_rpc_result_t res;
	assert_int_equal(
	    rk_rpc_call(c->a[0].client, &remove, &rq.base, 2000, &res),
	    RK_FAILED_PRECONDITION);
	rk_rpc_result_clear(&res);

	mc_kill(c, 3);
	mc_state_arg_t down = {.id = id,
	                       .state = RINGKV__V1__MEMBER_STATE__MEMBER_DOWN};
	assert_true(mc_wait_all(c, 3, mc_pred_state, &down, WAIT_MS) >= 0);
	/* The operator removes it at agent 0 now... */
	assert_int_equal(
	    rk_rpc_call(c->a[0].client, &remove, &rq.base, 2000, &res), RK_OK);
	rk_rpc_result_clear(&res);
	const Ringkv__V1__MemberTable *t = mc_table(c, 0, &res);
	assert_non_null(t);
	assert_null(mc_find(t, id));
	rk_rpc_result_clear(&res);
	/* ...and the others forget it after forget_after, for good. */
	mc_state_arg_t gone = {.id = id, .state = 0};
	long took = mc_wait_all(c, 3, mc_pred_state, &gone, 1500 + WAIT_MS);
	printf("down member forgotten by all in %ld ms (forget_after 1500 "
	       "ms)\n",
	       took);
	assert_true(took >= 0);
	f->passed = true;
}

/* Sends one sealed request frame with BODY as the Gossip body to agent I
 * over a raw req socket; returns the status code answered. */
static rk_status_t raw_gossip(mc_cluster_t *c, int i, const uint8_t *body,
                              size_t len)
{
	rk_rpc_method_t g = method("Gossip");
	Ringkv__V1__RequestEnvelope env = RINGKV__V1__REQUEST_ENVELOPE__INIT;
	env.has_service = true;
	env.service = (Ringkv__V1__ServiceId)g.service_id;
	env.has_method = true;
	env.method = g.method_id;
	env.has_body = true;
	env.body.data = (uint8_t *)body;
	env.body.len = len;
	env.caller = "evil";
	nng_msg *msg;
	uint8_t nonce[RK_SEAL_NONCE_BYTES];
	assert_int_equal(rk_frame_pack(c->sealer, RK_FRAME_REQUEST, NULL,
	                               &env.base, &msg, nonce),
	                 RK_OK);
	nng_socket s;
	assert_int_equal(nng_req0_open(&s), 0);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 3000);
	assert_int_equal(nng_dial(s, c->a[i].url, NULL, 0), 0);
	assert_int_equal(nng_sendmsg(s, msg, 0), 0);
	nng_msg *reply;
	assert_int_equal(nng_recvmsg(s, &reply, 0), 0);
	rk_arena_t arena;
	rk_arena_init(&arena, 1 << 20);
	rk_frame_t fr;
	const char *why;
	assert_int_equal(rk_frame_open(c->sealer, false, RK_FRAME_RESPONSE,
	                               nonce, nng_msg_body(reply),
	                               nng_msg_len(reply), false, &arena, &fr,
	                               &why),
	                 RK_OK);
	Ringkv__V1__ResponseEnvelope *r =
	    ringkv__v1__response_envelope__unpack(NULL, fr.plain_len, fr.plain);
	assert_non_null(r);
	assert_non_null(r->status);
	rk_status_t code = (rk_status_t)r->status->code;
	ringkv__v1__response_envelope__free_unpacked(r, NULL);
	rk_arena_fini(&arena);
	nng_msg_free(reply);
	nng_close(s);
	return code;
}

static rk_status_t gossip_with(rk_rpc_client_t *client,
                               Ringkv__V1__GossipRequest *req)
{
	rk_rpc_method_t g = method("Gossip");
	rk_rpc_result_t res;
	rk_status_t st = rk_rpc_call(client, &g, &req->base, 2000, &res);
	rk_rpc_result_clear(&res);
	return st;
}

static void test_bad_gossip_is_refused_logged_and_table_kept(void **state)
{
	fixture_t *f = *state;
	mc_cluster_t *c = &f->c;
	start_converged(c, 3, 60000);
	rk_rpc_result_t res;
	const Ringkv__V1__MemberTable *t = mc_table(c, 0, &res);
	assert_non_null(t);
	uint64_t version = t->version;
	uint8_t digest[16];
	memcpy(digest, t->digest.data, 16);
	size_t n = t->n_members;
	rk_rpc_result_clear(&res);

	/* A member entry that claims agent 1 is down, on one accuser. */
	uint8_t fake[16];
	memset(fake, 0xee, 16);
	Ringkv__V1__Accusation acc = RINGKV__V1__ACCUSATION__INIT;
	acc.has_accuser_node_id = true;
	acc.accuser_node_id.data = fake;
	acc.accuser_node_id.len = 16;
	acc.has_source = true;
	acc.source =
	    RINGKV__V1__ACCUSATION_SOURCE__ACCUSATION_HEARTBEAT_STALLED;
	acc.has_incarnation = true;
	Ringkv__V1__Accusation *accp = &acc;
	Ringkv__V1__Member m = RINGKV__V1__MEMBER__INIT;
	m.has_node_id = true;
	m.node_id.data = c->a[1].id;
	m.node_id.len = 16;
	m.has_generation = true;
	m.generation = 1;
	m.has_role = true;
	m.role = RINGKV__V1__SERVICE_ID__SERVICE_MEMBERSHIP;
	m.has_state = true;
	m.state = RINGKV__V1__MEMBER_STATE__MEMBER_DOWN;
	m.has_incarnation = true;
	m.incarnation = 1;
	acc.incarnation = 1;
	m.n_accusers = 1;
	m.accusers = &accp;
	Ringkv__V1__Member *mp = &m;
	Ringkv__V1__GossipRequest req = RINGKV__V1__GOSSIP_REQUEST__INIT;
	req.has_from_node_id = true;
	req.from_node_id.data = fake;
	req.from_node_id.len = 16;
	req.n_members = 1;
	req.members = &mp;

	/* Unsealed, and sealed with another key: refused before any
	 * handler runs. */
	rk_rpc_client_opts_t o = {.url = c->a[0].url, .caller = "evil"};
	rk_rpc_client_t *plain;
	assert_int_equal(rk_rpc_client_new(&o, &plain), RK_OK);
	assert_int_equal(gossip_with(plain, &req), RK_UNAUTHENTICATED);
	rk_rpc_client_free(plain);
	uint8_t other_key[RK_SEAL_KEY_BYTES];
	memset(other_key, 7, sizeof(other_key));
	rk_sealer_t *other;
	assert_int_equal(rk_sealer_new(other_key, 0, &other), RK_OK);
	o.sealer = other;
	rk_rpc_client_t *wrong;
	assert_int_equal(rk_rpc_client_new(&o, &wrong), RK_OK);
	assert_int_equal(gossip_with(wrong, &req), RK_UNAUTHENTICATED);
	rk_rpc_client_free(wrong);
	rk_sealer_free(other);

	/* Sealed, but the body is not a GossipRequest. */
	const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x99};
	assert_int_equal(raw_gossip(c, 0, junk, sizeof(junk)),
	                 RK_INVALID_ARGUMENT);

	/* Sealed and well-formed protobuf, but the member makes no sense. */
	m.node_id.len = 3;
	assert_int_equal(gossip_with(c->a[0].client, &req),
	                 RK_INVALID_ARGUMENT);
	m.node_id.len = 16;
	m.state = (Ringkv__V1__MemberState)77;
	assert_int_equal(gossip_with(c->a[0].client, &req),
	                 RK_INVALID_ARGUMENT);
	m.state = RINGKV__V1__MEMBER_STATE__MEMBER_DOWN;

	t = mc_table(c, 0, &res);
	assert_non_null(t);
	assert_int_equal(t->version, version);
	assert_memory_equal(t->digest.data, digest, 16);
	assert_int_equal(t->n_members, n);
	rk_rpc_result_clear(&res);
	assert_true(rk_proc_line_of(c->a[0].log, "gossip refused") > 0);
	assert_true(rk_proc_line_of(c->a[0].log, "UNAUTHENTICATED") > 0);

	/* Well-formed and lying: agent 1 "down" on one accuser's word is
	 * taken as a suspicion at most, and agent 1 refutes it. */
	assert_int_equal(gossip_with(c->a[0].client, &req), RK_OK);
	t = mc_table(c, 0, &res);
	assert_non_null(t);
	assert_int_not_equal(mc_find(t, c->a[1].id)->state,
	                     RINGKV__V1__MEMBER_STATE__MEMBER_DOWN);
	rk_rpc_result_clear(&res);
	mc_state_arg_t alive = {.id = c->a[1].id,
	                        .state = RINGKV__V1__MEMBER_STATE__MEMBER_ALIVE,
	                        .min_incarnation = 2};
	assert_true(mc_wait_all(c, -1, mc_pred_state, &alive, WAIT_MS) >= 0);
	assert_false(c->bad_down);
	f->passed = true;
}

/* A stand-in service: a Health server whose answer the test decides. */
typedef struct stand_in {
	rk_health_t h;        /* what Check says */
	rk_rpc_server_t *srv; /* the server */
	char url[64];         /* where it listens */
} stand_in_t;

static void stand_in_start(stand_in_t *s, rk_sealer_t *sealer)
{
	memset(s, 0, sizeof(*s));
	s->h.service = "storage";
	s->h.node_id = "stand-in";
	atomic_store(&s->h.serving, true);
	atomic_store(&s->h.detail, "switched off by the test");
	rk_rpc_server_opts_t so = {.listen = "tcp://127.0.0.1:0",
	                           .sealer = sealer,
	                           .name = "stand-in"};
	assert_int_equal(rk_rpc_server_new(&so, &s->srv), RK_OK);
	assert_int_equal(rk_health_register(s->srv, &s->h), RK_OK);
	char *err = NULL;
	assert_int_equal(rk_rpc_server_start(s->srv, &err), RK_OK);
	snprintf(s->url, sizeof(s->url), "tcp://127.0.0.1:%d",
	         rk_rpc_server_port(s->srv));
}

static void
test_heartbeat_stops_while_local_service_does_not_serve(void **state)
{
	fixture_t *f = *state;
	mc_cluster_t *c = &f->c;
	assert_int_equal(mc_init(c, 4, 60000), 0);
	/* A stand-in for agent 3's storage service. */
	stand_in_t s;
	stand_in_start(&s, c->sealer);
	snprintf(c->a[3].health, sizeof(c->a[3].health), "%s", s.url);
	assert_int_equal(mc_start_all(c), 0);
	mc_converge_arg_t ca = {0};
	assert_true(mc_wait_all(c, -1, mc_pred_converged, &ca, WAIT_MS) >= 0);
	uint8_t id[16];
	memcpy(id, c->a[3].id, 16);
	rk_rpc_result_t res;
	const Ringkv__V1__MemberTable *t = mc_table(c, 0, &res);
	assert_non_null(t);
	uint64_t inc = mc_find(t, id)->incarnation;
	rk_rpc_result_clear(&res);

	/* The service stops serving: agent 3 still answers, but its
	 * heartbeat stops, it does not refute, and the others convict it. */
	atomic_store(&s.h.serving, false);
	mc_state_arg_t down = {.id = id,
	                       .state = RINGKV__V1__MEMBER_STATE__MEMBER_DOWN};
	long took = mc_wait_all(c, 3, mc_pred_state, &down, WAIT_MS);
	printf("node whose service stopped serving marked down in %ld ms\n",
	       took);
	assert_true(took >= 0);
	assert_true(rk_proc_line_of(c->a[3].log, "does not serve") > 0);

	/* Serving again: it refutes, alive everywhere. */
	atomic_store(&s.h.serving, true);
	mc_state_arg_t alive = {.id = id,
	                        .state = RINGKV__V1__MEMBER_STATE__MEMBER_ALIVE,
	                        .min_incarnation = inc + 1};
	assert_true(mc_wait_all(c, -1, mc_pred_state, &alive, WAIT_MS) >= 0);
	assert_false(c->bad_down);
	/* The server borrows the cluster's sealer: free it first. */
	rk_rpc_server_free(s.srv);
	f->passed = true;
}

static void
test_service_registered_through_an_agent_is_vouched_for(void **state)
{
	fixture_t *f = *state;
	mc_cluster_t *c = &f->c;
	start_converged(c, 3, 60000);
	stand_in_t s;
	stand_in_start(&s, c->sealer);

	/* The storage service registers through agent 0. */
	uint8_t id[16];
	memset(id, 0x5a, sizeof(id));
	Ringkv__V1__Endpoint ep = RINGKV__V1__ENDPOINT__INIT;
	ep.has_kind = true;
	ep.kind = RINGKV__V1__ENDPOINT_KIND__ENDPOINT_RPC;
	ep.url = s.url;
	Ringkv__V1__Endpoint *epp = &ep;
	Ringkv__V1__Member m = RINGKV__V1__MEMBER__INIT;
	m.has_node_id = true;
	m.node_id.data = id;
	m.node_id.len = 16;
	m.has_generation = true;
	m.generation = 1;
	m.has_role = true;
	m.role = RINGKV__V1__SERVICE_ID__SERVICE_STORAGE;
	m.n_endpoints = 1;
	m.endpoints = &epp;
	m.datacenter = "dc1";
	m.rack = "rack1";
	m.name = "storage-0";
	m.has_weight = true;
	m.weight = 1;
	m.has_state = true;
	m.state = RINGKV__V1__MEMBER_STATE__MEMBER_ALIVE;
	Ringkv__V1__Member *mp = &m;
	Ringkv__V1__JoinRequest jr = RINGKV__V1__JOIN_REQUEST__INIT;
	jr.n_members = 1;
	jr.members = &mp;
	rk_rpc_method_t join = method("Join");
	rk_rpc_result_t res;
	assert_int_equal(
	    rk_rpc_call(c->a[0].client, &join, &jr.base, 2000, &res), RK_OK);
	rk_rpc_result_clear(&res);
	mc_state_arg_t alive = {
	    .id = id, .state = RINGKV__V1__MEMBER_STATE__MEMBER_ALIVE};
	assert_true(mc_wait_all(c, -1, mc_pred_state, &alive, WAIT_MS) >= 0);

	/* Two suspect timeouts later it is still alive everywhere: its
	 * agent raises its heartbeat. */
	long until = mc_now_ms() + 2 * MC_SUSPECT_MS;
	while (mc_now_ms() < until)
		assert_true(
		    mc_wait_all(c, -1, mc_pred_state, &alive, WAIT_MS) >= 0);
	const Ringkv__V1__MemberTable *t = mc_table(c, 2, &res);
	assert_non_null(t);
	const Ringkv__V1__Member *seen = mc_find(t, id);
	assert_true(seen->heartbeat > 5);
	assert_true(seen->has_agent_node_id);
	assert_memory_equal(seen->agent_node_id.data, c->a[0].id, 16);
	rk_rpc_result_clear(&res);

	/* The storage ring, as agent 2 computes it, is that one node. */
	rk_rpc_method_t get_ring = method("GetRing");
	Ringkv__V1__GetRingRequest rr = RINGKV__V1__GET_RING_REQUEST__INIT;
	rr.has_include_tokens = true;
	rr.include_tokens = true;
	assert_int_equal(
	    rk_rpc_call(c->a[2].client, &get_ring, &rr.base, 2000, &res),
	    RK_OK);
	const Ringkv__V1__RingView *v =
	    ((const Ringkv__V1__GetRingResponse *)res.response)->ring;
	assert_int_equal(v->role, RINGKV__V1__SERVICE_ID__SERVICE_STORAGE);
	assert_int_equal(v->n_members, 1);
	assert_int_equal(v->members[0]->share_ppm, 1000000);
	assert_int_equal(v->members[0]->n_tokens, v->vnodes_per_weight);
	for (size_t i = 1; i < v->members[0]->n_tokens; i++)
		assert_true(v->members[0]->tokens[i - 1] <=
		            v->members[0]->tokens[i]);
	rk_rpc_result_clear(&res);

	/* Subscribers get the events URL and the role's table. */
	rk_rpc_method_t subscribe = method("Subscribe");
	Ringkv__V1__SubscribeRequest sr = RINGKV__V1__SUBSCRIBE_REQUEST__INIT;
	sr.has_role = true;
	sr.role = RINGKV__V1__SERVICE_ID__SERVICE_STORAGE;
	assert_int_equal(
	    rk_rpc_call(c->a[1].client, &subscribe, &sr.base, 2000, &res),
	    RK_OK);
	const Ringkv__V1__SubscribeResponse *sub = (const void *)res.response;
	assert_non_null(sub->events_url);
	assert_true(strncmp(sub->events_url, "tcp://", 6) == 0);
	assert_int_equal(sub->table->n_members, 1);
	rk_rpc_result_clear(&res);

	/* It stops serving: down everywhere, its own agent included. */
	atomic_store(&s.h.serving, false);
	mc_state_arg_t down = {.id = id,
	                       .state = RINGKV__V1__MEMBER_STATE__MEMBER_DOWN};
	long took = mc_wait_all(c, -1, mc_pred_state, &down, WAIT_MS);
	printf("registered service that stopped serving marked down in %ld "
	       "ms\n",
	       took);
	assert_true(took >= 0);
	/* Serving again: its agent refutes for it. */
	atomic_store(&s.h.serving, true);
	alive.min_incarnation = 1;
	assert_true(mc_wait_all(c, -1, mc_pred_state, &alive, WAIT_MS) >= 0);

	/* It leaves through its agent, and only through it. */
	rk_rpc_method_t leave = method("Leave");
	Ringkv__V1__LeaveRequest lr = RINGKV__V1__LEAVE_REQUEST__INIT;
	lr.has_node_id = true;
	lr.node_id.data = id;
	lr.node_id.len = 16;
	assert_int_equal(
	    rk_rpc_call(c->a[1].client, &leave, &lr.base, 2000, &res),
	    RK_FAILED_PRECONDITION);
	rk_rpc_result_clear(&res);
	assert_int_equal(
	    rk_rpc_call(c->a[0].client, &leave, &lr.base, 2000, &res), RK_OK);
	rk_rpc_result_clear(&res);
	mc_state_arg_t left = {.id = id,
	                       .state = RINGKV__V1__MEMBER_STATE__MEMBER_LEFT};
	assert_true(mc_wait_all(c, -1, mc_pred_state, &left, WAIT_MS) >= 0);
	assert_false(c->bad_down);
	rk_rpc_server_free(s.srv);
	f->passed = true;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_left_agent_is_left_everywhere_and_rejoins_on_restart,
	        setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_killed_agent_back_on_a_new_port_is_same_node_newer_generation,
	        setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_down_member_is_forgotten_after_forget_time_or_removal,
	        setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_bad_gossip_is_refused_logged_and_table_kept, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_heartbeat_stops_while_local_service_does_not_serve, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_service_registered_through_an_agent_is_vouched_for, setup,
	        teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
