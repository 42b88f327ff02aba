/*
 * What the stream transport's tests share (test_rpc_stream*.c, one
 * binary): a fixture holding a server that serves on nng and stream at
 * once and a client on its stream port; the handlers they route; threads
 * that make one call each; and counters for asynchronous outcomes.
 */
#ifndef RK_TEST_STREAM_FIXTURE_H
#define RK_TEST_STREAM_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "crypto/seal.h"
#include "metrics/metrics.h"
#include "rpc/client.h"
#include "rpc/server.h"

#define MAX_FRAME   (64u << 10)
#define BIG_FRAME   (4u << 20)
#define PARKING_MAX 512 /* calls park_handler can hold */

typedef struct fixture {
	uint8_t key[RK_SEAL_KEY_BYTES]; /* the cluster key */
	rk_sealer_t *server_sealer;     /* NULL: unsealed server */
	rk_sealer_t *client_sealer;     /* NULL: unsealed client */
	rk_metrics_t *metrics;          /* the server's */
	rk_rpc_server_t *srv;           /* under test */
	rk_rpc_client_t *client;        /* on url */
	int port;                       /* the stream port */
	char url[64];                   /* stream://127.0.0.1:port */
	char nng_url[64];               /* the same server over nng */
} fixture_t;

/* Holds every call until the test answers it from its own thread. */
typedef struct parking {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	rk_rpc_call_t *calls[PARKING_MAX];
	size_t n;
} parking_t;

/* A synchronous Health.Check on its own thread. */
typedef struct caller {
	pthread_t thread;
	rk_rpc_client_t *client;
	uint32_t timeout_ms;
	rk_status_t code;
	uint64_t ended_ms; /* monotonic, when the call returned */
	atomic_bool done;
} caller_t;

/* Counts asynchronous outcomes. */
typedef struct async_count {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	size_t done;
	size_t ok;
	rk_status_t last;
} async_count_t;

/* The calls park_handler holds. */
extern parking_t parking;

/* Echo: answers the payload it got. Inline. */
void echo_handler(rk_rpc_call_t *call, const ProtobufCMessage *msg, void *arg);
/* Holds every call in `parking` until the test answers it. */
void park_handler(rk_rpc_call_t *call, const ProtobufCMessage *msg, void *arg);
/* Waits up to TIMEOUT_MS until N calls are parked; returns how many are. */
size_t park_wait(size_t n, uint32_t timeout_ms);
/* Answers every parked call (a Health.Check) and empties the lot;
 * returns how many it answered. */
size_t park_answer_all(void);
/* Health.Check after 100 ms of "work"; for the worker pool. */
void slow_handler(rk_rpc_call_t *call, const ProtobufCMessage *msg, void *arg);

/* Starts F's server: Echo (inline) and, if CHECK_FN, Health.Check, on
 * nng and on stream (at PORT; 0: any), frames capped at MAX_FRAME. */
void start_server_on(fixture_t *f, bool sealed, rk_rpc_handler_fn check_fn,
                     int check_flags, size_t max_frame, int port);
/* The same with MAX_FRAME and any port. */
void start_server(fixture_t *f, bool sealed, rk_rpc_handler_fn check_fn,
                  int check_flags);
/* A client of URL; fails the test if it cannot be made. */
rk_rpc_client_t *new_client(const char *url, rk_sealer_t *sealer,
                            size_t max_frame);
/* F's client, on F's stream URL, sealed with KEY (NULL: unsealed). */
void start_client(fixture_t *f, const uint8_t *key);
/* cmocka set-up and tear-down of a fixture. */
int setup(void **state);
int teardown(void **state);

/* Echo calls: P[0..len) through C; TEXT through F's client; and TEXT
 * checked to come back. */
rk_status_t echo_on(rk_rpc_client_t *c, const void *p, size_t len,
                    uint32_t timeout, rk_rpc_result_t *res);
rk_status_t echo(fixture_t *f, const char *text, uint32_t timeout,
                 rk_rpc_result_t *res);
void echo_ok(fixture_t *f, const char *text);

/* Starts C: one Health.Check through CLIENT on a thread of its own. */
void caller_start(caller_t *c, rk_rpc_client_t *client, uint32_t timeout_ms);
/* Joins C, failing the test (not hanging it) if it is not done within
 * TIMEOUT_MS. */
void caller_join(caller_t *c, uint32_t timeout_ms);

/* An rk_rpc_done_fn counting into ARG, an async_count_t. */
void count_done(rk_rpc_result_t *res, void *arg);

/* Sends FRAME[0..len) with request ID on the raw connection FD and reads
 * its answer, which must carry ID, CODE and (unless NULL) TEXT. */
void raw_expect(int fd, uint32_t id, const void *frame, size_t len, int code,
                const char *text);

/* The cases of test_rpc_stream_load.c and test_rpc_stream_raw.c, for
 * test_rpc_stream.c's main(). */
extern const struct CMUnitTest rk_stream_load_tests[];
extern const size_t rk_stream_load_tests_len;
extern const struct CMUnitTest rk_stream_raw_tests[];
extern const size_t rk_stream_raw_tests_len;

#endif
