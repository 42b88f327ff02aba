/*
 * The stream transport of the RPC server: the same routes, frames and
 * sealing as the nng transport, on plain TCP connections driven by a few
 * epoll loops (stream_wire.h for the bytes).
 *
 * Why a second transport: on small machines nng's req/rep costs several
 * thread hand-offs per message, about 130 µs of CPU per round trip, where
 * the kernel's own TCP round trip costs a tenth of that. Hot paths that
 * answer in a microsecond (rate-limit checks) would spend nearly all their
 * time in the transport. Here a request is read, decoded, handled (inline
 * handlers run on the loop thread) and answered by the thread that read
 * it, with one write(2) in the common case.
 *
 * Internal to lib/rpc: services turn it on with rpc.stream_listen.
 */
#ifndef RK_RPC_STREAM_SERVER_H
#define RK_RPC_STREAM_SERVER_H

#include <nng/nng.h>
#include <stddef.h>

#include <ringkv/status.h>

#include "rpc/server_internal.h"

/* Listens on LISTEN ("stream://HOST:PORT"; port 0 picks one) and starts
 * THREADS event loops (0: one per CPU, at most 16). On error *err (caller
 * frees; may be NULL) says why. */
rk_status_t rk_stream_server_start(rk_rpc_server_t *srv, const char *listen,
                                   size_t threads, rk_stream_server_t **out,
                                   char **err);

/* The port bound. */
int rk_stream_server_port(const rk_stream_server_t *ss);

/* Stops listening, stops the loops (waiting out inline handlers) and
 * closes every connection: answers still to come are dropped. NULL ok. */
void rk_stream_server_stop(rk_stream_server_t *ss);

/* Frees; every call must have been answered. NULL is ok. */
void rk_stream_server_free(rk_stream_server_t *ss);

/* Sends FRAME (taken; NULL: nothing to send) as the answer of W on its
 * connection, unless the connection is gone, and recycles W. Any thread. */
void rk_stream_reply(rk_rpc_call_t *w, nng_msg *frame);

#endif
