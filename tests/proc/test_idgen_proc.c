/*
 * ringkv-idgen as real processes on loopback: configs derived from
 * deploy/config/idgen.yaml (ports 0, unsealed frames, a data directory in
 * the case's temp dir), readiness from the READY=1 notify message (which
 * carries the ports), calls through libringkv, metrics from the admin
 * port.
 *
 * The clock of a running ringkv-idgen is moved with libfaketime
 * (LD_PRELOAD): FAKETIME_TIMESTAMP_FILE names a file holding the offset
 * ("+0", "-0.4", "-2.5"), re-read on every clock read
 * (FAKETIME_NO_CACHE=1), and replaced atomically by the test; the
 * monotonic clock is left alone (FAKETIME_DONT_FAKE_MONOTONIC=1) so nng's
 * timers and the stall detector keep real time. An absolute time in the
 * file ("2026-11-28 00:30:00") freezes the clock: the stopped-clock case.
 * The restart case uses a fixed start offset (FAKETIME="-1.5"). The file-driven
 * case runs with max_clock_step: 1s, because a step of at most 5 ms (the
 * default) cannot be placed reliably between two calls of a real process; the 5
 * ms rule itself is proved exactly with a controllable clock in the unit tests.
 *
 * Every wait is bounded and on an event (a notify message, an RPC answer,
 * a child's exit); the one retry loop waits the retry_after the server
 * gives.
 */
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <ringkv/idgen.h>

#include "idgen_service.h"
#include "proc_util.h"
#include "ringkv/v1/idgen.pb-c.h"
#include "rpc/client.h"

#define READY_TIMEOUT_MS 10000
#define EXIT_TIMEOUT_MS  5000
#define MAX_PROCS        6
#define FAKETIME_GLOB    "/usr/lib/*/faketime/libfaketimeMT.so.1"

typedef struct fixture {
	char *dir;                  /* temp dir; removed by teardown */
	rk_notify_t notify;         /* children's NOTIFY_SOCKET */
	rk_proc_t procs[MAX_PROCS]; /* every child started */
	int rpc_port[MAX_PROCS];    /* from READY=1 */
	int admin_port[MAX_PROCS];  /* from READY=1 */
	size_t nprocs;              /* used entries */
	char faketime_rc[PATH_MAX]; /* offset file for libfaketime */
	bool passed;                /* set last by each case */
} fixture_t;

