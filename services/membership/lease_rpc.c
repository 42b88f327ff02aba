/*
 * The lease methods of the Membership service: AcquireLease, RenewLease,
 * ReleaseLease (from an idgen instance to an agent), VoteLease (agent to
 * agent) and ListLeases. docs/membership.md, "Worker-id leases", says
 * what they guarantee; lease.c keeps one agent's promises.
 *
 * The agent that is asked is the proposer. Its electorate is every agent
 * (role SERVICE_MEMBERSHIP) in its table that has not left: alive,
 * suspect and down alike, so killing agents shrinks the votes, never the
 * majority needed. It asks all of them at once (its own vote directly,
 * the others by VoteLease with a short deadline) and grants only when
 * more than half promised. A failed acquire is undone with RELEASE votes
 * and retried on another worker id that no voter refused for conflict;
 * a failed renew tells the holder why: FAILED_PRECONDITION when at least
 * half of the agents hold the slot for another lease (stop at once),
 * UNAVAILABLE otherwise (too few answered, or a lone agent still holds a
 * stale promise: issue until the lease's validity runs out, and retry).
 *
 * The holder may issue for ttl - skew from when it sent its request; every
 * promise behind the grant lasts ttl + skew from when the vote arrived,
 * which is later. Acquire, renew and release wait on the network and run
 * on the worker pool; VoteLease and ListLeases only touch memory and run
 * inline.
 */
#include "agent_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/clock.h"
#include "core/log.h"

#define MAX_VOTERS 64 /* agents asked per round of votes */

/* One round of votes in flight. */
typedef struct ballot {
	pthread_mutex_t mu;   /* guards the counts and pending */
	pthread_cond_t cv;    /* signalled as answers arrive */
	size_t pending;       /* calls not yet answered */
	uint32_t granted;     /* promises */
	uint32_t refused;     /* refused for a conflicting lease */
	uint32_t unreachable; /* no answer or an error */
} ballot_t;

static void on_vote_done(rk_rpc_result_t *res, void *arg)
{
	ballot_t *b = arg;
	pthread_mutex_lock(&b->mu);
	if (res->code == RK_OK) {
		const Ringkv__V1__VoteLeaseResponse *r =
		    (const void *)res->response;
		if (r->has_granted && r->granted)
			b->granted++;
		else
			b->refused++;
	} else {
		b->unreachable++;
	}
	b->pending--;
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
	rk_rpc_result_free(res);
}

/* The URLs of the other agents of the electorate into URLS; returns how
 * many agents (ourselves included) vote. */
static uint32_t electorate(rk_ms_agent_t *a, char (*urls)[RK_MS_URL_MAX],
                           size_t *nurls)
{
	size_t n = 0;
	rk_ms_member_t *m = rk_ms_snapshot(a, &n);
	uint32_t voters = 1;
	*nurls = 0;
	for (size_t i = 1; m != NULL && i < n; i++) { /* m[0] is us */
		if (m[i].role != RINGKV__V1__SERVICE_ID__SERVICE_MEMBERSHIP ||
		    m[i].state == RK_MS_LEFT)
			continue;
		voters++;
		if (m[i].rpc_url[0] != '\0' && *nurls < MAX_VOTERS)
			snprintf(urls[(*nurls)++], RK_MS_URL_MAX, "%s",
			         m[i].rpc_url);
	}
	free(m);
	return voters;
}

