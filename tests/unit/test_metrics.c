/*
 * Unit tests for lib/metrics: identity of (name, labels) pairs, the values
 * of each kind, the exact exposition text, exact totals under concurrent
 * updates, and the refusals (bad names, bad labels, bad bounds, kind
 * clashes), each with its log line.
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "metrics/metrics.h"

/* ---- helpers ------------------------------------------------------- */

static char *render(rk_metrics_t *m)
{
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(rk_metrics_render(m, &text, &len), RK_OK);
	assert_non_null(text);
	assert_int_equal(strlen(text), len);
	return text;
}

/* Redirects stderr (where rk_log writes) to a temporary file until
 * stderr_end(), which returns what was written; caller frees. */
struct capture {
	FILE *file; /* the temporary file standing in for stderr */
	int saved;  /* the real stderr, restored at the end */
};

static void stderr_begin(struct capture *c)
{
	c->file = tmpfile();
	assert_non_null(c->file);
	c->saved = dup(STDERR_FILENO);
	assert_true(c->saved >= 0);
	assert_true(dup2(fileno(c->file), STDERR_FILENO) >= 0);
}

static char *stderr_end(struct capture *c)
{
	assert_true(dup2(c->saved, STDERR_FILENO) >= 0);
	close(c->saved);
	/* rk_log writes to the fd, so the FILE position says nothing. */
	assert_int_equal(fseek(c->file, 0, SEEK_END), 0);
	long size = ftell(c->file);
	assert_true(size >= 0);
	rewind(c->file);
	char *text = calloc(1, (size_t)size + 1);
	assert_non_null(text);
	size_t got = fread(text, 1, (size_t)size, c->file);
	assert_int_equal(got, (size_t)size);
	fclose(c->file);
	return text;
}

/* ---- identity and values ------------------------------------------- */

static void test_metrics_same_pair_returns_same_object(void **state)
{
	(void)state;
	rk_metrics_t *m = rk_metrics_new();
	assert_non_null(m);
	const double b[] = {1, 2};

	rk_counter_t *c1 = rk_metrics_counter(m, "c_total", "h", "k=\"a\"");
	rk_counter_t *c2 = rk_metrics_counter(m, "c_total", "h", "k=\"a\"");
	rk_counter_t *c3 = rk_metrics_counter(m, "c_total", "h", "k=\"b\"");
	assert_non_null(c1);
	assert_ptr_equal(c1, c2);
	assert_non_null(c3);
	assert_ptr_not_equal(c1, c3);
	/* NULL labels are the same series as "". */
	rk_counter_t *c4 = rk_metrics_counter(m, "c_total", "h", NULL);
	assert_ptr_equal(c4, rk_metrics_counter(m, "c_total", "h", ""));
	assert_ptr_not_equal(c4, c1);

	rk_gauge_t *g1 = rk_metrics_gauge(m, "g", "h", "");
	assert_non_null(g1);
	assert_ptr_equal(g1, rk_metrics_gauge(m, "g", "other help", ""));

	rk_histogram_t *h1 = rk_metrics_histogram(m, "h", "h", "", b, 2);
	assert_non_null(h1);
	assert_ptr_equal(h1, rk_metrics_histogram(m, "h", "h", "", b, 2));
	assert_ptr_not_equal(
	    h1, rk_metrics_histogram(m, "h", "h", "x=\"1\"", b, 2));

	/* Updates through one pointer show through the other. */
	rk_counter_add(c1, 5);
	assert_int_equal(rk_counter_value(c2), 5);
	assert_int_equal(rk_counter_value(c3), 0);
	rk_metrics_free(m);
}

