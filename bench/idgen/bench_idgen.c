/*
 * bench-idgen: IDs per second from ringkv-idgen through the RPC layer,
 * against the layout's ceiling and against raw nng in the same run.
 *
 * Two servers in this process, each on its own loopback TCP port:
 *  - raw:   an nng rep0 socket whose async ctx workers send each request
 *           straight back (no framing, protobuf or sealing): the round
 *           trip any req/rep layer over nng can at best reach;
 *  - idgen: rk_rpc_server with the Idgen service routed (sealed frames,
 *           protobuf envelopes, metrics, deadlines, the real high-water
 *           mark file with fsync in a temp dir, the system clock).
 * For 1 and then 16 callers (threads, one synchronous call in flight
 * each) it measures raw echo round trips of a 16-byte payload, NextId
 * calls, and NextIds(4096) calls, for a fixed time each, alternating the
 * three kinds over 3 rounds, and prints the median round of each: calls/s,
 * IDs/s and p50/p99 per call.
 *
 * Targets (issue 5): batches reach >= 85% of the ceiling of one worker,
 * 4096 IDs per ms = 4,096,000 IDs/s; single IDs reach >= 80% of the raw
 * nng round-trip rate at the same number of callers; p99 of a NextId call
 * < 1 ms. The p99 target is read for one call at a time (1 caller): with
 * 16 callers each call queues behind the others, and the bench prints
 * raw nng's own p99 there for comparison. A batch of 4096 takes a whole
 * ms of sequence space, so at the ceiling each batch call waits for its
 * ms: its latency is ~1 ms per caller queued, by construction.
 *
 * usage: bench-idgen [seconds-per-run]   (default 1)
 */
#include <arpa/inet.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "raw_nng.h"
#include "core/log.h"
#include "crypto/seal.h"
#include "idgen_service.h"
#include "metrics/metrics.h"
#include "ringkv/v1/idgen.pb-c.h"
#include "rpc/client.h"
#include "rpc/server.h"

#define PAYLOAD     16
#define MAX_SAMPLES (4u << 20)
#define CEILING     4096000.0 /* IDs/s of one worker: 4096 per ms */
#define ROUNDS      3         /* rounds per kind; the median is shown */

/* ---------------------------------------------------------- load */

enum mode { RAW, NEXT_ID, NEXT_IDS };

typedef struct run {
	enum mode mode;          /* what each call is */
	nng_socket raw_sock;     /* raw client socket */
	rk_rpc_client_t *client; /* idgen client */
	uint64_t until_ns;       /* stop time */
	uint64_t warm_ns;        /* samples start here */
	atomic_size_t nsamples;  /* calls measured */
	atomic_size_t ids;       /* IDs received in measured calls */
	atomic_size_t runs;      /* batches answered as first id + count */
	uint32_t *samples;       /* ns per call, capped at 4 s */
	atomic_size_t errors;    /* failed calls */
} run_t;

static void record(run_t *r, uint64_t t0, uint64_t t1, size_t ids)
{
	if (t0 < r->warm_ns)
		return;
	size_t i = atomic_fetch_add(&r->nsamples, 1);
	atomic_fetch_add(&r->ids, ids);
	if (i < MAX_SAMPLES)
		r->samples[i] = (uint32_t)(t1 - t0);
}

static void raw_done(void *arg, int rv, uint64_t t0, uint64_t t1)
{
	run_t *r = arg;
	if (rv != 0)
		atomic_fetch_add(&r->errors, 1);
	else
		record(r, t0, t1, 0);
}

static void raw_loop(run_t *r)
{
	rk_bench_raw_run(r->raw_sock, PAYLOAD, r->until_ns, raw_done, r);
}

