/*
 * The service runtime; see service.h for what it does and in what order.
 *
 * Threads: main() blocks SIGTERM, SIGINT and SIGHUP before any other
 * thread exists (nng and the worker pool start later and inherit the
 * mask), then waits for them with sigtimedwait(): signals are handled as
 * ordinary events on the main thread, never in a signal handler. The same
 * wait times the watchdog and the uptime gauge.
 *
 * Readiness is proven, not assumed: after the RPC server and admin port
 * are up, the runtime calls its own Health.Check through a real client on
 * the real socket, and only when that answers SERVING does it tell
 * systemd READY=1.
 */
#include "service/service.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "admin/admin.h"
#include "core/clock.h"
#include "core/log.h"
#include "crypto/keyfile.h"
#include "rpc/client.h"
#include "service/health.h"

#define READY_TIMEOUT_MS 10000
#define TICK_MS          1000

struct rk_service {
	const rk_service_spec_t *spec; /* the binary's hooks */
	const char *config_path;       /* from argv */
	char node_id[128];             /* node.id */
	char datacenter[64];           /* node.datacenter */
	char rack[64];                 /* node.rack */
	char rpc_listen[256];          /* rpc.listen */
	char stream_listen[256];       /* rpc.stream_listen; "" for none */
	uint64_t stream_threads;       /* rpc.stream_threads; 0: per CPU */
	uint64_t max_frame;            /* rpc.max_frame_bytes */
	uint64_t work_items;           /* rpc.work_items */
	uint64_t workers;              /* rpc.workers */
	uint64_t default_timeout_ms;   /* rpc.default_timeout */
	char admin_listen[256];        /* admin.listen */
	char key_file[PATH_MAX];       /* security.cluster_key_file */
	bool allow_unsealed;           /* security.allow_unsealed */
	rk_log_level_t log_level;      /* log.level; applied only once the
	                                  whole config is valid */
	rk_sealer_t *sealer;           /* NULL when unsealed */
	rk_metrics_t *metrics;         /* the registry /metrics renders */
	rk_rpc_server_t *rpc;          /* the RPC server */
	rk_admin_t *admin;             /* the admin HTTP port */
	rk_rpc_client_t *self;         /* to ourselves, for readiness and
	                                  watchdog probes */
	rk_health_t health;            /* what Health.Check says */
	char degraded[256];            /* reason text behind health.detail */
	rk_gauge_t *uptime;            /* ringkv_uptime_seconds */
	void *data;                    /* the service's own state */
	bool hooks_started;            /* the start hook ran and succeeded:
	                                  only then does the stop hook run */
};

rk_rpc_server_t *rk_service_rpc(rk_service_t *svc)
{
	return svc->rpc;
}

rk_metrics_t *rk_service_metrics(rk_service_t *svc)
{
	return svc->metrics;
}

rk_sealer_t *rk_service_sealer(rk_service_t *svc)
{
	return svc->sealer;
}

const char *rk_service_node_id(const rk_service_t *svc)
{
	return svc->node_id;
}

void rk_service_set_data(rk_service_t *svc, void *data)
{
	svc->data = data;
}

void *rk_service_data(const rk_service_t *svc)
{
	return svc->data;
}

void rk_service_set_degraded(rk_service_t *svc, const char *reason)
{
	if (reason == NULL) {
		atomic_store(&svc->health.serving, true);
		return;
	}
	/* The text is copied into a fixed buffer that is never freed, so a
	 * Health handler reading the old pointer reads valid memory. */
	atomic_store(&svc->health.serving, false);
	snprintf(svc->degraded, sizeof(svc->degraded), "%s", reason);
	atomic_store(&svc->health.detail, svc->degraded);
}

static void usage(FILE *out, const char *name)
{
	fprintf(out,
	        "usage: ringkv-%s --config FILE [--check-config]\n"
	        "       ringkv-%s --version\n"
	        "\n"
	        "  -c, --config FILE   the YAML config (see docs/config.md)\n"
	        "  --check-config      validate the config and exit\n"
	        "  -V, --version       print the version and exit\n",
	        name, name);
}

