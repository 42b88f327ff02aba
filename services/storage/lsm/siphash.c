/*
 * SipHash-1-3 (Aumasson and Bernstein), the reference algorithm with one
 * compression round per 8-byte word and three finalisation rounds: the
 * variant Rust and CPython use for hash tables. The bloom filters of
 * docs/lsm-sstable.md key it with a random secret per table.
 */
#include "siphash.h"

#include <string.h>

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND                                                               \
	do {                                                                   \
		v0 += v1;                                                      \
		v1 = ROTL(v1, 13);                                             \
		v1 ^= v0;                                                      \
		v0 = ROTL(v0, 32);                                             \
		v2 += v3;                                                      \
		v3 = ROTL(v3, 16);                                             \
		v3 ^= v2;                                                      \
		v0 += v3;                                                      \
		v3 = ROTL(v3, 21);                                             \
		v3 ^= v0;                                                      \
		v2 += v1;                                                      \
		v1 = ROTL(v1, 17);                                             \
		v1 ^= v2;                                                      \
		v2 = ROTL(v2, 32);                                             \
	} while (0)

uint64_t rk_siphash13(uint64_t k0, uint64_t k1, const void *data, size_t n)
{
	const uint8_t *p = data;
	uint64_t v0 = UINT64_C(0x736f6d6570736575) ^ k0;
	uint64_t v1 = UINT64_C(0x646f72616e646f6d) ^ k1;
	uint64_t v2 = UINT64_C(0x6c7967656e657261) ^ k0;
	uint64_t v3 = UINT64_C(0x7465646279746573) ^ k1;
	uint64_t b = ((uint64_t)n) << 56;
	const uint8_t *end = p + (n & ~(size_t)7);
	for (; p != end; p += 8) {
		uint64_t m;
		memcpy(&m, p, 8);
		v3 ^= m;
		SIPROUND;
		v0 ^= m;
	}
	switch (n & 7) {
	case 7:
		b |= ((uint64_t)p[6]) << 48; /* fall through */
	case 6:
		b |= ((uint64_t)p[5]) << 40; /* fall through */
	case 5:
		b |= ((uint64_t)p[4]) << 32; /* fall through */
	case 4:
		b |= ((uint64_t)p[3]) << 24; /* fall through */
	case 3:
		b |= ((uint64_t)p[2]) << 16; /* fall through */
	case 2:
		b |= ((uint64_t)p[1]) << 8; /* fall through */
	case 1:
		b |= ((uint64_t)p[0]);
		break;
	case 0:
		break;
	}
	v3 ^= b;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}
