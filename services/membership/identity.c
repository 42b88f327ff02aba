/*
 * The identity file (identity.h gives the format). Reading is strict: any
 * line out of place is an error rather than a new identity, because a node
 * that silently became someone else would look to the cluster like a new
 * node beside a dead one.
 */
#include "identity.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEADER "ringkv-membership identity v1"

static rk_status_t fail(char **err, rk_status_t st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static rk_status_t fail(char **err, rk_status_t st, const char *fmt, ...)
{
	if (err != NULL) {
		char buf[PATH_MAX + 256];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(buf, sizeof(buf), fmt, ap);
		va_end(ap);
		*err = strdup(buf);
	}
	return st;
}

/* mkdir -p */
static int make_dirs(const char *dir)
{
	char p[PATH_MAX];
	if (snprintf(p, sizeof(p), "%s", dir) >= (int)sizeof(p))
		return -1;
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0700) != 0 && errno != EEXIST)
			return -1;
		*s = '/';
	}
	if (mkdir(p, 0700) != 0 && errno != EEXIST)
		return -1;
	return 0;
}

static int parse_uuid(const char *s, uint8_t id[16])
{
	size_t k = 0;
	for (size_t i = 0; s[i] != '\0' && s[i] != '\n'; i++) {
		if (s[i] == '-')
			continue;
		int hi, lo;
		char c = s[i], d = s[i + 1];
		hi = c >= '0' && c <= '9'   ? c - '0'
		     : c >= 'a' && c <= 'f' ? c - 'a' + 10
		                            : -1;
		lo = d >= '0' && d <= '9'   ? d - '0'
		     : d >= 'a' && d <= 'f' ? d - 'a' + 10
		                            : -1;
		if (hi < 0 || lo < 0 || k == 16)
			return -1;
		id[k++] = (uint8_t)(hi << 4 | lo);
		i++;
	}
	return k == 16 ? 0 : -1;
}

rk_status_t rk_ms_identity_store(const char *dir, const uint8_t id[16],
                                 uint64_t generation, char **err)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	snprintf(path, sizeof(path), "%s/identity", dir);
	snprintf(tmp, sizeof(tmp), "%s/identity.tmp", dir);
	char text[160];
	int len = snprintf(
	    text, sizeof(text),
	    HEADER "\nuuid %02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
	           "%02x%02x%02x%02x%02x%02x\ngeneration %" PRIu64 "\n",
	    id[0], id[1], id[2], id[3], id[4], id[5], id[6], id[7], id[8],
	    id[9], id[10], id[11], id[12], id[13], id[14], id[15], generation);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return fail(err, RK_UNAVAILABLE, "cannot write %s: %s", tmp,
		            strerror(errno));
	if (write(fd, text, (size_t)len) != len || fsync(fd) != 0) {
		int e = errno;
		close(fd);
		return fail(err, RK_UNAVAILABLE, "cannot write %s: %s", tmp,
		            strerror(e));
	}
	close(fd);
	if (rename(tmp, path) != 0)
		return fail(err, RK_UNAVAILABLE, "cannot rename to %s: %s",
		            path, strerror(errno));
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return RK_OK;
}

rk_status_t rk_ms_identity_next(const char *dir, uint8_t id[16],
                                uint64_t *generation, char **err)
{
	if (make_dirs(dir) != 0)
		return fail(err, RK_UNAVAILABLE, "cannot create %s: %s", dir,
		            strerror(errno));
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/identity", dir);
	FILE *f = fopen(path, "re");
	if (f == NULL && errno != ENOENT)
		return fail(err, RK_UNAVAILABLE, "cannot read %s: %s", path,
		            strerror(errno));
	if (f == NULL) {
		if (sodium_init() < 0)
			return fail(err, RK_INTERNAL, "libsodium cannot start");
		randombytes_buf(id, 16);
		id[6] = (uint8_t)((id[6] & 0x0f) | 0x40); /* version 4 */
		id[8] = (uint8_t)((id[8] & 0x3f) | 0x80); /* RFC 4122 */
		*generation = 1;
	} else {
		char l1[128] = "", l2[128] = "", l3[128] = "", extra[8];
		bool ok =
		    fgets(l1, sizeof(l1), f) && fgets(l2, sizeof(l2), f) &&
		    fgets(l3, sizeof(l3), f) && !fgets(extra, sizeof(extra), f);
		fclose(f);
		char *end = NULL;
		uint64_t g = 0;
		if (ok)
			ok = strcmp(l1, HEADER "\n") == 0 &&
			     strncmp(l2, "uuid ", 5) == 0 &&
			     parse_uuid(l2 + 5, id) == 0 &&
			     strlen(l2) == 5 + 36 + 1 &&
			     strncmp(l3, "generation ", 11) == 0;
		if (ok) {
			errno = 0;
			g = strtoull(l3 + 11, &end, 10);
			ok = errno == 0 && end != l3 + 11 && *end == '\n' &&
			     g > 0 && g < UINT64_MAX;
		}
		if (!ok)
			return fail(
			    err, RK_DATA_LOSS,
			    "%s is not a valid identity file; fix or "
			    "remove it (removing makes this a new node)",
			    path);
		*generation = g + 1;
	}
	return rk_ms_identity_store(dir, id, *generation, err);
}
