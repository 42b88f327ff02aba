/*
 * The RPC layer end to end, in one process over loopback TCP: a real
 * server and real clients, plus a raw nng req socket that sends frames no
 * well-behaved client would, to prove each malformed-frame class gets a
 * clear status and the server keeps serving.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "crypto/seal.h"
#include "metrics/metrics.h"
#include "ringkv/v1/common.pb-c.h"
#include "rpc/client.h"
#include "rpc/frame.h"
#include "rpc/method.h"
#include "rpc/server.h"
#include "service/health.h"

#define MAX_FRAME (64u << 10)

typedef struct fixture {
	uint8_t key[RK_SEAL_KEY_BYTES];
	rk_sealer_t *server_sealer;
	rk_sealer_t *client_sealer;
	rk_metrics_t *metrics;
	rk_rpc_server_t *srv;
	rk_rpc_client_t *client;
	char url[64];
} fixture_t;

/* ---------------------------------------------------------- handlers */

static void echo_handler(rk_rpc_call_t *call, const ProtobufCMessage *msg,
                         void *arg)
{
	(void)arg;
	const Ringkv__V1__EchoRequest *req = (const void *)msg;
	Ringkv__V1__EchoResponse resp = RINGKV__V1__ECHO_RESPONSE__INIT;
	resp.has_payload = req->has_payload;
	resp.payload = req->payload;
	rk_rpc_reply(call, &resp.base);
}

/* Holds every call until the test releases them, from the test's thread. */
typedef struct parking {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	rk_rpc_call_t *calls[512];
	size_t n;
} parking_t;

static parking_t parking = {PTHREAD_MUTEX_INITIALIZER,
                            PTHREAD_COND_INITIALIZER, {0}, 0};

static void park_handler(rk_rpc_call_t *call, const ProtobufCMessage *msg,
                         void *arg)
{
	(void)msg;
	(void)arg;
	pthread_mutex_lock(&parking.mu);
	parking.calls[parking.n++] = call;
	pthread_cond_broadcast(&parking.cv);
	pthread_mutex_unlock(&parking.mu);
}

/* Simulates slow work on the worker pool. */
static void slow_handler(rk_rpc_call_t *call, const ProtobufCMessage *msg,
                         void *arg)
{
	(void)msg;
	(void)arg;
	struct timespec ts = {0, 300 * 1000000L};
	nanosleep(&ts, NULL);
	Ringkv__V1__HealthCheckResponse resp =
	    RINGKV__V1__HEALTH_CHECK_RESPONSE__INIT;
	rk_rpc_reply(call, &resp.base);
}

static void wrong_type_handler(rk_rpc_call_t *call,
                               const ProtobufCMessage *msg, void *arg)
{
	(void)msg;
	(void)arg;
	Ringkv__V1__EchoResponse resp = RINGKV__V1__ECHO_RESPONSE__INIT;
	rk_rpc_reply(call, &resp.base); /* Check must answer a HealthCheck */
}

/* Inline first, then deferred to the pool, where it may block: the
 * deferred part records its thread and answers. */
static pthread_t inline_thread, deferred_thread;

static void deferred_part(rk_rpc_call_t *call, const ProtobufCMessage *msg,
                          void *arg)
{
	(void)msg;
	deferred_thread = pthread_self();
	struct timespec ts = {0, 20 * 1000000L}; /* blocking is allowed */
	nanosleep(&ts, NULL);
	Ringkv__V1__HealthCheckResponse resp =
	    RINGKV__V1__HEALTH_CHECK_RESPONSE__INIT;
	resp.node_id = arg;
	rk_rpc_reply(call, &resp.base);
}

static void deferring_handler(rk_rpc_call_t *call,
                              const ProtobufCMessage *msg, void *arg)
{
	(void)msg;
	(void)arg;
	inline_thread = pthread_self();
	if (rk_rpc_call_defer(call, deferred_part, "deferred") != RK_OK)
		rk_rpc_reply_error(call, RK_UNAVAILABLE, 0, "stopping");
}

