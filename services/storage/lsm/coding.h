/*
 * Byte encodings shared by every LSM file format: little-endian fixed-width
 * integers, LEB128 varints, byte slices and internal keys. The formats are
 * documented in docs/lsm-commit-log.md ("Conventions").
 *
 * Decoders take an explicit end pointer and return NULL when the input runs
 * out or is malformed: everything read from disk goes through them.
 */
#ifndef RK_LSM_CODING_H
#define RK_LSM_CODING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A borrowed run of bytes; the owner says how long it lives. */
typedef struct rk_slice {
	const uint8_t *p; /* first byte (may be NULL when n == 0) */
	size_t n;         /* length */
} rk_slice_t;

#define RK_IKEY_TRAILER 8
#define RK_TYPE_DELETE  0
#define RK_TYPE_VALUE   1
#define RK_SEQ_MAX      ((UINT64_C(1) << 56) - 1)

static inline rk_slice_t rk_slice(const void *p, size_t n)
{
	rk_slice_t s = {(const uint8_t *)p, n};
	return s;
}

static inline void rk_put_u32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4); /* little-endian hosts only; checked in crc32c.c */
}

static inline void rk_put_u64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static inline uint32_t rk_get_u32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static inline uint64_t rk_get_u64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

/* Writes V as a varint at P (room for 10 bytes); returns the byte after. */
static inline uint8_t *rk_put_varint(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

static inline size_t rk_varint_len(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/* Reads a varint of at most MAXBYTES bytes (5 or 10) from [P, END). */
static inline const uint8_t *rk_get_varint(const uint8_t *p, const uint8_t *end,
                                           uint64_t *v, int maxbytes)
{
	uint64_t r = 0;
	for (int i = 0; i < maxbytes && p < end; i++) {
		uint64_t b = *p++;
		r |= (b & 0x7f) << (7 * i);
		if ((b & 0x80) == 0) {
			if (maxbytes == 5 && r > UINT32_MAX)
				return NULL;
			*v = r;
			return p;
		}
	}
	return NULL;
}

static inline const uint8_t *rk_get_varint32(const uint8_t *p,
                                             const uint8_t *end, uint32_t *v)
{
	uint64_t r;
	p = rk_get_varint(p, end, &r, 5);
	if (p != NULL)
		*v = (uint32_t)r;
	return p;
}

/* Bytewise comparison, a proper prefix first; the sign is what counts.
 * Keys up to 32 bytes (the usual case) are compared inline, 8 bytes at a
 * time as big-endian words: a call into the C library's memcmp was a
 * seventh of a scan's time. Longer keys go to memcmp, faster there. */
static inline int rk_bytes_cmp(const uint8_t *a, size_t an, const uint8_t *b,
                               size_t bn)
{
	size_t n = an < bn ? an : bn;
	if (n > 32) {
		int c = memcmp(a, b, n);
		if (c != 0)
			return c;
	} else {
		size_t i = 0;
		for (; i + 8 <= n; i += 8) {
			uint64_t x, y;
			memcpy(&x, a + i, 8);
			memcpy(&y, b + i, 8);
			if (x != y) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
				x = __builtin_bswap64(x);
				y = __builtin_bswap64(y);
#endif
				return x < y ? -1 : 1;
			}
		}
		for (; i < n; i++)
			if (a[i] != b[i])
				return a[i] < b[i] ? -1 : 1;
	}
	return an < bn ? -1 : an > bn ? 1 : 0;
}

static inline uint64_t rk_ikey_trailer(rk_slice_t ik)
{
	return rk_get_u64(ik.p + ik.n - RK_IKEY_TRAILER);
}

static inline rk_slice_t rk_ikey_user(rk_slice_t ik)
{
	return rk_slice(ik.p, ik.n - RK_IKEY_TRAILER);
}

/* Internal-key order: user key ascending, then trailer descending. Both
 * keys must be at least RK_IKEY_TRAILER bytes (callers check disk input). */
static inline int rk_ikey_cmp(rk_slice_t a, rk_slice_t b)
{
	int c = rk_bytes_cmp(a.p, a.n - RK_IKEY_TRAILER, b.p,
	                     b.n - RK_IKEY_TRAILER);
	if (c != 0)
		return c;
	uint64_t ta = rk_ikey_trailer(a), tb = rk_ikey_trailer(b);
	return ta > tb ? -1 : ta < tb ? 1 : 0;
}

/* Writes KEY ‖ trailer(SEQ, TYPE) to OUT (room for n + 8). */
static inline size_t rk_ikey_make(uint8_t *out, const void *key, size_t n,
                                  uint64_t seq, int type)
{
	if (n)
		memcpy(out, key, n);
	rk_put_u64(out + n, (seq << 8) | (uint64_t)type);
	return n + RK_IKEY_TRAILER;
}

#endif
