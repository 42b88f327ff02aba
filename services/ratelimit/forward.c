/*
 * Forwarding of checks to their owner; see forward.h.
 *
 * The route of a check is computed from the request alone (its domain and
 * descriptors), without the rules: every descriptor of the request is
 * placed on the ring, matched by rules or not, and the check goes to an
 * owner only when they all agree. Descriptors that match no rule are
 * harmless either way (nothing is counted for them).
 *
 * Reachability. nng dials in the background and a call to a peer that is
 * down waits for its whole deadline before it says UNAVAILABLE. A killed
 * owner would make every check for its keys wait that long, so a client
 * whose connection has been down for longer than DOWN_GRACE_MS (longer
 * than its reconnect period: nng has tried again and failed) counts as
 * unreachable at once. A new owner, or one coming back, is tried for the
 * whole deadline: its first dial has not had a chance yet.
 */
#include "forward.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"

#define MAX_PEERS     256
#define KEY_MAX       16384
#define DOWN_GRACE_MS 1500

/* One owner we forward to. */
typedef struct peer {
	char url[RK_CLUSTER_URL_MAX]; /* its RPC endpoint */
	rk_rpc_client_t *client;      /* to it */
	_Atomic uint64_t up_ms;       /* mono ms it was last seen connected,
	                                 or made */
} peer_t;

struct rk_rl_fwd {
	rk_cluster_t *cluster;       /* borrowed: the ring */
	rk_sealer_t *sealer;         /* borrowed: for the clients */
	uint32_t max_timeout_ms;     /* cap of one forwarded call */
	pthread_mutex_t mu;          /* guards npeers and adding peers */
	peer_t *peers;               /* MAX_PEERS slots */
	_Atomic size_t npeers;       /* slots in use (published after filled) */
	atomic_uint_fast64_t sent;   /* forwarded calls */
	atomic_uint_fast64_t failed; /* of which failed over */
	rk_counter_t *outcome[RK_RL_FWD_OUTCOMES]; /* checks forwarded, by
	                                              how they ended */
	rk_counter_t *split_batches;  /* CheckBatch cut per owner */
	rk_counter_t *split_checks;   /* Check of several owners, cut */
	rk_counter_t *split_parts[2]; /* calls those sent: [batch?] */
	rk_histogram_t *latency[2];   /* forwarded calls: [CheckBatch?] */
};

rk_status_t rk_rl_fwd_new(rk_cluster_t *cluster, rk_sealer_t *sealer,
                          uint32_t max_timeout_ms, rk_rl_fwd_t **out)
{
	rk_rl_fwd_t *f = calloc(1, sizeof(*f));
	if (f == NULL)
		return RK_RESOURCE_EXHAUSTED;
	f->peers = calloc(MAX_PEERS, sizeof(*f->peers));
	if (f->peers == NULL) {
		free(f);
		return RK_RESOURCE_EXHAUSTED;
	}
	f->cluster = cluster;
	f->sealer = sealer;
	f->max_timeout_ms = max_timeout_ms ? max_timeout_ms : 1000;
	pthread_mutex_init(&f->mu, NULL);
	*out = f;
	return RK_OK;
}

void rk_rl_fwd_free(rk_rl_fwd_t *f)
{
	if (f == NULL)
		return;
	size_t n = atomic_load(&f->npeers);
	for (size_t i = 0; i < n; i++)
		rk_rpc_client_free(f->peers[i].client);
	pthread_mutex_destroy(&f->mu);
	free(f->peers);
	free(f);
}

static size_t put(uint8_t *buf, size_t n, const char *s)
{
	size_t len = strlen(s) + 1;
	memcpy(buf + n, s, len);
	return n + len;
}

rk_rl_owner_t rk_rl_fwd_owner(void *arg, const void *key, size_t len)
{
	rk_rl_fwd_t *f = arg;
	rk_cluster_owner_t o;
	if (rk_cluster_owner(f->cluster, key, len, &o) != RK_OK || o.self)
		return RK_RL_OWNER_LOCAL;
	return RK_RL_OWNER_UNREACHABLE;
}

