/*
 * Process helpers for the tests that start real binaries; see proc_util.h
 * for what each does.
 *
 * Starting a child. The test process is multithreaded (the RPC client
 * runs nng's threads), so between fork() and exec() the child may call
 * only async-signal-safe functions: no malloc, no setenv, no stdio.
 * Everything the child needs is therefore prepared in the parent: the
 * argument and environment arrays, the open stdout/stderr files, and a
 * "WATCHDOG_PID=" entry with room for the digits, which the child fills in
 * with its own pid by hand. The child then asks for SIGKILL when its
 * parent dies, so a crashed or killed test leaves no orphans, moves its
 * files onto 0/1/2, closes every other descriptor, unblocks and resets the
 * signals the runtime relies on, and execs.
 *
 * Waiting for a child uses a pidfd (readable once the child exits) with
 * poll(); kernels without pidfd_open fall back to waitpid(WNOHANG) in a
 * short loop, still bounded by the caller's timeout.
 *
 * The notify socket enables SO_PASSCRED, so every datagram carries the
 * sender's pid: tests with several children on one socket can tell whose
 * READY=1 arrived. Messages are also logged in the rk_notify_t so a
 * failed case can print what it did receive.
 */
#include "proc_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* --------------------------------------------------------- time */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left until DEADLINE, never negative. */
static int left_ms(int64_t deadline)
{
	int64_t left = deadline - now_ms();
	return left > 0 ? (int)left : 0;
}

/* ------------------------------------------------ where things are */

const char *rk_proc_bin_dir(void)
{
	const char *d = getenv("RINGKV_BIN_DIR");
	return d != NULL && d[0] != '\0' ? d : NULL;
}

const char *rk_proc_source_dir(void)
{
	const char *d = getenv("RINGKV_SOURCE_DIR");
	return d != NULL && d[0] != '\0' ? d : NULL;
}

int rk_proc_bin_path(const char *name, char *out, size_t len)
{
	const char *dir = rk_proc_bin_dir();
	if (dir == NULL)
		return -1;
	int n = snprintf(out, len, "%s/%s", dir, name);
	return n > 0 && (size_t)n < len ? 0 : -1;
}

int rk_proc_sample_config(const char *service, char *out, size_t len)
{
	const char *dir = rk_proc_source_dir();
	if (dir == NULL)
		return -1;
	int n = snprintf(out, len, "%s/deploy/config/%s.yaml", dir, service);
	return n > 0 && (size_t)n < len ? 0 : -1;
}

/* ------------------------------------------------ temp dirs, files */

char *rk_proc_tmpdir(const char *stem)
{
	const char *base = getenv("TMPDIR");
	if (base == NULL || base[0] == '\0')
		base = "/tmp";
	char *path = NULL;
	if (asprintf(&path, "%s/ringkv-%s-XXXXXX", base, stem) < 0)
		return NULL;
	if (mkdtemp(path) == NULL) {
		free(path);
		return NULL;
	}
	return path;
}

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	int rc = flag == FTW_DP ? rmdir(path) : unlink(path);
	return rc != 0 && errno != ENOENT ? -1 : 0;
}

int rk_proc_rmtree(const char *dir)
{
	if (dir == NULL)
		return 0;
	return nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}

char *rk_proc_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	size_t cap = 4096, used = 0;
	char *buf = malloc(cap);
	while (buf != NULL) {
		if (cap - used < 2) {
			char *bigger = realloc(buf, cap * 2);
			if (bigger == NULL) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = bigger;
			cap *= 2;
		}
		size_t n = fread(buf + used, 1, cap - used - 1, f);
		used += n;
		if (n == 0)
			break;
	}
	if (buf != NULL && ferror(f)) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	if (buf == NULL)
		return NULL;
	buf[used] = '\0';
	if (len != NULL)
		*len = used;
	return buf;
}

int rk_proc_write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return -1;
	size_t len = strlen(text);
	int rc = fwrite(text, 1, len, f) == len ? 0 : -1;
	if (fclose(f) != 0)
		rc = -1;
	return rc;
}

int rk_proc_line_of(const char *path, const char *needle)
{
	char *text = rk_proc_read_file(path, NULL);
	if (text == NULL)
		return -1;
	int found = -1, line = 1;
	for (char *p = text; p != NULL && *p != '\0'; line++) {
		char *nl = strchr(p, '\n');
		if (nl != NULL)
			*nl = '\0';
		if (strstr(p, needle) != NULL) {
			found = line;
			break;
		}
		p = nl != NULL ? nl + 1 : NULL;
	}
	free(text);
	return found;
}