static void lease_to_pb(const rk_ms_lease_t *l, Ringkv__V1__WorkerLease *pb,
                        uint8_t *holder)
{
	Ringkv__V1__WorkerLease init = RINGKV__V1__WORKER_LEASE__INIT;
	*pb = init;
	pb->has_datacenter_id = pb->has_worker_id = true;
	pb->datacenter_id = l->dc;
	pb->worker_id = l->worker;
	memcpy(holder, l->holder, RK_MS_LEASE_HOLDER);
	pb->has_holder_node_id = true;
	pb->holder_node_id.data = holder;
	pb->holder_node_id.len = RK_MS_LEASE_HOLDER;
	pb->has_holder_generation = true;
	pb->holder_generation = l->generation;
	pb->has_lease_id = true;
	pb->lease_id = l->lease_id;
	pb->has_ttl_ms = true;
	pb->ttl_ms = l->ttl_ms;
	if (l->expires_wall != 0) {
		pb->has_expires_at_ms = true;
		pb->expires_at_ms = l->expires_wall;
	}
}

/* Asks every agent of the electorate to vote KIND on L, ourselves
 * directly; fills B and returns the electorate's size. */
static uint32_t collect(rk_ms_agent_t *a, int kind, const rk_ms_lease_t *l,
                        uint32_t timeout_ms, ballot_t *b)
{
	static char urls[MAX_VOTERS][RK_MS_URL_MAX];
	static pthread_mutex_t urls_mu = PTHREAD_MUTEX_INITIALIZER;
	rk_rpc_client_t *c[MAX_VOTERS];
	memset(b, 0, sizeof(*b));
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cv, NULL);

	if (rk_ms_lease_vote(&a->leases, kind, l, rk_clock_mono_ms(),
	                     rk_clock_unix_ms(), NULL))
		b->granted++;
	else
		b->refused++;

	Ringkv__V1__WorkerLease pl;
	uint8_t holder[RK_MS_LEASE_HOLDER];
	lease_to_pb(l, &pl, holder);
	pl.has_expires_at_ms = false;
	Ringkv__V1__VoteLeaseRequest req = RINGKV__V1__VOTE_LEASE_REQUEST__INIT;
	req.has_kind = true;
	req.kind = (Ringkv__V1__LeaseVoteKind)kind;
	req.lease = &pl;
	req.has_proposer_node_id = true;
	req.proposer_node_id.data = a->table.m[0].id; /* never changes */
	req.proposer_node_id.len = RK_MS_ID_BYTES;

	pthread_mutex_lock(&urls_mu); /* one proposal at a time */
	size_t n = 0;
	uint32_t voters = electorate(a, urls, &n);
	for (size_t i = 0; i < n; i++) {
		rk_rpc_client_opts_t o = {.url = urls[i],
		                          .sealer = a->sealer,
		                          .max_frame_bytes = 65536,
		                          .reconnect_min_ms = 10,
		                          .reconnect_max_ms = 100,
		                          .caller = "membership-lease"};
		c[i] = NULL;
		if (rk_rpc_client_new(&o, &c[i]) != RK_OK) {
			b->unreachable++;
			continue;
		}
		pthread_mutex_lock(&b->mu);
		b->pending++;
		pthread_mutex_unlock(&b->mu);
		if (rk_rpc_call_async(c[i], &rk_ms_methods()->vote_lease,
		                      &req.base, timeout_ms, on_vote_done,
		                      b) != RK_OK) {
			pthread_mutex_lock(&b->mu);
			b->pending--;
			b->unreachable++;
			pthread_mutex_unlock(&b->mu);
		}
	}
	pthread_mutex_lock(&b->mu);
	while (b->pending > 0)
		pthread_cond_wait(&b->cv, &b->mu);
	pthread_mutex_unlock(&b->mu);
	for (size_t i = 0; i < n; i++)
		rk_rpc_client_free(c[i]);
	pthread_mutex_unlock(&urls_mu);
	pthread_mutex_destroy(&b->mu);
	pthread_cond_destroy(&b->cv);
	return voters;
}

/* Deadline of one vote: short enough that a renew with dead agents
 * still answers well inside the lease. */
static uint32_t vote_timeout(const rk_ms_agent_t *a, uint32_t ttl_ms)
{
	uint32_t t = ttl_ms / 5;
	if (t < 50)
		t = 50;
	if (t > a->cfg.probe_ms)
		t = (uint32_t)a->cfg.probe_ms;
	return t;
}

