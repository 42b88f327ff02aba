/*
 * ringkv-membership: the gossip agent beside each storage node. The
 * agent itself lives in rk_membership (agent.c and its neighbours).
 */
#include "agent.h"

static const rk_service_spec_t spec = {
    .name = "membership",
    .default_rpc_port = 7300,
    .default_admin_port = 8300,
    .configure = rk_ms_configure,
    .start = rk_ms_start,
    .stop = rk_ms_stop,
};

int main(int argc, char **argv)
{
	int rc = rk_service_main(argc, argv, &spec);
	rk_ms_cleanup();
	return rc;
}