/* ---------------------------------------------------------- set-up */

static void start_server(fixture_t *f, bool sealed,
                         rk_rpc_handler_fn check_fn, int check_flags)
{
	if (sealed)
		assert_int_equal(rk_sealer_new(f->key, 0, &f->server_sealer),
		                 RK_OK);
	f->metrics = rk_metrics_new();
	rk_rpc_server_opts_t o = {
	    .listen = "tcp://127.0.0.1:0",
	    .sealer = f->server_sealer,
	    .max_frame_bytes = MAX_FRAME,
	    .work_items = 256,
	    .workers = 2,
	    .metrics = f->metrics,
	    .name = "test",
	};
	assert_int_equal(rk_rpc_server_new(&o, &f->srv), RK_OK);
	assert_int_equal(rk_rpc_server_handle(f->srv, rk_health_echo_method(),
	                                      echo_handler, RK_RPC_INLINE,
	                                      NULL),
	                 RK_OK);
	if (check_fn != NULL)
		assert_int_equal(
		    rk_rpc_server_handle(f->srv, rk_health_check_method(),
		                         check_fn, check_flags, NULL),
		    RK_OK);
	char *err = NULL;
	assert_int_equal(rk_rpc_server_start(f->srv, &err), RK_OK);
	snprintf(f->url, sizeof(f->url), "tcp://127.0.0.1:%d",
	         rk_rpc_server_port(f->srv));
}

static void start_client(fixture_t *f, const uint8_t *key)
{
	if (key != NULL)
		assert_int_equal(rk_sealer_new(key, 0, &f->client_sealer),
		                 RK_OK);
	rk_rpc_client_opts_t o = {.url = f->url,
	                          .sealer = f->client_sealer,
	                          .max_frame_bytes = MAX_FRAME,
	                          .reconnect_min_ms = 10,
	                          .caller = "test"};
	assert_int_equal(rk_rpc_client_new(&o, &f->client), RK_OK);
}

static int setup(void **state)
{
	fixture_t *f = calloc(1, sizeof(*f));
	randombytes_buf(f->key, sizeof(f->key));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *f = *state;
	rk_rpc_client_free(f->client);
	rk_rpc_server_free(f->srv);
	rk_metrics_free(f->metrics);
	rk_sealer_free(f->client_sealer);
	rk_sealer_free(f->server_sealer);
	free(f);
	return 0;
}

static rk_status_t echo(fixture_t *f, const char *text, uint32_t timeout,
                        rk_rpc_result_t *res)
{
	Ringkv__V1__EchoRequest req = RINGKV__V1__ECHO_REQUEST__INIT;
	req.has_payload = true;
	req.payload.data = (uint8_t *)text;
	req.payload.len = strlen(text);
	return rk_rpc_call(f->client, rk_health_echo_method(), &req.base,
	                   timeout, res);
}

/* ---------------------------------------------------------- raw frames */

/* Sends BYTES on a fresh req socket and returns the reply's envelope
 * status (unsealed replies only), or -1 if no reply came in 2 s. */
