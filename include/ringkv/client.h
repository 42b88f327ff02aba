/*
 * libringkv: the C client library of ringkv.
 *
 * A connection (ringkv_conn_t) talks to one ringkv server — a coordinator
 * for the store, a ratelimit or idgen instance — over the RPC layer: frames
 * sealed with a key, a deadline on every call, reconnect with back-off.
 * It is thread-safe: any number of threads may call through one connection
 * at once. The calls of each service are declared in their own header
 * (ringkv/idgen.h, ringkv/ratelimit.h, ...).
 *
 * Errors: every call returns an rk_status_t (ringkv/status.h); when the
 * caller passes a ringkv_error_t, it receives the server's or the
 * library's words and, where the server gave one, a retry-after.
 */
#ifndef RINGKV_CLIENT_H
#define RINGKV_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <ringkv/status.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ringkv_conn ringkv_conn_t;

typedef struct ringkv_conn_opts {
	const char *url;        /* "tcp://HOST:PORT" of the server */
	const char *key_file;   /* key for sealing frames; NULL: unsealed
	                           (only servers with allow_unsealed answer) */
	uint32_t timeout_ms;    /* default deadline per call; 0: 5000 */
	const char *caller;     /* our name in the server's logs; NULL: "" */
} ringkv_conn_opts_t;

/* What went wrong, in words. */
typedef struct ringkv_error {
	char message[256];       /* empty on success */
	uint32_t retry_after_ms; /* from the server, where it applies */
} ringkv_error_t;

/* Opens a connection (the dial happens in the background; the first call
 * waits for it up to its deadline). ERR may be NULL. On RK_OK the caller
 * closes *out with ringkv_close(). */
rk_status_t ringkv_connect(const ringkv_conn_opts_t *opts,
                           ringkv_conn_t **out, ringkv_error_t *err);

/* Ends calls in flight (they return RK_CANCELLED) and frees. NULL is ok. */
void ringkv_close(ringkv_conn_t *conn);

/* Asks the server whether it serves: RK_OK when it does. */
rk_status_t ringkv_health(ringkv_conn_t *conn, ringkv_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
