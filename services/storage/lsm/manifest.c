/*
 * Manifest reader and writer (docs/lsm-manifest.md).
 *
 * The manifest is small (about 60 bytes a table), so it is rewritten whole
 * on every change rather than appended to: there is no edit log to replay
 * and no partial state to reason about. Atomicity is the classic
 * write-temp, fsync, rename, fsync-directory sequence.
 */
#include "manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"

static const char man_magic[8] = {'R', 'K', 'L', 'S', 'M', 'M', 'A', 'N'};

rk_status_t rk_lsm_sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return RK_INTERNAL;
	int r = fsync(fd);
	close(fd);
	return r == 0 ? RK_OK : RK_INTERNAL;
}

static rk_status_t io_status(int e)
{
	return (e == ENOSPC || e == EDQUOT) ? RK_RESOURCE_EXHAUSTED
	                                    : RK_INTERNAL;
}

rk_status_t rk_manifest_write(const char *dir, const rk_manifest_t *m,
                              char *err, size_t errlen)
{
	const rk_version_t *v = m->version;
	size_t cap = 16 + 28 + 4;
	size_t ntables = 0;
	for (int l = 0; l < RK_LSM_LEVELS; l++) {
		for (size_t i = 0; i < v->n[l]; i++) {
			const rk_file_t *f = v->files[l][i];
			cap += 1 + 24 + 10 + f->smallest_len + f->largest_len;
			ntables++;
		}
	}
	uint8_t *buf = malloc(cap);
	if (buf == NULL)
		return RK_RESOURCE_EXHAUSTED;
	uint8_t *p = buf + 16;
	rk_put_u64(p, m->next_file);
	rk_put_u64(p + 8, m->last_seq);
	rk_put_u64(p + 16, m->log_number);
	rk_put_u32(p + 24, (uint32_t)ntables);
	p += 28;
	for (int l = 0; l < RK_LSM_LEVELS; l++) {
		for (size_t i = 0; i < v->n[l]; i++) {
			const rk_file_t *f = v->files[l][i];
			*p++ = (uint8_t)l;
			rk_put_u64(p, f->number);
			rk_put_u64(p + 8, f->size);
			rk_put_u64(p + 16, f->entries);
			p += 24;
			p = rk_put_varint(p, f->smallest_len);
			memcpy(p, f->smallest, f->smallest_len);
			p += f->smallest_len;
			p = rk_put_varint(p, f->largest_len);
			memcpy(p, f->largest, f->largest_len);
			p += f->largest_len;
		}
	}
	size_t body = (size_t)(p - buf) - 16;
	memcpy(buf, man_magic, 8);
	rk_put_u32(buf + 8, 1);
	rk_put_u32(buf + 12, (uint32_t)body);
	rk_put_u32(p, rk_crc32c_mask(rk_crc32c(buf, 16 + body)));
	size_t total = 16 + body + 4;

	char tmp[4096], path[4096];
	snprintf(tmp, sizeof(tmp), "%s/MANIFEST.tmp", dir);
	snprintf(path, sizeof(path), "%s/MANIFEST", dir);
	rk_status_t st = RK_OK;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		st = io_status(errno);
		goto out;
	}
	size_t done = 0;
	while (done < total) {
		ssize_t r = write(fd, buf + done, total - done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			st = io_status(r < 0 ? errno : ENOSPC);
			break;
		}
		done += (size_t)r;
	}
	if (st == RK_OK && fsync(fd) != 0)
		st = io_status(errno);
	close(fd);
	if (st == RK_OK && rename(tmp, path) != 0)
		st = io_status(errno);
	if (st == RK_OK)
		st = rk_lsm_sync_dir(dir);
	if (st != RK_OK)
		unlink(tmp);
out:
	if (st != RK_OK && err)
		snprintf(err, errlen, "writing %s: %s", path,
		         st == RK_RESOURCE_EXHAUSTED ? "no space"
		                                     : "I/O error");
	free(buf);
	return st;
}

static rk_status_t corrupt(char *err, size_t errlen, const char *dir,
                           const char *why)
{
	if (err)
		snprintf(err, errlen, "%s/MANIFEST is corrupt: %s", dir, why);
	return RK_DATA_LOSS;
}

