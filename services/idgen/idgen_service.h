/*
 * The Idgen RPC service (proto/ringkv/v1/idgen.proto): NextId, NextIds,
 * Decode and Info over one Snowflake generator, with the high-water mark
 * file and the worker identity behind it, and its metrics.
 *
 * NextId and NextIds run inline on nng's threads when the generator can
 * answer at once (the common case: no wait, no fsync); a call that must
 * wait for the clock or persist the mark is handed to the service's own
 * few threads, which reply when done. Decode never blocks; Info may wait
 * out an fsync of the mark an issuer is doing.
 *
 * Life cycle: rk_idgen_service_new() (opens the mark, may fail), then
 * rk_idgen_service_route() before the RPC server starts; at shutdown
 * rk_idgen_service_stop() before the server is freed and before the
 * metrics registry is (calls that still arrive are answered UNAVAILABLE
 * when they would have to wait), then, once the server is freed,
 * rk_idgen_service_free().
 */
#ifndef RK_IDGEN_SERVICE_H
#define RK_IDGEN_SERVICE_H

#include <stddef.h>

#include <ringkv/status.h>

#include "idgen_config.h"
#include "metrics/metrics.h"
#include "rpc/method.h"
#include "rpc/server.h"
#include "snowflake.h"
#include "worker.h"

typedef struct rk_idgen_service rk_idgen_service_t;

/* Method handles of the Idgen service, resolved once; NULL for an
 * unknown name ("NextId", "NextIds", "Decode", "Info"). */
const rk_rpc_method_t *rk_idgen_method(const char *name);

/* Builds the service from CFG (copied): takes the identity, opens and
 * locks the mark file, persists a first mark ahead of now. CLOCK (copied;
 * NULL: the system clock) is for tests. METRICS is borrowed and must
 * outlive the service. On error WHY (LEN bytes) says what; the status is
 * hwm.h's. Caller frees with rk_idgen_service_free(). */
rk_status_t rk_idgen_service_new(const rk_idgen_config_t *cfg,
                                 const rk_snowflake_clock_t *clock,
                                 rk_metrics_t *metrics,
                                 rk_idgen_service_t **out, char *why,
                                 size_t len);

/* The same, with the identity from SOURCE instead of the config's static
 * ids: an acquired-and-held source such as a lease (copied; its impl is
 * borrowed and must outlive the service; must not be the static kind,
 * whose impl points into itself). NULL SOURCE is the static one. The
 * service acquires it, asks it before every issue, and releases it when
 * freed. */
rk_status_t rk_idgen_service_new_with(const rk_idgen_config_t *cfg,
                                      const rk_snowflake_clock_t *clock,
                                      const rk_idgen_worker_t *source,
                                      rk_metrics_t *metrics,
                                      rk_idgen_service_t **out, char *why,
                                      size_t len);

/* Routes the four methods on SRV (before it starts). */
rk_status_t rk_idgen_service_route(rk_idgen_service_t *s, rk_rpc_server_t *srv);

/* Stops taking calls that must wait, answers those queued, and stops the
 * service's threads before it returns: afterwards nothing of the service
 * touches METRICS except a handler the server still runs. Call it before
 * the RPC server is freed (before or after the server stops taking
 * calls). */
void rk_idgen_service_stop(rk_idgen_service_t *s);

/* Frees (after the RPC server is freed: no handler may still run). NULL
 * is ok. */
void rk_idgen_service_free(rk_idgen_service_t *s);

/* The generator (borrowed from S), for tests. */
rk_snowflake_t *rk_idgen_service_generator(rk_idgen_service_t *s);

#endif
