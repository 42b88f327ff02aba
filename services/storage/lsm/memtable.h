/*
 * The memtable: a skiplist of internal keys in an arena. One writer at a
 * time (the database's write leader, or recovery), any number of readers
 * at once without a lock. Reference counted: the database, every reader
 * and every iterator hold a reference while they use it.
 */
#ifndef RK_LSM_MEMTABLE_H
#define RK_LSM_MEMTABLE_H

#include <stddef.h>
#include <stdint.h>

#include <ringkv/status.h>

#include "coding.h"
#include "iter.h"

typedef struct rk_memtable rk_memtable_t;

/* A new empty memtable with one reference. */
rk_status_t rk_memtable_new(rk_memtable_t **out);
void rk_memtable_ref(rk_memtable_t *m);
/* Frees the memtable when the last reference goes. Safe with NULL. */
void rk_memtable_unref(rk_memtable_t *m);

/* Adds one entry (copied). Single writer. RK_RESOURCE_EXHAUSTED if out of
 * memory. */
rk_status_t rk_memtable_add(rk_memtable_t *m, uint64_t seq, int type,
                            rk_slice_t key, rk_slice_t val);

/* Bytes held (keys, values and skiplist nodes). */
size_t rk_memtable_bytes(const rk_memtable_t *m);
/* Entries added. */
uint64_t rk_memtable_count(const rk_memtable_t *m);

/* Looks KEY up as of sequence SEQ: 0 if the memtable says nothing about
 * it, RK_TYPE_VALUE + 1 with *VAL set (borrowed while the memtable is
 * referenced), or RK_TYPE_DELETE + 1 for a tombstone. */
int rk_memtable_get(rk_memtable_t *m, rk_slice_t key, uint64_t seq,
                    rk_slice_t *val);

/* An iterator that holds a reference to M. NULL if out of memory. */
rk_iter_t *rk_memtable_iter(rk_memtable_t *m);

#endif
