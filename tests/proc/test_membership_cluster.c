/*
 * The agent cluster of the membership process tests; see
 * test_membership_cluster.h.
 */
#include "test_membership_cluster.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto/keyfile.h"
#include "crypto/seal.h"
#include "rpc/method.h"

#define READY_TIMEOUT_MS 10000
#define RPC_TIMEOUT_MS   2000
#define POLL_MS          20

long mc_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const rk_rpc_method_t *get_members_method(void)
{
	static rk_rpc_method_t m;
	static bool done;
	if (!done) {
		rk_rpc_method_resolve(
		    &ringkv__v1__membership__descriptor,
		    &ringkv__v1__membership_method__descriptor, "GetMembers",
		    &m);
		done = true;
	}
	return &m;
}

int mc_init(mc_cluster_t *c, int n, uint64_t forget_ms)
{
	memset(c, 0, sizeof(*c));
	c->n = n;
	c->forget_ms = forget_ms;
	c->tmp = rk_proc_tmpdir("ms");
	if (c->tmp == NULL)
		return -1;
	snprintf(c->key, sizeof(c->key), "%s/cluster.key", c->tmp);
	if (rk_keyfile_generate(c->key, false, NULL) != RK_OK)
		return -1;
	uint8_t key[RK_SEAL_KEY_BYTES];
	if (rk_keyfile_read(c->key, key, NULL) != RK_OK ||
	    rk_sealer_new(key, 0, &c->sealer) != RK_OK)
		return -1;
	if (rk_notify_open(&c->notify, c->tmp, "notify") != 0)
		return -1;
	for (int i = 0; i < n; i++) {
		mc_agent_t *a = &c->a[i];
		snprintf(a->dir, sizeof(a->dir), "%s/data%d", c->tmp, i);
		snprintf(a->config, sizeof(a->config), "%s/agent%d.yaml",
		         c->tmp, i);
		snprintf(a->log, sizeof(a->log), "%s/agent%d.log", c->tmp, i);
	}
	return 0;
}

static int write_config(mc_cluster_t *c, int i, int port)
{
	mc_agent_t *a = &c->a[i];
	char seeds[512] = "";
	size_t off = 0;
	int nseeds = 0;
	for (int j = 0; j < c->n && nseeds < 3; j++) {
		if (j == i || !c->a[j].running)
			continue;
		off +=
		    (size_t)snprintf(seeds + off, sizeof(seeds) - off, "%s%s",
		                     nseeds ? ", " : "", c->a[j].url);
		nseeds++;
	}
	char text[2 * PATH_MAX + 2048];
	int len = snprintf(text, sizeof(text),
	                   "node:\n"
	                   "  id: agent-%d\n"
	                   "  datacenter: dc1\n"
	                   "  rack: rack%d\n"
	                   "rpc:\n"
	                   "  listen: tcp://127.0.0.1:%d\n"
	                   "admin:\n"
	                   "  listen: 127.0.0.1:0\n"
	                   "security:\n"
	                   "  cluster_key_file: %s\n"
	                   "log:\n"
	                   "  level: info\n"
	                   "membership:\n"
	                   "  data_dir: %s\n"
	                   "  seeds: [%s]\n"
	                   "  round: %dms\n"
	                   "  fanout: 3\n"
	                   "  suspect_timeout: %dms\n"
	                   "  isolation_timeout: 500ms\n"
	                   "  probe_timeout: 150ms\n"
	                   "  forget_after: %llums\n"
	                   "  health_check: \"%s\"\n",
	                   i, i % 3, port, c->key, a->dir, seeds, MC_ROUND_MS,
	                   MC_SUSPECT_MS, (unsigned long long)c->forget_ms,
	                   a->health);
	if (len < 0 || (size_t)len >= sizeof(text))
		return -1;
	return rk_proc_write_file(a->config, text);
}

