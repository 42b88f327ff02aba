/*
 * The LSM readers against mutated and random inputs, with a printed seed:
 * the same entries the libFuzzer targets use (fuzz/lsm_targets.c), run
 * here under ASan+UBSan on every `make test`. Valid inputs are made by
 * the engine's own writers (a commit log, a block, a table), checked to be
 * accepted whole, then mutated: bytes flipped, runs overwritten, cut
 * short, grown with junk. Whatever the bytes, the reader must return.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batch.h"
#include "block.h"
#include "lsm.h"
#include "lsm/lsm_test_util.h"
#include "lsm_targets.h"
#include "table.h"
#include "wal.h"

static uint64_t rng_state;

static uint64_t rng(void)
{
	/* xorshift64*: reproducible from the printed seed. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

static uint8_t *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *p = malloc((size_t)len + 1);
	assert_non_null(p);
	assert_int_equal(fread(p, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	*n = (size_t)len;
	return p;
}

/* A commit log of 20 batches of 1-3 puts and deletes. */
static uint8_t *make_log(size_t *n)
{
	char *dir = lsm_test_tmpdir("fuzzlog");
	rk_wal_t *w;
	assert_int_equal(rk_wal_create(dir, 1, 0, &w, NULL, 0), RK_OK);
	uint64_t seq = 1;
	for (int i = 0; i < 20; i++) {
		rk_lsm_batch_t *b;
		assert_int_equal(rk_lsm_batch_new(&b), RK_OK);
		char k[32], v[64];
		for (int j = 0; j <= i % 3; j++) {
			snprintf(k, sizeof(k), "key-%04d-%d", i, j);
			snprintf(v, sizeof(v), "value-%d-%d", i, j);
			if (j == 2)
				rk_lsm_batch_delete(b, k, strlen(k));
			else
				rk_lsm_batch_put(b, k, strlen(k), v, strlen(v));
		}
		rk_put_u64(b->buf, seq);
		seq += b->count;
		rk_slice_t s = rk_slice(b->buf, b->len);
		assert_int_equal(rk_wal_append(w, &s, 1), RK_OK);
		rk_lsm_batch_free(b);
	}
	rk_wal_unref(w);
	char path[4200];
	rk_lsm_file_name(path, sizeof(path), dir, 1, "log");
	uint8_t *p = slurp(path, n);
	lsm_test_rmrf(dir);
	free(dir);
	return p;
}

static size_t ikey(uint8_t *out, int i)
{
	char k[32];
	snprintf(k, sizeof(k), "key-%06d", i);
	return rk_ikey_make(out, k, strlen(k), (uint64_t)(1000 - i),
	                    RK_TYPE_VALUE);
}

/* A block of 100 entries, restart every 16. */
static uint8_t *make_block(size_t *n)
{
	rk_block_builder_t b;
	rk_block_builder_init(&b, 16);
	uint8_t k[64];
	for (int i = 0; i < 100; i++) {
		size_t kn = ikey(k, i);
		rk_block_builder_add(&b, rk_slice(k, kn),
		                     rk_slice("some value bytes", 16));
	}
	rk_slice_t out;
	assert_int_equal(rk_block_builder_finish(&b, &out), RK_OK);
	uint8_t *p = malloc(out.n);
	assert_non_null(p);
	memcpy(p, out.p, out.n);
	*n = out.n;
	rk_block_builder_fini(&b);
	return p;
}

/* A table of 2000 entries in ~1 KiB blocks, LZ4 on. */
static uint8_t *make_table(size_t *n)
{
	char *dir = lsm_test_tmpdir("fuzztable");
	char path[4200];
	rk_lsm_file_name(path, sizeof(path), dir, 1, "sst");
	rk_table_builder_t b;
	assert_int_equal(rk_table_builder_open(&b, path, 1024, 1, 10), RK_OK);
	uint8_t k[64];
	char v[64];
	for (int i = 0; i < 2000; i++) {
		size_t kn = ikey(k, i);
		snprintf(v, sizeof(v), "value %d value %d", i, i);
		assert_int_equal(rk_table_builder_add(&b, rk_slice(k, kn),
		                                      rk_slice(v, strlen(v))),
		                 RK_OK);
	}
	uint64_t size;
	assert_int_equal(rk_table_builder_finish(&b, &size), RK_OK);
	uint8_t *p = slurp(path, n);
	assert_int_equal(*n, (size_t)size);
	lsm_test_rmrf(dir);
	free(dir);
	return p;
}

/* One random mutation of BASE into BUF (room for N + 64); its length. */
static size_t mutate(uint8_t *buf, const uint8_t *base, size_t n)
{
	memcpy(buf, base, n);
	size_t len = n;
	switch (rng() % 4) {
	case 0: /* a few single-bit flips */
		for (int f = 1 + (int)(rng() % 3); f > 0; f--)
			buf[rng() % len] ^= (uint8_t)(1u << (rng() % 8));
		break;
	case 1: { /* a run overwritten with random bytes */
		size_t at = rng() % len, run = 1 + rng() % 16;
		for (size_t i = at; i < at + run && i < len; i++)
			buf[i] = (uint8_t)rng();
		break;
	}
	case 2: /* cut short */
		len = rng() % len;
		break;
	default: /* junk appended */
		for (size_t i = 0, m = 1 + rng() % 64; i < m; i++)
			buf[len++] = (uint8_t)rng();
		break;
	}
	return len;
}

static void run_case(const char *name, uint8_t *(*make)(size_t *),
                     int (*target)(const uint8_t *, size_t), int rounds)
{
	uint64_t seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)name;
	printf("%s: seed %llu\n", name, (unsigned long long)seed);
	rng_state = seed | 1;
	size_t n;
	uint8_t *base = make(&n);
	assert_int_equal(target(base, n), 1); /* the valid input is taken */
	uint8_t *buf = malloc(n + 64);
	assert_non_null(buf);
	int reached = 0;
	for (int r = 0; r < rounds; r++) {
		size_t len = mutate(buf, base, n);
		reached += target(buf, len);
	}
	for (int r = 0; r < rounds / 4; r++) { /* pure noise */
		size_t len = rng() % (n + 64);
		for (size_t i = 0; i < len; i++)
			buf[i] = (uint8_t)rng();
		reached += target(buf, len);
	}
	printf("%s: %d of %d inputs got past the first checks\n", name, reached,
	       rounds + rounds / 4);
	free(buf);
	free(base);
}

static void test_lsm_log_reader_survives_mutated_logs(void **state)
{
	(void)state;
	run_case("log", make_log, rk_fuzz_lsm_log, 3000);
}

static void test_lsm_block_reader_survives_mutated_blocks(void **state)
{
	(void)state;
	run_case("block", make_block, rk_fuzz_lsm_block, 20000);
}

static void test_lsm_table_open_survives_mutated_tables(void **state)
{
	(void)state;
	run_case("table", make_table, rk_fuzz_lsm_table, 1500);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lsm_log_reader_survives_mutated_logs),
	    cmocka_unit_test(test_lsm_block_reader_survives_mutated_blocks),
	    cmocka_unit_test(test_lsm_table_open_survives_mutated_tables),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
