/*
 * Corruption through the whole engine: bytes flipped in the commit log, a
 * table (data block, index, bloom filter, footer) and the manifest of a
 * real database. Every case must give a clear status (and a report), and
 * no read may ever return a wrong value.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coding.h"
#include "lsm.h"
#include "lsm/lsm_test_util.h"
#include "table.h"
#include "wal.h"

#define N 3000

static size_t kv(char *k, char *v, int i)
{
	snprintf(k, 32, "key-%06d", i);
	return (size_t)snprintf(v, 200, "value-%d-%060d", i, i * 3);
}

/* A database with N keys, either all in one table or all in the log. */
static char *make_db(int flushed)
{
	char *dir = lsm_test_tmpdir("corrupt");
	rk_lsm_options_t o;
	lsm_test_options(&o);
	o.write_buffer_size = 4 << 20;
	rk_lsm_t *db;
	assert_int_equal(rk_lsm_open(dir, &o, &db, NULL, 0), RK_OK);
	char k[32], v[200];
	for (int i = 0; i < N; i++) {
		size_t vn = kv(k, v, i);
		assert_int_equal(rk_lsm_put(db, k, strlen(k), v, vn), RK_OK);
	}
	if (flushed)
		assert_int_equal(rk_lsm_flush(db), RK_OK);
	rk_lsm_close(db);
	return dir;
}

/* Reads every key: counts right answers and DATA_LOSS answers; a wrong
 * value or any other status fails. Absent keys count in *MISSING. */
static void read_all(rk_lsm_t *db, int *ok, int *loss, int *missing)
{
	*ok = *loss = *missing = 0;
	char k[32], v[200];
	for (int i = 0; i < N; i++) {
		size_t vn = kv(k, v, i);
		void *val;
		size_t n;
		rk_status_t st = rk_lsm_get(db, k, strlen(k), &val, &n);
		if (st == RK_DATA_LOSS) {
			(*loss)++;
		} else if (st == RK_NOT_FOUND) {
			(*missing)++;
		} else {
			assert_int_equal(st, RK_OK);
			assert_int_equal(n, vn);
			assert_memory_equal(val, v, n);
			free(val);
			(*ok)++;
		}
	}
}

/* A database with N keys in its log, one byte flipped halfway through the
 * log; the log's path goes to LOG. */
static char *make_db_with_damaged_log(char *log, size_t n)
{
	char *dir = make_db(0);
	assert_int_equal(lsm_test_find(dir, "log", log, n), 0);
	int64_t size = lsm_test_file_size(log);
	assert_int_equal(lsm_test_flip(log, (uint64_t)size / 2, 0x20), 0);
	return dir;
}

static void test_lsm_flipped_log_byte_drops_tail_and_reports_it(void **state)
{
	(void)state;
	char log[4200];
	char *dir = make_db_with_damaged_log(log, sizeof(log));
	char copy[4200];
	snprintf(copy, sizeof(copy), "%s.bak", dir);
	assert_int_equal(lsm_test_copy_dir(dir, copy), 0);

	rk_lsm_options_t o;
	lsm_test_options(&o);
	rk_lsm_t *db;
	assert_int_equal(rk_lsm_open(dir, &o, &db, NULL, 0), RK_OK);
	rk_lsm_stats_t s;
	rk_lsm_stats(db, &s);
	assert_true(s.recovery_dropped_bytes > 0);
	assert_non_null(strstr(s.recovery_drop_reason, "checksum"));
	int ok, loss, missing;
	read_all(db, &ok, &loss, &missing);
	/* a prefix survives, the rest is absent: never a wrong value */
	assert_true(ok > N / 3 && ok < N);
	assert_int_equal(ok + missing, N);
	char k[32], v[200];
	kv(k, v, ok - 1);
	void *val;
	size_t n;
	assert_int_equal(rk_lsm_get(db, k, strlen(k), &val, &n), RK_OK);
	free(val);
	rk_lsm_close(db);

	/* paranoid_checks refuses to open instead */
	o.paranoid_checks = 1;
	char err[256];
	assert_int_equal(rk_lsm_open(copy, &o, &db, err, sizeof(err)),
	                 RK_DATA_LOSS);
	assert_non_null(strstr(err, "commit log damaged"));
	lsm_test_rmrf(copy);
	lsm_test_rmrf(dir);
	free(dir);
}

