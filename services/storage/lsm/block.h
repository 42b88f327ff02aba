/*
 * Data and index blocks: prefix-compressed sorted entries with restart
 * points (docs/lsm-sstable.md, "Data and index blocks").
 */
#ifndef RK_LSM_BLOCK_H
#define RK_LSM_BLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ringkv/status.h>

#include "coding.h"

/* Builds one block in memory. Keys must be added in increasing order. */
typedef struct rk_block_builder {
	uint8_t *buf;       /* entries so far, then restarts on finish */
	size_t len;         /* bytes of buf in use */
	size_t cap;         /* bytes allocated */
	uint32_t *restarts; /* offsets of restart entries */
	size_t nrestarts;   /* used */
	size_t rcap;        /* allocated */
	int interval;       /* entries between restarts */
	int counter;        /* entries since the last restart */
	uint8_t *last;      /* previous key, for prefix sharing */
	size_t last_len;    /* its length */
	size_t last_cap;    /* allocated */
	size_t entries;     /* entries in this block */
	bool failed;        /* an allocation failed; finish reports it */
} rk_block_builder_t;

void rk_block_builder_init(rk_block_builder_t *b, int interval);
void rk_block_builder_fini(rk_block_builder_t *b);
void rk_block_builder_reset(rk_block_builder_t *b);
void rk_block_builder_add(rk_block_builder_t *b, rk_slice_t key,
                          rk_slice_t val);
/* Bytes the block would take if finished now. */
size_t rk_block_builder_size(const rk_block_builder_t *b);
/* Appends the restart array; the block (borrowed until reset) is in *OUT.
 * RK_RESOURCE_EXHAUSTED if an allocation failed on the way. */
rk_status_t rk_block_builder_finish(rk_block_builder_t *b, rk_slice_t *out);

/* A decoded block (raw bytes after decompression), reference counted so a
 * cache and any number of iterators can share it. */
typedef struct rk_block {
	uint8_t *data;        /* owned */
	size_t size;          /* bytes */
	uint32_t restart_off; /* start of the restart array */
	uint32_t nrestarts;   /* restart points */
	int refs;             /* atomic through helpers */
} rk_block_t;

/* Takes ownership of DATA (malloc'd) and checks the restart array.
 * RK_DATA_LOSS if it is malformed (DATA is then freed). One reference. */
rk_status_t rk_block_new(uint8_t *data, size_t size, rk_block_t **out);
void rk_block_ref(rk_block_t *b);
void rk_block_unref(rk_block_t *b);

/* One entry of the restart interval a step back decoded. */
typedef struct rk_block_back {
	uint32_t off, next_off; /* where it starts and ends */
	uint32_t key_at;        /* its key: back_keys + key_at */
	uint32_t key_len;       /* key length */
	rk_slice_t val;         /* its value, inside the block */
} rk_block_back_t;

/* Position in a block. Holds a reference to the block while set. */
typedef struct rk_block_iter {
	rk_block_t *b;          /* referenced, NULL if none */
	uint32_t off;           /* offset of the current entry */
	uint32_t next_off;      /* offset of the entry after it */
	uint8_t *key;           /* current key: inline_key or malloc'd */
	size_t key_len;         /* its length */
	size_t key_cap;         /* room at key */
	uint8_t inline_key[64]; /* short keys need no allocation */
	rk_slice_t val;         /* current value, inside the block */
	bool valid;             /* positioned on an entry */
	rk_status_t status; /* RK_DATA_LOSS once a malformed entry is seen */
	/* Going backward: the entries of the restart interval last decoded,
	 * so the steps back through it need no decoding (they would cost a
	 * decode from the restart point each). Emptied when the block
	 * changes; used only while the current entry is one of them. */
	rk_block_back_t *back; /* entries, ascending, malloc'd */
	uint32_t nback;        /* entries in back */
	uint32_t back_cap;     /* room in back */
	uint32_t back_i;       /* the current entry's index in back */
	uint8_t *back_keys;    /* their keys, malloc'd */
	size_t back_keys_len;  /* bytes used */
	size_t back_keys_cap;  /* room */
} rk_block_iter_t;

void rk_block_iter_init(rk_block_iter_t *it);
/* Points IT at block B (takes a new reference; drops the old block). */
void rk_block_iter_set(rk_block_iter_t *it, rk_block_t *b);
void rk_block_iter_fini(rk_block_iter_t *it);
void rk_block_iter_seek_first(rk_block_iter_t *it);
void rk_block_iter_seek(rk_block_iter_t *it, rk_slice_t ikey);
void rk_block_iter_next(rk_block_iter_t *it);
/* The last entry; the entry before the current one (invalid before the
 * first). Entries decode only forward: a step back into a restart
 * interval decodes it whole once and keeps it (see `back`). */
void rk_block_iter_seek_last(rk_block_iter_t *it);
void rk_block_iter_prev(rk_block_iter_t *it);

#endif