/* Reads the sections every service has, then the service's own. */
static void read_common(rk_service_t *svc, rk_config_t *cfg)
{
	const rk_service_spec_t *spec = svc->spec;
	char host[64] = "localhost";
	gethostname(host, sizeof(host) - 1);
	snprintf(svc->node_id, sizeof(svc->node_id), "%s",
	         rk_config_string(cfg, "node.id", host));
	snprintf(svc->datacenter, sizeof(svc->datacenter), "%s",
	         rk_config_string(cfg, "node.datacenter", "dc1"));
	snprintf(svc->rack, sizeof(svc->rack), "%s",
	         rk_config_string(cfg, "node.rack", "rack1"));

	char def[64];
	snprintf(def, sizeof(def), "tcp://127.0.0.1:%u", spec->default_rpc_port);
	snprintf(svc->rpc_listen, sizeof(svc->rpc_listen), "%s",
	         rk_config_string(cfg, "rpc.listen", def));
	if (strncmp(svc->rpc_listen, "tcp://", 6) != 0)
		rk_config_error(cfg, "rpc.listen",
		                "expected tcp://HOST:PORT, got \"%s\"",
		                svc->rpc_listen);
	snprintf(svc->stream_listen, sizeof(svc->stream_listen), "%s",
	         rk_config_string(cfg, "rpc.stream_listen", ""));
	if (svc->stream_listen[0] != '\0' &&
	    strncmp(svc->stream_listen, "stream://", 9) != 0)
		rk_config_error(cfg, "rpc.stream_listen",
		                "expected stream://HOST:PORT, got \"%s\"",
		                svc->stream_listen);
	svc->stream_threads = (uint64_t)rk_config_int(
	    cfg, "rpc.stream_threads", 0, 0, 16);
	svc->max_frame = rk_config_size(cfg, "rpc.max_frame_bytes",
	                                RK_RPC_DEFAULT_MAX_FRAME, 4096,
	                                256u << 20);
	svc->work_items = (uint64_t)rk_config_int(
	    cfg, "rpc.work_items", RK_RPC_DEFAULT_WORK_ITEMS, 1, 65536);
	svc->workers = (uint64_t)rk_config_int(cfg, "rpc.workers",
	                                       RK_RPC_DEFAULT_WORKERS, 1, 1024);
	svc->default_timeout_ms =
	    rk_config_duration_ms(cfg, "rpc.default_timeout",
	                          RK_RPC_DEFAULT_TIMEOUT_MS, 1, 3600000);

	snprintf(def, sizeof(def), "127.0.0.1:%u", spec->default_admin_port);
	snprintf(svc->admin_listen, sizeof(svc->admin_listen), "%s",
	         rk_config_string(cfg, "admin.listen", def));

	snprintf(svc->key_file, sizeof(svc->key_file), "%s",
	         rk_config_string(cfg, "security.cluster_key_file", ""));
	svc->allow_unsealed =
	    rk_config_bool(cfg, "security.allow_unsealed", false);
	if (svc->key_file[0] == '\0' && !svc->allow_unsealed)
		rk_config_error(cfg, "security",
		                "set cluster_key_file (make one with `ringkv "
		                "keygen FILE`), or allow_unsealed: true for a "
		                "development cluster");
	if (svc->key_file[0] != '\0' && svc->allow_unsealed)
		rk_config_error(cfg, "security.allow_unsealed",
		                "cannot be true together with cluster_key_file");

	const char *level = rk_config_string(cfg, "log.level", "info");
	rk_log_level_t lv;
	if (rk_log_level_parse(level, &lv) != 0)
		rk_config_error(cfg, "log.level",
		                "expected debug, info, warn or error, got \"%s\"",
		                level);
	else
		svc->log_level = lv;
}

static int load_config(rk_service_t *svc, rk_config_t **out)
{
	char *err = NULL;
	rk_config_t *cfg = NULL;
	if (rk_config_load(svc->config_path, &cfg, &err) != RK_OK) {
		fprintf(stderr, "ringkv-%s: %s\n", svc->spec->name,
		        err ? err : "cannot read config");
		free(err);
		return -1;
	}
	read_common(svc, cfg);
	if (svc->spec->configure != NULL)
		svc->spec->configure(svc, cfg);
	if (rk_config_finish(cfg, &err) != RK_OK) {
		fprintf(stderr, "ringkv-%s: invalid config:\n%s\n",
		        svc->spec->name, err ? err : "");
		free(err);
		rk_config_free(cfg);
		return -1;
	}
	*out = cfg;
	return 0;
}

