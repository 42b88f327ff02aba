/*
 * Decoding one request frame as it arrives from the network: size cap,
 * frame header, seal and replay check, envelope. The server runs it on
 * every request and the fuzz target feeds it arbitrary bytes; routing and
 * the body are the caller's.
 */
#ifndef RK_RPC_REQUEST_H
#define RK_RPC_REQUEST_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include <ringkv/status.h>

#include "core/arena.h"
#include "crypto/seal.h"
#include "ringkv/v1/common.pb-c.h"
#include "rpc/frame.h"

typedef struct rk_rpc_request {
	rk_frame_t frame;                 /* sealed or not, and the nonce */
	Ringkv__V1__RequestEnvelope *env; /* in the arena; names a method */
} rk_rpc_request_t;

/* Decodes DATA[0..len) into OUT, allocating from ARENA through PB (an
 * allocator over ARENA). S: the cluster key's sealer, or NULL to accept
 * only unsealed frames. DATA may be freed once this returns. On error WHY
 * (WHYLEN bytes) says what was wrong, and the status is
 * RK_INVALID_ARGUMENT, RK_UNAUTHENTICATED or RK_RESOURCE_EXHAUSTED. */
rk_status_t rk_rpc_request_decode(rk_sealer_t *s, size_t max_frame,
                                  const uint8_t *data, size_t len,
                                  rk_arena_t *arena, ProtobufCAllocator *pb,
                                  rk_rpc_request_t *out, char *why,
                                  size_t whylen);

#endif
