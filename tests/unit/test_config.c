/*
 * Tests of the config module (lib/config). Most parse a YAML text from a
 * string under the name "svc.yaml", read it through the getters and check
 * the exact report of rk_config_finish(): the text of every message and its
 * line number are part of the contract, since that is what an operator
 * reads. The tests of rk_config_load() use a fresh mkdtemp directory.
 */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"

#define NAME "svc.yaml"
#define MIB  (1024u * 1024)

static rk_config_t *parse_ok(const char *text)
{
	rk_config_t *cfg = NULL;
	char *err = NULL;
	rk_status_t status =
	    rk_config_parse(text, strlen(text), NAME, &cfg, &err);
	if (status != RK_OK)
		print_error("unexpected parse error: %s\n", err ? err : "");
	assert_int_equal(status, RK_OK);
	assert_null(err);
	assert_non_null(cfg);
	return cfg;
}

static void assert_parse_fails_with(const char *text, size_t len,
                                    const char *expected)
{
	rk_config_t *cfg = NULL;
	char *err = NULL;
	rk_status_t status = rk_config_parse(text, len, NAME, &cfg, &err);
	assert_int_equal(status, RK_INVALID_ARGUMENT);
	assert_null(cfg);
	assert_non_null(err);
	assert_string_equal(err, expected);
	free(err);
}

static void assert_finish_ok(rk_config_t *cfg)
{
	char *err = NULL;
	rk_status_t status = rk_config_finish(cfg, &err);
	if (status != RK_OK)
		print_error("unexpected finish error:\n%s\n", err ? err : "");
	assert_int_equal(status, RK_OK);
	assert_null(err);
}

static void assert_finish_fails_with(rk_config_t *cfg, const char *expected)
{
	char *err = NULL;
	assert_int_equal(rk_config_finish(cfg, &err), RK_INVALID_ARGUMENT);
	assert_non_null(err);
	assert_string_equal(err, expected);
	free(err);
}

/* Every getter returns the value written, in the type asked for. */
static void test_config_reads_typed_values(void **state)
{
	(void)state;
	static const char *const modes[] = {"always", "batch", "never", NULL};
	rk_config_t *cfg = parse_ok("rpc:\n"
	                            "  listen: \"tcp://127.0.0.1:7000\"\n"
	                            "  workers: 16\n"
	                            "  timeout: 250ms\n"
	                            "  max_message: 4MiB\n"
	                            "  tls: yes\n"
	                            "wal:\n"
	                            "  sync: batch\n");
	assert_string_equal(rk_config_name(cfg), NAME);
	assert_string_equal(rk_config_string(cfg, "rpc.listen", "x"),
	                    "tcp://127.0.0.1:7000");
	assert_int_equal(rk_config_int(cfg, "rpc.workers", 4, 1, 256), 16);
	assert_int_equal(rk_config_duration_ms(cfg, "rpc.timeout", 1, 0, 10000),
	                 250);
	assert_int_equal(
	    rk_config_size(cfg, "rpc.max_message", 1, 0, UINT64_MAX), 4 * MIB);
	assert_true(rk_config_bool(cfg, "rpc.tls", false));
	assert_int_equal(rk_config_choice(cfg, "wal.sync", modes, 0), 1);
	assert_finish_ok(cfg);
	rk_config_free(cfg);
}

static void test_config_absent_fields_give_defaults(void **state)
{
	(void)state;
	static const char *const modes[] = {"a", "b", NULL};
	rk_config_t *cfg = parse_ok("rpc:\n  listen: x\n");
	assert_string_equal(rk_config_string(cfg, "rpc.listen", "d"), "x");
	assert_string_equal(rk_config_string(cfg, "rpc.name", "d"), "d");
	assert_null(rk_config_string(cfg, "rpc.name", NULL));
	assert_int_equal(rk_config_int(cfg, "rpc.workers", 4, 1, 256), 4);
	assert_int_equal(rk_config_duration_ms(cfg, "rpc.t", 77, 0, 100), 77);
	assert_int_equal(rk_config_size(cfg, "rpc.s", 99, 0, 100), 99);
	assert_false(rk_config_bool(cfg, "rpc.b", false));
	assert_int_equal(rk_config_choice(cfg, "rpc.c", modes, 1), 1);
	assert_int_equal(rk_config_int(cfg, "no.such.section", -3, -5, 5), -3);
	assert_false(rk_config_has(cfg, "nope"));
	assert_int_equal(rk_config_len(cfg, "nope"), 0);
	assert_null(rk_config_key(cfg, "nope", 0));
	assert_int_equal(rk_config_line(cfg, "nope"), 0);
	assert_finish_ok(cfg);
	rk_config_free(cfg);
}

static void test_config_reports_unknown_field_with_line(void **state)
{
	(void)state;
	rk_config_t *cfg = parse_ok("rpc:\n"
	                            "  listen: x\n"
	                            "  lisen: y\n"
	                            "storage:\n"
	                            "  dir: /d\n"
	                            "  size: 1\n");
	assert_string_equal(rk_config_string(cfg, "rpc.listen", NULL), "x");
	/* A section nobody read is one report, not one per key inside. */
	assert_finish_fails_with(cfg, "svc.yaml:3: unknown field rpc.lisen\n"
	                              "svc.yaml:4: unknown field storage");
	rk_config_free(cfg);
}

static void test_config_escapes_control_characters_in_unknown_keys(void **state)
{
	(void)state;
	rk_config_t *cfg = parse_ok("\"a\\nb\": 1\n");
	assert_finish_fails_with(cfg, "svc.yaml:1: unknown field a\\x0ab");
	rk_config_free(cfg);
}

static void test_config_reading_child_leaves_siblings_unread(void **state)
{
	(void)state;
	rk_config_t *cfg = parse_ok("rpc:\n"
	                            "  listen: x\n"
	                            "  workers: 4\n"
	                            "  tls:\n"
	                            "    cert: c\n"
	                            "    key: k\n");
	assert_string_equal(rk_config_string(cfg, "rpc.listen", NULL), "x");
	assert_string_equal(rk_config_string(cfg, "rpc.tls.cert", NULL), "c");
	assert_finish_fails_with(cfg, "svc.yaml:3: unknown field rpc.workers\n"
	                              "svc.yaml:6: unknown field rpc.tls.key");
	rk_config_free(cfg);
}

