/*
 * The stream transport (lib/rpc/stream_*.c) end to end, in one process
 * over loopback TCP: the real server and client, and a raw socket
 * (stream_raw.h) that writes bytes no well-behaved client would. It proves
 * for stream:// what test_rpc.c proves for nng — round trips, concurrency,
 * deadlines, failures, sealing — and what only a byte stream can get
 * wrong: request ids, pipelining, frame caps, split and flooded input.
 *
 * This file: round trips, failures, sealing, lifecycle, and main(), which
 * also runs the groups of test_rpc_stream_load.c (concurrent calls) and
 * test_rpc_stream_raw.c (raw input).
 */
#include "stream_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <poll.h>
#include <sched.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "ringkv/v1/common.pb-c.h"
#include "rpc/frame.h"
#include "service/health.h"
#include "stream_raw.h"

/* ---------------------------------------------------------- round trips */

static void test_stream_round_trip_sealed(void **state)
{
	fixture_t *f = *state;
	start_server(f, true, NULL, 0);
	start_client(f, f->key);
	echo_ok(f, "hello ringkv");
	/* Counted per method and code, as on nng. */
	char *text;
	size_t len;
	assert_int_equal(rk_metrics_render(f->metrics, &text, &len), RK_OK);
	assert_non_null(strstr(text, "ringkv_rpc_server_requests_total{"
	                             "method=\"Health.Echo\",code=\"OK\"} 1"));
	free(text);
}

static void test_stream_round_trip_unsealed(void **state)
{
	fixture_t *f = *state;
	start_server(f, false, NULL, 0);
	start_client(f, NULL);
	echo_ok(f, "plain");
	echo_ok(f, ""); /* an empty payload is a payload */
	/* Sequential calls reuse one pooled connection. */
	for (int i = 0; i < 50; i++)
		echo_ok(f, "again");
	assert_int_equal(rk_rpc_client_connected(f->client), 1);
}

/* The same server, the same method, both transports: same outcomes. */
static void test_stream_and_nng_give_identical_results(void **state)
{
	fixture_t *f = *state;
	start_server(f, true, NULL, 0); /* Echo only: Check is unrouted */
	assert_int_equal(rk_sealer_new(f->key, 0, &f->client_sealer), RK_OK);
	rk_rpc_client_t *sc = new_client(f->url, f->client_sealer, MAX_FRAME);
	rk_rpc_client_t *nc =
	    new_client(f->nng_url, f->client_sealer, MAX_FRAME);
	static uint8_t big[10000];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7);
	const struct {
		const void *p;
		size_t len;
	} cases[] = {
	    {"", 0}, {"x", 1}, {"\0\xff\0binary", 9}, {big, sizeof(big)}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rk_rpc_result_t a, b;
		assert_int_equal(
		    echo_on(sc, cases[i].p, cases[i].len, 2000, &a), RK_OK);
		assert_int_equal(
		    echo_on(nc, cases[i].p, cases[i].len, 2000, &b), RK_OK);
		const Ringkv__V1__EchoResponse *ra = (const void *)a.response;
		const Ringkv__V1__EchoResponse *rb = (const void *)b.response;
		assert_int_equal(ra->has_payload, rb->has_payload);
		assert_int_equal(ra->payload.len, cases[i].len);
		assert_int_equal(rb->payload.len, cases[i].len);
		if (cases[i].len > 0) {
			assert_memory_equal(ra->payload.data, cases[i].p,
			                    cases[i].len);
			assert_memory_equal(rb->payload.data, cases[i].p,
			                    cases[i].len);
		}
		rk_rpc_result_clear(&a);
		rk_rpc_result_clear(&b);
	}
	/* Errors too: the server's status and words, whichever transport. */
	Ringkv__V1__HealthCheckRequest req =
	    RINGKV__V1__HEALTH_CHECK_REQUEST__INIT;
	rk_rpc_result_t a, b;
	assert_int_equal(
	    rk_rpc_call(sc, rk_health_check_method(), &req.base, 2000, &a),
	    RK_UNIMPLEMENTED);
	assert_int_equal(
	    rk_rpc_call(nc, rk_health_check_method(), &req.base, 2000, &b),
	    RK_UNIMPLEMENTED);
	assert_string_equal(a.message, b.message);
	rk_rpc_result_clear(&a);
	rk_rpc_result_clear(&b);
	rk_rpc_client_free(sc);
	rk_rpc_client_free(nc);
	char *text;
	size_t len;
	assert_int_equal(rk_metrics_render(f->metrics, &text, &len), RK_OK);
	assert_non_null(strstr(text, "ringkv_rpc_server_requests_total{"
	                             "method=\"Health.Echo\",code=\"OK\"} 8"));
	free(text);
}

