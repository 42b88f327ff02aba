/*
 * The per-table bloom filter over user keys, keyed with a random
 * SipHash-1-3 key per table (docs/lsm-sstable.md, "Filter block").
 */
#ifndef RK_LSM_BLOOM_H
#define RK_LSM_BLOOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ringkv/status.h>

#include "coding.h"

#define RK_BLOOM_HEADER 24

/* Collects key hashes while a table is built. */
typedef struct rk_bloom_builder {
	uint64_t k0, k1;  /* the SipHash key of this table */
	uint64_t *hashes; /* one per distinct user key added */
	size_t n;         /* used */
	size_t cap;       /* allocated */
	int bits_per_key; /* bits a key */
	bool failed;      /* allocation failed */
} rk_bloom_builder_t;

/* Draws a fresh random key from getrandom(2). */
rk_status_t rk_bloom_builder_init(rk_bloom_builder_t *b, int bits_per_key);
void rk_bloom_builder_fini(rk_bloom_builder_t *b);
void rk_bloom_builder_add(rk_bloom_builder_t *b, rk_slice_t user_key);
/* The filter block, malloc'd into *OUT (caller frees). */
rk_status_t rk_bloom_builder_finish(rk_bloom_builder_t *b, uint8_t **out,
                                    size_t *len);

/* A filter read back from disk; borrows the bytes it was parsed from. */
typedef struct rk_bloom {
	uint64_t k0, k1;     /* SipHash key */
	uint32_t k;          /* probes */
	uint32_t nbits;      /* bits */
	const uint8_t *bits; /* ceil(nbits/8) bytes */
} rk_bloom_t;

/* RK_DATA_LOSS if P[0..N) is not a well-formed filter block. */
rk_status_t rk_bloom_parse(rk_bloom_t *f, const uint8_t *p, size_t n);
/* False only if KEY is certainly not in the table. */
bool rk_bloom_may_contain(const rk_bloom_t *f, rk_slice_t user_key);

#endif
