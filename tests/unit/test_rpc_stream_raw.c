/*
 * The stream transport against a raw peer (stream_raw.h) writing bytes no
 * well-behaved client would: frames over the caps, garbage, frames split
 * into single bytes, pipelined frames answered out of order, a flood from
 * a peer that never reads, and the byte-for-byte example of docs/wire.md.
 * Each must get its documented answer, with its request id, and leave the
 * server serving everyone else. Run by test_rpc_stream.c's main().
 */
#include "stream_fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "metrics/metrics.h"
#include "ringkv/v1/common.pb-c.h"
#include "stream_raw.h"

/* An Echo of TEXT on FD, with ID, answered OK with TEXT. */
static void raw_echo_ok(int fd, uint32_t id, const char *text)
{
	uint8_t frame[256];
	size_t n = raw_echo_request(frame, text, strlen(text));
	raw_expect(fd, id, frame, n, RK_OK, NULL);
}

static void
test_stream_frame_over_cap_refused_with_its_id_conn_kept(void **state)
{
	fixture_t *f = *state;
	start_server(f, false, NULL, 0);
	int fd = raw_connect(f->port, 0);
	assert_true(fd >= 0);
	/* The header alone: refused at once, before its body is sent. */
	uint8_t hdr[8];
	raw_put(hdr, 0xabcd0007u, NULL, 0);
	uint32_t len = MAX_FRAME + 100;
	hdr[0] = (uint8_t)(len >> 24);
	hdr[1] = (uint8_t)(len >> 16);
	hdr[2] = (uint8_t)(len >> 8);
	hdr[3] = (uint8_t)len;
	assert_int_equal(raw_send(fd, hdr, sizeof(hdr)), 0);
	raw_answer_t a;
	assert_int_equal(raw_read(fd, 2000, &a), 1);
	assert_int_equal(a.id, 0xabcd0007u);
	assert_int_equal(a.code, RK_INVALID_ARGUMENT);
	assert_non_null(strstr(a.text, "exceeds max_frame_bytes"));
	/* Its body is skipped unread, whatever it holds (here: what looks
	 * like frames), and the next frame is served. */
	uint8_t *body = calloc(1, len);
	for (uint32_t off = 0; off + 64 <= len; off += 64) {
		uint8_t fr[56];
		size_t fl = raw_echo_request(fr, "inside", 6);
		raw_put(body + off, 666, fr, fl);
		memset(body + off + 8 + fl, 0, 56 - fl);
	}
	assert_int_equal(raw_send(fd, body, len), 0);
	free(body);
	raw_echo_ok(fd, 8, "after the big one");
	close(fd);
}

static void test_stream_frame_over_twice_cap_closes_only_that_conn(void **state)
{
	fixture_t *f = *state;
	start_server(f, false, NULL, 0);
	start_client(f, NULL);
	int other = raw_connect(f->port, 0);
	assert_true(other >= 0);
	raw_echo_ok(other, 1, "before");
	int fd = raw_connect(f->port, 0);
	assert_true(fd >= 0);
	uint8_t hdr[8];
	raw_put(hdr, 9, NULL, 0);
	uint32_t len = 2 * MAX_FRAME + 1;
	hdr[0] = (uint8_t)(len >> 24);
	hdr[1] = (uint8_t)(len >> 16);
	hdr[2] = (uint8_t)(len >> 8);
	hdr[3] = (uint8_t)len;
	assert_int_equal(raw_send(fd, hdr, sizeof(hdr)), 0);
	assert_int_equal(raw_wait_closed(fd, 2000), 1);
	close(fd);
	/* Everyone else is still served, on old and new connections. */
	raw_echo_ok(other, 2, "after");
	close(other);
	echo_ok(f, "still here");
}

