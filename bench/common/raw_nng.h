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

#endif
