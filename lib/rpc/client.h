/*
 * The RPC client: calls to one server over an nng req0 socket, each with a
 * deadline, synchronous or asynchronous.
 *
 * One client holds one socket dialed to one URL; nng reconnects with
 * exponential back-off (reconnect_min_ms doubling to reconnect_max_ms) and
 * the dial never blocks. REQ resend is off: a request is sent at most once,
 * so handlers need not be idempotent. Each call opens its own nng_ctx, so
 * any number of calls may be in flight from any number of threads.
 *
 * Outcomes, besides the server's own status:
 *   DEADLINE_EXCEEDED  sent, no answer within the deadline
 *   UNAVAILABLE        never connected within the deadline, or the
 *                      connection broke while the call was in flight
 *   UNAUTHENTICATED    the answer failed authentication
 *   INVALID_ARGUMENT   the request could not be packed or was too large
 *   CANCELLED          the client was freed while the call was in flight
 * Every call ends with exactly one outcome, by its deadline at the latest.
 */
#ifndef RK_RPC_CLIENT_H
#define RK_RPC_CLIENT_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include <ringkv/status.h>

#include "core/arena.h"
#include "crypto/seal.h"
#include "rpc/method.h"

#define RK_RPC_DEFAULT_CALL_TIMEOUT_MS 5000

typedef struct rk_rpc_client rk_rpc_client_t;

typedef struct rk_rpc_client_opts {
	const char *url;           /* "tcp://HOST:PORT" */
	rk_sealer_t *sealer;       /* borrowed; NULL: unsealed frames */
	size_t max_frame_bytes;    /* 0: RK_RPC_DEFAULT_MAX_FRAME */
	uint32_t reconnect_min_ms; /* 0: 100 */
	uint32_t reconnect_max_ms; /* 0: 5000 */
	const char *caller;        /* our name in envelopes; NULL: "" */
} rk_rpc_client_opts_t;

/* The outcome of one call. */
typedef struct rk_rpc_result {
	rk_status_t code;           /* RK_OK or why not */
	char message[256];          /* the server's or the client's words */
	uint32_t retry_after_ms;    /* when the server gave one, else 0 */
	ProtobufCMessage *response; /* on RK_OK: the method's output type,
	                               in `arena`; otherwise NULL */
	uint64_t latency_ns;        /* from call to outcome */
	rk_arena_t arena;           /* holds response */
} rk_rpc_result_t;

/* Makes a client and starts dialing (without waiting). OPTS and its strings
 * are copied; the sealer is borrowed and must outlive the client. Caller
 * frees with rk_rpc_client_free(). RK_INVALID_ARGUMENT for a bad URL. */
rk_status_t rk_rpc_client_new(const rk_rpc_client_opts_t *opts,
                              rk_rpc_client_t **out);

/* Ends every call in flight (CANCELLED; their callbacks run), waits for
 * their callbacks to return, and frees. Not from a callback. NULL is ok. */
void rk_rpc_client_free(rk_rpc_client_t *c);

/* Calls METHOD with REQUEST (borrowed; serialized before this returns)
 * and waits up to TIMEOUT_MS (0: RK_RPC_DEFAULT_CALL_TIMEOUT_MS). Fills
 * RES, which the caller clears with rk_rpc_result_clear(), and returns
 * res->code. METHOD is borrowed for the duration of the call. */
rk_status_t rk_rpc_call(rk_rpc_client_t *c, const rk_rpc_method_t *method,
                        const ProtobufCMessage *request, uint32_t timeout_ms,
                        rk_rpc_result_t *res);

/* Called once per asynchronous call, on an nng thread (stream:// URLs: on
 * one of the client's call threads) that it must not block.
 * RES is heap memory the callback now owns: free it with
 * rk_rpc_result_free(), now or later. */
typedef void (*rk_rpc_done_fn)(rk_rpc_result_t *res, void *arg);

/* Starts a call and returns at once. If it returns RK_OK, DONE runs exactly
 * once; if it returns an error, DONE never runs. METHOD must outlive the
 * call (method handles are normally static). Over stream:// each call in
 * flight holds a call thread of the client, started as needed up to 256;
 * calls beyond that wait for one (their deadline still runs). */
rk_status_t rk_rpc_call_async(rk_rpc_client_t *c,
                              const rk_rpc_method_t *method,
                              const ProtobufCMessage *request,
                              uint32_t timeout_ms, rk_rpc_done_fn done,
                              void *arg);

/* Frees what a synchronous call left in RES (not RES itself). */
void rk_rpc_result_clear(rk_rpc_result_t *res);

/* Frees a result given to an rk_rpc_done_fn. NULL is ok. */
void rk_rpc_result_free(rk_rpc_result_t *res);

/* Connections currently up (0 or 1 for one URL): for health displays. */
int rk_rpc_client_connected(const rk_rpc_client_t *c);

#endif
