/*
 * bench-ratelimit: decisions per second and latency of ringkv-ratelimit
 * through the RPC layer, and of Redis 7 running the fixed-window Lua
 * script, under the same loads, in one run.
 *
 * ringkv: the real binary, started here on a free loopback port with
 * frames sealed by a fresh cluster key (as in production), the sliding
 * window counter on every key. Callers use libringkv, one connection
 * each, one call in flight each:
 *	1 and 16 callers x one hot key and 1,000,000 distinct keys x
 *	single checks and batches of 100 (CheckBatch).
 * Redis: redis-server started here on a free loopback port (no
 * persistence), the script (INCR, then EXPIRE on the first hit of a
 * window, via EVALSHA) loaded once; hiredis clients:
 *	1 client one request at a time, 16 clients one at a time, 16 clients
 *	pipelined 16 deep, each with the hot key and 1,000,000 keys.
 * Prints decisions/s and p50/p99 per call (a batch or a pipeline of 16
 * is one call), then the targets: single checks with 16 callers
 * >= 0.8x Redis with 16 clients; batches >= 1.0x Redis pipelined.
 *
 * ringkv is called over its stream transport (plain TCP, lib/rpc
 * stream_server.h); one row shows single checks over nng for comparison.
 * Every load runs once per round, ringkv and Redis interleaved, and the
 * median round is shown.
 *
 * usage: bench-ratelimit PATH/TO/ringkv-ratelimit [seconds-per-run
 *        [rounds]]   (default 3 s, 3 rounds)
 * (bench/ratelimit/run.sh installs Redis and hiredis, builds, runs this.)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ringkv/client.h>
#include <ringkv/ratelimit.h>

#include "core/clock.h"
#include "crypto/keyfile.h"

#ifdef RK_HAVE_HIREDIS
#include <hiredis/hiredis.h>
#endif

#define MAX_THREADS 16
#define MAX_SAMPLES (1u << 21)
#define NKEYS       1000000
#define BATCH       100
#define PIPE        16
#define MAX_ROUNDS  9

extern char **environ;

static double run_seconds = 3;
static char tmpdir[256];

/* ------------------------------------------------------------ common */

typedef struct worker {
	pthread_t th;
	int id;             /* 0..n-1 */
	bool many_keys;     /* 1,000,000 keys, else the hot one */
	uint64_t decisions; /* done */
	uint64_t errors;    /* calls that failed */
	uint32_t *lat_us;   /* per call */
	size_t nlat;
	uint64_t rng; /* xorshift state */
	void *ctx;    /* run-specific */
} worker_t;

typedef struct result {
	double per_s, p50, p99;
	uint64_t errors;
} result_t;

static atomic_bool go, stop_flag;

static uint32_t next_key(worker_t *w)
{
	w->rng ^= w->rng << 13;
	w->rng ^= w->rng >> 7;
	w->rng ^= w->rng << 17;
	return (uint32_t)(w->rng % NKEYS);
}

static void note(worker_t *w, uint64_t t0)
{
	if (w->nlat < MAX_SAMPLES)
		w->lat_us[w->nlat++] =
		    (uint32_t)((rk_clock_mono_ns() - t0) / 1000);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Runs N workers of FN for the run time; fills R. */
static void run(int n, bool many, void *(*fn)(void *), void **ctx, result_t *r)
{
	worker_t w[MAX_THREADS];
	memset(w, 0, sizeof(w));
	atomic_store(&go, false);
	atomic_store(&stop_flag, false);
	for (int i = 0; i < n; i++) {
		w[i].id = i;
		w[i].many_keys = many;
		w[i].rng = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1);
		w[i].lat_us = malloc(MAX_SAMPLES * sizeof(uint32_t));
		w[i].ctx = ctx[i];
		pthread_create(&w[i].th, NULL, fn, &w[i]);
	}
	uint64_t t0 = rk_clock_mono_ns();
	atomic_store(&go, true);
	usleep((useconds_t)(run_seconds * 1e6));
	atomic_store(&stop_flag, true);
	uint64_t total = 0, errs = 0;
	size_t nl = 0;
	for (int i = 0; i < n; i++) {
		pthread_join(w[i].th, NULL);
		total += w[i].decisions;
		errs += w[i].errors;
		nl += w[i].nlat;
	}
	double secs = (double)(rk_clock_mono_ns() - t0) / 1e9;
	uint32_t *all = malloc((nl ? nl : 1) * sizeof(uint32_t));
	size_t k = 0;
	for (int i = 0; i < n; i++) {
		memcpy(all + k, w[i].lat_us, w[i].nlat * sizeof(uint32_t));
		k += w[i].nlat;
		free(w[i].lat_us);
	}
	qsort(all, nl, sizeof(uint32_t), cmp_u32);
	r->per_s = (double)total / secs;
	r->p50 = nl ? all[nl / 2] : 0;
	r->p99 = nl ? all[(size_t)((double)nl * 0.99)] : 0;
	r->errors = errs;
	free(all);
}