/* ---------------------------------------------------------- failures */

static void test_stream_deadline_exceeded_then_next_call_works(void **state)
{
	fixture_t *f = *state;
	start_server(f, true, park_handler, 0); /* never answers in time */
	start_client(f, f->key);
	echo_ok(f, "warm"); /* a connection first: the deadline is the
	                       server's doing, not the connect's */
	Ringkv__V1__HealthCheckRequest req =
	    RINGKV__V1__HEALTH_CHECK_REQUEST__INIT;
	rk_rpc_result_t res;
	uint64_t t0 = rk_clock_mono_ms();
	assert_int_equal(rk_rpc_call(f->client, rk_health_check_method(),
	                             &req.base, 150, &res),
	                 RK_DEADLINE_EXCEEDED);
	uint64_t took = rk_clock_mono_ms() - t0;
	assert_true(took >= 150);
	assert_true(took < 150 + 250);
	rk_rpc_result_clear(&res);
	/* The late answer goes out now; it must never be taken for the
	 * answer to the next call. */
	assert_int_equal(park_wait(1, 2000), 1);
	park_answer_all();
	echo_ok(f, "after the deadline");
	echo_ok(f, "and again");
}

static void test_stream_no_server_is_unavailable_promptly(void **state)
{
	fixture_t *f = *state;
	/* Take a free port, then close it so nothing listens there. */
	start_server(f, true, NULL, 0);
	rk_rpc_server_free(f->srv);
	f->srv = NULL;
	start_client(f, f->key);
	rk_rpc_result_t res;
	uint64_t t0 = rk_clock_mono_ms();
	assert_int_equal(echo(f, "anyone?", 3000, &res), RK_UNAVAILABLE);
	assert_true(rk_clock_mono_ms() - t0 < 1000);
	assert_non_null(strstr(res.message, "cannot connect"));
	rk_rpc_result_clear(&res);
	/* The asynchronous path says the same, through done, once. */
	async_count_t a = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
	                   0, 0, RK_OK};
	Ringkv__V1__EchoRequest req = RINGKV__V1__ECHO_REQUEST__INIT;
	assert_int_equal(rk_rpc_call_async(f->client, rk_health_echo_method(),
	                                   &req.base, 3000, count_done, &a),
	                 RK_OK);
	rk_rpc_client_free(f->client); /* waits for done */
	f->client = NULL;
	assert_int_equal(a.done, 1);
	assert_true(a.last == RK_UNAVAILABLE || a.last == RK_CANCELLED);
}

static void test_stream_server_shutdown_mid_call_ends_the_call(void **state)
{
	fixture_t *f = *state;
	start_server(f, true, park_handler, RK_RPC_INLINE);
	start_client(f, f->key);
	caller_t c;
	caller_start(&c, f->client, 10000);
	assert_int_equal(park_wait(1, 5000), 1);
	uint64_t t0 = rk_clock_mono_ms();
	rk_rpc_server_shutdown(f->srv);
	caller_join(&c, 3000);
	assert_true(c.code == RK_UNAVAILABLE || c.code == RK_CANCELLED);
	assert_true(c.ended_ms - t0 < 1000); /* not its 10 s deadline */
	park_answer_all(); /* after shutdown: dropped, no harm */
}

/* Slow work that says when it has begun: 100 ms on the pool. */
static atomic_int slow_started;

static void slow_signal_handler(rk_rpc_call_t *call,
                                const ProtobufCMessage *msg, void *arg)
{
	pthread_mutex_lock(&parking.mu);
	atomic_fetch_add(&slow_started, 1);
	pthread_cond_broadcast(&parking.cv);
	pthread_mutex_unlock(&parking.mu);
	slow_handler(call, msg, arg);
}

