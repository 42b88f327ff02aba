/*
 * ringkv ratelimit check [--key FILE] [--timeout MS] [--hits N]
 *                        URL DOMAIN key=value... [+ key=value...]...
 *
 * Checks (and counts, unless --hits 0) one request at a rate limiter and
 * prints the verdict and every limit that applied. The key=value pairs
 * form one descriptor, outermost first; a lone "+" starts another.
 * Exit code: 0 allowed, 3 refused, 1 the call failed, 2 usage.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ringkv/ratelimit.h>

#include "commands.h"

#define USAGE                                                                  \
	"usage: ringkv ratelimit check [--key FILE] [--timeout MS] "           \
	"[--hits N] URL DOMAIN key=value... [+ key=value...]\n"                \
	"       ringkv ratelimit rules [--key FILE] [--timeout MS] URL\n"

#define MAX_DESC    8
#define MAX_ENTRIES 16

static const char *algo_name(int a)
{
	static const char *const names[] = {
	    "default",        "sliding_window_counter", "token_bucket",
	    "leaking_bucket", "fixed_window",           "sliding_log"};
	return a >= 0 && a <= 5 ? names[a] : "?";
}

static const char *outcome_name(ringkv_rl_outcome_t o)
{
	switch (o) {
	case RINGKV_RL_DECIDED:
		return "decided by the owner";
	case RINGKV_RL_FAILED_OPEN:
		return "owner unreachable: failed open";
	case RINGKV_RL_FAILED_CLOSED:
		return "owner unreachable: failed closed";
	}
	return "?";
}

static unsigned long number(const char *s, unsigned long max, bool *ok)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);
	*ok = *s != '\0' && *end == '\0' && v <= max;
	return v;
}

int rk_cli_ratelimit(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "rules") == 0)
		return rk_cli_ratelimit_rules(argc, argv);
	if (argc < 2 || strcmp(argv[1], "check") != 0) {
		fputs(USAGE, stderr);
		return 2;
	}
	const char *key_file = NULL;
	unsigned long timeout = 2000, hits = 1;
	bool ok = true;
	/* Options may come anywhere among the positionals. */
	const char *pos[64];
	int npos = 0;
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		if ((strcmp(a, "--hits") == 0 || strcmp(a, "--key") == 0 ||
		     strcmp(a, "--timeout") == 0) &&
		    i + 1 < argc) {
			const char *v = argv[++i];
			if (a[2] == 'h')
				hits = number(v, 0xffffffffu, &ok);
			else if (a[2] == 'k')
				key_file = v;
			else
				timeout = number(v, 3600000, &ok);
			continue;
		}
		if (npos == 64 || a[0] == '-')
			ok = false;
		else
			pos[npos++] = a;
	}
	if (!ok || npos < 3 || timeout == 0) {
		fputs(USAGE, stderr);
		return 2;
	}
	ringkv_rl_entry_t entries[MAX_DESC][MAX_ENTRIES];
	char *copies[64] = {NULL};
	ringkv_rl_descriptor_t desc[MAX_DESC];
	size_t nd = 0;
	memset(desc, 0, sizeof(desc));
	for (int i = 2; i < npos && ok; i++) {
		if (strcmp(pos[i], "+") == 0) {
			if (nd == MAX_DESC || desc[nd].n_entries == 0)
				ok = false;
			else
				nd++;
			continue;
		}
		const char *eq = strchr(pos[i], '=');
		if (eq == NULL || desc[nd].n_entries == MAX_ENTRIES) {
			ok = false;
			break;
		}
		copies[i] = strndup(pos[i], (size_t)(eq - pos[i]));
		ringkv_rl_entry_t *e = &entries[nd][desc[nd].n_entries++];
		e->key = copies[i];
		e->value = eq + 1;
		desc[nd].entries = entries[nd];
	}
	if (ok && desc[nd].n_entries > 0)
		nd++;
	int rc = 2;
	if (!ok || nd == 0) {
		fprintf(stderr, "ringkv ratelimit: descriptors are key=value "
		                "arguments, + between descriptors\n");
		fputs(USAGE, stderr);
		goto out;
	}
	ringkv_conn_opts_t co = {.url = pos[0],
	                         .key_file = key_file,
	                         .timeout_ms = (uint32_t)timeout,
	                         .caller = "ringkv-cli"};
	ringkv_conn_t *conn = NULL;
	ringkv_error_t err;
	rc = 1;
	if (ringkv_connect(&co, &conn, &err) != RK_OK) {
		fprintf(stderr, "ringkv ratelimit: %s\n", err.message);
		goto out;
	}
	ringkv_rl_check_t chk = {.domain = pos[1],
	                         .descriptors = desc,
	                         .n_descriptors = nd,
	                         .hits = (uint32_t)hits};
	ringkv_rl_result_t res;
	rk_status_t st = ringkv_ratelimit_check(conn, &chk, &res, &err);
	if (st != RK_OK) {
		fprintf(stderr, "ringkv ratelimit: %s: %s\n",
		        rk_status_name(st), err.message);
		ringkv_close(conn);
		goto out;
	}
	printf("%s (rules version %llu, %s%s)\n",
	       res.allowed ? "allowed" : "refused",
	       (unsigned long long)res.rules_version, outcome_name(res.outcome),
	       res.shadow_mode ? ", over a shadow-mode limit" : "");
	if (res.deciding_index >= 0)
		printf("limit %llu/%s, remaining %llu, reset in %llu ms%s",
		       (unsigned long long)res.limit,
		       ringkv_rl_unit_name(res.unit),
		       (unsigned long long)res.remaining,
		       (unsigned long long)res.reset_after_ms,
		       res.allowed ? "" : ", retry in ");
	if (res.deciding_index >= 0 && !res.allowed)
		printf("%llu ms", (unsigned long long)res.retry_after_ms);
	if (res.deciding_index >= 0)
		printf("\n");
	else
		printf("no limit applies\n");
	if (res.delay_ms > 0)
		printf("hold the request %llu ms (leaking bucket)\n",
		       (unsigned long long)res.delay_ms);
	for (size_t i = 0; i < res.n_limits; i++) {
		const ringkv_rl_limit_t *l = &res.limits[i];
		printf("  %s[%zu] %s: %llu/%s %s%s: %s, remaining %llu%s%s\n",
		       (int)i == res.deciding_index ? "*" : " ", i, l->rule,
		       (unsigned long long)l->limit,
		       ringkv_rl_unit_name(l->unit), algo_name(l->algorithm),
		       l->shadow_mode ? " (shadow)" : "",
		       l->allowed ? "allowed" : "over limit",
		       (unsigned long long)l->remaining,
		       l->near_limit ? ", near limit" : "",
		       l->outcome != RINGKV_RL_DECIDED ? ", owner unreachable"
		                                       : "");
	}
	rc = res.allowed ? 0 : 3;
	ringkv_rl_result_clear(&res);
	ringkv_close(conn);
out:
	for (int i = 0; i < 64; i++)
		free(copies[i]);
	return rc;
}
