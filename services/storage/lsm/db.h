/*
 * The database object shared by db.c (open, recovery, reads, stats),
 * db_write.c (the write path), db_bg.c (flush and compaction) and
 * db_iter.c (snapshot iterators). Not a public header.
 *
 * Locking: `mu` guards every field marked (mu). The write leader appends
 * to the log and inserts into `mem` without holding mu; it is the only
 * thread that switches memtables. The background thread (or a manual
 * compaction, which holds `bg_running` meanwhile) is the only one that
 * installs versions and writes the manifest.
 */
#ifndef RK_LSM_DB_H
#define RK_LSM_DB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/workpool.h"
#include "cache.h"
#include "lsm.h"
#include "memtable.h"
#include "version.h"
#include "wal.h"

/* Writer thread ids remembered per group for the group commit. */
#define RK_DB_RECENT 64

typedef struct rk_writer rk_writer_t;
/* What a queued writer is waiting for (rk_writer_t.state). */
enum { RK_WRITER_WAITING, RK_WRITER_LEADS, RK_WRITER_DONE };

/* One rk_db_write() call in the writer queue; lives on its caller's stack.
 * The leader hands a writer its fate by storing `state` and waking it with
 * a futex on that word: no mutex, so the writers it wakes neither pile onto
 * db->mu nor bounce on a condition variable's mutex. */
struct rk_writer {
	rk_lsm_batch_t *batch; /* NULL for a forced memtable switch */
	unsigned tid;          /* the calling thread's small id */
	atomic_int state;      /* RK_WRITER_*: set once, release/acquire */
	rk_status_t status;    /* its outcome, written before state */
	rk_writer_t *next;     /* (db->mu) queue link */
};

struct rk_lsm {
	char *dir;                     /* database directory, owned */
	rk_lsm_options_t o;            /* options, validated */
	int lock_fd;                   /* LOCK, flock'ed */
	rk_cache_t *cache;             /* block cache */
	pthread_mutex_t mu;            /* see the comment above */
	pthread_cond_t bg_cv;          /* background work finished a step */
	rk_memtable_t *mem;            /* (mu) the memtable being written */
	rk_memtable_t *imm;            /* (mu) being flushed, or NULL */
	uint64_t imm_log;              /* (mu) the log imm was written to */
	rk_wal_t *wal;                 /* (mu) the log of mem */
	rk_version_t *current;         /* (mu) live tables */
	uint64_t next_file;            /* (mu) next unused file number */
	atomic_uint_fast64_t last_seq; /* newest committed sequence */
	rk_writer_t *wq_head;          /* (mu) writer queue, leader first */
	rk_writer_t *wq_tail;          /* (mu) last writer */
	size_t wq_len;        /* (mu) writers queued, the leader included */
	size_t gather_want;   /* (mu) queue length a gathering leader awaits */
	pthread_cond_t wq_cv; /* (mu) wakes a gathering leader (monotonic) */
	unsigned recent[2][RK_DB_RECENT]; /* (mu) thread ids of the last two
	                                     groups, [0] the newest */
	size_t nrecent[2];                /* (mu) how many in each */
	uint64_t sync_ns;                 /* (mu) moving mean fdatasync time */
	rk_workpool_t *pool;              /* one background worker */
	rk_task_t bg_task;                /* the flush/compaction task */
	bool bg_running;                  /* (mu) bg task queued or running */
	bool shutting_down;               /* (mu) close has started */
	rk_status_t bg_error;             /* (mu) sticky; writes fail with it */
	rk_file_t *seek_file;             /* (mu) table whose lookups ran out
	                                     of allowed_seeks, referenced */
	int seek_level;                   /* (mu) its level */
	uint8_t *compact_ptr[RK_LSM_LEVELS];   /* (mu) round-robin position */
	size_t compact_ptr_len[RK_LSM_LEVELS]; /* its length */
	uint64_t *snaps;                 /* (mu) sequences of live iterators */
	size_t nsnaps;                   /* (mu) count */
	size_t snaps_cap;                /* (mu) allocated */
	pthread_t syncer;                /* periodic fdatasync thread */
	bool syncer_started;             /* (mu) it exists */
	pthread_cond_t sync_cv;          /* wakes the syncer for close */
	rk_lsm_stats_t st;               /* (mu) counters kept under mu */
	atomic_uint_fast64_t user_bytes; /* written by callers */
	atomic_uint_fast64_t log_bytes;  /* appended to logs */
};

/* db_write.c */
rk_status_t rk_db_write(rk_lsm_t *db, rk_lsm_batch_t *b, bool force_switch);
void *rk_db_syncer_main(void *arg);

/* db_bg.c */
/* Queues background work if any is needed (mu held). */
void rk_db_maybe_schedule(rk_lsm_t *db);
/* Writes the entries of IT (internal keys, in order) to table NUMBER;
 * *OUT is the new file (NULL if IT was empty). No lock needed. */
rk_status_t rk_db_build_table(rk_lsm_t *db, rk_iter_t *it, uint64_t number,
                              rk_file_t **out);
/* Runs a full manual compaction (mu held on entry and exit). */
rk_status_t rk_db_compact_all(rk_lsm_t *db);
/* Writes the manifest for version V (mu held; released while writing). */
rk_status_t rk_db_log_version(rk_lsm_t *db, rk_version_t *v,
                              uint64_t log_number);

/* db.c */
/* Creates log NUMBER sized for a memtable, with the options' mapping
 * policy (see rk_wal_t.prefault). */
rk_status_t rk_db_new_log(rk_lsm_t *db, uint64_t number, rk_wal_t **out,
                          char *err, size_t errlen);

/* Smallest sequence a live iterator may read (mu held). */
uint64_t rk_db_smallest_snapshot(rk_lsm_t *db);

#endif
