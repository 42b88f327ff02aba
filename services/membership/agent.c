/*
 * The agent's life cycle and its gossip thread.
 *
 * One thread runs the rounds; every `round` it:
 *   1. asks the local service's Health (when configured) and raises this
 *      agent's heartbeat only if it serves (rk_ms_table_tick);
 *   2. runs failure detection (same call) and learns which suspects have
 *      this agent as their only accuser;
 *   3. sends its whole table to `fanout` random peers (Gossip, push-pull),
 *      to the seeds with Join until one answered, and asks two other
 *      agents to probe each lone suspect (IndirectProbe) — all at once,
 *      asynchronously, each call with the probe deadline;
 *   4. waits for every answer (each call ends by its deadline), then merges
 *      what came back under the table lock: answers from peers count as
 *      "heard", failed indirect probes add their prober as accuser.
 * So the thread never blocks on one dead peer longer than one deadline,
 * and only it owns the cached peer clients (no locking for them).
 *
 * RPC handlers (handlers.c) run on the server's threads and take the same
 * lock around the table. The lock is never held across a network call.
 *
 * Shutdown: the stop hook ends the thread and closes the events socket,
 * but handlers may still run until the runtime frees the RPC server, so
 * the table and lock are freed only by rk_ms_cleanup(), after
 * rk_service_main() returned.
 */
#include "agent_internal.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/log.h"
#include "identity.h"
#include "service/health.h"

static rk_ms_agent_t *the_agent; /* for rk_ms_cleanup */

/* ------------------------------------------------------------- peers */

static rk_rpc_client_t *peer_client(rk_ms_agent_t *a, const char *url,
                                    uint64_t now)
{
	rk_ms_peer_t *free_slot = NULL, *oldest = NULL;
	for (size_t i = 0; i < RK_MS_MAX_PEERS; i++) {
		rk_ms_peer_t *p = &a->peers[i];
		if (p->client == NULL) {
			if (free_slot == NULL)
				free_slot = p;
			continue;
		}
		if (strcmp(p->url, url) == 0) {
			p->used_mono = now;
			return p->client;
		}
		if (oldest == NULL || p->used_mono < oldest->used_mono)
			oldest = p;
	}
	rk_ms_peer_t *p = free_slot ? free_slot : oldest;
	if (p->client != NULL)
		rk_rpc_client_free(p->client);
	memset(p, 0, sizeof(*p));
	rk_rpc_client_opts_t o = {.url = url,
	                          .sealer = a->sealer,
	                          .max_frame_bytes = a->cfg.max_frame,
	                          .reconnect_min_ms = 20,
	                          .reconnect_max_ms = 500,
	                          .caller = "membership"};
	if (rk_rpc_client_new(&o, &p->client) != RK_OK)
		return NULL;
	snprintf(p->url, sizeof(p->url), "%s", url);
	p->used_mono = now;
	return p->client;
}

/* Drops clients no round used for a minute. */
static void prune_peers(rk_ms_agent_t *a, uint64_t now)
{
	for (size_t i = 0; i < RK_MS_MAX_PEERS; i++) {
		rk_ms_peer_t *p = &a->peers[i];
		if (p->client != NULL && now - p->used_mono > 60000) {
			rk_rpc_client_free(p->client);
			memset(p, 0, sizeof(*p));
		}
	}
}

/* ------------------------------------------------------------- rounds */

enum { CALL_GOSSIP, CALL_JOIN, CALL_PROBE, CALL_HEALTH };

/* One call of a round. */
typedef struct round_call {
	int kind;                       /* CALL_* */
	uint8_t peer[RK_MS_ID_BYTES];   /* who was called (gossip, probe) */
	uint8_t target[RK_MS_ID_BYTES]; /* whom it probed (probe) */
	rk_rpc_result_t *res;           /* the outcome, once done */
	struct round *round;            /* back pointer */
} round_call_t;

#define MAX_CALLS 64

