/*
 * Reading an SSTable (docs/lsm-sstable.md).
 *
 * Opening reads and checks the footer, then the index and filter blocks,
 * which stay in memory as long as the table is open. The file is mapped
 * read-only (pread is the fallback), so reading a block costs no syscall:
 * on demand each data block is checked (frame CRC, LZ4 length, restart
 * array), decoded and kept in the shared block cache. Every check that fails
 * gives RK_DATA_LOSS and a log line naming the file, block offset and cause: a
 * corrupt block is reported, never returned as data.
 *
 * The table iterator is two-level: a block iterator over the index block
 * picks data blocks, a second one walks the current data block.
 */
#include "table.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lz4.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "crc32c.h"
#include "wal.h"

#define MAX_BLOCK (64u << 20)

static const char sst_magic[8] = {'R', 'K', 'L', 'S', 'M', 'S', 'S', 'T'};

bool rk_handle_decode(rk_slice_t v, uint64_t *off, uint64_t *size)
{
	const uint8_t *p = rk_get_varint(v.p, v.p + v.n, off, 10);
	if (p == NULL)
		return false;
	p = rk_get_varint(p, v.p + v.n, size, 10);
	return p != NULL && p == v.p + v.n;
}

static rk_status_t pread_all(int fd, uint8_t *buf, size_t n, uint64_t off)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r =
		    pread(fd, buf + done, n - done, (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return RK_INTERNAL;
		if (r == 0)
			return RK_DATA_LOSS; /* shorter than the manifest says
			                      */
		done += (size_t)r;
	}
	return RK_OK;
}

/* Reads and checks the frame at OFF/SIZE; *RAW is the decoded payload
 * (malloc'd). WHY is filled on failure. */
static rk_status_t read_frame(rk_table_t *t, uint64_t off, uint64_t size,
                              uint8_t **raw, size_t *rawlen, const char **why)
{
	if (size > MAX_BLOCK || off > t->size - RK_TABLE_FOOTER ||
	    size + RK_BLOCK_TRAILER > t->size - RK_TABLE_FOOTER - off) {
		*why = "block handle out of range";
		return RK_DATA_LOSS;
	}
	size_t n = (size_t)size;
	uint8_t *copy = NULL; /* owned bytes when not mapped */
	const uint8_t *buf;
	if (t->map != NULL) {
		buf = t->map + off; /* no syscall, no copy */
	} else {
		copy = malloc(n + RK_BLOCK_TRAILER);
		if (copy == NULL)
			return RK_RESOURCE_EXHAUSTED;
		rk_status_t st =
		    pread_all(t->fd, copy, n + RK_BLOCK_TRAILER, off);
		if (st != RK_OK) {
			*why = "read failed";
			free(copy);
			return st;
		}
		buf = copy;
	}
	uint32_t c = rk_crc32c(buf, n + 1);
	if (rk_crc32c_unmask(rk_get_u32(buf + n + 1)) != c) {
		*why = "checksum mismatch";
		free(copy);
		return RK_DATA_LOSS;
	}
	if (buf[n] == 0) {
		if (copy == NULL) {
			copy = malloc(n ? n : 1);
			if (copy == NULL)
				return RK_RESOURCE_EXHAUSTED;
			memcpy(copy, buf, n);
		}
		*raw = copy;
		*rawlen = n;
		return RK_OK;
	}
	uint32_t len;
	const uint8_t *p = rk_get_varint32(buf, buf + n, &len);
	if (buf[n] != 1 || p == NULL || len > MAX_BLOCK) {
		*why = buf[n] != 1 ? "unknown block type" : "bad LZ4 header";
		free(copy);
		return RK_DATA_LOSS;
	}
	uint8_t *out = malloc(len ? len : 1);
	if (out == NULL) {
		free(copy);
		return RK_RESOURCE_EXHAUSTED;
	}
	int r = LZ4_decompress_safe((const char *)p, (char *)out,
	                            (int)(buf + n - p), (int)len);
	free(copy);
	if (r < 0 || (uint32_t)r != len) {
		*why = "LZ4 data does not decode";
		free(out);
		return RK_DATA_LOSS;
	}
	*raw = out;
	*rawlen = len;
	return RK_OK;
}

