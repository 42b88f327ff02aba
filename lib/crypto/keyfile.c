/*
 * The cluster key file; see keyfile.h and docs/sealing.md.
 *
 * Writing. The key is written to a temporary file in the same directory
 * (same filesystem, so the final rename or link is atomic), created with
 * O_CREAT|O_EXCL and mode 0600 so that it is never, even for an instant,
 * readable by anyone else, and fsync'd before it gets its name. Without
 * FORCE the name is given with link(2), which fails if the name exists:
 * checking first and renaming after would race with another keygen and
 * could replace a key a running cluster depends on. With FORCE, rename(2)
 * replaces the old key atomically. Then the directory is fsync'd so the
 * new name survives a crash. Whatever fails, the temporary file is
 * removed.
 *
 * Reading refuses a key that group or others can reach, as ssh does for
 * its private keys: a key that leaked is not a key, and saying so at
 * start-up (with the chmod to run) beats finding out later. The file must
 * be exactly 64 hex digits with an optional newline; anything else is
 * refused rather than guessed at, and error messages never echo the
 * content, which may be most of a key.
 *
 * Key bytes pass through stack buffers only, which are wiped before
 * returning.
 */
#include "crypto/keyfile.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_HEX_CHARS (2 * RK_SEAL_KEY_BYTES)

static void set_err(char **err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_err(char **err, const char *fmt, ...)
{
	if (err == NULL)
		return;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(err, fmt, ap) < 0)
		*err = NULL; /* out of memory: the status still says what */
	va_end(ap);
}

/* The status for a failed system call on a file. */
static rk_status_t errno_status(int e)
{
	switch (e) {
	case ENOENT:
	case ENOTDIR:
		return RK_NOT_FOUND;
	case EACCES:
	case EPERM:
	case EROFS:
		return RK_PERMISSION_DENIED;
	case EEXIST:
		return RK_ALREADY_EXISTS;
	case ENOSPC:
	case EDQUOT:
	case ENOMEM:
	case EMFILE:
	case ENFILE:
		return RK_RESOURCE_EXHAUSTED;
	default:
		return RK_INTERNAL;
	}
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* fsyncs the directory holding PATH, so a new name in it is durable. */
static int fsync_dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	if (slash == NULL)
		dir = strdup(".");
	else if (slash == path)
		dir = strdup("/");
	else
		dir = strndup(path, (size_t)(slash - path));
	if (dir == NULL) {
		errno = ENOMEM;
		return -1;
	}
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	int saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

rk_status_t rk_keyfile_generate(const char *path, bool force, char **err)
{
	if (err != NULL)
		*err = NULL;
	if (sodium_init() < 0) {
		set_err(err, "cannot initialise libsodium");
		return RK_INTERNAL;
	}
	char *tmp = NULL;
	if (asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0) {
		set_err(err, "out of memory");
		return RK_RESOURCE_EXHAUSTED;
	}
	/* mkostemp opens with O_CREAT|O_EXCL and mode 0600; the fchmod
	 * makes the mode exact whatever the umask. */
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		set_err(err, "cannot create a temporary file next to %s: %s",
		        path, strerror(e));
		free(tmp);
		return errno_status(e);
	}

	uint8_t key[RK_SEAL_KEY_BYTES];
	char hex[KEY_HEX_CHARS + 2]; /* digits, newline, NUL */
	randombytes_buf(key, sizeof(key));
	sodium_bin2hex(hex, KEY_HEX_CHARS + 1, key, sizeof(key));
	hex[KEY_HEX_CHARS] = '\n';
	hex[KEY_HEX_CHARS + 1] = '\0';

	rk_status_t status = RK_OK;
	const char *step = "write";
	int rc;
	if ((rc = fchmod(fd, S_IRUSR | S_IWUSR)) != 0)
		step = "set the mode of";
	else if ((rc = write_all(fd, hex, KEY_HEX_CHARS + 1)) != 0)
		step = "write";
	else if ((rc = fsync(fd)) != 0)
		step = "sync";
	int e = errno;
	sodium_memzero(key, sizeof(key));
	sodium_memzero(hex, sizeof(hex));
	if (close(fd) != 0 && rc == 0) {
		rc = -1;
		e = errno;
		step = "close";
	}
	if (rc == 0) {
		if (force) {
			rc = rename(tmp, path);
			step = "rename to";
		} else {
			rc = link(tmp, path);
			step = "link to";
		}
		e = errno;
		/* After a link the temporary name is surplus; after a
		 * rename it is gone already. */
		if (rc == 0 && !force)
			unlink(tmp);
	}
	if (rc == 0 && fsync_dir_of(path) != 0) {
		rc = -1;
		e = errno;
		step = "sync the directory of";
	}

	if (rc != 0) {
		if (!force && e == EEXIST) {
			set_err(err,
			        "key file %s already exists: refusing to "
			        "replace it (force to overwrite)",
			        path);
			status = RK_ALREADY_EXISTS;
		} else {
			set_err(err, "cannot %s key file %s: %s", step, path,
			        strerror(e));
			status = errno_status(e);
		}
		unlink(tmp); /* harmless if it was renamed or linked */
	}
	free(tmp);
	return status;
}

