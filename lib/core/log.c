/*
 * Logging to stderr; see log.h. The level is read without a lock: a racy
 * read of an int that changes on SIGHUP at worst logs one line too many.
 */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_level = RK_LOG_INFO;
static char log_name[32] = "ringkv";

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void rk_log_set_name(const char *name)
{
	snprintf(log_name, sizeof(log_name), "%s", name);
}

void rk_log_set_level(rk_log_level_t level)
{
	atomic_store(&log_level, (int)level);
}

rk_log_level_t rk_log_get_level(void)
{
	return (rk_log_level_t)atomic_load(&log_level);
}

int rk_log_level_parse(const char *text, rk_log_level_t *out)
{
	static const char *const names[] = {"debug", "info", "warn", "error"};
	for (int i = 0; i < 4; i++) {
		if (strcmp(text, names[i]) == 0) {
			*out = (rk_log_level_t)i;
			return 0;
		}
	}
	return -1;
}

void rk_log(rk_log_level_t level, const char *fmt, ...)
{
	if ((int)level < atomic_load(&log_level))
		return;
	char line[2048];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof(line),
	                 "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s: ",
	                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
	                 tm.tm_hour, tm.tm_min, tm.tm_sec,
	                 ts.tv_nsec / 1000000, level_names[level], log_name);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	line[len++] = '\n';
	/* One write per line: lines from many threads do not interleave. */
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
}
