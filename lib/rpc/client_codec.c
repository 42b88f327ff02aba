/*
 * Packing requests and reading answers for both client transports; see
 * client_codec.h. docs/wire.md is the reference for the bytes.
 */
#include "rpc/client_codec.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "ringkv/v1/common.pb-c.h"
#include "rpc/frame.h"
#include "rpc/pballoc.h"

void rk_rpc_result_set(rk_rpc_result_t *res, rk_status_t code, const char *fmt,
                       ...)
{
	res->code = code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(res->message, sizeof(res->message), fmt, ap);
	va_end(ap);
}

rk_status_t rk_rpc_request_pack(rk_sealer_t *sealer, const char *caller,
                                uint64_t trace_id, size_t max_frame,
                                const rk_rpc_method_t *m,
                                const ProtobufCMessage *request,
                                uint32_t timeout_ms, nng_msg **out,
                                uint8_t nonce[RK_SEAL_NONCE_BYTES],
                                rk_rpc_result_t *why)
{
	if (request->descriptor != m->desc->input) {
		rk_rpc_result_set(why, RK_INVALID_ARGUMENT,
		                  "%s takes a %s, not a %s", m->full_name,
		                  m->desc->input->name,
		                  request->descriptor->name);
		return why->code;
	}
	size_t n = protobuf_c_message_get_packed_size(request);
	if (n > max_frame) {
		rk_rpc_result_set(
		    why, RK_INVALID_ARGUMENT,
		    "%s request of %zu bytes exceeds max_frame_bytes %zu",
		    m->full_name, n, max_frame);
		return why->code;
	}
	uint8_t stackbuf[1024];
	uint8_t *body = stackbuf;
	if (n > sizeof(stackbuf) && (body = malloc(n)) == NULL) {
		rk_rpc_result_set(why, RK_RESOURCE_EXHAUSTED, "out of memory");
		return why->code;
	}
	protobuf_c_message_pack(request, body);

	Ringkv__V1__RequestEnvelope env = RINGKV__V1__REQUEST_ENVELOPE__INIT;
	env.has_service = true;
	env.service = (Ringkv__V1__ServiceId)m->service_id;
	env.has_method = true;
	env.method = m->method_id;
	env.has_timeout_ms = true;
	env.timeout_ms = timeout_ms;
	env.has_body = true;
	env.body.len = n;
	env.body.data = body;
	env.caller = (char *)caller;
	env.has_trace_id = true;
	env.trace_id = trace_id;
	nng_msg *msg = NULL;
	rk_status_t st = rk_frame_pack(sealer, RK_FRAME_REQUEST, NULL,
	                               &env.base, &msg, nonce);
	if (body != stackbuf)
		free(body);
	if (st != RK_OK) {
		rk_rpc_result_set(why, st, "cannot build the request frame");
		return why->code;
	}
	if (nng_msg_len(msg) > max_frame) {
		rk_rpc_result_set(why, RK_INVALID_ARGUMENT,
		                  "%s request frame of %zu bytes exceeds "
		                  "max_frame_bytes %zu",
		                  m->full_name, nng_msg_len(msg), max_frame);
		nng_msg_free(msg);
		return why->code;
	}
	*out = msg;
	return RK_OK;
}

void rk_rpc_response_unpack(rk_sealer_t *sealer, size_t max_frame,
                            const uint8_t *bind, const rk_rpc_method_t *m,
                            const uint8_t *data, size_t len,
                            rk_rpc_result_t *res)
{
	if (len > max_frame) {
		rk_rpc_result_set(res, RK_RESOURCE_EXHAUSTED,
		                  "answer of %zu bytes exceeds max_frame_bytes "
		                  "%zu",
		                  len, max_frame);
		return;
	}
	rk_frame_t fr;
	const char *why = NULL;
	rk_status_t st =
	    rk_frame_open(sealer, true, RK_FRAME_RESPONSE, bind, data, len,
	                  false, &res->arena, &fr, &why);
	if (st != RK_OK) {
		rk_rpc_result_set(res, st, "answer refused: %s",
		                  why != NULL ? why : "bad frame");
		return;
	}
	ProtobufCAllocator pb;
	rk_pballoc_init(&pb, &res->arena);
	Ringkv__V1__ResponseEnvelope *env =
	    ringkv__v1__response_envelope__unpack(&pb, fr.plain_len, fr.plain);
	if (env == NULL || env->status == NULL || !env->status->has_code ||
	    !rk_status_valid((int)env->status->code)) {
		rk_rpc_result_set(res, RK_INTERNAL,
		                  "malformed answer envelope");
		return;
	}
	rk_status_t code = (rk_status_t)env->status->code;
	const char *text = env->status->message ? env->status->message : "";
	if (sealer != NULL && !fr.sealed) {
		/* A peer without our key can only tell us why it refused;
		 * an unsealed success could be anyone's. */
		if (code == RK_OK) {
			rk_rpc_result_set(res, RK_UNAUTHENTICATED,
			                  "unsealed answer refused");
			return;
		}
		rk_rpc_result_set(res, code, "%s", text);
		return;
	}
	if (code != RK_OK) {
		rk_rpc_result_set(res, code, "%s", text);
		if (env->status->has_retry_after_ms)
			res->retry_after_ms = env->status->retry_after_ms;
		return;
	}
	ProtobufCBinaryData body =
	    env->has_body ? env->body : (ProtobufCBinaryData){0, NULL};
	res->response = protobuf_c_message_unpack(m->desc->output, &pb,
	                                          body.len, body.data);
	if (res->response == NULL) {
		rk_rpc_result_set(res, RK_INTERNAL,
		                  "malformed %s answer (%zu bytes)",
		                  m->full_name, body.len);
		return;
	}
	rk_rpc_result_set(res, RK_OK, "%s", "");
}