typedef struct round {
	pthread_mutex_t mu;            /* guards pending and the results */
	pthread_cond_t cv;             /* signalled as calls end */
	size_t pending;                /* calls not yet done */
	round_call_t calls[MAX_CALLS]; /* this round's calls */
	size_t ncalls;                 /* entries of calls */
} round_t;

static void call_done(rk_rpc_result_t *res, void *arg)
{
	round_call_t *c = arg;
	pthread_mutex_lock(&c->round->mu);
	c->res = res;
	c->round->pending--;
	pthread_cond_signal(&c->round->cv);
	pthread_mutex_unlock(&c->round->mu);
}

static void start_call(rk_ms_agent_t *a, round_t *r, int kind, const char *url,
                       const uint8_t *peer, const uint8_t *target,
                       const rk_rpc_method_t *m, const ProtobufCMessage *req,
                       uint64_t now)
{
	if (r->ncalls == MAX_CALLS || url[0] == '\0')
		return;
	rk_rpc_client_t *c = peer_client(a, url, now);
	if (c == NULL)
		return;
	round_call_t *rc = &r->calls[r->ncalls];
	memset(rc, 0, sizeof(*rc));
	rc->kind = kind;
	rc->round = r;
	if (peer != NULL)
		memcpy(rc->peer, peer, RK_MS_ID_BYTES);
	if (target != NULL)
		memcpy(rc->target, target, RK_MS_ID_BYTES);
	pthread_mutex_lock(&r->mu);
	r->pending++;
	pthread_mutex_unlock(&r->mu);
	if (rk_rpc_call_async(c, m, req, (uint32_t)a->cfg.probe_ms, call_done,
	                      rc) != RK_OK) {
		pthread_mutex_lock(&r->mu);
		r->pending--;
		pthread_mutex_unlock(&r->mu);
		return;
	}
	r->ncalls++;
}

rk_ms_member_t *rk_ms_snapshot(rk_ms_agent_t *a, size_t *n)
{
	pthread_mutex_lock(&a->mu);
	rk_ms_member_t *copy = malloc(a->table.n * sizeof(*copy));
	*n = 0;
	if (copy != NULL) {
		memcpy(copy, a->table.m, a->table.n * sizeof(*copy));
		*n = a->table.n;
	}
	pthread_mutex_unlock(&a->mu);
	return copy;
}

/* Fills the self entry's URLs once the RPC server has its port. */
static bool advertise(rk_ms_agent_t *a)
{
	rk_ms_member_t *self = rk_ms_table_self(&a->table);
	if (self->rpc_url[0] != '\0')
		return true;
	int port = rk_rpc_server_port(rk_service_rpc(a->svc));
	if (port <= 0)
		return false;
	if (a->cfg.advertise[0] != '\0')
		snprintf(self->rpc_url, sizeof(self->rpc_url), "%s",
		         a->cfg.advertise);
	else if (snprintf(self->rpc_url, sizeof(self->rpc_url), "tcp://%s:%d",
	                  a->cfg.advertise_host,
	                  port) >= (int)sizeof(self->rpc_url))
		rk_warn("advertised URL cut short: %s", self->rpc_url);
	/* A change of our own description: peers that saw the entry
	 * without it take it only from a higher incarnation. */
	self->incarnation++;
	rk_info("advertising %s, events on %s", self->rpc_url,
	        self->events_url);
	return true;
}

/* Chooses up to K distinct random indexes of agents in SNAP (not self, not
 * left) into OUT; down ones only now and then, to notice their return. */
static size_t pick_peers(const rk_ms_member_t *snap, size_t n, size_t k,
                         const uint8_t *exclude, size_t *out)
{
	size_t cand[RK_MS_MAX_MEMBERS], nc = 0;
	for (size_t i = 1; i < n; i++) {
		const rk_ms_member_t *m = &snap[i];
		if (m->role != RINGKV__V1__SERVICE_ID__SERVICE_MEMBERSHIP ||
		    m->state == RK_MS_LEFT || m->rpc_url[0] == '\0')
			continue;
		if (exclude && memcmp(m->id, exclude, RK_MS_ID_BYTES) == 0)
			continue;
		if (m->state == RK_MS_DOWN && randombytes_uniform(4) != 0)
			continue;
		cand[nc++] = i;
	}
	size_t got = 0;
	while (got < k && nc > 0) {
		size_t j = randombytes_uniform((uint32_t)nc);
		out[got++] = cand[j];
		cand[j] = cand[--nc];
	}
	return got;
}

