/*
 * The stream transport under concurrent calls: many threads sharing one
 * client, 100 calls held inside the server at once (synchronous and
 * asynchronous), asynchronous calls that each end once, with their own
 * results, by their own deadlines. Run by test_rpc_stream.c's main().
 */
#include "stream_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "ringkv/v1/common.pb-c.h"
#include "service/health.h"

enum { THREADS = 16, CALLS_PER_THREAD = 300 };

typedef struct hammer {
	pthread_t thread;
	fixture_t *f;
	int index;
	int ok;        /* answers that matched their question */
	char why[400]; /* the first failure */
} hammer_t;

static void *hammer_main(void *arg)
{
	hammer_t *h = arg;
	for (int i = 0; i < CALLS_PER_THREAD; i++) {
		char text[64];
		snprintf(text, sizeof(text), "thread %02d call %05d", h->index,
		         i);
		rk_rpc_result_t res;
		rk_status_t st = echo(h->f, text, 5000, &res);
		const Ringkv__V1__EchoResponse *r = (const void *)res.response;
		if (st == RK_OK && r->payload.len == strlen(text) &&
		    memcmp(r->payload.data, text, r->payload.len) == 0)
			h->ok++;
		else if (h->why[0] == '\0')
			snprintf(h->why, sizeof(h->why), "%s: %s: %s", text,
			         rk_status_name(st), res.message);
		rk_rpc_result_clear(&res);
	}
	return NULL;
}

static void test_stream_16_threads_share_one_client(void **state)
{
	fixture_t *f = *state;
	start_server(f, true, NULL, 0);
	start_client(f, f->key);
	hammer_t h[THREADS];
	memset(h, 0, sizeof(h));
	for (int i = 0; i < THREADS; i++) {
		h[i].f = f;
		h[i].index = i;
		assert_int_equal(
		    pthread_create(&h[i].thread, NULL, hammer_main, &h[i]), 0);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(h[i].thread, NULL);
	for (int i = 0; i < THREADS; i++) {
		if (h[i].ok != CALLS_PER_THREAD)
			fail_msg("thread %d: %d of %d right; first failure %s",
			         i, h[i].ok, CALLS_PER_THREAD, h[i].why);
	}
}

static void test_stream_holds_100_calls_in_flight_on_the_pool(void **state)
{
	fixture_t *f = *state;
	enum { N = 100 };
	start_server(f, true, park_handler, 0); /* on the worker pool */
	start_client(f, f->key);
	caller_t *c = calloc(N, sizeof(*c));
	for (int i = 0; i < N; i++)
		caller_start(&c[i], f->client, 10000);
	/* All N inside the server at once before any is answered. */
	assert_int_equal(park_wait(N, 10000), N);
	for (int i = 0; i < N; i++)
		assert_false(atomic_load(&c[i].done));
	/* Answered from this thread, not the server's. */
	park_answer_all();
	for (int i = 0; i < N; i++) {
		caller_join(&c[i], 5000);
		assert_int_equal(c[i].code, RK_OK);
	}
	free(c);
}

/* As test_rpc proves for nng: asynchronous calls do not wait for each
 * other, whatever the handler takes. */
static void test_stream_holds_100_async_calls_in_flight(void **state)
{
	fixture_t *f = *state;
	enum { N = 100 };
	start_server(f, true, park_handler, 0);
	start_client(f, f->key);
	async_count_t a = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
	                   0, 0, RK_OK};
	Ringkv__V1__HealthCheckRequest req =
	    RINGKV__V1__HEALTH_CHECK_REQUEST__INIT;
	for (int i = 0; i < N; i++)
		assert_int_equal(
		    rk_rpc_call_async(f->client, rk_health_check_method(),
		                      &req.base, 10000, count_done, &a),
		    RK_OK);
	assert_int_equal(park_wait(N, 10000), N);
	pthread_mutex_lock(&a.mu);
	assert_int_equal(a.done, 0);
	pthread_mutex_unlock(&a.mu);
	park_answer_all();
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&a.mu);
	while (a.done < N && pthread_cond_timedwait(&a.cv, &a.mu, &until) == 0)
		;
	pthread_mutex_unlock(&a.mu);
	assert_int_equal(a.done, N);
	assert_int_equal(a.ok, N);
}

/* An asynchronous call ends by its own deadline even while earlier ones
 * are held in the server. */