static void report(const rk_table_t *t, uint64_t off, const char *why,
                   char *err, size_t errlen)
{
	char msg[200];
	snprintf(msg, sizeof(msg),
	         "table %06" PRIu64 ".sst: block at %" PRIu64 ": %s", t->number,
	         off, why);
	rk_error("lsm: %s", msg);
	if (err)
		snprintf(err, errlen, "%s", msg);
}

rk_status_t rk_table_read_block(rk_table_t *t, uint64_t off, uint64_t size,
                                bool fill_cache, rk_block_t **out)
{
	if (t->cache != NULL) {
		rk_block_t *b = rk_cache_lookup(t->cache, t->number, off);
		if (b != NULL) {
			*out = b;
			return RK_OK;
		}
	}
	uint8_t *raw;
	size_t n;
	const char *why = "";
	rk_status_t st = read_frame(t, off, size, &raw, &n, &why);
	if (st == RK_OK) {
		st = rk_block_new(raw, n, out);
		why = "malformed block";
	}
	if (st == RK_DATA_LOSS || st == RK_INTERNAL)
		report(t, off, why, NULL, 0);
	if (st == RK_OK && fill_cache && t->cache != NULL)
		rk_cache_insert(t->cache, t->number, off, *out);
	return st;
}

rk_status_t rk_table_open(const char *dir, uint64_t number, uint64_t size,
                          rk_cache_t *cache, rk_table_t **out, char *err,
                          size_t errlen)
{
	char path[4096];
	rk_lsm_file_name(path, sizeof(path), dir, number, "sst");
	rk_table_t *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return RK_RESOURCE_EXHAUSTED;
	t->number = number;
	t->size = size;
	t->cache = cache;
	t->refs = 1;
	t->fd = open(path, O_RDONLY | O_CLOEXEC);
	rk_status_t st = RK_OK;
	const char *why = "";
	uint64_t where = 0;
	uint8_t f[RK_TABLE_FOOTER];
	if (t->fd < 0) {
		st = errno == ENOENT ? RK_DATA_LOSS : RK_INTERNAL;
		why = "cannot open the file";
		goto fail;
	}
	struct stat sb;
	if (fstat(t->fd, &sb) != 0 || (uint64_t)sb.st_size != size) {
		st = RK_DATA_LOSS; /* also keeps the mapping inside the file */
		why = "file size differs from the manifest";
		goto fail;
	}
	where = size - RK_TABLE_FOOTER;
	if (size < RK_TABLE_FOOTER ||
	    (st = pread_all(t->fd, f, sizeof(f), where)) != RK_OK) {
		st = RK_DATA_LOSS;
		why = "file too short for a footer";
		goto fail;
	}
	/* Map the whole table: reads then cost no syscall and no copy.
	 * Tables are immutable, so the mapping never changes under us. */
	void *m = mmap(NULL, size, PROT_READ, MAP_SHARED, t->fd, 0);
	if (m != MAP_FAILED)
		t->map = m;
	st = RK_DATA_LOSS;
	if (memcmp(f + 48, sst_magic, 8) != 0) {
		why = "bad footer magic";
		goto fail;
	}
	if (rk_crc32c_unmask(rk_get_u32(f + 44)) != rk_crc32c(f, 44)) {
		why = "footer checksum mismatch";
		goto fail;
	}
	if (rk_get_u32(f + 40) != RK_TABLE_VERSION) {
		why = "unknown table format version";
		goto fail;
	}
	uint64_t foff = rk_get_u64(f), fsize = rk_get_u64(f + 8);
	uint64_t ioff = rk_get_u64(f + 16), isize = rk_get_u64(f + 24);
	t->entries = rk_get_u64(f + 32);
	if (foff > ioff || fsize > ioff - foff ||
	    ioff - foff - fsize < RK_BLOCK_TRAILER) {
		why = "filter and index blocks overlap";
		goto fail;
	}
	uint8_t *raw;
	size_t n;
	where = ioff;
	st = read_frame(t, ioff, isize, &raw, &n, &why);
	if (st != RK_OK)
		goto fail;
	st = rk_block_new(raw, n, &t->index);
	if (st != RK_OK) {
		why = "malformed index block";
		goto fail;
	}
	where = foff;
	st = read_frame(t, foff, fsize, &t->filter_data, &n, &why);
	if (st != RK_OK)
		goto fail;
	st = rk_bloom_parse(&t->bloom, t->filter_data, n);
	if (st != RK_OK) {
		why = "malformed filter block";
		goto fail;
	}
	*out = t;
	return RK_OK;
fail:
	report(t, where, why, err, errlen);
	rk_table_unref(t);
	return st;
}

