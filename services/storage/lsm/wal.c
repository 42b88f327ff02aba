/*
 * Commit log writer and reader (docs/lsm-commit-log.md).
 *
 * Writer: the log file is given disk blocks up front (fallocate, which
 * also sets its size) and mapped shared; an append is a copy into the
 * mapping, with no system call. Why: on this project's benchmark machine a
 * write(2) per put cost more than the rest of the put together (fillseq
 * 340k puts/s with it, 700k/s with the mapping), and a copy into the page cache
 * survives a crash of the process just as a write(2) does. Blocks that
 * exist before the copy also mean a store into the mapping never needs
 * space the disk does not have (a shared mapping reports that with
 * SIGBUS, not an error): the log grows by fallocate before it copies, and
 * a full disk is a clean RK_RESOURCE_EXHAUSTED with nothing written. An
 * fdatasync whose file size did not change writes no inode size either.
 *
 * Only the database's current write leader appends, so the writer needs no
 * lock; fdatasync may run on another thread (the periodic syncer), which
 * holds a reference meanwhile and reads `size` atomically (release by the
 * appender, acquire by the syncer).
 *
 * Reader: the file is mapped read-only and walked record by record. Zeros
 * to the end of the file are the unused tail; it never looks past the
 * first bad record (see the doc for why).
 */
#include "wal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"

static const char wal_magic[8] = {'R', 'K', 'L', 'S', 'M', 'L', 'O', 'G'};

/* The smallest step the log grows by: one record of a few hundred bytes
 * should not cost a fallocate and an mremap each. */
#define GROW_MIN (64u << 10)

void rk_lsm_file_name(char *out, size_t n, const char *dir, uint64_t number,
                      const char *ext)
{
	snprintf(out, n, "%s/%06" PRIu64 ".%s", dir, number, ext);
}

static rk_status_t errno_status(int e)
{
	return (e == ENOSPC || e == EDQUOT) ? RK_RESOURCE_EXHAUSTED
	                                    : RK_INTERNAL;
}

static uint64_t round_up(uint64_t n, uint64_t to)
{
	return (n + to - 1) / to * to;
}

/* Gives bytes OFF .. OFF+LEN disk blocks and makes them part of the file.
 * Where fallocate is not supported the range is written with zeros, which
 * allocates just the same. Returns 0 or an errno. */
static int add_blocks(int fd, uint64_t off, uint64_t len)
{
	if (fallocate(fd, 0, (off_t)off, (off_t)len) == 0)
		return 0;
	if (errno != EOPNOTSUPP && errno != ENOSYS)
		return errno;
	static const uint8_t zeros[4096];
	for (uint64_t done = 0; done < len;) {
		size_t n = len - done < sizeof(zeros) ? (size_t)(len - done)
		                                       : sizeof(zeros);
		ssize_t r = pwrite(fd, zeros, n, (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? errno : ENOSPC;
		done += (uint64_t)r;
	}
	return 0;
}

/* Adds about WANT bytes of blocks after the first CAP (at least NEED, a
 * page multiple): on a full disk it settles for less, down to NEED, so
 * that the last free blocks still take records. Returns the bytes added,
 * or 0 with *E set. */
static uint64_t grow_blocks(int fd, uint64_t cap, uint64_t want, uint64_t need,
                            int *e)
{
	for (;;) {
		*e = add_blocks(fd, cap, want);
		if (*e == 0)
			return want;
		if (*e != ENOSPC || want <= need)
			return 0;
		want = want / 2 > need ? round_up(want / 2, 4096) : need;
	}
}

rk_status_t rk_wal_create(const char *dir, uint64_t number, uint64_t capacity,
                          rk_wal_t **out, char *err, size_t errlen)
{
	char path[4096];
	rk_lsm_file_name(path, sizeof(path), dir, number, "log");
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		int e = errno;
		if (err)
			snprintf(err, errlen, "create %s: %s", path,
			         strerror(e));
		return errno_status(e);
	}
	uint64_t want = round_up(capacity > GROW_MIN ? capacity : GROW_MIN,
	                         4096);
	int e = 0;
	uint64_t cap = grow_blocks(fd, 0, want, 4096, &e);
	uint8_t hdr[RK_WAL_HEADER] = {0};
	memcpy(hdr, wal_magic, 8);
	rk_put_u32(hdr + 8, 1);
	if (cap == 0 ||
	    pwrite(fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) ||
	    fdatasync(fd) != 0) {
		e = e ? e : errno ? errno : ENOSPC;
		if (err)
			snprintf(err, errlen, "write %s: %s", path,
			         strerror(e));
		close(fd);
		unlink(path);
		return errno_status(e);
	}
	/* The new name must be durable too, or a synced record could sit in
	 * a file that a power cut makes vanish. */
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) != 0) {
		if (err)
			snprintf(err, errlen, "fsync %s: %s", dir,
			         strerror(errno));
		if (dfd >= 0)
			close(dfd);
		close(fd);
		unlink(path);
		return RK_INTERNAL;
	}
	close(dfd);
	rk_wal_t *w = calloc(1, sizeof(*w));
	void *map = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (w == NULL || map == MAP_FAILED) {
		if (err)
			snprintf(err, errlen, "map %s: %s", path,
			         w ? strerror(errno) : "out of memory");
		if (map != MAP_FAILED)
			munmap(map, cap);
		free(w);
		close(fd);
		unlink(path);
		return RK_RESOURCE_EXHAUSTED;
	}
	w->fd = fd;
	w->number = number;
	w->map = map;
	w->cap = cap;
	atomic_init(&w->size, RK_WAL_HEADER);
	atomic_init(&w->synced, RK_WAL_HEADER);
	atomic_init(&w->refs, 1);
	*out = w;
	return RK_OK;
}

