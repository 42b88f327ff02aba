/*
 * ringkv-ratelimit as a real process: started from a config derived from
 * deploy/config/ratelimit.yaml (ports 0, unsealed frames, a rules file in
 * the case's temp dir), readiness from READY=1, calls through libringkv
 * and the `ringkv` command, reloads by SIGHUP (READY=1 again marks the
 * end of a reload), metrics from the admin port.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ringkv/client.h>
#include <ringkv/ratelimit.h>

#include "handlers.h"
#include "proc_util.h"
#include "ringkv/v1/ratelimit.pb-c.h"
#include "rpc/client.h"

#define READY_TIMEOUT_MS 10000
#define EXIT_TIMEOUT_MS  5000

typedef struct fixture {
	char *dir;                /* temp dir; removed by teardown */
	rk_notify_t notify;       /* the child's NOTIFY_SOCKET */
	rk_proc_t proc;           /* the service */
	int rpc_port, admin_port; /* from READY=1 */
	char rules[PATH_MAX];     /* its rules file */
	char config[PATH_MAX];    /* its config */
	char url[64];             /* tcp://127.0.0.1:PORT */
	char stream_url[64];      /* stream://127.0.0.1:PORT */
	bool passed;              /* set last by each case */
} fixture_t;

static const char *rules_v1 =
    "domain: ringkv\n"
    "descriptors:\n"
    "  - key: client_id\n"
    "    rate_limits:\n"
    "      - {name: per_second, unit: second, requests_per_unit: 3}\n"
    "      - {name: per_day, unit: day, requests_per_unit: 1000,\n"
    "         algorithm: fixed_window}\n"
    "  - key: login\n"
    "    rate_limit: {name: logins, unit: minute, requests_per_unit: 2,\n"
    "                 algorithm: sliding_log}\n"
    "  - key: hot\n"
    "    rate_limit: {name: hot_daily, unit: day, requests_per_unit: 300}\n";

static const char *rules_v2 =
    "domain: ringkv\n"
    "descriptors:\n"
    "  - key: client_id\n"
    "    rate_limit: {name: per_second_v2, unit: second,\n"
    "                 requests_per_unit: 50}\n";

static const char *rules_bad =
    "domain: ringkv\n"
    "descriptors:\n"
    "  - key: client_id\n"
    "    rate_limit: {name: broken, unit: fortnight,\n"
    "                 requests_per_unit: 50}\n";