/* ------------------------------------------------- config samples */

/* A line of a two-level YAML map: its indentation and its key. */
struct yaml_line {
	size_t indent;   /* leading spaces */
	const char *key; /* start of the key, or NULL (blank, comment, ...) */
	size_t key_len;  /* bytes in KEY */
};

static struct yaml_line yaml_scan(const char *line)
{
	struct yaml_line l = {0, NULL, 0};
	while (line[l.indent] == ' ')
		l.indent++;
	const char *k = line + l.indent;
	size_t n = strspn(k, "abcdefghijklmnopqrstuvwxyz"
	                     "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-");
	if (n > 0 && k[n] == ':') {
		l.key = k;
		l.key_len = n;
	}
	return l;
}

/* True if KEY ("section.field") is SECTION (LEN bytes) plus a field. */
static bool in_section(const char *key, const char *section, size_t len)
{
	return strncmp(key, section, len) == 0 && key[len] == '.';
}

/* Adds, at the end of SECTION (LEN bytes), every edit for it not yet
 * applied that has a value. */
static void add_missing(FILE *out, const char *section, size_t len,
                        const rk_cfg_edit_t *edits, bool *done, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (done[i] || !in_section(edits[i].key, section, len) ||
		    edits[i].value == NULL)
			continue;
		const char *field = edits[i].rename != NULL
		                        ? edits[i].rename
		                        : edits[i].key + len + 1;
		fprintf(out, "  %s: %s\n", field, edits[i].value);
		done[i] = true;
	}
}

int rk_cfg_write(const char *dst, const char *src, const rk_cfg_edit_t *edits,
                 size_t n)
{
	char *text = rk_proc_read_file(src, NULL);
	if (text == NULL)
		return -1;
	bool *done = calloc(n + 1, sizeof(*done));
	FILE *out = fopen(dst, "w");
	if (done == NULL || out == NULL) {
		free(done);
		free(text);
		if (out != NULL)
			fclose(out);
		return -1;
	}
	char section[128] = "";
	for (char *p = text; p != NULL && *p != '\0';) {
		char *nl = strchr(p, '\n');
		if (nl != NULL)
			*nl = '\0';
		struct yaml_line l = yaml_scan(p);
		if (l.key != NULL && l.indent == 0) {
			/* A new section: the previous one is complete. */
			add_missing(out, section, strlen(section), edits, done,
			            n);
			snprintf(section, sizeof(section), "%.*s",
			         (int)l.key_len, l.key);
			fprintf(out, "%s\n", p);
		} else if (l.key != NULL && section[0] != '\0') {
			const rk_cfg_edit_t *e = NULL;
			size_t slen = strlen(section);
			for (size_t i = 0; i < n && e == NULL; i++) {
				if (in_section(edits[i].key, section, slen) &&
				    strlen(edits[i].key + slen + 1) ==
				        l.key_len &&
				    strncmp(edits[i].key + slen + 1, l.key,
				            l.key_len) == 0) {
					e = &edits[i];
					done[i] = true;
				}
			}
			const char *old = l.key + l.key_len + 1;
			if (e == NULL)
				fprintf(out, "%s\n", p);
			else if (e->value == NULL && e->rename == NULL)
				fprintf(out, "%*s# %.*s: (removed)\n",
				        (int)l.indent, "", (int)l.key_len,
				        l.key);
			else
				fprintf(out, "%*s%s:%s%s\n", (int)l.indent, "",
				        e->rename != NULL ? e->rename
				                          : e->key + slen + 1,
				        e->value != NULL ? " " : "",
				        e->value != NULL ? e->value : old);
		} else {
			fprintf(out, "%s\n", p);
		}
		p = nl != NULL ? nl + 1 : NULL;
	}
	add_missing(out, section, strlen(section), edits, done, n);

	/* Sections the sample lacks. */
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		if (done[i])
			continue;
		const char *dot = strchr(edits[i].key, '.');
		if (dot == NULL || edits[i].value == NULL) {
			rc = -1;
			continue;
		}
		size_t slen = (size_t)(dot - edits[i].key);
		fprintf(out, "%.*s:\n", (int)slen, edits[i].key);
		add_missing(out, edits[i].key, slen, edits, done, n);
	}
	if (fclose(out) != 0)
		rc = -1;
	free(done);
	free(text);
	return rc;
}

/* ---------------------------------------------------- children */

/* Environment variables a child must not inherit from us: it would
 * talk to the real systemd, or think it was socket-activated. */
