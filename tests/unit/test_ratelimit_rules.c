/*
 * The rules file: its Envoy-like shape loads, descriptors match exact
 * before wildcard before any-value, and every mistake is rejected with
 * the file and line that hold it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"

static rk_rl_rules_t *parse_ok(const char *text)
{
	rk_rl_rules_t *r = NULL;
	char *err = NULL;
	rk_status_t st =
	    rk_rl_rules_parse(text, strlen(text), "rules.yaml", NULL, &r, &err);
	if (st != RK_OK)
		fail_msg("rules refused: %s", err ? err : "?");
	free(err);
	return r;
}

/* Returns the error text (caller frees); fails if the rules load. */
static char *parse_bad(const char *text)
{
	rk_rl_rules_t *r = NULL;
	char *err = NULL;
	rk_status_t st =
	    rk_rl_rules_parse(text, strlen(text), "rules.yaml", NULL, &r, &err);
	assert_int_not_equal(st, RK_OK);
	assert_null(r);
	assert_non_null(err);
	return err;
}

static const char *sample =
    "domain: ringkv\n"                                /* 1 */
    "near_limit_percent: 90\n"                        /* 2 */
    "descriptors:\n"                                  /* 3 */
    "  - key: client_id\n"                            /* 4 */
    "    rate_limits:\n"                              /* 5 */
    "      - {unit: second, requests_per_unit: 10}\n" /* 6 */
    "      - {name: daily, unit: day, requests_per_unit: 1000,\n"
    "         algorithm: fixed_window}\n" /* 8 */
    "    descriptors:\n"                  /* 9 */
    "      - key: path\n"                 /* 10 */
    "        value: /admin/*\n"           /* 11 */
    "        rate_limit: {unit: minute, requests_per_unit: 5,\n"
    "                     algorithm: token_bucket, burst: 7,\n"
    "                     fail_open: false}\n" /* 14 */
    "      - key: path\n"                      /* 15 */
    "        value: /admin/keys\n"             /* 16 */
    "        shadow_mode: true\n"              /* 17 */
    "        rate_limit: {unit: hour, requests_per_unit: 2}\n"
    "      - key: path\n" /* 19 */
    "        rate_limit: {unit: second, requests_per_unit: 100}\n";

static const rk_rl_node_t *match2(const rk_rl_domain_t *d, const char *k1,
                                  const char *v1, const char *k2,
                                  const char *v2)
{
	const char *keys[2] = {k1, k2}, *values[2] = {v1, v2};
	return rk_rl_rules_match(d, k2 ? 2 : 1, keys, values);
}

static void test_rules_load_envoy_shape_with_several_limits(void **st)
{
	(void)st;
	rk_rl_rules_t *r = parse_ok(sample);
	assert_int_equal(r->ndomains, 1);
	assert_int_equal(r->nlimits, 5);
	const rk_rl_domain_t *d = rk_rl_rules_domain(r, "ringkv");
	assert_non_null(d);
	assert_null(rk_rl_rules_domain(r, "other"));
	const rk_rl_node_t *n = match2(d, "client_id", "42", NULL, NULL);
	assert_non_null(n);
	assert_int_equal(n->nlimits, 2);
	const rk_rl_limit_t *a = &r->limits[n->limits[0]];
	const rk_rl_limit_t *b = &r->limits[n->limits[1]];
	assert_string_equal(a->name, "client_id#0");
	assert_int_equal(a->params.limit, 10);
	assert_int_equal(a->params.unit_ms, 1000);
	assert_int_equal(a->params.algorithm, RK_RL_SLIDING_WINDOW);
	assert_int_equal(a->near_limit_ppm, 900000);
	assert_true(a->fail_open);
	assert_string_equal(b->name, "daily");
	assert_int_equal(b->params.unit_ms, 86400000);
	assert_int_equal(b->params.algorithm, RK_RL_FIXED_WINDOW);
	assert_int_equal(b->line, 7);
	rk_rl_rules_free(r);
}

