/*
 * rk_lsm: the log-structured merge-tree storage engine of a ringkv storage
 * node. Keys and values are bytes; the replica layer keeps its vector
 * clocks and siblings inside the value.
 *
 * The on-disk formats and the recovery/compaction rules are documents:
 * docs/lsm-commit-log.md, docs/lsm-sstable.md, docs/lsm-manifest.md,
 * docs/lsm-recovery-and-compaction.md.
 *
 * Every function is safe to call from many threads at once on one
 * database, except rk_lsm_close(), which must be the last call and must not
 * race any other. Iterators and batches belong to one thread each.
 */
#ifndef RK_LSM_H
#define RK_LSM_H

#include <stddef.h>
#include <stdint.h>

#include <ringkv/status.h>

typedef struct rk_lsm rk_lsm_t;
typedef struct rk_lsm_iter rk_lsm_iter_t;
typedef struct rk_lsm_batch rk_lsm_batch_t;

/* When a write is durable (docs/lsm-commit-log.md, "Durability policies"). */
typedef enum rk_lsm_sync {
	RK_LSM_SYNC_ALWAYS = 0,   /* fdatasync per write call */
	RK_LSM_SYNC_BATCH = 1,    /* group commit: one fdatasync per group */
	RK_LSM_SYNC_PERIODIC = 2, /* fdatasync every sync_period_ms */
} rk_lsm_sync_t;

typedef struct rk_lsm_options {
	int create_if_missing;     /* create an empty database if none */
	int paranoid_checks;       /* any log bytes dropped fails open */
	rk_lsm_sync_t sync;        /* durability policy */
	uint32_t sync_period_ms;   /* for RK_LSM_SYNC_PERIODIC */
	size_t write_buffer_size;  /* memtable bytes before it is flushed */
	size_t block_size;         /* raw bytes per data block */
	size_t block_cache_bytes;  /* byte bound of the block cache */
	int scan_fill_cache;       /* iterators keep the blocks they read in
	                              the cache (0: a scan, such as an
	                              anti-entropy pass, leaves the blocks
	                              of point reads where they are) */
	int compression;           /* LZ4 data blocks (1) or raw (0) */
	int bloom_bits_per_key;    /* bloom filter bits per key */
	size_t target_file_size;   /* compaction output table size */
	uint64_t level1_max_bytes; /* L1 budget; x10 per level below */
	int l0_compaction_trigger; /* L0 tables that start a compaction */
	int l0_slowdown_trigger;   /* L0 tables that slow writes */
	int l0_stop_trigger;       /* L0 tables that make writes wait */
	uint64_t gc_grace_ms;      /* tombstones live at least this long */
	size_t max_key_bytes;      /* longer keys: INVALID_ARGUMENT */
	size_t max_value_bytes;    /* longer values: INVALID_ARGUMENT */
} rk_lsm_options_t;

/* Fills O with the defaults: create_if_missing, sync batch (periodic
 * every 100 ms when chosen), 4 MiB memtable, 4 KiB blocks, 8 MiB block
 * cache that scans do not fill, LZ4 on, 10 bloom bits a key, 2 MiB tables, L1 10 MiB, L0
 * triggers 4/8/12, GC grace 10 days, keys <= 64 KiB - 1, values <= 64 MiB. */
void rk_lsm_options_default(rk_lsm_options_t *o);

/* Opens (recovering if needed) the database in directory DIR. On failure,
 * a message is written to ERR (ERRLEN bytes; both may be 0/NULL). Caller
 * closes *OUT with rk_lsm_close(). */
rk_status_t rk_lsm_open(const char *dir, const rk_lsm_options_t *o,
                        rk_lsm_t **out, char *err, size_t errlen);

/* Flushes nothing extra (the log already holds every acknowledged write),
 * waits for background work to stop, releases the directory and frees DB.
 * Safe with NULL. */
void rk_lsm_close(rk_lsm_t *db);

/* Key and value are copied; they need only live for the call. */
rk_status_t rk_lsm_put(rk_lsm_t *db, const void *key, size_t klen,
                       const void *val, size_t vlen);
rk_status_t rk_lsm_delete(rk_lsm_t *db, const void *key, size_t klen);

/* The newest value of KEY: RK_OK with *VAL (caller frees with free()) and
 * *VLEN, RK_NOT_FOUND, or RK_DATA_LOSS when a table on the way is corrupt. */
rk_status_t rk_lsm_get(rk_lsm_t *db, const void *key, size_t klen, void **val,
                       size_t *vlen);

/* An atomic write batch: applied all or nothing, in order. Caller frees
 * with rk_lsm_batch_free(). */