static void idgen_loop(run_t *r)
{
	Ringkv__V1__NextIdRequest one = RINGKV__V1__NEXT_ID_REQUEST__INIT;
	Ringkv__V1__NextIdsRequest many = RINGKV__V1__NEXT_IDS_REQUEST__INIT;
	many.has_count = 1;
	many.count = 4096;
	bool batch = r->mode == NEXT_IDS;
	const rk_rpc_method_t *m =
	    rk_idgen_method(batch ? "NextIds" : "NextId");
	uint64_t last = 0;
	while (rk_clock_mono_ns() < r->until_ns) {
		uint64_t t0 = rk_clock_mono_ns();
		rk_rpc_result_t res;
		rk_status_t st = rk_rpc_call(
		    r->client, m, batch ? &many.base : &one.base, 5000, &res);
		uint64_t t1 = rk_clock_mono_ns();
		size_t n = 0;
		uint64_t first = 0;
		if (st == RK_OK && batch) {
			const Ringkv__V1__NextIdsResponse *b =
			    (const void *)res.response;
			n = b->count;
			first = b->has_first_id ? b->first_id
			                        : (b->n_ids ? b->ids[0] : 0);
			if (b->has_first_id && t0 >= r->warm_ns)
				atomic_fetch_add(&r->runs, 1);
		} else if (st == RK_OK) {
			n = 1;
			first =
			    ((const Ringkv__V1__NextIdResponse *)res.response)
			        ->id;
		}
		/* Per caller, IDs must keep increasing. */
		if (st != RK_OK || n == 0 || first <= last)
			atomic_fetch_add(&r->errors, 1);
		else
			record(r, t0, t1, n);
		last = first;
		rk_rpc_result_clear(&res);
	}
}

