/*
 * Reading the `idgen:` config section; see idgen_config.h. Every check
 * that the config alone can make is made here, so `--check-config` finds
 * it: ids in range, a sane epoch, a lease source with agents to ask.
 */
#include "idgen_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "snowflake.h"

void rk_idgen_config_defaults(rk_idgen_config_t *out)
{
	memset(out, 0, sizeof(*out));
	out->epoch_ms = RK_SNOWFLAKE_DEFAULT_EPOCH_MS;
	out->source = RK_IDGEN_WORKER_CONFIG;
	out->chunk_ms = 1000;
	out->max_step_ms = RK_SNOWFLAKE_DEFAULT_MAX_STEP_MS;
	out->stall_ms = RK_SNOWFLAKE_DEFAULT_STALL_MS;
	out->threads = 2;
	out->lease_ttl_ms = 10000;
	out->lease_acquire_ms = 30000;
}

int rk_idgen_parse_epoch(const char *text, uint64_t *ms)
{
	size_t n = strlen(text);
	if (n > 0 && n <= 19 && strspn(text, "0123456789") == n) {
		*ms = strtoull(text, NULL, 10);
		return 0;
	}
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	const char *end = strptime(text, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (end == NULL || *end != '\0' || tm.tm_year < 70)
		return -1;
	time_t t = timegm(&tm);
	if (t < 0)
		return -1;
	*ms = (uint64_t)t * 1000u;
	return 0;
}

void rk_idgen_config_read(rk_config_t *cfg, rk_idgen_config_t *out)
{
	rk_idgen_config_defaults(out);
	const char *epoch =
	    rk_config_string(cfg, "idgen.epoch", "2026-01-01T00:00:00Z");
	if (rk_idgen_parse_epoch(epoch, &out->epoch_ms) != 0)
		rk_config_error(cfg, "idgen.epoch",
		                "expected YYYY-MM-DDTHH:MM:SSZ (UTC) or Unix "
		                "ms, got \"%s\"",
		                epoch);
	else if (out->epoch_ms > 4102444800000ull) /* 2100-01-01 */
		rk_config_error(cfg, "idgen.epoch",
		                "expected an epoch before 2100, got \"%s\"",
		                epoch);
	out->datacenter_id = (uint32_t)rk_config_int(
	    cfg, "idgen.datacenter_id", 0, 0, RK_SNOWFLAKE_MAX_DATACENTER);
	out->worker_id = (uint32_t)rk_config_int(cfg, "idgen.worker_id", 0, 0,
	                                         RK_SNOWFLAKE_MAX_WORKER);
	static const char *const sources[] = {"config", "lease", NULL};
	int src = rk_config_choice(cfg, "idgen.worker_id_source", sources, 0);
	out->source = src == 1 ? RK_IDGEN_WORKER_LEASE : RK_IDGEN_WORKER_CONFIG;
	size_t na = rk_config_len(cfg, "idgen.lease.agents");
	if (na > RK_IDGEN_MAX_AGENTS) {
		rk_config_error(cfg, "idgen.lease.agents", "at most %d agents",
		                RK_IDGEN_MAX_AGENTS);
		na = RK_IDGEN_MAX_AGENTS;
	}
	for (size_t i = 0; i < na; i++) {
		char path[64];
		snprintf(path, sizeof(path), "idgen.lease.agents[%zu]", i);
		const char *u = rk_config_string(cfg, path, "");
		if (strncmp(u, "tcp://", 6) != 0 ||
		    strlen(u) >= sizeof(out->agents[0]))
			rk_config_error(cfg, path,
			                "expected tcp://HOST:PORT, got \"%s\"", u);
		else
			snprintf(out->agents[out->nagents++],
			         sizeof(out->agents[0]), "%s", u);
	}
	if (src == 1 && na == 0)
		rk_config_error(cfg, "idgen.lease.agents",
		                "worker_id_source: lease needs at least one "
		                "membership agent URL here");
	out->lease_ttl_ms = (uint32_t)rk_config_duration_ms(
	    cfg, "idgen.lease.ttl", 10000, 200, 600000);
	out->lease_acquire_ms = (uint32_t)rk_config_duration_ms(
	    cfg, "idgen.lease.acquire_timeout", 30000, 100, 3600000);

	/* Under systemd the unit's StateDirectory= is the natural home of
	 * the mark; $STATE_DIRECTORY may list several, the first is ours. */
	const char *state = getenv("STATE_DIRECTORY");
	char def[PATH_MAX] = "";
	if (state != NULL)
		snprintf(def, sizeof(def), "%.*s", (int)strcspn(state, ":"),
		         state);
	const char *dir = rk_config_string(cfg, "idgen.data_dir", def);
	if (strlen(dir) + 32 >= sizeof(out->data_dir))
		rk_config_error(cfg, "idgen.data_dir",
		                "expected a directory path shorter than %zu "
		                "bytes",
		                sizeof(out->data_dir) - 32);
	else
		snprintf(out->data_dir, sizeof(out->data_dir), "%s", dir);

	out->chunk_ms = (uint32_t)rk_config_duration_ms(
	    cfg, "idgen.high_water_chunk", 1000, 1, 3600000);
	out->max_step_ms = (uint32_t)rk_config_duration_ms(
	    cfg, "idgen.max_clock_step", RK_SNOWFLAKE_DEFAULT_MAX_STEP_MS, 0,
	    60000);
	out->stall_ms = (uint32_t)rk_config_duration_ms(
	    cfg, "idgen.clock_stall_limit", RK_SNOWFLAKE_DEFAULT_STALL_MS, 1,
	    60000);
	out->threads =
	    (uint32_t)rk_config_int(cfg, "idgen.wait_threads", 2, 1, 64);
}
