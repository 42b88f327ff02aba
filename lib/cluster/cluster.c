/*
 * Cluster view; see cluster.h and docs/cluster.md.
 *
 * Shape. One background thread does every network call: Join (until
 * accepted), Subscribe (to learn the events URL), GetRing, and the wait
 * between fetches. Lookups never call out: they read the current
 * snapshot (a ring plus the RPC URL of each of its nodes) under a
 * read-write lock that the thread takes for writing only to swap one
 * pointer. A snapshot is immutable once published.
 *
 * Events versus polling. The agent publishes every table change on its
 * pub0 socket. We do not apply events one by one to a local table: an
 * event only wakes the thread, which refetches the whole ring with an
 * authenticated RPC. So a lost event costs at most one poll period (the
 * fallback refetch every poll_ms), a burst of events costs one fetch per
 * wake-up, and a forged event (the sub socket reads unauthenticated
 * bytes) can only cause an extra fetch, never a wrong ring. The ring of
 * a role is small (tens of members), so refetching it whole is cheap.
 *
 * Waiting. The thread waits in slices of SLICE_MS on the sub socket
 * (poll() on its receive descriptor) (or
 * on its condition variable when no events socket is open), checking
 * between slices whether it was asked to stop or to refresh; stop and
 * refresh requests are therefore served within SLICE_MS.
 */
#include "cluster/cluster.h"

#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/log.h"
#include "ring/members.h"
#include "ringkv/v1/membership.pb-c.h"
#include "rpc/client.h"
#include "rpc/method.h"

#define SLICE_MS 50
#define TEXT_MAX 128

/* An immutable view: the ring and each node's RPC URL (by node index). */
typedef struct snap {
	rk_ring_t *ring;                  /* the watched role's ring */
	char (*urls)[RK_CLUSTER_URL_MAX]; /* URL of node i; "" none */
} snap_t;

struct rk_cluster {
	char agent_url[RK_CLUSTER_URL_MAX]; /* the local agent */
	char self_url[RK_CLUSTER_URL_MAX];  /* our RPC endpoint */
	char name[TEXT_MAX];                /* for status output */
	char dc[TEXT_MAX];                  /* our datacenter */
	char rack[TEXT_MAX];                /* our rack */
	uint8_t id[RK_RING_ID_BYTES];       /* our UUID */
	uint64_t generation;                /* our generation */
	int role;                           /* we register as; 0: observer */
	int watch_role;                     /* whose ring we keep */
	uint32_t weight;                    /* our ring weight */
	uint32_t poll_ms;                   /* fallback refetch period */
	uint32_t timeout_ms;                /* per agent call */
	bool (*self_url_fn)(void *, char *, size_t);    /* when self_url "" */
	void *self_url_arg;                             /* for self_url_fn */
	rk_rpc_client_t *agent;                         /* to the agent */
	rk_rpc_method_t m_join, m_leave, m_ring, m_sub; /* methods */
	pthread_t thread;            /* the background thread */
	bool thread_on;              /* it was started */
	pthread_mutex_t mu;          /* guards the fields below */
	pthread_cond_t cv;           /* wakes the thread, waiters */
	bool stopping;               /* the thread must end */
	uint64_t refresh_asked;      /* refresh requests so far */
	uint64_t refresh_done;       /* requests served by a fetch */
	pthread_rwlock_t lock;       /* guards cur */
	snap_t *cur;                 /* the view; NULL: empty */
	atomic_bool registered;      /* our Join was accepted */
	atomic_uint_fast64_t builds; /* snapshots published */
	rk_gauge_t *g_members;       /* ring members; may be NULL */
	rk_gauge_t *g_registered;    /* 1 once joined; may be NULL */
	nng_socket sub;              /* the agent's events, if open */
	bool sub_open;               /* sub is open */
	int sub_fd;                  /* readable when sub has a message */
};

static void snap_free(snap_t *s)
{
	if (s == NULL)
		return;
	rk_ring_free(s->ring);
	free(s->urls);
	free(s);
}

static void copy_text(char *dst, size_t cap, const char *src)
{
	snprintf(dst, cap, "%s", src ? src : "");
}

/* --- agent calls ------------------------------------------------------ */

