/*
 * The runtime every ringkv service binary shares: command line, the YAML
 * config (core sections below), the cluster key, logging, the RPC server
 * with the Health service, the admin HTTP port, systemd notification,
 * signals. A service's main.c is one call:
 *
 *	int main(int argc, char **argv) { return rk_service_main(argc, argv, &spec); }
 *
 * Sections every config file may hold (docs/config.md):
 *
 *	node:     { id, datacenter, rack }
 *	rpc:      { listen, max_frame_bytes, work_items, workers, default_timeout }
 *	admin:    { listen }
 *	security: { cluster_key_file, allow_unsealed }
 *	log:      { level }
 *
 * plus one section named after the service, read by its own hooks.
 *
 * Life cycle: configure -> start hooks -> RPC + admin listen -> a Health
 * call to itself over the real socket -> READY=1 to systemd. Then signals:
 * SIGHUP reloads (log level, and the service's reload hook), SIGTERM or
 * SIGINT stop: STOPPING=1, Health says NOT_SERVING, the admin port and RPC
 * server close, the stop hook runs, exit 0. While WATCHDOG_USEC is set the
 * runtime sends WATCHDOG=1 only after a Health call to itself succeeds, so
 * a wedged server is restarted by systemd.
 */
#ifndef RK_SERVICE_H
#define RK_SERVICE_H

#include <stdbool.h>
#include <stdint.h>

#include <ringkv/status.h>

#include "config/config.h"
#include "crypto/seal.h"
#include "metrics/metrics.h"
#include "rpc/server.h"

typedef struct rk_service rk_service_t;

typedef struct rk_service_spec {
	const char *name;         /* "storage": binary ringkv-<name>, and the
	                             config section it owns */
	uint32_t default_rpc_port;   /* used when rpc.listen is absent */
	uint32_t default_admin_port; /* used when admin.listen is absent */
	/* Reads the service's own section (and validates it with the config
	 * getters). May be NULL. Returns RK_OK or a status; config errors are
	 * recorded in CFG and reported by the runtime. */
	rk_status_t (*configure)(rk_service_t *svc, rk_config_t *cfg);
	/* (On SIGHUP, configure runs again on a copy of SVC to validate the
	 * new file; keep state in the reload hook, not in configure.) */
	/* Routes the service's methods and starts its own threads. May be
	 * NULL. An error aborts start-up with exit code 1. */
	rk_status_t (*start)(rk_service_t *svc);
	/* Reloads from a freshly read config on SIGHUP; an error keeps the
	 * old settings (and is logged). May be NULL. */
	rk_status_t (*reload)(rk_service_t *svc, rk_config_t *cfg);
	/* Stops the service's threads. Runs after the RPC server has shut
	 * down (no handler runs any more), and only if start ran and
	 * succeeded; calls it still holds must be answered before it
	 * returns. May be NULL. */
	void (*stop)(rk_service_t *svc);
} rk_service_spec_t;

/* Parses argv, runs the service until SIGTERM/SIGINT, returns the process
 * exit code: 0 after a clean stop, 1 on a start-up failure, 2 on a usage
 * or config error. */
int rk_service_main(int argc, char **argv, const rk_service_spec_t *spec);

/* --- for hooks ------------------------------------------------------- */

rk_rpc_server_t *rk_service_rpc(rk_service_t *svc);
rk_metrics_t *rk_service_metrics(rk_service_t *svc);
rk_sealer_t *rk_service_sealer(rk_service_t *svc); /* NULL if unsealed */
const char *rk_service_node_id(const rk_service_t *svc);
/* The stream:// URL at which peers on this host reach our stream
 * transport (rpc.stream_listen, with its bound port) into OUT; 0 when the
 * transport is off or not started yet. */
int rk_service_stream_url(const rk_service_t *svc, char *out, size_t len);
/* The service's own state, set by its hooks. */
void rk_service_set_data(rk_service_t *svc, void *data);
void *rk_service_data(const rk_service_t *svc);
/* Marks the service not serving (Health, /healthz) with a reason, or
 * serving again with NULL. Thread-safe. */
void rk_service_set_degraded(rk_service_t *svc, const char *reason);

#endif