/* The URL at which this process reaches its own port PORT bound for
 * LISTEN ("tcp://..." or "stream://..."). */
static void self_url(const char *listen, int port, char *out, size_t len)
{
	const char *sep = strstr(listen, "://");
	size_t slen = sep != NULL ? (size_t)(sep - listen) + 3 : 0;
	const char *hostport = listen + slen;
	const char *colon = strrchr(hostport, ':');
	size_t hlen = colon ? (size_t)(colon - hostport) : strlen(hostport);
	char host[200];
	snprintf(host, sizeof(host), "%.*s", (int)hlen, hostport);
	if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 ||
	    strcmp(host, "*") == 0)
		snprintf(host, sizeof(host), "127.0.0.1");
	else if (strcmp(host, "[::]") == 0)
		snprintf(host, sizeof(host), "[::1]");
	snprintf(out, len, "%.*s%s:%d", (int)slen, listen, host, port);
}

int rk_service_stream_url(const rk_service_t *svc, char *out, size_t len)
{
	if (svc->stream_listen[0] == '\0' || svc->rpc == NULL ||
	    rk_rpc_server_stream_port(svc->rpc) == 0)
		return 0;
	self_url(svc->stream_listen, rk_rpc_server_stream_port(svc->rpc), out,
	         len);
	return 1;
}

/* Answers our own Health check through the stream transport too, when it
 * is on: READY=1 promises both ports. */
static rk_status_t probe_stream(rk_service_t *svc, char *detail, size_t len)
{
	char url[256];
	if (!rk_service_stream_url(svc, url, sizeof(url)))
		return RK_OK;
	rk_rpc_client_opts_t co = {.url = url,
	                           .sealer = svc->sealer,
	                           .max_frame_bytes = svc->max_frame,
	                           .caller = "self-check"};
	rk_rpc_client_t *c = NULL;
	rk_status_t st = rk_rpc_client_new(&co, &c);
	if (st == RK_OK)
		st = rk_health_probe(c, READY_TIMEOUT_MS, detail, len);
	else
		snprintf(detail, len, "bad stream address %.200s", url);
	rk_rpc_client_free(c);
	return st;
}

static int admin_health(void *arg, char *detail, size_t len)
{
	rk_service_t *svc = arg;
	if (atomic_load(&svc->health.serving))
		return 1;
	const char *d = atomic_load(&svc->health.detail);
	snprintf(detail, len, "%s", d ? d : "not serving");
	return 0;
}