static void try_join(rk_cluster_t *c)
{
	if (c->self_url[0] == '\0' &&
	    (c->self_url_fn == NULL ||
	     !c->self_url_fn(c->self_url_arg, c->self_url,
	                     sizeof(c->self_url)))) {
		c->self_url[0] = '\0';
		return; /* not known yet: the next round asks again */
	}
	Ringkv__V1__Endpoint ep = RINGKV__V1__ENDPOINT__INIT;
	ep.has_kind = true;
	ep.kind = RINGKV__V1__ENDPOINT_KIND__ENDPOINT_RPC;
	ep.url = c->self_url;
	Ringkv__V1__Endpoint *eps[1] = {&ep};
	Ringkv__V1__Member m = RINGKV__V1__MEMBER__INIT;
	m.has_node_id = true;
	m.node_id.data = c->id;
	m.node_id.len = sizeof(c->id);
	m.has_generation = true;
	m.generation = c->generation;
	m.has_role = true;
	m.role = (Ringkv__V1__ServiceId)c->role;
	m.n_endpoints = 1;
	m.endpoints = eps;
	m.datacenter = c->dc;
	m.rack = c->rack;
	m.has_weight = true;
	m.weight = c->weight;
	m.has_state = true;
	m.state = RINGKV__V1__MEMBER_STATE__MEMBER_ALIVE;
	m.name = c->name;
	Ringkv__V1__Member *list[1] = {&m};
	Ringkv__V1__JoinRequest req = RINGKV__V1__JOIN_REQUEST__INIT;
	req.n_members = 1;
	req.members = list;
	rk_rpc_result_t res;
	if (rk_rpc_call(c->agent, &c->m_join, &req.base, c->timeout_ms, &res) ==
	    RK_OK) {
		atomic_store(&c->registered, true);
		if (c->g_registered != NULL)
			rk_gauge_set(c->g_registered, 1);
		rk_info("cluster: registered with agent %s as %s", c->agent_url,
		        c->self_url);
	} else {
		rk_warn("cluster: join through %s failed: %s (%s); retrying",
		        c->agent_url, rk_status_name(res.code), res.message);
	}
	rk_rpc_result_clear(&res);
}

static void try_leave(rk_cluster_t *c)
{
	Ringkv__V1__LeaveRequest req = RINGKV__V1__LEAVE_REQUEST__INIT;
	req.has_node_id = true;
	req.node_id.data = c->id;
	req.node_id.len = sizeof(c->id);
	req.reason = "stopping";
	rk_rpc_result_t res;
	if (rk_rpc_call(c->agent, &c->m_leave, &req.base, c->timeout_ms,
	                &res) != RK_OK)
		rk_warn("cluster: leave through %s failed: %s (%s)",
		        c->agent_url, rk_status_name(res.code), res.message);
	rk_rpc_result_clear(&res);
}

/* Opens the events socket from the URL Subscribe gives. Best effort. */
static void try_subscribe(rk_cluster_t *c)
{
	Ringkv__V1__SubscribeRequest req = RINGKV__V1__SUBSCRIBE_REQUEST__INIT;
	req.has_role = true;
	req.role = (Ringkv__V1__ServiceId)c->watch_role;
	rk_rpc_result_t res;
	if (rk_rpc_call(c->agent, &c->m_sub, &req.base, c->timeout_ms, &res) !=
	    RK_OK) {
		rk_rpc_result_clear(&res);
		return;
	}
	const Ringkv__V1__SubscribeResponse *r = (const void *)res.response;
	if (r->events_url != NULL && r->events_url[0] != '\0' &&
	    nng_sub0_open(&c->sub) == 0) {
		if (nng_socket_set(c->sub, NNG_OPT_SUB_SUBSCRIBE, "", 0) == 0 &&
		    nng_socket_get_int(c->sub, NNG_OPT_RECVFD, &c->sub_fd) ==
		        0 &&
		    nng_dial(c->sub, r->events_url, NULL, NNG_FLAG_NONBLOCK) ==
		        0)
			c->sub_open = true;
		else
			nng_close(c->sub);
	}
	rk_rpc_result_clear(&res);
}

