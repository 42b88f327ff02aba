/*
 * The service runtime as an operator and systemd see it: each case starts
 * the real binaries (from RINGKV_BIN_DIR) as child processes on loopback,
 * with configs derived from the samples in deploy/config/ and a cluster
 * key made by `ringkv keygen`, and checks what comes out of them: sd_notify
 * messages on a socket standing in for systemd's, Health answers over the
 * sealed RPC port, the admin port's /healthz and /metrics, exit codes and
 * the messages on stderr.
 *
 * Ports are all 0 (the kernel picks), so cases never collide with each
 * other or with anything else on the machine; the runtime reports the
 * ports it bound in the STATUS= line it sends with READY=1, and that is
 * how the test learns them. Every wait is on an event with a bound: a
 * notify message, a child's exit, an RPC answer. No case sleeps.
 *
 * Each case has its own fixture: a temp dir holding the key, the config,
 * the notify socket and every child's stdout and stderr. Teardown kills
 * any child still running, prints the children's stderr and the notify
 * messages seen if the case failed, and removes the dir.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "crypto/keyfile.h"
#include "crypto/seal.h"
#include "proc_util.h"
#include "ringkv/v1/common.pb-c.h"
#include "rpc/client.h"
#include "service/health.h"

#define READY_TIMEOUT_MS 10000 /* the runtime's own bound on start-up */
#define EXIT_TIMEOUT_MS  5000  /* SIGTERM to exit; config errors to exit */
#define RPC_TIMEOUT_MS   3000
#define MAX_PROCS        8

/* The binary the cases that are about the runtime rather than a service
 * start; any of the five would do. */
#define SERVICE "storage"

static const char *const services[] = {"coordinator", "storage", "membership",
                                       "ratelimit", "idgen"};

struct fixture {
	char *dir;                  /* temp dir; removed by teardown */
	char key[PATH_MAX];         /* cluster key made by `ringkv keygen` */
	char config[PATH_MAX];      /* the config the case writes */
	rk_notify_t notify;         /* children's NOTIFY_SOCKET */
	rk_proc_t procs[MAX_PROCS]; /* every child the case started */
	size_t nprocs;              /* used entries of PROCS */
	bool passed;                /* set last by each case; else teardown
	                               prints what the children said */
};

/* ------------------------------------------------------- helpers */

static void path_in(const struct fixture *f, const char *name, char *out,
                    size_t len)
{
	int n = snprintf(out, len, "%s/%s", f->dir, name);
	assert_true(n > 0 && (size_t)n < len);
}

/* Starts the binary NAME with ARGS (NULL-ended, after argv[0]), stdout
 * and stderr into files in the temp dir named after its slot. */
static rk_proc_t *spawn(struct fixture *f, const char *name,
                        const char *const *args, const char *const *env,
                        bool watchdog_pid)
{
	assert_true(f->nprocs < MAX_PROCS);
	char bin[PATH_MAX], out[PATH_MAX], err[PATH_MAX], file[96];
	assert_int_equal(rk_proc_bin_path(name, bin, sizeof(bin)), 0);
	snprintf(file, sizeof(file), "%zu-%s.stdout", f->nprocs, name);
	path_in(f, file, out, sizeof(out));
	snprintf(file, sizeof(file), "%zu-%s.stderr", f->nprocs, name);
	path_in(f, file, err, sizeof(err));

	const char *argv[16] = {bin};
	size_t n = 1;
	for (size_t i = 0; args[i] != NULL; i++) {
		assert_true(n < 15);
		argv[n++] = args[i];
	}
	argv[n] = NULL;
	char notify_env[PATH_MAX + 16];
	snprintf(notify_env, sizeof(notify_env), "NOTIFY_SOCKET=%s",
	         f->notify.path);
	const char *envp[8] = {notify_env};
	n = 1;
	for (size_t i = 0; env != NULL && env[i] != NULL; i++) {
		assert_true(n < 7);
		envp[n++] = env[i];
	}
	envp[n] = NULL;

	rk_proc_opts_t o = {.argv = argv,
	                    .env = envp,
	                    .watchdog_pid = watchdog_pid,
	                    .stdout_path = out,
	                    .stderr_path = err};
	rk_proc_t *p = &f->procs[f->nprocs];
	assert_int_equal(rk_proc_spawn(p, &o), 0);
	f->nprocs++;
	return p;
}