static int raw_exchange(const char *url, const void *bytes, size_t len,
                        char *text, size_t tlen)
{
	nng_socket s;
	assert_int_equal(nng_req0_open(&s), 0);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 2000);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 2000);
	nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	assert_int_equal(nng_dial(s, url, NULL, 0), 0);
	nng_msg *m;
	assert_int_equal(nng_msg_alloc(&m, len), 0);
	if (len > 0)
		memcpy(nng_msg_body(m), bytes, len);
	assert_int_equal(nng_sendmsg(s, m, 0), 0);
	nng_msg *r = NULL;
	int code = -1;
	if (nng_recvmsg(s, &r, 0) == 0) {
		const uint8_t *b = nng_msg_body(r);
		size_t n = nng_msg_len(r);
		assert_true(n >= RK_FRAME_HEADER_BYTES);
		assert_int_equal(b[0], RK_FRAME_VERSION);
		assert_int_equal(b[1], RK_FRAME_RESPONSE);
		if ((b[2] & RK_FRAME_FLAG_SEALED) == 0) {
			Ringkv__V1__ResponseEnvelope *env =
			    ringkv__v1__response_envelope__unpack(
			        NULL, n - RK_FRAME_HEADER_BYTES,
			        b + RK_FRAME_HEADER_BYTES);
			assert_non_null(env);
			assert_non_null(env->status);
			code = (int)env->status->code;
			if (text != NULL)
				snprintf(text, tlen, "%s",
				         env->status->message
				             ? env->status->message
				             : "");
			ringkv__v1__response_envelope__free_unpacked(env,
			                                             NULL);
		} else {
			code = 1000; /* sealed: the caller checks */
		}
		nng_msg_free(r);
	}
	nng_close(s);
	return code;
}

/* A plain request frame around ENV_BYTES. */
static size_t plain_frame(uint8_t *out, const void *env, size_t len)
{
	out[0] = RK_FRAME_VERSION;
	out[1] = RK_FRAME_REQUEST;
	out[2] = 0;
	out[3] = 0;
	memcpy(out + 4, env, len);
	return 4 + len;
}

static size_t plain_request(uint8_t *out, uint32_t service, uint32_t method,
                            const void *body, size_t body_len)
{
	Ringkv__V1__RequestEnvelope env = RINGKV__V1__REQUEST_ENVELOPE__INIT;
	env.has_service = true;
	env.service = (Ringkv__V1__ServiceId)service;
	env.has_method = true;
	env.method = method;
	env.has_body = body != NULL;
	env.body.data = (uint8_t *)body;
	env.body.len = body_len;
	uint8_t buf[4096];
	size_t n = ringkv__v1__request_envelope__pack(&env, buf);
	return plain_frame(out, buf, n);
}

/* ---------------------------------------------------------- tests */

static void test_rpc_method_ids_come_from_the_proto_enums(void **state)
{
	(void)state;
	const rk_rpc_method_t *m = rk_health_echo_method();
	assert_int_equal(m->service_id, RINGKV__V1__SERVICE_ID__SERVICE_HEALTH);
	assert_int_equal(m->method_id, RINGKV__V1__HEALTH_METHOD__HEALTH_ECHO);
	assert_string_equal(m->full_name, "Health.Echo");
	char out[32];
	assert_int_equal(rk_rpc_upper_snake("ReadRepair", out, sizeof(out)),
	                 0);
	assert_string_equal(out, "READ_REPAIR");
	assert_int_equal(rk_rpc_upper_snake("NextIds", out, sizeof(out)), 0);
	assert_string_equal(out, "NEXT_IDS");
	rk_rpc_method_t x;
	assert_int_equal(rk_rpc_method_resolve(
	                     &ringkv__v1__health__descriptor,
	                     &ringkv__v1__health_method__descriptor, "Nope", &x),
	                 RK_NOT_FOUND);
	/* An enum without the method's id is refused, not guessed. */
	assert_int_equal(rk_rpc_method_resolve(
	                     &ringkv__v1__health__descriptor,
	                     &ringkv__v1__serving_state__descriptor, "Echo", &x),
	                 RK_FAILED_PRECONDITION);
}

static void test_rpc_round_trip_sealed(void **state)
{
	fixture_t *f = *state;
	start_server(f, true, NULL, 0);
	start_client(f, f->key);
	rk_rpc_result_t res;
	assert_int_equal(echo(f, "hello ringkv", 2000, &res), RK_OK);
	const Ringkv__V1__EchoResponse *r = (const void *)res.response;
	assert_int_equal(r->payload.len, 12);
	assert_memory_equal(r->payload.data, "hello ringkv", 12);
	rk_rpc_result_clear(&res);

	/* Counted per method and code. */
	char *text;
	size_t len;
	assert_int_equal(rk_metrics_render(f->metrics, &text, &len), RK_OK);
	assert_non_null(strstr(text, "ringkv_rpc_server_requests_total{"
	                             "method=\"Health.Echo\",code=\"OK\"} 1"));
	assert_non_null(strstr(
	    text, "ringkv_rpc_server_latency_seconds_count{method=\"Health."
	          "Echo\"} 1"));
	free(text);
}

