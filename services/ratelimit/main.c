/*
 * ringkv-ratelimit: the distributed rate limiter. Everything is in the
 * rk_ratelimit library beside this file (ratelimit.h says where to start).
 */
#include "ratelimit.h"

int main(int argc, char **argv)
{
	return rk_service_main(argc, argv, &rk_ratelimit_spec);
}
