/*
 * Unit tests of the LSM engine's parts, one format or structure at a time:
 * CRC32C, SipHash, write batches, the commit log (torn and corrupt tails),
 * blocks, the bloom filter's false-positive rate, the memtable, the block
 * cache's byte bound, tables and the manifest.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batch.h"
#include "block.h"
#include "bloom.h"
#include "cache.h"
#include "crc32c.h"
#include "lsm/lsm_test_util.h"
#include "manifest.h"
#include "memtable.h"
#include "siphash.h"
#include "table.h"
#include "wal.h"

static void test_crc32c_matches_the_standard_check_value(void **state)
{
	(void)state;
	assert_int_equal(rk_crc32c("123456789", 9), 0xE3069283u);
	assert_int_equal(rk_crc32c("", 0), 0);
	/* extending in pieces equals one pass, across the 8-byte steps */
	char buf[100];
	for (int i = 0; i < 100; i++)
		buf[i] = (char)(i * 31);
	uint32_t whole = rk_crc32c(buf, 100);
	for (size_t cut = 0; cut <= 100; cut += 7)
		assert_int_equal(
		    rk_crc32c_extend(rk_crc32c(buf, cut), buf + cut, 100 - cut),
		    whole);
	assert_int_equal(rk_crc32c_unmask(rk_crc32c_mask(whole)), whole);
	assert_int_not_equal(rk_crc32c_mask(whole), whole);
}

static void test_crc32c_three_stream_path_matches_small_pieces(void **state)
{
	(void)state;
	/* Buffers of 768 bytes and more take the interleaved path (short
	 * and long runs); pieces under 768 bytes never do. Both must agree,
	 * from every alignment. */
	enum { N = 60000 };
	uint8_t *buf = malloc(N + 8);
	assert_non_null(buf);
	uint64_t x = 7;
	for (int i = 0; i < N + 8; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		buf[i] = (uint8_t)(x >> 56);
	}
	size_t lens[] = {767, 768, 769, 4096, 4101, 24575, 24576, 30000, N};
	for (size_t a = 0; a < 8; a++)
		for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
			uint32_t pieces = 0;
			for (size_t off = 0; off < lens[l]; off += 500) {
				size_t m =
				    lens[l] - off < 500 ? lens[l] - off : 500;
				pieces =
				    rk_crc32c_extend(pieces, buf + a + off, m);
			}
			assert_int_equal(rk_crc32c(buf + a, lens[l]), pieces);
		}
	free(buf);
}

static void test_siphash_depends_on_key_and_every_byte(void **state)
{
	(void)state;
	uint64_t a = rk_siphash13(1, 2, "hello", 5);
	assert_int_equal(a, rk_siphash13(1, 2, "hello", 5));
	assert_int_not_equal(a, rk_siphash13(1, 3, "hello", 5));
	assert_int_not_equal(a, rk_siphash13(1, 2, "hellp", 5));
	assert_int_not_equal(rk_siphash13(1, 2, "", 0),
	                     rk_siphash13(1, 2, "\0", 1));
	/* each length from 0 to 17 gives a distinct value */
	uint64_t seen[18];
	const char *s = "abcdefghijklmnopq";
	for (int i = 0; i < 18; i++) {
		seen[i] = rk_siphash13(7, 9, s, (size_t)i);
		for (int j = 0; j < i; j++)
			assert_int_not_equal(seen[i], seen[j]);
	}
}

typedef struct ops {
	int n;           /* operations seen */
	uint64_t seq[8]; /* their sequences */
	int type[8];     /* their types */
} ops_t;

static rk_status_t collect(void *arg, uint64_t seq, int type, rk_slice_t k,
                           rk_slice_t v)
{
	ops_t *o = arg;
	(void)k;
	(void)v;
	if (o->n < 8) {
		o->seq[o->n] = seq;
		o->type[o->n] = type;
	}
	o->n++;
	return RK_OK;
}

static void test_batch_walk_refuses_every_truncation(void **state)
{
	(void)state;
	rk_lsm_batch_t *b;
	assert_int_equal(rk_lsm_batch_new(&b), RK_OK);
	assert_int_equal(rk_lsm_batch_put(b, "k1", 2, "v1", 2), RK_OK);
	assert_int_equal(rk_lsm_batch_delete(b, "k2", 2), RK_OK);
	rk_put_u64(b->buf, 41);
	ops_t o = {0};
	assert_int_equal(rk_batch_walk(b->buf, b->len, collect, &o), RK_OK);
	assert_int_equal(o.n, 2);
	assert_int_equal(o.seq[0], 41);
	assert_int_equal(o.seq[1], 42);
	assert_int_equal(o.type[0], RK_TYPE_VALUE);
	assert_int_equal(o.type[1], RK_TYPE_DELETE);
	for (size_t cut = 0; cut < b->len; cut++) {
		ops_t x = {0};
		assert_int_equal(rk_batch_walk(b->buf, cut, collect, &x),
		                 RK_DATA_LOSS);
	}
	rk_lsm_batch_free(b);
}

static int sign(int x)
{
	return (x > 0) - (x < 0);
}

/* The inline comparison orders keys as memcmp does with a proper prefix
 * first: every length up to past the memcmp cut-over, the first
 * difference at every offset, and bytes above 0x7f (unsigned order). */
