/*
 * The metrics registry; see metrics.h.
 *
 * Purpose. Every service keeps counters, gauges and histograms that the RPC
 * server, the storage engine and the background workers update as they go,
 * and the admin port renders for Prometheus. Updates happen on every
 * request from many threads, so they must cost a few atomic instructions
 * and never a lock; registration and rendering are rare and may lock.
 *
 * Data structures. The registry is a list of families in registration
 * order. A family is one metric name with its help text and kind; it owns a
 * list of series in registration order, one per distinct pre-rendered label
 * string. A series holds the value that callers update:
 *
 *   counter    one atomic uint64.
 *   gauge      one atomic uint64 holding the bits of a double; set is a
 *              store, add is a compare-and-swap loop.
 *   histogram  n upper bounds (copied, strictly increasing), n + 1 atomic
 *              uint64 bucket counters that are NOT cumulative (bucket i
 *              counts observations in (bounds[i-1], bounds[i]], the last
 *              one those above every bound), and the sum as double bits
 *              updated by compare-and-swap.
 *
 * Rendering makes the buckets cumulative and takes _count as the total of
 * all buckets, so _count always equals the +Inf bucket in what Prometheus
 * reads, even while observations race with the render. The sum is a
 * separate word and may be one observation ahead or behind the buckets in
 * a render that races with updates; Prometheus tolerates that, and keeping
 * no separate count saves an atomic per observation.
 *
 * Invariants. A family always has at least one series (it is created with
 * its first one). Names match [a-zA-Z_:][a-zA-Z0-9_:]*; label strings are
 * empty or well-formed `name="value"` pairs with the exposition format's
 * escapes, so whatever callers register, the rendered text parses.
 * Series are never removed before rk_metrics_free(), which is what lets
 * callers keep the pointers.
 *
 * Concurrency. The registry mutex guards the family and series lists (not
 * the values): lookups, registration and rendering hold it. Values are
 * updated and read with relaxed atomics: each is an independent number,
 * nothing is published through them, so no ordering is needed. Each series
 * is allocated on its own cache line so that two hot counters updated by
 * different threads do not slow each other down through false sharing.
 *
 * Lookups scan the lists linearly. Registries hold tens of families, and
 * callers look a metric up once and keep the pointer (metrics.h), so a hash
 * table would buy nothing.
 */
#include "metrics.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

/* Room for any double rendered by format_double(), "%.17g" at most. */
#define DOUBLE_TEXT_MAX 32
/* Series are aligned to this so hot values do not share a cache line. */
#define CACHE_LINE 64

const double rk_metrics_latency_bounds[] = {
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,    0.1,    0.25,    0.5,    1.0,   2.5,    5.0,   10.0,
};
const size_t rk_metrics_latency_bounds_len =
    sizeof(rk_metrics_latency_bounds) / sizeof(rk_metrics_latency_bounds[0]);

enum kind {
	KIND_COUNTER,
	KIND_GAUGE,
	KIND_HISTOGRAM,
};

static const char *const kind_names[] = {"counter", "gauge", "histogram"};

struct rk_counter {
	_Atomic uint64_t value; /* events counted so far */
};

struct rk_gauge {
	_Atomic uint64_t bits; /* the current value, a double's bits */
};

struct rk_histogram {
	_Atomic uint64_t sum_bits; /* sum of observations, a double's bits */
	size_t n;                  /* number of finite upper bounds */
	double *bounds;            /* n strictly increasing upper bounds */
	_Atomic uint64_t *buckets; /* n + 1 counts, one per bucket */
};

struct series {
	/* First, so that the hot word starts the cache line. */
	union {
		struct rk_counter counter;
		struct rk_gauge gauge;
		struct rk_histogram histogram;
	} u;
	char *labels;        /* pre-rendered labels, "" for none */
	struct series *next; /* next series of the family, registration order */
};

struct family {
	char *name;          /* metric name, validated */
	char *help;          /* help text as given at first registration */
	enum kind kind;      /* what every series of this family is */
	struct series *head; /* first series (never NULL) */
	struct series *tail; /* last series, where new ones are appended */
	struct family *next; /* next family, registration order */
};

