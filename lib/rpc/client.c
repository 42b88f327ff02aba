/*
 * RPC client; see client.h for the contract and docs/wire.md for the bytes.
 *
 * Each call is a heap object with its own nng_ctx and nng_aio and a
 * two-phase state machine: SEND (the request waits for a connection, up
 * to the deadline) then RECV (the answer, up to what is left of the
 * deadline). The aio timeout is the deadline; nothing here sleeps.
 *
 * A call object lives from rk_rpc_call_async() until its done callback has
 * returned; the aio is released with nng_aio_reap() from its own callback,
 * which nng allows. `inflight` counts live call objects so that
 * rk_rpc_client_free() can close the socket (every armed aio completes with
 * ECLOSED) and then wait until the last callback has returned.
 *
 * REQ resend is disabled, so when a connection breaks with a request on
 * it, nng fails that request with ECONNRESET instead of sending it again:
 * we report UNAVAILABLE and never run a request twice.
 */
#include "rpc/client.h"
#include "rpc/client_codec.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/log.h"
#include "ringkv/v1/common.pb-c.h"
#include "rpc/frame.h"
#include "rpc/pballoc.h"
#include "rpc/server.h"
#include "rpc/stream_client.h"
#include "rpc/stream_wire.h"

/* A req context and a callback-less aio kept for synchronous calls:
 * opening and closing a context per call costs a wake-up of nng's reaper
 * thread each time, so synchronous calls reuse them. */
typedef struct sync_slot {
	nng_ctx ctx;            /* a req context of the client's socket */
	nng_aio *aio;           /* without callback: waited on */
	struct sync_slot *next; /* idle list link */
} sync_slot_t;

struct rk_rpc_client {
	nng_socket sock;     /* req0 */
	nng_dialer dialer;   /* to url, non-blocking, with back-off */
	char *url;           /* as given */
	char *caller;        /* our name in envelopes */
	rk_sealer_t *sealer; /* borrowed; NULL: unsealed */
	size_t max_frame;    /* cap on frames both ways */
	atomic_int pipes;    /* connections up */
	atomic_uint_fast64_t trace_seq; /* next trace id */
	pthread_mutex_t mu;             /* guards inflight and closing */
	pthread_cond_t cv;              /* signalled when inflight drops to 0 */
	size_t inflight;                /* call objects alive */
	sync_slot_t *idle;   /* slots for synchronous calls, unused now */
	atomic_bool closing; /* no new calls; ends calls in flight */
	rk_stream_client_t *stream; /* stream:// URLs: the transport used
	                               instead of the socket */
	/* Threads for asynchronous stream calls, under mu (see
	 * stream_call_async): */
	struct stream_task *aq_head, *aq_tail; /* calls not yet started */
	size_t aq_len;                         /* their number */
	size_t athreads;                       /* call threads alive */
	size_t aidle;                          /* of which waiting */
	pthread_cond_t acv; /* wakes idle call threads; signalled too
	                       when one exits */
};

enum call_phase { PHASE_SEND, PHASE_RECV };

typedef struct call {
	rk_rpc_client_t *c;                 /* owner */
	nng_aio *aio;                       /* this call's aio */
	nng_ctx ctx;                        /* this call's req context */
	enum call_phase phase;              /* see the essay above */
	uint64_t start_ns;                  /* monotonic, for latency */
	uint64_t deadline_ms;               /* monotonic */
	uint32_t timeout_ms;                /* as asked, for messages */
	bool sealed;                        /* the request was sealed */
	uint8_t nonce[RK_SEAL_NONCE_BYTES]; /* its nonce: the reply binds it */
	const rk_rpc_method_t *m;           /* borrowed method handle */
	rk_rpc_done_fn done;                /* the caller's callback */
	void *arg;                          /* its argument */
	rk_rpc_result_t *res;               /* handed to done */
} call_t;

