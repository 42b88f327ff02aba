/*
 * A bounded arena: many small allocations freed together, with a hard cap
 * on the bytes it will hand out.
 *
 * The RPC layer unpacks every message from the network into an arena: one
 * request's envelope, body and reply all live in it and go in one reset.
 * The cap is what makes unpacking safe against a frame crafted to make the
 * decoder allocate far more than its size: past the cap, allocation fails
 * and the decoder reports a malformed message.
 *
 * Memory comes in chunks; the first chunk is kept across resets so a
 * steady-state request costs no malloc. Not thread-safe: an arena belongs
 * to one request (or one result) at a time.
 */
#ifndef RK_ARENA_H
#define RK_ARENA_H

#include <stddef.h>

typedef struct rk_arena_chunk rk_arena_chunk_t;

typedef struct rk_arena {
	rk_arena_chunk_t *head; /* newest chunk first; the last is kept */
	size_t cap;             /* most bytes alloc will hand out in all */
	size_t used;            /* bytes handed out since the last reset */
} rk_arena_t;

/* Starts an empty arena that hands out at most CAP bytes. */
void rk_arena_init(rk_arena_t *a, size_t cap);

/* N bytes aligned for any type, or NULL past the cap or out of memory.
 * The memory lives until the next reset or fini. */
void *rk_arena_alloc(rk_arena_t *a, size_t n);

/* A copy of N bytes at P, or NULL as for rk_arena_alloc. */
void *rk_arena_dup(rk_arena_t *a, const void *p, size_t n);

/* Frees everything handed out; keeps one chunk for reuse. */
void rk_arena_reset(rk_arena_t *a);

/* Frees everything. The arena may be initialised again. */
void rk_arena_fini(rk_arena_t *a);

#endif