struct rk_metrics {
	pthread_mutex_t mu;  /* guards the lists below, not the values */
	struct family *head; /* first family, or NULL */
	struct family *tail; /* last family */
};

static uint64_t double_bits(double d)
{
	uint64_t u;
	memcpy(&u, &d, sizeof(u));
	return u;
}

static double bits_double(uint64_t u)
{
	double d;
	memcpy(&d, &u, sizeof(d));
	return d;
}

rk_metrics_t *rk_metrics_new(void)
{
	rk_metrics_t *m = calloc(1, sizeof(*m));
	if (m == NULL)
		return NULL;
	if (pthread_mutex_init(&m->mu, NULL) != 0) {
		free(m);
		return NULL;
	}
	return m;
}

static void series_free(struct series *s, enum kind kind)
{
	if (kind == KIND_HISTOGRAM) {
		free(s->u.histogram.bounds);
		free(s->u.histogram.buckets);
	}
	free(s->labels);
	free(s);
}

void rk_metrics_free(rk_metrics_t *m)
{
	if (m == NULL)
		return;
	struct family *f = m->head;
	while (f != NULL) {
		struct family *fnext = f->next;
		struct series *s = f->head;
		while (s != NULL) {
			struct series *snext = s->next;
			series_free(s, f->kind);
			s = snext;
		}
		free(f->name);
		free(f->help);
		free(f);
		f = fnext;
	}
	pthread_mutex_destroy(&m->mu);
	free(m);
}

/* ---- validation ---------------------------------------------------- */

static bool name_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool name_char(char c)
{
	return name_start(c) || (c >= '0' && c <= '9');
}

/* Metric names may contain ':' (for recording rules); label names not. */
static bool metric_name_valid(const char *name)
{
	if (name == NULL || !(name_start(name[0]) || name[0] == ':'))
		return false;
	for (const char *p = name + 1; *p != '\0'; p++) {
		if (!name_char(*p) && *p != ':')
			return false;
	}
	return true;
}

/*
 * Checks that LABELS is "" or `n="v"` pairs joined by ',', where each value
 * uses only the escapes \\ \" \n and no raw newline: anything else would
 * make the rendered exposition unparseable and lose every metric, not just
 * this one. With NO_LE, a label named "le" is refused too, because the
 * histogram adds its own.
 */
static bool labels_valid(const char *labels, bool no_le)
{
	const char *p = labels;
	if (*p == '\0')
		return true;
	for (;;) {
		const char *lname = p;
		if (!name_start(*p))
			return false;
		while (name_char(*p))
			p++;
		if (no_le && p - lname == 2 && strncmp(lname, "le", 2) == 0)
			return false;
		if (*p++ != '=' || *p++ != '"')
			return false;
		while (*p != '"') {
			if (*p == '\0' || *p == '\n')
				return false;
			if (*p == '\\') {
				p++;
				if (*p != '\\' && *p != '"' && *p != 'n')
					return false;
			}
			p++;
		}
		p++; /* closing quote */
		if (*p == '\0')
			return true;
		if (*p++ != ',')
			return false;
	}
}

/* ---- registration -------------------------------------------------- */

static struct family *family_find(rk_metrics_t *m, const char *name)
{
	for (struct family *f = m->head; f != NULL; f = f->next) {
		if (strcmp(f->name, name) == 0)
			return f;
	}
	return NULL;
}

static struct series *series_find(struct family *f, const char *labels)
{
	for (struct series *s = f->head; s != NULL; s = s->next) {
		if (strcmp(s->labels, labels) == 0)
			return s;
	}
	return NULL;
}

/* A zeroed series on its own cache line(s), labels copied; NULL when out
 * of memory. */
