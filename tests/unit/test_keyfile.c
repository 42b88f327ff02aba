/*
 * Tests of the cluster key file (lib/crypto/keyfile.c). Each test gets a
 * fresh directory from mkdtemp, removed with everything in it afterwards.
 */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "crypto/keyfile.h"

struct fixture {
	char dir[64];   /* the test's own directory */
	char path[128]; /* DIR/cluster.key */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/rk_keyfile.XXXXXX");
	if (mkdtemp(f->dir) == NULL) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/cluster.key", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	DIR *d = opendir(f->dir);
	if (d != NULL) {
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 ||
			    strcmp(e->d_name, "..") == 0)
				continue;
			char p[512];
			snprintf(p, sizeof(p), "%s/%s", f->dir, e->d_name);
			if (unlink(p) != 0)
				rmdir(p);
		}
		closedir(d);
	}
	int rc = rmdir(f->dir);
	free(f);
	return rc;
}

/* Writes LEN bytes of DATA to PATH with exactly MODE. */
static void write_file(const char *path, const void *data, size_t len,
                       mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
}

/* Reads up to CAP bytes of PATH into BUF; returns the length. */
static size_t read_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	ssize_t n = read(fd, buf, cap);
	assert_true(n >= 0);
	close(fd);
	return (size_t)n;
}

