/*
 * Internal iterators over internal keys (docs/lsm-commit-log.md, "internal
 * key"), forward and backward. Memtables, blocks, tables, levels and the merge of
 * all of them share this interface; the user-facing iterator (db_iter.c)
 * sits on top and hides sequence numbers and tombstones.
 *
 * Keys and values returned are borrowed until the next move or free.
 */
#ifndef RK_LSM_ITER_H
#define RK_LSM_ITER_H

#include <stdbool.h>

#include <ringkv/status.h>

#include "coding.h"

typedef struct rk_iter rk_iter_t;

typedef struct rk_iter_ops {
	void (*seek_first)(rk_iter_t *it);
	void (*seek)(rk_iter_t *it, rk_slice_t ikey); /* first key >= ikey */
	void (*next)(rk_iter_t *it);                  /* only when valid */
	void (*seek_last)(rk_iter_t *it);
	void (*prev)(rk_iter_t *it); /* only when valid */
	bool (*valid)(const rk_iter_t *it);
	rk_slice_t (*key)(const rk_iter_t *it); /* internal key */
	rk_slice_t (*value)(const rk_iter_t *it);
	rk_status_t (*status)(const rk_iter_t *it); /* first error seen */
	void (*free)(rk_iter_t *it);
} rk_iter_ops_t;

struct rk_iter {
	const rk_iter_ops_t *ops; /* the implementation */
};

static inline void rk_iter_seek_first(rk_iter_t *it)
{
	it->ops->seek_first(it);
}
static inline void rk_iter_seek(rk_iter_t *it, rk_slice_t k)
{
	it->ops->seek(it, k);
}
static inline void rk_iter_next(rk_iter_t *it)
{
	it->ops->next(it);
}
static inline void rk_iter_seek_last(rk_iter_t *it)
{
	it->ops->seek_last(it);
}
static inline void rk_iter_prev(rk_iter_t *it)
{
	it->ops->prev(it);
}
static inline bool rk_iter_valid(const rk_iter_t *it)
{
	return it->ops->valid(it);
}
static inline rk_slice_t rk_iter_key(const rk_iter_t *it)
{
	return it->ops->key(it);
}
static inline rk_slice_t rk_iter_value(const rk_iter_t *it)
{
	return it->ops->value(it);
}
static inline rk_status_t rk_iter_status(const rk_iter_t *it)
{
	return it->ops->status(it);
}
static inline void rk_iter_free(rk_iter_t *it)
{
	if (it != NULL)
		it->ops->free(it);
}

/* An iterator with nothing in it that reports ST. NULL only if out of
 * memory. Caller frees with rk_iter_free(). */
rk_iter_t *rk_iter_empty(rk_status_t st);

/* The merge of N children in internal-key order. Takes ownership of the
 * array's iterators (not of the array). NULL if out of memory (the children
 * are then freed). */
rk_iter_t *rk_iter_merging(rk_iter_t **children, size_t n);

#endif
