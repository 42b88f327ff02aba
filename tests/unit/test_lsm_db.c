/*
 * The rk_lsm API end to end on real files: reads after writes, batches,
 * reopen, snapshot iterators, compaction's dropping rules, concurrency,
 * the write slowdown, bad arguments and the directory lock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lsm.h"
#include "lsm/lsm_test_util.h"

static void key_of(char *buf, size_t n, int i)
{
	snprintf(buf, n, "key%08d", i);
}

static void val_of(char *buf, size_t n, int i, int ver)
{
	snprintf(buf, n, "value-%d-%d-%0*d", i, ver, 40, i * 7 + ver);
}

static void check_value(rk_lsm_t *db, const char *k, const char *want)
{
	void *v = NULL;
	size_t n = 0;
	rk_status_t st = rk_lsm_get(db, k, strlen(k), &v, &n);
	if (want == NULL) {
		assert_int_equal(st, RK_NOT_FOUND);
		return;
	}
	assert_int_equal(st, RK_OK);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(v, want, n);
	free(v);
}

/* Keys FROM, FROM + STEP, ... below TO hold their first value. */
static void check_version0(rk_lsm_t *db, int from, int to, int step)
{
	char k[32], v[96];
	for (int i = from; i < to; i += step) {
		key_of(k, sizeof(k), i);
		val_of(v, sizeof(v), i, 0);
		check_value(db, k, v);
	}
}

static rk_lsm_t *open_db(const char *dir, const rk_lsm_options_t *o)
{
	rk_lsm_t *db = NULL;
	char err[256];
	rk_status_t st = rk_lsm_open(dir, o, &db, err, sizeof(err));
	if (st != RK_OK)
		fprintf(stderr, "open: %s\n", err);
	assert_int_equal(st, RK_OK);
	return db;
}

static void test_lsm_put_get_delete_roundtrip(void **state)
{
	(void)state;
	char *dir = lsm_test_tmpdir("basic");
	rk_lsm_options_t o;
	lsm_test_options(&o);
	rk_lsm_t *db = open_db(dir, &o);
	check_value(db, "a", NULL);
	assert_int_equal(rk_lsm_put(db, "a", 1, "1", 1), RK_OK);
	assert_int_equal(rk_lsm_put(db, "", 0, "empty", 5), RK_OK);
	assert_int_equal(rk_lsm_put(db, "b", 1, "", 0), RK_OK);
	check_value(db, "a", "1");
	check_value(db, "", "empty");
	check_value(db, "b", "");
	assert_int_equal(rk_lsm_put(db, "a", 1, "2", 1), RK_OK);
	check_value(db, "a", "2");
	assert_int_equal(rk_lsm_delete(db, "a", 1), RK_OK);
	check_value(db, "a", NULL);
	/* the same through a flushed table */
	assert_int_equal(rk_lsm_put(db, "c", 1, "3", 1), RK_OK);
	assert_int_equal(rk_lsm_flush(db), RK_OK);
	check_value(db, "a", NULL);
	check_value(db, "c", "3");
	check_value(db, "b", "");
	rk_lsm_stats_t s;
	rk_lsm_stats(db, &s);
	assert_int_equal(s.level_tables[0], 1);
	assert_true(s.flushes == 1);
	rk_lsm_close(db);
	lsm_test_rmrf(dir);
	free(dir);
}

static void test_lsm_batch_applies_in_order_atomically(void **state)
{
	(void)state;
	char *dir = lsm_test_tmpdir("batch");
	rk_lsm_options_t o;
	lsm_test_options(&o);
	rk_lsm_t *db = open_db(dir, &o);
	rk_lsm_batch_t *b;
	assert_int_equal(rk_lsm_batch_new(&b), RK_OK);
	assert_int_equal(rk_lsm_batch_put(b, "x", 1, "1", 1), RK_OK);
	assert_int_equal(rk_lsm_batch_delete(b, "x", 1), RK_OK);
	assert_int_equal(rk_lsm_batch_put(b, "y", 1, "2", 1), RK_OK);
	assert_int_equal(rk_lsm_batch_put(b, "y", 1, "3", 1), RK_OK);
	assert_int_equal(rk_lsm_write(db, b), RK_OK);
	check_value(db, "x", NULL);
	check_value(db, "y", "3");
	/* a batch with an oversized key is refused whole */
	rk_lsm_batch_clear(b);
	assert_int_equal(rk_lsm_batch_put(b, "z", 1, "1", 1), RK_OK);
	static char big[70000];
	assert_int_equal(rk_lsm_batch_put(b, big, sizeof(big), "1", 1),
	                 RK_INVALID_ARGUMENT);
	rk_lsm_batch_free(b);
	rk_lsm_close(db);
	db = open_db(dir, &o);
	check_value(db, "x", NULL);
	check_value(db, "y", "3");
	rk_lsm_close(db);
	lsm_test_rmrf(dir);
	free(dir);
}