static void test_rpc_round_trip_unsealed(void **state)
{
	fixture_t *f = *state;
	start_server(f, false, NULL, 0);
	start_client(f, NULL);
	rk_rpc_result_t res;
	assert_int_equal(echo(f, "plain", 2000, &res), RK_OK);
	const Ringkv__V1__EchoResponse *r = (const void *)res.response;
	assert_memory_equal(r->payload.data, "plain", 5);
	rk_rpc_result_clear(&res);
}

static void test_rpc_unrouted_method_is_unimplemented(void **state)
{
	fixture_t *f = *state;
	start_server(f, true, NULL, 0); /* Echo only */
	start_client(f, f->key);
	Ringkv__V1__HealthCheckRequest req =
	    RINGKV__V1__HEALTH_CHECK_REQUEST__INIT;
	rk_rpc_result_t res;
	assert_int_equal(rk_rpc_call(f->client, rk_health_check_method(),
	                             &req.base, 2000, &res),
	                 RK_UNIMPLEMENTED);
	assert_null(res.response);
	rk_rpc_result_clear(&res);
}

static void test_rpc_reply_of_wrong_type_is_internal(void **state)
{
	fixture_t *f = *state;
	start_server(f, true, wrong_type_handler, RK_RPC_INLINE);
	start_client(f, f->key);
	Ringkv__V1__HealthCheckRequest req =
	    RINGKV__V1__HEALTH_CHECK_REQUEST__INIT;
	rk_rpc_result_t res;
	assert_int_equal(rk_rpc_call(f->client, rk_health_check_method(),
	                             &req.base, 2000, &res),
	                 RK_INTERNAL);
	rk_rpc_result_clear(&res);
}

typedef struct async_count {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	size_t done;
	size_t ok;
	rk_status_t last;
} async_count_t;

static void count_done(rk_rpc_result_t *res, void *arg)
{
	async_count_t *a = arg;
	pthread_mutex_lock(&a->mu);
	a->done++;
	a->last = res->code;
	if (res->code == RK_OK)
		a->ok++;
	pthread_cond_broadcast(&a->cv);
	pthread_mutex_unlock(&a->mu);
	rk_rpc_result_free(res);
}

static void test_rpc_holds_100_calls_in_flight(void **state)
{
	fixture_t *f = *state;
	enum { N = 100 };
	parking.n = 0;
	start_server(f, true, park_handler, RK_RPC_INLINE);
	start_client(f, f->key);
	async_count_t a = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
	                   0, 0, RK_OK};
	Ringkv__V1__HealthCheckRequest req =
	    RINGKV__V1__HEALTH_CHECK_REQUEST__INIT;
	for (int i = 0; i < N; i++)
		assert_int_equal(rk_rpc_call_async(f->client,
		                                   rk_health_check_method(),
		                                   &req.base, 10000, count_done,
		                                   &a),
		                 RK_OK);

	/* All N must be inside the server at once before any is answered. */
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&parking.mu);
	while (parking.n < N &&
	       pthread_cond_timedwait(&parking.cv, &parking.mu, &until) == 0)
		;
	size_t parked = parking.n;
	pthread_mutex_unlock(&parking.mu);
	assert_int_equal(parked, N);
	pthread_mutex_lock(&a.mu);
	assert_int_equal(a.done, 0);
	pthread_mutex_unlock(&a.mu);

	/* Answer them all from this thread, not nng's. */
	Ringkv__V1__HealthCheckResponse resp =
	    RINGKV__V1__HEALTH_CHECK_RESPONSE__INIT;
	for (size_t i = 0; i < parked; i++)
		rk_rpc_reply(parking.calls[i], &resp.base);
	pthread_mutex_lock(&a.mu);
	while (a.done < N)
		pthread_cond_wait(&a.cv, &a.mu);
	pthread_mutex_unlock(&a.mu);
	assert_int_equal(a.ok, N);
}