static int setup(void **state)
{
	fixture_t *f = calloc(1, sizeof(*f));
	f->dir = rk_proc_tmpdir("rl");
	assert_non_null(f->dir);
	assert_int_equal(rk_notify_open(&f->notify, f->dir, "notify"), 0);
	snprintf(f->rules, sizeof(f->rules), "%s/rules.yaml", f->dir);
	snprintf(f->config, sizeof(f->config), "%s/ratelimit.yaml", f->dir);
	char sample[PATH_MAX];
	assert_int_equal(
	    rk_proc_sample_config("ratelimit", sample, sizeof(sample)), 0);
	rk_cfg_edit_t edits[] = {
	    {"rpc.listen", "tcp://127.0.0.1:0", NULL},
	    {"rpc.stream_listen", "stream://127.0.0.1:0", NULL},
	    {"admin.listen", "127.0.0.1:0", NULL},
	    {"security.cluster_key_file", NULL, NULL},
	    {"security.allow_unsealed", "true", NULL},
	    {"ratelimit.rules_file", "rules.yaml", NULL},
	    {"ratelimit.max_hits", "500", NULL},
	    {"ratelimit.max_batch", "50", NULL},
	};
	assert_int_equal(rk_cfg_write(f->config, sample, edits,
	                              sizeof(edits) / sizeof(edits[0])),
	                 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *f = *state;
	if (!f->passed) {
		rk_proc_dump(&f->proc, stderr);
		fprintf(stderr, "notify messages:\n%s\n", f->notify.log);
	}
	rk_proc_kill(&f->proc);
	rk_notify_close(&f->notify);
	rk_proc_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static void spawn(fixture_t *f)
{
	char bin[PATH_MAX], err[PATH_MAX], notify[PATH_MAX + 16];
	assert_int_equal(rk_proc_bin_path("ringkv-ratelimit", bin, sizeof(bin)),
	                 0);
	snprintf(err, sizeof(err), "%s/stderr", f->dir);
	snprintf(notify, sizeof(notify), "NOTIFY_SOCKET=%s", f->notify.path);
	const char *argv[] = {bin, "--config", f->config, NULL};
	const char *env[] = {notify, NULL};
	rk_proc_opts_t o = {.argv = argv, .env = env, .stderr_path = err};
	assert_int_equal(rk_proc_spawn(&f->proc, &o), 0);
}

static void start(fixture_t *f)
{
	spawn(f);
	char msg[1024];
	if (rk_notify_wait(&f->notify, f->proc.pid, "READY=1", READY_TIMEOUT_MS,
	                   msg, sizeof(msg)) != 1)
		fail_msg("ringkv-ratelimit did not become ready");
	assert_int_equal(rk_notify_ports(msg, &f->rpc_port, &f->admin_port), 0);
	snprintf(f->url, sizeof(f->url), "tcp://127.0.0.1:%d", f->rpc_port);
	const char *sp = strstr(msg, ", stream on port ");
	assert_non_null(sp);
	snprintf(f->stream_url, sizeof(f->stream_url), "stream://127.0.0.1:%d",
	         atoi(sp + strlen(", stream on port ")));
}

/* SIGHUP, then READY=1 again: the reload has been applied or rejected. */
static void reload(fixture_t *f)
{
	assert_int_equal(rk_proc_signal(&f->proc, SIGHUP), 0);
	assert_int_equal(rk_notify_wait(&f->notify, f->proc.pid, "READY=1",
	                                READY_TIMEOUT_MS, NULL, 0),
	                 1);
}

static ringkv_conn_t *conn_at(const char *url)
{
	ringkv_conn_opts_t co = {
	    .url = url, .caller = "test", .timeout_ms = 5000};
	ringkv_conn_t *c = NULL;
	assert_int_equal(ringkv_connect(&co, &c, NULL), RK_OK);
	return c;
}

static ringkv_conn_t *conn_to(fixture_t *f)
{
	return conn_at(f->url);
}

static rk_status_t check1(ringkv_conn_t *c, const char *domain, const char *key,
                          const char *value, uint32_t hits,
                          ringkv_rl_result_t *res)
{
	ringkv_rl_entry_t e = {key, value};
	ringkv_rl_descriptor_t d = {&e, 1};
	ringkv_rl_check_t chk = {.domain = domain,
	                         .descriptors = &d,
	                         .n_descriptors = 1,
	                         .hits = hits};
	ringkv_error_t err;
	rk_status_t st = ringkv_ratelimit_check(c, &chk, res, &err);
	if (st != RK_OK)
		printf("# check: %s: %s\n", rk_status_name(st), err.message);
	return st;
}

/* DescribeRules through a raw RPC client: version and last error. */
static uint64_t describe(fixture_t *f, char *last_error, size_t len)
{
	rk_rpc_client_opts_t co = {.url = f->url, .caller = "test"};
	rk_rpc_client_t *c = NULL;
	assert_int_equal(rk_rpc_client_new(&co, &c), RK_OK);
	Ringkv__V1__DescribeRulesRequest req =
	    RINGKV__V1__DESCRIBE_RULES_REQUEST__INIT;
	rk_rpc_result_t res;
	assert_int_equal(rk_rpc_call(c, rk_rl_describe_rules_method(),
	                             &req.base, 5000, &res),
	                 RK_OK);
	const Ringkv__V1__DescribeRulesResponse *r = (const void *)res.response;
	uint64_t v = r->rules_version;
	snprintf(last_error, len, "%s", r->last_error ? r->last_error : "");
	rk_rpc_result_clear(&res);
	rk_rpc_client_free(c);
	return v;
}

static double metric(const fixture_t *f, const char *name)
{
	char *body = NULL;
	assert_int_equal(rk_http_get(f->admin_port, "/metrics", 3000, &body),
	                 200);
	double v = -1;
	char *p = strstr(body, name);
	if (p != NULL && p[strlen(name)] == ' ')
		v = atof(p + strlen(name) + 1);
	free(body);
	return v;
}

/* The binary counts, refuses with a retry-after, answers batches in
 * order (a bad check among good ones gets its own status), exports
 * per-rule metrics, and the `ringkv` command shows the verdict. */
static void
test_ratelimit_binary_counts_refuses_and_answers_batches(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(rk_proc_write_file(f->rules, rules_v1), 0);
	start(f);
	ringkv_conn_t *c = conn_to(f);
	ringkv_rl_result_t r;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(check1(c, "ringkv", "client_id", "7", 1, &r),
		                 RK_OK);
		assert_true(r.allowed);
		assert_int_equal(r.n_limits, 2);
		assert_int_equal(r.rules_version, 1);
		ringkv_rl_result_clear(&r);
	}
	assert_int_equal(check1(c, "ringkv", "client_id", "7", 1, &r), RK_OK);
	assert_false(r.allowed);
	assert_int_equal(r.limit, 3);
	assert_true(r.retry_after_ms > 0 && r.retry_after_ms <= 2000);
	assert_string_equal(r.limits[r.deciding_index].rule, "per_second");
	assert_int_equal(r.limits[1].remaining, 997);
	ringkv_rl_result_clear(&r);

	/* a batch: good, unknown domain, sliding log twice, then refused */
	ringkv_rl_entry_t e1 = {"login", "bob"}, e2 = {"client_id", "8"};
	ringkv_rl_descriptor_t d1 = {&e1, 1}, d2 = {&e2, 1};
	ringkv_rl_check_t chk[5] = {
	    {.domain = "ringkv",
	     .descriptors = &d2,
	     .n_descriptors = 1,
	     .hits = 1},
	    {.domain = "nowhere",
	     .descriptors = &d2,
	     .n_descriptors = 1,
	     .hits = 1},
	    {.domain = "ringkv",
	     .descriptors = &d1,
	     .n_descriptors = 1,
	     .hits = 1},
	    {.domain = "ringkv",
	     .descriptors = &d1,
	     .n_descriptors = 1,
	     .hits = 1},
	    {.domain = "ringkv",
	     .descriptors = &d1,
	     .n_descriptors = 1,
	     .hits = 1},
	};
	ringkv_rl_result_t res[5];
	rk_status_t sts[5];
	ringkv_error_t err;
	assert_int_equal(
	    ringkv_ratelimit_check_batch(c, chk, 5, res, sts, &err), RK_OK);
	assert_int_equal(sts[0], RK_OK);
	assert_true(res[0].allowed);
	assert_int_equal(sts[1], RK_NOT_FOUND);
	assert_int_equal(sts[2], RK_OK);
	assert_true(res[2].allowed);
	assert_int_equal(sts[3], RK_OK);
	assert_true(res[3].allowed);
	assert_int_equal(sts[4], RK_OK);
	assert_false(res[4].allowed);
	assert_string_equal(res[4].limits[0].rule, "logins");
	for (int i = 0; i < 5; i++)
		ringkv_rl_result_clear(&res[i]);

	assert_true(metric(f, "ringkv_ratelimit_over_limit_total{domain="
	                      "\"ringkv\",rule=\"per_second\"}") == 1);
	assert_true(metric(f, "ringkv_ratelimit_hits_total{domain=\"ringkv\","
	                      "rule=\"logins\"}") == 3);
	assert_true(metric(f, "ringkv_ratelimit_decision_seconds_count{"
	                      "algorithm=\"sliding_log\"}") >= 3);

	/* the command: allowed exits 0, refused 3 */
	char bin[PATH_MAX], out[PATH_MAX];
	assert_int_equal(rk_proc_bin_path("ringkv", bin, sizeof(bin)), 0);
	snprintf(out, sizeof(out), "%s/cli.out", f->dir);
	const char *argv_ok[] = {bin,      "ratelimit",     "check", f->url,
	                         "ringkv", "client_id=cli", NULL};
	rk_proc_opts_t o = {.argv = argv_ok, .stdout_path = out};
	assert_int_equal(rk_proc_run(&o, 10000), 0);
	char *text = rk_proc_read_file(out, NULL);
	assert_non_null(strstr(text, "allowed (rules version 1"));
	assert_non_null(strstr(text, "per_second: 3/second"));
	free(text);
	const char *argv_read[] = {bin,      "ratelimit", "check",
	                           "--hits", "0",         f->url,
	                           "ringkv", "login=bob", NULL};
	o.argv = argv_read;
	assert_int_equal(rk_proc_run(&o, 10000), 0); /* a read passes */
	text = rk_proc_read_file(out, NULL);
	assert_non_null(strstr(text, "logins: 2/minute sliding_log: allowed, "
	                             "remaining 0"));
	free(text);
	const char *argv_refused[] = {bin,      "ratelimit", "check", f->url,
	                              "ringkv", "login=bob", NULL};
	o.argv = argv_refused;
	assert_int_equal(rk_proc_run(&o, 10000), 3);
	ringkv_close(c);
	assert_int_equal(rk_proc_signal(&f->proc, SIGTERM), 0);
	assert_int_equal(rk_proc_wait(&f->proc, EXIT_TIMEOUT_MS), 1);
	assert_int_equal(rk_proc_exit_code(&f->proc), 0);
	f->passed = true;
}

/* SIGHUP with good rules installs them (version 2, new limits); with a
 * bad file the old rules stay and the error names the line. */
static void
test_ratelimit_reload_installs_good_rules_and_keeps_old_on_bad(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(rk_proc_write_file(f->rules, rules_v1), 0);
	start(f);
	ringkv_conn_t *c = conn_to(f);
	ringkv_rl_result_t r;
	assert_int_equal(check1(c, "ringkv", "client_id", "1", 1, &r), RK_OK);
	assert_int_equal(r.limit, 3);
	ringkv_rl_result_clear(&r);

	assert_int_equal(rk_proc_write_file(f->rules, rules_v2), 0);
	reload(f);
	char last[4096];
	assert_int_equal(describe(f, last, sizeof(last)), 2);
	assert_string_equal(last, "");
	assert_int_equal(check1(c, "ringkv", "client_id", "1", 1, &r), RK_OK);
	assert_int_equal(r.rules_version, 2);
	assert_int_equal(r.limit, 50);
	assert_string_equal(r.limits[0].rule, "per_second_v2");
	ringkv_rl_result_clear(&r);

	assert_int_equal(rk_proc_write_file(f->rules, rules_bad), 0);
	reload(f);
	assert_int_equal(describe(f, last, sizeof(last)), 2);
	if (strstr(last,
	           "rules.yaml:4: field descriptors[0].rate_limit.unit") ==
	    NULL)
		fail_msg("last_error: %s", last);
	assert_int_equal(check1(c, "ringkv", "client_id", "1", 1, &r), RK_OK);
	assert_int_equal(r.rules_version, 2);
	assert_int_equal(r.limit, 50);
	ringkv_rl_result_clear(&r);
	char err_path[PATH_MAX];
	snprintf(err_path, sizeof(err_path), "%s/stderr", f->dir);
	assert_true(rk_proc_line_of(err_path,
	                            "rules.yaml:4: field "
	                            "descriptors[0].rate_limit.unit") > 0);

	/* The command shows the rules in effect and the refused reload
	 * (exit 4); after a good reload, exit 0 and no refusal. */
	char bin[PATH_MAX], out[PATH_MAX];
	assert_int_equal(rk_proc_bin_path("ringkv", bin, sizeof(bin)), 0);
	snprintf(out, sizeof(out), "%s/rules.out", f->dir);
	const char *argv[] = {bin, "ratelimit", "rules", f->url, NULL};
	rk_proc_opts_t o = {.argv = argv, .stdout_path = out};
	assert_int_equal(rk_proc_run(&o, 10000), 4);
	char *text = rk_proc_read_file(out, NULL);
	assert_non_null(strstr(text, "rules version 2 from "));
	assert_non_null(strstr(text, "last reload refused"));
	assert_non_null(strstr(text, "rules.yaml:4: field"));
	assert_non_null(strstr(text, "per_second_v2"));
	assert_non_null(strstr(text, "client_id=*"));
	assert_non_null(strstr(text, "50/second"));
	free(text);
	assert_int_equal(rk_proc_write_file(f->rules, rules_v1), 0);
	reload(f);
	assert_int_equal(rk_proc_run(&o, 10000), 0);
	text = rk_proc_read_file(out, NULL);
	assert_non_null(strstr(text, "rules version 3 from "));
	assert_null(strstr(text, "last reload refused"));
	assert_non_null(strstr(text, "logins"));
	assert_non_null(strstr(text, "sliding_log"));
	free(text);
	ringkv_close(c);
	f->passed = true;
}

/* Bad requests get clear statuses and the service keeps serving. */
static void
test_ratelimit_bad_requests_get_statuses_and_service_survives(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(rk_proc_write_file(f->rules, rules_v1), 0);
	start(f);
	ringkv_conn_t *c = conn_to(f);
	ringkv_rl_result_t r;
	ringkv_error_t err;
	assert_int_equal(check1(c, "nowhere", "client_id", "1", 1, &r),
	                 RK_NOT_FOUND);
	assert_int_equal(check1(c, "", "client_id", "1", 1, &r),
	                 RK_INVALID_ARGUMENT);
	assert_int_equal(check1(c, "ringkv", "", "1", 1, &r),
	                 RK_INVALID_ARGUMENT);
	assert_int_equal(check1(c, "ringkv", "client_id", "1", 501, &r),
	                 RK_INVALID_ARGUMENT);
	assert_int_equal(check1(c, "ringkv", "client_id", "1", 4, &r),
	                 RK_OUT_OF_RANGE);
	ringkv_rl_check_t none = {.domain = "ringkv", .hits = 1};
	assert_int_equal(ringkv_ratelimit_check(c, &none, &r, &err),
	                 RK_INVALID_ARGUMENT);
	assert_non_null(strstr(err.message, "no descriptors"));
	/* a batch over max_batch (50) */
	ringkv_rl_entry_t e = {"client_id", "1"};
	ringkv_rl_descriptor_t d = {&e, 1};
	ringkv_rl_check_t many[51];
	for (int i = 0; i < 51; i++)
		many[i] = (ringkv_rl_check_t){.domain = "ringkv",
		                              .descriptors = &d,
		                              .n_descriptors = 1,
		                              .hits = 0};
	ringkv_rl_result_t res[51];
	rk_status_t sts[51];
	assert_int_equal(
	    ringkv_ratelimit_check_batch(c, many, 51, res, sts, &err),
	    RK_INVALID_ARGUMENT);
	assert_non_null(strstr(err.message, "more than 50"));
	assert_int_equal(ringkv_health(c, &err), RK_OK);
	assert_int_equal(check1(c, "ringkv", "client_id", "1", 1, &r), RK_OK);
	assert_true(r.allowed);
	ringkv_rl_result_clear(&r);
	ringkv_close(c);
	f->passed = true;
}

/* Without a rules file the service starts with no rules: every check
 * answers NOT_FOUND for its domain (the local dev cluster runs so). */
static void
test_ratelimit_without_rules_file_starts_and_knows_no_domain(void **state)
{
	fixture_t *f = *state;
	char sample[PATH_MAX];
	assert_int_equal(
	    rk_proc_sample_config("ratelimit", sample, sizeof(sample)), 0);
	rk_cfg_edit_t edits[] = {
	    {"rpc.listen", "tcp://127.0.0.1:0", NULL},
	    {"rpc.stream_listen", "stream://127.0.0.1:0", NULL},
	    {"admin.listen", "127.0.0.1:0", NULL},
	    {"security.cluster_key_file", NULL, NULL},
	    {"security.allow_unsealed", "true", NULL},
	    {"ratelimit.rules_file", NULL, NULL},
	};
	assert_int_equal(rk_cfg_write(f->config, sample, edits,
	                              sizeof(edits) / sizeof(edits[0])),
	                 0);
	start(f);
	ringkv_conn_t *c = conn_to(f);
	ringkv_rl_result_t r;
	assert_int_equal(check1(c, "ringkv", "client_id", "1", 1, &r),
	                 RK_NOT_FOUND);
	ringkv_close(c);
	f->passed = true;
}

typedef struct caller {
	pthread_t th;
	fixture_t *f;
	int admitted;
	int failed;
} caller_t;

static void *caller_run(void *arg)
{
	caller_t *c = arg;
	ringkv_conn_opts_t co = {
	    .url = c->f->url, .caller = "test", .timeout_ms = 10000};
	ringkv_conn_t *conn = NULL;
	if (ringkv_connect(&co, &conn, NULL) != RK_OK) {
		c->failed = 60;
		return NULL;
	}
	ringkv_rl_entry_t e = {"hot", "key"};
	ringkv_rl_descriptor_t d = {&e, 1};
	ringkv_rl_check_t chk = {.domain = "ringkv",
	                         .descriptors = &d,
	                         .n_descriptors = 1,
	                         .hits = 1};
	for (int i = 0; i < 60; i++) {
		ringkv_rl_result_t r;
		if (ringkv_ratelimit_check(conn, &chk, &r, NULL) != RK_OK) {
			c->failed++;
			continue;
		}
		c->admitted += r.allowed;
		ringkv_rl_result_clear(&r);
	}
	ringkv_close(conn);
	return NULL;
}

/* 8 callers on 8 connections hammer one key of limit 300 a day through
 * the real server: exactly 300 pass. */
static void
test_ratelimit_many_callers_on_one_key_admit_exactly_the_limit(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(rk_proc_write_file(f->rules, rules_v1), 0);
	start(f);
	caller_t c[8];
	memset(c, 0, sizeof(c));
	for (int i = 0; i < 8; i++) {
		c[i].f = f;
		pthread_create(&c[i].th, NULL, caller_run, &c[i]);
	}
	int admitted = 0, failed = 0;
	for (int i = 0; i < 8; i++) {
		pthread_join(c[i].th, NULL);
		admitted += c[i].admitted;
		failed += c[i].failed;
	}
	assert_int_equal(failed, 0);
	assert_int_equal(admitted, 300);
	f->passed = true;
}

/* A bad rules file stops start-up with exit code 2, naming the line. */
static void test_ratelimit_bad_rules_stop_startup_naming_the_line(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(rk_proc_write_file(f->rules, rules_bad), 0);
	spawn(f);
	assert_int_equal(rk_proc_wait(&f->proc, EXIT_TIMEOUT_MS), 1);
	assert_int_equal(rk_proc_exit_code(&f->proc), 2);
	char err_path[PATH_MAX];
	snprintf(err_path, sizeof(err_path), "%s/stderr", f->dir);
	assert_true(rk_proc_line_of(err_path,
	                            "rules.yaml:4: field "
	                            "descriptors[0].rate_limit.unit") > 0);
	f->passed = true;
}

/* The stream transport serves the same checks on the same counts as the
 * nng port, and the command speaks it too. */
static void test_ratelimit_stream_transport_shares_counts_with_nng(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(rk_proc_write_file(f->rules, rules_v1), 0);
	start(f);
	ringkv_conn_t *tcp = conn_to(f);
	ringkv_conn_t *str = conn_at(f->stream_url);
	ringkv_rl_result_t r;
	/* per_second allows 3: two over stream, one over nng, then no */
	for (int i = 0; i < 3; i++) {
		ringkv_conn_t *c = i == 1 ? tcp : str;
		assert_int_equal(check1(c, "ringkv", "client_id", "s", 1, &r),
		                 RK_OK);
		assert_true(r.allowed);
		assert_int_equal(r.limits[r.deciding_index].remaining, 2 - i);
		ringkv_rl_result_clear(&r);
	}
	assert_int_equal(check1(str, "ringkv", "client_id", "s", 1, &r), RK_OK);
	assert_false(r.allowed);
	ringkv_rl_result_clear(&r);
	assert_int_equal(check1(tcp, "ringkv", "client_id", "s", 0, &r), RK_OK);
	assert_int_equal(r.limits[0].remaining, 0);
	ringkv_rl_result_clear(&r);
	/* an unknown domain is NOT_FOUND on this transport too */
	assert_int_equal(check1(str, "nowhere", "client_id", "s", 1, &r),
	                 RK_NOT_FOUND);

	/* DescribeRules over the stream transport names each rule's
	 * sub-windows: 1 (the classic counter) unless the file says more */
	rk_rpc_client_opts_t rco = {.url = f->stream_url, .caller = "test"};
	rk_rpc_client_t *rc = NULL;
	assert_int_equal(rk_rpc_client_new(&rco, &rc), RK_OK);
	Ringkv__V1__DescribeRulesRequest dreq =
	    RINGKV__V1__DESCRIBE_RULES_REQUEST__INIT;
	rk_rpc_result_t dres;
	assert_int_equal(rk_rpc_call(rc, rk_rl_describe_rules_method(),
	                             &dreq.base, 5000, &dres),
	                 RK_OK);
	const Ringkv__V1__DescribeRulesResponse *d =
	    (const void *)dres.response;
	int sliding = 0;
	for (size_t i = 0; i < d->n_rules; i++) {
		const Ringkv__V1__RateLimitRule *x = d->rules[i];
		bool sw =
		    x->algorithm ==
		    RINGKV__V1__RATE_LIMIT_ALGORITHM__RATE_LIMIT_SLIDING_WINDOW_COUNTER;
		assert_int_equal(x->has_sub_windows, sw);
		if (sw) {
			assert_int_equal(x->sub_windows, 1);
			sliding++;
		}
	}
	assert_true(sliding >= 2); /* per_second and hot_daily */
	rk_rpc_result_clear(&dres);
	rk_rpc_client_free(rc);

	char bin[PATH_MAX], out[PATH_MAX];
	assert_int_equal(rk_proc_bin_path("ringkv", bin, sizeof(bin)), 0);
	snprintf(out, sizeof(out), "%s/cli.out", f->dir);
	const char *argv[] = {bin,      "ratelimit",     "check", f->stream_url,
	                      "ringkv", "client_id=cli", NULL};
	rk_proc_opts_t o = {.argv = argv, .stdout_path = out};
	assert_int_equal(rk_proc_run(&o, 10000), 0);
	char *text = rk_proc_read_file(out, NULL);
	assert_non_null(strstr(text, "allowed (rules version 1"));
	free(text);
	ringkv_close(tcp);
	ringkv_close(str);
	f->passed = true;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_ratelimit_binary_counts_refuses_and_answers_batches, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_ratelimit_reload_installs_good_rules_and_keeps_old_on_bad,
	        setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_ratelimit_bad_requests_get_statuses_and_service_survives,
	        setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_ratelimit_bad_rules_stop_startup_naming_the_line, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_ratelimit_many_callers_on_one_key_admit_exactly_the_limit,
	        setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_ratelimit_without_rules_file_starts_and_knows_no_domain,
	        setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_ratelimit_stream_transport_shares_counts_with_nng, setup,
	        teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