/* Start-up up to READY=1. Returns 0, or the exit code. */
static int service_start(rk_service_t *svc)
{
	char *err = NULL;
	rk_status_t st;
	if (svc->key_file[0] != '\0') {
		uint8_t key[RK_SEAL_KEY_BYTES];
		st = rk_keyfile_read(svc->key_file, key, &err);
		if (st != RK_OK) {
			rk_error("cluster key: %s", err ? err : "unreadable");
			free(err);
			return 2;
		}
		st = rk_sealer_new(key, 0, &svc->sealer);
		sodium_memzero(key, sizeof(key));
		if (st != RK_OK) {
			rk_error("cannot set up frame sealing: %s",
			         rk_status_name(st));
			return 1;
		}
	} else {
		rk_warn("security.allow_unsealed is set: frames are neither "
		        "authenticated nor encrypted");
	}

	svc->metrics = rk_metrics_new();
	if (svc->metrics == NULL)
		return 1;
	char labels[160];
	snprintf(labels, sizeof(labels), "service=\"%s\",version=\"%s\"",
	         svc->spec->name, RINGKV_VERSION);
	rk_gauge_t *info = rk_metrics_gauge(svc->metrics, "ringkv_build_info",
	                                    "Service and version; always 1.",
	                                    labels);
	if (info != NULL)
		rk_gauge_set(info, 1);
	svc->uptime = rk_metrics_gauge(svc->metrics, "ringkv_uptime_seconds",
	                               "Seconds since the process started.",
	                               "");

	rk_rpc_server_opts_t ro = {
	    .listen = svc->rpc_listen,
	    .sealer = svc->sealer,
	    .max_frame_bytes = svc->max_frame,
	    .work_items = svc->work_items,
	    .workers = svc->workers,
	    .default_timeout_ms = (uint32_t)svc->default_timeout_ms,
	    .metrics = svc->metrics,
	    .name = svc->spec->name,
	    .stream_listen =
	        svc->stream_listen[0] != '\0' ? svc->stream_listen : NULL,
	    .stream_threads = svc->stream_threads,
	};
	if (rk_rpc_server_new(&ro, &svc->rpc) != RK_OK)
		return 1;
	svc->health.service = svc->spec->name;
	svc->health.node_id = svc->node_id;
	svc->health.start_ms = rk_clock_mono_ms();
	atomic_store(&svc->health.serving, false);
	atomic_store(&svc->health.detail, "starting");
	if (rk_health_register(svc->rpc, &svc->health) != RK_OK)
		return 1;
	if (svc->spec->start != NULL) {
		st = svc->spec->start(svc);
		if (st != RK_OK) {
			rk_error("%s did not start: %s", svc->spec->name,
			         rk_status_name(st));
			return 1;
		}
		svc->hooks_started = true;
	}
	st = rk_rpc_server_start(svc->rpc, &err);
	if (st != RK_OK) {
		rk_error("rpc: %s", err ? err : rk_status_name(st));
		free(err);
		return 1;
	}
	st = rk_admin_start(svc->admin_listen, svc->metrics, admin_health, svc,
	                    &svc->admin);
	if (st != RK_OK) {
		rk_error("admin port %s: %s", svc->admin_listen,
		         rk_status_name(st));
		return 1;
	}

	char url[256];
	self_url(svc->rpc_listen, rk_rpc_server_port(svc->rpc), url,
	         sizeof(url));
	rk_rpc_client_opts_t co = {
	    .url = url,
	    .sealer = svc->sealer,
	    .max_frame_bytes = svc->max_frame,
	    .reconnect_min_ms = 10,
	    .reconnect_max_ms = 1000,
	    .caller = "self-check",
	};
	if (rk_rpc_client_new(&co, &svc->self) != RK_OK)
		return 1;
	atomic_store(&svc->health.serving, true);
	char detail[256];
	st = rk_health_probe(svc->self, READY_TIMEOUT_MS, detail,
	                     sizeof(detail));
	if (st != RK_OK) {
		rk_error("does not answer its own Health check at %s: %s", url,
		         detail);
		return 1;
	}
	st = probe_stream(svc, detail, sizeof(detail));
	if (st != RK_OK) {
		rk_error("does not answer its own Health check on the stream "
		         "transport: %s",
		         detail);
		return 1;
	}
	rk_info("ready: %s node %s, rpc %s (port %d), admin %s (port %d)",
	        svc->spec->name, svc->node_id, svc->rpc_listen,
	        rk_rpc_server_port(svc->rpc), svc->admin_listen,
	        rk_admin_port(svc->admin));
	if (rk_rpc_server_stream_port(svc->rpc) != 0)
		rk_info("stream transport %s (port %d)", svc->stream_listen,
		        rk_rpc_server_stream_port(svc->rpc));
	if (rk_rpc_server_stream_port(svc->rpc) != 0)
		sd_notifyf(0,
		           "READY=1\nSTATUS=serving rpc on port %d, admin on "
		           "port %d, stream on port %d",
		           rk_rpc_server_port(svc->rpc),
		           rk_admin_port(svc->admin),
		           rk_rpc_server_stream_port(svc->rpc));
	else
		sd_notifyf(0,
		           "READY=1\nSTATUS=serving rpc on port %d, admin on "
		           "port %d",
		           rk_rpc_server_port(svc->rpc),
		           rk_admin_port(svc->admin));
	return 0;
}

static void service_reload(rk_service_t *svc)
{
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
	           (unsigned long long)(rk_clock_mono_ns() / 1000));
	rk_config_t *cfg = NULL;
	/* Only what can change at run time is applied: the log level and
	 * the service's own reload hook. Listen addresses and the key need
	 * a restart. */
	/* The configure hook runs on a copy: on reload it validates, and
	 * the reload hook applies. */
	rk_service_t probe = *svc;
	if (load_config(&probe, &cfg) != 0) {
		rk_warn("reload: config rejected, keeping the running one");
	} else {
		/* Nothing of a rejected config applies: the level is set
		 * only now that all of it is known to be valid. */
		svc->log_level = probe.log_level;
		rk_log_set_level(svc->log_level);
		if (svc->spec->reload != NULL &&
		    svc->spec->reload(svc, cfg) != RK_OK)
			rk_warn("reload: %s kept its old settings",
			        svc->spec->name);
		rk_info("reloaded %s", svc->config_path);
		rk_config_free(cfg);
	}
	sd_notify(0, "READY=1");
}