static void pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	(void)p;
	rk_rpc_client_t *c = arg;
	if (ev == NNG_PIPE_EV_ADD_POST)
		atomic_fetch_add(&c->pipes, 1);
	else if (ev == NNG_PIPE_EV_REM_POST)
		atomic_fetch_sub(&c->pipes, 1);
}

static void call_release(rk_rpc_client_t *c)
{
	pthread_mutex_lock(&c->mu);
	if (--c->inflight == 0)
		pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

/* Ends CALL: hands its result to the caller and frees the rest. Runs on the
 * call's own aio callback. */
static void call_finish(call_t *call)
{
	rk_rpc_client_t *c = call->c;
	call->res->latency_ns = rk_clock_mono_ns() - call->start_ns;
	nng_ctx_close(call->ctx);
	nng_aio_reap(call->aio);
	call->done(call->res, call->arg);
	free(call);
	call_release(c);
}

/* Reads the answer in MSG into the call's result. Takes MSG. */
static void call_decode(call_t *call, nng_msg *msg)
{
	rk_rpc_client_t *c = call->c;
	rk_rpc_response_unpack(c->sealer, c->max_frame,
	                       call->sealed ? call->nonce : NULL, call->m,
	                       nng_msg_body(msg), nng_msg_len(msg), call->res);
	nng_msg_free(msg);
}

/* Handles the completion of the call's current phase. Returns true when
 * the call has its outcome in call->res; false when it has armed the
 * receive of the answer. */
static bool call_advance(call_t *call)
{
	rk_rpc_client_t *c = call->c;
	int rv = nng_aio_result(call->aio);

	if (rv != 0 && atomic_load(&c->closing)) {
		/* Closing the socket breaks its connections first: whatever
		 * error that gave, the cause is the close. */
		if (call->phase == PHASE_SEND) {
			nng_msg_free(nng_aio_get_msg(call->aio));
			nng_aio_set_msg(call->aio, NULL);
		}
		rk_rpc_result_set(call->res, RK_CANCELLED, "client closed");
		return true;
	}
	if (call->phase == PHASE_SEND) {
		if (rv != 0) {
			/* Not sent: the message is still ours. */
			nng_msg_free(nng_aio_get_msg(call->aio));
			nng_aio_set_msg(call->aio, NULL);
			if (rv == NNG_ETIMEDOUT && atomic_load(&c->pipes) == 0)
				rk_rpc_result_set(
				    call->res, RK_UNAVAILABLE,
				    "not connected to %s within %u ms", c->url,
				    call->timeout_ms);
			else if (rv == NNG_ETIMEDOUT)
				rk_rpc_result_set(
				    call->res, RK_DEADLINE_EXCEEDED,
				    "not sent within %u ms", call->timeout_ms);
			else if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
				rk_rpc_result_set(call->res, RK_CANCELLED,
				                  "client closed");
			else
				rk_rpc_result_set(call->res, RK_UNAVAILABLE,
				                  "send to %s failed: %s",
				                  c->url, nng_strerror(rv));
			return true;
		}
		uint64_t now = rk_clock_mono_ms();
		if (now >= call->deadline_ms) {
			rk_rpc_result_set(call->res, RK_DEADLINE_EXCEEDED,
			                  "no answer within %u ms",
			                  call->timeout_ms);
			return true;
		}
		call->phase = PHASE_RECV;
		nng_aio_set_timeout(call->aio,
		                    (nng_duration)(call->deadline_ms - now));
		nng_ctx_recv(call->ctx, call->aio);
		return false;
	}

	if (rv == 0) {
		call_decode(call, nng_aio_get_msg(call->aio));
		nng_aio_set_msg(call->aio, NULL);
	} else if (rv == NNG_ETIMEDOUT) {
		rk_rpc_result_set(call->res, RK_DEADLINE_EXCEEDED,
		                  "no answer within %u ms", call->timeout_ms);
	} else if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
		rk_rpc_result_set(call->res, RK_CANCELLED, "client closed");
	} else {
		rk_rpc_result_set(call->res, RK_UNAVAILABLE,
		                  "connection to %s lost: %s", c->url,
		                  nng_strerror(rv));
	}
	return true;
}

