/*
 * Write batches (see batch.h and docs/lsm-commit-log.md). The buffer grows
 * by doubling; each put or delete appends one operation and bumps the
 * count in the header, so the buffer is always a valid payload.
 */
#include "batch.h"

#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "lsm.h"

rk_status_t rk_lsm_batch_new(rk_lsm_batch_t **out)
{
	rk_lsm_batch_t *b = calloc(1, sizeof(*b));
	if (b == NULL)
		return RK_RESOURCE_EXHAUSTED;
	b->cap = 256;
	b->buf = malloc(b->cap);
	if (b->buf == NULL) {
		free(b);
		return RK_RESOURCE_EXHAUSTED;
	}
	rk_lsm_batch_clear(b);
	*out = b;
	return RK_OK;
}

void rk_lsm_batch_clear(rk_lsm_batch_t *b)
{
	memset(b->buf, 0, RK_BATCH_HEADER);
	b->len = RK_BATCH_HEADER;
	b->count = 0;
	b->user_bytes = 0;
}

void rk_lsm_batch_free(rk_lsm_batch_t *b)
{
	if (b == NULL)
		return;
	free(b->buf);
	free(b);
}

static rk_status_t add(rk_lsm_batch_t *b, int type, const void *key,
                       size_t klen, const void *val, size_t vlen)
{
	if (klen > 65535 || vlen > (1u << 29) || (key == NULL && klen) ||
	    (val == NULL && vlen))
		return RK_INVALID_ARGUMENT;
	if (b->len + klen + vlen > (1u << 30) - 64)
		return RK_INVALID_ARGUMENT; /* one log record at most 2^30 */
	size_t need = b->len + 1 + 5 + klen + 5 + vlen;
	if (need > b->cap) {
		size_t cap = b->cap * 2;
		while (cap < need)
			cap *= 2;
		uint8_t *nb = realloc(b->buf, cap);
		if (nb == NULL)
			return RK_RESOURCE_EXHAUSTED;
		b->buf = nb;
		b->cap = cap;
	}
	uint8_t *p = b->buf + b->len;
	*p++ = (uint8_t)type;
	p = rk_put_varint(p, klen);
	if (klen)
		memcpy(p, key, klen);
	p += klen;
	p = rk_put_varint(p, vlen);
	if (vlen)
		memcpy(p, val, vlen);
	p += vlen;
	b->len = (size_t)(p - b->buf);
	b->count++;
	rk_put_u32(b->buf + 8, b->count);
	b->user_bytes += klen + (type == RK_TYPE_VALUE ? vlen : 0);
	return RK_OK;
}

rk_status_t rk_lsm_batch_put(rk_lsm_batch_t *b, const void *key, size_t klen,
                             const void *val, size_t vlen)
{
	return add(b, RK_TYPE_VALUE, key, klen, val, vlen);
}

rk_status_t rk_lsm_batch_delete(rk_lsm_batch_t *b, const void *key, size_t klen)
{
	uint8_t ts[8];
	rk_put_u64(ts, rk_clock_unix_ms());
	return add(b, RK_TYPE_DELETE, key, klen, ts, sizeof(ts));
}

rk_status_t rk_batch_walk(const uint8_t *p, size_t n, rk_batch_op_fn fn,
                          void *arg)
{
	if (n < RK_BATCH_HEADER)
		return RK_DATA_LOSS;
	uint64_t seq = rk_batch_seq(p);
	uint32_t count = rk_batch_count(p);
	const uint8_t *q = p + RK_BATCH_HEADER, *end = p + n;
	if (count == 0 || seq > RK_SEQ_MAX || count > RK_SEQ_MAX - seq)
		return RK_DATA_LOSS;
	for (uint32_t i = 0; i < count; i++) {
		if (q >= end)
			return RK_DATA_LOSS;
		int type = *q++;
		uint32_t klen, vlen;
		if (type != RK_TYPE_VALUE && type != RK_TYPE_DELETE)
			return RK_DATA_LOSS;
		q = rk_get_varint32(q, end, &klen);
		if (q == NULL || klen > 65535 || (size_t)(end - q) < klen)
			return RK_DATA_LOSS;
		rk_slice_t key = rk_slice(q, klen);
		q += klen;
		q = rk_get_varint32(q, end, &vlen);
		if (q == NULL || (size_t)(end - q) < vlen)
			return RK_DATA_LOSS;
		if (type == RK_TYPE_DELETE && vlen != 8)
			return RK_DATA_LOSS;
		rk_slice_t val = rk_slice(q, vlen);
		q += vlen;
		rk_status_t st = fn(arg, seq + i, type, key, val);
		if (st != RK_OK)
			return st;
	}
	return q == end ? RK_OK : RK_DATA_LOSS;
}
