/*
 * The lease worker-id source; see lease_source.h and docs/idgen.md.
 *
 * Time: every grant says how long the holder may issue (valid_for_ms,
 * already shortened by the agents' skew margin), counted from when the
 * request was sent. This file stamps each request with the monotonic
 * clock before sending it and keeps `valid_until = sent + valid_for`;
 * `held` compares with the monotonic clock only, so a wall-clock step can
 * never stretch a lease. A renewal that arrives late can only shorten
 * nothing: validity only ever grows from a newer send time.
 *
 * Renewal: a thread renews every ttl/3, and after a failed try again
 * every ttl/10, going round the agent URLs. UNAVAILABLE (no majority)
 * just retries; the generator keeps issuing while valid_until is ahead
 * and stops on its own when it passes. FAILED_PRECONDITION (the agents
 * promised the slot to another lease) ends the lease at once.
 */
#include "lease_source.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/clock.h"
#include "core/log.h"
#include "ringkv/v1/membership.pb-c.h"
#include "rpc/client.h"
#include "rpc/method.h"

struct rk_idgen_lease {
	rk_idgen_config_t cfg; /* datacenter, agents, timings */
	rk_rpc_client_t *c[RK_IDGEN_MAX_AGENTS]; /* one per agent URL */
	uint32_t cur; /* index of the agent asked next */
	rk_rpc_method_t acquire, renew, release; /* method handles */
	uint8_t holder[16];   /* our UUID, fresh per process */
	uint64_t generation;  /* wall ms at creation */
	pthread_mutex_t mu;   /* guards what follows */
	pthread_cond_t cv;    /* wakes the renewer (monotonic) */
	bool have;            /* a lease was granted */
	bool lost;            /* the agents gave it to another */
	bool stopping;        /* stop was called */
	bool thread_started;  /* thread is joinable */
	pthread_t thread;     /* the renewer */
	uint32_t dc, worker;  /* the lease's ids */
	uint64_t lease_id;    /* the lease's id */
	uint64_t valid_until; /* monotonic ms we may issue until */
	uint64_t last_ok;     /* monotonic ms of the last grant */
};

static rk_status_t call_agent(rk_idgen_lease_t *l, uint32_t i,
                              const rk_rpc_method_t *m,
                              const ProtobufCMessage *req, uint32_t timeout,
                              rk_rpc_result_t *res)
{
	return rk_rpc_call(l->c[i % l->cfg.nagents], m, req, timeout, res);
}

static void on_grant(rk_idgen_lease_t *l, uint64_t sent, uint32_t valid_for)
{
	uint64_t until = sent + valid_for;
	if (until > l->valid_until)
		l->valid_until = until;
	l->last_ok = sent;
}

static rk_status_t lease_acquire(void *impl, rk_idgen_identity_t *out,
                                 char *why, size_t len);

static void *renewer(void *arg)
{
	rk_idgen_lease_t *l = arg;
	uint32_t ttl = l->cfg.lease_ttl_ms;
	pthread_mutex_lock(&l->mu);
	bool failing = false;
	while (!l->stopping && !l->lost) {
		uint64_t wait = failing ? ttl / 10 : ttl / 3;
		uint64_t at =
		    (failing ? rk_clock_mono_ms() : l->last_ok) + wait;
		while (!l->stopping && rk_clock_mono_ms() < at) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			uint64_t left = at - rk_clock_mono_ms();
			ts.tv_sec += (time_t)(left / 1000);
			ts.tv_nsec += (long)(left % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&l->cv, &l->mu, &ts);
		}
		if (l->stopping)
			break;
		Ringkv__V1__RenewLeaseRequest req =
		    RINGKV__V1__RENEW_LEASE_REQUEST__INIT;
		req.has_datacenter_id = req.has_worker_id = true;
		req.datacenter_id = l->dc;
		req.worker_id = l->worker;
		req.has_lease_id = true;
		req.lease_id = l->lease_id;
		req.has_holder_node_id = true;
		req.holder_node_id.data = l->holder;
		req.holder_node_id.len = sizeof(l->holder);
		req.has_ttl_ms = true;
		req.ttl_ms = ttl;
		uint32_t who = l->cur;
		pthread_mutex_unlock(&l->mu);
		rk_rpc_result_t res;
		uint64_t sent = rk_clock_mono_ms();
		rk_status_t st =
		    call_agent(l, who, &l->renew, &req.base, ttl / 2, &res);
		pthread_mutex_lock(&l->mu);
		const Ringkv__V1__RenewLeaseResponse *r =
		    (const void *)res.response;
		if (st == RK_OK && r->has_valid_for_ms) {
			on_grant(l, sent, r->valid_for_ms);
			if (failing)
				rk_info("lease (%u,%u) renewed again (%u of %u "
				        "votes)",
				        l->dc, l->worker, r->votes,
				        r->electorate);
			failing = false;
		} else if (st == RK_FAILED_PRECONDITION) {
			l->lost = true;
			l->valid_until = 0;
			rk_error(
			    "lease (%u,%u) lost: %s; not issuing IDs until "
			    "restarted",
			    l->dc, l->worker, res.message);
		} else {
			if (!failing)
				rk_warn("lease (%u,%u) not renewed: %s (%s); "
				        "issuing for %lld ms more at most",
				        l->dc, l->worker, rk_status_name(st),
				        res.message,
				        (long long)l->valid_until -
				            (long long)rk_clock_mono_ms());
			failing = true;
			l->cur = who + 1;
		}
		rk_rpc_result_clear(&res);
	}
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

