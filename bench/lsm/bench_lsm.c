/*
 * bench-lsm: LevelDB db_bench-style workloads on the rk_lsm engine and,
 * when they were found at build time, on LevelDB and RocksDB through
 * their C APIs, in the same run, with the ratios printed.
 *
 * Keys are 16 bytes, values 100 bytes (half compressible, as db_bench
 * makes them). Workloads, in db_bench order: fillseq and fillrandom on
 * fresh databases; overwrite, readrandom, readseq, readmissing on the
 * fillrandom database; fillsync (--sync-num writes, fsync per write, one
 * thread) and fillbatch8 (the same number of synced writes from 8 threads:
 * group commit) on fresh databases. For each: ops/s, MB/s, p50/p99
 * latency. After the run: database size, write amplification (bytes the
 * process passed to write(2) during fillrandom + overwrite, over the user
 * bytes written, so all engines are measured the same way) and peak RSS
 * during fillrandom (VmHWM after resetting it through clear_refs).
 *
 * Each engine runs in its own child process so RSS and page-cache effects
 * do not leak between them; results come back over a pipe.
 *
 *   bench-lsm [--num N] [--sync-num N] [--dir DIR] [--engines a,b,c]
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/clock.h"
#include "engines.h"

#define KEY_LEN 16
#define VAL_LEN 100
#define NWORK   8

static const char *work_names[NWORK] = {
    "fillseq", "fillrandom",  "overwrite", "readrandom",
    "readseq", "readmissing", "fillsync",  "fillbatch8"};

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

static long num = 1000000;
static long sync_num = 10000;
static const char *base = "/tmp/rk-bench-lsm";

static char values[1 << 20]; /* half-compressible value bytes */

static void make_values(void)
{
	uint64_t x = 42;
	for (size_t i = 0; i < sizeof(values); i += 100) {
		char piece[50];
		for (int j = 0; j < 50; j++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			piece[j] = (char)(' ' + x % 95);
		}
		for (size_t j = 0; j < 100 && i + j < sizeof(values); j++)
			values[i + j] = piece[j % 50];
	}
}

static const char *value_at(long i)
{
	return values + (size_t)(i * 97) % (sizeof(values) - VAL_LEN);
}

static uint64_t rnd_state;
static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

static void make_key(char *k, long i)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%016ld", i);
	memcpy(k, buf, KEY_LEN);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static uint32_t *lat; /* one latency (ns, capped) per operation */
static long nlat;

