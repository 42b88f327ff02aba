/*
 * The Snowflake generator of ringkv-idgen (services/idgen/snowflake.c):
 * layout, order, batches, and every clock rule, driven by a controllable
 * clock whose wall time the test sets, steps back or freezes; plus the
 * many-thread order test on the real clock. The layout round trip is
 * randomized and prints its seed (RINGKV_TEST_SEED repeats it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "snowflake.h"

#define T0_MS (RK_SNOWFLAKE_DEFAULT_EPOCH_MS + 1000000ull)

/* ---------------------------------------------------------- fake clock */

typedef struct fake_clock {
	void (*on_sleep)(void *arg); /* called after each sleep, if set */
	void *on_sleep_arg;          /* its argument */
	_Atomic uint64_t wall_us;    /* what wall_us() answers */
	_Atomic uint64_t mono_us;    /* what mono_us() answers */
	atomic_bool frozen;          /* sleeping does not move the wall clock */
	atomic_uint sleeps;          /* sleep calls */
} fake_clock_t;

static uint64_t fake_wall(void *arg)
{
	return atomic_load(&((fake_clock_t *)arg)->wall_us);
}

static uint64_t fake_mono(void *arg)
{
	return atomic_load(&((fake_clock_t *)arg)->mono_us);
}

/* Sleeping moves time on, as a real sleep would. */
static void fake_sleep(void *arg, uint64_t us)
{
	fake_clock_t *f = arg;
	atomic_fetch_add(&f->sleeps, 1);
	atomic_fetch_add(&f->mono_us, us);
	if (!atomic_load(&f->frozen))
		atomic_fetch_add(&f->wall_us, us);
	if (f->on_sleep != NULL)
		f->on_sleep(f->on_sleep_arg);
}

static void set_wall_ms(fake_clock_t *f, uint64_t ms)
{
	atomic_store(&f->wall_us, ms * 1000);
}

/* Records the reserve hook's calls. */
typedef struct marks {
	uint64_t last;  /* last mark persisted */
	unsigned calls; /* calls */
	bool fail;      /* answer UNAVAILABLE */
} marks_t;

static rk_status_t fake_reserve(void *arg, uint64_t mark, char *why, size_t len)
{
	marks_t *m = arg;
	m->calls++;
	if (m->fail) {
		snprintf(why, len, "disk full");
		return RK_UNAVAILABLE;
	}
	assert_true(mark > m->last);
	m->last = mark;
	return RK_OK;
}

typedef struct fixture {
	fake_clock_t clock;
	marks_t marks;
	rk_snowflake_t *g;
} fixture_t;

static rk_snowflake_opts_t opts_for(fixture_t *f)
{
	rk_snowflake_opts_t o = {
	    .epoch_ms = RK_SNOWFLAKE_DEFAULT_EPOCH_MS,
	    .datacenter_id = 3,
	    .worker_id = 7,
	    .max_step_ms = 5,
	    .stall_ms = 50,
	    .chunk_ms = 100,
	    .floor_ms = 0,
	    .reserved_ms = 0,
	    .clock = {fake_wall, fake_mono, fake_sleep, &f->clock},
	    .reserve = fake_reserve,
	    .reserve_arg = &f->marks,
	};
	return o;
}

static int setup(void **state)
{
	fixture_t *f = calloc(1, sizeof(*f));
	set_wall_ms(&f->clock, T0_MS);
	atomic_store(&f->clock.mono_us, 1000000);
	rk_snowflake_opts_t o = opts_for(f);
	assert_int_equal(rk_snowflake_new(&o, &f->g), RK_OK);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *f = *state;
	rk_snowflake_free(f->g);
	free(f);
	return 0;
}

static uint64_t next1(fixture_t *f, rk_status_t want)
{
	uint64_t id = 0;
	rk_snowflake_outcome_t o;
	assert_int_equal(rk_snowflake_next(f->g, 1, &id, 0, &o), want);
	return id;
}

static uint64_t ms_of(uint64_t id)
{
	rk_snowflake_parts_t p;
	assert_int_equal(rk_snowflake_decompose(id, &p), RK_OK);
	return p.ms_since_epoch + RK_SNOWFLAKE_DEFAULT_EPOCH_MS;
}

/* ---------------------------------------------------------- layout */

static uint64_t rng;
static uint64_t rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 2685821657736338717ull;
}

