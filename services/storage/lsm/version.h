/*
 * Versions: the set of live tables per level at one moment
 * (docs/lsm-manifest.md). A version is immutable once built and reference
 * counted; readers and iterators pin the one they started with while
 * compactions install new ones. Tables (rk_file_t) are shared between
 * versions and counted too; a table that a manifest change dropped is
 * unlinked from disk when its last version lets go of it.
 */
#ifndef RK_LSM_VERSION_H
#define RK_LSM_VERSION_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ringkv/status.h>

#include "cache.h"
#include "coding.h"
#include "iter.h"
#include "lsm.h"
#include "table.h"

typedef struct rk_file {
	uint64_t number;     /* file number, NNNNNN.sst */
	uint64_t size;       /* bytes */
	uint64_t entries;    /* entries */
	uint8_t *smallest;   /* smallest internal key, owned */
	size_t smallest_len; /* its length */
	uint8_t *largest;    /* largest internal key, owned */
	size_t largest_len;  /* its length */
	const char *dir;     /* the database directory, borrowed */
	rk_cache_t *cache;   /* block cache, borrowed */
	pthread_mutex_t mu;  /* guards table */
	rk_table_t *table;   /* opened on first use */
	int refs;            /* versions (and compactions) holding it */
	bool obsolete;       /* dropped by a manifest: unlink at last ref */
	int allowed_seeks;   /* (atomic) lookups that may still pass through
	                        it to a later table (see rk_version_get) */
} rk_file_t;

/* A file with one reference; keys are copied. NULL if out of memory. */
rk_file_t *rk_file_new(const char *dir, rk_cache_t *cache, uint64_t number,
                       uint64_t size, uint64_t entries, rk_slice_t smallest,
                       rk_slice_t largest);
void rk_file_ref(rk_file_t *f);
void rk_file_unref(rk_file_t *f);
/* The open table (a new reference, caller unrefs), opening it if needed. */
rk_status_t rk_file_table(rk_file_t *f, rk_table_t **out);

static inline rk_slice_t rk_file_smallest(const rk_file_t *f)
{
	return rk_slice(f->smallest, f->smallest_len);
}
static inline rk_slice_t rk_file_largest(const rk_file_t *f)
{
	return rk_slice(f->largest, f->largest_len);
}

typedef struct rk_version {
	rk_file_t **files[RK_LSM_LEVELS]; /* per level; L0 newest first,
	                                     others by smallest key */
	size_t n[RK_LSM_LEVELS];          /* tables per level */
	int refs;                         /* holders */
} rk_version_t;

/* A change from one version to the next. */
typedef struct rk_edit {
	uint64_t *del_numbers; /* tables removed */
	int *del_levels;       /* from these levels */
	size_t ndel;           /* count */
	rk_file_t **add;       /* tables added (references owned) */
	int *add_levels;       /* to these levels */
	size_t nadd;           /* count */
} rk_edit_t;

void rk_edit_init(rk_edit_t *e);
void rk_edit_fini(rk_edit_t *e); /* drops the added files' references */
rk_status_t rk_edit_delete(rk_edit_t *e, int level, uint64_t number);
/* Takes a new reference to F. */
rk_status_t rk_edit_add(rk_edit_t *e, int level, rk_file_t *f);

/* An empty version with one reference. */
rk_version_t *rk_version_new(void);
/* BASE with EDIT applied, one reference. NULL if out of memory. */
rk_version_t *rk_version_apply(const rk_version_t *base, const rk_edit_t *e);
void rk_version_ref(rk_version_t *v);
void rk_version_unref(rk_version_t *v);

/* The table a lookup found worth compacting: it used up its
 * allowed_seeks. FILE is borrowed from the version; NULL if none. */
typedef struct rk_seek_charge {
	rk_file_t *file;
	int level;
} rk_seek_charge_t;

/* Newest entry for USER_KEY at or below sequence SEQ, level by level:
 * RK_OK with *TYPE and *VAL (malloc'd), RK_NOT_FOUND, or an error.
 * A lookup that reads a table without finding its key and goes on to
 * another is charged to the first (LevelDB's seek compaction); when that
 * table's allowance runs out, *CHARGE names it, once. */
rk_status_t rk_version_get(rk_version_t *v, rk_slice_t user_key, uint64_t seq,
                           int *type, uint8_t **val, size_t *vlen,
                           rk_seek_charge_t *charge);

/* Appends to ITERS (room for RK_LSM_LEVELS + n[0]) one iterator per L0
 * table and one per non-empty deeper level; returns how many. Iterators
 * hold their own references. */
size_t rk_version_iters(rk_version_t *v, rk_iter_t **iters, bool fill_cache);

/* An iterator over FILES (sorted, disjoint) opening tables lazily; takes
 * references to the files. */
rk_iter_t *rk_level_iter(rk_file_t **files, size_t n, bool fill_cache);

/* True when some table of LEVEL overlaps user keys [LO, HI]. */
bool rk_version_overlaps(const rk_version_t *v, int level, rk_slice_t lo,
                         rk_slice_t hi);

#endif