static void call_cb(void *arg)
{
	call_t *call = arg;
	if (call_advance(call))
		call_finish(call);
}

/* Builds and sends one call. With DONE, the call completes on nng's
 * threads and DONE gets its result. Without (a synchronous call), it runs
 * on SLOT's callback-less aio and context, and *OUT is the started call,
 * for the caller's thread to drive with nng_aio_wait(): that saves a hop
 * through nng's task threads on every synchronous call. On error nothing was
 * started and WHY (the caller's) holds the reason. */
static rk_status_t call_start(rk_rpc_client_t *c, const rk_rpc_method_t *m,
                              const ProtobufCMessage *request,
                              uint32_t timeout_ms, rk_rpc_done_fn done,
                              void *arg, rk_rpc_result_t *why,
                              sync_slot_t *slot, call_t **out)
{
	if (timeout_ms == 0)
		timeout_ms = RK_RPC_DEFAULT_CALL_TIMEOUT_MS;

	pthread_mutex_lock(&c->mu);
	if (atomic_load(&c->closing)) {
		pthread_mutex_unlock(&c->mu);
		rk_rpc_result_set(why, RK_CANCELLED, "client closed");
		return why->code;
	}
	c->inflight++;
	pthread_mutex_unlock(&c->mu);

	call_t *call = calloc(1, sizeof(*call));
	rk_rpc_result_t *res = calloc(1, sizeof(*res));
	nng_msg *msg = NULL;
	int rv;
	if (call == NULL || res == NULL)
		goto nomem;
	rk_arena_init(&res->arena, c->max_frame * 4 + (64u << 10));
	call->c = c;
	call->res = res;
	call->m = m;
	call->done = done;
	call->arg = arg;
	call->timeout_ms = timeout_ms;
	call->start_ns = rk_clock_mono_ns();
	call->deadline_ms = rk_clock_mono_ms() + timeout_ms;

	if (rk_rpc_request_pack(c->sealer, c->caller,
	                        atomic_fetch_add(&c->trace_seq, 1),
	                        c->max_frame, m, request, timeout_ms, &msg,
	                        call->nonce, why) != RK_OK)
		goto fail;
	call->sealed = c->sealer != NULL;
	if (slot != NULL) {
		call->aio = slot->aio;
		call->ctx = slot->ctx;
	} else if ((rv = nng_aio_alloc(&call->aio, call_cb, call)) != 0) {
		goto nomem;
	} else if ((rv = nng_ctx_open(&call->ctx, c->sock)) != 0) {
		nng_aio_free(call->aio);
		rk_rpc_result_set(why, RK_CANCELLED, "client closed: %s",
		                  nng_strerror(rv));
		goto fail;
	}
	call->phase = PHASE_SEND;
	nng_aio_set_timeout(call->aio, (nng_duration)timeout_ms);
	nng_aio_set_msg(call->aio, msg);
	if (out != NULL)
		*out = call;
	nng_ctx_send(call->ctx, call->aio);
	return RK_OK;

nomem:
	rk_rpc_result_set(why, RK_RESOURCE_EXHAUSTED, "out of memory");
fail:
	if (msg != NULL)
		nng_msg_free(msg);
	if (res != NULL)
		rk_arena_fini(&res->arena);
	free(res);
	free(call);
	call_release(c);
	return why->code;
}

/* ---------------------------------------------------------- stream */

/* What reads a stream answer into its result. */
typedef struct answer_ctx {
	rk_rpc_client_t *c;       /* the client */
	const rk_rpc_method_t *m; /* the method called */
	const uint8_t *bind;      /* the request nonce, when sealed */
	rk_rpc_result_t *res;     /* filled */
} answer_ctx_t;

static void stream_answer(const uint8_t *data, size_t len, void *arg)
{
	answer_ctx_t *a = arg;
	rk_rpc_response_unpack(a->c->sealer, a->c->max_frame, a->bind, a->m,
	                       data, len, a->res);
}

