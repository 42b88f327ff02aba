/*
 * The block cache: decoded data blocks keyed by (table number, offset),
 * least recently used evicted first, with a byte bound
 * (docs/lsm-sstable.md, "Block cache"). Thread-safe.
 */
#ifndef RK_LSM_CACHE_H
#define RK_LSM_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include <ringkv/status.h>

#include "block.h"

typedef struct rk_cache rk_cache_t;

/* A cache holding at most CAPACITY bytes (0: caches nothing). Caller
 * frees with rk_cache_free(). */
rk_status_t rk_cache_new(size_t capacity, rk_cache_t **out);
void rk_cache_free(rk_cache_t *c);

/* The cached block, with a new reference for the caller, or NULL. */
rk_block_t *rk_cache_lookup(rk_cache_t *c, uint64_t table, uint64_t off);
/* Caches B (the cache takes its own reference). */
void rk_cache_insert(rk_cache_t *c, uint64_t table, uint64_t off,
                     rk_block_t *b);
/* Blocks of a deleted table are not erased: file numbers are never
 * reused, so they are never looked up again and age out of the LRU. */

void rk_cache_counters(rk_cache_t *c, uint64_t *hits, uint64_t *misses,
                       uint64_t *bytes);

#endif