static void merge_answer(rk_ms_agent_t *a, Ringkv__V1__Member *const *pb,
                         size_t n, uint64_t now)
{
	rk_ms_member_t *in = NULL;
	const char *why = NULL;
	if (rk_ms_members_from_pb(pb, n, &in, &why) != RK_OK) {
		rk_warn("peer answered a malformed table (%s): ignored",
		        why ? why : "?");
		return;
	}
	pthread_mutex_lock(&a->mu);
	rk_ms_table_merge(&a->table, in, n, now, rk_clock_unix_ms());
	rk_ms_table_heard(&a->table, now);
	a->joined = true;
	pthread_mutex_unlock(&a->mu);
	free(in);
}

static void finish_call(rk_ms_agent_t *a, round_call_t *c, uint64_t now)
{
	rk_rpc_result_t *res = c->res;
	if (c->kind == CALL_HEALTH) {
		const Ringkv__V1__HealthCheckResponse *h =
		    res != NULL && res->code == RK_OK
		        ? (const void *)res->response
		        : NULL;
		bool healthy =
		    h != NULL && h->state == RINGKV__V1__SERVING_STATE__SERVING;
		pthread_mutex_lock(&a->mu);
		rk_ms_table_vouch(&a->table, c->peer, healthy, now,
		                  rk_clock_unix_ms());
		pthread_mutex_unlock(&a->mu);
		return;
	}
	if (res == NULL || res->code != RK_OK) {
		if (res != NULL && c->kind != CALL_PROBE)
			rk_debug("gossip call failed: %s %s",
			         rk_status_name(res->code), res->message);
		return;
	}
	if (c->kind == CALL_GOSSIP) {
		const Ringkv__V1__GossipResponse *g =
		    (const void *)res->response;
		merge_answer(a, g->members, g->n_members, now);
	} else if (c->kind == CALL_JOIN) {
		const Ringkv__V1__JoinResponse *j = (const void *)res->response;
		if (j->table != NULL)
			merge_answer(a, j->table->members, j->table->n_members,
			             now);
	} else {
		const Ringkv__V1__IndirectProbeResponse *p =
		    (const void *)res->response;
		pthread_mutex_lock(&a->mu);
		if (p->reached && p->target != NULL)
			rk_ms_table_alive_evidence(
			    &a->table, c->target, p->target->generation,
			    p->target->incarnation, p->target->heartbeat, now);
		else if (!p->reached)
			rk_ms_table_accuse(&a->table, c->target, c->peer,
			                   RK_MS_ACCUSE_INDIRECT, now,
			                   rk_clock_unix_ms());
		pthread_mutex_unlock(&a->mu);
	}
}

static void update_gauges(rk_ms_agent_t *a)
{
	double count[5] = {0};
	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; i < a->table.n; i++)
		if (a->table.m[i].state >= 1 && a->table.m[i].state <= 4)
			count[a->table.m[i].state]++;
	pthread_mutex_unlock(&a->mu);
	for (int s = 1; s <= 4; s++)
		if (a->members[s] != NULL)
			rk_gauge_set(a->members[s], count[s]);
}

