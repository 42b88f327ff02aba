/*
 * The Idgen RPC service (services/idgen/idgen_service.c) end to end in one
 * process: a real RPC server on loopback TCP with the service routed, the
 * real mark file in a temp directory, and libringkv's idgen calls (or raw
 * rk_rpc_call for requests the library would refuse to send). The
 * generator's wall clock is a controllable one, so clock steps are exact.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ringkv/idgen.h>

#include "core/log.h"
#include "idgen_service.h"
#include "metrics/metrics.h"
#include "ringkv/v1/idgen.pb-c.h"
#include "rpc/client.h"
#include "rpc/server.h"

#define T0_MS (RK_SNOWFLAKE_DEFAULT_EPOCH_MS + 5000000ull)

typedef struct fake_clock {
	_Atomic uint64_t wall_us; /* set by the test; moved by sleeps */
	_Atomic uint64_t mono_us; /* moved by sleeps */
} fake_clock_t;

static uint64_t fake_wall(void *arg)
{
	return atomic_load(&((fake_clock_t *)arg)->wall_us);
}

static uint64_t fake_mono(void *arg)
{
	return atomic_load(&((fake_clock_t *)arg)->mono_us);
}

static void fake_sleep(void *arg, uint64_t us)
{
	fake_clock_t *f = arg;
	atomic_fetch_add(&f->mono_us, us);
	atomic_fetch_add(&f->wall_us, us);
}

typedef struct fixture {
	char dir[64];                    /* temp data dir */
	fake_clock_t clock;              /* the generator's clock */
	rk_metrics_t *metrics;           /* the service's registry */
	rk_idgen_service_t *svc;         /* the service */
	rk_rpc_server_t *srv;            /* its server */
	ringkv_conn_t *conn;             /* libringkv connection */
	rk_rpc_client_t *raw;            /* raw client for bad requests */
	uint32_t chunk_ms;               /* high_water_chunk; 0: default */
	const rk_idgen_worker_t *source; /* identity source; NULL: static */
} fixture_t;

static void start(fixture_t *f)
{
	rk_idgen_config_t cfg;
	rk_idgen_config_defaults(&cfg);
	cfg.datacenter_id = 2;
	cfg.worker_id = 17;
	snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", f->dir);
	if (f->chunk_ms != 0)
		cfg.chunk_ms = f->chunk_ms;
	rk_snowflake_clock_t c = {fake_wall, fake_mono, fake_sleep, &f->clock};
	char why[256];
	f->metrics = rk_metrics_new();
	assert_int_equal(rk_idgen_service_new_with(&cfg, &c, f->source,
	                                           f->metrics, &f->svc, why,
	                                           sizeof(why)),
	                 RK_OK);
	rk_rpc_server_opts_t so = {.listen = "tcp://127.0.0.1:0",
	                           .metrics = f->metrics,
	                           .name = "idgen-test"};
	assert_int_equal(rk_rpc_server_new(&so, &f->srv), RK_OK);
	assert_int_equal(rk_idgen_service_route(f->svc, f->srv), RK_OK);
	char *err = NULL;
	assert_int_equal(rk_rpc_server_start(f->srv, &err), RK_OK);
	char url[64];
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d",
	         rk_rpc_server_port(f->srv));
	ringkv_conn_opts_t co = {.url = url, .caller = "test"};
	assert_int_equal(ringkv_connect(&co, &f->conn, NULL), RK_OK);
	rk_rpc_client_opts_t ro = {.url = url, .caller = "test-raw"};
	assert_int_equal(rk_rpc_client_new(&ro, &f->raw), RK_OK);
}

static void stop(fixture_t *f)
{
	ringkv_close(f->conn);
	rk_rpc_client_free(f->raw);
	rk_idgen_service_stop(f->svc);
	rk_rpc_server_free(f->srv);
	rk_idgen_service_free(f->svc);
	rk_metrics_free(f->metrics);
	f->conn = NULL;
	f->raw = NULL;
	f->svc = NULL;
	f->srv = NULL;
	f->metrics = NULL;
}

