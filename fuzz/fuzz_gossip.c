/* libFuzzer entry for gossip bodies (gossip_target.c). */
#include "gossip_target.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	rk_fuzz_gossip(data, size);
	return 0;
}
