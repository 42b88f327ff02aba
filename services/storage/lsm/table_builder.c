/*
 * Writing an SSTable (docs/lsm-sstable.md).
 *
 * Entries go into the current data block; once its raw size reaches
 * block_size the block is framed (LZ4 if that saves at least 1/8, type
 * byte, masked CRC32C) and written, and its last key and handle go into
 * the index block. User keys feed the bloom builder. finish() writes the
 * filter block, the index block and the footer, then fsyncs: a table is
 * durable before any manifest names it. Writes go through a 64 KiB buffer.
 */
#include "table.h"

#include <errno.h>
#include <fcntl.h>
#include <lz4.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crc32c.h"

#define WBUF 65536

static const char sst_magic[8] = {'R', 'K', 'L', 'S', 'M', 'S', 'S', 'T'};

static rk_status_t io_status(int e)
{
	return (e == ENOSPC || e == EDQUOT) ? RK_RESOURCE_EXHAUSTED
	                                    : RK_INTERNAL;
}

rk_status_t rk_table_builder_open(rk_table_builder_t *b, const char *path,
                                  size_t block_size, int compression,
                                  int bits_per_key)
{
	memset(b, 0, sizeof(*b));
	b->fd = -1;
	snprintf(b->path, sizeof(b->path), "%s", path);
	b->block_size = block_size;
	b->compression = compression;
	rk_block_builder_init(&b->data, 16);
	rk_block_builder_init(&b->index, 1);
	rk_status_t st = rk_bloom_builder_init(&b->bloom, bits_per_key);
	b->wbuf = malloc(WBUF);
	if (st == RK_OK && b->wbuf == NULL)
		st = RK_RESOURCE_EXHAUSTED;
	if (st == RK_OK) {
		b->fd =
		    open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (b->fd < 0)
			st = io_status(errno);
	}
	if (st != RK_OK) {
		rk_table_builder_abandon(b);
		return st;
	}
	return RK_OK;
}

static void release(rk_table_builder_t *b)
{
	rk_block_builder_fini(&b->data);
	rk_block_builder_fini(&b->index);
	rk_bloom_builder_fini(&b->bloom);
	free(b->wbuf);
	free(b->last);
	free(b->first);
	free(b->zbuf);
	b->wbuf = b->last = b->first = b->zbuf = NULL;
	if (b->fd >= 0)
		close(b->fd);
	b->fd = -1;
}

void rk_table_builder_abandon(rk_table_builder_t *b)
{
	release(b);
	unlink(b->path);
}