static void test_rules_match_exact_then_wildcard_then_any_value(void **st)
{
	(void)st;
	rk_rl_rules_t *r = parse_ok(sample);
	const rk_rl_domain_t *d = rk_rl_rules_domain(r, "ringkv");
	const rk_rl_node_t *exact =
	    match2(d, "client_id", "1", "path", "/admin/keys");
	const rk_rl_node_t *wild =
	    match2(d, "client_id", "1", "path", "/admin/users");
	const rk_rl_node_t *any = match2(d, "client_id", "1", "path", "/kv");
	assert_non_null(exact);
	assert_non_null(wild);
	assert_non_null(any);
	const rk_rl_limit_t *le = &r->limits[exact->limits[0]];
	const rk_rl_limit_t *lw = &r->limits[wild->limits[0]];
	const rk_rl_limit_t *la = &r->limits[any->limits[0]];
	assert_int_equal(le->params.limit, 2);
	assert_true(le->shadow_mode);
	assert_int_equal(lw->params.limit, 5);
	assert_int_equal(lw->params.burst, 7);
	assert_false(lw->fail_open);
	assert_int_equal(la->params.limit, 100);
	/* a walk that stops early matches nothing */
	assert_null(match2(d, "path", "/kv", NULL, NULL));
	assert_null(match2(d, "client_id", "1", "method", "GET"));
	rk_rl_rules_free(r);
}

static void test_rules_accept_several_domains(void **st)
{
	(void)st;
	rk_rl_rules_t *r =
	    parse_ok("domains:\n"
	             "  - domain: a\n"
	             "    descriptors: [{key: k, rate_limit: {unit: second, "
	             "requests_per_unit: 1}}]\n"
	             "  - domain: b\n"
	             "    descriptors: [{key: k, rate_limit: {unit: day, "
	             "requests_per_unit: 9, algorithm: sliding_log}}]\n");
	assert_int_equal(r->ndomains, 2);
	assert_non_null(rk_rl_rules_domain(r, "b"));
	assert_int_equal(r->limits[1].params.algorithm, RK_RL_SLIDING_LOG);
	rk_rl_rules_free(r);
}

