/*
 * ringkv-idgen's lease worker-id source (services/idgen/lease_source.c)
 * against a stand-in membership agent: a real RPC server on loopback
 * whose AcquireLease / RenewLease / ReleaseLease answers the test
 * chooses. Proves: the `idgen.lease` config section; a granted lease is
 * held and kept by renewals past its ttl; renewals that fail end it once
 * its validity (counted from the request's send) runs out, and a later
 * renewal brings it back; FAILED_PRECONDITION ends it for good; stop
 * releases once; acquire gives up after its timeout with a reason.
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

#include "core/clock.h"
#include "core/log.h"
#include "idgen_config.h"
#include "lease_source.h"
#include "ringkv/v1/membership.pb-c.h"
#include "rpc/server.h"

#define TTL   300
#define VALID 200

typedef struct agent {
	rk_rpc_server_t *srv;      /* the stand-in agent */
	char url[64];              /* its URL */
	_Atomic int acquire_st;    /* status AcquireLease answers */
	_Atomic int renew_st;      /* status RenewLease answers */
	_Atomic int acquires;      /* calls seen */
	_Atomic int renews;        /* calls seen */
	_Atomic int releases;      /* calls seen */
	_Atomic uint64_t lease_id; /* lease id last renewed or released */
} agent_t;

static void on_acquire(rk_rpc_call_t *call, const ProtobufCMessage *msg,
                       void *arg)
{
	agent_t *a = arg;
	const Ringkv__V1__AcquireLeaseRequest *req = (const void *)msg;
	a->acquires++;
	if (a->acquire_st != RK_OK) {
		rk_rpc_reply_error(call, (rk_status_t)a->acquire_st, 0,
		                   "stand-in refuses");
		return;
	}
	Ringkv__V1__WorkerLease l = RINGKV__V1__WORKER_LEASE__INIT;
	l.has_datacenter_id = l.has_worker_id = l.has_lease_id = true;
	l.datacenter_id = req->datacenter_id;
	l.worker_id = 17;
	l.lease_id = 0x1234;
	Ringkv__V1__AcquireLeaseResponse r =
	    RINGKV__V1__ACQUIRE_LEASE_RESPONSE__INIT;
	r.lease = &l;
	r.has_valid_for_ms = true;
	r.valid_for_ms = VALID;
	rk_rpc_reply(call, &r.base);
}

static void on_renew(rk_rpc_call_t *call, const ProtobufCMessage *msg,
                     void *arg)
{
	agent_t *a = arg;
	const Ringkv__V1__RenewLeaseRequest *req = (const void *)msg;
	a->renews++;
	a->lease_id = req->lease_id;
	if (a->renew_st != RK_OK) {
		rk_rpc_reply_error(call, (rk_status_t)a->renew_st, 0,
		                   "stand-in refuses");
		return;
	}
	Ringkv__V1__RenewLeaseResponse r =
	    RINGKV__V1__RENEW_LEASE_RESPONSE__INIT;
	r.has_valid_for_ms = true;
	r.valid_for_ms = VALID;
	rk_rpc_reply(call, &r.base);
}

static void on_release(rk_rpc_call_t *call, const ProtobufCMessage *msg,
                       void *arg)
{
	agent_t *a = arg;
	const Ringkv__V1__ReleaseLeaseRequest *req = (const void *)msg;
	a->releases++;
	a->lease_id = req->lease_id;
	Ringkv__V1__ReleaseLeaseResponse r =
	    RINGKV__V1__RELEASE_LEASE_RESPONSE__INIT;
	rk_rpc_reply(call, &r.base);
}

static int setup(void **state)
{
	agent_t *a = calloc(1, sizeof(*a));
	rk_rpc_server_opts_t so = {.listen = "tcp://127.0.0.1:0",
	                           .name = "fake-agent"};
	assert_int_equal(rk_rpc_server_new(&so, &a->srv), RK_OK);
	const char *names[] = {"AcquireLease", "RenewLease", "ReleaseLease"};
	rk_rpc_handler_fn fns[] = {on_acquire, on_renew, on_release};
	static rk_rpc_method_t m[3];
	for (int i = 0; i < 3; i++) {
		assert_int_equal(rk_rpc_method_resolve(
		                     &ringkv__v1__membership__descriptor,
		                     &ringkv__v1__membership_method__descriptor,
		                     names[i], &m[i]),
		                 RK_OK);
		assert_int_equal(rk_rpc_server_handle(a->srv, &m[i], fns[i],
		                                      RK_RPC_INLINE, a),
		                 RK_OK);
	}
	assert_int_equal(rk_rpc_server_start(a->srv, NULL), RK_OK);
	snprintf(a->url, sizeof(a->url), "tcp://127.0.0.1:%d",
	         rk_rpc_server_port(a->srv));
	*state = a;
	return 0;
}

