/* The RPC request decoder as a fuzz target; see rpc_request_target.c. */
#ifndef RK_FUZZ_RPC_REQUEST_TARGET_H
#define RK_FUZZ_RPC_REQUEST_TARGET_H

#include <stddef.h>
#include <stdint.h>

/* Decodes DATA as a request frame and, when it names a method of any
 * ringkv service, its body as that method's input. Returns 1 if it got as
 * far as a body, else 0. Never crashes, whatever DATA is: that is what
 * the fuzzer and the randomized unit test check. */
int rk_fuzz_rpc_request(const uint8_t *data, size_t size);

#endif