static void *load_thread(void *arg)
{
	run_t *r = arg;
	if (r->mode == RAW)
		raw_loop(r);
	else
		idgen_loop(r);
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

typedef struct figures {
	double calls;  /* calls/s */
	double ids;    /* IDs/s */
	double p50_us; /* median call latency */
	double p99_us; /* 99th percentile */
	size_t errors; /* failed calls */
	double runs;   /* share of batches sent as first id + count */
} figures_t;

static figures_t measure(run_t *r, enum mode mode, int threads, double seconds)
{
	r->mode = mode;
	uint64_t start = rk_clock_mono_ns();
	r->warm_ns = start + 300000000ull;
	r->until_ns = r->warm_ns + (uint64_t)(seconds * 1e9);
	atomic_store(&r->nsamples, 0);
	atomic_store(&r->ids, 0);
	atomic_store(&r->runs, 0);
	atomic_store(&r->errors, 0);
	pthread_t t[64];
	for (int i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, load_thread, r);
	for (int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	size_t n = atomic_load(&r->nsamples);
	figures_t f = {0};
	f.errors = atomic_load(&r->errors);
	if (n == 0)
		return f;
	f.calls = (double)n / seconds;
	f.ids = (double)atomic_load(&r->ids) / seconds;
	f.runs = (double)atomic_load(&r->runs) / (double)n;
	if (n > MAX_SAMPLES)
		n = MAX_SAMPLES;
	qsort(r->samples, n, sizeof(uint32_t), cmp_u32);
	f.p50_us = r->samples[n / 2] / 1000.0;
	f.p99_us = r->samples[(size_t)((double)n * 0.99)] / 1000.0;
	return f;
}

/* The round with the median rate (ROUNDS is odd). */
static figures_t median(figures_t *f)
{
	for (int i = 1; i < ROUNDS; i++)
		for (int j = i; j > 0 && f[j].calls < f[j - 1].calls; j--) {
			figures_t t = f[j];
			f[j] = f[j - 1];
			f[j - 1] = t;
		}
	return f[ROUNDS / 2];
}

static void row(const char *what, int callers, const figures_t *f)
{
	printf("%-24s %7d %11.0f %12.0f %9.1f %9.1f %6zu\n", what, callers,
	       f->calls, f->ids, f->p50_us, f->p99_us, f->errors);
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 1.0;
	if (seconds <= 0) {
		fprintf(stderr, "usage: bench-idgen [seconds-per-run]\n");
		return 2;
	}
	rk_log_set_level(RK_LOG_WARN);
	if (sodium_init() < 0)
		return 1;

	rk_bench_raw_echo_t *raw = rk_bench_raw_echo_start();

	char dir[] = "/tmp/bench-idgen-XXXXXX";
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	uint8_t key[RK_SEAL_KEY_BYTES];
	randombytes_buf(key, sizeof(key));
	rk_sealer_t *ss, *cs;
	rk_sealer_new(key, 0, &ss);
	rk_sealer_new(key, 0, &cs);
	rk_metrics_t *metrics = rk_metrics_new();
	rk_idgen_config_t cfg;
	rk_idgen_config_defaults(&cfg);
	snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", dir);
	char why[256];
	rk_idgen_service_t *svc;
	if (rk_idgen_service_new(&cfg, NULL, metrics, &svc, why, sizeof(why)) !=
	    RK_OK) {
		fprintf(stderr, "idgen: %s\n", why);
		return 1;
	}
	rk_rpc_server_opts_t so = {.listen = "tcp://127.0.0.1:0",
	                           .sealer = ss,
	                           .metrics = metrics,
	                           .name = "bench-idgen"};
	rk_rpc_server_t *srv;
	char *err = NULL;
	if (rk_rpc_server_new(&so, &srv) != RK_OK ||
	    rk_idgen_service_route(svc, srv) != RK_OK ||
	    rk_rpc_server_start(srv, &err) != RK_OK) {
		fprintf(stderr, "idgen server: %s\n", err ? err : "failed");
		return 1;
	}

	char url[64];
	run_t rr = {0}, kr = {0};
	rr.samples = malloc(MAX_SAMPLES * sizeof(uint32_t));
	kr.samples = malloc(MAX_SAMPLES * sizeof(uint32_t));
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", rk_bench_raw_echo_port(raw));
	nng_req0_open(&rr.raw_sock);
	nng_socket_set_ms(rr.raw_sock, NNG_OPT_REQ_RESENDTIME,
	                  NNG_DURATION_INFINITE);
	nng_dial(rr.raw_sock, url, NULL, 0);
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d",
	         rk_rpc_server_port(srv));
	rk_rpc_client_opts_t co = {.url = url, .sealer = cs, .caller = "bench"};
	rk_rpc_client_new(&co, &kr.client);

	printf("bench-idgen: tcp loopback, sealed frames, %.1f s per run, "
	       "median of %d alternating rounds; ceiling of one worker %.0f "
	       "IDs/s\n",
	       seconds, ROUNDS, CEILING);
	printf("%-24s %7s %11s %12s %9s %9s %6s\n", "what", "callers",
	       "calls/s", "IDs/s", "p50 us", "p99 us", "errors");
	int callers[] = {1, 16};
	bool batch_ok = false, single_ok = true, p99_ok = true, clean = true;
	double raw_p99_16 = 0, id_p99_16 = 0;
	for (int i = 0; i < 2; i++) {
		int c = callers[i];
		/* Alternate the three kinds round by round and keep each
		 * kind's median round: load from outside this process then
		 * hits all three alike. */
		figures_t a[ROUNDS], s1[ROUNDS], b[ROUNDS];
		for (int k = 0; k < ROUNDS; k++) {
			a[k] = measure(&rr, RAW, c, seconds);
			s1[k] = measure(&kr, NEXT_ID, c, seconds);
			b[k] = measure(&kr, NEXT_IDS, c, seconds);
		}
		figures_t am = median(a), sm = median(s1), bm = median(b);
		row("raw nng round trip", c, &am);
		row("NextId", c, &sm);
		row("NextIds(4096)", c, &bm);
		double rs = am.calls > 0 ? sm.calls / am.calls : 0;
		double rb = bm.ids / CEILING;
		printf("%-24s %7d   NextId/raw %5.1f%%   NextIds/ceiling "
		       "%5.1f%%   batches as one run %5.1f%%\n",
		       "ratios", c, rs * 100.0, rb * 100.0, bm.runs * 100.0);
		if (rb >= 0.85)
			batch_ok = true;
		if (rs < 0.80)
			single_ok = false;
		if (c == 1 && sm.p99_us >= 1000.0)
			p99_ok = false;
		if (c == 16) {
			raw_p99_16 = am.p99_us;
			id_p99_16 = sm.p99_us;
		}
		for (int k = 0; k < ROUNDS; k++)
			if (a[k].errors || s1[k].errors || b[k].errors)
				clean = false;
	}
	printf("target batched >= 85%% of ceiling (one worker): %s\n",
	       batch_ok ? "met" : "NOT met");
	printf("target single >= 80%% of raw nng round trips (1 and 16 "
	       "callers): %s\n",
	       single_ok ? "met" : "NOT met");
	printf("target NextId p99 < 1 ms for one call (1 caller): %s\n",
	       p99_ok ? "met" : "NOT met");
	printf("  (16 callers queue on this machine's cores: NextId p99 "
	       "%.0f us beside raw nng's own p99 %.0f us)\n",
	       id_p99_16, raw_p99_16);
	printf("errors: %s\n", clean ? "none" : "SOME (see table)");

	rk_rpc_client_free(kr.client);
	nng_close(rr.raw_sock);
	rk_idgen_service_stop(svc);
	rk_rpc_server_free(srv);
	rk_idgen_service_free(svc);
	rk_bench_raw_echo_stop(raw);
	rk_metrics_free(metrics);
	rk_sealer_free(ss);
	rk_sealer_free(cs);
	free(rr.samples);
	free(kr.samples);
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return 0;
}
