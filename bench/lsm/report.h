/*
 * What one engine measured in one round of bench-lsm, and the printer that
 * turns several rounds into medians, spreads and ratios.
 */
#ifndef BENCH_LSM_REPORT_H
#define BENCH_LSM_REPORT_H

#define NWORK      9 /* workloads, in db_bench order but readreverse */
#define NREAL      6 /* the first NREAL have the 1.0x target */
#define MAX_ROUNDS 9
#define MAX_ENG    3

extern const char *const bench_work_names[NWORK];

typedef struct result {
	double ops_s;      /* operations a second */
	double mb_s;       /* key+value MB a second */
	double p50_us;     /* median latency */
	double p99_us;     /* 99th percentile latency */
	long ops;          /* operations done */
	long found;        /* for reads: keys found */
	long slow;         /* operations over 1 ms */
	double slow_share; /* share of the time spent in them */
	int ok;            /* the workload ran */
} result_t;

typedef struct report {
	result_t r[NWORK];  /* per workload */
	double db_mb;       /* size of the fillrandom db after the run */
	double write_amp;   /* write(2) bytes / user bytes */
	double rss_fill_mb; /* peak RSS during fillrandom */
	double rss_peak_mb; /* peak RSS of the whole engine run */
} report_t;

/* Prints the side-by-side table of medians over ROUNDS rounds for the NE
 * engines named NAMES (ringkv first). REPS[k][i] is round k of engine i;
 * OK[k][i] says it ran. Returns 1 when every target was met. */
int bench_report_print(int rounds, int ne, const char *const *names,
                       report_t reps[][MAX_ENG], int ok[][MAX_ENG]);

#endif
