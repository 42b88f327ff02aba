/*
 * The raw stream peer of the tests; see stream_raw.h. Every read is a
 * poll(2) bounded by the caller's timeout, so a server that misbehaves
 * fails a test instead of hanging it.
 */
#include "stream_raw.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "ringkv/v1/common.pb-c.h"
#include "rpc/frame.h"
#include "rpc/stream_wire.h"

int raw_connect(int port, int rcvbuf)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (rcvbuf > 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int raw_send(int fd, const void *p, size_t len)
{
	const uint8_t *b = p;
	while (len > 0) {
		ssize_t n = send(fd, b, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

size_t raw_put(uint8_t *out, uint32_t id, const void *frame, size_t len)
{
	rk_stream_header_put(out, (uint32_t)len, id);
	if (len > 0)
		memcpy(out + RK_STREAM_HEADER_BYTES, frame, len);
	return RK_STREAM_HEADER_BYTES + len;
}

/* Reads exactly LEN bytes by DEADLINE_MS: 1 read, 0 closed, -1 late. */
static int read_exact(int fd, uint8_t *p, size_t len, uint64_t deadline_ms)
{
	while (len > 0) {
		uint64_t now = rk_clock_mono_ms();
		if (now >= deadline_ms)
			return -1;
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		int rv = poll(&pf, 1, (int)(deadline_ms - now));
		if (rv < 0 && errno == EINTR)
			continue;
		if (rv <= 0)
			return -1;
		ssize_t n = recv(fd, p, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;
		p += n;
		len -= (size_t)n;
	}
	return 1;
}

int raw_read(int fd, uint32_t timeout_ms, raw_answer_t *a)
{
	memset(a, 0, sizeof(*a));
	uint64_t deadline = rk_clock_mono_ms() + timeout_ms;
	uint8_t hdr[RK_STREAM_HEADER_BYTES];
	int rv = read_exact(fd, hdr, sizeof(hdr), deadline);
	if (rv != 1)
		return rv;
	uint32_t len = rk_stream_u32(hdr);
	a->id = rk_stream_u32(hdr + 4);
	if (len > (64u << 20))
		return 0; /* not an answer of ours */
	uint8_t *b = malloc(len > 0 ? len : 1);
	if (b == NULL)
		return 0;
	rv = read_exact(fd, b, len, deadline);
	if (rv != 1) {
		free(b);
		return rv;
	}
	a->code = -2; /* not even a response frame */
	if (len >= RK_FRAME_HEADER_BYTES && b[0] == RK_FRAME_VERSION &&
	    b[1] == RK_FRAME_RESPONSE) {
		if (b[2] & RK_FRAME_FLAG_SEALED) {
			a->code = RAW_SEALED;
		} else {
			Ringkv__V1__ResponseEnvelope *env =
			    ringkv__v1__response_envelope__unpack(
			        NULL, len - RK_FRAME_HEADER_BYTES,
			        b + RK_FRAME_HEADER_BYTES);
			if (env != NULL && env->status != NULL) {
				a->code = (int)env->status->code;
				snprintf(a->text, sizeof(a->text), "%s",
				         env->status->message
				             ? env->status->message
				             : "");
			}
			Ringkv__V1__EchoResponse *er =
			    env != NULL && env->has_body
			        ? ringkv__v1__echo_response__unpack(
			              NULL, env->body.len, env->body.data)
			        : NULL;
			if (er != NULL && er->has_payload) {
				a->payload_len = er->payload.len;
				memcpy(a->payload, er->payload.data,
				       er->payload.len < sizeof(a->payload)
				           ? er->payload.len
				           : sizeof(a->payload));
			}
			if (er != NULL)
				ringkv__v1__echo_response__free_unpacked(er,
				                                         NULL);
			if (env != NULL)
				ringkv__v1__response_envelope__free_unpacked(
				    env, NULL);
		}
	}
	free(b);
	return 1;
}

int raw_wait_closed(int fd, uint32_t timeout_ms)
{
	uint64_t deadline = rk_clock_mono_ms() + timeout_ms;
	uint8_t buf[4096];
	for (;;) {
		uint64_t now = rk_clock_mono_ms();
		if (now >= deadline)
			return 0;
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		int rv = poll(&pf, 1, (int)(deadline - now));
		if (rv < 0 && errno == EINTR)
			continue;
		if (rv <= 0)
			return 0;
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 1; /* EOF or reset */
	}
}

size_t raw_plain_frame(uint8_t *out, const void *env, size_t len)
{
	out[0] = RK_FRAME_VERSION;
	out[1] = RK_FRAME_REQUEST;
	out[2] = 0;
	out[3] = 0;
	if (len > 0)
		memcpy(out + RK_FRAME_HEADER_BYTES, env, len);
	return RK_FRAME_HEADER_BYTES + len;
}

size_t raw_plain_request(uint8_t *out, uint32_t service, uint32_t method,
                         const void *body, size_t body_len)
{
	Ringkv__V1__RequestEnvelope env = RINGKV__V1__REQUEST_ENVELOPE__INIT;
	env.has_service = 1;
	env.service = (Ringkv__V1__ServiceId)service;
	env.has_method = 1;
	env.method = method;
	env.has_body = body != NULL;
	env.body.data = (uint8_t *)body;
	env.body.len = body_len;
	out[0] = RK_FRAME_VERSION;
	out[1] = RK_FRAME_REQUEST;
	out[2] = 0;
	out[3] = 0;
	return RK_FRAME_HEADER_BYTES + ringkv__v1__request_envelope__pack(
	                                   &env, out + RK_FRAME_HEADER_BYTES);
}

size_t raw_echo_request(uint8_t *out, const void *payload, size_t len)
{
	Ringkv__V1__EchoRequest req = RINGKV__V1__ECHO_REQUEST__INIT;
	req.has_payload = 1;
	req.payload.data = (uint8_t *)payload;
	req.payload.len = len;
	size_t blen = ringkv__v1__echo_request__get_packed_size(&req);
	uint8_t *body = malloc(blen > 0 ? blen : 1);
	if (body == NULL)
		abort();
	ringkv__v1__echo_request__pack(&req, body);
	size_t n = raw_plain_request(
	    out, RINGKV__V1__SERVICE_ID__SERVICE_HEALTH,
	    RINGKV__V1__HEALTH_METHOD__HEALTH_ECHO, body, blen);
	free(body);
	return n;
}

size_t raw_rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	if (f == NULL)
		return 0;
	unsigned long size = 0, resident = 0;
	if (fscanf(f, "%lu %lu", &size, &resident) != 2)
		resident = 0;
	fclose(f);
	return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}
