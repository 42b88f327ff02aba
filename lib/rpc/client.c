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

#include "core/clock.h"
#include "core/log.h"
#include "ringkv/v1/common.pb-c.h"
#include "rpc/frame.h"
#include "rpc/pballoc.h"
#include "rpc/server.h"

/* A req context and a callback-less aio kept for synchronous calls:
 * opening and closing a context per call costs a wake-up of nng's reaper
 * thread each time, so synchronous calls reuse them. */
typedef struct sync_slot {
	nng_ctx ctx;             /* a req context of the client's socket */
	nng_aio *aio;            /* without callback: waited on */
	struct sync_slot *next;  /* idle list link */
} sync_slot_t;

struct rk_rpc_client {
	nng_socket sock;        /* req0 */
	nng_dialer dialer;      /* to url, non-blocking, with back-off */
	char *url;              /* as given */
	char *caller;           /* our name in envelopes */
	rk_sealer_t *sealer;    /* borrowed; NULL: unsealed */
	size_t max_frame;       /* cap on frames both ways */
	atomic_int pipes;       /* connections up */
	atomic_uint_fast64_t trace_seq; /* next trace id */
	pthread_mutex_t mu;     /* guards inflight and closing */
	pthread_cond_t cv;      /* signalled when inflight drops to 0 */
	size_t inflight;        /* call objects alive */
	sync_slot_t *idle;      /* slots for synchronous calls, unused now */
	atomic_bool closing;    /* no new calls; ends calls in flight */
};

enum call_phase { PHASE_SEND, PHASE_RECV };



typedef struct call {
	rk_rpc_client_t *c;      /* owner */
	nng_aio *aio;            /* this call's aio */
	nng_ctx ctx;             /* this call's req context */
	enum call_phase phase;   /* see the essay above */
	uint64_t start_ns;       /* monotonic, for latency */
	uint64_t deadline_ms;    /* monotonic */
	uint32_t timeout_ms;     /* as asked, for messages */
	bool sealed;             /* the request was sealed */
	uint8_t nonce[RK_SEAL_NONCE_BYTES]; /* its nonce: the reply binds it */
	const rk_rpc_method_t *m; /* borrowed method handle */
	rk_rpc_done_fn done;     /* the caller's callback */
	void *arg;               /* its argument */
	rk_rpc_result_t *res;    /* handed to done */
} call_t;