static void record(uint64_t ns)
{
	lat[nlat++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}

static void finish(result_t *r, long ops, uint64_t ns, size_t bytes_per_op)
{
	double s = (double)ns / 1e9;
	r->ops = ops;
	r->ops_s = ops / s;
	r->mb_s = (double)ops * (double)bytes_per_op / s / 1048576.0;
	double slow_ns = 0;
	r->slow = 0;
	for (long i = 0; i < nlat; i++)
		if (lat[i] > 1000000) {
			r->slow++;
			slow_ns += lat[i];
		}
	r->slow_share = ns ? slow_ns / (double)ns : 0;
	qsort(lat, (size_t)nlat, sizeof(uint32_t), cmp_u32);
	r->p50_us = nlat ? lat[nlat / 2] / 1000.0 : 0;
	r->p99_us = nlat ? lat[(long)(nlat * 0.99)] / 1000.0 : 0;
	r->ok = 1;
	nlat = 0;
}

static void path_of(char *out, size_t n, const bench_engine_t *e, const char *w)
{
	snprintf(out, n, "%s/%s-%s", base, e->name, w);
}

static void rmrf(const char *p)
{
	char cmd[4300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", p);
	if (system(cmd) != 0)
		fprintf(stderr, "bench-lsm: could not remove %s\n", p);
}

static int fill(const bench_engine_t *e, void *db, long n, int random,
                result_t *r)
{
	char k[KEY_LEN];
	uint64_t t0 = rk_clock_mono_ns();
	for (long i = 0; i < n; i++) {
		long key = random ? (long)(rnd() % (uint64_t)num) : i;
		make_key(k, key);
		uint64_t a = rk_clock_mono_ns();
		if (e->put(db, k, KEY_LEN, value_at(i), VAL_LEN) != 0)
			return -1;
		record(rk_clock_mono_ns() - a);
	}
	finish(r, n, rk_clock_mono_ns() - t0, KEY_LEN + VAL_LEN);
	return 0;
}

static int reads(const bench_engine_t *e, void *db, int missing, result_t *r)
{
	char k[KEY_LEN + 1];
	long found = 0;
	uint64_t t0 = rk_clock_mono_ns();
	for (long i = 0; i < num; i++) {
		make_key(k, (long)(rnd() % (uint64_t)num));
		k[KEY_LEN] = '.'; /* db_bench's readmissing: key + "." */
		uint64_t a = rk_clock_mono_ns();
		int g = e->get(db, k, KEY_LEN + (missing ? 1 : 0));
		record(rk_clock_mono_ns() - a);
		if (g < 0)
			return -1;
		found += g;
	}
	finish(r, num, rk_clock_mono_ns() - t0, KEY_LEN + VAL_LEN);
	r->found = found;
	return 0;
}

typedef struct tick_state {
	uint64_t last; /* time of the previous entry */
} tick_state_t;

static void tick(void *arg)
{
	tick_state_t *t = arg;
	uint64_t now = rk_clock_mono_ns();
	if (nlat < num * 2)
		record(now - t->last);
	t->last = now;
}

typedef struct sync_worker {
	const bench_engine_t *e; /* engine */
	void *db;                /* open database */
	long from, n;            /* keys [from, from + n) */
	uint32_t *lat;           /* its latencies */
	int err;                 /* a put failed */
} sync_worker_t;

static void *sync_main(void *arg)
{
	sync_worker_t *w = arg;
	char k[KEY_LEN];
	for (long i = 0; i < w->n; i++) {
		make_key(k, w->from + i);
		uint64_t a = rk_clock_mono_ns();
		if (w->e->put(w->db, k, KEY_LEN, value_at(i), VAL_LEN) != 0)
			w->err = 1;
		uint64_t d = rk_clock_mono_ns() - a;
		w->lat[i] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
	}
	return NULL;
}

static int synced_fill(const bench_engine_t *e, int threads, result_t *r)
{
	char dir[4200];
	path_of(dir, sizeof(dir), e, threads > 1 ? "fillbatch8" : "fillsync");
	rmrf(dir);
	void *db = e->open(dir, threads > 1 ? 2 : 1);
	if (db == NULL)
		return -1;
	sync_worker_t w[8];
	pthread_t th[8];
	long per = sync_num / threads;
	uint64_t t0 = rk_clock_mono_ns();
	for (int i = 0; i < threads; i++) {
		w[i] = (sync_worker_t){e, db, i * per, per, lat + i * per, 0};
		pthread_create(&th[i], NULL, sync_main, &w[i]);
	}
	int err = 0;
	for (int i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		err |= w[i].err;
	}
	nlat = per * threads;
	finish(r, per * threads, rk_clock_mono_ns() - t0, KEY_LEN + VAL_LEN);
	e->close(db);
	rmrf(dir);
	return err ? -1 : 0;
}

static long proc_field(const char *file, const char *field)
{
	FILE *f = fopen(file, "r");
	if (f == NULL)
		return -1;
	char line[256];
	long v = -1;
	size_t n = strlen(field);
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, field, n) == 0)
			v = atol(line + n);
	fclose(f);
	return v;
}

static double dir_mb(const char *dir)
{
	char cmd[4300];
	snprintf(cmd, sizeof(cmd), "du -sk '%s' 2>/dev/null", dir);
	FILE *p = popen(cmd, "r");
	long kb = 0;
	if (p != NULL) {
		if (fscanf(p, "%ld", &kb) != 1)
			kb = 0;
		pclose(p);
	}
	return kb / 1024.0;
}