static int setup(void **state)
{
	fixture_t *f = calloc(1, sizeof(*f));
	f->dir = rk_proc_tmpdir("idgen");
	assert_non_null(f->dir);
	assert_int_equal(rk_notify_open(&f->notify, f->dir, "notify"), 0);
	snprintf(f->faketime_rc, sizeof(f->faketime_rc), "%s/faketime.rc",
	         f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *f = *state;
	for (size_t i = 0; i < f->nprocs; i++) {
		if (!f->passed)
			rk_proc_dump(&f->procs[i], stderr);
		rk_proc_kill(&f->procs[i]);
	}
	if (!f->passed)
		fprintf(stderr, "notify messages:\n%s\n", f->notify.log);
	rk_notify_close(&f->notify);
	rk_proc_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

/* Replaces the faketime offset file atomically with TEXT. */
static void set_offset(fixture_t *f, const char *text)
{
	char tmp[PATH_MAX + 8];
	snprintf(tmp, sizeof(tmp), "%s.new", f->faketime_rc);
	assert_int_equal(rk_proc_write_file(tmp, text), 0);
	assert_int_equal(rename(tmp, f->faketime_rc), 0);
}

/* Writes a config for slot I: identity (DC, WORKER), data dir DATA (under
 * the temp dir), plus EXTRA edits. Returns its path in OUT. */
static void write_config(fixture_t *f, size_t i, unsigned dc, unsigned worker,
                         const char *data, const rk_cfg_edit_t *extra,
                         size_t nextra, char *out, size_t len)
{
	char dcs[16], wks[16], dir[PATH_MAX], sample[PATH_MAX];
	snprintf(dcs, sizeof(dcs), "%u", dc);
	snprintf(wks, sizeof(wks), "%u", worker);
	snprintf(dir, sizeof(dir), "%s/%s", f->dir, data);
	rk_cfg_edit_t edits[16] = {
	    {"rpc.listen", "tcp://127.0.0.1:0", NULL},
	    {"admin.listen", "127.0.0.1:0", NULL},
	    {"security.cluster_key_file", NULL, NULL},
	    {"security.allow_unsealed", "true", NULL},
	    {"idgen.datacenter_id", dcs, NULL},
	    {"idgen.worker_id", wks, NULL},
	    {"idgen.data_dir", dir, NULL},
	};
	size_t n = 7;
	for (size_t j = 0; j < nextra && n < 16; j++)
		edits[n++] = extra[j];
	snprintf(out, len, "%s/idgen-%zu.yaml", f->dir, i);
	assert_int_equal(rk_proc_sample_config("idgen", sample, sizeof(sample)),
	                 0);
	assert_int_equal(rk_cfg_write(out, sample, edits, n), 0);
}

/* Starts ringkv-idgen with CONFIG and ENV (NULL-ended, may be NULL); if
 * WAIT_READY, waits for READY=1 and records its ports. */
static rk_proc_t *start(fixture_t *f, const char *config,
                        const char *const *env, bool wait_ready)
{
	assert_true(f->nprocs < MAX_PROCS);
	size_t i = f->nprocs;
	char bin[PATH_MAX], out[PATH_MAX], err[PATH_MAX];
	char notify[PATH_MAX + 16];
	assert_int_equal(rk_proc_bin_path("ringkv-idgen", bin, sizeof(bin)), 0);
	snprintf(out, sizeof(out), "%s/%zu.stdout", f->dir, i);
	snprintf(err, sizeof(err), "%s/%zu.stderr", f->dir, i);
	snprintf(notify, sizeof(notify), "NOTIFY_SOCKET=%s", f->notify.path);
	const char *argv[] = {bin, "--config", config, NULL};
	const char *envp[12] = {notify};
	size_t n = 1;
	for (size_t j = 0; env != NULL && env[j] != NULL && n < 11; j++)
		envp[n++] = env[j];
	envp[n] = NULL;
	rk_proc_opts_t o = {
	    .argv = argv, .env = envp, .stdout_path = out, .stderr_path = err};
	rk_proc_t *p = &f->procs[i];
	assert_int_equal(rk_proc_spawn(p, &o), 0);
	f->nprocs++;
	if (!wait_ready)
		return p;
	char msg[1024];
	if (rk_notify_wait(&f->notify, p->pid, "READY=1", READY_TIMEOUT_MS, msg,
	                   sizeof(msg)) != 1)
		fail_msg("ringkv-idgen %zu did not become ready", i);
	assert_int_equal(
	    rk_notify_ports(msg, &f->rpc_port[i], &f->admin_port[i]), 0);
	return p;
}

static ringkv_conn_t *connect_to(const fixture_t *f, size_t i)
{
	char url[64];
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", f->rpc_port[i]);
	ringkv_conn_opts_t co = {
	    .url = url, .caller = "test", .timeout_ms = 5000};
	ringkv_conn_t *c = NULL;
	assert_int_equal(ringkv_connect(&co, &c, NULL), RK_OK);
	return c;
}

static void stop(fixture_t *f, size_t i)
{
	assert_int_equal(rk_proc_signal(&f->procs[i], SIGTERM), 0);
	assert_int_equal(rk_proc_wait(&f->procs[i], EXIT_TIMEOUT_MS), 1);
	assert_int_equal(rk_proc_exit_code(&f->procs[i]), 0);
}

/* The value of metric line NAME (labels included) from slot I's admin
 * port, or -1 if absent. */
static double metric(const fixture_t *f, size_t i, const char *name)
{
	char *body = NULL;
	assert_int_equal(rk_http_get(f->admin_port[i], "/metrics", 3000, &body),
	                 200);
	double v = -1;
	size_t n = strlen(name);
	for (char *line = body; line != NULL && *line;
	     line = strchr(line, '\n')) {
		if (*line == '\n')
			line++;
		if (strncmp(line, name, n) == 0 && line[n] == ' ') {
			v = atof(line + n + 1);
			break;
		}
	}
	free(body);
	return v;
}

/* "LD_PRELOAD=<libfaketimeMT>" (Debian package faketime), found by
 * glob so any architecture's path works; fails the case if absent. */
static const char *faketime_preload(void)
{
	static char env[PATH_MAX + 16];
	glob_t g;
	if (glob(FAKETIME_GLOB, 0, NULL, &g) != 0 || g.gl_pathc == 0)
		fail_msg("libfaketime missing (%s): run "
		         "scripts/install-deps.sh",
		         FAKETIME_GLOB);
	snprintf(env, sizeof(env), "LD_PRELOAD=%s", g.gl_pathv[0]);
	globfree(&g);
	return env;
}

/* ---------------------------------------------------------- uniqueness */

#define N_INSTANCES 4
#define CALLERS     2   /* per instance */
#define BATCHES     128 /* per caller, of 4096 */

typedef struct caller {
	ringkv_conn_t *conn; /* to its instance */
	uint64_t *ids;       /* BATCHES * 4096 slots */
	unsigned worker;     /* its instance's worker id */
	rk_status_t st;      /* first failure, or RK_OK */
} caller_t;

static void *call_batches(void *arg)
{
	caller_t *c = arg;
	c->st = RK_OK;
	for (int b = 0; b < BATCHES; b++) {
		ringkv_error_t err;
		rk_status_t st = ringkv_id_next_batch(
		    c->conn, 4096, c->ids + (size_t)b * 4096, NULL, &err);
		if (st != RK_OK) {
			c->st = st;
			fprintf(stderr, "batch %d: %s: %s\n", b,
			        rk_status_name(st), err.message);
			return NULL;
		}
	}
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void test_four_instances_issue_millions_of_unique_ids(void **state)
{
	fixture_t *f = *state;
	for (unsigned w = 0; w < N_INSTANCES; w++) {
		char cfg[PATH_MAX], data[32];
		snprintf(data, sizeof(data), "data-%u", w);
		write_config(f, w, 1, w, data, NULL, 0, cfg, sizeof(cfg));
		start(f, cfg, NULL, true);
	}
	const size_t per = (size_t)BATCHES * 4096;
	const size_t total = per * CALLERS * N_INSTANCES;
	uint64_t *all = malloc(total * sizeof(uint64_t));
	assert_non_null(all);
	caller_t c[N_INSTANCES * CALLERS];
	pthread_t t[N_INSTANCES * CALLERS];
	for (size_t k = 0; k < N_INSTANCES * CALLERS; k++) {
		c[k] = (caller_t){.conn = connect_to(f, k / CALLERS),
		                  .ids = all + k * per,
		                  .worker = (unsigned)(k / CALLERS)};
		pthread_create(&t[k], NULL, call_batches, &c[k]);
	}
	for (size_t k = 0; k < N_INSTANCES * CALLERS; k++) {
		pthread_join(t[k], NULL);
		assert_int_equal(c[k].st, RK_OK);
		/* Each caller's IDs increase and carry its instance's id. */
		for (size_t j = 1; j < per; j++)
			assert_true(c[k].ids[j] > c[k].ids[j - 1]);
		ringkv_id_parts_t p;
		ringkv_id_decode_local(c[k].ids[per - 1],
		                       RINGKV_IDGEN_DEFAULT_EPOCH_MS, &p);
		assert_int_equal(p.datacenter_id, 1);
		assert_int_equal(p.worker_id, c[k].worker);
		ringkv_close(c[k].conn);
	}
	qsort(all, total, sizeof(uint64_t), cmp_u64);
	size_t dups = 0;
	for (size_t j = 1; j < total; j++)
		dups += all[j] == all[j - 1];
	printf("%zu IDs from %d instances, %zu duplicates\n", total,
	       N_INSTANCES, dups);
	assert_int_equal(dups, 0);
	free(all);
	for (size_t i = 0; i < N_INSTANCES; i++)
		stop(f, i);
	f->passed = true;
}

/* ---------------------------------------------------------- clock */

static void test_restart_with_clock_set_back_never_reissues(void **state)
{
	fixture_t *f = *state;
	const rk_cfg_edit_t chunk = {"idgen.high_water_chunk", "200ms", NULL};
	char cfg[PATH_MAX];
	write_config(f, 0, 0, 5, "data", &chunk, 1, cfg, sizeof(cfg));
	start(f, cfg, NULL, true);
	ringkv_conn_t *c = connect_to(f, 0);
	static uint64_t ids[4096];
	ringkv_error_t err;
	assert_int_equal(ringkv_id_next_batch(c, 4096, ids, NULL, &err), RK_OK);
	uint64_t last;
	assert_int_equal(ringkv_id_next(c, &last, &err), RK_OK);
	ringkv_close(c);
	stop(f, 0);

	/* The same generator restarted with its clock 1.5 s behind. */
	const char *env[] = {faketime_preload(), "FAKETIME=-1.5",
	                     "FAKETIME_DONT_FAKE_MONOTONIC=1",
	                     "ASAN_OPTIONS=verify_asan_link_order=0", NULL};
	start(f, cfg, env, true);
	c = connect_to(f, 1);
	uint64_t id = 0;
	rk_status_t st = ringkv_id_next(c, &id, &err);
	assert_int_equal(st, RK_UNAVAILABLE);
	assert_non_null(strstr(err.message, "moved back by"));
	ringkv_idgen_info_t in;
	assert_int_equal(ringkv_idgen_info(c, &in, &err), RK_OK);
	ringkv_id_parts_t p;
	ringkv_id_decode_local(last, RINGKV_IDGEN_DEFAULT_EPOCH_MS, &p);
	assert_true(in.high_water_ms > p.timestamp_ms);
	assert_int_equal(in.clock_state, 3);
	/* It issues once its clock passes the mark, never below it. */
	int tries = 0;
	while ((st = ringkv_id_next(c, &id, &err)) == RK_UNAVAILABLE &&
	       tries++ < 100) {
		uint32_t ms = err.retry_after_ms ? err.retry_after_ms : 50;
		struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
		nanosleep(&ts, NULL);
	}
	assert_int_equal(st, RK_OK);
	assert_true(id > last);
	ringkv_close(c);
	stop(f, 1);
	f->passed = true;
}

static void
test_running_clock_step_waits_then_refuses_then_recovers(void **state)
{
	fixture_t *f = *state;
	set_offset(f, "+0\n");
	const rk_cfg_edit_t step = {"idgen.max_clock_step", "1s", NULL};
	char cfg[PATH_MAX], rc_env[PATH_MAX + 32];
	write_config(f, 0, 0, 6, "data", &step, 1, cfg, sizeof(cfg));
	snprintf(rc_env, sizeof(rc_env), "FAKETIME_TIMESTAMP_FILE=%s",
	         f->faketime_rc);
	const char *env[] = {faketime_preload(),
	                     rc_env,
	                     "FAKETIME_NO_CACHE=1",
	                     "FAKETIME_DONT_FAKE_MONOTONIC=1",
	                     "ASAN_OPTIONS=verify_asan_link_order=0",
	                     NULL};
	start(f, cfg, env, true);
	ringkv_conn_t *c = connect_to(f, 0);
	ringkv_error_t err;
	uint64_t id1, id2, id3, id4;
	assert_int_equal(ringkv_id_next(c, &id1, &err), RK_OK);

	/* 0.4 s back: within the 1 s step, so the call waits it out. */
	set_offset(f, "-0.4\n");
	assert_int_equal(ringkv_id_next(c, &id2, &err), RK_OK);
	assert_true(id2 > id1);
	assert_true(
	    metric(f, 0,
	           "ringkv_idgen_clock_backward_total{action=\"waited\"}") >=
	    1);

	/* 2.5 s back from real time: about 2.1 s behind the last ID, more
	 * than the step: refused, the step named, and counted. */
	set_offset(f, "-2.5\n");
	assert_int_equal(ringkv_id_next(c, &id3, &err), RK_UNAVAILABLE);
	assert_non_null(strstr(err.message, "moved back by"));
	assert_non_null(strstr(err.message, "allowed step of 1000 ms"));
	assert_true(err.retry_after_ms > 0);
	assert_true(
	    metric(f, 0, "ringkv_idgen_refused_total{reason=\"clock_back\"}") >=
	    1);
	assert_true(
	    metric(f, 0,
	           "ringkv_idgen_clock_backward_total{action=\"refused\"}") >=
	    1);
	assert_true(metric(f, 0, "ringkv_idgen_clock_behind_ms") > 1000);
	ringkv_idgen_info_t in;
	assert_int_equal(ringkv_idgen_info(c, &in, &err), RK_OK);
	assert_int_equal(in.issuing, RK_UNAVAILABLE);

	/* The clock back where it was: issuing again, above the rest. */
	set_offset(f, "+0\n");
	assert_int_equal(ringkv_id_next(c, &id4, &err), RK_OK);
	assert_true(id4 > id2);
	ringkv_close(c);
	stop(f, 0);
	f->passed = true;
}

/* A clock that stops (libfaketime's absolute time: frozen) is refused once
 * the sequence of its ms runs out, not spun on; a moving clock resumes. */
static void test_running_clock_that_stops_is_refused_not_spun(void **state)
{
	fixture_t *f = *state;
	set_offset(f, "+0\n");
	char cfg[PATH_MAX], rc_env[PATH_MAX + 32];
	write_config(f, 0, 0, 7, "data", NULL, 0, cfg, sizeof(cfg));
	snprintf(rc_env, sizeof(rc_env), "FAKETIME_TIMESTAMP_FILE=%s",
	         f->faketime_rc);
	const char *env[] = {faketime_preload(),
	                     rc_env,
	                     "FAKETIME_NO_CACHE=1",
	                     "FAKETIME_DONT_FAKE_MONOTONIC=1",
	                     "TZ=UTC",
	                     "ASAN_OPTIONS=verify_asan_link_order=0",
	                     NULL};
	start(f, cfg, env, true);
	ringkv_conn_t *c = connect_to(f, 0);
	ringkv_error_t err;
	static uint64_t ids[4096];
	uint64_t id;
	assert_int_equal(ringkv_id_next(c, &id, &err), RK_OK);

	/* Freeze the clock 2-3 s ahead (whole seconds): the first batch
	 * takes that ms whole, the next finds its sequence used up and a
	 * clock that never reaches the next ms. */
	time_t t = time(NULL) + 3;
	struct tm tm;
	gmtime_r(&t, &tm);
	char frozen[64];
	strftime(frozen, sizeof(frozen), "%Y-%m-%d %H:%M:%S\n", &tm);
	set_offset(f, frozen);
	assert_int_equal(ringkv_id_next_batch(c, 4096, ids, NULL, &err), RK_OK);
	assert_true(ids[0] > id);
	uint64_t before = (uint64_t)time(NULL);
	assert_int_equal(ringkv_id_next(c, &id, &err), RK_UNAVAILABLE);
	assert_non_null(strstr(err.message, "the clock stopped"));
	/* Refused after about 51 ms, not after waiting forever. */
	assert_true((uint64_t)time(NULL) - before <= 2);
	assert_true(
	    metric(f, 0,
	           "ringkv_idgen_refused_total{reason=\"clock_stalled\"}") >=
	    1);

	/* A clock that moves again (5 s ahead of real time, past the
	 * frozen second): issuing resumes above the frozen batch. */
	set_offset(f, "+5\n");
	assert_int_equal(ringkv_id_next(c, &id, &err), RK_OK);
	assert_true(id > ids[4095]);
	ringkv_close(c);
	stop(f, 0);
	f->passed = true;
}

/* ---------------------------------------------------------- refusals */

static void test_same_identity_in_one_data_dir_refuses_to_start(void **state)
{
	fixture_t *f = *state;
	char cfg[PATH_MAX];
	write_config(f, 0, 3, 3, "data", NULL, 0, cfg, sizeof(cfg));
	start(f, cfg, NULL, true);
	rk_proc_t *second = start(f, cfg, NULL, false);
	assert_int_equal(rk_proc_wait(second, EXIT_TIMEOUT_MS), 1);
	assert_int_equal(rk_proc_exit_code(second), 1);
	char *text = rk_proc_read_file(second->stderr_path, NULL);
	assert_non_null(text);
	assert_non_null(strstr(text, "already held by another ringkv-idgen"));
	free(text);
	stop(f, 0);
	f->passed = true;
}

static void test_bad_counts_get_invalid_argument_and_service_stays(void **state)
{
	fixture_t *f = *state;
	char cfg[PATH_MAX], url[64];
	write_config(f, 0, 0, 1, "data", NULL, 0, cfg, sizeof(cfg));
	start(f, cfg, NULL, true);
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", f->rpc_port[0]);
	rk_rpc_client_opts_t o = {.url = url, .caller = "test"};
	rk_rpc_client_t *raw;
	assert_int_equal(rk_rpc_client_new(&o, &raw), RK_OK);
	const uint32_t bad[] = {0, 4097, 4294967295u};
	for (size_t i = 0; i < 3; i++) {
		Ringkv__V1__NextIdsRequest req =
		    RINGKV__V1__NEXT_IDS_REQUEST__INIT;
		req.has_count = true;
		req.count = bad[i];
		rk_rpc_result_t res;
		assert_int_equal(rk_rpc_call(raw, rk_idgen_method("NextIds"),
		                             &req.base, 3000, &res),
		                 RK_INVALID_ARGUMENT);
		rk_rpc_result_clear(&res);
	}
	rk_rpc_client_free(raw);
	/* Still serving: the CLI gets IDs and decodes one locally. */
	char bin[PATH_MAX], out[PATH_MAX];
	assert_int_equal(rk_proc_bin_path("ringkv", bin, sizeof(bin)), 0);
	snprintf(out, sizeof(out), "%s/cli.out", f->dir);
	const char *argv[] = {bin, "id", "next", "-n", "5000", url, NULL};
	rk_proc_opts_t po = {.argv = argv, .stdout_path = out};
	assert_int_equal(rk_proc_run(&po, EXIT_TIMEOUT_MS), 0);
	char *text = rk_proc_read_file(out, NULL);
	assert_non_null(text);
	uint64_t prev = 0, first = 0;
	int lines = 0;
	for (char *s = text; *s; lines++) {
		char *end;
		uint64_t v = strtoull(s, &end, 10);
		assert_true(*end == '\n' && v > prev);
		if (lines == 0)
			first = v;
		prev = v;
		s = end + 1;
	}
	assert_int_equal(lines, 5000);
	free(text);
	char id[32];
	snprintf(id, sizeof(id), "%llu", (unsigned long long)first);
	const char *dargv[] = {bin, "id", "decode", id, NULL};
	po.argv = dargv;
	assert_int_equal(rk_proc_run(&po, EXIT_TIMEOUT_MS), 0);
	text = rk_proc_read_file(out, NULL);
	assert_non_null(strstr(text, "worker         1\n"));
	assert_non_null(strstr(text, "datacenter     0\n"));
	free(text);
	stop(f, 0);
	f->passed = true;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_four_instances_issue_millions_of_unique_ids, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_restart_with_clock_set_back_never_reissues, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_running_clock_step_waits_then_refuses_then_recovers, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_running_clock_that_stops_is_refused_not_spun, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_same_identity_in_one_data_dir_refuses_to_start, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_bad_counts_get_invalid_argument_and_service_stays, setup,
	        teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