/* Runs NAME ARGS to completion; returns its exit code. */
static int run(struct fixture *f, const char *name, const char *const *args)
{
	rk_proc_t *p = spawn(f, name, args, NULL, false);
	if (rk_proc_wait(p, EXIT_TIMEOUT_MS) != 1)
		fail_msg("%s did not exit within %d ms", name, EXIT_TIMEOUT_MS);
	return rk_proc_exit_code(p);
}

/* What P wrote to stderr (or stdout) so far. Caller frees. */
static char *output_of(const rk_proc_t *p, bool err)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s", p->stderr_path);
	if (!err) {
		char *dot = strrchr(path, '.');
		assert_non_null(dot);
		snprintf(dot, sizeof(path) - (size_t)(dot - path), ".stdout");
	}
	char *text = rk_proc_read_file(path, NULL);
	assert_non_null(text);
	return text;
}

static void assert_output_has(const rk_proc_t *p, bool err, const char *want)
{
	char *text = output_of(p, err);
	if (strstr(text, want) == NULL)
		fail_msg("%s of %s lacks \"%s\"", err ? "stderr" : "stdout",
		         p->name, want);
	free(text);
}

static void assert_output_lacks(const rk_proc_t *p, bool err,
                                const char *unwanted)
{
	char *text = output_of(p, err);
	if (strstr(text, unwanted) != NULL)
		fail_msg("%s of %s has \"%s\"", err ? "stderr" : "stdout",
		         p->name, unwanted);
	free(text);
}

/* Makes a new key at PATH with the real CLI. */
static void keygen(struct fixture *f, const char *path)
{
	const char *args[] = {"keygen", path, NULL};
	assert_int_equal(run(f, "ringkv", args), 0);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
}

/* Writes f->config from SERVICE's sample: its ports 0, its key ours, and
 * EXTRA (which wins over those) applied. */
static void write_config(struct fixture *f, const char *service,
                         const rk_cfg_edit_t *extra, size_t nextra)
{
	const rk_cfg_edit_t base[] = {
	    {"rpc.listen", "tcp://127.0.0.1:0", NULL},
	    {"admin.listen", "127.0.0.1:0", NULL},
	    {"security.cluster_key_file", f->key, NULL},
	};
	rk_cfg_edit_t edits[16];
	size_t n = 0;
	for (size_t i = 0; i < nextra; i++) {
		assert_true(n < 16);
		edits[n++] = extra[i];
	}
	for (size_t i = 0; i < sizeof(base) / sizeof(base[0]); i++) {
		bool overridden = false;
		for (size_t j = 0; j < nextra; j++)
			overridden |= strcmp(extra[j].key, base[i].key) == 0;
		if (!overridden) {
			assert_true(n < 16);
			edits[n++] = base[i];
		}
	}
	char sample[PATH_MAX];
	assert_int_equal(rk_proc_sample_config(service, sample, sizeof(sample)),
	                 0);
	/* Files a sample names relative to itself stay beside the sample,
	 * not beside the copy in the temp dir. */
	char rules[PATH_MAX];
	if (strcmp(service, "ratelimit") == 0) {
		assert_int_equal(rk_proc_sample_config("ratelimit-rules", rules,
		                                       sizeof(rules)),
		                 0);
		assert_true(n < 16);
		edits[n++] = (rk_cfg_edit_t){"ratelimit.rules_file", rules,
		                             NULL};
		assert_true(n < 16);
		edits[n++] = (rk_cfg_edit_t){"rpc.stream_listen",
		                             "stream://127.0.0.1:0", NULL};
	}
	assert_int_equal(rk_cfg_write(f->config, sample, edits, n), 0);
}

