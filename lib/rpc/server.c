/*
 * RPC server; see server.h for the contract and docs/wire.md for the bytes.
 *
 * Data structures. The server owns a rep0 socket, one listener, a worker
 * pool, a table of routes (method -> handler, filled before start, read-only
 * after, so lookups take no lock) and `nwork` work items. A work item is a
 * small state machine around one nng_ctx and one nng_aio:
 *
 *	RECV --frame--> check + unpack --bad--> SEND (error status)
 *	                              \--good--> BUSY (handler runs: inline,
 *	                                          or queued on the pool)
 *	BUSY --rk_rpc_reply*()--> SEND --sent/failed--> RECV
 *
 * Invariants. While RECV the aio is armed on the ctx; while BUSY nothing of
 * nng refers to the item and exactly one party (the handler) will move it
 * on; while SEND the aio is armed. The arena is reset only on the way back
 * to RECV. A callback never touches its work item after handing it on
 * (queueing it or calling a handler), because the next callback of the
 * same aio may already be running on another thread.
 *
 * Every failure before the handler answers the client with a status and a
 * (rate-limited) log line; none of them can crash or wedge a work item.
 * A request that cannot be authenticated is answered unsealed, since it
 * cannot be answered sealed to a peer without the key.
 */
#include "rpc/server.h"
#include "rpc/server_internal.h"
#include "rpc/stream_server.h"

#include <arpa/inet.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/workpool.h"
#include "ringkv/v1/common.pb-c.h"
#include "rpc/frame.h"
#include "rpc/pballoc.h"
#include "rpc/request.h"

#define SEND_TIMEOUT_MS   10000
#define MAX_TIMEOUT_MS    (3600u * 1000u)
#define REJECT_LOGS_PER_S 10
/* Bodies this small are serialized into the arena, larger ones on the
 * heap: the arena's budget is for what the peer sent us. */
#define ARENA_PACK_MAX (64u << 10)

/* ---------------------------------------------------------- helpers */

static const route_t *route_find(const rk_rpc_server_t *srv, uint32_t svc,
                                 uint32_t method)
{
	for (size_t i = 0; i < srv->nroutes; i++) {
		const route_t *r = &srv->routes[i];
		if (r->method.service_id == svc &&
		    r->method.method_id == method)
			return r;
	}
	return NULL;
}

static void count_result(rk_rpc_call_t *w, rk_status_t code)
{
	rk_rpc_server_t *srv = w->srv;
	if (srv->metrics == NULL)
		return;
	route_t *r = (route_t *)w->route;
	if (r == NULL) {
		char labels[64];
		snprintf(labels, sizeof(labels), "code=\"%s\"",
		         rk_status_name(code));
		rk_counter_t *c = rk_metrics_counter(
		    srv->metrics, "ringkv_rpc_server_rejected_total",
		    "Requests refused before reaching a handler, by status.",
		    labels);
		if (c != NULL)
			rk_counter_add(c, 1);
		return;
	}
	rk_counter_t *c = atomic_load(&r->by_code[code]);
	if (c == NULL) {
		char labels[160];
		snprintf(labels, sizeof(labels), "method=\"%s\",code=\"%s\"",
		         r->method.full_name, rk_status_name(code));
		c = rk_metrics_counter(
		    srv->metrics, "ringkv_rpc_server_requests_total",
		    "Requests answered, by method and status.", labels);
		atomic_store(&r->by_code[code], c);
	}
	if (c != NULL)
		rk_counter_add(c, 1);
	if (r->latency != NULL)
		rk_histogram_observe(
		    r->latency,
		    (double)(rk_clock_mono_ns() - w->start_ns) / 1e9);
}

/* Logs a refused request, at most REJECT_LOGS_PER_S lines a second so a
 * flood of bad frames cannot flood the log too. */
static void log_reject(rk_rpc_server_t *srv, rk_status_t code, const char *msg)
{
	uint64_t now_s = rk_clock_mono_ms() / 1000;
	uint64_t cur = atomic_load(&srv->reject_log_second);
	if (cur != now_s && atomic_compare_exchange_strong(
	                        &srv->reject_log_second, &cur, now_s))
		atomic_store(&srv->reject_log_count, 0);
	if (atomic_fetch_add(&srv->reject_log_count, 1) < REJECT_LOGS_PER_S)
		rk_warn("rpc %s: refused request: %s: %s", srv->name,
		        rk_status_name(code), msg);
}

