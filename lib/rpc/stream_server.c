/*
 * The stream transport of the RPC server; see stream_server.h for why it
 * exists and stream_wire.h for the bytes.
 *
 * Threads. Loop 0 also accepts; every loop owns an epoll set and the
 * connections dealt to it round-robin. A loop reads a connection, cuts
 * the bytes into frames and hands each to rk_rpc_call_dispatch() on a
 * call object of its own (from an idle list, so steady state allocates
 * nothing). Inline handlers therefore answer on the loop thread, usually
 * with one sendmsg(2) that completes at once; blocking handlers answer
 * from the worker pool through the same path.
 *
 * A connection's write side (its socket writes, the queue of answers not
 * yet written, its epoll interest and its count of unanswered calls) is
 * guarded by its mutex, because answers come from any thread. Its read
 * side belongs to its loop alone. Only the loop closes a connection; a
 * writer that fails shuts the socket down, and the loop sees the hang-up.
 * Memory is reference counted: the loop holds one reference and every
 * unanswered call one more, so an answer that arrives after the peer left
 * finds a closed connection, not freed memory.
 *
 * Back-pressure. A peer that sends faster than it reads cannot make us
 * buffer without bound: a connection stops being read while it has
 * CONN_MAX_INFLIGHT calls unanswered or OUT_PAUSE bytes of answers queued,
 * and resumes when they drain. Its read buffer never holds more than one
 * frame beyond IN_MIN, but 64 KiB of tiny frames is thousands of calls
 * (each with its arena): so serving stops at CONN_MAX_INFLIGHT too, and
 * the frames left in the buffer (the backlog) wait, unread from the
 * socket, until answers bring the count down. Then the connection asks
 * for EPOLLOUT, which fires at once on a socket with room, and the loop
 * serves the backlog: only the loop touches the read side.
 *
 * Frame sizes follow the nng transport: a frame over max_frame_bytes is
 * skipped unread and answered INVALID_ARGUMENT; one over twice that
 * closes the connection.
 */
#include "rpc/stream_server.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/log.h"
#include "rpc/stream_wire.h"

#define MAX_LOOPS         16
#define MAX_CONNS         10000
#define CONN_MAX_INFLIGHT 128
#define OUT_PAUSE         (1u << 20)
#define OUT_MAX           (64u << 20)
#define IN_MIN            (64u << 10)
#define IDLE_CALLS_MAX    1024
#define EVENTS_PER_WAIT   64

/* Tokens in epoll data for the two descriptors that are not connections. */
static char LISTEN_TOKEN, WAKE_TOKEN;

typedef struct loop loop_t;

struct rk_stream_conn {
	int fd;             /* the socket; -1 once closed */
	loop_t *loop;       /* the loop that reads it */
	atomic_int refs;    /* the loop's, plus one per call */
	pthread_mutex_t mu; /* the write side, see the essay */
	bool closed;        /* the loop closed the socket */
	bool write_failed;  /* a write failed: answers are dropped */
	bool backlog;       /* frames wait in `in` for inflight to drop */
	uint32_t events;    /* current epoll interest */
	uint32_t inflight;  /* calls read and not yet answered */
	uint8_t *out;       /* answers not yet written */
	size_t out_off, out_len, out_cap; /* out[out_off..out_len) waits */
	/* Read side: the loop thread only. */
	uint8_t *in;                   /* bytes read, not yet served */
	size_t in_len, in_cap;         /* in use, allocated */
	uint64_t skip;                 /* bytes of a refused frame to skip */
	bool gone;                     /* closed by the loop: ignore events */
	rk_stream_conn_t *prev, *next; /* the loop's list, under loop->mu */
	rk_stream_conn_t *dead_next;   /* closed in this round of events */
};

struct loop {
	rk_stream_server_t *ss;  /* owner */
	int epfd;                /* this loop's epoll set */
	int evfd;                /* eventfd that wakes it to stop */
	pthread_t thread;        /* runs loop_main */
	bool started;            /* thread needs joining */
	pthread_mutex_t mu;      /* guards conns */
	rk_stream_conn_t *conns; /* open connections dealt to this loop */
};