static void test_stream_garbage_frames_get_status_with_id_echoed(void **state)
{
	fixture_t *f = *state;
	start_server(f, false, NULL, 0); /* unsealed: reach the decoders */
	int fd = raw_connect(f->port, 0);
	assert_true(fd >= 0);
	uint8_t buf[512];
	uint32_t id = 0xfeed0000u;
	/* Frame header: empty, short, version, kind, reserved bits. */
	raw_expect(fd, id++, "", 0, RK_INVALID_ARGUMENT,
	           "frame shorter than its header");
	raw_expect(fd, id++, "\x01\x01\x00", 3, RK_INVALID_ARGUMENT, NULL);
	raw_expect(fd, id++, "\x09\x01\x00\x00", 4, RK_INVALID_ARGUMENT,
	           "unknown frame version");
	raw_expect(fd, id++, "\x01\x02\x00\x00", 4, RK_INVALID_ARGUMENT,
	           "unexpected frame kind");
	raw_expect(fd, id++, "\x01\x01\x80\x00", 4, RK_INVALID_ARGUMENT,
	           "reserved header bits set");
	/* Sealed at a server without the key. */
	raw_expect(fd, id++, "\x01\x01\x01\x00xxxx", 8, RK_UNAUTHENTICATED,
	           NULL);
	/* Envelope: garbage, none naming a method. */
	size_t n = raw_plain_frame(buf, "\xff\xff\xff\xff\xff\xff", 6);
	raw_expect(fd, id++, buf, n, RK_INVALID_ARGUMENT,
	           "malformed request envelope");
	n = raw_plain_frame(buf, "", 0);
	raw_expect(fd, id++, buf, n, RK_INVALID_ARGUMENT,
	           "request envelope names no method");
	/* Unknown method, unknown service, a body of the wrong shape. */
	n = raw_plain_request(buf, RINGKV__V1__SERVICE_ID__SERVICE_HEALTH, 99,
	                      NULL, 0);
	raw_expect(fd, id++, buf, n, RK_UNIMPLEMENTED, "no method 99");
	n = raw_plain_request(buf, 77, 1, NULL, 0);
	raw_expect(fd, id++, buf, n, RK_UNIMPLEMENTED, NULL);
	n = raw_plain_request(buf, RINGKV__V1__SERVICE_ID__SERVICE_HEALTH,
	                      RINGKV__V1__HEALTH_METHOD__HEALTH_ECHO,
	                      "\x0a\x7f\x00", 3);
	raw_expect(fd, id++, buf, n, RK_INVALID_ARGUMENT,
	           "malformed Health.Echo request");
	/* The connection survived all of it. */
	raw_echo_ok(fd, 0xffffffffu, "still served");
	close(fd);
	char *text;
	size_t len;
	assert_int_equal(rk_metrics_render(f->metrics, &text, &len), RK_OK);
	assert_non_null(strstr(text, "ringkv_rpc_server_rejected_total{"
	                             "code=\"INVALID_ARGUMENT\"} 8"));
	assert_non_null(strstr(text, "ringkv_rpc_server_rejected_total{"
	                             "code=\"UNIMPLEMENTED\"} 2"));
	free(text);
}

static void test_stream_frames_split_into_1_byte_writes_are_served(void **state)
{
	fixture_t *f = *state;
	start_server(f, false, NULL, 0);
	int fd = raw_connect(f->port, 0);
	assert_true(fd >= 0);
	uint8_t frame[128], wire[512];
	size_t n = raw_echo_request(frame, "one byte at a time", 18);
	size_t w = raw_put(wire, 0x01020304u, frame, n);
	n = raw_echo_request(frame, "and the next", 12);
	w += raw_put(wire + w, 0x05060708u, frame, n);
	for (size_t i = 0; i < w; i++)
		assert_int_equal(raw_send(fd, wire + i, 1), 0);
	raw_answer_t a;
	assert_int_equal(raw_read(fd, 2000, &a), 1);
	assert_int_equal(a.id, 0x01020304u);
	assert_int_equal(a.code, RK_OK);
	assert_int_equal(a.payload_len, 18);
	assert_memory_equal(a.payload, "one byte at a time", 18);
	assert_int_equal(raw_read(fd, 2000, &a), 1);
	assert_int_equal(a.id, 0x05060708u);
	assert_memory_equal(a.payload, "and the next", 12);
	close(fd);
}

