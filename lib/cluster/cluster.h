/*
 * Cluster view for a service: registration with the local membership agent
 * and an up-to-date ring of one role, with an owner lookup that never
 * touches the network. docs/cluster.md is the reference.
 *
 * rk_cluster_start() registers the service (Join with its role, UUID,
 * generation and RPC endpoint; the agent then vouches for it) and fetches
 * the ring of the watched role (GetRing). A background thread keeps that
 * ring current: it dials the agent's events socket (Subscribe gives its
 * URL; every authenticated MembershipEvent wakes it) and refetches the
 * ring on each event, and also every poll_ms whatever happens (the
 * fallback when an event is lost or the socket is down). A failed Join is
 * retried by the same thread. rk_cluster_stop() sends Leave and frees.
 *
 * The ring held is built with rk_ring_from_members() from the members the
 * agent lists on its ring, with the agent's vnodes_per_weight, so every
 * holder of the same table places a key on the same node as every agent.
 *
 * Thread-safe: lookups may run from any number of threads at once, also
 * while the ring is replaced; they take a read lock held for a few
 * hundred nanoseconds, never across a call.
 */
#ifndef RK_CLUSTER_H
#define RK_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ringkv/status.h>

#include "crypto/seal.h"
#include "metrics/metrics.h"
#include "ring/ring.h"

#define RK_CLUSTER_URL_MAX            256 /* an endpoint URL, with the NUL */
#define RK_CLUSTER_DEFAULT_POLL_MS    1000
#define RK_CLUSTER_DEFAULT_TIMEOUT_MS 1000

typedef struct rk_cluster rk_cluster_t;

typedef struct rk_cluster_opts {
	const char *agent_url; /* the local agent's RPC URL; required */
	rk_sealer_t *sealer;   /* borrowed; NULL: unsealed frames */
	int role;              /* ServiceId this service registers as;
	                          0: do not register (a pure observer) */
	int watch_role;        /* ServiceId whose ring is kept; 0: role */
	const char *self_url;  /* our RPC endpoint, as others dial it;
	                          when role != 0, this or self_url_fn */
	/* Asked (from the background thread) for our RPC endpoint when
	 * self_url is NULL: writes it into BUF (LEN bytes) and returns true,
	 * or returns false while it is not known yet (a listener on port 0
	 * not bound yet); registration waits until it is. */
	bool (*self_url_fn)(void *arg, char *buf, size_t len);
	void *self_url_arg;     /* for self_url_fn */
	const uint8_t *self_id; /* our 16-byte UUID; NULL: drawn at random */
	uint64_t generation;    /* raised at each restart; 0: wall ms */
	const char *name;       /* for status output; may be NULL */
	const char *datacenter; /* placement; may be NULL */
	const char *rack;       /* placement; may be NULL */
	uint32_t weight;        /* ring weight; 0: 1 */
	uint32_t poll_ms;       /* refetch at least this often; 0: default */
	uint32_t timeout_ms;    /* deadline of each agent call; 0: default */
	/* Borrowed, may be NULL: gets ringkv_cluster_ring_members{role="N"}
	 * (members on the watched ring, set after every fetch) and
	 * ringkv_cluster_registered{role="N"} (1 once Join succeeded). */
	rk_metrics_t *metrics;
} rk_cluster_opts_t;

/* Registers and fetches the first ring as described above. A Join or
 * GetRing that fails is logged and retried in the background (the ring
 * is empty meanwhile); only bad options (RK_INVALID_ARGUMENT) or no
 * memory fail here. OPTS and its strings are copied; the sealer must
 * outlive the cluster. Caller ends it with rk_cluster_stop(). */
rk_status_t rk_cluster_start(const rk_cluster_opts_t *opts, rk_cluster_t **out);

/* Sends Leave (when registered), stops the thread and frees. NULL ok. */
void rk_cluster_stop(rk_cluster_t *c);

/* The owner of a key on the watched ring. */
typedef struct rk_cluster_owner {
	bool self;                    /* it is us */
	uint8_t id[RK_RING_ID_BYTES]; /* its UUID */
	char url[RK_CLUSTER_URL_MAX]; /* its RPC endpoint ("" if it has
	                                 none) */
} rk_cluster_owner_t;

/* Fills OUT with the owner of KEY (LEN bytes, placed with
 * rk_ring_key_token). RK_NOT_FOUND while the ring is empty (not fetched
 * yet, or no member of the role). Never blocks on the network. */
rk_status_t rk_cluster_owner(rk_cluster_t *c, const void *key, size_t len,
                             rk_cluster_owner_t *out);

/* Our UUID (16 bytes, borrowed from C). */
const uint8_t *rk_cluster_self_id(const rk_cluster_t *c);

/* Members on the watched ring now, and how many times it was rebuilt. */
size_t rk_cluster_ring_size(rk_cluster_t *c);
uint64_t rk_cluster_ring_builds(rk_cluster_t *c);

/* Whether our Join has been accepted. */
bool rk_cluster_registered(rk_cluster_t *c);

/* Asks the background thread to refetch the ring now, and waits (up to
 * TIMEOUT_MS) until it has tried. RK_OK if a fetch completed (whether or
 * not the ring changed), RK_DEADLINE_EXCEEDED otherwise. For tests and
 * operators; never call from a lookup path. */
rk_status_t rk_cluster_refresh(rk_cluster_t *c, uint32_t timeout_ms);

#endif