/* Builds a snapshot from a GetRing answer; NULL on failure. */
static snap_t *snap_build(const rk_cluster_t *c, const Ringkv__V1__RingView *v)
{
	snap_t *s = calloc(1, sizeof(*s));
	Ringkv__V1__Member **ms = calloc(v->n_members + 1, sizeof(*ms));
	size_t n = 0;
	if (s == NULL || ms == NULL)
		goto fail;
	for (size_t i = 0; i < v->n_members; i++)
		if (v->members[i]->member != NULL)
			ms[n++] = v->members[i]->member;
	if (rk_ring_from_members(ms, n, c->watch_role, v->vnodes_per_weight,
	                         &s->ring) != RK_OK)
		goto fail;
	size_t nodes = rk_ring_node_count(s->ring);
	s->urls = calloc(nodes + 1, sizeof(*s->urls));
	if (s->urls == NULL)
		goto fail;
	for (size_t i = 0; i < nodes; i++) {
		const rk_ring_node_t *node = rk_ring_node(s->ring, i);
		for (size_t k = 0; k < n; k++) {
			const Ringkv__V1__Member *m = ms[k];
			if (m->node_id.len != RK_RING_ID_BYTES ||
			    memcmp(m->node_id.data, node->id,
			           RK_RING_ID_BYTES) != 0)
				continue;
			for (size_t e = 0; e < m->n_endpoints; e++)
				if (m->endpoints[e]->kind ==
				        RINGKV__V1__ENDPOINT_KIND__ENDPOINT_RPC &&
				    m->endpoints[e]->url != NULL)
					copy_text(s->urls[i],
					          sizeof(s->urls[i]),
					          m->endpoints[e]->url);
		}
	}
	free(ms);
	return s;
fail:
	free(ms);
	snap_free(s);
	return NULL;
}

/* Fetches the ring and publishes it. Returns whether the fetch worked. */
static bool fetch(rk_cluster_t *c)
{
	Ringkv__V1__GetRingRequest req = RINGKV__V1__GET_RING_REQUEST__INIT;
	req.has_role = true;
	req.role = (Ringkv__V1__ServiceId)c->watch_role;
	rk_rpc_result_t res;
	bool ok = false;
	if (rk_rpc_call(c->agent, &c->m_ring, &req.base, c->timeout_ms, &res) ==
	    RK_OK) {
		const Ringkv__V1__GetRingResponse *r =
		    (const void *)res.response;
		snap_t *s = r->ring ? snap_build(c, r->ring) : NULL;
		if (s != NULL) {
			pthread_rwlock_wrlock(&c->lock);
			snap_t *old = c->cur;
			c->cur = s;
			pthread_rwlock_unlock(&c->lock);
			snap_free(old);
			atomic_fetch_add(&c->builds, 1);
			if (c->g_members != NULL)
				rk_gauge_set(
				    c->g_members,
				    (double)rk_ring_node_count(s->ring));
			ok = true;
		}
	}
	rk_rpc_result_clear(&res);
	return ok;
}

/* --- the thread ----------------------------------------------------- */

/* Waits one slice for an event or a request; true if woken by either. */
static bool wait_slice(rk_cluster_t *c)
{
	if (c->sub_open) {
		/* poll() on the socket's receive descriptor, then a
		 * non-blocking receive: a blocking nng_recvmsg with a receive
		 * timeout was seen to miss its timeout and block for good. */
		struct pollfd p = {.fd = c->sub_fd, .events = POLLIN};
		if (poll(&p, 1, SLICE_MS) > 0) {
			nng_msg *msg = NULL;
			while (nng_recvmsg(c->sub, &msg, NNG_FLAG_NONBLOCK) ==
			       0)
				nng_msg_free(msg);
			return true;
		}
		pthread_mutex_lock(&c->mu);
		bool asked = c->stopping || c->refresh_asked > c->refresh_done;
		pthread_mutex_unlock(&c->mu);
		return asked;
	}
	pthread_mutex_lock(&c->mu);
	if (!c->stopping && c->refresh_asked == c->refresh_done) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += SLICE_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&c->cv, &c->mu, &ts);
	}
	bool asked = c->stopping || c->refresh_asked > c->refresh_done;
	pthread_mutex_unlock(&c->mu);
	return asked;
}