/* The appender's own view of the size (it is the only writer). */
static uint64_t wal_size(rk_wal_t *w)
{
	return atomic_load_explicit(&w->size, memory_order_relaxed);
}

/* Makes the blocks and the mapping reach END (appender only). Grows by
 * the current capacity at least, so a log that outgrows its estimate
 * costs a logarithmic number of steps. */
static rk_status_t ensure_cap(rk_wal_t *w, uint64_t end)
{
	if (end <= w->cap)
		return RK_OK;
	uint64_t need = round_up(end - w->cap, 4096);
	uint64_t want = need > w->cap ? need : w->cap;
	int e = 0;
	uint64_t added = grow_blocks(w->fd, w->cap, want, need, &e);
	if (added == 0)
		return errno_status(e);
	void *m = mremap(w->map, w->cap, w->cap + added, MREMAP_MAYMOVE);
	if (m == MAP_FAILED)
		return RK_RESOURCE_EXHAUSTED; /* the blocks stay: zeros */
	w->map = m;
	w->cap += added;
	return RK_OK;
}

/* Whole chunks of the mapping behind the last record are unmapped
 * (MADV_DONTNEED: a shared file mapping keeps its data, now dirty in the
 * page cache). Why: writing back a page that is still mapped must
 * write-protect it, one TLB flush across the CPUs per page, and that was
 * a tenth of the CPU of a fill on the benchmark machine; unmapping a
 * chunk costs one flush for all of its pages. It also keeps the mapped
 * part of the log, which counts in the process's RSS, to a chunk. */
#define RELEASE_CHUNK (256u << 10)

static void release_behind(rk_wal_t *w, uint64_t end)
{
	uint64_t behind = end / RELEASE_CHUNK * RELEASE_CHUNK;
	if (behind <= w->released)
		return;
	/* Best effort: if it fails the pages merely stay mapped. */
	(void)madvise(w->map + w->released, behind - w->released,
	              MADV_DONTNEED);
	w->released = behind;
}

/* With `prefault`, the chunk after the one being written is mapped
 * writable in one call as the records enter a chunk. Why: otherwise every
 * 4 KiB of records takes a page fault on first touch, one put in thirty
 * at 100-byte values, and on the benchmark machine that fault was the
 * 99th percentile of a put. The pages mapped ahead are dirty zeros, and an
 * fdatasync before the records reach them writes them out once more; so
 * the owner sets it only where syncs are rare (the periodic policy), not
 * where every put syncs anyway. Best effort: a kernel without
 * MADV_POPULATE_WRITE (before 5.14) just faults as before. */
static void prefault_ahead(rk_wal_t *w, uint64_t end)
{
#ifdef MADV_POPULATE_WRITE
	uint64_t want = (end / RELEASE_CHUNK + 2) * RELEASE_CHUNK;
	if (want > w->cap)
		want = w->cap;
	uint64_t from = w->prefaulted > w->released ? w->prefaulted
	                                            : w->released;
	if (!w->prefault || want <= from)
		return;
	if (madvise(w->map + from, want - from, MADV_POPULATE_WRITE) != 0 &&
	    errno == EINVAL)
		w->prefault = false;
	w->prefaulted = want;
#else
	(void)w;
	(void)end;
#endif
}

/* Header of one record (crc, length) into H. */
static void record_header(uint8_t *h, rk_slice_t s)
{
	rk_put_u32(h + 4, (uint32_t)s.n);
	uint32_t c = rk_crc32c(h + 4, 4);
	c = rk_crc32c_extend(c, s.p, s.n);
	rk_put_u32(h, rk_crc32c_mask(c));
}

rk_status_t rk_wal_append(rk_wal_t *w, const rk_slice_t *payloads, size_t n)
{
	uint64_t size = wal_size(w), total = 0;
	for (size_t i = 0; i < n; i++)
		total += 8 + (uint64_t)payloads[i].n;
	rk_status_t st = ensure_cap(w, size + total);
	if (st != RK_OK)
		return st;
	prefault_ahead(w, size + total);
	uint8_t *p = w->map + size;
	for (size_t i = 0; i < n; i++) {
		record_header(p, payloads[i]);
		memcpy(p + 8, payloads[i].p, payloads[i].n);
		p += 8 + payloads[i].n;
	}
	atomic_store_explicit(&w->size, size + total, memory_order_release);
	release_behind(w, size + total);
	return RK_OK;
}

