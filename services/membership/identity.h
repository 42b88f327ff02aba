/*
 * The identity of this agent across restarts: a UUID drawn once, and a
 * generation raised at every start, kept in a small file in the data
 * directory (DIR/identity):
 *
 *	ringkv-membership identity v1
 *	uuid 2f1c6a8e-4d0b-4c1e-9a55-0f3b7e1d2c44
 *	generation 7
 *
 * The file is replaced atomically (written beside, fsync'd, renamed, the
 * directory fsync'd) before the agent speaks to anyone, so a generation is
 * never used twice even after a crash.
 */
#ifndef RK_MS_IDENTITY_H
#define RK_MS_IDENTITY_H

#include <stdint.h>

#include <ringkv/status.h>

/* Reads DIR/identity (creating DIR and a new UUID when there is none),
 * raises the generation and writes it back. On error *err (caller frees)
 * says why: RK_DATA_LOSS for a file that exists but cannot be parsed (a
 * new identity would make this node a stranger: the operator decides),
 * RK_UNAVAILABLE when the directory or file cannot be written. */
rk_status_t rk_ms_identity_next(const char *dir, uint8_t id[16],
                                uint64_t *generation, char **err);

/* Writes GENERATION for ID (after the agent had to outrank a peer). */
rk_status_t rk_ms_identity_store(const char *dir, const uint8_t id[16],
                                 uint64_t generation, char **err);

#endif
