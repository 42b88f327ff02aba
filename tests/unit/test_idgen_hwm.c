/*
 * The high-water mark file of ringkv-idgen (services/idgen/hwm.c), on real
 * files with fsync in a fresh temp directory, and the `idgen:` config
 * section (services/idgen/idgen_config.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "core/log.h"
#include "hwm.h"
#include "idgen_config.h"

static int make_dir(void **state)
{
	char *dir = strdup("/tmp/ringkv-hwm-XXXXXX");
	assert_non_null(mkdtemp(dir));
	*state = dir;
	return 0;
}

static int remove_dir(void **state)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", (char *)*state);
	assert_int_equal(system(cmd), 0);
	free(*state);
	return 0;
}

static void path_in(const char *dir, const char *name, char *out, size_t n)
{
	snprintf(out, n, "%s/%s", dir, name);
}

static void test_hwm_starts_at_zero_and_survives_reopen(void **state)
{
	const char *dir = *state;
	char why[256];
	rk_hwm_t *h;
	uint64_t mark = 99;
	assert_int_equal(rk_hwm_open(dir, 1, 2, &h, &mark, why, sizeof(why)),
	                 RK_OK);
	assert_true(mark == 0);
	assert_int_equal(rk_hwm_store(h, 1795000000123ull, why, sizeof(why)),
	                 RK_OK);
	rk_hwm_close(h);
	assert_int_equal(rk_hwm_open(dir, 1, 2, &h, &mark, why, sizeof(why)),
	                 RK_OK);
	assert_true(mark == 1795000000123ull);
	rk_hwm_close(h);
	/* One whole 32-byte record; no temp file left behind. */
	char p[512];
	struct stat st;
	path_in(dir, "idgen-dc1-w2.hwm", p, sizeof(p));
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, RK_HWM_FILE_BYTES);
	path_in(dir, "idgen-dc1-w2.hwm.tmp", p, sizeof(p));
	assert_int_not_equal(stat(p, &st), 0);
}

static void test_hwm_mark_never_decreases(void **state)
{
	const char *dir = *state;
	char why[256];
	rk_hwm_t *h;
	uint64_t mark;
	assert_int_equal(rk_hwm_open(dir, 0, 0, &h, &mark, why, sizeof(why)),
	                 RK_OK);
	assert_int_equal(rk_hwm_store(h, 5000, why, sizeof(why)), RK_OK);
	assert_int_equal(rk_hwm_store(h, 4000, why, sizeof(why)), RK_OK);
	assert_true(rk_hwm_mark(h) == 5000);
	rk_hwm_close(h);
	assert_int_equal(rk_hwm_open(dir, 0, 0, &h, &mark, why, sizeof(why)),
	                 RK_OK);
	assert_true(mark == 5000);
	rk_hwm_close(h);
}

static void corrupt_and_expect(const char *dir, off_t at, off_t truncate_to)
{
	char why[256], p[512];
	rk_hwm_t *h;
	uint64_t mark;
	assert_int_equal(rk_hwm_open(dir, 0, 1, &h, &mark, why, sizeof(why)),
	                 RK_OK);
	assert_int_equal(rk_hwm_store(h, 123456, why, sizeof(why)), RK_OK);
	rk_hwm_close(h);
	path_in(dir, "idgen-dc0-w1.hwm", p, sizeof(p));
	int fd = open(p, O_RDWR);
	assert_true(fd >= 0);
	if (truncate_to >= 0) {
		assert_int_equal(ftruncate(fd, truncate_to), 0);
	} else {
		uint8_t b;
		assert_int_equal(pread(fd, &b, 1, at), 1);
		b ^= 0x40;
		assert_int_equal(pwrite(fd, &b, 1, at), 1);
	}
	close(fd);
	assert_int_equal(rk_hwm_open(dir, 0, 1, &h, &mark, why, sizeof(why)),
	                 RK_DATA_LOSS);
	assert_non_null(strstr(why, "corrupt"));
}

static void test_hwm_flipped_bit_is_data_loss(void **state)
{
	corrupt_and_expect(*state, 17, -1); /* inside the mark */
}

static void test_hwm_torn_file_is_data_loss(void **state)
{
	corrupt_and_expect(*state, 0, 20);
}

static void test_hwm_same_identity_twice_is_refused(void **state)
{
	const char *dir = *state;
	char why[256];
	rk_hwm_t *a, *b, *c;
	uint64_t mark;
	assert_int_equal(rk_hwm_open(dir, 4, 9, &a, &mark, why, sizeof(why)),
	                 RK_OK);
	assert_int_equal(rk_hwm_open(dir, 4, 9, &b, &mark, why, sizeof(why)),
	                 RK_ALREADY_EXISTS);
	assert_non_null(strstr(why, "worker 9"));
	/* Another identity in the same directory is fine. */
	assert_int_equal(rk_hwm_open(dir, 4, 10, &c, &mark, why, sizeof(why)),
	                 RK_OK);
	rk_hwm_close(c);
	/* Released on close. */
	rk_hwm_close(a);
	assert_int_equal(rk_hwm_open(dir, 4, 9, &b, &mark, why, sizeof(why)),
	                 RK_OK);
	rk_hwm_close(b);
}