static rk_status_t skip_record(void *arg, const uint8_t *p, size_t n)
{
	(void)arg;
	(void)p;
	(void)n;
	return RK_OK;
}

/* Damage in one log stops recovery there: a later log is not replayed,
 * and its records (not the zero tail a crash leaves behind them) count as
 * dropped. */
static void test_lsm_log_after_a_damaged_one_is_dropped_without_its_zeros(
    void **state)
{
	(void)state;
	char log[4200];
	char *dir = make_db_with_damaged_log(log, sizeof(log));
	rk_wal_report_t first;
	assert_int_equal(rk_wal_replay(log, skip_record, NULL, &first), RK_OK);
	assert_true(first.dropped_bytes > 0);
	/* A later log, left as a crash leaves it: records, then zeros. */
	const char *base = strrchr(log, '/') + 1;
	uint64_t number = strtoull(base, NULL, 10) + 1;
	rk_wal_t *w;
	assert_int_equal(rk_wal_create(dir, number, 0, &w, NULL, 0), RK_OK);
	uint8_t rec[40];
	memset(rec, 0x5a, sizeof(rec));
	rk_slice_t one = rk_slice(rec, sizeof(rec));
	for (int i = 0; i < 3; i++)
		assert_int_equal(rk_wal_append(w, &one, 1), RK_OK);
	rk_wal_unref(w);
	char later[4200];
	rk_lsm_file_name(later, sizeof(later), dir, number, "log");
	int64_t later_size = lsm_test_file_size(later);
	assert_int_equal(later_size, RK_WAL_HEADER + 3 * (8 + 40));
	assert_int_equal(truncate(later, later_size + 65536), 0);

	rk_lsm_options_t o;
	lsm_test_options(&o);
	rk_lsm_t *db;
	assert_int_equal(rk_lsm_open(dir, &o, &db, NULL, 0), RK_OK);
	rk_lsm_stats_t s;
	rk_lsm_stats(db, &s);
	assert_int_equal(s.recovery_dropped_bytes,
	                 first.dropped_bytes + (uint64_t)later_size);
	assert_non_null(strstr(s.recovery_drop_reason, base));
	int ok, loss, missing;
	read_all(db, &ok, &loss, &missing);
	assert_true(ok > N / 3 && ok < N);
	assert_int_equal(ok + missing, N);
	rk_lsm_close(db);
	lsm_test_rmrf(dir);
	free(dir);
}

static void flip_table_case(int which)
{
	char *dir = make_db(1);
	char sst[4200];
	assert_int_equal(lsm_test_find(dir, "sst", sst, sizeof(sst)), 0);
	int64_t size = lsm_test_file_size(sst);
	FILE *f = fopen(sst, "rb");
	uint8_t foot[RK_TABLE_FOOTER];
	fseek(f, size - RK_TABLE_FOOTER, SEEK_SET);
	assert_int_equal(fread(foot, 1, sizeof(foot), f), sizeof(foot));
	fclose(f);
	uint64_t off = which == 0   ? 200                       /* data */
	               : which == 1 ? rk_get_u64(foot + 16) + 2 /* index */
	               : which == 2 ? rk_get_u64(foot) + 40     /* bloom */
	                            : (uint64_t)size - 20;      /* footer */
	assert_int_equal(lsm_test_flip(sst, off, 0x08), 0);

	rk_lsm_options_t o;
	lsm_test_options(&o);
	rk_lsm_t *db;
	assert_int_equal(rk_lsm_open(dir, &o, &db, NULL, 0), RK_OK);
	int ok, loss, missing;
	read_all(db, &ok, &loss, &missing);
	assert_int_equal(missing, 0);
	assert_true(loss > 0);
	if (which == 0)
		assert_true(ok > 0); /* only the damaged block is lost */
	else
		assert_int_equal(loss, N); /* the table cannot be used */
	rk_lsm_iter_t *it;
	assert_int_equal(rk_lsm_iter_new(db, &it), RK_OK);
	for (rk_lsm_iter_seek_first(it); rk_lsm_iter_valid(it);
	     rk_lsm_iter_next(it))
		;
	assert_int_equal(rk_lsm_iter_status(it), RK_DATA_LOSS);
	rk_lsm_iter_free(it);
	/* compaction must not launder a corrupt table into a clean one */
	assert_int_not_equal(rk_lsm_compact(db), RK_OK);
	rk_lsm_close(db);
	lsm_test_rmrf(dir);
	free(dir);
}