struct rk_stream_server {
	rk_rpc_server_t *srv; /* routes, sealer, limits */
	int lfd;              /* listening socket */
	int spare_fd;         /* kept open to shed a connection at EMFILE */
	int port;             /* bound port */
	loop_t *loops;        /* nloops event loops */
	size_t nloops;
	atomic_size_t next_loop; /* round-robin dealer */
	atomic_int nconns;       /* open connections */
	rk_gauge_t *g_conns;     /* ringkv_rpc_stream_connections, or NULL */
	rk_counter_t *c_refused; /* ..._stream_refused_total, or NULL */
	atomic_bool stopping;    /* loops exit at their next wake-up */
	bool stopped;            /* rk_stream_server_stop() ran */
	pthread_mutex_t idle_mu; /* guards idle, nidle */
	rk_rpc_call_t *idle;     /* call objects ready for reuse */
	size_t nidle;
};

/* ---------------------------------------------------------- calls */

static rk_rpc_call_t *call_get(rk_stream_server_t *ss)
{
	pthread_mutex_lock(&ss->idle_mu);
	rk_rpc_call_t *w = ss->idle;
	if (w != NULL) {
		ss->idle = w->next_free;
		ss->nidle--;
	}
	pthread_mutex_unlock(&ss->idle_mu);
	if (w != NULL)
		return w;
	w = calloc(1, sizeof(*w));
	if (w != NULL)
		rk_rpc_call_init(ss->srv, w);
	return w;
}

static void call_put(rk_stream_server_t *ss, rk_rpc_call_t *w)
{
	rk_rpc_call_reset(w);
	pthread_mutex_lock(&ss->idle_mu);
	if (ss->nidle < IDLE_CALLS_MAX) {
		w->next_free = ss->idle;
		ss->idle = w;
		ss->nidle++;
		w = NULL;
	}
	pthread_mutex_unlock(&ss->idle_mu);
	if (w != NULL) {
		rk_rpc_call_fini(w);
		free(w);
	}
}

/* ---------------------------------------------------------- write side */

