/*
 * Engine adapters for bench-lsm (see engines.h). Each peer runs with its
 * library's default options, as the targets are stated; only
 * create_if_missing and the per-write sync flag are set.
 */
#include "engines.h"

#include <stdio.h>
#include <stdlib.h>

#include "lsm.h"

static void *rk_open(const char *dir, int sync)
{
	rk_lsm_options_t o;
	rk_lsm_options_default(&o);
	o.sync = sync == 0   ? RK_LSM_SYNC_PERIODIC
	         : sync == 1 ? RK_LSM_SYNC_ALWAYS
	                     : RK_LSM_SYNC_BATCH;
	const char *period = getenv("RK_BENCH_SYNC_PERIOD_MS");
	if (period != NULL)
		o.sync_period_ms = (uint32_t)atoi(period);
	rk_lsm_t *db;
	char err[256];
	if (rk_lsm_open(dir, &o, &db, err, sizeof(err)) != RK_OK)
		return NULL;
	return db;
}

static int rk_put(void *db, const char *k, size_t kn, const char *v, size_t vn)
{
	return rk_lsm_put(db, k, kn, v, vn) == RK_OK ? 0 : -1;
}

static int rk_get(void *db, const char *k, size_t kn)
{
	void *v;
	size_t n;
	rk_status_t st = rk_lsm_get(db, k, kn, &v, &n);
	if (st == RK_OK) {
		free(v);
		return 1;
	}
	return st == RK_NOT_FOUND ? 0 : -1;
}

static long rk_scan(void *db, int reverse, void (*tick)(void *), void *arg)
{
	rk_lsm_iter_t *it;
	if (rk_lsm_iter_new(db, &it) != RK_OK)
		return -1;
	long n = 0;
	if (reverse)
		rk_lsm_iter_seek_last(it);
	else
		rk_lsm_iter_seek_first(it);
	for (; rk_lsm_iter_valid(it);
	     reverse ? rk_lsm_iter_prev(it) : rk_lsm_iter_next(it)) {
		size_t kl, vl;
		(void)rk_lsm_iter_key(it, &kl);
		(void)rk_lsm_iter_value(it, &vl);
		n++;
		tick(arg);
	}
	rk_lsm_iter_free(it);
	return n;
}

static void rk_close(void *db)
{
	if (getenv("RK_BENCH_STATS") != NULL) {
		rk_lsm_stats_t s;
		rk_lsm_stats(db, &s);
		fprintf(
		    stderr,
		    "[ringkv stats] flushes %llu compactions %llu (moves "
		    "%llu, for lookups %llu) write amp %.2f space amp %.2f slowdowns %llu "
		    "(%.1f ms) stalls %llu (%.1f ms) cache hits %llu misses "
		    "%llu L0..L3 tables %llu/%llu/%llu/%llu write groups %llu "
		    "syncs %llu (%.1f ms) gather %.1f ms\n",
		    (unsigned long long)s.flushes,
		    (unsigned long long)s.compactions,
		    (unsigned long long)s.trivial_moves,
		    (unsigned long long)s.seek_compactions, s.write_amp,
		    s.space_amp, (unsigned long long)s.slowdown_count,
		    s.slowdown_us / 1000.0, (unsigned long long)s.stall_count,
		    s.stall_us / 1000.0, (unsigned long long)s.cache_hits,
		    (unsigned long long)s.cache_misses,
		    (unsigned long long)s.level_tables[0],
		    (unsigned long long)s.level_tables[1],
		    (unsigned long long)s.level_tables[2],
		    (unsigned long long)s.level_tables[3],
		    (unsigned long long)s.write_groups,
		    (unsigned long long)s.syncs, s.sync_us / 1000.0,
		    s.gather_us / 1000.0);
	}
	rk_lsm_close(db);
}

const bench_engine_t bench_engine_rk = {"ringkv", rk_open, rk_put,
                                        rk_get,   rk_scan, rk_close};

#ifdef HAVE_LEVELDB
#include <leveldb/c.h>

typedef struct ldb {
	leveldb_t *db;              /* the database */
	leveldb_options_t *o;       /* defaults + create_if_missing */
	leveldb_writeoptions_t *wo; /* sync per the mode */
	leveldb_readoptions_t *ro;  /* defaults */
} ldb_t;

static void *ldb_open(const char *dir, int sync)
{
	ldb_t *l = calloc(1, sizeof(*l));
	char *err = NULL;
	l->o = leveldb_options_create();
	leveldb_options_set_create_if_missing(l->o, 1);
	l->db = leveldb_open(l->o, dir, &err);
	if (err != NULL) {
		leveldb_free(err);
		leveldb_options_destroy(l->o);
		free(l);
		return NULL;
	}
	l->wo = leveldb_writeoptions_create();
	leveldb_writeoptions_set_sync(l->wo, sync != 0);
	l->ro = leveldb_readoptions_create();
	return l;
}