static void
test_stream_pipelined_frames_answered_by_id_out_of_order(void **state)
{
	fixture_t *f = *state;
	enum { ECHOS = 50, SLOW_ID = 1000 };
	start_server(f, false, slow_handler, 0); /* Check: 100 ms, pool */
	int fd = raw_connect(f->port, 0);
	assert_true(fd >= 0);
	uint8_t *wire = malloc(64 * 1024);
	uint8_t frame[128];
	Ringkv__V1__HealthCheckRequest ck =
	    RINGKV__V1__HEALTH_CHECK_REQUEST__INIT;
	uint8_t body[16];
	size_t bl = ringkv__v1__health_check_request__pack(&ck, body);
	size_t n = raw_plain_request(
	    frame, RINGKV__V1__SERVICE_ID__SERVICE_HEALTH,
	    RINGKV__V1__HEALTH_METHOD__HEALTH_CHECK, body, bl);
	/* The slow call first, then the quick ones, all in one write. */
	size_t w = raw_put(wire, SLOW_ID, frame, n);
	for (int i = 1; i <= ECHOS; i++) {
		char text[16];
		snprintf(text, sizeof(text), "pipe %d", i);
		n = raw_echo_request(frame, text, strlen(text));
		w += raw_put(wire + w, (uint32_t)i, frame, n);
	}
	assert_int_equal(raw_send(fd, wire, w), 0);
	free(wire);
	int seen[ECHOS + 1] = {0};
	bool slow_seen = false;
	for (int k = 0; k < ECHOS + 1; k++) {
		raw_answer_t a;
		assert_int_equal(raw_read(fd, 3000, &a), 1);
		assert_int_equal(a.code, RK_OK);
		if (a.id == SLOW_ID) {
			assert_false(slow_seen);
			slow_seen = true;
			/* Asked first, answered last: out of order. */
			assert_int_equal(k, ECHOS);
			continue;
		}
		assert_true(a.id >= 1 && a.id <= ECHOS);
		seen[a.id]++;
		char text[16];
		snprintf(text, sizeof(text), "pipe %u", a.id);
		assert_int_equal(a.payload_len, strlen(text));
		assert_memory_equal(a.payload, text, strlen(text));
	}
	assert_true(slow_seen);
	for (int i = 1; i <= ECHOS; i++)
		assert_int_equal(seen[i], 1);
	close(fd);
}

/* A Health.Check request frame (no stream header) at OUT. */
static size_t check_frame(uint8_t *out)
{
	Ringkv__V1__HealthCheckRequest ck =
	    RINGKV__V1__HEALTH_CHECK_REQUEST__INIT;
	uint8_t body[16];
	size_t bl = ringkv__v1__health_check_request__pack(&ck, body);
	return raw_plain_request(out, RINGKV__V1__SERVICE_ID__SERVICE_HEALTH,
	                         RINGKV__V1__HEALTH_METHOD__HEALTH_CHECK, body,
	                         bl);
}