static void service_stop(rk_service_t *svc)
{
	sd_notify(0, "STOPPING=1");
	rk_info("stopping");
	rk_service_set_degraded(svc, "stopping");
	rk_rpc_client_free(svc->self);
	rk_admin_stop(svc->admin);
	/* No handler runs once the server is shut down, so the stop hook can
	 * free what handlers use; then the calls it held are gone too. */
	rk_rpc_server_shutdown(svc->rpc);
	if (svc->spec->stop != NULL && svc->hooks_started)
		svc->spec->stop(svc);
	rk_rpc_server_free(svc->rpc);
	rk_metrics_free(svc->metrics);
	rk_sealer_free(svc->sealer);
}

int rk_service_main(int argc, char **argv, const rk_service_spec_t *spec)
{
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	/* A peer that goes away mid-write must not kill us. */
	signal(SIGPIPE, SIG_IGN);

	char logname[48];
	snprintf(logname, sizeof(logname), "ringkv-%s", spec->name);
	rk_log_set_name(logname);

	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"check-config", no_argument, NULL, 'k'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	rk_service_t svc;
	memset(&svc, 0, sizeof(svc));
	svc.spec = spec;
	bool check_only = false;
	int ch;
	while ((ch = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			svc.config_path = optarg;
			break;
		case 'k':
			check_only = true;
			break;
		case 'V':
			printf("ringkv-%s %s\n", spec->name, RINGKV_VERSION);
			return 0;
		case 'h':
			usage(stdout, spec->name);
			return 0;
		default:
			usage(stderr, spec->name);
			return 2;
		}
	}
	if (svc.config_path == NULL || optind != argc) {
		usage(stderr, spec->name);
		return 2;
	}
	rk_config_t *cfg = NULL;
	if (load_config(&svc, &cfg) != 0)
		return 2;
	rk_config_free(cfg);
	rk_log_set_level(svc.log_level);
	if (check_only) {
		/* A key the service could not use fails here, not at start. */
		if (svc.key_file[0] != '\0') {
			uint8_t key[RK_SEAL_KEY_BYTES];
			char *err = NULL;
			rk_status_t kst = rk_keyfile_read(svc.key_file, key, &err);
			sodium_memzero(key, sizeof(key));
			if (kst != RK_OK) {
				fprintf(stderr, "ringkv-%s: cluster key: %s\n",
				        spec->name, err ? err : "unreadable");
				free(err);
				return 2;
			}
		}
		printf("%s: ok\n", svc.config_path);
		return 0;
	}

	int rc = service_start(&svc);
	if (rc != 0) {
		service_stop(&svc);
		return rc;
	}

	uint64_t wd_usec = 0;
	bool watchdog = sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec > 0;
	uint64_t tick_ms = TICK_MS;
	if (watchdog && wd_usec / 2000 < tick_ms)
		tick_ms = wd_usec / 2000 > 0 ? wd_usec / 2000 : 1;
	for (;;) {
		struct timespec ts = {.tv_sec = (time_t)(tick_ms / 1000),
		                      .tv_nsec = (long)(tick_ms % 1000) * 1000000};
		int sig = sigtimedwait(&sigs, NULL, &ts);
		if (sig == SIGTERM || sig == SIGINT) {
			rk_info("received %s", sig == SIGTERM ? "SIGTERM"
			                                      : "SIGINT");
			break;
		}
		if (sig == SIGHUP) {
			service_reload(&svc);
			continue;
		}
		if (svc.uptime != NULL)
			rk_gauge_set(svc.uptime,
			             (double)(rk_clock_mono_ms() -
			                      svc.health.start_ms) /
			                 1000.0);
		if (watchdog) {
			char detail[256];
			if (rk_health_probe(svc.self, (uint32_t)tick_ms, detail,
			                    sizeof(detail)) == RK_OK)
				sd_notify(0, "WATCHDOG=1");
			else
				rk_warn("watchdog withheld: %s", detail);
		}
	}
	service_stop(&svc);
	rk_info("stopped");
	return 0;
}