static void test_rpc_inline_handler_defers_to_the_pool(void **state)
{
	fixture_t *f = *state;
	start_server(f, true, deferring_handler, RK_RPC_INLINE);
	start_client(f, f->key);
	for (int i = 0; i < 3; i++) {
		Ringkv__V1__HealthCheckRequest req =
		    RINGKV__V1__HEALTH_CHECK_REQUEST__INIT;
		rk_rpc_result_t res;
		assert_int_equal(rk_rpc_call(f->client,
		                             rk_health_check_method(),
		                             &req.base, 2000, &res),
		                 RK_OK);
		const Ringkv__V1__HealthCheckResponse *r =
		    (const void *)res.response;
		assert_string_equal(r->node_id, "deferred");
		assert_false(pthread_equal(inline_thread, deferred_thread));
		rk_rpc_result_clear(&res);
	}
}

static void test_rpc_deadline_exceeded(void **state)
{
	fixture_t *f = *state;
	start_server(f, true, slow_handler, 0);
	start_client(f, f->key);
	Ringkv__V1__HealthCheckRequest req =
	    RINGKV__V1__HEALTH_CHECK_REQUEST__INIT;
	rk_rpc_result_t res;
	uint64_t t0 = rk_clock_mono_ms();
	/* A connection first, so the deadline is the server's doing. */
	assert_int_equal(echo(f, "warm", 2000, &res), RK_OK);
	rk_rpc_result_clear(&res);
	t0 = rk_clock_mono_ms();
	assert_int_equal(rk_rpc_call(f->client, rk_health_check_method(),
	                             &req.base, 100, &res),
	                 RK_DEADLINE_EXCEEDED);
	uint64_t took = rk_clock_mono_ms() - t0;
	assert_true(took >= 100);
	assert_true(took < 290); /* did not wait for the 300 ms handler */
	rk_rpc_result_clear(&res);
}

static void test_rpc_no_server_is_unavailable_within_deadline(void **state)
{
	fixture_t *f = *state;
	/* Take a free port, then close it so nothing listens there. */
	start_server(f, true, NULL, 0);
	rk_rpc_server_free(f->srv);
	f->srv = NULL;
	start_client(f, f->key);
	rk_rpc_result_t res;
	uint64_t t0 = rk_clock_mono_ms();
	assert_int_equal(echo(f, "anyone?", 300, &res), RK_UNAVAILABLE);
	uint64_t took = rk_clock_mono_ms() - t0;
	assert_true(took < 600);
	assert_non_null(strstr(res.message, "not connected"));
	rk_rpc_result_clear(&res);
}

/* A server that takes the request and then drops the connection. */
static void *drop_after_recv(void *arg)
{
	nng_socket *s = arg;
	nng_msg *m;
	if (nng_recvmsg(*s, &m, 0) == 0)
		nng_msg_free(m);
	nng_close(*s);
	return NULL;
}

static void test_rpc_server_dying_mid_call_is_unavailable(void **state)
{
	fixture_t *f = *state;
	nng_socket s;
	assert_int_equal(nng_rep0_open(&s), 0);
	nng_listener l;
	assert_int_equal(nng_listen(s, "tcp://127.0.0.1:0", &l, 0), 0);
	nng_sockaddr sa;
	assert_int_equal(nng_listener_get_addr(l, NNG_OPT_LOCADDR, &sa), 0);
	snprintf(f->url, sizeof(f->url), "tcp://127.0.0.1:%d",
	         ntohs(sa.s_in.sa_port));
	pthread_t t;
	pthread_create(&t, NULL, drop_after_recv, &s);
	start_client(f, f->key);
	rk_rpc_result_t res;
	uint64_t t0 = rk_clock_mono_ms();
	/* Resend is off: the broken connection fails the call at once
	 * instead of running it again somewhere or waiting out 5 s. */
	assert_int_equal(echo(f, "gone", 5000, &res), RK_UNAVAILABLE);
	assert_true(rk_clock_mono_ms() - t0 < 2500);
	rk_rpc_result_clear(&res);
	pthread_join(t, NULL);
}

