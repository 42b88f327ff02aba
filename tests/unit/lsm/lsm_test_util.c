/* See lsm_test_util.h. */
#include "lsm_test_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *lsm_test_tmpdir(const char *tag)
{
	const char *base = getenv("TMPDIR");
	char tmpl[4096];
	snprintf(tmpl, sizeof(tmpl), "%s/rk-lsm-%s-XXXXXX",
	         base && *base ? base : "/tmp", tag);
	char *d = mkdtemp(tmpl);
	return d ? strdup(d) : NULL;
}

void lsm_test_rmrf(const char *path)
{
	DIR *d = opendir(path);
	if (d != NULL) {
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			char p[4096];
			snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
			struct stat sb;
			if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
				lsm_test_rmrf(p);
			else
				unlink(p);
		}
		closedir(d);
	}
	rmdir(path);
}

int lsm_test_copy_dir(const char *src, const char *dst)
{
	if (mkdir(dst, 0755) != 0)
		return -1;
	DIR *d = opendir(src);
	if (d == NULL)
		return -1;
	struct dirent *e;
	int rc = 0;
	while ((e = readdir(d)) != NULL && rc == 0) {
		char s[4096], t[4096];
		snprintf(s, sizeof(s), "%s/%s", src, e->d_name);
		snprintf(t, sizeof(t), "%s/%s", dst, e->d_name);
		struct stat sb;
		if (lstat(s, &sb) != 0 || !S_ISREG(sb.st_mode))
			continue;
		int in = open(s, O_RDONLY);
		if (in < 0)
			continue; /* deleted while we looked: like a crash */
		int out = open(t, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (out < 0) {
			close(in);
			rc = -1;
			break;
		}
		char buf[65536];
		ssize_t r;
		while ((r = read(in, buf, sizeof(buf))) > 0)
			if (write(out, buf, (size_t)r) != r) {
				rc = -1;
				break;
			}
		close(in);
		close(out);
	}
	closedir(d);
	return rc;
}

int lsm_test_flip(const char *path, uint64_t off, uint8_t mask)
{
	int fd = open(path, O_RDWR);
	if (fd < 0)
		return -1;
	uint8_t b;
	int rc = -1;
	if (pread(fd, &b, 1, (off_t)off) == 1) {
		b ^= mask;
		if (pwrite(fd, &b, 1, (off_t)off) == 1)
			rc = 0;
	}
	close(fd);
	return rc;
}

int64_t lsm_test_file_size(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0 ? (int64_t)sb.st_size : -1;
}

int lsm_test_find(const char *dir, const char *ext, char *out, size_t n)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return -1;
	struct dirent *e;
	unsigned long long best = 0;
	int found = -1;
	size_t el = strlen(ext);
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);
		if (l <= el + 1 || strcmp(e->d_name + l - el, ext) != 0 ||
		    e->d_name[l - el - 1] != '.')
			continue;
		unsigned long long num = strtoull(e->d_name, NULL, 10);
		if (found != 0 || num < best) {
			best = num;
			found = 0;
			snprintf(out, n, "%s/%s", dir, e->d_name);
		}
	}
	closedir(d);
	return found;
}

void lsm_test_options(rk_lsm_options_t *o)
{
	rk_lsm_options_default(o);
	o->sync = RK_LSM_SYNC_PERIODIC;
	o->sync_period_ms = 50;
	o->write_buffer_size = 64 << 10;
	o->target_file_size = 32 << 10;
	o->level1_max_bytes = 128 << 10;
	o->block_cache_bytes = 256 << 10;
}