static struct series *series_new(const char *labels)
{
	size_t size =
	    (sizeof(struct series) + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
	struct series *s = aligned_alloc(CACHE_LINE, size);
	if (s == NULL)
		return NULL;
	memset(s, 0, size);
	if ((s->labels = strdup(labels)) == NULL) {
		free(s);
		return NULL;
	}
	return s;
}

/* Copies BOUNDS into a new histogram series. A trailing +Inf is dropped
 * since that bucket is always there. */
static int histogram_init(struct rk_histogram *h, const double *bounds,
                          size_t n)
{
	if (n > 0 && isinf(bounds[n - 1]) && bounds[n - 1] > 0)
		n--;
	h->n = n;
	if (n > 0) {
		h->bounds = malloc(n * sizeof(double));
		if (h->bounds == NULL)
			return -1;
		memcpy(h->bounds, bounds, n * sizeof(double));
	}
	h->buckets = calloc(n + 1, sizeof(h->buckets[0]));
	if (h->buckets == NULL) {
		free(h->bounds);
		h->bounds = NULL;
		return -1;
	}
	return 0;
}

static bool bounds_valid(const double *bounds, size_t n)
{
	if (n > 0 && bounds == NULL)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (isnan(bounds[i]))
			return false;
		if (i > 0 && !(bounds[i] > bounds[i - 1]))
			return false;
		/* +Inf only last: it is the implied bucket, and dropped.
		 * -Inf never: it bounds a bucket nothing finite falls in. */
		if (isinf(bounds[i]) && (i != n - 1 || bounds[i] < 0))
			return false;
	}
	return true;
}

/*
 * Finds the series (NAME, LABELS) or creates it, and its family with it.
 * Returns NULL (after logging) when NAME, LABELS or BOUNDS are invalid or
 * NAME has another kind, and when out of memory.
 */
static struct series *lookup(rk_metrics_t *m, enum kind kind, const char *name,
                             const char *help, const char *labels,
                             const double *bounds, size_t n)
{
	if (labels == NULL)
		labels = "";
	if (help == NULL)
		help = "";
	if (!metric_name_valid(name)) {
		rk_warn("metrics: invalid metric name \"%s\"",
		        name == NULL ? "(null)" : name);
		return NULL;
	}
	if (!labels_valid(labels, kind == KIND_HISTOGRAM)) {
		rk_warn("metrics: %s: invalid labels '%s'", name, labels);
		return NULL;
	}
	if (kind == KIND_HISTOGRAM && !bounds_valid(bounds, n)) {
		rk_warn("metrics: %s: histogram bounds must be strictly "
		        "increasing numbers",
		        name);
		return NULL;
	}

	pthread_mutex_lock(&m->mu);
	struct series *s = NULL;
	struct family *f = family_find(m, name);
	bool new_family = false;
	if (f != NULL && f->kind != kind) {
		rk_warn("metrics: %s is a %s, asked for as a %s", name,
		        kind_names[f->kind], kind_names[kind]);
		goto out;
	}
	/* An existing histogram keeps the bounds it was created with. */
	if (f != NULL && (s = series_find(f, labels)) != NULL)
		goto out;

	if (f == NULL) {
		if ((f = calloc(1, sizeof(*f))) == NULL)
			goto oom;
		new_family = true;
		f->kind = kind;
		if ((f->name = strdup(name)) == NULL ||
		    (f->help = strdup(help)) == NULL)
			goto oom;
	}
	if ((s = series_new(labels)) == NULL)
		goto oom;
	if (kind == KIND_HISTOGRAM &&
	    histogram_init(&s->u.histogram, bounds, n) != 0) {
		series_free(s, kind);
		s = NULL;
		goto oom;
	}

	if (f->tail == NULL)
		f->head = s;
	else
		f->tail->next = s;
	f->tail = s;
	if (new_family) {
		if (m->tail == NULL)
			m->head = f;
		else
			m->tail->next = f;
		m->tail = f;
	}
	goto out;

oom:
	rk_error("metrics: %s: out of memory", name);
	if (new_family) {
		free(f->name);
		free(f->help);
		free(f);
	}
out:
	pthread_mutex_unlock(&m->mu);
	return s;
}

rk_counter_t *rk_metrics_counter(rk_metrics_t *m, const char *name,
                                 const char *help, const char *labels)
{
	struct series *s = lookup(m, KIND_COUNTER, name, help, labels, NULL, 0);
	return s == NULL ? NULL : &s->u.counter;
}

