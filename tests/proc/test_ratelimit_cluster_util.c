/*
 * Helpers of test_ratelimit_cluster.c; see test_ratelimit_cluster.h.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "test_ratelimit_cluster.h"

long now_ms(void)
{
	return mc_now_ms();
}

void pause_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

int rl_start(fixture_t *f, int i, bool clustered)
{
	rl_t *r = &f->rl[i];
	snprintf(r->config, sizeof(r->config), "%s/rl%d.yaml", f->c.tmp, i);
	snprintf(r->log, sizeof(r->log), "%s/rl%d.log", f->c.tmp, i);
	char member[512] = "";
	if (clustered)
		snprintf(member, sizeof(member),
		         "  membership:\n"
		         "    agent: %s\n"
		         "    poll: 200ms\n"
		         "    agent_timeout: 500ms\n"
		         "    forward_timeout: %dms\n",
		         f->c.a[i].url, FORWARD_MS);
	char text[3 * PATH_MAX + 1024];
	snprintf(text, sizeof(text),
	         "node:\n"
	         "  id: rl-%d\n"
	         "rpc:\n"
	         "  listen: tcp://127.0.0.1:0\n"
	         "  stream_listen: stream://127.0.0.1:0\n"
	         "  default_timeout: 5s\n"
	         "admin:\n"
	         "  listen: 127.0.0.1:0\n"
	         "security:\n"
	         "  cluster_key_file: %s\n"
	         "log:\n"
	         "  level: info\n"
	         "ratelimit:\n"
	         "  rules_file: %s\n"
	         "%s",
	         i, f->c.key, f->rules, member);
	if (rk_proc_write_file(r->config, text) != 0)
		return -1;
	char bin[PATH_MAX], notify[200];
	if (rk_proc_bin_path("ringkv-ratelimit", bin, sizeof(bin)) != 0)
		return -1;
	snprintf(notify, sizeof(notify), "NOTIFY_SOCKET=%s", f->c.notify.path);
	const char *argv[] = {bin, "--config", r->config, NULL};
	const char *env[] = {notify, NULL};
	rk_proc_opts_t o = {.argv = argv, .env = env, .stderr_path = r->log};
	if (rk_proc_spawn(&r->proc, &o) != 0)
		return -1;
	char msg[1024];
	if (rk_notify_wait(&f->c.notify, r->proc.pid, "READY=1", WAIT_MS, msg,
	                   sizeof(msg)) != 1 ||
	    rk_notify_ports(msg, &r->port, &r->admin) != 0)
		return -1;
	/* The instances advertise their stream transport on the ring, so
	 * forwards go over it; the test calls them there too. */
	const char *sp = strstr(msg, ", stream on port ");
	if (sp == NULL)
		return -1;
	snprintf(r->url, sizeof(r->url), "stream://127.0.0.1:%d",
	         atoi(sp + strlen(", stream on port ")));
	rk_rpc_client_opts_t co = {
	    .url = r->url, .sealer = f->c.sealer, .caller = "test"};
	return rk_rpc_client_new(&co, &r->client) == RK_OK ? 0 : -1;
}

/* The value of the first /metrics line starting with PREFIX, summed over
 * every such line when SUM; -1 if none or unreachable. */
double metric(const rl_t *r, const char *prefix, bool sum)
{
	char *body = NULL;
	if (rk_http_get(r->admin, "/metrics", 3000, &body) != 200) {
		free(body);
		return -1;
	}
	double v = -1;
	for (char *line = body; line != NULL && *line != '\0';) {
		char *nl = strchr(line, '\n');
		if (nl != NULL)
			*nl = '\0';
		if (strncmp(line, prefix, strlen(prefix)) == 0) {
			char *sp = strrchr(line, ' ');
			if (sp != NULL) {
				double x = atof(sp + 1);
				v = v < 0 ? x : v + x;
				if (!sum)
					break;
			}
		}
		line = nl ? nl + 1 : NULL;
	}
	free(body);
	return v;
}

/* Waits until instance I's ring holds N members. */
bool wait_ring(const rl_t *r, int n)
{
	long until = now_ms() + WAIT_MS;
	while (now_ms() < until) {
		if (metric(r, "ringkv_cluster_ring_members{role=\"5\"}",
		           false) == n)
			return true;
		pause_ms(50); /* between polls of the gauge */
	}
	return false;
}