/* Starts ringkv-SERVICE with f->config. */
static rk_proc_t *start_service(struct fixture *f, const char *service,
                                const char *const *env, bool watchdog_pid)
{
	char name[64];
	snprintf(name, sizeof(name), "ringkv-%s", service);
	const char *args[] = {"--config", f->config, NULL};
	return spawn(f, name, args, env, watchdog_pid);
}

/* Waits for P's READY=1 and learns its ports from the STATUS= line that
 * comes with it. */
static void wait_ready(struct fixture *f, const rk_proc_t *p, int *rpc_port,
                       int *admin_port)
{
	char msg[1024];
	int r = rk_notify_wait(&f->notify, p->pid, "READY=1", READY_TIMEOUT_MS,
	                       msg, sizeof(msg));
	if (r != 1)
		fail_msg("no READY=1 from %s within %d ms", p->name,
		         READY_TIMEOUT_MS);
	if (rk_notify_ports(msg, rpc_port, admin_port) != 0)
		fail_msg("READY=1 came without the ports: \"%s\"", msg);
}

/* Reads everything already queued on the notify socket (into its log). */
static void drain_notify(struct fixture *f)
{
	char buf[1024];
	while (rk_notify_recv(&f->notify, buf, sizeof(buf), 0, NULL) > 0)
		;
}

/* Waits for P to exit; returns its exit code. */
static int wait_exit(rk_proc_t *p)
{
	if (rk_proc_wait(p, EXIT_TIMEOUT_MS) != 1)
		fail_msg("%s still runs after %d ms", p->name, EXIT_TIMEOUT_MS);
	return rk_proc_exit_code(p);
}

/* SIGTERM: STOPPING=1, then exit 0, both in time. */
static void stop_cleanly(struct fixture *f, rk_proc_t *p)
{
	assert_int_equal(rk_proc_signal(p, SIGTERM), 0);
	if (rk_notify_wait(&f->notify, p->pid, "STOPPING=1", EXIT_TIMEOUT_MS,
	                   NULL, 0) != 1)
		fail_msg("no STOPPING=1 from %s after SIGTERM", p->name);
	assert_int_equal(wait_exit(p), 0);
}

/* A client of 127.0.0.1:PORT sealing with the key in KEY_FILE (NULL:
 * unsealed). Free both with client_free(). */
struct client {
	rk_sealer_t *sealer;
	rk_rpc_client_t *rpc;
};

static void client_new(struct client *c, int port, const char *key_file)
{
	c->sealer = NULL;
	if (key_file != NULL) {
		uint8_t key[RK_SEAL_KEY_BYTES];
		char *err = NULL;
		if (rk_keyfile_read(key_file, key, &err) != RK_OK)
			fail_msg("key %s: %s", key_file, err ? err : "?");
		assert_int_equal(rk_sealer_new(key, 0, &c->sealer), RK_OK);
	}
	char url[64];
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
	rk_rpc_client_opts_t o = {.url = url,
	                          .sealer = c->sealer,
	                          .reconnect_min_ms = 10,
	                          .reconnect_max_ms = 200,
	                          .caller = "test_services"};
	assert_int_equal(rk_rpc_client_new(&o, &c->rpc), RK_OK);
}

static void client_free(struct client *c)
{
	rk_rpc_client_free(c->rpc);
	rk_sealer_free(c->sealer);
}

/* rk_health_probe against PORT with KEY_FILE; DETAIL gets the words. */
static rk_status_t probe(int port, const char *key_file, char *detail,
                         size_t len)
{
	struct client c;
	client_new(&c, port, key_file);
	rk_status_t st = rk_health_probe(c.rpc, RPC_TIMEOUT_MS, detail, len);
	client_free(&c);
	return st;
}

