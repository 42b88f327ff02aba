/*
 * A raw peer of the stream transport for tests: a plain blocking TCP
 * socket on which the test writes whatever bytes it likes (headers, frames,
 * garbage, one byte at a time) and reads the server's answers back, each
 * with its request id and, for unsealed answers, the envelope's status.
 * Nothing here goes through lib/rpc's client, so the server is tested
 * against bytes no well-behaved client would send.
 */
#ifndef RK_TEST_STREAM_RAW_H
#define RK_TEST_STREAM_RAW_H

#include <stddef.h>
#include <stdint.h>

/* Answer code for a sealed answer: the test checks those itself. */
#define RAW_SEALED 1000

/* One answer as read off the socket. */
typedef struct raw_answer {
	uint32_t id;         /* the request id echoed in the header */
	int code;            /* envelope status, or RAW_SEALED */
	char text[256];      /* the status message (unsealed) */
	uint8_t payload[64]; /* an Echo answer's payload, first bytes */
	size_t payload_len;  /* its full length, 0 if none */
} raw_answer_t;

/* A blocking TCP connection to 127.0.0.1:PORT with TCP_NODELAY, or -1.
 * RCVBUF > 0 shrinks the receive buffer first (to make the server's
 * writes partial). */
int raw_connect(int port, int rcvbuf);

/* Writes all of P[0..len); 0 on success, -1 when the peer is gone. */
int raw_send(int fd, const void *p, size_t len);

/* Appends the 8-byte header (LEN, ID) and FRAME[0..len) at OUT; returns
 * the bytes written. */
size_t raw_put(uint8_t *out, uint32_t id, const void *frame, size_t len);

/* Reads one answer within TIMEOUT_MS. 1: read; 0: the server closed the
 * connection; -1: nothing in time. */
int raw_read(int fd, uint32_t timeout_ms, raw_answer_t *a);

/* Waits up to TIMEOUT_MS for the server to close the connection,
 * discarding what it sends. 1: closed; 0: still open. */
int raw_wait_closed(int fd, uint32_t timeout_ms);

/* An unsealed request frame (no stream header) around ENV[0..len). */
size_t raw_plain_frame(uint8_t *out, const void *env, size_t len);

/* An unsealed request frame for (SERVICE, METHOD) with BODY. */
size_t raw_plain_request(uint8_t *out, uint32_t service, uint32_t method,
                         const void *body, size_t body_len);

/* An unsealed Health.Echo request frame carrying PAYLOAD[0..len); OUT
 * needs len + 64 bytes. */
size_t raw_echo_request(uint8_t *out, const void *payload, size_t len);

/* Bytes resident in this process (from /proc/self/statm). */
size_t raw_rss_bytes(void);

#endif
