/*
 * Memtable: LevelDB's lock-free-reader skiplist, in C11 atomics.
 *
 * Each node is one arena allocation: the node header, its `height` next
 * pointers, then the entry bytes
 *     varint32 ikey_len, internal key, varint32 value_len, value.
 * Nodes are never removed or changed once linked, and the arena lives as
 * long as the memtable, so a reader that loaded a pointer may follow it
 * for as long as it holds a reference.
 *
 * Invariants: level-0 links form a list sorted by internal key; every
 * list at level i is a sublist of level i-1. The writer links a new node
 * bottom-up, each link published with a release store after the node's
 * own next pointer is set, so a reader (acquire loads) that reaches the
 * node sees it whole. `max_height` only grows; a reader that sees the new
 * height before the head's link at that level reads NULL there and just
 * drops a level, which is harmless.
 */
#include "memtable.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"

#define MAX_HEIGHT 12

typedef struct node node_t;
struct node {
	const uint8_t *entry;     /* encoded entry, after the links */
	_Atomic(node_t *) next[]; /* height links */
};

struct rk_memtable {
	rk_arena_t arena;           /* every node and entry; writer only */
	node_t *head;               /* sentinel with MAX_HEIGHT links */
	atomic_int max_height;      /* tallest node linked so far */
	atomic_size_t bytes;        /* arena bytes, readable by any thread */
	atomic_uint_fast64_t count; /* entries added */
	uint64_t rnd;             /* xorshift state for heights; writer only */
	atomic_int refs;          /* references held */
	node_t *last;             /* node added last, or NULL; writer only */
	node_t *hint[MAX_HEIGHT]; /* its predecessors per level after that
	                             add (the node itself below its height);
	                             writer only */
};

static rk_slice_t entry_ikey(const uint8_t *e)
{
	uint32_t n = 0;
	const uint8_t *p = rk_get_varint32(e, e + 5, &n);
	return rk_slice(p, n);
}

static rk_slice_t entry_value(const uint8_t *e)
{
	rk_slice_t k = entry_ikey(e);
	uint32_t n = 0;
	const uint8_t *p = rk_get_varint32(k.p + k.n, k.p + k.n + 5, &n);
	return rk_slice(p, n);
}

rk_status_t rk_memtable_new(rk_memtable_t **out)
{
	rk_memtable_t *m = calloc(1, sizeof(*m));
	if (m == NULL)
		return RK_RESOURCE_EXHAUSTED;
	rk_arena_init(&m->arena, SIZE_MAX);
	m->head = rk_arena_alloc(&m->arena, sizeof(node_t) +
	                                        MAX_HEIGHT * sizeof(node_t *));
	if (m->head == NULL) {
		free(m);
		return RK_RESOURCE_EXHAUSTED;
	}
	m->head->entry = NULL;
	for (int i = 0; i < MAX_HEIGHT; i++)
		atomic_init(&m->head->next[i], NULL);
	atomic_init(&m->max_height, 1);
	for (int i = 0; i < MAX_HEIGHT; i++)
		m->hint[i] = m->head;
	atomic_init(&m->bytes, m->arena.used);
	atomic_init(&m->count, 0);
	atomic_init(&m->refs, 1);
	m->rnd = 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)m;
	*out = m;
	return RK_OK;
}

void rk_memtable_ref(rk_memtable_t *m)
{
	atomic_fetch_add(&m->refs, 1);
}

void rk_memtable_unref(rk_memtable_t *m)
{
	if (m == NULL || atomic_fetch_sub(&m->refs, 1) != 1)
		return;
	rk_arena_fini(&m->arena);
	free(m);
}

size_t rk_memtable_bytes(const rk_memtable_t *m)
{
	return atomic_load_explicit(&m->bytes, memory_order_relaxed);
}

uint64_t rk_memtable_count(const rk_memtable_t *m)
{
	return atomic_load_explicit(&m->count, memory_order_relaxed);
}

static int random_height(rk_memtable_t *m)
{
	int h = 1;
	while (h < MAX_HEIGHT) {
		m->rnd ^= m->rnd << 13;
		m->rnd ^= m->rnd >> 7;
		m->rnd ^= m->rnd << 17;
		if ((m->rnd & 3) != 0) /* branching factor 4 */
			break;
		h++;
	}
	return h;
}