/* Each bad file names the line of its mistake. */
static void test_rules_errors_name_file_and_line(void **st)
{
	(void)st;
	static const struct {
		const char *text;
		const char *want;
	} cases[] = {
	    {"domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: "
	     "week, requests_per_unit: 1}\n",
	     "rules.yaml:4: field descriptors[0].rate_limit.unit"},
	    {"domain: d\ndescriptors:\n  - key: k\n    rate_limit:\n      "
	     "unit: second\n",
	     "rules.yaml:4: field descriptors[0].rate_limit.requests_per_unit: "
	     "required"},
	    {"domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: "
	     "second, requests_per_unit: 0}\n",
	     "rules.yaml:4: field descriptors[0].rate_limit.requests_per_unit"},
	    {"domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: "
	     "second, requests_per_unit: 5, burst: 9}\n",
	     "only token_bucket and leaking_bucket have a burst"},
	    {"domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: "
	     "day, requests_per_unit: 100000, algorithm: sliding_log}\n",
	     "rules.yaml:4: field descriptors[0].rate_limit: sliding_log "
	     "keeps"},
	    {"domain: d\ndescriptors:\n  - key: k\n    rate_limt: {unit: "
	     "second, requests_per_unit: 5}\n",
	     "rules.yaml:4: unknown field descriptors[0].rate_limt"},
	    {"domain: d\ndescriptors:\n  - value: v\n",
	     "rules.yaml:3: field descriptors[0].key: required"},
	    {"domain: d\ndescriptors:\n  - key: k\n  - key: k\n",
	     "rules.yaml:4: field descriptors[1]: descriptor key \"k\" given "
	     "twice"},
	    {"descriptors: []\n", "field domain: required"},
	    {"domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: "
	     "second, requests_per_unit: 5\n",
	     "rules.yaml:5:"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *err = parse_bad(cases[i].text);
		if (strstr(err, cases[i].want) == NULL)
			fail_msg("case %zu: want \"%s\" in \"%s\"", i,
			         cases[i].want, err);
		free(err);
	}
}

/* sub_windows: K per sliding-window-counter limit, default 1. */
static void test_rules_read_sub_windows_per_limit(void **st)
{
	(void)st;
	rk_rl_rules_t *r =
	    parse_ok("domain: d\n"
	             "descriptors:\n"
	             "  - key: k\n"
	             "    rate_limits:\n"
	             "      - {name: a, unit: minute, requests_per_unit: 60}\n"
	             "      - {name: b, unit: minute, requests_per_unit: 60,\n"
	             "         sub_windows: 16}\n"
	             "      - {name: c, unit: second, requests_per_unit: 10,\n"
	             "         sub_windows: 64}\n"
	             "      - {name: e, unit: day, requests_per_unit: 10,\n"
	             "         algorithm: fixed_window}\n");
	assert_int_equal(r->nlimits, 4);
	assert_int_equal(r->limits[0].params.sub_windows, 1);
	assert_int_equal(r->limits[1].params.sub_windows, 16);
	assert_int_equal(r->limits[2].params.sub_windows, 64);
	assert_int_equal(r->limits[3].params.sub_windows, 1);
	rk_rl_rules_free(r);
}

/* A bad K is refused with the file, line and field. */
static void test_rules_refuse_bad_sub_windows_with_line(void **st)
{
	(void)st;
	static const struct {
		const char *text;
		const char *want;
	} cases[] = {
	    {"domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: "
	     "second, requests_per_unit: 5, sub_windows: 0}\n",
	     "rules.yaml:4: field descriptors[0].rate_limit.sub_windows"},
	    {"domain: d\ndescriptors:\n  - key: k\n    rate_limit:\n"
	     "      unit: second\n      requests_per_unit: 5\n"
	     "      sub_windows: 65\n",
	     "rules.yaml:7: field descriptors[0].rate_limit.sub_windows"},
	    {"domain: d\ndescriptors:\n  - key: k\n    rate_limit:\n"
	     "      unit: second\n      requests_per_unit: 5\n"
	     "      sub_windows: many\n",
	     "rules.yaml:7: field descriptors[0].rate_limit.sub_windows"},
	    {"domain: d\ndescriptors:\n  - key: k\n    rate_limit:\n"
	     "      unit: second\n      requests_per_unit: 5\n"
	     "      sub_windows: -4\n",
	     "rules.yaml:7: field descriptors[0].rate_limit.sub_windows"},
	    {"domain: d\ndescriptors:\n  - key: k\n    rate_limit:\n"
	     "      unit: second\n      requests_per_unit: 5\n"
	     "      algorithm: token_bucket\n      sub_windows: 4\n",
	     "rules.yaml:8: field descriptors[0].rate_limit.sub_windows: "
	     "only sliding_window_counter has sub_windows"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *err = parse_bad(cases[i].text);
		printf("# case %zu: %s\n", i, err);
		if (strstr(err, cases[i].want) == NULL)
			fail_msg("case %zu: want \"%s\" in \"%s\"", i,
			         cases[i].want, err);
		free(err);
	}
}

static void test_rules_missing_file_is_not_found(void **st)
{
	(void)st;
	rk_rl_rules_t *r = NULL;
	char *err = NULL;
	assert_int_equal(
	    rk_rl_rules_load("/nonexistent/rules.yaml", NULL, &r, &err),
	    RK_NOT_FOUND);
	assert_non_null(err);
	free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rules_load_envoy_shape_with_several_limits),
	    cmocka_unit_test(
	        test_rules_match_exact_then_wildcard_then_any_value),
	    cmocka_unit_test(test_rules_accept_several_domains),
	    cmocka_unit_test(test_rules_errors_name_file_and_line),
	    cmocka_unit_test(test_rules_read_sub_windows_per_limit),
	    cmocka_unit_test(test_rules_refuse_bad_sub_windows_with_line),
	    cmocka_unit_test(test_rules_missing_file_is_not_found),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