static void test_stream_server_freed_mid_call_is_unavailable(void **state)
{
	fixture_t *f = *state;
	atomic_store(&slow_started, 0);
	start_server(f, true, slow_signal_handler, 0);
	start_client(f, f->key);
	caller_t c;
	caller_start(&c, f->client, 10000);
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	pthread_mutex_lock(&parking.mu);
	while (atomic_load(&slow_started) == 0 &&
	       pthread_cond_timedwait(&parking.cv, &parking.mu, &until) == 0)
		;
	pthread_mutex_unlock(&parking.mu);
	assert_int_equal(atomic_load(&slow_started), 1);
	/* Freed while the handler runs: it answers into a closed
	 * connection, and the caller hears the connection go. */
	uint64_t t0 = rk_clock_mono_ms();
	rk_rpc_server_free(f->srv);
	f->srv = NULL;
	caller_join(&c, 3000);
	assert_true(c.code == RK_UNAVAILABLE || c.code == RK_CANCELLED);
	assert_true(c.ended_ms - t0 < 1000); /* not its 10 s deadline */
}

/* A server that takes one request and hangs up, counting what comes. */
typedef struct hangup_server {
	pthread_t thread;
	int lfd;
	int port;
	int accepted; /* connections over the whole test */
} hangup_server_t;

