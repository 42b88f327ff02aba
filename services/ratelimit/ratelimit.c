/*
 * The Ratelimit service's hooks; see ratelimit.h.
 *
 * The runtime calls `configure` on the freshly read config both at start
 * and on SIGHUP (on a copy of the service object), before it decides
 * whether the config is good. So `configure` only reads: it parses the
 * settings and the rules file into `pending`, recording any problem as a
 * config error (which makes the runtime reject the whole config), and
 * `start` or `reload` then installs what is pending. Nothing here is
 * allocated per service object, so the check-only path (--check-config)
 * leaves nothing behind but `pending`, which the next load replaces.
 */
#include "ratelimit.h"

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "checker.h"
#include "cluster/cluster.h"
#include "core/clock.h"
#include "core/log.h"
#include "forward.h"
#include "handlers.h"
#include "rules.h"

typedef struct settings {
	char rules_file[PATH_MAX];      /* resolved against the config's dir */
	uint64_t shards;                /* key-table shards */
	uint64_t max_keys;              /* keys in all */
	uint64_t max_log_bytes;         /* sliding-log rings in all */
	uint64_t max_hits;              /* per check */
	uint64_t max_batch;             /* checks per CheckBatch */
	uint64_t log_entries;           /* sliding-log bound per key */
	uint64_t retry_ms;              /* retry-after when failing closed */
	char agent[RK_CLUSTER_URL_MAX]; /* membership agent; "": single */
	char advertise[RK_CLUSTER_URL_MAX]; /* our RPC URL for peers; "":
	                                       rpc.listen's host, bound port */
	char listen_host[128];              /* host of rpc.listen */
	uint64_t poll_ms;                   /* ring refetch period (fallback) */
	uint64_t agent_timeout_ms;          /* deadline of calls to the agent */
	uint64_t forward_ms;                /* cap of one forwarded call */
} settings_t;

static struct {
	settings_t pending;           /* from the last configure */
	rk_rl_rules_t *pending_rules; /* from the last good configure; owned */
	settings_t running;           /* what start installed */
	rk_rl_gate_t gate;            /* handlers -> checker; never freed */
	rk_cluster_t *cluster;        /* the ratelimit ring; NULL: single */
	rk_rl_fwd_t *fwd;             /* forwarder over it; NULL: single */
	rk_service_t *svc;            /* for our bound port */
} g = {.gate = {.lock = PTHREAD_MUTEX_INITIALIZER}};

