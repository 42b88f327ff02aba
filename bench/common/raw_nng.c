/* The raw nng baseline; see raw_nng.h. */
#include "raw_nng.h"

#include <arpa/inet.h>
#include <nng/protocol/reqrep0/rep.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"

#define RAW_WORKERS 64

typedef struct raw_work {
	nng_aio *aio; /* the work item's aio */
	nng_ctx ctx;  /* its rep context */
	int sending;  /* 1 while the echo is being sent */
} raw_work_t;

struct rk_bench_raw_echo {
	nng_socket sock;              /* rep0 */
	raw_work_t work[RAW_WORKERS]; /* work items, as in nng's async demo */
	int port;                     /* bound */
};

static void raw_cb(void *arg)
{
	raw_work_t *w = arg;
	int rv = nng_aio_result(w->aio);
	if (rv != 0) {
		if (w->sending)
			nng_msg_free(nng_aio_get_msg(w->aio));
		if (rv == NNG_ECLOSED)
			return;
		w->sending = 0;
		nng_ctx_recv(w->ctx, w->aio);
		return;
	}
	if (w->sending) {
		w->sending = 0;
		nng_ctx_recv(w->ctx, w->aio);
		return;
	}
	nng_msg *m = nng_aio_get_msg(w->aio);
	w->sending = 1;
	nng_aio_set_msg(w->aio, m);
	nng_ctx_send(w->ctx, w->aio);
}

rk_bench_raw_echo_t *rk_bench_raw_echo_start(void)
{
	rk_bench_raw_echo_t *s = calloc(1, sizeof(*s));
	nng_listener l;
	if (s == NULL || nng_rep0_open(&s->sock) != 0 ||
	    nng_listen(s->sock, "tcp://127.0.0.1:0", &l, 0) != 0) {
		fprintf(stderr, "raw nng echo server: cannot listen\n");
		exit(1);
	}
	nng_sockaddr sa;
	nng_listener_get_addr(l, NNG_OPT_LOCADDR, &sa);
	s->port = ntohs(sa.s_in.sa_port);
	for (int i = 0; i < RAW_WORKERS; i++) {
		raw_work_t *w = &s->work[i];
		nng_aio_alloc(&w->aio, raw_cb, w);
		nng_ctx_open(&w->ctx, s->sock);
		nng_ctx_recv(w->ctx, w->aio);
	}
	return s;
}

int rk_bench_raw_echo_port(const rk_bench_raw_echo_t *s)
{
	return s->port;
}

void rk_bench_raw_echo_stop(rk_bench_raw_echo_t *s)
{
	nng_close(s->sock);
	for (int i = 0; i < RAW_WORKERS; i++)
		nng_aio_free(s->work[i].aio);
	free(s);
}

int rk_bench_raw_round_trip(nng_ctx ctx, nng_aio *aio, const void *payload,
                            size_t len)
{
	nng_msg *m;
	int rv = nng_msg_alloc(&m, 0);
	if (rv == 0)
		rv = nng_msg_append(m, payload, len);
	if (rv != 0)
		return rv;
	nng_aio_set_msg(aio, m);
	nng_ctx_send(ctx, aio);
	nng_aio_wait(aio);
	if ((rv = nng_aio_result(aio)) != 0) {
		nng_msg_free(m); /* not sent: still ours */
		return rv;
	}
	nng_ctx_recv(ctx, aio);
	nng_aio_wait(aio);
	if ((rv = nng_aio_result(aio)) != 0)
		return rv;
	nng_msg_free(nng_aio_get_msg(aio));
	return 0;
}

void rk_bench_raw_run(nng_socket sock, size_t len, uint64_t until_ns,
                      rk_bench_raw_done_fn done, void *arg)
{
	uint8_t payload[4096];
	if (len > sizeof(payload))
		len = sizeof(payload);
	memset(payload, 'p', len);
	nng_ctx ctx;
	nng_aio *aio;
	if (nng_ctx_open(&ctx, sock) != 0)
		return;
	if (nng_aio_alloc(&aio, NULL, NULL) != 0) {
		nng_ctx_close(ctx);
		return;
	}
	nng_aio_set_timeout(aio, 5000);
	while (rk_clock_mono_ns() < until_ns) {
		uint64_t t0 = rk_clock_mono_ns();
		int rv = rk_bench_raw_round_trip(ctx, aio, payload, len);
		done(arg, rv, t0, rk_clock_mono_ns());
	}
	nng_aio_free(aio);
	nng_ctx_close(ctx);
}