static void test_lsm_reopen_keeps_every_write_across_tables(void **state)
{
	(void)state;
	char *dir = lsm_test_tmpdir("reopen");
	rk_lsm_options_t o;
	lsm_test_options(&o);
	rk_lsm_t *db = open_db(dir, &o);
	enum { N = 6000 };
	char k[32], v[96];
	for (int i = 0; i < N; i++) {
		key_of(k, sizeof(k), (i * 7919) % N);
		val_of(v, sizeof(v), (i * 7919) % N, 0);
		assert_int_equal(rk_lsm_put(db, k, strlen(k), v, strlen(v)),
		                 RK_OK);
	}
	for (int i = 0; i < N; i += 3) {
		key_of(k, sizeof(k), i);
		val_of(v, sizeof(v), i, 1);
		assert_int_equal(rk_lsm_put(db, k, strlen(k), v, strlen(v)),
		                 RK_OK);
	}
	rk_lsm_stats_t s;
	rk_lsm_stats(db, &s);
	assert_true(s.flushes > 0);
	rk_lsm_close(db);
	db = open_db(dir, &o);
	for (int i = 0; i < N; i++) {
		key_of(k, sizeof(k), i);
		val_of(v, sizeof(v), i, i % 3 == 0 ? 1 : 0);
		check_value(db, k, v);
	}
	rk_lsm_close(db);
	lsm_test_rmrf(dir);
	free(dir);
}

/* Scans COUNT keys of DB from the first; returns the cache's bytes after. */
static uint64_t scan_all(rk_lsm_t *db, int count)
{
	rk_lsm_iter_t *it;
	assert_int_equal(rk_lsm_iter_new(db, &it), RK_OK);
	int n = 0;
	for (rk_lsm_iter_seek_first(it); rk_lsm_iter_valid(it);
	     rk_lsm_iter_next(it))
		n++;
	assert_int_equal(rk_lsm_iter_status(it), RK_OK);
	rk_lsm_iter_free(it);
	assert_int_equal(n, count);
	rk_lsm_stats_t s;
	rk_lsm_stats(db, &s);
	return s.cache_bytes;
}

/* A scan leaves the block cache to point reads unless told otherwise. */
static void test_lsm_scans_fill_the_cache_only_when_asked(void **state)
{
	(void)state;
	char *dir = lsm_test_tmpdir("scancache");
	rk_lsm_options_t o;
	lsm_test_options(&o);
	rk_lsm_t *db = open_db(dir, &o);
	char k[32], v[128];
	for (int i = 0; i < 5000; i++) {
		key_of(k, sizeof(k), i);
		val_of(v, sizeof(v), i, 0);
		assert_int_equal(rk_lsm_put(db, k, strlen(k), v, strlen(v)),
		                 RK_OK);
	}
	assert_int_equal(rk_lsm_flush(db), RK_OK);
	key_of(k, sizeof(k), 7);
	val_of(v, sizeof(v), 7, 0);
	check_value(db, k, v); /* one point read: one block cached */
	rk_lsm_stats_t s;
	rk_lsm_stats(db, &s);
	uint64_t one = s.cache_bytes;
	assert_true(one > 0);
	assert_int_equal(scan_all(db, 5000), one);
	rk_lsm_close(db);

	o.scan_fill_cache = 1;
	db = open_db(dir, &o);
	assert_true(scan_all(db, 5000) > 10 * one);
	rk_lsm_close(db);
	lsm_test_rmrf(dir);
	free(dir);
}

/* IT is on key I with its first value (version 0). */
static void assert_at_version0(rk_lsm_iter_t *it, int i)
{
	char k[32], v[96];
	key_of(k, sizeof(k), i);
	val_of(v, sizeof(v), i, 0);
	size_t kl, vl;
	const char *kk = rk_lsm_iter_key(it, &kl);
	const char *vv = rk_lsm_iter_value(it, &vl);
	assert_int_equal(kl, strlen(k));
	assert_memory_equal(kk, k, kl);
	assert_int_equal(vl, strlen(v));
	assert_memory_equal(vv, v, vl);
}

