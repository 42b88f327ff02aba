/*
 * The commit log: appending checksummed records and replaying them
 * (docs/lsm-commit-log.md). The database decides when to sync (its
 * durability policy); this module only knows how.
 */
#ifndef RK_LSM_WAL_H
#define RK_LSM_WAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ringkv/status.h>

#include "coding.h"

#define RK_WAL_HEADER     16
#define RK_WAL_MAX_RECORD (1u << 30)

typedef struct rk_wal {
	int fd;                      /* the open log file */
	uint64_t number;             /* file number, NNNNNN.log */
	uint8_t *map;                /* the file, mapped shared; appender only */
	uint64_t cap;                /* bytes mapped and backed by blocks */
	uint64_t released;           /* pages below this are unmapped (their
	                                data stays in the page cache) */
	bool prefault;               /* map pages ahead of the records (set
	                                by the owner; see wal.c) */
	uint64_t prefaulted;         /* pages below this were mapped ahead */
	atomic_uint_fast64_t size;   /* end of the last whole record written;
	                                written by the appender, read by a
	                                syncing thread (release/acquire) */
	atomic_uint_fast64_t synced; /* size as of the last good fdatasync */
	atomic_int refs; /* the db and a syncing thread may hold it */
} rk_wal_t;

/* Creates DIR/NNNNNN.log with its header and disk blocks for about
 * CAPACITY bytes (less when the disk has less; the log grows as needed),
 * all synced. Caller drops its reference with rk_wal_unref(). */
rk_status_t rk_wal_create(const char *dir, uint64_t number, uint64_t capacity,
                          rk_wal_t **out, char *err, size_t errlen);

/* Appends N records, one per payload, by copying them into the mapping:
 * once it returns they are in the page cache, safe from a crash of the
 * process (not of the machine: that takes rk_wal_sync). When the blocks
 * cannot grow, nothing is written and the status is RK_RESOURCE_EXHAUSTED
 * (no space) or RK_INTERNAL. */
rk_status_t rk_wal_append(rk_wal_t *w, const rk_slice_t *payloads, size_t n);

/* fdatasync, which on Linux also writes the pages dirtied through the
 * mapping; RK_INTERNAL on failure (the caller must stop writing). */
rk_status_t rk_wal_sync(rk_wal_t *w);

void rk_wal_ref(rk_wal_t *w);
/* When the last reference goes: unmaps, cuts the file back to its last
 * record (the zeros after it are not needed once the log is closed) and
 * closes it. Safe with NULL. */
void rk_wal_unref(rk_wal_t *w);

/* What a replay found. */
typedef struct rk_wal_report {
	uint64_t records;       /* whole records handed to the callback */
	uint64_t dropped_bytes; /* from the first bad record to the last
	                           non-zero byte (a zero tail is no data) */
	uint64_t drop_offset;   /* offset of that record */
	char reason[120];       /* why, "" when nothing was dropped */
} rk_wal_report_t;

typedef rk_status_t (*rk_wal_record_fn)(void *arg, const uint8_t *p, size_t n);

/* Replays PATH record by record into FN. Zeros from some offset to the end
 * of the file are the unused tail of the log, a clean end. Stops cleanly
 * at a torn or corrupt record, filling REP; returns RK_OK then, the callback's status if it
 * fails, or RK_INTERNAL/RK_DATA_LOSS if the file cannot be read at all. */
rk_status_t rk_wal_replay(const char *path, rk_wal_record_fn fn, void *arg,
                          rk_wal_report_t *rep);

/* The bytes of the log at PATH up to its last non-zero byte: what a replay
 * that never reads it (it comes after a damaged log) drops. RK_INTERNAL if
 * the file cannot be read. */
rk_status_t rk_wal_data_bytes(const char *path, uint64_t *bytes);

/* "DIR/NNNNNN.EXT" into OUT. */
void rk_lsm_file_name(char *out, size_t n, const char *dir, uint64_t number,
                      const char *ext);

#endif