static bool env_dropped(const char *entry, const char *const *extra)
{
	static const char *const systemd[] = {"NOTIFY_SOCKET",
	                                      "WATCHDOG_USEC",
	                                      "WATCHDOG_PID",
	                                      "LISTEN_FDS",
	                                      "LISTEN_PID",
	                                      "LISTEN_FDNAMES",
	                                      NULL};
	size_t len = strcspn(entry, "=");
	for (size_t i = 0; systemd[i] != NULL; i++)
		if (strlen(systemd[i]) == len &&
		    strncmp(entry, systemd[i], len) == 0)
			return true;
	for (size_t i = 0; extra != NULL && extra[i] != NULL; i++)
		if (strncmp(entry, extra[i], len) == 0 && extra[i][len] == '=')
			return true;
	return false;
}

#define WATCHDOG_PID_ENTRY "WATCHDOG_PID="

/* Writes PID in decimal at OUT, NUL-terminated; async-signal-safe. */
static void put_pid(char *out, pid_t pid)
{
	char digits[24];
	int n = 0;
	unsigned long v = (unsigned long)pid;
	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	while (n > 0)
		*out++ = digits[--n];
	*out = '\0';
}

static int open_output(const char *path)
{
	return open(path != NULL ? path : "/dev/null",
	            O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
}

/* The child's side, between fork and exec: async-signal-safe calls only. */
static void child_exec(const rk_proc_opts_t *o, char **envp, char *wd_slot,
                       pid_t parent, int in, int out, int err)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
		_exit(127);
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
		_exit(127);
	/* Nothing of ours (notify socket, listeners, nng's sockets) may
	 * leak into the service. */
	syscall(SYS_close_range, 3U, ~0U, 0U);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* Ignored signals stay ignored across exec; the service expects the
	 * defaults. */
	struct sigaction dfl;
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	static const int sigs[] = {SIGPIPE, SIGHUP, SIGINT, SIGTERM, SIGCHLD};
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &dfl, NULL);
	if (wd_slot != NULL)
		put_pid(wd_slot + strlen(WATCHDOG_PID_ENTRY), getpid());
	execve(o->argv[0], (char *const *)o->argv, envp);
	_exit(127);
}

int rk_proc_spawn(rk_proc_t *p, const rk_proc_opts_t *o)
{
	memset(p, 0, sizeof(*p));
	p->pidfd = -1;
	const char *base = strrchr(o->argv[0], '/');
	snprintf(p->name, sizeof(p->name), "%s",
	         base != NULL ? base + 1 : o->argv[0]);
	snprintf(p->stderr_path, sizeof(p->stderr_path), "%s",
	         o->stderr_path != NULL ? o->stderr_path : "");

	/* The environment, built here because the child cannot allocate. */
	size_t n = 0, nextra = 0;
	while (environ[n] != NULL)
		n++;
	while (o->env != NULL && o->env[nextra] != NULL)
		nextra++;
	char **envp = calloc(n + nextra + 2, sizeof(*envp));
	char wd_slot[sizeof(WATCHDOG_PID_ENTRY) + 24] = WATCHDOG_PID_ENTRY;
	if (envp == NULL)
		return -1;
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (!env_dropped(environ[i], o->env))
			envp[k++] = environ[i];
	for (size_t i = 0; i < nextra; i++)
		envp[k++] = (char *)o->env[i];
	if (o->watchdog_pid)
		envp[k++] = wd_slot;
	envp[k] = NULL;

	int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int out = open_output(o->stdout_path);
	int err = open_output(o->stderr_path);
	int rc = -1;
	if (in < 0 || out < 0 || err < 0)
		goto done;
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		goto done;
	if (pid == 0)
		child_exec(o, envp, o->watchdog_pid ? wd_slot : NULL, parent,
		           in, out, err);
	p->pid = pid;
	p->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	rc = 0;
done:;
	int saved = errno;
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	if (err >= 0)
		close(err);
	free(envp);
	errno = saved;
	return rc;
}

static void reaped(rk_proc_t *p, int status)
{
	p->reaped = true;
	p->status = status;
	if (p->pidfd >= 0)
		close(p->pidfd);
	p->pidfd = -1;
}

