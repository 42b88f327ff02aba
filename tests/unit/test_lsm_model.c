/*
 * Randomized model test: random puts, deletes, batches, reads, scans,
 * flushes, compactions, reopens and simulated crashes, each checked
 * against an in-memory model. A crash is a copy of the directory taken
 * while the database is open (background flushes and compactions running),
 * opened as if the machine had stopped there; with every write already
 * acknowledged, the copy must hold exactly the model.
 *
 * The seed is printed; RK_LSM_SEED=<n> replays a run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lsm.h"
#include "lsm/lsm_test_util.h"

#define NKEYS 400
#define OPS   8000

typedef struct val {
	uint8_t *p; /* NULL: absent */
	size_t n;   /* length */
} val_t;

static uint64_t rng;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static size_t key_of(char *buf, int i)
{
	return (size_t)snprintf(buf, 32, "k%05d", i);
}

static void set_model(val_t *m, int k, const uint8_t *p, size_t n)
{
	free(m[k].p);
	m[k].p = NULL;
	m[k].n = 0;
	if (p != NULL) {
		m[k].p = malloc(n ? n : 1);
		memcpy(m[k].p, p, n);
		m[k].n = n;
	}
}

static size_t random_value(uint8_t *buf)
{
	size_t n = next_rand() % 10 == 0 ? 1500 + next_rand() % 1000
	                                 : next_rand() % 200;
	for (size_t i = 0; i < n; i++)
		buf[i] = (uint8_t)next_rand();
	return n;
}

static void check_all(rk_lsm_t *db, val_t *m, unsigned long long seed, int op)
{
	char k[32];
	for (int i = 0; i < NKEYS; i++) {
		size_t kn = key_of(k, i);
		void *v;
		size_t n;
		rk_status_t st = rk_lsm_get(db, k, kn, &v, &n);
		if (m[i].p == NULL) {
			if (st != RK_NOT_FOUND)
				fprintf(stderr,
				        "seed %llu op %d key %d: want "
				        "absent, got %d\n",
				        seed, op, i, st);
			assert_int_equal(st, RK_NOT_FOUND);
		} else {
			if (st != RK_OK)
				fprintf(stderr,
				        "seed %llu op %d key %d: want "
				        "value, got %d\n",
				        seed, op, i, st);
			assert_int_equal(st, RK_OK);
			assert_int_equal(n, m[i].n);
			assert_memory_equal(v, m[i].p, n);
			free(v);
		}
	}
}

/* The iterator is on model key I, or invalid when I is out of range. */
static void assert_at(rk_lsm_iter_t *it, const val_t *m, int i)
{
	if (i < 0 || i >= NKEYS) {
		assert_false(rk_lsm_iter_valid(it));
		return;
	}
	assert_true(rk_lsm_iter_valid(it));
	char k[32];
	size_t kn = key_of(k, i), kl, vl;
	const void *kk = rk_lsm_iter_key(it, &kl);
	const void *vv = rk_lsm_iter_value(it, &vl);
	assert_int_equal(kl, kn);
	assert_memory_equal(kk, k, kn);
	assert_int_equal(vl, m[i].n);
	assert_memory_equal(vv, m[i].p, vl);
}

/* The present model key after I (NKEYS if none), and before I (-1). */
static int next_present(const val_t *m, int i)
{
	for (i++; i < NKEYS && m[i].p == NULL; i++)
		;
	return i;
}

static int prev_present(const val_t *m, int i)
{
	for (i--; i >= 0 && m[i].p == NULL; i--)
		;
	return i;
}

/* A full scan forward, one backward, and a random walk in both
 * directions from a random key, each checked against the model. */