static void conn_unref(rk_stream_conn_t *c)
{
	if (atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	pthread_mutex_destroy(&c->mu);
	free(c->out);
	free(c->in);
	free(c);
}

/* Sets the epoll interest the connection's state calls for. Under c->mu. */
static void conn_interest_locked(rk_stream_conn_t *c)
{
	if (c->closed)
		return;
	size_t queued = c->out_len - c->out_off;
	bool room = c->inflight < CONN_MAX_INFLIGHT;
	uint32_t want = EPOLLRDHUP;
	if (room && queued < OUT_PAUSE && !c->backlog)
		want |= EPOLLIN;
	if (queued > 0 || (room && c->backlog))
		want |= EPOLLOUT; /* the latter: a wake-up to serve it */
	if (want == c->events)
		return;
	struct epoll_event ev = {.events = want, .data.ptr = c};
	if (epoll_ctl(c->loop->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->events = want;
}

/* A write failed: drop what is queued and let the loop see a hang-up. */
static void conn_fail_locked(rk_stream_conn_t *c)
{
	c->write_failed = true;
	c->out_off = c->out_len = 0;
	shutdown(c->fd, SHUT_RDWR);
}

/* Writes as much of IOV as the socket takes now. Returns the bytes
 * written, or -1 when the connection failed. Under c->mu. */
static ssize_t conn_write_locked(rk_stream_conn_t *c, struct iovec *iov,
                                 int niov)
{
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)niov};
	for (;;) {
		ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		return -1;
	}
}

/* Queues LEN bytes at P (the part of an answer not yet written). */
static bool conn_queue_locked(rk_stream_conn_t *c, const uint8_t *p, size_t len)
{
	if (c->out_off > 0 && c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_len + len > c->out_cap) {
		if (c->out_off > 0) {
			memmove(c->out, c->out + c->out_off,
			        c->out_len - c->out_off);
			c->out_len -= c->out_off;
			c->out_off = 0;
		}
		size_t cap = c->out_cap ? c->out_cap : 4096;
		while (cap < c->out_len + len)
			cap *= 2;
		if (cap > OUT_MAX)
			return false;
		uint8_t *p2 = realloc(c->out, cap);
		if (p2 == NULL)
			return false;
		c->out = p2;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, p, len);
	c->out_len += len;
	return true;
}

/* Sends one answer: at once if nothing waits before it, else queued. */
static void conn_send_locked(rk_stream_conn_t *c, uint32_t id,
                             const uint8_t *body, size_t len)
{
	uint8_t hdr[RK_STREAM_HEADER_BYTES];
	rk_stream_header_put(hdr, (uint32_t)len, id);
	size_t done = 0;
	if (c->out_len == c->out_off) {
		struct iovec iov[2] = {{hdr, sizeof(hdr)}, {(void *)body, len}};
		ssize_t n = conn_write_locked(c, iov, 2);
		if (n < 0) {
			conn_fail_locked(c);
			return;
		}
		done = (size_t)n;
	}
	if (done < sizeof(hdr) &&
	    !conn_queue_locked(c, hdr + done, sizeof(hdr) - done)) {
		conn_fail_locked(c);
		return;
	}
	size_t body_done = done > sizeof(hdr) ? done - sizeof(hdr) : 0;
	if (body_done < len &&
	    !conn_queue_locked(c, body + body_done, len - body_done))
		conn_fail_locked(c);
}

/* Writes queued answers; the loop calls it when the socket can take more. */
static void conn_flush(rk_stream_conn_t *c)
{
	pthread_mutex_lock(&c->mu);
	if (!c->closed && !c->write_failed && c->out_len > c->out_off) {
		struct iovec iov = {c->out + c->out_off,
		                    c->out_len - c->out_off};
		ssize_t n = conn_write_locked(c, &iov, 1);
		if (n < 0)
			conn_fail_locked(c);
		else
			c->out_off += (size_t)n;
	}
	conn_interest_locked(c);
	pthread_mutex_unlock(&c->mu);
}

void rk_stream_reply(rk_rpc_call_t *w, nng_msg *frame)
{
	rk_stream_conn_t *c = w->conn;
	rk_stream_server_t *ss = w->srv->stream;
	pthread_mutex_lock(&c->mu);
	if (frame != NULL && !c->closed && !c->write_failed)
		conn_send_locked(c, w->stream_id, nng_msg_body(frame),
		                 nng_msg_len(frame));
	c->inflight--;
	conn_interest_locked(c);
	pthread_mutex_unlock(&c->mu);
	if (frame != NULL)
		nng_msg_free(frame);
	w->conn = NULL;
	call_put(ss, w);
	conn_unref(c);
}

/* ---------------------------------------------------------- read side */

/* Closes C (loop thread only) and puts it on DEAD, whose references are
 * dropped once this round of events is handled. */
static void conn_close(rk_stream_conn_t *c, rk_stream_conn_t **dead)
{
	if (c->gone)
		return;
	c->gone = true;
	pthread_mutex_lock(&c->mu);
	c->closed = true;
	epoll_ctl(c->loop->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	pthread_mutex_unlock(&c->mu);
	loop_t *l = c->loop;
	pthread_mutex_lock(&l->mu);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		l->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&l->mu);
	atomic_fetch_sub(&l->ss->nconns, 1);
	if (l->ss->g_conns != NULL)
		rk_gauge_add(l->ss->g_conns, -1);
	c->dead_next = *dead;
	*dead = c;
}

/* Starts a call for the frame DATA[0..len) with request id ID, or for a
 * frame refused unread (DATA NULL: answered CODE, TEXT); *FULL says
 * whether the connection had CONN_MAX_INFLIGHT calls unanswered with it.
 * False when no call object could be had: the connection must go. */
static bool conn_call(rk_stream_conn_t *c, uint32_t id, const uint8_t *data,
                      size_t len, rk_status_t code, const char *text,
                      bool *full)
{
	rk_rpc_call_t *w = call_get(c->loop->ss);
	if (w == NULL)
		return false;
	w->conn = c;
	w->stream_id = id;
	atomic_fetch_add(&c->refs, 1);
	pthread_mutex_lock(&c->mu);
	c->inflight++;
	*full = c->inflight >= CONN_MAX_INFLIGHT;
	conn_interest_locked(c);
	pthread_mutex_unlock(&c->mu);
	if (data != NULL)
		rk_rpc_call_dispatch(w, data, len);
	else
		rk_rpc_call_refuse(w, code, text);
	return true;
}

/* Makes room for NEED bytes in the read buffer. */
static bool conn_in_reserve(rk_stream_conn_t *c, size_t need)
{
	if (c->in_cap >= need)
		return true;
	size_t cap = c->in_cap ? c->in_cap : IN_MIN;
	while (cap < need)
		cap *= 2;
	uint8_t *p = realloc(c->in, cap);
	if (p == NULL)
		return false;
	c->in = p;
	c->in_cap = cap;
	return true;
}

/* Serves the whole frames in the read buffer, up to CONN_MAX_INFLIGHT
 * unanswered calls, and keeps the rest (setting c->backlog when whole
 * frames may be left). False when the connection must be closed. */
static bool conn_frames(rk_stream_conn_t *c)
{
	size_t max_frame = c->loop->ss->srv->max_frame;
	size_t off = 0;
	pthread_mutex_lock(&c->mu);
	bool full = c->inflight >= CONN_MAX_INFLIGHT;
	pthread_mutex_unlock(&c->mu);
	for (;;) {
		if (full) {
			pthread_mutex_lock(&c->mu);
			c->backlog = true;
			conn_interest_locked(c);
			pthread_mutex_unlock(&c->mu);
			break;
		}
		if (c->skip > 0) {
			size_t take = c->in_len - off;
			if (take > c->skip)
				take = (size_t)c->skip;
			off += take;
			c->skip -= take;
			if (c->skip > 0)
				break;
			continue;
		}
		if (c->in_len - off < RK_STREAM_HEADER_BYTES)
			break;
		uint32_t len = rk_stream_u32(c->in + off);
		uint32_t id = rk_stream_u32(c->in + off + 4);
		if (len > 2 * max_frame) {
			rk_warn("rpc %s: stream frame of %u bytes is over "
			        "twice max_frame_bytes: connection closed",
			        c->loop->ss->srv->name, len);
			return false;
		}
		if (len > max_frame) {
			char text[128];
			snprintf(
			    text, sizeof(text),
			    "frame of %u bytes exceeds max_frame_bytes %zu",
			    len, max_frame);
			off += RK_STREAM_HEADER_BYTES;
			c->skip = len;
			if (!conn_call(c, id, NULL, 0, RK_INVALID_ARGUMENT,
			               text, &full))
				return false;
			continue;
		}
		if (c->in_len - off - RK_STREAM_HEADER_BYTES < len)
			break;
		if (!conn_call(c, id, c->in + off + RK_STREAM_HEADER_BYTES, len,
		               RK_OK, NULL, &full))
			return false;
		off += RK_STREAM_HEADER_BYTES + len;
	}
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
	/* Room for the whole of a frame already begun. */
	if (c->skip == 0 && c->in_len >= RK_STREAM_HEADER_BYTES)
		return conn_in_reserve(c, RK_STREAM_HEADER_BYTES +
		                              rk_stream_u32(c->in));
	return true;
}

/* Reads what the peer sent and serves it. */
static void conn_read(rk_stream_conn_t *c, rk_stream_conn_t **dead)
{
	for (;;) {
		if (c->in_len == c->in_cap &&
		    !conn_in_reserve(c, c->in_cap ? c->in_cap * 2 : IN_MIN)) {
			conn_close(c, dead);
			return;
		}
		size_t room = c->in_cap - c->in_len;
		ssize_t n = read(c->fd, c->in + c->in_len, room);
		if (n == 0) {
			conn_close(c, dead);
			return;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				conn_close(c, dead);
			return;
		}
		c->in_len += (size_t)n;
		if (!conn_frames(c)) {
			conn_close(c, dead);
			return;
		}
		if ((size_t)n < room || c->gone || c->backlog)
			return;
		/* Stop at the back-pressure mark; epoll brings us back. */
		pthread_mutex_lock(&c->mu);
		bool reading = (c->events & EPOLLIN) != 0;
		pthread_mutex_unlock(&c->mu);
		if (!reading)
			return;
	}
}

/* Serves frames left in the read buffer once calls have been answered
 * (the loop is woken by EPOLLOUT for it; see the essay). */
static void conn_serve_backlog(rk_stream_conn_t *c, rk_stream_conn_t **dead)
{
	pthread_mutex_lock(&c->mu);
	bool go = c->backlog && c->inflight < CONN_MAX_INFLIGHT;
	if (go)
		c->backlog = false;
	pthread_mutex_unlock(&c->mu);
	if (!go)
		return;
	if (!conn_frames(c)) {
		conn_close(c, dead);
		return;
	}
	pthread_mutex_lock(&c->mu);
	conn_interest_locked(c);
	pthread_mutex_unlock(&c->mu);
}

/* ---------------------------------------------------------- accepting */

static void conn_open(rk_stream_server_t *ss, int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	rk_stream_conn_t *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		close(fd);
		return;
	}
	c->fd = fd;
	c->loop = &ss->loops[atomic_fetch_add(&ss->next_loop, 1) % ss->nloops];
	atomic_init(&c->refs, 1);
	pthread_mutex_init(&c->mu, NULL);
	c->events = EPOLLIN | EPOLLRDHUP;
	loop_t *l = c->loop;
	pthread_mutex_lock(&l->mu);
	c->next = l->conns;
	if (l->conns != NULL)
		l->conns->prev = c;
	l->conns = c;
	pthread_mutex_unlock(&l->mu);
	atomic_fetch_add(&ss->nconns, 1);
	if (ss->g_conns != NULL)
		rk_gauge_add(ss->g_conns, 1);
	struct epoll_event ev = {.events = c->events, .data.ptr = c};
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
		/* Cannot happen with a fresh descriptor; do not leak it. */
		rk_stream_conn_t *dead = NULL;
		c->loop = l;
		conn_close(c, &dead);
		conn_unref(c);
	}
}

