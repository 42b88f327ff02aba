/*
 * CRC32C, the checksum of every LSM file (docs/lsm-commit-log.md).
 *
 * Two implementations with one answer: the x86 SSE4.2 `crc32` instruction,
 * 8 bytes a step (about 20x the table), chosen once at first use by
 * __builtin_cpu_supports, and a byte-at-a-time table for other CPUs. We do
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
__attribute__((target("sse4.2"))) static uint32_t
crc_sse42(uint32_t crc, const uint8_t *p, size_t n)
{
	uint64_t c = crc;
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
	if (__builtin_cpu_supports("sse4.2"))
		i = 2;
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
