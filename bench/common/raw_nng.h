/*
 * The raw nng baseline the RPC-level benchmarks compare against: an nng
 * rep0 echo server with async ctx workers (no framing, no protobuf, no
 * sealing), and one synchronous round trip through a req ctx. Shared by
 * bench-rpc and bench-idgen so both measure the same floor.
 */
#ifndef RK_BENCH_RAW_NNG_H
#define RK_BENCH_RAW_NNG_H

#include <nng/nng.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rk_bench_raw_echo rk_bench_raw_echo_t;

/* Starts an echo server on a free loopback port; exits the process with a
 * message if it cannot. Stop with rk_bench_raw_echo_stop(). */
rk_bench_raw_echo_t *rk_bench_raw_echo_start(void);
int rk_bench_raw_echo_port(const rk_bench_raw_echo_t *s);
void rk_bench_raw_echo_stop(rk_bench_raw_echo_t *s);

/* One request of LEN bytes of PAYLOAD and its echo, through CTX with AIO
 * (a callback-less aio with a timeout set). Returns 0 or the nng error. */
int rk_bench_raw_round_trip(nng_ctx ctx, nng_aio *aio, const void *payload,
                            size_t len);

/* Called after each round trip of rk_bench_raw_run: RV is 0 or the nng
 * error, T0/T1 the monotonic ns around the call. */
typedef void (*rk_bench_raw_done_fn)(void *arg, int rv, uint64_t t0,
                                     uint64_t t1);

/* Makes round trips of LEN bytes (at most 4096) through a ctx of SOCK, one
 * at a time, until the monotonic clock reaches UNTIL_NS, reporting each
 * to DONE. */
void rk_bench_raw_run(nng_socket sock, size_t len, uint64_t until_ns,
                      rk_bench_raw_done_fn done, void *arg);

#endif
