/*
 * Frame packing and opening; see frame.h and docs/wire.md.
 *
 * Packing serializes the envelope once, straight into the nng message when
 * unsealed, or into a scratch buffer and from there sealed into the
 * message. Opening never trusts a length it has not checked against the
 * bytes actually received.
 */
#include "rpc/frame.h"

#include <stdlib.h>
#include <string.h>

/* The additional data of the AEAD: the header, plus the bound request
 * nonce for responses. */
static size_t frame_ad(uint8_t ad[RK_FRAME_HEADER_BYTES + RK_SEAL_NONCE_BYTES],
                       const uint8_t *header, const uint8_t *bind)
{
	memcpy(ad, header, RK_FRAME_HEADER_BYTES);
	if (bind == NULL)
		return RK_FRAME_HEADER_BYTES;
	memcpy(ad + RK_FRAME_HEADER_BYTES, bind, RK_SEAL_NONCE_BYTES);
	return RK_FRAME_HEADER_BYTES + RK_SEAL_NONCE_BYTES;
}

rk_status_t rk_frame_pack(rk_sealer_t *s, uint8_t kind, const uint8_t *bind,
                          const ProtobufCMessage *env, nng_msg **out,
                          uint8_t nonce_out[RK_SEAL_NONCE_BYTES])
{
	size_t plain_len = protobuf_c_message_get_packed_size(env);
	size_t total = RK_FRAME_HEADER_BYTES + plain_len +
	               (s != NULL ? RK_SEAL_OVERHEAD : 0);
	nng_msg *msg;
	if (nng_msg_alloc(&msg, total) != 0)
		return RK_RESOURCE_EXHAUSTED;
	uint8_t *p = nng_msg_body(msg);
	p[0] = RK_FRAME_VERSION;
	p[1] = kind;
	p[2] = s != NULL ? RK_FRAME_FLAG_SEALED : 0;
	p[3] = 0;
	if (s == NULL) {
		protobuf_c_message_pack(env, p + RK_FRAME_HEADER_BYTES);
		*out = msg;
		return RK_OK;
	}

	/* Small envelopes are serialized on the stack; large ones on the
	 * heap. Either way once, then sealed into the message. */
	uint8_t stackbuf[1024];
	uint8_t *plain = plain_len <= sizeof(stackbuf) ? stackbuf
	                                               : malloc(plain_len);
	if (plain == NULL) {
		nng_msg_free(msg);
		return RK_RESOURCE_EXHAUSTED;
	}
	protobuf_c_message_pack(env, plain);
	uint8_t ad[RK_FRAME_HEADER_BYTES + RK_SEAL_NONCE_BYTES];
	size_t adlen = frame_ad(ad, p, bind);
	rk_status_t st = rk_seal(s, ad, adlen, plain, plain_len,
	                         p + RK_FRAME_HEADER_BYTES);
	if (plain != stackbuf)
		free(plain);
	if (st != RK_OK) {
		nng_msg_free(msg);
		return st;
	}
	if (nonce_out != NULL)
		memcpy(nonce_out, p + RK_FRAME_HEADER_BYTES,
		       RK_SEAL_NONCE_BYTES);
	*out = msg;
	return RK_OK;
}

rk_status_t rk_frame_open(rk_sealer_t *s, bool allow_plain, uint8_t kind,
                          const uint8_t *bind, const uint8_t *data,
                          size_t len, bool check_replay, rk_arena_t *arena,
                          rk_frame_t *out, const char **why)
{
	*why = NULL;
	if (len < RK_FRAME_HEADER_BYTES) {
		*why = "frame shorter than its header";
		return RK_INVALID_ARGUMENT;
	}
	if (data[0] != RK_FRAME_VERSION) {
		*why = "unknown frame version";
		return RK_INVALID_ARGUMENT;
	}
	if (data[1] != kind) {
		*why = "unexpected frame kind";
		return RK_INVALID_ARGUMENT;
	}
	if ((data[2] & ~RK_FRAME_FLAG_SEALED) != 0 || data[3] != 0) {
		*why = "reserved header bits set";
		return RK_INVALID_ARGUMENT;
	}
	out->sealed = (data[2] & RK_FRAME_FLAG_SEALED) != 0;
	const uint8_t *body = data + RK_FRAME_HEADER_BYTES;
	size_t body_len = len - RK_FRAME_HEADER_BYTES;

	if (!out->sealed) {
		if (!allow_plain) {
			*why = "unsealed frame refused: this server requires "
			       "the cluster key";
			return RK_UNAUTHENTICATED;
		}
		out->plain = body;
		out->plain_len = body_len;
		return RK_OK;
	}
	if (s == NULL) {
		*why = "sealed frame but no cluster key configured";
		return RK_UNAUTHENTICATED;
	}
	if (body_len < RK_SEAL_OVERHEAD) {
		*why = "frame too short";
		return RK_UNAUTHENTICATED;
	}
	uint8_t *plain = rk_arena_alloc(arena, body_len - RK_SEAL_OVERHEAD);
	if (plain == NULL) {
		*why = "frame larger than the decode budget";
		return RK_RESOURCE_EXHAUSTED;
	}
	uint8_t ad[RK_FRAME_HEADER_BYTES + RK_SEAL_NONCE_BYTES];
	size_t adlen = frame_ad(ad, data, bind);
	rk_status_t st =
	    rk_open(s, ad, adlen, body, body_len, plain, check_replay, why);
	if (st != RK_OK)
		return st;
	memcpy(out->nonce, body, RK_SEAL_NONCE_BYTES);
	out->plain = plain;
	out->plain_len = body_len - RK_SEAL_OVERHEAD;
	return RK_OK;
}