/* An agent with seeds that no seed or peer has answered yet knows only
 * itself: it would be a majority of one. It refuses to propose until it
 * has joined. */
static bool may_propose(rk_ms_agent_t *a, rk_rpc_call_t *call)
{
	pthread_mutex_lock(&a->mu);
	bool ok = a->joined || a->cfg.nseeds == 0;
	pthread_mutex_unlock(&a->mu);
	if (!ok)
		rk_rpc_reply_error(call, RK_UNAVAILABLE, 500,
		                   "lease: this agent has not joined its seeds "
		                   "yet; no electorate to ask");
	return ok;
}

static bool holder_ok(bool has, const ProtobufCBinaryData *h)
{
	return has && h->len == RK_MS_LEASE_HOLDER;
}

/* Fills and sends an Acquire/Renew answer (same fields). */
static void reply_grant(rk_ms_agent_t *a, rk_rpc_call_t *call, bool acquire,
                        const rk_ms_lease_t *l, uint32_t votes, uint32_t voters)
{
	rk_ms_lease_t shown = *l;
	rk_ms_lease_get(&a->leases, l->dc, l->worker, rk_clock_mono_ms(),
	                &shown);
	Ringkv__V1__WorkerLease pl;
	uint8_t holder[RK_MS_LEASE_HOLDER];
	lease_to_pb(&shown, &pl, holder);
	uint32_t valid = l->ttl_ms - (uint32_t)a->cfg.lease_skew_ms;
	if (acquire) {
		Ringkv__V1__AcquireLeaseResponse r =
		    RINGKV__V1__ACQUIRE_LEASE_RESPONSE__INIT;
		r.lease = &pl;
		r.has_valid_for_ms = r.has_votes = r.has_electorate = true;
		r.valid_for_ms = valid;
		r.votes = votes;
		r.electorate = voters;
		rk_rpc_reply(call, &r.base);
	} else {
		Ringkv__V1__RenewLeaseResponse r =
		    RINGKV__V1__RENEW_LEASE_RESPONSE__INIT;
		r.lease = &pl;
		r.has_valid_for_ms = r.has_votes = r.has_electorate = true;
		r.valid_for_ms = valid;
		r.votes = votes;
		r.electorate = voters;
		rk_rpc_reply(call, &r.base);
	}
}

/* The ttl asked for, or the default; 0 when out of range. */
static uint32_t pick_ttl(const rk_ms_agent_t *a, bool has, uint32_t want)
{
	uint64_t ttl = has && want != 0 ? want : a->cfg.lease_ttl_ms;
	if (ttl > RK_MS_LEASE_MAX_TTL || ttl <= 2 * a->cfg.lease_skew_ms)
		return 0;
	return (uint32_t)ttl;
}

