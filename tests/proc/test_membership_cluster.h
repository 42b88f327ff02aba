/*
 * A cluster of real ringkv-membership agents on loopback for the gossip
 * tests: each agent is a child process with its own config, data dir and
 * stderr file in one temp dir, started with NOTIFY_SOCKET and waited for
 * on READY=1 (whose STATUS line gives its RPC port). The test then reads
 * every agent's table through GetMembers over the sealed RPC port.
 *
 * Waiting for the cluster to reach a state polls the agents' tables (an
 * RPC answer each time) every POLL_MS, with a bound; every table read on
 * the way is also checked for the one rule that must hold at every
 * instant: no entry is DOWN with fewer than two distinct accusers.
 */
#ifndef RK_TEST_MEMBERSHIP_CLUSTER_H
#define RK_TEST_MEMBERSHIP_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "proc_util.h"
#include "ringkv/v1/membership.pb-c.h"
#include "rpc/client.h"

#define MC_MAX_AGENTS 8
#define MC_ROUND_MS   100
#define MC_SUSPECT_MS 600

/* One agent of the cluster. */
typedef struct mc_agent {
	rk_proc_t proc;          /* the process, while running */
	bool running;            /* started and not killed */
	int port;                /* its RPC port */
	char url[64];            /* tcp://127.0.0.1:PORT */
	char dir[PATH_MAX];      /* its data dir */
	char config[PATH_MAX];   /* its config file */
	char log[PATH_MAX];      /* its stderr */
	uint8_t id[16];          /* its UUID, once read */
	rk_rpc_client_t *client; /* to its RPC port */
	char health[64];         /* membership.health_check; "" none */
} mc_agent_t;

typedef struct mc_cluster {
	char *tmp;                   /* temp dir, removed at the end */
	char key[PATH_MAX];          /* the cluster key */
	rk_sealer_t *sealer;         /* made from it */
	rk_notify_t notify;          /* children's NOTIFY_SOCKET */
	mc_agent_t a[MC_MAX_AGENTS]; /* the agents */
	int n;                       /* agents in use */
	uint64_t forget_ms;          /* membership.forget_after */
	bool bad_down;               /* a DOWN entry with < 2 accusers seen */
	long pass;                   /* polls of mc_wait_all so far */
} mc_cluster_t;

/* Makes the temp dir, key and notify socket for N agents (none started).
 * Returns 0 or -1. */
int mc_init(mc_cluster_t *c, int n, uint64_t forget_ms);

/* Starts agent I (again) with rpc port PORT (0: any), seeded with the
 * running agents, waits for READY=1 and learns its UUID. Returns 0 or -1. */
int mc_start(mc_cluster_t *c, int i, int port);

/* Starts every agent, in order. Returns 0 or -1. */
int mc_start_all(mc_cluster_t *c);

/* SIGKILLs agent I and reaps it. */
void mc_kill(mc_cluster_t *c, int i);

/* SIGTERMs agent I and waits for it to exit (bounded). Returns 0 or -1. */
int mc_stop(mc_cluster_t *c, int i);

/* Ends every agent, prints their logs to stderr when DUMP, removes the
 * temp dir. */
void mc_fini(mc_cluster_t *c, bool dump);

/* GetMembers from agent I into RES (caller clears). NULL on failure. Also
 * checks every DOWN entry for two accusers (c->bad_down). */
const Ringkv__V1__MemberTable *mc_table(mc_cluster_t *c, int i,
                                        rk_rpc_result_t *res);

/* The entry for ID in T, or NULL. */
const Ringkv__V1__Member *mc_find(const Ringkv__V1__MemberTable *t,
                                  const uint8_t *id);

/* Distinct accusers of M about its incarnation. */
int mc_accusers(const Ringkv__V1__Member *m);

/* A condition on one agent's table. */
typedef bool (*mc_pred_fn)(mc_cluster_t *c, int agent,
                           const Ringkv__V1__MemberTable *t, void *arg);

/* Polls every running agent (but SKIP, -1 for none) until PRED holds for
 * all at once, up to TIMEOUT_MS. Returns the ms it took, or -1. */
long mc_wait_all(mc_cluster_t *c, int skip, mc_pred_fn pred, void *arg,
                 long timeout_ms);

/* Predicate: every running agent is in the table ALIVE, nothing else is
 * but left entries, and the digests of all tables of one poll agree. ARG
 * is an mc_converge_arg_t. */
typedef struct mc_converge_arg {
	long pass;          /* poll the digest was taken in */
	uint8_t digest[16]; /* first digest of that poll */
} mc_converge_arg_t;

bool mc_pred_converged(mc_cluster_t *c, int agent,
                       const Ringkv__V1__MemberTable *t, void *arg);

/* What mc_pred_state looks for. */
typedef struct mc_state_arg {
	const uint8_t *id;       /* whose entry */
	int state;               /* the state wanted (MemberState); 0: absent */
	int alt_state;           /* another state that also counts; 0: none */
	uint64_t min_generation; /* and at least this generation */
	uint64_t min_incarnation; /* and at least this incarnation */
} mc_state_arg_t;

bool mc_pred_state(mc_cluster_t *c, int agent, const Ringkv__V1__MemberTable *t,
                   void *arg);

/* Monotonic ms. */
long mc_now_ms(void);

#endif