rk_status_t rk_wal_sync(rk_wal_t *w)
{
	uint64_t size = atomic_load_explicit(&w->size, memory_order_acquire);
	if (fdatasync(w->fd) != 0)
		return RK_INTERNAL;
	uint64_t prev = atomic_load(&w->synced);
	while (prev < size &&
	       !atomic_compare_exchange_weak(&w->synced, &prev, size))
		;
	return RK_OK;
}

void rk_wal_ref(rk_wal_t *w)
{
	atomic_fetch_add(&w->refs, 1);
}

void rk_wal_unref(rk_wal_t *w)
{
	if (w == NULL || atomic_fetch_sub(&w->refs, 1) != 1)
		return;
	munmap(w->map, w->cap);
	/* Best effort: a log left at its capacity only has zeros at the end,
	 * which a replay reads as the clean end it is. */
	(void)ftruncate(w->fd, (off_t)wal_size(w));
	close(w->fd);
	free(w);
}

/* The length of the N bytes at M without their zero tail: where the data
 * of a log ends. A log that was open when the process died keeps the zeros
 * of its unused blocks, which are neither records nor lost data. */
static uint64_t data_end(const uint8_t *m, uint64_t n)
{
	while (n >= 8) {
		uint64_t word;
		memcpy(&word, m + n - 8, 8);
		if (word != 0)
			break;
		n -= 8;
	}
	while (n > 0 && m[n - 1] == 0)
		n--;
	return n;
}

/* Reports the bytes from OFF (< END) to END, the end of the data, as
 * dropped. */
static void drop(rk_wal_report_t *rep, uint64_t off, uint64_t end,
                 const char *why)
{
	rep->dropped_bytes = end - off;
	rep->drop_offset = off;
	snprintf(rep->reason, sizeof(rep->reason), "%s at offset %" PRIu64, why,
	         off);
}

/* Maps the file at PATH read-only into *M (NULL when it is empty) and its
 * length into *SIZE; RK_INTERNAL if it cannot be read. */
static rk_status_t map_file(const char *path, uint8_t **m, uint64_t *size)
{
	*m = NULL;
	*size = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return RK_INTERNAL;
	struct stat st;
	rk_status_t ret = RK_INTERNAL;
	if (fstat(fd, &st) == 0) {
		*size = (uint64_t)st.st_size;
		void *p = *size > 0 ? mmap(NULL, *size, PROT_READ, MAP_PRIVATE,
		                           fd, 0)
		                    : NULL;
		if (p != MAP_FAILED) {
			*m = p;
			ret = RK_OK;
		}
	}
	close(fd);
	return ret;
}

rk_status_t rk_wal_data_bytes(const char *path, uint64_t *bytes)
{
	uint8_t *m;
	uint64_t size;
	rk_status_t st = map_file(path, &m, &size);
	*bytes = st == RK_OK && m != NULL ? data_end(m, size) : 0;
	if (m != NULL)
		munmap(m, size);
	return st;
}

rk_status_t rk_wal_replay(const char *path, rk_wal_record_fn fn, void *arg,
                          rk_wal_report_t *rep)
{
	memset(rep, 0, sizeof(*rep));
	uint8_t *m;
	uint64_t size;
	rk_status_t ret = map_file(path, &m, &size);
	if (ret != RK_OK || m == NULL)
		return ret;
	/* Zeros from END on are the unused tail of the log: a clean end, and
	 * nothing lost. A file of zeros only (creation cut short after its
	 * blocks were given) holds nothing. Bounds checks still use SIZE: a
	 * record may end in zero bytes. */
	uint64_t end = data_end(m, size);
	if (end == 0)
		goto out;
	if (size < RK_WAL_HEADER) {
		drop(rep, 0, end, "short log header");
		goto out;
	}
	if (memcmp(m, wal_magic, 8) != 0 || rk_get_u32(m + 8) != 1) {
		drop(rep, 0, end, "bad log header");
		goto out;
	}
	uint64_t off = RK_WAL_HEADER;
	while (off < end) {
		if (size - off < 8) {
			drop(rep, off, end, "torn record header");
			break;
		}
		uint32_t crc = rk_get_u32(m + off);
		uint32_t len = rk_get_u32(m + off + 4);
		if (len == 0 || len > RK_WAL_MAX_RECORD) {
			drop(rep, off, end, "bad record length");
			break;
		}
		if (size - off - 8 < len) {
			drop(rep, off, end, "torn record");
			break;
		}
		uint32_t c = rk_crc32c_extend(rk_crc32c(m + off + 4, 4),
		                              m + off + 8, len);
		if (rk_crc32c_unmask(crc) != c) {
			drop(rep, off, end, "record checksum mismatch");
			break;
		}
		ret = fn(arg, m + off + 8, len);
		if (ret == RK_DATA_LOSS) {
			drop(rep, off, end, "record does not decode");
			ret = RK_OK;
			break;
		}
		if (ret != RK_OK)
			break;
		rep->records++;
		off += 8 + (uint64_t)len;
	}
out:
	munmap(m, size);
	return ret;
}
