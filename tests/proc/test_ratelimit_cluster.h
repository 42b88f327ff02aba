/*
 * Helpers of test_ratelimit_cluster.c: the fixture (three membership
 * agents, three clustered ringkv-ratelimit instances and a single one),
 * starting an instance, reading its /metrics, the ring as the agents see
 * it (to predict each key's owner), and the calls the cases make.
 */
#ifndef RK_TEST_RATELIMIT_CLUSTER_H
#define RK_TEST_RATELIMIT_CLUSTER_H

#include <stdbool.h>

#include "handlers.h"
#include "ring/members.h"
#include "ringkv/v1/membership.pb-c.h"
#include "ringkv/v1/ratelimit.pb-c.h"
#include "rpc/method.h"
#include "test_membership_cluster.h"

#define NRL        3
#define WAIT_MS    15000
#define CALL_MS    3000
#define FORWARD_MS 300
#define NKEYS      60

/* One ratelimit instance. */
typedef struct rl {
	rk_proc_t proc;          /* the process */
	int port, admin;         /* from READY=1 */
	char url[64];            /* stream://127.0.0.1:PORT, as advertised */
	char config[PATH_MAX];   /* its config */
	char log[PATH_MAX];      /* its stderr */
	rk_rpc_client_t *client; /* to it */
} rl_t;

typedef struct fixture {
	mc_cluster_t c;       /* the agents, key, sealer, notify socket */
	rl_t rl[NRL + 1];     /* the cluster, then the single instance */
	char rules[PATH_MAX]; /* the rules file all use */
	rk_ring_t *ring;      /* the ratelimit ring, as the agents see it */
	int owner_of[64];     /* ring node index -> instance */
	bool passed;          /* set last by each case */
	bool any_failed;      /* a case before this one failed */
	int ran;              /* cases started */
} fixture_t;

long now_ms(void);
/* Sleeps MS: only between polls of a state that has no push signal. */
void pause_ms(long ms);
/* Starts instance I (clustered: through agent I) and waits for READY=1. */
int rl_start(fixture_t *f, int i, bool clustered);
/* The value of the first /metrics line starting with PREFIX (summed over
 * all such lines when SUM); -1 if none. */
double metric(const rl_t *r, const char *prefix, bool sum);
/* Waits until R's ring gauge shows N members. */
bool wait_ring(const rl_t *r, int n);
/* Loads the ratelimit ring from agent 0 into f->ring and f->owner_of. */
bool load_ring(fixture_t *f);
/* The instance the ring names for (DOMAIN, KEY, VALUE). */
int owner(const fixture_t *f, const char *domain, const char *key,
          const char *value);
/* Check of one descriptor (KEY, VALUE) on instance I. */
rk_status_t check(fixture_t *f, int i, const char *domain, const char *key,
                  const char *value, rk_rpc_result_t *res);
const Ringkv__V1__RateLimitCheckResponse *answer(const rk_rpc_result_t *res);
/* CheckBatch of N checks of client_id=PREFIX-(k%20), item 7 in an unknown
 * domain, on instance I. */
rk_status_t batch(fixture_t *f, int i, const char *prefix, int n,
                  rk_rpc_result_t *res);
/* Check of client_id=V1 and open_key=V2 (two descriptors) on I. */
rk_status_t check2(fixture_t *f, int i, const char *v1, const char *v2,
                   rk_rpc_result_t *res);
/* The ratelimit ring's size as agent 0 sees it, or -1. */
int agent_ring_size(fixture_t *f);

#endif