static void test_config_has_marks_field_read(void **state)
{
	(void)state;
	rk_config_t *cfg = parse_ok("tls:\n"
	                            "  enabled: true\n"
	                            "stats: 1\n");
	assert_true(rk_config_has(cfg, "tls.enabled"));
	assert_false(rk_config_has(cfg, "tls.cert"));
	assert_finish_fails_with(cfg, "svc.yaml:3: unknown field stats");
	assert_true(rk_config_has(cfg, "stats"));
	assert_finish_ok(cfg);
	rk_config_free(cfg);
}

static void test_config_rejects_int_out_of_range(void **state)
{
	(void)state;
	rk_config_t *cfg = parse_ok("a: 0\n"
	                            "b: 257\n"
	                            "c: 9223372036854775808\n"
	                            "d: -9223372036854775809\n"
	                            "e: 0x8000000000000000\n"
	                            "f: 99999999999999999999999\n"
	                            "g: 12abc\n"
	                            "h: \"\"\n"
	                            "i: -1\n"
	                            "j: 1\n");
	assert_int_equal(rk_config_int(cfg, "a", 4, 1, 256), 4);
	assert_int_equal(rk_config_int(cfg, "b", 4, 1, 256), 4);
	/* Overflow is an error, never a wrapped value. */
	assert_int_equal(rk_config_int(cfg, "c", 7, INT64_MIN, INT64_MAX), 7);
	assert_int_equal(rk_config_int(cfg, "d", 7, INT64_MIN, INT64_MAX), 7);
	assert_int_equal(rk_config_int(cfg, "e", 7, INT64_MIN, INT64_MAX), 7);
	assert_int_equal(rk_config_int(cfg, "f", 7, INT64_MIN, INT64_MAX), 7);
	assert_int_equal(rk_config_int(cfg, "g", 7, 0, INT64_MAX), 7);
	assert_int_equal(rk_config_int(cfg, "h", 7, 0, INT64_MAX), 7);
	assert_int_equal(rk_config_int(cfg, "i", 7, 0, INT64_MAX), 7);
	assert_int_equal(rk_config_int(cfg, "j", 7, INT64_MIN, 0), 7);
	assert_finish_fails_with(
	    cfg,
	    "svc.yaml:1: field a: expected an integer in [1, 256], got \"0\"\n"
	    "svc.yaml:2: field b: expected an integer in [1, 256], got "
	    "\"257\"\n"
	    "svc.yaml:3: field c: expected an integer, got "
	    "\"9223372036854775808\"\n"
	    "svc.yaml:4: field d: expected an integer, got "
	    "\"-9223372036854775809\"\n"
	    "svc.yaml:5: field e: expected an integer, got "
	    "\"0x8000000000000000\"\n"
	    "svc.yaml:6: field f: expected an integer, got "
	    "\"99999999999999999999999\"\n"
	    "svc.yaml:7: field g: expected an integer of at least 0, got "
	    "\"12abc\"\n"
	    "svc.yaml:8: field h: expected an integer of at least 0, got \"\"\n"
	    "svc.yaml:9: field i: expected an integer of at least 0, got "
	    "\"-1\"\n"
	    "svc.yaml:10: field j: expected an integer of at most 0, got "
	    "\"1\"");
	rk_config_free(cfg);
}

static void test_config_parses_int_limits_and_hex(void **state)
{
	(void)state;
	rk_config_t *cfg = parse_ok("max: 9223372036854775807\n"
	                            "min: -9223372036854775808\n"
	                            "hex: 0x7fffffffffffffff\n"
	                            "neg_hex: -0x10\n"
	                            "upper_hex: 0XfF\n"
	                            "plus: +42\n"
	                            "quoted: \"17\"\n"
	                            "leading_zero: 010\n");
	assert_true(rk_config_int(cfg, "max", 0, INT64_MIN, INT64_MAX) ==
	            INT64_MAX);
	assert_true(rk_config_int(cfg, "min", 0, INT64_MIN, INT64_MAX) ==
	            INT64_MIN);
	assert_true(rk_config_int(cfg, "hex", 0, INT64_MIN, INT64_MAX) ==
	            INT64_MAX);
	assert_int_equal(rk_config_int(cfg, "neg_hex", 0, -100, 100), -16);
	assert_int_equal(rk_config_int(cfg, "upper_hex", 0, 0, 1000), 255);
	assert_int_equal(rk_config_int(cfg, "plus", 0, 0, 100), 42);
	assert_int_equal(rk_config_int(cfg, "quoted", 0, 0, 100), 17);
	/* Decimal, not YAML 1.1 octal: what a person writing 010 means. */
	assert_int_equal(rk_config_int(cfg, "leading_zero", 0, 0, 100), 10);
	assert_finish_ok(cfg);
	rk_config_free(cfg);
}

