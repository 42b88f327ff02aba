/*
 * The ring's hash: SipHash-2-4 (Aumasson and Bernstein, 2012) with the
 * fixed public key RK_RING_HASH_KEY, output read as a little-endian 64-bit
 * number. It is the same function as libsodium's crypto_shorthash_siphash24
 * (the unit test checks that they agree), written out here so that every
 * user of lib/ring, the client library included, places keys without
 * depending on libsodium or its initialisation.
 *
 * The key is public on purpose: every process, clients included, must put
 * a key on the same token. SipHash still mixes far better than the
 * multiplicative hashes, so tokens and keys spread evenly.
 */
#include "ring/ring.h"

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

static uint64_t load_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t siphash24(const uint8_t key[16], const uint8_t *in, size_t len)
{
	uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
	uint64_t v0 = 0x736f6d6570736575ULL ^ k0;
	uint64_t v1 = 0x646f72616e646f6dULL ^ k1;
	uint64_t v2 = 0x6c7967656e657261ULL ^ k0;
	uint64_t v3 = 0x7465646279746573ULL ^ k1;
	size_t whole = len - len % 8;
	for (size_t i = 0; i < whole; i += 8) {
		uint64_t m = load_le64(in + i);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	uint64_t b = (uint64_t)len << 56;
	for (size_t i = 0; i < len % 8; i++)
		b |= (uint64_t)in[whole + i] << (8 * i);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

static const uint8_t *ring_key(void)
{
	return (const uint8_t *)RK_RING_HASH_KEY;
}

uint64_t rk_ring_node_token(const uint8_t id[RK_RING_ID_BYTES], uint32_t i)
{
	uint8_t msg[RK_RING_ID_BYTES + 4];
	memcpy(msg, id, RK_RING_ID_BYTES);
	for (int b = 0; b < 4; b++)
		msg[RK_RING_ID_BYTES + b] = (uint8_t)(i >> (8 * b));
	return siphash24(ring_key(), msg, sizeof(msg));
}

uint64_t rk_ring_key_token(const void *key, size_t len)
{
	return siphash24(ring_key(), key, len);
}