static node_t *load(node_t *n, int level)
{
	return atomic_load_explicit(&n->next[level], memory_order_acquire);
}

/* Last node with key < *K (every node when K is NULL), or the head if
 * none; fills PREV[level] when PREV is not NULL. */
static node_t *find_before(rk_memtable_t *m, const rk_slice_t *k,
                           node_t **prev)
{
	node_t *x = m->head;
	int level =
	    atomic_load_explicit(&m->max_height, memory_order_relaxed) - 1;
	for (;;) {
		node_t *next = load(x, level);
		if (next != NULL &&
		    (k == NULL || rk_ikey_cmp(entry_ikey(next->entry), *k) < 0)) {
			x = next;
			continue;
		}
		if (prev != NULL)
			prev[level] = x;
		if (level == 0)
			return x;
		level--;
	}
}

/* First node with key >= K; fills PREV[level] when PREV is not NULL. */
static node_t *find_ge(rk_memtable_t *m, rk_slice_t k, node_t **prev)
{
	return load(find_before(m, &k, prev), 0);
}

/* Last node with key < *K (the last node when K is NULL); NULL if none. */
static node_t *find_lt(rk_memtable_t *m, const rk_slice_t *k)
{
	node_t *x = find_before(m, k, NULL);
	return x == m->head ? NULL : x;
}

/* find_ge's PREV for a key K after the last added key: the search starts
 * at each level from the last add's predecessor there (all of which are
 * before K), so ascending inserts (fillseq, a replayed log) cost a couple
 * of comparisons a level instead of a search from the head. */
static void find_prev_hinted(rk_memtable_t *m, rk_slice_t k, node_t **prev)
{
	int level =
	    atomic_load_explicit(&m->max_height, memory_order_relaxed) - 1;
	node_t *x = m->hint[level];
	for (;;) {
		node_t *next = load(x, level);
		if (next != NULL &&
		    rk_ikey_cmp(entry_ikey(next->entry), k) < 0) {
			x = next;
			continue;
		}
		prev[level] = x;
		if (level == 0)
			return;
		level--;
		node_t *h = m->hint[level];
		if (h != m->head &&
		    (x == m->head || rk_ikey_cmp(entry_ikey(h->entry),
		                                 entry_ikey(x->entry)) > 0))
			x = h;
	}
}

rk_status_t rk_memtable_add(rk_memtable_t *m, uint64_t seq, int type,
                            rk_slice_t key, rk_slice_t val)
{
	size_t iklen = key.n + RK_IKEY_TRAILER;
	size_t elen =
	    rk_varint_len(iklen) + iklen + rk_varint_len(val.n) + val.n;
	int h = random_height(m);
	size_t nsize = sizeof(node_t) + (size_t)h * sizeof(node_t *);
	node_t *n = rk_arena_alloc(&m->arena, nsize + elen);
	if (n == NULL)
		return RK_RESOURCE_EXHAUSTED;
	uint8_t *e = (uint8_t *)n + nsize;
	uint8_t *p = rk_put_varint(e, iklen);
	p += rk_ikey_make(p, key.p, key.n, seq, type);
	p = rk_put_varint(p, val.n);
	if (val.n)
		memcpy(p, val.p, val.n);
	n->entry = e;

	node_t *prev[MAX_HEIGHT];
	rk_slice_t ik = entry_ikey(e);
	if (m->last != NULL && rk_ikey_cmp(entry_ikey(m->last->entry), ik) < 0)
		find_prev_hinted(m, ik, prev);
	else
		find_ge(m, ik, prev);
	int maxh = atomic_load_explicit(&m->max_height, memory_order_relaxed);
	if (h > maxh) {
		for (int i = maxh; i < h; i++)
			prev[i] = m->head;
		atomic_store_explicit(&m->max_height, h, memory_order_relaxed);
	}
	for (int i = 0; i < h; i++) {
		atomic_store_explicit(&n->next[i], load(prev[i], i),
		                      memory_order_relaxed);
		atomic_store_explicit(&prev[i]->next[i], n,
		                      memory_order_release);
	}
	int top = h > maxh ? h : maxh;
	for (int i = 0; i < top; i++)
		m->hint[i] = i < h ? n : prev[i];
	m->last = n;
	atomic_store_explicit(&m->bytes, m->arena.used, memory_order_relaxed);
	atomic_fetch_add_explicit(&m->count, 1, memory_order_relaxed);
	return RK_OK;
}

