/*
 * Inside libringkv: the connection and the one helper every service's
 * calls go through.
 */
#ifndef RK_CLIENT_CONN_H
#define RK_CLIENT_CONN_H

#include <ringkv/client.h>

#include "crypto/seal.h"
#include "rpc/client.h"
#include "rpc/method.h"

struct ringkv_conn {
	rk_rpc_client_t *rpc;  /* the RPC client to the server */
	rk_sealer_t *sealer;   /* NULL when unsealed */
	uint32_t timeout_ms;   /* default deadline */
};

/* Calls METHOD with REQUEST with the connection's deadline; fills RES
 * (caller clears with rk_rpc_result_clear()) and ERR (may be NULL), and
 * returns the status. */
rk_status_t rk_conn_call(ringkv_conn_t *conn, const rk_rpc_method_t *method,
                         const ProtobufCMessage *request,
                         rk_rpc_result_t *res, ringkv_error_t *err);

/* Fills ERR (may be NULL) from printf-style text. */
void rk_conn_error(ringkv_error_t *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