static int setup(void **state)
{
	fixture_t *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/ringkv-idsvc-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	atomic_store(&f->clock.wall_us, T0_MS * 1000);
	atomic_store(&f->clock.mono_us, 1000000);
	start(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *f = *state;
	stop(f);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* The value of metric line NAME (with labels) in /metrics, or -1. */
static double metric(fixture_t *f, const char *name)
{
	char *text;
	size_t len;
	assert_int_equal(rk_metrics_render(f->metrics, &text, &len), RK_OK);
	double v = -1;
	size_t n = strlen(name);
	for (char *line = text; line && *line; line = strchr(line, '\n')) {
		if (*line == '\n')
			line++;
		if (strncmp(line, name, n) == 0 && line[n] == ' ') {
			v = atof(line + n + 1);
			break;
		}
	}
	free(text);
	return v;
}

static rk_status_t raw_next_ids(fixture_t *f, bool has_count, uint32_t count,
                                rk_rpc_result_t *res)
{
	Ringkv__V1__NextIdsRequest req = RINGKV__V1__NEXT_IDS_REQUEST__INIT;
	req.has_count = has_count;
	req.count = count;
	return rk_rpc_call(f->raw, rk_idgen_method("NextIds"), &req.base, 5000,
	                   res);
}

/* ---------------------------------------------------------- tests */

static void test_rpc_next_id_decodes_to_clock_and_identity(void **state)
{
	fixture_t *f = *state;
	uint64_t id, id2;
	ringkv_error_t err;
	assert_int_equal(ringkv_id_next(f->conn, &id, &err), RK_OK);
	assert_int_equal(ringkv_id_next(f->conn, &id2, &err), RK_OK);
	assert_true(id2 > id);
	ringkv_id_parts_t p, q;
	assert_int_equal(ringkv_id_decode(f->conn, id, &p, &err), RK_OK);
	assert_true(p.timestamp_ms == T0_MS);
	assert_int_equal(p.datacenter_id, 2);
	assert_int_equal(p.worker_id, 17);
	/* The local decode agrees with the server's. */
	assert_int_equal(
	    ringkv_id_decode_local(id, RINGKV_IDGEN_DEFAULT_EPOCH_MS, &q),
	    RK_OK);
	assert_true(q.timestamp_ms == p.timestamp_ms);
	assert_true(q.ms_since_epoch == p.ms_since_epoch);
	assert_int_equal(q.sequence, p.sequence);
	assert_int_equal(q.worker_id, p.worker_id);
}

static void test_rpc_batch_of_4096_is_first_id_plus_count(void **state)
{
	fixture_t *f = *state;
	atomic_fetch_add(&f->clock.wall_us, 1000); /* a fresh ms */
	rk_rpc_result_t res;
	assert_int_equal(raw_next_ids(f, true, 4096, &res), RK_OK);
	const Ringkv__V1__NextIdsResponse *r = (const void *)res.response;
	assert_true(r->has_first_id);
	assert_int_equal(r->count, 4096);
	assert_int_equal(r->n_ids, 0);
	rk_rpc_result_clear(&res);
	/* The library expands runs and lists alike. */
	static uint64_t ids[4096];
	bool run = true;
	ringkv_error_t err;
	assert_int_equal(ringkv_id_next_batch(f->conn, 100, ids, &run, &err),
	                 RK_OK);
	assert_int_equal(ringkv_id_next_batch(f->conn, 4096, ids, &run, &err),
	                 RK_OK);
	assert_false(run); /* 4096 - 100 left in the ms: a list */
	for (int i = 1; i < 4096; i++)
		assert_true(ids[i] > ids[i - 1]);
}

static void test_rpc_bad_counts_and_ids_are_invalid_argument(void **state)
{
	fixture_t *f = *state;
	rk_rpc_result_t res;
	assert_int_equal(raw_next_ids(f, true, 0, &res), RK_INVALID_ARGUMENT);
	rk_rpc_result_clear(&res);
	assert_int_equal(raw_next_ids(f, true, 4097, &res),
	                 RK_INVALID_ARGUMENT);
	assert_non_null(strstr(res.message, "4097"));
	rk_rpc_result_clear(&res);
	assert_int_equal(raw_next_ids(f, false, 0, &res), RK_INVALID_ARGUMENT);
	rk_rpc_result_clear(&res);
	ringkv_id_parts_t p;
	ringkv_error_t err;
	assert_int_equal(ringkv_id_decode(f->conn, 1ull << 63, &p, &err),
	                 RK_INVALID_ARGUMENT);
	assert_non_null(strstr(err.message, "sign bit"));
	/* Still serving. */
	uint64_t id;
	assert_int_equal(ringkv_id_next(f->conn, &id, &err), RK_OK);
}

static void test_rpc_info_reports_layout_epoch_and_expiry(void **state)
{
	fixture_t *f = *state;
	uint64_t id;
	ringkv_error_t err;
	assert_int_equal(ringkv_id_next(f->conn, &id, &err), RK_OK);
	ringkv_idgen_info_t in;
	assert_int_equal(ringkv_idgen_info(f->conn, &in, &err), RK_OK);
	assert_int_equal(in.timestamp_bits, 41);
	assert_int_equal(in.datacenter_bits, 5);
	assert_int_equal(in.worker_bits, 5);
	assert_int_equal(in.sequence_bits, 12);
	assert_true(in.epoch_ms == RINGKV_IDGEN_DEFAULT_EPOCH_MS);
	assert_true(in.expires_at_ms ==
	            RINGKV_IDGEN_DEFAULT_EPOCH_MS + (1ull << 41));
	assert_int_equal(in.datacenter_id, 2);
	assert_int_equal(in.worker_id, 17);
	assert_int_equal(in.worker_id_source, 1);
	assert_true(in.last_issued_ms == T0_MS);
	assert_true(in.high_water_ms > T0_MS);
	assert_int_equal(in.clock_state, 1);
	assert_int_equal(in.max_clock_step_ms, 5);
	assert_int_equal(in.max_batch, 4096);
	assert_int_equal(in.issuing, RK_OK);
}

static void test_rpc_large_step_is_refused_named_and_counted(void **state)
{
	fixture_t *f = *state;
	uint64_t before, id;
	ringkv_error_t err;
	assert_int_equal(ringkv_id_next(f->conn, &before, &err), RK_OK);
	atomic_fetch_sub(&f->clock.wall_us, 2000 * 1000);
	assert_int_equal(ringkv_id_next(f->conn, &id, &err), RK_UNAVAILABLE);
	assert_non_null(strstr(err.message, "moved back by 2000 ms"));
	assert_true(err.retry_after_ms > 0);
	assert_true(
	    metric(f, "ringkv_idgen_refused_total{reason=\"clock_back\"}") ==
	    1);
	assert_true(
	    metric(f,
	           "ringkv_idgen_clock_backward_total{action=\"refused\"}") ==
	    1);
	assert_true(metric(f, "ringkv_idgen_clock_behind_ms") == 2000);
	ringkv_idgen_info_t in;
	assert_int_equal(ringkv_idgen_info(f->conn, &in, &err), RK_OK);
	assert_int_equal(in.clock_state, 3);
	assert_int_equal(in.issuing, RK_UNAVAILABLE);
	assert_non_null(strstr(in.issuing_message, "2000 ms"));
	/* Caught up: issuing again, above what came before. */
	atomic_fetch_add(&f->clock.wall_us, 2001 * 1000);
	assert_int_equal(ringkv_id_next(f->conn, &id, &err), RK_OK);
	assert_true(id > before);
}

static void test_rpc_small_step_is_waited_out_on_slow_path(void **state)
{
	fixture_t *f = *state;
	uint64_t before, id;
	ringkv_error_t err;
	assert_int_equal(ringkv_id_next(f->conn, &before, &err), RK_OK);
	atomic_fetch_sub(&f->clock.wall_us, 4 * 1000);
	assert_int_equal(ringkv_id_next(f->conn, &id, &err), RK_OK);
	assert_true(id > before);
	assert_true(
	    metric(f, "ringkv_idgen_clock_backward_total{action=\"waited\"}") ==
	    1);
	assert_true(metric(f, "ringkv_idgen_calls_waited_total") == 1);
	assert_true(
	    metric(f, "ringkv_idgen_refused_total{reason=\"clock_back\"}") ==
	    0);
}

static void test_rpc_restart_with_clock_back_never_reissues(void **state)
{
	fixture_t *f = *state;
	static uint64_t ids[4096];
	ringkv_error_t err;
	assert_int_equal(ringkv_id_next_batch(f->conn, 4096, ids, NULL, &err),
	                 RK_OK);
	uint64_t last = ids[4095];
	stop(f);
	/* Back by 500 ms (more than the step): the restart must refuse
	 * until the clock passes the persisted mark. */
	atomic_fetch_sub(&f->clock.wall_us, 500 * 1000);
	start(f);
	uint64_t id;
	assert_int_equal(ringkv_id_next(f->conn, &id, &err), RK_UNAVAILABLE);
	ringkv_idgen_info_t in;
	assert_int_equal(ringkv_idgen_info(f->conn, &in, &err), RK_OK);
	assert_true(in.high_water_ms > T0_MS);
	/* At the mark it issues again, above everything of the last run. */
	atomic_store(&f->clock.wall_us, in.high_water_ms * 1000);
	assert_int_equal(ringkv_id_next(f->conn, &id, &err), RK_OK);
	assert_true(id > last);
}

/* While IDs flow, the marker thread raises the mark ahead of use: issuers
 * keep finding it ahead and never take the slow path to persist it. */
static void test_rpc_mark_is_raised_ahead_off_the_issue_path(void **state)
{
	fixture_t *f = *state;
	stop(f);
	f->chunk_ms = 100; /* the marker looks every 25 ms */
	/* Past the mark the first run left (a chunk of 1 s ahead). */
	atomic_fetch_add(&f->clock.wall_us, 1001 * 1000);
	start(f);
	ringkv_error_t err;
	ringkv_idgen_info_t in;
	uint64_t id;
	for (int step = 0; step < 10; step++) {
		/* 60 ms on: within half a chunk of the mark. */
		atomic_fetch_add(&f->clock.wall_us, 60 * 1000);
		assert_int_equal(ringkv_id_next(f->conn, &id, &err), RK_OK);
		uint64_t issued_ms = atomic_load(&f->clock.wall_us) / 1000;
		/* Wait (bounded) for the marker to move the mark past
		 * where the next step will issue. */
		int polls = 0;
		do {
			assert_int_equal(ringkv_idgen_info(f->conn, &in, &err),
			                 RK_OK);
			if (in.high_water_ms > issued_ms + 60)
				break;
			struct timespec ts = {0, 5 * 1000000L};
			nanosleep(&ts, NULL);
		} while (++polls < 400);
		assert_true(in.high_water_ms > issued_ms + 60);
	}
	/* Every call took the fast path: no issuer persisted the mark. */
	assert_true(metric(f, "ringkv_idgen_calls_waited_total") == 0);
	assert_true(metric(f, "ringkv_idgen_high_water_stores_total") >= 10);
}

/* Regression: the marker thread outlived rk_idgen_service_stop() and
 * wrote to counters of a registry the runtime had freed (found by ASan in
 * the process test). Here the marker is kept busy (a 4 ms chunk: it looks
 * every ms) while the registry is freed right after stop; under ASan any
 * late write is a use-after-free. */
static void test_rpc_stop_ends_threads_before_metrics_are_freed(void **state)
{
	fixture_t *f = *state;
	stop(f);
	f->chunk_ms = 4;
	atomic_fetch_add(&f->clock.wall_us, 1001 * 1000);
	start(f);
	ringkv_error_t err;
	uint64_t id;
	for (int i = 0; i < 50; i++) {
		atomic_fetch_add(&f->clock.wall_us, 3 * 1000);
		assert_int_equal(ringkv_id_next(f->conn, &id, &err), RK_OK);
	}
	ringkv_close(f->conn);
	rk_rpc_client_free(f->raw);
	rk_idgen_service_stop(f->svc);
	rk_rpc_server_free(f->srv);
	rk_metrics_free(f->metrics);
	/* Time for a thread that should be gone to touch the registry. */
	struct timespec ts = {0, 20 * 1000000L};
	nanosleep(&ts, NULL);
	rk_idgen_service_free(f->svc);
	f->conn = NULL;
	f->raw = NULL;
	f->svc = NULL;
	f->srv = NULL;
	f->metrics = NULL;
	f->chunk_ms = 0;
	start(f); /* for teardown */
}

/* ---------------------------------------------------------- identity */

/* A stand-in for a lease from membership: the test decides whether it is
 * held. */
typedef struct fake_lease {
	atomic_bool held;       /* what held() answers */
	uint64_t expires_at_ms; /* what held() reports */
	bool refuse;            /* acquire fails */
	int acquired;           /* acquire calls */
	int released;           /* release calls */
} fake_lease_t;

static rk_status_t lease_acquire(void *impl, rk_idgen_identity_t *out,
                                 char *why, size_t len)
{
	fake_lease_t *l = impl;
	l->acquired++;
	if (l->refuse) {
		snprintf(why, len, "no majority of agents reachable");
		return RK_UNAVAILABLE;
	}
	out->datacenter = 4;
	out->worker = 21;
	return RK_OK;
}

static bool lease_held(void *impl, uint64_t *expires_at_ms)
{
	fake_lease_t *l = impl;
	*expires_at_ms = l->expires_at_ms;
	return atomic_load(&l->held);
}

static void lease_release(void *impl)
{
	((fake_lease_t *)impl)->released++;
}

static const rk_idgen_worker_ops_t lease_ops = {lease_acquire, lease_held,
                                                lease_release};

static void test_rpc_identity_not_held_stops_issuing(void **state)
{
	fixture_t *f = *state;
	stop(f);
	static fake_lease_t lease;
	memset(&lease, 0, sizeof(lease));
	atomic_store(&lease.held, true);
	lease.expires_at_ms = T0_MS + 30000;
	rk_idgen_worker_t src = {
	    .kind = RK_IDGEN_WORKER_LEASE, .ops = &lease_ops, .impl = &lease};
	f->source = &src;
	start(f);
	assert_int_equal(lease.acquired, 1);
	uint64_t id;
	ringkv_error_t err;
	assert_int_equal(ringkv_id_next(f->conn, &id, &err), RK_OK);
	ringkv_id_parts_t p;
	ringkv_id_decode_local(id, RINGKV_IDGEN_DEFAULT_EPOCH_MS, &p);
	assert_int_equal(p.datacenter_id, 4);
	assert_int_equal(p.worker_id, 21);
	ringkv_idgen_info_t in;
	assert_int_equal(ringkv_idgen_info(f->conn, &in, &err), RK_OK);
	assert_int_equal(in.worker_id_source, 2);
	assert_true(in.lease_expires_at_ms == T0_MS + 30000);
	/* The lease could not be renewed: no more IDs, single or batch. */
	atomic_store(&lease.held, false);
	assert_int_equal(ringkv_id_next(f->conn, &id, &err), RK_UNAVAILABLE);
	assert_non_null(strstr(err.message, "no worker id is held"));
	static uint64_t ids[16];
	assert_int_equal(ringkv_id_next_batch(f->conn, 16, ids, NULL, &err),
	                 RK_UNAVAILABLE);
	assert_true(
	    metric(f, "ringkv_idgen_refused_total{reason=\"no_worker_id\"}") ==
	    2);
	assert_int_equal(ringkv_idgen_info(f->conn, &in, &err), RK_OK);
	assert_int_equal(in.issuing, RK_UNAVAILABLE);
	/* Held again: issuing again, above what came before. */
	atomic_store(&lease.held, true);
	uint64_t id2;
	assert_int_equal(ringkv_id_next(f->conn, &id2, &err), RK_OK);
	assert_true(id2 > id);
	stop(f);
	assert_int_equal(lease.released, 1);
	/* A source that cannot be acquired: the service does not start. */
	lease.refuse = true;
	rk_idgen_config_t cfg;
	rk_idgen_config_defaults(&cfg);
	snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", f->dir);
	rk_metrics_t *m = rk_metrics_new();
	rk_idgen_service_t *svc = NULL;
	char why[256];
	assert_int_equal(rk_idgen_service_new_with(&cfg, NULL, &src, m, &svc,
	                                           why, sizeof(why)),
	                 RK_UNAVAILABLE);
	assert_non_null(strstr(why, "majority"));
	assert_int_equal(lease.released, 1); /* nothing acquired to give back */
	rk_metrics_free(m);
	f->source = NULL;
	start(f); /* for teardown */
}

int main(void)
{
	rk_log_set_level(RK_LOG_ERROR);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_rpc_next_id_decodes_to_clock_and_identity, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_rpc_batch_of_4096_is_first_id_plus_count, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_rpc_bad_counts_and_ids_are_invalid_argument, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_rpc_info_reports_layout_epoch_and_expiry, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_rpc_large_step_is_refused_named_and_counted, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_rpc_small_step_is_waited_out_on_slow_path, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_rpc_restart_with_clock_back_never_reissues, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_rpc_mark_is_raised_ahead_off_the_issue_path, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_rpc_stop_ends_threads_before_metrics_are_freed, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_rpc_identity_not_held_stops_issuing, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
