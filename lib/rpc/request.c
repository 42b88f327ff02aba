/* Request frame decoding; see request.h and docs/wire.md. */
#include "rpc/request.h"

#include <stdio.h>

rk_status_t rk_rpc_request_decode(rk_sealer_t *s, size_t max_frame,
                                  const uint8_t *data, size_t len,
                                  rk_arena_t *arena, ProtobufCAllocator *pb,
                                  rk_rpc_request_t *out, char *why,
                                  size_t whylen)
{
	if (len > max_frame) {
		snprintf(why, whylen,
		         "frame of %zu bytes exceeds max_frame_bytes %zu", len,
		         max_frame);
		return RK_INVALID_ARGUMENT;
	}
	const char *reason = NULL;
	rk_status_t st = rk_frame_open(s, s == NULL, RK_FRAME_REQUEST, NULL,
	                               data, len, true, arena, &out->frame,
	                               &reason);
	if (st != RK_OK) {
		snprintf(why, whylen, "%s", reason != NULL ? reason : "bad frame");
		return st;
	}
	/* Bytes fields are copied into the arena: DATA may go after this. */
	out->env = ringkv__v1__request_envelope__unpack(
	    pb, out->frame.plain_len, out->frame.plain);
	if (out->env == NULL) {
		snprintf(why, whylen, "malformed request envelope (%zu bytes)",
		         out->frame.plain_len);
		return RK_INVALID_ARGUMENT;
	}
	if (!out->env->has_service || !out->env->has_method) {
		snprintf(why, whylen, "request envelope names no method");
		return RK_INVALID_ARGUMENT;
	}
	return RK_OK;
}