static void on_acquire(rk_rpc_call_t *call, const ProtobufCMessage *msg,
                       void *arg)
{
	rk_ms_agent_t *a = arg;
	const Ringkv__V1__AcquireLeaseRequest *req = (const void *)msg;
	uint32_t ttl = pick_ttl(a, req->has_ttl_ms, req->ttl_ms);
	if (!req->has_datacenter_id || req->datacenter_id >= RK_MS_LEASE_DCS ||
	    !holder_ok(req->has_holder_node_id, &req->holder_node_id) ||
	    ttl == 0) {
		rk_rpc_reply_error(
		    call, RK_INVALID_ARGUMENT, 0,
		    "acquire lease: needs datacenter_id 0..31, a 16-byte "
		    "holder_node_id and a ttl_ms above twice the skew margin "
		    "(%llu ms) and at most %u ms",
		    (unsigned long long)a->cfg.lease_skew_ms,
		    RK_MS_LEASE_MAX_TTL);
		return;
	}
	if (!may_propose(a, call))
		return;
	rk_ms_lease_t l;
	memset(&l, 0, sizeof(l));
	l.dc = req->datacenter_id;
	memcpy(l.holder, req->holder_node_id.data, RK_MS_LEASE_HOLDER);
	l.generation = req->holder_generation;
	l.ttl_ms = ttl;
	uint32_t preferred =
	    req->has_preferred_worker_id ? req->preferred_worker_id : 32;
	uint32_t start = 0, skip = 0;
	if (getrandom(&start, sizeof(start), 0) != sizeof(start))
		start = (uint32_t)rk_clock_mono_ns();
	uint32_t voters = 0, best = 0;
	for (int tries = 0; tries < RK_MS_LEASE_WORKERS; tries++) {
		int w = rk_ms_lease_pick(&a->leases, l.dc, preferred, start,
		                         skip, rk_clock_mono_ms());
		if (w < 0)
			break;
		l.worker = (uint32_t)w;
		while (l.lease_id == 0)
			if (getrandom(&l.lease_id, sizeof(l.lease_id), 0) !=
			    sizeof(l.lease_id))
				l.lease_id = rk_clock_mono_ns();
		ballot_t b;
		voters = collect(a, RK_MS_VOTE_ACQUIRE, &l,
		                 vote_timeout(a, ttl), &b);
		if (b.granted * 2 > voters) {
			reply_grant(a, call, true, &l, b.granted, voters);
			return;
		}
		ballot_t undo;
		collect(a, RK_MS_VOTE_RELEASE, &l, vote_timeout(a, ttl), &undo);
		if (b.granted > best)
			best = b.granted;
		if ((b.granted + b.refused) * 2 <= voters) {
			rk_rpc_reply_error(
			    call, RK_UNAVAILABLE, 500,
			    "acquire lease: only %u of %u agents "
			    "answered; a majority is needed",
			    b.granted + b.refused, voters);
			return;
		}
		skip |= 1u << w;
		preferred = 32;
		l.lease_id = 0;
	}
	rk_rpc_reply_error(call, RK_RESOURCE_EXHAUSTED, 1000,
	                   "acquire lease: no worker id of datacenter %u is "
	                   "free (best: %u of %u votes)",
	                   l.dc, best, voters);
}

/* Reads the (dc, worker, lease_id, holder) a renew or release names. */
static bool named(bool hd, uint32_t dc, bool hw, uint32_t w, bool hl,
                  uint64_t id, bool hh, const ProtobufCBinaryData *h,
                  rk_ms_lease_t *l)
{
	if (!hd || dc >= RK_MS_LEASE_DCS || !hw || w >= RK_MS_LEASE_WORKERS ||
	    !hl || id == 0 || !holder_ok(hh, h))
		return false;
	memset(l, 0, sizeof(*l));
	l->dc = dc;
	l->worker = w;
	l->lease_id = id;
	memcpy(l->holder, h->data, RK_MS_LEASE_HOLDER);
	return true;
}