static void test_lsm_flipped_data_block_byte_gives_data_loss(void **state)
{
	(void)state;
	flip_table_case(0);
}

static void test_lsm_flipped_index_byte_gives_data_loss(void **state)
{
	(void)state;
	flip_table_case(1);
}

static void test_lsm_flipped_bloom_byte_gives_data_loss(void **state)
{
	(void)state;
	flip_table_case(2);
}

static void test_lsm_flipped_footer_byte_gives_data_loss(void **state)
{
	(void)state;
	flip_table_case(3);
}

static void test_lsm_truncated_table_gives_data_loss_not_a_crash(void **state)
{
	(void)state;
	char *dir = make_db(1);
	char sst[4200];
	assert_int_equal(lsm_test_find(dir, "sst", sst, sizeof(sst)), 0);
	int64_t size = lsm_test_file_size(sst);
	assert_int_equal(truncate(sst, size / 2), 0);
	rk_lsm_options_t o;
	lsm_test_options(&o);
	rk_lsm_t *db;
	assert_int_equal(rk_lsm_open(dir, &o, &db, NULL, 0), RK_OK);
	int ok, loss, missing;
	read_all(db, &ok, &loss, &missing);
	assert_int_equal(loss, N);
	rk_lsm_close(db);
	lsm_test_rmrf(dir);
	free(dir);
}

static void test_lsm_flipped_manifest_byte_refuses_open(void **state)
{
	(void)state;
	char *dir = make_db(1);
	char man[4200];
	snprintf(man, sizeof(man), "%s/MANIFEST", dir);
	assert_int_equal(lsm_test_flip(man, 30, 0x01), 0);
	rk_lsm_options_t o;
	lsm_test_options(&o);
	rk_lsm_t *db;
	char err[256];
	assert_int_equal(rk_lsm_open(dir, &o, &db, err, sizeof(err)),
	                 RK_DATA_LOSS);
	assert_non_null(strstr(err, "MANIFEST is corrupt"));
	/* and a missing manifest with tables present is not "empty" */
	assert_int_equal(remove(man), 0);
	assert_int_equal(rk_lsm_open(dir, &o, &db, err, sizeof(err)),
	                 RK_DATA_LOSS);
	assert_non_null(strstr(err, "no MANIFEST"));
	lsm_test_rmrf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
	        test_lsm_flipped_log_byte_drops_tail_and_reports_it),
	    cmocka_unit_test(
	        test_lsm_log_after_a_damaged_one_is_dropped_without_its_zeros),
	    cmocka_unit_test(test_lsm_flipped_data_block_byte_gives_data_loss),
	    cmocka_unit_test(test_lsm_flipped_index_byte_gives_data_loss),
	    cmocka_unit_test(test_lsm_flipped_bloom_byte_gives_data_loss),
	    cmocka_unit_test(test_lsm_flipped_footer_byte_gives_data_loss),
	    cmocka_unit_test(
	        test_lsm_truncated_table_gives_data_loss_not_a_crash),
	    cmocka_unit_test(test_lsm_flipped_manifest_byte_refuses_open),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
