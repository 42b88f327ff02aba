/*
 * ringkv ratelimit rules [--key FILE] [--timeout MS] URL
 *
 * Shows what a rate limiter enforces: the rules version, the file and
 * when it was loaded, why the last reload was refused if it was (the old
 * rules then stay in effect), and one line per limit. For operators after
 * a SIGHUP: did my change take? Exit code: 0 shown, 4 shown but the last
 * reload was refused, 1 the call failed, 2 usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ringkv/ratelimit.h>

#include "commands.h"
#include "conn.h"
#include "ringkv/v1/ratelimit.pb-c.h"

#define USAGE "usage: ringkv ratelimit rules [--key FILE] [--timeout MS] URL\n"

static const char *algorithm_name(int a)
{
	static const char *const names[] = {
	    "default",        "sliding_window_counter", "token_bucket",
	    "leaking_bucket", "fixed_window",           "sliding_log"};
	return a >= 0 && a <= 5 ? names[a] : "?";
}

/* "key=value,key=*" of a rule's descriptor path, into OUT. */
static void match_text(const Ringkv__V1__RateLimitRule *r, char *out,
                       size_t len)
{
	size_t used = 0;
	out[0] = '\0';
	for (size_t i = 0; i < r->n_match && used < len; i++) {
		const Ringkv__V1__RateLimitEntry *e = r->match[i];
		int n = snprintf(out + used, len - used, "%s%s=%s",
		                 i ? "," : "", e->key ? e->key : "",
		                 e->value && e->value[0] ? e->value : "*");
		if (n < 0)
			break;
		used += (size_t)n;
	}
}

static int show(const char *url, const char *key_file, uint32_t timeout)
{
	ringkv_conn_opts_t co = {.url = url,
	                         .key_file = key_file,
	                         .timeout_ms = timeout,
	                         .caller = "ringkv-cli"};
	ringkv_conn_t *conn = NULL;
	ringkv_error_t err;
	if (ringkv_connect(&co, &conn, &err) != RK_OK) {
		fprintf(stderr, "ringkv ratelimit: %s\n", err.message);
		return 1;
	}
	rk_rpc_method_t m;
	if (rk_rpc_method_resolve(&ringkv__v1__ratelimit__descriptor,
	                          &ringkv__v1__ratelimit_method__descriptor,
	                          "DescribeRules", &m) != RK_OK) {
		ringkv_close(conn);
		return 1;
	}
	Ringkv__V1__DescribeRulesRequest req =
	    RINGKV__V1__DESCRIBE_RULES_REQUEST__INIT;
	rk_rpc_result_t res;
	if (rk_conn_call(conn, &m, &req.base, &res, &err) != RK_OK) {
		fprintf(stderr, "ringkv ratelimit: %s\n", err.message);
		rk_rpc_result_clear(&res);
		ringkv_close(conn);
		return 1;
	}
	const Ringkv__V1__DescribeRulesResponse *d = (const void *)res.response;
	char when[64] = "never";
	if (d->loaded_at_ms > 0) {
		time_t t = (time_t)(d->loaded_at_ms / 1000);
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
	printf("rules version %llu from %s, loaded %s\n",
	       (unsigned long long)d->rules_version,
	       d->source && d->source[0] ? d->source : "(no file)", when);
	bool refused = d->last_error != NULL && d->last_error[0] != '\0';
	if (refused)
		printf("last reload refused, older rules in effect: %s\n",
		       d->last_error);
	printf("%-12s %-20s %-28s %-16s %-26s %s\n", "DOMAIN", "RULE", "MATCH",
	       "LIMIT", "ALGORITHM", "FLAGS");
	for (size_t i = 0; i < d->n_rules; i++) {
		const Ringkv__V1__RateLimitRule *r = d->rules[i];
		char match[256], limit[48], algo[48], flags[64];
		match_text(r, match, sizeof(match));
		snprintf(limit, sizeof(limit), "%llu/%s",
		         (unsigned long long)r->limit,
		         ringkv_rl_unit_name((int)r->unit));
		if (r->has_sub_windows && r->sub_windows > 1)
			snprintf(algo, sizeof(algo), "%s K=%u",
			         algorithm_name((int)r->algorithm),
			         r->sub_windows);
		else
			snprintf(algo, sizeof(algo), "%s",
			         algorithm_name((int)r->algorithm));
		snprintf(flags, sizeof(flags), "%s%s",
		         r->fail_open ? "fail_open" : "fail_closed",
		         r->shadow_mode ? ",shadow" : "");
		printf("%-12s %-20s %-28s %-16s %-26s %s\n",
		       r->domain ? r->domain : "", r->rule ? r->rule : "",
		       match, limit, algo, flags);
	}
	rk_rpc_result_clear(&res);
	ringkv_close(conn);
	return refused ? 4 : 0;
}

int rk_cli_ratelimit_rules(int argc, char **argv)
{
	/* Past "ratelimit": "rules" is the command's name. */
	const char *key_file = NULL, *url = NULL;
	unsigned long timeout = 2000;
	int rc = rk_cli_url_args(argc - 1, argv + 1, USAGE, &key_file, &timeout,
	                         &url);
	if (rc != 0)
		return rc;
	return show(url, key_file, (uint32_t)timeout);
}