void rk_rpc_call_reset(rk_rpc_call_t *w)
{
	rk_arena_reset(&w->arena);
	w->route = NULL;
	w->request = NULL;
	w->sealed = false;
	w->caller = "";
	w->trace_id = 0;
	atomic_store(&w->replied, false);
	w->state = W_RECV;
}

/* Calls into the socket are counted, and refused once shutdown began, so
 * that nng_close() never runs while another thread is still inside
 * nng_ctx_send() or nng_ctx_recv(): nng 1.5.2 can then panic in
 * nni_ctx_rele() on the socket being torn down (seen when a pool thread's
 * reply was still returning as the server was freed). */
static bool sock_enter(rk_rpc_server_t *srv)
{
	atomic_fetch_add(&srv->in_sock, 1);
	if (!atomic_load(&srv->closing))
		return true;
	atomic_fetch_sub(&srv->in_sock, 1);
	return false;
}

static void sock_leave(rk_rpc_server_t *srv)
{
	atomic_fetch_sub(&srv->in_sock, 1);
}

/* Goes back to waiting for the next request; a stream call goes back to
 * its server's idle list instead. */
static void work_rearm(rk_rpc_call_t *w)
{
	if (w->conn != NULL) {
		rk_stream_reply(w, NULL);
		return;
	}
	rk_rpc_call_reset(w);
	if (!sock_enter(w->srv))
		return;
	nng_aio_set_timeout(w->aio, NNG_DURATION_INFINITE);
	nng_ctx_recv(w->ctx, w->aio);
	sock_leave(w->srv);
}

/* Sends ENV as the answer of W, sealed if the request was. */
static void work_send(rk_rpc_call_t *w, Ringkv__V1__ResponseEnvelope *env)
{
	rk_rpc_server_t *srv = w->srv;
	rk_sealer_t *sealer = w->sealed ? srv->sealer : NULL;
	const uint8_t *bind = w->sealed ? w->nonce : NULL;
	nng_msg *msg = NULL;
	rk_status_t code = (rk_status_t)env->status->code;

	if (atomic_load(&srv->stopped)) {
		/* A call the service held past shutdown: nobody listens. */
		count_result(w, code);
		if (w->conn != NULL)
			rk_stream_reply(w, NULL);
		return;
	}
	rk_status_t st = rk_frame_pack(sealer, RK_FRAME_RESPONSE, bind,
	                               &env->base, &msg, NULL);
	if (st == RK_OK && nng_msg_len(msg) > srv->max_frame) {
		size_t len = nng_msg_len(msg);
		nng_msg_free(msg);
		msg = NULL;
		char text[128];
		snprintf(text, sizeof(text),
		         "response of %zu bytes exceeds max_frame_bytes %zu",
		         len, srv->max_frame);
		rk_warn("rpc %s: %s", srv->name, text);
		Ringkv__V1__Status status = RINGKV__V1__STATUS__INIT;
		status.has_code = true;
		code = RK_RESOURCE_EXHAUSTED;
		status.code = RINGKV__V1__STATUS_CODE__RESOURCE_EXHAUSTED;
		status.message = text;
		Ringkv__V1__ResponseEnvelope small =
		    RINGKV__V1__RESPONSE_ENVELOPE__INIT;
		small.status = &status;
		st = rk_frame_pack(sealer, RK_FRAME_RESPONSE, bind, &small.base,
		                   &msg, NULL);
	}
	count_result(w, code);
	if (st != RK_OK) {
		/* Out of memory even for an error: the caller times out. */
		rk_error("rpc %s: cannot build a reply: %s", srv->name,
		         rk_status_name(st));
		work_rearm(w);
		return;
	}
	if (w->conn != NULL) {
		rk_stream_reply(w, msg);
		return;
	}
	if (!sock_enter(srv)) {
		nng_msg_free(msg); /* shutting down: nobody listens */
		return;
	}
	w->state = W_SEND;
	nng_aio_set_msg(w->aio, msg);
	/* rep0 completes a send at once unless the peer's connection is
	 * still busy writing an earlier answer; the timeout bounds how long
	 * a peer that stopped reading can hold this work item. */
	nng_aio_set_timeout(w->aio, SEND_TIMEOUT_MS);
	nng_ctx_send(w->ctx, w->aio);
	sock_leave(srv);
}