static size_t count_entries(const char *dir)
{
	size_t n = 0;
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void test_generate_then_read_round_trips_with_mode_0600(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;
	assert_int_equal(rk_keyfile_generate(f->path, false, &err), RK_OK);
	assert_null(err);

	struct stat st;
	assert_int_equal(stat(f->path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	/* No temporary file left behind. */
	assert_int_equal(count_entries(f->dir), 1);

	/* On disk: 64 lowercase hex digits and a newline. */
	char text[128];
	size_t len = read_file(f->path, text, sizeof(text));
	assert_int_equal(len, 65);
	assert_int_equal(text[64], '\n');
	for (size_t i = 0; i < 64; i++)
		assert_non_null(strchr("0123456789abcdef", text[i]));

	uint8_t key[RK_SEAL_KEY_BYTES];
	assert_int_equal(rk_keyfile_read(f->path, key, &err), RK_OK);
	assert_null(err);
	/* The bytes read are the digits written. */
	char hex[65];
	for (size_t i = 0; i < RK_SEAL_KEY_BYTES; i++)
		snprintf(hex + 2 * i, 3, "%02x", key[i]);
	assert_memory_equal(hex, text, 64);
}

static void test_read_accepts_uppercase_without_newline(void **state)
{
	struct fixture *f = *state;
	static const char text[] = "000102030405060708090A0B0C0D0E0F"
	                           "101112131415161718191a1b1c1d1e1F";
	write_file(f->path, text, 64, 0600);
	uint8_t key[RK_SEAL_KEY_BYTES];
	assert_int_equal(rk_keyfile_read(f->path, key, NULL), RK_OK);
	for (size_t i = 0; i < RK_SEAL_KEY_BYTES; i++)
		assert_int_equal(key[i], i);
	/* A read-only 0400 file is fine too. */
	assert_int_equal(chmod(f->path, 0400), 0);
	assert_int_equal(rk_keyfile_read(f->path, key, NULL), RK_OK);
}

static void test_generate_refuses_overwrite_unless_forced(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(rk_keyfile_generate(f->path, false, NULL), RK_OK);
	char before[128], after[128];
	size_t n_before = read_file(f->path, before, sizeof(before));

	char *err = NULL;
	assert_int_equal(rk_keyfile_generate(f->path, false, &err),
	                 RK_ALREADY_EXISTS);
	assert_non_null(err);
	assert_non_null(strstr(err, f->path));
	free(err);
	err = NULL;
	assert_int_equal(read_file(f->path, after, sizeof(after)), n_before);
	assert_memory_equal(before, after, n_before);
	assert_int_equal(count_entries(f->dir), 1);

	assert_int_equal(rk_keyfile_generate(f->path, true, &err), RK_OK);
	assert_null(err);
	assert_int_equal(read_file(f->path, after, sizeof(after)), 65);
	assert_memory_not_equal(before, after, 64); /* a new key */
	struct stat st;
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(count_entries(f->dir), 1);
	uint8_t key[RK_SEAL_KEY_BYTES];
	assert_int_equal(rk_keyfile_read(f->path, key, NULL), RK_OK);
}

static void test_generate_into_missing_directory_fails(void **state)
{
	struct fixture *f = *state;
	char path[256];
	snprintf(path, sizeof(path), "%s/no/such/dir/key", f->dir);
	char *err = NULL;
	assert_int_equal(rk_keyfile_generate(path, false, &err), RK_NOT_FOUND);
	assert_non_null(err);
	assert_non_null(strstr(err, path));
	free(err);
	assert_int_equal(count_entries(f->dir), 0);
}

static void test_read_refuses_key_open_to_group_or_others(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(rk_keyfile_generate(f->path, false, NULL), RK_OK);
	static const mode_t modes[] = {0644, 0640, 0604, 0620,
	                               0602, 0601, 0660, 0666};
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		assert_int_equal(chmod(f->path, modes[i]), 0);
		uint8_t key[RK_SEAL_KEY_BYTES];
		memset(key, 0xaa, sizeof(key));
		char *err = NULL;
		rk_status_t st = rk_keyfile_read(f->path, key, &err);
		if (st != RK_PERMISSION_DENIED)
			fail_msg("mode %04o: status %d", (unsigned)modes[i],
			         st);
		assert_non_null(err);
		assert_non_null(strstr(err, f->path));
		assert_non_null(strstr(err, "chmod 600"));
		char mode_text[16];
		snprintf(mode_text, sizeof(mode_text), "%04o",
		         (unsigned)modes[i]);
		assert_non_null(strstr(err, mode_text));
		free(err);
		for (size_t k = 0; k < sizeof(key); k++)
			assert_int_equal(key[k], 0xaa);
	}
	/* The message for the common case says what is wrong. */
	assert_int_equal(chmod(f->path, 0644), 0);
	char *err = NULL;
	uint8_t key[RK_SEAL_KEY_BYTES];
	assert_int_equal(rk_keyfile_read(f->path, key, &err),
	                 RK_PERMISSION_DENIED);
	assert_non_null(strstr(err, "readable by group or others"));
	free(err);
}

static void test_read_refuses_malformed_content(void **state)
{
	struct fixture *f = *state;
	static const char good[] =
	    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
	char text[160];
	struct {
		const char *name; /* what is wrong */
		size_t len;       /* bytes written */
	} cases[] = {
	    {"empty", 0},      {"63 digits", 63},    {"63 digits + nl", 64},
	    {"65 digits", 65}, {"two newlines", 66}, {"128 digits", 128},
	    {"non-hex", 65},   {"space", 65},        {"leading space", 65},
	    {"crlf", 66},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *name = cases[i].name;
		memcpy(text, good, 64);
		memcpy(text + 64, good, 64);
		if (strcmp(name, "63 digits + nl") == 0)
			text[63] = '\n';
		else if (strcmp(name, "65 digits") == 0)
			text[64] = 'a';
		else if (strcmp(name, "two newlines") == 0)
			text[64] = text[65] = '\n';
		else if (strcmp(name, "non-hex") == 0)
			text[10] = 'g', text[64] = '\n';
		else if (strcmp(name, "space") == 0)
			text[31] = ' ', text[64] = '\n';
		else if (strcmp(name, "leading space") == 0)
			text[0] = ' ', text[64] = '\n';
		else if (strcmp(name, "crlf") == 0)
			text[64] = '\r', text[65] = '\n';
		else if (strcmp(name, "63 digits") != 0 &&
		         strcmp(name, "empty") != 0 &&
		         strcmp(name, "128 digits") != 0)
			fail_msg("unknown case %s", name);
		write_file(f->path, text, cases[i].len, 0600);

		uint8_t key[RK_SEAL_KEY_BYTES];
		memset(key, 0xaa, sizeof(key));
		char *err = NULL;
		rk_status_t st = rk_keyfile_read(f->path, key, &err);
		if (st != RK_INVALID_ARGUMENT)
			fail_msg("%s: status %d", name, st);
		assert_non_null(err);
		assert_non_null(strstr(err, f->path));
		/* The message never echoes key material. */
		assert_null(strstr(err, "00112233"));
		free(err);
		for (size_t k = 0; k < sizeof(key); k++)
			assert_int_equal(key[k], 0xaa);
	}
	/* The well-formed file of the same bytes is accepted: the cases
	 * above fail for their flaw alone. */
	memcpy(text, good, 64);
	text[64] = '\n';
	write_file(f->path, text, 65, 0600);
	uint8_t key[RK_SEAL_KEY_BYTES];
	assert_int_equal(rk_keyfile_read(f->path, key, NULL), RK_OK);
	assert_int_equal(key[1], 0x11);
}

static void test_read_refuses_a_directory(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(mkdir(f->path, 0700), 0);
	uint8_t key[RK_SEAL_KEY_BYTES];
	char *err = NULL;
	assert_int_equal(rk_keyfile_read(f->path, key, &err),
	                 RK_INVALID_ARGUMENT);
	assert_non_null(strstr(err, f->path));
	free(err);
}

static void test_read_of_missing_file_is_not_found(void **state)
{
	struct fixture *f = *state;
	uint8_t key[RK_SEAL_KEY_BYTES];
	char *err = NULL;
	assert_int_equal(rk_keyfile_read(f->path, key, &err), RK_NOT_FOUND);
	assert_non_null(err);
	assert_non_null(strstr(err, f->path));
	free(err);
	/* err may be NULL. */
	assert_int_equal(rk_keyfile_read(f->path, key, NULL), RK_NOT_FOUND);
}

int main(void)
{
	/* The most permissive umask: a generated key must still be 0600. */
	umask(0);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_generate_then_read_round_trips_with_mode_0600, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_read_accepts_uppercase_without_newline, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_generate_refuses_overwrite_unless_forced, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_generate_into_missing_directory_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_read_refuses_key_open_to_group_or_others, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_read_refuses_malformed_content,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_read_refuses_a_directory,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_read_of_missing_file_is_not_found, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