static void run_round(rk_ms_agent_t *a)
{
	const rk_ms_methods_t *mt = rk_ms_methods();
	uint64_t now = rk_clock_mono_ms();
	bool healthy = true;
	if (a->health != NULL) {
		char detail[256];
		healthy = rk_health_probe(a->health, (uint32_t)a->cfg.probe_ms,
		                          detail, sizeof(detail)) == RK_OK;
		now = rk_clock_mono_ms();
	}
	uint8_t probe[4][RK_MS_ID_BYTES];
	pthread_mutex_lock(&a->mu);
	if (!advertise(a)) {
		pthread_mutex_unlock(&a->mu);
		return;
	}
	if (a->table.healthy != healthy)
		rk_info("local service %s: heartbeat %s",
		        healthy ? "serves" : "does not serve",
		        healthy ? "rises again" : "stops");
	a->table.healthy = healthy;
	size_t np =
	    rk_ms_table_tick(&a->table, now, rk_clock_unix_ms(), probe, 4);
	uint64_t gen = rk_ms_table_self(&a->table)->generation;
	bool joined = a->joined;
	pthread_mutex_unlock(&a->mu);
	if (gen > a->stored_generation) {
		char *err = NULL;
		if (rk_ms_identity_store(a->cfg.data_dir,
		                         rk_ms_table_self(&a->table)->id, gen,
		                         &err) == RK_OK)
			a->stored_generation = gen;
		else
			rk_error("identity: %s", err ? err : "?");
		free(err);
	}

	size_t n = 0;
	rk_ms_member_t *snap = rk_ms_snapshot(a, &n);
	if (snap == NULL)
		return;
	rk_ms_pb_list_t list;
	if (rk_ms_pb_list_init(&list, snap, n, 0, 0) != RK_OK) {
		free(snap);
		return;
	}
	round_t *r = calloc(1, sizeof(*r));
	if (r == NULL) {
		rk_ms_pb_list_fini(&list);
		free(snap);
		return;
	}
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);

	Ringkv__V1__GossipRequest greq = RINGKV__V1__GOSSIP_REQUEST__INIT;
	greq.has_from_node_id = true;
	greq.from_node_id.data = snap[0].id;
	greq.from_node_id.len = RK_MS_ID_BYTES;
	greq.n_members = list.n;
	greq.members = list.pp;
	greq.has_sent_at_ms = true;
	greq.sent_at_ms = rk_clock_unix_ms();
	size_t idx[16];
	size_t k = pick_peers(snap, n, a->cfg.fanout, NULL, idx);
	for (size_t i = 0; i < k; i++)
		start_call(a, r, CALL_GOSSIP, snap[idx[i]].rpc_url,
		           snap[idx[i]].id, NULL, &mt->gossip, &greq.base, now);

	Ringkv__V1__JoinRequest jreq = RINGKV__V1__JOIN_REQUEST__INIT;
	Ringkv__V1__Member *selfp = &list.h[0].pb;
	jreq.n_members = 1;
	jreq.members = &selfp;
	if (!joined || k == 0)
		for (size_t i = 0; i < a->cfg.nseeds; i++)
			if (strcmp(a->cfg.seeds[i], snap[0].rpc_url) != 0)
				start_call(a, r, CALL_JOIN, a->cfg.seeds[i],
				           NULL, NULL, &mt->join, &jreq.base,
				           now);

	/* The services registered through us: their own Health check. */
	Ringkv__V1__HealthCheckRequest hreq =
	    RINGKV__V1__HEALTH_CHECK_REQUEST__INIT;
	for (size_t i = 1; i < n; i++)
		if (snap[i].has_agent &&
		    memcmp(snap[i].agent_id, snap[0].id, RK_MS_ID_BYTES) == 0 &&
		    snap[i].state != RK_MS_LEFT)
			start_call(a, r, CALL_HEALTH, snap[i].rpc_url,
			           snap[i].id, NULL, rk_health_check_method(),
			           &hreq.base, now);

	Ringkv__V1__IndirectProbeRequest preq[4];
	for (size_t p = 0; p < np; p++) {
		const rk_ms_member_t *target = NULL;
		for (size_t i = 0; i < n; i++)
			if (memcmp(snap[i].id, probe[p], RK_MS_ID_BYTES) == 0)
				target = &snap[i];
		/* Only agents answer Ping; other members have no second
		 * source but other agents' gossip. */
		if (target == NULL || target->rpc_url[0] == '\0' ||
		    target->role != RINGKV__V1__SERVICE_ID__SERVICE_MEMBERSHIP)
			continue;
		Ringkv__V1__IndirectProbeRequest q =
		    RINGKV__V1__INDIRECT_PROBE_REQUEST__INIT;
		q.has_from_node_id = true;
		q.from_node_id.data = snap[0].id;
		q.from_node_id.len = RK_MS_ID_BYTES;
		q.has_target_node_id = true;
		q.target_node_id.data = (uint8_t *)target->id;
		q.target_node_id.len = RK_MS_ID_BYTES;
		q.target_url = (char *)target->rpc_url;
		q.has_timeout_ms = true;
		q.timeout_ms = (uint32_t)(a->cfg.probe_ms / 2);
		preq[p] = q;
		size_t helpers[2];
		size_t nh = pick_peers(snap, n, 2, target->id, helpers);
		for (size_t h = 0; h < nh; h++) {
			if (snap[helpers[h]].state != RK_MS_ALIVE)
				continue;
			start_call(a, r, CALL_PROBE, snap[helpers[h]].rpc_url,
			           snap[helpers[h]].id, target->id,
			           &mt->indirect, &preq[p].base, now);
		}
	}

	pthread_mutex_lock(&r->mu);
	while (r->pending > 0)
		pthread_cond_wait(&r->cv, &r->mu);
	pthread_mutex_unlock(&r->mu);
	now = rk_clock_mono_ms();
	for (size_t i = 0; i < r->ncalls; i++) {
		finish_call(a, &r->calls[i], now);
		rk_rpc_result_free(r->calls[i].res);
	}
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	free(r);
	rk_ms_pb_list_fini(&list);
	free(snap);
	prune_peers(a, now);
	if (a->rounds != NULL)
		rk_counter_add(a->rounds, 1);
	update_gauges(a);
}