static int teardown(void **state)
{
	agent_t *a = *state;
	rk_rpc_server_free(a->srv);
	free(a);
	return 0;
}

static rk_idgen_lease_t *source(agent_t *a, uint32_t acquire_ms)
{
	rk_idgen_config_t c;
	rk_idgen_config_defaults(&c);
	c.source = RK_IDGEN_WORKER_LEASE;
	c.datacenter_id = 4;
	snprintf(c.agents[0], sizeof(c.agents[0]), "%s", a->url);
	c.nagents = 1;
	c.lease_ttl_ms = TTL;
	c.lease_acquire_ms = acquire_ms;
	rk_idgen_lease_t *l = NULL;
	assert_int_equal(rk_idgen_lease_new(&c, NULL, &l), RK_OK);
	return l;
}

/* Waits (bounded) until *COUNTER reaches N. */
static void wait_count(_Atomic int *counter, int n, int timeout_ms)
{
	uint64_t end = rk_clock_mono_ms() + (uint64_t)timeout_ms;
	while (*counter < n) {
		if (rk_clock_mono_ms() > end)
			fail_msg("counter at %d, wanted %d", *counter, n);
		struct timespec ts = {0, 2000000L};
		nanosleep(&ts, NULL);
	}
}

/* Polls W's held() until it equals WANT; returns the ms it took. */
static long wait_held(rk_idgen_worker_t *w, bool want, int timeout_ms)
{
	uint64_t start = rk_clock_mono_ms();
	while (rk_idgen_worker_held(w, NULL) != want) {
		if (rk_clock_mono_ms() > start + (uint64_t)timeout_ms)
			fail_msg("held() did not become %d", want);
		struct timespec ts = {0, 1000000L};
		nanosleep(&ts, NULL);
	}
	return (long)(rk_clock_mono_ms() - start);
}

static rk_status_t read_config(const char *text, rk_idgen_config_t *c,
                               char **err)
{
	rk_config_t *cfg;
	assert_int_equal(
	    rk_config_parse(text, strlen(text), "idgen.yaml", &cfg, NULL),
	    RK_OK);
	rk_idgen_config_read(cfg, c);
	rk_status_t st = rk_config_finish(cfg, err);
	rk_config_free(cfg);
	return st;
}

static void
test_config_reads_lease_section_and_refuses_lease_without_agents(void **state)
{
	(void)state;
	rk_idgen_config_t c;
	char *err = NULL;
	assert_int_equal(read_config("idgen:\n  worker_id_source: lease\n"
	                             "  lease:\n"
	                             "    agents: [tcp://127.0.0.1:7300, "
	                             "tcp://127.0.0.1:7301]\n"
	                             "    ttl: 2s\n"
	                             "    acquire_timeout: 5s\n",
	                             &c, &err),
	                 RK_OK);
	assert_int_equal(c.source, RK_IDGEN_WORKER_LEASE);
	assert_int_equal(c.nagents, 2);
	assert_string_equal(c.agents[1], "tcp://127.0.0.1:7301");
	assert_int_equal(c.lease_ttl_ms, 2000);
	assert_int_equal(c.lease_acquire_ms, 5000);
	assert_int_equal(
	    read_config("idgen:\n  worker_id_source: lease\n", &c, &err),
	    RK_INVALID_ARGUMENT);
	assert_non_null(strstr(err, "idgen.lease.agents"));
	free(err);
	assert_int_equal(read_config("idgen:\n  worker_id_source: lease\n"
	                             "  lease:\n    agents: [localhost]\n",
	                             &c, &err),
	                 RK_INVALID_ARGUMENT);
	assert_non_null(strstr(err, "tcp://"));
	free(err);
	assert_int_equal(
	    read_config("idgen:\n  lease:\n    ttl: 1ms\n", &c, &err),
	    RK_INVALID_ARGUMENT);
	free(err);
	rk_idgen_config_defaults(&c);
	assert_int_equal(rk_idgen_lease_new(&c, NULL, &(rk_idgen_lease_t *){0}),
	                 RK_INVALID_ARGUMENT);
}

static void
test_granted_lease_is_held_and_renewals_keep_it_past_its_ttl(void **state)
{
	agent_t *a = *state;
	rk_idgen_lease_t *l = source(a, 2000);
	rk_idgen_worker_t w;
	rk_idgen_lease_worker(l, &w);
	char why[256] = "";
	assert_int_equal(rk_idgen_worker_acquire(&w, why, sizeof(why)), RK_OK);
	assert_int_equal(w.identity.datacenter, 4);
	assert_int_equal(w.identity.worker, 17);
	uint64_t exp = 0;
	assert_true(rk_idgen_worker_held(&w, &exp));
	assert_true(exp > rk_clock_unix_ms() &&
	            exp <= rk_clock_unix_ms() + VALID);
	/* Three renewals take about a ttl: still held after them. */
	wait_count(&a->renews, 3, 5 * TTL);
	assert_true(rk_idgen_worker_held(&w, NULL));
	assert_int_equal(a->lease_id, 0x1234);
	rk_idgen_lease_free(l);
}

