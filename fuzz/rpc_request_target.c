/*
 * Fuzz target: every byte string a peer could send as a request. It runs
 * the server's own decoder (lib/rpc/request.c) with the same frame cap and
 * decode budget a server uses, then unpacks the body with the input type
 * of every method of every service, so each method's input decoder is
 * fuzzed through the one entry.
 */
#include "rpc_request_target.h"

#include "core/arena.h"
#include "ringkv/v1/common.pb-c.h"
#include "ringkv/v1/coordinator.pb-c.h"
#include "ringkv/v1/idgen.pb-c.h"
#include "ringkv/v1/membership.pb-c.h"
#include "ringkv/v1/ratelimit.pb-c.h"
#include "ringkv/v1/storage.pb-c.h"
#include "rpc/pballoc.h"
#include "rpc/request.h"

#define FUZZ_MAX_FRAME (64u << 10)

static const ProtobufCServiceDescriptor *const services[] = {
    &ringkv__v1__health__descriptor,     &ringkv__v1__coordinator__descriptor,
    &ringkv__v1__storage__descriptor,    &ringkv__v1__membership__descriptor,
    &ringkv__v1__ratelimit__descriptor,  &ringkv__v1__idgen__descriptor,
};

int rk_fuzz_rpc_request(const uint8_t *data, size_t size)
{
	rk_arena_t arena;
	ProtobufCAllocator pb;
	rk_arena_init(&arena, FUZZ_MAX_FRAME * 4 + (64u << 10));
	rk_pballoc_init(&pb, &arena);
	rk_rpc_request_t rq;
	char why[160];
	int reached = 0;
	if (rk_rpc_request_decode(NULL, FUZZ_MAX_FRAME, data, size, &arena,
	                          &pb, &rq, why, sizeof(why)) == RK_OK) {
		ProtobufCBinaryData body = rq.env->has_body
		                               ? rq.env->body
		                               : (ProtobufCBinaryData){0, NULL};
		for (size_t i = 0; i < sizeof(services) / sizeof(services[0]);
		     i++)
			for (unsigned m = 0; m < services[i]->n_methods; m++)
				if (protobuf_c_message_unpack(
				        services[i]->methods[m].input, &pb,
				        body.len, body.data) != NULL)
					reached = 1;
	}
	rk_arena_fini(&arena);
	return reached;
}
