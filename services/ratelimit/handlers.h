/*
 * The RPC handlers of the Ratelimit service: Check, CheckBatch and
 * DescribeRules (proto/ringkv/v1/ratelimit.proto).
 *
 * A single instance runs all three inline on nng's threads (RK_RPC_INLINE):
 * a check takes a shard mutex for well under a microsecond and never
 * waits on anything else, so handing it to the worker pool would cost
 * more than it saves. In a cluster (gate->fwd set) Check and CheckBatch
 * may wait on the owner of their keys, so they run on the worker pool.
 *
 * The handlers reach the checker through a gate that outlives it: the
 * runtime calls the service's stop hook while the RPC server may still
 * run a handler, so stop first closes the gate (later calls answer
 * UNAVAILABLE), waits until no handler is inside, and only then frees
 * the checker.
 */
#ifndef RK_RL_HANDLERS_H
#define RK_RL_HANDLERS_H

#include <pthread.h>
#include <stdatomic.h>

#include "checker.h"
#include "forward.h"
#include "rpc/server.h"

typedef struct rk_rl_gate {
	_Atomic(rk_rl_checker_t *) checker; /* NULL: closed */
	atomic_long inside;         /* handlers between enter and leave */
	_Atomic uint32_t max_batch; /* most checks in one CheckBatch */
	pthread_mutex_t lock;       /* guards last_error */
	char last_error[4096];      /* why the last reload was rejected; "" */
	rk_rl_fwd_t *fwd; /* to the keys' owners; NULL: single instance.
	                     Set before registering, freed after stop */
} rk_rl_gate_t;

/* Opens GATE on CHECKER (borrowed until rk_rl_gate_close returns). */
void rk_rl_gate_open(rk_rl_gate_t *gate, rk_rl_checker_t *checker,
                     uint32_t max_batch);

/* Closes GATE and waits until no handler uses the checker; returns it. */
rk_rl_checker_t *rk_rl_gate_close(rk_rl_gate_t *gate);

/* Records (or clears, with NULL) the last reload error for DescribeRules. */
void rk_rl_gate_set_error(rk_rl_gate_t *gate, const char *error);

/* Routes Check, CheckBatch and DescribeRules on SRV to GATE (which must
 * outlive the server). With a forwarder (gate->fwd), first registers its
 * metrics in the registry of the gate's checker (so call it with the
 * gate open). */
rk_status_t rk_rl_handlers_register(rk_rpc_server_t *srv, rk_rl_gate_t *gate);

/* Method handles of the service, resolved once (for clients and tests). */
const rk_rpc_method_t *rk_rl_check_method(void);
const rk_rpc_method_t *rk_rl_check_batch_method(void);
const rk_rpc_method_t *rk_rl_describe_rules_method(void);

#endif
