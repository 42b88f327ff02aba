/*
 * The stream transport's framing: RPC frames (frame.h) on a plain TCP
 * connection, each preceded by an 8-byte header:
 *
 *	bytes 0..3  length of the frame that follows, big-endian
 *	bytes 4..7  request id, big-endian: chosen by the client, echoed by
 *	            the server on the answer
 *
 * A client may send several requests before reading; the server may
 * answer them in any order, and the id says which is which. The frame
 * itself, sealing included, is byte for byte what the nng transport
 * carries. docs/wire.md is the reference.
 */
#ifndef RK_RPC_STREAM_WIRE_H
#define RK_RPC_STREAM_WIRE_H

#include <stdint.h>

#define RK_STREAM_SCHEME       "stream://"
#define RK_STREAM_SCHEME_LEN   9
#define RK_STREAM_HEADER_BYTES 8

static inline void rk_stream_header_put(uint8_t h[RK_STREAM_HEADER_BYTES],
                                        uint32_t len, uint32_t id)
{
	h[0] = (uint8_t)(len >> 24);
	h[1] = (uint8_t)(len >> 16);
	h[2] = (uint8_t)(len >> 8);
	h[3] = (uint8_t)len;
	h[4] = (uint8_t)(id >> 24);
	h[5] = (uint8_t)(id >> 16);
	h[6] = (uint8_t)(id >> 8);
	h[7] = (uint8_t)id;
}

static inline uint32_t rk_stream_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

#endif
