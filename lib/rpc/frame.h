/*
 * Frames: the bytes of one RPC request or response on an nng req/rep
 * socket. docs/wire.md is the reference; in short:
 *
 *	byte 0     version (1)
 *	byte 1     kind: 1 request, 2 response
 *	byte 2     flags: bit 0 set when sealed
 *	byte 3     reserved, 0
 *	bytes 4..  sealed:   nonce(24) | AEAD ciphertext of the envelope | tag(16)
 *	           unsealed: the envelope (RequestEnvelope / ResponseEnvelope)
 *
 * The 4 header bytes are the AEAD's additional data; a response also binds
 * the nonce of the request it answers, so it cannot be replayed as the
 * answer to another request.
 */
#ifndef RK_RPC_FRAME_H
#define RK_RPC_FRAME_H

#include <nng/nng.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>

#include <ringkv/status.h>

#include "core/arena.h"
#include "crypto/seal.h"

#define RK_FRAME_VERSION      1
#define RK_FRAME_HEADER_BYTES 4
#define RK_FRAME_REQUEST      1
#define RK_FRAME_RESPONSE     2
#define RK_FRAME_FLAG_SEALED  0x01

/* What rk_frame_open found. */
typedef struct rk_frame {
	bool sealed;                          /* the frame was sealed */
	uint8_t nonce[RK_SEAL_NONCE_BYTES];   /* its nonce, when sealed */
	const uint8_t *plain;                 /* the envelope bytes */
	size_t plain_len;                     /* their length */
} rk_frame_t;

/* Packs ENV into a new frame of KIND, sealed with S (NULL: unsealed).
 * BIND is the request nonce a sealed response answers (NULL otherwise).
 * NONCE_OUT (may be NULL) receives the nonce used. On RK_OK *out is the
 * caller's (nng_msg_free, or given away by a successful send). */
rk_status_t rk_frame_pack(rk_sealer_t *s, uint8_t kind, const uint8_t *bind,
                          const ProtobufCMessage *env, nng_msg **out,
                          uint8_t nonce_out[RK_SEAL_NONCE_BYTES]);

/* Checks the header of DATA[0..len) and opens it. A sealed frame needs S
 * (else RK_UNAUTHENTICATED); an unsealed one is accepted only when
 * ALLOW_PLAIN. CHECK_REPLAY as for rk_open (requests: yes). The plaintext
 * of a sealed frame is written into ARENA; of an unsealed one OUT->plain
 * points into DATA, which must outlive it. On error *why (static text)
 * says what was wrong: RK_INVALID_ARGUMENT for a malformed header,
 * RK_UNAUTHENTICATED for sealing problems, RK_RESOURCE_EXHAUSTED when the
 * arena cannot hold the plaintext. */
rk_status_t rk_frame_open(rk_sealer_t *s, bool allow_plain, uint8_t kind,
                          const uint8_t *bind, const uint8_t *data,
                          size_t len, bool check_replay, rk_arena_t *arena,
                          rk_frame_t *out, const char **why);

#endif