static void *hangup_main(void *arg)
{
	hangup_server_t *h = arg;
	uint64_t until = rk_clock_mono_ms() + 1500;
	for (;;) {
		uint64_t now = rk_clock_mono_ms();
		if (now >= until)
			break;
		struct pollfd p = {.fd = h->lfd, .events = POLLIN};
		if (poll(&p, 1, (int)(until - now)) <= 0)
			continue;
		int fd = accept(h->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		h->accepted++;
		raw_answer_t a; /* reads the request's bytes, answers none */
		(void)raw_read(fd, 200, &a);
		close(fd);
	}
	return NULL;
}

static void test_stream_broken_connection_fails_call_never_resends(void **state)
{
	fixture_t *f = *state;
	hangup_server_t h = {0};
	h.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(h.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(h.lfd, 16), 0);
	socklen_t sl = sizeof(sa);
	getsockname(h.lfd, (struct sockaddr *)&sa, &sl);
	snprintf(f->url, sizeof(f->url), "stream://127.0.0.1:%d",
	         ntohs(sa.sin_port));
	assert_int_equal(pthread_create(&h.thread, NULL, hangup_main, &h), 0);
	start_client(f, f->key);
	rk_rpc_result_t res;
	uint64_t t0 = rk_clock_mono_ms();
	/* At most once: the lost connection fails the call at once instead
	 * of sending the request again or waiting out 5 s. */
	assert_int_equal(echo(f, "gone", 5000, &res), RK_UNAVAILABLE);
	assert_true(rk_clock_mono_ms() - t0 < 1000);
	assert_non_null(strstr(res.message, "lost"));
	rk_rpc_result_clear(&res);
	pthread_join(h.thread, NULL);
	close(h.lfd);
	assert_int_equal(h.accepted, 1);
}

static void
test_stream_restarted_server_stale_idle_connection_replaced(void **state)
{
	fixture_t *f = *state;
	start_server(f, true, NULL, 0);
	start_client(f, f->key);
	echo_ok(f, "first life");
	uint64_t idle_since = rk_clock_mono_ms();
	int port = f->port;
	rk_rpc_server_free(f->srv); /* closes the client's idle connection */
	f->srv = NULL;
	start_server_on(f, true, NULL, 0, MAX_FRAME, port);
	assert_int_equal(f->port, port);
	/* The client checks an idle connection only once it has been idle
	 * longer than its freshness window (FRESH_IDLE_MS, 20 ms, in
	 * stream_client.c): a connection used a moment ago is taken as is
	 * to save a system call. Wait that window out: a time condition of
	 * the client's, not synchronisation with the server. */
	while (rk_clock_mono_ms() - idle_since <= 25) {
		struct timespec ts = {0, 2 * 1000000L};
		nanosleep(&ts, NULL);
	}
	echo_ok(f, "second life");
	echo_ok(f, "and on");
}

/* Answers Check with a 100 KB version string. */
static void big_answer_handler(rk_rpc_call_t *call, const ProtobufCMessage *msg,
                               void *arg)
{
	(void)msg;
	(void)arg;
	char *v = rk_rpc_call_alloc(call, 100001);
	if (v == NULL) {
		rk_rpc_reply_error(call, RK_RESOURCE_EXHAUSTED, 0, "no memory");
		return;
	}
	memset(v, 'v', 100000);
	v[100000] = '\0';
	Ringkv__V1__HealthCheckResponse resp =
	    RINGKV__V1__HEALTH_CHECK_RESPONSE__INIT;
	resp.version = v;
	rk_rpc_reply(call, &resp.base);
}

static void test_stream_answer_over_a_cap_is_resource_exhausted(void **state)
{
	fixture_t *f = *state;
	Ringkv__V1__HealthCheckRequest req =
	    RINGKV__V1__HEALTH_CHECK_REQUEST__INIT;
	rk_rpc_result_t res;
	/* Over the client's cap: refused by the client, which goes on. */
	start_server_on(f, true, big_answer_handler, 0, BIG_FRAME, 0);
	start_client(f, f->key); /* cap 64 KiB */
	assert_int_equal(rk_rpc_call(f->client, rk_health_check_method(),
	                             &req.base, 2000, &res),
	                 RK_RESOURCE_EXHAUSTED);
	assert_non_null(strstr(res.message, "exceeds max_frame_bytes"));
	rk_rpc_result_clear(&res);
	echo_ok(f, "next call");
	rk_rpc_client_free(f->client);
	f->client = NULL;
	/* Over the server's cap: the server says so instead. */
	rk_rpc_server_free(f->srv);
	f->srv = NULL;
	start_server(f, true, big_answer_handler, 0); /* cap 64 KiB */
	f->client = new_client(f->url, f->client_sealer, BIG_FRAME);
	assert_int_equal(rk_rpc_call(f->client, rk_health_check_method(),
	                             &req.base, 2000, &res),
	                 RK_RESOURCE_EXHAUSTED);
	assert_non_null(strstr(res.message, "response of"));
	rk_rpc_result_clear(&res);
	echo_ok(f, "and on");
}

/* ---------------------------------------------------------- sealing */

static void test_stream_wrong_key_is_unauthenticated(void **state)
{
	fixture_t *f = *state;
	start_server(f, true, NULL, 0);
	uint8_t other[RK_SEAL_KEY_BYTES];
	randombytes_buf(other, sizeof(other));
	start_client(f, other);
	rk_rpc_result_t res;
	assert_int_equal(echo(f, "let me in", 2000, &res), RK_UNAUTHENTICATED);
	assert_non_null(strstr(res.message, "bad tag or wrong key"));
	rk_rpc_result_clear(&res);
	/* Without any key: refused too. */
	rk_rpc_client_free(f->client);
	rk_sealer_free(f->client_sealer);
	f->client_sealer = NULL;
	start_client(f, NULL);
	assert_int_equal(echo(f, "no key", 2000, &res), RK_UNAUTHENTICATED);
	assert_non_null(strstr(res.message, "requires the cluster key"));
	rk_rpc_result_clear(&res);
}

static void test_stream_replayed_sealed_frame_is_refused(void **state)
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
	assert_int_equal(
	    rk_frame_pack(s, RK_FRAME_REQUEST, NULL, &env.base, &m, NULL),
	    RK_OK);
	int fd = raw_connect(f->port, 0);
	assert_true(fd >= 0);
	/* First time: answered sealed. The same bytes again, on the same
	 * connection or another: refused in the clear. */
	raw_expect(fd, 1, nng_msg_body(m), nng_msg_len(m), RAW_SEALED, NULL);
	raw_expect(fd, 2, nng_msg_body(m), nng_msg_len(m), RK_UNAUTHENTICATED,
	           "replayed frame");
	int fd2 = raw_connect(f->port, 0);
	assert_true(fd2 >= 0);
	raw_expect(fd2, 1, nng_msg_body(m), nng_msg_len(m), RK_UNAUTHENTICATED,
	           "replayed frame");
	close(fd2);
	close(fd);
	/* The replay window is the server's, not a transport's: the same
	 * frame over nng is refused too. */
	nng_socket ns;
	assert_int_equal(nng_req0_open(&ns), 0);
	nng_socket_set_ms(ns, NNG_OPT_RECVTIMEO, 2000);
	nng_socket_set_ms(ns, NNG_OPT_SENDTIMEO, 2000);
	assert_int_equal(nng_dial(ns, f->nng_url, NULL, 0), 0);
	nng_msg *dup;
	assert_int_equal(nng_msg_dup(&dup, m), 0);
	assert_int_equal(nng_sendmsg(ns, dup, 0), 0);
	nng_msg *r = NULL;
	assert_int_equal(nng_recvmsg(ns, &r, 0), 0);
	const uint8_t *b = nng_msg_body(r);
	assert_true(nng_msg_len(r) > RK_FRAME_HEADER_BYTES);
	assert_int_equal(b[2] & RK_FRAME_FLAG_SEALED, 0); /* a refusal */
	Ringkv__V1__ResponseEnvelope *renv =
	    ringkv__v1__response_envelope__unpack(
	        NULL, nng_msg_len(r) - RK_FRAME_HEADER_BYTES,
	        b + RK_FRAME_HEADER_BYTES);
	assert_non_null(renv);
	assert_int_equal(renv->status->code, RK_UNAUTHENTICATED);
	assert_string_equal(renv->status->message, "replayed frame");
	ringkv__v1__response_envelope__free_unpacked(renv, NULL);
	nng_msg_free(r);
	nng_close(ns);
	nng_msg_free(m);
	rk_sealer_free(s);
}