static void on_renew(rk_rpc_call_t *call, const ProtobufCMessage *msg,
                     void *arg)
{
	rk_ms_agent_t *a = arg;
	const Ringkv__V1__RenewLeaseRequest *req = (const void *)msg;
	rk_ms_lease_t l;
	if (!named(req->has_datacenter_id, req->datacenter_id,
	           req->has_worker_id, req->worker_id, req->has_lease_id,
	           req->lease_id, req->has_holder_node_id, &req->holder_node_id,
	           &l)) {
		rk_rpc_reply_error(call, RK_INVALID_ARGUMENT, 0,
		                   "renew lease: needs datacenter_id and "
		                   "worker_id 0..31, a lease_id and a 16-byte "
		                   "holder_node_id");
		return;
	}
	rk_ms_lease_t cur;
	bool known = rk_ms_lease_get(&a->leases, l.dc, l.worker,
	                             rk_clock_mono_ms(), &cur);
	if (known && cur.lease_id == l.lease_id) {
		l.generation = cur.generation;
		l.ttl_ms = cur.ttl_ms;
	}
	uint32_t ttl =
	    pick_ttl(a, req->has_ttl_ms || l.ttl_ms != 0,
	             req->has_ttl_ms && req->ttl_ms ? req->ttl_ms : l.ttl_ms);
	if (ttl == 0) {
		rk_rpc_reply_error(
		    call, RK_INVALID_ARGUMENT, 0,
		    "renew lease: ttl_ms must be above twice the "
		    "skew margin and at most %u ms",
		    RK_MS_LEASE_MAX_TTL);
		return;
	}
	l.ttl_ms = ttl;
	if (!may_propose(a, call))
		return;
	ballot_t b;
	uint32_t voters =
	    collect(a, RK_MS_VOTE_RENEW, &l, vote_timeout(a, ttl), &b);
	if (b.granted * 2 > voters)
		reply_grant(a, call, false, &l, b.granted, voters);
	else if (b.refused * 2 >= voters) /* a lone stale promise is not */
		rk_rpc_reply_error(call, RK_FAILED_PRECONDITION, 0,
		                   "renew lease: %u of %u agents promised "
		                   "(%u,%u) to another lease; stop issuing",
		                   b.refused, voters, l.dc, l.worker);
	else
		rk_rpc_reply_error(call, RK_UNAVAILABLE, 200,
		                   "renew lease: only %u of %u agents "
		                   "answered; a majority is needed",
		                   b.granted + b.refused, voters);
}

static void on_release(rk_rpc_call_t *call, const ProtobufCMessage *msg,
                       void *arg)
{
	rk_ms_agent_t *a = arg;
	const Ringkv__V1__ReleaseLeaseRequest *req = (const void *)msg;
	rk_ms_lease_t l;
	if (!named(req->has_datacenter_id, req->datacenter_id,
	           req->has_worker_id, req->worker_id, req->has_lease_id,
	           req->lease_id, req->has_holder_node_id, &req->holder_node_id,
	           &l)) {
		rk_rpc_reply_error(call, RK_INVALID_ARGUMENT, 0,
		                   "release lease: needs datacenter_id and "
		                   "worker_id 0..31, a lease_id and a 16-byte "
		                   "holder_node_id");
		return;
	}
	ballot_t b;
	collect(a, RK_MS_VOTE_RELEASE, &l,
	        vote_timeout(a, (uint32_t)a->cfg.lease_ttl_ms), &b);
	Ringkv__V1__ReleaseLeaseResponse r =
	    RINGKV__V1__RELEASE_LEASE_RESPONSE__INIT;
	rk_rpc_reply(call, &r.base);
}

static void on_vote(rk_rpc_call_t *call, const ProtobufCMessage *msg, void *arg)
{
	rk_ms_agent_t *a = arg;
	const Ringkv__V1__VoteLeaseRequest *req = (const void *)msg;
	const Ringkv__V1__WorkerLease *pl = req->lease;
	rk_ms_lease_t l;
	int kind = req->has_kind ? (int)req->kind : 0;
	if (kind < RK_MS_VOTE_ACQUIRE || kind > RK_MS_VOTE_RELEASE ||
	    pl == NULL ||
	    !named(pl->has_datacenter_id, pl->datacenter_id, pl->has_worker_id,
	           pl->worker_id, pl->has_lease_id, pl->lease_id,
	           pl->has_holder_node_id, &pl->holder_node_id, &l) ||
	    (kind != RK_MS_VOTE_RELEASE &&
	     (!pl->has_ttl_ms || pl->ttl_ms == 0 ||
	      pl->ttl_ms > RK_MS_LEASE_MAX_TTL))) {
		rk_rpc_reply_error(call, RK_INVALID_ARGUMENT, 0,
		                   "vote lease: needs a kind and a whole lease "
		                   "(ids 0..31, lease_id, 16-byte holder, "
		                   "ttl_ms 1..%u)",
		                   RK_MS_LEASE_MAX_TTL);
		return;
	}
	l.generation = pl->holder_generation;
	l.ttl_ms = pl->ttl_ms;
	rk_ms_lease_t conflict;
	memset(&conflict, 0, sizeof(conflict));
	bool ok = rk_ms_lease_vote(&a->leases, kind, &l, rk_clock_mono_ms(),
	                           rk_clock_unix_ms(), &conflict);
	Ringkv__V1__VoteLeaseResponse r = RINGKV__V1__VOTE_LEASE_RESPONSE__INIT;
	r.has_granted = true;
	r.granted = ok;
	Ringkv__V1__WorkerLease cpb;
	uint8_t holder[RK_MS_LEASE_HOLDER];
	if (!ok && conflict.lease_id != 0) {
		lease_to_pb(&conflict, &cpb, holder);
		r.conflicting = &cpb;
	}
	r.has_voter_node_id = true;
	r.voter_node_id.data = a->table.m[0].id; /* never changes */
	r.voter_node_id.len = RK_MS_ID_BYTES;
	rk_rpc_reply(call, &r.base);
}