static rk_status_t lease_acquire(void *impl, rk_idgen_identity_t *out,
                                 char *why, size_t len)
{
	rk_idgen_lease_t *l = impl;
	uint64_t deadline = rk_clock_mono_ms() + l->cfg.lease_acquire_ms;
	rk_status_t st = RK_UNAVAILABLE;
	char last[640] = "no agent answered";
	for (uint32_t i = 0;; i++) {
		Ringkv__V1__AcquireLeaseRequest req =
		    RINGKV__V1__ACQUIRE_LEASE_REQUEST__INIT;
		req.has_datacenter_id = true;
		req.datacenter_id = l->cfg.datacenter_id;
		req.has_holder_node_id = true;
		req.holder_node_id.data = l->holder;
		req.holder_node_id.len = sizeof(l->holder);
		req.has_holder_generation = true;
		req.holder_generation = l->generation;
		req.has_ttl_ms = true;
		req.ttl_ms = l->cfg.lease_ttl_ms;
		rk_rpc_result_t res;
		uint64_t sent = rk_clock_mono_ms();
		st = call_agent(l, i, &l->acquire, &req.base,
		                l->cfg.lease_ttl_ms, &res);
		const Ringkv__V1__AcquireLeaseResponse *r =
		    (const void *)res.response;
		if (st == RK_OK &&
		    (r->lease == NULL || !r->lease->has_worker_id ||
		     r->lease->worker_id > 31 || !r->has_valid_for_ms)) {
			st = RK_INTERNAL;
			snprintf(res.message, sizeof(res.message),
			         "agent answered without a whole lease");
		}
		if (st == RK_OK) {
			pthread_mutex_lock(&l->mu);
			l->have = true;
			l->dc = l->cfg.datacenter_id;
			l->worker = r->lease->worker_id;
			l->lease_id = r->lease->lease_id;
			l->cur = i % l->cfg.nagents;
			on_grant(l, sent, r->valid_for_ms);
			out->datacenter = l->dc;
			out->worker = l->worker;
			rk_info("leased worker id (%u,%u) from %s: %u of %u "
			        "votes, valid %u ms",
			        l->dc, l->worker,
			        l->cfg.agents[i % l->cfg.nagents], r->votes,
			        r->electorate, r->valid_for_ms);
			if (pthread_create(&l->thread, NULL, renewer, l) == 0)
				l->thread_started = true;
			pthread_mutex_unlock(&l->mu);
			rk_rpc_result_clear(&res);
			if (!l->thread_started) {
				snprintf(why, len, "lease: no renew thread");
				return RK_RESOURCE_EXHAUSTED;
			}
			return RK_OK;
		}
		snprintf(last, sizeof(last), "%s: %s: %s",
		         l->cfg.agents[i % l->cfg.nagents], rk_status_name(st),
		         res.message);
		rk_rpc_result_clear(&res);
		if (st == RK_INVALID_ARGUMENT || rk_clock_mono_ms() >= deadline)
			break;
		struct timespec ts = {0, 200 * 1000000L};
		nanosleep(&ts, NULL); /* back-off between tries, not a sync */
	}
	snprintf(why, len,
	         "could not lease a worker id of datacenter %u within %u ms "
	         "(last answer: %s)",
	         l->cfg.datacenter_id, l->cfg.lease_acquire_ms, last);
	return st;
}

static bool lease_held(void *impl, uint64_t *expires_at_ms)
{
	rk_idgen_lease_t *l = impl;
	pthread_mutex_lock(&l->mu);
	uint64_t now = rk_clock_mono_ms();
	bool held = l->have && !l->lost && !l->stopping && now < l->valid_until;
	*expires_at_ms = held ? rk_clock_unix_ms() + (l->valid_until - now) : 0;
	pthread_mutex_unlock(&l->mu);
	return held;
}

