/*
 * Write batches: the payload of one commit-log record
 * (docs/lsm-commit-log.md, "Write batch"). A batch is built in its final
 * on-disk form so the write path appends it without re-encoding; the
 * sequence field is filled in by the writer that commits it.
 */
#ifndef RK_LSM_BATCH_H
#define RK_LSM_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include <ringkv/status.h>

#include "coding.h"

#define RK_BATCH_HEADER 12

struct rk_lsm_batch {
	uint8_t *buf;        /* header (seq u64, count u32) then the ops */
	size_t len;          /* bytes of buf in use */
	size_t cap;          /* bytes allocated */
	uint32_t count;      /* operations, mirrored in the header */
	uint64_t user_bytes; /* keys + values, for write amplification */
};

/* Called once per operation of a decoded batch, with its sequence number;
 * a non-OK status stops the walk and is returned. */
typedef rk_status_t (*rk_batch_op_fn)(void *arg, uint64_t seq, int type,
                                      rk_slice_t key, rk_slice_t val);

/* Walks the batch payload P[0..N) (from disk or memory), checking its
 * structure: RK_DATA_LOSS if it does not decode exactly. */
rk_status_t rk_batch_walk(const uint8_t *p, size_t n, rk_batch_op_fn fn,
                          void *arg);

static inline uint64_t rk_batch_seq(const uint8_t *p)
{
	return rk_get_u64(p);
}

static inline uint32_t rk_batch_count(const uint8_t *p)
{
	return rk_get_u32(p + 8);
}

#endif
