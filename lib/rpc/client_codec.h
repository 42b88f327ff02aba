/*
 * What both client transports do to a call's bytes: pack a request into a
 * frame (envelope, deadline, caller, trace id, seal) and read an answer
 * frame into a result (open, check the binding to the request, unpack).
 * client.c drives nng with them and stream_client.c plain TCP.
 *
 * Internal to lib/rpc.
 */
#ifndef RK_RPC_CLIENT_CODEC_H
#define RK_RPC_CLIENT_CODEC_H

#include <nng/nng.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/seal.h"
#include "rpc/client.h"
#include "rpc/method.h"

/* Sets RES's code and message. */
void rk_rpc_result_set(rk_rpc_result_t *res, rk_status_t code,
                       const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Packs REQUEST (of M's input type) into a request frame, sealed with
 * SEALER when not NULL, naming CALLER, TRACE_ID and TIMEOUT_MS. NONCE
 * receives the nonce the answer must bind. On RK_OK *out is the caller's;
 * otherwise WHY says what was wrong (INVALID_ARGUMENT for a request of the
 * wrong type or over MAX_FRAME, RESOURCE_EXHAUSTED). */
rk_status_t rk_rpc_request_pack(rk_sealer_t *sealer, const char *caller,
                                uint64_t trace_id, size_t max_frame,
                                const rk_rpc_method_t *m,
                                const ProtobufCMessage *request,
                                uint32_t timeout_ms, nng_msg **out,
                                uint8_t nonce[RK_SEAL_NONCE_BYTES],
                                rk_rpc_result_t *why);

/* Reads the answer frame DATA[0..len) to a call of M into RES (code,
 * message, retry-after, and on RK_OK the response in RES's arena). BIND
 * is the request's nonce when it was sealed, else NULL. DATA may go once
 * this returns. */
void rk_rpc_response_unpack(rk_sealer_t *sealer, size_t max_frame,
                            const uint8_t *bind, const rk_rpc_method_t *m,
                            const uint8_t *data, size_t len,
                            rk_rpc_result_t *res);

#endif
