/*
 * The Membership methods (proto/ringkv/v1/membership.proto) of one agent.
 *
 * Everything a request brings is checked whole (wire.c) before the table
 * is touched: a malformed or hostile Gossip or Join is refused with
 * INVALID_ARGUMENT, logged (at most a few lines a second), counted, and
 * merges nothing. Frames without a valid seal never get here: the RPC
 * layer refuses them with UNAUTHENTICATED and logs them.
 *
 * Handlers that only read or merge memory run inline on nng's threads;
 * IndirectProbe waits on a network call and runs on the worker pool.
 * Each builds its answer from a snapshot taken under the lock, so the
 * lock is never held while a reply is serialized.
 */
#include "agent_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "ring/members.h"

static rk_ms_methods_t methods;
static pthread_once_t methods_once = PTHREAD_ONCE_INIT;
static rk_status_t methods_status;

static void resolve_all(void)
{
	const ProtobufCServiceDescriptor *s =
	    &ringkv__v1__membership__descriptor;
	const ProtobufCEnumDescriptor *e =
	    &ringkv__v1__membership_method__descriptor;
	struct {
		const char *name;
		rk_rpc_method_t *out;
	} all[] = {
	    {"Gossip", &methods.gossip},
	    {"Ping", &methods.ping},
	    {"IndirectProbe", &methods.indirect},
	    {"Join", &methods.join},
	    {"Leave", &methods.leave},
	    {"Remove", &methods.remove},
	    {"GetMembers", &methods.get_members},
	    {"GetRing", &methods.get_ring},
	    {"Subscribe", &methods.subscribe},
	    {"AcquireLease", &methods.acquire_lease},
	    {"RenewLease", &methods.renew_lease},
	    {"ReleaseLease", &methods.release_lease},
	    {"VoteLease", &methods.vote_lease},
	    {"ListLeases", &methods.list_leases},
	};
	methods_status = RK_OK;
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		rk_status_t st =
		    rk_rpc_method_resolve(s, e, all[i].name, all[i].out);
		if (st != RK_OK)
			methods_status = st;
	}
}

const rk_ms_methods_t *rk_ms_methods(void)
{
	pthread_once(&methods_once, resolve_all);
	return &methods;
}

rk_status_t rk_ms_members_from_pb(Ringkv__V1__Member *const *pb, size_t n,
                                  rk_ms_member_t **out, const char **why)
{
	*out = NULL;
	*why = NULL;
	if (n > RK_MS_MAX_MEMBERS) {
		*why = "too many members";
		return RK_INVALID_ARGUMENT;
	}
	rk_ms_member_t *m = malloc((n ? n : 1) * sizeof(*m));
	if (m == NULL) {
		*why = "out of memory";
		return RK_RESOURCE_EXHAUSTED;
	}
	for (size_t i = 0; i < n; i++) {
		if (rk_ms_member_from_pb(pb[i], &m[i], why) != RK_OK) {
			free(m);
			return RK_INVALID_ARGUMENT;
		}
		for (size_t j = 0; j < i; j++)
			if (memcmp(m[j].id, m[i].id, RK_MS_ID_BYTES) == 0) {
				*why = "the same member twice";
				free(m);
				return RK_INVALID_ARGUMENT;
			}
	}
	*out = m;
	return RK_OK;
}

/* Logs a refusal, at most five lines a second, and counts it. */
static void refuse(rk_ms_agent_t *a, rk_rpc_call_t *call, const char *what,
                   const char *why)
{
	static _Atomic uint64_t window, lines;
	uint64_t now = rk_clock_mono_ms() / 1000;
	if (window != now) {
		window = now;
		lines = 0;
	}
	if (lines++ < 5)
		rk_warn("%s refused from \"%s\": %s; table kept", what,
		        rk_rpc_call_caller(call), why);
	if (a->refused != NULL)
		rk_counter_add(a->refused, 1);
	rk_rpc_reply_error(call, RK_INVALID_ARGUMENT, 0, "%s refused: %s", what,
	                   why);
}

/* Fills T (a MemberTable) from a snapshot; L holds the members. */
static void fill_table(rk_ms_agent_t *a, Ringkv__V1__MemberTable *t,
                       rk_ms_pb_list_t *l, uint8_t digest[16], uint64_t version,
                       bool caught_up)
{
	Ringkv__V1__MemberTable init = RINGKV__V1__MEMBER_TABLE__INIT;
	*t = init;
	t->has_agent_node_id = true;
	t->agent_node_id.data = a->table.m[0].id; /* never changes */
	t->agent_node_id.len = RK_MS_ID_BYTES;
	t->has_version = true;
	t->version = version;
	t->has_digest = true;
	t->digest.data = digest;
	t->digest.len = 16;
	t->n_members = l->n;
	t->members = l->pp;
	t->has_caught_up = true;
	t->caught_up = caught_up;
}