int rk_memtable_get(rk_memtable_t *m, rk_slice_t key, uint64_t seq,
                    rk_slice_t *val)
{
	uint8_t stackbuf[256];
	uint8_t *buf = stackbuf;
	if (key.n + RK_IKEY_TRAILER > sizeof(stackbuf)) {
		buf = malloc(key.n + RK_IKEY_TRAILER);
		if (buf == NULL)
			return 0;
	}
	size_t n = rk_ikey_make(buf, key.p, key.n, seq, RK_TYPE_VALUE);
	node_t *x = find_ge(m, rk_slice(buf, n), NULL);
	if (buf != stackbuf)
		free(buf);
	if (x == NULL)
		return 0;
	rk_slice_t ik = entry_ikey(x->entry);
	rk_slice_t uk = rk_ikey_user(ik);
	if (rk_bytes_cmp(uk.p, uk.n, key.p, key.n) != 0)
		return 0;
	*val = entry_value(x->entry);
	return (int)(rk_ikey_trailer(ik) & 0xff) + 1;
}

typedef struct mem_iter {
	rk_iter_t base;   /* must be first */
	rk_memtable_t *m; /* referenced */
	node_t *cur;      /* NULL when not valid */
} mem_iter_t;

static void mi_seek_first(rk_iter_t *it)
{
	mem_iter_t *i = (mem_iter_t *)it;
	i->cur = load(i->m->head, 0);
}

static void mi_seek(rk_iter_t *it, rk_slice_t k)
{
	mem_iter_t *i = (mem_iter_t *)it;
	i->cur = find_ge(i->m, k, NULL);
}

static void mi_next(rk_iter_t *it)
{
	mem_iter_t *i = (mem_iter_t *)it;
	i->cur = load(i->cur, 0);
}

/* The skiplist links forward only: a step back is a search for the last
 * key below the current one, O(log n) like a seek. */
static void mi_seek_last(rk_iter_t *it)
{
	mem_iter_t *i = (mem_iter_t *)it;
	i->cur = find_lt(i->m, NULL);
}

static void mi_prev(rk_iter_t *it)
{
	mem_iter_t *i = (mem_iter_t *)it;
	rk_slice_t k = entry_ikey(i->cur->entry);
	i->cur = find_lt(i->m, &k);
}

static bool mi_valid(const rk_iter_t *it)
{
	return ((const mem_iter_t *)it)->cur != NULL;
}

static rk_slice_t mi_key(const rk_iter_t *it)
{
	return entry_ikey(((const mem_iter_t *)it)->cur->entry);
}

static rk_slice_t mi_value(const rk_iter_t *it)
{
	return entry_value(((const mem_iter_t *)it)->cur->entry);
}

static rk_status_t mi_status(const rk_iter_t *it)
{
	(void)it;
	return RK_OK;
}

static void mi_free(rk_iter_t *it)
{
	mem_iter_t *i = (mem_iter_t *)it;
	rk_memtable_unref(i->m);
	free(i);
}

static const rk_iter_ops_t mem_ops = {
    .seek_first = mi_seek_first,
    .seek = mi_seek,
    .next = mi_next,
    .seek_last = mi_seek_last,
    .prev = mi_prev,
    .valid = mi_valid,
    .key = mi_key,
    .value = mi_value,
    .status = mi_status,
    .free = mi_free,
};

rk_iter_t *rk_memtable_iter(rk_memtable_t *m)
{
	mem_iter_t *i = malloc(sizeof(*i));
	if (i == NULL)
		return NULL;
	i->base.ops = &mem_ops;
	rk_memtable_ref(m);
	i->m = m;
	i->cur = NULL;
	return &i->base;
}