static void test_config_parses_durations_and_sizes(void **state)
{
	(void)state;
	rk_config_t *cfg = parse_ok("t1: 250ms\n"
	                            "t2: 5s\n"
	                            "t3: 2m\n"
	                            "t4: 1h\n"
	                            "t5: 1d\n"
	                            "t6: 1500\n"
	                            "t7: 0\n"
	                            "s1: 512\n"
	                            "s2: 4KiB\n"
	                            "s3: 64MiB\n"
	                            "s4: 1GiB\n"
	                            "s5: 10MB\n"
	                            "s6: 3KB\n"
	                            "s7: 2GB\n"
	                            "s8: 1TiB\n"
	                            "s9: 7B\n"
	                            "s10: 5TB\n");
	const uint64_t max = UINT64_MAX;
	assert_int_equal(rk_config_duration_ms(cfg, "t1", 0, 0, max), 250);
	assert_int_equal(rk_config_duration_ms(cfg, "t2", 0, 0, max), 5000);
	assert_int_equal(rk_config_duration_ms(cfg, "t3", 0, 0, max), 120000);
	assert_int_equal(rk_config_duration_ms(cfg, "t4", 0, 0, max), 3600000);
	assert_int_equal(rk_config_duration_ms(cfg, "t5", 0, 0, max), 86400000);
	assert_int_equal(rk_config_duration_ms(cfg, "t6", 0, 0, max), 1500);
	assert_int_equal(rk_config_duration_ms(cfg, "t7", 9, 0, max), 0);
	assert_int_equal(rk_config_size(cfg, "s1", 0, 0, max), 512);
	assert_int_equal(rk_config_size(cfg, "s2", 0, 0, max), 4096);
	assert_int_equal(rk_config_size(cfg, "s3", 0, 0, max), 64 * MIB);
	assert_int_equal(rk_config_size(cfg, "s4", 0, 0, max), 1024 * MIB);
	assert_int_equal(rk_config_size(cfg, "s5", 0, 0, max), 10000000);
	assert_int_equal(rk_config_size(cfg, "s6", 0, 0, max), 3000);
	assert_int_equal(rk_config_size(cfg, "s7", 0, 0, max), 2000000000);
	assert_true(rk_config_size(cfg, "s8", 0, 0, max) == 1ull << 40);
	assert_int_equal(rk_config_size(cfg, "s9", 0, 0, max), 7);
	assert_true(rk_config_size(cfg, "s10", 0, 0, max) == 5000000000000ull);
	assert_finish_ok(cfg);
	rk_config_free(cfg);
}

static void test_config_rejects_bad_durations_and_sizes(void **state)
{
	(void)state;
	rk_config_t *cfg = parse_ok("a: 1.5s\n"
	                            "b: 5 s\n"
	                            "c: 2m\n"
	                            "d: 99999999999999999999ms\n"
	                            "e: 300000000000d\n"
	                            "f: 4kb\n"
	                            "g: -1\n"
	                            "h: 2GiB\n"
	                            "i: 5sec\n");
	const uint64_t max = UINT64_MAX;
	assert_int_equal(rk_config_duration_ms(cfg, "a", 9, 0, max), 9);
	assert_int_equal(rk_config_duration_ms(cfg, "b", 9, 0, max), 9);
	assert_int_equal(rk_config_duration_ms(cfg, "c", 9, 1500, 90000), 9);
	assert_int_equal(rk_config_duration_ms(cfg, "d", 9, 1, max), 9);
	/* 300000000000 days do not fit in a uint64_t of milliseconds. */
	assert_int_equal(rk_config_duration_ms(cfg, "e", 9, 0, max), 9);
	assert_int_equal(rk_config_size(cfg, "f", 9, 0, max), 9);
	assert_int_equal(rk_config_size(cfg, "g", 9, 0, 1024 * MIB), 9);
	assert_int_equal(rk_config_size(cfg, "h", 9, 4096, 1024 * MIB), 9);
	assert_int_equal(rk_config_duration_ms(cfg, "i", 9, 0, 60000), 9);
	const char *d = " (such as 250ms, 5s, 2m, 1h, 1d)";
	const char *s = " (such as 512, 4KiB, 64MiB, 1GiB, 10MB)";
	char expected[2048];
	snprintf(
	    expected, sizeof(expected),
	    "svc.yaml:1: field a: expected a duration%s, got \"1.5s\"\n"
	    "svc.yaml:2: field b: expected a duration%s, got \"5 s\"\n"
	    "svc.yaml:3: field c: expected a duration in [1500ms, 90s]%s, "
	    "got \"2m\"\n"
	    "svc.yaml:4: field d: expected a duration of at least 1ms%s, "
	    "got \"99999999999999999999ms\"\n"
	    "svc.yaml:5: field e: expected a duration%s, got "
	    "\"300000000000d\"\n"
	    "svc.yaml:6: field f: expected a size%s, got \"4kb\"\n"
	    "svc.yaml:7: field g: expected a size of at most 1GiB%s, got "
	    "\"-1\"\n"
	    "svc.yaml:8: field h: expected a size in [4KiB, 1GiB]%s, got "
	    "\"2GiB\"\n"
	    "svc.yaml:9: field i: expected a duration of at most 1m%s, got "
	    "\"5sec\"",
	    d, d, d, d, d, s, s, s, d);
	assert_finish_fails_with(cfg, expected);
	rk_config_free(cfg);
}

static void test_config_reads_bools_in_every_spelling(void **state)
{
	(void)state;
	rk_config_t *cfg = parse_ok("a: yes\nb: off\nc: TRUE\nd: False\n"
	                            "e: On\nf: no\ng: maybe\nh: 1\n");
	assert_true(rk_config_bool(cfg, "a", false));
	assert_false(rk_config_bool(cfg, "b", true));
	assert_true(rk_config_bool(cfg, "c", false));
	assert_false(rk_config_bool(cfg, "d", true));
	assert_true(rk_config_bool(cfg, "e", false));
	assert_false(rk_config_bool(cfg, "f", true));
	assert_true(rk_config_bool(cfg, "g", true));
	assert_false(rk_config_bool(cfg, "h", false));
	assert_finish_fails_with(
	    cfg, "svc.yaml:7: field g: expected true or false, got \"maybe\"\n"
	         "svc.yaml:8: field h: expected true or false, got \"1\"");
	rk_config_free(cfg);
}

static void test_config_choice_error_lists_the_choices(void **state)
{
	(void)state;
	static const char *const modes[] = {"safe", "fast", NULL};
	rk_config_t *cfg = parse_ok("a: fast\nb: FAST\n");
	assert_int_equal(rk_config_choice(cfg, "a", modes, 0), 1);
	assert_int_equal(rk_config_choice(cfg, "b", modes, 0), 0);
	assert_finish_fails_with(cfg, "svc.yaml:2: field b: expected one of "
	                              "\"safe\", \"fast\", got \"FAST\"");
	rk_config_free(cfg);
}