/* ---------------------------------------------------------- lifecycle */

static void test_stream_client_free_cancels_blocked_calls(void **state)
{
	fixture_t *f = *state;
	enum { SYNC = 8, ASYNC = 2 };
	start_server(f, true, park_handler, RK_RPC_INLINE);
	start_client(f, f->key);
	caller_t c[SYNC];
	for (int i = 0; i < SYNC; i++)
		caller_start(&c[i], f->client, 10000);
	async_count_t a = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
	                   0, 0, RK_OK};
	Ringkv__V1__HealthCheckRequest req =
	    RINGKV__V1__HEALTH_CHECK_REQUEST__INIT;
	for (int i = 0; i < ASYNC; i++)
		assert_int_equal(
		    rk_rpc_call_async(f->client, rk_health_check_method(),
		                      &req.base, 10000, count_done, &a),
		    RK_OK);
	/* Every call is blocked inside the server. */
	assert_int_equal(park_wait(SYNC + ASYNC, 5000), SYNC + ASYNC);
	uint64_t t0 = rk_clock_mono_ms();
	rk_rpc_client_free(f->client); /* returns once all have ended */
	f->client = NULL;
	assert_true(rk_clock_mono_ms() - t0 < 1000);
	for (int i = 0; i < SYNC; i++) {
		caller_join(&c[i], 1000);
		assert_int_equal(c[i].code, RK_CANCELLED);
	}
	assert_int_equal(a.done, ASYNC);
	assert_int_equal(a.last, RK_CANCELLED);
	assert_int_equal(a.ok, 0);
	/* The server's calls still get answered (to nobody). */
	park_answer_all();
}

static void test_stream_1_mib_request_and_answer(void **state)
{
	fixture_t *f = *state;
	enum { MIB = 1 << 20 };
	start_server_on(f, true, NULL, 0, BIG_FRAME, 0);
	assert_int_equal(rk_sealer_new(f->key, 0, &f->client_sealer), RK_OK);
	f->client = new_client(f->url, f->client_sealer, BIG_FRAME);
	uint8_t *p = malloc(MIB);
	randombytes_buf(p, MIB);
	for (int round = 0; round < 3; round++) {
		rk_rpc_result_t res;
		assert_int_equal(echo_on(f->client, p, MIB, 10000, &res),
		                 RK_OK);
		const Ringkv__V1__EchoResponse *r = (const void *)res.response;
		assert_int_equal(r->payload.len, MIB);
		assert_memory_equal(r->payload.data, p, MIB);
		rk_rpc_result_clear(&res);
	}
	free(p);
}