static void test_rpc_wrong_key_is_unauthenticated(void **state)
{
	fixture_t *f = *state;
	start_server(f, true, NULL, 0);
	uint8_t other[RK_SEAL_KEY_BYTES];
	randombytes_buf(other, sizeof(other));
	start_client(f, other);
	rk_rpc_result_t res;
	assert_int_equal(echo(f, "let me in", 2000, &res),
	                 RK_UNAUTHENTICATED);
	assert_non_null(strstr(res.message, "bad tag or wrong key"));
	rk_rpc_result_clear(&res);
	/* A client without any key is refused too. */
	rk_rpc_client_free(f->client);
	f->client = NULL;
	rk_sealer_free(f->client_sealer);
	f->client_sealer = NULL;
	start_client(f, NULL);
	assert_int_equal(echo(f, "no key", 2000, &res), RK_UNAUTHENTICATED);
	rk_rpc_result_clear(&res);
}

static void test_rpc_replayed_frame_is_unauthenticated(void **state)
{
	fixture_t *f = *state;
	start_server(f, true, NULL, 0);
	rk_sealer_t *s;
	assert_int_equal(rk_sealer_new(f->key, 0, &s), RK_OK);
	Ringkv__V1__EchoRequest req = RINGKV__V1__ECHO_REQUEST__INIT;
	uint8_t body[64];
	size_t blen = ringkv__v1__echo_request__pack(&req, body);
	Ringkv__V1__RequestEnvelope env = RINGKV__V1__REQUEST_ENVELOPE__INIT;
	env.has_service = true;
	env.service = RINGKV__V1__SERVICE_ID__SERVICE_HEALTH;
	env.has_method = true;
	env.method = RINGKV__V1__HEALTH_METHOD__HEALTH_ECHO;
	env.has_body = true;
	env.body.data = body;
	env.body.len = blen;
	nng_msg *m;
	assert_int_equal(rk_frame_pack(s, RK_FRAME_REQUEST, NULL, &env.base,
	                               &m, NULL),
	                 RK_OK);
	/* First time: answered sealed (1000). Again: refused in the clear. */
	char text[256];
	assert_int_equal(raw_exchange(f->url, nng_msg_body(m), nng_msg_len(m),
	                              text, sizeof(text)),
	                 1000);
	assert_int_equal(raw_exchange(f->url, nng_msg_body(m), nng_msg_len(m),
	                              text, sizeof(text)),
	                 RK_UNAUTHENTICATED);
	assert_string_equal(text, "replayed frame");
	nng_msg_free(m);
	rk_sealer_free(s);
}