static void accept_all(rk_stream_server_t *ss)
{
	for (;;) {
		int fd =
		    accept4(ss->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if ((errno == EMFILE || errno == ENFILE) &&
			    ss->spare_fd >= 0) {
				/* Out of descriptors: take the connection
				 * with the spare one and shut it, or epoll
				 * would report it for ever. */
				rk_warn("rpc %s: out of file descriptors: "
				        "connection refused",
				        ss->srv->name);
				close(ss->spare_fd);
				if (ss->c_refused != NULL)
					rk_counter_add(ss->c_refused, 1);
				fd = accept(ss->lfd, NULL, NULL);
				if (fd >= 0)
					close(fd);
				ss->spare_fd =
				    open("/dev/null", O_RDONLY | O_CLOEXEC);
				continue;
			}
			return;
		}
		if (atomic_load(&ss->nconns) >= MAX_CONNS) {
			rk_warn("rpc %s: %d stream connections open: "
			        "connection refused",
			        ss->srv->name, MAX_CONNS);
			if (ss->c_refused != NULL)
				rk_counter_add(ss->c_refused, 1);
			close(fd);
			continue;
		}
		conn_open(ss, fd);
	}
}

/* ---------------------------------------------------------- loops */

static void *loop_main(void *arg)
{
	loop_t *l = arg;
	struct epoll_event evs[EVENTS_PER_WAIT];
	for (;;) {
		int n = epoll_wait(l->epfd, evs, EVENTS_PER_WAIT, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rk_error("rpc %s: epoll_wait: %s", l->ss->srv->name,
			         strerror(errno));
			return NULL;
		}
		rk_stream_conn_t *dead = NULL;
		bool stop = false;
		for (int i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;
			uint32_t e = evs[i].events;
			if (p == &WAKE_TOKEN) {
				/* Not at once: connections closed earlier in
				 * this round must still be released below. */
				stop = atomic_load(&l->ss->stopping);
				continue;
			}
			if (p == &LISTEN_TOKEN) {
				accept_all(l->ss);
				continue;
			}
			rk_stream_conn_t *c = p;
			if (c->gone)
				continue;
			if (e & EPOLLERR) {
				conn_close(c, &dead);
				continue;
			}
			if (e & EPOLLOUT) {
				conn_flush(c);
				conn_serve_backlog(c, &dead);
			}
			if (!c->gone && (e & (EPOLLIN | EPOLLHUP | EPOLLRDHUP)))
				conn_read(c, &dead);
		}
		while (dead != NULL) {
			rk_stream_conn_t *next = dead->dead_next;
			conn_unref(dead);
			dead = next;
		}
		if (stop)
			return NULL;
	}
}

