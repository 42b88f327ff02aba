/*
 * Stream transport, client side; see stream_client.h for the contract and
 * stream_wire.h for the bytes.
 *
 * Connections are plain non-blocking sockets. Every wait is a poll(2)
 * bounded by what is left of the call's deadline, so a call ends by its
 * deadline whatever the peer does. The list `all` holds every open
 * connection, idle or busy, so that cancelling can shut down the sockets
 * that callers are blocked on; a socket is closed only under the mutex,
 * so the cancel never touches a descriptor number already reused.
 */
#include "rpc/stream_client.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "rpc/client_codec.h"
#include "rpc/stream_wire.h"

/* Answer buffer to start with: most answers fit in one read. */
#define ANSWER_BUF_MIN 4096

typedef struct sconn {
	int fd;                    /* the socket */
	uint32_t next_id;          /* request id of the next call */
	uint8_t *buf;              /* answer bytes */
	size_t cap;                /* allocated */
	uint64_t idle_since_ms;    /* when it last went idle, monotonic */
	struct sconn *next_idle;   /* idle list, under mu */
	struct sconn *prev, *next; /* all connections, under mu */
} sconn_t;

struct rk_stream_client {
	char *url;      /* as given, for messages */
	char host[256]; /* to connect to */
	char port[16];
	size_t max_frame;   /* answers larger are refused */
	pthread_mutex_t mu; /* guards everything below */
	sconn_t *idle;      /* connections ready for a call */
	sconn_t *all;       /* every open connection */
	int nconn;          /* length of all */
	bool cancelled;     /* rk_stream_client_cancel() ran */
};

rk_status_t rk_stream_client_new(const char *url, size_t max_frame,
                                 rk_stream_client_t **out)
{
	if (strncmp(url, RK_STREAM_SCHEME, RK_STREAM_SCHEME_LEN) != 0)
		return RK_INVALID_ARGUMENT;
	const char *hp = url + RK_STREAM_SCHEME_LEN;
	const char *colon = strrchr(hp, ':');
	if (colon == NULL || colon == hp || colon[1] == '\0' ||
	    strlen(colon + 1) >= 16 || (size_t)(colon - hp) >= 256)
		return RK_INVALID_ARGUMENT;
	rk_stream_client_t *sc = calloc(1, sizeof(*sc));
	if (sc == NULL || (sc->url = strdup(url)) == NULL) {
		free(sc);
		return RK_RESOURCE_EXHAUSTED;
	}
	snprintf(sc->host, sizeof(sc->host), "%.*s", (int)(colon - hp), hp);
	size_t hl = strlen(sc->host);
	if (hl >= 2 && sc->host[0] == '[' && sc->host[hl - 1] == ']') {
		memmove(sc->host, sc->host + 1, hl - 2);
		sc->host[hl - 2] = '\0';
	}
	snprintf(sc->port, sizeof(sc->port), "%s", colon + 1);
	sc->max_frame = max_frame;
	pthread_mutex_init(&sc->mu, NULL);
	*out = sc;
	return RK_OK;
}

/* Milliseconds left before DEADLINE_MS, 0 when passed. */
static int left_ms(uint64_t deadline_ms)
{
	uint64_t now = rk_clock_mono_ms();
	if (now >= deadline_ms)
		return 0;
	uint64_t d = deadline_ms - now;
	return d > 3600000 ? 3600000 : (int)d;
}

/* Waits until FD is ready for EVENTS or the deadline passes. 1 ready,
 * 0 timed out, -1 broken. */
static int wait_fd(int fd, short events, uint64_t deadline_ms)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = events};
		int rv = poll(&p, 1, left_ms(deadline_ms));
		if (rv < 0 && errno == EINTR)
			continue;
		if (rv < 0)
			return -1;
		if (rv == 0)
			return 0;
		if (p.revents & events)
			return 1;
		return -1; /* POLLERR, POLLHUP or POLLNVAL alone */
	}
}