static void
test_stream_conn_serves_128_requests_at_a_time_the_rest_wait(void **state)
{
	fixture_t *f = *state;
	enum { FIRST = 200, MORE = 100, CAP = 128 };
	start_server(f, false, park_handler, RK_RPC_INLINE);
	int fd = raw_connect(f->port, 0);
	assert_true(fd >= 0);
	uint8_t frame[64];
	size_t n = check_frame(frame);
	uint8_t *wire = malloc((FIRST + MORE) * (n + 8));
	size_t w = 0;
	for (uint32_t id = 1; id <= FIRST; id++)
		w += raw_put(wire + w, id, frame, n);
	assert_int_equal(raw_send(fd, wire, w), 0);
	/* The cap is served; the other frames wait, in the server's read
	 * buffer or in the socket, however long (a bounded look: 300 ms). */
	assert_int_equal(park_wait(CAP, 5000), CAP);
	assert_int_equal(park_wait(CAP + 1, 300), CAP);
	w = 0;
	for (uint32_t id = FIRST + 1; id <= FIRST + MORE; id++)
		w += raw_put(wire + w, id, frame, n);
	assert_int_equal(raw_send(fd, wire, w), 0);
	free(wire);
	assert_int_equal(park_wait(CAP + 1, 300), CAP);
	/* Answering lets it read on, until every frame has been served. */
	size_t answered = 0;
	uint64_t until = rk_clock_mono_ms() + 5000;
	while (answered < FIRST + MORE && rk_clock_mono_ms() < until) {
		answered += park_answer_all();
		if (answered < FIRST + MORE)
			park_wait(1, 100);
	}
	assert_int_equal(answered, FIRST + MORE);
	int seen[FIRST + MORE + 1] = {0};
	for (int k = 0; k < FIRST + MORE; k++) {
		raw_answer_t a;
		assert_int_equal(raw_read(fd, 3000, &a), 1);
		assert_int_equal(a.code, RK_OK);
		assert_true(a.id >= 1 && a.id <= FIRST + MORE);
		seen[a.id]++;
	}
	for (int i = 1; i <= FIRST + MORE; i++)
		assert_int_equal(seen[i], 1);
	close(fd);
}

/* A peer that pipelines requests and never reads an answer. */
typedef struct flooder {
	pthread_t thread;
	int port;
	int fd;        /* left open for the test to close */
	size_t target; /* bytes it tries to send */
	size_t sent;   /* bytes the kernel took */
	bool stalled;  /* no progress for STALL_MS */
	atomic_bool done;
} flooder_t;

#define STALL_MS 500

static void *flooder_main(void *arg)
{
	flooder_t *fl = arg;
	/* 1 KiB echoes: answers as large as the requests. */
	enum { CHUNK = 1 << 20 };
	uint8_t *chunk = malloc(CHUNK);
	uint8_t payload[1000], frame[1100];
	memset(payload, 'f', sizeof(payload));
	size_t n = raw_echo_request(frame, payload, sizeof(payload));
	size_t w = 0;
	uint32_t id = 1;
	while (w + n + 8 <= CHUNK)
		w += raw_put(chunk + w, id++, frame, n);
	fl->fd = raw_connect(fl->port, 0);
	int small = 64 << 10;
	setsockopt(fl->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	fcntl(fl->fd, F_SETFL, fcntl(fl->fd, F_GETFL) | O_NONBLOCK);
	uint64_t give_up = rk_clock_mono_ms() + 8000;
	size_t off = 0;
	while (fl->sent < fl->target && rk_clock_mono_ms() < give_up) {
		ssize_t k = send(fl->fd, chunk + off, w - off, MSG_NOSIGNAL);
		if (k > 0) {
			fl->sent += (size_t)k;
			off = (off + (size_t)k) % w;
			continue;
		}
		if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
		    errno != EINTR)
			break; /* the server hung up on us */
		struct pollfd p = {.fd = fl->fd, .events = POLLOUT};
		if (poll(&p, 1, STALL_MS) == 0) {
			fl->stalled = true;
			break;
		}
	}
	free(chunk);
	atomic_store(&fl->done, true);
	return NULL;
}