/* Lookups that keep passing through a table that does not hold their
 * key get it compacted away (LevelDB's seek compaction), with no write. */
static void test_lsm_lookups_passing_through_a_table_compact_it(void **state)
{
	(void)state;
	char *dir = lsm_test_tmpdir("seekc");
	rk_lsm_options_t o;
	lsm_test_options(&o);
	o.l0_compaction_trigger = 8; /* two tables are fine by size */
	o.l0_slowdown_trigger = 10;
	o.l0_stop_trigger = 12;
	rk_lsm_t *db = open_db(dir, &o);
	char k[32], v[96];
	for (int parity = 0; parity < 2; parity++) {
		for (int i = parity; i < 400; i += 2) {
			key_of(k, sizeof(k), i);
			val_of(v, sizeof(v), i, 0);
			assert_int_equal(
			    rk_lsm_put(db, k, strlen(k), v, strlen(v)), RK_OK);
		}
		assert_int_equal(rk_lsm_flush(db), RK_OK);
	}
	rk_lsm_stats_t s;
	rk_lsm_stats(db, &s);
	assert_int_equal(s.level_tables[0], 2);
	assert_int_equal(s.seek_compactions, 0);
	/* Even keys: each lookup reads the newer (odd) table first. */
	for (int round = 0; round < 2; round++)
		check_version0(db, 0, 400, 2);
	/* The compaction runs in the background and has no completion
	 * signal in the API: poll the stats, for 10 s at most. */
	for (int tries = 0; tries < 1000; tries++) {
		rk_lsm_stats(db, &s);
		if (s.seek_compactions > 0 && s.level_tables[0] == 0)
			break;
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	assert_true(s.seek_compactions >= 1);
	assert_int_equal(s.level_tables[0], 0);
	check_version0(db, 0, 400, 1);
	rk_lsm_close(db);
	lsm_test_rmrf(dir);
	free(dir);
}

static void test_lsm_iterator_sees_one_consistent_snapshot(void **state)
{
	(void)state;
	char *dir = lsm_test_tmpdir("iter");
	rk_lsm_options_t o;
	lsm_test_options(&o);
	rk_lsm_t *db = open_db(dir, &o);
	enum { N = 3000 };
	char k[32], v[96];
	for (int i = 0; i < N; i++) {
		key_of(k, sizeof(k), i);
		val_of(v, sizeof(v), i, 0);
		assert_int_equal(rk_lsm_put(db, k, strlen(k), v, strlen(v)),
		                 RK_OK);
	}
	rk_lsm_iter_t *it;
	assert_int_equal(rk_lsm_iter_new(db, &it), RK_OK);
	/* changes after the snapshot, then a flush and a compaction */
	for (int i = 0; i < N; i += 2) {
		key_of(k, sizeof(k), i);
		assert_int_equal(rk_lsm_delete(db, k, strlen(k)), RK_OK);
	}
	assert_int_equal(rk_lsm_put(db, "zzz", 3, "new", 3), RK_OK);
	assert_int_equal(rk_lsm_compact(db), RK_OK);
	int count = 0;
	for (rk_lsm_iter_seek_first(it); rk_lsm_iter_valid(it);
	     rk_lsm_iter_next(it))
		assert_at_version0(it, count++);
	assert_int_equal(rk_lsm_iter_status(it), RK_OK);
	assert_int_equal(count, N);
	/* and backward: the same snapshot, newest visible versions only */
	for (rk_lsm_iter_seek_last(it); rk_lsm_iter_valid(it);
	     rk_lsm_iter_prev(it))
		assert_at_version0(it, --count);
	assert_int_equal(count, 0);
	rk_lsm_iter_free(it);

	/* a new iterator sees the deletes; seek lands on the next key */
	assert_int_equal(rk_lsm_iter_new(db, &it), RK_OK);
	key_of(k, sizeof(k), 100);
	rk_lsm_iter_seek(it, k, strlen(k));
	assert_true(rk_lsm_iter_valid(it));
	size_t kl;
	const char *kk = rk_lsm_iter_key(it, &kl);
	key_of(k, sizeof(k), 101);
	assert_memory_equal(kk, k, kl);
	/* back over the deleted 100 to 99, and forward again to 101 */
	rk_lsm_iter_prev(it);
	kk = rk_lsm_iter_key(it, &kl);
	key_of(k, sizeof(k), 99);
	assert_memory_equal(kk, k, kl);
	rk_lsm_iter_next(it);
	kk = rk_lsm_iter_key(it, &kl);
	key_of(k, sizeof(k), 101);
	assert_memory_equal(kk, k, kl);
	/* the last key is the one written after the deletes */
	rk_lsm_iter_seek_last(it);
	kk = rk_lsm_iter_key(it, &kl);
	assert_memory_equal(kk, "zzz", 3);
	count = 0;
	for (rk_lsm_iter_seek_first(it); rk_lsm_iter_valid(it);
	     rk_lsm_iter_next(it))
		count++;
	assert_int_equal(count, N / 2 + 1);
	rk_lsm_iter_free(it);
	rk_lsm_close(db);
	lsm_test_rmrf(dir);
	free(dir);
}

static void fill_and_delete(rk_lsm_t *db, int n)
{
	char k[32], v[96];
	for (int i = 0; i < n; i++) {
		key_of(k, sizeof(k), i);
		val_of(v, sizeof(v), i, 0);
		assert_int_equal(rk_lsm_put(db, k, strlen(k), v, strlen(v)),
		                 RK_OK);
	}
	assert_int_equal(rk_lsm_compact(db), RK_OK);
	for (int i = 0; i < n; i++) {
		key_of(k, sizeof(k), i);
		assert_int_equal(rk_lsm_delete(db, k, strlen(k)), RK_OK);
	}
	assert_int_equal(rk_lsm_compact(db), RK_OK);
}

static void test_lsm_compaction_drops_tombstones_only_after_grace(void **state)
{
	(void)state;
	char *dir = lsm_test_tmpdir("grace");
	rk_lsm_options_t o;
	lsm_test_options(&o);
	o.gc_grace_ms = 0;
	rk_lsm_t *db = open_db(dir, &o);
	fill_and_delete(db, 4000);
	rk_lsm_stats_t s;
	rk_lsm_stats(db, &s);
	assert_true(s.tombstones_dropped >= 4000);
	assert_int_equal(s.table_bytes, 0); /* nothing left at all */
	check_value(db, "key00000001", NULL);
	rk_lsm_close(db);
	lsm_test_rmrf(dir);
	free(dir);

	dir = lsm_test_tmpdir("grace2");
	o.gc_grace_ms = 3600 * 1000;
	db = open_db(dir, &o);
	fill_and_delete(db, 4000);
	rk_lsm_stats(db, &s);
	assert_int_equal(s.tombstones_dropped, 0);
	assert_true(s.versions_dropped >= 4000); /* the values went */
	assert_true(s.table_bytes > 0);          /* the tombstones stay */
	check_value(db, "key00000001", NULL);
	rk_lsm_close(db);
	db = open_db(dir, &o);
	check_value(db, "key00000001", NULL);
	rk_lsm_close(db);
	lsm_test_rmrf(dir);
	free(dir);
}

static void
test_lsm_compaction_keeps_newest_and_reports_amplification(void **state)
{
	(void)state;
	char *dir = lsm_test_tmpdir("overwrite");
	rk_lsm_options_t o;
	lsm_test_options(&o);
	rk_lsm_t *db = open_db(dir, &o);
	enum { N = 2000, ROUNDS = 8 };
	char k[32], v[96];
	for (int r = 0; r < ROUNDS; r++) {
		for (int i = 0; i < N; i++) {
			key_of(k, sizeof(k), i);
			val_of(v, sizeof(v), i, r);
			assert_int_equal(
			    rk_lsm_put(db, k, strlen(k), v, strlen(v)), RK_OK);
		}
	}
	assert_int_equal(rk_lsm_compact(db), RK_OK);
	rk_lsm_stats_t s;
	rk_lsm_stats(db, &s);
	assert_true(s.compactions > 0);
	assert_true(s.versions_dropped > 0);
	assert_true(s.write_amp >= 1.0);
	assert_true(s.space_amp >= 1.0 && s.space_amp < 1.5);
	for (int i = 0; i < N; i++) {
		key_of(k, sizeof(k), i);
		val_of(v, sizeof(v), i, ROUNDS - 1);
		check_value(db, k, v);
	}
	rk_lsm_close(db);
	lsm_test_rmrf(dir);
	free(dir);
}

typedef struct worker {
	rk_lsm_t *db; /* shared */
	int id;       /* writer id, or -1 for a reader */
	int n;        /* keys per writer */
	int writers;  /* writer count, for readers */
	int bad;      /* wrong values seen */
} worker_t;

static void *writer_main(void *arg)
{
	worker_t *w = arg;
	char k[32], v[96];
	for (int i = 0; i < w->n; i++) {
		int key = w->id * w->n + i;
		key_of(k, sizeof(k), key);
		val_of(v, sizeof(v), key, 0);
		if (rk_lsm_put(w->db, k, strlen(k), v, strlen(v)) != RK_OK)
			w->bad++;
	}
	return NULL;
}

static void *reader_main(void *arg)
{
	worker_t *w = arg;
	char k[32], v[96];
	unsigned seed = 12345;
	for (int i = 0; i < 20000; i++) {
		int key = (int)(rand_r(&seed) % (unsigned)(w->n * w->writers));
		key_of(k, sizeof(k), key);
		val_of(v, sizeof(v), key, 0);
		void *got;
		size_t n;
		rk_status_t st = rk_lsm_get(w->db, k, strlen(k), &got, &n);
		if (st == RK_OK) {
			if (n != strlen(v) || memcmp(got, v, n) != 0)
				w->bad++;
			free(got);
		} else if (st != RK_NOT_FOUND) {
			w->bad++;
		}
	}
	return NULL;
}

static void test_lsm_concurrent_readers_and_writers_agree(void **state)
{
	(void)state;
	char *dir = lsm_test_tmpdir("conc");
	rk_lsm_options_t o;
	lsm_test_options(&o);
	o.sync = RK_LSM_SYNC_BATCH;
	rk_lsm_t *db = open_db(dir, &o);
	enum { W = 4, R = 3, N = 3000 };
	pthread_t th[W + R];
	worker_t ws[W + R];
	for (int i = 0; i < W + R; i++) {
		ws[i] = (worker_t){db, i < W ? i : -1, N, W, 0};
		pthread_create(&th[i], NULL, i < W ? writer_main : reader_main,
		               &ws[i]);
	}
	for (int i = 0; i < W + R; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(ws[i].bad, 0);
	}
	char k[32], v[96];
	for (int i = 0; i < W * N; i++) {
		key_of(k, sizeof(k), i);
		val_of(v, sizeof(v), i, 0);
		check_value(db, k, v);
	}
	rk_lsm_stats_t s;
	rk_lsm_stats(db, &s);
	assert_true(s.write_groups <= (uint64_t)(W * N));
	assert_true(s.syncs > 0);
	rk_lsm_close(db);
	lsm_test_rmrf(dir);
	free(dir);
}

static void test_lsm_batch_policy_groups_synced_writes(void **state)
{
	(void)state;
	char *dir = lsm_test_tmpdir("group");
	rk_lsm_options_t o;
	lsm_test_options(&o);
	o.sync = RK_LSM_SYNC_BATCH;
	rk_lsm_t *db = open_db(dir, &o);
	enum { W = 8, N = 150 };
	pthread_t th[W];
	worker_t ws[W];
	for (int i = 0; i < W; i++) {
		ws[i] = (worker_t){db, i, N, W, 0};
		pthread_create(&th[i], NULL, writer_main, &ws[i]);
	}
	for (int i = 0; i < W; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(ws[i].bad, 0);
	}
	rk_lsm_stats_t s;
	rk_lsm_stats(db, &s);
	printf("batch: %d synced writes from %d threads in %llu groups\n",
	       W * N, W, (unsigned long long)s.write_groups);
	/* Every write durable, and one fdatasync per group of at least 4 on
	 * average: a plain writer queue splits 8 steady writers into halves
	 * that take turns; the leader's gathering makes groups of ~8. */
	assert_true(s.write_groups * 4 <= (uint64_t)(W * N));
	assert_true(s.syncs >= s.write_groups);

	/* Writers stop: a lone writer is not held up by the gathering for
	 * more than the two groups its memory of 8 writers lasts. */
	uint64_t g0 = s.gather_us;
	ws[0] = (worker_t){db, W * N / 50, 50, W, 0}; /* keys W*N.. */
	writer_main(&ws[0]);
	assert_int_equal(ws[0].bad, 0);
	rk_lsm_stats(db, &s);
	printf("lone writer after them: %llu us gathering over 50 writes\n",
	       (unsigned long long)(s.gather_us - g0));
	/* Two capped waits (2 ms each) at most; the slack is for a loaded
	 * machine's late wake-ups. Held up at every write, 50 writes would
	 * gather for up to 100 ms. */
	assert_true(s.gather_us - g0 <= 2 * 2000 + 20000);
	rk_lsm_close(db);
	db = open_db(dir, &o);
	check_version0(db, 0, W * N + 50, 1);
	rk_lsm_close(db);
	lsm_test_rmrf(dir);
	free(dir);
}

static void test_lsm_writes_slow_down_not_fail_when_l0_backs_up(void **state)
{
	(void)state;
	char *dir = lsm_test_tmpdir("slow");
	rk_lsm_options_t o;
	lsm_test_options(&o);
	o.write_buffer_size = 16 << 10;
	o.l0_compaction_trigger = 6;
	o.l0_slowdown_trigger = 2;
	o.l0_stop_trigger = 8;
	rk_lsm_t *db = open_db(dir, &o);
	char k[32], v[96];
	for (int i = 0; i < 3000; i++) {
		key_of(k, sizeof(k), i);
		val_of(v, sizeof(v), i, 0);
		assert_int_equal(rk_lsm_put(db, k, strlen(k), v, strlen(v)),
		                 RK_OK);
	}
	rk_lsm_stats_t s;
	rk_lsm_stats(db, &s);
	assert_true(s.slowdown_count > 0);
	assert_true(s.slowdown_us > 0);
	assert_int_equal(s.background_error, RK_OK);
	rk_lsm_close(db);
	lsm_test_rmrf(dir);
	free(dir);
}

static void test_lsm_rejects_bad_arguments_and_second_open(void **state)
{
	(void)state;
	char *dir = lsm_test_tmpdir("args");
	rk_lsm_options_t o;
	lsm_test_options(&o);
	rk_lsm_t *db2 = NULL;
	o.l0_stop_trigger = 1;
	assert_int_equal(rk_lsm_open(dir, &o, &db2, NULL, 0),
	                 RK_INVALID_ARGUMENT);
	lsm_test_options(&o);
	rk_lsm_t *db = open_db(dir, &o);
	char err[256];
	assert_int_equal(rk_lsm_open(dir, &o, &db2, err, sizeof(err)),
	                 RK_FAILED_PRECONDITION);
	assert_non_null(strstr(err, "in use"));
	static char big[70000];
	assert_int_equal(rk_lsm_put(db, big, sizeof(big), "v", 1),
	                 RK_INVALID_ARGUMENT);
	assert_int_equal(rk_lsm_put(db, NULL, 3, "v", 1), RK_INVALID_ARGUMENT);
	assert_int_equal(rk_lsm_put(db, "k", 1, NULL, 3), RK_INVALID_ARGUMENT);
	void *v;
	size_t n;
	assert_int_equal(rk_lsm_get(db, big, sizeof(big), &v, &n),
	                 RK_INVALID_ARGUMENT);
	rk_lsm_close(db);
	o.create_if_missing = 0;
	char missing[4200];
	snprintf(missing, sizeof(missing), "%s/nope", dir);
	assert_int_equal(rk_lsm_open(missing, &o, &db2, NULL, 0), RK_NOT_FOUND);
	lsm_test_rmrf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lsm_lookups_passing_through_a_table_compact_it),
	    cmocka_unit_test(test_lsm_scans_fill_the_cache_only_when_asked),
	    cmocka_unit_test(test_lsm_put_get_delete_roundtrip),
	    cmocka_unit_test(test_lsm_batch_applies_in_order_atomically),
	    cmocka_unit_test(test_lsm_reopen_keeps_every_write_across_tables),
	    cmocka_unit_test(test_lsm_iterator_sees_one_consistent_snapshot),
	    cmocka_unit_test(
	        test_lsm_compaction_drops_tombstones_only_after_grace),
	    cmocka_unit_test(
	        test_lsm_compaction_keeps_newest_and_reports_amplification),
	    cmocka_unit_test(test_lsm_concurrent_readers_and_writers_agree),
	    cmocka_unit_test(test_lsm_batch_policy_groups_synced_writes),
	    cmocka_unit_test(
	        test_lsm_writes_slow_down_not_fail_when_l0_backs_up),
	    cmocka_unit_test(test_lsm_rejects_bad_arguments_and_second_open),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
