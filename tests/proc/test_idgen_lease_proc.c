/*
 * Worker-id leases end to end: three real ringkv-membership agents
 * (test_membership_cluster.c) and several real ringkv-idgen processes
 * with `worker_id_source: lease`, all sealed with one cluster key, on
 * loopback. Lease ttl 1.5 s, the agents' default skew margin 500 ms.
 *
 * What it proves:
 *   - generators get distinct worker ids; at every sample the agents'
 *     ListLeases and the worker bits of the IDs issued agree, over more
 *     than one ttl (so renewals work), and clean stops release them;
 *   - a released id is reused only after the release, and a holder
 *     killed with -9 has its id reused only after a majority of the
 *     agents' promises (ttl + skew from the last vote) ran out, which is
 *     at least 2 x skew after the holder's own validity ended;
 *   - with 2 of 3 agents killed, renewals fail and every generator
 *     refuses (UNAVAILABLE) before the dead agents' promises run out;
 *   - agents renew a lease only for its holder and lease id
 *     (FAILED_PRECONDITION otherwise), never grant it to another holder,
 *     and a release frees it at every agent;
 *   - malformed lease requests get INVALID_ARGUMENT.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include <ringkv/client.h>
#include <ringkv/idgen.h>

#include "core/clock.h"
#include "rpc/method.h"
#include "test_membership_cluster.h"

#define DC       3
#define TTL_MS   1500
#define SKEW_MS  500 /* membership.lease_skew_margin default */
#define MAX_GENS 6
#define READY_MS 15000

typedef struct fx {
	mc_cluster_t c;               /* the three agents */
	rk_notify_t gn;               /* the generators' NOTIFY_SOCKET */
	rk_proc_t g[MAX_GENS];        /* generators */
	int port[MAX_GENS];           /* their RPC ports */
	char log[MAX_GENS][PATH_MAX]; /* their stderr */
	int ng;                       /* used */
	bool passed;                  /* set last by each case */
} fx_t;

static const rk_rpc_method_t *method(const char *name)
{
	static rk_rpc_method_t m[8];
	static const char *names[8];
	for (int i = 0; i < 8; i++) {
		if (names[i] != NULL && strcmp(names[i], name) == 0)
			return &m[i];
		if (names[i] == NULL) {
			assert_int_equal(
			    rk_rpc_method_resolve(
			        &ringkv__v1__membership__descriptor,
			        &ringkv__v1__membership_method__descriptor,
			        name, &m[i]),
			    RK_OK);
			names[i] = name;
			return &m[i];
		}
	}
	fail();
	return NULL;
}

