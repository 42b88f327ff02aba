/* libFuzzer entry for the LSM table reader (lsm_targets.c). */
#include "lsm_targets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	rk_fuzz_lsm_table(data, size);
	return 0;
}
