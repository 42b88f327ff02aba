/*
 * What agent.c (life cycle, gossip thread), handlers.c (RPC methods) and
 * events.c (the pub0 socket) share. Not for other users.
 */
#ifndef RK_MS_AGENT_INTERNAL_H
#define RK_MS_AGENT_INTERNAL_H

#include <limits.h>
#include <nng/nng.h>
#include <pthread.h>
#include <stdbool.h>

#include "agent.h"
#include "rpc/client.h"
#include "lease.h"
#include "table.h"
#include "wire.h"

#define RK_MS_MAX_SEEDS 16
#define RK_MS_MAX_PEERS 128

/* The membership section, as read by rk_ms_configure. */
typedef struct rk_ms_config {
	char data_dir[PATH_MAX]; /* identity file's directory */
	bool data_dir_defaulted; /* not set in the config */
	char seeds[RK_MS_MAX_SEEDS][RK_MS_URL_MAX]; /* join through these */
	size_t nseeds;                              /* entries of seeds */
	char advertise[RK_MS_URL_MAX]; /* our RPC URL for peers; "" derive */
	char advertise_host[128];      /* host of rpc.listen, for deriving */
	char events_listen[RK_MS_URL_MAX]; /* pub0 listen URL */
	char health_check[RK_MS_URL_MAX];  /* local service; "" none */
	char name[RK_MS_NAME_MAX];         /* node.id */
	char datacenter[RK_MS_NAME_MAX];   /* node.datacenter */
	char rack[RK_MS_NAME_MAX];         /* node.rack */
	uint32_t weight;                   /* ring weight */
	uint64_t round_ms;                 /* gossip period */
	uint32_t fanout;                   /* peers per round */
	uint64_t probe_ms;                 /* call deadline */
	uint32_t vnodes;                   /* tokens per weight */
	uint64_t max_frame;                /* rpc.max_frame_bytes */
	rk_ms_timing_t timing;             /* failure detection */
	uint64_t lease_ttl_ms;             /* default lease length */
	uint64_t lease_skew_ms;            /* lease skew margin */
} rk_ms_config_t;

/* What the last rk_ms_configure read (config.c). */
const rk_ms_config_t *rk_ms_config_pending(void);

/* A cached client to one peer, used by the gossip thread only. */
typedef struct rk_ms_peer {
	char url[RK_MS_URL_MAX]; /* where it dials */
	rk_rpc_client_t *client; /* the client */
	uint64_t used_mono;      /* last round it served */
} rk_ms_peer_t;

typedef struct rk_ms_agent {
	rk_service_t *svc;   /* the runtime (borrowed) */
	rk_ms_config_t cfg;  /* settings */
	rk_sealer_t *sealer; /* borrowed from the runtime; NULL unsealed */
	pthread_mutex_t mu;  /* guards table, joined, pub_open */
	rk_ms_table_t table; /* the member table */
	bool joined;         /* a seed or peer answered us */
	uint64_t stored_generation; /* generation in the identity file */
	pthread_cond_t cv;          /* wakes the gossip thread */
	bool stop;                  /* the gossip thread should end */
	bool kick;                  /* run a round now */
	pthread_t thread;           /* the gossip thread */
	bool thread_started;        /* thread is joinable */
	nng_socket pub;             /* events socket */
	bool pub_open;              /* pub is open */
	rk_ms_peer_t peers[RK_MS_MAX_PEERS]; /* client cache */
	rk_rpc_client_t *health;             /* to the local service, or NULL */
	rk_counter_t *rounds;   /* ringkv_membership_gossip_rounds_total */
	rk_counter_t *refused;  /* ringkv_membership_gossip_refused_total */
	rk_gauge_t *members[5]; /* ringkv_membership_members{state} */
	rk_ms_lease_table_t leases; /* worker-id lease promises (lease.c) */
} rk_ms_agent_t;

/* Method handles, resolved once. */
typedef struct rk_ms_methods {
	rk_rpc_method_t gossip, ping, indirect, join, leave, remove,
	    get_members, get_ring, subscribe, acquire_lease, renew_lease,
	    release_lease, vote_lease, list_leases;
} rk_ms_methods_t;
const rk_ms_methods_t *rk_ms_methods(void);

/* Routes the Membership methods to A's handlers (handlers.c). */
rk_status_t rk_ms_handlers_register(rk_ms_agent_t *a, rk_rpc_server_t *srv);

/* Routes the five lease methods to lease_rpc.c's handlers. */
rk_status_t rk_ms_lease_register(rk_ms_agent_t *a, rk_rpc_server_t *srv);

/* Opens the events socket and returns its URL in A (events.c). */
rk_status_t rk_ms_events_open(rk_ms_agent_t *a);
/* Table change callback: publishes one MembershipEvent. */
void rk_ms_events_publish(void *arg, int kind, const rk_ms_member_t *m,
                          uint64_t version);
void rk_ms_events_close(rk_ms_agent_t *a);

/* Converts and checks every member of a message; RK_INVALID_ARGUMENT with
 * *why on the first bad one. *out is malloc'd (caller frees). */
rk_status_t rk_ms_members_from_pb(Ringkv__V1__Member *const *pb, size_t n,
                                  rk_ms_member_t **out, const char **why);

/* A copy of the table's entries under the lock (caller frees). */
rk_ms_member_t *rk_ms_snapshot(rk_ms_agent_t *a, size_t *n);

#endif
