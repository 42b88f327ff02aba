/*
 * ringkv-ratelimit: the distributed rate limiter.
 *
 * For now it runs the shared service runtime (lib/service): config, the
 * cluster key, the RPC server answering Health, the admin port with
 * /healthz and /metrics, systemd notification and signals. Its own
 * methods are not served yet and answer UNIMPLEMENTED.
 */
#include "service/service.h"

static const rk_service_spec_t spec = {
	.name = "ratelimit",
	.default_rpc_port = 7400,
	.default_admin_port = 8400,
};

int main(int argc, char **argv)
{
	return rk_service_main(argc, argv, &spec);
}