static void assert_serving(int port, const char *key_file)
{
	char detail[256];
	rk_status_t st = probe(port, key_file, detail, sizeof(detail));
	if (st != RK_OK)
		fail_msg("Health.Check on port %d: %s (%s)", port,
		         rk_status_name(st), detail);
}

/* ------------------------------------------------------- fixture */

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (f == NULL)
		return -1;
	f->notify.fd = -1;
	*state = f;
	if (rk_proc_bin_dir() == NULL || rk_proc_source_dir() == NULL) {
		fprintf(stderr, "RINGKV_BIN_DIR and RINGKV_SOURCE_DIR must be "
		                "set (ctest sets them)\n");
		return -1;
	}
	f->dir = rk_proc_tmpdir("svc");
	if (f->dir == NULL) {
		perror("mkdtemp");
		return -1;
	}
	snprintf(f->key, sizeof(f->key), "%s/cluster.key", f->dir);
	snprintf(f->config, sizeof(f->config), "%s/service.yaml", f->dir);
	if (rk_notify_open(&f->notify, f->dir, "notify.sock") != 0) {
		perror("notify socket");
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	if (f == NULL)
		return 0;
	for (size_t i = 0; i < f->nprocs; i++)
		rk_proc_kill(&f->procs[i]);
	if (!f->passed) {
		for (size_t i = 0; i < f->nprocs; i++)
			rk_proc_dump(&f->procs[i], stderr);
		if (f->notify.fd >= 0)
			drain_notify(f);
		fprintf(stderr, "---- notify messages:\n%.*s---- end\n",
		        (int)f->notify.log_len, f->notify.log);
	}
	rk_notify_close(&f->notify);
	int rc = 0;
	if (f->dir != NULL && rk_proc_rmtree(f->dir) != 0) {
		fprintf(stderr, "cannot remove %s\n", f->dir);
		rc = -1;
	}
	free(f->dir);
	free(f);
	return rc;
}

/* ----------------------------------------------- every service */

/* The life of one binary started from its sample config: READY=1 only
 * once it answers, Health SERVING right then, the admin port up, and a
 * clean stop on SIGTERM. */
static void serves_from_sample_and_stops_on_sigterm(struct fixture *f,
                                                    const char *service)
{
	keygen(f, f->key);
	write_config(f, service, NULL, 0);
	rk_proc_t *p = start_service(f, service, NULL, false);
	int rpc_port, admin_port;
	wait_ready(f, p, &rpc_port, &admin_port);

	/* Right as READY=1 arrives, with nothing waited for in between. */
	assert_serving(rpc_port, f->key);

	/* And it is the service we started. */
	struct client c;
	client_new(&c, rpc_port, f->key);
	Ringkv__V1__HealthCheckRequest req =
	    RINGKV__V1__HEALTH_CHECK_REQUEST__INIT;
	rk_rpc_result_t res;
	assert_int_equal(rk_rpc_call(c.rpc, rk_health_check_method(), &req.base,
	                             RPC_TIMEOUT_MS, &res),
	                 RK_OK);
	const Ringkv__V1__HealthCheckResponse *resp =
	    (const Ringkv__V1__HealthCheckResponse *)res.response;
	assert_true(resp->has_state);
	assert_int_equal(resp->state, RINGKV__V1__SERVING_STATE__SERVING);
	assert_string_equal(resp->service, service);
	assert_string_equal(resp->node_id, "node-1");
	assert_string_equal(resp->version, RINGKV_VERSION);
	rk_rpc_result_clear(&res);
	client_free(&c);

	char *body = NULL;
	assert_int_equal(
	    rk_http_get(admin_port, "/healthz", RPC_TIMEOUT_MS, &body), 200);
	free(body);
	assert_int_equal(
	    rk_http_get(admin_port, "/metrics", RPC_TIMEOUT_MS, &body), 200);
	char build_info[128];
	snprintf(build_info, sizeof(build_info),
	         "ringkv_build_info{service=\"%s\",version=\"%s\"} 1", service,
	         RINGKV_VERSION);
	const char *const wanted[] = {
	    "ringkv_rpc_server_requests_total{method=\"Health.Check\","
	    "code=\"OK\"}",
	    build_info,
	};
	for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++)
		if (strstr(body, wanted[i]) == NULL)
			fail_msg("/metrics lacks %s:\n%s", wanted[i], body);
	free(body);

	stop_cleanly(f, p);
	/* Without WATCHDOG_USEC there is no watchdog. */
	assert_false(rk_notify_seen(&f->notify, "WATCHDOG=1"));
	assert_output_has(p, true, "stopped");
	f->passed = true;
}

