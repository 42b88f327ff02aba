/*
 * Gossip between real ringkv-membership processes on loopback: tables
 * converge within a bounded number of rounds (5 and 7 agents), a killed
 * agent is marked down by every other within a bounded time and never on
 * one accuser's word, the change is pushed on the events socket, and an
 * agent paused past the suspect timeout refutes when it resumes and stays.
 *
 * Rounds are 100 ms and the suspect timeout 600 ms (see
 * test_membership_cluster.c). The times measured are printed:
 *
 *	build-ms/bin/test_membership_gossip 2>/dev/null | grep -E
 *'converged|down in'
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "rpc/frame.h"
#include "test_membership_cluster.h"

#define CONVERGE_ROUNDS 40 /* bound on rounds to converge */
#define DETECT_ROUNDS   30 /* bound on rounds past the suspect timeout */

typedef struct fixture {
	mc_cluster_t c; /* the agents */
	bool passed;    /* set last by each case */
} fixture_t;

static int setup(void **state)
{
	fixture_t *f = calloc(1, sizeof(*f));
	*state = f;
	return f == NULL ? -1 : 0;
}

static int teardown(void **state)
{
	fixture_t *f = *state;
	mc_fini(&f->c, !f->passed);
	free(f);
	return 0;
}

static bool pred_down_two_accusers(mc_cluster_t *c, int agent,
                                   const Ringkv__V1__MemberTable *t, void *arg)
{
	(void)c;
	(void)agent;
	const Ringkv__V1__Member *m = mc_find(t, arg);
	return m != NULL && m->state == RINGKV__V1__MEMBER_STATE__MEMBER_DOWN &&
	       mc_accusers(m) >= 2;
}

/* Dials agent I's events socket. */
static void subscribe(mc_cluster_t *c, int i, nng_socket *sub)
{
	rk_rpc_result_t res;
	const Ringkv__V1__MemberTable *t = mc_table(c, i, &res);
	assert_non_null(t);
	const Ringkv__V1__Member *self = mc_find(t, c->a[i].id);
	assert_non_null(self);
	char url[128] = "";
	for (size_t k = 0; k < self->n_endpoints; k++)
		if (self->endpoints[k]->kind ==
		    RINGKV__V1__ENDPOINT_KIND__ENDPOINT_EVENTS)
			snprintf(url, sizeof(url), "%s",
			         self->endpoints[k]->url);
	rk_rpc_result_clear(&res);
	assert_true(url[0] != '\0');
	assert_int_equal(nng_sub0_open(sub), 0);
	assert_int_equal(nng_socket_set(*sub, NNG_OPT_SUB_SUBSCRIBE, "", 0), 0);
	assert_int_equal(nng_socket_set_ms(*sub, NNG_OPT_RECVTIMEO, 200), 0);
	assert_int_equal(nng_dial(*sub, url, NULL, 0), 0);
}

/* Reads events until one says VICTIM is down (true) or the time is up;
 * versions must rise from one event to the next. */
static bool wait_down_event(mc_cluster_t *c, nng_socket sub,
                            const uint8_t *victim, long timeout_ms)
{
	long end = mc_now_ms() + timeout_ms;
	uint64_t last_version = 0;
	rk_arena_t arena;
	rk_arena_init(&arena, 1 << 20);
	bool seen = false;
	while (!seen && mc_now_ms() < end) {
		nng_msg *msg;
		if (nng_recvmsg(sub, &msg, 0) != 0)
			continue;
		rk_frame_t fr;
		const char *why = NULL;
		rk_arena_reset(&arena);
		rk_status_t st = rk_frame_open(
		    c->sealer, false, RK_FRAME_REQUEST, NULL, nng_msg_body(msg),
		    nng_msg_len(msg), false, &arena, &fr, &why);
		assert_int_equal(st, RK_OK);
		Ringkv__V1__MembershipEvent *ev =
		    ringkv__v1__membership_event__unpack(NULL, fr.plain_len,
		                                         fr.plain);
		nng_msg_free(msg);
		assert_non_null(ev);
		assert_true(ev->version > last_version);
		last_version = ev->version;
		if (ev->member != NULL && ev->member->node_id.len == 16 &&
		    memcmp(ev->member->node_id.data, victim, 16) == 0 &&
		    ev->member->state ==
		        RINGKV__V1__MEMBER_STATE__MEMBER_DOWN) {
			assert_true(mc_accusers(ev->member) >= 2);
			seen = true;
		}
		ringkv__v1__membership_event__free_unpacked(ev, NULL);
	}
	rk_arena_fini(&arena);
	return seen;
}

/* `ringkv cluster status` at agent I shows VICTIM down with its two
 * accusers named. */
static void check_status_cli(mc_cluster_t *c, int i, const uint8_t *victim)
{
	char bin[PATH_MAX], out[PATH_MAX];
	assert_int_equal(rk_proc_bin_path("ringkv", bin, sizeof(bin)), 0);
	snprintf(out, sizeof(out), "%s/status.txt", c->tmp);
	const char *argv[] = {bin,    "cluster",   "status", "--key",
	                      c->key, c->a[i].url, NULL};
	rk_proc_opts_t o = {.argv = argv, .stdout_path = out};
	assert_int_equal(rk_proc_run(&o, 10000), 0);
	char *text = rk_proc_read_file(out, NULL);
	assert_non_null(text);
	printf("%s", text);
	char hex[9];
	snprintf(hex, sizeof(hex), "%02x%02x%02x%02x", victim[0], victim[1],
	         victim[2], victim[3]);
	char *line = strstr(text, hex);
	assert_non_null(line);
	char *eol = strchr(line, '\n');
	if (eol != NULL)
		*eol = '\0';
	assert_non_null(strstr(line, " down "));
	int named = 0;
	for (char *p = line; (p = strstr(p, "(agent-")) != NULL; p++)
		named++;
	assert_true(named >= 2);
	free(text);
}