static int setup(void **state)
{
	fx_t *f = calloc(1, sizeof(*f));
	assert_int_equal(mc_init(&f->c, 3, 3600000), 0);
	assert_int_equal(mc_start_all(&f->c), 0);
	mc_converge_arg_t arg;
	memset(&arg, 0, sizeof(arg));
	assert_true(mc_wait_all(&f->c, -1, mc_pred_converged, &arg, 10000) >=
	            0);
	assert_int_equal(rk_notify_open(&f->gn, f->c.tmp, "gnotify"), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx_t *f = *state;
	for (int i = 0; i < f->ng; i++) {
		if (!f->passed)
			rk_proc_dump(&f->g[i], stderr);
		rk_proc_kill(&f->g[i]);
	}
	rk_notify_close(&f->gn);
	mc_fini(&f->c, !f->passed);
	free(f);
	return 0;
}

static uint64_t wall_ms(void)
{
	return rk_clock_unix_ms();
}

/* Starts generator slot I; returns 1 once READY (within WAIT_MS), 0 if
 * not READY by then (it keeps running). */
static int gen_start(fx_t *f, int i, int wait_ms)
{
	char cfg[PATH_MAX], text[4 * PATH_MAX + 1024], bin[PATH_MAX];
	char nenv[PATH_MAX + 16];
	snprintf(cfg, sizeof(cfg), "%s/gen%d.yaml", f->c.tmp, i);
	snprintf(f->log[i], sizeof(f->log[i]), "%s/gen%d.log", f->c.tmp, i);
	snprintf(text, sizeof(text),
	         "node:\n  id: gen-%d\n"
	         "rpc:\n  listen: tcp://127.0.0.1:0\n"
	         "admin:\n  listen: 127.0.0.1:0\n"
	         "security:\n  cluster_key_file: %s\n"
	         "log:\n  level: info\n"
	         "idgen:\n  datacenter_id: %d\n  worker_id_source: lease\n"
	         "  data_dir: %s/gen%d\n"
	         "  lease:\n    agents: [%s, %s, %s]\n    ttl: %dms\n"
	         "    acquire_timeout: 20s\n",
	         i, f->c.key, DC, f->c.tmp, i, f->c.a[0].url, f->c.a[1].url,
	         f->c.a[2].url, TTL_MS);
	assert_int_equal(rk_proc_write_file(cfg, text), 0);
	assert_int_equal(rk_proc_bin_path("ringkv-idgen", bin, sizeof(bin)), 0);
	snprintf(nenv, sizeof(nenv), "NOTIFY_SOCKET=%s", f->gn.path);
	const char *argv[] = {bin, "--config", cfg, NULL};
	const char *env[] = {nenv, NULL};
	rk_proc_opts_t o = {.argv = argv, .env = env, .stderr_path = f->log[i]};
	memset(&f->g[i], 0, sizeof(f->g[i]));
	assert_int_equal(rk_proc_spawn(&f->g[i], &o), 0);
	if (i >= f->ng)
		f->ng = i + 1;
	char msg[1024];
	int r = rk_notify_wait(&f->gn, f->g[i].pid, "READY=1", wait_ms, msg,
	                       sizeof(msg));
	assert_true(r >= 0);
	if (r == 1) {
		int admin;
		assert_int_equal(rk_notify_ports(msg, &f->port[i], &admin), 0);
	}
	return r;
}

/* Waits for slot I (already started) to become READY. */
static void gen_wait_ready(fx_t *f, int i, int wait_ms)
{
	char msg[1024];
	if (rk_notify_wait(&f->gn, f->g[i].pid, "READY=1", wait_ms, msg,
	                   sizeof(msg)) != 1)
		fail_msg("generator %d did not become ready", i);
	int admin;
	assert_int_equal(rk_notify_ports(msg, &f->port[i], &admin), 0);
}

static ringkv_conn_t *gen_conn(fx_t *f, int i)
{
	char url[64];
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", f->port[i]);
	ringkv_conn_opts_t o = {.url = url,
	                        .key_file = f->c.key,
	                        .timeout_ms = 3000,
	                        .caller = "test"};
	ringkv_conn_t *c = NULL;
	assert_int_equal(ringkv_connect(&o, &c, NULL), RK_OK);
	return c;
}

static void gen_stop(fx_t *f, int i)
{
	assert_int_equal(rk_proc_signal(&f->g[i], SIGTERM), 0);
	assert_int_equal(rk_proc_wait(&f->g[i], 5000), 1);
	assert_int_equal(rk_proc_exit_code(&f->g[i]), 0);
}

static uint32_t gen_worker(fx_t *f, int i, uint64_t *lease_end)
{
	ringkv_conn_t *c = gen_conn(f, i);
	ringkv_idgen_info_t info;
	assert_int_equal(ringkv_idgen_info(c, &info, NULL), RK_OK);
	ringkv_close(c);
	assert_int_equal(info.worker_id_source, 2);
	assert_int_equal(info.datacenter_id, DC);
	assert_true(info.lease_expires_at_ms > 0);
	if (lease_end != NULL)
		*lease_end = info.lease_expires_at_ms;
	return info.worker_id;
}

/* ListLeases of datacenter DC from agent A; NULL if it did not answer. */
static const Ringkv__V1__ListLeasesResponse *leases(fx_t *f, int a,
                                                    rk_rpc_result_t *res)
{
	Ringkv__V1__ListLeasesRequest req =
	    RINGKV__V1__LIST_LEASES_REQUEST__INIT;
	req.has_datacenter_id = true;
	req.datacenter_id = DC;
	if (rk_rpc_call(f->c.a[a].client, method("ListLeases"), &req.base, 2000,
	                res) != RK_OK) {
		rk_rpc_result_clear(res);
		return NULL;
	}
	return (const void *)res->response;
}

/* The lease agent A holds for (DC, W): its expiry (wall ms) and id. */
static bool agent_slot(fx_t *f, int a, uint32_t w, uint64_t *expires,
                       uint64_t *lease_id)
{
	rk_rpc_result_t res;
	const Ringkv__V1__ListLeasesResponse *r = leases(f, a, &res);
	assert_non_null(r);
	bool found = false;
	for (size_t i = 0; i < r->n_leases; i++) {
		if (r->leases[i]->worker_id == w) {
			*expires = r->leases[i]->expires_at_ms;
			if (lease_id != NULL)
				*lease_id = r->leases[i]->lease_id;
			found = true;
		}
	}
	rk_rpc_result_clear(&res);
	return found;
}

static void
test_generators_lease_distinct_ids_that_agents_and_ids_agree_on(void **state)
{
	fx_t *f = *state;
	enum { N = 4 };
	uint32_t w[N];
	ringkv_conn_t *c[N];
	for (int i = 0; i < N; i++) {
		assert_int_equal(gen_start(f, i, READY_MS), 1);
		w[i] = gen_worker(f, i, NULL);
		for (int j = 0; j < i; j++)
			assert_int_not_equal(w[i], w[j]);
		c[i] = gen_conn(f, i);
	}
	/* Over 2 ttls: each generator issues IDs with its own worker bits,
	 * and every agent lists exactly these four slots, one lease id
	 * each, the same on every agent. */
	uint64_t end = wall_ms() + 2 * TTL_MS + 200;
	long samples = 0, ids = 0;
	while (wall_ms() < end) {
		for (int i = 0; i < N; i++) {
			uint64_t batch[64];
			ringkv_error_t err;
			rk_status_t st =
			    ringkv_id_next_batch(c[i], 64, batch, NULL, &err);
			if (st != RK_OK)
				fail_msg("generator %d: %s: %s", i,
				         rk_status_name(st), err.message);
			for (int k = 0; k < 64; k++) {
				ringkv_id_parts_t p;
				assert_int_equal(
				    ringkv_id_decode_local(
				        batch[k], RINGKV_IDGEN_DEFAULT_EPOCH_MS,
				        &p),
				    RK_OK);
				assert_int_equal(p.worker_id, w[i]);
				assert_int_equal(p.datacenter_id, DC);
			}
			ids += 64;
		}
		uint64_t seen_id[32];
		memset(seen_id, 0, sizeof(seen_id));
		for (int a = 0; a < 3; a++) {
			rk_rpc_result_t res;
			const Ringkv__V1__ListLeasesResponse *r =
			    leases(f, a, &res);
			assert_non_null(r);
			assert_int_equal(r->n_leases, N);
			for (size_t k = 0; k < r->n_leases; k++) {
				uint32_t lw = r->leases[k]->worker_id;
				bool ours = false;
				for (int i = 0; i < N; i++)
					ours |= lw == w[i];
				assert_true(ours);
				if (seen_id[lw] == 0)
					seen_id[lw] = r->leases[k]->lease_id;
				assert_int_equal(seen_id[lw],
				                 r->leases[k]->lease_id);
			}
			rk_rpc_result_clear(&res);
		}
		samples++;
	}
	printf("distinct: %ld samples, %ld IDs, workers %u %u %u %u\n", samples,
	       ids, w[0], w[1], w[2], w[3]);
	for (int i = 0; i < N; i++) {
		ringkv_close(c[i]);
		gen_stop(f, i);
	}
	/* Clean stops released every lease at every agent. */
	for (int a = 0; a < 3; a++) {
		rk_rpc_result_t res;
		const Ringkv__V1__ListLeasesResponse *r = leases(f, a, &res);
		assert_non_null(r);
		assert_int_equal(r->n_leases, 0);
		rk_rpc_result_clear(&res);
	}
	f->passed = true;
}

/* Takes every free worker id of DC for the test itself (long ttl), via
 * agent 0; returns how many. */
static int fill_datacenter(fx_t *f)
{
	uint8_t holder[16];
	assert_int_equal(getrandom(holder, 16, 0), 16);
	int n = 0;
	for (;;) {
		Ringkv__V1__AcquireLeaseRequest req =
		    RINGKV__V1__ACQUIRE_LEASE_REQUEST__INIT;
		req.has_datacenter_id = true;
		req.datacenter_id = DC;
		req.has_holder_node_id = true;
		req.holder_node_id.data = holder;
		req.holder_node_id.len = 16;
		req.has_ttl_ms = true;
		req.ttl_ms = 120000;
		rk_rpc_result_t res;
		rk_status_t st =
		    rk_rpc_call(f->c.a[0].client, method("AcquireLease"),
		                &req.base, 3000, &res);
		rk_rpc_result_clear(&res);
		if (st == RK_RESOURCE_EXHAUSTED)
			return n;
		assert_int_equal(st, RK_OK);
		n++;
		assert_true(n <= 32);
	}
}

static void
test_released_id_reused_after_release_expired_after_ttl_and_skew(void **state)
{
	fx_t *f = *state;
	assert_int_equal(gen_start(f, 0, READY_MS), 1);
	uint32_t wa = gen_worker(f, 0, NULL);
	assert_int_equal(fill_datacenter(f), 31);
	/* No id is free: B waits, not ready, while A holds its lease. */
	assert_int_equal(gen_start(f, 1, 2 * TTL_MS), 0);
	uint64_t released = wall_ms();
	gen_stop(f, 0);
	gen_wait_ready(f, 1, 5000);
	uint64_t b_ready = wall_ms();
	assert_int_equal(gen_worker(f, 1, NULL), wa);
	printf("released id %u reused %llu ms after the release began\n", wa,
	       (unsigned long long)(b_ready - released));

	/* Kill B without release; C may get the id only once a majority
	 * of promises ran out, 2 x skew after B's own validity. */
	uint64_t b_end = 0;
	assert_int_equal(gen_worker(f, 1, &b_end), wa);
	rk_proc_kill(&f->g[1]);
	uint64_t killed = wall_ms();
	uint64_t e[3];
	for (int a = 0; a < 3; a++)
		assert_true(agent_slot(f, a, wa, &e[a], NULL));
	/* Second smallest: when a majority of the promises (as read) end. */
	uint64_t lo = e[0] < e[1] ? e[0] : e[1], hi = e[0] < e[1] ? e[1] : e[0];
	uint64_t e2 = e[2] < lo ? lo : (e[2] < hi ? e[2] : hi);
	assert_int_equal(gen_start(f, 2, READY_MS), 1);
	uint64_t c_ready = wall_ms();
	assert_int_equal(gen_worker(f, 2, NULL), wa);
	printf("expired id %u: holder valid until +%lld ms, promises until "
	       "+%lld ms, reused at +%lld ms (after the kill)\n",
	       wa, (long long)(b_end - killed), (long long)(e2 - killed),
	       (long long)(c_ready - killed));
	assert_true(c_ready >= e2);
	assert_true(c_ready + 5 >= b_end + 2 * SKEW_MS);
	f->passed = true;
}

static void
test_majority_loss_stops_generators_before_leases_expire(void **state)
{
	fx_t *f = *state;
	enum { N = 2 };
	uint32_t w[N];
	ringkv_conn_t *c[N];
	for (int i = 0; i < N; i++) {
		assert_int_equal(gen_start(f, i, READY_MS), 1);
		w[i] = gen_worker(f, i, NULL);
		c[i] = gen_conn(f, i);
	}
	/* What agents 1 and 2 promised, read just before they die: their
	 * promises end no earlier than this. */
	uint64_t dead_end[N];
	for (int i = 0; i < N; i++) {
		uint64_t e1, e2;
		assert_true(agent_slot(f, 1, w[i], &e1, NULL));
		assert_true(agent_slot(f, 2, w[i], &e2, NULL));
		dead_end[i] = e1 < e2 ? e1 : e2;
	}
	mc_kill(&f->c, 1);
	mc_kill(&f->c, 2);
	uint64_t killed = wall_ms();
	uint64_t stopped[N] = {0, 0};
	int left = N;
	while (left > 0 && wall_ms() < killed + 3 * TTL_MS) {
		for (int i = 0; i < N; i++) {
			if (stopped[i] != 0)
				continue;
			uint64_t id;
			ringkv_error_t err;
			uint64_t t = wall_ms();
			rk_status_t st = ringkv_id_next(c[i], &id, &err);
			if (st == RK_OK)
				continue;
			assert_int_equal(st, RK_UNAVAILABLE);
			assert_non_null(strstr(err.message, "worker id"));
			stopped[i] = t;
			left--;
		}
		struct timespec ts = {0, 10 * 1000000L};
		nanosleep(&ts, NULL); /* pacing of the probe, not a sync */
	}
	for (int i = 0; i < N; i++) {
		printf(
		    "generator %d: stopped issuing at +%lld ms, dead agents' "
		    "promises ran until +%lld ms at least\n",
		    i, (long long)(stopped[i] - killed),
		    (long long)(dead_end[i] - killed));
		assert_true(stopped[i] != 0);
		assert_true(stopped[i] < dead_end[i]);
		char *log = rk_proc_read_file(f->log[i], NULL);
		assert_non_null(log);
		assert_non_null(strstr(log, "not renewed"));
		free(log);
		/* It stays refused: a lone agent is no majority. */
		uint64_t id;
		assert_int_equal(ringkv_id_next(c[i], &id, NULL),
		                 RK_UNAVAILABLE);
		ringkv_close(c[i]);
	}
	f->passed = true;
}

static void test_malformed_lease_requests_are_invalid_argument(void **state)
{
	fx_t *f = *state;
	rk_rpc_result_t res;
	Ringkv__V1__AcquireLeaseRequest aq =
	    RINGKV__V1__ACQUIRE_LEASE_REQUEST__INIT;
	aq.has_datacenter_id = true;
	aq.datacenter_id = 40; /* out of range, and no holder */
	assert_int_equal(rk_rpc_call(f->c.a[0].client, method("AcquireLease"),
	                             &aq.base, 2000, &res),
	                 RK_INVALID_ARGUMENT);
	rk_rpc_result_clear(&res);
	uint8_t holder[16] = {1};
	aq.datacenter_id = 1;
	aq.has_holder_node_id = true;
	aq.holder_node_id.data = holder;
	aq.holder_node_id.len = 16;
	aq.has_ttl_ms = true;
	aq.ttl_ms = 100; /* not above twice the skew margin */
	assert_int_equal(rk_rpc_call(f->c.a[0].client, method("AcquireLease"),
	                             &aq.base, 2000, &res),
	                 RK_INVALID_ARGUMENT);
	rk_rpc_result_clear(&res);
	Ringkv__V1__VoteLeaseRequest v = RINGKV__V1__VOTE_LEASE_REQUEST__INIT;
	assert_int_equal(rk_rpc_call(f->c.a[1].client, method("VoteLease"),
	                             &v.base, 2000, &res),
	                 RK_INVALID_ARGUMENT);
	rk_rpc_result_clear(&res);
	Ringkv__V1__RenewLeaseRequest rn =
	    RINGKV__V1__RENEW_LEASE_REQUEST__INIT;
	rn.has_datacenter_id = rn.has_worker_id = true;
	rn.worker_id = 99;
	assert_int_equal(rk_rpc_call(f->c.a[2].client, method("RenewLease"),
	                             &rn.base, 2000, &res),
	                 RK_INVALID_ARGUMENT);
	rk_rpc_result_clear(&res);
	Ringkv__V1__ListLeasesRequest ls =
	    RINGKV__V1__LIST_LEASES_REQUEST__INIT;
	ls.has_datacenter_id = true;
	ls.datacenter_id = 32;
	assert_int_equal(rk_rpc_call(f->c.a[0].client, method("ListLeases"),
	                             &ls.base, 2000, &res),
	                 RK_INVALID_ARGUMENT);
	rk_rpc_result_clear(&res);
	/* The agents still answer and hold nothing. */
	const Ringkv__V1__ListLeasesResponse *r = leases(f, 0, &res);
	assert_non_null(r);
	assert_int_equal(r->n_leases, 0);
	rk_rpc_result_clear(&res);
	f->passed = true;
}

static void
test_agents_renew_only_the_holders_lease_and_release_frees_it(void **state)
{
	fx_t *f = *state;
	uint8_t holder[16], other[16];
	assert_int_equal(getrandom(holder, 16, 0), 16);
	memcpy(other, holder, 16);
	other[0] ^= 1;
	Ringkv__V1__AcquireLeaseRequest aq =
	    RINGKV__V1__ACQUIRE_LEASE_REQUEST__INIT;
	aq.has_datacenter_id = aq.has_preferred_worker_id = true;
	aq.datacenter_id = DC;
	aq.preferred_worker_id = 9;
	aq.has_holder_node_id = true;
	aq.holder_node_id.data = holder;
	aq.holder_node_id.len = 16;
	aq.has_ttl_ms = true;
	aq.ttl_ms = 5000;
	rk_rpc_result_t res;
	assert_int_equal(rk_rpc_call(f->c.a[1].client, method("AcquireLease"),
	                             &aq.base, 3000, &res),
	                 RK_OK);
	const Ringkv__V1__AcquireLeaseResponse *ar = (const void *)res.response;
	assert_int_equal(ar->lease->worker_id, 9);
	assert_int_equal(ar->votes, 3);
	assert_int_equal(ar->electorate, 3);
	assert_int_equal(ar->valid_for_ms, 5000 - SKEW_MS);
	uint64_t lid = ar->lease->lease_id;
	rk_rpc_result_clear(&res);
	/* Every agent lists it, under the same lease id. */
	for (int a = 0; a < 3; a++) {
		uint64_t e, id;
		assert_true(agent_slot(f, a, 9, &e, &id));
		assert_int_equal(id, lid);
	}
	/* Another holder, or another lease id, may not renew it. */
	Ringkv__V1__RenewLeaseRequest rn =
	    RINGKV__V1__RENEW_LEASE_REQUEST__INIT;
	rn.has_datacenter_id = rn.has_worker_id = rn.has_lease_id = true;
	rn.datacenter_id = DC;
	rn.worker_id = 9;
	rn.lease_id = lid;
	rn.has_holder_node_id = true;
	rn.holder_node_id.data = other;
	rn.holder_node_id.len = 16;
	assert_int_equal(rk_rpc_call(f->c.a[2].client, method("RenewLease"),
	                             &rn.base, 3000, &res),
	                 RK_FAILED_PRECONDITION);
	rk_rpc_result_clear(&res);
	rn.holder_node_id.data = holder;
	rn.lease_id = lid + 1;
	assert_int_equal(rk_rpc_call(f->c.a[2].client, method("RenewLease"),
	                             &rn.base, 3000, &res),
	                 RK_FAILED_PRECONDITION);
	rk_rpc_result_clear(&res);
	/* Nor may another holder acquire it: it gets another id. */
	aq.holder_node_id.data = other;
	assert_int_equal(rk_rpc_call(f->c.a[0].client, method("AcquireLease"),
	                             &aq.base, 3000, &res),
	                 RK_OK);
	ar = (const void *)res.response;
	assert_int_not_equal(ar->lease->worker_id, 9);
	rk_rpc_result_clear(&res);
	/* The holder renews through any agent. */
	rn.lease_id = lid;
	assert_int_equal(rk_rpc_call(f->c.a[0].client, method("RenewLease"),
	                             &rn.base, 3000, &res),
	                 RK_OK);
	const Ringkv__V1__RenewLeaseResponse *rr = (const void *)res.response;
	assert_int_equal(rr->votes, 3);
	rk_rpc_result_clear(&res);
	/* Release frees it at every agent at once. */
	Ringkv__V1__ReleaseLeaseRequest rl =
	    RINGKV__V1__RELEASE_LEASE_REQUEST__INIT;
	rl.has_datacenter_id = rl.has_worker_id = rl.has_lease_id = true;
	rl.datacenter_id = DC;
	rl.worker_id = 9;
	rl.lease_id = lid;
	rl.has_holder_node_id = true;
	rl.holder_node_id.data = holder;
	rl.holder_node_id.len = 16;
	assert_int_equal(rk_rpc_call(f->c.a[2].client, method("ReleaseLease"),
	                             &rl.base, 3000, &res),
	                 RK_OK);
	rk_rpc_result_clear(&res);
	for (int a = 0; a < 3; a++) {
		uint64_t e;
		assert_false(agent_slot(f, a, 9, &e, NULL));
	}
	f->passed = true;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_malformed_lease_requests_are_invalid_argument, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_agents_renew_only_the_holders_lease_and_release_frees_it,
	        setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_generators_lease_distinct_ids_that_agents_and_ids_agree_on,
	        setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_released_id_reused_after_release_expired_after_ttl_and_skew,
	        setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_majority_loss_stops_generators_before_leases_expire, setup,
	        teardown),
	};
	/* Temp dirs under the build dir, not /tmp: a run once lost its
	 * whole temp dir (sockets, logs) mid-case to something outside the
	 * test cleaning /tmp/ringkv-*. An explicit TMPDIR wins. */
	const char *bin = rk_proc_bin_dir();
	char tmp[PATH_MAX];
	if ((getenv("TMPDIR") == NULL || getenv("TMPDIR")[0] == '\0') &&
	    bin != NULL &&
	    (size_t)snprintf(tmp, sizeof(tmp), "%s/../tmp", bin) < 64) {
		mkdir(tmp, 0700);
		setenv("TMPDIR", tmp, 1);
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
