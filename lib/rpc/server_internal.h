/*
 * What the two transports of the RPC server share: the route table, the
 * call object and the server itself. server.c owns the request path
 * (decode, route, run the handler, pack the answer); each transport only
 * moves frames. The nng transport lives in server.c; the stream transport
 * (stream_server.c) hands frames in with rk_rpc_call_dispatch() and gets
 * answers back through rk_stream_reply().
 *
 * Internal to lib/rpc: services use server.h.
 */
#ifndef RK_RPC_SERVER_INTERNAL_H
#define RK_RPC_SERVER_INTERNAL_H

#include <nng/nng.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "core/arena.h"
#include "core/workpool.h"
#include "rpc/server.h"

typedef struct rk_stream_conn rk_stream_conn_t;
typedef struct rk_stream_server rk_stream_server_t;

typedef struct route {
	rk_rpc_method_t method; /* what is routed */
	rk_rpc_handler_fn fn;   /* the handler */
	int flags;              /* RK_RPC_INLINE or 0 */
	void *arg;              /* the handler's argument */
	/* Request counters per status code, made on first use. */
	_Atomic(rk_counter_t *) by_code[RK_STATUS_COUNT];
	rk_histogram_t *latency; /* seconds from frame to reply; may be NULL */
} route_t;

enum work_state { W_RECV, W_BUSY, W_SEND };

struct rk_rpc_call {
	rk_rpc_server_t *srv;  /* owner */
	nng_aio *aio;          /* the one aio of this item */
	nng_ctx ctx;           /* the rep context it runs on */
	enum work_state state; /* see the diagram above */
	rk_arena_t arena;      /* request, envelope, handler memory */
	ProtobufCAllocator pb; /* unpacks into arena */
	bool sealed;           /* request was sealed: seal the reply */
	uint8_t nonce[RK_SEAL_NONCE_BYTES]; /* request nonce, bound in reply */
	const route_t *route;               /* NULL until routed */
	ProtobufCMessage *request;          /* in arena */
	uint64_t start_ns;        /* when the frame arrived, monotonic */
	uint64_t deadline_ms;     /* monotonic */
	const char *caller;       /* in arena, or "" */
	uint64_t trace_id;        /* from the envelope, 0 if none */
	atomic_bool replied;      /* set by the first rk_rpc_reply*() */
	rk_task_t task;           /* pool link for blocking handlers */
	rk_rpc_handler_fn run_fn; /* what the pool runs: the route's
	                             handler, or what rk_rpc_call_defer set */
	void *run_arg;            /* its argument */
	/* Stream transport only (NULL conn: the call is an nng work item). */
	rk_stream_conn_t *conn;   /* the connection to answer on */
	uint32_t stream_id;       /* the request id to echo */
	rk_rpc_call_t *next_free; /* the stream server's idle list */
};

struct rk_rpc_server {
	nng_socket sock;             /* rep0 */
	nng_listener listener;       /* on `listen` */
	bool sock_open;              /* sock needs closing */
	char *listen;                /* as configured */
	char name[32];               /* for logs */
	int port;                    /* bound port, after start */
	rk_sealer_t *sealer;         /* borrowed; NULL: unsealed accepted */
	size_t max_frame;            /* frames larger are refused */
	size_t nwork;                /* work items */
	size_t nworkers;             /* pool threads */
	uint32_t default_timeout_ms; /* when a request names none */
	rk_metrics_t *metrics;       /* borrowed, may be NULL */
	route_t *routes;             /* read-only once started */
	size_t nroutes;              /* routes in use */
	rk_workpool_t *pool;         /* runs blocking handlers */
	rk_rpc_call_t *work;         /* nwork items, after start */
	atomic_bool closing;         /* set first thing in shutdown */
	atomic_int in_sock;          /* threads inside nng_ctx_send/recv */
	atomic_bool stopped;         /* aios stopped: replies are dropped */
	bool shut;                   /* rk_rpc_server_shutdown() ran */
	atomic_uint_fast64_t reject_log_second; /* rate limit of log lines */
	atomic_uint reject_log_count;
	rk_stream_server_t *stream; /* the second listener, or NULL */
	char *stream_listen;        /* its address as configured, or NULL */
	size_t stream_threads;      /* its event-loop threads */
};

/* Puts the printf-style message in *ERR (caller frees; ERR may be NULL)
 * and returns ST: how start-up failures are reported. */
rk_status_t rk_rpc_fail(char **err, rk_status_t st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepares a call object of SRV for the stream transport (arena, decoder,
 * task); rk_rpc_call_fini() frees what it holds. */
void rk_rpc_call_init(rk_rpc_server_t *srv, rk_rpc_call_t *w);
void rk_rpc_call_fini(rk_rpc_call_t *w);

/* Forgets the last request of W so it can take the next one. */
void rk_rpc_call_reset(rk_rpc_call_t *w);

/* Checks and unpacks the frame DATA[0..len) and hands it to its handler,
 * or answers it with an error; either way W is answered exactly once.
 * DATA may be reused once this returns. */
void rk_rpc_call_dispatch(rk_rpc_call_t *w, const uint8_t *data, size_t len);

/* Answers W with CODE and TEXT without running a handler (the frame could
 * not even be read). */
void rk_rpc_call_refuse(rk_rpc_call_t *w, rk_status_t code, const char *text);

#endif
