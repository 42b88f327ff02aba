/*
 * The cluster key file: 32 random bytes written as 64 lowercase hex digits
 * and a newline, mode 0600, made by `ringkv keygen`. Hex keeps it easy to
 * paste into a Kubernetes Secret or a config management tool.
 */
#ifndef RK_KEYFILE_H
#define RK_KEYFILE_H

#include <stdbool.h>
#include <stdint.h>

#include <ringkv/status.h>

#include "crypto/seal.h"

/* Writes a new random key to PATH with mode 0600. Refuses (RK_ALREADY_EXISTS)
 * to replace an existing file unless FORCE. The file is written to a
 * temporary name, fsync'd and renamed, so a crash never leaves half a key.
 * On error *err (may be NULL) says why; caller frees. */
rk_status_t rk_keyfile_generate(const char *path, bool force, char **err);

/* Reads the key at PATH into KEY. Refuses a file that others may read
 * (mode & 077: RK_PERMISSION_DENIED, with the chmod to run), a file that is
 * not exactly 64 hex digits (+ optional newline) (RK_INVALID_ARGUMENT), a
 * missing file (RK_NOT_FOUND). *err (may be NULL) names the file and what is
 * wrong; caller frees. */
rk_status_t rk_keyfile_read(const char *path, uint8_t key[RK_SEAL_KEY_BYTES],
                            char **err);

#endif
