/*
 * Prometheus metrics: a registry of counters, gauges and histograms that a
 * service updates from any thread and the admin port renders in the text
 * exposition format (version 0.0.4).
 *
 * A metric is one (name, labels) pair; labels are given pre-rendered, such
 * as `method="Check",code="OK"` (or "" for none). Asking the registry twice
 * for the same pair returns the same object, so callers may look metrics up
 * once and keep the pointer. Updates are lock-free (atomics); registration
 * and rendering take the registry's lock.
 *
 * Ownership: the registry owns every metric it returns; pointers stay valid
 * until rk_metrics_free().
 */
#ifndef RK_METRICS_H
#define RK_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <ringkv/status.h>

typedef struct rk_metrics rk_metrics_t;
typedef struct rk_counter rk_counter_t;
typedef struct rk_gauge rk_gauge_t;
typedef struct rk_histogram rk_histogram_t;

rk_metrics_t *rk_metrics_new(void);
void rk_metrics_free(rk_metrics_t *m);

/* NULL only when out of memory, or on a programming error, logged: NAME
 * was registered before as another kind, NAME is not a valid metric name
 * ([a-zA-Z_:][a-zA-Z0-9_:]*), LABELS are not well-formed `k="v",...`
 * pairs, or BOUNDS are not strictly increasing. HELP is used from the
 * first registration of NAME; HELP and LABELS may be NULL (none). */
rk_counter_t *rk_metrics_counter(rk_metrics_t *m, const char *name,
                                 const char *help, const char *labels);
rk_gauge_t *rk_metrics_gauge(rk_metrics_t *m, const char *name,
                             const char *help, const char *labels);
/* BOUNDS: N increasing upper bounds (the +Inf bucket is implied); copied,
 * and ignored when the series exists already. LABELS must not use "le". */
rk_histogram_t *rk_metrics_histogram(rk_metrics_t *m, const char *name,
                                     const char *help, const char *labels,
                                     const double *bounds, size_t n);

/* Upper bounds, in seconds, for RPC latencies: 50 µs to 10 s. */
extern const double rk_metrics_latency_bounds[];
extern const size_t rk_metrics_latency_bounds_len;

void rk_counter_add(rk_counter_t *c, uint64_t n);
uint64_t rk_counter_value(const rk_counter_t *c);

void rk_gauge_set(rk_gauge_t *g, double v);
void rk_gauge_add(rk_gauge_t *g, double delta);
double rk_gauge_value(const rk_gauge_t *g);

void rk_histogram_observe(rk_histogram_t *h, double v);
uint64_t rk_histogram_count(const rk_histogram_t *h);

/* Renders every metric, grouped by name with one # HELP and # TYPE line per
 * name. *out is the caller's to free(). RK_OK or RK_RESOURCE_EXHAUSTED. */
rk_status_t rk_metrics_render(rk_metrics_t *m, char **out, size_t *len);

#endif
