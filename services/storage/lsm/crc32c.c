/*
 * CRC32C, the checksum of every LSM file (docs/lsm-commit-log.md).
 *
 * Two implementations with one answer: the x86 SSE4.2 `crc32` instruction,
 * 8 bytes a step (about 20x the table), chosen once at first use by
 * __builtin_cpu_supports, and a byte-at-a-time table for other CPUs.
 * The instruction has a latency of 3 cycles and a throughput of 1, so
 * buffers of 768 bytes and more (every data block) are cut into three
 * interleaved streams whose CRCs are combined by applying "shift by N zero
 * bytes" operators kept as tables (Mark Adler's method, crc32c.c on Stack
 * Overflow 17645167): about 3x on a 4 KiB block. We do
 * not take zlib's crc32: it is the IEEE polynomial, which has no
 * instruction, and the engine depends only on lib/core and liblz4.
 */
#include "crc32c.h"

#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "the LSM formats are little-endian and coded for LE hosts");

static uint32_t table[256];
static atomic_int impl; /* 0 unknown, 1 table, 2 sse4.2 */

static void table_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
		table[i] = c;
	}
}

static uint32_t crc_table(uint32_t crc, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
	return crc;
}

#if defined(__x86_64__)
#define LONG_RUN  8192
#define SHORT_RUN 256

static uint32_t zeros_long[4][256];  /* shift by LONG_RUN zero bytes */
static uint32_t zeros_short[4][256]; /* shift by SHORT_RUN zero bytes */

/* MAT (32 columns) times VEC over GF(2). */
static uint32_t gf2_times(const uint32_t *mat, uint32_t vec)
{
	uint32_t sum = 0;
	for (; vec; vec >>= 1, mat++)
		if (vec & 1)
			sum ^= *mat;
	return sum;
}

static void gf2_square(uint32_t *sq, const uint32_t *mat)
{
	for (int n = 0; n < 32; n++)
		sq[n] = gf2_times(mat, mat[n]);
}

/* ZEROS as byte-wise tables of the operator that feeds LEN zero bytes
 * through the CRC register. */
static void zeros_init(uint32_t zeros[4][256], size_t len)
{
	uint32_t even[32], odd[32], row = 1;
	odd[0] = 0x82f63b78u; /* one zero bit */
	for (int n = 1; n < 32; n++, row <<= 1)
		odd[n] = row;
	gf2_square(even, odd); /* 2 zero bits */
	gf2_square(odd, even); /* 4 zero bits */
	const uint32_t *op = odd;
	do { /* 8 zero bits (a byte) first, then doubling */
		gf2_square(even, odd);
		op = even;
		len >>= 1;
		if (len == 0)
			break;
		gf2_square(odd, even);
		op = odd;
		len >>= 1;
	} while (len);
	for (uint32_t n = 0; n < 256; n++)
		for (int k = 0; k < 4; k++)
			zeros[k][n] = gf2_times(op, n << (8 * k));
}

static uint32_t shift(uint32_t zeros[4][256], uint32_t crc)
{
	return zeros[0][crc & 0xff] ^ zeros[1][(crc >> 8) & 0xff] ^
	       zeros[2][(crc >> 16) & 0xff] ^ zeros[3][crc >> 24];
}

static uint64_t load64(const uint8_t *p)
{
	uint64_t w;
	memcpy(&w, p, 8);
	return w;
}

/* Three streams of RUN bytes at a time while N >= 3 RUN. */
__attribute__((target("sse4.2"))) static uint64_t
crc_3way(uint64_t c0, const uint8_t **pp, size_t *np, size_t run,
         uint32_t zeros[4][256])
{
	const uint8_t *p = *pp;
	size_t n = *np;
	while (n >= 3 * run) {
		uint64_t c1 = 0, c2 = 0;
		const uint8_t *end = p + run;
		do {
			c0 = _mm_crc32_u64(c0, load64(p));
			c1 = _mm_crc32_u64(c1, load64(p + run));
			c2 = _mm_crc32_u64(c2, load64(p + 2 * run));
			p += 8;
		} while (p < end);
		c0 = shift(zeros, (uint32_t)c0) ^ (uint32_t)c1;
		c0 = shift(zeros, (uint32_t)c0) ^ (uint32_t)c2;
		p += 2 * run;
		n -= 3 * run;
	}
	*pp = p;
	*np = n;
	return c0;
}

__attribute__((target("sse4.2"))) static uint32_t
crc_sse42(uint32_t crc, const uint8_t *p, size_t n)
{
	uint64_t c = crc;
	if (n >= 3 * SHORT_RUN) {
		c = crc_3way(c, &p, &n, LONG_RUN, zeros_long);
		c = crc_3way(c, &p, &n, SHORT_RUN, zeros_short);
	}
	while (n >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		c = _mm_crc32_u64(c, w);
		p += 8;
		n -= 8;
	}
	uint32_t c32 = (uint32_t)c;
	while (n-- > 0)
		c32 = _mm_crc32_u8(c32, *p++);
	return c32;
}
#endif

static int pick(void)
{
	int i = atomic_load_explicit(&impl, memory_order_acquire);
	if (i != 0)
		return i;
	table_init();
	i = 1;
#if defined(__x86_64__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("sse4.2")) {
		zeros_init(zeros_long, LONG_RUN);
		zeros_init(zeros_short, SHORT_RUN);
		i = 2;
	}
#endif
	atomic_store_explicit(&impl, i, memory_order_release);
	return i;
}

uint32_t rk_crc32c_extend(uint32_t crc, const void *p, size_t n)
{
	uint32_t c = ~crc;
#if defined(__x86_64__)
	if (pick() == 2)
		return ~crc_sse42(c, p, n);
#else
	pick();
#endif
	return ~crc_table(c, p, n);
}