static int ldb_put(void *p, const char *k, size_t kn, const char *v, size_t vn)
{
	ldb_t *l = p;
	char *err = NULL;
	leveldb_put(l->db, l->wo, k, kn, v, vn, &err);
	if (err != NULL) {
		leveldb_free(err);
		return -1;
	}
	return 0;
}

static int ldb_get(void *p, const char *k, size_t kn)
{
	ldb_t *l = p;
	char *err = NULL;
	size_t n;
	char *v = leveldb_get(l->db, l->ro, k, kn, &n, &err);
	if (err != NULL) {
		leveldb_free(err);
		return -1;
	}
	if (v == NULL)
		return 0;
	leveldb_free(v);
	return 1;
}

static long ldb_scan(void *p, int reverse, void (*tick)(void *), void *arg)
{
	ldb_t *l = p;
	leveldb_iterator_t *it = leveldb_create_iterator(l->db, l->ro);
	long n = 0;
	if (reverse)
		leveldb_iter_seek_to_last(it);
	else
		leveldb_iter_seek_to_first(it);
	for (; leveldb_iter_valid(it);
	     reverse ? leveldb_iter_prev(it) : leveldb_iter_next(it)) {
		size_t kl, vl;
		(void)leveldb_iter_key(it, &kl);
		(void)leveldb_iter_value(it, &vl);
		n++;
		tick(arg);
	}
	leveldb_iter_destroy(it);
	return n;
}

static void ldb_close(void *p)
{
	ldb_t *l = p;
	leveldb_close(l->db);
	leveldb_options_destroy(l->o);
	leveldb_writeoptions_destroy(l->wo);
	leveldb_readoptions_destroy(l->ro);
	free(l);
}

const bench_engine_t bench_engine_leveldb = {"leveldb", ldb_open, ldb_put,
                                             ldb_get,   ldb_scan, ldb_close};
#endif

#ifdef HAVE_ROCKSDB
#include <rocksdb/c.h>

typedef struct rdb {
	rocksdb_t *db;              /* the database */
	rocksdb_options_t *o;       /* defaults + create_if_missing */
	rocksdb_writeoptions_t *wo; /* sync per the mode */
	rocksdb_readoptions_t *ro;  /* defaults */
} rdb_t;

static void *rdb_open(const char *dir, int sync)
{
	rdb_t *r = calloc(1, sizeof(*r));
	char *err = NULL;
	r->o = rocksdb_options_create();
	rocksdb_options_set_create_if_missing(r->o, 1);
	r->db = rocksdb_open(r->o, dir, &err);
	if (err != NULL) {
		rocksdb_free(err);
		rocksdb_options_destroy(r->o);
		free(r);
		return NULL;
	}
	r->wo = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(r->wo, sync != 0);
	r->ro = rocksdb_readoptions_create();
	return r;
}

static int rdb_put(void *p, const char *k, size_t kn, const char *v, size_t vn)
{
	rdb_t *r = p;
	char *err = NULL;
	rocksdb_put(r->db, r->wo, k, kn, v, vn, &err);
	if (err != NULL) {
		rocksdb_free(err);
		return -1;
	}
	return 0;
}

static int rdb_get(void *p, const char *k, size_t kn)
{
	rdb_t *r = p;
	char *err = NULL;
	size_t n;
	char *v = rocksdb_get(r->db, r->ro, k, kn, &n, &err);
	if (err != NULL) {
		rocksdb_free(err);
		return -1;
	}
	if (v == NULL)
		return 0;
	rocksdb_free(v);
	return 1;
}

static long rdb_scan(void *p, int reverse, void (*tick)(void *), void *arg)
{
	rdb_t *r = p;
	rocksdb_iterator_t *it = rocksdb_create_iterator(r->db, r->ro);
	long n = 0;
	if (reverse)
		rocksdb_iter_seek_to_last(it);
	else
		rocksdb_iter_seek_to_first(it);
	for (; rocksdb_iter_valid(it);
	     reverse ? rocksdb_iter_prev(it) : rocksdb_iter_next(it)) {
		size_t kl, vl;
		(void)rocksdb_iter_key(it, &kl);
		(void)rocksdb_iter_value(it, &vl);
		n++;
		tick(arg);
	}
	rocksdb_iter_destroy(it);
	return n;
}

static void rdb_close(void *p)
{
	rdb_t *r = p;
	rocksdb_close(r->db);
	rocksdb_options_destroy(r->o);
	rocksdb_writeoptions_destroy(r->wo);
	rocksdb_readoptions_destroy(r->ro);
	free(r);
}

const bench_engine_t bench_engine_rocksdb = {"rocksdb", rdb_open, rdb_put,
                                             rdb_get,   rdb_scan, rdb_close};
#endif
