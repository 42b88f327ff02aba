/*
 * The manifest: which tables are live and which logs matter
 * (docs/lsm-manifest.md). Written whole and swapped in atomically.
 */
#ifndef RK_LSM_MANIFEST_H
#define RK_LSM_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include <ringkv/status.h>

#include "cache.h"
#include "version.h"

typedef struct rk_manifest {
	uint64_t next_file;  /* next unused file number */
	uint64_t last_seq;   /* newest sequence in a listed table (at least) */
	uint64_t log_number; /* logs >= this are replayed at open */
	rk_version_t *version; /* the tables, one reference */
} rk_manifest_t;

/* Writes M to DIR/MANIFEST.tmp, fsyncs, renames it over DIR/MANIFEST and
 * fsyncs DIR. On error the old manifest stays in force. */
rk_status_t rk_manifest_write(const char *dir, const rk_manifest_t *m,
                              char *err, size_t errlen);

/* Reads DIR/MANIFEST: RK_NOT_FOUND if there is none, RK_DATA_LOSS (with
 * ERR) if it is corrupt. Tables are created with DIR and CACHE (both must
 * outlive them). Caller unrefs M->version. */
rk_status_t rk_manifest_read(const char *dir, rk_cache_t *cache,
                             rk_manifest_t *m, char *err, size_t errlen);

/* fsync of a directory, so that creates, renames and unlinks are durable. */
rk_status_t rk_lsm_sync_dir(const char *dir);

#endif