static void test_layout_round_trips_random_parts(void **state)
{
	(void)state;
	uint64_t seed = (uint64_t)time(NULL);
	const char *env = getenv("RINGKV_TEST_SEED");
	if (env != NULL)
		seed = strtoull(env, NULL, 0);
	printf("seed %llu (set RINGKV_TEST_SEED to repeat)\n",
	       (unsigned long long)seed);
	rng = seed | 1;
	for (int i = 0; i < 100000; i++) {
		rk_snowflake_parts_t p =
		                         {
		                             .ms_since_epoch =
		                                 rnd() & ((1ull << 41) - 1),
		                             .datacenter =
		                                 (uint32_t)(rnd() & 31),
		                             .worker = (uint32_t)(rnd() & 31),
		                             .sequence =
		                                 (uint32_t)(rnd() & 4095),
		                         },
		                     q;
		uint64_t id = rk_snowflake_compose(&p);
		assert_true(id >> 63 == 0);
		assert_int_equal(rk_snowflake_decompose(id, &q), RK_OK);
		assert_true(p.ms_since_epoch == q.ms_since_epoch);
		assert_int_equal(p.datacenter, q.datacenter);
		assert_int_equal(p.worker, q.worker);
		assert_int_equal(p.sequence, q.sequence);
	}
}

static void test_layout_puts_fields_at_documented_bits(void **state)
{
	(void)state;
	rk_snowflake_parts_t p = {1, 1, 1, 1};
	assert_true(rk_snowflake_compose(&p) ==
	            ((1ull << 22) | (1ull << 17) | (1ull << 12) | 1ull));
	rk_snowflake_parts_t max = {(1ull << 41) - 1, 31, 31, 4095};
	assert_true(rk_snowflake_compose(&max) == INT64_MAX);
	rk_snowflake_parts_t q;
	assert_int_equal(rk_snowflake_decompose(1ull << 63, &q),
	                 RK_INVALID_ARGUMENT);
	assert_true(rk_snowflake_expires_at_ms(RK_SNOWFLAKE_DEFAULT_EPOCH_MS) ==
	            RK_SNOWFLAKE_DEFAULT_EPOCH_MS + (1ull << 41));
}

static void test_ids_carry_identity_and_clock_time(void **state)
{
	fixture_t *f = *state;
	uint64_t id = next1(f, RK_OK);
	rk_snowflake_parts_t p;
	assert_int_equal(rk_snowflake_decompose(id, &p), RK_OK);
	assert_int_equal(p.datacenter, 3);
	assert_int_equal(p.worker, 7);
	assert_int_equal(p.sequence, 0);
	assert_true(ms_of(id) == T0_MS);
	assert_true(next1(f, RK_OK) == id + 1);
}

/* ---------------------------------------------------------- batches */

static void test_batch_of_4096_in_a_fresh_ms_is_one_run(void **state)
{
	fixture_t *f = *state;
	static uint64_t ids[4096];
	rk_snowflake_outcome_t o;
	assert_int_equal(rk_snowflake_next(f->g, 4096, ids, 0, &o), RK_OK);
	assert_true(o.contiguous);
	for (int i = 1; i < 4096; i++)
		assert_true(ids[i] == ids[0] + (uint64_t)i);
	rk_snowflake_parts_t p;
	rk_snowflake_decompose(ids[4095], &p);
	assert_int_equal(p.sequence, 4095);
}

static void test_batch_across_ms_is_an_increasing_list(void **state)
{
	fixture_t *f = *state;
	uint64_t first = 0;
	for (int i = 0; i < 100; i++)
		first = next1(f, RK_OK);
	static uint64_t ids[4096];
	rk_snowflake_outcome_t o;
	assert_int_equal(rk_snowflake_next(f->g, 4096, ids, 0, &o), RK_OK);
	assert_false(o.contiguous);
	assert_true(o.waited_sequence);
	assert_true(ids[0] > first);
	for (int i = 1; i < 4096; i++)
		assert_true(ids[i] > ids[i - 1]);
	assert_true(ms_of(ids[4095]) == T0_MS + 1);
}

static void test_count_zero_or_over_4096_is_invalid_argument(void **state)
{
	fixture_t *f = *state;
	static uint64_t ids[4097];
	rk_snowflake_outcome_t o;
	assert_int_equal(rk_snowflake_next(f->g, 0, ids, 0, &o),
	                 RK_INVALID_ARGUMENT);
	assert_int_equal(rk_snowflake_next(f->g, 4097, ids, 0, &o),
	                 RK_INVALID_ARGUMENT);
	assert_non_null(strstr(o.why, "4097"));
}

/* ---------------------------------------------------------- clock rules */

