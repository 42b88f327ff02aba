/*
 * The RPC server: gRPC-style request/response over an nng rep0 socket,
 * and optionally also over the stream transport (stream_server.h), which
 * serves the same routes with the same frames on plain TCP.
 *
 * A fixed set of work items (nng_ctx + nng_aio + state), as in nng's async
 * demo, keeps up to `work_items` requests in flight. Each request is
 * checked (size, header, seal, replay, envelope, method, body) and answered
 * with a clear status when anything is wrong; a good one goes to its
 * handler:
 *
 *  - RK_RPC_INLINE handlers run on nng's callback thread and must not
 *    block (Health, Echo, anything that only reads memory);
 *  - other handlers run on the server's worker pool and may block.
 *
 * Either way the handler answers exactly once, with rk_rpc_reply() or
 * rk_rpc_reply_error(), from any thread and at any later time; until then
 * the request holds its work item. A request whose deadline has passed
 * before its handler starts is answered DEADLINE_EXCEEDED without running
 * the handler.
 *
 * Memory: the request message, and anything the handler takes from
 * rk_rpc_call_alloc(), live in the work item's arena until the reply has
 * been sent. The response message passed to rk_rpc_reply() is borrowed: it
 * is serialized before rk_rpc_reply() returns.
 */
#ifndef RK_RPC_SERVER_H
#define RK_RPC_SERVER_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include <ringkv/status.h>

#include "crypto/seal.h"
#include "metrics/metrics.h"
#include "rpc/method.h"

/* Largest frame accepted by default: 4 MiB, room for a 1 MiB value with
 * its siblings and clocks. */
#define RK_RPC_DEFAULT_MAX_FRAME   (4u << 20)
#define RK_RPC_DEFAULT_WORK_ITEMS  256
#define RK_RPC_DEFAULT_WORKERS     4
#define RK_RPC_DEFAULT_TIMEOUT_MS  10000

typedef struct rk_rpc_server rk_rpc_server_t;
typedef struct rk_rpc_call rk_rpc_call_t;

typedef void (*rk_rpc_handler_fn)(rk_rpc_call_t *call,
                                  const ProtobufCMessage *request, void *arg);

#define RK_RPC_INLINE 0x1 /* run on nng's thread: the handler never blocks */

typedef struct rk_rpc_server_opts {
	const char *listen;          /* "tcp://HOST:PORT"; port 0 picks one */
	rk_sealer_t *sealer;         /* borrowed; NULL accepts unsealed frames */
	size_t max_frame_bytes;      /* 0: RK_RPC_DEFAULT_MAX_FRAME */
	size_t work_items;           /* requests in flight; 0: default */
	size_t workers;              /* pool threads; 0: default */
	uint32_t default_timeout_ms; /* when a request names none; 0: default */
	rk_metrics_t *metrics;       /* borrowed, may be NULL */
	const char *name;            /* for logs: "storage", ... */
	/* A second listener on the stream transport (stream_server.h):
	 * "stream://HOST:PORT", or NULL for none. Same methods, same frames
	 * and sealing, without nng in the way. */
	const char *stream_listen;
	size_t stream_threads;       /* its event loops; 0: one per CPU */
} rk_rpc_server_opts_t;

/* Makes a server; nothing listens until rk_rpc_server_start(). OPTS and the
 * strings in it are copied; the sealer and metrics are borrowed and must
 * outlive the server. Caller frees with rk_rpc_server_free(). */
rk_status_t rk_rpc_server_new(const rk_rpc_server_opts_t *opts,
                              rk_rpc_server_t **out);

/* Routes METHOD to FN, called with ARG. Only before start. METHOD is
 * copied. RK_ALREADY_EXISTS if routed before. Methods never routed answer
 * UNIMPLEMENTED. */
rk_status_t rk_rpc_server_handle(rk_rpc_server_t *srv,
                                 const rk_rpc_method_t *method,
                                 rk_rpc_handler_fn fn, int flags, void *arg);

/* Binds and starts serving. On error *err (caller frees; may be NULL) says
 * why; RK_UNAVAILABLE when the address cannot be bound. */
rk_status_t rk_rpc_server_start(rk_rpc_server_t *srv, char **err);

/* The TCP port bound (after start). */
int rk_rpc_server_port(const rk_rpc_server_t *srv);

/* The stream transport's TCP port (after start), or 0 without one. */
int rk_rpc_server_stream_port(const rk_rpc_server_t *srv);

/* Stops serving: stops listening, runs the handlers already queued (their
 * replies are dropped) and waits for handlers running on nng's threads.
 * Afterwards no handler starts; a call a service still holds may be
 * answered (the answer goes nowhere) until rk_rpc_server_free(). Must not
 * be called from a handler. Safe with NULL, and more than once. */
void rk_rpc_server_shutdown(rk_rpc_server_t *srv);

/* Shuts down if not yet done, and frees. Every call a service held must
 * have been answered before. Safe with NULL. */
void rk_rpc_server_free(rk_rpc_server_t *srv);

/* --- inside a handler ------------------------------------------------- */

/* Answers OK with RESPONSE (borrowed; serialized before this returns; must
 * be of the method's output type). Exactly once per call, any thread. */
void rk_rpc_reply(rk_rpc_call_t *call, const ProtobufCMessage *response);

/* Answers with an error CODE (not RK_OK), a message and, where it applies,
 * a retry-after in ms (0: none). Exactly once per call, any thread. */
void rk_rpc_reply_error(rk_rpc_call_t *call, rk_status_t code,
                        uint32_t retry_after_ms, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* From an RK_RPC_INLINE handler that finds it must block after all (a
 * call to another server, say): hands CALL to the worker pool, where
 * FN(call, request, ARG) runs and answers it. The inline handler then
 * returns without answering. RK_UNAVAILABLE when the server is stopping:
 * the caller still owns the call and must answer it. */
rk_status_t rk_rpc_call_defer(rk_rpc_call_t *call, rk_rpc_handler_fn fn,
                              void *arg);

/* Memory that lives until the reply has been sent (e.g. parts of the
 * response). NULL when the request's memory budget is spent. */
void *rk_rpc_call_alloc(rk_rpc_call_t *call, size_t n);

/* The request's deadline, on the monotonic clock in ms (core/clock.h). */
uint64_t rk_rpc_call_deadline_ms(const rk_rpc_call_t *call);

/* Who called (from the envelope; "" if unnamed) and the trace id. The
 * caller name is borrowed from the call. */
const char *rk_rpc_call_caller(const rk_rpc_call_t *call);
uint64_t rk_rpc_call_trace_id(const rk_rpc_call_t *call);

#endif
