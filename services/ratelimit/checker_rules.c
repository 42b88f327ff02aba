/*
 * The checker's life and its rules: creation, the rules snapshots that
 * checks hold, and the per-rule metrics attached to each rules object.
 *
 * Rules snapshots. The rules in effect are an atomic pointer with a
 * reference count. A reader announces itself in `acquiring`, loads the
 * pointer, takes a reference, and leaves `acquiring`; an installer swaps
 * the pointer and then waits until `acquiring` is zero before dropping
 * the old rules' reference, so no reader can be between "loaded" and
 * "referenced" when the count may reach zero. The wait is a few
 * instructions long; installs are rare (SIGHUP).
 */
#include "checker_internal.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"

#define MAX_TEXT 256

/* Decision latency buckets, seconds: 100 ns to 10 ms. */
static const double decision_bounds[] = {1e-7, 2.5e-7, 5e-7, 1e-6, 2.5e-6, 5e-6,
                                         1e-5, 2.5e-5, 1e-4, 1e-3, 1e-2};

static uint64_t wall_clock(void *arg)
{
	(void)arg;
	return rk_clock_unix_ms();
}

/* --- rules snapshots ------------------------------------------------- */

/* Copies S into a Prometheus label value, escaped. */
static void label_escape(char *out, size_t len, const char *s)
{
	size_t n = 0;
	for (; *s != '\0' && n + 3 < len; s++) {
		if (*s == '"' || *s == '\\') {
			out[n++] = '\\';
			out[n++] = *s;
		} else if (*s == '\n') {
			out[n++] = '\\';
			out[n++] = 'n';
		} else {
			out[n++] = *s;
		}
	}
	out[n] = '\0';
}

static void attach_metrics(rk_rl_checker_t *c, rk_rl_rules_t *r)
{
	if (c->metrics == NULL || r->nlimits == 0)
		return;
	limit_metrics_t *m = calloc(r->nlimits, sizeof(*m));
	if (m == NULL)
		return;
	for (size_t i = 0; i < r->nlimits; i++) {
		const rk_rl_limit_t *l = &r->limits[i];
		char d[2 * MAX_TEXT + 4], n[8192], labels[9000];
		label_escape(d, sizeof(d), l->domain);
		label_escape(n, sizeof(n), l->name);
		snprintf(labels, sizeof(labels), "domain=\"%s\",rule=\"%s\"", d,
		         n);
		m[i].hits = rk_metrics_counter(
		    c->metrics, "ringkv_ratelimit_hits_total",
		    "Hits checked against a rule.", labels);
		m[i].over = rk_metrics_counter(
		    c->metrics, "ringkv_ratelimit_over_limit_total",
		    "Hits a rule refused.", labels);
		m[i].near = rk_metrics_counter(
		    c->metrics, "ringkv_ratelimit_near_limit_total",
		    "Hits admitted past a rule's near_limit threshold.",
		    labels);
		m[i].shadow = rk_metrics_counter(
		    c->metrics, "ringkv_ratelimit_shadow_mode_total",
		    "Hits a shadow-mode rule would have refused.", labels);
	}
	r->checker_data = m;
}

void rk_rl_checker_release(rk_rl_checker_t *c, rk_rl_rules_t *r)
{
	(void)c;
	if (r != NULL && atomic_fetch_sub(&r->refs, 1) == 1) {
		free(r->checker_data);
		rk_rl_rules_free(r);
	}
}

rk_rl_rules_t *rk_rl_checker_acquire(rk_rl_checker_t *c)
{
	atomic_fetch_add(&c->acquiring, 1);
	rk_rl_rules_t *r = atomic_load(&c->rules);
	atomic_fetch_add(&r->refs, 1);
	atomic_fetch_sub(&c->acquiring, 1);
	return r;
}

uint64_t rk_rl_checker_install(rk_rl_checker_t *c, rk_rl_rules_t *rules)
{
	pthread_mutex_lock(&c->install_lock);
	attach_metrics(c, rules);
	rules->version = ++c->version;
	atomic_store(&rules->refs, 1);
	rk_rl_rules_t *old = atomic_exchange(&c->rules, rules);
	while (atomic_load(&c->acquiring) != 0)
		sched_yield();
	uint64_t v = c->version;
	pthread_mutex_unlock(&c->install_lock);
	rk_rl_checker_release(c, old);
	return v;
}

rk_status_t rk_rl_checker_new(const rk_rl_checker_opts_t *opts,
                              rk_rl_rules_t *rules, rk_rl_checker_t **out)
{
	rk_rl_checker_t *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return RK_RESOURCE_EXHAUSTED;
	rk_status_t st = rk_rl_table_new(&opts->table, &c->table);
	if (st != RK_OK) {
		free(c);
		return st;
	}
	pthread_mutex_init(&c->install_lock, NULL);
	c->max_hits = opts->max_hits ? opts->max_hits : DEFAULT_MAX_HITS;
	c->retry_ms = opts->unreachable_retry_ms ? opts->unreachable_retry_ms
	                                         : DEFAULT_RETRY_MS;
	c->metrics = opts->metrics;
	c->clock = opts->clock ? opts->clock : wall_clock;
	c->clock_arg = opts->clock_arg;
	c->owner = opts->owner;
	c->owner_arg = opts->owner_arg;
	if (c->metrics != NULL) {
		for (int a = 1; a < RK_RL_ALGORITHM_COUNT; a++) {
			char labels[64];
			snprintf(labels, sizeof(labels), "algorithm=\"%s\"",
			         rk_rl_algorithm_name((rk_rl_algorithm_t)a));
			c->latency[a] = rk_metrics_histogram(
			    c->metrics, "ringkv_ratelimit_decision_seconds",
			    "Time to decide one check (match, lock, apply), by "
			    "the algorithms of its limits.",
			    labels, decision_bounds,
			    sizeof(decision_bounds) /
			        sizeof(decision_bounds[0]));
		}
	}
	if (c->metrics != NULL) {
		c->g_keys = rk_metrics_gauge(
		    c->metrics, "ringkv_ratelimit_keys",
		    "Keys in the key table (sampled every 1024 checks).", "");
		c->g_log_bytes = rk_metrics_gauge(
		    c->metrics, "ringkv_ratelimit_log_bytes",
		    "Bytes of sliding-log rings (sampled).", "");
		c->g_evicted_idle = rk_metrics_gauge(
		    c->metrics, "ringkv_ratelimit_evicted",
		    "Keys evicted for room since start (sampled): idle ones "
		    "lost nothing, live ones lost their count.",
		    "state=\"idle\"");
		c->g_evicted_live =
		    rk_metrics_gauge(c->metrics, "ringkv_ratelimit_evicted",
		                     NULL, "state=\"live\"");
	}
	attach_metrics(c, rules);
	rules->version = c->version = 1;
	atomic_store(&rules->refs, 1);
	atomic_store(&c->rules, rules);
	*out = c;
	return RK_OK;
}

void rk_rl_checker_free(rk_rl_checker_t *c)
{
	if (c == NULL)
		return;
	rk_rl_checker_release(c, atomic_load(&c->rules));
	rk_rl_table_free(c->table);
	pthread_mutex_destroy(&c->install_lock);
	free(c);
}

rk_rl_table_t *rk_rl_checker_table(rk_rl_checker_t *c)
{
	return c->table;
}

rk_metrics_t *rk_rl_checker_metrics(rk_rl_checker_t *c)
{
	return c->metrics;
}