static void test_bytes_cmp_orders_as_memcmp(void **state)
{
	(void)state;
	uint8_t a[48], b[48];
	uint64_t x = 7;
	for (int round = 0; round < 20000; round++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		size_t an = x % 41, bn = (x >> 8) % 41;
		for (size_t i = 0; i < sizeof(a); i++)
			a[i] = b[i] = (uint8_t)(i * 37 + round);
		size_t at = (x >> 16) % 41; /* where they differ, if they do */
		if (at < sizeof(a) && (x >> 24) % 4 != 0)
			b[at] = (uint8_t)(b[at] ^ (uint8_t)(x >> 32 | 1));
		size_t n = an < bn ? an : bn;
		int ref = n ? memcmp(a, b, n) : 0;
		if (ref == 0)
			ref = an < bn ? -1 : an > bn ? 1 : 0;
		assert_int_equal(sign(rk_bytes_cmp(a, an, b, bn)), sign(ref));
		assert_int_equal(sign(rk_bytes_cmp(b, bn, a, an)), -sign(ref));
	}
}

static rk_status_t count_record(void *arg, const uint8_t *p, size_t n)
{
	(void)p;
	(void)n;
	(*(int *)arg)++;
	return RK_OK;
}

static char *write_log(const char *dir, int records)
{
	rk_wal_t *w;
	assert_int_equal(rk_wal_create(dir, 7, 0, &w, NULL, 0), RK_OK);
	for (int i = 0; i < records; i++) {
		char payload[100];
		memset(payload, 'a' + i % 26, sizeof(payload));
		rk_slice_t s = rk_slice(payload, (size_t)(10 + i));
		assert_int_equal(rk_wal_append(w, &s, 1), RK_OK);
	}
	assert_int_equal(rk_wal_sync(w), RK_OK);
	rk_wal_unref(w);
	char *path = malloc(4200);
	rk_lsm_file_name(path, 4200, dir, 7, "log");
	return path;
}

static void test_wal_replays_all_then_stops_at_torn_tail(void **state)
{
	(void)state;
	char *dir = lsm_test_tmpdir("wal");
	char *path = write_log(dir, 20);
	int n = 0;
	rk_wal_report_t rep;
	assert_int_equal(rk_wal_replay(path, count_record, &n, &rep), RK_OK);
	assert_int_equal(n, 20);
	assert_int_equal(rep.dropped_bytes, 0);
	int64_t size = lsm_test_file_size(path);
	/* cut the last record short by 5 bytes */
	assert_int_equal(truncate(path, size - 5), 0);
	n = 0;
	assert_int_equal(rk_wal_replay(path, count_record, &n, &rep), RK_OK);
	assert_int_equal(n, 19);
	assert_int_equal(rep.dropped_bytes, 8 + 29 - 5);
	assert_non_null(strstr(rep.reason, "torn"));
	free(path);
	lsm_test_rmrf(dir);
	free(dir);
}

/* Appends N records of a 64-byte payload (72 bytes each in the log). */
static void append_64(rk_wal_t *w, int n)
{
	for (int i = 0; i < n; i++) {
		char payload[64];
		memset(payload, 'a' + i % 26, sizeof(payload));
		rk_slice_t s = rk_slice(payload, sizeof(payload));
		assert_int_equal(rk_wal_append(w, &s, 1), RK_OK);
	}
}

static void test_wal_open_log_has_blocks_and_a_zero_tail_that_replays_clean(
    void **state)
{
	(void)state;
	char *dir = lsm_test_tmpdir("walres");
	rk_wal_t *w;
	assert_int_equal(rk_wal_create(dir, 7, 0, &w, NULL, 0), RK_OK);
	char path[4200];
	rk_lsm_file_name(path, sizeof(path), dir, 7, "log");
	struct stat sb;
	assert_int_equal(stat(path, &sb), 0);
	/* Created at its capacity, with the blocks behind it. */
	assert_true(sb.st_size >= 65536);
	assert_true((int64_t)sb.st_blocks * 512 >= sb.st_size);
	append_64(w, 50);
	assert_int_equal(rk_wal_sync(w), RK_OK);
	/* Read while open, as after a crash: the zeros are the clean end. */
	int n = 0;
	rk_wal_report_t rep;
	assert_int_equal(rk_wal_replay(path, count_record, &n, &rep), RK_OK);
	assert_int_equal(n, 50);
	assert_int_equal(rep.dropped_bytes, 0);
	/* Past the capacity the log grows, and still replays exactly. */
	append_64(w, 2000);
	assert_int_equal(stat(path, &sb), 0);
	assert_true(sb.st_size >= RK_WAL_HEADER + 2050 * 72);
	n = 0;
	assert_int_equal(rk_wal_replay(path, count_record, &n, &rep), RK_OK);
	assert_int_equal(n, 2050);
	assert_int_equal(rep.dropped_bytes, 0);
	/* Closed, it is cut back to its last record. */
	rk_wal_unref(w);
	int64_t end = RK_WAL_HEADER + 2050 * 72;
	assert_int_equal(lsm_test_file_size(path), end);
	/* A zero tail shorter than a record header is a clean end too... */
	assert_int_equal(truncate(path, end + 5), 0);
	n = 0;
	assert_int_equal(rk_wal_replay(path, count_record, &n, &rep), RK_OK);
	assert_int_equal(n, 2050);
	assert_int_equal(rep.dropped_bytes, 0);
	/* ...but zeros with anything after them are damage, reported. */
	int fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "x", 1, end + 100), 1);
	close(fd);
	n = 0;
	assert_int_equal(rk_wal_replay(path, count_record, &n, &rep), RK_OK);
	assert_int_equal(n, 2050);
	assert_int_equal(rep.drop_offset, end);
	assert_int_equal(rep.dropped_bytes, 101);
	lsm_test_rmrf(dir);
	free(dir);
}