static void *gossip_main(void *arg)
{
	rk_ms_agent_t *a = arg;
	uint64_t next = rk_clock_mono_ms();
	pthread_mutex_lock(&a->mu);
	while (!a->stop) {
		uint64_t now = rk_clock_mono_ms();
		if (now < next && !a->kick) {
			uint64_t wait = next - now;
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += (time_t)(wait / 1000);
			ts.tv_nsec += (long)(wait % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&a->cv, &a->mu, &ts);
			continue;
		}
		a->kick = false;
		pthread_mutex_unlock(&a->mu);
		run_round(a);
		next = rk_clock_mono_ms() + a->cfg.round_ms;
		pthread_mutex_lock(&a->mu);
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

/* ------------------------------------------------------------- hooks */

rk_status_t rk_ms_start(rk_service_t *svc)
{
	rk_ms_agent_t *a = calloc(1, sizeof(*a));
	if (a == NULL)
		return RK_RESOURCE_EXHAUSTED;
	a->svc = svc;
	a->cfg = *rk_ms_config_pending();
	a->sealer = rk_service_sealer(svc);
	pthread_mutex_init(&a->mu, NULL);
	rk_ms_lease_table_init(&a->leases, a->cfg.lease_skew_ms);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&a->cv, &ca);
	pthread_condattr_destroy(&ca);
	the_agent = a;
	rk_service_set_data(svc, a);

	rk_ms_member_t self;
	memset(&self, 0, sizeof(self));
	if (a->cfg.data_dir_defaulted)
		rk_warn("membership.data_dir is not set: the node's identity "
		        "lives in %s",
		        a->cfg.data_dir);
	char *err = NULL;
	rk_status_t st = rk_ms_identity_next(a->cfg.data_dir, self.id,
	                                     &self.generation, &err);
	if (st != RK_OK) {
		rk_error("identity: %s", err ? err : rk_status_name(st));
		free(err);
		return st;
	}
	a->stored_generation = self.generation;
	self.role = RINGKV__V1__SERVICE_ID__SERVICE_MEMBERSHIP;
	self.weight = a->cfg.weight;
	snprintf(self.datacenter, sizeof(self.datacenter), "%s",
	         a->cfg.datacenter);
	snprintf(self.rack, sizeof(self.rack), "%s", a->cfg.rack);
	snprintf(self.name, sizeof(self.name), "%s", a->cfg.name);
	snprintf(self.version, sizeof(self.version), "%s", RINGKV_VERSION);
	self.state_since_ms = rk_clock_unix_ms();
	st = rk_ms_table_init(&a->table, &self, &a->cfg.timing,
	                      rk_clock_mono_ms());
	if (st != RK_OK)
		return st;
	a->table.on_change = rk_ms_events_publish;
	a->table.change_arg = a;
	char uuid[37];
	rk_ms_uuid_format(self.id, uuid);
	rk_info("node %s generation %llu (identity in %s)", uuid,
	        (unsigned long long)self.generation, a->cfg.data_dir);

	st = rk_ms_events_open(a);
	if (st != RK_OK)
		return st;
	if (a->cfg.health_check[0] != '\0') {
		rk_rpc_client_opts_t o = {.url = a->cfg.health_check,
		                          .sealer = a->sealer,
		                          .reconnect_min_ms = 20,
		                          .reconnect_max_ms = 1000,
		                          .caller = "membership"};
		if (rk_rpc_client_new(&o, &a->health) != RK_OK)
			return RK_INVALID_ARGUMENT;
	}
	rk_metrics_t *mx = rk_service_metrics(svc);
	a->rounds =
	    rk_metrics_counter(mx, "ringkv_membership_gossip_rounds_total",
	                       "Gossip rounds run.", NULL);
	a->refused = rk_metrics_counter(
	    mx, "ringkv_membership_gossip_refused_total",
	    "Gossip, join or probe requests refused as malformed.", NULL);
	static const char *const names[5] = {NULL, "alive", "suspect", "down",
	                                     "left"};
	for (int s = 1; s <= 4; s++) {
		char labels[32];
		snprintf(labels, sizeof(labels), "state=\"%s\"", names[s]);
		a->members[s] = rk_metrics_gauge(
		    mx, "ringkv_membership_members",
		    "Entries of this agent's member table, by state.", labels);
	}
	st = rk_ms_handlers_register(a, rk_service_rpc(svc));
	if (st != RK_OK)
		return st;
	if (pthread_create(&a->thread, NULL, gossip_main, a) != 0)
		return RK_INTERNAL;
	a->thread_started = true;
	return RK_OK;
}

void rk_ms_stop(rk_service_t *svc)
{
	rk_ms_agent_t *a = rk_service_data(svc);
	if (a == NULL)
		return;
	pthread_mutex_lock(&a->mu);
	a->stop = true;
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
	if (a->thread_started)
		pthread_join(a->thread, NULL);
	a->thread_started = false;
	for (size_t i = 0; i < RK_MS_MAX_PEERS; i++) {
		rk_rpc_client_free(a->peers[i].client);
		a->peers[i].client = NULL;
	}
	rk_rpc_client_free(a->health);
	a->health = NULL;
	rk_ms_events_close(a);
}

void rk_ms_cleanup(void)
{
	rk_ms_agent_t *a = the_agent;
	if (a == NULL)
		return;
	the_agent = NULL;
	if (a->thread_started) {
		pthread_mutex_lock(&a->mu);
		a->stop = true;
		pthread_cond_signal(&a->cv);
		pthread_mutex_unlock(&a->mu);
		pthread_join(a->thread, NULL);
	}
	for (size_t i = 0; i < RK_MS_MAX_PEERS; i++)
		rk_rpc_client_free(a->peers[i].client);
	rk_rpc_client_free(a->health);
	rk_ms_events_close(a);
	rk_ms_table_fini(&a->table);
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->cv);
	rk_ms_lease_table_fini(&a->leases);
	free(a);
}