/* A snapshot with version, digest and caught-up flag, in one lock. */
typedef struct view {
	rk_ms_member_t *m;  /* copy of the entries */
	size_t n;           /* how many */
	uint64_t version;   /* table version */
	uint8_t digest[16]; /* table digest */
	bool caught_up;     /* may convict */
} view_t;

static bool take_view(rk_ms_agent_t *a, view_t *v)
{
	pthread_mutex_lock(&a->mu);
	v->n = a->table.n;
	v->m = malloc(v->n * sizeof(*v->m));
	if (v->m != NULL)
		memcpy(v->m, a->table.m, v->n * sizeof(*v->m));
	v->version = a->table.version;
	rk_ms_table_digest(&a->table, v->digest);
	v->caught_up = a->table.caught_up;
	pthread_mutex_unlock(&a->mu);
	return v->m != NULL;
}

/* ------------------------------------------------------------ methods */

static void on_gossip(rk_rpc_call_t *call, const ProtobufCMessage *msg,
                      void *arg)
{
	rk_ms_agent_t *a = arg;
	const Ringkv__V1__GossipRequest *req = (const void *)msg;
	if (!req->has_from_node_id || req->from_node_id.len != RK_MS_ID_BYTES) {
		refuse(a, call, "gossip", "from_node_id is not 16 bytes");
		return;
	}
	rk_ms_member_t *in = NULL;
	const char *why = NULL;
	if (rk_ms_members_from_pb(req->members, req->n_members, &in, &why) !=
	    RK_OK) {
		refuse(a, call, "gossip", why);
		return;
	}
	uint64_t now = rk_clock_mono_ms();
	pthread_mutex_lock(&a->mu);
	rk_ms_table_merge(&a->table, in, req->n_members, now,
	                  rk_clock_unix_ms());
	rk_ms_table_heard(&a->table, now);
	pthread_mutex_unlock(&a->mu);
	free(in);
	view_t v;
	if (!take_view(a, &v)) {
		rk_rpc_reply_error(call, RK_RESOURCE_EXHAUSTED, 0, "no memory");
		return;
	}
	rk_ms_pb_list_t l;
	if (rk_ms_pb_list_init(&l, v.m, v.n, 0, 0) != RK_OK) {
		free(v.m);
		rk_rpc_reply_error(call, RK_RESOURCE_EXHAUSTED, 0, "no memory");
		return;
	}
	Ringkv__V1__GossipResponse resp = RINGKV__V1__GOSSIP_RESPONSE__INIT;
	resp.n_members = l.n;
	resp.members = l.pp;
	resp.has_digest = true;
	resp.digest.data = v.digest;
	resp.digest.len = 16;
	rk_rpc_reply(call, &resp.base);
	rk_ms_pb_list_fini(&l);
	free(v.m);
}

static void on_ping(rk_rpc_call_t *call, const ProtobufCMessage *msg, void *arg)
{
	rk_ms_agent_t *a = arg;
	const Ringkv__V1__PingRequest *req = (const void *)msg;
	Ringkv__V1__PingResponse resp = RINGKV__V1__PING_RESPONSE__INIT;
	uint8_t id[RK_MS_ID_BYTES];
	pthread_mutex_lock(&a->mu);
	const rk_ms_member_t *self = rk_ms_table_self(&a->table);
	memcpy(id, self->id, sizeof(id));
	resp.generation = self->generation;
	resp.incarnation = self->incarnation;
	resp.heartbeat = self->heartbeat;
	pthread_mutex_unlock(&a->mu);
	if (req->has_target_node_id &&
	    (req->target_node_id.len != RK_MS_ID_BYTES ||
	     memcmp(req->target_node_id.data, id, RK_MS_ID_BYTES) != 0)) {
		rk_rpc_reply_error(call, RK_FAILED_PRECONDITION, 0,
		                   "this is another node");
		return;
	}
	resp.has_node_id = resp.has_generation = resp.has_incarnation =
	    resp.has_heartbeat = true;
	resp.node_id.data = id;
	resp.node_id.len = RK_MS_ID_BYTES;
	rk_rpc_reply(call, &resp.base);
}