static void test_config_reports_every_error_at_once(void **state)
{
	(void)state;
	static const char *const modes[] = {"always", "batch", "never", NULL};
	rk_config_t *cfg = parse_ok("rpc:\n"
	                            "  listen: 5\n"
	                            "  workers: 0\n"
	                            "  timout: 5s\n"
	                            "wal:\n"
	                            "  sync: sometimes\n"
	                            "  dir: /var/lib/ringkv\n"
	                            "extra: 1\n");
	/* Read out of file order: the report is in file order anyway, with
	 * the error that has no line first. */
	assert_int_equal(rk_config_choice(cfg, "wal.sync", modes, 2), 2);
	assert_int_equal(rk_config_int(cfg, "rpc.workers", 4, 1, 256), 4);
	assert_int_equal(
	    rk_config_duration_ms(cfg, "rpc.timeout", 1000, 1, 60000), 1000);
	assert_string_equal(rk_config_string(cfg, "wal.dir", NULL),
	                    "/var/lib/ringkv");
	assert_string_equal(rk_config_string(cfg, "rpc.listen", NULL), "5");
	assert_int_equal(rk_config_len(cfg, "membership.seeds"), 0);
	rk_config_error(cfg, "membership.seeds", "at least one seed is needed");
	const char *expected =
	    "svc.yaml: field membership.seeds: at least one seed is needed\n"
	    "svc.yaml:3: field rpc.workers: expected an integer in [1, 256], "
	    "got \"0\"\n"
	    "svc.yaml:4: unknown field rpc.timout\n"
	    "svc.yaml:6: field wal.sync: expected one of \"always\", "
	    "\"batch\", \"never\", got \"sometimes\"\n"
	    "svc.yaml:8: unknown field extra";
	assert_finish_fails_with(cfg, expected);
	/* Finishing again reports the same, not twice as much. */
	assert_finish_fails_with(cfg, expected);
	assert_int_equal(rk_config_finish(cfg, NULL), RK_INVALID_ARGUMENT);
	rk_config_free(cfg);
}

/* A scalar where a section should be is one error, however many fields
 * of that section the program reads. */
static void test_config_reports_type_error_under_scalar_parent(void **state)
{
	(void)state;
	rk_config_t *cfg = parse_ok("name: n\nrpc: 5\n");
	assert_string_equal(rk_config_string(cfg, "name", NULL), "n");
	assert_string_equal(rk_config_string(cfg, "rpc.listen", "d"), "d");
	assert_int_equal(rk_config_int(cfg, "rpc.workers", 4, 1, 256), 4);
	assert_false(rk_config_has(cfg, "rpc.tls.cert"));
	assert_finish_fails_with(
	    cfg, "svc.yaml:2: field rpc: expected a map, got \"5\"");
	rk_config_free(cfg);
}

static void test_config_reports_sequence_and_map_mismatch(void **state)
{
	(void)state;
	rk_config_t *cfg = parse_ok("rules:\n"
	                            "  - 1\n"
	                            "membership:\n"
	                            "  seeds: x\n");
	assert_int_equal(rk_config_int(cfg, "rules.limit", 3, 0, 9), 3);
	assert_null(rk_config_string(cfg, "membership[0]", NULL));
	assert_finish_fails_with(
	    cfg, "svc.yaml:1: field rules: expected a map, got a sequence\n"
	         "svc.yaml:3: field membership: expected a sequence, got a "
	         "map");
	rk_config_free(cfg);
}

/* A map where a value should be is one error, and its keys are not then
 * reported unknown one by one. */
static void test_config_reports_map_where_value_expected_once(void **state)
{
	(void)state;
	rk_config_t *cfg = parse_ok("rpc:\n"
	                            "  workers:\n"
	                            "    min: 1\n"
	                            "    max: 4\n"
	                            "  peers: [a, b]\n");
	assert_int_equal(rk_config_int(cfg, "rpc.workers", 4, 1, 256), 4);
	assert_string_equal(rk_config_string(cfg, "rpc.peers", "d"), "d");
	assert_finish_fails_with(
	    cfg, "svc.yaml:2: field rpc.workers: expected an integer in "
	         "[1, 256], got a map\n"
	         "svc.yaml:5: field rpc.peers: expected a string, got a "
	         "sequence");
	rk_config_free(cfg);
}

static void test_config_null_value_counts_as_absent(void **state)
{
	(void)state;
	rk_config_t *cfg = parse_ok("rpc:\n"
	                            "  listen:\n"
	                            "  workers: ~\n"
	                            "  name: null\n"
	                            "  quoted: \"\"\n"
	                            "  literal: \"null\"\n"
	                            "tls:\n");
	assert_string_equal(rk_config_string(cfg, "rpc.listen", "d"), "d");
	assert_int_equal(rk_config_int(cfg, "rpc.workers", 4, 1, 256), 4);
	assert_string_equal(rk_config_string(cfg, "rpc.name", "d"), "d");
	/* Quoted, it is a value again. */
	assert_string_equal(rk_config_string(cfg, "rpc.quoted", "d"), "");
	assert_string_equal(rk_config_string(cfg, "rpc.literal", "d"), "null");
	/* An empty section: present, with nothing in it. */
	assert_true(rk_config_has(cfg, "tls"));
	assert_int_equal(rk_config_len(cfg, "tls"), 0);
	assert_string_equal(rk_config_string(cfg, "tls.cert", "c"), "c");
	assert_finish_ok(cfg);
	rk_config_free(cfg);
}

