/* CRC32C (Castagnoli) and LevelDB-style masking; see docs/lsm-commit-log.md.
 * The SSE4.2 instruction is used when the CPU has it, a table otherwise. */
#ifndef RK_LSM_CRC32C_H
#define RK_LSM_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC32C of N bytes at P, continuing from CRC (0 to start). */
uint32_t rk_crc32c_extend(uint32_t crc, const void *p, size_t n);

static inline uint32_t rk_crc32c(const void *p, size_t n)
{
	return rk_crc32c_extend(0, p, n);
}

static inline uint32_t rk_crc32c_mask(uint32_t c)
{
	return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

static inline uint32_t rk_crc32c_unmask(uint32_t m)
{
	uint32_t r = m - 0xa282ead8u;
	return (r >> 17) | (r << 15);
}

#endif
