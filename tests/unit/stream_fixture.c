/*
 * The shared fixture of the stream transport's tests; see stream_fixture.h.
 */
#include "stream_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "core/clock.h"
#include "ringkv/v1/common.pb-c.h"
#include "service/health.h"
#include "stream_raw.h"

/* ---------------------------------------------------------- handlers */

void echo_handler(rk_rpc_call_t *call, const ProtobufCMessage *msg, void *arg)
{
	(void)arg;
	const Ringkv__V1__EchoRequest *req = (const void *)msg;
	Ringkv__V1__EchoResponse resp = RINGKV__V1__ECHO_RESPONSE__INIT;
	resp.has_payload = req->has_payload;
	resp.payload = req->payload;
	rk_rpc_reply(call, &resp.base);
}

parking_t parking = {
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0};

void park_handler(rk_rpc_call_t *call, const ProtobufCMessage *msg, void *arg)
{
	(void)msg;
	(void)arg;
	pthread_mutex_lock(&parking.mu);
	bool room = parking.n < PARKING_MAX;
	if (room)
		parking.calls[parking.n++] = call;
	pthread_cond_broadcast(&parking.cv);
	pthread_mutex_unlock(&parking.mu);
	if (!room) /* more than any test holds: make it visible */
		rk_rpc_reply_error(call, RK_RESOURCE_EXHAUSTED, 0,
		                   "parking full");
}

/* Waits up to TIMEOUT_MS until N calls are parked; returns how many are. */
size_t park_wait(size_t n, uint32_t timeout_ms)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&parking.mu);
	while (parking.n < n &&
	       pthread_cond_timedwait(&parking.cv, &parking.mu, &until) == 0)
		;
	size_t got = parking.n;
	pthread_mutex_unlock(&parking.mu);
	return got;
}

/* Answers every parked call (a Health.Check) and empties the lot. */
size_t park_answer_all(void)
{
	/* Taken out under the lock: answering lets the server serve more,
	 * which parks new calls in the slots being emptied. */
	static rk_rpc_call_t *take[PARKING_MAX];
	static pthread_mutex_t take_mu = PTHREAD_MUTEX_INITIALIZER;
	pthread_mutex_lock(&take_mu);
	pthread_mutex_lock(&parking.mu);
	size_t n = parking.n;
	memcpy(take, parking.calls, n * sizeof(take[0]));
	parking.n = 0;
	pthread_mutex_unlock(&parking.mu);
	Ringkv__V1__HealthCheckResponse resp =
	    RINGKV__V1__HEALTH_CHECK_RESPONSE__INIT;
	for (size_t i = 0; i < n; i++)
		rk_rpc_reply(take[i], &resp.base);
	pthread_mutex_unlock(&take_mu);
	return n;
}

/* Slow work on the worker pool: answers after 100 ms. */
void slow_handler(rk_rpc_call_t *call, const ProtobufCMessage *msg, void *arg)
{
	(void)msg;
	(void)arg;
	struct timespec ts = {0, 100 * 1000000L};
	nanosleep(&ts, NULL);
	Ringkv__V1__HealthCheckResponse resp =
	    RINGKV__V1__HEALTH_CHECK_RESPONSE__INIT;
	rk_rpc_reply(call, &resp.base);
}

/* ---------------------------------------------------------- set-up */

/* Starts a server with Echo (inline) and, if CHECK_FN, Health.Check on
 * both transports; the stream listener on PORT (0: any). */