static void test_config_reads_sequences_by_index(void **state)
{
	(void)state;
	rk_config_t *cfg = parse_ok("membership:\n"
	                            "  seeds:\n"
	                            "    - tcp://a:7000\n"
	                            "    - tcp://b:7000\n"
	                            "rules:\n"
	                            "  - name: get\n"
	                            "    limit: 10\n"
	                            "  - name: put\n"
	                            "    limit: 5\n"
	                            "    burst: 2\n"
	                            "flow: [1, [2, 3]]\n");
	assert_int_equal(rk_config_len(cfg, "membership.seeds"), 2);
	assert_string_equal(rk_config_string(cfg, "membership.seeds[0]", NULL),
	                    "tcp://a:7000");
	assert_string_equal(rk_config_string(cfg, "membership.seeds[1]", NULL),
	                    "tcp://b:7000");
	assert_string_equal(rk_config_string(cfg, "membership.seeds[2]", "d"),
	                    "d");
	assert_int_equal(rk_config_len(cfg, "rules"), 2);
	assert_string_equal(rk_config_string(cfg, "rules[0].name", NULL),
	                    "get");
	assert_int_equal(rk_config_int(cfg, "rules[0].limit", 0, 0, 100), 10);
	assert_string_equal(rk_config_string(cfg, "rules[1].name", NULL),
	                    "put");
	assert_int_equal(rk_config_int(cfg, "rules[1].limit", 0, 0, 100), 5);
	assert_int_equal(rk_config_line(cfg, "rules"), 5);
	assert_int_equal(rk_config_line(cfg, "rules[1]"), 8);
	assert_int_equal(rk_config_line(cfg, "membership.seeds[1]"), 4);
	assert_int_equal(rk_config_int(cfg, "flow[1][1]", 0, 0, 9), 3);
	assert_int_equal(rk_config_int(cfg, "flow[0]", 0, 0, 9), 1);
	assert_int_equal(
	    rk_config_int(cfg, "flow[99999999999999999999999]", 0, 0, 9), 0);
	assert_finish_fails_with(cfg,
	                         "svc.yaml:10: unknown field rules[1].burst\n"
	                         "svc.yaml:11: unknown field flow[1][0]");
	rk_config_free(cfg);
}

static void test_config_iterates_map_keys_in_file_order(void **state)
{
	(void)state;
	rk_config_t *cfg = parse_ok("limits:\n"
	                            "  get: 100\n"
	                            "  put: 50\n"
	                            "  delete: 10\n");
	static const char *const keys[] = {"get", "put", "delete"};
	static const int64_t values[] = {100, 50, 10};
	assert_int_equal(rk_config_len(cfg, ""), 1);
	assert_string_equal(rk_config_key(cfg, "", 0), "limits");
	assert_int_equal(rk_config_len(cfg, NULL), 1);
	assert_int_equal(rk_config_len(cfg, "limits"), 3);
	for (size_t i = 0; i < 3; i++) {
		const char *key = rk_config_key(cfg, "limits", i);
		assert_non_null(key);
		assert_string_equal(key, keys[i]);
		char path[64];
		snprintf(path, sizeof(path), "limits.%s", key);
		assert_int_equal(rk_config_int(cfg, path, 0, 0, 1000),
		                 values[i]);
	}
	assert_null(rk_config_key(cfg, "limits", 3));
	assert_finish_ok(cfg);
	rk_config_free(cfg);
}

static void test_config_finds_keys_containing_dots(void **state)
{
	(void)state;
	rk_config_t *cfg = parse_ok("nodes:\n"
	                            "  10.0.0.1:\n"
	                            "    weight: 2\n"
	                            "  10.0.0.2:\n"
	                            "    weight: 3\n"
	                            "m:\n"
	                            "  a:\n"
	                            "    b: 1\n"
	                            "  a.b: 2\n");
	assert_int_equal(rk_config_len(cfg, "nodes"), 2);
	assert_string_equal(rk_config_key(cfg, "nodes", 0), "10.0.0.1");
	assert_int_equal(rk_config_int(cfg, "nodes.10.0.0.1.weight", 0, 0, 9),
	                 2);
	assert_int_equal(rk_config_int(cfg, "nodes.10.0.0.2.weight", 0, 0, 9),
	                 3);
	/* The longest key that matches wins. */
	assert_int_equal(rk_config_int(cfg, "m.a.b", 0, 0, 9), 2);
	assert_finish_fails_with(cfg, "svc.yaml:7: unknown field m.a");
	rk_config_free(cfg);
}

static void test_config_len_and_key_report_wrong_kind(void **state)
{
	(void)state;
	rk_config_t *cfg = parse_ok("a: 5\ns: [1]\n");
	assert_int_equal(rk_config_len(cfg, "a"), 0);
	assert_null(rk_config_key(cfg, "s", 0));
	assert_finish_fails_with(
	    cfg,
	    "svc.yaml:1: field a: expected a map or a sequence, got \"5\"\n"
	    "svc.yaml:2: field s: expected a map, got a sequence");
	rk_config_free(cfg);
}

static void test_config_error_reports_caller_message_with_line(void **state)
{
	(void)state;
	rk_config_t *cfg = parse_ok("storage:\n  dir: relative/path\n");
	const char *dir = rk_config_string(cfg, "storage.dir", NULL);
	rk_config_error(cfg, "storage.dir", "must be an absolute path, got %s",
	                dir);
	/* An absent field takes the line of the section it belongs in. */
	rk_config_error(cfg, "storage.engine", "is required");
	rk_config_error(cfg, "cluster", "is required");
	assert_finish_fails_with(
	    cfg, "svc.yaml: field cluster: is required\n"
	         "svc.yaml:1: field storage.engine: is required\n"
	         "svc.yaml:2: field storage.dir: must be an absolute path, got "
	         "relative/path");
	rk_config_free(cfg);
}

static void test_config_ignore_marks_subtree_read(void **state)
{
	(void)state;
	rk_config_t *cfg = parse_ok("future:\n"
	                            "  a: 1\n"
	                            "  b: [1, {c: 2}]\n"
	                            "now: 1\n");
	rk_config_ignore(cfg, "future");
	rk_config_ignore(cfg, "not.there");
	assert_int_equal(rk_config_int(cfg, "now", 0, 0, 9), 1);
	assert_finish_ok(cfg);
	rk_config_free(cfg);
}

static void test_config_line_gives_key_line_without_reading(void **state)
{
	(void)state;
	rk_config_t *cfg = parse_ok("# comment\n"
	                            "a:\n"
	                            "  b:\n"
	                            "    c: 1\n");
	assert_int_equal(rk_config_line(cfg, "a.b.c"), 4);
	assert_int_equal(rk_config_line(cfg, "a.b"), 3);
	assert_int_equal(rk_config_line(cfg, "a"), 2);
	assert_int_equal(rk_config_line(cfg, "a.x"), 0);
	assert_int_equal(rk_config_line(cfg, ""), 0);
	assert_finish_fails_with(cfg, "svc.yaml:2: unknown field a");
	rk_config_free(cfg);
}