static void on_indirect(rk_rpc_call_t *call, const ProtobufCMessage *msg,
                        void *arg)
{
	rk_ms_agent_t *a = arg;
	const Ringkv__V1__IndirectProbeRequest *req = (const void *)msg;
	if (!req->has_target_node_id ||
	    req->target_node_id.len != RK_MS_ID_BYTES ||
	    req->target_url == NULL ||
	    strncmp(req->target_url, "tcp://", 6) != 0 ||
	    strlen(req->target_url) >= RK_MS_URL_MAX ||
	    req->timeout_ms > 10000) {
		refuse(a, call, "indirect probe", "bad target or timeout");
		return;
	}
	uint32_t timeout =
	    req->timeout_ms ? req->timeout_ms : (uint32_t)a->cfg.probe_ms;
	rk_rpc_client_opts_t o = {.url = req->target_url,
	                          .sealer = a->sealer,
	                          .max_frame_bytes = 65536,
	                          .reconnect_min_ms = 10,
	                          .reconnect_max_ms = 100,
	                          .caller = "membership-probe"};
	rk_rpc_client_t *c = NULL;
	if (rk_rpc_client_new(&o, &c) != RK_OK) {
		refuse(a, call, "indirect probe", "bad target URL");
		return;
	}
	Ringkv__V1__PingRequest ping = RINGKV__V1__PING_REQUEST__INIT;
	ping.has_target_node_id = true;
	ping.target_node_id = req->target_node_id;
	rk_rpc_result_t res;
	rk_status_t st =
	    rk_rpc_call(c, &rk_ms_methods()->ping, &ping.base, timeout, &res);
	Ringkv__V1__IndirectProbeResponse resp =
	    RINGKV__V1__INDIRECT_PROBE_RESPONSE__INIT;
	resp.has_reached = true;
	resp.reached = st == RK_OK;
	if (st == RK_OK) {
		resp.target = (Ringkv__V1__PingResponse *)res.response;
		resp.has_rtt_us = true;
		resp.rtt_us = (uint32_t)(res.latency_ns / 1000);
	}
	rk_rpc_reply(call, &resp.base);
	rk_rpc_result_clear(&res);
	rk_rpc_client_free(c);
}

static void reply_table(rk_ms_agent_t *a, rk_rpc_call_t *call, int kind,
                        int role)
{
	view_t v;
	if (!take_view(a, &v)) {
		rk_rpc_reply_error(call, RK_RESOURCE_EXHAUSTED, 0, "no memory");
		return;
	}
	rk_ms_pb_list_t l;
	if (rk_ms_pb_list_init(&l, v.m, v.n, role, rk_clock_mono_ms()) !=
	    RK_OK) {
		free(v.m);
		rk_rpc_reply_error(call, RK_RESOURCE_EXHAUSTED, 0, "no memory");
		return;
	}
	Ringkv__V1__MemberTable t;
	fill_table(a, &t, &l, v.digest, v.version, v.caught_up);
	if (kind == 0) {
		Ringkv__V1__GetMembersResponse r =
		    RINGKV__V1__GET_MEMBERS_RESPONSE__INIT;
		r.table = &t;
		rk_rpc_reply(call, &r.base);
	} else if (kind == 1) {
		Ringkv__V1__JoinResponse r = RINGKV__V1__JOIN_RESPONSE__INIT;
		r.table = &t;
		rk_rpc_reply(call, &r.base);
	} else {
		Ringkv__V1__SubscribeResponse r =
		    RINGKV__V1__SUBSCRIBE_RESPONSE__INIT;
		r.table = &t;
		r.events_url = v.m[0].events_url;
		rk_rpc_reply(call, &r.base);
	}
	rk_ms_pb_list_fini(&l);
	free(v.m);
}

static void on_join(rk_rpc_call_t *call, const ProtobufCMessage *msg, void *arg)
{
	rk_ms_agent_t *a = arg;
	const Ringkv__V1__JoinRequest *req = (const void *)msg;
	rk_ms_member_t *in = NULL;
	const char *why = NULL;
	if (rk_ms_members_from_pb(req->members, req->n_members, &in, &why) !=
	    RK_OK) {
		refuse(a, call, "join", why);
		return;
	}
	uint64_t now = rk_clock_mono_ms();
	pthread_mutex_lock(&a->mu);
	rk_ms_member_t *self = rk_ms_table_self(&a->table);
	for (size_t i = 0; i < req->n_members; i++) {
		/* A service registering through us: we vouch for it. */
		if (in[i].role != RINGKV__V1__SERVICE_ID__SERVICE_MEMBERSHIP &&
		    !in[i].has_agent) {
			in[i].has_agent = true;
			memcpy(in[i].agent_id, self->id, RK_MS_ID_BYTES);
		}
		/* Our own entry in a Join: come back after a leave. */
		if (memcmp(in[i].id, self->id, RK_MS_ID_BYTES) == 0 &&
		    a->table.leaving)
			rk_ms_table_leave_self(&a->table, true, now,
			                       rk_clock_unix_ms());
	}
	rk_ms_table_merge(&a->table, in, req->n_members, now,
	                  rk_clock_unix_ms());
	if (req->n_members > 0)
		rk_ms_table_heard(&a->table, now);
	pthread_mutex_unlock(&a->mu);
	free(in);
	reply_table(a, call, 1, 0);
}

