/*
 * Logging to stderr with levels.
 *
 * One line per event: an ISO-8601 UTC timestamp with milliseconds, the
 * level, the service name set at start-up, then the message. Lines are
 * written with one write(2) each so lines from many threads never
 * interleave. journald and kubectl logs take stderr as it is.
 */
#ifndef RK_LOG_H
#define RK_LOG_H

typedef enum rk_log_level {
	RK_LOG_DEBUG = 0,
	RK_LOG_INFO  = 1,
	RK_LOG_WARN  = 2,
	RK_LOG_ERROR = 3,
} rk_log_level_t;

/* Sets the name printed on every line (copied; at most 31 bytes kept). */
void rk_log_set_name(const char *name);
void rk_log_set_level(rk_log_level_t level);
rk_log_level_t rk_log_get_level(void);

/* Parses "debug", "info", "warn", "error". Returns 0, or -1 if unknown. */
int rk_log_level_parse(const char *text, rk_log_level_t *out);

void rk_log(rk_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define rk_debug(...) rk_log(RK_LOG_DEBUG, __VA_ARGS__)
#define rk_info(...)  rk_log(RK_LOG_INFO, __VA_ARGS__)
#define rk_warn(...)  rk_log(RK_LOG_WARN, __VA_ARGS__)
#define rk_error(...) rk_log(RK_LOG_ERROR, __VA_ARGS__)

#endif