void start_server_on(fixture_t *f, bool sealed, rk_rpc_handler_fn check_fn,
                     int check_flags, size_t max_frame, int port)
{
	if (sealed && f->server_sealer == NULL)
		assert_int_equal(rk_sealer_new(f->key, 0, &f->server_sealer),
		                 RK_OK);
	if (f->metrics == NULL)
		f->metrics = rk_metrics_new();
	char stream_listen[64];
	snprintf(stream_listen, sizeof(stream_listen), "stream://127.0.0.1:%d",
	         port);
	rk_rpc_server_opts_t o = {
	    .listen = "tcp://127.0.0.1:0",
	    .sealer = f->server_sealer,
	    .max_frame_bytes = max_frame,
	    .work_items = 64,
	    .workers = 2,
	    .metrics = f->metrics,
	    .name = "stream-test",
	    .stream_listen = stream_listen,
	    .stream_threads = 2,
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
	rk_status_t st = rk_rpc_server_start(f->srv, &err);
	if (st != RK_OK)
		fail_msg("server start: %s", err ? err : "?");
	f->port = rk_rpc_server_stream_port(f->srv);
	assert_true(f->port > 0);
	snprintf(f->url, sizeof(f->url), "stream://127.0.0.1:%d", f->port);
	snprintf(f->nng_url, sizeof(f->nng_url), "tcp://127.0.0.1:%d",
	         rk_rpc_server_port(f->srv));
}

void start_server(fixture_t *f, bool sealed, rk_rpc_handler_fn check_fn,
                  int check_flags)
{
	start_server_on(f, sealed, check_fn, check_flags, MAX_FRAME, 0);
}

rk_rpc_client_t *new_client(const char *url, rk_sealer_t *sealer,
                            size_t max_frame)
{
	rk_rpc_client_opts_t o = {.url = url,
	                          .sealer = sealer,
	                          .max_frame_bytes = max_frame,
	                          .reconnect_min_ms = 10,
	                          .caller = "stream-test"};
	rk_rpc_client_t *c = NULL;
	assert_int_equal(rk_rpc_client_new(&o, &c), RK_OK);
	return c;
}

void start_client(fixture_t *f, const uint8_t *key)
{
	if (key != NULL)
		assert_int_equal(rk_sealer_new(key, 0, &f->client_sealer),
		                 RK_OK);
	f->client = new_client(f->url, f->client_sealer, MAX_FRAME);
}

int setup(void **state)
{
	fixture_t *f = calloc(1, sizeof(*f));
	randombytes_buf(f->key, sizeof(f->key));
	pthread_mutex_lock(&parking.mu);
	parking.n = 0;
	pthread_mutex_unlock(&parking.mu);
	*state = f;
	return 0;
}

int teardown(void **state)
{
	fixture_t *f = *state;
	rk_rpc_client_free(f->client);
	park_answer_all(); /* a failed test may leave calls held */
	rk_rpc_server_free(f->srv);
	rk_metrics_free(f->metrics);
	rk_sealer_free(f->client_sealer);
	rk_sealer_free(f->server_sealer);
	free(f);
	return 0;
}

rk_status_t echo_on(rk_rpc_client_t *c, const void *p, size_t len,
                    uint32_t timeout, rk_rpc_result_t *res)
{
	Ringkv__V1__EchoRequest req = RINGKV__V1__ECHO_REQUEST__INIT;
	req.has_payload = true;
	req.payload.data = (uint8_t *)p;
	req.payload.len = len;
	return rk_rpc_call(c, rk_health_echo_method(), &req.base, timeout, res);
}

rk_status_t echo(fixture_t *f, const char *text, uint32_t timeout,
                 rk_rpc_result_t *res)
{
	return echo_on(f->client, text, strlen(text), timeout, res);
}

/* Echoes TEXT through F's client and checks it came back. */
void echo_ok(fixture_t *f, const char *text)
{
	rk_rpc_result_t res;
	rk_status_t st = echo(f, text, 2000, &res);
	if (st != RK_OK)
		fail_msg("echo \"%s\": %s: %s", text, rk_status_name(st),
		         res.message);
	const Ringkv__V1__EchoResponse *r = (const void *)res.response;
	assert_int_equal(r->payload.len, strlen(text));
	assert_memory_equal(r->payload.data, text, strlen(text));
	rk_rpc_result_clear(&res);
}

static void *caller_main(void *arg)
{
	caller_t *c = arg;
	Ringkv__V1__HealthCheckRequest req =
	    RINGKV__V1__HEALTH_CHECK_REQUEST__INIT;
	rk_rpc_result_t res;
	c->code = rk_rpc_call(c->client, rk_health_check_method(), &req.base,
	                      c->timeout_ms, &res);
	rk_rpc_result_clear(&res);
	c->ended_ms = rk_clock_mono_ms();
	atomic_store(&c->done, true);
	return NULL;
}

void caller_start(caller_t *c, rk_rpc_client_t *client, uint32_t timeout_ms)
{
	memset(c, 0, sizeof(*c));
	c->client = client;
	c->timeout_ms = timeout_ms;
	assert_int_equal(pthread_create(&c->thread, NULL, caller_main, c), 0);
}

/* Joins C, failing the test (not hanging it) if it is not done by
 * TIMEOUT_MS from now. */
void caller_join(caller_t *c, uint32_t timeout_ms)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000 + 1;
	if (pthread_timedjoin_np(c->thread, NULL, &until) != 0)
		fail_msg("a call did not end within %u ms", timeout_ms);
}

void count_done(rk_rpc_result_t *res, void *arg)
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

/* Sends FRAME with ID on FD and reads its answer, which must carry ID. */
void raw_expect(int fd, uint32_t id, const void *frame, size_t len, int code,
                const char *text)
{
	uint8_t *buf = malloc(len + 8);
	size_t n = raw_put(buf, id, frame, len);
	assert_int_equal(raw_send(fd, buf, n), 0);
	free(buf);
	raw_answer_t a;
	assert_int_equal(raw_read(fd, 2000, &a), 1);
	assert_int_equal(a.id, id);
	if (a.code != code)
		fail_msg("request %u: code %d (%s), expected %d", id, a.code,
		         a.text, code);
	if (text != NULL && strstr(a.text, text) == NULL)
		fail_msg("request %u: \"%s\" does not say \"%s\"", id, a.text,
		         text);
}