/* Counts a call in flight, unless the client is closing. */
static bool call_admit(rk_rpc_client_t *c, rk_rpc_result_t *res)
{
	pthread_mutex_lock(&c->mu);
	bool ok = !atomic_load(&c->closing);
	if (ok)
		c->inflight++;
	pthread_mutex_unlock(&c->mu);
	if (!ok)
		rk_rpc_result_set(res, RK_CANCELLED, "client closed");
	return ok;
}

/* One stream call whose request is packed: sends MSG (taken) and reads
 * the answer into RES. */
static void stream_exchange(rk_rpc_client_t *c, const rk_rpc_method_t *m,
                            nng_msg *msg, const uint8_t *bind,
                            uint64_t deadline_ms, uint32_t timeout_ms,
                            rk_rpc_result_t *res)
{
	answer_ctx_t a = {.c = c, .m = m, .bind = bind, .res = res};
	rk_stream_client_call(c->stream, nng_msg_body(msg), nng_msg_len(msg),
	                      deadline_ms, timeout_ms, stream_answer, &a, res);
	nng_msg_free(msg);
}

static rk_status_t stream_call(rk_rpc_client_t *c, const rk_rpc_method_t *m,
                               const ProtobufCMessage *request,
                               uint32_t timeout_ms, rk_rpc_result_t *res)
{
	if (!call_admit(c, res))
		return res->code;
	uint64_t start_ns = rk_clock_mono_ns();
	uint64_t deadline_ms = rk_clock_mono_ms() + timeout_ms;
	rk_arena_init(&res->arena, c->max_frame * 4 + (64u << 10));
	uint8_t nonce[RK_SEAL_NONCE_BYTES];
	nng_msg *msg = NULL;
	if (rk_rpc_request_pack(c->sealer, c->caller,
	                        atomic_fetch_add(&c->trace_seq, 1),
	                        c->max_frame, m, request, timeout_ms, &msg,
	                        nonce, res) == RK_OK)
		stream_exchange(c, m, msg, c->sealer ? nonce : NULL,
		                deadline_ms, timeout_ms, res);
	res->latency_ns = rk_clock_mono_ns() - start_ns;
	call_release(c);
	return res->code;
}

/* An asynchronous stream call: packed at once, then run on one of the
 * client's call threads. A stream call holds its thread until the answer,
 * so a fixed pool of N threads would let N slow calls hold every later
 * call past its deadline (client.h promises each call ends by its
 * deadline). So the threads grow with the calls: a call that finds no idle
 * thread starts one, up to ASYNC_THREADS_MAX (past that calls wait their
 * turn); a thread idle for ASYNC_IDLE_MS exits. Threads are detached and
 * counted in `athreads`; rk_rpc_client_free() waits for that to reach 0. */
#define ASYNC_THREADS_MAX 256
#define ASYNC_IDLE_MS     2000

typedef struct stream_task {
	struct stream_task *next;           /* the client's queue */
	rk_rpc_client_t *c;                 /* the client */
	const rk_rpc_method_t *m;           /* the method called */
	nng_msg *msg;                       /* the packed request */
	uint8_t nonce[RK_SEAL_NONCE_BYTES]; /* its nonce */
	uint64_t start_ns;                  /* for latency */
	uint64_t deadline_ms;               /* monotonic */
	uint32_t timeout_ms;                /* as asked */
	rk_rpc_done_fn done;                /* the caller's callback */
	void *arg;                          /* its argument */
	rk_rpc_result_t *res;               /* handed to done */
} stream_task_t;

static void stream_task_run(stream_task_t *st)
{
	rk_rpc_client_t *c = st->c;
	stream_exchange(c, st->m, st->msg, c->sealer ? st->nonce : NULL,
	                st->deadline_ms, st->timeout_ms, st->res);
	st->res->latency_ns = rk_clock_mono_ns() - st->start_ns;
	st->done(st->res, st->arg);
	free(st);
	call_release(c);
}

