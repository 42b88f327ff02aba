/*
 * Bounded arena; see arena.h.
 *
 * Chunks form a list, newest first. A chunk is at least RK_ARENA_CHUNK
 * bytes; a larger request gets a chunk of its own size. Reset frees every
 * chunk but the oldest (the first one made, normally the common size), so
 * an arena reused for request after request settles at one chunk and no
 * malloc per request.
 */
#include "arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define RK_ARENA_CHUNK 8192
#define RK_ARENA_ALIGN 16

struct rk_arena_chunk {
	rk_arena_chunk_t *next; /* older chunk */
	size_t size;            /* bytes in data[] */
	size_t off;             /* bytes of data[] in use */
	_Alignas(RK_ARENA_ALIGN) unsigned char data[];
};

void rk_arena_init(rk_arena_t *a, size_t cap)
{
	a->head = NULL;
	a->cap = cap;
	a->used = 0;
}

static size_t align_up(size_t n)
{
	return (n + RK_ARENA_ALIGN - 1) & ~(size_t)(RK_ARENA_ALIGN - 1);
}

void *rk_arena_alloc(rk_arena_t *a, size_t n)
{
	if (n == 0)
		n = 1;
	if (n > a->cap || a->used > a->cap - n)
		return NULL;
	size_t need = align_up(n);
	rk_arena_chunk_t *c = a->head;
	if (c == NULL || c->size - c->off < need) {
		size_t size = need > RK_ARENA_CHUNK ? need : RK_ARENA_CHUNK;
		c = malloc(sizeof(*c) + size);
		if (c == NULL)
			return NULL;
		c->size = size;
		c->off = 0;
		c->next = a->head;
		a->head = c;
	}
	void *p = c->data + c->off;
	c->off += need;
	a->used += n;
	return p;
}

void *rk_arena_dup(rk_arena_t *a, const void *p, size_t n)
{
	void *q = rk_arena_alloc(a, n);
	if (q != NULL && n > 0)
		memcpy(q, p, n);
	return q;
}

void rk_arena_reset(rk_arena_t *a)
{
	rk_arena_chunk_t *c = a->head;
	while (c != NULL && c->next != NULL) {
		rk_arena_chunk_t *next = c->next;
		free(c);
		c = next;
	}
	a->head = c;
	if (c != NULL)
		c->off = 0;
	a->used = 0;
}

void rk_arena_fini(rk_arena_t *a)
{
	rk_arena_reset(a);
	free(a->head);
	a->head = NULL;
}
