/*
 * The key table: the state of every rate-limited key this instance owns,
 * in bounded memory, split into shards that are each guarded by their own
 * mutex.
 *
 * Keys are chosen by callers (a client id, a path), so they are hashed
 * with a keyed hash (libsodium's SipHash-2-4, 128-bit output, with a key
 * drawn at start): nobody outside can aim many keys at one bucket chain
 * or one shard. The 128-bit hash *is* the key's identity in the table
 * (no key bytes are stored): two keys collide with probability about
 * n^2 / 2^129, below 2^-88 for a million keys, and an attacker who does
 * not know the hash key cannot search for a collision offline.
 *
 * Memory is bounded: each shard holds at most max_keys / shards entries
 * of 64 bytes (allocated up front, touched lazily) plus per-key heap
 * blocks (sliding-log rings, sub-window counter blocks: whatever
 * rk_rl_state_heap_bytes reports) up to max_log_bytes / shards. When a
 * new key needs room, the least recently used entry of the shard goes.
 * An entry whose state is back to fresh (its reset time passed) loses
 * nothing when evicted; one that is still counting loses its count,
 * which lets that key through early; the two are counted apart
 * (evicted_idle, evicted_live) so an operator sees when the table is too
 * small.
 *
 * Concurrency: a caller locks the shards it needs (in increasing index
 * order, when it needs several, so two callers never deadlock), does its
 * finds, inserts and algorithm calls, then unlocks. Entries touched in one
 * locked section are pinned against eviction until it ends
 * (each rk_rl_table_lock starts a section). Nothing else locks: there is
 * no global lock.
 */
#ifndef RK_RL_KEYTABLE_H
#define RK_RL_KEYTABLE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ringkv/status.h>

#include "algo.h"

/* A key's identity: its 128-bit keyed hash. */
typedef struct rk_rl_id {
	uint64_t lo; /* also picks the shard and the bucket */
	uint64_t hi;
} rk_rl_id_t;

/* One key's entry: 64 bytes. */
typedef struct rk_rl_entry {
	rk_rl_id_t id;          /* the key's hash */
	uint32_t next;          /* next entry in the bucket chain, index + 1 */
	uint32_t lru_prev;      /* towards more recently used, index + 1 */
	uint32_t lru_next;      /* towards less recently used, index + 1 */
	uint32_t stamp : 24;    /* locked section that last touched it */
	uint32_t algorithm : 8; /* rk_rl_algorithm_t of the state */
	uint64_t expires_ms;    /* the state is fresh again from this time */
	rk_rl_state_t state;    /* the algorithm's state */
} rk_rl_entry_t;

typedef struct rk_rl_table rk_rl_table_t;

typedef struct rk_rl_table_opts {
	size_t shards;           /* number of shards, 1..4096; 0: 64 */
	uint64_t max_keys;       /* entries in all; 0: 1,048,576 */
	uint64_t max_log_bytes;  /* per-key heap blocks in all (sliding-log
	                            rings, sub-window counts); 0: 64 MiB */
	const uint8_t *hash_key; /* 16 bytes, borrowed; NULL: random */
} rk_rl_table_opts_t;

/* Counters of one table (sums over the shards). */
typedef struct rk_rl_table_stats {
	uint64_t keys;          /* entries live now */
	uint64_t log_bytes;     /* per-key heap blocks now */
	uint64_t evicted_idle;  /* evicted after their state was fresh */
	uint64_t evicted_live;  /* evicted while still counting */
	uint64_t insert_failed; /* no room even after eviction */
} rk_rl_table_stats_t;

/* Makes a table. Caller frees with rk_rl_table_free(). */
rk_status_t rk_rl_table_new(const rk_rl_table_opts_t *opts,
                            rk_rl_table_t **out);
void rk_rl_table_free(rk_rl_table_t *t);

/* The identity of the key KEY (LEN bytes). */
void rk_rl_table_id(const rk_rl_table_t *t, const void *key, size_t len,
                    rk_rl_id_t *out);

size_t rk_rl_table_shards(const rk_rl_table_t *t);
size_t rk_rl_table_shard_of(const rk_rl_table_t *t, const rk_rl_id_t *id);

/* Locks shard S and starts a locked section on it (entries touched until
 * the unlock are pinned). */
void rk_rl_table_lock(rk_rl_table_t *t, size_t s);
void rk_rl_table_unlock(rk_rl_table_t *t, size_t s);

/* With shard S locked: the entry of ID or NULL. Marks it used. */
rk_rl_entry_t *rk_rl_table_find(rk_rl_table_t *t, size_t s,
                                const rk_rl_id_t *id);

/* With shard S locked: a new fresh entry for ID (not present), evicting
 * the least recently used unpinned entry when the shard is full. NULL
 * when every entry is pinned. NOW_MS tells idle evictions from live. */
rk_rl_entry_t *rk_rl_table_insert(rk_rl_table_t *t, size_t s,
                                  const rk_rl_id_t *id,
                                  rk_rl_algorithm_t algorithm, uint64_t now_ms);

/* With shard S locked, after an algorithm call on E: records how its
 * heap use changed (BEFORE bytes then) and evicts unpinned entries while
 * the shard's rings exceed their budget. */
void rk_rl_table_account(rk_rl_table_t *t, size_t s, rk_rl_entry_t *e,
                         size_t before, uint64_t now_ms);

/* Sums the shards' counters (locks each briefly). */
void rk_rl_table_stats(rk_rl_table_t *t, rk_rl_table_stats_t *out);

#endif