/* A call thread: runs queued calls until none has come for a while, or
 * the client closes with none left. */
static void *stream_thread_main(void *arg)
{
	rk_rpc_client_t *c = arg;
	pthread_mutex_lock(&c->mu);
	for (;;) {
		if (c->aq_head != NULL) {
			stream_task_t *st = c->aq_head;
			c->aq_head = st->next;
			if (c->aq_head == NULL)
				c->aq_tail = NULL;
			c->aq_len--;
			pthread_mutex_unlock(&c->mu);
			stream_task_run(st);
			pthread_mutex_lock(&c->mu);
			continue;
		}
		if (atomic_load(&c->closing))
			break;
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += ASYNC_IDLE_MS / 1000;
		c->aidle++;
		int rv = pthread_cond_timedwait(&c->acv, &c->mu, &until);
		c->aidle--;
		if (rv != 0 && c->aq_head == NULL)
			break;
	}
	c->athreads--;
	pthread_cond_broadcast(&c->acv);
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* Queues ST for a call thread, starting one if none is free. False when
 * no thread could be had at all. */
static bool stream_task_queue(rk_rpc_client_t *c, stream_task_t *st)
{
	bool ok = true;
	pthread_mutex_lock(&c->mu);
	st->next = NULL;
	if (c->aq_tail != NULL)
		c->aq_tail->next = st;
	else
		c->aq_head = st;
	c->aq_tail = st;
	c->aq_len++;
	if (c->aidle >= c->aq_len) {
		pthread_cond_signal(&c->acv);
	} else if (c->athreads < ASYNC_THREADS_MAX) {
		pthread_attr_t attr;
		pthread_t t;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &attr, stream_thread_main, c) == 0)
			c->athreads++;
		pthread_attr_destroy(&attr);
		if (c->athreads == 0) {
			/* Nobody to run it: take it back. */
			c->aq_head = c->aq_tail = NULL;
			c->aq_len = 0;
			ok = false;
		}
	}
	pthread_mutex_unlock(&c->mu);
	return ok;
}

static rk_status_t stream_call_async(rk_rpc_client_t *c,
                                     const rk_rpc_method_t *m,
                                     const ProtobufCMessage *request,
                                     uint32_t timeout_ms, rk_rpc_done_fn done,
                                     void *arg, rk_rpc_result_t *why)
{
	if (!call_admit(c, why))
		return why->code;
	stream_task_t *st = calloc(1, sizeof(*st));
	rk_rpc_result_t *res = calloc(1, sizeof(*res));
	if (st == NULL || res == NULL) {
		free(st);
		free(res);
		call_release(c);
		rk_rpc_result_set(why, RK_RESOURCE_EXHAUSTED, "out of memory");
		return why->code;
	}
	st->c = c;
	st->m = m;
	st->done = done;
	st->arg = arg;
	st->res = res;
	st->timeout_ms = timeout_ms;
	st->start_ns = rk_clock_mono_ns();
	st->deadline_ms = rk_clock_mono_ms() + timeout_ms;
	rk_arena_init(&res->arena, c->max_frame * 4 + (64u << 10));
	if (rk_rpc_request_pack(c->sealer, c->caller,
	                        atomic_fetch_add(&c->trace_seq, 1),
	                        c->max_frame, m, request, timeout_ms, &st->msg,
	                        st->nonce, why) == RK_OK) {
		if (stream_task_queue(c, st))
			return RK_OK;
		rk_rpc_result_set(why, RK_RESOURCE_EXHAUSTED,
		                  "no thread for the call");
	}
	nng_msg_free(st->msg);
	rk_rpc_result_free(res);
	free(st);
	call_release(c);
	return why->code;
}

/* ---------------------------------------------------------- public */