rk_status_t rk_manifest_read(const char *dir, rk_cache_t *cache,
                             rk_manifest_t *m, char *err, size_t errlen)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/MANIFEST", dir);
	memset(m, 0, sizeof(*m));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return RK_NOT_FOUND;
		if (err)
			snprintf(err, errlen, "open %s: %s", path,
			         strerror(errno));
		return RK_INTERNAL;
	}
	struct stat sb;
	if (fstat(fd, &sb) != 0 || sb.st_size > (64 << 20)) {
		close(fd);
		return corrupt(err, errlen, dir, "unreadable or too large");
	}
	size_t size = (size_t)sb.st_size;
	uint8_t *buf = malloc(size ? size : 1);
	if (buf == NULL) {
		close(fd);
		return RK_RESOURCE_EXHAUSTED;
	}
	ssize_t got = read(fd, buf, size);
	close(fd);
	rk_status_t st = RK_DATA_LOSS;
	rk_edit_t edit;
	rk_edit_init(&edit);
	if (got != (ssize_t)size || size < 20) {
		corrupt(err, errlen, dir, "too short");
		goto out;
	}
	uint32_t body = rk_get_u32(buf + 12);
	if (memcmp(buf, man_magic, 8) != 0) {
		corrupt(err, errlen, dir, "bad magic");
		goto out;
	}
	if (rk_get_u32(buf + 8) != 1) {
		corrupt(err, errlen, dir, "unknown version");
		goto out;
	}
	if ((size_t)body + 20 != size) {
		corrupt(err, errlen, dir, "length does not match the file");
		goto out;
	}
	if (rk_crc32c_unmask(rk_get_u32(buf + 16 + body)) !=
	    rk_crc32c(buf, 16 + (size_t)body)) {
		corrupt(err, errlen, dir, "checksum mismatch");
		goto out;
	}
	const uint8_t *p = buf + 16, *end = buf + 16 + body;
	if (body < 28) {
		corrupt(err, errlen, dir, "body too short");
		goto out;
	}
	m->next_file = rk_get_u64(p);
	m->last_seq = rk_get_u64(p + 8);
	m->log_number = rk_get_u64(p + 16);
	uint32_t n = rk_get_u32(p + 24);
	p += 28;
	for (uint32_t i = 0; i < n; i++) {
		if (end - p < 25) {
			corrupt(err, errlen, dir, "table entry truncated");
			goto out;
		}
		int level = *p++;
		uint64_t number = rk_get_u64(p), fsize = rk_get_u64(p + 8);
		uint64_t entries = rk_get_u64(p + 16);
		p += 24;
		uint32_t sl, ll;
		p = rk_get_varint32(p, end, &sl);
		if (p == NULL || (size_t)(end - p) < sl) {
			corrupt(err, errlen, dir, "bad smallest key");
			goto out;
		}
		rk_slice_t small = rk_slice(p, sl);
		p += sl;
		p = rk_get_varint32(p, end, &ll);
		if (p == NULL || (size_t)(end - p) < ll) {
			corrupt(err, errlen, dir, "bad largest key");
			goto out;
		}
		rk_slice_t large = rk_slice(p, ll);
		p += ll;
		if (level >= RK_LSM_LEVELS || sl < RK_IKEY_TRAILER ||
		    ll < RK_IKEY_TRAILER || rk_ikey_cmp(small, large) > 0) {
			corrupt(err, errlen, dir, "bad table entry");
			goto out;
		}
		rk_file_t *f = rk_file_new(dir, cache, number, fsize, entries,
		                           small, large);
		if (f == NULL) {
			st = RK_RESOURCE_EXHAUSTED;
			goto out;
		}
		st = rk_edit_add(&edit, level, f);
		rk_file_unref(f);
		if (st != RK_OK)
			goto out;
		st = RK_DATA_LOSS;
	}
	if (p != end) {
		corrupt(err, errlen, dir, "trailing bytes in body");
		goto out;
	}
	rk_version_t *empty = rk_version_new();
	m->version = empty ? rk_version_apply(empty, &edit) : NULL;
	rk_version_unref(empty);
	st = m->version ? RK_OK : RK_RESOURCE_EXHAUSTED;
out:
	rk_edit_fini(&edit);
	free(buf);
	return st;
}
