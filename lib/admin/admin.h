/*
 * The admin HTTP port of a service, on nng's HTTP server:
 *
 *   GET /healthz   200 "ok\n" while the health callback says the service
 *                  serves, 503 and the reason otherwise
 *   GET /metrics   the registry in Prometheus text format (0.0.4)
 *
 * Other paths get 404, other methods 405. The admin port is for operators
 * and probes on a trusted network; it exposes nothing that changes state.
 */
#ifndef RK_ADMIN_H
#define RK_ADMIN_H

#include <stddef.h>

#include <ringkv/status.h>

#include "metrics/metrics.h"

typedef struct rk_admin rk_admin_t;

/* Returns 1 when the service serves; otherwise 0 and a reason in DETAIL.
 * Called on nng's threads: must not block. */
typedef int (*rk_admin_health_fn)(void *arg, char *detail, size_t len);

/* Starts serving on ADDR, "HOST:PORT" (PORT 0 picks a free port; see
 * rk_admin_port()). METRICS and ARG are borrowed and must outlive the
 * admin server. On error *out is untouched and the status says why
 * (RK_UNAVAILABLE when the address cannot be bound). */
rk_status_t rk_admin_start(const char *addr, rk_metrics_t *metrics,
                           rk_admin_health_fn health, void *arg,
                           rk_admin_t **out);

/* The TCP port actually bound. */
int rk_admin_port(const rk_admin_t *a);

/* Stops serving and frees. Safe with NULL. */
void rk_admin_stop(rk_admin_t *a);

#endif
