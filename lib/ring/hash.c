/*
 * The ring's hash: SipHash-2-4 (libsodium's crypto_shorthash_siphash24)
 * with the fixed public key RK_RING_HASH_KEY, its 8-byte output read as a
 * little-endian 64-bit number. docs/ring.md gives test vectors.
 *
 * The key is public on purpose: every process, clients included, must put
 * a key on the same token. SipHash still mixes far better than the
 * multiplicative hashes, so tokens and keys spread evenly.
 */
#include "ring/ring.h"

#include <sodium.h>
#include <string.h>

_Static_assert(crypto_shorthash_siphash24_KEYBYTES == 16,
               "the ring key is 16 bytes");

static uint64_t ring_hash(const uint8_t *in, size_t len)
{
	uint8_t out[crypto_shorthash_siphash24_BYTES];
	crypto_shorthash_siphash24(out, in, len,
	                           (const uint8_t *)RK_RING_HASH_KEY);
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | out[i];
	return v;
}

uint64_t rk_ring_node_token(const uint8_t id[RK_RING_ID_BYTES], uint32_t i)
{
	uint8_t msg[RK_RING_ID_BYTES + 4];
	memcpy(msg, id, RK_RING_ID_BYTES);
	for (int b = 0; b < 4; b++)
		msg[RK_RING_ID_BYTES + b] = (uint8_t)(i >> (8 * b));
	return ring_hash(msg, sizeof(msg));
}

uint64_t rk_ring_key_token(const void *key, size_t len)
{
	return ring_hash(key, len);
}