static void result_set(rk_rpc_result_t *res, rk_status_t code,
                       const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void result_set(rk_rpc_result_t *res, rk_status_t code,
                       const char *fmt, ...)
{
	res->code = code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(res->message, sizeof(res->message), fmt, ap);
	va_end(ap);
}

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

/* Reads the answer in MSG into RES. Takes ownership of MSG. */
static void call_decode(call_t *call, nng_msg *msg)
{
	rk_rpc_client_t *c = call->c;
	rk_rpc_result_t *res = call->res;
	const uint8_t *data = nng_msg_body(msg);
	size_t len = nng_msg_len(msg);
	if (len > c->max_frame) {
		nng_msg_free(msg);
		result_set(res, RK_RESOURCE_EXHAUSTED,
		           "answer of %zu bytes exceeds max_frame_bytes %zu", len,
		           c->max_frame);
		return;
	}
	rk_frame_t fr;
	const char *why = NULL;
	rk_status_t st = rk_frame_open(c->sealer, true, RK_FRAME_RESPONSE,
	                               call->sealed ? call->nonce : NULL, data,
	                               len, false, &res->arena, &fr, &why);
	if (st != RK_OK) {
		nng_msg_free(msg);
		result_set(res, st, "answer refused: %s",
		           why != NULL ? why : "bad frame");
		return;
	}
	ProtobufCAllocator pb;
	rk_pballoc_init(&pb, &res->arena);
	Ringkv__V1__ResponseEnvelope *env =
	    ringkv__v1__response_envelope__unpack(&pb, fr.plain_len, fr.plain);
	nng_msg_free(msg);
	if (env == NULL || env->status == NULL || !env->status->has_code ||
	    !rk_status_valid((int)env->status->code)) {
		result_set(res, RK_INTERNAL, "malformed answer envelope");
		return;
	}
	rk_status_t code = (rk_status_t)env->status->code;
	const char *text = env->status->message ? env->status->message : "";
	if (c->sealer != NULL && !fr.sealed) {
		/* A peer without our key can only tell us why it refused;
		 * an unsealed success could be anyone's. */
		if (code == RK_OK) {
			result_set(res, RK_UNAUTHENTICATED,
			           "unsealed answer refused");
			return;
		}
		result_set(res, code, "%s", text);
		return;
	}
	if (code != RK_OK) {
		result_set(res, code, "%s", text);
		if (env->status->has_retry_after_ms)
			res->retry_after_ms = env->status->retry_after_ms;
		return;
	}
	ProtobufCBinaryData body =
	    env->has_body ? env->body : (ProtobufCBinaryData){0, NULL};
	res->response = protobuf_c_message_unpack(call->m->desc->output, &pb,
	                                          body.len, body.data);
	if (res->response == NULL) {
		result_set(res, RK_INTERNAL, "malformed %s answer (%zu bytes)",
		           call->m->full_name, body.len);
		return;
	}
	result_set(res, RK_OK, "%s", "");
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
		result_set(call->res, RK_CANCELLED, "client closed");
		return true;
	}
	if (call->phase == PHASE_SEND) {
		if (rv != 0) {
			/* Not sent: the message is still ours. */
			nng_msg_free(nng_aio_get_msg(call->aio));
			nng_aio_set_msg(call->aio, NULL);
			if (rv == NNG_ETIMEDOUT && atomic_load(&c->pipes) == 0)
				result_set(call->res, RK_UNAVAILABLE,
				           "not connected to %s within %u ms",
				           c->url, call->timeout_ms);
			else if (rv == NNG_ETIMEDOUT)
				result_set(call->res, RK_DEADLINE_EXCEEDED,
				           "not sent within %u ms",
				           call->timeout_ms);
			else if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
				result_set(call->res, RK_CANCELLED,
				           "client closed");
			else
				result_set(call->res, RK_UNAVAILABLE,
				           "send to %s failed: %s", c->url,
				           nng_strerror(rv));
			return true;
		}
		uint64_t now = rk_clock_mono_ms();
		if (now >= call->deadline_ms) {
			result_set(call->res, RK_DEADLINE_EXCEEDED,
			           "no answer within %u ms", call->timeout_ms);
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
		result_set(call->res, RK_DEADLINE_EXCEEDED,
		           "no answer within %u ms", call->timeout_ms);
	} else if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
		result_set(call->res, RK_CANCELLED, "client closed");
	} else {
		result_set(call->res, RK_UNAVAILABLE,
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
 * through nng's task threads on every synchronous call. On error nothing was started and WHY (the
 * caller's) holds the reason. */
static rk_status_t call_start(rk_rpc_client_t *c, const rk_rpc_method_t *m,
                              const ProtobufCMessage *request,
                              uint32_t timeout_ms, rk_rpc_done_fn done,
                              void *arg, rk_rpc_result_t *why,
                              sync_slot_t *slot, call_t **out)
{
	if (request->descriptor != m->desc->input) {
		result_set(why, RK_INVALID_ARGUMENT,
		           "%s takes a %s, not a %s", m->full_name,
		           m->desc->input->name, request->descriptor->name);
		return why->code;
	}
	if (timeout_ms == 0)
		timeout_ms = RK_RPC_DEFAULT_CALL_TIMEOUT_MS;

	pthread_mutex_lock(&c->mu);
	if (atomic_load(&c->closing)) {
		pthread_mutex_unlock(&c->mu);
		result_set(why, RK_CANCELLED, "client closed");
		return why->code;
	}
	c->inflight++;
	pthread_mutex_unlock(&c->mu);

	call_t *call = calloc(1, sizeof(*call));
	rk_rpc_result_t *res = calloc(1, sizeof(*res));
	uint8_t stackbuf[1024];
	uint8_t *body = stackbuf;
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

	size_t n = protobuf_c_message_get_packed_size(request);
	if (n > c->max_frame) {
		result_set(why, RK_INVALID_ARGUMENT,
		           "%s request of %zu bytes exceeds max_frame_bytes %zu",
		           m->full_name, n, c->max_frame);
		goto fail;
	}
	if (n > sizeof(stackbuf) && (body = malloc(n)) == NULL)
		goto nomem;
	protobuf_c_message_pack(request, body);

	Ringkv__V1__RequestEnvelope env = RINGKV__V1__REQUEST_ENVELOPE__INIT;
	env.has_service = true;
	env.service = (Ringkv__V1__ServiceId)m->service_id;
	env.has_method = true;
	env.method = m->method_id;
	env.has_timeout_ms = true;
	env.timeout_ms = timeout_ms;
	env.has_body = true;
	env.body.len = n;
	env.body.data = body;
	env.caller = c->caller;
	env.has_trace_id = true;
	env.trace_id = atomic_fetch_add(&c->trace_seq, 1);
	rk_status_t st = rk_frame_pack(c->sealer, RK_FRAME_REQUEST, NULL,
	                               &env.base, &msg, call->nonce);
	if (body != stackbuf)
		free(body);
	body = stackbuf;
	if (st != RK_OK) {
		result_set(why, st, "cannot build the request frame");
		goto fail;
	}
	if (nng_msg_len(msg) > c->max_frame) {
		result_set(why, RK_INVALID_ARGUMENT,
		           "%s request frame of %zu bytes exceeds "
		           "max_frame_bytes %zu",
		           m->full_name, nng_msg_len(msg), c->max_frame);
		goto fail;
	}
	call->sealed = c->sealer != NULL;
	if (slot != NULL) {
		call->aio = slot->aio;
		call->ctx = slot->ctx;
	} else if ((rv = nng_aio_alloc(&call->aio, call_cb, call)) != 0) {
		goto nomem;
	} else if ((rv = nng_ctx_open(&call->ctx, c->sock)) != 0) {
		nng_aio_free(call->aio);
		result_set(why, RK_CANCELLED, "client closed: %s",
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
	result_set(why, RK_RESOURCE_EXHAUSTED, "out of memory");
fail:
	if (body != stackbuf)
		free(body);
	if (msg != NULL)
		nng_msg_free(msg);
	if (res != NULL)
		rk_arena_fini(&res->arena);
	free(res);
	free(call);
	call_release(c);
	return why->code;
}

rk_status_t rk_rpc_call_async(rk_rpc_client_t *c,
                              const rk_rpc_method_t *method,
                              const ProtobufCMessage *request,
                              uint32_t timeout_ms, rk_rpc_done_fn done,
                              void *arg)
{
	rk_rpc_result_t why;
	memset(&why, 0, sizeof(why));
	if (done == NULL)
		return RK_INVALID_ARGUMENT;
	rk_status_t st = call_start(c, method, request, timeout_ms, done, arg,
	                            &why, NULL, NULL);
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
	sync_slot_t *slot = slot_get(c);
	if (slot == NULL) {
		result_set(res, atomic_load(&c->closing) ? RK_CANCELLED
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

	int rv;
	rk_status_t st = RK_INTERNAL;
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
	                  opts->reconnect_min_ms ? opts->reconnect_min_ms : 100);
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
	nng_dialer_close(c->dialer);
	nng_close(c->sock);
	pthread_mutex_lock(&c->mu);
	while (c->inflight > 0)
		pthread_cond_wait(&c->cv, &c->mu);
	pthread_mutex_unlock(&c->mu);
	/* Their contexts went with the socket; the aios are ours. */
	while (c->idle != NULL) {
		sync_slot_t *slot = c->idle;
		c->idle = slot->next;
		nng_aio_free(slot->aio);
		free(slot);
	}
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c->url);
	free(c->caller);
	free(c);
}