static void test_failed_renewals_end_the_lease_within_its_validity(void **state)
{
	agent_t *a = *state;
	rk_idgen_lease_t *l = source(a, 2000);
	rk_idgen_worker_t w;
	rk_idgen_lease_worker(l, &w);
	char why[256] = "";
	assert_int_equal(rk_idgen_worker_acquire(&w, why, sizeof(why)), RK_OK);
	wait_count(&a->renews, 1, 5 * TTL);
	a->renew_st = RK_UNAVAILABLE;
	/* The last grant was sent at most ttl/3 (+ a call) ago; it is
	 * valid VALID ms from then, never longer. */
	long took = wait_held(&w, false, 5 * TTL);
	printf("held for %ld ms after renewals began failing\n", took);
	assert_true(took <= VALID + 20);
	int before = a->renews;
	wait_count(&a->renews, before + 2, 5 * TTL); /* still trying */
	assert_false(rk_idgen_worker_held(&w, NULL));
	a->renew_st = RK_OK;
	wait_held(&w, true, 5 * TTL);
	rk_idgen_lease_free(l);
}

static void test_failed_precondition_ends_the_lease_for_good(void **state)
{
	agent_t *a = *state;
	rk_idgen_lease_t *l = source(a, 2000);
	rk_idgen_worker_t w;
	rk_idgen_lease_worker(l, &w);
	char why[256] = "";
	assert_int_equal(rk_idgen_worker_acquire(&w, why, sizeof(why)), RK_OK);
	a->renew_st = RK_FAILED_PRECONDITION;
	int before = a->renews;
	wait_count(&a->renews, before + 1, 5 * TTL);
	wait_held(&w, false, 100);
	a->renew_st = RK_OK;
	/* No more renewals after the loss, and never held again. */
	int after = a->renews;
	uint64_t end = rk_clock_mono_ms() + TTL;
	while (rk_clock_mono_ms() < end) {
		assert_false(rk_idgen_worker_held(&w, NULL));
		struct timespec ts = {0, 5000000L};
		nanosleep(&ts, NULL);
	}
	assert_int_equal(a->renews, after);
	/* A lost lease is not released (it is not ours any more). */
	rk_idgen_lease_free(l);
	assert_int_equal(a->releases, 0);
}

static void test_stop_releases_once_and_stops_holding(void **state)
{
	agent_t *a = *state;
	rk_idgen_lease_t *l = source(a, 2000);
	rk_idgen_worker_t w;
	rk_idgen_lease_worker(l, &w);
	char why[256] = "";
	assert_int_equal(rk_idgen_worker_acquire(&w, why, sizeof(why)), RK_OK);
	rk_idgen_lease_stop(l);
	assert_int_equal(a->releases, 1);
	assert_int_equal(a->lease_id, 0x1234);
	assert_false(rk_idgen_worker_held(&w, NULL));
	rk_idgen_worker_release(&w); /* the service's release: a no-op now */
	rk_idgen_lease_free(l);
	assert_int_equal(a->releases, 1);
}

static void
test_acquire_gives_up_after_its_timeout_with_the_reason(void **state)
{
	agent_t *a = *state;
	a->acquire_st = RK_RESOURCE_EXHAUSTED;
	rk_idgen_lease_t *l = source(a, 500);
	rk_idgen_worker_t w;
	rk_idgen_lease_worker(l, &w);
	char why[512] = "";
	uint64_t t0 = rk_clock_mono_ms();
	assert_int_equal(rk_idgen_worker_acquire(&w, why, sizeof(why)),
	                 RK_RESOURCE_EXHAUSTED);
	assert_true(rk_clock_mono_ms() - t0 >= 500);
	assert_true(a->acquires >= 2);
	assert_non_null(strstr(why, "datacenter 4"));
	assert_non_null(strstr(why, "stand-in refuses"));
	assert_false(rk_idgen_worker_held(&w, NULL));
	rk_idgen_lease_free(l);
	assert_int_equal(a->releases, 0);
}

int main(void)
{
	rk_log_set_level(RK_LOG_ERROR);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
	        test_config_reads_lease_section_and_refuses_lease_without_agents),
	    cmocka_unit_test_setup_teardown(
	        test_granted_lease_is_held_and_renewals_keep_it_past_its_ttl,
	        setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_failed_renewals_end_the_lease_within_its_validity, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_failed_precondition_ends_the_lease_for_good, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_stop_releases_once_and_stops_holding, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_acquire_gives_up_after_its_timeout_with_the_reason, setup,
	        teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