static void on_leave(rk_rpc_call_t *call, const ProtobufCMessage *msg,
                     void *arg)
{
	rk_ms_agent_t *a = arg;
	const Ringkv__V1__LeaveRequest *req = (const void *)msg;
	if (req->has_node_id && req->node_id.len != RK_MS_ID_BYTES) {
		rk_rpc_reply_error(call, RK_INVALID_ARGUMENT, 0,
		                   "node_id must be 16 bytes");
		return;
	}
	pthread_mutex_lock(&a->mu);
	rk_ms_member_t *self = rk_ms_table_self(&a->table);
	const uint8_t *id = req->has_node_id ? req->node_id.data : self->id;
	rk_ms_member_t *m = rk_ms_table_find(&a->table, id);
	if (m == self && !a->table.leaving)
		rk_info("leaving the cluster%s%s", req->reason ? ": " : "",
		        req->reason ? req->reason : "");
	rk_status_t st = RK_OK;
	if (m != self || !a->table.leaving)
		st = rk_ms_table_leave_member(&a->table, id, rk_clock_mono_ms(),
		                              rk_clock_unix_ms());
	rk_ms_member_t copy;
	if (st == RK_OK)
		copy = *rk_ms_table_find(&a->table, id);
	a->kick = true;
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
	if (st != RK_OK) {
		rk_rpc_reply_error(call, st, 0, "%s",
		                   st == RK_NOT_FOUND
		                       ? "no such member"
		                       : "a member leaves through the agent "
		                         "it registered with");
		return;
	}
	rk_ms_pb_member_t h;
	rk_ms_member_to_pb(&copy, &h, 0);
	Ringkv__V1__LeaveResponse resp = RINGKV__V1__LEAVE_RESPONSE__INIT;
	resp.member = &h.pb;
	rk_rpc_reply(call, &resp.base);
}

static void on_remove(rk_rpc_call_t *call, const ProtobufCMessage *msg,
                      void *arg)
{
	rk_ms_agent_t *a = arg;
	const Ringkv__V1__RemoveRequest *req = (const void *)msg;
	if (!req->has_node_id || req->node_id.len != RK_MS_ID_BYTES) {
		rk_rpc_reply_error(call, RK_INVALID_ARGUMENT, 0,
		                   "node_id must be 16 bytes");
		return;
	}
	pthread_mutex_lock(&a->mu);
	rk_status_t st = rk_ms_table_remove(&a->table, req->node_id.data,
	                                    rk_clock_mono_ms());
	pthread_mutex_unlock(&a->mu);
	if (st != RK_OK) {
		rk_rpc_reply_error(call, st, 0, "%s",
		                   st == RK_NOT_FOUND
		                       ? "no such member"
		                       : "only left or down members can be "
		                         "removed");
		return;
	}
	Ringkv__V1__RemoveResponse resp = RINGKV__V1__REMOVE_RESPONSE__INIT;
	rk_rpc_reply(call, &resp.base);
}

static void on_get_members(rk_rpc_call_t *call, const ProtobufCMessage *msg,
                           void *arg)
{
	const Ringkv__V1__GetMembersRequest *req = (const void *)msg;
	reply_table(arg, call, 0, req->has_role ? (int)req->role : 0);
}

static void on_subscribe(rk_rpc_call_t *call, const ProtobufCMessage *msg,
                         void *arg)
{
	const Ringkv__V1__SubscribeRequest *req = (const void *)msg;
	reply_table(arg, call, 2, req->has_role ? (int)req->role : 0);
}

