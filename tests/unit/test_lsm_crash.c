/*
 * The LSM engine against the two failures a disk-backed store must
 * survive: the process killed at any moment (kill -9 of a child writing
 * with fsync `always`, then every acknowledged write must be found), and
 * a full disk (a small tmpfs: writes fail cleanly with RESOURCE_EXHAUSTED,
 * reads go on, and the database reopens with every acknowledged write).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "lsm.h"
#include "lsm/lsm_test_util.h"

static size_t kv(char *k, char *v, int i)
{
	snprintf(k, 32, "key-%09d", i);
	return (size_t)snprintf(v, 200, "value-%d-%0120d", i, i);
}

/* The child: writes keys 0, 1, 2, ... and reports each acknowledged one
 * on FD as a 4-byte index. Never returns. */
static void child_writer(const char *dir, int fd, rk_lsm_sync_t sync)
{
	rk_lsm_options_t o;
	lsm_test_options(&o);
	o.sync = sync;
	rk_lsm_t *db;
	if (rk_lsm_open(dir, &o, &db, NULL, 0) != RK_OK)
		_exit(2);
	char k[32], v[200];
	for (int i = 0;; i++) {
		size_t vn = kv(k, v, i);
		if (rk_lsm_put(db, k, strlen(k), v, vn) != RK_OK)
			_exit(3);
		if (write(fd, &i, sizeof(i)) != sizeof(i))
			_exit(4);
	}
}

static void kill9_case(rk_lsm_sync_t sync, int min_acks)
{
	char *dir = lsm_test_tmpdir("kill9");
	for (int round = 0; round < 3; round++) {
		int p[2];
		assert_int_equal(pipe(p), 0);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(p[0]);
			child_writer(dir, p[1], sync);
		}
		close(p[1]);
		/* let it get going, then kill it in the middle of a write */
		int last = -1, got;
		uint64_t deadline = rk_clock_mono_ms() + 20000;
		unsigned target = (unsigned)min_acks + (unsigned)rand() % 500;
		while (last + 1 < (int)target &&
		       rk_clock_mono_ms() < deadline) {
			struct pollfd pf = {.fd = p[0], .events = POLLIN};
			if (poll(&pf, 1, 1000) <= 0)
				continue;
			if (read(p[0], &got, sizeof(got)) != sizeof(got))
				break;
			last = got;
		}
		kill(pid, SIGKILL);
		/* acknowledgements already in the pipe count too */
		while (read(p[0], &got, sizeof(got)) == sizeof(got))
			last = got;
		close(p[0]);
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
		assert_true(last >= 0);

		rk_lsm_options_t o;
		lsm_test_options(&o);
		rk_lsm_t *db;
		char err[256];
		assert_int_equal(rk_lsm_open(dir, &o, &db, err, sizeof(err)),
		                 RK_OK);
		char k[32], v[200];
		for (int i = 0; i <= last; i++) {
			size_t vn = kv(k, v, i);
			void *val;
			size_t n;
			rk_status_t st = rk_lsm_get(db, k, strlen(k), &val, &n);
			if (st != RK_OK)
				fprintf(stderr,
				        "acknowledged key %d of %d lost\n", i,
				        last);
			assert_int_equal(st, RK_OK);
			assert_int_equal(n, vn);
			assert_memory_equal(val, v, n);
			free(val);
		}
		rk_lsm_stats_t s;
		rk_lsm_stats(db, &s);
		printf("kill -9 round %d: %d acknowledged, %llu log records "
		       "replayed, %llu bytes dropped\n",
		       round, last + 1, (unsigned long long)s.recovery_records,
		       (unsigned long long)s.recovery_dropped_bytes);
		rk_lsm_close(db);
	}
	lsm_test_rmrf(dir);
	free(dir);
}

static void test_lsm_kill9_with_sync_always_keeps_every_ack(void **state)
{
	(void)state;
	kill9_case(RK_LSM_SYNC_ALWAYS, 1500);
}

static void test_lsm_kill9_with_periodic_sync_keeps_every_ack(void **state)
{
	(void)state;
	/* periodic: acknowledged = handed to the kernel, which a process
	 * crash does not lose (docs/lsm-commit-log.md) */
	kill9_case(RK_LSM_SYNC_PERIODIC, 20000);
}