void rk_table_ref(rk_table_t *t)
{
	__atomic_fetch_add(&t->refs, 1, __ATOMIC_RELAXED);
}

void rk_table_unref(rk_table_t *t)
{
	if (t == NULL || __atomic_fetch_sub(&t->refs, 1, __ATOMIC_ACQ_REL) != 1)
		return;
	if (t->map != NULL)
		munmap((void *)t->map, t->size);
	if (t->fd >= 0)
		close(t->fd);
	rk_block_unref(t->index);
	free(t->filter_data);
	free(t);
}

rk_status_t rk_table_get(rk_table_t *t, rk_slice_t ikey, rk_slice_t user_key,
                         int *type, uint8_t **val, size_t *vlen)
{
	if (!rk_bloom_may_contain(&t->bloom, user_key))
		return RK_NOT_FOUND;
	rk_block_iter_t ii, di;
	rk_block_iter_init(&ii);
	rk_block_iter_init(&di);
	rk_block_iter_set(&ii, t->index);
	rk_block_iter_seek(&ii, ikey);
	rk_status_t st = RK_NOT_FOUND;
	if (!ii.valid) {
		if (ii.status != RK_OK) {
			st = ii.status;
			report(t, 0, "malformed index entry", NULL, 0);
		}
		goto out;
	}
	uint64_t off, size;
	if (!rk_handle_decode(ii.val, &off, &size)) {
		report(t, 0, "bad block handle in index", NULL, 0);
		st = RK_DATA_LOSS;
		goto out;
	}
	rk_block_t *b;
	st = rk_table_read_block(t, off, size, true, &b);
	if (st != RK_OK)
		goto out;
	rk_block_iter_set(&di, b);
	rk_block_unref(b);
	rk_block_iter_seek(&di, ikey);
	st = RK_NOT_FOUND;
	if (!di.valid) {
		if (di.status != RK_OK) {
			st = di.status;
			report(t, off, "malformed data block entry", NULL, 0);
		}
		goto out;
	}
	rk_slice_t k = rk_slice(di.key, di.key_len);
	rk_slice_t uk = rk_ikey_user(k);
	if (rk_bytes_cmp(uk.p, uk.n, user_key.p, user_key.n) != 0)
		goto out;
	int ty = (int)(rk_ikey_trailer(k) & 0xff);
	if (ty != RK_TYPE_VALUE && ty != RK_TYPE_DELETE) {
		report(t, off, "unknown entry type", NULL, 0);
		st = RK_DATA_LOSS;
		goto out;
	}
	*type = ty;
	*val = malloc(di.val.n ? di.val.n : 1);
	if (*val == NULL) {
		st = RK_RESOURCE_EXHAUSTED;
		goto out;
	}
	if (di.val.n)
		memcpy(*val, di.val.p, di.val.n);
	*vlen = di.val.n;
	st = RK_OK;
out:
	rk_block_iter_fini(&ii);
	rk_block_iter_fini(&di);
	return st;
}

typedef struct table_iter {
	rk_iter_t base;     /* must be first */
	rk_table_t *t;      /* referenced */
	bool fill_cache;    /* insert blocks read into the cache */
	rk_block_iter_t ii; /* over the index block */
	rk_block_iter_t di; /* over the current data block */
	rk_status_t status; /* first error */
} table_iter_t;

