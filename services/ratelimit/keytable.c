/*
 * The key table; see keytable.h for what it promises.
 *
 * Data structures, per shard: an array of `cap` entries allocated at
 * start (calloc: pages are touched only as keys arrive), a power-of-two
 * array of bucket heads (load factor <= 1), chains through entry.next,
 * one doubly linked LRU list through lru_prev/lru_next (most recently
 * used at the head), and a free list through entry.next. Links are
 * index + 1, so 0 means none and a zeroed shard is consistent.
 *
 * Invariants (shard locked): every live entry is on exactly one chain and
 * on the LRU list; a free entry on neither; live + free + never-used ==
 * cap; log_bytes is the sum of the live entries' ring sizes.
 *
 * The shard is picked from the low half of the hash and the bucket from
 * the high half, so the two choices are independent.
 */
#include "keytable.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_SHARDS    64
#define DEFAULT_MAX_KEYS  (1u << 20)
#define DEFAULT_LOG_BYTES (64u << 20)

typedef struct shard {
	_Alignas(64) pthread_mutex_t lock; /* guards everything below */
	rk_rl_entry_t *e;                  /* cap entries */
	uint32_t *bucket;                  /* chain heads, index + 1 */
	uint32_t mask;                     /* buckets - 1 */
	uint32_t cap;                      /* entries allocated */
	uint32_t hwm;          /* entries ever handed out (never-used above) */
	uint32_t free_head;    /* free list through next, index + 1 */
	uint32_t live;         /* entries in use */
	uint32_t lru_head;     /* most recently used, index + 1 */
	uint32_t lru_tail;     /* least recently used, index + 1 */
	uint32_t stamp;        /* current locked section, 1..2^24-1 */
	uint64_t log_bytes;    /* sliding-log rings of live entries */
	uint64_t log_budget;   /* most log_bytes kept */
	uint64_t evicted_idle; /* see rk_rl_table_stats_t */
	uint64_t evicted_live;
	uint64_t insert_failed;
} shard_t;

struct rk_rl_table {
	uint8_t key[crypto_shorthash_siphashx24_KEYBYTES]; /* hash key */
	size_t nshards;                                    /* shards */
	shard_t *shard; /* nshards, cache-line aligned */
};

rk_status_t rk_rl_table_new(const rk_rl_table_opts_t *opts, rk_rl_table_t **out)
{
	if (sodium_init() < 0)
		return RK_INTERNAL;
	size_t n = opts->shards ? opts->shards : DEFAULT_SHARDS;
	uint64_t max_keys = opts->max_keys ? opts->max_keys : DEFAULT_MAX_KEYS;
	uint64_t log =
	    opts->max_log_bytes ? opts->max_log_bytes : DEFAULT_LOG_BYTES;
	if (n > 4096 || max_keys > (1ull << 32))
		return RK_INVALID_ARGUMENT;
	rk_rl_table_t *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return RK_RESOURCE_EXHAUSTED;
	if (opts->hash_key != NULL)
		memcpy(t->key, opts->hash_key, sizeof(t->key));
	else
		randombytes_buf(t->key, sizeof(t->key));
	t->nshards = n;
	t->shard = aligned_alloc(64, n * sizeof(shard_t));
	if (t->shard == NULL) {
		free(t);
		return RK_RESOURCE_EXHAUSTED;
	}
	memset(t->shard, 0, n * sizeof(shard_t));
	uint32_t cap = (uint32_t)((max_keys + n - 1) / n);
	uint32_t nb = 1;
	while (nb < cap)
		nb <<= 1;
	for (size_t i = 0; i < n; i++) {
		shard_t *s = &t->shard[i];
		pthread_mutex_init(&s->lock, NULL);
		s->cap = cap;
		s->mask = nb - 1;
		s->log_budget = log / n;
		s->e = calloc(cap, sizeof(rk_rl_entry_t));
		s->bucket = calloc(nb, sizeof(uint32_t));
		if (s->e == NULL || s->bucket == NULL) {
			t->nshards = i + 1;
			rk_rl_table_free(t);
			return RK_RESOURCE_EXHAUSTED;
		}
	}
	*out = t;
	return RK_OK;
}

void rk_rl_table_free(rk_rl_table_t *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nshards; i++) {
		shard_t *s = &t->shard[i];
		if (s->e != NULL) {
			for (uint32_t k = s->lru_head; k != 0;
			     k = s->e[k - 1].lru_next)
				rk_rl_state_clear(&s->e[k - 1].state,
				                  s->e[k - 1].algorithm);
		}
		free(s->e);
		free(s->bucket);
		pthread_mutex_destroy(&s->lock);
	}
	free(t->shard);
	sodium_memzero(t->key, sizeof(t->key));
	free(t);
}

void rk_rl_table_id(const rk_rl_table_t *t, const void *key, size_t len,
                    rk_rl_id_t *out)
{
	uint8_t h[crypto_shorthash_siphashx24_BYTES];
	crypto_shorthash_siphashx24(h, key, len, t->key);
	memcpy(&out->lo, h, 8);
	memcpy(&out->hi, h + 8, 8);
}

size_t rk_rl_table_shards(const rk_rl_table_t *t)
{
	return t->nshards;
}

size_t rk_rl_table_shard_of(const rk_rl_table_t *t, const rk_rl_id_t *id)
{
	return (size_t)(id->lo % t->nshards);
}