int rk_rl_fwd_owners(rk_rl_fwd_t *f,
                     const Ringkv__V1__RateLimitCheckRequest *req, int *owner,
                     char (*urls)[RK_CLUSTER_URL_MAX])
{
	if (req->forwarded || req->domain == NULL || req->domain[0] == '\0' ||
	    req->n_descriptors == 0 ||
	    req->n_descriptors > RK_RL_FWD_MAX_DESCRIPTORS ||
	    strlen(req->domain) > 512)
		return -1;
	uint8_t key[KEY_MAX];
	int ng = 0;
	for (size_t i = 0; i < req->n_descriptors; i++) {
		const Ringkv__V1__RateLimitDescriptor *d = req->descriptors[i];
		if (d->n_entries == 0)
			return -1;
		size_t kn = put(key, 0, req->domain);
		for (size_t k = 0; k < d->n_entries; k++) {
			const char *ek = d->entries[k]->key;
			const char *ev = d->entries[k]->value;
			if (ek == NULL || ek[0] == '\0')
				return -1;
			if (ev == NULL)
				ev = "";
			if (kn + strlen(ek) + strlen(ev) + 2 > sizeof(key))
				return -1;
			kn = put(key, kn, ek);
			kn = put(key, kn, ev);
		}
		rk_cluster_owner_t o;
		owner[i] = -1;
		if (rk_cluster_owner(f->cluster, key, kn, &o) != RK_OK ||
		    o.self || o.url[0] == '\0')
			continue;
		int g = 0;
		while (g < ng && strcmp(urls[g], o.url) != 0)
			g++;
		if (g == ng)
			memcpy(urls[ng++], o.url, sizeof(o.url));
		owner[i] = g;
	}
	return ng;
}

bool rk_rl_fwd_route(rk_rl_fwd_t *f,
                     const Ringkv__V1__RateLimitCheckRequest *req, char *url,
                     size_t len)
{
	int owner[RK_RL_FWD_MAX_DESCRIPTORS];
	char urls[RK_RL_FWD_MAX_DESCRIPTORS][RK_CLUSTER_URL_MAX];
	if (rk_rl_fwd_owners(f, req, owner, urls) != 1)
		return false;
	for (size_t i = 0; i < req->n_descriptors; i++)
		if (owner[i] != 0)
			return false; /* owners mixed: see split.h */
	if (strlen(urls[0]) >= len)
		return false;
	memcpy(url, urls[0], strlen(urls[0]) + 1);
	return true;
}

/* The peer for URL, made on first use; NULL when the table is full or
 * out of memory. */
static peer_t *peer_get(rk_rl_fwd_t *f, const char *url)
{
	size_t n = atomic_load(&f->npeers);
	for (size_t i = 0; i < n; i++)
		if (strcmp(f->peers[i].url, url) == 0)
			return &f->peers[i];
	pthread_mutex_lock(&f->mu);
	peer_t *p = NULL;
	n = atomic_load(&f->npeers);
	for (size_t i = 0; i < n && p == NULL; i++)
		if (strcmp(f->peers[i].url, url) == 0)
			p = &f->peers[i];
	if (p == NULL && n < MAX_PEERS && strlen(url) < RK_CLUSTER_URL_MAX) {
		peer_t *q = &f->peers[n];
		memcpy(q->url, url, strlen(url) + 1);
		rk_rpc_client_opts_t o = {.url = q->url,
		                          .sealer = f->sealer,
		                          .reconnect_min_ms = 50,
		                          .reconnect_max_ms = 1000,
		                          .caller = "ratelimit-forward"};
		if (rk_rpc_client_new(&o, &q->client) == RK_OK) {
			atomic_store(&q->up_ms, rk_clock_mono_ms());
			atomic_store(&f->npeers, n + 1);
			p = q;
		} else {
			rk_warn("ratelimit: cannot make a client to owner %s",
			        url);
		}
	}
	pthread_mutex_unlock(&f->mu);
	return p;
}

bool rk_rl_fwd_unreachable(rk_status_t code)
{
	return code == RK_UNAVAILABLE || code == RK_DEADLINE_EXCEEDED ||
	       code == RK_CANCELLED || code == RK_UNAUTHENTICATED ||
	       code == RK_RESOURCE_EXHAUSTED || code == RK_INTERNAL;
}

/* Observes one forwarded call of METHOD that started at T0 (mono ns). */
static void observe(rk_rl_fwd_t *f, const rk_rpc_method_t *method, uint64_t t0)
{
	bool batch = method != NULL && method->desc != NULL &&
	             strcmp(method->desc->name, "CheckBatch") == 0;
	if (f->latency[batch] != NULL)
		rk_histogram_observe(f->latency[batch],
		                     (double)(rk_clock_mono_ns() - t0) / 1e9);
}