static void reset_hwm(void)
{
	int fd = open("/proc/self/clear_refs", O_WRONLY);
	if (fd >= 0) {
		if (write(fd, "5", 1) != 1)
			fprintf(stderr, "bench-lsm: cannot reset VmHWM\n");
		close(fd);
	}
}

static int run_engine(const bench_engine_t *e, report_t *rep)
{
	char dir[4200];
	memset(rep, 0, sizeof(*rep));
	rnd_state = 0x2545F4914F6CDD1Dull;

	path_of(dir, sizeof(dir), e, "fillseq");
	rmrf(dir);
	void *db = e->open(dir, 0);
	if (db == NULL || fill(e, db, num, 0, &rep->r[0]) != 0)
		return -1;
	e->close(db);
	rmrf(dir);

	path_of(dir, sizeof(dir), e, "fillrandom");
	rmrf(dir);
	long w0 = proc_field("/proc/self/io", "wchar: ");
	reset_hwm();
	db = e->open(dir, 0);
	if (db == NULL || fill(e, db, num, 1, &rep->r[1]) != 0)
		return -1;
	rep->rss_fill_mb = proc_field("/proc/self/status", "VmHWM:") / 1024.0;
	if (fill(e, db, num, 1, &rep->r[2]) != 0)
		return -1;
	e->close(db); /* lets background compaction settle */
	long w1 = proc_field("/proc/self/io", "wchar: ");
	rep->write_amp = (double)(w1 - w0) / (2.0 * num * (KEY_LEN + VAL_LEN));
	db = e->open(dir, 0);
	if (db == NULL || reads(e, db, 0, &rep->r[3]) != 0)
		return -1;
	tick_state_t ts = {rk_clock_mono_ns()};
	uint64_t t0 = rk_clock_mono_ns();
	long n = e->scan(db, tick, &ts);
	if (n < 0)
		return -1;
	finish(&rep->r[4], n, rk_clock_mono_ns() - t0, KEY_LEN + VAL_LEN);
	if (reads(e, db, 1, &rep->r[5]) != 0)
		return -1;
	e->close(db);
	rep->db_mb = dir_mb(dir);
	rmrf(dir);

	if (synced_fill(e, 1, &rep->r[6]) != 0 ||
	    synced_fill(e, 8, &rep->r[7]) != 0)
		return -1;
	rep->rss_peak_mb = proc_field("/proc/self/status", "VmHWM:") / 1024.0;
	return 0;
}

int main(int argc, char **argv)
{
	const char *want = "ringkv,leveldb,rocksdb";
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--num"))
			num = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--sync-num"))
			sync_num = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--dir"))
			base = argv[i + 1];
		else if (!strcmp(argv[i], "--engines"))
			want = argv[i + 1];
		else {
			fprintf(stderr,
			        "usage: bench-lsm [--num N] [--sync-num N]"
			        " [--dir DIR] [--engines a,b,c]\n");
			return 2;
		}
	}
	if (num < 1000 || sync_num < 8) {
		fprintf(stderr, "bench-lsm: --num >= 1000, --sync-num >= 8\n");
		return 2;
	}
	const bench_engine_t *all[3];
	int ne = 0;
	if (strstr(want, "ringkv"))
		all[ne++] = &bench_engine_rk;
#ifdef HAVE_LEVELDB
	if (strstr(want, "leveldb"))
		all[ne++] = &bench_engine_leveldb;
#else
	printf("(LevelDB not found at build time: run bench/lsm/run.sh)\n");
#endif
#ifdef HAVE_ROCKSDB
	if (strstr(want, "rocksdb"))
		all[ne++] = &bench_engine_rocksdb;
#else
	printf("(RocksDB not found at build time: run bench/lsm/run.sh)\n");