static void
test_stream_peer_that_never_reads_is_paused_not_buffered(void **state)
{
	fixture_t *f = *state;
	start_server(f, false, NULL, 0);
	start_client(f, NULL);
	echo_ok(f, "warm");
	size_t rss0 = raw_rss_bytes();
	flooder_t fl = {.port = f->port, .fd = -1, .target = 20u << 20};
	assert_int_equal(pthread_create(&fl.thread, NULL, flooder_main, &fl),
	                 0);
	/* Meanwhile another client is served as usual, promptly. (A
	 * bounded number of calls: under ASan every call's freed memory
	 * sits in quarantine and would blur the measurement below.) */
	int calls = 0;
	while (!atomic_load(&fl.done) && calls < 200) {
		uint64_t t0 = rk_clock_mono_ms();
		echo_ok(f, "not blocked by the flood");
		assert_true(rk_clock_mono_ms() - t0 < 1000);
		calls++;
	}
	pthread_join(fl.thread, NULL);
	size_t rss1 = raw_rss_bytes();
	print_message("flood: %zu of %zu bytes taken before the server "
	              "stopped reading; rss %+ld KiB\n",
	              fl.sent, fl.target, ((long)rss1 - (long)rss0) / 1024);
	assert_true(calls > 0);
	/* The server stopped reading: the sender stalled short of its 20 MB
	 * with the connection still open ... */
	assert_true(fl.stalled);
	assert_true(fl.sent < fl.target);
	/* ... and buffered answers only up to its pause mark (1 MiB), not
	 * the megabytes a reader-less peer asked for: served in full, the
	 * flood would queue 20 MB of answers in a 32 MiB buffer. */
	assert_true(rss1 < rss0 + (24u << 20));
	/* With that connection paused and open, others are still served. */
	for (int i = 0; i < 20; i++) {
		uint64_t t0 = rk_clock_mono_ms();
		echo_ok(f, "beside a paused connection");
		assert_true(rk_clock_mono_ms() - t0 < 1000);
	}
	echo_ok(f, "after the flood");
	close(fl.fd);
	echo_ok(f, "flooder gone");
}

/* The example in docs/wire.md, byte for byte both ways. */
static void
test_stream_wire_example_in_docs_is_answered_as_documented(void **state)
{
	fixture_t *f = *state;
	start_server(f, false, NULL, 0);
	int fd = raw_connect(f->port, 0);
	assert_true(fd >= 0);
	static const uint8_t request[] = {
	    0x00, 0x00, 0x00, 0x0e, 0x00, 0x00, 0x00, 0x01, 0x01, 0x01, 0x00,
	    0x00, 0x08, 0x01, 0x10, 0x02, 0x22, 0x04, 0x0a, 0x02, 0x68, 0x69};
	static const uint8_t answer[] = {
	    0x00, 0x00, 0x00, 0x0e, 0x00, 0x00, 0x00, 0x01, 0x01, 0x02, 0x00,
	    0x00, 0x0a, 0x02, 0x08, 0x00, 0x12, 0x04, 0x0a, 0x02, 0x68, 0x69};
	assert_int_equal(raw_send(fd, request, sizeof(request)), 0);
	uint8_t got[sizeof(answer)];
	size_t n = 0;
	uint64_t until = rk_clock_mono_ms() + 2000;
	while (n < sizeof(got) && rk_clock_mono_ms() < until) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 100) <= 0)
			continue;
		ssize_t k = recv(fd, got + n, sizeof(got) - n, 0);
		assert_true(k > 0);
		n += (size_t)k;
	}
	assert_int_equal(n, sizeof(answer));
	assert_memory_equal(got, answer, sizeof(answer));
	close(fd);
}

#define CASE(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

const struct CMUnitTest rk_stream_raw_tests[] = {
    CASE(test_stream_frame_over_cap_refused_with_its_id_conn_kept),
    CASE(test_stream_frame_over_twice_cap_closes_only_that_conn),
    CASE(test_stream_garbage_frames_get_status_with_id_echoed),
    CASE(test_stream_frames_split_into_1_byte_writes_are_served),
    CASE(test_stream_pipelined_frames_answered_by_id_out_of_order),
    CASE(test_stream_conn_serves_128_requests_at_a_time_the_rest_wait),
    CASE(test_stream_peer_that_never_reads_is_paused_not_buffered),
    CASE(test_stream_wire_example_in_docs_is_answered_as_documented),
};
const size_t rk_stream_raw_tests_len =
    sizeof(rk_stream_raw_tests) / sizeof(rk_stream_raw_tests[0]);