static void test_metrics_counter_gauge_histogram_values(void **state)
{
	(void)state;
	rk_metrics_t *m = rk_metrics_new();
	assert_non_null(m);

	rk_counter_t *c = rk_metrics_counter(m, "c_total", "", "");
	assert_int_equal(rk_counter_value(c), 0);
	rk_counter_add(c, 1);
	rk_counter_add(c, 41);
	rk_counter_add(c, UINT64_C(1) << 40);
	assert_int_equal(rk_counter_value(c), (UINT64_C(1) << 40) + 42);

	rk_gauge_t *g = rk_metrics_gauge(m, "g", "", "");
	assert_true(rk_gauge_value(g) == 0.0);
	rk_gauge_set(g, 2.5);
	assert_true(rk_gauge_value(g) == 2.5);
	rk_gauge_add(g, -4.0);
	assert_true(rk_gauge_value(g) == -1.5);
	rk_gauge_set(g, 7);
	rk_gauge_add(g, 0.25);
	assert_true(rk_gauge_value(g) == 7.25);

	const double b[] = {0.5, 1};
	rk_histogram_t *h = rk_metrics_histogram(m, "h", "", "", b, 2);
	assert_int_equal(rk_histogram_count(h), 0);
	rk_histogram_observe(h, 0.1);
	rk_histogram_observe(h, 0.5);
	rk_histogram_observe(h, 100);
	assert_int_equal(rk_histogram_count(h), 3);
	rk_metrics_free(m);
}

/* ---- rendering ----------------------------------------------------- */

static void test_metrics_renders_exact_exposition_text(void **state)
{
	(void)state;
	rk_metrics_t *m = rk_metrics_new();
	assert_non_null(m);

	rk_counter_t *get = rk_metrics_counter(
	    m, "rk_requests_total", "Requests served,\nby method \\ code.",
	    "method=\"Get\",code=\"OK\"");
	/* Help from the first registration wins. */
	rk_counter_t *put = rk_metrics_counter(
	    m, "rk_requests_total", "ignored", "method=\"Put\",code=\"OK\"");
	rk_gauge_t *depth =
	    rk_metrics_gauge(m, "rk_queue_depth", "Items \"queued\".", "");
	const double lat_bounds[] = {0.125, 0.5, 1};
	rk_histogram_t *lat =
	    rk_metrics_histogram(m, "rk_latency_seconds", "Latency.",
	                         "method=\"Get\"", lat_bounds, 3);
	const double flush_bounds[] = {1};
	rk_histogram_t *flush = rk_metrics_histogram(
	    m, "rk_flush_seconds", NULL, NULL, flush_bounds, 1);
	assert_non_null(get);
	assert_non_null(put);
	assert_non_null(depth);
	assert_non_null(lat);
	assert_non_null(flush);

	rk_counter_add(get, 3);
	rk_counter_add(put, 1);
	rk_gauge_set(depth, 2.5);
	/* Binary fractions, so the sum is exact; 0.125 sits on a bound and
	 * counts in that bucket (le means <=). */
	rk_histogram_observe(lat, 0.0625);
	rk_histogram_observe(lat, 0.125);
	rk_histogram_observe(lat, 0.25);
	rk_histogram_observe(lat, 0.75);
	rk_histogram_observe(lat, 2);
	rk_histogram_observe(flush, 3);

	const char *want =
	    "# HELP rk_requests_total Requests served,\\nby method \\\\ "
	    "code.\n"
	    "# TYPE rk_requests_total counter\n"
	    "rk_requests_total{method=\"Get\",code=\"OK\"} 3\n"
	    "rk_requests_total{method=\"Put\",code=\"OK\"} 1\n"
	    "# HELP rk_queue_depth Items \"queued\".\n"
	    "# TYPE rk_queue_depth gauge\n"
	    "rk_queue_depth 2.5\n"
	    "# HELP rk_latency_seconds Latency.\n"
	    "# TYPE rk_latency_seconds histogram\n"
	    "rk_latency_seconds_bucket{method=\"Get\",le=\"0.125\"} 2\n"
	    "rk_latency_seconds_bucket{method=\"Get\",le=\"0.5\"} 3\n"
	    "rk_latency_seconds_bucket{method=\"Get\",le=\"1\"} 4\n"
	    "rk_latency_seconds_bucket{method=\"Get\",le=\"+Inf\"} 5\n"
	    "rk_latency_seconds_sum{method=\"Get\"} 3.1875\n"
	    "rk_latency_seconds_count{method=\"Get\"} 5\n"
	    "# HELP rk_flush_seconds \n"
	    "# TYPE rk_flush_seconds histogram\n"
	    "rk_flush_seconds_bucket{le=\"1\"} 0\n"
	    "rk_flush_seconds_bucket{le=\"+Inf\"} 1\n"
	    "rk_flush_seconds_sum 3\n"
	    "rk_flush_seconds_count 1\n";
	char *got = render(m);
	assert_string_equal(got, want);
	free(got);
	rk_metrics_free(m);
}