static void check_scan(rk_lsm_iter_t *it, val_t *m)
{
	int i = next_present(m, -1);
	for (rk_lsm_iter_seek_first(it); i < NKEYS;
	     rk_lsm_iter_next(it), i = next_present(m, i))
		assert_at(it, m, i);
	assert_at(it, m, i);
	i = prev_present(m, NKEYS);
	for (rk_lsm_iter_seek_last(it); i >= 0;
	     rk_lsm_iter_prev(it), i = prev_present(m, i))
		assert_at(it, m, i);
	assert_at(it, m, i);
	char k[32];
	int from = (int)(next_rand() % NKEYS);
	rk_lsm_iter_seek(it, k, key_of(k, from));
	i = next_present(m, from - 1);
	for (int step = 0; step < 400 && i >= 0 && i < NKEYS; step++) {
		assert_at(it, m, i);
		if (next_rand() % 2) {
			rk_lsm_iter_next(it);
			i = next_present(m, i);
		} else {
			rk_lsm_iter_prev(it);
			i = prev_present(m, i);
		}
	}
	assert_at(it, m, i);
	assert_int_equal(rk_lsm_iter_status(it), RK_OK);
}

static rk_lsm_t *open_db(const char *dir, const rk_lsm_options_t *o)
{
	rk_lsm_t *db = NULL;
	char err[256];
	rk_status_t st = rk_lsm_open(dir, o, &db, err, sizeof(err));
	if (st != RK_OK)
		fprintf(stderr, "open %s: %s\n", dir, err);
	assert_int_equal(st, RK_OK);
	return db;
}

/* A crash image of DIR in a new directory: the copy is retried until no
 * manifest change happened during it, so it is one moment's state. */
static char *crash_copy(const char *dir)
{
	char man[4200];
	snprintf(man, sizeof(man), "%s/MANIFEST", dir);
	for (int attempt = 0;; attempt++) {
		struct stat a, b;
		assert_int_equal(stat(man, &a), 0);
		char *dst = lsm_test_tmpdir("crash");
		assert_non_null(dst);
		assert_int_equal(rmdir(dst), 0);
		assert_int_equal(lsm_test_copy_dir(dir, dst), 0);
		assert_int_equal(stat(man, &b), 0);
		if (a.st_ino == b.st_ino && a.st_mtime == b.st_mtime)
			return dst;
		lsm_test_rmrf(dst);
		free(dst);
		assert_true(attempt < 1000);
	}
}

