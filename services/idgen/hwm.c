/*
 * The persisted high-water mark; see hwm.h for the contract and
 * docs/idgen.md for the file format.
 *
 * The record is 32 bytes, little-endian:
 *
 *	0   8  magic "RKIDHWM1"
 *	8   4  version (1)
 *	12  2  datacenter id
 *	14  2  worker id
 *	16  8  mark, Unix ms: no ID at or after it has been issued
 *	24  8  FNV-1a 64 of bytes 0..23
 *
 * Durability. A new mark is written to "<file>.tmp", fsync'd, renamed
 * over the file and the directory fsync'd, so after a crash the file holds
 * either the old mark or the new one, whole. The temp file left by a
 * crash before the rename is ignored and overwritten by the next store.
 *
 * Exclusion. The lock file is separate from the mark file because the
 * rename replaces the mark file's inode: a lock on it would not survive
 * the first store. The kernel drops the flock when the process dies, so a
 * crash never leaves a stale lock.
 */
#include "hwm.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static const uint8_t magic[8] = {'R', 'K', 'I', 'D', 'H', 'W', 'M', '1'};

struct rk_hwm {
	char path[PATH_MAX]; /* the mark file */
	char tmp[PATH_MAX];  /* its temp file */
	int dir_fd;          /* the directory, for fsync after rename */
	int lock_fd;         /* the lock file, flock'd */
	uint32_t dc;         /* identity written into the record */
	uint32_t worker;     /* identity written into the record */
	uint64_t mark;       /* last persisted */
	uint64_t stores;     /* marks persisted since open */
};

static uint64_t fnv1a64(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

void rk_hwm_encode(uint32_t dc, uint32_t worker, uint64_t mark_ms,
                   uint8_t out[RK_HWM_FILE_BYTES])
{
	memcpy(out, magic, 8);
	put_le(out + 8, 1, 4);
	put_le(out + 12, dc, 2);
	put_le(out + 14, worker, 2);
	put_le(out + 16, mark_ms, 8);
	put_le(out + 24, fnv1a64(out, 24), 8);
}

rk_status_t rk_hwm_decode(const uint8_t in[RK_HWM_FILE_BYTES], uint32_t *dc,
                          uint32_t *worker, uint64_t *mark_ms)
{
	if (memcmp(in, magic, 8) != 0 || get_le(in + 8, 4) != 1 ||
	    get_le(in + 24, 8) != fnv1a64(in, 24))
		return RK_DATA_LOSS;
	*dc = (uint32_t)get_le(in + 12, 2);
	*worker = (uint32_t)get_le(in + 14, 2);
	*mark_ms = get_le(in + 16, 8);
	return RK_OK;
}

static rk_status_t fail(char *why, size_t len, rk_status_t st, const char *what,
                        const char *path)
{
	snprintf(why, len, "%s %s: %s", what, path, strerror(errno));
	return st;
}

/* Reads the mark file, if any. */
static rk_status_t read_mark(rk_hwm_t *h, char *why, size_t len)
{
	int fd = open(h->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT) {
			h->mark = 0;
			return RK_OK;
		}
		return fail(why, len, RK_UNAVAILABLE, "cannot open", h->path);
	}
	uint8_t buf[RK_HWM_FILE_BYTES + 1];
	ssize_t n = 0, r = 0;
	while (n < (ssize_t)sizeof(buf) &&
	       (r = read(fd, buf + n, sizeof(buf) - (size_t)n)) > 0)
		n += r;
	if (r < 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return fail(why, len, RK_UNAVAILABLE, "cannot read", h->path);
	}
	close(fd);
	uint32_t dc, worker;
	if (n != RK_HWM_FILE_BYTES ||
	    rk_hwm_decode(buf, &dc, &worker, &h->mark) != RK_OK) {
		snprintf(why, len,
		         "%s is torn or corrupt (%zd bytes, expected a valid "
		         "%d-byte record): refusing to guess the high-water "
		         "mark; see docs/idgen.md",
		         h->path, n, RK_HWM_FILE_BYTES);
		return RK_DATA_LOSS;
	}
	if (dc != h->dc || worker != h->worker) {
		snprintf(why, len,
		         "%s holds the mark of datacenter %u worker %u, not of "
		         "datacenter %u worker %u",
		         h->path, dc, worker, h->dc, h->worker);
		return RK_FAILED_PRECONDITION;
	}
	return RK_OK;
}