static void on_get_ring(rk_rpc_call_t *call, const ProtobufCMessage *msg,
                        void *arg)
{
	rk_ms_agent_t *a = arg;
	const Ringkv__V1__GetRingRequest *req = (const void *)msg;
	int role = req->has_role ? (int)req->role
	                         : RINGKV__V1__SERVICE_ID__SERVICE_STORAGE;
	view_t v;
	if (!take_view(a, &v)) {
		rk_rpc_reply_error(call, RK_RESOURCE_EXHAUSTED, 0, "no memory");
		return;
	}
	/* Members of the role that hold tokens: all but those that left. */
	size_t k = 0;
	for (size_t i = 0; i < v.n; i++)
		if (v.m[i].role == role && v.m[i].state != RK_MS_LEFT)
			v.m[k++] = v.m[i];
	/* The ring from the entries as subscribers see them, by the rule
	 * they use too (lib/ring/members.c). */
	rk_ms_pb_list_t l = {0};
	rk_ring_t *ring = NULL;
	rk_status_t st = rk_ms_pb_list_init(&l, v.m, k, 0, rk_clock_mono_ms());
	if (st == RK_OK)
		st =
		    rk_ring_from_members(l.pp, l.n, role, a->cfg.vnodes, &ring);
	if (st != RK_OK) {
		rk_ms_pb_list_fini(&l);
		free(v.m);
		rk_rpc_reply_error(call, st, 0, "cannot build the ring");
		return;
	}
	Ringkv__V1__RingMember *rm =
	    rk_rpc_call_alloc(call, (k ? k : 1) * sizeof(*rm));
	Ringkv__V1__RingMember **rmp =
	    rk_rpc_call_alloc(call, (k ? k : 1) * sizeof(*rmp));
	bool ok = rm != NULL && rmp != NULL;
	for (size_t i = 0; ok && i < k; i++) {
		Ringkv__V1__RingMember init = RINGKV__V1__RING_MEMBER__INIT;
		rm[i] = init;
		rm[i].member = &l.h[i].pb;
		int idx = rk_ring_find(ring, v.m[i].id);
		rm[i].has_share_ppm = true;
		rm[i].share_ppm =
		    (uint32_t)(rk_ring_share(ring, (size_t)idx) * 1e6 + 0.5);
		if (req->include_tokens) {
			size_t nt =
			    rk_ring_node_tokens(ring, (size_t)idx, NULL, 0);
			uint64_t *tok =
			    rk_rpc_call_alloc(call, (nt ? nt : 1) * 8);
			if (tok == NULL) {
				ok = false;
				break;
			}
			rk_ring_node_tokens(ring, (size_t)idx, tok, nt);
			rm[i].n_tokens = nt;
			rm[i].tokens = tok;
		}
		rmp[i] = &rm[i];
	}
	if (!ok) {
		rk_rpc_reply_error(call, RK_RESOURCE_EXHAUSTED, 0,
		                   "the ring does not fit in the reply budget");
	} else {
		Ringkv__V1__RingView view = RINGKV__V1__RING_VIEW__INIT;
		view.has_role = true;
		view.role = (Ringkv__V1__ServiceId)role;
		view.has_version = true;
		view.version = v.version;
		view.has_digest = true;
		view.digest.data = v.digest;
		view.digest.len = 16;
		view.has_vnodes_per_weight = true;
		view.vnodes_per_weight = a->cfg.vnodes;
		view.n_members = k;
		view.members = rmp;
		Ringkv__V1__GetRingResponse resp =
		    RINGKV__V1__GET_RING_RESPONSE__INIT;
		resp.ring = &view;
		rk_rpc_reply(call, &resp.base);
	}
	rk_ring_free(ring);
	rk_ms_pb_list_fini(&l);
	free(v.m);
}

rk_status_t rk_ms_handlers_register(rk_ms_agent_t *a, rk_rpc_server_t *srv)
{
	const rk_ms_methods_t *m = rk_ms_methods();
	if (methods_status != RK_OK)
		return methods_status;
	struct {
		const rk_rpc_method_t *method;
		rk_rpc_handler_fn fn;
		int flags;
	} routes[] = {
	    {&m->gossip, on_gossip, RK_RPC_INLINE},
	    {&m->ping, on_ping, RK_RPC_INLINE},
	    {&m->indirect, on_indirect, 0},
	    {&m->join, on_join, RK_RPC_INLINE},
	    {&m->leave, on_leave, RK_RPC_INLINE},
	    {&m->remove, on_remove, RK_RPC_INLINE},
	    {&m->get_members, on_get_members, RK_RPC_INLINE},
	    {&m->get_ring, on_get_ring, 0},
	    {&m->subscribe, on_subscribe, RK_RPC_INLINE},
	};
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		rk_status_t st = rk_rpc_server_handle(
		    srv, routes[i].method, routes[i].fn, routes[i].flags, a);
		if (st != RK_OK)
			return st;
	}
	return rk_ms_lease_register(a, srv);
}
