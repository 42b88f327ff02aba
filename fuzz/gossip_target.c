/*
 * Fuzz target: a gossip body as any peer could send it, after the frame
 * layer (fuzzed by rpc_request_target.c). It unpacks with the same bounded
 * arena a server uses, runs every member through the agent's wire checks
 * (services/membership/wire.c) and merges what passes into a fresh table,
 * so the checks and the merge are fuzzed together.
 */
#include "gossip_target.h"

#include <string.h>

#include "core/arena.h"
#include "ringkv/v1/membership.pb-c.h"
#include "rpc/pballoc.h"
#include "table.h"
#include "wire.h"

#define FUZZ_MAX_MEMBERS 64

size_t rk_fuzz_gossip(const uint8_t *data, size_t size)
{
	rk_arena_t arena;
	ProtobufCAllocator pb;
	rk_arena_init(&arena, (256u << 10) + (64u << 10));
	rk_pballoc_init(&pb, &arena);
	size_t accepted = 0;
	Ringkv__V1__GossipRequest *req =
	    ringkv__v1__gossip_request__unpack(&pb, size, data);
	if (req != NULL && req->n_members <= FUZZ_MAX_MEMBERS) {
		static rk_ms_member_t in[FUZZ_MAX_MEMBERS];
		for (size_t i = 0; i < req->n_members; i++) {
			const char *why;
			if (rk_ms_member_from_pb(req->members[i], &in[accepted],
			                         &why) == RK_OK)
				accepted++;
		}
		rk_ms_timing_t timing = {500, 300, 2000};
		rk_ms_member_t self;
		memset(&self, 0, sizeof(self));
		memset(self.id, 1, RK_MS_ID_BYTES);
		self.generation = 1;
		self.role = 4;
		rk_ms_table_t t;
		if (rk_ms_table_init(&t, &self, &timing, 0) == RK_OK) {
			rk_ms_table_merge(&t, in, accepted, 1000, 1000);
			rk_ms_table_fini(&t);
		}
	}
	rk_arena_fini(&arena);
	return accepted;
}
