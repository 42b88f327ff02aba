/*
 * Helpers for tests that run the real ringkv binaries as child processes
 * on loopback: start a binary with a config and an environment, stand in
 * for systemd's NOTIFY_SOCKET, wait for a child's exit, GET from an admin
 * port, and write a config derived from a sample in deploy/config/.
 *
 * Everything here waits on an event (a datagram, a child's exit, a socket
 * becoming readable) with a bound, never on a sleep. Failures are returned,
 * not asserted, so the helpers work in setup and teardown code too; the
 * caller turns them into test failures.
 *
 * Children are started so that none can outlive the test: each asks the
 * kernel for SIGKILL when its parent dies (PR_SET_PDEATHSIG), and
 * rk_proc_kill() ends and reaps one still running. A child's stdout and
 * stderr go to files the caller names, to be asserted on and printed when
 * a case fails.
 *
 * Not thread-safe: one test thread drives its children.
 */
#ifndef RK_TESTS_PROC_UTIL_H
#define RK_TESTS_PROC_UTIL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

/* --- where things are ------------------------------------------------ */

/* The directory holding the built binaries (RINGKV_BIN_DIR, set by
 * rk_proc_test), and the source tree (RINGKV_SOURCE_DIR). NULL if unset. */
const char *rk_proc_bin_dir(void);
const char *rk_proc_source_dir(void);

/* Writes "<bin dir>/NAME" into OUT. Returns 0, or -1 if RINGKV_BIN_DIR is
 * unset or the path does not fit. */
int rk_proc_bin_path(const char *name, char *out, size_t len);

/* Writes "<source dir>/deploy/config/SERVICE.yaml" into OUT. Returns 0 or
 * -1 as above. */
int rk_proc_sample_config(const char *service, char *out, size_t len);

/* --- temp dirs and files --------------------------------------------- */

/* Makes a fresh directory $TMPDIR/ringkv-STEM-XXXXXX (mode 0700). Returns
 * its path, which the caller frees; NULL on error. The path is kept short:
 * a socket inside it must fit in sun_path. */
char *rk_proc_tmpdir(const char *stem);

/* Removes DIR and everything below it. Returns 0 or -1. */
int rk_proc_rmtree(const char *dir);

/* Reads the whole file at PATH, NUL-terminated. Caller frees; NULL if it
 * cannot be read. *LEN (may be NULL) receives the length. */
char *rk_proc_read_file(const char *path, size_t *len);

/* Replaces the file at PATH with TEXT (mode 0644). Returns 0 or -1. */
int rk_proc_write_file(const char *path, const char *text);

/* The 1-based number of the first line of PATH containing NEEDLE, or -1. */
int rk_proc_line_of(const char *path, const char *needle);

/* --- configs derived from a sample ------------------------------------ */

/* One change to a sample config. The samples are two-level YAML maps
 * ("section:" then indented "field: value" lines), and so are the keys
 * here: "rpc.listen". */
typedef struct rk_cfg_edit {
	const char *key;    /* "section.field" to change */
	const char *value;  /* written verbatim after "field: "; NULL (with
	                       rename NULL) comments the line out, which
	                       keeps every other line where it was */
	const char *rename; /* if set: the field is written under this name
	                       (a typo, say), with VALUE or its old value */
} rk_cfg_edit_t;

/* Writes DST: the file SRC with EDITS[0..N) applied, line by line, each
 * line keeping its number. A VALUE edit for a field SRC lacks is added at
 * the end of its section (or in a new section at the end of the file).
 * Returns 0, or -1 if a file cannot be read or written, or an edit names
 * no field and has no value to add. */
int rk_cfg_write(const char *dst, const char *src, const rk_cfg_edit_t *edits,
                 size_t n);

/* --- child processes ------------------------------------------------- */

/* How to start a child. */
typedef struct rk_proc_opts {
	const char *const *argv; /* argv[0] is the binary's path; NULL-ended */
	const char *const *env;  /* "NAME=VALUE" set on top of ours (whose
	                            NOTIFY_SOCKET, WATCHDOG_* and LISTEN_*
	                            are dropped); NULL-ended; may be NULL */
	bool watchdog_pid;       /* the child sets WATCHDOG_PID to its own
	                            pid, after fork and before exec */
	const char *stdout_path; /* file for its stdout; NULL: /dev/null */
	const char *stderr_path; /* file for its stderr; NULL: /dev/null */
} rk_proc_opts_t;

/* A child, from spawn until reaped. Plain data: zero it before use; it
 * owns a descriptor until rk_proc_wait() or rk_proc_kill() reaps it. */
