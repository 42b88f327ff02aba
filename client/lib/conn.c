/*
 * libringkv connections; see include/ringkv/client.h. A connection is an
 * RPC client (lib/rpc/client.c) plus the sealer made from the key file,
 * and the default deadline.
 */
#include "conn.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "crypto/keyfile.h"
#include "service/health.h"

void rk_conn_error(ringkv_error_t *err, const char *fmt, ...)
{
	if (err == NULL)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	err->retry_after_ms = 0;
}

rk_status_t ringkv_connect(const ringkv_conn_opts_t *opts,
                           ringkv_conn_t **out, ringkv_error_t *err)
{
	if (opts == NULL || opts->url == NULL) {
		rk_conn_error(err, "no server URL given");
		return RK_INVALID_ARGUMENT;
	}
	ringkv_conn_t *conn = calloc(1, sizeof(*conn));
	if (conn == NULL) {
		rk_conn_error(err, "out of memory");
		return RK_RESOURCE_EXHAUSTED;
	}
	conn->timeout_ms = opts->timeout_ms ? opts->timeout_ms
	                                    : RK_RPC_DEFAULT_CALL_TIMEOUT_MS;
	rk_status_t st;
	if (opts->key_file != NULL) {
		uint8_t key[RK_SEAL_KEY_BYTES];
		char *why = NULL;
		st = rk_keyfile_read(opts->key_file, key, &why);
		if (st == RK_OK)
			st = rk_sealer_new(key, 0, &conn->sealer);
		sodium_memzero(key, sizeof(key));
		if (st != RK_OK) {
			rk_conn_error(err, "%s",
			              why ? why : "cannot use the key file");
			free(why);
			free(conn);
			return st;
		}
	}
	rk_rpc_client_opts_t co = {.url = opts->url,
	                           .sealer = conn->sealer,
	                           .caller = opts->caller};
	st = rk_rpc_client_new(&co, &conn->rpc);
	if (st != RK_OK) {
		rk_conn_error(err, "cannot connect to %s", opts->url);
		rk_sealer_free(conn->sealer);
		free(conn);
		return st;
	}
	rk_conn_error(err, "%s", "");
	*out = conn;
	return RK_OK;
}

void ringkv_close(ringkv_conn_t *conn)
{
	if (conn == NULL)
		return;
	rk_rpc_client_free(conn->rpc);
	rk_sealer_free(conn->sealer);
	free(conn);
}

rk_status_t rk_conn_call(ringkv_conn_t *conn, const rk_rpc_method_t *method,
                         const ProtobufCMessage *request,
                         rk_rpc_result_t *res, ringkv_error_t *err)
{
	rk_status_t st =
	    rk_rpc_call(conn->rpc, method, request, conn->timeout_ms, res);
	if (err != NULL) {
		snprintf(err->message, sizeof(err->message), "%s", res->message);
		err->retry_after_ms = res->retry_after_ms;
	}
	return st;
}

rk_status_t ringkv_health(ringkv_conn_t *conn, ringkv_error_t *err)
{
	char detail[256];
	rk_status_t st =
	    rk_health_probe(conn->rpc, conn->timeout_ms, detail, sizeof(detail));
	rk_conn_error(err, "%s", st == RK_OK ? "" : detail);
	return st;
}
