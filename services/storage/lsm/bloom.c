/*
 * Bloom filters (docs/lsm-sstable.md, "Filter block").
 *
 * The builder keeps one 64-bit SipHash-1-3 value per distinct user key
 * (keys arrive sorted, so duplicates are adjacent and skipped by
 * comparing with the previous hash) and sets the bits at the end, once
 * the key count and so the filter size are known. Probes use double
 * hashing: a + j*b over the two halves of the hash.
 */
#include "bloom.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "siphash.h"

rk_status_t rk_bloom_builder_init(rk_bloom_builder_t *b, int bits_per_key)
{
	memset(b, 0, sizeof(*b));
	b->bits_per_key = bits_per_key < 1 ? 1 : bits_per_key;
	uint64_t key[2];
	size_t got = 0;
	while (got < sizeof(key)) {
		ssize_t r =
		    getrandom((uint8_t *)key + got, sizeof(key) - got, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return RK_INTERNAL;
		got += (size_t)r;
	}
	b->k0 = key[0];
	b->k1 = key[1];
	return RK_OK;
}

void rk_bloom_builder_fini(rk_bloom_builder_t *b)
{
	free(b->hashes);
	b->hashes = NULL;
}

void rk_bloom_builder_add(rk_bloom_builder_t *b, rk_slice_t user_key)
{
	uint64_t h = rk_siphash13(b->k0, b->k1, user_key.p, user_key.n);
	if (b->n > 0 && b->hashes[b->n - 1] == h)
		return;
	if (b->n == b->cap) {
		size_t c = b->cap ? b->cap * 2 : 1024;
		uint64_t *n = realloc(b->hashes, c * sizeof(*n));
		if (n == NULL) {
			b->failed = true;
			return;
		}
		b->hashes = n;
		b->cap = c;
	}
	b->hashes[b->n++] = h;
}

static uint32_t probes(int bits_per_key)
{
	uint32_t k = (uint32_t)(bits_per_key * 0.69 + 0.5);
	return k < 1 ? 1 : k > 30 ? 30 : k;
}

rk_status_t rk_bloom_builder_finish(rk_bloom_builder_t *b, uint8_t **out,
                                    size_t *len)
{
	if (b->failed)
		return RK_RESOURCE_EXHAUSTED;
	uint64_t nbits = (uint64_t)b->n * (uint64_t)b->bits_per_key;
	if (nbits < 64)
		nbits = 64;
	if (nbits > UINT32_MAX - 7)
		nbits = UINT32_MAX - 7;
	size_t nbytes = (size_t)((nbits + 7) / 8);
	uint8_t *p = calloc(1, RK_BLOOM_HEADER + nbytes);
	if (p == NULL)
		return RK_RESOURCE_EXHAUSTED;
	uint32_t k = probes(b->bits_per_key);
	p[0] = 1;
	p[1] = 1;
	p[2] = (uint8_t)k;
	rk_put_u64(p + 4, b->k0);
	rk_put_u64(p + 12, b->k1);
	rk_put_u32(p + 20, (uint32_t)nbits);
	uint8_t *bits = p + RK_BLOOM_HEADER;
	for (size_t i = 0; i < b->n; i++) {
		uint64_t h = b->hashes[i];
		uint64_t a = h & 0xffffffffu, d = (h >> 32) | 1;
		for (uint32_t j = 0; j < k; j++) {
			uint64_t bit = (a + j * d) % nbits;
			bits[bit / 8] |= (uint8_t)(1u << (bit % 8));
		}
	}
	*out = p;
	*len = RK_BLOOM_HEADER + nbytes;
	return RK_OK;
}

rk_status_t rk_bloom_parse(rk_bloom_t *f, const uint8_t *p, size_t n)
{
	if (n < RK_BLOOM_HEADER || p[0] != 1 || p[1] != 1 || p[2] < 1 ||
	    p[2] > 30 || p[3] != 0)
		return RK_DATA_LOSS;
	f->k = p[2];
	f->k0 = rk_get_u64(p + 4);
	f->k1 = rk_get_u64(p + 12);
	f->nbits = rk_get_u32(p + 20);
	if (f->nbits < 64 ||
	    (uint64_t)RK_BLOOM_HEADER + (f->nbits + 7ull) / 8 != n)
		return RK_DATA_LOSS;
	f->bits = p + RK_BLOOM_HEADER;
	return RK_OK;
}

bool rk_bloom_may_contain(const rk_bloom_t *f, rk_slice_t user_key)
{
	uint64_t h = rk_siphash13(f->k0, f->k1, user_key.p, user_key.n);
	uint64_t a = h & 0xffffffffu, d = (h >> 32) | 1;
	for (uint32_t j = 0; j < f->k; j++) {
		uint64_t bit = (a + j * d) % f->nbits;
		if ((f->bits[bit / 8] & (1u << (bit % 8))) == 0)
			return false;
	}
	return true;
}
