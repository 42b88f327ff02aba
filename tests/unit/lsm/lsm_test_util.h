/* Helpers shared by the LSM tests: scratch directories, copying a
 * database directory (a "crash" image), flipping bytes in files. */
#ifndef RK_LSM_TEST_UTIL_H
#define RK_LSM_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "lsm.h"

/* A fresh empty directory under $TMPDIR (or /tmp); caller frees the
 * string and removes the tree with lsm_test_rmrf(). */
char *lsm_test_tmpdir(const char *tag);
void lsm_test_rmrf(const char *path);
/* Copies every regular file of SRC into DST (created). 0 on success. */
int lsm_test_copy_dir(const char *src, const char *dst);
/* XORs the byte at OFF of PATH with MASK. 0 on success. */
int lsm_test_flip(const char *path, uint64_t off, uint8_t mask);
int64_t lsm_test_file_size(const char *path);
/* The name of the first file in DIR ending with EXT ("sst", "log"), with
 * the smallest number; into OUT. 0 if found. */
int lsm_test_find(const char *dir, const char *ext, char *out, size_t n);
/* Options for tests: small buffers so tables and levels appear fast. */
void lsm_test_options(rk_lsm_options_t *o);

#endif