#define SERVICE_CASE(svc)                                                      \
	static void test_##svc##_serves_from_sample_and_stops_on_sigterm(      \
	    void **state)                                                      \
	{                                                                      \
		serves_from_sample_and_stops_on_sigterm(*state, #svc);         \
	}
SERVICE_CASE(coordinator)
SERVICE_CASE(storage)
SERVICE_CASE(membership)
SERVICE_CASE(ratelimit)
SERVICE_CASE(idgen)

/* Every binary the build makes has a sample config, and the sample is
 * valid as shipped (bar the key, which the sample leaves to the operator). */
static void test_every_sample_config_passes_check_config(void **state)
{
	struct fixture *f = *state;
	keygen(f, f->key);
	for (size_t i = 0; i < sizeof(services) / sizeof(services[0]); i++) {
		write_config(f, services[i], NULL, 0);
		char name[64];
		snprintf(name, sizeof(name), "ringkv-%s", services[i]);
		const char *args[] = {"--config", f->config, "--check-config",
		                      NULL};
		assert_int_equal(run(f, name, args), 0);
	}
	f->passed = true;
}

/* ------------------------------------------------ readiness */

/* Starts SERVICE with EDIT, which makes a port unusable, and expects exit
 * 1 without a READY=1. */
static void refuses_port(struct fixture *f, const rk_cfg_edit_t *edit,
                         const char *why)
{
	keygen(f, f->key);
	write_config(f, SERVICE, edit, 1);
	rk_proc_t *p = start_service(f, SERVICE, NULL, false);
	assert_int_equal(wait_exit(p), 1);
	/* It has exited: whatever it sent is queued already. */
	drain_notify(f);
	assert_false(rk_notify_seen(&f->notify, "READY=1"));
	assert_output_has(p, true, why);
}

static void test_ready_never_sent_when_rpc_port_is_taken(void **state)
{
	struct fixture *f = *state;
	int port;
	int fd = rk_tcp_listener(&port);
	assert_true(fd >= 0);
	char listen[64];
	snprintf(listen, sizeof(listen), "tcp://127.0.0.1:%d", port);
	rk_cfg_edit_t edit = {"rpc.listen", listen, NULL};
	refuses_port(f, &edit, "rpc:");
	close(fd);
	f->passed = true;
}

static void test_ready_never_sent_when_admin_port_is_taken(void **state)
{
	struct fixture *f = *state;
	int port;
	int fd = rk_tcp_listener(&port);
	assert_true(fd >= 0);
	char listen[64];
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	rk_cfg_edit_t edit = {"admin.listen", listen, NULL};
	refuses_port(f, &edit, "admin port");
	close(fd);
	f->passed = true;
}

/* ------------------------------------------------ config errors */

/* Starts SERVICE with f->config (optionally --check-config), expects exit
 * 2 with WANT on stderr and nothing on the notify socket. */
static void rejects_config(struct fixture *f, bool check_only, const char *want)
{
	const char *args[] = {"--config", f->config,
	                      check_only ? "--check-config" : NULL, NULL};
	char name[64];
	snprintf(name, sizeof(name), "ringkv-%s", SERVICE);
	rk_proc_t *p = spawn(f, name, args, NULL, false);
	assert_int_equal(wait_exit(p), 2);
	assert_output_has(p, true, want);
	drain_notify(f);
	assert_false(rk_notify_seen(&f->notify, "READY=1"));
}

static void test_unknown_field_exits_2_naming_file_and_line(void **state)
{
	struct fixture *f = *state;
	keygen(f, f->key);
	rk_cfg_edit_t typo = {"rpc.workers", NULL, "wrokers"};
	write_config(f, SERVICE, &typo, 1);
	int line = rk_proc_line_of(f->config, "wrokers:");
	assert_true(line > 0);
	char want[PATH_MAX + 64];
	snprintf(want, sizeof(want), "%s:%d: unknown field rpc.wrokers",
	         f->config, line);
	rejects_config(f, false, want);
	rejects_config(f, true, want);
	/* Config errors are found before anything starts. */
	assert_int_equal(f->notify.log_len, 0);
	f->passed = true;
}

static void test_missing_key_file_exits_2_naming_it(void **state)
{
	struct fixture *f = *state;
	char absent[PATH_MAX];
	path_in(f, "absent.key", absent, sizeof(absent));
	rk_cfg_edit_t key = {"security.cluster_key_file", absent, NULL};
	write_config(f, SERVICE, &key, 1);
	rejects_config(f, false, absent);
	/* --check-config reads the key too: a key the service could not
	 * use fails the check, not the start. */
	rejects_config(f, true, absent);
	f->passed = true;
}

static void
test_key_file_readable_by_others_exits_2_with_chmod_hint(void **state)
{
	struct fixture *f = *state;
	keygen(f, f->key);
	assert_int_equal(chmod(f->key, 0644), 0);
	write_config(f, SERVICE, NULL, 0);
	char want[PATH_MAX + 16];
	snprintf(want, sizeof(want), "chmod 600 %s", f->key);
	rejects_config(f, false, want);
	rejects_config(f, true, want);
	f->passed = true;
}

static void test_no_key_without_allow_unsealed_exits_2(void **state)
{
	struct fixture *f = *state;
	rk_cfg_edit_t drop = {"security.cluster_key_file", NULL, NULL};
	write_config(f, SERVICE, &drop, 1);
	int line = rk_proc_line_of(f->config, "security:");
	assert_true(line > 0);
	char want[PATH_MAX + 64];
	snprintf(want, sizeof(want),
	         "%s:%d: field security: set "
	         "cluster_key_file",
	         f->config, line);
	rejects_config(f, false, want);
	assert_output_has(&f->procs[f->nprocs - 1], true, "allow_unsealed");
	f->passed = true;
}

static void
test_check_config_on_good_config_exits_0_without_starting(void **state)
{
	struct fixture *f = *state;
	keygen(f, f->key);
	/* Were it to start, the taken port would make it exit 1. */
	int port;
	int fd = rk_tcp_listener(&port);
	assert_true(fd >= 0);
	char listen[64];
	snprintf(listen, sizeof(listen), "tcp://127.0.0.1:%d", port);
	rk_cfg_edit_t edit = {"rpc.listen", listen, NULL};
	write_config(f, SERVICE, &edit, 1);
	const char *args[] = {"--config", f->config, "--check-config", NULL};
	char name[64];
	snprintf(name, sizeof(name), "ringkv-%s", SERVICE);
	rk_proc_t *p = spawn(f, name, args, NULL, false);
	assert_int_equal(wait_exit(p), 0);
	close(fd);
	char want[PATH_MAX + 8];
	snprintf(want, sizeof(want), "%s: ok", f->config);
	assert_output_has(p, false, want);
	drain_notify(f);
	assert_int_equal(f->notify.log_len, 0);
	f->passed = true;
}

/* ------------------------------------------------ reload */

/* Sends SIGHUP and waits for the reload to finish: RELOADING=1, then
 * READY=1 again. */
static void reload(struct fixture *f, rk_proc_t *p)
{
	assert_int_equal(rk_proc_signal(p, SIGHUP), 0);
	if (rk_notify_wait(&f->notify, p->pid, "RELOADING=1", EXIT_TIMEOUT_MS,
	                   NULL, 0) != 1)
		fail_msg("no RELOADING=1 after SIGHUP");
	if (rk_notify_wait(&f->notify, p->pid, "READY=1", EXIT_TIMEOUT_MS, NULL,
	                   0) != 1)
		fail_msg("no READY=1 after RELOADING=1");
}

static void test_sighup_applies_new_log_level_and_keeps_serving(void **state)
{
	struct fixture *f = *state;
	keygen(f, f->key);
	rk_cfg_edit_t warn = {"log.level", "warn", NULL};
	write_config(f, SERVICE, &warn, 1);
	rk_proc_t *p = start_service(f, SERVICE, NULL, false);
	int rpc_port, admin_port;
	wait_ready(f, p, &rpc_port, &admin_port);
	/* At warn, the info line "ready: ..." was not logged. */
	assert_output_lacks(p, true, "ready:");

	rk_cfg_edit_t info = {"log.level", "info", NULL};
	write_config(f, SERVICE, &info, 1);
	reload(f, p);
	/* "reloaded" is an info line: its presence shows the new level. */
	char want[PATH_MAX + 16];
	snprintf(want, sizeof(want), "reloaded %s", f->config);
	assert_output_has(p, true, want);
	assert_serving(rpc_port, f->key);
	stop_cleanly(f, p);
	f->passed = true;
}

static void test_sighup_with_broken_config_keeps_running_one(void **state)
{
	struct fixture *f = *state;
	keygen(f, f->key);
	write_config(f, SERVICE, NULL, 0);
	rk_proc_t *p = start_service(f, SERVICE, NULL, false);
	int rpc_port, admin_port;
	wait_ready(f, p, &rpc_port, &admin_port);

	/* A typo beside an otherwise valid change: none of it may apply,
	 * the log level included (else the rejection itself, a warning,
	 * would go unlogged at "error"). */
	const rk_cfg_edit_t broken[] = {
	    {"rpc.workers", NULL, "wrokers"},
	    {"log.level", "error", NULL},
	};
	write_config(f, SERVICE, broken, 2);
	int line = rk_proc_line_of(f->config, "wrokers:");
	assert_true(line > 0);
	reload(f, p);
	char want[PATH_MAX + 64];
	snprintf(want, sizeof(want), "%s:%d: unknown field rpc.wrokers",
	         f->config, line);
	assert_output_has(p, true, want);
	assert_output_has(p, true, "config rejected");
	assert_serving(rpc_port, f->key);

	/* Not YAML at all: rejected the same way. */
	assert_int_equal(rk_proc_write_file(f->config, "rpc: [unclosed\n"), 0);
	reload(f, p);
	char *text = output_of(p, true);
	const char *first = strstr(text, "config rejected");
	assert_non_null(first);
	if (strstr(first + 1, "config rejected") == NULL)
		fail_msg("second rejection not logged:\n%s", text);
	free(text);
	assert_serving(rpc_port, f->key);

	stop_cleanly(f, p);
	/* Still at info: the stop was logged. */
	assert_output_has(p, true, "stopped");
	f->passed = true;
}

/* ------------------------------------------------ watchdog */

static void test_watchdog_pings_repeatedly_while_serving(void **state)
{
	struct fixture *f = *state;
	keygen(f, f->key);
	write_config(f, SERVICE, NULL, 0);
	const char *env[] = {"WATCHDOG_USEC=200000", NULL};
	rk_proc_t *p = start_service(f, SERVICE, env, true);
	int rpc_port, admin_port;
	wait_ready(f, p, &rpc_port, &admin_port);
	/* The runtime pings at half the interval (100 ms); allow a lot more
	 * for a loaded machine, but each must come. */
	for (int i = 0; i < 5; i++)
		if (rk_notify_wait(&f->notify, p->pid, "WATCHDOG=1", 2000, NULL,
		                   0) != 1)
			fail_msg("WATCHDOG=1 number %d did not come", i + 1);
	assert_serving(rpc_port, f->key);
	stop_cleanly(f, p);
	f->passed = true;
}

/* ------------------------------------------------ the key */

static void test_wrong_key_gets_unauthenticated(void **state)
{
	struct fixture *f = *state;
	keygen(f, f->key);
	char other[PATH_MAX];
	path_in(f, "other.key", other, sizeof(other));
	keygen(f, other);
	write_config(f, SERVICE, NULL, 0);
	rk_proc_t *p = start_service(f, SERVICE, NULL, false);
	int rpc_port, admin_port;
	wait_ready(f, p, &rpc_port, &admin_port);

	char detail[256];
	assert_int_equal(probe(rpc_port, other, detail, sizeof(detail)),
	                 RK_UNAUTHENTICATED);
	/* No key at all is no better. */
	assert_int_equal(probe(rpc_port, NULL, detail, sizeof(detail)),
	                 RK_UNAUTHENTICATED);
	/* And the right key still works. */
	assert_serving(rpc_port, f->key);
	assert_output_has(p, true, "refused request: UNAUTHENTICATED");
	stop_cleanly(f, p);
	f->passed = true;
}

/* ------------------------------------------------ the CLI */

static void
test_health_cli_exits_0_with_right_key_and_1_with_wrong(void **state)
{
	struct fixture *f = *state;
	keygen(f, f->key);
	char other[PATH_MAX];
	path_in(f, "other.key", other, sizeof(other));
	keygen(f, other);
	write_config(f, SERVICE, NULL, 0);
	rk_proc_t *svc = start_service(f, SERVICE, NULL, false);
	int rpc_port, admin_port;
	wait_ready(f, svc, &rpc_port, &admin_port);
	char url[64];
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", rpc_port);

	const char *right[] = {"health", "--key", f->key, "--timeout",
	                       "3000",   url,     NULL};
	assert_int_equal(run(f, "ringkv", right), 0);
	char want[128];
	snprintf(want, sizeof(want), "%s: serving\n", url);
	char *out = output_of(&f->procs[f->nprocs - 1], false);
	assert_string_equal(out, want);
	free(out);

	const char *wrong[] = {"health", "--key", other, "--timeout",
	                       "3000",   url,     NULL};
	assert_int_equal(run(f, "ringkv", wrong), 1);
	assert_output_has(&f->procs[f->nprocs - 1], false, "UNAUTHENTICATED");

	stop_cleanly(f, svc);
	f->passed = true;
}

int main(void)
{
#define CASE(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
	    CASE(test_coordinator_serves_from_sample_and_stops_on_sigterm),
	    CASE(test_storage_serves_from_sample_and_stops_on_sigterm),
	    CASE(test_membership_serves_from_sample_and_stops_on_sigterm),
	    CASE(test_ratelimit_serves_from_sample_and_stops_on_sigterm),
	    CASE(test_idgen_serves_from_sample_and_stops_on_sigterm),
	    CASE(test_every_sample_config_passes_check_config),
	    CASE(test_ready_never_sent_when_rpc_port_is_taken),
	    CASE(test_ready_never_sent_when_admin_port_is_taken),
	    CASE(test_unknown_field_exits_2_naming_file_and_line),
	    CASE(test_missing_key_file_exits_2_naming_it),
	    CASE(test_key_file_readable_by_others_exits_2_with_chmod_hint),
	    CASE(test_no_key_without_allow_unsealed_exits_2),
	    CASE(test_check_config_on_good_config_exits_0_without_starting),
	    CASE(test_sighup_applies_new_log_level_and_keeps_serving),
	    CASE(test_sighup_with_broken_config_keeps_running_one),
	    CASE(test_watchdog_pings_repeatedly_while_serving),
	    CASE(test_wrong_key_gets_unauthenticated),
	    CASE(test_health_cli_exits_0_with_right_key_and_1_with_wrong),
	};
#undef CASE
	return cmocka_run_group_tests(tests, NULL, NULL);
}