rk_status_t rk_rpc_call_async(rk_rpc_client_t *c, const rk_rpc_method_t *method,
                              const ProtobufCMessage *request,
                              uint32_t timeout_ms, rk_rpc_done_fn done,
                              void *arg)
{
	rk_rpc_result_t why;
	memset(&why, 0, sizeof(why));
	if (done == NULL)
		return RK_INVALID_ARGUMENT;
	rk_status_t st;
	if (c->stream != NULL)
		st = stream_call_async(
		    c, method, request,
		    timeout_ms ? timeout_ms : RK_RPC_DEFAULT_CALL_TIMEOUT_MS,
		    done, arg, &why);
	else
		st = call_start(c, method, request, timeout_ms, done, arg, &why,
		                NULL, NULL);
	if (st != RK_OK)
		rk_debug("rpc call %s not started: %s", method->full_name,
		         why.message);
	return st;
}

static sync_slot_t *slot_get(rk_rpc_client_t *c)
{
	pthread_mutex_lock(&c->mu);
	sync_slot_t *slot = c->idle;
	if (slot != NULL)
		c->idle = slot->next;
	pthread_mutex_unlock(&c->mu);
	if (slot != NULL)
		return slot;
	slot = calloc(1, sizeof(*slot));
	if (slot == NULL)
		return NULL;
	if (nng_aio_alloc(&slot->aio, NULL, NULL) != 0) {
		free(slot);
		return NULL;
	}
	if (nng_ctx_open(&slot->ctx, c->sock) != 0) {
		nng_aio_free(slot->aio);
		free(slot);
		return NULL;
	}
	return slot;
}

static void slot_put(rk_rpc_client_t *c, sync_slot_t *slot)
{
	pthread_mutex_lock(&c->mu);
	slot->next = c->idle;
	c->idle = slot;
	pthread_mutex_unlock(&c->mu);
}

rk_status_t rk_rpc_call(rk_rpc_client_t *c, const rk_rpc_method_t *method,
                        const ProtobufCMessage *request, uint32_t timeout_ms,
                        rk_rpc_result_t *res)
{
	memset(res, 0, sizeof(*res));
	if (c->stream != NULL)
		return stream_call(c, method, request,
		                   timeout_ms ? timeout_ms
		                              : RK_RPC_DEFAULT_CALL_TIMEOUT_MS,
		                   res);
	sync_slot_t *slot = slot_get(c);
	if (slot == NULL) {
		rk_rpc_result_set(res,
		                  atomic_load(&c->closing)
		                      ? RK_CANCELLED
		                      : RK_RESOURCE_EXHAUSTED,
		                  "cannot start a call");
		return res->code;
	}
	call_t *call = NULL;
	rk_status_t st = call_start(c, method, request, timeout_ms, NULL, NULL,
	                            res, slot, &call);
	if (st != RK_OK) {
		slot_put(c, slot);
		return st;
	}
	do
		nng_aio_wait(call->aio);
	while (!call_advance(call));
	call->res->latency_ns = rk_clock_mono_ns() - call->start_ns;
	*res = *call->res; /* the arena moves with it */
	free(call->res);
	free(call);
	slot_put(c, slot);
	call_release(c);
	return res->code;
}

void rk_rpc_result_clear(rk_rpc_result_t *res)
{
	rk_arena_fini(&res->arena);
	res->response = NULL;
}

void rk_rpc_result_free(rk_rpc_result_t *res)
{
	if (res == NULL)
		return;
	rk_rpc_result_clear(res);
	free(res);
}

int rk_rpc_client_connected(const rk_rpc_client_t *c)
{
	if (c->stream != NULL)
		return rk_stream_client_connections(c->stream) > 0;
	return atomic_load(&c->pipes);
}