/* Loads the data block the index iterator points at. */
static bool load_block(table_iter_t *it)
{
	rk_block_iter_set(&it->di, NULL);
	if (!it->ii.valid) {
		if (it->ii.status != RK_OK && it->status == RK_OK)
			it->status = it->ii.status;
		return false;
	}
	uint64_t off, size;
	if (!rk_handle_decode(it->ii.val, &off, &size)) {
		report(it->t, 0, "bad block handle in index", NULL, 0);
		it->status = RK_DATA_LOSS;
		return false;
	}
	rk_block_t *b;
	rk_status_t st =
	    rk_table_read_block(it->t, off, size, it->fill_cache, &b);
	if (st != RK_OK) {
		it->status = st;
		return false;
	}
	rk_block_iter_set(&it->di, b);
	rk_block_unref(b);
	return true;
}

/* Moves past empty or finished data blocks, forward or BACKWARD. */
static void skip_exhausted(table_iter_t *it, bool backward)
{
	while (!it->di.valid && it->status == RK_OK) {
		if (it->di.status != RK_OK) {
			report(it->t, 0, "malformed data block entry", NULL, 0);
			it->status = it->di.status;
			return;
		}
		if (!it->ii.valid)
			return;
		if (backward)
			rk_block_iter_prev(&it->ii);
		else
			rk_block_iter_next(&it->ii);
		if (!load_block(it))
			return;
		if (backward)
			rk_block_iter_seek_last(&it->di);
		else
			rk_block_iter_seek_first(&it->di);
	}
}

static void ti_seek_last(rk_iter_t *base)
{
	table_iter_t *it = (table_iter_t *)base;
	rk_block_iter_seek_last(&it->ii);
	if (load_block(it))
		rk_block_iter_seek_last(&it->di);
	skip_exhausted(it, true);
}

static void ti_prev(rk_iter_t *base)
{
	table_iter_t *it = (table_iter_t *)base;
	rk_block_iter_prev(&it->di);
	skip_exhausted(it, true);
}

static void ti_seek_first(rk_iter_t *base)
{
	table_iter_t *it = (table_iter_t *)base;
	rk_block_iter_seek_first(&it->ii);
	if (load_block(it))
		rk_block_iter_seek_first(&it->di);
	skip_exhausted(it, false);
}

static void ti_seek(rk_iter_t *base, rk_slice_t k)
{
	table_iter_t *it = (table_iter_t *)base;
	rk_block_iter_seek(&it->ii, k);
	if (load_block(it))
		rk_block_iter_seek(&it->di, k);
	skip_exhausted(it, false);
}

static void ti_next(rk_iter_t *base)
{
	table_iter_t *it = (table_iter_t *)base;
	rk_block_iter_next(&it->di);
	skip_exhausted(it, false);
}

static bool ti_valid(const rk_iter_t *base)
{
	const table_iter_t *it = (const table_iter_t *)base;
	return it->status == RK_OK && it->di.valid;
}

static rk_slice_t ti_key(const rk_iter_t *base)
{
	const table_iter_t *it = (const table_iter_t *)base;
	return rk_slice(it->di.key, it->di.key_len);
}

static rk_slice_t ti_value(const rk_iter_t *base)
{
	return ((const table_iter_t *)base)->di.val;
}

static rk_status_t ti_status(const rk_iter_t *base)
{
	return ((const table_iter_t *)base)->status;
}

static void ti_free(rk_iter_t *base)
{
	table_iter_t *it = (table_iter_t *)base;
	rk_block_iter_fini(&it->ii);
	rk_block_iter_fini(&it->di);
	rk_table_unref(it->t);
	free(it);
}

static const rk_iter_ops_t table_ops = {
    .seek_first = ti_seek_first,
    .seek = ti_seek,
    .next = ti_next,
    .seek_last = ti_seek_last,
    .prev = ti_prev,
    .valid = ti_valid,
    .key = ti_key,
    .value = ti_value,
    .status = ti_status,
    .free = ti_free,
};

rk_iter_t *rk_table_iter(rk_table_t *t, bool fill_cache)
{
	table_iter_t *it = calloc(1, sizeof(*it));
	if (it == NULL)
		return NULL;
	it->base.ops = &table_ops;
	rk_table_ref(t);
	it->t = t;
	it->fill_cache = fill_cache;
	rk_block_iter_init(&it->ii);
	rk_block_iter_init(&it->di);
	rk_block_iter_set(&it->ii, t->index);
	return &it->base;
}