static rk_status_t configure(rk_service_t *svc, rk_config_t *cfg)
{
	(void)svc;
	settings_t s;
	memset(&s, 0, sizeof(s));
	const char *rules = rk_config_string(cfg, "ratelimit.rules_file", NULL);
	if (rules == NULL || rules[0] == '\0') {
		/* No rules: every domain is unknown (NOT_FOUND). Lets a
		 * config without a ratelimit section start, as the local
		 * dev cluster's does. */
	} else if (rules[0] == '/') {
		snprintf(s.rules_file, sizeof(s.rules_file), "%s", rules);
	} else {
		char dir[PATH_MAX];
		snprintf(dir, sizeof(dir), "%s", rk_config_name(cfg));
		snprintf(s.rules_file, sizeof(s.rules_file), "%s/%s",
		         dirname(dir), rules);
	}
	s.shards =
	    (uint64_t)rk_config_int(cfg, "ratelimit.shards", 64, 1, 4096);
	s.max_keys = (uint64_t)rk_config_int(cfg, "ratelimit.max_keys", 1 << 20,
	                                     1024, 1ll << 32);
	s.max_log_bytes = rk_config_size(cfg, "ratelimit.max_log_memory",
	                                 64u << 20, 1u << 16, 1ull << 40);
	s.max_hits = (uint64_t)rk_config_int(cfg, "ratelimit.max_hits", 1000000,
	                                     1, (int64_t)RK_RL_MAX_LIMIT);
	s.max_batch = (uint64_t)rk_config_int(cfg, "ratelimit.max_batch", 1000,
	                                      1, 100000);
	s.log_entries = (uint64_t)rk_config_int(
	    cfg, "ratelimit.sliding_log_max_entries", 65536, 16, 1 << 24);
	s.retry_ms = rk_config_duration_ms(cfg, "ratelimit.unreachable_retry",
	                                   1000, 1, 3600000);
	const char *agent =
	    rk_config_string(cfg, "ratelimit.membership.agent", NULL);
	if (agent != NULL && agent[0] != '\0') {
		if (strlen(agent) >= sizeof(s.agent) ||
		    strncmp(agent, "tcp://", 6) != 0)
			rk_config_error(
			    cfg, "ratelimit.membership.agent",
			    "want a tcp:// URL of at most %zu bytes",
			    sizeof(s.agent) - 1);
		else
			snprintf(s.agent, sizeof(s.agent), "%s", agent);
	}
	const char *adv =
	    rk_config_string(cfg, "ratelimit.membership.advertise", NULL);
	if (adv != NULL && adv[0] != '\0') {
		if (strlen(adv) >= sizeof(s.advertise) ||
		    strncmp(adv, "tcp://", 6) != 0)
			rk_config_error(
			    cfg, "ratelimit.membership.advertise",
			    "want a tcp:// URL of at most %zu bytes",
			    sizeof(s.advertise) - 1);
		else
			snprintf(s.advertise, sizeof(s.advertise), "%s", adv);
	}
	const char *listen =
	    rk_config_string(cfg, "rpc.listen", "tcp://127.0.0.1:7400");
	if (strncmp(listen, "tcp://", 6) == 0) {
		const char *h = listen + 6, *colon = strrchr(h, ':');
		size_t hl = colon ? (size_t)(colon - h) : strlen(h);
		if (hl < sizeof(s.listen_host))
			snprintf(s.listen_host, sizeof(s.listen_host), "%.*s",
			         (int)hl, h);
	}
	s.poll_ms = rk_config_duration_ms(cfg, "ratelimit.membership.poll",
	                                  1000, 10, 3600000);
	s.agent_timeout_ms = rk_config_duration_ms(
	    cfg, "ratelimit.membership.agent_timeout", 1000, 10, 60000);
	s.forward_ms = rk_config_duration_ms(
	    cfg, "ratelimit.membership.forward_timeout", 500, 1, 60000);
	rk_rl_rules_opts_t ro = {.sliding_log_max_entries =
	                             (uint32_t)s.log_entries};
	rk_rl_rules_t *r = NULL;
	char *err = NULL;
	if (s.rules_file[0] == '\0') {
		r = rk_rl_rules_empty();
		if (r == NULL)
			return RK_RESOURCE_EXHAUSTED;
	} else if (rk_rl_rules_load(s.rules_file, &ro, &r, &err) != RK_OK) {
		rk_config_error(cfg, "ratelimit.rules_file",
		                "rules rejected:\n%s",
		                err ? err : "unreadable");
		rk_rl_gate_set_error(&g.gate, err ? err : "unreadable");
		free(err);
		return RK_INVALID_ARGUMENT;
	}
	rk_rl_rules_free(g.pending_rules);
	g.pending_rules = r;
	g.pending = s;
	return RK_OK;
}

/* Our RPC endpoint for the ring: the advertised URL, else the stream
 * transport's, else rpc.listen's host with the bound port (false until
 * the listener is bound). */
static bool self_url(void *arg, char *buf, size_t len)
{
	const settings_t *s = &g.running;
	if (s->advertise[0] != '\0')
		return (size_t)snprintf(buf, len, "%s", s->advertise) < len;
	/* Forwards take the stream transport when it is on: a forwarded
	 * check then costs one plain TCP round trip, not nng's. */
	if (rk_service_stream_url(arg, buf, len))
		return true;
	int port = rk_rpc_server_port(rk_service_rpc(arg));
	if (port <= 0)
		return false;
	const char *host = s->listen_host;
	if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 ||
	    strcmp(host, "*") == 0)
		host = "127.0.0.1";
	return (size_t)snprintf(buf, len, "tcp://%s:%d", host, port) < len;
}

/* Joins the ratelimit ring through the agent (docs/ratelimit.md,
 * "Distributed"). Our UUID is derived from node.id, so a restarted
 * instance takes back its place on the ring (and most of its keys);
 * the generation (wall ms) tells the restart apart. */