static void test_metrics_empty_registry_renders_nothing(void **state)
{
	(void)state;
	rk_metrics_t *m = rk_metrics_new();
	assert_non_null(m);
	char *got = render(m);
	assert_string_equal(got, "");
	free(got);
	rk_metrics_free(m);
}

static void test_metrics_renders_special_and_short_numbers(void **state)
{
	(void)state;
	rk_metrics_t *m = rk_metrics_new();
	assert_non_null(m);
	rk_gauge_set(rk_metrics_gauge(m, "g", "", "v=\"tenth\""), 0.1);
	rk_gauge_set(rk_metrics_gauge(m, "g", "", "v=\"third\""), 1.0 / 3);
	rk_gauge_set(rk_metrics_gauge(m, "g", "", "v=\"inf\""), INFINITY);
	rk_gauge_set(rk_metrics_gauge(m, "g", "", "v=\"-inf\""), -INFINITY);
	rk_gauge_set(rk_metrics_gauge(m, "g", "", "v=\"nan\""), NAN);
	rk_gauge_set(rk_metrics_gauge(m, "g", "", "v=\"big\""), 1e21);
	rk_gauge_set(rk_metrics_gauge(m, "g", "", "v=\"neg\""), -42);
	const char *want = "# HELP g \n"
	                   "# TYPE g gauge\n"
	                   "g{v=\"tenth\"} 0.1\n"
	                   "g{v=\"third\"} 0.3333333333333333\n"
	                   "g{v=\"inf\"} +Inf\n"
	                   "g{v=\"-inf\"} -Inf\n"
	                   "g{v=\"nan\"} NaN\n"
	                   "g{v=\"big\"} 1e+21\n"
	                   "g{v=\"neg\"} -42\n";
	char *got = render(m);
	assert_string_equal(got, want);
	free(got);
	rk_metrics_free(m);
}

static void test_metrics_latency_bounds_span_50us_to_10s(void **state)
{
	(void)state;
	assert_int_equal(rk_metrics_latency_bounds_len, 17);
	assert_true(rk_metrics_latency_bounds[0] == 50e-6);
	assert_true(rk_metrics_latency_bounds[16] == 10.0);
	for (size_t i = 1; i < rk_metrics_latency_bounds_len; i++)
		assert_true(rk_metrics_latency_bounds[i] >
		            rk_metrics_latency_bounds[i - 1]);

	rk_metrics_t *m = rk_metrics_new();
	assert_non_null(m);
	rk_histogram_t *h = rk_metrics_histogram(m, "lat_seconds", "", "",
	                                         rk_metrics_latency_bounds,
	                                         rk_metrics_latency_bounds_len);
	assert_non_null(h);
	rk_histogram_observe(h, 0.003); /* in (2.5ms, 5ms] */
	char *got = render(m);
	assert_non_null(strstr(got, "lat_seconds_bucket{le=\"5e-05\"} 0\n"));
	assert_non_null(strstr(got, "lat_seconds_bucket{le=\"0.0025\"} 0\n"));
	assert_non_null(strstr(got, "lat_seconds_bucket{le=\"0.005\"} 1\n"));
	assert_non_null(strstr(got, "lat_seconds_bucket{le=\"10\"} 1\n"));
	assert_non_null(strstr(got, "lat_seconds_bucket{le=\"+Inf\"} 1\n"));
	free(got);
	rk_metrics_free(m);
}

/* A trailing +Inf bound is the implied bucket, not a second one. */
static void test_metrics_histogram_drops_explicit_inf_bound(void **state)
{
	(void)state;
	rk_metrics_t *m = rk_metrics_new();
	assert_non_null(m);
	const double b[] = {1, INFINITY};
	rk_histogram_t *h = rk_metrics_histogram(m, "h", "", "", b, 2);
	assert_non_null(h);
	rk_histogram_observe(h, 5);
	char *got = render(m);
	assert_string_equal(got, "# HELP h \n"
	                         "# TYPE h histogram\n"
	                         "h_bucket{le=\"1\"} 0\n"
	                         "h_bucket{le=\"+Inf\"} 1\n"
	                         "h_sum 5\n"
	                         "h_count 1\n");
	free(got);
	rk_metrics_free(m);
}