static void lease_release(void *impl)
{
	rk_idgen_lease_stop(impl);
}

static const rk_idgen_worker_ops_t lease_ops = {lease_acquire, lease_held,
                                                lease_release};

rk_status_t rk_idgen_lease_new(const rk_idgen_config_t *cfg,
                               rk_sealer_t *sealer, rk_idgen_lease_t **out)
{
	if (cfg->nagents == 0)
		return RK_INVALID_ARGUMENT;
	rk_idgen_lease_t *l = calloc(1, sizeof(*l));
	if (l == NULL)
		return RK_RESOURCE_EXHAUSTED;
	l->cfg = *cfg;
	const ProtobufCServiceDescriptor *s =
	    &ringkv__v1__membership__descriptor;
	const ProtobufCEnumDescriptor *e =
	    &ringkv__v1__membership_method__descriptor;
	rk_status_t st =
	    rk_rpc_method_resolve(s, e, "AcquireLease", &l->acquire);
	if (st == RK_OK)
		st = rk_rpc_method_resolve(s, e, "RenewLease", &l->renew);
	if (st == RK_OK)
		st = rk_rpc_method_resolve(s, e, "ReleaseLease", &l->release);
	for (uint32_t i = 0; st == RK_OK && i < cfg->nagents; i++) {
		rk_rpc_client_opts_t o = {.url = cfg->agents[i],
		                          .sealer = sealer,
		                          .reconnect_min_ms = 20,
		                          .reconnect_max_ms = 500,
		                          .caller = "idgen-lease"};
		st = rk_rpc_client_new(&o, &l->c[i]);
	}
	if (st == RK_OK && getrandom(l->holder, sizeof(l->holder), 0) !=
	                       (ssize_t)sizeof(l->holder))
		st = RK_INTERNAL;
	if (st != RK_OK) {
		for (uint32_t i = 0; i < cfg->nagents; i++)
			rk_rpc_client_free(l->c[i]);
		free(l);
		return st;
	}
	l->holder[6] = (uint8_t)((l->holder[6] & 0x0f) | 0x40); /* UUID v4 */
	l->holder[8] = (uint8_t)((l->holder[8] & 0x3f) | 0x80);
	l->generation = rk_clock_unix_ms();
	pthread_mutex_init(&l->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cv, &ca);
	pthread_condattr_destroy(&ca);
	*out = l;
	return RK_OK;
}

void rk_idgen_lease_worker(rk_idgen_lease_t *l, rk_idgen_worker_t *out)
{
	memset(out, 0, sizeof(*out));
	out->kind = RK_IDGEN_WORKER_LEASE;
	out->ops = &lease_ops;
	out->impl = l;
}

void rk_idgen_lease_stop(rk_idgen_lease_t *l)
{
	pthread_mutex_lock(&l->mu);
	if (l->stopping) {
		pthread_mutex_unlock(&l->mu);
		return;
	}
	l->stopping = true;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
	if (l->thread_started)
		pthread_join(l->thread, NULL);
	l->thread_started = false;
	if (!l->have || l->lost)
		return;
	Ringkv__V1__ReleaseLeaseRequest req =
	    RINGKV__V1__RELEASE_LEASE_REQUEST__INIT;
	req.has_datacenter_id = req.has_worker_id = true;
	req.datacenter_id = l->dc;
	req.worker_id = l->worker;
	req.has_lease_id = true;
	req.lease_id = l->lease_id;
	req.has_holder_node_id = true;
	req.holder_node_id.data = l->holder;
	req.holder_node_id.len = sizeof(l->holder);
	for (uint32_t i = 0; i < l->cfg.nagents; i++) {
		rk_rpc_result_t res;
		rk_status_t st = call_agent(l, l->cur + i, &l->release,
		                            &req.base, 1000, &res);
		rk_rpc_result_clear(&res);
		if (st == RK_OK) {
			rk_info("released worker id (%u,%u)", l->dc, l->worker);
			return;
		}
	}
	rk_warn("could not release worker id (%u,%u); it frees itself when "
	        "the lease expires",
	        l->dc, l->worker);
}

void rk_idgen_lease_free(rk_idgen_lease_t *l)
{
	if (l == NULL)
		return;
	rk_idgen_lease_stop(l);
	for (uint32_t i = 0; i < l->cfg.nagents; i++)
		rk_rpc_client_free(l->c[i]);
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->cv);
	free(l);
}