typedef struct rk_proc {
	pid_t pid;                  /* 0 if never started */
	int pidfd;                  /* readable once it exits; -1 if the kernel
	                               has no pidfd_open (then we poll) */
	bool reaped;                /* waited for; STATUS is valid */
	int status;                 /* wait status, once reaped */
	char name[64];              /* basename of argv[0], for messages */
	char stderr_path[PATH_MAX]; /* copy of opts->stderr_path, or "" */
} rk_proc_t;

/* Starts a child as OPTS says. Returns 0, or -1 (with errno) if the
 * binary could not be started: an exec failure shows as exit code 127. */
int rk_proc_spawn(rk_proc_t *p, const rk_proc_opts_t *opts);

/* Waits up to TIMEOUT_MS for P to exit and reaps it. Returns 1 once it has
 * exited (also if it already had), 0 if it still runs, -1 on error. */
int rk_proc_wait(rk_proc_t *p, int timeout_ms);

/* Sends SIG to P if it still runs. Returns 0 or -1. */
int rk_proc_signal(rk_proc_t *p, int sig);

/* Ends P with SIGKILL if it still runs, and reaps it. Safe to call on a
 * zeroed, never-started or already reaped rk_proc_t. */
void rk_proc_kill(rk_proc_t *p);

/* The exit code of a reaped P; 128 + signal if a signal ended it; -1 if it
 * has not been reaped. */
int rk_proc_exit_code(const rk_proc_t *p);

/* Starts a child, waits up to TIMEOUT_MS for it to end (killing it if it
 * does not) and returns its exit code, or -1 if it could not be started or
 * had to be killed. */
int rk_proc_run(const rk_proc_opts_t *opts, int timeout_ms);

/* Prints P's stderr file to OUT under a header naming P; for failures. */
void rk_proc_dump(const rk_proc_t *p, FILE *out);

/* --- a stand-in for systemd's notify socket -------------------------- */

/* An AF_UNIX datagram socket bound to a path; a child started with
 * NOTIFY_SOCKET=<path> sends it its sd_notify() messages. Every message
 * received is also appended to LOG (truncated when full), for printing
 * when a case fails. */
typedef struct rk_notify {
	int fd;         /* -1 when closed */
	char path[108]; /* where it is bound (sun_path's size) */
	char log[8192]; /* messages seen, one per line */
	size_t log_len; /* bytes used in LOG */
} rk_notify_t;

/* Binds a socket at DIR/NAME. Returns 0, or -1 (path too long, ...). */
int rk_notify_open(rk_notify_t *n, const char *dir, const char *name);

/* Closes the socket and removes its path. Safe on a closed one. */
void rk_notify_close(rk_notify_t *n);

/* Receives one message into BUF (NUL-terminated, truncated to LEN - 1),
 * waiting up to TIMEOUT_MS (0: only what is queued). *PID (may be NULL)
 * receives the sender's pid, from its credentials. Returns the message's
 * length, 0 on timeout, -1 on error. */
int rk_notify_recv(rk_notify_t *n, char *buf, size_t len, int timeout_ms,
                   pid_t *pid);

/* Receives until a message holding the line ASSIGNMENT ("READY=1")
 * arrives, from PID (0: anyone), within TIMEOUT_MS. Messages before it
 * are consumed (and logged). MSG (LEN bytes; may be NULL) receives the
 * whole matching message. Returns 1 if it came, 0 on timeout, -1 on
 * error. */
int rk_notify_wait(rk_notify_t *n, pid_t pid, const char *assignment,
                   int timeout_ms, char *msg, size_t len);

/* True if MSG, a notify message, has a line exactly ASSIGNMENT. */
bool rk_notify_has(const char *msg, const char *assignment);

/* Whether the messages logged so far (rk_notify_t.log) include a line
 * exactly ASSIGNMENT. */
bool rk_notify_seen(const rk_notify_t *n, const char *assignment);

/* The number of logged lines exactly ASSIGNMENT. */
int rk_notify_count(const rk_notify_t *n, const char *assignment);

/* Parses the ports from the line the service runtime sends with READY=1,
 * "STATUS=serving rpc on port R, admin on port A". Returns 0, or -1 if
 * MSG has no such line. */
int rk_notify_ports(const char *msg, int *rpc_port, int *admin_port);

/* --- sockets --------------------------------------------------------- */

/* GETs PATH from 127.0.0.1:PORT over HTTP/1.1 (Connection: close) and
 * reads the answer until the server closes, for at most TIMEOUT_MS.
 * Returns the status code, or -1. *BODY (may be NULL) receives the body,
 * NUL-terminated, which the caller frees; NULL when -1 is returned. */
int rk_http_get(int port, const char *path, int timeout_ms, char **body);

/* A TCP socket listening on 127.0.0.1 at a port the kernel picks, to hold
 * a port taken. Returns the descriptor (close it when done) and sets
 * *PORT; -1 on error. */
int rk_tcp_listener(int *port);

#endif