/* ---- concurrency --------------------------------------------------- */

#define THREADS 4
#define ADDS    100000

struct hammer {
	pthread_barrier_t *start; /* released when every thread is ready */
	rk_counter_t *counter;    /* add 1 per iteration */
	rk_gauge_t *gauge;        /* add 1.0 per iteration */
	rk_histogram_t *hist;     /* observe 1.0 per iteration */
};

static void *hammer_main(void *arg)
{
	struct hammer *h = arg;
	pthread_barrier_wait(h->start);
	for (int i = 0; i < ADDS; i++) {
		rk_counter_add(h->counter, 1);
		rk_gauge_add(h->gauge, 1.0);
		rk_histogram_observe(h->hist, 1.0);
	}
	return NULL;
}

static void test_metrics_concurrent_updates_give_exact_totals(void **state)
{
	(void)state;
	rk_metrics_t *m = rk_metrics_new();
	assert_non_null(m);
	const double b[] = {0.5, 1, 2};
	pthread_barrier_t start;
	assert_int_equal(pthread_barrier_init(&start, NULL, THREADS), 0);
	struct hammer h = {
	    .start = &start,
	    .counter = rk_metrics_counter(m, "c_total", "", ""),
	    .gauge = rk_metrics_gauge(m, "g", "", ""),
	    .hist = rk_metrics_histogram(m, "h", "", "", b, 3),
	};
	pthread_t threads[THREADS];
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(
		    pthread_create(&threads[i], NULL, hammer_main, &h), 0);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_join(threads[i], NULL), 0);
	pthread_barrier_destroy(&start);

	assert_int_equal(rk_counter_value(h.counter), (uint64_t)THREADS * ADDS);
	/* Integers below 2^53 add exactly, so a lost CAS would show. */
	assert_true(rk_gauge_value(h.gauge) == (double)THREADS * ADDS);
	assert_int_equal(rk_histogram_count(h.hist), (uint64_t)THREADS * ADDS);
	char *got = render(m); /* THREADS * ADDS == 400000 */
	assert_non_null(strstr(got, "h_bucket{le=\"0.5\"} 0\n"
	                            "h_bucket{le=\"1\"} 400000\n"
	                            "h_bucket{le=\"2\"} 400000\n"
	                            "h_bucket{le=\"+Inf\"} 400000\n"
	                            "h_sum 400000\n"
	                            "h_count 400000\n"));
	free(got);
	rk_metrics_free(m);
}

/* ---- refusals ------------------------------------------------------ */

static void test_metrics_refuses_invalid_name_with_log(void **state)
{
	(void)state;
	rk_metrics_t *m = rk_metrics_new();
	assert_non_null(m);
	const double b[] = {1};
	static const char *const bad[] = {"",    "9lives", "a-b",
	                                  "a b", "é",      "rk.requests"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct capture cap;
		stderr_begin(&cap);
		void *c = rk_metrics_counter(m, bad[i], "", "");
		void *g = rk_metrics_gauge(m, bad[i], "", "");
		void *h = rk_metrics_histogram(m, bad[i], "", "", b, 1);
		char *log = stderr_end(&cap);
		assert_null(c);
		assert_null(g);
		assert_null(h);
		assert_non_null(strstr(log, "invalid metric name"));
		free(log);
	}
	assert_null(rk_metrics_counter(m, NULL, "", ""));
	/* The whole alphabet of names is accepted. */
	assert_non_null(rk_metrics_counter(m, "_a:b_9", "", ""));
	assert_non_null(rk_metrics_counter(m, ":job:rate5m", "", ""));
	/* Refused names left nothing behind. */
	char *got = render(m);
	assert_string_equal(got, "# HELP _a:b_9 \n"
	                         "# TYPE _a:b_9 counter\n"
	                         "_a:b_9 0\n"
	                         "# HELP :job:rate5m \n"
	                         "# TYPE :job:rate5m counter\n"
	                         ":job:rate5m 0\n");
	free(got);
	rk_metrics_free(m);
}