static void *run(void *arg)
{
	rk_cluster_t *c = arg;
	for (;;) {
		pthread_mutex_lock(&c->mu);
		bool stop = c->stopping;
		uint64_t asked = c->refresh_asked;
		pthread_mutex_unlock(&c->mu);
		if (stop)
			break;
		if (c->role != 0 && !atomic_load(&c->registered))
			try_join(c);
		if (!c->sub_open)
			try_subscribe(c);
		bool ok = fetch(c);
		pthread_mutex_lock(&c->mu);
		if (ok && asked > c->refresh_done)
			c->refresh_done = asked;
		pthread_cond_broadcast(&c->cv);
		pthread_mutex_unlock(&c->mu);
		/* Not registered yet: try again soon. */
		uint32_t wait = c->poll_ms;
		if (c->role != 0 && !atomic_load(&c->registered) && wait > 200)
			wait = 200;
		uint64_t until = rk_clock_mono_ms() + wait;
		while (rk_clock_mono_ms() < until && !wait_slice(c))
			;
	}
	return NULL;
}

/* --- API ----------------------------------------------------------- */

rk_status_t rk_cluster_start(const rk_cluster_opts_t *opts, rk_cluster_t **out)
{
	if (opts == NULL || out == NULL || opts->agent_url == NULL ||
	    opts->agent_url[0] == '\0' ||
	    strlen(opts->agent_url) >= RK_CLUSTER_URL_MAX ||
	    (opts->role != 0 && opts->self_url_fn == NULL &&
	     (opts->self_url == NULL || opts->self_url[0] == '\0')) ||
	    (opts->self_url != NULL &&
	     strlen(opts->self_url) >= RK_CLUSTER_URL_MAX) ||
	    (opts->role == 0 && opts->watch_role == 0) ||
	    opts->weight > RK_RING_MAX_WEIGHT)
		return RK_INVALID_ARGUMENT;
	if (sodium_init() < 0)
		return RK_INTERNAL;
	rk_cluster_t *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return RK_RESOURCE_EXHAUSTED;
	copy_text(c->agent_url, sizeof(c->agent_url), opts->agent_url);
	copy_text(c->self_url, sizeof(c->self_url), opts->self_url);
	copy_text(c->name, sizeof(c->name), opts->name);
	copy_text(c->dc, sizeof(c->dc), opts->datacenter);
	copy_text(c->rack, sizeof(c->rack), opts->rack);
	if (opts->self_id != NULL)
		memcpy(c->id, opts->self_id, sizeof(c->id));
	else
		randombytes_buf(c->id, sizeof(c->id));
	c->generation =
	    opts->generation ? opts->generation : rk_clock_unix_ms();
	c->role = opts->role;
	c->self_url_fn = opts->self_url_fn;
	c->self_url_arg = opts->self_url_arg;
	c->watch_role = opts->watch_role ? opts->watch_role : opts->role;
	c->weight = opts->weight ? opts->weight : 1;
	c->poll_ms = opts->poll_ms ? opts->poll_ms : RK_CLUSTER_DEFAULT_POLL_MS;
	c->timeout_ms =
	    opts->timeout_ms ? opts->timeout_ms : RK_CLUSTER_DEFAULT_TIMEOUT_MS;
	if (opts->metrics != NULL) {
		char labels[32];
		snprintf(labels, sizeof(labels), "role=\"%d\"", c->watch_role);
		c->g_members = rk_metrics_gauge(
		    opts->metrics, "ringkv_cluster_ring_members",
		    "Members on the watched ring, as last fetched.", labels);
		c->g_registered = rk_metrics_gauge(
		    opts->metrics, "ringkv_cluster_registered",
		    "1 once the local agent accepted our Join.", labels);
	}
	pthread_mutex_init(&c->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_rwlock_init(&c->lock, NULL);
	const ProtobufCServiceDescriptor *sd =
	    &ringkv__v1__membership__descriptor;
	const ProtobufCEnumDescriptor *ids =
	    &ringkv__v1__membership_method__descriptor;
	rk_status_t st = RK_OK;
	if (rk_rpc_method_resolve(sd, ids, "Join", &c->m_join) != RK_OK ||
	    rk_rpc_method_resolve(sd, ids, "Leave", &c->m_leave) != RK_OK ||
	    rk_rpc_method_resolve(sd, ids, "GetRing", &c->m_ring) != RK_OK ||
	    rk_rpc_method_resolve(sd, ids, "Subscribe", &c->m_sub) != RK_OK)
		st = RK_INTERNAL;
	rk_rpc_client_opts_t co = {.url = c->agent_url,
	                           .sealer = opts->sealer,
	                           .reconnect_min_ms = 50,
	                           .reconnect_max_ms = 1000,
	                           .caller = "cluster"};
	if (st == RK_OK)
		st = rk_rpc_client_new(&co, &c->agent);
	if (st != RK_OK) {
		rk_cluster_stop(c);
		return st;
	}
	/* The first registration and ring in the caller's thread, so a
	 * service that starts next to a running agent serves with a ring. */
	if (c->role != 0)
		try_join(c);
	try_subscribe(c);
	if (!fetch(c))
		rk_warn("cluster: no ring from %s yet; retrying every %u ms",
		        c->agent_url, c->poll_ms);
	if (pthread_create(&c->thread, NULL, run, c) != 0) {
		rk_cluster_stop(c);
		return RK_RESOURCE_EXHAUSTED;
	}
	c->thread_on = true;
	*out = c;
	return RK_OK;
}

void rk_cluster_stop(rk_cluster_t *c)
{
	if (c == NULL)
		return;
	if (c->thread_on) {
		pthread_mutex_lock(&c->mu);
		c->stopping = true;
		pthread_cond_broadcast(&c->cv);
		pthread_mutex_unlock(&c->mu);
		pthread_join(c->thread, NULL);
	}
	if (c->agent != NULL && atomic_load(&c->registered))
		try_leave(c);
	if (c->sub_open)
		nng_close(c->sub);
	rk_rpc_client_free(c->agent);
	snap_free(c->cur);
	pthread_rwlock_destroy(&c->lock);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

rk_status_t rk_cluster_owner(rk_cluster_t *c, const void *key, size_t len,
                             rk_cluster_owner_t *out)
{
	uint64_t token = rk_ring_key_token(key, len);
	rk_status_t st = RK_NOT_FOUND;
	pthread_rwlock_rdlock(&c->lock);
	const snap_t *s = c->cur;
	int i = s ? rk_ring_owner(s->ring, token) : -1;
	if (i >= 0) {
		const rk_ring_node_t *node = rk_ring_node(s->ring, (size_t)i);
		memcpy(out->id, node->id, sizeof(out->id));
		memcpy(out->url, s->urls[i], sizeof(out->url));
		out->self = memcmp(node->id, c->id, sizeof(c->id)) == 0;
		st = RK_OK;
	}
	pthread_rwlock_unlock(&c->lock);
	return st;
}

const uint8_t *rk_cluster_self_id(const rk_cluster_t *c)
{
	return c->id;
}

size_t rk_cluster_ring_size(rk_cluster_t *c)
{
	pthread_rwlock_rdlock(&c->lock);
	size_t n = c->cur ? rk_ring_node_count(c->cur->ring) : 0;
	pthread_rwlock_unlock(&c->lock);
	return n;
}

uint64_t rk_cluster_ring_builds(rk_cluster_t *c)
{
	return atomic_load(&c->builds);
}

bool rk_cluster_registered(rk_cluster_t *c)
{
	return atomic_load(&c->registered);
}

rk_status_t rk_cluster_refresh(rk_cluster_t *c, uint32_t timeout_ms)
{
	uint64_t until = rk_clock_mono_ms() + timeout_ms;
	pthread_mutex_lock(&c->mu);
	uint64_t want = ++c->refresh_asked;
	pthread_cond_broadcast(&c->cv);
	while (c->refresh_done < want && rk_clock_mono_ms() < until) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += SLICE_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&c->cv, &c->mu, &ts);
	}
	bool done = c->refresh_done >= want;
	pthread_mutex_unlock(&c->mu);
	return done ? RK_OK : RK_DEADLINE_EXCEEDED;
}