static void
test_stream_async_call_meets_its_deadline_behind_held_ones(void **state)
{
	fixture_t *f = *state;
	enum { HELD = 8 };
	start_server(f, true, park_handler, RK_RPC_INLINE);
	start_client(f, f->key);
	async_count_t held = {PTHREAD_MUTEX_INITIALIZER,
	                      PTHREAD_COND_INITIALIZER, 0, 0, RK_OK};
	Ringkv__V1__HealthCheckRequest req =
	    RINGKV__V1__HEALTH_CHECK_REQUEST__INIT;
	for (int i = 0; i < HELD; i++)
		assert_int_equal(
		    rk_rpc_call_async(f->client, rk_health_check_method(),
		                      &req.base, 10000, count_done, &held),
		    RK_OK);
	assert_int_equal(park_wait(HELD, 5000), HELD);
	async_count_t late = {PTHREAD_MUTEX_INITIALIZER,
	                      PTHREAD_COND_INITIALIZER, 0, 0, RK_OK};
	uint64_t t0 = rk_clock_mono_ms();
	assert_int_equal(rk_rpc_call_async(f->client, rk_health_check_method(),
	                                   &req.base, 200, count_done, &late),
	                 RK_OK);
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 3;
	pthread_mutex_lock(&late.mu);
	while (late.done < 1 &&
	       pthread_cond_timedwait(&late.cv, &late.mu, &until) == 0)
		;
	pthread_mutex_unlock(&late.mu);
	uint64_t took = rk_clock_mono_ms() - t0;
	assert_int_equal(late.done, 1);
	assert_int_equal(late.last, RK_DEADLINE_EXCEEDED);
	assert_true(took < 200 + 300);
	park_answer_all(); /* the late one too: it reached the server */
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	pthread_mutex_lock(&held.mu);
	while (held.done < HELD &&
	       pthread_cond_timedwait(&held.cv, &held.mu, &until) == 0)
		;
	pthread_mutex_unlock(&held.mu);
	assert_int_equal(held.ok, HELD);
}

/* One asynchronous call's outcome, checked against what it asked. */
typedef struct async_one {
	struct async_all *all;
	int index;
	atomic_int runs;  /* times done ran */
	rk_status_t code; /* its result */
	bool payload_ok;  /* the echo was this call's */
} async_one_t;

typedef struct async_all {
	async_count_t count;
	async_one_t one[64];
} async_all_t;

static void async_echo_done(rk_rpc_result_t *res, void *arg)
{
	async_one_t *o = arg;
	atomic_fetch_add(&o->runs, 1);
	o->code = res->code;
	char text[32];
	snprintf(text, sizeof(text), "async %d", o->index);
	const Ringkv__V1__EchoResponse *r = (const void *)res->response;
	o->payload_ok = res->code == RK_OK && r != NULL &&
	                r->payload.len == strlen(text) &&
	                memcmp(r->payload.data, text, r->payload.len) == 0;
	count_done(res, &o->all->count);
}

static void test_stream_async_done_runs_once_with_results(void **state)
{
	fixture_t *f = *state;
	start_server(f, true, NULL, 0);
	start_client(f, f->key);
	async_all_t *all = calloc(1, sizeof(*all));
	pthread_mutex_init(&all->count.mu, NULL);
	pthread_cond_init(&all->count.cv, NULL);
	enum { N = 64 };
	for (int i = 0; i < N; i++) {
		all->one[i].all = all;
		all->one[i].index = i;
		char text[32];
		snprintf(text, sizeof(text), "async %d", i);
		Ringkv__V1__EchoRequest req = RINGKV__V1__ECHO_REQUEST__INIT;
		req.has_payload = true;
		req.payload.data = (uint8_t *)text; /* copied at once */
		req.payload.len = strlen(text);
		assert_int_equal(
		    rk_rpc_call_async(f->client, rk_health_echo_method(),
		                      &req.base, 5000, async_echo_done,
		                      &all->one[i]),
		    RK_OK);
	}
	/* A call that cannot start returns its error; done never runs. */
	Ringkv__V1__HealthCheckRequest wrong =
	    RINGKV__V1__HEALTH_CHECK_REQUEST__INIT;
	assert_int_equal(rk_rpc_call_async(f->client, rk_health_echo_method(),
	                                   &wrong.base, 5000, async_echo_done,
	                                   &all->one[N - 1]),
	                 RK_INVALID_ARGUMENT);
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&all->count.mu);
	while (all->count.done < N &&
	       pthread_cond_timedwait(&all->count.cv, &all->count.mu, &until) ==
	           0)
		;
	pthread_mutex_unlock(&all->count.mu);
	/* Freeing waits out every callback: none may come after. */
	rk_rpc_client_free(f->client);
	f->client = NULL;
	assert_int_equal(all->count.done, N);
	assert_int_equal(all->count.ok, N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(atomic_load(&all->one[i].runs), 1);
		assert_int_equal(all->one[i].code, RK_OK);
		assert_true(all->one[i].payload_ok);
	}
	free(all);
}

#define CASE(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

const struct CMUnitTest rk_stream_load_tests[] = {
    CASE(test_stream_16_threads_share_one_client),
    CASE(test_stream_holds_100_calls_in_flight_on_the_pool),
    CASE(test_stream_holds_100_async_calls_in_flight),
    CASE(test_stream_async_call_meets_its_deadline_behind_held_ones),
    CASE(test_stream_async_done_runs_once_with_results),
};
const size_t rk_stream_load_tests_len =
    sizeof(rk_stream_load_tests) / sizeof(rk_stream_load_tests[0]);