static void test_config_reports_invalid_path(void **state)
{
	(void)state;
	rk_config_t *cfg = parse_ok("a:\n  b: 1\nl: [1]\n");
	assert_int_equal(rk_config_int(cfg, "a..b", 5, 0, 9), 5);
	assert_int_equal(rk_config_int(cfg, "l[x]", 5, 0, 9), 5);
	assert_int_equal(rk_config_int(cfg, "l[0", 5, 0, 9), 5);
	assert_int_equal(rk_config_int(cfg, "l[0]x", 5, 0, 9), 5);
	assert_int_equal(rk_config_int(cfg, ".a", 5, 0, 9), 5);
	assert_int_equal(rk_config_int(cfg, "a.", 5, 0, 9), 5);
	/* Found whatever the file holds: "nope" is absent. */
	assert_int_equal(rk_config_int(cfg, "nope..x", 5, 0, 9), 5);
	assert_int_equal(rk_config_int(cfg, "l.[0]", 5, 0, 9), 5);
	assert_int_equal(rk_config_int(cfg, "l[]", 5, 0, 9), 5);
	rk_config_ignore(cfg, "a");
	rk_config_ignore(cfg, "l");
	const char *why = ": not a valid field path (a bug in the program, "
	                  "not in the file)";
	char expected[1024];
	snprintf(expected, sizeof(expected),
	         "svc.yaml: field a..b%s\n"
	         "svc.yaml: field l[x]%s\n"
	         "svc.yaml: field l[0%s\n"
	         "svc.yaml: field l[0]x%s\n"
	         "svc.yaml: field .a%s\n"
	         "svc.yaml: field a.%s\n"
	         "svc.yaml: field nope..x%s\n"
	         "svc.yaml: field l.[0]%s\n"
	         "svc.yaml: field l[]%s",
	         why, why, why, why, why, why, why, why, why);
	assert_finish_fails_with(cfg, expected);
	rk_config_free(cfg);
}

static void test_config_quotes_and_cuts_long_values_in_errors(void **state)
{
	(void)state;
	char text[512];
	char xs[201];
	memset(xs, 'x', 200);
	xs[200] = '\0';
	snprintf(text, sizeof(text), "a: %s\nb: 'he said \"hi\" \\ ok'\n", xs);
	rk_config_t *cfg = parse_ok(text);
	assert_int_equal(rk_config_int(cfg, "a", 0, 0, 9), 0);
	assert_int_equal(rk_config_int(cfg, "b", 0, 0, 9), 0);
	char expected[512];
	snprintf(expected, sizeof(expected),
	         "svc.yaml:1: field a: expected an integer in [0, 9], got "
	         "\"%.90s...\"\n"
	         "svc.yaml:2: field b: expected an integer in [0, 9], got "
	         "\"he said \\\"hi\\\" \\\\ ok\"",
	         xs);
	assert_finish_fails_with(cfg, expected);
	rk_config_free(cfg);
}

static void test_config_empty_document_is_empty_map(void **state)
{
	(void)state;
	static const char *const texts[] = {"", "# only a comment\n", "---\n",
	                                    "~\n", "{}\n"};
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		rk_config_t *cfg = parse_ok(texts[i]);
		assert_int_equal(rk_config_len(cfg, ""), 0);
		assert_int_equal(rk_config_int(cfg, "a", 3, 0, 9), 3);
		assert_finish_ok(cfg);
		rk_config_free(cfg);
	}
	rk_config_t *cfg = NULL;
	assert_int_equal(rk_config_parse(NULL, 0, NAME, &cfg, NULL), RK_OK);
	assert_finish_ok(cfg);
	rk_config_free(cfg);
}

static void test_config_parse_reads_only_len_bytes(void **state)
{
	(void)state;
	const char *text = "a: 1\nb: 2\n";
	rk_config_t *cfg = NULL;
	assert_int_equal(rk_config_parse(text, 5, NAME, &cfg, NULL), RK_OK);
	assert_int_equal(rk_config_int(cfg, "a", 0, 0, 9), 1);
	assert_false(rk_config_has(cfg, "b"));
	assert_finish_ok(cfg);
	rk_config_free(cfg);
}

static void test_config_rejects_duplicate_key(void **state)
{
	(void)state;
	const char *t = "a: 1\nb: 2\na: 3\n";
	assert_parse_fails_with(t, strlen(t),
	                        "svc.yaml:3:1: duplicate key \"a\" (first at "
	                        "line 1)");
	t = "rpc:\n  listen: x\n  workers: 1\n  listen: y\n";
	assert_parse_fails_with(t, strlen(t),
	                        "svc.yaml:4:3: duplicate key \"listen\" (first "
	                        "at line 2)");
	/* Of two repeated keys, the repeat that comes first is named. */
	t = "b: 1\na: 1\na: 2\nb: 2\n";
	assert_parse_fails_with(t, strlen(t),
	                        "svc.yaml:3:1: duplicate key \"a\" (first at "
	                        "line 2)");
	t = "x: {k: 1, k: 2}\n";
	assert_parse_fails_with(t, strlen(t),
	                        "svc.yaml:1:11: duplicate key \"k\" (first at "
	                        "line 1)");
	/* The same key in two different maps is fine. */
	rk_config_t *cfg = parse_ok("x:\n  a: 1\ny:\n  a: 2\n");
	rk_config_free(cfg);
}

static void test_config_rejects_malformed_yaml_with_line(void **state)
{
	(void)state;
	const char *t = "a: 1\n b: 2\n";
	assert_parse_fails_with(t, strlen(t),
	                        "svc.yaml:2:3: mapping values are not allowed "
	                        "in this context");
	t = "rpc:\n  listen: x\n workers: 2\n";
	assert_parse_fails_with(
	    t, strlen(t),
	    "svc.yaml:3:2: did not find expected key (while "
	    "parsing a block mapping at line 1)");
	t = "a: 1\nb: 'unterminated\n";
	assert_parse_fails_with(t, strlen(t),
	                        "svc.yaml:3:1: found unexpected end of stream "
	                        "(while scanning a quoted scalar at line 2)");
	t = "a: 1\nb: \xff\n";
	assert_parse_fails_with(t, strlen(t),
	                        "svc.yaml:2:4: invalid leading UTF-8 octet "
	                        "(0xff)");
	/* Without an error string the status still tells. */
	rk_config_t *cfg = NULL;
	assert_int_equal(rk_config_parse(t, strlen(t), NAME, &cfg, NULL),
	                 RK_INVALID_ARGUMENT);
	assert_null(cfg);
}