/* Fetches the ratelimit ring from agent 0 and maps its nodes to our
 * instances by their RPC endpoint. */
bool load_ring(fixture_t *f)
{
	rk_rpc_method_t m;
	if (rk_rpc_method_resolve(&ringkv__v1__membership__descriptor,
	                          &ringkv__v1__membership_method__descriptor,
	                          "GetRing", &m) != RK_OK)
		return false;
	Ringkv__V1__GetRingRequest req = RINGKV__V1__GET_RING_REQUEST__INIT;
	req.has_role = true;
	req.role = RINGKV__V1__SERVICE_ID__SERVICE_RATELIMIT;
	rk_rpc_result_t res;
	bool ok = false;
	if (rk_rpc_call(f->c.a[0].client, &m, &req.base, CALL_MS, &res) ==
	    RK_OK) {
		const Ringkv__V1__RingView *v =
		    ((const Ringkv__V1__GetRingResponse *)res.response)->ring;
		Ringkv__V1__Member *ms[16];
		size_t n = 0;
		for (size_t i = 0; i < v->n_members && n < 16; i++)
			ms[n++] = v->members[i]->member;
		ok = rk_ring_from_members(
		         ms, n, RINGKV__V1__SERVICE_ID__SERVICE_RATELIMIT,
		         v->vnodes_per_weight, &f->ring) == RK_OK &&
		     rk_ring_node_count(f->ring) == NRL;
		for (size_t k = 0; ok && k < rk_ring_node_count(f->ring); k++) {
			const rk_ring_node_t *node = rk_ring_node(f->ring, k);
			f->owner_of[k] = -1;
			for (size_t j = 0; j < n; j++) {
				if (memcmp(ms[j]->node_id.data, node->id, 16))
					continue;
				for (int r = 0; r < NRL; r++)
					if (ms[j]->n_endpoints > 0 &&
					    strcmp(ms[j]->endpoints[0]->url,
					           f->rl[r].url) == 0)
						f->owner_of[k] = r;
			}
			ok = f->owner_of[k] >= 0;
		}
	}
	rk_rpc_result_clear(&res);
	return ok;
}

/* The instance the ring says owns (DOMAIN, KEY, VALUE). */
int owner(const fixture_t *f, const char *domain, const char *key,
          const char *value)
{
	char buf[512];
	size_t n = 0;
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s", domain) + 1;
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s", key) + 1;
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s", value) + 1;
	int i = rk_ring_owner(f->ring, rk_ring_key_token(buf, n));
	return i < 0 ? -1 : f->owner_of[i];
}

/* --- calls ----------------------------------------------------------- */

/* One Check of (KEY, VALUE) on instance I. */
rk_status_t check(fixture_t *f, int i, const char *domain, const char *key,
                  const char *value, rk_rpc_result_t *res)
{
	Ringkv__V1__RateLimitEntry e = RINGKV__V1__RATE_LIMIT_ENTRY__INIT;
	e.key = (char *)key;
	e.value = (char *)value;
	Ringkv__V1__RateLimitEntry *ep = &e;
	Ringkv__V1__RateLimitDescriptor d =
	    RINGKV__V1__RATE_LIMIT_DESCRIPTOR__INIT;
	d.n_entries = 1;
	d.entries = &ep;
	Ringkv__V1__RateLimitDescriptor *dp = &d;
	Ringkv__V1__RateLimitCheckRequest req =
	    RINGKV__V1__RATE_LIMIT_CHECK_REQUEST__INIT;
	req.domain = (char *)domain;
	req.n_descriptors = 1;
	req.descriptors = &dp;
	return rk_rpc_call(f->rl[i].client, rk_rl_check_method(), &req.base,
	                   CALL_MS, res);
}

const Ringkv__V1__RateLimitCheckResponse *answer(const rk_rpc_result_t *res)
{
	return (const void *)res->response;
}