static void test_hwm_file_of_another_identity_is_refused(void **state)
{
	const char *dir = *state;
	char why[256], from[512], to[512];
	rk_hwm_t *h;
	uint64_t mark;
	assert_int_equal(rk_hwm_open(dir, 1, 2, &h, &mark, why, sizeof(why)),
	                 RK_OK);
	assert_int_equal(rk_hwm_store(h, 777, why, sizeof(why)), RK_OK);
	rk_hwm_close(h);
	path_in(dir, "idgen-dc1-w2.hwm", from, sizeof(from));
	path_in(dir, "idgen-dc1-w3.hwm", to, sizeof(to));
	assert_int_equal(rename(from, to), 0);
	assert_int_equal(rk_hwm_open(dir, 1, 3, &h, &mark, why, sizeof(why)),
	                 RK_FAILED_PRECONDITION);
}

static void test_hwm_unwritable_directory_is_unavailable(void **state)
{
	(void)state;
	char why[256];
	rk_hwm_t *h;
	uint64_t mark;
	assert_int_equal(
	    rk_hwm_open("/proc/no/such/dir", 0, 0, &h, &mark, why, sizeof(why)),
	    RK_UNAVAILABLE);
	assert_non_null(strstr(why, "/proc/no/such/dir"));
}

/* ---------------------------------------------------------- config */

static rk_status_t read_config(const char *text, rk_idgen_config_t *c,
                               char **err)
{
	rk_config_t *cfg;
	assert_int_equal(
	    rk_config_parse(text, strlen(text), "idgen.yaml", &cfg, NULL),
	    RK_OK);
	rk_idgen_config_read(cfg, c);
	rk_status_t st = rk_config_finish(cfg, err);
	rk_config_free(cfg);
	return st;
}

static void test_config_reads_every_field(void **state)
{
	(void)state;
	rk_idgen_config_t c;
	char *err = NULL;
	assert_int_equal(read_config("idgen:\n"
	                             "  epoch: 2020-01-01T00:00:00Z\n"
	                             "  datacenter_id: 31\n"
	                             "  worker_id: 5\n"
	                             "  worker_id_source: config\n"
	                             "  data_dir: /tmp/x\n"
	                             "  high_water_chunk: 2s\n"
	                             "  max_clock_step: 10ms\n"
	                             "  clock_stall_limit: 20ms\n"
	                             "  wait_threads: 3\n",
	                             &c, &err),
	                 RK_OK);
	assert_true(c.epoch_ms == 1577836800000ull);
	assert_int_equal(c.datacenter_id, 31);
	assert_int_equal(c.worker_id, 5);
	assert_string_equal(c.data_dir, "/tmp/x");
	assert_int_equal(c.chunk_ms, 2000);
	assert_int_equal(c.max_step_ms, 10);
	assert_int_equal(c.stall_ms, 20);
	assert_int_equal(c.threads, 3);
	assert_int_equal(read_config("", &c, &err), RK_OK);
	assert_true(c.epoch_ms == 1767225600000ull);
	assert_int_equal(c.max_step_ms, 5);
}

static void test_config_refuses_bad_ids_epoch_and_lease(void **state)
{
	(void)state;
	rk_idgen_config_t c;
	char *err = NULL;
	assert_int_equal(read_config("idgen:\n  worker_id: 32\n", &c, &err),
	                 RK_INVALID_ARGUMENT);
	assert_non_null(strstr(err, "idgen.worker_id"));
	free(err);
	assert_int_equal(read_config("idgen:\n  epoch: yesterday\n", &c, &err),
	                 RK_INVALID_ARGUMENT);
	assert_non_null(strstr(err, "idgen.epoch"));
	free(err);
	assert_int_equal(
	    read_config("idgen:\n  worker_id_source: lease\n", &c, &err),
	    RK_INVALID_ARGUMENT);
	assert_non_null(strstr(err, "membership"));
	free(err);
}

int main(void)
{
	rk_log_set_level(RK_LOG_ERROR);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_hwm_starts_at_zero_and_survives_reopen, make_dir,
	        remove_dir),
	    cmocka_unit_test_setup_teardown(test_hwm_mark_never_decreases,
	                                    make_dir, remove_dir),
	    cmocka_unit_test_setup_teardown(test_hwm_flipped_bit_is_data_loss,
	                                    make_dir, remove_dir),
	    cmocka_unit_test_setup_teardown(test_hwm_torn_file_is_data_loss,
	                                    make_dir, remove_dir),
	    cmocka_unit_test_setup_teardown(
	        test_hwm_same_identity_twice_is_refused, make_dir, remove_dir),
	    cmocka_unit_test_setup_teardown(
	        test_hwm_file_of_another_identity_is_refused, make_dir,
	        remove_dir),
	    cmocka_unit_test(test_hwm_unwritable_directory_is_unavailable),
	    cmocka_unit_test(test_config_reads_every_field),
	    cmocka_unit_test(test_config_refuses_bad_ids_epoch_and_lease),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
