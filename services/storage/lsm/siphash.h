/* SipHash-1-3 with a 128-bit key: the keyed hash of the bloom filters
 * (docs/lsm-sstable.md, "Why a keyed hash"). */
#ifndef RK_LSM_SIPHASH_H
#define RK_LSM_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t rk_siphash13(uint64_t k0, uint64_t k1, const void *p, size_t n);

#endif