int mc_start(mc_cluster_t *c, int i, int port)
{
	mc_agent_t *a = &c->a[i];
	if (write_config(c, i, port) != 0)
		return -1;
	char bin[PATH_MAX];
	if (rk_proc_bin_path("ringkv-membership", bin, sizeof(bin)) != 0)
		return -1;
	char notify_env[160];
	snprintf(notify_env, sizeof(notify_env), "NOTIFY_SOCKET=%s",
	         c->notify.path);
	const char *argv[] = {bin, "--config", a->config, NULL};
	const char *env[] = {notify_env, NULL};
	/* Append to the log: a restart keeps what the last life said. */
	char prev[PATH_MAX + 8];
	snprintf(prev, sizeof(prev), "%s.%ld", a->log, mc_now_ms());
	rename(a->log, prev);
	rk_proc_opts_t o = {.argv = argv, .env = env, .stderr_path = a->log};
	memset(&a->proc, 0, sizeof(a->proc));
	if (rk_proc_spawn(&a->proc, &o) != 0)
		return -1;
	char msg[512];
	if (rk_notify_wait(&c->notify, a->proc.pid, "READY=1", READY_TIMEOUT_MS,
	                   msg, sizeof(msg)) != 1) {
		rk_proc_dump(&a->proc, stderr);
		return -1;
	}
	int admin;
	if (rk_notify_ports(msg, &a->port, &admin) != 0)
		return -1;
	snprintf(a->url, sizeof(a->url), "tcp://127.0.0.1:%d", a->port);
	rk_rpc_client_free(a->client);
	a->client = NULL;
	rk_rpc_client_opts_t co = {.url = a->url,
	                           .sealer = c->sealer,
	                           .reconnect_min_ms = 10,
	                           .reconnect_max_ms = 200,
	                           .caller = "test"};
	if (rk_rpc_client_new(&co, &a->client) != RK_OK)
		return -1;
	a->running = true;
	rk_rpc_result_t res;
	const Ringkv__V1__MemberTable *t = mc_table(c, i, &res);
	if (t == NULL || !t->has_agent_node_id || t->agent_node_id.len != 16) {
		rk_rpc_result_clear(&res);
		return -1;
	}
	memcpy(a->id, t->agent_node_id.data, 16);
	rk_rpc_result_clear(&res);
	return 0;
}

int mc_start_all(mc_cluster_t *c)
{
	for (int i = 0; i < c->n; i++)
		if (mc_start(c, i, 0) != 0)
			return -1;
	return 0;
}

void mc_kill(mc_cluster_t *c, int i)
{
	rk_proc_kill(&c->a[i].proc);
	c->a[i].running = false;
}

int mc_stop(mc_cluster_t *c, int i)
{
	rk_proc_signal(&c->a[i].proc, SIGTERM);
	int r = rk_proc_wait(&c->a[i].proc, 5000);
	c->a[i].running = false;
	if (r != 1) {
		rk_proc_kill(&c->a[i].proc);
		return -1;
	}
	return rk_proc_exit_code(&c->a[i].proc) == 0 ? 0 : -1;
}

void mc_fini(mc_cluster_t *c, bool dump)
{
	for (int i = 0; i < c->n; i++) {
		mc_agent_t *a = &c->a[i];
		if (a->running)
			rk_proc_signal(&a->proc, SIGCONT);
		rk_proc_kill(&a->proc);
		rk_rpc_client_free(a->client);
		a->client = NULL;
		if (dump && a->proc.pid != 0)
			rk_proc_dump(&a->proc, stderr);
	}
	rk_notify_close(&c->notify);
	rk_sealer_free(c->sealer);
	c->sealer = NULL;
	if (c->tmp != NULL && !dump)
		rk_proc_rmtree(c->tmp);
	else if (c->tmp != NULL)
		fprintf(stderr, "kept %s for inspection\n", c->tmp);
	free(c->tmp);
	c->tmp = NULL;
}

int mc_accusers(const Ringkv__V1__Member *m)
{
	int n = 0;
	for (size_t i = 0; i < m->n_accusers; i++) {
		const Ringkv__V1__Accusation *a = m->accusers[i];
		if (a->incarnation != m->incarnation)
			continue;
		bool dup = false;
		for (size_t j = 0; j < i && !dup; j++)
			dup = m->accusers[j]->incarnation == m->incarnation &&
			      m->accusers[j]->accuser_node_id.len ==
			          a->accuser_node_id.len &&
			      memcmp(m->accusers[j]->accuser_node_id.data,
			             a->accuser_node_id.data,
			             a->accuser_node_id.len) == 0;
		if (!dup)
			n++;
	}
	return n;
}

