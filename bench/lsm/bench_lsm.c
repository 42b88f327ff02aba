/*
 * bench-lsm: LevelDB db_bench-style workloads on the rk_lsm engine and,
 * when they were found at build time, on LevelDB and RocksDB through
 * their C APIs, in the same run, with the ratios printed.
 *
 * Keys are 16 bytes, values 100 bytes (half compressible, as db_bench
 * makes them). Workloads, in db_bench order: fillseq and fillrandom on
 * fresh databases; overwrite, readrandom, readseq, readreverse (reported
 * last), readmissing on the fillrandom database; fillsync (--sync-num
 * writes, fsync per write, one thread) and fillbatch8 (the same number of synced writes from 8 threads:
 * group commit) on fresh databases, run in alternating slices so that both
 * see the same disk (its fsync latency drifts a lot within seconds). For each:
 * ops/s, MB/s, p50/p99 latency. After the run: database size, write
 * amplification (bytes the process passed to write(2) during fillrandom +
 * overwrite, over the user bytes written, so all engines are measured the same
 * way) and peak RSS during fillrandom (VmHWM after resetting it through
 * clear_refs).
 *
 * Each engine runs in its own child process so RSS and allocator state
 * do not leak between them; results come back over a pipe. One run of
 * every workload on fresh directories is a round, in three independent
 * parts (fillseq; fillrandom and the workloads on its database; the synced
 * fills); the engines take turns part by part (the first one rotates), and
 * --rounds rounds (default 3) are run so that a burst of outside load or a
 * page-cache effect hits every engine alike. report.c prints the medians,
 * the spread and the ratios.
 *
 *   bench-lsm [--num N] [--sync-num N] [--rounds R] [--dir DIR]
 *             [--engines a,b,c]
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
#include "report.h"

#define KEY_LEN 16
#define VAL_LEN 100
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

/* readseq (REVERSE 0) or readreverse (1): the whole database. */
static int scan(const bench_engine_t *e, void *db, int reverse, result_t *r)
{
	tick_state_t ts = {rk_clock_mono_ns()};
	uint64_t t0 = ts.last;
	long n = e->scan(db, reverse, tick, &ts);
	if (n < 0)
		return -1;
	finish(r, n, rk_clock_mono_ns() - t0, KEY_LEN + VAL_LEN);
	return 0;
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

/* Runs N synced writes of keys [FROM, FROM + N) from THREADS threads on
 * DB; latencies go to LAT. Returns the elapsed ns, or 0 on error. */
static uint64_t synced_slice(const bench_engine_t *e, void *db, int threads,
                             long from, long n, uint32_t *l)
{
	sync_worker_t w[8];
	pthread_t th[8];
	long per = n / threads;
	uint64_t t0 = rk_clock_mono_ns();
	for (int i = 0; i < threads; i++) {
		w[i] =
		    (sync_worker_t){e, db, from + i * per, per, l + i * per, 0};
		pthread_create(&th[i], NULL, sync_main, &w[i]);
	}
	int err = 0;
	for (int i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		err |= w[i].err;
	}
	uint64_t ns = rk_clock_mono_ns() - t0;
	return err ? 0 : ns;
}

#define SYNC_SLICES 5

/* fillsync (one thread, fsync per write) and fillbatch8 (8 threads, group
 * commit), each sync_num writes on its own fresh database, run in
 * SYNC_SLICES alternating slices: the disk's fsync latency drifts by 2x
 * and more within seconds on this machine, and the batch/sync ratio is
 * only meaningful if both see the same disk. */
static int synced_fills(const bench_engine_t *e, result_t *rs, result_t *rb)
{
	char ds[4200], dbt[4200];
	path_of(ds, sizeof(ds), e, "fillsync");
	path_of(dbt, sizeof(dbt), e, "fillbatch8");
	rmrf(ds);
	rmrf(dbt);
	void *s = e->open(ds, 1), *b = e->open(dbt, 2);
	if (s == NULL || b == NULL)
		return -1;
	long slice = sync_num / SYNC_SLICES / 8 * 8;
	if (slice < 8)
		slice = 8;
	long n = sync_num / slice * slice;
	uint64_t ns_s = 0, ns_b = 0;
	int err = 0;
	for (long from = 0; from < n && !err; from += slice) {
		uint64_t a = synced_slice(e, s, 1, from, slice, lat + from);
		uint64_t c = synced_slice(e, b, 8, from, slice, lat + n + from);
		err = a == 0 || c == 0;
		ns_s += a;
		ns_b += c;
	}
	e->close(s);
	e->close(b);
	rmrf(ds);
	rmrf(dbt);
	if (err)
		return -1;
	/* finish() takes the first nlat latencies: fillsync's, then
	 * fillbatch8's moved down. */
	nlat = n;
	finish(rs, n, ns_s, KEY_LEN + VAL_LEN);
	memmove(lat, lat + n, (size_t)n * sizeof(uint32_t));
	nlat = n;
	finish(rb, n, ns_b, KEY_LEN + VAL_LEN);
	return 0;
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

/* The three independent parts of a round: 0 fillseq; 1 fillrandom and
 * the workloads on its database; 2 the synced fills. Each runs in its own
 * child process and fills only its own fields of REP. */
#define NPARTS 3

static int run_part(const bench_engine_t *e, int part, report_t *rep)
{
	char dir[4200];
	memset(rep, 0, sizeof(*rep));
	rnd_state = 0x2545F4914F6CDD1Dull;
	if (part == 2) {
		if (synced_fills(e, &rep->r[6], &rep->r[7]) != 0)
			return -1;
		rep->rss_peak_mb =
		    proc_field("/proc/self/status", "VmHWM:") / 1024.0;
		return 0;
	}
	if (part == 1)
		goto random_part;

	path_of(dir, sizeof(dir), e, "fillseq");
	rmrf(dir);
	void *db = e->open(dir, 0);
	if (db == NULL || fill(e, db, num, 0, &rep->r[0]) != 0)
		return -1;
	e->close(db);
	rmrf(dir);
	rep->rss_peak_mb = proc_field("/proc/self/status", "VmHWM:") / 1024.0;
	return 0;

random_part:
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
	if (scan(e, db, 0, &rep->r[4]) != 0 || scan(e, db, 1, &rep->r[8]) != 0)
		return -1;
	if (rep->r[8].ops != rep->r[4].ops) {
		fprintf(stderr, "%s: readreverse saw %ld entries, readseq %ld\n",
		        e->name, rep->r[8].ops, rep->r[4].ops);
		return -1;
	}
	if (reads(e, db, 1, &rep->r[5]) != 0)
		return -1;
	e->close(db);
	rep->db_mb = dir_mb(dir);
	rmrf(dir);
	rep->rss_peak_mb = proc_field("/proc/self/status", "VmHWM:") / 1024.0;
	return 0;
}

/* Merges part P's fields of FROM into TO. */
static void merge_part(report_t *to, const report_t *from, int p)
{
	if (p == 0) {
		to->r[0] = from->r[0];
	} else if (p == 1) {
		for (int w = 1; w < 6; w++)
			to->r[w] = from->r[w];
		to->r[8] = from->r[8];
		to->db_mb = from->db_mb;
		to->write_amp = from->write_amp;
		to->rss_fill_mb = from->rss_fill_mb;
	} else {
		to->r[6] = from->r[6];
		to->r[7] = from->r[7];
	}
	if (from->rss_peak_mb > to->rss_peak_mb)
		to->rss_peak_mb = from->rss_peak_mb;
}

/* Runs part PART of engine E in a child process (so RSS and allocator
 * state do not leak between engines) and reads its report back over a
 * pipe. 1 on success. */
static int run_child(const bench_engine_t *e, int part, report_t *out)
{
	int p[2];
	if (pipe(p) != 0)
		return 0;
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return 0;
	}
	if (pid == 0) {
		close(p[0]);
		report_t r;
		int rc = run_part(e, part, &r);
		if (rc == 0 && write(p[1], &r, sizeof(r)) != sizeof(r))
			rc = -1;
		_exit(rc == 0 ? 0 : 1);
	}
	close(p[1]);
	ssize_t got = read(p[0], out, sizeof(*out));
	close(p[0]);
	int status;
	waitpid(pid, &status, 0);
	return got == (ssize_t)sizeof(*out) && WIFEXITED(status) &&
	       WEXITSTATUS(status) == 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: bench-lsm [--num N] [--sync-num N] "
	                "[--rounds R] [--dir DIR] [--engines a,b,c]\n");
}