/* A log left open by a crash keeps its zero tail: damage in it drops the
 * records from the bad one to the last, and does not count the zeros. */
static void test_wal_damage_in_an_open_log_drops_records_not_its_zero_tail(
    void **state)
{
	(void)state;
	char *dir = lsm_test_tmpdir("waldz");
	rk_wal_t *w;
	assert_int_equal(rk_wal_create(dir, 7, 1 << 20, &w, NULL, 0), RK_OK);
	append_64(w, 50);
	assert_int_equal(rk_wal_sync(w), RK_OK);
	char path[4200];
	rk_lsm_file_name(path, sizeof(path), dir, 7, "log");
	uint64_t end = RK_WAL_HEADER + 50 * 72;
	assert_true(lsm_test_file_size(path) >= (1 << 20));
	uint64_t bytes;
	assert_int_equal(rk_wal_data_bytes(path, &bytes), RK_OK);
	assert_int_equal(bytes, end);
	/* the payload of record 10 (each is 8 + 64 bytes) */
	uint64_t bad = RK_WAL_HEADER + 10 * 72;
	assert_int_equal(lsm_test_flip(path, bad + 20, 0x04), 0);
	int n = 0;
	rk_wal_report_t rep;
	assert_int_equal(rk_wal_replay(path, count_record, &n, &rep), RK_OK);
	assert_int_equal(n, 10);
	assert_int_equal(rep.drop_offset, bad);
	assert_int_equal(rep.dropped_bytes, end - bad);
	rk_wal_unref(w);
	/* an empty file holds no data, a missing one cannot be read */
	assert_int_equal(truncate(path, 0), 0);
	assert_int_equal(rk_wal_data_bytes(path, &bytes), RK_OK);
	assert_int_equal(bytes, 0);
	unlink(path);
	assert_int_equal(rk_wal_data_bytes(path, &bytes), RK_INTERNAL);
	lsm_test_rmrf(dir);
	free(dir);
}

/* Resident KiB of the mapping that starts at ADDR (/proc/self/smaps). */
static long mapping_rss_kb(const void *addr)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	assert_non_null(f);
	char line[512];
	int in = 0;
	long kb = -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
			in = lo == (unsigned long)(uintptr_t)addr;
		else if (in && sscanf(line, "Rss: %ld kB", &kb) == 1)
			break;
	}
	fclose(f);
	return kb;
}

/* PATH replays exactly N records and drops nothing. */
static void assert_replays_whole(const char *path, int n)
{
	int got = 0;
	rk_wal_report_t rep;
	assert_int_equal(rk_wal_replay(path, count_record, &got, &rep), RK_OK);
	assert_int_equal(got, n);
	assert_int_equal(rep.dropped_bytes, 0);
}

/* An open log keeps only its last chunk mapped: what is behind is in the
 * page cache, dirty, and a replay (after a crash of the process) reads it
 * all, synced or not. */
static void test_wal_unmaps_what_is_behind_and_loses_nothing(void **state)
{
	(void)state;
	char *dir = lsm_test_tmpdir("walrel");
	rk_wal_t *w;
	assert_int_equal(rk_wal_create(dir, 7, 1 << 20, &w, NULL, 0), RK_OK);
	append_64(w, 60000); /* 4.3 MB: past the capacity, so it grows */
	long kb = mapping_rss_kb(w->map);
	assert_true(kb >= 0 && kb <= 256 + 4);
	char path[4200];
	rk_lsm_file_name(path, sizeof(path), dir, 7, "log");
	assert_replays_whole(path, 60000);
	rk_wal_unref(w);
	lsm_test_rmrf(dir);
	free(dir);
}

/* With prefault on (the periodic policy), the chunk ahead of the records
 * is mapped before they reach it, and still at most three chunks stay
 * mapped; the pages mapped ahead are zeros, which replay as the clean
 * end, and closing cuts them off. */
static void test_wal_prefaults_ahead_and_replays_exactly(void **state)
{
	(void)state;
	char *dir = lsm_test_tmpdir("walpre");
	rk_wal_t *w;
	assert_int_equal(rk_wal_create(dir, 7, 1 << 20, &w, NULL, 0), RK_OK);
	w->prefault = true;
	append_64(w, 1);
	if (w->prefault) /* the kernel has MADV_POPULATE_WRITE */
		assert_true(mapping_rss_kb(w->map) >= 512);
	append_64(w, 59999); /* 4.3 MB: past the capacity, so it grows */
	long kb = mapping_rss_kb(w->map);
	assert_true(kb >= 0 && kb <= 3 * 256 + 4);
	char path[4200];
	rk_lsm_file_name(path, sizeof(path), dir, 7, "log");
	assert_replays_whole(path, 60000);
	rk_wal_unref(w);
	assert_int_equal(lsm_test_file_size(path), RK_WAL_HEADER + 60000 * 72);
	lsm_test_rmrf(dir);
	free(dir);
}