rk_status_t rk_keyfile_read(const char *path, uint8_t key[RK_SEAL_KEY_BYTES],
                            char **err)
{
	if (err != NULL)
		*err = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT)
			set_err(err,
			        "key file %s does not exist (make one with "
			        "`ringkv keygen`)",
			        path);
		else
			set_err(err, "cannot open key file %s: %s", path,
			        strerror(e));
		return errno_status(e);
	}

	rk_status_t status = RK_OK;
	char buf[KEY_HEX_CHARS + 2]; /* one more than the longest valid file */
	uint8_t bin[RK_SEAL_KEY_BYTES];
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		set_err(err, "cannot stat key file %s: %s", path, strerror(e));
		close(fd);
		return errno_status(e);
	}
	if (!S_ISREG(st.st_mode)) {
		set_err(err, "key file %s is not a regular file", path);
		close(fd);
		return RK_INVALID_ARGUMENT;
	}
	if ((st.st_mode & 077) != 0) {
		set_err(err,
		        "key file %s is %s by group or others (mode %04o): "
		        "run chmod 600 %s",
		        path,
		        (st.st_mode & 044) != 0   ? "readable"
		        : (st.st_mode & 022) != 0 ? "writable"
		                                  : "usable",
		        (unsigned)(st.st_mode & 07777), path);
		close(fd);
		return RK_PERMISSION_DENIED;
	}

	size_t len = 0;
	while (len < sizeof(buf)) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			set_err(err, "cannot read key file %s: %s", path,
			        strerror(e));
			status = errno_status(e);
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}

	size_t digits = len;
	if (digits == KEY_HEX_CHARS + 1 && buf[KEY_HEX_CHARS] == '\n')
		digits = KEY_HEX_CHARS;
	if (digits != KEY_HEX_CHARS) {
		set_err(err,
		        "key file %s is malformed: expected 64 hex digits and "
		        "a newline, found %s%zu bytes",
		        path, len == sizeof(buf) ? "at least " : "", len);
		status = RK_INVALID_ARGUMENT;
		goto out;
	}
	/* Without hex_end, sodium_hex2bin fails unless every digit is
	 * consumed, so any non-hex byte is caught here. */
	size_t bin_len = 0;
	if (sodium_hex2bin(bin, sizeof(bin), buf, KEY_HEX_CHARS, NULL, &bin_len,
	                   NULL) != 0 ||
	    bin_len != sizeof(bin)) {
		size_t bad = 0;
		while (bad < KEY_HEX_CHARS && isxdigit((unsigned char)buf[bad]))
			bad++;
		set_err(err,
		        "key file %s is malformed: character %zu is not a hex "
		        "digit",
		        path, bad + 1);
		status = RK_INVALID_ARGUMENT;
	} else {
		memcpy(key, bin, sizeof(bin));
	}
out:
	sodium_memzero(bin, sizeof(bin));
	sodium_memzero(buf, sizeof(buf));
	close(fd);
	return status;
}