rk_status_t rk_rpc_client_new(const rk_rpc_client_opts_t *opts,
                              rk_rpc_client_t **out)
{
	if (opts->url == NULL)
		return RK_INVALID_ARGUMENT;
	if (sodium_init() < 0)
		return RK_INTERNAL;
	rk_rpc_client_t *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return RK_RESOURCE_EXHAUSTED;
	c->url = strdup(opts->url);
	c->caller = strdup(opts->caller != NULL ? opts->caller : "");
	if (c->url == NULL || c->caller == NULL) {
		free(c->url);
		free(c->caller);
		free(c);
		return RK_RESOURCE_EXHAUSTED;
	}
	c->sealer = opts->sealer;
	c->max_frame = opts->max_frame_bytes ? opts->max_frame_bytes
	                                     : RK_RPC_DEFAULT_MAX_FRAME;
	uint64_t seed;
	randombytes_buf(&seed, sizeof(seed));
	atomic_store(&c->trace_seq, seed);
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->acv, &ca);
	pthread_condattr_destroy(&ca);

	int rv;
	rk_status_t st = RK_INTERNAL;
	if (strncmp(c->url, RK_STREAM_SCHEME, RK_STREAM_SCHEME_LEN) == 0) {
		st = rk_stream_client_new(c->url, c->max_frame, &c->stream);
		if (st != RK_OK) {
			rk_warn("rpc client: bad address %s", c->url);
			goto fail;
		}
		*out = c;
		return RK_OK;
	}
	if ((rv = nng_req0_open(&c->sock)) != 0)
		goto fail;
	/* At most once: a broken connection fails the call, never resends. */
	nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME,
	                  NNG_DURATION_INFINITE);
	nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, c->max_frame * 2);
	nng_pipe_notify(c->sock, NNG_PIPE_EV_ADD_POST, pipe_cb, c);
	nng_pipe_notify(c->sock, NNG_PIPE_EV_REM_POST, pipe_cb, c);
	if ((rv = nng_dialer_create(&c->dialer, c->sock, c->url)) != 0) {
		st = RK_INVALID_ARGUMENT;
		rk_warn("rpc client: bad address %s: %s", c->url,
		        nng_strerror(rv));
		nng_close(c->sock);
		goto fail;
	}
	nng_dialer_set_size(c->dialer, NNG_OPT_RECVMAXSZ, c->max_frame * 2);
	nng_dialer_set_ms(c->dialer, NNG_OPT_RECONNMINT,
	                  opts->reconnect_min_ms ? opts->reconnect_min_ms
	                                         : 100);
	nng_dialer_set_ms(c->dialer, NNG_OPT_RECONNMAXT,
	                  opts->reconnect_max_ms ? opts->reconnect_max_ms
	                                         : 5000);
	if ((rv = nng_dialer_start(c->dialer, NNG_FLAG_NONBLOCK)) != 0) {
		rk_warn("rpc client: cannot dial %s: %s", c->url,
		        nng_strerror(rv));
		nng_close(c->sock);
		goto fail;
	}
	*out = c;
	return RK_OK;
fail:
	pthread_cond_destroy(&c->acv);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c->url);
	free(c->caller);
	free(c);
	return st;
}

void rk_rpc_client_free(rk_rpc_client_t *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	atomic_store(&c->closing, true);
	pthread_mutex_unlock(&c->mu);
	if (c->stream != NULL) {
		/* Blocked calls wake CANCELLED, synchronous or not; calls
		 * not yet on a connection end so as they reach one. */
		rk_stream_client_cancel(c->stream);
	} else {
		nng_dialer_close(c->dialer);
		nng_close(c->sock);
	}
	pthread_mutex_lock(&c->mu);
	while (c->inflight > 0)
		pthread_cond_wait(&c->cv, &c->mu);
	/* Idle call threads see closing and an empty queue, and exit. */
	pthread_cond_broadcast(&c->acv);
	while (c->athreads > 0)
		pthread_cond_wait(&c->acv, &c->mu);
	pthread_mutex_unlock(&c->mu);
	/* Their contexts went with the socket; the aios are ours. */
	while (c->idle != NULL) {
		sync_slot_t *slot = c->idle;
		c->idle = slot->next;
		nng_aio_free(slot->aio);
		free(slot);
	}
	rk_stream_client_free(c->stream);
	pthread_cond_destroy(&c->acv);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c->url);
	free(c->caller);
	free(c);
}
