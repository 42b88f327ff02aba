/*
 * The Health service every ringkv server answers (common.proto): Check says
 * whether this process serves, Echo returns its payload. Both run inline on
 * nng's threads: they read a few atomics and never block.
 */
#ifndef RK_SERVICE_HEALTH_H
#define RK_SERVICE_HEALTH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <ringkv/status.h>

#include "rpc/client.h"
#include "rpc/method.h"
#include "rpc/server.h"

/* What Check reports; owned by the service runtime, borrowed by the
 * handlers for the life of the RPC server. */
typedef struct rk_health {
	const char *service;     /* "storage", ... */
	const char *node_id;     /* this node's id */
	uint64_t start_ms;       /* monotonic ms at start */
	atomic_bool serving;     /* false while starting, degraded, stopping */
	_Atomic(const char *) detail; /* why not serving; static or owned by
	                                 the runtime, never freed while set */
} rk_health_t;

/* Method handles of the Health service, resolved once. */
const rk_rpc_method_t *rk_health_check_method(void);
const rk_rpc_method_t *rk_health_echo_method(void);

/* Routes Health.Check and Health.Echo on SRV. */
rk_status_t rk_health_register(rk_rpc_server_t *srv, rk_health_t *h);

/* Calls Health.Check through CLIENT; RK_OK only if the answer is SERVING.
 * DETAIL (LEN bytes) receives the reason otherwise. */
rk_status_t rk_health_probe(rk_rpc_client_t *client, uint32_t timeout_ms,
                            char *detail, size_t len);

#endif