rk_status_t rk_lsm_batch_new(rk_lsm_batch_t **out);
rk_status_t rk_lsm_batch_put(rk_lsm_batch_t *b, const void *key, size_t klen,
                             const void *val, size_t vlen);
rk_status_t rk_lsm_batch_delete(rk_lsm_batch_t *b, const void *key,
                                size_t klen);
void rk_lsm_batch_clear(rk_lsm_batch_t *b);
void rk_lsm_batch_free(rk_lsm_batch_t *b);
/* Applies B (borrowed; unchanged, may be reused after clear). */
rk_status_t rk_lsm_write(rk_lsm_t *db, rk_lsm_batch_t *b);

/* An iterator over a consistent snapshot taken now: later writes are not
 * seen. It starts unpositioned. Caller frees with rk_lsm_iter_free() before
 * closing DB. Keys and values it returns are borrowed until the next move. */
rk_status_t rk_lsm_iter_new(rk_lsm_t *db, rk_lsm_iter_t **out);
void rk_lsm_iter_seek_first(rk_lsm_iter_t *it);
void rk_lsm_iter_seek(rk_lsm_iter_t *it, const void *key, size_t klen);
int rk_lsm_iter_valid(const rk_lsm_iter_t *it);
void rk_lsm_iter_next(rk_lsm_iter_t *it);
/* Backward: the last key; the key before the current one. Directions may
 * be mixed freely. A step back costs about a seek in each memtable. */
void rk_lsm_iter_seek_last(rk_lsm_iter_t *it);
void rk_lsm_iter_prev(rk_lsm_iter_t *it);
const void *rk_lsm_iter_key(const rk_lsm_iter_t *it, size_t *klen);
const void *rk_lsm_iter_value(const rk_lsm_iter_t *it, size_t *vlen);
/* RK_OK, or why iteration stopped early (RK_DATA_LOSS on a corrupt block). */
rk_status_t rk_lsm_iter_status(const rk_lsm_iter_t *it);
void rk_lsm_iter_free(rk_lsm_iter_t *it);

/* Writes the memtable to a table and waits until it is done. */
rk_status_t rk_lsm_flush(rk_lsm_t *db);
/* Flushes, then compacts until no level is over its budget, and waits. */
rk_status_t rk_lsm_compact(rk_lsm_t *db);

#define RK_LSM_LEVELS 7

typedef struct rk_lsm_stats {
	uint64_t last_seq;                    /* newest sequence number */
	uint64_t level_tables[RK_LSM_LEVELS]; /* tables per level */
	uint64_t level_bytes[RK_LSM_LEVELS];  /* table bytes per level */
	uint64_t table_bytes;                 /* all live tables */
	uint64_t memtable_bytes;      /* memtable + immutable memtable */
	uint64_t user_bytes;          /* keys + values written by callers */
	uint64_t log_bytes;           /* bytes appended to commit logs */
	uint64_t flush_bytes;         /* table bytes written by flushes */
	uint64_t compact_read_bytes;  /* table bytes read by compactions */
	uint64_t compact_write_bytes; /* table bytes written by compactions */
	uint64_t flushes;             /* memtables written out */
	uint64_t compactions;         /* compactions run (moves included) */
	uint64_t trivial_moves;       /* compactions that only moved a table */
	uint64_t seek_compactions;    /* compactions started because lookups
	                                 kept passing through a table */
	uint64_t tombstones_dropped;  /* deletions removed by compaction */
	uint64_t versions_dropped;    /* overwritten values removed */
	double write_amp;             /* (log+flush+compact) / user bytes */
	double space_amp;             /* table bytes / largest level bytes */
	uint64_t syncs;               /* fdatasync calls on logs */
	uint64_t sync_us;             /* time writers spent in them */
	uint64_t write_groups;        /* leader write groups */
	uint64_t gather_us;           /* time leaders waited for a group */
	uint64_t slowdown_count;      /* writes delayed by L0 pressure */
	uint64_t slowdown_us;         /* time spent in those delays */
	uint64_t stall_count;         /* writes that had to wait */
	uint64_t stall_us;            /* time spent waiting */
	uint64_t cache_hits;          /* block cache hits */
	uint64_t cache_misses;        /* block cache misses */
	uint64_t cache_bytes;         /* bytes charged to the cache now */
	uint64_t recovery_records;    /* log records replayed at open */
	uint64_t recovery_dropped_bytes; /* log bytes dropped at open */
	char recovery_drop_reason[160];  /* why, "" if nothing dropped */
	rk_status_t background_error;    /* sticky error of the bg thread */
} rk_lsm_stats_t;

void rk_lsm_stats(rk_lsm_t *db, rk_lsm_stats_t *out);

#endif
