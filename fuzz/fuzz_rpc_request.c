/* libFuzzer entry for the RPC request decoder (rpc_request_target.c). */
#include "rpc_request_target.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	rk_fuzz_rpc_request(data, size);
	return 0;
}
