/*
 * SSTables: writing one (table_builder.c) and reading one (table.c).
 * The format is docs/lsm-sstable.md.
 */
#ifndef RK_LSM_TABLE_H
#define RK_LSM_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ringkv/status.h>

#include "block.h"
#include "bloom.h"
#include "cache.h"
#include "coding.h"
#include "iter.h"

#define RK_TABLE_FOOTER  56
#define RK_BLOCK_TRAILER 5
#define RK_TABLE_VERSION 1

typedef struct rk_table_builder {
	int fd;                   /* the file being written */
	char path[4096];          /* its name, for errors and abandon */
	uint64_t offset;          /* file bytes written (and buffered) */
	uint8_t *wbuf;            /* write buffer */
	size_t wlen;              /* bytes in wbuf */
	rk_block_builder_t data;  /* the data block being filled */
	rk_block_builder_t index; /* one entry per finished data block */
	rk_bloom_builder_t bloom; /* user-key hashes */
	uint8_t *last;            /* last key added */
	size_t last_len;          /* its length */
	size_t last_cap;          /* allocated */
	uint8_t *first;           /* first key added */
	size_t first_len;         /* its length */
	uint64_t entries;         /* entries added */
	size_t block_size;        /* raw bytes per data block */
	int compression;          /* LZ4 data blocks */
	uint8_t *zbuf;            /* compression scratch */
	size_t zcap;              /* allocated */
	rk_status_t status;       /* first error */
} rk_table_builder_t;

/* Creates PATH and starts a table. */
rk_status_t rk_table_builder_open(rk_table_builder_t *b, const char *path,
                                  size_t block_size, int compression,
                                  int bits_per_key);
/* Adds an entry; internal keys strictly increasing. */
rk_status_t rk_table_builder_add(rk_table_builder_t *b, rk_slice_t ikey,
                                 rk_slice_t val);
/* Bytes the file has so far (an estimate of its final size). */
uint64_t rk_table_builder_size(const rk_table_builder_t *b);
/* Writes filter, index and footer, fsyncs and closes. *SIZE is the file
 * size. The builder is finished either way; on error the file is removed. */
rk_status_t rk_table_builder_finish(rk_table_builder_t *b, uint64_t *size);
/* Closes and removes the file. */
void rk_table_builder_abandon(rk_table_builder_t *b);

/* An open table. Reference counted; thread-safe for readers. */
typedef struct rk_table {
	int fd;               /* the file, kept open */
	const uint8_t *map;   /* the whole file mapped read-only, or NULL
	                         (then blocks are read with pread) */
	uint64_t number;      /* file number */
	uint64_t size;        /* file size */
	uint64_t entries;     /* from the footer */
	rk_block_t *index;    /* the index block, decoded */
	uint8_t *filter_data; /* the filter block bytes */
	rk_bloom_t bloom;     /* parsed over filter_data */
	rk_cache_t *cache;    /* borrowed; outlives the table */
	int refs;             /* atomic through helpers */
} rk_table_t;

/* Opens DIR/NNNNNN.sst of SIZE bytes, checking footer, index and filter.
 * RK_DATA_LOSS (with ERR) if any is corrupt. Caller unrefs. */
rk_status_t rk_table_open(const char *dir, uint64_t number, uint64_t size,
                          rk_cache_t *cache, rk_table_t **out, char *err,
                          size_t errlen);
void rk_table_ref(rk_table_t *t);
void rk_table_unref(rk_table_t *t);

/* Reads (or finds cached) the block at HANDLE. Caller unrefs *OUT. */
rk_status_t rk_table_read_block(rk_table_t *t, uint64_t off, uint64_t size,
                                bool fill_cache, rk_block_t **out);

/* Looks up the first entry >= IKEY whose user key is USER_KEY:
 * RK_OK with *TYPE and the value in *VAL (malloc'd, caller frees),
 * RK_NOT_FOUND, or RK_DATA_LOSS. */
rk_status_t rk_table_get(rk_table_t *t, rk_slice_t ikey, rk_slice_t user_key,
                         int *type, uint8_t **val, size_t *vlen);

/* An iterator over the whole table, holding a reference to it. */
rk_iter_t *rk_table_iter(rk_table_t *t, bool fill_cache);

/* Parses a varint64 offset + size handle. */
bool rk_handle_decode(rk_slice_t v, uint64_t *off, uint64_t *size);

#endif