static void on_list(rk_rpc_call_t *call, const ProtobufCMessage *msg, void *arg)
{
	rk_ms_agent_t *a = arg;
	const Ringkv__V1__ListLeasesRequest *req = (const void *)msg;
	uint32_t dc = req->has_datacenter_id ? req->datacenter_id : 32;
	if (req->has_datacenter_id && dc >= RK_MS_LEASE_DCS) {
		rk_rpc_reply_error(call, RK_INVALID_ARGUMENT, 0,
		                   "list leases: datacenter_id must be 0..31");
		return;
	}
	enum { CAP = RK_MS_LEASE_DCS * RK_MS_LEASE_WORKERS };
	rk_ms_lease_t *ls = malloc(CAP * sizeof(*ls));
	size_t n = ls == NULL ? 0
	                      : rk_ms_lease_list(&a->leases, dc,
	                                         rk_clock_mono_ms(), ls, CAP);
	size_t k = n ? n : 1;
	Ringkv__V1__WorkerLease *pb = rk_rpc_call_alloc(call, k * sizeof(*pb));
	Ringkv__V1__WorkerLease **pp = rk_rpc_call_alloc(call, k * sizeof(*pp));
	uint8_t *holders = rk_rpc_call_alloc(call, k * RK_MS_LEASE_HOLDER);
	if (ls == NULL || pb == NULL || pp == NULL || holders == NULL) {
		free(ls);
		rk_rpc_reply_error(call, RK_RESOURCE_EXHAUSTED, 100,
		                   "list leases: out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		lease_to_pb(&ls[i], &pb[i], holders + i * RK_MS_LEASE_HOLDER);
		pp[i] = &pb[i];
	}
	Ringkv__V1__ListLeasesResponse r =
	    RINGKV__V1__LIST_LEASES_RESPONSE__INIT;
	r.n_leases = n;
	r.leases = pp;
	rk_rpc_reply(call, &r.base);
	free(ls);
}

rk_status_t rk_ms_lease_register(rk_ms_agent_t *a, rk_rpc_server_t *srv)
{
	const rk_ms_methods_t *m = rk_ms_methods();
	struct {
		const rk_rpc_method_t *method;
		rk_rpc_handler_fn fn;
		int flags;
	} routes[] = {
	    {&m->acquire_lease, on_acquire, 0},
	    {&m->renew_lease, on_renew, 0},
	    {&m->release_lease, on_release, 0},
	    {&m->vote_lease, on_vote, RK_RPC_INLINE},
	    {&m->list_leases, on_list, RK_RPC_INLINE},
	};
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		rk_status_t st = rk_rpc_server_handle(
		    srv, routes[i].method, routes[i].fn, routes[i].flags, a);
		if (st != RK_OK)
			return st;
	}
	return RK_OK;
}