static void test_stream_1_mib_answer_to_slow_reader_is_queued(void **state)
{
	fixture_t *f = *state;
	enum { MIB = 1 << 20 };
	start_server_on(f, false, NULL, 0, BIG_FRAME, 0);
	/* A small receive buffer: the server's writes must be partial and
	 * the rest queued until the socket drains. */
	int fd = raw_connect(f->port, 4096);
	assert_true(fd >= 0);
	uint8_t *payload = malloc(MIB);
	memset(payload, 'm', MIB);
	uint8_t *frame = malloc(MIB + 64);
	size_t n = raw_echo_request(frame, payload, MIB);
	uint8_t *wire = malloc(2 * (n + 8));
	size_t w = raw_put(wire, 41, frame, n);
	w += raw_put(wire + w, 42, frame, n);
	free(frame);
	assert_int_equal(raw_send(fd, wire, w), 0);
	free(wire);
	for (uint32_t id = 41; id <= 42; id++) {
		raw_answer_t a;
		assert_int_equal(raw_read(fd, 10000, &a), 1);
		assert_int_equal(a.id,
		                 id); /* queued answers keep their order */
		assert_int_equal(a.code, RK_OK);
		assert_int_equal(a.payload_len, MIB);
		assert_memory_equal(a.payload, payload, sizeof(a.payload));
	}
	free(payload);
	close(fd);
}

static void
test_stream_server_shutdown_with_open_conns_and_held_calls(void **state)
{
	fixture_t *f = *state;
	start_server(f, false, park_handler, 0); /* Check: held, pool */
	start_client(f, NULL);
	echo_ok(f, "an idle pooled connection");
	/* Idle raw connections, one with half a frame in it. */
	int idle[3];
	for (int i = 0; i < 3; i++) {
		idle[i] = raw_connect(f->port, 0);
		assert_true(idle[i] >= 0);
	}
	assert_int_equal(raw_send(idle[2], "\x00\x00\x00\x40\x00", 5), 0);
	/* Held calls: two from raw sockets, two from client threads. */
	Ringkv__V1__HealthCheckRequest ck =
	    RINGKV__V1__HEALTH_CHECK_REQUEST__INIT;
	uint8_t body[16], frame[64], wire[80];
	size_t bl = ringkv__v1__health_check_request__pack(&ck, body);
	size_t n = raw_plain_request(
	    frame, RINGKV__V1__SERVICE_ID__SERVICE_HEALTH,
	    RINGKV__V1__HEALTH_METHOD__HEALTH_CHECK, body, bl);
	int held[2];
	for (int i = 0; i < 2; i++) {
		held[i] = raw_connect(f->port, 0);
		assert_true(held[i] >= 0);
		size_t w = raw_put(wire, 7, frame, n);
		assert_int_equal(raw_send(held[i], wire, w), 0);
	}
	caller_t c[2];
	for (int i = 0; i < 2; i++)
		caller_start(&c[i], f->client, 10000);
	assert_int_equal(park_wait(4, 5000), 4);

	rk_rpc_server_shutdown(f->srv);
	/* Every connection is closed, and the callers hear of it. */
	for (int i = 0; i < 3; i++) {
		assert_int_equal(raw_wait_closed(idle[i], 2000), 1);
		close(idle[i]);
	}
	for (int i = 0; i < 2; i++)
		caller_join(&c[i], 2000);
	for (int i = 0; i < 2; i++)
		assert_int_equal(c[i].code, RK_UNAVAILABLE);
	/* Held calls answered after shutdown: dropped, not sent. */
	pthread_mutex_lock(&parking.mu);
	rk_rpc_call_t *first = parking.calls[0];
	memmove(parking.calls, parking.calls + 1,
	        (parking.n - 1) * sizeof(parking.calls[0]));
	parking.n--;
	pthread_mutex_unlock(&parking.mu);
	rk_rpc_reply_error(first, RK_UNAVAILABLE, 0, "too late");
	park_answer_all();
	for (int i = 0; i < 2; i++) {
		raw_answer_t a;
		assert_int_equal(raw_read(held[i], 2000, &a), 0);
		close(held[i]);
	}
	/* The client sees a server that is gone. */
	rk_rpc_result_t res;
	assert_int_equal(echo(f, "anyone?", 1000, &res), RK_UNAVAILABLE);
	rk_rpc_result_clear(&res);
	/* teardown frees the server: ASan checks nothing leaked. */
}

