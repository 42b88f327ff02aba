/*
 * The client side of the stream transport (stream_wire.h): request frames
 * over plain TCP connections to one "stream://HOST:PORT", one call at a
 * time per connection.
 *
 * A synchronous call borrows an idle connection (or opens one), writes its
 * frame, and waits in poll(2) on its own thread for the answer, up to the
 * deadline: no other thread is woken on the way, which is the point of
 * this transport. Connections go back to the idle list after a clean
 * answer; one that timed out or broke is closed, so a late answer can
 * never be taken for the next call's. An idle connection the server has
 * closed is noticed before reuse and replaced.
 *
 * At most once: a request is written once and never resent.
 *
 * Internal to lib/rpc: rk_rpc_client uses it for stream:// URLs.
 */
#ifndef RK_RPC_STREAM_CLIENT_H
#define RK_RPC_STREAM_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <ringkv/status.h>

#include "rpc/client.h"

typedef struct rk_stream_client rk_stream_client_t;

/* Reads the answer bytes of a call; they are valid only during the call. */
typedef void (*rk_stream_answer_fn)(const uint8_t *data, size_t len,
                                    void *arg);

/* Makes a client for URL ("stream://HOST:PORT"); nothing is connected yet.
 * RK_INVALID_ARGUMENT for a malformed URL. */
rk_status_t rk_stream_client_new(const char *url, size_t max_frame,
                                 rk_stream_client_t **out);

/* Sends FRAME[0..len) and waits for its answer until DEADLINE_MS (the
 * monotonic clock, ms). On an answer calls ANSWER and returns RK_OK;
 * otherwise fills RES's code and message: UNAVAILABLE (cannot connect,
 * or the connection broke), DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED (the
 * answer is over the frame cap), CANCELLED (the client is closing). */
rk_status_t rk_stream_client_call(rk_stream_client_t *sc,
                                  const uint8_t *frame, size_t len,
                                  uint64_t deadline_ms, uint32_t timeout_ms,
                                  rk_stream_answer_fn answer, void *arg,
                                  rk_rpc_result_t *res);

/* Cancels every call in flight (they end CANCELLED) and refuses new ones.
 * Returns at once; the calls end on their own threads. */
void rk_stream_client_cancel(rk_stream_client_t *sc);

/* Frees; no call may be in flight. NULL is ok. */
void rk_stream_client_free(rk_stream_client_t *sc);

/* Open connections: for health displays. */
int rk_stream_client_connections(rk_stream_client_t *sc);

#endif