/* Closes and frees C, which no list holds any more... under mu. */
static void conn_drop_locked(rk_stream_client_t *sc, sconn_t *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		sc->all = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	sc->nconn--;
	close(c->fd);
	free(c->buf);
	free(c);
}

static void conn_drop(rk_stream_client_t *sc, sconn_t *c)
{
	pthread_mutex_lock(&sc->mu);
	conn_drop_locked(sc, c);
	pthread_mutex_unlock(&sc->mu);
}

/* An idle connection is fit for a call unless the server closed it (or
 * sent bytes nobody asked for) while it sat idle. One that went idle a
 * moment ago is taken as it is: the check costs a system call, and a
 * connection lost in that moment fails its call like any other loss. */
#define FRESH_IDLE_MS 20
static bool conn_fit(const sconn_t *c)
{
	if (rk_clock_mono_ms() - c->idle_since_ms < FRESH_IDLE_MS)
		return true;
	struct pollfd p = {.fd = c->fd, .events = POLLIN};
	return poll(&p, 1, 0) == 0;
}

/* Opens a connection by the deadline, or says why not in RES. */
static sconn_t *conn_open(rk_stream_client_t *sc, uint64_t deadline_ms,
                          rk_rpc_result_t *res)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
	                         .ai_socktype = SOCK_STREAM};
	struct addrinfo *ai = NULL;
	int rv = getaddrinfo(sc->host, sc->port, &hints, &ai);
	if (rv != 0) {
		rk_rpc_result_set(res, RK_UNAVAILABLE, "cannot resolve %s: %s",
		                  sc->url, gai_strerror(rv));
		return NULL;
	}
	int fd = socket(ai->ai_family,
	                SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int err = fd < 0 ? errno : 0;
	if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		err = errno;
		if (err == EINPROGRESS) {
			int w = wait_fd(fd, POLLOUT, deadline_ms);
			socklen_t len = sizeof(err);
			if (w == 0)
				err = ETIMEDOUT;
			else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err,
			                    &len) != 0)
				err = errno;
		}
	}
	freeaddrinfo(ai);
	if (err != 0) {
		if (fd >= 0)
			close(fd);
		rk_rpc_result_set(res, RK_UNAVAILABLE,
		                  "cannot connect to %s: %s", sc->url,
		                  strerror(err));
		return NULL;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	sconn_t *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		close(fd);
		rk_rpc_result_set(res, RK_RESOURCE_EXHAUSTED, "out of memory");
		return NULL;
	}
	c->fd = fd;
	pthread_mutex_lock(&sc->mu);
	if (sc->cancelled) {
		pthread_mutex_unlock(&sc->mu);
		close(fd);
		free(c);
		rk_rpc_result_set(res, RK_CANCELLED, "client closed");
		return NULL;
	}
	c->next = sc->all;
	if (sc->all != NULL)
		sc->all->prev = c;
	sc->all = c;
	sc->nconn++;
	pthread_mutex_unlock(&sc->mu);
	return c;
}

/* An idle connection fit for a call, or a new one. */
static sconn_t *conn_get(rk_stream_client_t *sc, uint64_t deadline_ms,
                         rk_rpc_result_t *res)
{
	for (;;) {
		pthread_mutex_lock(&sc->mu);
		if (sc->cancelled) {
			pthread_mutex_unlock(&sc->mu);
			rk_rpc_result_set(res, RK_CANCELLED, "client closed");
			return NULL;
		}
		sconn_t *c = sc->idle;
		if (c != NULL)
			sc->idle = c->next_idle;
		pthread_mutex_unlock(&sc->mu);
		if (c == NULL)
			return conn_open(sc, deadline_ms, res);
		if (conn_fit(c))
			return c;
		conn_drop(sc, c);
	}
}

static void conn_put(rk_stream_client_t *sc, sconn_t *c)
{
	c->idle_since_ms = rk_clock_mono_ms();
	pthread_mutex_lock(&sc->mu);
	c->next_idle = sc->idle;
	sc->idle = c;
	pthread_mutex_unlock(&sc->mu);
}