static void print_row(const char *who, const char *load, int callers,
                      const char *keys, const result_t *r)
{
	printf("%-8s %-22s %3d  %-10s %12.0f %9.0f %9.0f %7llu\n", who, load,
	       callers, keys, r->per_s, r->p50, r->p99,
	       (unsigned long long)r->errors);
	fflush(stdout);
}

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
		perror("free port");
		exit(1);
	}
	close(fd);
	return ntohs(a.sin_port);
}

static pid_t spawn(const char *const *argv, const char *log)
{
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, log,
	                                 O_WRONLY | O_CREAT | O_TRUNC, 0644);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	pid_t pid;
	int rv =
	    posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rv != 0) {
		fprintf(stderr, "cannot start %s: %s\n", argv[0], strerror(rv));
		return -1;
	}
	return pid;
}

static void reap(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

/* ------------------------------------------------------------ ringkv */

static char rl_url[64], rl_stream_url[64], key_file[300];

static ringkv_conn_t *rl_connect(const char *url)
{
	ringkv_conn_opts_t co = {.url = url,
	                         .key_file = key_file,
	                         .timeout_ms = 5000,
	                         .caller = "bench"};
	ringkv_conn_t *c = NULL;
	ringkv_error_t err;
	if (ringkv_connect(&co, &c, &err) != RK_OK) {
		fprintf(stderr, "connect: %s\n", err.message);
		exit(1);
	}
	return c;
}

static void *rl_single(void *arg)
{
	worker_t *w = arg;
	ringkv_conn_t *c = w->ctx;
	char val[16];
	ringkv_rl_entry_t e = {"k", val};
	ringkv_rl_descriptor_t d = {&e, 1};
	ringkv_rl_check_t chk = {.domain = "bench",
	                         .descriptors = &d,
	                         .n_descriptors = 1,
	                         .hits = 1};
	while (!atomic_load(&go))
		;
	while (!atomic_load(&stop_flag)) {
		if (w->many_keys)
			snprintf(val, sizeof(val), "u%u", next_key(w));
		else
			snprintf(val, sizeof(val), "hot");
		ringkv_rl_result_t r;
		uint64_t t0 = rk_clock_mono_ns();
		if (ringkv_ratelimit_check(c, &chk, &r, NULL) == RK_OK) {
			w->decisions++;
			ringkv_rl_result_clear(&r);
		} else {
			w->errors++;
		}
		note(w, t0);
	}
	return NULL;
}

static void *rl_batch(void *arg)
{
	worker_t *w = arg;
	ringkv_conn_t *c = w->ctx;
	static __thread char vals[BATCH][16];
	ringkv_rl_entry_t e[BATCH];
	ringkv_rl_descriptor_t d[BATCH];
	ringkv_rl_check_t chk[BATCH];
	ringkv_rl_result_t res[BATCH];
	rk_status_t sts[BATCH];
	for (int i = 0; i < BATCH; i++) {
		e[i] = (ringkv_rl_entry_t){"k", vals[i]};
		d[i] = (ringkv_rl_descriptor_t){&e[i], 1};
		chk[i] = (ringkv_rl_check_t){.domain = "bench",
		                             .descriptors = &d[i],
		                             .n_descriptors = 1,
		                             .hits = 1};
	}
	while (!atomic_load(&go))
		;
	while (!atomic_load(&stop_flag)) {
		for (int i = 0; i < BATCH; i++) {
			if (w->many_keys)
				snprintf(vals[i], 16, "u%u", next_key(w));
			else
				snprintf(vals[i], 16, "hot");
		}
		uint64_t t0 = rk_clock_mono_ns();
		if (ringkv_ratelimit_check_batch(c, chk, BATCH, res, sts,
		                                 NULL) == RK_OK) {
			for (int i = 0; i < BATCH; i++) {
				if (sts[i] == RK_OK)
					w->decisions++;
				else
					w->errors++;
				ringkv_rl_result_clear(&res[i]);
			}
		} else {
			w->errors += BATCH;
		}
		note(w, t0);
	}
	return NULL;
}

static pid_t rl_start(const char *bin)
{
	snprintf(key_file, sizeof(key_file), "%s/cluster.key", tmpdir);
	char *err = NULL;
	if (rk_keyfile_generate(key_file, true, &err) != RK_OK) {
		fprintf(stderr, "key: %s\n", err ? err : "?");
		exit(1);
	}
	char path[400], rules[400], log[400];
	snprintf(rules, sizeof(rules), "%s/rules.yaml", tmpdir);
	snprintf(path, sizeof(path), "%s/ratelimit.yaml", tmpdir);
	snprintf(log, sizeof(log), "%s/ratelimit.log", tmpdir);
	FILE *f = fopen(rules, "w");
	fprintf(f, "domain: bench\ndescriptors:\n  - key: k\n    rate_limit: "
	           "{unit: second, requests_per_unit: 1000000}\n");
	fclose(f);
	int port = free_port();
	snprintf(rl_url, sizeof(rl_url), "tcp://127.0.0.1:%d", port);
	snprintf(rl_stream_url, sizeof(rl_stream_url), "stream://127.0.0.1:%d",
	         free_port());
	f = fopen(path, "w");
	fprintf(f,
	        "rpc:\n  listen: %s\n  stream_listen: %s\n  workers: 2\n"
	        "admin:\n  listen: "
	        "127.0.0.1:0\nsecurity:\n  cluster_key_file: %s\nlog:\n  "
	        "level: warn\nratelimit:\n  rules_file: %s\n  max_keys: "
	        "4194304\n  max_batch: 1000\n",
	        rl_url, rl_stream_url, key_file, rules);
	fclose(f);
	const char *argv[] = {bin, "--config", path, NULL};
	pid_t pid = spawn(argv, log);
	/* ready when it answers Health over the real socket */
	ringkv_conn_t *c = rl_connect(rl_stream_url);
	ringkv_error_t e;
	uint64_t until = rk_clock_mono_ms() + 10000;
	while (ringkv_health(c, &e) != RK_OK) {
		if (rk_clock_mono_ms() > until) {
			fprintf(stderr,
			        "ringkv-ratelimit did not answer: %s "
			        "(log in %s)\n",
			        e.message, log);
			exit(1);
		}
	}
	ringkv_close(c);
	return pid;
}

/* ------------------------------------------------------------ redis */

#ifdef RK_HAVE_HIREDIS
static int redis_port;
static char redis_sha[64];

static const char *fixed_window_lua =
    "local c = redis.call('INCR', KEYS[1]) "
    "if c == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end "
    "if c > tonumber(ARGV[1]) then return 0 end return 1";

static redisContext *redis_connect(void)
{
	redisContext *c = redisConnect("127.0.0.1", redis_port);
	if (c == NULL || c->err)
		return NULL;
	return c;
}

static pid_t redis_start(void)
{
	redis_port = free_port();
	char port[16], log[400];
	snprintf(port, sizeof(port), "%d", redis_port);
	snprintf(log, sizeof(log), "%s/redis.log", tmpdir);
	const char *argv[] = {"/usr/bin/redis-server",
	                      "--port",
	                      port,
	                      "--bind",
	                      "127.0.0.1",
	                      "--save",
	                      "",
	                      "--appendonly",
	                      "no",
	                      "--daemonize",
	                      "no",
	                      "--dir",
	                      tmpdir,
	                      NULL};
	pid_t pid = spawn(argv, log);
	if (pid < 0)
		return -1;
	uint64_t until = rk_clock_mono_ms() + 10000;
	for (;;) {
		redisContext *c = redis_connect();
		if (c != NULL) {
			redisReply *r =
			    redisCommand(c, "SCRIPT LOAD %s", fixed_window_lua);
			if (r != NULL && r->type == REDIS_REPLY_STRING) {
				snprintf(redis_sha, sizeof(redis_sha), "%s",
				         r->str);
				freeReplyObject(r);
				redisFree(c);
				return pid;
			}
			if (r)
				freeReplyObject(r);
			redisFree(c);
		}
		if (rk_clock_mono_ms() > until) {
			fprintf(stderr,
			        "redis-server did not answer (log %s)\n", log);
			reap(pid);
			return -1;
		}
		usleep(10000); /* redis has no readiness signal to wait on */
	}
}

static void redis_key(worker_t *w, char *out, size_t len)
{
	uint64_t win = rk_clock_unix_ms() / 1000;
	if (w->many_keys)
		snprintf(out, len, "rl:u%u:%llu", next_key(w),
		         (unsigned long long)win);
	else
		snprintf(out, len, "rl:hot:%llu", (unsigned long long)win);
}

static void *redis_worker(void *arg)
{
	worker_t *w = arg;
	redisContext *c = w->ctx;
	while (!atomic_load(&go))
		;
	while (!atomic_load(&stop_flag)) {
		char key[64];
		redis_key(w, key, sizeof(key));
		uint64_t t0 = rk_clock_mono_ns();
		redisReply *r = redisCommand(c, "EVALSHA %s 1 %s 1000000 2",
		                             redis_sha, key);
		if (r != NULL && r->type == REDIS_REPLY_INTEGER)
			w->decisions++;
		else
			w->errors++;
		if (r)
			freeReplyObject(r);
		note(w, t0);
	}
	return NULL;
}

static void *redis_pipelined(void *arg)
{
	worker_t *w = arg;
	redisContext *c = w->ctx;
	while (!atomic_load(&go))
		;
	while (!atomic_load(&stop_flag)) {
		uint64_t t0 = rk_clock_mono_ns();
		for (int i = 0; i < PIPE; i++) {
			char key[64];
			redis_key(w, key, sizeof(key));
			redisAppendCommand(c, "EVALSHA %s 1 %s 1000000 2",
			                   redis_sha, key);
		}
		for (int i = 0; i < PIPE; i++) {
			redisReply *r = NULL;
			if (redisGetReply(c, (void **)&r) == REDIS_OK && r &&
			    r->type == REDIS_REPLY_INTEGER)
				w->decisions++;
			else
				w->errors++;
			if (r)
				freeReplyObject(r);
		}
		note(w, t0);
	}
	return NULL;
}
#endif

/* ------------------------------------------------------------ cases */

/* One load: who serves it, how, and where its figures go. */
typedef struct bench_case {
	const char *who;        /* row label */
	const char *load;       /* row label */
	int callers;            /* threads, one call in flight each */
	bool many_keys;         /* 1,000,000 keys, else the hot one */
	int kind;               /* see case_run */
	result_t r[MAX_ROUNDS]; /* per round */
} bench_case_t;

enum { K_CHECK_STREAM, K_BATCH_STREAM, K_CHECK_NNG, K_REDIS, K_REDIS_PIPE };

/* Runs C once, as round K. */
static void case_run(bench_case_t *c, int k)
{
	void *ctx[MAX_THREADS];
	int n = c->callers;
	bool redis = c->kind == K_REDIS || c->kind == K_REDIS_PIPE;
	for (int i = 0; i < n; i++) {
#ifdef RK_HAVE_HIREDIS
		if (redis) {
			ctx[i] = redis_connect();
			continue;
		}
#endif
		ctx[i] =
		    rl_connect(c->kind == K_CHECK_NNG ? rl_url : rl_stream_url);
	}
	void *(*fn)(void *) = c->kind == K_BATCH_STREAM ? rl_batch : rl_single;
#ifdef RK_HAVE_HIREDIS
	if (redis)
		fn = c->kind == K_REDIS_PIPE ? redis_pipelined : redis_worker;
#endif
	run(n, c->many_keys, fn, ctx, &c->r[k]);
	for (int i = 0; i < n; i++) {
#ifdef RK_HAVE_HIREDIS
		if (redis) {
			redisFree(ctx[i]);
			continue;
		}
#endif
		ringkv_close(ctx[i]);
	}
}

static int cmp_rate(const void *a, const void *b)
{
	double x = ((const result_t *)a)->per_s,
	       y = ((const result_t *)b)->per_s;
	return x < y ? -1 : x > y;
}

/* The round with the median throughput. */
static result_t case_median(const bench_case_t *c, int rounds)
{
	result_t sorted[MAX_ROUNDS];
	memcpy(sorted, c->r, sizeof(result_t) * (size_t)rounds);
	qsort(sorted, (size_t)rounds, sizeof(result_t), cmp_rate);
	return sorted[rounds / 2];
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr,
		        "usage: bench-ratelimit PATH/TO/ringkv-ratelimit "
		        "[seconds-per-run [rounds]]\n");
		return 2;
	}
	if (argc > 2)
		run_seconds = atof(argv[2]);
	int rounds = argc > 3 ? atoi(argv[3]) : 3;
	if (run_seconds <= 0 || rounds < 1 || rounds > MAX_ROUNDS) {
		fprintf(stderr, "bad seconds or rounds (1..%d)\n", MAX_ROUNDS);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/bench-rl-XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	printf("bench-ratelimit: %.1f s per run, median of %d alternating "
	       "rounds, %ld CPUs, loopback TCP; a batch or a pipeline is one "
	       "call for the latencies\n",
	       run_seconds, rounds, cpus);

	bench_case_t cases[16];
	int nc = 0;
	for (int k = 0; k < 2; k++) {
		cases[nc++] = (bench_case_t){.who = "ringkv",
		                             .load = "Check (stream)",
		                             .callers = 1,
		                             .many_keys = k,
		                             .kind = K_CHECK_STREAM};
		cases[nc++] = (bench_case_t){.who = "ringkv",
		                             .load = "Check (stream)",
		                             .callers = 16,
		                             .many_keys = k,
		                             .kind = K_CHECK_STREAM};
		cases[nc++] = (bench_case_t){.who = "ringkv",
		                             .load = "Check (nng)",
		                             .callers = 16,
		                             .many_keys = k,
		                             .kind = K_CHECK_NNG};
		cases[nc++] = (bench_case_t){.who = "ringkv",
		                             .load = "CheckBatch of 100",
		                             .callers = 1,
		                             .many_keys = k,
		                             .kind = K_BATCH_STREAM};
		cases[nc++] = (bench_case_t){.who = "ringkv",
		                             .load = "CheckBatch of 100",
		                             .callers = 16,
		                             .many_keys = k,
		                             .kind = K_BATCH_STREAM};
#ifdef RK_HAVE_HIREDIS
		cases[nc++] = (bench_case_t){.who = "redis",
		                             .load = "EVALSHA one at a time",
		                             .callers = 1,
		                             .many_keys = k,
		                             .kind = K_REDIS};
		cases[nc++] = (bench_case_t){.who = "redis",
		                             .load = "EVALSHA one at a time",
		                             .callers = 16,
		                             .many_keys = k,
		                             .kind = K_REDIS};
		cases[nc++] = (bench_case_t){.who = "redis",
		                             .load = "EVALSHA pipelined x16",
		                             .callers = 16,
		                             .many_keys = k,
		                             .kind = K_REDIS_PIPE};
#endif
	}

	pid_t rl = rl_start(argv[1]);
	pid_t rp = -1;
#ifdef RK_HAVE_HIREDIS
	rp = redis_start();
	if (rp < 0) {
		reap(rl);
		return 1;
	}
#endif
	/* Every load once per round, ringkv and Redis interleaved, so a
	 * burst of outside load hits both sides. */
	for (int k = 0; k < rounds; k++)
		for (int i = 0; i < nc; i++)
			case_run(&cases[i], k);
	reap(rl);
	reap(rp);

	printf("%-8s %-22s %3s  %-10s %12s %9s %9s %7s\n", "server", "load",
	       "n", "keys", "decisions/s", "p50 us", "p99 us", "errors");
	result_t med[16];
	for (int i = 0; i < nc; i++) {
		med[i] = case_median(&cases[i], rounds);
		print_row(cases[i].who, cases[i].load, cases[i].callers,
		          cases[i].many_keys ? "1,000,000" : "hot key",
		          &med[i]);
	}
#ifdef RK_HAVE_HIREDIS
	printf("\ntargets (sliding window counter vs Redis fixed-window "
	       "script, medians):\n");
	for (int k = 0; k < 2; k++) {
		int base = k * 8;
		double a = med[base + 1].per_s / med[base + 6].per_s;
		double b = med[base + 4].per_s / med[base + 7].per_s;
		printf("  %-9s Check x16 / Redis x16 one at a time = %.2f "
		       "(target >= 0.8: %s); CheckBatch x16 / Redis "
		       "pipelined = %.2f (target >= 1.0: %s)\n",
		       k ? "1M keys" : "hot key", a,
		       a >= 0.8 ? "met" : "NOT met", b,
		       b >= 1.0 ? "met" : "NOT met");
	}
#else
	printf("redis: skipped (built without hiredis: run "
	       "bench/ratelimit/run.sh, which installs it)\n");
#endif
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	return 0;
}