static void test_config_rejects_top_level_other_than_map(void **state)
{
	(void)state;
	const char *t = "- 1\n- 2\n";
	assert_parse_fails_with(t, strlen(t),
	                        "svc.yaml:1:1: the top level must be a map of "
	                        "fields, got a sequence");
	t = "\nhello\n";
	assert_parse_fails_with(t, strlen(t),
	                        "svc.yaml:2:1: the top level must be a map of "
	                        "fields, got a scalar");
}

static void test_config_refuses_anchors_aliases_and_tags(void **state)
{
	(void)state;
	const char *t = "base: &b {x: 1}\nother: *b\n";
	assert_parse_fails_with(t, strlen(t),
	                        "svc.yaml:1:7: anchors (&b) are not supported");
	t = "a: 1\nb: *nowhere\n";
	assert_parse_fails_with(t, strlen(t),
	                        "svc.yaml:2:4: aliases (*nowhere) are not "
	                        "supported");
	t = "a: !!str 5\n";
	assert_parse_fails_with(t, strlen(t),
	                        "svc.yaml:1:4: tags (!!str) are not supported");
	t = "a: !local 5\n";
	assert_parse_fails_with(
	    t, strlen(t), "svc.yaml:1:4: tags (!local) are not supported");
}

static void test_config_rejects_what_a_config_cannot_hold(void **state)
{
	(void)state;
	const char *t = "a: 1\n---\nb: 2\n";
	assert_parse_fails_with(
	    t, strlen(t),
	    "svc.yaml:2:1: a second YAML document; a config "
	    "file holds one");
	t = "a: 1\n[x]: 1\n";
	assert_parse_fails_with(
	    t, strlen(t),
	    "svc.yaml:2:1: a map key must be a scalar, got a "
	    "sequence");
	t = "a: \"x\\0y\"\n";
	assert_parse_fails_with(
	    t, strlen(t),
	    "svc.yaml:1:4: a NUL character in a value is not "
	    "supported");
}

/* "a: [[[...]]]" with the top-level map as level 1. */
static char *flow_nesting(size_t levels, bool closed)
{
	size_t open = levels - 1;
	char *t = malloc(3 + 2 * open + 2);
	assert_non_null(t);
	memcpy(t, "a: ", 3);
	memset(t + 3, '[', open);
	size_t len = 3 + open;
	if (closed) {
		memset(t + len, ']', open);
		len += open;
	}
	t[len++] = '\n';
	t[len] = '\0';
	return t;
}

static void test_config_refuses_deep_nesting(void **state)
{
	(void)state;
	char *t = flow_nesting(64, true);
	rk_config_t *cfg = parse_ok(t);
	rk_config_ignore(cfg, "a");
	assert_finish_ok(cfg);
	rk_config_free(cfg);
	free(t);

	/* The 64th '[' opens level 65; it is at column 3 + 64. */
	t = flow_nesting(65, true);
	assert_parse_fails_with(t, strlen(t),
	                        "svc.yaml:1:67: nested deeper than 64 levels");
	free(t);

	/* A million levels, never closed: refused the same way, early. */
	t = flow_nesting(1000000, false);
	assert_parse_fails_with(t, strlen(t),
	                        "svc.yaml:1:67: nested deeper than 64 levels");
	free(t);

	/* Block maps: line i (1-based) is "k:" indented 2 (i - 1), and the
	 * map that holds it is level i. */
	for (int levels = 64; levels <= 65; levels++) {
		char *b = malloc((size_t)levels * (2 * levels + 8));
		assert_non_null(b);
		size_t len = 0;
		for (int i = 0; i < levels; i++) {
			memset(b + len, ' ', (size_t)(2 * i));
			len += (size_t)(2 * i);
			const char *k = i + 1 < levels ? "k:\n" : "k: 1\n";
			memcpy(b + len, k, strlen(k));
			len += strlen(k);
		}
		b[len] = '\0';
		if (levels == 64) {
			cfg = parse_ok(b);
			rk_config_ignore(cfg, "k");
			assert_finish_ok(cfg);
			rk_config_free(cfg);
		} else {
			assert_parse_fails_with(
			    b, len,
			    "svc.yaml:65:129: nested deeper "
			    "than 64 levels");
		}
		free(b);
	}
}

static void test_config_refuses_text_over_16_mib(void **state)
{
	(void)state;
	/* Exactly 16 MiB is accepted: a field, then one long comment. */
	size_t limit = 16 * MIB;
	char *t = malloc(limit + 1);
	assert_non_null(t);
	memset(t, 'x', limit + 1);
	memcpy(t, "a: 1\n#", 6);
	t[limit - 1] = '\n';
	rk_config_t *cfg = NULL;
	assert_int_equal(rk_config_parse(t, limit, NAME, &cfg, NULL), RK_OK);
	assert_int_equal(rk_config_int(cfg, "a", 0, 0, 9), 1);
	assert_finish_ok(cfg);
	rk_config_free(cfg);
	/* One byte more is not, whatever it holds. */
	assert_parse_fails_with(t, limit + 1,
	                        "svc.yaml: larger than 16 MiB, the limit for a "
	                        "config file");
	free(t);
}

struct tmpdir {
	char dir[64];   /* from mkdtemp */
	char path[128]; /* DIR/svc.yaml */
};

static int setup_dir(void **state)
{
	struct tmpdir *d = calloc(1, sizeof(*d));
	if (d == NULL)
		return -1;
	snprintf(d->dir, sizeof(d->dir), "/tmp/rk_config.XXXXXX");
	if (mkdtemp(d->dir) == NULL) {
		free(d);
		return -1;
	}
	snprintf(d->path, sizeof(d->path), "%s/svc.yaml", d->dir);
	*state = d;
	return 0;
}