void rk_rl_table_lock(rk_rl_table_t *t, size_t i)
{
	shard_t *s = &t->shard[i];
	pthread_mutex_lock(&s->lock);
	s->stamp = (s->stamp + 1) & 0xffffff;
	if (s->stamp == 0)
		s->stamp = 1;
}

void rk_rl_table_unlock(rk_rl_table_t *t, size_t i)
{
	pthread_mutex_unlock(&t->shard[i].lock);
}

/* --- LRU list ------------------------------------------------------- */

static void lru_unlink(shard_t *s, uint32_t k)
{
	rk_rl_entry_t *e = &s->e[k - 1];
	if (e->lru_prev != 0)
		s->e[e->lru_prev - 1].lru_next = e->lru_next;
	else
		s->lru_head = e->lru_next;
	if (e->lru_next != 0)
		s->e[e->lru_next - 1].lru_prev = e->lru_prev;
	else
		s->lru_tail = e->lru_prev;
	e->lru_prev = e->lru_next = 0;
}

static void lru_push(shard_t *s, uint32_t k)
{
	rk_rl_entry_t *e = &s->e[k - 1];
	e->lru_prev = 0;
	e->lru_next = s->lru_head;
	if (s->lru_head != 0)
		s->e[s->lru_head - 1].lru_prev = k;
	s->lru_head = k;
	if (s->lru_tail == 0)
		s->lru_tail = k;
}

static void touch(shard_t *s, uint32_t k)
{
	if (s->lru_head != k) {
		lru_unlink(s, k);
		lru_push(s, k);
	}
	s->e[k - 1].stamp = s->stamp;
}

/* --- eviction ------------------------------------------------------- */

/* Removes entry K from its chain, the LRU list and the log budget, and
 * puts it on the free list. */
static void evict(shard_t *s, uint32_t k, uint64_t now_ms)
{
	rk_rl_entry_t *e = &s->e[k - 1];
	uint32_t *link = &s->bucket[e->id.hi & s->mask];
	while (*link != k)
		link = &s->e[*link - 1].next;
	*link = e->next;
	lru_unlink(s, k);
	if (e->expires_ms <= now_ms)
		s->evicted_idle++;
	else
		s->evicted_live++;
	s->log_bytes -=
	    rk_rl_state_heap_bytes(&e->state, (rk_rl_algorithm_t)e->algorithm);
	rk_rl_state_clear(&e->state, (rk_rl_algorithm_t)e->algorithm);
	e->next = s->free_head;
	s->free_head = k;
	s->live--;
}

/* Evicts the least recently used unpinned entry; false if none. */
static bool evict_one(shard_t *s, uint64_t now_ms)
{
	for (uint32_t k = s->lru_tail; k != 0; k = s->e[k - 1].lru_prev) {
		if (s->e[k - 1].stamp != s->stamp) {
			evict(s, k, now_ms);
			return true;
		}
	}
	return false;
}

/* --- operations ----------------------------------------------------- */

rk_rl_entry_t *rk_rl_table_find(rk_rl_table_t *t, size_t i,
                                const rk_rl_id_t *id)
{
	shard_t *s = &t->shard[i];
	for (uint32_t k = s->bucket[id->hi & s->mask]; k != 0;
	     k = s->e[k - 1].next) {
		rk_rl_entry_t *e = &s->e[k - 1];
		if (e->id.lo == id->lo && e->id.hi == id->hi) {
			touch(s, k);
			return e;
		}
	}
	return NULL;
}

rk_rl_entry_t *rk_rl_table_insert(rk_rl_table_t *t, size_t i,
                                  const rk_rl_id_t *id,
                                  rk_rl_algorithm_t algorithm, uint64_t now_ms)
{
	shard_t *s = &t->shard[i];
	uint32_t k;
	if (s->free_head == 0 && s->hwm == s->cap && !evict_one(s, now_ms)) {
		s->insert_failed++;
		return NULL;
	}
	if (s->free_head != 0) {
		k = s->free_head;
		s->free_head = s->e[k - 1].next;
	} else {
		k = ++s->hwm;
	}
	rk_rl_entry_t *e = &s->e[k - 1];
	memset(e, 0, sizeof(*e));
	e->id = *id;
	e->algorithm = algorithm;
	uint32_t *head = &s->bucket[id->hi & s->mask];
	e->next = *head;
	*head = k;
	lru_push(s, k);
	e->stamp = s->stamp;
	s->live++;
	return e;
}

void rk_rl_table_account(rk_rl_table_t *t, size_t i, rk_rl_entry_t *e,
                         size_t before, uint64_t now_ms)
{
	shard_t *s = &t->shard[i];
	size_t after =
	    rk_rl_state_heap_bytes(&e->state, (rk_rl_algorithm_t)e->algorithm);
	s->log_bytes = s->log_bytes + after - before;
	while (s->log_bytes > s->log_budget && evict_one(s, now_ms))
		;
}

void rk_rl_table_stats(rk_rl_table_t *t, rk_rl_table_stats_t *out)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < t->nshards; i++) {
		shard_t *s = &t->shard[i];
		pthread_mutex_lock(&s->lock);
		out->keys += s->live;
		out->log_bytes += s->log_bytes;
		out->evicted_idle += s->evicted_idle;
		out->evicted_live += s->evicted_live;
		out->insert_failed += s->insert_failed;
		pthread_mutex_unlock(&s->lock);
	}
}