static void test_stream_bad_addresses_are_refused(void **state)
{
	fixture_t *f = *state;
	const char *bad[] = {"stream://", "stream://127.0.0.1",
	                     "stream://127.0.0.1:", "stream://:7000"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rk_rpc_client_opts_t o = {.url = bad[i]};
		rk_rpc_client_t *c = NULL;
		assert_int_equal(rk_rpc_client_new(&o, &c),
		                 RK_INVALID_ARGUMENT);
	}
	/* A server cannot take a stream port already taken. */
	start_server(f, false, NULL, 0);
	rk_rpc_server_opts_t o = {.listen = "tcp://127.0.0.1:0",
	                          .stream_listen = f->url,
	                          .name = "second"};
	rk_rpc_server_t *s2;
	assert_int_equal(rk_rpc_server_new(&o, &s2), RK_OK);
	char *err = NULL;
	assert_int_equal(rk_rpc_server_start(s2, &err), RK_UNAVAILABLE);
	assert_non_null(err);
	free(err);
	rk_rpc_server_free(s2);
	/* Nor listen on something that is not stream://HOST:PORT. */
	o.stream_listen = "stream://127.0.0.1";
	assert_int_equal(rk_rpc_server_new(&o, &s2), RK_OK);
	err = NULL;
	assert_int_equal(rk_rpc_server_start(s2, &err), RK_INVALID_ARGUMENT);
	free(err);
	rk_rpc_server_free(s2);
}

/* Waits up to TIMEOUT_MS for gauge G to read WANT; returns its value. */
static double gauge_wait(rk_gauge_t *g, double want, uint32_t timeout_ms)
{
	uint64_t until = rk_clock_mono_ms() + timeout_ms;
	while (rk_gauge_value(g) != want && rk_clock_mono_ms() < until)
		sched_yield();
	return rk_gauge_value(g);
}

/* ringkv_rpc_stream_connections follows connections opened and closed. */
static void test_stream_open_connections_are_on_metrics(void **state)
{
	fixture_t *f = *state;
	start_server(f, false, NULL, 0);
	start_client(f, NULL);
	rk_gauge_t *g = rk_metrics_gauge(f->metrics,
	                                 "ringkv_rpc_stream_connections", NULL,
	                                 NULL);
	assert_non_null(g);
	assert_true(rk_gauge_value(g) == 0);
	echo_ok(f, "one"); /* the client's connection, accepted and served */
	assert_true(gauge_wait(g, 1, 5000) == 1);
	int fd = raw_connect(f->port, 0);
	assert_true(fd >= 0);
	uint8_t frame[128];
	size_t n = raw_echo_request(frame, "two", 3);
	raw_expect(fd, 7, frame, n, RK_OK, NULL); /* served: accepted */
	assert_true(gauge_wait(g, 2, 5000) == 2);
	close(fd);
	assert_true(gauge_wait(g, 1, 5000) == 1);
}

#define CASE(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	rk_log_set_level(RK_LOG_ERROR);
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
	    CASE(test_stream_round_trip_sealed),
	    CASE(test_stream_round_trip_unsealed),
	    CASE(test_stream_and_nng_give_identical_results),
	    CASE(test_stream_deadline_exceeded_then_next_call_works),
	    CASE(test_stream_no_server_is_unavailable_promptly),
	    CASE(test_stream_server_shutdown_mid_call_ends_the_call),
	    CASE(test_stream_server_freed_mid_call_is_unavailable),
	    CASE(test_stream_broken_connection_fails_call_never_resends),
	    CASE(test_stream_restarted_server_stale_idle_connection_replaced),
	    CASE(test_stream_answer_over_a_cap_is_resource_exhausted),
	    CASE(test_stream_wrong_key_is_unauthenticated),
	    CASE(test_stream_replayed_sealed_frame_is_refused),
	    CASE(test_stream_client_free_cancels_blocked_calls),
	    CASE(test_stream_1_mib_request_and_answer),
	    CASE(test_stream_1_mib_answer_to_slow_reader_is_queued),
	    CASE(test_stream_server_shutdown_with_open_conns_and_held_calls),
	    CASE(test_stream_bad_addresses_are_refused),
	    CASE(test_stream_open_connections_are_on_metrics),
	};
	int failed =
	    cmocka_run_group_tests_name("rpc_stream", tests, NULL, NULL);
	failed +=
	    _cmocka_run_group_tests("rpc_stream_load", rk_stream_load_tests,
	                            rk_stream_load_tests_len, NULL, NULL);
	failed += _cmocka_run_group_tests("rpc_stream_raw", rk_stream_raw_tests,
	                                  rk_stream_raw_tests_len, NULL, NULL);
	return failed;
}