/* ---------------------------------------------------------- lifecycle */

/* Binds "stream://HOST:PORT". */
static rk_status_t listen_on(rk_stream_server_t *ss, const char *url,
                             char **err)
{
	if (strncmp(url, RK_STREAM_SCHEME, RK_STREAM_SCHEME_LEN) != 0)
		return rk_rpc_fail(err, RK_INVALID_ARGUMENT,
		                   "stream address %s: not stream://HOST:PORT",
		                   url);
	const char *hp = url + RK_STREAM_SCHEME_LEN;
	const char *colon = strrchr(hp, ':');
	if (colon == NULL || colon[1] == '\0')
		return rk_rpc_fail(err, RK_INVALID_ARGUMENT,
		                   "stream address %s: no port", url);
	char host[256];
	snprintf(host, sizeof(host), "%.*s", (int)(colon - hp), hp);
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	bool any = host[0] == '\0' || strcmp(host, "*") == 0;
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
	                         .ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_PASSIVE};
	struct addrinfo *ai = NULL;
	int rv = getaddrinfo(any ? NULL : host, colon + 1, &hints, &ai);
	if (rv != 0)
		return rk_rpc_fail(err, RK_INVALID_ARGUMENT,
		                   "stream address %s: %s", url,
		                   gai_strerror(rv));
	int fd = socket(ai->ai_family,
	                SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
	    listen(fd, 1024) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return rk_rpc_fail(err, RK_UNAVAILABLE,
		                   "cannot listen on %s: %s", url, strerror(e));
	}
	freeaddrinfo(ai);
	struct sockaddr_storage sa;
	socklen_t salen = sizeof(sa);
	if (getsockname(fd, (struct sockaddr *)&sa, &salen) == 0)
		ss->port = ntohs(sa.ss_family == AF_INET6
		                     ? ((struct sockaddr_in6 *)&sa)->sin6_port
		                     : ((struct sockaddr_in *)&sa)->sin_port);
	ss->lfd = fd;
	return RK_OK;
}

