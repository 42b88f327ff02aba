/*
 * bench-lsm's report: medians over the rounds, side by side.
 *
 * Every figure is the median over the rounds an engine completed, taken
 * figure by figure (ops/s, MB/s, p50, p99, sizes, RSS). The spread column
 * is (max - min) / median of ops/s over those rounds, so a reader sees how
 * far one round may be trusted. The per-peer ratios are ringkv's median
 * over the peer's median. The verdict column ("vs faster") is the median,
 * over rounds, of ringkv's ops/s over the faster peer's in the same round
 * (the engines ran that workload within seconds of each other, so a burst
 * of outside load mostly cancels out), with its min..max beside it.
 */
#include "report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* readreverse comes last, not after readseq as in db_bench, so the
 * indices of the others (and of the targeted first six) stay put. */
const char *const bench_work_names[NWORK] = {
    "fillseq",     "fillrandom", "overwrite",  "readrandom", "readseq",
    "readmissing", "fillsync",   "fillbatch8", "readreverse"};

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Median of the N values in V (sorted in place); 0 if none. */
static double median(double *v, int n)
{
	if (n == 0)
		return 0;
	qsort(v, (size_t)n, sizeof(double), cmp_d);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

typedef double (*pick_fn)(const report_t *r, int w);

static double pick_ops(const report_t *r, int w)
{
	return r->r[w].ops_s;
}
static double pick_mb(const report_t *r, int w)
{
	return r->r[w].mb_s;
}
static double pick_p50(const report_t *r, int w)
{
	return r->r[w].p50_us;
}
static double pick_p99(const report_t *r, int w)
{
	return r->r[w].p99_us;
}
static double pick_db(const report_t *r, int w)
{
	(void)w;
	return r->db_mb;
}
static double pick_wa(const report_t *r, int w)
{
	(void)w;
	return r->write_amp;
}
static double pick_rf(const report_t *r, int w)
{
	(void)w;
	return r->rss_fill_mb;
}
static double pick_rp(const report_t *r, int w)
{
	(void)w;
	return r->rss_peak_mb;
}

typedef struct ctx {
	int rounds;                /* rounds run */
	report_t (*reps)[MAX_ENG]; /* [round][engine] */
	int (*ok)[MAX_ENG];        /* [round][engine] ran */
} ctx_t;

/* Median of one figure of engine I over its completed rounds; the min and
 * max into *LO and *HI when not NULL. */
static double med(const ctx_t *c, int i, int w, pick_fn f, double *lo,
                  double *hi)
{
	double v[MAX_ROUNDS];
	int n = 0;
	for (int k = 0; k < c->rounds; k++)
		if (c->ok[k][i])
			v[n++] = f(&c->reps[k][i], w);
	double m = median(v, n);
	if (lo != NULL)
		*lo = n ? v[0] : 0;
	if (hi != NULL)
		*hi = n ? v[n - 1] : 0;
	return m;
}

static int ran(const ctx_t *c, int i)
{
	for (int k = 0; k < c->rounds; k++)
		if (c->ok[k][i])
			return 1;
	return 0;
}

int bench_report_print(int rounds, int ne, const char *const *names,
                       report_t reps[][MAX_ENG], int ok[][MAX_ENG])
{
	ctx_t c = {rounds, reps, ok};
	int met = 1;
	printf("\nmedians over %d rounds (spread: (max - min) / median of "
	       "ops/s)\n",
	       rounds);
	printf("%-12s %-8s %12s %9s %10s %10s %7s %s\n", "workload", "engine",
	       "ops/s", "MB/s", "p50 us", "p99 us", "spread", "notes");
	for (int w = 0; w < NWORK; w++) {
		for (int i = 0; i < ne; i++) {
			if (!ran(&c, i))
				continue;
			double lo, hi;
			double ops = med(&c, i, w, pick_ops, &lo, &hi);
			const result_t *r0 = NULL;
			for (int k = 0; k < rounds && r0 == NULL; k++)
				if (ok[k][i])
					r0 = &reps[k][i].r[w];
			char note[64] = "";
			if (w == 3 || w == 5)
				snprintf(note, sizeof(note), "%ld of %ld found",
				         r0->found, r0->ops);
			printf("%-12s %-8s %12.0f %9.1f %10.2f %10.2f %6.0f%% "
			       "%s\n",
			       bench_work_names[w], names[i], ops,
			       med(&c, i, w, pick_mb, NULL, NULL),
			       med(&c, i, w, pick_p50, NULL, NULL),
			       med(&c, i, w, pick_p99, NULL, NULL),
			       ops > 0 ? (hi - lo) / ops * 100 : 0, note);
		}
	}
	printf("\n%-8s %10s %10s %14s %14s\n", "engine", "db MB", "write amp",
	       "RSS fill MB", "RSS peak MB");
	for (int i = 0; i < ne; i++)
		if (ran(&c, i))
			printf("%-8s %10.1f %10.2f %14.1f %14.1f\n", names[i],
			       med(&c, i, 0, pick_db, NULL, NULL),
			       med(&c, i, 0, pick_wa, NULL, NULL),
			       med(&c, i, 0, pick_rf, NULL, NULL),
			       med(&c, i, 0, pick_rp, NULL, NULL));
	if (!ran(&c, 0))
		return 0;

	if (ne > 1) {
		printf("\nratios: ringkv median ops/s over each peer's median "
		       "(>= 1.0: ringkv at least as fast); vs faster: median "
		       "over rounds of ringkv / the faster peer of that round "
		       "(min..max)\n%-12s",
		       "workload");
		for (int i = 1; i < ne; i++)
			printf(" %10s", names[i]);
		printf(" %10s %14s\n", "vs faster", "per round");
		for (int w = 0; w < NWORK; w++) {
			double rk = med(&c, 0, w, pick_ops, NULL, NULL);
			printf("%-12s", bench_work_names[w]);
			for (int i = 1; i < ne; i++) {
				double p = med(&c, i, w, pick_ops, NULL, NULL);
				printf(" %10.2f", p > 0 ? rk / p : 0.0);
			}
			double rv[MAX_ROUNDS];
			int rn = 0;
			for (int k = 0; k < rounds; k++) {
				double b = 0;
				for (int i = 1; i < ne; i++)
					if (ok[k][i] &&
					    reps[k][i].r[w].ops_s > b)
						b = reps[k][i].r[w].ops_s;
				if (ok[k][0] && b > 0)
					rv[rn++] = reps[k][0].r[w].ops_s / b;
			}
			double vs = median(rv, rn);
			printf(" %10.2f %6.2f..%-6.2f%s\n", vs,
			       rn ? rv[0] : 0.0, rn ? rv[rn - 1] : 0.0,
			       w < NREAL && vs < 1.0 ? "  below target" : "");
			if (w < NREAL && vs < 1.0)
				met = 0;
		}
		double rf = med(&c, 0, 0, pick_rf, NULL, NULL);
		for (int i = 1; i < ne; i++) {
			if (!ran(&c, i))
				continue;
			double p = med(&c, i, 0, pick_rf, NULL, NULL);
			double x = p > 0 ? rf / p : 0;
			printf("RSS during fillrandom, ringkv / %s: %.2f%s\n",
			       names[i], x,
			       !strcmp(names[i], "leveldb") && x > 1.5
			           ? "  over the 1.5 target"
			           : "");
			if (!strcmp(names[i], "leveldb") && x > 1.5)
				met = 0;
		}
	}

	/* Each engine's own group-commit gain, so the ringkv figure reads
	 * beside what the peers get from the same disk on the same run. */
	for (int i = 0; i < ne; i++) {
		if (!ran(&c, i))
			continue;
		double gv[MAX_ROUNDS];
		int gn = 0;
		printf("%s fillbatch8 / fillsync per round:", names[i]);
		for (int k = 0; k < rounds; k++)
			if (ok[k][i] && reps[k][i].r[6].ops_s > 0) {
				gv[gn] = reps[k][i].r[7].ops_s /
				         reps[k][i].r[6].ops_s;
				printf(" %.1fx", gv[gn]);
				gn++;
			}
		double g = median(gv, gn);
		printf("; median %.1fx, min %.1fx%s\n", g, gn ? gv[0] : 0.0,
		       i == 0 ? " (target >= 5x)" : "");
		if (i == 0 && (gn == 0 || gv[0] < 5.0))
			met = 0;
	}
	printf("targets (6 workloads >= 1.0x the faster peer, RSS <= 1.5x "
	       "LevelDB, group commit >= 5x in every round): %s\n",
	       met ? "met" : "NOT met");
	return met;
}