static void test_metrics_refuses_kind_clash(void **state)
{
	(void)state;
	rk_metrics_t *m = rk_metrics_new();
	assert_non_null(m);
	const double b[] = {1};
	rk_counter_t *c = rk_metrics_counter(m, "x", "", "");
	assert_non_null(c);

	struct capture cap;
	stderr_begin(&cap);
	void *g = rk_metrics_gauge(m, "x", "", "");
	void *h = rk_metrics_histogram(m, "x", "", "k=\"v\"", b, 1);
	char *log = stderr_end(&cap);
	assert_null(g);
	assert_null(h);
	assert_non_null(strstr(log, "x is a counter, asked for as a gauge"));
	assert_non_null(
	    strstr(log, "x is a counter, asked for as a histogram"));
	free(log);

	/* The counter is untouched and still found. */
	assert_ptr_equal(rk_metrics_counter(m, "x", "", ""), c);
	rk_metrics_free(m);
}

static void test_metrics_refuses_malformed_labels(void **state)
{
	(void)state;
	rk_metrics_t *m = rk_metrics_new();
	assert_non_null(m);
	static const char *const bad[] = {
	    "method=Get",       /* unquoted */
	    "method=\"Get\",",  /* trailing comma */
	    "method=\"Get",     /* unterminated */
	    "9m=\"x\"",         /* bad label name */
	    "m=\"a\nb\"",       /* raw newline */
	    "m=\"a\\tb\"",      /* unknown escape */
	    "m=\"a\" ,n=\"b\"", /* stray space */
	    "{m=\"a\"}",        /* braces are ours to add */
	};
	struct capture cap;
	stderr_begin(&cap);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_null(rk_metrics_counter(m, "c", "", bad[i]));
	char *log = stderr_end(&cap);
	assert_non_null(strstr(log, "invalid labels"));
	free(log);

	/* Escapes the format allows are fine. */
	assert_non_null(
	    rk_metrics_counter(m, "c", "", "a=\"q\\\"\\\\\\n\",b=\"\""));
	/* Histograms own "le". */
	const double b[] = {1};
	assert_null(rk_metrics_histogram(m, "h", "", "le=\"1\"", b, 1));
	assert_non_null(rk_metrics_histogram(m, "h", "", "lex=\"1\"", b, 1));
	assert_non_null(rk_metrics_counter(m, "c2", "", "le=\"1\""));
	rk_metrics_free(m);
}

static void test_metrics_refuses_unordered_bounds(void **state)
{
	(void)state;
	rk_metrics_t *m = rk_metrics_new();
	assert_non_null(m);
	const double same[] = {1, 1};
	const double down[] = {2, 1};
	const double nan[] = {1, NAN};
	const double inf_first[] = {INFINITY, 1};
	const double neg_inf[] = {-INFINITY, 1};
	assert_null(rk_metrics_histogram(m, "h", "", "", same, 2));
	assert_null(rk_metrics_histogram(m, "h", "", "", down, 2));
	assert_null(rk_metrics_histogram(m, "h", "", "", nan, 2));
	assert_null(rk_metrics_histogram(m, "h", "", "", inf_first, 2));
	assert_null(rk_metrics_histogram(m, "h", "", "", neg_inf, 2));
	assert_null(rk_metrics_histogram(m, "h", "", "", NULL, 2));
	/* No bounds at all is a histogram with only the +Inf bucket. */
	rk_histogram_t *h = rk_metrics_histogram(m, "h", "", "", NULL, 0);
	assert_non_null(h);
	rk_histogram_observe(h, -3);
	assert_int_equal(rk_histogram_count(h), 1);
	rk_metrics_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_metrics_same_pair_returns_same_object),
	    cmocka_unit_test(test_metrics_counter_gauge_histogram_values),
	    cmocka_unit_test(test_metrics_renders_exact_exposition_text),
	    cmocka_unit_test(test_metrics_empty_registry_renders_nothing),
	    cmocka_unit_test(test_metrics_renders_special_and_short_numbers),
	    cmocka_unit_test(test_metrics_latency_bounds_span_50us_to_10s),
	    cmocka_unit_test(test_metrics_histogram_drops_explicit_inf_bound),
	    cmocka_unit_test(test_metrics_concurrent_updates_give_exact_totals),
	    cmocka_unit_test(test_metrics_refuses_invalid_name_with_log),
	    cmocka_unit_test(test_metrics_refuses_kind_clash),
	    cmocka_unit_test(test_metrics_refuses_malformed_labels),
	    cmocka_unit_test(test_metrics_refuses_unordered_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