static void test_rpc_malformed_frames_get_clear_errors(void **state)
{
	fixture_t *f = *state;
	start_server(f, false, NULL, 0); /* unsealed: reach the decoders */
	uint8_t buf[8192];
	char text[256];

	/* Empty and truncated headers. */
	assert_int_equal(raw_exchange(f->url, "", 0, text, sizeof(text)),
	                 RK_INVALID_ARGUMENT);
	assert_string_equal(text, "frame shorter than its header");
	assert_int_equal(raw_exchange(f->url, "\x01\x01\x00", 3, text,
	                              sizeof(text)),
	                 RK_INVALID_ARGUMENT);
	/* Unknown version, wrong kind, reserved bits. */
	assert_int_equal(raw_exchange(f->url, "\x09\x01\x00\x00", 4, text,
	                              sizeof(text)),
	                 RK_INVALID_ARGUMENT);
	assert_string_equal(text, "unknown frame version");
	assert_int_equal(raw_exchange(f->url, "\x01\x02\x00\x00", 4, text,
	                              sizeof(text)),
	                 RK_INVALID_ARGUMENT);
	assert_string_equal(text, "unexpected frame kind");
	assert_int_equal(raw_exchange(f->url, "\x01\x01\x80\x00", 4, text,
	                              sizeof(text)),
	                 RK_INVALID_ARGUMENT);
	assert_string_equal(text, "reserved header bits set");
	/* A sealed frame at a server without the key. */
	assert_int_equal(raw_exchange(f->url, "\x01\x01\x01\x00xxxx", 8, text,
	                              sizeof(text)),
	                 RK_UNAUTHENTICATED);
	/* Garbage where the envelope should be. */
	size_t n = plain_frame(buf, "\xff\xff\xff\xff\xff\xff", 6);
	assert_int_equal(raw_exchange(f->url, buf, n, text, sizeof(text)),
	                 RK_INVALID_ARGUMENT);
	assert_non_null(strstr(text, "malformed request envelope"));
	/* A truncated envelope: a length prefix longer than what follows. */
	n = plain_frame(buf, "\x22\x40\x01\x02", 4);
	assert_int_equal(raw_exchange(f->url, buf, n, text, sizeof(text)),
	                 RK_INVALID_ARGUMENT);
	/* An envelope that names no method. */
	n = plain_frame(buf, "", 0);
	assert_int_equal(raw_exchange(f->url, buf, n, text, sizeof(text)),
	                 RK_INVALID_ARGUMENT);
	assert_string_equal(text, "request envelope names no method");
	/* Unknown method, unknown service. */
	n = plain_request(buf, RINGKV__V1__SERVICE_ID__SERVICE_HEALTH, 99, NULL,
	                  0);
	assert_int_equal(raw_exchange(f->url, buf, n, text, sizeof(text)),
	                 RK_UNIMPLEMENTED);
	n = plain_request(buf, 77, 1, NULL, 0);
	assert_int_equal(raw_exchange(f->url, buf, n, text, sizeof(text)),
	                 RK_UNIMPLEMENTED);
	/* A body that is not an EchoRequest. */
	n = plain_request(buf, RINGKV__V1__SERVICE_ID__SERVICE_HEALTH,
	                  RINGKV__V1__HEALTH_METHOD__HEALTH_ECHO,
	                  "\x0a\x7f\x00", 3);
	assert_int_equal(raw_exchange(f->url, buf, n, text, sizeof(text)),
	                 RK_INVALID_ARGUMENT);
	assert_non_null(strstr(text, "malformed Health.Echo request"));

	/* Over the cap but under the transport's limit: a clear answer. */
	size_t big = MAX_FRAME + 100;
	uint8_t *huge = calloc(1, 2 * MAX_FRAME + 100);
	huge[0] = RK_FRAME_VERSION;
	huge[1] = RK_FRAME_REQUEST;
	assert_int_equal(raw_exchange(f->url, huge, big, text, sizeof(text)),
	                 RK_INVALID_ARGUMENT);
	assert_non_null(strstr(text, "exceeds max_frame_bytes"));
	/* Over the transport's limit: the connection is dropped unread. */
	assert_int_equal(raw_exchange(f->url, huge, 2 * MAX_FRAME + 100, NULL,
	                              0),
	                 -1);
	free(huge);

	/* And the server still serves. */
	start_client(f, NULL);
	rk_rpc_result_t res;
	assert_int_equal(echo(f, "still here", 2000, &res), RK_OK);
	rk_rpc_result_clear(&res);

	/* Every refusal was counted. */
	char *metrics;
	size_t len;
	assert_int_equal(rk_metrics_render(f->metrics, &metrics, &len), RK_OK);
	assert_non_null(strstr(metrics, "ringkv_rpc_server_rejected_total{"
	                                "code=\"INVALID_ARGUMENT\"} 10"));
	assert_non_null(strstr(metrics, "ringkv_rpc_server_rejected_total{"
	                                "code=\"UNIMPLEMENTED\"} 2"));
	free(metrics);
}