rk_status_t rk_stream_server_start(rk_rpc_server_t *srv, const char *listen,
                                   size_t threads, rk_stream_server_t **out,
                                   char **err)
{
	rk_stream_server_t *ss = calloc(1, sizeof(*ss));
	if (ss == NULL)
		return rk_rpc_fail(err, RK_RESOURCE_EXHAUSTED, "out of memory");
	ss->srv = srv;
	ss->lfd = -1;
	ss->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	pthread_mutex_init(&ss->idle_mu, NULL);
	if (threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		threads = n > 0 ? (size_t)n : 1;
	}
	ss->nloops = threads < MAX_LOOPS ? threads : MAX_LOOPS;
	if (srv->metrics != NULL) {
		ss->g_conns = rk_metrics_gauge(
		    srv->metrics, "ringkv_rpc_stream_connections",
		    "Connections open on the stream transport.", "");
		ss->c_refused = rk_metrics_counter(
		    srv->metrics, "ringkv_rpc_stream_refused_total",
		    "Stream connections refused: too many open, or out of "
		    "file descriptors.",
		    "");
	}
	/* Owned by the server from here: stop and free clean up. */
	*out = ss;
	rk_status_t st = listen_on(ss, listen, err);
	if (st != RK_OK)
		return st;
	ss->loops = calloc(ss->nloops, sizeof(*ss->loops));
	if (ss->loops == NULL)
		return rk_rpc_fail(err, RK_RESOURCE_EXHAUSTED, "out of memory");
	for (size_t i = 0; i < ss->nloops; i++) {
		loop_t *l = &ss->loops[i];
		l->ss = ss;
		pthread_mutex_init(&l->mu, NULL);
		l->epfd = epoll_create1(EPOLL_CLOEXEC);
		l->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (l->epfd < 0 || l->evfd < 0)
			return rk_rpc_fail(err, RK_RESOURCE_EXHAUSTED,
			                   "stream loop: %s", strerror(errno));
		struct epoll_event ev = {.events = EPOLLIN,
		                         .data.ptr = &WAKE_TOKEN};
		epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->evfd, &ev);
	}
	struct epoll_event lev = {.events = EPOLLIN, .data.ptr = &LISTEN_TOKEN};
	if (epoll_ctl(ss->loops[0].epfd, EPOLL_CTL_ADD, ss->lfd, &lev) != 0)
		return rk_rpc_fail(err, RK_INTERNAL, "stream listener: %s",
		                   strerror(errno));
	for (size_t i = 0; i < ss->nloops; i++) {
		if (pthread_create(&ss->loops[i].thread, NULL, loop_main,
		                   &ss->loops[i]) != 0)
			return rk_rpc_fail(err, RK_RESOURCE_EXHAUSTED,
			                   "stream loop thread: %s",
			                   strerror(errno));
		ss->loops[i].started = true;
	}
	rk_info("rpc %s: stream transport on %s (port %d, %zu loops)",
	        srv->name, listen, ss->port, ss->nloops);
	return RK_OK;
}

