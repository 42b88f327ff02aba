/*
 * Fuzz targets for the LSM readers (see lsm_targets.h). The readers take
 * files, so each input is written to a file first: the log to a memfd
 * (opened again through /proc/self/fd, as rk_wal_replay opens a path),
 * the table to NNNNNN.sst in a private temporary directory made once per
 * process. Walks are bounded so that a malformed input that makes a
 * reader loop would show up as a hang, not as a slow fuzzer. The table
 * reader logs each corruption it finds at ERROR; `make fuzz` runs these
 * targets with -close_fd_mask=2 so the logging does not slow them.
 */
#include "lsm_targets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "batch.h"
#include "block.h"
#include "cache.h"
#include "memtable.h"
#include "table.h"
#include "wal.h"

#define MAX_STEPS 100000

static rk_status_t check_op(void *arg, uint64_t seq, int type, rk_slice_t k,
                            rk_slice_t v)
{
	(void)arg, (void)seq, (void)type, (void)k, (void)v;
	return RK_OK;
}

static rk_status_t apply_op(void *arg, uint64_t seq, int type, rk_slice_t k,
                            rk_slice_t v)
{
	return rk_memtable_add(arg, seq, type, k, v);
}

static rk_status_t replay_record(void *arg, const uint8_t *p, size_t n)
{
	rk_status_t st = rk_batch_walk(p, n, check_op, NULL);
	if (st != RK_OK)
		return st;
	return rk_batch_walk(p, n, apply_op, arg);
}

int rk_fuzz_lsm_log(const uint8_t *data, size_t size)
{
	int fd = memfd_create("rk-fuzz-log", MFD_CLOEXEC);
	if (fd < 0)
		return 0;
	int reached = 0;
	if (size == 0 || write(fd, data, size) == (ssize_t)size) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		rk_memtable_t *m;
		if (rk_memtable_new(&m) == RK_OK) {
			rk_wal_report_t rep;
			rk_wal_replay(path, replay_record, m, &rep);
			reached = rep.records > 0;
			rk_memtable_unref(m);
		}
	}
	close(fd);
	return reached;
}

/* Walks IT to the end (or the start, BACKWARD), at most MAX_STEPS
 * entries, touching each key and value so a bad slice shows up under
 * ASan. */
static void walk_block(rk_block_iter_t *it, bool backward)
{
	volatile uint8_t sink = 0;
	for (int i = 0; it->valid && i < MAX_STEPS; i++) {
		if (it->key_len)
			sink ^= it->key[it->key_len - 1];
		if (it->val.n)
			sink ^= it->val.p[it->val.n - 1];
		if (backward)
			rk_block_iter_prev(it);
		else
			rk_block_iter_next(it);
	}
	(void)sink;
}

int rk_fuzz_lsm_block(const uint8_t *data, size_t size)
{
	uint8_t *copy = malloc(size ? size : 1);
	if (copy == NULL)
		return 0;
	if (size)
		memcpy(copy, data, size);
	rk_block_t *b;
	if (rk_block_new(copy, size, &b) != RK_OK)
		return 0; /* copy freed by rk_block_new */
	rk_block_iter_t it;
	rk_block_iter_init(&it);
	rk_block_iter_set(&it, b);
	rk_block_iter_seek_first(&it);
	walk_block(&it, false);
	size_t kn = size < 24 ? size : 24;
	rk_block_iter_seek(&it, rk_slice(data, kn));
	walk_block(&it, false);
	rk_block_iter_seek(&it, rk_slice(data, kn));
	walk_block(&it, true);
	rk_block_iter_seek_last(&it);
	walk_block(&it, true);
	rk_block_iter_fini(&it);
	rk_block_unref(b);
	return 1;
}

static char table_dir[64];
static rk_cache_t *table_cache;

static void table_dir_remove(void)
{
	rmdir(table_dir); /* each input's file is already unlinked */
	rk_cache_free(table_cache);
}

int rk_fuzz_lsm_table(const uint8_t *data, size_t size)
{
	if (table_dir[0] == '\0') {
		snprintf(table_dir, sizeof(table_dir),
		         "/tmp/rk-fuzz-lsm-XXXXXX");
		if (mkdtemp(table_dir) == NULL) {
			table_dir[0] = '\0';
			return 0;
		}
		if (rk_cache_new(1u << 20, &table_cache) != RK_OK)
			return 0;
		atexit(table_dir_remove);
	}
	char path[128];
	rk_lsm_file_name(path, sizeof(path), table_dir, 1, "sst");
	FILE *f = fopen(path, "wb");
	if (f == NULL)
		return 0;
	size_t put = size ? fwrite(data, 1, size, f) : 0;
	if (fclose(f) != 0 || put != size)
		return 0;
	rk_table_t *t;
	char err[256];
	int reached = 0;
	if (rk_table_open(table_dir, 1, size, table_cache, &t, err,
	                  sizeof(err)) == RK_OK) {
		reached = 1;
		rk_iter_t *it = rk_table_iter(t, true);
		if (it != NULL) {
			rk_slice_t first = {0};
			uint8_t keep[64];
			int i = 0;
			for (rk_iter_seek_first(it);
			     rk_iter_valid(it) && i < MAX_STEPS;
			     rk_iter_next(it), i++) {
				rk_slice_t k = rk_iter_key(it);
				if (i == 0 && k.n <= sizeof(keep)) {
					memcpy(keep, k.p, k.n);
					first = rk_slice(keep, k.n);
				}
				(void)rk_iter_value(it);
			}
			(void)rk_iter_status(it);
			i = 0;
			for (rk_iter_seek_last(it);
			     rk_iter_valid(it) && i < MAX_STEPS;
			     rk_iter_prev(it), i++) {
				(void)rk_iter_key(it);
				(void)rk_iter_value(it);
			}
			(void)rk_iter_status(it);
			rk_iter_free(it);
			if (first.n >= 8) {
				int type;
				uint8_t *val = NULL;
				size_t vlen;
				if (rk_table_get(t, first,
				                 rk_slice(first.p, first.n - 8),
				                 &type, &val, &vlen) == RK_OK)
					free(val);
			}
		}
		rk_table_unref(t);
	}
	unlink(path);
	return reached;
}