#endif
	make_values();
	lat = malloc(sizeof(uint32_t) *
	             (size_t)(num * 2 > sync_num ? num * 2 : sync_num));
	char cmd[4300];
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", base);
	if (lat == NULL || system(cmd) != 0)
		return 1;
	printf("bench-lsm: %ld ops, keys %d bytes, values %d bytes (half "
	       "compressible), sync workloads %ld writes, dir %s\n",
	       num, KEY_LEN, VAL_LEN, sync_num, base);
	fflush(stdout);

	report_t reps[3];
	int ok[3] = {0};
	for (int i = 0; i < ne; i++) {
		int p[2];
		if (pipe(p) != 0)
			return 1;
		pid_t pid = fork();
		if (pid == 0) {
			close(p[0]);
			report_t r;
			int rc = run_engine(all[i], &r);
			if (rc == 0 && write(p[1], &r, sizeof(r)) != sizeof(r))
				rc = -1;
			_exit(rc == 0 ? 0 : 1);
		}
		close(p[1]);
		ssize_t got = read(p[0], &reps[i], sizeof(reps[i]));
		close(p[0]);
		int status;
		waitpid(pid, &status, 0);
		ok[i] = got == (ssize_t)sizeof(reps[i]) && WIFEXITED(status) &&
		        WEXITSTATUS(status) == 0;
		if (!ok[i])
			printf("%s: failed\n", all[i]->name);
	}

	printf("\n%-12s %-8s %12s %9s %10s %10s %s\n", "workload", "engine",
	       "ops/s", "MB/s", "p50 us", "p99 us", "notes");
	for (int w = 0; w < NWORK; w++) {
		for (int i = 0; i < ne; i++) {
			if (!ok[i])
				continue;
			const result_t *r = &reps[i].r[w];
			char note[96] = "";
			int m = 0;
			if (w == 3 || w == 5)
				m = snprintf(note, sizeof(note),
				             "%ld of %ld found", r->found,
				             r->ops);
			if (r->slow > 0 && w < 6)
				snprintf(
				    note + m, sizeof(note) - (size_t)m,
				    "%s%ld ops > 1 ms (%.0f%% of the time)",
				    m ? "; " : "", r->slow,
				    r->slow_share * 100);
			printf("%-12s %-8s %12.0f %9.1f %10.2f %10.2f %s\n",
			       work_names[w], all[i]->name, r->ops_s, r->mb_s,
			       r->p50_us, r->p99_us, note);
		}
	}
	printf("\n%-8s %10s %10s %14s %14s\n", "engine", "db MB", "write amp",
	       "RSS fill MB", "RSS peak MB");
	for (int i = 0; i < ne; i++)
		if (ok[i])
			printf("%-8s %10.1f %10.2f %14.1f %14.1f\n",
			       all[i]->name, reps[i].db_mb, reps[i].write_amp,
			       reps[i].rss_fill_mb, reps[i].rss_peak_mb);
	if (ok[0] && ne > 1) {
		printf("\nratios: ringkv ops/s over each peer (>= 1.0 means "
		       "ringkv is at least as fast)\n%-12s",
		       "workload");
		for (int i = 1; i < ne; i++)
			printf(" %10s", all[i]->name);
		printf("\n");
		for (int w = 0; w < NWORK; w++) {
			printf("%-12s", work_names[w]);
			for (int i = 1; i < ne; i++)
				printf(" %10.2f", ok[i] ? reps[0].r[w].ops_s /
				                              reps[i].r[w].ops_s
				                        : 0.0);
			printf("\n");
		}
		for (int i = 1; i < ne; i++)
			if (ok[i])
				printf("RSS during fillrandom, ringkv / %s: "
				       "%.2f\n",
				       all[i]->name,
				       reps[0].rss_fill_mb /
				           reps[i].rss_fill_mb);
	}
	if (ok[0])
		printf("ringkv fillbatch8 / fillsync: %.1fx\n",
		       reps[0].r[7].ops_s / reps[0].r[6].ops_s);
	free(lat);
	return 0;
}