/* Outcome of one transfer step. */
enum io_result { IO_OK, IO_TIMEOUT, IO_BROKEN };

static enum io_result write_all(int fd, const struct iovec *iov0, int niov,
                                uint64_t deadline_ms)
{
	struct iovec iov[2];
	memcpy(iov, iov0, (size_t)niov * sizeof(*iov));
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)niov};
	while (mh.msg_iovlen > 0) {
		ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return IO_BROKEN;
			int w = wait_fd(fd, POLLOUT, deadline_ms);
			if (w <= 0)
				return w == 0 ? IO_TIMEOUT : IO_BROKEN;
			continue;
		}
		size_t left = (size_t)n;
		while (mh.msg_iovlen > 0 && left >= mh.msg_iov->iov_len) {
			left -= mh.msg_iov->iov_len;
			mh.msg_iov++;
			mh.msg_iovlen--;
		}
		if (mh.msg_iovlen > 0) {
			mh.msg_iov->iov_base =
			    (uint8_t *)mh.msg_iov->iov_base + left;
			mh.msg_iov->iov_len -= left;
		}
	}
	return IO_OK;
}

/* Reads until LEN bytes are in P[0..cap), taking what else the socket
 * holds up to CAP; *got says how many arrived in all. WAIT_FIRST when no
 * byte can be there yet (an answer just asked for): wait before reading,
 * which saves the read that would only say EAGAIN. */
static enum io_result read_some(int fd, uint8_t *p, size_t len, size_t cap,
                                size_t *got, bool wait_first,
                                uint64_t deadline_ms)
{
	*got = 0;
	if (wait_first) {
		int w = wait_fd(fd, POLLIN, deadline_ms);
		if (w <= 0)
			return w == 0 ? IO_TIMEOUT : IO_BROKEN;
	}
	while (*got < len) {
		ssize_t n = read(fd, p + *got, cap - *got);
		if (n > 0) {
			*got += (size_t)n;
			continue;
		}
		if (n == 0)
			return IO_BROKEN;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return IO_BROKEN;
		int w = wait_fd(fd, POLLIN, deadline_ms);
		if (w <= 0)
			return w == 0 ? IO_TIMEOUT : IO_BROKEN;
	}
	return IO_OK;
}

/* Says why a transfer failed, in RES. */
static void io_failed(rk_stream_client_t *sc, enum io_result r, bool sent,
                      uint32_t timeout_ms, rk_rpc_result_t *res)
{
	pthread_mutex_lock(&sc->mu);
	bool cancelled = sc->cancelled;
	pthread_mutex_unlock(&sc->mu);
	if (cancelled)
		rk_rpc_result_set(res, RK_CANCELLED, "client closed");
	else if (r == IO_TIMEOUT && !sent)
		rk_rpc_result_set(res, RK_DEADLINE_EXCEEDED,
		                  "not sent within %u ms", timeout_ms);
	else if (r == IO_TIMEOUT)
		rk_rpc_result_set(res, RK_DEADLINE_EXCEEDED,
		                  "no answer within %u ms", timeout_ms);
	else
		rk_rpc_result_set(res, RK_UNAVAILABLE, "connection to %s lost",
		                  sc->url);
}

