/*
 * The storage engines bench-lsm can drive, behind one small interface:
 * rk_lsm always, LevelDB and RocksDB through their C APIs when they were
 * found at configure time (HAVE_LEVELDB, HAVE_ROCKSDB).
 */
#ifndef BENCH_LSM_ENGINES_H
#define BENCH_LSM_ENGINES_H

#include <stddef.h>

typedef struct bench_engine {
	const char *name;
	/* Opens (creating) DIR. SYNC: 0 not synced per write (rk: periodic),
	 * 1 fsync per write (rk: always), 2 group commit (rk: batch; the
	 * peers: sync=true, which they group across threads). */
	void *(*open)(const char *dir, int sync);
	/* 0 on success. */
	int (*put)(void *db, const char *k, size_t kn, const char *v,
	           size_t vn);
	/* 1 found, 0 not found, -1 error. */
	int (*get)(void *db, const char *k, size_t kn);
	/* Iterates every entry in order; returns how many; calls TICK after
	 * each (for latency). */
	/* every entry in key order, or in reverse order when REVERSE */
	long (*scan)(void *db, int reverse, void (*tick)(void *), void *arg);
	void (*close)(void *db);
} bench_engine_t;

extern const bench_engine_t bench_engine_rk;
#ifdef HAVE_LEVELDB
extern const bench_engine_t bench_engine_leveldb;
#endif
#ifdef HAVE_ROCKSDB
extern const bench_engine_t bench_engine_rocksdb;
#endif

#endif