static void test_small_backward_step_is_waited_out(void **state)
{
	fixture_t *f = *state;
	uint64_t before = next1(f, RK_OK);
	set_wall_ms(&f->clock, T0_MS - 3);
	uint64_t mono0 = fake_mono(&f->clock);
	uint64_t id = 0;
	rk_snowflake_outcome_t o;
	assert_int_equal(rk_snowflake_next(f->g, 1, &id, 0, &o), RK_OK);
	assert_true(o.waited_step);
	assert_int_equal(o.step_ms, 3);
	assert_true(id > before);
	/* It slept at least the 3 ms the clock was behind. */
	assert_true(fake_mono(&f->clock) - mono0 >= 3000);
}

static void test_large_backward_step_refuses_then_recovers(void **state)
{
	fixture_t *f = *state;
	uint64_t before = next1(f, RK_OK);
	set_wall_ms(&f->clock, T0_MS - 2000);
	uint64_t id = 0;
	rk_snowflake_outcome_t o;
	assert_int_equal(rk_snowflake_next(f->g, 1, &id, 0, &o),
	                 RK_UNAVAILABLE);
	assert_int_equal(o.refusal, RK_SNOWFLAKE_CLOCK_BACK);
	assert_int_equal(o.step_ms, 2000);
	assert_non_null(strstr(o.why, "2000 ms"));
	assert_int_equal(o.retry_after_ms, 1995);
	rk_snowflake_info_t in;
	rk_snowflake_get_info(f->g, &in);
	assert_int_equal(in.state, RK_SNOWFLAKE_CLOCK_REFUSING);
	assert_int_equal(rk_snowflake_probe(f->g, &o), RK_UNAVAILABLE);
	/* Still refused a little later, without any sleep. */
	set_wall_ms(&f->clock, T0_MS - 1000);
	assert_int_equal(rk_snowflake_next(f->g, 1, &id, 0, &o),
	                 RK_UNAVAILABLE);
	assert_int_equal(atomic_load(&f->clock.sleeps), 0);
	/* The clock caught up: issuing again, above everything before. */
	set_wall_ms(&f->clock, T0_MS + 1);
	assert_int_equal(rk_snowflake_probe(f->g, &o), RK_OK);
	assert_true(next1(f, RK_OK) > before);
	rk_snowflake_get_info(f->g, &in);
	assert_int_equal(in.state, RK_SNOWFLAKE_CLOCK_OK);
}

static void test_exhausted_sequence_waits_for_next_ms(void **state)
{
	fixture_t *f = *state;
	static uint64_t ids[4096];
	rk_snowflake_outcome_t o;
	assert_int_equal(rk_snowflake_next(f->g, 4096, ids, 0, &o), RK_OK);
	assert_false(o.waited_sequence);
	uint64_t id = 0;
	assert_int_equal(rk_snowflake_next(f->g, 1, &id, 0, &o), RK_OK);
	assert_true(o.waited_sequence);
	assert_true(id > ids[4095]);
	assert_true(ms_of(id) == T0_MS + 1);
}

static void test_stopped_clock_is_refused_not_spun(void **state)
{
	fixture_t *f = *state;
	static uint64_t ids[4096];
	rk_snowflake_outcome_t o;
	assert_int_equal(rk_snowflake_next(f->g, 4096, ids, 0, &o), RK_OK);
	atomic_store(&f->clock.frozen, true);
	uint64_t mono0 = fake_mono(&f->clock);
	uint64_t id = 0;
	assert_int_equal(rk_snowflake_next(f->g, 1, &id, 0, &o),
	                 RK_UNAVAILABLE);
	assert_int_equal(o.refusal, RK_SNOWFLAKE_CLOCK_STALLED);
	assert_non_null(strstr(o.why, "stopped"));
	/* It gave up after the 1 ms it needed + the 50 ms limit, napping
	 * at most 1 ms at a time, never spinning. */
	uint64_t waited = fake_mono(&f->clock) - mono0;
	assert_true(waited >= 51000 && waited <= 52000);
	assert_true(atomic_load(&f->clock.sleeps) <= 52);
	/* Once the clock moves, it issues again. */
	atomic_store(&f->clock.frozen, false);
	set_wall_ms(&f->clock, T0_MS + 2);
	assert_true(next1(f, RK_OK) > ids[4095]);
}

/* Another caller takes each new ms while we sleep, 100 times over. */
static int steals_left;
static void steal_the_ms(void *arg)
{
	fixture_t *f = arg;
	if (steals_left == 0)
		return;
	steals_left--;
	static uint64_t ids[4096];
	rk_snowflake_outcome_t o;
	assert_int_equal(rk_snowflake_next(f->g, 4096, ids, 0, &o), RK_OK);
}