rk_gauge_t *rk_metrics_gauge(rk_metrics_t *m, const char *name,
                             const char *help, const char *labels)
{
	struct series *s = lookup(m, KIND_GAUGE, name, help, labels, NULL, 0);
	return s == NULL ? NULL : &s->u.gauge;
}

rk_histogram_t *rk_metrics_histogram(rk_metrics_t *m, const char *name,
                                     const char *help, const char *labels,
                                     const double *bounds, size_t n)
{
	struct series *s =
	    lookup(m, KIND_HISTOGRAM, name, help, labels, bounds, n);
	return s == NULL ? NULL : &s->u.histogram;
}

/* ---- updates: lock-free -------------------------------------------- */

void rk_counter_add(rk_counter_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

uint64_t rk_counter_value(const rk_counter_t *c)
{
	return atomic_load_explicit(&c->value, memory_order_relaxed);
}

void rk_gauge_set(rk_gauge_t *g, double v)
{
	atomic_store_explicit(&g->bits, double_bits(v), memory_order_relaxed);
}

/* Adds DELTA to the double stored as bits in *WORD. */
static void atomic_add_double(_Atomic uint64_t *word, double delta)
{
	uint64_t old = atomic_load_explicit(word, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(
	    word, &old, double_bits(bits_double(old) + delta),
	    memory_order_relaxed, memory_order_relaxed))
		;
}

void rk_gauge_add(rk_gauge_t *g, double delta)
{
	atomic_add_double(&g->bits, delta);
}

double rk_gauge_value(const rk_gauge_t *g)
{
	return bits_double(
	    atomic_load_explicit(&g->bits, memory_order_relaxed));
}

void rk_histogram_observe(rk_histogram_t *h, double v)
{
	/* The first bucket whose bound is >= v; n (the +Inf bucket) when
	 * none is, which is also where NaN lands. */
	size_t lo = 0, hi = h->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v <= h->bounds[mid])
			hi = mid;
		else
			lo = mid + 1;
	}
	atomic_fetch_add_explicit(&h->buckets[lo], 1, memory_order_relaxed);
	atomic_add_double(&h->sum_bits, v);
}

uint64_t rk_histogram_count(const rk_histogram_t *h)
{
	uint64_t total = 0;
	for (size_t i = 0; i <= h->n; i++)
		total +=
		    atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
	return total;
}

/* ---- rendering ----------------------------------------------------- */

/* A growing output buffer; after the first failed allocation every append
 * is a no-op and OOM stays set, so callers check once at the end. */
struct buf {
	char *p;    /* the text, NUL-terminated when not oom */
	size_t len; /* bytes used, excluding the NUL */
	size_t cap; /* bytes allocated */
	bool oom;   /* an allocation failed */
};

static void buf_reserve(struct buf *b, size_t extra)
{
	if (b->oom || b->len + extra + 1 <= b->cap)
		return;
	size_t cap = b->cap == 0 ? 4096 : b->cap;
	while (cap < b->len + extra + 1)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (p == NULL) {
		b->oom = true;
		return;
	}
	b->p = p;
	b->cap = cap;
}