rk_status_t rk_hwm_open(const char *dir, uint32_t dc, uint32_t worker,
                        rk_hwm_t **out, uint64_t *mark_ms, char *why,
                        size_t len)
{
	rk_hwm_t *h = calloc(1, sizeof(*h));
	if (h == NULL) {
		snprintf(why, len, "out of memory");
		return RK_RESOURCE_EXHAUSTED;
	}
	h->dir_fd = -1;
	h->lock_fd = -1;
	h->dc = dc;
	h->worker = worker;
	rk_status_t st = RK_OK;
	char lock[PATH_MAX];
	if (snprintf(h->path, sizeof(h->path), "%s/idgen-dc%u-w%u.hwm", dir, dc,
	             worker) >= (int)sizeof(h->path) ||
	    snprintf(h->tmp, sizeof(h->tmp), "%s.tmp", h->path) >=
	        (int)sizeof(h->tmp) ||
	    snprintf(lock, sizeof(lock), "%s/idgen-dc%u-w%u.lock", dir, dc,
	             worker) >= (int)sizeof(lock)) {
		snprintf(why, len, "data directory path too long: %s", dir);
		st = RK_INVALID_ARGUMENT;
		goto fail;
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		st = fail(why, len, RK_UNAVAILABLE, "cannot make directory",
		          dir);
		goto fail;
	}
	h->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (h->dir_fd < 0) {
		st = fail(why, len, RK_UNAVAILABLE, "cannot open directory",
		          dir);
		goto fail;
	}
	h->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (h->lock_fd < 0) {
		st = fail(why, len, RK_UNAVAILABLE, "cannot open", lock);
		goto fail;
	}
	if (flock(h->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno == EWOULDBLOCK) {
			char pid[32] = "";
			ssize_t n = pread(h->lock_fd, pid, sizeof(pid) - 1, 0);
			pid[n > 0 ? n : 0] = '\0';
			pid[strcspn(pid, "\n")] = '\0';
			snprintf(why, len,
			         "datacenter %u worker %u is already held by "
			         "another ringkv-idgen (pid %s) using %s: two "
			         "generators must never share an identity",
			         dc, worker, pid[0] ? pid : "?", dir);
			st = RK_ALREADY_EXISTS;
		} else {
			st =
			    fail(why, len, RK_UNAVAILABLE, "cannot lock", lock);
		}
		goto fail;
	}
	char pid[32];
	int plen = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(h->lock_fd, 0) != 0 ||
	    pwrite(h->lock_fd, pid, (size_t)plen, 0) != plen) {
		st = fail(why, len, RK_UNAVAILABLE, "cannot write", lock);
		goto fail;
	}
	st = read_mark(h, why, len);
	if (st != RK_OK)
		goto fail;
	*mark_ms = h->mark;
	*out = h;
	return RK_OK;
fail:
	rk_hwm_close(h);
	return st;
}

rk_status_t rk_hwm_store(rk_hwm_t *h, uint64_t mark_ms, char *why, size_t len)
{
	if (mark_ms < h->mark)
		mark_ms = h->mark;
	uint8_t rec[RK_HWM_FILE_BYTES];
	rk_hwm_encode(h->dc, h->worker, mark_ms, rec);
	int fd = open(h->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return fail(why, len, RK_UNAVAILABLE, "cannot create", h->tmp);
	ssize_t n = write(fd, rec, sizeof(rec));
	if (n != (ssize_t)sizeof(rec) || fsync(fd) != 0) {
		if (n >= 0 && n != (ssize_t)sizeof(rec))
			errno = EIO;
		rk_status_t st =
		    fail(why, len, RK_UNAVAILABLE, "cannot write", h->tmp);
		close(fd);
		return st;
	}
	if (close(fd) != 0)
		return fail(why, len, RK_UNAVAILABLE, "cannot write", h->tmp);
	if (rename(h->tmp, h->path) != 0)
		return fail(why, len, RK_UNAVAILABLE, "cannot rename onto",
		            h->path);
	if (fsync(h->dir_fd) != 0)
		return fail(why, len, RK_UNAVAILABLE,
		            "cannot fsync the directory of", h->path);
	h->mark = mark_ms;
	h->stores++;
	return RK_OK;
}

uint64_t rk_hwm_mark(const rk_hwm_t *h)
{
	return h->mark;
}

uint64_t rk_hwm_stores(const rk_hwm_t *h)
{
	return h->stores;
}

const char *rk_hwm_path(const rk_hwm_t *h)
{
	return h->path;
}

void rk_hwm_close(rk_hwm_t *h)
{
	if (h == NULL)
		return;
	if (h->lock_fd >= 0)
		close(h->lock_fd); /* drops the flock */
	if (h->dir_fd >= 0)
		close(h->dir_fd);
	free(h);
}