static void work_send_status(rk_rpc_call_t *w, rk_status_t code,
                             uint32_t retry_after_ms, const char *text)
{
	Ringkv__V1__Status status = RINGKV__V1__STATUS__INIT;
	status.has_code = true;
	status.code = (Ringkv__V1__StatusCode)code;
	status.message = (char *)text;
	if (retry_after_ms > 0) {
		status.has_retry_after_ms = true;
		status.retry_after_ms = retry_after_ms;
	}
	Ringkv__V1__ResponseEnvelope env = RINGKV__V1__RESPONSE_ENVELOPE__INIT;
	env.status = &status;
	work_send(w, &env);
}

/* Refuses the request in W before it reached a handler. */
static void work_reject(rk_rpc_call_t *w, rk_status_t code, const char *fmt,
                        ...) __attribute__((format(printf, 3, 4)));
static void work_reject(rk_rpc_call_t *w, rk_status_t code, const char *fmt,
                        ...)
{
	char text[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	log_reject(w->srv, code, text);
	atomic_store(&w->replied, true);
	work_send_status(w, code, 0, text);
}

static void work_task(rk_task_t *t)
{
	rk_rpc_call_t *w =
	    (rk_rpc_call_t *)((char *)t - offsetof(rk_rpc_call_t, task));
	if (rk_clock_mono_ms() >= w->deadline_ms) {
		rk_rpc_reply_error(w, RK_DEADLINE_EXCEEDED, 0,
		                   "deadline passed while queued");
		return;
	}
	w->run_fn(w, w->request, w->run_arg);
}

void rk_rpc_call_refuse(rk_rpc_call_t *w, rk_status_t code, const char *text)
{
	w->start_ns = rk_clock_mono_ns();
	work_reject(w, code, "%s", text);
}

void rk_rpc_call_dispatch(rk_rpc_call_t *w, const uint8_t *data, size_t len)
{
	rk_rpc_server_t *srv = w->srv;
	w->start_ns = rk_clock_mono_ns();
	rk_rpc_request_t rq;
	char why[160];
	rk_status_t st =
	    rk_rpc_request_decode(srv->sealer, srv->max_frame, data, len,
	                          &w->arena, &w->pb, &rq, why, sizeof(why));
	/* Sealed or not decides how even a refusal is answered. */
	w->sealed = st == RK_OK && rq.frame.sealed;
	if (w->sealed)
		memcpy(w->nonce, rq.frame.nonce, sizeof(w->nonce));
	if (st != RK_OK) {
		work_reject(w, st, "%s", why);
		return;
	}
	Ringkv__V1__RequestEnvelope *env = rq.env;
	const route_t *r = route_find(srv, env->service, env->method);
	if (r == NULL) {
		work_reject(w, RK_UNIMPLEMENTED,
		            "no method %u of service %u here", env->method,
		            (unsigned)env->service);
		return;
	}
	uint32_t timeout = srv->default_timeout_ms;
	if (env->has_timeout_ms && env->timeout_ms > 0)
		timeout = env->timeout_ms < MAX_TIMEOUT_MS ? env->timeout_ms
		                                           : MAX_TIMEOUT_MS;
	w->deadline_ms = rk_clock_mono_ms() + timeout;
	w->caller = env->caller != NULL ? env->caller : "";
	w->trace_id = env->has_trace_id ? env->trace_id : 0;

	ProtobufCBinaryData body =
	    env->has_body ? env->body : (ProtobufCBinaryData){0, NULL};
	ProtobufCMessage *req = protobuf_c_message_unpack(
	    r->method.desc->input, &w->pb, body.len, body.data);
	if (req == NULL) {
		work_reject(w, RK_INVALID_ARGUMENT,
		            "malformed %s request (%zu bytes)",
		            r->method.full_name, body.len);
		return;
	}
	w->route = r;
	w->request = req;
	w->state = W_BUSY;
	w->run_fn = r->fn;
	w->run_arg = r->arg;
	/* From here on W belongs to the handler: do not touch it. */
	if (r->flags & RK_RPC_INLINE) {
		r->fn(w, req, r->arg);
	} else if (rk_workpool_submit(srv->pool, &w->task) != RK_OK) {
		rk_rpc_reply_error(w, RK_UNAVAILABLE, 0, "server stopping");
	}
}

static void work_cb(void *arg)
{
	rk_rpc_call_t *w = arg;
	int rv = nng_aio_result(w->aio);

	switch (w->state) {
	case W_RECV:
		if (rv != 0) {
			if (rv == NNG_ECLOSED || atomic_load(&w->srv->closing))
				return;
			rk_warn("rpc %s: receive failed: %s", w->srv->name,
			        nng_strerror(rv));
			work_rearm(w);
			return;
		}
		{
			/* The decoder copies what it keeps: the message can go
			 * as soon as it returns, before a slow handler
			 * finishes. */
			nng_msg *msg = nng_aio_get_msg(w->aio);
			nng_aio_set_msg(w->aio, NULL);
			rk_rpc_call_dispatch(w, nng_msg_body(msg),
			                     nng_msg_len(msg));
			nng_msg_free(msg);
			return;
		}
	case W_SEND:
		if (rv != 0) {
			/* The socket owns a message only once sent. */
			nng_msg_free(nng_aio_get_msg(w->aio));
			nng_aio_set_msg(w->aio, NULL);
			if (rv != NNG_ECLOSED)
				rk_debug("rpc %s: reply not sent: %s",
				         w->srv->name, nng_strerror(rv));
		}
		work_rearm(w);
		return;
	case W_BUSY:
		/* No operation is armed while busy. */
		rk_error("rpc %s: completion on a busy work item",
		         w->srv->name);
		return;
	}
}

/* ---------------------------------------------------------- handler API */

void rk_rpc_reply(rk_rpc_call_t *call, const ProtobufCMessage *response)
{
	if (atomic_exchange(&call->replied, true)) {
		/* A handler that answers twice; the route may be gone if
		 * the call was already recycled. */
		rk_error("rpc %s: second reply to one %s call ignored",
		         call->srv->name,
		         call->route != NULL ? call->route->method.full_name
		                             : "(finished)");
		return;
	}
	if (response->descriptor != call->route->method.desc->output) {
		rk_error("rpc %s: %s replied with a %s", call->srv->name,
		         call->route->method.full_name,
		         response->descriptor->name);
		work_send_status(call, RK_INTERNAL, 0,
		                 "reply of the wrong type");
		return;
	}
	size_t n = protobuf_c_message_get_packed_size(response);
	uint8_t *buf = NULL;
	bool heap = false;
	if (n <= ARENA_PACK_MAX)
		buf = rk_arena_alloc(&call->arena, n);
	if (buf == NULL) {
		buf = malloc(n > 0 ? n : 1);
		heap = true;
	}
	if (buf == NULL) {
		work_send_status(call, RK_RESOURCE_EXHAUSTED, 0,
		                 "out of memory building the reply");
		return;
	}
	protobuf_c_message_pack(response, buf);
	Ringkv__V1__Status status = RINGKV__V1__STATUS__INIT;
	status.has_code = true;
	status.code = RINGKV__V1__STATUS_CODE__OK;
	Ringkv__V1__ResponseEnvelope env = RINGKV__V1__RESPONSE_ENVELOPE__INIT;
	env.status = &status;
	env.has_body = true;
	env.body.len = n;
	env.body.data = buf;
	work_send(call, &env);
	if (heap)
		free(buf);
}

void rk_rpc_reply_error(rk_rpc_call_t *call, rk_status_t code,
                        uint32_t retry_after_ms, const char *fmt, ...)
{
	if (atomic_exchange(&call->replied, true)) {
		rk_error("rpc %s: second reply to one call ignored",
		         call->srv->name);
		return;
	}
	if (code == RK_OK || !rk_status_valid((int)code))
		code = RK_INTERNAL;
	char text[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	work_send_status(call, code, retry_after_ms, text);
}

rk_status_t rk_rpc_call_defer(rk_rpc_call_t *call, rk_rpc_handler_fn fn,
                              void *arg)
{
	call->run_fn = fn;
	call->run_arg = arg;
	if (atomic_load(&call->srv->closing) || call->srv->pool == NULL)
		return RK_UNAVAILABLE;
	return rk_workpool_submit(call->srv->pool, &call->task);
}

void *rk_rpc_call_alloc(rk_rpc_call_t *call, size_t n)
{
	return rk_arena_alloc(&call->arena, n);
}

uint64_t rk_rpc_call_deadline_ms(const rk_rpc_call_t *call)
{
	return call->deadline_ms;
}

const char *rk_rpc_call_caller(const rk_rpc_call_t *call)
{
	return call->caller;
}

uint64_t rk_rpc_call_trace_id(const rk_rpc_call_t *call)
{
	return call->trace_id;
}

/* ---------------------------------------------------------- lifecycle */

void rk_rpc_call_init(rk_rpc_server_t *srv, rk_rpc_call_t *w)
{
	w->srv = srv;
	w->caller = "";
	w->task.fn = work_task;
	/* Decoding may take a few times the frame size (pointers, arrays);
	 * never more than this. */
	rk_arena_init(&w->arena, srv->max_frame * 4 + (64u << 10));
	rk_pballoc_init(&w->pb, &w->arena);
}

void rk_rpc_call_fini(rk_rpc_call_t *w)
{
	rk_arena_fini(&w->arena);
}

rk_status_t rk_rpc_server_new(const rk_rpc_server_opts_t *opts,
                              rk_rpc_server_t **out)
{
	if (opts->listen == NULL)
		return RK_INVALID_ARGUMENT;
	rk_rpc_server_t *srv = calloc(1, sizeof(*srv));
	if (srv == NULL)
		return RK_RESOURCE_EXHAUSTED;
	srv->listen = strdup(opts->listen);
	if (srv->listen == NULL) {
		free(srv);
		return RK_RESOURCE_EXHAUSTED;
	}
	snprintf(srv->name, sizeof(srv->name), "%s",
	         opts->name != NULL ? opts->name : "server");
	srv->sealer = opts->sealer;
	srv->max_frame = opts->max_frame_bytes ? opts->max_frame_bytes
	                                       : RK_RPC_DEFAULT_MAX_FRAME;
	srv->nwork =
	    opts->work_items ? opts->work_items : RK_RPC_DEFAULT_WORK_ITEMS;
	srv->nworkers = opts->workers ? opts->workers : RK_RPC_DEFAULT_WORKERS;
	srv->default_timeout_ms = opts->default_timeout_ms
	                              ? opts->default_timeout_ms
	                              : RK_RPC_DEFAULT_TIMEOUT_MS;
	srv->metrics = opts->metrics;
	if (opts->stream_listen != NULL &&
	    (srv->stream_listen = strdup(opts->stream_listen)) == NULL) {
		free(srv->listen);
		free(srv);
		return RK_RESOURCE_EXHAUSTED;
	}
	srv->stream_threads = opts->stream_threads;
	*out = srv;
	return RK_OK;
}

rk_status_t rk_rpc_server_handle(rk_rpc_server_t *srv,
                                 const rk_rpc_method_t *method,
                                 rk_rpc_handler_fn fn, int flags, void *arg)
{
	if (srv->work != NULL)
		return RK_FAILED_PRECONDITION;
	if (route_find(srv, method->service_id, method->method_id) != NULL)
		return RK_ALREADY_EXISTS;
	route_t *routes =
	    realloc(srv->routes, (srv->nroutes + 1) * sizeof(*routes));
	if (routes == NULL)
		return RK_RESOURCE_EXHAUSTED;
	srv->routes = routes;
	route_t *r = &routes[srv->nroutes++];
	memset(r, 0, sizeof(*r));
	r->method = *method;
	r->fn = fn;
	r->flags = flags;
	r->arg = arg;
	if (srv->metrics != NULL) {
		char labels[128];
		snprintf(labels, sizeof(labels), "method=\"%s\"",
		         method->full_name);
		r->latency = rk_metrics_histogram(
		    srv->metrics, "ringkv_rpc_server_latency_seconds",
		    "Time from request frame to reply, by method.", labels,
		    rk_metrics_latency_bounds, rk_metrics_latency_bounds_len);
	}
	return RK_OK;
}

rk_status_t rk_rpc_fail(char **err, rk_status_t st, const char *fmt, ...)
{
	if (err != NULL) {
		va_list ap;
		va_start(ap, fmt);
		if (vasprintf(err, fmt, ap) < 0)
			*err = NULL;
		va_end(ap);
	}
	return st;
}

rk_status_t rk_rpc_server_start(rk_rpc_server_t *srv, char **err)
{
	int rv;
	if (srv->work != NULL)
		return rk_rpc_fail(err, RK_FAILED_PRECONDITION,
		                   "already started");
	if ((rv = nng_rep0_open(&srv->sock)) != 0)
		return rk_rpc_fail(err, RK_INTERNAL, "rep0 socket: %s",
		                   nng_strerror(rv));
	srv->sock_open = true;
	/* The transport drops a frame over twice the cap without reading it
	 * all; between the cap and that, we answer with a clear error. */
	size_t transport_cap = srv->max_frame * 2;
	nng_socket_set_size(srv->sock, NNG_OPT_RECVMAXSZ, transport_cap);
	if ((rv = nng_listener_create(&srv->listener, srv->sock,
	                              srv->listen)) != 0)
		return rk_rpc_fail(err, RK_INVALID_ARGUMENT,
		                   "listen address %s: %s", srv->listen,
		                   nng_strerror(rv));
	nng_listener_set_size(srv->listener, NNG_OPT_RECVMAXSZ, transport_cap);
	if ((rv = nng_listener_start(srv->listener, 0)) != 0)
		return rk_rpc_fail(err, RK_UNAVAILABLE,
		                   "cannot listen on %s: %s", srv->listen,
		                   nng_strerror(rv));
	nng_sockaddr sa;
	if (nng_listener_get_addr(srv->listener, NNG_OPT_LOCADDR, &sa) == 0) {
		if (sa.s_family == NNG_AF_INET)
			srv->port = ntohs(sa.s_in.sa_port);
		else if (sa.s_family == NNG_AF_INET6)
			srv->port = ntohs(sa.s_in6.sa_port);
	}
	rk_status_t st = rk_workpool_new(srv->nworkers, &srv->pool);
	if (st != RK_OK)
		return rk_rpc_fail(err, st, "worker pool: %s",
		                   rk_status_name(st));

	srv->work = calloc(srv->nwork, sizeof(*srv->work));
	if (srv->work == NULL)
		return rk_rpc_fail(err, RK_RESOURCE_EXHAUSTED, "out of memory");
	for (size_t i = 0; i < srv->nwork; i++) {
		rk_rpc_call_t *w = &srv->work[i];
		rk_rpc_call_init(srv, w);
		if ((rv = nng_aio_alloc(&w->aio, work_cb, w)) != 0 ||
		    (rv = nng_ctx_open(&w->ctx, srv->sock)) != 0)
			return rk_rpc_fail(err, RK_RESOURCE_EXHAUSTED,
			                   "work item: %s", nng_strerror(rv));
	}
	if (srv->stream_listen != NULL) {
		st = rk_stream_server_start(srv, srv->stream_listen,
		                            srv->stream_threads, &srv->stream,
		                            err);
		if (st != RK_OK)
			return st;
	}
	for (size_t i = 0; i < srv->nwork; i++)
		work_rearm(&srv->work[i]);
	rk_info("rpc %s: serving on %s (port %d, %zu in flight, %zu workers, "
	        "%s)",
	        srv->name, srv->listen, srv->port, srv->nwork, srv->nworkers,
	        srv->sealer != NULL ? "sealed frames" : "UNSEALED frames");
	return RK_OK;
}

int rk_rpc_server_port(const rk_rpc_server_t *srv)
{
	return srv->port;
}

int rk_rpc_server_stream_port(const rk_rpc_server_t *srv)
{
	return srv->stream != NULL ? rk_stream_server_port(srv->stream) : 0;
}

void rk_rpc_server_shutdown(rk_rpc_server_t *srv)
{
	if (srv == NULL || srv->shut)
		return;
	srv->shut = true;
	atomic_store(&srv->closing, true);
	/* No thread of ours is inside the socket from here on (sock_enter). */
	while (atomic_load(&srv->in_sock) != 0)
		sched_yield();
	/* Shutdown order: close the socket (every armed aio completes with
	 * ECLOSED), let queued handlers run (their replies fail fast), stop
	 * every aio (waits out running callbacks, inline handlers among
	 * them). After this no handler starts or runs on our threads. */
	if (srv->sock_open)
		nng_close(srv->sock);
	/* The stream loops stop too: after this no inline handler runs and
	 * every stream connection is closed, so queued handlers' answers go
	 * nowhere. */
	rk_stream_server_stop(srv->stream);
	rk_workpool_free(srv->pool);
	srv->pool = NULL;
	atomic_store(&srv->stopped, true);
	if (srv->work != NULL)
		for (size_t i = 0; i < srv->nwork; i++)
			if (srv->work[i].aio != NULL)
				nng_aio_stop(srv->work[i].aio);
}

void rk_rpc_server_free(rk_rpc_server_t *srv)
{
	if (srv == NULL)
		return;
	rk_rpc_server_shutdown(srv);
	if (srv->work != NULL) {
		for (size_t i = 0; i < srv->nwork; i++) {
			rk_rpc_call_t *w = &srv->work[i];
			if (w->aio != NULL)
				nng_aio_free(w->aio);
			rk_rpc_call_fini(w);
		}
		free(srv->work);
	}
	rk_stream_server_free(srv->stream);
	free(srv->stream_listen);
	free(srv->routes);
	free(srv->listen);
	free(srv);
}
