/*
 * The membership section of the config (agent.h lists its fields;
 * docs/membership.md explains them). rk_ms_configure only reads and checks:
 * the runtime also calls it on SIGHUP and for --check-config, so it must
 * not touch a running agent. rk_ms_start takes what it read.
 */
#include "agent_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static rk_ms_config_t pending; /* what the last configure read */

const rk_ms_config_t *rk_ms_config_pending(void)
{
	return &pending;
}

static void read_url(rk_config_t *cfg, const char *path, char *dst,
                     const char *def, bool may_be_empty)
{
	const char *v = rk_config_string(cfg, path, def);
	if (strlen(v) >= RK_MS_URL_MAX)
		rk_config_error(cfg, path, "longer than %d bytes",
		                RK_MS_URL_MAX - 1);
	else if (!(may_be_empty && v[0] == '\0') &&
	         strncmp(v, "tcp://", 6) != 0)
		rk_config_error(cfg, path,
		                "expected tcp://HOST:PORT, got \"%s\"", v);
	snprintf(dst, RK_MS_URL_MAX, "%s", v);
}

rk_status_t rk_ms_configure(rk_service_t *svc, rk_config_t *cfg)
{
	(void)svc;
	rk_ms_config_t *c = &pending;
	memset(c, 0, sizeof(*c));
	/* Default: systemd's StateDirectory= when the unit sets one, else
	 * var/membership/<node.id> under the working directory (the local
	 * development cluster runs several agents from one directory). */
	const char *state_dir = getenv("STATE_DIRECTORY");
	char def_dir[PATH_MAX];
	if (state_dir != NULL && state_dir[0] != '\0')
		snprintf(def_dir, sizeof(def_dir), "%s", state_dir);
	else
		snprintf(def_dir, sizeof(def_dir), "var/membership/%s",
		         rk_config_string(cfg, "node.id", "node"));
	c->data_dir_defaulted = !rk_config_has(cfg, "membership.data_dir");
	const char *s = rk_config_string(cfg, "membership.data_dir", def_dir);
	if (s[0] == '\0' || strlen(s) >= sizeof(c->data_dir) - 32)
		rk_config_error(cfg, "membership.data_dir",
		                "expected a directory path");
	snprintf(c->data_dir, sizeof(c->data_dir), "%s", s);
	size_t ns = rk_config_len(cfg, "membership.seeds");
	if (ns > RK_MS_MAX_SEEDS) {
		rk_config_error(cfg, "membership.seeds", "at most %d seeds",
		                RK_MS_MAX_SEEDS);
		ns = RK_MS_MAX_SEEDS;
	}
	for (size_t i = 0; i < ns; i++) {
		char path[64];
		snprintf(path, sizeof(path), "membership.seeds[%zu]", i);
		read_url(cfg, path, c->seeds[c->nseeds++], "", false);
	}
	read_url(cfg, "membership.advertise", c->advertise, "", true);
	read_url(cfg, "membership.health_check", c->health_check, "", true);

	/* Our host, from rpc.listen (read by the runtime as well). */
	const char *listen =
	    rk_config_string(cfg, "rpc.listen", "tcp://127.0.0.1:7300");
	const char *hp =
	    strncmp(listen, "tcp://", 6) == 0 ? listen + 6 : listen;
	const char *colon = strrchr(hp, ':');
	int hlen = colon ? (int)(colon - hp) : (int)strlen(hp);
	snprintf(c->advertise_host, sizeof(c->advertise_host), "%.*s", hlen,
	         hp);
	if (c->advertise_host[0] == '\0' ||
	    strcmp(c->advertise_host, "0.0.0.0") == 0 ||
	    strcmp(c->advertise_host, "*") == 0)
		snprintf(c->advertise_host, sizeof(c->advertise_host),
		         "127.0.0.1");
	char def[RK_MS_URL_MAX + 16];
	if (snprintf(def, sizeof(def), "tcp://%s:0", c->advertise_host) >=
	    RK_MS_URL_MAX)
		rk_config_error(cfg, "rpc.listen", "host name too long");
	read_url(cfg, "membership.events_listen", c->events_listen, def, false);

	snprintf(c->name, sizeof(c->name), "%s",
	         rk_config_string(cfg, "node.id", "node"));
	snprintf(c->datacenter, sizeof(c->datacenter), "%s",
	         rk_config_string(cfg, "node.datacenter", "dc1"));
	snprintf(c->rack, sizeof(c->rack), "%s",
	         rk_config_string(cfg, "node.rack", "rack1"));
	c->weight =
	    (uint32_t)rk_config_int(cfg, "membership.weight", 1, 0, 1024);
	c->round_ms =
	    rk_config_duration_ms(cfg, "membership.round", 1000, 10, 60000);
	c->fanout = (uint32_t)rk_config_int(cfg, "membership.fanout", 3, 1, 16);
	c->timing.suspect_ms = rk_config_duration_ms(
	    cfg, "membership.suspect_timeout", 5000, 20, 3600000);
	c->timing.isolated_ms = rk_config_duration_ms(
	    cfg, "membership.isolation_timeout", 3000, 20, 3600000);
	c->probe_ms = rk_config_duration_ms(cfg, "membership.probe_timeout",
	                                    1000, 10, 60000);
	c->timing.forget_ms = rk_config_duration_ms(
	    cfg, "membership.forget_after", 3600000, 100, 30ull * 86400000);
	c->vnodes = (uint32_t)rk_config_int(cfg, "membership.vnodes_per_weight",
	                                    2048, 1, 65536);
	c->max_frame = rk_config_size(cfg, "rpc.max_frame_bytes", 4u << 20,
	                              4096, 256u << 20);
	c->lease_ttl_ms = rk_config_duration_ms(cfg, "membership.lease_ttl",
	                                        10000, 100, 600000);
	c->lease_skew_ms = rk_config_duration_ms(
	    cfg, "membership.lease_skew_margin", 500, 0, 60000);
	if (c->lease_skew_ms * 2 >= c->lease_ttl_ms)
		rk_config_error(cfg, "membership.lease_skew_margin",
		                "must be less than half of membership.lease_ttl");
	if (c->timing.suspect_ms <= c->round_ms)
		rk_config_error(cfg, "membership.suspect_timeout",
		                "must be longer than membership.round");
	return RK_OK;
}