rk_status_t rk_rl_fwd_call(rk_rl_fwd_t *f, const char *url,
                           const rk_rpc_method_t *method,
                           const ProtobufCMessage *request,
                           uint64_t remaining_ms, rk_rpc_result_t *res)
{
	uint64_t t0 = rk_clock_mono_ns();
	atomic_fetch_add(&f->sent, 1);
	memset(res, 0, sizeof(*res));
	peer_t *p = peer_get(f, url);
	uint64_t now = rk_clock_mono_ms();
	if (p != NULL && rk_rpc_client_connected(p->client) > 0)
		atomic_store(&p->up_ms, now);
	if (p == NULL || now - atomic_load(&p->up_ms) > DOWN_GRACE_MS) {
		res->code = RK_UNAVAILABLE;
		snprintf(res->message, sizeof(res->message),
		         "owner %s not connected", url);
		atomic_fetch_add(&f->failed, 1);
		observe(f, method, t0);
		return res->code;
	}
	uint64_t t =
	    remaining_ms < f->max_timeout_ms ? remaining_ms : f->max_timeout_ms;
	if (t == 0)
		t = 1;
	rk_status_t st =
	    rk_rpc_call(p->client, method, request, (uint32_t)t, res);
	if (st == RK_OK || !rk_rl_fwd_unreachable(st))
		atomic_store(&p->up_ms, rk_clock_mono_ms());
	else
		atomic_fetch_add(&f->failed, 1);
	observe(f, method, t0);
	return st;
}

uint64_t rk_rl_fwd_sent(rk_rl_fwd_t *f)
{
	return atomic_load(&f->sent);
}

uint64_t rk_rl_fwd_failed(rk_rl_fwd_t *f)
{
	return atomic_load(&f->failed);
}

/* --- metrics ---------------------------------------------------------- */

void rk_rl_fwd_set_metrics(rk_rl_fwd_t *f, rk_metrics_t *m)
{
	static const char *const names[RK_RL_FWD_OUTCOMES] = {
	    "answered", "failed_open", "failed_closed", "error"};
	if (m == NULL)
		return;
	for (int i = 0; i < RK_RL_FWD_OUTCOMES; i++) {
		char labels[64];
		snprintf(labels, sizeof(labels), "outcome=\"%s\"", names[i]);
		f->outcome[i] = rk_metrics_counter(
		    m, "ringkv_ratelimit_forwarded_total",
		    "Checks forwarded to their owner (and parts of checks "
		    "split per owner), by how they ended.",
		    labels);
	}
	f->split_batches = rk_metrics_counter(
	    m, "ringkv_ratelimit_split_total",
	    "Requests split per owner: a CheckBatch into one CheckBatch per "
	    "owner, a Check of several owners into one Check per owner.",
	    "request=\"CheckBatch\"");
	f->split_checks = rk_metrics_counter(m, "ringkv_ratelimit_split_total",
	                                     NULL, "request=\"Check\"");
	f->split_parts[0] =
	    rk_metrics_counter(m, "ringkv_ratelimit_split_parts_total",
	                       "Calls to other owners made for split requests.",
	                       "request=\"Check\"");
	f->split_parts[1] =
	    rk_metrics_counter(m, "ringkv_ratelimit_split_parts_total", NULL,
	                       "request=\"CheckBatch\"");
	f->latency[0] = rk_metrics_histogram(
	    m, "ringkv_ratelimit_forward_seconds",
	    "Latency of calls forwarded to an owner, failed ones included.",
	    "method=\"Check\"", rk_metrics_latency_bounds,
	    rk_metrics_latency_bounds_len);
	f->latency[1] = rk_metrics_histogram(
	    m, "ringkv_ratelimit_forward_seconds", NULL,
	    "method=\"CheckBatch\"", rk_metrics_latency_bounds,
	    rk_metrics_latency_bounds_len);
}

void rk_rl_fwd_count(rk_rl_fwd_t *f, rk_rl_fwd_outcome_t o, uint64_t n)
{
	if (f != NULL && (unsigned)o < RK_RL_FWD_OUTCOMES &&
	    f->outcome[o] != NULL && n > 0)
		rk_counter_add(f->outcome[o], n);
}

rk_rl_fwd_outcome_t rk_rl_fwd_failover_outcome(rk_status_t st, int outcome)
{
	if (st != RK_OK)
		return RK_RL_FWD_ERROR;
	return outcome ==
	               RINGKV__V1__RATE_LIMIT_OUTCOME__RATE_LIMIT_FAILED_CLOSED
	           ? RK_RL_FWD_FAILED_CLOSED
	           : RK_RL_FWD_FAILED_OPEN;
}

void rk_rl_fwd_count_split(rk_rl_fwd_t *f, bool batch, uint64_t parts)
{
	if (f == NULL)
		return;
	rk_counter_t *c = batch ? f->split_batches : f->split_checks;
	if (c != NULL)
		rk_counter_add(c, 1);
	if (f->split_parts[batch] != NULL)
		rk_counter_add(f->split_parts[batch], parts);
}