int main(int argc, char **argv)
{
	const char *want = "ringkv,leveldb,rocksdb";
	int rounds = 3;
	for (int i = 1; i < argc; i += 2) {
		if (i + 1 >= argc) {
			usage();
			return 2;
		}
		if (!strcmp(argv[i], "--num"))
			num = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--sync-num"))
			sync_num = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--rounds"))
			rounds = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--dir"))
			base = argv[i + 1];
		else if (!strcmp(argv[i], "--engines"))
			want = argv[i + 1];
		else {
			usage();
			return 2;
		}
	}
	if (num < 1000 || sync_num < 8 || rounds < 1 || rounds > MAX_ROUNDS) {
		fprintf(stderr,
		        "bench-lsm: --num >= 1000, --sync-num >= 8, "
		        "--rounds 1..%d\n",
		        MAX_ROUNDS);
		return 2;
	}
	const bench_engine_t *all[MAX_ENG];
	const char *names[MAX_ENG];
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
	if (ne == 0) {
		usage();
		return 2;
	}
	for (int i = 0; i < ne; i++)
		names[i] = all[i]->name;
	make_values();
	lat = malloc(sizeof(uint32_t) *
	             (size_t)(num > sync_num ? num * 2 : sync_num * 2));
	char cmd[4300];
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", base);
	if (lat == NULL || system(cmd) != 0)
		return 1;
	printf("bench-lsm: %ld ops, keys %d bytes, values %d bytes (half "
	       "compressible), sync workloads %ld writes, dir %s, %d rounds, "
	       "engines alternating\n",
	       num, KEY_LEN, VAL_LEN, sync_num, base, rounds);

	static report_t reps[MAX_ROUNDS][MAX_ENG];
	static int ok[MAX_ROUNDS][MAX_ENG];
	for (int k = 0; k < rounds; k++) {
		/* Engines take turns part by part, so the same workload runs on
		 * each within seconds of the others; each part starts with the
		 * next engine, so none always runs first or last. */
		printf("round %d:", k + 1);
		for (int i = 0; i < ne; i++)
			ok[k][i] = 1;
		uint64_t t0 = rk_clock_mono_ns();
		for (int p = 0; p < NPARTS; p++)
			for (int j = 0; j < ne; j++) {
				int i = (j + k + p) % ne;
				report_t r;
				if (run_child(all[i], p, &r))
					merge_part(&reps[k][i], &r, p);
				else
					ok[k][i] = 0;
			}
		for (int i = 0; i < ne; i++)
			if (!ok[k][i])
				printf(" %s FAILED", all[i]->name);
		printf(" %.0f s\n", (double)(rk_clock_mono_ns() - t0) / 1e9);
		fflush(stdout);
	}
	bench_report_print(rounds, ne, names, reps, ok);
	free(lat);
	return 0;
}