static int teardown_dir(void **state)
{
	struct tmpdir *d = *state;
	DIR *dir = opendir(d->dir);
	if (dir != NULL) {
		struct dirent *e;
		while ((e = readdir(dir)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 ||
			    strcmp(e->d_name, "..") == 0)
				continue;
			char p[512];
			snprintf(p, sizeof(p), "%s/%s", d->dir, e->d_name);
			unlink(p);
		}
		closedir(dir);
	}
	int rc = rmdir(d->dir);
	free(d);
	return rc;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void test_config_loads_file_and_names_it(void **state)
{
	struct tmpdir *d = *state;
	write_file(d->path, "a: 1\nb: x\n");
	rk_config_t *cfg = NULL;
	char *err = NULL;
	assert_int_equal(rk_config_load(d->path, &cfg, &err), RK_OK);
	assert_null(err);
	assert_string_equal(rk_config_name(cfg), d->path);
	assert_int_equal(rk_config_int(cfg, "a", 0, 0, 9), 1);
	char expected[256];
	snprintf(expected, sizeof(expected), "%s:2: unknown field b", d->path);
	assert_finish_fails_with(cfg, expected);
	rk_config_free(cfg);
}

static void test_config_load_reports_parse_error_with_path(void **state)
{
	struct tmpdir *d = *state;
	write_file(d->path, "a: 1\na: 2\n");
	rk_config_t *cfg = NULL;
	char *err = NULL;
	assert_int_equal(rk_config_load(d->path, &cfg, &err),
	                 RK_INVALID_ARGUMENT);
	assert_null(cfg);
	char expected[256];
	snprintf(expected, sizeof(expected),
	         "%s:2:1: duplicate key \"a\" (first at line 1)", d->path);
	assert_string_equal(err, expected);
	free(err);
}

static void test_config_missing_file_is_not_found(void **state)
{
	struct tmpdir *d = *state;
	rk_config_t *cfg = NULL;
	char *err = NULL;
	assert_int_equal(rk_config_load(d->path, &cfg, &err), RK_NOT_FOUND);
	assert_null(cfg);
	char expected[256];
	snprintf(expected, sizeof(expected),
	         "%s: cannot open: No such file or directory", d->path);
	assert_string_equal(err, expected);
	free(err);
	/* A directory opens but cannot be read as a file. */
	assert_int_equal(rk_config_load(d->dir, &cfg, &err), RK_NOT_FOUND);
	assert_null(cfg);
	snprintf(expected, sizeof(expected), "%s: cannot read: Is a directory",
	         d->dir);
	assert_string_equal(err, expected);
	free(err);
}

static void test_config_load_refuses_file_over_16_mib(void **state)
{
	struct tmpdir *d = *state;
	/* A sparse file: 16 MiB + 1 of zero bytes, written in no time. */
	int fd = open(d->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)(16 * MIB + 1)), 0);
	assert_int_equal(close(fd), 0);
	rk_config_t *cfg = NULL;
	char *err = NULL;
	assert_int_equal(rk_config_load(d->path, &cfg, &err),
	                 RK_INVALID_ARGUMENT);
	assert_null(cfg);
	char expected[256];
	snprintf(expected, sizeof(expected),
	         "%s: larger than 16 MiB, the limit for a config file",
	         d->path);
	assert_string_equal(err, expected);
	free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_config_reads_typed_values),
	    cmocka_unit_test(test_config_absent_fields_give_defaults),
	    cmocka_unit_test(test_config_reports_unknown_field_with_line),
	    cmocka_unit_test(
	        test_config_escapes_control_characters_in_unknown_keys),
	    cmocka_unit_test(test_config_reading_child_leaves_siblings_unread),
	    cmocka_unit_test(test_config_has_marks_field_read),
	    cmocka_unit_test(test_config_rejects_int_out_of_range),
	    cmocka_unit_test(test_config_parses_int_limits_and_hex),
	    cmocka_unit_test(test_config_parses_durations_and_sizes),
	    cmocka_unit_test(test_config_rejects_bad_durations_and_sizes),
	    cmocka_unit_test(test_config_reads_bools_in_every_spelling),
	    cmocka_unit_test(test_config_choice_error_lists_the_choices),
	    cmocka_unit_test(test_config_reports_every_error_at_once),
	    cmocka_unit_test(
	        test_config_reports_type_error_under_scalar_parent),
	    cmocka_unit_test(test_config_reports_sequence_and_map_mismatch),
	    cmocka_unit_test(test_config_reports_map_where_value_expected_once),
	    cmocka_unit_test(test_config_null_value_counts_as_absent),
	    cmocka_unit_test(test_config_reads_sequences_by_index),
	    cmocka_unit_test(test_config_iterates_map_keys_in_file_order),
	    cmocka_unit_test(test_config_finds_keys_containing_dots),
	    cmocka_unit_test(test_config_len_and_key_report_wrong_kind),
	    cmocka_unit_test(
	        test_config_error_reports_caller_message_with_line),
	    cmocka_unit_test(test_config_ignore_marks_subtree_read),
	    cmocka_unit_test(test_config_line_gives_key_line_without_reading),
	    cmocka_unit_test(test_config_reports_invalid_path),
	    cmocka_unit_test(test_config_quotes_and_cuts_long_values_in_errors),
	    cmocka_unit_test(test_config_empty_document_is_empty_map),
	    cmocka_unit_test(test_config_parse_reads_only_len_bytes),
	    cmocka_unit_test(test_config_rejects_duplicate_key),
	    cmocka_unit_test(test_config_rejects_malformed_yaml_with_line),
	    cmocka_unit_test(test_config_rejects_top_level_other_than_map),
	    cmocka_unit_test(test_config_refuses_anchors_aliases_and_tags),
	    cmocka_unit_test(test_config_rejects_what_a_config_cannot_hold),
	    cmocka_unit_test(test_config_refuses_deep_nesting),
	    cmocka_unit_test(test_config_refuses_text_over_16_mib),
	    cmocka_unit_test_setup_teardown(test_config_loads_file_and_names_it,
	                                    setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(
	        test_config_load_reports_parse_error_with_path, setup_dir,
	        teardown_dir),
	    cmocka_unit_test_setup_teardown(
	        test_config_missing_file_is_not_found, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(
	        test_config_load_refuses_file_over_16_mib, setup_dir,
	        teardown_dir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