/* Regression: a caller that kept losing each new ms to others was refused
 * as "clock stopped" after 50 ms, though the clock was moving. */
static void
test_moving_clock_is_not_stalled_when_others_take_each_ms(void **state)
{
	fixture_t *f = *state;
	static uint64_t ids[4096];
	rk_snowflake_outcome_t o;
	assert_int_equal(rk_snowflake_next(f->g, 4096, ids, 0, &o), RK_OK);
	steals_left = 100;
	f->clock.on_sleep = steal_the_ms;
	f->clock.on_sleep_arg = f;
	uint64_t id = 0;
	assert_int_equal(rk_snowflake_next(f->g, 1, &id, 0, &o), RK_OK);
	assert_int_equal(steals_left, 0);
	assert_true(ms_of(id) == T0_MS + 101);
	f->clock.on_sleep = NULL;
}

/* After each sleep the clock is stepped back again by 3 ms. */
static void step_back_again(void *arg)
{
	fixture_t *f = arg;
	set_wall_ms(&f->clock, T0_MS - 3);
}

static void test_clock_that_keeps_stepping_back_is_refused(void **state)
{
	fixture_t *f = *state;
	next1(f, RK_OK);
	set_wall_ms(&f->clock, T0_MS - 3);
	f->clock.on_sleep = step_back_again;
	f->clock.on_sleep_arg = f;
	uint64_t id = 0;
	rk_snowflake_outcome_t o;
	assert_int_equal(rk_snowflake_next(f->g, 1, &id, 0, &o),
	                 RK_UNAVAILABLE);
	assert_int_equal(o.refusal, RK_SNOWFLAKE_CLOCK_STALLED);
	f->clock.on_sleep = NULL;
}

static void test_nonblock_aborts_without_issuing(void **state)
{
	fixture_t *f = *state;
	static uint64_t ids[4096];
	rk_snowflake_outcome_t o;
	assert_int_equal(rk_snowflake_next(f->g, 4000, ids, 0, &o), RK_OK);
	/* 96 left in this ms: 97 would wait, 96 would not. */
	assert_int_equal(
	    rk_snowflake_next(f->g, 97, ids, RK_SNOWFLAKE_NONBLOCK, &o),
	    RK_ABORTED);
	assert_int_equal(
	    rk_snowflake_next(f->g, 96, ids, RK_SNOWFLAKE_NONBLOCK, &o), RK_OK);
	rk_snowflake_parts_t p;
	rk_snowflake_decompose(ids[0], &p);
	assert_int_equal(p.sequence, 4000); /* nothing was lost by the abort */
	assert_int_equal(atomic_load(&f->clock.sleeps), 0);
}

static void test_clock_before_epoch_is_refused(void **state)
{
	fixture_t *f = *state;
	set_wall_ms(&f->clock, RK_SNOWFLAKE_DEFAULT_EPOCH_MS - 10);
	uint64_t id;
	rk_snowflake_outcome_t o;
	assert_int_equal(rk_snowflake_next(f->g, 1, &id, 0, &o),
	                 RK_UNAVAILABLE);
	assert_int_equal(o.refusal, RK_SNOWFLAKE_OUT_OF_RANGE);
}

/* ---------------------------------------------------------- the mark */

static void test_mark_is_persisted_ahead_in_chunks(void **state)
{
	fixture_t *f = *state;
	uint64_t id = 0;
	for (int ms = 0; ms < 1000; ms++) {
		set_wall_ms(&f->clock, T0_MS + (uint64_t)ms);
		id = next1(f, RK_OK);
		/* Every ID issued lies below the persisted mark. */
		assert_true(ms_of(id) < f->marks.last);
	}
	/* 1000 ms of issuing, 100 ms chunks: 10 stores, not 1000. */
	assert_int_equal(f->marks.calls, 10);
}

static void test_unpersisted_mark_refuses_and_issues_nothing(void **state)
{
	fixture_t *f = *state;
	f->marks.fail = true;
	uint64_t id = 0;
	rk_snowflake_outcome_t o;
	assert_int_equal(rk_snowflake_next(f->g, 1, &id, 0, &o),
	                 RK_UNAVAILABLE);
	assert_int_equal(o.refusal, RK_SNOWFLAKE_RESERVE_FAILED);
	assert_non_null(strstr(o.why, "disk full"));
	f->marks.fail = false;
	id = next1(f, RK_OK);
	rk_snowflake_parts_t p;
	rk_snowflake_decompose(id, &p);
	assert_int_equal(p.sequence, 0);
}

