/*
 * ringkv-idgen: the Snowflake ID generator.
 *
 * The shared service runtime (lib/service) does config, the cluster key,
 * the RPC server, the admin port, systemd and signals; the hooks below
 * read the `idgen:` section, build the service (idgen_service.c) and
 * route its methods. Settings of the idgen section change only on a
 * restart: the identity and the clock rules are not things to switch
 * under a running generator.
 */
#include <stdbool.h>
#include <string.h>

#include "core/log.h"
#include "idgen_config.h"
#include "idgen_service.h"
#include "lease_source.h"
#include "service/service.h"

static rk_idgen_config_t config;    /* read at start */
static bool config_read;            /* later reads only validate */
static rk_idgen_service_t *service; /* freed after the runtime returns */
static rk_idgen_lease_t *lease;     /* the lease source, or NULL */

static rk_status_t idgen_configure(rk_service_t *svc, rk_config_t *cfg)
{
	(void)svc;
	rk_idgen_config_t c;
	rk_idgen_config_read(cfg, &c);
	if (!config_read) {
		config = c;
		config_read = true;
	}
	return RK_OK;
}

static rk_status_t idgen_start(rk_service_t *svc)
{
	char why[512] = "";
	rk_status_t st;
	if (config.source == RK_IDGEN_WORKER_LEASE) {
		/* Blocks until a majority of agents granted a worker id, so
		 * READY means "holding a lease". */
		st = rk_idgen_lease_new(&config, rk_service_sealer(svc), &lease);
		if (st != RK_OK) {
			rk_error("idgen.lease: cannot make the lease source");
			return st;
		}
		rk_idgen_worker_t w;
		rk_idgen_lease_worker(lease, &w);
		st = rk_idgen_service_new_with(&config, NULL, &w,
		                               rk_service_metrics(svc), &service,
		                               why, sizeof(why));
	} else {
		st = rk_idgen_service_new(&config, NULL,
		                          rk_service_metrics(svc), &service,
		                          why, sizeof(why));
	}
	if (st != RK_OK) {
		rk_error("%s", why);
		return st;
	}
	return rk_idgen_service_route(service, rk_service_rpc(svc));
}

static rk_status_t idgen_reload(rk_service_t *svc, rk_config_t *cfg)
{
	(void)svc;
	rk_idgen_config_t c;
	rk_idgen_config_read(cfg, &c);
	if (memcmp(&c, &config, sizeof(c)) != 0)
		rk_warn("reload: changes to the idgen section take effect "
		        "only on a restart");
	return RK_OK;
}

static void idgen_stop(rk_service_t *svc)
{
	(void)svc;
	rk_idgen_service_stop(service);
	/* While the sealer still lives: give the worker id back. */
	if (lease != NULL)
		rk_idgen_lease_stop(lease);
}

static const rk_service_spec_t spec = {
    .name = "idgen",
    .default_rpc_port = 7500,
    .default_admin_port = 8500,
    .configure = idgen_configure,
    .start = idgen_start,
    .reload = idgen_reload,
    .stop = idgen_stop,
};

int main(int argc, char **argv)
{
	int rc = rk_service_main(argc, argv, &spec);
	/* The RPC server is gone: no handler can run any more. */
	rk_idgen_service_free(service);
	rk_idgen_lease_free(lease);
	return rc;
}