int rk_proc_wait(rk_proc_t *p, int timeout_ms)
{
	if (p->pid <= 0)
		return -1;
	if (p->reaped)
		return 1;
	int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		int status;
		pid_t r = waitpid(p->pid, &status, WNOHANG);
		if (r == p->pid) {
			reaped(p, status);
			return 1;
		}
		if (r < 0 && errno != EINTR)
			return -1;
		int left = left_ms(deadline);
		if (left == 0)
			return 0;
		if (p->pidfd >= 0) {
			struct pollfd pfd = {.fd = p->pidfd, .events = POLLIN};
			poll(&pfd, 1, left);
		} else {
			/* No pidfd: look again shortly; the deadline still
			 * bounds the wait. */
			struct timespec ts = {0, 2 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
	}
}

int rk_proc_signal(rk_proc_t *p, int sig)
{
	if (p->pid <= 0 || p->reaped)
		return -1;
	return kill(p->pid, sig);
}

void rk_proc_kill(rk_proc_t *p)
{
	if (p->pid <= 0 || p->reaped)
		return;
	kill(p->pid, SIGKILL);
	int status;
	pid_t r;
	do
		r = waitpid(p->pid, &status, 0);
	while (r < 0 && errno == EINTR);
	reaped(p, r == p->pid ? status : -1);
}

int rk_proc_exit_code(const rk_proc_t *p)
{
	if (!p->reaped)
		return -1;
	if (WIFEXITED(p->status))
		return WEXITSTATUS(p->status);
	if (WIFSIGNALED(p->status))
		return 128 + WTERMSIG(p->status);
	return -1;
}

int rk_proc_run(const rk_proc_opts_t *opts, int timeout_ms)
{
	rk_proc_t p;
	if (rk_proc_spawn(&p, opts) != 0)
		return -1;
	if (rk_proc_wait(&p, timeout_ms) != 1) {
		rk_proc_kill(&p);
		return -1;
	}
	return rk_proc_exit_code(&p);
}

void rk_proc_dump(const rk_proc_t *p, FILE *out)
{
	if (p->pid <= 0)
		return;
	fprintf(out, "---- %s (pid %d", p->name, (int)p->pid);
	if (p->reaped)
		fprintf(out, ", exit code %d", rk_proc_exit_code(p));
	fprintf(out, ") stderr: %s\n", p->stderr_path);
	char *text =
	    p->stderr_path[0] ? rk_proc_read_file(p->stderr_path, NULL) : NULL;
	fprintf(out, "%s", text != NULL ? text : "(none)\n");
	fprintf(out, "---- end of %s\n", p->name);
	free(text);
}

/* ------------------------------------------------- notify socket */

_Static_assert(sizeof(((rk_notify_t *)0)->path) ==
                   sizeof(((struct sockaddr_un *)0)->sun_path),
               "rk_notify_t.path holds exactly a sun_path");

int rk_notify_open(rk_notify_t *n, const char *dir, const char *name)
{
	memset(n, 0, sizeof(*n));
	n->fd = -1;
	int len = snprintf(n->path, sizeof(n->path), "%s/%s", dir, name);
	if (len <= 0 || (size_t)len >= sizeof(n->path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	memcpy(sa.sun_path, n->path, (size_t)len + 1);
	if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) != 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	n->fd = fd;
	return 0;
}

void rk_notify_close(rk_notify_t *n)
{
	if (n->fd < 0)
		return;
	close(n->fd);
	n->fd = -1;
	unlink(n->path);
}

static void notify_log(rk_notify_t *n, const char *msg)
{
	size_t room = sizeof(n->log) - n->log_len;
	int w = snprintf(n->log + n->log_len, room, "%s\n", msg);
	if (w > 0)
		n->log_len += (size_t)w < room ? (size_t)w : room - 1;
}

int rk_notify_recv(rk_notify_t *n, char *buf, size_t len, int timeout_ms,
                   pid_t *pid)
{
	if (n->fd < 0 || len == 0)
		return -1;
	int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		struct pollfd pfd = {.fd = n->fd, .events = POLLIN};
		int r = poll(&pfd, 1, left_ms(deadline));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			return 0;
		union {
			struct cmsghdr h;
			char space[CMSG_SPACE(sizeof(struct ucred))];
		} ctl;
		struct iovec iov = {.iov_base = buf, .iov_len = len - 1};
		struct msghdr mh = {.msg_iov = &iov,
		                    .msg_iovlen = 1,
		                    .msg_control = &ctl,
		                    .msg_controllen = sizeof(ctl)};
		ssize_t got = recvmsg(n->fd, &mh, MSG_DONTWAIT);
		if (got < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (got < 0)
			return -1;
		buf[got] = '\0';
		if (pid != NULL) {
			*pid = 0;
			for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL;
			     c = CMSG_NXTHDR(&mh, c)) {
				if (c->cmsg_level == SOL_SOCKET &&
				    c->cmsg_type == SCM_CREDENTIALS) {
					struct ucred uc;
					memcpy(&uc, CMSG_DATA(c), sizeof(uc));
					*pid = uc.pid;
				}
			}
		}
		notify_log(n, buf);
		/* An empty datagram is not a message; keep waiting. */
		if (got > 0)
			return (int)got;
	}
}

bool rk_notify_has(const char *msg, const char *assignment)
{
	size_t alen = strlen(assignment);
	for (const char *p = msg; p != NULL && *p != '\0';) {
		const char *nl = strchr(p, '\n');
		size_t llen = nl != NULL ? (size_t)(nl - p) : strlen(p);
		if (llen == alen && strncmp(p, assignment, alen) == 0)
			return true;
		p = nl != NULL ? nl + 1 : NULL;
	}
	return false;
}

int rk_notify_wait(rk_notify_t *n, pid_t pid, const char *assignment,
                   int timeout_ms, char *msg, size_t len)
{
	int64_t deadline = now_ms() + timeout_ms;
	char buf[4096];
	for (;;) {
		pid_t from = 0;
		int r = rk_notify_recv(n, buf, sizeof(buf), left_ms(deadline),
		                       &from);
		if (r <= 0)
			return r;
		if ((pid == 0 || from == pid) &&
		    rk_notify_has(buf, assignment)) {
			if (msg != NULL && len > 0)
				snprintf(msg, len, "%s", buf);
			return 1;
		}
	}
}

bool rk_notify_seen(const rk_notify_t *n, const char *assignment)
{
	return rk_notify_count(n, assignment) > 0;
}

int rk_notify_count(const rk_notify_t *n, const char *assignment)
{
	size_t alen = strlen(assignment);
	int count = 0;
	for (size_t i = 0; i < n->log_len;) {
		const char *line = n->log + i;
		const char *nl = memchr(line, '\n', n->log_len - i);
		size_t llen = nl != NULL ? (size_t)(nl - line) : n->log_len - i;
		if (llen == alen && memcmp(line, assignment, alen) == 0)
			count++;
		i += llen + 1;
	}
	return count;
}

int rk_notify_ports(const char *msg, int *rpc_port, int *admin_port)
{
	static const char prefix[] = "STATUS=serving rpc on port ";
	const char *p = strstr(msg, prefix);
	if (p == NULL || (p != msg && p[-1] != '\n'))
		return -1;
	int r, a, used = 0;
	if (sscanf(p + sizeof(prefix) - 1, "%d, admin on port %d%n", &r, &a,
	           &used) != 2 ||
	    used == 0 || r <= 0 || r > 65535 || a <= 0 || a > 65535)
		return -1;
	*rpc_port = r;
	*admin_port = a;
	return 0;
}

/* ------------------------------------------------------- sockets */

int rk_http_get(int port, const char *path, int timeout_ms, char **body)
{
	if (body != NULL)
		*body = NULL;
	int64_t deadline = now_ms() + timeout_ms;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	char req[512];
	int len = snprintf(req, sizeof(req),
	                   "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
	                   "Connection: close\r\n\r\n",
	                   path, port);
	char *raw = NULL;
	int status = -1;
	if (len <= 0 || (size_t)len >= sizeof(req) ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		goto out;
	for (int sent = 0; sent < len;) {
		ssize_t w =
		    send(fd, req + sent, (size_t)(len - sent), MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			goto out;
		sent += (int)w;
	}
	size_t cap = 8192, used = 0;
	raw = malloc(cap);
	for (;;) {
		if (raw == NULL)
			goto out;
		if (cap - used < 2) {
			char *bigger = realloc(raw, cap * 2);
			if (bigger == NULL)
				goto out;
			raw = bigger;
			cap *= 2;
		}
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int r = poll(&pfd, 1, left_ms(deadline));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			goto out; /* error, or no answer in time */
		ssize_t got = recv(fd, raw + used, cap - used - 1, 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			goto out;
		if (got == 0)
			break;
		used += (size_t)got;
	}
	raw[used] = '\0';
	int code;
	char *start = strstr(raw, "\r\n\r\n");
	if (start == NULL || sscanf(raw, "HTTP/1.%*d %d", &code) != 1)
		goto out;
	status = code;
	if (body != NULL) {
		*body = strdup(start + 4);
		if (*body == NULL)
			status = -1;
	}
out:
	free(raw);
	close(fd);
	return status;
}

int rk_tcp_listener(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t slen = sizeof(sa);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(fd, 16) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &slen) != 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	*port = ntohs(sa.sin_port);
	return fd;
}