static void buf_put(struct buf *b, const char *s, size_t n)
{
	buf_reserve(b, n);
	if (b->oom)
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void buf_puts(struct buf *b, const char *s)
{
	buf_put(b, s, strlen(s));
}

/* HELP text escapes backslash and newline (and nothing else) in 0.0.4. */
static void buf_put_help(struct buf *b, const char *help)
{
	for (const char *p = help; *p != '\0'; p++) {
		if (*p == '\\')
			buf_puts(b, "\\\\");
		else if (*p == '\n')
			buf_puts(b, "\\n");
		else
			buf_put(b, p, 1);
	}
}

/*
 * The shortest "%g" text that reads back as the same double, the way
 * Prometheus' own clients print (0.1, not 0.10000000000000001), and the
 * format's spellings of the special values. Assumes the C locale's
 * decimal point, which services never change.
 */
static void format_double(char out[DOUBLE_TEXT_MAX], double v)
{
	if (isnan(v)) {
		strcpy(out, "NaN");
		return;
	}
	if (isinf(v)) {
		strcpy(out, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(out, DOUBLE_TEXT_MAX, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			return;
	}
}

/* NAME SUFFIX{LABELS[,EXTRA]} for one sample line, without the value. */
static void buf_put_sample_name(struct buf *b, const char *name,
                                const char *suffix, const char *labels,
                                const char *extra)
{
	buf_puts(b, name);
	buf_puts(b, suffix);
	if (labels[0] == '\0' && extra == NULL)
		return;
	buf_puts(b, "{");
	buf_puts(b, labels);
	if (extra != NULL) {
		if (labels[0] != '\0')
			buf_puts(b, ",");
		buf_puts(b, extra);
	}
	buf_puts(b, "}");
}

static void buf_put_u64_line(struct buf *b, uint64_t v)
{
	char text[24];
	snprintf(text, sizeof(text), " %" PRIu64 "\n", v);
	buf_puts(b, text);
}

static void buf_put_double_line(struct buf *b, double v)
{
	char text[DOUBLE_TEXT_MAX];
	format_double(text, v);
	buf_puts(b, " ");
	buf_puts(b, text);
	buf_puts(b, "\n");
}

static void render_histogram(struct buf *b, const char *name,
                             const struct series *s)
{
	const struct rk_histogram *h = &s->u.histogram;
	uint64_t cumulative = 0;
	for (size_t i = 0; i <= h->n; i++) {
		char le[DOUBLE_TEXT_MAX + 8];
		char bound[DOUBLE_TEXT_MAX];
		format_double(bound, i < h->n ? h->bounds[i] : INFINITY);
		snprintf(le, sizeof(le), "le=\"%s\"", bound);
		cumulative +=
		    atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
		buf_put_sample_name(b, name, "_bucket", s->labels, le);
		buf_put_u64_line(b, cumulative);
	}
	buf_put_sample_name(b, name, "_sum", s->labels, NULL);
	buf_put_double_line(b, bits_double(atomic_load_explicit(
	                           &h->sum_bits, memory_order_relaxed)));
	/* The total of the buckets just read, so _count == +Inf bucket. */
	buf_put_sample_name(b, name, "_count", s->labels, NULL);
	buf_put_u64_line(b, cumulative);
}

rk_status_t rk_metrics_render(rk_metrics_t *m, char **out, size_t *len)
{
	struct buf b = {0};
	buf_reserve(&b, 0); /* so that an empty registry renders "" */
	if (!b.oom)
		b.p[0] = '\0';

	pthread_mutex_lock(&m->mu);
	for (const struct family *f = m->head; f != NULL; f = f->next) {
		/* The space stays with empty help: Prometheus' own parser
		 * wants "# HELP name " then text, and rejects a bare name. */
		buf_puts(&b, "# HELP ");
		buf_puts(&b, f->name);
		buf_puts(&b, " ");
		buf_put_help(&b, f->help);
		buf_puts(&b, "\n# TYPE ");
		buf_puts(&b, f->name);
		buf_puts(&b, " ");
		buf_puts(&b, kind_names[f->kind]);
		buf_puts(&b, "\n");
		for (const struct series *s = f->head; s != NULL; s = s->next) {
			switch (f->kind) {
			case KIND_COUNTER:
				buf_put_sample_name(&b, f->name, "", s->labels,
				                    NULL);
				buf_put_u64_line(
				    &b, rk_counter_value(&s->u.counter));
				break;
			case KIND_GAUGE:
				buf_put_sample_name(&b, f->name, "", s->labels,
				                    NULL);
				buf_put_double_line(
				    &b, rk_gauge_value(&s->u.gauge));
				break;
			case KIND_HISTOGRAM:
				render_histogram(&b, f->name, s);
				break;
			}
		}
	}
	pthread_mutex_unlock(&m->mu);

	if (b.oom) {
		free(b.p);
		rk_error("metrics: out of memory rendering the registry");
		return RK_RESOURCE_EXHAUSTED;
	}
	*out = b.p;
	if (len != NULL)
		*len = b.len;
	return RK_OK;
}