/* A restart: the mark of the last run is the floor, the clock is behind. */
static void test_restart_never_issues_below_the_floor(void **state)
{
	fixture_t *f = *state;
	rk_snowflake_free(f->g);
	rk_snowflake_opts_t o = opts_for(f);
	o.floor_ms = T0_MS + 10;
	o.reserved_ms = T0_MS + 110;
	assert_int_equal(rk_snowflake_new(&o, &f->g), RK_OK);
	set_wall_ms(&f->clock, T0_MS + 3); /* 6 ms behind floor - 1 */
	next1(f, RK_UNAVAILABLE);
	set_wall_ms(&f->clock, T0_MS + 7); /* 2 ms behind: waited out */
	uint64_t id = next1(f, RK_OK);
	assert_true(ms_of(id) == T0_MS + 10);
}

/* ---------------------------------------------------------- threads */

#define THREADS    8
#define PER_THREAD 40000

typedef struct worker_arg {
	rk_snowflake_t *g;
	uint64_t *ids; /* PER_THREAD slots */
} worker_arg_t;

static void *issue_many(void *arg)
{
	worker_arg_t *w = arg;
	size_t n = 0;
	uint32_t k = 1;
	while (n < PER_THREAD) {
		uint32_t want = k;
		if (want > PER_THREAD - n)
			want = (uint32_t)(PER_THREAD - n);
		rk_snowflake_outcome_t o;
		if (rk_snowflake_next(w->g, want, w->ids + n, 0, &o) != RK_OK)
			return (void *)1;
		n += want;
		k = k == 1 ? 37 : 1; /* singles and small batches */
	}
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void test_ids_strictly_increase_under_many_threads(void **state)
{
	(void)state;
	rk_snowflake_opts_t o = {
	    .epoch_ms = RK_SNOWFLAKE_DEFAULT_EPOCH_MS,
	    .max_step_ms = 5,
	    .stall_ms = 50,
	    .chunk_ms = 1000,
	    .clock = *rk_snowflake_system_clock(),
	};
	rk_snowflake_t *g;
	assert_int_equal(rk_snowflake_new(&o, &g), RK_OK);
	uint64_t *all = malloc(sizeof(uint64_t) * THREADS * PER_THREAD);
	pthread_t t[THREADS];
	worker_arg_t a[THREADS];
	for (int i = 0; i < THREADS; i++) {
		a[i] = (worker_arg_t){g, all + (size_t)i * PER_THREAD};
		pthread_create(&t[i], NULL, issue_many, &a[i]);
	}
	for (int i = 0; i < THREADS; i++) {
		void *rv;
		pthread_join(t[i], &rv);
		assert_null(rv);
	}
	/* Each thread saw its IDs strictly increase... */
	for (int i = 0; i < THREADS; i++)
		for (size_t j = 1; j < PER_THREAD; j++)
			assert_true(a[i].ids[j] > a[i].ids[j - 1]);
	/* ...and no ID was handed to two threads. */
	size_t n = (size_t)THREADS * PER_THREAD;
	qsort(all, n, sizeof(uint64_t), cmp_u64);
	for (size_t j = 1; j < n; j++)
		assert_true(all[j] > all[j - 1]);
	free(all);
	rk_snowflake_free(g);
}

int main(void)
{
	rk_log_set_level(RK_LOG_ERROR);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_layout_round_trips_random_parts),
	    cmocka_unit_test(test_layout_puts_fields_at_documented_bits),
	    cmocka_unit_test_setup_teardown(
	        test_ids_carry_identity_and_clock_time, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_batch_of_4096_in_a_fresh_ms_is_one_run, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_batch_across_ms_is_an_increasing_list, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_count_zero_or_over_4096_is_invalid_argument, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_small_backward_step_is_waited_out, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_large_backward_step_refuses_then_recovers, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_exhausted_sequence_waits_for_next_ms, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_stopped_clock_is_refused_not_spun, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_moving_clock_is_not_stalled_when_others_take_each_ms,
	        setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_clock_that_keeps_stepping_back_is_refused, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_nonblock_aborts_without_issuing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_clock_before_epoch_is_refused,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_mark_is_persisted_ahead_in_chunks, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_unpersisted_mark_refuses_and_issues_nothing, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_restart_never_issues_below_the_floor, setup, teardown),
	    cmocka_unit_test(test_ids_strictly_increase_under_many_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