int rk_stream_server_port(const rk_stream_server_t *ss)
{
	return ss->port;
}

void rk_stream_server_stop(rk_stream_server_t *ss)
{
	if (ss == NULL || ss->stopped)
		return;
	ss->stopped = true;
	atomic_store(&ss->stopping, true);
	for (size_t i = 0; ss->loops != NULL && i < ss->nloops; i++) {
		loop_t *l = &ss->loops[i];
		uint64_t one = 1;
		if (l->started && write(l->evfd, &one, sizeof(one)) < 0)
			rk_warn("rpc: cannot wake a stream loop");
	}
	for (size_t i = 0; ss->loops != NULL && i < ss->nloops; i++)
		if (ss->loops[i].started)
			pthread_join(ss->loops[i].thread, NULL);
	if (ss->lfd >= 0)
		close(ss->lfd);
	ss->lfd = -1;
	/* The loops are gone: close what they held. Calls still out keep
	 * their connection's memory until they are answered. */
	for (size_t i = 0; ss->loops != NULL && i < ss->nloops; i++) {
		loop_t *l = &ss->loops[i];
		rk_stream_conn_t *dead = NULL;
		while (l->conns != NULL)
			conn_close(l->conns, &dead);
		while (dead != NULL) {
			rk_stream_conn_t *next = dead->dead_next;
			conn_unref(dead);
			dead = next;
		}
	}
}

void rk_stream_server_free(rk_stream_server_t *ss)
{
	if (ss == NULL)
		return;
	rk_stream_server_stop(ss);
	for (size_t i = 0; ss->loops != NULL && i < ss->nloops; i++) {
		loop_t *l = &ss->loops[i];
		if (l->epfd > 0)
			close(l->epfd);
		if (l->evfd > 0)
			close(l->evfd);
		pthread_mutex_destroy(&l->mu);
	}
	free(ss->loops);
	while (ss->idle != NULL) {
		rk_rpc_call_t *w = ss->idle;
		ss->idle = w->next_free;
		rk_rpc_call_fini(w);
		free(w);
	}
	if (ss->spare_fd >= 0)
		close(ss->spare_fd);
	pthread_mutex_destroy(&ss->idle_mu);
	free(ss);
}
