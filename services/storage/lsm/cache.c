/*
 * Block cache (see cache.h).
 *
 * Sixteen shards, picked by a hash of the key, each with its own mutex, a
 * chained hash table and an LRU list (head = most recent). Each entry holds
 * one reference to its block; lookups hand out another, so a block evicted
 * while an iterator reads it lives until the iterator lets go. The charge
 * of a block is its size plus the entry overhead; a shard evicts from the
 * LRU tail until it is back under capacity/16.
 */
#include "cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#define SHARDS   16
#define OVERHEAD 64

typedef struct entry entry_t;
struct entry {
	uint64_t table;    /* key: table file number */
	uint64_t off;      /* key: block offset */
	rk_block_t *block; /* referenced */
	size_t charge;     /* bytes counted against the shard */
	entry_t *hnext;    /* hash chain */
	entry_t *prev;     /* LRU, towards the head */
	entry_t *next;     /* LRU, towards the tail */
};

typedef struct shard {
	pthread_mutex_t mu; /* guards the shard */
	entry_t **buckets;  /* hash table */
	size_t nbuckets;    /* power of two */
	size_t count;       /* entries */
	size_t used;        /* bytes charged */
	size_t capacity;    /* byte bound */
	entry_t lru;        /* sentinel: lru.next is the most recent */
} shard_t;

struct rk_cache {
	shard_t shards[SHARDS];      /* the shards */
	atomic_uint_fast64_t hits;   /* lookups that found a block */
	atomic_uint_fast64_t misses; /* lookups that did not */
};

static uint64_t mix(uint64_t table, uint64_t off)
{
	uint64_t h = table * 0x9e3779b97f4a7c15ull ^ off;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

rk_status_t rk_cache_new(size_t capacity, rk_cache_t **out)
{
	rk_cache_t *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return RK_RESOURCE_EXHAUSTED;
	for (int i = 0; i < SHARDS; i++) {
		shard_t *s = &c->shards[i];
		pthread_mutex_init(&s->mu, NULL);
		s->capacity = capacity / SHARDS;
		s->nbuckets = 256;
		s->buckets = calloc(s->nbuckets, sizeof(entry_t *));
		if (s->buckets == NULL) {
			rk_cache_free(c);
			return RK_RESOURCE_EXHAUSTED;
		}
		s->lru.next = s->lru.prev = &s->lru;
	}
	*out = c;
	return RK_OK;
}

void rk_cache_free(rk_cache_t *c)
{
	if (c == NULL)
		return;
	for (int i = 0; i < SHARDS; i++) {
		shard_t *s = &c->shards[i];
		if (s->buckets != NULL) {
			entry_t *e = s->lru.next;
			while (e != &s->lru) {
				entry_t *n = e->next;
				rk_block_unref(e->block);
				free(e);
				e = n;
			}
		}
		free(s->buckets);
		pthread_mutex_destroy(&s->mu);
	}
	free(c);
}

static void lru_unlink(entry_t *e)
{
	e->prev->next = e->next;
	e->next->prev = e->prev;
}

static void lru_push(shard_t *s, entry_t *e)
{
	e->next = s->lru.next;
	e->prev = &s->lru;
	s->lru.next->prev = e;
	s->lru.next = e;
}

static entry_t **find(shard_t *s, uint64_t h, uint64_t table, uint64_t off)
{
	entry_t **pp = &s->buckets[(h >> 4) & (s->nbuckets - 1)];
	while (*pp != NULL && ((*pp)->table != table || (*pp)->off != off))
		pp = &(*pp)->hnext;
	return pp;
}

rk_block_t *rk_cache_lookup(rk_cache_t *c, uint64_t table, uint64_t off)
{
	uint64_t h = mix(table, off);
	shard_t *s = &c->shards[h % SHARDS];
	pthread_mutex_lock(&s->mu);
	entry_t *e = *find(s, h, table, off);
	rk_block_t *b = NULL;
	if (e != NULL) {
		lru_unlink(e);
		lru_push(s, e);
		b = e->block;
		rk_block_ref(b);
	}
	pthread_mutex_unlock(&s->mu);
	atomic_fetch_add_explicit(b ? &c->hits : &c->misses, 1,
	                          memory_order_relaxed);
	return b;
}

static void remove_entry(shard_t *s, entry_t *e)
{
	entry_t **pp = find(s, mix(e->table, e->off), e->table, e->off);
	*pp = e->hnext;
	lru_unlink(e);
	s->used -= e->charge;
	s->count--;
	rk_block_unref(e->block);
	free(e);
}

static void rehash(shard_t *s)
{
	size_t nb = s->nbuckets * 2;
	entry_t **b = calloc(nb, sizeof(entry_t *));
	if (b == NULL)
		return; /* longer chains, still correct */
	for (entry_t *e = s->lru.next; e != &s->lru; e = e->next) {
		size_t i = (mix(e->table, e->off) >> 4) & (nb - 1);
		e->hnext = b[i];
		b[i] = e;
	}
	free(s->buckets);
	s->buckets = b;
	s->nbuckets = nb;
}

void rk_cache_insert(rk_cache_t *c, uint64_t table, uint64_t off, rk_block_t *b)
{
	uint64_t h = mix(table, off);
	shard_t *s = &c->shards[h % SHARDS];
	size_t charge = b->size + OVERHEAD;
	if (charge > s->capacity)
		return;
	entry_t *e = malloc(sizeof(*e));
	if (e == NULL)
		return;
	pthread_mutex_lock(&s->mu);
	entry_t **pp = find(s, h, table, off);
	if (*pp != NULL) { /* raced with another reader: keep the first */
		pthread_mutex_unlock(&s->mu);
		free(e);
		return;
	}
	rk_block_ref(b);
	e->table = table;
	e->off = off;
	e->block = b;
	e->charge = charge;
	e->hnext = NULL;
	*pp = e;
	lru_push(s, e);
	s->used += charge;
	s->count++;
	while (s->used > s->capacity && s->lru.prev != &s->lru)
		remove_entry(s, s->lru.prev);
	if (s->count > s->nbuckets)
		rehash(s);
	pthread_mutex_unlock(&s->mu);
}

void rk_cache_counters(rk_cache_t *c, uint64_t *hits, uint64_t *misses,
                       uint64_t *bytes)
{
	*hits = atomic_load(&c->hits);
	*misses = atomic_load(&c->misses);
	uint64_t total = 0;
	for (int i = 0; i < SHARDS; i++) {
		pthread_mutex_lock(&c->shards[i].mu);
		total += c->shards[i].used;
		pthread_mutex_unlock(&c->shards[i].mu);
	}
	*bytes = total;
}