static char *full_dir; /* mounted tmpfs, for the teardown */

/* Unmounts and removes the tmpfs even when an assertion failed. */
static int full_disk_teardown(void **state)
{
	(void)state;
	if (full_dir != NULL) {
		umount(full_dir);
		lsm_test_rmrf(full_dir);
		free(full_dir);
		full_dir = NULL;
	}
	return 0;
}

static void test_lsm_full_disk_fails_cleanly_and_reopens(void **state)
{
	(void)state;
	char *dir = lsm_test_tmpdir("full");
	full_dir = dir;
	if (mount("tmpfs", dir, "tmpfs", 0, "size=1m") != 0) {
		int e = errno;
		fprintf(stderr,
		        "SKIPPED full-disk test: cannot mount a tmpfs "
		        "(%s); needs root\n",
		        strerror(e));
		skip();
	}
	char db_dir[4200];
	snprintf(db_dir, sizeof(db_dir), "%s/db", dir);
	rk_lsm_options_t o;
	lsm_test_options(&o);
	o.sync = RK_LSM_SYNC_ALWAYS;
	o.compression = 0;
	rk_lsm_t *db;
	assert_int_equal(rk_lsm_open(db_dir, &o, &db, NULL, 0), RK_OK);
	char k[32], v[200];
	int acked = -1;
	rk_status_t st = RK_OK;
	for (int i = 0; i < 100000; i++) {
		size_t vn = kv(k, v, i);
		st = rk_lsm_put(db, k, strlen(k), v, vn);
		if (st != RK_OK)
			break;
		acked = i;
	}
	printf("full disk: %d writes acknowledged, then %s\n", acked + 1,
	       rk_status_name(st));
	assert_int_equal(st, RK_RESOURCE_EXHAUSTED);
	assert_true(acked > 100);
	/* reads still answer, and right */
	for (int i = 0; i <= acked; i += 97) {
		size_t vn = kv(k, v, i);
		void *val;
		size_t n;
		assert_int_equal(rk_lsm_get(db, k, strlen(k), &val, &n), RK_OK);
		assert_int_equal(n, vn);
		assert_memory_equal(val, v, n);
		free(val);
	}
	/* more writes keep failing cleanly */
	assert_int_equal(rk_lsm_put(db, "x", 1, v, 150), RK_RESOURCE_EXHAUSTED);
	rk_lsm_close(db);
	/* reopening while still full: opens, or refuses with a clear status */
	st = rk_lsm_open(db_dir, &o, &db, NULL, 0);
	assert_true(st == RK_OK || st == RK_RESOURCE_EXHAUSTED);
	if (st == RK_OK)
		rk_lsm_close(db);
	/* with room again, every acknowledged write is there */
	assert_int_equal(mount("tmpfs", dir, "tmpfs", MS_REMOUNT, "size=16m"),
	                 0);
	char err[256];
	st = rk_lsm_open(db_dir, &o, &db, err, sizeof(err));
	if (st != RK_OK)
		fprintf(stderr, "reopen: %s\n", err);
	assert_int_equal(st, RK_OK);
	for (int i = 0; i <= acked; i++) {
		size_t vn = kv(k, v, i);
		void *val;
		size_t n;
		assert_int_equal(rk_lsm_get(db, k, strlen(k), &val, &n), RK_OK);
		assert_int_equal(n, vn);
		assert_memory_equal(val, v, n);
		free(val);
	}
	assert_int_equal(rk_lsm_put(db, "after", 5, "ok", 2), RK_OK);
	rk_lsm_close(db);
	assert_int_equal(umount(dir), 0);
}

int main(void)
{
	srand((unsigned)time(NULL));
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lsm_kill9_with_sync_always_keeps_every_ack),
	    cmocka_unit_test(test_lsm_kill9_with_periodic_sync_keeps_every_ack),
	    cmocka_unit_test_teardown(
	        test_lsm_full_disk_fails_cleanly_and_reopens,
	        full_disk_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