/* N agents: converge, then kill -9 the last and see every other mark it
 * down, on two accusers, and say so on the events socket. */
static void converge_and_detect(fixture_t *f, int n)
{
	mc_cluster_t *c = &f->c;
	assert_int_equal(mc_init(c, n, 60000), 0);
	long first = mc_now_ms();
	assert_int_equal(mc_start_all(c), 0);
	long started = mc_now_ms() - first;
	mc_converge_arg_t ca = {0};
	long took = mc_wait_all(c, -1, mc_pred_converged, &ca,
	                        CONVERGE_ROUNDS * MC_ROUND_MS);
	printf("%d agents: converged %ld ms after the last one started "
	       "(%.1f rounds of %d ms); %ld ms after the first (starting "
	       "them one by one took %ld ms)\n",
	       n, took, took / (double)MC_ROUND_MS, MC_ROUND_MS, took + started,
	       started);
	assert_true(took >= 0);

	nng_socket sub;
	subscribe(c, 0, &sub);
	int victim = n - 1;
	uint8_t id[16];
	memcpy(id, c->a[victim].id, 16);
	long t0 = mc_now_ms();
	mc_kill(c, victim);
	took = mc_wait_all(c, victim, pred_down_two_accusers, id,
	                   MC_SUSPECT_MS + DETECT_ROUNDS * MC_ROUND_MS);
	printf("%d agents: a killed agent was marked down in %ld ms by all %d "
	       "others (suspect timeout %d ms, rounds %d ms)\n",
	       n, took, n - 1, MC_SUSPECT_MS, MC_ROUND_MS);
	assert_true(took >= 0);
	assert_true(wait_down_event(c, sub, id, 2000));
	nng_close(sub);
	check_status_cli(c, 0, id);
	(void)t0;
	assert_false(c->bad_down);
	f->passed = true;
}

static void
test_five_agents_converge_and_all_mark_a_killed_one_down(void **state)
{
	converge_and_detect(*state, 5);
}

static void
test_seven_agents_converge_and_all_mark_a_killed_one_down(void **state)
{
	converge_and_detect(*state, 7);
}

static void test_paused_agent_refutes_when_resumed_and_stays(void **state)
{
	fixture_t *f = *state;
	mc_cluster_t *c = &f->c;
	assert_int_equal(mc_init(c, 5, 60000), 0);
	assert_int_equal(mc_start_all(c), 0);
	mc_converge_arg_t ca = {0};
	assert_true(mc_wait_all(c, -1, mc_pred_converged, &ca,
	                        CONVERGE_ROUNDS * MC_ROUND_MS) >= 0);
	rk_rpc_result_t res;
	const Ringkv__V1__MemberTable *t = mc_table(c, 2, &res);
	assert_non_null(t);
	uint64_t inc = mc_find(t, c->a[2].id)->incarnation;
	rk_rpc_result_clear(&res);

	/* Paused past the suspect timeout: everyone else convicts it. */
	assert_int_equal(rk_proc_signal(&c->a[2].proc, SIGSTOP), 0);
	long took = mc_wait_all(c, 2, pred_down_two_accusers, c->a[2].id,
	                        MC_SUSPECT_MS + DETECT_ROUNDS * MC_ROUND_MS);
	assert_true(took >= 0);
	printf("paused agent marked down by the others in %ld ms\n", took);

	/* Resumed: it refutes with a higher incarnation, everywhere, and
	 * convicted nobody itself meanwhile. */
	assert_int_equal(rk_proc_signal(&c->a[2].proc, SIGCONT), 0);
	mc_state_arg_t back = {.id = c->a[2].id,
	                       .state = RINGKV__V1__MEMBER_STATE__MEMBER_ALIVE,
	                       .min_generation = 1,
	                       .min_incarnation = inc + 1};
	took = mc_wait_all(c, -1, mc_pred_state, &back,
	                   DETECT_ROUNDS * MC_ROUND_MS);
	printf("resumed agent refuted, alive everywhere again in %ld ms\n",
	       took);
	assert_true(took >= 0);
	for (int i = 0; i < c->n; i++) {
		if (i == 2)
			continue;
		mc_state_arg_t alive = {
		    .id = c->a[i].id,
		    .state = RINGKV__V1__MEMBER_STATE__MEMBER_ALIVE};
		t = mc_table(c, 2, &res);
		assert_non_null(t);
		assert_true(mc_pred_state(c, 2, t, &alive));
		rk_rpc_result_clear(&res);
	}
	assert_true(rk_proc_line_of(c->a[2].log, "refuting") > 0);
	/* And it stays: a whole suspect timeout later the cluster still
	 * agrees on all five. */
	long settle = mc_now_ms() + 2 * MC_SUSPECT_MS;
	while (mc_now_ms() < settle)
		assert_true(mc_wait_all(c, -1, mc_pred_converged, &ca,
		                        DETECT_ROUNDS * MC_ROUND_MS) >= 0);
	assert_false(c->bad_down);
	f->passed = true;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_five_agents_converge_and_all_mark_a_killed_one_down, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_seven_agents_converge_and_all_mark_a_killed_one_down,
	        setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_paused_agent_refutes_when_resumed_and_stays, setup,
	        teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