static rk_status_t flush_wbuf(rk_table_builder_t *b)
{
	size_t done = 0;
	while (done < b->wlen) {
		ssize_t r = write(b->fd, b->wbuf + done, b->wlen - done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return b->status = io_status(r < 0 ? errno : ENOSPC);
		done += (size_t)r;
	}
	b->wlen = 0;
	return RK_OK;
}

static rk_status_t emit(rk_table_builder_t *b, const void *p, size_t n)
{
	const uint8_t *q = p;
	b->offset += n;
	while (n > 0) {
		size_t room = WBUF - b->wlen;
		size_t m = n < room ? n : room;
		memcpy(b->wbuf + b->wlen, q, m);
		b->wlen += m;
		q += m;
		n -= m;
		if (b->wlen == WBUF && flush_wbuf(b) != RK_OK)
			return b->status;
	}
	return RK_OK;
}

/* Frames and writes one block; its handle goes to OFF and SIZE. */
static rk_status_t write_block(rk_table_builder_t *b, rk_slice_t raw,
                               int compress, uint64_t *off, uint64_t *size)
{
	rk_slice_t payload = raw;
	uint8_t type = 0;
	if (compress && raw.n > 0) {
		size_t bound = (size_t)LZ4_compressBound((int)raw.n) + 5;
		if (bound > b->zcap) {
			uint8_t *z = realloc(b->zbuf, bound);
			if (z == NULL)
				return b->status = RK_RESOURCE_EXHAUSTED;
			b->zbuf = z;
			b->zcap = bound;
		}
		uint8_t *p = rk_put_varint(b->zbuf, raw.n);
		size_t hdr = (size_t)(p - b->zbuf);
		int z = LZ4_compress_default((const char *)raw.p, (char *)p,
		                             (int)raw.n, (int)(bound - hdr));
		if (z > 0 && hdr + (size_t)z < raw.n - raw.n / 8) {
			payload = rk_slice(b->zbuf, hdr + (size_t)z);
			type = 1;
		}
	}
	uint8_t trailer[RK_BLOCK_TRAILER];
	trailer[0] = type;
	uint32_t c =
	    rk_crc32c_extend(rk_crc32c(payload.p, payload.n), trailer, 1);
	rk_put_u32(trailer + 1, rk_crc32c_mask(c));
	*off = b->offset;
	*size = payload.n;
	if (emit(b, payload.p, payload.n) != RK_OK ||
	    emit(b, trailer, sizeof(trailer)) != RK_OK)
		return b->status;
	return RK_OK;
}

static rk_status_t finish_data_block(rk_table_builder_t *b)
{
	if (b->data.entries == 0)
		return RK_OK;
	rk_slice_t raw;
	rk_status_t st = rk_block_builder_finish(&b->data, &raw);
	if (st != RK_OK)
		return b->status = st;
	uint64_t off, size;
	if (write_block(b, raw, b->compression, &off, &size) != RK_OK)
		return b->status;
	uint8_t h[20];
	uint8_t *p = rk_put_varint(h, off);
	p = rk_put_varint(p, size);
	rk_block_builder_add(&b->index, rk_slice(b->last, b->last_len),
	                     rk_slice(h, (size_t)(p - h)));
	rk_block_builder_reset(&b->data);
	return RK_OK;
}

rk_status_t rk_table_builder_add(rk_table_builder_t *b, rk_slice_t ikey,
                                 rk_slice_t val)
{
	if (b->status != RK_OK)
		return b->status;
	if (b->last_cap < ikey.n) {
		size_t cap = ikey.n * 2;
		uint8_t *n = realloc(b->last, cap);
		if (n == NULL)
			return b->status = RK_RESOURCE_EXHAUSTED;
		b->last = n;
		b->last_cap = cap;
	}
	if (b->entries == 0) {
		b->first = malloc(ikey.n);
		if (b->first == NULL)
			return b->status = RK_RESOURCE_EXHAUSTED;
		memcpy(b->first, ikey.p, ikey.n);
		b->first_len = ikey.n;
	}
	rk_slice_t uk = rk_ikey_user(ikey);
	rk_bloom_builder_add(&b->bloom, uk);
	rk_block_builder_add(&b->data, ikey, val);
	memcpy(b->last, ikey.p, ikey.n);
	b->last_len = ikey.n;
	b->entries++;
	if (rk_block_builder_size(&b->data) >= b->block_size)
		return finish_data_block(b);
	return RK_OK;
}

uint64_t rk_table_builder_size(const rk_table_builder_t *b)
{
	return b->offset + rk_block_builder_size(&b->data) / 2;
}

rk_status_t rk_table_builder_finish(rk_table_builder_t *b, uint64_t *size)
{
	uint64_t foff = 0, fsize = 0, ioff = 0, isize = 0;
	uint8_t *filter = NULL;
	size_t flen = 0;
	rk_status_t st = b->status;
	if (st == RK_OK)
		st = finish_data_block(b);
	if (st == RK_OK)
		st = rk_bloom_builder_finish(&b->bloom, &filter, &flen);
	if (st == RK_OK)
		st = write_block(b, rk_slice(filter, flen), 0, &foff, &fsize);
	free(filter);
	rk_slice_t raw;
	if (st == RK_OK)
		st = rk_block_builder_finish(&b->index, &raw);
	if (st == RK_OK)
		st = write_block(b, raw, 0, &ioff, &isize);
	if (st == RK_OK) {
		uint8_t f[RK_TABLE_FOOTER];
		rk_put_u64(f, foff);
		rk_put_u64(f + 8, fsize);
		rk_put_u64(f + 16, ioff);
		rk_put_u64(f + 24, isize);
		rk_put_u64(f + 32, b->entries);
		rk_put_u32(f + 40, RK_TABLE_VERSION);
		rk_put_u32(f + 44, rk_crc32c_mask(rk_crc32c(f, 44)));
		memcpy(f + 48, sst_magic, 8);
		st = emit(b, f, sizeof(f));
	}
	if (st == RK_OK)
		st = flush_wbuf(b);
	if (st == RK_OK && fsync(b->fd) != 0)
		st = io_status(errno);
	if (st != RK_OK) {
		rk_table_builder_abandon(b);
		return st;
	}
	*size = b->offset;
	release(b);
	return RK_OK;
}