/* A batch of N checks of client_id=PREFIX-k on instance I. */
rk_status_t batch(fixture_t *f, int i, const char *prefix, int n,
                  rk_rpc_result_t *res)
{
	Ringkv__V1__RateLimitEntry e[64];
	Ringkv__V1__RateLimitEntry *ep[64];
	Ringkv__V1__RateLimitDescriptor d[64];
	Ringkv__V1__RateLimitDescriptor *dp[64];
	Ringkv__V1__RateLimitCheckRequest q[64];
	Ringkv__V1__RateLimitCheckRequest *qp[64];
	char vals[64][32];
	for (int k = 0; k < n; k++) {
		snprintf(vals[k], sizeof(vals[k]), "%s-%d", prefix, k % 20);
		ringkv__v1__rate_limit_entry__init(&e[k]);
		e[k].key = "client_id";
		e[k].value = vals[k];
		ep[k] = &e[k];
		ringkv__v1__rate_limit_descriptor__init(&d[k]);
		d[k].n_entries = 1;
		d[k].entries = &ep[k];
		dp[k] = &d[k];
		ringkv__v1__rate_limit_check_request__init(&q[k]);
		q[k].domain = k == 7 ? "no-such-domain" : "ringkv";
		q[k].n_descriptors = 1;
		q[k].descriptors = &dp[k];
		qp[k] = &q[k];
	}
	Ringkv__V1__RateLimitCheckBatchRequest req =
	    RINGKV__V1__RATE_LIMIT_CHECK_BATCH_REQUEST__INIT;
	req.n_checks = (size_t)n;
	req.checks = qp;
	return rk_rpc_call(f->rl[i].client, rk_rl_check_batch_method(),
	                   &req.base, CALL_MS, res);
}

/* One Check of client_id=V1 and open_key=V2 (two descriptors). */
rk_status_t check2(fixture_t *f, int i, const char *v1, const char *v2,
                   rk_rpc_result_t *res)
{
	Ringkv__V1__RateLimitEntry e[2] = {RINGKV__V1__RATE_LIMIT_ENTRY__INIT,
	                                   RINGKV__V1__RATE_LIMIT_ENTRY__INIT};
	e[0].key = "client_id";
	e[0].value = (char *)v1;
	e[1].key = "open_key";
	e[1].value = (char *)v2;
	Ringkv__V1__RateLimitEntry *ep[2] = {&e[0], &e[1]};
	Ringkv__V1__RateLimitDescriptor d[2] = {
	    RINGKV__V1__RATE_LIMIT_DESCRIPTOR__INIT,
	    RINGKV__V1__RATE_LIMIT_DESCRIPTOR__INIT};
	d[0].n_entries = 1;
	d[0].entries = &ep[0];
	d[1].n_entries = 1;
	d[1].entries = &ep[1];
	Ringkv__V1__RateLimitDescriptor *dp[2] = {&d[0], &d[1]};
	Ringkv__V1__RateLimitCheckRequest req =
	    RINGKV__V1__RATE_LIMIT_CHECK_REQUEST__INIT;
	req.domain = "ringkv";
	req.n_descriptors = 2;
	req.descriptors = dp;
	return rk_rpc_call(f->rl[i].client, rk_rl_check_method(), &req.base,
	                   CALL_MS, res);
}

/* The ratelimit ring's size as agent 0 sees it, or -1. */
int agent_ring_size(fixture_t *f)
{
	rk_ring_t *saved = f->ring;
	f->ring = NULL;
	int n = -1;
	rk_rpc_method_t m;
	if (rk_rpc_method_resolve(&ringkv__v1__membership__descriptor,
	                          &ringkv__v1__membership_method__descriptor,
	                          "GetRing", &m) == RK_OK) {
		Ringkv__V1__GetRingRequest req =
		    RINGKV__V1__GET_RING_REQUEST__INIT;
		req.has_role = true;
		req.role = RINGKV__V1__SERVICE_ID__SERVICE_RATELIMIT;
		rk_rpc_result_t res;
		if (rk_rpc_call(f->c.a[0].client, &m, &req.base, CALL_MS,
		                &res) == RK_OK)
			n = (int)((const Ringkv__V1__GetRingResponse *)
			              res.response)
			        ->ring->n_members;
		rk_rpc_result_clear(&res);
	}
	f->ring = saved;
	return n;
}