rk_status_t rk_stream_client_call(rk_stream_client_t *sc, const uint8_t *frame,
                                  size_t len, uint64_t deadline_ms,
                                  uint32_t timeout_ms,
                                  rk_stream_answer_fn answer, void *arg,
                                  rk_rpc_result_t *res)
{
	sconn_t *c = conn_get(sc, deadline_ms, res);
	if (c == NULL)
		return res->code;
	if (left_ms(deadline_ms) == 0) {
		/* Never send what the caller no longer waits for. */
		conn_put(sc, c);
		rk_rpc_result_set(res, RK_DEADLINE_EXCEEDED,
		                  "not sent within %u ms", timeout_ms);
		return res->code;
	}
	uint32_t id = c->next_id++;
	uint8_t hdr[RK_STREAM_HEADER_BYTES];
	rk_stream_header_put(hdr, (uint32_t)len, id);
	struct iovec iov[2] = {{hdr, sizeof(hdr)}, {(void *)frame, len}};
	enum io_result r = write_all(c->fd, iov, 2, deadline_ms);
	if (r != IO_OK) {
		io_failed(sc, r, false, timeout_ms, res);
		conn_drop(sc, c);
		return res->code;
	}
	/* The header and, usually, the whole answer in one read. */
	if (c->cap < ANSWER_BUF_MIN) {
		uint8_t *p = realloc(c->buf, ANSWER_BUF_MIN);
		if (p == NULL) {
			rk_rpc_result_set(res, RK_RESOURCE_EXHAUSTED,
			                  "out of memory");
			conn_drop(sc, c);
			return res->code;
		}
		c->buf = p;
		c->cap = ANSWER_BUF_MIN;
	}
	size_t got = 0;
	r = read_some(c->fd, c->buf, sizeof(hdr), c->cap, &got, true,
	              deadline_ms);
	if (r != IO_OK) {
		io_failed(sc, r, true, timeout_ms, res);
		conn_drop(sc, c);
		return res->code;
	}
	memcpy(hdr, c->buf, sizeof(hdr));
	uint32_t alen = rk_stream_u32(hdr);
	if (rk_stream_u32(hdr + 4) != id) {
		rk_rpc_result_set(res, RK_INTERNAL,
		                  "answer for request %u on a connection "
		                  "waiting for %u",
		                  rk_stream_u32(hdr + 4), id);
		conn_drop(sc, c);
		return res->code;
	}
	if (alen > sc->max_frame) {
		rk_rpc_result_set(res, RK_RESOURCE_EXHAUSTED,
		                  "answer of %u bytes exceeds max_frame_bytes "
		                  "%zu",
		                  alen, sc->max_frame);
		conn_drop(sc, c);
		return res->code;
	}
	if (got > sizeof(hdr) + alen) {
		/* Nothing may follow an answer: we asked for one. */
		rk_rpc_result_set(res, RK_INTERNAL,
		                  "unasked bytes after the answer from %s",
		                  sc->url);
		conn_drop(sc, c);
		return res->code;
	}
	if (sizeof(hdr) + alen > c->cap) {
		uint8_t *p = realloc(c->buf, sizeof(hdr) + alen);
		if (p == NULL) {
			rk_rpc_result_set(res, RK_RESOURCE_EXHAUSTED,
			                  "out of memory");
			conn_drop(sc, c);
			return res->code;
		}
		c->buf = p;
		c->cap = sizeof(hdr) + alen;
	}
	size_t more = 0;
	r = read_some(c->fd, c->buf + got, sizeof(hdr) + alen - got,
	              sizeof(hdr) + alen - got, &more, false, deadline_ms);
	if (r != IO_OK) {
		io_failed(sc, r, true, timeout_ms, res);
		conn_drop(sc, c);
		return res->code;
	}
	answer(c->buf + sizeof(hdr), alen, arg);
	conn_put(sc, c);
	return RK_OK;
}

void rk_stream_client_cancel(rk_stream_client_t *sc)
{
	pthread_mutex_lock(&sc->mu);
	sc->cancelled = true;
	/* Wakes every poll on these sockets; their callers see cancelled. */
	for (sconn_t *c = sc->all; c != NULL; c = c->next)
		shutdown(c->fd, SHUT_RDWR);
	pthread_mutex_unlock(&sc->mu);
}

void rk_stream_client_free(rk_stream_client_t *sc)
{
	if (sc == NULL)
		return;
	pthread_mutex_lock(&sc->mu);
	while (sc->all != NULL)
		conn_drop_locked(sc, sc->all);
	pthread_mutex_unlock(&sc->mu);
	pthread_mutex_destroy(&sc->mu);
	free(sc->url);
	free(sc);
}

int rk_stream_client_connections(rk_stream_client_t *sc)
{
	pthread_mutex_lock(&sc->mu);
	int n = sc->nconn;
	pthread_mutex_unlock(&sc->mu);
	return n;
}
