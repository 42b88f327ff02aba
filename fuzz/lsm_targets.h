/*
 * The LSM engine's on-disk readers as fuzz targets (lsm_targets.c): the
 * commit-log reader, the block reader and the table open (footer, index,
 * filter) with a full scan. Each returns 1 if the input got past the
 * first checks (a record replayed, a block or table accepted), else 0,
 * and never crashes, whatever the bytes: that is what the fuzzers and
 * tests/unit/test_lsm_fuzz_random.c check.
 */
#ifndef RK_FUZZ_LSM_TARGETS_H
#define RK_FUZZ_LSM_TARGETS_H

#include <stddef.h>
#include <stdint.h>

/* DATA as a whole commit-log file, replayed as recovery does (each batch
 * checked, then applied to a memtable). */
int rk_fuzz_lsm_log(const uint8_t *data, size_t size);

/* DATA as a decompressed data or index block: parsed, walked to the end,
 * and sought with a key taken from its own first bytes. */
int rk_fuzz_lsm_block(const uint8_t *data, size_t size);

/* DATA as a whole table file: opened (footer, index, filter checked),
 * then every block read through a full scan and one point lookup. */
int rk_fuzz_lsm_table(const uint8_t *data, size_t size);

#endif