static void test_lsm_model_random_ops_crashes_and_reopens(void **state)
{
	(void)state;
	unsigned long long seed = (unsigned long long)time(NULL);
	const char *env = getenv("RK_LSM_SEED");
	if (env != NULL)
		seed = strtoull(env, NULL, 10);
	printf("test_lsm_model seed %llu (RK_LSM_SEED=%llu to replay)\n", seed,
	       seed);
	fflush(stdout);
	rng = seed * 2654435761u + 1;

	char *dir = lsm_test_tmpdir("model");
	rk_lsm_options_t o;
	lsm_test_options(&o);
	o.write_buffer_size = 16 << 10;
	o.target_file_size = 16 << 10;
	o.level1_max_bytes = 64 << 10;
	o.block_size = 1024;
	o.gc_grace_ms = next_rand() % 2 ? 0 : 3600000;
	rk_lsm_t *db = open_db(dir, &o);
	val_t *m = calloc(NKEYS, sizeof(val_t));
	uint8_t *vbuf = malloc(4096);
	char k[32];
	int crashes = 0, reopens = 0;
	rk_lsm_batch_t *b;
	assert_int_equal(rk_lsm_batch_new(&b), RK_OK);
	for (int op = 0; op < OPS; op++) {
		uint64_t r = next_rand() % 1000;
		int key = (int)(next_rand() % NKEYS);
		size_t kn = key_of(k, key);
		if (r < 550) {
			size_t n = random_value(vbuf);
			assert_int_equal(rk_lsm_put(db, k, kn, vbuf, n), RK_OK);
			set_model(m, key, vbuf, n);
		} else if (r < 750) {
			assert_int_equal(rk_lsm_delete(db, k, kn), RK_OK);
			set_model(m, key, NULL, 0);
		} else if (r < 850) {
			rk_lsm_batch_clear(b);
			int nops = 1 + (int)(next_rand() % 6);
			/* apply to a staging model only after the write */
			int keys[8];
			size_t lens[8];
			uint8_t *vals[8];
			for (int i = 0; i < nops; i++) {
				keys[i] = (int)(next_rand() % NKEYS);
				kn = key_of(k, keys[i]);
				if (next_rand() % 3 == 0) {
					vals[i] = NULL;
					lens[i] = 0;
					rk_lsm_batch_delete(b, k, kn);
				} else {
					lens[i] = random_value(vbuf);
					vals[i] = malloc(lens[i] + 1);
					memcpy(vals[i], vbuf, lens[i]);
					rk_lsm_batch_put(b, k, kn, vbuf,
					                 lens[i]);
				}
			}
			assert_int_equal(rk_lsm_write(db, b), RK_OK);
			for (int i = 0; i < nops; i++) {
				set_model(m, keys[i], vals[i], lens[i]);
				free(vals[i]);
			}
		} else if (r < 950) {
			void *v;
			size_t n;
			rk_status_t st = rk_lsm_get(db, k, kn, &v, &n);
			if (m[key].p == NULL) {
				assert_int_equal(st, RK_NOT_FOUND);
			} else {
				assert_int_equal(st, RK_OK);
				assert_int_equal(n, m[key].n);
				assert_memory_equal(v, m[key].p, n);
				free(v);
			}
		} else if (r < 965) {
			/* a snapshot scan that races later writes */
			rk_lsm_iter_t *it;
			assert_int_equal(rk_lsm_iter_new(db, &it), RK_OK);
			val_t *snap = calloc(NKEYS, sizeof(val_t));
			for (int i = 0; i < NKEYS; i++)
				set_model(snap, i, m[i].p, m[i].n);
			for (int i = 0; i < 50; i++) {
				int kk = (int)(next_rand() % NKEYS);
				kn = key_of(k, kk);
				size_t n = random_value(vbuf);
				assert_int_equal(rk_lsm_put(db, k, kn, vbuf, n),
				                 RK_OK);
				set_model(m, kk, vbuf, n);
			}
			check_scan(it, snap);
			rk_lsm_iter_free(it);
			for (int i = 0; i < NKEYS; i++)
				free(snap[i].p);
			free(snap);
		} else if (r < 975) {
			assert_int_equal(rk_lsm_flush(db), RK_OK);
		} else if (r < 980) {
			assert_int_equal(rk_lsm_compact(db), RK_OK);
		} else if (r < 990) {
			rk_lsm_close(db);
			db = open_db(dir, &o);
			reopens++;
			check_all(db, m, seed, op);
		} else {
			char *copy = crash_copy(dir);
			rk_lsm_close(db);
			lsm_test_rmrf(dir);
			free(dir);
			dir = copy;
			db = open_db(dir, &o);
			crashes++;
			check_all(db, m, seed, op);
		}
	}
	check_all(db, m, seed, OPS);
	rk_lsm_iter_t *it;
	assert_int_equal(rk_lsm_iter_new(db, &it), RK_OK);
	check_scan(it, m);
	rk_lsm_iter_free(it);
	rk_lsm_stats_t s;
	rk_lsm_stats(db, &s);
	printf("model: %d crashes, %d reopens, %llu flushes, %llu "
	       "compactions, write amp %.2f\n",
	       crashes, reopens, (unsigned long long)s.flushes,
	       (unsigned long long)s.compactions, s.write_amp);
	assert_int_equal(s.background_error, RK_OK);
	rk_lsm_close(db);
	rk_lsm_batch_free(b);
	for (int i = 0; i < NKEYS; i++)
		free(m[i].p);
	free(m);
	free(vbuf);
	lsm_test_rmrf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lsm_model_random_ops_crashes_and_reopens),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