static rk_status_t cluster_start(rk_service_t *svc, rk_rl_checker_opts_t *co)
{
	const settings_t *s = &g.running;
	const char *node = rk_service_node_id(svc);
	uint8_t id[RK_RING_ID_BYTES];
	if (sodium_init() < 0)
		return RK_INTERNAL;
	crypto_generichash(id, sizeof(id), (const unsigned char *)node,
	                   strlen(node), (const unsigned char *)"ratelimit", 9);
	rk_cluster_opts_t o = {
	    .agent_url = s->agent,
	    .sealer = rk_service_sealer(svc),
	    .role = RINGKV__V1__SERVICE_ID__SERVICE_RATELIMIT,
	    .self_url_fn = self_url,
	    .self_url_arg = svc,
	    .self_id = id,
	    .generation = rk_clock_unix_ms(),
	    .name = node,
	    .poll_ms = (uint32_t)s->poll_ms,
	    .timeout_ms = (uint32_t)s->agent_timeout_ms,
	    .metrics = rk_service_metrics(svc),
	};
	rk_status_t st = rk_cluster_start(&o, &g.cluster);
	if (st == RK_OK)
		st = rk_rl_fwd_new(g.cluster, rk_service_sealer(svc),
		                   (uint32_t)s->forward_ms, &g.fwd);
	if (st != RK_OK)
		return st;
	co->owner = rk_rl_fwd_owner;
	co->owner_arg = g.fwd;
	g.gate.fwd = g.fwd;
	rk_info("ratelimit: sharded over the ratelimit ring through agent "
	        "%s (%zu members now)",
	        s->agent, rk_cluster_ring_size(g.cluster));
	return RK_OK;
}

static rk_status_t start(rk_service_t *svc)
{
	if (g.pending_rules == NULL)
		return RK_FAILED_PRECONDITION;
	const settings_t *s = &g.pending;
	rk_rl_checker_opts_t co = {
	    .table = {.shards = s->shards,
	              .max_keys = s->max_keys,
	              .max_log_bytes = s->max_log_bytes},
	    .max_hits = (uint32_t)s->max_hits,
	    .unreachable_retry_ms = (uint32_t)s->retry_ms,
	    .metrics = rk_service_metrics(svc),
	};
	g.running = *s;
	g.svc = svc;
	rk_status_t st = RK_OK;
	if (s->agent[0] != '\0')
		st = cluster_start(svc, &co);
	if (st != RK_OK)
		return st;
	rk_rl_checker_t *c = NULL;
	st = rk_rl_checker_new(&co, g.pending_rules, &c);
	if (st != RK_OK)
		return st;
	g.pending_rules = NULL;
	rk_rl_gate_set_error(&g.gate, NULL);
	rk_rl_gate_open(&g.gate, c, (uint32_t)s->max_batch);
	st = rk_rl_handlers_register(rk_service_rpc(svc), &g.gate);
	if (st != RK_OK)
		return st;
	if (s->rules_file[0] == '\0')
		rk_warn("ratelimit: no ratelimit.rules_file: no rules, every "
		        "check answers NOT_FOUND");
	rk_info("ratelimit: rules %s loaded (version 1), %llu shards, "
	        "%llu keys at most",
	        s->rules_file, (unsigned long long)s->shards,
	        (unsigned long long)s->max_keys);
	return RK_OK;
}

static rk_status_t reload(rk_service_t *svc, rk_config_t *cfg)
{
	(void)svc;
	(void)cfg;
	rk_rl_checker_t *c = atomic_load(&g.gate.checker);
	if (c == NULL || g.pending_rules == NULL)
		return RK_FAILED_PRECONDITION;
	const settings_t *p = &g.pending, *r = &g.running;
	if (p->shards != r->shards || p->max_keys != r->max_keys ||
	    p->max_log_bytes != r->max_log_bytes)
		rk_warn("ratelimit: shards, max_keys and max_log_memory change "
		        "only at a restart; keeping the running ones");
	if (strcmp(p->agent, r->agent) != 0)
		rk_warn("ratelimit: membership settings change only at a "
		        "restart; keeping the running ones");
	atomic_store(&g.gate.max_batch, (uint32_t)p->max_batch);
	uint64_t v = rk_rl_checker_install(c, g.pending_rules);
	g.pending_rules = NULL;
	rk_rl_gate_set_error(&g.gate, NULL);
	rk_info("ratelimit: rules %s reloaded (version %llu)", p->rules_file,
	        (unsigned long long)v);
	return RK_OK;
}

static void stop(rk_service_t *svc)
{
	(void)svc;
	rk_rl_checker_free(rk_rl_gate_close(&g.gate));
	rk_cluster_stop(g.cluster); /* Leave: the others take our keys */
	g.cluster = NULL;
	rk_rl_fwd_free(g.fwd);
	g.fwd = NULL;
	g.gate.fwd = NULL;
	rk_rl_rules_free(g.pending_rules);
	g.pending_rules = NULL;
}

const rk_service_spec_t rk_ratelimit_spec = {
    .name = "ratelimit",
    .default_rpc_port = 7400,
    .default_admin_port = 8400,
    .configure = configure,
    .start = start,
    .reload = reload,
    .stop = stop,
};