/* Writes the N bytes at P as the whole file PATH. */
static void put_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

/* A log whose creation was cut short holds only zeros: nothing to replay
 * and nothing lost. A torn or foreign header is damage, reported whole. */
static void test_wal_headers_zero_short_and_foreign(void **state)
{
	(void)state;
	char *dir = lsm_test_tmpdir("walhdr");
	char path[4200];
	rk_lsm_file_name(path, sizeof(path), dir, 7, "log");
	static const uint8_t zeros[65536];
	const uint8_t foreign[40] = "SQLite format 3";
	struct {
		const void *p;
		size_t n;
		uint64_t dropped;
		const char *why;
	} cases[] = {
	    {zeros, 0, 0, ""},
	    {zeros, 9, 0, ""},
	    {zeros, sizeof(zeros), 0, ""},
	    {"RKWAL", 5, 5, "short log header"},
	    {foreign, sizeof(foreign), 15, "bad log header"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		put_file(path, cases[i].p, cases[i].n);
		int n = 0;
		rk_wal_report_t rep;
		assert_int_equal(rk_wal_replay(path, count_record, &n, &rep),
		                 RK_OK);
		assert_int_equal(n, 0);
		assert_int_equal(rep.dropped_bytes, cases[i].dropped);
		assert_non_null(strstr(rep.reason, cases[i].why));
		assert_int_equal(rep.reason[0] == 0, cases[i].why[0] == 0);
	}
	lsm_test_rmrf(dir);
	free(dir);
}

static rk_status_t check_big(void *arg, const uint8_t *p, size_t n)
{
	int *i = arg;
	int k = *i % 3; /* the fourth record is the first again */
	assert_int_equal(n, 40000 + (size_t)k);
	for (size_t j = 0; j < n; j += 997)
		assert_int_equal(p[j], (uint8_t)(k + 1));
	(*i)++;
	return RK_OK;
}

static void test_wal_large_group_goes_out_whole_and_replays(void **state)
{
	(void)state;
	char *dir = lsm_test_tmpdir("walbig");
	rk_wal_t *w;
	assert_int_equal(rk_wal_create(dir, 7, 0, &w, NULL, 0), RK_OK);
	/* 3 x 40 KB in one append: more than the staging buffer */
	static uint8_t bufs[3][40003];
	rk_slice_t s[3];
	for (int i = 0; i < 3; i++) {
		memset(bufs[i], i + 1, sizeof(bufs[i]));
		s[i] = rk_slice(bufs[i], 40000 + (size_t)i);
	}
	assert_int_equal(rk_wal_append(w, s, 3), RK_OK);
	assert_int_equal(rk_wal_append(w, s, 1), RK_OK); /* and a small one */
	rk_wal_unref(w);
	char path[4200];
	rk_lsm_file_name(path, sizeof(path), dir, 7, "log");
	int i = 0;
	rk_wal_report_t rep;
	assert_int_equal(rk_wal_replay(path, check_big, &i, &rep), RK_OK);
	assert_int_equal(i, 4);
	assert_int_equal(rep.dropped_bytes, 0);
	lsm_test_rmrf(dir);
	free(dir);
}

static void test_wal_stops_at_corrupt_record_and_reports_it(void **state)
{
	(void)state;
	char *dir = lsm_test_tmpdir("walc");
	char *path = write_log(dir, 20);
	/* record i starts at 16 + sum(8 + 10 + j, j < i); flip inside #5 */
	uint64_t off = 16;
	for (int i = 0; i < 5; i++)
		off += 8 + 10 + (uint64_t)i;
	assert_int_equal(lsm_test_flip(path, off + 12, 0x01), 0);
	int n = 0;
	rk_wal_report_t rep;
	assert_int_equal(rk_wal_replay(path, count_record, &n, &rep), RK_OK);
	assert_int_equal(n, 5);
	assert_int_equal(rep.drop_offset, off);
	assert_non_null(strstr(rep.reason, "checksum"));
	/* a flipped length is caught as well */
	free(path);
	path = write_log(dir, 20);
	assert_int_equal(lsm_test_flip(path, off + 7, 0x40), 0);
	n = 0;
	assert_int_equal(rk_wal_replay(path, count_record, &n, &rep), RK_OK);
	assert_int_equal(n, 5);
	assert_true(rep.dropped_bytes > 0);
	free(path);
	lsm_test_rmrf(dir);
	free(dir);
}

static void ikey(uint8_t *buf, size_t *n, int i, uint64_t seq)
{
	char k[32];
	snprintf(k, sizeof(k), "k%06d", i);
	*n = rk_ikey_make(buf, k, strlen(k), seq, RK_TYPE_VALUE);
}

static void test_block_roundtrip_seek_and_corruption(void **state)
{
	(void)state;
	rk_block_builder_t bb;
	rk_block_builder_init(&bb, 16);
	uint8_t k[64];
	size_t kn;
	for (int i = 0; i < 500; i += 2) {
		ikey(k, &kn, i, 5);
		rk_block_builder_add(&bb, rk_slice(k, kn), rk_slice("val", 3));
	}
	rk_slice_t raw;
	assert_int_equal(rk_block_builder_finish(&bb, &raw), RK_OK);
	uint8_t *copy = malloc(raw.n);
	memcpy(copy, raw.p, raw.n);
	rk_block_t *b;
	assert_int_equal(rk_block_new(copy, raw.n, &b), RK_OK);
	assert_int_equal(b->nrestarts, (250 + 15) / 16);
	rk_block_iter_t it;
	rk_block_iter_init(&it);
	rk_block_iter_set(&it, b);
	int count = 0;
	for (rk_block_iter_seek_first(&it); it.valid; rk_block_iter_next(&it))
		count++;
	assert_int_equal(count, 250);
	for (int i = 0; i < 499; i++) {
		ikey(k, &kn, i, 9);
		rk_block_iter_seek(&it, rk_slice(k, kn));
		assert_true(it.valid);
		uint8_t want[64];
		size_t wn;
		ikey(want, &wn, i % 2 ? i + 1 : i, 5);
		assert_int_equal(it.key_len, wn);
		assert_memory_equal(it.key, want, wn);
	}
	ikey(k, &kn, 999, 9);
	rk_block_iter_seek(&it, rk_slice(k, kn));
	assert_false(it.valid);
	assert_int_equal(it.status, RK_OK);
	/* backward, across every restart point, and turning around */
	int want_i = 498;
	for (rk_block_iter_seek_last(&it); it.valid; rk_block_iter_prev(&it)) {
		uint8_t want[64];
		size_t wn;
		ikey(want, &wn, want_i, 5);
		assert_int_equal(it.key_len, wn);
		assert_memory_equal(it.key, want, wn);
		assert_memory_equal(it.val.p, "val", 3);
		want_i -= 2;
	}
	assert_int_equal(want_i, -2);
	assert_int_equal(it.status, RK_OK);
	ikey(k, &kn, 33, 9); /* lands on 34, the third entry of a restart */
	rk_block_iter_seek(&it, rk_slice(k, kn));
	rk_block_iter_prev(&it);
	rk_block_iter_next(&it);
	rk_block_iter_next(&it);
	rk_block_iter_prev(&it);
	uint8_t at[64];
	size_t an;
	ikey(at, &an, 34, 5);
	assert_true(it.valid);
	assert_memory_equal(it.key, at, an);
	rk_block_iter_fini(&it);
	rk_block_unref(b);

	/* a bad restart count is refused; a bad entry stops iteration */
	copy = malloc(raw.n);
	memcpy(copy, raw.p, raw.n);
	rk_put_u32(copy + raw.n - 4, 100000);
	assert_int_equal(rk_block_new(copy, raw.n, &b), RK_DATA_LOSS);
	copy = malloc(raw.n);
	memcpy(copy, raw.p, raw.n);
	copy[0] = 0x7f; /* first entry claims a shared prefix */
	assert_int_equal(rk_block_new(copy, raw.n, &b), RK_OK);
	rk_block_iter_init(&it);
	rk_block_iter_set(&it, b);
	rk_block_iter_seek_first(&it);
	assert_false(it.valid);
	assert_int_equal(it.status, RK_DATA_LOSS);
	rk_block_iter_fini(&it);
	rk_block_unref(b);
	rk_block_builder_fini(&bb);
}

static void test_bloom_false_positive_rate_is_below_1_5_percent(void **state)
{
	(void)state;
	rk_bloom_builder_t bb;
	assert_int_equal(rk_bloom_builder_init(&bb, 10), RK_OK);
	enum { N = 20000, PROBES = 100000 };
	char k[32];
	for (int i = 0; i < N; i++) {
		int n = snprintf(k, sizeof(k), "present-%d", i);
		rk_bloom_builder_add(&bb, rk_slice(k, (size_t)n));
	}
	uint8_t *data;
	size_t len;
	assert_int_equal(rk_bloom_builder_finish(&bb, &data, &len), RK_OK);
	rk_bloom_builder_fini(&bb);
	rk_bloom_t f;
	assert_int_equal(rk_bloom_parse(&f, data, len), RK_OK);
	assert_int_equal(f.k, 7);
	for (int i = 0; i < N; i++) {
		int n = snprintf(k, sizeof(k), "present-%d", i);
		assert_true(rk_bloom_may_contain(&f, rk_slice(k, (size_t)n)));
	}
	int fp = 0;
	for (int i = 0; i < PROBES; i++) {
		int n = snprintf(k, sizeof(k), "absent-%d", i);
		fp += rk_bloom_may_contain(&f, rk_slice(k, (size_t)n));
	}
	double rate = (double)fp / PROBES;
	printf("bloom: 10 bits/key, k=%u, false positives %.3f%%\n", f.k,
	       rate * 100);
	assert_true(rate <= 0.015);
	/* a filter whose length disagrees with its header is refused */
	assert_int_equal(rk_bloom_parse(&f, data, len - 1), RK_DATA_LOSS);
	data[2] = 0;
	assert_int_equal(rk_bloom_parse(&f, data, len), RK_DATA_LOSS);
	free(data);
}

static void test_memtable_orders_versions_and_answers_by_sequence(void **state)
{
	(void)state;
	rk_memtable_t *m;
	assert_int_equal(rk_memtable_new(&m), RK_OK);
	assert_int_equal(rk_memtable_add(m, 1, RK_TYPE_VALUE, rk_slice("b", 1),
	                                 rk_slice("b1", 2)),
	                 RK_OK);
	assert_int_equal(rk_memtable_add(m, 2, RK_TYPE_VALUE, rk_slice("a", 1),
	                                 rk_slice("a2", 2)),
	                 RK_OK);
	assert_int_equal(rk_memtable_add(m, 3, RK_TYPE_DELETE, rk_slice("b", 1),
	                                 rk_slice("12345678", 8)),
	                 RK_OK);
	assert_int_equal(rk_memtable_add(m, 4, RK_TYPE_VALUE, rk_slice("b", 1),
	                                 rk_slice("b4", 2)),
	                 RK_OK);
	rk_slice_t v;
	assert_int_equal(rk_memtable_get(m, rk_slice("b", 1), 1, &v),
	                 RK_TYPE_VALUE + 1);
	assert_memory_equal(v.p, "b1", 2);
	assert_int_equal(rk_memtable_get(m, rk_slice("b", 1), 3, &v),
	                 RK_TYPE_DELETE + 1);
	assert_int_equal(rk_memtable_get(m, rk_slice("b", 1), 9, &v),
	                 RK_TYPE_VALUE + 1);
	assert_memory_equal(v.p, "b4", 2);
	assert_int_equal(rk_memtable_get(m, rk_slice("a", 1), 1, &v), 0);
	assert_int_equal(rk_memtable_get(m, rk_slice("c", 1), 9, &v), 0);
	/* iteration: a@2, b@4, b@3, b@1 */
	rk_iter_t *it = rk_memtable_iter(m);
	uint64_t want[] = {2, 4, 3, 1};
	int i = 0;
	for (rk_iter_seek_first(it); rk_iter_valid(it); rk_iter_next(it))
		assert_int_equal(rk_ikey_trailer(rk_iter_key(it)) >> 8,
		                 want[i++]);
	assert_int_equal(i, 4);
	for (rk_iter_seek_last(it); rk_iter_valid(it); rk_iter_prev(it))
		assert_int_equal(rk_ikey_trailer(rk_iter_key(it)) >> 8,
		                 want[--i]);
	assert_int_equal(i, 0);
	rk_iter_free(it);
	assert_int_equal(rk_memtable_count(m), 4);
	rk_memtable_unref(m);
}

static void test_cache_stays_within_its_byte_bound(void **state)
{
	(void)state;
	rk_cache_t *c;
	assert_int_equal(rk_cache_new(64 << 10, &c), RK_OK);
	for (uint64_t i = 0; i < 1000; i++) {
		rk_block_builder_t bb;
		rk_block_builder_init(&bb, 16);
		uint8_t k[64];
		size_t kn;
		for (int j = 0; j < 40; j++) {
			ikey(k, &kn, j, i);
			rk_block_builder_add(&bb, rk_slice(k, kn),
			                     rk_slice("v", 1));
		}
		rk_slice_t raw;
		assert_int_equal(rk_block_builder_finish(&bb, &raw), RK_OK);
		uint8_t *copy = malloc(raw.n);
		memcpy(copy, raw.p, raw.n);
		rk_block_t *b;
		assert_int_equal(rk_block_new(copy, raw.n, &b), RK_OK);
		rk_cache_insert(c, 1, i * 4096, b);
		rk_block_unref(b);
		rk_block_builder_fini(&bb);
	}
	uint64_t hits, misses, bytes;
	rk_cache_counters(c, &hits, &misses, &bytes);
	assert_true(bytes <= 64 << 10);
	assert_true(bytes > 32 << 10);
	rk_block_t *b = rk_cache_lookup(c, 1, 999 * 4096);
	assert_non_null(b); /* the newest is kept */
	rk_block_unref(b);
	assert_null(rk_cache_lookup(c, 1, 0)); /* the oldest went */
	rk_cache_counters(c, &hits, &misses, &bytes);
	assert_int_equal(hits, 1);
	assert_int_equal(misses, 1);
	rk_cache_free(c);
}

/* Writes table 5 in DIR with N keys k000000..; returns its size. */
static uint64_t build_table(const char *dir, int n, int compression)
{
	char path[4200];
	rk_lsm_file_name(path, sizeof(path), dir, 5, "sst");
	rk_table_builder_t tb;
	assert_int_equal(
	    rk_table_builder_open(&tb, path, 4096, compression, 10), RK_OK);
	uint8_t k[64];
	size_t kn;
	char v[128];
	for (int i = 0; i < n; i++) {
		ikey(k, &kn, i, 1);
		int vn = snprintf(v, sizeof(v), "value %d %080d", i, i);
		assert_int_equal(rk_table_builder_add(&tb, rk_slice(k, kn),
		                                      rk_slice(v, (size_t)vn)),
		                 RK_OK);
	}
	uint64_t size;
	assert_int_equal(rk_table_builder_finish(&tb, &size), RK_OK);
	return size;
}

/* Looks up every key: returns how many were found right; any wrong value
 * fails the test; DATA_LOSS answers are counted in *LOSS. */
static int read_all(rk_table_t *t, int n, int *loss)
{
	int ok = 0;
	*loss = 0;
	for (int i = 0; i < n; i++) {
		uint8_t k[64];
		size_t kn;
		ikey(k, &kn, i, 9);
		int type;
		uint8_t *val;
		size_t vlen;
		rk_slice_t uk = rk_ikey_user(rk_slice(k, kn));
		rk_status_t st =
		    rk_table_get(t, rk_slice(k, kn), uk, &type, &val, &vlen);
		if (st == RK_DATA_LOSS) {
			(*loss)++;
			continue;
		}
		assert_int_equal(st, RK_OK);
		char v[128];
		int vn = snprintf(v, sizeof(v), "value %d %080d", i, i);
		assert_int_equal(vlen, (size_t)vn);
		assert_memory_equal(val, v, vlen);
		free(val);
		ok++;
	}
	return ok;
}

static void test_table_roundtrip_with_and_without_lz4(void **state)
{
	(void)state;
	for (int z = 0; z <= 1; z++) {
		char *dir = lsm_test_tmpdir("table");
		uint64_t size = build_table(dir, 5000, z);
		rk_cache_t *c;
		assert_int_equal(rk_cache_new(1 << 20, &c), RK_OK);
		rk_table_t *t;
		assert_int_equal(rk_table_open(dir, 5, size, c, &t, NULL, 0),
		                 RK_OK);
		int loss;
		assert_int_equal(read_all(t, 5000, &loss), 5000);
		/* keys that are not there */
		uint8_t k[64];
		size_t kn = rk_ikey_make(k, "zzz", 3, 9, RK_TYPE_VALUE);
		int type;
		uint8_t *val;
		size_t vlen;
		assert_int_equal(rk_table_get(t, rk_slice(k, kn),
		                              rk_slice("zzz", 3), &type, &val,
		                              &vlen),
		                 RK_NOT_FOUND);
		rk_iter_t *it = rk_table_iter(t, false);
		int n = 0;
		for (rk_iter_seek_first(it); rk_iter_valid(it);
		     rk_iter_next(it))
			n++;
		assert_int_equal(n, 5000);
		rk_iter_free(it);
		rk_table_unref(t);
		rk_cache_free(c);
		if (z == 1)
			printf("table: 5000 entries, %llu bytes with LZ4\n",
			       (unsigned long long)size);
		lsm_test_rmrf(dir);
		free(dir);
	}
}

/* Where each part of table 5 is, from its footer. */
static void table_layout(const char *path, uint64_t *foff, uint64_t *ioff,
                         uint64_t *footer)
{
	int64_t size = lsm_test_file_size(path);
	FILE *f = fopen(path, "rb");
	uint8_t buf[RK_TABLE_FOOTER];
	fseek(f, size - RK_TABLE_FOOTER, SEEK_SET);
	assert_int_equal(fread(buf, 1, sizeof(buf), f), sizeof(buf));
	fclose(f);
	*foff = rk_get_u64(buf);
	*ioff = rk_get_u64(buf + 16);
	*footer = (uint64_t)size - RK_TABLE_FOOTER;
}

static void corrupt_table_case(uint64_t where_kind)
{
	char *dir = lsm_test_tmpdir("tcor");
	uint64_t size = build_table(dir, 3000, 1);
	char path[4200];
	rk_lsm_file_name(path, sizeof(path), dir, 5, "sst");
	uint64_t foff, ioff, footer;
	table_layout(path, &foff, &ioff, &footer);
	uint64_t off = where_kind == 0   ? 100          /* a data block */
	               : where_kind == 1 ? ioff + 3     /* the index */
	               : where_kind == 2 ? foff + 30    /* the bloom bits */
	               : where_kind == 3 ? footer + 5   /* footer handle */
	                                 : footer + 50; /* footer magic */
	assert_int_equal(lsm_test_flip(path, off, 0x10), 0);
	rk_cache_t *c;
	assert_int_equal(rk_cache_new(1 << 20, &c), RK_OK);
	rk_table_t *t = NULL;
	char err[256] = "";
	rk_status_t st = rk_table_open(dir, 5, size, c, &t, err, sizeof(err));
	if (where_kind == 0) {
		/* opens; the damaged block answers DATA_LOSS, others are right
		 */
		assert_int_equal(st, RK_OK);
		int loss;
		int ok = read_all(t, 3000, &loss);
		assert_true(loss > 0);
		assert_int_equal(ok + loss, 3000);
		rk_iter_t *it = rk_table_iter(t, false);
		for (rk_iter_seek_first(it); rk_iter_valid(it);
		     rk_iter_next(it))
			;
		assert_int_equal(rk_iter_status(it), RK_DATA_LOSS);
		rk_iter_free(it);
		rk_table_unref(t);
	} else {
		assert_int_equal(st, RK_DATA_LOSS);
		assert_non_null(strstr(err, "000005.sst"));
	}
	rk_cache_free(c);
	lsm_test_rmrf(dir);
	free(dir);
}

static void test_table_corrupt_data_block_gives_data_loss(void **state)
{
	(void)state;
	corrupt_table_case(0);
}

static void test_table_corrupt_index_block_refuses_open(void **state)
{
	(void)state;
	corrupt_table_case(1);
}

static void test_table_corrupt_bloom_filter_refuses_open(void **state)
{
	(void)state;
	corrupt_table_case(2);
}

static void test_table_corrupt_footer_refuses_open(void **state)
{
	(void)state;
	corrupt_table_case(3);
	corrupt_table_case(4);
}

static void test_manifest_roundtrip_and_any_flip_is_data_loss(void **state)
{
	(void)state;
	char *dir = lsm_test_tmpdir("man");
	rk_version_t *empty = rk_version_new();
	rk_edit_t e;
	rk_edit_init(&e);
	for (int i = 0; i < 5; i++) {
		uint8_t a[64], b[64];
		size_t an, bn;
		ikey(a, &an, i * 10, 3);
		ikey(b, &bn, i * 10 + 9, 3);
		rk_file_t *f =
		    rk_file_new(dir, NULL, (uint64_t)(10 + i), 1000, 10,
		                rk_slice(a, an), rk_slice(b, bn));
		assert_int_equal(rk_edit_add(&e, i % 3, f), RK_OK);
		rk_file_unref(f);
	}
	rk_version_t *v = rk_version_apply(empty, &e);
	rk_edit_fini(&e);
	rk_manifest_t m = {
	    .next_file = 99, .last_seq = 1234, .log_number = 17, .version = v};
	assert_int_equal(rk_manifest_write(dir, &m, NULL, 0), RK_OK);
	rk_manifest_t r;
	assert_int_equal(rk_manifest_read(dir, NULL, &r, NULL, 0), RK_OK);
	assert_int_equal(r.next_file, 99);
	assert_int_equal(r.last_seq, 1234);
	assert_int_equal(r.log_number, 17);
	assert_int_equal(r.version->n[0], 2);
	assert_int_equal(r.version->n[1], 2);
	assert_int_equal(r.version->n[2], 1);
	assert_int_equal(r.version->files[0][0]->number, 13); /* newest */
	rk_version_unref(r.version);
	char path[4200];
	snprintf(path, sizeof(path), "%s/MANIFEST", dir);
	int64_t size = lsm_test_file_size(path);
	for (int64_t off = 0; off < size; off += 3) {
		assert_int_equal(lsm_test_flip(path, (uint64_t)off, 0x04), 0);
		char err[256] = "";
		assert_int_equal(
		    rk_manifest_read(dir, NULL, &r, err, sizeof(err)),
		    RK_DATA_LOSS);
		assert_non_null(strstr(err, "MANIFEST is corrupt"));
		assert_int_equal(lsm_test_flip(path, (uint64_t)off, 0x04), 0);
	}
	assert_int_equal(rk_manifest_read(dir, NULL, &r, NULL, 0), RK_OK);
	rk_version_unref(r.version);
	rk_version_unref(v);
	rk_version_unref(empty);
	lsm_test_rmrf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_crc32c_matches_the_standard_check_value),
	    cmocka_unit_test(
	        test_crc32c_three_stream_path_matches_small_pieces),
	    cmocka_unit_test(test_siphash_depends_on_key_and_every_byte),
	    cmocka_unit_test(test_batch_walk_refuses_every_truncation),
	    cmocka_unit_test(test_bytes_cmp_orders_as_memcmp),
	    cmocka_unit_test(test_wal_replays_all_then_stops_at_torn_tail),
	    cmocka_unit_test(test_wal_open_log_has_blocks_and_a_zero_tail_that_replays_clean),
	    cmocka_unit_test(
	        test_wal_damage_in_an_open_log_drops_records_not_its_zero_tail),
	    cmocka_unit_test(test_wal_headers_zero_short_and_foreign),
	    cmocka_unit_test(test_wal_unmaps_what_is_behind_and_loses_nothing),
	    cmocka_unit_test(test_wal_prefaults_ahead_and_replays_exactly),
	    cmocka_unit_test(test_wal_large_group_goes_out_whole_and_replays),
	    cmocka_unit_test(test_wal_stops_at_corrupt_record_and_reports_it),
	    cmocka_unit_test(test_block_roundtrip_seek_and_corruption),
	    cmocka_unit_test(
	        test_bloom_false_positive_rate_is_below_1_5_percent),
	    cmocka_unit_test(
	        test_memtable_orders_versions_and_answers_by_sequence),
	    cmocka_unit_test(test_cache_stays_within_its_byte_bound),
	    cmocka_unit_test(test_table_roundtrip_with_and_without_lz4),
	    cmocka_unit_test(test_table_corrupt_data_block_gives_data_loss),
	    cmocka_unit_test(test_table_corrupt_index_block_refuses_open),
	    cmocka_unit_test(test_table_corrupt_bloom_filter_refuses_open),
	    cmocka_unit_test(test_table_corrupt_footer_refuses_open),
	    cmocka_unit_test(test_manifest_roundtrip_and_any_flip_is_data_loss),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
