/*
 * Forwarding of checks to the owner of their keys (docs/ratelimit.md,
 * "Distributed").
 *
 * A descriptor's routing key (the domain, then each entry's key and
 * value, each NUL-terminated: the key the checker hands its owner hook)
 * is placed on the ratelimit ring that a cluster view (lib/cluster) keeps
 * current. A check all of whose descriptors one other instance owns is
 * sent to that instance, marked `forwarded`, which decides it itself and
 * never forwards again (one hop); a check whose descriptors have several
 * owners is split between them (split.h). When the owner cannot be reached, the
 * check is decided here with the owner hook answering UNREACHABLE for the
 * descriptors owned elsewhere, so each of their limits fails open or
 * closed as its rule says and the answer says which happened.
 *
 * Clients to the owners are made on first use and kept (one per owner
 * URL, a few per cluster) until the forwarder is freed. A client whose
 * connection has been down for longer than its reconnect period counts as
 * unreachable at once, without spending the call's deadline.
 *
 * Metrics (when set): checks forwarded by outcome, requests split per
 * owner, and the latency of every forwarded call.
 *
 * Thread-safe: any number of handler threads may route and forward.
 */
#ifndef RK_RL_FORWARD_H
#define RK_RL_FORWARD_H

#include <stdbool.h>
#include <stdint.h>

#include "checker.h"
#include "cluster/cluster.h"
#include "metrics/metrics.h"
#include "rpc/client.h"

typedef struct rk_rl_fwd rk_rl_fwd_t;

/* Makes a forwarder over CLUSTER (borrowed; outlives it), calling owners
 * with SEALER (borrowed; NULL: unsealed) and at most MAX_TIMEOUT_MS per
 * forwarded call. */
rk_status_t rk_rl_fwd_new(rk_cluster_t *cluster, rk_sealer_t *sealer,
                          uint32_t max_timeout_ms, rk_rl_fwd_t **out);
void rk_rl_fwd_free(rk_rl_fwd_t *f);

/* The checker's owner hook (ARG: the forwarder): LOCAL when we own the
 * key or the ring is empty, else UNREACHABLE (a check reaches the checker
 * with a remote descriptor only when forwarding was not possible). */
rk_rl_owner_t rk_rl_fwd_owner(void *arg, const void *key, size_t len);

/* Where REQ goes: true, with the owner's URL in URL (LEN bytes), when
 * every descriptor is owned by one other instance that has an endpoint;
 * false otherwise (forwarded to us, owned here, owners mixed (split.h),
 * no ring yet, or not shaped for routing). */
bool rk_rl_fwd_route(rk_rl_fwd_t *f,
                     const Ringkv__V1__RateLimitCheckRequest *req, char *url,
                     size_t len);

#define RK_RL_FWD_MAX_DESCRIPTORS 32 /* as the checker's bound */

/* The owner of each descriptor of REQ: OWNER[i] is -1 when we own it
 * (or the ring is empty), else an index into URLS (distinct owners, in
 * order of first appearance; URLS has RK_RL_FWD_MAX_DESCRIPTORS rows).
 * Returns how many other owners there are (0: all ours), or -1 when REQ
 * is not routable (forwarded to us, or not shaped for routing: the
 * checker then validates it). */
int rk_rl_fwd_owners(rk_rl_fwd_t *f,
                     const Ringkv__V1__RateLimitCheckRequest *req, int *owner,
                     char (*urls)[RK_CLUSTER_URL_MAX]);

/* Calls METHOD on the owner at URL with REQUEST, for at most the
 * smaller of the forwarder's cap and REMAINING_MS. Fills RES (caller
 * clears) and returns res->code. */
rk_status_t rk_rl_fwd_call(rk_rl_fwd_t *f, const char *url,
                           const rk_rpc_method_t *method,
                           const ProtobufCMessage *request,
                           uint64_t remaining_ms, rk_rpc_result_t *res);

/* Whether CODE from a forwarded call means the owner could not decide
 * (then the rule's fail-open choice applies) rather than an answer to
 * relay. */
bool rk_rl_fwd_unreachable(rk_status_t code);

/* Forwarded calls so far, and those that failed over. */
uint64_t rk_rl_fwd_sent(rk_rl_fwd_t *f);
uint64_t rk_rl_fwd_failed(rk_rl_fwd_t *f);

/* --- metrics (docs/ratelimit.md, "Metrics") ---------------------------
 * Registered in M (borrowed; outlives F) by rk_rl_fwd_set_metrics, which
 * must run before the first forward (the handlers call it when they are
 * registered); without it the calls below only count nothing. */

/* How a check forwarded to another owner ended. */
typedef enum rk_rl_fwd_outcome {
	RK_RL_FWD_ANSWERED = 0,      /* the owner answered with a verdict */
	RK_RL_FWD_FAILED_OPEN = 1,   /* owner unreachable: decided here, its
	                                limits failed open (or none applied) */
	RK_RL_FWD_FAILED_CLOSED = 2, /* owner unreachable: decided here, a
	                                limit failed closed */
	RK_RL_FWD_ERROR = 3,         /* ended in an error status: the owner's,
	                                relayed, or ours deciding it here */
} rk_rl_fwd_outcome_t;

#define RK_RL_FWD_OUTCOMES 4

void rk_rl_fwd_set_metrics(rk_rl_fwd_t *f, rk_metrics_t *m);

/* Counts N checks forwarded (or parts of split checks) that ended as O. */
void rk_rl_fwd_count(rk_rl_fwd_t *f, rk_rl_fwd_outcome_t o, uint64_t n);

/* The outcome of a check that was decided here because its owner could
 * not answer: ST the local status, OUTCOME the answer's outcome. */
rk_rl_fwd_outcome_t rk_rl_fwd_failover_outcome(rk_status_t st, int outcome);

/* Counts one request split per owner into PARTS calls to other owners:
 * a CheckBatch (BATCH) cut into one CheckBatch per owner, or a Check whose
 * descriptors have several owners (split.h). */
void rk_rl_fwd_count_split(rk_rl_fwd_t *f, bool batch, uint64_t parts);

#endif