static void test_rpc_unsealed_frame_refused_by_sealed_server(void **state)
{
	fixture_t *f = *state;
	start_server(f, true, NULL, 0);
	uint8_t buf[256];
	Ringkv__V1__EchoRequest req = RINGKV__V1__ECHO_REQUEST__INIT;
	uint8_t body[16];
	size_t blen = ringkv__v1__echo_request__pack(&req, body);
	size_t n = plain_request(buf, RINGKV__V1__SERVICE_ID__SERVICE_HEALTH,
	                         RINGKV__V1__HEALTH_METHOD__HEALTH_ECHO, body,
	                         blen);
	char text[256];
	assert_int_equal(raw_exchange(f->url, buf, n, text, sizeof(text)),
	                 RK_UNAUTHENTICATED);
	assert_non_null(strstr(text, "requires the cluster key"));
}

static void test_rpc_oversize_request_refused_by_client(void **state)
{
	fixture_t *f = *state;
	start_server(f, true, NULL, 0);
	start_client(f, f->key);
	char *big = malloc(MAX_FRAME + 1);
	memset(big, 'x', MAX_FRAME);
	big[MAX_FRAME] = '\0';
	rk_rpc_result_t res;
	assert_int_equal(echo(f, big, 2000, &res), RK_INVALID_ARGUMENT);
	assert_non_null(strstr(res.message, "exceeds max_frame_bytes"));
	rk_rpc_result_clear(&res);
	free(big);
}

static void test_rpc_client_free_cancels_calls_in_flight(void **state)
{
	fixture_t *f = *state;
	parking.n = 0;
	start_server(f, true, park_handler, RK_RPC_INLINE);
	start_client(f, f->key);
	async_count_t a = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
	                   0, 0, RK_OK};
	Ringkv__V1__HealthCheckRequest req =
	    RINGKV__V1__HEALTH_CHECK_REQUEST__INIT;
	assert_int_equal(rk_rpc_call_async(f->client, rk_health_check_method(),
	                                   &req.base, 10000, count_done, &a),
	                 RK_OK);
	pthread_mutex_lock(&parking.mu);
	while (parking.n < 1)
		pthread_cond_wait(&parking.cv, &parking.mu);
	pthread_mutex_unlock(&parking.mu);
	rk_rpc_client_free(f->client); /* returns once the callback ran */
	f->client = NULL;
	assert_int_equal(a.done, 1);
	assert_int_equal(a.last, RK_CANCELLED);
	/* The parked server call still gets its answer sent (nowhere). */
	Ringkv__V1__HealthCheckResponse resp =
	    RINGKV__V1__HEALTH_CHECK_RESPONSE__INIT;
	rk_rpc_reply(parking.calls[0], &resp.base);
}

int main(void)
{
	rk_log_set_level(RK_LOG_ERROR);
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rpc_method_ids_come_from_the_proto_enums),
	    cmocka_unit_test_setup_teardown(test_rpc_round_trip_sealed, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_rpc_round_trip_unsealed, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(
	        test_rpc_unrouted_method_is_unimplemented, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_rpc_reply_of_wrong_type_is_internal, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rpc_holds_100_calls_in_flight,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_rpc_inline_handler_defers_to_the_pool, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rpc_deadline_exceeded, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(
	        test_rpc_no_server_is_unavailable_within_deadline, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_rpc_server_dying_mid_call_is_unavailable, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_rpc_wrong_key_is_unauthenticated, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_rpc_replayed_frame_is_unauthenticated, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_rpc_malformed_frames_get_clear_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_rpc_unsealed_frame_refused_by_sealed_server, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_rpc_oversize_request_refused_by_client, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_rpc_client_free_cancels_calls_in_flight, setup, teardown),
	};
	return cmocka_run_group_tests_name("rpc", tests, NULL, NULL);
}