const Ringkv__V1__MemberTable *mc_table(mc_cluster_t *c, int i,
                                        rk_rpc_result_t *res)
{
	Ringkv__V1__GetMembersRequest req =
	    RINGKV__V1__GET_MEMBERS_REQUEST__INIT;
	if (rk_rpc_call(c->a[i].client, get_members_method(), &req.base,
	                RPC_TIMEOUT_MS, res) != RK_OK)
		return NULL;
	const Ringkv__V1__GetMembersResponse *r = (const void *)res->response;
	if (r->table == NULL)
		return NULL;
	for (size_t k = 0; k < r->table->n_members; k++) {
		const Ringkv__V1__Member *m = r->table->members[k];
		if (m->state == RINGKV__V1__MEMBER_STATE__MEMBER_DOWN &&
		    mc_accusers(m) < 2) {
			fprintf(stderr,
			        "agent %d holds a DOWN entry with %d "
			        "accuser(s)\n",
			        i, mc_accusers(m));
			c->bad_down = true;
		}
	}
	return r->table;
}

const Ringkv__V1__Member *mc_find(const Ringkv__V1__MemberTable *t,
                                  const uint8_t *id)
{
	for (size_t k = 0; k < t->n_members; k++)
		if (t->members[k]->node_id.len == 16 &&
		    memcmp(t->members[k]->node_id.data, id, 16) == 0)
			return t->members[k];
	return NULL;
}

long mc_wait_all(mc_cluster_t *c, int skip, mc_pred_fn pred, void *arg,
                 long timeout_ms)
{
	long start = mc_now_ms();
	for (;;) {
		c->pass++;
		bool all = true;
		for (int i = 0; i < c->n && all; i++) {
			if (i == skip || !c->a[i].running)
				continue;
			rk_rpc_result_t res;
			const Ringkv__V1__MemberTable *t = mc_table(c, i, &res);
			all = t != NULL && pred(c, i, t, arg);
			rk_rpc_result_clear(&res);
		}
		long took = mc_now_ms() - start;
		if (all)
			return took;
		if (took > timeout_ms)
			return -1;
		struct timespec ts = {0, POLL_MS * 1000000L};
		nanosleep(&ts, NULL);
	}
}

bool mc_pred_converged(mc_cluster_t *c, int agent,
                       const Ringkv__V1__MemberTable *t, void *arg)
{
	(void)agent;
	mc_converge_arg_t *ca = arg;
	int running = 0;
	for (int i = 0; i < c->n; i++) {
		if (!c->a[i].running)
			continue;
		running++;
		const Ringkv__V1__Member *m = mc_find(t, c->a[i].id);
		if (m == NULL ||
		    m->state != RINGKV__V1__MEMBER_STATE__MEMBER_ALIVE)
			return false;
	}
	int present = 0;
	for (size_t k = 0; k < t->n_members; k++)
		if (t->members[k]->state !=
		    RINGKV__V1__MEMBER_STATE__MEMBER_LEFT)
			present++;
	if (present != running || t->digest.len != 16)
		return false;
	if (ca->pass != c->pass) {
		ca->pass = c->pass;
		memcpy(ca->digest, t->digest.data, 16);
		return true;
	}
	return memcmp(ca->digest, t->digest.data, 16) == 0;
}

bool mc_pred_state(mc_cluster_t *c, int agent, const Ringkv__V1__MemberTable *t,
                   void *arg)
{
	(void)c;
	(void)agent;
	const mc_state_arg_t *s = arg;
	const Ringkv__V1__Member *m = mc_find(t, s->id);
	if (s->state == 0)
		return m == NULL;
	if (m == NULL)
		return false;
	if ((int)m->state != s->state &&
	    !(s->alt_state != 0 && (int)m->state == s->alt_state))
		return false;
	return m->generation >= s->min_generation &&
	       m->incarnation >= s->min_incarnation;
}
